/*
 * store.h: where the service keeps its sessions. Two backends behind one set
 * of calls, chosen by cdl_serve_config.sessions:
 *
 *   memory  the session table of this process (sessions.c) is the sessions:
 *           lost when the process stops, bounded by max_sessions;
 *   redis   the sessions live in Redis (redis.c), as the key bytes the client
 *           uploaded (after the library's loaders accepted them) and a
 *           descriptor (record.h), with Redis's TTL as the session's time to
 *           live; any replica serves any session. Each replica keeps the keys
 *           it loaded in its session table used as a least-recently-used
 *           cache within a memory budget; every use asks Redis first (EXPIRE),
 *           so a session deleted through one replica is gone for all, and the
 *           TTL restarts as with memory sessions. Keys read back from Redis go
 *           through the same loaders before use.
 *
 * A predict holds its session from acquire to release: it gets the keys in
 * between (loaded from Redis on a cache miss, outside every lock).
 */
#ifndef CDL_SERVE_STORE_H
#define CDL_SERVE_STORE_H

#include <pthread.h>

#include "serve/redis.h"
#include "serve/serve_internal.h"

typedef enum serve_store_result {
    SERVE_STORE_OK = 0,
    SERVE_STORE_UNKNOWN,     /* no such session (never created, deleted or expired): 404 */
    SERVE_STORE_BUSY,        /* already evaluating a batch on this replica: 409 */
    SERVE_STORE_FULL,        /* the session table, or Redis's memory limit: 429 */
    SERVE_STORE_UNAVAILABLE, /* the shared store did not answer: 503; the reason in cdl_last_error() */
    SERVE_STORE_BAD          /* stored bytes unusable here (corrupt; a model this replica does not serve, or with
                                other parameters): 500; the reason in cdl_last_error() */
} serve_store_result;

#define SERVE_LOAD_BUCKETS 10
extern const double serve_load_bucket_le[SERVE_LOAD_BUCKETS]; /* seconds; plus +Inf */

typedef struct serve_store_stats {
    int redis;
    size_t live;                        /* memory: live sessions; redis: sessions cached here */
    uint64_t created, expired, deleted; /* redis: expired = cache entries unused for the TTL */
    uint64_t hits, misses, errors, evictions, cache_bytes, cache_budget;
    uint64_t loads[SERVE_LOAD_BUCKETS + 1]; /* load-time histogram, not cumulative; last: above every bound */
    double load_seconds;
} serve_store_stats;

typedef struct serve_pending {
    serve_record rec;                 /* redis: the session's descriptor, read at acquire */
    char key[SERVE_REDIS_KEY_MAX];    /* redis: its hash */
} serve_pending;

typedef struct serve_store {
    serve_sessions table;
    int table_ok;
    serve_redis *redis; /* NULL: memory sessions */
    const serve_model *models;
    size_t n_models;
    unsigned ttl;
    serve_pending *pending; /* per table slot, owned by the request holding it */
    pthread_mutex_t lock;   /* the counters below */
    int lock_ok;
    uint64_t created, deleted, hits, misses, errors, loads[SERVE_LOAD_BUCKETS + 1];
    double load_seconds;
} serve_store;

/* models: the server's, kept by reference. */
cdl_status serve_store_init(serve_store *st, const cdl_serve_config *cfg, const serve_model *models, size_t n);
void serve_store_destroy(serve_store *st);
/* "memory" or "redis HOST:PORT/DB", for messages. */
const char *serve_store_where(const serve_store *st);
/* 1 if a session could be created now (memory: a free slot; redis: always). */
int serve_store_room(serve_store *st);
/* A new session for model with its checked keys, whose serialized form is bytes[0..len) (stored as is in Redis).
 * On OK the keys are owned by the store, the id (32 hex digits) and number written; otherwise the caller keeps
 * them. */
serve_store_result serve_store_create(serve_store *st, size_t model, cdl_ckks_relin_key *rlk, cdl_ckks_galois_keys *gk,
                                      const uint8_t *bytes, size_t len, char id_hex[2 * SERVE_ID_BYTES + 1],
                                      uint64_t *seq);
/* Redis sessions: write a session's key bytes (bytes[0..len), which must stay alive and unchanged until the write
 * is ended by one of the two calls below) in a thread of its own while the caller checks them, so that the Redis
 * write overlaps the checks instead of following them. Nothing written is visible before
 * serve_store_create_written writes the record: keys that fail their checks never make a session. NULL for
 * memory sessions or when no thread could be started (then use serve_store_create after the checks). The caller
 * must not start it for bytes it refuses without checking (a secret key must never reach Redis). */
typedef struct serve_store_write serve_store_write;
serve_store_write *serve_store_write_begin(serve_store *st, const uint8_t *bytes, size_t len);
/* The keys passed their checks: wait for the write, then as serve_store_create (w is freed in every case). */
serve_store_result serve_store_create_written(serve_store *st, serve_store_write *w, size_t model,
                                              cdl_ckks_relin_key *rlk, cdl_ckks_galois_keys *gk,
                                              char id_hex[2 * SERVE_ID_BYTES + 1], uint64_t *seq);
/* The keys failed their checks (or the request ends otherwise): wait for the write and remove what it wrote. */
void serve_store_write_abandon(serve_store *st, serve_store_write *w);
/* Hold the session for one predict: *handle for the calls below, its number and model. */
serve_store_result serve_store_acquire(serve_store *st, const char *id_hex, size_t *handle, uint64_t *seq,
                                       size_t *model);
/* The held session's keys, loaded from the shared store on a cache miss (*load_s: seconds it took, 0 on a hit);
 * valid until serve_store_release. */
serve_store_result serve_store_keys(serve_store *st, size_t handle, const cdl_ckks_relin_key **rlk,
                                    const cdl_ckks_galois_keys **gk, double *load_s);
/* End of the predict: the TTL restarts. */
void serve_store_release(serve_store *st, size_t handle);
serve_store_result serve_store_delete(serve_store *st, const char *id_hex, uint64_t *seq);
void serve_store_get_stats(serve_store *st, serve_store_stats *out);

/* Where the first serialized object of a session body ends (its envelope's declared length), or len when that
 * cannot be read: the relinearization key, then (slots packing) the Galois keys. */
size_t serve_first_object_len(const uint8_t *d, size_t len);

#endif
