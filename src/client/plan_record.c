/*
 * plan_record.c: the JSON plan file (`cryptodl compile --out plan.json`,
 * cdl_client_plan_json): writing, reading and checking it (see
 * plan_record.h). Reading is strict: a fixed set of keys, each of a fixed type
 * and range, no unknown keys, no duplicates; then cdl_plan_record_compare checks
 * the recorded outcome against a fresh compilation of the model.
 *
 * Moved here from tools/plan_file.c (issue 20) so that every client of the
 * library (CLI, Python, WebAssembly) reads and writes the same files; pure
 * computation on bytes, no file I/O.
 */
#include "client/plan_record.h"

#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int plan_fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

void cdl_plan_sha256(const uint8_t *data, size_t len, char hex[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, data, len);
    sodium_bin2hex(hex, 65, digest, sizeof digest);
}

void cdl_plan_record_from(const cdl_he_plan *plan, const cdl_nn_graph *g, const cdl_plan_options *opt,
                          const char *sha256, cdl_plan_record *rec)
{
    memset(rec, 0, sizeof *rec);
    snprintf(rec->sha256, sizeof rec->sha256, "%s", sha256);
    rec->opt = *opt;
    rec->plan = plan;
    const cdl_ckks_param_spec *sp = cdl_he_plan_params(plan);
    rec->log_n = sp->log_n;
    rec->q_count = sp->q_count;
    rec->p_count = sp->p_count;
    for (int i = 0; i < sp->q_count; i++) {
        rec->q_bits[i] = sp->q_bits[i];
        rec->log_qp += sp->q_bits[i];
    }
    for (int i = 0; i < sp->p_count; i++) {
        rec->p_bits[i] = sp->p_bits[i];
        rec->log_qp += sp->p_bits[i];
    }
    rec->scale_bits = (int)lround(log2(sp->scale));
    rec->levels = cdl_he_plan_levels(plan);
    rec->input_rank = g->input_shape.rank;
    for (int i = 0; i < g->input_shape.rank && i < CDL_NN_MAX_RANK; i++)
        rec->input_shape[i] = g->input_shape.dims[i];
    rec->input_size = cdl_he_plan_input_size(plan);
    rec->output_size = cdl_he_plan_output_size(plan);
    rec->batch_capacity = cdl_he_plan_batch_capacity(plan);
    rec->packing = cdl_he_plan_packing(plan);
    rec->input_ciphertexts = cdl_he_plan_input_ciphertexts(plan);
    rec->output_ciphertexts = cdl_he_plan_output_ciphertexts(plan);
    cdl_he_plan_cost(plan, &rec->cost);
    rec->relin_key = rec->cost.ct_mults > 0;
    const int *steps = NULL;
    size_t n = 0;
    cdl_he_plan_galois_steps(plan, &steps, &n);
    for (size_t i = 0; i < n && i < CDL_PLAN_MAX_GALOIS; i++)
        rec->galois[i] = steps[i];
    rec->n_galois = n <= CDL_PLAN_MAX_GALOIS ? n : CDL_PLAN_MAX_GALOIS + 1;
    rec->galois_key_bytes = cdl_he_plan_galois_key_bytes(plan);
    rec->memory_bytes = cdl_he_plan_memory(plan);
}

const char *cdl_plan_packing_name(int packing)
{
    return packing == CDL_HE_PACKING_SLOTS ? "slots" : packing == CDL_HE_PACKING_AUTO ? "auto" : "batch";
}

static json_t *int_array(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *auto_int(int v) { return v ? json_integer(v) : json_null(); }

/* The packing as the file names it: "batch-simd" (what files said before slots packing existed) or "slots". */
static const char *packing_text(int packing) { return packing == CDL_HE_PACKING_SLOTS ? "slots" : "batch-simd"; }

char *cdl_plan_record_json(const cdl_plan_record *r, const char *model_file)
{
    int64_t shape[CDL_NN_MAX_RANK];
    json_t *sh = json_array();
    for (int i = 0; sh && i < r->input_rank; i++) {
        shape[i] = r->input_shape[i];
        json_array_append_new(sh, json_integer(shape[i]));
    }
    json_t *root = json_pack(
        "{s:s, s:i, s:{s:s, s:s}, s:{s:o, s:o, s:i, s:o, s:s, s:o, s:o}, s:s, s:{s:i, s:o, s:o, s:i, s:i, s:i, s:i}, "
        "s:{s:o, s:I, s:I}, s:{s:I, s:I}, s:I, s:{s:b, s:o, s:I}, s:I, s:{s:I, s:I, s:I, s:I}}",
        "format", CDL_PLAN_FILE_FORMAT, "version", CDL_PLAN_FILE_VERSION,
        "model", "file", model_file ? model_file : "", "sha256", r->sha256,
        "options", "log_n", auto_int(r->opt.log_n), "scale_bits", auto_int(r->opt.scale_bits), "output_bits",
        r->opt.output_bits, "approx", r->opt.approx[0] ? json_string(r->opt.approx) : json_null(), "packing",
        cdl_plan_packing_name(r->opt.packing), "max_galois_keys", auto_int(r->opt.max_galois_keys),
        "max_galois_mb", auto_int(r->opt.max_galois_mb),
        "packing", packing_text(r->packing),
        "ckks", "log_n", r->log_n, "q_bits", int_array(r->q_bits, r->q_count), "p_bits",
        int_array(r->p_bits, r->p_count), "log_qp", r->log_qp, "max_log_qp", cdl_ckks_max_log_qp(r->log_n),
        "scale_bits", r->scale_bits, "levels", r->levels,
        "input", "shape", sh, "size", (json_int_t)r->input_size, "ciphertexts", (json_int_t)r->input_ciphertexts,
        "output", "size", (json_int_t)r->output_size, "ciphertexts", (json_int_t)r->output_ciphertexts,
        "batch_capacity", (json_int_t)r->batch_capacity,
        "keys", "relinearization", r->relin_key, "galois",
        int_array(r->galois, r->n_galois <= CDL_PLAN_MAX_GALOIS ? (int)r->n_galois : CDL_PLAN_MAX_GALOIS),
        "galois_key_bytes", (json_int_t)r->galois_key_bytes,
        "ciphertext_memory_bytes", (json_int_t)r->memory_bytes,
        "cost", "const_mults", (json_int_t)r->cost.const_mults, "adds", (json_int_t)r->cost.adds, "ct_mults",
        (json_int_t)r->cost.ct_mults, "rescales", (json_int_t)r->cost.rescales);
    if (!root)
        return NULL;
    if (r->plan) { /* per layer: what runs, its levels, layout and (slots) rotations and products */
        json_t *layers = json_array();
        for (size_t i = 0; layers && i < cdl_he_plan_layer_count(r->plan); i++) {
            cdl_he_layer_info li;
            if (cdl_he_plan_layer(r->plan, i, &li) != CDL_OK)
                continue;
            json_t *l = json_pack("{s:s, s:s, s:I, s:i, s:i, s:I}", "name", li.name, "op", li.op, "values",
                                  (json_int_t)li.values, "level_in", li.level_in, "level_out", li.level_out,
                                  "ciphertexts", (json_int_t)li.ciphertexts);
            if (l && r->packing == CDL_HE_PACKING_SLOTS) {
                if (li.gap)
                    json_object_set_new(l, "layout", json_pack("{s:i, s:i, s:i}", "gap", li.gap, "frame_h",
                                                               li.frame_h, "frame_w", li.frame_w));
                json_object_set_new(l, "rotations", json_integer((json_int_t)li.rotations));
                json_object_set_new(l, "hoisted_rotations", json_integer((json_int_t)li.hoisted));
                json_object_set_new(l, "plain_mults", json_integer((json_int_t)li.plain_mults));
                json_object_set_new(l, "est_seconds", json_real(li.est_seconds));
            }
            if (l)
                json_array_append_new(layers, l);
        }
        if (layers)
            json_object_set_new(root, "layers", layers);
    }
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s)
        return NULL;
    size_t n = strlen(s);
    char *out = malloc(n + 2); /* with a final newline */
    if (out) {
        memcpy(out, s, n);
        out[n] = '\n';
        out[n + 1] = '\0';
    }
    free(s);
    return out;
}

/* ---- reading -------------------------------------------------------------- */

/* Refuse keys other than the allowed ones (a typo would otherwise be ignored). */
static int only_keys(json_t *obj, const char *where, const char *const *keys, char *err, size_t cap)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        int ok = 0;
        for (size_t i = 0; keys[i]; i++)
            ok |= !strcmp(k, keys[i]);
        if (!ok)
            return plan_fail(err, cap, "unexpected field '%s%s%s'", where, where[0] ? "." : "", k);
    }
    return 0;
}

static int get_obj(json_t *parent, const char *key, const char *where, json_t **out, char *err, size_t cap)
{
    json_t *v = json_object_get(parent, key);
    if (!json_is_object(v))
        return plan_fail(err, cap, "'%s%s%s' must be an object", where, where[0] ? "." : "", key);
    *out = v;
    return 0;
}

/* An integer in [lo, hi]; with allow_null, null reads as 0. */
static int get_int(json_t *parent, const char *key, const char *where, long long lo, long long hi, int allow_null,
                   long long *out, char *err, size_t cap)
{
    json_t *v = json_object_get(parent, key);
    if (allow_null && json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return plan_fail(err, cap, "'%s.%s' must be an integer in %lld..%lld%s", where, key, lo, hi,
                    allow_null ? " or null (automatic)" : "");
    *out = json_integer_value(v);
    return 0;
}

static int get_int_array(json_t *parent, const char *key, const char *where, int lo, int hi, int max_n, int *out,
                         int *n, char *err, size_t cap)
{
    json_t *a = json_object_get(parent, key);
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > (size_t)max_n)
        return plan_fail(err, cap, "'%s.%s' must be an array of 1..%d integers", where, key, max_n);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
            return plan_fail(err, cap, "'%s.%s[%zu]' must be an integer in %d..%d", where, key, i, lo, hi);
        out[i] = (int)json_integer_value(v);
    }
    *n = (int)json_array_size(a);
    return 0;
}

/* A packing name at parent.key: "batch" (or "batch-simd", what files said
 * before slots packing existed), "slots", and for an option "auto"; absent =
 * batch (files from before). */
static int get_packing(json_t *parent, const char *key, const char *where, int option, int *out, char *err,
                       size_t cap)
{
    json_t *v = json_object_get(parent, key);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    *out = CDL_HE_PACKING_BATCH;
    if (!v || (s && (!strcmp(s, "batch") || !strcmp(s, "batch-simd"))))
        return 0;
    if (s && !strcmp(s, "slots")) {
        *out = CDL_HE_PACKING_SLOTS;
        return 0;
    }
    if (s && option && !strcmp(s, "auto")) {
        *out = CDL_HE_PACKING_AUTO;
        return 0;
    }
    return plan_fail(err, cap, "'%s' must be \"batch\"%s or \"slots\"%s", where, option ? "" : " (\"batch-simd\")",
                     option ? " or \"auto\"" : "");
}

/* parent.ciphertexts: the ciphertexts of one batch. Batch packing: one per
 * value (absent in files from before slots packing); slots: 1..size. */
static int get_ciphertexts(json_t *parent, const char *where, int packing, size_t size, size_t *out, char *err,
                           size_t cap)
{
    long long v = 0;
    if (packing == CDL_HE_PACKING_BATCH && !json_object_get(parent, "ciphertexts")) {
        *out = size;
        return 0;
    }
    if (get_int(parent, "ciphertexts", where, 1, (long long)size, 0, &v, err, cap))
        return -1;
    if (packing == CDL_HE_PACKING_BATCH && (size_t)v != size)
        return plan_fail(err, cap, "'%s.ciphertexts' must equal '%s.size' (%zu) in batch packing", where, where, size);
    *out = (size_t)v;
    return 0;
}

/* keys.galois (the rotation steps, ascending, 1..N/2-1; [] in batch packing)
 * and keys.galois_key_bytes (absent in files from before slots packing). */
static int get_galois(json_t *keys, cdl_plan_record *r, size_t half, char *err, size_t cap)
{
    json_t *gal = json_object_get(keys, "galois");
    if (!json_is_array(gal))
        return plan_fail(err, cap, "'keys.galois' must be an array of rotation steps");
    size_t n = json_array_size(gal);
    if (r->packing == CDL_HE_PACKING_BATCH && n != 0)
        return plan_fail(err, cap, "'keys.galois' must be [] in batch packing (it uses no rotations)");
    if (n > CDL_PLAN_MAX_GALOIS)
        return plan_fail(err, cap, "'keys.galois' lists %zu steps, at most %d", n, CDL_PLAN_MAX_GALOIS);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(gal, i);
        long long prev = i ? r->galois[i - 1] : 0;
        if (!json_is_integer(v) || json_integer_value(v) <= prev || json_integer_value(v) >= (long long)half)
            return plan_fail(err, cap, "'keys.galois[%zu]' must be an integer step in %lld..%zu, above the one before",
                             i, prev + 1, half - 1);
        r->galois[i] = (int)json_integer_value(v);
    }
    r->n_galois = n;
    long long v = 0;
    if (json_object_get(keys, "galois_key_bytes") &&
        get_int(keys, "galois_key_bytes", "keys", 0, (long long)1 << 53, 0, &v, err, cap))
        return -1;
    if (n == 0 && v != 0)
        return plan_fail(err, cap, "'keys.galois_key_bytes' must be 0 without rotation steps");
    r->galois_key_bytes = (uint64_t)v;
    return 0;
}

static int parse_tree(json_t *root, cdl_plan_record *r, char *err, size_t cap)
{
    static const char *const top_keys[] = {"format", "version", "model", "options", "packing", "ckks", "input",
                                           "output", "batch_capacity", "keys", "ciphertext_memory_bytes", "cost",
                                           "layers", NULL};
    static const char *const model_keys[] = {"file", "sha256", NULL};
    static const char *const opt_keys[] = {"log_n",  "scale_bits", "output_bits", "approx", "packing",
                                           "max_galois_keys", "max_galois_mb", NULL};
    static const char *const ckks_keys[] = {"log_n", "q_bits", "p_bits", "log_qp", "max_log_qp", "scale_bits",
                                            "levels", NULL};
    static const char *const in_keys[] = {"shape", "size", "ciphertexts", NULL};
    static const char *const out_keys[] = {"size", "ciphertexts", NULL};
    static const char *const key_keys[] = {"relinearization", "galois", "galois_key_bytes", NULL};
    static const char *const cost_keys[] = {"const_mults", "adds", "ct_mults", "rescales", NULL};
    const long long big = (long long)1 << 53;
    long long v;
    json_t *o = NULL;
    if (!json_is_object(root))
        return plan_fail(err, cap, "not a JSON object");
    json_t *layers = json_object_get(root, "layers"); /* descriptive: its form only */
    if (layers && (!json_is_array(layers) || json_array_size(layers) > CDL_NN_MAX_NODES))
        return plan_fail(err, cap, "'layers' must be an array of at most %d layer objects", CDL_NN_MAX_NODES);
    for (size_t i = 0; layers && i < json_array_size(layers); i++)
        if (!json_is_object(json_array_get(layers, i)))
            return plan_fail(err, cap, "'layers[%zu]' must be an object", i);
    if (only_keys(root, "", top_keys, err, cap))
        return -1;
    json_t *fmt = json_object_get(root, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), CDL_PLAN_FILE_FORMAT))
        return plan_fail(err, cap, "'format' must be \"%s\" (not a cryptodl plan file?)", CDL_PLAN_FILE_FORMAT);
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != CDL_PLAN_FILE_VERSION)
        return plan_fail(err, cap, "'version' must be %d (made by another version of cryptodl? run cryptodl compile again)",
                    CDL_PLAN_FILE_VERSION);
    /* model */
    if (get_obj(root, "model", "", &o, err, cap) || only_keys(o, "model", model_keys, err, cap))
        return -1;
    json_t *file = json_object_get(o, "file"), *sha = json_object_get(o, "sha256");
    if (!json_is_string(file))
        return plan_fail(err, cap, "'model.file' must be a string");
    if (!json_is_string(sha) || strlen(json_string_value(sha)) != 64 ||
        strspn(json_string_value(sha), "0123456789abcdef") != 64)
        return plan_fail(err, cap, "'model.sha256' must be 64 lowercase hex digits");
    snprintf(r->sha256, sizeof r->sha256, "%s", json_string_value(sha));
    /* options */
    if (get_obj(root, "options", "", &o, err, cap) || only_keys(o, "options", opt_keys, err, cap))
        return -1;
    if (get_int(o, "log_n", "options", 13, 16, 1, &v, err, cap))
        return -1;
    r->opt.log_n = (int)v;
    if (get_int(o, "scale_bits", "options", 20, 50, 1, &v, err, cap))
        return -1;
    r->opt.scale_bits = (int)v;
    if (get_int(o, "output_bits", "options", 2, 30, 0, &v, err, cap))
        return -1;
    r->opt.output_bits = (int)v;
    json_t *ap = json_object_get(o, "approx");
    if (json_is_string(ap)) {
        const char *s = json_string_value(ap);
        size_t n = json_string_length(ap);
        if (n == 0 || n > CDL_PLAN_APPROX_MAX || strlen(s) != n)
            return plan_fail(err, cap, "'options.approx' must be a non-empty string of at most %d bytes", CDL_PLAN_APPROX_MAX);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
                return plan_fail(err, cap, "'options.approx' holds a non-printable character");
        memcpy(r->opt.approx, s, n + 1);
    } else if (!json_is_null(ap))
        return plan_fail(err, cap, "'options.approx' must be a string or null");
    if (json_object_get(o, "max_galois_keys")) { /* absent in files from before the key budget */
        if (get_int(o, "max_galois_keys", "options", 1, 100000, 1, &v, err, cap))
            return -1;
        r->opt.max_galois_keys = (int)v;
    }
    if (json_object_get(o, "max_galois_mb")) { /* absent in files from before the byte budget */
        if (get_int(o, "max_galois_mb", "options", 1, 100000000, 1, &v, err, cap))
            return -1;
        r->opt.max_galois_mb = (int)v;
    }
    if (get_packing(o, "packing", "options.packing", 1, &r->opt.packing, err, cap) ||
        get_packing(root, "packing", "packing", 0, &r->packing, err, cap))
        return -1;
    /* ckks */
    if (get_obj(root, "ckks", "", &o, err, cap) || only_keys(o, "ckks", ckks_keys, err, cap))
        return -1;
    if (get_int(o, "log_n", "ckks", 13, 16, 0, &v, err, cap))
        return -1;
    r->log_n = (int)v;
    if (get_int_array(o, "q_bits", "ckks", 2, 62, CDL_CKKS_MAX_PRIMES, r->q_bits, &r->q_count, err, cap) ||
        get_int_array(o, "p_bits", "ckks", 2, 62, CDL_CKKS_MAX_PRIMES, r->p_bits, &r->p_count, err, cap))
        return -1;
    if (get_int(o, "log_qp", "ckks", 1, 4000, 0, &v, err, cap))
        return -1;
    r->log_qp = (int)v;
    if (get_int(o, "max_log_qp", "ckks", 1, 4000, 0, &v, err, cap))
        return -1;
    if (get_int(o, "scale_bits", "ckks", 20, 62, 0, &v, err, cap))
        return -1;
    r->scale_bits = (int)v;
    if (get_int(o, "levels", "ckks", 0, CDL_CKKS_MAX_PRIMES, 0, &v, err, cap))
        return -1;
    r->levels = (int)v;
    int sum = 0;
    for (int i = 0; i < r->q_count; i++)
        sum += r->q_bits[i];
    for (int i = 0; i < r->p_count; i++)
        sum += r->p_bits[i];
    if (sum != r->log_qp)
        return plan_fail(err, cap, "'ckks.log_qp' is %d but the primes add up to %d bits", r->log_qp, sum);
    /* input, output */
    if (get_obj(root, "input", "", &o, err, cap) || only_keys(o, "input", in_keys, err, cap))
        return -1;
    json_t *sh = json_object_get(o, "shape");
    if (!json_is_array(sh) || json_array_size(sh) < 1 || json_array_size(sh) > CDL_NN_MAX_RANK)
        return plan_fail(err, cap, "'input.shape' must be an array of 1..%d integers", CDL_NN_MAX_RANK);
    r->input_rank = (int)json_array_size(sh);
    uint64_t prod = 1;
    for (int i = 0; i < r->input_rank; i++) {
        json_t *d = json_array_get(sh, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > CDL_NN_MAX_ACTIVATION)
            return plan_fail(err, cap, "'input.shape[%d]' must be an integer in 1..%lld", i,
                        (long long)CDL_NN_MAX_ACTIVATION);
        r->input_shape[i] = json_integer_value(d);
        prod *= (uint64_t)r->input_shape[i];
        if (prod > (uint64_t)CDL_NN_MAX_ACTIVATION)
            return plan_fail(err, cap, "'input.shape' has more than %lld values", (long long)CDL_NN_MAX_ACTIVATION);
    }
    if (get_int(o, "size", "input", 1, CDL_NN_MAX_ACTIVATION, 0, &v, err, cap))
        return -1;
    r->input_size = (size_t)v;
    if ((uint64_t)v != prod)
        return plan_fail(err, cap, "'input.size' is %lld but the shape holds %llu values", v, (unsigned long long)prod);
    if (get_ciphertexts(o, "input", r->packing, r->input_size, &r->input_ciphertexts, err, cap))
        return -1;
    if (get_obj(root, "output", "", &o, err, cap) || only_keys(o, "output", out_keys, err, cap) ||
        get_int(o, "size", "output", 1, CDL_NN_MAX_ACTIVATION, 0, &v, err, cap))
        return -1;
    r->output_size = (size_t)v;
    if (get_ciphertexts(o, "output", r->packing, r->output_size, &r->output_ciphertexts, err, cap))
        return -1;
    const size_t half = (size_t)1 << (r->log_n - 1);
    if (get_int(root, "batch_capacity", "plan", 1, (long long)1 << 15, 0, &v, err, cap))
        return -1;
    r->batch_capacity = (size_t)v;
    if (r->packing == CDL_HE_PACKING_BATCH && r->batch_capacity != half)
        return plan_fail(err, cap, "'batch_capacity' must be N/2 = %zu for ckks.log_n %d", half, r->log_n);
    if (r->batch_capacity > half)
        return plan_fail(err, cap, "'batch_capacity' must be at most N/2 = %zu for ckks.log_n %d", half, r->log_n);
    /* keys */
    if (get_obj(root, "keys", "", &o, err, cap) || only_keys(o, "keys", key_keys, err, cap))
        return -1;
    json_t *rl = json_object_get(o, "relinearization");
    if (!json_is_boolean(rl))
        return plan_fail(err, cap, "'keys.relinearization' must be true or false");
    r->relin_key = json_is_true(rl);
    if (get_galois(o, r, half, err, cap))
        return -1;
    if (get_int(root, "ciphertext_memory_bytes", "plan", 0, big, 0, &v, err, cap))
        return -1;
    r->memory_bytes = (uint64_t)v;
    if (get_obj(root, "cost", "", &o, err, cap) || only_keys(o, "cost", cost_keys, err, cap))
        return -1;
    uint64_t *cost[] = {&r->cost.const_mults, &r->cost.adds, &r->cost.ct_mults, &r->cost.rescales};
    for (int i = 0; i < 4; i++) {
        if (get_int(o, cost_keys[i], "cost", 0, big, 0, &v, err, cap))
            return -1;
        *cost[i] = (uint64_t)v;
    }
    return 0;
}

int cdl_plan_record_parse(const uint8_t *data, size_t len, cdl_plan_record *rec, char *err, size_t errcap)
{
    memset(rec, 0, sizeof *rec);
    if (!data || len == 0)
        return plan_fail(err, errcap, "empty file");
    if (len > CDL_PLAN_FILE_MAX_BYTES)
        return plan_fail(err, errcap, "%zu bytes: a plan file is at most %zu", len, CDL_PLAN_FILE_MAX_BYTES);
    json_error_t je;
    json_t *root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return plan_fail(err, errcap, "not valid JSON (line %d: %s)", je.line, je.text);
    int rc = parse_tree(root, rec, err, errcap);
    json_decref(root);
    if (rc)
        memset(rec, 0, sizeof *rec);
    return rc;
}

int cdl_plan_record_compare(const cdl_plan_record *f, const cdl_plan_record *n, char *err, size_t cap)
{
    if (strcmp(f->sha256, n->sha256))
        return plan_fail(err, cap, "the plan was made for another model (SHA-256 %.16s..., this model %.16s...)",
                    f->sha256, n->sha256);
    if (f->log_n != n->log_n || f->q_count != n->q_count || f->p_count != n->p_count || f->log_qp != n->log_qp ||
        f->scale_bits != n->scale_bits || memcmp(f->q_bits, n->q_bits, sizeof f->q_bits) ||
        memcmp(f->p_bits, n->p_bits, sizeof f->p_bits))
        return plan_fail(err, cap, "the plan records CKKS parameters (N = 2^%d, log QP = %d, scale 2^%d) other than "
                              "this build chooses (N = 2^%d, log QP = %d, scale 2^%d)",
                    f->log_n, f->log_qp, f->scale_bits, n->log_n, n->log_qp, n->scale_bits);
    if (f->levels != n->levels)
        return plan_fail(err, cap, "the plan records %d levels, the model now needs %d", f->levels, n->levels);
    if (f->input_rank != n->input_rank || memcmp(f->input_shape, n->input_shape, sizeof f->input_shape) ||
        f->input_size != n->input_size || f->output_size != n->output_size)
        return plan_fail(err, cap, "the plan records other input/output sizes (%zu -> %zu) than the model's (%zu -> %zu)",
                    f->input_size, f->output_size, n->input_size, n->output_size);
    if (f->packing != n->packing)
        return plan_fail(err, cap, "the plan records %s packing, this compilation gives %s packing",
                         cdl_plan_packing_name(f->packing), cdl_plan_packing_name(n->packing));
    if (f->input_ciphertexts != n->input_ciphertexts || f->output_ciphertexts != n->output_ciphertexts)
        return plan_fail(err, cap, "the plan records %zu input / %zu output ciphertexts per batch, this build "
                                   "computes %zu / %zu", f->input_ciphertexts, f->output_ciphertexts,
                         n->input_ciphertexts, n->output_ciphertexts);
    if (f->batch_capacity != n->batch_capacity || f->relin_key != n->relin_key)
        return plan_fail(err, cap, "the plan records another batch capacity or key set than this build computes");
    if (f->n_galois != n->n_galois || memcmp(f->galois, n->galois, f->n_galois * sizeof f->galois[0]) ||
        f->galois_key_bytes != n->galois_key_bytes)
        return plan_fail(err, cap, "the plan records other rotation steps (%zu, Galois keys of %.1f MB) than this "
                                   "build computes (%zu, %.1f MB)", f->n_galois, f->galois_key_bytes / 1e6,
                         n->n_galois, n->galois_key_bytes / 1e6);
    if (f->memory_bytes != n->memory_bytes || memcmp(&f->cost, &n->cost, sizeof f->cost))
        return plan_fail(err, cap, "the plan records another cost or memory estimate than this build computes");
    return 0;
}
