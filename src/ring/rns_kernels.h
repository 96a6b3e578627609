/*
 * rns_kernels.h: AVX-512 (F/DQ + IFMA52) versions of the hot RNS loops of
 * basis_extension.c and key switching, picked at run time.
 *
 * Every kernel returns the same fully reduced residues as the portable loop
 * it replaces (bit for bit: both compute the same integer modulo the same
 * prime and reduce it to [0, p)), so results never depend on the CPU. The
 * kernels are used when cdl_rns_vector_enabled() says so: the active NTT ISA
 * (src/ring/ntt.h, CDL_ISA=portable forces the portable code everywhere, and
 * the tests use cdl_isa_set for that) is AVX-512 and the CPU has IFMA52.
 * They need n to be a multiple of 8 (N >= 1024 always is).
 */
#ifndef CDL_RING_RNS_KERNELS_H
#define CDL_RING_RNS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "ring/basis_extension.h"
#include "ring/modarith.h"

/* 1 when the kernels below may be called for length-n loops. */
int cdl_rns_vector_enabled(size_t n);

/* As cdl_base_convert_prepare / cdl_base_convert_limb (from_count >= 2). */
void cdl_base_convert_prepare_avx512(const cdl_base_converter *bc, const uint64_t *x, uint64_t *y, size_t n);
void cdl_base_convert_limb_avx512(const cdl_base_converter *bc, const uint64_t *y, int j, uint64_t *out, size_t n);

/* out[k] = c[k] + (a[k] + q - b[k]) * w mod q (c NULL: no addend), w < q
 * (Shoup constant ws), a, b, c < q: the last step of ModDown and rescale
 * (out may be c). */
void cdl_sub_mul_scalar_avx512(uint64_t *out, const uint64_t *c, const uint64_t *a, const uint64_t *b, uint64_t w,
                               uint64_t ws, uint64_t q, size_t n);

/* Key-switching inner product for one limb: o0[k] = sum_d x_d[perm[k]] * k0_d[k]
 * mod p and o1 likewise with k1 (perm NULL: identity), for p < 2^50, every
 * input below p and dcount <= CDL_MAC_IFMA_MAX_DIGITS. */
#define CDL_MAC_IFMA_MAX_DIGITS 15
void cdl_mac_ifma(const uint64_t *const *x, const uint64_t *const *k0, const uint64_t *const *k1, int dcount,
                  const uint32_t *perm, uint64_t p, uint64_t *o0, uint64_t *o1, size_t n);

/* For p < CDL_IFMA_PRIME_LIMIT and every input below p:
 * tensor product o0 = a0 b0, o1 = a0 b1 + a1 b0, o2 = a1 b1 mod p (the outputs
 * may alias the inputs position for position), o = c + a b mod p (o may
 * be c) and o = a b mod p (o may be a or b; the plaintext product). */
#define CDL_IFMA_PRIME_LIMIT ((uint64_t)1 << 50)
void cdl_tensor_ifma(const uint64_t *a0, const uint64_t *a1, const uint64_t *b0, const uint64_t *b1, uint64_t *o0,
                     uint64_t *o1, uint64_t *o2, uint64_t p, size_t n);
void cdl_mul_add_ifma(uint64_t *o, const uint64_t *c, const uint64_t *a, const uint64_t *b, uint64_t p, size_t n);
void cdl_mul_ifma(uint64_t *o, const uint64_t *a, const uint64_t *b, uint64_t p, size_t n);

#endif
