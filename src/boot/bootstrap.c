/*
 * bootstrap.c: CKKS bootstrapping end to end (include/cryptodl/bootstrap.h):
 * parameters and presets, the bootstrapper (DFT matrices encoded at their
 * levels, the EvalMod polynomial), key generation, ModRaise, sparse-secret
 * encapsulation and the pipeline
 *   level 0 -> [to s'] -> ModRaise -> [to s] -> CoeffToSlot -> conjugate split
 *   -> EvalMod (real part, imaginary part) -> recombine -> SlotToCoeff.
 *
 * Scales. The raised ciphertext is labelled with scale q0, so that after
 * CoeffToSlot a slot reads x = (m + q0 I) / q0; each DFT matrix is encoded at
 * the scale of the prime its level divides by, so CoeffToSlot keeps the
 * label. EvalMod returns sin(2 pi x) ~ 2 pi m / q0; since m = scale_in * v
 * for the input values v, relabelling to S * 2 pi scale_in / q0 reads v
 * again. SlotToCoeff then moves the scale to the requested output scale.
 */
#include <math.h>
#include <string.h>

#include "approx/poly_eval_internal.h"
#include "boot/boot_internal.h"
#include "ckks/keyswitch.h"
#include "core/error.h"
#include "core/memory.h"
#include "ring/rns_poly.h"

int cdl_ckks_bootstrap_depth(const cdl_ckks_bootstrap_params *p)
{
    if (!p)
        return -1;
    return p->cts_levels + cdl_pe_ceil_log2(p->cos_degree + 1) + p->double_angle + p->stc_levels;
}

static void chain_push(cdl_ckks_param_spec *s, int bits, int count)
{
    for (int i = 0; i < count; i++)
        s->q_bits[s->q_count++] = bits;
}

cdl_status cdl_ckks_bootstrap_preset(int log_n, cdl_ckks_param_spec *spec, cdl_ckks_bootstrap_params *params)
{
    if (!spec || !params)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_bootstrap_preset: NULL argument");
    if (log_n < 10 || log_n > 16 || log_n == 15)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "no bootstrapping preset for log_n = %d: 16 (128-bit security) and 10..14 (insecure, for "
                        "tests) exist",
                        log_n);
    memset(spec, 0, sizeof(*spec));
    memset(params, 0, sizeof(*params));
    params->k_bound = 12;
    params->cos_degree = 31;
    params->double_angle = 3;
    params->log_message_ratio = 8;
    params->sse_hamming_weight = 32;
    params->sse_p_bits = 57; /* log2(q0 p') <= 60 + 57 = 117: 128-bit for h' = 32 at N = 2^16 */
    spec->log_n = log_n;
    spec->scale = ldexp(1.0, 40);
    /* 128-bit at N = 2^16: 60 + 9*40 + 3*45 + 8*60 + 4*50 = 1235, P = 5*61: 1540 <= 1553 (h = 192);
     * the test sizes keep the structure with 2 computation levels (INSECURE) */
    const int secure = log_n == 16;
    const int compute_levels = secure ? 9 : 2;
    params->cts_levels = secure ? 4 : 3;
    params->stc_levels = secure ? 3 : 2;
    spec->secret_hamming_weight = secure ? 192 : 64;
    spec->allow_insecure = !secure;
    /* bottom up: q0, the computation levels, SlotToCoeff, EvalMod, CoeffToSlot */
    chain_push(spec, 60, 1);
    chain_push(spec, 40, compute_levels);
    chain_push(spec, 45, params->stc_levels);
    chain_push(spec, 60, 8);
    chain_push(spec, 50, params->cts_levels);
    spec->p_count = secure ? 5 : 3;
    for (int i = 0; i < spec->p_count; i++)
        spec->p_bits[i] = 61;
    return CDL_OK;
}

static cdl_status check_params(const cdl_ckks_context *ctx, const cdl_ckks_bootstrap_params *p)
{
    if (p->log_slots < 0 || p->log_slots > ctx->log_n - 1)
        return cdl_fail(CDL_ERR_PARAMETERS, "bootstrapping: log_slots %d must be 0 (full) or 1..%d at N = 2^%d",
                        p->log_slots, ctx->log_n - 1, ctx->log_n);
    const int stages = p->log_slots ? p->log_slots : ctx->log_n - 1;
    if (p->cts_levels < 1 || p->cts_levels > stages || p->stc_levels < 1 || p->stc_levels > stages)
        return cdl_fail(CDL_ERR_PARAMETERS,
                        "bootstrapping: CoeffToSlot and SlotToCoeff levels (%d, %d) must be in 1..%d for 2^%d slots",
                        p->cts_levels, p->stc_levels, stages, stages);
    if (p->log_message_ratio < 1 || p->log_message_ratio > 30)
        return cdl_fail(CDL_ERR_PARAMETERS, "bootstrapping: log_message_ratio %d must be in 1..30",
                        p->log_message_ratio);
    if (p->sse_hamming_weight < 0 || (p->sse_hamming_weight > 0 && (p->sse_p_bits < 20 || p->sse_p_bits > 61)))
        return cdl_fail(CDL_ERR_PARAMETERS,
                        "bootstrapping: sparse-secret encapsulation needs a weight >= 1 and p' of 20..61 bits");
    const int depth = cdl_ckks_bootstrap_depth(p);
    if (depth > ctx->max_level)
        return cdl_fail(CDL_ERR_PARAMETERS,
                        "bootstrapping spends %d levels (CoeffToSlot %d, EvalMod %d, SlotToCoeff %d) but the context "
                        "has %d; use cdl_ckks_bootstrap_preset or a longer chain",
                        depth, p->cts_levels, depth - p->cts_levels - p->stc_levels, p->stc_levels, ctx->max_level);
    return CDL_OK;
}

void cdl_ckks_bootstrapper_free(cdl_ckks_bootstrapper *bt)
{
    if (!bt)
        return;
    for (int g = 0; bt->cts && g < bt->cts_count; g++)
        boot_lintrans_release(&bt->cts[g]);
    for (int g = 0; bt->stc && g < bt->stc_count; g++)
        boot_lintrans_release(&bt->stc[g]);
    cdl_free(bt->cts);
    cdl_free(bt->stc);
    cdl_ckks_plaintext_free(bt->imag_unit);
    cdl_ckks_plaintext_free(bt->imag_unit_stc);
    cdl_ckks_context_free(bt->sse_ctx);
    cdl_free(bt->steps);
    cdl_free(bt->step_levels);
    cdl_free(bt);
}

/* i = X^(N/2) as a plaintext at `level` with scale 1 (exact: its coefficients are 0 and 1). */
static cdl_status imaginary_unit(const cdl_ckks_context *ctx, int level, cdl_ckks_plaintext **out)
{
    double *re = cdl_calloc_array(ctx->slots, sizeof(double)), *im = cdl_alloc_array(ctx->slots, sizeof(double));
    cdl_status st = re && im ? CDL_OK : CDL_ERR_NO_MEMORY;
    for (size_t i = 0; im && i < ctx->slots; i++)
        im[i] = 1.0;
    if (st == CDL_OK)
        st = cdl_ckks_plaintext_new_level(ctx, level, out);
    if (st == CDL_OK)
        st = cdl_ckks_encode_complex(ctx, re, im, ctx->slots, 1.0, level, *out);
    cdl_free(re);
    cdl_free(im);
    return st;
}

/* The scale EvalMod returns (eval_poly gives exactly the first prime it asks
 * for; each double angle squares and divides by the next prime). */
static double evalmod_out_scale(const cdl_ckks_context *ctx, const boot_evalmod *em, int level_in, double in_scale)
{
    int level = level_in - cdl_pe_ceil_log2(em->degree + 1);
    double s = em->double_angle ? (double)ctx->primes[level] : in_scale;
    for (int r = 0; r < em->double_angle; r++, level--)
        s = s * s / (double)ctx->primes[level];
    return s;
}

/* EvalMod returns sin(2 pi x) ~ 2 pi m / q0 at scale sine_scale, and m = scale_in * value:
 * the label under which the same ciphertext reads the input's values. */
static double value_label(const cdl_ckks_context *ctx, double sine_scale, double scale_in)
{
    return sine_scale * 2.0 * M_PI * scale_in / (double)ctx->primes[0];
}

static cdl_status lift_in_place(boot_diag_matrix *m, const double *block_re, const double *block_im)
{
    boot_diag_matrix lifted;
    CDL_TRY(boot_diag_matrix_lift2(m, block_re, block_im, &lifted));
    boot_diag_matrix_free(m);
    *m = lifted;
    return CDL_OK;
}

static cdl_status make_sse_context(const cdl_ckks_context *ctx, const cdl_ckks_bootstrap_params *p,
                                   cdl_ckks_context **out)
{
    cdl_ckks_param_spec s;
    memset(&s, 0, sizeof(s));
    s.log_n = ctx->log_n;
    s.q_count = 1;
    s.q_bits[0] = ctx->spec.q_bits[0];
    s.p_count = 1;
    s.p_bits[0] = p->sse_p_bits;
    s.dnum = 1;
    s.scale = ctx->scale;
    s.secret_hamming_weight = p->sse_hamming_weight;
    s.allow_insecure = ctx->spec.allow_insecure;
    CDL_TRY(cdl_ckks_context_new(&s, out));
    /* q0 is the largest prime of its size in both contexts; check rather than trust */
    if ((*out)->primes[0] != ctx->primes[0]) {
        cdl_ckks_context_free(*out);
        *out = NULL;
        return cdl_fail(CDL_ERR_INTERNAL, "bootstrapping: the encapsulation modulus does not share q0");
    }
    return CDL_OK;
}

static cdl_status collect_steps(cdl_ckks_bootstrapper *bt)
{
    int cap = bt->subsum_steps;
    for (int g = 0; g < bt->cts_count; g++)
        cap += bt->cts[g].nbaby + bt->cts[g].jcount;
    for (int g = 0; g < bt->stc_count; g++)
        cap += bt->stc[g].nbaby + bt->stc[g].jcount;
    int *steps = cdl_alloc_array((size_t)cap + 1, sizeof(int)), *levels = cdl_alloc_array((size_t)cap + 1, sizeof(int));
    if (!steps || !levels) {
        cdl_free(steps);
        cdl_free(levels);
        return CDL_ERR_NO_MEMORY;
    }
    int count = 0;
    for (int i = 0; i < bt->subsum_steps; i++) {
        steps[count] = (int)(bt->slots << i);
        levels[count++] = bt->ctx->max_level;
    }
    for (int g = 0; g < bt->cts_count; g++)
        count += boot_lintrans_steps(bt->ctx, &bt->cts[g], steps + count, levels + count, cap - count);
    for (int g = 0; g < bt->stc_count; g++)
        count += boot_lintrans_steps(bt->ctx, &bt->stc[g], steps + count, levels + count, cap - count);
    /* merge repeats, keeping the highest level */
    int distinct = 0;
    for (int a = 0; a < count; a++) {
        int found = -1;
        for (int b = 0; b < distinct; b++)
            if (steps[b] == steps[a])
                found = b;
        if (found < 0) {
            steps[distinct] = steps[a];
            levels[distinct++] = levels[a];
        } else if (levels[a] > levels[found]) {
            levels[found] = levels[a];
        }
    }
    bt->steps = steps;
    bt->step_levels = levels;
    bt->nsteps = distinct;
    return CDL_OK;
}

cdl_status cdl_ckks_bootstrapper_new(const cdl_ckks_context *ctx, const cdl_ckks_bootstrap_params *params,
                                     cdl_ckks_bootstrapper **out)
{
    if (!ctx || !params || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_bootstrapper_new: NULL argument");
    *out = NULL;
    CDL_TRY(check_params(ctx, params));
    cdl_ckks_bootstrapper *bt = cdl_calloc_array(1, sizeof(*bt));
    if (!bt)
        return CDL_ERR_NO_MEMORY;
    bt->ctx = ctx;
    bt->p = *params;
    if (bt->p.out_scale <= 0)
        bt->p.out_scale = ctx->scale;
    bt->slots = params->log_slots ? (size_t)1 << params->log_slots : ctx->slots;
    bt->subsum_steps = __builtin_ctzll(ctx->slots / bt->slots);
    bt->packed = 2 * bt->slots <= ctx->slots;
    /* With n < N/2 slots the message sits in 2n coefficients, each sqrt(N / (2n)) times larger:
     * keep them as far below q0 as full slots would be. */
    bt->log_ratio = params->log_message_ratio + (bt->subsum_steps + 1) / 2;
    cdl_status st = boot_evalmod_plan(params->k_bound, params->cos_degree, params->double_angle, &bt->em);
    const int top = ctx->max_level;
    bt->level_cts_out = top - params->cts_levels;
    bt->level_stc_in = bt->level_cts_out - boot_evalmod_depth(&bt->em);
    bt->level_out = bt->level_stc_in - params->stc_levels;
    if (st == CDL_OK && params->sse_hamming_weight > 0)
        st = make_sse_context(ctx, params, &bt->sse_ctx);
    boot_diag_matrix *m = NULL;
    const int groups = params->cts_levels > params->stc_levels ? params->cts_levels : params->stc_levels;
    if (st == CDL_OK) {
        m = cdl_calloc_array((size_t)groups, sizeof(*m));
        bt->cts = cdl_calloc_array((size_t)params->cts_levels, sizeof(*bt->cts));
        bt->stc = cdl_calloc_array((size_t)params->stc_levels, sizeof(*bt->stc));
        if (!m || !bt->cts || !bt->stc)
            st = CDL_ERR_NO_MEMORY;
    }
    /* CoeffToSlot: the label goes from q0 to q * alpha / 2 (q the prime EvalMod
     * first divides by, alpha = 1 / (K + 1/2)), so that after the real /
     * imaginary split (label x 2) EvalMod's variable t = alpha x has the scale q
     * (sparse slots: from q0 N / (2n), the label after SubSum). */
    const double cts_total = (double)ctx->primes[bt->level_cts_out] /
                             (2.0 * bt->em.bound * (double)ctx->primes[0] * (double)(ctx->slots / bt->slots));
    const double cts_factor = pow(cts_total, 1.0 / params->cts_levels);
    if (st == CDL_OK)
        st = boot_dft_factors(ctx, bt->slots, 1, params->cts_levels, m);
    /* packed sparse slots: the last CoeffToSlot matrix writes [M z, -i M z] over 2n slots, so that
     * u + conj(u) holds 2 Re in the first half and 2 Im in the second */
    static const double cts_block_re[4] = {1, 0, 0, 0}, cts_block_im[4] = {0, 0, 0, -1};
    static const double stc_block_re[4] = {1, 0, 1, 0}, stc_block_im[4] = {0, 1, 0, 1};
    if (st == CDL_OK && bt->packed)
        st = lift_in_place(&m[params->cts_levels - 1], cts_block_re, cts_block_im);
    for (int g = 0; st == CDL_OK && g < params->cts_levels; g++) {
        st = boot_lintrans_prepare(ctx, &m[g], top - g, cts_factor, &bt->cts[g]);
        if (st == CDL_OK)
            bt->cts_count++;
    }
    for (int g = 0; m && g < params->cts_levels; g++)
        boot_diag_matrix_free(&m[g]);
    /* SlotToCoeff moves the nominal scale after EvalMod to out_scale in equal factors */
    if (st == CDL_OK) {
        const double nominal_in = ldexp((double)ctx->primes[0], -bt->log_ratio);
        const double s_eval = evalmod_out_scale(ctx, &bt->em, bt->level_cts_out,
                                                   2.0 * (double)ctx->primes[0] * cts_total *
                                                       (double)(ctx->slots / bt->slots));
        const double s_stc = value_label(ctx, s_eval, nominal_in);
        const double factor = pow(bt->p.out_scale / s_stc, 1.0 / params->stc_levels);
        st = boot_dft_factors(ctx, bt->slots, 0, params->stc_levels, m);
        /* packed: the first SlotToCoeff matrix reads re + i im from the two halves */
        if (st == CDL_OK && bt->packed)
            st = lift_in_place(&m[0], stc_block_re, stc_block_im);
        for (int g = 0; st == CDL_OK && g < params->stc_levels; g++) {
            st = boot_lintrans_prepare(ctx, &m[g], bt->level_stc_in - g, factor, &bt->stc[g]);
            if (st == CDL_OK)
                bt->stc_count++;
        }
        for (int g = 0; g < params->stc_levels; g++)
            boot_diag_matrix_free(&m[g]);
    }
    cdl_free(m);
    if (st == CDL_OK && !bt->packed) /* the split of full slots multiplies by i twice */
        st = imaginary_unit(ctx, bt->level_cts_out, &bt->imag_unit);
    if (st == CDL_OK && !bt->packed)
        st = imaginary_unit(ctx, bt->level_stc_in, &bt->imag_unit_stc);
    if (st == CDL_OK)
        st = collect_steps(bt);
    if (st != CDL_OK) {
        cdl_ckks_bootstrapper_free(bt);
        return st;
    }
    *out = bt;
    return CDL_OK;
}

cdl_status cdl_ckks_bootstrapper_info(const cdl_ckks_bootstrapper *bt, cdl_ckks_bootstrap_info *info)
{
    if (!bt || !info)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_bootstrapper_info: NULL argument");
    memset(info, 0, sizeof(*info));
    info->slots = (int)bt->slots;
    info->level_out = bt->level_out;
    info->depth = bt->ctx->max_level - bt->level_out;
    info->rotation_keys = bt->nsteps;
    int rotations = 1 + (bt->sse_ctx ? 2 : 0) + bt->subsum_steps; /* conjugation, encapsulation, SubSum */
    size_t bytes = 0;
    int steps[1024], levels[1024];
    for (int g = 0; g < bt->cts_count + bt->stc_count; g++) {
        const boot_lintrans *lt = g < bt->cts_count ? &bt->cts[g] : &bt->stc[g - bt->cts_count];
        bytes += boot_lintrans_bytes(lt);
        rotations += boot_lintrans_steps(bt->ctx, lt, steps, levels, 1024);
    }
    info->rotations = rotations;
    /* EvalMod twice (once for packed sparse slots): the polynomial's products plus one per double angle */
    cdl_poly_eval_plan plan;
    if (cdl_poly_eval_plan_chebyshev(bt->em.cheb, bt->em.degree, &plan) == CDL_OK)
        info->relinearizations = (bt->packed ? 1 : 2) * (plan.ct_mults + bt->em.double_angle);
    info->plaintext_bytes = bytes;
    info->k_bound = bt->p.k_bound;
    info->cos_max_error = bt->em.max_error;
    return CDL_OK;
}

/* ---- keys ---- */

void cdl_ckks_bootstrap_keys_free(cdl_ckks_bootstrap_keys *bk)
{
    if (!bk)
        return;
    cdl_ckks_galois_keys_free(bk->gk);
    cdl_ckks_ksk_release(&bk->to_sparse);
    cdl_ckks_ksk_release(&bk->from_sparse);
    cdl_free(bk);
}

static size_t ksk_bytes(const cdl_ckks_ksk *k)
{
    return k->data ? (size_t)k->dnum * 2 * (size_t)k->qp_count * k->n * sizeof(uint64_t) : 0;
}

size_t cdl_ckks_bootstrap_keys_bytes(const cdl_ckks_bootstrap_keys *bk)
{
    if (!bk)
        return 0;
    size_t bytes = ksk_bytes(&bk->to_sparse) + ksk_bytes(&bk->from_sparse);
    for (size_t i = 0; bk->gk && i < bk->gk->count; i++)
        bytes += ksk_bytes(&bk->gk->keys[i]);
    return bytes;
}

/* NTT form of a ternary secret (coefficients of sk) over every prime of ctx. */
static uint64_t *secret_ntt(const cdl_ckks_context *ctx, const int8_t *coeffs)
{
    uint64_t *s = cdl_secure_calloc((size_t)ctx->qp_count * ctx->n, sizeof(uint64_t));
    if (!s)
        return NULL;
    cdl_rns_from_small(s, coeffs, ctx->n, ctx->mod, ctx->qp_count);
    cdl_rns_ntt_forward(s, ctx->n, (cdl_ntt_table *const *)ctx->ntt, ctx->qp_count);
    return s;
}

cdl_status cdl_ckks_bootstrap_keygen(const cdl_ckks_bootstrapper *bt, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                     cdl_ckks_bootstrap_keys **out)
{
    if (!bt || !sk || !rng || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_bootstrap_keygen: NULL argument");
    *out = NULL;
    const cdl_ckks_context *ctx = bt->ctx;
    if (sk->n != ctx->n || sk->qp_count != ctx->qp_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_bootstrap_keygen: secret key made for another context");
    cdl_ckks_bootstrap_keys *bk = cdl_calloc_array(1, sizeof(*bk));
    if (!bk)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = cdl_ckks_keygen_galois_levels(ctx, sk, bt->steps, bt->step_levels, (size_t)bt->nsteps, 1, rng,
                                                  &bk->gk);
    if (st == CDL_OK && bt->sse_ctx) {
        const cdl_ckks_context *sc = bt->sse_ctx;
        cdl_ckks_secret_key *sparse = NULL;
        uint64_t *s_dense = NULL, *s_sparse = NULL;
        bk->has_sse = 1;
        st = cdl_ckks_keygen_secret(sc, rng, &sparse);
        if (st == CDL_OK) {
            s_dense = secret_ntt(sc, sk->coeffs);       /* s over q0, p' */
            s_sparse = secret_ntt(ctx, sparse->coeffs); /* s' over the whole chain */
            st = s_dense && s_sparse ? CDL_OK : CDL_ERR_NO_MEMORY;
        }
        if (st == CDL_OK)
            st = cdl_ckks_ksk_init(sc, &bk->to_sparse);
        if (st == CDL_OK)
            st = cdl_ckks_ksk_generate(sc, sparse, s_dense, rng, &bk->to_sparse);
        if (st == CDL_OK)
            st = cdl_ckks_ksk_init(ctx, &bk->from_sparse);
        if (st == CDL_OK)
            st = cdl_ckks_ksk_generate(ctx, sk, s_sparse, rng, &bk->from_sparse);
        if (s_dense)
            cdl_secure_free(s_dense, (size_t)sc->qp_count * sc->n * sizeof(uint64_t));
        if (s_sparse)
            cdl_secure_free(s_sparse, (size_t)ctx->qp_count * ctx->n * sizeof(uint64_t));
        cdl_ckks_secret_key_free(sparse);
    }
    if (st != CDL_OK) {
        cdl_ckks_bootstrap_keys_free(bk);
        return st;
    }
    *out = bk;
    return CDL_OK;
}

/* ---- the pipeline ---- */

/* ct (level 0 of ctx) -> the same under s': (c0 + ks(c1).0, ks(c1).1) modulo q0, in sse_ctx. */
static cdl_status to_sparse_secret(const cdl_ckks_bootstrapper *bt, const cdl_ckks_bootstrap_keys *bk,
                                   cdl_ckks_ciphertext *ct)
{
    const size_t n = bt->ctx->n;
    uint64_t *buf = cdl_alloc_array(3 * n, sizeof(uint64_t));
    if (!buf)
        return CDL_ERR_NO_MEMORY;
    uint64_t *c1 = buf, *o0 = buf + n, *o1 = buf + 2 * n;
    memcpy(c1, cdl_ct_poly(ct, 1, 0), n * sizeof(uint64_t));
    cdl_status st = cdl_ckks_keyswitch(bt->sse_ctx, c1, 0, &bk->to_sparse, NULL, o0, o1);
    if (st == CDL_OK) {
        cdl_poly_add(cdl_ct_poly(ct, 0, 0), cdl_ct_poly(ct, 0, 0), o0, n, bt->ctx->primes[0]);
        memcpy(cdl_ct_poly(ct, 1, 0), o1, n * sizeof(uint64_t));
    }
    cdl_free(buf);
    return st;
}

/* ct at level 0 -> out at max_level: each residue c mod q0, read as the
 * integer in (-q0/2, q0/2], reduced modulo every prime (m -> m + q0 I). */
static cdl_status mod_raise(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *ct, cdl_ckks_ciphertext *out)
{
    const size_t n = ctx->n;
    const int top = ctx->max_level;
    const uint64_t q0 = ctx->primes[0], half = q0 >> 1;
    CDL_TRY(cdl_ckks_ciphertext_reserve(out, 2, top + 1));
    uint64_t *coef = cdl_alloc_array(2 * n, sizeof(uint64_t));
    if (!coef)
        return CDL_ERR_NO_MEMORY;
    for (int k = 0; k < 2; k++) {
        memcpy(coef + (size_t)k * n, cdl_ct_poly(ct, k, 0), n * sizeof(uint64_t));
        cdl_ntt_inverse(ctx->ntt[0], coef + (size_t)k * n);
    }
    out->size = 2;
    out->level = top;
    out->seeded = 0;
#pragma omp parallel for schedule(static)
    for (int i = 0; i <= top; i++) {
        const uint64_t qi = ctx->primes[i];
        const uint64_t q0_mod = q0 % qi;
        for (int k = 0; k < 2; k++) {
            const uint64_t *c = coef + (size_t)k * n;
            uint64_t *o = cdl_ct_poly(out, k, i);
            for (size_t j = 0; j < n; j++) {
                /* centered lift: c > q0/2 stands for c - q0 */
                const uint64_t v = c[j] % qi;
                const uint64_t neg = c[j] > half;
                uint64_t r = v + (neg ? qi - q0_mod : 0);
                o[j] = r >= qi ? r - qi : r;
            }
            cdl_ntt_forward(ctx->ntt[i], o);
        }
    }
    cdl_free(coef);
    return CDL_OK;
}

/* (c0, c1) under s' -> (c0 + ks(c1).0, ks(c1).1) under s, at the top level. */
static cdl_status from_sparse_secret(const cdl_ckks_context *ctx, const cdl_ckks_bootstrap_keys *bk,
                                     cdl_ckks_ciphertext *ct)
{
    const size_t words = (size_t)(ct->level + 1) * ctx->n;
    uint64_t *c1 = cdl_alloc_array(words, sizeof(uint64_t));
    if (!c1)
        return CDL_ERR_NO_MEMORY;
    memcpy(c1, cdl_ct_poly(ct, 1, 0), words * sizeof(uint64_t));
    cdl_status st = cdl_ckks_keyswitch_add(ctx, c1, ct->level, &bk->from_sparse, cdl_ct_poly(ct, 0, 0),
                                           cdl_ct_poly(ct, 1, 0), 1);
    cdl_free(c1);
    return st;
}

static cdl_status check_keys(const cdl_ckks_bootstrapper *bt, const cdl_ckks_bootstrap_keys *bk)
{
    if (!bk->gk || !!bk->has_sse != !!bt->sse_ctx)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_bootstrap: keys made for other bootstrapping parameters");
    for (int s = 0; s < bt->nsteps; s++)
        if (cdl_ckks_galois_keys_step_level(bk->gk, bt->steps[s]) < bt->step_levels[s])
            return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_bootstrap: the rotation key for step %d is missing",
                            bt->steps[s]);
    if (bk->has_sse && (!cdl_ckks_ksk_fits(bt->sse_ctx, &bk->to_sparse, 0) ||
                        !cdl_ckks_ksk_fits(bt->ctx, &bk->from_sparse, bt->ctx->max_level)))
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_bootstrap: encapsulation keys made for other parameters");
    return CDL_OK;
}

/* Bring the level-0 ciphertext to the nominal scale q0 / 2^ratio by an integer factor. */
static cdl_status scale_up(const cdl_ckks_bootstrapper *bt, cdl_ckks_ciphertext *ct)
{
    const double target = ldexp((double)bt->ctx->primes[0], -bt->log_ratio);
    const double factor = round(target / ct->scale);
    if (factor < 1.0 || ct->scale > 2.0 * target)
        return cdl_fail(CDL_ERR_PARAMETERS,
                        "cdl_ckks_bootstrap: the input's scale 2^%.1f is above q0 / 2^%d = 2^%.1f; rescale it first",
                        log2(ct->scale), bt->log_ratio, log2(target));
    if (factor > 1.0) {
        CDL_TRY(cdl_ckks_mul_int(bt->ctx, ct, (int64_t)factor, ct));
        ct->scale *= factor;
    }
    return CDL_OK;
}

/* Real part (w + conj w) / 2 and imaginary part -i (w - conj w) / 2, EvalMod on each, recombined into u. */
static cdl_status evalmod_split(const cdl_ckks_bootstrapper *bt, const cdl_ckks_relin_key *rlk,
                                const cdl_ckks_bootstrap_keys *bk, double scale_in, cdl_ckks_ciphertext *w,
                                cdl_ckks_ciphertext *u, cdl_ckks_ciphertext *re, cdl_ckks_ciphertext *im)
{
    const cdl_ckks_context *ctx = bt->ctx;
    CDL_TRY(cdl_ckks_conjugate(ctx, bk->gk, w, u));
    CDL_TRY(cdl_ckks_add(ctx, w, u, re));
    CDL_TRY(cdl_ckks_sub(ctx, w, u, im));
    CDL_TRY(cdl_ckks_mul_plain(ctx, im, bt->imag_unit, im));
    CDL_TRY(cdl_ckks_negate(ctx, im, im));
    re->scale *= 2.0;
    im->scale *= 2.0;
    CDL_TRY(boot_evalmod_apply(ctx, rlk, &bt->em, re, u));
    CDL_TRY(boot_evalmod_apply(ctx, rlk, &bt->em, im, w));
    /* relabel, recombine re + i im */
    const double label = value_label(ctx, u->scale, scale_in);
    u->scale = label;
    w->scale = label;
    CDL_TRY(cdl_ckks_mul_plain(ctx, w, bt->imag_unit_stc, w));
    return cdl_ckks_add(ctx, u, w, u);
}

/* Packed sparse slots: w holds [M z, -i M z]; w + conj w = [2 Re, 2 Im]: one EvalMod into u. */
static cdl_status evalmod_packed(const cdl_ckks_bootstrapper *bt, const cdl_ckks_relin_key *rlk,
                                 const cdl_ckks_bootstrap_keys *bk, double scale_in, cdl_ckks_ciphertext *w,
                                 cdl_ckks_ciphertext *u)
{
    const cdl_ckks_context *ctx = bt->ctx;
    CDL_TRY(cdl_ckks_conjugate(ctx, bk->gk, w, u));
    CDL_TRY(cdl_ckks_add(ctx, w, u, w));
    w->scale *= 2.0;
    CDL_TRY(boot_evalmod_apply(ctx, rlk, &bt->em, w, u));
    u->scale = value_label(ctx, u->scale, scale_in);
    return CDL_OK;
}

cdl_status cdl_ckks_bootstrap(const cdl_ckks_bootstrapper *bt, const cdl_ckks_bootstrap_keys *bk,
                              const cdl_ckks_relin_key *rlk, const cdl_ckks_ciphertext *in, cdl_ckks_ciphertext *out)
{
    if (!bt || !bk || !rlk || !in || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_bootstrap: NULL argument");
    const cdl_ckks_context *ctx = bt->ctx;
    if (in->size != 2)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_bootstrap: relinearize the input first (size %d)",
                        in->size);
    CDL_TRY(check_keys(bt, bk));
    cdl_ckks_ciphertext *t = NULL, *w = NULL, *u = NULL, *re = NULL, *im = NULL;
    cdl_status st = cdl_ckks_ciphertext_new(ctx, &t);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_new(ctx, &w);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_new(ctx, &u);
    if (st == CDL_OK && !bt->packed) /* the real and imaginary halves of full slots */
        st = cdl_ckks_ciphertext_new(ctx, &re);
    if (st == CDL_OK && !bt->packed)
        st = cdl_ckks_ciphertext_new(ctx, &im);
    if (st == CDL_OK)
        st = cdl_ckks_drop_to_level(ctx, in, 0, t);
    if (st == CDL_OK)
        st = scale_up(bt, t);
    const double scale_in = t ? t->scale : 0;
    if (st == CDL_OK && bt->sse_ctx)
        st = to_sparse_secret(bt, bk, t);
    if (st == CDL_OK)
        st = mod_raise(ctx, t, w);
    if (st == CDL_OK && bt->sse_ctx)
        st = from_sparse_secret(ctx, bk, w);
    if (st == CDL_OK)
        w->scale = (double)ctx->primes[0];
    /* sparse slots: the trace to the subring of X^(N/(2n)) (times N/(2n)), so the slots repeat with period n */
    for (int i = 0; st == CDL_OK && i < bt->subsum_steps; i++) {
        st = cdl_ckks_rotate(ctx, bk->gk, w, (int)(bt->slots << i), u);
        if (st == CDL_OK)
            st = cdl_ckks_add(ctx, w, u, w);
    }
    if (st == CDL_OK) /* SubSum multiplied the values by N / (2n): read them at that much more scale */
        w->scale *= (double)(ctx->slots / bt->slots);
    /* CoeffToSlot: slots = bit-reversed (coefficient k) + i (coefficient k + N/2), divided by q0 */
    for (int g = 0; st == CDL_OK && g < bt->cts_count; g++)
        st = boot_lintrans_apply(ctx, bk->gk, &bt->cts[g], w, w);
    if (st == CDL_OK && bt->packed)
        st = evalmod_packed(bt, rlk, bk, scale_in, w, u);
    else if (st == CDL_OK)
        st = evalmod_split(bt, rlk, bk, scale_in, w, u, re, im);
    for (int g = 0; st == CDL_OK && g < bt->stc_count; g++)
        st = boot_lintrans_apply(ctx, bk->gk, &bt->stc[g], u, u);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_copy(ctx, u, out);
    cdl_ckks_ciphertext_free(t);
    cdl_ckks_ciphertext_free(w);
    cdl_ckks_ciphertext_free(u);
    cdl_ckks_ciphertext_free(re);
    cdl_ckks_ciphertext_free(im);
    return st;
}

/* out = a at `scale` exactly, one level lower: a times 1 encoded at scale * q_l / scale(a), rescaled. */
static cdl_status rescale_to(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, double c, double scale,
                             cdl_ckks_ciphertext *out)
{
    const double q = (double)ctx->primes[a->level];
    CDL_TRY(cdl_ckks_mul_const(ctx, a, c, scale * q / a->scale, out));
    CDL_TRY(cdl_ckks_rescale(ctx, out, out));
    out->scale = scale;
    return CDL_OK;
}

/*
 * Two passes (the residual idea of Bae, Cheon, Cho, Kim and Kim, "Meta-BTS",
 * CCS 2022): v1 = BTS(v) carries an error e = v - v1 of about 2^-20; the
 * residual e, computed at level 0 from the input and v1, is scaled by 2^k
 * into the bootstrap's range and bootstrapped too, and v1 + BTS(2^k e) / 2^k
 * is left with 2^-k times the error of one bootstrap. Both bootstraps see an
 * input of the same scale, so they return the same scale. Costs a second
 * bootstrap and one level (the division by 2^k is a product).
 */
cdl_status cdl_ckks_bootstrap_refined(const cdl_ckks_bootstrapper *bt, const cdl_ckks_bootstrap_keys *bk,
                                      const cdl_ckks_relin_key *rlk, const cdl_ckks_ciphertext *in,
                                      cdl_ckks_ciphertext *out)
{
    if (!bt || !bk || !rlk || !in || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_bootstrap_refined: NULL argument");
    const cdl_ckks_context *ctx = bt->ctx;
    if (bt->level_out < 1)
        return cdl_fail(CDL_ERR_EXHAUSTED,
                        "cdl_ckks_bootstrap_refined: needs one level after bootstrapping, the plan leaves none");
    const int k = 18; /* one bootstrap leaves ~2^-20 of the inputs' range: 2^18 e stays below 1 */
    cdl_ckks_ciphertext *x = NULL, *v1 = NULL, *r = NULL;
    cdl_status st = cdl_ckks_ciphertext_new(ctx, &x);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_new(ctx, &v1);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_new(ctx, &r);
    if (st == CDL_OK)
        st = cdl_ckks_drop_to_level(ctx, in, 0, x);
    if (st == CDL_OK)
        st = cdl_ckks_bootstrap(bt, bk, rlk, x, v1);
    /* residual e = v - v1 at level 0 and the input's scale, times 2^k */
    if (st == CDL_OK)
        st = rescale_to(ctx, v1, 1.0, x->scale, r);
    if (st == CDL_OK)
        st = cdl_ckks_drop_to_level(ctx, r, 0, r);
    if (st == CDL_OK)
        st = cdl_ckks_sub(ctx, x, r, r);
    if (st == CDL_OK)
        st = cdl_ckks_mul_int(ctx, r, (int64_t)1 << k, r);
    if (st == CDL_OK)
        st = cdl_ckks_bootstrap(bt, bk, rlk, r, r);
    /* v1 + 2^-k BTS(2^k e), both at level_out - 1 and v1's scale */
    if (st == CDL_OK)
        st = rescale_to(ctx, r, ldexp(1.0, -k), v1->scale, r);
    if (st == CDL_OK)
        st = cdl_ckks_drop_to_level(ctx, v1, r->level, v1);
    if (st == CDL_OK)
        st = cdl_ckks_add(ctx, v1, r, out);
    cdl_ckks_ciphertext_free(x);
    cdl_ckks_ciphertext_free(v1);
    cdl_ckks_ciphertext_free(r);
    return st;
}
