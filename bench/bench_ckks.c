/*
 * bench_ckks.c: CKKS operation timings as JSON lines, one object per line:
 *   {"bench": "mul_relin", "n": 16384, "log_q": 438, "threads": 1, "us": 1234.5, "min_us": 1200.1,
 *    "reps": 40, "isa": "avx512"}
 * (us is the median, min_us the fastest call)
 * for every operation of bench_util.h at N = 2^13, 2^14, 2^15 (the presets at
 * the 128-bit maximum log Q), on 1 and 2 threads. With --precision it also
 * prints the bits of precision of each operation:
 *   {"precision": "mul_relin + rescale", "n": 8192, "log_q": 218, "bits": 27.1, "mean_bits": 31.0}
 * Progress goes to stderr. `cryptodl bench ckks` runs the same code and can
 * print a table with Microsoft SEAL's figures next to ours.
 *
 * usage: bench_ckks [--n 13,14,15] [--threads 1,2] [--quick] [--cpu] [--precision]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

#define MAX_LIST 8

/* "13,14" -> {13, 14}; 0 on success. */
static int parse_list(const char *s, int *out, int *count)
{
    *count = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > 1 << 20 || *count == MAX_LIST)
            return -1;
        out[(*count)++] = (int)v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return *count ? 0 : -1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_ckks [--n 13,14,15] [--threads 1,2] [--quick] [--cpu] [--precision]\n"
               "CKKS operation timings (median microseconds) as JSON lines on stdout.\n"
               "  --n LIST        log2 of the ring degrees (presets exist for 13, 14, 15)\n"
               "  --threads LIST  thread counts (default 1,2)\n"
               "  --quick         a shorter time budget per operation (noisier)\n"
               "  --cpu           CPU time of the calling thread instead of wall clock (--threads 1 only)\n"
               "  --precision     also print the bits of precision of each operation\n");
}

int main(int argc, char **argv)
{
    int log_ns[MAX_LIST] = {13, 14, 15}, n_count = 3;
    int threads[MAX_LIST] = {1, 2}, t_count = 2;
    int precision = 0, cpu = 0;
    bench_budget budget = bench_budget_default();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--quick")) {
            budget = bench_budget_quick();
        } else if (!strcmp(argv[i], "--cpu")) {
            cpu = 1;
        } else if (!strcmp(argv[i], "--precision")) {
            precision = 1;
        } else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            if (parse_list(argv[++i], log_ns, &n_count)) {
                fprintf(stderr, "bench_ckks: --n wants a comma-separated list such as 13,14\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            if (parse_list(argv[++i], threads, &t_count)) {
                fprintf(stderr, "bench_ckks: --threads wants a comma-separated list such as 1,2\n");
                return 2;
            }
        } else {
            fprintf(stderr, "bench_ckks: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    budget.thread_cpu = cpu;
    if (cpu && (t_count != 1 || threads[0] != 1)) {
        fprintf(stderr, "bench_ckks: --cpu times the calling thread only; use it with --threads 1\n");
        return 2;
    }
    double *samples = malloc((size_t)budget.max_reps * sizeof(double));
    if (!samples) {
        fprintf(stderr, "bench_ckks: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (int a = 0; a < n_count && rc == 0; a++) {
        bench_ckks_set set;
        fprintf(stderr, "bench_ckks: N=2^%d: parameters and keys...\n", log_ns[a]);
        if (bench_ckks_set_new(log_ns[a], NULL, &set) != CDL_OK) {
            fprintf(stderr, "bench_ckks: N=2^%d: setup failed: %s\n", log_ns[a], cdl_last_error());
            rc = 1;
            break;
        }
        fprintf(stderr, "bench_ckks: N=2^%d log Q=%d levels=%d: keys in %.1f s, NTT kernel %s\n", set.log_n,
                set.log_q, set.max_level, set.keygen_seconds, cdl_isa_name(cdl_isa_active()));
        for (int t = 0; t < t_count && rc == 0; t++) {
            for (int op = 0; op < BENCH_OP_COUNT; op++) {
                bench_row row;
                fprintf(stderr, "bench_ckks: N=2^%d threads=%d %s\n", set.log_n, threads[t],
                        bench_op_name((bench_op)op));
                if (bench_ckks_measure(&set, (bench_op)op, threads[t], &budget, samples, &row) != CDL_OK) {
                    fprintf(stderr, "bench_ckks: %s failed: %s\n", bench_op_name((bench_op)op), cdl_last_error());
                    rc = 1;
                    break;
                }
                bench_row_print_json(stdout, &row);
                fflush(stdout);
            }
        }
        if (rc == 0 && precision) {
            bench_precision p[BENCH_PRECISION_COUNT];
            if (bench_ckks_precision(&set, p) != CDL_OK) {
                fprintf(stderr, "bench_ckks: precision run failed: %s\n", cdl_last_error());
                rc = 1;
            } else {
                for (int k = 0; k < BENCH_PRECISION_COUNT; k++)
                    printf("{\"precision\": \"%s\", \"n\": %zu, \"log_q\": %d, \"bits\": %.1f, \"mean_bits\": %.1f}\n",
                           p[k].what, set.n, set.log_q, p[k].bits, p[k].mean_bits);
                fflush(stdout);
            }
        }
        bench_ckks_set_free(&set);
    }
    free(samples);
    return rc;
}
