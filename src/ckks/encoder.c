/*
 * encoder.c: CKKS encoding (Cheon-Kim-Kim-Song 2017, section 3.2) with the
 * "special FFT" of the HEAAN library: slot j of a plaintext m(X) is
 * m(zeta^(5^j)) with zeta = exp(i pi / N), j < N/2 (the other N/2 roots are
 * the conjugates), so X -> X^(5^k) rotates slots left by k and X -> X^(2N-1)
 * conjugates them.
 *
 * encode: slots z -> inverse special FFT -> w (N/2 complex) -> coefficients
 *   m_i = round(Re w_i * scale), m_(i+N/2) = round(Im w_i * scale) -> RNS -> NTT.
 * decode: INTT -> CRT to centered integers (multi-word) -> /scale -> special FFT.
 * Coefficients of any size are handled: below 2^52 by a vectorized double-
 * precision quotient, below 2^63 by Barrett reduction, above via the
 * exact binary decomposition of the double (mantissa * 2^e). Values whose
 * coefficients would not fit in Q_level / 2 are refused.
 */
#include <math.h>
#include <string.h>

#include "ckks/ckks_internal.h"
#include "core/error.h"
#include "core/memory.h"
#include "ring/ntt_kernels.h"
#include "ring/rns_kernels.h"
#include "ring/rns_poly.h"

/* The AVX-512 kernels of encoder_avx512.c apply (any N >= 16 has slots % 8 == 0). */
static int encoder_vector(const cdl_ckks_context *ctx)
{
    return CDL_HAVE_X86_KERNELS && cdl_isa_active() == CDL_ISA_AVX512 && ctx->slots % 8 == 0;
}


static void bit_reverse_split(double *re, double *im, size_t size)
{
    int bits = __builtin_ctzll(size);
    for (size_t i = 0; i < size; i++) {
        size_t j = cdl_bit_reverse(i, bits);
        if (i < j) {
            double t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
}

/* One butterfly stage of half-length h with twiddles w (contiguous in j, so
 * the butterflies vectorize): forward (x + y w, x - y w), inverse
 * (x + y, (x - y) conj(w)); the AVX-512 kernel does the same for h >= 8. */
static void fft_stage(const cdl_ckks_context *ctx, double *re, double *im, size_t size, size_t h, int inverse)
{
    const double *wr = ctx->fft_tw_re + h - 1, *wi = ctx->fft_tw_im + h - 1;
    if (h >= 8 && encoder_vector(ctx)) {
        cdl_fft_stage_avx512(re, im, size, h, wr, wi, inverse);
        return;
    }
    for (size_t i = 0; i < size; i += 2 * h) {
        double *ar = re + i, *ai = im + i, *br = re + i + h, *bi = im + i + h;
#pragma omp simd
        for (size_t j = 0; j < h; j++) {
            const double xr = ar[j], xi = ai[j];
            if (!inverse) {
                const double tr = br[j] * wr[j] - bi[j] * wi[j], ti = br[j] * wi[j] + bi[j] * wr[j];
                ar[j] = xr + tr;
                ai[j] = xi + ti;
                br[j] = xr - tr;
                bi[j] = xi - ti;
            } else {
                const double dr = xr - br[j], di = xi - bi[j];
                ar[j] = xr + br[j];
                ai[j] = xi + bi[j];
                br[j] = dr * wr[j] + di * wi[j];
                bi[j] = di * wr[j] - dr * wi[j];
            }
        }
    }
}

/* w -> slot values z_j = m(zeta^(5^j)) (HEAAN's fftSpecial), on split real /
 * imaginary arrays with the context's per-stage twiddles. */
static void fft_special(const cdl_ckks_context *ctx, double *re, double *im, size_t size)
{
    bit_reverse_split(re, im, size);
    for (size_t h = 1; h < size; h <<= 1)
        fft_stage(ctx, re, im, size, h, 0);
}

/* Exact inverse of fft_special (conjugate twiddles, then 1/size). */
static void fft_special_inv(const cdl_ckks_context *ctx, double *re, double *im, size_t size)
{
    for (size_t h = size / 2; h >= 1; h >>= 1)
        fft_stage(ctx, re, im, size, h, 1);
    bit_reverse_split(re, im, size);
    const double inv = 1.0 / (double)size;
#pragma omp simd
    for (size_t i = 0; i < size; i++) {
        re[i] *= inv;
        im[i] *= inv;
    }
}

/* Residue of the integer-valued double r (any magnitude) modulo m. */
uint64_t cdl_ckks_double_to_residue(double r, const cdl_modulus *m)
{
    double a = fabs(r);
    uint64_t res;
    if (a < 9.2e18) {
        res = cdl_barrett_reduce_64((uint64_t)a, m);
    } else {
        int e;
        double mant = frexp(a, &e); /* a = mant * 2^e, mant in [0.5, 1) */
        uint64_t mi = (uint64_t)ldexp(mant, 53);
        res = cdl_mod_mul(cdl_barrett_reduce_64(mi, m), cdl_mod_pow(2, (uint64_t)(e - 53), m), m);
    }
    return r < 0 ? cdl_mod_neg(res, m->value) : res;
}

/* Integer coefficients (as integer-valued doubles, |c| <= maxabs) -> limb i
 * of the RNS NTT form. Below 2^52 the residue comes from a double-precision
 * quotient estimate (off by at most one, corrected), which vectorizes; larger
 * coefficients take the exact path of cdl_ckks_double_to_residue. */
static void coeffs_to_limb(const cdl_ckks_context *ctx, const double *coef, double maxabs, int i, uint64_t *o)
{
    const size_t n = ctx->n;
    const cdl_modulus *m = &ctx->mod[i];
    if (maxabs < 4503599627370496.0 && encoder_vector(ctx) && n % 8 == 0) {
        cdl_doubles_to_residues_avx512(o, coef, n, m->value);
    } else if (maxabs < 4503599627370496.0) { /* 2^52 */
        const int64_t q = (int64_t)m->value;
        const double inv = 1.0 / (double)m->value;
#pragma omp simd
        for (size_t k = 0; k < n; k++) {
            const double c = coef[k];
            /* the truncated quotient is off by at most one either way: r in (-2q, 2q) */
            int64_t r = (int64_t)c - (int64_t)(c * inv) * q;
            r += q & (r >> 63);
            r += q & (r >> 63);
            r -= q & ((q - 1 - r) >> 63);
            o[k] = (uint64_t)r;
        }
    } else {
        for (size_t k = 0; k < n; k++) {
            double r = coef[k];
            o[k] = fabs(r) < 4.6e18 ? cdl_mod_from_i64((int64_t)r, m) : cdl_ckks_double_to_residue(r, m);
        }
    }
    cdl_ntt_forward(ctx->ntt[i], o);
}

static double level_log_q(const cdl_ckks_context *ctx, int level)
{
    double s = 0;
    for (int i = 0; i <= level; i++)
        s += log2((double)ctx->primes[i]);
    return s;
}

/* The first half of encoding: values (re, im; count of them, the rest zero)
 * -> the integer coefficients round(scale * inverse special FFT) into coef
 * (N doubles), their largest magnitude into *maxabs; refused when a value is
 * not finite or the coefficients do not fit level's modulus. work: N doubles. */
static cdl_status encode_coefficients(const cdl_ckks_context *ctx, const double *re, const double *im, size_t count,
                                      double scale, int level, double *work, double *coef, double *maxabs)
{
    const size_t slots = ctx->slots;
    double *wr = work, *wi = work + slots;
    for (size_t j = 0; j < slots; j++) {
        wr[j] = j < count ? re[j] : 0.0;
        wi[j] = (j < count && im) ? im[j] : 0.0;
        if (!isfinite(wr[j]) || !isfinite(wi[j]))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_encode: value %zu is not finite", j);
    }
    fft_special_inv(ctx, wr, wi, slots);
    double top = 0;
    if (encoder_vector(ctx)) {
        top = cdl_fft_round_avx512(wr, wi, slots, scale, coef);
    } else {
        for (size_t j = 0; j < slots; j++) {
            coef[j] = cdl_ckks_round_to_integer(wr[j] * scale);
            coef[j + slots] = cdl_ckks_round_to_integer(wi[j] * scale);
            double a = fmax(fabs(coef[j]), fabs(coef[j + slots]));
            top = a > top ? a : top;
        }
    }
    double lq = level_log_q(ctx, level);
    if (!isfinite(top) || (top > 0 && log2(top) >= lq - 1))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_ckks_encode: values times scale 2^%.1f reach 2^%.1f, beyond the %.1f-bit modulus of "
                        "level %d; use a smaller scale, smaller values or a higher level",
                        log2(scale), log2(top), lq, level);
    *maxabs = top;
    return CDL_OK;
}

cdl_status cdl_ckks_encode_complex(const cdl_ckks_context *ctx, const double *re, const double *im, size_t count,
                                   double scale, int level, cdl_ckks_plaintext *pt)
{
    if (!ctx || !pt || (count && !re))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_encode: NULL argument");
    if (pt->n != ctx->n || pt->q_count != ctx->q_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_encode: plaintext made for another context");
    if (count > ctx->slots)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_encode: %zu values but only %zu slots (N/2)", count,
                        ctx->slots);
    if (level < 0 || level > ctx->max_level)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_encode: level %d outside 0..%d", level, ctx->max_level);
    if (level >= pt->limbs)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_encode: the plaintext holds levels 0..%d only, not %d",
                        pt->limbs - 1, level);
    if (!(scale > 0) || !isfinite(scale))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_encode: scale %g must be positive and finite", scale);
    const size_t n = ctx->n;
    /* one per-thread buffer: the slots' real and imaginary parts, then the coefficients */
    double *work = (double *)cdl_ckks_scratch(CDL_SCRATCH_ENCODE, 2 * n);
    if (!work)
        return cdl_fail(CDL_ERR_NO_MEMORY, "cdl_ckks_encode: out of memory");
    double maxabs = 0, *coef = work + n;
    cdl_status st = encode_coefficients(ctx, re, im, count, scale, level, work, coef, &maxabs);
    if (st == CDL_OK) {
        /* limbs 0..level, then (cdl_ckks_plaintext_new_qp) the special primes:
         * residues of the same integer coefficients */
        const int extra = pt->p_data ? pt->p_count : 0, total = level + 1 + extra;
        pt->p_valid = 0;
#pragma omp parallel for schedule(static) if (total > 1)
        for (int t = 0; t < total; t++) {
            if (t <= level)
                coeffs_to_limb(ctx, coef, maxabs, t, pt->data + (size_t)t * n);
            else
                coeffs_to_limb(ctx, coef, maxabs, ctx->q_count + (t - level - 1),
                               pt->p_data + (size_t)(t - level - 1) * n);
        }
        pt->level = level;
        pt->scale = scale;
        pt->p_valid = extra > 0;
    }
    cdl_ckks_scratch_wipe(CDL_SCRATCH_ENCODE); /* the values may be a client's image */
    return st;
}

/* Terms encoded together: their coefficients (N doubles each) stay in the
 * last-level cache while every limb of every term is made and used. */
#define DOT_CHUNK 8

/* The sum of products for `groups` sets of ciphertexts that share their
 * diagonals: x[g * terms + t] is term t of group g, acc[g] its sum. Each
 * diagonal is encoded once (its inverse FFT and one NTT per prime, the bulk
 * of the work) and multiplied into every group while its limb is in cache:
 * the weights of two branches of one network (a siamese pair, a test-time
 * augmentation) cost one encoding. */
static cdl_status dot_values_groups(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *const *x,
                                   const double *const *values, size_t count, size_t terms, size_t groups,
                                   double scale, int accumulate, cdl_ckks_ciphertext *const *acc, const char *fn)
{
    if (!ctx || !acc || !groups || (terms && (!x || !values)))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument or no group", fn);
    if (!terms)
        return accumulate ? CDL_OK : cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: no terms to start the sum", fn);
    if (count > ctx->slots)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: %zu values but only %zu slots (N/2)", fn, count, ctx->slots);
    if (!(scale > 0) || !isfinite(scale))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: scale %g must be positive and finite", fn, scale);
    const int level = x[0] ? x[0]->level : -1, size = x[0] ? x[0]->size : 0;
    for (size_t t = 0; t < terms; t++)
        if (!values[t])
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: term %zu has no values", fn, t);
    for (size_t j = 0; j < groups * terms; j++) {
        const cdl_ckks_ciphertext *xj = x[j];
        if (!xj || !cdl_ckks_ct_fits(ctx, xj))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: term %zu of group %zu: missing or made for another context",
                            fn, j % terms, j / terms);
        for (size_t g = 0; g < groups; g++)
            if (xj == acc[g])
                return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: an accumulator is also a term", fn);
        if (xj->level != level || xj->size != size || !cdl_ckks_scales_match(xj->scale, x[0]->scale))
            return cdl_fail(CDL_ERR_MISMATCH, "%s: term %zu of group %zu is at another level, size or scale than "
                            "the first term", fn, j % terms, j / terms);
    }
    const double out_scale = x[0]->scale * scale;
    for (size_t g = 0; g < groups; g++) {
        if (!acc[g] || !cdl_ckks_ct_fits(ctx, acc[g]))
            return cdl_fail(CDL_ERR_MISMATCH, "%s: accumulator %zu missing or made for another context", fn, g);
        for (size_t h = 0; h < g; h++)
            if (acc[h] == acc[g])
                return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: groups %zu and %zu share an accumulator", fn, h, g);
        if (accumulate && (acc[g]->level != level || acc[g]->size != size ||
                           !cdl_ckks_scales_match(acc[g]->scale, out_scale)))
            return cdl_fail(CDL_ERR_MISMATCH, "%s: accumulator %zu is not at the products' level, size and scale", fn,
                            g);
    }
    for (size_t g = 0; g < groups && !accumulate; g++) {
        CDL_TRY(cdl_ckks_ciphertext_reserve(acc[g], size, level + 1));
        acc[g]->size = size;
        acc[g]->level = level;
        acc[g]->scale = out_scale;
    }
    for (size_t g = 0; g < groups; g++)
        acc[g]->seeded = 0;
    const size_t n = ctx->n;
    /* per thread: the work area of one FFT, DOT_CHUNK coefficient vectors, one limb */
    double *work = (double *)cdl_ckks_scratch(CDL_SCRATCH_DOT, (2 + DOT_CHUNK) * n);
    if (!work)
        return cdl_fail(CDL_ERR_NO_MEMORY, "%s: out of memory", fn);
    double *coefs = work + n, maxabs[DOT_CHUNK];
    uint64_t *limb = (uint64_t *)(coefs + DOT_CHUNK * n);
    const int vec = cdl_rns_vector_enabled(n);
    cdl_status st = CDL_OK;
    for (size_t t0 = 0; t0 < terms && st == CDL_OK; t0 += DOT_CHUNK) {
        const size_t k = terms - t0 < DOT_CHUNK ? terms - t0 : DOT_CHUNK;
        for (size_t t = 0; t < k && st == CDL_OK; t++)
            st = encode_coefficients(ctx, values[t0 + t], NULL, count, scale, level, work, coefs + t * n, &maxabs[t]);
        /* limb by limb: the accumulators' limbs stay in cache while the chunk's terms are added into them */
        for (int i = 0; i <= level && st == CDL_OK; i++) {
            const cdl_modulus *m = &ctx->mod[i];
            for (size_t t = 0; t < k; t++) {
                coeffs_to_limb(ctx, coefs + t * n, maxabs[t], i, limb);
                const int set = !accumulate && t0 == 0 && t == 0;
                for (size_t g = 0; g < groups; g++)
                    for (int c = 0; c < size; c++) {
                        uint64_t *o = cdl_ct_poly(acc[g], c, i);
                        const uint64_t *a = cdl_ct_poly(x[g * terms + t0 + t], c, i);
                        if (vec && m->value < CDL_IFMA_PRIME_LIMIT) {
                            if (set)
                                cdl_mul_ifma(o, a, limb, m->value, n);
                            else
                                cdl_mul_add_ifma(o, o, a, limb, m->value, n);
                        } else if (set) {
                            cdl_poly_mul(o, a, limb, n, m);
                        } else {
                            cdl_poly_mul_add(o, a, limb, n, m);
                        }
                    }
            }
        }
    }
    cdl_ckks_scratch_wipe(CDL_SCRATCH_DOT); /* the values may be anyone's */
    return st;
}

cdl_status cdl_ckks_dot_values(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *const *x,
                               const double *const *values, size_t count, size_t terms, double scale, int accumulate,
                               cdl_ckks_ciphertext *acc)
{
    return dot_values_groups(ctx, x, values, count, terms, 1, scale, accumulate, &acc, "cdl_ckks_dot_values");
}

cdl_status cdl_ckks_dot_values_shared(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *const *x,
                                      const double *const *values, size_t count, size_t terms, size_t groups,
                                      double scale, int accumulate, cdl_ckks_ciphertext *const *acc)
{
    return dot_values_groups(ctx, x, values, count, terms, groups, scale, accumulate, acc,
                             "cdl_ckks_dot_values_shared");
}

cdl_status cdl_ckks_encode(const cdl_ckks_context *ctx, const double *values, size_t count, double scale, int level,
                           cdl_ckks_plaintext *pt)
{
    return cdl_ckks_encode_complex(ctx, values, NULL, count, scale, level, pt);
}

/* Multi-word helpers for the CRT composition (little-endian 64-bit words). */
static void mw_mul_add_word(uint64_t *acc, const uint64_t *a, size_t words, uint64_t w)
{
    cdl_u128 carry = 0;
    for (size_t i = 0; i < words; i++) {
        cdl_u128 t = (cdl_u128)a[i] * w + acc[i] + carry;
        acc[i] = (uint64_t)t;
        carry = t >> 64;
    }
    acc[words] += (uint64_t)carry; /* acc has words + 1 words and never overflows */
}

/* acc (words + 1 words) -= a * w, for a result known to be >= 0. */
static void mw_sub_mul_word(uint64_t *acc, const uint64_t *a, size_t words, uint64_t w)
{
    cdl_u128 carry = 0;
    uint64_t borrow = 0;
    for (size_t i = 0; i < words; i++) {
        cdl_u128 t = (cdl_u128)a[i] * w + carry;
        uint64_t lo = (uint64_t)t;
        carry = t >> 64;
        uint64_t r = acc[i] - lo - borrow;
        borrow = (acc[i] < lo) || (acc[i] - lo < borrow);
        acc[i] = r;
    }
    acc[words] -= (uint64_t)carry + borrow;
}

static int mw_geq(const uint64_t *a, const uint64_t *b, size_t words)
{
    for (size_t i = words; i-- > 0;)
        if (a[i] != b[i])
            return a[i] > b[i];
    return 1;
}

static void mw_sub(uint64_t *a, const uint64_t *b, size_t words)
{
    uint64_t borrow = 0;
    for (size_t i = 0; i < words; i++) {
        uint64_t t = a[i] - b[i] - borrow;
        borrow = (a[i] < b[i]) || (a[i] - b[i] < borrow);
        a[i] = t;
    }
}

/* Nearest double (within 2^-100 relative) from the top three nonzero words. */
static double mw_to_double(const uint64_t *a, size_t words)
{
    size_t h = words;
    while (h > 0 && a[h - 1] == 0)
        h--;
    if (h == 0)
        return 0.0;
    h--; /* index of the top nonzero word */
    double r = (double)a[h];
    if (h >= 1)
        r = r * 18446744073709551616.0 + (double)a[h - 1];
    if (h >= 2)
        r += (double)a[h - 2] / 18446744073709551616.0;
    return h >= 1 ? ldexp(r, 64 * (int)(h - 1)) : r;
}

/* Coefficient form limbs 0..level -> centered integers as doubles divided by scale. */
static cdl_status crt_compose(const cdl_ckks_context *ctx, const uint64_t *c, int level, double scale, double *out)
{
    const size_t n = ctx->n;
    const size_t L = (size_t)level + 1, W = L + 1; /* words of Q and of the accumulators */
    if (level == 0) {
        uint64_t q = ctx->primes[0], half = q >> 1;
        for (size_t k = 0; k < n; k++) {
            uint64_t v = c[k];
            out[k] = (v > half ? -(double)(q - v) : (double)v) / scale;
        }
        return CDL_OK;
    }
    /* Q, Q/q_i (as multi-word), and [(Q/q_i)^-1]_{q_i}. */
    uint64_t *Q = cdl_calloc_array(W, sizeof(uint64_t));
    uint64_t *qhat = cdl_calloc_array(L * W, sizeof(uint64_t));
    uint64_t *qhat_inv = cdl_calloc_array(L, sizeof(uint64_t));
    uint64_t *half = cdl_calloc_array(W, sizeof(uint64_t));
    if (!Q || !qhat || !qhat_inv || !half) {
        cdl_free(Q), cdl_free(qhat), cdl_free(qhat_inv), cdl_free(half);
        return CDL_ERR_NO_MEMORY;
    }
    Q[0] = 1;
    for (size_t i = 0; i < L; i++) {
        uint64_t tmp[CDL_CKKS_MAX_PRIMES + 2] = {0};
        mw_mul_add_word(tmp, Q, W - 1, ctx->primes[i]);
        memcpy(Q, tmp, W * sizeof(uint64_t));
    }
    for (size_t i = 0; i < L; i++) {
        uint64_t *h = qhat + i * W;
        h[0] = 1;
        uint64_t inv = 1;
        for (size_t j = 0; j < L; j++) {
            if (j == i)
                continue;
            uint64_t tmp[CDL_CKKS_MAX_PRIMES + 2] = {0};
            mw_mul_add_word(tmp, h, W - 1, ctx->primes[j]);
            memcpy(h, tmp, W * sizeof(uint64_t));
            inv = cdl_mod_mul(inv, cdl_barrett_reduce_64(ctx->primes[j], &ctx->mod[i]), &ctx->mod[i]);
        }
        qhat_inv[i] = cdl_mod_inv(inv, &ctx->mod[i]);
    }
    /* half = floor(Q / 2) */
    for (size_t i = 0; i < W; i++)
        half[i] = (Q[i] >> 1) | (i + 1 < W ? Q[i + 1] << 63 : 0);

#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < n; k++) {
        uint64_t acc[CDL_CKKS_MAX_PRIMES + 3];
        memset(acc, 0, (W + 1) * sizeof(uint64_t));
        double frac = 0; /* acc / Q = sum y_i / q_i */
        for (size_t i = 0; i < L; i++) {
            uint64_t y = cdl_mod_mul(c[i * n + k], qhat_inv[i], &ctx->mod[i]);
            mw_mul_add_word(acc, qhat + i * W, W, y);
            frac += (double)y / (double)ctx->primes[i];
        }
        /* acc < L * Q. Remove floor(acc/Q) - (0 or 1) multiples of Q at once
         * (the double estimate is off by far less than 1/2), then at most one
         * exact correction. */
        double kq = floor(frac - 0.5);
        if (kq >= 1)
            mw_sub_mul_word(acc, Q, W, (uint64_t)kq);
        while (mw_geq(acc, Q, W))
            mw_sub(acc, Q, W);
        double v;
        if (!mw_geq(half, acc, W)) { /* acc > floor(Q/2): negative */
            uint64_t t[CDL_CKKS_MAX_PRIMES + 3];
            memcpy(t, Q, W * sizeof(uint64_t));
            mw_sub(t, acc, W);
            v = -mw_to_double(t, W);
        } else {
            v = mw_to_double(acc, W);
        }
        out[k] = v / scale;
    }
    cdl_free(Q), cdl_free(qhat), cdl_free(qhat_inv), cdl_free(half);
    return CDL_OK;
}

cdl_status cdl_ckks_decode_complex(const cdl_ckks_context *ctx, const cdl_ckks_plaintext *pt, double *re, double *im,
                                   size_t count)
{
    if (!ctx || !pt || (count && !re))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_decode: NULL argument");
    if (pt->n != ctx->n || pt->q_count != ctx->q_count)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_ckks_decode: plaintext made for another context");
    if (count > ctx->slots)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_decode: asked for %zu values but there are %zu slots",
                        count, ctx->slots);
    const size_t n = ctx->n, slots = ctx->slots;
    const int level = pt->level;
    size_t limbs = (size_t)level + 1;
    uint64_t *c = cdl_secure_calloc(limbs * n, sizeof(uint64_t));
    double *coef = cdl_secure_calloc(n, sizeof(double));
    double *w = cdl_secure_calloc(n, sizeof(double)); /* real parts, then imaginary */
    cdl_status st = CDL_OK;
    if (!c || !coef || !w) {
        st = CDL_ERR_NO_MEMORY;
        goto done;
    }
    memcpy(c, pt->data, limbs * n * sizeof(uint64_t));
    cdl_rns_ntt_inverse(c, n, (cdl_ntt_table *const *)ctx->ntt, level + 1);
    CDL_TRY_GOTO(st, crt_compose(ctx, c, level, pt->scale, coef), done);
    memcpy(w, coef, n * sizeof *w);
    fft_special(ctx, w, w + slots, slots);
    for (size_t j = 0; j < count; j++) {
        re[j] = w[j];
        if (im)
            im[j] = w[slots + j];
    }
done:
    if (c)
        cdl_secure_free(c, limbs * n * sizeof(uint64_t));
    if (coef)
        cdl_secure_free(coef, n * sizeof(double));
    if (w)
        cdl_secure_free(w, n * sizeof(double));
    return st;
}

cdl_status cdl_ckks_decode(const cdl_ckks_context *ctx, const cdl_ckks_plaintext *pt, double *values, size_t count)
{
    return cdl_ckks_decode_complex(ctx, pt, values, NULL, count);
}
