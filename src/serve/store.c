/*
 * store.c: the session store of the HTTP service (store.h): memory sessions
 * (the session table alone) or Redis sessions (Redis, with the session table
 * as this replica's cache of loaded keys), and the counters /v1/metrics
 * reports for both.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/bytes.h"
#include "core/error.h"
#include "serve/store.h"

const double serve_load_bucket_le[SERVE_LOAD_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

#define DEFAULT_CACHE_BYTES ((uint64_t)1 << 30)

size_t serve_first_object_len(const uint8_t *d, size_t len)
{
    if (len < CDL_ENVELOPE_BYTES || memcmp(d, "CDL", 4) != 0)
        return len;
    uint64_t stored = 0;
    for (int i = 7; i >= 0; i--)
        stored = (stored << 8) | d[44 + i];
    return stored <= len - CDL_ENVELOPE_BYTES ? CDL_ENVELOPE_BYTES + (size_t)stored : len;
}

static uint64_t key_bytes(const serve_model *m) { return m->relin_bytes + m->galois_bytes; }

cdl_status serve_store_init(serve_store *st, const cdl_serve_config *cfg, const serve_model *models, size_t n)
{
    memset(st, 0, sizeof *st);
    st->models = models;
    st->n_models = n;
    st->ttl = cfg->session_ttl;
    if (pthread_mutex_init(&st->lock, NULL) != 0)
        return cdl_fail(CDL_ERR_INTERNAL, "serve: cannot create the store lock");
    st->lock_ok = 1;
    const char *where = cfg->sessions;
    if (!where || !*where || !strcmp(where, "memory")) {
        CDL_TRY(serve_sessions_init(&st->table, cfg->max_sessions, cfg->session_ttl));
        st->table_ok = 1;
        return CDL_OK;
    }
    if (strncmp(where, "redis://", 8) != 0)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "serve: sessions '%s': give memory or redis://HOST:PORT", where);
    CDL_TRY(serve_redis_open(where, &st->redis));
    /* slots: as many entries as the budget holds of the smallest model's keys, plus one per request that can hold
     * a session at once (admitted predicts), so that an insertion always finds an idle entry to evict */
    uint64_t smallest = UINT64_MAX;
    for (size_t i = 0; i < n; i++)
        smallest = key_bytes(&models[i]) < smallest ? key_bytes(&models[i]) : smallest;
    uint64_t budget = cfg->key_cache_bytes ? cfg->key_cache_bytes : DEFAULT_CACHE_BYTES;
    uint64_t slots = budget / (smallest ? smallest : 1) + (uint64_t)cfg->max_evaluations + cfg->max_queued + 2;
    if (slots > 100000)
        slots = 100000;
    CDL_TRY(serve_sessions_init_cache(&st->table, (size_t)slots, cfg->session_ttl, budget));
    st->table_ok = 1;
    st->pending = calloc((size_t)slots, sizeof *st->pending);
    if (!st->pending)
        return cdl_fail(CDL_ERR_NO_MEMORY, "serve: out of memory for the key cache");
    return CDL_OK;
}

void serve_store_destroy(serve_store *st)
{
    if (st->table_ok)
        serve_sessions_destroy(&st->table);
    serve_redis_close(st->redis);
    free(st->pending);
    if (st->lock_ok)
        pthread_mutex_destroy(&st->lock);
    memset(st, 0, sizeof *st);
}

const char *serve_store_where(const serve_store *st) { return st->redis ? serve_redis_where(st->redis) : "memory"; }

int serve_store_room(serve_store *st) { return st->redis ? 1 : serve_session_room(&st->table); }

static void count(serve_store *st, uint64_t *counter)
{
    pthread_mutex_lock(&st->lock);
    (*counter)++;
    pthread_mutex_unlock(&st->lock);
}

/* A failed Redis operation: UNAVAILABLE, or BAD for bytes that are not what they should be. */
static serve_store_result store_error(serve_store *st, cdl_status s)
{
    count(st, &st->errors);
    if (s == CDL_ERR_FORMAT)
        return SERVE_STORE_BAD;
    return s == CDL_ERR_EXHAUSTED ? SERVE_STORE_FULL : SERVE_STORE_UNAVAILABLE;
}

/* Redis: a session's key bytes on their way to Redis, under a new random id, without their record (so no reader
 * sees them), either in the creating request's thread or in one of their own beside the keys' checks. */
struct serve_store_write {
    serve_store *st;
    const uint8_t *bytes; /* the request's body, kept by it until the write is joined */
    size_t len;
    pthread_t thread;
    uint8_t id[SERVE_ID_BYTES];
    char key[SERVE_REDIS_KEY_MAX];
    uint64_t seq;
    cdl_status status;
    char error[512]; /* cdl_last_error() is per thread: the writer's, for the request's */
};

static void write_keys(serve_store_write *w)
{
    int collision = 1;
    cdl_status s = CDL_OK;
    for (int tries = 0; s == CDL_OK && collision && tries < 4; tries++) { /* 128 random bits do not collide */
        randombytes_buf(w->id, sizeof w->id);
        serve_redis_key(w->id, sizeof w->id, w->key);
        s = serve_redis_put_keys(w->st->redis, w->key, w->bytes, w->len, SERVE_REDIS_CHUNK, w->st->ttl, &w->seq,
                                 &collision);
    }
    if (s == CDL_OK && collision)
        s = cdl_fail(CDL_ERR_INTERNAL, "serve: four random session ids in a row exist in Redis already");
    w->status = s;
    if (s != CDL_OK) {
        snprintf(w->error, sizeof w->error, "%s", cdl_last_error());
        sodium_memzero(w->id, sizeof w->id);
    }
}

static void *write_thread(void *arg)
{
    write_keys(arg);
    return NULL;
}

serve_store_write *serve_store_write_begin(serve_store *st, const uint8_t *bytes, size_t len)
{
    if (!st->redis || !len)
        return NULL;
    serve_store_write *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->st = st;
    w->bytes = bytes;
    w->len = len;
    if (pthread_create(&w->thread, NULL, write_thread, w) != 0) {
        free(w);
        return NULL; /* serve_store_create writes after the checks instead */
    }
    return w;
}

void serve_store_write_abandon(serve_store *st, serve_store_write *w)
{
    if (!w)
        return;
    pthread_join(w->thread, NULL);
    if (w->status == CDL_OK)
        serve_redis_discard(st->redis, w->key);
    sodium_memzero(w, sizeof *w);
    free(w);
}

/* The keys are written and were checked: the record makes them a session; this replica caches the keys. */
static serve_store_result publish(serve_store *st, serve_store_write *w, size_t model, cdl_ckks_relin_key *rlk,
                                  cdl_ckks_galois_keys *gk, char id_hex[2 * SERVE_ID_BYTES + 1], uint64_t *seq)
{
    if (w->status != CDL_OK) {
        cdl_fail(w->status, "%s", w->error);
        return store_error(st, w->status);
    }
    const serve_model *m = &st->models[model];
    serve_record rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.model, sizeof rec.model, "%s", m->name);
    memcpy(rec.param_hash, cdl_ckks_param_hash(m->ctx), SERVE_RECORD_HASH_BYTES);
    rec.seq = w->seq;
    uint8_t meta[SERVE_RECORD_MAX];
    size_t meta_len = 0;
    cdl_status s = serve_record_chunking(&rec, w->len, SERVE_REDIS_CHUNK);
    if (s == CDL_OK)
        s = serve_record_encode(&rec, meta, &meta_len);
    if (s != CDL_OK)
        serve_redis_discard(st->redis, w->key);
    else
        s = serve_redis_put_meta(st->redis, w->key, meta, meta_len, st->ttl);
    if (s != CDL_OK) {
        sodium_memzero(w->id, sizeof w->id);
        return store_error(st, s);
    }
    sodium_bin2hex(id_hex, 2 * SERVE_ID_BYTES + 1, w->id, sizeof w->id);
    sodium_memzero(w->id, sizeof w->id);
    *seq = rec.seq;
    count(st, &st->created);
    /* this replica keeps the keys it just checked (within its budget): its first predict is a hit */
    if (serve_cache_insert(&st->table, id_hex, rec.seq, model, key_bytes(m), rlk, gk, 0, NULL) != SERVE_SESSION_OK) {
        cdl_ckks_relin_key_free(rlk);
        cdl_ckks_galois_keys_free(gk);
    }
    return SERVE_STORE_OK;
}

serve_store_result serve_store_create(serve_store *st, size_t model, cdl_ckks_relin_key *rlk, cdl_ckks_galois_keys *gk,
                                      const uint8_t *bytes, size_t len, char id_hex[2 * SERVE_ID_BYTES + 1],
                                      uint64_t *seq)
{
    if (!st->redis) {
        serve_session_result r = serve_session_create(&st->table, model, rlk, gk, id_hex, seq);
        return r == SERVE_SESSION_OK ? SERVE_STORE_OK : SERVE_STORE_FULL;
    }
    serve_store_write w;
    memset(&w, 0, sizeof w);
    w.st = st;
    w.bytes = bytes;
    w.len = len;
    write_keys(&w);
    return publish(st, &w, model, rlk, gk, id_hex, seq);
}

serve_store_result serve_store_create_written(serve_store *st, serve_store_write *w, size_t model,
                                              cdl_ckks_relin_key *rlk, cdl_ckks_galois_keys *gk,
                                              char id_hex[2 * SERVE_ID_BYTES + 1], uint64_t *seq)
{
    pthread_join(w->thread, NULL);
    serve_store_result r = publish(st, w, model, rlk, gk, id_hex, seq);
    sodium_memzero(w, sizeof *w);
    free(w);
    return r;
}

/* Redis: a session this replica has not cached. Reads its descriptor (restarting its TTL), checks it against the
 * served models, and inserts an empty busy cache entry that serve_store_keys fills. */
static serve_store_result acquire_uncached(serve_store *st, const char *id_hex, const char *key, size_t *handle,
                                           uint64_t *seq, size_t *model)
{
    uint8_t meta[SERVE_RECORD_MAX];
    size_t meta_len = 0;
    int found = 0;
    cdl_status s = serve_redis_get_meta(st->redis, key, st->ttl, meta, sizeof meta, &meta_len, &found);
    if (s != CDL_OK)
        return store_error(st, s);
    if (!found)
        return SERVE_STORE_UNKNOWN;
    serve_record rec;
    if (serve_record_parse(meta, meta_len, &rec) != CDL_OK) {
        count(st, &st->errors);
        return SERVE_STORE_BAD;
    }
    *seq = rec.seq;
    size_t mi = 0;
    while (mi < st->n_models && strcmp(st->models[mi].name, rec.model))
        mi++;
    if (mi == st->n_models) {
        cdl_fail(CDL_ERR_MISMATCH, "the session is for model '%s', which this replica does not serve (the replicas "
                 "sharing a session store must serve the same models)", rec.model);
        return SERVE_STORE_BAD;
    }
    const serve_model *m = &st->models[mi];
    if (sodium_memcmp(rec.param_hash, cdl_ckks_param_hash(m->ctx), SERVE_RECORD_HASH_BYTES) != 0) {
        cdl_fail(CDL_ERR_MISMATCH, "the session's keys are for other CKKS parameters than model '%s' has on this "
                 "replica (the replicas sharing a session store must serve the same models with the same options)",
                 m->name);
        return SERVE_STORE_BAD;
    }
    if (rec.key_bytes > key_bytes(m) + 65536) {
        cdl_fail(CDL_ERR_FORMAT, "the stored session claims %llu bytes of keys, model '%s' needs %llu",
                 (unsigned long long)rec.key_bytes, m->name, (unsigned long long)key_bytes(m));
        count(st, &st->errors);
        return SERVE_STORE_BAD;
    }
    size_t idx = 0;
    serve_session_result r = serve_cache_insert(&st->table, id_hex, rec.seq, mi, key_bytes(m), NULL, NULL, 1, &idx);
    if (r == SERVE_SESSION_BUSY)
        return SERVE_STORE_BUSY;
    if (r != SERVE_SESSION_OK) {
        cdl_fail(CDL_ERR_EXHAUSTED, "every entry of this replica's key cache is in use");
        return SERVE_STORE_UNAVAILABLE;
    }
    st->pending[idx].rec = rec;
    memcpy(st->pending[idx].key, key, SERVE_REDIS_KEY_MAX);
    *handle = idx;
    *model = mi;
    return SERVE_STORE_OK;
}

serve_store_result serve_store_acquire(serve_store *st, const char *id_hex, size_t *handle, uint64_t *seq,
                                       size_t *model)
{
    const cdl_ckks_galois_keys *gk = NULL;
    serve_session_result r = serve_session_acquire(&st->table, id_hex, handle, seq);
    if (r == SERVE_SESSION_BUSY)
        return SERVE_STORE_BUSY;
    if (!st->redis) {
        if (r != SERVE_SESSION_OK)
            return SERVE_STORE_UNKNOWN;
        serve_session_key(&st->table, *handle, model, &gk);
        return SERVE_STORE_OK;
    }
    uint8_t id[SERVE_ID_BYTES];
    if (!serve_session_parse_id(id_hex, id))
        return SERVE_STORE_UNKNOWN;
    char key[SERVE_REDIS_KEY_MAX];
    serve_redis_key(id, sizeof id, key);
    sodium_memzero(id, sizeof id);
    if (r != SERVE_SESSION_OK)
        return acquire_uncached(st, id_hex, key, handle, seq, model);
    /* cached here: Redis still has it (not deleted through another replica, not expired)? Restarts its TTL. */
    int found = 0;
    cdl_status s = serve_redis_touch(st->redis, key, st->ttl, &found);
    if (s != CDL_OK || !found) {
        if (s == CDL_OK)
            serve_cache_forget(&st->table, *handle);
        serve_session_release(&st->table, *handle);
        return s == CDL_OK ? SERVE_STORE_UNKNOWN : store_error(st, s);
    }
    memcpy(st->pending[*handle].key, key, SERVE_REDIS_KEY_MAX);
    serve_session_key(&st->table, *handle, model, &gk);
    return SERVE_STORE_OK;
}

/* Check the stored bytes as an upload is checked: a relinearization key, then the Galois keys in slots packing,
 * each by its loader, and the Galois keys against the plan. */
static cdl_status load_keys(const serve_model *m, const uint8_t *b, size_t len, cdl_ckks_relin_key **rlk,
                            cdl_ckks_galois_keys **gk)
{
    *rlk = NULL;
    *gk = NULL;
    size_t first = serve_first_object_len(b, len), rest = len - first;
    if (!m->slots && rest)
        return cdl_fail(CDL_ERR_FORMAT, "%zu bytes after the relinearization key of a batch-packing model", rest);
    if (m->slots && !rest)
        return cdl_fail(CDL_ERR_FORMAT, "no Galois keys after the relinearization key");
    cdl_status s = cdl_ckks_relin_key_load(m->ctx, b, first, rlk);
    if (s == CDL_OK && m->slots)
        s = cdl_ckks_galois_keys_load(m->ctx, b + first, rest, gk);
    if (s == CDL_OK && m->slots)
        s = cdl_he_check_galois_keys(m->plan, *gk);
    if (s != CDL_OK) {
        cdl_ckks_relin_key_free(*rlk);
        cdl_ckks_galois_keys_free(*gk);
        *rlk = NULL;
        *gk = NULL;
    }
    return s;
}

serve_store_result serve_store_keys(serve_store *st, size_t handle, const cdl_ckks_relin_key **rlk,
                                    const cdl_ckks_galois_keys **gk, double *load_s)
{
    size_t mi = 0;
    *load_s = 0;
    *rlk = serve_session_key(&st->table, handle, &mi, gk);
    if (*rlk) {
        count(st, &st->hits);
        return SERVE_STORE_OK;
    }
    /* a miss (Redis sessions only): fetch, check, and keep */
    const serve_pending *p = &st->pending[handle];
    const serve_model *m = &st->models[mi];
    const double t0 = serve_now();
    uint8_t *bytes = NULL;
    int found = 0;
    cdl_status s = serve_redis_get_keys(st->redis, p->key, &p->rec, &bytes, &found);
    if (s != CDL_OK)
        return store_error(st, s);
    if (!found) {
        serve_cache_forget(&st->table, handle);
        return SERVE_STORE_UNKNOWN;
    }
    cdl_ckks_relin_key *r = NULL;
    cdl_ckks_galois_keys *g = NULL;
    s = load_keys(m, bytes, (size_t)p->rec.key_bytes, &r, &g);
    free(bytes);
    if (s != CDL_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", cdl_last_error());
        cdl_fail(s, "the stored keys of this session failed the checks: %s", why);
        count(st, &st->errors);
        return SERVE_STORE_BAD;
    }
    serve_cache_fill(&st->table, handle, r, g);
    const double dt = serve_now() - t0;
    size_t b = 0;
    while (b < SERVE_LOAD_BUCKETS && dt > serve_load_bucket_le[b])
        b++;
    pthread_mutex_lock(&st->lock);
    st->misses++;
    st->loads[b]++;
    st->load_seconds += dt;
    pthread_mutex_unlock(&st->lock);
    *rlk = r;
    *gk = g;
    *load_s = dt;
    return SERVE_STORE_OK;
}

void serve_store_release(serve_store *st, size_t handle)
{
    if (st->redis) { /* the TTL restarts at the end of a predict, as for memory sessions */
        int found = 0;
        if (serve_redis_touch(st->redis, st->pending[handle].key, st->ttl, &found) != CDL_OK)
            count(st, &st->errors);
    }
    serve_session_release(&st->table, handle);
}

serve_store_result serve_store_delete(serve_store *st, const char *id_hex, uint64_t *seq)
{
    if (!st->redis)
        return serve_session_delete(&st->table, id_hex, seq) == SERVE_SESSION_OK ? SERVE_STORE_OK
                                                                                 : SERVE_STORE_UNKNOWN;
    uint8_t id[SERVE_ID_BYTES];
    if (!serve_session_parse_id(id_hex, id))
        return SERVE_STORE_UNKNOWN;
    char key[SERVE_REDIS_KEY_MAX];
    serve_redis_key(id, sizeof id, key);
    sodium_memzero(id, sizeof id);
    uint8_t meta[SERVE_RECORD_MAX];
    size_t meta_len = 0;
    int found = 0;
    cdl_status s = serve_redis_delete(st->redis, key, meta, sizeof meta, &meta_len, &found);
    if (s != CDL_OK)
        return store_error(st, s);
    uint64_t cached_seq = 0;
    serve_session_delete(&st->table, id_hex, &cached_seq); /* this replica's copy, if any */
    if (!found)
        return SERVE_STORE_UNKNOWN;
    serve_record rec;
    *seq = serve_record_parse(meta, meta_len, &rec) == CDL_OK ? rec.seq : cached_seq;
    count(st, &st->deleted);
    return SERVE_STORE_OK;
}

void serve_store_get_stats(serve_store *st, serve_store_stats *o)
{
    memset(o, 0, sizeof *o);
    o->redis = st->redis != NULL;
    o->live = serve_session_count(&st->table);
    pthread_mutex_lock(&st->table.lock);
    o->created = st->table.created;
    o->expired = st->table.expired;
    o->deleted = st->table.deleted;
    o->evictions = st->table.evicted;
    o->cache_bytes = st->table.bytes;
    o->cache_budget = st->table.budget;
    pthread_mutex_unlock(&st->table.lock);
    pthread_mutex_lock(&st->lock);
    if (st->redis) {
        o->created = st->created;
        o->deleted = st->deleted;
    }
    o->hits = st->hits;
    o->misses = st->misses;
    o->errors = st->errors;
    memcpy(o->loads, st->loads, sizeof o->loads);
    o->load_seconds = st->load_seconds;
    pthread_mutex_unlock(&st->lock);
}
