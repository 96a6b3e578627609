/*
 * he_steps.c: the steps of encrypted inference as the CLI runs them, shared
 * by the pipeline commands (cmd_compile/keygen/encrypt/evaluate/decrypt.c)
 * and by `predict`'s --keygen/--encrypt/--evaluate/--decrypt flags: compiling
 * the model (from options or a plan file), key files, encrypted batch files,
 * progress. See he_steps.h.
 *
 * Batch files: one batch is cdl_he_batch_save's format as is (what `predict
 * --encrypt` always wrote); more images than one batch holds (N/2 in batch
 * packing, a few in slots packing) go into a CDLPARTS container
 * (src/data/user_files.c) of batches, each checked by cdl_he_batch_load when
 * read. Large files are mapped, not copied.
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

#define HE_MAX_PARTS ((size_t)1 << 16)

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

void he_model_close(he_model *m)
{
    cdl_he_plan_free(m->plan);
    cdl_nn_graph_free(m->graph);
    memset(m, 0, sizeof *m);
}

int he_model_open(const char *cmd, const char *path, const he_model_args *a, he_model *m)
{
    memset(m, 0, sizeof *m);
    m->path = path;
    if (a->plan_path && a->any_option)
        return cli_usage_error(cmd, "give either --plan FILE or --log-n/--scale-bits/--output-bits/--approx/--packing/"
                                    "--max-galois-keys/--max-galois-mb, not both (the plan file holds the options)");
    char err[512], sha[65];
    if (plan_sha256_file(path, sha, err, sizeof err) != 0) {
        fprintf(stderr, "cryptodl %s: %s\n", cmd, err);
        return CLI_EXIT_FAILURE;
    }
    plan_record from_file;
    plan_options opt = a->opt;
    int packing = opt.packing; /* what the compiler is asked for */
    if (a->plan_path) {
        const uint8_t *data = NULL;
        size_t len = 0;
        if (he_map_file(cmd, a->plan_path, &data, &len) != 0)
            return CLI_EXIT_FAILURE;
        int bad = plan_record_parse(data, len, &from_file, err, sizeof err);
        he_unmap_file(data, len);
        if (bad) {
            fprintf(stderr, "cryptodl %s: %s is not a usable plan file: %s\n", cmd, a->plan_path, err);
            return CLI_EXIT_FAILURE;
        }
        if (strcmp(from_file.sha256, sha)) {
            fprintf(stderr,
                    "cryptodl %s: %s was made for another model: it records SHA-256 %s, but %s has %s.\n"
                    "Give the model the plan was compiled from, or compile this one: cryptodl compile %s --out %s\n",
                    cmd, a->plan_path, from_file.sha256, path, sha, path, a->plan_path);
            return CLI_EXIT_FAILURE;
        }
        opt = from_file.opt;
        packing = from_file.packing; /* as decided then (auto is not decided again) */
    }
    if (!opt.output_bits)
        opt.output_bits = 10;
    if (cdl_nn_load_file(path, &m->graph) != CDL_OK)
        return cli_fail_status(cmd, "cannot import the model");
    if (opt.approx[0] && cdl_nn_apply_approx(m->graph, opt.approx, NULL) != CDL_OK) {
        he_model_close(m);
        return cli_fail_status(cmd, "cannot apply --approx");
    }
    cdl_he_options ho;
    cdl_he_options_default(&ho);
    ho.log_n = opt.log_n;
    ho.scale_bits = opt.scale_bits;
    ho.output_bits = opt.output_bits;
    ho.packing = packing;
    ho.max_galois_keys = opt.max_galois_keys;
    ho.max_galois_bytes = (uint64_t)opt.max_galois_mb * 1000000u;
    ho.cache_weights = 1; /* slots: weights encoded once for all the batches of a file */
    if (cdl_he_plan_new(m->graph, &ho, &m->plan) != CDL_OK) {
        int rc = cli_fail_status(cmd, "cannot compile the model for encrypted inference");
        he_model_close(m);
        return rc;
    }
    plan_record_from(m->plan, m->graph, &opt, sha, &m->rec);
    if (m->rec.n_galois > PLAN_MAX_GALOIS) {
        fprintf(stderr, "cryptodl %s: this plan needs more than %d rotation steps, more than a plan file lists; "
                        "use --packing batch\n", cmd, PLAN_MAX_GALOIS);
        he_model_close(m);
        return CLI_EXIT_FAILURE;
    }
    if (a->plan_path && plan_record_compare(&from_file, &m->rec, err, sizeof err) != 0) {
        fprintf(stderr, "cryptodl %s: %s does not match this model and build: %s. Compile again: cryptodl compile %s "
                        "--out %s\n", cmd, a->plan_path, err, path, a->plan_path);
        he_model_close(m);
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
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

/* Drop the pages of a part already loaded from a mapped file: the resident
 * size then holds one batch, not the whole file (they are re-read from the
 * file if touched again). */
static void release_part(const uint8_t *map, const cdl_part *p)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p->data + page - 1) & ~(page - 1), hi = ((uintptr_t)p->data + p->len) & ~(page - 1);
    if (page && hi > lo && lo >= (uintptr_t)map)
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

/* Slots packing: DIR/galois.key, the Galois keys of the plan's rotation steps. */
static int write_galois(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                        const cdl_ckks_secret_key *sk, cdl_rng *rng, const char *dir, he_keygen_result *res)
{
    cdl_ckks_galois_keys *gk = NULL;
    uint8_t *blob = NULL;
    char path[4096];
    int rc = -1;
    cdl_he_plan_galois_steps(plan, NULL, &res->galois_steps);
    if (cdl_he_keygen_galois(plan, ctx, sk, rng, &gk) != CDL_OK)
        cli_fail_status(cmd, "Galois key generation failed");
    else if (cdl_ckks_galois_keys_save(ctx, gk, 0, &blob, &res->galois_bytes) != CDL_OK)
        cli_fail_status(cmd, "cannot serialize the Galois keys");
    else if (he_write_file(cmd, he_key_path(path, sizeof path, dir, "galois.key"), blob, res->galois_bytes, 0) == 0)
        rc = 0;
    cdl_free_bytes(blob);
    cdl_ckks_galois_keys_free(gk);
    return rc;
}

int he_keygen(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx, const char *dir,
              he_keygen_result *res)
{
    int rc = CLI_EXIT_FAILURE;
    cdl_rng *rng = NULL;
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_public_key *pk = NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    char path[4096];
    memset(res, 0, sizeof *res);
    double t0 = cli_now_seconds();
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "cryptodl %s: cannot create %s: %s\n", cmd, dir, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    if (cdl_rng_new_system(&rng) != CDL_OK || cdl_ckks_keygen_secret(ctx, rng, &sk) != CDL_OK ||
        cdl_ckks_keygen_relin(ctx, sk, rng, &rlk) != CDL_OK || cdl_ckks_keygen_public(ctx, sk, rng, &pk) != CDL_OK) {
        rc = cli_fail_status(cmd, "key generation failed");
        goto done;
    }
    if (cdl_ckks_secret_key_save(ctx, sk, 0, &blob, &len) != CDL_OK) {
        rc = cli_fail_status(cmd, "cannot serialize the secret key");
        goto done;
    }
    int w = he_write_file(cmd, he_key_path(path, sizeof path, dir, "secret.key"), blob, len, 1);
    memset(blob, 0, len); /* the key bytes */
    cdl_free_bytes(blob);
    blob = NULL;
    res->secret_bytes = len;
    if (w != 0)
        goto done;
    if (cdl_ckks_relin_key_save(ctx, rlk, 0, &blob, &res->relin_bytes) != CDL_OK) {
        rc = cli_fail_status(cmd, "cannot serialize the relinearization key");
        goto done;
    }
    if (he_write_file(cmd, he_key_path(path, sizeof path, dir, "relin.key"), blob, res->relin_bytes, 0) != 0)
        goto done;
    cdl_free_bytes(blob);
    blob = NULL;
    if (cdl_ckks_public_key_save(ctx, pk, 0, &blob, &res->public_bytes) != CDL_OK) {
        rc = cli_fail_status(cmd, "cannot serialize the public key");
        goto done;
    }
    if (he_write_file(cmd, he_key_path(path, sizeof path, dir, "public.key"), blob, res->public_bytes, 0) != 0)
        goto done;
    if (cdl_he_plan_packing(plan) == CDL_HE_PACKING_SLOTS && write_galois(cmd, plan, ctx, sk, rng, dir, res) != 0)
        goto done;
    res->seconds = cli_now_seconds() - t0;
    rc = CLI_EXIT_OK;
done:
    cdl_free_bytes(blob);
    cdl_ckks_public_key_free(pk);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(rng);
    return rc;
}

/* Object types of the serialization envelope (src/core/bytes.h): "CDL\0",
 * u16 version, u16 type. */
static const char *const key_type_names[] = {"?", "parameter set", "secret key", "public key",
                                             "relinearization key", "Galois key set", "plaintext", "ciphertext",
                                             "plan"};

int he_context_with_key(const char *cmd, const cdl_he_plan *plan, const char *key_path, he_key_kind kind,
                        cdl_ckks_context **ctx, void **key)
{
    *key = NULL;
    if (cdl_he_context_new(plan, ctx) != CDL_OK)
        return cli_fail_status(cmd, "cannot build the CKKS context");
    return he_load_key(cmd, *ctx, key_path, kind, key) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* Galois keys: from a mapping of the file (they can be larger than memory allows twice). */
static int load_galois_file(const char *cmd, const cdl_ckks_context *ctx, const char *path, void **key)
{
    const uint8_t *d = NULL;
    size_t len = 0;
    if (he_map_file(cmd, path, &d, &len) != 0)
        return -1;
    cdl_status st = cdl_ckks_galois_keys_load(ctx, d, len, (cdl_ckks_galois_keys **)key);
    he_unmap_file(d, len);
    if (st != CDL_OK) {
        fprintf(stderr, "cryptodl %s: %s: %s (made for another model or other --log-n/--scale-bits?)\n", cmd, path,
                cdl_last_error());
        return -1;
    }
    return 0;
}

int he_load_key(const char *cmd, const cdl_ckks_context *ctx, const char *path, he_key_kind kind, void **key)
{
    static const unsigned expect[] = {2, 3, 4, 5};
    static const char *const file_name[] = {"secret.key", "public.key", "relin.key", "galois.key"};
    const char *want = key_type_names[expect[kind]];
    *key = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cryptodl %s: cannot open %s (the %s): %s\n", cmd, path, want, strerror(errno));
        return -1;
    }
    uint8_t head[8];
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got == sizeof head && !memcmp(head, "CDL\0", 4)) {
        unsigned type = head[6] | (unsigned)head[7] << 8;
        if (type != expect[kind]) {
            if (type == 2)
                fprintf(stderr,
                        "cryptodl %s: %s is a SECRET key: it must stay with the client and is never read here. "
                        "Give the %s instead (%s in the keys folder).\n",
                        cmd, path, want, file_name[kind]);
            else
                fprintf(stderr, "cryptodl %s: %s holds a %s, not the %s expected here\n", cmd, path,
                        type < sizeof key_type_names / sizeof key_type_names[0] ? key_type_names[type]
                                                                                 : "unknown object",
                        want);
            return -1;
        }
    }
    if (kind == HE_KEY_GALOIS)
        return load_galois_file(cmd, ctx, path, key);
    uint8_t *d = NULL;
    size_t len = 0;
    if (read_small(cmd, path, (size_t)1 << 30, &d, &len) != 0)
        return -1;
    cdl_status st = kind == HE_KEY_SECRET   ? cdl_ckks_secret_key_load(ctx, d, len, (cdl_ckks_secret_key **)key)
                    : kind == HE_KEY_PUBLIC ? cdl_ckks_public_key_load(ctx, d, len, (cdl_ckks_public_key **)key)
                                            : cdl_ckks_relin_key_load(ctx, d, len, (cdl_ckks_relin_key **)key);
    if (kind == HE_KEY_SECRET)
        memset(d, 0, len);
    free(d);
    if (st != CDL_OK) {
        fprintf(stderr, "cryptodl %s: %s: %s (made for another model or other --log-n/--scale-bits?)\n", cmd, path,
                cdl_last_error());
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
    const int *steps = NULL;
    size_t n = 0, missing = 0;
    cdl_he_plan_galois_steps(plan, &steps, &n);
    if (n == 0)
        return 0;
    if (!gk) {
        fprintf(stderr, "cryptodl %s: this plan uses slots packing: the server needs the client's Galois keys "
                        "(galois.key, from cryptodl keygen with the same plan) besides relin.key\n", cmd);
        return -1;
    }
    char list[160] = "";
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (cdl_ckks_galois_keys_has_step(gk, steps[i]))
            continue;
        if (missing++ < 8 && at < sizeof list)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%d", at ? " " : "", steps[i]);
    }
    if (!missing) { /* every step has a key: each must also serve the level the plan rotates at */
        if (cdl_he_check_galois_keys(plan, gk) == CDL_OK)
            return 0;
        fprintf(stderr, "cryptodl %s: %s: %s\n", cmd, path ? path : "the Galois keys", cdl_last_error());
        return -1;
    }
    fprintf(stderr,
            "cryptodl %s: %s %s %zu of the %zu rotation steps this plan needs (%s%s): made for another plan or "
            "--packing? Make the keys again with this model and plan (cryptodl keygen MODEL --plan plan.json --keys "
            "DIR) and give the new galois.key\n",
            cmd, path ? path : "the Galois keys", path ? "lacks" : "lack", missing, n, list, missing > 8 ? " ..." : "");
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

/* Write one part: in a container its length first. */
static int put_part(FILE *f, int container, const uint8_t *blob, size_t len)
{
    uint8_t l8[8];
    cdl_parts_length(l8, len);
    if (container && fwrite(l8, 1, 8, f) != 8)
        return -1;
    return fwrite(blob, 1, len, f) == len ? 0 : -1;
}

static FILE *open_out(const char *cmd, const char *path, int container, size_t parts)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, path, strerror(errno));
        return NULL;
    }
    if (container) {
        uint8_t h[CDL_PARTS_HEADER_BYTES];
        cdl_parts_header(h, parts);
        if (fwrite(h, 1, sizeof h, f) != sizeof h) {
            fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, path, strerror(errno));
            fclose(f);
            unlink(path);
            return NULL;
        }
    }
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

int he_encrypt_file(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                    const cdl_ckks_public_key *pk, const cdl_ckks_secret_key *sk, const double *images, size_t n,
                    const char *out, he_file_stats *st)
{
    const size_t cap = cdl_he_plan_batch_capacity(plan), per = cdl_he_plan_input_size(plan);
    const size_t batches = (n + cap - 1) / cap;
    const int container = batches > 1;
    memset(st, 0, sizeof *st);
    cdl_rng *rng = NULL;
    if (cdl_rng_new_system(&rng) != CDL_OK)
        return cli_fail_status(cmd, "cannot start the random number generator");
    FILE *f = open_out(cmd, out, container, batches);
    if (!f) {
        cdl_rng_free(rng);
        return CLI_EXIT_FAILURE;
    }
    double t0 = cli_now_seconds();
    int ok = 1;
    for (size_t at = 0; ok && at < n; at += cap) {
        size_t b = n - at < cap ? n - at : cap;
        cdl_he_batch *batch = NULL;
        uint8_t *blob = NULL;
        size_t len = 0;
        if (batches > 1)
            fprintf(stderr, "  batch %zu/%zu: images %zu..%zu\n", at / cap + 1, batches, at, at + b - 1);
        if (cdl_he_encrypt_batch(plan, ctx, pk, sk, images + at * per, b, rng, &batch) != CDL_OK) {
            cli_fail_status(cmd, "encryption failed");
            ok = 0;
        } else if (cdl_he_batch_save(ctx, batch, 0, &blob, &len) != CDL_OK) {
            cli_fail_status(cmd, "cannot serialize the encrypted batch");
            ok = 0;
        } else if (put_part(f, container, blob, len) != 0) {
            fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, out, strerror(errno));
            ok = 0;
        }
        st->bytes += len + (container ? 8 : 0);
        cdl_free_bytes(blob);
        cdl_he_batch_free(batch);
    }
    cdl_rng_free(rng);
    if (close_out(cmd, out, f, ok) != 0)
        return CLI_EXIT_FAILURE;
    st->images = n;
    st->batches = batches;
    st->bytes += container ? CDL_PARTS_HEADER_BYTES : 0;
    st->seconds = cli_now_seconds() - t0;
    return CLI_EXIT_OK;
}

/* The batches of a file: a container's parts, or the whole file as one. */
static int file_parts(const char *cmd, const char *path, const uint8_t *data, size_t len, cdl_part **parts,
                      size_t *count, int *container)
{
    *container = cdl_parts_is(data, len);
    if (*container) {
        if (cdl_parts_parse(data, len, HE_MAX_PARTS, parts, count) != CDL_OK) {
            fprintf(stderr, "cryptodl %s: %s: %s\n", cmd, path, cdl_last_error());
            return -1;
        }
        return 0;
    }
    *parts = malloc(sizeof **parts);
    if (!*parts) {
        fprintf(stderr, "cryptodl %s: out of memory\n", cmd);
        return -1;
    }
    (*parts)[0].data = data;
    (*parts)[0].len = len;
    *count = 1;
    return 0;
}

/* What a batch of the other packing would hold, for the messages: batch
 * packing has one ciphertext per value; slots packing is not known here
 * without compiling again, so only "a few". */
static void other_packing_hint(const cdl_he_plan *plan, size_t got, int logits, char *buf, size_t cap)
{
    const int slots = cdl_he_plan_packing(plan) == CDL_HE_PACKING_SLOTS;
    const size_t values = logits ? cdl_he_plan_output_size(plan) : cdl_he_plan_input_size(plan);
    buf[0] = '\0';
    if (slots && got == values)
        snprintf(buf, cap, " (one ciphertext per value, as batch packing makes them: made with --packing batch "
                           "or another plan? client and server must use the same plan)");
    else if (!slots && got < values)
        snprintf(buf, cap, " (a few ciphertexts, as slots packing makes them: made with --packing slots or "
                           "another plan? client and server must use the same plan)");
}

/* Load part i of `path` and check it holds the plan's ciphertexts per batch:
 * input ciphertexts for images, output ciphertexts for logits. */
static int load_batch(const char *cmd, const char *path, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                      const cdl_part *p, size_t i, size_t count, int logits, cdl_he_batch **b)
{
    const char *what = logits ? "encrypted logits" : "encrypted images";
    const size_t want = logits ? cdl_he_plan_output_ciphertexts(plan) : cdl_he_plan_input_ciphertexts(plan),
                 other = logits ? cdl_he_plan_input_ciphertexts(plan) : cdl_he_plan_output_ciphertexts(plan);
    char where[4200], hint[200];
    if (count > 1)
        snprintf(where, sizeof where, "%s (batch %zu of %zu)", path, i + 1, count);
    else
        snprintf(where, sizeof where, "%s", path);
    if (cdl_he_batch_load(ctx, p->data, p->len, b) != CDL_OK) {
        fprintf(stderr, "cryptodl %s: %s: not %s for this model and these parameters (%s packing): %s (made with "
                        "another plan, --packing or --log-n/--scale-bits?)\n",
                cmd, where, what, he_packing_name(plan), cdl_last_error());
        return -1;
    }
    size_t got = cdl_he_batch_count(*b);
    if (got == want) {
        /* images are fresh, at the plan's top level; logits are below it (in slots packing the counts of the
         * two can be equal: the level tells them apart) */
        const int top = cdl_he_plan_levels(plan),
                  level = got ? cdl_ckks_ciphertext_level(cdl_he_batch_ciphertext(*b, 0)) : top;
        if (top == 0 || (level == top) != logits)
            return 0;
        fprintf(stderr, "cryptodl %s: %s holds ciphertexts at level %d, but %s for this model are at level %s%d: %s\n",
                cmd, where, level, what, logits ? "below " : "", top,
                logits ? "is it the encrypted images? give the evaluate output"
                       : "is it the evaluate output, the encrypted logits? give the encrypted images");
        cdl_he_batch_free(*b);
        *b = NULL;
        return -1;
    }
    if (got == other)
        snprintf(hint, sizeof hint, "%s", logits ? " (is it the encrypted images? give the evaluate output)"
                                                 : " (is it the evaluate output, the encrypted logits?)");
    else
        other_packing_hint(plan, got, logits, hint, sizeof hint);
    fprintf(stderr, "cryptodl %s: %s holds %zu ciphertexts per batch but %s for this model in %s packing have "
                    "%zu%s\n",
            cmd, where, got, what, he_packing_name(plan), want, hint);
    cdl_he_batch_free(*b);
    *b = NULL;
    return -1;
}

void he_progress_init(he_progress *p)
{
    memset(p, 0, sizeof *p);
    p->node = -1;
    p->t0 = cli_now_seconds();
}

void he_on_progress(void *user, int node, const char *name, size_t done, size_t total)
{
    he_progress *ps = user;
    if (node != ps->node) {
        ps->node = node;
        snprintf(ps->label, sizeof ps->label, "  layer %d %.40s", node + 1, name);
        cli_progress_start(&ps->bar, ps->label, total);
    }
    cli_progress_update(&ps->bar, done);
    if (done == total) {
        if (ps->bar.enabled)
            fputc('\n', stderr);
        double now = cli_now_seconds();
        fprintf(stderr, "  layer %d %-24.24s %6zu ciphertexts  %7.2f s\n", node + 1, name, total, now - ps->t0);
        ps->t0 = now; /* the next layer starts now */
    }
}

int he_evaluate_file(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                     const cdl_ckks_relin_key *rlk, const cdl_ckks_galois_keys *gk, const char *in, const char *out,
                     he_file_stats *st)
{
    const uint8_t *data = NULL;
    size_t len = 0, count = 0;
    cdl_part *parts = NULL;
    int container = 0;
    memset(st, 0, sizeof *st);
    struct stat si, so;
    if (stat(in, &si) == 0 && stat(out, &so) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
        fprintf(stderr, "cryptodl %s: --out %s is the input file: give another name\n", cmd, out);
        return CLI_EXIT_USAGE; /* writing it would truncate the batch being read */
    }
    if (he_check_galois(cmd, plan, gk, NULL) != 0)
        return CLI_EXIT_FAILURE;
    if (he_map_file(cmd, in, &data, &len) != 0)
        return CLI_EXIT_FAILURE;
    if (file_parts(cmd, in, data, len, &parts, &count, &container) != 0) {
        he_unmap_file(data, len);
        return CLI_EXIT_FAILURE;
    }
    FILE *f = open_out(cmd, out, container, count);
    int ok = f != NULL;
    for (size_t i = 0; ok && i < count; i++) {
        cdl_he_batch *batch = NULL, *res = NULL;
        uint8_t *blob = NULL;
        size_t blen = 0;
        if (load_batch(cmd, in, plan, ctx, &parts[i], i, count, 0, &batch) != 0) {
            ok = 0;
            break;
        }
        release_part(data, &parts[i]);
        if (count > 1)
            fprintf(stderr, "batch %zu/%zu: %zu images\n", i + 1, count, cdl_he_batch_images(batch));
        he_progress ps;
        he_progress_init(&ps);
        double t0 = cli_now_seconds();
        if (cdl_he_evaluate_keys(plan, ctx, rlk, gk, batch, he_on_progress, &ps, &res) != CDL_OK) {
            cli_fail_status(cmd, "encrypted evaluation failed");
            ok = 0;
        } else {
            st->seconds += cli_now_seconds() - t0;
            st->images += cdl_he_batch_images(batch);
            if (cdl_he_batch_save(ctx, res, 0, &blob, &blen) != CDL_OK) {
                cli_fail_status(cmd, "cannot serialize the encrypted logits");
                ok = 0;
            } else if (put_part(f, container, blob, blen) != 0) {
                fprintf(stderr, "cryptodl %s: cannot write %s: %s\n", cmd, out, strerror(errno));
                ok = 0;
            }
            st->bytes += blen + (container ? 8 : 0);
        }
        cdl_free_bytes(blob);
        cdl_he_batch_free(res);
        cdl_he_batch_free(batch);
    }
    free(parts);
    he_unmap_file(data, len);
    if (!f || close_out(cmd, out, f, ok) != 0)
        return CLI_EXIT_FAILURE;
    st->batches = count;
    st->bytes += container ? CDL_PARTS_HEADER_BYTES : 0;
    return CLI_EXIT_OK;
}

int he_decrypt_file(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                    const cdl_ckks_secret_key *sk, const char *in, const cdl_ckks_flood_options *flood,
                    cdl_ckks_flood_info *flood_info, double **logits, size_t *n)
{
    const uint8_t *data = NULL;
    size_t len = 0, count = 0, total = 0;
    const size_t nout = cdl_he_plan_output_size(plan);
    cdl_part *parts = NULL;
    int container = 0, ok = 1;
    double *out = NULL;
    cdl_rng *rng = NULL;
    cdl_ckks_flood_info worst = {0.0, 0.0, 0.0, 0.0};
    cdl_ckks_flood_options fopt;
    *logits = NULL;
    *n = 0;
    if (flood && cdl_rng_new_system(&rng) != CDL_OK)
        return cli_fail_status(cmd, "cannot open the system random generator");
    if (he_map_file(cmd, in, &data, &len) != 0) {
        cdl_rng_free(rng);
        return CLI_EXIT_FAILURE;
    }
    if (file_parts(cmd, in, data, len, &parts, &count, &container) != 0) {
        he_unmap_file(data, len);
        cdl_rng_free(rng);
        return CLI_EXIT_FAILURE;
    }
    if (flood) { /* by default, every ciphertext of the file is one decryption the adversary sees */
        fopt = *flood;
        if (fopt.queries == 0.0)
            fopt.queries = (double)(count * cdl_he_plan_output_ciphertexts(plan));
        flood = &fopt;
        worst.queries = fopt.queries;
    }
    for (size_t i = 0; ok && i < count; i++) {
        cdl_he_batch *b = NULL;
        if (load_batch(cmd, in, plan, ctx, &parts[i], i, count, 1, &b) != 0) {
            ok = 0;
            break;
        }
        size_t m = cdl_he_batch_images(b);
        double *grown = realloc(out, (total + m) * nout * sizeof *out);
        if (!grown) {
            fprintf(stderr, "cryptodl %s: out of memory\n", cmd);
            ok = 0;
        } else {
            out = grown;
            cdl_ckks_flood_info fi;
            cdl_status st = flood ? cdl_he_decrypt_logits_flooded(plan, ctx, sk, b, flood, rng, out + total * nout, &fi)
                                  : cdl_he_decrypt_logits(plan, ctx, sk, b, out + total * nout);
            if (st != CDL_OK) {
                cli_fail_status(cmd, flood ? "flooded decryption failed" : "decryption failed (encrypted under "
                                                                           "another key?)");
                if (flood)
                    he_flood_hint(cmd, st);
                ok = 0;
            } else if (flood) {
                worst.noise_log2 = fi.noise_log2 > worst.noise_log2 ? fi.noise_log2 : worst.noise_log2;
                worst.sigma_log2 = fi.sigma_log2 > worst.sigma_log2 ? fi.sigma_log2 : worst.sigma_log2;
                worst.slot_error = fi.slot_error > worst.slot_error ? fi.slot_error : worst.slot_error;
            }
            total += m;
        }
        cdl_he_batch_free(b);
    }
    free(parts);
    he_unmap_file(data, len);
    cdl_rng_free(rng);
    if (!ok) {
        free(out);
        return CLI_EXIT_FAILURE;
    }
    if (flood_info)
        *flood_info = worst;
    *logits = out;
    *n = total;
    return CLI_EXIT_OK;
}

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
