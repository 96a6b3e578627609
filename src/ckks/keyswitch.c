/*
 * keyswitch.c: hybrid key switching (see keyswitch.h): digit decomposition
 * with ModUp, the inner product with a key-switching key (lazy 128-bit
 * accumulation), ModDown, and key-switching key generation.
 * Parallel loops run over independent (digit, limb) items or limbs only, so
 * results are bit-identical for any thread count.
 */
#include "ckks/keyswitch.h"

#include <string.h>

#include <omp.h>

#include "core/error.h"
#include "core/memory.h"
#include "ring/rns_kernels.h"
#include "ring/rns_poly.h"
#include "ring/sampler.h"

static inline int ext_prime(const cdl_ckks_context *ctx, int level, int t)
{
    return t <= level ? t : ctx->q_count + (t - level - 1);
}

/* Last step of ModDown on limb i: o = (a - cv) * P^-1 mod q_i, plus o's
 * previous contents when add is set (fused accumulation into a ciphertext). */
static void moddown_finish(const cdl_ckks_context *ctx, int i, uint64_t *o, const uint64_t *a, const uint64_t *cv,
                           int add)
{
    const size_t n = ctx->n;
    uint64_t q = ctx->primes[i], w = ctx->p_inv_mod_q[i], ws = ctx->p_inv_mod_q_shoup[i];
    if (cdl_rns_vector_enabled(n)) {
        cdl_sub_mul_scalar_avx512(o, add ? o : NULL, a, cv, w, ws, q, n);
        return;
    }
    if (add) {
        for (size_t k = 0; k < n; k++)
            o[k] = cdl_mod_add(o[k], cdl_mul_shoup(a[k] + q - cv[k], w, ws, q), q);
        return;
    }
    for (size_t k = 0; k < n; k++)
        o[k] = cdl_mul_shoup(a[k] + q - cv[k], w, ws, q);
}

/* INTT copies of c's limbs and the per-digit first step of the base conversion. */
static void modup_prepare(const cdl_ckks_context *ctx, const uint64_t *c, int level, uint64_t *cc, uint64_t *y)
{
    const size_t n = ctx->n;
    const int limbs = level + 1, alpha = ctx->alpha;
    const int dcount = cdl_ckks_digit_count(ctx, level);
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
    }
}

/* Digit d of c, extended limb t (ctx prime p), NTT form: either c's own limb
 * (p inside the digit; returned without copying) or converted into buf. */
static const uint64_t *digit_limb(const cdl_ckks_context *ctx, const uint64_t *c, const uint64_t *y, int level, int d,
                                  int p, uint64_t *buf)
{
    const size_t n = ctx->n;
    const int limbs = level + 1, alpha = ctx->alpha;
    int first = d * alpha, last = (d + 1) * alpha < limbs ? (d + 1) * alpha - 1 : limbs - 1;
    if (p >= first && p <= last)
        return c + (size_t)p * n;
    cdl_base_convert_limb(&ctx->modup[last], y + (size_t)first * n, p, buf, n);
    cdl_ntt_forward(ctx->ntt[p], buf);
    return buf;
}

cdl_status cdl_ckks_ks_decompose(const cdl_ckks_context *ctx, const uint64_t *c, int level, uint64_t *digits)
{
    const size_t n = ctx->n;
    const int limbs = level + 1, ext = level + 1 + ctx->p_count;
    const int dcount = cdl_ckks_digit_count(ctx, level);
    uint64_t *cc = cdl_ckks_scratch(CDL_SCRATCH_KS_CC, (size_t)limbs * n);
    uint64_t *y = cdl_ckks_scratch(CDL_SCRATCH_KS_Y, (size_t)limbs * n);
    if (!cc || !y)
        return cdl_fail(CDL_ERR_NO_MEMORY, "key switching: out of memory");
    modup_prepare(ctx, c, level, cc, y);
#pragma omp parallel for schedule(static)
    for (int item = 0; item < dcount * ext; item++) {
        int d = item / ext, t = item % ext; /* ct-public: loop indexes */
        uint64_t *out = digits + (size_t)item * n;
        const uint64_t *src = digit_limb(ctx, c, y, level, d, ext_prime(ctx, level, t), out);
        if (src != out)
            memcpy(out, src, n * sizeof(uint64_t));
    }
    return CDL_OK;
}

/* o0, o1 = sum_d x_d[perm(k)] * (k0_d, k1_d)[k] mod q, with lazy 128-bit sums
 * in acc (2n entries). Digit-outer: each pass streams one digit limb and the
 * two key halves front to back over all n coefficients, which the hardware
 * prefetchers follow; the key is the largest operand (dnum * 2 * (L+K+1)
 * limbs) and this loop is memory-bound. (Blocking the coefficients, or
 * coefficient-outer loops over all digits, measured 10-45% slower at N=2^14.) */
static void mac_limb(const uint64_t *const *x, const uint64_t *const *k0, const uint64_t *const *k1, int dcount,
                     const uint32_t *perm, const cdl_modulus *m, cdl_u128 *restrict acc, uint64_t *restrict o0,
                     uint64_t *restrict o1, size_t n)
{
    if (dcount <= CDL_MAC_IFMA_MAX_DIGITS && m->value < ((uint64_t)1 << 50) && cdl_rns_vector_enabled(n)) {
        cdl_mac_ifma(x, k0, k1, dcount, perm, m->value, o0, o1, n);
        return;
    }
    const int lazy = cdl_lazy_products(m);
    cdl_u128 *s0 = acc, *s1 = acc + n;
    memset(acc, 0, 2 * n * sizeof(cdl_u128));
    int cnt = 0;
    for (int d = 0; d < dcount;) {
        /* two digits per pass when the lazy budget allows: half the
         * accumulator read-modify-write traffic */
        if (d + 1 < dcount && cnt + 2 <= lazy) {
            const uint64_t *xa = x[d], *xb = x[d + 1];
            const uint64_t *a0 = k0[d], *b0 = k1[d], *a1 = k0[d + 1], *b1 = k1[d + 1];
            if (perm) {
                for (size_t k = 0; k < n; k++) {
                    uint64_t va = xa[perm[k]], vb = xb[perm[k]];
                    s0[k] += (cdl_u128)va * a0[k] + (cdl_u128)vb * a1[k];
                    s1[k] += (cdl_u128)va * b0[k] + (cdl_u128)vb * b1[k];
                }
            } else {
                for (size_t k = 0; k < n; k++) {
                    uint64_t va = xa[k], vb = xb[k];
                    s0[k] += (cdl_u128)va * a0[k] + (cdl_u128)vb * a1[k];
                    s1[k] += (cdl_u128)va * b0[k] + (cdl_u128)vb * b1[k];
                }
            }
            d += 2;
            cnt += 2;
        } else {
            const uint64_t *xd = x[d], *a = k0[d], *b = k1[d];
            if (perm) {
                for (size_t k = 0; k < n; k++) {
                    uint64_t v = xd[perm[k]];
                    s0[k] += (cdl_u128)v * a[k];
                    s1[k] += (cdl_u128)v * b[k];
                }
            } else {
                for (size_t k = 0; k < n; k++) {
                    uint64_t v = xd[k];
                    s0[k] += (cdl_u128)v * a[k];
                    s1[k] += (cdl_u128)v * b[k];
                }
            }
            d += 1;
            cnt += 1;
        }
        if (cnt >= lazy && d < dcount) {
            for (size_t k = 0; k < n; k++) {
                s0[k] = cdl_reduce_u126(s0[k], m);
                s1[k] = cdl_reduce_u126(s1[k], m);
            }
            cnt = 1;
        }
    }
    for (size_t k = 0; k < n; k++) {
        o0[k] = cdl_reduce_u126(s0[k], m);
        o1[k] = cdl_reduce_u126(s1[k], m);
    }
}

/* Inner products for `count` keys (and automorphisms) of the same input,
 * digits stored or computed limb by limb from c when digits is NULL (each
 * digit limb is then built once and reused from cache by every key: this is
 * the hoisting of Halevi-Shoup), followed by ModDown of every result
 * (add_mask bit c: add component c into the output instead of storing it). */
static cdl_status ks_multi(const cdl_ckks_context *ctx, const uint64_t *digits, const uint64_t *c, int level,
                           const cdl_ckks_ksk *const *keys, const uint32_t *const *perms, int count,
                           uint64_t *const *out0, uint64_t *const *out1, int add_mask)
{
    const size_t n = ctx->n;
    const int limbs = level + 1, ext = level + 1 + ctx->p_count, K = ctx->p_count;
    const int dcount = cdl_ckks_digit_count(ctx, level);
    const int threads = omp_get_max_threads();
    const size_t cnt = (size_t)count;
    uint64_t *acc = cdl_ckks_scratch(CDL_SCRATCH_KS_ACC, cnt * 2 * (size_t)ext * n);
    uint64_t *yp = cdl_ckks_scratch(CDL_SCRATCH_KS_YP, cnt * 2 * (size_t)K * n);
    uint64_t *conv = cdl_ckks_scratch(CDL_SCRATCH_KS_CONV, (size_t)threads * n);
    uint64_t *macs = cdl_ckks_scratch(CDL_SCRATCH_KS_MAC, (size_t)threads * 4 * n); /* 2n u128 per thread */
    uint64_t *cc = NULL, *y = NULL, *bufs = NULL;
    if (!acc || !yp || !conv || !macs)
        return cdl_fail(CDL_ERR_NO_MEMORY, "key switching: out of memory");
    if (!digits) {
        if (!c)
            return cdl_fail(CDL_ERR_INTERNAL, "key switching: neither digits nor a polynomial given");
        cc = cdl_ckks_scratch(CDL_SCRATCH_KS_CC, (size_t)limbs * n);
        y = cdl_ckks_scratch(CDL_SCRATCH_KS_Y, (size_t)limbs * n);
        /* per thread: the digit limbs of one target limb, and (several keys
         * with permutations: hoisted rotations) their permuted copies */
        bufs = cdl_ckks_scratch(CDL_SCRATCH_KS_BUFS, (size_t)threads * (size_t)(2 * dcount) * n);
        if (!cc || !y || !bufs)
            return cdl_fail(CDL_ERR_NO_MEMORY, "key switching: out of memory");
        modup_prepare(ctx, c, level, cc, y);
    }
    /* acc for key r, component comp, extended limb t at ((r*2 + comp)*ext + t)*n */
#define ACC(r, comp, t) (acc + (((size_t)(r) * 2 + (size_t)(comp)) * (size_t)ext + (size_t)(t)) * n)
#pragma omp parallel
    {
        const uint64_t *x[CDL_CKKS_MAX_PRIMES], *k0[CDL_CKKS_MAX_PRIMES], *k1[CDL_CKKS_MAX_PRIMES];
        uint64_t *buf = bufs ? bufs + (size_t)omp_get_thread_num() * (size_t)(2 * dcount) * n : NULL;
        uint64_t *pbuf = buf ? buf + (size_t)dcount * n : NULL;
        const uint64_t *xp[CDL_CKKS_MAX_PRIMES];
        cdl_u128 *mac = (cdl_u128 *)(void *)(macs + (size_t)omp_get_thread_num() * 4 * n);
        uint64_t *cv = conv + (size_t)omp_get_thread_num() * n;
        /* Inner product over digits, per extended limb. */
#pragma omp for schedule(static)
        for (int t = 0; t < ext; t++) {
            int p = ext_prime(ctx, level, t);
            for (int d = 0; d < dcount; d++) {
                if (digits)
                    x[d] = digits + ((size_t)d * (size_t)ext + (size_t)t) * n;
                else
                    x[d] = digit_limb(ctx, c, y, level, d, p, buf + (size_t)d * n);
            }
            for (int r = 0; r < count; r++) {
                for (int d = 0; d < dcount; d++) {
                    k0[d] = cdl_ksk_poly(keys[r], d, 0, p);
                    k1[d] = cdl_ksk_poly(keys[r], d, 1, p);
                }
                if (perms && pbuf) {
                    /* Hoisted rotations: permute the digit limbs one at a time
                     * (the gathers stay inside one limb, cache-resident), then
                     * a gather-free inner product. Reading all digit limbs
                     * through the permutation inside the inner product touches
                     * dcount limbs at random and measured slower than single
                     * rotations. Same values, so bit-identical. */
                    const uint32_t *pm = perms[r];
                    for (int d = 0; d < dcount; d++) {
                        const uint64_t *src = x[d];
                        uint64_t *dst = pbuf + (size_t)d * n;
                        for (size_t k = 0; k < n; k++)
                            dst[k] = src[pm[k]];
                        xp[d] = dst;
                    }
                    mac_limb(xp, k0, k1, dcount, NULL, &ctx->mod[p], mac, ACC(r, 0, t), ACC(r, 1, t), n);
                    continue;
                }
                mac_limb(x, k0, k1, dcount, perms ? perms[r] : NULL, &ctx->mod[p], mac, ACC(r, 0, t), ACC(r, 1, t),
                         n);
            }
        }
        /* ModDown: the P part to coefficients, convert to Q_l, subtract, times P^-1. */
#pragma omp for schedule(static)
        for (int item = 0; item < count * 2 * K; item++) {
            int rc = item / K, j = item % K;
            cdl_ntt_inverse(ctx->ntt[ctx->q_count + j], ACC(rc / 2, rc % 2, limbs + j));
        }
#pragma omp for schedule(static)
        for (int rc = 0; rc < count * 2; rc++)
            cdl_base_convert_prepare(&ctx->moddown, ACC(rc / 2, rc % 2, limbs), yp + (size_t)rc * K * n, n);
#pragma omp for schedule(static)
        for (int item = 0; item < count * 2 * limbs; item++) {
            int rc = item / limbs, i = item % limbs; /* ct-public: loop indexes */
            cdl_base_convert_limb(&ctx->moddown, yp + (size_t)rc * K * n, i, cv, n);
            cdl_ntt_forward(ctx->ntt[i], cv);
            const uint64_t *a = ACC(rc / 2, rc % 2, i);
            uint64_t *o = (rc % 2 ? out1[rc / 2] : out0[rc / 2]) + (size_t)i * n;
            moddown_finish(ctx, i, o, a, cv, (add_mask >> (rc % 2)) & 1);
        }
    }
#undef ACC
    return CDL_OK;
}

cdl_status cdl_ckks_ks_apply(const cdl_ckks_context *ctx, const uint64_t *digits, int level, const cdl_ckks_ksk *key,
                             const uint32_t *perm, uint64_t *out0, uint64_t *out1)
{
    return ks_multi(ctx, digits, NULL, level, &key, perm ? &perm : NULL, 1, &out0, &out1, 0);
}

cdl_status cdl_ckks_keyswitch(const cdl_ckks_context *ctx, const uint64_t *c, int level, const cdl_ckks_ksk *key,
                              const uint32_t *perm, uint64_t *out0, uint64_t *out1)
{
    return ks_multi(ctx, NULL, c, level, &key, perm ? &perm : NULL, 1, &out0, &out1, 0);
}

cdl_status cdl_ckks_keyswitch_add(const cdl_ckks_context *ctx, const uint64_t *c, int level, const cdl_ckks_ksk *key,
                                  uint64_t *out0, uint64_t *out1, int add_mask)
{
    return ks_multi(ctx, NULL, c, level, &key, NULL, 1, &out0, &out1, add_mask);
}

cdl_status cdl_ckks_keyswitch_multi(const cdl_ckks_context *ctx, const uint64_t *c, int level,
                                    const cdl_ckks_ksk *const *keys, const uint32_t *const *perms, int count,
                                    uint64_t *const *out0, uint64_t *const *out1, int add0)
{
    if (count < 1)
        return CDL_OK;
    return ks_multi(ctx, NULL, c, level, keys, perms, count, out0, out1, add0 ? 1 : 0);
}

/* Rotations whose permuted switched pairs are kept at once, per thread and limb. */
#define DH_BATCH 16
/* Terms per inner product (mac_limb's IFMA kernel takes at most this many). */
#define DH_TERMS CDL_MAC_IFMA_MAX_DIGITS

/* o0, o1 = (or +=, with add) sum_u pt[u] * (w0[u], w1[u]) for u < cnt,
 * through the key-switching inner product (lazy 128-bit sums, one reduction);
 * tmp: 2n words, used when adding. */
static void dot_limb(const uint64_t *const *pt, const uint64_t *const *w0, const uint64_t *const *w1, int cnt,
                     const cdl_modulus *m, cdl_u128 *mac, uint64_t *tmp, uint64_t *o0, uint64_t *o1, int add,
                     size_t n)
{
    for (int u0 = 0; u0 < cnt; u0 += DH_TERMS, add = 1) {
        const int c = cnt - u0 < DH_TERMS ? cnt - u0 : DH_TERMS;
        if (!add) {
            mac_limb(pt + u0, w0 + u0, w1 + u0, c, NULL, m, mac, o0, o1, n);
            continue;
        }
        uint64_t *t0 = tmp, *t1 = tmp + n;
        const uint64_t q = m->value;
        mac_limb(pt + u0, w0 + u0, w1 + u0, c, NULL, m, mac, t0, t1, n);
        for (size_t k = 0; k < n; k++) {
            o0[k] = cdl_mod_add(o0[k], t0[k], q);
            o1[k] = cdl_mod_add(o1[k], t1[k], q);
        }
    }
}

cdl_status cdl_ckks_keyswitch_rotate_dot(const cdl_ckks_context *ctx, const uint64_t *c0, const uint64_t *c1,
                                         int level, const cdl_ckks_ksk *const *keys, const uint32_t *const *perms,
                                         int count, const cdl_ckks_plaintext *const *pts, int groups,
                                         uint64_t *const *out0, uint64_t *const *out1)
{
    const size_t n = ctx->n;
    const int limbs = level + 1, ext = level + 1 + ctx->p_count, K = ctx->p_count;
    const int dcount = cdl_ckks_digit_count(ctx, level);
    const int threads = omp_get_max_threads();
    if (count < 1 || groups < 1)
        return cdl_fail(CDL_ERR_INTERNAL, "double-hoisted rotations: nothing to compute");
    for (int j = 0; j < groups; j++) {
        int any = 0;
        for (int r = 0; r < count; r++) {
            const cdl_ckks_plaintext *pt = pts[(size_t)j * (size_t)count + (size_t)r];
            if (!pt)
                continue;
            if (!pt->p_data || !pt->p_valid || pt->p_count != K || pt->level < level)
                return cdl_fail(CDL_ERR_INTERNAL, "double-hoisted rotations: a plaintext without its special primes");
            any = 1;
        }
        if (!any)
            return cdl_fail(CDL_ERR_INTERNAL, "double-hoisted rotations: group %d has no term", j);
    }
    const size_t per_thread = (size_t)(dcount + 1 + 2 + 2 * DH_BATCH + 2) * n;
    uint64_t *acc = cdl_ckks_scratch(CDL_SCRATCH_DH_ACC, (size_t)groups * 2 * (size_t)ext * n);
    uint64_t *yp = cdl_ckks_scratch(CDL_SCRATCH_KS_YP, (size_t)groups * 2 * (size_t)K * n);
    uint64_t *conv = cdl_ckks_scratch(CDL_SCRATCH_KS_CONV, (size_t)threads * n);
    uint64_t *macs = cdl_ckks_scratch(CDL_SCRATCH_KS_MAC, (size_t)threads * 4 * n); /* 2n u128 per thread */
    uint64_t *cc = cdl_ckks_scratch(CDL_SCRATCH_KS_CC, (size_t)limbs * n);
    uint64_t *y = cdl_ckks_scratch(CDL_SCRATCH_KS_Y, (size_t)limbs * n);
    uint64_t *bufs = cdl_ckks_scratch(CDL_SCRATCH_DH_BUFS, (size_t)threads * per_thread);
    if (!acc || !yp || !conv || !macs || !cc || !y || !bufs)
        return cdl_fail(CDL_ERR_NO_MEMORY, "double-hoisted rotations: out of memory");
    modup_prepare(ctx, c1, level, cc, y);
    /* acc for group j, component comp, extended limb t at ((j*2 + comp)*ext + t)*n */
#define ACC(j, comp, t) (acc + (((size_t)(j) * 2 + (size_t)(comp)) * (size_t)ext + (size_t)(t)) * n)
#pragma omp parallel
    {
        const uint64_t *x[CDL_CKKS_MAX_PRIMES], *k0[CDL_CKKS_MAX_PRIMES], *k1[CDL_CKKS_MAX_PRIMES];
        const uint64_t *tp[DH_BATCH], *tw0[DH_BATCH], *tw1[DH_BATCH];
        uint64_t *buf = bufs + (size_t)omp_get_thread_num() * per_thread;
        uint64_t *pc0 = buf + (size_t)dcount * n;  /* P * c0, this limb */
        uint64_t *v = pc0 + n;                     /* the switched pair of one rotation, unpermuted */
        uint64_t *w = v + 2 * n;                   /* DH_BATCH permuted pairs */
        uint64_t *tmp = w + (size_t)(2 * DH_BATCH) * n;
        cdl_u128 *mac = (cdl_u128 *)(void *)(macs + (size_t)omp_get_thread_num() * 4 * n);
        uint64_t *cv = conv + (size_t)omp_get_thread_num() * n;
        /* Per extended limb t: the digit limbs once (hoisting), then for each
         * rotation r the inner product V_r = sum_d D_d * phi_r^-1(ksk_d) (the
         * memory form of the key), permuted into phi_r(V_r) + (P phi_r(c0), 0)
         * (the Q limbs only: P c0 is 0 modulo the special primes), then
         * multiplied by the plaintexts' limb t and summed over r per group. */
#pragma omp for schedule(static)
        for (int t = 0; t < ext; t++) {
            const int p = ext_prime(ctx, level, t);
            const cdl_modulus *m = &ctx->mod[p];
            const uint64_t q = m->value;
            for (int d = 0; d < dcount; d++)
                x[d] = digit_limb(ctx, c1, y, level, d, p, buf + (size_t)d * n);
            if (t < limbs) {
                const uint64_t *src = c0 + (size_t)t * n;
                const uint64_t pw = ctx->p_mod_q[t], pws = ctx->p_mod_q_shoup[t];
                for (size_t k = 0; k < n; k++)
                    pc0[k] = cdl_mul_shoup(src[k], pw, pws, q);
            }
            for (int r0 = 0; r0 < count; r0 += DH_BATCH) {
                const int rb = count - r0 < DH_BATCH ? count - r0 : DH_BATCH;
                for (int u = 0; u < rb; u++) {
                    const int r = r0 + u;
                    int used = 0;
                    for (int j = 0; j < groups && !used; j++)
                        used = pts[(size_t)j * (size_t)count + (size_t)r] != NULL;
                    if (!used)
                        continue;
                    for (int d = 0; d < dcount; d++) {
                        k0[d] = cdl_ksk_poly(keys[r], d, 0, p);
                        k1[d] = cdl_ksk_poly(keys[r], d, 1, p);
                    }
                    mac_limb(x, k0, k1, dcount, NULL, m, mac, v, v + n, n);
                    const uint32_t *pm = perms ? perms[r] : NULL;
                    uint64_t *w0 = w + (size_t)(2 * u) * n, *w1 = w0 + n;
                    if (t < limbs) {
                        for (size_t k = 0; k < n; k++) {
                            const size_t e = pm ? pm[k] : k;
                            w0[k] = cdl_mod_add(v[e], pc0[e], q);
                            w1[k] = v[n + e];
                        }
                    } else {
                        for (size_t k = 0; k < n; k++) {
                            const size_t e = pm ? pm[k] : k;
                            w0[k] = v[e];
                            w1[k] = v[n + e];
                        }
                    }
                }
                for (int j = 0; j < groups; j++) {
                    int cnt = 0, started = 0;
                    for (int r = 0; r < r0 && !started; r++)
                        started = pts[(size_t)j * (size_t)count + (size_t)r] != NULL;
                    for (int u = 0; u < rb; u++) {
                        const cdl_ckks_plaintext *pt = pts[(size_t)j * (size_t)count + (size_t)(r0 + u)];
                        if (!pt)
                            continue;
                        tp[cnt] = t < limbs ? pt->data + (size_t)t * n : pt->p_data + (size_t)(t - limbs) * n;
                        tw0[cnt] = w + (size_t)(2 * u) * n;
                        tw1[cnt++] = w + (size_t)(2 * u + 1) * n;
                    }
                    if (cnt)
                        dot_limb(tp, tw0, tw1, cnt, m, mac, tmp, ACC(j, 0, t), ACC(j, 1, t), started, n);
                }
            }
        }
        /* One ModDown per group and component. */
#pragma omp for schedule(static)
        for (int item = 0; item < groups * 2 * K; item++) {
            int jc = item / K, i = item % K;
            cdl_ntt_inverse(ctx->ntt[ctx->q_count + i], ACC(jc / 2, jc % 2, limbs + i));
        }
#pragma omp for schedule(static)
        for (int jc = 0; jc < groups * 2; jc++)
            cdl_base_convert_prepare(&ctx->moddown, ACC(jc / 2, jc % 2, limbs), yp + (size_t)jc * K * n, n);
#pragma omp for schedule(static)
        for (int item = 0; item < groups * 2 * limbs; item++) {
            int jc = item / limbs, i = item % limbs; /* ct-public: loop indexes */
            cdl_base_convert_limb(&ctx->moddown, yp + (size_t)jc * K * n, i, cv, n);
            cdl_ntt_forward(ctx->ntt[i], cv);
            uint64_t *o = (jc % 2 ? out1[jc / 2] : out0[jc / 2]) + (size_t)i * n;
            moddown_finish(ctx, i, o, ACC(jc / 2, jc % 2, i), cv, 0);
        }
    }
#undef ACC
    return CDL_OK;
}

cdl_status cdl_ckks_keyswitch_rotate_sum(const cdl_ckks_context *ctx, const uint64_t *const *c0,
                                         const uint64_t *const *c1, int level, const cdl_ckks_ksk *const *keys,
                                         const uint32_t *const *perms, int count, uint64_t *out0, uint64_t *out1)
{
    const size_t n = ctx->n;
    const int limbs = level + 1, ext = level + 1 + ctx->p_count;
    const int dcount = cdl_ckks_digit_count(ctx, level);
    const int threads = omp_get_max_threads();
    if (count < 1)
        return cdl_fail(CDL_ERR_INTERNAL, "double-hoisted rotation sum: nothing to compute");
    const size_t per_thread = (size_t)(dcount + 1 + 2) * n;
    uint64_t *acc = cdl_ckks_scratch(CDL_SCRATCH_DH_ACC, 2 * (size_t)ext * n);
    uint64_t *macs = cdl_ckks_scratch(CDL_SCRATCH_KS_MAC, (size_t)threads * 4 * n); /* 2n u128 per thread */
    uint64_t *cc = cdl_ckks_scratch(CDL_SCRATCH_KS_CC, (size_t)limbs * n);
    uint64_t *y = cdl_ckks_scratch(CDL_SCRATCH_KS_Y, (size_t)limbs * n);
    uint64_t *bufs = cdl_ckks_scratch(CDL_SCRATCH_DH_BUFS, (size_t)threads * per_thread);
    if (!acc || !macs || !cc || !y || !bufs)
        return cdl_fail(CDL_ERR_NO_MEMORY, "double-hoisted rotation sum: out of memory");
    for (int r = 0; r < count; r++) {
        modup_prepare(ctx, c1[r], level, cc, y);
#pragma omp parallel
        {
            const uint64_t *x[CDL_CKKS_MAX_PRIMES], *k0[CDL_CKKS_MAX_PRIMES], *k1[CDL_CKKS_MAX_PRIMES];
            uint64_t *buf = bufs + (size_t)omp_get_thread_num() * per_thread;
            uint64_t *pc0 = buf + (size_t)dcount * n, *v = pc0 + n;
            cdl_u128 *mac = (cdl_u128 *)(void *)(macs + (size_t)omp_get_thread_num() * 4 * n);
            /* per extended limb: V_r = sum_d D_d(c1_r) * phi_r^-1(ksk_d), then
             * acc += phi_r(V_r) + (P phi_r(c0_r), 0) (the Q limbs only) */
#pragma omp for schedule(static)
            for (int t = 0; t < ext; t++) {
                const int p = ext_prime(ctx, level, t);
                const cdl_modulus *m = &ctx->mod[p];
                const uint64_t q = m->value;
                for (int d = 0; d < dcount; d++) {
                    x[d] = digit_limb(ctx, c1[r], y, level, d, p, buf + (size_t)d * n);
                    k0[d] = cdl_ksk_poly(keys[r], d, 0, p);
                    k1[d] = cdl_ksk_poly(keys[r], d, 1, p);
                }
                mac_limb(x, k0, k1, dcount, NULL, m, mac, v, v + n, n);
                const uint32_t *pm = perms ? perms[r] : NULL;
                uint64_t *a0 = acc + (size_t)t * n, *a1 = acc + (size_t)(ext + t) * n;
                const uint64_t *s0 = v;
                if (t < limbs) {
                    const uint64_t *src = c0[r] + (size_t)t * n;
                    const uint64_t pw = ctx->p_mod_q[t], pws = ctx->p_mod_q_shoup[t];
                    for (size_t k = 0; k < n; k++)
                        pc0[k] = cdl_mod_add(v[k], cdl_mul_shoup(src[k], pw, pws, q), q);
                    s0 = pc0;
                }
                for (size_t k = 0; k < n; k++) {
                    const size_t e = pm ? pm[k] : k;
                    a0[k] = r ? cdl_mod_add(a0[k], s0[e], q) : s0[e];
                    a1[k] = r ? cdl_mod_add(a1[k], v[n + e], q) : v[n + e];
                }
            }
        }
    }
    /* one ModDown for the whole sum */
    CDL_TRY(cdl_ckks_moddown(ctx, level, acc, out0));
    return cdl_ckks_moddown(ctx, level, acc + (size_t)ext * n, out1);
}

cdl_status cdl_ckks_moddown(const cdl_ckks_context *ctx, int level, uint64_t *acc, uint64_t *out)
{
    const size_t n = ctx->n;
    const int limbs = level + 1, K = ctx->p_count;
    const int threads = omp_get_max_threads();
    uint64_t *y = cdl_ckks_scratch(CDL_SCRATCH_MD_Y, (size_t)K * n);
    uint64_t *tmp = cdl_ckks_scratch(CDL_SCRATCH_MD_TMP, (size_t)threads * n);
    if (!y || !tmp)
        return cdl_fail(CDL_ERR_NO_MEMORY, "ModDown: out of memory");
#pragma omp parallel
    {
        uint64_t *cv = tmp + (size_t)omp_get_thread_num() * n;
#pragma omp for schedule(static)
        for (int j = 0; j < K; j++)
            cdl_ntt_inverse(ctx->ntt[ctx->q_count + j], acc + (size_t)(limbs + j) * n);
#pragma omp single
        cdl_base_convert_prepare(&ctx->moddown, acc + (size_t)limbs * n, y, n);
#pragma omp for schedule(static)
        for (int i = 0; i < limbs; i++) {
            cdl_base_convert_limb(&ctx->moddown, y, i, cv, n);
            cdl_ntt_forward(ctx->ntt[i], cv);
            const uint64_t *a = acc + (size_t)i * n;
            uint64_t *o = out + (size_t)i * n;
            moddown_finish(ctx, i, o, a, cv, 0);
        }
    }
    return CDL_OK;
}

cdl_status cdl_ckks_ksk_generate(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, const uint64_t *s_from,
                                 cdl_rng *rng, cdl_ckks_ksk *key)
{
    const size_t n = ctx->n;
    const int qp = key->qp_count; /* the limbs the key stores (all, or those of levels 0..max_level) */
    int8_t *e = cdl_secure_calloc(n, 1);
    uint64_t *ee = cdl_secure_calloc((size_t)qp * n, sizeof(uint64_t));
    if (!e || !ee) {
        if (e)
            cdl_secure_free(e, n);
        if (ee)
            cdl_secure_free(ee, (size_t)qp * n * sizeof(uint64_t));
        return CDL_ERR_NO_MEMORY;
    }
    for (int d = 0; d < key->dnum; d++) {
        for (int j = 0; j < qp; j++) {
            const int i = j <= key->max_level ? j : ctx->q_count + (j - key->max_level - 1);
            cdl_sample_uniform(rng, ctx->primes[i], cdl_ksk_poly(key, d, 1, i), n);
        }
        cdl_sample_cbd(rng, e, n);
        int first = d * ctx->alpha, last = first + ctx->alpha - 1;
#pragma omp parallel for schedule(static)
        for (int j = 0; j < qp; j++) {
            const int i = j <= key->max_level ? j : ctx->q_count + (j - key->max_level - 1);
            uint64_t *ei = ee + (size_t)j * n, *b = cdl_ksk_poly(key, d, 0, i);
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
