/*
 * ntt.h: the negacyclic number-theoretic transform over Z_q[X]/(X^N + 1).
 *
 * forward: coefficients (standard order) -> evaluations at the odd powers of
 *   a primitive 2N-th root psi, in bit-reversed order: out[k] = a(psi^(2*brv(k)+1)).
 * inverse: exactly undoes forward.
 * Both take inputs in [0, q) and return outputs in [0, q). Cooley-Tukey
 * forward and Gentleman-Sande inverse butterflies with Harvey's lazy
 * reduction (values kept in [0, 4q) between stages) and Shoup twiddles.
 *
 * Kernels: a portable C reference plus vector kernels (AVX2, AVX-512 IFMA),
 * picked at run time from the CPU features; CDL_ISA=portable|avx2|avx512 in
 * the environment forces one (an unsupported choice falls back to portable
 * with a warning on stderr). Every kernel gives bit-identical results.
 */
#ifndef CDL_RING_NTT_H
#define CDL_RING_NTT_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"
#include "ring/modarith.h"

typedef enum cdl_isa {
    CDL_ISA_PORTABLE = 0,
    CDL_ISA_AVX2 = 1,
    CDL_ISA_AVX512 = 2,
    CDL_ISA_COUNT = 3
} cdl_isa;

typedef struct cdl_ntt_table {
    size_t n;
    int log_n;
    cdl_modulus mod;
    uint64_t psi;              /* the primitive 2N-th root used */
    uint64_t *roots;           /* roots[k] = psi^brv(k), k < n (roots[0] unused) */
    uint64_t *roots_shoup;
    uint64_t *inv_roots;       /* inv_roots[k] = psi^-brv(k) */
    uint64_t *inv_roots_shoup;
    uint64_t n_inv;            /* N^-1 mod q */
    uint64_t n_inv_shoup;
    void *isa_data;            /* kernel-specific precomputation (may be NULL) */
} cdl_ntt_table;

/* N a power of two (2..2^17), q prime = 1 mod 2N, q < 2^61. */
cdl_status cdl_ntt_table_new(size_t n, uint64_t q, cdl_ntt_table **out);
void cdl_ntt_table_free(cdl_ntt_table *t);

/* In place, with the active kernel. */
void cdl_ntt_forward(const cdl_ntt_table *t, uint64_t *a);
void cdl_ntt_inverse(const cdl_ntt_table *t, uint64_t *a);

/* With a given kernel (for tests and benchmarks); the kernel must be supported. */
void cdl_ntt_forward_with(const cdl_ntt_table *t, uint64_t *a, cdl_isa isa);
void cdl_ntt_inverse_with(const cdl_ntt_table *t, uint64_t *a, cdl_isa isa);

/* The portable reference kernels. */
void cdl_ntt_forward_portable(const cdl_ntt_table *t, uint64_t *a);
void cdl_ntt_inverse_portable(const cdl_ntt_table *t, uint64_t *a);

/* Kernel selection. cdl_isa_supported: compiled in and the CPU has it. */
int cdl_isa_supported(cdl_isa isa);
cdl_isa cdl_isa_active(void);
/* Force a kernel (CDL_ERR_UNSUPPORTED if not available on this CPU). */
cdl_status cdl_isa_set(cdl_isa isa);
const char *cdl_isa_name(cdl_isa isa);

/* Bit reversal of the low `bits` bits of x. */
static inline size_t cdl_bit_reverse(size_t x, int bits)
{
    size_t r = 0;
    for (int i = 0; i < bits; i++) {
        r = (r << 1) | (x & 1);
        x >>= 1;
    }
    return r;
}

#endif
