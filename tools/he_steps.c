/*
 * he_steps.c: the steps of encrypted inference as the CLI runs them, shared
 * by the pipeline commands (cmd_compile/keygen/encrypt/evaluate/decrypt.c)
 * and by `predict`'s --keygen/--encrypt/--evaluate/--decrypt flags. The work
 * is the library's client layer (include/cryptodl/client.h, src/client/):
 * compiling the model or opening a plan file, key generation, encrypt /
 * evaluate / decrypt of one batch or a CDLPARTS container of batches, every
 * batch checked against the plan. What stays here is what a command line
 * adds: option parsing, files (mapped, not copied; written with the right
 * modes; no half-written file left behind), messages prefixed with the
 * command, hints naming the commands to run, and the progress display.
 *
 * Keys: secret.key, relin.key, public.key, and in slots packing galois.key
 * (the Galois keys of the plan's rotation steps, which the server needs with
 * relin.key; hundreds of MB, so mapped when loaded).
 */
#include "he_steps.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client_internal.h"

/* ---- model options and compilation ------------------------------------------ */

void he_model_args_init(he_model_args *a)
{
    memset(a, 0, sizeof *a);
}

static int parse_range(const char *cmd, const char *name, const char *arg, int lo, int hi, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end || errno || v < lo || v > hi) {
        cli_usage_error(cmd, "%s must be %d..%d, got '%s'", name, lo, hi, arg);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int he_model_option(const char *cmd, int c, const char *arg, he_model_args *a)
{
    switch (c) {
    case 'L': a->any_option = 1; return parse_range(cmd, "--log-n", arg, 13, 16, &a->opt.log_n) ? -1 : 1;
    case 'S': a->any_option = 1; return parse_range(cmd, "--scale-bits", arg, 20, 50, &a->opt.scale_bits) ? -1 : 1;
    case 'B': a->any_option = 1; return parse_range(cmd, "--output-bits", arg, 2, 30, &a->opt.output_bits) ? -1 : 1;
    case 'A':
        a->any_option = 1;
        if (!arg[0] || strlen(arg) > PLAN_APPROX_MAX) {
            cli_usage_error(cmd, "--approx needs a specification of 1..%d characters", PLAN_APPROX_MAX);
            return -1;
        }
        snprintf(a->opt.approx, sizeof a->opt.approx, "%s", arg);
        return 1;
    case 'M': a->any_option = 1; return cli_parse_packing(cmd, arg, &a->opt.packing) ? -1 : 1;
    case 'G': a->any_option = 1; return parse_range(cmd, "--max-galois-keys", arg, 1, 100000, &a->opt.max_galois_keys) ? -1 : 1;
    case 'Y': a->any_option = 1; return parse_range(cmd, "--max-galois-mb", arg, 1, 100000000, &a->opt.max_galois_mb) ? -1 : 1;
    case 'P': a->plan_path = arg; return 1;
    default: return 0;
    }
}

int he_model_open(const char *cmd, const char *path, const he_model_args *a, he_model *m)
{
    memset(m, 0, sizeof *m);
    m->path = path;
    if (a->plan_path && a->any_option)
        return cli_usage_error(cmd, "give either --plan FILE or --log-n/--scale-bits/--output-bits/--approx/--packing/"
                                    "--max-galois-keys/--max-galois-mb, not both (the plan file holds the options)");
    const uint8_t *model = NULL, *plan = NULL;
    size_t model_len = 0, plan_len = 0;
    if (he_map_file(cmd, path, &model, &model_len) != 0)
        return CLI_EXIT_FAILURE;
    if (a->plan_path && he_map_file(cmd, a->plan_path, &plan, &plan_len) != 0) {
        he_unmap_file(model, model_len);
        return CLI_EXIT_FAILURE;
    }
    cdl_status st;
    if (a->plan_path) {
        st = cdl_client_plan_open(model, model_len, path, plan, plan_len, a->plan_path, NULL, &m->cp);
    } else {
        cdl_client_options o;
        cdl_client_options_default(&o);
        o.packing = a->opt.packing;
        o.log_n = a->opt.log_n;
        o.scale_bits = a->opt.scale_bits;
        o.output_bits = a->opt.output_bits;
        o.approx = a->opt.approx[0] ? a->opt.approx : NULL;
        o.max_galois_keys = a->opt.max_galois_keys;
        o.max_galois_mb = a->opt.max_galois_mb;
        st = cdl_client_plan_compile(model, model_len, path, &o, &m->cp);
    }
    he_unmap_file(plan, plan_len);
    he_unmap_file(model, model_len);
    if (st != CDL_OK) {
        fprintf(stderr, "cryptodl %s: %s\n", cmd, cdl_last_error());
        if (st == CDL_ERR_MISMATCH && a->plan_path)
            fprintf(stderr, "Give the model the plan was compiled from, or compile this one again: cryptodl compile "
                            "%s --out %s\n", path, a->plan_path);
        return CLI_EXIT_FAILURE;
    }
    m->graph = cdl_client_plan_graph(m->cp);
    m->plan = cdl_client_plan_he(m->cp);
    m->ctx = cdl_client_plan_context(m->cp);
    m->rec = *cdl_client_plan_record(m->cp);
    if (m->rec.n_galois > PLAN_MAX_GALOIS) {
        fprintf(stderr, "cryptodl %s: this plan needs more than %d rotation steps, more than a plan file lists; "
                        "use --packing batch\n", cmd, PLAN_MAX_GALOIS);
        he_model_close(m);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

void he_model_close(he_model *m)
{
    cdl_client_plan_free(m->cp);
    memset(m, 0, sizeof *m);
}

int he_check_memory(const char *cmd, const cdl_he_plan *plan)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double ram = pages > 0 && page > 0 ? (double)pages * (double)page : 0;
    if (ram > 0 && (double)cdl_he_plan_memory(plan) > 0.9 * ram) {
        const int slots = cdl_he_plan_packing(plan) == CDL_HE_PACKING_SLOTS;
        fprintf(stderr,
                "cryptodl %s: evaluating this model needs about %.1f GB (%s; see --plan) but this machine has "
                "%.1f GB of RAM.\n%s, a larger machine, or --force to try anyway.\n",
                cmd, cdl_he_plan_memory(plan) / 1e9,
                slots ? "slots packing: the Galois keys, the encoded weights and a few ciphertexts"
                      : "batch packing keeps one ciphertext per neuron of the widest layers",
                ram / 1e9,
                slots ? "Use a smaller model" : "Use --packing slots, a narrower model (fewer channels, a stride in "
                                                "the first layers)");
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}

void he_shape_text(const cdl_nn_graph *g, char *buf, size_t cap)
{
    size_t at = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < g->input_shape.rank && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%lld", i ? ", " : "", (long long)g->input_shape.dims[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, g->input_shape.rank == 1 ? ",)" : ")");
}

/* ---- files ------------------------------------------------------------------ */

static int write_all(int fd, const uint8_t *data, size_t len)
{
    size_t at = 0;
    while (at < len) {
        ssize_t w = write(fd, data + at, len - at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        at += (size_t)w;
    }
    return 0;
}

int he_write_file(const char *cmd, const char *path, const uint8_t *data, size_t len, int secret)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, secret ? 0600 : 0644);
    if (fd < 0) {
        fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    /* an existing file keeps its mode through O_CREAT: a secret must end up private */
    if ((secret && fchmod(fd, 0600) != 0) || write_all(fd, data, len) != 0) {
        fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, path, strerror(errno));
        close(fd);
        return -1;
    }
    if (close(fd) != 0) {
        fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    return 0;
}

int he_map_file(const char *cmd, const char *path, const uint8_t **data, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        fprintf(stderr, "cryptodl %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "cryptodl %s: %s is not a regular file\n", cmd, path);
        close(fd);
        return -1;
    }
    if (st.st_size == 0) {
        fprintf(stderr, "cryptodl %s: %s is empty\n", cmd, path);
        close(fd);
        return -1;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        fprintf(stderr, "cryptodl %s: cannot read %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    *data = p;
    *len = (size_t)st.st_size;
    return 0;
}

void he_unmap_file(const uint8_t *data, size_t len)
{
    if (data)
        munmap((void *)data, len);
}

/* Drop the pages of a part already loaded from a mapped file (the client
 * layer's release hint): the resident size then holds one batch, not the
 * whole file (they are re-read from the file if touched again). */
static void release_pages(void *user, const uint8_t *data, size_t len)
{
    (void)user;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)data + page - 1) & ~(page - 1), hi = ((uintptr_t)data + len) & ~(page - 1);
    if (page && hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

/* A small file into a malloc'ed buffer (keys: wiped by the caller when secret). */
static int read_small(const char *cmd, const char *path, size_t max, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cryptodl %s: cannot open %s: %s\n", cmd, path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > max) {
        fprintf(stderr, "cryptodl %s: %s is not a key file (empty, not a regular file, or over %zu MB)\n", cmd, path,
                max >> 20);
        fclose(f);
        return -1;
    }
    uint8_t *buf = malloc((size_t)st.st_size);
    size_t got = buf ? fread(buf, 1, (size_t)st.st_size, f) : 0;
    fclose(f);
    if (!buf || got != (size_t)st.st_size) {
        fprintf(stderr, "cryptodl %s: cannot read %s\n", cmd, path);
        free(buf);
        return -1;
    }
    *data = buf;
    *len = got;
    return 0;
}

/* ---- keys ------------------------------------------------------------------- */

const char *he_key_path(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

const char *he_packing_name(const cdl_he_plan *plan)
{
    return cdl_he_plan_packing(plan) == CDL_HE_PACKING_SLOTS ? "slots" : "batch";
}

/* One key of `keys` to DIR/name; *bytes gets its size. */
static int write_key(const char *cmd, const cdl_client_keys *keys, cdl_client_key_kind kind, const char *dir,
                     const char *name, size_t *bytes)
{
    uint8_t *blob = NULL;
    char path[4096];
    if (cdl_client_keys_save(keys, kind, 0, &blob, bytes) != CDL_OK) {
        fprintf(stderr, "cryptodl %s: %s\n", cmd, cdl_last_error());
        return -1;
    }
    const int secret = kind == CDL_CLIENT_SECRET_KEY;
    int w = he_write_file(cmd, he_key_path(path, sizeof path, dir, name), blob, *bytes, secret);
    if (secret)
        memset(blob, 0, *bytes); /* the key bytes */
    cdl_free_bytes(blob);
    return w;
}

int he_keygen(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx, const char *dir,
              he_keygen_result *res)
{
    int rc = CLI_EXIT_FAILURE;
    cdl_client_plan *view = NULL;
    cdl_client_keys *keys = NULL;
    memset(res, 0, sizeof *res);
    double t0 = cli_now_seconds();
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cryptodl %s: cannot create %s: %s\n", cmd, dir, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    he_reporter rep;
    he_reporter_init(&rep);
    if (cdl_client_plan_view(plan, ctx, &view) != CDL_OK ||
        cdl_client_keygen(view, CDL_CLIENT_KEYGEN_PUBLIC, he_report, &rep, &keys) != CDL_OK) {
        fprintf(stderr, "cryptodl %s: %s\n", cmd, cdl_last_error());
        goto done;
    }
    if (write_key(cmd, keys, CDL_CLIENT_SECRET_KEY, dir, "secret.key", &res->secret_bytes) != 0 ||
        write_key(cmd, keys, CDL_CLIENT_RELIN_KEY, dir, "relin.key", &res->relin_bytes) != 0 ||
        write_key(cmd, keys, CDL_CLIENT_PUBLIC_KEY, dir, "public.key", &res->public_bytes) != 0)
        goto done;
    if (cdl_client_keys_has(keys, CDL_CLIENT_GALOIS_KEYS)) {
        cdl_he_plan_galois_steps(plan, NULL, &res->galois_steps);
        if (write_key(cmd, keys, CDL_CLIENT_GALOIS_KEYS, dir, "galois.key", &res->galois_bytes) != 0)
            goto done;
    }
    res->seconds = cli_now_seconds() - t0;
    rc = CLI_EXIT_OK;
done:
    cdl_client_keys_free(keys);
    cdl_client_plan_free(view);
    return rc;
}

int he_load_key(const char *cmd, const cdl_ckks_context *ctx, const char *path, he_key_kind kind, void **key)
{
    /* he_key_kind and cdl_client_key_kind list the kinds in the same order */
    static const cdl_client_key_kind lib_kind[] = {CDL_CLIENT_SECRET_KEY, CDL_CLIENT_PUBLIC_KEY, CDL_CLIENT_RELIN_KEY,
                                                   CDL_CLIENT_GALOIS_KEYS};
    static const char *const what[] = {"secret key", "public key", "relinearization key", "Galois key set"};
    *key = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cryptodl %s: cannot open %s (the %s): %s\n", cmd, path, what[kind], strerror(errno));
        return -1;
    }
    /* the kind from the first bytes: a secret key is refused before the rest of it is read */
    uint8_t head[8];
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got == sizeof head && cdl_client_key_check_kind(head, sizeof head, lib_kind[kind], path) != CDL_OK) {
        fprintf(stderr, "cryptodl %s: %s\n", cmd, cdl_last_error());
        return -1;
    }
    const uint8_t *mapped = NULL;
    uint8_t *d = NULL;
    size_t len = 0;
    if (kind == HE_KEY_GALOIS) { /* from a mapping of the file: they can be larger than memory allows twice */
        if (he_map_file(cmd, path, &mapped, &len) != 0)
            return -1;
    } else if (read_small(cmd, path, (size_t)1 << 30, &d, &len) != 0) {
        return -1;
    }
    cdl_status st = cdl_client_key_load(ctx, lib_kind[kind], mapped ? mapped : d, len, path, key);
    if (d && kind == HE_KEY_SECRET)
        memset(d, 0, len);
    free(d);
    he_unmap_file(mapped, len);
    if (st != CDL_OK) {
        fprintf(stderr, "cryptodl %s: %s\n", cmd, cdl_last_error());
        return -1;
    }
    return 0;
}

const char *he_galois_path_near(char *buf, size_t cap, const char *relin_path)
{
    const char *slash = strrchr(relin_path, '/');
    if (!slash)
        snprintf(buf, cap, "galois.key");
    else
        snprintf(buf, cap, "%.*s/galois.key", (int)(slash - relin_path), relin_path);
    return buf;
}

int he_check_galois(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_galois_keys *gk, const char *path)
{
    cdl_status st = cdl_client_check_galois(plan, gk, path);
    if (st == CDL_OK)
        return 0;
    fprintf(stderr, "cryptodl %s: %s", cmd, cdl_last_error());
    if (st == CDL_ERR_MISMATCH)
        fprintf(stderr, " Make the keys again with this model and plan (cryptodl keygen MODEL --plan plan.json --keys "
                        "DIR) and give the new galois.key");
    fputc('\n', stderr);
    return -1;
}

int he_load_galois(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx, const char *path,
                   cdl_ckks_galois_keys **gk)
{
    *gk = NULL;
    if (cdl_he_plan_packing(plan) != CDL_HE_PACKING_SLOTS)
        return 0;
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "cryptodl %s: this plan uses slots packing, which needs the client's Galois keys, but %s "
                        "does not exist: cryptodl keygen with this plan writes galois.key next to relin.key; give "
                        "it with --galois-key FILE\n", cmd, path);
        return -1;
    }
    if (he_load_key(cmd, ctx, path, HE_KEY_GALOIS, (void **)gk) != 0)
        return -1;
    if (he_check_galois(cmd, plan, *gk, path) != 0) {
        cdl_ckks_galois_keys_free(*gk);
        *gk = NULL;
        return -1;
    }
    return 0;
}

/* ---- batch files ------------------------------------------------------------ */

/* The client layer's output into a FILE; the first write error is kept. */
typedef struct file_sink {
    FILE *f;
    int err;
} file_sink;

static int file_write(void *user, const uint8_t *data, size_t len)
{
    file_sink *s = user;
    if (fwrite(data, 1, len, s->f) == len)
        return 0;
    s->err = errno ? errno : EIO;
    return -1;
}

static FILE *open_out(const char *cmd, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, path, strerror(errno));
    return f;
}

static int close_out(const char *cmd, const char *path, FILE *f, int ok)
{
    if (fclose(f) != 0 && ok) {
        fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, path, strerror(errno));
        ok = 0;
    }
    if (!ok)
        unlink(path); /* no half-written file left behind */
    return ok ? 0 : -1;
}

/* The message of a failed client-layer step that wrote to `out`. */
static void step_failed(const char *cmd, cdl_status st, const file_sink *sink, const char *out)
{
    if (st == CDL_ERR_IO && sink->err)
        fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, out, strerror(sink->err));
    else
        fprintf(stderr, "cryptodl %s: %s\n", cmd, cdl_last_error());
}

int he_encrypt_file(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                    const cdl_ckks_public_key *pk, const cdl_ckks_secret_key *sk, const double *images, size_t n,
                    const char *out, he_file_stats *st)
{
    memset(st, 0, sizeof *st);
    cdl_client_plan *view = NULL;
    cdl_client_keys *keys = NULL;
    if (cdl_client_plan_view(plan, ctx, &view) != CDL_OK ||
        cdl_client_keys_view(view, pk ? NULL : sk, pk, NULL, NULL, &keys) != CDL_OK) {
        cdl_client_plan_free(view);
        return cli_fail_status(cmd, "cannot start the random number generator");
    }
    int rc = CLI_EXIT_FAILURE;
    file_sink sink = {open_out(cmd, out), 0};
    if (sink.f) {
        he_reporter rep;
        he_reporter_init(&rep);
        cdl_client_stream io = {NULL, file_write, &sink, he_report, &rep, NULL, NULL};
        cdl_client_stats cs;
        cdl_status s = cdl_client_encrypt(view, keys, images, CDL_CLIENT_F64, n, pk != NULL, &io, &cs);
        if (s != CDL_OK)
            step_failed(cmd, s, &sink, out);
        if (close_out(cmd, out, sink.f, s == CDL_OK) == 0) {
            st->images = cs.images;
            st->batches = cs.batches;
            st->bytes = cs.bytes;
            st->seconds = cs.seconds;
            rc = CLI_EXIT_OK;
        }
    }
    cdl_client_keys_free(keys);
    cdl_client_plan_free(view);
    return rc;
}

int he_evaluate_file(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                     const cdl_ckks_relin_key *rlk, const cdl_ckks_galois_keys *gk, const char *in, const char *out,
                     he_file_stats *st)
{
    memset(st, 0, sizeof *st);
    struct stat si, so;
    if (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
        fprintf(stderr, "cryptodl %s: --out %s is the input file: give another name\n", cmd, out);
        return CLI_EXIT_USAGE; /* writing it would truncate the batch being read */
    }
    if (he_check_galois(cmd, plan, gk, NULL) != 0)
        return CLI_EXIT_FAILURE;
    const uint8_t *data = NULL;
    size_t len = 0;
    if (he_map_file(cmd, in, &data, &len) != 0)
        return CLI_EXIT_FAILURE;
    cdl_client_plan *view = NULL;
    cdl_client_keys *keys = NULL;
    int rc = CLI_EXIT_FAILURE;
    if (cdl_client_plan_view(plan, ctx, &view) != CDL_OK ||
        cdl_client_keys_view(view, NULL, NULL, rlk, gk, &keys) != CDL_OK) {
        cli_fail_status(cmd, "cannot prepare the evaluation");
        goto done;
    }
    file_sink sink = {open_out(cmd, out), 0};
    if (!sink.f)
        goto done;
    he_reporter rep;
    he_reporter_init(&rep);
    cdl_client_stream io = {in, file_write, &sink, he_report, &rep, release_pages, NULL};
    cdl_client_stats cs;
    cdl_status s = cdl_client_evaluate(view, keys, data, len, &io, &cs);
    if (s != CDL_OK)
        step_failed(cmd, s, &sink, out);
    if (close_out(cmd, out, sink.f, s == CDL_OK) == 0) {
        st->images = cs.images;
        st->batches = cs.batches;
        st->bytes = cs.bytes;
        st->seconds = cs.seconds;
        rc = CLI_EXIT_OK;
    }
done:
    cdl_client_keys_free(keys);
    cdl_client_plan_free(view);
    he_unmap_file(data, len);
    return rc;
}

int he_decrypt_file(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                    const cdl_ckks_secret_key *sk, const char *in, const cdl_ckks_flood_options *flood,
                    cdl_ckks_flood_info *flood_info, double **logits, size_t *n)
{
    const uint8_t *data = NULL;
    size_t len = 0;
    *logits = NULL;
    *n = 0;
    if (he_map_file(cmd, in, &data, &len) != 0)
        return CLI_EXIT_FAILURE;
    cdl_client_plan *view = NULL;
    cdl_client_keys *keys = NULL;
    int rc = CLI_EXIT_FAILURE;
    if (cdl_client_plan_view(plan, ctx, &view) != CDL_OK ||
        cdl_client_keys_view(view, sk, NULL, NULL, NULL, &keys) != CDL_OK) {
        cli_fail_status(cmd, "cannot open the system random generator");
        goto done;
    }
    cdl_client_stream io = {in, NULL, NULL, NULL, NULL, NULL, NULL};
    cdl_status s = cdl_client_decrypt(view, keys, data, len, flood, &io, logits, n, flood_info);
    if (s != CDL_OK) {
        fprintf(stderr, "cryptodl %s: %s\n", cmd, cdl_last_error());
        if (flood)
            he_flood_hint(cmd, s);
    } else {
        rc = CLI_EXIT_OK;
    }
done:
    cdl_client_keys_free(keys);
    cdl_client_plan_free(view);
    he_unmap_file(data, len);
    return rc;
}

/* ---- progress --------------------------------------------------------------- */

void he_reporter_init(he_reporter *r)
{
    memset(r, 0, sizeof *r);
    r->layer = -1;
    r->t_start = r->t_layer = cli_now_seconds();
}

static void report_keygen(he_reporter *r, const cdl_client_progress *p)
{
    if (!r->step) {
        r->step = p->step;
        cli_progress_begin(&r->bar, "  keys", p->total);
    }
    cli_progress_update(&r->bar, p->done);
    if (p->done == p->total && !strcmp(p->stage, "done"))
        cli_progress_finish(&r->bar);
}

static void report_encrypt(he_reporter *r, const cdl_client_progress *p)
{
    const cli_style style = cli_progress_style();
    if (!r->step) {
        r->step = p->step;
        cli_progress_start(&r->bar, "  encrypt", p->total); /* the bar; lines below */
    }
    if (style == CLI_STYLE_BAR) {
        cli_progress_update(&r->bar, p->done);
        if (p->done == p->total)
            cli_progress_finish(&r->bar);
        return;
    }
    if (style != CLI_STYLE_LINES || p->batches < 2 || p->batch >= p->batches)
        return;
    const size_t at = p->done, b = p->batch_images;
    fprintf(stderr, "  batch %zu/%zu: images %zu..%zu", p->batch + 1, p->batches, at, at + b - 1);
    if (at > 0) {
        char t[32];
        const double el = cli_now_seconds() - r->t_start;
        cli_duration_text(t, sizeof t, el * (double)(p->total - at) / (double)at);
        fprintf(stderr, " (about %s left)", t);
    }
    fputc('\n', stderr);
}

static void report_evaluate(he_reporter *r, const cdl_client_progress *p)
{
    const cli_style style = cli_progress_style();
    if (style == CLI_STYLE_NONE)
        return;
    if (!r->step || p->batch != r->batch) { /* a new batch */
        if (r->step && p->batches > 1) {
            const double now = cli_now_seconds(), per = (now - r->t_start) / (double)p->batch;
            char t[32];
            cli_duration_text(t, sizeof t, per * (double)(p->batches - p->batch));
            fprintf(stderr, "  %zu/%zu batches done, %.1f s per batch, about %s left\n", p->batch, p->batches, per,
                    t);
        }
        r->step = p->step;
        r->batch = p->batch;
        r->layer = -1;
        if (p->batches > 1)
            fprintf(stderr, "batch %zu/%zu: %zu images\n", p->batch + 1, p->batches, p->batch_images);
        r->t_layer = cli_now_seconds();
    }
    if (p->layer != r->layer) {
        r->layer = p->layer;
        snprintf(r->label, sizeof r->label, "  layer %d %.40s", p->layer + 1, p->stage);
        cli_progress_start(&r->bar, r->label, p->total);
    }
    cli_progress_update(&r->bar, p->done);
    if (p->done == p->total) {
        if (r->bar.enabled)
            fputc('\n', stderr);
        double now = cli_now_seconds();
        fprintf(stderr, "  layer %d %-24.24s %6zu ciphertexts  %7.2f s\n", p->layer + 1, p->stage, p->total,
                now - r->t_layer);
        r->t_layer = now; /* the next layer starts now */
    }
}

void he_report(void *user, const cdl_client_progress *p)
{
    he_reporter *r = user;
    if (!strcmp(p->step, "keygen"))
        report_keygen(r, p);
    else if (!strcmp(p->step, "encrypt"))
        report_encrypt(r, p);
    else if (!strcmp(p->step, "evaluate"))
        report_evaluate(r, p);
}

/* ---- noise flooding ------------------------------------------------------------ */

int he_flood_option(const char *cmd, int c, const char *arg, int argc, char **argv, cdl_ckks_flood_options *fl)
{
    if (c == 'q') {
        char *end = NULL;
        errno = 0;
        double q = strtod(arg, &end);
        if (end == arg || *end || errno || !(q >= 1.0) || q > 1e15) {
            cli_usage_error(cmd, "--flood-queries must be a number of decryptions >= 1, got '%s'", arg);
            return -1;
        }
        fl->queries = q;
        return 1;
    }
    if (c != 'f')
        return 0;
    /* getopt_long hands an optional argument over only as --flood=BITS: take
     * "--flood BITS" too when the next argument is a number */
    if (!arg && optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9' &&
        strspn(argv[optind], "0123456789") == strlen(argv[optind]))
        arg = argv[optind++];
    if (!arg) {
        fl->security_bits = CDL_CKKS_FLOOD_DEFAULT_BITS;
        return 1;
    }
    return parse_range(cmd, "--flood BITS", arg, 20, 128, &fl->security_bits) ? -1 : 1;
}

void he_flood_hint(const char *cmd, cdl_status st)
{
    if (st == CDL_ERR_PARAMETERS)
        fprintf(stderr, "cryptodl %s: the plan leaves no room for flooding noise at its output: compile the model "
                        "with a larger --scale-bits (e.g. 50), which also enlarges the last prime, on the client "
                        "and the server\n",
                cmd);
}

int he_flood_report(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_flood_options *fl,
                    const cdl_ckks_flood_info *info, const double *logits, size_t count, int refuse)
{
    double top = 0.0;
    for (size_t i = 0; i < count; i++)
        top = fabs(logits[i]) > top ? fabs(logits[i]) : top;
    const double limit =
        HE_FLOOD_MAX_RELATIVE_ERROR * top > HE_FLOOD_MAX_LOGIT_ERROR ? HE_FLOOD_MAX_RELATIVE_ERROR * top
                                                                     : HE_FLOOD_MAX_LOGIT_ERROR;
    const double q = info->queries >= 1.0 ? info->queries : 1.0;
    fprintf(stderr,
            "cryptodl %s: flooding: %d-bit statistical security for %.0f decryption%s (IND-CPA-D); noise bound "
            "2^%.0f, sigma 2^%.1f per coefficient, rms error %.2g per logit\n",
            cmd, fl->security_bits, q, q == 1.0 ? "" : "s", info->noise_log2, info->sigma_log2, info->slot_error);
    if (!(info->slot_error > limit))
        return 0;
    const cdl_ckks_param_spec *sp = cdl_he_plan_params(plan);
    const double scale_bits = log2(sp->scale);
    fprintf(stderr,
            "cryptodl %s: %s: flooding adds an rms error of %.2g to every logit (more than %.2g, 1%% of the largest "
            "|logit| or 0.05): this plan's "
            "scale 2^%.0f leaves too little precision for it. %s; fewer --flood bits or queries weaken the "
            "protection (30 bits is the least docs/security.md recommends)\n",
            cmd, refuse ? "refused" : "warning", info->slot_error, limit, scale_bits,
            scale_bits < 49.5 ? "Compile the model with a larger --scale-bits (up to 50; each bit halves the error) "
                                "for results you share"
                              : "The scale is already the largest the compiler offers: share labels (argmax) "
                                "instead of logits");
    return refuse ? -1 : 0;
}

size_t he_argmax(const double *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}
