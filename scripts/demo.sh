#!/usr/bin/env bash
# Set up everything on a fresh Debian 12 machine and run the main job:
# encrypted inference with the shipped MNIST model (models/mnist_cryptonets.onnx)
# on the shipped MNIST test set (data/mnist): keygen, encrypt a batch of 4,096
# test images, evaluate the CNN on the ciphertexts, decrypt, and compare with the
# plaintext model and the labels.
# Pass other arguments to run another cryptodl command instead, e.g.
# `bash scripts/demo.sh bench ckks` (the CKKS timing table).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
if [ $# -eq 0 ]; then
  set -- predict models/mnist_cryptonets.onnx --data-dir data
fi
exec ./build/cryptodl "$@"
