/*
 * test_bootstrap.c: CKKS bootstrapping at small, INSECURE parameters (the
 * insecure presets of cdl_ckks_bootstrap_preset, N = 2^10..2^12: same code
 * paths as the 128-bit N = 2^16 preset, which bench/bench_bootstrap.c runs).
 *  - the factored DFT matrices against the encoder itself (decode of a
 *    plaintext built from known coefficients);
 *  - bootstrapped values against the encrypted ones (precision in bits),
 *    with and without sparse-secret encapsulation, complex slots too;
 *  - a computation after the bootstrap, a second bootstrap;
 *  - keys from other parameters and bad inputs refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "boot/boot_internal.h"
#include "ring/rns_poly.h"
#include "test_ckks_util.h"

/* A plaintext whose coefficients are exactly round(scale * coef[k]). */
static void plaintext_from_coefficients(const cdl_ckks_context *ctx, const double *coef, double scale,
                                        cdl_ckks_plaintext *pt)
{
    const size_t n = ctx->n;
    pt->level = 0;
    pt->scale = scale;
    uint64_t *limb = cdl_pt_limb(pt, 0);
    for (size_t k = 0; k < n; k++) {
        int64_t v = (int64_t)llround(coef[k] * scale);
        limb[k] = v < 0 ? ctx->primes[0] - (uint64_t)(-v) : (uint64_t)v;
    }
    cdl_ntt_forward(ctx->ntt[0], limb);
}

static double max_diff(const double *ar, const double *ai, const double *br, const double *bi, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = hypot(ar[i] - br[i], ai[i] - bi[i]);
        m = d > m ? d : m;
    }
    return m;
}

/* Both directions of the factored special FFT against cdl_ckks_decode. */
static void test_dft_factors_match_encoder(void **state)
{
    (void)state;
    for (int groups = 1; groups <= 4; groups += 3) {
        cdl_ckks_param_spec spec;
        assert_int_equal(cdl_ckks_preset(10, &spec), CDL_OK);
        cdl_ckks_context *ctx = NULL;
        assert_int_equal(cdl_ckks_context_new(&spec, &ctx), CDL_OK);
        const size_t n = ctx->slots, N = ctx->n;
        cdl_rng *rng = t_rng(3);
        double *coef = malloc(N * sizeof(double));
        double *zr = malloc(n * sizeof(double)), *zi = malloc(n * sizeof(double));
        double *xr = malloc(n * sizeof(double)), *xi = malloc(n * sizeof(double));
        double *yr = malloc(n * sizeof(double)), *yi = malloc(n * sizeof(double));
        t_random(rng, coef, N);
        cdl_ckks_plaintext *pt = NULL;
        assert_int_equal(cdl_ckks_plaintext_new(ctx, &pt), CDL_OK);
        const double scale = ldexp(1.0, 30);
        plaintext_from_coefficients(ctx, coef, scale, pt);
        assert_int_equal(cdl_ckks_decode_complex(ctx, pt, zr, zi, n), CDL_OK);
        /* the coefficients as decode saw them (rounded), in bit-reversed order */
        const int bits = __builtin_ctzll(n);
        for (size_t k = 0; k < n; k++) {
            size_t r = cdl_bit_reverse(k, bits);
            xr[r] = (double)llround(coef[k] * scale) / scale;
            xi[r] = (double)llround(coef[k + n] * scale) / scale;
        }
        boot_diag_matrix m[4];
        /* SlotToCoeff: the factors applied in order to R c give decode(c) */
        assert_int_equal(boot_dft_factors(ctx, n, 0, groups, m), CDL_OK);
        for (int g = 0; g < groups; g++) {
            assert_true(m[g].count <= (1 << (bits / groups + 2)));
            boot_diag_matrix_apply(&m[g], xr, xi, yr, yi);
            memcpy(xr, yr, n * sizeof(double));
            memcpy(xi, yi, n * sizeof(double));
            boot_diag_matrix_free(&m[g]);
        }
        assert_true(max_diff(xr, xi, zr, zi, n) < 1e-9);
        /* CoeffToSlot: applied to decode(c) they give R c back */
        assert_int_equal(boot_dft_factors(ctx, n, 1, groups, m), CDL_OK);
        memcpy(xr, zr, n * sizeof(double));
        memcpy(xi, zi, n * sizeof(double));
        for (int g = 0; g < groups; g++) {
            boot_diag_matrix_apply(&m[g], xr, xi, yr, yi);
            memcpy(xr, yr, n * sizeof(double));
            memcpy(xi, yi, n * sizeof(double));
            boot_diag_matrix_free(&m[g]);
        }
        for (size_t k = 0; k < n; k++) {
            size_t r = cdl_bit_reverse(k, bits);
            yr[r] = (double)llround(coef[k] * scale) / scale;
            yi[r] = (double)llround(coef[k + n] * scale) / scale;
        }
        assert_true(max_diff(xr, xi, yr, yi, n) < 1e-9);
        assert_int_equal(boot_dft_factors(ctx, n, 0, bits + 1, m), CDL_ERR_PARAMETERS);
        cdl_ckks_plaintext_free(pt);
        free(coef);
        free(zr);
        free(zi);
        free(xr);
        free(xi);
        free(yr);
        free(yi);
        cdl_rng_free(rng);
        cdl_ckks_context_free(ctx);
    }
}

/* The interpolant of the shifted cosine, double angles applied in doubles. */
static void test_evalmod_plan(void **state)
{
    (void)state;
    boot_evalmod em;
    assert_int_equal(boot_evalmod_plan(12, 31, 3, &em), CDL_OK);
    assert_int_equal(boot_evalmod_depth(&em), 8);
    double worst = 0;
    for (int i = -12; i <= 12; i++)
        for (int s = -10; s <= 10; s++) {
            const double x = i + s * 1e-3;
            double c = cdl_poly_eval_chebyshev(em.cheb, em.degree, -em.bound, em.bound, x);
            for (int r = 0; r < em.double_angle; r++)
                c = 2 * c * c - 1;
            const double e = fabs(c - sin(2 * M_PI * x));
            worst = e > worst ? e : worst;
        }
    assert_true(worst < ldexp(1.0, -35));
    assert_int_equal(boot_evalmod_plan(12, 40, 3, &em), CDL_ERR_PARAMETERS);
    assert_int_equal(boot_evalmod_plan(0, 31, 3, &em), CDL_ERR_PARAMETERS);
}

typedef struct boot_fixture {
    cdl_ckks_param_spec spec;
    cdl_ckks_bootstrap_params bp;
    tctx t;
    cdl_ckks_bootstrapper *bt;
    cdl_ckks_bootstrap_keys *bk;
} boot_fixture;

static void fixture_open(boot_fixture *f, int log_n, int sse, uint8_t tag)
{
    assert_int_equal(cdl_ckks_bootstrap_preset(log_n, &f->spec, &f->bp), CDL_OK);
    if (!sse)
        f->bp.sse_hamming_weight = 0;
    t_setup(&f->t, &f->spec, tag);
    assert_int_equal(cdl_ckks_bootstrapper_new(f->t.ctx, &f->bp, &f->bt), CDL_OK);
    assert_int_equal(cdl_ckks_bootstrap_keygen(f->bt, f->t.sk, f->t.rng, &f->bk), CDL_OK);
}

static void fixture_close(boot_fixture *f)
{
    cdl_ckks_bootstrap_keys_free(f->bk);
    cdl_ckks_bootstrapper_free(f->bt);
    t_teardown(&f->t);
}

/* Encrypt (re, im) at level 0 with scale 2^40, bootstrap, return -log2 of the worst slot error. */
static double bootstrap_bits(boot_fixture *f, const double *re, const double *im, cdl_ckks_ciphertext **out)
{
    const cdl_ckks_context *ctx = f->t.ctx;
    const size_t n = f->t.slots;
    cdl_ckks_ciphertext *ct = t_encrypt(&f->t, re, im, 0, 0);
    assert_int_equal(cdl_ckks_ciphertext_level(ct), 0);
    cdl_ckks_ciphertext *bs = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &bs), CDL_OK);
    cdl_status st = cdl_ckks_bootstrap(f->bt, f->bk, f->t.rlk, ct, bs);
    if (st != CDL_OK)
        print_message("cdl_ckks_bootstrap: %s\n", cdl_last_error());
    assert_int_equal(st, CDL_OK);
    cdl_ckks_bootstrap_info info;
    assert_int_equal(cdl_ckks_bootstrapper_info(f->bt, &info), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_level(bs), info.level_out);
    assert_true(fabs(cdl_ckks_ciphertext_scale(bs) / f->spec.scale - 1.0) < 1e-3);
    double *dr = malloc(n * sizeof(double)), *di = malloc(n * sizeof(double));
    t_decrypt(&f->t, bs, dr, di);
    const double bits = t_bits(dr, di, re, im, n);
    free(dr);
    free(di);
    cdl_ckks_ciphertext_free(ct);
    if (out)
        *out = bs;
    else
        cdl_ckks_ciphertext_free(bs);
    return bits;
}

static void test_bootstrap_real_sse(void **state)
{
    (void)state;
    boot_fixture f;
    fixture_open(&f, 11, 1, 21);
    const size_t n = f.t.slots;
    double *v = malloc(n * sizeof(double));
    t_random(f.t.rng, v, n);
    cdl_ckks_ciphertext *bs = NULL;
    double bits = bootstrap_bits(&f, v, NULL, &bs);
    print_message("bootstrap N=2^11 SSE h'=32: %.1f bits (worst slot)\n", bits);
    assert_true(bits > 18.0);
    /* compute on the result: square it (one level) and compare with v^2 */
    cdl_ckks_ciphertext *sq = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(f.t.ctx, &sq), CDL_OK);
    assert_int_equal(cdl_ckks_mul_relin(f.t.ctx, f.t.rlk, bs, bs, sq), CDL_OK);
    assert_int_equal(cdl_ckks_rescale(f.t.ctx, sq, sq), CDL_OK);
    double *dr = malloc(n * sizeof(double)), *di = malloc(n * sizeof(double));
    t_decrypt(&f.t, sq, dr, di);
    double worst = 0;
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(dr[i] - v[i] * v[i]));
    assert_true(worst < ldexp(1.0, -16));
    free(dr);
    free(di);
    free(v);
    cdl_ckks_ciphertext_free(sq);
    cdl_ckks_ciphertext_free(bs);
    fixture_close(&f);
}

static void test_bootstrap_complex_no_sse(void **state)
{
    (void)state;
    boot_fixture f;
    fixture_open(&f, 10, 0, 22);
    const size_t n = f.t.slots;
    double *re = malloc(n * sizeof(double)), *im = malloc(n * sizeof(double));
    t_random(f.t.rng, re, n);
    t_random(f.t.rng, im, n);
    double bits = bootstrap_bits(&f, re, im, NULL);
    print_message("bootstrap N=2^10 no SSE, complex slots: %.1f bits (worst slot)\n", bits);
    assert_true(bits > 16.0);
    free(re);
    free(im);
    fixture_close(&f);
}

/* Two passes: the residual of the first bootstrap bootstrapped again gains bits, one level lower. */
static void test_bootstrap_refined(void **state)
{
    (void)state;
    boot_fixture f;
    fixture_open(&f, 11, 1, 27);
    const size_t n = f.t.slots;
    double *v = malloc(n * sizeof(double)), *dr = malloc(n * sizeof(double)), *di = malloc(n * sizeof(double));
    t_random(f.t.rng, v, n);
    const double one = bootstrap_bits(&f, v, NULL, NULL);
    cdl_ckks_ciphertext *ct = t_encrypt(&f.t, v, NULL, 0, 0), *out = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(f.t.ctx, &out), CDL_OK);
    assert_int_equal(cdl_ckks_bootstrap_refined(f.bt, f.bk, f.t.rlk, ct, out), CDL_OK);
    cdl_ckks_bootstrap_info info;
    assert_int_equal(cdl_ckks_bootstrapper_info(f.bt, &info), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_level(out), info.level_out - 1);
    t_decrypt(&f.t, out, dr, di);
    const double two = t_bits(dr, di, v, NULL, n);
    print_message("bootstrap N=2^11: one pass %.1f bits, two passes %.1f bits (worst slot)\n", one, two);
    assert_true(two > one + 4.0);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_ciphertext_free(out);
    free(v);
    free(dr);
    free(di);
    fixture_close(&f);
}

/* Sparse slots: 32 values repeated over the 512 slots of N = 2^10 (SubSum, size-32 DFTs). */
static void test_bootstrap_sparse(void **state)
{
    (void)state;
    boot_fixture f;
    assert_int_equal(cdl_ckks_bootstrap_preset(10, &f.spec, &f.bp), CDL_OK);
    f.bp.log_slots = 5;
    t_setup(&f.t, &f.spec, 25);
    assert_int_equal(cdl_ckks_bootstrapper_new(f.t.ctx, &f.bp, &f.bt), CDL_OK);
    assert_int_equal(cdl_ckks_bootstrap_keygen(f.bt, f.t.sk, f.t.rng, &f.bk), CDL_OK);
    cdl_ckks_bootstrap_info info;
    assert_int_equal(cdl_ckks_bootstrapper_info(f.bt, &info), CDL_OK);
    assert_int_equal(info.slots, 32);
    const size_t n = f.t.slots, period = 32;
    double *re = malloc(n * sizeof(double)), *im = malloc(n * sizeof(double));
    t_random(f.t.rng, re, period);
    t_random(f.t.rng, im, period);
    for (size_t i = period; i < n; i++) {
        re[i] = re[i % period];
        im[i] = im[i % period];
    }
    double bits = bootstrap_bits(&f, re, im, NULL);
    print_message("bootstrap N=2^10, 32 sparse slots, SSE: %.1f bits (worst slot)\n", bits);
    assert_true(bits > 18.0);
    /* values without the period are not what sparse bootstrapping keeps */
    re[1] += 0.5;
    assert_true(bootstrap_bits(&f, re, im, NULL) < 4.0);
    free(re);
    free(im);
    fixture_close(&f);
    cdl_ckks_bootstrap_params bad = f.bp;
    bad.log_slots = 10;
    assert_int_equal(cdl_ckks_bootstrap_preset(10, &f.spec, &bad), CDL_OK);
    bad.log_slots = 10;
    tctx t;
    t_setup(&t, &f.spec, 26);
    cdl_ckks_bootstrapper *bt = NULL;
    assert_int_equal(cdl_ckks_bootstrapper_new(t.ctx, &bad, &bt), CDL_ERR_PARAMETERS);
    bad.log_slots = 2; /* fewer DFT stages (2) than the levels asked (3) */
    assert_int_equal(cdl_ckks_bootstrapper_new(t.ctx, &bad, &bt), CDL_ERR_PARAMETERS);
    t_teardown(&t);
}

static void test_bootstrap_refusals(void **state)
{
    (void)state;
    boot_fixture f, g;
    fixture_open(&f, 10, 1, 23);
    fixture_open(&g, 10, 0, 24);
    const size_t n = f.t.slots;
    double *v = calloc(n, sizeof(double));
    cdl_ckks_ciphertext *ct = t_encrypt(&f.t, v, NULL, 0, 0), *out = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(f.t.ctx, &out), CDL_OK);
    /* keys without encapsulation for a bootstrapper with it, and the reverse */
    assert_int_equal(cdl_ckks_bootstrap(f.bt, g.bk, f.t.rlk, ct, out), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_ckks_bootstrap(g.bt, f.bk, f.t.rlk, ct, out), CDL_ERR_MISMATCH);
    /* a scale above q0 / 2^ratio */
    cdl_ckks_ciphertext_set_scale(ct, ldexp((double)cdl_ckks_prime(f.t.ctx, 0), -2));
    assert_int_equal(cdl_ckks_bootstrap(f.bt, f.bk, f.t.rlk, ct, out), CDL_ERR_PARAMETERS);
    /* too few levels for the plan */
    cdl_ckks_bootstrap_params bad = f.bp;
    bad.cts_levels = 9;
    cdl_ckks_bootstrapper *bt = NULL;
    assert_int_equal(cdl_ckks_bootstrapper_new(f.t.ctx, &bad, &bt), CDL_ERR_PARAMETERS);
    assert_null(bt);
    assert_int_equal(cdl_ckks_bootstrap(NULL, f.bk, f.t.rlk, ct, out), CDL_ERR_INVALID_ARGUMENT);
    free(v);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_ciphertext_free(out);
    fixture_close(&f);
    fixture_close(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dft_factors_match_encoder),
        cmocka_unit_test(test_evalmod_plan),
        cmocka_unit_test(test_bootstrap_real_sse),
        cmocka_unit_test(test_bootstrap_complex_no_sse),
        cmocka_unit_test(test_bootstrap_refined),
        cmocka_unit_test(test_bootstrap_sparse),
        cmocka_unit_test(test_bootstrap_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
