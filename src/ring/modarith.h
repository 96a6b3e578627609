/*
 * modarith.h: word-size modular arithmetic for NTT-friendly primes q < 2^61.
 *
 * - Barrett reduction of 128-bit products with a precomputed floor(2^128 / q).
 * - Shoup multiplication by a fixed operand w with w' = floor(w * 2^64 / q):
 *   one high multiply and one low multiply, result in [0, 2q) before the final
 *   correction (Harvey, "Faster arithmetic for number-theoretic transforms", 2014).
 * All functions but cdl_shoup_precompute (a 128-bit division: public data
 * only) are branch-free and division-free in their operands (conditional
 * subtractions are masks), so they may be used on secret data; the Shoup
 * constant of a secret value comes from cdl_shoup_precompute_ct.
 * scripts/check-secret-divisions.sh keeps divisions out of the files that
 * handle secrets (CI).
 * The bound q < 2^61 keeps 4q < 2^63, which the lazy NTT butterflies need.
 */
#ifndef CDL_RING_MODARITH_H
#define CDL_RING_MODARITH_H

#include <stdint.h>

#define CDL_MODULUS_MAX_BITS 61
#define CDL_MODULUS_MIN_BITS 20

typedef unsigned __int128 cdl_u128;

typedef struct cdl_modulus {
    uint64_t value;
    int bits;
    uint64_t barrett_lo; /* floor(2^128 / q), low word */
    uint64_t barrett_hi; /* floor(2^128 / q), high word */
} cdl_modulus;

/* q must be odd, 2 <= bits(q) <= 61 (not checked for primality here). */
void cdl_modulus_init(cdl_modulus *m, uint64_t q);

/* Return x - q if x >= q, else x, without a branch. Requires x < 2q and
 * 2q <= 2^63: then x - q wraps exactly when x < q, and its top bit says so. */
static inline uint64_t cdl_reduce_once(uint64_t x, uint64_t q)
{
    uint64_t d = x - q;
    return d + (q & ((uint64_t)0 - (d >> 63)));
}

static inline uint64_t cdl_mod_add(uint64_t a, uint64_t b, uint64_t q) { return cdl_reduce_once(a + b, q); }

static inline uint64_t cdl_mod_sub(uint64_t a, uint64_t b, uint64_t q) { return cdl_reduce_once(a + q - b, q); }

static inline uint64_t cdl_mod_neg(uint64_t a, uint64_t q)
{
    uint64_t mask = -(uint64_t)(a != 0);
    return (q - a) & mask;
}

/* x mod q for any 128-bit x < 2^122 (e.g. a product of two values below q). */
static inline uint64_t cdl_barrett_reduce_128(cdl_u128 x, const cdl_modulus *m)
{
    uint64_t xl = (uint64_t)x, xh = (uint64_t)(x >> 64);
    /* qhat = floor(x * r / 2^128) computed from the partial products; it
     * underestimates floor(x / q) by at most 2, fixed by two corrections. */
    cdl_u128 t = ((cdl_u128)xl * m->barrett_lo) >> 64;
    t += (cdl_u128)xl * m->barrett_hi;
    t += (cdl_u128)xh * m->barrett_lo;
    uint64_t qhat = (uint64_t)(t >> 64) + xh * m->barrett_hi;
    uint64_t r = xl - qhat * m->value;
    r = cdl_reduce_once(r, 2 * m->value) ;
    return cdl_reduce_once(r, m->value);
}

/* x mod q for a 64-bit x. */
static inline uint64_t cdl_barrett_reduce_64(uint64_t x, const cdl_modulus *m)
{
    return cdl_barrett_reduce_128((cdl_u128)x, m);
}

static inline uint64_t cdl_mod_mul(uint64_t a, uint64_t b, const cdl_modulus *m)
{
    return cdl_barrett_reduce_128((cdl_u128)a * b, m);
}

/* w' = floor(w * 2^64 / q), for w < q. PUBLIC DATA ONLY: the 128-bit
 * division compiles to a call of __udivti3 / a variable-time `div`, whose
 * running time depends on w. It is for roots of unity, RNS constants and
 * other values derived from the parameters; secret-dependent operands (the
 * secret key's NTT form) go through cdl_shoup_precompute_ct. */
static inline uint64_t cdl_shoup_precompute(uint64_t w, uint64_t q)
{
    return (uint64_t)(((cdl_u128)w << 64) / q); /* ct-public: roots and RNS constants only */
}

/* The same constant, floor(w * 2^64 / q) for w < q, in constant time: no
 * division and no branch on w. With r = floor(2^128 / q) (the Barrett
 * constant, public), t = floor(w * r / 2^64) = w * r_hi + floor(w * r_lo / 2^64)
 * satisfies  w 2^64 / q - w / 2^64 - 1 < t <= w 2^64 / q,  and w < q < 2^61
 * makes that t = floor(w 2^64 / q) - {0 or 1}. The remainder
 * w 2^64 - t q lies in [0, 2q) and fits a word (its high word is known to be
 * zero, so only the low word of t q is needed); one masked increment when it
 * is >= q gives the exact quotient. Multiplications (`mul`) take constant
 * time on the x86-64 and AArch64 cores we target. */
static inline uint64_t cdl_shoup_precompute_ct(uint64_t w, const cdl_modulus *m)
{
    uint64_t t = w * m->barrett_hi + (uint64_t)(((cdl_u128)w * m->barrett_lo) >> 64);
    uint64_t rem = (uint64_t)0 - t * m->value;  /* w 2^64 - t q, in [0, 2q) */
    uint64_t ge = 1 ^ ((rem - m->value) >> 63); /* rem >= q (rem < 2q < 2^62) */
    return t + ge;
}

/* a * w mod q in [0, 2q), for any 64-bit a and w < q. */
static inline uint64_t cdl_mul_shoup_lazy(uint64_t a, uint64_t w, uint64_t w_shoup, uint64_t q)
{
    uint64_t hi = (uint64_t)(((cdl_u128)a * w_shoup) >> 64);
    return a * w - hi * q;
}

static inline uint64_t cdl_mul_shoup(uint64_t a, uint64_t w, uint64_t w_shoup, uint64_t q)
{
    return cdl_reduce_once(cdl_mul_shoup_lazy(a, w, w_shoup, q), q);
}

uint64_t cdl_mod_pow(uint64_t base, uint64_t exp, const cdl_modulus *m);
/* Inverse of a modulo prime q (a != 0 mod q), by Fermat. */
uint64_t cdl_mod_inv(uint64_t a, const cdl_modulus *m);

/* Signed integer to its residue mod q, without a branch on x (it may be
 * secret: flooding noise, encoded plaintext coefficients). */
static inline uint64_t cdl_mod_from_i64(int64_t x, const cdl_modulus *m)
{
    uint64_t neg = (uint64_t)0 - ((uint64_t)x >> 63); /* all ones if x < 0 */
    uint64_t mag = ((uint64_t)x ^ neg) - neg;          /* |x| */
    uint64_t r = cdl_barrett_reduce_64(mag, m);
    return (r & ~neg) | (cdl_mod_neg(r, m->value) & neg);
}

#endif
