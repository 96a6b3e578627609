/*
 * ntt.c: NTT tables, the portable reference kernels and run-time kernel
 * dispatch. See ntt.h for the conventions.
 */
#include "ring/ntt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/memory.h"
#include "ring/ntt_kernels.h"
#include "ring/primes.h"

cdl_status cdl_ntt_table_new(size_t n, uint64_t q, cdl_ntt_table **out)
{
    *out = NULL;
    if (n < 2 || (n & (n - 1)) != 0 || n > ((size_t)1 << 17))
        return cdl_fail(CDL_ERR_PARAMETERS, "NTT size %zu is not a power of two in 2..2^17", n);
    if (q < 3 || q >> CDL_MODULUS_MAX_BITS)
        return cdl_fail(CDL_ERR_PARAMETERS, "NTT modulus %llu is outside 3..2^61", (unsigned long long)q);
    uint64_t psi = cdl_primitive_root(q, 2 * (uint64_t)n);
    if (!psi)
        return cdl_fail(CDL_ERR_PARAMETERS, "modulus %llu is not = 1 mod 2N (N = %zu): no negacyclic NTT",
                        (unsigned long long)q, n);
    cdl_ntt_table *t = cdl_calloc_array(1, sizeof *t);
    if (!t)
        return CDL_ERR_NO_MEMORY;
    t->n = n;
    t->log_n = __builtin_ctzll(n);
    cdl_modulus_init(&t->mod, q);
    t->psi = psi;
    t->roots = cdl_alloc_array(n, sizeof(uint64_t));
    t->roots_shoup = cdl_alloc_array(n, sizeof(uint64_t));
    t->inv_roots = cdl_alloc_array(n, sizeof(uint64_t));
    t->inv_roots_shoup = cdl_alloc_array(n, sizeof(uint64_t));
    if (!t->roots || !t->roots_shoup || !t->inv_roots || !t->inv_roots_shoup) {
        cdl_ntt_table_free(t);
        return CDL_ERR_NO_MEMORY;
    }
    uint64_t psi_inv = cdl_mod_inv(psi, &t->mod);
    uint64_t power = 1, inv_power = 1;
    for (size_t i = 0; i < n; i++) {
        size_t k = cdl_bit_reverse(i, t->log_n);
        t->roots[k] = power;
        t->inv_roots[k] = inv_power;
        power = cdl_mod_mul(power, psi, &t->mod);
        inv_power = cdl_mod_mul(inv_power, psi_inv, &t->mod);
    }
    for (size_t k = 0; k < n; k++) {
        t->roots_shoup[k] = cdl_shoup_precompute(t->roots[k], q);
        t->inv_roots_shoup[k] = cdl_shoup_precompute(t->inv_roots[k], q);
    }
    t->n_inv = cdl_mod_inv(n % q, &t->mod); /* ct-public: N and q */
    t->n_inv_shoup = cdl_shoup_precompute(t->n_inv, q);
    cdl_status st = cdl_ntt_kernels_prepare(t);
    if (st != CDL_OK) {
        cdl_ntt_table_free(t);
        return st;
    }
    *out = t;
    return CDL_OK;
}

void cdl_ntt_table_free(cdl_ntt_table *t)
{
    if (!t)
        return;
    cdl_ntt_kernels_release(t);
    cdl_free(t->roots);
    cdl_free(t->roots_shoup);
    cdl_free(t->inv_roots);
    cdl_free(t->inv_roots_shoup);
    cdl_free(t);
}

/* x - m if x >= m, else x, for x, m < 2^63: the top bit of x - m says
 * whether it went negative. Branch-free (the NTT runs on secret data) and
 * cheaper than cdl_reduce_once's general form, which GCC turns into a setcc
 * and two masks; every lazy NTT value is below 4q < 2^63. */
static inline uint64_t sub_if_ge(uint64_t x, uint64_t m)
{
    uint64_t d = x - m;
    return d + (m & (0 - (d >> 63)));
}

/* Cooley-Tukey, decimation in time; values stay below 4q between stages. */
void cdl_ntt_forward_portable(const cdl_ntt_table *t, uint64_t *a)
{
    const uint64_t q = t->mod.value, two_q = 2 * q;
    const size_t n = t->n;
    for (size_t m = 1, gap = n >> 1; m < n; m <<= 1, gap >>= 1) {
        for (size_t i = 0; i < m; i++) {
            const uint64_t w = t->roots[m + i], ws = t->roots_shoup[m + i];
            uint64_t *x = a + 2 * i * gap, *y = x + gap;
            for (size_t j = 0; j < gap; j++) {
                uint64_t u = sub_if_ge(x[j], two_q);
                uint64_t v = cdl_mul_shoup_lazy(y[j], w, ws, q);
                x[j] = u + v;
                y[j] = u - v + two_q;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        a[i] = sub_if_ge(sub_if_ge(a[i], two_q), q);
}

/* Gentleman-Sande, decimation in frequency; the 1/N factor is applied at the end. */
void cdl_ntt_inverse_portable(const cdl_ntt_table *t, uint64_t *a)
{
    const uint64_t q = t->mod.value, two_q = 2 * q;
    const size_t n = t->n;
    for (size_t m = n >> 1, gap = 1; m >= 1; m >>= 1, gap <<= 1) {
        for (size_t i = 0; i < m; i++) {
            const uint64_t w = t->inv_roots[m + i], ws = t->inv_roots_shoup[m + i];
            uint64_t *x = a + 2 * i * gap, *y = x + gap;
            for (size_t j = 0; j < gap; j++) {
                uint64_t u = x[j], v = y[j];
                x[j] = sub_if_ge(u + v, two_q);
                y[j] = cdl_mul_shoup_lazy(u - v + two_q, w, ws, q);
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        a[i] = cdl_mul_shoup(a[i], t->n_inv, t->n_inv_shoup, q);
}

/* ---- dispatch ---- */

static const char *isa_names[CDL_ISA_COUNT] = {"portable", "avx2", "avx512"};
static int active_isa = -1;

const char *cdl_isa_name(cdl_isa isa) { return (unsigned)isa < CDL_ISA_COUNT ? isa_names[isa] : "unknown"; }

int cdl_isa_supported(cdl_isa isa)
{
    switch (isa) {
    case CDL_ISA_PORTABLE: return 1;
    case CDL_ISA_AVX2: return cdl_ntt_avx2_available();
    case CDL_ISA_AVX512: return cdl_ntt_avx512_available();
    default: return 0;
    }
}

static cdl_isa isa_default(void)
{
    const char *env = getenv("CDL_ISA");
    if (env && env[0]) {
        for (int i = 0; i < CDL_ISA_COUNT; i++) {
            if (strcmp(env, isa_names[i]) == 0) {
                if (cdl_isa_supported((cdl_isa)i))
                    return (cdl_isa)i;
                fprintf(stderr, "cryptodl: CDL_ISA=%s is not supported on this CPU/build; using portable\n", env);
                return CDL_ISA_PORTABLE;
            }
        }
        fprintf(stderr, "cryptodl: unknown CDL_ISA=%s (portable|avx2|avx512); using the best available\n", env);
    }
    if (cdl_isa_supported(CDL_ISA_AVX512))
        return CDL_ISA_AVX512;
    if (cdl_isa_supported(CDL_ISA_AVX2))
        return CDL_ISA_AVX2;
    return CDL_ISA_PORTABLE;
}

cdl_isa cdl_isa_active(void)
{
    int isa = __atomic_load_n(&active_isa, __ATOMIC_ACQUIRE);
    if (isa < 0) {
        isa = (int)isa_default();
        __atomic_store_n(&active_isa, isa, __ATOMIC_RELEASE);
    }
    return (cdl_isa)isa;
}

cdl_status cdl_isa_set(cdl_isa isa)
{
    if (!cdl_isa_supported(isa))
        return cdl_fail(CDL_ERR_UNSUPPORTED, "NTT kernel '%s' is not available on this CPU or build", cdl_isa_name(isa));
    __atomic_store_n(&active_isa, (int)isa, __ATOMIC_RELEASE);
    return CDL_OK;
}

void cdl_ntt_forward_with(const cdl_ntt_table *t, uint64_t *a, cdl_isa isa)
{
    switch (isa) {
    case CDL_ISA_AVX512: cdl_ntt_forward_avx512(t, a); break;
    case CDL_ISA_AVX2: cdl_ntt_forward_avx2(t, a); break;
    default: cdl_ntt_forward_portable(t, a); break;
    }
}

void cdl_ntt_inverse_with(const cdl_ntt_table *t, uint64_t *a, cdl_isa isa)
{
    switch (isa) {
    case CDL_ISA_AVX512: cdl_ntt_inverse_avx512(t, a); break;
    case CDL_ISA_AVX2: cdl_ntt_inverse_avx2(t, a); break;
    default: cdl_ntt_inverse_portable(t, a); break;
    }
}

void cdl_ntt_forward(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_forward_with(t, a, cdl_isa_active()); }

void cdl_ntt_inverse(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_inverse_with(t, a, cdl_isa_active()); }
