/*
 * test_ckks_encode.c: parameters and the encoder.
 *  - presets hit the HomomorphicEncryption.org limits exactly (sum of prime
 *    sizes), contexts refuse more than the 128-bit table with CDL_ERR_INSECURE;
 *  - encode against a naive O(N^2) evaluation of the canonical embedding:
 *    slot j of m(X) is m(zeta^(5^j)), zeta = exp(i pi / N);
 *  - decode(encode(z)) == z within 2^-30 at scale 2^40, and for huge
 *    coefficients (scale 2^70 on a 3-prime level: coefficients above 2^63);
 *  - values that cannot fit the level's modulus are refused;
 *  - the AVX-512 encoder kernels give the same plaintexts and decodings, bit
 *    for bit, as the portable loops (small, 2^51..2^52 and > 2^52
 *    coefficients).
 */
#include <complex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_ckks_util.h"

static void test_presets_and_security(void **state)
{
    (void)state;
    const int ns[] = {13, 14, 15};
    const int limits[] = {218, 438, 881};
    for (int i = 0; i < 3; i++) {
        cdl_ckks_param_spec s;
        assert_int_equal(cdl_ckks_preset(ns[i], &s), CDL_OK);
        int total = 0;
        for (int k = 0; k < s.q_count; k++)
            total += s.q_bits[k];
        for (int k = 0; k < s.p_count; k++)
            total += s.p_bits[k];
        assert_int_equal(total, limits[i]);
        assert_int_equal(cdl_ckks_max_log_qp(ns[i]), limits[i]);
        assert_int_equal(s.allow_insecure, 0);
        /* one more bit is refused */
        s.q_bits[1] += 1;
        cdl_ckks_context *ctx = NULL;
        assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_ERR_INSECURE);
        assert_null(ctx);
        assert_non_null(strstr(cdl_last_error(), "128-bit"));
    }
    assert_int_equal(cdl_ckks_max_log_qp(12), 109);
    assert_int_equal(cdl_ckks_max_log_qp(16), 1747); /* 2024 guidelines, ternary, classical */
    /* an insecure small ring without the override is refused */
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 50, 2, 50, 1, 0);
    s.allow_insecure = 0;
    cdl_ckks_context *ctx = NULL;
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_ERR_INSECURE);
    /* bad prime sizes */
    t_spec(&s, 11, 62, 2, 50, 1, 0);
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_ERR_PARAMETERS);
}

static void test_context_basics(void **state)
{
    (void)state;
    cdl_ckks_param_spec s;
    t_spec(&s, 10, 50, 3, 50, 2, 0);
    cdl_ckks_context *a = NULL, *b = NULL;
    assert_int_equal(cdl_ckks_context_new(&s, &a), CDL_OK);
    assert_int_equal(cdl_ckks_context_new(&s, &b), CDL_OK);
    assert_int_equal(cdl_ckks_max_level(a), 3);
    assert_int_equal(cdl_ckks_slots(a), 512);
    assert_memory_equal(cdl_ckks_param_hash(a), cdl_ckks_param_hash(b), 32);
    for (int i = 0; i < 4; i++) {
        uint64_t q = cdl_ckks_prime(a, i);
        assert_true(q % 2048 == 1);
        for (int j = 0; j < i; j++)
            assert_true(q != cdl_ckks_prime(a, j));
    }
    assert_int_equal(a->dnum, 2);
    assert_int_equal(a->alpha, 2);
    cdl_ckks_context_free(b);
    s.q_bits[2] = 41;
    assert_int_equal(cdl_ckks_context_new(&s, &b), CDL_OK);
    assert_memory_not_equal(cdl_ckks_param_hash(a), cdl_ckks_param_hash(b), 32);
    cdl_ckks_context_free(a);
    cdl_ckks_context_free(b);
}

/* Centered integer coefficients of a plaintext at level 0 (q0 large enough). */
static void pt_coeffs(const cdl_ckks_context *ctx, const cdl_ckks_plaintext *pt, double *out)
{
    size_t n = ctx->n;
    uint64_t *c = cdl_alloc_array(n, 8);
    memcpy(c, pt->data, n * 8);
    cdl_ntt_inverse(ctx->ntt[0], c);
    uint64_t q = ctx->primes[0];
    for (size_t k = 0; k < n; k++)
        out[k] = c[k] > q / 2 ? -(double)(q - c[k]) : (double)c[k];
    cdl_free(c);
}

static void test_encode_vs_naive_embedding(void **state)
{
    (void)state;
    cdl_ckks_param_spec s;
    t_spec(&s, 10, 60, 2, 50, 1, 0);
    s.scale = ldexp(1.0, 30);
    cdl_ckks_context *ctx = NULL;
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_OK);
    cdl_rng *rng = t_rng(11);
    size_t n = ctx->n, slots = ctx->slots;
    double *re = cdl_alloc_array(slots, 8), *im = cdl_alloc_array(slots, 8), *coef = cdl_alloc_array(n, 8);
    t_random(rng, re, slots);
    t_random(rng, im, slots);
    cdl_ckks_plaintext *pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_encode_complex(ctx, re, im, slots, s.scale, 0, pt), CDL_OK);
    pt_coeffs(ctx, pt, coef);
    /* naive embedding, in long double */
    double maxerr = 0;
    for (size_t j = 0; j < slots; j++) {
        uint64_t e = 1;
        for (size_t t = 0; t < j; t++)
            e = (e * 5) % (2 * n);
        long double complex acc = 0;
        for (size_t k = 0; k < n; k++) {
            uint64_t ex = (e * k) % (2 * n);
            long double ang = 3.14159265358979323846264338327950288L * (long double)ex / (long double)n;
            acc += (long double)coef[k] * (cosl(ang) + I * sinl(ang));
        }
        acc /= (long double)s.scale;
        double er = fabs((double)creall(acc) - re[j]), ei = fabs((double)cimagl(acc) - im[j]);
        maxerr = fmax(maxerr, fmax(er, ei));
    }
    print_message("naive embedding vs encoded values: %.1f bits\n", -log2(maxerr));
    /* rounding each coefficient costs at most 1/2 per coefficient: N/2 / 2^30 worst case, ~sqrt(N)/2^30 typically */
    assert_true(maxerr < ldexp(1.0, -18));
    /* and the fast decoder */
    double *dre = cdl_alloc_array(slots, 8), *dim = cdl_alloc_array(slots, 8);
    assert_int_equal(cdl_ckks_decode_complex(ctx, pt, dre, dim, slots), CDL_OK);
    double bits = t_bits(dre, dim, re, im, slots);
    print_message("decode(encode(z)) at scale 2^30: %.1f bits\n", bits);
    assert_true(bits > 20);
    cdl_free(re), cdl_free(im), cdl_free(coef), cdl_free(dre), cdl_free(dim);
    cdl_ckks_plaintext_free(pt);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);
}

static void test_round_trip_and_huge(void **state)
{
    (void)state;
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 60, 3, 60, 1, 0);
    cdl_ckks_context *ctx = NULL;
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_OK);
    cdl_rng *rng = t_rng(12);
    size_t slots = ctx->slots;
    double *re = cdl_alloc_array(slots, 8), *im = cdl_alloc_array(slots, 8);
    double *dre = cdl_alloc_array(slots, 8), *dim = cdl_alloc_array(slots, 8);
    t_random(rng, re, slots);
    t_random(rng, im, slots);
    for (size_t i = 0; i < slots; i++)
        re[i] *= 100;
    cdl_ckks_plaintext *pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(ctx, &pt), CDL_OK);
    for (int level = 0; level <= 3; level++) {
        assert_int_equal(cdl_ckks_encode_complex(ctx, re, im, slots, ldexp(1.0, 40), level, pt), CDL_OK);
        assert_int_equal(cdl_ckks_decode_complex(ctx, pt, dre, dim, slots), CDL_OK);
        double bits = t_bits(dre, dim, re, im, slots);
        print_message("round trip at level %d, scale 2^40: %.1f bits\n", level, bits);
        assert_true(bits > 28);
    }
    /* coefficients beyond 2^63: scale 2^75 on level 3 (60 + 3*40 = 180 bits) */
    assert_int_equal(cdl_ckks_encode_complex(ctx, re, im, slots, ldexp(1.0, 75), 3, pt), CDL_OK);
    assert_int_equal(cdl_ckks_decode_complex(ctx, pt, dre, dim, slots), CDL_OK);
    double bits = t_bits(dre, dim, re, im, slots);
    print_message("round trip with scale 2^75 (coefficients > 2^63): %.1f bits\n", bits);
    assert_true(bits > 40);
    /* does not fit level 0 (60 bits) */
    assert_int_equal(cdl_ckks_encode_complex(ctx, re, im, slots, ldexp(1.0, 75), 0, pt), CDL_ERR_INVALID_ARGUMENT);
    /* too many values */
    assert_int_equal(cdl_ckks_encode(ctx, re, slots + 1, ldexp(1.0, 40), 0, pt), CDL_ERR_INVALID_ARGUMENT);
    /* real-only API: fewer values, rest zero */
    assert_int_equal(cdl_ckks_encode(ctx, re, 10, ldexp(1.0, 40), 2, pt), CDL_OK);
    assert_int_equal(cdl_ckks_decode(ctx, pt, dre, slots), CDL_OK);
    for (size_t i = 0; i < slots; i++)
        assert_true(fabs(dre[i] - (i < 10 ? re[i] : 0)) < 1e-8);
    cdl_free(re), cdl_free(im), cdl_free(dre), cdl_free(dim);
    cdl_ckks_plaintext_free(pt);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);
}

/* Encode with the active kernels: a copy of the plaintext's residues and the decoding. */
static void encode_with(cdl_ckks_context *ctx, cdl_isa isa, const double *re, const double *im, double scale,
                        int level, uint64_t *residues, double *dre, double *dim)
{
    assert_int_equal(cdl_isa_set(isa), CDL_OK);
    cdl_ckks_plaintext *pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_encode_complex(ctx, re, im, ctx->slots, scale, level, pt), CDL_OK);
    memcpy(residues, pt->data, (size_t)(level + 1) * ctx->n * sizeof *residues);
    assert_int_equal(cdl_ckks_decode_complex(ctx, pt, dre, dim, ctx->slots), CDL_OK);
    cdl_ckks_plaintext_free(pt);
}

static void test_vector_kernels_match_portable(void **state)
{
    (void)state;
    if (!cdl_isa_supported(CDL_ISA_AVX512)) {
        print_message("AVX-512 is not available here: nothing to compare\n");
        return;
    }
    const cdl_isa before = cdl_isa_active();
    cdl_ckks_param_spec s;
    t_spec(&s, 12, 60, 3, 60, 1, 0);
    cdl_ckks_context *ctx = NULL;
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_OK);
    cdl_rng *rng = t_rng(31);
    const size_t slots = ctx->slots, words = 4 * ctx->n;
    double *re = cdl_alloc_array(slots, 8), *im = cdl_alloc_array(slots, 8);
    double *d[4];
    uint64_t *r0 = cdl_alloc_array(words, 8), *r1 = cdl_alloc_array(words, 8);
    for (int k = 0; k < 4; k++)
        d[k] = cdl_alloc_array(slots, 8);
    t_random(rng, re, slots);
    t_random(rng, im, slots);
    re[5] = 3000.0; /* one large value: some coefficients take the large-value paths */
    /* scales: coefficients well below 2^51; around 2^51..2^52; above 2^52 (exact paths) */
    const double scales[] = {ldexp(1.0, 30), ldexp(1.0, 41), ldexp(1.0, 45), ldexp(1.0, 60)};
    for (size_t i = 0; i < sizeof scales / sizeof scales[0]; i++) {
        encode_with(ctx, CDL_ISA_PORTABLE, re, im, scales[i], 3, r0, d[0], d[1]);
        encode_with(ctx, CDL_ISA_AVX512, re, im, scales[i], 3, r1, d[2], d[3]);
        assert_memory_equal(r0, r1, words * sizeof *r0);
        assert_memory_equal(d[0], d[2], slots * sizeof *d[0]);
        assert_memory_equal(d[1], d[3], slots * sizeof *d[1]);
    }
    assert_int_equal(cdl_isa_set(before), CDL_OK);
    for (int k = 0; k < 4; k++)
        cdl_free(d[k]);
    cdl_free(re), cdl_free(im), cdl_free(r0), cdl_free(r1);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets_and_security),
        cmocka_unit_test(test_context_basics),
        cmocka_unit_test(test_encode_vs_naive_embedding),
        cmocka_unit_test(test_round_trip_and_huge),
        cmocka_unit_test(test_vector_kernels_match_portable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
