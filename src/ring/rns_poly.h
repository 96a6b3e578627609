/*
 * rns_poly.h: limb-wise arithmetic on polynomials in RNS form.
 *
 * A polynomial over `limbs` primes is limb-major: limb i is n contiguous
 * residues modulo mods[i] (values in [0, q_i)). The same functions work in
 * the coefficient and in the NTT domain (they are coefficient-wise), except
 * the pointwise product, which is a ring product only in the NTT domain.
 * Multi-limb functions run an OpenMP `parallel for` over limbs; each limb is
 * computed by exactly one thread, so results never depend on the thread count.
 */
#ifndef CDL_RING_RNS_POLY_H
#define CDL_RING_RNS_POLY_H

#include <stddef.h>
#include <stdint.h>

#include "ring/modarith.h"
#include "ring/ntt.h"

/* ---- one limb ---- */
void cdl_poly_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, uint64_t q);
void cdl_poly_sub(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, uint64_t q);
void cdl_poly_neg(uint64_t *out, const uint64_t *a, size_t n, uint64_t q);
/* out = a * b pointwise. */
void cdl_poly_mul(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *m);
/* out += a * b pointwise. */
void cdl_poly_mul_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *m);
/* out = a * c for a constant c < q (Shoup). */
void cdl_poly_mul_scalar(uint64_t *out, const uint64_t *a, uint64_t c, size_t n, uint64_t q);
/* out = a + c for a constant c < q. */
void cdl_poly_add_scalar(uint64_t *out, const uint64_t *a, uint64_t c, size_t n, uint64_t q);
/* Small signed coefficients (|v| < q) to residues mod q, branch-free. */
void cdl_poly_from_small(uint64_t *out, const int8_t *a, size_t n, uint64_t q);

/* ---- all limbs (OpenMP over limbs) ---- */
void cdl_rns_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *mods, int limbs);
void cdl_rns_sub(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *mods, int limbs);
void cdl_rns_neg(uint64_t *out, const uint64_t *a, size_t n, const cdl_modulus *mods, int limbs);
void cdl_rns_mul(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *mods, int limbs);
void cdl_rns_mul_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *mods,
                     int limbs);
/* c[i] is the constant for limb i (already reduced mod q_i). */
void cdl_rns_mul_scalar(uint64_t *out, const uint64_t *a, const uint64_t *c, size_t n, const cdl_modulus *mods,
                        int limbs);
void cdl_rns_add_scalar(uint64_t *out, const uint64_t *a, const uint64_t *c, size_t n, const cdl_modulus *mods,
                        int limbs);
void cdl_rns_from_small(uint64_t *out, const int8_t *a, size_t n, const cdl_modulus *mods, int limbs);
/* In-place NTT / inverse NTT of every limb with tables[i]. */
void cdl_rns_ntt_forward(uint64_t *a, size_t n, cdl_ntt_table *const *tables, int limbs);
void cdl_rns_ntt_inverse(uint64_t *a, size_t n, cdl_ntt_table *const *tables, int limbs);

/* x mod q for any x < 2^126 and 2^20 <= q < 2^61: Barrett with r = floor(2^128/q)
 * as in cdl_barrett_reduce_128, with the bound worked out for wider sums:
 * xh < 2^62, so t = (xl*r_lo >> 64) + xl*r_hi + xh*r_lo < 2^126 + 2^108 + 2^64
 * does not overflow; qhat underestimates floor(x/q) by at most 2 and the
 * remainder x - qhat*q < 3q < 2^63 is exact modulo 2^64. Branch-free. */
static inline uint64_t cdl_reduce_u126(cdl_u128 x, const cdl_modulus *m)
{
    uint64_t xl = (uint64_t)x, xh = (uint64_t)(x >> 64);
    cdl_u128 t = ((cdl_u128)xl * m->barrett_lo) >> 64;
    t += (cdl_u128)xl * m->barrett_hi;
    t += (cdl_u128)xh * m->barrett_lo;
    uint64_t qhat = (uint64_t)(t >> 64) + xh * m->barrett_hi;
    uint64_t r = xl - qhat * m->value;
    r = cdl_reduce_once(r, 2 * m->value);
    return cdl_reduce_once(r, m->value);
}

/* How many products of two residues (< q) can be summed in an unsigned
 * __int128 and still be reduced by cdl_reduce_u126 (sum < 2^126). */
static inline int cdl_lazy_products(const cdl_modulus *m)
{
    cdl_u128 sq = (cdl_u128)(m->value - 1) * (m->value - 1);
    cdl_u128 lim = (cdl_u128)1 << 126;
    cdl_u128 k = sq ? lim / sq : lim; /* ct-public: from the modulus */
    return k > 1024 ? 1024 : (int)k;
}

#endif
