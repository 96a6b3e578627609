/*
 * test_security.c: the security rules of docs/security.md, one test each.
 *  - constant time: cdl_shoup_precompute_ct (no division, for secret-key
 *    coefficients) equals the division floor(w 2^64 / q) for every modulus
 *    size 20..61 bits (NTT primes and other odd moduli), at w = 0, 1, 2,
 *    q/2, q-2, q-1 and many random w; a loaded secret key's Shoup table
 *    matches the division; cdl_mod_from_i64 (branch-free) on edge values.
 *  - sparse secrets: the limits of cdl_ckks_max_log_qp_secret at their
 *    boundaries, refusals at creation (no estimate, too much modulus, h below
 *    the published weights), an accepted h = 192 context at N = 2^15 whose
 *    keys have that weight and which survives save/load.
 *  - seeded generators: every key generation refuses cdl_rng_new_seeded
 *    (CDL_ERR_INSECURE, naming the fix) and accepts the explicit test opt-in
 *    cdl_rng_new_seeded_insecure (reproducibly) and the system generator.
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
#include "core/rng.h"
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

static void spec_bits(cdl_ckks_param_spec *s, int log_n, int h, const int *q, int qc, const int *p, int pc)
{
    memset(s, 0, sizeof *s);
    s->log_n = log_n;
    s->q_count = qc;
    for (int i = 0; i < qc; i++)
        s->q_bits[i] = q[i];
    s->p_count = pc;
    for (int i = 0; i < pc; i++)
        s->p_bits[i] = p[i];
    s->scale = ldexp(1.0, 40);
    s->secret_hamming_weight = h;
}

static void test_sparse_secret_limits(void **state)
{
    (void)state;
    /* dense: uniform ternary, or h >= 2N/3 */
    assert_int_equal(cdl_ckks_max_log_qp_secret(16, 0), 1747);
    assert_int_equal(cdl_ckks_max_log_qp_secret(16, 43691), 1747); /* ceil(2 * 65536 / 3) */
    assert_int_equal(cdl_ckks_max_log_qp_secret(16, 65536), 1747);
    assert_int_equal(cdl_ckks_max_log_qp_secret(15, 21846), 881);
    assert_int_equal(cdl_ckks_max_log_qp_secret(14, 10923), 438);
    assert_int_equal(cdl_ckks_max_log_qp_secret(13, 5462), 218);
    /* sparse: the published estimates, or nothing */
    assert_int_equal(cdl_ckks_max_log_qp_secret(16, 43690), 1553);
    assert_int_equal(cdl_ckks_max_log_qp_secret(16, 192), 1553);
    assert_int_equal(cdl_ckks_max_log_qp_secret(16, 191), 117);
    assert_int_equal(cdl_ckks_max_log_qp_secret(16, 32), 117);
    assert_int_equal(cdl_ckks_max_log_qp_secret(16, 31), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(16, 1), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(15, 21845), 767);
    assert_int_equal(cdl_ckks_max_log_qp_secret(15, 192), 767);
    assert_int_equal(cdl_ckks_max_log_qp_secret(15, 191), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(15, 64), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(14, 10922), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(14, 192), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(13, 5461), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(13, 64), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(12, 1), 0);
    /* out of range */
    assert_int_equal(cdl_ckks_max_log_qp_secret(13, -1), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(13, 8193), 0);
    assert_int_equal(cdl_ckks_max_log_qp_secret(17, 0), 0);
}

static void test_sparse_secret_contexts(void **state)
{
    (void)state;
    cdl_ckks_param_spec s;
    cdl_ckks_context *ctx = NULL, *back = NULL;
    /* h = 64 at N = 2^13 within the dense budget (the old loophole): refused */
    const int q13[] = {60, 40, 40}, p13[] = {60};
    spec_bits(&s, 13, 64, q13, 3, p13, 1);
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_ERR_INSECURE);
    assert_null(ctx);
    assert_non_null(strstr(cdl_last_error(), "no published 128-bit"));
    /* h = 1 at N = 2^16 with a tiny modulus: refused */
    const int q16[] = {60}, p16[] = {57};
    spec_bits(&s, 16, 1, q16, 1, p16, 1);
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_ERR_INSECURE);
    /* h = 192 at N = 2^15, one bit over 767: refused, naming the sparse limit */
    const int q15big[] = {60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60, 60}, p15big[] = {48};
    spec_bits(&s, 15, 192, q15big, 12, p15big, 1);
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_ERR_INSECURE);
    assert_non_null(strstr(cdl_last_error(), "767"));
    /* (the same modulus with a uniform ternary secret would be fine: 768 <= 881) */
    assert_int_equal(cdl_ckks_max_log_qp_secret(15, 0), 881);
    /* allow_insecure still lets a test through, loudly */
    spec_bits(&s, 13, 64, q13, 3, p13, 1);
    s.allow_insecure = 1;
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_OK);
    cdl_ckks_context_free(ctx);
    ctx = NULL;

    /* h = 192 at N = 2^15 within 767 bits: accepted, keys of that weight, round trip */
    const int q15[] = {60, 40}, p15[] = {60};
    spec_bits(&s, 15, 192, q15, 2, p15, 1);
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_OK);
    cdl_rng *rng = NULL;
    cdl_ckks_secret_key *sk = NULL;
    assert_int_equal(cdl_rng_new_system(&rng), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(ctx, rng, &sk), CDL_OK);
    size_t nz = 0;
    for (size_t j = 0; j < ctx->n; j++)
        nz += sk->coeffs[j] != 0;
    assert_int_equal(nz, 192);
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_ckks_context_save(ctx, 0, &blob, &len), CDL_OK);
    assert_int_equal(cdl_ckks_context_load(blob, len, &back), CDL_OK);
    assert_int_equal(back->spec.secret_hamming_weight, 192);
    assert_memory_equal(cdl_ckks_param_hash(back), cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES);
    cdl_free_bytes(blob);
    cdl_ckks_context_free(back);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);

    /* h = 32 at N = 2^16 within 117 bits (the ephemeral secret of sparse-secret encapsulation) */
    spec_bits(&s, 16, 32, q16, 1, p16, 1);
    assert_int_equal(cdl_ckks_context_new(&s, &ctx), CDL_OK);
    cdl_ckks_context_free(ctx);
}

static void test_seeded_rng_refused_for_keys(void **state)
{
    (void)state;
    cdl_ckks_param_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.log_n = 10;
    spec.q_count = 2;
    spec.q_bits[0] = 50;
    spec.q_bits[1] = 40;
    spec.p_count = 1;
    spec.p_bits[0] = 50;
    spec.scale = ldexp(1.0, 40);
    spec.allow_insecure = 1; /* TESTING ONLY: N = 2^10 */
    cdl_ckks_context *ctx = NULL;
    assert_int_equal(cdl_ckks_context_new(&spec, &ctx), CDL_OK);
    uint8_t seed[CDL_RNG_SEED_BYTES] = {42};
    cdl_rng *seeded = NULL, *sys = NULL, *opt_in = NULL, *opt_in2 = NULL;
    assert_int_equal(cdl_rng_new_seeded(seed, &seeded), CDL_OK);
    assert_int_equal(cdl_rng_new_system(&sys), CDL_OK);
    cdl_ckks_secret_key *sk = NULL, *sk2 = NULL;
    cdl_ckks_public_key *pk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL;
    /* the plain seeded generator: every key generation refuses it */
    assert_int_equal(cdl_ckks_keygen_secret(ctx, seeded, &sk), CDL_ERR_INSECURE);
    assert_null(sk);
    assert_non_null(strstr(cdl_last_error(), "cdl_rng_new_system"));
    assert_non_null(strstr(cdl_last_error(), "cdl_rng_new_seeded_insecure"));
    assert_int_equal(cdl_ckks_keygen_secret(ctx, sys, &sk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_public(ctx, sk, seeded, &pk), CDL_ERR_INSECURE);
    assert_int_equal(cdl_ckks_keygen_relin(ctx, sk, seeded, &rlk), CDL_ERR_INSECURE);
    const int steps[] = {1};
    assert_int_equal(cdl_ckks_keygen_galois(ctx, sk, steps, 1, 0, seeded, &gk), CDL_ERR_INSECURE);
    assert_null(pk);
    assert_null(rlk);
    assert_null(gk);
    /* a child of a seeded generator is seeded too; a child of the system one is not */
    cdl_rng *child = NULL;
    assert_int_equal(cdl_rng_new_child(seeded, &child), CDL_OK);
    assert_int_equal(cdl_rng_check_secret(child, "test"), CDL_ERR_INSECURE);
    cdl_rng_free(child);
    assert_int_equal(cdl_rng_new_child(sys, &child), CDL_OK);
    assert_int_equal(cdl_rng_check_secret(child, "test"), CDL_OK);
    cdl_rng_free(child);
    /* the explicit opt-in works, and is reproducible */
    cdl_ckks_secret_key_free(sk);
    sk = NULL;
    assert_int_equal(cdl_rng_new_seeded_insecure(seed, &opt_in), CDL_OK);
    assert_int_equal(cdl_rng_new_seeded_insecure(seed, &opt_in2), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(ctx, opt_in, &sk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(ctx, opt_in2, &sk2), CDL_OK);
    assert_memory_equal(sk->coeffs, sk2->coeffs, ctx->n);
    assert_int_equal(cdl_ckks_keygen_public(ctx, sk, opt_in, &pk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_relin(ctx, sk, opt_in, &rlk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_galois(ctx, sk, steps, 1, 0, opt_in, &gk), CDL_OK);
    assert_int_equal(cdl_rng_new_child(opt_in, &child), CDL_OK);
    assert_int_equal(cdl_rng_check_secret(child, "test"), CDL_OK);
    cdl_rng_free(child);
    cdl_ckks_galois_keys_free(gk);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_public_key_free(pk);
    cdl_ckks_secret_key_free(sk);
    cdl_ckks_secret_key_free(sk2);
    cdl_rng_free(seeded);
    cdl_rng_free(sys);
    cdl_rng_free(opt_in);
    cdl_rng_free(opt_in2);
    cdl_ckks_context_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shoup_ct_matches_division),
        cmocka_unit_test(test_secret_key_shoup_table),
        cmocka_unit_test(test_mod_from_i64),
        cmocka_unit_test(test_sparse_secret_limits),
        cmocka_unit_test(test_sparse_secret_contexts),
        cmocka_unit_test(test_seeded_rng_refused_for_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
