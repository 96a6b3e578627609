/*
 * bench_ckks_cpu.c: CPU time (CLOCK_THREAD_CPUTIME_ID of the calling thread)
 * of the CKKS operations that issue 3 compares with Microsoft SEAL, single
 * thread, as JSON lines:
 *   {"bench": "rotate", "n": 32768, "log_q": 881, "threads": 1, "us": 41234.5, "min_us": 40111.0,
 *    "reps": 7, "clock": "thread_cpu"}
 * (us = median, min_us = fastest of `reps` timed calls after one warm-up).
 * Why CPU time: the shared 2-core build machine runs ~8 other jobs, which
 * inflates wall-clock figures (bench_ckks) 2-3x; the thread's CPU time is what
 * the code costs. The inputs are those of bench_util.h (preset parameters,
 * fresh public-key ciphertexts at the top level, as SEAL's sealbench).
 *
 * usage: bench_ckks_cpu [--n 13,14,15] [--reps 7] [--ops mul_relin,rotate,...]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

static double thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

static const bench_op default_ops[] = {BENCH_MUL_RELIN, BENCH_ROTATE,  BENCH_RESCALE, BENCH_ENCRYPT_PK,
                                       BENCH_DECRYPT,   BENCH_ENCODE,  BENCH_DECODE,  BENCH_MUL,
                                       BENCH_RELIN,     BENCH_ENCRYPT_SK};

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_ckks_cpu [--n 13,14,15] [--reps 7] [--ops mul_relin,rotate,...]\n"
               "Single-thread CPU time (median of --reps calls, CLOCK_THREAD_CPUTIME_ID) of CKKS operations\n"
               "as JSON lines on stdout. Operation names as in bench_ckks (mul_relin, rotate, rescale,\n"
               "encrypt_pk, decrypt, encode, decode, mul, relin, encrypt_sk, ...).\n");
}

int main(int argc, char **argv)
{
    int log_ns[8] = {13, 14, 15}, n_count = 3, reps = 7;
    bench_op ops[BENCH_OP_COUNT];
    int op_count = (int)(sizeof default_ops / sizeof default_ops[0]);
    memcpy(ops, default_ops, sizeof default_ops);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            char *s = argv[++i];
            n_count = 0;
            while (*s && n_count < 8) {
                char *end;
                long v = strtol(s, &end, 10);
                if (end == s || v < 10 || v > 16) {
                    fprintf(stderr, "bench_ckks_cpu: --n wants log2 degrees 10..16 such as 13,14\n");
                    return 2;
                }
                log_ns[n_count++] = (int)v;
                s = *end == ',' ? end + 1 : end;
            }
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
            if (reps < 1 || reps > 1000) {
                fprintf(stderr, "bench_ckks_cpu: --reps wants 1..1000\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
            char buf[512];
            snprintf(buf, sizeof buf, "%s", argv[++i]);
            op_count = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                bench_op op = bench_op_from_name(tok);
                if (op == BENCH_OP_COUNT || op_count == BENCH_OP_COUNT) {
                    fprintf(stderr, "bench_ckks_cpu: unknown operation '%s' (see --help)\n", tok);
                    return 2;
                }
                ops[op_count++] = op;
            }
        } else {
            fprintf(stderr, "bench_ckks_cpu: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    double *samples = malloc((size_t)reps * sizeof(double));
    if (!samples)
        return 1;
    cdl_set_threads(1);
    for (int ni = 0; ni < n_count; ni++) {
        bench_ckks_set s;
        fprintf(stderr, "bench_ckks_cpu: N=2^%d: key generation...\n", log_ns[ni]);
        cdl_status st = bench_ckks_set_new(log_ns[ni], NULL, &s);
        if (st != CDL_OK) {
            fprintf(stderr, "bench_ckks_cpu: N=2^%d: setup failed: %s\n", log_ns[ni], cdl_last_error());
            free(samples);
            return 1;
        }
        for (int k = 0; k < op_count; k++) {
            st = bench_ckks_run_once(&s, ops[k]); /* warm-up */
            for (int r = 0; r < reps && st == CDL_OK; r++) {
                double t0 = thread_cpu_us();
                st = bench_ckks_run_once(&s, ops[k]);
                samples[r] = thread_cpu_us() - t0;
            }
            if (st != CDL_OK) {
                fprintf(stderr, "bench_ckks_cpu: %s failed: %s\n", bench_op_name(ops[k]), cdl_last_error());
                bench_ckks_set_free(&s);
                free(samples);
                return 1;
            }
            double med = bench_median(samples, (size_t)reps);
            printf("{\"bench\": \"%s\", \"n\": %zu, \"log_q\": %d, \"threads\": 1, \"us\": %.1f, \"min_us\": %.1f, "
                   "\"reps\": %d, \"clock\": \"thread_cpu\", \"isa\": \"%s\"}\n",
                   bench_op_name(ops[k]), s.n, s.log_q, med, samples[0], reps, cdl_isa_name(cdl_isa_active()));
            fflush(stdout);
        }
        bench_ckks_set_free(&s);
    }
    free(samples);
    return 0;
}
