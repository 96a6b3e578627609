/*
 * memory.h: allocation helpers. Every allocation in the library goes through
 * an overflow-checked helper here; buffers that hold secrets (secret keys,
 * sampled noise, decrypted values) use the secure pair, which zeroizes with
 * sodium_memzero before freeing.
 */
#ifndef CDL_CORE_MEMORY_H
#define CDL_CORE_MEMORY_H

#include <stddef.h>

#define CDL_ALIGNMENT 64 /* one cache line; what AVX-512 loads want */

/* 64-byte aligned, uninitialised; NULL on overflow of count*size or failure.
 * Records CDL_ERR_NO_MEMORY in the last error on failure. */
void *cdl_alloc_array(size_t count, size_t size);
/* Same, zero-filled. */
void *cdl_calloc_array(size_t count, size_t size);
void cdl_free(void *p);

/* Secure variants: the caller passes the byte size back to the free. */
void *cdl_secure_calloc(size_t count, size_t size);
void cdl_secure_free(void *p, size_t bytes);
/* Zeroize without freeing. */
void cdl_wipe(void *p, size_t bytes);

/* count*size without overflow: returns 0 and sets *out, or -1 on overflow. */
int cdl_mul_size(size_t count, size_t size, size_t *out);

#endif
