/*
 * test_he_util.h: hand-built nn graphs for the HE compiler/runtime tests.
 * Nodes live in a fixed array owned by the test (never passed to
 * cdl_nn_graph_free); cdl_nn_analyze fills depths and HE support.
 * Include after <cmocka.h> (the helpers assert). The encrypted-run helpers
 * (tg_he_*) compare a compiled plan's decrypted logits with cdl_nn_run.
 */
#ifndef TEST_HE_UTIL_H
#define TEST_HE_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cryptodl/cryptodl.h"

#define TG_MAX_NODES 96

/* The source tree (fixtures, models): $CDL_SOURCE_DIR, set by CTest. */
static inline const char *tg_source_dir(void)
{
    const char *s = getenv("CDL_SOURCE_DIR");
    return s && s[0] ? s : ".";
}

/* A deterministic generator: the seed is `tag` repeated. */
static inline cdl_rng *tg_seeded_rng(uint8_t tag)
{
    uint8_t seed[CDL_RNG_SEED_BYTES];
    memset(seed, tag, sizeof seed);
    cdl_rng *r = NULL;
    assert_int_equal(cdl_rng_new_seeded_insecure(seed, &r), CDL_OK);
    return r;
}

typedef struct test_graph {
    cdl_nn_graph g;
    cdl_nn_node nodes[TG_MAX_NODES];
} test_graph;

static inline cdl_nn_shape tg_shape3(int64_t c, int64_t h, int64_t w)
{
    cdl_nn_shape s = {3, {c, h, w, 0}};
    return s;
}

static inline cdl_nn_shape tg_shape1(int64_t n)
{
    cdl_nn_shape s = {1, {n, 0, 0, 0}};
    return s;
}

static inline void tg_init(test_graph *t, cdl_nn_shape input)
{
    memset(t, 0, sizeof *t);
    t->g.nodes = t->nodes;
    t->g.input_shape = input;
    snprintf(t->g.input_name, sizeof t->g.input_name, "input");
    snprintf(t->g.output_name, sizeof t->g.output_name, "logits");
}

/* ---- encrypted runs of a compiled plan -------------------------------------------- */

/* Keys, n encrypted random images (pixels in [0, 1), seeded) and their plaintext logits
 * (cdl_nn_run of the graph up to its logits: a trailing softmax is not evaluated
 * encrypted). tg_he_open evaluates once into `he`; tg_he_evaluate evaluates again (for
 * tests that switch a runtime path between runs). */
typedef struct tg_he_session {
    cdl_ckks_context *ctx;
    cdl_ckks_secret_key *sk;
    cdl_ckks_relin_key *rlk;
    cdl_ckks_galois_keys *gk; /* slots packing only */
    cdl_rng *rng;
    cdl_he_batch *enc;
    double *ref, *he; /* n * nout logits each */
    size_t n, nout;
} tg_he_session;

static inline void tg_he_evaluate(const cdl_he_plan *plan, tg_he_session *s, double *logits)
{
    cdl_he_batch *out = NULL;
    if (cdl_he_evaluate_keys(plan, s->ctx, s->rlk, s->gk, s->enc, NULL, NULL, &out) != CDL_OK)
        fail_msg("cdl_he_evaluate: %s", cdl_last_error());
    assert_int_equal(cdl_he_decrypt_logits(plan, s->ctx, s->sk, out, logits), CDL_OK);
    cdl_he_batch_free(out);
}

static inline void tg_he_open(const cdl_he_plan *plan, const cdl_nn_graph *g, size_t n, tg_he_session *s)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->nout = cdl_he_plan_output_size(plan);
    s->rng = tg_seeded_rng(42);
    assert_int_equal(cdl_he_context_new(plan, &s->ctx), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(s->ctx, s->rng, &s->sk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_relin(s->ctx, s->sk, s->rng, &s->rlk), CDL_OK);
    if (cdl_he_plan_packing(plan) == CDL_HE_PACKING_SLOTS)
        assert_int_equal(cdl_he_keygen_galois(plan, s->ctx, s->sk, s->rng, &s->gk), CDL_OK);
    const size_t nin = cdl_he_plan_input_size(plan);
    double *img = malloc(n * nin * sizeof *img);
    s->ref = malloc(n * s->nout * sizeof *s->ref);
    s->he = malloc(n * s->nout * sizeof *s->he);
    assert_non_null(img);
    assert_non_null(s->ref);
    assert_non_null(s->he);
    cdl_rng *r = tg_seeded_rng(3);
    for (size_t i = 0; i < n * nin; i++)
        img[i] = (double)(cdl_rng_u64(r) >> 11) / 9007199254740992.0;
    cdl_rng_free(r);
    cdl_nn_graph view = *g;
    view.output = cdl_nn_graph_logits(g, NULL);
    assert_int_equal(cdl_nn_run(&view, img, n, s->ref), CDL_OK);
    assert_int_equal(cdl_he_encrypt_batch(plan, s->ctx, NULL, s->sk, img, n, s->rng, &s->enc), CDL_OK);
    free(img);
    tg_he_evaluate(plan, s, s->he);
}

/* max |he - ref| (NaN propagates) */
static inline double tg_he_max_error(const tg_he_session *s)
{
    double m = 0.0;
    for (size_t i = 0; i < s->n * s->nout; i++) {
        const double d = fabs(s->he[i] - s->ref[i]);
        if (!(d <= m))
            m = d;
    }
    return m;
}

static inline void tg_he_close(tg_he_session *s)
{
    cdl_he_batch_free(s->enc);
    free(s->ref);
    free(s->he);
    cdl_ckks_relin_key_free(s->rlk);
    cdl_ckks_galois_keys_free(s->gk);
    cdl_ckks_secret_key_free(s->sk);
    cdl_rng_free(s->rng);
    cdl_ckks_context_free(s->ctx);
    memset(s, 0, sizeof *s);
}

/* Append a node reading the previous value; returns it for the caller to fill. */
static inline cdl_nn_node *tg_add(test_graph *t, cdl_nn_kind kind, const char *name, cdl_nn_shape out)
{
    size_t i = t->g.n_nodes++;
    cdl_nn_node *nd = &t->nodes[i];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    snprintf(nd->name, sizeof nd->name, "%s", name);
    snprintf(nd->onnx_op, sizeof nd->onnx_op, "%s", cdl_nn_kind_name(kind));
    nd->n_inputs = 1;
    nd->inputs[0] = (int)i;
    nd->in_shape = i ? t->nodes[i - 1].out_shape : t->g.input_shape;
    nd->out_shape = out;
    nd->stride[0] = nd->stride[1] = 1;
    t->g.output = (int)i + 1;
    return nd;
}

#endif
