/* test_he_merge.c: composing consecutive linear ops of an HE plan
 * (src/compile/he_merge.c). References: the plaintext float64 runtime
 * (cdl_nn_run), which computes every layer on its own, and the plan compiled
 * without merging, whose ops are applied one after another by a small
 * plaintext interpreter here. Checked: fewer levels and smaller parameters,
 * the merged map equal to the chain it replaces, the blow-up guard, exact
 * zeros dropped, the runtime's grouping invariants, and encrypted inference
 * on merged plans against cdl_nn_run (N = 2^11, allow_insecure, as
 * test_he_eval.c; same 1e-4 tolerance on logits ~1). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compile/he_merge.h"
#include "compile/he_plan.h"
#include "runtime/he_runtime.h"
#include "test_he_util.h"

#define PLAIN_TOL 1e-12 /* merged map vs the layers one by one, values ~1, double arithmetic */
#define ENC_TOL 1e-4    /* encrypted vs plaintext (test_he_eval.c's TINY_TOL) */

/* uniform in [-0.5, 0.5), never exactly 0 */
static double rnd(cdl_rng *r)
{
    double v = (double)(cdl_rng_u64(r) >> 11) / 9007199254740992.0 - 0.5;
    return v == 0.0 ? 0.25 : v;
}

static void fill(cdl_rng *r, double *a, size_t n, double amp)
{
    for (size_t i = 0; i < n; i++)
        a[i] = amp * rnd(r);
}

static double max_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= m))
            m = fabs(a[i] - b[i]);
    return m;
}

/* ---- a plaintext interpreter of plan ops (the reference for the unmerged chain) ---- */

static void plan_apply(const cdl_he_plan *p, const double *x, double *y)
{
    double **val = calloc(p->n_values, sizeof *val);
    assert_non_null(val);
    val[0] = (double *)x;
    for (size_t i = 0; i < p->n_ops; i++) {
        const he_op *op = &p->ops[i];
        if (op->kind == HE_OP_SKIP)
            continue;
        const double *in = val[op->in_value];
        assert_non_null(in);
        double *out = calloc(op->n_out, sizeof *out);
        assert_non_null(out);
        for (size_t o = 0; o < op->n_out; o++) {
            switch (op->kind) {
            case HE_OP_LINEAR: {
                double s = op->bias ? op->bias[o] : 0.0;
                for (size_t k = op->row[o]; k < op->row[o + 1]; k++)
                    s += op->w[k] * in[op->col[k]];
                out[o] = s;
                break;
            }
            case HE_OP_GATHER: out[o] = op->src[o] < 0 ? 0.0 : in[op->src[o]]; break;
            case HE_OP_SIGN: out[o] = op->sign[o] * in[o] + op->bias[o]; break;
            case HE_OP_SQUARE: out[o] = in[o] * in[o]; break;
            default: fail_msg("op kind %d not interpreted by the test", (int)op->kind);
            }
        }
        val[op->out_value] = out;
    }
    memcpy(y, val[p->output_value], p->output_size * sizeof *y);
    for (size_t v = 1; v < p->n_values; v++)
        free(val[v]);
    free(val);
}

/* The runtime's invariants for a linear op: columns ascending and in range,
 * no stored zero, and the groups (rows x union of columns) hold exactly the
 * CSR weights. */
static void check_linear_op(const he_op *op)
{
    for (size_t r = 0; r < op->n_out; r++)
        for (size_t k = op->row[r]; k < op->row[r + 1]; k++) {
            assert_true(op->col[k] < op->n_in);
            assert_true(op->w[k] != 0.0);
            if (k > op->row[r])
                assert_true(op->col[k] > op->col[k - 1]);
        }
    char *seen = calloc(op->n_out, 1);
    assert_non_null(seen);
    size_t nnz = 0;
    for (size_t g = 0; g < op->n_groups; g++) {
        const size_t r0 = op->grp_row[g], rows = op->grp_row[g + 1] - r0;
        const size_t c0 = op->grp_col[g], U = op->grp_col[g + 1] - c0;
        assert_true(rows >= 1 && rows <= 16);
        assert_int_equal(op->grp_w[g + 1] - op->grp_w[g], rows * U);
        for (size_t r = 0; r < rows; r++) {
            const size_t row = op->order[r0 + r];
            assert_false(seen[row]);
            seen[row] = 1;
            size_t k = op->row[row];
            for (size_t u = 0; u < U; u++) {
                double w = op->gw[op->grp_w[g] + r * U + u];
                if (k < op->row[row + 1] && op->col[k] == op->gcol[c0 + u]) {
                    assert_true(w == op->w[k]);
                    k++;
                    nnz++;
                } else {
                    assert_true(w == 0.0);
                }
            }
            assert_int_equal(k, op->row[row + 1]); /* every column of the row is in the union */
        }
    }
    assert_int_equal(nnz, op->row[op->n_out]);
    free(seen);
}

static size_t count_ops(const cdl_he_plan *p, he_op_kind kind)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_ops; i++)
        n += p->ops[i].kind == kind;
    return n;
}

static cdl_he_plan *compile(const cdl_nn_graph *g, int merge, const cdl_he_options *opt)
{
    cdl_he_plan *p = NULL;
    cdl_he_set_merge_linear(merge);
    cdl_status st = cdl_he_plan_new(g, opt, &p);
    cdl_he_set_merge_linear(1);
    if (st != CDL_OK)
        fail_msg("cdl_he_plan_new: %s", cdl_last_error());
    for (size_t i = 0; i < p->n_ops; i++)
        if (p->ops[i].kind == HE_OP_LINEAR)
            check_linear_op(&p->ops[i]);
    return p;
}

/* merged plan, unmerged plan and cdl_nn_run on n random inputs */
static void check_same_map(const cdl_nn_graph *g, const cdl_he_plan *merged, const cdl_he_plan *unmerged, size_t n)
{
    const size_t nin = cdl_nn_input_size(g), nout = merged->output_size;
    double *x = malloc(nin * sizeof *x), *ref = malloc(nout * sizeof *ref), *a = malloc(nout * sizeof *a),
           *b = malloc(nout * sizeof *b);
    cdl_rng *r = tg_seeded_rng(5);
    double worst = 0;
    for (size_t t = 0; t < n; t++) {
        fill(r, x, nin, 2.0);
        assert_int_equal(cdl_nn_run(g, x, 1, ref), CDL_OK);
        plan_apply(merged, x, a);
        plan_apply(unmerged, x, b);
        double d = max_diff(a, ref, nout), e = max_diff(a, b, nout);
        worst = fmax(worst, fmax(d, e));
        assert_true(d < PLAIN_TOL);
        assert_true(e < PLAIN_TOL);
    }
    printf("merged map vs cdl_nn_run and vs the unmerged ops, %zu random inputs: max diff %.3e\n", n, worst);
    cdl_rng_free(r);
    free(x);
    free(ref);
    free(a);
    free(b);
}

/* ---- graphs ------------------------------------------------------------------ */

static double cw[3 * 2 * 9], cb[3], fw[5 * 27], fb[5];

/* input 2x6x6 -> conv 3x3 pad 1 (3 channels) -> avgpool 2x2/2 -> flatten -> dense 5 */
static void build_conv_pool_dense(test_graph *t)
{
    cdl_rng *r = tg_seeded_rng(11);
    fill(r, cw, sizeof cw / sizeof cw[0], 1.0);
    fill(r, cb, 3, 1.0);
    fill(r, fw, sizeof fw / sizeof fw[0], 1.0);
    fill(r, fb, 5, 1.0);
    cdl_rng_free(r);
    tg_init(t, tg_shape3(2, 6, 6));
    cdl_nn_node *nd = tg_add(t, CDL_NN_CONV, "conv", tg_shape3(3, 6, 6));
    nd->kernel[0] = nd->kernel[1] = 3;
    for (int i = 0; i < 4; i++)
        nd->pads[i] = 1;
    nd->weight = cw;
    nd->n_weight = sizeof cw / sizeof cw[0];
    nd->bias = cb;
    nd->n_bias = 3;
    nd = tg_add(t, CDL_NN_AVGPOOL, "pool", tg_shape3(3, 3, 3));
    nd->kernel[0] = nd->kernel[1] = 2;
    nd->stride[0] = nd->stride[1] = 2;
    nd->count_include_pad = 1;
    tg_add(t, CDL_NN_RESHAPE, "flatten", tg_shape1(27));
    nd = tg_add(t, CDL_NN_DENSE, "fc", tg_shape1(5));
    nd->weight = fw;
    nd->n_weight = 5 * 27;
    nd->bias = fb;
    nd->n_bias = 5;
    cdl_nn_analyze(&t->g);
}

static void test_conv_pool_dense_merged(void **state)
{
    (void)state;
    test_graph t;
    build_conv_pool_dense(&t);
    assert_int_equal(cdl_nn_graph_depth(&t.g), 3);
    cdl_he_plan *m = compile(&t.g, 1, NULL), *u = compile(&t.g, 0, NULL);
    /* without merging: one level per linear node, as the nn layer counts */
    assert_int_equal(cdl_he_plan_levels(u), 3);
    assert_int_equal(count_ops(u, HE_OP_LINEAR), 3);
    /* merged: one linear op reading the input, one level */
    assert_int_equal(cdl_he_plan_levels(m), 1);
    assert_int_equal(m->levels_unmerged, 3);
    assert_int_equal(count_ops(m, HE_OP_LINEAR), 1);
    assert_int_equal(count_ops(m, HE_OP_GATHER), 0);
    const he_op *op = &m->ops[3];
    assert_int_equal(op->kind, HE_OP_LINEAR);
    assert_int_equal(op->n_linear, 3);
    assert_int_equal(op->n_moves, 1);
    assert_int_equal(op->in_value, 0);
    assert_int_equal(op->n_in, 72);
    assert_int_equal(op->n_out, 5);
    assert_int_equal(op->level_in, 1);
    assert_int_equal(op->level_out, 0);
    assert_string_equal(op->chain, "conv -> pool -> flatten (move) -> fc");
    assert_string_equal(op->name, "conv+fc");
    /* the guard held at each step: conv+pool within 2x its parts, then with fc */
    size_t nnz_conv = u->ops[0].row[u->ops[0].n_out], nnz_pool = u->ops[1].row[u->ops[1].n_out],
           nnz_fc = u->ops[3].row[u->ops[3].n_out];
    assert_true(op->row[op->n_out] <= 5 * 72);
    assert_true(op->row[op->n_out] <= CDL_HE_MERGE_FACTOR * (nnz_conv + nnz_pool + nnz_fc));
    check_same_map(&t.g, m, u, 50);
    /* fewer levels: fewer primes, a larger scale, less memory */
    const cdl_ckks_param_spec *sm = cdl_he_plan_params(m), *su = cdl_he_plan_params(u);
    assert_int_equal(sm->q_count, 2);
    assert_int_equal(su->q_count, 4);
    assert_true(sm->scale >= su->scale);
    assert_true(cdl_he_plan_memory(m) < cdl_he_plan_memory(u));
    cdl_he_cost cm, cu;
    cdl_he_plan_cost(m, &cm);
    cdl_he_plan_cost(u, &cu);
    assert_int_equal(cm.rescales, 5);
    assert_int_equal(cu.rescales, 108 + 27 + 5);
    char *text = NULL;
    assert_int_equal(cdl_he_plan_describe(m, &text), CDL_OK);
    assert_non_null(strstr(text, "linear (3 merged)"));
    assert_non_null(strstr(text, "= conv -> pool -> flatten (move) -> fc"));
    assert_non_null(strstr(text, "levels: 1 (3 without merging consecutive linear layers)"));
    cdl_he_string_free(text);
    assert_int_equal(cdl_he_plan_describe(u, &text), CDL_OK);
    assert_null(strstr(text, "merged"));
    assert_non_null(strstr(text, "levels: 3\n"));
    cdl_he_string_free(text);
    cdl_he_plan_free(m);
    cdl_he_plan_free(u);
}

/* input [nin] -> dense [mid] -> dense [nout], random nonzero weights */
static double d1w[256 * 256], d1b[256], d2w[256 * 64], d2b[256], d3w[64 * 16], d3b[64];

static void build_two_dense(test_graph *t, int nin, int mid, int nout)
{
    cdl_rng *r = tg_seeded_rng(13);
    fill(r, d1w, (size_t)nin * mid, 1.0);
    fill(r, d1b, (size_t)mid, 1.0);
    fill(r, d2w, (size_t)mid * nout, 1.0);
    fill(r, d2b, (size_t)nout, 1.0);
    cdl_rng_free(r);
    tg_init(t, tg_shape1(nin));
    cdl_nn_node *nd = tg_add(t, CDL_NN_DENSE, "d1", tg_shape1(mid));
    nd->weight = d1w;
    nd->n_weight = (size_t)nin * mid;
    nd->bias = d1b;
    nd->n_bias = (size_t)mid;
    nd = tg_add(t, CDL_NN_DENSE, "d2", tg_shape1(nout));
    nd->weight = d2w;
    nd->n_weight = (size_t)mid * nout;
    nd->bias = d2b;
    nd->n_bias = (size_t)nout;
    cdl_nn_analyze(&t->g);
}

static void test_blowup_guard(void **state)
{
    (void)state;
    test_graph t;
    /* 64 -> 4 -> 64: the product has 64 x 64 = 4096 weights, more than 2 x (256 + 256): not merged */
    build_two_dense(&t, 64, 4, 64);
    cdl_he_plan *m = compile(&t.g, 1, NULL), *u = compile(&t.g, 0, NULL);
    assert_true(64 * 64 > CDL_HE_MERGE_FACTOR * (256 + 256));
    assert_true(64 * 64 > (256 + 256) / CDL_HE_MERGE_SMALL_SHARE);
    assert_int_equal(cdl_he_plan_levels(m), 2);
    assert_int_equal(count_ops(m, HE_OP_LINEAR), 2);
    assert_null(m->ops[1].chain);
    assert_int_equal(m->ops[1].n_linear, 1);
    assert_int_equal(m->levels_unmerged, 2);
    check_same_map(&t.g, m, u, 5);
    cdl_he_plan_free(m);
    cdl_he_plan_free(u);

    /* 8 -> 4 -> 8: 64 weights, within 2 x (32 + 32): merged */
    build_two_dense(&t, 8, 4, 8);
    m = compile(&t.g, 1, NULL);
    u = compile(&t.g, 0, NULL);
    assert_int_equal(cdl_he_plan_levels(m), 1);
    assert_int_equal(count_ops(m, HE_OP_LINEAR), 1);
    assert_int_equal(m->ops[1].row[8], 64);
    check_same_map(&t.g, m, u, 5);
    cdl_he_plan_free(m);
    cdl_he_plan_free(u);

    /* small products merge whatever the factor: 256 -> dense 256 -> x^2 -> dense 2 -> dense 16. The last two
     * compose into 16 x 256 = 4096 weights, > 2 x (512 + 32) but <= 1/16 of the plan's 66080 weights */
    tg_init(&t, tg_shape1(256));
    cdl_rng *r = tg_seeded_rng(17);
    fill(r, d1w, 256 * 256, 0.1);
    fill(r, d2w, 256 * 2, 1.0);
    fill(r, d3w, 2 * 16, 1.0);
    fill(r, d3b, 16, 1.0);
    cdl_rng_free(r);
    cdl_nn_node *nd = tg_add(&t, CDL_NN_DENSE, "big", tg_shape1(256));
    nd->weight = d1w;
    nd->n_weight = 256 * 256;
    tg_add(&t, CDL_NN_SQUARE, "sq", tg_shape1(256));
    nd = tg_add(&t, CDL_NN_DENSE, "narrow", tg_shape1(2));
    nd->weight = d2w;
    nd->n_weight = 256 * 2;
    nd = tg_add(&t, CDL_NN_DENSE, "wide", tg_shape1(16));
    nd->weight = d3w;
    nd->n_weight = 2 * 16;
    nd->bias = d3b;
    nd->n_bias = 16;
    cdl_nn_analyze(&t.g);
    assert_true(16 * 256 > CDL_HE_MERGE_FACTOR * (512 + 32));
    assert_true(16 * 256 <= (65536 + 512 + 32) / CDL_HE_MERGE_SMALL_SHARE);
    m = compile(&t.g, 1, NULL);
    u = compile(&t.g, 0, NULL);
    assert_int_equal(cdl_he_plan_levels(u), 4);
    assert_int_equal(cdl_he_plan_levels(m), 3);
    assert_int_equal(m->ops[3].n_linear, 2);
    assert_int_equal(m->ops[3].row[16], 16 * 256);
    check_same_map(&t.g, m, u, 5);
    cdl_he_plan_free(m);
    cdl_he_plan_free(u);
}

/* Weights that cancel exactly are dropped (and only those): 2 -> [[1, 1], [1, -1]] -> [[1, 1]] is 2 x_0. */
static void test_exact_zeros_dropped(void **state)
{
    (void)state;
    static double a[4] = {1.0, 1.0, 1.0, -1.0}, ab[2] = {0.5, 0.25}, b[2] = {1.0, 1.0}, bb[1] = {0.125};
    test_graph t;
    tg_init(&t, tg_shape1(2));
    cdl_nn_node *nd = tg_add(&t, CDL_NN_DENSE, "a", tg_shape1(2));
    nd->weight = a;
    nd->n_weight = 4;
    nd->bias = ab;
    nd->n_bias = 2;
    nd = tg_add(&t, CDL_NN_DENSE, "b", tg_shape1(1));
    nd->weight = b;
    nd->n_weight = 2;
    nd->bias = bb;
    nd->n_bias = 1;
    cdl_nn_analyze(&t.g);
    cdl_he_plan *m = compile(&t.g, 1, NULL);
    const he_op *op = &m->ops[1];
    assert_int_equal(cdl_he_plan_levels(m), 1);
    assert_int_equal(op->row[1], 1);
    assert_int_equal(op->col[0], 0);
    assert_true(op->w[0] == 2.0);
    assert_true(op->bias[0] == 0.875); /* 0.5 + 0.25 + 0.125, exact in binary */
    cdl_he_plan_free(m);

    /* weights 40 and 40 would make 1600 > 2^9 (the runtime encodes w S in 62 bits): not merged */
    static double big_a[2] = {40.0, -40.0}, big_b[1] = {40.0};
    tg_init(&t, tg_shape1(2));
    nd = tg_add(&t, CDL_NN_DENSE, "a", tg_shape1(1));
    nd->weight = big_a;
    nd->n_weight = 2;
    nd = tg_add(&t, CDL_NN_DENSE, "b", tg_shape1(1));
    nd->weight = big_b;
    nd->n_weight = 1;
    cdl_nn_analyze(&t.g);
    assert_true(40.0 * 40.0 > CDL_HE_MERGE_MAX_WEIGHT);
    m = compile(&t.g, 1, NULL);
    assert_int_equal(cdl_he_plan_levels(m), 2);
    assert_int_equal(count_ops(m, HE_OP_LINEAR), 2);
    cdl_he_plan_free(m);
}

/* A +-1 affine (a free op) between two dense layers is folded, and they merge. */
static void test_sign_folded(void **state)
{
    (void)state;
    static double s_w[4] = {1.0, -1.0, -1.0, 1.0}, s_b[4] = {0.5, -0.25, 0.125, 1.0};
    test_graph t;
    cdl_rng *r = tg_seeded_rng(19);
    fill(r, d1w, 6 * 4, 1.0);
    fill(r, d1b, 4, 1.0);
    fill(r, d2w, 4 * 3, 1.0);
    fill(r, d2b, 3, 1.0);
    cdl_rng_free(r);
    tg_init(&t, tg_shape1(6));
    cdl_nn_node *nd = tg_add(&t, CDL_NN_DENSE, "d1", tg_shape1(4));
    nd->weight = d1w;
    nd->n_weight = 6 * 4;
    nd->bias = d1b;
    nd->n_bias = 4;
    nd = tg_add(&t, CDL_NN_AFFINE, "flip", tg_shape1(4));
    nd->weight = s_w;
    nd->n_weight = 4;
    nd->bias = s_b;
    nd->n_bias = 4;
    nd = tg_add(&t, CDL_NN_DENSE, "d2", tg_shape1(3));
    nd->weight = d2w;
    nd->n_weight = 4 * 3;
    nd->bias = d2b;
    nd->n_bias = 3;
    cdl_nn_analyze(&t.g);
    cdl_he_plan *m = compile(&t.g, 1, NULL), *u = compile(&t.g, 0, NULL);
    assert_int_equal(count_ops(u, HE_OP_SIGN), 1);
    assert_int_equal(cdl_he_plan_levels(u), 2);
    assert_int_equal(cdl_he_plan_levels(m), 1);
    assert_int_equal(count_ops(m, HE_OP_SIGN), 0);
    assert_int_equal(m->ops[2].n_linear, 2);
    assert_int_equal(m->ops[2].n_moves, 1);
    assert_string_equal(m->ops[2].chain, "d1 -> flip (+-1 affine) -> d2");
    check_same_map(&t.g, m, u, 10);
    cdl_he_plan_free(m);
    cdl_he_plan_free(u);
}

/* ---- encrypted --------------------------------------------------------------- */

typedef struct he_run {
    double max_diff;
    int levels;
} he_run;

/* Encrypt n random images, evaluate, decrypt; compare with cdl_nn_run on the graph's logits. With check_kernels,
 * the reference linear path (one mul_const + add per term) must give the same bits as the fused kernel. */
static he_run run_encrypted(const cdl_nn_graph *g, int merge, size_t n, int check_kernels)
{
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 11;
    opt.allow_insecure = 1;
    cdl_he_plan *plan = compile(g, merge, &opt);
    tg_he_session s;
    tg_he_open(plan, g, n, &s);
    if (check_kernels) {
        double *he2 = malloc(n * s.nout * sizeof *he2);
        assert_non_null(he2);
        cdl_he_set_reference_linear(1);
        tg_he_evaluate(plan, &s, he2);
        cdl_he_set_reference_linear(0);
        assert_memory_equal(s.he, he2, n * s.nout * sizeof *he2);
        free(he2);
    }
    he_run res = {tg_he_max_error(&s), cdl_he_plan_levels(plan)};
    tg_he_close(&s);
    cdl_he_plan_free(plan);
    return res;
}

static double ew[2 * 9], eb[2], ew2[3 * 8], eb2[3];

/* input 1x8x8 -> conv 3x3 pad 1 (2 channels) -> avgpool 2/2 -> x^2 -> avgpool 2/2 -> flatten -> dense 3 */
static void build_conv_pool_square_pool_dense(test_graph *t)
{
    cdl_rng *r = tg_seeded_rng(23);
    fill(r, ew, 18, 1.0);
    fill(r, eb, 2, 1.0);
    fill(r, ew2, 24, 1.0);
    fill(r, eb2, 3, 1.0);
    cdl_rng_free(r);
    tg_init(t, tg_shape3(1, 8, 8));
    cdl_nn_node *nd = tg_add(t, CDL_NN_CONV, "conv", tg_shape3(2, 8, 8));
    nd->kernel[0] = nd->kernel[1] = 3;
    for (int i = 0; i < 4; i++)
        nd->pads[i] = 1;
    nd->weight = ew;
    nd->n_weight = 18;
    nd->bias = eb;
    nd->n_bias = 2;
    nd = tg_add(t, CDL_NN_AVGPOOL, "pool1", tg_shape3(2, 4, 4));
    nd->kernel[0] = nd->kernel[1] = 2;
    nd->stride[0] = nd->stride[1] = 2;
    nd->count_include_pad = 1;
    tg_add(t, CDL_NN_SQUARE, "square", tg_shape3(2, 4, 4));
    nd = tg_add(t, CDL_NN_AVGPOOL, "pool2", tg_shape3(2, 2, 2));
    nd->kernel[0] = nd->kernel[1] = 2;
    nd->stride[0] = nd->stride[1] = 2;
    nd->count_include_pad = 1;
    tg_add(t, CDL_NN_RESHAPE, "flatten", tg_shape1(8));
    nd = tg_add(t, CDL_NN_DENSE, "fc", tg_shape1(3));
    nd->weight = ew2;
    nd->n_weight = 24;
    nd->bias = eb2;
    nd->n_bias = 3;
    cdl_nn_analyze(&t->g);
}

static void test_encrypted_merged_model(void **state)
{
    (void)state;
    test_graph t;
    build_conv_pool_square_pool_dense(&t);
    assert_int_equal(cdl_nn_graph_depth(&t.g), 5);
    /* conv+pool1: 1 level, x^2: 1, pool2+flatten+fc: 1 */
    he_run m = run_encrypted(&t.g, 1, 64, 1), u = run_encrypted(&t.g, 0, 64, 0);
    printf("conv -> pool -> x^2 -> pool -> dense, 64 images: %d levels merged (max |encrypted - cdl_nn_run| = "
           "%.3e), %d unmerged (%.3e)\n",
           m.levels, m.max_diff, u.levels, u.max_diff);
    assert_int_equal(m.levels, 3);
    assert_int_equal(u.levels, 5);
    assert_true(m.max_diff < ENC_TOL);
    assert_true(u.max_diff < ENC_TOL);
}

/* Exported PyTorch fixtures whose plans merge: encrypted logits against cdl_nn_run. */
static void test_encrypted_fixtures(void **state)
{
    (void)state;
    const struct {
        const char *file;
        int levels, unmerged, output;
    } cases[] = {
        {"pool_pad_global.onnx", 1, 3, 0},               /* pad (input) -> pool -> conv -> global pool */
        {"conv_pad_stride.onnx", 3, 4, 0},               /* pool -> flatten -> dense */
        {"he_avgpool_ceil_logsoftmax_opset17.onnx", 4, 5, 0}, /* conv -> pool */
        /* the residual exporter fixture up to its first activation (the whole model: test_he_residual.c):
         * conv -> AvgPool -> BatchNorm (not foldable into the conv across the pool) -> quadratic */
        {"residual_avgpool_opset17.onnx", 3, 5, 4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s", tg_source_dir(), cases[c].file);
        cdl_nn_graph *g = NULL;
        assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
        if (cases[c].output) {
            g->output = cases[c].output;
            assert_int_equal(g->nodes[1].kind, CDL_NN_AVGPOOL);
            assert_int_equal(g->nodes[2].kind, CDL_NN_AFFINE);
        }
        cdl_he_plan *u = compile(g, 0, NULL);
        assert_int_equal(cdl_he_plan_levels(u), cases[c].unmerged);
        cdl_he_plan_free(u);
        he_run m = run_encrypted(g, 1, 16, 1);
        printf("%s, 16 images: %d levels (%d unmerged), max |encrypted - cdl_nn_run| = %.3e\n", cases[c].file,
               m.levels, cases[c].unmerged, m.max_diff);
        assert_int_equal(m.levels, cases[c].levels);
        assert_true(m.max_diff < ENC_TOL);
        cdl_nn_graph_free(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_pool_dense_merged),
        cmocka_unit_test(test_blowup_guard),
        cmocka_unit_test(test_exact_zeros_dropped),
        cmocka_unit_test(test_sign_folded),
        cmocka_unit_test(test_encrypted_merged_model),
        cmocka_unit_test(test_encrypted_fixtures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
