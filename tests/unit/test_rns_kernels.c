/*
 * test_rns_kernels.c: the AVX-512 RNS kernels (src/ring/rns_avx512.c) against
 * the portable loops they replace, bit for bit.
 *  - base conversion (both steps) for mixes of 20..61-bit source and target
 *    primes, which exercise both Shoup flavours (IFMA52 below 2^50, F/DQ
 *    above), with the edge residues 0, q-1, floor(q/2), floor(q/2)+1;
 *  - the ModDown finishing step, the IFMA key-switching inner product, tensor
 *    product, multiply-add and plain product against 128-bit arithmetic;
 *  - whole CKKS operations (mul + relinearize, mul_plain on size-2 and size-3
 *    ciphertexts (in place), rescale, rotate, public-key
 *    encryption, decrypt) under CDL_ISA portable vs AVX-512: identical
 *    ciphertexts. The portable results are themselves checked for precision
 *    by test_ckks_ops.c.
 * Skipped when the CPU has no AVX-512 IFMA (then only the portable code runs).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_ckks_util.h"

#include "ring/basis_extension.h"
#include "ring/ntt.h"
#include "ring/primes.h"
#include "ring/rns_kernels.h"
#include "ring/sampler.h"

static int vector_available(size_t n)
{
    cdl_isa saved = cdl_isa_active();
    int ok = cdl_isa_set(CDL_ISA_AVX512) == CDL_OK && cdl_rns_vector_enabled(n);
    assert_int_equal(cdl_isa_set(saved), CDL_OK);
    return ok;
}

static void fill(cdl_rng *rng, uint64_t q, uint64_t *x, size_t n)
{
    cdl_sample_uniform(rng, q, x, n);
    x[0] = 0;
    x[1] = q - 1;
    x[2] = q >> 1;
    x[3] = (q >> 1) + 1;
    x[4] = 1;
}

static void check_conversion(const int *from_bits, int fc, const int *to_bits, int tc, uint8_t tag)
{
    const size_t n = 256;
    uint64_t primes[16];
    int bits[16];
    cdl_modulus mods[16];
    int total = fc + tc;
    memcpy(bits, from_bits, (size_t)fc * sizeof(int));
    memcpy(bits + fc, to_bits, (size_t)tc * sizeof(int));
    for (int i = 0; i < total; i++) {
        assert_int_equal(cdl_generate_ntt_primes(bits[i], 1, 2 * n, primes, (size_t)i, primes + i), CDL_OK);
        cdl_modulus_init(&mods[i], primes[i]);
    }
    cdl_base_converter bc;
    assert_int_equal(cdl_base_converter_init(&bc, mods, fc, mods + fc, tc), CDL_OK);
    cdl_rng *rng = t_rng(tag);
    uint64_t *x = cdl_alloc_array((size_t)fc * n, 8);
    uint64_t *y[2] = {cdl_alloc_array((size_t)fc * n, 8), cdl_alloc_array((size_t)fc * n, 8)};
    uint64_t *out[2] = {cdl_alloc_array((size_t)tc * n, 8), cdl_alloc_array((size_t)tc * n, 8)};
    assert_non_null(x);
    for (int i = 0; i < fc; i++)
        fill(rng, primes[i], x + (size_t)i * n, n);
    cdl_isa saved = cdl_isa_active();
    const cdl_isa isas[2] = {CDL_ISA_PORTABLE, CDL_ISA_AVX512};
    for (int r = 0; r < 2; r++) {
        assert_int_equal(cdl_isa_set(isas[r]), CDL_OK);
        assert_int_equal(cdl_rns_vector_enabled(n), r);
        cdl_base_convert(&bc, x, y[r], out[r], n);
    }
    assert_int_equal(cdl_isa_set(saved), CDL_OK);
    assert_memory_equal(y[0], y[1], (size_t)fc * n * 8);
    for (int j = 0; j < tc; j++) {
        for (size_t k = 0; k < n; k++)
            assert_true(out[0][(size_t)j * n + k] < primes[fc + j]);
        assert_memory_equal(out[0] + (size_t)j * n, out[1] + (size_t)j * n, n * 8);
    }
    /* the centering edges (y = floor(q/2), floor(q/2)+1, q-1) directly: feed x as y */
    for (int r = 0; r < 2; r++) {
        assert_int_equal(cdl_isa_set(isas[r]), CDL_OK);
        for (int j = 0; j < tc; j++)
            cdl_base_convert_limb(&bc, x, j, out[r] + (size_t)j * n, n);
    }
    assert_int_equal(cdl_isa_set(saved), CDL_OK);
    assert_memory_equal(out[0], out[1], (size_t)tc * n * 8);
    for (int r = 0; r < 2; r++) {
        cdl_free(y[r]);
        cdl_free(out[r]);
    }
    cdl_free(x);
    cdl_rng_free(rng);
    cdl_base_converter_release(&bc);
}

static void test_base_conversion_kernels(void **state)
{
    (void)state;
    if (!vector_available(256))
        skip();
    const int all[] = {61, 60, 58, 51, 50, 49, 47, 40, 30, 20};
    const int digits[][4] = {{60, 40, 40}, {40, 40, 40}, {47, 47, 47}, {61, 20}, {50, 49}, {58, 51, 30, 40}};
    const int counts[] = {3, 3, 3, 2, 2, 4};
    for (int d = 0; d < 6; d++) {
        /* targets: every size, without repeating the source primes' sizes
         * (cdl_generate_ntt_primes avoids equal primes anyway) */
        check_conversion(digits[d], counts[d], all, 10, (uint8_t)(10 + d));
    }
    const int one[] = {40};
    check_conversion(one, 1, all, 10, 30);
}

static void test_moddown_finish_kernel(void **state)
{
    (void)state;
    const size_t n = 64;
    if (!vector_available(n))
        skip();
    const int bits[] = {60, 51, 50, 47, 40, 20};
    cdl_rng *rng = t_rng(40);
    uint64_t a[64], b[64], o[64];
    for (int s = 0; s < 6; s++) {
        uint64_t q;
        assert_int_equal(cdl_generate_ntt_primes(bits[s], 1, 2 * n, NULL, 0, &q), CDL_OK);
        fill(rng, q, a, n);
        fill(rng, q, b, n);
        b[5] = q - 1, a[5] = 0; /* a - b = -(q-1): the largest lazy input */
        uint64_t w = cdl_rng_u64(rng) % q;
        cdl_sub_mul_scalar_avx512(o, NULL, a, b, w, cdl_shoup_precompute(w, q), q, n);
        for (size_t k = 0; k < n; k++) {
            uint64_t d = a[k] >= b[k] ? a[k] - b[k] : a[k] + q - b[k];
            assert_true(o[k] == (uint64_t)((cdl_u128)d * w % q));
        }
        uint64_t c[64];
        fill(rng, q, c, n);
        memcpy(o, c, sizeof c);
        cdl_sub_mul_scalar_avx512(o, o, a, b, w, cdl_shoup_precompute(w, q), q, n); /* out = c in place */
        for (size_t k = 0; k < n; k++) {
            uint64_t d = a[k] >= b[k] ? a[k] - b[k] : a[k] + q - b[k];
            assert_true(o[k] == (uint64_t)(((cdl_u128)d * w + c[k]) % q));
        }
    }
    cdl_rng_free(rng);
}

/* The IFMA product kernels against 128-bit arithmetic, with the largest
 * residues (p - 1 everywhere) and the most digits the MAC kernel accepts. */
static void test_ifma_product_kernels(void **state)
{
    (void)state;
    const size_t n = 64;
    if (!vector_available(n))
        skip();
    const int bits[] = {49, 47, 40, 30, 20};
    enum { D = CDL_MAC_IFMA_MAX_DIGITS };
    cdl_rng *rng = t_rng(60);
    uint64_t *buf = cdl_alloc_array((3 * D + 8) * n, 8);
    uint32_t perm[64];
    for (size_t k = 0; k < n; k++)
        perm[k] = (uint32_t)((k * 37 + 5) % n);
    for (int s = 0; s < 5; s++) {
        uint64_t p;
        assert_int_equal(cdl_generate_ntt_primes(bits[s], 1, 2 * n, NULL, 0, &p), CDL_OK);
        assert_true(p < CDL_IFMA_PRIME_LIMIT);
        for (int extreme = 0; extreme < 2; extreme++) {
            for (size_t k = 0; k < (3 * D + 8) * n; k++)
                buf[k] = extreme ? p - 1 : cdl_rng_u64(rng) % p;
            const uint64_t *x[D], *k0[D], *k1[D];
            for (int d = 0; d < D; d++) {
                x[d] = buf + (size_t)d * n;
                k0[d] = buf + (size_t)(D + d) * n;
                k1[d] = buf + (size_t)(2 * D + d) * n;
            }
            uint64_t *o0 = buf + (size_t)(3 * D) * n, *o1 = o0 + n, *o2 = o1 + n, *o3 = o2 + n;
            for (int use_perm = 0; use_perm < 2; use_perm++) {
                cdl_mac_ifma(x, k0, k1, D, use_perm ? perm : NULL, p, o0, o1, n);
                for (size_t k = 0; k < n; k++) {
                    cdl_u128 s0 = 0, s1 = 0;
                    size_t kk = use_perm ? perm[k] : k;
                    for (int d = 0; d < D; d++) {
                        s0 += (cdl_u128)x[d][kk] * k0[d][k];
                        s1 += (cdl_u128)x[d][kk] * k1[d][k];
                    }
                    assert_true(o0[k] == (uint64_t)(s0 % p));
                    assert_true(o1[k] == (uint64_t)(s1 % p));
                }
            }
            cdl_tensor_ifma(x[0], x[1], x[2], x[3], o0, o1, o2, p, n);
            for (size_t k = 0; k < n; k++) {
                cdl_u128 a0 = x[0][k], a1 = x[1][k], b0 = x[2][k], b1 = x[3][k];
                assert_true(o0[k] == (uint64_t)(a0 * b0 % p));
                assert_true(o1[k] == (uint64_t)((a0 * b1 + a1 * b0) % p));
                assert_true(o2[k] == (uint64_t)(a1 * b1 % p));
            }
            cdl_mul_add_ifma(o3, x[4], x[5], x[6], p, n);
            for (size_t k = 0; k < n; k++)
                assert_true(o3[k] == (uint64_t)(((cdl_u128)x[5][k] * x[6][k] + x[4][k]) % p));
            cdl_mul_ifma(o3, x[7], x[8], p, n);
            for (size_t k = 0; k < n; k++)
                assert_true(o3[k] == (uint64_t)((cdl_u128)x[7][k] * x[8][k] % p));
        }
    }
    cdl_free(buf);
    cdl_rng_free(rng);
}

static void assert_ct_equal(const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b)
{
    assert_int_equal(a->level, b->level);
    assert_int_equal(a->size, b->size);
    assert_true(a->scale == b->scale);
    for (int k = 0; k < a->size; k++)
        assert_memory_equal(cdl_ct_poly(a, k, 0), cdl_ct_poly(b, k, 0), (size_t)(a->level + 1) * a->n * 8);
}

/* The same operations under both ISAs give the same ciphertexts. */
static void test_ckks_ops_portable_vs_avx512(void **state)
{
    (void)state;
    cdl_ckks_param_spec spec;
    t_spec(&spec, 11, 60, 5, 47, 2, 3); /* digits {60,40}, {40,40}, {40,40}: both flavours */
    tctx t;
    t_setup(&t, &spec, 50);
    if (!vector_available(t.ctx->n)) {
        t_teardown(&t);
        skip();
    }
    int steps[2] = {1, -3};
    cdl_ckks_galois_keys *gk = NULL;
    assert_int_equal(cdl_ckks_keygen_galois(t.ctx, t.sk, steps, 2, 1, t.rng, &gk), CDL_OK);
    double *re = malloc(t.slots * sizeof(double)), *im = malloc(t.slots * sizeof(double));
    t_random(t.rng, re, t.slots);
    t_random(t.rng, im, t.slots);
    cdl_ckks_ciphertext *ct = t_encrypt(&t, re, im, t.ctx->max_level, 1);
    cdl_ckks_plaintext *pt = NULL, *dec[2] = {NULL, NULL};
    assert_int_equal(cdl_ckks_plaintext_new(t.ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_encode_complex(t.ctx, re, im, t.slots, t.ctx->scale, t.ctx->max_level, pt), CDL_OK);
    enum { MUL, MULP, MULP3, RESCALE, ROT, CONJ, HOIST0, HOIST1, ENC, OUTS };
    cdl_ckks_ciphertext *out[2][OUTS];
    cdl_isa saved = cdl_isa_active();
    const cdl_isa isas[2] = {CDL_ISA_PORTABLE, CDL_ISA_AVX512};
    for (int r = 0; r < 2; r++) {
        assert_int_equal(cdl_isa_set(isas[r]), CDL_OK);
        for (int o = 0; o < OUTS; o++)
            assert_int_equal(cdl_ckks_ciphertext_new(t.ctx, &out[r][o]), CDL_OK);
        assert_int_equal(cdl_ckks_mul_relin(t.ctx, t.rlk, ct, ct, out[r][MUL]), CDL_OK);
        assert_int_equal(cdl_ckks_rescale(t.ctx, out[r][MUL], out[r][RESCALE]), CDL_OK);
        assert_int_equal(cdl_ckks_mul_plain(t.ctx, ct, pt, out[r][MULP]), CDL_OK);
        assert_int_equal(cdl_ckks_mul(t.ctx, ct, ct, out[r][MULP3]), CDL_OK);
        assert_int_equal(cdl_ckks_mul_plain(t.ctx, out[r][MULP3], pt, out[r][MULP3]), CDL_OK);
        assert_int_equal(cdl_ckks_rotate(t.ctx, gk, ct, 1, out[r][ROT]), CDL_OK);
        assert_int_equal(cdl_ckks_conjugate(t.ctx, gk, out[r][RESCALE], out[r][CONJ]), CDL_OK);
        assert_int_equal(cdl_ckks_rotate_hoisted(t.ctx, gk, ct, steps, 2, &out[r][HOIST0]), CDL_OK);
        cdl_rng *rng = t_rng(77); /* same randomness for both encryptions */
        assert_int_equal(cdl_ckks_encrypt_pk(t.ctx, t.pk, pt, rng, out[r][ENC]), CDL_OK);
        cdl_rng_free(rng);
        assert_int_equal(cdl_ckks_plaintext_new(t.ctx, &dec[r]), CDL_OK);
        assert_int_equal(cdl_ckks_decrypt(t.ctx, t.sk, out[r][ROT], dec[r]), CDL_OK);
    }
    assert_int_equal(cdl_isa_set(saved), CDL_OK);
    for (int o = 0; o < OUTS; o++)
        assert_ct_equal(out[0][o], out[1][o]);
    assert_memory_equal(dec[0]->data, dec[1]->data, (size_t)(dec[0]->level + 1) * t.ctx->n * 8);
    for (int r = 0; r < 2; r++) {
        for (int o = 0; o < OUTS; o++)
            cdl_ckks_ciphertext_free(out[r][o]);
        cdl_ckks_plaintext_free(dec[r]);
    }
    cdl_ckks_plaintext_free(pt);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_galois_keys_free(gk);
    free(re);
    free(im);
    t_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_conversion_kernels),
        cmocka_unit_test(test_moddown_finish_kernel),
        cmocka_unit_test(test_ifma_product_kernels),
        cmocka_unit_test(test_ckks_ops_portable_vs_avx512),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
