/*
 * ntt_kernels.c: CPU feature detection for the vector NTT kernels and the
 * precomputed tables they share (cdl_ntt_kernel_data, see ntt_kernels.h).
 * On targets other than x86-64 with GCC/clang the vector kernels are compiled
 * as stubs (see the bottom of ntt_avx2.c / ntt_avx512.c) and report "not
 * available", so the portable kernel is used.
 */
#include "ring/ntt_kernels.h"

#include "core/memory.h"

int cdl_ntt_avx2_available(void)
{
#if CDL_HAVE_X86_KERNELS
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") ? 1 : 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
#else
    return 0;
#endif
}

int cdl_ntt_avx512_available(void)
{
#if CDL_HAVE_X86_KERNELS
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        /* __builtin_cpu_supports also checks that the OS saves the AVX-512 state. */
        v = (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2"))
                ? 1
                : 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
#else
    return 0;
#endif
}

int cdl_ntt_ifma_available(void)
{
#if CDL_HAVE_X86_KERNELS
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = (cdl_ntt_avx512_available() && __builtin_cpu_supports("avx512ifma")) ? 1 : 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
#else
    return 0;
#endif
}

/* floor(w * 2^52 / q), for w < q < 2^50: the Shoup constant of Harvey's
 * multiplication with a 52-bit word, as computed by IFMA's madd52hi. */
static uint64_t shoup52(uint64_t w, uint64_t q) { return (uint64_t)(((cdl_u128)w << 52) / q); } /* ct-public: roots */

cdl_status cdl_ntt_kernels_prepare(cdl_ntt_table *t)
{
    cdl_ntt_kernel_data *d = cdl_calloc_array(1, sizeof *d);
    if (!d)
        return CDL_ERR_NO_MEMORY;
    t->isa_data = d;
    const uint64_t q = t->mod.value;
    d->last_w = cdl_mod_mul(t->inv_roots[1], t->n_inv, &t->mod);
    d->last_w_shoup = cdl_shoup_precompute(d->last_w, q);
    if (q < ((uint64_t)1 << CDL_IFMA_MODULUS_BITS) && cdl_ntt_ifma_available()) {
        d->roots_shoup52 = cdl_alloc_array(t->n, sizeof(uint64_t));
        d->inv_roots_shoup52 = cdl_alloc_array(t->n, sizeof(uint64_t));
        if (!d->roots_shoup52 || !d->inv_roots_shoup52) {
            cdl_ntt_kernels_release(t);
            return CDL_ERR_NO_MEMORY;
        }
        for (size_t k = 0; k < t->n; k++) {
            d->roots_shoup52[k] = shoup52(t->roots[k], q);
            d->inv_roots_shoup52[k] = shoup52(t->inv_roots[k], q);
        }
        d->n_inv_shoup52 = shoup52(t->n_inv, q);
        d->last_w_shoup52 = shoup52(d->last_w, q);
    }
    return CDL_OK;
}

void cdl_ntt_kernels_release(cdl_ntt_table *t)
{
    cdl_ntt_kernel_data *d = t->isa_data;
    if (!d)
        return;
    cdl_free(d->roots_shoup52);
    cdl_free(d->inv_roots_shoup52);
    cdl_free(d);
    t->isa_data = NULL;
}
