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
 */
#include <math.h>
#include <string.h>

#include "ckks/ckks_internal.h"
#include "compile/he_plan.h"
#include "core/error.h"
#include "core/memory.h"
#include "runtime/he_runtime.h"

#define HE_BLOCK 256  /* coefficients per accumulator block */
#define HE_MAX_GROUP 16

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
    for (int i = 0; i < limbs; i++) {
        const cdl_modulus *m = &ctx->mod[i];
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
