/*
 * seal_bench.h: run Microsoft SEAL's own benchmark program, `sealbench`
 * (Google Benchmark; built outside the project by ../shared/peers/build-seal.sh),
 * for `cryptodl bench ckks --vs-seal PATH`, so that SEAL's times are measured
 * in the same run on the same machine as ours instead of copied from a file.
 *
 * One run of PATH covers every requested N: sealbench sets up keys for all
 * its parameter sets whatever the filter (about 10 s and 3 GB), so it is
 * started once, with --benchmark_filter selecting exactly the benchmarks that
 * stand for our operations and --benchmark_format=json. Each SEAL benchmark
 * times a fixed 10 calls and reports their mean; with repetitions > 1 the
 * median of the repetitions' means is used.
 */
#ifndef CDL_TOOLS_SEAL_BENCH_H
#define CDL_TOOLS_SEAL_BENCH_H

#include <stddef.h>

#include "bench_util.h"

#define SEAL_BENCH_MIN_LOG_N 13
#define SEAL_BENCH_LOG_NS 3 /* N = 2^13, 2^14, 2^15 */

typedef struct seal_measured {
    /* Microseconds per call of SEAL's counterpart of each op at N = 2^(13 + i);
     * 0 where it was not requested or SEAL has no counterpart. */
    double us[SEAL_BENCH_LOG_NS][BENCH_OP_COUNT];
    int log_q[SEAL_BENCH_LOG_NS]; /* SEAL's total log q at that N, read from its CKKS benchmark names; 0 if none */
    int results;                  /* SEAL results read from the JSON */
    double seconds;               /* how long the sealbench run took */
} seal_measured;

/* The SEAL benchmark(s) standing for op, e.g. "CKKS / EvaluateMulCt + CKKS /
 * EvaluateRelinInplace" or "8 x CKKS / EvaluateRotate"; NULL if SEAL has none. */
const char *seal_bench_label(bench_op op);

/* Run the sealbench at `path` once for the ring degrees 2^log_ns[i] (13..15)
 * and the operations ops[], with `repetitions` repetitions (>= 1); read the
 * wall-clock time (cpu_time = 0) or the process CPU time (cpu_time = 1).
 * Returns 0, or -1 with a message in err (PATH missing or not executable, a
 * failed start, a nonzero exit, no JSON, a missing result). */
int seal_bench_run(const char *path, const int *log_ns, int n_count, const int *ops, int op_count, int repetitions,
                   int cpu_time, seal_measured *out, char *err, size_t err_len);

#endif
