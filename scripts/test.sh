#!/usr/bin/env bash
# The test command: the constant-time source rule (no division on secret data),
# configure + build Release with warnings as errors, then CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
bash scripts/check-secret-divisions.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCDL_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j2
