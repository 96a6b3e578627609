/*
 * ntt_kernels.h: the vector NTT kernels behind ntt.c's dispatch. Each kernel
 * file is compiled with function-level target attributes, so the library
 * builds for any x86-64 and chooses at run time.
 */
#ifndef CDL_RING_NTT_KERNELS_H
#define CDL_RING_NTT_KERNELS_H

#include "ring/ntt.h"

/* Kernel-specific tables hung on t->isa_data (called by cdl_ntt_table_new/free). */
cdl_status cdl_ntt_kernels_prepare(cdl_ntt_table *t);
void cdl_ntt_kernels_release(cdl_ntt_table *t);

int cdl_ntt_avx2_available(void);
void cdl_ntt_forward_avx2(const cdl_ntt_table *t, uint64_t *a);
void cdl_ntt_inverse_avx2(const cdl_ntt_table *t, uint64_t *a);

int cdl_ntt_avx512_available(void);
void cdl_ntt_forward_avx512(const cdl_ntt_table *t, uint64_t *a);
void cdl_ntt_inverse_avx512(const cdl_ntt_table *t, uint64_t *a);

#endif
