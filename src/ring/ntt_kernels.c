/*
 * ntt_kernels.c: placeholder vector kernels until ntt_avx2.c / ntt_avx512.c
 * exist: they report "not available" and fall back to the portable kernel.
 */
#include "ring/ntt_kernels.h"

cdl_status cdl_ntt_kernels_prepare(cdl_ntt_table *t)
{
    (void)t;
    return CDL_OK;
}

void cdl_ntt_kernels_release(cdl_ntt_table *t) { (void)t; }

int cdl_ntt_avx2_available(void) { return 0; }
void cdl_ntt_forward_avx2(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_forward_portable(t, a); }
void cdl_ntt_inverse_avx2(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_inverse_portable(t, a); }

int cdl_ntt_avx512_available(void) { return 0; }
void cdl_ntt_forward_avx512(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_forward_portable(t, a); }
void cdl_ntt_inverse_avx512(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_inverse_portable(t, a); }
