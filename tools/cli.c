/* cli.c: helpers shared by the subcommands: error reporting, progress bars. */
#include "cli.h"

#include <stdarg.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cryptodl/cryptodl.h"

int cli_fail_status(const char *command, const char *what)
{
    const char *detail = cdl_last_error();
    fprintf(stderr, "cryptodl %s: %s%s%s\n", command, what, detail[0] ? ": " : "", detail);
    return CLI_EXIT_FAILURE;
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cryptodl %s: ", command);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'cryptodl %s --help'.\n", command);
    return CLI_EXIT_USAGE;
}

double cli_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *label, size_t total)
{
    const char *env = getenv("CDL_PROGRESS");
    p->label = label;
    p->total = total;
    p->start = cli_now_seconds();
    p->last_draw = 0;
    p->enabled = env ? atoi(env) != 0 : isatty(fileno(stderr));
}

void cli_progress_update(cli_progress *p, size_t done)
{
    if (!p->enabled)
        return;
    double now = cli_now_seconds();
    if (done < p->total && now - p->last_draw < 0.2)
        return;
    p->last_draw = now;
    double elapsed = now - p->start;
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    int width = 30, filled = (int)(frac * width);
    double eta = done ? elapsed * (double)(p->total - done) / (double)done : 0;
    fprintf(stderr, "\r%s [", p->label);
    for (int i = 0; i < width; i++)
        fputc(i < filled ? '#' : '.', stderr);
    fprintf(stderr, "] %zu/%zu  %.1f/s  eta %.0fs ", done, p->total, elapsed > 0 ? (double)done / elapsed : 0.0, eta);
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p)
{
    if (!p->enabled)
        return;
    cli_progress_update(p, p->total);
    fputc('\n', stderr);
}

const char *cli_default_data_dir(void)
{
    const char *env = getenv("CDL_DATA_DIR");
    if (env && env[0])
        return env;
    struct stat st;
    if (stat("../shared/data", &st) == 0 && S_ISDIR(st.st_mode))
        return "../shared/data";
    return NULL;
}

void cli_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

int cli_parse_positive(const char *command, const char *option, const char *text, long long *out)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end || v < 1) {
        cli_usage_error(command, "%s needs a positive integer, got '%s'", option, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_packing(const char *command, const char *text, int *out)
{
    if (strcmp(text, "batch") == 0)
        *out = CDL_HE_PACKING_BATCH;
    else if (strcmp(text, "slots") == 0)
        *out = CDL_HE_PACKING_SLOTS;
    else if (strcmp(text, "auto") == 0)
        *out = CDL_HE_PACKING_AUTO;
    else
        { cli_usage_error(command, "--packing must be batch, slots or auto, got '%s'", text); return -1; }
    return 0;
}

int cli_parse_threads(const char *command, const char *text, int *out)
{
    long long t = 0;
    if (cli_parse_positive(command, "--threads", text, &t) != 0)
        return -1;
    if (t > 4096) {
        cli_usage_error(command, "--threads %lld is too many (at most 4096)", t);
        return -1;
    }
    *out = (int)t;
    return 0;
}

double cli_peak_rss_mb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss / 1024.0 : 0.0;
}
