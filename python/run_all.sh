#!/bin/sh
# Every training run behind docs/results.md, in the order they were run. Each line is
# resumable (re-running it continues from <out>/last.pt, or does nothing once finished).
# Usage: sh python/run_all.sh [queue]   (queue: cryptonets | deep | cifar | all; default all)
# Runs niced with $THREADS torch threads (default 1: two queues side by side on 2 shared cores); logs in python/runs/<run>.log; then rebuild the report with
#   cd python && /usr/bin/python3 -m cryptodl_train.report
set -e
cd "$(dirname "$0")"
T="nice -n 10 /usr/bin/python3 -m cryptodl_train.train --threads ${THREADS:-1}"
q="${1:-all}"
# two queues run side by side for docs/results.md: "a" (MNIST deep, Fashion-MNIST, CIFAR-10) and "b" (CryptoNets family, MNIST deep ReLU twin)
run() { name=$1; shift; echo "== $name"; $T --out runs/$name "$@" >> runs/$name.log 2>&1 || echo "!! $name failed (see runs/$name.log)"; }
mkdir -p runs
if [ "$q" = a ] || [ "$q" = all ]; then
  run mnist_deep_quad          --recipe mnist_deep --export ../models/mnist_deep.onnx
  run fashion_mnist_deep_quad  --recipe fashion_mnist_deep --export ../models/fashion_mnist_deep.onnx
  run fashion_mnist_deep_relu  --recipe fashion_mnist_deep --act relu
  # 60 epochs do not fit one session on 2 shared cores: slices of at most --time-budget minutes, resumed by re-running.
  run cifar10_cnn_quad         --recipe cifar10_cnn --time-budget ${CIFAR_MINUTES:-40} --export ../models/cifar10_cnn.onnx
fi
if [ "$q" = b ] || [ "$q" = all ]; then
  run mnist_cryptonets_square  --recipe mnist_cryptonets --export ../models/mnist_cryptonets.onnx
  run mnist_cryptonets_relu    --recipe mnist_cryptonets --act relu
  run mnist_deep_relu          --recipe mnist_deep --act relu
  for a in poly2 poly4 poly8 quad cheb4 polyt4; do
    run mnist_cryptonets_$a --recipe mnist_cryptonets --act $a
  done
fi
