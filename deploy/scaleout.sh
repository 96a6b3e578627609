#!/usr/bin/env bash
# scaleout.sh: Redis, K `cryptodl serve` replicas sharing their sessions in it, and nginx in
# front of them, all on loopback, in one run folder (deploy/README.md).
#
#   deploy/scaleout.sh start RUN_DIR [options] -- MODEL.onnx [cryptodl serve options]
#   deploy/scaleout.sh run   RUN_DIR [options] -- MODEL.onnx [...]   start, wait for Ctrl-C, stop
#   deploy/scaleout.sh stop  RUN_DIR
#
# options:
#   --replicas K          replicas (default 2)
#   --port P              nginx's port (default: a free one; printed and in RUN_DIR/cluster.env)
#   --redis-port P        Redis's port (default: a free one)
#   --redis-maxmemory MB  Redis's memory limit (default 2048; full: new sessions get 429)
#   --threads T           evaluation threads per replica (default 1)
#   --key-cache-mb MB     each replica's key cache (default: cryptodl's, 1024)
#   --read-timeout S      nginx's wait for an answer, sized for an evaluation (default 600)
#   --cryptodl PATH       the binary (default: build/cryptodl beside this folder)
#
# Each process runs in its own process group (setsid) with its pid in RUN_DIR/*.pid, so that
# `stop` ends it and everything it started (nginx's workers too), TERM first, KILL after 10 s.
# A failed `start` stops what it had started. RUN_DIR/cluster.env lists the ports and pids;
# the logs are RUN_DIR/redis.log, replicaN.log (the access log of replica N), nginx-access.log.
# Run as root, nginx's workers run as root too (`user root root;`): this is a loopback set-up
# for tests and measurements; in production use the system's nginx with its own user and
# deploy/nginx.conf.in's upstream and server blocks.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() { echo "scaleout.sh: $*" >&2; exit 1; }
usage() { sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

find_bin() { # NAME: in PATH, or in the sbin folders a normal user's PATH lacks
  local p
  p=$(command -v "$1" 2>/dev/null) && { echo "$p"; return 0; }
  for d in /usr/sbin /sbin /usr/local/sbin; do [ -x "$d/$1" ] && { echo "$d/$1"; return 0; }; done
  return 1
}

free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop_dir() { # RUN_DIR: nginx first (no new requests), then the replicas, then Redis
  local run=$1 f pid
  for f in "$run"/nginx.pgid "$run"/replica*.pgid "$run"/redis.pgid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    kill -TERM -- "-$pid" 2>/dev/null || true
  done
  for f in "$run"/nginx.pgid "$run"/replica*.pgid "$run"/redis.pgid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    [[ "$pid" =~ ^[0-9]+$ ]] || continue
    for _ in $(seq 1 100); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$f"
  done
}

wait_http() { # URL SECONDS PID
  for _ in $(seq 1 $(($2 * 10))); do
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

cmd=${1:-}
[ -n "$cmd" ] || { usage; exit 2; }
case "$cmd" in -h|--help|help) usage; exit 0 ;; esac
RUN=${2:-}
[ -n "$RUN" ] || die "give a run folder: scaleout.sh $cmd RUN_DIR ..."
shift 2

if [ "$cmd" = stop ]; then
  [ -d "$RUN" ] || die "no folder $RUN"
  stop_dir "$RUN"
  echo "scaleout.sh: stopped what $RUN listed"
  exit 0
fi
[ "$cmd" = start ] || [ "$cmd" = run ] || die "unknown command '$cmd': start, run or stop (--help)"

REPLICAS=2 PORT= REDIS_PORT= REDIS_MB=2048 THREADS=1 CACHE_MB= READ_TIMEOUT=600
CDL=$HERE/../build/cryptodl
while [ $# -gt 0 ]; do
  case "$1" in
    --replicas) REPLICAS=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --redis-port) REDIS_PORT=$2; shift 2 ;;
    --redis-maxmemory) REDIS_MB=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --key-cache-mb) CACHE_MB=$2; shift 2 ;;
    --read-timeout) READ_TIMEOUT=$2; shift 2 ;;
    --cryptodl) CDL=$2; shift 2 ;;
    --) shift; break ;;
    *) die "unknown option '$1' (--help)" ;;
  esac
done
[ $# -ge 1 ] || die "give the model and serve options after --: scaleout.sh start RUN_DIR -- MODEL.onnx [...]"
[[ "$REPLICAS" =~ ^[1-9][0-9]?$ ]] || die "--replicas must be 1..99"
[[ "$REDIS_MB" =~ ^[1-9][0-9]*$ ]] || die "--redis-maxmemory must be a number of MB"
[[ "$READ_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "--read-timeout must be a number of seconds"
[ -x "$CDL" ] || die "no cryptodl binary at $CDL (build it, or give --cryptodl PATH)"
REDIS_BIN=$(find_bin redis-server) || die "redis-server not found (apt-get install redis-server)"
NGINX_BIN=$(find_bin nginx) || die "nginx not found (apt-get install nginx)"
command -v curl >/dev/null || die "curl not found (apt-get install curl)"
"$CDL" serve --help | grep -q "NOT in this build" && die "$CDL was built without libhiredis: no Redis sessions"

mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
ls "$RUN"/*.pgid >/dev/null 2>&1 && die "$RUN has processes listed already: scaleout.sh stop $RUN first"
started=0
on_exit() { if [ "$started" = 0 ]; then echo "scaleout.sh: start failed; stopping what was started" >&2; stop_dir "$RUN"; fi; }
trap on_exit EXIT

# ---- Redis ------------------------------------------------------------------------------
[ -n "$REDIS_PORT" ] || REDIS_PORT=$(free_port)
setsid "$REDIS_BIN" "$HERE/redis.conf" --port "$REDIS_PORT" --dir "$RUN" --logfile "$RUN/redis.log" \
  --maxmemory "${REDIS_MB}mb" </dev/null >/dev/null 2>&1 &
echo $! >"$RUN/redis.pgid"
REDIS_PID=$!
ok=0
for _ in $(seq 1 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT" && printf 'PING\r\n' >&3 && read -r -t 1 line <&3 &&
      [ "${line%$'\r'}" = "+PONG" ]) 2>/dev/null; then ok=1; break; fi
  kill -0 "$REDIS_PID" 2>/dev/null || break
  sleep 0.1
done
[ $ok = 1 ] || die "Redis did not answer on port $REDIS_PORT: $(tail -5 "$RUN/redis.log" 2>/dev/null)"

# ---- replicas -----------------------------------------------------------------------------
SERVE_ARGS=("$@" --port 0 --threads "$THREADS" --sessions "redis://127.0.0.1:$REDIS_PORT")
[ -n "$CACHE_MB" ] && SERVE_ARGS+=(--key-cache-mb "$CACHE_MB")
REPLICA_PORTS=() REPLICA_PIDS=()
for i in $(seq 1 "$REPLICAS"); do
  : >"$RUN/replica$i.out"
  setsid "$CDL" serve "${SERVE_ARGS[@]}" </dev/null >"$RUN/replica$i.out" 2>"$RUN/replica$i.log" &
  pid=$!
  echo "$pid" >"$RUN/replica$i.pgid"
  port=
  for _ in $(seq 1 600); do
    port=$(sed -n 's/^cryptodl serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$RUN/replica$i.out")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || die "replica $i exited: $(tail -3 "$RUN/replica$i.log")"
    sleep 0.1
  done
  [ -n "$port" ] || die "replica $i printed no address within 60 s"
  wait_http "http://127.0.0.1:$port/v1/health" 10 "$pid" || die "replica $i does not answer /v1/health"
  REPLICA_PORTS+=("$port") REPLICA_PIDS+=("$pid")
done
MAX_BODY=$(curl -fsS "http://127.0.0.1:${REPLICA_PORTS[0]}/v1/models" | sed -n 's/.*"max_body_bytes":\([0-9]*\).*/\1/p')
[[ "$MAX_BODY" =~ ^[0-9]+$ ]] || die "cannot read max_body_bytes from the first replica's /v1/models"

# ---- nginx --------------------------------------------------------------------------------
[ -n "$PORT" ] || PORT=$(free_port)
USER_LINE="# (not root: nginx's workers run as $(id -un))"
[ "$(id -u)" = 0 ] && USER_LINE="user root root;  # started by root: see deploy/README.md"
MAX_FAILS=2 FAIL_TIMEOUT=5s
SERVERS=
for p in "${REPLICA_PORTS[@]}"; do
  SERVERS+="        server 127.0.0.1:$p max_fails=$MAX_FAILS fail_timeout=$FAIL_TIMEOUT;"$'\n'
done
/usr/bin/python3 - "$HERE/nginx.conf.in" "$RUN/nginx.conf" <<PY
import re
import sys
text = open(sys.argv[1]).read()
fields = {"USER_LINE": """$USER_LINE""", "RUN": "$RUN", "SERVERS": """${SERVERS%$'\n'}""",
          "LISTEN": "127.0.0.1:$PORT", "MAX_BODY": "$MAX_BODY", "READ_TIMEOUT": "${READ_TIMEOUT}s",
          "TRIES": "$REPLICAS", "MAX_FAILS": "$MAX_FAILS", "FAIL_TIMEOUT": "$FAIL_TIMEOUT"}
for k, v in fields.items():
    text = text.replace("@%s@" % k, v)
assert not re.search(r"@[A-Z_]+@", text), "unfilled field in nginx.conf"
open(sys.argv[2], "w").write(text)
PY
"$NGINX_BIN" -t -q -p "$RUN" -c "$RUN/nginx.conf" -e "$RUN/nginx-startup.log" \
  || die "nginx refuses the configuration: $(cat "$RUN/nginx-startup.log" 2>/dev/null)"
setsid "$NGINX_BIN" -p "$RUN" -c "$RUN/nginx.conf" -e "$RUN/nginx-startup.log" </dev/null >/dev/null 2>&1 &
NGINX_PID=$!
echo "$NGINX_PID" >"$RUN/nginx.pgid"
wait_http "http://127.0.0.1:$PORT/v1/health" 10 "$NGINX_PID" \
  || die "nginx does not answer on port $PORT: $(cat "$RUN/nginx-startup.log" "$RUN/nginx-error.log" 2>/dev/null)"

cat >"$RUN/cluster.env" <<EOF
URL=http://127.0.0.1:$PORT
NGINX_PORT=$PORT
NGINX_PID=$NGINX_PID
REDIS_PORT=$REDIS_PORT
REDIS_PID=$REDIS_PID
REPLICA_PORTS="${REPLICA_PORTS[*]}"
REPLICA_PIDS="${REPLICA_PIDS[*]}"
EOF
started=1
echo "scaleout.sh: http://127.0.0.1:$PORT -> $REPLICAS replica(s) on ports ${REPLICA_PORTS[*]}, sessions in Redis" \
     "on port $REDIS_PORT; body limit $MAX_BODY bytes; logs and cluster.env in $RUN"

if [ "$cmd" = run ]; then
  trap 'echo; stop_dir "$RUN"; echo "scaleout.sh: stopped"; exit 0' INT TERM
  echo "Ctrl-C stops everything."
  while true; do sleep 3600 & wait $!; done
fi
