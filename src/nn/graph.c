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
    "mul", "square", "poly", "relu", "sigmoid", "tanh",
};

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
    default:
        break;
    }
    (void)g;
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
    if (kind != CDL_NN_RELU && kind != CDL_NN_SIGMOID && kind != CDL_NN_TANH)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "replace activation: only relu, sigmoid and tanh can be replaced");
    size_t count = 0;
    for (size_t i = 0; i < graph->n_nodes; i++) {
        cdl_nn_node *nd = &graph->nodes[i];
        if (nd->kind != kind)
            continue;
        double *c = cdl_alloc_array((size_t)degree + 1, sizeof *c);
        if (!c)
            return CDL_ERR_NO_MEMORY;
        memcpy(c, coeffs, ((size_t)degree + 1) * sizeof *c);
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
