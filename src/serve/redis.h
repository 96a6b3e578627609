/*
 * redis.h: the Redis side of the shared session store (libhiredis, blocking
 * connections from a small pool, one per request thread at a time). It moves
 * bytes and nothing else: what they mean is decided by store.c (record.h for
 * the descriptor, the CKKS loaders for the keys).
 *
 * A session lives in one Redis hash, named "cdl:session:" followed by the hex
 * BLAKE2b-256 of the session id (the id is a bearer token: it is never sent to
 * Redis, so whoever reads Redis cannot use the sessions), with the fields
 * "k0", "k1", ... (the key bytes in chunks, so that no value comes near
 * Redis's 512 MB limit and neither side holds two copies of a large key set)
 * and "meta" (record.h), written last. The TTL is set with the first chunk, so
 * a replica dying mid-write leaves a hash without "meta" (unknown to every
 * reader) that Redis drops by itself.
 *
 * Built without libhiredis (CDL_HAVE_HIREDIS unset), serve_redis_open fails
 * with a message saying so, and nothing else is reachable.
 */
#ifndef CDL_SERVE_REDIS_H
#define CDL_SERVE_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"
#include "serve/record.h"

#define SERVE_REDIS_KEY_MAX 80          /* "cdl:session:" + 64 hex digits + NUL */
#define SERVE_REDIS_CHUNK (16u << 20)   /* bytes per stored chunk */

typedef struct serve_redis serve_redis;

/* 1 if this build has libhiredis. */
int serve_redis_available(void);
/* Parse "redis://HOST[:PORT][/DB]" (the password, if any, from the environment variable CDL_REDIS_PASSWORD),
 * connect once and PING, so that a wrong address fails at start. */
cdl_status serve_redis_open(const char *url, serve_redis **out);
void serve_redis_close(serve_redis *r);
/* "HOST:PORT/DB", for messages. */
const char *serve_redis_where(const serve_redis *r);

/* The hash that holds the session with this id. */
void serve_redis_key(const uint8_t *id, size_t id_len, char out[SERVE_REDIS_KEY_MAX]);

/* Write the chunks, then the record; TTL ttl seconds. *collision = 1 (nothing written) when the hash already
 * exists. CDL_ERR_EXHAUSTED when Redis refuses for its memory limit (maxmemory). */
cdl_status serve_redis_put(serve_redis *r, const char *key, const uint8_t *rec, size_t rec_len, const uint8_t *keys,
                           uint64_t key_bytes, uint32_t chunk_size, unsigned ttl, int *collision);
/* serve_redis_put in two steps, so that the keys can be written while they are checked: first the chunks alone
 * (TTL set; no record, hence no session for any reader; with seq, a new session number, one sequence for every
 * replica (INCR), in the same round trip; *collision as above; on failure what was written is removed), ... */
cdl_status serve_redis_put_keys(serve_redis *r, const char *key, const uint8_t *keys, uint64_t key_bytes,
                                uint32_t chunk_size, unsigned ttl, uint64_t *seq, int *collision);
/* ... then the record, which makes the session visible (on failure the hash is removed), ... */
cdl_status serve_redis_put_meta(serve_redis *r, const char *key, const uint8_t *rec, size_t rec_len, unsigned ttl);
/* ... or, when the keys failed their checks, this: the hash removed (if Redis does not answer, it expires). */
void serve_redis_discard(serve_redis *r, const char *key);
/* The record (at most cap bytes; longer is CDL_ERR_FORMAT), and the TTL restarted. *found = 0 if none. */
cdl_status serve_redis_get_meta(serve_redis *r, const char *key, unsigned ttl, uint8_t *rec, size_t cap,
                                size_t *rec_len, int *found);
/* Restart the TTL; *found = 0 when the session is gone (deleted or expired). */
cdl_status serve_redis_touch(serve_redis *r, const char *key, unsigned ttl, int *found);
/* The key bytes the record describes, in one malloc'd buffer (*keys; the caller frees). *found = 0 when a chunk
 * is missing (the session was deleted meanwhile). Each chunk must have its exact length (CDL_ERR_FORMAT). */
cdl_status serve_redis_get_keys(serve_redis *r, const char *key, const serve_record *rec, uint8_t **keys,
                                int *found);
/* Delete; *found = 1 if it existed, and then its record (as get_meta; *rec_len = 0 if it had none). */
cdl_status serve_redis_delete(serve_redis *r, const char *key, uint8_t *rec, size_t cap, size_t *rec_len,
                              int *found);

#endif
