/*
 * context.c: CKKS parameters and the context built from them: presets at the
 * HomomorphicEncryption.org 128-bit limits, the security check, prime
 * generation, NTT tables, and every precomputation that rescaling, key
 * switching and the encoder need (so the evaluator never recomputes them).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "ckks/ckks_internal.h"
#include "core/error.h"
#include "core/memory.h"
#include "ring/primes.h"

/* Largest log2(Q*P) at classical 128-bit security for a uniform ternary
 * secret: the HomomorphicEncryption.org security standard (2018), Table 1,
 * for 2^10 .. 2^15; for 2^16, which the 2018 table does not list, the 2024
 * guidelines' figure (Bossuat et al., "Security Guidelines for Implementing
 * Homomorphic Encryption", IACR CiC 2024, eprint 2024/463: 1747 bits,
 * ternary, classical) instead of the old extrapolation 1761. */
int cdl_ckks_max_log_qp(int log_n)
{
    switch (log_n) {
    case 10: return 27;
    case 11: return 54;
    case 12: return 109;
    case 13: return 218;
    case 14: return 438;
    case 15: return 881;
    case 16: return 1747;
    default: return 0;
    }
}

/*
 * Sparse secrets (0 < h < 2N/3 nonzero coefficients) are weaker than uniform
 * ternary ones at the same (N, log QP): hybrid lattice / meet-in-the-middle
 * attacks exploit the zeros (Howgrave-Graham 2007; Cheon, Hhan, Hong, Son,
 * IEEE Access 2019; Son, Cheon, WAHC 2019). They get no limit from the dense
 * table. A sparse secret is accepted only below a published lattice-estimator
 * figure of at least 128 bits for its ring degree and a Hamming weight no
 * larger than its own (lower h or larger log QP only lowers security; the
 * monotonicity "rule of thumb" of the HomomorphicEncryption.org SparseLWEkit).
 * Figures: HomomorphicEncryption.org SparseLWEkit, "Parameter Sets" and
 * "Security Estimations" tables (lattice estimator, sigma = 3.19..3.2):
 *   N = 2^15, h = 192, log Q = 767:  134.3 bits (OpenFHE, set 5);
 *   N = 2^16, h = 192, log Q = 1553: 133.99 bits (OpenFHE, Lattigo
 *             N16QP1553H192H32 of Bossuat et al., EUROCRYPT 2021, set 6);
 *   N = 2^16, h = 32,  log Q = 117:  164.58 bits (HEaaN, set 3: the small
 *             ephemeral secret of sparse-secret encapsulation).
 * Everything else with 0 < h < 2N/3 is refused (in particular any h below
 * 32, any h below 192 except at N = 2^16 with log QP <= 117, and every sparse
 * secret at N <= 2^14). A fixed weight h >= 2N/3 has the variance and, at
 * 2N/3, the entropy of a uniform ternary secret, and uses the dense table.
 */
typedef struct sparse_bound {
    int log_n, min_h, max_log_qp;
} sparse_bound;

static const sparse_bound SPARSE_BOUNDS[] = {
    {15, 192, 767},
    {16, 192, 1553},
    {16, 32, 117},
};

int cdl_ckks_max_log_qp_secret(int log_n, int hamming_weight)
{
    const int dense = cdl_ckks_max_log_qp(log_n);
    if (dense == 0 || hamming_weight < 0 || hamming_weight > (1 << log_n))
        return 0;
    if (hamming_weight == 0 || 3 * (int64_t)hamming_weight >= 2 * ((int64_t)1 << log_n))
        return dense;
    int best = 0;
    for (size_t i = 0; i < sizeof SPARSE_BOUNDS / sizeof SPARSE_BOUNDS[0]; i++)
        if (SPARSE_BOUNDS[i].log_n == log_n && hamming_weight >= SPARSE_BOUNDS[i].min_h &&
            SPARSE_BOUNDS[i].max_log_qp > best)
            best = SPARSE_BOUNDS[i].max_log_qp;
    return best < dense ? best : dense;
}

static void spec_fill(cdl_ckks_param_spec *s, int log_n, int q0, int qmid, int mid_count, int p, int p_count)
{
    memset(s, 0, sizeof *s);
    s->log_n = log_n;
    s->q_count = 1 + mid_count;
    s->q_bits[0] = q0;
    for (int i = 1; i <= mid_count; i++)
        s->q_bits[i] = qmid;
    s->p_count = p_count;
    for (int i = 0; i < p_count; i++)
        s->p_bits[i] = p;
    s->dnum = 0;
    s->scale = ldexp(1.0, qmid);
}

cdl_status cdl_ckks_preset(int log_n, cdl_ckks_param_spec *spec)
{
    if (!spec)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_preset: spec is NULL");
    switch (log_n) {
    case 13: spec_fill(spec, 13, 49, 40, 3, 49, 1); break;  /* 49 + 3*40 + 49 = 218, 3 levels */
    case 14: spec_fill(spec, 14, 60, 40, 8, 58, 1); break;  /* 60 + 8*40 + 58 = 438, 8 levels */
    case 15: spec_fill(spec, 15, 60, 40, 17, 47, 3); break; /* 60 + 17*40 + 3*47 = 881, 17 levels, dnum 6 */
    case 10:
    case 11:
    case 12:
        /* Testing only: more modulus than 128-bit security allows at this N. */
        spec_fill(spec, log_n, 55, 40, 4, 55, 1);
        spec->allow_insecure = 1;
        break;
    default:
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "no CKKS preset for log_n = %d: presets exist for 13, 14, 15 (and insecure test presets "
                        "for 10..12); build a cdl_ckks_param_spec by hand for other sizes",
                        log_n);
    }
    return CDL_OK;
}

int cdl_ckks_scales_match(double a, double b)
{
    double d = fabs(a - b), m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    return d <= 1e-9 * m;
}

uint64_t cdl_ckks_galois_element(const cdl_ckks_context *ctx, int step)
{
    int64_t slots = (int64_t)ctx->slots;
    int64_t k = ((int64_t)step % slots + slots) % slots;
    uint64_t two_n = 2 * (uint64_t)ctx->n, g = 1, base = 5;
    while (k) {
        if (k & 1)
            g = (g * base) & (two_n - 1);
        base = (base * base) & (two_n - 1);
        k >>= 1;
    }
    return g;
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

void cdl_ckks_compute_param_hash(cdl_ckks_context *ctx)
{
    static const char tag[] = "cryptodl-ckks-params-v1";
    uint8_t buf[sizeof tag + 5 * 4 + 8 + CDL_CKKS_MAX_QP * 8];
    size_t len = 0;
    memcpy(buf, tag, sizeof tag - 1);
    len += sizeof tag - 1;
    put_u32(buf + len, (uint32_t)ctx->log_n), len += 4;
    put_u32(buf + len, (uint32_t)ctx->q_count), len += 4;
    put_u32(buf + len, (uint32_t)ctx->p_count), len += 4;
    put_u32(buf + len, (uint32_t)ctx->dnum), len += 4;
    put_u32(buf + len, (uint32_t)ctx->spec.secret_hamming_weight), len += 4;
    uint64_t sbits;
    memcpy(&sbits, &ctx->scale, sizeof sbits);
    put_u64(buf + len, sbits), len += 8;
    for (int i = 0; i < ctx->qp_count; i++)
        put_u64(buf + len, ctx->primes[i]), len += 8;
    crypto_generichash(ctx->param_hash, CDL_CKKS_PARAM_HASH_BYTES, buf, len, NULL, 0);
}

static cdl_status check_spec(const cdl_ckks_param_spec *s)
{
    if (s->log_n < CDL_CKKS_MIN_LOG_N || s->log_n > CDL_CKKS_MAX_LOG_N)
        return cdl_fail(CDL_ERR_PARAMETERS, "log_n = %d is outside %d..%d", s->log_n, CDL_CKKS_MIN_LOG_N,
                        CDL_CKKS_MAX_LOG_N);
    if (s->q_count < 1 || s->q_count > CDL_CKKS_MAX_PRIMES)
        return cdl_fail(CDL_ERR_PARAMETERS, "q_count = %d must be in 1..%d", s->q_count, CDL_CKKS_MAX_PRIMES);
    if (s->p_count < 1 || s->p_count > CDL_CKKS_MAX_PRIMES)
        return cdl_fail(CDL_ERR_PARAMETERS,
                        "p_count = %d must be in 1..%d (key switching needs at least one special prime)",
                        s->p_count, CDL_CKKS_MAX_PRIMES);
    for (int i = 0; i < s->q_count + s->p_count; i++) {
        int b = i < s->q_count ? s->q_bits[i] : s->p_bits[i - s->q_count];
        if (b < CDL_MODULUS_MIN_BITS || b > CDL_MODULUS_MAX_BITS)
            return cdl_fail(CDL_ERR_PARAMETERS, "%s prime %d has %d bits; prime sizes must be %d..%d bits",
                            i < s->q_count ? "ciphertext" : "special", i < s->q_count ? i : i - s->q_count, b,
                            CDL_MODULUS_MIN_BITS, CDL_MODULUS_MAX_BITS);
    }
    if (s->dnum < 0 || s->dnum > s->q_count)
        return cdl_fail(CDL_ERR_PARAMETERS, "dnum = %d must be 0 (automatic) or 1..q_count (%d)", s->dnum,
                        s->q_count);
    if (!(s->scale >= 1.0) || !isfinite(s->scale))
        return cdl_fail(CDL_ERR_PARAMETERS, "scale %g must be a finite number >= 1 (e.g. 2^40)", s->scale);
    size_t n = (size_t)1 << s->log_n;
    if (s->secret_hamming_weight < 0 || (size_t)s->secret_hamming_weight > n)
        return cdl_fail(CDL_ERR_PARAMETERS, "secret_hamming_weight %d must be 0 (uniform ternary) or 1..N (%zu)",
                        s->secret_hamming_weight, n);
    int total = 0;
    for (int i = 0; i < s->q_count; i++)
        total += s->q_bits[i];
    for (int i = 0; i < s->p_count; i++)
        total += s->p_bits[i];
    const int h = s->secret_hamming_weight;
    const int sparse = h > 0 && 3 * (int64_t)h < 2 * (int64_t)n;
    int limit = cdl_ckks_max_log_qp_secret(s->log_n, h);
    if (total > limit) {
        if (!s->allow_insecure) {
            if (sparse && limit == 0)
                return cdl_fail(CDL_ERR_INSECURE,
                                "a sparse secret of Hamming weight %d has no published 128-bit security estimate at "
                                "N = 2^%d; use a uniform ternary secret (secret_hamming_weight = 0) or h >= 2N/3 "
                                "(%zu); sparse secrets are accepted with h >= 192 at N = 2^15 (log2(Q*P) <= 767) "
                                "and 2^16 (<= 1553), or h >= 32 at 2^16 with log2(Q*P) <= 117 (docs/security.md)",
                                h, s->log_n, (2 * n + 2) / 3);
            if (sparse)
                return cdl_fail(CDL_ERR_INSECURE,
                                "log2(Q*P) = %d bits exceeds the 128-bit limit of %d bits for a sparse secret of "
                                "Hamming weight %d at N = 2^%d (published estimates for sparse secrets, "
                                "docs/security.md); use fewer or smaller primes or a uniform ternary secret",
                                total, limit, h, s->log_n);
            return cdl_fail(CDL_ERR_INSECURE,
                            "log2(Q*P) = %d bits exceeds the 128-bit security limit of %d bits for N = 2^%d "
                            "(HomomorphicEncryption.org standard, ternary secret); use fewer or smaller primes, "
                            "or a larger log_n (cdl_ckks_preset gives the largest secure choice)",
                            total, limit, s->log_n);
        }
        fprintf(stderr,
                "cryptodl: WARNING: INSECURE CKKS PARAMETERS (log2(QP) = %d > %d bits allowed for N = 2^%d%s). "
                "allow_insecure is for testing only; never use these keys for real data.\n",
                total, limit, s->log_n, sparse ? " with this sparse secret" : "");
    }
    return CDL_OK;
}

void cdl_ckks_context_free(cdl_ckks_context *ctx)
{
    if (!ctx)
        return;
    for (int i = 0; i < CDL_CKKS_MAX_QP; i++)
        cdl_ntt_table_free(ctx->ntt[i]);
    cdl_free(ctx->rescale_inv);
    cdl_free(ctx->rescale_inv_shoup);
    cdl_free(ctx->ksi_re);
    cdl_free(ctx->ksi_im);
    cdl_free(ctx->rot_group);
    cdl_free(ctx->fft_tw_re);
    cdl_free(ctx->fft_tw_im);
    if (ctx->modup) {
        for (int l = 0; l < ctx->q_count; l++)
            cdl_base_converter_release(&ctx->modup[l]);
        cdl_free(ctx->modup);
    }
    cdl_base_converter_release(&ctx->moddown);
    cdl_free(ctx);
}

cdl_status cdl_ckks_context_new(const cdl_ckks_param_spec *spec, cdl_ckks_context **out)
{
    if (!spec || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_context_new: NULL argument");
    *out = NULL;
    CDL_TRY(check_spec(spec));
    cdl_ckks_context *ctx = cdl_calloc_array(1, sizeof *ctx);
    if (!ctx)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = CDL_OK;
    ctx->spec = *spec;
    ctx->log_n = spec->log_n;
    ctx->n = (size_t)1 << spec->log_n;
    ctx->slots = ctx->n / 2;
    ctx->q_count = spec->q_count;
    ctx->p_count = spec->p_count;
    ctx->qp_count = spec->q_count + spec->p_count;
    ctx->max_level = spec->q_count - 1;
    int dnum = spec->dnum ? spec->dnum : (spec->q_count + spec->p_count - 1) / spec->p_count;
    if (dnum > spec->q_count)
        dnum = spec->q_count;
    ctx->alpha = (spec->q_count + dnum - 1) / dnum;
    ctx->dnum = (spec->q_count + ctx->alpha - 1) / ctx->alpha;
    ctx->scale = spec->scale;
    const size_t n = ctx->n;
    const uint64_t two_n = 2 * (uint64_t)n;

    /* Distinct primes, in spec order (q then p), each the largest unused prime of its size. */
    for (int i = 0; i < ctx->qp_count; i++) {
        int bits = i < ctx->q_count ? spec->q_bits[i] : spec->p_bits[i - ctx->q_count];
        CDL_TRY_GOTO(st, cdl_generate_ntt_primes(bits, 1, two_n, ctx->primes, (size_t)i, &ctx->primes[i]), fail);
        cdl_modulus_init(&ctx->mod[i], ctx->primes[i]);
        CDL_TRY_GOTO(st, cdl_ntt_table_new(n, ctx->primes[i], &ctx->ntt[i]), fail);
        ctx->log_qp += log2((double)ctx->primes[i]);
    }

    /* Rescale constants q_l^-1 mod q_i. */
    size_t qc = (size_t)ctx->q_count;
    ctx->rescale_inv = cdl_calloc_array(qc * qc, sizeof(uint64_t));
    ctx->rescale_inv_shoup = cdl_calloc_array(qc * qc, sizeof(uint64_t));
    if (!ctx->rescale_inv || !ctx->rescale_inv_shoup) {
        st = CDL_ERR_NO_MEMORY;
        goto fail;
    }
    for (int l = 1; l < ctx->q_count; l++)
        for (int i = 0; i < l; i++) {
            uint64_t qi = ctx->primes[i];
            uint64_t v = cdl_mod_inv(cdl_barrett_reduce_64(ctx->primes[l], &ctx->mod[i]), &ctx->mod[i]);
            ctx->rescale_inv[(size_t)l * qc + (size_t)i] = v;
            ctx->rescale_inv_shoup[(size_t)l * qc + (size_t)i] = cdl_shoup_precompute(v, qi);
        }

    /* P mod q_i and P^-1 mod q_i. */
    for (int i = 0; i < ctx->q_count; i++) {
        uint64_t qi = ctx->primes[i], pm = 1;
        for (int j = 0; j < ctx->p_count; j++)
            pm = cdl_mod_mul(pm, cdl_barrett_reduce_64(ctx->primes[ctx->q_count + j], &ctx->mod[i]), &ctx->mod[i]);
        ctx->p_mod_q[i] = pm;
        ctx->p_mod_q_shoup[i] = cdl_shoup_precompute(pm, qi);
        ctx->p_inv_mod_q[i] = cdl_mod_inv(pm, &ctx->mod[i]);
        ctx->p_inv_mod_q_shoup[i] = cdl_shoup_precompute(ctx->p_inv_mod_q[i], qi);
    }

    /* Key-switching base converters. */
    ctx->modup = cdl_calloc_array(qc, sizeof *ctx->modup);
    if (!ctx->modup) {
        st = CDL_ERR_NO_MEMORY;
        goto fail;
    }
    for (int l = 0; l < ctx->q_count; l++) {
        int first = (l / ctx->alpha) * ctx->alpha;
        CDL_TRY_GOTO(st, cdl_base_converter_init(&ctx->modup[l], &ctx->mod[first], l - first + 1, ctx->mod,
                                                 ctx->qp_count),
                     fail);
    }
    CDL_TRY_GOTO(st, cdl_base_converter_init(&ctx->moddown, &ctx->mod[ctx->q_count], ctx->p_count, ctx->mod,
                                             ctx->q_count),
                 fail);

    /* Encoder tables. */
    ctx->ksi_re = cdl_alloc_array(2 * n + 1, sizeof(double));
    ctx->ksi_im = cdl_alloc_array(2 * n + 1, sizeof(double));
    ctx->rot_group = cdl_alloc_array(ctx->slots, sizeof(uint64_t));
    ctx->fft_tw_re = cdl_alloc_array(ctx->slots, sizeof(double));
    ctx->fft_tw_im = cdl_alloc_array(ctx->slots, sizeof(double));
    if (!ctx->ksi_re || !ctx->ksi_im || !ctx->rot_group || !ctx->fft_tw_re || !ctx->fft_tw_im) {
        st = CDL_ERR_NO_MEMORY;
        goto fail;
    }
    for (size_t j = 0; j <= 2 * n; j++) {
        long double angle = 2.0L * 3.14159265358979323846264338327950288L * (long double)j / (long double)(2 * n);
        ctx->ksi_re[j] = (double)cosl(angle);
        ctx->ksi_im[j] = (double)sinl(angle);
    }
    uint64_t g = 1;
    for (size_t j = 0; j < ctx->slots; j++) {
        ctx->rot_group[j] = g;
        g = (g * 5) & (two_n - 1);
    }
    for (size_t h = 1; h < ctx->slots; h <<= 1) {
        const size_t lenq = 8 * h;
        for (size_t j = 0; j < h; j++) {
            const size_t idx = (ctx->rot_group[j] % lenq) * (two_n / lenq);
            ctx->fft_tw_re[h - 1 + j] = ctx->ksi_re[idx];
            ctx->fft_tw_im[h - 1 + j] = ctx->ksi_im[idx];
        }
    }
    cdl_ckks_compute_param_hash(ctx);
    *out = ctx;
    return CDL_OK;
fail:
    cdl_ckks_context_free(ctx);
    return st;
}

int cdl_ckks_log_n(const cdl_ckks_context *ctx) { return ctx->log_n; }
size_t cdl_ckks_slots(const cdl_ckks_context *ctx) { return ctx->slots; }
int cdl_ckks_max_level(const cdl_ckks_context *ctx) { return ctx->max_level; }
double cdl_ckks_log_qp(const cdl_ckks_context *ctx) { return ctx->log_qp; }
double cdl_ckks_default_scale(const cdl_ckks_context *ctx) { return ctx->scale; }
uint64_t cdl_ckks_prime(const cdl_ckks_context *ctx, int index)
{
    return index >= 0 && index < ctx->q_count ? ctx->primes[index] : 0;
}
const uint8_t *cdl_ckks_param_hash(const cdl_ckks_context *ctx) { return ctx->param_hash; }
