/*
 * logreg.c: logistic regression trained on CKKS-encrypted data (the "MLaaS
 * training" half of CryptoDL), after Kim, Song, Kim, Lee, Jiang (JMIR 2018,
 * BMC Med Genomics 2018): Nesterov-accelerated gradient descent with a
 * degree-1 or degree-3 polynomial sigmoid, the samples packed one per row of
 * d' slots, and a plaintext twin that runs the same arithmetic in doubles.
 *
 * Why the levels go where they go (docs/learn.md says it with figures): an
 * iteration k >= 2 at level l computes
 *   p  = Z (*) v                       l-1   (ciphertext x ciphertext)
 *   t  = rowsum(p), masked, replicated l-2   (the mask is a plaintext product)
 *   tz = t (*) (kappa Z)               l-3   (kappa Z costs a level of the
 *   h  = a1 + a3 t^2                   l-3    fresh Z, not of the chain)
 *   q  = h (*) tz                      l-4
 * and the constants (learning rate, 1/n, a3, Nesterov's eta) are folded into
 * products the chain makes anyway, or into the recorded scale of a ciphertext
 * (a ciphertext of m at scale s is one of c m at scale s / c), so they cost no
 * level. The first iteration starts from beta_0 = 0, where g(0) = a0: beta_1
 * is the column sum of Z read at another scale, also free.
 *
 * With a bootstrapper (cdl_logreg_trainer_*), beta and v are bootstrapped
 * together when the next iteration does not fit their levels: packed as
 * (beta + i v) / W at level 0 (the constant product that aligns their scales
 * spends the level the plan keeps for it), one bootstrap, then split again
 * by a conjugation. The plan (plan_level) runs every iteration as low as it
 * can; docs/learn.md has the table. The trainer's state (beta, v, k, the
 * bootstrap count) can be saved and loaded, and the arithmetic is
 * deterministic, so a resumed run ends in the same bits.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cryptodl/approx.h"
#include "cryptodl/learn.h"
#include "core/bytes.h"
#include "core/error.h"
#include "core/memory.h"
#include "learn/learn_internal.h"

struct cdl_logreg_encrypted_data {
    uint8_t hash[CDL_CKKS_PARAM_HASH_BYTES];
    size_t n, d, row, rows_per_ct, n_ct;
    int level;               /* of the ciphertexts of Z */
    cdl_ckks_ciphertext **z; /* n_ct ciphertexts of Z, fresh */
};

struct cdl_logreg_encrypted_weights {
    uint8_t hash[CDL_CKKS_PARAM_HASH_BYTES];
    size_t d, row;
    cdl_ckks_ciphertext *beta; /* beta_K replicated in every row */
};

void cdl_logreg_config_default(cdl_logreg_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->iterations = 3;
    cfg->learning_rate = 3.0;
    cfg->lr_decay = 1;
    cfg->nesterov = 1;
    cfg->sigmoid_degree = 3;
    cfg->sigmoid_bound = 8.0;
    cfg->log_n = 14;
    cfg->weight_bound = 8.0;
}

static cdl_status check_config(const cdl_logreg_config *cfg, const char *fn)
{
    if (!cfg)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL config", fn);
    if (cfg->iterations < 1 || cfg->iterations > 1000)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: iterations = %d, expected 1..1000", fn, cfg->iterations);
    if (!(cfg->learning_rate > 0) || !isfinite(cfg->learning_rate))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: learning rate %g must be positive and finite", fn,
                        cfg->learning_rate);
    if (cfg->sigmoid_degree != 1 && cfg->sigmoid_degree != 3)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "%s: sigmoid degree %d is not supported; use 1 or 3", fn,
                        cfg->sigmoid_degree);
    if (!(cfg->sigmoid_bound > 0) || !(cfg->sigmoid_bound <= 1000))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: sigmoid interval bound %g, expected 0 < B <= 1000", fn,
                        cfg->sigmoid_bound);
    if (!(cfg->weight_bound >= 0) || !(cfg->weight_bound <= 1024))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: weight bound %g, expected 0 < W <= 1024 (0: the default 8)",
                        fn, cfg->weight_bound);
    return CDL_OK;
}

cdl_status cdl_logreg_sigmoid_fit(const cdl_logreg_config *cfg, cdl_logreg_sigmoid *out)
{
    CDL_TRY(check_config(cfg, "cdl_logreg_sigmoid_fit"));
    if (!out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_sigmoid_fit: NULL output");
    cdl_poly_approx p;
    const double b = cfg->sigmoid_bound;
    CDL_TRY(cdl_approx_compute(CDL_ACT_SIGMOID, CDL_APPROX_LS, cfg->sigmoid_degree, -b, b, NULL, &p));
    memset(out, 0, sizeof *out);
    out->degree = cfg->sigmoid_degree;
    out->bound = b;
    out->a0 = 0.5; /* exact: sigma - 1/2 is odd, so the fit's even part is 1/2 + rounding */
    out->a1 = p.power[1];
    out->a3 = cfg->sigmoid_degree >= 3 ? p.power[3] : 0.0;
    /* The error of the polynomial actually used (even coefficients exact). */
    double worst = 0;
    for (int i = 0; i <= 20000; i++) {
        double t = -b + 2 * b * i / 20000.0;
        double e = fabs(out->a0 + out->a1 * t + out->a3 * t * t * t - 1.0 / (1.0 + exp(-t)));
        if (e > worst)
            worst = e;
    }
    out->max_abs_error = worst;
    return CDL_OK;
}

int cdl_logreg_levels_per_iteration(int sigmoid_degree)
{
    return sigmoid_degree >= 3 ? 4 : 3;
}

int cdl_logreg_max_iterations(int max_level, int sigmoid_degree)
{
    if (max_level < 0)
        return 0;
    return 1 + max_level / cdl_logreg_levels_per_iteration(sigmoid_degree);
}

cdl_status cdl_logreg_layout(const cdl_ckks_context *ctx, size_t d, size_t *row, size_t *rows_per_ct)
{
    if (!ctx || !row || !rows_per_ct)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_layout: NULL argument");
    if (d < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_layout: no features (d = 0)");
    const size_t slots = cdl_ckks_slots(ctx);
    size_t r = 1;
    while (r < d + 1 && r <= slots)
        r *= 2;
    if (r > slots)
        return cdl_fail(CDL_ERR_PARAMETERS,
                        "cdl_logreg_layout: %zu features + bias need %zu slots per sample, more than the %zu slots "
                        "of N = 2^%d; use fewer features or a larger N",
                        d, r, slots, cdl_ckks_log_n(ctx));
    *row = r;
    *rows_per_ct = slots / r;
    return CDL_OK;
}

cdl_status cdl_logreg_galois_steps(const cdl_ckks_context *ctx, size_t d, int *steps, size_t capacity,
                                   size_t *count)
{
    if (!steps || !count)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_galois_steps: NULL argument");
    size_t row, rows;
    CDL_TRY(cdl_logreg_layout(ctx, d, &row, &rows));
    const size_t slots = cdl_ckks_slots(ctx);
    size_t k = 0;
    for (size_t s = 1; s < row; s *= 2) {
        if (k + 2 > capacity)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_galois_steps: capacity %zu too small", capacity);
        steps[k++] = (int)s;
        steps[k++] = -(int)s;
    }
    for (size_t s = row; s < slots; s *= 2) {
        if (k + 1 > capacity)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_galois_steps: capacity %zu too small", capacity);
        steps[k++] = (int)s;
    }
    *count = k;
    return CDL_OK;
}

/* ---- client: encryption ---- */

void cdl_logreg_encrypted_data_free(cdl_logreg_encrypted_data *data)
{
    if (!data)
        return;
    if (data->z)
        for (size_t j = 0; j < data->n_ct; j++)
            cdl_ckks_ciphertext_free(data->z[j]);
    cdl_free(data->z);
    cdl_free(data);
}

size_t cdl_logreg_encrypted_data_samples(const cdl_logreg_encrypted_data *data)
{
    return data ? data->n : 0;
}

size_t cdl_logreg_encrypted_data_ciphertexts(const cdl_logreg_encrypted_data *data)
{
    return data ? data->n_ct : 0;
}

int cdl_logreg_encrypted_data_level(const cdl_logreg_encrypted_data *data)
{
    return data ? data->level : -1;
}

cdl_status cdl_logreg_encrypt_dataset(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                      const double *x, const int *y, size_t n, size_t d,
                                      cdl_logreg_encrypted_data **out)
{
    if (!ctx)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_encrypt_dataset: NULL argument");
    return cdl_logreg_encrypt_dataset_level(ctx, sk, rng, x, y, n, d, cdl_ckks_max_level(ctx), out);
}

cdl_status cdl_logreg_encrypt_dataset_level(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                            cdl_rng *rng, const double *x, const int *y, size_t n, size_t d,
                                            int level, cdl_logreg_encrypted_data **out)
{
    if (!ctx || !sk || !rng || !x || !y || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_encrypt_dataset: NULL argument");
    *out = NULL;
    if (level < 0 || level > cdl_ckks_max_level(ctx))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_encrypt_dataset: level %d outside 0..%d", level,
                        cdl_ckks_max_level(ctx));
    if (n < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_encrypt_dataset: no samples (n = 0)");
    for (size_t i = 0; i < n; i++)
        if (y[i] != 1 && y[i] != -1)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                            "cdl_logreg_encrypt_dataset: label %zu is %d; labels must be -1 or +1", i, y[i]);
    for (size_t i = 0; i < n * d; i++)
        if (!isfinite(x[i]))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                            "cdl_logreg_encrypt_dataset: feature %zu of sample %zu is not finite", i % d, i / d);
    size_t row, rows;
    CDL_TRY(cdl_logreg_layout(ctx, d, &row, &rows));
    const size_t slots = cdl_ckks_slots(ctx);
    cdl_status st = CDL_OK;
    cdl_ckks_plaintext *pt = NULL;
    double *vals = NULL;
    cdl_logreg_encrypted_data *data = cdl_calloc_array(1, sizeof *data);
    if (!data)
        return CDL_ERR_NO_MEMORY;
    memcpy(data->hash, cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES);
    data->n = n;
    data->d = d;
    data->row = row;
    data->rows_per_ct = rows;
    data->n_ct = (n + rows - 1) / rows;
    data->level = level;
    data->z = cdl_calloc_array(data->n_ct, sizeof *data->z);
    /* Plaintext data of the client: wiped before release. */
    vals = cdl_secure_calloc(slots, sizeof *vals);
    if (!data->z || !vals) {
        st = CDL_ERR_NO_MEMORY;
        goto done;
    }
    CDL_TRY_GOTO(st, cdl_ckks_plaintext_new(ctx, &pt), done);
    for (size_t j = 0; j < data->n_ct; j++) {
        memset(vals, 0, slots * sizeof *vals);
        for (size_t r = 0; r < rows; r++) {
            size_t i = j * rows + r;
            if (i >= n)
                break;
            double *v = vals + r * row;
            v[0] = (double)y[i];
            for (size_t f = 0; f < d; f++)
                v[1 + f] = (double)y[i] * x[i * d + f];
        }
        CDL_TRY_GOTO(st, cdl_ckks_encode(ctx, vals, slots, cdl_ckks_default_scale(ctx), level, pt),
                     done);
        CDL_TRY_GOTO(st, cdl_ckks_ciphertext_new(ctx, &data->z[j]), done);
        CDL_TRY_GOTO(st, cdl_ckks_encrypt_sk(ctx, sk, pt, rng, data->z[j]), done);
    }
done:
    cdl_ckks_plaintext_free(pt);
    cdl_secure_free(vals, slots * sizeof *vals);
    if (st != CDL_OK) {
        cdl_logreg_encrypted_data_free(data);
        return st;
    }
    *out = data;
    return CDL_OK;
}

/* ---- the schedule, shared by both trainers ---- */

/* gamma_k and eta_k for k = 1..K; lambda carries Nesterov's sequence. */
static double step_gamma(const cdl_logreg_config *cfg, int k)
{
    return cfg->lr_decay ? cfg->learning_rate / (k + 1) : cfg->learning_rate;
}

static double step_eta(const cdl_logreg_config *cfg, double *lambda)
{
    return lrn_step_eta(cfg->nesterov, lambda);
}

/* ---- server: training ---- */

void cdl_logreg_encrypted_weights_free(cdl_logreg_encrypted_weights *w)
{
    if (!w)
        return;
    cdl_ckks_ciphertext_free(w->beta);
    cdl_free(w);
}

int cdl_logreg_encrypted_weights_level(const cdl_logreg_encrypted_weights *w)
{
    return w && w->beta ? cdl_ckks_ciphertext_level(w->beta) : -1;
}

/* Working ciphertexts of the server (W_BETA and W_V adjacent: checkpoints save them as one list). */
enum { W_G0, W_BETA, W_V, W_BNEW, W_VNEW, W_P, W_TMP, W_ZK, W_S2, W_TZ, W_Q, W_SUM, W_C, W_COUNT };

struct cdl_logreg_trainer {
    const cdl_ckks_context *ctx;
    const cdl_ckks_relin_key *rlk;
    const cdl_ckks_galois_keys *gk;
    const cdl_ckks_bootstrapper *bt; /* NULL: no bootstrapping */
    const cdl_ckks_bootstrap_keys *bk;
    const cdl_logreg_encrypted_data *data;
    cdl_logreg_config cfg; /* a copy; no progress callback */
    cdl_logreg_sigmoid sig;
    size_t slots;
    int per;        /* levels an iteration after the first spends */
    int boot_level; /* level of a bootstrapped ciphertext; -1 without bootstrapping */
    int top;        /* level the state is brought to after a bootstrap: min(boot_level, the data's) */
    int k;          /* iterations done */
    double lambda;  /* Nesterov's lambda_(k+1) */
    int bootstraps;
    double bootstrap_seconds;
    cdl_ckks_ciphertext *w[W_COUNT];
    cdl_ckks_plaintext *mask;
    cdl_ckks_plaintext *imag; /* i in every slot, scale 1, at boot_level: exactly the monomial X^(N/2) */
};

static double weight_bound(const cdl_logreg_config *cfg)
{
    return cfg->weight_bound > 0 ? cfg->weight_bound : 8.0;
}

/* The whole plan simulated: bootstraps for K iterations, or -1. Iteration 1 costs no level; a bootstrap brings
 * beta and v back to min(boot_level, data_level). */
static int plan_bootstraps(int data_level, int boot_level, int iterations, int per)
{
    const int boot = boot_level >= 0;
    const int top = boot && boot_level < data_level ? boot_level : data_level;
    return lrn_plan_bootstraps(data_level, boot ? top : -1, iterations, per);
}

int cdl_logreg_bootstraps_needed(int data_level, int boot_level, int iterations, int sigmoid_degree)
{
    if (data_level < 0 || iterations < 1)
        return -1;
    return plan_bootstraps(data_level, boot_level, iterations, cdl_logreg_levels_per_iteration(sigmoid_degree));
}

cdl_status cdl_logreg_bootstrap_preset(int log_n, cdl_ckks_param_spec *spec, cdl_ckks_bootstrap_params *params)
{
    if (!spec || !params)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_bootstrap_preset: NULL argument");
    if (log_n != 16 && (log_n < 10 || log_n > 14))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_logreg_bootstrap_preset: log_n = %d; 16 (128-bit) or 10..14 (INSECURE, for tests)",
                        log_n);
    CDL_TRY(cdl_ckks_bootstrap_preset(log_n, spec, params));
    if (log_n == 16)
        return CDL_OK;
    /* The insecure preset bottom up: q0, its computation primes of 40 bits, then the bootstrap's own.
     * Give it the 9 computation levels of the 128-bit preset (the same level plan for tests). */
    const int comp = 9;
    int c40 = 0;
    while (1 + c40 < spec->q_count && spec->q_bits[1 + c40] == 40)
        c40++;
    const int rest = spec->q_count - 1 - c40;
    if (1 + comp + rest > CDL_CKKS_MAX_PRIMES || c40 > comp)
        return cdl_fail(CDL_ERR_INTERNAL, "cdl_logreg_bootstrap_preset: unexpected preset chain");
    memmove(&spec->q_bits[1 + comp], &spec->q_bits[1 + c40], (size_t)rest * sizeof spec->q_bits[0]);
    for (int i = 0; i < comp; i++)
        spec->q_bits[1 + i] = 40;
    spec->q_count = 1 + comp + rest;
    return CDL_OK;
}

/* Iteration 1 from beta_0 = v_0 = 0: beta_1 = (gamma_1 a0 / n) G0, read at scale / c; v_1 = beta_1 (eta_1 = 0,
 * folded in anyway). No level. */
static cdl_status first_iteration(cdl_logreg_trainer *T, double gamma, double eta)
{
    const cdl_ckks_context *ctx = T->ctx;
    cdl_ckks_ciphertext **w = T->w;
    const double c = gamma * T->sig.a0 / (double)T->data->n;
    const double s = cdl_ckks_ciphertext_scale(w[W_G0]);
    CDL_TRY(cdl_ckks_ciphertext_copy(ctx, w[W_G0], w[W_BETA]));
    cdl_ckks_ciphertext_set_scale(w[W_BETA], s / (c * (1.0 - eta)));
    CDL_TRY(cdl_ckks_ciphertext_copy(ctx, w[W_BETA], w[W_V]));
    cdl_ckks_ciphertext_set_scale(w[W_BETA], s / c);
    return CDL_OK;
}

/* The gradient step of iteration k >= 2: W_BNEW = beta_k, and W_VNEW = v_k unless last. */
static cdl_status iterate(cdl_logreg_trainer *T, double gamma, double eta, int last)
{
    const cdl_ckks_context *ctx = T->ctx;
    const cdl_logreg_encrypted_data *D = T->data;
    cdl_ckks_ciphertext **w = T->w;
    const int l = cdl_ckks_ciphertext_level(w[W_V]);
    const double delta = cdl_ckks_default_scale(ctx);
    const double n = (double)D->n;
    /* q_i = kappa t_i (a1 + a3 t_i^2) z_i, or kappa t_i z_i for degree 1. */
    const double kappa = T->sig.degree >= 3 ? -gamma / n : -gamma * T->sig.a1 / n;
    for (size_t j = 0; j < D->n_ct; j++) {
        const cdl_ckks_ciphertext *z = D->z[j];
        /* p = Z (*) v, summed within each row: slot 0 of row i is <Z_i, v>. */
        CDL_TRY(cdl_ckks_drop_to_level(ctx, z, l, w[W_P]));
        CDL_TRY(lrn_mul_relin_rescale(ctx, T->rlk, w[W_P], w[W_V], w[W_P]));
        CDL_TRY(lrn_rotate_sum(ctx, T->gk, w[W_P], w[W_TMP], 1, D->row, 1));
        /* Keep slot 0 of each row (the plaintext mask lands t at scale delta), replicate it along the row. */
        double enc = delta * (double)cdl_ckks_prime(ctx, l - 1) / cdl_ckks_ciphertext_scale(w[W_P]);
        if (j == 0) {
            double *m = cdl_calloc_array(T->slots, sizeof *m);
            if (!m)
                return CDL_ERR_NO_MEMORY;
            for (size_t r = 0; r < D->rows_per_ct; r++)
                m[r * D->row] = 1.0;
            cdl_status st = cdl_ckks_encode(ctx, m, T->slots, enc, l - 1, T->mask);
            cdl_free(m);
            CDL_TRY(st);
        }
        CDL_TRY(cdl_ckks_mul_plain(ctx, w[W_P], T->mask, w[W_P]));
        CDL_TRY(cdl_ckks_rescale(ctx, w[W_P], w[W_P]));
        cdl_ckks_ciphertext_set_scale(w[W_P], delta);
        CDL_TRY(lrn_rotate_sum(ctx, T->gk, w[W_P], w[W_TMP], 1, D->row, -1));
        /* kappa Z, from Z's spare level, at t's level (dropped first: fewer limbs to rescale). */
        CDL_TRY(cdl_ckks_drop_to_level(ctx, z, l - 1, w[W_ZK]));
        CDL_TRY(lrn_mul_const_to(ctx, w[W_ZK], kappa, delta, w[W_ZK]));
        CDL_TRY(lrn_mul_relin_rescale(ctx, T->rlk, w[W_P], w[W_ZK], w[W_TZ])); /* kappa t z, level l-3 */
        if (T->sig.degree >= 3) {
            /* h = a1 + a3 t^2: a3 is read into the scale of t^2 (no level). */
            CDL_TRY(lrn_mul_relin_rescale(ctx, T->rlk, w[W_P], w[W_P], w[W_S2]));
            const double a3 = T->sig.a3;
            if (a3 < 0)
                CDL_TRY(cdl_ckks_negate(ctx, w[W_S2], w[W_S2]));
            cdl_ckks_ciphertext_set_scale(w[W_S2], cdl_ckks_ciphertext_scale(w[W_S2]) / fabs(a3));
            CDL_TRY(cdl_ckks_add_const(ctx, w[W_S2], T->sig.a1, w[W_S2]));
            CDL_TRY(lrn_mul_relin_rescale(ctx, T->rlk, w[W_S2], w[W_TZ], w[W_Q])); /* level l-4 */
        } else {
            CDL_TRY(cdl_ckks_ciphertext_copy(ctx, w[W_TZ], w[W_Q]));
        }
        if (j == 0)
            CDL_TRY(cdl_ckks_ciphertext_copy(ctx, w[W_Q], w[W_SUM]));
        else
            CDL_TRY(cdl_ckks_add(ctx, w[W_SUM], w[W_Q], w[W_SUM]));
    }
    /* Sum over the rows: every row then holds the whole sum. */
    CDL_TRY(lrn_rotate_sum(ctx, T->gk, w[W_SUM], w[W_TMP], D->row, T->slots, 1));
    const double sq = cdl_ckks_ciphertext_scale(w[W_SUM]);
    const int lo = cdl_ckks_ciphertext_level(w[W_SUM]);
    /* grad = (gamma a0 / n) sum Z_i + the sum above. */
    CDL_TRY(cdl_ckks_drop_to_level(ctx, w[W_G0], lo + 1, w[W_C]));
    CDL_TRY(lrn_mul_const_to(ctx, w[W_C], gamma * T->sig.a0 / n, sq, w[W_C]));
    CDL_TRY(cdl_ckks_add(ctx, w[W_SUM], w[W_C], w[W_SUM]));
    /* beta_k = v + grad */
    CDL_TRY(cdl_ckks_drop_to_level(ctx, w[W_V], lo + 1, w[W_BNEW]));
    CDL_TRY(lrn_mul_const_to(ctx, w[W_BNEW], 1.0, sq, w[W_BNEW]));
    CDL_TRY(cdl_ckks_add(ctx, w[W_BNEW], w[W_SUM], w[W_BNEW]));
    if (last)
        return CDL_OK;
    /* v_k = (1 - eta) v + eta beta_(k-1) + (1 - eta) grad; (1 - eta) grad is grad at scale sq / (1 - eta). */
    const double keep = 1.0 - eta;
    if (!(keep > 0))
        return cdl_fail(CDL_ERR_PARAMETERS, "cdl_logreg_train_encrypted: momentum factor 1 - eta = %g <= 0", keep);
    const double target = sq / keep;
    CDL_TRY(cdl_ckks_drop_to_level(ctx, w[W_V], lo + 1, w[W_VNEW]));
    CDL_TRY(lrn_mul_const_to(ctx, w[W_VNEW], keep, target, w[W_VNEW]));
    if (eta != 0) {
        CDL_TRY(cdl_ckks_drop_to_level(ctx, w[W_BETA], lo + 1, w[W_C]));
        CDL_TRY(lrn_mul_const_to(ctx, w[W_C], eta, target, w[W_C]));
        CDL_TRY(cdl_ckks_add(ctx, w[W_VNEW], w[W_C], w[W_VNEW]));
    }
    cdl_ckks_ciphertext_set_scale(w[W_SUM], target);
    return cdl_ckks_add(ctx, w[W_VNEW], w[W_SUM], w[W_VNEW]);
}


/* beta and v (level >= 1) -> one bootstrap -> beta and v at T->top: packed as (beta + i v) / W, whose real and
 * imaginary parts stay within the bootstrap's range while |beta_j|, |v_j| <= W (lrn_bootstrap_pair). */
static cdl_status bootstrap_state(cdl_logreg_trainer *T)
{
    const cdl_ckks_context *ctx = T->ctx;
    cdl_ckks_ciphertext **w = T->w;
    if (cdl_ckks_ciphertext_level(w[W_BETA]) < 1 || cdl_ckks_ciphertext_level(w[W_V]) < 1)
        return cdl_fail(CDL_ERR_INTERNAL, "cdl_logreg_trainer_step: no level left to pack the weights");
    CDL_TRY(cdl_ckks_drop_to_level(ctx, w[W_BETA], 1, w[W_C]));
    CDL_TRY(cdl_ckks_drop_to_level(ctx, w[W_V], 1, w[W_P]));
    const lrn_boot b = {T->bt, T->bk, T->rlk, T->gk, T->imag};
    CDL_TRY(lrn_bootstrap_pair(ctx, &b, weight_bound(&T->cfg), w[W_C], w[W_P], w[W_BETA], w[W_V], w[W_TMP],
                               &T->bootstrap_seconds));
    T->bootstraps++;
    if (cdl_ckks_ciphertext_level(w[W_V]) > T->top) {
        CDL_TRY(cdl_ckks_drop_to_level(ctx, w[W_V], T->top, w[W_V]));
        CDL_TRY(cdl_ckks_drop_to_level(ctx, w[W_BETA], T->top, w[W_BETA]));
    }
    return CDL_OK;
}

void cdl_logreg_trainer_free(cdl_logreg_trainer *T)
{
    if (!T)
        return;
    for (int i = 0; i < W_COUNT; i++)
        cdl_ckks_ciphertext_free(T->w[i]);
    cdl_ckks_plaintext_free(T->mask);
    cdl_ckks_plaintext_free(T->imag);
    cdl_free(T);
}

/* Everything the trainer is built from, checked before any work. */
static cdl_status trainer_init(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                               const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                               const cdl_ckks_bootstrap_keys *bk, const cdl_logreg_encrypted_data *data,
                               const cdl_logreg_config *cfg, const char *fn, cdl_logreg_trainer **out)
{
    if (!ctx || !rlk || !gk || !data || !out || (!bt) != (!bk))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument%s", fn,
                        (!bt) != (!bk) ? " (a bootstrapper needs its keys, and the reverse)" : "");
    *out = NULL;
    CDL_TRY(check_config(cfg, fn));
    int boot_level = -1;
    CDL_TRY(lrn_check_setup(ctx, data->hash, bt, "the weights fill", fn, &boot_level));
    int steps[CDL_LOGREG_MAX_STEPS];
    size_t nsteps;
    CDL_TRY(cdl_logreg_galois_steps(ctx, data->d, steps, CDL_LOGREG_MAX_STEPS, &nsteps));
    CDL_TRY(lrn_check_galois_keys(gk, steps, nsteps, data->level, "cdl_logreg_galois_steps", fn));
    const int per = cdl_logreg_levels_per_iteration(cfg->sigmoid_degree);
    if (bt) {
        CDL_TRY(lrn_check_conjugation(gk, boot_level, "weights", fn));
        if (plan_bootstraps(data->level, boot_level, cfg->iterations, per) < 0)
            return cdl_fail(CDL_ERR_PARAMETERS,
                            "%s: %d iterations cannot run: after a bootstrap the weights are at level %d (the data "
                            "at %d), and an iteration needs %d levels plus 1 to pack the weights for the next "
                            "bootstrap",
                            fn, cfg->iterations, boot_level, data->level, per);
    } else if (plan_bootstraps(data->level, -1, cfg->iterations, per) < 0) {
        const int kmax = cdl_logreg_max_iterations(data->level, cfg->sigmoid_degree);
        return cdl_fail(CDL_ERR_EXHAUSTED,
                        "%s: %d iterations need %d levels (the first costs none, each later one %d with a degree-%d "
                        "sigmoid) but the data are at level %d of N = 2^%d; at most %d iterations fit without "
                        "bootstrapping: use --iters %d, a larger N, or a bootstrapper",
                        fn, cfg->iterations, (cfg->iterations - 1) * per, per, cfg->sigmoid_degree, data->level,
                        cdl_ckks_log_n(ctx), kmax, kmax);
    }
    cdl_logreg_trainer *T = cdl_calloc_array(1, sizeof *T);
    if (!T)
        return CDL_ERR_NO_MEMORY;
    T->ctx = ctx;
    T->rlk = rlk;
    T->gk = gk;
    T->bt = bt;
    T->bk = bk;
    T->data = data;
    T->cfg = *cfg;
    T->cfg.progress = NULL;
    T->cfg.progress_user = NULL;
    T->slots = cdl_ckks_slots(ctx);
    T->per = per;
    T->boot_level = boot_level;
    T->top = bt && boot_level < data->level ? boot_level : data->level;
    T->lambda = 1.0;
    cdl_status st = cdl_logreg_sigmoid_fit(cfg, &T->sig);
    for (int i = 0; st == CDL_OK && i < W_COUNT; i++)
        st = cdl_ckks_ciphertext_new(ctx, &T->w[i]);
    if (st == CDL_OK)
        st = cdl_ckks_plaintext_new(ctx, &T->mask);
    if (st == CDL_OK && bt)
        st = lrn_imag_plaintext(ctx, boot_level, &T->imag);
    /* G0 = sum_i Z_i, replicated in every row. */
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_copy(ctx, data->z[0], T->w[W_G0]);
    for (size_t j = 1; st == CDL_OK && j < data->n_ct; j++)
        st = cdl_ckks_add(ctx, T->w[W_G0], data->z[j], T->w[W_G0]);
    if (st == CDL_OK)
        st = lrn_rotate_sum(ctx, gk, T->w[W_G0], T->w[W_TMP], data->row, T->slots, 1);
    if (st != CDL_OK) {
        cdl_logreg_trainer_free(T);
        return st;
    }
    *out = T;
    return CDL_OK;
}

cdl_status cdl_logreg_trainer_new(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                  const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                  const cdl_ckks_bootstrap_keys *bk, const cdl_logreg_encrypted_data *data,
                                  const cdl_logreg_config *cfg, cdl_logreg_trainer **out)
{
    return trainer_init(ctx, rlk, gk, bt, bk, data, cfg, "cdl_logreg_trainer_new", out);
}

static void swap_ct(cdl_ckks_ciphertext **a, cdl_ckks_ciphertext **b)
{
    cdl_ckks_ciphertext *t = *a;
    *a = *b;
    *b = t;
}

cdl_status cdl_logreg_trainer_step(cdl_logreg_trainer *T)
{
    if (!T)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_trainer_step: NULL trainer");
    const cdl_logreg_config *cfg = &T->cfg;
    if (T->k >= cfg->iterations)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_trainer_step: all %d iterations are done",
                        cfg->iterations);
    const int k = T->k + 1;
    const double gamma = step_gamma(cfg, k);
    const double eta = step_eta(cfg, &T->lambda);
    if (k == 1) {
        CDL_TRY(first_iteration(T, gamma, eta));
    } else {
        const cdl_ckks_context *ctx = T->ctx;
        const int r = cfg->iterations - k + 1;
        int run = lrn_plan_level(cdl_ckks_ciphertext_level(T->w[W_V]), r, T->per, T->bt != NULL);
        if (run == -1) {
            CDL_TRY(bootstrap_state(T));
            run = lrn_plan_level(cdl_ckks_ciphertext_level(T->w[W_V]), r, T->per, 1);
        }
        if (run < 0)
            return cdl_fail(CDL_ERR_INTERNAL, "cdl_logreg_trainer_step: no level plan for iteration %d", k);
        /* Work at the lowest level that keeps the plan: cheaper key switching. */
        if (cdl_ckks_ciphertext_level(T->w[W_V]) > run)
            CDL_TRY(cdl_ckks_drop_to_level(ctx, T->w[W_V], run, T->w[W_V]));
        if (cdl_ckks_ciphertext_level(T->w[W_BETA]) > run)
            CDL_TRY(cdl_ckks_drop_to_level(ctx, T->w[W_BETA], run, T->w[W_BETA]));
        const int last = k == cfg->iterations;
        CDL_TRY(iterate(T, gamma, eta, last));
        swap_ct(&T->w[W_BETA], &T->w[W_BNEW]);
        if (!last)
            swap_ct(&T->w[W_V], &T->w[W_VNEW]);
    }
    T->k = k;
    return CDL_OK;
}

int cdl_logreg_trainer_iteration(const cdl_logreg_trainer *T)
{
    return T ? T->k : -1;
}

int cdl_logreg_trainer_bootstraps(const cdl_logreg_trainer *T)
{
    return T ? T->bootstraps : -1;
}

double cdl_logreg_trainer_bootstrap_seconds(const cdl_logreg_trainer *T)
{
    return T ? T->bootstrap_seconds : 0.0;
}

int cdl_logreg_trainer_level(const cdl_logreg_trainer *T)
{
    return T && T->k >= 1 ? cdl_ckks_ciphertext_level(T->w[W_BETA]) : -1;
}

cdl_status cdl_logreg_trainer_weights(const cdl_logreg_trainer *T, cdl_logreg_encrypted_weights **out)
{
    if (!T || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_trainer_weights: NULL argument");
    *out = NULL;
    if (T->k < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_trainer_weights: no iteration done yet");
    cdl_logreg_encrypted_weights *res = cdl_calloc_array(1, sizeof *res);
    if (!res)
        return CDL_ERR_NO_MEMORY;
    memcpy(res->hash, T->data->hash, CDL_CKKS_PARAM_HASH_BYTES);
    res->d = T->data->d;
    res->row = T->data->row;
    cdl_status st = cdl_ckks_ciphertext_new(T->ctx, &res->beta);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_copy(T->ctx, T->w[W_BETA], res->beta);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_shrink(res->beta);
    if (st != CDL_OK) {
        cdl_logreg_encrypted_weights_free(res);
        return st;
    }
    *out = res;
    return CDL_OK;
}

cdl_status cdl_logreg_train_encrypted_bootstrapped(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                                   const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                                   const cdl_ckks_bootstrap_keys *bk,
                                                   const cdl_logreg_encrypted_data *data,
                                                   const cdl_logreg_config *cfg, cdl_logreg_encrypted_weights **out)
{
    if (!out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_train_encrypted: NULL argument");
    *out = NULL;
    cdl_logreg_trainer *T = NULL;
    CDL_TRY(trainer_init(ctx, rlk, gk, bt, bk, data, cfg, "cdl_logreg_train_encrypted", &T));
    cdl_status st = CDL_OK;
    while (st == CDL_OK && T->k < cfg->iterations) {
        st = cdl_logreg_trainer_step(T);
        if (st == CDL_OK && cfg->progress)
            cfg->progress(cfg->progress_user, T->k, cfg->iterations);
    }
    if (st == CDL_OK)
        st = cdl_logreg_trainer_weights(T, out);
    cdl_logreg_trainer_free(T);
    return st;
}

cdl_status cdl_logreg_train_encrypted(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                      const cdl_ckks_galois_keys *gk, const cdl_logreg_encrypted_data *data,
                                      const cdl_logreg_config *cfg, cdl_logreg_encrypted_weights **out)
{
    return cdl_logreg_train_encrypted_bootstrapped(ctx, rlk, gk, NULL, NULL, data, cfg, out);
}

/* ---- checkpoints ---- */

#define TRAINER_MAGIC "CDLLRTR1"
#define TRAINER_VERSION 1u

/* What a checkpoint must agree on besides the CKKS parameters, as this run writes it. */
static size_t header_fields(const cdl_logreg_encrypted_data *D, const cdl_logreg_config *c, lrn_field *f)
{
    size_t n = lrn_fields_data(f, D->n, "features", D->d, 0, D->level);
    f[n++] = lrn_field_u32("iterations", (uint32_t)c->iterations);
    f[n++] = lrn_field_f64("learning rate", c->learning_rate);
    f[n++] = lrn_field_u8("lr_decay", (uint8_t)(c->lr_decay != 0));
    f[n++] = lrn_field_u8("nesterov", (uint8_t)(c->nesterov != 0));
    f[n++] = lrn_field_u8("sigmoid degree", (uint8_t)c->sigmoid_degree);
    f[n++] = lrn_field_f64("sigmoid bound", c->sigmoid_bound);
    f[n++] = lrn_field_f64("weight bound", weight_bound(c));
    return n;
}

cdl_status cdl_logreg_trainer_save(const cdl_logreg_trainer *T, uint8_t **data, size_t *len)
{
    if (!T || !data || !len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_trainer_save: NULL argument");
    *data = NULL;
    *len = 0;
    if (T->k < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_trainer_save: no iteration done yet");
    lrn_field f[LRN_MAX_FIELDS];
    const size_t nf = header_fields(T->data, &T->cfg, f);
    const lrn_counters c = {(uint32_t)(T->boot_level + 1) /* 0: no bootstrapping */, (uint32_t)T->k,
                            (uint32_t)T->bootstraps};
    cdl_writer w;
    lrn_checkpoint_begin(&w, TRAINER_MAGIC, TRAINER_VERSION, T->data->hash, f, nf, &c);
    return lrn_checkpoint_finish(&w, lrn_write_cts(T->ctx, &w, &T->w[W_BETA], 2), data, len);
}

cdl_status cdl_logreg_trainer_load(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                   const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                   const cdl_ckks_bootstrap_keys *bk, const cdl_logreg_encrypted_data *data,
                                   const cdl_logreg_config *cfg, const uint8_t *bytes, size_t len,
                                   cdl_logreg_trainer **out)
{
    const char *fn = "cdl_logreg_trainer_load";
    if (!bytes || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    *out = NULL;
    cdl_reader r;
    CDL_TRY(lrn_checkpoint_open(bytes, len, TRAINER_MAGIC, "a logistic-regression training checkpoint", fn, &r));
    cdl_logreg_trainer *T = NULL;
    CDL_TRY(trainer_init(ctx, rlk, gk, bt, bk, data, cfg, fn, &T));
    lrn_field f[LRN_MAX_FIELDS];
    const size_t nf = header_fields(data, cfg, f);
    lrn_counters c;
    cdl_status st = lrn_header_read(&r, TRAINER_VERSION, ctx, f, nf, &c, fn);
    const uint32_t boot = c.boot, k = c.k, boots = c.bootstraps;
    if (st == CDL_OK && (int)boot != T->boot_level + 1)
        st = cdl_fail(CDL_ERR_MISMATCH,
                      "%s: the checkpoint was made %s bootstrapping%s, this run %s it%s", fn, boot ? "with" : "without",
                      boot ? " (output level given)" : "", bt ? "has" : "does not have",
                      bt && boot ? " at another output level" : "");
    if (st == CDL_OK && (k < 1 || (int)k > cfg->iterations || boots > k))
        st = cdl_fail(CDL_ERR_FORMAT, "%s: iteration %u of %d, %u bootstraps: not a valid state", fn, k,
                      cfg->iterations, boots);
    if (st == CDL_OK)
        st = lrn_read_cts(ctx, &r, &T->w[W_BETA], 2, data->level, fn);
    if (st == CDL_OK)
        st = cdl_reader_expect_end(&r);
    /* the next step must find its plan from these levels */
    if (st == CDL_OK && (int)k < cfg->iterations &&
        !lrn_state_fits_plan(cdl_ckks_ciphertext_level(T->w[W_BETA]), cdl_ckks_ciphertext_level(T->w[W_V]),
                             cfg->iterations - (int)k, T->per, bt != NULL))
        st = cdl_fail(CDL_ERR_FORMAT, "%s: saved weights at levels %d and %d do not fit the level plan", fn,
                      cdl_ckks_ciphertext_level(T->w[W_BETA]), cdl_ckks_ciphertext_level(T->w[W_V]));
    if (st != CDL_OK) {
        cdl_logreg_trainer_free(T);
        return st;
    }
    T->k = (int)k;
    T->bootstraps = (int)boots;
    T->lambda = lrn_lambda_after(T->cfg.nesterov, T->k); /* lambda_(k+1) */
    *out = T;
    return CDL_OK;
}

/* ---- client: decryption ---- */

cdl_status cdl_logreg_decrypt_weights(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                      const cdl_logreg_encrypted_weights *w, double *weights, size_t count)
{
    if (!ctx || !sk || !w || !weights)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_decrypt_weights: NULL argument");
    if (count != w->d + 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_logreg_decrypt_weights: room for %zu weights given, the model has %zu (bias + %zu)",
                        count, w->d + 1, w->d);
    if (memcmp(w->hash, cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES) != 0)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_logreg_decrypt_weights: weights made under other CKKS parameters");
    cdl_ckks_plaintext *pt = NULL;
    CDL_TRY(cdl_ckks_plaintext_new(ctx, &pt));
    double *vals = cdl_secure_calloc(w->row, sizeof *vals);
    cdl_status st = vals ? CDL_OK : CDL_ERR_NO_MEMORY;
    if (st == CDL_OK)
        st = cdl_ckks_decrypt(ctx, sk, w->beta, pt);
    if (st == CDL_OK)
        st = cdl_ckks_decode(ctx, pt, vals, w->row);
    if (st == CDL_OK)
        memcpy(weights, vals, count * sizeof *weights);
    cdl_secure_free(vals, w->row * sizeof *vals);
    cdl_ckks_plaintext_free(pt);
    return st;
}

/* ---- plaintext twin ---- */

cdl_status cdl_logreg_train_plain(const double *x, const int *y, size_t n, size_t d, const cdl_logreg_config *cfg,
                                  double *weights)
{
    return cdl_logreg_train_plain_stats(x, y, n, d, cfg, weights, NULL);
}

cdl_status cdl_logreg_train_plain_stats(const double *x, const int *y, size_t n, size_t d,
                                        const cdl_logreg_config *cfg, double *weights, cdl_logreg_plain_stats *stats)
{
    if (!x || !y || !weights)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_train_plain: NULL argument");
    if (n < 1 || d < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_train_plain: empty data (n = %zu, d = %zu)", n, d);
    cdl_logreg_sigmoid sig;
    CDL_TRY(cdl_logreg_sigmoid_fit(cfg, &sig));
    for (size_t i = 0; i < n; i++)
        if (y[i] != 1 && y[i] != -1)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_logreg_train_plain: label %zu is %d, not -1 or +1", i,
                            y[i]);
    const size_t dd = d + 1;
    double *buf = cdl_calloc_array(4 * dd, sizeof *buf);
    if (!buf)
        return CDL_ERR_NO_MEMORY;
    double *beta = buf, *v = buf + dd, *grad = buf + 2 * dd, *nb = buf + 3 * dd;
    double lambda = 1.0, max_state = 0.0, max_margin = 0.0;
    for (int k = 1; k <= cfg->iterations; k++) {
        const double gamma = step_gamma(cfg, k), eta = step_eta(cfg, &lambda);
        memset(grad, 0, dd * sizeof *grad);
        for (size_t i = 0; i < n; i++) {
            const double yi = (double)y[i], *xi = x + i * d;
            double t = yi * v[0];
            for (size_t f = 0; f < d; f++)
                t += yi * xi[f] * v[1 + f];
            max_margin = fmax(max_margin, fabs(t));
            const double g = sig.a0 - sig.a1 * t - sig.a3 * t * t * t; /* ~ sigma(-t) */
            grad[0] += g * yi;
            for (size_t f = 0; f < d; f++)
                grad[1 + f] += g * yi * xi[f];
        }
        for (size_t f = 0; f < dd; f++)
            nb[f] = v[f] + gamma / (double)n * grad[f];
        for (size_t f = 0; f < dd; f++) {
            v[f] = (1.0 - eta) * nb[f] + eta * beta[f];
            beta[f] = nb[f];
            max_state = fmax(max_state, fmax(fabs(beta[f]), k < cfg->iterations ? fabs(v[f]) : 0.0));
        }
        if (cfg->progress)
            cfg->progress(cfg->progress_user, k, cfg->iterations);
    }
    memcpy(weights, beta, dd * sizeof *weights);
    cdl_free(buf);
    if (stats) {
        stats->max_abs_state = max_state;
        stats->max_abs_margin = max_margin;
    }
    return CDL_OK;
}

double cdl_logreg_accuracy(const double *weights, const double *x, const int *y, size_t n, size_t d)
{
    if (!weights || !x || !y || n == 0)
        return 0.0;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++) {
        double s = weights[0];
        for (size_t f = 0; f < d; f++)
            s += weights[1 + f] * x[i * d + f];
        ok += (s > 0 ? 1 : -1) == y[i];
    }
    return (double)ok / (double)n;
}
