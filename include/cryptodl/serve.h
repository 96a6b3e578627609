/*
 * serve.h: the MLaaS HTTP service. A client encrypts images under its own
 * key; this server, which never sees that key, runs a compiled model on the
 * ciphertexts and returns encrypted logits (libmicrohttpd, one thread per
 * connection).
 *
 *   GET    /v1/health                       {"status":"ok"}
 *   GET    /v1/metrics                      Prometheus text format
 *   GET    /v1/models                       names, shapes, packing, CKKS parameters and their hash
 *   POST   /v1/models/{name}/sessions       body: relin.key bytes (batch packing), or relin.key's
 *                                           bytes followed by galois.key's (slots packing)
 *                                           -> 201 {"session": id, ...}
 *   POST   /v1/sessions/{id}/predict        body: one encrypted batch -> 200 encrypted logits
 *   DELETE /v1/sessions/{id}                204
 *   GET    /, /FILE (cfg.web_dir set)        the static files of that folder, read-only (e.g. the browser
 *                                           client's page, docs/browser.md); paths outside it are 404
 *
 * The session body of a slots model is the two key files one after the other
 * (`cat relin.key galois.key`): every serialized object's envelope gives its
 * own length (96 header bytes + the stored payload length it declares), which
 * is where the relinearization key ends; each part is then checked by its own
 * loader, and the Galois keys must hold every rotation step of the model's
 * plan (cdl_he_plan_galois_steps).
 *
 * What the server holds: per model its plan and CKKS context (public
 * parameters); per session the client's evaluation keys (a relinearization
 * key, and Galois keys in slots packing). It refuses secret keys, never
 * decrypts and never holds a secret, so stopping it has nothing to zeroize.
 *
 * Sessions live in this process (the default), or in Redis (cfg.sessions =
 * "redis://HOST:PORT"), shared by several replicas behind a load balancer:
 * the checked key bytes, a descriptor and Redis's TTL as the session's; each
 * replica caches the keys it loaded (checked again on load) within
 * cfg.key_cache_bytes. A replica that stops or dies loses no session.
 * Errors are JSON {"error": "..."} with
 * status 400 (bad bytes), 404 (no such route, model or session), 405 (method),
 * 409 (the session is already evaluating a batch), 413 (body above the limit),
 * 429 (session table full), 503 (evaluation queue full, or the session store unreachable, with Retry-After).
 * See docs/serve.md.
 */
#ifndef CRYPTODL_SERVE_H
#define CRYPTODL_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"
#include "cryptodl/he.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CDL_SERVE_MAX_MODELS 16
#define CDL_SERVE_NAME_MAX 64 /* model names: 1..63 of [A-Za-z0-9._-] */

/* One model to serve. The client must compile the same ONNX file with the same
 * he options (and approx spec) to key the same CKKS parameters. */
typedef struct cdl_serve_model_spec {
    const char *name;   /* URL name; NULL = the file name without directory and .onnx */
    const char *path;   /* the .onnx file */
    const char *approx; /* NULL, or an activation replacement spec as `predict --approx` */
    cdl_he_options he;  /* as `cryptodl predict --log-n/--scale-bits/--output-bits/--packing` */
} cdl_serve_model_spec;

/* One line per finished request (e.g. to print an access log). The path has
 * any session id replaced by "#<n>" (the session's sequence number) or
 * "{unknown}": session ids are bearer tokens and stay out of logs. status is 0
 * when the connection closed before a response was queued (the client went
 * away, or the server stopped during an upload). */
typedef void (*cdl_serve_log_fn)(void *user, const char *method, const char *path, int status, uint64_t bytes_in,
                                 uint64_t bytes_out, double ms);

typedef struct cdl_serve_config {
    const char *host;          /* bind address (numeric or a name); default "127.0.0.1" */
    uint16_t port;             /* 0 = an ephemeral port (see cdl_serve_port) */
    const cdl_serve_model_spec *models;
    size_t n_models;           /* 1..CDL_SERVE_MAX_MODELS */
    uint64_t max_body_bytes;   /* largest POST body; 0 = derived from the plans: the larger of a session's keys
                                  (relinearization key, plus Galois keys in slots packing) and a
                                  public-key-encrypted input batch, plus 1 MiB. Each request is further capped
                                  at what its model needs: its session keys + 64 KiB, or one public-key batch +
                                  1 MiB */
    size_t max_sessions;       /* live sessions (each holds its keys: 5.5 MB for MNIST in batch packing,
                                  330 MB with the Galois keys of slots packing); default 16 */
    unsigned session_ttl;      /* seconds a session lives after its creation or last predict; default 3600 */
    unsigned max_evaluations;  /* evaluations running at once; default 1 */
    unsigned max_queued;       /* further predict requests admitted to wait for an evaluation slot (their bodies
                                  are held in memory); beyond that: 503 + Retry-After. default 1 */
    int eval_threads;          /* OpenMP threads per evaluation; 0 = all cores */
    unsigned max_connections;  /* open connections (one thread each); default 64 */
    unsigned idle_timeout;     /* seconds before an idle connection is closed; default 120 */
    cdl_serve_log_fn log;      /* may be NULL */
    void *log_user;
    const char *sessions;      /* NULL or "memory": sessions in this process (max_sessions of them, lost when it
                                  stops); "redis://HOST[:PORT][/DB]": in Redis, shared by every server given the
                                  same address (they must serve the same models with the same options), living
                                  session_ttl seconds after their last use; max_sessions does not apply (Redis's
                                  maxmemory does: 429 when full). A Redis password is read from the environment
                                  variable CDL_REDIS_PASSWORD. cdl_serve_start fails if Redis does not answer */
    uint64_t key_cache_bytes;  /* Redis sessions: the keys this server keeps loaded between requests, least recently
                                  used evicted first; 0 = 1 GiB. A budget below one session's keys keeps none */
    const char *web_dir;       /* NULL, or a folder whose files GET and HEAD serve at every path outside /v1/ (a
                                  path ending in / serves its index.html), read-only, with their content types
                                  (application/wasm, ...): the browser client's page (docs/browser.md). Paths with
                                  "..", "." or hidden segments, and files whose real path leaves the folder, are 404 */
} cdl_serve_config;

/* Defaults as documented above; models must still be set. */
CDL_API void cdl_serve_config_default(cdl_serve_config *cfg);
/* 1 if this build can keep sessions in Redis (it was built with libhiredis). */
CDL_API int cdl_serve_have_redis(void);

typedef struct cdl_serve cdl_serve;

/* Load and compile every model, bind, and start serving in background
 * threads; returns at once. */
CDL_API cdl_status cdl_serve_start(const cdl_serve_config *cfg, cdl_serve **out);
/* The port actually bound (the ephemeral one when cfg.port was 0). */
CDL_API uint16_t cdl_serve_port(const cdl_serve *server);
/* The body limit in force (cfg.max_body_bytes or the derived default). */
CDL_API uint64_t cdl_serve_max_body(const cdl_serve *server);

/* What /v1/models reports for model i, for a front end to print. */
typedef struct cdl_serve_model_info {
    char name[CDL_SERVE_NAME_MAX];
    const char *path;
    char input_shape[64];      /* e.g. "[1,28,28]" */
    size_t input_size, output_size, batch_capacity;
    int log_n, log_qp, levels, scale_bits;
    char param_hash[2 * CDL_CKKS_PARAM_HASH_BYTES + 1]; /* hex; bytes 8..40 of every serialized object */
    uint64_t relin_key_bytes;  /* the size of a relin.key for these parameters */
    uint64_t batch_bytes;      /* an input batch encrypted with the secret key (--encrypt) */
    cdl_he_packing packing;    /* BATCH or SLOTS (AUTO resolved when the model was compiled) */
    size_t input_ciphertexts, output_ciphertexts; /* per batch (one request) */
    size_t galois_steps;       /* rotation steps the session's Galois keys must hold (0 in batch packing) */
    uint64_t galois_key_bytes; /* the size of a galois.key holding exactly them (0 in batch packing) */
} cdl_serve_model_info;
CDL_API size_t cdl_serve_model_count(const cdl_serve *server);
CDL_API cdl_status cdl_serve_model_get(const cdl_serve *server, size_t i, cdl_serve_model_info *info);
/* Live sessions now. */
CDL_API size_t cdl_serve_session_count(cdl_serve *server);

/* Stop accepting, finish the requests in progress, join the threads. Idempotent. */
CDL_API void cdl_serve_stop(cdl_serve *server);
/* Stop if needed, then free sessions (their relinearization keys), plans and contexts. */
CDL_API void cdl_serve_free(cdl_serve *server);

#ifdef __cplusplus
}
#endif
#endif
