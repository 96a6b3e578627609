/*
 * softmax.c: multiclass softmax regression trained on CKKS-encrypted features
 * (transfer learning as HETAL, Lee et al. ICML 2023; our own packing and
 * approximation): full-batch Nesterov gradient descent where the softmax is
 * its first-order Taylor polynomial at equal logits (learn.h says why and
 * docs/learn.md measures the alternatives), and a plaintext twin that runs the
 * same arithmetic in doubles.
 *
 * Layout (learn_internal.h): value s of sample i in slot s m + i, r values per
 * sample, m samples per ciphertext. The weights W (C' x r, C' = classes
 * rounded up to a power of two, rows >= c zero) are kept as their generalized
 * diagonals D_k[s] = W[s mod C'][(s + k) mod r], k < C', each replicated over
 * the samples, and pre-rotated for a baby-step giant-step product: with
 * k = a + b B (a < B baby steps, b < G giant steps, B G = C'),
 *   F[a + b B] = rot(D_k, -b B m),  F[a + b B][s m + i] = W[(s - b B) mod C'][(s + a) mod r].
 * Forward (logits of every sample, replicated with period C' over s):
 *   Z = fold( sum_b rot( sum_a rot(X, a m) (*) F[a + b B], b B m ) ),
 * fold = rotate-and-add by C' m, 2 C' m, ..., r m / 2 (cyclic in s: no mask).
 * Backward: with E = gamma / (c n) Z (a relabelled scale), the products
 *   H[a + b B] = sum over the ciphertexts of rot(X, a m) (*) rot(E, -b B m)
 * hold, summed over the samples, exactly the gradient in the F layout
 * (H[a + b B][s m + .] sums e_i[(s - b B) mod C'] x_i[(s + a) mod r]), so the
 * update is F-wise: no rotation of the weights at all. Levels of an iteration
 * at level l: logits l - 1, gradient products l - 2, the sum over the samples
 * (one mask) l - 3; the constants (learning rate, 1/(c n), Nesterov's eta)
 * ride on scale labels or on spare levels of the state, as in logreg.c.
 *
 * The label term (1/n) sum_i (y_i - 1/c) x_i^T is the same every iteration:
 * it is computed once when the trainer is made (B below), from the labels
 * the client packed r / C' data ciphertexts to a label ciphertext.
 *
 * Bootstrapping: W and V (2 C' ciphertexts, each replicated over the samples)
 * are packed into one ciphertext (sample position j holds ciphertext j / W),
 * bootstrapped once, and unpacked (one mask level).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/bytes.h"
#include "core/error.h"
#include "core/memory.h"
#include "cryptodl/learn.h"
#include "learn/learn_internal.h"

#define PER_ITERATION 3

struct cdl_softmax_encrypted_data {
    uint8_t hash[CDL_CKKS_PARAM_HASH_BYTES];
    size_t n, d, classes, cp; /* cp: classes rounded up to a power of two */
    lrn_layout L;
    size_t n_ct, n_yct, per_y; /* feature ciphertexts, label ciphertexts, feature ciphertexts per label one */
    int level;                 /* of the features; the labels are at level + 1 */
    cdl_ckks_ciphertext **x, **y;
};

struct cdl_softmax_encrypted_weights {
    uint8_t hash[CDL_CKKS_PARAM_HASH_BYTES];
    size_t d, classes, cp, baby;
    lrn_layout L;
    cdl_ckks_ciphertext **w; /* cp diagonals, F layout */
};

void cdl_softmax_config_default(cdl_softmax_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->iterations = 10;
    cfg->learning_rate = 0.5;
    cfg->lr_decay = 0;
    cfg->nesterov = 1;
    cfg->weight_bound = 4.0;
}

static double weight_bound(const cdl_softmax_config *cfg)
{
    return cfg->weight_bound > 0 ? cfg->weight_bound : 4.0;
}

static cdl_status check_config(const cdl_softmax_config *cfg, const char *fn)
{
    if (!cfg)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL config", fn);
    if (cfg->iterations < 1 || cfg->iterations > 1000)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: iterations = %d, expected 1..1000", fn, cfg->iterations);
    if (!(cfg->learning_rate > 0) || !isfinite(cfg->learning_rate) || cfg->learning_rate > 1e6)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: learning rate %g must be positive and finite", fn,
                        cfg->learning_rate);
    if (!(cfg->weight_bound >= 0) || !(cfg->weight_bound <= 1024))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: weight bound %g, expected 0 < W <= 1024 (0: the default 4)",
                        fn, cfg->weight_bound);
    return CDL_OK;
}

static double step_gamma(const cdl_softmax_config *cfg, int k)
{
    return cfg->lr_decay ? cfg->learning_rate / (k + 1) : cfg->learning_rate;
}

int cdl_softmax_levels_per_iteration(void)
{
    return PER_ITERATION;
}

/* Iteration 1 leaves the state where the label term is: two levels below the data. */
int cdl_softmax_bootstraps_needed(int data_level, int boot_level, int iterations)
{
    if (data_level < 2 || iterations < 1)
        return -1;
    const int top = boot_level < 0 ? -1 : (boot_level - 1 < data_level ? boot_level - 1 : data_level);
    return lrn_plan_bootstraps(data_level - 2, top, iterations, PER_ITERATION);
}

int cdl_softmax_data_level(const cdl_ckks_context *ctx, int boot_level)
{
    if (!ctx)
        return -1;
    return boot_level >= 0 ? boot_level - 2 : cdl_ckks_max_level(ctx) - 1;
}

/* The layout of d features and c classes; cp and the baby-step count. */
static cdl_status layout(const cdl_ckks_context *ctx, size_t d, size_t classes, lrn_layout *L, size_t *cp,
                         size_t *baby, const char *fn)
{
    if (!ctx)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL context", fn);
    if (d < 1 || classes < 2 || classes > 64)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: %zu features and %zu classes; expected d >= 1, 2..64 classes",
                        fn, d, classes);
    const size_t c2 = lrn_pow2_at_least(classes);
    /* the row holds the padded classes (the logits repeat with period C'), each ciphertext 2 C' samples (the
     * packing of W and V for a bootstrap) */
    CDL_TRY(lrn_layout_make(ctx, d > c2 ? d : c2, 2 * c2, L, fn));
    *cp = c2;
    *baby = c2 >= 4 ? c2 / 2 : c2;
    return CDL_OK;
}

cdl_status cdl_softmax_layout(const cdl_ckks_context *ctx, size_t d, size_t classes, size_t *row,
                              size_t *rows_per_ct, size_t *classes_padded)
{
    if (!row || !rows_per_ct || !classes_padded)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_softmax_layout: NULL argument");
    lrn_layout L;
    size_t cp = 0, baby = 0;
    CDL_TRY(layout(ctx, d, classes, &L, &cp, &baby, "cdl_softmax_layout"));
    *row = L.row;
    *rows_per_ct = L.m;
    *classes_padded = cp;
    return CDL_OK;
}

static cdl_status galois_steps(const lrn_layout *L, size_t cp, size_t baby, int *steps, size_t capacity,
                               size_t *count)
{
    *count = 0;
    const int m = (int)L->m;
    for (size_t a = 1; a < baby; a++)
        CDL_TRY(lrn_steps_add((int)a * m, steps, capacity, count));
    for (size_t b = 1; b < cp / baby; b++) {
        CDL_TRY(lrn_steps_add((int)(b * baby) * m, steps, capacity, count));
        CDL_TRY(lrn_steps_add(-(int)(b * baby) * m, steps, capacity, count));
    }
    for (size_t f = cp; f < L->row; f *= 2)
        CDL_TRY(lrn_steps_add((int)f * m, steps, capacity, count));
    return lrn_steps_samples(L, steps, capacity, count);
}

cdl_status cdl_softmax_galois_steps(const cdl_ckks_context *ctx, size_t d, size_t classes, int *steps,
                                    size_t capacity, size_t *count)
{
    if (!steps || !count)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_softmax_galois_steps: NULL argument");
    lrn_layout L;
    size_t cp = 0, baby = 0;
    CDL_TRY(layout(ctx, d, classes, &L, &cp, &baby, "cdl_softmax_galois_steps"));
    return galois_steps(&L, cp, baby, steps, capacity, count);
}

/* ---- client: encryption ---- */

void cdl_softmax_encrypted_data_free(cdl_softmax_encrypted_data *data)
{
    if (!data)
        return;
    if (data->x)
        for (size_t j = 0; j < data->n_ct; j++)
            cdl_ckks_ciphertext_free(data->x[j]);
    if (data->y)
        for (size_t j = 0; j < data->n_yct; j++)
            cdl_ckks_ciphertext_free(data->y[j]);
    cdl_free(data->x);
    cdl_free(data->y);
    cdl_free(data);
}

size_t cdl_softmax_encrypted_data_samples(const cdl_softmax_encrypted_data *data)
{
    return data ? data->n : 0;
}

size_t cdl_softmax_encrypted_data_ciphertexts(const cdl_softmax_encrypted_data *data)
{
    return data ? data->n_ct : 0;
}

int cdl_softmax_encrypted_data_level(const cdl_softmax_encrypted_data *data)
{
    return data ? data->level : -1;
}

cdl_status cdl_softmax_encrypt_dataset(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                       const double *x, const int *labels, size_t n, size_t d, size_t classes,
                                       int level, cdl_softmax_encrypted_data **out)
{
    static const char fn[] = "cdl_softmax_encrypt_dataset";
    if (!ctx || !sk || !rng || !x || !labels || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *out = NULL;
    if (level < 0 || level + 1 > cdl_ckks_max_level(ctx))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "%s: level %d: the features need a level in 0..%d (the labels go one higher)", fn, level,
                        cdl_ckks_max_level(ctx) - 1);
    if (n < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: no samples (n = 0)", fn);
    lrn_layout L;
    size_t cp = 0, baby = 0;
    CDL_TRY(layout(ctx, d, classes, &L, &cp, &baby, fn));
    CDL_TRY(lrn_check_samples(x, labels, n, d, classes, "feature", fn));
    cdl_softmax_encrypted_data *D = cdl_calloc_array(1, sizeof *D);
    if (!D)
        return CDL_ERR_NO_MEMORY;
    memcpy(D->hash, cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES);
    D->n = n;
    D->d = d;
    D->classes = classes;
    D->cp = cp;
    D->L = L;
    D->per_y = L.row / cp;
    D->level = level;
    cdl_status st = lrn_encrypt_samples(ctx, sk, rng, &L, x, n, d, level, &D->x, &D->n_ct);
    if (st == CDL_OK)
        st = lrn_encrypt_labels(ctx, sk, rng, &L, labels, n, cp, level + 1, &D->y, &D->n_yct);
    if (st != CDL_OK) {
        cdl_softmax_encrypted_data_free(D);
        return st;
    }
    *out = D;
    return CDL_OK;
}

/* ---- server ---- */

enum { T_Z, T_TMP, T_T3, T_M3, T_PACK, T_Y, T_COUNT };

struct cdl_softmax_trainer {
    const cdl_ckks_context *ctx;
    const cdl_ckks_relin_key *rlk;
    const cdl_ckks_galois_keys *gk;
    const cdl_ckks_bootstrapper *bt; /* NULL: no bootstrapping */
    const cdl_ckks_bootstrap_keys *bk;
    const cdl_softmax_encrypted_data *data;
    cdl_softmax_config cfg;
    lrn_layout L;
    size_t cp, baby, giant;
    int boot_level; /* bootstrap output level; -1 without bootstrapping */
    int top;        /* the state's level after a bootstrap and its unpacking */
    int k;
    double lambda;
    int bootstraps;
    double bootstrap_seconds;
    cdl_ckks_ciphertext **W, **V, **Wn, **Vn, **B, **H; /* cp each */
    cdl_ckks_ciphertext **R, **Rl;                      /* baby: rot(X, a m) at l and l - 1 */
    cdl_ckks_ciphertext **E;                            /* giant: rot(E, -b B m) */
    cdl_ckks_ciphertext *t[T_COUNT];
    lrn_mask mask_sum, mask_unpack, mask_label;
    cdl_ckks_plaintext *label_shift; /* -1/c at the real classes, at the labels' working level */
};

void cdl_softmax_trainer_free(cdl_softmax_trainer *T)
{
    if (!T)
        return;
    lrn_free_cts(T->W, T->cp);
    lrn_free_cts(T->V, T->cp);
    lrn_free_cts(T->Wn, T->cp);
    lrn_free_cts(T->Vn, T->cp);
    lrn_free_cts(T->B, T->cp);
    lrn_free_cts(T->H, T->cp);
    lrn_free_cts(T->R, T->baby);
    lrn_free_cts(T->Rl, T->baby);
    lrn_free_cts(T->E, T->giant);
    for (int i = 0; i < T_COUNT; i++)
        cdl_ckks_ciphertext_free(T->t[i]);
    lrn_mask_free(&T->mask_sum);
    lrn_mask_free(&T->mask_unpack);
    lrn_mask_free(&T->mask_label);
    cdl_ckks_plaintext_free(T->label_shift);
    cdl_free(T);
}

/* R[a] = rot(X, a m) at level l. */
static cdl_status baby_rotations(cdl_softmax_trainer *T, const cdl_ckks_ciphertext *x, int l)
{
    return lrn_hoisted(T->ctx, T->gk, x, l, (int)T->L.m, T->baby, T->R);
}

/* E[b] = rot(e, -b B m) (E[0] is e itself). */
static cdl_status giant_rotations(cdl_softmax_trainer *T, const cdl_ckks_ciphertext *e)
{
    return lrn_hoisted(T->ctx, T->gk, e, cdl_ckks_ciphertext_level(e), -(int)(T->baby * T->L.m), T->giant, T->E);
}

/* H[a + b B] (+)= Rx[a] (*) E[b] (size 3, not relinearized). */
static cdl_status accumulate_gradient(cdl_softmax_trainer *T, cdl_ckks_ciphertext *const *Rx, int first)
{
    return lrn_outer_accumulate(T->ctx, Rx, T->baby, T->E, T->giant, T->H, first, T->t[T_M3]);
}

/* H -> relinearized, rescaled, summed over the samples: level - 2, scale exactly the default. */
static cdl_status finish_gradient(cdl_softmax_trainer *T)
{
    const cdl_ckks_context *ctx = T->ctx;
    const double delta = cdl_ckks_default_scale(ctx);
    for (size_t q = 0; q < T->cp; q++) {
        CDL_TRY(cdl_ckks_relinearize(ctx, T->rlk, T->H[q], T->H[q]));
        CDL_TRY(cdl_ckks_rescale(ctx, T->H[q], T->H[q]));
        CDL_TRY(lrn_sum_samples(ctx, T->gk, &T->L, T->H[q], T->t[T_TMP], &T->mask_sum, delta));
    }
    return CDL_OK;
}

/* The label term B = (1/n) sum_i (y_i - 1/c) x_i^T in the F layout, at the data's level - 2. */
static cdl_status label_term(cdl_softmax_trainer *T)
{
    const cdl_ckks_context *ctx = T->ctx;
    const cdl_softmax_encrypted_data *D = T->data;
    const lrn_layout *L = &T->L;
    const int ly = D->level + 1, lx = D->level;
    const double delta = cdl_ckks_default_scale(ctx);
    cdl_ckks_ciphertext *ycur = T->t[T_Y], *yj = T->t[T_Z];
    /* the mask of the values s < C' and the shift -1/c at the real classes */
    double *v = cdl_calloc_array(L->slots, sizeof *v);
    if (!v)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = CDL_OK;
    for (size_t s = 0; s < T->cp; s++)
        for (size_t i = 0; i < L->m; i++)
            v[s * L->m + i] = 1.0;
    const double enc = delta * (double)cdl_ckks_prime(ctx, ly) / cdl_ckks_ciphertext_scale(D->y[0]);
    st = cdl_ckks_plaintext_new(ctx, &T->mask_label.pt);
    if (st == CDL_OK)
        st = cdl_ckks_encode(ctx, v, L->slots, enc, ly, T->mask_label.pt);
    memset(v, 0, L->slots * sizeof *v);
    for (size_t s = 0; s < L->row; s++)
        if (s % T->cp < D->classes)
            for (size_t i = 0; i < L->m; i++)
                v[s * L->m + i] = -1.0 / (double)D->classes;
    if (st == CDL_OK)
        st = cdl_ckks_plaintext_new(ctx, &T->label_shift);
    if (st == CDL_OK)
        st = cdl_ckks_encode(ctx, v, L->slots, delta, lx, T->label_shift);
    cdl_free(v);
    CDL_TRY(st);
    const double n = (double)D->n;
    for (size_t j = 0; j < D->n_ct; j++) {
        const size_t p = j % D->per_y;
        if (p == 0)
            CDL_TRY(cdl_ckks_ciphertext_copy(ctx, D->y[j / D->per_y], ycur));
        else
            CDL_TRY(cdl_ckks_rotate(ctx, T->gk, ycur, (int)(T->cp * L->m), ycur)); /* block p to block 0 */
        /* keep block 0 (the classes of this feature ciphertext), repeat it with period C' over s */
        CDL_TRY(cdl_ckks_mul_plain(ctx, ycur, T->mask_label.pt, yj));
        CDL_TRY(cdl_ckks_rescale(ctx, yj, yj));
        cdl_ckks_ciphertext_set_scale(yj, delta);
        CDL_TRY(lrn_rotate_sum(ctx, T->gk, yj, T->t[T_TMP], T->cp * L->m, L->row * L->m, 1));
        CDL_TRY(cdl_ckks_add_plain(ctx, yj, T->label_shift, yj));
        cdl_ckks_ciphertext_set_scale(yj, delta * n); /* reads (y - 1/c) / n */
        CDL_TRY(giant_rotations(T, yj));
        CDL_TRY(baby_rotations(T, D->x[j], lx));
        CDL_TRY(accumulate_gradient(T, T->R, j == 0));
    }
    CDL_TRY(finish_gradient(T));
    for (size_t q = 0; q < T->cp; q++) {
        cdl_ckks_ciphertext *t = T->B[q];
        T->B[q] = T->H[q];
        T->H[q] = t;
    }
    lrn_mask_free(&T->mask_label);
    cdl_ckks_plaintext_free(T->label_shift);
    T->label_shift = NULL;
    return CDL_OK;
}

static cdl_status trainer_init(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                               const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                               const cdl_ckks_bootstrap_keys *bk, const cdl_softmax_encrypted_data *data,
                               const cdl_softmax_config *cfg, const char *fn, cdl_softmax_trainer **out)
{
    if (!ctx || !rlk || !gk || !data || !out || (!bt) != (!bk))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument%s", fn,
                        (!bt) != (!bk) ? " (a bootstrapper needs its keys, and the reverse)" : "");
    *out = NULL;
    CDL_TRY(check_config(cfg, fn));
    int boot_level = -1;
    CDL_TRY(lrn_check_setup(ctx, data->hash, bt, "the state fills", fn, &boot_level));
    const int need = bt && boot_level > data->level + 1 ? boot_level : data->level + 1;
    int steps[CDL_SOFTMAX_MAX_STEPS];
    size_t nsteps = 0;
    CDL_TRY(galois_steps(&data->L, data->cp, data->cp >= 4 ? data->cp / 2 : data->cp, steps, CDL_SOFTMAX_MAX_STEPS,
                         &nsteps));
    CDL_TRY(lrn_check_galois_keys(gk, steps, nsteps, need, "cdl_softmax_galois_steps", fn));
    const int top = bt ? (boot_level - 1 < data->level ? boot_level - 1 : data->level) : -1;
    if (data->level < 2 || cdl_softmax_bootstraps_needed(data->level, boot_level, cfg->iterations) < 0) {
        if (bt)
            return cdl_fail(CDL_ERR_PARAMETERS,
                            "%s: %d iterations cannot run: the data are at level %d and a bootstrap (with its "
                            "unpacking) returns the state at level %d; an iteration needs %d levels plus 1 to pack "
                            "the state",
                            fn, cfg->iterations, data->level, top, PER_ITERATION);
        int kmax = 1;
        while (kmax < 1000 && cdl_softmax_bootstraps_needed(data->level, -1, kmax + 1) >= 0)
            kmax++;
        return cdl_fail(CDL_ERR_EXHAUSTED,
                        "%s: %d iterations need %d levels (the label term 2, each iteration after the first %d) but "
                        "the data are at level %d; at most %d iterations fit without bootstrapping",
                        fn, cfg->iterations, 2 + (cfg->iterations - 1) * PER_ITERATION, PER_ITERATION, data->level,
                        data->level >= 2 ? kmax : 0);
    }
    cdl_softmax_trainer *T = cdl_calloc_array(1, sizeof *T);
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
    T->cp = data->cp;
    T->baby = T->cp >= 4 ? T->cp / 2 : T->cp;
    T->giant = T->cp / T->baby;
    T->boot_level = boot_level;
    T->top = top;
    T->lambda = 1.0;
    T->mask_sum.level = T->mask_unpack.level = T->mask_label.level = -1;
    cdl_status st = CDL_OK;
    cdl_ckks_ciphertext ***arrays[] = {&T->W, &T->V, &T->Wn, &T->Vn, &T->B, &T->H};
    for (size_t i = 0; st == CDL_OK && i < sizeof arrays / sizeof arrays[0]; i++)
        st = lrn_new_cts(ctx, arrays[i], T->cp);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->R, T->baby);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->Rl, T->baby);
    if (st == CDL_OK)
        st = lrn_new_cts(ctx, &T->E, T->giant);
    for (int i = 0; st == CDL_OK && i < T_COUNT; i++)
        st = lrn_new_ct(ctx, &T->t[i]);
    if (st == CDL_OK)
        st = label_term(T);
    if (st != CDL_OK) {
        cdl_softmax_trainer_free(T);
        return st;
    }
    *out = T;
    return CDL_OK;
}

cdl_status cdl_softmax_trainer_new(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                   const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                   const cdl_ckks_bootstrap_keys *bk, const cdl_softmax_encrypted_data *data,
                                   const cdl_softmax_config *cfg, cdl_softmax_trainer **out)
{
    return trainer_init(ctx, rlk, gk, bt, bk, data, cfg, "cdl_softmax_trainer_new", out);
}

/* W and V -> one packed ciphertext -> one bootstrap -> W and V at T->top. */
static cdl_status bootstrap_state(cdl_softmax_trainer *T)
{
    const cdl_ckks_context *ctx = T->ctx;
    const size_t cp = T->cp;
    cdl_ckks_ciphertext *all[128];
    for (size_t q = 0; q < cp; q++) {
        all[q] = T->W[q];
        all[cp + q] = T->V[q];
    }
    const double bound = weight_bound(&T->cfg);
    CDL_TRY(lrn_pack(ctx, &T->L, all, 2 * cp, bound, T->t[T_PACK], T->t[T_TMP]));
    const double t0 = lrn_now_seconds();
    CDL_TRY(cdl_ckks_bootstrap(T->bt, T->bk, T->rlk, T->t[T_PACK], T->t[T_PACK]));
    T->bootstrap_seconds += lrn_now_seconds() - t0;
    T->bootstraps++;
    CDL_TRY(lrn_unpack(ctx, T->gk, &T->L, T->t[T_PACK], 2 * cp, bound, cdl_ckks_default_scale(ctx), all,
                       T->t[T_TMP], &T->mask_unpack));
    for (size_t q = 0; q < 2 * cp; q++)
        if (cdl_ckks_ciphertext_level(all[q]) > T->top)
            CDL_TRY(cdl_ckks_drop_to_level(ctx, all[q], T->top, all[q]));
    return CDL_OK;
}

/* Iteration 1 from W_0 = V_0 = 0: W_1 = gamma_1 B (a relabelled copy), V_1 = (1 - eta_1) W_1. No level. */
static cdl_status first_iteration(cdl_softmax_trainer *T, double gamma, double eta)
{
    for (size_t q = 0; q < T->cp; q++) {
        const double s = cdl_ckks_ciphertext_scale(T->B[q]);
        CDL_TRY(cdl_ckks_ciphertext_copy(T->ctx, T->B[q], T->W[q]));
        cdl_ckks_ciphertext_set_scale(T->W[q], s / gamma);
        CDL_TRY(cdl_ckks_ciphertext_copy(T->ctx, T->B[q], T->V[q]));
        cdl_ckks_ciphertext_set_scale(T->V[q], s / (gamma * (1.0 - eta)));
    }
    return CDL_OK;
}

/* One iteration k >= 2 with V and W at level l: Wn = W_k, and Vn = V_k unless last. */
static cdl_status iterate(cdl_softmax_trainer *T, double gamma, double eta, int last)
{
    const cdl_ckks_context *ctx = T->ctx;
    const cdl_softmax_encrypted_data *D = T->data;
    const lrn_layout *L = &T->L;
    const int l = cdl_ckks_ciphertext_level(T->V[0]);
    const double delta = cdl_ckks_default_scale(ctx);
    const double relabel = (double)D->classes * (double)D->n / gamma; /* E reads gamma / (c n) z */
    cdl_ckks_ciphertext *Z = T->t[T_Z], *t3 = T->t[T_T3], *tmp = T->t[T_TMP];
    for (size_t j = 0; j < D->n_ct; j++) {
        CDL_TRY(baby_rotations(T, D->x[j], l));
        /* logits: Z = sum_b rot(sum_a R[a] (*) V[a + b B], b B m), rescaled, folded */
        CDL_TRY(lrn_diag_product(ctx, T->rlk, T->gk, T->R, T->baby, T->giant, (int)(T->baby * L->m), T->V, Z, t3,
                                 T->t[T_M3], tmp));
        CDL_TRY(cdl_ckks_rescale(ctx, Z, Z));
        CDL_TRY(lrn_rotate_sum(ctx, T->gk, Z, tmp, T->cp * L->m, L->row * L->m, 1));
        cdl_ckks_ciphertext_set_scale(Z, cdl_ckks_ciphertext_scale(Z) * relabel);
        /* gradient products with the same rotations of the data, one level lower */
        CDL_TRY(giant_rotations(T, Z));
        for (size_t a = 0; a < T->baby; a++)
            CDL_TRY(cdl_ckks_drop_to_level(ctx, T->R[a], l - 1, T->Rl[a]));
        CDL_TRY(accumulate_gradient(T, T->Rl, j == 0));
    }
    CDL_TRY(finish_gradient(T)); /* H = gamma G_logits, level l - 3, scale delta */
    const int lo = l - 3;
    const double sq = delta;
    /* W_k = V - H + gamma B */
    for (size_t q = 0; q < T->cp; q++) {
        CDL_TRY(cdl_ckks_drop_to_level(ctx, T->V[q], lo + 1, T->Wn[q]));
        CDL_TRY(lrn_mul_const_to(ctx, T->Wn[q], 1.0, sq, T->Wn[q]));
        CDL_TRY(cdl_ckks_sub(ctx, T->Wn[q], T->H[q], T->Wn[q]));
        CDL_TRY(cdl_ckks_drop_to_level(ctx, T->B[q], lo + 1, tmp));
        CDL_TRY(lrn_mul_const_to(ctx, tmp, gamma, sq, tmp));
        CDL_TRY(cdl_ckks_add(ctx, T->Wn[q], tmp, T->Wn[q]));
    }
    if (last)
        return CDL_OK;
    /* V_k = (1 - eta) W_k + eta W_(k-1) = (1 - eta)(V - H + gamma B) + eta W_(k-1), at scale sq / (1 - eta) */
    const double keep = 1.0 - eta;
    if (!(keep > 0))
        return cdl_fail(CDL_ERR_PARAMETERS, "cdl_softmax_trainer_step: momentum factor 1 - eta = %g <= 0", keep);
    const double target = sq / keep;
    for (size_t q = 0; q < T->cp; q++) {
        CDL_TRY(cdl_ckks_drop_to_level(ctx, T->V[q], lo + 1, T->Vn[q]));
        CDL_TRY(lrn_mul_const_to(ctx, T->Vn[q], keep, target, T->Vn[q]));
        cdl_ckks_ciphertext_set_scale(T->H[q], target); /* reads (1 - eta) H */
        CDL_TRY(cdl_ckks_sub(ctx, T->Vn[q], T->H[q], T->Vn[q]));
        CDL_TRY(cdl_ckks_drop_to_level(ctx, T->B[q], lo + 1, tmp));
        CDL_TRY(lrn_mul_const_to(ctx, tmp, gamma * keep, target, tmp));
        CDL_TRY(cdl_ckks_add(ctx, T->Vn[q], tmp, T->Vn[q]));
        if (eta != 0) {
            CDL_TRY(cdl_ckks_drop_to_level(ctx, T->W[q], lo + 1, tmp));
            CDL_TRY(lrn_mul_const_to(ctx, tmp, eta, target, tmp));
            CDL_TRY(cdl_ckks_add(ctx, T->Vn[q], tmp, T->Vn[q]));
        }
    }
    return CDL_OK;
}

static void swap_arrays(cdl_ckks_ciphertext ***a, cdl_ckks_ciphertext ***b)
{
    cdl_ckks_ciphertext **t = *a;
    *a = *b;
    *b = t;
}

cdl_status cdl_softmax_trainer_step(cdl_softmax_trainer *T)
{
    if (!T)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_softmax_trainer_step: NULL trainer");
    const cdl_softmax_config *cfg = &T->cfg;
    if (T->k >= cfg->iterations)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_softmax_trainer_step: all %d iterations are done",
                        cfg->iterations);
    const int k = T->k + 1;
    const double gamma = step_gamma(cfg, k);
    const double eta = lrn_step_eta(cfg->nesterov, &T->lambda);
    if (k == 1) {
        CDL_TRY(first_iteration(T, gamma, eta));
    } else {
        const cdl_ckks_context *ctx = T->ctx;
        const int r = cfg->iterations - k + 1;
        int run = lrn_plan_level(cdl_ckks_ciphertext_level(T->V[0]), r, PER_ITERATION, T->bt != NULL);
        if (run == -1) {
            CDL_TRY(bootstrap_state(T));
            run = lrn_plan_level(cdl_ckks_ciphertext_level(T->V[0]), r, PER_ITERATION, 1);
        }
        if (run < PER_ITERATION || run > T->data->level)
            return cdl_fail(CDL_ERR_INTERNAL, "cdl_softmax_trainer_step: no level plan for iteration %d", k);
        for (size_t q = 0; q < T->cp; q++) {
            if (cdl_ckks_ciphertext_level(T->V[q]) > run)
                CDL_TRY(cdl_ckks_drop_to_level(ctx, T->V[q], run, T->V[q]));
            if (cdl_ckks_ciphertext_level(T->W[q]) > run)
                CDL_TRY(cdl_ckks_drop_to_level(ctx, T->W[q], run, T->W[q]));
        }
        const int last = k == cfg->iterations;
        CDL_TRY(iterate(T, gamma, eta, last));
        swap_arrays(&T->W, &T->Wn);
        if (!last)
            swap_arrays(&T->V, &T->Vn);
    }
    T->k = k;
    return CDL_OK;
}

int cdl_softmax_trainer_iteration(const cdl_softmax_trainer *T)
{
    return T ? T->k : -1;
}

int cdl_softmax_trainer_bootstraps(const cdl_softmax_trainer *T)
{
    return T ? T->bootstraps : -1;
}

double cdl_softmax_trainer_bootstrap_seconds(const cdl_softmax_trainer *T)
{
    return T ? T->bootstrap_seconds : 0.0;
}

int cdl_softmax_trainer_level(const cdl_softmax_trainer *T)
{
    return T && T->k >= 1 ? cdl_ckks_ciphertext_level(T->W[0]) : -1;
}

void cdl_softmax_encrypted_weights_free(cdl_softmax_encrypted_weights *w)
{
    if (!w)
        return;
    lrn_free_cts(w->w, w->cp);
    cdl_free(w);
}

cdl_status cdl_softmax_trainer_weights(const cdl_softmax_trainer *T, cdl_softmax_encrypted_weights **out)
{
    if (!T || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_softmax_trainer_weights: NULL argument");
    *out = NULL;
    if (T->k < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_softmax_trainer_weights: no iteration done yet");
    cdl_softmax_encrypted_weights *w = cdl_calloc_array(1, sizeof *w);
    if (!w)
        return CDL_ERR_NO_MEMORY;
    memcpy(w->hash, T->data->hash, CDL_CKKS_PARAM_HASH_BYTES);
    w->d = T->data->d;
    w->classes = T->data->classes;
    w->cp = T->cp;
    w->baby = T->baby;
    w->L = T->L;
    cdl_status st = lrn_new_cts(T->ctx, &w->w, T->cp);
    for (size_t q = 0; st == CDL_OK && q < T->cp; q++) {
        st = cdl_ckks_ciphertext_copy(T->ctx, T->W[q], w->w[q]);
        if (st == CDL_OK)
            st = cdl_ckks_ciphertext_shrink(w->w[q]);
    }
    if (st != CDL_OK) {
        cdl_softmax_encrypted_weights_free(w);
        return st;
    }
    *out = w;
    return CDL_OK;
}

/* ---- checkpoints ---- */

#define TRAINER_MAGIC "CDLSMTR1"
#define TRAINER_VERSION 1u

/* What a checkpoint must agree on besides the CKKS parameters, as this run writes it. */
static size_t header_fields(const cdl_softmax_encrypted_data *D, const cdl_softmax_config *c, lrn_field *f)
{
    size_t n = lrn_fields_data(f, D->n, "features", D->d, D->classes, D->level);
    f[n++] = lrn_field_u32("iterations", (uint32_t)c->iterations);
    f[n++] = lrn_field_f64("learning rate", c->learning_rate);
    f[n++] = lrn_field_u8("lr_decay", (uint8_t)(c->lr_decay != 0));
    f[n++] = lrn_field_u8("nesterov", (uint8_t)(c->nesterov != 0));
    f[n++] = lrn_field_f64("weight bound", weight_bound(c));
    return n;
}

cdl_status cdl_softmax_trainer_save(const cdl_softmax_trainer *T, uint8_t **data, size_t *len)
{
    if (!T || !data || !len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_softmax_trainer_save: NULL argument");
    *data = NULL;
    *len = 0;
    if (T->k < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_softmax_trainer_save: no iteration done yet");
    lrn_field f[LRN_MAX_FIELDS];
    const size_t nf = header_fields(T->data, &T->cfg, f);
    const lrn_counters c = {(uint32_t)(T->boot_level + 1) /* 0: no bootstrapping */, (uint32_t)T->k,
                            (uint32_t)T->bootstraps};
    cdl_writer w;
    lrn_checkpoint_begin(&w, TRAINER_MAGIC, TRAINER_VERSION, T->data->hash, f, nf, &c);
    cdl_status st = lrn_write_cts(T->ctx, &w, T->W, T->cp);
    if (st == CDL_OK)
        st = lrn_write_cts(T->ctx, &w, T->V, T->cp);
    return lrn_checkpoint_finish(&w, st, data, len);
}

cdl_status cdl_softmax_trainer_load(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                    const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                    const cdl_ckks_bootstrap_keys *bk, const cdl_softmax_encrypted_data *data,
                                    const cdl_softmax_config *cfg, const uint8_t *bytes, size_t len,
                                    cdl_softmax_trainer **out)
{
    const char *fn = "cdl_softmax_trainer_load";
    if (!bytes || !out || !ctx || !data || !cfg)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *out = NULL;
    /* the header first: a checkpoint of another job is refused before the label term is computed */
    cdl_reader r;
    CDL_TRY(lrn_checkpoint_open(bytes, len, TRAINER_MAGIC, "a softmax-regression training checkpoint", fn, &r));
    lrn_field f[LRN_MAX_FIELDS];
    const size_t nf = header_fields(data, cfg, f);
    lrn_counters c;
    CDL_TRY(lrn_header_read(&r, TRAINER_VERSION, ctx, f, nf, &c, fn));
    const uint32_t boot = c.boot, k = c.k, boots = c.bootstraps;
    if (k < 1 || (int)k > cfg->iterations || boots > k)
        return cdl_fail(CDL_ERR_FORMAT, "%s: iteration %u of %d, %u bootstraps: not a valid state", fn, k,
                        cfg->iterations, boots);
    cdl_softmax_trainer *T = NULL;
    CDL_TRY(trainer_init(ctx, rlk, gk, bt, bk, data, cfg, fn, &T));
    cdl_status st = CDL_OK;
    if ((int)boot != T->boot_level + 1)
        st = cdl_fail(CDL_ERR_MISMATCH, "%s: the checkpoint was made %s bootstrapping%s, this run %s it", fn,
                      boot ? "with" : "without", boot ? " (or another output level)" : "",
                      bt ? "has" : "does not have");
    if (st == CDL_OK)
        st = lrn_read_cts(ctx, &r, T->W, T->cp, data->level, fn);
    if (st == CDL_OK)
        st = lrn_read_cts(ctx, &r, T->V, T->cp, data->level, fn);
    if (st == CDL_OK)
        st = cdl_reader_expect_end(&r);
    for (size_t q = 1; st == CDL_OK && q < T->cp; q++)
        if (cdl_ckks_ciphertext_level(T->W[q]) != cdl_ckks_ciphertext_level(T->W[0]) ||
            cdl_ckks_ciphertext_level(T->V[q]) != cdl_ckks_ciphertext_level(T->V[0]))
            st = cdl_fail(CDL_ERR_FORMAT, "%s: the saved diagonals are at different levels", fn);
    if (st == CDL_OK && (int)k < cfg->iterations &&
        !lrn_state_fits_plan(cdl_ckks_ciphertext_level(T->W[0]), cdl_ckks_ciphertext_level(T->V[0]),
                             cfg->iterations - (int)k, PER_ITERATION, bt != NULL))
        st = cdl_fail(CDL_ERR_FORMAT, "%s: saved state at levels %d and %d does not fit the level plan", fn,
                      cdl_ckks_ciphertext_level(T->W[0]), cdl_ckks_ciphertext_level(T->V[0]));
    if (st != CDL_OK) {
        cdl_softmax_trainer_free(T);
        return st;
    }
    T->k = (int)k;
    T->bootstraps = (int)boots;
    T->lambda = lrn_lambda_after(cfg->nesterov, T->k); /* lambda_(k+1) */
    *out = T;
    return CDL_OK;
}

/* ---- client: decryption ---- */

cdl_status cdl_softmax_decrypt_weights(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                       const cdl_softmax_encrypted_weights *w, double *weights, size_t count)
{
    if (!ctx || !sk || !w || !weights)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_softmax_decrypt_weights: NULL argument");
    if (count != w->classes * w->d)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_softmax_decrypt_weights: room for %zu weights given, the model has %zu (%zu classes x "
                        "%zu features)",
                        count, w->classes * w->d, w->classes, w->d);
    if (memcmp(w->hash, cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES) != 0)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_softmax_decrypt_weights: weights made under other CKKS parameters");
    const lrn_layout *L = &w->L;
    cdl_ckks_plaintext *pt = NULL;
    CDL_TRY(cdl_ckks_plaintext_new(ctx, &pt));
    double *vals = cdl_secure_calloc(L->slots, sizeof *vals);
    cdl_status st = vals ? CDL_OK : CDL_ERR_NO_MEMORY;
    for (size_t q = 0; st == CDL_OK && q < w->cp; q++) {
        st = cdl_ckks_decrypt(ctx, sk, w->w[q], pt);
        if (st == CDL_OK)
            st = cdl_ckks_decode(ctx, pt, vals, L->slots);
        const size_t a = q % w->baby, b = q / w->baby;
        for (size_t s = 0; st == CDL_OK && s < L->row; s++) {
            const size_t j = (s + w->cp * L->row - b * w->baby) % w->cp, g = (s + a) % L->row;
            if (j < w->classes && g < w->d)
                weights[j * w->d + g] = vals[s * L->m]; /* sample position 0 */
        }
    }
    cdl_secure_free(vals, L->slots * sizeof *vals);
    cdl_ckks_plaintext_free(pt);
    return st;
}

/* ---- plaintext twin ---- */

cdl_status cdl_softmax_train_plain(const double *x, const int *labels, size_t n, size_t d, size_t classes,
                                   const cdl_softmax_config *cfg, double *weights, cdl_softmax_plain_stats *stats)
{
    static const char fn[] = "cdl_softmax_train_plain";
    if (!x || !labels || !weights)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    CDL_TRY(check_config(cfg, fn));
    if (n < 1 || d < 1 || classes < 2)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: n = %zu, d = %zu, %zu classes", fn, n, d, classes);
    for (size_t i = 0; i < n; i++)
        if (labels[i] < 0 || (size_t)labels[i] >= classes)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: label %zu is %d, not 0..%zu", fn, i, labels[i],
                            classes - 1);
    const size_t cd = classes * d;
    double *buf = cdl_calloc_array(5 * cd + classes, sizeof *buf);
    if (!buf)
        return CDL_ERR_NO_MEMORY;
    double *W = buf, *V = buf + cd, *B = buf + 2 * cd, *G = buf + 3 * cd, *Wn = buf + 4 * cd, *z = buf + 5 * cd;
    const double c = (double)classes, nn = (double)n;
    /* B = (1/n) sum_i (y_i - 1/c) x_i^T */
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < classes; j++) {
            const double e = ((size_t)labels[i] == j ? 1.0 : 0.0) - 1.0 / c;
            for (size_t f = 0; f < d; f++)
                B[j * d + f] += e * x[i * d + f];
        }
    for (size_t t = 0; t < cd; t++)
        B[t] /= nn;
    double lambda = 1.0, max_state = 0.0, max_logit = 0.0;
    for (int k = 1; k <= cfg->iterations; k++) {
        const double gamma = step_gamma(cfg, k), eta = lrn_step_eta(cfg->nesterov, &lambda);
        /* G = (1/(c n)) sum_i z_i x_i^T with z_i = V x_i (zero at k = 1) */
        memset(G, 0, cd * sizeof *G);
        if (k > 1)
            for (size_t i = 0; i < n; i++) {
                const double *xi = x + i * d;
                for (size_t j = 0; j < classes; j++) {
                    double s = 0;
                    for (size_t f = 0; f < d; f++)
                        s += V[j * d + f] * xi[f];
                    z[j] = s;
                    max_logit = fmax(max_logit, fabs(s));
                }
                for (size_t j = 0; j < classes; j++)
                    for (size_t f = 0; f < d; f++)
                        G[j * d + f] += z[j] * xi[f];
            }
        for (size_t t = 0; t < cd; t++)
            Wn[t] = V[t] - gamma / (c * nn) * G[t] + gamma * B[t];
        for (size_t t = 0; t < cd; t++) {
            V[t] = (1.0 - eta) * Wn[t] + eta * W[t];
            W[t] = Wn[t];
            max_state = fmax(max_state, fmax(fabs(W[t]), k < cfg->iterations ? fabs(V[t]) : 0.0));
        }
    }
    memcpy(weights, W, cd * sizeof *weights);
    cdl_free(buf);
    if (stats) {
        stats->max_abs_state = max_state;
        stats->max_abs_logit = max_logit;
    }
    return CDL_OK;
}

double cdl_softmax_accuracy(const double *weights, const double *x, const int *labels, size_t n, size_t d,
                            size_t classes)
{
    if (!weights || !x || !labels || n == 0 || classes < 1)
        return 0.0;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        size_t best = 0;
        double bs = -INFINITY;
        for (size_t j = 0; j < classes; j++) {
            double s = 0;
            for (size_t f = 0; f < d; f++)
                s += weights[j * d + f] * x[i * d + f];
            if (s > bs) {
                bs = s;
                best = j;
            }
        }
        ok += (int)best == labels[i];
    }
    return (double)ok / (double)n;
}
