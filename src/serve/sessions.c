/*
 * sessions.c: the session table of the HTTP service. A session is one
 * client's evaluation keys for one model (its relinearization key, and its
 * Galois keys when the model uses slots packing), found by a 128-bit random id
 * (libsodium randombytes) that acts as a bearer token: ids are compared in
 * constant time against every slot, and never logged (a sequence number
 * names the session instead).
 *
 * Lifetime: a session expires `ttl` seconds after its creation or its last
 * predict and is evicted on the next table access. A session busy with a
 * predict is never freed under the request: deleting or expiring it only
 * marks it, and the request frees it when it ends.
 *
 * The same table is the per-replica cache of a shared store (store.c, Redis
 * sessions): then it holds the keys of the sessions this replica used
 * recently, within a memory budget. Instead of refusing a new entry when full
 * it evicts the least recently used idle ones (never one a request holds), and
 * an entry may be inserted busy and empty, by the predict that is about to load
 * its keys (so that a second request for it meanwhile gets BUSY, not a second
 * load).
 */
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/error.h"
#include "core/memory.h"
#include "serve/serve_internal.h"

double serve_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

cdl_status serve_sessions_init(serve_sessions *t, size_t max, unsigned ttl)
{
    memset(t, 0, sizeof *t);
    t->slot = cdl_calloc_array(max, sizeof *t->slot);
    if (!t->slot)
        return cdl_fail(CDL_ERR_NO_MEMORY, "serve: out of memory for %zu sessions", max);
    if (pthread_mutex_init(&t->lock, NULL) != 0) {
        cdl_free(t->slot);
        t->slot = NULL;
        return cdl_fail(CDL_ERR_INTERNAL, "serve: cannot create the session lock");
    }
    t->max = max;
    t->ttl = ttl;
    t->next_seq = 1;
    return CDL_OK;
}

/* Under the lock. */
static void drop(serve_sessions *t, serve_session *s)
{
    cdl_ckks_relin_key_free(s->rlk);
    cdl_ckks_galois_keys_free(s->gk);
    t->bytes -= s->bytes;
    memset(s, 0, sizeof *s);
}

void serve_sessions_destroy(serve_sessions *t)
{
    if (!t->slot)
        return;
    for (size_t i = 0; i < t->max; i++)
        if (t->slot[i].used)
            drop(t, &t->slot[i]);
    cdl_free(t->slot);
    t->slot = NULL;
    pthread_mutex_destroy(&t->lock);
}

/* Under the lock: evict expired idle sessions, mark expired busy ones. */
static void sweep(serve_sessions *t)
{
    double now = serve_now();
    for (size_t i = 0; i < t->max; i++) {
        serve_session *s = &t->slot[i];
        if (!s->used || s->doomed || now < s->expires)
            continue;
        t->expired++;
        if (s->busy)
            s->doomed = 1;
        else
            drop(t, s);
    }
}

int serve_session_parse_id(const char *id_hex, uint8_t id[SERVE_ID_BYTES])
{
    size_t bin_len = 0;
    const char *end = NULL;
    return id_hex && strlen(id_hex) == 2 * SERVE_ID_BYTES &&
           sodium_hex2bin(id, SERVE_ID_BYTES, id_hex, 2 * SERVE_ID_BYTES, NULL, &bin_len, &end) == 0 &&
           bin_len == SERVE_ID_BYTES && *end == '\0';
}

/* Under the lock: the live slot holding this id, or max. Every used slot is
 * compared, in constant time, whatever matches. */
static size_t find(serve_sessions *t, const char *id_hex)
{
    uint8_t id[SERVE_ID_BYTES];
    if (!serve_session_parse_id(id_hex, id))
        return t->max;
    size_t found = t->max;
    for (size_t i = 0; i < t->max; i++) {
        int same = sodium_memcmp(t->slot[i].id, id, SERVE_ID_BYTES) == 0;
        if (same && t->slot[i].used && !t->slot[i].doomed)
            found = i;
    }
    return found;
}

serve_session_result serve_session_create(serve_sessions *t, size_t model, cdl_ckks_relin_key *rlk,
                                          cdl_ckks_galois_keys *gk, char id_hex[2 * SERVE_ID_BYTES + 1],
                                          uint64_t *seq)
{
    pthread_mutex_lock(&t->lock);
    sweep(t);
    size_t i = 0;
    while (i < t->max && t->slot[i].used)
        i++;
    if (i == t->max) {
        pthread_mutex_unlock(&t->lock);
        return SERVE_SESSION_FULL;
    }
    serve_session *s = &t->slot[i];
    /* 128 random bits cannot realistically collide with a live id; check anyway. */
    do {
        randombytes_buf(s->id, SERVE_ID_BYTES);
        sodium_bin2hex(id_hex, 2 * SERVE_ID_BYTES + 1, s->id, SERVE_ID_BYTES);
    } while (find(t, id_hex) != t->max);
    s->used = 1;
    s->loaded = 1;
    s->model = model;
    s->rlk = rlk;
    s->gk = gk;
    s->seq = t->next_seq++;
    s->expires = serve_now() + t->ttl;
    t->created++;
    *seq = s->seq;
    pthread_mutex_unlock(&t->lock);
    return SERVE_SESSION_OK;
}

serve_session_result serve_session_acquire(serve_sessions *t, const char *id_hex, size_t *idx, uint64_t *seq)
{
    pthread_mutex_lock(&t->lock);
    sweep(t);
    size_t i = find(t, id_hex);
    serve_session_result r = SERVE_SESSION_UNKNOWN;
    if (i < t->max) {
        *seq = t->slot[i].seq;
        if (t->slot[i].busy) {
            r = SERVE_SESSION_BUSY;
        } else {
            t->slot[i].busy = 1;
            *idx = i;
            r = SERVE_SESSION_OK;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

const cdl_ckks_relin_key *serve_session_key(serve_sessions *t, size_t idx, size_t *model,
                                            const cdl_ckks_galois_keys **gk)
{
    pthread_mutex_lock(&t->lock);
    const cdl_ckks_relin_key *k = t->slot[idx].rlk;
    *model = t->slot[idx].model;
    *gk = t->slot[idx].gk;
    pthread_mutex_unlock(&t->lock);
    return k;
}

/* Under the lock, cache mode: the least recently used idle entry, or max. */
static size_t lru_idle(serve_sessions *t)
{
    size_t best = t->max;
    for (size_t i = 0; i < t->max; i++) {
        const serve_session *s = &t->slot[i];
        if (s->used && !s->busy && (best == t->max || s->last_use < t->slot[best].last_use))
            best = i;
    }
    return best;
}

/* Under the lock, cache mode: evict idle entries, oldest first, while above the budget. */
static void trim(serve_sessions *t)
{
    while (t->budget && t->bytes > t->budget) {
        size_t i = lru_idle(t);
        if (i == t->max)
            return;
        drop(t, &t->slot[i]);
        t->evicted++;
    }
}

void serve_session_release(serve_sessions *t, size_t idx)
{
    pthread_mutex_lock(&t->lock);
    serve_session *s = &t->slot[idx];
    s->busy = 0;
    if (s->doomed || !s->loaded) {
        drop(t, s);
    } else {
        s->expires = serve_now() + t->ttl;
        s->last_use = serve_now();
    }
    trim(t);
    pthread_mutex_unlock(&t->lock);
}

cdl_status serve_sessions_init_cache(serve_sessions *t, size_t slots, unsigned ttl, uint64_t budget)
{
    CDL_TRY(serve_sessions_init(t, slots, ttl));
    t->budget = budget ? budget : 1;
    return CDL_OK;
}

serve_session_result serve_cache_insert(serve_sessions *t, const char *id_hex, uint64_t seq, size_t model,
                                        uint64_t bytes, cdl_ckks_relin_key *rlk, cdl_ckks_galois_keys *gk, int busy,
                                        size_t *idx)
{
    uint8_t id[SERVE_ID_BYTES];
    if (!serve_session_parse_id(id_hex, id))
        return SERVE_SESSION_UNKNOWN;
    pthread_mutex_lock(&t->lock);
    sweep(t);
    if (find(t, id_hex) != t->max) { /* another request of this replica has it (or just loaded it) */
        pthread_mutex_unlock(&t->lock);
        return SERVE_SESSION_BUSY;
    }
    size_t i = 0;
    while (i < t->max && t->slot[i].used)
        i++;
    /* room: a free slot, and the budget (over it only when every other entry is busy) */
    while (i == t->max || t->bytes + bytes > t->budget) {
        size_t old = lru_idle(t);
        if (old == t->max)
            break;
        drop(t, &t->slot[old]);
        t->evicted++;
        if (i == t->max)
            i = old;
    }
    if (i == t->max) {
        pthread_mutex_unlock(&t->lock);
        return SERVE_SESSION_FULL;
    }
    serve_session *s = &t->slot[i];
    memcpy(s->id, id, SERVE_ID_BYTES);
    s->used = 1;
    s->busy = busy;
    s->loaded = rlk != NULL;
    s->model = model;
    s->rlk = rlk;
    s->gk = gk;
    s->seq = seq;
    s->bytes = bytes;
    s->expires = serve_now() + t->ttl;
    s->last_use = serve_now();
    t->bytes += bytes;
    if (!busy)
        trim(t);
    if (idx)
        *idx = i;
    pthread_mutex_unlock(&t->lock);
    return SERVE_SESSION_OK;
}

void serve_cache_fill(serve_sessions *t, size_t idx, cdl_ckks_relin_key *rlk, cdl_ckks_galois_keys *gk)
{
    pthread_mutex_lock(&t->lock);
    serve_session *s = &t->slot[idx];
    s->rlk = rlk;
    s->gk = gk;
    s->loaded = 1;
    pthread_mutex_unlock(&t->lock);
}

void serve_cache_forget(serve_sessions *t, size_t idx)
{
    pthread_mutex_lock(&t->lock);
    t->slot[idx].doomed = 1; /* freed by serve_session_release, as a deleted busy session */
    pthread_mutex_unlock(&t->lock);
}

serve_session_result serve_session_delete(serve_sessions *t, const char *id_hex, uint64_t *seq)
{
    pthread_mutex_lock(&t->lock);
    sweep(t);
    size_t i = find(t, id_hex);
    serve_session_result r = SERVE_SESSION_UNKNOWN;
    if (i < t->max) {
        *seq = t->slot[i].seq;
        t->deleted++;
        if (t->slot[i].busy)
            t->slot[i].doomed = 1;
        else
            drop(t, &t->slot[i]);
        r = SERVE_SESSION_OK;
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

size_t serve_session_count(serve_sessions *t)
{
    pthread_mutex_lock(&t->lock);
    sweep(t);
    size_t n = 0;
    for (size_t i = 0; i < t->max; i++)
        n += t->slot[i].used && !t->slot[i].doomed;
    pthread_mutex_unlock(&t->lock);
    return n;
}

int serve_session_room(serve_sessions *t)
{
    pthread_mutex_lock(&t->lock);
    sweep(t);
    int room = 0;
    for (size_t i = 0; i < t->max && !room; i++)
        room = !t->slot[i].used;
    pthread_mutex_unlock(&t->lock);
    return room;
}
