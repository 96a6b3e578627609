/*
 * test_approx_ckks.c: polynomial evaluation on CKKS ciphertexts
 * (cdl_ckks_eval_poly) against plaintext evaluation:
 *   - for every degree 1..15, random coefficients, in the power basis and in
 *     the Chebyshev basis: decrypt(eval(enc(x))) equals p(alpha x + beta)
 *     (Horner, or sum c_k cos(k acos t)) to the stated precision floor
 *     (max error < 2^-20 for coefficients in [-1, 1] at scale 2^40);
 *   - the consumed depth is ceil(log2(d+1)) (computed here, not taken from
 *     the plan), the output scale is exactly the one asked for, and the number
 *     of ciphertext multiplications equals the plan's;
 *   - ReLU minimax approximations on [-6, 6] (degrees 8 and 15) evaluated
 *     encrypted equal their plaintext values (cdl_ckks_eval_poly_approx);
 *   - too few levels are refused before any work (CDL_ERR_EXHAUSTED).
 * Test parameters: N = 2^12 with 5 levels of 40 bits, flagged insecure
 * (testing only: more modulus than 128-bit security allows at N = 2^12).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cryptodl/cryptodl.h"

#define SLOTS_USED 256
#define FLOOR 9.5367431640625e-07 /* 2^-20 */

typedef struct fixture {
    cdl_ckks_context *ctx;
    cdl_ckks_secret_key *sk;
    cdl_ckks_relin_key *rlk;
    cdl_rng *rng;
} fixture;

static int setup(void **state)
{
    static fixture f;
    cdl_ckks_param_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.log_n = 12;
    spec.q_count = 6;
    spec.q_bits[0] = 55;
    for (int i = 1; i < 6; i++)
        spec.q_bits[i] = 40;
    spec.p_count = 1;
    spec.p_bits[0] = 55;
    spec.scale = ldexp(1.0, 40);
    spec.allow_insecure = 1;
    uint8_t seed[CDL_RNG_SEED_BYTES] = {7};
    if (cdl_ckks_context_new(&spec, &f.ctx) || cdl_rng_new_seeded_insecure(seed, &f.rng) ||
        cdl_ckks_keygen_secret(f.ctx, f.rng, &f.sk) || cdl_ckks_keygen_relin(f.ctx, f.sk, f.rng, &f.rlk)) {
        print_error("setup: %s\n", cdl_last_error());
        return -1;
    }
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    cdl_ckks_relin_key_free(f->rlk);
    cdl_ckks_secret_key_free(f->sk);
    cdl_rng_free(f->rng);
    cdl_ckks_context_free(f->ctx);
    return 0;
}

/* x encrypted at scale = default scale * alpha, so that t = alpha x has the
 * default scale after the evaluator's relabelling (see poly_eval.c). */
static cdl_ckks_ciphertext *encrypt(fixture *f, const double *x, int level, double alpha)
{
    cdl_ckks_plaintext *pt;
    cdl_ckks_ciphertext *ct;
    assert_int_equal(cdl_ckks_plaintext_new(f->ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(f->ctx, &ct), CDL_OK);
    assert_int_equal(cdl_ckks_encode(f->ctx, x, SLOTS_USED, cdl_ckks_default_scale(f->ctx) * alpha, level, pt), CDL_OK);
    assert_int_equal(cdl_ckks_encrypt_sk(f->ctx, f->sk, pt, f->rng, ct), CDL_OK);
    cdl_ckks_plaintext_free(pt);
    return ct;
}

static void decrypt(fixture *f, const cdl_ckks_ciphertext *ct, double *out)
{
    cdl_ckks_plaintext *pt;
    assert_int_equal(cdl_ckks_plaintext_new(f->ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_decrypt(f->ctx, f->sk, ct, pt), CDL_OK);
    assert_int_equal(cdl_ckks_decode(f->ctx, pt, out, SLOTS_USED), CDL_OK);
    cdl_ckks_plaintext_free(pt);
}

static uint64_t lcg = 99;
static double rnd(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0 * 2 - 1;
}

static void run_every_degree(fixture *f, int cheb)
{
    int top = cdl_ckks_max_level(f->ctx);
    double x[SLOTS_USED], got[SLOTS_USED];
    for (int i = 0; i < SLOTS_USED; i++)
        x[i] = 6 * rnd();
    const double alpha = 1.0 / 6, beta = 0.0;
    for (int d = 1; d <= 15; d++) {
        double c[16];
        for (int i = 0; i <= d; i++)
            c[i] = rnd();
        cdl_ckks_ciphertext *in = encrypt(f, x, top, alpha), *out;
        assert_int_equal(cdl_ckks_ciphertext_new(f->ctx, &out), CDL_OK);
        double want_scale = ldexp(1.0, 40) * 1.25; /* not the input scale, on purpose */
        cdl_poly_eval_stats st;
        cdl_status s = cheb ? cdl_ckks_eval_poly_chebyshev(f->ctx, f->rlk, in, c, d, alpha, beta, want_scale, out, &st)
                            : cdl_ckks_eval_poly(f->ctx, f->rlk, in, c, d, alpha, beta, want_scale, out, &st);
        if (s != CDL_OK)
            print_error("degree %d: %s\n", d, cdl_last_error());
        assert_int_equal(s, CDL_OK);
        int depth = 0;
        while ((1 << depth) < d + 1)
            depth++;
        assert_int_equal(st.depth, depth);
        assert_int_equal(cdl_ckks_ciphertext_level(out), top - depth);
        assert_true(cdl_ckks_ciphertext_scale(out) == want_scale);
        cdl_poly_eval_plan plan;
        assert_int_equal(cheb ? cdl_poly_eval_plan_chebyshev(c, d, &plan) : cdl_poly_eval_plan_compute(c, d, &plan),
                         CDL_OK);
        assert_int_equal(st.ct_mults, plan.ct_mults);
        assert_int_equal(st.const_mults, plan.const_mults);
        /* random coefficients are generic: the count is the one documented in
         * docs/activations.md, which is the plan for coeffs == NULL */
        cdl_poly_eval_plan documented;
        assert_int_equal(cheb ? cdl_poly_eval_plan_chebyshev(NULL, d, &documented)
                              : cdl_poly_eval_plan_compute(NULL, d, &documented),
                         CDL_OK);
        assert_int_equal(st.ct_mults, documented.ct_mults);
        assert_int_equal(st.planned_depth, depth);
        decrypt(f, out, got);
        double worst = 0;
        for (int i = 0; i < SLOTS_USED; i++) {
            double t = alpha * x[i] + beta, v = 0;
            if (cheb) { /* T_k(t) = cos(k acos t), summed directly */
                for (int k = 0; k <= d; k++)
                    v += c[k] * cos(k * acos(t));
            } else {
                for (int k = d; k >= 0; k--)
                    v = v * t + c[k];
            }
            worst = fmax(worst, fabs(got[i] - v));
        }
        printf("%s degree %2d: depth %d, %2d ct-ct mults, max |enc - plain| = %.3g\n", cheb ? "chebyshev" : "power",
               d, st.depth, st.ct_mults, worst);
        assert_true(worst < FLOOR);
        cdl_ckks_ciphertext_free(in);
        cdl_ckks_ciphertext_free(out);
    }
}

static void test_every_degree_power(void **state) { run_every_degree(*state, 0); }
static void test_every_degree_chebyshev(void **state) { run_every_degree(*state, 1); }

static void test_relu_approx(void **state)
{
    fixture *f = *state;
    for (int d = 8; d <= 15; d += 7) {
        cdl_poly_approx p;
        assert_int_equal(cdl_approx_compute(CDL_ACT_RELU, CDL_APPROX_REMEZ, d, -6, 6, NULL, &p), CDL_OK);
        double x[SLOTS_USED], got[SLOTS_USED];
        for (int i = 0; i < SLOTS_USED; i++)
            x[i] = -6 + 12.0 * i / (SLOTS_USED - 1);
        cdl_ckks_ciphertext *in = encrypt(f, x, cdl_ckks_max_level(f->ctx), 2.0 / 12), *out;
        assert_int_equal(cdl_ckks_ciphertext_new(f->ctx, &out), CDL_OK);
        cdl_poly_eval_stats st;
        assert_int_equal(cdl_ckks_eval_poly_approx(f->ctx, f->rlk, in, &p, 0, out, &st), CDL_OK);
        assert_int_equal(st.depth, 4);
        decrypt(f, out, got);
        double worst = 0;
        for (int i = 0; i < SLOTS_USED; i++) {
            double want = cdl_poly_eval_chebyshev(p.chebyshev, d, -6, 6, x[i]);
            worst = fmax(worst, fabs(got[i] - want));
            /* and it is a ReLU to within the approximation error */
            assert_true(fabs(got[i] - (x[i] > 0 ? x[i] : 0)) < p.max_abs_error + FLOOR);
        }
        printf("relu minimax degree %d (chebyshev basis): max |enc - plain| = %.3g\n", d, worst);
        assert_true(worst < FLOOR);
        cdl_ckks_ciphertext_free(in);
        cdl_ckks_ciphertext_free(out);
    }
}

static void test_not_enough_levels(void **state)
{
    fixture *f = *state;
    double x[SLOTS_USED] = {0}, c[16];
    for (int i = 0; i <= 15; i++)
        c[i] = 1;
    cdl_ckks_ciphertext *in = encrypt(f, x, 3, 1.0), *out; /* 3 levels left, degree 15 needs 4 */
    assert_int_equal(cdl_ckks_ciphertext_new(f->ctx, &out), CDL_OK);
    cdl_poly_eval_stats st;
    assert_int_equal(cdl_ckks_eval_poly(f->ctx, f->rlk, in, c, 15, 1, 0, 0, out, &st), CDL_ERR_EXHAUSTED);
    assert_non_null(strstr(cdl_last_error(), "needs 4 levels"));
    assert_int_equal(st.ct_mults, 0);
    /* an input scale far from what t needs is refused, with advice */
    assert_int_equal(cdl_ckks_eval_poly(f->ctx, f->rlk, in, c, 7, 1.0 / 64, 0, 0, out, &st), CDL_ERR_PARAMETERS);
    assert_non_null(strstr(cdl_last_error(), "encrypt x at scale alpha"));
    /* degree 7 fits in 3 */
    assert_int_equal(cdl_ckks_eval_poly(f->ctx, f->rlk, in, c, 7, 1, 0, 0, out, &st), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_level(out), 0);
    cdl_ckks_ciphertext_free(in);
    cdl_ckks_ciphertext_free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_degree_power),
        cmocka_unit_test(test_every_degree_chebyshev),
        cmocka_unit_test(test_relu_approx),
        cmocka_unit_test(test_not_enough_levels),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
