/*
 * bench_slots.c: latency of slots-packed encrypted inference (one image
 * across the slots; include/cryptodl/he.h) on real test images, the figures
 * of the "slot packing" targets in docs/inference.md.
 *
 * For each model and thread count: the plan (slots packing, weights kept
 * encoded), keys (the Galois keys for exactly the plan's steps), one request
 * of real test images (as many as share a ciphertext), one first evaluation
 * (it also encodes the weights: "first_us"), then `runs` timed evaluations
 * (median "us": the server's latency per request), decryption checked
 * against the plaintext reference. One JSON line per model and thread count:
 *   {"bench":"slots","model":"mnist_deep","dataset":"mnist","n":16384,"log_q":438,"levels":9,
 *    "threads":2,"us":...,"first_us":...,"cpu_us":...,"images":1,"rotations":..,"hoisted":..,
 *    "plain_mults":..,"galois_steps":..,"galois_key_bytes":..,"weight_bytes":..,
 *    "request_bytes":..,"response_bytes":..,"keygen_us":..,"encrypt_us":..,"decrypt_us":..,
 *    "peak_rss_mb":..,"agreement":1.0,"max_abs_logit_diff":...}
 * peak_rss_mb is the process's high-water mark so far (keys and weights of
 * the models measured before included): run one model per process for a
 * per-model figure.
 * Usage: bench_slots [threads list, default "1,2"] [runs, default 3] [model.onnx[:dataset] ...]
 *   default models: models/mnist_cryptonets.onnx, models/mnist_deep.onnx,
 *   models/fashion_mnist_deep.onnx:fashion-mnist (under $CDL_SOURCE_DIR, else ..);
 *   data from $CDL_DATA_DIR, ../shared/data or the shipped data/.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "cryptodl/cryptodl.h"

static int fail(const char *model, const char *what)
{
    fprintf(stderr, "bench_slots: %s: %s: %s\n", model, what, cdl_last_error());
    return 1;
}

static size_t argmax(const double *v, size_t n)
{
    size_t a = 0;
    for (size_t k = 1; k < n; k++)
        if (v[k] > v[a])
            a = k;
    return a;
}

/* The dataset: $CDL_DATA_DIR, then ../shared/data relative to the source tree, then the shipped data/. */
static cdl_status load_test_set(const char *src, const char *dataset, size_t n, cdl_dataset **ds)
{
    char dir[1024];
    const char *env = getenv("CDL_DATA_DIR");
    if (env && env[0] && cdl_dataset_load(dataset, env, "test", n, ds) == CDL_OK)
        return CDL_OK;
    snprintf(dir, sizeof dir, "%s/../shared/data", src);
    if (cdl_dataset_load(dataset, dir, "test", n, ds) == CDL_OK)
        return CDL_OK;
    snprintf(dir, sizeof dir, "%s/data", src);
    return cdl_dataset_load(dataset, dir, "test", n, ds);
}

static int bench_model(const char *src, const char *spec, const char *threads_list, int runs)
{
    char model[1024], dataset[64] = "mnist";
    snprintf(model, sizeof model, "%s", spec);
    char *colon = strrchr(model, ':');
    if (colon && colon[1] && !strchr(colon, '/')) {
        snprintf(dataset, sizeof dataset, "%s", colon + 1);
        *colon = '\0';
    }
    const char *base = strrchr(model, '/') ? strrchr(model, '/') + 1 : model;
    char name[1024];
    snprintf(name, sizeof name, "%s", base);
    if (strstr(name, ".onnx"))
        *strstr(name, ".onnx") = '\0';
    cdl_nn_graph *g = NULL;
    if (cdl_nn_load_file(model, &g) != CDL_OK)
        return fail(model, "cannot import the model");
    g->output = cdl_nn_graph_logits(g, NULL);
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.packing = CDL_HE_PACKING_SLOTS;
    opt.cache_weights = 1;
    cdl_he_plan *plan = NULL;
    if (cdl_he_plan_new(g, &opt, &plan) != CDL_OK)
        return fail(model, "cannot compile the model");
    const size_t n = cdl_he_plan_batch_capacity(plan), nin = cdl_nn_input_size(g), nout = cdl_nn_output_size(g);
    cdl_dataset *ds = NULL;
    if (load_test_set(src, dataset, n, &ds) != CDL_OK)
        return fail(model, "cannot load the test set (set CDL_DATA_DIR)");
    if (ds->n < n || cdl_dataset_image_size(ds) != nin)
        return fail(model, "the test set does not fit the model");
    double *img = malloc(n * nin * sizeof *img), *ref = malloc(n * nout * sizeof *ref),
           *he = malloc(n * nout * sizeof *he);
    if (!img || !ref || !he)
        return fail(model, "out of memory");
    for (size_t i = 0; i < n * nin; i++)
        img[i] = ds->pixels[i];
    if (cdl_nn_run(g, img, n, ref) != CDL_OK)
        return fail(model, "plaintext reference");
    const cdl_ckks_param_spec *sp = cdl_he_plan_params(plan);
    int log_q = 0;
    for (int i = 0; i < sp->q_count; i++)
        log_q += sp->q_bits[i];
    for (int i = 0; i < sp->p_count; i++)
        log_q += sp->p_bits[i];
    uint64_t rot = 0, hoisted = 0, pmults = 0;
    cdl_he_plan_rotations(plan, &rot, &hoisted, &pmults);
    size_t steps = 0;
    cdl_he_plan_galois_steps(plan, NULL, &steps);

    char list[256];
    snprintf(list, sizeof list, "%s", threads_list);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int threads = atoi(tok);
        if (threads < 1)
            continue;
        cdl_set_threads(threads);
        /* a fresh plan per thread count, so that every row pays its own first (encoding) evaluation */
        cdl_he_plan *p = NULL;
        if (cdl_he_plan_new(g, &opt, &p) != CDL_OK)
            return fail(model, "cannot compile the model");
        cdl_ckks_context *ctx = NULL;
        cdl_rng *rng = NULL;
        cdl_ckks_secret_key *sk = NULL;
        cdl_ckks_relin_key *rlk = NULL;
        cdl_ckks_galois_keys *gk = NULL;
        cdl_he_batch *enc = NULL, *out = NULL;
        double t0 = bench_now_us();
        if (cdl_he_context_new(p, &ctx) != CDL_OK || cdl_rng_new_system(&rng) != CDL_OK ||
            cdl_ckks_keygen_secret(ctx, rng, &sk) != CDL_OK || cdl_ckks_keygen_relin(ctx, sk, rng, &rlk) != CDL_OK ||
            cdl_he_keygen_galois(p, ctx, sk, rng, &gk) != CDL_OK)
            return fail(model, "keys");
        double keygen_us = bench_now_us() - t0;
        t0 = bench_now_us();
        if (cdl_he_encrypt_batch(p, ctx, NULL, sk, img, n, rng, &enc) != CDL_OK)
            return fail(model, "encrypt");
        double enc_us = bench_now_us() - t0;
        size_t req = 0, resp = 0;
        cdl_he_batch_bytes(ctx, enc, &req);
        t0 = bench_now_us();
        if (cdl_he_evaluate_keys(p, ctx, rlk, gk, enc, NULL, NULL, &out) != CDL_OK)
            return fail(model, "evaluate");
        double first_us = bench_now_us() - t0, cpu = 0;
        double *times = malloc((size_t)runs * sizeof *times);
        if (!times)
            return fail(model, "out of memory");
        for (int r = 0; r < runs; r++) {
            cdl_he_batch_free(out);
            out = NULL;
            double c0 = bench_process_cpu_us();
            t0 = bench_now_us();
            if (cdl_he_evaluate_keys(p, ctx, rlk, gk, enc, NULL, NULL, &out) != CDL_OK)
                return fail(model, "evaluate");
            times[r] = bench_now_us() - t0;
            cpu = bench_process_cpu_us() - c0;
        }
        cdl_he_batch_bytes(ctx, out, &resp);
        t0 = bench_now_us();
        if (cdl_he_decrypt_logits(p, ctx, sk, out, he) != CDL_OK)
            return fail(model, "decrypt");
        double dec_us = bench_now_us() - t0, max_diff = 0;
        size_t agree = 0;
        for (size_t j = 0; j < n; j++) {
            agree += argmax(he + j * nout, nout) == argmax(ref + j * nout, nout);
            for (size_t k = 0; k < nout; k++)
                if (!(fabs(he[j * nout + k] - ref[j * nout + k]) <= max_diff))
                    max_diff = fabs(he[j * nout + k] - ref[j * nout + k]);
        }
        qsort(times, (size_t)runs, sizeof *times, bench_cmp_double);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("{\"bench\":\"slots\",\"model\":\"%s\",\"dataset\":\"%s\",\"n\":%zu,\"log_q\":%d,\"levels\":%d,"
               "\"threads\":%d,\"us\":%.0f,\"first_us\":%.0f,\"cpu_us\":%.0f,\"images\":%zu,\"rotations\":%llu,"
               "\"hoisted\":%llu,\"plain_mults\":%llu,\"galois_steps\":%zu,\"galois_key_bytes\":%llu,"
               "\"weight_bytes\":%llu,\"request_bytes\":%zu,\"response_bytes\":%zu,\"keygen_us\":%.0f,"
               "\"encrypt_us\":%.0f,\"decrypt_us\":%.0f,\"peak_rss_mb\":%.0f,\"agreement\":%.4f,"
               "\"max_abs_logit_diff\":%.3e}\n",
               name, dataset, (size_t)1 << sp->log_n, log_q, cdl_he_plan_levels(p), threads, times[runs / 2],
               first_us, cpu, n, (unsigned long long)rot, (unsigned long long)hoisted, (unsigned long long)pmults,
               steps, (unsigned long long)cdl_he_plan_galois_key_bytes(p),
               (unsigned long long)cdl_he_plan_weight_bytes(p), req, resp, keygen_us, enc_us, dec_us,
               ru.ru_maxrss / 1024.0, (double)agree / (double)n, max_diff);
        fflush(stdout);
        free(times);
        cdl_he_batch_free(enc);
        cdl_he_batch_free(out);
        cdl_ckks_galois_keys_free(gk);
        cdl_ckks_relin_key_free(rlk);
        cdl_ckks_secret_key_free(sk);
        cdl_rng_free(rng);
        cdl_ckks_context_free(ctx);
        cdl_he_plan_free(p);
    }
    cdl_dataset_free(ds);
    cdl_he_plan_free(plan);
    cdl_nn_graph_free(g);
    free(img);
    free(ref);
    free(he);
    return 0;
}

int main(int argc, char **argv)
{
    const char *threads_list = argc > 1 ? argv[1] : "1,2";
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    if (runs < 1)
        runs = 1;
    const char *env = getenv("CDL_SOURCE_DIR");
    const char *src = env && env[0] ? env : "..";
    if (argc > 3) {
        for (int i = 3; i < argc; i++)
            if (bench_model(src, argv[i], threads_list, runs) != 0)
                return 1;
        return 0;
    }
    static const char *const defaults[] = {"models/mnist_cryptonets.onnx", "models/mnist_deep.onnx",
                                           "models/fashion_mnist_deep.onnx:fashion-mnist"};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", src, defaults[i]);
        if (bench_model(src, path, threads_list, runs) != 0)
            return 1;
    }
    return 0;
}
