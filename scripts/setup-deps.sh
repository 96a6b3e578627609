#!/usr/bin/env bash
# Install the Debian 12 packages cryptodl needs to build, test and train.
# Runs apt-get only when something is missing (so it is quick to re-run).
set -euo pipefail
packages=(
  build-essential cmake pkg-config clang libclang-rt-14-dev libomp-dev
  libsodium-dev libzstd-dev zlib1g-dev liblzma-dev libpng-dev
  libcmocka-dev protobuf-c-compiler libprotobuf-c-dev libonnx-dev
  libmicrohttpd-dev libjansson-dev gnuplot-nox curl
  libhiredis-dev redis-server nginx
  python3-numpy python3-torch python3-onnx python3-matplotlib python3-pytest
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
