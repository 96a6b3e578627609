/*
 * bench_inference.c: throughput of batch-SIMD encrypted inference on the
 * shipped MNIST model (models/mnist_cryptonets.onnx, the CryptoNets network
 * shape) with real MNIST test images, one full batch (N/2 images).
 *
 * For each thread count: keys, one encrypted batch, then `runs` timed
 * evaluations (cdl_he_evaluate, the server's work; the median is reported),
 * and one decryption checked against the plaintext reference. One JSON line
 * per thread count:
 *   {"bench":"mnist_cryptonets_batch","n":8192,"log_q":216,"levels":5,
 *    "threads":T,"us":median evaluate,"cpu_us":process CPU time of that run,
 *    "images":4096,"predictions_per_hour":...,"encrypt_us":...,"decrypt_us":...,
 *    "agreement":fraction of argmax equal to the plaintext reference}
 * predictions_per_hour = 3600e6 * images / us (the server's amortized rate;
 * encryption and decryption are the client's and are reported separately).
 * cpu_us shows how much of the wall time the machine gave us: on a shared
 * machine, us > cpu_us / threads means other jobs took cores.
 * Usage: bench_inference [threads list, default "1,2"] [runs, default 1] [model.onnx]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "cryptodl/cryptodl.h"

static int fail(const char *what)
{
    fprintf(stderr, "bench_inference: %s: %s\n", what, cdl_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    const char *threads_list = argc > 1 ? argv[1] : "1,2";
    int runs = argc > 2 ? atoi(argv[2]) : 1;
    if (runs < 1)
        runs = 1;
    char model[1024];
    if (argc > 3)
        snprintf(model, sizeof model, "%s", argv[3]);
    else {
        const char *src = getenv("CDL_SOURCE_DIR");
        snprintf(model, sizeof model, "%s/models/mnist_cryptonets.onnx", src && src[0] ? src : "..");
    }
    cdl_nn_graph *g = NULL;
    if (cdl_nn_load_file(model, &g) != CDL_OK)
        return fail("cannot import the model (give its path as the 3rd argument or set CDL_SOURCE_DIR)");
    cdl_he_plan *plan = NULL;
    if (cdl_he_plan_new(g, NULL, &plan) != CDL_OK)
        return fail("cannot compile the model");
    const size_t n = cdl_he_plan_batch_capacity(plan), nin = cdl_nn_input_size(g), nout = cdl_nn_output_size(g);
    cdl_dataset *ds = NULL;
    if (cdl_dataset_load("mnist", NULL, "test", n, &ds) != CDL_OK)
        return fail("cannot load the MNIST test set");
    if (ds->n < n || cdl_dataset_image_size(ds) != nin)
        return fail("the MNIST test set does not fit the model");
    double *img = malloc(n * nin * sizeof *img), *ref = malloc(n * nout * sizeof *ref),
           *he = malloc(n * nout * sizeof *he);
    if (!img || !ref || !he)
        return fail("out of memory");
    for (size_t i = 0; i < n * nin; i++)
        img[i] = ds->pixels[i];
    if (cdl_nn_run(g, img, n, ref) != CDL_OK)
        return fail("plaintext reference");
    const cdl_ckks_param_spec *sp = cdl_he_plan_params(plan);
    int log_q = 0;
    for (int i = 0; i < sp->q_count; i++)
        log_q += sp->q_bits[i];
    for (int i = 0; i < sp->p_count; i++)
        log_q += sp->p_bits[i];

    char list[256];
    snprintf(list, sizeof list, "%s", threads_list);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int threads = atoi(tok);
        if (threads < 1)
            continue;
        cdl_set_threads(threads);
        cdl_ckks_context *ctx = NULL;
        cdl_rng *rng = NULL;
        cdl_ckks_secret_key *sk = NULL;
        cdl_ckks_relin_key *rlk = NULL;
        cdl_he_batch *enc = NULL, *out = NULL;
        if (cdl_he_context_new(plan, &ctx) != CDL_OK || cdl_rng_new_system(&rng) != CDL_OK ||
            cdl_ckks_keygen_secret(ctx, rng, &sk) != CDL_OK || cdl_ckks_keygen_relin(ctx, sk, rng, &rlk) != CDL_OK)
            return fail("keys");
        double t0 = bench_now_us();
        if (cdl_he_encrypt_batch(plan, ctx, NULL, sk, img, n, rng, &enc) != CDL_OK)
            return fail("encrypt");
        double enc_us = bench_now_us() - t0;
        double *times = malloc((size_t)runs * sizeof *times), cpu = 0;
        for (int r = 0; r < runs; r++) {
            cdl_he_batch_free(out);
            out = NULL;
            double c0 = bench_process_cpu_us();
            t0 = bench_now_us();
            if (cdl_he_evaluate(plan, ctx, rlk, enc, NULL, NULL, &out) != CDL_OK)
                return fail("evaluate");
            times[r] = bench_now_us() - t0;
            cpu = bench_process_cpu_us() - c0;
        }
        t0 = bench_now_us();
        if (cdl_he_decrypt_logits(plan, ctx, sk, out, he) != CDL_OK)
            return fail("decrypt");
        double dec_us = bench_now_us() - t0;
        size_t agree = 0;
        for (size_t j = 0; j < n; j++) {
            size_t a = 0, b = 0;
            for (size_t k = 1; k < nout; k++) {
                if (he[j * nout + k] > he[j * nout + a])
                    a = k;
                if (ref[j * nout + k] > ref[j * nout + b])
                    b = k;
            }
            agree += a == b;
        }
        qsort(times, (size_t)runs, sizeof *times, bench_cmp_double);
        double us = times[runs / 2];
        printf("{\"bench\":\"mnist_cryptonets_batch\",\"n\":%zu,\"log_q\":%d,\"levels\":%d,\"threads\":%d,"
               "\"us\":%.0f,\"cpu_us\":%.0f,\"images\":%zu,\"predictions_per_hour\":%.0f,\"encrypt_us\":%.0f,"
               "\"decrypt_us\":%.0f,\"agreement\":%.4f}\n",
               (size_t)1 << sp->log_n, log_q, cdl_he_plan_levels(plan), threads, us, cpu, n, 3600e6 * (double)n / us,
               enc_us, dec_us, (double)agree / (double)n);
        fflush(stdout);
        free(times);
        cdl_he_batch_free(enc);
        cdl_he_batch_free(out);
        cdl_ckks_relin_key_free(rlk);
        cdl_ckks_secret_key_free(sk);
        cdl_rng_free(rng);
        cdl_ckks_context_free(ctx);
    }
    cdl_dataset_free(ds);
    cdl_he_plan_free(plan);
    cdl_nn_graph_free(g);
    free(img);
    free(ref);
    free(he);
    return 0;
}
