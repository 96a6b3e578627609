/*
 * graph.c: the nn graph IR outside of import and execution: freeing, shape
 * helpers, and the analysis that gives every node its multiplicative depth,
 * MAC and parameter counts, and whether the HE compiler can run it.
 *
 * Depth convention (docs/onnx.md): one CKKS level per plaintext-weight linear
 * layer (multiply then rescale), one per ciphertext product, and
 * ceil(log2(d + 1)) for a degree-d polynomial evaluated with a depth-optimal
 * scheme (Paterson–Stockmeyer / BSGS, e.g. Bossuat et al. 2021).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "core/memory.h"
#include "cryptodl/nn.h"
#include "nn/nn_internal.h"

static const char *const kind_names[CDL_NN_KIND_COUNT] = {
    "conv", "dense", "avgpool", "pad", "reshape", "affine", "add",
    "mul", "square", "poly", "relu", "sigmoid", "tanh", "softmax",
    "logsoftmax", "maxpool", "leakyrelu", "clip", "elu", "slice",
};

size_t cdl_nn_slice_source(const cdl_nn_node *nd, size_t out_index)
{
    const cdl_nn_shape *in = &nd->in_shape, *out = &nd->out_shape;
    size_t rem = out_index, src = 0, stride = 1;
    for (int a = out->rank - 1; a >= 0; a--) {
        const int64_t i = (int64_t)(rem % (size_t)out->dims[a]);
        rem /= (size_t)out->dims[a];
        src += (size_t)(nd->slice_start[a] + i * nd->slice_step[a]) * stride;
        stride *= (size_t)in->dims[a];
    }
    return src;
}

const char *cdl_nn_kind_name(cdl_nn_kind kind)
{
    if ((int)kind < 0 || kind >= CDL_NN_KIND_COUNT)
        return "?";
    return kind_names[kind];
}

size_t cdl_nn_shape_numel(const cdl_nn_shape *shape)
{
    size_t n = 1;
    for (int i = 0; i < shape->rank; i++)
        n *= (size_t)shape->dims[i];
    return n;
}

const cdl_nn_shape *cdl_nn_value_shape(const cdl_nn_graph *graph, int value)
{
    if (value <= 0)
        return &graph->input_shape;
    return &graph->nodes[value - 1].out_shape;
}

size_t cdl_nn_input_size(const cdl_nn_graph *graph) { return cdl_nn_shape_numel(&graph->input_shape); }

size_t cdl_nn_output_size(const cdl_nn_graph *graph)
{
    return cdl_nn_shape_numel(cdl_nn_value_shape(graph, graph->output));
}

void cdl_nn_node_clear(cdl_nn_node *node)
{
    cdl_free(node->weight);
    cdl_free(node->bias);
    cdl_free(node->coeffs);
    node->weight = node->bias = node->coeffs = NULL;
    node->n_weight = node->n_bias = 0;
}

void cdl_nn_graph_free(cdl_nn_graph *graph)
{
    if (!graph)
        return;
    for (size_t i = 0; i < graph->n_nodes; i++)
        cdl_nn_node_clear(&graph->nodes[i]);
    cdl_free(graph->nodes);
    cdl_free(graph);
}

int cdl_nn_poly_depth(int degree)
{
    int d = 0;
    while ((1 << d) < degree + 1)
        d++;
    return d;
}

/* Is node i (value i + 1) one of the trailing softmax nodes HE drops? */
static int is_dropped_softmax(const cdl_nn_graph *g, size_t i)
{
    const int logits = cdl_nn_graph_logits(g, NULL);
    for (int v = g->output; v > logits; v = g->nodes[v - 1].inputs[0])
        if (v == (int)i + 1)
            return 1;
    return 0;
}

int cdl_nn_graph_logits(const cdl_nn_graph *graph, size_t *dropped)
{
    size_t n = 0;
    int v = graph ? graph->output : 0;
    while (v > 0 && (size_t)v <= graph->n_nodes) {
        const cdl_nn_node *nd = &graph->nodes[v - 1];
        if (nd->kind != CDL_NN_SOFTMAX && nd->kind != CDL_NN_LOGSOFTMAX)
            break;
        /* only a softmax over the whole per-sample output keeps argmax meaningful */
        if ((size_t)nd->kernel[0] != cdl_nn_shape_numel(&nd->out_shape) || nd->inputs[0] <= 0)
            break;
        v = nd->inputs[0];
        n++;
    }
    if (dropped)
        *dropped = n;
    return v;
}

static void analyze_node(const cdl_nn_graph *g, cdl_nn_node *nd)
{
    size_t out_n = cdl_nn_shape_numel(&nd->out_shape);
    size_t in_n = cdl_nn_shape_numel(&nd->in_shape);
    nd->he_ok = 1;
    nd->he_reason[0] = '\0';
    nd->macs = 0;
    nd->params = (uint64_t)(nd->n_weight + nd->n_bias);
    nd->depth = 0;
    switch (nd->kind) {
    case CDL_NN_CONV:
        nd->depth = 1;
        nd->macs = (uint64_t)out_n * (uint64_t)nd->in_shape.dims[0] * (uint64_t)nd->kernel[0] * (uint64_t)nd->kernel[1];
        break;
    case CDL_NN_DENSE:
        nd->depth = 1;
        nd->macs = (uint64_t)out_n * (uint64_t)in_n;
        break;
    case CDL_NN_AVGPOOL:
        nd->depth = 1;
        nd->macs = (uint64_t)out_n * (uint64_t)nd->kernel[0] * (uint64_t)nd->kernel[1];
        if (!nd->count_include_pad && (nd->pads[0] || nd->pads[1] || nd->pads[2] || nd->pads[3])) {
            nd->he_ok = 0;
            snprintf(nd->he_reason, sizeof nd->he_reason,
                     "average pool with padding excluded from the count divides border windows differently; "
                     "export with count_include_pad=True");
        }
        break;
    case CDL_NN_AFFINE: {
        int scales = 0;
        for (size_t i = 0; i < nd->n_weight; i++)
            if (nd->weight[i] != 1.0 && nd->weight[i] != -1.0) /* negation is free */
                scales = 1;
        nd->depth = scales;
        nd->macs = (uint64_t)out_n;
        break;
    }
    case CDL_NN_MUL:
    case CDL_NN_SQUARE:
        nd->depth = 1;
        nd->macs = (uint64_t)out_n;
        break;
    case CDL_NN_POLY:
        nd->depth = cdl_nn_poly_depth(nd->degree);
        {
            /* +-x^(2^k) + d is k repeated squarings: k levels */
            int pure = nd->degree >= 2 && (nd->degree & (nd->degree - 1)) == 0 && fabs(nd->coeffs[nd->degree]) == 1.0;
            for (int k = 1; k < nd->degree && pure; k++)
                pure = nd->coeffs[k] == 0.0;
            if (pure)
                nd->depth = cdl_nn_poly_depth(nd->degree) - 1;
        }
        nd->macs = (uint64_t)out_n * (uint64_t)nd->degree;
        nd->params = 0;
        break;
    case CDL_NN_RELU:
    case CDL_NN_SIGMOID:
    case CDL_NN_TANH:
        nd->he_ok = 0;
        snprintf(nd->he_reason, sizeof nd->he_reason,
                 "%s is not a polynomial: train with a polynomial activation, or replace it with e.g. "
                 "--approx %s=remez:4:-6:6",
                 cdl_nn_kind_name(nd->kind), cdl_nn_kind_name(nd->kind));
        break;
    case CDL_NN_LEAKY_RELU:
        nd->he_ok = 0;
        if (nd->weight) /* PRelu with one slope per channel */
            snprintf(nd->he_reason, sizeof nd->he_reason,
                     "PReLU with per-channel slopes: no single polynomial replaces it; train with a polynomial "
                     "activation (or one shared slope, then --approx leakyrelu=)");
        else
            snprintf(nd->he_reason, sizeof nd->he_reason,
                     "leaky ReLU is not a polynomial: train with a polynomial activation, or replace it with e.g. "
                     "--approx leakyrelu=remez:4:-6:6");
        break;
    case CDL_NN_CLIP:
    case CDL_NN_ELU:
        nd->he_ok = 0;
        snprintf(nd->he_reason, sizeof nd->he_reason,
                 "%s (ONNX %s) is not a polynomial and has no --approx replacement: train with a polynomial "
                 "activation (e.g. x^2) instead",
                 cdl_nn_kind_name(nd->kind), nd->onnx_op);
        break;
    case CDL_NN_MAXPOOL:
        nd->he_ok = 0;
        nd->macs = (uint64_t)out_n * (uint64_t)nd->kernel[0] * (uint64_t)nd->kernel[1];
        snprintf(nd->he_reason, sizeof nd->he_reason,
                 "max is not a polynomial, so max pooling cannot run encrypted: train with average pooling "
                 "(nn.AvgPool2d / AveragePool) instead");
        break;
    case CDL_NN_SOFTMAX:
    case CDL_NN_LOGSOFTMAX:
        nd->macs = (uint64_t)out_n;
        if (is_dropped_softmax(g, (size_t)(nd - g->nodes))) {
            snprintf(nd->he_reason, sizeof nd->he_reason,
                     "dropped under encryption: the encrypted result is the logits before this %s (argmax is "
                     "unchanged); apply it after decryption",
                     cdl_nn_kind_name(nd->kind));
        } else {
            nd->he_ok = 0;
            snprintf(nd->he_reason, sizeof nd->he_reason,
                     "%s is not a polynomial: only a softmax over the whole output at the end of the network can "
                     "be dropped for encryption; remove this one or move it to the end",
                     cdl_nn_kind_name(nd->kind));
        }
        break;
    default:
        break;
    }
}

void cdl_nn_analyze(cdl_nn_graph *graph)
{
    for (size_t i = 0; i < graph->n_nodes; i++) {
        cdl_nn_node *nd = &graph->nodes[i];
        analyze_node(graph, nd);
        int base = 0;
        for (int k = 0; k < nd->n_inputs; k++) {
            int v = nd->inputs[k];
            int d = v > 0 ? graph->nodes[v - 1].total_depth : 0;
            if (d > base)
                base = d;
        }
        nd->total_depth = base + nd->depth;
    }
}

int cdl_nn_graph_depth(const cdl_nn_graph *graph)
{
    return graph->output > 0 ? graph->nodes[graph->output - 1].total_depth : 0;
}

uint64_t cdl_nn_graph_macs(const cdl_nn_graph *graph)
{
    uint64_t s = 0;
    for (size_t i = 0; i < graph->n_nodes; i++)
        s += graph->nodes[i].macs;
    return s;
}

uint64_t cdl_nn_graph_params(const cdl_nn_graph *graph)
{
    uint64_t s = 0;
    for (size_t i = 0; i < graph->n_nodes; i++)
        s += graph->nodes[i].params;
    return s;
}

size_t cdl_nn_graph_he_blockers(const cdl_nn_graph *graph)
{
    size_t s = 0;
    for (size_t i = 0; i < graph->n_nodes; i++)
        s += graph->nodes[i].he_ok ? 0 : 1;
    return s;
}

cdl_status cdl_nn_replace_activation(cdl_nn_graph *graph, cdl_nn_kind kind, const double *coeffs, int degree,
                                     size_t *replaced)
{
    if (!graph || !coeffs || degree < 1 || degree > CDL_NN_MAX_POLY_DEGREE)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "replace activation: need a graph and 1..%d coefficients of degree >= 1",
                        CDL_NN_MAX_POLY_DEGREE);
    if (kind != CDL_NN_RELU && kind != CDL_NN_SIGMOID && kind != CDL_NN_TANH && kind != CDL_NN_LEAKY_RELU)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "replace activation: only relu, sigmoid, tanh and leakyrelu can be replaced");
    size_t count = 0;
    for (size_t i = 0; i < graph->n_nodes; i++) {
        cdl_nn_node *nd = &graph->nodes[i];
        if (nd->kind != kind || (kind == CDL_NN_LEAKY_RELU && nd->weight)) /* per-channel slopes: left as they are */
            continue;
        double *c = cdl_alloc_array((size_t)degree + 1, sizeof *c);
        if (!c)
            return CDL_ERR_NO_MEMORY;
        memcpy(c, coeffs, ((size_t)degree + 1) * sizeof *c);
        if (kind == CDL_NN_LEAKY_RELU) { /* leaky(x) = a x + (1 - a) relu(x) */
            const double a = nd->coeffs ? nd->coeffs[0] : 0.01;
            for (int k = 0; k <= degree; k++)
                c[k] *= 1.0 - a;
            c[1] += a;
        }
        cdl_nn_node_clear(nd);
        nd->kind = CDL_NN_POLY;
        nd->coeffs = c;
        nd->degree = degree;
        count++;
    }
    cdl_nn_fold_affine(graph); /* a quadratic after a linear layer may now complete its square */
    cdl_nn_analyze(graph);
    if (replaced)
        *replaced = count;
    return CDL_OK;
}
