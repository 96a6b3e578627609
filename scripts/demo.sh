#!/usr/bin/env bash
# Set up everything on a fresh Debian 12 machine and run the main job.
# Today the main job is the CKKS engine's benchmark table (`cryptodl bench ckks`);
# pass other arguments to run them instead, e.g. `bash scripts/demo.sh bench ckks --json`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
if [ $# -eq 0 ]; then
  set -- bench ckks --quick
fi
exec ./build/cryptodl "$@"
