/*
 * server.c: the HTTP service of include/cryptodl/serve.h on libmicrohttpd.
 *
 * Threads: one per connection (MHD_USE_THREAD_PER_CONNECTION), so that an
 * evaluation lasting seconds blocks only its own connection. A request is
 * handled in three steps, as microhttpd calls the access handler:
 *   1. headers: for a POST, route, Content-Length against the body limit,
 *      session lookup and admission (404 / 409 / 413 / 429 / 503 are
 *      answered here, before the client uploads megabytes); requests without
 *      a body are answered once complete, which keeps the connection alive;
 *   2. body chunks: appended to a buffer with a hard size limit;
 *   3. end of body: load and validate the bytes, do the work, respond.
 * What the request holds (session, queue place, body) is released when its
 * response is queued, before the client can read it (release_request); the
 * completion callback releases it when no response was, counts a request
 * without one in the metrics and emits the log line.
 *
 * Admission of predict requests: at most max_evaluations run at once and at
 * most max_queued more wait for a slot (their bodies in memory); a request
 * beyond both gets 503 with Retry-After at its headers. The place is taken
 * when the headers arrive and held until the response is queued.
 *
 * Sessions live in the session store (store.c): this process's table, or
 * Redis with the table as a per-replica cache; a predict holds its session
 * from its headers to its response, and gets the keys (a load from Redis on
 * a miss) once the body is in. A store that does not answer is a 503.
 *
 * Sessions of a slots-packing model carry Galois keys: the session body is
 * relin.key's bytes followed by galois.key's, split where the first object's
 * envelope says it ends (session_parts), each part checked by its loader.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "cryptodl/data.h"
#include "core/bytes.h"
#include "core/error.h"
#include "core/memory.h"
#include "ckks/ckks_internal.h"
#include "serve/serve_internal.h"
#include "serve/static.h"
#include "serve/store.h"

/* ---- endpoints and metrics ------------------------------------------------ */

typedef enum endpoint {
    EP_HEALTH,
    EP_METRICS,
    EP_MODELS,
    EP_SESSION_CREATE,
    EP_PREDICT,
    EP_SESSION_DELETE,
    EP_OTHER,
    EP_WEB, /* static files of cfg.web_dir (--web DIR) */
    EP_COUNT
} endpoint;

static const char *const endpoint_names[EP_COUNT] = {"health", "metrics", "models", "session_create",
                                                     "predict", "session_delete", "other", "web"};

/* Every status this server sends. */
static const int status_codes[] = {200, 201, 204, 400, 404, 405, 409, 413, 429, 500, 503};
#define N_STATUS (sizeof status_codes / sizeof status_codes[0])

struct cdl_serve {
    cdl_serve_config cfg;
    uint64_t max_body;
    serve_model *models;
    size_t n_models;
    serve_store store; /* the sessions: in this process, or in Redis with a cache here */
    int store_ok;
    struct MHD_Daemon *daemon;
    uint16_t port;
    char *models_json; /* the /v1/models body, built once */
    char *web_root;    /* realpath of cfg.web_dir, or NULL: no static files */
    /* evaluation admission and metrics, under lock */
    pthread_mutex_t lock;
    pthread_cond_t slot_free;
    int lock_ok;
    unsigned running, admitted;
    double last_eval_s;
    uint64_t requests[EP_COUNT][N_STATUS + 1]; /* last column: no response sent (client went away) */
    uint64_t evaluations, evaluation_failures, rejected_busy;
    double eval_seconds;
    uint64_t bytes_in, bytes_out;
};

/* ---- per-request state ----------------------------------------------------- */

typedef struct request {
    cdl_serve *srv;
    double t0;
    endpoint ep;
    int status;        /* 0 until a response is queued */
    char method[16];
    char log_path[160];
    uint8_t *body;
    size_t len, cap;
    int body_wanted;   /* a POST whose body we accumulate */
    int overflow;      /* the body went over the limit (no Content-Length): answer 413 at its end */
    int deferred;      /* GET / HEAD / DELETE / ...: begin() runs when the request is complete */
    uint64_t limit;    /* largest body for this request */
    uint64_t announced; /* Content-Length, if given */
    size_t model;
    size_t session;    /* valid if holds_session */
    int holds_session;
    int holds_place;   /* counted in cdl_serve.admitted */
    uint64_t bytes_in, bytes_out;
} request;

/* ---- responses --------------------------------------------------------------- */

/* Count a request in the metrics: when its response is queued (so that a
 * client that has its answer sees it counted), or at completion with status 0
 * when none was. */
static void count_request(cdl_serve *s, endpoint ep, int status, uint64_t bytes_out)
{
    size_t k = 0; /* k == N_STATUS: no response (the connection closed first) */
    while (k < N_STATUS && status_codes[k] != status)
        k++;
    pthread_mutex_lock(&s->lock);
    s->requests[ep][k]++;
    s->bytes_out += bytes_out;
    pthread_mutex_unlock(&s->lock);
}

/* Give back what a request holds: its session, its admission place, its body. Called as soon as its response
 * is queued (send_response), before the client can read a byte of it, so that a client sending its next batch
 * on receiving an answer finds its session free and the place released (it got a spurious 409 or 503 when this
 * waited for the completion callback, which runs after the last byte is sent); and by on_completed for a
 * request that got no response. */
static void release_request(cdl_serve *s, request *rq)
{
    if (rq->holds_session) {
        serve_store_release(&s->store, rq->session);
        rq->holds_session = 0;
    }
    if (rq->holds_place) {
        pthread_mutex_lock(&s->lock);
        s->admitted--;
        pthread_mutex_unlock(&s->lock);
        rq->holds_place = 0;
    }
    free(rq->body); /* never a response's data: those are built apart */
    rq->body = NULL;
    rq->len = rq->cap = 0;
}

static enum MHD_Result send_response(struct MHD_Connection *c, request *rq, int status, const char *ctype,
                                     void *data, size_t len, enum MHD_ResponseMemoryMode mode, const char *hname,
                                     const char *hval)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(data);
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (hname)
        MHD_add_response_header(r, hname, hval);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (ok == MHD_YES) {
        rq->status = status;
        rq->bytes_out = len;
        count_request(rq->srv, rq->ep, status, len);
        release_request(rq->srv, rq);
    }
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, request *rq, int status, json_t *obj, const char *hname,
                                 const char *hval)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text)
        return MHD_NO;
    size_t n = strlen(text);
    /* jansson allocates with malloc by default: microhttpd frees with free() */
    return send_response(c, rq, status, "application/json", text, n, MHD_RESPMEM_MUST_FREE, hname, hval);
}

static enum MHD_Result send_error_h(struct MHD_Connection *c, request *rq, int status, const char *hname,
                                    const char *hval, const char *fmt, ...) CDL_PRINTF(6, 7);
static enum MHD_Result send_error_h(struct MHD_Connection *c, request *rq, int status, const char *hname,
                                    const char *hval, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_json(c, rq, status, json_pack("{s:s}", "error", msg), hname, hval);
}

#define send_error(c, rq, status, ...) send_error_h((c), (rq), (status), NULL, NULL, __VA_ARGS__)

/* ---- models -------------------------------------------------------------------- */

static int valid_name(const char *s) { return serve_valid_name(s, strlen(s)); }

static void default_name(const char *path, char *out, size_t cap)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    size_t n = strlen(out);
    if (n > 5 && !strcmp(out + n - 5, ".onnx"))
        out[n - 5] = '\0';
}

static int log_qp_of(const cdl_ckks_param_spec *sp)
{
    int bits = 0;
    for (int i = 0; i < sp->q_count; i++)
        bits += sp->q_bits[i];
    for (int i = 0; i < sp->p_count; i++)
        bits += sp->p_bits[i];
    return bits;
}

/* Serialized sizes, from the formats of src/ckks/serialize.c and
 * src/runtime/he_batch.c: a relinearization key is the envelope, (dnum,
 * qp_count) and dnum x 2 x qp_count limbs; a Galois key set the envelope,
 * (count, dnum, qp_count) and per key its Galois element and the same limbs;
 * a batch is a 32-byte header and per ciphertext an 8-byte length, the
 * envelope, 20 bytes of header and either a 32-byte seed and one polynomial
 * (secret-key encryption) or two polynomials. */
static void object_sizes(serve_model *m)
{
    const cdl_ckks_context *ctx = m->ctx;
    uint64_t limb = (uint64_t)ctx->n * 8, limbs = (uint64_t)cdl_he_plan_levels(m->plan) + 1,
             count = cdl_he_plan_input_ciphertexts(m->plan),
             ksk = (uint64_t)ctx->dnum * 2 * (uint64_t)ctx->qp_count * limb;
    m->slots = cdl_he_plan_packing(m->plan) == CDL_HE_PACKING_SLOTS;
    m->relin_bytes = CDL_ENVELOPE_BYTES + 8 + ksk;
    m->galois_bytes = m->slots ? cdl_he_plan_galois_key_file_bytes(m->plan) : 0;
    m->batch_bytes = 32 + count * (8 + CDL_ENVELOPE_BYTES + 20 + 32 + limbs * limb);
    m->batch_pk_bytes = 32 + count * (8 + CDL_ENVELOPE_BYTES + 20 + 2 * limbs * limb);
}

static cdl_status load_model(const cdl_serve_model_spec *spec, serve_model *m)
{
    if (!spec->path)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "serve: a model has no path: give the .onnx file");
    if (spec->name) {
        if (!valid_name(spec->name))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                            "serve: model name '%s' is not 1..63 characters of A-Z a-z 0-9 . _ -", spec->name);
        snprintf(m->name, sizeof m->name, "%s", spec->name);
    } else {
        default_name(spec->path, m->name, sizeof m->name);
        if (!valid_name(m->name))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                            "serve: the file name of %s is not a usable model name: give one (--name)", spec->path);
    }
    m->path = strdup(spec->path);
    if (!m->path)
        return cdl_fail(CDL_ERR_NO_MEMORY, "serve: out of memory");
    cdl_nn_graph *g = NULL;
    cdl_status st = cdl_nn_load_file(spec->path, &g);
    if (st == CDL_OK && spec->approx)
        st = cdl_nn_apply_approx(g, spec->approx, NULL);
    if (st == CDL_OK)
        st = cdl_he_plan_new(g, &spec->he, &m->plan);
    if (st == CDL_OK)
        st = cdl_he_context_new(m->plan, &m->ctx);
    if (st == CDL_OK) {
        const cdl_nn_shape *sh = &g->input_shape;
        size_t at = (size_t)snprintf(m->shape, sizeof m->shape, "[");
        for (int i = 0; i < sh->rank && at < sizeof m->shape; i++)
            at += (size_t)snprintf(m->shape + at, sizeof m->shape - at, "%s%lld", i ? "," : "",
                                   (long long)sh->dims[i]);
        if (at < sizeof m->shape)
            snprintf(m->shape + at, sizeof m->shape - at, "]");
        object_sizes(m);
    }
    cdl_nn_graph_free(g);
    if (st != CDL_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", cdl_last_error());
        return cdl_fail(st, "serve: model %s: %s", spec->path, why);
    }
    return CDL_OK;
}

static json_t *model_json(const cdl_serve *s, const serve_model *m)
{
    cdl_serve_model_info in;
    cdl_serve_model_get(s, (size_t)(m - s->models), &in);
    json_t *shape = json_loads(in.input_shape, 0, NULL), *steps = json_array();
    const int *st = NULL;
    size_t n = 0;
    cdl_he_plan_galois_steps(m->plan, &st, &n);
    for (size_t i = 0; steps && i < n; i++)
        if (json_array_append_new(steps, json_integer(st[i])) != 0) {
            json_decref(steps);
            steps = NULL;
        }
    if (!steps) {
        json_decref(shape);
        return NULL;
    }
    return json_pack("{s:s, s:o, s:I, s:I, s:s, s:I, s:I, s:I, s:{s:i, s:i, s:i, s:i, s:I, s:s}, s:I, s:I, s:o, "
                     "s:I, s:I, s:s, s:s}",
                     "name", in.name, "input_shape", shape ? shape : json_array(), "input_size",
                     (json_int_t)in.input_size, "output_size", (json_int_t)in.output_size, "packing",
                     m->slots ? "slots" : "batch", "images_per_request", (json_int_t)in.batch_capacity,
                     "input_ciphertexts", (json_int_t)in.input_ciphertexts, "output_ciphertexts",
                     (json_int_t)in.output_ciphertexts, "he", "log_n", in.log_n, "log_qp", in.log_qp, "levels",
                     in.levels, "scale_bits", in.scale_bits, "batch_capacity", (json_int_t)in.batch_capacity,
                     "param_hash", in.param_hash, "relin_key_bytes", (json_int_t)in.relin_key_bytes,
                     "galois_key_bytes", (json_int_t)in.galois_key_bytes, "galois_steps", steps, "batch_bytes",
                     (json_int_t)in.batch_bytes, "max_body_bytes", (json_int_t)s->max_body, "sessions",
                     m->slots ? "POST /v1/models/NAME/sessions with relin.key followed by galois.key "
                                "(cat relin.key galois.key | curl --data-binary @- URL)"
                              : "POST /v1/models/NAME/sessions with relin.key",
                     "predict", "POST /v1/sessions/ID/predict with one encrypted batch");
}

static cdl_status build_models_json(cdl_serve *s)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < s->n_models; i++) {
        json_t *m = model_json(s, &s->models[i]);
        if (!m || json_array_append_new(arr, m) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    json_t *root = arr ? json_pack("{s:o}", "models", arr) : NULL;
    s->models_json = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    return s->models_json ? CDL_OK : cdl_fail(CDL_ERR_NO_MEMORY, "serve: cannot build the model list");
}

/* ---- metrics --------------------------------------------------------------------- */

/* The session store's part: the same names for both backends (memory sessions: every predict is a hit). */
static void store_metrics(FILE *f, const serve_store_stats *ss)
{
    fprintf(f,
            "# HELP cdl_session_store_info Where sessions live: memory (this process) or redis (shared).\n"
            "# TYPE cdl_session_store_info gauge\ncdl_session_store_info{backend=\"%s\"} 1\n"
            "# HELP cdl_store_hits_total Predicts whose session keys this replica held already.\n"
            "# TYPE cdl_store_hits_total counter\ncdl_store_hits_total %llu\n"
            "# HELP cdl_store_misses_total Predicts whose session keys were loaded from the shared store.\n"
            "# TYPE cdl_store_misses_total counter\ncdl_store_misses_total %llu\n"
            "# HELP cdl_store_errors_total Shared store operations that failed (unreachable, refused, bad bytes).\n"
            "# TYPE cdl_store_errors_total counter\ncdl_store_errors_total %llu\n"
            "# HELP cdl_store_evictions_total Cached session keys evicted for the cache budget.\n"
            "# TYPE cdl_store_evictions_total counter\ncdl_store_evictions_total %llu\n"
            "# HELP cdl_store_cache_bytes Session keys held by this replica's cache.\n"
            "# TYPE cdl_store_cache_bytes gauge\ncdl_store_cache_bytes %llu\n"
            "# HELP cdl_store_cache_budget_bytes The cache budget (0: memory sessions, no cache).\n"
            "# TYPE cdl_store_cache_budget_bytes gauge\ncdl_store_cache_budget_bytes %llu\n"
            "# HELP cdl_store_load_seconds Time to fetch a session's keys from the shared store and check them.\n"
            "# TYPE cdl_store_load_seconds histogram\n",
            ss->redis ? "redis" : "memory", (unsigned long long)ss->hits, (unsigned long long)ss->misses,
            (unsigned long long)ss->errors, (unsigned long long)ss->evictions, (unsigned long long)ss->cache_bytes,
            (unsigned long long)ss->cache_budget);
    uint64_t cum = 0;
    for (int b = 0; b < SERVE_LOAD_BUCKETS; b++) {
        cum += ss->loads[b];
        fprintf(f, "cdl_store_load_seconds_bucket{le=\"%g\"} %llu\n", serve_load_bucket_le[b], (unsigned long long)cum);
    }
    cum += ss->loads[SERVE_LOAD_BUCKETS];
    fprintf(f, "cdl_store_load_seconds_bucket{le=\"+Inf\"} %llu\ncdl_store_load_seconds_sum %.6f\n"
               "cdl_store_load_seconds_count %llu\n",
            (unsigned long long)cum, ss->load_seconds, (unsigned long long)cum);
}

static char *metrics_text(cdl_serve *s, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    serve_store_stats ss;
    serve_store_get_stats(&s->store, &ss);
    size_t live = ss.live;
    uint64_t created = ss.created, expired = ss.expired, deleted = ss.deleted;
    pthread_mutex_lock(&s->lock);
    fprintf(f, "# HELP cdl_http_requests_total HTTP requests by endpoint and status (none: no answer sent).\n"
               "# TYPE cdl_http_requests_total counter\n");
    for (int e = 0; e < EP_COUNT; e++)
        for (size_t k = 0; k <= N_STATUS; k++)
            if (s->requests[e][k]) {
                if (k < N_STATUS)
                    fprintf(f, "cdl_http_requests_total{endpoint=\"%s\",status=\"%d\"} %llu\n", endpoint_names[e],
                            status_codes[k], (unsigned long long)s->requests[e][k]);
                else
                    fprintf(f, "cdl_http_requests_total{endpoint=\"%s\",status=\"none\"} %llu\n",
                            endpoint_names[e], (unsigned long long)s->requests[e][k]);
            }
    fprintf(f,
            "# HELP cdl_evaluations_total Encrypted evaluations completed.\n# TYPE cdl_evaluations_total counter\n"
            "cdl_evaluations_total %llu\n"
            "# HELP cdl_evaluation_failures_total Evaluations that failed.\n"
            "# TYPE cdl_evaluation_failures_total counter\ncdl_evaluation_failures_total %llu\n"
            "# HELP cdl_evaluation_seconds_total Wall time spent in evaluations.\n"
            "# TYPE cdl_evaluation_seconds_total counter\ncdl_evaluation_seconds_total %.6f\n"
            "# HELP cdl_evaluations_running Evaluations running now.\n# TYPE cdl_evaluations_running gauge\n"
            "cdl_evaluations_running %u\n"
            "# HELP cdl_predict_admitted Predict requests admitted now (running, uploading or queued).\n"
            "# TYPE cdl_predict_admitted gauge\ncdl_predict_admitted %u\n"
            "# HELP cdl_predict_rejected_busy_total Predict requests refused with 503 (queue full).\n"
            "# TYPE cdl_predict_rejected_busy_total counter\ncdl_predict_rejected_busy_total %llu\n"
            "# HELP cdl_sessions Live sessions.\n# TYPE cdl_sessions gauge\ncdl_sessions %zu\n"
            "# HELP cdl_sessions_created_total Sessions created.\n# TYPE cdl_sessions_created_total counter\n"
            "cdl_sessions_created_total %llu\n"
            "# HELP cdl_sessions_expired_total Sessions evicted after their time to live.\n"
            "# TYPE cdl_sessions_expired_total counter\ncdl_sessions_expired_total %llu\n"
            "# HELP cdl_sessions_deleted_total Sessions deleted by their client.\n"
            "# TYPE cdl_sessions_deleted_total counter\ncdl_sessions_deleted_total %llu\n"
            "# HELP cdl_http_received_bytes_total Request body bytes received.\n"
            "# TYPE cdl_http_received_bytes_total counter\ncdl_http_received_bytes_total %llu\n"
            "# HELP cdl_http_sent_bytes_total Response body bytes queued for sending.\n"
            "# TYPE cdl_http_sent_bytes_total counter\ncdl_http_sent_bytes_total %llu\n",
            (unsigned long long)s->evaluations, (unsigned long long)s->evaluation_failures, s->eval_seconds,
            s->running, s->admitted, (unsigned long long)s->rejected_busy, live, (unsigned long long)created,
            (unsigned long long)expired, (unsigned long long)deleted, (unsigned long long)s->bytes_in,
            (unsigned long long)s->bytes_out);
    pthread_mutex_unlock(&s->lock);
    store_metrics(f, &ss);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* ---- request steps ---------------------------------------------------------------- */

/* A secret key is recognised by its envelope's object type, whatever else is
 * wrong with it; is_secret_key wipes its bytes at once. */
static int secret_key_header(const uint8_t *data, size_t len)
{
    return len >= 8 && memcmp(data, "CDL", 4) == 0 && (uint16_t)(data[6] | (data[7] << 8)) == CDL_OBJ_SECRET_KEY;
}

static int is_secret_key(uint8_t *data, size_t len)
{
    if (!secret_key_header(data, len))
        return 0;
    sodium_memzero(data, len);
    return 1;
}

/* Exactly one serialized object (its envelope's declared length ends at len), and not a secret key. */
static int one_object(const uint8_t *d, size_t len)
{
    if (len < CDL_ENVELOPE_BYTES || memcmp(d, "CDL", 4) != 0 || secret_key_header(d, len))
        return 0;
    uint64_t stored = 0;
    for (int i = 7; i >= 0; i--)
        stored = (stored << 8) | d[44 + i];
    return stored == len - CDL_ENVELOPE_BYTES;
}

#define SECRET_KEY_REFUSED                                                                                           \
    "this is a secret key: a server must never receive it (the bytes were discarded). Keep secret.key on the "   \
    "client, and if it was sent over a network treat it as compromised and make new keys. Upload relin.key instead"

/* Copy url into the log path, with a session id replaced by "#seq" or "{unknown}". */
static void set_log_path(request *rq, const char *prefix, uint64_t seq, const char *suffix)
{
    if (seq)
        snprintf(rq->log_path, sizeof rq->log_path, "%s#%llu%s", prefix, (unsigned long long)seq, suffix);
    else
        snprintf(rq->log_path, sizeof rq->log_path, "%s{unknown}%s", prefix, suffix);
}

static enum MHD_Result method_not_allowed(struct MHD_Connection *c, request *rq, const char *allow, const char *url)
{
    return send_error_h(c, rq, 405, MHD_HTTP_HEADER_ALLOW, allow, "%s is not allowed on %s: use %s", rq->method, url,
                        allow);
}

/* Content-Length against this request's limit (rq->limit); 1 = too large. Absent
 * (chunked): checked as the body arrives. */
static int body_too_large(struct MHD_Connection *c, request *rq)
{
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    if (errno || *end || end == cl || v > rq->limit)
        return 1;
    rq->announced = v;
    return 0;
}

/* Admitted: reserve the announced body, up to 64 MiB now; append() grows the
 * rest (realloc moves pages, not bytes). */
static void reserve_body(request *rq)
{
    size_t first = rq->announced < ((uint64_t)64 << 20) ? (size_t)rq->announced : (size_t)64 << 20;
    if (first) {
        rq->body = malloc(first);
        rq->cap = rq->body ? first : 0;
    }
    rq->body_wanted = 1;
}

static enum MHD_Result too_large(struct MHD_Connection *c, request *rq)
{
    return send_error(c, rq, 413,
                      "the body is larger than the limit of %llu bytes for this request (the model's session keys "
                      "or one encrypted batch of it fit; the operator sets the limit with --max-body)",
                      (unsigned long long)rq->limit);
}

/* Predict: once the session is known, its model's batch size caps the body
 * (one public-key batch + 1 MiB; slots batches are a few ciphertexts). 1 when
 * the announced body is above it (413 sent, naming the packing). */
static int model_batch_too_large(cdl_serve *s, struct MHD_Connection *c, request *rq, enum MHD_Result *r)
{
    const serve_model *m = &s->models[rq->model];
    uint64_t batch = m->batch_pk_bytes + (1u << 20);
    if (batch >= rq->limit)
        return 0;
    rq->limit = batch;
    if (!body_too_large(c, rq))
        return 0;
    *r = send_error(c, rq, 413,
                    "the body is larger than the limit of %llu bytes for a batch of model '%s' (%s packing: %zu "
                    "ciphertexts of up to %zu images): encrypted with another packing or plan, or several batches? "
                    "Send one batch per request",
                    (unsigned long long)rq->limit, m->name, m->slots ? "slots" : "batch",
                    cdl_he_plan_input_ciphertexts(m->plan), cdl_he_plan_batch_capacity(m->plan));
    return 1;
}

static size_t find_model(const cdl_serve *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->n_models; i++)
        if (strlen(s->models[i].name) == len && !memcmp(s->models[i].name, name, len))
            return i;
    return s->n_models;
}

/* 503 for a shared session store that did not answer: nothing was done, another replica or a retry may do. */
static enum MHD_Result store_unavailable(struct MHD_Connection *c, request *rq)
{
    return send_error_h(c, rq, 503, MHD_HTTP_HEADER_RETRY_AFTER, "1",
                        "the session store is unavailable (%s): retry in a moment", cdl_last_error());
}

/* GET or HEAD of a static file below web_root (static.c decides which paths are files and keeps them inside). */
static enum MHD_Result serve_web(cdl_serve *s, struct MHD_Connection *c, request *rq, const char *url)
{
    char rel[1024];
    size_t size = 0;
    int fd = serve_static_path(url, rel, sizeof rel) == 0 ? serve_static_open(s->web_root, rel, &size) : -1;
    if (fd < 0)
        return send_error(c, rq, 404, "no such file here: %.150s (the page is at /; the API: /v1/...)",
                          rq->log_path);
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)size, fd); /* closes fd when destroyed */
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, serve_static_type(rel));
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    if (ok == MHD_YES) {
        const int head = !strcmp(rq->method, "HEAD");
        rq->status = 200;
        rq->bytes_out = head ? 0 : size;
        count_request(s, rq->ep, 200, rq->bytes_out);
        release_request(s, rq);
    }
    return ok;
}

static const char *const API_HELP = "GET /v1/health, GET /v1/metrics, GET /v1/models, POST /v1/models/NAME/sessions, "
                                    "POST /v1/sessions/ID/predict, DELETE /v1/sessions/ID";

/* Step 1: the headers are in. Either a response is queued now, or a POST body is wanted. */
static enum MHD_Result begin(cdl_serve *s, struct MHD_Connection *c, request *rq, const char *url)
{
    const int get = !strcmp(rq->method, "GET") || !strcmp(rq->method, "HEAD");
    const int post = !strcmp(rq->method, "POST");
    static const char models_prefix[] = "/v1/models/", sessions_prefix[] = "/v1/sessions/";
    snprintf(rq->log_path, sizeof rq->log_path, "%.150s", url);
    for (char *p = rq->log_path; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            *p = '?';

    if (!strcmp(url, "/v1/health")) {
        rq->ep = EP_HEALTH;
        if (!get)
            return method_not_allowed(c, rq, "GET", url);
        static char ok[] = "{\"status\":\"ok\"}";
        return send_response(c, rq, 200, "application/json", ok, sizeof ok - 1, MHD_RESPMEM_PERSISTENT, NULL, NULL);
    }
    if (!strcmp(url, "/v1/metrics")) {
        rq->ep = EP_METRICS;
        if (!get)
            return method_not_allowed(c, rq, "GET", url);
        size_t n = 0;
        char *text = metrics_text(s, &n);
        if (!text)
            return send_error(c, rq, 500, "out of memory for the metrics");
        return send_response(c, rq, 200, "text/plain; version=0.0.4", text, n, MHD_RESPMEM_MUST_FREE, NULL, NULL);
    }
    if (!strcmp(url, "/v1/models")) {
        rq->ep = EP_MODELS;
        if (!get)
            return method_not_allowed(c, rq, "GET", url);
        return send_response(c, rq, 200, "application/json", s->models_json, strlen(s->models_json),
                             MHD_RESPMEM_PERSISTENT, NULL, NULL);
    }
    if (!strncmp(url, models_prefix, sizeof models_prefix - 1)) {
        const char *name = url + sizeof models_prefix - 1, *slash = strchr(name, '/');
        if (slash && !strcmp(slash, "/sessions")) {
            rq->ep = EP_SESSION_CREATE;
            if (!post)
                return method_not_allowed(c, rq, "POST", url);
            rq->model = find_model(s, name, (size_t)(slash - name));
            if (rq->model == s->n_models)
                return send_error(c, rq, 404, "no model named '%.*s' here: GET /v1/models lists them",
                                  (int)(slash - name > 64 ? 64 : slash - name), name);
            /* the keys have a known size (relinearization key, plus Galois keys in slots packing): no more than
             * that (and some slack) is read */
            uint64_t key = s->models[rq->model].relin_bytes + s->models[rq->model].galois_bytes + 65536;
            rq->limit = key < s->max_body ? key : s->max_body;
            if (body_too_large(c, rq))
                return too_large(c, rq);
            if (!serve_store_room(&s->store))
                return send_error(c, rq, 429,
                                  "all %zu sessions are in use: delete one you no longer need (DELETE "
                                  "/v1/sessions/ID) or retry after one expires (%u s after its last use)",
                                  s->cfg.max_sessions, s->cfg.session_ttl);
            reserve_body(rq);
            return MHD_YES;
        }
    }
    if (!strncmp(url, sessions_prefix, sizeof sessions_prefix - 1)) {
        const char *id = url + sizeof sessions_prefix - 1, *slash = strchr(id, '/');
        char idbuf[2 * SERVE_ID_BYTES + 2];
        size_t idlen = slash ? (size_t)(slash - id) : strlen(id);
        snprintf(idbuf, sizeof idbuf, "%.*s", (int)(idlen < sizeof idbuf - 1 ? idlen : sizeof idbuf - 1), id);
        if (idlen >= sizeof idbuf - 1)
            idbuf[0] = '\0'; /* too long to be an id */
        uint64_t seq = 0;
        if (!slash) {
            rq->ep = EP_SESSION_DELETE;
            set_log_path(rq, sessions_prefix, 0, "");
            if (strcmp(rq->method, "DELETE"))
                return method_not_allowed(c, rq, "DELETE", "/v1/sessions/ID");
            serve_store_result d = serve_store_delete(&s->store, idbuf, &seq);
            if (d == SERVE_STORE_UNAVAILABLE || d == SERVE_STORE_BAD)
                return store_unavailable(c, rq);
            if (d != SERVE_STORE_OK)
                return send_error(c, rq, 404, "unknown session (never created, deleted, or expired)");
            set_log_path(rq, sessions_prefix, seq, "");
            return send_response(c, rq, 204, NULL, NULL, 0, MHD_RESPMEM_PERSISTENT, NULL, NULL);
        }
        if (!strcmp(slash, "/predict")) {
            rq->ep = EP_PREDICT;
            set_log_path(rq, sessions_prefix, 0, "/predict");
            if (!post)
                return method_not_allowed(c, rq, "POST", "/v1/sessions/ID/predict");
            rq->limit = s->max_body;
            if (body_too_large(c, rq))
                return too_large(c, rq);
            serve_store_result r = serve_store_acquire(&s->store, idbuf, &rq->session, &seq, &rq->model);
            set_log_path(rq, sessions_prefix, seq, "/predict");
            if (r == SERVE_STORE_UNKNOWN)
                return send_error(c, rq, 404,
                                  "unknown session (never created, deleted, or expired after %u s unused): create "
                                  "one with POST /v1/models/NAME/sessions",
                                  s->cfg.session_ttl);
            if (r == SERVE_STORE_BUSY)
                return send_error(c, rq, 409,
                                  "this session is already evaluating a batch: wait for that response, then send "
                                  "the next one");
            if (r == SERVE_STORE_UNAVAILABLE || r == SERVE_STORE_FULL)
                return store_unavailable(c, rq);
            if (r != SERVE_STORE_OK)
                return send_error(c, rq, 500, "this session cannot be used here: %s", cdl_last_error());
            rq->holds_session = 1;
            enum MHD_Result answered;
            if (model_batch_too_large(s, c, rq, &answered))
                return answered;
            pthread_mutex_lock(&s->lock);
            int admit = s->admitted < s->cfg.max_evaluations + s->cfg.max_queued;
            if (admit)
                s->admitted++;
            else
                s->rejected_busy++;
            double wait = s->last_eval_s;
            pthread_mutex_unlock(&s->lock);
            if (!admit) {
                char retry[32];
                snprintf(retry, sizeof retry, "%d", wait < 1 ? 1 : (int)ceil(wait));
                return send_error_h(c, rq, 503, MHD_HTTP_HEADER_RETRY_AFTER, retry,
                                    "the server is busy: %u evaluation(s) running and %u waiting; retry after %s s",
                                    s->cfg.max_evaluations, s->cfg.max_queued, retry);
            }
            rq->holds_place = 1;
            reserve_body(rq);
            return MHD_YES;
        }
    }
    if (s->web_root && strncmp(url, "/v1/", 4) != 0 && strcmp(url, "/v1") != 0) {
        rq->ep = EP_WEB;
        if (!get)
            return method_not_allowed(c, rq, "GET, HEAD", url);
        return serve_web(s, c, rq, url);
    }
    rq->ep = EP_OTHER;
    return send_error(c, rq, 404, "no such endpoint: %s %.150s. The API: %s", rq->method, rq->log_path, API_HELP);
}

/* Step 2: a chunk of the body. */
static enum MHD_Result append(cdl_serve *s, struct MHD_Connection *c, request *rq, const char *data, size_t n)
{
    rq->bytes_in += n;
    if (rq->overflow || n > rq->limit - rq->len) {
        /* microhttpd (0.9.75) cannot answer in the middle of a body: drop the bytes, answer 413 at its end, and
         * close the connection if the client sends more than twice the limit in all. */
        rq->overflow = 1;
        free(rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
        return rq->bytes_in > 2 * rq->limit ? MHD_NO : MHD_YES;
    }
    if (rq->len + n > rq->cap) {
        size_t cap = rq->cap ? rq->cap : 1 << 20;
        while (cap < rq->len + n)
            cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
        if (cap > rq->limit)
            cap = (size_t)rq->limit;
        uint8_t *nb = realloc(rq->body, cap);
        if (!nb)
            return send_error(c, rq, 503, "out of memory for the request body: retry later");
        rq->body = nb;
        rq->cap = cap;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len += n;
    return MHD_YES;
}

/* Load and check the session's keys from the body (the 400 answer is sent on failure: *sent). *w: a Redis write
 * of the body running meanwhile, abandoned before the body is wiped. */
static enum MHD_Result session_keys(cdl_serve *s, struct MHD_Connection *c, request *rq, cdl_ckks_relin_key **rlk,
                                    cdl_ckks_galois_keys **gk, serve_store_write **w, int *sent)
{
    const serve_model *m = &s->models[rq->model];
    const size_t first = serve_first_object_len(rq->body, rq->len), rest = rq->len - first;
    *sent = 1;
    if (is_secret_key(rq->body, rq->len) || (rest && is_secret_key(rq->body + first, rest)))
        return send_error(c, rq, 400, "%s", SECRET_KEY_REFUSED);
    if (!m->slots && rest)
        return send_error(c, rq, 400,
                          "model '%s' uses batch packing: send relin.key alone (the body holds %zu more bytes after "
                          "the relinearization key; Galois keys are for a model served with --packing slots)",
                          m->name, rest);
    if (cdl_ckks_relin_key_load(m->ctx, rq->body, first, rlk) != CDL_OK) {
        serve_store_write_abandon(&s->store, *w); /* it reads the body: ended before the wipe */
        *w = NULL;
        sodium_memzero(rq->body, rq->len); /* whatever it was, it is not kept */
        return send_error(c, rq, 400,
                          "not a relinearization key for model '%s': %s. Send the relin.key that `cryptodl keygen` "
                          "writes with this model's parameters%s (GET /v1/models: param_hash)",
                          m->name, cdl_last_error(), m->slots ? ", followed by galois.key" : "");
    }
    if (m->slots && !rest)
        return send_error(c, rq, 400,
                          "model '%s' uses slots packing: a session needs the Galois keys too. Send relin.key followed "
                          "by galois.key (cat relin.key galois.key | curl --data-binary @- URL), both from `cryptodl "
                          "keygen` with this model's plan (--packing slots)",
                          m->name);
    if (m->slots && cdl_ckks_galois_keys_load(m->ctx, rq->body + first, rest, gk) != CDL_OK)
        return send_error(c, rq, 400,
                          "the bytes after the relinearization key are not Galois keys for model '%s': %s. Send "
                          "relin.key followed by galois.key, both from `cryptodl keygen` with this model's plan",
                          m->name, cdl_last_error());
    if (m->slots && cdl_he_check_galois_keys(m->plan, *gk) != CDL_OK)
        return send_error(c, rq, 400,
                          "model '%s': %s. Made for another plan or packing? Make the keys with this model's plan "
                          "(GET /v1/models: packing, galois_steps)",
                          m->name, cdl_last_error());
    *sent = 0;
    return MHD_YES;
}

static enum MHD_Result create_session(cdl_serve *s, struct MHD_Connection *c, request *rq)
{
    const serve_model *m = &s->models[rq->model];
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL;
    int sent = 0;
    /* Redis sessions: the body is what Redis keeps (the keys' serialized form). Written after the checks, it made
     * a 230 MB session cost +80% over memory sessions; so it is written while the loaders check it, in a thread,
     * without its record: no reader sees it before the checks pass (serve_store_create_written), and it is removed
     * if they fail. Only a body shaped like keys goes early: exactly one serialized object (batch packing) or two
     * (slots), neither a secret key (which must never reach Redis); any other body is checked first, as before. */
    serve_store_write *w = NULL;
    const double t_received = serve_now();
    const size_t first = serve_first_object_len(rq->body, rq->len);
    if (s->store.redis && (m->slots ? first < rq->len && one_object(rq->body, first) &&
                                          one_object(rq->body + first, rq->len - first)
                                    : one_object(rq->body, rq->len)))
        w = serve_store_write_begin(&s->store, rq->body, rq->len);
    enum MHD_Result r = session_keys(s, c, rq, &rlk, &gk, &w, &sent);
    const double t_checked = serve_now();
    char id[2 * SERVE_ID_BYTES + 1];
    uint64_t seq = 0;
    serve_store_result cr = SERVE_STORE_OK;
    if (sent)
        serve_store_write_abandon(&s->store, w);
    else if (w)
        cr = serve_store_create_written(&s->store, w, rq->model, rlk, gk, id, &seq);
    else
        cr = serve_store_create(&s->store, rq->model, rlk, gk, rq->body, rq->len, id, &seq);
    free(rq->body);
    rq->body = NULL;
    if (sent || cr != SERVE_STORE_OK) {
        cdl_ckks_relin_key_free(rlk);
        cdl_ckks_galois_keys_free(gk);
    }
    if (sent)
        return r;
    if (cr == SERVE_STORE_FULL && !s->store.redis)
        return send_error(c, rq, 429, "all %zu sessions are in use: delete one (DELETE /v1/sessions/ID) or retry "
                          "after one expires", s->cfg.max_sessions);
    if (cr == SERVE_STORE_FULL)
        return send_error(c, rq, 429, "the session store is full (%s): delete sessions you no longer need (DELETE "
                          "/v1/sessions/ID) or retry after some expire", cdl_last_error());
    if (cr != SERVE_STORE_OK)
        return store_unavailable(c, rq);
    snprintf(rq->log_path, sizeof rq->log_path, "/v1/models/%s/sessions -> #%llu", m->name, (unsigned long long)seq);
    json_t *o = json_pack("{s:s, s:s, s:i}", "session", id, "model", m->name, "expires_in", (int)s->cfg.session_ttl);
    sodium_memzero(id, sizeof id);
    /* upload (headers to the body's end), the loaders' checks, then what the store added after them (Redis: the
     * rest of the write begun before the checks, and the record) */
    char timing[120];
    snprintf(timing, sizeof timing, "upload;dur=%.1f, check;dur=%.1f, store;dur=%.1f", 1e3 * (t_received - rq->t0),
             1e3 * (t_checked - t_received), 1e3 * (serve_now() - t_checked));
    return send_json(c, rq, 201, o, "Server-Timing", timing);
}

static enum MHD_Result predict(cdl_serve *s, struct MHD_Connection *c, request *rq)
{
    const serve_model *m = &s->models[rq->model];
    if (is_secret_key(rq->body, rq->len))
        return send_error(c, rq, 400, "%s", SECRET_KEY_REFUSED);
    if (cdl_parts_is(rq->body, rq->len))
        return send_error(c, rq, 400,
                          "this is a file of several batches (CDLPARTS): send one batch per request, at most %zu "
                          "images for model '%s' (cryptodl encrypt --limit %zu)",
                          cdl_he_plan_batch_capacity(m->plan), m->name, cdl_he_plan_batch_capacity(m->plan));
    const cdl_ckks_galois_keys *gk = NULL;
    const cdl_ckks_relin_key *rlk = NULL;
    double store_s = 0;
    serve_store_result kr = serve_store_keys(&s->store, rq->session, &rlk, &gk, &store_s);
    if (kr == SERVE_STORE_UNKNOWN)
        return send_error(c, rq, 404, "unknown session (deleted or expired meanwhile): create one with POST "
                                      "/v1/models/NAME/sessions");
    if (kr == SERVE_STORE_UNAVAILABLE || kr == SERVE_STORE_FULL)
        return store_unavailable(c, rq);
    if (kr != SERVE_STORE_OK)
        return send_error(c, rq, 500, "this session cannot be used: %s. Create a new session", cdl_last_error());
    cdl_he_batch *in = NULL, *out = NULL;
    const double t_received = serve_now() - store_s; /* the key load is reported apart */
    if (cdl_he_batch_load(m->ctx, rq->body, rq->len, &in) != CDL_OK) {
        sodium_memzero(rq->body, rq->len);
        return send_error(c, rq, 400,
                          "not an encrypted batch for model '%s': %s. Send the file `cryptodl predict %s --encrypt` "
                          "writes, made with the keys of this session",
                          m->name, cdl_last_error(), m->name);
    }
    free(rq->body); /* the batch holds the ciphertexts now */
    rq->body = NULL;
    if (cdl_he_batch_count(in) != cdl_he_plan_input_ciphertexts(m->plan)) {
        size_t got = cdl_he_batch_count(in);
        cdl_he_batch_free(in);
        return send_error(c, rq, 400,
                          "the batch holds %zu ciphertexts but model '%s' takes %zu per batch in %s packing: encrypted "
                          "with another packing or plan? (GET /v1/models: packing, input_ciphertexts)",
                          got, m->name, cdl_he_plan_input_ciphertexts(m->plan), m->slots ? "slots" : "batch");
    }
    /* the image count of the batch header is outside every checksum: refused here, as a bad request, rather
     * than by the evaluator after waiting for a slot (and counted as an evaluation failure) */
    if (cdl_he_batch_images(in) > cdl_he_plan_batch_capacity(m->plan)) {
        size_t got = cdl_he_batch_images(in);
        cdl_he_batch_free(in);
        return send_error(c, rq, 400,
                          "the batch claims %zu images but model '%s' takes at most %zu per request in %s packing: "
                          "a corrupt batch header, or encrypted with another plan? (GET /v1/models: "
                          "images_per_request)",
                          got, m->name, cdl_he_plan_batch_capacity(m->plan), m->slots ? "slots" : "batch");
    }
    const double t_loaded = serve_now();

    pthread_mutex_lock(&s->lock);
    while (s->running >= s->cfg.max_evaluations)
        pthread_cond_wait(&s->slot_free, &s->lock);
    s->running++;
    pthread_mutex_unlock(&s->lock);
    cdl_set_threads(s->cfg.eval_threads); /* this thread's OpenMP team size */
    double t0 = serve_now();
    cdl_status st = cdl_he_evaluate_keys(m->plan, m->ctx, rlk, gk, in, NULL, NULL, &out);
    double dt = serve_now() - t0;
    pthread_mutex_lock(&s->lock);
    s->running--;
    if (st == CDL_OK) {
        s->evaluations++;
        s->eval_seconds += dt;
        s->last_eval_s = dt;
    } else {
        s->evaluation_failures++;
    }
    pthread_cond_signal(&s->slot_free);
    pthread_mutex_unlock(&s->lock);
    cdl_he_batch_free(in);
    if (st != CDL_OK) {
        int client = st == CDL_ERR_MISMATCH || st == CDL_ERR_INVALID_ARGUMENT || st == CDL_ERR_EXHAUSTED;
        return send_error(c, rq, client ? 400 : 500, "%s: %s", client ? "the batch does not fit the model"
                                                                      : "the evaluation failed",
                          cdl_last_error());
    }
    uint8_t *blob = NULL;
    size_t len = 0;
    st = cdl_he_batch_save(m->ctx, out, 0, &blob, &len);
    cdl_he_batch_free(out);
    if (st != CDL_OK)
        return send_error(c, rq, 500, "cannot serialize the encrypted logits: %s", cdl_last_error());
    char timing[240]; /* upload, session keys from the store (a miss), validation, queue, evaluation, serialization */
    snprintf(timing, sizeof timing,
             "upload;dur=%.1f, store;dur=%.1f, load;dur=%.1f, queue;dur=%.1f, eval;dur=%.1f, save;dur=%.1f",
             1e3 * (t_received - rq->t0), 1e3 * store_s, 1e3 * (t_loaded - t_received - store_s),
             1e3 * (t0 - t_loaded), 1e3 * dt, 1e3 * (serve_now() - t0 - dt));
    return send_response(c, rq, 200, "application/octet-stream", blob, len, MHD_RESPMEM_MUST_FREE, "Server-Timing",
                         timing);
}

/* Step 3: the body is complete. */
static enum MHD_Result finish(cdl_serve *s, struct MHD_Connection *c, request *rq)
{
    if (rq->overflow)
        return too_large(c, rq);
    if (rq->len == 0)
        return send_error(c, rq, 400, "empty body: send the file's bytes (curl --data-binary @FILE)");
    return rq->ep == EP_PREDICT ? predict(s, c, rq) : create_session(s, c, rq);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    cdl_serve *s = cls;
    request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        rq->srv = s;
        rq->t0 = serve_now();
        snprintf(rq->method, sizeof rq->method, "%s", method);
        if (strcmp(method, "POST") && strcmp(method, "PUT")) {
            /* no body expected: answer once microhttpd has the whole request (it keeps the connection alive
             * then; an answer queued at the headers closes it) */
            rq->deferred = 1;
            return MHD_YES;
        }
        return begin(s, c, rq, url);
    }
    if (rq->deferred) {
        if (*upload_data_size) { /* a body nobody asked for: read at most 64 KiB of it */
            rq->bytes_in += *upload_data_size;
            *upload_data_size = 0;
            return rq->bytes_in > 65536 ? MHD_NO : MHD_YES;
        }
        rq->deferred = 0;
        return begin(s, c, rq, url);
    }
    if (rq->status || !rq->body_wanted) { /* answered already: drop whatever else arrives */
        if (*upload_data_size && !rq->status)
            rq->bytes_in += *upload_data_size;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return append(s, c, rq, upload_data, n);
    }
    return finish(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    cdl_serve *s = cls;
    request *rq = *con_cls;
    if (!rq)
        return;
    *con_cls = NULL;
    /* counted before its place is given back: a metrics reader that sees the place free sees the request counted */
    pthread_mutex_lock(&s->lock);
    if (!rq->status)
        s->requests[rq->ep][N_STATUS]++;
    s->bytes_in += rq->bytes_in;
    pthread_mutex_unlock(&s->lock);
    release_request(s, rq); /* what is left when no response was queued */
    if (s->cfg.log)
        s->cfg.log(s->cfg.log_user, rq->method, rq->log_path, rq->status, rq->bytes_in,
                   toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? rq->bytes_out : 0, 1e3 * (serve_now() - rq->t0));
    free(rq);
}

/* ---- public API ----------------------------------------------------------------- */

int cdl_serve_have_redis(void) { return serve_redis_available(); }

void cdl_serve_config_default(cdl_serve_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->host = "127.0.0.1";
    cfg->max_sessions = 16;
    cfg->session_ttl = 3600;
    cfg->max_evaluations = 1;
    cfg->max_queued = 1;
    cfg->max_connections = 64;
    cfg->idle_timeout = 120;
}

static cdl_status resolve(const char *host, uint16_t port, struct sockaddr_storage *ss, int *ipv6)
{
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "serve: cannot resolve the bind address '%s': %s", host,
                        gai_strerror(rc));
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *ipv6 = res->ai_family == AF_INET6;
    if (*ipv6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    freeaddrinfo(res);
    return CDL_OK;
}

cdl_status cdl_serve_start(const cdl_serve_config *cfg, cdl_serve **out)
{
    if (!cfg || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_serve_start: NULL argument");
    *out = NULL;
    if (!cfg->models || cfg->n_models == 0 || cfg->n_models > CDL_SERVE_MAX_MODELS)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "serve: give 1..%d models (got %zu)", CDL_SERVE_MAX_MODELS,
                        cfg->n_models);
    if (cfg->max_sessions == 0 || cfg->max_sessions > 100000 || cfg->max_evaluations == 0 ||
        cfg->max_connections == 0 || cfg->session_ttl == 0)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "serve: max sessions (1..100000), max evaluations, max "
                                                  "connections and the session time to live must be positive");
    if (sodium_init() < 0)
        return cdl_fail(CDL_ERR_INTERNAL, "serve: libsodium failed to initialize");
    struct sockaddr_storage addr;
    int ipv6 = 0;
    CDL_TRY(resolve(cfg->host ? cfg->host : "127.0.0.1", cfg->port, &addr, &ipv6));

    cdl_serve *s = calloc(1, sizeof *s);
    if (!s)
        return cdl_fail(CDL_ERR_NO_MEMORY, "serve: out of memory");
    s->cfg = *cfg;
    s->cfg.models = NULL; /* not kept: the caller's array */
    s->cfg.web_dir = NULL; /* kept as web_root */
    cdl_status st = CDL_OK;
    if (pthread_mutex_init(&s->lock, NULL) != 0 || pthread_cond_init(&s->slot_free, NULL) != 0) {
        free(s);
        return cdl_fail(CDL_ERR_INTERNAL, "serve: cannot create a lock");
    }
    s->lock_ok = 1;
    s->models = calloc(cfg->n_models, sizeof *s->models);
    if (!s->models) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "serve: out of memory");
        goto fail;
    }
    s->n_models = cfg->n_models;
    if (cfg->web_dir) {
        struct stat wst;
        s->web_root = realpath(cfg->web_dir, NULL);
        if (!s->web_root || stat(s->web_root, &wst) != 0 || !S_ISDIR(wst.st_mode)) {
            st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "serve: the web folder '%s' is not a folder that can be read%s%s",
                          cfg->web_dir, s->web_root ? "" : ": ", s->web_root ? "" : strerror(errno));
            goto fail;
        }
    }
    uint64_t need = 0;
    for (size_t i = 0; i < cfg->n_models; i++) {
        CDL_TRY_GOTO(st, load_model(&cfg->models[i], &s->models[i]), fail);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->models[j].name, s->models[i].name)) {
                st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "serve: two models are named '%s': give distinct names",
                              s->models[i].name);
                goto fail;
            }
        const serve_model *m = &s->models[i];
        uint64_t keys = m->relin_bytes + m->galois_bytes, big = keys > m->batch_pk_bytes ? keys : m->batch_pk_bytes;
        need = big > need ? big : need;
    }
    s->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : need + (1u << 20);
    if (s->max_body > SIZE_MAX / 2) {
        st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "serve: the body limit is too large for this machine");
        goto fail;
    }
    s->store_ok = 1; /* serve_store_destroy undoes a partial init */
    CDL_TRY_GOTO(st, serve_store_init(&s->store, cfg, s->models, s->n_models), fail);
    CDL_TRY_GOTO(st, build_models_json(s), fail);

    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                     (ipv6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(flags, cfg->port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                                 (const struct sockaddr *)&addr, MHD_OPTION_CONNECTION_LIMIT,
                                 (unsigned int)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                                 (unsigned int)cfg->idle_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                 (size_t)(256 << 10), MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->daemon) {
        st = cdl_fail(CDL_ERR_IO, "serve: cannot listen on %s port %u (in use, not an address of this machine, or "
                                  "a port below 1024 without privileges?)",
                      cfg->host ? cfg->host : "127.0.0.1", (unsigned)cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : cfg->port;
    *out = s;
    return CDL_OK;
fail:
    cdl_serve_free(s);
    return st;
}

uint16_t cdl_serve_port(const cdl_serve *s) { return s ? s->port : 0; }
uint64_t cdl_serve_max_body(const cdl_serve *s) { return s ? s->max_body : 0; }
size_t cdl_serve_model_count(const cdl_serve *s) { return s ? s->n_models : 0; }
size_t cdl_serve_session_count(cdl_serve *s) { return s && s->store_ok ? serve_session_count(&s->store.table) : 0; }

cdl_status cdl_serve_model_get(const cdl_serve *s, size_t i, cdl_serve_model_info *in)
{
    if (!s || !in || i >= s->n_models)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_serve_model_get: no model %zu", i);
    const serve_model *m = &s->models[i];
    const cdl_ckks_param_spec *sp = cdl_he_plan_params(m->plan);
    memset(in, 0, sizeof *in);
    snprintf(in->name, sizeof in->name, "%s", m->name);
    in->path = m->path;
    snprintf(in->input_shape, sizeof in->input_shape, "%s", m->shape);
    in->input_size = cdl_he_plan_input_size(m->plan);
    in->output_size = cdl_he_plan_output_size(m->plan);
    in->batch_capacity = cdl_he_plan_batch_capacity(m->plan);
    in->log_n = sp->log_n;
    in->log_qp = log_qp_of(sp);
    in->levels = cdl_he_plan_levels(m->plan);
    in->scale_bits = (int)lround(log2(sp->scale));
    sodium_bin2hex(in->param_hash, sizeof in->param_hash, cdl_ckks_param_hash(m->ctx), CDL_CKKS_PARAM_HASH_BYTES);
    in->relin_key_bytes = m->relin_bytes;
    in->batch_bytes = m->batch_bytes;
    in->packing = cdl_he_plan_packing(m->plan);
    in->input_ciphertexts = cdl_he_plan_input_ciphertexts(m->plan);
    in->output_ciphertexts = cdl_he_plan_output_ciphertexts(m->plan);
    cdl_he_plan_galois_steps(m->plan, NULL, &in->galois_steps);
    in->galois_key_bytes = m->galois_bytes;
    return CDL_OK;
}

void cdl_serve_stop(cdl_serve *s)
{
    if (s && s->daemon) {
        MHD_stop_daemon(s->daemon);
        s->daemon = NULL;
    }
}

void cdl_serve_free(cdl_serve *s)
{
    if (!s)
        return;
    cdl_serve_stop(s);
    if (s->store_ok)
        serve_store_destroy(&s->store);
    for (size_t i = 0; s->models && i < s->n_models; i++) {
        cdl_ckks_context_free(s->models[i].ctx);
        cdl_he_plan_free(s->models[i].plan);
        free(s->models[i].path);
    }
    free(s->models);
    free(s->models_json);
    free(s->web_root);
    if (s->lock_ok) {
        pthread_cond_destroy(&s->slot_free);
        pthread_mutex_destroy(&s->lock);
    }
    free(s);
}
