/*
 * he_plan.c: the HE compiler for throughput (batch-SIMD) mode. It lowers each
 * node of an nn graph to one runtime op, refuses what the runtime cannot run
 * (naming the node and saying why), counts the levels the graph consumes, and
 * picks CKKS parameters that hold them at 128-bit security.
 *
 * Lowering (CryptoNets, Gilad-Bachrach et al. 2016, section 4): with one
 * ciphertext per neuron and images in the slots, conv / dense / average pool
 * / elementwise affine are all "sum of ciphertexts times public scalars":
 * they become CSR rows with the zero weights dropped. Pad and reshape only
 * move ciphertexts (a padded position is an exact zero, never encrypted).
 * x^2 is one ciphertext multiplication; a*x^(2^k) + c is k squarings, the
 * factor a costing nothing (the scale is reinterpreted) and c an addition;
 * other polynomials go through the approx layer's depth-optimal evaluator.
 * Chains of linear ops are then composed into one op of one level
 * (he_merge.c), before the levels are counted and the rows grouped for the
 * runtime's fused kernel.
 *
 * Parameters: L levels need L + 1 ciphertext primes q_0 > q_1..q_L ~ S and
 * a special prime P for key switching (dnum = L + 1 digits of one prime each,
 * P as large as the largest digit). q_0 = S * 2^output_bits leaves room for
 * the logits. For each N (smallest first) the largest S with
 * (L + 2) log S + 2 output_bits <= the HomomorphicEncryption.org 128-bit
 * budget is taken; N is accepted when S >= 2^min_scale_bits.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compile/he_merge.h"
#include "compile/he_plan.h"
#include "core/bytes.h"
#include "core/error.h"
#include "core/memory.h"
#include "cryptodl/approx.h"
#include "nn/nn_internal.h"

#define HE_MAX_SCALE_BITS 50
/* Slots packing trades scale bits for special primes down to this scale
 * (choose_packing): 2^32 leaves the deep MNIST network's logits within
 * ~1e-5 of the plaintext ones. */
#define HE_SLOTS_MIN_SCALE_BITS 32
#define HE_MAX_PRIME_BITS 60

void cdl_he_options_default(cdl_he_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->min_scale_bits = 26;
    opt->output_bits = 10;
}

void cdl_he_op_clear(he_op *op)
{
    cdl_free(op->row);
    cdl_free(op->col);
    cdl_free(op->w);
    cdl_free(op->bias);
    cdl_free(op->src);
    cdl_free(op->sign);
    cdl_free(op->coeffs);
    cdl_free(op->order);
    cdl_free(op->grp_row);
    cdl_free(op->grp_col);
    cdl_free(op->grp_w);
    cdl_free(op->gcol);
    cdl_free(op->gw);
    cdl_free(op->chain);
}

void cdl_he_plan_free(cdl_he_plan *plan)
{
    if (!plan)
        return;
    cdl_he_slots_free(plan);
    for (size_t i = 0; i < plan->n_ops; i++)
        cdl_he_op_clear(&plan->ops[i]);
    cdl_free(plan->ops);
    cdl_free(plan->value_size);
    cdl_free(plan);
}

/* ---- CSR building ---------------------------------------------------------- */

typedef struct csr_builder {
    size_t n, cap;
    uint32_t *col;
    double *w;
} csr_builder;

static cdl_status csr_push(csr_builder *b, size_t col, double w)
{
    if (w == 0.0)
        return CDL_OK; /* zero weights cost nothing */
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 1024;
        uint32_t *c = cdl_alloc_array(cap, sizeof *c);
        double *ww = cdl_alloc_array(cap, sizeof *ww);
        if (!c || !ww) {
            cdl_free(c);
            cdl_free(ww);
            return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory for %zu weights", cap);
        }
        if (b->n) {
            memcpy(c, b->col, b->n * sizeof *c);
            memcpy(ww, b->w, b->n * sizeof *ww);
        }
        cdl_free(b->col);
        cdl_free(b->w);
        b->col = c;
        b->w = ww;
        b->cap = cap;
    }
    b->col[b->n] = (uint32_t)col;
    b->w[b->n] = w;
    b->n++;
    return CDL_OK;
}

/* ---- grouping ---------------------------------------------------------------- */

/* Row order: position-major over O channels when O > 0 (the O channels of one
 * position of a conv share their window), else as they are. */
static void group_order(he_op *op, size_t O)
{
    const size_t n = op->n_out;
    if (O && n % O == 0) {
        const size_t P = n / O;
        for (size_t pos = 0; pos < P; pos++)
            for (size_t c = 0; c < O; c++)
                op->order[pos * O + c] = c * P + pos;
    } else {
        for (size_t r = 0; r < n; r++)
            op->order[r] = r;
    }
}

/* One pass over groups of G consecutive rows of op->order (G <= 16). Columns
 * of a row are ascending (every lowering and he_merge.c emit them in order),
 * so a group's union is a merge. fill = 0: only count the union columns
 * (*ncol: the kernel loads each once per group) and the padded weights (*nw);
 * fill = 1: write grp_row/grp_col/grp_w/gcol/gw, allocated for those counts. */
static void group_pass(he_op *op, size_t G, int fill, size_t *ncol_out, size_t *nw_out)
{
    const size_t n = op->n_out, n_groups = (n + G - 1) / G;
    size_t ncol = 0, nw = 0;
    for (size_t g = 0; g < n_groups; g++) {
        size_t r0 = g * G, r1 = r0 + G < n ? r0 + G : n;
        size_t pos[16] = {0}, u0 = ncol;
        if (fill) {
            op->grp_row[g] = r0;
            op->grp_col[g] = ncol;
            op->grp_w[g] = nw;
        }
        for (;;) { /* merge: the smallest next column of any row */
            uint32_t best = UINT32_MAX;
            for (size_t r = r0; r < r1; r++) {
                size_t row = op->order[r], k = op->row[row] + pos[r - r0];
                if (k < op->row[row + 1] && op->col[k] < best)
                    best = op->col[k];
            }
            if (best == UINT32_MAX)
                break;
            if (fill)
                op->gcol[ncol] = best;
            for (size_t r = r0; r < r1; r++) {
                size_t row = op->order[r], k = op->row[row] + pos[r - r0];
                if (k < op->row[row + 1] && op->col[k] == best)
                    pos[r - r0]++;
            }
            ncol++;
        }
        size_t U = ncol - u0;
        if (fill) { /* weights rows x U, row-major */
            for (size_t r = r0; r < r1; r++) {
                size_t row = op->order[r];
                size_t k = op->row[row];
                for (size_t u = 0; u < U; u++) {
                    double w = 0.0;
                    if (k < op->row[row + 1] && op->col[k] == op->gcol[u0 + u])
                        w = op->w[k++];
                    op->gw[nw + (r - r0) * U + u] = w;
                }
            }
        }
        nw += (r1 - r0) * U;
    }
    if (fill) {
        op->grp_row[n_groups] = n;
        op->grp_col[n_groups] = ncol;
        op->grp_w[n_groups] = nw;
    }
    *ncol_out = ncol;
    *nw_out = nw;
}

/* Group the CSR rows of a linear op for the runtime's fused kernel (see
 * he_plan.h), as the lowering asked (op->grp_channels, op->grp_size). A
 * merged op (grp_choose) has no single layer shape to go by: its rows are
 * grouped alone, by 8 consecutive rows, or position-major over its output
 * channels, whichever loads the fewest input columns (the kernel's work is
 * the nonzero weights, the same for every grouping, plus one load of each
 * column of a group's union); on a tie the smaller groups (fewer padded
 * zeros in gw) win. */
static cdl_status group_rows(he_op *op)
{
    const size_t n = op->n_out;
    size_t O = op->grp_channels, G = op->grp_size ? op->grp_size : 1, ncol = 0, nw = 0;
    op->order = cdl_alloc_array(n ? n : 1, sizeof *op->order);
    if (!op->order)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory");
    if (op->grp_choose) {
        const size_t cand[3][2] = {{0, 1}, {0, 8}, {O, O <= 16 ? O : 8}};
        size_t best = 0, best_loads = SIZE_MAX;
        for (size_t c = 0; c < (O ? 3u : 2u); c++) {
            group_order(op, cand[c][0]);
            group_pass(op, cand[c][1], 0, &ncol, &nw);
            if (ncol < best_loads) {
                best = c;
                best_loads = ncol;
            }
        }
        O = cand[best][0];
        G = cand[best][1];
    }
    if (G < 1 || G > 16)
        G = G < 1 ? 1 : 16;
    group_order(op, O);
    group_pass(op, G, 0, &ncol, &nw);
    op->n_groups = (n + G - 1) / G;
    op->grp_row = cdl_alloc_array(op->n_groups + 1, sizeof *op->grp_row);
    op->grp_col = cdl_alloc_array(op->n_groups + 1, sizeof *op->grp_col);
    op->grp_w = cdl_alloc_array(op->n_groups + 1, sizeof *op->grp_w);
    op->gcol = cdl_alloc_array(ncol ? ncol : 1, sizeof *op->gcol);
    op->gw = cdl_alloc_array(nw ? nw : 1, sizeof *op->gw);
    if (!op->grp_row || !op->grp_col || !op->grp_w || !op->gcol || !op->gw)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory grouping the %zu weights of node '%s'", nw,
                        op->name);
    group_pass(op, G, 1, &ncol, &nw);
    return CDL_OK;
}

/* Fill op->row/col/w/bias for a linear node. */
static cdl_status lower_linear(const cdl_nn_node *nd, he_op *op)
{
    csr_builder b = {0};
    cdl_status st = CDL_OK;
    op->row = cdl_calloc_array(op->n_out + 1, sizeof *op->row);
    op->bias = cdl_calloc_array(op->n_out, sizeof *op->bias);
    if (!op->row || !op->bias)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory lowering node '%s'", nd->name);
    if (nd->kind == CDL_NN_DENSE) {
        for (size_t o = 0; o < op->n_out; o++) {
            op->row[o] = b.n;
            for (size_t i = 0; i < op->n_in; i++)
                CDL_TRY_GOTO(st, csr_push(&b, i, nd->weight[o * op->n_in + i]), fail);
            op->bias[o] = nd->bias ? nd->bias[o] : 0.0;
        }
    } else if (nd->kind == CDL_NN_CONV || nd->kind == CDL_NN_AVGPOOL) {
        const int64_t C = nd->in_shape.dims[0], H = nd->in_shape.dims[1], W = nd->in_shape.dims[2];
        const int64_t O = nd->out_shape.dims[0], OH = nd->out_shape.dims[1], OW = nd->out_shape.dims[2];
        const int kh = nd->kernel[0], kw = nd->kernel[1];
        for (int64_t o = 0; o < O; o++)
            for (int64_t oy = 0; oy < OH; oy++)
                for (int64_t ox = 0; ox < OW; ox++) {
                    size_t r = (size_t)((o * OH + oy) * OW + ox);
                    op->row[r] = b.n;
                    if (nd->kind == CDL_NN_CONV) {
                        op->bias[r] = nd->bias ? nd->bias[o] : 0.0;
                        for (int64_t c = 0; c < C; c++)
                            for (int ky = 0; ky < kh; ky++)
                                for (int kx = 0; kx < kw; kx++) {
                                    int64_t iy = oy * nd->stride[0] - nd->pads[0] + ky;
                                    int64_t ix = ox * nd->stride[1] - nd->pads[1] + kx;
                                    if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                        continue; /* zero padding */
                                    double w = nd->weight[((o * C + c) * kh + ky) * kw + kx];
                                    CDL_TRY_GOTO(st, csr_push(&b, (size_t)((c * H + iy) * W + ix), w), fail);
                                }
                    } else {
                        int count = 0;
                        for (int pass = 0; pass < 2; pass++)
                            for (int ky = 0; ky < kh; ky++)
                                for (int kx = 0; kx < kw; kx++) {
                                    int64_t iy = oy * nd->stride[0] - nd->pads[0] + ky;
                                    int64_t ix = ox * nd->stride[1] - nd->pads[1] + kx;
                                    if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                        continue;
                                    if (pass == 0) {
                                        count++;
                                        continue;
                                    }
                                    int div = nd->count_include_pad ? kh * kw : count;
                                    CDL_TRY_GOTO(st, csr_push(&b, (size_t)((o * H + iy) * W + ix), 1.0 / div), fail);
                                }
                    }
                }
    } else { /* AFFINE, or a degree-1 POLY handled as y = a x + c */
        for (size_t o = 0; o < op->n_out; o++) {
            op->row[o] = b.n;
            if (nd->kind == CDL_NN_AFFINE) {
                CDL_TRY_GOTO(st, csr_push(&b, o, nd->weight[o]), fail);
                op->bias[o] = nd->bias[o];
            } else {
                CDL_TRY_GOTO(st, csr_push(&b, o, nd->coeffs[1]), fail);
                op->bias[o] = nd->coeffs[0];
            }
        }
    }
    op->row[op->n_out] = b.n;
    op->col = b.col;
    op->w = b.w;
    if (!op->col) { /* every weight zero: keep valid (empty) arrays */
        op->col = cdl_alloc_array(1, sizeof *op->col);
        op->w = cdl_alloc_array(1, sizeof *op->w);
        if (!op->col || !op->w)
            return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory");
    }
    /* how the runtime's fused kernel groups the rows (group_rows, after merging) */
    op->n_linear = 1;
    if (nd->kind == CDL_NN_CONV) { /* position-major: the O channels of one position share their window */
        op->grp_channels = (size_t)nd->out_shape.dims[0];
        op->grp_size = op->grp_channels <= 16 ? op->grp_channels : 8;
    } else if (nd->kind == CDL_NN_DENSE) { /* neighbouring rows read the same inputs */
        op->grp_size = 8;
    } else { /* pool / affine rows share nothing */
        op->grp_size = 1;
    }
    return CDL_OK;
fail:
    cdl_free(b.col);
    cdl_free(b.w);
    return st;
}

static cdl_status lower_gather(const cdl_nn_node *nd, he_op *op)
{
    op->src = cdl_alloc_array(op->n_out, sizeof *op->src);
    if (!op->src)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory lowering node '%s'", nd->name);
    if (nd->kind == CDL_NN_RESHAPE) {
        for (size_t o = 0; o < op->n_out; o++)
            op->src[o] = (int64_t)o;
        return CDL_OK;
    }
    if (nd->kind == CDL_NN_SLICE) {
        for (size_t o = 0; o < op->n_out; o++)
            op->src[o] = (int64_t)cdl_nn_slice_source(nd, o);
        return CDL_OK;
    }
    const int64_t C = nd->in_shape.dims[0], H = nd->in_shape.dims[1], W = nd->in_shape.dims[2];
    const int64_t OH = nd->out_shape.dims[1], OW = nd->out_shape.dims[2];
    for (size_t o = 0; o < op->n_out; o++)
        op->src[o] = -1;
    for (int64_t c = 0; c < C; c++)
        for (int64_t iy = 0; iy < H; iy++)
            for (int64_t ix = 0; ix < W; ix++)
                op->src[(c * OH + iy + nd->pads[0]) * OW + ix + nd->pads[1]] = (c * H + iy) * W + ix;
    return CDL_OK;
}

/* Is the polynomial a * x^(2^k) + c0 (k >= 1)? */
static int poly_pow2k(const double *c, int degree, int *k)
{
    if (degree < 2 || (degree & (degree - 1)) || c[degree] == 0.0)
        return 0;
    for (int i = 1; i < degree; i++)
        if (c[i] != 0.0)
            return 0;
    int kk = 0;
    while ((1 << kk) < degree)
        kk++;
    *k = kk;
    return 1;
}

/* Lower node i; sets op->kind and the cost in levels. */
static cdl_status lower_node(const cdl_nn_graph *g, size_t i, he_op *op, int *cost)
{
    const cdl_nn_node *nd = &g->nodes[i];
    *cost = 0;
    op->node = (int)i;
    op->first_node = (int)i;
    snprintf(op->name, sizeof op->name, "%s", nd->name);
    op->kind_name = cdl_nn_kind_name(nd->kind);
    op->in_value = nd->inputs[0];
    op->in_value2 = -1;
    op->out_value = (int)i + 1;
    op->n_in = cdl_nn_shape_numel(&nd->in_shape);
    op->n_out = cdl_nn_shape_numel(&nd->out_shape);
    if (op->n_out > UINT32_MAX || op->n_in > UINT32_MAX)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "node '%s': %zu values per image is too many for batch mode", nd->name,
                        op->n_out);
    switch (nd->kind) {
    case CDL_NN_CONV:
    case CDL_NN_DENSE:
    case CDL_NN_AVGPOOL:
        if (!nd->he_ok)
            return cdl_fail(CDL_ERR_UNSUPPORTED, "node '%s' (%s, ONNX %s) cannot run encrypted: %s", nd->name,
                            op->kind_name, nd->onnx_op, nd->he_reason);
        op->kind = HE_OP_LINEAR;
        *cost = 1;
        return lower_linear(nd, op);
    case CDL_NN_AFFINE: {
        int pm1 = 1;
        for (size_t k = 0; k < op->n_out && pm1; k++)
            pm1 = nd->weight[k] == 1.0 || nd->weight[k] == -1.0;
        if (!pm1) {
            op->kind = HE_OP_LINEAR;
            *cost = 1;
            return lower_linear(nd, op);
        }
        op->kind = HE_OP_SIGN;
        op->sign = cdl_alloc_array(op->n_out, sizeof *op->sign);
        op->bias = cdl_alloc_array(op->n_out, sizeof *op->bias);
        if (!op->sign || !op->bias)
            return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory");
        for (size_t k = 0; k < op->n_out; k++) {
            op->sign[k] = nd->weight[k] < 0 ? -1 : 1;
            op->bias[k] = nd->bias[k];
        }
        return CDL_OK;
    }
    case CDL_NN_PAD:
    case CDL_NN_RESHAPE:
    case CDL_NN_SLICE:
        op->kind = HE_OP_GATHER;
        return lower_gather(nd, op);
    case CDL_NN_SQUARE:
        op->kind = HE_OP_SQUARE;
        *cost = 1;
        return CDL_OK;
    case CDL_NN_POLY: {
        int d = nd->degree;
        while (d > 0 && nd->coeffs[d] == 0.0)
            d--;
        if (d == 0)
            return cdl_fail(CDL_ERR_UNSUPPORTED,
                            "node '%s' (poly): the polynomial is a constant, so the output does not depend on the "
                            "input; retrain or remove the layer",
                            nd->name);
        if (d == 1) {
            op->kind = HE_OP_LINEAR;
            *cost = 1;
            return lower_linear(nd, op);
        }
        int k;
        if (poly_pow2k(nd->coeffs, d, &k)) {
            op->kind = HE_OP_POW2K;
            op->k = k;
            op->pow_sign = nd->coeffs[d];
            op->pow_c0 = nd->coeffs[0];
            *cost = k;
            return CDL_OK;
        }
        cdl_poly_eval_plan pp;
        CDL_TRY(cdl_poly_eval_plan_compute(nd->coeffs, d, &pp));
        op->kind = HE_OP_POLY;
        op->degree = d;
        op->coeffs = cdl_alloc_array((size_t)d + 1, sizeof *op->coeffs);
        if (!op->coeffs)
            return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory");
        memcpy(op->coeffs, nd->coeffs, ((size_t)d + 1) * sizeof *op->coeffs);
        *cost = pp.depth;
        return CDL_OK;
    }
    case CDL_NN_ADD:
    case CDL_NN_MUL:
        if (nd->n_inputs != 2)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "node '%s' (%s) needs two inputs, has %d", nd->name,
                            op->kind_name, nd->n_inputs);
        op->in_value2 = nd->inputs[1];
        if (nd->kind == CDL_NN_MUL) {
            op->kind = HE_OP_MUL;
            *cost = 1;
            return CDL_OK;
        }
        op->kind = HE_OP_ADD;
        op->alpha = nd->coeffs ? nd->coeffs[0] : 1.0;
        if (!isfinite(op->alpha) || op->alpha == 0.0)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "node '%s' (add): the factor %g of the second input must be a "
                            "nonzero finite number", nd->name, op->alpha);
        *cost = 0; /* set by count_levels, which knows the depths of both inputs */
        return CDL_OK;
    default:
        return cdl_fail(CDL_ERR_UNSUPPORTED, "node '%s' (%s, ONNX %s) cannot run encrypted: %s", nd->name,
                        op->kind_name, nd->onnx_op,
                        nd->he_reason[0] ? nd->he_reason : "not a polynomial operation");
    }
}

/* ---- parameters ------------------------------------------------------------ */

/* K special primes (hybrid key switching with digits of K primes: keys of
 * about 1/K the size, key switches with 1/K the NTTs) cost K - 1 more primes
 * of the modulus budget; fixed_log_n > 0 keeps that ring degree. */
static cdl_status choose_params_special(cdl_he_plan *p, int K, int fixed_log_n)
{
    const cdl_he_options *o = &p->opt;
    const int L = p->levels, h = o->output_bits;
    int lo = 13, hi = 16;
    if (fixed_log_n) {
        lo = hi = fixed_log_n;
    } else if (o->log_n) {
        if (o->log_n < CDL_CKKS_MIN_LOG_N || o->log_n > CDL_CKKS_MAX_LOG_N)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "he plan: log_n %d is outside %d..%d", o->log_n,
                            CDL_CKKS_MIN_LOG_N, CDL_CKKS_MAX_LOG_N);
        lo = hi = o->log_n;
    }
    if (L + 2 > CDL_CKKS_MAX_PRIMES)
        return cdl_fail(CDL_ERR_PARAMETERS, "he plan: the graph needs %d levels; at most %d are possible without "
                        "bootstrapping", L, CDL_CKKS_MAX_PRIMES - 2);
    char tried[256] = "";
    for (int log_n = lo; log_n <= hi; log_n++) {
        int budget = cdl_ckks_max_log_qp(log_n);
        int insecure = 0, s;
        if (o->scale_bits) {
            s = o->scale_bits;
        } else {
            s = budget > 0 ? (budget - (K + 1) * h) / (L + 1 + K) : 0;
            if (s > HE_MAX_SCALE_BITS)
                s = HE_MAX_SCALE_BITS;
            if (s > HE_MAX_PRIME_BITS - h)
                s = HE_MAX_PRIME_BITS - h;
        }
        int total = (L + 1 + K) * s + (K + 1) * h;
        if (budget <= 0 || total > budget || (!o->scale_bits && s < o->min_scale_bits)) {
            if (o->allow_insecure && log_n < 13) {
                if (!o->scale_bits)
                    s = 30;
                total = (L + 1 + K) * s + (K + 1) * h;
                insecure = 1;
            } else {
                size_t len = strlen(tried);
                snprintf(tried + len, sizeof tried - len, "%sN=2^%d: %d bits allowed, scale 2^%d", len ? "; " : "",
                         log_n, budget, s);
                continue;
            }
        }
        if (s < 20 || s + h > HE_MAX_PRIME_BITS)
            return cdl_fail(CDL_ERR_PARAMETERS,
                            "he plan: scale 2^%d with %d output bits needs primes of %d..%d bits; primes must have "
                            "20..%d bits",
                            s, h, s, s + h, HE_MAX_PRIME_BITS);
        cdl_ckks_param_spec *sp = &p->spec;
        memset(sp, 0, sizeof *sp);
        sp->log_n = log_n;
        sp->q_count = L + 1;
        sp->q_bits[0] = s + h;
        for (int l = 1; l <= L; l++)
            sp->q_bits[l] = s;
        sp->p_count = K;
        for (int k = 0; k < K; k++)
            sp->p_bits[k] = s + h;
        sp->dnum = 0;
        sp->scale = ldexp(1.0, s);
        sp->secret_hamming_weight = 0;
        sp->allow_insecure = insecure;
        p->insecure = insecure;
        p->scale = sp->scale;
        (void)total;
        return CDL_OK;
    }
    return cdl_fail(CDL_ERR_PARAMETERS,
                    "he plan: no 128-bit secure CKKS parameters hold %d levels with a scale of at least 2^%d and %d "
                    "output bits (%s); use fewer layers or lower-degree activations, lower --scale-bits / "
                    "min_scale_bits, or a larger log_n",
                    L, o->scale_bits ? o->scale_bits : o->min_scale_bits, h, tried);
}

static cdl_status choose_params(cdl_he_plan *p) { return choose_params_special(p, 1, 0); }

/* ---- memory ------------------------------------------------------------------ */

/* Peak ciphertext memory of cdl_he_evaluate, replaying its allocation order:
 * a ciphertext at level l holds 2 polynomials of l + 1 limbs (the runtime
 * shrinks every result to its level; the caller's fresh input batch has all
 * limbs and stays alive); a linear op, ADD and MUL hold their input(s) and
 * their output; other element-wise ops on a value nobody reads later work in
 * place; a value is freed after its last reader (either input of ADD / MUL). */
static void estimate_memory(cdl_he_plan *p, const int *last_reader)
{
    const uint64_t limb = 2ull * ((uint64_t)1 << p->spec.log_n) * 8ull; /* one limb of both polynomials */
    uint64_t *value_limbs = cdl_calloc_array(p->n_values ? p->n_values : 1, sizeof *value_limbs);
    uint64_t top = (uint64_t)p->spec.q_count;
    uint64_t live = p->value_size[0] * top * limb, peak = live;
    p->peak_node = -1;
    for (size_t i = 0; i < p->n_ops; i++) {
        const he_op *op = &p->ops[i];
        if (op->kind == HE_OP_SKIP)
            continue;
        const int v1 = op->in_value, v2 = op->in_value2 >= 0 && op->in_value2 != v1 ? op->in_value2 : -1;
        const uint64_t in_limbs = v1 == 0 || !value_limbs ? top : value_limbs[v1];
        const uint64_t in = p->value_size[v1] * in_limbs * limb;
        uint64_t in2 = 0;
        if (v2 >= 0)
            in2 = p->value_size[v2] * (v2 == 0 || !value_limbs ? top : value_limbs[v2]) * limb;
        const uint64_t out = op->n_out * (uint64_t)(op->level_out + 1) * limb;
        if (value_limbs && op->out_value >= 0 && (size_t)op->out_value < p->n_values)
            value_limbs[op->out_value] = (uint64_t)(op->level_out + 1);
        const int in_place = op->kind != HE_OP_LINEAR && op->kind != HE_OP_ADD && op->kind != HE_OP_MUL &&
                             op->last_use_of_input;
        uint64_t during = in_place ? live - in + (in > out ? in : out) : live + out;
        if (during > peak) {
            peak = during;
            p->peak_node = (int)i;
        }
        live = during;
        if (in_place) {
            if (in > out)
                live -= in - out;
            continue;
        }
        if (v1 != 0 && last_reader[v1] == (int)i && v1 != p->output_value)
            live -= in;
        if (v2 > 0 && last_reader[v2] == (int)i && v2 != p->output_value)
            live -= in2;
    }
    cdl_free(value_limbs);
    p->peak_bytes = peak;
}

uint64_t cdl_he_plan_memory(const cdl_he_plan *plan) { return plan ? plan->peak_bytes : 0; }

/* ---- the plan ---------------------------------------------------------------- */

/* ---- levels and scales ---------------------------------------------------------
 *
 * Two ciphertexts can be added only at the same level AND the same scale (the
 * CKKS layer refuses a relative difference above 1e-9). Dropping primes
 * (SEAL's mod_switch_to, OpenFHE's LevelReduce) lowers a level and keeps the
 * scale; a rescale divides the scale by the prime q_l it removes. The runtime
 * keeps most scales exact: a fresh input, a linear op's output (weights
 * encoded at S q_l / s_in) and a polynomial's output (evaluated to out_scale
 * S) have exactly S; x^2 and a*x^(2^k) divide by the primes they rescale by
 * (s^2 / q_l), so after them the scale is S times a drift of about 1e-4 that
 * depends on the path.
 *
 * Each value gets a scale key: 0 = exactly S, else a hash of how its scale
 * was made (op, input keys, depth: the depth names the prime divided by), so
 * that equal keys mean bit-identical scales (the runtime computes them with
 * the same double operations; a hash collision would be refused by the CKKS
 * layer's check, never mis-added).
 *
 * ADD a + alpha b (out depth max(da, db) when the depths differ): the
 * shallower input x is multiplied by the constant 1 (alpha for b) encoded at
 * scale T q_l / s_x, T the other input's scale, and rescaled: it then has
 * scale T exactly (up to the rounding of that constant, ~2^-30 relative) at
 * level l - 1, and its remaining extra primes are dropped. This costs the
 * shallower branch one level, which it has to spare, and the graph nothing
 * (as CryptoNets-style "multiply by 1 at the right scale"; Kim, Papadimitriou,
 * Polyakov, CT-RSA 2022, align scales the same way). With equal depths and
 * equal keys the two are added as they are; with equal depths and different
 * keys one of them is aligned that way and the other loses a prime by a drop:
 * 1 level. alpha = +-1 is a sign (add / sub); another alpha costs nothing
 * either: folded into the aligning constant, or read off b's scale (b at scale
 * s is alpha b at scale s / |alpha|).
 *
 * MUL a .* b needs equal levels only (a product's scale is s_a s_b, whatever
 * they are): the shallower input is dropped to the deeper one's level, then
 * multiplied, relinearized and rescaled: max(da, db) + 1. */

static uint64_t key_mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h ? h : 1; /* 0 is reserved for "exactly S" */
}

static uint64_t key_double(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* ADD: which input to align (adjust_a / adjust_b), the output depth and its scale key. */
static void plan_add(he_op *op, int da, int db, uint64_t ka, uint64_t kb, int *depth_out, uint64_t *key_out)
{
    const double aa = fabs(op->alpha);
    const uint64_t kb_alpha = aa == 1.0 ? kb : key_mix(key_mix(5, kb), key_double(aa)); /* scale of alpha b */
    op->adjust_a = op->adjust_b = 0;
    if (da > db) { /* b is shallower: aligned to a's scale */
        op->adjust_b = 1;
        *depth_out = da;
        *key_out = ka;
    } else if (db > da) {
        op->adjust_a = 1;
        *depth_out = db;
        *key_out = kb_alpha;
    } else if (ka == kb_alpha) { /* same level, same scale: a plain addition */
        *depth_out = da;
        *key_out = ka;
    } else { /* same level, scales that may differ: align one (preferring an exact-S result) */
        if (ka != 0 && kb_alpha == 0) {
            op->adjust_a = 1;
            *key_out = kb_alpha;
        } else {
            op->adjust_b = 1;
            *key_out = ka;
        }
        *depth_out = da + 1;
    }
    op->cost = *depth_out - (da > db ? da : db);
}

/* Depth (levels consumed from the input) of every value the ops compute, the
 * last op reading each value (-1: none; either input of ADD / MUL), and the
 * levels of the output. Sets the cost and the alignment of ADD ops. */
static int count_levels(cdl_he_plan *p, int *depth, int *last_reader, uint64_t *key)
{
    for (size_t v = 0; v < p->n_values; v++) {
        depth[v] = 0;
        last_reader[v] = -1;
        key[v] = 0;
    }
    for (size_t i = 0; i < p->n_ops; i++) {
        he_op *op = &p->ops[i];
        if (op->kind == HE_OP_SKIP)
            continue;
        const int a = op->in_value, b = op->in_value2, o = op->out_value;
        last_reader[a] = (int)i;
        if (b >= 0)
            last_reader[b] = (int)i;
        switch (op->kind) {
        case HE_OP_ADD:
            plan_add(op, depth[a], depth[b], key[a], key[b], &depth[o], &key[o]);
            break;
        case HE_OP_MUL: {
            const int d = depth[a] > depth[b] ? depth[a] : depth[b];
            const uint64_t k1 = key[a] < key[b] ? key[a] : key[b], k2 = key[a] < key[b] ? key[b] : key[a];
            depth[o] = d + 1;
            key[o] = key_mix(key_mix(key_mix(4, k1), k2), (uint64_t)d);
            break;
        }
        case HE_OP_SQUARE:
        case HE_OP_POW2K:
            depth[o] = depth[a] + op->cost;
            key[o] = key_mix(key_mix(key_mix(op->kind == HE_OP_SQUARE ? 2 : 3, key[a]), (uint64_t)depth[a]),
                             op->kind == HE_OP_SQUARE ? 0 : key_mix((uint64_t)op->k, key_double(fabs(op->pow_sign))));
            break;
        case HE_OP_GATHER:
        case HE_OP_SIGN:
            depth[o] = depth[a] + op->cost;
            key[o] = key[a];
            break;
        default: /* LINEAR, POLY: exactly S */
            depth[o] = depth[a] + op->cost;
            key[o] = 0;
            break;
        }
    }
    return depth[p->output_value];
}

/* ---- packing ------------------------------------------------------------------ */

/* Bytes of one key-switching key of the plan's parameters (dnum digits of
 * two polynomials over all primes), plus the rotation's cached permutation. */
uint64_t cdl_he_ksk_bytes(const cdl_he_plan *p, int rotation, int level)
{
    const cdl_ckks_param_spec *sp = &p->spec;
    const uint64_t n = (uint64_t)1 << sp->log_n;
    /* as cdl_ckks_context_new: digits of alpha primes; a key truncated to `level` keeps the digits and
     * primes of levels 0..level (cdl_ckks_keygen_galois_levels) */
    const int d0 = sp->dnum ? sp->dnum : (sp->q_count + sp->p_count - 1) / sp->p_count;
    const int alpha = (sp->q_count + d0 - 1) / d0, dnum = (level + alpha) / alpha;
    return (uint64_t)dnum * 2 * (uint64_t)(level + 1 + sp->p_count) * n * 8 + (rotation ? n * 4 : 0);
}

static uint64_t physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size : 0;
}

/* Peak memory of one slots evaluation: live tensors (a few ciphertexts each,
 * at their level), the hoisted baby-step copies and giant-step parts of the
 * linear ops being run (all twins of a step at once), and the evaluation
 * keys. Follows the schedule (he_schedule.c). */
static cdl_status estimate_slots_memory(cdl_he_plan *p)
{
    const uint64_t limb = 2ull * ((uint64_t)1 << p->spec.log_n) * 8ull;
    uint64_t live = p->input_cts * (uint64_t)p->spec.q_count * limb, peak = live;
    size_t *last_step = cdl_calloc_array(p->n_values ? p->n_values : 1, sizeof *last_step);
    if (!last_step)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory");
    for (size_t s = 0; s < p->n_steps; s++)
        for (size_t k = p->step_off[s]; k < p->step_off[s + 1]; k++) {
            const he_op *op = &p->ops[p->sched[k]];
            last_step[op->in_value] = s;
            if (op->in_value2 >= 0)
                last_step[op->in_value2] = s;
        }
    p->peak_node = -1;
    for (size_t s = 0; s < p->n_steps; s++) {
        uint64_t out = 0, extra = 0;
        for (size_t k = p->step_off[s]; k < p->step_off[s + 1]; k++) {
            const he_op *op = &p->ops[p->sched[k]];
            out += p->layout[op->out_value].n_ct * (uint64_t)(op->level_out + 1) * limb;
            if (op->kind == HE_OP_LINEAR && op->sl)
                extra += (op->sl->hoisted + op->sl->n_giants + (op->sl->cyc_n ? op->sl->n_in_ct : 0)) *
                         (uint64_t)(op->level_in + 1) * limb;
        }
        if (live + out + extra > peak) {
            peak = live + out + extra;
            p->peak_node = (int)p->sched[p->step_off[s]];
        }
        live += out;
        for (size_t k = p->step_off[s]; k < p->step_off[s + 1]; k++) {
            const he_op *op = &p->ops[p->sched[k]];
            const int v1 = op->in_value, v2 = op->in_value2;
            if (v1 != 0 && last_step[v1] == s && v1 != p->output_value) {
                live -= p->layout[v1].n_ct * (uint64_t)(op->level_in + 1) * limb;
                last_step[v1] = SIZE_MAX; /* released once */
            }
            if (v2 > 0 && v2 != v1 && last_step[v2] == s && v2 != p->output_value) {
                live -= p->layout[v2].n_ct * (uint64_t)(op->level_in2 + 1) * limb;
                last_step[v2] = SIZE_MAX;
            }
        }
    }
    cdl_free(last_step);
    p->galois_bytes = 0;
    for (size_t i = 0; i < p->n_galois; i++)
        p->galois_bytes += cdl_he_ksk_bytes(p, 1, p->galois_levels[i]);
    p->weight_bytes = 0;
    for (size_t i = 0; i < p->n_ops; i++)
        if (p->ops[i].kind == HE_OP_LINEAR && p->ops[i].sl)
            p->weight_bytes += p->ops[i].sl->n_terms * (uint64_t)(p->ops[i].level_in + 1) * (limb / 2);
    uint64_t plan_bytes = 0; /* the diagonals' positions and weights the plan holds */
    for (size_t i = 0; i < p->n_ops; i++)
        if (p->ops[i].kind == HE_OP_LINEAR && p->ops[i].sl)
            plan_bytes += p->ops[i].sl->n_entries * (uint64_t)(sizeof(uint32_t) + sizeof(double));
    const uint64_t base = peak + p->galois_bytes + (p->cost.ct_mults ? cdl_he_ksk_bytes(p, 0, p->spec.q_count - 1) : 0) +
                          plan_bytes;
    /* kept weights that would not fit: encoded on the fly instead (said in the description) */
    const uint64_t budget = p->opt.memory_budget ? p->opt.memory_budget : physical_memory();
    if (p->opt.cache_weights && budget && base + p->weight_bytes > budget * 0.8) {
        p->opt.cache_weights = 0;
        p->weights_streamed = 1;
    }
    p->peak_bytes = base + (p->opt.cache_weights ? p->weight_bytes : 0);
    return CDL_OK;
}

/* Rough work of one evaluation in limb operations (N-word passes), for AUTO:
 * a key switch costs about (digits) x (L + 1 + K) NTTs, K special primes. */
static double work_estimate(const cdl_he_plan *p, int slots)
{
    /* batch packing keeps one special prime; slots packing's K special primes make digits of K primes */
    const double n = (double)((uint64_t)1 << p->spec.log_n), logn = p->spec.log_n, L = p->levels;
    const double K = slots ? p->spec.p_count : 1, digits = ceil((L + 1) / K);
    const double ks = digits * (L + 1 + K) * n * (logn + 2), limbs = L / 2 + 1;
    if (!slots)
        return (double)p->cost.const_mults * n * limbs + (double)p->cost.ct_mults * ks +
               (double)p->cost.rescales * n * logn * limbs;
    double ct_mults = 0;
    for (size_t i = 0; i < p->n_ops; i++) {
        const he_op *op = &p->ops[i];
        if (op->kind == HE_OP_SQUARE || op->kind == HE_OP_MUL)
            ct_mults += (double)p->layout[op->out_value].n_ct;
        else if (op->kind == HE_OP_POW2K)
            ct_mults += (double)p->layout[op->out_value].n_ct * op->k;
        else if (op->kind == HE_OP_POLY)
            ct_mults += (double)p->layout[op->out_value].n_ct * op->degree;
    }
    return ((double)p->rotations + HE_HOISTED_COST * (double)p->hoisted + ct_mults) * ks +
           (double)p->plain_mults * n * limbs * (logn + 2);
}

/* Slots packing runs linear ops from their diagonals: the CSR columns and
 * weights (as many again: 2.8 GB for the CIFAR-10 ResNet-9) are dropped. The
 * row offsets stay (the description counts the weights from them). */
static void drop_csr(cdl_he_plan *p)
{
    for (size_t i = 0; i < p->n_ops; i++) {
        he_op *op = &p->ops[i];
        if (op->kind != HE_OP_LINEAR || !op->sl)
            continue;
        cdl_free(op->col);
        cdl_free(op->w);
        op->col = NULL;
        op->w = NULL;
    }
}

/* Resolve the packing; for slots (or AUTO) compile the layouts and diagonals. */
static cdl_status choose_packing(cdl_he_plan *p, const cdl_nn_graph *g, const int *last_reader)
{
    const int want = p->opt.packing;
    if (want < CDL_HE_PACKING_BATCH || want > CDL_HE_PACKING_AUTO)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "he plan: packing %d is not batch (0), slots (1) or auto (2)", want);
    p->packing = CDL_HE_PACKING_BATCH;
    p->slots = (size_t)1 << (p->spec.log_n - 1);
    if (want == CDL_HE_PACKING_BATCH)
        return CDL_OK;
    const uint64_t batch_peak = p->peak_bytes;
    const int batch_node = p->peak_node;
    const cdl_ckks_param_spec batch_spec = p->spec;
    const double batch_scale = p->scale;
    /* Slots packing rotates: more special primes make the Galois keys smaller
     * and key switching cheaper, at the price of scale bits. Automatic: the
     * most (up to 4) that keep the scale at HE_SLOTS_MIN_SCALE_BITS or above
     * (or, with a forced scale, that still fit the budget), same ring. */
    int K = p->opt.special_primes;
    if (K < 0 || K > 8)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "he plan: special_primes %d is outside 0..8", K);
    if (K > 1) {
        CDL_TRY(choose_params_special(p, K, p->spec.log_n));
    } else if (K == 0) {
        for (int k = 4; k >= 2; k--) {
            if (choose_params_special(p, k, batch_spec.log_n) == CDL_OK &&
                (p->opt.scale_bits || p->spec.q_bits[1] >= HE_SLOTS_MIN_SCALE_BITS || p->levels == 0))
                break;
            p->spec = batch_spec;
            p->scale = batch_scale;
        }
    }
    cdl_status st = cdl_he_slots_compile(p, g);
    if (st != CDL_OK) {
        if (want == CDL_HE_PACKING_SLOTS)
            return st;
        snprintf(p->packing_reason, sizeof p->packing_reason, "auto: batch, because slots packing cannot run this "
                 "model (%.160s)", cdl_last_error());
        p->spec = batch_spec;
        p->scale = batch_scale;
        cdl_he_slots_free(p);
        return CDL_OK;
    }
    st = cdl_he_schedule(p);
    if (st == CDL_OK)
        st = estimate_slots_memory(p);
    if (st != CDL_OK)
        return st;
    if (want == CDL_HE_PACKING_SLOTS) {
        p->packing = CDL_HE_PACKING_SLOTS;
        drop_csr(p);
        return CDL_OK;
    }
    const uint64_t budget = p->opt.memory_budget ? p->opt.memory_budget : physical_memory();
    const size_t images = p->opt.images_hint ? p->opt.images_hint : 1;
    const double w_batch = work_estimate(p, 0) * (double)((images + p->slots - 1) / p->slots);
    const double w_slots = work_estimate(p, 1) * (double)((images + p->images - 1) / p->images);
    if (budget && batch_peak > budget * 0.8) {
        p->packing = CDL_HE_PACKING_SLOTS;
        snprintf(p->packing_reason, sizeof p->packing_reason,
                 "auto: slots, because batch packing needs %.1f MB, more than 80%% of the %.1f MB available",
                 batch_peak / 1e6, budget / 1e6);
    } else if (w_slots <= w_batch) {
        p->packing = CDL_HE_PACKING_SLOTS;
        snprintf(p->packing_reason, sizeof p->packing_reason,
                 "auto: slots, estimated %.2gx less work than batch for %zu image(s)", w_batch / w_slots, images);
    } else {
        snprintf(p->packing_reason, sizeof p->packing_reason,
                 "auto: batch, estimated %.2gx less work than slots for %zu image(s)", w_slots / w_batch, images);
    }
    if (p->packing == CDL_HE_PACKING_SLOTS)
        drop_csr(p);
    if (p->packing == CDL_HE_PACKING_BATCH) {
        p->spec = batch_spec;
        p->scale = batch_scale;
        cdl_he_slots_free(p);
        p->peak_bytes = batch_peak;
        p->peak_node = batch_node;
        p->galois_bytes = 0;
        p->rotations = p->hoisted = p->plain_mults = 0;
    }
    return CDL_OK;
}

cdl_status cdl_he_plan_new(const cdl_nn_graph *graph, const cdl_he_options *opt, cdl_he_plan **out)
{
    if (!graph || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_plan_new: graph and out must not be NULL");
    *out = NULL;
    if (graph->n_nodes == 0 || graph->output < 1 || (size_t)graph->output > graph->n_nodes)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_plan_new: the graph has no computed output");
    cdl_he_plan *p = cdl_calloc_array(1, sizeof *p);
    if (!p)
        return cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_plan_new: out of memory");
    if (opt)
        p->opt = *opt;
    else
        cdl_he_options_default(&p->opt);
    if (p->opt.min_scale_bits <= 0)
        p->opt.min_scale_bits = 26;
    if (p->opt.output_bits <= 0)
        p->opt.output_bits = 10;
    cdl_status st = CDL_OK;
    const size_t nv = graph->n_nodes + 1;
    int *depth = cdl_calloc_array(nv, sizeof *depth);
    char *needed = cdl_calloc_array(nv, 1);
    int *last_reader = cdl_alloc_array(nv, sizeof *last_reader);
    uint64_t *key = cdl_alloc_array(nv, sizeof *key);
    p->ops = cdl_calloc_array(graph->n_nodes, sizeof *p->ops);
    p->value_size = cdl_calloc_array(nv, sizeof *p->value_size);
    if (!depth || !needed || !last_reader || !key || !p->ops || !p->value_size) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_plan_new: out of memory");
        goto done;
    }
    p->n_ops = graph->n_nodes;
    p->n_values = nv;
    /* a trailing softmax is not a polynomial but does not change argmax: the
     * encrypted result is the logits before it */
    p->output_value = cdl_nn_graph_logits(graph, &p->dropped_softmax);
    if (p->output_value < 1) {
        st = cdl_fail(CDL_ERR_UNSUPPORTED, "cdl_he_plan_new: the graph is only a softmax of its input");
        goto done;
    }
    if (p->dropped_softmax)
        snprintf(p->dropped_name, sizeof p->dropped_name, "%s", graph->nodes[graph->output - 1].name);
    p->input_size = cdl_nn_input_size(graph);
    p->output_size = cdl_nn_shape_numel(cdl_nn_value_shape(graph, p->output_value));
    p->value_size[0] = p->input_size;
    /* which nodes the output depends on */
    needed[p->output_value] = 1;
    for (size_t i = graph->n_nodes; i-- > 0;)
        if (needed[i + 1])
            for (int k = 0; k < graph->nodes[i].n_inputs; k++)
                if (graph->nodes[i].inputs[k] >= 0 && (size_t)graph->nodes[i].inputs[k] < nv)
                    needed[graph->nodes[i].inputs[k]] = 1;
    for (size_t i = 0; i < graph->n_nodes; i++) {
        he_op *op = &p->ops[i];
        p->value_size[i + 1] = cdl_nn_shape_numel(&graph->nodes[i].out_shape);
        if (!needed[i + 1]) {
            op->kind = HE_OP_SKIP;
            op->node = (int)i;
            snprintf(op->name, sizeof op->name, "%s", graph->nodes[i].name);
            continue;
        }
        CDL_TRY_GOTO(st, lower_node(graph, i, op, &op->cost), done);
        if (op->in_value < 0 || (size_t)op->in_value > i) {
            st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "he plan: node '%s' reads value %d, not computed before it",
                          op->name, op->in_value);
            goto done;
        }
        if (op->n_in != p->value_size[op->in_value]) {
            st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "he plan: node '%s' expects %zu inputs but its input has %zu",
                          op->name, op->n_in, p->value_size[op->in_value]);
            goto done;
        }
        if ((op->kind == HE_OP_ADD || op->kind == HE_OP_MUL) &&
            (op->in_value2 < 0 || (size_t)op->in_value2 > i || p->value_size[op->in_value2] != op->n_in ||
             op->n_out != op->n_in)) {
            st = cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                          "he plan: node '%s' combines values %d and %d, which must both be computed before it and "
                          "have its %zu outputs",
                          op->name, op->in_value, op->in_value2, op->n_out);
            goto done;
        }
    }
    p->levels_unmerged = count_levels(p, depth, last_reader, key);
    CDL_TRY_GOTO(st, cdl_he_merge_linear(p, graph), done);
    p->levels = count_levels(p, depth, last_reader, key);
    for (size_t i = 0; i < p->n_ops; i++) {
        he_op *op = &p->ops[i];
        if (op->kind == HE_OP_SKIP)
            continue;
        op->level_in = p->levels - depth[op->in_value];
        op->level_out = p->levels - depth[op->out_value];
        op->level_in2 = op->in_value2 >= 0 ? p->levels - depth[op->in_value2] : 0;
        op->last_use_of_input = op->in_value != 0 && last_reader[op->in_value] == (int)i;
        cdl_he_cost *c = &p->cost;
        switch (op->kind) {
        case HE_OP_LINEAR: {
            size_t nnz = op->row[op->n_out];
            size_t nonempty = 0;
            for (size_t r = 0; r < op->n_out; r++)
                nonempty += op->row[r + 1] > op->row[r];
            c->const_mults += nnz;
            c->adds += nnz - nonempty;
            c->rescales += op->n_out;
            break;
        }
        case HE_OP_SQUARE:
            c->ct_mults += op->n_out;
            c->rescales += op->n_out;
            break;
        case HE_OP_POW2K:
            c->ct_mults += op->n_out * (uint64_t)op->k;
            c->rescales += op->n_out * (uint64_t)op->k;
            break;
        case HE_OP_ADD:
            c->adds += op->n_out;
            if (op->adjust_a || op->adjust_b) {
                c->const_mults += op->n_out;
                c->rescales += op->n_out;
            }
            break;
        case HE_OP_MUL:
            c->ct_mults += op->n_out;
            c->rescales += op->n_out;
            break;
        case HE_OP_POLY: {
            cdl_poly_eval_plan pp;
            if (cdl_poly_eval_plan_compute(op->coeffs, op->degree, &pp) == CDL_OK) {
                c->ct_mults += op->n_out * (uint64_t)pp.ct_mults;
                c->const_mults += op->n_out * (uint64_t)pp.const_mults;
                c->rescales += op->n_out * (uint64_t)pp.rescales;
            }
            break;
        }
        default: break;
        }
    }
    CDL_TRY_GOTO(st, choose_params(p), done);
    estimate_memory(p, last_reader);
    CDL_TRY_GOTO(st, choose_packing(p, graph, last_reader), done);
    if (p->packing == CDL_HE_PACKING_BATCH)
        for (size_t i = 0; i < p->n_ops; i++)
            if (p->ops[i].kind == HE_OP_LINEAR)
                CDL_TRY_GOTO(st, group_rows(&p->ops[i]), done);
done:
    cdl_free(depth);
    cdl_free(needed);
    cdl_free(last_reader);
    cdl_free(key);
    if (st != CDL_OK) {
        cdl_he_plan_free(p);
        return st;
    }
    *out = p;
    return CDL_OK;
}

void cdl_he_string_free(char *s) { free(s); }

const cdl_ckks_param_spec *cdl_he_plan_params(const cdl_he_plan *plan) { return plan ? &plan->spec : NULL; }
int cdl_he_plan_levels(const cdl_he_plan *plan) { return plan ? plan->levels : 0; }
size_t cdl_he_plan_input_size(const cdl_he_plan *plan) { return plan ? plan->input_size : 0; }
size_t cdl_he_plan_output_size(const cdl_he_plan *plan) { return plan ? plan->output_size : 0; }
size_t cdl_he_plan_batch_capacity(const cdl_he_plan *plan)
{
    if (!plan)
        return 0;
    return plan->packing == CDL_HE_PACKING_SLOTS ? plan->images : (size_t)1 << (plan->spec.log_n - 1);
}

uint64_t cdl_he_plan_galois_key_bytes(const cdl_he_plan *plan) { return plan ? plan->galois_bytes : 0; }
uint64_t cdl_he_plan_weight_bytes(const cdl_he_plan *plan) { return plan ? plan->weight_bytes : 0; }

uint64_t cdl_he_plan_galois_key_file_bytes(const cdl_he_plan *plan)
{
    if (!plan || !plan->n_galois)
        return 0;
    /* envelope, count / dnum / qp_count, a level per key when any is truncated, the elements, the keys */
    int truncated = 0;
    for (size_t i = 0; i < plan->n_galois; i++)
        truncated |= plan->galois_levels[i] != plan->spec.q_count - 1;
    const uint64_t n = (uint64_t)1 << plan->spec.log_n;
    uint64_t bytes = CDL_ENVELOPE_BYTES + 12 + (truncated ? 4 * (uint64_t)plan->n_galois : 0) + 8 * plan->n_galois;
    for (size_t i = 0; i < plan->n_galois; i++)
        bytes += cdl_he_ksk_bytes(plan, 1, plan->galois_levels[i]) - n * 4; /* without the in-memory permutation */
    return bytes;
}

cdl_status cdl_he_check_galois_keys(const cdl_he_plan *plan, const cdl_ckks_galois_keys *gk)
{
    if (!plan)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_check_galois_keys: NULL plan");
    if (!plan->n_galois)
        return CDL_OK;
    if (!gk)
        return cdl_fail(CDL_ERR_EXHAUSTED, "slots packing rotates ciphertexts: the client's Galois keys for the "
                        "plan's %zu rotation steps are needed (cdl_he_keygen_galois)", plan->n_galois);
    size_t missing = 0;
    int first = 0, low = -1;
    for (size_t i = 0; i < plan->n_galois; i++) {
        const int level = cdl_ckks_galois_keys_step_level(gk, plan->galois_steps[i]);
        if (level < 0 && missing++ == 0)
            first = plan->galois_steps[i];
        else if (level >= 0 && level < plan->galois_levels[i] && low < 0)
            low = (int)i;
    }
    if (missing)
        return cdl_fail(CDL_ERR_MISMATCH,
                        "the Galois keys lack rotation step %d and %zu more of the plan's %zu; generate them for this "
                        "plan (same model, same --packing and parameters)", first, missing - 1, plan->n_galois);
    if (low >= 0)
        return cdl_fail(CDL_ERR_MISMATCH,
                        "the Galois key for rotation step %d serves levels 0..%d, the plan rotates by it at level %d; "
                        "generate the keys for this plan", plan->galois_steps[low],
                        cdl_ckks_galois_keys_step_level(gk, plan->galois_steps[low]), plan->galois_levels[low]);
    return CDL_OK;
}

cdl_he_packing cdl_he_plan_packing(const cdl_he_plan *plan)
{
    return plan && plan->packing == CDL_HE_PACKING_SLOTS ? CDL_HE_PACKING_SLOTS : CDL_HE_PACKING_BATCH;
}

const char *cdl_he_plan_packing_reason(const cdl_he_plan *plan) { return plan ? plan->packing_reason : ""; }

size_t cdl_he_plan_input_ciphertexts(const cdl_he_plan *plan)
{
    if (!plan)
        return 0;
    return plan->packing == CDL_HE_PACKING_SLOTS ? plan->input_cts : plan->input_size;
}

size_t cdl_he_plan_output_ciphertexts(const cdl_he_plan *plan)
{
    if (!plan)
        return 0;
    return plan->packing == CDL_HE_PACKING_SLOTS ? plan->layout[plan->output_value].n_ct : plan->output_size;
}

void cdl_he_plan_galois_steps(const cdl_he_plan *plan, const int **steps, size_t *count)
{
    if (steps)
        *steps = plan ? plan->galois_steps : NULL;
    if (count)
        *count = plan ? plan->n_galois : 0;
}

void cdl_he_plan_rotations(const cdl_he_plan *plan, uint64_t *rotations, uint64_t *hoisted, uint64_t *plain_mults)
{
    if (rotations)
        *rotations = plan ? plan->rotations : 0;
    if (hoisted)
        *hoisted = plan ? plan->hoisted : 0;
    if (plain_mults)
        *plain_mults = plan ? plan->plain_mults : 0;
}

cdl_status cdl_he_keygen_galois(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                cdl_rng *rng, cdl_ckks_galois_keys **out)
{
    if (!plan || !ctx || !sk || !rng || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_keygen_galois: NULL argument");
    if (cdl_ckks_log_n(ctx) != plan->spec.log_n)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_he_keygen_galois: the context is not the plan's");
    return cdl_ckks_keygen_galois_levels(ctx, sk, plan->galois_steps, plan->galois_levels, plan->n_galois, 0, rng,
                                         out);
}

void cdl_he_plan_cost(const cdl_he_plan *plan, cdl_he_cost *cost)
{
    if (!cost)
        return;
    memset(cost, 0, sizeof *cost);
    if (plan)
        *cost = plan->cost;
}

cdl_status cdl_he_context_new(const cdl_he_plan *plan, cdl_ckks_context **out)
{
    if (!plan || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_context_new: plan and out must not be NULL");
    return cdl_ckks_context_new(&plan->spec, out);
}

/* ---- description ------------------------------------------------------------ */

typedef struct text_buf {
    char *s;
    size_t len, cap;
    int oom;
} text_buf;

static void tb_printf(text_buf *t, const char *fmt, ...) CDL_PRINTF(2, 3);
static void tb_printf(text_buf *t, const char *fmt, ...)
{
    if (t->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->oom = 1;
            return;
        }
        if (t->s && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? t->cap * 2 : 4096) + (size_t)n;
        char *s = malloc(cap);
        if (!s) {
            t->oom = 1;
            return;
        }
        if (t->s)
            memcpy(s, t->s, t->len + 1);
        else
            s[0] = '\0';
        free(t->s);
        t->s = s;
        t->cap = cap;
    }
}

static const char *op_kind_text(he_op_kind k)
{
    switch (k) {
    case HE_OP_LINEAR: return "linear";
    case HE_OP_GATHER: return "move";
    case HE_OP_SIGN: return "sign+bias";
    case HE_OP_SQUARE: return "x^2";
    case HE_OP_POW2K: return "a*x^(2^k)+c";
    case HE_OP_POLY: return "polynomial";
    case HE_OP_ADD: return "a + b";
    case HE_OP_MUL: return "a * b";
    default: return "unused";
    }
}

static const char *value_name(const cdl_he_plan *plan, int v)
{
    return v <= 0 || (size_t)v > plan->n_ops ? "input" : plan->ops[v - 1].name;
}

/* How an input of ADD / MUL reaches the level it is combined at. */
static const char *align_text(const he_op *op, int level, int adjust)
{
    const int at = op->kind == HE_OP_MUL ? op->level_out + 1 : op->level_out;
    if (adjust)
        return ", x const at the other's scale + rescale";
    return level > at ? ", primes dropped" : "";
}

/* A rough single-thread time model for the slots plan description: a key
 * switch at level l costs ~60 us x (l + 1)(l + 2) at N = 2^14 (one-prime
 * digits; ~5 ms at 8 levels, as measured by `cryptodl bench ckks`), encoding
 * one plaintext and multiplying ~100 us + 30 us per prime; both scale with N. */
static double slots_op_seconds(const cdl_he_plan *p, const he_op *op)
{
    const double nf = (double)((uint64_t)1 << p->spec.log_n) / 16384.0, l = op->level_in;
    const double ks = 60e-6 * nf * (l + 1) * (l + 2), pt = nf * (100e-6 + 30e-6 * (l + 1));
    const double cts = (double)p->layout[op->out_value].n_ct;
    switch (op->kind) {
    case HE_OP_LINEAR:
        return op->sl ? ((double)he_slot_linear_rotations(op->sl) + HE_HOISTED_COST * (double)op->sl->hoisted) * ks +
                            (double)op->sl->n_terms * pt
                      : 0;
    case HE_OP_SQUARE:
    case HE_OP_MUL: return cts * ks;
    case HE_OP_POW2K: return cts * op->k * ks;
    case HE_OP_POLY: return cts * op->degree * ks;
    default: return 0;
    }
}

size_t cdl_he_plan_layer_count(const cdl_he_plan *plan)
{
    size_t n = 0;
    for (size_t i = 0; plan && i < plan->n_ops; i++)
        n += plan->ops[i].kind != HE_OP_SKIP;
    return n;
}

cdl_status cdl_he_plan_layer(const cdl_he_plan *plan, size_t i, cdl_he_layer_info *out)
{
    if (!plan || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_plan_layer: NULL argument");
    memset(out, 0, sizeof *out);
    size_t k = 0;
    for (size_t j = 0; j < plan->n_ops; j++) {
        const he_op *op = &plan->ops[j];
        if (op->kind == HE_OP_SKIP || k++ != i)
            continue;
        const int slots = plan->packing == CDL_HE_PACKING_SLOTS;
        out->name = op->name;
        out->op = op_kind_text(op->kind);
        out->values = op->n_out;
        out->level_in = op->level_in;
        out->level_out = op->level_out;
        out->ciphertexts = slots ? plan->layout[op->out_value].n_ct : op->n_out;
        if (slots && plan->layout[op->out_value].framed) {
            out->gap = plan->layout[op->out_value].gap;
            out->frame_h = plan->layout[op->out_value].frame_h;
            out->frame_w = plan->layout[op->out_value].frame_w;
        }
        if (slots && op->kind == HE_OP_LINEAR && op->sl) {
            out->rotations = he_slot_linear_rotations(op->sl);
            out->hoisted = op->sl->hoisted;
            out->plain_mults = op->sl->n_terms;
        }
        out->est_seconds = slots ? slots_op_seconds(plan, op) : 0.0;
        return CDL_OK;
    }
    return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_plan_layer: layer %zu of %zu", i, k);
}

cdl_status cdl_he_plan_describe(const cdl_he_plan *plan, char **text)
{
    if (!plan || !text)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_plan_describe: plan and text must not be NULL");
    text_buf t = {0};
    const cdl_ckks_param_spec *sp = &plan->spec;
    const int slots = plan->packing == CDL_HE_PACKING_SLOTS;
    if (slots)
        tb_printf(&t, "HE plan: slots (one image across the %zu slots; the layout repeats every %zu slots: %zu image(s) "
                  "per ciphertext)\n", plan->slots, plan->period, plan->images);
    else
        tb_printf(&t, "HE plan: batch-SIMD (one image per slot, up to %zu images per batch)\n",
                  cdl_he_plan_batch_capacity(plan));
    if (plan->packing_reason[0])
        tb_printf(&t, "packing: %s\n", plan->packing_reason);
    tb_printf(&t, "  #  node                 layer    HE op              values  level   weights\n");
    double est_total = 0;
    for (size_t i = 0; i < plan->n_ops; i++) {
        const he_op *op = &plan->ops[i];
        if (op->kind == HE_OP_SKIP)
            continue;
        char kind[32];
        if (op->kind == HE_OP_LINEAR && op->n_linear > 1)
            snprintf(kind, sizeof kind, "linear (%d merged)", op->n_linear);
        else if (op->kind == HE_OP_ADD && op->alpha == -1.0)
            snprintf(kind, sizeof kind, "a - b");
        else if (op->kind == HE_OP_ADD && op->alpha != 1.0)
            snprintf(kind, sizeof kind, "a + %g b", op->alpha);
        else
            snprintf(kind, sizeof kind, "%s", op_kind_text(op->kind));
        tb_printf(&t, "%3zu  %-20.20s %-8s %-17s %7zu  %d->%d", i + 1, op->name, op->kind_name ? op->kind_name : "",
                  kind, op->n_out, op->level_in, op->level_out);
        if (op->kind == HE_OP_LINEAR)
            tb_printf(&t, "   %zu nonzero", op->row[op->n_out]);
        tb_printf(&t, "\n");
        if (slots) { /* the output layout, and the rotations and products of a linear op */
            const he_layout *l = &plan->layout[op->out_value];
            const double est = slots_op_seconds(plan, op);
            est_total += est;
            tb_printf(&t, "       slots: %zu ciphertext(s)", l->n_ct);
            if (l->framed)
                tb_printf(&t, ", frames %dx%d of %zu slots, gap %d", l->frame_h, l->frame_w, l->frame_size, l->gap);
            if (op->kind == HE_OP_LINEAR && op->sl)
                tb_printf(&t, "; %llu rotations + %llu hoisted, %zu ct x pt%s",
                          (unsigned long long)he_slot_linear_rotations(op->sl), (unsigned long long)op->sl->hoisted,
                          op->sl->n_terms, op->sl->cyc_n ? " (input replicated: cyclic diagonals)" : "");
            if (op->slot_sign_fix)
                tb_printf(&t, "; %s aligned by a +-1 plaintext (its slots hold other signs)",
                          op->slot_sign_fix == 1 ? "a" : "b");
            tb_printf(&t, "; ~%.0f ms\n", est * 1e3);
        }
        if (op->chain) /* nodes composed into this op (he_merge.c) */
            tb_printf(&t, "       = %s\n", op->chain);
        if (op->kind == HE_OP_ADD || op->kind == HE_OP_MUL) /* the two inputs and how they are aligned */
            tb_printf(&t, "       a = %s (level %d%s), b = %s (level %d%s)\n", value_name(plan, op->in_value),
                      op->level_in, align_text(op, op->level_in, op->adjust_a), value_name(plan, op->in_value2),
                      op->level_in2, align_text(op, op->level_in2, op->adjust_b));
    }
    int total = 0;
    for (int i = 0; i < sp->q_count; i++)
        total += sp->q_bits[i];
    for (int i = 0; i < sp->p_count; i++)
        total += sp->p_bits[i];
    tb_printf(&t, "levels: %d", plan->levels);
    if (plan->levels_unmerged > plan->levels)
        tb_printf(&t, " (%d without merging consecutive linear layers)", plan->levels_unmerged);
    tb_printf(&t, "\n");
    if (plan->dropped_softmax)
        tb_printf(&t,
                  "output: the logits before the trailing softmax '%s' (%zu node(s) not evaluated: not a polynomial, "
                  "argmax unchanged); apply softmax after decryption if probabilities are needed\n",
                  plan->dropped_name, plan->dropped_softmax);
    tb_printf(&t, "CKKS: N = 2^%d, %d ciphertext primes (", sp->log_n, sp->q_count);
    for (int i = 0; i < sp->q_count; i++)
        tb_printf(&t, "%s%d", i ? "+" : "", sp->q_bits[i]);
    tb_printf(&t, " bits) + %d special (%d bits), log QP = %d (128-bit limit %d)%s, scale 2^%d\n", sp->p_count,
              sp->p_bits[0], total, cdl_ckks_max_log_qp(sp->log_n),
              plan->insecure ? " INSECURE (testing only)" : "", (int)lround(log2(sp->scale)));
    tb_printf(&t, "logits must stay below 2^%d in absolute value\n", plan->opt.output_bits - 1);
    tb_printf(&t,
              "cost per batch: %llu ciphertext x scalar, %llu additions, %llu ciphertext x ciphertext "
              "(relinearized), %llu rescales\n",
              (unsigned long long)plan->cost.const_mults, (unsigned long long)plan->cost.adds,
              (unsigned long long)plan->cost.ct_mults, (unsigned long long)plan->cost.rescales);
    if (slots) {
        { /* composed rotations (a key budget), at a middle level */
            const double nf = (double)((uint64_t)1 << sp->log_n) / 16384.0, l = plan->levels / 2.0;
            est_total += (double)plan->composed_rotations * 60e-6 * nf * (l + 1) * (l + 2);
        }
        tb_printf(&t, "cost per request: %llu rotations + %llu hoisted, %llu ciphertext x plaintext; estimated %.2f s on "
                  "one thread (a rough model, not a measurement)\n", (unsigned long long)plan->rotations,
                  (unsigned long long)plan->hoisted, (unsigned long long)plan->plain_mults, est_total);
        tb_printf(&t, "keys the server needs: relinearization + Galois keys for %zu rotation steps (%.1f MB)\n",
                  plan->n_galois, plan->galois_bytes / 1e6);
        if (plan->composed_rotations) {
            char budget[96];
            if (plan->opt.max_galois_keys && plan->opt.max_galois_bytes)
                snprintf(budget, sizeof budget, "at most %d Galois keys and %.0f MB", plan->opt.max_galois_keys,
                         plan->opt.max_galois_bytes / 1e6);
            else if (plan->opt.max_galois_keys)
                snprintf(budget, sizeof budget, "at most %d Galois keys", plan->opt.max_galois_keys);
            else
                snprintf(budget, sizeof budget, "at most %.0f MB of Galois keys", plan->opt.max_galois_bytes / 1e6);
            tb_printf(&t, "key budget: %s, so the steps without a key are composed (of two keyed steps when the "
                      "keys allow, else of rotations by +-2^k): at most %llu more rotations per request\n", budget,
                      (unsigned long long)plan->composed_rotations);
        }
        tb_printf(&t, "weights: %s (encoded, they take %.1f MB at the levels they are used)\n",
                  plan->opt.cache_weights ? "encoded once and kept in memory"
                  : plan->weights_streamed ? "encoded on the fly at each evaluation, because kept they would not fit "
                                             "80% of this machine's memory"
                                           : "encoded on the fly at each evaluation",
                  plan->weight_bytes / 1e6);
        for (size_t i = 0; i < plan->n_ops; i++)
            if (plan->ops[i].client_input)
                tb_printf(&t, "client-side move: node '%s' reads the input, which other nodes read too: the client "
                          "encrypts its result itself (%zu more ciphertext(s) per request, ciphertexts %zu..)\n",
                          plan->ops[i].name, plan->layout[plan->ops[i].out_value].n_ct, plan->ops[i].client_ct);
        if (plan->twin_steps) {
            size_t ops = 0;
            for (size_t k = 0; k < plan->n_steps; k++)
                if (plan->step_off[k + 1] - plan->step_off[k] > 1)
                    ops += plan->step_off[k + 1] - plan->step_off[k];
            tb_printf(&t, "twins: %zu linear ops with the same weights and layout run in %zu steps, each diagonal "
                      "encoded once for all of a step's ops\n", ops, plan->twin_steps);
        } else if (!plan->opt.separate_twins) {
            tb_printf(&t, "twins: none (no two linear ops have the same weights and layout)\n");
        }
        tb_printf(&t, "galois steps:");
        for (size_t i = 0; i < plan->n_galois; i++)
            tb_printf(&t, " %d", plan->galois_steps[i]);
        tb_printf(&t, "\n");
    } else {
        tb_printf(&t, "keys the server needs: relinearization only (no rotations)\n");
    }
    tb_printf(&t, "peak %s memory of one evaluation: %.2f GB (at node %d%s%s), one ciphertext %.2f MB\n",
              slots ? "ciphertext + key" : "ciphertext",
              plan->peak_bytes / 1e9, plan->peak_node + 1, plan->peak_node >= 0 ? " " : "",
              plan->peak_node >= 0 ? plan->ops[plan->peak_node].name : "",
              2.0 * sp->q_count * (double)((uint64_t)1 << sp->log_n) * 8 / 1e6);
    if (t.oom) {
        free(t.s);
        return cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_plan_describe: out of memory");
    }
    *text = t.s;
    return CDL_OK;
}
