/*
 * evaluator.c: homomorphic operations on CKKS ciphertexts (Cheon-Kim-Kim-Song
 * 2017; full-RNS rescaling of Cheon-Han-Kim-Kim-Song SAC 2018; rotations by
 * automorphisms with hybrid key switching and Halevi-Shoup hoisting).
 * Everything stays in the NTT domain except the one limb that rescaling and
 * key switching must bring back to coefficients. Outputs may alias inputs:
 * every loop reads an element before writing the same position, and the
 * two-pass operations (rotations) copy what they still need first.
 */
#include <math.h>
#include <string.h>

#include "ckks/keyswitch.h"
#include "core/error.h"
#include "core/memory.h"
#include "ring/basis_extension.h"
#include "ring/rns_kernels.h"
#include "ring/rns_poly.h"

/* Rotations sharing one digit decomposition per batch (memory grows with it). */
#define CDL_HOIST_BATCH 8

#define NTT_TABLES(ctx) ((cdl_ntt_table *const *)(ctx)->ntt)

static cdl_status check_ct(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *ct, const char *fn)
{
    if (!ctx || !ct)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!cdl_ckks_ct_fits(ctx, ct))
        return cdl_fail(CDL_ERR_MISMATCH, "%s: ciphertext made for another context (N or prime count differ)", fn);
    return CDL_OK;
}

static cdl_status check_levels(const cdl_ckks_ciphertext *a, int level_b, const char *fn, const char *what)
{
    if (a->level != level_b)
        return cdl_fail(CDL_ERR_MISMATCH,
                        "%s: operands are at different levels (%d and %s %d); bring them together with "
                        "cdl_ckks_match_levels or cdl_ckks_drop_to_level",
                        fn, a->level, what, level_b);
    return CDL_OK;
}

static cdl_status check_scales(double a, double b, const char *fn)
{
    if (!cdl_ckks_scales_match(a, b))
        return cdl_fail(CDL_ERR_MISMATCH,
                        "%s: operand scales differ (2^%.6f vs 2^%.6f, relative difference above 1e-9); rescale "
                        "with cdl_ckks_rescale, or overwrite a known harmless drift with "
                        "cdl_ckks_ciphertext_set_scale",
                        fn, log2(a), log2(b));
    return CDL_OK;
}

/* Prepare out for a result of this size/level (keeps data when out aliases an input). */
static cdl_status prepare_out(cdl_ckks_ciphertext *out, int size, int level, double scale)
{
    CDL_TRY(cdl_ckks_ciphertext_reserve(out, size, level + 1));
    out->size = size;
    out->level = level;
    out->scale = scale;
    out->seeded = 0;
    return CDL_OK;
}

/* ---- additive ---- */
static cdl_status add_sub(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b,
                          cdl_ckks_ciphertext *out, int sub, const char *fn)
{
    CDL_TRY(check_ct(ctx, a, fn));
    CDL_TRY(check_ct(ctx, b, fn));
    CDL_TRY(check_ct(ctx, out, fn));
    CDL_TRY(check_levels(a, b->level, fn, "the second at"));
    CDL_TRY(check_scales(a->scale, b->scale, fn));
    const int size = a->size > b->size ? a->size : b->size, limbs = a->level + 1;
    const int asz = a->size, bsz = b->size, level = a->level;
    const double scale = a->scale;
    CDL_TRY(prepare_out(out, size, level, scale));
    const size_t n = ctx->n;
    for (int k = 0; k < size; k++) {
        uint64_t *o = cdl_ct_poly(out, k, 0);
        if (k < asz && k < bsz) {
            if (sub)
                cdl_rns_sub(o, cdl_ct_poly(a, k, 0), cdl_ct_poly(b, k, 0), n, ctx->mod, limbs);
            else
                cdl_rns_add(o, cdl_ct_poly(a, k, 0), cdl_ct_poly(b, k, 0), n, ctx->mod, limbs);
        } else if (k < asz) {
            if (o != cdl_ct_poly(a, k, 0))
                memcpy(o, cdl_ct_poly(a, k, 0), (size_t)limbs * n * sizeof(uint64_t));
        } else if (sub) {
            cdl_rns_neg(o, cdl_ct_poly(b, k, 0), n, ctx->mod, limbs);
        } else if (o != cdl_ct_poly(b, k, 0)) {
            memcpy(o, cdl_ct_poly(b, k, 0), (size_t)limbs * n * sizeof(uint64_t));
        }
    }
    return CDL_OK;
}

cdl_status cdl_ckks_add(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b,
                        cdl_ckks_ciphertext *out)
{
    return add_sub(ctx, a, b, out, 0, "cdl_ckks_add");
}

cdl_status cdl_ckks_sub(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b,
                        cdl_ckks_ciphertext *out)
{
    return add_sub(ctx, a, b, out, 1, "cdl_ckks_sub");
}

cdl_status cdl_ckks_negate(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_ct(ctx, a, "cdl_ckks_negate"));
    CDL_TRY(check_ct(ctx, out, "cdl_ckks_negate"));
    const int size = a->size, limbs = a->level + 1;
    CDL_TRY(prepare_out(out, size, a->level, a->scale));
    for (int k = 0; k < size; k++)
        cdl_rns_neg(cdl_ct_poly(out, k, 0), cdl_ct_poly(a, k, 0), ctx->n, ctx->mod, limbs);
    return CDL_OK;
}

static cdl_status check_pt(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_plaintext *b,
                           const char *fn)
{
    if (!b)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL plaintext", fn);
    if (b->n != ctx->n || b->q_count != ctx->q_count)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: plaintext made for another context", fn);
    if (b->level < a->level)
        return cdl_fail(CDL_ERR_MISMATCH,
                        "%s: plaintext level %d is below the ciphertext level %d; encode it at level %d or drop "
                        "the ciphertext with cdl_ckks_drop_to_level",
                        fn, b->level, a->level, a->level);
    return CDL_OK;
}

static cdl_status add_sub_plain(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                const cdl_ckks_plaintext *b, cdl_ckks_ciphertext *out, int sub, const char *fn)
{
    CDL_TRY(check_ct(ctx, a, fn));
    CDL_TRY(check_ct(ctx, out, fn));
    CDL_TRY(check_pt(ctx, a, b, fn));
    CDL_TRY(check_scales(a->scale, b->scale, fn));
    const int size = a->size, limbs = a->level + 1;
    CDL_TRY(prepare_out(out, size, a->level, a->scale));
    if (sub)
        cdl_rns_sub(cdl_ct_poly(out, 0, 0), cdl_ct_poly(a, 0, 0), b->data, ctx->n, ctx->mod, limbs);
    else
        cdl_rns_add(cdl_ct_poly(out, 0, 0), cdl_ct_poly(a, 0, 0), b->data, ctx->n, ctx->mod, limbs);
    for (int k = 1; k < size; k++)
        if (out != a)
            memcpy(cdl_ct_poly(out, k, 0), cdl_ct_poly(a, k, 0), (size_t)limbs * ctx->n * sizeof(uint64_t));
    return CDL_OK;
}

cdl_status cdl_ckks_add_plain(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_plaintext *b,
                              cdl_ckks_ciphertext *out)
{
    return add_sub_plain(ctx, a, b, out, 0, "cdl_ckks_add_plain");
}

cdl_status cdl_ckks_sub_plain(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_plaintext *b,
                              cdl_ckks_ciphertext *out)
{
    return add_sub_plain(ctx, a, b, out, 1, "cdl_ckks_sub_plain");
}

cdl_status cdl_ckks_mul_plain(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_plaintext *b,
                              cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_ct(ctx, a, "cdl_ckks_mul_plain"));
    CDL_TRY(check_ct(ctx, out, "cdl_ckks_mul_plain"));
    CDL_TRY(check_pt(ctx, a, b, "cdl_ckks_mul_plain"));
    const int size = a->size, limbs = a->level + 1;
    CDL_TRY(prepare_out(out, size, a->level, a->scale * b->scale));
    /* Same per-limb dispatch as tensor(): the IFMA52 kernel where the prime
     * allows it (bit-identical to the portable product), cdl_poly_mul else. */
    const size_t n = ctx->n;
    const int vec = cdl_rns_vector_enabled(n);
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++) {
        const cdl_modulus *m = &ctx->mod[i];
        const uint64_t *pb = b->data + (size_t)i * n;
        for (int k = 0; k < size; k++) {
            if (vec && m->value < CDL_IFMA_PRIME_LIMIT)
                cdl_mul_ifma(cdl_ct_poly(out, k, i), cdl_ct_poly(a, k, i), pb, m->value, n);
            else
                cdl_poly_mul(cdl_ct_poly(out, k, i), cdl_ct_poly(a, k, i), pb, n, m);
        }
    }
    return CDL_OK;
}

cdl_status cdl_ckks_mul_plain_add(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                  const cdl_ckks_plaintext *b, cdl_ckks_ciphertext *acc)
{
    static const char fn[] = "cdl_ckks_mul_plain_add";
    CDL_TRY(check_ct(ctx, a, fn));
    CDL_TRY(check_ct(ctx, acc, fn));
    CDL_TRY(check_pt(ctx, a, b, fn));
    if (acc == a)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: the accumulator must not be the multiplied ciphertext", fn);
    CDL_TRY(check_levels(acc, a->level, fn, "the product at"));
    CDL_TRY(check_scales(acc->scale, a->scale * b->scale, fn));
    if (acc->size != a->size)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: the accumulator has %d polynomials, the product %d", fn, acc->size,
                        a->size);
    const int size = a->size, limbs = a->level + 1;
    const size_t n = ctx->n;
    const int vec = cdl_rns_vector_enabled(n);
    acc->seeded = 0;
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++) {
        const cdl_modulus *m = &ctx->mod[i];
        const uint64_t *pb = b->data + (size_t)i * n;
        for (int k = 0; k < size; k++) {
            uint64_t *o = cdl_ct_poly(acc, k, i);
            if (vec && m->value < CDL_IFMA_PRIME_LIMIT)
                cdl_mul_add_ifma(o, o, cdl_ct_poly(a, k, i), pb, m->value, n);
            else
                cdl_poly_mul_add(o, cdl_ct_poly(a, k, i), pb, n, m);
        }
    }
    return CDL_OK;
}

/* round(c * scale) as residues of limbs 0..level. */
static cdl_status const_residues(const cdl_ckks_context *ctx, double c, double scale, int level, uint64_t *res,
                                 const char *fn)
{
    double v = round(c * scale);
    if (!isfinite(v))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: constant %g times scale %g is not finite", fn, c, scale);
    double lq = 0;
    for (int i = 0; i <= level; i++)
        lq += log2((double)ctx->primes[i]);
    if (v != 0 && log2(fabs(v)) >= lq - 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "%s: constant %g times scale 2^%.1f does not fit the %.1f-bit modulus of level %d", fn, c,
                        log2(scale), lq, level);
    for (int i = 0; i <= level; i++)
        res[i] = cdl_ckks_double_to_residue(v, &ctx->mod[i]);
    return CDL_OK;
}

cdl_status cdl_ckks_add_const(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, double c,
                              cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_ct(ctx, a, "cdl_ckks_add_const"));
    CDL_TRY(check_ct(ctx, out, "cdl_ckks_add_const"));
    uint64_t res[CDL_CKKS_MAX_PRIMES];
    /* A constant polynomial c*scale has every slot equal to c*scale; in the NTT domain it is constant too. */
    CDL_TRY(const_residues(ctx, c, a->scale, a->level, res, "cdl_ckks_add_const"));
    const int size = a->size, limbs = a->level + 1;
    CDL_TRY(prepare_out(out, size, a->level, a->scale));
    cdl_rns_add_scalar(cdl_ct_poly(out, 0, 0), cdl_ct_poly(a, 0, 0), res, ctx->n, ctx->mod, limbs);
    for (int k = 1; k < size; k++)
        if (out != a)
            memcpy(cdl_ct_poly(out, k, 0), cdl_ct_poly(a, k, 0), (size_t)limbs * ctx->n * sizeof(uint64_t));
    return CDL_OK;
}

static cdl_status mul_residues(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const uint64_t *res,
                               double new_scale, cdl_ckks_ciphertext *out)
{
    const int size = a->size, limbs = a->level + 1;
    CDL_TRY(prepare_out(out, size, a->level, new_scale));
    for (int k = 0; k < size; k++)
        cdl_rns_mul_scalar(cdl_ct_poly(out, k, 0), cdl_ct_poly(a, k, 0), res, ctx->n, ctx->mod, limbs);
    return CDL_OK;
}

cdl_status cdl_ckks_mul_const(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, double c, double scale,
                              cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_ct(ctx, a, "cdl_ckks_mul_const"));
    CDL_TRY(check_ct(ctx, out, "cdl_ckks_mul_const"));
    if (!(scale > 0) || !isfinite(scale))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_mul_const: scale %g must be positive and finite", scale);
    uint64_t res[CDL_CKKS_MAX_PRIMES];
    CDL_TRY(const_residues(ctx, c, scale, a->level, res, "cdl_ckks_mul_const"));
    return mul_residues(ctx, a, res, a->scale * scale, out);
}

cdl_status cdl_ckks_mul_int(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, int64_t c,
                            cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_ct(ctx, a, "cdl_ckks_mul_int"));
    CDL_TRY(check_ct(ctx, out, "cdl_ckks_mul_int"));
    uint64_t res[CDL_CKKS_MAX_PRIMES];
    for (int i = 0; i <= a->level; i++)
        res[i] = cdl_mod_from_i64(c, &ctx->mod[i]);
    return mul_residues(ctx, a, res, a->scale, out);
}

/* ---- multiplicative ---- */

/* Tensor product of two size-2 ciphertexts into (d0, d1, d2) (d2 may live elsewhere). */
static void tensor(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b,
                   int limbs, uint64_t *d0, uint64_t *d1, uint64_t *d2, size_t d_stride)
{
    const size_t n = ctx->n;
#pragma omp parallel for schedule(static) if (limbs > 1)
    for (int i = 0; i < limbs; i++) {
        const cdl_modulus *m = &ctx->mod[i];
        const uint64_t *a0 = cdl_ct_poly(a, 0, i), *a1 = cdl_ct_poly(a, 1, i);
        const uint64_t *b0 = cdl_ct_poly(b, 0, i), *b1 = cdl_ct_poly(b, 1, i);
        uint64_t *o0 = d0 + (size_t)i * d_stride, *o1 = d1 + (size_t)i * d_stride, *o2 = d2 + (size_t)i * d_stride;
        if (m->value < CDL_IFMA_PRIME_LIMIT && cdl_rns_vector_enabled(n)) {
            cdl_tensor_ifma(a0, a1, b0, b1, o0, o1, o2, m->value, n);
            continue;
        }
        const int lazy2 = cdl_lazy_products(m) >= 2;
        for (size_t k = 0; k < n; k++) {
            uint64_t x0 = a0[k], x1 = a1[k], y0 = b0[k], y1 = b1[k];
            o0[k] = cdl_barrett_reduce_128((cdl_u128)x0 * y0, m);
            if (lazy2)
                o1[k] = cdl_barrett_reduce_128((cdl_u128)x0 * y1 + (cdl_u128)x1 * y0, m);
            else
                o1[k] = cdl_mod_add(cdl_mod_mul(x0, y1, m), cdl_mod_mul(x1, y0, m), m->value);
            o2[k] = cdl_barrett_reduce_128((cdl_u128)x1 * y1, m);
        }
    }
}

static cdl_status check_mul(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b,
                            cdl_ckks_ciphertext *out, const char *fn)
{
    CDL_TRY(check_ct(ctx, a, fn));
    CDL_TRY(check_ct(ctx, b, fn));
    CDL_TRY(check_ct(ctx, out, fn));
    if (a->size != 2 || b->size != 2)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: operands must have size 2 (got %d and %d); relinearize first", fn,
                        a->size, b->size);
    return check_levels(a, b->level, fn, "the second at");
}

cdl_status cdl_ckks_mul(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b,
                        cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_mul(ctx, a, b, out, "cdl_ckks_mul"));
    const int limbs = a->level + 1;
    const double scale = a->scale * b->scale;
    CDL_TRY(prepare_out(out, 3, a->level, scale));
    tensor(ctx, a, b, limbs, cdl_ct_poly(out, 0, 0), cdl_ct_poly(out, 1, 0), cdl_ct_poly(out, 2, 0), ctx->n);
    return CDL_OK;
}

cdl_status cdl_ckks_square(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, cdl_ckks_ciphertext *out)
{
    return cdl_ckks_mul(ctx, a, a, out);
}

/* out = (c0 + ks0(c2), c1 + ks1(c2)) where c0, c1 are already in out. */
static cdl_status relin_into(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk, const uint64_t *c2,
                             int level, cdl_ckks_ciphertext *out)
{
    /* ModDown adds straight into out (no temporary pair, no extra pass). */
    cdl_status st = cdl_ckks_keyswitch_add(ctx, c2, level, &rlk->ksk, cdl_ct_poly(out, 0, 0), cdl_ct_poly(out, 1, 0), 3);
    if (st == CDL_OK)
        out->size = 2;
    return st;
}

static cdl_status check_rlk(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk, const char *fn)
{
    if (!rlk)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL relinearization key", fn);
    if (!cdl_ckks_ksk_fits(ctx, &rlk->ksk, ctx->max_level))
        return cdl_fail(CDL_ERR_MISMATCH, "%s: relinearization key made for another context", fn);
    return CDL_OK;
}

cdl_status cdl_ckks_relinearize(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                const cdl_ckks_ciphertext *a, cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_ct(ctx, a, "cdl_ckks_relinearize"));
    CDL_TRY(check_ct(ctx, out, "cdl_ckks_relinearize"));
    CDL_TRY(check_rlk(ctx, rlk, "cdl_ckks_relinearize"));
    if (a->size == 2)
        return cdl_ckks_ciphertext_copy(ctx, a, out);
    const int level = a->level, limbs = level + 1;
    const size_t words = (size_t)limbs * ctx->n;
    uint64_t *c2 = cdl_ckks_scratch(CDL_SCRATCH_EV_C2, words);
    if (!c2)
        return cdl_fail(CDL_ERR_NO_MEMORY, "cdl_ckks_relinearize: out of memory");
    memcpy(c2, cdl_ct_poly(a, 2, 0), words * sizeof(uint64_t));
    cdl_status st = CDL_OK;
    if (out != a) {
        st = prepare_out(out, 2, level, a->scale);
        if (st == CDL_OK)
            for (int k = 0; k < 2; k++)
                memcpy(cdl_ct_poly(out, k, 0), cdl_ct_poly(a, k, 0), words * sizeof(uint64_t));
    } else {
        out->seeded = 0;
    }
    if (st == CDL_OK)
        st = relin_into(ctx, rlk, c2, level, out);
    return st;
}

cdl_status cdl_ckks_mul_relin(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                              const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b, cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_mul(ctx, a, b, out, "cdl_ckks_mul_relin"));
    CDL_TRY(check_rlk(ctx, rlk, "cdl_ckks_mul_relin"));
    const int level = a->level, limbs = level + 1;
    const double scale = a->scale * b->scale;
    uint64_t *c2 = cdl_ckks_scratch(CDL_SCRATCH_EV_C2, (size_t)limbs * ctx->n);
    if (!c2)
        return cdl_fail(CDL_ERR_NO_MEMORY, "cdl_ckks_mul_relin: out of memory");
    CDL_TRY(cdl_ckks_ciphertext_reserve(out, 2, limbs)); /* never moves out when it aliases a or b */
    /* d0, d1 straight into out (tensor reads each position before writing it), d2 aside. */
    tensor(ctx, a, b, limbs, cdl_ct_poly(out, 0, 0), cdl_ct_poly(out, 1, 0), c2, ctx->n);
    out->size = 2;
    out->level = level;
    out->scale = scale;
    out->seeded = 0;
    return relin_into(ctx, rlk, c2, level, out);
}

/* ---- levels ---- */
cdl_status cdl_ckks_rescale(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_ct(ctx, a, "cdl_ckks_rescale"));
    CDL_TRY(check_ct(ctx, out, "cdl_ckks_rescale"));
    if (a->level == 0)
        return cdl_fail(CDL_ERR_EXHAUSTED,
                        "cdl_ckks_rescale: the ciphertext is at level 0, no prime left to divide by; use "
                        "parameters with more levels (more ciphertext primes)");
    const size_t n = ctx->n;
    const int l = a->level, size = a->size;
    const size_t qc = (size_t)ctx->q_count;
    uint64_t *last = cdl_ckks_scratch(CDL_SCRATCH_RS_LAST, (size_t)size * n);
    uint64_t *tmp = cdl_ckks_scratch(CDL_SCRATCH_RS_TMP, (size_t)size * (size_t)l * n);
    if (!last || !tmp)
        return cdl_fail(CDL_ERR_NO_MEMORY, "cdl_ckks_rescale: out of memory");
    for (int k = 0; k < size; k++)
        memcpy(last + (size_t)k * n, cdl_ct_poly(a, k, l), n * sizeof(uint64_t));
    const double scale = a->scale / (double)ctx->primes[l];
    CDL_TRY(cdl_ckks_ciphertext_reserve(out, size, l));
    const uint64_t ql = ctx->primes[l];
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int k = 0; k < size; k++)
            cdl_ntt_inverse(ctx->ntt[l], last + (size_t)k * n);
#pragma omp for schedule(static)
        for (int item = 0; item < size * l; item++) {
            int k = item / l, i = item % l;
            uint64_t *t = tmp + (size_t)item * n;
            cdl_lift_centered(last + (size_t)k * n, ql, t, n, &ctx->mod[i]);
            cdl_ntt_forward(ctx->ntt[i], t);
            const uint64_t *src = cdl_ct_poly(a, k, i);
            uint64_t *o = cdl_ct_poly(out, k, i);
            uint64_t q = ctx->primes[i], w = ctx->rescale_inv[(size_t)l * qc + (size_t)i];
            uint64_t ws = ctx->rescale_inv_shoup[(size_t)l * qc + (size_t)i];
            if (cdl_rns_vector_enabled(n)) {
                cdl_sub_mul_scalar_avx512(o, NULL, src, t, w, ws, q, n);
                continue;
            }
            for (size_t j = 0; j < n; j++)
                o[j] = cdl_mul_shoup(src[j] + q - t[j], w, ws, q);
        }
    }
    out->size = size;
    out->level = l - 1;
    out->scale = scale;
    out->seeded = 0;
    return CDL_OK;
}

cdl_status cdl_ckks_drop_to_level(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, int level,
                                  cdl_ckks_ciphertext *out)
{
    CDL_TRY(check_ct(ctx, a, "cdl_ckks_drop_to_level"));
    CDL_TRY(check_ct(ctx, out, "cdl_ckks_drop_to_level"));
    if (level < 0 || level > a->level)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_ckks_drop_to_level: target level %d must be in 0..%d (the ciphertext's level)", level,
                        a->level);
    if (out != a) {
        const int size = a->size;
        CDL_TRY(prepare_out(out, size, level, a->scale));
        for (int k = 0; k < size; k++)
            memcpy(cdl_ct_poly(out, k, 0), cdl_ct_poly(a, k, 0), (size_t)(level + 1) * ctx->n * sizeof(uint64_t));
        return CDL_OK;
    }
    if (level != out->level)
        out->seeded = 0; /* seeds regenerate any prefix, but keep it simple: a dropped ct is no longer fresh */
    out->level = level;
    return CDL_OK;
}

cdl_status cdl_ckks_match_levels(const cdl_ckks_context *ctx, cdl_ckks_ciphertext *a, cdl_ckks_ciphertext *b)
{
    CDL_TRY(check_ct(ctx, a, "cdl_ckks_match_levels"));
    CDL_TRY(check_ct(ctx, b, "cdl_ckks_match_levels"));
    if (a->level > b->level)
        return cdl_ckks_drop_to_level(ctx, a, b->level, a);
    if (b->level > a->level)
        return cdl_ckks_drop_to_level(ctx, b, a->level, b);
    return CDL_OK;
}

/* ---- rotations ---- */
/* The index in gk of the key for galois element g (not 1), checked against a's
 * context and level; step: the rotation asked for (NULL: conjugation). */
static cdl_status find_rotation_key(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                    const cdl_ckks_ciphertext *a, uint64_t g, const int *step, const char *fn,
                                    int *index)
{
    *index = gk ? cdl_ckks_galois_keys_find(gk, g) : -1;
    if (*index < 0) {
        if (step)
            return cdl_fail(CDL_ERR_EXHAUSTED,
                            "%s: no Galois key for a rotation by %d steps (galois element %llu); generate it "
                            "with cdl_ckks_keygen_galois",
                            fn, *step, (unsigned long long)g);
        return cdl_fail(CDL_ERR_EXHAUSTED,
                        "%s: no Galois key for conjugation; generate it with cdl_ckks_keygen_galois "
                        "(conjugate = 1)",
                        fn);
    }
    const cdl_ckks_ksk *k = &gk->keys[*index];
    if (!cdl_ckks_ksk_fits(ctx, k, 0))
        return cdl_fail(CDL_ERR_MISMATCH, "%s: Galois keys made for another context", fn);
    if (k->max_level < a->level)
        return cdl_fail(CDL_ERR_MISMATCH,
                        "%s: the Galois key for this rotation only serves levels 0..%d; the ciphertext is at "
                        "level %d (generate the key for that level)", fn, k->max_level, a->level);
    return CDL_OK;
}

static cdl_status rotate_elements(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                  const cdl_ckks_ciphertext *a, const uint64_t *elts, const int *steps, size_t count,
                                  cdl_ckks_ciphertext *const *outs, const char *fn)
{
    CDL_TRY(check_ct(ctx, a, fn));
    for (size_t r = 0; r < count; r++)
        CDL_TRY(check_ct(ctx, outs[r], fn));
    if (a->size != 2)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: the ciphertext has size %d; relinearize it before rotating", fn,
                        a->size);
    int *key_index = cdl_alloc_array(count ? count : 1, sizeof(int));
    if (!key_index)
        return CDL_ERR_NO_MEMORY;
    int need_ks = 0;
    for (size_t r = 0; r < count; r++) {
        key_index[r] = -1;
        if (elts[r] == 1)
            continue;
        cdl_status st = find_rotation_key(ctx, gk, a, elts[r], steps ? &steps[r] : NULL, fn, &key_index[r]);
        if (st != CDL_OK) {
            cdl_free(key_index);
            return st;
        }
        need_ks++;
    }
    const size_t n = ctx->n;
    const int level = a->level, limbs = level + 1;
    const double scale = a->scale;
    const size_t words = (size_t)limbs * n;
    /* Batch size: at most CDL_HOIST_BATCH, and at most ~32 MB of accumulators. */
    size_t per_key = 2 * (size_t)(limbs + ctx->p_count) * n * sizeof(uint64_t);
    int batch = (int)(((size_t)32 << 20) / per_key);
    batch = batch < 1 ? 1 : batch > CDL_HOIST_BATCH ? CDL_HOIST_BATCH : batch;
    batch = need_ks < batch ? (need_ks ? need_ks : 1) : batch;
    /* Keep (c0, c1) of the input when an output aliases it (a copy of the
     * whole ciphertext otherwise costs ~2% of a rotation). */
    int aliased = 0;
    for (size_t r = 0; r < count; r++)
        aliased |= outs[r] == a;
    uint64_t *c0 = aliased ? cdl_ckks_scratch(CDL_SCRATCH_EV_C0, 2 * words) : NULL;
    const uint64_t *in0 = aliased ? c0 : cdl_ct_poly(a, 0, 0), *in1 = aliased ? c0 + words : cdl_ct_poly(a, 1, 0);
    uint64_t *u = cdl_ckks_scratch(CDL_SCRATCH_EV_U, (size_t)batch * 2 * words);
    size_t *which = cdl_alloc_array((size_t)batch, sizeof(size_t));
    cdl_status st = CDL_OK;
    if ((aliased && !c0) || !u || !which) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "rotation: out of memory");
        goto done;
    }
    if (aliased) {
        memcpy(c0, cdl_ct_poly(a, 0, 0), words * sizeof(uint64_t));
        memcpy(c0 + words, cdl_ct_poly(a, 1, 0), words * sizeof(uint64_t));
    }
    for (size_t r = 0; r < count; r++)
        if (elts[r] == 1) {
            cdl_ckks_ciphertext *o = outs[r];
            CDL_TRY_GOTO(st, prepare_out(o, 2, level, scale), done);
            if (o != a) {
                memcpy(cdl_ct_poly(o, 0, 0), in0, words * sizeof(uint64_t));
                memcpy(cdl_ct_poly(o, 1, 0), in1, words * sizeof(uint64_t));
            }
        }
    /* rotated = (phi(c0), phi(c1)) under phi(s); phi(c1) is switched back to
     * s. The keys are held as phi^-1 of themselves (ckks_internal.h), and
     *   sum_d phi(D_d) * ksk_d = phi(sum_d D_d * phi^-1(ksk_d)),
     * so up to CDL_HOIST_BATCH rotations share the digits D_d of c1 without
     * permuting them (Halevi-Shoup hoisting; permuting every digit limb for
     * every key was a third of a hoisted rotation), and each result is
     * permuted once, after ModDown, together with c0: phi commutes exactly
     * with ModDown, whose base conversion is centered (centered(-x) =
     * -centered(x) for odd primes), so the result is bit for bit that of
     * switching phi(c1) with the key itself. */
    for (size_t r0 = 0; r0 < count;) {
        const cdl_ckks_ksk *keys[CDL_HOIST_BATCH];
        const uint32_t *perms[CDL_HOIST_BATCH];
        uint64_t *u0[CDL_HOIST_BATCH], *u1[CDL_HOIST_BATCH];
        int m = 0;
        for (; r0 < count && m < batch; r0++) {
            if (elts[r0] == 1)
                continue;
            perms[m] = cdl_ckks_galois_keys_index(gk, (size_t)key_index[r0]);
            keys[m] = &gk->keys[key_index[r0]];
            u0[m] = u + (size_t)(2 * m) * words;
            u1[m] = u + (size_t)(2 * m + 1) * words;
            which[m] = r0;
            m++;
        }
        if (m == 0)
            break;
        CDL_TRY_GOTO(st, cdl_ckks_keyswitch_multi(ctx, in1, level, keys, NULL, m, u0, u1, 0), done);
        for (int j = 0; j < m; j++) {
            cdl_ckks_ciphertext *o = outs[which[j]];
            CDL_TRY_GOTO(st, prepare_out(o, 2, level, scale), done);
            const uint32_t *pm = perms[j];
#pragma omp parallel for schedule(static) if (limbs > 1)
            for (int i = 0; i < limbs; i++) {
                const uint64_t q = ctx->primes[i];
                const uint64_t *s0 = in0 + (size_t)i * n, *a0 = u0[j] + (size_t)i * n, *a1 = u1[j] + (size_t)i * n;
                uint64_t *o0 = cdl_ct_poly(o, 0, i), *o1 = cdl_ct_poly(o, 1, i);
                for (size_t k = 0; k < n; k++) {
                    const uint32_t e = pm[k];
                    o0[k] = cdl_mod_add(s0[e], a0[e], q);
                    o1[k] = a1[e];
                }
            }
        }
    }
done:
    cdl_free(key_index);
    cdl_free(which);
    return st;
}

cdl_status cdl_ckks_rotate_hoisted(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                   const cdl_ckks_ciphertext *a, const int *steps, size_t count,
                                   cdl_ckks_ciphertext *const *outs)
{
    if (!ctx || !a || (count && (!steps || !outs)))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_rotate_hoisted: NULL argument");
    uint64_t *elts = cdl_alloc_array(count ? count : 1, sizeof(uint64_t));
    if (!elts)
        return CDL_ERR_NO_MEMORY;
    for (size_t r = 0; r < count; r++) {
        if (!outs[r]) {
            cdl_free(elts);
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_rotate_hoisted: output %zu is NULL", r);
        }
        elts[r] = cdl_ckks_galois_element(ctx, steps[r]);
    }
    cdl_status st = rotate_elements(ctx, gk, a, elts, steps, count, outs, "cdl_ckks_rotate_hoisted");
    cdl_free(elts);
    return st;
}

cdl_status cdl_ckks_rotate(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const cdl_ckks_ciphertext *a,
                           int steps, cdl_ckks_ciphertext *out)
{
    if (!ctx || !a || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_rotate: NULL argument");
    uint64_t g = cdl_ckks_galois_element(ctx, steps);
    return rotate_elements(ctx, gk, a, &g, &steps, 1, &out, "cdl_ckks_rotate");
}

cdl_status cdl_ckks_conjugate(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                              const cdl_ckks_ciphertext *a, cdl_ckks_ciphertext *out)
{
    if (!ctx || !a || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_conjugate: NULL argument");
    uint64_t g = cdl_ckks_conjugation_element(ctx);
    return rotate_elements(ctx, gk, a, &g, NULL, 1, &out, "cdl_ckks_conjugate");
}

/* ---- double-hoisted sums of rotations (Bossuat, Mouchet, Troncoso-Pastoriza,
 * Hubaux, EUROCRYPT 2021): the rotated terms are multiplied and summed modulo
 * Q*P before one ModDown per group (cdl_ckks_keyswitch_rotate_dot); the
 * unrotated terms are added after it, modulo Q (ModDown(A + P B) = ModDown(A)
 * + B exactly, so this is the same sum). ---- */
cdl_status cdl_ckks_rotate_dot_plain(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                     const cdl_ckks_ciphertext *a, const int *steps, size_t count,
                                     const cdl_ckks_plaintext *const *pts, size_t groups,
                                     cdl_ckks_ciphertext *const *outs)
{
    static const char fn[] = "cdl_ckks_rotate_dot_plain";
    if (!ctx || !a || !steps || !pts || !outs)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!count || !groups || count > (1u << 16) || groups > (1u << 16))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: %zu rotations and %zu groups (1..65536 each)", fn, count,
                        groups);
    CDL_TRY(check_ct(ctx, a, fn));
    if (a->size != 2)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: the ciphertext has size %d; relinearize it before rotating", fn,
                        a->size);
    double *scales = cdl_alloc_array(groups, sizeof(double));
    uint64_t *elts = cdl_alloc_array(count, sizeof(uint64_t));
    int *used = cdl_calloc_array(count, sizeof(int)); /* 1: a rotated term uses it */
    int *grot = cdl_calloc_array(groups, sizeof(int)); /* group has a rotated term */
    const cdl_ckks_ksk **keys = cdl_calloc_array(count, sizeof(*keys));
    const uint32_t **perms = cdl_calloc_array(count, sizeof(*perms));
    const cdl_ckks_plaintext **rpts = cdl_calloc_array(count * groups, sizeof(*rpts));
    uint64_t **o0 = cdl_calloc_array(groups, sizeof(*o0)), **o1 = cdl_calloc_array(groups, sizeof(*o1));
    cdl_status st = CDL_OK;
    if (!scales || !elts || !used || !grot || !keys || !perms || !rpts || !o0 || !o1) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "%s: out of memory", fn);
        goto done;
    }
    for (size_t r = 0; r < count; r++)
        elts[r] = cdl_ckks_galois_element(ctx, steps[r]);
    for (size_t j = 0; j < groups && st == CDL_OK; j++) {
        cdl_ckks_ciphertext *o = outs[j];
        if (!o) {
            st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: output %zu is NULL", fn, j);
            break;
        }
        CDL_TRY_GOTO(st, check_ct(ctx, o, fn), done);
        if (o == a) {
            st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: output %zu is the rotated ciphertext", fn, j);
            break;
        }
        for (size_t h = 0; h < j; h++)
            if (outs[h] == o) {
                st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: groups %zu and %zu share an output", fn, h, j);
                goto done;
            }
        int terms = 0;
        for (size_t r = 0; r < count; r++) {
            const cdl_ckks_plaintext *pt = pts[j * count + r];
            if (!pt)
                continue;
            CDL_TRY_GOTO(st, check_pt(ctx, a, pt, fn), done);
            if (!terms++)
                scales[j] = pt->scale;
            else if (!cdl_ckks_scales_match(scales[j], pt->scale)) {
                st = cdl_fail(CDL_ERR_MISMATCH, "%s: group %zu mixes plaintext scales 2^%.6f and 2^%.6f", fn, j,
                              log2(scales[j]), log2(pt->scale));
                goto done;
            }
            if (elts[r] == 1)
                continue;
            if (!pt->p_data || !pt->p_valid || pt->p_count != ctx->p_count) {
                st = cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                              "%s: the plaintext of group %zu for the rotation by %d steps has no special primes; "
                              "make it with cdl_ckks_plaintext_new_qp and encode it",
                              fn, j, steps[r]);
                goto done;
            }
            used[r] = 1;
            grot[j] = 1;
        }
        if (!terms)
            st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: group %zu has no term", fn, j);
    }
    if (st != CDL_OK)
        goto done;
    /* the rotations some term uses, and the groups with a rotated term, compacted */
    int nrot = 0, ngrp = 0;
    for (size_t r = 0; r < count; r++) {
        if (!used[r])
            continue;
        int idx = -1;
        CDL_TRY_GOTO(st, find_rotation_key(ctx, gk, a, elts[r], &steps[r], fn, &idx), done);
        keys[nrot] = &gk->keys[idx];
        perms[nrot] = cdl_ckks_galois_keys_index(gk, (size_t)idx);
        used[r] = ++nrot; /* 1 + its compacted index */
    }
    const int level = a->level;
    for (size_t j = 0; j < groups; j++) {
        CDL_TRY_GOTO(st, prepare_out(outs[j], 2, level, a->scale * scales[j]), done);
        if (!grot[j])
            continue;
        for (size_t r = 0; r < count; r++)
            if (used[r] && elts[r] != 1)
                rpts[(size_t)ngrp * (size_t)nrot + (size_t)(used[r] - 1)] = pts[j * count + r];
        o0[ngrp] = cdl_ct_poly(outs[j], 0, 0);
        o1[ngrp++] = cdl_ct_poly(outs[j], 1, 0);
    }
    if (nrot)
        CDL_TRY_GOTO(st,
                     cdl_ckks_keyswitch_rotate_dot(ctx, cdl_ct_poly(a, 0, 0), cdl_ct_poly(a, 1, 0), level, keys, perms,
                                                   nrot, rpts, ngrp, o0, o1),
                     done);
    /* the unrotated terms, modulo Q */
    for (size_t j = 0; j < groups; j++) {
        int started = grot[j];
        for (size_t r = 0; r < count; r++) {
            const cdl_ckks_plaintext *pt = pts[j * count + r];
            if (!pt || elts[r] != 1)
                continue;
            st = started ? cdl_ckks_mul_plain_add(ctx, a, pt, outs[j]) : cdl_ckks_mul_plain(ctx, a, pt, outs[j]);
            if (st != CDL_OK)
                goto done;
            started = 1;
        }
    }
done:
    cdl_free(scales);
    cdl_free(elts);
    cdl_free(used);
    cdl_free(grot);
    cdl_free(keys);
    cdl_free(perms);
    cdl_free(rpts);
    cdl_free(o0);
    cdl_free(o1);
    return st;
}

/* The second level of double hoisting: the giant steps of a baby-step
 * giant-step transform, sum_j rotate(x_j, step_j), each x_j decomposed on its
 * own but the key-switching products summed modulo Q*P before one ModDown
 * (cdl_ckks_keyswitch_rotate_sum); unrotated terms are added after it. */
cdl_status cdl_ckks_rotate_sum(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                               const cdl_ckks_ciphertext *const *cts, const int *steps, size_t count,
                               cdl_ckks_ciphertext *out)
{
    static const char fn[] = "cdl_ckks_rotate_sum";
    if (!ctx || !cts || !steps || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    if (!count || count > (1u << 16))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: %zu terms (1..65536)", fn, count);
    CDL_TRY(check_ct(ctx, out, fn));
    for (size_t r = 0; r < count; r++) {
        if (!cts[r])
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: term %zu is NULL", fn, r);
        CDL_TRY(check_ct(ctx, cts[r], fn));
        if (cts[r] == out)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: the output is term %zu", fn, r);
        if (cts[r]->size != 2)
            return cdl_fail(CDL_ERR_MISMATCH, "%s: term %zu has size %d; relinearize it before rotating", fn, r,
                            cts[r]->size);
        CDL_TRY(check_levels(cts[r], cts[0]->level, fn, "the first term at"));
        CDL_TRY(check_scales(cts[r]->scale, cts[0]->scale, fn));
    }
    const cdl_ckks_ciphertext *a = cts[0];
    const int level = a->level;
    const cdl_ckks_ksk **keys = cdl_calloc_array(count, sizeof(*keys));
    const uint32_t **perms = cdl_calloc_array(count, sizeof(*perms));
    const uint64_t **c0 = cdl_calloc_array(count, sizeof(*c0)), **c1 = cdl_calloc_array(count, sizeof(*c1));
    cdl_status st = CDL_OK;
    int nrot = 0;
    if (!keys || !perms || !c0 || !c1) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "%s: out of memory", fn);
        goto done;
    }
    for (size_t r = 0; r < count; r++) {
        const uint64_t g = cdl_ckks_galois_element(ctx, steps[r]);
        if (g == 1)
            continue;
        int idx = -1;
        CDL_TRY_GOTO(st, find_rotation_key(ctx, gk, cts[r], g, &steps[r], fn, &idx), done);
        keys[nrot] = &gk->keys[idx];
        perms[nrot] = cdl_ckks_galois_keys_index(gk, (size_t)idx);
        c0[nrot] = cdl_ct_poly(cts[r], 0, 0);
        c1[nrot++] = cdl_ct_poly(cts[r], 1, 0);
    }
    CDL_TRY_GOTO(st, prepare_out(out, 2, level, a->scale), done);
    if (nrot)
        CDL_TRY_GOTO(st,
                     cdl_ckks_keyswitch_rotate_sum(ctx, c0, c1, level, keys, perms, nrot, cdl_ct_poly(out, 0, 0),
                                                   cdl_ct_poly(out, 1, 0)),
                     done);
    /* the unrotated terms */
    int started = nrot > 0;
    for (size_t r = 0; r < count; r++) {
        if (cdl_ckks_galois_element(ctx, steps[r]) != 1)
            continue;
        CDL_TRY_GOTO(st, started ? cdl_ckks_add(ctx, out, cts[r], out) : cdl_ckks_ciphertext_copy(ctx, cts[r], out),
                     done);
        started = 1;
    }
done:
    cdl_free(keys);
    cdl_free(perms);
    cdl_free(c0);
    cdl_free(c1);
    return st;
}
