/*
 * objects.c: allocation, release and accessors of the CKKS handles (keys,
 * plaintexts, ciphertexts). Secret material is allocated with the secure
 * allocator and zeroized on free.
 */
#include <string.h>

#include "ckks/ckks_internal.h"
#include "core/error.h"
#include "core/memory.h"
#include "ring/automorphism.h"

/* ---- ciphertexts ---- */
cdl_status cdl_ckks_ciphertext_alloc(const cdl_ckks_context *ctx, int size, int level, cdl_ckks_ciphertext **out)
{
    if (!ctx || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "ciphertext allocation: NULL argument");
    *out = NULL;
    if (size < 2 || size > 3 || level < 0 || level > ctx->max_level)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "ciphertext size %d / level %d out of range (size 2..3, level 0..%d)",
                        size, level, ctx->max_level);
    cdl_ckks_ciphertext *ct = cdl_calloc_array(1, sizeof *ct);
    if (!ct)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for a ciphertext");
    ct->n = ctx->n;
    ct->q_count = level + 1; /* a new ciphertext at the top level has every limb; one made lower, only its own */
    ct->size = size;
    ct->capacity = size;
    ct->level = level;
    ct->scale = ctx->scale;
    ct->data = cdl_calloc_array((size_t)size * (size_t)ct->q_count * ctx->n, sizeof(uint64_t));
    if (!ct->data) {
        cdl_free(ct);
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for a ciphertext of %d polynomials of %d limbs", size,
                        level + 1);
    }
    *out = ct;
    return CDL_OK;
}

/* Move the content into storage of `capacity` polynomials of `limbs` limbs
 * (the part that fits; new room is zero). */
static cdl_status relayout(cdl_ckks_ciphertext *ct, int capacity, int limbs)
{
    const size_t n = ct->n;
    uint64_t *d = cdl_calloc_array((size_t)capacity * (size_t)limbs * n, sizeof(uint64_t));
    if (!d)
        return cdl_fail(CDL_ERR_NO_MEMORY, "ciphertext: out of memory for %d polynomials of %d limbs", capacity,
                        limbs);
    const int polys = capacity < ct->capacity ? capacity : ct->capacity;
    const int keep = limbs < ct->q_count ? limbs : ct->q_count;
    for (int k = 0; k < polys; k++)
        memcpy(d + (size_t)k * (size_t)limbs * n, ct->data + (size_t)k * (size_t)ct->q_count * n,
               (size_t)keep * n * sizeof(uint64_t));
    cdl_free(ct->data);
    ct->data = d;
    ct->capacity = capacity;
    ct->q_count = limbs;
    return CDL_OK;
}

cdl_status cdl_ckks_ciphertext_reserve(cdl_ckks_ciphertext *ct, int size, int limbs)
{
    if (size <= ct->capacity && limbs <= ct->q_count)
        return CDL_OK;
    return relayout(ct, size > ct->capacity ? size : ct->capacity, limbs > ct->q_count ? limbs : ct->q_count);
}

cdl_status cdl_ckks_ciphertext_shrink(cdl_ckks_ciphertext *ct)
{
    if (!ct)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_ciphertext_shrink: NULL ciphertext");
    if (ct->level < 0 || ct->level >= ct->q_count || ct->size < 2 || ct->size > ct->capacity)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_ciphertext_shrink: inconsistent ciphertext");
    if (ct->capacity == ct->size && ct->q_count == ct->level + 1)
        return CDL_OK;
    return relayout(ct, ct->size, ct->level + 1);
}

cdl_status cdl_ckks_ciphertext_new(const cdl_ckks_context *ctx, cdl_ckks_ciphertext **out)
{
    return cdl_ckks_ciphertext_alloc(ctx, 2, ctx ? ctx->max_level : 0, out);
}

void cdl_ckks_ciphertext_free(cdl_ckks_ciphertext *ct)
{
    if (!ct)
        return;
    cdl_free(ct->data);
    cdl_free(ct);
}

cdl_status cdl_ckks_ciphertext_copy(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *src,
                                    cdl_ckks_ciphertext *dst)
{
    if (!ctx || !src || !dst)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_ciphertext_copy: NULL argument");
    if (src == dst)
        return CDL_OK;
    if (!cdl_ckks_ct_fits(ctx, src) || dst->n != ctx->n || dst->q_count > ctx->q_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_ciphertext_copy: ciphertext made for another context");
    CDL_TRY(cdl_ckks_ciphertext_reserve(dst, src->size, src->level + 1));
    for (int k = 0; k < src->size; k++)
        memcpy(cdl_ct_poly(dst, k, 0), cdl_ct_poly(src, k, 0), (size_t)(src->level + 1) * ctx->n * sizeof(uint64_t));
    dst->size = src->size;
    dst->level = src->level;
    dst->scale = src->scale;
    dst->seeded = src->seeded;
    memcpy(dst->seed, src->seed, sizeof dst->seed);
    return CDL_OK;
}

int cdl_ckks_ciphertext_level(const cdl_ckks_ciphertext *ct) { return ct->level; }
double cdl_ckks_ciphertext_scale(const cdl_ckks_ciphertext *ct) { return ct->scale; }
int cdl_ckks_ciphertext_size(const cdl_ckks_ciphertext *ct) { return ct->size; }
void cdl_ckks_ciphertext_set_scale(cdl_ckks_ciphertext *ct, double scale) { ct->scale = scale; }

/* ---- plaintexts ---- */
/* A plaintext at `level` with room for `limbs` limbs (all of them, or those of levels 0..level only). */
static cdl_status plaintext_alloc_limbs(const cdl_ckks_context *ctx, int level, int limbs, cdl_ckks_plaintext **out)
{
    if (!ctx || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "plaintext allocation: NULL argument");
    *out = NULL;
    if (level < 0 || level > ctx->max_level)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "plaintext level %d outside 0..%d", level, ctx->max_level);
    cdl_ckks_plaintext *pt = cdl_calloc_array(1, sizeof *pt);
    if (!pt)
        return CDL_ERR_NO_MEMORY;
    pt->n = ctx->n;
    pt->q_count = ctx->q_count;
    pt->level = level;
    pt->scale = ctx->scale;
    pt->limbs = limbs;
    /* Decrypted plaintexts hold secret-derived values: secure allocation. */
    pt->data = cdl_secure_calloc((size_t)limbs * ctx->n, sizeof(uint64_t));
    if (!pt->data) {
        cdl_free(pt);
        return CDL_ERR_NO_MEMORY;
    }
    *out = pt;
    return CDL_OK;
}

cdl_status cdl_ckks_plaintext_alloc(const cdl_ckks_context *ctx, int level, cdl_ckks_plaintext **out)
{
    return plaintext_alloc_limbs(ctx, level, ctx ? ctx->q_count : 0, out);
}

cdl_status cdl_ckks_plaintext_new(const cdl_ckks_context *ctx, cdl_ckks_plaintext **out)
{
    return cdl_ckks_plaintext_alloc(ctx, ctx ? ctx->max_level : 0, out);
}

cdl_status cdl_ckks_plaintext_new_level(const cdl_ckks_context *ctx, int level, cdl_ckks_plaintext **out)
{
    return plaintext_alloc_limbs(ctx, level, level + 1, out);
}

cdl_status cdl_ckks_plaintext_new_qp(const cdl_ckks_context *ctx, int level, cdl_ckks_plaintext **out)
{
    CDL_TRY(plaintext_alloc_limbs(ctx, level, level + 1, out));
    cdl_ckks_plaintext *pt = *out;
    pt->p_data = cdl_secure_calloc((size_t)ctx->p_count * ctx->n, sizeof(uint64_t));
    if (!pt->p_data) {
        cdl_ckks_plaintext_free(pt);
        *out = NULL;
        return CDL_ERR_NO_MEMORY;
    }
    pt->p_count = ctx->p_count;
    return CDL_OK;
}

void cdl_ckks_plaintext_free(cdl_ckks_plaintext *pt)
{
    if (!pt)
        return;
    cdl_secure_free(pt->data, (size_t)pt->limbs * pt->n * sizeof(uint64_t));
    if (pt->p_data)
        cdl_secure_free(pt->p_data, (size_t)pt->p_count * pt->n * sizeof(uint64_t));
    cdl_free(pt);
}

int cdl_ckks_plaintext_level(const cdl_ckks_plaintext *pt) { return pt->level; }
double cdl_ckks_plaintext_scale(const cdl_ckks_plaintext *pt) { return pt->scale; }

/* ---- keys ---- */
cdl_status cdl_ckks_secret_key_alloc(const cdl_ckks_context *ctx, cdl_ckks_secret_key **out)
{
    *out = NULL;
    cdl_ckks_secret_key *sk = cdl_secure_calloc(1, sizeof *sk);
    if (!sk)
        return CDL_ERR_NO_MEMORY;
    sk->n = ctx->n;
    sk->qp_count = ctx->qp_count;
    sk->coeffs = cdl_secure_calloc(ctx->n, sizeof(int8_t));
    sk->s = cdl_secure_calloc((size_t)ctx->qp_count * ctx->n, sizeof(uint64_t));
    if (!sk->coeffs || !sk->s) {
        cdl_ckks_secret_key_free(sk);
        return CDL_ERR_NO_MEMORY;
    }
    *out = sk;
    return CDL_OK;
}

void cdl_ckks_secret_key_free(cdl_ckks_secret_key *sk)
{
    if (!sk)
        return;
    if (sk->coeffs)
        cdl_secure_free(sk->coeffs, sk->n * sizeof(int8_t));
    if (sk->s)
        cdl_secure_free(sk->s, (size_t)sk->qp_count * sk->n * sizeof(uint64_t));
    if (sk->s_shoup)
        cdl_secure_free(sk->s_shoup, (size_t)sk->qp_count * sk->n * sizeof(uint64_t));
    cdl_secure_free(sk, sizeof *sk);
}

cdl_status cdl_ckks_secret_key_precompute(const cdl_ckks_context *ctx, cdl_ckks_secret_key *sk)
{
    if (!ctx || !sk || sk->n != ctx->n || sk->qp_count != ctx->qp_count)
        return cdl_fail(CDL_ERR_MISMATCH, "secret key precomputation: key made for another context");
    if (!sk->s_shoup) {
        sk->s_shoup = cdl_secure_calloc((size_t)sk->qp_count * sk->n, sizeof(uint64_t));
        if (!sk->s_shoup)
            return CDL_ERR_NO_MEMORY;
    }
    const size_t n = ctx->n;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < ctx->q_count; i++) {
        const cdl_modulus *m = &ctx->mod[i];
        const uint64_t *s = sk->s + (size_t)i * n;
        uint64_t *w = sk->s_shoup + (size_t)i * n;
        /* s is secret: the division-free, branch-free form (modarith.h) */
        for (size_t k = 0; k < n; k++)
            w[k] = cdl_shoup_precompute_ct(s[k], m);
    }
    return CDL_OK;
}

cdl_status cdl_ckks_public_key_alloc(const cdl_ckks_context *ctx, cdl_ckks_public_key **out)
{
    *out = NULL;
    cdl_ckks_public_key *pk = cdl_calloc_array(1, sizeof *pk);
    if (!pk)
        return CDL_ERR_NO_MEMORY;
    pk->n = ctx->n;
    pk->q_count = ctx->q_count;
    pk->data = cdl_calloc_array(2 * (size_t)ctx->q_count * ctx->n, sizeof(uint64_t));
    if (!pk->data) {
        cdl_free(pk);
        return CDL_ERR_NO_MEMORY;
    }
    pk->p_count = 0;
    pk->p_data = NULL; /* keygen adds it; loaders may too (see ckks_internal.h) */
    *out = pk;
    return CDL_OK;
}

void cdl_ckks_public_key_free(cdl_ckks_public_key *pk)
{
    if (!pk)
        return;
    cdl_free(pk->data);
    cdl_free(pk->p_data);
    cdl_free(pk);
}

cdl_status cdl_ckks_ksk_init_level(const cdl_ckks_context *ctx, int level, cdl_ckks_ksk *k)
{
    if (level < 0 || level > ctx->max_level)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "key-switching key level %d outside 0..%d", level, ctx->max_level);
    k->max_level = level;
    k->q_count = ctx->q_count;
    k->dnum = (level + ctx->alpha) / ctx->alpha; /* the digits of a ciphertext at that level; ct-public */
    k->qp_count = level + 1 + ctx->p_count;
    k->n = ctx->n;
    k->data = cdl_calloc_array((size_t)k->dnum * 2 * (size_t)k->qp_count * ctx->n, sizeof(uint64_t));
    return k->data ? CDL_OK : CDL_ERR_NO_MEMORY;
}

cdl_status cdl_ckks_ksk_init(const cdl_ckks_context *ctx, cdl_ckks_ksk *k)
{
    return cdl_ckks_ksk_init_level(ctx, ctx->max_level, k);
}

int cdl_ckks_ksk_fits(const cdl_ckks_context *ctx, const cdl_ckks_ksk *k, int level)
{
    const int dnum = (k->max_level + ctx->alpha) / ctx->alpha; /* ct-public: key shape */
    return k->n == ctx->n && k->q_count == ctx->q_count && k->max_level >= level && k->max_level <= ctx->max_level &&
           k->qp_count == k->max_level + 1 + ctx->p_count && k->dnum == dnum;
}

void cdl_ckks_ksk_release(cdl_ckks_ksk *k)
{
    if (!k)
        return;
    cdl_free(k->data);
    k->data = NULL;
}

cdl_status cdl_ckks_relin_key_alloc(const cdl_ckks_context *ctx, cdl_ckks_relin_key **out)
{
    *out = NULL;
    cdl_ckks_relin_key *rlk = cdl_calloc_array(1, sizeof *rlk);
    if (!rlk)
        return CDL_ERR_NO_MEMORY;
    if (cdl_ckks_ksk_init(ctx, &rlk->ksk) != CDL_OK) {
        cdl_free(rlk);
        return CDL_ERR_NO_MEMORY;
    }
    *out = rlk;
    return CDL_OK;
}

void cdl_ckks_relin_key_free(cdl_ckks_relin_key *rlk)
{
    if (!rlk)
        return;
    cdl_ckks_ksk_release(&rlk->ksk);
    cdl_free(rlk);
}

cdl_status cdl_ckks_galois_keys_alloc(const cdl_ckks_context *ctx, size_t count, cdl_ckks_galois_keys **out)
{
    return cdl_ckks_galois_keys_alloc_levels(ctx, count, NULL, out);
}

cdl_status cdl_ckks_galois_keys_alloc_levels(const cdl_ckks_context *ctx, size_t count, const int *levels,
                                             cdl_ckks_galois_keys **out)
{
    *out = NULL;
    cdl_ckks_galois_keys *gk = cdl_calloc_array(1, sizeof *gk);
    if (!gk)
        return CDL_ERR_NO_MEMORY;
    gk->n = ctx->n;
    gk->count = count;
    gk->galois_elts = cdl_calloc_array(count ? count : 1, sizeof(uint64_t));
    gk->keys = cdl_calloc_array(count ? count : 1, sizeof(cdl_ckks_ksk));
    gk->ntt_index = cdl_alloc_array(count ? count : 1, ctx->n * sizeof(uint32_t));
    if (!gk->galois_elts || !gk->keys || !gk->ntt_index) {
        cdl_ckks_galois_keys_free(gk);
        return CDL_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < count; i++) {
        cdl_status st = cdl_ckks_ksk_init_level(ctx, levels ? levels[i] : ctx->max_level, &gk->keys[i]);
        if (st != CDL_OK) {
            cdl_ckks_galois_keys_free(gk);
            return st;
        }
    }
    *out = gk;
    return CDL_OK;
}

void cdl_ckks_galois_keys_free(cdl_ckks_galois_keys *gk)
{
    if (!gk)
        return;
    if (gk->keys)
        for (size_t i = 0; i < gk->count; i++)
            cdl_ckks_ksk_release(&gk->keys[i]);
    cdl_free(gk->keys);
    cdl_free(gk->galois_elts);
    cdl_free(gk->ntt_index);
    cdl_free(gk);
}

void cdl_ckks_galois_keys_set_element(cdl_ckks_galois_keys *gk, size_t i, uint64_t g)
{
    gk->galois_elts[i] = g;
    cdl_automorphism_ntt_index(gk->n, g, gk->ntt_index + i * gk->n);
}

cdl_status cdl_ckks_galois_key_permute(cdl_ckks_galois_keys *gk, size_t i, int to_memory)
{
    cdl_ckks_ksk *k = &gk->keys[i];
    const size_t n = gk->n, limbs = (size_t)k->dnum * 2 * (size_t)k->qp_count;
    const uint32_t *idx = cdl_ckks_galois_keys_index(gk, i);
    int failed = 0;
#pragma omp parallel
    {
        uint64_t *tmp = cdl_alloc_array(n, sizeof *tmp);
        if (!tmp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (size_t l = 0; l < limbs; l++) {
            if (!tmp)
                continue;
            uint64_t *a = k->data + l * n;
            memcpy(tmp, a, n * sizeof *tmp);
            if (to_memory)
                cdl_automorphism_ntt_apply_inverse(tmp, a, n, idx);
            else
                cdl_automorphism_ntt_apply(tmp, a, n, idx);
        }
        cdl_free(tmp);
    }
    return failed ? cdl_fail(CDL_ERR_NO_MEMORY, "Galois keys: out of memory") : CDL_OK;
}

int cdl_ckks_galois_keys_find(const cdl_ckks_galois_keys *gk, uint64_t g)
{
    if (!gk)
        return -1;
    for (size_t i = 0; i < gk->count; i++)
        if (gk->galois_elts[i] == g)
            return (int)i;
    return -1;
}

/* The key index of a rotation step (step 0: conjugation); -2 when no key is
 * needed (a whole number of turns), -1 when absent. */
static long step_key(const cdl_ckks_galois_keys *gk, int step)
{
    uint64_t two_n = 2 * (uint64_t)gk->n;
    if (step == 0)
        return cdl_ckks_galois_keys_find(gk, two_n - 1);
    int64_t slots = (int64_t)gk->n / 2;
    int64_t k = ((int64_t)step % slots + slots) % slots; /* ct-public: a rotation step */
    uint64_t g = 1, base = 5;
    while (k) {
        if (k & 1)
            g = (g * base) & (two_n - 1);
        base = (base * base) & (two_n - 1);
        k >>= 1;
    }
    if (g == 1)
        return -2; /* a whole number of turns: no key needed */
    return cdl_ckks_galois_keys_find(gk, g);
}

int cdl_ckks_galois_keys_has_step(const cdl_ckks_galois_keys *gk, int step)
{
    return gk && step_key(gk, step) != -1;
}

int cdl_ckks_galois_keys_step_level(const cdl_ckks_galois_keys *gk, int step)
{
    if (!gk)
        return -1;
    const long k = step_key(gk, step);
    return k == -2 ? INT32_MAX : k < 0 ? -1 : gk->keys[k].max_level;
}
