/* test_nn.c: the ONNX importer and the plaintext runtime.
 *
 * The ONNX models here are encoded by the test itself with a tiny protobuf
 * writer (independent of the protobuf-c code the importer uses), and every
 * answer is recomputed by straightforward loops written differently from
 * src/nn/runtime.c (e.g. convolution by scattering input pixels). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/memory.h"
#include "cryptodl/cryptodl.h"

/* ---- a minimal protobuf writer ------------------------------------------- */

typedef struct pb {
    uint8_t *d;
    size_t n, cap;
} pb;

static void pb_raw(pb *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->d = realloc(b->d, b->cap);
        assert_non_null(b->d);
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}
static void pb_varint(pb *b, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        pb_raw(b, &c, 1);
    } while (v);
}
static void pb_tag(pb *b, int field, int wire) { pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire); }
static void pb_int(pb *b, int field, int64_t v)
{
    pb_tag(b, field, 0);
    pb_varint(b, (uint64_t)v);
}
static void pb_bytes(pb *b, int field, const void *p, size_t n)
{
    pb_tag(b, field, 2);
    pb_varint(b, n);
    pb_raw(b, p, n);
}
static void pb_str(pb *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }
static void pb_msg(pb *b, int field, pb *sub)
{
    pb_bytes(b, field, sub->d, sub->n);
    free(sub->d);
    memset(sub, 0, sizeof *sub);
}
static void pb_float(pb *b, int field, float f)
{
    pb_tag(b, field, 5);
    pb_raw(b, &f, 4); /* little-endian host (x86-64) */
}

/* TensorProto (float, raw_data) */
static void add_init(pb *graph, const char *name, const int64_t *dims, int rank, const float *vals)
{
    pb t = {0};
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        pb_int(&t, 1, dims[i]);
        n *= (size_t)dims[i];
    }
    pb_int(&t, 2, 1);
    pb_str(&t, 8, name);
    pb_bytes(&t, 9, vals, n * 4);
    pb_msg(graph, 5, &t);
}

static void add_value_info(pb *graph, int field, const char *name, const int64_t *dims, int rank)
{
    pb shape = {0}, tt = {0}, type = {0}, vi = {0};
    for (int i = 0; i < rank; i++) {
        pb dim = {0};
        if (dims[i] < 0)
            pb_str(&dim, 2, "N");
        else
            pb_int(&dim, 1, dims[i]);
        pb_msg(&shape, 1, &dim);
    }
    pb_int(&tt, 1, 1);
    pb_msg(&tt, 2, &shape);
    pb_msg(&type, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &type);
    pb_msg(graph, field, &vi);
}

typedef struct attr_spec {
    const char *name;
    int kind; /* 0 none, 1 int, 2 ints, 3 float */
    int64_t i;
    int64_t ints[4];
    int n_ints;
    float f;
} attr_spec;

static void add_node(pb *graph, const char *op, const char *name, const char *const *ins, int n_in, const char *out,
                     const attr_spec *attrs, int n_attrs)
{
    pb nd = {0};
    for (int i = 0; i < n_in; i++)
        pb_str(&nd, 1, ins[i]);
    pb_str(&nd, 2, out);
    pb_str(&nd, 3, name);
    pb_str(&nd, 4, op);
    for (int k = 0; k < n_attrs; k++) {
        pb a = {0};
        pb_str(&a, 1, attrs[k].name);
        if (attrs[k].kind == 1) {
            pb_int(&a, 3, attrs[k].i);
            pb_int(&a, 20, 2);
        } else if (attrs[k].kind == 2) {
            for (int j = 0; j < attrs[k].n_ints; j++)
                pb_int(&a, 8, attrs[k].ints[j]);
            pb_int(&a, 20, 7);
        } else if (attrs[k].kind == 3) {
            pb_float(&a, 2, attrs[k].f);
            pb_int(&a, 20, 1);
        }
        pb_msg(&nd, 5, &a);
    }
    pb_msg(graph, 1, &nd);
}

static void finish_model(pb *model, pb *graph, int opset)
{
    pb ops = {0};
    pb_int(model, 1, 8);
    pb_str(model, 2, "test_nn");
    pb_int(&ops, 2, opset);
    pb_msg(model, 8, &ops);
    pb_str(graph, 2, "g");
    pb_msg(model, 7, graph);
}

/* ---- independent references ---------------------------------------------- */

/* Convolution by scattering each input pixel into the outputs it touches. */
static void ref_conv(const float *x, int C, int H, int W, const float *w, const float *b, int O, int kh, int kw, int sh,
                     int sw, int pt, int pl, int OH, int OW, double *y)
{
    for (int o = 0; o < O; o++)
        for (int i = 0; i < OH * OW; i++)
            y[o * OH * OW + i] = b ? b[o] : 0;
    for (int c = 0; c < C; c++)
        for (int iy = 0; iy < H; iy++)
            for (int ix = 0; ix < W; ix++)
                for (int o = 0; o < O; o++)
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int ny = iy + pt - ky, nx = ix + pl - kx;
                            if (ny < 0 || nx < 0 || ny % sh || nx % sw)
                                continue;
                            int oy = ny / sh, ox = nx / sw;
                            if (oy >= OH || ox >= OW)
                                continue;
                            y[(o * OH + oy) * OW + ox] += (double)w[((o * C + c) * kh + ky) * kw + kx] * x[(c * H + iy) * W + ix];
                        }
}

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

/* ---- importer tests --------------------------------------------------------- */

/* Gemm, then y*y*a + y + 1 written as a chain of Mul/Mul/Add: the chain must
 * become one degree-2 polynomial node. */
static void gemm_poly_chain(float a)
{
    enum { K = 5, M = 3, N = 4 };
    float W[M * K], B[M], X[N * K];
    unsigned s = 7;
    for (int i = 0; i < M * K; i++)
        W[i] = frand(&s);
    for (int i = 0; i < M; i++)
        B[i] = frand(&s);
    for (int i = 0; i < N * K; i++)
        X[i] = frand(&s);
    float half = a, one = 1.0f;
    pb model = {0}, graph = {0};
    int64_t wd[2] = {M, K}, bd[1] = {M}, sd[1] = {1}, xin[2] = {-1, K}, yout[2] = {-1, M};
    add_init(&graph, "W", wd, 2, W);
    add_init(&graph, "B", bd, 1, B);
    add_init(&graph, "half", sd, 0, &half);
    add_init(&graph, "one", sd, 0, &one);
    attr_spec tb = {"transB", 1, 1, {0}, 0, 0};
    add_node(&graph, "Gemm", "fc", (const char *[]){"x", "W", "B"}, 3, "h", &tb, 1);
    add_node(&graph, "Mul", "sq", (const char *[]){"h", "h"}, 2, "h2", NULL, 0);
    add_node(&graph, "Mul", "scale", (const char *[]){"h2", "half"}, 2, "h3", NULL, 0);
    add_node(&graph, "Add", "lin", (const char *[]){"h3", "h"}, 2, "h4", NULL, 0);
    add_node(&graph, "Add", "shift", (const char *[]){"one", "h4"}, 2, "y", NULL, 0);
    add_value_info(&graph, 11, "x", xin, 2);
    add_value_info(&graph, 12, "y", yout, 2);
    finish_model(&model, &graph, 13);

    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_memory(model.d, model.n, &g), CDL_OK);
    assert_int_equal(g->n_nodes, 2);
    assert_int_equal(g->nodes[0].kind, CDL_NN_DENSE);
    assert_int_equal(g->nodes[1].kind, CDL_NN_POLY);
    assert_int_equal(g->nodes[1].degree, 2);
    if (fabs(1.0 / (2.0 * a)) > 10) { /* kept as fused: a x^2 + x + 1 */
        assert_true(fabs(g->nodes[1].coeffs[0] - 1.0) < 1e-12);
        assert_true(fabs(g->nodes[1].coeffs[1] - 1.0) < 1e-12);
        assert_true(fabs(g->nodes[1].coeffs[2] - a) < 1e-12);
        assert_true(g->nodes[0].weight[0] == W[0]);
        assert_int_equal(g->nodes[1].depth, 2);
    } else {
        /* e.g. 0.5 h^2 + h + 1 = (sqrt(0.5) h + 1/sqrt(2))^2 + 0.5: the square is
         * completed, sqrt(0.5) and the shift go into the dense layer, leaving
         * u^2 + 0.5 (one level instead of two). */
        const double sg = a > 0 ? 1 : -1;
        assert_true(fabs(g->nodes[1].coeffs[0] - (1.0 - 1.0 / (4.0 * a))) < 1e-12);
        assert_true(fabs(g->nodes[1].coeffs[1]) < 1e-12);
        assert_true(fabs(g->nodes[1].coeffs[2] - sg) < 1e-12);
        assert_true(fabs(g->nodes[0].weight[0] - sqrt(fabs(a)) * W[0]) < 1e-7);
        assert_int_equal(g->nodes[1].depth, 1);
        assert_int_equal(cdl_nn_graph_depth(g), 2);
    }
    assert_int_equal(cdl_nn_graph_he_blockers(g), 0);
    assert_int_equal(cdl_nn_graph_params(g), M * K + M);

    double in[N * K], out[N * M];
    for (int i = 0; i < N * K; i++)
        in[i] = X[i];
    assert_int_equal(cdl_nn_run(g, in, N, out), CDL_OK);
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            double h = B[m];
            for (int k = 0; k < K; k++)
                h += (double)X[n * K + k] * W[m * K + k];
            double want = 1.0 + h + (double)a * h * h;
            assert_true(fabs(out[n * M + m] - want) < 1e-9);
        }
    cdl_nn_graph_free(g);
    free(model.d);
}

static void test_gemm_poly_chain(void **state)
{
    (void)state;
    gemm_poly_chain(0.5f);
    gemm_poly_chain(-0.75f);
    gemm_poly_chain(0.01f); /* vertex at -50: the square is not completed */
}

/* Conv with pads and strides, then BatchNormalization folded into it. */
static void test_conv_bn_fold(void **state)
{
    (void)state;
    enum { C = 2, H = 7, Wd = 6, O = 3, KH = 3, KW = 2, SH = 2, SW = 1, PT = 1, PL = 0, PB = 1, PR = 1, N = 2 };
    const int OH = (H + PT + PB - KH) / SH + 1, OW = (Wd + PL + PR - KW) / SW + 1;
    float w[O * C * KH * KW], b[O], x[N * C * H * Wd], sc[O], bi[O], mean[O], var[O];
    unsigned s = 99;
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        w[i] = frand(&s);
    for (int i = 0; i < O; i++) {
        b[i] = frand(&s);
        sc[i] = 1.0f + frand(&s);
        bi[i] = frand(&s);
        mean[i] = frand(&s);
        var[i] = 1.0f + frand(&s);
    }
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        x[i] = frand(&s) + 0.5f;
    pb model = {0}, graph = {0};
    int64_t wd[4] = {O, C, KH, KW}, od[1] = {O}, xin[4] = {-1, C, H, Wd}, yout[4] = {-1, O, OH, OW};
    add_init(&graph, "w", wd, 4, w);
    add_init(&graph, "b", od, 1, b);
    add_init(&graph, "sc", od, 1, sc);
    add_init(&graph, "bi", od, 1, bi);
    add_init(&graph, "mean", od, 1, mean);
    add_init(&graph, "var", od, 1, var);
    attr_spec ca[3] = {{"kernel_shape", 2, 0, {KH, KW}, 2, 0},
                       {"strides", 2, 0, {SH, SW}, 2, 0},
                       {"pads", 2, 0, {PT, PL, PB, PR}, 4, 0}};
    add_node(&graph, "Conv", "conv", (const char *[]){"x", "w", "b"}, 3, "c", ca, 3);
    attr_spec ba = {"epsilon", 3, 0, {0}, 0, 1e-3f};
    add_node(&graph, "BatchNormalization", "bn", (const char *[]){"c", "sc", "bi", "mean", "var"}, 5, "y", &ba, 1);
    add_value_info(&graph, 11, "x", xin, 4);
    add_value_info(&graph, 12, "y", yout, 4);
    finish_model(&model, &graph, 9);

    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_memory(model.d, model.n, &g), CDL_OK);
    assert_int_equal(g->n_nodes, 1); /* BN folded */
    assert_int_equal(g->nodes[0].kind, CDL_NN_CONV);
    assert_int_equal(g->nodes[0].out_shape.dims[1], OH);
    assert_int_equal(g->nodes[0].out_shape.dims[2], OW);
    assert_int_equal(cdl_nn_graph_depth(g), 1);
    double in[N * C * H * Wd], out[N * O * 64], ref[O * 64];
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
        in[i] = x[i];
    assert_int_equal(cdl_nn_run(g, in, N, out), CDL_OK);
    for (int n = 0; n < N; n++) {
        ref_conv(x + n * C * H * Wd, C, H, Wd, w, b, O, KH, KW, SH, SW, PT, PL, OH, OW, ref);
        for (int o = 0; o < O; o++)
            for (int i = 0; i < OH * OW; i++) {
                double want = (ref[o * OH * OW + i] - mean[o]) / sqrt((double)var[o] + (double)1e-3f) * sc[o] + bi[o];
                assert_true(fabs(out[(n * O + o) * OH * OW + i] - want) < 1e-9);
            }
    }
    cdl_nn_graph_free(g);
    free(model.d);
}

static void expect_reject(pb *model, cdl_status want, const char *fragment)
{
    cdl_nn_graph *g = NULL;
    cdl_status st = cdl_nn_load_memory(model->d, model->n, &g);
    assert_int_equal(st, want);
    assert_null(g);
    if (fragment && !strstr(cdl_last_error(), fragment))
        fail_msg("error '%s' does not mention '%s'", cdl_last_error(), fragment);
}

static void test_rejections(void **state)
{
    (void)state;
    int64_t xin[2] = {-1, 4}, yout[2] = {-1, 4};
    /* unsupported op: names the node, its op type and what is supported */
    pb model = {0}, graph = {0};
    add_node(&graph, "LSTM", "rnn7", (const char *[]){"x"}, 1, "y", NULL, 0);
    add_value_info(&graph, 11, "x", xin, 2);
    add_value_info(&graph, 12, "y", yout, 2);
    finish_model(&model, &graph, 13);
    expect_reject(&model, CDL_ERR_UNSUPPORTED, "rnn7");
    assert_non_null(strstr(cdl_last_error(), "LSTM"));
    assert_non_null(strstr(cdl_last_error(), "Conv"));
    /* every truncation of a valid model is refused or imported, never a crash */
    for (size_t cut = 0; cut < model.n; cut++) {
        cdl_nn_graph *g = NULL;
        if (cdl_nn_load_memory(model.d, cut, &g) == CDL_OK)
            cdl_nn_graph_free(g);
    }
    free(model.d);

    /* absurd dimensions in an initializer */
    memset(&model, 0, sizeof model);
    memset(&graph, 0, sizeof graph);
    pb t = {0};
    pb_int(&t, 1, (int64_t)1 << 40);
    pb_int(&t, 1, (int64_t)1 << 40);
    pb_int(&t, 2, 1);
    pb_str(&t, 8, "W");
    pb_msg(&graph, 5, &t);
    add_node(&graph, "MatMul", "mm", (const char *[]){"x", "W"}, 2, "y", NULL, 0);
    add_value_info(&graph, 11, "x", xin, 2);
    add_value_info(&graph, 12, "y", yout, 2);
    finish_model(&model, &graph, 13);
    expect_reject(&model, CDL_ERR_FORMAT, "W");
    free(model.d);

    /* x*x repeated nine times: the fused polynomial would have degree 512 */
    memset(&model, 0, sizeof model);
    memset(&graph, 0, sizeof graph);
    const char *names[10] = {"x", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "y"};
    for (int i = 0; i < 9; i++)
        add_node(&graph, "Mul", names[i + 1], (const char *[]){names[i], names[i]}, 2, names[i + 1], NULL, 0);
    add_value_info(&graph, 11, "x", xin, 2);
    add_value_info(&graph, 12, "y", yout, 2);
    finish_model(&model, &graph, 13);
    expect_reject(&model, CDL_ERR_UNSUPPORTED, "degree");
    free(model.d);

    /* empty and garbage input */
    uint8_t junk[64];
    for (int i = 0; i < 64; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    cdl_nn_graph *g = NULL;
    assert_int_not_equal(cdl_nn_load_memory(junk, 0, &g), CDL_OK);
    assert_int_not_equal(cdl_nn_load_memory(junk, sizeof junk, &g), CDL_OK);
    assert_null(g);
}

/* ---- runtime tests on hand-built IR -------------------------------------- */

static cdl_nn_graph *one_node_graph(cdl_nn_kind kind, int C, int H, int W)
{
    cdl_nn_graph *g = cdl_calloc_array(1, sizeof *g);
    assert_non_null(g);
    g->nodes = cdl_calloc_array(1, sizeof *g->nodes);
    assert_non_null(g->nodes);
    g->n_nodes = 1;
    g->output = 1;
    g->input_shape.rank = 3;
    g->input_shape.dims[0] = C;
    g->input_shape.dims[1] = H;
    g->input_shape.dims[2] = W;
    cdl_nn_node *nd = &g->nodes[0];
    nd->kind = kind;
    nd->n_inputs = 1;
    nd->in_shape = nd->out_shape = g->input_shape;
    nd->kernel[0] = nd->kernel[1] = nd->stride[0] = nd->stride[1] = 1;
    return g;
}

static void test_avgpool_and_pad(void **state)
{
    (void)state;
    enum { C = 2, H = 5, W = 5 };
    double x[C * H * W], y[C * 9 * 9];
    for (int i = 0; i < C * H * W; i++)
        x[i] = i % 7 - 3 + 0.25 * i;
    for (int include = 0; include < 2; include++) {
        cdl_nn_graph *g = one_node_graph(CDL_NN_AVGPOOL, C, H, W);
        cdl_nn_node *nd = &g->nodes[0];
        nd->kernel[0] = nd->kernel[1] = 3;
        nd->stride[0] = nd->stride[1] = 2;
        nd->pads[0] = nd->pads[1] = nd->pads[2] = nd->pads[3] = 1;
        nd->count_include_pad = include;
        nd->out_shape.dims[1] = nd->out_shape.dims[2] = 3;
        cdl_nn_analyze(g);
        assert_int_equal(nd->he_ok, include);
        assert_int_equal(cdl_nn_run(g, x, 1, y), CDL_OK);
        /* reference: zero-pad explicitly, then average over windows */
        double p[C][7][7];
        memset(p, 0, sizeof p);
        for (int c = 0; c < C; c++)
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++)
                    p[c][i + 1][j + 1] = x[(c * H + i) * W + j];
        for (int c = 0; c < C; c++)
            for (int oy = 0; oy < 3; oy++)
                for (int ox = 0; ox < 3; ox++) {
                    double s = 0;
                    int real = 0;
                    for (int a = 0; a < 3; a++)
                        for (int b = 0; b < 3; b++) {
                            int iy = 2 * oy + a, ix = 2 * ox + b;
                            s += p[c][iy][ix];
                            real += iy >= 1 && iy <= H && ix >= 1 && ix <= W;
                        }
                    double want = s / (include ? 9 : real);
                    assert_true(fabs(y[(c * 3 + oy) * 3 + ox] - want) < 1e-12);
                }
        cdl_nn_graph_free(g);
    }
    /* zero padding: top 1, left 2, bottom 3, right 0 */
    cdl_nn_graph *g = one_node_graph(CDL_NN_PAD, C, H, W);
    cdl_nn_node *nd = &g->nodes[0];
    nd->pads[0] = 1, nd->pads[1] = 2, nd->pads[2] = 3, nd->pads[3] = 0;
    nd->out_shape.dims[1] = H + 4;
    nd->out_shape.dims[2] = W + 2;
    assert_int_equal(cdl_nn_run(g, x, 1, y), CDL_OK);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H + 4; i++)
            for (int j = 0; j < W + 2; j++) {
                int si = i - 1, sj = j - 2;
                double want = (si >= 0 && si < H && sj >= 0 && sj < W) ? x[(c * H + si) * W + sj] : 0.0;
                assert_true(y[(c * (H + 4) + i) * (W + 2) + j] == want);
            }
    cdl_nn_graph_free(g);
}

static void test_elementwise_kinds(void **state)
{
    (void)state;
    enum { N = 3, F = 11 };
    double x[N * F], y[N * F];
    for (int i = 0; i < N * F; i++)
        x[i] = (i - 16) * 0.37;
    const cdl_nn_kind kinds[] = {CDL_NN_RELU, CDL_NN_SIGMOID, CDL_NN_TANH, CDL_NN_SQUARE, CDL_NN_POLY, CDL_NN_AFFINE};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        cdl_nn_graph *g = one_node_graph(kinds[k], 1, 1, F);
        cdl_nn_node *nd = &g->nodes[0];
        if (kinds[k] == CDL_NN_POLY) {
            nd->degree = 3;
            nd->coeffs = cdl_alloc_array(4, sizeof(double));
            nd->coeffs[0] = 0.5, nd->coeffs[1] = -1, nd->coeffs[2] = 0.25, nd->coeffs[3] = 0.125;
        }
        if (kinds[k] == CDL_NN_AFFINE) {
            nd->weight = cdl_alloc_array(F, sizeof(double));
            nd->bias = cdl_alloc_array(F, sizeof(double));
            nd->n_weight = nd->n_bias = F;
            for (int i = 0; i < F; i++)
                nd->weight[i] = i - 5, nd->bias[i] = 0.5 * i;
        }
        cdl_nn_analyze(g);
        assert_int_equal(nd->he_ok, kinds[k] != CDL_NN_RELU && kinds[k] != CDL_NN_SIGMOID && kinds[k] != CDL_NN_TANH);
        assert_int_equal(cdl_nn_run(g, x, N, y), CDL_OK);
        for (int i = 0; i < N * F; i++) {
            double v = x[i], want;
            switch (kinds[k]) {
            case CDL_NN_RELU: want = v < 0 ? 0 : v; break;
            case CDL_NN_SIGMOID: want = exp(v) / (1 + exp(v)); break;
            case CDL_NN_TANH: want = (exp(2 * v) - 1) / (exp(2 * v) + 1); break;
            case CDL_NN_SQUARE: want = pow(v, 2); break;
            case CDL_NN_POLY: want = 0.5 - v + 0.25 * pow(v, 2) + 0.125 * pow(v, 3); break;
            default: want = (i % F - 5) * v + 0.5 * (i % F); break;
            }
            assert_true(fabs(y[i] - want) < 1e-12);
        }
        if (kinds[k] == CDL_NN_RELU) {
            const double c[3] = {0.1, 0.5, 0.2};
            size_t replaced = 0;
            assert_int_equal(cdl_nn_replace_activation(g, CDL_NN_RELU, c, 2, &replaced), CDL_OK);
            assert_int_equal(replaced, 1);
            assert_int_equal(nd->kind, CDL_NN_POLY);
            assert_int_equal(nd->he_ok, 1);
            assert_int_equal(nd->depth, 2);
        }
        cdl_nn_graph_free(g);
    }
}

/* Same results whatever the thread count (bit-identical). */
static void test_threads_identical(void **state)
{
    (void)state;
    cdl_nn_graph *g = one_node_graph(CDL_NN_CONV, 3, 9, 9);
    cdl_nn_node *nd = &g->nodes[0];
    nd->kernel[0] = nd->kernel[1] = 3;
    nd->out_shape.dims[0] = 4;
    nd->out_shape.dims[1] = nd->out_shape.dims[2] = 7;
    nd->n_weight = 4 * 3 * 9;
    nd->weight = cdl_alloc_array(nd->n_weight, sizeof(double));
    for (size_t i = 0; i < nd->n_weight; i++)
        nd->weight[i] = sin((double)i);
    enum { N = 37 };
    double *x = malloc(N * 243 * sizeof *x), *y1 = malloc(N * 196 * sizeof *y1), *y2 = malloc(N * 196 * sizeof *y2);
    for (int i = 0; i < N * 243; i++)
        x[i] = cos(0.1 * i);
    int saved = cdl_get_threads();
    cdl_set_threads(1);
    assert_int_equal(cdl_nn_run(g, x, N, y1), CDL_OK);
    cdl_set_threads(2);
    assert_int_equal(cdl_nn_run(g, x, N, y2), CDL_OK);
    cdl_set_threads(saved);
    assert_memory_equal(y1, y2, N * 196 * sizeof *y1);
    cdl_nn_graph_free(g);

    /* dense runs on blocks of samples: same bits as one sample at a time, and
     * as an independent dot product in the same order */
    g = one_node_graph(CDL_NN_DENSE, 3, 9, 9);
    nd = &g->nodes[0];
    nd->out_shape.rank = 1;
    nd->out_shape.dims[0] = 5;
    nd->n_weight = 5 * 243;
    nd->n_bias = 5;
    nd->weight = cdl_alloc_array(nd->n_weight, sizeof(double));
    nd->bias = cdl_alloc_array(5, sizeof(double));
    for (size_t i = 0; i < nd->n_weight; i++)
        nd->weight[i] = cos(0.37 * (double)i);
    for (int i = 0; i < 5; i++)
        nd->bias[i] = 0.1 * i;
    cdl_set_threads(2);
    assert_int_equal(cdl_nn_run(g, x, N, y1), CDL_OK);
    cdl_set_threads(saved);
    for (int s = 0; s < N; s++) {
        assert_int_equal(cdl_nn_run(g, x + s * 243, 1, y2 + s * 5), CDL_OK);
        for (int o = 0; o < 5; o++) {
            double acc = 0.1 * o;
            for (int i = 0; i < 243; i++)
                acc += cos(0.37 * (o * 243 + i)) * x[s * 243 + i];
            assert_true(y1[s * 5 + o] == acc);
        }
    }
    assert_memory_equal(y1, y2, N * 5 * sizeof *y1);
    free(x);
    free(y1);
    free(y2);
    cdl_nn_graph_free(g);
}

/* --approx: every ReLU/Sigmoid/Tanh of a PyTorch-exported model becomes a
 * polynomial from the approx layer; the graph is then HE-ready. */
static void test_apply_approx(void **state)
{
    (void)state;
    char path[1024];
    const char *src = getenv("CDL_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/activations.onnx", src && src[0] ? src : ".");
    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
    assert_int_equal(cdl_nn_graph_he_blockers(g), 3);
    assert_int_not_equal(cdl_nn_apply_approx(g, "relu=nosuch:4:-6:6", NULL), CDL_OK);
    assert_int_not_equal(cdl_nn_apply_approx(g, "relu=remez:4:6:-6", NULL), CDL_OK);
    assert_int_not_equal(cdl_nn_apply_approx(g, "gelu=remez:4:-6:6", NULL), CDL_OK);
    size_t n = 0;
    assert_int_equal(cdl_nn_apply_approx(g, "relu=remez:4:-6:6,sigmoid=ls:3:-8:8,tanh=cheb_interp:5:-3:3", &n), CDL_OK);
    assert_int_equal(n, 3);
    assert_int_equal(cdl_nn_graph_he_blockers(g), 0);
    /* the ReLU polynomial: close to max(x, 0) on [-6, 6] (Remez degree 4: error ~0.2) */
    const cdl_nn_node *p = NULL;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].kind == CDL_NN_POLY && g->nodes[i].degree == 4)
            p = &g->nodes[i];
    assert_non_null(p);
    for (double x = -6; x <= 6; x += 0.5) {
        double v = 0;
        for (int k = 4; k >= 0; k--)
            v = v * x + p->coeffs[k];
        assert_true(fabs(v - (x > 0 ? x : 0)) < 0.35);
    }
    cdl_nn_graph_free(g);
}

/* What Debian's PyTorch 1.13 writes for common layers (opset 13: F.pad as
 * ConstantOfShape/Slice/Transpose shape arithmetic, view() as
 * Shape/Gather/Unsqueeze/Concat, BN after a bias-free MatMul) comes out as
 * the plain layer sequence, with BN folded and the reshape pair collapsed. */
static void test_pytorch_variants_structure(void **state)
{
    (void)state;
    char path[1024];
    const char *src = getenv("CDL_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/variants_a_opset13.onnx", src && src[0] ? src : ".");
    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
    const cdl_nn_kind want[] = {CDL_NN_CONV, CDL_NN_SQUARE, CDL_NN_AVGPOOL, CDL_NN_RESHAPE,
                                CDL_NN_DENSE, CDL_NN_POLY, CDL_NN_DENSE};
    assert_int_equal(g->n_nodes, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < g->n_nodes; i++)
        assert_int_equal(g->nodes[i].kind, want[i]);
    /* AvgPool2d(count_include_pad=False) with padding: plaintext yes, HE no, and says why */
    assert_int_equal(g->nodes[2].he_ok, 0);
    assert_non_null(strstr(g->nodes[2].he_reason, "count_include_pad"));
    assert_int_equal(cdl_nn_graph_he_blockers(g), 1);
    /* x ** 3: degree 3, two levels */
    assert_int_equal(g->nodes[5].degree, 3);
    assert_int_equal(g->nodes[5].depth, 2);
    assert_int_equal(cdl_nn_graph_depth(g), 7);
    cdl_nn_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_poly_chain), cmocka_unit_test(test_conv_bn_fold),
        cmocka_unit_test(test_rejections),      cmocka_unit_test(test_avgpool_and_pad),
        cmocka_unit_test(test_elementwise_kinds), cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_apply_approx),      cmocka_unit_test(test_pytorch_variants_structure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
