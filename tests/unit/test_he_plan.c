/* test_he_plan.c: the HE compiler (batch-SIMD plan): levels counted against
 * the nn layer's own depth analysis, parameters checked against the ckks
 * layer's 128-bit table, unsupported nodes and impossible budgets refused
 * with messages that name the node and the way out. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_he_util.h"

static int spec_total_bits(const cdl_ckks_param_spec *sp)
{
    int t = 0;
    for (int i = 0; i < sp->q_count; i++)
        t += sp->q_bits[i];
    for (int i = 0; i < sp->p_count; i++)
        t += sp->p_bits[i];
    return t;
}

static void test_mnist_plan(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/models/mnist_cryptonets.onnx", tg_source_dir());
    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
    cdl_he_plan *plan = NULL;
    assert_int_equal(cdl_he_plan_new(g, NULL, &plan), CDL_OK);
    /* levels = the nn layer's own depth analysis */
    assert_int_equal(cdl_he_plan_levels(plan), cdl_nn_graph_depth(g));
    const cdl_ckks_param_spec *sp = cdl_he_plan_params(plan);
    assert_int_equal(sp->q_count, cdl_nn_graph_depth(g) + 1);
    assert_int_equal(sp->log_n, 13); /* 5 levels fit the N=2^13 budget */
    assert_true(spec_total_bits(sp) <= cdl_ckks_max_log_qp(sp->log_n));
    assert_false(sp->allow_insecure);
    assert_true(sp->scale >= ldexp(1.0, 26));
    assert_int_equal(cdl_he_plan_input_size(plan), cdl_nn_input_size(g));
    assert_int_equal(cdl_he_plan_output_size(plan), cdl_nn_output_size(g));
    assert_int_equal(cdl_he_plan_batch_capacity(plan), 4096);
    /* cost from the graph's shapes: one ct x ct per activation value, one
     * rescale per linear output and per activation value */
    size_t squares = 0, linear_out = 0, dense_nnz = 0;
    cdl_he_cost cost;
    cdl_he_plan_cost(plan, &cost);
    for (size_t i = 0; i < g->n_nodes; i++) {
        const cdl_nn_node *nd = &g->nodes[i];
        size_t n = cdl_nn_shape_numel(&nd->out_shape);
        if (nd->kind == CDL_NN_SQUARE)
            squares += n;
        if (nd->kind == CDL_NN_CONV || nd->kind == CDL_NN_DENSE)
            linear_out += n;
        if (nd->kind == CDL_NN_DENSE)
            for (size_t k = 0; k < nd->n_weight; k++)
                dense_nnz += nd->weight[k] != 0.0;
    }
    assert_int_equal(cost.ct_mults, squares);
    assert_int_equal(cost.rescales, squares + linear_out);
    assert_true(cost.const_mults > dense_nnz && cost.const_mults <= dense_nnz + 845 * 25);
    /* peak memory: a ciphertext at level l holds 2 x (l + 1) limbs of 2^13
     * words (results are shrunk to their level). 5 levels: the caller's 784
     * input ciphertexts stay at level 5 (6 limbs). During the convolution (level
     * 5 -> 4) they and its 845 outputs (5 limbs) are alive: 784*6 + 845*5 limbs.
     * Later peaks are smaller: the first dense layer holds 784*6 + 845*4 (squared
     * in place, level 3) + 100*3. (Measured resident size of `cryptodl predict`,
     * everything included: 1.42 GB.) */
    const uint64_t limb_bytes = 2ull * 8192 * 8;
    assert_int_equal(cdl_he_plan_memory(plan), (784ull * 6 + 845 * 5) * limb_bytes);
    /* the ckks layer accepts the parameters without allow_insecure */
    cdl_ckks_context *ctx = NULL;
    assert_int_equal(cdl_he_context_new(plan, &ctx), CDL_OK);
    assert_int_equal(cdl_ckks_max_level(ctx), 5);
    cdl_ckks_context_free(ctx);
    char *text = NULL;
    assert_int_equal(cdl_he_plan_describe(plan, &text), CDL_OK);
    assert_non_null(strstr(text, "N = 2^13"));
    assert_non_null(strstr(text, "/3/Gemm"));
    cdl_he_string_free(text);
    cdl_he_plan_free(plan);

    /* a scale too large for the budget at a forced N */
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 13;
    opt.scale_bits = 40;
    assert_int_equal(cdl_he_plan_new(g, &opt, &plan), CDL_ERR_PARAMETERS);
    assert_non_null(strstr(cdl_last_error(), "5 levels"));
    assert_null(plan);
    cdl_nn_graph_free(g);
}

/* input [4] -> dense -> k x square -> dense */
static void build_deep(test_graph *t, int squares)
{
    static double w1[16], w2[8];
    for (int i = 0; i < 16; i++)
        w1[i] = 0.1 * (i % 5) - 0.2;
    for (int i = 0; i < 8; i++)
        w2[i] = 0.05 * i;
    tg_init(t, tg_shape1(4));
    cdl_nn_node *nd = tg_add(t, CDL_NN_DENSE, "fc1", tg_shape1(4));
    nd->weight = w1;
    nd->n_weight = 16;
    for (int k = 0; k < squares; k++) {
        char name[32];
        snprintf(name, sizeof name, "sq%d", k);
        tg_add(t, CDL_NN_SQUARE, name, tg_shape1(4));
    }
    nd = tg_add(t, CDL_NN_DENSE, "fc2", tg_shape1(2));
    nd->weight = w2;
    nd->n_weight = 8;
    cdl_nn_analyze(&t->g);
}

static void test_automatic_ring_degree(void **state)
{
    (void)state;
    test_graph t;
    struct {
        int squares, log_n;
    } cases[] = {{1, 13}, {8, 14}, {14, 15}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        build_deep(&t, cases[c].squares);
        cdl_he_plan *plan = NULL;
        assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_OK);
        const cdl_ckks_param_spec *sp = cdl_he_plan_params(plan);
        assert_int_equal(cdl_he_plan_levels(plan), cdl_nn_graph_depth(&t.g));
        assert_int_equal(sp->log_n, cases[c].log_n);
        assert_true(spec_total_bits(sp) <= cdl_ckks_max_log_qp(sp->log_n));
        assert_true(sp->scale >= ldexp(1.0, 26));
        /* the next smaller N could not have held these levels at scale 2^26 */
        if (sp->log_n > 13)
            assert_true((cdl_he_plan_levels(plan) + 2) * 26 + 20 > cdl_ckks_max_log_qp(sp->log_n - 1));
        cdl_he_plan_free(plan);
    }
    /* far too deep for any N without bootstrapping: a clear refusal */
    build_deep(&t, 70);
    cdl_he_plan *plan = NULL;
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_ERR_PARAMETERS);
    assert_non_null(strstr(cdl_last_error(), "72 levels"));
}

static void test_unsupported_nodes(void **state)
{
    (void)state;
    static double w[16];
    for (int i = 0; i < 16; i++)
        w[i] = 0.1;
    test_graph t;
    tg_init(&t, tg_shape1(4));
    cdl_nn_node *nd = tg_add(&t, CDL_NN_DENSE, "fc1", tg_shape1(4));
    nd->weight = w;
    nd->n_weight = 16;
    tg_add(&t, CDL_NN_RELU, "my_relu", tg_shape1(4));
    cdl_nn_analyze(&t.g);
    cdl_he_plan *plan = NULL;
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cdl_last_error(), "my_relu"));
    assert_non_null(strstr(cdl_last_error(), "--approx"));
    assert_null(plan);

    /* two computed inputs: residual addition (compiles now) */
    tg_init(&t, tg_shape1(4));
    nd = tg_add(&t, CDL_NN_DENSE, "fc1", tg_shape1(4));
    nd->weight = w;
    nd->n_weight = 16;
    tg_add(&t, CDL_NN_SQUARE, "sq", tg_shape1(4));
    static double alpha = 1.0;
    nd = tg_add(&t, CDL_NN_ADD, "residual_add", tg_shape1(4));
    nd->n_inputs = 2;
    nd->inputs[1] = 1;
    nd->coeffs = &alpha;
    cdl_nn_analyze(&t.g);
    /* runs encrypted since the batch runtime has two-input ops (test_he_residual.c): fc1 aligned to x^2's level,
     * no level of its own */
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_OK);
    assert_int_equal(cdl_he_plan_levels(plan), cdl_nn_graph_depth(&t.g));
    assert_int_equal(cdl_he_plan_levels(plan), 2);
    cdl_he_plan_free(plan);
    plan = NULL;

    /* a node the output does not depend on is not compiled (nor refused) */
    tg_init(&t, tg_shape1(4));
    nd = tg_add(&t, CDL_NN_DENSE, "fc1", tg_shape1(4));
    nd->weight = w;
    nd->n_weight = 16;
    tg_add(&t, CDL_NN_RELU, "dangling_relu", tg_shape1(4));
    cdl_nn_analyze(&t.g);
    t.g.output = 1;
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_OK);
    assert_int_equal(cdl_he_plan_levels(plan), 1);
    cdl_he_plan_free(plan);

    assert_int_equal(cdl_he_plan_new(NULL, NULL, &plan), CDL_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mnist_plan),
        cmocka_unit_test(test_automatic_ring_degree),
        cmocka_unit_test(test_unsupported_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
