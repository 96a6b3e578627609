/*
 * test_learn_softmax.c: multiclass softmax regression on encrypted features
 * (src/learn/softmax.c) and the feature extraction it is fed with
 * (cdl_nn_run_value).
 *
 *  - the plaintext twin against an independent textbook loop written here
 *    (the Taylor softmax with its centering term kept, Nesterov in momentum
 *    form), and it learns a separable 5-class set;
 *  - encrypted training at small INSECURE test parameters (N = 2^11, the
 *    bootstrapping test preset with 9 computation levels) equals the
 *    plaintext twin after every iteration, across bootstraps of the packed
 *    state; a run saved and resumed ends in the same bytes as an
 *    uninterrupted one; the same without bootstrapping while the levels last;
 *  - refusals: too many iterations for the levels, missing Galois keys,
 *    another config or damaged bytes on load, bad labels and sizes;
 *  - cdl_nn_run_value: the output value equals cdl_nn_run, and the last dense
 *    layer applied by hand to its input value gives the logits again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cryptodl/learn.h"
#include "cryptodl/nn.h"
#include "test_learn_util.h"

#define D 12  /* features: rows of 16 slots */
#define C 5   /* classes: 8 padded (4 baby steps, 2 giant) */
#define NS 150 /* samples: 64 per ciphertext at N = 2^11, so 3 feature ciphertexts, 1 label ciphertext */

/* Five Gaussian blobs around random centres in [-1, 1]^D, unit-variance-ish features. */
static void make_data(uint8_t tag, double *x, int *y, size_t n)
{
    cdl_rng *rng = t_rng(tag);
    double centre[C][D];
    for (int j = 0; j < C; j++)
        for (int f = 0; f < D; f++)
            centre[j][f] = 2.0 * (double)(cdl_rng_u64(rng) >> 11) / 9007199254740992.0 - 1.0;
    for (size_t i = 0; i < n; i++) {
        y[i] = (int)(cdl_rng_u64(rng) % C);
        for (int f = 0; f < D; f++) {
            const double u = (double)(cdl_rng_u64(rng) >> 11) / 9007199254740992.0;
            x[i * D + f] = centre[y[i]][f] + 0.8 * (u - 0.5);
        }
    }
    cdl_rng_free(rng);
}

/* The textbook loop: p = 1/c + (z - mean_j z) / c (the first-order Taylor softmax, centring kept), the
 * gradient (1/n) sum (p - y) x^T, Nesterov in momentum form: W_k = V - gamma G(V), V = W_k + mu_k (W_k - W_(k-1)),
 * mu_k = (lambda_k - 1) / lambda_(k+1). */
static void textbook(const double *x, const int *y, size_t n, const cdl_softmax_config *cfg, double *w)
{
    double W[C * D] = {0}, V[C * D] = {0}, Wn[C * D], G[C * D];
    double lambda = 1.0;
    for (int k = 1; k <= cfg->iterations; k++) {
        memset(G, 0, sizeof G);
        for (size_t i = 0; i < n; i++) {
            double z[C], mean = 0;
            for (int j = 0; j < C; j++) {
                z[j] = 0;
                for (int f = 0; f < D; f++)
                    z[j] += V[j * D + f] * x[i * D + f];
                mean += z[j] / C;
            }
            for (int j = 0; j < C; j++) {
                const double p = 1.0 / C + (z[j] - mean) / C, e = p - (y[i] == j ? 1.0 : 0.0);
                for (int f = 0; f < D; f++)
                    G[j * D + f] += e * x[i * D + f] / (double)n;
            }
        }
        const double gamma = cfg->lr_decay ? cfg->learning_rate / (k + 1) : cfg->learning_rate;
        const double next = (1 + sqrt(1 + 4 * lambda * lambda)) / 2, mu = cfg->nesterov ? (lambda - 1) / next : 0;
        lambda = next;
        for (int t = 0; t < C * D; t++)
            Wn[t] = V[t] - gamma * G[t];
        for (int t = 0; t < C * D; t++) {
            V[t] = Wn[t] + mu * (Wn[t] - W[t]);
            W[t] = Wn[t];
        }
    }
    memcpy(w, W, sizeof W);
}

static void test_plain_matches_textbook(void **state)
{
    (void)state;
    double x[NS * D];
    int y[NS];
    make_data(1, x, y, NS);
    cdl_softmax_config cfg;
    cdl_softmax_config_default(&cfg);
    for (int variant = 0; variant < 3; variant++) {
        cfg.iterations = variant == 2 ? 1 : 12;
        cfg.nesterov = variant != 1;
        cfg.lr_decay = variant == 1;
        cfg.learning_rate = variant == 1 ? 2.0 : 0.7;
        double wa[C * D], wb[C * D];
        cdl_softmax_plain_stats st;
        assert_int_equal(cdl_softmax_train_plain(x, y, NS, D, C, &cfg, wa, &st), CDL_OK);
        textbook(x, y, NS, &cfg, wb);
        double big = 0;
        const double diff = t_max_diff(wa, wb, C * D, &big);
        print_message("variant %d: max |twin - textbook| = %.3g (largest weight %.3g, max |logit| %.3g)\n", variant,
                      diff, big, st.max_abs_logit);
        assert_true(big > 0.05);
        assert_true(diff <= 1e-12 * fmax(1.0, big));
    }
}

static void test_plain_learns(void **state)
{
    (void)state;
    double x[NS * D];
    int y[NS];
    make_data(2, x, y, NS);
    cdl_softmax_config cfg;
    cdl_softmax_config_default(&cfg);
    cfg.iterations = 20;
    double w[C * D];
    assert_int_equal(cdl_softmax_train_plain(x, y, NS, D, C, &cfg, w, NULL), CDL_OK);
    const double acc = cdl_softmax_accuracy(w, x, y, NS, D, C);
    print_message("training accuracy after 20 iterations: %.3f\n", acc);
    assert_true(acc >= 0.95);
    /* bad input */
    int bad[NS];
    memcpy(bad, y, sizeof bad);
    bad[7] = C;
    assert_int_equal(cdl_softmax_train_plain(x, bad, NS, D, C, &cfg, w, NULL), CDL_ERR_INVALID_ARGUMENT);
    cfg.learning_rate = -1;
    assert_int_equal(cdl_softmax_train_plain(x, y, NS, D, C, &cfg, w, NULL), CDL_ERR_INVALID_ARGUMENT);
}

static void bfx_setup(bfixture *f, uint8_t tag)
{
    bfx_setup_bootstrapping(f, tag);
    int steps[CDL_SOFTMAX_MAX_STEPS];
    size_t n;
    assert_int_equal(cdl_softmax_galois_steps(f->t.ctx, D, C, steps, CDL_SOFTMAX_MAX_STEPS, &n), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_galois(f->t.ctx, f->t.sk, steps, n, 0, f->t.rng, &f->gk), CDL_OK);
}

/* Decrypted W_k of the trainer against the plaintext twin run for k iterations. */
static double trainer_diff(bfixture *f, const cdl_softmax_trainer *tr, const double *x, const int *y,
                           const cdl_softmax_config *cfg, double *big, double *acc_enc, double *acc_plain)
{
    cdl_softmax_encrypted_weights *ew = NULL;
    assert_int_equal(cdl_softmax_trainer_weights(tr, &ew), CDL_OK);
    double we[C * D], wp[C * D];
    assert_int_equal(cdl_softmax_decrypt_weights(f->t.ctx, f->t.sk, ew, we, C * D), CDL_OK);
    assert_int_equal(cdl_softmax_decrypt_weights(f->t.ctx, f->t.sk, ew, we, C * D - 1), CDL_ERR_INVALID_ARGUMENT);
    cdl_softmax_encrypted_weights_free(ew);
    cdl_softmax_config c = *cfg;
    c.iterations = cdl_softmax_trainer_iteration(tr);
    assert_int_equal(cdl_softmax_train_plain(x, y, NS, D, C, &c, wp, NULL), CDL_OK);
    *big = 0;
    const double diff = t_max_diff(we, wp, C * D, big);
    *acc_enc = cdl_softmax_accuracy(we, x, y, NS, D, C);
    *acc_plain = cdl_softmax_accuracy(wp, x, y, NS, D, C);
    return diff;
}

static void test_layout_and_plan(void **state)
{
    (void)state;
    assert_int_equal(cdl_softmax_levels_per_iteration(), 3);
    /* data at 7, labels at 8, bootstrap output 9: iteration 1 leaves the state at 5; 2 runs 4 -> 1; a bootstrap
     * (unpacked to 8, dropped to 7) then two per bootstrap: 7 -> 4 -> 1 */
    assert_int_equal(cdl_softmax_bootstraps_needed(7, 9, 1), 0);
    assert_int_equal(cdl_softmax_bootstraps_needed(7, 9, 2), 0);
    assert_int_equal(cdl_softmax_bootstraps_needed(7, 9, 3), 1);
    assert_int_equal(cdl_softmax_bootstraps_needed(7, 9, 4), 1);
    assert_int_equal(cdl_softmax_bootstraps_needed(7, 9, 5), 2);
    assert_int_equal(cdl_softmax_bootstraps_needed(7, 9, 20), 9);
    assert_int_equal(cdl_softmax_bootstraps_needed(7, -1, 2), 0);
    assert_int_equal(cdl_softmax_bootstraps_needed(7, -1, 3), -1); /* 5 -> 2, then 3 levels short */
    assert_int_equal(cdl_softmax_bootstraps_needed(8, -1, 3), 0);  /* 6 -> 3 -> 0 */
    assert_int_equal(cdl_softmax_bootstraps_needed(7, 4, 4), -1);  /* the state back at 3: two iterations do not fit */
    bfixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(cdl_logreg_bootstrap_preset(11, &f.spec, &f.bp), CDL_OK);
    cdl_ckks_context *ctx = NULL;
    assert_int_equal(cdl_ckks_context_new(&f.spec, &ctx), CDL_OK);
    size_t row, m, cp;
    assert_int_equal(cdl_softmax_layout(ctx, D, C, &row, &m, &cp), CDL_OK);
    assert_int_equal(row, 16);
    assert_int_equal(m, 64);
    assert_int_equal(cp, 8);
    assert_int_equal(cdl_softmax_layout(ctx, 3, 10, &row, &m, &cp), CDL_OK); /* the row holds the classes */
    assert_int_equal(row, 16);
    assert_int_equal(cp, 16);
    assert_int_equal(cdl_softmax_layout(ctx, 100, 10, &row, &m, &cp), CDL_ERR_PARAMETERS); /* 8 samples < 2 C' */
    assert_int_equal(cdl_softmax_layout(ctx, 10, 1, &row, &m, &cp), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_softmax_data_level(ctx, 9), 7);
    assert_int_equal(cdl_softmax_data_level(ctx, -1), cdl_ckks_max_level(ctx) - 1);
    int steps[CDL_SOFTMAX_MAX_STEPS];
    size_t n;
    assert_int_equal(cdl_softmax_galois_steps(ctx, D, C, steps, CDL_SOFTMAX_MAX_STEPS, &n), CDL_OK);
    /* baby 64, 128, 192; giant +-256; fold 512; samples +-1..+-32 */
    assert_int_equal(n, 3 + 2 + 1 + 12);
    assert_int_equal(cdl_softmax_galois_steps(ctx, D, C, steps, 5, &n), CDL_ERR_INVALID_ARGUMENT);
    cdl_ckks_context_free(ctx);
}

/* Encrypted training with bootstrapping against the plaintext twin after every iteration, across 3 bootstraps;
 * a run saved after iteration 4 and resumed ends in the same bytes.
 *
 * Tolerance: the iterations between bootstraps are exact up to CKKS rounding (~2^-25 relative); a bootstrap at
 * these parameters is good to about 2^-20 of |u| <= 1 and the state goes through it divided by W = 4, so it adds
 * ~2^-18 to W and V, carried forward by the contraction of gradient descent and Nesterov's factor <= 2. We allow
 * 2^-13 (1.2e-4) absolute with the largest weight ~1, and equal accuracies. */
static void test_bootstrapped_matches_plain(void **state)
{
    (void)state;
    double x[NS * D];
    int y[NS];
    make_data(3, x, y, NS);
    bfixture f;
    bfx_setup(&f, 40);
    assert_int_equal(f.boot_level, 9);
    const int level = cdl_softmax_data_level(f.t.ctx, f.boot_level);
    cdl_softmax_encrypted_data *enc = NULL;
    assert_int_equal(cdl_softmax_encrypt_dataset(f.t.ctx, f.t.sk, f.t.rng, x, y, NS, D, C, level, &enc), CDL_OK);
    assert_int_equal(cdl_softmax_encrypted_data_ciphertexts(enc), 3);
    assert_int_equal(cdl_softmax_encrypted_data_samples(enc), NS);
    assert_int_equal(cdl_softmax_encrypted_data_level(enc), 7);
    cdl_softmax_config cfg;
    cdl_softmax_config_default(&cfg);
    cfg.iterations = 7;
    cfg.learning_rate = 0.7;
    {
        double w[C * D];
        cdl_softmax_plain_stats st;
        assert_int_equal(cdl_softmax_train_plain(x, y, NS, D, C, &cfg, w, &st), CDL_OK);
        print_message("plaintext: max |W|, |V| = %.3f (bound %g), max |logit| = %.2f\n", st.max_abs_state,
                      cfg.weight_bound, st.max_abs_logit);
        assert_true(st.max_abs_state < cfg.weight_bound);
        assert_true(st.max_abs_state > 0.2);
    }
    assert_int_equal(cdl_softmax_bootstraps_needed(level, f.boot_level, cfg.iterations), 3);

    /* refusals before any work: a bootstrapper without keys, keys without a step */
    cdl_softmax_trainer *tr = NULL;
    assert_int_equal(cdl_softmax_trainer_new(f.t.ctx, f.t.rlk, f.gk, f.bt, NULL, enc, &cfg, &tr),
                     CDL_ERR_INVALID_ARGUMENT);
    {
        int steps[CDL_SOFTMAX_MAX_STEPS];
        size_t n;
        assert_int_equal(cdl_softmax_galois_steps(f.t.ctx, D, C, steps, CDL_SOFTMAX_MAX_STEPS, &n), CDL_OK);
        cdl_ckks_galois_keys *few = NULL;
        assert_int_equal(cdl_ckks_keygen_galois(f.t.ctx, f.t.sk, steps, n - 1, 0, f.t.rng, &few), CDL_OK);
        assert_int_equal(cdl_softmax_trainer_new(f.t.ctx, f.t.rlk, few, f.bt, f.bk, enc, &cfg, &tr),
                         CDL_ERR_EXHAUSTED);
        assert_non_null(strstr(cdl_last_error(), "rotation step"));
        cdl_ckks_galois_keys_free(few);
    }
    assert_null(tr);

    assert_int_equal(cdl_softmax_trainer_new(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, &tr), CDL_OK);
    uint8_t *saved = NULL;
    size_t saved_len = 0;
    double worst = 0;
    for (int k = 1; k <= cfg.iterations; k++) {
        assert_int_equal(cdl_softmax_trainer_step(tr), CDL_OK);
        double big, ae, ap;
        const double diff = trainer_diff(&f, tr, x, y, &cfg, &big, &ae, &ap);
        print_message("k = %d: level %d, %d bootstraps, max |W_enc - W_plain| = %.3g (largest weight %.3g), "
                      "accuracy %.3f vs %.3f\n",
                      k, cdl_softmax_trainer_level(tr), cdl_softmax_trainer_bootstraps(tr), diff, big, ae, ap);
        worst = fmax(worst, diff);
        if (!(diff <= ldexp(1.0, -13)))
            fail_msg("iteration %d: encrypted vs plaintext weights differ by %g", k, diff);
        assert_true(ae == ap);
        if (k == 4) {
            assert_int_equal(cdl_softmax_trainer_bootstraps(tr), 1);
            assert_int_equal(cdl_softmax_trainer_save(tr, &saved, &saved_len), CDL_OK);
        }
    }
    assert_int_equal(cdl_softmax_trainer_bootstraps(tr), 3);
    assert_true(cdl_softmax_trainer_bootstrap_seconds(tr) > 0);
    assert_int_equal(cdl_softmax_trainer_step(tr), CDL_ERR_INVALID_ARGUMENT); /* all done */
    uint8_t *full = NULL, *resumed = NULL;
    size_t full_len = 0, resumed_len = 0;
    assert_int_equal(cdl_softmax_trainer_save(tr, &full, &full_len), CDL_OK);
    cdl_softmax_trainer_free(tr);

    tr = NULL;
    assert_int_equal(
        cdl_softmax_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, saved, saved_len, &tr), CDL_OK);
    assert_int_equal(cdl_softmax_trainer_iteration(tr), 4);
    while (cdl_softmax_trainer_iteration(tr) < cfg.iterations)
        assert_int_equal(cdl_softmax_trainer_step(tr), CDL_OK);
    assert_int_equal(cdl_softmax_trainer_save(tr, &resumed, &resumed_len), CDL_OK);
    assert_int_equal(resumed_len, full_len);
    assert_memory_equal(full, resumed, full_len);
    cdl_softmax_trainer_free(tr);
    cdl_free_bytes(full);
    cdl_free_bytes(resumed);

    /* refusals on load: another config, no bootstrapper, damaged or short bytes */
    cdl_softmax_config other = cfg;
    other.learning_rate = 0.6;
    tr = NULL;
    assert_int_equal(
        cdl_softmax_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &other, saved, saved_len, &tr),
        CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "learning rate"));
    assert_int_equal(cdl_softmax_trainer_load(f.t.ctx, f.t.rlk, f.gk, NULL, NULL, enc, &cfg, saved, saved_len, &tr),
                     CDL_ERR_EXHAUSTED); /* 7 iterations do not fit without bootstrapping */
    saved[saved_len / 2] ^= 1;
    assert_int_equal(cdl_softmax_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, saved, saved_len, &tr),
                     CDL_ERR_FORMAT);
    assert_int_equal(cdl_softmax_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, saved, 20, &tr),
                     CDL_ERR_FORMAT);
    assert_null(tr);
    cdl_free_bytes(saved);
    print_message("worst difference over the %d iterations: %.3g\n", cfg.iterations, worst);
    cdl_softmax_encrypted_data_free(enc);
    bfx_teardown(&f);
}

/* Without bootstrapping: as many iterations as the levels hold (data at max_level - 1), same comparison; one more
 * is refused, naming how many fit. INSECURE test parameters: N = 2^11, 12 primes of 40 bits above q0 (every
 * level's prime close to the scale, as the bootstrapping presets' computation levels are). */
static void test_levels_without_bootstrapping(void **state)
{
    (void)state;
    double x[NS * D];
    int y[NS];
    make_data(4, x, y, NS);
    bfixture f;
    memset(&f, 0, sizeof f);
    t_spec(&f.spec, 11, 60, 12, 60, 2, 0);
    t_setup(&f.t, &f.spec, 41);
    {
        int steps[CDL_SOFTMAX_MAX_STEPS];
        size_t n;
        assert_int_equal(cdl_softmax_galois_steps(f.t.ctx, D, C, steps, CDL_SOFTMAX_MAX_STEPS, &n), CDL_OK);
        assert_int_equal(cdl_ckks_keygen_galois(f.t.ctx, f.t.sk, steps, n, 0, f.t.rng, &f.gk), CDL_OK);
    }
    const int level = cdl_softmax_data_level(f.t.ctx, -1);
    assert_int_equal(level, 11);
    cdl_softmax_encrypted_data *enc = NULL;
    assert_int_equal(cdl_softmax_encrypt_dataset(f.t.ctx, f.t.sk, f.t.rng, x, y, NS, D, C, level, &enc), CDL_OK);
    int kmax = 1;
    while (cdl_softmax_bootstraps_needed(level, -1, kmax + 1) == 0)
        kmax++;
    cdl_softmax_config cfg;
    cdl_softmax_config_default(&cfg);
    cfg.iterations = kmax + 1;
    cdl_softmax_trainer *tr = NULL;
    assert_int_equal(cdl_softmax_trainer_new(f.t.ctx, f.t.rlk, f.gk, NULL, NULL, enc, &cfg, &tr), CDL_ERR_EXHAUSTED);
    char want[64];
    snprintf(want, sizeof want, "at most %d iterations fit", kmax);
    assert_non_null(strstr(cdl_last_error(), want));
    cfg.iterations = kmax;
    cfg.nesterov = 0;
    cfg.lr_decay = 1;
    cfg.learning_rate = 1.5;
    assert_int_equal(cdl_softmax_trainer_new(f.t.ctx, f.t.rlk, f.gk, NULL, NULL, enc, &cfg, &tr), CDL_OK);
    while (cdl_softmax_trainer_iteration(tr) < cfg.iterations) {
        assert_int_equal(cdl_softmax_trainer_step(tr), CDL_OK);
        double big, ae, ap;
        const double diff = trainer_diff(&f, tr, x, y, &cfg, &big, &ae, &ap);
        print_message("k = %d (of %d without bootstrapping): level %d, max diff %.3g (largest %.3g)\n",
                      cdl_softmax_trainer_iteration(tr), kmax, cdl_softmax_trainer_level(tr), diff, big);
        assert_true(diff <= ldexp(1.0, -20));
    }
    assert_int_equal(cdl_softmax_trainer_bootstraps(tr), 0);
    cdl_softmax_trainer_free(tr);
    /* bad input to the client */
    cdl_softmax_encrypted_data *bad = NULL;
    int yb[NS];
    memcpy(yb, y, sizeof yb);
    yb[3] = -1;
    assert_int_equal(cdl_softmax_encrypt_dataset(f.t.ctx, f.t.sk, f.t.rng, x, yb, NS, D, C, level, &bad),
                     CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_softmax_encrypt_dataset(f.t.ctx, f.t.sk, f.t.rng, x, y, NS, D, C,
                                                 cdl_ckks_max_level(f.t.ctx), &bad),
                     CDL_ERR_INVALID_ARGUMENT); /* no level left above for the labels */
    double xn[NS * D];
    memcpy(xn, x, sizeof xn);
    xn[5] = NAN;
    assert_int_equal(cdl_softmax_encrypt_dataset(f.t.ctx, f.t.sk, f.t.rng, xn, y, NS, D, C, level, &bad),
                     CDL_ERR_INVALID_ARGUMENT);
    assert_null(bad);
    cdl_softmax_encrypted_data_free(enc);
    bfx_teardown(&f);
}

/* cdl_nn_run_value on a shipped model: the output value is cdl_nn_run; the input of the last dense layer, put
 * through that layer by hand, gives the same logits. */
static void test_run_value(void **state)
{
    (void)state;
    const char *src = getenv("CDL_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/models/mnist_compact.onnx", src ? src : ".");
    cdl_nn_graph *g = NULL;
    if (cdl_nn_load_file(path, &g) != CDL_OK) {
        print_message("skipped: %s not found\n", path);
        skip();
    }
    int last = -1;
    for (size_t k = 0; k < g->n_nodes; k++)
        if (g->nodes[k].kind == CDL_NN_DENSE)
            last = (int)k;
    assert_true(last >= 0);
    const cdl_nn_node *nd = &g->nodes[last];
    const int v = nd->inputs[0];
    const size_t nin = cdl_nn_input_size(g), nf = cdl_nn_shape_numel(cdl_nn_value_shape(g, v)),
                 nout = cdl_nn_output_size(g);
    assert_int_equal(nf, 128);
    enum { NI = 5 };
    double *in = calloc(NI * nin, sizeof *in), *feat = calloc(NI * nf, sizeof *feat),
           *out = calloc(NI * nout, sizeof *out), *out2 = calloc(NI * nout, sizeof *out2);
    assert_non_null(in);
    assert_non_null(feat);
    assert_non_null(out);
    assert_non_null(out2);
    cdl_rng *rng = t_rng(9);
    for (size_t i = 0; i < NI * nin; i++)
        in[i] = (double)(cdl_rng_u64(rng) % 256) / 255.0;
    cdl_rng_free(rng);
    assert_int_equal(cdl_nn_run(g, in, NI, out), CDL_OK);
    assert_int_equal(cdl_nn_run_value(g, g->output, in, NI, out2), CDL_OK);
    assert_memory_equal(out, out2, NI * nout * sizeof *out);
    assert_int_equal(cdl_nn_run_value(g, v, in, NI, feat), CDL_OK);
    double worst = 0;
    for (size_t i = 0; i < NI; i++)
        for (size_t o = 0; o < nout; o++) {
            double s = nd->bias ? nd->bias[o] : 0.0;
            for (size_t f = 0; f < nf; f++)
                s += nd->weight[o * nf + f] * feat[i * nf + f];
            worst = fmax(worst, fabs(s - out[i * nout + o]) / fmax(1.0, fabs(out[i * nout + o])));
        }
    print_message("last dense layer by hand vs the runtime: %.3g relative\n", worst);
    assert_true(worst < 1e-12);
    assert_int_equal(cdl_nn_run_value(g, 0, in, NI, feat), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_nn_run_value(g, (int)g->n_nodes + 1, in, NI, feat), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_nn_run_value(NULL, v, in, NI, feat), CDL_ERR_INVALID_ARGUMENT);
    free(in);
    free(feat);
    free(out);
    free(out2);
    cdl_nn_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_matches_textbook),
        cmocka_unit_test(test_plain_learns),
        cmocka_unit_test(test_layout_and_plan),
        cmocka_unit_test(test_run_value),
        cmocka_unit_test(test_levels_without_bootstrapping),
        cmocka_unit_test(test_bootstrapped_matches_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
