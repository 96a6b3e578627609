/*
 * ntt_kernels.h: the vector NTT kernels behind ntt.c's dispatch and the
 * precomputation they share. Each kernel file (ntt_avx2.c, ntt_avx512.c) is
 * compiled with function-level target attributes, so the library builds for
 * any x86-64 (no -march flag) and picks a kernel at run time.
 */
#ifndef CDL_RING_NTT_KERNELS_H
#define CDL_RING_NTT_KERNELS_H

#include "ring/ntt.h"

#if (defined(__x86_64__) || defined(_M_X64)) && (defined(__GNUC__) || defined(__clang__))
#define CDL_HAVE_X86_KERNELS 1
#else
#define CDL_HAVE_X86_KERNELS 0
#endif

/* 52-bit Shoup constants (IFMA) are usable when every lazy value, < 4q, fits in 52 bits. */
#define CDL_IFMA_MODULUS_BITS 50

/* Kernel-specific tables, hung on cdl_ntt_table.isa_data by cdl_ntt_kernels_prepare. */
typedef struct cdl_ntt_kernel_data {
    /* The last inverse stage (gap N/2) is fused with the 1/N scaling:
     * x' = (u + v) * n_inv, y' = (u - v) * (psi^-1 * n_inv). */
    uint64_t last_w, last_w_shoup;   /* inv_roots[1] * n_inv mod q, and its 64-bit Shoup constant */
    /* IFMA52 tables, NULL unless q < 2^50 and the CPU has AVX-512 IFMA:
     * floor(w * 2^52 / q) for every forward / inverse root (index as in roots). */
    uint64_t *roots_shoup52;
    uint64_t *inv_roots_shoup52;
    uint64_t n_inv_shoup52, last_w_shoup52;
} cdl_ntt_kernel_data;

/* Kernel-specific tables hung on t->isa_data (called by cdl_ntt_table_new/free). */
cdl_status cdl_ntt_kernels_prepare(cdl_ntt_table *t);
void cdl_ntt_kernels_release(cdl_ntt_table *t);

/* CPU (and OS) support for each kernel, cached after the first call. */
int cdl_ntt_avx2_available(void);
int cdl_ntt_avx512_available(void);
int cdl_ntt_ifma_available(void);

/* The kernels; each needs its *_available() to be true. Sizes too small for
 * the vector layout (N < 8 for AVX2, N < 16 for AVX-512) use the portable code. */
void cdl_ntt_forward_avx2(const cdl_ntt_table *t, uint64_t *a);
void cdl_ntt_inverse_avx2(const cdl_ntt_table *t, uint64_t *a);
void cdl_ntt_forward_avx512(const cdl_ntt_table *t, uint64_t *a);
void cdl_ntt_inverse_avx512(const cdl_ntt_table *t, uint64_t *a);

#endif
