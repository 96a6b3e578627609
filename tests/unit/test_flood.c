/*
 * test_flood.c: flooded decryption (IND-CPA-D, docs/security.md).
 *  - ckks level (N = 2^12, scale 2^50, q_0 of 60 bits): the flooded result
 *    stays within 6 predicted rms of the plaintext; its measured error
 *    matches the predicted rms (sigma sqrt(N/2) / scale) within 20% and is
 *    thousands of times the plain decryption's; the noise bound it used is
 *    at least the true l2 norm of the error; two flooded decryptions differ
 *    (fresh noise from the system generator); a plain seeded generator is
 *    refused, the test opt-in accepted; a given noise bound is used as is;
 *    bad options and a flood that cannot fit the modulus are refused.
 *  - he level: a small dense -> x^2 -> dense network compiled at scale 2^50:
 *    cdl_he_decrypt_logits_flooded keeps every argmax of the plaintext
 *    reference, stays within 6 rms of it, adds measurably more error than
 *    cdl_he_decrypt_logits, and gives the same logits for 1 and 2 threads
 *    from the same (opt-in) seed.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckks/ckks_internal.h"
#include "test_he_util.h"

static void ckks_setup(cdl_ckks_context **ctx, cdl_ckks_secret_key **sk, cdl_rng **sys)
{
    cdl_ckks_param_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.log_n = 12;
    spec.q_count = 2;
    spec.q_bits[0] = 60;
    spec.q_bits[1] = 50;
    spec.p_count = 1;
    spec.p_bits[0] = 60;
    spec.scale = ldexp(1.0, 50);
    spec.allow_insecure = 1; /* TESTING ONLY: 170 bits at N = 2^12 */
    assert_int_equal(cdl_ckks_context_new(&spec, ctx), CDL_OK);
    assert_int_equal(cdl_rng_new_system(sys), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(*ctx, *sys, sk), CDL_OK);
}

static double rms_error(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s / (double)n);
}

static double max_error(const double *a, const double *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= m))
            m = fabs(a[i] - b[i]);
    return m;
}

static void test_ckks_flooded_decrypt(void **state)
{
    (void)state;
    cdl_ckks_context *ctx = NULL;
    cdl_ckks_secret_key *sk = NULL;
    cdl_rng *sys = NULL;
    ckks_setup(&ctx, &sk, &sys);
    const size_t slots = cdl_ckks_slots(ctx);
    double *x = malloc(slots * sizeof *x), *plain = malloc(slots * sizeof *plain), *im = malloc(slots * sizeof *im),
           *f1 = malloc(slots * sizeof *f1), *f2 = malloc(slots * sizeof *f2);
    assert_non_null(x);
    assert_non_null(plain);
    assert_non_null(im);
    assert_non_null(f1);
    assert_non_null(f2);
    for (size_t i = 0; i < slots; i++)
        x[i] = 2.0 * (double)(cdl_rng_u64(sys) >> 11) * 0x1p-53 - 1.0;
    cdl_ckks_plaintext *pt = NULL;
    cdl_ckks_ciphertext *ct = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &ct), CDL_OK);
    assert_int_equal(cdl_ckks_encode(ctx, x, slots, ldexp(1.0, 50), 0, pt), CDL_OK);
    assert_int_equal(cdl_ckks_encrypt_sk(ctx, sk, pt, sys, ct), CDL_OK);

    /* plain decryption: the error e, and its l2 norm from the slots (Parseval) */
    assert_int_equal(cdl_ckks_decrypt(ctx, sk, ct, pt), CDL_OK);
    assert_int_equal(cdl_ckks_decode_complex(ctx, pt, plain, im, slots), CDL_OK);
    double e2 = 0.0;
    for (size_t i = 0; i < slots; i++)
        e2 += (plain[i] - x[i]) * (plain[i] - x[i]) + im[i] * im[i];
    const double e_l2_log2 = log2(sqrt(e2 / (double)slots) * ldexp(1.0, 50));
    const double plain_rms = rms_error(plain, x, slots);

    /* flooded, default options (40 bits, 1 query, estimated noise) */
    cdl_ckks_flood_info info;
    memset(&info, 0, sizeof info);
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, NULL, sys, pt, &info), CDL_OK);
    assert_int_equal(cdl_ckks_decode(ctx, pt, f1, slots), CDL_OK);
    assert_true(info.queries == 1.0);
    assert_true(info.noise_log2 >= e_l2_log2);                                 /* a bound */
    assert_true(fabs(info.sigma_log2 - (20.0 + 0.5 * log2(12.0) + info.noise_log2)) < 1e-9);
    const double rms1 = rms_error(f1, x, slots);
    printf("flood: plain rms %.3g, |e|_2 2^%.2f, bound 2^%.0f, sigma 2^%.2f, predicted rms %.3g, measured %.3g\n",
           plain_rms, e_l2_log2, info.noise_log2, info.sigma_log2, info.slot_error, rms1);
    assert_true(rms1 > 0.8 * info.slot_error && rms1 < 1.2 * info.slot_error);
    assert_true(rms1 > 1000.0 * plain_rms);                 /* measurably larger than without flooding */
    assert_true(max_error(f1, x, slots) < 6.0 * info.slot_error); /* still the plaintext, within the error */
    assert_true(info.slot_error < 1e-3);

    /* fresh noise every time */
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, NULL, sys, pt, NULL), CDL_OK);
    assert_int_equal(cdl_ckks_decode(ctx, pt, f2, slots), CDL_OK);
    assert_true(memcmp(f1, f2, slots * sizeof *f1) != 0);
    assert_true(max_error(f1, f2, slots) > 0.1 * info.slot_error);

    /* the generator must not be a plain seeded one */
    uint8_t seed[CDL_RNG_SEED_BYTES] = {9};
    cdl_rng *seeded = NULL, *opt_in = NULL;
    assert_int_equal(cdl_rng_new_seeded(seed, &seeded), CDL_OK);
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, NULL, seeded, pt, NULL), CDL_ERR_INSECURE);
    assert_non_null(strstr(cdl_last_error(), "cdl_rng_new_system"));
    assert_int_equal(cdl_rng_new_seeded_insecure(seed, &opt_in), CDL_OK);
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, NULL, opt_in, pt, NULL), CDL_OK);

    /* a public noise bound is used as given; more bits and queries, more sigma */
    cdl_ckks_flood_options o = {30, 64.0, 20.0};
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, &o, sys, pt, &info), CDL_OK);
    assert_true(info.noise_log2 == 20.0 && info.queries == 64.0);
    assert_true(fabs(info.sigma_log2 - (15.0 + 0.5 * log2(12.0 * 64.0) + 20.0)) < 1e-9);
    assert_int_equal(cdl_ckks_decode(ctx, pt, f2, slots), CDL_OK);
    const double rms2 = rms_error(f2, x, slots);
    assert_true(rms2 > 0.8 * info.slot_error && rms2 < 1.2 * info.slot_error);

    /* refusals */
    cdl_ckks_flood_options bad = {10, 0.0, 0.0};
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, &bad, sys, pt, NULL), CDL_ERR_INVALID_ARGUMENT);
    bad.security_bits = 40;
    bad.queries = 0.5;
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, &bad, sys, pt, NULL), CDL_ERR_INVALID_ARGUMENT);
    bad.queries = 1.0;
    bad.noise_log2 = 40.0; /* sigma 2^61.8: beyond the sampler */
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, &bad, sys, pt, NULL), CDL_ERR_UNSUPPORTED);
    bad.noise_log2 = 20.0;
    bad.security_bits = 80; /* sigma 2^61.8 again */
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, &bad, sys, pt, NULL), CDL_ERR_UNSUPPORTED);
    bad.security_bits = 40;
    bad.noise_log2 = 22.0;
    bad.queries = 1e3; /* sigma 2^48.8 */
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, &bad, sys, pt, NULL), CDL_ERR_UNSUPPORTED);
    bad.queries = 1.0; /* sigma 2^43.8: up to 2^46.9, below q_0 / 8 ~ 2^57 */
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, &bad, sys, pt, NULL), CDL_OK);
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, &bad, NULL, pt, NULL), CDL_ERR_INVALID_ARGUMENT);

    cdl_rng_free(seeded);
    cdl_rng_free(opt_in);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_plaintext_free(pt);
    free(x), free(plain), free(im), free(f1), free(f2);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(sys);
    cdl_ckks_context_free(ctx);
}

/* A flood larger than the output modulus can hold: q_0 of 35 bits, noise
 * bound 2^10 (the rescaling floor at N = 2^12), sigma 2^31.8: up to 2^34.9,
 * more than q_0 / 8. */
static void test_flood_does_not_fit(void **state)
{
    (void)state;
    cdl_ckks_param_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.log_n = 12;
    spec.q_count = 1;
    spec.q_bits[0] = 35;
    spec.p_count = 1;
    spec.p_bits[0] = 35;
    spec.scale = ldexp(1.0, 25);
    cdl_ckks_context *ctx = NULL;
    cdl_rng *sys = NULL;
    cdl_ckks_secret_key *sk = NULL;
    assert_int_equal(cdl_ckks_context_new(&spec, &ctx), CDL_OK); /* 70 <= 109: secure */
    assert_int_equal(cdl_rng_new_system(&sys), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(ctx, sys, &sk), CDL_OK);
    double v[4] = {0.5, -0.25, 0.125, 1.0};
    cdl_ckks_plaintext *pt = NULL;
    cdl_ckks_ciphertext *ct = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &ct), CDL_OK);
    assert_int_equal(cdl_ckks_encode(ctx, v, 4, spec.scale, 0, pt), CDL_OK);
    assert_int_equal(cdl_ckks_encrypt_sk(ctx, sk, pt, sys, ct), CDL_OK);
    assert_int_equal(cdl_ckks_decrypt_flooded(ctx, sk, ct, NULL, sys, pt, NULL), CDL_ERR_PARAMETERS);
    assert_non_null(strstr(cdl_last_error(), "modulus"));
    /* nothing unflooded is left behind */
    for (size_t i = 0; i < (size_t)cdl_ckks_slots(ctx) * 2; i++)
        assert_true(pt->data[i] == 0);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_plaintext_free(pt);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(sys);
    cdl_ckks_context_free(ctx);
}

/* 16 inputs -> dense 8 -> x^2 -> dense 4 logits. */
static double w1[16 * 8], b1[8], w2[8 * 4], b2[4];

static void build_net(test_graph *t)
{
    cdl_rng *r = tg_seeded_rng(5);
    double *all[] = {w1, b1, w2, b2};
    size_t len[] = {16 * 8, 8, 8 * 4, 4};
    for (size_t a = 0; a < 4; a++)
        for (size_t i = 0; i < len[a]; i++)
            all[a][i] = ((double)(cdl_rng_u64(r) >> 11) * 0x1p-53 - 0.5) * 1.5;
    cdl_rng_free(r);
    tg_init(t, tg_shape1(16));
    cdl_nn_node *nd = tg_add(t, CDL_NN_DENSE, "fc1", tg_shape1(8));
    nd->weight = w1;
    nd->n_weight = 16 * 8;
    nd->bias = b1;
    nd->n_bias = 8;
    tg_add(t, CDL_NN_SQUARE, "square", tg_shape1(8));
    nd = tg_add(t, CDL_NN_DENSE, "fc2", tg_shape1(4));
    nd->weight = w2;
    nd->n_weight = 8 * 4;
    nd->bias = b2;
    nd->n_bias = 4;
    cdl_nn_analyze(&t->g);
}

static size_t argmax(const double *v, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[b])
            b = i;
    return b;
}

static void test_he_flooded_logits(void **state)
{
    (void)state;
    test_graph t;
    build_net(&t);
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 12;
    opt.scale_bits = 50;
    opt.output_bits = 8;
    opt.allow_insecure = 1;
    cdl_he_plan *plan = NULL;
    assert_int_equal(cdl_he_plan_new(&t.g, &opt, &plan), CDL_OK);
    const size_t n = 200;
    tg_he_session s;
    tg_he_open(plan, &t.g, n, &s);
    const size_t nout = s.nout, total = n * nout;
    cdl_he_batch *out = NULL;
    assert_int_equal(cdl_he_evaluate_keys(plan, s.ctx, s.rlk, NULL, s.enc, NULL, NULL, &out), CDL_OK);
    double *fl = malloc(total * sizeof *fl), *fl2 = malloc(total * sizeof *fl2);
    assert_non_null(fl);
    assert_non_null(fl2);
    cdl_rng *sys = NULL;
    assert_int_equal(cdl_rng_new_system(&sys), CDL_OK);
    cdl_ckks_flood_info info;
    assert_int_equal(cdl_he_decrypt_logits_flooded(plan, s.ctx, s.sk, out, NULL, sys, fl, &info), CDL_OK);
    assert_true(info.queries == (double)cdl_he_batch_count(out)); /* default: the ciphertexts decrypted */
    const double plain_err = tg_he_max_error(&s), flood_rms = rms_error(fl, s.ref, total);
    printf("he flood: plain max error %.3g, flooded rms %.3g (predicted %.3g), max %.3g, sigma 2^%.1f\n", plain_err,
           flood_rms, info.slot_error, max_error(fl, s.ref, total), info.sigma_log2);
    assert_true(info.slot_error < 0.01);
    assert_true(max_error(fl, s.ref, total) < 6.0 * info.slot_error);
    /* (slot_error is the largest over the ciphertexts, whose noise bounds may differ by a power of two) */
    assert_true(flood_rms > 0.4 * info.slot_error && flood_rms < 1.2 * info.slot_error);
    assert_true(flood_rms > 10.0 * plain_err);
    size_t same = 0, margin_ok = 0;
    for (size_t j = 0; j < n; j++) {
        const double *r = s.ref + j * nout;
        size_t best = argmax(r, nout), second = best == 0 ? 1 : 0;
        for (size_t k = 0; k < nout; k++)
            if (k != best && r[k] > r[second])
                second = k;
        if (r[best] - r[second] < 12.0 * info.slot_error)
            continue; /* a near tie: flooding may legitimately flip it */
        margin_ok++;
        same += argmax(fl + j * nout, nout) == best;
    }
    assert_true(margin_ok > n / 2);
    assert_int_equal(same, margin_ok);
    /* a plain seeded generator is refused */
    uint8_t seed[CDL_RNG_SEED_BYTES] = {77};
    cdl_rng *seeded = NULL, *a = NULL, *b = NULL;
    assert_int_equal(cdl_rng_new_seeded(seed, &seeded), CDL_OK);
    assert_int_equal(cdl_he_decrypt_logits_flooded(plan, s.ctx, s.sk, out, NULL, seeded, fl2, NULL), CDL_ERR_INSECURE);
    /* the same opt-in seed gives the same logits for any thread count */
    assert_int_equal(cdl_rng_new_seeded_insecure(seed, &a), CDL_OK);
    assert_int_equal(cdl_rng_new_seeded_insecure(seed, &b), CDL_OK);
    const int saved = cdl_get_threads();
    cdl_set_threads(1);
    assert_int_equal(cdl_he_decrypt_logits_flooded(plan, s.ctx, s.sk, out, NULL, a, fl, NULL), CDL_OK);
    cdl_set_threads(2);
    assert_int_equal(cdl_he_decrypt_logits_flooded(plan, s.ctx, s.sk, out, NULL, b, fl2, NULL), CDL_OK);
    cdl_set_threads(saved);
    assert_memory_equal(fl, fl2, total * sizeof *fl);
    cdl_rng_free(a);
    cdl_rng_free(b);
    cdl_rng_free(seeded);
    cdl_rng_free(sys);
    free(fl);
    free(fl2);
    cdl_he_batch_free(out);
    tg_he_close(&s);
    cdl_he_plan_free(plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ckks_flooded_decrypt),
        cmocka_unit_test(test_flood_does_not_fit),
        cmocka_unit_test(test_he_flooded_logits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
