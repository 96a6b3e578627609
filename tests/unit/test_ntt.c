/*
 * test_ntt.c: modular arithmetic against 128-bit division, prime generation
 * against trial division, and the NTT against schoolbook negacyclic
 * convolution (NTT(a) * NTT(b) pointwise, inverse NTT == a*b mod X^N+1).
 * Every available vector kernel must equal the portable one bit for bit,
 * including at the moduli where the kernels change strategy (2^50: IFMA52 vs
 * 64-bit Shoup; 2^61: the lazy-reduction limit) and at sizes where they fall
 * back to narrower code (N < 8, N < 16); large transforms are also checked
 * point by point against Horner evaluation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/memory.h"
#include "cryptodl/common.h"
#include "ring/modarith.h"
#include "ring/ntt.h"
#include "ring/ntt_kernels.h"
#include "ring/primes.h"

static cdl_rng *make_rng(uint8_t tag)
{
    uint8_t seed[CDL_RNG_SEED_BYTES] = {tag};
    cdl_rng *rng = NULL;
    assert_int_equal(cdl_rng_new_seeded(seed, &rng), CDL_OK);
    return rng;
}

static void test_modarith_matches_division(void **state)
{
    (void)state;
    cdl_rng *rng = make_rng(1);
    const uint64_t moduli[] = {3, 65537, 1152921504606584833ull /* 2^60 - 2^14 + 1 */, (1ull << 61) - 1,
                               0x1fffffffffe00001ull};
    for (size_t k = 0; k < sizeof moduli / sizeof moduli[0]; k++) {
        cdl_modulus m;
        cdl_modulus_init(&m, moduli[k]);
        uint64_t q = m.value;
        for (int i = 0; i < 20000; i++) {
            uint64_t a = cdl_rng_u64(rng) % q, b = cdl_rng_u64(rng) % q;
            if (i < 4) { a = q - 1 - (uint64_t)i % 2; b = q - 1; }
            uint64_t want = (uint64_t)(((cdl_u128)a * b) % q);
            assert_true(cdl_mod_mul(a, b, &m) == want);
            uint64_t bs = cdl_shoup_precompute(b, q);
            assert_true(cdl_mul_shoup(a, b, bs, q) == want);
            uint64_t any = cdl_rng_u64(rng);
            assert_true(cdl_mul_shoup(any, b, bs, q) == (uint64_t)(((cdl_u128)any * b) % q));
            assert_true(cdl_barrett_reduce_64(any, &m) == any % q);
            assert_true(cdl_mod_add(a, b, q) == (uint64_t)(((cdl_u128)a + b) % q));
            assert_true(cdl_mod_sub(a, b, q) == (uint64_t)(((cdl_u128)a + q - b) % q));
            if (a && cdl_is_prime(q))
                assert_true(cdl_mod_mul(a, cdl_mod_inv(a, &m), &m) == 1);
        }
    }
    cdl_rng_free(rng);
}

static int trial_division_prime(uint64_t n)
{
    if (n < 2)
        return 0;
    for (uint64_t d = 2; d * d <= n; d++)
        if (n % d == 0)
            return 0;
    return 1;
}

static void test_primes(void **state)
{
    (void)state;
    for (uint64_t n = 0; n < 20000; n++)
        assert_int_equal(cdl_is_prime(n), trial_division_prime(n));
    assert_true(cdl_is_prime((1ull << 61) - 1));             /* Mersenne prime */
    assert_false(cdl_is_prime(3215031751ull));                /* strong pseudoprime to bases 2,3,5,7 */
    assert_false(cdl_is_prime(((1ull << 31) - 1) * ((1ull << 31) - 1)));
    uint64_t primes[8];
    const uint64_t two_n = 1 << 14;
    assert_int_equal(cdl_generate_ntt_primes(50, 8, two_n, NULL, 0, primes), CDL_OK);
    for (int i = 0; i < 8; i++) {
        assert_true(primes[i] % two_n == 1);
        assert_true(primes[i] >> 49 == 1);
        assert_true(cdl_is_prime(primes[i]));
        for (int j = 0; j < i; j++)
            assert_true(primes[i] != primes[j]);
        uint64_t psi = cdl_primitive_root(primes[i], two_n);
        cdl_modulus m;
        cdl_modulus_init(&m, primes[i]);
        assert_true(cdl_mod_pow(psi, two_n / 2, &m) == primes[i] - 1);
    }
    assert_int_not_equal(cdl_generate_ntt_primes(20, 1000, two_n, NULL, 0, primes), CDL_OK);
}

static void schoolbook_negacyclic(const uint64_t *a, const uint64_t *b, uint64_t *c, size_t n, const cdl_modulus *m)
{
    uint64_t q = m->value;
    memset(c, 0, n * sizeof *c);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            uint64_t p = cdl_mod_mul(a[i], b[j], m);
            size_t k = i + j;
            if (k < n)
                c[k] = cdl_mod_add(c[k], p, q);
            else
                c[k - n] = cdl_mod_sub(c[k - n], p, q);
        }
}

static void test_ntt_against_schoolbook(void **state)
{
    (void)state;
    cdl_rng *rng = make_rng(2);
    const int bit_sizes[] = {30, 45, 50, 55, 60, 61};
    for (size_t log_n = 1; log_n <= 10; log_n++) {
        size_t n = (size_t)1 << log_n;
        for (size_t s = 0; s < sizeof bit_sizes / sizeof bit_sizes[0]; s++) {
            uint64_t q;
            assert_int_equal(cdl_generate_ntt_primes(bit_sizes[s], 1, 2 * (uint64_t)n, NULL, 0, &q), CDL_OK);
            cdl_ntt_table *t;
            assert_int_equal(cdl_ntt_table_new(n, q, &t), CDL_OK);
            uint64_t *a = cdl_alloc_array(n, 8), *b = cdl_alloc_array(n, 8), *c = cdl_alloc_array(n, 8),
                     *fa = cdl_alloc_array(n, 8), *fb = cdl_alloc_array(n, 8);
            for (size_t i = 0; i < n; i++) {
                a[i] = cdl_rng_u64(rng) % q;
                b[i] = cdl_rng_u64(rng) % q;
            }
            if (s == 0)
                a[0] = q - 1;
            schoolbook_negacyclic(a, b, c, n, &t->mod);
            for (int isa = 0; isa < CDL_ISA_COUNT; isa++) {
                if (!cdl_isa_supported((cdl_isa)isa))
                    continue;
                memcpy(fa, a, n * 8);
                memcpy(fb, b, n * 8);
                cdl_ntt_forward_with(t, fa, (cdl_isa)isa);
                cdl_ntt_forward_with(t, fb, (cdl_isa)isa);
                for (size_t i = 0; i < n; i++) {
                    assert_true(fa[i] < q);
                    fa[i] = cdl_mod_mul(fa[i], fb[i], &t->mod);
                }
                cdl_ntt_inverse_with(t, fa, (cdl_isa)isa);
                assert_memory_equal(fa, c, n * 8);
                /* inverse(forward(a)) == a */
                memcpy(fb, a, n * 8);
                cdl_ntt_forward_with(t, fb, (cdl_isa)isa);
                cdl_ntt_inverse_with(t, fb, (cdl_isa)isa);
                assert_memory_equal(fb, a, n * 8);
            }
            cdl_free(a); cdl_free(b); cdl_free(c); cdl_free(fa); cdl_free(fb);
            cdl_ntt_table_free(t);
        }
    }
    cdl_rng_free(rng);
}

/* Evaluation semantics: out[k] = a(psi^(2*brv(k)+1)), checked by Horner. */
static void test_ntt_evaluation_points(void **state)
{
    (void)state;
    cdl_rng *rng = make_rng(3);
    size_t n = 64;
    uint64_t q;
    assert_int_equal(cdl_generate_ntt_primes(40, 1, 2 * n, NULL, 0, &q), CDL_OK);
    cdl_ntt_table *t;
    assert_int_equal(cdl_ntt_table_new(n, q, &t), CDL_OK);
    uint64_t a[64], f[64];
    for (size_t i = 0; i < n; i++)
        a[i] = f[i] = cdl_rng_u64(rng) % q;
    cdl_ntt_forward(t, f);
    for (size_t k = 0; k < n; k++) {
        uint64_t x = cdl_mod_pow(t->psi, 2 * cdl_bit_reverse(k, 6) + 1, &t->mod), acc = 0;
        for (size_t i = n; i-- > 0;)
            acc = cdl_mod_add(cdl_mod_mul(acc, x, &t->mod), a[i], q);
        assert_true(acc == f[k]);
    }
    cdl_ntt_table_free(t);
    cdl_rng_free(rng);
}

/* Every supported kernel equals the portable one on large random inputs. */
static void test_kernels_agree(void **state)
{
    (void)state;
    cdl_rng *rng = make_rng(4);
    for (size_t log_n = 1; log_n <= 16; log_n++) {
        size_t n = (size_t)1 << log_n;
        uint64_t q;
        assert_int_equal(cdl_generate_ntt_primes(log_n % 2 ? 50 : 60, 1, 2 * n, NULL, 0, &q), CDL_OK);
        cdl_ntt_table *t;
        assert_int_equal(cdl_ntt_table_new(n, q, &t), CDL_OK);
        uint64_t *ref = cdl_alloc_array(n, 8), *x = cdl_alloc_array(n, 8), *in = cdl_alloc_array(n, 8);
        for (size_t i = 0; i < n; i++)
            in[i] = cdl_rng_u64(rng) % q;
        memcpy(ref, in, n * 8);
        cdl_ntt_forward_portable(t, ref);
        for (int isa = 1; isa < CDL_ISA_COUNT; isa++) {
            if (!cdl_isa_supported((cdl_isa)isa))
                continue;
            memcpy(x, in, n * 8);
            cdl_ntt_forward_with(t, x, (cdl_isa)isa);
            assert_memory_equal(x, ref, n * 8);
            cdl_ntt_inverse_with(t, x, (cdl_isa)isa);
            assert_memory_equal(x, in, n * 8);
        }
        cdl_free(ref); cdl_free(x); cdl_free(in);
        cdl_ntt_table_free(t);
    }
    cdl_rng_free(rng);
}

/* The smallest prime q = 1 mod two_n above `from`, by trial with cdl_is_prime. */
static uint64_t prime_above(uint64_t from, uint64_t two_n)
{
    uint64_t q = from - from % two_n + 1;
    while (q <= from || !cdl_is_prime(q))
        q += two_n;
    return q;
}

/* a(x) mod q by Horner, with 128-bit % as an independent reduction. */
static uint64_t horner(const uint64_t *a, size_t n, uint64_t x, uint64_t q)
{
    uint64_t acc = 0;
    for (size_t i = n; i-- > 0;)
        acc = (uint64_t)(((cdl_u128)acc * x + a[i]) % q);
    return acc;
}

/* Boundary moduli x sizes x input patterns: each kernel equals the portable
 * one, sampled outputs equal Horner evaluation, inverse undoes forward. */
static void test_kernels_boundary_moduli(void **state)
{
    (void)state;
    cdl_rng *rng = make_rng(5);
    const size_t log_ns[] = {1, 2, 3, 4, 5, 7, 12, 16};
    for (size_t li = 0; li < sizeof log_ns / sizeof log_ns[0]; li++) {
        const size_t n = (size_t)1 << log_ns[li];
        const uint64_t two_n = 2 * (uint64_t)n;
        uint64_t moduli[5];
        assert_int_equal(cdl_generate_ntt_primes(50, 1, two_n, NULL, 0, &moduli[0]), CDL_OK); /* just below 2^50 */
        moduli[1] = prime_above((uint64_t)1 << 50, two_n);                                        /* just above 2^50 */
        assert_int_equal(cdl_generate_ntt_primes(61, 1, two_n, NULL, 0, &moduli[2]), CDL_OK); /* just below 2^61 */
        moduli[3] = prime_above((uint64_t)1 << 19, two_n);                                        /* small, 20 bits */
        assert_int_equal(cdl_generate_ntt_primes(52, 1, two_n, NULL, 0, &moduli[4]), CDL_OK); /* 52 bits: 4q > 2^52, F/DQ path */
        assert_true(moduli[0] < (1ull << 50) && moduli[1] > (1ull << 50) && moduli[2] < (1ull << 61));
        uint64_t *in = cdl_alloc_array(n, 8), *ref = cdl_alloc_array(n, 8), *x = cdl_alloc_array(n, 8);
        assert_non_null(in); assert_non_null(ref); assert_non_null(x);
        for (size_t mi = 0; mi < 5; mi++) {
            const uint64_t q = moduli[mi];
            cdl_ntt_table *t;
            assert_int_equal(cdl_ntt_table_new(n, q, &t), CDL_OK);
            for (int pattern = 0; pattern < 3; pattern++) {
                for (size_t i = 0; i < n; i++)
                    in[i] = pattern == 0 ? cdl_rng_u64(rng) % q : pattern == 1 ? q - 1 : (i & 1 ? q - 1 : 0);
                memcpy(ref, in, n * 8);
                cdl_ntt_forward_portable(t, ref);
                /* Independent check of a few evaluation points (all of them for small N). */
                for (size_t s = 0; s < (n < 16 ? n : 16); s++) {
                    size_t k = n < 16 ? s : cdl_rng_u64(rng) % n;
                    uint64_t pt = cdl_mod_pow(t->psi, 2 * cdl_bit_reverse(k, t->log_n) + 1, &t->mod);
                    assert_true(ref[k] == horner(in, n, pt, q));
                }
                for (int isa = 0; isa < CDL_ISA_COUNT; isa++) {
                    if (!cdl_isa_supported((cdl_isa)isa))
                        continue;
                    memcpy(x, in, n * 8);
                    cdl_ntt_forward_with(t, x, (cdl_isa)isa);
                    assert_memory_equal(x, ref, n * 8);
                    cdl_ntt_inverse_with(t, x, (cdl_isa)isa);
                    assert_memory_equal(x, in, n * 8);
                    /* The inverse on arbitrary input (here: the input itself) equals portable's. */
                    memcpy(x, in, n * 8);
                    memcpy(ref, in, n * 8);
                    cdl_ntt_inverse_with(t, x, (cdl_isa)isa);
                    cdl_ntt_inverse_portable(t, ref);
                    assert_memory_equal(x, ref, n * 8);
                    memcpy(ref, in, n * 8);
                    cdl_ntt_forward_portable(t, ref);
                }
            }
            cdl_ntt_table_free(t);
        }
        cdl_free(in); cdl_free(ref); cdl_free(x);
    }
    cdl_rng_free(rng);
}

/* The 52-bit Shoup tables exist exactly when q < 2^50 and the CPU has IFMA,
 * and hold floor(w * 2^52 / q) (checked with 128-bit division). */
static void test_ifma_tables(void **state)
{
    (void)state;
    const size_t n = 1024;
    uint64_t below, above = prime_above(1ull << 50, 2 * n);
    assert_int_equal(cdl_generate_ntt_primes(50, 1, 2 * n, NULL, 0, &below), CDL_OK);
    cdl_ntt_table *t;
    assert_int_equal(cdl_ntt_table_new(n, below, &t), CDL_OK);
    const cdl_ntt_kernel_data *d = t->isa_data;
    assert_non_null(d);
    assert_int_equal(d->roots_shoup52 != NULL, cdl_ntt_ifma_available());
    if (d->roots_shoup52)
        for (size_t k = 0; k < n; k++) {
            assert_true(d->roots_shoup52[k] == (uint64_t)(((cdl_u128)t->roots[k] << 52) / below));
            assert_true(d->inv_roots_shoup52[k] == (uint64_t)(((cdl_u128)t->inv_roots[k] << 52) / below));
        }
    assert_true(d->last_w == (uint64_t)(((cdl_u128)t->inv_roots[1] * t->n_inv) % below));
    cdl_ntt_table_free(t);
    assert_int_equal(cdl_ntt_table_new(n, above, &t), CDL_OK);
    d = t->isa_data;
    assert_null(d->roots_shoup52);
    cdl_ntt_table_free(t);
}

/* cdl_isa_set forces the kernel used by cdl_ntt_forward/inverse. */
static void test_isa_selection(void **state)
{
    (void)state;
    cdl_isa before = cdl_isa_active();
    assert_true(cdl_isa_supported(CDL_ISA_PORTABLE));
    assert_false(cdl_isa_supported(CDL_ISA_COUNT));
    assert_true(cdl_isa_supported(CDL_ISA_AVX2) == cdl_ntt_avx2_available());
    assert_true(cdl_isa_supported(CDL_ISA_AVX512) == cdl_ntt_avx512_available());
    assert_int_equal(cdl_isa_set(CDL_ISA_COUNT), CDL_ERR_UNSUPPORTED);
    const size_t n = 4096;
    uint64_t q;
    assert_int_equal(cdl_generate_ntt_primes(45, 1, 2 * n, NULL, 0, &q), CDL_OK);
    cdl_ntt_table *t;
    assert_int_equal(cdl_ntt_table_new(n, q, &t), CDL_OK);
    uint64_t *ref = cdl_alloc_array(n, 8), *x = cdl_alloc_array(n, 8);
    for (size_t i = 0; i < n; i++)
        ref[i] = (i * i + 7) % q;
    memcpy(x, ref, n * 8);
    cdl_ntt_forward_portable(t, ref);
    for (int isa = 0; isa < CDL_ISA_COUNT; isa++) {
        if (!cdl_isa_supported((cdl_isa)isa)) {
            assert_int_equal(cdl_isa_set((cdl_isa)isa), CDL_ERR_UNSUPPORTED);
            continue;
        }
        assert_int_equal(cdl_isa_set((cdl_isa)isa), CDL_OK);
        assert_int_equal(cdl_isa_active(), isa);
        uint64_t *y = cdl_alloc_array(n, 8);
        memcpy(y, x, n * 8);
        cdl_ntt_forward(t, y);
        assert_memory_equal(y, ref, n * 8);
        cdl_ntt_inverse(t, y);
        assert_memory_equal(y, x, n * 8);
        cdl_free(y);
    }
    assert_int_equal(cdl_isa_set(before), CDL_OK);
    cdl_free(ref); cdl_free(x);
    cdl_ntt_table_free(t);
}

static void test_ntt_rejects_bad_parameters(void **state)
{
    (void)state;
    cdl_ntt_table *t;
    assert_int_equal(cdl_ntt_table_new(100, 257, &t), CDL_ERR_PARAMETERS);
    assert_int_equal(cdl_ntt_table_new(64, 257 + 2, &t), CDL_ERR_PARAMETERS); /* 259 = 7*37 */
    assert_int_equal(cdl_ntt_table_new(256, 257, &t), CDL_ERR_PARAMETERS);    /* 257 != 1 mod 512 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modarith_matches_division),
        cmocka_unit_test(test_primes),
        cmocka_unit_test(test_ntt_against_schoolbook),
        cmocka_unit_test(test_ntt_evaluation_points),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_kernels_boundary_moduli),
        cmocka_unit_test(test_ifma_tables),
        cmocka_unit_test(test_isa_selection),
        cmocka_unit_test(test_ntt_rejects_bad_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
