/*
 * test_serialize.c: saving and loading every CKKS object, and the loaders'
 * defence against hostile bytes (src/ckks/serialize.c, docs/serialization.md).
 *
 * Round trips are checked by what the loaded object does, not by comparing
 * our own bytes with themselves: a loaded ciphertext decrypts to the values
 * that were encrypted (compared with the plain double inputs), loaded keys
 * relinearize and rotate correctly (compared with the product and the
 * rotated input computed in plain C), a loaded secret key has the same NTT
 * form the key generator made.
 *
 * Hostile inputs: every truncation length class (of the envelope and, with a
 * recomputed checksum, of the payload), single-bit flips across header and
 * payload, oversized length and count fields, the wrong object type, objects
 * loaded into a context with other parameters (CDL_ERR_MISMATCH), and
 * coefficients >= their prime inside a payload whose checksum was recomputed,
 * so that the coefficient check, not the checksum, has to catch them.
 *
 * The fuzz seed corpora (tests/fuzz/corpus/ckks_*) come from here: with
 * CDL_WRITE_FUZZ_CORPUS=<dir> set, test_fuzz_corpus writes them under <dir>;
 * without it, it checks that every committed seed still loads.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "ckks/ckks_internal.h"
#include "core/bytes.h"
#include "core/memory.h"
#include "cryptodl/cryptodl.h"
#include "fuzz/fuzz_ckks_common.h"

#define TOL 1e-3
#define NVALS 16

static const int rot_steps[] = {1, -1, 3};

typedef struct fixture {
    cdl_ckks_context *ctx;
    cdl_ckks_secret_key *sk;
    cdl_ckks_public_key *pk;
    cdl_ckks_relin_key *rlk;
    cdl_ckks_galois_keys *gk;
    cdl_rng *rng;
    cdl_ckks_context *other; /* different primes: objects of ctx must not load here */
} fixture;

static fixture F;

static void small_spec(cdl_ckks_param_spec *spec, int first_bits)
{
    memset(spec, 0, sizeof *spec);
    spec->log_n = 10;
    spec->q_count = 3;
    spec->q_bits[0] = first_bits;
    spec->q_bits[1] = 35;
    spec->q_bits[2] = 35;
    spec->p_count = 1;
    spec->p_bits[0] = 50;
    spec->scale = ldexp(1.0, 35);
    spec->allow_insecure = 1; /* TESTING ONLY: N = 2^10 keeps the test fast */
}

static int group_setup(void **state)
{
    (void)state;
    cdl_ckks_param_spec spec;
    small_spec(&spec, 45);
    uint8_t seed[CDL_RNG_SEED_BYTES] = {7, 1, 2, 3};
    if (cdl_ckks_context_new(&spec, &F.ctx) != CDL_OK || cdl_rng_new_seeded_insecure(seed, &F.rng) != CDL_OK ||
        cdl_ckks_keygen_secret(F.ctx, F.rng, &F.sk) != CDL_OK ||
        cdl_ckks_keygen_public(F.ctx, F.sk, F.rng, &F.pk) != CDL_OK ||
        cdl_ckks_keygen_relin(F.ctx, F.sk, F.rng, &F.rlk) != CDL_OK ||
        cdl_ckks_keygen_galois(F.ctx, F.sk, rot_steps, 3, 1, F.rng, &F.gk) != CDL_OK)
        return -1;
    small_spec(&spec, 44);
    if (cdl_ckks_context_new(&spec, &F.other) != CDL_OK)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    cdl_ckks_galois_keys_free(F.gk);
    cdl_ckks_relin_key_free(F.rlk);
    cdl_ckks_public_key_free(F.pk);
    cdl_ckks_secret_key_free(F.sk);
    cdl_rng_free(F.rng);
    cdl_ckks_context_free(F.other);
    cdl_ckks_context_free(F.ctx);
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static void test_values(double *v, size_t n, double phase)
{
    for (size_t i = 0; i < n; i++)
        v[i] = sin(0.7 * (double)i + phase) * 1.5;
}

static cdl_ckks_plaintext *encode_at(const double *v, size_t n, int level)
{
    cdl_ckks_plaintext *pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(F.ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_encode(F.ctx, v, n, cdl_ckks_default_scale(F.ctx), level, pt), CDL_OK);
    return pt;
}

/* Encrypt v at the top level, with the public key (symmetric = 0) or the secret key. */
static cdl_ckks_ciphertext *encrypt(const double *v, size_t n, int symmetric)
{
    cdl_ckks_plaintext *pt = encode_at(v, n, cdl_ckks_max_level(F.ctx));
    cdl_ckks_ciphertext *ct = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &ct), CDL_OK);
    if (symmetric)
        assert_int_equal(cdl_ckks_encrypt_sk(F.ctx, F.sk, pt, F.rng, ct), CDL_OK);
    else
        assert_int_equal(cdl_ckks_encrypt_pk(F.ctx, F.pk, pt, F.rng, ct), CDL_OK);
    cdl_ckks_plaintext_free(pt);
    return ct;
}

static void decrypt_check(const cdl_ckks_secret_key *sk, const cdl_ckks_ciphertext *ct, const double *want, size_t n)
{
    cdl_ckks_plaintext *pt = NULL;
    double got[NVALS];
    assert_int_equal(cdl_ckks_plaintext_new(F.ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_decrypt(F.ctx, sk, ct, pt), CDL_OK);
    assert_int_equal(cdl_ckks_decode(F.ctx, pt, got, n), CDL_OK);
    for (size_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i]) > TOL)
            fail_msg("slot %zu: got %.6f, want %.6f", i, got[i], want[i]);
    cdl_ckks_plaintext_free(pt);
}

/* The raw payload of a blob (any parameter set). */
static void open_payload(const uint8_t *blob, size_t len, uint16_t type, uint8_t **payload, size_t *plen)
{
    uint8_t hash[CDL_HASH_BYTES];
    assert_int_equal(cdl_envelope_open(blob, len, type, NULL, SIZE_MAX, payload, plen, hash), CDL_OK);
}

/* Re-wrap a (modified) payload with a valid checksum. */
static void wrap_payload(uint16_t type, const uint8_t *hash, const uint8_t *payload, size_t plen, int compression,
                         uint8_t **blob, size_t *len)
{
    assert_int_equal(cdl_envelope_wrap(type, hash, payload, plen, compression, blob, len), CDL_OK);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A loader with one signature, so that the hostile-input tests can loop over object types. */
typedef cdl_status (*load_fn)(const uint8_t *data, size_t len);

static cdl_status load_sk(const uint8_t *d, size_t n)
{
    cdl_ckks_secret_key *o = NULL;
    cdl_status st = cdl_ckks_secret_key_load(F.ctx, d, n, &o);
    assert_true((st == CDL_OK) == (o != NULL));
    cdl_ckks_secret_key_free(o);
    return st;
}
static cdl_status load_pk(const uint8_t *d, size_t n)
{
    cdl_ckks_public_key *o = NULL;
    cdl_status st = cdl_ckks_public_key_load(F.ctx, d, n, &o);
    assert_true((st == CDL_OK) == (o != NULL));
    cdl_ckks_public_key_free(o);
    return st;
}
static cdl_status load_rlk(const uint8_t *d, size_t n)
{
    cdl_ckks_relin_key *o = NULL;
    cdl_status st = cdl_ckks_relin_key_load(F.ctx, d, n, &o);
    assert_true((st == CDL_OK) == (o != NULL));
    cdl_ckks_relin_key_free(o);
    return st;
}
static cdl_status load_gk(const uint8_t *d, size_t n)
{
    cdl_ckks_galois_keys *o = NULL;
    cdl_status st = cdl_ckks_galois_keys_load(F.ctx, d, n, &o);
    assert_true((st == CDL_OK) == (o != NULL));
    cdl_ckks_galois_keys_free(o);
    return st;
}
static cdl_status load_pt(const uint8_t *d, size_t n)
{
    cdl_ckks_plaintext *o = NULL;
    cdl_status st = cdl_ckks_plaintext_load(F.ctx, d, n, &o);
    assert_true((st == CDL_OK) == (o != NULL));
    cdl_ckks_plaintext_free(o);
    return st;
}
static cdl_status load_ct(const uint8_t *d, size_t n)
{
    cdl_ckks_ciphertext *o = NULL;
    cdl_status st = cdl_ckks_ciphertext_load(F.ctx, d, n, &o);
    assert_true((st == CDL_OK) == (o != NULL));
    cdl_ckks_ciphertext_free(o);
    return st;
}
static cdl_status load_ctx(const uint8_t *d, size_t n)
{
    cdl_ckks_context *o = NULL;
    cdl_status st = cdl_ckks_context_load(d, n, &o);
    assert_true((st == CDL_OK) == (o != NULL));
    cdl_ckks_context_free(o);
    return st;
}

/* One saved object of every kind, for the loops below. */
typedef struct sample {
    const char *name;
    uint16_t type;
    load_fn load;
    uint8_t *blob;
    size_t len;
} sample;

enum { S_SK, S_PK, S_RLK, S_GK, S_PT, S_CT, S_CT_SEEDED, S_CT3, S_COUNT };

static void make_samples(sample *s, int compression)
{
    double v[NVALS];
    test_values(v, NVALS, 0.3);
    cdl_ckks_plaintext *pt = encode_at(v, NVALS, 1);
    cdl_ckks_ciphertext *ct = encrypt(v, NVALS, 0);
    cdl_ckks_ciphertext *cts = encrypt(v, NVALS, 1);
    cdl_ckks_ciphertext *ct3 = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &ct3), CDL_OK);
    assert_int_equal(cdl_ckks_mul(F.ctx, ct, cts, ct3), CDL_OK);
    s[S_SK] = (sample){"secret key", CDL_OBJ_SECRET_KEY, load_sk, NULL, 0};
    s[S_PK] = (sample){"public key", CDL_OBJ_PUBLIC_KEY, load_pk, NULL, 0};
    s[S_RLK] = (sample){"relin key", CDL_OBJ_RELIN_KEY, load_rlk, NULL, 0};
    s[S_GK] = (sample){"Galois keys", CDL_OBJ_GALOIS_KEYS, load_gk, NULL, 0};
    s[S_PT] = (sample){"plaintext", CDL_OBJ_PLAINTEXT, load_pt, NULL, 0};
    s[S_CT] = (sample){"ciphertext", CDL_OBJ_CIPHERTEXT, load_ct, NULL, 0};
    s[S_CT_SEEDED] = (sample){"seeded ciphertext", CDL_OBJ_CIPHERTEXT, load_ct, NULL, 0};
    s[S_CT3] = (sample){"size-3 ciphertext", CDL_OBJ_CIPHERTEXT, load_ct, NULL, 0};
    assert_int_equal(cdl_ckks_secret_key_save(F.ctx, F.sk, compression, &s[S_SK].blob, &s[S_SK].len), CDL_OK);
    assert_int_equal(cdl_ckks_public_key_save(F.ctx, F.pk, compression, &s[S_PK].blob, &s[S_PK].len), CDL_OK);
    assert_int_equal(cdl_ckks_relin_key_save(F.ctx, F.rlk, compression, &s[S_RLK].blob, &s[S_RLK].len), CDL_OK);
    assert_int_equal(cdl_ckks_galois_keys_save(F.ctx, F.gk, compression, &s[S_GK].blob, &s[S_GK].len), CDL_OK);
    assert_int_equal(cdl_ckks_plaintext_save(F.ctx, pt, compression, &s[S_PT].blob, &s[S_PT].len), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, ct, compression, &s[S_CT].blob, &s[S_CT].len), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, cts, compression, &s[S_CT_SEEDED].blob, &s[S_CT_SEEDED].len),
                     CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, ct3, compression, &s[S_CT3].blob, &s[S_CT3].len), CDL_OK);
    cdl_ckks_ciphertext_free(ct3);
    cdl_ckks_ciphertext_free(cts);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_plaintext_free(pt);
}

static void free_samples(sample *s)
{
    for (int i = 0; i < S_COUNT; i++) {
        cdl_wipe(s[i].blob, s[i].len);
        cdl_free_bytes(s[i].blob);
    }
}

/* ---- round trips ------------------------------------------------------------ */

static void round_trip_ciphertexts(int compression)
{
    double v[NVALS], w[NVALS], prod[NVALS];
    test_values(v, NVALS, 0.1);
    test_values(w, NVALS, 1.9);
    for (int i = 0; i < NVALS; i++)
        prod[i] = v[i] * w[i];
    for (int symmetric = 0; symmetric <= 1; symmetric++) {
        cdl_ckks_ciphertext *ct = encrypt(v, NVALS, symmetric), *back = NULL;
        uint8_t *blob = NULL;
        size_t len = 0;
        assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, ct, compression, &blob, &len), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_load(F.ctx, blob, len, &back), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_level(back), cdl_ckks_max_level(F.ctx));
        assert_int_equal(cdl_ckks_ciphertext_size(back), 2);
        assert_true(cdl_ckks_ciphertext_scale(back) == cdl_ckks_ciphertext_scale(ct));
        decrypt_check(F.sk, back, v, NVALS);
        /* The loaded ciphertext is the same ciphertext, coefficient for coefficient. */
        size_t words = (size_t)(cdl_ckks_max_level(F.ctx) + 1) * F.ctx->n;
        for (int k = 0; k < 2; k++)
            assert_memory_equal(cdl_ct_poly(ct, k, 0), cdl_ct_poly(back, k, 0), words * 8);
        cdl_free_bytes(blob);
        cdl_ckks_ciphertext_free(back);
        cdl_ckks_ciphertext_free(ct);
    }
    /* Size 3 at a lower level: load, then relinearize and rescale the loaded one. */
    cdl_ckks_ciphertext *a = encrypt(v, NVALS, 0), *b = encrypt(w, NVALS, 1), *m = NULL, *back = NULL, *r = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &m), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &r), CDL_OK);
    assert_int_equal(cdl_ckks_drop_to_level(F.ctx, a, 1, a), CDL_OK);
    assert_int_equal(cdl_ckks_drop_to_level(F.ctx, b, 1, b), CDL_OK);
    assert_int_equal(cdl_ckks_mul(F.ctx, a, b, m), CDL_OK);
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, m, compression, &blob, &len), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_load(F.ctx, blob, len, &back), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_size(back), 3);
    assert_int_equal(cdl_ckks_ciphertext_level(back), 1);
    assert_int_equal(cdl_ckks_relinearize(F.ctx, F.rlk, back, r), CDL_OK);
    assert_int_equal(cdl_ckks_rescale(F.ctx, r, r), CDL_OK);
    decrypt_check(F.sk, r, prod, NVALS);
    cdl_free_bytes(blob);
    cdl_ckks_ciphertext_free(back);
    cdl_ckks_ciphertext_free(r);
    cdl_ckks_ciphertext_free(m);
    cdl_ckks_ciphertext_free(b);
    cdl_ckks_ciphertext_free(a);
}

static void test_ciphertext_round_trip(void **state)
{
    (void)state;
    round_trip_ciphertexts(0);
    round_trip_ciphertexts(3);
}

/* A fresh symmetric ciphertext is stored with its seed instead of c1. */
static void test_seeded_ciphertext_is_half_size(void **state)
{
    (void)state;
    double v[NVALS];
    test_values(v, NVALS, 0.5);
    cdl_ckks_ciphertext *pk_ct = encrypt(v, NVALS, 0), *sk_ct = encrypt(v, NVALS, 1), *sum = NULL;
    uint8_t *a = NULL, *b = NULL, *c = NULL;
    size_t alen, blen, clen;
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, pk_ct, 0, &a, &alen), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, sk_ct, 0, &b, &blen), CDL_OK);
    size_t poly_bytes = (size_t)(cdl_ckks_max_level(F.ctx) + 1) * F.ctx->n * 8;
    assert_int_equal(alen - blen, poly_bytes - CDL_CKKS_SEED_BYTES);
    /* After any operation the seed no longer describes c1: full size again. */
    assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &sum), CDL_OK);
    assert_int_equal(cdl_ckks_add(F.ctx, sk_ct, sk_ct, sum), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, sum, 0, &c, &clen), CDL_OK);
    assert_int_equal(clen, alen);
    for (int i = 0; i < NVALS; i++)
        v[i] *= 2;
    cdl_ckks_ciphertext *back = NULL;
    assert_int_equal(cdl_ckks_ciphertext_load(F.ctx, c, clen, &back), CDL_OK);
    decrypt_check(F.sk, back, v, NVALS);
    cdl_ckks_ciphertext_free(back);
    back = NULL;

    /* A loaded seeded ciphertext keeps its seed: saving it again gives the same bytes. */
    uint8_t *again = NULL;
    size_t again_len = 0;
    assert_int_equal(cdl_ckks_ciphertext_load(F.ctx, b, blen, &back), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, back, 0, &again, &again_len), CDL_OK);
    assert_int_equal(again_len, blen);
    assert_memory_equal(again, b, blen);
    cdl_free_bytes(again);
    cdl_ckks_ciphertext_free(back);
    back = NULL;

    /* A stale "seeded" flag (c1 changed behind the evaluator's back) is not
     * trusted: the saver checks the seed against c1 and writes c1 in full. */
    uint64_t *c1 = cdl_ct_poly(sk_ct, 1, 0);
    c1[5] = (c1[5] + 1) % F.ctx->primes[0];
    assert_int_equal(sk_ct->seeded, 1);
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, sk_ct, 0, &again, &again_len), CDL_OK);
    assert_int_equal(again_len, alen);
    assert_int_equal(cdl_ckks_ciphertext_load(F.ctx, again, again_len, &back), CDL_OK);
    assert_true(cdl_ct_poly(back, 1, 0)[5] == c1[5]);
    cdl_free_bytes(again);
    cdl_ckks_ciphertext_free(back);
    cdl_free_bytes(a);
    cdl_free_bytes(b);
    cdl_free_bytes(c);
    cdl_ckks_ciphertext_free(sum);
    cdl_ckks_ciphertext_free(sk_ct);
    cdl_ckks_ciphertext_free(pk_ct);
}

static void test_plaintext_round_trip(void **state)
{
    (void)state;
    double v[NVALS], got[NVALS];
    test_values(v, NVALS, 2.2);
    for (int compression = 0; compression <= 9; compression += 9) {
        for (int level = 0; level <= cdl_ckks_max_level(F.ctx); level++) {
            cdl_ckks_plaintext *pt = encode_at(v, NVALS, level), *back = NULL;
            uint8_t *blob = NULL;
            size_t len = 0;
            assert_int_equal(cdl_ckks_plaintext_save(F.ctx, pt, compression, &blob, &len), CDL_OK);
            assert_int_equal(cdl_ckks_plaintext_load(F.ctx, blob, len, &back), CDL_OK);
            assert_int_equal(cdl_ckks_plaintext_level(back), level);
            assert_true(cdl_ckks_plaintext_scale(back) == cdl_ckks_plaintext_scale(pt));
            assert_int_equal(cdl_ckks_decode(F.ctx, back, got, NVALS), CDL_OK);
            for (int i = 0; i < NVALS; i++)
                assert_true(fabs(got[i] - v[i]) < 1e-6);
            cdl_free_bytes(blob);
            cdl_ckks_plaintext_free(back);
            cdl_ckks_plaintext_free(pt);
        }
    }
}

static void test_secret_key_round_trip(void **state)
{
    (void)state;
    double v[NVALS];
    test_values(v, NVALS, 0.9);
    cdl_ckks_ciphertext *ct = encrypt(v, NVALS, 0);
    for (int compression = 0; compression <= 5; compression += 5) {
        uint8_t *blob = NULL;
        size_t len = 0;
        cdl_ckks_secret_key *back = NULL;
        assert_int_equal(cdl_ckks_secret_key_save(F.ctx, F.sk, compression, &blob, &len), CDL_OK);
        /* 2 bits per coefficient, not the NTT form; never compressed by the saver. */
        assert_int_equal(len, CDL_ENVELOPE_BYTES + 4 + F.ctx->n / 4);
        assert_int_equal(blob[40], 0);
        if (compression) { /* but a compressed key (made by hand here) loads */
            uint8_t *payload = NULL, *zblob = NULL;
            size_t plen = 0, zlen = 0;
            open_payload(blob, len, CDL_OBJ_SECRET_KEY, &payload, &plen);
            wrap_payload(CDL_OBJ_SECRET_KEY, F.ctx->param_hash, payload, plen, compression, &zblob, &zlen);
            assert_int_equal(zblob[40], 1);
            cdl_wipe(blob, len);
            cdl_free_bytes(blob);
            cdl_wipe(payload, plen);
            cdl_free_bytes(payload);
            blob = zblob;
            len = zlen;
        }
        assert_int_equal(cdl_ckks_secret_key_load(F.ctx, blob, len, &back), CDL_OK);
        assert_memory_equal(back->coeffs, F.sk->coeffs, F.ctx->n);
        assert_memory_equal(back->s, F.sk->s, (size_t)F.ctx->qp_count * F.ctx->n * 8);
        decrypt_check(back, ct, v, NVALS);
        cdl_wipe(blob, len);
        cdl_free_bytes(blob);
        cdl_ckks_secret_key_free(back);
    }
    cdl_ckks_ciphertext_free(ct);
}

static void test_public_and_relin_key_round_trip(void **state)
{
    (void)state;
    double v[NVALS], w[NVALS], prod[NVALS];
    test_values(v, NVALS, 0.4);
    test_values(w, NVALS, 2.8);
    for (int i = 0; i < NVALS; i++)
        prod[i] = v[i] * w[i];
    for (int compression = 0; compression <= 1; compression++) {
        uint8_t *pkb = NULL, *rkb = NULL;
        size_t pkl, rkl;
        cdl_ckks_public_key *pk = NULL;
        cdl_ckks_relin_key *rlk = NULL;
        assert_int_equal(cdl_ckks_public_key_save(F.ctx, F.pk, compression, &pkb, &pkl), CDL_OK);
        assert_int_equal(cdl_ckks_relin_key_save(F.ctx, F.rlk, compression, &rkb, &rkl), CDL_OK);
        assert_int_equal(cdl_ckks_public_key_load(F.ctx, pkb, pkl, &pk), CDL_OK);
        assert_int_equal(cdl_ckks_relin_key_load(F.ctx, rkb, rkl, &rlk), CDL_OK);
        /* the whole key comes back, including its special-prime part */
        assert_memory_equal(pk->data, F.pk->data, 2 * (size_t)F.pk->q_count * F.pk->n * sizeof(uint64_t));
        assert_non_null(F.pk->p_data);
        assert_non_null(pk->p_data);
        assert_int_equal(pk->p_count, F.pk->p_count);
        assert_memory_equal(pk->p_data, F.pk->p_data, 2 * (size_t)F.pk->p_count * F.pk->n * sizeof(uint64_t));
        cdl_ckks_plaintext *pv = encode_at(v, NVALS, cdl_ckks_max_level(F.ctx));
        cdl_ckks_plaintext *pw = encode_at(w, NVALS, cdl_ckks_max_level(F.ctx));
        cdl_ckks_ciphertext *a = NULL, *b = NULL, *m = NULL;
        assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &a), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &b), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &m), CDL_OK);
        assert_int_equal(cdl_ckks_encrypt_pk(F.ctx, pk, pv, F.rng, a), CDL_OK);
        assert_int_equal(cdl_ckks_encrypt_pk(F.ctx, pk, pw, F.rng, b), CDL_OK);
        decrypt_check(F.sk, a, v, NVALS);
        assert_int_equal(cdl_ckks_mul_relin(F.ctx, rlk, a, b, m), CDL_OK);
        assert_int_equal(cdl_ckks_rescale(F.ctx, m, m), CDL_OK);
        decrypt_check(F.sk, m, prod, NVALS);
        cdl_ckks_ciphertext_free(m);
        cdl_ckks_ciphertext_free(b);
        cdl_ckks_ciphertext_free(a);
        cdl_ckks_plaintext_free(pw);
        cdl_ckks_plaintext_free(pv);
        cdl_ckks_relin_key_free(rlk);
        cdl_ckks_public_key_free(pk);
        cdl_free_bytes(rkb);
        cdl_free_bytes(pkb);
    }
}

/* Keys truncated to a level (cdl_ckks_keygen_galois_levels): smaller, the
 * same rotations at or below their level, refused above it, and a file that
 * round-trips with its levels checked. */
static void test_galois_keys_levels(void **state)
{
    (void)state;
    const int levels[3] = {0, 1, 0};
    cdl_ckks_galois_keys *gk = NULL, *back = NULL;
    assert_int_equal(cdl_ckks_keygen_galois_levels(F.ctx, F.sk, rot_steps, levels, 3, 0, F.rng, &gk), CDL_OK);
    for (int s = 0; s < 3; s++)
        assert_int_equal(cdl_ckks_galois_keys_step_level(gk, rot_steps[s]), levels[s]);
    assert_int_equal(cdl_ckks_galois_keys_step_level(gk, 2), -1);
    uint8_t *blob = NULL, *full = NULL;
    size_t len = 0, full_len = 0;
    assert_int_equal(cdl_ckks_galois_keys_save(F.ctx, gk, 0, &blob, &len), CDL_OK);
    assert_int_equal(cdl_ckks_galois_keys_save(F.ctx, F.gk, 0, &full, &full_len), CDL_OK);
    assert_true(len < full_len / 2); /* 3 truncated keys against 3 full ones and a conjugation key */
    assert_int_equal(cdl_ckks_galois_keys_load(F.ctx, blob, len, &back), CDL_OK);
    for (int s = 0; s < 3; s++)
        assert_int_equal(cdl_ckks_galois_keys_step_level(back, rot_steps[s]), levels[s]);
    /* a rotation at level 0 with every key, against the full key's result */
    const size_t slots = cdl_ckks_slots(F.ctx);
    double *v = malloc(slots * sizeof *v), *got = malloc(slots * sizeof *got);
    assert_non_null(v);
    assert_non_null(got);
    for (size_t i = 0; i < slots; i++)
        v[i] = sin(0.05 * (double)i);
    cdl_ckks_plaintext *pt = NULL;
    cdl_ckks_ciphertext *ct = NULL, *low = NULL, *rot = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(F.ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &ct), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &low), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &rot), CDL_OK);
    assert_int_equal(cdl_ckks_encode(F.ctx, v, slots, cdl_ckks_default_scale(F.ctx), cdl_ckks_max_level(F.ctx), pt),
                     CDL_OK);
    assert_int_equal(cdl_ckks_encrypt_sk(F.ctx, F.sk, pt, F.rng, ct), CDL_OK);
    assert_int_equal(cdl_ckks_drop_to_level(F.ctx, ct, 0, low), CDL_OK);
    for (int s = 0; s < 3; s++) {
        assert_int_equal(cdl_ckks_rotate(F.ctx, back, low, rot_steps[s], rot), CDL_OK);
        assert_int_equal(cdl_ckks_decrypt(F.ctx, F.sk, rot, pt), CDL_OK);
        assert_int_equal(cdl_ckks_decode(F.ctx, pt, got, slots), CDL_OK);
        for (size_t i = 0; i < slots; i++)
            assert_true(fabs(got[i] - v[(i + slots + (size_t)(rot_steps[s] % (int)slots)) % slots]) < TOL);
    }
    /* above its level: refused, naming the level */
    assert_int_equal(cdl_ckks_rotate(F.ctx, back, ct, rot_steps[0], rot), CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "only serves levels"));
    /* hoisted rotations mix levels as long as each key serves the ciphertext's */
    cdl_ckks_ciphertext *outs[3] = {NULL, NULL, NULL};
    for (int s = 0; s < 3; s++)
        assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &outs[s]), CDL_OK);
    assert_int_equal(cdl_ckks_rotate_hoisted(F.ctx, back, low, rot_steps, 3, outs), CDL_OK);
    for (int s = 0; s < 3; s++)
        cdl_ckks_ciphertext_free(outs[s]);
    /* a level above the parameters' is refused by the loader: the first level word follows count, 0, qp */
    uint8_t *payload = NULL, *bad = NULL;
    size_t plen = 0, bad_len = 0;
    open_payload(blob, len, CDL_OBJ_GALOIS_KEYS, &payload, &plen);
    payload[12] = 0x7f;
    assert_int_equal(cdl_envelope_wrap(CDL_OBJ_GALOIS_KEYS, F.ctx->param_hash, payload, plen, 0, &bad, &bad_len),
                     CDL_OK);
    cdl_ckks_galois_keys *x = NULL;
    assert_int_equal(cdl_ckks_galois_keys_load(F.ctx, bad, bad_len, &x), CDL_ERR_FORMAT);
    assert_null(x);
    cdl_free_bytes(payload);
    cdl_free_bytes(bad);
    cdl_ckks_ciphertext_free(rot);
    cdl_ckks_ciphertext_free(low);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_plaintext_free(pt);
    free(v);
    free(got);
    cdl_free_bytes(blob);
    cdl_free_bytes(full);
    cdl_ckks_galois_keys_free(back);
    cdl_ckks_galois_keys_free(gk);
}

static void test_galois_keys_round_trip(void **state)
{
    (void)state;
    size_t slots = cdl_ckks_slots(F.ctx);
    double *re = calloc(slots, sizeof *re), *im = calloc(slots, sizeof *im);
    double *got_re = calloc(slots, sizeof *got_re), *got_im = calloc(slots, sizeof *got_im);
    assert_non_null(re);
    assert_non_null(im);
    assert_non_null(got_re);
    assert_non_null(got_im);
    for (size_t i = 0; i < slots; i++) {
        re[i] = cos(0.01 * (double)i * (double)i);
        im[i] = sin(0.3 * (double)i);
    }
    for (int compression = 0; compression <= 3; compression += 3) {
        uint8_t *blob = NULL;
        size_t len = 0;
        cdl_ckks_galois_keys *gk = NULL;
        assert_int_equal(cdl_ckks_galois_keys_save(F.ctx, F.gk, compression, &blob, &len), CDL_OK);
        assert_int_equal(cdl_ckks_galois_keys_load(F.ctx, blob, len, &gk), CDL_OK);
        for (size_t s = 0; s < 3; s++)
            assert_true(cdl_ckks_galois_keys_has_step(gk, rot_steps[s]));
        cdl_ckks_plaintext *pt = NULL;
        cdl_ckks_ciphertext *ct = NULL, *rot = NULL;
        assert_int_equal(cdl_ckks_plaintext_new(F.ctx, &pt), CDL_OK);
        assert_int_equal(cdl_ckks_encode_complex(F.ctx, re, im, slots, cdl_ckks_default_scale(F.ctx),
                                                 cdl_ckks_max_level(F.ctx), pt),
                         CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &ct), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_new(F.ctx, &rot), CDL_OK);
        assert_int_equal(cdl_ckks_encrypt_sk(F.ctx, F.sk, pt, F.rng, ct), CDL_OK);
        for (size_t s = 0; s < 3; s++) {
            int step = rot_steps[s];
            assert_int_equal(cdl_ckks_rotate(F.ctx, gk, ct, step, rot), CDL_OK);
            assert_int_equal(cdl_ckks_decrypt(F.ctx, F.sk, rot, pt), CDL_OK);
            assert_int_equal(cdl_ckks_decode_complex(F.ctx, pt, got_re, got_im, slots), CDL_OK);
            for (size_t i = 0; i < slots; i++) { /* left rotation: out[i] = in[i + step] */
                size_t from = (i + slots + (size_t)(step % (int)slots)) % slots;
                assert_true(fabs(got_re[i] - re[from]) < TOL);
                assert_true(fabs(got_im[i] - im[from]) < TOL);
            }
        }
        assert_int_equal(cdl_ckks_conjugate(F.ctx, gk, ct, rot), CDL_OK);
        assert_int_equal(cdl_ckks_decrypt(F.ctx, F.sk, rot, pt), CDL_OK);
        assert_int_equal(cdl_ckks_decode_complex(F.ctx, pt, got_re, got_im, slots), CDL_OK);
        for (size_t i = 0; i < slots; i++) {
            assert_true(fabs(got_re[i] - re[i]) < TOL);
            assert_true(fabs(got_im[i] + im[i]) < TOL);
        }
        cdl_ckks_ciphertext_free(rot);
        cdl_ckks_ciphertext_free(ct);
        cdl_ckks_plaintext_free(pt);
        cdl_ckks_galois_keys_free(gk);
        cdl_free_bytes(blob);
    }
    free(re);
    free(im);
    free(got_re);
    free(got_im);
}

/* A secure context round-trips; an insecure one is refused on load. */
static void secure_spec(cdl_ckks_param_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->log_n = 12; /* 2^12 allows log QP <= 109 */
    spec->q_count = 2;
    spec->q_bits[0] = 40;
    spec->q_bits[1] = 30;
    spec->p_count = 1;
    spec->p_bits[0] = 38;
    spec->scale = ldexp(1.0, 30);
}

static void test_context_round_trip(void **state)
{
    (void)state;
    cdl_ckks_param_spec spec;
    secure_spec(&spec);
    /* A sparse secret at N = 2^12 has no 128-bit estimate: refused at
     * creation (docs/security.md); the dense secret is fine. */
    spec.secret_hamming_weight = 64;
    cdl_ckks_context *ctx = NULL, *back = NULL;
    assert_int_equal(cdl_ckks_context_new(&spec, &ctx), CDL_ERR_INSECURE);
    assert_null(ctx);
    spec.secret_hamming_weight = 0;
    assert_int_equal(cdl_ckks_context_new(&spec, &ctx), CDL_OK);
    for (int compression = 0; compression <= 19; compression += 19) {
        uint8_t *blob = NULL;
        size_t len = 0;
        assert_int_equal(cdl_ckks_context_save(ctx, compression, &blob, &len), CDL_OK);
        assert_int_equal(cdl_ckks_context_load(blob, len, &back), CDL_OK);
        assert_memory_equal(cdl_ckks_param_hash(back), cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES);
        assert_int_equal(cdl_ckks_log_n(back), 12);
        assert_int_equal(cdl_ckks_max_level(back), 1);
        assert_true(cdl_ckks_default_scale(back) == spec.scale);
        assert_int_equal(back->spec.secret_hamming_weight, 0);
        for (int i = 0; i < back->qp_count; i++)
            assert_true(back->primes[i] == ctx->primes[i]);
        cdl_ckks_context_free(back);
        back = NULL;

        /* A forged prime (valid checksum) is caught by the regeneration check. */
        uint8_t *payload = NULL, *forged = NULL;
        size_t plen = 0, flen = 0;
        open_payload(blob, len, CDL_OBJ_PARAMS, &payload, &plen);
        size_t prime0_at = plen - 8 * 3;
        put_u64(payload + prime0_at, ctx->primes[0] - 2 * 4096 * 2); /* still = 1 mod 2N, not the generated one */
        wrap_payload(CDL_OBJ_PARAMS, cdl_ckks_param_hash(ctx), payload, plen, 0, &forged, &flen);
        assert_int_equal(cdl_ckks_context_load(forged, flen, &back), CDL_ERR_FORMAT);
        assert_null(back);
        cdl_free_bytes(forged);
        put_u64(payload + prime0_at, ctx->primes[0]);
        /* Parameters that do not match the header's hash. */
        uint8_t other_hash[CDL_HASH_BYTES];
        memcpy(other_hash, cdl_ckks_param_hash(ctx), sizeof other_hash);
        other_hash[5] ^= 0x10;
        wrap_payload(CDL_OBJ_PARAMS, other_hash, payload, plen, 0, &forged, &flen);
        assert_int_equal(cdl_ckks_context_load(forged, flen, &back), CDL_ERR_FORMAT);
        cdl_free_bytes(forged);
        /* A file cannot carry a sparse secret past the security check: the
         * Hamming weight (payload bytes 16..20) set to 1 or 64 is refused
         * whatever the header's hash. */
        const uint32_t weights[] = {1, 64, 2730};
        for (int w = 0; w < 3; w++) {
            put_u32(payload + 16, weights[w]);
            wrap_payload(CDL_OBJ_PARAMS, cdl_ckks_param_hash(ctx), payload, plen, 0, &forged, &flen);
            assert_int_equal(cdl_ckks_context_load(forged, flen, &back), CDL_ERR_INSECURE);
            assert_null(back);
            assert_non_null(strstr(cdl_last_error(), "sparse secret"));
            cdl_free_bytes(forged);
        }
        put_u32(payload + 16, 0);
        /* Out-of-range counts. */
        put_u32(payload + 4, 0); /* q_count */
        wrap_payload(CDL_OBJ_PARAMS, cdl_ckks_param_hash(ctx), payload, plen, 0, &forged, &flen);
        assert_int_equal(cdl_ckks_context_load(forged, flen, &back), CDL_ERR_FORMAT);
        cdl_free_bytes(forged);
        put_u32(payload + 4, 0x7fffffff);
        wrap_payload(CDL_OBJ_PARAMS, cdl_ckks_param_hash(ctx), payload, plen, 0, &forged, &flen);
        assert_int_equal(cdl_ckks_context_load(forged, flen, &back), CDL_ERR_FORMAT);
        cdl_free_bytes(forged);
        /* Every truncation of the payload. */
        put_u32(payload + 4, 2);
        for (size_t cut = 0; cut < plen; cut++) {
            wrap_payload(CDL_OBJ_PARAMS, cdl_ckks_param_hash(ctx), payload, cut, 0, &forged, &flen);
            assert_int_equal(cdl_ckks_context_load(forged, flen, &back), CDL_ERR_FORMAT);
            cdl_free_bytes(forged);
        }
        cdl_free_bytes(payload);
        cdl_free_bytes(blob);
    }
    cdl_ckks_context_free(ctx);

    /* The test-only insecure parameters of the fixture cannot come back. */
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_ckks_context_save(F.ctx, 0, &blob, &len), CDL_OK);
    assert_int_equal(cdl_ckks_context_load(blob, len, &back), CDL_ERR_INSECURE);
    assert_null(back);
    assert_non_null(strstr(cdl_last_error(), "128-bit"));
    cdl_free_bytes(blob);
}

/* ---- hostile inputs --------------------------------------------------------- */

/* Truncated envelopes, and truncated or extended payloads behind a valid checksum. */
static void test_truncations(void **state)
{
    (void)state;
    sample s[S_COUNT];
    for (int compression = 0; compression <= 1; compression++) {
        make_samples(s, compression);
        for (int k = 0; k < S_COUNT; k++) {
            size_t len = s[k].len;
            size_t cuts[] = {0, 1, 3, 4, 7, 8, 39, 40, 95, 96, 97, 100, len / 2, len - 9, len - 8, len - 1};
            for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++)
                if (cuts[c] < len && s[k].load(s[k].blob, cuts[c]) != CDL_ERR_FORMAT)
                    fail_msg("%s cut to %zu of %zu bytes was not rejected", s[k].name, cuts[c], len);
            assert_int_equal(s[k].load(s[k].blob, len), CDL_OK);
            uint8_t *payload = NULL;
            size_t plen = 0;
            open_payload(s[k].blob, len, s[k].type, &payload, &plen);
            uint8_t *ext = malloc(plen + 8);
            assert_non_null(ext);
            memcpy(ext, payload, plen);
            memset(ext + plen, 0, 8);
            size_t pcuts[] = {0, 1, 4, 8, 11, 12, 19, 20, 36, 51, 52, plen / 2, plen - 8, plen - 1, plen + 1, plen + 8};
            for (size_t c = 0; c < sizeof pcuts / sizeof pcuts[0]; c++) {
                if (pcuts[c] == plen)
                    continue;
                uint8_t *blob = NULL;
                size_t blen = 0;
                wrap_payload(s[k].type, F.ctx->param_hash, ext, pcuts[c], compression, &blob, &blen);
                if (s[k].load(blob, blen) != CDL_ERR_FORMAT)
                    fail_msg("%s with its payload cut to %zu of %zu bytes was not rejected", s[k].name, pcuts[c],
                             plen);
                cdl_free_bytes(blob);
            }
            cdl_wipe(ext, plen);
            free(ext);
            cdl_wipe(payload, plen);
            cdl_free_bytes(payload);
        }
        free_samples(s);
    }
}

/* Single-bit flips: every header bit, and payload bits spread over the object. */
static void test_bit_flips(void **state)
{
    (void)state;
    sample s[S_COUNT];
    for (int compression = 0; compression <= 1; compression++) {
        make_samples(s, compression);
        for (int k = 0; k < S_COUNT; k++) {
            uint8_t *b = s[k].blob;
            size_t len = s[k].len;
            size_t step_bits = (k == S_GK || k == S_RLK) ? 5 : 1;
            for (size_t bit = 0; bit < CDL_ENVELOPE_BYTES * 8; bit += step_bits) {
                b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                cdl_status st = s[k].load(b, len);
                b[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                int in_hash = bit / 8 >= 8 && bit / 8 < 8 + CDL_HASH_BYTES;
                if (st != (in_hash ? CDL_ERR_MISMATCH : CDL_ERR_FORMAT))
                    fail_msg("%s: header bit %zu flipped gave status %d", s[k].name, bit, st);
            }
            size_t stride = len / 97 + 1;
            for (size_t byte = CDL_ENVELOPE_BYTES; byte < len; byte += stride) {
                int bit = (int)(byte % 8);
                b[byte] ^= (uint8_t)(1u << bit);
                cdl_status st = s[k].load(b, len);
                b[byte] ^= (uint8_t)(1u << bit);
                if (st != CDL_ERR_FORMAT)
                    fail_msg("%s: payload byte %zu bit %d flipped gave status %d", s[k].name, byte, bit, st);
            }
            assert_int_equal(s[k].load(b, len), CDL_OK);
        }
        free_samples(s);
    }
}

/* Length and count fields far too large, in the envelope and in the payloads. */
static void test_oversized_fields(void **state)
{
    (void)state;
    sample s[S_COUNT];
    make_samples(s, 0);
    for (int k = 0; k < S_COUNT; k++) {
        uint8_t *b = s[k].blob;
        uint8_t saved[16];
        memcpy(saved, b + 44, 16);
        put_u64(b + 44, UINT64_MAX); /* stored length */
        assert_int_equal(s[k].load(b, s[k].len), CDL_ERR_FORMAT);
        put_u64(b + 44, (uint64_t)1 << 62);
        put_u64(b + 52, (uint64_t)1 << 62); /* raw length */
        assert_int_equal(s[k].load(b, s[k].len), CDL_ERR_FORMAT);
        memcpy(b + 44, saved, 16);
        assert_int_equal(s[k].load(b, s[k].len), CDL_OK);
    }
    /* A compressed object that claims to decompress to far more than the context allows. */
    for (int k = 0; k < S_COUNT; k++) {
        uint8_t *payload = NULL, *blob = NULL;
        size_t plen = 0, blen = 0;
        open_payload(s[k].blob, s[k].len, s[k].type, &payload, &plen);
        wrap_payload(s[k].type, F.ctx->param_hash, payload, plen, 1, &blob, &blen);
        put_u64(blob + 52, (uint64_t)plen * 1000);
        assert_int_equal(s[k].load(blob, blen), CDL_ERR_FORMAT);
        cdl_free_bytes(blob);
        cdl_wipe(payload, plen);
        cdl_free_bytes(payload);
    }
    /* Payload fields: each overwrite of a u32 at `at` with `value` must be rejected. */
    struct {
        int sample;
        size_t at;
        uint32_t value;
    } cases[] = {
        {S_PK, 0, 0xffffffffu},       {S_PK, 0, 4},                  /* RNS limb count */
        {S_RLK, 0, 0xffffffffu},      {S_RLK, 4, 0xffffffffu},       /* digits, primes */
        {S_GK, 0, 0xffffffffu},       {S_GK, 0, 1u << 20},           /* key count */
        {S_GK, 0, 0},                 {S_GK, 0, 3},                  /* fewer keys than stored */
        {S_GK, 0, 5},                 {S_GK, 4, 7},                  /* more keys; digits */
        {S_PT, 0, 0xffffffffu},       {S_PT, 0, 3},                  /* level */
        {S_CT, 0, 0xffffffffu},       {S_CT, 0, 1},                  /* size */
        {S_CT, 0, 3},                 {S_CT, 4, 0x80000000u},        /* size 3 without c2; level */
        {S_CT, 4, 3},                 {S_CT, 8, 2},                  /* level; unknown flag */
        {S_CT, 8, 1},                 {S_CT_SEEDED, 8, 0},           /* seed flag without / with a seed */
        {S_CT3, 8, 1},                {S_SK, 0, 2},                  /* seed on size 3; sk encoding */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sample *o = &s[cases[c].sample];
        for (int compression = 0; compression <= 1; compression++) {
            uint8_t *payload = NULL, *blob = NULL;
            size_t plen = 0, blen = 0;
            open_payload(o->blob, o->len, o->type, &payload, &plen);
            put_u32(payload + cases[c].at, cases[c].value);
            wrap_payload(o->type, F.ctx->param_hash, payload, plen, compression, &blob, &blen);
            cdl_status st = o->load(blob, blen);
            if (st != CDL_ERR_FORMAT)
                fail_msg("%s: u32 at payload offset %zu set to %u gave status %d (%s)", o->name, cases[c].at,
                         cases[c].value, st, cdl_last_error());
            cdl_free_bytes(blob);
            cdl_wipe(payload, plen);
            cdl_free_bytes(payload);
        }
    }
    free_samples(s);
}

/* Scales that are not finite positive numbers. */
static void test_bad_scales(void **state)
{
    (void)state;
    sample s[S_COUNT];
    make_samples(s, 0);
    double bad[] = {0.0, -1.0, -0.0, INFINITY, -INFINITY, NAN};
    int which[] = {S_CT, S_PT};
    size_t scale_at[] = {12, 4};
    for (int w = 0; w < 2; w++) {
        sample *o = &s[which[w]];
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            uint8_t *payload = NULL, *blob = NULL;
            size_t plen = 0, blen = 0;
            open_payload(o->blob, o->len, o->type, &payload, &plen);
            uint64_t bits;
            memcpy(&bits, &bad[i], 8);
            put_u64(payload + scale_at[w], bits);
            wrap_payload(o->type, F.ctx->param_hash, payload, plen, 0, &blob, &blen);
            assert_int_equal(o->load(blob, blen), CDL_ERR_FORMAT);
            cdl_free_bytes(blob);
            cdl_free_bytes(payload);
        }
    }
    free_samples(s);
}

/* Each object loaded as every other type is rejected. */
static void test_wrong_type(void **state)
{
    (void)state;
    sample s[S_COUNT];
    make_samples(s, 0);
    for (int k = 0; k < S_COUNT; k++)
        for (int j = 0; j < S_COUNT; j++) {
            if (s[j].type == s[k].type)
                continue;
            if (s[j].load(s[k].blob, s[k].len) != CDL_ERR_FORMAT)
                fail_msg("a %s loaded as a %s was not rejected", s[k].name, s[j].name);
            /* The type field rewritten (the checksum only covers the payload). */
            uint8_t saved0 = s[k].blob[6], saved1 = s[k].blob[7];
            s[k].blob[6] = (uint8_t)s[j].type;
            s[k].blob[7] = (uint8_t)(s[j].type >> 8);
            if (s[j].load(s[k].blob, s[k].len) != CDL_ERR_FORMAT)
                fail_msg("a %s relabelled as a %s was not rejected", s[k].name, s[j].name);
            s[k].blob[6] = saved0;
            s[k].blob[7] = saved1;
        }
    assert_int_equal(load_ctx(s[S_PK].blob, s[S_PK].len), CDL_ERR_FORMAT);
    free_samples(s);
}

/* Objects made for other parameters: CDL_ERR_MISMATCH. */
static void test_other_parameters(void **state)
{
    (void)state;
    sample s[S_COUNT];
    make_samples(s, 0);
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_public_key *pk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL;
    cdl_ckks_plaintext *pt = NULL;
    cdl_ckks_ciphertext *ct = NULL;
    assert_int_equal(cdl_ckks_secret_key_load(F.other, s[S_SK].blob, s[S_SK].len, &sk), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_ckks_public_key_load(F.other, s[S_PK].blob, s[S_PK].len, &pk), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_ckks_relin_key_load(F.other, s[S_RLK].blob, s[S_RLK].len, &rlk), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_ckks_galois_keys_load(F.other, s[S_GK].blob, s[S_GK].len, &gk), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_ckks_plaintext_load(F.other, s[S_PT].blob, s[S_PT].len, &pt), CDL_ERR_MISMATCH);
    for (int k = S_CT; k <= S_CT3; k++)
        assert_int_equal(cdl_ckks_ciphertext_load(F.other, s[k].blob, s[k].len, &ct), CDL_ERR_MISMATCH);
    assert_null(sk);
    assert_null(pk);
    assert_null(rlk);
    assert_null(gk);
    assert_null(pt);
    assert_null(ct);
    free_samples(s);
}

/* Coefficients at or above their prime, behind a recomputed checksum. */
static void test_coefficient_range(void **state)
{
    (void)state;
    sample s[S_COUNT];
    make_samples(s, 0);
    size_t n = F.ctx->n;
    int q = F.ctx->q_count, qp = F.ctx->qp_count, dnum = F.ctx->dnum;
    size_t gk_count = F.gk->count;
    int p = F.ctx->p_count;
    /* (sample, byte offset of limb 0 of the first polynomial, limbs per polynomial, polynomials,
     * index of the prime of limb 0). */
    struct {
        int sample;
        size_t at;
        int limbs;
        int polys;
        int first;
    } layout[] = {
        {S_PK, 8, q, 2, 0},
        {S_PK, 8 + 2 * (size_t)q * n * 8, p, 2, q}, /* the key's special-prime part */
        {S_RLK, 8, qp, 2 * dnum, 0},
        {S_GK, 12 + 8 * gk_count, qp, 2 * dnum * (int)gk_count, 0},
        {S_PT, 12, 2, 1, 0}, /* the sample plaintext is at level 1 */
        {S_CT, 20, q, 2, 0},
        {S_CT_SEEDED, 20 + CDL_CKKS_SEED_BYTES, q, 1, 0},
        {S_CT3, 20, q, 3, 0},
    };
    for (size_t c = 0; c < sizeof layout / sizeof layout[0]; c++) {
        sample *o = &s[layout[c].sample];
        uint8_t *payload = NULL;
        size_t plen = 0;
        open_payload(o->blob, o->len, o->type, &payload, &plen);
        int total_limbs = layout[c].limbs * layout[c].polys;
        /* First, middle and last coefficient of every limb; values q, q + 1 and 2^64 - 1. */
        for (int l = 0; l < total_limbs; l++) {
            uint64_t prime = F.ctx->primes[layout[c].first + l % layout[c].limbs];
            size_t idx[] = {0, n / 2 + 1, n - 1};
            uint64_t vals[] = {prime, prime + 1, UINT64_MAX};
            for (int t = 0; t < 3; t++) {
                size_t at = layout[c].at + ((size_t)l * n + idx[t]) * 8;
                assert_true(at + 8 <= plen);
                uint8_t saved[8];
                memcpy(saved, payload + at, 8);
                put_u64(payload + at, vals[(l + t) % 3]);
                uint8_t *blob = NULL;
                size_t blen = 0;
                wrap_payload(o->type, F.ctx->param_hash, payload, plen, 0, &blob, &blen);
                cdl_status st = o->load(blob, blen);
                if (st != CDL_ERR_FORMAT || !strstr(cdl_last_error(), "not below its prime"))
                    fail_msg("%s: limb %d coefficient %zu >= prime not caught (status %d: %s)", o->name, l, idx[t],
                             st, cdl_last_error());
                cdl_free_bytes(blob);
                /* Just below the prime is fine. */
                put_u64(payload + at, prime - 1);
                wrap_payload(o->type, F.ctx->param_hash, payload, plen, 0, &blob, &blen);
                assert_int_equal(o->load(blob, blen), CDL_OK);
                cdl_free_bytes(blob);
                memcpy(payload + at, saved, 8);
            }
        }
        cdl_free_bytes(payload);
    }
    free_samples(s);
}

/* Invalid secret-key codes and Galois elements, behind a recomputed checksum. */
static void test_secret_and_galois_content(void **state)
{
    (void)state;
    sample s[S_COUNT];
    make_samples(s, 0);
    uint8_t *payload = NULL, *blob = NULL;
    size_t plen = 0, blen = 0;
    /* The 2-bit code 2 is not a ternary value. */
    open_payload(s[S_SK].blob, s[S_SK].len, CDL_OBJ_SECRET_KEY, &payload, &plen);
    for (size_t byte = 4; byte < plen; byte += 37) {
        uint8_t saved = payload[byte];
        payload[byte] = (uint8_t)((saved & ~(3u << 2)) | (2u << 2));
        wrap_payload(CDL_OBJ_SECRET_KEY, F.ctx->param_hash, payload, plen, 0, &blob, &blen);
        assert_int_equal(load_sk(blob, blen), CDL_ERR_FORMAT);
        cdl_wipe(blob, blen);
        cdl_free_bytes(blob);
        payload[byte] = saved;
    }
    cdl_wipe(payload, plen);
    cdl_free_bytes(payload);

    /* Galois elements: duplicate, even, too large. */
    open_payload(s[S_GK].blob, s[S_GK].len, CDL_OBJ_GALOIS_KEYS, &payload, &plen);
    uint32_t count = get_u32(payload);
    assert_true(count >= 2);
    uint8_t saved[8];
    memcpy(saved, payload + 12 + 8, 8);
    uint64_t bad[] = {0, 2, 2 * F.ctx->n, 2 * F.ctx->n + 1, UINT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0] + 1; i++) {
        if (i < sizeof bad / sizeof bad[0])
            put_u64(payload + 12 + 8, bad[i]);
        else
            memcpy(payload + 12 + 8, payload + 12, 8); /* duplicate of the first */
        wrap_payload(CDL_OBJ_GALOIS_KEYS, F.ctx->param_hash, payload, plen, 0, &blob, &blen);
        assert_int_equal(load_gk(blob, blen), CDL_ERR_FORMAT);
        cdl_free_bytes(blob);
    }
    memcpy(payload + 12 + 8, saved, 8);
    cdl_free_bytes(payload);
    free_samples(s);

    /* A fixed Hamming weight is enforced on load. */
    cdl_ckks_param_spec spec;
    small_spec(&spec, 45);
    spec.secret_hamming_weight = 64;
    cdl_ckks_context *hctx = NULL;
    cdl_ckks_secret_key *hsk = NULL, *back = NULL;
    assert_int_equal(cdl_ckks_context_new(&spec, &hctx), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(hctx, F.rng, &hsk), CDL_OK);
    uint8_t *hb = NULL;
    size_t hlen = 0;
    assert_int_equal(cdl_ckks_secret_key_save(hctx, hsk, 0, &hb, &hlen), CDL_OK);
    assert_int_equal(cdl_ckks_secret_key_load(hctx, hb, hlen, &back), CDL_OK);
    cdl_ckks_secret_key_free(back);
    back = NULL;
    open_payload(hb, hlen, CDL_OBJ_SECRET_KEY, &payload, &plen);
    size_t zero_at = 0;
    for (size_t j = 0; j < hctx->n; j++)
        if (hsk->coeffs[j] == 0) {
            zero_at = j;
            break;
        }
    payload[4 + zero_at / 4] |= (uint8_t)(1u << (2 * (zero_at % 4))); /* one more nonzero coefficient */
    uint8_t *forged = NULL;
    size_t flen = 0;
    wrap_payload(CDL_OBJ_SECRET_KEY, hctx->param_hash, payload, plen, 0, &forged, &flen);
    assert_int_equal(cdl_ckks_secret_key_load(hctx, forged, flen, &back), CDL_ERR_FORMAT);
    assert_null(back);
    cdl_wipe(forged, flen);
    cdl_free_bytes(forged);
    cdl_wipe(payload, plen);
    cdl_free_bytes(payload);
    cdl_wipe(hb, hlen);
    cdl_free_bytes(hb);
    cdl_ckks_secret_key_free(hsk);
    cdl_ckks_context_free(hctx);
}

/* NULL arguments are refused, not dereferenced. */
static void test_null_arguments(void **state)
{
    (void)state;
    uint8_t *blob = NULL;
    size_t len = 0;
    cdl_ckks_ciphertext *ct = NULL;
    assert_int_equal(cdl_ckks_ciphertext_save(F.ctx, NULL, 0, &blob, &len), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_ciphertext_load(NULL, (const uint8_t *)"x", 1, &ct), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_ciphertext_load(F.ctx, NULL, 5, &ct), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_ciphertext_load(F.ctx, NULL, 0, &ct), CDL_ERR_FORMAT);
    assert_int_equal(cdl_ckks_context_load(NULL, 0, NULL), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_public_key_save(F.ctx, F.pk, 20, &blob, &len), CDL_ERR_INVALID_ARGUMENT);
}

/* ---- fuzz seed corpora ------------------------------------------------------ */

static int write_seed(const char *dir, const char *target, const char *name, const uint8_t *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = fwrite(data, 1, len, f);
    return fclose(f) == 0 && put == len ? 0 : -1;
}

/* Write the seeds of every fuzz target under dir (one call per object). */
static void write_corpus(const char *dir)
{
    fuzz_ckks_setting fz;
    assert_int_equal(fuzz_ckks_setup(&fz, 1), 0);
    double v[4] = {0.5, -1.0, 2.0, 0.25};
    cdl_ckks_plaintext *pt = NULL, *pt0 = NULL;
    cdl_ckks_ciphertext *ct = NULL, *cts = NULL, *ct3 = NULL, *ct0 = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(fz.ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_plaintext_new(fz.ctx, &pt0), CDL_OK);
    assert_int_equal(cdl_ckks_encode(fz.ctx, v, 4, cdl_ckks_default_scale(fz.ctx), cdl_ckks_max_level(fz.ctx), pt),
                     CDL_OK);
    assert_int_equal(cdl_ckks_encode(fz.ctx, v, 4, cdl_ckks_default_scale(fz.ctx), 0, pt0), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(fz.ctx, &ct), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(fz.ctx, &cts), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(fz.ctx, &ct3), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(fz.ctx, &ct0), CDL_OK);
    assert_int_equal(cdl_ckks_encrypt_pk(fz.ctx, fz.pk, pt, fz.rng, ct), CDL_OK);
    assert_int_equal(cdl_ckks_encrypt_sk(fz.ctx, fz.sk, pt, fz.rng, cts), CDL_OK);
    assert_int_equal(cdl_ckks_mul(fz.ctx, ct, ct, ct3), CDL_OK);
    assert_int_equal(cdl_ckks_drop_to_level(fz.ctx, cts, 0, ct0), CDL_OK);

    cdl_ckks_context *secure = NULL;
    cdl_ckks_param_spec spec;
    secure_spec(&spec);
    assert_int_equal(cdl_ckks_context_new(&spec, &secure), CDL_OK);

    uint8_t *b = NULL;
    size_t len = 0;
#define SEED(target, name, call)                                          \
    do {                                                                  \
        assert_int_equal(call, CDL_OK);                                   \
        assert_int_equal(write_seed(dir, target, name, b, len), 0);       \
        cdl_wipe(b, len);                                                 \
        cdl_free_bytes(b);                                                \
    } while (0)
    SEED("ckks_context", "secure_n4096", cdl_ckks_context_save(secure, 0, &b, &len));
    SEED("ckks_context", "secure_n4096_zstd", cdl_ckks_context_save(secure, 3, &b, &len));
    SEED("ckks_context", "insecure_n1024", cdl_ckks_context_save(fz.ctx, 0, &b, &len));
    SEED("ckks_secret_key", "sk", cdl_ckks_secret_key_save(fz.ctx, fz.sk, 0, &b, &len));
    { /* the saver never compresses a secret key; the loader accepts one that is */
        uint8_t *raw = NULL, *payload = NULL;
        size_t raw_len = 0, plen = 0;
        assert_int_equal(cdl_ckks_secret_key_save(fz.ctx, fz.sk, 0, &raw, &raw_len), CDL_OK);
        open_payload(raw, raw_len, CDL_OBJ_SECRET_KEY, &payload, &plen);
        SEED("ckks_secret_key", "sk_zstd", cdl_envelope_wrap(CDL_OBJ_SECRET_KEY, fz.ctx->param_hash, payload, plen, 3, &b, &len));
        cdl_wipe(payload, plen);
        cdl_free_bytes(payload);
        cdl_wipe(raw, raw_len);
        cdl_free_bytes(raw);
    }
    SEED("ckks_public_key", "pk", cdl_ckks_public_key_save(fz.ctx, fz.pk, 0, &b, &len));
    SEED("ckks_relin_key", "rlk", cdl_ckks_relin_key_save(fz.ctx, fz.rlk, 0, &b, &len));
    SEED("ckks_galois_keys", "gk_zstd", cdl_ckks_galois_keys_save(fz.ctx, fz.gk, 1, &b, &len));
    {
        static const int steps[2] = {1, 3}, levels[2] = {0, 1};
        cdl_ckks_galois_keys *gl = NULL;
        assert_int_equal(cdl_ckks_keygen_galois_levels(fz.ctx, fz.sk, steps, levels, 2, 0, fz.rng, &gl), CDL_OK);
        SEED("ckks_galois_keys", "gk_levels_zstd", cdl_ckks_galois_keys_save(fz.ctx, gl, 1, &b, &len));
        cdl_ckks_galois_keys_free(gl);
    }
    SEED("ckks_plaintext", "pt_top", cdl_ckks_plaintext_save(fz.ctx, pt, 0, &b, &len));
    SEED("ckks_plaintext", "pt_level0_zstd", cdl_ckks_plaintext_save(fz.ctx, pt0, 3, &b, &len));
    SEED("ckks_ciphertext", "ct_pk", cdl_ckks_ciphertext_save(fz.ctx, ct, 0, &b, &len));
    SEED("ckks_ciphertext", "ct_seeded", cdl_ckks_ciphertext_save(fz.ctx, cts, 0, &b, &len));
    SEED("ckks_ciphertext", "ct_size3_zstd", cdl_ckks_ciphertext_save(fz.ctx, ct3, 1, &b, &len));
    SEED("ckks_ciphertext", "ct_level0", cdl_ckks_ciphertext_save(fz.ctx, ct0, 0, &b, &len));
#undef SEED
    cdl_ckks_context_free(secure);
    cdl_ckks_ciphertext_free(ct0);
    cdl_ckks_ciphertext_free(ct3);
    cdl_ckks_ciphertext_free(cts);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_plaintext_free(pt0);
    cdl_ckks_plaintext_free(pt);
    fuzz_ckks_teardown(&fz);
}

/* Every committed seed loads with its fuzz target's loader (except the
 * deliberately insecure context seed, which must be refused). */
static void check_corpus(const char *root)
{
    fuzz_ckks_setting fz;
    assert_int_equal(fuzz_ckks_setup(&fz, 0), 0);
    static const char *targets[] = {"ckks_context",   "ckks_secret_key", "ckks_public_key", "ckks_relin_key",
                                    "ckks_galois_keys", "ckks_plaintext", "ckks_ciphertext"};
    int files = 0;
    for (int t = 0; t < 7; t++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", root, targets[t]);
        DIR *d = opendir(path);
        if (!d)
            fail_msg("missing fuzz corpus %s", path);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char file[8192];
            snprintf(file, sizeof file, "%s/%s", path, e->d_name);
            uint8_t *data = NULL;
            size_t len = 0;
            assert_int_equal(cdl_read_file(file, 1 << 24, &data, &len), CDL_OK);
            cdl_status st;
            void *obj = NULL;
            switch (t) {
            case 0: st = cdl_ckks_context_load(data, len, (cdl_ckks_context **)&obj); cdl_ckks_context_free(obj); break;
            case 1: st = cdl_ckks_secret_key_load(fz.ctx, data, len, (cdl_ckks_secret_key **)&obj); cdl_ckks_secret_key_free(obj); break;
            case 2: st = cdl_ckks_public_key_load(fz.ctx, data, len, (cdl_ckks_public_key **)&obj); cdl_ckks_public_key_free(obj); break;
            case 3: st = cdl_ckks_relin_key_load(fz.ctx, data, len, (cdl_ckks_relin_key **)&obj); cdl_ckks_relin_key_free(obj); break;
            case 4: st = cdl_ckks_galois_keys_load(fz.ctx, data, len, (cdl_ckks_galois_keys **)&obj); cdl_ckks_galois_keys_free(obj); break;
            case 5: st = cdl_ckks_plaintext_load(fz.ctx, data, len, (cdl_ckks_plaintext **)&obj); cdl_ckks_plaintext_free(obj); break;
            default: st = cdl_ckks_ciphertext_load(fz.ctx, data, len, (cdl_ckks_ciphertext **)&obj); cdl_ckks_ciphertext_free(obj); break;
            }
            cdl_status want = strstr(e->d_name, "insecure") ? CDL_ERR_INSECURE : CDL_OK;
            if (st != want)
                fail_msg("seed %s: status %d (%s); regenerate the corpus (docs/serialization.md, section Fuzzing)", file, st,
                         cdl_last_error());
            files++;
            cdl_free_bytes(data);
        }
        closedir(d);
    }
    assert_true(files >= 7);
    fuzz_ckks_teardown(&fz);
}

static void test_fuzz_corpus(void **state)
{
    (void)state;
    const char *out = getenv("CDL_WRITE_FUZZ_CORPUS");
    if (out && *out) {
        write_corpus(out);
        return;
    }
    const char *root = getenv("CDL_SOURCE_DIR");
    if (!root)
        skip();
    check_corpus(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ciphertext_round_trip),
        cmocka_unit_test(test_seeded_ciphertext_is_half_size),
        cmocka_unit_test(test_plaintext_round_trip),
        cmocka_unit_test(test_secret_key_round_trip),
        cmocka_unit_test(test_public_and_relin_key_round_trip),
        cmocka_unit_test(test_galois_keys_round_trip),
        cmocka_unit_test(test_galois_keys_levels),
        cmocka_unit_test(test_context_round_trip),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_oversized_fields),
        cmocka_unit_test(test_bad_scales),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_other_parameters),
        cmocka_unit_test(test_coefficient_range),
        cmocka_unit_test(test_secret_and_galois_content),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_fuzz_corpus),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
