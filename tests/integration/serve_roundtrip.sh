#!/usr/bin/env bash
# serve_roundtrip.sh: `cryptodl serve` end to end with the CLI's client steps
# and curl, as a real client and server would run them:
#   server: cryptodl serve MODEL --port 0 (in the background, always killed)
#   client: cryptodl predict MODEL --keygen / --encrypt (first LIMIT test images)
#           curl: POST relin.key -> session; POST the batch -> encrypted logits
#           cryptodl predict MODEL --decrypt
# Passes when the decrypted predictions agree with the plaintext reference on
# every image and the encrypted accuracy equals the one-process
# `cryptodl predict --limit LIMIT` result on the same images; also checks the
# parameter hash of /v1/models against the client's relin.key, DELETE, the
# metrics and a clean stop on SIGTERM.
#
# usage: serve_roundtrip.sh CRYPTODL MODEL DATA_DIR [LIMIT]
set -euo pipefail
CDL=$1 MODEL=$2 DATA=$3 LIMIT=${4:-16}
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    sleep 1
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
fail() { echo "FAIL: $*" >&2; echo "--- server stderr:" >&2; cat "$WORK/server.err" >&2 || true; exit 1; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

"$CDL" serve "$MODEL" --name mnist --port 0 --threads 2 >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=
for _ in $(seq 1 300); do
  URL=$(sed -n 's/^cryptodl serve: listening on \(http:[^ ]*\)$/\1/p' "$WORK/server.out")
  [ -n "$URL" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || fail "the server exited: $(cat "$WORK/server.err")"
  sleep 0.1
done
[ -n "$URL" ] || fail "the server did not print its URL within 30 s"
echo "server at $URL"

[ "$(curl -sS "$URL/v1/health")" = '{"status":"ok"}' ] || fail "health"

# client: keys and encryption, exactly as the CLI writes them
"$CDL" predict "$MODEL" --keygen --keys "$WORK/keys" >/dev/null
"$CDL" predict "$MODEL" --encrypt --keys "$WORK/keys" --out "$WORK/batch.bin" --limit "$LIMIT" --data-dir "$DATA"

# the client checks that the server keyed the same parameters (bytes 8..40 of any object)
HASH=$(od -An -tx1 -j8 -N32 "$WORK/keys/relin.key" | tr -d ' \n')
curl -sS "$URL/v1/models" | grep -q "\"param_hash\":\"$HASH\"" || fail "parameter hash differs from relin.key's"

# a secret key is refused
CODE=$(curl -sS -o "$WORK/err.json" -w '%{http_code}' --data-binary @"$WORK/keys/secret.key" "$URL/v1/models/mnist/sessions")
[ "$CODE" = 400 ] && grep -q "secret key" "$WORK/err.json" || fail "secret key upload: $CODE $(cat "$WORK/err.json")"

CODE=$(curl -sS -o "$WORK/session.json" -w '%{http_code}' --data-binary @"$WORK/keys/relin.key" "$URL/v1/models/mnist/sessions")
[ "$CODE" = 201 ] || fail "session: $CODE $(cat "$WORK/session.json")"
SESSION=$(sed -n 's/.*"session":"\([0-9a-f]\{32\}\)".*/\1/p' "$WORK/session.json")
[ -n "$SESSION" ] || fail "no session id in $(cat "$WORK/session.json")"

CODE=$(curl -sS -o "$WORK/logits.bin" -w '%{http_code}' --data-binary @"$WORK/batch.bin" "$URL/v1/sessions/$SESSION/predict")
[ "$CODE" = 200 ] || fail "predict: $CODE $(head -c 500 "$WORK/logits.bin")"

# client: decrypt
DEC=$("$CDL" predict "$MODEL" --decrypt --keys "$WORK/keys" --in "$WORK/logits.bin" --data-dir "$DATA" --json)
echo "over HTTP:   $DEC"
[ "$(echo "$DEC" | field argmax_agreement)" = 1.000000 ] || fail "predictions differ from the plaintext reference"
[ "$(echo "$DEC" | field images)" = "$LIMIT" ] || fail "expected $LIMIT images"

# the same images in one process
ONE=$("$CDL" predict "$MODEL" --limit "$LIMIT" --data-dir "$DATA" --json 2>/dev/null)
echo "one process: $ONE"
A_HTTP=$(echo "$DEC" | field encrypted_accuracy)
A_ONE=$(echo "$ONE" | field encrypted_accuracy)
[ "$A_HTTP" = "$A_ONE" ] || fail "accuracy over HTTP $A_HTTP != one-process $A_ONE"

# delete, then the session is gone
[ "$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "$URL/v1/sessions/$SESSION")" = 204 ] || fail "delete"
CODE=$(curl -sS -o /dev/null -w '%{http_code}' --data-binary @"$WORK/keys/relin.key" "$URL/v1/sessions/$SESSION/predict")
[ "$CODE" = 404 ] || fail "predict after delete: $CODE"

METRICS=$(curl -sS "$URL/v1/metrics")
echo "$METRICS" | grep -q '^cdl_evaluations_total 1$' || fail "metrics: $METRICS"
echo "$METRICS" | grep -q '^cdl_http_requests_total{endpoint="predict",status="200"} 1$' || fail "metrics: $METRICS"

# the log names sessions by number, never by id
grep -q "POST /v1/sessions/#1/predict 200" "$WORK/server.err" || fail "request log"
if grep -q "$SESSION" "$WORK/server.err" "$WORK/server.out"; then fail "a session id was logged"; fi

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || fail "the server did not exit cleanly on SIGTERM"
SERVER_PID=
grep -q "stopped; freed 0 session" "$WORK/server.err" || fail "stop message"
echo "serve round trip: OK (accuracy $A_HTTP over HTTP and in one process)"
