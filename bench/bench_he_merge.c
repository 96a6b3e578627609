/*
 * bench_he_merge.c: what merging consecutive linear layers (src/compile/
 * he_merge.c) buys at run time. A small CIFAR-shaped CNN with the chains a
 * PyTorch model has (conv -> AvgPool, GlobalAveragePool -> Flatten -> Linear):
 *
 *   3x16x16 -> conv 3x3 (8) -> avgpool 2 -> x^2 -> conv 3x3 (16) -> avgpool 2
 *   -> x^2 -> global avgpool -> flatten -> dense 10
 *
 * is compiled without merging (8 levels) and with it (5 levels), and one
 * batch of random images is encrypted, evaluated (timed: the server's work)
 * and decrypted against cdl_nn_run. One JSON line per plan:
 *   {"bench":"he_merge_cnn","merge":0|1,"n":N,"log_q":...,"levels":...,
 *    "scale_bits":...,"threads":T,"us":evaluate,"cpu_us":process CPU time of
 *    it,"compile_us":...,"const_mults":...,"rescales":...,"peak_bytes":plan
 *    estimate,"input_bytes":the encrypted batch,"max_err":...}
 * Usage: bench_he_merge [log_n, default 0 = automatic] [images, default 64] [threads, default 0 = all]
 * With log_n 0 each plan takes its own smallest secure ring: merging can
 * move a model from N = 2^14 to 2^13; give 14 to compare at the same N.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compile/he_merge.h"
#include "cryptodl/cryptodl.h"

static double now_us(int cpu)
{
    struct timespec ts;
    clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

#define MAX_NODES 16
static cdl_nn_node nodes[MAX_NODES];
static double w1[8 * 3 * 9], b1[8], w2[16 * 8 * 9], b2[16], w3[10 * 16], b3[10];

static cdl_nn_shape shape3(int64_t c, int64_t h, int64_t w)
{
    cdl_nn_shape s = {3, {c, h, w, 0}};
    return s;
}

static cdl_nn_node *add(cdl_nn_graph *g, cdl_nn_kind kind, const char *name, cdl_nn_shape out)
{
    size_t i = g->n_nodes++;
    cdl_nn_node *nd = &nodes[i];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    snprintf(nd->name, sizeof nd->name, "%s", name);
    nd->n_inputs = 1;
    nd->inputs[0] = (int)i;
    nd->in_shape = i ? nodes[i - 1].out_shape : g->input_shape;
    nd->out_shape = out;
    nd->stride[0] = nd->stride[1] = 1;
    g->output = (int)i + 1;
    return nd;
}

static void conv(cdl_nn_graph *g, const char *name, int o, int c, int h, double *w, double *b)
{
    cdl_nn_node *nd = add(g, CDL_NN_CONV, name, shape3(o, h, h));
    nd->kernel[0] = nd->kernel[1] = 3;
    for (int i = 0; i < 4; i++)
        nd->pads[i] = 1;
    nd->weight = w;
    nd->n_weight = (size_t)o * c * 9;
    nd->bias = b;
    nd->n_bias = (size_t)o;
}

static void pool(cdl_nn_graph *g, const char *name, int c, int h, int k)
{
    cdl_nn_node *nd = add(g, CDL_NN_AVGPOOL, name, shape3(c, h / k, h / k));
    nd->kernel[0] = nd->kernel[1] = k;
    nd->stride[0] = nd->stride[1] = k;
    nd->count_include_pad = 1;
}

static void build(cdl_nn_graph *g, cdl_rng *r)
{
    double *all[] = {w1, b1, w2, b2, w3, b3};
    size_t len[] = {sizeof w1 / 8, 8, sizeof w2 / 8, 16, 160, 10};
    for (size_t a = 0; a < 6; a++)
        for (size_t i = 0; i < len[a]; i++)
            all[a][i] = ((double)(cdl_rng_u64(r) >> 11) / 9007199254740992.0 - 0.5) * 0.6;
    memset(g, 0, sizeof *g);
    g->nodes = nodes;
    g->input_shape = shape3(3, 16, 16);
    conv(g, "conv1", 8, 3, 16, w1, b1);
    pool(g, "pool1", 8, 16, 2);
    add(g, CDL_NN_SQUARE, "sq1", shape3(8, 8, 8));
    conv(g, "conv2", 16, 8, 8, w2, b2);
    pool(g, "pool2", 16, 8, 2);
    add(g, CDL_NN_SQUARE, "sq2", shape3(16, 4, 4));
    pool(g, "gap", 16, 4, 4);
    cdl_nn_shape flat = {1, {16, 0, 0, 0}}, logits = {1, {10, 0, 0, 0}};
    add(g, CDL_NN_RESHAPE, "flatten", flat);
    cdl_nn_node *nd = add(g, CDL_NN_DENSE, "fc", logits);
    nd->weight = w3;
    nd->n_weight = 160;
    nd->bias = b3;
    nd->n_bias = 10;
    cdl_nn_analyze(g);
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_he_merge: %s: %s\n", what, cdl_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const int log_n = argc > 1 ? atoi(argv[1]) : 0;
    const size_t n_img = argc > 2 && atoi(argv[2]) > 0 ? (size_t)atoi(argv[2]) : 64;
    if (argc > 3)
        cdl_set_threads(atoi(argv[3]));
    uint8_t seed[CDL_RNG_SEED_BYTES];
    memset(seed, 7, sizeof seed);
    cdl_rng *rng = NULL;
    if (cdl_rng_new_seeded_insecure(seed, &rng) != CDL_OK)
        return fail("rng");
    cdl_nn_graph g;
    build(&g, rng);
    const size_t nin = cdl_nn_input_size(&g), nout = cdl_nn_output_size(&g);
    double *img = malloc(n_img * nin * sizeof *img), *ref = malloc(n_img * nout * sizeof *ref),
           *he = malloc(n_img * nout * sizeof *he);
    if (!img || !ref || !he)
        return fail("out of memory");
    for (size_t i = 0; i < n_img * nin; i++)
        img[i] = (double)(cdl_rng_u64(rng) >> 11) / 9007199254740992.0;
    if (cdl_nn_run(&g, img, n_img, ref) != CDL_OK)
        return fail("cdl_nn_run");
    for (int merge = 0; merge < 2; merge++) {
        cdl_he_options opt;
        cdl_he_options_default(&opt);
        opt.log_n = log_n;
        cdl_he_plan *plan = NULL;
        cdl_he_set_merge_linear(merge);
        double t0 = now_us(0);
        if (cdl_he_plan_new(&g, &opt, &plan) != CDL_OK)
            return fail("cdl_he_plan_new");
        const double compile_us = now_us(0) - t0;
        cdl_he_set_merge_linear(1);
        cdl_ckks_context *ctx = NULL;
        cdl_ckks_secret_key *sk = NULL;
        cdl_ckks_relin_key *rlk = NULL;
        cdl_he_batch *enc = NULL, *out = NULL;
        size_t in_bytes = 0;
        if (cdl_he_context_new(plan, &ctx) != CDL_OK || cdl_ckks_keygen_secret(ctx, rng, &sk) != CDL_OK ||
            cdl_ckks_keygen_relin(ctx, sk, rng, &rlk) != CDL_OK ||
            cdl_he_encrypt_batch(plan, ctx, NULL, sk, img, n_img, rng, &enc) != CDL_OK ||
            cdl_he_batch_bytes(ctx, enc, &in_bytes) != CDL_OK)
            return fail("keys / encryption");
        t0 = now_us(0);
        const double c0 = now_us(1);
        if (cdl_he_evaluate(plan, ctx, rlk, enc, NULL, NULL, &out) != CDL_OK)
            return fail("cdl_he_evaluate");
        const double us = now_us(0) - t0, cpu = now_us(1) - c0;
        if (cdl_he_decrypt_logits(plan, ctx, sk, out, he) != CDL_OK)
            return fail("decrypt");
        double err = 0;
        for (size_t i = 0; i < n_img * nout; i++)
            err = fmax(err, fabs(he[i] - ref[i]));
        const cdl_ckks_param_spec *sp = cdl_he_plan_params(plan);
        int log_q = 0;
        for (int i = 0; i < sp->q_count; i++)
            log_q += sp->q_bits[i];
        for (int i = 0; i < sp->p_count; i++)
            log_q += sp->p_bits[i];
        cdl_he_cost cost;
        cdl_he_plan_cost(plan, &cost);
        printf("{\"bench\":\"he_merge_cnn\",\"merge\":%d,\"n\":%d,\"log_q\":%d,\"levels\":%d,\"scale_bits\":%d,"
               "\"threads\":%d,\"images\":%zu,\"us\":%.0f,\"cpu_us\":%.0f,\"compile_us\":%.0f,\"const_mults\":%llu,"
               "\"rescales\":%llu,\"peak_bytes\":%llu,\"input_bytes\":%zu,\"max_err\":%.3e}\n",
               merge, 1 << sp->log_n, log_q, cdl_he_plan_levels(plan), (int)lround(log2(sp->scale)),
               cdl_get_threads(), n_img, us, cpu, compile_us, (unsigned long long)cost.const_mults,
               (unsigned long long)cost.rescales, (unsigned long long)cdl_he_plan_memory(plan), in_bytes, err);
        fflush(stdout);
        cdl_he_batch_free(enc);
        cdl_he_batch_free(out);
        cdl_ckks_relin_key_free(rlk);
        cdl_ckks_secret_key_free(sk);
        cdl_ckks_context_free(ctx);
        cdl_he_plan_free(plan);
    }
    cdl_rng_free(rng);
    free(img);
    free(ref);
    free(he);
    return 0;
}
