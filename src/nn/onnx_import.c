/*
 * onnx_import.c: ONNX model -> nn graph IR.
 *
 * The protobuf is parsed by protobuf-c with code generated at build time from
 * Debian's onnx.proto (cmake/onnx.cmake). The ONNX graph is then walked once in
 * its (topological) node order. Every ONNX value name is bound to one of:
 *   - a computed IR value (V_IR),
 *   - a constant (V_CONST: initializers, Constant nodes, and small shape
 *     arithmetic that exporters emit: Shape/Gather/Unsqueeze/Concat/Cast...),
 *   - a pending polynomial of a computed IR value (V_POLY): chains of
 *     elementwise Mul/Add/Sub/Pow/Div on one tensor are folded into power-basis
 *     coefficients and only emitted, as one POLY (or SQUARE) node, when a
 *     non-elementwise node or the graph output consumes them.
 * BatchNormalization and bias Adds are folded into the preceding Conv/Dense
 * when that layer's output has no other consumer; otherwise they become an
 * elementwise AFFINE node.
 *
 * The file is untrusted: its size, tensor ranks and element counts are
 * bounded, dimension products are overflow-checked, and every error names
 * the node, its op type and what is supported.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/memory.h"
#include "cryptodl/nn.h"
#include "nn/nn_internal.h"
#include "onnx.pb-c.h"

#define MAX_CONST_RANK 8
#define SUPPORTED_OPS                                                                                          \
    "Conv, Gemm, MatMul, Add, Sub, Mul, Div (by a constant), Pow (integer exponent), BatchNormalization, "   \
    "AveragePool, GlobalAveragePool, Pad (zero), Flatten, Reshape, Identity, Dropout, Constant, Shape, "      \
    "Gather, Unsqueeze, Squeeze, Concat, Cast, Slice, Transpose/ConstantOfShape (on constants), Relu, Sigmoid, "    \
    "Tanh, LeakyRelu, PRelu, Clip, Elu, HardSigmoid, HardSwish, Neg, Softmax, LogSoftmax, MaxPool, "            \
    "GlobalMaxPool, "                                                                                           \
    "ReduceMean (over H and W), Sum"

typedef enum { V_UNSET = 0, V_IR, V_CONST, V_POLY } vkind;

typedef struct ival {
    const char *name;
    vkind kind;
    int ir;         /* V_IR: IR value; V_POLY: base IR value */
    int uses;       /* consumers in the ONNX graph */
    int shared;     /* reached through an alias of a value with several consumers */
    /* V_CONST */
    double *cdata;
    int crank;
    int64_t cdims[MAX_CONST_RANK];
    size_t cnumel;
    /* V_POLY */
    double *poly;
    int pdeg;
    const char *op; /* first ONNX op of a chain (for names) */
} ival;

typedef struct importer {
    const Onnx__GraphProto *gp;
    ival *vals;
    size_t n_vals, cap_vals;
    size_t *hash;   /* open addressing: index + 1 into vals, 0 = empty */
    size_t hash_cap;
    cdl_nn_graph *g;
    size_t cap_nodes;
    int64_t batch;  /* the declared batch size (1 when symbolic) */
    const Onnx__NodeProto *cur; /* for error messages */
    const char **uses;          /* sorted names of all consumed values */
    size_t n_uses;
} importer;

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* How many times a value name is consumed (node inputs + graph output). */
static int count_uses(const importer *im, const char *name)
{
    size_t lo = 0, hi = im->n_uses;
    while (lo < hi) { /* first index with uses[i] >= name */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(im->uses[mid], name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int c = 0;
    while (lo < im->n_uses && !strcmp(im->uses[lo], name)) {
        c++;
        lo++;
    }
    return c;
}

/* ---- error helpers ------------------------------------------------------ */

/* A constant used as an integer (shapes, axes, pads): saturate instead of
 * the undefined behaviour of converting an out-of-range double. */
static int64_t to_i64(double v)
{
    if (!(v == v))
        return 0;
    if (v >= 4.0e18)
        return (int64_t)4000000000000000000LL;
    if (v <= -4.0e18)
        return -(int64_t)4000000000000000000LL;
    return (int64_t)v;
}

static const char *node_label(const Onnx__NodeProto *n)
{
    if (n->name && n->name[0])
        return n->name;
    if (n->n_output > 0 && n->output[0])
        return n->output[0];
    return "?";
}

#define FAIL_NODE(im, st, fmt, ...)                                                                            \
    cdl_fail((st), "ONNX node '%s' (op %s): " fmt, node_label((im)->cur), (im)->cur->op_type, ##__VA_ARGS__)

/* ---- value table --------------------------------------------------------- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static ival *lookup(importer *im, const char *name)
{
    if (!name || !im->hash_cap)
        return NULL;
    size_t i = hash_str(name) & (im->hash_cap - 1);
    while (im->hash[i]) {
        ival *v = &im->vals[im->hash[i] - 1];
        if (!strcmp(v->name, name))
            return v;
        i = (i + 1) & (im->hash_cap - 1);
    }
    return NULL;
}

/* Bind a new name. The table is sized in advance (see import_graph). */
static cdl_status bind(importer *im, const char *name, ival **out)
{
    if (!name || !name[0])
        return cdl_fail(CDL_ERR_FORMAT, "ONNX model: a value has an empty name");
    if (lookup(im, name))
        return cdl_fail(CDL_ERR_FORMAT, "ONNX model: value '%s' is defined twice", name);
    if (im->n_vals >= im->cap_vals || im->n_vals * 2 >= im->hash_cap)
        return cdl_fail(CDL_ERR_INTERNAL, "ONNX import: value table full");
    ival *v = &im->vals[im->n_vals++];
    memset(v, 0, sizeof *v);
    v->name = name;
    size_t i = hash_str(name) & (im->hash_cap - 1);
    while (im->hash[i])
        i = (i + 1) & (im->hash_cap - 1);
    im->hash[i] = im->n_vals;
    *out = v;
    return CDL_OK;
}

static void ival_clear(ival *v)
{
    cdl_free(v->cdata);
    cdl_free(v->poly);
    v->cdata = v->poly = NULL;
}

/* ---- IR builder ---------------------------------------------------------- */

static const cdl_nn_shape *value_shape(importer *im, int v) { return cdl_nn_value_shape(im->g, v); }

static cdl_status new_node(importer *im, cdl_nn_kind kind, int in0, cdl_nn_node **out)
{
    cdl_nn_graph *g = im->g;
    if (g->n_nodes >= CDL_NN_MAX_NODES)
        return cdl_fail(CDL_ERR_FORMAT, "ONNX model has more than %d layers", CDL_NN_MAX_NODES);
    if (g->n_nodes == im->cap_nodes) {
        size_t cap = im->cap_nodes ? 2 * im->cap_nodes : 16;
        cdl_nn_node *nn = cdl_calloc_array(cap, sizeof *nn);
        if (!nn)
            return CDL_ERR_NO_MEMORY;
        if (g->n_nodes)
            memcpy(nn, g->nodes, g->n_nodes * sizeof *nn);
        cdl_free(g->nodes);
        g->nodes = nn;
        im->cap_nodes = cap;
    }
    cdl_nn_node *nd = &g->nodes[g->n_nodes];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    nd->n_inputs = 1;
    nd->inputs[0] = in0;
    nd->in_shape = *value_shape(im, in0);
    nd->out_shape = nd->in_shape;
    nd->kernel[0] = nd->kernel[1] = nd->stride[0] = nd->stride[1] = 1;
    snprintf(nd->name, sizeof nd->name, "%s", im->cur ? node_label(im->cur) : "");
    snprintf(nd->onnx_op, sizeof nd->onnx_op, "%s", im->cur ? im->cur->op_type : "");
    g->n_nodes++;
    *out = nd;
    return CDL_OK;
}

static int node_value(importer *im, const cdl_nn_node *nd) { return (int)(nd - im->g->nodes) + 1; }

/* Emit a pending polynomial as an IR node; V_IR afterwards. */
static cdl_status materialize(importer *im, ival *v, int *ir)
{
    if (v->kind == V_IR) {
        *ir = v->ir;
        return CDL_OK;
    }
    if (v->kind == V_CONST)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED,
                         "input '%s' is a constant where a computed tensor is expected (constant-only branches "
                         "are not supported)",
                         v->name);
    if (v->kind != V_POLY)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "input '%s' is used before it is defined", v->name);
    int deg = v->pdeg;
    while (deg > 0 && v->poly[deg] == 0.0)
        deg--;
    if (deg == 1 && v->poly[0] == 0.0 && v->poly[1] == 1.0) {
        v->kind = V_IR;
    } else {
        cdl_nn_node *nd;
        cdl_nn_kind kind = (deg == 2 && v->poly[0] == 0.0 && v->poly[1] == 0.0 && v->poly[2] == 1.0) ? CDL_NN_SQUARE
                                                                                                      : CDL_NN_POLY;
        if (deg == 0)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "'%s' reduces to a constant polynomial", v->name);
        CDL_TRY(new_node(im, kind, v->ir, &nd));
        snprintf(nd->name, sizeof nd->name, "%s", v->name);
        snprintf(nd->onnx_op, sizeof nd->onnx_op, "%s", v->op ? v->op : "Mul");
        if (kind == CDL_NN_POLY) {
            nd->coeffs = cdl_alloc_array((size_t)deg + 1, sizeof(double));
            if (!nd->coeffs)
                return CDL_ERR_NO_MEMORY;
            memcpy(nd->coeffs, v->poly, ((size_t)deg + 1) * sizeof(double));
            nd->degree = deg;
        }
        v->kind = V_IR;
        v->ir = node_value(im, nd);
    }
    cdl_free(v->poly);
    v->poly = NULL;
    *ir = v->ir;
    return CDL_OK;
}

/* ---- tensors ------------------------------------------------------------- */

static cdl_status check_dims(const int64_t *dims, size_t n, size_t *numel, const char *what)
{
    if (n > MAX_CONST_RANK)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX tensor '%s' has rank %zu (at most %d supported)", what, n,
                        MAX_CONST_RANK);
    int64_t p = 1;
    for (size_t i = 0; i < n; i++) {
        if (dims[i] < 0 || dims[i] > CDL_NN_MAX_TENSOR_ELEMS)
            return cdl_fail(CDL_ERR_FORMAT, "ONNX tensor '%s' has dimension %lld out of range", what,
                            (long long)dims[i]);
        if (dims[i] && p > CDL_NN_MAX_TENSOR_ELEMS / dims[i])
            return cdl_fail(CDL_ERR_FORMAT, "ONNX tensor '%s' has more than %lld elements", what,
                            (long long)CDL_NN_MAX_TENSOR_ELEMS);
        p *= dims[i];
    }
    *numel = (size_t)p;
    return CDL_OK;
}

/* Decode a TensorProto (float, double, int32, int64) into doubles. */
static cdl_status tensor_to_const(const Onnx__TensorProto *t, ival *v)
{
    const char *nm = t->name ? t->name : "?";
    size_t numel;
    CDL_TRY(check_dims(t->dims, t->n_dims, &numel, nm));
    if (t->n_external_data > 0 || (t->has_data_location && t->data_location != 0))
        return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX tensor '%s' uses external data: save the model with all tensors inside the file", nm);
    int dt = t->has_data_type ? t->data_type : 0;
    size_t esize;
    size_t typed;
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: esize = 4; typed = t->n_float_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: esize = 8; typed = t->n_double_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: esize = 4; typed = t->n_int32_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: esize = 8; typed = t->n_int64_data; break;
    default:
        return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX tensor '%s' has data type %d: float, double, int32 and int64 are supported",
                        nm, dt);
    }
    double *d = cdl_alloc_array(numel ? numel : 1, sizeof *d);
    if (!d)
        return CDL_ERR_NO_MEMORY;
    if (t->has_raw_data && t->raw_data.len > 0) {
        if (t->raw_data.len != numel * esize) {
            cdl_free(d);
            return cdl_fail(CDL_ERR_FORMAT, "ONNX tensor '%s' holds %zu bytes of data, its shape needs %zu", nm,
                            t->raw_data.len, numel * esize);
        }
        const uint8_t *p = t->raw_data.data;
        for (size_t i = 0; i < numel; i++, p += esize) {
            uint64_t u = 0;
            for (size_t b = 0; b < esize; b++)
                u |= (uint64_t)p[b] << (8 * b); /* ONNX raw data is little-endian */
            if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
                uint32_t w = (uint32_t)u;
                float f;
                memcpy(&f, &w, 4);
                d[i] = f;
            } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
                memcpy(&d[i], &u, 8);
            } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) {
                d[i] = (double)(int32_t)(uint32_t)u;
            } else {
                d[i] = (double)(int64_t)u;
            }
        }
    } else {
        if (typed != numel) {
            cdl_free(d);
            return cdl_fail(CDL_ERR_FORMAT, "ONNX tensor '%s' holds %zu values, its shape needs %zu", nm, typed, numel);
        }
        for (size_t i = 0; i < numel; i++) {
            switch (dt) {
            case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: d[i] = t->float_data[i]; break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: d[i] = t->double_data[i]; break;
            case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: d[i] = t->int32_data[i]; break;
            default: d[i] = (double)t->int64_data[i]; break;
            }
        }
    }
    for (size_t i = 0; i < numel; i++)
        if (!isfinite(d[i])) {
            cdl_free(d);
            return cdl_fail(CDL_ERR_FORMAT, "ONNX tensor '%s' holds a NaN or infinite value", nm);
        }
    v->kind = V_CONST;
    v->cdata = d;
    v->cnumel = numel;
    v->crank = (int)t->n_dims;
    for (size_t i = 0; i < t->n_dims; i++)
        v->cdims[i] = t->dims[i];
    return CDL_OK;
}

static cdl_status make_const(ival *v, const int64_t *dims, int rank, const double *data)
{
    size_t numel;
    CDL_TRY(check_dims(dims, (size_t)rank, &numel, v->name));
    v->cdata = cdl_alloc_array(numel ? numel : 1, sizeof(double));
    if (!v->cdata)
        return CDL_ERR_NO_MEMORY;
    if (numel)
        memcpy(v->cdata, data, numel * sizeof(double));
    v->kind = V_CONST;
    v->cnumel = numel;
    v->crank = rank;
    for (int i = 0; i < rank; i++)
        v->cdims[i] = dims[i];
    return CDL_OK;
}

/* ---- attributes ---------------------------------------------------------- */

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name))
            return n->attribute[i];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_i ? a->i : def;
}

static double attr_float(const Onnx__NodeProto *n, const char *name, double def)
{
    const Onnx__AttributeProto *a = attr(n, name);
    return a && a->has_f ? a->f : def;
}

/* Read an INTS attribute of exactly `count` values (or absent: keep defaults). */
static cdl_status attr_ints(importer *im, const char *name, size_t count, int *out, int lo, int hi)
{
    const Onnx__AttributeProto *a = attr(im->cur, name);
    if (!a || a->n_ints == 0)
        return CDL_OK;
    if (a->n_ints != count)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "attribute %s has %zu values, expected %zu (2-D only)", name,
                         a->n_ints, count);
    for (size_t i = 0; i < count; i++) {
        if (a->ints[i] < lo || a->ints[i] > hi)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "attribute %s value %lld is outside [%d, %d]", name,
                             (long long)a->ints[i], lo, hi);
        out[i] = (int)a->ints[i];
    }
    return CDL_OK;
}

static int attr_string_is(const Onnx__NodeProto *n, const char *name, const char *value, int absent)
{
    const Onnx__AttributeProto *a = attr(n, name);
    if (!a || !a->has_s)
        return absent;
    return a->s.len == strlen(value) && !memcmp(a->s.data, value, a->s.len);
}

/* ---- inputs -------------------------------------------------------------- */

static cdl_status input_val(importer *im, size_t k, ival **out)
{
    if (k >= im->cur->n_input || !im->cur->input[k] || !im->cur->input[k][0])
        return FAIL_NODE(im, CDL_ERR_FORMAT, "input %zu is missing", k);
    ival *v = lookup(im, im->cur->input[k]);
    if (!v || v->kind == V_UNSET)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "input '%s' is not defined before this node (the graph must be "
                                            "topologically sorted)", im->cur->input[k]);
    *out = v;
    return CDL_OK;
}

static int has_input(importer *im, size_t k)
{
    return k < im->cur->n_input && im->cur->input[k] && im->cur->input[k][0];
}

static cdl_status input_const(importer *im, size_t k, ival **out)
{
    CDL_TRY(input_val(im, k, out));
    if ((*out)->kind != V_CONST)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "input '%s' must be a constant (initializer) for this op",
                         (*out)->name);
    return CDL_OK;
}

static cdl_status input_ir(importer *im, size_t k, int *ir)
{
    ival *v;
    CDL_TRY(input_val(im, k, &v));
    return materialize(im, v, ir);
}

static cdl_status output_val(importer *im, size_t k, ival **out)
{
    if (k >= im->cur->n_output || !im->cur->output[k] || !im->cur->output[k][0])
        return FAIL_NODE(im, CDL_ERR_FORMAT, "output %zu is missing", k);
    return bind(im, im->cur->output[k], out);
}

/* Only output 0 may be consumed (Dropout's mask, BatchNorm's running stats). */
static cdl_status only_first_output(importer *im)
{
    for (size_t k = 1; k < im->cur->n_output; k++) {
        const char *nm = im->cur->output[k];
        if (!nm || !nm[0])
            continue;
        if (count_uses(im, nm) > 0)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "its output %zu ('%s') is used; only the first output is supported",
                             k, nm);
    }
    return CDL_OK;
}

static cdl_status bind_ir(importer *im, int ir)
{
    const cdl_nn_shape *s = value_shape(im, ir);
    uint64_t numel = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->dims[i] < 1 || (uint64_t)s->dims[i] > (uint64_t)CDL_NN_MAX_ACTIVATION)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "output dimension %d is %lld", i, (long long)s->dims[i]);
        numel *= (uint64_t)s->dims[i];
        if (numel > (uint64_t)CDL_NN_MAX_ACTIVATION)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "output has more than %lld values per sample",
                             (long long)CDL_NN_MAX_ACTIVATION);
    }
    ival *o;
    CDL_TRY(output_val(im, 0, &o));
    o->kind = V_IR;
    o->ir = ir;
    return CDL_OK;
}

/* Bind output 0 as an alias of an existing value (Identity, Dropout, Cast). */
static cdl_status bind_alias(importer *im, ival *src)
{
    ival *o;
    CDL_TRY(output_val(im, 0, &o));
    src = lookup(im, im->cur->input[0]); /* the table does not move, but re-read for clarity */
    o->kind = src->kind;
    o->ir = src->ir;
    o->shared = src->shared || src->uses > 1;
    o->op = src->op;
    if (src->kind == V_CONST)
        return make_const(o, src->cdims, src->crank, src->cdata);
    if (src->kind == V_POLY) {
        o->poly = cdl_alloc_array((size_t)src->pdeg + 1, sizeof(double));
        if (!o->poly)
            return CDL_ERR_NO_MEMORY;
        memcpy(o->poly, src->poly, ((size_t)src->pdeg + 1) * sizeof(double));
        o->pdeg = src->pdeg;
    }
    return CDL_OK;
}

/* ---- layer helpers ------------------------------------------------------- */

static cdl_status require_rank(importer *im, int ir, int rank, const char *hint)
{
    const cdl_nn_shape *s = value_shape(im, ir);
    if (s->rank != rank)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "input has %d dimensions per sample, this op needs %d (%s)",
                         s->rank, rank, hint);
    return CDL_OK;
}

/* 2-D window geometry shared by Conv, AveragePool and MaxPool (the only one
 * that accepts ceil_mode=1). */
static cdl_status window_geometry(importer *im, cdl_nn_node *nd, int allow_ceil)
{
    CDL_TRY(attr_ints(im, "strides", 2, nd->stride, 1, 1 << 16));
    CDL_TRY(attr_ints(im, "pads", 4, nd->pads, 0, 1 << 16));
    /* ONNX pads are [top, left, bottom, right] = [x1_begin, x2_begin, x1_end, x2_end]. */
    int dil[2] = {1, 1};
    CDL_TRY(attr_ints(im, "dilations", 2, dil, 1, 1 << 16));
    if (dil[0] != 1 || dil[1] != 1)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "dilations %d,%d: only dilation 1 is supported", dil[0], dil[1]);
    const int64_t H = nd->in_shape.dims[1], W = nd->in_shape.dims[2];
    int same_upper = attr_string_is(im->cur, "auto_pad", "SAME_UPPER", 0);
    int same_lower = attr_string_is(im->cur, "auto_pad", "SAME_LOWER", 0);
    if (same_upper || same_lower) {
        int64_t in[2] = {H, W};
        for (int a = 0; a < 2; a++) {
            int64_t out = (in[a] + nd->stride[a] - 1) / nd->stride[a];
            int64_t total = (out - 1) * nd->stride[a] + nd->kernel[a] - in[a];
            if (total < 0)
                total = 0;
            int small = (int)(total / 2), big = (int)(total - total / 2);
            nd->pads[a] = same_upper ? small : big;
            nd->pads[a + 2] = same_upper ? big : small;
        }
    } else if (!attr_string_is(im->cur, "auto_pad", "NOTSET", 1) && !attr_string_is(im->cur, "auto_pad", "VALID", 0)) {
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "auto_pad must be NOTSET, VALID, SAME_UPPER or SAME_LOWER");
    }
    const int64_t ceil_mode = attr_int(im->cur, "ceil_mode", 0);
    if (ceil_mode != 0 && ceil_mode != 1)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "ceil_mode=%lld is not supported (0 or 1)", (long long)ceil_mode);
    int64_t oh = H + nd->pads[0] + nd->pads[2] - nd->kernel[0];
    int64_t ow = W + nd->pads[1] + nd->pads[3] - nd->kernel[1];
    if (oh < 0 || ow < 0)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "kernel %dx%d is larger than the padded %lldx%lld input", nd->kernel[0],
                         nd->kernel[1], (long long)(H + nd->pads[0] + nd->pads[2]),
                         (long long)(W + nd->pads[1] + nd->pads[3]));
    if (nd->pads[0] >= nd->kernel[0] || nd->pads[2] >= nd->kernel[0] || nd->pads[1] >= nd->kernel[1] ||
        nd->pads[3] >= nd->kernel[1])
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "padding must be smaller than the kernel");
    nd->out_shape.dims[1] = oh / nd->stride[0] + 1;
    nd->out_shape.dims[2] = ow / nd->stride[1] + 1;
    if (ceil_mode) { /* round up, but a window must start inside the input or its leading padding (PyTorch) */
        const int64_t span[2] = {oh, ow}, in[2] = {H, W};
        for (int a = 0; a < 2; a++) {
            int64_t o = (span[a] + nd->stride[a] - 1) / nd->stride[a] + 1;
            if ((o - 1) * nd->stride[a] >= in[a] + nd->pads[a])
                o--;
            /* a window hanging over the end is fine for a max; elsewhere ceil_mode=1 is only accepted when it
             * changes nothing (e.g. nn.AvgPool2d(2, ceil_mode=True) on an even size) */
            if (o != nd->out_shape.dims[a + 1] && !allow_ceil)
                return FAIL_NODE(im, CDL_ERR_UNSUPPORTED,
                                 "ceil_mode=1 adds a partial window here (%lld instead of %lld outputs along %s), which "
                                 "is not supported for this op; use ceil_mode=0 or an input size the windows tile",
                                 (long long)o, (long long)nd->out_shape.dims[a + 1], a ? "W" : "H");
            nd->out_shape.dims[a + 1] = o;
        }
    }
    return CDL_OK;
}

static cdl_status op_conv(importer *im)
{
    int x;
    ival *w, *b = NULL;
    CDL_TRY(input_ir(im, 0, &x));
    CDL_TRY(require_rank(im, x, 3, "2-D convolution on C,H,W"));
    CDL_TRY(input_const(im, 1, &w));
    if (has_input(im, 2))
        CDL_TRY(input_const(im, 2, &b));
    int64_t group = attr_int(im->cur, "group", 1);
    if (group != 1)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "group=%lld: only group=1 is supported (depthwise later)",
                         (long long)group);
    const cdl_nn_shape *in = value_shape(im, x);
    if (w->crank != 4 || w->cdims[1] != in->dims[0] || w->cdims[0] < 1 || w->cdims[2] < 1 || w->cdims[3] < 1 ||
        w->cdims[2] > 1024 || w->cdims[3] > 1024)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "weight must be [O, %lld, kh, kw] (4-D, matching the %lld input channels)",
                         (long long)in->dims[0], (long long)in->dims[0]);
    if (b && (b->cnumel != (size_t)w->cdims[0]))
        return FAIL_NODE(im, CDL_ERR_FORMAT, "bias has %zu values, expected %lld", b->cnumel, (long long)w->cdims[0]);
    int ks[2] = {(int)w->cdims[2], (int)w->cdims[3]};
    int kattr[2] = {ks[0], ks[1]};
    CDL_TRY(attr_ints(im, "kernel_shape", 2, kattr, 1, 1024));
    if (kattr[0] != ks[0] || kattr[1] != ks[1])
        return FAIL_NODE(im, CDL_ERR_FORMAT, "kernel_shape %dx%d does not match the weight's %dx%d", kattr[0], kattr[1],
                         ks[0], ks[1]);
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, CDL_NN_CONV, x, &nd));
    nd->kernel[0] = ks[0];
    nd->kernel[1] = ks[1];
    nd->out_shape.dims[0] = w->cdims[0];
    CDL_TRY(window_geometry(im, nd, 0));
    nd->weight = cdl_alloc_array(w->cnumel, sizeof(double));
    nd->bias = cdl_calloc_array((size_t)w->cdims[0], sizeof(double));
    if (!nd->weight || !nd->bias)
        return CDL_ERR_NO_MEMORY;
    memcpy(nd->weight, w->cdata, w->cnumel * sizeof(double));
    nd->n_weight = w->cnumel;
    nd->n_bias = (size_t)w->cdims[0];
    if (b)
        memcpy(nd->bias, b->cdata, b->cnumel * sizeof(double));
    if (cdl_nn_shape_numel(&nd->out_shape) > (size_t)CDL_NN_MAX_TENSOR_ELEMS)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "output is too large");
    return bind_ir(im, node_value(im, nd));
}

/* Dense layer from a weight already laid out [out][in]. */
static cdl_status emit_dense(importer *im, int x, size_t out, double *w_owned, double *b_owned)
{
    cdl_nn_node *nd;
    cdl_status st = new_node(im, CDL_NN_DENSE, x, &nd);
    if (st != CDL_OK) {
        cdl_free(w_owned);
        cdl_free(b_owned);
        return st;
    }
    nd->out_shape.rank = 1;
    nd->out_shape.dims[0] = (int64_t)out;
    nd->weight = w_owned;
    nd->n_weight = out * cdl_nn_shape_numel(&nd->in_shape);
    nd->bias = b_owned;
    nd->n_bias = out;
    return bind_ir(im, node_value(im, nd));
}

static cdl_status op_gemm(importer *im, int matmul)
{
    int x;
    ival *B, *C = NULL, *A0, *A1;
    CDL_TRY(input_val(im, 0, &A0));
    CDL_TRY(input_val(im, 1, &A1));
    if (A0->kind == V_CONST && A1->kind != V_CONST)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED,
                         "the weight '%s' is the first operand (W @ x): that multiplies along the batch axis; only x @ W "
                         "(input first, weight second, as nn.Linear exports it) is supported",
                         A0->name);
    if (!matmul && attr_int(im->cur, "transA", 0) != 0)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED,
                         "transA=1 would transpose the [batch, features] input (mixing samples); only transA=0 is "
                         "supported (transB, alpha and beta are)");
    CDL_TRY(input_ir(im, 0, &x));
    CDL_TRY(require_rank(im, x, 1, "a [batch, features] matrix: add a Flatten before it"));
    CDL_TRY(input_const(im, 1, &B));
    if (!matmul && has_input(im, 2))
        CDL_TRY(input_const(im, 2, &C));
    int transB = matmul ? 0 : attr_int(im->cur, "transB", 0) != 0;
    double alpha = matmul ? 1.0 : attr_float(im->cur, "alpha", 1.0), beta = matmul ? 1.0 : attr_float(im->cur, "beta", 1.0);
    if (!isfinite(alpha) || !isfinite(beta))
        return FAIL_NODE(im, CDL_ERR_FORMAT, "alpha and beta must be finite numbers");
    const size_t K = cdl_nn_shape_numel(value_shape(im, x));
    if (B->crank != 2 || (size_t)B->cdims[transB ? 1 : 0] != K || B->cdims[transB ? 0 : 1] < 1)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "weight must be 2-D with %zu %s (the input features)", K,
                         transB ? "columns" : "rows");
    const size_t M = (size_t)B->cdims[transB ? 0 : 1];
    if (C && C->cnumel != M && C->cnumel != 1)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "bias has %zu values, expected %zu or 1", C->cnumel, M);
    double *w = cdl_alloc_array(M, K * sizeof(double));
    double *b = cdl_calloc_array(M, sizeof(double));
    if (!w || !b) {
        cdl_free(w);
        cdl_free(b);
        return CDL_ERR_NO_MEMORY;
    }
    for (size_t m = 0; m < M; m++) {
        for (size_t k = 0; k < K; k++)
            w[m * K + k] = alpha * (transB ? B->cdata[m * K + k] : B->cdata[k * M + m]);
        if (C)
            b[m] = beta * C->cdata[C->cnumel == 1 ? 0 : m];
    }
    return emit_dense(im, x, M, w, b);
}

/* Per-sample channel count for per-channel ops: dim 0 of C,H,W or of F. */
static size_t inner_per_channel(const cdl_nn_shape *s)
{
    size_t n = 1;
    for (int i = 1; i < s->rank; i++)
        n *= (size_t)s->dims[i];
    return n;
}

/* The IR node that produced value `v` if it may be edited in place. */
static cdl_nn_node *foldable_linear(importer *im, const ival *v)
{
    if (v->kind != V_IR || v->ir <= 0 || v->uses != 1 || v->shared)
        return NULL;
    cdl_nn_node *nd = &im->g->nodes[v->ir - 1];
    if (nd->kind != CDL_NN_CONV && nd->kind != CDL_NN_DENSE)
        return NULL;
    return nd;
}

/* y = scale .* x + shift with full-size arrays (owned). Folds into a preceding
 * conv/dense when scale and shift are constant per output channel. */
static cdl_status emit_affine(importer *im, ival *xv, double *scale, double *shift)
{
    int x;
    cdl_status st = materialize(im, xv, &x);
    if (st != CDL_OK)
        goto fail;
    const cdl_nn_shape *s = value_shape(im, x);
    const size_t numel = cdl_nn_shape_numel(s), inner = inner_per_channel(s);
    cdl_nn_node *lin = foldable_linear(im, xv);
    int per_channel = 1;
    for (size_t i = 0; i < numel && per_channel; i++)
        if (scale[i] != scale[i - i % inner] || shift[i] != shift[i - i % inner])
            per_channel = 0;
    if (lin && per_channel) {
        const size_t O = lin->n_bias, row = lin->n_weight / O;
        for (size_t o = 0; o < O; o++) {
            double a = scale[o * inner], c = shift[o * inner];
            for (size_t k = 0; k < row; k++)
                lin->weight[o * row + k] *= a;
            lin->bias[o] = lin->bias[o] * a + c;
        }
        cdl_free(scale);
        cdl_free(shift);
        /* remember the last op folded in */
        return bind_ir(im, x);
    }
    cdl_nn_node *nd;
    st = new_node(im, CDL_NN_AFFINE, x, &nd);
    if (st != CDL_OK)
        goto fail;
    nd->weight = scale;
    nd->bias = shift;
    nd->n_weight = nd->n_bias = numel;
    return bind_ir(im, node_value(im, nd));
fail:
    cdl_free(scale);
    cdl_free(shift);
    return st;
}

static cdl_status op_batchnorm(importer *im)
{
    ival *xv, *sc, *bi, *mean, *var;
    CDL_TRY(only_first_output(im));
    if (attr_int(im->cur, "training_mode", 0) != 0)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "training_mode=1: export the model in eval() mode");
    CDL_TRY(input_val(im, 0, &xv));
    CDL_TRY(input_const(im, 1, &sc));
    CDL_TRY(input_const(im, 2, &bi));
    CDL_TRY(input_const(im, 3, &mean));
    CDL_TRY(input_const(im, 4, &var));
    int x;
    CDL_TRY(materialize(im, xv, &x));
    const cdl_nn_shape *s = value_shape(im, x);
    const size_t C = (size_t)s->dims[0], inner = inner_per_channel(s), numel = cdl_nn_shape_numel(s);
    if (sc->cnumel != C || bi->cnumel != C || mean->cnumel != C || var->cnumel != C)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "scale, bias, mean and variance must have %zu values (the channels)", C);
    double eps = attr_float(im->cur, "epsilon", 1e-5);
    double *a = cdl_alloc_array(numel, sizeof(double)), *b = cdl_alloc_array(numel, sizeof(double));
    if (!a || !b) {
        cdl_free(a);
        cdl_free(b);
        return CDL_ERR_NO_MEMORY;
    }
    for (size_t c = 0; c < C; c++) {
        if (var->cdata[c] + eps <= 0) {
            cdl_free(a);
            cdl_free(b);
            return FAIL_NODE(im, CDL_ERR_FORMAT, "variance + epsilon of channel %zu is not positive", c);
        }
        double k = sc->cdata[c] / sqrt(var->cdata[c] + eps);
        for (size_t i = 0; i < inner; i++) {
            a[c * inner + i] = k;
            b[c * inner + i] = bi->cdata[c] - mean->cdata[c] * k;
        }
    }
    return emit_affine(im, xv, a, b);
}

static cdl_status op_avgpool(importer *im, int global)
{
    int x;
    CDL_TRY(input_ir(im, 0, &x));
    CDL_TRY(require_rank(im, x, 3, "2-D pooling on C,H,W"));
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, CDL_NN_AVGPOOL, x, &nd));
    if (global) {
        if (nd->in_shape.dims[1] > 4096 || nd->in_shape.dims[2] > 4096)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "input too large for a global pool");
        nd->kernel[0] = nd->stride[0] = (int)nd->in_shape.dims[1];
        nd->kernel[1] = nd->stride[1] = (int)nd->in_shape.dims[2];
        nd->out_shape.dims[1] = nd->out_shape.dims[2] = 1;
        nd->count_include_pad = 1;
        return bind_ir(im, node_value(im, nd));
    }
    const Onnx__AttributeProto *k = attr(im->cur, "kernel_shape");
    if (!k || k->n_ints != 2)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "kernel_shape must have 2 values (2-D pooling)");
    CDL_TRY(attr_ints(im, "kernel_shape", 2, nd->kernel, 1, 4096));
    nd->stride[0] = nd->stride[1] = 1;
    CDL_TRY(window_geometry(im, nd, 0));
    nd->count_include_pad = attr_int(im->cur, "count_include_pad", 0) != 0;
    return bind_ir(im, node_value(im, nd));
}

static cdl_status op_pad(importer *im)
{
    int x;
    CDL_TRY(input_ir(im, 0, &x));
    CDL_TRY(require_rank(im, x, 3, "padding of C,H,W"));
    if (!attr_string_is(im->cur, "mode", "constant", 1))
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "only mode=constant (zero padding) is supported");
    int64_t p[8] = {0};
    if (has_input(im, 1)) {
        ival *pv;
        CDL_TRY(input_const(im, 1, &pv));
        if (pv->cnumel != 8)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "pads must have 8 values for a 4-D input");
        for (int i = 0; i < 8; i++)
            p[i] = to_i64(pv->cdata[i]);
        if (has_input(im, 2)) {
            ival *cv;
            CDL_TRY(input_const(im, 2, &cv));
            if (cv->cnumel > 0 && cv->cdata[0] != 0.0)
                return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "constant_value %g: only zero padding is supported", cv->cdata[0]);
        }
    } else {
        const Onnx__AttributeProto *a = attr(im->cur, "pads");
        if (!a || a->n_ints != 8)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "pads must have 8 values for a 4-D input");
        for (int i = 0; i < 8; i++)
            p[i] = a->ints[i];
        if (attr_float(im->cur, "value", 0.0) != 0.0)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "only zero padding is supported");
    }
    if (p[0] || p[1] || p[4] || p[5])
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "only the H and W axes may be padded");
    for (int i = 0; i < 8; i++)
        if (p[i] < 0 || p[i] > 4096)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "pads must be in [0, 4096] (cropping is not supported)");
    if (!p[2] && !p[3] && !p[6] && !p[7]) /* exporters emit all-zero Pads: nothing to do */
        return bind_ir(im, x);
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, CDL_NN_PAD, x, &nd));
    nd->pads[0] = (int)p[2];
    nd->pads[1] = (int)p[3];
    nd->pads[2] = (int)p[6];
    nd->pads[3] = (int)p[7];
    nd->out_shape.dims[1] += p[2] + p[6];
    nd->out_shape.dims[2] += p[3] + p[7];
    if (cdl_nn_shape_numel(&nd->out_shape) > (size_t)CDL_NN_MAX_TENSOR_ELEMS)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "output is too large");
    return bind_ir(im, node_value(im, nd));
}

static cdl_status emit_reshape(importer *im, int x, const cdl_nn_shape *to)
{
    if (cdl_nn_shape_numel(to) == cdl_nn_shape_numel(value_shape(im, x)) && to->rank == value_shape(im, x)->rank &&
        !memcmp(to->dims, value_shape(im, x)->dims, sizeof(int64_t) * (size_t)to->rank))
        return bind_ir(im, x);
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, CDL_NN_RESHAPE, x, &nd));
    nd->out_shape = *to;
    return bind_ir(im, node_value(im, nd));
}

static cdl_status op_flatten(importer *im)
{
    int x = 0;
    CDL_TRY(input_ir(im, 0, &x));
    const cdl_nn_shape *s = value_shape(im, x);
    int64_t axis = attr_int(im->cur, "axis", 1);
    if (axis < 0)
        axis += s->rank + 1;
    if (axis != 1)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "axis=%lld: only axis=1 (keep the batch) is supported",
                         (long long)attr_int(im->cur, "axis", 1));
    cdl_nn_shape to = {.rank = 1, .dims = {(int64_t)cdl_nn_shape_numel(s)}};
    return emit_reshape(im, x, &to);
}

/* Reshape of a constant (shape arithmetic): 0 copies, -1 is inferred. */
static cdl_status const_reshape(importer *im, const ival *d, const ival *sv)
{
    if (sv->crank != 1 || sv->cnumel > MAX_CONST_RANK)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "the target shape must be 1-D with at most %d values", MAX_CONST_RANK);
    int64_t dims[MAX_CONST_RANK];
    int infer = -1;
    size_t known = 1;
    for (size_t i = 0; i < sv->cnumel; i++) {
        int64_t v = to_i64(sv->cdata[i]);
        if (v == 0 && (int)i < d->crank)
            v = d->cdims[i];
        if (v == -1 && infer < 0) {
            infer = (int)i;
            v = 1;
        } else if (v < 0 || v > CDL_NN_MAX_TENSOR_ELEMS) {
            return FAIL_NODE(im, CDL_ERR_FORMAT, "bad target dimension %lld", (long long)v);
        }
        dims[i] = v;
        if (v && known > (size_t)CDL_NN_MAX_TENSOR_ELEMS / (size_t)v)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "target shape overflows");
        known *= (size_t)v;
    }
    if (infer >= 0) {
        if (known == 0 || d->cnumel % known)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "cannot reshape %zu values", d->cnumel);
        dims[infer] = (int64_t)(d->cnumel / known);
        known = d->cnumel;
    }
    if (known != d->cnumel)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "cannot reshape %zu values into %zu", d->cnumel, known);
    ival *o;
    CDL_TRY(output_val(im, 0, &o));
    return make_const(o, dims, (int)sv->cnumel, d->cdata);
}

static cdl_status op_reshape(importer *im)
{
    int x;
    ival *sv, *xv;
    CDL_TRY(input_val(im, 0, &xv));
    if (xv->kind == V_CONST) {
        CDL_TRY(input_const(im, 1, &sv));
        return const_reshape(im, xv, sv);
    }
    CDL_TRY(input_ir(im, 0, &x));
    CDL_TRY(input_const(im, 1, &sv));
    const cdl_nn_shape *s = value_shape(im, x);
    const size_t numel = cdl_nn_shape_numel(s);
    if (sv->crank != 1 || sv->cnumel < 2 || sv->cnumel > CDL_NN_MAX_RANK + 1)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "the target shape must have 2 to %d values (batch first)",
                         CDL_NN_MAX_RANK + 1);
    int64_t t0 = to_i64(sv->cdata[0]);
    cdl_nn_shape to = {.rank = (int)sv->cnumel - 1};
    int infer = -1;
    size_t known = 1;
    for (int i = 0; i < to.rank; i++) {
        int64_t d = to_i64(sv->cdata[i + 1]);
        if (d == 0 && i < s->rank && !attr_int(im->cur, "allowzero", 0))
            d = s->dims[i];
        if (d == -1) {
            if (infer >= 0)
                return FAIL_NODE(im, CDL_ERR_FORMAT, "the target shape has two -1");
            infer = i;
            d = 1;
        } else if (d < 1 || d > CDL_NN_MAX_TENSOR_ELEMS) {
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "target dimension %lld is not supported", (long long)d);
        }
        to.dims[i] = d;
        if (known > (size_t)CDL_NN_MAX_TENSOR_ELEMS / (size_t)d)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "target shape overflows");
        known *= (size_t)d;
    }
    if (t0 == -1 && infer < 0) {
        /* batch inferred: per-sample dims must match */
    } else if (t0 != 0 && t0 != 1 && t0 != im->batch) {
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "reshape changes the batch dimension (first target value %lld); "
                                                 "only per-sample reshapes are supported", (long long)t0);
    }
    if (infer >= 0) {
        if (numel % known)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "cannot reshape %zu values into the target shape", numel);
        to.dims[infer] = (int64_t)(numel / known);
    } else if (known != numel) {
        return FAIL_NODE(im, CDL_ERR_FORMAT, "cannot reshape %zu values per sample into %zu", numel, known);
    }
    if (to.rank == 4 && to.dims[0] == 1) { /* [1, C, H, W] per sample: drop the unit axis */
        memmove(to.dims, to.dims + 1, 3 * sizeof(int64_t));
        to.rank = 3;
    }
    if (to.rank < 1 || to.rank > 3)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "per-sample rank %d: only 1 to 3 dimensions are supported", to.rank);
    return emit_reshape(im, x, &to);
}

static cdl_status op_activation(importer *im, cdl_nn_kind kind)
{
    int x;
    CDL_TRY(input_ir(im, 0, &x));
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, kind, x, &nd));
    return bind_ir(im, node_value(im, nd));
}

/* ---- elementwise: polynomial fusion -------------------------------------- */

/* Broadcast a constant to the per-sample shape (numpy rules, batch axis 1). */
static cdl_status broadcast_const(importer *im, const ival *c, const cdl_nn_shape *s, double **out)
{
    int full = s->rank + 1;
    int64_t fd[CDL_NN_MAX_RANK + 1];
    fd[0] = 1;
    for (int i = 0; i < s->rank; i++)
        fd[i + 1] = s->dims[i];
    if (c->crank > full)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "constant '%s' has more dimensions than the tensor", c->name);
    int64_t cd[CDL_NN_MAX_RANK + 1];
    for (int i = 0; i < full; i++) {
        int j = i - (full - c->crank);
        cd[i] = j >= 0 ? c->cdims[j] : 1;
        if (cd[i] != 1 && cd[i] != fd[i])
            return FAIL_NODE(im, CDL_ERR_FORMAT, "constant '%s' does not broadcast to the tensor's shape", c->name);
    }
    const size_t numel = cdl_nn_shape_numel(s);
    double *r = cdl_alloc_array(numel, sizeof *r);
    if (!r)
        return CDL_ERR_NO_MEMORY;
    for (size_t i = 0; i < numel; i++) {
        size_t rem = i, ci = 0, stride = 1;
        for (int a = full - 1; a >= 1; a--) {
            size_t idx = rem % (size_t)fd[a];
            rem /= (size_t)fd[a];
            if (cd[a] != 1)
                ci += idx * stride;
            stride *= (size_t)cd[a];
        }
        r[i] = c->cdata[ci];
    }
    *out = r;
    return CDL_OK;
}

/* View any computed value as a polynomial of its base (fresh array). */
static cdl_status as_poly(const ival *v, double **p, int *deg, int *base)
{
    if (v->kind == V_POLY) {
        *p = cdl_alloc_array((size_t)v->pdeg + 1, sizeof(double));
        if (!*p)
            return CDL_ERR_NO_MEMORY;
        memcpy(*p, v->poly, ((size_t)v->pdeg + 1) * sizeof(double));
        *deg = v->pdeg;
    } else {
        *p = cdl_calloc_array(2, sizeof(double));
        if (!*p)
            return CDL_ERR_NO_MEMORY;
        (*p)[1] = 1.0;
        *deg = 1;
    }
    *base = v->ir;
    return CDL_OK;
}

static cdl_status bind_poly(importer *im, int base, double *p, int deg, const char *op)
{
    ival *o;
    cdl_status st = output_val(im, 0, &o);
    if (st != CDL_OK) {
        cdl_free(p);
        return st;
    }
    o->kind = V_POLY;
    o->ir = base;
    o->poly = p;
    o->pdeg = deg;
    o->op = op;
    return CDL_OK;
}

static cdl_status poly_mul(importer *im, const double *a, int da, const double *b, int db, double **out, int *dout)
{
    if (da + db > CDL_NN_MAX_POLY_DEGREE)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "the fused polynomial would have degree %d (at most %d)", da + db,
                         CDL_NN_MAX_POLY_DEGREE);
    double *r = cdl_calloc_array((size_t)(da + db) + 1, sizeof *r);
    if (!r)
        return CDL_ERR_NO_MEMORY;
    for (int i = 0; i <= da; i++)
        for (int j = 0; j <= db; j++)
            r[i + j] += a[i] * b[j];
    *out = r;
    *dout = da + db;
    return CDL_OK;
}

typedef enum { EW_ADD, EW_SUB, EW_MUL, EW_DIV, EW_POW } ew_op;

static cdl_status const_fold(importer *im, ew_op op, const ival *a, const ival *b)
{
    const ival *big = (a->cnumel > b->cnumel || (a->cnumel == b->cnumel && a->crank >= b->crank)) ? a : b;
    if (!(a->cnumel == b->cnumel || a->cnumel == 1 || b->cnumel == 1))
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "constant arithmetic needs equal sizes or a scalar");
    double *r = cdl_alloc_array(big->cnumel ? big->cnumel : 1, sizeof *r);
    if (!r)
        return CDL_ERR_NO_MEMORY;
    for (size_t i = 0; i < big->cnumel; i++) {
        double x = a->cdata[a->cnumel == 1 ? 0 : i], y = b->cdata[b->cnumel == 1 ? 0 : i];
        switch (op) {
        case EW_ADD: r[i] = x + y; break;
        case EW_SUB: r[i] = x - y; break;
        case EW_MUL: r[i] = x * y; break;
        case EW_DIV: r[i] = x / y; break;
        default: r[i] = pow(x, y); break;
        }
        if (!isfinite(r[i])) {
            cdl_free(r);
            return FAIL_NODE(im, CDL_ERR_FORMAT, "constant arithmetic gives a NaN or infinity");
        }
    }
    ival *o;
    cdl_status st = output_val(im, 0, &o);
    if (st == CDL_OK)
        st = make_const(o, big->cdims, big->crank, r);
    cdl_free(r);
    return st;
}

static cdl_status op_elementwise(importer *im, ew_op op)
{
    ival *a, *b;
    CDL_TRY(input_val(im, 0, &a));
    CDL_TRY(input_val(im, 1, &b));
    const char *opname = im->cur->op_type;
    if (a->kind == V_CONST && b->kind == V_CONST)
        return const_fold(im, op, a, b);
    if (op == EW_POW) {
        if (b->kind != V_CONST || b->cnumel != 1)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "the exponent must be a constant scalar");
        double e = b->cdata[0];
        if (e != floor(e) || e < 1 || e > 8)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "exponent %g: only integer exponents 1..8 are supported", e);
        double *p, *r = NULL;
        int d, base, dr = 0;
        CDL_TRY(as_poly(a, &p, &d, &base));
        double one = 1.0;
        const double *acc = &one;
        int dacc = 0;
        double *own = NULL;
        cdl_status st = CDL_OK;
        for (int k = 0; k < (int)e && st == CDL_OK; k++) {
            st = poly_mul(im, acc, dacc, p, d, &r, &dr);
            cdl_free(own);
            own = r;
            acc = r;
            dacc = dr;
        }
        cdl_free(p);
        if (st != CDL_OK) {
            cdl_free(own);
            return st;
        }
        return bind_poly(im, base, own, dacc, opname);
    }
    /* constant operand */
    if (a->kind == V_CONST || b->kind == V_CONST) {
        const ival *c = a->kind == V_CONST ? a : b;
        ival *t = a->kind == V_CONST ? b : a;
        int const_first = a->kind == V_CONST;
        if (op == EW_DIV && const_first)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "division by a computed tensor is not supported");
        if (c->cnumel == 1) {
            double k = c->cdata[0];
            double *p;
            int d, base;
            if (op == EW_DIV && k == 0.0)
                return FAIL_NODE(im, CDL_ERR_FORMAT, "division by zero");
            CDL_TRY(as_poly(t, &p, &d, &base));
            if (op == EW_MUL || op == EW_DIV) {
                double m = op == EW_MUL ? k : 1.0 / k;
                for (int i = 0; i <= d; i++)
                    p[i] *= m;
            } else {
                if (op == EW_SUB && const_first)
                    for (int i = 0; i <= d; i++)
                        p[i] = -p[i];
                p[0] += (op == EW_SUB && !const_first) ? -k : k;
            }
            return bind_poly(im, base, p, d, opname);
        }
        /* a constant tensor: elementwise affine */
        int x;
        CDL_TRY(materialize(im, t, &x));
        double *cb = NULL;
        CDL_TRY(broadcast_const(im, c, value_shape(im, x), &cb));
        const size_t n = cdl_nn_shape_numel(value_shape(im, x));
        double *sc = cdl_alloc_array(n, sizeof *sc), *sh = cdl_alloc_array(n, sizeof *sh);
        if (!sc || !sh) {
            cdl_free(cb);
            cdl_free(sc);
            cdl_free(sh);
            return CDL_ERR_NO_MEMORY;
        }
        for (size_t i = 0; i < n; i++) {
            switch (op) {
            case EW_ADD: sc[i] = 1; sh[i] = cb[i]; break;
            case EW_SUB: sc[i] = const_first ? -1 : 1; sh[i] = const_first ? cb[i] : -cb[i]; break;
            case EW_MUL: sc[i] = cb[i]; sh[i] = 0; break;
            default:
                if (cb[i] == 0.0) {
                    cdl_free(cb);
                    cdl_free(sc);
                    cdl_free(sh);
                    return FAIL_NODE(im, CDL_ERR_FORMAT, "division by zero");
                }
                sc[i] = 1.0 / cb[i];
                sh[i] = 0;
                break;
            }
        }
        cdl_free(cb);
        return emit_affine(im, t, sc, sh);
    }
    /* two computed tensors */
    if (op == EW_DIV)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "division of two computed tensors is not supported");
    if (a->ir == b->ir) { /* polynomials of the same base: fuse */
        double *pa, *pb, *r;
        int da, db, dr, base;
        CDL_TRY(as_poly(a, &pa, &da, &base));
        cdl_status st = as_poly(b, &pb, &db, &base);
        if (st != CDL_OK) {
            cdl_free(pa);
            return st;
        }
        if (op == EW_MUL) {
            st = poly_mul(im, pa, da, pb, db, &r, &dr);
        } else {
            dr = da > db ? da : db;
            r = cdl_calloc_array((size_t)dr + 1, sizeof *r);
            if (!r)
                st = CDL_ERR_NO_MEMORY;
            else {
                for (int i = 0; i <= da; i++)
                    r[i] += pa[i];
                for (int i = 0; i <= db; i++)
                    r[i] += op == EW_SUB ? -pb[i] : pb[i];
            }
        }
        cdl_free(pa);
        cdl_free(pb);
        if (st != CDL_OK)
            return st;
        return bind_poly(im, base, r, dr, opname);
    }
    int xa, xb;
    CDL_TRY(materialize(im, a, &xa));
    CDL_TRY(materialize(im, b, &xb));
    const cdl_nn_shape *sa = value_shape(im, xa), *sb = value_shape(im, xb);
    if (sa->rank != sb->rank || memcmp(sa->dims, sb->dims, sizeof(int64_t) * (size_t)sa->rank))
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "the two inputs have different shapes (no broadcasting between computed tensors)");
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, op == EW_MUL ? CDL_NN_MUL : CDL_NN_ADD, xa, &nd));
    nd->n_inputs = 2;
    nd->inputs[1] = xb;
    if (op != EW_MUL) {
        nd->coeffs = cdl_alloc_array(1, sizeof(double));
        if (!nd->coeffs)
            return CDL_ERR_NO_MEMORY;
        nd->coeffs[0] = op == EW_SUB ? -1.0 : 1.0;
    }
    return bind_ir(im, node_value(im, nd));
}

/* ---- constants and shape arithmetic ------------------------------------- */

static cdl_status op_constant(importer *im)
{
    ival *o;
    CDL_TRY(output_val(im, 0, &o));
    const Onnx__AttributeProto *a;
    if ((a = attr(im->cur, "value")) && a->t)
        return tensor_to_const(a->t, o);
    if ((a = attr(im->cur, "value_float")) && a->has_f) {
        double d = a->f;
        return make_const(o, NULL, 0, &d);
    }
    if ((a = attr(im->cur, "value_int")) && a->has_i) {
        double d = (double)a->i;
        return make_const(o, NULL, 0, &d);
    }
    if ((a = attr(im->cur, "value_floats")) || (a = attr(im->cur, "value_ints"))) {
        size_t n = a->n_floats ? a->n_floats : a->n_ints;
        if (n > (size_t)CDL_NN_MAX_TENSOR_ELEMS)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "too many values");
        double *d = cdl_alloc_array(n ? n : 1, sizeof *d);
        if (!d)
            return CDL_ERR_NO_MEMORY;
        for (size_t i = 0; i < n; i++)
            d[i] = a->n_floats ? a->floats[i] : (double)a->ints[i];
        int64_t dim = (int64_t)n;
        cdl_status st = make_const(o, &dim, 1, d);
        cdl_free(d);
        return st;
    }
    return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "only value, value_float(s) and value_int(s) constants are supported");
}

static cdl_status op_shape(importer *im)
{
    ival *x;
    CDL_TRY(input_val(im, 0, &x));
    double d[CDL_NN_MAX_RANK + 1];
    int64_t n;
    if (x->kind == V_CONST) {
        n = x->crank;
        for (int i = 0; i < x->crank; i++)
            d[i] = (double)x->cdims[i];
    } else {
        const cdl_nn_shape *s = value_shape(im, x->ir);
        n = s->rank + 1;
        d[0] = (double)im->batch;
        for (int i = 0; i < s->rank; i++)
            d[i + 1] = (double)s->dims[i];
    }
    if (attr(im->cur, "start") || attr(im->cur, "end"))
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "start/end attributes are not supported");
    ival *o;
    CDL_TRY(output_val(im, 0, &o));
    return make_const(o, &n, 1, d);
}

static cdl_status op_gather(importer *im)
{
    ival *data, *idx;
    CDL_TRY(input_const(im, 0, &data));
    CDL_TRY(input_const(im, 1, &idx));
    if (attr_int(im->cur, "axis", 0) != 0 || data->crank != 1 || idx->crank > 1)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "only axis 0 of a 1-D constant with scalar or 1-D indices");
    double *r = cdl_alloc_array(idx->cnumel ? idx->cnumel : 1, sizeof *r);
    if (!r)
        return CDL_ERR_NO_MEMORY;
    for (size_t i = 0; i < idx->cnumel; i++) {
        double k = idx->cdata[i];
        if (k < 0)
            k += (double)data->cnumel;
        if (k < 0 || k >= (double)data->cnumel) {
            cdl_free(r);
            return FAIL_NODE(im, CDL_ERR_FORMAT, "index %g out of range", idx->cdata[i]);
        }
        r[i] = data->cdata[(size_t)k];
    }
    ival *o;
    cdl_status st = output_val(im, 0, &o);
    if (st == CDL_OK)
        st = make_const(o, idx->cdims, idx->crank, r);
    cdl_free(r);
    return st;
}

/* Squeeze / Unsqueeze of a computed tensor, e.g. `gap(x).squeeze(-1).squeeze(-1)`
 * or `x.squeeze()` after global pooling: a per-sample reshape. The batch
 * axis must stay where it is. */
static cdl_status squeeze_computed(importer *im, ival *xv, const int64_t *axes, size_t na, int squeeze)
{
    int x = 0;
    CDL_TRY(materialize(im, xv, &x));
    const cdl_nn_shape *s = value_shape(im, x);
    const int full = s->rank + 1, out_full = squeeze ? full - (int)na : full + (int)na;
    int64_t fd[CDL_NN_MAX_RANK + 2] = {1};
    for (int i = 0; i < s->rank; i++)
        fd[i + 1] = s->dims[i];
    int mark[CDL_NN_MAX_RANK + 2 + MAX_CONST_RANK] = {0};
    const int range = squeeze ? full : out_full;
    if (out_full < 2 || out_full > CDL_NN_MAX_RANK)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED,
                         "the result would have %d dimensions; only [batch, features] to [batch, C, H, W] are supported",
                         out_full);
    for (size_t k = 0; k < na; k++) {
        int64_t ax = axes[k] < 0 ? axes[k] + range : axes[k];
        if (ax < 0 || ax >= range)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "axis %lld is out of range for a %d-D tensor", (long long)axes[k],
                             range);
        if (ax == 0)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "axis %lld is the batch axis: only per-sample axes may be %s",
                             (long long)axes[k], squeeze ? "squeezed" : "inserted");
        if (mark[ax])
            return FAIL_NODE(im, CDL_ERR_FORMAT, "axis %lld is repeated", (long long)axes[k]);
        if (squeeze && fd[ax] != 1)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "axis %lld has size %lld, not 1", (long long)axes[k],
                             (long long)fd[ax]);
        mark[ax] = 1;
    }
    cdl_nn_shape to = {.rank = 0};
    if (squeeze) {
        for (int i = 1; i < full; i++)
            if (!(na ? mark[i] : fd[i] == 1)) /* no axes: every per-sample axis of size 1 */
                to.dims[to.rank++] = fd[i];
    } else {
        for (int i = 1, src = 1; i < out_full; i++)
            to.dims[to.rank++] = mark[i] ? 1 : fd[src++];
    }
    if (to.rank < 1 || to.rank > 3)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "per-sample rank %d: only 1 to 3 dimensions are supported", to.rank);
    return emit_reshape(im, x, &to);
}

static cdl_status op_unsqueeze(importer *im, int squeeze)
{
    ival *x;
    CDL_TRY(input_val(im, 0, &x));
    int64_t axes[MAX_CONST_RANK];
    size_t na = 0;
    const Onnx__AttributeProto *a = attr(im->cur, "axes");
    if (a) {
        if (a->n_ints > MAX_CONST_RANK)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "too many axes");
        for (size_t i = 0; i < a->n_ints; i++)
            axes[na++] = a->ints[i];
    } else if (has_input(im, 1)) {
        ival *av;
        CDL_TRY(input_const(im, 1, &av));
        if (av->cnumel > MAX_CONST_RANK)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "too many axes");
        for (size_t i = 0; i < av->cnumel; i++)
            axes[na++] = to_i64(av->cdata[i]);
    }
    if (x->kind != V_CONST)
        return squeeze_computed(im, x, axes, na, squeeze);
    int64_t dims[MAX_CONST_RANK];
    int rank = 0;
    if (squeeze) {
        for (int i = 0; i < x->crank; i++) {
            int drop = 0;
            for (size_t k = 0; k < na; k++)
                if (axes[k] == i || axes[k] + x->crank == i)
                    drop = 1;
            if (na == 0 && x->cdims[i] == 1)
                drop = 1;
            if (!drop)
                dims[rank++] = x->cdims[i];
        }
    } else {
        int out_rank = x->crank + (int)na, src = 0;
        if (out_rank > MAX_CONST_RANK)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "rank too large");
        for (int i = 0; i < out_rank; i++) {
            int ins = 0;
            for (size_t k = 0; k < na; k++)
                if (axes[k] == i || axes[k] + out_rank == i)
                    ins = 1;
            if (!ins && src >= x->crank)
                return FAIL_NODE(im, CDL_ERR_FORMAT, "bad axes");
            dims[rank++] = ins ? 1 : x->cdims[src++];
        }
    }
    ival *o;
    CDL_TRY(output_val(im, 0, &o));
    return make_const(o, dims, rank, x->cdata);
}

static cdl_status op_concat(importer *im)
{
    size_t total = 0;
    for (size_t k = 0; k < im->cur->n_input; k++) {
        ival *v;
        CDL_TRY(input_const(im, k, &v));
        if (v->crank > 1)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "only 1-D constant (shape) inputs are supported");
        total += v->cnumel;
        if (total > 64)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "only short shape vectors are supported");
    }
    double r[64];
    size_t at = 0;
    for (size_t k = 0; k < im->cur->n_input; k++) {
        ival *v = lookup(im, im->cur->input[k]);
        memcpy(r + at, v->cdata, v->cnumel * sizeof(double));
        at += v->cnumel;
    }
    ival *o;
    CDL_TRY(output_val(im, 0, &o));
    int64_t n = (int64_t)total;
    return make_const(o, &n, 1, r);
}

static cdl_status op_cast(importer *im)
{
    ival *x;
    CDL_TRY(input_val(im, 0, &x));
    int64_t to = attr_int(im->cur, "to", 1);
    if (x->kind != V_CONST && to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && to != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "casting a computed tensor to a non-float type");
    CDL_TRY(bind_alias(im, x));
    ival *o = lookup(im, im->cur->output[0]);
    if (o->kind == V_CONST && to != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && to != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
        for (size_t i = 0; i < o->cnumel; i++)
            o->cdata[i] = trunc(o->cdata[i]);
    return CDL_OK;
}

/* Row-major strides of a constant. */
static void const_strides(const ival *v, size_t *st)
{
    size_t acc = 1;
    for (int i = v->crank - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= (size_t)v->cdims[i];
    }
}

/* Make output 0 of the node the constant r (dims, rank), and free r. */
static cdl_status output_const_owned(importer *im, const int64_t *dims, int rank, double *r)
{
    ival *out;
    cdl_status st = output_val(im, 0, &out);
    if (st == CDL_OK)
        st = make_const(out, dims, rank, r);
    cdl_free(r);
    return st;
}

static cdl_status op_transpose(importer *im)
{
    ival *x;
    CDL_TRY(input_const(im, 0, &x));
    int perm[MAX_CONST_RANK];
    const Onnx__AttributeProto *a = attr(im->cur, "perm");
    for (int i = 0; i < x->crank; i++)
        perm[i] = x->crank - 1 - i;
    if (a && a->n_ints) {
        if ((int)a->n_ints != x->crank)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "perm has %zu values for rank %d", a->n_ints, x->crank);
        int seen[MAX_CONST_RANK] = {0};
        for (int i = 0; i < x->crank; i++) {
            if (a->ints[i] < 0 || a->ints[i] >= x->crank || seen[a->ints[i]]++)
                return FAIL_NODE(im, CDL_ERR_FORMAT, "perm is not a permutation");
            perm[i] = (int)a->ints[i];
        }
    }
    size_t st[MAX_CONST_RANK];
    int64_t dims[MAX_CONST_RANK];
    const_strides(x, st);
    for (int i = 0; i < x->crank; i++)
        dims[i] = x->cdims[perm[i]];
    double *r = cdl_alloc_array(x->cnumel ? x->cnumel : 1, sizeof *r);
    if (!r)
        return CDL_ERR_NO_MEMORY;
    for (size_t o = 0; o < x->cnumel; o++) {
        size_t rem = o, src = 0;
        for (int i = x->crank - 1; i >= 0; i--) {
            size_t idx = rem % (size_t)dims[i];
            rem /= (size_t)dims[i];
            src += idx * st[perm[i]];
        }
        r[o] = x->cdata[src];
    }
    return output_const_owned(im, dims, x->crank, r);
}

/* ONNX Slice bounds: starts/ends/axes/steps from inputs (opset >= 10) or
 * attributes (opset < 10), resolved against dims[rank] and clamped as the
 * operator specifies. Output index i of axis a reads start[a] + i * step[a],
 * for i < len[a]; axes not named keep start 0, step 1, len dims[a]. */
static cdl_status slice_bounds(importer *im, int rank, const int64_t *dims, int64_t *start, int64_t *len,
                               int64_t *step)
{
    int named[MAX_CONST_RANK] = {0};
    for (int i = 0; i < rank; i++)
        start[i] = 0, len[i] = dims[i], step[i] = 1;
    int64_t vs[4][MAX_CONST_RANK];
    size_t nv[4] = {0, 0, 0, 0};
    static const char *const names[4] = {"starts", "ends", "axes", "steps"};
    for (int k = 0; k < 4; k++) {
        if (has_input(im, (size_t)k + 1)) {
            ival *c;
            CDL_TRY(input_const(im, (size_t)k + 1, &c));
            if (c->cnumel > MAX_CONST_RANK)
                return FAIL_NODE(im, CDL_ERR_FORMAT, "too many %s", names[k]);
            for (size_t i = 0; i < c->cnumel; i++)
                vs[k][i] = to_i64(c->cdata[i]);
            nv[k] = c->cnumel;
        } else {
            const Onnx__AttributeProto *a = attr(im->cur, names[k]);
            if (a && a->n_ints) {
                if (a->n_ints > MAX_CONST_RANK)
                    return FAIL_NODE(im, CDL_ERR_FORMAT, "too many %s", names[k]);
                for (size_t i = 0; i < a->n_ints; i++)
                    vs[k][i] = a->ints[i];
                nv[k] = a->n_ints;
            }
        }
    }
    if (nv[0] != nv[1] || (nv[2] && nv[2] != nv[0]) || (nv[3] && nv[3] != nv[0]))
        return FAIL_NODE(im, CDL_ERR_FORMAT, "starts, ends, axes and steps differ in length");
    for (size_t i = 0; i < nv[0]; i++) {
        int64_t ax = nv[2] ? vs[2][i] : (int64_t)i;
        if (ax < 0)
            ax += rank;
        if (ax < 0 || ax >= rank)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "axis out of range");
        if (named[ax]++)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "axis %lld is sliced twice", (long long)ax);
        int64_t d = dims[ax], sp = nv[3] ? vs[3][i] : 1, b = vs[0][i], e = vs[1][i];
        if (sp == 0)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "step 0");
        if (b < 0)
            b = b < -d ? -d : b, b += d;
        if (e < 0)
            e = e < -d ? -d : e, e += d;
        if (sp > 0) {
            b = b > d ? d : b;
            e = e > d ? d : e;
        } else {
            b = b > d - 1 ? d - 1 : b;
            e = e > d - 1 ? d - 1 : e;
            if (vs[1][i] < -d)
                e = -1;
        }
        /* a step longer than the axis reads one element: clamp it so that
         * no product or negation below can overflow */
        const int64_t most = d > 0 ? d : 1;
        sp = sp > most ? most : sp < -most ? -most : sp;
        start[ax] = b;
        step[ax] = sp;
        len[ax] = sp > 0 ? (e > b ? (e - b - 1) / sp + 1 : 0) : (b > e ? (b - e - 1) / -sp + 1 : 0);
    }
    return CDL_OK;
}

/* Slice of a computed tensor: a move (crop, flip, strided subsample) of its
 * per-sample axes; the batch axis must be kept whole. */
static cdl_status slice_computed(importer *im)
{
    int x;
    CDL_TRY(input_ir(im, 0, &x));
    const cdl_nn_shape *s = value_shape(im, x);
    int64_t dims[MAX_CONST_RANK], start[MAX_CONST_RANK], len[MAX_CONST_RANK], step[MAX_CONST_RANK];
    dims[0] = CDL_NN_MAX_TENSOR_ELEMS; /* the batch: "to the end" must reach past any real size */
    for (int a = 0; a < s->rank; a++)
        dims[a + 1] = s->dims[a];
    CDL_TRY(slice_bounds(im, s->rank + 1, dims, start, len, step));
    if (start[0] != 0 || step[0] != 1 || len[0] != dims[0])
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "slicing the batch axis is not supported (slice C, H or W)");
    int identity = 1;
    for (int a = 1; a <= s->rank; a++) {
        if (len[a] < 1)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "the slice of axis %d is empty", a);
        identity &= start[a] == 0 && step[a] == 1 && len[a] == dims[a];
    }
    if (identity)
        return bind_ir(im, x);
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, CDL_NN_SLICE, x, &nd));
    for (int a = 0; a < s->rank; a++) {
        nd->out_shape.dims[a] = len[a + 1];
        nd->slice_start[a] = start[a + 1];
        nd->slice_step[a] = step[a + 1];
    }
    return bind_ir(im, node_value(im, nd));
}

/* Slice: of a constant (shape arithmetic, folded here) or of a computed tensor. */
static cdl_status op_slice(importer *im)
{
    ival *x;
    CDL_TRY(input_val(im, 0, &x));
    if (x->kind != V_CONST)
        return slice_computed(im);
    int64_t start[MAX_CONST_RANK], dims[MAX_CONST_RANK], step[MAX_CONST_RANK];
    CDL_TRY(slice_bounds(im, x->crank, x->cdims, start, dims, step));
    size_t n = 1;
    for (int i = 0; i < x->crank; i++)
        n *= (size_t)dims[i];
    size_t st[MAX_CONST_RANK];
    const_strides(x, st);
    double *r = cdl_alloc_array(n ? n : 1, sizeof *r);
    if (!r)
        return CDL_ERR_NO_MEMORY;
    for (size_t o = 0; o < n; o++) {
        size_t rem = o, src = 0;
        for (int i = x->crank - 1; i >= 0; i--) {
            size_t idx = rem % (size_t)dims[i];
            rem /= (size_t)dims[i];
            src += (size_t)(start[i] + (int64_t)idx * step[i]) * st[i];
        }
        r[o] = x->cdata[src];
    }
    return output_const_owned(im, dims, x->crank, r);
}

static cdl_status op_constant_of_shape(importer *im)
{
    ival *sv;
    CDL_TRY(input_const(im, 0, &sv));
    if (sv->crank > 1 || sv->cnumel > MAX_CONST_RANK)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "the shape must be 1-D with at most %d values", MAX_CONST_RANK);
    int64_t dims[MAX_CONST_RANK];
    for (size_t i = 0; i < sv->cnumel; i++)
        dims[i] = to_i64(sv->cdata[i]);
    size_t n;
    CDL_TRY(check_dims(dims, sv->cnumel, &n, im->cur->output[0]));
    if (n > 4096)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "only small constants (shape arithmetic) are supported");
    double fill = 0;
    const Onnx__AttributeProto *a = attr(im->cur, "value");
    if (a && a->t) {
        ival tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.name = "value";
        CDL_TRY(tensor_to_const(a->t, &tmp));
        fill = tmp.cnumel ? tmp.cdata[0] : 0;
        ival_clear(&tmp);
    }
    double *r = cdl_alloc_array(n ? n : 1, sizeof *r);
    if (!r)
        return CDL_ERR_NO_MEMORY;
    for (size_t i = 0; i < n; i++)
        r[i] = fill;
    return output_const_owned(im, dims, (int)sv->cnumel, r);
}

/* ---- softmax, max pooling, more activations, reductions ------------------ */

/* Softmax / LogSoftmax. Opset < 13: the input is seen as 2-D [d0..d(axis-1),
 * d(axis)..] and normalised over the flattened trailing part (default axis
 * 1); opset >= 13: over the one axis (default -1). Both become groups of
 * kernel[0] values kernel[1] apart. The batch axis cannot be normalised. */
static cdl_status op_softmax(importer *im, cdl_nn_kind kind)
{
    int x = 0;
    CDL_TRY(input_ir(im, 0, &x));
    const cdl_nn_shape *s = value_shape(im, x);
    const int full = s->rank + 1, per_axis = im->g->opset == 0 || im->g->opset >= 13;
    const int64_t axis = attr_int(im->cur, "axis", per_axis ? -1 : 1);
    const int64_t ax = axis < 0 ? axis + full : axis;
    if (ax < 0 || ax >= full)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "axis %lld is out of range for a %d-D tensor (-%d..%d)", (long long)axis,
                         full, full, full - 1);
    if (ax == 0)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED,
                         "axis %lld normalises across the batch (samples); only per-sample axes are supported "
                         "(axis=1 or -1 for the classes of a [N, C] output)",
                         (long long)axis);
    size_t len = (size_t)s->dims[ax - 1], inner = 1;
    for (int i = (int)ax; i < s->rank; i++) {
        if (per_axis)
            inner *= (size_t)s->dims[i];
        else
            len *= (size_t)s->dims[i];
    }
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, kind, x, &nd));
    nd->kernel[0] = (int)len; /* both <= CDL_NN_MAX_ACTIVATION values per sample */
    nd->kernel[1] = (int)inner;
    return bind_ir(im, node_value(im, nd));
}

/* A pool over the whole H x W plane (GlobalAveragePool, GlobalMaxPool,
 * ReduceMean over H and W). */
static cdl_status emit_global_pool(importer *im, int x, cdl_nn_kind kind, cdl_nn_node **out)
{
    CDL_TRY(require_rank(im, x, 3, "2-D pooling on C,H,W"));
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, kind, x, &nd));
    if (nd->in_shape.dims[1] > 4096 || nd->in_shape.dims[2] > 4096)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "input too large for a global pool (at most 4096 x 4096)");
    nd->kernel[0] = nd->stride[0] = (int)nd->in_shape.dims[1];
    nd->kernel[1] = nd->stride[1] = (int)nd->in_shape.dims[2];
    nd->out_shape.dims[1] = nd->out_shape.dims[2] = 1;
    nd->count_include_pad = 1;
    *out = nd;
    return CDL_OK;
}

static cdl_status op_maxpool(importer *im, int global)
{
    int x = 0;
    CDL_TRY(only_first_output(im)); /* the Indices output is not supported */
    CDL_TRY(input_ir(im, 0, &x));
    CDL_TRY(require_rank(im, x, 3, "2-D pooling on C,H,W"));
    cdl_nn_node *nd;
    if (global) {
        CDL_TRY(emit_global_pool(im, x, CDL_NN_MAXPOOL, &nd));
        return bind_ir(im, node_value(im, nd));
    }
    if (attr_int(im->cur, "storage_order", 0) != 0)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "storage_order=%lld: only 0 (row major) is supported",
                         (long long)attr_int(im->cur, "storage_order", 0));
    const Onnx__AttributeProto *k = attr(im->cur, "kernel_shape");
    if (!k || k->n_ints != 2)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "kernel_shape must have 2 values (2-D pooling)");
    CDL_TRY(new_node(im, CDL_NN_MAXPOOL, x, &nd));
    CDL_TRY(attr_ints(im, "kernel_shape", 2, nd->kernel, 1, 4096));
    CDL_TRY(window_geometry(im, nd, 1));
    return bind_ir(im, node_value(im, nd));
}

/* A number attribute that must be finite. */
static cdl_status attr_finite(importer *im, const char *name, double def, double *out)
{
    *out = attr_float(im->cur, name, def);
    if (!isfinite(*out))
        return FAIL_NODE(im, CDL_ERR_FORMAT, "attribute %s must be a finite number", name);
    return CDL_OK;
}

/* An activation with one or two parameters in coeffs[]. */
static cdl_status emit_param_activation(importer *im, int x, cdl_nn_kind kind, double p0, double p1)
{
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, kind, x, &nd));
    nd->coeffs = cdl_alloc_array(2, sizeof(double));
    if (!nd->coeffs)
        return CDL_ERR_NO_MEMORY;
    nd->coeffs[0] = p0;
    nd->coeffs[1] = p1;
    return bind_ir(im, node_value(im, nd));
}

static cdl_status op_leaky_relu(importer *im)
{
    int x = 0;
    double alpha;
    CDL_TRY(attr_finite(im, "alpha", 0.01, &alpha));
    CDL_TRY(input_ir(im, 0, &x));
    if (alpha == 0.0)
        return op_activation(im, CDL_NN_RELU);
    return emit_param_activation(im, x, CDL_NN_LEAKY_RELU, alpha, 0.0);
}

static cdl_status op_elu(importer *im)
{
    int x = 0;
    double alpha;
    CDL_TRY(attr_finite(im, "alpha", 1.0, &alpha));
    CDL_TRY(input_ir(im, 0, &x));
    return emit_param_activation(im, x, CDL_NN_ELU, alpha, 0.0);
}

/* Clip bound: input k (opset >= 11, may be absent or empty) or attribute
 * `name` (opset < 11); absent = unbounded. */
static cdl_status clip_bound(importer *im, size_t k, const char *name, double unbounded, double *out)
{
    *out = unbounded;
    if (has_input(im, k)) {
        ival *v = NULL;
        CDL_TRY(input_val(im, k, &v));
        if (v->kind != V_CONST)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "the %s bound '%s' must be a constant", name, v->name);
        if (v->cnumel != 1)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "the %s bound must be a scalar (it has %zu values)", name, v->cnumel);
        *out = v->cdata[0];
    } else if (attr(im->cur, name)) {
        CDL_TRY(attr_finite(im, name, unbounded, out));
    }
    return CDL_OK;
}

static cdl_status op_clip(importer *im)
{
    int x = 0;
    double lo, hi;
    CDL_TRY(clip_bound(im, 1, "min", -HUGE_VAL, &lo));
    CDL_TRY(clip_bound(im, 2, "max", HUGE_VAL, &hi));
    if (lo > hi)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "min %g is larger than max %g", lo, hi);
    if (lo == -HUGE_VAL && hi == HUGE_VAL) { /* no bounds: an alias (keeps its consumer count) */
        ival *xv;
        CDL_TRY(input_val(im, 0, &xv));
        if (xv->kind == V_CONST)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "input '%s' is a constant: Clip of constants is not supported",
                             xv->name);
        return bind_alias(im, xv);
    }
    CDL_TRY(input_ir(im, 0, &x));
    if (lo == 0.0 && hi == HUGE_VAL) /* Clip(0, inf) is ReLU (and --approx relu=... applies) */
        return op_activation(im, CDL_NN_RELU);
    return emit_param_activation(im, x, CDL_NN_CLIP, lo, hi);
}

/* clip(alpha x + beta, 0, 1): an elementwise affine node (which may fold
 * into the layer before) and a clip; *out is the clip's value. */
static cdl_status emit_hard_sigmoid(importer *im, int x, double alpha, double beta, int *out)
{
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, CDL_NN_AFFINE, x, &nd));
    const size_t n = cdl_nn_shape_numel(&nd->out_shape);
    nd->weight = cdl_alloc_array(n, sizeof(double));
    nd->bias = cdl_alloc_array(n, sizeof(double));
    if (!nd->weight || !nd->bias)
        return CDL_ERR_NO_MEMORY;
    nd->n_weight = nd->n_bias = n;
    for (size_t i = 0; i < n; i++) {
        nd->weight[i] = alpha;
        nd->bias[i] = beta;
    }
    const int affine = node_value(im, nd);
    CDL_TRY(new_node(im, CDL_NN_CLIP, affine, &nd));
    nd->coeffs = cdl_alloc_array(2, sizeof(double));
    if (!nd->coeffs)
        return CDL_ERR_NO_MEMORY;
    nd->coeffs[0] = 0.0;
    nd->coeffs[1] = 1.0;
    *out = node_value(im, nd);
    return CDL_OK;
}

static cdl_status op_hard_sigmoid(importer *im)
{
    int x = 0, y = 0;
    double alpha, beta;
    CDL_TRY(attr_finite(im, "alpha", 0.2, &alpha));
    CDL_TRY(attr_finite(im, "beta", 0.5, &beta));
    CDL_TRY(input_ir(im, 0, &x));
    CDL_TRY(emit_hard_sigmoid(im, x, alpha, beta, &y));
    return bind_ir(im, y);
}

/* HardSwish (opset 14, nn.Hardswish) = x * hardsigmoid(x) with alpha 1/6,
 * beta 1/2: the product of two computed tensors (plaintext only). */
static cdl_status op_hard_swish(importer *im)
{
    int x = 0, y = 0;
    CDL_TRY(input_ir(im, 0, &x));
    CDL_TRY(emit_hard_sigmoid(im, x, 1.0 / 6.0, 0.5, &y));
    cdl_nn_node *nd;
    CDL_TRY(new_node(im, CDL_NN_MUL, x, &nd));
    nd->n_inputs = 2;
    nd->inputs[1] = y;
    return bind_ir(im, node_value(im, nd));
}

/* PRelu: a leaky ReLU whose slope is a constant broadcast to the input (one
 * per channel for nn.PReLU(C)); a single slope is kept in coeffs[0], several
 * as a full-size weight array. */
static cdl_status op_prelu(importer *im)
{
    int x = 0;
    ival *sv;
    CDL_TRY(input_ir(im, 0, &x));
    CDL_TRY(input_val(im, 1, &sv));
    if (sv->kind != V_CONST)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "the slope '%s' must be a constant", sv->name);
    double *slope = NULL;
    CDL_TRY(broadcast_const(im, sv, value_shape(im, x), &slope));
    const size_t n = cdl_nn_shape_numel(value_shape(im, x));
    int uniform = 1;
    for (size_t i = 1; i < n && uniform; i++)
        uniform = slope[i] == slope[0];
    if (uniform) {
        const double a = slope[0];
        cdl_free(slope);
        return emit_param_activation(im, x, CDL_NN_LEAKY_RELU, a, 0.0);
    }
    cdl_nn_node *nd;
    cdl_status st = new_node(im, CDL_NN_LEAKY_RELU, x, &nd);
    if (st != CDL_OK) {
        cdl_free(slope);
        return st;
    }
    nd->weight = slope;
    nd->n_weight = n;
    nd->coeffs = cdl_calloc_array(2, sizeof(double));
    if (!nd->coeffs)
        return CDL_ERR_NO_MEMORY;
    return bind_ir(im, node_value(im, nd));
}

/* Neg: -x, folded into the pending polynomial (or a constant). */
static cdl_status op_neg(importer *im)
{
    ival *a;
    CDL_TRY(input_val(im, 0, &a));
    if (a->kind == V_CONST) {
        ival *o;
        CDL_TRY(output_val(im, 0, &o));
        CDL_TRY(make_const(o, a->cdims, a->crank, a->cdata));
        for (size_t i = 0; i < o->cnumel; i++)
            o->cdata[i] = -o->cdata[i];
        return CDL_OK;
    }
    if (a->kind != V_IR && a->kind != V_POLY)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "input '%s' is used before it is defined", a->name);
    double *p;
    int d, base;
    CDL_TRY(as_poly(a, &p, &d, &base));
    for (int i = 0; i <= d; i++)
        p[i] = -p[i];
    return bind_poly(im, base, p, d, im->cur->op_type);
}

/* ReduceMean over H and W of a C,H,W tensor (how some exporters write global
 * average pooling): axes {2, 3} as an attribute (opset < 18) or input. */
static cdl_status op_reduce_mean(importer *im)
{
    int x = 0;
    CDL_TRY(input_ir(im, 0, &x));
    const cdl_nn_shape *s = value_shape(im, x);
    int64_t axes[MAX_CONST_RANK];
    size_t na = 0;
    const Onnx__AttributeProto *a = attr(im->cur, "axes");
    if (a && a->n_ints) {
        if (a->n_ints > MAX_CONST_RANK)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "too many axes (%zu)", a->n_ints);
        for (size_t i = 0; i < a->n_ints; i++)
            axes[na++] = a->ints[i];
    } else if (has_input(im, 1)) {
        ival *av;
        CDL_TRY(input_const(im, 1, &av));
        if (av->cnumel > MAX_CONST_RANK)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "too many axes (%zu)", av->cnumel);
        for (size_t i = 0; i < av->cnumel; i++)
            axes[na++] = to_i64(av->cdata[i]);
    }
    const int full = s->rank + 1;
    int seen[MAX_CONST_RANK] = {0};
    for (size_t i = 0; i < na; i++) {
        int64_t ax = axes[i] < 0 ? axes[i] + full : axes[i];
        if (ax < 0 || ax >= full)
            return FAIL_NODE(im, CDL_ERR_FORMAT, "axis %lld is out of range for a %d-D tensor", (long long)axes[i],
                             full);
        seen[ax] = 1;
    }
    if (s->rank != 3 || na != 2 || !seen[2] || !seen[3])
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED,
                         "only the mean over H and W (axes 2 and 3, or -2 and -1) of an N,C,H,W tensor is supported "
                         "(global average pooling)");
    const int64_t keep = attr_int(im->cur, "keepdims", 1);
    if (keep != 0 && keep != 1)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "keepdims must be 0 or 1, not %lld", (long long)keep);
    cdl_nn_node *nd;
    CDL_TRY(emit_global_pool(im, x, CDL_NN_AVGPOOL, &nd));
    if (keep)
        return bind_ir(im, node_value(im, nd));
    cdl_nn_shape to = {.rank = 1, .dims = {nd->out_shape.dims[0]}};
    return emit_reshape(im, node_value(im, nd), &to);
}

/* Sum of several computed tensors of one shape: a chain of additions. */
static cdl_status op_sum(importer *im)
{
    if (im->cur->n_input < 1)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "Sum needs at least one input");
    if (im->cur->n_input > 64)
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "Sum of %zu inputs (at most 64)", im->cur->n_input);
    int acc = 0;
    for (size_t k = 0; k < im->cur->n_input; k++) {
        ival *v = NULL;
        CDL_TRY(input_val(im, k, &v));
        if (v->kind == V_CONST)
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED,
                             "input '%s' is a constant: Sum is supported over computed tensors only (use Add for a "
                             "bias)",
                             v->name);
    }
    CDL_TRY(input_ir(im, 0, &acc));
    for (size_t k = 1; k < im->cur->n_input; k++) {
        int b = 0;
        CDL_TRY(input_ir(im, k, &b));
        const cdl_nn_shape *sa = value_shape(im, acc), *sb = value_shape(im, b);
        if (sa->rank != sb->rank || memcmp(sa->dims, sb->dims, sizeof(int64_t) * (size_t)sa->rank))
            return FAIL_NODE(im, CDL_ERR_UNSUPPORTED,
                             "input %zu has a different shape from input 0 (no broadcasting between computed "
                             "tensors)", k);
        cdl_nn_node *nd;
        CDL_TRY(new_node(im, CDL_NN_ADD, acc, &nd));
        nd->n_inputs = 2;
        nd->inputs[1] = b;
        nd->coeffs = cdl_alloc_array(1, sizeof(double));
        if (!nd->coeffs)
            return CDL_ERR_NO_MEMORY;
        nd->coeffs[0] = 1.0;
        acc = node_value(im, nd);
    }
    return bind_ir(im, acc);
}

/* ---- driver -------------------------------------------------------------- */

static cdl_status import_node(importer *im, const Onnx__NodeProto *n)
{
    im->cur = n;
    const char *op = n->op_type ? n->op_type : "";
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx"))
        return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "domain '%s' is not supported (standard ONNX ops only: %s)", n->domain,
                         SUPPORTED_OPS);
    if (n->n_output < 1)
        return FAIL_NODE(im, CDL_ERR_FORMAT, "node has no output");
    if (!strcmp(op, "Conv")) return op_conv(im);
    if (!strcmp(op, "Gemm")) return op_gemm(im, 0);
    if (!strcmp(op, "MatMul")) return op_gemm(im, 1);
    if (!strcmp(op, "Add")) return op_elementwise(im, EW_ADD);
    if (!strcmp(op, "Sub")) return op_elementwise(im, EW_SUB);
    if (!strcmp(op, "Mul")) return op_elementwise(im, EW_MUL);
    if (!strcmp(op, "Div")) return op_elementwise(im, EW_DIV);
    if (!strcmp(op, "Pow")) return op_elementwise(im, EW_POW);
    if (!strcmp(op, "BatchNormalization")) return op_batchnorm(im);
    if (!strcmp(op, "AveragePool")) return op_avgpool(im, 0);
    if (!strcmp(op, "GlobalAveragePool")) return op_avgpool(im, 1);
    if (!strcmp(op, "Pad")) return op_pad(im);
    if (!strcmp(op, "Flatten")) return op_flatten(im);
    if (!strcmp(op, "Reshape")) return op_reshape(im);
    if (!strcmp(op, "Relu")) return op_activation(im, CDL_NN_RELU);
    if (!strcmp(op, "Sigmoid")) return op_activation(im, CDL_NN_SIGMOID);
    if (!strcmp(op, "Tanh")) return op_activation(im, CDL_NN_TANH);
    if (!strcmp(op, "Constant")) return op_constant(im);
    if (!strcmp(op, "Shape")) return op_shape(im);
    if (!strcmp(op, "Gather")) return op_gather(im);
    if (!strcmp(op, "Unsqueeze")) return op_unsqueeze(im, 0);
    if (!strcmp(op, "Squeeze")) return op_unsqueeze(im, 1);
    if (!strcmp(op, "Concat")) return op_concat(im);
    if (!strcmp(op, "Cast")) return op_cast(im);
    if (!strcmp(op, "Transpose")) return op_transpose(im);
    if (!strcmp(op, "Slice")) return op_slice(im);
    if (!strcmp(op, "ConstantOfShape")) return op_constant_of_shape(im);
    if (!strcmp(op, "Softmax")) return op_softmax(im, CDL_NN_SOFTMAX);
    if (!strcmp(op, "LogSoftmax")) return op_softmax(im, CDL_NN_LOGSOFTMAX);
    if (!strcmp(op, "MaxPool")) return op_maxpool(im, 0);
    if (!strcmp(op, "GlobalMaxPool")) return op_maxpool(im, 1);
    if (!strcmp(op, "LeakyRelu")) return op_leaky_relu(im);
    if (!strcmp(op, "Elu")) return op_elu(im);
    if (!strcmp(op, "Clip")) return op_clip(im);
    if (!strcmp(op, "HardSigmoid")) return op_hard_sigmoid(im);
    if (!strcmp(op, "HardSwish")) return op_hard_swish(im);
    if (!strcmp(op, "PRelu")) return op_prelu(im);
    if (!strcmp(op, "Neg")) return op_neg(im);
    if (!strcmp(op, "ReduceMean")) return op_reduce_mean(im);
    if (!strcmp(op, "Sum")) return op_sum(im);
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
        ival *x;
        CDL_TRY(only_first_output(im));
        CDL_TRY(input_val(im, 0, &x));
        return bind_alias(im, x);
    }
    return FAIL_NODE(im, CDL_ERR_UNSUPPORTED, "op type %s is not supported; supported: %s", op, SUPPORTED_OPS);
}

static int is_initializer(const Onnx__GraphProto *gp, const char *name)
{
    for (size_t i = 0; i < gp->n_initializer; i++)
        if (gp->initializer[i]->name && !strcmp(gp->initializer[i]->name, name))
            return 1;
    return 0;
}

static cdl_status read_input(importer *im, const Onnx__ValueInfoProto *vi)
{
    cdl_nn_graph *g = im->g;
    const char *nm = vi->name ? vi->name : "?";
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !vi->type->tensor_type)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX model input '%s' is not a tensor", nm);
    const Onnx__TypeProto__Tensor *tt = vi->type->tensor_type;
    if (tt->has_elem_type && tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT &&
        tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX model input '%s' has element type %d: float is expected", nm,
                        tt->elem_type);
    if (!tt->shape || tt->shape->n_dim < 2 || tt->shape->n_dim > 4)
        return cdl_fail(CDL_ERR_UNSUPPORTED,
                        "ONNX model input '%s' must have a known shape [batch, features] or [batch, C, H, W]", nm);
    const Onnx__TensorShapeProto__Dimension *b = tt->shape->dim[0];
    im->batch = (b->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && b->dim_value > 0) ? b->dim_value : 1;
    g->input_shape.rank = (int)tt->shape->n_dim - 1;
    int64_t p = 1;
    for (size_t i = 1; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        if (d->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || d->dim_value < 1 ||
            d->dim_value > CDL_NN_MAX_ACTIVATION || p > CDL_NN_MAX_ACTIVATION / d->dim_value)
            return cdl_fail(CDL_ERR_FORMAT, "ONNX model input '%s': dimension %zu must be a known positive size (at most %lld values per sample)",
                            nm, i, (long long)CDL_NN_MAX_ACTIVATION);
        p *= d->dim_value;
        g->input_shape.dims[i - 1] = d->dim_value;
    }
    snprintf(g->input_name, sizeof g->input_name, "%s", nm);
    return CDL_OK;
}

static cdl_status import_graph(importer *im, const Onnx__ModelProto *mp)
{
    const Onnx__GraphProto *gp = mp->graph;
    cdl_nn_graph *g = im->g;
    if (!gp)
        return cdl_fail(CDL_ERR_FORMAT, "ONNX model has no graph: is this an ONNX file?");
    im->gp = gp;
    g->opset = 0;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if ((!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx")) && o->has_version)
            g->opset = o->version;
    }
    if (g->opset && (g->opset < 7 || g->opset > 18))
        return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX opset %lld is not supported (7 to 18; exporters' default 9-17)",
                        (long long)g->opset);
    snprintf(g->producer, sizeof g->producer, "%s%s%s", mp->producer_name ? mp->producer_name : "",
             mp->producer_version ? " " : "", mp->producer_version ? mp->producer_version : "");
    if (gp->n_node > CDL_NN_MAX_NODES)
        return cdl_fail(CDL_ERR_FORMAT, "ONNX model has %zu nodes (at most %d)", gp->n_node, CDL_NN_MAX_NODES);
    if (gp->n_sparse_initializer)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX sparse initializers are not supported");
    /* Size the value table: inputs + initializers + node outputs. */
    size_t cap = gp->n_input + gp->n_initializer + 1;
    for (size_t i = 0; i < gp->n_node; i++)
        cap += gp->node[i]->n_output;
    im->cap_vals = cap;
    im->hash_cap = 16;
    while (im->hash_cap < 2 * cap + 2)
        im->hash_cap *= 2;
    im->vals = cdl_calloc_array(cap, sizeof *im->vals);
    im->hash = cdl_calloc_array(im->hash_cap, sizeof *im->hash);
    if (!im->vals || !im->hash)
        return CDL_ERR_NO_MEMORY;
    for (size_t i = 0; i < gp->n_initializer; i++) {
        ival *v;
        CDL_TRY(bind(im, gp->initializer[i]->name, &v));
        CDL_TRY(tensor_to_const(gp->initializer[i], v));
    }
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < gp->n_input; i++) {
        if (!gp->input[i]->name || is_initializer(gp, gp->input[i]->name))
            continue;
        if (in)
            return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX model has several inputs ('%s', '%s'): exactly one is supported",
                            in->name, gp->input[i]->name);
        in = gp->input[i];
    }
    if (!in)
        return cdl_fail(CDL_ERR_FORMAT, "ONNX model has no input");
    CDL_TRY(read_input(im, in));
    ival *v;
    CDL_TRY(bind(im, in->name, &v));
    v->kind = V_IR;
    v->ir = 0;
    if (gp->n_output != 1 || !gp->output[0]->name)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX model has %zu outputs: exactly one is supported", gp->n_output);
    /* Consumer counts (for folding decisions): all node inputs plus the
     * graph output, sorted once so that each count is a binary search. */
    size_t n_uses = 1;
    for (size_t i = 0; i < gp->n_node; i++)
        n_uses += gp->node[i]->n_input;
    im->uses = cdl_alloc_array(n_uses, sizeof *im->uses);
    if (!im->uses)
        return CDL_ERR_NO_MEMORY;
    im->uses[im->n_uses++] = gp->output[0]->name;
    for (size_t i = 0; i < gp->n_node; i++)
        for (size_t j = 0; j < gp->node[i]->n_input; j++)
            if (gp->node[i]->input[j] && gp->node[i]->input[j][0])
                im->uses[im->n_uses++] = gp->node[i]->input[j];
    qsort(im->uses, im->n_uses, sizeof *im->uses, cmp_str);
    for (size_t i = 0; i < gp->n_node; i++) {
        const Onnx__NodeProto *n = gp->node[i];
        CDL_TRY(import_node(im, n));
        for (size_t k = 0; k < n->n_output; k++) {
            ival *o = n->output[k] && n->output[k][0] ? lookup(im, n->output[k]) : NULL;
            if (o)
                o->uses = count_uses(im, o->name);
        }
    }
    ival *out = lookup(im, gp->output[0]->name);
    if (!out || out->kind == V_UNSET)
        return cdl_fail(CDL_ERR_FORMAT, "ONNX model output '%s' is not produced by any node", gp->output[0]->name);
    im->cur = NULL;
    int ir;
    if (out->kind == V_CONST)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "ONNX model output '%s' is a constant", out->name);
    CDL_TRY(materialize(im, out, &ir));
    g->output = ir;
    snprintf(g->output_name, sizeof g->output_name, "%s", gp->output[0]->name);
    cdl_nn_fold_affine(g);
    cdl_nn_analyze(g);
    return CDL_OK;
}

cdl_status cdl_nn_load_memory(const uint8_t *data, size_t len, cdl_nn_graph **out)
{
    if (!out || (!data && len))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_nn_load_memory: NULL argument");
    *out = NULL;
    if (len == 0)
        return cdl_fail(CDL_ERR_FORMAT, "ONNX model is empty");
    if (len > CDL_NN_MAX_FILE_BYTES)
        return cdl_fail(CDL_ERR_FORMAT, "ONNX model is %zu bytes (at most %zu)", len, CDL_NN_MAX_FILE_BYTES);
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, data);
    if (!mp)
        return cdl_fail(CDL_ERR_FORMAT, "not a valid ONNX protobuf (truncated or corrupt file?)");
    importer im;
    memset(&im, 0, sizeof im);
    cdl_status st = CDL_OK;
    im.g = cdl_calloc_array(1, sizeof *im.g);
    if (!im.g)
        st = CDL_ERR_NO_MEMORY;
    else
        st = import_graph(&im, mp);
    for (size_t i = 0; i < im.n_vals; i++)
        ival_clear(&im.vals[i]);
    cdl_free(im.vals);
    cdl_free(im.hash);
    cdl_free((void *)im.uses);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (st != CDL_OK) {
        cdl_nn_graph_free(im.g);
        return st;
    }
    *out = im.g;
    return CDL_OK;
}

cdl_status cdl_nn_load_file(const char *path, cdl_nn_graph **out)
{
    if (!path || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_nn_load_file: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return cdl_fail(CDL_ERR_IO, "cannot open ONNX model '%s': %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    cdl_status st = CDL_OK;
    for (;;) {
        if (len == cap) {
            if (cap >= CDL_NN_MAX_FILE_BYTES) {
                st = cdl_fail(CDL_ERR_FORMAT, "ONNX model '%s' is larger than %zu bytes", path, CDL_NN_MAX_FILE_BYTES);
                break;
            }
            size_t ncap = cap ? 2 * cap : 1 << 16;
            uint8_t *nb = cdl_alloc_array(ncap, 1);
            if (!nb) {
                st = CDL_ERR_NO_MEMORY;
                break;
            }
            if (len)
                memcpy(nb, buf, len);
            cdl_free(buf);
            buf = nb;
            cap = ncap;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f))
                st = cdl_fail(CDL_ERR_IO, "error reading ONNX model '%s'", path);
            break;
        }
    }
    fclose(f);
    if (st == CDL_OK) {
        st = cdl_nn_load_memory(buf, len, out);
        if (st != CDL_OK && st != CDL_ERR_NO_MEMORY) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", cdl_last_error());
            cdl_fail(st, "%s: %s", path, msg);
        }
    }
    cdl_free(buf);
    return st;
}
