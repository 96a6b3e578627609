/* test_he_residual.c: two-input ops in encrypted batch inference (HE_OP_ADD,
 * HE_OP_MUL): residual shortcuts x + f(x) whose branches have different
 * depths, differences (alpha = -1), other factors, products of two computed
 * tensors, additions of branches of equal depth with equal or different
 * scales, and the residual PyTorch exporter fixtures. Every encrypted result
 * is compared with the plaintext float64 runtime cdl_nn_run; the levels of
 * every unmerged plan with a depth computed here from the graph alone.
 *
 * Small rings (N = 2^11, allow_insecure, scale 2^30) keep each case well
 * under a second; the code path is the one of the secure sizes. Error
 * measure: max |encrypted - reference| / max |reference| over all logits of
 * the batch (per-element relative errors are meaningless near 0); required
 * below 1e-3, measured figures are printed. */
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
#include "test_he_util.h"

#define REL_TOL 1e-3
#define N_IMAGES 32

static double rnd(cdl_rng *r) { return (double)(cdl_rng_u64(r) >> 11) / 9007199254740992.0 - 0.5; }

/* ---- the independent depth count ------------------------------------------- */

/* The levels an unmerged plan must have, from the graph alone: linear layers
 * 1 (a +-1 affine 0), moves 0, x^2 1, a*x^(2^k)+c k, another polynomial of
 * degree d ceil(log2(d+1)); a product 1 beyond its deeper input; an addition
 * the depth of its deeper input, plus 1 when both have the same depth and
 * their scales are not known equal. Scales here: exactly S for the input and
 * after linear layers and general polynomials; x^2 of an exactly-S value
 * divides by the prime of its level, so two such squares at the same depth
 * have equal scales; anything else is "unknown". */
static int expected_levels(const cdl_nn_graph *g)
{
    int depth[TG_MAX_NODES + 1] = {0}, tag[TG_MAX_NODES + 1] = {0}; /* tag 0 = S, d > 0 = x^2 at depth d, -1 = ? */
    assert_true(g->n_nodes <= TG_MAX_NODES);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const cdl_nn_node *nd = &g->nodes[i];
        const int a = nd->inputs[0], b = nd->n_inputs > 1 ? nd->inputs[1] : a, o = (int)i + 1;
        switch (nd->kind) {
        case CDL_NN_CONV:
        case CDL_NN_DENSE:
        case CDL_NN_AVGPOOL:
            depth[o] = depth[a] + 1;
            tag[o] = 0;
            break;
        case CDL_NN_AFFINE: {
            int pm1 = 1;
            for (size_t k = 0; k < nd->n_weight; k++)
                pm1 &= fabs(nd->weight[k]) == 1.0;
            depth[o] = depth[a] + !pm1;
            tag[o] = pm1 ? tag[a] : 0;
            break;
        }
        case CDL_NN_PAD:
        case CDL_NN_RESHAPE:
        case CDL_NN_SLICE:
            depth[o] = depth[a];
            tag[o] = tag[a];
            break;
        case CDL_NN_SQUARE:
            depth[o] = depth[a] + 1;
            tag[o] = tag[a] == 0 ? depth[a] + 1 : -1;
            break;
        case CDL_NN_POLY: {
            int d = nd->degree, k = 0, pow2 = 1;
            while (d > 0 && nd->coeffs[d] == 0.0)
                d--;
            for (int j = 1; j < d; j++)
                pow2 &= nd->coeffs[j] == 0.0;
            pow2 &= d >= 2 && (d & (d - 1)) == 0;
            while ((1 << k) < d + (pow2 ? 0 : 1))
                k++;
            depth[o] = depth[a] + k;
            tag[o] = pow2 ? -1 : 0;
            break;
        }
        case CDL_NN_MUL:
            depth[o] = (depth[a] > depth[b] ? depth[a] : depth[b]) + 1;
            tag[o] = -1;
            break;
        case CDL_NN_ADD: {
            const int unit = fabs(nd->coeffs[0]) == 1.0; /* alpha b has b's scale */
            if (depth[a] != depth[b]) { /* the shallower is aligned to the deeper's scale */
                depth[o] = depth[a] > depth[b] ? depth[a] : depth[b];
                tag[o] = depth[a] > depth[b] ? tag[a] : unit ? tag[b] : -1;
            } else if (unit && tag[a] >= 0 && tag[a] == tag[b]) {
                depth[o] = depth[a];
                tag[o] = tag[a];
            } else { /* one aligned to the other, preferably to exactly S */
                depth[o] = depth[a] + 1;
                tag[o] = tag[a] == 0 || (unit && tag[b] == 0) ? 0 : -1;
            }
            break;
        }
        default: fail_msg("expected_levels: node kind %d not in these tests", (int)nd->kind);
        }
    }
    return depth[g->output];
}

/* ---- encrypted runs ---------------------------------------------------------- */

typedef struct he_run {
    double rel_err; /* max |he - ref| / max |ref| */
    double max_ref;
    int levels;
} he_run;

static cdl_he_plan *compile(const cdl_nn_graph *g, int merge)
{
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 11;
    opt.allow_insecure = 1;
    cdl_he_plan *p = NULL;
    cdl_he_set_merge_linear(merge);
    cdl_status st = cdl_he_plan_new(g, &opt, &p);
    cdl_he_set_merge_linear(1);
    if (st != CDL_OK)
        fail_msg("cdl_he_plan_new: %s", cdl_last_error());
    return p;
}

/* Encrypt N_IMAGES inputs in [0, 1), evaluate, decrypt, compare with cdl_nn_run. */
static he_run run_encrypted(const cdl_nn_graph *g, int merge)
{
    cdl_he_plan *plan = compile(g, merge);
    tg_he_session s;
    tg_he_open(plan, g, N_IMAGES, &s);
    double den = 0.0;
    for (size_t i = 0; i < s.n * s.nout; i++)
        if (fabs(s.ref[i]) > den)
            den = fabs(s.ref[i]);
    assert_true(den > 0.0);
    he_run res = {tg_he_max_error(&s) / den, den, cdl_he_plan_levels(plan)};
    tg_he_close(&s);
    cdl_he_plan_free(plan);
    return res;
}

/* Unmerged plan: levels = expected_levels; both plans: encrypted = cdl_nn_run. Returns the merged run. */
static he_run check_graph(const char *what, const cdl_nn_graph *g)
{
    const int want = expected_levels(g);
    he_run u = run_encrypted(g, 0), m = run_encrypted(g, 1);
    printf("%-44s levels %d (unmerged %d, expected %d), max rel err %.2e (unmerged %.2e), |logits| <= %.2f\n", what,
           m.levels, u.levels, want, m.rel_err, u.rel_err, m.max_ref);
    assert_int_equal(u.levels, want);
    assert_true(m.levels <= u.levels);
    assert_true(u.rel_err < REL_TOL);
    assert_true(m.rel_err < REL_TOL);
    return m;
}

/* ---- graphs -------------------------------------------------------------------- */

#define C 2
#define H 5
#define NV (C * H * H)
static double cw[4][C * C * 9], cb[4][C], dw[3 * NV], db[3];
static double quad[3] = {0.1, 0.5, 0.25};

static void init_weights(void)
{
    cdl_rng *r = tg_seeded_rng(9);
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < C * C * 9; i++)
            cw[k][i] = rnd(r) * 0.6;
        for (int i = 0; i < C; i++)
            cb[k][i] = rnd(r) * 0.4;
    }
    for (int i = 0; i < 3 * NV; i++)
        dw[i] = rnd(r) * 0.3;
    for (int i = 0; i < 3; i++)
        db[i] = rnd(r);
    cdl_rng_free(r);
}

/* conv 3x3, pad 1, C -> C channels, reading value `from` */
static void add_conv(test_graph *t, const char *name, int from, int k)
{
    cdl_nn_node *nd = tg_add(t, CDL_NN_CONV, name, tg_shape3(C, H, H));
    nd->inputs[0] = from;
    nd->in_shape = tg_shape3(C, H, H);
    nd->kernel[0] = nd->kernel[1] = 3;
    for (int i = 0; i < 4; i++)
        nd->pads[i] = 1;
    nd->weight = cw[k];
    nd->n_weight = C * C * 9;
    nd->bias = cb[k];
    nd->n_bias = C;
}

static void add_unary(test_graph *t, cdl_nn_kind kind, const char *name, int from)
{
    cdl_nn_node *nd = tg_add(t, kind, name, tg_shape3(C, H, H));
    nd->inputs[0] = from;
    nd->in_shape = tg_shape3(C, H, H);
    if (kind == CDL_NN_POLY) {
        nd->coeffs = quad;
        nd->degree = 2;
    }
}

static double alphas[8];
static int n_alphas;

/* a + alpha b (kind ADD) or a .* b (MUL) */
static void add_two(test_graph *t, cdl_nn_kind kind, const char *name, int a, int b, double alpha)
{
    cdl_nn_node *nd = tg_add(t, kind, name, tg_shape3(C, H, H));
    nd->n_inputs = 2;
    nd->inputs[0] = a;
    nd->inputs[1] = b;
    nd->in_shape = tg_shape3(C, H, H);
    if (kind == CDL_NN_ADD) {
        assert_true(n_alphas < 8);
        alphas[n_alphas] = alpha;
        nd->coeffs = &alphas[n_alphas++];
    }
}

/* flatten -> dense 3: the logits */
static void finish(test_graph *t)
{
    tg_add(t, CDL_NN_RESHAPE, "flatten", tg_shape1(NV));
    cdl_nn_node *nd = tg_add(t, CDL_NN_DENSE, "fc", tg_shape1(3));
    nd->weight = dw;
    nd->n_weight = 3 * NV;
    nd->bias = db;
    nd->n_bias = 3;
    cdl_nn_analyze(&t->g);
}

/* v1 = conv(x), v2 = v1^2, v3 = conv(v2), v4 = combine(x, v3) or combine(v3, x) */
static void build_shortcut(test_graph *t, cdl_nn_kind kind, int x_first, double alpha)
{
    n_alphas = 0;
    tg_init(t, tg_shape3(C, H, H));
    add_conv(t, "conv1", 0, 0);
    add_unary(t, CDL_NN_SQUARE, "square", 1);
    add_conv(t, "conv2", 2, 1);
    add_two(t, kind, "combine", x_first ? 0 : 3, x_first ? 3 : 0, alpha);
    finish(t);
}

/* ---- tests ---------------------------------------------------------------------- */

/* (a) the residual PyTorch exporter fixtures: conv -> pool -> BN -> quadratic (y), then y + conv(x^2(conv(y))),
 * global pool, fc; and matmul_residual (opset 15): two dense layers of the input added (equal depths, both at
 * scale S), a difference with a deeper branch, their product */
static void test_fixtures(void **state)
{
    (void)state;
    const struct {
        const char *file;
        size_t adds, muls;
        int merged_levels;
    } cases[] = {
        /* conv+pool+BN 1, quadratic 2, conv 1, x^2 1, conv 1, add 0, global pool+reshape+fc 1 */
        {"residual_avgpool_opset17.onnx", 1, 0, 7},
        {"residual_avgpool_opset11.onnx", 1, 0, 7},
        /* dense 1, add 0, 2x 1, sub 0, mul 1, affine 1: nothing to merge */
        {"matmul_residual.onnx", 2, 1, 4},
        /* per-channel quadratics: conv+BN 1, a*y (per-channel affine) 1, (a*y)*y 1, + b*y and + c 0,
         * conv 1, square 1, *sign (+-1) and + d 0, global pool + fc merged 1 */
        {"channel_quadratics_opset17.onnx", 1, 1, 6},
        /* slices of computed tensors (torch.flip, crops, strides): conv 1, + its mirror image 0,
         * square 1, moves 0, fc 1 */
        {"slice_moves_opset13.onnx", 1, 0, 3},
    };
    for (size_t f = 0; f < sizeof cases / sizeof cases[0]; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s", tg_source_dir(), cases[f].file);
        cdl_nn_graph *g = NULL;
        assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
        size_t adds = 0, muls = 0;
        for (size_t i = 0; i < g->n_nodes; i++) {
            adds += g->nodes[i].kind == CDL_NN_ADD;
            muls += g->nodes[i].kind == CDL_NN_MUL;
        }
        assert_int_equal(adds, cases[f].adds);
        assert_int_equal(muls, cases[f].muls);
        g->output = cdl_nn_graph_logits(g, NULL);
        /* unmerged: the nn layer's own per-node depth count agrees here (no equal-depth addition of
         * different scales) */
        assert_int_equal(expected_levels(g), cdl_nn_graph_depth(g));
        he_run m = check_graph(cases[f].file, g);
        assert_int_equal(m.levels, cases[f].merged_levels);
        /* the printed plan names both inputs of the addition */
        cdl_he_plan *p = compile(g, 1);
        char *text = NULL;
        assert_int_equal(cdl_he_plan_describe(p, &text), CDL_OK);
        assert_non_null(strstr(text, "a + b"));
        assert_non_null(strstr(text, "rescale"));
        cdl_he_string_free(text);
        assert_true(cdl_he_plan_memory(p) > 0);
        cdl_he_plan_free(p);
        cdl_nn_graph_free(g);
    }
}

/* (b) branches of different depths: x + conv(x^2(conv(x))) (the input batch itself is the shortcut: aligned
 * without touching the caller's ciphertexts), and conv(x)^2 + conv(x) (the shortcut's first reader, x^2, must
 * not consume it in place) */
static void test_different_depths(void **state)
{
    (void)state;
    test_graph t;
    build_shortcut(&t, CDL_NN_ADD, 1, 1.0);
    check_graph("x + conv(sq(conv(x)))", &t.g);
    build_shortcut(&t, CDL_NN_ADD, 0, 1.0);
    check_graph("conv(sq(conv(x))) + x", &t.g);

    n_alphas = 0;
    tg_init(&t, tg_shape3(C, H, H));
    add_conv(&t, "conv1", 0, 0);
    add_unary(&t, CDL_NN_SQUARE, "square", 1);
    add_two(&t, CDL_NN_ADD, "add", 2, 1, 1.0);
    finish(&t);
    check_graph("sq(conv(x)) + conv(x)", &t.g);
}

/* (c) Sub (alpha = -1) with either branch the deeper, and other factors: folded into the aligning constant
 * (b shallower) or read off b's scale (b deeper) */
static void test_sub_and_alpha(void **state)
{
    (void)state;
    test_graph t;
    build_shortcut(&t, CDL_NN_ADD, 0, -1.0);
    check_graph("conv(sq(conv(x))) - x", &t.g);
    build_shortcut(&t, CDL_NN_ADD, 1, -1.0);
    check_graph("x - conv(sq(conv(x)))", &t.g);
    build_shortcut(&t, CDL_NN_ADD, 0, 2.5);
    check_graph("conv(sq(conv(x))) + 2.5 x", &t.g);
    build_shortcut(&t, CDL_NN_ADD, 1, -0.5);
    check_graph("x - 0.5 conv(sq(conv(x)))", &t.g);
}

/* (d) products of two computed tensors: different depths and equal depths */
static void test_products(void **state)
{
    (void)state;
    test_graph t;
    build_shortcut(&t, CDL_NN_MUL, 1, 0.0);
    check_graph("x * conv(sq(conv(x)))", &t.g);

    n_alphas = 0;
    tg_init(&t, tg_shape3(C, H, H));
    add_conv(&t, "conv1", 0, 0);
    add_conv(&t, "conv2", 0, 1);
    add_unary(&t, CDL_NN_SQUARE, "square", 2);
    add_two(&t, CDL_NN_MUL, "mul", 1, 3, 0.0);
    finish(&t);
    check_graph("conv1(x) * sq(conv2(x))", &t.g);

    n_alphas = 0;
    tg_init(&t, tg_shape3(C, H, H));
    add_conv(&t, "conv1", 0, 0);
    add_conv(&t, "conv2", 0, 1);
    add_two(&t, CDL_NN_MUL, "mul", 1, 2, 0.0);
    finish(&t);
    check_graph("conv1(x) * conv2(x)", &t.g);
}

/* (e) equal depths: same scale (exactly S; or two squares of exactly-S values at one level) adds for free;
 * different scales (a square's drifted scale vs a polynomial's exact S) cost one level */
static void test_equal_depths(void **state)
{
    (void)state;
    test_graph t;
    n_alphas = 0;
    tg_init(&t, tg_shape3(C, H, H));
    add_conv(&t, "conv1", 0, 0);
    add_conv(&t, "conv2", 0, 1);
    add_two(&t, CDL_NN_ADD, "add", 1, 2, -1.0);
    finish(&t);
    check_graph("conv1(x) - conv2(x)", &t.g);

    n_alphas = 0;
    tg_init(&t, tg_shape3(C, H, H));
    add_conv(&t, "conv1", 0, 0);
    add_conv(&t, "conv2", 0, 1);
    add_unary(&t, CDL_NN_SQUARE, "sq1", 1);
    add_unary(&t, CDL_NN_SQUARE, "sq2", 2);
    add_two(&t, CDL_NN_ADD, "add", 3, 4, 1.0);
    finish(&t);
    check_graph("sq(conv1(x)) + sq(conv2(x))", &t.g);

    n_alphas = 0;
    tg_init(&t, tg_shape3(C, H, H));
    add_conv(&t, "conv1", 0, 0);
    add_unary(&t, CDL_NN_SQUARE, "sq1", 1);
    add_unary(&t, CDL_NN_POLY, "quad", 0);
    add_two(&t, CDL_NN_ADD, "add", 2, 3, 1.0);
    finish(&t);
    check_graph("sq(conv1(x)) + quad(x)", &t.g);
    n_alphas = 0;
    tg_init(&t, tg_shape3(C, H, H));
    add_conv(&t, "conv1", 0, 0);
    add_unary(&t, CDL_NN_SQUARE, "sq1", 1);
    add_unary(&t, CDL_NN_POLY, "quad", 0);
    add_two(&t, CDL_NN_ADD, "add", 3, 2, 2.0);
    finish(&t);
    check_graph("quad(x) + 2 sq(conv1(x))", &t.g);
}

/* (f) exact zeros (padding: no ciphertext at all): p = pad(x); ((conv(p) + p) + p^2) .* p. Where p is a zero the
 * sums keep their other input (aligned alone to the level and scale of the other positions) and the product
 * is a zero itself */
static double pw[C * C * 9], pdw[3 * C * 7 * 7];
static void test_exact_zeros(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(11);
    for (size_t i = 0; i < sizeof pw / sizeof pw[0]; i++)
        pw[i] = rnd(r) * 0.6;
    for (size_t i = 0; i < sizeof pdw / sizeof pdw[0]; i++)
        pdw[i] = rnd(r) * 0.3;
    cdl_rng_free(r);
    const cdl_nn_shape s7 = tg_shape3(C, 7, 7);
    test_graph t;
    n_alphas = 0;
    tg_init(&t, tg_shape3(C, H, H));
    cdl_nn_node *nd = tg_add(&t, CDL_NN_PAD, "pad", s7);
    for (int i = 0; i < 4; i++)
        nd->pads[i] = 1;
    nd = tg_add(&t, CDL_NN_CONV, "conv", s7);
    nd->kernel[0] = nd->kernel[1] = 3;
    for (int i = 0; i < 4; i++)
        nd->pads[i] = 1;
    nd->weight = pw;
    nd->n_weight = C * C * 9;
    nd = tg_add(&t, CDL_NN_SQUARE, "sq", s7);
    nd->inputs[0] = 1;
    nd->in_shape = s7;
    const int in[3][2] = {{2, 1}, {4, 3}, {5, 1}};
    for (int k = 0; k < 3; k++) {
        nd = tg_add(&t, k < 2 ? CDL_NN_ADD : CDL_NN_MUL, k == 0 ? "add1" : k == 1 ? "add2" : "mul", s7);
        nd->n_inputs = 2;
        nd->inputs[0] = in[k][0];
        nd->inputs[1] = in[k][1];
        nd->in_shape = s7;
        if (k < 2) {
            alphas[n_alphas] = 1.0;
            nd->coeffs = &alphas[n_alphas++];
        }
    }
    tg_add(&t, CDL_NN_RESHAPE, "flatten", tg_shape1(C * 7 * 7));
    nd = tg_add(&t, CDL_NN_DENSE, "fc", tg_shape1(3));
    nd->weight = pdw;
    nd->n_weight = 3 * C * 7 * 7;
    nd->bias = db;
    nd->n_bias = 3;
    cdl_nn_analyze(&t.g);
    check_graph("((conv(p) + p) + p^2) * p, p = pad(x)", &t.g);
}

int main(void)
{
    init_weights();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_different_depths),
        cmocka_unit_test(test_sub_and_alpha),
        cmocka_unit_test(test_products),
        cmocka_unit_test(test_equal_depths),
        cmocka_unit_test(test_exact_zeros),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
