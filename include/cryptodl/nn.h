/*
 * nn.h: neural networks as the HE compiler sees them. An ONNX file is read
 * (cdl_nn_load_file / cdl_nn_load_memory), checked, and lowered to a small
 * graph IR: a topologically ordered list of nodes with explicit layer kinds,
 * per-sample shapes, float64 weights and the multiplicative depth each node
 * will cost under CKKS. cdl_nn_run is the plaintext float64 reference the
 * encrypted results are compared with.
 *
 * Values: value 0 is the graph input; node i produces value i + 1. Shapes are
 * per sample (the batch dimension is not part of the IR): rank 3 = C,H,W and
 * rank 1 = features. Data are row-major (NCHW for a batch).
 *
 * Depth convention (see docs/onnx.md): a linear layer with plaintext weights
 * (conv, dense, average pool as a scaled sum, an affine scale) costs 1 level,
 * x^2 costs 1, a degree-d polynomial ceil(log2(d + 1)), reshapes / pads /
 * additions 0.
 */
#ifndef CRYPTODL_NN_H
#define CRYPTODL_NN_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CDL_NN_MAX_RANK 4
#define CDL_NN_MAX_POLY_DEGREE 64
/* Limits for untrusted files. */
#define CDL_NN_MAX_FILE_BYTES ((size_t)1 << 30)     /* 1 GiB */
#define CDL_NN_MAX_TENSOR_ELEMS ((int64_t)1 << 28)  /* 268M values per tensor */
#define CDL_NN_MAX_NODES 20000
#define CDL_NN_MAX_ACTIVATION ((int64_t)1 << 24)    /* 16M values per sample per layer */

typedef enum cdl_nn_kind {
    CDL_NN_CONV = 0,   /* 2-D convolution, weight [O][C][kh][kw], bias [O] */
    CDL_NN_DENSE,      /* y = W x + b on the flattened input, weight [out][in] */
    CDL_NN_AVGPOOL,    /* 2-D average pool (GlobalAveragePool: kernel = H x W) */
    CDL_NN_PAD,        /* constant zero padding of H and W (pads[]) */
    CDL_NN_RESHAPE,    /* Flatten / Reshape: same data, new per-sample shape */
    CDL_NN_AFFINE,     /* y = weight .* x + bias, elementwise (full-size arrays) */
    CDL_NN_ADD,        /* y = a + alpha * b for two computed tensors */
    CDL_NN_MUL,        /* y = a .* b for two computed tensors (ciphertext product) */
    CDL_NN_SQUARE,     /* y = x^2 */
    CDL_NN_POLY,       /* y = sum_k coeffs[k] x^k (power basis), degree = n_coeffs - 1 */
    CDL_NN_RELU,       /* plaintext only */
    CDL_NN_SIGMOID,    /* plaintext only */
    CDL_NN_TANH,       /* plaintext only */
    CDL_NN_SOFTMAX,    /* softmax over groups of kernel[0] values kernel[1] apart (see below) */
    CDL_NN_LOGSOFTMAX, /* log of the softmax, same grouping; both dropped by HE when trailing */
    CDL_NN_MAXPOOL,    /* 2-D max pool (GlobalMaxPool: kernel = H x W); plaintext only */
    CDL_NN_LEAKY_RELU, /* x > 0 ? x : coeffs[0] * x; plaintext only (or --approx leakyrelu=...) */
    CDL_NN_CLIP,       /* min(max(x, coeffs[0]), coeffs[1]) (ReLU6, hardtanh); plaintext only */
    CDL_NN_ELU,        /* x > 0 ? x : coeffs[0] * (exp(x) - 1); plaintext only */
    CDL_NN_SLICE,      /* strided slice of each per-sample axis (crop, flip, subsample): a move */
    CDL_NN_KIND_COUNT
} cdl_nn_kind;

typedef struct cdl_nn_shape {
    int rank;                        /* 1 or 3 (or 2 for [C, F] tensors) */
    int64_t dims[CDL_NN_MAX_RANK];
} cdl_nn_shape;

typedef struct cdl_nn_node {
    cdl_nn_kind kind;
    char name[64];          /* the ONNX node's name (or output name) */
    char onnx_op[32];       /* the ONNX op type it came from (first of a fused chain) */
    int n_inputs;
    int inputs[2];          /* value ids */
    cdl_nn_shape in_shape;  /* shape of inputs[0] */
    cdl_nn_shape out_shape;
    /* conv / pool / pad geometry */
    int kernel[2];          /* kh, kw */
    int stride[2];          /* sh, sw */
    int pads[4];            /* top, left, bottom, right */
    int count_include_pad;  /* avgpool: divide by the full window (HE-friendly) */
    /* SLICE: output index i of per-sample axis a reads input index
     * slice_start[a] + i * slice_step[a] (step may be negative: a flip) */
    int64_t slice_start[CDL_NN_MAX_RANK];
    int64_t slice_step[CDL_NN_MAX_RANK];
    /* SOFTMAX / LOGSOFTMAX reuse kernel[]: each sample is split into groups of
     * kernel[0] values, consecutive ones kernel[1] apart (kernel[1] = 1 for the
     * class axis of a [N, C] output, or the flattened trailing axes of opset < 13). */
    /* parameters (CONV, DENSE, AFFINE) */
    double *weight;
    size_t n_weight;
    double *bias;
    size_t n_bias;
    /* POLY: power-basis coefficients; ADD: coeffs[0] = alpha */
    double *coeffs;
    int degree;
    /* analysis */
    int depth;              /* multiplicative depth of this node */
    int total_depth;        /* depth of its output from the input */
    int he_ok;              /* 1 if the HE compiler can run it */
    char he_reason[160];    /* why not, and what to do, when he_ok == 0 */
    uint64_t macs;          /* multiply-accumulates per sample */
    uint64_t params;        /* trainable values */
} cdl_nn_node;

typedef struct cdl_nn_graph {
    size_t n_nodes;
    cdl_nn_node *nodes;
    cdl_nn_shape input_shape;
    int output;             /* value id of the graph output */
    char input_name[64];
    char output_name[64];
    int64_t opset;
    char producer[64];
} cdl_nn_graph;

/* Read an ONNX model and lower it to the IR. Errors name the node, its op
 * type, and what is supported. */
CDL_API cdl_status cdl_nn_load_file(const char *path, cdl_nn_graph **out);
CDL_API cdl_status cdl_nn_load_memory(const uint8_t *data, size_t len, cdl_nn_graph **out);
CDL_API void cdl_nn_graph_free(cdl_nn_graph *graph);

/* Elements per sample of the input and the output. */
CDL_API size_t cdl_nn_input_size(const cdl_nn_graph *graph);
CDL_API size_t cdl_nn_output_size(const cdl_nn_graph *graph);
CDL_API size_t cdl_nn_shape_numel(const cdl_nn_shape *shape);
/* The shape of a value id (0 = input). */
CDL_API const cdl_nn_shape *cdl_nn_value_shape(const cdl_nn_graph *graph, int value);

/* Whole-graph figures: depth of the output, sums of MACs and parameters,
 * and the number of nodes HE cannot run. */
CDL_API int cdl_nn_graph_depth(const cdl_nn_graph *graph);
CDL_API uint64_t cdl_nn_graph_macs(const cdl_nn_graph *graph);
CDL_API uint64_t cdl_nn_graph_params(const cdl_nn_graph *graph);
CDL_API size_t cdl_nn_graph_he_blockers(const cdl_nn_graph *graph);

/* Short lowercase name of a kind ("conv", "dense", ...). */
CDL_API const char *cdl_nn_kind_name(cdl_nn_kind kind);

/* Plaintext float64 reference: n samples, input n * input_size values
 * (NCHW), output n * output_size values. Multithreaded over samples. */
CDL_API cdl_status cdl_nn_run(const cdl_nn_graph *graph, const double *input, size_t n, double *output);
/* The same up to an intermediate value (1..n_nodes: the output of node
 * value - 1), running only the nodes it depends on: output gets n *
 * numel(cdl_nn_value_shape(graph, value)) values. For features of a frozen
 * trunk, e.g. the input of the last dense layer (transfer learning). */
CDL_API cdl_status cdl_nn_run_value(const cdl_nn_graph *graph, int value, const double *input, size_t n,
                                    double *output);

/* Replace every node of one activation kind (CDL_NN_RELU, _SIGMOID, _TANH,
 * _LEAKY_RELU) by a POLY node with the given power-basis coefficients (degree
 * + 1 of them). For CDL_NN_LEAKY_RELU the coefficients approximate ReLU and a
 * node of slope a becomes a x + (1 - a) p(x) (exact for leaky ReLU). Returns
 * the number replaced in *replaced (may be NULL). */
CDL_API cdl_status cdl_nn_replace_activation(cdl_nn_graph *graph, cdl_nn_kind kind, const double *coeffs,
                                             int degree, size_t *replaced);

/* Apply an activation-replacement spec "relu=remez:4:-6:6[,sigmoid=...]"
 * (FUNCTION=METHOD:DEGREE:A:B) using the approx layer; the number of nodes
 * replaced goes to *replaced (may be NULL). */
CDL_API cdl_status cdl_nn_apply_approx(cdl_nn_graph *graph, const char *spec, size_t *replaced);

/* The value the HE compiler encrypts as the result: the graph output with
 * trailing Softmax / LogSoftmax nodes over the whole per-sample output removed
 * (argmax is unchanged; the encrypted result is the logits). *dropped (may be
 * NULL) gets the number of nodes removed. */
CDL_API int cdl_nn_graph_logits(const cdl_nn_graph *graph, size_t *dropped);

/* Recompute depths, MACs and HE support after an edit to the graph. */
CDL_API void cdl_nn_analyze(cdl_nn_graph *graph);

#ifdef __cplusplus
}
#endif
#endif
