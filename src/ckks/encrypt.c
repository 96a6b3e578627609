/*
 * encrypt.c: public-key and symmetric encryption, decryption.
 *  pk:  c = (b u + e0 + m, a u + e1), u uniform ternary, e0, e1 CBD (eta 21).
 *  sk:  c = (-a s + e + m, a), a uniform, expanded from a 32-byte seed that
 *       the ciphertext keeps (so a saved fresh ciphertext can drop c1).
 *  dec: m = c0 + c1 s (+ c2 s^2).
 * Everything at the plaintext's level, in the NTT domain.
 */
#include <string.h>

#include <sodium.h>

#include "ckks/ckks_internal.h"
#include "ckks/keyswitch.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/rng.h"
#include "ring/rns_kernels.h"
#include "ring/rns_poly.h"
#include "ring/sampler.h"

cdl_status cdl_ckks_expand_seed(const cdl_ckks_context *ctx, const uint8_t seed[CDL_CKKS_SEED_BYTES], int level,
                                uint64_t *out)
{
    const size_t n = ctx->n;
    int failed = 0;
#pragma omp parallel for schedule(static) reduction(| : failed)
    for (int i = 0; i <= level; i++) {
        /* limb i: ChaCha20 stream keyed by BLAKE2b-256(key = seed, "cdl-ckks-a" || i) */
        uint8_t msg[16] = "cdl-ckks-a";
        msg[12] = (uint8_t)i;
        msg[13] = (uint8_t)(i >> 8);
        uint8_t sub[CDL_RNG_SEED_BYTES];
        crypto_generichash(sub, sizeof sub, msg, sizeof msg, seed, CDL_CKKS_SEED_BYTES);
        cdl_rng *r = NULL;
        if (cdl_rng_new_seeded(sub, &r) != CDL_OK) {
            failed |= 1;
            continue;
        }
        cdl_sample_uniform(r, ctx->primes[i], out + (size_t)i * n, n);
        cdl_rng_free(r);
        sodium_memzero(sub, sizeof sub);
    }
    if (failed)
        return cdl_fail(CDL_ERR_NO_MEMORY, "expanding a ciphertext seed: out of memory");
    return CDL_OK;
}

static cdl_status check_pt(const cdl_ckks_context *ctx, const cdl_ckks_plaintext *pt, const char *fn)
{
    if (pt->n != ctx->n || pt->q_count != ctx->q_count)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: plaintext made for another context", fn);
    return CDL_OK;
}

static cdl_status check_ct_ctx(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *ct, const char *fn)
{
    if (ct->n != ctx->n || ct->q_count > ctx->q_count)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: ciphertext made for another context", fn);
    return CDL_OK;
}

cdl_status cdl_ckks_encrypt_pk(const cdl_ckks_context *ctx, const cdl_ckks_public_key *pk,
                               const cdl_ckks_plaintext *pt, cdl_rng *rng, cdl_ckks_ciphertext *ct)
{
    if (!ctx || !pk || !pt || !rng || !ct)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_encrypt_pk: NULL argument");
    CDL_TRY(check_pt(ctx, pt, "cdl_ckks_encrypt_pk"));
    CDL_TRY(check_ct_ctx(ctx, ct, "cdl_ckks_encrypt_pk"));
    CDL_TRY(cdl_ckks_ciphertext_reserve(ct, 2, pt->level + 1));
    if (pk->n != ctx->n || pk->q_count != ctx->q_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_encrypt_pk: public key made for another context");
    const size_t n = ctx->n;
    const int level = pt->level, limbs = level + 1, qc = ctx->q_count;
    /* With the special-prime part of the key: work modulo Q_l * P, then ModDown. */
    const int over_p = pk->p_data != NULL && pk->p_count == ctx->p_count;
    const int K = over_p ? ctx->p_count : 0, ext = limbs + K;
    const size_t acc_words = 2 * (size_t)ext * n;
    int8_t *small = cdl_secure_calloc(3 * n, 1);
    /* NTT(u) per limb: a reused per-thread buffer (every word is written
     * below; a fresh 5-10 MB calloc per call cost ~15% in page faults), wiped
     * at the end like the other secret-dependent temporaries. */
    uint64_t *u = cdl_ckks_scratch(CDL_SCRATCH_ENC_U, (size_t)ext * n);
    uint64_t *acc = over_p ? cdl_ckks_scratch(CDL_SCRATCH_ENC_ACC, acc_words) : NULL;
    cdl_status st = CDL_OK;
    if (!small || !u || (over_p && !acc)) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "cdl_ckks_encrypt_pk: out of memory");
        goto done;
    }
    cdl_sample_ternary(rng, small, n);
    cdl_sample_cbd(rng, small + n, 2 * n);
    const uint64_t *b = pk->data, *a = pk->data + (size_t)qc * n;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < ext; t++) {
        int p = t < limbs ? t : qc + (t - limbs);
        const cdl_modulus *m = &ctx->mod[p];
        uint64_t q = m->value;
        const uint64_t *bt = t < limbs ? b + (size_t)t * n : pk->p_data + (size_t)(t - limbs) * n;
        const uint64_t *at = t < limbs ? a + (size_t)t * n : pk->p_data + (size_t)(K + t - limbs) * n;
        uint64_t *ut = u + (size_t)t * n;
        uint64_t *o0 = over_p ? acc + (size_t)t * n : cdl_ct_poly(ct, 0, t);
        uint64_t *o1 = over_p ? acc + (size_t)(ext + t) * n : cdl_ct_poly(ct, 1, t);
        cdl_poly_from_small(ut, small, n, q);
        cdl_ntt_forward(ctx->ntt[p], ut);
        cdl_poly_from_small(o0, small + n, n, q);
        cdl_ntt_forward(ctx->ntt[p], o0);
        cdl_poly_from_small(o1, small + 2 * n, n, q);
        cdl_ntt_forward(ctx->ntt[p], o1);
        if (q < CDL_IFMA_PRIME_LIMIT && cdl_rns_vector_enabled(n)) {
            cdl_mul_add_ifma(o0, o0, bt, ut, q, n);
            cdl_mul_add_ifma(o1, o1, at, ut, q, n);
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            o0[k] = cdl_mod_add(o0[k], cdl_mod_mul(bt[k], ut[k], m), q);
            o1[k] = cdl_mod_add(o1[k], cdl_mod_mul(at[k], ut[k], m), q);
        }
    }
    if (over_p) {
        CDL_TRY_GOTO(st, cdl_ckks_moddown(ctx, level, acc, cdl_ct_poly(ct, 0, 0)), done);
        CDL_TRY_GOTO(st, cdl_ckks_moddown(ctx, level, acc + (size_t)ext * n, cdl_ct_poly(ct, 1, 0)), done);
    }
    cdl_rns_add(cdl_ct_poly(ct, 0, 0), cdl_ct_poly(ct, 0, 0), pt->data, n, ctx->mod, limbs);
    ct->size = 2;
    ct->level = level;
    ct->scale = pt->scale;
    ct->seeded = 0;
done:
    if (u)
        cdl_ckks_scratch_wipe(CDL_SCRATCH_ENC_U);
    if (over_p) {
        /* b u + e0 and its ModDown temporaries depend on the encryption randomness */
        cdl_ckks_scratch_wipe(CDL_SCRATCH_ENC_ACC);
        cdl_ckks_scratch_wipe(CDL_SCRATCH_MD_Y);
        cdl_ckks_scratch_wipe(CDL_SCRATCH_MD_TMP);
    }
    if (small)
        cdl_secure_free(small, 3 * n);
    return st;
}

cdl_status cdl_ckks_encrypt_sk(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                               const cdl_ckks_plaintext *pt, cdl_rng *rng, cdl_ckks_ciphertext *ct)
{
    if (!ctx || !sk || !pt || !rng || !ct)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_encrypt_sk: NULL argument");
    CDL_TRY(check_pt(ctx, pt, "cdl_ckks_encrypt_sk"));
    CDL_TRY(check_ct_ctx(ctx, ct, "cdl_ckks_encrypt_sk"));
    CDL_TRY(cdl_ckks_ciphertext_reserve(ct, 2, pt->level + 1));
    if (sk->n != ctx->n || sk->qp_count != ctx->qp_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_encrypt_sk: secret key made for another context");
    const size_t n = ctx->n;
    const int level = pt->level, limbs = level + 1;
    cdl_rng_derive_seed(rng, ct->seed);
    CDL_TRY(cdl_ckks_expand_seed(ctx, ct->seed, level, cdl_ct_poly(ct, 1, 0)));
    int8_t *e = cdl_secure_calloc(n, 1);
    if (!e)
        return CDL_ERR_NO_MEMORY;
    cdl_sample_cbd(rng, e, n);
#pragma omp parallel for schedule(static)
    for (int i = 0; i < limbs; i++) {
        const cdl_modulus *m = &ctx->mod[i];
        uint64_t q = m->value;
        uint64_t *c0 = cdl_ct_poly(ct, 0, i);
        const uint64_t *c1 = cdl_ct_poly(ct, 1, i), *s = sk->s + (size_t)i * n, *mi = cdl_pt_limb(pt, i);
        cdl_poly_from_small(c0, e, n, q);
        cdl_ntt_forward(ctx->ntt[i], c0);
        if (sk->s_shoup) {
            const uint64_t *ws = sk->s_shoup + (size_t)i * n;
            for (size_t k = 0; k < n; k++)
                c0[k] = cdl_mod_sub(cdl_mod_add(c0[k], mi[k], q), cdl_mul_shoup(c1[k], s[k], ws[k], q), q);
        } else {
            for (size_t k = 0; k < n; k++)
                c0[k] = cdl_mod_sub(cdl_mod_add(c0[k], mi[k], q), cdl_mod_mul(c1[k], s[k], m), q);
        }
    }
    cdl_secure_free(e, n);
    ct->size = 2;
    ct->level = level;
    ct->scale = pt->scale;
    ct->seeded = 1;
    return CDL_OK;
}

cdl_status cdl_ckks_decrypt(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                            const cdl_ckks_ciphertext *ct, cdl_ckks_plaintext *pt)
{
    if (!ctx || !sk || !pt || !ct)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_decrypt: NULL argument");
    CDL_TRY(check_pt(ctx, pt, "cdl_ckks_decrypt"));
    if (!cdl_ckks_ct_fits(ctx, ct))
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_decrypt: ciphertext made for another context");
    if (sk->n != ctx->n || sk->qp_count != ctx->qp_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_decrypt: secret key made for another context");
    if (ct->level >= pt->limbs)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_decrypt: the plaintext holds levels 0..%d only, the "
                        "ciphertext is at level %d", pt->limbs - 1, ct->level);
    const size_t n = ctx->n;
    const int limbs = ct->level + 1;
    const int three = ct->size == 3;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < limbs; i++) {
        const cdl_modulus *m = &ctx->mod[i];
        uint64_t q = m->value;
        const uint64_t *c0 = cdl_ct_poly(ct, 0, i), *c1 = cdl_ct_poly(ct, 1, i), *s = sk->s + (size_t)i * n;
        const uint64_t *c2 = three ? cdl_ct_poly(ct, 2, i) : NULL;
        uint64_t *o = cdl_pt_limb(pt, i);
        if (!three && q < CDL_IFMA_PRIME_LIMIT && cdl_rns_vector_enabled(n)) {
            cdl_mul_add_ifma(o, c0, c1, s, q, n);
            continue;
        }
        if (sk->s_shoup && !three) {
            const uint64_t *ws = sk->s_shoup + (size_t)i * n;
            for (size_t k = 0; k < n; k++) {
                uint64_t v = c0[k] + cdl_mul_shoup_lazy(c1[k], s[k], ws[k], q); /* < 3q */
                v = cdl_reduce_once(v, 2 * q);
                o[k] = cdl_reduce_once(v, q);
            }
            continue;
        }
        for (size_t k = 0; k < n; k++) {
            uint64_t v = cdl_mod_add(c0[k], cdl_mod_mul(c1[k], s[k], m), q);
            if (three)
                v = cdl_mod_add(v, cdl_mod_mul(cdl_mod_mul(c2[k], s[k], m), s[k], m), q);
            o[k] = v;
        }
    }
    pt->level = ct->level;
    pt->scale = ct->scale;
    return CDL_OK;
}
