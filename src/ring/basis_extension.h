/*
 * basis_extension.h: moving RNS residues between prime sets.
 *
 * Fast base conversion (Halevi-Polyakov-Shoup 2019; the ModUp of
 * Cheon-Han-Kim-Kim-Song SAC 2018 and Han-Ki CT-RSA 2020), centered form.
 * For x given by its residues x_i in [0, q_i) modulo the primes q_i of A
 * (product Q):
 *     y_i = [x_i * (Q/q_i)^-1]_{q_i} taken in (-q_i/2, q_i/2],
 *     conv_p(x) = sum_i y_i * (Q/q_i)  mod p
 * equals (x_c + k*Q) mod p where x_c is the centered representative of x in
 * (-Q/2, Q/2] and k is an integer with |k| <= |A|/2 (k depends on x, not on
 * p). It is exact (k = 0) when |A| = 1. Centering matters for CKKS: an
 * uncentered digit has mean Q/2, whose all-ones component concentrates the
 * key-switching noise in a few slots.
 * Everything here works on coefficient-domain residues.
 *
 * Rescale (divide by the last prime) and ModDown (divide by P) build on it.
 */
#ifndef CDL_RING_BASIS_EXTENSION_H
#define CDL_RING_BASIS_EXTENSION_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"
#include "ring/modarith.h"

#define CDL_BASE_MAX_FROM 64 /* at most this many source primes */

typedef struct cdl_base_converter {
    int from_count;
    int to_count;
    cdl_modulus *from;          /* from_count */
    cdl_modulus *to;            /* to_count */
    uint64_t *qhat_inv;         /* (Q/q_i)^-1 mod q_i, from_count */
    uint64_t *qhat_inv_shoup;
    uint64_t *qhat_mod_p;       /* (Q/q_i) mod p_j at [j * from_count + i] */
    uint64_t *qhat_mod_p_shoup;
    uint64_t *q_mult_mod_p;     /* c * Q mod p_j at [j * (from_count + 1) + c], c = 0..from_count */
} cdl_base_converter;

/* Precompute for converting from `from` (at most CDL_BASE_MAX_FROM) to `to` (all distinct primes). */
cdl_status cdl_base_converter_init(cdl_base_converter *bc, const cdl_modulus *from, int from_count,
                                   const cdl_modulus *to, int to_count);
void cdl_base_converter_release(cdl_base_converter *bc);

/* Step 1: y (from_count limbs of n) = x_i * (Q/q_i)^-1 mod q_i.
 * x has from_count limbs with stride n. */
void cdl_base_convert_prepare(const cdl_base_converter *bc, const uint64_t *x, uint64_t *y, size_t n);
/* Step 2: out (n values) = sum_i centered(y_i) * (Q/q_i) mod to[j], in [0, p_j). */
void cdl_base_convert_limb(const cdl_base_converter *bc, const uint64_t *y, int j, uint64_t *out, size_t n);
/* Both steps for all targets (out: to_count limbs), y: scratch of from_count limbs. */
void cdl_base_convert(const cdl_base_converter *bc, const uint64_t *x, uint64_t *y, uint64_t *out, size_t n);

/* Coefficient-domain exact rescale of one limb: given x_last (residues of x
 * mod q_last, coefficient form) lift the centered value x_last - q_last*[x_last > q_last/2]
 * to modulus q: out[k] = centered(x_last[k]) mod q. Subtracting it from x
 * and multiplying by q_last^-1 divides by q_last with rounding to nearest. */
void cdl_lift_centered(const uint64_t *x_last, uint64_t q_last, uint64_t *out, size_t n, const cdl_modulus *q);

#endif
