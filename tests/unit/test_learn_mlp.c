/*
 * test_learn_mlp.c: a one-hidden-layer network trained end to end on
 * encrypted data (src/learn/mlp.c).
 *
 *  - the plaintext twin against an independent textbook loop written here
 *    (back-propagation through h = u^2 by the chain rule on matrices, momentum
 *    in velocity form), and it learns a separable 3-class set;
 *  - packing: the client's packed initial weights decrypt to themselves;
 *  - encrypted training at small INSECURE test parameters (N = 2^11, the
 *    bootstrapping test preset with 9 computation levels: one bootstrap per
 *    update) equals the plaintext twin after every update, over batches that
 *    wrap around the data; a run saved and resumed ends in the same bytes as
 *    an uninterrupted one;
 *  - refusals: no bootstrapper, missing keys, another config on load,
 *    damaged bytes, layouts that do not fit.
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
#include "test_learn_util.h"

#define D 12   /* inputs (the last one a constant 1): rows of 16 slots */
#define C 3    /* classes: 4 padded */
#define HID 8  /* hidden units */
#define NS 150 /* samples: 64 per ciphertext at N = 2^11, 3 ciphertexts */

static void make_data(uint8_t tag, double *x, int *y, size_t n)
{
    cdl_rng *rng = t_rng(tag);
    double centre[C][D];
    for (int j = 0; j < C; j++)
        for (int f = 0; f < D; f++)
            centre[j][f] = 2.0 * (double)(cdl_rng_u64(rng) >> 11) / 9007199254740992.0 - 1.0;
    for (size_t i = 0; i < n; i++) {
        y[i] = (int)(cdl_rng_u64(rng) % C);
        for (int f = 0; f < D - 1; f++) {
            const double u = (double)(cdl_rng_u64(rng) >> 11) / 9007199254740992.0;
            x[i * D + f] = centre[y[i]][f] + 0.8 * (u - 0.5);
        }
        x[i * D + D - 1] = 1.0;
    }
    cdl_rng_free(rng);
}

/* The textbook loop: full matrices, dL/dz = (z - (c y - 1)) / c per sample, averaged over the batch;
 * dL/dW2 = delta2 h^T, dL/du = 2 u .* (W2^T delta2), dL/dW1 = delta1 x^T; Nesterov momentum in velocity form
 * (Sutskever et al. 2013): v <- mu v - gamma grad(w + mu v), w <- w + v. */
static void textbook(const double *x, const int *y, size_t n, size_t m, const cdl_mlp_config *cfg, const double *w1i,
                     const double *w2i, double *w1, double *w2)
{
    double W1[HID * D], W2[C * HID], v1[HID * D] = {0}, v2[C * HID] = {0};
    memcpy(W1, w1i, sizeof W1);
    memcpy(W2, w2i, sizeof W2);
    const size_t n_ct = (n + m - 1) / m;
    for (int t = 0; t < cfg->iterations; t++) {
        double L1[HID * D], L2[C * HID], g1[HID * D] = {0}, g2[C * HID] = {0};
        for (int i = 0; i < HID * D; i++)
            L1[i] = W1[i] + cfg->momentum * v1[i];
        for (int i = 0; i < C * HID; i++)
            L2[i] = W2[i] + cfg->momentum * v2[i];
        size_t count = 0;
        for (int b = 0; b < cfg->batch_ciphertexts; b++) {
            const size_t j = ((size_t)t * (size_t)cfg->batch_ciphertexts + (size_t)b) % n_ct;
            for (size_t i = j * m; i < (j + 1) * m && i < n; i++) {
                double u[HID], h[HID], dz[C], du[HID];
                count++;
                for (int k = 0; k < HID; k++) {
                    u[k] = 0;
                    for (int g = 0; g < D; g++)
                        u[k] += L1[k * D + g] * x[i * D + g];
                    h[k] = u[k] * u[k];
                }
                for (int o = 0; o < C; o++) {
                    double z = 0;
                    for (int k = 0; k < HID; k++)
                        z += L2[o * HID + k] * h[k];
                    dz[o] = (z - (C * (y[i] == o ? 1.0 : 0.0) - 1.0)) / C;
                }
                for (int k = 0; k < HID; k++) {
                    double s = 0;
                    for (int o = 0; o < C; o++)
                        s += L2[o * HID + k] * dz[o];
                    du[k] = 2.0 * u[k] * s;
                }
                for (int o = 0; o < C; o++)
                    for (int k = 0; k < HID; k++)
                        g2[o * HID + k] += dz[o] * h[k];
                for (int k = 0; k < HID; k++)
                    for (int g = 0; g < D; g++)
                        g1[k * D + g] += du[k] * x[i * D + g];
            }
        }
        for (int i = 0; i < HID * D; i++) {
            v1[i] = cfg->momentum * v1[i] - cfg->learning_rate * g1[i] / (double)count;
            W1[i] += v1[i];
        }
        for (int i = 0; i < C * HID; i++) {
            v2[i] = cfg->momentum * v2[i] - cfg->learning_rate * g2[i] / (double)count;
            W2[i] += v2[i];
        }
    }
    memcpy(w1, W1, sizeof W1);
    memcpy(w2, W2, sizeof W2);
}

static void config(cdl_mlp_config *cfg, int iterations)
{
    cdl_mlp_config_default(cfg);
    cfg->hidden = HID;
    cfg->batch_ciphertexts = 2;
    cfg->iterations = iterations;
    cfg->learning_rate = 0.2;
    cfg->momentum = 0.9;
    cfg->weight_bound = 4.0;
}

static void test_plain_matches_textbook(void **state)
{
    (void)state;
    double x[NS * D], w1i[HID * D], w2i[C * HID], wa1[HID * D], wa2[C * HID], wb1[HID * D], wb2[C * HID];
    int y[NS];
    make_data(1, x, y, NS);
    assert_int_equal(cdl_mlp_init_weights(D, C, HID, 7, w1i, w2i), CDL_OK);
    cdl_mlp_config cfg;
    config(&cfg, 9);
    for (int variant = 0; variant < 2; variant++) {
        cfg.momentum = variant ? 0.0 : 0.9;
        cdl_mlp_plain_stats st;
        assert_int_equal(cdl_mlp_train_plain(x, y, NS, D, C, 64, &cfg, w1i, w2i, wa1, wa2, &st), CDL_OK);
        textbook(x, y, NS, 64, &cfg, w1i, w2i, wb1, wb2);
        double big = 0;
        const double diff = fmax(t_max_diff(wa1, wb1, HID * D, &big), t_max_diff(wa2, wb2, C * HID, &big));
        print_message("momentum %g: max |twin - textbook| = %.3g (largest weight %.3g; max |u| %.3g, |z| %.3g)\n",
                      cfg.momentum, diff, big, st.max_abs_hidden, st.max_abs_logit);
        assert_true(diff <= 1e-12 * fmax(1.0, big));
    }
}

static void test_plain_learns(void **state)
{
    (void)state;
    double x[NS * D], w1i[HID * D], w2i[C * HID], w1[HID * D], w2[C * HID];
    int y[NS];
    make_data(2, x, y, NS);
    assert_int_equal(cdl_mlp_init_weights(D, C, HID, 3, w1i, w2i), CDL_OK);
    cdl_mlp_config cfg;
    config(&cfg, 40);
    const double before = cdl_mlp_accuracy(w1i, w2i, x, y, NS, D, HID, C);
    assert_int_equal(cdl_mlp_train_plain(x, y, NS, D, C, 64, &cfg, w1i, w2i, w1, w2, NULL), CDL_OK);
    const double after = cdl_mlp_accuracy(w1, w2, x, y, NS, D, HID, C);
    print_message("training accuracy: %.3f at the start, %.3f after 40 updates\n", before, after);
    assert_true(after >= 0.95);
    cfg.momentum = 1.0;
    assert_int_equal(cdl_mlp_train_plain(x, y, NS, D, C, 64, &cfg, w1i, w2i, w1, w2, NULL), CDL_ERR_INVALID_ARGUMENT);
}

static void bfx_setup(bfixture *f, uint8_t tag)
{
    bfx_setup_bootstrapping(f, tag);
    int steps[CDL_MLP_MAX_STEPS];
    size_t n;
    assert_int_equal(cdl_mlp_galois_steps(f->t.ctx, D, C, HID, steps, CDL_MLP_MAX_STEPS, &n), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_galois(f->t.ctx, f->t.sk, steps, n, 1, f->t.rng, &f->gk), CDL_OK);
}

static double weights_diff(bfixture *f, const cdl_mlp_encrypted_weights *ew, const double *p1, const double *p2,
                           double *big, double *e1, double *e2)
{
    assert_int_equal(cdl_mlp_decrypt_weights(f->t.ctx, f->t.sk, ew, e1, e2), CDL_OK);
    *big = 0;
    return fmax(t_max_diff(e1, p1, HID * D, big), t_max_diff(e2, p2, C * HID, big));
}

static void test_layout(void **state)
{
    (void)state;
    assert_int_equal(cdl_mlp_levels_per_iteration(), 9);
    assert_int_equal(cdl_mlp_data_level(9), 8);
    bfixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(cdl_logreg_bootstrap_preset(11, &f.spec, &f.bp), CDL_OK);
    cdl_ckks_context *ctx = NULL;
    assert_int_equal(cdl_ckks_context_new(&f.spec, &ctx), CDL_OK);
    size_t row, m, cp;
    assert_int_equal(cdl_mlp_layout(ctx, D, C, HID, &row, &m, &cp), CDL_OK);
    assert_int_equal(row, 16);
    assert_int_equal(m, 64);
    assert_int_equal(cp, 4);
    assert_int_equal(cdl_mlp_layout(ctx, D, C, 6, &row, &m, &cp), CDL_ERR_INVALID_ARGUMENT);  /* not a power of 2 */
    assert_int_equal(cdl_mlp_layout(ctx, D, 10, 8, &row, &m, &cp), CDL_ERR_INVALID_ARGUMENT); /* H < C' = 16 */
    assert_int_equal(cdl_mlp_layout(ctx, 40, C, 32, &row, &m, &cp), CDL_ERR_PARAMETERS);     /* 16 < H + C' = 36 */
    cdl_ckks_context_free(ctx);
}

/* Encrypted updates against the plaintext twin after each of 5 updates (5 bootstraps; batches of 2 of the 3
 * ciphertexts, wrapping around); a run saved after update 3 and resumed ends in the same bytes.
 *
 * Tolerance: every update goes through one bootstrap of (W + i V) / 4, good to about 2^-20 at these
 * parameters, so W and V pick up ~2^-18 per update; the gradient map and the momentum (1 + mu = 1.9) carry it
 * forward. We allow 2^-12 (2.4e-4) absolute with weights of order 1, and equal accuracies. */
static void test_encrypted_matches_plain(void **state)
{
    (void)state;
    double x[NS * D], w1i[HID * D], w2i[C * HID];
    int y[NS];
    make_data(3, x, y, NS);
    assert_int_equal(cdl_mlp_init_weights(D, C, HID, 11, w1i, w2i), CDL_OK);
    bfixture f;
    bfx_setup(&f, 50);
    assert_int_equal(f.boot_level, 9);
    const int level = cdl_mlp_data_level(f.boot_level);
    cdl_mlp_encrypted_data *enc = NULL;
    assert_int_equal(cdl_mlp_encrypt_dataset(f.t.ctx, f.t.sk, f.t.rng, x, y, NS, D, C, HID, level, &enc), CDL_OK);
    assert_int_equal(cdl_mlp_encrypted_data_ciphertexts(enc), 3);
    cdl_mlp_encrypted_weights *init = NULL;
    assert_int_equal(cdl_mlp_encrypt_weights(f.t.ctx, f.t.sk, f.t.rng, enc, w1i, w2i, f.boot_level, &init), CDL_OK);
    {
        double e1[HID * D], e2[C * HID], big;
        const double diff = weights_diff(&f, init, w1i, w2i, &big, e1, e2);
        print_message("packed initial weights: max |decrypted - given| = %.3g\n", diff);
        assert_true(diff < 1e-9);
    }
    cdl_mlp_config cfg;
    config(&cfg, 5);
    {
        double w1[HID * D], w2[C * HID];
        cdl_mlp_plain_stats st;
        assert_int_equal(cdl_mlp_train_plain(x, y, NS, D, C, 64, &cfg, w1i, w2i, w1, w2, &st), CDL_OK);
        print_message("plaintext: max |W|, |V| = %.3f (bound %g), max |u| %.2f, max |z| %.2f\n", st.max_abs_state,
                      cfg.weight_bound, st.max_abs_hidden, st.max_abs_logit);
        assert_true(st.max_abs_state < cfg.weight_bound);
    }
    /* refusals before any work */
    cdl_mlp_trainer *tr = NULL;
    assert_int_equal(cdl_mlp_trainer_new(f.t.ctx, f.t.rlk, f.gk, NULL, NULL, enc, init, &cfg, &tr),
                     CDL_ERR_INVALID_ARGUMENT);
    {
        int steps[CDL_MLP_MAX_STEPS];
        size_t n;
        assert_int_equal(cdl_mlp_galois_steps(f.t.ctx, D, C, HID, steps, CDL_MLP_MAX_STEPS, &n), CDL_OK);
        cdl_ckks_galois_keys *noconj = NULL;
        assert_int_equal(cdl_ckks_keygen_galois(f.t.ctx, f.t.sk, steps, n, 0, f.t.rng, &noconj), CDL_OK);
        assert_int_equal(cdl_mlp_trainer_new(f.t.ctx, f.t.rlk, noconj, f.bt, f.bk, enc, init, &cfg, &tr),
                         CDL_ERR_EXHAUSTED);
        assert_non_null(strstr(cdl_last_error(), "conjugation"));
        cdl_ckks_galois_keys_free(noconj);
    }
    cdl_mlp_config wrong = cfg;
    wrong.hidden = 16;
    assert_int_equal(cdl_mlp_trainer_new(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, init, &wrong, &tr),
                     CDL_ERR_MISMATCH);
    assert_null(tr);

    assert_int_equal(cdl_mlp_trainer_new(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, init, &cfg, &tr), CDL_OK);
    uint8_t *saved = NULL;
    size_t saved_len = 0;
    double worst = 0;
    for (int k = 1; k <= cfg.iterations; k++) {
        assert_int_equal(cdl_mlp_trainer_step(tr), CDL_OK);
        cdl_mlp_config c = cfg;
        c.iterations = k;
        double p1[HID * D], p2[C * HID], e1[HID * D], e2[C * HID], big;
        assert_int_equal(cdl_mlp_train_plain(x, y, NS, D, C, 64, &c, w1i, w2i, p1, p2, NULL), CDL_OK);
        cdl_mlp_encrypted_weights *ew = NULL;
        assert_int_equal(cdl_mlp_trainer_weights(tr, &ew), CDL_OK);
        const double diff = weights_diff(&f, ew, p1, p2, &big, e1, e2);
        cdl_mlp_encrypted_weights_free(ew);
        const double ae = cdl_mlp_accuracy(e1, e2, x, y, NS, D, HID, C), ap = cdl_mlp_accuracy(p1, p2, x, y, NS, D, HID, C);
        print_message("update %d: level %d, %d bootstraps, max |W_enc - W_plain| = %.3g (largest %.3g), accuracy "
                      "%.3f vs %.3f\n",
                      k, cdl_mlp_trainer_level(tr), cdl_mlp_trainer_bootstraps(tr), diff, big, ae, ap);
        worst = fmax(worst, diff);
        if (!(diff <= ldexp(1.0, -12)))
            fail_msg("update %d: encrypted vs plaintext weights differ by %g", k, diff);
        assert_true(ae == ap);
        if (k == 3)
            assert_int_equal(cdl_mlp_trainer_save(tr, &saved, &saved_len), CDL_OK);
    }
    assert_int_equal(cdl_mlp_trainer_bootstraps(tr), cfg.iterations);
    assert_int_equal(cdl_mlp_trainer_step(tr), CDL_ERR_INVALID_ARGUMENT);
    uint8_t *full = NULL, *resumed = NULL;
    size_t full_len = 0, resumed_len = 0;
    assert_int_equal(cdl_mlp_trainer_save(tr, &full, &full_len), CDL_OK);
    cdl_mlp_trainer_free(tr);
    tr = NULL;
    assert_int_equal(cdl_mlp_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, saved, saved_len, &tr), CDL_OK);
    assert_int_equal(cdl_mlp_trainer_iteration(tr), 3);
    while (cdl_mlp_trainer_iteration(tr) < cfg.iterations)
        assert_int_equal(cdl_mlp_trainer_step(tr), CDL_OK);
    assert_int_equal(cdl_mlp_trainer_save(tr, &resumed, &resumed_len), CDL_OK);
    assert_int_equal(resumed_len, full_len);
    assert_memory_equal(full, resumed, full_len);
    cdl_mlp_trainer_free(tr);
    cdl_free_bytes(full);
    cdl_free_bytes(resumed);
    /* refusals on load */
    tr = NULL;
    cdl_mlp_config other = cfg;
    other.momentum = 0.8;
    assert_int_equal(cdl_mlp_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &other, saved, saved_len, &tr),
                     CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "momentum"));
    saved[saved_len / 2] ^= 1;
    assert_int_equal(cdl_mlp_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, saved, saved_len, &tr),
                     CDL_ERR_FORMAT);
    assert_int_equal(cdl_mlp_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, saved, 30, &tr),
                     CDL_ERR_FORMAT);
    assert_null(tr);
    cdl_free_bytes(saved);
    print_message("worst difference over %d updates: %.3g\n", cfg.iterations, worst);
    cdl_mlp_encrypted_weights_free(init);
    cdl_mlp_encrypted_data_free(enc);
    bfx_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_matches_textbook),
        cmocka_unit_test(test_plain_learns),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_encrypted_matches_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
