/*
 * rns_poly.c: limb-wise RNS polynomial arithmetic (see rns_poly.h). The loops
 * are branch-free (conditional subtractions via masks) so they may touch
 * secret data; OpenMP splits the limbs, one thread per limb.
 */
#include "ring/rns_poly.h"

void cdl_poly_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, uint64_t q)
{
    for (size_t k = 0; k < n; k++)
        out[k] = cdl_mod_add(a[k], b[k], q);
}

void cdl_poly_sub(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, uint64_t q)
{
    for (size_t k = 0; k < n; k++)
        out[k] = cdl_mod_sub(a[k], b[k], q);
}

void cdl_poly_neg(uint64_t *out, const uint64_t *a, size_t n, uint64_t q)
{
    for (size_t k = 0; k < n; k++)
        out[k] = cdl_mod_neg(a[k], q);
}

void cdl_poly_mul(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *m)
{
    for (size_t k = 0; k < n; k++)
        out[k] = cdl_mod_mul(a[k], b[k], m);
}

void cdl_poly_mul_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *m)
{
    for (size_t k = 0; k < n; k++)
        out[k] = cdl_mod_add(out[k], cdl_mod_mul(a[k], b[k], m), m->value);
}

void cdl_poly_mul_scalar(uint64_t *out, const uint64_t *a, uint64_t c, size_t n, uint64_t q)
{
    uint64_t cs = cdl_shoup_precompute(c, q);
    for (size_t k = 0; k < n; k++)
        out[k] = cdl_mul_shoup(a[k], c, cs, q);
}

void cdl_poly_add_scalar(uint64_t *out, const uint64_t *a, uint64_t c, size_t n, uint64_t q)
{
    for (size_t k = 0; k < n; k++)
        out[k] = cdl_mod_add(a[k], c, q);
}

/* Encryption and key generation convert every small polynomial once per
 * prime; the loop vectorizes, so x86-64 builds get AVX-512/AVX2 clones
 * picked at load time (same results: plain integer code). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
void cdl_poly_from_small(uint64_t *out, const int8_t *a, size_t n, uint64_t q)
{
    for (size_t k = 0; k < n; k++) {
        int64_t v = a[k];
        out[k] = (uint64_t)v + (q & (uint64_t)(v >> 63));
    }
}

#define LIMB(p, i) ((p) + (size_t)(i) * n)

void cdl_rns_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *mods, int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_poly_add(LIMB(out, i), LIMB(a, i), LIMB(b, i), n, mods[i].value);
}

void cdl_rns_sub(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *mods, int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_poly_sub(LIMB(out, i), LIMB(a, i), LIMB(b, i), n, mods[i].value);
}

void cdl_rns_neg(uint64_t *out, const uint64_t *a, size_t n, const cdl_modulus *mods, int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_poly_neg(LIMB(out, i), LIMB(a, i), n, mods[i].value);
}

void cdl_rns_mul(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *mods, int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_poly_mul(LIMB(out, i), LIMB(a, i), LIMB(b, i), n, &mods[i]);
}

void cdl_rns_mul_add(uint64_t *out, const uint64_t *a, const uint64_t *b, size_t n, const cdl_modulus *mods,
                     int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_poly_mul_add(LIMB(out, i), LIMB(a, i), LIMB(b, i), n, &mods[i]);
}

void cdl_rns_mul_scalar(uint64_t *out, const uint64_t *a, const uint64_t *c, size_t n, const cdl_modulus *mods,
                        int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_poly_mul_scalar(LIMB(out, i), LIMB(a, i), c[i], n, mods[i].value);
}

void cdl_rns_add_scalar(uint64_t *out, const uint64_t *a, const uint64_t *c, size_t n, const cdl_modulus *mods,
                        int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_poly_add_scalar(LIMB(out, i), LIMB(a, i), c[i], n, mods[i].value);
}

void cdl_rns_from_small(uint64_t *out, const int8_t *a, size_t n, const cdl_modulus *mods, int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_poly_from_small(LIMB(out, i), a, n, mods[i].value);
}

void cdl_rns_ntt_forward(uint64_t *a, size_t n, cdl_ntt_table *const *tables, int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_ntt_forward(tables[i], LIMB(a, i));
}

void cdl_rns_ntt_inverse(uint64_t *a, size_t n, cdl_ntt_table *const *tables, int limbs)
{
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++)
        cdl_ntt_inverse(tables[i], LIMB(a, i));
}
