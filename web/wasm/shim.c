/*
 * shim.c: what the WebAssembly build of the client layer (scripts/build-wasm.sh,
 * web/) needs from the system and cannot take from Debian's libraries, which
 * are not built for emscripten. Compiled into the WASM module only; the
 * native library keeps libsodium, libzstd and OpenMP.
 *
 *  - Randomness. libsodium's BLAKE2b, ChaCha20 and SHA-256 (and its memzero,
 *    memcmp, increment, bin2hex) are compiled for WASM from Debian's
 *    libsodium 1.0.18 source, unchanged; its randombytes and sodium_init are
 *    not (their emscripten path needs JavaScript glue of their own). Here
 *    randombytes_buf is getentropy(), which emscripten implements with the
 *    browser's crypto.getRandomValues (Web Crypto: a CSPRNG seeded by the
 *    operating system). Emscripten's getentropy stops the module (JavaScript
 *    abort) rather than fall back to Math.random when the environment has no
 *    crypto.getRandomValues, which every browser and Web Worker has. The
 *    library draws only the 32-byte key of its ChaCha20 generator from it
 *    (src/core/rng.c).
 *  - OpenMP: one thread (the page runs the module in a Web Worker).
 *  - zstd: not built; every call fails (see include/zstd.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/random.h> /* getentropy: emscripten's, over crypto.getRandomValues */

#include "omp.h"
#include "zstd.h"

/* ---- libsodium's entry points that are not compiled from its source ---- */

int sodium_init(void);
void randombytes_buf(void *const buf, const size_t size);
void sodium_misuse(void);

static int entropy_ok;

int sodium_init(void)
{
    if (entropy_ok)
        return 1; /* libsodium's "already initialised" */
    unsigned char probe[16];
    if (getentropy(probe, sizeof probe) != 0)
        return -1;
    entropy_ok = 1;
    return 0;
}

/* As libsodium's own randombytes: no error return, so a failure after a
 * successful sodium_init (which does not happen with Web Crypto) stops the
 * module (a trap: the JavaScript caller gets a RuntimeError) rather than
 * return predictable bytes. Only reached after sodium_init succeeded. */
void randombytes_buf(void *const buf, const size_t size)
{
    unsigned char *p = buf;
    size_t left = size;
    while (left > 0) {
        size_t n = left < 256 ? left : 256; /* getentropy's limit */
        if (!entropy_ok || getentropy(p, n) != 0)
            __builtin_trap();
        p += n;
        left -= n;
    }
}

/* libsodium calls this on API misuse (it aborts natively); a trap here. */
void sodium_misuse(void) { __builtin_trap(); }

/* ---- OpenMP: one thread ---- */

int omp_get_max_threads(void) { return 1; }
int omp_get_thread_num(void) { return 0; }
int omp_get_num_procs(void) { return 1; }
void omp_set_num_threads(int n) { (void)n; }

/* ---- zstd: not in this build ---- */

#define SHIM_ZSTD_ERROR ((size_t)-1)

size_t ZSTD_compressBound(size_t srcSize) { return srcSize + 64; }
size_t ZSTD_compress(void *dst, size_t cap, const void *src, size_t len, int level)
{
    (void)dst, (void)cap, (void)src, (void)len, (void)level;
    return SHIM_ZSTD_ERROR;
}
size_t ZSTD_decompress(void *dst, size_t cap, const void *src, size_t len)
{
    (void)dst, (void)cap, (void)src, (void)len;
    return SHIM_ZSTD_ERROR;
}
unsigned ZSTD_isError(size_t code) { return code == SHIM_ZSTD_ERROR; }
const char *ZSTD_getErrorName(size_t code)
{
    (void)code;
    return "zstd is not part of the WebAssembly build (use compression 0)";
}
ZSTD_DCtx *ZSTD_createDCtx(void) { return NULL; }
size_t ZSTD_freeDCtx(ZSTD_DCtx *d)
{
    (void)d;
    return 0;
}
size_t ZSTD_DCtx_setParameter(ZSTD_DCtx *d, ZSTD_dParameter p, int v)
{
    (void)d, (void)p, (void)v;
    return SHIM_ZSTD_ERROR;
}
size_t ZSTD_decompressStream(ZSTD_DCtx *d, ZSTD_outBuffer *o, ZSTD_inBuffer *i)
{
    (void)d, (void)o, (void)i;
    return SHIM_ZSTD_ERROR;
}
