/*
 * zstd.h for the WebAssembly build (scripts/build-wasm.sh) only. The browser
 * client writes uncompressed objects (compression 0, what the page uses and
 * what `cryptodl serve` returns), so the build carries no zstd: the calls the
 * library makes are answered by web/wasm/shim.c with an error, which the
 * library turns into its usual status and message (a zstd-compressed object
 * is refused as "does not decompress"). The native build links libzstd.
 */
#ifndef CDL_WASM_ZSTD_H
#define CDL_WASM_ZSTD_H
#include <stddef.h>

typedef struct ZSTD_DCtx_s ZSTD_DCtx;
typedef enum { ZSTD_d_windowLogMax = 100 } ZSTD_dParameter;
typedef struct ZSTD_inBuffer_s {
    const void *src;
    size_t size;
    size_t pos;
} ZSTD_inBuffer;
typedef struct ZSTD_outBuffer_s {
    void *dst;
    size_t size;
    size_t pos;
} ZSTD_outBuffer;

size_t ZSTD_compressBound(size_t srcSize);
size_t ZSTD_compress(void *dst, size_t dstCapacity, const void *src, size_t srcSize, int compressionLevel);
size_t ZSTD_decompress(void *dst, size_t dstCapacity, const void *src, size_t compressedSize);
unsigned ZSTD_isError(size_t code);
const char *ZSTD_getErrorName(size_t code);
ZSTD_DCtx *ZSTD_createDCtx(void);
size_t ZSTD_freeDCtx(ZSTD_DCtx *dctx);
size_t ZSTD_DCtx_setParameter(ZSTD_DCtx *dctx, ZSTD_dParameter param, int value);
size_t ZSTD_decompressStream(ZSTD_DCtx *zds, ZSTD_outBuffer *output, ZSTD_inBuffer *input);
#endif
