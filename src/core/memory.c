/* memory.c: aligned, overflow-checked and secure (zeroized) allocation. */
#include "core/memory.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/error.h"

int cdl_mul_size(size_t count, size_t size, size_t *out)
{
    if (size != 0 && count > SIZE_MAX / size)
        return -1;
    *out = count * size;
    return 0;
}

void *cdl_alloc_array(size_t count, size_t size)
{
    size_t bytes;
    if (cdl_mul_size(count, size, &bytes) != 0 || bytes > SIZE_MAX - CDL_ALIGNMENT) {
        cdl_fail(CDL_ERR_NO_MEMORY, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    /* aligned_alloc wants a multiple of the alignment; never ask for 0 bytes. */
    size_t rounded = (bytes + CDL_ALIGNMENT - 1) / CDL_ALIGNMENT * CDL_ALIGNMENT;
    if (rounded == 0)
        rounded = CDL_ALIGNMENT;
    void *p = aligned_alloc(CDL_ALIGNMENT, rounded);
    if (!p)
        cdl_fail(CDL_ERR_NO_MEMORY, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *cdl_calloc_array(size_t count, size_t size)
{
    void *p = cdl_alloc_array(count, size);
    if (p)
        memset(p, 0, count * size);
    return p;
}

void cdl_free(void *p) { free(p); }

void *cdl_secure_calloc(size_t count, size_t size) { return cdl_calloc_array(count, size); }

void cdl_wipe(void *p, size_t bytes)
{
    if (p && bytes)
        sodium_memzero(p, bytes);
}

void cdl_secure_free(void *p, size_t bytes)
{
    if (!p)
        return;
    sodium_memzero(p, bytes);
    free(p);
}
