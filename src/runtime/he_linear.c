/*
 * he_linear.c: the fused kernel for a group of linear-layer neurons.
 *
 * A neuron is y = sum_k w_k x_k over ciphertexts x_k at one level. With the
 * public API that is one cdl_ckks_mul_const and one cdl_ckks_add per term:
 * five passes over ciphertext-sized memory per term. Here the constants are
 * turned into residues once, the products are accumulated in 128-bit
 * integers and reduced once at the end (lazy reduction), and a group of
 * neurons that read the same inputs (the output channels of a convolution at
 * one position, neighbouring rows of a dense layer) is computed together, so
 * each input block is loaded once for the whole group while the group's
 * accumulators stay in cache. The arithmetic is exact modular arithmetic, so
 * the result is bit-identical to the mul_const/add sequence (the tests check
 * this against cdl_he_set_reference_linear(1)).
 *
 * With AVX-512 IFMA and primes below 2^52 the products are accumulated by
 * vpmadd52luq / vpmadd52huq into separate low (bits 0..51) and high (bits
 * 52..103) 64-bit accumulators, folded into one residue every HE_IFMA_FLUSH
 * terms (the low word takes 2^12 additions of values below 2^52). The
 * accumulators live in registers (register blocking, as in a matrix-multiply
 * micro-kernel): a tile of up to 6 neurons x 16 coefficients takes 24 zmm
 * registers, and every column adds into it with one load of its 16 input
 * coefficients, 6 weight broadcasts and 24 IFMAs, with no load or store of
 * the accumulators (accumulating in memory, each product also cost a load and
 * a store of both words: 2.7-3x slower, store-bound). CDL_ISA=portable or
 * avx2 selects the portable kernel.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HE_HAVE_IFMA_BUILD 1
#endif

#include "ckks/ckks_internal.h"
#include "compile/he_plan.h"
#include "core/error.h"
#include "core/memory.h"
#include "runtime/he_runtime.h"

#define HE_BLOCK 256  /* coefficients per accumulator block */
#define HE_MAX_GROUP 16
#define HE_IFMA_FLUSH 2048

static int kernel_override; /* 0 auto, 1 portable only, 2 IFMA in chunks of 2 columns (tests) */
void cdl_he_set_linear_kernel(int mode) { kernel_override = mode == 1 || mode == 2 ? mode : 0; }

/* The modulus of one limb for the IFMA tile: q, 2q, 4q, and the Shoup pairs
 * (w, floor(w * 2^52 / q)) of 1, 2^52 and 2^104 modulo q. */
typedef struct {
    uint64_t q, one[2], c52[2], c104[2];
} tile_mod;

static tile_mod tile_mod_of(uint64_t q)
{
    tile_mod t = {.q = q};
    const uint64_t w[3] = {1 % q, (uint64_t)(((cdl_u128)1 << 52) % q), (uint64_t)(((cdl_u128)1 << 104) % q)};
    uint64_t *dst[3] = {t.one, t.c52, t.c104};
    for (int i = 0; i < 3; i++) { /* ct-public: constants of the modulus */
        dst[i][0] = w[i];
        dst[i][1] = (uint64_t)(((cdl_u128)w[i] << 52) / q);
    }
    return t;
}

#ifdef HE_HAVE_IFMA_BUILD
#define HE_IFMA_TARGET "avx512f,avx512ifma"
#define HE_TILE_ROWS 4
#define HE_TILE_COEFFS 16
#define HE_PREFETCH_COEFFS 32 /* two tiles ahead; past the end of a limb a prefetch reads nothing */
#define HE_IFMA_FN static inline __attribute__((target(HE_IFMA_TARGET), always_inline))

/* a * w mod q in [0, 2q) for a < 2^52 (Shoup with a 52-bit constant, as the NTT's IFMA kernel). */
HE_IFMA_FN __m512i mul_shoup52(__m512i a, const uint64_t *ww, __m512i neg_q52, __m512i mask52)
{
    const __m512i zero = _mm512_setzero_si512();
    const __m512i h = _mm512_madd52hi_epu64(zero, a, _mm512_set1_epi64((long long)ww[1]));
    const __m512i r = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, a, _mm512_set1_epi64((long long)ww[0])), h,
                                            neg_q52);
    return _mm512_and_si512(r, mask52);
}

HE_IFMA_FN __m512i sub_if_geq(__m512i x, __m512i m) { return _mm512_min_epu64(x, _mm512_sub_epi64(x, m)); }

/* (lo + hi * 2^52) mod q in [0, q) for lo, hi < 2^63: with hi' = hi + (lo >> 52) split at bit
 * 52, the value is lo mod 2^52 + (hi' mod 2^52) 2^52 + (hi' >> 52) 2^104, three Shoup products. */
HE_IFMA_FN __m512i fold_tile(__m512i lo, __m512i hi, const tile_mod *m)
{
    const __m512i mask52 = _mm512_set1_epi64((long long)(((uint64_t)1 << 52) - 1));
    const __m512i neg_q52 = _mm512_set1_epi64((long long)(((uint64_t)1 << 52) - m->q));
    const __m512i q = _mm512_set1_epi64((long long)m->q);
    hi = _mm512_add_epi64(hi, _mm512_srli_epi64(lo, 52));
    __m512i r = mul_shoup52(_mm512_and_si512(lo, mask52), m->one, neg_q52, mask52);
    r = _mm512_add_epi64(r, mul_shoup52(_mm512_and_si512(hi, mask52), m->c52, neg_q52, mask52));
    r = _mm512_add_epi64(r, mul_shoup52(_mm512_srli_epi64(hi, 52), m->c104, neg_q52, mask52)); /* < 6q */
    r = sub_if_geq(r, _mm512_slli_epi64(q, 2));
    r = sub_if_geq(r, _mm512_add_epi64(q, q));
    return sub_if_geq(r, q);
}

/* One tile: for r < R (R <= HE_TILE_ROWS, a constant after inlining) and the
 * 16 coefficients at offset k, o[r][k + .] (+)= sum_j w[r * wstride + j] x[j][k + .]
 * mod q (added to o's values when add is set). cols <= HE_IFMA_FLUSH, so the
 * low-word sums cannot overflow. */
HE_IFMA_FN void tile_ifma(const uint64_t *const *x, size_t k, const uint64_t *w, size_t wstride, size_t cols, int R,
                          const tile_mod *m, uint64_t *const *o, int add)
{
    __m512i l[HE_TILE_ROWS][2], h[HE_TILE_ROWS][2];
    for (int r = 0; r < HE_TILE_ROWS; r++)
        l[r][0] = l[r][1] = h[r][0] = h[r][1] = _mm512_setzero_si512();
    for (size_t j = 0; j < cols; j++) {
        /* the columns are separate ciphertexts, a pair of cache lines each per tile: without
         * the prefetch, three quarters of the time went waiting on these loads */
        _mm_prefetch((const char *)(x[j] + k + HE_PREFETCH_COEFFS), _MM_HINT_T0);
        _mm_prefetch((const char *)(x[j] + k + HE_PREFETCH_COEFFS + 8), _MM_HINT_T0);
        const __m512i xa = _mm512_loadu_si512((const void *)(x[j] + k));
        const __m512i xb = _mm512_loadu_si512((const void *)(x[j] + k + 8));
        for (int r = 0; r < R; r++) {
            const __m512i vw = _mm512_set1_epi64((long long)w[(size_t)r * wstride + j]);
            l[r][0] = _mm512_madd52lo_epu64(l[r][0], xa, vw);
            h[r][0] = _mm512_madd52hi_epu64(h[r][0], xa, vw);
            l[r][1] = _mm512_madd52lo_epu64(l[r][1], xb, vw);
            h[r][1] = _mm512_madd52hi_epu64(h[r][1], xb, vw);
        }
    }
    const __m512i q = _mm512_set1_epi64((long long)m->q);
    for (int r = 0; r < R; r++)
        for (int half = 0; half < 2; half++) {
            uint64_t *dst = o[r] + k + 8 * half;
            __m512i v = fold_tile(l[r][half], h[r][half], m);
            if (add)
                v = sub_if_geq(_mm512_add_epi64(v, _mm512_loadu_si512((const void *)dst)), q);
            _mm512_storeu_si512((void *)dst, v);
        }
}

/* tile_ifma with R as a compile-time constant in each branch (the loops over r unroll). */
__attribute__((target(HE_IFMA_TARGET))) static void tile_ifma_rows(const uint64_t *const *x, size_t k,
                                                                   const uint64_t *w, size_t wstride, size_t cols,
                                                                   int R, const tile_mod *m, uint64_t *const *o,
                                                                   int add)
{
    switch (R) {
    case 1: tile_ifma(x, k, w, wstride, cols, 1, m, o, add); break;
    case 2: tile_ifma(x, k, w, wstride, cols, 2, m, o, add); break;
    case 3: tile_ifma(x, k, w, wstride, cols, 3, m, o, add); break;
    default: tile_ifma(x, k, w, wstride, cols, 4, m, o, add); break;
    }
}

__attribute__((target(HE_IFMA_TARGET))) static void fold_many(uint64_t q, const uint64_t *lo, const uint64_t *hi,
                                                              size_t n, uint64_t *out)
{
    const tile_mod m = tile_mod_of(q);
    for (size_t k = 0; k + 8 <= n; k += 8)
        _mm512_storeu_si512((void *)(out + k), fold_tile(_mm512_loadu_si512((const void *)(lo + k)),
                                                         _mm512_loadu_si512((const void *)(hi + k)), &m));
}

static int ifma_available(void)
{
    static int cached = -1;
    if (cached < 0) {
        const char *isa = getenv("CDL_ISA");
        int forced_off = isa && (!strcmp(isa, "portable") || !strcmp(isa, "avx2"));
        __builtin_cpu_init();
        cached = !forced_off && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
    }
    return cached;
}
#else
#define HE_TILE_ROWS 4
#define HE_TILE_COEFFS 16
static int ifma_available(void) { return 0; }
static void fold_many(uint64_t q, const uint64_t *lo, const uint64_t *hi, size_t n, uint64_t *out)
{
    (void)q, (void)lo, (void)hi, (void)n, (void)out;
}
static void tile_ifma_rows(const uint64_t *const *x, size_t k, const uint64_t *w, size_t wstride, size_t cols, int R,
                           const tile_mod *m, uint64_t *const *o, int add)
{
    (void)x, (void)k, (void)w, (void)wstride, (void)cols, (void)R, (void)m, (void)o, (void)add;
}
#endif

void cdl_he_linear_prepare(void) { (void)ifma_available(); }

int cdl_he_linear_fold_check(uint64_t q, const uint64_t *lo, const uint64_t *hi, size_t n, uint64_t *out)
{
    if (!ifma_available() || q >= ((uint64_t)1 << 52) || n % 8)
        return 0;
    fold_many(q, lo, hi, n, out);
    return 1;
}

cdl_status cdl_he_linear_group(const cdl_ckks_context *ctx, const he_op *op, size_t g,
                               cdl_ckks_ciphertext *const *in, double s_in, double const_scale, int level,
                               cdl_ckks_ciphertext **out)
{
    const size_t r0 = op->grp_row[g], rows = op->grp_row[g + 1] - r0;
    const size_t c0 = op->grp_col[g], U = op->grp_col[g + 1] - c0;
    const double *W = op->gw + op->grp_w[g];
    const int limbs = level + 1;
    const size_t n = ctx->n;
    if (rows > HE_MAX_GROUP)
        return cdl_fail(CDL_ERR_INTERNAL, "he linear: group of %zu rows", rows);
    /* residues of round(w * const_scale) per (limb, row, column); columns whose input is an exact zero dropped */
    size_t *cols = cdl_alloc_array(U ? U : 1, sizeof *cols);
    uint64_t *res = cdl_alloc_array((size_t)limbs * rows * (U ? U : 1), sizeof *res);
    cdl_u128 *acc = cdl_alloc_array(rows * HE_BLOCK, sizeof *acc);
    const uint64_t **xcol = cdl_alloc_array(U ? U : 1, sizeof *xcol); /* IFMA: the columns' limbs */
    uint64_t *orow[HE_MAX_GROUP];                                      /* IFMA: the rows' limbs */
    cdl_status st = CDL_OK;
    for (size_t r = 0; r < rows; r++)
        out[r] = NULL;
    if (!cols || !res || !acc || !xcol) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "he linear: out of memory");
        goto done;
    }
    size_t nu = 0;
    for (size_t u = 0; u < U; u++)
        if (in[op->gcol[c0 + u]])
            cols[nu++] = u;
    for (size_t j = 0; j < nu; j++)
        for (size_t r = 0; r < rows; r++) {
            double v = round(W[r * U + cols[j]] * const_scale);
            if (!isfinite(v) || fabs(v) >= 0x1p62) {
                st = cdl_fail(CDL_ERR_PARAMETERS, "node '%s': weight %g at scale 2^%.1f does not fit a 62-bit word",
                              op->name, W[r * U + cols[j]], log2(const_scale));
                goto done;
            }
            for (int i = 0; i < limbs; i++)
                res[((size_t)i * rows + r) * nu + j] = cdl_ckks_double_to_residue(v, &ctx->mod[i]);
        }
    for (size_t r = 0; r < rows; r++)
        CDL_TRY_GOTO(st, cdl_ckks_ciphertext_alloc(ctx, 2, level, &out[r]), done);
    const int use_ifma = kernel_override != 1 && ifma_available() && n % HE_TILE_COEFFS == 0;
    const size_t chunk = kernel_override == 2 ? 2 : HE_IFMA_FLUSH; /* columns folded at once */
    for (int i = 0; i < limbs; i++) {
        const cdl_modulus *m = &ctx->mod[i];
        if (use_ifma && m->bits <= 52) {
            const tile_mod tm = tile_mod_of(m->value);
            for (int p = 0; p < 2; p++) {
                for (size_t j = 0; j < nu; j++)
                    xcol[j] = cdl_ct_poly(in[op->gcol[c0 + cols[j]]], p, i);
                for (size_t r = 0; r < rows; r++)
                    orow[r] = cdl_ct_poly(out[r], p, i);
                if (!nu) { /* every input an exact zero */
                    for (size_t r = 0; r < rows; r++)
                        memset(orow[r], 0, n * sizeof(uint64_t));
                    continue;
                }
                /* coefficients outer: a tile's input lines stay in cache for every group of rows */
                for (size_t k = 0; k < n; k += HE_TILE_COEFFS)
                    for (size_t r0 = 0; r0 < rows; r0 += HE_TILE_ROWS) {
                        const int R = (int)(rows - r0 < HE_TILE_ROWS ? rows - r0 : HE_TILE_ROWS);
                        const uint64_t *w = res + ((size_t)i * rows + r0) * nu;
                        /* columns in chunks of HE_IFMA_FLUSH, the first stored, the others added */
                        for (size_t j0 = 0; j0 < nu; j0 += chunk) {
                            const size_t cn = nu - j0 < chunk ? nu - j0 : chunk;
                            tile_ifma_rows(xcol + j0, k, w + j0, nu, cn, R, &tm, orow + r0, j0 > 0);
                        }
                    }
            }
            continue;
        }
        /* products are < q^2; the sum must stay below 2^122 for the Barrett reduction */
        const int pb = 2 * m->bits;
        const uint64_t lazy64 = pb >= 121 ? 1 : (122 - pb >= 40 ? (uint64_t)1 << 40 : (uint64_t)1 << (122 - pb));
        const size_t lazy = lazy64 > SIZE_MAX ? SIZE_MAX : (size_t)lazy64; /* 32-bit size_t (WebAssembly) */
        for (int p = 0; p < 2; p++)
            for (size_t b0 = 0; b0 < n; b0 += HE_BLOCK) {
                const size_t bl = n - b0 < HE_BLOCK ? n - b0 : HE_BLOCK;
                memset(acc, 0, rows * HE_BLOCK * sizeof *acc);
                size_t since = 0;
                for (size_t j = 0; j < nu; j++) {
                    const uint64_t *x = cdl_ct_poly(in[op->gcol[c0 + cols[j]]], p, i) + b0;
                    for (size_t r = 0; r < rows; r++) {
                        const uint64_t w = res[((size_t)i * rows + r) * nu + j];
                        if (!w)
                            continue;
                        cdl_u128 *a = acc + r * HE_BLOCK;
                        for (size_t k = 0; k < bl; k++)
                            a[k] += (cdl_u128)w * x[k];
                    }
                    if (++since == lazy) {
                        for (size_t k = 0; k < rows * HE_BLOCK; k++)
                            acc[k] = cdl_barrett_reduce_128(acc[k], m);
                        since = 0;
                    }
                }
                for (size_t r = 0; r < rows; r++) {
                    uint64_t *o = cdl_ct_poly(out[r], p, i) + b0;
                    const cdl_u128 *a = acc + r * HE_BLOCK;
                    for (size_t k = 0; k < bl; k++)
                        o[k] = cdl_barrett_reduce_128(a[k], m);
                }
            }
    }
    for (size_t r = 0; r < rows; r++) {
        out[r]->level = level;
        out[r]->size = 2;
        out[r]->scale = s_in * const_scale;
    }
done:
    if (st != CDL_OK)
        for (size_t r = 0; r < rows; r++) {
            cdl_ckks_ciphertext_free(out[r]);
            out[r] = NULL;
        }
    cdl_free(cols);
    cdl_free(res);
    cdl_free(acc);
    cdl_free(xcol);
    return st;
}
