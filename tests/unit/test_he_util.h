/*
 * test_he_util.h: hand-built nn graphs for the HE compiler/runtime tests.
 * Nodes live in a fixed array owned by the test (never passed to
 * cdl_nn_graph_free); cdl_nn_analyze fills depths and HE support.
 * Include after <cmocka.h> (tg_seeded_rng asserts).
 */
#ifndef TEST_HE_UTIL_H
#define TEST_HE_UTIL_H

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
    assert_int_equal(cdl_rng_new_seeded(seed, &r), CDL_OK);
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
