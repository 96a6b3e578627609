/*
 * automorphism.h: the ring automorphisms X -> X^g (g odd, 0 < g < 2N) of
 * Z_q[X]/(X^N + 1), which rotate CKKS slots (g = 5^k mod 2N) or conjugate
 * them (g = 2N - 1).
 *
 * Coefficient form: X^i -> X^(i*g mod 2N), and X^(j) = -X^(j-N) for j >= N.
 * NTT form (bit-reversed order of ntt.h, slot k holds a(psi^(2*brv(k)+1))):
 *   a(X^g) at psi^(2*brv(k)+1) is a at psi^(g*(2*brv(k)+1) mod 2N), so the
 *   automorphism is the pure permutation out[k] = in[index[k]].
 * g is public, so the index arithmetic is not constant-time sensitive.
 */
#ifndef CDL_RING_AUTOMORPHISM_H
#define CDL_RING_AUTOMORPHISM_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"

/* out = a(X^g) mod (X^N + 1, q), coefficient form; out must not alias in. */
void cdl_automorphism_coeff(const uint64_t *in, uint64_t *out, size_t n, uint64_t g, uint64_t q);
/* index[k] for the NTT-form permutation (n entries). */
void cdl_automorphism_ntt_index(size_t n, uint64_t g, uint32_t *index);
/* out[k] = in[index[k]]; out must not alias in. */
void cdl_automorphism_ntt_apply(const uint64_t *in, uint64_t *out, size_t n, const uint32_t *index);
/* The inverse automorphism: out[index[k]] = in[k]; out must not alias in. */
void cdl_automorphism_ntt_apply_inverse(const uint64_t *in, uint64_t *out, size_t n, const uint32_t *index);

#endif
