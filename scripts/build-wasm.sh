#!/usr/bin/env bash
# build-wasm.sh: the browser client (docs/browser.md). Compiles the library's
# client layer (src/client without files.c, and the layers under it: core,
# ring, ckks, approx, nn, compile, runtime, and data/user_files.c for the CDLPARTS container) to WebAssembly with Debian's
# emscripten, and writes the static page to serve: `cryptodl serve MODEL
# --packing slots --web OUT` or any static file server.
#
#   bash scripts/build-wasm.sh [BUILD_DIR]        default: build-wasm; the page goes to BUILD_DIR/web
#   MODEL=models/mnist_cryptonets.onnx            the model the page compiles (the one the server serves)
#   CDL_WASM_DEPS=DIR                             where the Debian source tarballs are cached (BUILD_DIR/deps/src)
#
# Exit status: 0 built, 2 a tool is missing, 3 the Debian sources cannot be fetched, 1 other failures.
#
# Debian's emscripten ships no libsodium, jansson or protobuf-c, so the few
# files of them the client needs are compiled here from Debian's own source
# packages (bookworm's versions, fetched from deb.debian.org, SHA-256
# checked, not modified): libsodium's BLAKE2b, ChaCha20, SHA-256 and utilities
# (randombytes comes from web/wasm/shim.c: the browser's crypto.getRandomValues),
# jansson (plan records) and protobuf-c's runtime (the ONNX reader, whose code
# protoc-c generates from onnx.proto as in the native build). zstd is left out
# (the page neither writes nor reads compressed objects) and OpenMP is one
# thread: web/wasm/include. AVX2/AVX-512 kernels are x86-only in the sources
# and compile to their "not available" stubs, so only the portable paths run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${1:-build-wasm}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
OUT="$BUILD/web"
DEPS="$BUILD/deps"
SRC_CACHE=${CDL_WASM_DEPS:-$DEPS/src}
MODEL=${MODEL:-models/mnist_cryptonets.onnx}
JOBS=${JOBS:-$(nproc)}
start=$(date +%s.%N)

need() { command -v "$1" >/dev/null 2>&1 || { echo "build-wasm: $1 not found: $2" >&2; exit 2; }; }
need emcc "install Debian's emscripten (apt-get install emscripten)"
need protoc-c "install protobuf-c-compiler (scripts/setup-deps.sh)"
need sha256sum "coreutils"
# emcc's JavaScript passes need Debian's node-acorn, in /usr/share/nodejs, which a node not from Debian
# (e.g. NodeSource's) does not search.
export NODE_PATH="/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}"
[ -f /usr/include/onnx/onnx.proto ] || { echo "build-wasm: /usr/include/onnx/onnx.proto missing: install libonnx-dev" >&2; exit 2; }

# ---- Debian source packages (bookworm) --------------------------------------
DEBIAN_POOL=${DEBIAN_POOL:-http://deb.debian.org/debian/pool/main}
fetch() { # file url sha256
  local f="$SRC_CACHE/$1"
  if [ ! -f "$f" ] || ! echo "$3  $f" | sha256sum -c --status; then
    echo "-- fetching $2"
    mkdir -p "$SRC_CACHE"
    if command -v curl >/dev/null; then dl=(curl -fsSL -o "$f.part" "$2"); else dl=(wget -q -O "$f.part" "$2"); fi
    "${dl[@]}" || { echo "build-wasm: cannot fetch $2 (no network? put $1 in $SRC_CACHE)" >&2; exit 3; }
    mv "$f.part" "$f"
  fi
  echo "$3  $f" | sha256sum -c --status || { echo "build-wasm: $f: SHA-256 mismatch" >&2; exit 1; }
  if [ ! -f "$DEPS/x/$1.done" ]; then
    mkdir -p "$DEPS/x"
    tar -C "$DEPS/x" -xzf "$f"
    touch "$DEPS/x/$1.done"
  fi
}
fetch libsodium_1.0.18.orig.tar.gz "$DEBIAN_POOL/libs/libsodium/libsodium_1.0.18.orig.tar.gz" \
  d59323c6b712a1519a5daf710b68f5e7fde57040845ffec53850911f10a5d4f4
fetch jansson_2.14.orig.tar.gz "$DEBIAN_POOL/j/jansson/jansson_2.14.orig.tar.gz" \
  c739578bf6b764aa0752db9a2fdadcfe921c78f1228c7ec0bb47fa804c55d17b
fetch protobuf-c_1.4.1.orig.tar.gz "$DEBIAN_POOL/p/protobuf-c/protobuf-c_1.4.1.orig.tar.gz" \
  4cc4facd508172f3e0a4d3a8736225d472418aee35b4ad053384b137b220339f
SODIUM="$DEPS/x/libsodium-1.0.18/src/libsodium"
JANSSON="$DEPS/x/jansson-2.14/src"
PROTOBUFC="$DEPS/x/protobuf-c-1.4.1"

# Write stdin to $1 only if it differs (an unchanged header keeps make from rebuilding what includes it).
put() { cat > "$1.new"; if cmp -s "$1.new" "$1"; then rm -f "$1.new"; else mv "$1.new" "$1"; fi; }
# Generated headers (what configure would write): sodium's version.h, jansson's config; and the ONNX reader.
GEN="$DEPS/gen"
mkdir -p "$GEN/onnx"
sed -e 's/@VERSION@/1.0.18/' -e 's/@SODIUM_LIBRARY_VERSION_MAJOR@/10/' -e 's/@SODIUM_LIBRARY_VERSION_MINOR@/3/' \
    -e 's/@SODIUM_LIBRARY_MINIMAL_DEF@//' "$SODIUM/include/sodium/version.h.in" | put "$SODIUM/include/sodium/version.h"
sed -e 's/@json_inline@/inline/' -e 's/@json_have_long_long@/1/' -e 's/@json_have_localeconv@/1/' \
    -e 's/@json_have_atomic_builtins@/1/' -e 's/@json_have_sync_builtins@/1/' \
    "$JANSSON/jansson_config.h.in" | put "$GEN/jansson_config.h"
# jansson's private configuration, as its CMake check finds it for emscripten's libc (no /dev/urandom:
# the hash seed comes from the time and pid, as jansson does without it; the plan records are not hostile).
printf '%s\n' '#define HAVE_STDINT_H 1' '#define HAVE_UNISTD_H 1' '#define HAVE_SYS_TIME_H 1' '#define HAVE_SYS_TYPES_H 1' \
  '#define HAVE_GETPID 1' '#define HAVE_GETTIMEOFDAY 1' '#define HAVE_SYNC_BUILTINS 1' '#define HAVE_ATOMIC_BUILTINS 1' \
  '#define HAVE_LOCALE_H 1' '#define HAVE_SETLOCALE 1' '#define HAVE_INT32_T 1' '#define HAVE_UINT32_T 1' \
  '#define HAVE_UINT16_T 1' '#define HAVE_UINT8_T 1' '#define HAVE_SSIZE_T 1' '#define INITIAL_HASHTABLE_ORDER 3' \
  | put "$GEN/jansson_private_config.h"
if [ ! -f "$GEN/onnx/onnx.pb-c.c" ] || [ /usr/include/onnx/onnx.proto -nt "$GEN/onnx/onnx.pb-c.c" ]; then
  protoc-c --proto_path=/usr/include/onnx --c_out="$GEN/onnx" /usr/include/onnx/onnx.proto
fi

# ---- compile (make does the incremental part) --------------------------------
OPT=${CDL_WASM_OPT:--O3}
CFLAGS_COMMON="$OPT -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE"
SODIUM_FILES="crypto_generichash/crypto_generichash.c crypto_generichash/blake2b/generichash_blake2.c
  crypto_generichash/blake2b/ref/generichash_blake2b.c crypto_generichash/blake2b/ref/blake2b-ref.c
  crypto_generichash/blake2b/ref/blake2b-compress-ref.c crypto_stream/chacha20/stream_chacha20.c
  crypto_stream/chacha20/ref/chacha20_ref.c crypto_hash/sha256/hash_sha256.c crypto_hash/sha256/cp/hash_sha256_cp.c
  sodium/utils.c sodium/codecs.c"
LIB_SOURCES=$(ls src/core/*.c src/ring/*.c src/ckks/*.c src/approx/*.c src/nn/*.c src/compile/*.c src/runtime/*.c \
                 src/client/*.c src/data/user_files.c | grep -v '^src/client/files\.c$')

MK="$BUILD/wasm.mk"
{
  echo "O := $BUILD/obj"
  echo "all: $OUT/cryptodl.js"
  objs=""
  rule() { # source object flags
    echo "$2: $1"
    printf '\t@mkdir -p $(dir $@)\n\t@echo "  emcc $(notdir $<)"\n\t@emcc %s -MMD -MP -c $< -o $@\n' "$3"
    echo "-include ${2%.o}.d"
    objs="$objs $2"
  }
  for f in $SODIUM_FILES; do
    rule "$SODIUM/$f" "\$(O)/sodium/${f%.c}.o" "$CFLAGS_COMMON -w -DCONFIGURED=1 -DNATIVE_LITTLE_ENDIAN=1 -I$GEN -I$SODIUM/include -I$SODIUM/include/sodium"
  done
  for f in dump error hashtable hashtable_seed load memory pack_unpack strbuffer strconv utf value version; do
    rule "$JANSSON/$f.c" "\$(O)/jansson/$f.o" "$CFLAGS_COMMON -w -DHAVE_CONFIG_H=1 -I$GEN -I$JANSSON"
  done
  rule "$PROTOBUFC/protobuf-c/protobuf-c.c" "\$(O)/protobuf-c/protobuf-c.o" "$CFLAGS_COMMON -w -I$PROTOBUFC"
  INC="-I$ROOT/web/wasm/include -I$GEN -I$SODIUM/include -I$JANSSON -I$PROTOBUFC -I$GEN/onnx -I$ROOT/include -I$ROOT/src -I$BUILD/include"
  rule "$GEN/onnx/onnx.pb-c.c" "\$(O)/onnx.pb-c.o" "$CFLAGS_COMMON -w $INC"
  for f in $LIB_SOURCES; do
    rule "$ROOT/$f" "\$(O)/lib/${f%.c}.o" "$CFLAGS_COMMON -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas -DCDL_BUILDING_LIBRARY $INC"
  done
  for f in shim api; do
    rule "$ROOT/web/wasm/$f.c" "\$(O)/web/$f.o" "$CFLAGS_COMMON -Wall -Wextra -I$ROOT/web/wasm/include $INC"
  done
  echo "$OUT/cryptodl.js:$objs $MK"
  printf '\t@mkdir -p $(dir $@)\n\t@echo "  link $(notdir $@)"\n'
  printf '\t@emcc %s $(filter %%.o,$^) -o $@ -sMODULARIZE=1 -sEXPORT_NAME=createCryptodl -sENVIRONMENT=web,worker -sALLOW_MEMORY_GROWTH=1 -sINITIAL_MEMORY=64MB -sMAXIMUM_MEMORY=4GB -sTOTAL_STACK=2MB -sFILESYSTEM=0 -sEXPORTED_RUNTIME_METHODS=ccall,UTF8ToString -sEXPORTED_FUNCTIONS=_malloc,_free\n' "$OPT"
} | put "$MK"

# The version header the native build configures from version.h.in.
mkdir -p "$BUILD/include/cryptodl"
ver=$(sed -n 's/^project(cryptodl VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
IFS=. read -r vmaj vmin vpat <<< "$ver"
sed -e "s/@PROJECT_VERSION@/$ver/g" -e "s/@PROJECT_VERSION_MAJOR@/$vmaj/g" -e "s/@PROJECT_VERSION_MINOR@/$vmin/g" \
    -e "s/@PROJECT_VERSION_PATCH@/$vpat/g" include/cryptodl/version.h.in | put "$BUILD/include/cryptodl/version.h"

make -f "$MK" -j"$JOBS" --no-print-directory

# ---- the page -----------------------------------------------------------------
mkdir -p "$OUT/models" "$OUT/mnist"
cp web/index.html web/app.js web/worker.js web/style.css "$OUT/"
cp "$MODEL" "$OUT/models/"
cp data/mnist/t10k-images-idx3-ubyte.gz data/mnist/t10k-labels-idx1-ubyte.gz "$OUT/mnist/"
printf '{"model_file": "models/%s"}\n' "$(basename "$MODEL")" > "$OUT/config.json"
end=$(date +%s.%N)
awk -v o="$OUT" -v w="$(stat -c %s "$OUT/cryptodl.wasm")" -v j="$(stat -c %s "$OUT/cryptodl.js")" -v s="$start" -v e="$end" \
  'BEGIN { printf "build-wasm: %s (cryptodl.wasm %.2f MB, cryptodl.js %.0f kB) in %.0f s\n", o, w / 1e6, j / 1e3, e - s }'
