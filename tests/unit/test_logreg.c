/*
 * test_logreg.c: training on encrypted data (src/learn/logreg.c).
 *
 *  - the plaintext twin against an independent textbook loop written here
 *    (x and y kept apart, 1 - sigma_p(y w.x), Nesterov's momentum form), and
 *    its polynomial against an independent least-squares fit;
 *  - training on a tiny separable set lowers the logistic loss and reaches a
 *    high accuracy;
 *  - encrypted training (small insecure test parameters: N = 2^11, 8 levels)
 *    equals the plaintext twin within the CKKS precision, for degree 3 with
 *    Nesterov and a decaying rate, degree 1 with plain GD and a constant rate,
 *    and K = 1;
 *  - refusals: too many iterations for the levels, missing Galois keys, data
 *    or keys of another context, bad labels, bad sizes, unsupported degree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "cryptodl/learn.h"
#include "test_learn_util.h"

#define D 7   /* features: a row of 8 slots */
#define NS 200 /* samples: 128 per ciphertext at N = 2^11, so two ciphertexts */

/* A separable set: x uniform in [0, 1]^D, y = sign(sum_f w*_f (x_f - 1/2) - 1/4), w* fixed. */
static void make_data(uint8_t tag, double *x, int *y, size_t n)
{
    cdl_rng *rng = t_rng(tag);
    static const double ws[D] = {1.5, -2.0, 0.7, 1.1, -0.4, -1.3, 0.9};
    for (size_t i = 0; i < n; i++) {
        double s = -0.25;
        for (int f = 0; f < D; f++) {
            x[i * D + f] = (double)(cdl_rng_u64(rng) >> 11) / 9007199254740992.0;
            s += ws[f] * (x[i * D + f] - 0.5);
        }
        y[i] = s > 0 ? 1 : -1;
    }
    cdl_rng_free(rng);
}

/* The textbook loop: w <- u + (gamma_k / n) sum_i y_i x_i (1 - sigma_p(y_i <u, x_i>)), with Nesterov's
 * momentum written as u = w_k + ((lambda_k - 1) / lambda_(k+1)) (w_k - w_(k-1)). */
static void textbook(const double *x, const int *y, size_t n, const cdl_logreg_config *cfg, double a0, double a1,
                     double a3, double *w_out)
{
    double w[D + 1] = {0}, wprev[D + 1] = {0}, u[D + 1] = {0};
    double lam = 1.0;
    for (int k = 1; k <= cfg->iterations; k++) {
        double gamma = cfg->lr_decay ? cfg->learning_rate / (k + 1) : cfg->learning_rate;
        double step[D + 1] = {0};
        for (size_t i = 0; i < n; i++) {
            double m = u[0];
            for (int f = 0; f < D; f++)
                m += u[1 + f] * x[i * D + f];
            double t = y[i] * m;
            double sp = a0 + a1 * t + a3 * pow(t, 3);
            step[0] += y[i] * (1.0 - sp);
            for (int f = 0; f < D; f++)
                step[1 + f] += y[i] * x[i * D + f] * (1.0 - sp);
        }
        memcpy(wprev, w, sizeof w);
        for (int f = 0; f <= D; f++)
            w[f] = u[f] + gamma * step[f] / (double)n;
        double lam_next = (1.0 + sqrt(1.0 + 4.0 * lam * lam)) / 2.0;
        double mom = cfg->nesterov ? (lam - 1.0) / lam_next : 0.0;
        lam = lam_next;
        for (int f = 0; f <= D; f++)
            u[f] = w[f] + mom * (w[f] - wprev[f]);
    }
    memcpy(w_out, w, sizeof w);
}

/* Least squares of sigmoid on [-B, B] in the basis {1, t, t^3}, normal equations on a fine grid. */
static void ls_fit(double b, double c[3])
{
    double A[3][4] = {{0}};
    for (int i = 0; i <= 40000; i++) {
        /* trapezoid weights: the sums approximate the integrals of the continuous fit */
        double t = -b + 2 * b * i / 40000.0, phi[3] = {1, t, t * t * t}, s = 1 / (1 + exp(-t));
        double wt = (i == 0 || i == 40000) ? 0.5 : 1.0;
        for (int r = 0; r < 3; r++) {
            for (int q = 0; q < 3; q++)
                A[r][q] += wt * phi[r] * phi[q];
            A[r][3] += wt * phi[r] * s;
        }
    }
    for (int p = 0; p < 3; p++) /* Gauss-Jordan; the matrix is positive definite */
        for (int r = 0; r < 3; r++) {
            if (r == p)
                continue;
            double f = A[r][p] / A[p][p];
            for (int q = 0; q < 4; q++)
                A[r][q] -= f * A[p][q];
        }
    for (int r = 0; r < 3; r++)
        c[r] = A[r][3] / A[r][r];
}

static double logistic_loss(const double *w, const double *x, const int *y, size_t n)
{
    double l = 0;
    for (size_t i = 0; i < n; i++) {
        double m = w[0];
        for (int f = 0; f < D; f++)
            m += w[1 + f] * x[i * D + f];
        l += log1p(exp(-y[i] * m));
    }
    return l / (double)n;
}

static void test_sigmoid_fit(void **state)
{
    (void)state;
    cdl_logreg_config cfg;
    cdl_logreg_config_default(&cfg);
    cdl_logreg_sigmoid s;
    assert_int_equal(cdl_logreg_sigmoid_fit(&cfg, &s), CDL_OK);
    double c[3];
    ls_fit(cfg.sigmoid_bound, c);
    assert_true(fabs(s.a0 - c[0]) < 1e-9);
    assert_true(fabs(s.a1 - c[1]) < 1e-5 * fabs(c[1]));
    assert_true(fabs(s.a3 - c[2]) < 1e-4 * fabs(c[2]));
    assert_true(s.max_abs_error > 0.05 && s.max_abs_error < 0.2); /* degree 3 on [-8, 8] is coarse */
    cfg.sigmoid_degree = 2;
    assert_int_equal(cdl_logreg_sigmoid_fit(&cfg, &s), CDL_ERR_UNSUPPORTED);
}

static void test_plain_matches_textbook(void **state)
{
    (void)state;
    double x[NS * D];
    int y[NS];
    make_data(1, x, y, NS);
    for (int variant = 0; variant < 3; variant++) {
        cdl_logreg_config cfg;
        cdl_logreg_config_default(&cfg);
        cfg.iterations = 7;
        if (variant == 1) {
            cfg.nesterov = 0;
            cfg.lr_decay = 0;
            cfg.learning_rate = 1.0;
        }
        if (variant == 2)
            cfg.sigmoid_degree = 1;
        cdl_logreg_sigmoid s;
        assert_int_equal(cdl_logreg_sigmoid_fit(&cfg, &s), CDL_OK);
        double w[D + 1], ref[D + 1];
        assert_int_equal(cdl_logreg_train_plain(x, y, NS, D, &cfg, w), CDL_OK);
        textbook(x, y, NS, &cfg, s.a0, s.a1, s.a3, ref);
        for (int f = 0; f <= D; f++)
            assert_true(fabs(w[f] - ref[f]) <= 1e-12 * (1 + fabs(ref[f])));
    }
}

static void test_plain_learns(void **state)
{
    (void)state;
    double x[NS * D];
    int y[NS];
    make_data(2, x, y, NS);
    cdl_logreg_config cfg;
    cdl_logreg_config_default(&cfg);
    cfg.lr_decay = 0; /* a constant rate: many cheap plaintext iterations */
    cfg.learning_rate = 4.0;
    double w1[D + 1], w[D + 1], prev = INFINITY;
    cfg.iterations = 1;
    assert_int_equal(cdl_logreg_train_plain(x, y, NS, D, &cfg, w1), CDL_OK);
    for (int k = 1; k <= 31; k += 10) {
        cfg.iterations = k;
        assert_int_equal(cdl_logreg_train_plain(x, y, NS, D, &cfg, w), CDL_OK);
        double l = logistic_loss(w, x, y, NS);
        print_message("K = %d: loss %.4f accuracy %.3f\n", k, l, cdl_logreg_accuracy(w, x, y, NS, D));
        assert_true(l < prev);
        prev = l;
    }
    assert_true(cdl_logreg_accuracy(w, x, y, NS, D) >= 0.95);
    assert_true(cdl_logreg_accuracy(w, x, y, NS, D) > cdl_logreg_accuracy(w1, x, y, NS, D));
    /* loss at K = 31 far below log 2 (w = 0); more iterations at this rate leave [-B, B] and diverge */
    assert_true(prev < 0.3 * log(2.0));
}

/* ---- encrypted ---- */

typedef struct fixture {
    tctx t;
    cdl_ckks_galois_keys *gk;
} fixture;

static void fx_setup(fixture *fx, uint8_t tag)
{
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 50, 8, 50, 1, 0); /* 8 levels, testing only */
    t_setup(&fx->t, &s, tag);
    int steps[CDL_LOGREG_MAX_STEPS];
    size_t n;
    assert_int_equal(cdl_logreg_galois_steps(fx->t.ctx, D, steps, CDL_LOGREG_MAX_STEPS, &n), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_galois(fx->t.ctx, fx->t.sk, steps, n, 0, fx->t.rng, &fx->gk), CDL_OK);
}

static void fx_teardown(fixture *fx)
{
    cdl_ckks_galois_keys_free(fx->gk);
    t_teardown(&fx->t);
}

/* Encrypted training vs the plaintext twin. Tolerance: fresh CKKS at scale
 * 2^40 is good to ~2^-30 per slot; the chain multiplies four times, sums
 * ~2^7 products within a ciphertext and folds constants up to n / gamma into
 * scales, so we allow 2^-17 (~8e-6) times the largest weight (measured:
 * ~1e-8 at N = 2^14 on MNIST). */
static void run_case(fixture *fx, const cdl_logreg_config *cfg, const double *x, const int *y)
{
    cdl_logreg_encrypted_data *enc = NULL;
    cdl_logreg_encrypted_weights *ew = NULL;
    assert_int_equal(cdl_logreg_encrypt_dataset(fx->t.ctx, fx->t.sk, fx->t.rng, x, y, NS, D, &enc), CDL_OK);
    assert_int_equal(cdl_logreg_encrypted_data_ciphertexts(enc), 2);
    assert_int_equal(cdl_logreg_train_encrypted(fx->t.ctx, fx->t.rlk, fx->gk, enc, cfg, &ew), CDL_OK);
    /* K = 1 spends no level; later iterations start as low as the remaining ones allow, so they end at 0 */
    int expect_level = cfg->iterations == 1 ? cdl_ckks_max_level(fx->t.ctx) : 0;
    assert_int_equal(cdl_logreg_encrypted_weights_level(ew), expect_level);
    double we[D + 1], wp[D + 1];
    assert_int_equal(cdl_logreg_decrypt_weights(fx->t.ctx, fx->t.sk, ew, we, D + 1), CDL_OK);
    assert_int_equal(cdl_logreg_train_plain(x, y, NS, D, cfg, wp), CDL_OK);
    double big = 0;
    const double diff = t_max_diff(we, wp, D + 1, &big);
    assert_true(big > 0.05); /* the weights moved */
    if (!(diff <= ldexp(1.0, -17) * big))
        fail_msg("encrypted vs plaintext weights differ by %g (largest weight %g)", diff, big);
    assert_true(cdl_logreg_accuracy(we, x, y, NS, D) == cdl_logreg_accuracy(wp, x, y, NS, D));
    cdl_logreg_encrypted_weights_free(ew);
    cdl_logreg_encrypted_data_free(enc);
}

static void test_encrypted_matches_plain(void **state)
{
    (void)state;
    double x[NS * D];
    int y[NS];
    make_data(3, x, y, NS);
    fixture fx;
    fx_setup(&fx, 10);
    cdl_logreg_config cfg;
    cdl_logreg_config_default(&cfg);
    cfg.iterations = cdl_logreg_max_iterations(cdl_ckks_max_level(fx.t.ctx), 3);
    assert_int_equal(cfg.iterations, 3);
    run_case(&fx, &cfg, x, y);
    /* degree 1, plain GD, constant rate: 3 levels per iteration, K = 3 fits 8 levels (1 + 8/3) */
    cfg.sigmoid_degree = 1;
    cfg.nesterov = 0;
    cfg.lr_decay = 0;
    cfg.learning_rate = 1.0;
    cfg.iterations = 3;
    run_case(&fx, &cfg, x, y);
    /* K = 1: the column mean, no level spent */
    cdl_logreg_config_default(&cfg);
    cfg.iterations = 1;
    run_case(&fx, &cfg, x, y);
    fx_teardown(&fx);
}

static void test_refusals(void **state)
{
    (void)state;
    double x[NS * D];
    int y[NS];
    make_data(4, x, y, NS);
    fixture fx;
    fx_setup(&fx, 20);
    cdl_logreg_encrypted_data *enc = NULL;
    cdl_logreg_encrypted_weights *ew = NULL;
    assert_int_equal(cdl_logreg_encrypt_dataset(fx.t.ctx, fx.t.sk, fx.t.rng, x, y, NS, D, &enc), CDL_OK);
    cdl_logreg_config cfg;
    cdl_logreg_config_default(&cfg);

    /* too many iterations: 4 need 12 levels, there are 8 */
    cfg.iterations = 4;
    assert_int_equal(cdl_logreg_train_encrypted(fx.t.ctx, fx.t.rlk, fx.gk, enc, &cfg, &ew), CDL_ERR_EXHAUSTED);
    assert_non_null(strstr(cdl_last_error(), "at most 3 iterations fit"));
    assert_null(ew);
    cfg.iterations = 2;

    /* Galois keys without the row-sum steps */
    cdl_ckks_galois_keys *few = NULL;
    int some[2] = {1, 2};
    assert_int_equal(cdl_ckks_keygen_galois(fx.t.ctx, fx.t.sk, some, 2, 0, fx.t.rng, &few), CDL_OK);
    assert_int_equal(cdl_logreg_train_encrypted(fx.t.ctx, fx.t.rlk, few, enc, &cfg, &ew), CDL_ERR_EXHAUSTED);
    assert_non_null(strstr(cdl_last_error(), "lack rotation step"));
    cdl_ckks_galois_keys_free(few);

    /* a context with other parameters (same N): data refused */
    cdl_ckks_param_spec s2;
    t_spec(&s2, 11, 50, 7, 50, 1, 0);
    cdl_ckks_context *other = NULL;
    assert_int_equal(cdl_ckks_context_new(&s2, &other), CDL_OK);
    assert_int_equal(cdl_logreg_train_encrypted(other, fx.t.rlk, fx.gk, enc, &cfg, &ew), CDL_ERR_MISMATCH);

    /* keys of another ring degree: refused by the checks or the evaluator, never OK */
    fixture fx2;
    cdl_ckks_param_spec s3;
    t_spec(&s3, 12, 50, 8, 50, 1, 0);
    memset(&fx2, 0, sizeof fx2);
    t_setup(&fx2.t, &s3, 21);
    int steps[CDL_LOGREG_MAX_STEPS];
    size_t ns;
    assert_int_equal(cdl_logreg_galois_steps(fx2.t.ctx, D, steps, CDL_LOGREG_MAX_STEPS, &ns), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_galois(fx2.t.ctx, fx2.t.sk, steps, ns, 0, fx2.t.rng, &fx2.gk), CDL_OK);
    assert_int_not_equal(cdl_logreg_train_encrypted(fx.t.ctx, fx2.t.rlk, fx2.gk, enc, &cfg, &ew), CDL_OK);
    assert_null(ew);
    fx_teardown(&fx2);

    /* weights decrypted with the wrong count or context */
    assert_int_equal(cdl_logreg_train_encrypted(fx.t.ctx, fx.t.rlk, fx.gk, enc, &cfg, &ew), CDL_OK);
    double w[D + 2];
    assert_int_equal(cdl_logreg_decrypt_weights(fx.t.ctx, fx.t.sk, ew, w, D + 2), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_logreg_decrypt_weights(other, fx.t.sk, ew, w, D + 1), CDL_ERR_MISMATCH);
    cdl_logreg_encrypted_weights_free(ew);
    cdl_ckks_context_free(other);

    /* bad inputs */
    cdl_logreg_encrypted_data *bad = NULL;
    y[5] = 0;
    assert_int_equal(cdl_logreg_encrypt_dataset(fx.t.ctx, fx.t.sk, fx.t.rng, x, y, NS, D, &bad),
                     CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_logreg_train_plain(x, y, NS, D, &cfg, w), CDL_ERR_INVALID_ARGUMENT);
    y[5] = 1;
    x[3] = NAN;
    assert_int_equal(cdl_logreg_encrypt_dataset(fx.t.ctx, fx.t.sk, fx.t.rng, x, y, NS, D, &bad),
                     CDL_ERR_INVALID_ARGUMENT);
    x[3] = 0.5;
    assert_int_equal(cdl_logreg_encrypt_dataset(fx.t.ctx, fx.t.sk, fx.t.rng, x, y, 0, D, &bad),
                     CDL_ERR_INVALID_ARGUMENT);
    /* a row wider than the slots (1024 at N = 2^11) */
    size_t row, rows;
    assert_int_equal(cdl_logreg_layout(fx.t.ctx, 1024, &row, &rows), CDL_ERR_PARAMETERS);
    assert_int_equal(cdl_logreg_layout(fx.t.ctx, 1023, &row, &rows), CDL_OK);
    assert_int_equal(row, 1024);
    assert_int_equal(rows, 1);
    assert_null(bad);
    cfg.sigmoid_degree = 5;
    assert_int_equal(cdl_logreg_train_encrypted(fx.t.ctx, fx.t.rlk, fx.gk, enc, &cfg, &ew), CDL_ERR_UNSUPPORTED);
    cdl_logreg_encrypted_data_free(enc);
    fx_teardown(&fx);
}

static void test_levels(void **state)
{
    (void)state;
    /* the presets: 3 levels at 2^13, 8 at 2^14, 17 at 2^15 */
    assert_int_equal(cdl_logreg_max_iterations(3, 3), 1);
    assert_int_equal(cdl_logreg_max_iterations(8, 3), 3);
    assert_int_equal(cdl_logreg_max_iterations(17, 3), 5);
    assert_int_equal(cdl_logreg_max_iterations(8, 1), 3);
    assert_int_equal(cdl_logreg_max_iterations(17, 1), 6);
}

/* ---- with bootstrapping (INSECURE small parameters: N = 2^11, the insecure
 * bootstrapping preset given the 9 computation levels of the 128-bit one by
 * cdl_logreg_bootstrap_preset; for tests only) ---- */

/* The bootstrapping fixture with the logreg steps at the data's level (the bootstrap's output level) and the
 * conjugation. */
static void bfx_setup(bfixture *f, uint8_t tag)
{
    bfx_setup_bootstrapping(f, tag);
    int steps[CDL_LOGREG_MAX_STEPS], levels[CDL_LOGREG_MAX_STEPS];
    size_t n;
    assert_int_equal(cdl_logreg_galois_steps(f->t.ctx, D, steps, CDL_LOGREG_MAX_STEPS, &n), CDL_OK);
    for (size_t i = 0; i < n; i++)
        levels[i] = f->boot_level;
    assert_int_equal(cdl_ckks_keygen_galois_levels(f->t.ctx, f->t.sk, steps, levels, n, 1, f->t.rng, &f->gk),
                     CDL_OK);
}

/* Decrypted beta_k of the trainer against the plaintext twin run for k iterations: max |difference| and the
 * largest plaintext weight. */
static double trainer_diff(bfixture *f, const cdl_logreg_trainer *tr, const double *x, const int *y,
                           const cdl_logreg_config *cfg, double *big)
{
    cdl_logreg_encrypted_weights *ew = NULL;
    assert_int_equal(cdl_logreg_trainer_weights(tr, &ew), CDL_OK);
    double we[D + 1], wp[D + 1];
    assert_int_equal(cdl_logreg_decrypt_weights(f->t.ctx, f->t.sk, ew, we, D + 1), CDL_OK);
    cdl_logreg_encrypted_weights_free(ew);
    cdl_logreg_config c = *cfg;
    c.iterations = cdl_logreg_trainer_iteration(tr);
    assert_int_equal(cdl_logreg_train_plain(x, y, NS, D, &c, wp), CDL_OK);
    *big = 0;
    return t_max_diff(we, wp, D + 1, big);
}

/* The level plan: 2 iterations per bootstrap with 9 levels (9 -> 5 -> 1, pack at 1), the last segment without
 * the packing level. */
static void test_bootstrap_plan(void **state)
{
    (void)state;
    assert_int_equal(cdl_logreg_bootstraps_needed(9, 9, 1, 3), 0);
    assert_int_equal(cdl_logreg_bootstraps_needed(9, 9, 3, 3), 0);  /* 9 -> 5 -> 1 (fits: no bootstrap) */
    assert_int_equal(cdl_logreg_bootstraps_needed(9, 9, 4, 3), 1);  /* 2, 3 | boot | 4 */
    assert_int_equal(cdl_logreg_bootstraps_needed(9, 9, 8, 3), 3);  /* 2,3 | 4,5 | 6,7 | 8 */
    assert_int_equal(cdl_logreg_bootstraps_needed(9, 9, 20, 3), 9); /* ceil(19 / 2) - 1 */
    assert_int_equal(cdl_logreg_bootstraps_needed(9, -1, 3, 3), 0);
    assert_int_equal(cdl_logreg_bootstraps_needed(9, -1, 4, 3), -1); /* no bootstrapping: 3 fit */
    assert_int_equal(cdl_logreg_bootstraps_needed(9, 4, 4, 3), 1);   /* 2, 3 | boot to 4 | 4 (the last: no packing) */
    assert_int_equal(cdl_logreg_bootstraps_needed(9, 4, 5, 3), -1);  /* 4 levels after a bootstrap: no room to pack */
    /* degree 1 (3 levels): 7 -> 4 -> 1 between bootstraps (9 -> 6 -> 3 -> 0 leaves none to pack), the last
     * segment 9 -> 6 -> 3 -> 0: 2,3 | 4,5 | 6,7 | 8,9,10 */
    assert_int_equal(cdl_logreg_bootstraps_needed(9, 9, 10, 1), 3);
    /* the insecure presets get the 128-bit preset's 9 computation levels */
    for (int log_n = 10; log_n <= 16; log_n += 6) {
        cdl_ckks_param_spec s;
        cdl_ckks_bootstrap_params p;
        assert_int_equal(cdl_logreg_bootstrap_preset(log_n, &s, &p), CDL_OK);
        int forties = 0;
        for (int i = 1; i < s.q_count && s.q_bits[i] == 40; i++)
            forties++;
        assert_int_equal(forties, 9);
        assert_int_equal(s.q_count - 1 - cdl_ckks_bootstrap_depth(&p), 9);
        assert_int_equal(s.allow_insecure, log_n < 16);
    }
    cdl_ckks_param_spec s;
    cdl_ckks_bootstrap_params p;
    assert_int_equal(cdl_logreg_bootstrap_preset(15, &s, &p), CDL_ERR_INVALID_ARGUMENT);
}

/* Encrypted training with bootstrapping against the plaintext twin, after every iteration, across 3
 * bootstraps; then a run saved after iteration 5 and resumed ends in the same state as the uninterrupted one,
 * bit for bit (their checkpoints are equal bytes).
 *
 * Tolerance: a bootstrap at these parameters is good to ~2^-20 of |u| <= 1 (test_bootstrap: 21-23 bits), and
 * the weights go through it divided by W = 8, so a bootstrap adds ~2^-17 (8e-6) to beta and v; the
 * iterations between bootstraps add ~2^-25 each (test above) and carry earlier errors forward with a factor
 * of about 1 - eta <= 2 (Nesterov) and the gradient's Lipschitz constant (small: gamma_k / n sum |Z_i|^2
 * a1 ~ 1). Over 3 bootstraps and 8 iterations we allow 2^-15 (3.1e-5) absolute, with the largest weight
 * ~1.2 (measured: 2e-7 after the first bootstrap, 1.0e-6 after the third). */
static void test_bootstrapped_matches_plain(void **state)
{
    (void)state;
    double x[NS * D];
    int y[NS];
    make_data(5, x, y, NS);
    bfixture f;
    bfx_setup(&f, 30);
    assert_int_equal(f.boot_level, 9);
    cdl_logreg_encrypted_data *enc = NULL;
    assert_int_equal(cdl_logreg_encrypt_dataset_level(f.t.ctx, f.t.sk, f.t.rng, x, y, NS, D, f.boot_level, &enc), CDL_OK);
    assert_int_equal(cdl_logreg_encrypted_data_level(enc), f.boot_level);
    cdl_logreg_config cfg;
    cdl_logreg_config_default(&cfg);
    cfg.iterations = 8;
    cfg.learning_rate = 6.0;
    double wmax_state = 0;
    {
        double w[D + 1];
        cdl_logreg_plain_stats stats;
        assert_int_equal(cdl_logreg_train_plain_stats(x, y, NS, D, &cfg, w, &stats), CDL_OK);
        wmax_state = stats.max_abs_state;
        print_message("plaintext: max |beta|, |v| = %.3f (bound W = %g), max |margin| = %.2f\n",
                      stats.max_abs_state, cfg.weight_bound, stats.max_abs_margin);
        assert_true(stats.max_abs_state < cfg.weight_bound);
    }
    assert_true(wmax_state > 0.5); /* the weights move */
    assert_int_equal(cdl_logreg_bootstraps_needed(f.boot_level, f.boot_level, cfg.iterations, 3), 3);

    /* without the conjugation key: refused before any work */
    cdl_ckks_galois_keys *noconj = NULL;
    int steps[CDL_LOGREG_MAX_STEPS];
    size_t ns;
    assert_int_equal(cdl_logreg_galois_steps(f.t.ctx, D, steps, CDL_LOGREG_MAX_STEPS, &ns), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_galois(f.t.ctx, f.t.sk, steps, ns, 0, f.t.rng, &noconj), CDL_OK);
    cdl_logreg_trainer *tr = NULL;
    assert_int_equal(cdl_logreg_trainer_new(f.t.ctx, f.t.rlk, noconj, f.bt, f.bk, enc, &cfg, &tr),
                     CDL_ERR_EXHAUSTED);
    assert_non_null(strstr(cdl_last_error(), "conjugation"));
    assert_null(tr);
    cdl_ckks_galois_keys_free(noconj);
    /* a bootstrapper without its keys */
    assert_int_equal(cdl_logreg_trainer_new(f.t.ctx, f.t.rlk, f.gk, f.bt, NULL, enc, &cfg, &tr),
                     CDL_ERR_INVALID_ARGUMENT);

    assert_int_equal(cdl_logreg_trainer_new(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, &tr), CDL_OK);
    uint8_t *saved = NULL;
    size_t saved_len = 0;
    double worst = 0;
    for (int k = 1; k <= cfg.iterations; k++) {
        assert_int_equal(cdl_logreg_trainer_step(tr), CDL_OK);
        double big;
        double diff = trainer_diff(&f, tr, x, y, &cfg, &big);
        print_message("k = %d: level %d, %d bootstraps, max |w_enc - w_plain| = %.3g (largest weight %.3g)\n", k,
                      cdl_logreg_trainer_level(tr), cdl_logreg_trainer_bootstraps(tr), diff, big);
        worst = fmax(worst, diff);
        if (!(diff <= ldexp(1.0, -15)))
            fail_msg("iteration %d: encrypted vs plaintext weights differ by %g", k, diff);
        if (k == 5) {
            assert_int_equal(cdl_logreg_trainer_bootstraps(tr), 1); /* before iteration 4; the next before 6 */
            assert_int_equal(cdl_logreg_trainer_save(tr, &saved, &saved_len), CDL_OK);
        }
    }
    assert_int_equal(cdl_logreg_trainer_bootstraps(tr), 3);
    assert_int_equal(cdl_logreg_trainer_level(tr), 0);
    assert_true(cdl_logreg_trainer_bootstrap_seconds(tr) > 0);
    assert_int_equal(cdl_logreg_trainer_step(tr), CDL_ERR_INVALID_ARGUMENT); /* all done */
    uint8_t *full = NULL, *resumed = NULL;
    size_t full_len = 0, resumed_len = 0;
    assert_int_equal(cdl_logreg_trainer_save(tr, &full, &full_len), CDL_OK);
    cdl_logreg_trainer_free(tr);

    /* resume from iteration 5: the same ciphertexts at the end, bit for bit */
    tr = NULL;
    assert_int_equal(cdl_logreg_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, saved, saved_len, &tr),
                     CDL_OK);
    assert_int_equal(cdl_logreg_trainer_iteration(tr), 5);
    while (cdl_logreg_trainer_iteration(tr) < cfg.iterations)
        assert_int_equal(cdl_logreg_trainer_step(tr), CDL_OK);
    assert_int_equal(cdl_logreg_trainer_bootstraps(tr), 3);
    assert_int_equal(cdl_logreg_trainer_save(tr, &resumed, &resumed_len), CDL_OK);
    /* the whole state (beta_8, v_7, counters), byte for byte */
    assert_int_equal(resumed_len, full_len);
    assert_memory_equal(full, resumed, full_len);
    cdl_logreg_trainer_free(tr);
    cdl_free_bytes(full);
    cdl_free_bytes(resumed);

    /* refusals on load: another config, damaged bytes */
    cdl_logreg_config other = cfg;
    other.learning_rate = 5.0;
    assert_int_equal(cdl_logreg_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &other, saved, saved_len, &tr),
                     CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "learning rate"));
    assert_int_equal(cdl_logreg_trainer_load(f.t.ctx, f.t.rlk, f.gk, NULL, NULL, enc, &cfg, saved, saved_len, &tr),
                     CDL_ERR_EXHAUSTED); /* 8 iterations do not fit without bootstrapping */
    saved[saved_len / 2] ^= 1;
    assert_int_equal(cdl_logreg_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, saved, saved_len, &tr),
                     CDL_ERR_FORMAT);
    assert_int_equal(cdl_logreg_trainer_load(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, saved, 20, &tr),
                     CDL_ERR_FORMAT);
    assert_null(tr);
    cdl_free_bytes(saved);

    /* the one-shot call gives the same weights as the trainer */
    cdl_logreg_encrypted_weights *ew = NULL;
    assert_int_equal(
        cdl_logreg_train_encrypted_bootstrapped(f.t.ctx, f.t.rlk, f.gk, f.bt, f.bk, enc, &cfg, &ew), CDL_OK);
    double we[D + 1], wp[D + 1];
    assert_int_equal(cdl_logreg_decrypt_weights(f.t.ctx, f.t.sk, ew, we, D + 1), CDL_OK);
    assert_int_equal(cdl_logreg_train_plain(x, y, NS, D, &cfg, wp), CDL_OK);
    for (int i = 0; i <= D; i++)
        assert_true(fabs(we[i] - wp[i]) <= ldexp(1.0, -15));
    assert_true(cdl_logreg_accuracy(we, x, y, NS, D) == cdl_logreg_accuracy(wp, x, y, NS, D));
    print_message("worst difference over the 8 iterations: %.3g\n", worst);
    cdl_logreg_encrypted_weights_free(ew);
    cdl_logreg_encrypted_data_free(enc);
    bfx_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigmoid_fit),
        cmocka_unit_test(test_plain_matches_textbook),
        cmocka_unit_test(test_plain_learns),
        cmocka_unit_test(test_levels),
        cmocka_unit_test(test_encrypted_matches_plain),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bootstrap_plan),
        cmocka_unit_test(test_bootstrapped_matches_plain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
