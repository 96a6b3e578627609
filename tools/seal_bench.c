/*
 * seal_bench.c: run SEAL's sealbench and read its JSON (see seal_bench.h).
 */
#include "seal_bench.h"

#include <errno.h>
#include <jansson.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* sealbench's names are "n=<N> / log(q)=<bits> / <CATEGORY> / <Name>/iterations:10"
 * (log(q)=0 for the low-level NTTs). Our op = times x (a [+ b]). */
typedef struct seal_map {
    bench_op op;
    const char *cat, *a, *b;
    int times;
    const char *label;
} seal_map;

static const seal_map seal_maps[] = {
    {BENCH_NTT_FWD, "UTIL", "NTTForwardLowLevel", NULL, 1, "UTIL / NTTForwardLowLevel"},
    {BENCH_NTT_INV, "UTIL", "NTTInverseLowLevel", NULL, 1, "UTIL / NTTInverseLowLevel"},
    {BENCH_ENCODE, "CKKS", "EncodeDouble", NULL, 1, "CKKS / EncodeDouble"},
    {BENCH_DECODE, "CKKS", "DecodeDouble", NULL, 1, "CKKS / DecodeDouble"},
    {BENCH_ENCRYPT_PK, "CKKS", "EncryptPublic", NULL, 1, "CKKS / EncryptPublic"},
    {BENCH_ENCRYPT_SK, "CKKS", "EncryptSecret", NULL, 1, "CKKS / EncryptSecret"},
    {BENCH_DECRYPT, "CKKS", "Decrypt", NULL, 1, "CKKS / Decrypt"},
    {BENCH_ADD, "CKKS", "EvaluateAddCt", NULL, 1, "CKKS / EvaluateAddCt"},
    {BENCH_MUL_PLAIN, "CKKS", "EvaluateMulPt", NULL, 1, "CKKS / EvaluateMulPt"},
    {BENCH_MUL, "CKKS", "EvaluateMulCt", NULL, 1, "CKKS / EvaluateMulCt"},
    {BENCH_RELIN, "CKKS", "EvaluateRelinInplace", NULL, 1, "CKKS / EvaluateRelinInplace"},
    {BENCH_MUL_RELIN, "CKKS", "EvaluateMulCt", "EvaluateRelinInplace", 1,
     "CKKS / EvaluateMulCt + CKKS / EvaluateRelinInplace"},
    {BENCH_RESCALE, "CKKS", "EvaluateRescaleInplace", NULL, 1, "CKKS / EvaluateRescaleInplace"},
    {BENCH_ROTATE, "CKKS", "EvaluateRotate", NULL, 1, "CKKS / EvaluateRotate"},
    {BENCH_ROTATE8, "CKKS", "EvaluateRotate", NULL, BENCH_HOISTED, "8 x CKKS / EvaluateRotate"},
    {BENCH_ROTATE_HOISTED8, "CKKS", "EvaluateRotate", NULL, BENCH_HOISTED, "8 x CKKS / EvaluateRotate"},
};
#define SEAL_MAPS (sizeof seal_maps / sizeof seal_maps[0])

/* The distinct SEAL benchmarks: at most one per map entry. */
#define SEAL_NAMES_MAX (2 * SEAL_MAPS)

static const seal_map *find_map(bench_op op)
{
    for (size_t i = 0; i < SEAL_MAPS; i++)
        if (seal_maps[i].op == op)
            return &seal_maps[i];
    return NULL;
}

const char *seal_bench_label(bench_op op)
{
    const seal_map *m = find_map(op);
    return m ? m->label : NULL;
}

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* Append to buf (capacity cap, *used so far); nonzero once it did not fit. */
static int append(char *buf, size_t cap, size_t *used, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int append(char *buf, size_t cap, size_t *used, const char *fmt, ...)
{
    if (*used >= cap)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, cap - *used, fmt, ap);
    va_end(ap);
    *used = n < 0 ? cap : *used + (size_t)n;
    return *used >= cap ? -1 : 0;
}

/* The names needed (each once) for ops; returns their count. */
static size_t needed_names(const int *ops, int op_count, const char **names)
{
    size_t count = 0;
    for (int k = 0; k < op_count; k++) {
        const seal_map *m = find_map((bench_op)ops[k]);
        const char *pair[2] = {m ? m->a : NULL, m ? m->b : NULL};
        for (int j = 0; j < 2; j++) {
            size_t i = 0;
            while (pair[j] && i < count && strcmp(names[i], pair[j]))
                i++;
            if (pair[j] && i == count)
                names[count++] = pair[j];
        }
    }
    return count;
}

/* Run path with argv, its stdout into a malloc'ed NUL-terminated *out. */
static int spawn_capture(const char *path, char *const argv[], char **out, char *err, size_t len)
{
    int fds[2];
    if (pipe(fds))
        return fail(err, len, "pipe: %s", strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        return fail(err, len, "cannot start %s: %s", path, strerror(rc));
    }
    size_t cap = 1 << 16, used = 0;
    char *buf = malloc(cap);
    int read_error = buf ? 0 : ENOMEM;
    while (!read_error) {
        if (used + 1 == cap) {
            char *bigger = cap < ((size_t)64 << 20) ? realloc(buf, 2 * cap) : NULL;
            if (!bigger) {
                read_error = ENOMEM;
                break;
            }
            buf = bigger, cap *= 2;
        }
        ssize_t got = read(fds[0], buf + used, cap - 1 - used);
        if (got > 0)
            used += (size_t)got;
        else if (got == 0)
            break;
        else if (errno != EINTR)
            read_error = errno;
    }
    close(fds[0]); /* an unread rest makes the child fail on SIGPIPE rather than hang */
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            free(buf);
            return fail(err, len, "waiting for %s: %s", path, strerror(errno));
        }
    }
    if (read_error) {
        free(buf);
        return fail(err, len, "reading the output of %s: %s", path, strerror(read_error));
    }
    if (WIFSIGNALED(status)) {
        free(buf);
        return fail(err, len, "%s was killed by signal %d", path, WTERMSIG(status));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(buf);
        return fail(err, len, "%s exited with status %d", path, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }
    buf[used] = 0;
    *out = buf;
    return 0;
}

/* Microseconds from a Google Benchmark time and its time_unit; -1 if unknown. */
static double to_us(double t, const char *unit)
{
    static const struct {
        const char *unit;
        double scale;
    } units[] = {{"ns", 1e-3}, {"us", 1}, {"ms", 1e3}, {"s", 1e6}};
    for (size_t i = 0; unit && i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(unit, units[i].unit))
            return t * units[i].scale;
    return -1;
}

/* Read sealbench's JSON (after its text banner) into times[N index][name index]. */
static int parse_json(const char *path, const char *text, const char **names, size_t name_count, int cpu_time,
                      double times[][SEAL_NAMES_MAX], seal_measured *out, char *err, size_t len)
{
    const char *start = text[0] == '{' ? text : strstr(text, "\n{");
    if (!start)
        return fail(err, len, "%s printed no JSON (is it SEAL's sealbench, which takes --benchmark_format=json?)",
                    path);
    json_error_t jerr;
    json_t *root = json_loads(start, JSON_DISABLE_EOF_CHECK, &jerr);
    json_t *list = root ? json_object_get(root, "benchmarks") : NULL;
    if (!json_is_array(list)) {
        json_decref(root);
        return fail(err, len, "%s printed no readable Google Benchmark JSON (%s)", path,
                    root ? "no \"benchmarks\" list" : jerr.text);
    }
    int is_median[SEAL_BENCH_LOG_NS][SEAL_NAMES_MAX] = {{0}};
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "run_name"));
        const char *type = json_string_value(json_object_get(e, "run_type"));
        const char *aggregate = json_string_value(json_object_get(e, "aggregate_name"));
        int median = type && !strcmp(type, "aggregate") && aggregate && !strcmp(aggregate, "median");
        if (!name)
            name = json_string_value(json_object_get(e, "name"));
        if (!name || (!median && type && strcmp(type, "iteration")))
            continue; /* mean, stddev, cv */
        int n, log_q;
        char cat[8], bench[48];
        if (sscanf(name, "n=%d / log(q)=%d / %7[A-Z] / %47[A-Za-z]", &n, &log_q, cat, bench) != 4)
            continue;
        int a = 0;
        while (a < SEAL_BENCH_LOG_NS && n != 1 << (SEAL_BENCH_MIN_LOG_N + a))
            a++;
        size_t k = 0;
        while (k < name_count && strcmp(names[k], bench))
            k++;
        if (a == SEAL_BENCH_LOG_NS || k == name_count || (is_median[a][k] && !median))
            continue;
        double us = to_us(json_number_value(json_object_get(e, cpu_time ? "cpu_time" : "real_time")),
                          json_string_value(json_object_get(e, "time_unit")));
        if (!(us > 0)) {
            fail(err, len, "%s: no usable time or time_unit for '%s'", path, name);
            json_decref(root); /* after the message: name points into root */
            return -1;
        }
        out->results += times[a][k] == 0;
        times[a][k] = us;
        is_median[a][k] = median;
        if (!strcmp(cat, "CKKS"))
            out->log_q[a] = log_q;
    }
    json_decref(root);
    return 0;
}

int seal_bench_run(const char *path, const int *log_ns, int n_count, const int *ops, int op_count, int repetitions,
                   int cpu_time, seal_measured *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    struct stat st;
    if (stat(path, &st))
        return fail(err, err_len, "%s: %s (build SEAL's sealbench with: bash ../shared/peers/build-seal.sh)", path,
                    strerror(errno));
    if (!S_ISREG(st.st_mode) || access(path, X_OK))
        return fail(err, err_len, "%s is not an executable file", path);

    const char *names[SEAL_NAMES_MAX];
    size_t name_count = needed_names(ops, op_count, names);
    if (name_count == 0)
        return 0; /* none of the operations has a SEAL counterpart */
    /* ^n=(8192|16384) / log\(q\)=[0-9]+ / (CKKS|UTIL) / (EncodeDouble|...)(/|$) */
    char filter[1024];
    size_t f = 0;
    append(filter, sizeof filter, &f, "--benchmark_filter=^n=(");
    for (int a = 0; a < n_count; a++)
        append(filter, sizeof filter, &f, "%s%d", a ? "|" : "", 1 << log_ns[a]);
    append(filter, sizeof filter, &f, ") / log\\(q\\)=[0-9]+ / (CKKS|UTIL) / (");
    for (size_t k = 0; k < name_count; k++)
        append(filter, sizeof filter, &f, "%s%s", k ? "|" : "", names[k]);
    if (append(filter, sizeof filter, &f, ")(/|$)"))
        return fail(err, err_len, "the sealbench filter is too long");
    char reps[64];
    snprintf(reps, sizeof reps, "--benchmark_repetitions=%d", repetitions);
    char *argv[] = {(char *)path, filter, "--benchmark_format=json", reps,
                    "--benchmark_report_aggregates_only=true", NULL};

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *text = NULL;
    if (spawn_capture(path, argv, &text, err, err_len))
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);

    double times[SEAL_BENCH_LOG_NS][SEAL_NAMES_MAX] = {{0}};
    int rc = parse_json(path, text, names, name_count, cpu_time, times, out, err, err_len);
    free(text);
    if (rc)
        return -1;
    if (out->results == 0)
        return fail(err, err_len, "%s printed no results for the benchmarks asked for (is it SEAL 4.x's sealbench?)",
                    path);

    for (int a = 0; a < n_count; a++) {
        int idx = log_ns[a] - SEAL_BENCH_MIN_LOG_N;
        for (int k = 0; k < op_count; k++) {
            const seal_map *m = find_map((bench_op)ops[k]);
            if (!m)
                continue;
            const char *parts[2] = {m->a, m->b};
            double sum = 0;
            for (int p = 0; p < 2 && parts[p]; p++) {
                size_t j = 0;
                while (j < name_count && strcmp(names[j], parts[p]))
                    j++;
                if (j == name_count || times[idx][j] <= 0)
                    return fail(err, err_len, "%s printed no result for 'n=%d / log(q)=... / %s / %s'", path,
                                1 << log_ns[a], m->cat, parts[p]);
                sum += times[idx][j];
            }
            out->us[idx][ops[k]] = m->times * sum;
        }
    }
    return 0;
}
