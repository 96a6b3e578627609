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
 * vpmadd52luq / vpmadd52huq, eight coefficients at a time, into separate low
 * (bits 0..51) and high (bits 52..103) 64-bit accumulators, folded into one
 * residue every HE_IFMA_FLUSH terms (the low word takes 2^12 additions of
 * values below 2^52). CDL_ISA=portable or avx2 selects the portable kernel.
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

static int kernel_override; /* 0 auto, 2 portable only (tests) */
void cdl_he_set_linear_kernel(int portable_only) { kernel_override = portable_only ? 2 : 0; }

#ifdef HE_HAVE_IFMA_BUILD
#define HE_IFMA_TARGET "avx512f,avx512ifma"
/* lo[k] += low52(w * x[k]), hi[k] += high52(w * x[k]) for k < bl (bl a multiple of 8; w, x < 2^52). */
__attribute__((target(HE_IFMA_TARGET))) static void acc_ifma(uint64_t *lo, uint64_t *hi, const uint64_t *x,
                                                            uint64_t w, size_t bl)
{
    const __m512i vw = _mm512_set1_epi64((long long)w);
    for (size_t k = 0; k < bl; k += 8) {
        __m512i vx = _mm512_loadu_si512((const void *)(x + k));
        __m512i l = _mm512_loadu_si512((const void *)(lo + k));
        __m512i h = _mm512_loadu_si512((const void *)(hi + k));
        _mm512_storeu_si512((void *)(lo + k), _mm512_madd52lo_epu64(l, vx, vw));
        _mm512_storeu_si512((void *)(hi + k), _mm512_madd52hi_epu64(h, vx, vw));
    }
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
static int ifma_available(void) { return 0; }
static void acc_ifma(uint64_t *lo, uint64_t *hi, const uint64_t *x, uint64_t w, size_t bl)
{
    (void)lo, (void)hi, (void)x, (void)w, (void)bl;
}
#endif

/* (lo + hi * 2^52) mod q */
static inline uint64_t fold52(uint64_t lo, uint64_t hi, const cdl_modulus *m)
{
    return cdl_barrett_reduce_128(((cdl_u128)hi << 52) + lo, m);
}

void cdl_he_linear_prepare(void) { (void)ifma_available(); }

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
    cdl_status st = CDL_OK;
    for (size_t r = 0; r < rows; r++)
        out[r] = NULL;
    if (!cols || !res || !acc) {
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
    const int use_ifma = kernel_override != 2 && ifma_available() && n % 8 == 0;
    for (int i = 0; i < limbs; i++) {
        const cdl_modulus *m = &ctx->mod[i];
        if (use_ifma && m->bits <= 52) {
            uint64_t *lo = (uint64_t *)acc, *hi = lo + rows * HE_BLOCK; /* the same bytes as the u128 block */
            for (int p = 0; p < 2; p++)
                for (size_t b0 = 0; b0 < n; b0 += HE_BLOCK) {
                    const size_t bl = n - b0 < HE_BLOCK ? n - b0 : HE_BLOCK;
                    memset(acc, 0, rows * HE_BLOCK * sizeof *acc);
                    size_t since = 0;
                    for (size_t j = 0; j < nu; j++) {
                        const uint64_t *x = cdl_ct_poly(in[op->gcol[c0 + cols[j]]], p, i) + b0;
                        for (size_t r = 0; r < rows; r++) {
                            const uint64_t w = res[((size_t)i * rows + r) * nu + j];
                            if (w)
                                acc_ifma(lo + r * HE_BLOCK, hi + r * HE_BLOCK, x, w, bl);
                        }
                        if (++since == HE_IFMA_FLUSH) {
                            for (size_t k = 0; k < rows * HE_BLOCK; k++) {
                                lo[k] = fold52(lo[k], hi[k], m);
                                hi[k] = 0;
                            }
                            since = 0;
                        }
                    }
                    for (size_t r = 0; r < rows; r++) {
                        uint64_t *o = cdl_ct_poly(out[r], p, i) + b0;
                        for (size_t k = 0; k < bl; k++)
                            o[k] = fold52(lo[r * HE_BLOCK + k], hi[r * HE_BLOCK + k], m);
                    }
                }
            continue;
        }
        /* products are < q^2; the sum must stay below 2^122 for the Barrett reduction */
        const int pb = 2 * m->bits;
        const size_t lazy = pb >= 121 ? 1 : (122 - pb >= 40 ? (size_t)1 << 40 : (size_t)1 << (122 - pb));
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
    return st;
}
