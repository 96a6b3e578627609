/*
 * test_security.c: the security rules of docs/security.md, one test each.
 *  - constant time: cdl_shoup_precompute_ct (no division, for secret-key
 *    coefficients) equals the division floor(w 2^64 / q) for every modulus
 *    size 20..61 bits (NTT primes and other odd moduli), at w = 0, 1, 2,
 *    q/2, q-2, q-1 and many random w; a loaded secret key's Shoup table
 *    matches the division; cdl_mod_from_i64 (branch-free) on edge values.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckks/ckks_internal.h"
#include "core/memory.h"
#include "cryptodl/ckks.h"
#include "ring/modarith.h"
#include "ring/primes.h"

/* A reproducible stream for test values (never for keys). */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void check_modulus(uint64_t q, uint64_t *state)
{
    cdl_modulus m;
    cdl_modulus_init(&m, q);
    const uint64_t edge[] = {0, 1, 2, 3, q / 2, q / 2 + 1, q - 3, q - 2, q - 1};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        uint64_t w = edge[i];
        if (w >= q)
            continue;
        assert_true(cdl_shoup_precompute_ct(w, &m) == cdl_shoup_precompute(w, q));
    }
    for (int i = 0; i < 4000; i++) {
        uint64_t w = splitmix(state) % q;
        uint64_t ws = cdl_shoup_precompute_ct(w, &m);
        assert_true(ws == cdl_shoup_precompute(w, q));
        /* and it works as a Shoup constant */
        uint64_t a = splitmix(state);
        assert_true(cdl_mul_shoup(a, w, ws, q) == (uint64_t)(((cdl_u128)a * w) % q));
    }
}

static void test_shoup_ct_matches_division(void **state)
{
    (void)state;
    uint64_t s = 12345;
    for (int bits = CDL_MODULUS_MIN_BITS; bits <= CDL_MODULUS_MAX_BITS; bits++) {
        /* NTT primes of this size (as contexts use them) */
        uint64_t primes[2];
        assert_int_equal(cdl_generate_ntt_primes(bits, 2, 2 * 1024, NULL, 0, primes), CDL_OK);
        for (int i = 0; i < 2; i++)
            check_modulus(primes[i], &s);
        /* the extreme odd moduli of this size and random odd ones */
        uint64_t lo = ((uint64_t)1 << (bits - 1)) + 1, hi = ((uint64_t)1 << bits) - 1;
        check_modulus(lo, &s);
        check_modulus(hi, &s);
        for (int i = 0; i < 3; i++)
            check_modulus(lo + ((splitmix(&s) % (hi - lo)) | 1) - 1, &s);
    }
}

static void test_secret_key_shoup_table(void **state)
{
    (void)state;
    cdl_ckks_param_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.log_n = 10;
    spec.q_count = 3;
    spec.q_bits[0] = 61;
    spec.q_bits[1] = 20;
    spec.q_bits[2] = 45;
    spec.p_count = 1;
    spec.p_bits[0] = 30;
    spec.scale = ldexp(1.0, 20);
    spec.allow_insecure = 1; /* TESTING ONLY: N = 2^10 */
    cdl_ckks_context *ctx = NULL;
    cdl_rng *rng = NULL;
    cdl_ckks_secret_key *sk = NULL, *back = NULL;
    assert_int_equal(cdl_ckks_context_new(&spec, &ctx), CDL_OK);
    assert_int_equal(cdl_rng_new_system(&rng), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(ctx, rng, &sk), CDL_OK);
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_ckks_secret_key_save(ctx, sk, 0, &blob, &len), CDL_OK);
    assert_int_equal(cdl_ckks_secret_key_load(ctx, blob, len, &back), CDL_OK);
    const cdl_ckks_secret_key *keys[2] = {sk, back};
    for (int k = 0; k < 2; k++) {
        assert_non_null(keys[k]->s_shoup);
        for (int i = 0; i < ctx->q_count; i++)
            for (size_t j = 0; j < ctx->n; j++) {
                size_t at = (size_t)i * ctx->n + j;
                assert_true(keys[k]->s_shoup[at] == cdl_shoup_precompute(keys[k]->s[at], ctx->primes[i]));
            }
    }
    cdl_free_bytes(blob);
    cdl_ckks_secret_key_free(sk);
    cdl_ckks_secret_key_free(back);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);
}

static void test_mod_from_i64(void **state)
{
    (void)state;
    cdl_modulus m;
    const uint64_t q = 0x1fffffffffe00001ull; /* odd, 61 bits */
    cdl_modulus_init(&m, q);
    const int64_t v[] = {0, 1, -1, 2, -2, INT64_MAX, INT64_MIN + 1, INT64_MIN, (int64_t)q, -(int64_t)q, 123456789,
                         -987654321};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        __int128 r = (__int128)v[i] % (__int128)q;
        if (r < 0)
            r += q;
        assert_true(cdl_mod_from_i64(v[i], &m) == (uint64_t)r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shoup_ct_matches_division),
        cmocka_unit_test(test_secret_key_shoup_table),
        cmocka_unit_test(test_mod_from_i64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
