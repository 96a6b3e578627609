/*
 * encrypt.c: public-key and symmetric encryption, decryption.
 *  pk:  c = (b u + e0 + m, a u + e1), u uniform ternary, e0, e1 CBD (eta 21).
 *  sk:  c = (-a s + e + m, a), a uniform, expanded from a 32-byte seed that
 *       the ciphertext keeps (so a saved fresh ciphertext can drop c1).
 *  dec: m = c0 + c1 s (+ c2 s^2).
 *  flooded dec: m + f, f a fresh rounded Gaussian sized for IND-CPA-D
 *       (Li-Micciancio 2021; Li, Micciancio, Schultz, Sorrell 2022).
 * Everything at the plaintext's level, in the NTT domain.
 */
#include <math.h>
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
    pt->p_valid = 0; /* the special primes' limbs (if any) no longer match */
    return CDL_OK;
}

/* ---- flooded decryption -------------------------------------------------------
 * The flooding noise f is secret (it hides the decryption error), so its
 * sampler is branch-free and division-free in its values: Box-Muller,
 * z = sqrt(-2 ln u1) * (cos, sin)(2 pi u2), with u1 in (0, 1] and u2 in [0, 1)
 * from 53 random bits each, and ln, sqrt and cos/sin computed from the
 * IEEE-754 fields and fixed polynomials / Newton steps (no libm: its table
 * lookups and special-case branches would depend on the noise). Then
 * f_j = round(sigma z_j) with the 1.5 * 2^52 trick. With sigma <= 2^45 the
 * products have a resolution below 1, so f takes every integer value (a
 * rounded Gaussian, within far less than 2^-100 of the discrete Gaussian at
 * these widths); |z| <= 8.6 (u1 >= 2^-53). */

#define FLOOD_MAX_SIGMA_LOG2 45.0
#define FLOOD_MIN_BITS 20
#define FLOOD_MAX_BITS 128
#define FLOOD_Z_MAX_LOG2 3.11 /* log2(8.6), the largest |z| */

static inline uint64_t f64_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static inline double f64_from(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

/* 2^k for -1022 <= k <= 1023. */
static inline double pow2i(int64_t k) { return f64_from((uint64_t)(k + 1023) << 52); }

/* x = m 2^e with m in [1, 2), for a positive normal x. */
static inline double split_f64(double x, int64_t *e)
{
    uint64_t b = f64_bits(x);
    *e = (int64_t)((b >> 52) & 0x7ff) - 1023;
    return f64_from((b & 0x000fffffffffffffull) | 0x3ff0000000000000ull);
}

/* 1/x for a positive normal x: Newton steps from the linear estimate
 * 48/17 - 32/17 h of 1/h, h = m/2 in [0.5, 1) (relative error <= 1/17,
 * squared by each of the four steps). */
static inline double ct_recip(double x)
{
    int64_t e;
    double h = 0.5 * split_f64(x, &e);
    double r = 48.0 / 17.0 - (32.0 / 17.0) * h;
    for (int i = 0; i < 4; i++)
        r = r * (2.0 - h * r);
    return 0.5 * r * pow2i(-e);
}

/* ln x for x in (0, 1] (normal): e ln 2 + ln m with m folded into
 * [sqrt(1/2), sqrt(2)), ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t| < 0.172,
 * by its series to t^21 (relative error < 1e-18). */
static inline double ct_log(double x)
{
    int64_t e;
    double m = split_f64(x, &e);
    /* m > sqrt(2), from the bit patterns (same sign and exponent: integer
     * order is numeric order), without a floating-point compare */
    int64_t big = (int64_t)((f64_bits(1.4142135623730951) - f64_bits(m)) >> 63);
    m *= 1.0 - 0.5 * (double)big;
    e += big;
    double t = (m - 1.0) * ct_recip(m + 1.0), u = t * t;
    double p = 1.0 / 21;
    static const double odd_inv[] = {1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5,
                                      1.0 / 3, 1.0};
    for (int i = 0; i < 10; i++)
        p = p * u + odd_inv[i];
    return (double)e * 0.69314718055994530942 + 2.0 * t * p;
}

/* sqrt(w) for w >= 0 (w = 0 exactly gives 0): w = f 4^k with f in [1, 4),
 * 1/sqrt(f) by six Newton steps from the chord 7/6 - f/6 (error <= 18%). */
static inline double ct_sqrt(double w)
{
    uint64_t mag = f64_bits(w) & 0x7fffffffffffffffull;
    double zero = (double)(1 - ((mag | ((uint64_t)0 - mag)) >> 63)); /* 1 if w is +-0, by masks */
    int64_t e;
    double m = split_f64(w + zero, &e);
    int64_t odd = e & 1;
    double f = m * (1.0 + (double)odd);
    double r = 7.0 / 6.0 - f * (1.0 / 6.0); /* constants folded: no division at run time */
    for (int i = 0; i < 6; i++)
        r = r * (1.5 - 0.5 * f * r * r);
    return f * r * pow2i((e - odd) / 2) * (1.0 - zero);
}

/* cos x and sin x for |x| <= pi: Taylor series to x^30 / x^31 (remainder < 1e-19). */
static inline void ct_cos_sin(double x, double *c, double *sn)
{
    static const double cc[16] = {1.0,
                                  -0.5,
                                  0.041666666666666664,
                                  -0.001388888888888889,
                                  2.48015873015873e-05,
                                  -2.755731922398589e-07,
                                  2.08767569878681e-09,
                                  -1.1470745597729725e-11,
                                  4.779477332387385e-14,
                                  -1.5619206968586225e-16,
                                  4.110317623312165e-19,
                                  -8.896791392450574e-22,
                                  1.6117375710961184e-24,
                                  -2.4795962632247976e-27,
                                  3.279889237069838e-30,
                                  -3.7699876288159054e-33};
    static const double sc[16] = {1.0,
                                  -0.16666666666666666,
                                  0.008333333333333333,
                                  -0.0001984126984126984,
                                  2.7557319223985893e-06,
                                  -2.505210838544172e-08,
                                  1.6059043836821613e-10,
                                  -7.647163731819816e-13,
                                  2.8114572543455206e-15,
                                  -8.22063524662433e-18,
                                  1.9572941063391263e-20,
                                  -3.868170170630684e-23,
                                  6.446950284384474e-26,
                                  -9.183689863795546e-29,
                                  1.1309962886447716e-31,
                                  -1.216125041553518e-34};
    double u = x * x, pc = cc[15], ps = sc[15];
    for (int i = 14; i >= 0; i--) {
        pc = pc * u + cc[i];
        ps = ps * u + sc[i];
    }
    *c = pc;
    *sn = x * ps;
}

/* n values round(sigma * z), z standard normal, into out (n even). */
static void sample_flood(cdl_rng *rng, double sigma, int64_t *out, size_t n)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    uint64_t buf[64];
    for (size_t k = 0; k < n; k += 64) {
        size_t m = n - k < 64 ? n - k : 64; /* even: n is a power of two */
        cdl_rng_bytes(rng, buf, m * sizeof(uint64_t));
        for (size_t i = 0; i < m; i += 2) {
            double u1 = (double)((buf[i] >> 11) + 1) * 0x1p-53; /* (0, 1] */
            double u2 = (double)(buf[i + 1] >> 11) * 0x1p-53;   /* [0, 1) */
            double radius = ct_sqrt(-2.0 * ct_log(u1)), c, sn;
            ct_cos_sin(6.283185307179586477 * u2 - 3.141592653589793238, &c, &sn);
            out[k + i] = (int64_t)((sigma * radius * c + magic) - magic);
            out[k + i + 1] = (int64_t)((sigma * radius * sn + magic) - magic);
        }
    }
    cdl_wipe(buf, sizeof buf);
}

/* log2 of a bound on ||e||_2 estimated from the imaginary parts of the
 * decrypted slots (pure noise when the message is real): sqrt(2 mean Im^2)
 * times the scale, rounded up to a power of two, times 2; never below the
 * rounding error of a rescale, sqrt(N (1 + N w) / 12) with w the secret's
 * variance (2/3, or h/N), a public floor. */
static cdl_status flood_noise_log2(const cdl_ckks_context *ctx, const cdl_ckks_plaintext *pt, double *out)
{
    const size_t slots = ctx->slots;
    double *re = cdl_secure_calloc(slots, sizeof(double)), *im = cdl_secure_calloc(slots, sizeof(double));
    cdl_status st = CDL_OK;
    if (!re || !im) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "cdl_ckks_decrypt_flooded: out of memory");
        goto done;
    }
    CDL_TRY_GOTO(st, cdl_ckks_decode_complex(ctx, pt, re, im, slots), done);
    double sum = 0.0;
    for (size_t j = 0; j < slots; j++)
        sum += im[j] * im[j];
    const double h = ctx->spec.secret_hamming_weight;
    const double w = h > 0 ? h / (double)ctx->n : 2.0 / 3.0; /* ct-public: parameters */
    const double floor_log2 = 0.5 * log2((double)ctx->n * (1.0 + (double)ctx->n * w) / 12.0);
    const double two_over_slots = 2.0 / (double)slots; /* ct-public: N */
    /* (the estimate is only used through ceil(log2(.)), which sets the public flood size) */
    const double est = sqrt(two_over_slots * sum) * pt->scale;
    double lg = est > 0.0 ? ceil(log2(est)) + 1.0 : floor_log2;
    *out = lg > floor_log2 ? lg : ceil(floor_log2);
done:
    if (re)
        cdl_secure_free(re, slots * sizeof(double));
    if (im)
        cdl_secure_free(im, slots * sizeof(double));
    return st;
}

cdl_status cdl_ckks_decrypt_flooded(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                    const cdl_ckks_ciphertext *ct, const cdl_ckks_flood_options *opt, cdl_rng *rng,
                                    cdl_ckks_plaintext *pt, cdl_ckks_flood_info *info)
{
    if (!ctx || !sk || !ct || !rng || !pt)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_decrypt_flooded: NULL argument");
    const int bits = opt && opt->security_bits ? opt->security_bits : CDL_CKKS_FLOOD_DEFAULT_BITS;
    const double queries = opt && opt->queries != 0.0 ? opt->queries : 1.0;
    const double given = opt ? opt->noise_log2 : 0.0;
    if (bits < FLOOD_MIN_BITS || bits > FLOOD_MAX_BITS)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_decrypt_flooded: %d bits of statistical security; give "
                        "%d..%d (0 = %d)", bits, FLOOD_MIN_BITS, FLOOD_MAX_BITS, CDL_CKKS_FLOOD_DEFAULT_BITS);
    if (!(queries >= 1.0) || !isfinite(queries) || !isfinite(given) || given < 0.0)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_decrypt_flooded: queries must be >= 1 and noise_log2 a "
                        "finite log2 bound >= 0 (0 = estimate)");
    CDL_TRY(cdl_rng_check_secret(rng, "cdl_ckks_decrypt_flooded"));
    CDL_TRY(cdl_ckks_decrypt(ctx, sk, ct, pt));
    cdl_status st = CDL_OK;
    double noise_log2 = given;
    if (noise_log2 == 0.0)
        CDL_TRY_GOTO(st, flood_noise_log2(ctx, pt, &noise_log2), fail);
    const double sigma_log2 = 0.5 * bits + 0.5 * log2(12.0 * queries) + noise_log2;
    double log_q = 0.0;
    for (int i = 0; i <= pt->level; i++)
        log_q += log2((double)ctx->primes[i]);
    if (sigma_log2 > FLOOD_MAX_SIGMA_LOG2) {
        st = cdl_fail(CDL_ERR_UNSUPPORTED,
                      "cdl_ckks_decrypt_flooded: flooding for %d bits against a noise of 2^%.0f needs sigma = 2^%.1f, "
                      "more than this sampler's 2^%.0f; lower the noise (a larger scale is no help) or the bits",
                      bits, noise_log2, sigma_log2, FLOOD_MAX_SIGMA_LOG2);
        goto fail;
    }
    if (sigma_log2 + FLOOD_Z_MAX_LOG2 > log_q - 3.0) {
        st = cdl_fail(CDL_ERR_PARAMETERS,
                      "cdl_ckks_decrypt_flooded: flooding noise up to 2^%.1f does not fit the ciphertext's modulus of "
                      "2^%.1f at level %d (it must stay below Q/8); keep more modulus at the output",
                      sigma_log2 + FLOOD_Z_MAX_LOG2, log_q, pt->level);
        goto fail;
    }
    const size_t n = ctx->n;
    int64_t *f = cdl_secure_calloc(n, sizeof(int64_t));
    uint64_t *limb = cdl_secure_calloc(n, sizeof(uint64_t));
    if (!f || !limb) {
        if (f)
            cdl_secure_free(f, n * sizeof(int64_t));
        if (limb)
            cdl_secure_free(limb, n * sizeof(uint64_t));
        st = cdl_fail(CDL_ERR_NO_MEMORY, "cdl_ckks_decrypt_flooded: out of memory");
        goto fail;
    }
    sample_flood(rng, exp2(sigma_log2), f, n);
    for (int i = 0; i <= pt->level; i++) {
        const cdl_modulus *m = &ctx->mod[i];
        uint64_t *o = cdl_pt_limb(pt, i);
        for (size_t k = 0; k < n; k++)
            limb[k] = cdl_mod_from_i64(f[k], m);
        cdl_ntt_forward(ctx->ntt[i], limb);
        for (size_t k = 0; k < n; k++)
            o[k] = cdl_mod_add(o[k], limb[k], m->value);
    }
    cdl_secure_free(f, n * sizeof(int64_t));
    cdl_secure_free(limb, n * sizeof(uint64_t));
    if (info) {
        info->queries = queries;
        info->noise_log2 = noise_log2;
        info->sigma_log2 = sigma_log2;
        info->slot_error = exp2(sigma_log2) * sqrt(0.5 * (double)n) / pt->scale; /* ct-public: sizes */
    }
    return CDL_OK;
fail:
    cdl_wipe(pt->data, (size_t)pt->limbs * pt->n * sizeof(uint64_t)); /* no unflooded result on failure */
    return st;
}
