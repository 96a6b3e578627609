/*
 * test_ckks_util.h: shared helpers for the CKKS unit tests: small insecure
 * contexts, random slot vectors, encrypt/decrypt shortcuts and the precision
 * measure (bits = -log2 of the largest absolute error over all slots).
 */
#ifndef TEST_CKKS_UTIL_H
#define TEST_CKKS_UTIL_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"
#include "core/memory.h"
#include "cryptodl/ckks.h"

typedef struct tctx {
    cdl_ckks_context *ctx;
    cdl_rng *rng;
    cdl_ckks_secret_key *sk;
    cdl_ckks_public_key *pk;
    cdl_ckks_relin_key *rlk;
    size_t slots;
} tctx;

static inline cdl_rng *t_rng(uint8_t tag)
{
    uint8_t seed[CDL_RNG_SEED_BYTES] = {tag, 0x5a};
    cdl_rng *rng = NULL;
    assert_int_equal(cdl_rng_new_seeded_insecure(seed, &rng), CDL_OK);
    return rng;
}

/* log_n, q primes (q0 first, then mids of 40 bits), p primes of p_bits, dnum. */
static inline void t_spec(cdl_ckks_param_spec *s, int log_n, int q0, int mids, int p_bits, int p_count, int dnum)
{
    memset(s, 0, sizeof *s);
    s->log_n = log_n;
    s->q_count = 1 + mids;
    s->q_bits[0] = q0;
    for (int i = 1; i <= mids; i++)
        s->q_bits[i] = 40;
    s->p_count = p_count;
    for (int i = 0; i < p_count; i++)
        s->p_bits[i] = p_bits;
    s->dnum = dnum;
    s->scale = ldexp(1.0, 40);
    s->allow_insecure = 1;
}

static inline void t_setup(tctx *t, const cdl_ckks_param_spec *s, uint8_t tag)
{
    memset(t, 0, sizeof *t);
    assert_int_equal(cdl_ckks_context_new(s, &t->ctx), CDL_OK);
    t->rng = t_rng(tag);
    t->slots = cdl_ckks_slots(t->ctx);
    assert_int_equal(cdl_ckks_keygen_secret(t->ctx, t->rng, &t->sk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_public(t->ctx, t->sk, t->rng, &t->pk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_relin(t->ctx, t->sk, t->rng, &t->rlk), CDL_OK);
}

static inline void t_teardown(tctx *t)
{
    cdl_ckks_relin_key_free(t->rlk);
    cdl_ckks_public_key_free(t->pk);
    cdl_ckks_secret_key_free(t->sk);
    cdl_rng_free(t->rng);
    cdl_ckks_context_free(t->ctx);
}

/* Uniform in [-1, 1]. */
static inline void t_random(cdl_rng *rng, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = 2.0 * ((double)(cdl_rng_u64(rng) >> 11) / 9007199254740992.0) - 1.0;
}

static inline cdl_ckks_ciphertext *t_encrypt(tctx *t, const double *re, const double *im, int level, int use_pk)
{
    cdl_ckks_plaintext *pt = NULL;
    cdl_ckks_ciphertext *ct = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(t->ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_encode_complex(t->ctx, re, im, t->slots, cdl_ckks_default_scale(t->ctx), level, pt),
                     CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(t->ctx, &ct), CDL_OK);
    if (use_pk)
        assert_int_equal(cdl_ckks_encrypt_pk(t->ctx, t->pk, pt, t->rng, ct), CDL_OK);
    else
        assert_int_equal(cdl_ckks_encrypt_sk(t->ctx, t->sk, pt, t->rng, ct), CDL_OK);
    cdl_ckks_plaintext_free(pt);
    return ct;
}

static inline void t_decrypt(tctx *t, const cdl_ckks_ciphertext *ct, double *re, double *im)
{
    cdl_ckks_plaintext *pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(t->ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_decrypt(t->ctx, t->sk, ct, pt), CDL_OK);
    assert_int_equal(cdl_ckks_decode_complex(t->ctx, pt, re, im, t->slots), CDL_OK);
    cdl_ckks_plaintext_free(pt);
}

/* -log2(max |got - want|) over real and imaginary parts (im arrays may be NULL = 0). */
static inline double t_bits(const double *re, const double *im, const double *wre, const double *wim, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(re[i] - wre[i]);
        m = e > m ? e : m;
        double ei = fabs((im ? im[i] : 0) - (wim ? wim[i] : 0));
        m = ei > m ? ei : m;
    }
    return m > 0 ? -log2(m) : 99.0;
}

#endif
