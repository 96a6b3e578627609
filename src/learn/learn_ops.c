/*
 * learn_ops.c: the operations the trainers of src/learn share
 * (learn_internal.h): exact-scale constant products, rotate-and-add sums,
 * the level plan between bootstraps, and the sample-interleaved layout's
 * sums over the samples and packing for one bootstrap.
 *
 * Why the sums over the samples go the way they go: with value s of sample i
 * in slot s * m + i, a left rotate-and-add by 1, 2, ..., m/2 leaves the exact
 * sum of the block of value s in its sample position 0 (the other positions
 * also pick up the next block); a mask keeps position 0, and a right
 * rotate-and-add by the same steps spreads it over the block again without
 * reaching the neighbours (everything but position 0 is zero). Packing for a
 * bootstrap uses the same trick with P = 2^ceil(log2 count) positions.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "core/error.h"
#include "core/memory.h"
#include "learn/learn_internal.h"

cdl_status lrn_rotate_sum(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, cdl_ckks_ciphertext *a,
                          cdl_ckks_ciphertext *tmp, size_t first, size_t limit, int sign)
{
    for (size_t s = first; s < limit; s *= 2) {
        CDL_TRY(cdl_ckks_rotate(ctx, gk, a, sign * (int)s, tmp));
        CDL_TRY(cdl_ckks_add(ctx, a, tmp, a));
    }
    return CDL_OK;
}

cdl_status lrn_mul_const_to(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, double c, double target,
                            cdl_ckks_ciphertext *out)
{
    int level = cdl_ckks_ciphertext_level(a);
    if (level < 1)
        return cdl_fail(CDL_ERR_EXHAUSTED, "encrypted training: no level left for a constant product");
    double enc = target * (double)cdl_ckks_prime(ctx, level) / cdl_ckks_ciphertext_scale(a);
    CDL_TRY(cdl_ckks_mul_const(ctx, a, c, enc, out));
    CDL_TRY(cdl_ckks_rescale(ctx, out, out));
    cdl_ckks_ciphertext_set_scale(out, target);
    return CDL_OK;
}

cdl_status lrn_mul_relin_rescale(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                 const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b, cdl_ckks_ciphertext *out)
{
    CDL_TRY(cdl_ckks_mul_relin(ctx, rlk, a, b, out));
    return cdl_ckks_rescale(ctx, out, out);
}

double lrn_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int lrn_plan_level(int l, int r, int per, int boot)
{
    if (l >= per * r)
        return per * r;
    if (!boot)
        return -2;
    if (l >= per + 1)
        return l - (l - 1) % per;
    return -1;
}

int lrn_plan_bootstraps(int first_level, int top, int iterations, int per)
{
    const int boot = top >= 0;
    int l = first_level, count = 0;
    for (int k = 2; k <= iterations; k++) {
        const int r = iterations - k + 1;
        int run = lrn_plan_level(l, r, per, boot);
        if (run == -1) {
            if (l < 1)
                return -1; /* no level to pack the state */
            count++;
            l = top;
            run = lrn_plan_level(l, r, per, boot);
        }
        if (run < 0)
            return -1;
        l = run - per;
    }
    return count;
}

double lrn_step_eta(int nesterov, double *lambda)
{
    double next = (1.0 + sqrt(1.0 + 4.0 * *lambda * *lambda)) / 2.0;
    double eta = nesterov ? (1.0 - *lambda) / next : 0.0;
    *lambda = next;
    return eta;
}

cdl_status lrn_layout_make(const cdl_ckks_context *ctx, size_t width, size_t min_samples, lrn_layout *L,
                           const char *fn)
{
    const size_t slots = cdl_ckks_slots(ctx);
    size_t r = 1;
    while (r < width && r <= slots)
        r *= 2;
    if (width < 1 || r > slots || slots / r < min_samples)
        return cdl_fail(CDL_ERR_PARAMETERS,
                        "%s: %zu values per sample need rows of %zu slots, and %zu samples per ciphertext at least; "
                        "N = 2^%d has %zu slots: use fewer features or a larger N",
                        fn, width, r, min_samples, cdl_ckks_log_n(ctx), slots);
    L->slots = slots;
    L->row = r;
    L->m = slots / r;
    return CDL_OK;
}

void lrn_mask_free(lrn_mask *mk)
{
    if (!mk)
        return;
    cdl_ckks_plaintext_free(mk->pt);
    memset(mk, 0, sizeof *mk);
}

cdl_status lrn_encode_filled(const cdl_ckks_context *ctx, const lrn_layout *L, lrn_fill_fn fill, const void *arg,
                             int level, double scale, cdl_ckks_plaintext **pt)
{
    double *v = cdl_calloc_array(L->slots, sizeof *v);
    if (!v)
        return cdl_fail(CDL_ERR_NO_MEMORY, "encrypted training: out of memory for a mask");
    fill(L, arg, v);
    cdl_status st = *pt ? CDL_OK : cdl_ckks_plaintext_new(ctx, pt);
    if (st == CDL_OK)
        st = cdl_ckks_encode(ctx, v, L->slots, scale, level, *pt);
    cdl_free(v);
    return st;
}

cdl_status lrn_mask_filled(const cdl_ckks_context *ctx, const lrn_layout *L, lrn_fill_fn fill, const void *arg,
                           int level, double scale, lrn_mask *mk)
{
    if (mk->pt && mk->level == level && mk->scale == scale)
        return CDL_OK;
    cdl_status st = lrn_encode_filled(ctx, L, fill, arg, level, scale, &mk->pt);
    mk->level = st == CDL_OK ? level : -1;
    mk->scale = scale;
    return st;
}

static void fill_columns(const lrn_layout *L, const void *arg, double *v)
{
    const size_t period = *(const size_t *)arg;
    for (size_t s = 0; s < L->row; s++)
        for (size_t i = 0; i < L->m; i += period)
            v[s * L->m + i] = 1.0;
}

cdl_status lrn_mask_columns(const cdl_ckks_context *ctx, const lrn_layout *L, size_t period, int level, double scale,
                            lrn_mask *mk)
{
    return lrn_mask_filled(ctx, L, fill_columns, &period, level, scale, mk);
}

/* ct (at level l >= 1) * mask(period) with the result's scale exactly target, in place. */
static cdl_status mask_to(const cdl_ckks_context *ctx, const lrn_layout *L, cdl_ckks_ciphertext *ct, size_t period,
                          double target, lrn_mask *mask)
{
    const int l = cdl_ckks_ciphertext_level(ct);
    if (l < 1)
        return cdl_fail(CDL_ERR_EXHAUSTED, "encrypted training: no level left for a mask");
    const double enc = target * (double)cdl_ckks_prime(ctx, l) / cdl_ckks_ciphertext_scale(ct);
    CDL_TRY(lrn_mask_columns(ctx, L, period, l, enc, mask));
    CDL_TRY(cdl_ckks_mul_plain(ctx, ct, mask->pt, ct));
    CDL_TRY(cdl_ckks_rescale(ctx, ct, ct));
    cdl_ckks_ciphertext_set_scale(ct, target);
    return CDL_OK;
}

cdl_status lrn_sum_samples(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const lrn_layout *L,
                           cdl_ckks_ciphertext *ct, cdl_ckks_ciphertext *tmp, lrn_mask *mask, double target)
{
    CDL_TRY(lrn_rotate_sum(ctx, gk, ct, tmp, 1, L->m, 1));
    CDL_TRY(mask_to(ctx, L, ct, L->m, target, mask));
    return lrn_rotate_sum(ctx, gk, ct, tmp, 1, L->m, -1);
}

size_t lrn_pow2_at_least(size_t v)
{
    size_t p = 1;
    while (p < v)
        p *= 2;
    return p;
}

cdl_status lrn_pack(const cdl_ckks_context *ctx, const lrn_layout *L, cdl_ckks_ciphertext *const *cts, size_t count,
                    double bound, cdl_ckks_ciphertext *out, cdl_ckks_ciphertext *tmp)
{
    if (count < 1 || count > L->m)
        return cdl_fail(CDL_ERR_INTERNAL, "encrypted training: cannot pack %zu ciphertexts into %zu sample positions",
                        count, L->m);
    const double S = cdl_ckks_default_scale(ctx);
    const uint64_t q1 = cdl_ckks_prime(ctx, 1);
    cdl_status st = CDL_OK;
    cdl_ckks_ciphertext **low = cdl_calloc_array(count, sizeof *low);
    double **vals = cdl_calloc_array(count, sizeof *vals);
    const cdl_ckks_ciphertext **x = cdl_calloc_array(count, sizeof *x);
    if (!low || !vals || !x) {
        st = CDL_ERR_NO_MEMORY;
        goto done;
    }
    for (size_t j = 0; j < count && st == CDL_OK; j++) {
        if (cdl_ckks_ciphertext_level(cts[j]) < 1) {
            st = cdl_fail(CDL_ERR_INTERNAL, "encrypted training: no level left to pack the state for a bootstrap");
            break;
        }
        st = lrn_new_ct(ctx, &low[j]);
        if (st == CDL_OK)
            st = cdl_ckks_drop_to_level(ctx, cts[j], 1, low[j]);
        vals[j] = st == CDL_OK ? cdl_calloc_array(L->slots, sizeof **vals) : NULL;
        if (st == CDL_OK && !vals[j])
            st = CDL_ERR_NO_MEMORY;
        for (size_t s = 0; st == CDL_OK && s < L->row; s++)
            vals[j][s * L->m + j] = 1.0;
    }
    /* groups of equal scale, each with the encoding scale that lands its products on S * q1 before the rescale */
    int started = 0;
    for (size_t g0 = 0; g0 < count && st == CDL_OK;) {
        size_t g1 = g0 + 1;
        const double sc = cdl_ckks_ciphertext_scale(low[g0]);
        while (g1 < count && cdl_ckks_ciphertext_scale(low[g1]) == sc)
            g1++;
        for (size_t j = g0; j < g1; j++)
            x[j] = low[j];
        st = cdl_ckks_dot_values(ctx, x + g0, (const double *const *)(vals + g0), L->slots, g1 - g0,
                                 S * (double)q1 / sc, started, out);
        if (st == CDL_OK && !started) {
            started = 1;
            cdl_ckks_ciphertext_set_scale(out, S * (double)q1); /* the next groups land here up to rounding */
        }
        g0 = g1;
    }
    if (st == CDL_OK)
        st = cdl_ckks_rescale(ctx, out, out);
    if (st == CDL_OK)
        cdl_ckks_ciphertext_set_scale(out, S * bound); /* reads cts / bound */
    (void)tmp;
done:
    if (low)
        for (size_t j = 0; j < count; j++)
            cdl_ckks_ciphertext_free(low[j]);
    if (vals)
        for (size_t j = 0; j < count; j++)
            cdl_free(vals[j]);
    cdl_free(low);
    cdl_free(vals);
    cdl_free(x);
    return st;
}

cdl_status lrn_unpack(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const lrn_layout *L,
                      cdl_ckks_ciphertext *in, size_t count, double bound, double target,
                      cdl_ckks_ciphertext *const *out, cdl_ckks_ciphertext *tmp, lrn_mask *mask)
{
    const size_t P = lrn_pow2_at_least(count);
    if (count < 1 || P > L->m)
        return cdl_fail(CDL_ERR_INTERNAL, "encrypted training: cannot unpack %zu ciphertexts from %zu positions",
                        count, L->m);
    /* every position i then holds position i mod P (the positions >= count are zero) */
    CDL_TRY(lrn_rotate_sum(ctx, gk, in, tmp, P, L->m, -1));
    const double sc = cdl_ckks_ciphertext_scale(in);
    for (size_t j = 0; j < count; j++) {
        if (j > 0)
            CDL_TRY(cdl_ckks_rotate(ctx, gk, in, 1, in)); /* position j now at 0 (mod P) */
        CDL_TRY(cdl_ckks_ciphertext_copy(ctx, in, out[j]));
        cdl_ckks_ciphertext_set_scale(out[j], sc); /* mask_to reads the scale */
        /* keep the positions 0 mod P, read times bound: the exact target is reached at target * bound */
        CDL_TRY(mask_to(ctx, L, out[j], P, target * bound, mask));
        cdl_ckks_ciphertext_set_scale(out[j], target);
        CDL_TRY(lrn_rotate_sum(ctx, gk, out[j], tmp, 1, P, -1));
    }
    return CDL_OK;
}

cdl_status lrn_steps_add(int step, int *steps, size_t capacity, size_t *count)
{
    if (step == 0)
        return CDL_OK;
    for (size_t i = 0; i < *count; i++)
        if (steps[i] == step)
            return CDL_OK;
    if (*count >= capacity)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "encrypted training: room for %zu rotation steps is too small",
                        capacity);
    steps[(*count)++] = step;
    return CDL_OK;
}

cdl_status lrn_steps_samples(const lrn_layout *L, int *steps, size_t capacity, size_t *count)
{
    for (size_t s = 1; s < L->m; s *= 2) {
        CDL_TRY(lrn_steps_add((int)s, steps, capacity, count));
        CDL_TRY(lrn_steps_add(-(int)s, steps, capacity, count));
    }
    return CDL_OK;
}

/* Sizes that no sane checkpoint exceeds (a ciphertext blob is bounded by its loader too). */
#define LRN_MAX_CT_BYTES ((uint64_t)1 << 36)

cdl_status lrn_write_cts(const cdl_ckks_context *ctx, cdl_writer *w, cdl_ckks_ciphertext *const *cts, size_t count)
{
    for (size_t i = 0; i < count && cdl_writer_status(w) == CDL_OK; i++) {
        uint8_t *blob = NULL;
        size_t blen = 0;
        CDL_TRY(cdl_ckks_ciphertext_save(ctx, cts[i], 0, &blob, &blen));
        cdl_write_u64(w, blen);
        cdl_write_bytes(w, blob, blen);
        cdl_free_bytes(blob);
    }
    return cdl_writer_status(w);
}

cdl_status lrn_read_cts(const cdl_ckks_context *ctx, cdl_reader *r, cdl_ckks_ciphertext **cts, size_t count,
                        int max_level, const char *fn)
{
    for (size_t i = 0; i < count; i++) {
        uint64_t blen = 0;
        CDL_TRY(cdl_read_u64(r, &blen));
        if (blen > cdl_reader_remaining(r) || blen > LRN_MAX_CT_BYTES)
            return cdl_fail(CDL_ERR_FORMAT, "%s: ciphertext length %llu beyond the data", fn,
                            (unsigned long long)blen);
        cdl_ckks_ciphertext *ct = NULL;
        CDL_TRY(cdl_ckks_ciphertext_load(ctx, r->data + r->pos, (size_t)blen, &ct));
        r->pos += (size_t)blen;
        cdl_ckks_ciphertext_free(cts[i]);
        cts[i] = ct;
        if (cdl_ckks_ciphertext_size(ct) != 2 || cdl_ckks_ciphertext_level(ct) > max_level)
            return cdl_fail(CDL_ERR_FORMAT, "%s: saved ciphertext of size %d at level %d (at most %d expected)", fn,
                            cdl_ckks_ciphertext_size(ct), cdl_ckks_ciphertext_level(ct), max_level);
    }
    return CDL_OK;
}

cdl_status lrn_hoisted(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const cdl_ckks_ciphertext *src,
                       int level, int step, size_t count, cdl_ckks_ciphertext *const *out)
{
    if (cdl_ckks_ciphertext_level(src) > level)
        CDL_TRY(cdl_ckks_drop_to_level(ctx, src, level, out[0]));
    else
        CDL_TRY(cdl_ckks_ciphertext_copy(ctx, src, out[0]));
    if (count < 2)
        return CDL_OK;
    int steps[256];
    if (count > 257)
        return cdl_fail(CDL_ERR_INTERNAL, "encrypted training: %zu hoisted rotations", count);
    for (size_t a = 1; a < count; a++)
        steps[a - 1] = (int)a * step;
    return cdl_ckks_rotate_hoisted(ctx, gk, out[0], steps, count - 1, out + 1);
}

cdl_status lrn_diag_product(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                            const cdl_ckks_galois_keys *gk, cdl_ckks_ciphertext *const *R, size_t B, size_t G,
                            int giant_step, cdl_ckks_ciphertext *const *F, cdl_ckks_ciphertext *out,
                            cdl_ckks_ciphertext *t3, cdl_ckks_ciphertext *m3, cdl_ckks_ciphertext *tmp)
{
    for (size_t b = 0; b < G; b++) {
        for (size_t a = 0; a < B; a++) {
            if (a == 0) {
                CDL_TRY(cdl_ckks_mul(ctx, R[a], F[a + b * B], t3));
            } else {
                CDL_TRY(cdl_ckks_mul(ctx, R[a], F[a + b * B], m3));
                CDL_TRY(cdl_ckks_add(ctx, t3, m3, t3));
            }
        }
        if (b == 0) {
            CDL_TRY(cdl_ckks_relinearize(ctx, rlk, t3, out));
        } else {
            CDL_TRY(cdl_ckks_relinearize(ctx, rlk, t3, tmp));
            CDL_TRY(cdl_ckks_rotate(ctx, gk, tmp, (int)b * giant_step, tmp));
            CDL_TRY(cdl_ckks_add(ctx, out, tmp, out));
        }
    }
    return CDL_OK;
}

cdl_status lrn_outer_accumulate(const cdl_ckks_context *ctx, cdl_ckks_ciphertext *const *R, size_t B,
                                cdl_ckks_ciphertext *const *E, size_t G, cdl_ckks_ciphertext *const *acc, int first,
                                cdl_ckks_ciphertext *m3)
{
    for (size_t b = 0; b < G; b++)
        for (size_t a = 0; a < B; a++) {
            cdl_ckks_ciphertext *h = acc[a + b * B];
            if (first) {
                CDL_TRY(cdl_ckks_mul(ctx, R[a], E[b], h));
            } else {
                CDL_TRY(cdl_ckks_mul(ctx, R[a], E[b], m3));
                CDL_TRY(cdl_ckks_add(ctx, h, m3, h));
            }
        }
    return CDL_OK;
}

void lrn_free_cts(cdl_ckks_ciphertext **a, size_t n)
{
    if (!a)
        return;
    for (size_t i = 0; i < n; i++)
        cdl_ckks_ciphertext_free(a[i]);
    cdl_free(a);
}

cdl_status lrn_new_ct(const cdl_ckks_context *ctx, cdl_ckks_ciphertext **out)
{
    /* a new ciphertext holds every limb of the top level (N = 2^16: 25 MB); working ciphertexts start at level 0
     * with one limb and grow to what they are used for */
    CDL_TRY(cdl_ckks_ciphertext_new(ctx, out));
    CDL_TRY(cdl_ckks_drop_to_level(ctx, *out, 0, *out));
    return cdl_ckks_ciphertext_shrink(*out);
}

cdl_status lrn_new_cts(const cdl_ckks_context *ctx, cdl_ckks_ciphertext ***a, size_t n)
{
    *a = cdl_calloc_array(n ? n : 1, sizeof **a);
    if (!*a)
        return CDL_ERR_NO_MEMORY;
    for (size_t i = 0; i < n; i++)
        CDL_TRY(lrn_new_ct(ctx, &(*a)[i]));
    return CDL_OK;
}

static cdl_status encrypt_values(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                 const double *vals, size_t count, int level, cdl_ckks_plaintext *pt,
                                 cdl_ckks_ciphertext **out)
{
    CDL_TRY(cdl_ckks_encode(ctx, vals, count, cdl_ckks_default_scale(ctx), level, pt));
    CDL_TRY(cdl_ckks_ciphertext_new(ctx, out));
    CDL_TRY(cdl_ckks_encrypt_sk(ctx, sk, pt, rng, *out));
    return cdl_ckks_ciphertext_shrink(*out); /* the limbs of its level only */
}

cdl_status lrn_check_samples(const double *x, const int *labels, size_t n, size_t d, size_t classes,
                             const char *value, const char *fn)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= classes)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: label %zu is %d; labels must be 0..%zu", fn, i, labels[i],
                            classes - 1);
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(x[i]))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: %s %zu of sample %zu is not finite", fn, value, i % d,
                            i / d);
    return CDL_OK;
}

cdl_status lrn_encrypt_samples(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                               const lrn_layout *L, const double *x, size_t n, size_t d, int level,
                               cdl_ckks_ciphertext ***out, size_t *count)
{
    const size_t S = L->slots, m = L->m, n_ct = (n + m - 1) / m;
    *out = NULL;
    *count = 0;
    cdl_ckks_ciphertext **cts = cdl_calloc_array(n_ct ? n_ct : 1, sizeof *cts);
    double *vals = cdl_secure_calloc(S, sizeof *vals); /* the client's plaintext data: wiped */
    cdl_ckks_plaintext *pt = NULL;
    cdl_status st = cts && vals ? cdl_ckks_plaintext_new(ctx, &pt) : CDL_ERR_NO_MEMORY;
    for (size_t j = 0; st == CDL_OK && j < n_ct; j++) {
        memset(vals, 0, S * sizeof *vals);
        for (size_t i = 0; i < m && j * m + i < n; i++)
            for (size_t s = 0; s < d; s++)
                vals[s * m + i] = x[(j * m + i) * d + s];
        st = encrypt_values(ctx, sk, rng, vals, S, level, pt, &cts[j]);
    }
    cdl_ckks_plaintext_free(pt);
    cdl_secure_free(vals, S * sizeof *vals);
    if (st != CDL_OK) {
        if (cts)
            lrn_free_cts(cts, n_ct);
        return st;
    }
    *out = cts;
    *count = n_ct;
    return CDL_OK;
}

cdl_status lrn_encrypt_labels(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                              const lrn_layout *L, const int *labels, size_t n, size_t cp, int level,
                              cdl_ckks_ciphertext ***out, size_t *count)
{
    const size_t S = L->slots, m = L->m, n_ct = (n + m - 1) / m, per = L->row / cp;
    const size_t n_yct = (n_ct + per - 1) / per;
    *out = NULL;
    *count = 0;
    cdl_ckks_ciphertext **cts = cdl_calloc_array(n_yct ? n_yct : 1, sizeof *cts);
    double *vals = cdl_secure_calloc(S, sizeof *vals);
    cdl_ckks_plaintext *pt = NULL;
    cdl_status st = cts && vals ? cdl_ckks_plaintext_new(ctx, &pt) : CDL_ERR_NO_MEMORY;
    for (size_t q = 0; st == CDL_OK && q < n_yct; q++) {
        memset(vals, 0, S * sizeof *vals);
        for (size_t p = 0; p < per; p++) {
            const size_t j = q * per + p;
            for (size_t i = 0; i < m && j * m + i < n; i++)
                vals[(p * cp + (size_t)labels[j * m + i]) * m + i] = 1.0;
        }
        st = encrypt_values(ctx, sk, rng, vals, S, level, pt, &cts[q]);
    }
    cdl_ckks_plaintext_free(pt);
    cdl_secure_free(vals, S * sizeof *vals);
    if (st != CDL_OK) {
        if (cts)
            lrn_free_cts(cts, n_yct);
        return st;
    }
    *out = cts;
    *count = n_yct;
    return CDL_OK;
}
