/* test_nn_ops.c: the ops PyTorch exports that are not polynomials (Softmax,
 * LogSoftmax, MaxPool, LeakyRelu, Clip, Elu): the plaintext runtime against
 * direct formulas, and what the HE compiler does with them: a trailing
 * softmax is dropped (same levels as the model without it, the encrypted
 * result is the logits), any other one and every max pool are refused with a
 * message naming the node and the way out; --approx leakyrelu=... turns a
 * leaky ReLU into a x + (1 - a) p(x). Parity with PyTorch itself is in
 * test_nn_parity (fixtures from tests/fixtures/onnx/make_fixtures.py). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "test_he_util.h"

static double w16[16], b4[4];

/* dense(4) -> x^2 -> dense(4): 2 linear levels + 1 square */
static void base_graph(test_graph *t)
{
    for (int i = 0; i < 16; i++)
        w16[i] = 0.05 * (i % 5) - 0.1;
    for (int i = 0; i < 4; i++)
        b4[i] = 0.01 * i;
    tg_init(t, tg_shape1(4));
    cdl_nn_node *nd = tg_add(t, CDL_NN_DENSE, "fc1", tg_shape1(4));
    nd->weight = w16;
    nd->n_weight = 16;
    nd->bias = b4;
    nd->n_bias = 4;
    tg_add(t, CDL_NN_SQUARE, "sq", tg_shape1(4));
    nd = tg_add(t, CDL_NN_DENSE, "fc2", tg_shape1(4));
    nd->weight = w16;
    nd->n_weight = 16;
    nd->bias = b4;
    nd->n_bias = 4;
}

static cdl_nn_node *add_softmax(test_graph *t, cdl_nn_kind kind, const char *name, cdl_nn_shape s, int len, int inner)
{
    cdl_nn_node *nd = tg_add(t, kind, name, s);
    nd->kernel[0] = len;
    nd->kernel[1] = inner;
    return nd;
}

static void test_trailing_softmax_dropped(void **state)
{
    (void)state;
    test_graph t;
    base_graph(&t);
    cdl_nn_analyze(&t.g);
    cdl_he_plan *ref = NULL, *plan = NULL;
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &ref), CDL_OK);

    for (int variant = 0; variant < 3; variant++) {
        base_graph(&t);
        size_t want = 1;
        if (variant == 0) {
            add_softmax(&t, CDL_NN_SOFTMAX, "probs", tg_shape1(4), 4, 1);
        } else if (variant == 1) {
            add_softmax(&t, CDL_NN_LOGSOFTMAX, "log_probs", tg_shape1(4), 4, 1);
        } else { /* softmax then log-softmax: both dropped */
            add_softmax(&t, CDL_NN_SOFTMAX, "probs", tg_shape1(4), 4, 1);
            add_softmax(&t, CDL_NN_LOGSOFTMAX, "log_probs", tg_shape1(4), 4, 1);
            want = 2;
        }
        cdl_nn_analyze(&t.g);
        size_t dropped = 0;
        assert_int_equal(cdl_nn_graph_logits(&t.g, &dropped), 3); /* fc2's output */
        assert_int_equal(dropped, want);
        assert_int_equal(cdl_nn_graph_he_blockers(&t.g), 0);
        assert_non_null(strstr(t.nodes[3].he_reason, "logits"));
        assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_OK);
        /* levels, parameters and sizes are those of the model without softmax */
        assert_int_equal(cdl_he_plan_levels(plan), cdl_he_plan_levels(ref));
        assert_int_equal(cdl_he_plan_levels(plan), 3);
        assert_int_equal(cdl_he_plan_output_size(plan), 4);
        assert_int_equal(cdl_he_plan_params(plan)->log_n, cdl_he_plan_params(ref)->log_n);
        assert_int_equal(cdl_he_plan_params(plan)->q_count, cdl_he_plan_params(ref)->q_count);
        char *text = NULL;
        assert_int_equal(cdl_he_plan_describe(plan, &text), CDL_OK);
        assert_non_null(strstr(text, "logits before the trailing softmax"));
        cdl_he_string_free(text);
        cdl_he_plan_free(plan);
        plan = NULL;
    }
    /* the model without softmax says nothing about it */
    char *text = NULL;
    assert_int_equal(cdl_he_plan_describe(ref, &text), CDL_OK);
    assert_null(strstr(text, "softmax"));
    cdl_he_string_free(text);
    cdl_he_plan_free(ref);
}

static void test_softmax_elsewhere_refused(void **state)
{
    (void)state;
    test_graph t;
    cdl_he_plan *plan = NULL;
    /* in the middle: dense -> softmax -> dense */
    base_graph(&t);
    t.g.n_nodes = 1;
    add_softmax(&t, CDL_NN_SOFTMAX, "mid_softmax", tg_shape1(4), 4, 1);
    cdl_nn_node *nd = tg_add(&t, CDL_NN_DENSE, "fc2", tg_shape1(4));
    nd->weight = w16;
    nd->n_weight = 16;
    cdl_nn_analyze(&t.g);
    assert_int_equal(cdl_nn_graph_logits(&t.g, NULL), t.g.output);
    assert_int_equal(cdl_nn_graph_he_blockers(&t.g), 1);
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cdl_last_error(), "mid_softmax"));
    assert_non_null(strstr(cdl_last_error(), "end of the network"));
    assert_null(plan);

    /* at the end but per position (softmax over 2 channels of a 2x1x2 map):
     * argmax over all outputs would not be the classifier's answer */
    tg_init(&t, tg_shape3(2, 1, 2));
    add_softmax(&t, CDL_NN_SOFTMAX, "pixel_softmax", tg_shape3(2, 1, 2), 2, 2);
    cdl_nn_analyze(&t.g);
    size_t dropped = 9;
    assert_int_equal(cdl_nn_graph_logits(&t.g, &dropped), 1);
    assert_int_equal(dropped, 0);
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cdl_last_error(), "pixel_softmax"));

    /* a graph that is only a softmax of its input has no logits to encrypt */
    tg_init(&t, tg_shape1(4));
    add_softmax(&t, CDL_NN_SOFTMAX, "only", tg_shape1(4), 4, 1);
    cdl_nn_analyze(&t.g);
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_ERR_UNSUPPORTED);
    assert_null(plan);
}

static void test_maxpool_refused(void **state)
{
    (void)state;
    test_graph t;
    tg_init(&t, tg_shape3(1, 4, 4));
    cdl_nn_node *nd = tg_add(&t, CDL_NN_MAXPOOL, "pool1", tg_shape3(1, 2, 2));
    nd->kernel[0] = nd->kernel[1] = nd->stride[0] = nd->stride[1] = 2;
    cdl_nn_analyze(&t.g);
    assert_false(t.nodes[0].he_ok);
    cdl_he_plan *plan = NULL;
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cdl_last_error(), "pool1"));
    assert_non_null(strstr(cdl_last_error(), "average pooling"));
    assert_null(plan);
    /* the plaintext runtime computes it: max of each 2x2 window */
    double x[16], y[4];
    for (int i = 0; i < 16; i++)
        x[i] = sin(1.7 * i);
    assert_int_equal(cdl_nn_run(&t.g, x, 1, y), CDL_OK);
    for (int oy = 0; oy < 2; oy++)
        for (int ox = 0; ox < 2; ox++) {
            double m = -INFINITY;
            for (int k = 0; k < 4; k++)
                m = fmax(m, x[(2 * oy + k / 2) * 4 + 2 * ox + k % 2]);
            assert_true(y[oy * 2 + ox] == m);
        }
}

/* Softmax / log-softmax of large logits (no overflow) and the parameterised
 * activations, against the textbook formulas. */
static void test_runtime_formulas(void **state)
{
    (void)state;
    const double x[6] = {1000.0, 999.0, -5.0, 0.25, -0.5, 3.0};
    double y[6];
    test_graph t;
    for (int log_out = 0; log_out < 2; log_out++) {
        tg_init(&t, tg_shape1(6));
        add_softmax(&t, log_out ? CDL_NN_LOGSOFTMAX : CDL_NN_SOFTMAX, "sm", tg_shape1(6), 3, 1); /* two groups */
        cdl_nn_analyze(&t.g);
        assert_int_equal(cdl_nn_run(&t.g, x, 1, y), CDL_OK);
        for (int g = 0; g < 2; g++) {
            double s = 0;
            for (int k = 0; k < 3; k++)
                s += exp(x[3 * g + k] - x[3 * g]); /* shifted by the first: exact enough here */
            for (int k = 0; k < 3; k++) {
                double want = exp(x[3 * g + k] - x[3 * g]) / s;
                assert_true(isfinite(y[3 * g + k]));
                assert_true(fabs((log_out ? exp(y[3 * g + k]) : y[3 * g + k]) - want) < 1e-12);
            }
        }
    }
    static double leaky[1] = {0.1}, clip[2] = {-0.3, 0.6}, elu[1] = {0.7};
    const cdl_nn_kind kinds[3] = {CDL_NN_LEAKY_RELU, CDL_NN_CLIP, CDL_NN_ELU};
    double *params[3] = {leaky, clip, elu};
    for (int k = 0; k < 3; k++) {
        tg_init(&t, tg_shape1(6));
        cdl_nn_node *nd = tg_add(&t, kinds[k], "act", tg_shape1(6));
        nd->coeffs = params[k];
        cdl_nn_analyze(&t.g);
        assert_false(t.nodes[0].he_ok);
        assert_int_equal(cdl_nn_run(&t.g, x, 1, y), CDL_OK);
        for (int i = 0; i < 6; i++) {
            double v = x[i], want;
            if (k == 0)
                want = v > 0 ? v : 0.1 * v;
            else if (k == 1)
                want = v < -0.3 ? -0.3 : v > 0.6 ? 0.6 : v;
            else
                want = v > 0 ? v : 0.7 * (exp(v) - 1);
            assert_true(fabs(y[i] - want) < 1e-15);
        }
    }
}

static void test_leaky_relu_approx(void **state)
{
    (void)state;
    test_graph t;
    base_graph(&t);
    t.g.n_nodes = 2; /* fc1 -> x^2 -> leaky: nothing for the optimizer to fold */
    static double slope[1] = {0.2};
    cdl_nn_node *nd = tg_add(&t, CDL_NN_LEAKY_RELU, "lrelu", tg_shape1(4));
    nd->coeffs = slope;
    cdl_nn_analyze(&t.g);
    cdl_he_plan *plan = NULL;
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cdl_last_error(), "leakyrelu="));
    /* the replacement frees the node's arrays: give it a heap copy */
    double *c = malloc(sizeof(double));
    assert_non_null(c);
    c[0] = 0.2;
    t.nodes[2].coeffs = c;
    const double relu_p[3] = {0.5, 0.5, 0.25}; /* any polynomial: the identity is exact */
    size_t n = 0;
    assert_int_equal(cdl_nn_replace_activation(&t.g, CDL_NN_LEAKY_RELU, relu_p, 2, &n), CDL_OK);
    assert_int_equal(n, 1);
    nd = &t.nodes[2];
    assert_int_equal(nd->kind, CDL_NN_POLY);
    assert_int_equal(nd->degree, 2);
    /* 0.2 x + 0.8 p(x) */
    assert_true(fabs(nd->coeffs[0] - 0.8 * 0.5) < 1e-15);
    assert_true(fabs(nd->coeffs[1] - (0.2 + 0.8 * 0.5)) < 1e-15);
    assert_true(fabs(nd->coeffs[2] - 0.8 * 0.25) < 1e-15);
    assert_int_equal(cdl_nn_graph_he_blockers(&t.g), 0);
    assert_int_equal(cdl_he_plan_new(&t.g, NULL, &plan), CDL_OK);
    assert_int_equal(cdl_he_plan_levels(plan), 2 + 2); /* dense, square, a degree-2 polynomial */
    cdl_he_plan_free(plan);
    free(nd->coeffs);
    nd->coeffs = NULL;
}

static void test_leaky_relu_approx_spec(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/maxpool_softmax_opset13.onnx", tg_source_dir());
    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
    size_t leaky = 0, maxpool = 0, softmax = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        leaky += g->nodes[i].kind == CDL_NN_LEAKY_RELU;
        maxpool += g->nodes[i].kind == CDL_NN_MAXPOOL;
        softmax += g->nodes[i].kind == CDL_NN_SOFTMAX;
    }
    assert_int_equal(leaky, 1);
    assert_int_equal(maxpool, 2);
    assert_int_equal(softmax, 1);
    size_t n = 0;
    assert_int_equal(cdl_nn_apply_approx(g, "leakyrelu=ls:2:-4:4,relu=ls:2:-4:4", &n), CDL_OK);
    assert_int_equal(n, 2);
    /* the max pools still block encryption; the trailing softmax does not */
    assert_int_equal(cdl_nn_graph_he_blockers(g), 2);
    cdl_he_plan *plan = NULL;
    assert_int_equal(cdl_he_plan_new(g, NULL, &plan), CDL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cdl_last_error(), "MaxPool"));
    assert_non_null(strstr(cdl_last_error(), "average pooling"));
    assert_int_equal(cdl_nn_apply_approx(g, "leaky=ls:2:-4:4", &n), CDL_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(cdl_last_error(), "leakyrelu"));
    cdl_nn_graph_free(g);
}

/* An exported HE-ready model ending in F.log_softmax: the plan is accepted and
 * is the plan of the same graph read up to its logits. */
static void test_exported_logsoftmax_plan(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/he_avgpool_ceil_logsoftmax_opset17.onnx", tg_source_dir());
    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
    assert_int_equal(g->nodes[g->output - 1].kind, CDL_NN_LOGSOFTMAX);
    cdl_he_plan *with = NULL, *without = NULL;
    assert_int_equal(cdl_he_plan_new(g, NULL, &with), CDL_OK);
    const int out = g->output;
    g->output = cdl_nn_graph_logits(g, NULL);
    assert_int_equal(g->output, out - 1);
    assert_int_equal(cdl_he_plan_new(g, NULL, &without), CDL_OK);
    assert_int_equal(cdl_he_plan_levels(with), cdl_he_plan_levels(without));
    /* conv -> AveragePool are composed into one linear op (src/compile/he_merge.c): one level less than the
     * nn layer's per-node depth count */
    assert_int_equal(cdl_he_plan_levels(with), cdl_nn_graph_depth(g) - 1);
    assert_int_equal(cdl_he_plan_params(with)->log_n, cdl_he_plan_params(without)->log_n);
    assert_int_equal(cdl_he_plan_params(with)->q_count, cdl_he_plan_params(without)->q_count);
    assert_int_equal(cdl_he_plan_output_size(with), cdl_he_plan_output_size(without));
    cdl_he_cost a, b;
    cdl_he_plan_cost(with, &a);
    cdl_he_plan_cost(without, &b);
    assert_memory_equal(&a, &b, sizeof a);
    cdl_he_plan_free(with);
    cdl_he_plan_free(without);
    cdl_nn_graph_free(g);
}

/* nn.PReLU(C) keeps one slope per channel (no single polynomial replaces
 * it); nn.PReLU() has one and is replaced like LeakyRelu. */
static void test_prelu_slopes(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/prelu_hardswish_squeeze_opset17.onnx", tg_source_dir());
    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
    const cdl_nn_node *per_channel = NULL, *shared = NULL;
    for (size_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].kind == CDL_NN_LEAKY_RELU) {
            if (g->nodes[i].weight)
                per_channel = &g->nodes[i];
            else
                shared = &g->nodes[i];
        }
    assert_non_null(per_channel);
    assert_non_null(shared);
    assert_true(fabs(shared->coeffs[0] - 0.3) < 1e-7);
    /* slopes 0.1, -0.2, 0.5 broadcast over each 6x6 channel */
    assert_int_equal(per_channel->n_weight, 3 * 36);
    assert_true(fabs(per_channel->weight[0] - 0.1) < 1e-7 && fabs(per_channel->weight[36] + 0.2) < 1e-7 &&
                fabs(per_channel->weight[107] - 0.5) < 1e-7);
    assert_non_null(strstr(per_channel->he_reason, "per-channel"));
    size_t n = 0;
    assert_int_equal(cdl_nn_apply_approx(g, "leakyrelu=ls:2:-4:4", &n), CDL_OK);
    assert_int_equal(n, 1);
    size_t left = 0;
    for (size_t i = 0; i < g->n_nodes; i++)
        left += g->nodes[i].kind == CDL_NN_LEAKY_RELU;
    assert_int_equal(left, 1);
    cdl_nn_graph_free(g);
}

/* PyTorch's conv -> x^2 -> linear -> softmax, encrypted end to end (small
 * insecure ring for speed): the decrypted result is the logits, and their
 * softmax is PyTorch's output. */
static void test_softmax_model_encrypted(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/he_softmax_opset13.json", tg_source_dir());
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        fail_msg("%s: %s", path, err.text);
    snprintf(path, sizeof path, "%s/tests/fixtures/onnx/he_softmax_opset13.onnx", tg_source_dir());
    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
    json_t *ji = json_object_get(root, "inputs"), *jo = json_object_get(root, "outputs");
    const size_t nin = cdl_nn_input_size(g), nout = cdl_nn_output_size(g), n = json_array_size(ji) / nin;
    assert_int_equal(n, 3);
    assert_int_equal(json_array_size(jo), n * nout);
    double img[3 * 64], torch_probs[3 * 4], logits[3 * 4], he[3 * 4];
    assert_true(nin == 64 && nout == 4);
    for (size_t i = 0; i < n * nin; i++)
        img[i] = json_number_value(json_array_get(ji, i));
    for (size_t i = 0; i < n * nout; i++)
        torch_probs[i] = json_number_value(json_array_get(jo, i));
    json_decref(root);

    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 11;
    opt.allow_insecure = 1;
    cdl_he_plan *plan = NULL;
    assert_int_equal(cdl_he_plan_new(g, &opt, &plan), CDL_OK);
    assert_int_equal(cdl_he_plan_levels(plan), 3);
    cdl_ckks_context *ctx = NULL;
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_rng *rng = NULL;
    uint8_t seed[CDL_RNG_SEED_BYTES] = {7};
    assert_int_equal(cdl_he_context_new(plan, &ctx), CDL_OK);
    assert_int_equal(cdl_rng_new_seeded_insecure(seed, &rng), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(ctx, rng, &sk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_relin(ctx, sk, rng, &rlk), CDL_OK);
    cdl_he_batch *enc = NULL, *out = NULL;
    assert_int_equal(cdl_he_encrypt_batch(plan, ctx, NULL, sk, img, n, rng, &enc), CDL_OK);
    assert_int_equal(cdl_he_evaluate(plan, ctx, rlk, enc, NULL, NULL, &out), CDL_OK);
    assert_int_equal(cdl_he_decrypt_logits(plan, ctx, sk, out, he), CDL_OK);

    /* the plaintext logits: the same graph read up to the value the plan encrypts */
    g->output = cdl_nn_graph_logits(g, NULL);
    assert_int_equal(cdl_nn_run(g, img, n, logits), CDL_OK);
    double worst = 0;
    for (size_t j = 0; j < n; j++) {
        double m = he[j * nout], s = 0;
        for (size_t k = 0; k < nout; k++) {
            worst = fmax(worst, fabs(he[j * nout + k] - logits[j * nout + k]));
            m = fmax(m, he[j * nout + k]);
        }
        for (size_t k = 0; k < nout; k++)
            s += exp(he[j * nout + k] - m);
        for (size_t k = 0; k < nout; k++) /* softmax after decryption = PyTorch's probabilities */
            assert_true(fabs(exp(he[j * nout + k] - m) / s - torch_probs[j * nout + k]) < 1e-3);
    }
    printf("he_softmax_opset13, 3 images: max |encrypted - plaintext logits| = %.3e\n", worst);
    assert_true(worst < 1e-3);
    cdl_he_batch_free(enc);
    cdl_he_batch_free(out);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);
    cdl_he_plan_free(plan);
    cdl_nn_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trailing_softmax_dropped), cmocka_unit_test(test_softmax_elsewhere_refused),
        cmocka_unit_test(test_maxpool_refused),          cmocka_unit_test(test_runtime_formulas),
        cmocka_unit_test(test_leaky_relu_approx),        cmocka_unit_test(test_leaky_relu_approx_spec),
        cmocka_unit_test(test_exported_logsoftmax_plan), cmocka_unit_test(test_prelu_slopes),             cmocka_unit_test(test_softmax_model_encrypted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
