/*
 * batches.c: encrypt, evaluate and decrypt for the client layer
 * (include/cryptodl/client.h), one batch as objects or a whole input as
 * bytes. Bytes are one batch (cdl_he_batch_save's format) when the images fit
 * in one, else a CDLPARTS container (src/data/user_files.c) of batches, each
 * checked by cdl_he_batch_load and then against the plan (ciphertexts per
 * batch and level: images and logits of the other packing, of another plan,
 * or the logits given for the images are refused saying which).
 *
 * Output goes through the caller's write callback one batch at a time, so a
 * file of many batches never needs more than one batch in memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_internal.h"
#include "core/error.h"
#include "core/memory.h"

#define CLIENT_MAX_PARTS ((size_t)1 << 16)

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *packing_name(const cdl_he_plan *he)
{
    return cdl_he_plan_packing(he) == CDL_HE_PACKING_SLOTS ? "slots" : "batch";
}

static void emit(const cdl_client_stream *io, cdl_client_progress *p)
{
    if (io && io->progress)
        io->progress(io->progress_user, p);
}

static cdl_status put(const cdl_client_stream *io, const uint8_t *data, size_t len)
{
    if (!io || !io->write)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "no output: give a write callback");
    if (io->write(io->write_user, data, len) != 0)
        return cdl_fail(CDL_ERR_IO, "cannot write the output");
    return CDL_OK;
}

/* One part: in a container its length first. */
static cdl_status put_part(const cdl_client_stream *io, int container, const uint8_t *blob, size_t len)
{
    if (container) {
        uint8_t l8[8];
        cdl_parts_length(l8, len);
        CDL_TRY(put(io, l8, 8));
    }
    return put(io, blob, len);
}

static cdl_status put_header(const cdl_client_stream *io, size_t parts)
{
    uint8_t h[CDL_PARTS_HEADER_BYTES];
    cdl_parts_header(h, parts);
    return put(io, h, sizeof h);
}

/* ---- one batch ------------------------------------------------------------------- */

cdl_status cdl_client_encrypt_batch(const cdl_client_plan *plan, cdl_client_keys *keys, const void *images,
                                    cdl_client_dtype dtype, size_t n, int use_public, cdl_he_batch **out)
{
    if (!plan || !keys || !images || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_encrypt_batch: NULL argument");
    *out = NULL;
    const cdl_ckks_public_key *pk = NULL;
    const cdl_ckks_secret_key *sk = NULL;
    if (use_public || !keys->sk)
        pk = keys->pk;
    else
        sk = keys->sk;
    if (!pk && !sk)
        return cdl_fail(CDL_ERR_EXHAUSTED, "encrypting needs the %s key (none in these keys)",
                        use_public ? "public" : "secret or the public");
    size_t count;
    if (cdl_mul_size(n, cdl_he_plan_input_size(plan->he), &count) != 0)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "too many images");
    const double *v = NULL;
    double *owned = NULL;
    CDL_TRY(cdl_client_images_f64(images, dtype, count, &v, &owned));
    cdl_status st = cdl_he_encrypt_batch(plan->he, plan->ctx, pk, sk, v, n, keys->rng, out);
    cdl_free(owned);
    return st;
}

typedef struct eval_progress {
    cdl_client_progress_fn fn;
    void *user;
    cdl_client_progress p;
} eval_progress;

static void on_layer(void *user, int node, const char *name, size_t done, size_t total)
{
    eval_progress *e = user;
    e->p.layer = node;
    e->p.stage = name;
    e->p.done = done;
    e->p.total = total;
    e->fn(e->user, &e->p);
}

static cdl_status evaluate_one(const cdl_client_plan *plan, const cdl_client_keys *keys, const cdl_he_batch *in,
                               cdl_client_progress_fn progress, void *user, size_t batch, size_t batches,
                               cdl_he_batch **out)
{
    eval_progress e = {progress, user, {"evaluate", "", -1, batch, batches, 0, 0, cdl_he_batch_images(in)}};
    cdl_status st = cdl_he_evaluate_keys(plan->he, plan->ctx, keys->rlk, keys->gk, in, progress ? on_layer : NULL,
                                         progress ? &e : NULL, out);
    return st == CDL_OK ? CDL_OK : cdl_client_fail_cause(st, "encrypted evaluation failed");
}

cdl_status cdl_client_evaluate_batch(const cdl_client_plan *plan, const cdl_client_keys *keys,
                                     const cdl_he_batch *in, cdl_client_progress_fn progress, void *user,
                                     cdl_he_batch **out)
{
    if (!plan || !keys || !in || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_evaluate_batch: NULL argument");
    *out = NULL;
    CDL_TRY(cdl_client_keys_check(keys, NULL));
    return evaluate_one(plan, keys, in, progress, user, 0, 1, out);
}

cdl_status cdl_client_decrypt_batch(const cdl_client_plan *plan, cdl_client_keys *keys, const cdl_he_batch *logits,
                                    const cdl_ckks_flood_options *flood, double *out, cdl_ckks_flood_info *flood_info)
{
    if (!plan || !keys || !logits || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_decrypt_batch: NULL argument");
    if (!keys->sk)
        return cdl_fail(CDL_ERR_EXHAUSTED, "decrypting needs the secret key (none in these keys)");
    cdl_ckks_flood_info fi;
    cdl_status st = flood ? cdl_he_decrypt_logits_flooded(plan->he, plan->ctx, keys->sk, logits, flood, keys->rng,
                                                           out, &fi)
                          : cdl_he_decrypt_logits(plan->he, plan->ctx, keys->sk, logits, out);
    if (st == CDL_ERR_PARAMETERS && flood)
        return cdl_client_fail_cause(st, "flooded decryption failed (the plan's output has no room for the flooding: "
                                         "compile the model with a larger scale, e.g. scale_bits 50, on client and "
                                         "server)");
    if (st != CDL_OK)
        return cdl_client_fail_cause(st, flood ? "flooded decryption failed"
                                               : "decryption failed (encrypted under another key?)");
    if (flood && flood_info)
        *flood_info = fi;
    return CDL_OK;
}

/* What a batch of the other packing would hold, for the messages: batch
 * packing has one ciphertext per value; slots packing is not known here
 * without compiling again, so only "a few". */
static void other_packing_hint(const cdl_he_plan *he, size_t got, int logits, char *buf, size_t cap)
{
    const int slots = cdl_he_plan_packing(he) == CDL_HE_PACKING_SLOTS;
    const size_t values = logits ? cdl_he_plan_output_size(he) : cdl_he_plan_input_size(he);
    buf[0] = '\0';
    if (slots && got == values)
        snprintf(buf, cap, " (one ciphertext per value, as batch packing makes them: made with --packing batch "
                           "or another plan? client and server must use the same plan)");
    else if (!slots && got < values)
        snprintf(buf, cap, " (a few ciphertexts, as slots packing makes them: made with --packing slots or "
                           "another plan? client and server must use the same plan)");
}

cdl_status cdl_client_load_batch(const cdl_client_plan *plan, const uint8_t *data, size_t len, int logits,
                                 const char *name, cdl_he_batch **b)
{
    if (!plan || !b)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_load_batch: NULL argument");
    *b = NULL;
    const cdl_he_plan *he = plan->he;
    const char *what = logits ? "encrypted logits" : "encrypted images", *where = name ? name : "the input";
    const size_t want = logits ? cdl_he_plan_output_ciphertexts(he) : cdl_he_plan_input_ciphertexts(he),
                 other = logits ? cdl_he_plan_input_ciphertexts(he) : cdl_he_plan_output_ciphertexts(he);
    char hint[200];
    cdl_status st = cdl_he_batch_load(plan->ctx, data, len, b);
    if (st != CDL_OK) {
        char cause[512];
        snprintf(cause, sizeof cause, "%s", cdl_last_error());
        return cdl_fail(st, "%s: not %s for this model and these parameters (%s packing): %s (made with another "
                        "plan, --packing or --log-n/--scale-bits?)", where, what, packing_name(he), cause);
    }
    size_t got = cdl_he_batch_count(*b);
    if (got == want) {
        /* images are fresh, at the plan's top level; logits are below it (in slots packing the counts of the
         * two can be equal: the level tells them apart) */
        const int top = cdl_he_plan_levels(he),
                  level = got ? cdl_ckks_ciphertext_level(cdl_he_batch_ciphertext(*b, 0)) : top;
        if (top == 0 || (level == top) != logits)
            return CDL_OK;
        cdl_he_batch_free(*b);
        *b = NULL;
        return cdl_fail(CDL_ERR_MISMATCH, "%s holds ciphertexts at level %d, but %s for this model are at level %s%d: %s",
                        where, level, what, logits ? "below " : "", top,
                        logits ? "is it the encrypted images? give the evaluate output"
                               : "is it the evaluate output, the encrypted logits? give the encrypted images");
    }
    if (got == other)
        snprintf(hint, sizeof hint, "%s", logits ? " (is it the encrypted images? give the evaluate output)"
                                                 : " (is it the evaluate output, the encrypted logits?)");
    else
        other_packing_hint(he, got, logits, hint, sizeof hint);
    cdl_he_batch_free(*b);
    *b = NULL;
    return cdl_fail(CDL_ERR_MISMATCH, "%s holds %zu ciphertexts per batch but %s for this model in %s packing have %zu%s",
                    where, got, what, packing_name(he), want, hint);
}

/* ---- whole inputs ------------------------------------------------------------------ */

/* The batches of an input: a container's parts, or the whole input as one. */
static cdl_status input_parts(const uint8_t *data, size_t len, const char *name, cdl_part **parts, size_t *count,
                              int *container)
{
    *parts = NULL;
    *count = 0;
    if (!data || !len)
        return cdl_fail(CDL_ERR_FORMAT, "%s is empty", name ? name : "the input");
    *container = cdl_parts_is(data, len);
    if (*container) {
        cdl_status st = cdl_parts_parse(data, len, CLIENT_MAX_PARTS, parts, count);
        return st == CDL_OK ? CDL_OK : cdl_client_fail_cause(st, "%s", name ? name : "the input");
    }
    *parts = cdl_alloc_array(1, sizeof **parts);
    if (!*parts)
        return CDL_ERR_NO_MEMORY;
    (*parts)[0].data = data;
    (*parts)[0].len = len;
    *count = 1;
    return CDL_OK;
}

/* Part i of `name` loaded and checked; named "NAME (batch i of n)" in messages. */
static cdl_status load_part(const cdl_client_plan *plan, const cdl_client_stream *io, const cdl_part *p, size_t i,
                            size_t count, int logits, cdl_he_batch **b)
{
    const char *name = io && io->name ? io->name : "the input";
    char where[4200];
    if (count > 1)
        snprintf(where, sizeof where, "%s (batch %zu of %zu)", name, i + 1, count);
    else
        snprintf(where, sizeof where, "%s", name);
    CDL_TRY(cdl_client_load_batch(plan, p->data, p->len, logits, where, b));
    if (io && io->release)
        io->release(io->release_user, p->data, p->len);
    return CDL_OK;
}

cdl_status cdl_client_encrypt(const cdl_client_plan *plan, cdl_client_keys *keys, const void *images,
                              cdl_client_dtype dtype, size_t n, int use_public, const cdl_client_stream *io,
                              cdl_client_stats *stats)
{
    cdl_client_stats st = {0, 0, 0, 0.0};
    if (stats)
        *stats = st;
    if (!plan || !keys || !images || !io)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_encrypt: NULL argument");
    if (n == 0)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "no images to encrypt");
    const size_t cap = cdl_he_plan_batch_capacity(plan->he), per = cdl_he_plan_input_size(plan->he);
    const size_t batches = (n + cap - 1) / cap;
    const int container = batches > 1;
    size_t elem = dtype == CDL_CLIENT_F64 ? sizeof(double) : dtype == CDL_CLIENT_F32 ? sizeof(float) : 1;
    cdl_client_progress p = {"encrypt", "images", -1, 0, batches, 0, n, 0};
    const double t0 = now_seconds();
    cdl_status s = container ? put_header(io, batches) : CDL_OK;
    if (s == CDL_OK)
        st.bytes += container ? CDL_PARTS_HEADER_BYTES : 0;
    for (size_t at = 0; s == CDL_OK && at < n; at += cap) {
        const size_t b = n - at < cap ? n - at : cap;
        p.batch = at / cap;
        p.done = at;
        p.batch_images = b;
        emit(io, &p);
        cdl_he_batch *batch = NULL;
        uint8_t *blob = NULL;
        size_t len = 0;
        s = cdl_client_encrypt_batch(plan, keys, (const uint8_t *)images + at * per * elem, dtype, b, use_public,
                                     &batch);
        if (s != CDL_OK)
            s = cdl_client_fail_cause(s, "encryption failed");
        else if ((s = cdl_he_batch_save(plan->ctx, batch, 0, &blob, &len)) != CDL_OK)
            s = cdl_client_fail_cause(s, "cannot serialize the encrypted batch");
        else if ((s = put_part(io, container, blob, len)) == CDL_OK)
            st.bytes += len + (container ? 8 : 0);
        cdl_free_bytes(blob);
        cdl_he_batch_free(batch);
    }
    if (s != CDL_OK)
        return s;
    p.done = n;
    p.batch = batches;
    p.batch_images = 0;
    emit(io, &p);
    st.images = n;
    st.batches = batches;
    st.seconds = now_seconds() - t0;
    if (stats)
        *stats = st;
    return CDL_OK;
}

cdl_status cdl_client_evaluate(const cdl_client_plan *plan, const cdl_client_keys *keys, const uint8_t *in,
                               size_t len, const cdl_client_stream *io, cdl_client_stats *stats)
{
    cdl_client_stats st = {0, 0, 0, 0.0};
    if (stats)
        *stats = st;
    if (!plan || !keys || !io)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_evaluate: NULL argument");
    CDL_TRY(cdl_client_keys_check(keys, NULL));
    cdl_part *parts = NULL;
    size_t count = 0;
    int container = 0;
    CDL_TRY(input_parts(in, len, io->name, &parts, &count, &container));
    cdl_status s = container ? put_header(io, count) : CDL_OK;
    if (s == CDL_OK)
        st.bytes += container ? CDL_PARTS_HEADER_BYTES : 0;
    for (size_t i = 0; s == CDL_OK && i < count; i++) {
        cdl_he_batch *batch = NULL, *res = NULL;
        uint8_t *blob = NULL;
        size_t blen = 0;
        if ((s = load_part(plan, io, &parts[i], i, count, 0, &batch)) != CDL_OK)
            break;
        const double t0 = now_seconds();
        s = evaluate_one(plan, keys, batch, io->progress, io->progress_user, i, count, &res);
        if (s == CDL_OK) {
            st.seconds += now_seconds() - t0;
            st.images += cdl_he_batch_images(batch);
            if ((s = cdl_he_batch_save(plan->ctx, res, 0, &blob, &blen)) != CDL_OK)
                s = cdl_client_fail_cause(s, "cannot serialize the encrypted logits");
            else if ((s = put_part(io, container, blob, blen)) == CDL_OK)
                st.bytes += blen + (container ? 8 : 0);
        }
        cdl_free_bytes(blob);
        cdl_he_batch_free(res);
        cdl_he_batch_free(batch);
    }
    cdl_parts_free(parts);
    if (s != CDL_OK)
        return s;
    st.batches = count;
    if (stats)
        *stats = st;
    return CDL_OK;
}

cdl_status cdl_client_decrypt(const cdl_client_plan *plan, cdl_client_keys *keys, const uint8_t *in, size_t len,
                              const cdl_ckks_flood_options *flood, const cdl_client_stream *io, double **logits,
                              size_t *n, cdl_ckks_flood_info *flood_info)
{
    if (!plan || !keys || !logits || !n)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_decrypt: NULL argument");
    *logits = NULL;
    *n = 0;
    if (!keys->sk)
        return cdl_fail(CDL_ERR_EXHAUSTED, "decrypting needs the secret key (none in these keys)");
    const size_t nout = cdl_he_plan_output_size(plan->he);
    cdl_part *parts = NULL;
    size_t count = 0, total = 0;
    int container = 0;
    CDL_TRY(input_parts(in, len, io ? io->name : NULL, &parts, &count, &container));
    cdl_ckks_flood_options fopt;
    cdl_ckks_flood_info worst = {0.0, 0.0, 0.0, 0.0};
    if (flood) { /* by default, every ciphertext of the input is one decryption the adversary sees */
        fopt = *flood;
        if (fopt.queries == 0.0)
            fopt.queries = (double)(count * cdl_he_plan_output_ciphertexts(plan->he));
        flood = &fopt;
        worst.queries = fopt.queries;
    }
    cdl_client_progress p = {"decrypt", "batches", -1, 0, count, 0, count, 0};
    double *out = NULL;
    cdl_status s = CDL_OK;
    for (size_t i = 0; s == CDL_OK && i < count; i++) {
        cdl_he_batch *b = NULL;
        if ((s = load_part(plan, io, &parts[i], i, count, 1, &b)) != CDL_OK)
            break;
        const size_t m = cdl_he_batch_images(b);
        double *grown = realloc(out, (total + m) * nout * sizeof *out);
        if (!grown) {
            s = cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for %zu logits", (total + m) * nout);
        } else {
            out = grown;
            cdl_ckks_flood_info fi = {0.0, 0.0, 0.0, 0.0};
            s = cdl_client_decrypt_batch(plan, keys, b, flood, out + total * nout, &fi);
            if (s == CDL_OK && flood) {
                worst.noise_log2 = fi.noise_log2 > worst.noise_log2 ? fi.noise_log2 : worst.noise_log2;
                worst.sigma_log2 = fi.sigma_log2 > worst.sigma_log2 ? fi.sigma_log2 : worst.sigma_log2;
                worst.slot_error = fi.slot_error > worst.slot_error ? fi.slot_error : worst.slot_error;
            }
            total += m;
        }
        cdl_he_batch_free(b);
        p.batch = i;
        p.done = i + 1;
        emit(io, &p);
    }
    cdl_parts_free(parts);
    if (s != CDL_OK) {
        free(out);
        return s;
    }
    if (flood_info)
        *flood_info = worst;
    *logits = out;
    *n = total;
    return CDL_OK;
}

/* ---- into memory ------------------------------------------------------------------- */

typedef struct membuf {
    uint8_t *data;
    size_t len, cap;
} membuf;

static int mem_write(void *user, const uint8_t *data, size_t len)
{
    membuf *m = user;
    if (len > SIZE_MAX - m->len)
        return -1;
    if (m->len + len > m->cap) {
        size_t cap = m->cap ? m->cap : 1 << 16;
        while (cap < m->len + len)
            cap = cap > SIZE_MAX / 2 ? m->len + len : 2 * cap;
        uint8_t *grown = realloc(m->data, cap);
        if (!grown)
            return -1;
        m->data = grown;
        m->cap = cap;
    }
    memcpy(m->data + m->len, data, len);
    m->len += len;
    return 0;
}

cdl_status cdl_client_encrypt_bytes(const cdl_client_plan *plan, cdl_client_keys *keys, const void *images,
                                    cdl_client_dtype dtype, size_t n, int use_public, uint8_t **out, size_t *out_len)
{
    if (!out || !out_len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_encrypt_bytes: NULL argument");
    *out = NULL;
    *out_len = 0;
    membuf m = {NULL, 0, 0};
    cdl_client_stream io = {NULL, mem_write, &m, NULL, NULL, NULL, NULL};
    cdl_status st = cdl_client_encrypt(plan, keys, images, dtype, n, use_public, &io, NULL);
    if (st == CDL_ERR_IO)
        st = cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for the encrypted images");
    if (st != CDL_OK) {
        free(m.data);
        return st;
    }
    *out = m.data;
    *out_len = m.len;
    return CDL_OK;
}

cdl_status cdl_client_evaluate_bytes(const cdl_client_plan *plan, const cdl_client_keys *keys, const uint8_t *in,
                                     size_t len, uint8_t **out, size_t *out_len)
{
    if (!out || !out_len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_evaluate_bytes: NULL argument");
    *out = NULL;
    *out_len = 0;
    membuf m = {NULL, 0, 0};
    cdl_client_stream io = {NULL, mem_write, &m, NULL, NULL, NULL, NULL};
    cdl_status st = cdl_client_evaluate(plan, keys, in, len, &io, NULL);
    if (st == CDL_ERR_IO)
        st = cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for the encrypted logits");
    if (st != CDL_OK) {
        free(m.data);
        return st;
    }
    *out = m.data;
    *out_len = m.len;
    return CDL_OK;
}
