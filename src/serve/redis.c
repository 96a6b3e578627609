/*
 * redis.c: the Redis half of the shared session store (redis.h) on libhiredis.
 *
 * Connections: hiredis contexts are not thread safe, and the service runs one
 * thread per HTTP connection, so each operation takes a context from a small
 * pool (or opens one), uses it alone, and gives it back; a context that saw an
 * error is closed instead (the next operation opens a fresh one, which is how
 * a restarted Redis is picked up). Connect timeout 2 s, then 30 s per blocking
 * read or write.
 *
 * SIGPIPE: hiredis writes with write(2), which raises SIGPIPE when Redis has
 * closed the connection; a library must not die of it nor change the process's
 * signal handling, so every operation blocks SIGPIPE in its own thread and
 * consumes one it caused before unblocking (the signal is sent to the thread
 * that wrote).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "core/error.h"
#include "serve/redis.h"

#define KEY_PREFIX "cdl:session:"
#define SEQ_KEY "cdl:session-seq"

void serve_redis_key(const uint8_t *id, size_t id_len, char out[SERVE_REDIS_KEY_MAX])
{
    uint8_t h[32];
    crypto_generichash(h, sizeof h, id, id_len, NULL, 0);
    memcpy(out, KEY_PREFIX, sizeof KEY_PREFIX - 1);
    sodium_bin2hex(out + sizeof KEY_PREFIX - 1, SERVE_REDIS_KEY_MAX - (sizeof KEY_PREFIX - 1), h, sizeof h);
    sodium_memzero(h, sizeof h);
}

#if CDL_HAVE_HIREDIS

#include <sys/uio.h>

#include <hiredis/hiredis.h>

#define POOL_MAX 16

struct serve_redis {
    char host[256];
    int port, db;
    char where[300];
    char *password; /* from CDL_REDIS_PASSWORD, or NULL */
    pthread_mutex_t lock;
    redisContext *idle[POOL_MAX];
    size_t n_idle;
};

int serve_redis_available(void) { return 1; }

const char *serve_redis_where(const serve_redis *r) { return r ? r->where : "(none)"; }

/* "redis://HOST[:PORT][/DB]", HOST a name, an IPv4 address or [an IPv6 address]. */
static cdl_status parse_url(serve_redis *r, const char *url)
{
    static const char scheme[] = "redis://";
    const char *usage = "give redis://HOST:PORT (e.g. redis://127.0.0.1:6379, optionally /DB for a database number)";
    if (strncmp(url, scheme, sizeof scheme - 1) != 0)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "sessions '%s': not a redis:// address; %s", url, usage);
    const char *p = url + sizeof scheme - 1;
    if (strchr(p, '@'))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "sessions: no credentials in the address (the command line is "
                                                  "visible to every user): put the Redis password in the "
                                                  "environment variable CDL_REDIS_PASSWORD");
    const char *host = p, *end;
    size_t host_len;
    if (*p == '[') {
        end = strchr(p, ']');
        if (!end)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "sessions '%s': unclosed [ in the host; %s", url, usage);
        host = p + 1;
        host_len = (size_t)(end - host);
        p = end + 1;
    } else {
        end = p + strcspn(p, ":/");
        host_len = (size_t)(end - p);
        p = end;
    }
    if (host_len == 0 || host_len >= sizeof r->host)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "sessions '%s': no host (or a host name too long); %s", url, usage);
    memcpy(r->host, host, host_len);
    r->host[host_len] = '\0';
    for (size_t i = 0; i < host_len; i++) {
        char c = r->host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
              c == ':' || c == '_'))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "sessions '%s': '%c' in the host; %s", url, c, usage);
    }
    r->port = 6379;
    if (*p == ':') {
        char *e;
        errno = 0;
        long v = strtol(p + 1, &e, 10);
        if (errno || e == p + 1 || v < 1 || v > 65535 || (*e && *e != '/'))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "sessions '%s': the port must be 1..65535; %s", url, usage);
        r->port = (int)v;
        p = e;
    }
    r->db = 0;
    if (*p == '/' && p[1]) {
        char *e;
        errno = 0;
        long v = strtol(p + 1, &e, 10);
        if (errno || e == p + 1 || *e || v < 0 || v > 1000000)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "sessions '%s': the database must be a number; %s", url, usage);
        r->db = (int)v;
    } else if (*p == '/') {
        p++;
    }
    if (*p && *p != '/')
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "sessions '%s': unexpected '%s'; %s", url, p, usage);
    snprintf(r->where, sizeof r->where, "%s%s%s:%d/%d", strchr(r->host, ':') ? "[" : "", r->host,
             strchr(r->host, ':') ? "]" : "", r->port, r->db);
    return CDL_OK;
}

/* Redis's answer to a command as a status: NULL (connection lost), an error reply. */
static cdl_status check_reply(serve_redis *r, redisContext *c, redisReply *rep, const char *what)
{
    if (!rep)
        return cdl_fail(CDL_ERR_IO, "Redis at %s: %s: %s", r->where, what,
                        c->err ? c->errstr : "no answer");
    if (rep->type == REDIS_REPLY_ERROR) {
        if (rep->str && !strncmp(rep->str, "OOM", 3))
            return cdl_fail(CDL_ERR_EXHAUSTED, "Redis at %s is full (its maxmemory): %s", r->where, rep->str);
        return cdl_fail(CDL_ERR_IO, "Redis at %s: %s: %.200s", r->where, what, rep->str ? rep->str : "error");
    }
    return CDL_OK;
}

static cdl_status simple(serve_redis *r, redisContext *c, const char *what, int argc, const char **argv,
                         const size_t *lens)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, lens);
    cdl_status st = check_reply(r, c, rep, what);
    if (rep)
        freeReplyObject(rep);
    return st;
}

static cdl_status connect_one(serve_redis *r, redisContext **out)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
    if (!c)
        return cdl_fail(CDL_ERR_NO_MEMORY, "Redis: out of memory for a connection");
    if (c->err) {
        cdl_status st = cdl_fail(CDL_ERR_IO, "cannot reach Redis at %s: %s", r->where, c->errstr);
        redisFree(c);
        return st;
    }
    tv.tv_sec = 30;
    redisSetTimeout(c, tv);
    redisEnableKeepAlive(c);
    cdl_status st = CDL_OK;
    if (r->password) {
        const char *argv[2] = {"AUTH", r->password};
        size_t lens[2] = {4, strlen(r->password)};
        st = simple(r, c, "AUTH (CDL_REDIS_PASSWORD)", 2, argv, lens);
    }
    if (st == CDL_OK && r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        st = simple(r, c, "SELECT", 2, argv, lens);
    }
    if (st != CDL_OK) {
        redisFree(c);
        return st;
    }
    *out = c;
    return CDL_OK;
}

/* One operation's context, with SIGPIPE blocked in this thread (see the top of the file). */
typedef struct op {
    redisContext *c;
    sigset_t old;
} op;

static cdl_status op_begin(serve_redis *r, op *o)
{
    sigset_t sp;
    sigemptyset(&sp);
    sigaddset(&sp, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &sp, &o->old);
    o->c = NULL;
    pthread_mutex_lock(&r->lock);
    if (r->n_idle)
        o->c = r->idle[--r->n_idle];
    pthread_mutex_unlock(&r->lock);
    if (o->c)
        return CDL_OK;
    cdl_status st = connect_one(r, &o->c);
    if (st != CDL_OK)
        pthread_sigmask(SIG_SETMASK, &o->old, NULL);
    return st;
}

static void op_end(serve_redis *r, op *o)
{
    redisContext *c = o->c;
    if (c && !c->err) {
        pthread_mutex_lock(&r->lock);
        if (r->n_idle < POOL_MAX) {
            r->idle[r->n_idle++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&r->lock);
    }
    if (c)
        redisFree(c);
    sigset_t sp, pending;
    sigemptyset(&sp);
    sigaddset(&sp, SIGPIPE);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        sigtimedwait(&sp, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &o->old, NULL);
}

cdl_status serve_redis_open(const char *url, serve_redis **out)
{
    *out = NULL;
    serve_redis *r = calloc(1, sizeof *r);
    if (!r)
        return cdl_fail(CDL_ERR_NO_MEMORY, "Redis: out of memory");
    cdl_status st = parse_url(r, url);
    if (st != CDL_OK) {
        free(r);
        return st;
    }
    const char *pw = getenv("CDL_REDIS_PASSWORD");
    if (pw && *pw && !(r->password = strdup(pw))) {
        free(r);
        return cdl_fail(CDL_ERR_NO_MEMORY, "Redis: out of memory");
    }
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r->password);
        free(r);
        return cdl_fail(CDL_ERR_INTERNAL, "Redis: cannot create a lock");
    }
    op o;
    st = op_begin(r, &o);
    if (st == CDL_OK) {
        const char *argv[1] = {"PING"};
        size_t lens[1] = {4};
        st = simple(r, o.c, "PING", 1, argv, lens);
        op_end(r, &o);
    }
    if (st != CDL_OK) {
        char why[600];
        snprintf(why, sizeof why, "%s", cdl_last_error());
        serve_redis_close(r);
        return cdl_fail(st, "sessions: %s (is redis-server running there? see deploy/README.md)", why);
    }
    *out = r;
    return CDL_OK;
}

void serve_redis_close(serve_redis *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_idle; i++)
        redisFree(r->idle[i]);
    if (r->password) {
        sodium_memzero(r->password, strlen(r->password));
        free(r->password);
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Send n commands at once, then read their n replies into rep[] (NULL-filled on failure; the caller frees). */
static cdl_status pipeline(serve_redis *r, redisContext *c, size_t n, int argc[], const char **argv[],
                           const size_t *lens[], redisReply *rep[], const char *what)
{
    for (size_t i = 0; i < n; i++)
        rep[i] = NULL;
    for (size_t i = 0; i < n; i++) {
        if (redisAppendCommandArgv(c, argc[i], argv[i], lens[i]) != REDIS_OK)
            return cdl_fail(CDL_ERR_IO, "Redis at %s: %s: %s", r->where, what, c->errstr);
    }
    cdl_status st = CDL_OK;
    for (size_t i = 0; i < n; i++) { /* all n replies read, even after an error reply: the connection stays in step */
        void *x = NULL;
        if (redisGetReply(c, &x) != REDIS_OK)
            return check_reply(r, c, NULL, what);
        rep[i] = x;
        cdl_status s = check_reply(r, c, rep[i], what);
        if (st == CDL_OK)
            st = s;
    }
    return st;
}

static void free_replies(redisReply *rep[], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rep[i])
            freeReplyObject(rep[i]);
}

static cdl_status expect_int(serve_redis *r, const redisReply *rep, const char *what, long long *v)
{
    if (rep->type != REDIS_REPLY_INTEGER)
        return cdl_fail(CDL_ERR_FORMAT, "Redis at %s: %s answered type %d, not an integer", r->where, what, rep->type);
    *v = rep->integer;
    return CDL_OK;
}

/* Send one command whose last argument is a large chunk of key bytes, without hiredis's copies: hiredis formats a
 * command into a new buffer and then appends that to its output buffer: two copies (and two allocations) of each
 * 16 MiB chunk in the replica, on top of the kernel's and Redis's. Here only the RESP header and the closing CRLF
 * are formatted, and writev sends them around the caller's bytes on hiredis's own socket (blocking,
 * with the 30 s timeout). The reply is read later with redisGetReply. Requires hiredis's output buffer to be
 * empty (every command appended before has had its reply read), so that the bytes on the wire stay in order. */
static cdl_status send_big(serve_redis *r, redisContext *c, int argc, const char **argv, const size_t *lens)
{
    if (c->err || (c->obuf && c->obuf[0] != '\0'))
        return cdl_fail(CDL_ERR_INTERNAL, "Redis at %s: a direct write with commands still queued", r->where);
    char head[512];
    int n = snprintf(head, sizeof head, "*%d\r\n", argc);
    for (int i = 0; i < argc - 1 && n > 0 && (size_t)n < sizeof head; i++) {
        if (lens[i] > 128)
            return cdl_fail(CDL_ERR_INTERNAL, "Redis: a direct write with a long leading argument");
        n += snprintf(head + n, sizeof head - (size_t)n, "$%zu\r\n%.*s\r\n", lens[i], (int)lens[i], argv[i]);
    }
    if (n > 0 && (size_t)n < sizeof head)
        n += snprintf(head + n, sizeof head - (size_t)n, "$%zu\r\n", lens[argc - 1]);
    if (n <= 0 || (size_t)n >= sizeof head)
        return cdl_fail(CDL_ERR_INTERNAL, "Redis: a direct write's header does not fit");
    struct iovec iov[3] = {{head, (size_t)n}, {(void *)argv[argc - 1], lens[argc - 1]}, {"\r\n", 2}};
    struct iovec *v = iov;
    int nv = 3;
    while (nv > 0) {
        ssize_t w = writev(c->fd, v, nv);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            /* this connection is out of step with Redis now: op_end closes it instead of pooling it */
            c->err = REDIS_ERR_IO;
            snprintf(c->errstr, sizeof c->errstr, "%s", w < 0 && errno == EAGAIN ? "write timed out"
                                                        : w < 0 ? strerror(errno) : "connection closed");
            return cdl_fail(CDL_ERR_IO, "Redis at %s: writing session keys: %s", r->where, c->errstr);
        }
        size_t done = (size_t)w;
        while (nv > 0 && done >= v->iov_len) {
            done -= v->iov_len;
            v++;
            nv--;
        }
        if (nv > 0) {
            v->iov_base = (char *)v->iov_base + done;
            v->iov_len -= done;
        }
    }
    return CDL_OK;
}

cdl_status serve_redis_put_keys(serve_redis *r, const char *key, const uint8_t *keys, uint64_t key_bytes,
                                uint32_t chunk_size, unsigned ttl, uint64_t *seq, int *collision)
{
    *collision = 0;
    if (key_bytes == 0 || chunk_size == 0)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "Redis: no key bytes to store");
    char ttl_s[24], field[24];
    snprintf(ttl_s, sizeof ttl_s, "%u", ttl);
    const size_t klen = strlen(key);
    const uint64_t chunks = (key_bytes + chunk_size - 1) / chunk_size;
    op o;
    CDL_TRY(op_begin(r, &o));
    /* the first chunk claims the hash (HSETNX: a hash that exists is another session) and sets the TTL; the new
     * session number (INCR) rides in the same round trip */
    const size_t n0 = key_bytes < chunk_size ? (size_t)key_bytes : chunk_size;
    const char *a0[4] = {"HSETNX", key, "k0", (const char *)keys}, *a1[3] = {"EXPIRE", key, ttl_s},
               *a2[2] = {"INCR", SEQ_KEY};
    const size_t l0[4] = {6, klen, 2, n0}, l1[3] = {6, klen, strlen(ttl_s)}, l2[2] = {4, sizeof SEQ_KEY - 1};
    const int nrep = seq ? 3 : 2;
    cdl_status st = send_big(r, o.c, 4, a0, l0);
    if (st == CDL_OK && (redisAppendCommandArgv(o.c, 3, a1, l1) != REDIS_OK ||
                         (seq && redisAppendCommandArgv(o.c, 2, a2, l2) != REDIS_OK)))
        st = cdl_fail(CDL_ERR_IO, "Redis at %s: EXPIRE: %s", r->where, o.c->errstr);
    redisReply *rep[3] = {NULL, NULL, NULL};
    const int queued = st == CDL_OK;
    for (int i = 0; queued && i < nrep && !o.c->err; i++) { /* every reply read, even after an error reply */
        void *x = NULL;
        cdl_status s = check_reply(r, o.c, redisGetReply(o.c, &x) == REDIS_OK ? x : NULL,
                                   i == 0 ? "HSETNX" : i == 1 ? "EXPIRE" : "INCR");
        if (st == CDL_OK)
            st = s;
        rep[i] = x;
    }
    long long created = 0;
    if (st == CDL_OK)
        st = expect_int(r, rep[0], "HSETNX", &created);
    if (st == CDL_OK && seq && (rep[2]->type != REDIS_REPLY_INTEGER || rep[2]->integer < 1))
        st = cdl_fail(CDL_ERR_FORMAT, "Redis at %s: INCR %s did not answer a positive integer", r->where, SEQ_KEY);
    if (st == CDL_OK && seq)
        *seq = (uint64_t)rep[2]->integer;
    free_replies(rep, 3);
    if (st == CDL_OK && created != 1)
        *collision = 1;
    /* the other chunks once the hash is ours, all sent before their replies are read (Redis reads one while the
     * next is written; no reply is more than a few bytes, so neither side waits for the other) */
    uint64_t sent = 1; /* chunks whose command went out */
    for (uint64_t i = 1; st == CDL_OK && !*collision && i < chunks; i++) {
        const uint64_t at = i * chunk_size;
        snprintf(field, sizeof field, "k%llu", (unsigned long long)i);
        const char *a[4] = {"HSET", key, field, (const char *)keys + at};
        const size_t l[4] = {4, klen, strlen(field), key_bytes - at < chunk_size ? (size_t)(key_bytes - at)
                                                                                  : chunk_size};
        st = send_big(r, o.c, 4, a, l);
        sent += st == CDL_OK;
    }
    for (uint64_t i = 1; i < sent && !o.c->err; i++) { /* every reply read, even after an error: stay in step */
        void *x = NULL;
        cdl_status s = check_reply(r, o.c, redisGetReply(o.c, &x) == REDIS_OK ? x : NULL, "HSET");
        if (st == CDL_OK)
            st = s;
        if (x)
            freeReplyObject(x);
    }
    if (st != CDL_OK && !*collision && !o.c->err) {
        /* a partial hash would expire by itself; remove it now when Redis still answers (e.g. maxmemory) */
        const char *a[2] = {"DEL", key};
        const size_t l[2] = {3, klen};
        redisReply *rep1 = redisCommandArgv(o.c, 2, a, l);
        if (rep1)
            freeReplyObject(rep1);
    }
    op_end(r, &o);
    return st;
}

void serve_redis_discard(serve_redis *r, const char *key)
{
    const char *a[2] = {"DEL", key};
    const size_t l[2] = {3, strlen(key)};
    op o;
    if (op_begin(r, &o) != CDL_OK)
        return; /* it expires by itself */
    redisReply *rep = redisCommandArgv(o.c, 2, a, l);
    if (rep)
        freeReplyObject(rep);
    op_end(r, &o);
}

cdl_status serve_redis_put_meta(serve_redis *r, const char *key, const uint8_t *rec, size_t rec_len, unsigned ttl)
{
    char ttl_s[24];
    snprintf(ttl_s, sizeof ttl_s, "%u", ttl);
    const size_t klen = strlen(key);
    const char *a0[4] = {"HSET", key, "meta", (const char *)rec}, *a1[3] = {"EXPIRE", key, ttl_s};
    const size_t l0[4] = {4, klen, 4, rec_len}, l1[3] = {6, klen, strlen(ttl_s)};
    int argc[2] = {4, 3};
    const char **argv[2] = {a0, a1};
    const size_t *lens[2] = {l0, l1};
    redisReply *rep[2];
    op o;
    CDL_TRY(op_begin(r, &o));
    cdl_status st = pipeline(r, o.c, 2, argc, argv, lens, rep, "HSET meta");
    free_replies(rep, 2);
    op_end(r, &o);
    if (st != CDL_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", cdl_last_error());
        serve_redis_discard(r, key);
        cdl_fail(st, "%s", why);
    }
    return st;
}

cdl_status serve_redis_put(serve_redis *r, const char *key, const uint8_t *rec, size_t rec_len, const uint8_t *keys,
                           uint64_t key_bytes, uint32_t chunk_size, unsigned ttl, int *collision)
{
    CDL_TRY(serve_redis_put_keys(r, key, keys, key_bytes, chunk_size, ttl, NULL, collision));
    return *collision ? CDL_OK : serve_redis_put_meta(r, key, rec, rec_len, ttl);
}

cdl_status serve_redis_get_meta(serve_redis *r, const char *key, unsigned ttl, uint8_t *rec, size_t cap,
                                size_t *rec_len, int *found)
{
    *found = 0;
    *rec_len = 0;
    char ttl_s[24];
    snprintf(ttl_s, sizeof ttl_s, "%u", ttl);
    const size_t klen = strlen(key);
    const char *a0[3] = {"HGET", key, "meta"}, *a1[3] = {"EXPIRE", key, ttl_s};
    const size_t l0[3] = {4, klen, 4}, l1[3] = {6, klen, strlen(ttl_s)};
    int argc[2] = {3, 3};
    const char **argv[2] = {a0, a1};
    const size_t *lens[2] = {l0, l1};
    redisReply *rep[2] = {NULL, NULL};
    op o;
    CDL_TRY(op_begin(r, &o));
    cdl_status st = pipeline(r, o.c, 2, argc, argv, lens, rep, "HGET meta");
    if (st == CDL_OK && rep[0]->type == REDIS_REPLY_STRING) {
        if (rep[0]->len > cap) {
            st = cdl_fail(CDL_ERR_FORMAT, "session record: %zu bytes, at most %zu expected", rep[0]->len, cap);
        } else {
            memcpy(rec, rep[0]->str, rep[0]->len);
            *rec_len = rep[0]->len;
            *found = 1;
        }
    } else if (st == CDL_OK && rep[0]->type != REDIS_REPLY_NIL) {
        st = cdl_fail(CDL_ERR_FORMAT, "Redis at %s: HGET answered type %d", r->where, rep[0]->type);
    }
    free_replies(rep, 2);
    op_end(r, &o);
    return st;
}

cdl_status serve_redis_touch(serve_redis *r, const char *key, unsigned ttl, int *found)
{
    *found = 0;
    char ttl_s[24];
    snprintf(ttl_s, sizeof ttl_s, "%u", ttl);
    const char *a[3] = {"EXPIRE", key, ttl_s};
    const size_t l[3] = {6, strlen(key), strlen(ttl_s)};
    op o;
    CDL_TRY(op_begin(r, &o));
    redisReply *rep = redisCommandArgv(o.c, 3, a, l);
    long long v = 0;
    cdl_status st = check_reply(r, o.c, rep, "EXPIRE");
    if (st == CDL_OK)
        st = expect_int(r, rep, "EXPIRE", &v);
    if (rep)
        freeReplyObject(rep);
    op_end(r, &o);
    *found = v == 1;
    return st;
}

cdl_status serve_redis_get_keys(serve_redis *r, const char *key, const serve_record *rec, uint8_t **keys, int *found)
{
    *keys = NULL;
    *found = 0;
    if (rec->key_bytes > SIZE_MAX / 2)
        return cdl_fail(CDL_ERR_FORMAT, "session record: %llu key bytes", (unsigned long long)rec->key_bytes);
    uint8_t *buf = malloc((size_t)rec->key_bytes);
    if (!buf)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for %llu bytes of session keys",
                        (unsigned long long)rec->key_bytes);
    const size_t klen = strlen(key);
    op o;
    cdl_status st = op_begin(r, &o);
    if (st != CDL_OK) {
        free(buf);
        return st;
    }
    /* all the HGETs at once, then the replies one by one: one chunk in flight in this process beside the buffer */
    char field[24];
    for (uint32_t i = 0; st == CDL_OK && i < rec->chunks; i++) {
        snprintf(field, sizeof field, "k%u", (unsigned)i);
        const char *a[3] = {"HGET", key, field};
        const size_t l[3] = {4, klen, strlen(field)};
        if (redisAppendCommandArgv(o.c, 3, a, l) != REDIS_OK)
            st = cdl_fail(CDL_ERR_IO, "Redis at %s: HGET: %s", r->where, o.c->errstr);
    }
    int missing = 0;
    for (uint32_t i = 0; st == CDL_OK && i < rec->chunks; i++) {
        void *x = NULL;
        if (redisGetReply(o.c, &x) != REDIS_OK) {
            st = check_reply(r, o.c, NULL, "HGET");
            break;
        }
        redisReply *rep = x;
        st = check_reply(r, o.c, rep, "HGET");
        uint64_t at = (uint64_t)i * rec->chunk_size;
        size_t want = rec->key_bytes - at < rec->chunk_size ? (size_t)(rec->key_bytes - at) : rec->chunk_size;
        if (st == CDL_OK && rep->type == REDIS_REPLY_NIL)
            missing = 1; /* read the other replies all the same: the connection stays in step */
        else if (st == CDL_OK && (rep->type != REDIS_REPLY_STRING || rep->len != want))
            st = cdl_fail(CDL_ERR_FORMAT, "stored session: chunk %u holds %zu bytes, its record says %zu", (unsigned)i,
                          rep->type == REDIS_REPLY_STRING ? rep->len : 0, want);
        else if (st == CDL_OK)
            memcpy(buf + at, rep->str, want);
        freeReplyObject(rep);
    }
    if (st != CDL_OK && !o.c->err)
        o.c->err = REDIS_ERR_OTHER; /* replies may be left unread: do not give this connection back */
    op_end(r, &o);
    if (st != CDL_OK || missing) {
        free(buf);
        return st;
    }
    *keys = buf;
    *found = 1;
    return CDL_OK;
}

cdl_status serve_redis_delete(serve_redis *r, const char *key, uint8_t *rec, size_t cap, size_t *rec_len,
                              int *found)
{
    *found = 0;
    *rec_len = 0;
    const size_t klen = strlen(key);
    const char *a0[3] = {"HGET", key, "meta"}, *a1[2] = {"DEL", key};
    const size_t l0[3] = {4, klen, 4}, l1[2] = {3, klen};
    int argc[2] = {3, 2};
    const char **argv[2] = {a0, a1};
    const size_t *lens[2] = {l0, l1};
    redisReply *rep[2] = {NULL, NULL};
    op o;
    CDL_TRY(op_begin(r, &o));
    cdl_status st = pipeline(r, o.c, 2, argc, argv, lens, rep, "DEL");
    long long gone = 0;
    if (st == CDL_OK)
        st = expect_int(r, rep[1], "DEL", &gone);
    if (st == CDL_OK && gone == 1) {
        *found = 1;
        if (rep[0]->type == REDIS_REPLY_STRING && rep[0]->len <= cap) {
            memcpy(rec, rep[0]->str, rep[0]->len);
            *rec_len = rep[0]->len;
        }
    }
    free_replies(rep, 2);
    op_end(r, &o);
    return st;
}

#else /* built without libhiredis */

struct serve_redis {
    int unused;
};

int serve_redis_available(void) { return 0; }
const char *serve_redis_where(const serve_redis *r) { return "(none)"; }

cdl_status serve_redis_open(const char *url, serve_redis **out)
{
    *out = NULL;
    return cdl_fail(CDL_ERR_UNSUPPORTED, "sessions '%s': this build of cryptodl has no Redis support (libhiredis "
                                         "was not found when it was configured: install libhiredis-dev, configure "
                                         "and build again), use --sessions memory",
                    url);
}

void serve_redis_close(serve_redis *r) { (void)r; }

cdl_status serve_redis_put(serve_redis *r, const char *key, const uint8_t *rec, size_t rec_len, const uint8_t *keys,
                           uint64_t key_bytes, uint32_t chunk_size, unsigned ttl, int *collision)
{
    return cdl_fail(CDL_ERR_UNSUPPORTED, "no Redis support in this build");
}

cdl_status serve_redis_put_keys(serve_redis *r, const char *key, const uint8_t *keys, uint64_t key_bytes,
                                uint32_t chunk_size, unsigned ttl, uint64_t *seq, int *collision)
{
    return cdl_fail(CDL_ERR_UNSUPPORTED, "no Redis support in this build");
}

cdl_status serve_redis_put_meta(serve_redis *r, const char *key, const uint8_t *rec, size_t rec_len, unsigned ttl)
{
    return cdl_fail(CDL_ERR_UNSUPPORTED, "no Redis support in this build");
}

void serve_redis_discard(serve_redis *r, const char *key) { (void)r, (void)key; }

cdl_status serve_redis_get_meta(serve_redis *r, const char *key, unsigned ttl, uint8_t *rec, size_t cap,
                                size_t *rec_len, int *found)
{
    return cdl_fail(CDL_ERR_UNSUPPORTED, "no Redis support in this build");
}

cdl_status serve_redis_touch(serve_redis *r, const char *key, unsigned ttl, int *found)
{
    return cdl_fail(CDL_ERR_UNSUPPORTED, "no Redis support in this build");
}

cdl_status serve_redis_get_keys(serve_redis *r, const char *key, const serve_record *rec, uint8_t **keys, int *found)
{
    return cdl_fail(CDL_ERR_UNSUPPORTED, "no Redis support in this build");
}

cdl_status serve_redis_delete(serve_redis *r, const char *key, uint8_t *rec, size_t cap, size_t *rec_len,
                              int *found)
{
    return cdl_fail(CDL_ERR_UNSUPPORTED, "no Redis support in this build");
}

#endif
