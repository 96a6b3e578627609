/*
 * results_file.c: the per-image results of a long `predict` run (see
 * results_file.h), resumable after an interruption.
 */
#include "results_file.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define RESULTS_FORMAT 1
#define RESULTS_MAX_INDEX 100000000

static int grow(results_file *rf, size_t need)
{
    if (need <= rf->cap)
        return 0;
    size_t cap = rf->cap ? rf->cap : 64;
    while (cap < need)
        cap *= 2;
    result_line *l = realloc(rf->lines, cap * sizeof *l);
    if (!l)
        return -1;
    rf->lines = l;
    rf->cap = cap;
    return 0;
}

/* Write all of buf (retrying short writes), then flush it to the disk. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return fsync(fd);
}

static int header_text(const results_run *run, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "{\"cryptodl_results\":%d,\"model_sha256\":\"%s\",\"dataset\":\"%s\",\"packing\":\"%s\","
                     "\"log_n\":%d,\"levels\":%d,\"scale_bits\":%d}\n",
                     RESULTS_FORMAT, run->sha256, run->dataset, run->packing, run->log_n, run->levels,
                     run->scale_bits);
    return n > 0 && (size_t)n < cap ? n : -1;
}

static int get_int_field(json_t *o, const char *key, long long lo, long long hi, long long *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_integer(x) || json_integer_value(x) < lo || json_integer_value(x) > hi)
        return -1;
    *v = json_integer_value(x);
    return 0;
}

static int get_num_field(json_t *o, const char *key, double *v)
{
    json_t *x = json_object_get(o, key);
    if (!json_is_number(x))
        return -1;
    *v = json_number_value(x);
    return *v >= 0 ? 0 : -1;
}

/* One result line; 0 when it is image `want`. */
static int parse_line(const char *text, size_t len, size_t want, result_line *out, char *why, size_t cap)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, 0, &jerr);
    long long image, label, pc, ec;
    int bad = -1;
    if (!json_is_object(o))
        snprintf(why, cap, "not a JSON object (%.100s)", o ? "another JSON value" : jerr.text);
    else if (get_int_field(o, "image", 0, RESULTS_MAX_INDEX, &image) || get_int_field(o, "label", 0, 1000000, &label) ||
             get_int_field(o, "plaintext_class", 0, 1000000, &pc) ||
             get_int_field(o, "encrypted_class", 0, 1000000, &ec) ||
             get_num_field(o, "max_abs_logit_diff", &out->max_abs_logit_diff) ||
             get_num_field(o, "max_abs_logit", &out->max_abs_logit) || get_num_field(o, "seconds", &out->seconds))
        snprintf(why, cap, "a field of a result line is missing or out of range");
    else if ((size_t)image != want)
        snprintf(why, cap, "it is image %lld, but image %zu comes next", image, want);
    else {
        out->image = (size_t)image;
        out->label = (int)label;
        out->plaintext_class = (int)pc;
        out->encrypted_class = (int)ec;
        bad = 0;
    }
    json_decref(o);
    return bad;
}

/* The header (line 1) of an existing file: 0 when it names this run. */
static int check_header(const char *cmd, const char *path, const char *text, size_t len, const results_run *run)
{
    char want[512];
    if (header_text(run, want, sizeof want) < 0)
        return -1;
    json_t *a = json_loadb(text, len, 0, NULL), *b = json_loads(want, 0, NULL);
    int same = a && b && json_equal(a, b);
    int ours = a && json_is_object(a) && json_is_integer(json_object_get(a, "cryptodl_results"));
    json_decref(a);
    json_decref(b);
    if (same)
        return 0;
    if (!ours)
        fprintf(stderr, "cryptodl %s: %s is not a results file of `cryptodl predict` (its first line is not one); "
                        "give another --results FILE\n", cmd, path);
    else
        fprintf(stderr, "cryptodl %s: %s holds the results of another run (%.*s), not of this one (%.*s); give "
                        "another --results FILE to keep both, or remove it to start again\n",
                cmd, path, (int)(len > 200 ? 200 : len), text, (int)strcspn(want, "\n"), want);
    return -1;
}

/* Read the lines of an existing file into rf; a last line without its
 * newline (cut short by a crash) is cut off the file. */
static int load_existing(const char *cmd, results_file *rf, const results_run *run)
{
    struct stat st;
    if (fstat(rf->fd, &st) != 0) {
        fprintf(stderr, "cryptodl %s: cannot read %s: %s\n", cmd, rf->path, strerror(errno));
        return -1;
    }
    size_t size = (size_t)st.st_size;
    if (size == 0)
        return 1; /* new */
    char *buf = malloc(size + 1);
    if (!buf) {
        fprintf(stderr, "cryptodl %s: out of memory reading %s\n", cmd, rf->path);
        return -1;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(rf->fd, buf + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int rc = -1;
    if (got != size) {
        fprintf(stderr, "cryptodl %s: cannot read %s: %s\n", cmd, rf->path, got < size ? "short read" : "");
        goto out;
    }
    size_t complete = size; /* bytes up to the last newline */
    while (complete > 0 && buf[complete - 1] != '\n')
        complete--;
    if (complete < size) {
        fprintf(stderr, "cryptodl %s: %s ends in an unfinished line (an interrupted write): dropped\n", cmd,
                rf->path);
        if (ftruncate(rf->fd, (off_t)complete) != 0) {
            fprintf(stderr, "cryptodl %s: cannot truncate %s: %s\n", cmd, rf->path, strerror(errno));
            goto out;
        }
    }
    if (complete == 0) {
        rc = 1; /* nothing but a partial header: start again */
        goto out;
    }
    size_t line_no = 0;
    for (size_t at = 0; at < complete; line_no++) {
        const char *nl = memchr(buf + at, '\n', complete - at);
        const size_t len = nl ? (size_t)(nl - (buf + at)) : complete - at;
        if (line_no == 0) {
            if (check_header(cmd, rf->path, buf + at, len, run) != 0)
                goto out;
        } else {
            char why[160];
            if (grow(rf, rf->n + 1) != 0) {
                fprintf(stderr, "cryptodl %s: out of memory reading %s\n", cmd, rf->path);
                goto out;
            }
            if (parse_line(buf + at, len, rf->n, &rf->lines[rf->n], why, sizeof why) != 0) {
                fprintf(stderr, "cryptodl %s: line %zu of %s: %s; the file is damaged or was edited: give another "
                                "--results FILE\n", cmd, line_no + 1, rf->path, why);
                goto out;
            }
            rf->n++;
        }
        at += len + 1;
    }
    rc = 0;
out:
    free(buf);
    return rc;
}

int results_open(const char *cmd, const char *path, const results_run *run, results_file *rf)
{
    memset(rf, 0, sizeof *rf);
    rf->fd = -1;
    rf->path = path;
    if (!path)
        return 0;
    rf->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (rf->fd < 0) {
        fprintf(stderr, "cryptodl %s: cannot open --results %s: %s\n", cmd, path, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    if (flock(rf->fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "cryptodl %s: %s is being written by another run (it is locked); wait for it or give "
                        "another --results FILE\n", cmd, path);
        results_close(rf);
        return CLI_EXIT_FAILURE;
    }
    int st = load_existing(cmd, rf, run);
    if (st < 0) {
        results_close(rf);
        return CLI_EXIT_FAILURE;
    }
    if (st == 1) { /* a new file: its header */
        char h[512];
        int len = header_text(run, h, sizeof h);
        if (len < 0 || write_all(rf->fd, h, (size_t)len) != 0) {
            fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, path, strerror(errno));
            results_close(rf);
            return CLI_EXIT_FAILURE;
        }
    }
    rf->resumed = rf->n;
    return 0;
}

int results_append(const char *cmd, results_file *rf, const result_line *lines, size_t n)
{
    if (grow(rf, rf->n + n) != 0) {
        fprintf(stderr, "cryptodl %s: out of memory\n", cmd);
        return CLI_EXIT_FAILURE;
    }
    size_t cap = 256 * (n ? n : 1), len = 0;
    char *buf = rf->fd >= 0 ? malloc(cap) : NULL;
    if (rf->fd >= 0 && !buf) {
        fprintf(stderr, "cryptodl %s: out of memory\n", cmd);
        return CLI_EXIT_FAILURE;
    }
    for (size_t i = 0; i < n; i++) {
        result_line l = lines[i];
        l.image = rf->n + i;
        rf->lines[rf->n + i] = l;
        if (buf)
            len += (size_t)snprintf(buf + len, cap - len,
                                    "{\"image\":%zu,\"label\":%d,\"plaintext_class\":%d,\"encrypted_class\":%d,"
                                    "\"max_abs_logit_diff\":%.3e,\"max_abs_logit\":%.4f,\"seconds\":%.3f}\n",
                                    l.image, l.label, l.plaintext_class, l.encrypted_class, l.max_abs_logit_diff,
                                    l.max_abs_logit, l.seconds);
    }
    rf->n += n;
    int rc = 0;
    if (buf && (len >= cap || write_all(rf->fd, buf, len) != 0)) {
        fprintf(stderr, "cryptodl %s: cannot append to %s: %s\n", cmd, rf->path, strerror(errno));
        rc = CLI_EXIT_FAILURE;
    }
    free(buf);
    return rc;
}

void results_close(results_file *rf)
{
    if (rf->fd >= 0)
        close(rf->fd);
    free(rf->lines);
    memset(rf, 0, sizeof *rf);
    rf->fd = -1;
}
