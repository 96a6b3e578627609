/*
 * sampler.c: uniform, ternary, fixed-Hamming-weight ternary and centered
 * binomial samplers (see sampler.h). Randomness is read from the rng in
 * blocks; secret-dependent values go through masks, never branches.
 */
#include "ring/sampler.h"

#include <string.h>

#include "core/error.h"
#include "core/memory.h"
#include "ring/modarith.h"

#define BLOCK 256

/* Branch-free popcount (no table, unlike libgcc's generic fallback). */
static inline uint64_t popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (x * 0x0101010101010101ull) >> 56;
}

void cdl_sample_uniform(cdl_rng *rng, uint64_t q, uint64_t *out, size_t n)
{
    int bits = 64 - __builtin_clzll(q);
    uint64_t mask = bits >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << bits) - 1);
    uint64_t buf[BLOCK];
    size_t have = 0, pos = 0, k = 0;
    while (k < n) {
        if (pos == have) {
            cdl_rng_bytes(rng, buf, sizeof buf);
            have = BLOCK;
            pos = 0;
        }
        uint64_t v = buf[pos++] & mask;
        if (v < q) /* rejection on a fresh random value: not secret */
            out[k++] = v;
    }
    cdl_wipe(buf, sizeof buf);
}

void cdl_sample_ternary(cdl_rng *rng, int8_t *out, size_t n)
{
    uint64_t buf[BLOCK];
    for (size_t k = 0; k < n; k += BLOCK) {
        size_t m = n - k < BLOCK ? n - k : BLOCK;
        cdl_rng_bytes(rng, buf, m * sizeof(uint64_t));
        for (size_t i = 0; i < m; i++) {
            /* floor(3 r / 2^64) is in {0,1,2}, uniform up to 2^-64 */
            uint64_t t = (uint64_t)(((cdl_u128)buf[i] * 3) >> 64);
            out[k + i] = (int8_t)((int)t - 1);
        }
    }
    cdl_wipe(buf, sizeof buf);
}

void cdl_sample_cbd(cdl_rng *rng, int8_t *out, size_t n)
{
    uint64_t buf[BLOCK];
    const uint64_t m21 = ((uint64_t)1 << CDL_CBD_ETA) - 1;
    for (size_t k = 0; k < n; k += BLOCK) {
        size_t m = n - k < BLOCK ? n - k : BLOCK;
        cdl_rng_bytes(rng, buf, m * sizeof(uint64_t));
        for (size_t i = 0; i < m; i++) {
            uint64_t r = buf[i];
            int64_t a = (int64_t)popcount64(r & m21), b = (int64_t)popcount64((r >> CDL_CBD_ETA) & m21);
            out[k + i] = (int8_t)(a - b);
        }
    }
    cdl_wipe(buf, sizeof buf);
}

/* Branch-free compare-exchange: a <= b afterwards. */
static inline void cswap(uint64_t *a, uint64_t *b)
{
    uint64_t x = *a, y = *b;
    uint64_t mask = -(uint64_t)(x > y);
    uint64_t d = (x ^ y) & mask;
    *a = x ^ d;
    *b = y ^ d;
}

/* Bitonic sort of a power-of-two array; the sequence of compared positions
 * is fixed by n only. */
static void bitonic_sort(uint64_t *a, size_t n)
{
    for (size_t k = 2; k <= n; k <<= 1)
        for (size_t j = k >> 1; j > 0; j >>= 1)
            for (size_t i = 0; i < n; i++) {
                size_t l = i ^ j;
                if (l > i) {
                    if ((i & k) == 0)
                        cswap(&a[i], &a[l]);
                    else
                        cswap(&a[l], &a[i]);
                }
            }
}

cdl_status cdl_sample_ternary_hw(cdl_rng *rng, size_t h, int8_t *out, size_t n)
{
    if (h < 1 || h > n)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "secret Hamming weight %zu must be in 1..%zu", h, n);
    size_t m = 1;
    while (m < n)
        m <<= 1;
    uint64_t *keys = cdl_secure_calloc(m, sizeof(uint64_t));
    if (!keys)
        return CDL_ERR_NO_MEMORY;
    cdl_rng_bytes(rng, keys, m * sizeof(uint64_t));
    /* Key = 62 random bits (high) | 2-bit code (low): code 1 = +1, 2 = -1, 0 = zero.
     * The first h entries are nonzero with a random sign; padding entries
     * (>= n, only when n is not a power of two) get the largest keys. */
    for (size_t i = 0; i < m; i++) {
        uint64_t r = keys[i];
        uint64_t sign = r & 1;
        uint64_t nz = (uint64_t)(i < h);
        uint64_t code = nz * (1 + sign);
        uint64_t hi = (r >> 2) & ~((uint64_t)1 << 61);
        if (i >= n)
            hi |= (uint64_t)1 << 61; /* public position: padding sorts last */
        keys[i] = (hi << 2) | code;
    }
    bitonic_sort(keys, m);
    for (size_t i = 0; i < n; i++) {
        int64_t code = (int64_t)(keys[i] & 3);
        /* 0 -> 0, 1 -> 1, 2 -> -1 */
        out[i] = (int8_t)((code & 1) - ((code >> 1) & 1));
    }
    cdl_secure_free(keys, m * sizeof(uint64_t));
    return CDL_OK;
}
