/*
 * optimize.c: IR rewrites that save CKKS levels without changing results.
 *
 * An elementwise affine map y = s .* x + t (a BatchNormalization that could
 * not be folded at import, a Mul/Add by constant tensors, or a degree-1
 * polynomial) costs one level on its own, but is free when merged with the
 * plaintext weights of a neighbouring linear layer:
 *   - backward, into the conv/dense that produces x (per output channel):
 *       W'[o] = s_o W[o],  b'[o] = s_o b[o] + t_o;
 *   - forward, into the dense (possibly behind reshapes) or the unpadded conv
 *     that consumes y:  W' = W diag(s),  b' = b + W t.
 * A merge only happens when the linear layer is the affine node's only
 * neighbour on that side (single consumer), so no other path sees the change.
 * Chains of reshapes are also collapsed and unread nodes dropped.
 */
#include <math.h>
#include <string.h>

#include "core/memory.h"
#include "cryptodl/nn.h"
#include "nn/nn_internal.h"

static int consumers(const cdl_nn_graph *g, int value, int *only)
{
    int c = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++)
            if (g->nodes[i].inputs[k] == value) {
                c++;
                *only = (int)i;
            }
    if (g->output == value)
        c += 2; /* the graph output must keep its exact value */
    return c;
}

/* Scale and shift of node i as full-size arrays views; returns 0 if it is
 * not an elementwise affine map. For POLY of degree <= 1 the scalars are
 * returned with *scalar = 1. */
static int affine_view(const cdl_nn_node *nd, const double **s, const double **t, double *s0, double *t0, int *scalar)
{
    if (nd->kind == CDL_NN_AFFINE) {
        *s = nd->weight;
        *t = nd->bias;
        *scalar = 0;
        return 1;
    }
    if (nd->kind == CDL_NN_POLY && nd->degree <= 1) {
        *s0 = nd->degree >= 1 ? nd->coeffs[1] : 0.0;
        *t0 = nd->coeffs[0];
        *scalar = 1;
        return 1;
    }
    return 0;
}

#define S_AT(i) (scalar ? s0 : s[i])
#define T_AT(i) (scalar ? t0 : t[i])

/* Remove node idx; its output value becomes its first input. */
static void remove_node(cdl_nn_graph *g, size_t idx)
{
    const int r = (int)idx + 1, repl = g->nodes[idx].inputs[0];
    cdl_nn_node_clear(&g->nodes[idx]);
    memmove(&g->nodes[idx], &g->nodes[idx + 1], (g->n_nodes - idx - 1) * sizeof *g->nodes);
    g->n_nodes--;
    for (size_t i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_inputs; k++) {
            int *v = &g->nodes[i].inputs[k];
            *v = *v == r ? repl : (*v > r ? *v - 1 : *v);
        }
    g->output = g->output == r ? repl : (g->output > r ? g->output - 1 : g->output);
}

static int per_channel(const double *a, size_t channels, size_t inner)
{
    for (size_t c = 0; c < channels; c++)
        for (size_t i = 1; i < inner; i++)
            if (a[c * inner + i] != a[c * inner])
                return 0;
    return 1;
}

static int try_backward(cdl_nn_graph *g, size_t i)
{
    cdl_nn_node *af = &g->nodes[i];
    const double *s = NULL, *t = NULL;
    double s0 = 0, t0 = 0;
    int scalar, only = -1;
    if (!affine_view(af, &s, &t, &s0, &t0, &scalar))
        return 0;
    int in = af->inputs[0];
    if (in <= 0 || consumers(g, in, &only) != 1)
        return 0;
    cdl_nn_node *lin = &g->nodes[in - 1];
    if ((lin->kind != CDL_NN_CONV && lin->kind != CDL_NN_DENSE) || !lin->bias || !lin->weight)
        return 0;
    const size_t O = lin->n_bias, numel = cdl_nn_shape_numel(&lin->out_shape), inner = numel / O;
    if (!scalar && (!per_channel(s, O, inner) || !per_channel(t, O, inner)))
        return 0;
    const size_t row = lin->n_weight / O;
    for (size_t o = 0; o < O; o++) {
        double a = S_AT(o * inner), c = T_AT(o * inner);
        for (size_t k = 0; k < row; k++)
            lin->weight[o * row + k] *= a;
        lin->bias[o] = lin->bias[o] * a + c;
    }
    remove_node(g, i);
    return 1;
}

/* The linear layer that alone consumes value v (through single-consumer
 * reshapes), if an affine map on v can be merged into it; else NULL. */
static cdl_nn_node *forward_target(cdl_nn_graph *g, int v)
{
    int only = -1;
    for (;;) {
        if (consumers(g, v, &only) != 1)
            return NULL;
        cdl_nn_node *nx = &g->nodes[only];
        if (nx->kind == CDL_NN_RESHAPE) {
            v = only + 1;
            continue;
        }
        if (!nx->bias || !nx->weight)
            return NULL;
        if (nx->kind == CDL_NN_DENSE)
            return nx;
        if (nx->kind == CDL_NN_CONV && !(nx->pads[0] | nx->pads[1] | nx->pads[2] | nx->pads[3]))
            return nx;
        return NULL;
    }
}

/* Merge y = s .* x + t (K values) into the layer lin that consumes y.
 * Returns 0 (and changes nothing) if a conv would need a non-per-channel map. */
static int apply_forward(cdl_nn_node *lin, size_t K, int scalar, const double *s, const double *t, double s0,
                         double t0)
{
    if (lin->kind == CDL_NN_DENSE) {
        const size_t O = lin->n_bias;
        for (size_t o = 0; o < O; o++) {
            double *w = lin->weight + o * K, add = 0;
            for (size_t k = 0; k < K; k++) {
                add += w[k] * T_AT(k);
                w[k] *= S_AT(k);
            }
            lin->bias[o] += add;
        }
        return 1;
    }
    const size_t C = (size_t)lin->in_shape.dims[0], inner = K / C, O = lin->n_bias, kk = lin->n_weight / (O * C);
    if (!scalar && (!per_channel(s, C, inner) || !per_channel(t, C, inner)))
        return 0;
    for (size_t o = 0; o < O; o++) {
        double add = 0;
        for (size_t c = 0; c < C; c++) {
            double *w = lin->weight + (o * C + c) * kk;
            for (size_t k = 0; k < kk; k++) {
                add += w[k] * T_AT(c * inner);
                w[k] *= S_AT(c * inner);
            }
        }
        lin->bias[o] += add;
    }
    return 1;
}

static int try_forward(cdl_nn_graph *g, size_t i)
{
    cdl_nn_node *af = &g->nodes[i];
    const double *s = NULL, *t = NULL;
    double s0 = 0, t0 = 0;
    int scalar;
    if (!affine_view(af, &s, &t, &s0, &t0, &scalar))
        return 0;
    cdl_nn_node *lin = forward_target(g, (int)i + 1);
    if (!lin || !apply_forward(lin, cdl_nn_shape_numel(&af->out_shape), scalar, s, t, s0, t0))
        return 0;
    remove_node(g, i);
    return 1;
}

#define CDL_NN_MAX_SQUARE_SHIFT 10.0

/*
 * Completing the square: a quadratic activation a x^2 + b x + c right after
 * a conv/dense layer (its only consumer) equals sign(a) (r x + beta)^2 + d
 * with r = sqrt|a|, beta = sign(a) b / (2 r), d = c - b^2 / (4 a). The
 * affine part r x + beta is merged into the layer's weights, leaving
 * sign(a) u^2 + d: one ciphertext square (1 level) instead of a general
 * quadratic (2 levels); the outer sign and d fold forward when they can.
 */
static int try_complete_square(cdl_nn_graph *g, size_t i)
{
    cdl_nn_node *p = &g->nodes[i];
    int only = -1;
    if (p->kind != CDL_NN_POLY || p->degree != 2 || p->coeffs[2] == 0.0)
        return 0;
    const double a = p->coeffs[2], b = p->coeffs[1], c = p->coeffs[0];
    const double sg = a > 0 ? 1.0 : -1.0;
    if (b == 0.0 && a == sg)
        return 0; /* already sign * x^2 + d */
    /* Only when the vertex -b/(2a) is within the usual activation range: far
     * away, (r x + beta)^2 and d are large and cancel, which costs CKKS
     * precision (and scale headroom) that the level saved is not worth. */
    if (fabs(b / (2.0 * a)) > CDL_NN_MAX_SQUARE_SHIFT)
        return 0;
    int in = p->inputs[0];
    if (in <= 0 || consumers(g, in, &only) != 1)
        return 0;
    cdl_nn_node *lin = &g->nodes[in - 1];
    if ((lin->kind != CDL_NN_CONV && lin->kind != CDL_NN_DENSE) || !lin->bias || !lin->weight)
        return 0;
    const double r = sqrt(fabs(a)), beta = sg * b / (2.0 * r), d = c - b * b / (4.0 * a);
    const size_t O = lin->n_bias, row = lin->n_weight / O;
    for (size_t o = 0; o < O; o++) {
        for (size_t k = 0; k < row; k++)
            lin->weight[o * row + k] *= r;
        lin->bias[o] = lin->bias[o] * r + beta;
    }
    p->coeffs[0] = d;
    p->coeffs[1] = 0.0;
    p->coeffs[2] = sg;
    return 1;
}

/* sign * x^2 + d: merge the outer affine part (sign, d) into the next
 * linear layer when it can take it, leaving a plain square. */
static int try_split_square(cdl_nn_graph *g, size_t i)
{
    cdl_nn_node *p = &g->nodes[i];
    if (p->kind != CDL_NN_POLY || p->degree != 2 || p->coeffs[1] != 0.0 || (p->coeffs[2] != 1.0 && p->coeffs[2] != -1.0))
        return 0;
    cdl_nn_node *lin = forward_target(g, (int)i + 1);
    if (!lin || !apply_forward(lin, cdl_nn_shape_numel(&p->out_shape), 1, NULL, NULL, p->coeffs[2], p->coeffs[0]))
        return 0;
    cdl_nn_node_clear(p);
    p->kind = CDL_NN_SQUARE;
    p->degree = 0;
    return 1;
}

/* Reshapes: a reshape of a reshape reads the original; a reshape to the same
 * shape disappears; a node nobody reads (and not the output) goes. */
static int try_simplify(cdl_nn_graph *g, size_t i)
{
    cdl_nn_node *nd = &g->nodes[i];
    int only = -1;
    if (consumers(g, (int)i + 1, &only) == 0) {
        remove_node(g, i);
        return 1;
    }
    if (nd->kind != CDL_NN_RESHAPE)
        return 0;
    const cdl_nn_shape *in = cdl_nn_value_shape(g, nd->inputs[0]);
    if (in->rank == nd->out_shape.rank && !memcmp(in->dims, nd->out_shape.dims, sizeof(int64_t) * (size_t)in->rank)) {
        remove_node(g, i);
        return 1;
    }
    if (nd->inputs[0] > 0 && g->nodes[nd->inputs[0] - 1].kind == CDL_NN_RESHAPE) {
        nd->inputs[0] = g->nodes[nd->inputs[0] - 1].inputs[0];
        nd->in_shape = *cdl_nn_value_shape(g, nd->inputs[0]);
        return 1;
    }
    return 0;
}

void cdl_nn_fold_affine(cdl_nn_graph *graph)
{
    /* One sweep; after a change step back one node, since a change at i can
     * only enable one at i - 1 (its producer) or at i itself. */
    size_t i = 0, budget = 8 * graph->n_nodes + 16;
    while (i < graph->n_nodes && budget--) {
        if (try_simplify(graph, i) || try_backward(graph, i) || try_forward(graph, i) || try_complete_square(graph, i) ||
            try_split_square(graph, i))
            i = i > 0 ? i - 1 : 0;
        else
            i++;
    }
}
