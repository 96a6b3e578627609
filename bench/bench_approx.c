/*
 * bench_approx.c: time to evaluate a polynomial activation on a CKKS
 * ciphertext (cdl_ckks_eval_poly_approx: ReLU minimax on [-6, 6], Chebyshev
 * basis) at N = 2^14 (the 128-bit preset: log QP = 438, 8 levels of 40 bits),
 * for the degrees 2, 3, 4, 7, 15. One JSON line per degree:
 *   {"bench":"poly_eval","n":16384,"log_q":438,"degree":d,"depth":...,
 *    "ct_mults":...,"us":median,"threads":T,"max_err":...}
 * us is the median over the runs (each run timed on its own); max_err is the
 * worst slot of decrypt(eval) against the plaintext polynomial.
 * Usage: bench_approx [runs (default 11)] [log_n (default 14)]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cryptodl/cryptodl.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_approx: %s: %s\n", what, cdl_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 11, log_n = argc > 2 ? atoi(argv[2]) : 14;
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: bench_approx [runs 1..1000 (11)] [log_n 13..15 (14)]\n");
        return 2;
    }
    cdl_ckks_param_spec spec;
    cdl_ckks_context *ctx = NULL;
    cdl_rng *rng = NULL;
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    if (cdl_ckks_preset(log_n, &spec) || cdl_ckks_context_new(&spec, &ctx) || cdl_rng_new_system(&rng) ||
        cdl_ckks_keygen_secret(ctx, rng, &sk) || cdl_ckks_keygen_relin(ctx, sk, rng, &rlk))
        return fail("setup");
    size_t slots = cdl_ckks_slots(ctx);
    double *x = malloc(slots * sizeof *x), *got = malloc(slots * sizeof *got);
    double *t = malloc((size_t)runs * sizeof *t);
    if (!x || !got || !t)
        return fail("out of memory");
    for (size_t i = 0; i < slots; i++)
        x[i] = -6.0 + 12.0 * (double)i / (double)(slots - 1);
    cdl_ckks_plaintext *pt;
    cdl_ckks_ciphertext *in, *out;
    if (cdl_ckks_plaintext_new(ctx, &pt) || cdl_ckks_ciphertext_new(ctx, &in) || cdl_ckks_ciphertext_new(ctx, &out))
        return fail("objects");
    const int degrees[] = {2, 3, 4, 7, 15};
    int rc = 0;
    for (size_t k = 0; k < sizeof degrees / sizeof degrees[0]; k++) {
        int d = degrees[k];
        cdl_poly_approx p;
        if (cdl_approx_compute(CDL_ACT_RELU, CDL_APPROX_REMEZ, d, -6, 6, NULL, &p))
            return fail("approx");
        /* x at scale alpha * default, so that t = x / 6 carries the default scale */
        double alpha = 2.0 / (p.b - p.a);
        if (cdl_ckks_encode(ctx, x, slots, cdl_ckks_default_scale(ctx) * alpha, cdl_ckks_max_level(ctx), pt) ||
            cdl_ckks_encrypt_sk(ctx, sk, pt, rng, in))
            return fail("encrypt");
        cdl_poly_eval_stats st;
        if (cdl_ckks_eval_poly_approx(ctx, rlk, in, &p, 0, out, &st)) /* warm-up */
            return fail("eval");
        for (int r = 0; r < runs; r++) {
            double t0 = now_us();
            if (cdl_ckks_eval_poly_approx(ctx, rlk, in, &p, 0, out, &st))
                return fail("eval");
            t[r] = now_us() - t0;
        }
        qsort(t, (size_t)runs, sizeof t[0], cmp_double);
        if (cdl_ckks_decrypt(ctx, sk, out, pt) || cdl_ckks_decode(ctx, pt, got, slots))
            return fail("decrypt");
        double worst = 0;
        for (size_t i = 0; i < slots; i++)
            worst = fmax(worst, fabs(got[i] - cdl_poly_eval_chebyshev(p.chebyshev, d, p.a, p.b, x[i])));
        printf("{\"bench\":\"poly_eval\",\"n\":%zu,\"log_q\":%.0f,\"degree\":%d,\"depth\":%d,\"ct_mults\":%d,"
               "\"us\":%.1f,\"threads\":%d,\"max_err\":%.3g}\n",
               slots * 2, cdl_ckks_log_qp(ctx), d, st.depth, st.ct_mults, t[runs / 2], cdl_get_threads(), worst);
        fflush(stdout);
        if (worst > 1e-4)
            rc = 1;
    }
    cdl_ckks_plaintext_free(pt);
    cdl_ckks_ciphertext_free(in);
    cdl_ckks_ciphertext_free(out);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);
    free(x);
    free(got);
    free(t);
    return rc;
}
