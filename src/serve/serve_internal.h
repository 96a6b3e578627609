/*
 * serve_internal.h: the pieces of the HTTP service (include/cryptodl/serve.h)
 * shared between its files: the session table (sessions.c), which holds the
 * clients' evaluation keys (a relinearization key, and Galois keys for a
 * slots-packing model) behind 128-bit bearer ids, either as the sessions
 * themselves (memory sessions) or as this replica's cache of a shared store
 * (store.c, redis.c); and a served model (server.c).
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
    int loaded;       /* rlk (and gk) present; a cache entry is inserted empty by the predict that loads it */
    uint64_t bytes;   /* cache mode: the memory its keys take */
    double last_use;  /* cache mode: serve_now() of its last release, for least-recently-used eviction */
} serve_session;

typedef struct serve_sessions {
    pthread_mutex_t lock;
    serve_session *slot;
    size_t max;
    unsigned ttl;
    uint64_t next_seq;
    uint64_t created, expired, deleted; /* totals for /v1/metrics */
    uint64_t budget;  /* cache mode: bytes of keys kept (0: not a cache, the memory session table) */
    uint64_t bytes;   /* the bytes of keys held now (cache mode) */
    uint64_t evicted; /* cache mode: entries evicted for the budget */
} serve_sessions;

/* A served model (server.c builds them; the shared store loads keys for them). */
typedef struct serve_model {
    char name[CDL_SERVE_NAME_MAX];
    char *path;
    char shape[64];
    cdl_he_plan *plan;
    cdl_ckks_context *ctx;
    int slots;             /* slots packing: sessions need Galois keys */
    uint64_t relin_bytes, galois_bytes, batch_bytes, batch_pk_bytes;
} serve_model;

typedef enum serve_session_result {
    SERVE_SESSION_OK = 0,
    SERVE_SESSION_UNKNOWN, /* no such id (never issued, deleted or expired) */
    SERVE_SESSION_BUSY,    /* already evaluating a batch */
    SERVE_SESSION_FULL     /* max sessions live */
} serve_session_result;

cdl_status serve_sessions_init(serve_sessions *t, size_t max, unsigned ttl);
/* The table as a cache of a shared store: `slots` entries, keys of at most `budget` bytes kept between requests
 * (0 or a value below one session's keys: none kept). */
cdl_status serve_sessions_init_cache(serve_sessions *t, size_t slots, unsigned ttl, uint64_t budget);
/* 1 if id_hex is 32 hex digits; the 16 bytes in id. */
int serve_session_parse_id(const char *id_hex, uint8_t id[SERVE_ID_BYTES]);
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
/* End a predict: not busy, ttl restarts; frees the session if it was deleted meanwhile (or, in cache mode, was
 * never loaded), then trims the cache to its budget. */
void serve_session_release(serve_sessions *t, size_t idx);
serve_session_result serve_session_delete(serve_sessions *t, const char *id_hex, uint64_t *seq);
/* Cache mode: insert the session id_hex with its number and model, either busy and empty (rlk NULL: the predict
 * that loads its keys holds it; *idx names it) or idle with its keys (just created; ownership taken on OK).
 * Evicts least recently used idle entries for a slot and the budget (exceeded only while every other entry is
 * busy). BUSY if this id is cached already, FULL if every slot is busy. */
serve_session_result serve_cache_insert(serve_sessions *t, const char *id_hex, uint64_t seq, size_t model,
                                        uint64_t bytes, cdl_ckks_relin_key *rlk, cdl_ckks_galois_keys *gk, int busy,
                                        size_t *idx);
/* Cache mode: the keys loaded for the busy empty entry idx (ownership taken). */
void serve_cache_fill(serve_sessions *t, size_t idx, cdl_ckks_relin_key *rlk, cdl_ckks_galois_keys *gk);
/* Cache mode: the busy entry idx is gone from the store: freed at its release. */
void serve_cache_forget(serve_sessions *t, size_t idx);
/* Live sessions (expired ones are evicted first). */
size_t serve_session_count(serve_sessions *t);
/* 1 if a new session would fit now. */
int serve_session_room(serve_sessions *t);

#endif
