/*
 * cmd_bench.c: `cryptodl bench ckks`, the CKKS operation timings: a readable
 * table by default, or JSON lines with --json. Next to ours, Microsoft SEAL
 * 4.4.3's single-thread time and the ratio ours/SEAL: with --vs-seal PATH,
 * SEAL's sealbench at PATH measured in the same run (tools/seal_bench.c);
 * otherwise reference figures copied from ../shared/baselines.md, labelled
 * as such. The measuring code is bench/bench_util.h, shared with the
 * bench/bench_ckks program so that both report the same numbers.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "cli.h"
#include "cryptodl/cryptodl.h"
#include "seal_bench.h"

#define MAX_LIST 8

/*
 * Reference figures, NOT measured by this program: SEAL 4.4.3 sealbench, CKKS,
 * single thread, no HEXL, copied on 2026-11-26 from ../shared/baselines.md
 * (SEAL_REF_MACHINE; the date of the measurement itself is not recorded
 * there): {first run, second run} in microseconds for
 * N = 2^13, 2^14, 2^15; 0 where that run has no figure. mul_relin is SEAL's
 * multiply + relinearize, rotate8 and rotate_hoisted8 are 8 SEAL rotations (SEAL does not
 * hoist), ntt_fwd is "NTT forward, one 60-bit prime (low level)".
 */
typedef struct seal_figure {
    bench_op op;
    double us[3][2];
    double target; /* required ratio ours/SEAL (issue 3), 0 = none */
} seal_figure;

#define SEAL_REF_MACHINE                                                                                       \
    "2-core AMD EPYC, Zen 4 class with AVX-512 IFMA, 2.6 GHz, Debian 12, gcc 12, SEAL 4.4.3 Release without HEXL, " \
    "1 thread"
#define SEAL_REF_DATE "copied 2026-11-26 from ../shared/baselines.md, which does not record when they were measured"

static const seal_figure seal_figures[] = {
    {BENCH_NTT_FWD, {{82, 104}, {168, 217}, {0, 472}}, 0.5},
    {BENCH_ENCODE, {{500, 608}, {1766, 2262}, {0, 10912}}, 0},
    {BENCH_DECODE, {{932, 1227}, {0, 7443}, {0, 47808}}, 0},
    {BENCH_ENCRYPT_PK, {{2586, 3521}, {8803, 12699}, {34306, 52513}}, 0.7},
    {BENCH_ENCRYPT_SK, {{1344, 1563}, {0, 6076}, {0, 22916}}, 0},
    {BENCH_DECRYPT, {{107, 162}, {429, 655}, {0, 2875}}, 0.7},
    {BENCH_ADD, {{55, 79}, {0, 327}, {0, 1452}}, 0},
    {BENCH_MUL_PLAIN, {{143, 207}, {0, 838}, {0, 3293}}, 0},
    {BENCH_MUL, {{315, 440}, {1274, 1803}, {4958, 7008}}, 0},
    {BENCH_RELIN, {{2243, 3141}, {14464, 20855}, {89158, 137024}}, 0},
    {BENCH_MUL_RELIN, {{2243 + 315, 3141 + 440}, {14464 + 1274, 20855 + 1803}, {89158 + 4958, 137024 + 7008}}, 0.6},
    {BENCH_RESCALE, {{519, 763}, {2157, 3517}, {8970, 13200}}, 0.7},
    {BENCH_ROTATE, {{2252, 3188}, {18536, 23153}, {91192, 131444}}, 0.6},
    {BENCH_ROTATE8, {{8 * 2252, 8 * 3188}, {8 * 18536, 8 * 23153}, {8 * 91192, 8 * 131444}}, 0},
    {BENCH_ROTATE_HOISTED8, {{8 * 2252, 8 * 3188}, {8 * 18536, 8 * 23153}, {8 * 91192, 8 * 131444}}, 0},
};

/* SEAL's figure for op at 2^log_n: the first run (the lower one in every
 * row of the baselines), or the second run where only that exists (*second
 * = 1). 0 if SEAL has no figure. */
static double seal_us(bench_op op, int log_n, int *second, double *target)
{
    *second = 0;
    *target = 0;
    if (log_n < 13 || log_n > 15)
        return 0;
    for (size_t i = 0; i < sizeof seal_figures / sizeof seal_figures[0]; i++) {
        if (seal_figures[i].op != op)
            continue;
        const double *u = seal_figures[i].us[log_n - 13];
        *target = seal_figures[i].target;
        if (u[0] > 0)
            return u[0];
        *second = 1;
        return u[1];
    }
    return 0;
}

typedef struct bench_cli {
    int json, markdown, quick, precision, progress;
    int log_ns[MAX_LIST], n_count;
    int threads[MAX_LIST], t_count;
    int ops[BENCH_OP_COUNT], op_count;
    bench_budget budget;
    const char *vs_seal; /* --vs-seal PATH: SEAL's sealbench, run in this run */
    seal_measured seal;  /* its times, when vs_seal is set */
    /* Results so far, to print the speedup of a multi-thread row over 1 thread. */
    bench_row done[3 * MAX_LIST * MAX_LIST * BENCH_OP_COUNT];
    size_t done_count;
    int targets_met, targets_total;
} bench_cli;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cryptodl bench ckks [--json | --markdown] [--n 13,14,15] [--threads 1,2] [--ops LIST] [--quick]\n"
            "                           [--budget SECONDS] [--cpu] [--precision] [--vs-seal PATH]\n\n"
            "Times every CKKS operation (median of repeated calls, in microseconds) with the\n"
            "preset parameters (128-bit security, the largest log Q of the HE standard:\n"
            "N=2^13 log Q 218, 2^14 438, 2^15 881) and prints a table with Microsoft SEAL\n"
            "4.4.3's single-thread time for the same operation and the ratio ours/SEAL\n"
            "(lower is faster). Without --vs-seal, SEAL's times are reference figures copied\n"
            "from ../shared/baselines.md (another day, same machine class), not measured.\n\n"
            "options:\n"
            "  --vs-seal PATH    run SEAL's benchmark program PATH (sealbench, built by\n"
            "                    bash ../shared/peers/build-seal.sh) once, before our timings, and\n"
            "                    compare with its times measured in this run (mean of its 10 calls,\n"
            "                    median of 3 repetitions, 1 with --quick; its CPU time with --cpu;\n"
            "                    about 10 s of key setup and 3 GB for SEAL)\n"
            "  --json            JSON lines instead of the table: one object per line with the keys\n"
            "                    bench, n, log_q, threads, us (median), min_us, reps, isa, clock and,\n"
            "                    on 1-thread rows, either seal_measured_us, seal_log_q, seal_benchmark,\n"
            "                    seal_source, ratio (--vs-seal) or seal_us, seal_run, seal_source, ratio\n"
            "                    (reference)\n"
            "  --markdown        the table as Markdown (for docs/performance.md)\n"
            "  --n LIST          ring degrees as log2 N (13, 14, 15) or N (8192, 16384, 32768); default all three\n"
            "  --threads LIST    thread counts to measure, e.g. 1,2; default 1\n"
            "  --ops LIST        only these operations; default all:\n"
            "                    ");
    for (int i = 0; i < BENCH_OP_COUNT; i++)
        fprintf(f, "%s%s", bench_op_name((bench_op)i), i + 1 < BENCH_OP_COUNT ? "," : "\n");
    fprintf(f,
            "  --quick           a short time budget per operation (%.2f s, >= %d calls): a fast demo,\n"
            "                    noisier figures\n"
            "  --budget SECONDS  time budget per operation (default %.2f s, >= %d calls)\n"
            "  --cpu             time the calling thread's CPU time instead of the wall clock (1 thread\n"
            "                    only): on a loaded machine, what the code costs without the waiting\n"
            "  --precision       also measure the bits of precision left after each operation\n"
            "  --help            this text\n\n"
            "Progress goes to stderr. CDL_ISA=portable|avx2|avx512 forces an NTT kernel.\n"
            "SEAL is single-threaded: ratios are given on our 1-thread rows only; rows with more\n"
            "threads show the speedup over 1 thread instead.\n",
            bench_budget_quick().seconds, bench_budget_quick().min_reps, bench_budget_default().seconds,
            bench_budget_default().min_reps);
}

/* Comma-separated positive integers. */
static int parse_int_list(const char *s, int *out, int *count, int max)
{
    *count = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0 || v > (1L << 20) || *count == max)
            return -1;
        out[(*count)++] = (int)v;
        s = end;
        if (*s == ',' && s[1])
            s++;
        else if (*s)
            return -1;
    }
    return *count ? 0 : -1;
}

static int parse_args(int argc, char **argv, bench_cli *c)
{
    c->n_count = 3;
    c->log_ns[0] = 13, c->log_ns[1] = 14, c->log_ns[2] = 15;
    c->t_count = 1;
    c->threads[0] = 1;
    c->op_count = BENCH_OP_COUNT;
    for (int i = 0; i < BENCH_OP_COUNT; i++)
        c->ops[i] = i;
    double budget_s = -1;
    int cpu = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        } else if (!strcmp(a, "--json")) {
            c->json = 1;
        } else if (!strcmp(a, "--markdown")) {
            c->markdown = 1;
        } else if (!strcmp(a, "--cpu")) {
            cpu = 1;
        } else if (!strcmp(a, "--quick")) {
            c->quick = 1;
        } else if (!strcmp(a, "--precision")) {
            c->precision = 1;
        } else if (!strcmp(a, "--n") || !strcmp(a, "--threads") || !strcmp(a, "--ops") || !strcmp(a, "--budget") ||
                   !strcmp(a, "--vs-seal")) {
            if (!val)
                return cli_usage_error("bench ckks", "%s needs a value", a);
            i++;
            if (!strcmp(a, "--vs-seal")) {
                if (!*val)
                    return cli_usage_error("bench ckks", "--vs-seal needs the path of SEAL's sealbench");
                c->vs_seal = val;
            } else if (!strcmp(a, "--n")) {
                if (parse_int_list(val, c->log_ns, &c->n_count, MAX_LIST))
                    return cli_usage_error("bench ckks", "--n wants a comma-separated list such as 13,14 (got '%s')",
                                           val);
                for (int k = 0; k < c->n_count; k++) {
                    int v = c->log_ns[k];
                    if (v > 64) { /* given as N: must be a power of two */
                        int l = 0;
                        while ((1 << l) < v && l < 30)
                            l++;
                        if ((1 << l) != v)
                            return cli_usage_error("bench ckks", "--n: %d is not a power of two", v);
                        c->log_ns[k] = v = l;
                    }
                    if (v < 13 || v > 15) /* the secure presets; 10..12 exist only as insecure test sets */
                        return cli_usage_error("bench ckks",
                                               "--n: %d is not a benchmarked size; choose among 13, 14, 15 "
                                               "(or 8192, 16384, 32768), the 128-bit presets",
                                               v);
                }
            } else if (!strcmp(a, "--threads")) {
                if (parse_int_list(val, c->threads, &c->t_count, MAX_LIST))
                    return cli_usage_error("bench ckks",
                                           "--threads wants a comma-separated list of counts such as 1,2 (got '%s')",
                                           val);
            } else if (!strcmp(a, "--budget")) {
                char *end;
                budget_s = strtod(val, &end);
                if (end == val || *end || !(budget_s > 0 && budget_s <= 600))
                    return cli_usage_error("bench ckks", "--budget wants seconds per operation, 0 < s <= 600 (got '%s')",
                                           val);
            } else {
                c->op_count = 0;
                char buf[512];
                snprintf(buf, sizeof buf, "%s", val);
                for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                    bench_op op = bench_op_from_name(tok);
                    if (op == BENCH_OP_COUNT)
                        return cli_usage_error("bench ckks", "--ops: unknown operation '%s' (see --help for the list)",
                                               tok);
                    if (c->op_count < BENCH_OP_COUNT)
                        c->ops[c->op_count++] = op;
                }
                if (c->op_count == 0)
                    return cli_usage_error("bench ckks", "--ops wants a comma-separated list of operations");
            }
        } else {
            return cli_usage_error("bench ckks", "unknown option '%s'", a);
        }
    }
    if (c->json && c->markdown)
        return cli_usage_error("bench ckks", "choose one of --json and --markdown");
    int one_thread = 0;
    for (int k = 0; k < c->t_count; k++)
        one_thread |= c->threads[k] == 1;
    if (c->vs_seal && !one_thread)
        return cli_usage_error("bench ckks", "SEAL is single-threaded: --vs-seal compares with our 1-thread rows, "
                                             "so --threads must include 1");
    c->budget = c->quick ? bench_budget_quick() : bench_budget_default();
    if (budget_s > 0)
        c->budget.seconds = budget_s;
    if (cpu) {
        for (int k = 0; k < c->t_count; k++)
            if (c->threads[k] != 1)
                return cli_usage_error("bench ckks",
                                       "--cpu measures the CPU time of the calling thread, which misses the work of "
                                       "the other threads: use it with --threads 1");
        c->budget.thread_cpu = 1;
    }
    return 0;
}

/* A one-line status on stderr, redrawn in place (terminal or CDL_PROGRESS=1). */
static void status(const bench_cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status(const bench_cli *c, const char *fmt, ...)
{
    if (!c->progress)
        return;
    va_list ap;
    fputs("\r\033[K", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

static void status_clear(const bench_cli *c)
{
    if (c->progress) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
}

static void print_header(const bench_cli *c)
{
    if (c->markdown) {
        printf("| op | N | log Q | threads | median µs | reps | SEAL µs (%s) | ours/SEAL | target |\n"
               "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
               c->vs_seal ? "measured in this run" : "reference");
        return;
    }
    printf("%-19s %6s %6s %4s %12s %6s %11s %10s  %s\n", "op", "N", "log Q", "thr", "median us", "reps",
           c->vs_seal ? "SEAL now us" : "SEAL ref us", "ours/SEAL", "target");
}

static void fmt_us(char *buf, size_t len, double us)
{
    if (us >= 100)
        snprintf(buf, len, "%.0f", us);
    else
        snprintf(buf, len, "%.1f", us);
}

static void print_row(bench_cli *c, const bench_row *r)
{
    int second;
    double target;
    double seal = seal_us(r->op, r->log_n, &second, &target); /* the reference figure, and the target */
    if (c->vs_seal) {
        seal = c->seal.us[r->log_n - SEAL_BENCH_MIN_LOG_N][r->op];
        second = 0;
    }
    double one_thread = 0;
    for (size_t i = 0; i < c->done_count; i++)
        if (c->done[i].op == r->op && c->done[i].log_n == r->log_n && c->done[i].threads == 1)
            one_thread = c->done[i].us;
    if (c->json) {
        printf("{\"bench\": \"%s\", \"n\": %zu, \"log_q\": %d, \"threads\": %d, \"us\": %.2f, \"min_us\": %.2f, "
               "\"reps\": %d, \"isa\": \"%s\", \"clock\": \"%s\"",
               bench_op_name(r->op), r->n, r->log_q, r->threads, r->us, r->min_us, r->reps,
               cdl_isa_name(cdl_isa_active()), r->thread_cpu ? "thread_cpu" : "wall");
        if (seal > 0 && r->threads == 1 && c->vs_seal) {
            int seal_log_q = c->seal.log_q[r->log_n - SEAL_BENCH_MIN_LOG_N]; /* 0: only NTT rows asked for */
            printf(", \"seal_measured_us\": %.2f", seal);
            if (seal_log_q > 0)
                printf(", \"seal_log_q\": %d", seal_log_q);
            printf(", \"seal_benchmark\": \"%s\", \"seal_source\": ", seal_bench_label(r->op));
            char source[1100];
            snprintf(source, sizeof source, "measured in this run: %s", c->vs_seal);
            cli_json_string(source);
            printf(", \"ratio\": %.3f", r->us / seal);
        } else if (seal > 0 && r->threads == 1) {
            printf(", \"seal_us\": %.0f, \"seal_run\": %d, \"seal_source\": \"reference figure, not measured in this "
                   "run: " SEAL_REF_MACHINE "; " SEAL_REF_DATE "\", \"ratio\": %.3f",
                   seal, second ? 2 : 1, r->us / seal);
        }
        printf("}\n");
    } else {
        char us[32], seal_s[32] = "-", ratio[32] = "-", note[64] = "";
        fmt_us(us, sizeof us, r->us);
        if (r->threads == 1 && seal > 0) {
            if (c->vs_seal)
                fmt_us(seal_s, sizeof seal_s, seal);
            else
                snprintf(seal_s, sizeof seal_s, "%.0f%s", seal, second ? "*" : "");
            snprintf(ratio, sizeof ratio, "%.2f", r->us / seal);
            if (target > 0) {
                int ok = r->us / seal <= target;
                snprintf(note, sizeof note, "<= %.1f %s", target, ok ? "met" : "MISSED");
                c->targets_total++;
                c->targets_met += ok;
            }
        } else if (r->threads != 1 && one_thread > 0) {
            snprintf(note, sizeof note, "%.2fx vs 1 thread", one_thread / r->us);
        }
        if ((r->op == BENCH_ROTATE_SUM8 || r->op == BENCH_ROTATE_SUM8_HOISTED) && !note[0]) {
            /* the sum of 8 rotated products against its unhoisted reference, same N and threads */
            for (size_t i = 0; i < c->done_count; i++)
                if (c->done[i].op == BENCH_ROTATE_SUM8_REF && c->done[i].log_n == r->log_n &&
                    c->done[i].threads == r->threads && c->done[i].us > 0)
                    snprintf(note, sizeof note, "%.2f x rotate_sum8_ref%s", r->us / c->done[i].us,
                             r->op == BENCH_ROTATE_SUM8 ? " (issue: <= 0.35)" : "");
        }
        if (c->markdown)
            printf("| %s | %zu | %d | %d | %s | %d | %s | %s | %s |\n", bench_op_name(r->op), r->n, r->log_q,
                   r->threads, us, r->reps, seal_s, ratio, note);
        else
            printf("%-19s %6zu %6d %4d %12s %6d %11s %10s  %s\n", bench_op_name(r->op), r->n, r->log_q, r->threads,
                   us, r->reps, seal_s, ratio, note);
    }
    fflush(stdout);
    if (c->done_count < sizeof c->done / sizeof c->done[0])
        c->done[c->done_count++] = *r;
}

static int run_ckks(bench_cli *c)
{
    const char *env = getenv("CDL_PROGRESS");
    c->progress = env ? atoi(env) != 0 : isatty(fileno(stderr));
    double *samples = malloc((size_t)c->budget.max_reps * sizeof(double));
    if (!samples) {
        fprintf(stderr, "cryptodl bench ckks: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    double t_start = cli_now_seconds();
    if (c->vs_seal) {
        int reps = c->quick ? 1 : 3;
        if (c->progress)
            status(c, "running SEAL's sealbench (%s): key setup for all its sizes, then %d repetition%s...",
                   c->vs_seal, reps, reps == 1 ? "" : "s");
        else
            fprintf(stderr, "cryptodl bench ckks: running SEAL's sealbench (%s), %d repetition%s...\n", c->vs_seal,
                    reps, reps == 1 ? "" : "s");
        char err[1200];
        int bad = seal_bench_run(c->vs_seal, c->log_ns, c->n_count, c->ops, c->op_count, reps, c->budget.thread_cpu,
                                 &c->seal, err, sizeof err);
        status_clear(c);
        if (bad) {
            fprintf(stderr, "cryptodl bench ckks: --vs-seal: %s\n", err);
            free(samples);
            return CLI_EXIT_FAILURE;
        }
        fprintf(stderr, "cryptodl bench ckks: SEAL's sealbench (%s): %d results in %.1f s\n", c->vs_seal,
                c->seal.results, c->seal.seconds);
    }
    size_t total = (size_t)c->n_count * (size_t)c->t_count * (size_t)c->op_count, step = 0;
    if (!c->json) {
        printf("CKKS operation timings: median microseconds per call (%s); NTT kernel %s; budget %.2f s and >= %d "
               "calls per operation\n",
               c->budget.thread_cpu ? "CPU time of the thread" : "wall clock", cdl_isa_name(cdl_isa_active()),
               c->budget.seconds, c->budget.min_reps);
        if (c->vs_seal)
            printf("SEAL now us: Microsoft SEAL's sealbench %s, measured in this run just before ours (%s; mean of "
                   "its 10 calls%s)\n\n",
                   c->vs_seal, c->budget.thread_cpu ? "process CPU time" : "wall clock",
                   c->quick ? ", one repetition" : ", median of 3 repetitions");
        else
            printf("SEAL ref us: reference figures, NOT measured in this run (" SEAL_REF_MACHINE "; " SEAL_REF_DATE
                   "); first run, * = second run (the only one)\n\n");
        print_header(c);
    }
    int rc = CLI_EXIT_OK;
    for (int a = 0; a < c->n_count && rc == CLI_EXIT_OK; a++) {
        bench_ckks_set set;
        status(c, "N=2^%d: parameters and keys (relinearization, 8 rotations)...", c->log_ns[a]);
        if (bench_ckks_set_new(c->log_ns[a], NULL, &set) != CDL_OK) {
            status_clear(c);
            char what[64];
            snprintf(what, sizeof what, "N=2^%d: setting up parameters and keys failed", c->log_ns[a]);
            rc = cli_fail_status("bench ckks", what);
            break;
        }
        status_clear(c);
        if (!c->progress || c->json)
            fprintf(stderr, "cryptodl bench ckks: N=2^%d log Q=%d (%d levels): keys in %.1f s\n", set.log_n,
                    set.log_q, set.max_level, set.keygen_seconds);
        for (int t = 0; t < c->t_count && rc == CLI_EXIT_OK; t++) {
            for (int k = 0; k < c->op_count; k++) {
                bench_op op = (bench_op)c->ops[k];
                bench_row row;
                step++;
                status(c, "[%zu/%zu] N=2^%d, %d thread%s: %s", step, total, set.log_n, c->threads[t],
                       c->threads[t] == 1 ? "" : "s", bench_op_name(op));
                if (bench_ckks_measure(&set, op, c->threads[t], &c->budget, samples, &row) != CDL_OK) {
                    status_clear(c);
                    char what[64];
                    snprintf(what, sizeof what, "%s at N=2^%d failed", bench_op_name(op), set.log_n);
                    rc = cli_fail_status("bench ckks", what);
                    break;
                }
                status_clear(c);
                print_row(c, &row);
            }
        }
        if (rc == CLI_EXIT_OK && c->precision) {
            status(c, "N=2^%d: precision...", set.log_n);
            bench_precision p[BENCH_PRECISION_COUNT];
            cdl_status st = bench_ckks_precision(&set, p);
            status_clear(c);
            if (st != CDL_OK) {
                rc = cli_fail_status("bench ckks", "the precision measurement failed");
            } else if (c->json) {
                for (int k = 0; k < BENCH_PRECISION_COUNT; k++)
                    printf("{\"precision\": \"%s\", \"n\": %zu, \"log_q\": %d, \"bits\": %.1f, \"mean_bits\": %.1f}\n",
                           p[k].what, set.n, set.log_q, p[k].bits, p[k].mean_bits);
            } else {
                printf("\nprecision at N=%zu, log Q %d, scale 2^%.0f (inputs uniform in [-1,1), bits = -log2 |error|):\n",
                       set.n, set.log_q, log2(set.scale));
                if (c->markdown)
                    printf("\n| operation | bits, worst slot | bits, mean |\n| --- | ---: | ---: |\n");
                else
                    printf("  %-34s %11s %10s\n", "operation", "worst slot", "mean");
                for (int k = 0; k < BENCH_PRECISION_COUNT; k++)
                    printf(c->markdown ? "| %s | %.1f | %.1f |\n" : "  %-34s %11.1f %10.1f\n", p[k].what, p[k].bits,
                           p[k].mean_bits);
                if (a + 1 < c->n_count) {
                    printf("\n");
                    print_header(c);
                }
            }
            fflush(stdout);
        }
        bench_ckks_set_free(&set);
    }
    free(samples);
    if (rc == CLI_EXIT_OK && !c->json) {
        printf("\n");
        if (c->vs_seal)
            printf("SEAL column: measured in this run on this machine by %s. SEAL is single-threaded: it is compared "
                   "with our 1-thread rows only. mul_relin = EvaluateMulCt + EvaluateRelinInplace, rotate8 and "
                   "rotate_hoisted8 = 8 x EvaluateRotate, ntt_fwd/ntt_inv = NTTForwardLowLevel/NTTInverseLowLevel (one prime). Same N "
                   "and log Q, different prime chains (docs/performance.md).\n",
                   c->vs_seal);
        else
            printf("SEAL column: reference figures (" SEAL_REF_MACHINE "; " SEAL_REF_DATE "), NOT measured in this "
                   "run: a faster-than claim needs both measured side by side on one machine, --vs-seal PATH.\n");
        if (c->targets_total)
            printf("targets (issue 3, 1 thread, ours/SEAL %s): %d of %d met\n",
                   c->vs_seal ? "measured in this run" : "reference", c->targets_met, c->targets_total);
        printf("total %.1f s\n", cli_now_seconds() - t_start);
    }
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: cryptodl bench <benchmark> [options]\n\n"
                   "benchmarks:\n"
                   "  ckks       CKKS operation timings vs Microsoft SEAL (table, or --json; --vs-seal PATH runs SEAL)\n"
                   "  bootstrap  one CKKS bootstrap: time, precision, levels left, keys, memory\n\n"
                   "Run 'cryptodl bench ckks --help' or 'cryptodl bench bootstrap --help' for the options.\n");
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (!strcmp(argv[1], "bootstrap"))
        return cmd_bench_bootstrap(argc, argv);
    if (strcmp(argv[1], "ckks"))
        return cli_usage_error("bench", "unknown benchmark '%s' (available: ckks, bootstrap)", argv[1]);
    bench_cli *c = calloc(1, sizeof *c);
    if (!c) {
        fprintf(stderr, "cryptodl bench: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    int rc = parse_args(argc, argv, c);
    if (rc == 0)
        rc = run_ckks(c);
    else if (rc < 0)
        rc = CLI_EXIT_OK; /* --help */
    free(c);
    return rc;
}
