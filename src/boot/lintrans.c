/*
 * lintrans.c: a sparse-diagonal matrix applied to a ciphertext,
 *   M x = sum_t diag_t (.) rot(x, o_t),
 * by the baby-step giant-step method (Halevi and Shoup, CRYPTO 2014 and 2018):
 * with every offset o = (g j + i) * step,
 *   M x = sum_j rot( sum_i rot(diag_(g j + i), -g j step) (.) rot(x, i step), g j step ),
 * so the g baby rotations of x are shared by every giant step (and hoisted:
 * one key-switching decomposition for all of them) and each giant step costs
 * one rotation. The pre-rotated diagonals are encoded once, at the level they
 * are used, when the bootstrapper is built. Each inner sum is rescaled before
 * its giant rotation, which then runs one level lower (fewer limbs).
 */
#include <string.h>

#include "boot/boot_internal.h"
#include "core/error.h"
#include "core/memory.h"

static int gcd_int(int a, int b)
{
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* signed multiple k of step for offset o, in (-m/2, m/2], m = n / step */
static int signed_multiple(int o, int step, int m)
{
    int k = o / step;
    return k > m / 2 ? k - m : k;
}

static int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* Rotations needed for a choice of g: distinct nonzero baby indices + distinct nonzero giants. */
static int bsgs_cost(const int *k, int count, int g, int *jmin_out, int *jmax_out)
{
    unsigned char baby[256] = {0};
    int jmin = 1 << 30, jmax = -(1 << 30), giants = 0;
    unsigned char *seen = NULL;
    for (int t = 0; t < count; t++) {
        int j = floor_div(k[t], g);
        baby[k[t] - j * g] = 1;
        if (j < jmin)
            jmin = j;
        if (j > jmax)
            jmax = j;
    }
    seen = cdl_calloc_array((size_t)(jmax - jmin + 1), 1);
    if (!seen)
        return 1 << 30;
    for (int t = 0; t < count; t++) {
        int j = floor_div(k[t], g);
        if (!seen[j - jmin] && j != 0)
            giants++;
        seen[j - jmin] = 1;
    }
    cdl_free(seen);
    int babies = 0;
    for (int i = 1; i < g; i++)
        babies += baby[i];
    *jmin_out = jmin;
    *jmax_out = jmax;
    return babies + giants;
}

void boot_lintrans_release(boot_lintrans *lt)
{
    if (!lt)
        return;
    if (lt->pt)
        for (int t = 0; t < lt->jcount * lt->g; t++)
            cdl_ckks_plaintext_free(lt->pt[t]);
    cdl_free(lt->pt);
    cdl_free(lt->baby);
    memset(lt, 0, sizeof(*lt));
}

cdl_status boot_lintrans_prepare(const cdl_ckks_context *ctx, const boot_diag_matrix *m, int level, double factor,
                                 boot_lintrans *lt)
{
    memset(lt, 0, sizeof(*lt));
    const int n = (int)m->n;
    if (level < 1 || level > ctx->max_level)
        return cdl_fail(CDL_ERR_PARAMETERS, "bootstrapping: a DFT level at %d is outside 1..%d", level,
                        ctx->max_level);
    int step = n;
    for (int t = 0; t < m->count; t++)
        step = gcd_int(step, m->offset[t]);
    const int mult = n / step;
    int *k = cdl_alloc_array((size_t)m->count, sizeof(int));
    if (!k)
        return CDL_ERR_NO_MEMORY;
    for (int t = 0; t < m->count; t++)
        k[t] = signed_multiple(m->offset[t], step, mult);
    int best_g = 1, best = 1 << 30, jmin = 0, jmax = 0;
    for (int g = 1; g <= 128 && g <= mult; g++) {
        int a, b, c = bsgs_cost(k, m->count, g, &a, &b);
        if (c < best) {
            best = c;
            best_g = g;
        }
    }
    bsgs_cost(k, m->count, best_g, &jmin, &jmax);
    lt->level = level;
    lt->period = n;
    lt->step = step;
    lt->g = best_g;
    lt->jmin = jmin;
    lt->jcount = jmax - jmin + 1;
    lt->pt_scale = (double)ctx->primes[level] * factor;
    lt->pt = cdl_calloc_array((size_t)lt->jcount * (size_t)lt->g, sizeof(*lt->pt));
    lt->baby = cdl_calloc_array((size_t)lt->g, sizeof(int));
    const size_t slots = ctx->slots;
    double *re = cdl_alloc_array(slots, sizeof(double)), *im = cdl_alloc_array(slots, sizeof(double));
    cdl_status st = (lt->pt && lt->baby && re && im) ? CDL_OK : CDL_ERR_NO_MEMORY;
    unsigned char used[128] = {0};
    for (int t = 0; st == CDL_OK && t < m->count; t++) {
        const int j = floor_div(k[t], lt->g), i = k[t] - j * lt->g;
        used[i] = 1;
        /* pre-rotate right by g j step: diag'[q] = diag[q - g j step], repeated with period n */
        const int shift = (int)((((long long)lt->g * j * step) % n + n) % n);
        const double *dr = m->re + (size_t)t * (size_t)n, *di = m->im + (size_t)t * (size_t)n;
        for (size_t q = 0; q < slots; q++) {
            int src = (int)(q % (size_t)n) - shift;
            src += src < 0 ? n : 0;
            re[q] = dr[src];
            im[q] = di[src];
        }
        cdl_ckks_plaintext **slot = &lt->pt[(size_t)(j - jmin) * (size_t)lt->g + (size_t)i];
        st = cdl_ckks_plaintext_new_level(ctx, level, slot);
        if (st == CDL_OK)
            st = cdl_ckks_encode_complex(ctx, re, im, slots, lt->pt_scale, level, *slot);
    }
    for (int i = 0; i < lt->g; i++)
        if (used[i])
            lt->baby[lt->nbaby++] = i;
    cdl_free(k);
    cdl_free(re);
    cdl_free(im);
    if (st != CDL_OK)
        boot_lintrans_release(lt);
    return st;
}

/* A rotation of period-n vectors, as the representative in (-n/2, n/2]. */
static int normalize_step(const boot_lintrans *lt, long long s)
{
    const long long n = (long long)lt->period;
    s %= n;
    if (s < 0)
        s += n;
    return (int)(s > n / 2 ? s - n : s);
}

int boot_lintrans_steps(const cdl_ckks_context *ctx, const boot_lintrans *lt, int *steps, int *levels, int capacity)
{
    int count = 0;
    for (int b = 0; b < lt->nbaby; b++) {
        int s = normalize_step(lt, (long long)lt->baby[b] * lt->step);
        if (s != 0 && count < capacity) {
            steps[count] = s;
            levels[count++] = lt->level;
        }
    }
    for (int j = 0; j < lt->jcount; j++) {
        int used = 0;
        for (int i = 0; i < lt->g; i++)
            used |= lt->pt[(size_t)j * (size_t)lt->g + (size_t)i] != NULL;
        int s = normalize_step(lt, (long long)lt->g * (j + lt->jmin) * lt->step);
        if (used && s != 0 && count < capacity) {
            steps[count] = s;
            levels[count++] = lt->level - 1;
        }
    }
    return count;
}

size_t boot_lintrans_bytes(const boot_lintrans *lt)
{
    size_t bytes = 0;
    for (int t = 0; t < lt->jcount * lt->g; t++)
        if (lt->pt[t])
            bytes += (size_t)(lt->pt[t]->limbs) * lt->pt[t]->n * sizeof(uint64_t);
    return bytes;
}

cdl_status boot_lintrans_apply(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const boot_lintrans *lt,
                               const cdl_ckks_ciphertext *in, cdl_ckks_ciphertext *out)
{
    if (in->level != lt->level)
        return cdl_fail(CDL_ERR_INTERNAL, "bootstrapping: DFT input at level %d, prepared for %d", in->level,
                        lt->level);
    const int g = lt->g;
    cdl_ckks_ciphertext **baby = cdl_calloc_array((size_t)g, sizeof(*baby));
    int *rot = cdl_alloc_array((size_t)g, sizeof(int));
    cdl_ckks_ciphertext **rot_out = cdl_calloc_array((size_t)g, sizeof(*rot_out));
    cdl_ckks_ciphertext *inner = NULL, *acc = NULL;
    cdl_status st = (baby && rot && rot_out) ? CDL_OK : CDL_ERR_NO_MEMORY;
    int nrot = 0;
    for (int b = 0; st == CDL_OK && b < lt->nbaby; b++) {
        const int i = lt->baby[b];
        if (i == 0)
            continue;
        st = cdl_ckks_ciphertext_alloc(ctx, 2, lt->level, &baby[i]);
        rot[nrot] = normalize_step(lt, (long long)i * lt->step);
        rot_out[nrot++] = baby[i];
    }
    if (st == CDL_OK && nrot)
        st = cdl_ckks_rotate_hoisted(ctx, gk, in, rot, (size_t)nrot, rot_out);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_alloc(ctx, 2, lt->level, &inner);
    for (int j = 0; st == CDL_OK && j < lt->jcount; j++) {
        int terms = 0;
        for (int i = 0; st == CDL_OK && i < g; i++) {
            const cdl_ckks_plaintext *pt = lt->pt[(size_t)j * (size_t)g + (size_t)i];
            if (!pt)
                continue;
            const cdl_ckks_ciphertext *x = i == 0 ? in : baby[i];
            st = terms++ ? cdl_ckks_mul_plain_add(ctx, x, pt, inner) : cdl_ckks_mul_plain(ctx, x, pt, inner);
        }
        if (st != CDL_OK || !terms)
            continue;
        st = cdl_ckks_rescale(ctx, inner, inner);
        const int s = normalize_step(lt, (long long)g * (j + lt->jmin) * lt->step);
        if (st == CDL_OK && s != 0)
            st = cdl_ckks_rotate(ctx, gk, inner, s, inner);
        if (st != CDL_OK)
            break;
        if (!acc) {
            acc = inner;
            inner = NULL;
            st = cdl_ckks_ciphertext_alloc(ctx, 2, lt->level, &inner);
        } else {
            st = cdl_ckks_add(ctx, acc, inner, acc);
        }
    }
    if (st == CDL_OK && !acc)
        st = cdl_fail(CDL_ERR_INTERNAL, "bootstrapping: an empty DFT matrix");
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_copy(ctx, acc, out);
    for (int i = 0; baby && i < g; i++)
        cdl_ckks_ciphertext_free(baby[i]);
    cdl_free(baby);
    cdl_free(rot);
    cdl_free(rot_out);
    cdl_ckks_ciphertext_free(inner);
    cdl_ckks_ciphertext_free(acc);
    return st;
}
