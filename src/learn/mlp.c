/*
 * mlp.c: a one-hidden-layer network (x -> u = W1 x -> h = u^2 -> z = W2 h)
 * trained end to end on CKKS ciphertexts: forward and backward passes
 * encrypted, mini-batch Nesterov momentum, one bootstrap per update; and the
 * plaintext twin that runs the same updates in doubles.
 *
 * Layout (learn_internal.h): value s of sample i in slot s m + i. Weights as
 * generalized diagonals, replicated over the samples and pre-rotated for the
 * baby-step giant-step products (B1 x G1 = H, B2 x G2 = C'):
 *   F1[a + b B1][s] = W1[(s - b B1) mod H][(s + a) mod r]
 *   F2[a + b B2][s] = W2[(s - b B2) mod C'][(s + a) mod H]       (period H in s)
 * Per ciphertext X of the batch, the update at level l (the unpacked V):
 *   R[a] = rot(X, a m)                                             l
 *   U  = fold_H( sum_b rot(sum_a R[a] (*) F1[a + b B1], b B1 m) )   l - 1, period H
 *   h  = U^2                                                       l - 2
 *   Z  = fold_C'( sum_b rot(sum_a rot(h, a m) (*) F2[..], b B2 m) ) l - 3, period C'
 *   D2 = kappa (Z / c + 1/c - y)     (kappa = gamma / batch; labels unpacked from the client's packed ones)
 *   acc2[a + b B2] += rot(h, a m) (*) rot(D2, -b B2 m)             (the W2 gradient in the F2 layout)
 *   E1 = sum_b rot( sum_a rot(D2, -a m) (*) T2[a + b B2], -b B2 m ) l - 4, period H: W2^T D2
 *        with T2[a + b B2] = rot(F2[a + b B2], (b B2 - a) m)
 *   D1 = 2 E1 U                                                    l - 5
 *   acc1[a + b B1] += R[a] (*) rot(D1, -b B1 m)                    (the W1 gradient in the F1 layout)
 * then each accumulator is relinearized, rescaled (l - 6) and summed over
 * the samples (sample position 0 holds the sum), and the H + C' sums are
 * packed with one mask (l - 7) into one ciphertext, sample position j holding
 * diagonal j (Horner: a right rotation by one sample between masks). The
 * Nesterov update runs on the packed W and V (from the last bootstrap, with
 * spare levels for its constants); W + i V, divided by the bound, is
 * bootstrapped at level 0 (l - 8), split by a conjugation, and V is unpacked
 * (one mask) into the diagonals of the next update. 9 levels in all.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/bytes.h"
#include "core/error.h"
#include "core/memory.h"
#include "cryptodl/learn.h"
#include "learn/learn_internal.h"

#define LEVELS_PER_UPDATE 9

struct cdl_mlp_encrypted_data {
    uint8_t hash[CDL_CKKS_PARAM_HASH_BYTES];
    size_t n, d, classes, cp, hidden;
    lrn_layout L;
    size_t n_ct, n_yct, per_y;
    int level; /* of the inputs; the labels are at level - 1 */
    cdl_ckks_ciphertext **x, **y;
};

struct cdl_mlp_encrypted_weights {
    uint8_t hash[CDL_CKKS_PARAM_HASH_BYTES];
    size_t d, classes, cp, hidden, b1, b2;
    lrn_layout L;
    cdl_ckks_ciphertext *w; /* packed: sample position j < H holds F1[j], H + q holds F2[q] */
};

void cdl_mlp_config_default(cdl_mlp_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->hidden = 64;
    cfg->batch_ciphertexts = 8;
    cfg->iterations = 100;
    cfg->learning_rate = 0.15;
    cfg->momentum = 0.9;
    cfg->weight_bound = 8.0;
}

static double weight_bound(const cdl_mlp_config *cfg)
{
    return cfg->weight_bound > 0 ? cfg->weight_bound : 8.0;
}

int cdl_mlp_levels_per_iteration(void)
{
    return LEVELS_PER_UPDATE;
}

int cdl_mlp_data_level(int boot_level)
{
    return boot_level - 1;
}

/* Baby steps for n diagonals: G = 4 giant steps from 64 diagonals up, 2 below (fewest key switches). */
static size_t baby_of(size_t n)
{
    return n >= 64 ? n / 4 : n >= 4 ? n / 2 : n;
}

static cdl_status check_config(const cdl_mlp_config *cfg, const char *fn)
{
    if (!cfg)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL config", fn);
    if (cfg->iterations < 1 || cfg->iterations > 100000)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: %d updates, expected 1..100000", fn, cfg->iterations);
    if (cfg->batch_ciphertexts < 1 || cfg->batch_ciphertexts > 1 << 20)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: batch of %d ciphertexts", fn, cfg->batch_ciphertexts);
    if (!(cfg->learning_rate > 0) || !isfinite(cfg->learning_rate) || cfg->learning_rate > 1e6)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: learning rate %g must be positive and finite", fn,
                        cfg->learning_rate);
    if (!(cfg->momentum >= 0) || !(cfg->momentum < 1))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: momentum %g, expected 0 <= mu < 1", fn, cfg->momentum);
    if (!(cfg->weight_bound >= 0) || !(cfg->weight_bound <= 1024))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: weight bound %g, expected 0 < W <= 1024", fn,
                        cfg->weight_bound);
    return CDL_OK;
}

static cdl_status layout(const cdl_ckks_context *ctx, size_t d, size_t classes, size_t hidden, lrn_layout *L,
                         size_t *cp, const char *fn)
{
    if (!ctx)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL context", fn);
    if (d < 1 || classes < 2 || classes > 64)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: %zu inputs and %zu classes; expected d >= 1, 2..64 classes",
                        fn, d, classes);
    const size_t c2 = lrn_pow2_at_least(classes);
    if (hidden < 4 || (hidden & (hidden - 1)) || hidden < c2)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "%s: %zu hidden units: use a power of two, at least the %zu padded classes", fn, hidden, c2);
    CDL_TRY(lrn_layout_make(ctx, d > hidden ? d : hidden, hidden + c2, L, fn));
    *cp = c2;
    return CDL_OK;
}

cdl_status cdl_mlp_layout(const cdl_ckks_context *ctx, size_t d, size_t classes, size_t hidden, size_t *row,
                          size_t *rows_per_ct, size_t *classes_padded)
{
    if (!row || !rows_per_ct || !classes_padded)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_layout: NULL argument");
    lrn_layout L;
    size_t cp = 0;
    CDL_TRY(layout(ctx, d, classes, hidden, &L, &cp, "cdl_mlp_layout"));
    *row = L.row;
    *rows_per_ct = L.m;
    *classes_padded = cp;
    return CDL_OK;
}

static cdl_status galois_steps(const lrn_layout *L, size_t hidden, size_t cp, int *steps, size_t capacity,
                               size_t *count)
{
    *count = 0;
    const int m = (int)L->m;
    const size_t b1 = baby_of(hidden), g1 = hidden / b1, b2 = baby_of(cp), g2 = cp / b2;
    for (size_t a = 1; a < b1; a++)
        CDL_TRY(lrn_steps_add((int)a * m, steps, capacity, count));
    for (size_t b = 1; b < g1; b++) {
        CDL_TRY(lrn_steps_add((int)(b * b1) * m, steps, capacity, count));
        CDL_TRY(lrn_steps_add(-(int)(b * b1) * m, steps, capacity, count));
    }
    for (size_t f = hidden; f < L->row; f *= 2)
        CDL_TRY(lrn_steps_add((int)f * m, steps, capacity, count));
    for (size_t a = 1; a < b2; a++) {
        CDL_TRY(lrn_steps_add((int)a * m, steps, capacity, count));
        CDL_TRY(lrn_steps_add(-(int)a * m, steps, capacity, count));
    }
    for (size_t b = 1; b < g2; b++) {
        CDL_TRY(lrn_steps_add((int)(b * b2) * m, steps, capacity, count));
        CDL_TRY(lrn_steps_add(-(int)(b * b2) * m, steps, capacity, count));
    }
    for (size_t f = cp; f < hidden; f *= 2)
        CDL_TRY(lrn_steps_add((int)f * m, steps, capacity, count));
    for (size_t f = cp; f < L->row; f *= 2) /* the labels' unpacking: power-of-two multiples of C' m */
        CDL_TRY(lrn_steps_add((int)f * m, steps, capacity, count));
    CDL_TRY(lrn_steps_add((int)((hidden + cp + 1) / 2), steps, capacity, count)); /* the paired unpacking */
    return lrn_steps_samples(L, steps, capacity, count);
}

cdl_status cdl_mlp_galois_steps(const cdl_ckks_context *ctx, size_t d, size_t classes, size_t hidden, int *steps,
                                size_t capacity, size_t *count)
{
    if (!steps || !count)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_galois_steps: NULL argument");
    lrn_layout L;
    size_t cp = 0;
    CDL_TRY(layout(ctx, d, classes, hidden, &L, &cp, "cdl_mlp_galois_steps"));
    return galois_steps(&L, hidden, cp, steps, capacity, count);
}

/* ---- client ---- */

/* splitmix64 and Box-Muller: public, deterministic initial weights. */
static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double gaussian(uint64_t *s)
{
    const double u1 = ((double)(splitmix(s) >> 11) + 1.0) / 9007199254740993.0;
    const double u2 = (double)(splitmix(s) >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

cdl_status cdl_mlp_init_weights(size_t d, size_t classes, size_t hidden, uint64_t seed, double *w1, double *w2)
{
    if (!w1 || !w2 || d < 1 || classes < 1 || hidden < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_init_weights: bad argument");
    uint64_t s = seed;
    for (size_t i = 0; i < hidden * d; i++)
        w1[i] = gaussian(&s) / sqrt((double)d);
    for (size_t i = 0; i < classes * hidden; i++)
        w2[i] = gaussian(&s) / sqrt((double)hidden);
    return CDL_OK;
}

void cdl_mlp_encrypted_data_free(cdl_mlp_encrypted_data *data)
{
    if (!data)
        return;
    lrn_free_cts(data->x, data->n_ct);
    lrn_free_cts(data->y, data->n_yct);
    cdl_free(data);
}

size_t cdl_mlp_encrypted_data_ciphertexts(const cdl_mlp_encrypted_data *data)
{
    return data ? data->n_ct : 0;
}

cdl_status cdl_mlp_encrypt_dataset(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                   const double *x, const int *labels, size_t n, size_t d, size_t classes,
                                   size_t hidden, int level, cdl_mlp_encrypted_data **out)
{
    static const char fn[] = "cdl_mlp_encrypt_dataset";
    if (!ctx || !sk || !rng || !x || !labels || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *out = NULL;
    if (level < 1 || level > cdl_ckks_max_level(ctx))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: level %d: expected 1..%d (the labels go one lower)", fn, level,
                        cdl_ckks_max_level(ctx));
    if (n < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: no samples (n = 0)", fn);
    lrn_layout L;
    size_t cp = 0;
    CDL_TRY(layout(ctx, d, classes, hidden, &L, &cp, fn));
    CDL_TRY(lrn_check_samples(x, labels, n, d, classes, "input", fn));
    cdl_mlp_encrypted_data *D = cdl_calloc_array(1, sizeof *D);
    if (!D)
        return CDL_ERR_NO_MEMORY;
    memcpy(D->hash, cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES);
    D->n = n;
    D->d = d;
    D->classes = classes;
    D->cp = cp;
    D->hidden = hidden;
    D->L = L;
    D->per_y = L.row / cp;
    D->level = level;
    cdl_status st = lrn_encrypt_samples(ctx, sk, rng, &L, x, n, d, level, &D->x, &D->n_ct);
    if (st == CDL_OK)
        st = lrn_encrypt_labels(ctx, sk, rng, &L, labels, n, cp, level - 1, &D->y, &D->n_yct);
    if (st != CDL_OK) {
        cdl_mlp_encrypted_data_free(D);
        return st;
    }
    *out = D;
    return CDL_OK;
}

/* The packed vector of W1 (H x d) and W2 (c x H): position j < H holds F1[j], H + q holds F2[q]. */
static void pack_values(const lrn_layout *L, size_t d, size_t classes, size_t cp, size_t hidden, const double *w1,
                        const double *w2, double *v)
{
    const size_t r = L->row, m = L->m, b1 = baby_of(hidden), b2 = baby_of(cp);
    for (size_t q = 0; q < hidden; q++) {
        const size_t a = q % b1, b = q / b1;
        for (size_t s = 0; s < r; s++) {
            const size_t j = (s + hidden * r - b * b1) % hidden, g = (s + a) % r;
            v[s * m + q] = g < d ? w1[j * d + g] : 0.0;
        }
    }
    for (size_t q = 0; q < cp; q++) {
        const size_t a = q % b2, b = q / b2;
        for (size_t s = 0; s < r; s++) {
            const size_t j = (s + cp * r - b * b2) % cp, g = (s + a) % hidden;
            v[s * m + hidden + q] = j < classes ? w2[j * hidden + g] : 0.0;
        }
    }
}

void cdl_mlp_encrypted_weights_free(cdl_mlp_encrypted_weights *w)
{
    if (!w)
        return;
    cdl_ckks_ciphertext_free(w->w);
    cdl_free(w);
}

static cdl_mlp_encrypted_weights *weights_shell(const cdl_mlp_encrypted_data *D)
{
    cdl_mlp_encrypted_weights *w = cdl_calloc_array(1, sizeof *w);
    if (!w)
        return NULL;
    memcpy(w->hash, D->hash, CDL_CKKS_PARAM_HASH_BYTES);
    w->d = D->d;
    w->classes = D->classes;
    w->cp = D->cp;
    w->hidden = D->hidden;
    w->b1 = baby_of(D->hidden);
    w->b2 = baby_of(D->cp);
    w->L = D->L;
    return w;
}

cdl_status cdl_mlp_encrypt_weights(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                   const cdl_mlp_encrypted_data *data, const double *w1, const double *w2, int level,
                                   cdl_mlp_encrypted_weights **out)
{
    if (!ctx || !sk || !rng || !data || !w1 || !w2 || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_encrypt_weights: NULL argument");
    *out = NULL;
    if (level < 0 || level > cdl_ckks_max_level(ctx))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_encrypt_weights: level %d outside 0..%d", level,
                        cdl_ckks_max_level(ctx));
    cdl_mlp_encrypted_weights *w = weights_shell(data);
    double *v = cdl_secure_calloc(data->L.slots, sizeof *v);
    cdl_ckks_plaintext *pt = NULL;
    cdl_status st = w && v ? CDL_OK : CDL_ERR_NO_MEMORY;
    if (st == CDL_OK) {
        pack_values(&data->L, data->d, data->classes, data->cp, data->hidden, w1, w2, v);
        st = cdl_ckks_plaintext_new(ctx, &pt);
    }
    if (st == CDL_OK)
        st = cdl_ckks_encode(ctx, v, data->L.slots, cdl_ckks_default_scale(ctx), level, pt);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_new(ctx, &w->w);
    if (st == CDL_OK)
        st = cdl_ckks_encrypt_sk(ctx, sk, pt, rng, w->w);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_shrink(w->w);
    cdl_ckks_plaintext_free(pt);
    if (v)
        cdl_secure_free(v, data->L.slots * sizeof *v);
    if (st != CDL_OK) {
        cdl_mlp_encrypted_weights_free(w);
        return st;
    }
    *out = w;
    return CDL_OK;
}

cdl_status cdl_mlp_decrypt_weights(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                   const cdl_mlp_encrypted_weights *w, double *w1, double *w2)
{
    if (!ctx || !sk || !w || !w1 || !w2)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_decrypt_weights: NULL argument");
    if (memcmp(w->hash, cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES) != 0)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_mlp_decrypt_weights: weights made under other CKKS parameters");
    const lrn_layout *L = &w->L;
    const size_t r = L->row, m = L->m, H = w->hidden, cp = w->cp;
    cdl_ckks_plaintext *pt = NULL;
    CDL_TRY(cdl_ckks_plaintext_new(ctx, &pt));
    double *v = cdl_secure_calloc(L->slots, sizeof *v);
    cdl_status st = v ? cdl_ckks_decrypt(ctx, sk, w->w, pt) : CDL_ERR_NO_MEMORY;
    if (st == CDL_OK)
        st = cdl_ckks_decode(ctx, pt, v, L->slots);
    if (st == CDL_OK) {
        for (size_t q = 0; q < H; q++) {
            const size_t a = q % w->b1, b = q / w->b1;
            for (size_t s = 0; s < r; s++) {
                const size_t j = (s + H * r - b * w->b1) % H, g = (s + a) % r;
                if (g < w->d)
                    w1[j * w->d + g] = v[s * m + q];
            }
        }
        for (size_t q = 0; q < cp; q++) {
            const size_t a = q % w->b2, b = q / w->b2;
            for (size_t s = 0; s < H; s++) {
                const size_t j = (s + cp * H - b * w->b2) % cp, g = (s + a) % H;
                if (j < w->classes)
                    w2[j * H + g] = v[s * m + H + q];
            }
        }
    }
    if (v)
        cdl_secure_free(v, L->slots * sizeof *v);
    cdl_ckks_plaintext_free(pt);
    return st;
}

/* ---- server ---- */

enum { T_U, T_H, T_Z, T_D2, T_E1, T_D1, T_Y, T_YJ, T_TMP, T_T3, T_M3, T_G, T_PW, T_PV, T_COUNT };

struct cdl_mlp_trainer {
    const cdl_ckks_context *ctx;
    const cdl_ckks_relin_key *rlk;
    const cdl_ckks_galois_keys *gk;
    const cdl_ckks_bootstrapper *bt;
    const cdl_ckks_bootstrap_keys *bk;
    const cdl_mlp_encrypted_data *data;
    cdl_mlp_config cfg;
    lrn_layout L;
    size_t H, cp, b1, g1, b2, g2;
    int boot_level, top; /* the bootstrap's output level; the level of the unpacked diagonals */
    int k, bootstraps;
    double bootstrap_seconds;
    cdl_ckks_ciphertext *Wp, *Vp;       /* packed state (after the last bootstrap) */
    cdl_ckks_ciphertext **F;            /* H + cp unpacked diagonals of V: F1 then F2 */
    cdl_ckks_ciphertext **T2;           /* cp: the transposed W2 diagonals, per update */
    cdl_ckks_ciphertext **F2l;          /* cp: F2 at the level of h */
    cdl_ckks_ciphertext **acc;          /* H + cp gradient accumulators: acc1 then acc2 */
    cdl_ckks_ciphertext **R, **Rl, **Rh, **Rhl, **E, **Bd; /* rotations */
    cdl_ckks_ciphertext *t[T_COUNT];
    lrn_mask mask_unpack, mask_label, mask_pack;
    lrn_mask *mask_pack_w2; /* g2: mask_pack without the padded classes' rows, per giant index of a W2 diagonal */
    cdl_ckks_plaintext *label_shift, *imag;
};

void cdl_mlp_trainer_free(cdl_mlp_trainer *T)
{
    if (!T)
        return;
    cdl_ckks_ciphertext_free(T->Wp);
    cdl_ckks_ciphertext_free(T->Vp);
    lrn_free_cts(T->F, T->H + T->cp);
    lrn_free_cts(T->T2, T->cp);
    lrn_free_cts(T->F2l, T->cp);
    lrn_free_cts(T->acc, T->H + T->cp);
    lrn_free_cts(T->R, T->b1);
    lrn_free_cts(T->Rl, T->b1);
    lrn_free_cts(T->Rh, T->b2);
    lrn_free_cts(T->Rhl, T->b2);
    lrn_free_cts(T->E, T->g1 > T->g2 ? T->g1 : T->g2);
    lrn_free_cts(T->Bd, T->b2);
    for (int i = 0; i < T_COUNT; i++)
        cdl_ckks_ciphertext_free(T->t[i]);
    lrn_mask_free(&T->mask_unpack);
    lrn_mask_free(&T->mask_label);
    lrn_mask_free(&T->mask_pack);
    for (size_t b = 0; T->mask_pack_w2 && b < T->g2; b++)
        lrn_mask_free(&T->mask_pack_w2[b]);
    cdl_free(T->mask_pack_w2);
    cdl_ckks_plaintext_free(T->label_shift);
    cdl_ckks_plaintext_free(T->imag);
    cdl_free(T);
}

/* A mask plaintext over the values s (every sample): 1 where lo <= s mod period < hi, times value. */
typedef struct {
    size_t period, lo, hi;
    double value;
} value_band;

static void fill_band(const lrn_layout *L, const void *arg, double *v)
{
    const value_band *b = arg;
    for (size_t s = 0; s < L->row; s++)
        if (s % b->period >= b->lo && s % b->period < b->hi)
            for (size_t i = 0; i < L->m; i++)
                v[s * L->m + i] = b->value;
}

static cdl_status mask_values(const cdl_ckks_context *ctx, const lrn_layout *L, size_t period, size_t lo, size_t hi,
                              double value, int level, double scale, cdl_ckks_plaintext **pt)
{
    const value_band band = {period, lo, hi, value};
    return lrn_encode_filled(ctx, L, fill_band, &band, level, scale, pt);
}

/* V (packed, at the bootstrap's level) -> the diagonals F at T->top, two at a time: C = V + i rot(V, h) holds
 * diagonals j and j + h in the real and imaginary parts of sample position j (h = half the count, rounded up),
 * so one chain of rotations replicates both (a shift by one position, the mask of position 0, log2(m)
 * rotate-and-adds), and one conjugation splits them: F_j = (c + conj(c)) / 2, F_(j+h) = -i (c - conj(c)) / 2.
 * The positions >= count of rot(V, h) hold the next value's diagonals; only positions below h are unpacked. */
static cdl_status unpack_state(cdl_mlp_trainer *T)
{
    const cdl_ckks_context *ctx = T->ctx;
    const lrn_layout *L = &T->L;
    const size_t count = T->H + T->cp, h = (count + 1) / 2;
    const double S = cdl_ckks_default_scale(ctx);
    cdl_ckks_ciphertext *c = T->t[T_G], *tmp = T->t[T_TMP], *cj = T->t[T_PV], *a = T->t[T_PW];
    CDL_TRY(cdl_ckks_rotate(ctx, T->gk, T->Vp, (int)h, c));
    CDL_TRY(cdl_ckks_mul_plain(ctx, c, T->imag, c));
    cdl_ckks_ciphertext_set_scale(c, cdl_ckks_ciphertext_scale(T->Vp));
    CDL_TRY(cdl_ckks_add(ctx, c, T->Vp, c));
    const double sc = cdl_ckks_ciphertext_scale(c);
    for (size_t j = 0; j < h; j++) {
        if (j > 0)
            CDL_TRY(cdl_ckks_rotate(ctx, T->gk, c, 1, c)); /* position j now at 0 */
        /* keep position 0, landing exactly on scale S (the sums of the split below are twice the values: read
         * at 2 S) */
        const int lc = cdl_ckks_ciphertext_level(c);
        const double enc = S * (double)cdl_ckks_prime(ctx, lc) / sc;
        CDL_TRY(lrn_mask_columns(ctx, L, L->m, lc, enc, &T->mask_unpack));
        CDL_TRY(cdl_ckks_mul_plain(ctx, c, T->mask_unpack.pt, a));
        CDL_TRY(cdl_ckks_rescale(ctx, a, a));
        cdl_ckks_ciphertext_set_scale(a, S);
        CDL_TRY(lrn_rotate_sum(ctx, T->gk, a, tmp, 1, L->m, -1));
        CDL_TRY(cdl_ckks_conjugate(ctx, T->gk, a, cj));
        CDL_TRY(cdl_ckks_add(ctx, a, cj, T->F[j]));
        cdl_ckks_ciphertext_set_scale(T->F[j], 2.0 * S);
        if (j + h < count) {
            CDL_TRY(cdl_ckks_sub(ctx, a, cj, T->F[j + h]));
            CDL_TRY(cdl_ckks_mul_plain(ctx, T->F[j + h], T->imag, T->F[j + h]));
            CDL_TRY(cdl_ckks_negate(ctx, T->F[j + h], T->F[j + h]));
            cdl_ckks_ciphertext_set_scale(T->F[j + h], 2.0 * S);
        }
    }
    for (size_t q = 0; q < count; q++)
        if (cdl_ckks_ciphertext_level(T->F[q]) > T->top)
            CDL_TRY(cdl_ckks_drop_to_level(ctx, T->F[q], T->top, T->F[q]));
    return CDL_OK;
}

static cdl_status trainer_init(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                               const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                               const cdl_ckks_bootstrap_keys *bk, const cdl_mlp_encrypted_data *data,
                               const cdl_mlp_config *cfg, const char *fn, cdl_mlp_trainer **out)
{
    if (!ctx || !rlk || !gk || !bt || !bk || !data || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "%s: NULL argument (the network is bootstrapped every update: it needs a bootstrapper and "
                        "its keys)",
                        fn);
    *out = NULL;
    CDL_TRY(check_config(cfg, fn));
    if ((size_t)cfg->hidden != data->hidden)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: the data were laid out for %zu hidden units, the config has %d", fn,
                        data->hidden, cfg->hidden);
    int boot_level = -1;
    CDL_TRY(lrn_check_setup(ctx, data->hash, bt, "the state fills", fn, &boot_level));
    if (boot_level < LEVELS_PER_UPDATE)
        return cdl_fail(CDL_ERR_PARAMETERS,
                        "%s: a bootstrap leaves %d levels; an update needs %d (unpack 1, forward and backward 6, "
                        "pack 1, the bootstrap's input 1)",
                        fn, boot_level, LEVELS_PER_UPDATE);
    const int top = LEVELS_PER_UPDATE - 1;
    if (data->level < top)
        return cdl_fail(CDL_ERR_PARAMETERS, "%s: the inputs are at level %d; updates start at %d", fn, data->level,
                        top);
    int steps[CDL_MLP_MAX_STEPS];
    size_t nsteps = 0;
    CDL_TRY(galois_steps(&data->L, data->hidden, data->cp, steps, CDL_MLP_MAX_STEPS, &nsteps));
    const int need = boot_level > data->level ? boot_level : data->level;
    CDL_TRY(lrn_check_galois_keys(gk, steps, nsteps, need, "cdl_mlp_galois_steps", fn));
    CDL_TRY(lrn_check_conjugation(gk, boot_level, "state", fn));
    cdl_mlp_trainer *T = cdl_calloc_array(1, sizeof *T);
    if (!T)
        return CDL_ERR_NO_MEMORY;
    T->ctx = ctx;
    T->rlk = rlk;
    T->gk = gk;
    T->bt = bt;
    T->bk = bk;
    T->data = data;
    T->cfg = *cfg;
    T->L = data->L;
    T->H = data->hidden;
    T->cp = data->cp;
    T->b1 = baby_of(T->H);
    T->g1 = T->H / T->b1;
    T->b2 = baby_of(T->cp);
    T->g2 = T->cp / T->b2;
    T->boot_level = boot_level;
    T->top = top;
    T->mask_unpack.level = T->mask_label.level = T->mask_pack.level = -1;
    const size_t ng = T->g1 > T->g2 ? T->g1 : T->g2;
    T->mask_pack_w2 = cdl_calloc_array(T->g2, sizeof *T->mask_pack_w2);
    cdl_status st = T->mask_pack_w2 ? lrn_new_cts(ctx, &T->F, T->H + T->cp) : CDL_ERR_NO_MEMORY;
    for (size_t b = 0; T->mask_pack_w2 && b < T->g2; b++)
        T->mask_pack_w2[b].level = -1;
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->T2, T->cp);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->F2l, T->cp);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->acc, T->H + T->cp);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->R, T->b1);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->Rl, T->b1);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->Rh, T->b2);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->Rhl, T->b2);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->E, ng);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->Bd, T->b2);
    for (int i = 0; st == CDL_OK && i < T_COUNT; i++)
        st = lrn_new_ct(ctx, &T->t[i]);
    if (st == CDL_OK)
        st = lrn_new_ct(ctx, &T->Wp);
    if (st == CDL_OK)
        st = lrn_new_ct(ctx, &T->Vp);
    if (st == CDL_OK)
        st = lrn_imag_plaintext(ctx, T->boot_level, &T->imag);
    if (st != CDL_OK) {
        cdl_mlp_trainer_free(T);
        return st;
    }
    *out = T;
    return CDL_OK;
}

cdl_status cdl_mlp_trainer_new(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                               const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                               const cdl_ckks_bootstrap_keys *bk, const cdl_mlp_encrypted_data *data,
                               const cdl_mlp_encrypted_weights *init, const cdl_mlp_config *cfg, cdl_mlp_trainer **out)
{
    static const char fn[] = "cdl_mlp_trainer_new";
    if (!init || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *out = NULL;
    if (memcmp(init->hash, cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES) != 0 || !data ||
        init->hidden != data->hidden || init->d != data->d || init->classes != data->classes)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: the initial weights do not belong to these parameters and data", fn);
    cdl_mlp_trainer *T = NULL;
    CDL_TRY(trainer_init(ctx, rlk, gk, bt, bk, data, cfg, fn, &T));
    cdl_status st = CDL_OK;
    if (cdl_ckks_ciphertext_level(init->w) < T->top + 1)
        st = cdl_fail(CDL_ERR_PARAMETERS, "%s: the initial weights are at level %d, at least %d needed", fn,
                      cdl_ckks_ciphertext_level(init->w), T->top + 1);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_copy(ctx, init->w, T->Wp);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_copy(ctx, init->w, T->Vp);
    if (st != CDL_OK) {
        cdl_mlp_trainer_free(T);
        return st;
    }
    *out = T;
    return CDL_OK;
}

/* yneg = kappa (1/c - y) for feature ciphertext j, at `level` with scale exactly `target`. */
static cdl_status labels_for(cdl_mlp_trainer *T, size_t j, double kappa, int level, double target,
                             cdl_ckks_ciphertext *out)
{
    const cdl_ckks_context *ctx = T->ctx;
    const cdl_mlp_encrypted_data *D = T->data;
    const lrn_layout *L = &T->L;
    const double delta = cdl_ckks_default_scale(ctx);
    const size_t p = j % D->per_y;
    cdl_ckks_ciphertext *y = T->t[T_Y];
    CDL_TRY(cdl_ckks_ciphertext_copy(ctx, D->y[j / D->per_y], y));
    for (size_t bit = 1; bit <= p; bit *= 2) /* block p to block 0, by the power-of-two multiples of C' m */
        if (p & bit)
            CDL_TRY(cdl_ckks_rotate(ctx, T->gk, y, (int)(bit * T->cp * L->m), y));
    const int ly = cdl_ckks_ciphertext_level(y);
    const double enc = delta * (double)cdl_ckks_prime(ctx, ly) / cdl_ckks_ciphertext_scale(y);
    if (T->mask_label.level != ly || T->mask_label.scale != enc) {
        CDL_TRY(mask_values(ctx, L, L->row, 0, T->cp, -1.0, ly, enc, &T->mask_label.pt));
        T->mask_label.level = ly;
        T->mask_label.scale = enc;
        CDL_TRY(mask_values(ctx, L, T->cp, 0, D->classes, 1.0 / (double)D->classes, ly - 1, delta, &T->label_shift));
    }
    CDL_TRY(cdl_ckks_mul_plain(ctx, y, T->mask_label.pt, out));
    CDL_TRY(cdl_ckks_rescale(ctx, out, out));
    cdl_ckks_ciphertext_set_scale(out, delta);
    CDL_TRY(lrn_rotate_sum(ctx, T->gk, out, T->t[T_TMP], T->cp * L->m, L->row * L->m, 1)); /* -y, period C' */
    CDL_TRY(cdl_ckks_add_plain(ctx, out, T->label_shift, out));                         /* 1/c - y */
    if (cdl_ckks_ciphertext_level(out) > level + 1)
        CDL_TRY(cdl_ckks_drop_to_level(ctx, out, level + 1, out));
    return lrn_mul_const_to(ctx, out, kappa, target, out);
}

/* The samples in feature ciphertexts [j0, j0 + B) (mod the count). */
static size_t batch_samples(const cdl_mlp_encrypted_data *D, size_t j0, size_t B)
{
    size_t total = 0;
    for (size_t t = 0; t < B; t++) {
        const size_t j = (j0 + t) % D->n_ct;
        total += j + 1 < D->n_ct ? D->L.m : D->n - j * D->L.m;
    }
    return total;
}

/* One update's forward and backward passes over the batch: acc[0..H) = the W1 gradient (F1 layout), acc[H..) the
 * W2 gradient (F2 layout), each times gamma / batch, summed over the samples in sample position 0, at level 2. */
static cdl_status gradients(cdl_mlp_trainer *T, size_t j0)
{
    const cdl_ckks_context *ctx = T->ctx;
    const cdl_mlp_encrypted_data *D = T->data;
    const lrn_layout *L = &T->L;
    const int m = (int)L->m, l = T->top;
    const size_t H = T->H, cp = T->cp, B = (size_t)T->cfg.batch_ciphertexts;
    const double kappa = T->cfg.learning_rate / (double)batch_samples(D, j0, B);
    cdl_ckks_ciphertext *U = T->t[T_U], *h = T->t[T_H], *Z = T->t[T_Z], *D2 = T->t[T_D2], *E1 = T->t[T_E1],
                        *D1 = T->t[T_D1], *t3 = T->t[T_T3], *m3 = T->t[T_M3], *tmp = T->t[T_TMP];
    cdl_ckks_ciphertext **F1 = T->F, **F2 = T->F + H, **acc1 = T->acc, **acc2 = T->acc + H;
    /* per update: F2 at the level of h (l - 2), and the transposed diagonals at the level of D2 (l - 3) */
    for (size_t q = 0; q < cp; q++) {
        const size_t a = q % T->b2, b = q / T->b2;
        CDL_TRY(cdl_ckks_drop_to_level(ctx, F2[q], l - 2, T->F2l[q]));
        CDL_TRY(cdl_ckks_drop_to_level(ctx, F2[q], l - 3, T->T2[q]));
        if (b)
            CDL_TRY(cdl_ckks_rotate(ctx, T->gk, T->T2[q], (int)(b * T->b2) * m, T->T2[q]));
        if (a)
            CDL_TRY(cdl_ckks_rotate(ctx, T->gk, T->T2[q], -(int)a * m, T->T2[q]));
    }
    for (size_t t = 0; t < B; t++) {
        const size_t j = (j0 + t) % D->n_ct;
        const int first = t == 0;
        /* U = W1 x (period H), h = U^2 */
        CDL_TRY(lrn_hoisted(ctx, T->gk, D->x[j], l, m, T->b1, T->R));
        CDL_TRY(lrn_diag_product(ctx, T->rlk, T->gk, T->R, T->b1, T->g1, (int)T->b1 * m, F1, U, t3, m3, tmp));
        CDL_TRY(cdl_ckks_rescale(ctx, U, U));
        CDL_TRY(lrn_rotate_sum(ctx, T->gk, U, tmp, H * L->m, L->row * L->m, 1));
        CDL_TRY(lrn_mul_relin_rescale(ctx, T->rlk, U, U, h));
        /* Z = W2 h (period C') */
        CDL_TRY(lrn_hoisted(ctx, T->gk, h, l - 2, m, T->b2, T->Rh));
        CDL_TRY(lrn_diag_product(ctx, T->rlk, T->gk, T->Rh, T->b2, T->g2, (int)T->b2 * m, T->F2l, Z, t3, m3, tmp));
        CDL_TRY(cdl_ckks_rescale(ctx, Z, Z));
        CDL_TRY(lrn_rotate_sum(ctx, T->gk, Z, tmp, cp * L->m, H * L->m, 1));
        /* D2 = kappa (Z / c + 1/c - y) */
        cdl_ckks_ciphertext_set_scale(Z, cdl_ckks_ciphertext_scale(Z) * (double)D->classes / kappa);
        CDL_TRY(labels_for(T, j, kappa, l - 3, cdl_ckks_ciphertext_scale(Z), D2));
        CDL_TRY(cdl_ckks_add(ctx, D2, Z, D2));
        /* the W2 gradient: rot(h, a m) (*) rot(D2, -b B2 m) */
        CDL_TRY(lrn_hoisted(ctx, T->gk, D2, l - 3, -(int)T->b2 * m, T->g2, T->E));
        for (size_t a = 0; a < T->b2; a++)
            CDL_TRY(cdl_ckks_drop_to_level(ctx, T->Rh[a], l - 3, T->Rhl[a]));
        CDL_TRY(lrn_outer_accumulate(ctx, T->Rhl, T->b2, T->E, T->g2, acc2, first, m3));
        /* E1 = W2^T D2 (period H), D1 = 2 U E1 */
        CDL_TRY(lrn_hoisted(ctx, T->gk, D2, l - 3, -m, T->b2, T->Bd));
        CDL_TRY(lrn_diag_product(ctx, T->rlk, T->gk, T->Bd, T->b2, T->g2, -(int)T->b2 * m, T->T2, E1, t3, m3, tmp));
        CDL_TRY(cdl_ckks_rescale(ctx, E1, E1));
        CDL_TRY(cdl_ckks_drop_to_level(ctx, U, l - 4, U));
        CDL_TRY(lrn_mul_relin_rescale(ctx, T->rlk, E1, U, D1));
        cdl_ckks_ciphertext_set_scale(D1, cdl_ckks_ciphertext_scale(D1) / 2.0);
        /* the W1 gradient: rot(X, a m) (*) rot(D1, -b B1 m) */
        CDL_TRY(lrn_hoisted(ctx, T->gk, D1, l - 5, -(int)T->b1 * m, T->g1, T->E));
        for (size_t a = 0; a < T->b1; a++)
            CDL_TRY(cdl_ckks_drop_to_level(ctx, T->R[a], l - 5, T->Rl[a]));
        CDL_TRY(lrn_outer_accumulate(ctx, T->Rl, T->b1, T->E, T->g1, acc1, first, m3));
    }
    /* relinearize, rescale, bring to level l - 6, sum over the samples (sample position 0) */
    for (size_t q = 0; q < H + cp; q++) {
        CDL_TRY(cdl_ckks_relinearize(ctx, T->rlk, T->acc[q], T->acc[q]));
        CDL_TRY(cdl_ckks_rescale(ctx, T->acc[q], T->acc[q]));
        if (cdl_ckks_ciphertext_level(T->acc[q]) > l - 6)
            CDL_TRY(cdl_ckks_drop_to_level(ctx, T->acc[q], l - 6, T->acc[q]));
        CDL_TRY(lrn_rotate_sum(ctx, T->gk, T->acc[q], tmp, 1, L->m, 1));
        if (q >= H && L->row > H) {
            /* W2 is held in row / H copies (its diagonals have period H over the row values), and each copy
             * computes its own Z, D2 and gradient. Exactly they are equal; on ciphertexts each copy gets its
             * own bootstrap noise, and the difference between two copies follows the same unchecked linear
             * dynamics as the padding classes (mask_real_classes), growing once the curvature passes the
             * stability limit; the copies also feed different rows of the W1 gradient. So every copy gets the
             * mean of their gradients: the copies then differ by the bootstraps' noise only. */
            CDL_TRY(lrn_rotate_sum(ctx, T->gk, T->acc[q], tmp, H * L->m, L->row * L->m, 1));
            cdl_ckks_ciphertext_set_scale(T->acc[q], cdl_ckks_ciphertext_scale(T->acc[q]) * (double)(L->row / H));
        }
    }
    return CDL_OK;
}

/* The mask of pack_gradient for the W2 diagonals of giant index b: sample position 0 of the values s whose class
 * (s - b B2) mod C' is a real one, not one of the padding classes up to C'. The padding rows have no labels
 * and start at zero, so in exact arithmetic they stay zero; on ciphertexts every bootstrap leaves noise in them,
 * and their gradient (kappa Z_pad / c times h) is plain gradient descent on |W2_pad h|^2 / 2c, whose curvature
 * passes the Nesterov stability limit for gamma = 0.2 once the hidden values grow (about update 20 of the
 * 197-64-10 MNIST run at N = 2^16): the noise then grew by about 1.4x per update, leaked into W1 through W2^T D2,
 * and the run diverged (docs/learn.md). Without their gradient the padding rows only carry the bootstraps' noise. */
typedef struct {
    const cdl_mlp_trainer *T;
    size_t b;
} real_classes_of;

static void fill_real_classes(const lrn_layout *L, const void *arg, double *v)
{
    const cdl_mlp_trainer *T = ((const real_classes_of *)arg)->T;
    const size_t b = ((const real_classes_of *)arg)->b, cp = T->cp;
    for (size_t s = 0; s < L->row; s++)
        if ((s + cp * T->H - b * T->b2) % cp < T->data->classes)
            v[s * L->m] = 1.0;
}

static cdl_status mask_real_classes(cdl_mlp_trainer *T, size_t b, int level, double scale, lrn_mask *mk)
{
    const real_classes_of arg = {T, b};
    return lrn_mask_filled(T->ctx, &T->L, fill_real_classes, &arg, level, scale, mk);
}

/* The sums in acc (sample position 0) -> one packed ciphertext G (position q holds acc[q]) at level l - 7,
 * scale exactly `target`: a mask per accumulator and a right rotation by one sample between them (Horner). */
static cdl_status pack_gradient(cdl_mlp_trainer *T, double target, cdl_ckks_ciphertext *G)
{
    const cdl_ckks_context *ctx = T->ctx;
    const size_t n = T->H + T->cp;
    cdl_ckks_ciphertext *tmp = T->t[T_TMP];
    for (size_t q = n; q-- > 0;) {
        cdl_ckks_ciphertext *a = T->acc[q];
        const int la = cdl_ckks_ciphertext_level(a);
        const double enc = target * (double)cdl_ckks_prime(ctx, la) / cdl_ckks_ciphertext_scale(a);
        lrn_mask *mk = &T->mask_pack;
        if (q < T->H)
            CDL_TRY(lrn_mask_columns(ctx, &T->L, T->L.m, la, enc, mk));
        else
            CDL_TRY(mask_real_classes(T, (q - T->H) / T->b2, la, enc, mk = &T->mask_pack_w2[(q - T->H) / T->b2]));
        CDL_TRY(cdl_ckks_mul_plain(ctx, a, mk->pt, tmp));
        CDL_TRY(cdl_ckks_rescale(ctx, tmp, tmp));
        cdl_ckks_ciphertext_set_scale(tmp, target);
        if (q == n - 1) {
            CDL_TRY(cdl_ckks_ciphertext_copy(ctx, tmp, G));
        } else {
            CDL_TRY(cdl_ckks_rotate(ctx, T->gk, G, -1, G));
            CDL_TRY(cdl_ckks_add(ctx, G, tmp, G));
        }
    }
    return CDL_OK;
}

/* The Nesterov update on the packed state, then (W + i V) / bound bootstrapped and split. */
static cdl_status update_and_bootstrap(cdl_mlp_trainer *T)
{
    const cdl_ckks_context *ctx = T->ctx;
    const double S = cdl_ckks_default_scale(ctx), bound = weight_bound(&T->cfg), mu = T->cfg.momentum;
    cdl_ckks_ciphertext *G = T->t[T_G], *PW = T->t[T_PW], *PV = T->t[T_PV], *tmp = T->t[T_TMP];
    CDL_TRY(pack_gradient(T, S, G)); /* gamma G(V), packed, level 1 */
    const int lg = cdl_ckks_ciphertext_level(G);
    /* W_new = V - G */
    CDL_TRY(cdl_ckks_drop_to_level(ctx, T->Vp, lg + 1, PW));
    CDL_TRY(lrn_mul_const_to(ctx, PW, 1.0, S, PW));
    CDL_TRY(cdl_ckks_sub(ctx, PW, G, PW));
    /* V_new = (1 + mu) (V - G) - mu W_old, at scale S / (1 + mu) with G relabelled */
    const double target = S / (1.0 + mu);
    CDL_TRY(cdl_ckks_drop_to_level(ctx, T->Vp, lg + 1, PV));
    CDL_TRY(lrn_mul_const_to(ctx, PV, 1.0 + mu, target, PV));
    cdl_ckks_ciphertext_set_scale(G, target);
    CDL_TRY(cdl_ckks_sub(ctx, PV, G, PV));
    if (mu != 0) {
        CDL_TRY(cdl_ckks_drop_to_level(ctx, T->Wp, lg + 1, tmp));
        CDL_TRY(lrn_mul_const_to(ctx, tmp, mu, target, tmp));
        CDL_TRY(cdl_ckks_sub(ctx, PV, tmp, PV));
    }
    /* (W_new + i V_new) / bound at level 0, bootstrapped, split by a conjugation */
    const lrn_boot b = {T->bt, T->bk, T->rlk, T->gk, T->imag};
    CDL_TRY(lrn_bootstrap_pair(ctx, &b, bound, PW, PV, T->Wp, T->Vp, tmp, &T->bootstrap_seconds));
    T->bootstraps++;
    return CDL_OK;
}

cdl_status cdl_mlp_trainer_step(cdl_mlp_trainer *T)
{
    if (!T)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_trainer_step: NULL trainer");
    if (T->k >= T->cfg.iterations)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_trainer_step: all %d updates are done", T->cfg.iterations);
    const size_t j0 = ((size_t)T->k * (size_t)T->cfg.batch_ciphertexts) % T->data->n_ct;
    CDL_TRY(unpack_state(T));
    CDL_TRY(gradients(T, j0));
    CDL_TRY(update_and_bootstrap(T));
    T->k++;
    return CDL_OK;
}

int cdl_mlp_trainer_iteration(const cdl_mlp_trainer *T)
{
    return T ? T->k : -1;
}

int cdl_mlp_trainer_bootstraps(const cdl_mlp_trainer *T)
{
    return T ? T->bootstraps : -1;
}

double cdl_mlp_trainer_bootstrap_seconds(const cdl_mlp_trainer *T)
{
    return T ? T->bootstrap_seconds : 0.0;
}

int cdl_mlp_trainer_level(const cdl_mlp_trainer *T)
{
    return T ? cdl_ckks_ciphertext_level(T->Wp) : -1;
}

cdl_status cdl_mlp_trainer_weights(const cdl_mlp_trainer *T, cdl_mlp_encrypted_weights **out)
{
    if (!T || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_trainer_weights: NULL argument");
    *out = NULL;
    cdl_mlp_encrypted_weights *w = weights_shell(T->data);
    if (!w)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = cdl_ckks_ciphertext_new(T->ctx, &w->w);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_copy(T->ctx, T->Wp, w->w);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_shrink(w->w);
    if (st != CDL_OK) {
        cdl_mlp_encrypted_weights_free(w);
        return st;
    }
    *out = w;
    return CDL_OK;
}

/* ---- checkpoints ---- */

#define TRAINER_MAGIC "CDLMLTR1"
#define TRAINER_VERSION 1u

/* What a checkpoint must agree on besides the CKKS parameters, as this run writes it. */
static size_t header_fields(const cdl_mlp_encrypted_data *D, const cdl_mlp_config *c, lrn_field *f)
{
    size_t n = lrn_fields_data(f, D->n, "inputs", D->d, D->classes, D->level);
    f[n++] = lrn_field_u32("hidden units", (uint32_t)c->hidden);
    f[n++] = lrn_field_u32("batch ciphertexts", (uint32_t)c->batch_ciphertexts);
    f[n++] = lrn_field_u32("updates", (uint32_t)c->iterations);
    f[n++] = lrn_field_f64("learning rate", c->learning_rate);
    f[n++] = lrn_field_f64("momentum", c->momentum);
    f[n++] = lrn_field_f64("weight bound", weight_bound(c));
    return n;
}

cdl_status cdl_mlp_trainer_save(const cdl_mlp_trainer *T, uint8_t **data, size_t *len)
{
    if (!T || !data || !len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_mlp_trainer_save: NULL argument");
    *data = NULL;
    *len = 0;
    lrn_field f[LRN_MAX_FIELDS];
    const size_t nf = header_fields(T->data, &T->cfg, f);
    const lrn_counters c = {(uint32_t)T->boot_level, (uint32_t)T->k, (uint32_t)T->bootstraps};
    cdl_writer w;
    lrn_checkpoint_begin(&w, TRAINER_MAGIC, TRAINER_VERSION, T->data->hash, f, nf, &c);
    cdl_ckks_ciphertext *state[2] = {T->Wp, T->Vp};
    return lrn_checkpoint_finish(&w, lrn_write_cts(T->ctx, &w, state, 2), data, len);
}

cdl_status cdl_mlp_trainer_load(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                const cdl_ckks_bootstrap_keys *bk, const cdl_mlp_encrypted_data *data,
                                const cdl_mlp_config *cfg, const uint8_t *bytes, size_t len, cdl_mlp_trainer **out)
{
    const char *fn = "cdl_mlp_trainer_load";
    if (!bytes || !out || !ctx || !data || !cfg)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *out = NULL;
    cdl_reader r;
    CDL_TRY(lrn_checkpoint_open(bytes, len, TRAINER_MAGIC, "a network training checkpoint", fn, &r));
    lrn_field f[LRN_MAX_FIELDS];
    const size_t nf = header_fields(data, cfg, f);
    lrn_counters c;
    CDL_TRY(lrn_header_read(&r, TRAINER_VERSION, ctx, f, nf, &c, fn));
    const uint32_t boot = c.boot, k = c.k, boots = c.bootstraps;
    if (k > (uint32_t)cfg->iterations || boots != k)
        return cdl_fail(CDL_ERR_FORMAT, "%s: update %u of %u, %u bootstraps: not a valid state", fn, k,
                        (uint32_t)cfg->iterations, boots);
    cdl_mlp_trainer *T = NULL;
    CDL_TRY(trainer_init(ctx, rlk, gk, bt, bk, data, cfg, fn, &T));
    cdl_status st = CDL_OK;
    if ((int)boot != T->boot_level)
        st = cdl_fail(CDL_ERR_MISMATCH, "%s: the checkpoint was made with another bootstrapper (output level %u)", fn,
                      boot);
    cdl_ckks_ciphertext *state[2] = {NULL, NULL};
    if (st == CDL_OK)
        st = lrn_read_cts(ctx, &r, state, 2, T->boot_level, fn);
    if (st == CDL_OK)
        st = cdl_reader_expect_end(&r);
    if (st == CDL_OK && (cdl_ckks_ciphertext_level(state[0]) < T->top + 1 ||
                         cdl_ckks_ciphertext_level(state[1]) < T->top + 1))
        st = cdl_fail(CDL_ERR_FORMAT, "%s: the saved state is below the level an update starts from", fn);
    if (st != CDL_OK) {
        cdl_ckks_ciphertext_free(state[0]);
        cdl_ckks_ciphertext_free(state[1]);
        cdl_mlp_trainer_free(T);
        return st;
    }
    cdl_ckks_ciphertext_free(T->Wp);
    cdl_ckks_ciphertext_free(T->Vp);
    T->Wp = state[0];
    T->Vp = state[1];
    T->k = (int)k;
    T->bootstraps = (int)boots;
    *out = T;
    return CDL_OK;
}

/* ---- plaintext twin ---- */

cdl_status cdl_mlp_train_plain(const double *x, const int *labels, size_t n, size_t d, size_t classes,
                               size_t samples_per_ct, const cdl_mlp_config *cfg, const double *w1_init,
                               const double *w2_init, double *w1, double *w2, cdl_mlp_plain_stats *stats)
{
    static const char fn[] = "cdl_mlp_train_plain";
    if (!x || !labels || !w1_init || !w2_init || !w1 || !w2)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    CDL_TRY(check_config(cfg, fn));
    const size_t H = (size_t)cfg->hidden, m = samples_per_ct, c = classes;
    if (n < 1 || d < 1 || classes < 2 || H < 1 || m < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: n = %zu, d = %zu, %zu classes, %zu per ciphertext", fn, n, d,
                        classes, m);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= classes)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: label %zu is %d", fn, i, labels[i]);
    const size_t n1 = H * d, n2 = c * H, n_ct = (n + m - 1) / m;
    double *buf = cdl_calloc_array(4 * (n1 + n2) + 2 * H + c, sizeof *buf);
    if (!buf)
        return CDL_ERR_NO_MEMORY;
    double *W1 = buf, *V1 = W1 + n1, *G1 = V1 + n1, *N1 = G1 + n1;
    double *W2 = N1 + n1, *V2 = W2 + n2, *G2 = V2 + n2, *N2 = G2 + n2;
    double *u = N2 + n2, *e1 = u + H, *d2 = e1 + H;
    memcpy(W1, w1_init, n1 * sizeof *W1);
    memcpy(V1, w1_init, n1 * sizeof *V1);
    memcpy(W2, w2_init, n2 * sizeof *W2);
    memcpy(V2, w2_init, n2 * sizeof *V2);
    const double mu = cfg->momentum;
    double max_state = 0, max_u = 0, max_z = 0;
    for (int t = 0; t < cfg->iterations; t++) {
        const size_t j0 = ((size_t)t * (size_t)cfg->batch_ciphertexts) % n_ct;
        size_t nb = 0;
        for (int b = 0; b < cfg->batch_ciphertexts; b++) {
            const size_t j = (j0 + (size_t)b) % n_ct;
            nb += j + 1 < n_ct ? m : n - j * m;
        }
        const double kappa = cfg->learning_rate / (double)nb;
        memset(G1, 0, n1 * sizeof *G1);
        memset(G2, 0, n2 * sizeof *G2);
        for (int b = 0; b < cfg->batch_ciphertexts; b++) {
            const size_t j = (j0 + (size_t)b) % n_ct;
            for (size_t i = j * m; i < (j + 1) * m && i < n; i++) {
                const double *xi = x + i * d;
                for (size_t k = 0; k < H; k++) {
                    double s = 0;
                    for (size_t g = 0; g < d; g++)
                        s += V1[k * d + g] * xi[g];
                    u[k] = s;
                    max_u = fmax(max_u, fabs(s));
                }
                for (size_t o = 0; o < c; o++) {
                    double z = 0;
                    for (size_t k = 0; k < H; k++)
                        z += V2[o * H + k] * u[k] * u[k];
                    max_z = fmax(max_z, fabs(z));
                    d2[o] = kappa * (z / (double)c + 1.0 / (double)c - ((size_t)labels[i] == o ? 1.0 : 0.0));
                }
                for (size_t k = 0; k < H; k++) {
                    double s = 0;
                    for (size_t o = 0; o < c; o++) {
                        G2[o * H + k] += d2[o] * u[k] * u[k];
                        s += V2[o * H + k] * d2[o];
                    }
                    e1[k] = 2.0 * u[k] * s;
                }
                for (size_t k = 0; k < H; k++)
                    for (size_t g = 0; g < d; g++)
                        G1[k * d + g] += e1[k] * xi[g];
            }
        }
        for (size_t i = 0; i < n1; i++) {
            N1[i] = V1[i] - G1[i];
            V1[i] = (1.0 + mu) * N1[i] - mu * W1[i];
            W1[i] = N1[i];
            max_state = fmax(max_state, fmax(fabs(W1[i]), fabs(V1[i])));
        }
        for (size_t i = 0; i < n2; i++) {
            N2[i] = V2[i] - G2[i];
            V2[i] = (1.0 + mu) * N2[i] - mu * W2[i];
            W2[i] = N2[i];
            max_state = fmax(max_state, fmax(fabs(W2[i]), fabs(V2[i])));
        }
    }
    memcpy(w1, W1, n1 * sizeof *w1);
    memcpy(w2, W2, n2 * sizeof *w2);
    cdl_free(buf);
    if (stats) {
        stats->max_abs_state = max_state;
        stats->max_abs_hidden = max_u;
        stats->max_abs_logit = max_z;
    }
    return CDL_OK;
}

double cdl_mlp_accuracy(const double *w1, const double *w2, const double *x, const int *labels, size_t n, size_t d,
                        size_t hidden, size_t classes)
{
    if (!w1 || !w2 || !x || !labels || n == 0 || hidden == 0 || hidden > 4096)
        return 0.0;
    double h[4096];
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < hidden; k++) {
            double s = 0;
            for (size_t g = 0; g < d; g++)
                s += w1[k * d + g] * x[i * d + g];
            h[k] = s * s;
        }
        size_t best = 0;
        double bs = -INFINITY;
        for (size_t o = 0; o < classes; o++) {
            double z = 0;
            for (size_t k = 0; k < hidden; k++)
                z += w2[o * hidden + k] * h[k];
            if (z > bs) {
                bs = z;
                best = o;
            }
        }
        ok += (int)best == labels[i];
    }
    return (double)ok / (double)n;
}
