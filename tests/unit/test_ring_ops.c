/*
 * test_ring_ops.c: the ring layer additions against independent references.
 *  - RNS limb-wise ops vs 128-bit arithmetic, and identical for 1 and 2 threads;
 *  - fast base conversion vs exact CRT with __int128 (two ~31-bit source
 *    primes): the result must be x_c + k*Q with x_c the centered
 *    representative and |k| <= |A|/2, as documented; exact for one prime;
 *  - centered lift + multiply by q_last^-1 == round(x / q_last) exactly;
 *  - automorphism: NTT(aut_coeff(a)) == aut_ntt(NTT(a)), and aut_coeff vs the
 *    definition (evaluate X^(i g) with X^N = -1 by hand);
 *  - samplers: range and moments (mean, variance) of each distribution, exact
 *    Hamming weight.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <omp.h>

#include "core/memory.h"
#include "cryptodl/common.h"
#include "ring/automorphism.h"
#include "ring/basis_extension.h"
#include "ring/ntt.h"
#include "ring/primes.h"
#include "ring/rns_poly.h"
#include "ring/sampler.h"

static cdl_rng *make_rng(uint8_t tag)
{
    uint8_t seed[CDL_RNG_SEED_BYTES] = {tag, 7};
    cdl_rng *rng = NULL;
    assert_int_equal(cdl_rng_new_seeded(seed, &rng), CDL_OK);
    return rng;
}

static void test_rns_ops(void **state)
{
    (void)state;
    const size_t n = 1024;
    const int limbs = 3;
    uint64_t primes[3];
    assert_int_equal(cdl_generate_ntt_primes(50, 3, 2 * n, NULL, 0, primes), CDL_OK);
    cdl_modulus mods[3];
    for (int i = 0; i < limbs; i++)
        cdl_modulus_init(&mods[i], primes[i]);
    cdl_rng *rng = make_rng(1);
    uint64_t *a = cdl_alloc_array(n * limbs, 8), *b = cdl_alloc_array(n * limbs, 8);
    uint64_t *o1 = cdl_alloc_array(n * limbs, 8), *o2 = cdl_alloc_array(n * limbs, 8);
    for (int i = 0; i < limbs; i++) {
        cdl_sample_uniform(rng, primes[i], a + i * n, n);
        cdl_sample_uniform(rng, primes[i], b + i * n, n);
    }
    uint64_t c[3] = {5, primes[1] - 1, 123456789};
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        uint64_t *o = threads == 1 ? o1 : o2;
        memcpy(o, a, n * limbs * 8);
        cdl_rns_mul_add(o, a, b, n, mods, limbs);
        cdl_rns_mul_scalar(o, o, c, n, mods, limbs);
        cdl_rns_sub(o, o, b, n, mods, limbs);
        for (int i = 0; i < limbs; i++)
            for (size_t k = 0; k < n; k++) {
                cdl_u128 q = primes[i], x = a[i * n + k], y = b[i * n + k];
                uint64_t want = (uint64_t)(((x + x * y % q) % q * c[i] % q + q - y) % q);
                assert_true(o[i * n + k] == want);
            }
    }
    assert_memory_equal(o1, o2, n * limbs * 8);
    cdl_rns_neg(o1, a, n, mods, limbs);
    cdl_rns_add(o1, o1, a, n, mods, limbs);
    for (size_t k = 0; k < n * limbs; k++)
        assert_true(o1[k] == 0);
    cdl_free(a), cdl_free(b), cdl_free(o1), cdl_free(o2);
    cdl_rng_free(rng);
}

static void test_wide_reduction(void **state)
{
    (void)state;
    cdl_rng *rng = make_rng(5);
    const int bits[] = {20, 30, 40, 50, 55, 60, 61};
    for (size_t b = 0; b < sizeof bits / sizeof bits[0]; b++) {
        uint64_t q;
        assert_int_equal(cdl_generate_ntt_primes(bits[b], 1, 2048, NULL, 0, &q), CDL_OK);
        cdl_modulus m;
        cdl_modulus_init(&m, q);
        int lazy = cdl_lazy_products(&m);
        assert_true(lazy >= 16);
        for (int i = 0; i < 20000; i++) {
            cdl_u128 x = ((cdl_u128)cdl_rng_u64(rng) << 64) | cdl_rng_u64(rng);
            x >>= 2 + (i % 40); /* below 2^126, many sizes */
            if (i == 0)
                x = ((cdl_u128)1 << 126) - 1;
            assert_true(cdl_reduce_u126(x, &m) == (uint64_t)(x % q));
        }
        /* the documented lazy count of worst-case products */
        cdl_u128 s = 0;
        for (int k = 0; k < lazy; k++)
            s += (cdl_u128)(q - 1) * (q - 1);
        assert_true(s >> 126 == 0);
        assert_true(cdl_reduce_u126(s, &m) == (uint64_t)(s % q));
    }
    cdl_rng_free(rng);
}

static void test_base_conversion_vs_crt(void **state)
{
    (void)state;
    const size_t n = 256;
    uint64_t qs[2], ps[3];
    assert_int_equal(cdl_generate_ntt_primes(31, 2, 2 * n, NULL, 0, qs), CDL_OK);
    assert_int_equal(cdl_generate_ntt_primes(40, 3, 2 * n, NULL, 0, ps), CDL_OK);
    cdl_modulus mq[2], mp[3];
    for (int i = 0; i < 2; i++)
        cdl_modulus_init(&mq[i], qs[i]);
    for (int i = 0; i < 3; i++)
        cdl_modulus_init(&mp[i], ps[i]);
    cdl_base_converter bc;
    assert_int_equal(cdl_base_converter_init(&bc, mq, 2, mp, 3), CDL_OK);
    cdl_rng *rng = make_rng(2);
    cdl_u128 Q = (cdl_u128)qs[0] * qs[1];
    uint64_t x[2 * 256], y[2 * 256], out[3 * 256];
    cdl_u128 xs[256];
    for (size_t k = 0; k < n; k++) {
        cdl_u128 v = (((cdl_u128)cdl_rng_u64(rng) << 64) | cdl_rng_u64(rng)) % Q;
        if (k == 0) v = 0;
        if (k == 1) v = Q - 1;
        xs[k] = v;
        x[k] = (uint64_t)(v % qs[0]);
        x[n + k] = (uint64_t)(v % qs[1]);
    }
    cdl_base_convert(&bc, x, y, out, n);
    for (size_t k = 0; k < n; k++) {
        /* centered representative of x, then x_c + k*Q with |k| <= |A|/2 = 1 */
        __int128 xc = xs[k] > Q / 2 ? (__int128)xs[k] - (__int128)Q : (__int128)xs[k];
        int found = 0;
        for (int kk = -1; kk <= 1 && !found; kk++) {
            __int128 v = xc + (__int128)kk * (__int128)Q;
            int ok = 1;
            for (int j = 0; j < 3; j++) {
                __int128 r = v % (__int128)ps[j];
                if (r < 0)
                    r += ps[j];
                ok &= out[j * n + k] == (uint64_t)r;
            }
            found = ok;
        }
        assert_true(found);
    }
    /* five source primes (more than one lazy group of four): |k| <= 5/2 */
    {
        uint64_t q5[5];
        cdl_modulus m5[5];
        assert_int_equal(cdl_generate_ntt_primes(22, 5, 2 * n, NULL, 0, q5), CDL_OK);
        for (int i = 0; i < 5; i++)
            cdl_modulus_init(&m5[i], q5[i]);
        cdl_base_converter b5;
        assert_int_equal(cdl_base_converter_init(&b5, m5, 5, mp, 3), CDL_OK);
        __int128 Q5 = 1;
        for (int i = 0; i < 5; i++)
            Q5 *= (__int128)q5[i];
        uint64_t *x5 = cdl_alloc_array(5 * n, 8), *y5 = cdl_alloc_array(5 * n, 8), *o5 = cdl_alloc_array(3 * n, 8);
        __int128 *v5 = cdl_alloc_array(n, sizeof(__int128));
        for (size_t k = 0; k < n; k++) {
            __int128 val = (__int128)((((cdl_u128)cdl_rng_u64(rng) << 64) | cdl_rng_u64(rng)) % (cdl_u128)Q5);
            if (k == 0) val = Q5 - 1;
            v5[k] = val;
            for (int i = 0; i < 5; i++)
                x5[i * n + k] = (uint64_t)(val % (__int128)q5[i]);
        }
        cdl_base_convert(&b5, x5, y5, o5, n);
        for (size_t k = 0; k < n; k++) {
            __int128 xc = v5[k] > Q5 / 2 ? v5[k] - Q5 : v5[k];
            int found = 0;
            for (int kk = -3; kk <= 3 && !found; kk++) {
                __int128 w = xc + (__int128)kk * Q5;
                int ok = 1;
                for (int j = 0; j < 3; j++) {
                    __int128 r = w % (__int128)ps[j];
                    if (r < 0)
                        r += ps[j];
                    ok &= o5[j * n + k] == (uint64_t)r;
                }
                found = ok;
            }
            assert_true(found);
        }
        cdl_free(x5), cdl_free(y5), cdl_free(o5), cdl_free(v5);
        cdl_base_converter_release(&b5);
    }
    /* one source prime: the exact centered lift */
    cdl_base_converter one;
    assert_int_equal(cdl_base_converter_init(&one, mq, 1, mp, 3), CDL_OK);
    cdl_base_convert(&one, x, y, out, n);
    for (size_t k = 0; k < n; k++) {
        int64_t xc = x[k] > qs[0] / 2 ? (int64_t)x[k] - (int64_t)qs[0] : (int64_t)x[k];
        for (int j = 0; j < 3; j++) {
            int64_t r = xc % (int64_t)ps[j];
            assert_true(out[j * n + k] == (uint64_t)(r < 0 ? r + (int64_t)ps[j] : r));
        }
    }
    cdl_base_converter_release(&one);
    cdl_base_converter_release(&bc);

    /* Exact rescale by the last prime with rounding: x mod q0*q1 -> round(x/q1) mod q0 */
    uint64_t lift[256];
    cdl_lift_centered(x + n, qs[1], lift, n, &mq[0]);
    uint64_t inv = cdl_mod_inv(qs[1] % qs[0], &mq[0]);
    for (size_t k = 0; k < n; k++) {
        uint64_t r = cdl_mod_mul(cdl_mod_sub(x[k], lift[k], qs[0]), inv, &mq[0]);
        /* reference: centered x in (-Q/2, Q/2], rounded division */
        cdl_u128 v = xs[k];
        int neg = v > Q / 2;
        cdl_u128 mag = neg ? Q - v : v;
        cdl_u128 qt = (mag + qs[1] / 2) / qs[1]; /* round half down/up ties: q1 odd, no ties */
        uint64_t want = (uint64_t)(qt % qs[0]);
        if (neg)
            want = want ? qs[0] - want : 0;
        assert_true(r == want);
    }
    cdl_rng_free(rng);
}

/* cdl_lift_centered on every path (q_last <= q, q_last <= 2q, q_last > 2q
 * with the double-precision quotient), against 128-bit arithmetic. */
static void test_lift_centered_paths(void **state)
{
    (void)state;
    cdl_rng *rng = make_rng(6);
    const int pairs[][2] = {{30, 40}, {40, 40}, {41, 40}, {60, 40}, {61, 20}, {61, 60}, {58, 40}, {50, 21}, {61, 41}};
    uint64_t v[1024], out[1024];
    for (size_t pi = 0; pi < sizeof pairs / sizeof pairs[0]; pi++) {
        uint64_t ql, q;
        assert_int_equal(cdl_generate_ntt_primes(pairs[pi][0], 1, 2048, NULL, 0, &ql), CDL_OK);
        uint64_t avoid = ql;
        assert_int_equal(cdl_generate_ntt_primes(pairs[pi][1], 1, 2048, &avoid, 1, &q), CDL_OK);
        cdl_modulus m;
        cdl_modulus_init(&m, q);
        cdl_sample_uniform(rng, ql, v, 1024);
        v[0] = 0, v[1] = ql - 1, v[2] = ql / 2, v[3] = ql / 2 + 1, v[4] = q - 1, v[5] = q % ql, v[6] = 2 * q % ql;
        cdl_lift_centered(v, ql, out, 1024, &m);
        for (int k = 0; k < 1024; k++) {
            __int128 c = v[k] > ql / 2 ? (__int128)v[k] - (__int128)ql : (__int128)v[k];
            __int128 r = c % (__int128)q;
            if (r < 0)
                r += q;
            assert_true(out[k] == (uint64_t)r);
        }
    }
    cdl_rng_free(rng);
}

static void test_automorphism(void **state)
{
    (void)state;
    const size_t n = 512;
    uint64_t q;
    assert_int_equal(cdl_generate_ntt_primes(45, 1, 2 * n, NULL, 0, &q), CDL_OK);
    cdl_ntt_table *t = NULL;
    assert_int_equal(cdl_ntt_table_new(n, q, &t), CDL_OK);
    cdl_rng *rng = make_rng(3);
    uint64_t a[512], b[512], c[512], d[512];
    uint32_t idx[512];
    const uint64_t gs[] = {5, 25, 2 * 512 - 1, 3, 1023 - 4, 125};
    for (size_t gi = 0; gi < sizeof gs / sizeof gs[0]; gi++) {
        uint64_t g = gs[gi];
        cdl_sample_uniform(rng, q, a, n);
        cdl_automorphism_coeff(a, b, n, g, q);
        /* definition */
        memset(c, 0, sizeof c);
        for (size_t i = 0; i < n; i++) {
            uint64_t e = (i * g) % (2 * n);
            if (e < n)
                c[e] = (c[e] + a[i]) % q;
            else
                c[e - n] = (c[e - n] + q - a[i]) % q;
        }
        assert_memory_equal(b, c, sizeof b);
        cdl_ntt_forward(t, b);
        memcpy(c, a, sizeof c);
        cdl_ntt_forward(t, c);
        cdl_automorphism_ntt_index(n, g, idx);
        cdl_automorphism_ntt_apply(c, d, n, idx);
        assert_memory_equal(b, d, sizeof b);
    }
    cdl_ntt_table_free(t);
    cdl_rng_free(rng);
}

static void moments(const int8_t *v, size_t n, double *mean, double *var)
{
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i], s2 += (double)v[i] * v[i];
    *mean = s / n;
    *var = s2 / n - *mean * *mean;
}

static void test_samplers(void **state)
{
    (void)state;
    const size_t n = 1 << 16;
    cdl_rng *rng = make_rng(4);
    int8_t *v = cdl_alloc_array(n, 1);
    double mean, var;

    cdl_sample_cbd(rng, v, n);
    for (size_t i = 0; i < n; i++)
        assert_true(v[i] >= -21 && v[i] <= 21);
    moments(v, n, &mean, &var);
    print_message("cbd: mean %.4f var %.4f (want 0, 10.5)\n", mean, var);
    assert_true(fabs(mean) < 0.06);          /* sd of the mean: sqrt(10.5/65536) = 0.0127 */
    assert_true(fabs(var - 10.5) < 0.35);    /* sd of the variance ~ 0.058 */

    cdl_sample_ternary(rng, v, n);
    size_t cnt[3] = {0};
    for (size_t i = 0; i < n; i++) {
        assert_true(v[i] >= -1 && v[i] <= 1);
        cnt[v[i] + 1]++;
    }
    for (int j = 0; j < 3; j++)
        assert_true(fabs((double)cnt[j] / n - 1.0 / 3) < 0.01);

    const size_t hn = 4096, h = 64;
    size_t pos_hist[8] = {0};
    for (int rep = 0; rep < 64; rep++) {
        assert_int_equal(cdl_sample_ternary_hw(rng, h, v, hn), CDL_OK);
        size_t nz = 0, plus = 0;
        for (size_t i = 0; i < hn; i++) {
            assert_true(v[i] >= -1 && v[i] <= 1);
            nz += v[i] != 0;
            plus += v[i] == 1;
            if (v[i])
                pos_hist[i * 8 / hn]++;
        }
        assert_int_equal(nz, h);
        assert_true(plus > 10 && plus < 54);
    }
    /* positions spread over the whole range (64*64 = 4096 nonzeros, 512 per eighth) */
    for (int j = 0; j < 8; j++)
        assert_true(pos_hist[j] > 400 && pos_hist[j] < 624);
    assert_int_not_equal(cdl_sample_ternary_hw(rng, 0, v, hn), CDL_OK);

    uint64_t q = (1ull << 40) + 12345; /* any modulus works for uniform */
    uint64_t *u = cdl_alloc_array(n, 8);
    cdl_sample_uniform(rng, q, u, n);
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(u[i] < q);
        s += (double)u[i] / (double)q;
    }
    assert_true(fabs(s / n - 0.5) < 0.01); /* sd 0.0011 */
    cdl_free(u);
    cdl_free(v);
    cdl_rng_free(rng);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rns_ops),
        cmocka_unit_test(test_wide_reduction),
        cmocka_unit_test(test_base_conversion_vs_crt),
        cmocka_unit_test(test_lift_centered_paths),
        cmocka_unit_test(test_automorphism),
        cmocka_unit_test(test_samplers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
