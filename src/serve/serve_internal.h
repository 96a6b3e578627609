/*
 * serve_internal.h: the pieces of the HTTP service (include/cryptodl/serve.h)
 * shared between its files: the session table (sessions.c), which holds the
 * clients' evaluation keys (a relinearization key, and Galois keys for a
 * slots-packing model) behind 128-bit bearer ids, and the server state
 * (server.c).
 */
#ifndef CDL_SERVE_INTERNAL_H
#define CDL_SERVE_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cryptodl/serve.h"

#define SERVE_ID_BYTES 16 /* 128-bit session ids, sent as 32 hex digits */

/* Monotonic seconds. */
double serve_now(void);

/* One live session: a client's evaluation keys for one model. */
typedef struct serve_session {
    int used;
    int busy;     /* a predict request holds it */
    int doomed;   /* deleted or expired while busy: freed when the request ends */
    uint8_t id[SERVE_ID_BYTES];
    uint64_t seq; /* 1, 2, ...: names the session in logs instead of its id */
    size_t model;
    cdl_ckks_relin_key *rlk;
    cdl_ckks_galois_keys *gk; /* slots packing; NULL in batch packing */
    double expires; /* serve_now() deadline */
} serve_session;

typedef struct serve_sessions {
    pthread_mutex_t lock;
    serve_session *slot;
    size_t max;
    unsigned ttl;
    uint64_t next_seq;
    uint64_t created, expired, deleted; /* totals for /v1/metrics */
} serve_sessions;

typedef enum serve_session_result {
    SERVE_SESSION_OK = 0,
    SERVE_SESSION_UNKNOWN, /* no such id (never issued, deleted or expired) */
    SERVE_SESSION_BUSY,    /* already evaluating a batch */
    SERVE_SESSION_FULL     /* max sessions live */
} serve_session_result;

cdl_status serve_sessions_init(serve_sessions *t, size_t max, unsigned ttl);
/* Frees every key (busy or not: call after the HTTP threads are joined). */
void serve_sessions_destroy(serve_sessions *t);
/* Take ownership of rlk and gk (may be NULL) under a new random id (hex
 * written to id_hex[33]). On failure the caller keeps them. */
serve_session_result serve_session_create(serve_sessions *t, size_t model, cdl_ckks_relin_key *rlk,
                                          cdl_ckks_galois_keys *gk, char id_hex[2 * SERVE_ID_BYTES + 1],
                                          uint64_t *seq);
/* Parse and look up an id given as hex; mark the session busy. *idx names it for
 * serve_session_release. The id comparison is constant time (sodium_memcmp). */
serve_session_result serve_session_acquire(serve_sessions *t, const char *id_hex, size_t *idx, uint64_t *seq);
/* The session's keys and model (valid while the caller holds it busy); *gk is
 * NULL for a batch-packing model. */
const cdl_ckks_relin_key *serve_session_key(serve_sessions *t, size_t idx, size_t *model,
                                            const cdl_ckks_galois_keys **gk);
/* End a predict: not busy, ttl restarts; frees the session if it was deleted meanwhile. */
void serve_session_release(serve_sessions *t, size_t idx);
serve_session_result serve_session_delete(serve_sessions *t, const char *id_hex, uint64_t *seq);
/* Live sessions (expired ones are evicted first). */
size_t serve_session_count(serve_sessions *t);
/* 1 if a new session would fit now. */
int serve_session_room(serve_sessions *t);

#endif
