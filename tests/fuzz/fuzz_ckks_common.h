/*
 * fuzz_ckks_common.h: the small fixed CKKS setting shared by the loader fuzz
 * targets (tests/fuzz/fuzz_ckks_*.c) and by the unit test that writes their
 * seed corpora (tests/unit/test_serialize.c, CDL_WRITE_FUZZ_CORPUS=<dir>).
 *
 * Both must build the very same context and keys, or the seeds would carry a
 * parameter hash the fuzzers reject at once. So: N = 2^10 (fast), two
 * ciphertext primes, one special prime and one key-switching digit, TESTING-ONLY allow_insecure, and a
 * fixed-seed RNG. Nothing here is secure; it only has to be small and fixed.
 *
 * fuzz_fix_envelope(): random mutations of a serialized object almost never
 * keep the BLAKE2b checksum right, so without help the fuzzer would only ever
 * exercise the checksum test. The targets therefore run each input twice:
 * as is, and after rewriting the envelope's stored length and checksum (and
 * the raw length of an uncompressed payload) to match the bytes that follow
 * the header, which is what a hostile sender can always do. The offsets below
 * follow the envelope layout of src/core/bytes.h.
 */
#ifndef CDL_FUZZ_CKKS_COMMON_H
#define CDL_FUZZ_CKKS_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cryptodl/cryptodl.h"

#define FUZZ_ENV_BYTES 96
#define FUZZ_ENV_COMPRESSION_AT 40
#define FUZZ_ENV_STORED_LEN_AT 44
#define FUZZ_ENV_RAW_LEN_AT 52
#define FUZZ_ENV_CHECKSUM_AT 60

/* The fixed setting; every handle stays alive for the process lifetime. */
typedef struct fuzz_ckks_setting {
    cdl_ckks_context *ctx;
    cdl_ckks_secret_key *sk;
    cdl_ckks_public_key *pk;
    cdl_ckks_relin_key *rlk;
    cdl_ckks_galois_keys *gk;
    cdl_rng *rng;
} fuzz_ckks_setting;

static const int fuzz_ckks_rotation_steps[] = {1};

static inline void fuzz_ckks_spec(cdl_ckks_param_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->log_n = 10;
    spec->q_count = 2;
    spec->q_bits[0] = 30;
    spec->q_bits[1] = 25;
    spec->p_count = 1;
    spec->p_bits[0] = 56;
    spec->dnum = 1; /* one digit: the smallest key-switching keys, so the seeds stay small */
    spec->scale = (double)(1u << 25);
    spec->secret_hamming_weight = 0;
    spec->allow_insecure = 1; /* TESTING ONLY: N = 2^10 is far too small to be secure */
}

/* Build the setting: the context, then (if with_keys) a secret key, public
 * key, relinearization key and Galois keys, all from one fixed seed.
 * Returns 0 on success. */
static inline int fuzz_ckks_setup(fuzz_ckks_setting *s, int with_keys)
{
    memset(s, 0, sizeof *s);
    /* One thread: OpenMP barriers cost more than N = 2^10 work, and the
     * fuzzer runs one input at a time anyway. */
    cdl_set_threads(1);
    cdl_ckks_param_spec spec;
    fuzz_ckks_spec(&spec);
    if (cdl_ckks_context_new(&spec, &s->ctx) != CDL_OK)
        return -1;
    uint8_t seed[CDL_RNG_SEED_BYTES];
    for (int i = 0; i < CDL_RNG_SEED_BYTES; i++)
        seed[i] = (uint8_t)(0xA5 ^ i);
    if (cdl_rng_new_seeded_insecure(seed, &s->rng) != CDL_OK)
        return -1;
    if (!with_keys)
        return 0;
    if (cdl_ckks_keygen_secret(s->ctx, s->rng, &s->sk) != CDL_OK ||
        cdl_ckks_keygen_public(s->ctx, s->sk, s->rng, &s->pk) != CDL_OK ||
        cdl_ckks_keygen_relin(s->ctx, s->sk, s->rng, &s->rlk) != CDL_OK ||
        cdl_ckks_keygen_galois(s->ctx, s->sk, fuzz_ckks_rotation_steps,
                               sizeof fuzz_ckks_rotation_steps / sizeof fuzz_ckks_rotation_steps[0], 1, s->rng,
                               &s->gk) != CDL_OK)
        return -1;
    return 0;
}

/* Encrypt `count` values at the top level into a new *ct (with the public key
 * if use_pk, else the secret key). Returns 0 on success. */
static inline int fuzz_ckks_encrypt_values(const fuzz_ckks_setting *s, const double *values, size_t count,
                                           int use_pk, cdl_ckks_ciphertext **ct)
{
    cdl_ckks_plaintext *pt = NULL;
    int ok = cdl_ckks_plaintext_new(s->ctx, &pt) == CDL_OK &&
             cdl_ckks_encode(s->ctx, values, count, cdl_ckks_default_scale(s->ctx), cdl_ckks_max_level(s->ctx),
                             pt) == CDL_OK &&
             cdl_ckks_ciphertext_new(s->ctx, ct) == CDL_OK &&
             (use_pk ? cdl_ckks_encrypt_pk(s->ctx, s->pk, pt, s->rng, *ct)
                     : cdl_ckks_encrypt_sk(s->ctx, s->sk, pt, s->rng, *ct)) == CDL_OK;
    cdl_ckks_plaintext_free(pt);
    return ok ? 0 : -1;
}

static inline void fuzz_ckks_teardown(fuzz_ckks_setting *s)
{
    cdl_ckks_galois_keys_free(s->gk);
    cdl_ckks_relin_key_free(s->rlk);
    cdl_ckks_public_key_free(s->pk);
    cdl_ckks_secret_key_free(s->sk);
    cdl_rng_free(s->rng);
    cdl_ckks_context_free(s->ctx);
    memset(s, 0, sizeof *s);
}

static inline void fuzz_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A malloc'ed copy of data whose envelope lengths and checksum match the
 * bytes after the header (see the comment at the top). NULL if len is shorter
 * than the header or out of memory. */
static inline uint8_t *fuzz_fix_envelope(const uint8_t *data, size_t len)
{
    if (len < FUZZ_ENV_BYTES)
        return NULL;
    uint8_t *copy = malloc(len);
    if (!copy)
        return NULL;
    memcpy(copy, data, len);
    uint64_t stored = (uint64_t)(len - FUZZ_ENV_BYTES);
    fuzz_put_u64(copy + FUZZ_ENV_STORED_LEN_AT, stored);
    if (copy[FUZZ_ENV_COMPRESSION_AT] == 0)
        fuzz_put_u64(copy + FUZZ_ENV_RAW_LEN_AT, stored);
    crypto_generichash(copy + FUZZ_ENV_CHECKSUM_AT, 32, copy + FUZZ_ENV_BYTES, (size_t)stored, NULL, 0);
    return copy;
}

/* Run a loader on the input as it is, then with its envelope repaired. */
static inline void fuzz_try_both(const uint8_t *data, size_t size, void (*try_load)(const uint8_t *, size_t))
{
    try_load(data, size);
    uint8_t *fixed = fuzz_fix_envelope(data, size);
    if (fixed) {
        try_load(fixed, size);
        free(fixed);
    }
}

#endif
