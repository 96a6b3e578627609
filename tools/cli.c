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

static int quiet_flag;

void cli_set_quiet(int quiet) { quiet_flag = quiet != 0; }

int cli_quiet(void) { return quiet_flag; }

cli_style cli_progress_style(void)
{
    if (quiet_flag)
        return CLI_STYLE_NONE;
    const char *env = getenv("CDL_PROGRESS");
    if (env && env[0])
        return atoi(env) != 0 ? CLI_STYLE_BAR : CLI_STYLE_LINES;
    return isatty(fileno(stderr)) ? CLI_STYLE_BAR : CLI_STYLE_LINES;
}

void cli_progress_start(cli_progress *p, const char *label, size_t total)
{
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->start = cli_now_seconds();
    p->enabled = cli_progress_style() == CLI_STYLE_BAR;
}

void cli_progress_begin(cli_progress *p, const char *label, size_t total)
{
    cli_progress_start(p, label, total);
    p->lines = cli_progress_style() == CLI_STYLE_LINES;
}

void cli_bar_text(char *buf, size_t cap, size_t done, size_t total, int width)
{
    double frac = total ? (double)done / (double)total : 1.0;
    int filled = (int)(frac * width);
    size_t at = 0;
    if (cap < 3)
        return;
    buf[at++] = '[';
    for (int i = 0; i < width && at + 2 < cap; i++)
        buf[at++] = i < filled ? '#' : '.';
    buf[at++] = ']';
    buf[at] = '\0';
}

void cli_duration_text(char *buf, size_t cap, double s)
{
    if (s < 90)
        snprintf(buf, cap, "%.0f s", s);
    else if (s < 5400)
        snprintf(buf, cap, "%.1f min", s / 60);
    else
        snprintf(buf, cap, "%.1f h", s / 3600);
}

static void progress_line(cli_progress *p, size_t done, double elapsed)
{
    int tenth = p->total ? (int)(10 * done / p->total) : 10;
    if (p->last_tenth > 10 || (done < p->total && (elapsed < 1.0 || tenth <= p->last_tenth)))
        return; /* the last line was printed, or not yet a second, or still in the same tenth */
    if (done >= p->total && !p->printed && elapsed < 1.0)
        return; /* a short job: nothing to report */
    p->last_tenth = done >= p->total ? 11 : tenth;
    p->printed = 1;
    char t[32];
    if (done >= p->total) {
        cli_duration_text(t, sizeof t, elapsed);
        fprintf(stderr, "%s: %zu/%zu, done in %s\n", p->label, done, p->total, t);
    } else {
        double eta = done ? elapsed * (double)(p->total - done) / (double)done : 0;
        cli_duration_text(t, sizeof t, eta);
        fprintf(stderr, "%s: %zu/%zu (%d%%), %.1f s, about %s left\n", p->label, done, p->total,
                (int)(100.0 * (double)done / (double)(p->total ? p->total : 1)), elapsed, t);
    }
    fflush(stderr);
}

void cli_progress_update(cli_progress *p, size_t done)
{
    if (!p->enabled && !p->lines)
        return;
    double now = cli_now_seconds();
    if (p->lines) {
        progress_line(p, done, now - p->start);
        return;
    }
    if (done < p->total && now - p->last_draw < 0.2)
        return;
    p->last_draw = now;
    double elapsed = now - p->start;
    double eta = done ? elapsed * (double)(p->total - done) / (double)done : 0;
    char bar[40], t[32];
    cli_bar_text(bar, sizeof bar, done, p->total, 30);
    cli_duration_text(t, sizeof t, eta);
    fprintf(stderr, "\r%s %s %zu/%zu  %.1f/s  eta %s ", p->label, bar, done, p->total,
            elapsed > 0 ? (double)done / elapsed : 0.0, t);
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p)
{
    if (!p->enabled && !p->lines)
        return;
    cli_progress_update(p, p->total);
    if (p->enabled)
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
