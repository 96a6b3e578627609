/*
 * runtime.c: the plaintext float64 reference runtime for the nn IR. It runs a
 * batch of samples node by node (one buffer per value), with OpenMP splitting
 * the samples of a batch across threads; each sample is computed by the same
 * sequential loops whatever the thread count, so results are bit-identical.
 * This is the answer encrypted inference is compared with.
 */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/memory.h"
#include "cryptodl/nn.h"
#include "nn/nn_internal.h"

/* Convolution, one weight at a time over whole output rows (contiguous, so
 * the compiler vectorises the inner loop). Each output still sums
 * bias + sum over (c, ky, kx) in that order, as the textbook loop would. */
static void run_conv(const cdl_nn_node *nd, const double *x, double *y)
{
    const int64_t C = nd->in_shape.dims[0], H = nd->in_shape.dims[1], W = nd->in_shape.dims[2];
    const int64_t O = nd->out_shape.dims[0], OH = nd->out_shape.dims[1], OW = nd->out_shape.dims[2];
    const int kh = nd->kernel[0], kw = nd->kernel[1], sh = nd->stride[0], sw = nd->stride[1];
    const int pt = nd->pads[0], pl = nd->pads[1];
    for (int64_t o = 0; o < O; o++) {
        double *yo = y + o * OH * OW;
        const double b = nd->bias ? nd->bias[o] : 0.0;
        for (int64_t i = 0; i < OH * OW; i++)
            yo[i] = b;
        for (int64_t c = 0; c < C; c++) {
            const double *xc = x + c * H * W;
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++) {
                    const double w = nd->weight[((o * C + c) * kh + ky) * kw + kx];
                    /* output columns whose input column ox*sw - pl + kx lies in [0, W) */
                    const int64_t lo = pl - kx, hi = W - 1 + pl - kx;
                    if (hi < 0)
                        continue;
                    const int64_t ox0 = lo <= 0 ? 0 : (lo + sw - 1) / sw;
                    const int64_t ox1 = hi / sw < OW - 1 ? hi / sw : OW - 1;
                    for (int64_t oy = 0; oy < OH; oy++) {
                        const int64_t iy = oy * sh - pt + ky;
                        if (iy < 0 || iy >= H)
                            continue;
                        double *yr = yo + oy * OW;
                        const double *xr = xc + iy * W - pl + kx;
                        if (sw == 1)
                            for (int64_t ox = ox0; ox <= ox1; ox++)
                                yr[ox] += w * xr[ox];
                        else
                            for (int64_t ox = ox0; ox <= ox1; ox++)
                                yr[ox] += w * xr[ox * sw];
                    }
                }
        }
    }
}

static void run_dense(const cdl_nn_node *nd, const double *x, double *y)
{
    const size_t in = cdl_nn_shape_numel(&nd->in_shape), out = cdl_nn_shape_numel(&nd->out_shape);
    for (size_t o = 0; o < out; o++) {
        const double *w = nd->weight + o * in;
        double acc = nd->bias ? nd->bias[o] : 0.0;
        for (size_t i = 0; i < in; i++)
            acc += w[i] * x[i];
        y[o] = acc;
    }
}

/* Dense on a block of up to DENSE_BLOCK samples: each weight row is read once
 * for the block. Every sample still sums bias + w[0] x[0] + w[1] x[1] + ...
 * in the same order as run_dense, so the result does not depend on blocking. */
#define DENSE_BLOCK 8
static void run_dense_block(const cdl_nn_node *nd, const double *x, size_t lx, double *y, size_t ly, size_t cnt)
{
    const size_t in = cdl_nn_shape_numel(&nd->in_shape), out = cdl_nn_shape_numel(&nd->out_shape);
    /* the block's inputs interleaved [i][j], so the inner loop is over 8 contiguous samples */
    double *xt = cnt == DENSE_BLOCK ? cdl_alloc_array(in, DENSE_BLOCK * sizeof(double)) : NULL;
    if (!xt) {
        for (size_t j = 0; j < cnt; j++)
            run_dense(nd, x + j * lx, y + j * ly);
        return;
    }
    for (size_t i = 0; i < in; i++)
        for (size_t j = 0; j < DENSE_BLOCK; j++)
            xt[i * DENSE_BLOCK + j] = x[j * lx + i];
    for (size_t o = 0; o < out; o++) {
        const double *w = nd->weight + o * in;
        double acc[DENSE_BLOCK];
        for (size_t j = 0; j < DENSE_BLOCK; j++)
            acc[j] = nd->bias ? nd->bias[o] : 0.0;
        for (size_t i = 0; i < in; i++) {
            const double wi = w[i];
            const double *xi = xt + i * DENSE_BLOCK;
            for (size_t j = 0; j < DENSE_BLOCK; j++)
                acc[j] += wi * xi[j];
        }
        for (size_t j = 0; j < DENSE_BLOCK; j++)
            y[j * ly + o] = acc[j];
    }
    cdl_free(xt);
}

static void run_avgpool(const cdl_nn_node *nd, const double *x, double *y)
{
    const int64_t C = nd->in_shape.dims[0], H = nd->in_shape.dims[1], W = nd->in_shape.dims[2];
    const int64_t OH = nd->out_shape.dims[1], OW = nd->out_shape.dims[2];
    const int kh = nd->kernel[0], kw = nd->kernel[1];
    for (int64_t c = 0; c < C; c++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                double acc = 0;
                int count = 0;
                for (int ky = 0; ky < kh; ky++) {
                    int64_t iy = oy * nd->stride[0] - nd->pads[0] + ky;
                    for (int kx = 0; kx < kw; kx++) {
                        int64_t ix = ox * nd->stride[1] - nd->pads[1] + kx;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                            continue;
                        acc += x[(c * H + iy) * W + ix];
                        count++;
                    }
                }
                int div = nd->count_include_pad ? kh * kw : count;
                y[(c * OH + oy) * OW + ox] = div > 0 ? acc / div : 0.0;
            }
}

/* Max over the window's positions inside the input (padding never wins, as
 * ONNX pads with -inf); ceil_mode windows may hang over the bottom/right. */
static void run_maxpool(const cdl_nn_node *nd, const double *x, double *y)
{
    const int64_t C = nd->in_shape.dims[0], H = nd->in_shape.dims[1], W = nd->in_shape.dims[2];
    const int64_t OH = nd->out_shape.dims[1], OW = nd->out_shape.dims[2];
    const int kh = nd->kernel[0], kw = nd->kernel[1];
    for (int64_t c = 0; c < C; c++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                double m = -HUGE_VAL;
                int any = 0;
                for (int ky = 0; ky < kh; ky++) {
                    int64_t iy = oy * nd->stride[0] - nd->pads[0] + ky;
                    if (iy < 0 || iy >= H)
                        continue;
                    for (int kx = 0; kx < kw; kx++) {
                        int64_t ix = ox * nd->stride[1] - nd->pads[1] + kx;
                        if (ix < 0 || ix >= W)
                            continue;
                        double v = x[(c * H + iy) * W + ix];
                        if (!any || v > m)
                            m = v;
                        any = 1;
                    }
                }
                y[(c * OH + oy) * OW + ox] = any ? m : 0.0;
            }
}

/* Softmax / log-softmax over groups of kernel[0] values kernel[1] apart,
 * shifted by the group's maximum (no overflow for large logits). */
static void run_softmax(const cdl_nn_node *nd, const double *x, double *y, int log_out)
{
    const size_t n = cdl_nn_shape_numel(&nd->out_shape), len = (size_t)nd->kernel[0], inner = (size_t)nd->kernel[1];
    const size_t outer = n / (len * inner);
    for (size_t o = 0; o < outer; o++)
        for (size_t j = 0; j < inner; j++) {
            const size_t base = o * len * inner + j;
            double m = x[base];
            for (size_t k = 1; k < len; k++)
                if (x[base + k * inner] > m)
                    m = x[base + k * inner];
            double sum = 0;
            for (size_t k = 0; k < len; k++)
                sum += exp(x[base + k * inner] - m);
            const double lse = log(sum);
            for (size_t k = 0; k < len; k++) {
                const double t = x[base + k * inner] - m;
                y[base + k * inner] = log_out ? t - lse : exp(t) / sum;
            }
        }
}

static void run_pad(const cdl_nn_node *nd, const double *x, double *y)
{
    const int64_t C = nd->in_shape.dims[0], H = nd->in_shape.dims[1], W = nd->in_shape.dims[2];
    const int64_t OH = nd->out_shape.dims[1], OW = nd->out_shape.dims[2];
    memset(y, 0, (size_t)(C * OH * OW) * sizeof *y);
    for (int64_t c = 0; c < C; c++)
        for (int64_t iy = 0; iy < H; iy++)
            for (int64_t ix = 0; ix < W; ix++)
                y[(c * OH + iy + nd->pads[0]) * OW + ix + nd->pads[1]] = x[(c * H + iy) * W + ix];
}

static double poly_eval(const double *c, int degree, double x)
{
    double acc = c[degree];
    for (int k = degree - 1; k >= 0; k--)
        acc = acc * x + c[k];
    return acc;
}

static void run_node(const cdl_nn_node *nd, const double *a, const double *b, double *y)
{
    const size_t n = cdl_nn_shape_numel(&nd->out_shape);
    switch (nd->kind) {
    case CDL_NN_CONV: run_conv(nd, a, y); break;
    case CDL_NN_DENSE: run_dense(nd, a, y); break;
    case CDL_NN_AVGPOOL: run_avgpool(nd, a, y); break;
    case CDL_NN_PAD: run_pad(nd, a, y); break;
    case CDL_NN_RESHAPE: memcpy(y, a, n * sizeof *y); break;
    case CDL_NN_SLICE:
        for (size_t i = 0; i < n; i++)
            y[i] = a[cdl_nn_slice_source(nd, i)];
        break;
    case CDL_NN_AFFINE:
        for (size_t i = 0; i < n; i++)
            y[i] = nd->weight[i] * a[i] + nd->bias[i];
        break;
    case CDL_NN_ADD:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] + nd->coeffs[0] * b[i];
        break;
    case CDL_NN_MUL:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] * b[i];
        break;
    case CDL_NN_SQUARE:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] * a[i];
        break;
    case CDL_NN_POLY:
        for (size_t i = 0; i < n; i++)
            y[i] = poly_eval(nd->coeffs, nd->degree, a[i]);
        break;
    case CDL_NN_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] > 0 ? a[i] : 0.0;
        break;
    case CDL_NN_SIGMOID:
        for (size_t i = 0; i < n; i++)
            y[i] = 1.0 / (1.0 + exp(-a[i]));
        break;
    case CDL_NN_TANH:
        for (size_t i = 0; i < n; i++)
            y[i] = tanh(a[i]);
        break;
    case CDL_NN_SOFTMAX: run_softmax(nd, a, y, 0); break;
    case CDL_NN_LOGSOFTMAX: run_softmax(nd, a, y, 1); break;
    case CDL_NN_MAXPOOL: run_maxpool(nd, a, y); break;
    case CDL_NN_LEAKY_RELU:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] > 0 ? a[i] : (nd->weight ? nd->weight[i] : nd->coeffs[0]) * a[i];
        break;
    case CDL_NN_CLIP:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] < nd->coeffs[0] ? nd->coeffs[0] : (a[i] > nd->coeffs[1] ? nd->coeffs[1] : a[i]);
        break;
    case CDL_NN_ELU:
        for (size_t i = 0; i < n; i++)
            y[i] = a[i] > 0 ? a[i] : nd->coeffs[0] * expm1(a[i]);
        break;
    default: break;
    }
}

/* Run n samples through the graph on the calling thread, as far as value
 * `target` (the nodes it depends on; all of them for the graph output), and
 * copy that value out. */
static cdl_status run_serial(const cdl_nn_graph *graph, int target, const double *input, size_t n, double *output)
{
    const size_t nv = graph->n_nodes + 1;
    double **buf = cdl_calloc_array(nv, sizeof *buf);
    size_t *len = cdl_calloc_array(nv, sizeof *len);
    size_t *last = cdl_calloc_array(nv, sizeof *last); /* last node reading each value */
    unsigned char *need = cdl_calloc_array(nv, 1);     /* values the target depends on */
    cdl_status st = CDL_OK;
    if (!buf || !len || !last || !need) {
        st = CDL_ERR_NO_MEMORY;
        goto done;
    }
    len[0] = cdl_nn_input_size(graph);
    buf[0] = (double *)input;
    need[target] = 1;
    for (size_t k = (size_t)target; k-- > 0;) /* node k makes value k + 1; inputs come before it */
        if (need[k + 1])
            for (int i = 0; i < graph->nodes[k].n_inputs; i++)
                need[graph->nodes[k].inputs[i]] = 1;
    for (size_t k = 0; k < (size_t)target; k++) {
        const cdl_nn_node *nd = &graph->nodes[k];
        len[k + 1] = cdl_nn_shape_numel(&nd->out_shape);
        if (need[k + 1])
            for (int i = 0; i < nd->n_inputs; i++)
                last[nd->inputs[i]] = k;
    }
    for (size_t k = 0; k < (size_t)target; k++) {
        if (!need[k + 1])
            continue;
        const cdl_nn_node *nd = &graph->nodes[k];
        const int ia = nd->inputs[0], ib = nd->n_inputs > 1 ? nd->inputs[1] : ia;
        buf[k + 1] = cdl_alloc_array(n, len[k + 1] * sizeof(double));
        if (!buf[k + 1]) {
            st = CDL_ERR_NO_MEMORY;
            goto done;
        }
        const double *A = buf[ia], *B = buf[ib];
        double *Y = buf[k + 1];
        const size_t la = len[ia], lb = len[ib], ly = len[k + 1];
        if (nd->kind == CDL_NN_DENSE) {
            for (size_t s0 = 0; s0 < n; s0 += DENSE_BLOCK)
                run_dense_block(nd, A + s0 * la, la, Y + s0 * ly, ly, n - s0 < DENSE_BLOCK ? n - s0 : DENSE_BLOCK);
        } else {
            for (size_t s = 0; s < n; s++)
                run_node(nd, A + s * la, B + s * lb, Y + s * ly);
        }
        /* free what no later node reads (keeps memory at a few layers' worth) */
        for (int i = 0; i < nd->n_inputs; i++) {
            int v = nd->inputs[i];
            if (v > 0 && last[v] == k && v != target && buf[v]) {
                cdl_free(buf[v]);
                buf[v] = NULL;
            }
        }
    }
    memcpy(output, buf[target], n * len[target] * sizeof *output);
done:
    if (buf)
        for (size_t v = 1; v < nv; v++)
            cdl_free(buf[v]);
    cdl_free(buf);
    cdl_free(len);
    cdl_free(last);
    cdl_free(need);
    return st;
}

/* The samples are cut into one contiguous chunk per thread (a multiple of the
 * dense block), and each thread runs the graph on its chunk: one parallel
 * region per call, no barrier per layer. */
static cdl_status run_to(const cdl_nn_graph *graph, int target, const double *input, size_t n, double *output)
{
    const size_t nin = cdl_nn_input_size(graph), nout = cdl_nn_shape_numel(cdl_nn_value_shape(graph, target));
    size_t threads = (size_t)cdl_get_threads();
    size_t blocks = (n + DENSE_BLOCK - 1) / DENSE_BLOCK;
    if (threads > blocks)
        threads = blocks;
    if (threads <= 1)
        return run_serial(graph, target, input, n, output);
    const size_t chunk = (blocks + threads - 1) / threads * DENSE_BLOCK;
    const size_t chunks = (n + chunk - 1) / chunk;
    int failed = 0;
    cdl_status first = CDL_OK;
#pragma omp parallel for schedule(static) num_threads((int)threads)
    for (size_t c = 0; c < chunks; c++) {
        const size_t s0 = c * chunk, cnt = n - s0 < chunk ? n - s0 : chunk;
        cdl_status st = run_serial(graph, target, input + s0 * nin, cnt, output + s0 * nout);
        if (st != CDL_OK) {
#pragma omp critical(cdl_nn_run_status)
            {
                if (!failed) {
                    failed = 1;
                    first = st;
                }
            }
        }
    }
    if (failed)
        return cdl_fail(first, "plaintext inference ran out of memory (try a smaller batch)");
    return CDL_OK;
}

cdl_status cdl_nn_run(const cdl_nn_graph *graph, const double *input, size_t n, double *output)
{
    if (!graph || !input || !output)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_nn_run: graph, input and output must not be NULL");
    if (n == 0)
        return CDL_OK;
    return run_to(graph, graph->output, input, n, output);
}

cdl_status cdl_nn_run_value(const cdl_nn_graph *graph, int value, const double *input, size_t n, double *output)
{
    if (!graph || !input || !output)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_nn_run_value: graph, input and output must not be NULL");
    if (value < 1 || (size_t)value > graph->n_nodes)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_nn_run_value: value %d is not computed by the graph (node outputs are 1..%zu)", value,
                        graph->n_nodes);
    if (n == 0)
        return CDL_OK;
    return run_to(graph, value, input, n, output);
}
