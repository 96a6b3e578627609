#!/usr/bin/env bash
# check-secret-divisions.sh: no variable-time division on secret data.
#
# A `/` or `%` whose divisor is not a compile-time constant compiles to a
# hardware `div` (or a call to __udivti3 / __umodti3 for 128-bit operands),
# whose running time depends on its operands. The files below handle secret
# keys, secret-key-dependent buffers, sampled noise or decrypted plaintexts,
# so every such division in them must be on public data and say so with a
# `ct-public` comment on the same line (what makes it public, briefly).
#
# Allowed without a marker: divisors that are integer literals, `sizeof`
# expressions or ALL_CAPS macro constants (the compiler turns those into
# shifts or multiplications by a reciprocal). Comments, string and character
# literals are ignored.
#
# Usage: scripts/check-secret-divisions.sh [FILE...]   (default: the list below)
# Exit status: 0 clean, 1 an unmarked division was found (each printed as
# FILE:LINE: text), 2 a file is missing. Run by .ci/run and scripts/test.sh.
set -euo pipefail

SECRET_FILES=(
  src/core/rng.c
  src/ring/modarith.h
  src/ring/modarith.c
  src/ring/sampler.c
  src/ring/rns_poly.h
  src/ring/rns_poly.c
  src/ring/ntt.h
  src/ring/ntt.c
  src/ring/ntt_kernels.h
  src/ring/ntt_kernels.c
  src/ring/ntt_avx2.c
  src/ring/ntt_avx512.c
  src/ring/rns_kernels.h
  src/ring/rns_avx512.c
  src/ring/automorphism.c
  src/ckks/keys.c
  src/ckks/keyswitch.c
  src/ckks/encrypt.c
  src/ckks/objects.c
  src/ckks/serialize.c
)

files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  cd "$(dirname "$0")/.."
  files=("${SECRET_FILES[@]}")
fi

status=0
for f in "${files[@]}"; do
  if [ ! -f "$f" ]; then
    echo "check-secret-divisions: $f is missing (update the list in $0)" >&2
    exit 2
  fi
  out=$(awk -v file="$f" '
    BEGIN { in_block = 0 }
    {
      raw = $0
      line = $0
      code = ""
      i = 1
      n = length(line)
      # strip comments, string and character literals, keeping the code
      while (i <= n) {
        c = substr(line, i, 1)
        two = substr(line, i, 2)
        if (in_block) {
          if (two == "*/") { in_block = 0; i += 2; code = code " " } else i++
          continue
        }
        if (two == "/*") { in_block = 1; i += 2; continue }
        if (two == "//") break
        if (c == "\"" || c == "\047") {
          q = c; i++
          while (i <= n) {
            d = substr(line, i, 1)
            if (d == "\\") { i += 2; continue }
            i++
            if (d == q) break
          }
          code = code " 0 "
          continue
        }
        code = code c
        i++
      }
      if (code ~ /^[ \t]*#[ \t]*include/) next
      if (raw ~ /ct-public/) next
      # every / or % operator (including /= and %=) and the token after it
      rest = code
      while (match(rest, /[\/%]/)) {
        after = substr(rest, RSTART + 1)
        sub(/^=/, "", after)
        sub(/^[ \t(]*/, "", after)
        ok = 0
        if (after ~ /^[0-9]/) ok = 1                      # literal
        else if (after ~ /^sizeof([^A-Za-z0-9_]|$)/) ok = 1 # sizeof
        else if (after ~ /^[A-Z][A-Z0-9_]*([^A-Za-z0-9_(]|$)/) ok = 1 # MACRO constant
        if (!ok) { printf "%s:%d: %s\n", file, NR, raw; break }
        rest = substr(rest, RSTART + 1)
      }
    }' "$f")
  if [ -n "$out" ]; then
    echo "$out"
    status=1
  fi
done

if [ $status -ne 0 ]; then
  cat >&2 <<'EOF'
check-secret-divisions: the lines above divide by a value that is not a
compile-time constant in a file that handles secret data. A hardware division
takes operand-dependent time. If the operands are secret, compute without a
division (see cdl_shoup_precompute_ct and cdl_barrett_reduce_128 in
src/ring/modarith.h); if they are public (parameters, sizes, indexes), add a
comment on the same line: /* ct-public: <why the operands are public> */
EOF
fi
exit $status
