/*
 * lintrans.c: a sparse-diagonal matrix applied to a ciphertext,
 *   M x = sum_t diag_t (.) rot(x, o_t),
 * by the baby-step giant-step method (Halevi and Shoup, CRYPTO 2014 and 2018):
 * with every offset o = (g j + i) * step,
 *   M x = sum_j rot( sum_i rot(diag_(g j + i), -g j step) (.) rot(x, i step), g j step ),
 * so the g baby rotations of x are shared by every giant step and each giant
 * step costs one rotation. The baby rotations are double-hoisted (Bossuat,
 * Mouchet, Troncoso-Pastoriza, Hubaux, EUROCRYPT 2021): one key-switching
 * decomposition for all of them, and each inner sum is accumulated modulo
 * Q*P and divided by P once (cdl_ckks_rotate_dot_plain), so the diagonals of
 * the rotated terms are encoded with the special primes too; likewise the
 * giant rotations' products are summed modulo Q*P before one ModDown
 * (cdl_ckks_rotate_sum). The pre-rotated diagonals are encoded once, at the
 * level they are used, when the bootstrapper is built. Each inner sum is
 * rescaled before its giant rotation, which then runs one level lower (fewer
 * limbs).
 */
#include <string.h>

#include "boot/boot_internal.h"
#include "ckks/keyswitch.h"
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

/* Rotations needed for a choice of g: distinct nonzero baby indices + distinct nonzero giants
 * (*babies_out, *giants_out; *groups_out: distinct giant indices, 0 included). */
static int bsgs_cost(const int *k, int count, int g, int *jmin_out, int *jmax_out, int *babies_out, int *giants_out,
                     int *groups_out)
{
    unsigned char baby[256] = {0};
    int jmin = 1 << 30, jmax = -(1 << 30), giants = 0, groups = 0;
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
        groups += !seen[j - jmin];
        seen[j - jmin] = 1;
    }
    cdl_free(seen);
    int babies = 0;
    for (int i = 1; i < g; i++)
        babies += baby[i];
    *jmin_out = jmin;
    *jmax_out = jmax;
    *babies_out = babies;
    *giants_out = giants;
    *groups_out = groups;
    return babies + giants;
}

/* The cost of applying a transform with this many rotations, in units of one
 * NTT of one limb, with double hoisting: one decomposition (ModUp) of the
 * input, an inner product per baby rotation (IP, memory-bound: ~0.4 NTT per
 * limb product, measured at N = 2^14), per group one ModDown and one rescale,
 * per giant rotation a ModUp and an IP one level lower, and one ModDown for
 * the giant sum. Baby rotations being much cheaper than giant ones, the best
 * split has more baby steps than the classical one (Bossuat et al. 2021 make
 * the same observation). */
static double dh_cost(const cdl_ckks_context *ctx, int level, int babies, int giants, int groups)
{
    double mu[2], ip[2], md[2];
    for (int u = 0; u < 2; u++) {
        const int l = level - u, ext = l + 1 + ctx->p_count, dc = cdl_ckks_digit_count(ctx, l);
        mu[u] = (double)(l + 1) + (double)dc * (double)(ext - ctx->alpha);
        ip[u] = 0.4 * 2.0 * (double)dc * (double)ext;
        md[u] = 2.0 * (double)(ctx->p_count + l + 1);
    }
    const double rescale = 2.0 * (double)(level + 1);
    return (babies ? mu[0] : 0.0) + babies * ip[0] + groups * (md[0] + rescale) + giants * (mu[1] + ip[1]) +
           (giants ? md[1] : 0.0);
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
    /* the fewest rotations (each needs a key: key memory), and among the
     * splits with that many, the cheapest with double hoisting */
    int best_g = 1, best_rot = 1 << 30, jmin = 0, jmax = 0, babies, giants, groups;
    double best = 1e300;
    for (int g = 1; g <= 128 && g <= mult; g++) {
        const int rot = bsgs_cost(k, m->count, g, &jmin, &jmax, &babies, &giants, &groups);
        if (rot >= (1 << 30))
            continue; /* out of memory for this g */
        const double c = dh_cost(ctx, level, babies, giants, groups);
        if (rot < best_rot || (rot == best_rot && c < best)) {
            best_rot = rot;
            best = c;
            best_g = g;
        }
    }
    if (bsgs_cost(k, m->count, best_g, &jmin, &jmax, &babies, &giants, &groups) >= (1 << 30)) {
        cdl_free(k);
        return CDL_ERR_NO_MEMORY;
    }
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
        /* the rotated terms are multiplied modulo Q*P (double hoisting): their diagonals keep the special primes */
        st = i ? cdl_ckks_plaintext_new_qp(ctx, level, slot) : cdl_ckks_plaintext_new_level(ctx, level, slot);
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
            bytes += (size_t)(lt->pt[t]->limbs + (lt->pt[t]->p_data ? lt->pt[t]->p_count : 0)) * lt->pt[t]->n *
                     sizeof(uint64_t);
    return bytes;
}

cdl_status boot_lintrans_apply(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const boot_lintrans *lt,
                               const cdl_ckks_ciphertext *in, cdl_ckks_ciphertext *out)
{
    if (in->level != lt->level)
        return cdl_fail(CDL_ERR_INTERNAL, "bootstrapping: DFT input at level %d, prepared for %d", in->level,
                        lt->level);
    const int g = lt->g;
    int *steps = cdl_alloc_array((size_t)g, sizeof(int));
    int *giant = cdl_alloc_array((size_t)lt->jcount, sizeof(int));
    const cdl_ckks_plaintext **pts = cdl_calloc_array((size_t)lt->jcount * (size_t)g, sizeof(*pts));
    cdl_ckks_ciphertext **inner = cdl_calloc_array((size_t)lt->jcount, sizeof(*inner));
    cdl_status st = (steps && giant && pts && inner) ? CDL_OK : CDL_ERR_NO_MEMORY;
    int groups = 0;
    /* the giant steps with a term, and their diagonals by baby step */
    for (int j = 0; st == CDL_OK && j < lt->jcount; j++) {
        int terms = 0;
        for (int i = 0; i < g; i++) {
            const cdl_ckks_plaintext *pt = lt->pt[(size_t)j * (size_t)g + (size_t)i];
            pts[(size_t)groups * (size_t)g + (size_t)i] = pt;
            terms += pt != NULL;
        }
        if (!terms)
            continue;
        giant[groups] = j;
        st = cdl_ckks_ciphertext_alloc(ctx, 2, lt->level, &inner[groups++]);
    }
    for (int i = 0; st == CDL_OK && i < g; i++)
        steps[i] = normalize_step(lt, (long long)i * lt->step);
    /* Double hoisting (Bossuat et al., EUROCRYPT 2021): every inner sum
     * sum_i pt_(j,i) (.) rot(x, i step) in the extended basis, with one shared
     * decomposition and one ModDown per giant step (the diagonals carry the
     * special primes: cdl_ckks_plaintext_new_qp). */
    if (st == CDL_OK && !groups)
        st = cdl_fail(CDL_ERR_INTERNAL, "bootstrapping: an empty DFT matrix");
    if (st == CDL_OK)
        st = cdl_ckks_rotate_dot_plain(ctx, gk, in, steps, (size_t)g, pts, (size_t)groups, inner);
    /* each inner sum rescaled, then the giant rotations: one decomposition
     * each, their products summed modulo Q*P and one ModDown (the second
     * level of double hoisting) */
    for (int u = 0; st == CDL_OK && u < groups; u++) {
        st = cdl_ckks_rescale(ctx, inner[u], inner[u]);
        giant[u] = normalize_step(lt, (long long)g * (giant[u] + lt->jmin) * lt->step);
    }
    if (st == CDL_OK)
        st = cdl_ckks_rotate_sum(ctx, gk, (const cdl_ckks_ciphertext *const *)inner, giant, (size_t)groups, out);
    for (int u = 0; inner && u < groups; u++)
        cdl_ckks_ciphertext_free(inner[u]);
    cdl_free(inner);
    cdl_free(steps);
    cdl_free(giant);
    cdl_free(pts);
    return st;
}
