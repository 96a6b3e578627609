/*
 * test_ckks_preset.c: one end-to-end run at a real (secure) preset, N = 2^13,
 * log QP = 218: keys, public-key encryption, mul_relin + rescale through every
 * level, a rotation and a conjugation, each compared with the plaintext
 * computation (floors as in docs/ckks-design.md).
 */
#include <complex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "test_ckks_util.h"

static void test_preset_13(void **state)
{
    (void)state;
    cdl_ckks_param_spec s;
    assert_int_equal(cdl_ckks_preset(13, &s), CDL_OK);
    tctx t;
    t_setup(&t, &s, 41);
    const cdl_ckks_context *ctx = t.ctx;
    assert_true(cdl_ckks_log_qp(ctx) <= 218.0);
    assert_true(cdl_ckks_log_qp(ctx) > 217.0);
    size_t n = t.slots;
    double *re = cdl_alloc_array(n, 8), *im = cdl_alloc_array(n, 8), *ore = cdl_alloc_array(n, 8),
           *oim = cdl_alloc_array(n, 8), *wre = cdl_alloc_array(n, 8), *wim = cdl_alloc_array(n, 8);
    t_random(t.rng, re, n);
    t_random(t.rng, im, n);
    const int steps[2] = {1, -7};
    cdl_ckks_galois_keys *gk = NULL;
    assert_int_equal(cdl_ckks_keygen_galois(ctx, t.sk, steps, 2, 1, t.rng, &gk), CDL_OK);

    int top = cdl_ckks_max_level(ctx);
    cdl_ckks_ciphertext *x = t_encrypt(&t, re, im, top, 1);
    t_decrypt(&t, x, ore, oim);
    double bits = t_bits(ore, oim, re, im, n);
    print_message("N=2^13 fresh pk encryption: %.1f bits\n", bits);
    assert_true(bits >= 22);

    /* z -> z * z0 repeatedly (z0 = initial values, |z0| <= sqrt 2, scaled by 0.7) */
    double complex *z0 = cdl_alloc_array(n, sizeof(double complex)), *z = cdl_alloc_array(n, sizeof(double complex));
    for (size_t i = 0; i < n; i++) {
        z0[i] = 0.7 * (re[i] + I * im[i]);
        z[i] = z0[i];
        wre[i] = creal(z0[i]), wim[i] = cimag(z0[i]);
    }
    cdl_ckks_ciphertext *c0 = t_encrypt(&t, wre, wim, top, 1);
    cdl_ckks_ciphertext *acc = NULL, *base = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &acc), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &base), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_copy(ctx, c0, acc), CDL_OK);
    for (int d = 0; d < top; d++) {
        assert_int_equal(cdl_ckks_ciphertext_copy(ctx, c0, base), CDL_OK);
        assert_int_equal(cdl_ckks_drop_to_level(ctx, base, cdl_ckks_ciphertext_level(acc), base), CDL_OK);
        cdl_ckks_ciphertext_set_scale(base, cdl_ckks_ciphertext_scale(base));
        assert_int_equal(cdl_ckks_mul_relin(ctx, t.rlk, acc, base, acc), CDL_OK);
        assert_int_equal(cdl_ckks_rescale(ctx, acc, acc), CDL_OK);
        for (size_t i = 0; i < n; i++) {
            z[i] *= z0[i];
            wre[i] = creal(z[i]), wim[i] = cimag(z[i]);
        }
        t_decrypt(&t, acc, ore, oim);
        bits = t_bits(ore, oim, wre, wim, n);
        print_message("N=2^13 z^%d (mul_relin + rescale), level %d: %.1f bits\n", d + 2, cdl_ckks_ciphertext_level(acc),
                      bits);
        assert_true(bits >= 20);
    }
    assert_int_equal(cdl_ckks_ciphertext_level(acc), 0);

    /* rotations and conjugation at the top level */
    cdl_ckks_ciphertext *r = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &r), CDL_OK);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(cdl_ckks_rotate(ctx, gk, x, steps[k], r), CDL_OK);
        for (size_t i = 0; i < n; i++) {
            size_t src = (size_t)(((int64_t)i + steps[k]) % (int64_t)n + (int64_t)n) % n;
            wre[i] = re[src], wim[i] = im[src];
        }
        t_decrypt(&t, r, ore, oim);
        bits = t_bits(ore, oim, wre, wim, n);
        print_message("N=2^13 rotate by %d: %.1f bits\n", steps[k], bits);
        assert_true(bits >= 20);
    }
    assert_int_equal(cdl_ckks_conjugate(ctx, gk, x, r), CDL_OK);
    for (size_t i = 0; i < n; i++)
        wre[i] = re[i], wim[i] = -im[i];
    t_decrypt(&t, r, ore, oim);
    bits = t_bits(ore, oim, wre, wim, n);
    print_message("N=2^13 conjugate: %.1f bits\n", bits);
    assert_true(bits >= 20);

    cdl_free(z0), cdl_free(z);
    cdl_free(re), cdl_free(im), cdl_free(ore), cdl_free(oim), cdl_free(wre), cdl_free(wim);
    cdl_ckks_ciphertext_free(x), cdl_ckks_ciphertext_free(c0), cdl_ckks_ciphertext_free(acc);
    cdl_ckks_ciphertext_free(base), cdl_ckks_ciphertext_free(r);
    cdl_ckks_galois_keys_free(gk);
    t_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preset_13),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
