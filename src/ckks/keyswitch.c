/*
 * keyswitch.c: hybrid key switching (see keyswitch.h): digit decomposition
 * with ModUp, the inner product with a key-switching key (lazy 128-bit
 * accumulation), ModDown, and key-switching key generation.
 * Parallel loops run over independent (digit, limb) items or limbs only, so
 * results are bit-identical for any thread count.
 */
#include "ckks/keyswitch.h"

#include <string.h>

#include "core/error.h"
#include "core/memory.h"
#include "ring/rns_poly.h"
#include "ring/sampler.h"

static inline int ext_prime(const cdl_ckks_context *ctx, int level, int t)
{
    return t <= level ? t : ctx->q_count + (t - level - 1);
}

cdl_status cdl_ckks_ks_decompose(const cdl_ckks_context *ctx, const uint64_t *c, int level, uint64_t *digits)
{
    const size_t n = ctx->n;
    const int limbs = level + 1, ext = level + 1 + ctx->p_count, alpha = ctx->alpha;
    const int dcount = cdl_ckks_digit_count(ctx, level);
    uint64_t *cc = cdl_alloc_array((size_t)limbs * n, sizeof(uint64_t));
    uint64_t *y = cdl_alloc_array((size_t)limbs * n, sizeof(uint64_t));
    if (!cc || !y) {
        cdl_free(cc);
        cdl_free(y);
        return CDL_ERR_NO_MEMORY;
    }
    memcpy(cc, c, (size_t)limbs * n * sizeof(uint64_t));
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int i = 0; i < limbs; i++)
            cdl_ntt_inverse(ctx->ntt[i], cc + (size_t)i * n);
#pragma omp for schedule(static)
        for (int d = 0; d < dcount; d++) {
            int first = d * alpha, last = (d + 1) * alpha < limbs ? (d + 1) * alpha - 1 : limbs - 1;
            cdl_base_convert_prepare(&ctx->modup[last], cc + (size_t)first * n, y + (size_t)first * n, n);
        }
#pragma omp for schedule(static)
        for (int item = 0; item < dcount * ext; item++) {
            int d = item / ext, t = item % ext;
            int first = d * alpha, last = (d + 1) * alpha < limbs ? (d + 1) * alpha - 1 : limbs - 1;
            int p = ext_prime(ctx, level, t);
            uint64_t *out = digits + (size_t)item * n;
            if (p >= first && p <= last) {
                memcpy(out, c + (size_t)p * n, n * sizeof(uint64_t));
            } else {
                cdl_base_convert_limb(&ctx->modup[last], y + (size_t)first * n, p, out, n);
                cdl_ntt_forward(ctx->ntt[p], out);
            }
        }
    }
    cdl_free(cc);
    cdl_free(y);
    return CDL_OK;
}

cdl_status cdl_ckks_ks_apply(const cdl_ckks_context *ctx, const uint64_t *digits, int level, const cdl_ckks_ksk *key,
                             const uint32_t *perm, uint64_t *out0, uint64_t *out1)
{
    const size_t n = ctx->n;
    const int limbs = level + 1, ext = level + 1 + ctx->p_count, K = ctx->p_count;
    const int dcount = cdl_ckks_digit_count(ctx, level);
    uint64_t *acc = cdl_alloc_array(2 * (size_t)ext * n, sizeof(uint64_t));
    uint64_t *yp = cdl_alloc_array(2 * (size_t)K * n, sizeof(uint64_t));
    uint64_t *conv = cdl_alloc_array(2 * (size_t)limbs * n, sizeof(uint64_t));
    if (!acc || !yp || !conv) {
        cdl_free(acc), cdl_free(yp), cdl_free(conv);
        return CDL_ERR_NO_MEMORY;
    }
    uint64_t *acc0 = acc, *acc1 = acc + (size_t)ext * n;
#pragma omp parallel
    {
        /* Inner product over digits, per extended limb. */
#pragma omp for schedule(static)
        for (int t = 0; t < ext; t++) {
            int p = ext_prime(ctx, level, t);
            const cdl_modulus *m = &ctx->mod[p];
            const int lazy = cdl_lazy_products(m);
            uint64_t *o0 = acc0 + (size_t)t * n, *o1 = acc1 + (size_t)t * n;
            for (size_t k = 0; k < n; k++) {
                size_t src = perm ? perm[k] : k;
                cdl_u128 s0 = 0, s1 = 0;
                int cnt = 0;
                for (int d = 0; d < dcount; d++) {
                    uint64_t x = digits[((size_t)d * (size_t)ext + (size_t)t) * n + src];
                    s0 += (cdl_u128)x * cdl_ksk_poly(key, d, 0, p)[k];
                    s1 += (cdl_u128)x * cdl_ksk_poly(key, d, 1, p)[k];
                    if (++cnt == lazy) {
                        s0 = cdl_barrett_reduce_128(s0, m);
                        s1 = cdl_barrett_reduce_128(s1, m);
                        cnt = 1;
                    }
                }
                o0[k] = cdl_barrett_reduce_128(s0, m);
                o1[k] = cdl_barrett_reduce_128(s1, m);
            }
        }
        /* ModDown: the P part to coefficients, convert to Q_l, subtract, times P^-1. */
#pragma omp for schedule(static)
        for (int item = 0; item < 2 * K; item++) {
            int comp = item / K, j = item % K;
            uint64_t *a = (comp ? acc1 : acc0) + (size_t)(limbs + j) * n;
            cdl_ntt_inverse(ctx->ntt[ctx->q_count + j], a);
        }
#pragma omp for schedule(static)
        for (int comp = 0; comp < 2; comp++)
            cdl_base_convert_prepare(&ctx->moddown, (comp ? acc1 : acc0) + (size_t)limbs * n,
                                     yp + (size_t)comp * K * n, n);
#pragma omp for schedule(static)
        for (int item = 0; item < 2 * limbs; item++) {
            int comp = item / limbs, i = item % limbs;
            uint64_t *cv = conv + (size_t)item * n;
            cdl_base_convert_limb(&ctx->moddown, yp + (size_t)comp * K * n, i, cv, n);
            cdl_ntt_forward(ctx->ntt[i], cv);
            const uint64_t *a = (comp ? acc1 : acc0) + (size_t)i * n;
            uint64_t *o = (comp ? out1 : out0) + (size_t)i * n;
            uint64_t q = ctx->primes[i], w = ctx->p_inv_mod_q[i], ws = ctx->p_inv_mod_q_shoup[i];
            for (size_t k = 0; k < n; k++)
                o[k] = cdl_mul_shoup(a[k] + q - cv[k], w, ws, q);
        }
    }
    cdl_free(acc), cdl_free(yp), cdl_free(conv);
    return CDL_OK;
}

cdl_status cdl_ckks_ksk_generate(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, const uint64_t *s_from,
                                 cdl_rng *rng, cdl_ckks_ksk *key)
{
    const size_t n = ctx->n;
    const int qp = ctx->qp_count;
    int8_t *e = cdl_secure_calloc(n, 1);
    uint64_t *ee = cdl_secure_calloc((size_t)qp * n, sizeof(uint64_t));
    if (!e || !ee) {
        if (e)
            cdl_secure_free(e, n);
        if (ee)
            cdl_secure_free(ee, (size_t)qp * n * sizeof(uint64_t));
        return CDL_ERR_NO_MEMORY;
    }
    for (int d = 0; d < ctx->dnum; d++) {
        for (int i = 0; i < qp; i++)
            cdl_sample_uniform(rng, ctx->primes[i], cdl_ksk_poly(key, d, 1, i), n);
        cdl_sample_cbd(rng, e, n);
        int first = d * ctx->alpha, last = first + ctx->alpha - 1;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < qp; i++) {
            uint64_t *ei = ee + (size_t)i * n, *b = cdl_ksk_poly(key, d, 0, i);
            const uint64_t *a = cdl_ksk_poly(key, d, 1, i), *s = sk->s + (size_t)i * n;
            cdl_poly_from_small(ei, e, n, ctx->primes[i]);
            cdl_ntt_forward(ctx->ntt[i], ei);
            cdl_poly_mul(b, a, s, n, &ctx->mod[i]);
            cdl_poly_sub(b, ei, b, n, ctx->primes[i]); /* b = e - a s */
            if (i >= first && i <= last && i < ctx->q_count) {
                /* + P * g_d * s': g_d = 1 mod the digit's primes, 0 mod the other Q primes and mod P */
                uint64_t q = ctx->primes[i], w = ctx->p_mod_q[i], ws = ctx->p_mod_q_shoup[i];
                const uint64_t *sf = s_from + (size_t)i * n;
                for (size_t k = 0; k < n; k++)
                    b[k] = cdl_mod_add(b[k], cdl_mul_shoup(sf[k], w, ws, q), q);
            }
        }
    }
    cdl_secure_free(e, n);
    cdl_secure_free(ee, (size_t)qp * n * sizeof(uint64_t));
    return CDL_OK;
}
