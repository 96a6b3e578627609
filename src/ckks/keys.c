/*
 * keys.c: key generation. Secret s: ternary (uniform or fixed Hamming
 * weight); public (b, a) = (-a s + e, a) over Q; relinearization key: a
 * key-switching key from s^2 to s; Galois keys: from s(X^g) to s, for the
 * rotation elements g = 5^step mod 2N and conjugation g = 2N - 1.
 * Errors are centered binomial (eta = 21, sigma ~ 3.24).
 * Every entry point refuses a reproducible (seeded) generator unless the
 * caller opted in with cdl_rng_new_seeded_insecure (cdl_rng_check_secret).
 */
#include <string.h>

#include "ckks/keyswitch.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/rng.h"
#include "ring/automorphism.h"
#include "ring/rns_poly.h"
#include "ring/sampler.h"

cdl_status cdl_ckks_keygen_secret(const cdl_ckks_context *ctx, cdl_rng *rng, cdl_ckks_secret_key **out)
{
    if (!ctx || !rng || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_keygen_secret: NULL argument");
    *out = NULL;
    CDL_TRY(cdl_rng_check_secret(rng, "cdl_ckks_keygen_secret"));
    cdl_ckks_secret_key *sk = NULL;
    CDL_TRY(cdl_ckks_secret_key_alloc(ctx, &sk));
    if (ctx->spec.secret_hamming_weight > 0) {
        cdl_status st = cdl_sample_ternary_hw(rng, (size_t)ctx->spec.secret_hamming_weight, sk->coeffs, ctx->n);
        if (st != CDL_OK) {
            cdl_ckks_secret_key_free(sk);
            return st;
        }
    } else {
        cdl_sample_ternary(rng, sk->coeffs, ctx->n);
    }
    cdl_rns_from_small(sk->s, sk->coeffs, ctx->n, ctx->mod, ctx->qp_count);
    cdl_rns_ntt_forward(sk->s, ctx->n, (cdl_ntt_table *const *)ctx->ntt, ctx->qp_count);
    cdl_status st = cdl_ckks_secret_key_precompute(ctx, sk);
    if (st != CDL_OK) {
        cdl_ckks_secret_key_free(sk);
        return st;
    }
    *out = sk;
    return CDL_OK;
}

cdl_status cdl_ckks_keygen_public(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                  cdl_ckks_public_key **out)
{
    if (!ctx || !sk || !rng || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_keygen_public: NULL argument");
    *out = NULL;
    CDL_TRY(cdl_rng_check_secret(rng, "cdl_ckks_keygen_public"));
    if (sk->n != ctx->n || sk->qp_count != ctx->qp_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_keygen_public: secret key made for another context");
    const size_t n = ctx->n;
    const int qc = ctx->q_count;
    cdl_ckks_public_key *pk = NULL;
    CDL_TRY(cdl_ckks_public_key_alloc(ctx, &pk));
    int8_t *e = cdl_secure_calloc(n, 1);
    if (!e) {
        cdl_ckks_public_key_free(pk);
        return CDL_ERR_NO_MEMORY;
    }
    const int K = ctx->p_count, qp = ctx->qp_count;
    pk->p_data = cdl_calloc_array(2 * (size_t)K * n, sizeof(uint64_t));
    if (!pk->p_data) {
        cdl_secure_free(e, n);
        cdl_ckks_public_key_free(pk);
        return CDL_ERR_NO_MEMORY;
    }
    pk->p_count = K;
    /* limb i of b / a: Q limbs in data, special-prime limbs in p_data */
#define PK_B(i) ((i) < qc ? pk->data + (size_t)(i) * n : pk->p_data + (size_t)((i) - qc) * n)
#define PK_A(i) ((i) < qc ? pk->data + ((size_t)qc + (size_t)(i)) * n : pk->p_data + ((size_t)K + (size_t)((i) - qc)) * n)
    for (int i = 0; i < qp; i++)
        cdl_sample_uniform(rng, ctx->primes[i], PK_A(i), n);
    cdl_sample_cbd(rng, e, n);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < qp; i++) {
        uint64_t *bi = PK_B(i);
        const uint64_t *ai = PK_A(i), *si = sk->s + (size_t)i * n;
        cdl_poly_from_small(bi, e, n, ctx->primes[i]);
        cdl_ntt_forward(ctx->ntt[i], bi);
        for (size_t k = 0; k < n; k++)
            bi[k] = cdl_mod_sub(bi[k], cdl_mod_mul(ai[k], si[k], &ctx->mod[i]), ctx->primes[i]);
    }
#undef PK_A
#undef PK_B
    cdl_secure_free(e, n);
    *out = pk;
    return CDL_OK;
}

cdl_status cdl_ckks_keygen_relin(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                 cdl_ckks_relin_key **out)
{
    if (!ctx || !sk || !rng || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_keygen_relin: NULL argument");
    *out = NULL;
    CDL_TRY(cdl_rng_check_secret(rng, "cdl_ckks_keygen_relin"));
    if (sk->n != ctx->n || sk->qp_count != ctx->qp_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_keygen_relin: secret key made for another context");
    const size_t words = (size_t)ctx->qp_count * ctx->n;
    uint64_t *s2 = cdl_secure_calloc(words, sizeof(uint64_t));
    if (!s2)
        return CDL_ERR_NO_MEMORY;
    cdl_rns_mul(s2, sk->s, sk->s, ctx->n, ctx->mod, ctx->qp_count);
    cdl_ckks_relin_key *rlk = NULL;
    cdl_status st = cdl_ckks_relin_key_alloc(ctx, &rlk);
    if (st == CDL_OK)
        st = cdl_ckks_ksk_generate(ctx, sk, s2, rng, &rlk->ksk);
    cdl_secure_free(s2, words * sizeof(uint64_t));
    if (st != CDL_OK) {
        cdl_ckks_relin_key_free(rlk);
        return st;
    }
    *out = rlk;
    return CDL_OK;
}

cdl_status cdl_ckks_keygen_galois(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, const int *steps,
                                  size_t count, int conjugate, cdl_rng *rng, cdl_ckks_galois_keys **out)
{
    return cdl_ckks_keygen_galois_levels(ctx, sk, steps, NULL, count, conjugate, rng, out);
}

cdl_status cdl_ckks_keygen_galois_levels(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, const int *steps,
                                         const int *levels, size_t count, int conjugate, cdl_rng *rng,
                                         cdl_ckks_galois_keys **out)
{
    if (!ctx || !sk || !rng || !out || (count && !steps))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_keygen_galois: NULL argument");
    *out = NULL;
    CDL_TRY(cdl_rng_check_secret(rng, "cdl_ckks_keygen_galois"));
    for (size_t i = 0; levels && i < count; i++)
        if (levels[i] < 0 || levels[i] > ctx->max_level)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_keygen_galois: level %d of step %d is outside 0..%d",
                            levels[i], steps[i], ctx->max_level);
    if (sk->n != ctx->n || sk->qp_count != ctx->qp_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_keygen_galois: secret key made for another context");
    /* Distinct elements, in the order given (a repeated one keeps its highest
     * level); identity rotations need no key. */
    uint64_t *elts = cdl_alloc_array(count + 1, sizeof(uint64_t));
    int *lv = cdl_alloc_array(count + 1, sizeof(int));
    if (!elts || !lv) {
        cdl_free(elts);
        cdl_free(lv);
        return CDL_ERR_NO_MEMORY;
    }
    size_t m = 0;
    for (size_t i = 0; i <= count; i++) {
        uint64_t g;
        if (i < count)
            g = cdl_ckks_galois_element(ctx, steps[i]);
        else if (conjugate)
            g = cdl_ckks_conjugation_element(ctx);
        else
            break;
        const int level = levels && i < count ? levels[i] : ctx->max_level;
        int dup = g == 1;
        for (size_t j = 0; j < m && !dup; j++)
            if (elts[j] == g) {
                dup = 1;
                lv[j] = level > lv[j] ? level : lv[j];
            }
        if (!dup) {
            lv[m] = level;
            elts[m++] = g;
        }
    }
    const size_t n = ctx->n, words = (size_t)ctx->qp_count * n;
    cdl_ckks_galois_keys *gk = NULL;
    uint64_t *sg = cdl_secure_calloc(words, sizeof(uint64_t));
    cdl_status st = CDL_OK;
    if (!sg) {
        st = CDL_ERR_NO_MEMORY;
        goto done;
    }
    CDL_TRY_GOTO(st, cdl_ckks_galois_keys_alloc_levels(ctx, m, lv, &gk), done);
    for (size_t i = 0; i < m; i++) {
        cdl_ckks_galois_keys_set_element(gk, i, elts[i]);
        const uint32_t *idx = cdl_ckks_galois_keys_index(gk, i);
        for (int l = 0; l < ctx->qp_count; l++)
            cdl_automorphism_ntt_apply(sk->s + (size_t)l * n, sg + (size_t)l * n, n, idx);
        CDL_TRY_GOTO(st, cdl_ckks_ksk_generate(ctx, sk, sg, rng, &gk->keys[i]), done);
        CDL_TRY_GOTO(st, cdl_ckks_galois_key_permute(gk, i, 1), done); /* the memory form */
    }
done:
    cdl_free(elts);
    cdl_free(lv);
    if (sg)
        cdl_secure_free(sg, words * sizeof(uint64_t));
    if (st != CDL_OK) {
        cdl_ckks_galois_keys_free(gk);
        return st;
    }
    *out = gk;
    return CDL_OK;
}
