/* test_serve_store.c: the session store of the HTTP service (src/serve/store.c,
 * sessions.c, record.c, redis.c) below HTTP.
 *
 * - The stored-session descriptor (record.c): a round trip, and refusal of
 *   every truncation and of each bad field.
 * - The memory backend: create / acquire / keys / release / delete, 409 when
 *   busy, 429 when full, expiry after the TTL.
 * - The session table as a cache: least-recently-used eviction within a byte
 *   budget, busy entries never evicted, an empty entry dropped at release.
 * - The Redis backend, when a redis-server binary is present (PATH, or
 *   $CDL_REDIS_SERVER): a private redis-server on a free loopback port, two
 *   stores on it playing two replicas. A session created on one is served by
 *   the other (a miss: the keys come back from Redis, checked, and re-save to
 *   the uploaded bytes; then a hit); the Redis key names a hash of the id, not
 *   the id; a delete on one is seen by the other; Redis's TTL; a budget below
 *   one key set keeps nothing; corrupt stored keys and a descriptor for another
 *   model are refused (500, not used); Redis stopped gives UNAVAILABLE and a
 *   restarted one is picked up again; wrong addresses are refused at start.
 *
 * The keys are real: a relinearization key for models/mnist_cryptonets.onnx
 * in batch packing (5.5 MB), made here. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cryptodl/cryptodl.h"
#include "core/bytes.h"
#include "serve/record.h"
#include "serve/redis.h"
#include "serve/store.h"

static struct {
    serve_model model;
    uint8_t *rlk_bytes;
    size_t rlk_len;
} F;

static const char *source_dir(void)
{
    const char *s = getenv("CDL_SOURCE_DIR");
    return s && s[0] ? s : ".";
}

static int setup(void **state)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/models/mnist_cryptonets.onnx", source_dir());
    cdl_nn_graph *g = NULL;
    if (cdl_nn_load_file(path, &g) != CDL_OK)
        return -1;
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    serve_model *m = &F.model;
    snprintf(m->name, sizeof m->name, "mnist");
    if (cdl_he_plan_new(g, &opt, &m->plan) != CDL_OK || cdl_he_context_new(m->plan, &m->ctx) != CDL_OK)
        return -1;
    cdl_nn_graph_free(g);
    cdl_rng *rng = NULL;
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    if (cdl_rng_new_system(&rng) != CDL_OK || cdl_ckks_keygen_secret(m->ctx, rng, &sk) != CDL_OK ||
        cdl_ckks_keygen_relin(m->ctx, sk, rng, &rlk) != CDL_OK ||
        cdl_ckks_relin_key_save(m->ctx, rlk, 0, &F.rlk_bytes, &F.rlk_len) != CDL_OK)
        return -1;
    cdl_ckks_secret_key_free(sk);
    cdl_ckks_relin_key_free(rlk);
    cdl_rng_free(rng);
    m->relin_bytes = F.rlk_len;
    return 0;
}

static int teardown(void **state)
{
    cdl_free_bytes(F.rlk_bytes);
    cdl_ckks_context_free(F.model.ctx);
    cdl_he_plan_free(F.model.plan);
    return 0;
}

static cdl_ckks_relin_key *a_key(void)
{
    cdl_ckks_relin_key *k = NULL;
    assert_int_equal(cdl_ckks_relin_key_load(F.model.ctx, F.rlk_bytes, F.rlk_len, &k), CDL_OK);
    return k;
}

/* The key's serialized form again, compared with the uploaded bytes. */
static void assert_same_key(const cdl_ckks_relin_key *k)
{
    uint8_t *b = NULL;
    size_t n = 0;
    assert_int_equal(cdl_ckks_relin_key_save(F.model.ctx, k, 0, &b, &n), CDL_OK);
    assert_int_equal(n, F.rlk_len);
    assert_memory_equal(b, F.rlk_bytes, n);
    cdl_free_bytes(b);
}

static void config(cdl_serve_config *cfg, const char *sessions, unsigned ttl, size_t max_sessions, uint64_t budget)
{
    cdl_serve_config_default(cfg);
    cfg->sessions = sessions;
    cfg->session_ttl = ttl;
    cfg->max_sessions = max_sessions;
    cfg->key_cache_bytes = budget;
}

/* ---- the descriptor ---------------------------------------------------------- */

static void test_record(void **state)
{
    serve_record r, back;
    memset(&r, 0, sizeof r);
    r.seq = 42;
    for (int i = 0; i < SERVE_RECORD_HASH_BYTES; i++)
        r.param_hash[i] = (uint8_t)(7 * i + 1);
    snprintf(r.model, sizeof r.model, "mnist_cryptonets.v2");
    assert_int_equal(serve_record_chunking(&r, 5505128, SERVE_REDIS_CHUNK), CDL_OK);
    assert_int_equal(r.chunks, 1);
    assert_int_equal(serve_record_chunking(&r, 3u * SERVE_REDIS_CHUNK + 1, SERVE_REDIS_CHUNK), CDL_OK);
    assert_int_equal(r.chunks, 4);
    uint8_t b[SERVE_RECORD_MAX];
    size_t n = 0;
    assert_int_equal(serve_record_encode(&r, b, &n), CDL_OK);
    assert_int_equal(n, SERVE_RECORD_FIXED + strlen(r.model));
    assert_int_equal(serve_record_parse(b, n, &back), CDL_OK);
    assert_int_equal(back.seq, 42);
    assert_int_equal(back.key_bytes, r.key_bytes);
    assert_int_equal(back.chunks, 4);
    assert_int_equal(back.chunk_size, SERVE_REDIS_CHUNK);
    assert_string_equal(back.model, r.model);
    assert_memory_equal(back.param_hash, r.param_hash, SERVE_RECORD_HASH_BYTES);

    for (size_t k = 0; k < n; k++) /* every truncation */
        assert_int_equal(serve_record_parse(b, k, &back), CDL_ERR_FORMAT);
    uint8_t longer[SERVE_RECORD_MAX + 1];
    memcpy(longer, b, n);
    longer[n] = 'x';
    assert_int_equal(serve_record_parse(longer, n + 1, &back), CDL_ERR_FORMAT);
    struct {
        size_t at;
        uint8_t value;
        const char *what;
    } bad[] = {{0, 'X', "magic"}, {7, 2, "version"}, {8, 0, "seq"}, {56, 9, "chunk count"}, {60, 0, "chunk size"},
               {64, 3, "name length"}, {SERVE_RECORD_FIXED, '/', "name character"}, {SERVE_RECORD_FIXED + 2, ' ', "space"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t c[SERVE_RECORD_MAX];
        memcpy(c, b, n);
        if (bad[i].at == 8)
            memset(c + 8, 0, 8);
        else if (bad[i].at == 60)
            memset(c + 60, 0, 4);
        else
            c[bad[i].at] = bad[i].value;
        cdl_status st = serve_record_parse(c, n, &back);
        if (st != CDL_ERR_FORMAT)
            fail_msg("a record with a bad %s was accepted", bad[i].what);
    }
    /* encode refuses what parse would */
    serve_record e = r;
    snprintf(e.model, sizeof e.model, "a/b");
    assert_int_not_equal(serve_record_encode(&e, b, &n), CDL_OK);
    e = r;
    e.seq = 0;
    assert_int_not_equal(serve_record_encode(&e, b, &n), CDL_OK);
    assert_int_not_equal(serve_record_chunking(&e, 0, 16), CDL_OK);
    assert_int_not_equal(serve_record_chunking(&e, 10, 0), CDL_OK);
}

/* ---- memory backend --------------------------------------------------------- */

static void test_memory_backend(void **state)
{
    cdl_serve_config cfg;
    config(&cfg, NULL, 2, 2, 0);
    serve_store st;
    assert_int_equal(serve_store_init(&st, &cfg, &F.model, 1), CDL_OK);
    assert_string_equal(serve_store_where(&st), "memory");
    assert_null(serve_store_write_begin(&st, F.rlk_bytes, F.rlk_len)); /* memory sessions: nothing to write early */
    char id[33], id2[33];
    uint64_t seq = 0, seq2 = 0;
    assert_true(serve_store_room(&st));
    assert_int_equal(serve_store_create(&st, 0, a_key(), NULL, F.rlk_bytes, F.rlk_len, id, &seq), SERVE_STORE_OK);
    assert_int_equal(seq, 1);
    assert_int_equal(strlen(id), 32);
    size_t h = 0, model = 9;
    uint64_t s = 0;
    assert_int_equal(serve_store_acquire(&st, id, &h, &s, &model), SERVE_STORE_OK);
    assert_int_equal(s, 1);
    assert_int_equal(model, 0);
    size_t h2 = 0;
    assert_int_equal(serve_store_acquire(&st, id, &h2, &s, &model), SERVE_STORE_BUSY);
    const cdl_ckks_relin_key *rlk = NULL;
    const cdl_ckks_galois_keys *gk = NULL;
    double load_s = -1;
    assert_int_equal(serve_store_keys(&st, h, &rlk, &gk, &load_s), SERVE_STORE_OK);
    assert_non_null(rlk);
    assert_null(gk);
    assert_true(load_s == 0);
    assert_same_key(rlk);
    serve_store_release(&st, h);

    /* full at max_sessions */
    assert_int_equal(serve_store_create(&st, 0, a_key(), NULL, F.rlk_bytes, F.rlk_len, id2, &seq2), SERVE_STORE_OK);
    assert_false(serve_store_room(&st));
    cdl_ckks_relin_key *k3 = a_key();
    char id3[33];
    assert_int_equal(serve_store_create(&st, 0, k3, NULL, F.rlk_bytes, F.rlk_len, id3, &seq2), SERVE_STORE_FULL);
    cdl_ckks_relin_key_free(k3); /* the caller keeps the keys on failure */
    assert_int_equal(serve_store_delete(&st, id2, &seq2), SERVE_STORE_OK);
    assert_int_equal(seq2, 2);
    assert_int_equal(serve_store_delete(&st, id2, &seq2), SERVE_STORE_UNKNOWN);
    assert_int_equal(serve_store_acquire(&st, "00000000000000000000000000000000", &h, &s, &model), SERVE_STORE_UNKNOWN);
    assert_int_equal(serve_store_acquire(&st, "not hex", &h, &s, &model), SERVE_STORE_UNKNOWN);

    serve_store_stats ss;
    serve_store_get_stats(&st, &ss);
    assert_int_equal(ss.redis, 0);
    assert_int_equal(ss.live, 1);
    assert_int_equal(ss.created, 2);
    assert_int_equal(ss.deleted, 1);
    assert_int_equal(ss.hits, 1);
    assert_int_equal(ss.misses, 0);

    /* expiry: 2 s after the last use */
    struct timespec ts = {2, 200000000};
    nanosleep(&ts, NULL);
    assert_int_equal(serve_store_acquire(&st, id, &h, &s, &model), SERVE_STORE_UNKNOWN);
    serve_store_get_stats(&st, &ss);
    assert_int_equal(ss.live, 0);
    assert_int_equal(ss.expired, 1);
    serve_store_destroy(&st);
}

/* ---- the table as a cache --------------------------------------------------- */

static void test_cache_lru(void **state)
{
    serve_sessions t;
    const uint64_t kb = F.rlk_len;
    assert_int_equal(serve_sessions_init_cache(&t, 4, 60, 2 * kb), CDL_OK);
    char ids[4][33];
    for (int i = 0; i < 4; i++)
        snprintf(ids[i], sizeof ids[i], "%032x", i + 1);
    struct timespec tick = {0, 2000000};
    for (int i = 0; i < 3; i++) { /* idle entries with keys: the third evicts the first (least recently used) */
        assert_int_equal(serve_cache_insert(&t, ids[i], (uint64_t)i + 1, 0, kb, a_key(), NULL, 0, NULL),
                         SERVE_SESSION_OK);
        nanosleep(&tick, NULL);
    }
    size_t idx = 0;
    uint64_t seq = 0;
    assert_int_equal(serve_session_acquire(&t, ids[0], &idx, &seq), SERVE_SESSION_UNKNOWN);
    assert_int_equal(t.evicted, 1);
    assert_int_equal(t.bytes, 2 * kb);
    /* use #2 (now the most recent), then insert #4 busy and empty: #3 goes */
    assert_int_equal(serve_session_acquire(&t, ids[1], &idx, &seq), SERVE_SESSION_OK);
    assert_int_equal(seq, 2);
    serve_session_release(&t, idx);
    size_t i4 = 0;
    assert_int_equal(serve_cache_insert(&t, ids[3], 4, 0, kb, NULL, NULL, 1, &i4), SERVE_SESSION_OK);
    assert_int_equal(serve_session_acquire(&t, ids[2], &idx, &seq), SERVE_SESSION_UNKNOWN);
    /* the same id again while it is held: BUSY, for insert and acquire */
    assert_int_equal(serve_cache_insert(&t, ids[3], 4, 0, kb, NULL, NULL, 1, &idx), SERVE_SESSION_BUSY);
    assert_int_equal(serve_session_acquire(&t, ids[3], &idx, &seq), SERVE_SESSION_BUSY);
    /* busy entries are never evicted: #2 held, #4 held, a third over the budget still fits (a free slot) */
    size_t i2 = 0;
    assert_int_equal(serve_session_acquire(&t, ids[1], &i2, &seq), SERVE_SESSION_OK);
    size_t i1 = 0;
    assert_int_equal(serve_cache_insert(&t, ids[0], 1, 0, kb, NULL, NULL, 1, &i1), SERVE_SESSION_OK);
    assert_int_equal(t.bytes, 3 * kb);
    /* #4 loaded, #1 never loaded (dropped at release); releases trim back to the budget */
    serve_cache_fill(&t, i4, a_key(), NULL);
    serve_session_release(&t, i1);
    assert_int_equal(serve_session_acquire(&t, ids[0], &idx, &seq), SERVE_SESSION_UNKNOWN);
    serve_session_release(&t, i4);
    serve_session_release(&t, i2);
    assert_true(t.bytes <= 2 * kb);
    assert_int_equal(serve_session_count(&t), 2);
    /* forget: a held entry the store no longer has is freed at its release */
    assert_int_equal(serve_session_acquire(&t, ids[3], &idx, &seq), SERVE_SESSION_OK);
    serve_cache_forget(&t, idx);
    serve_session_release(&t, idx);
    assert_int_equal(serve_session_count(&t), 1);
    serve_sessions_destroy(&t);

    /* a budget below one key set keeps nothing once released */
    assert_int_equal(serve_sessions_init_cache(&t, 4, 60, 1), CDL_OK);
    assert_int_equal(serve_cache_insert(&t, ids[0], 1, 0, kb, a_key(), NULL, 0, NULL), SERVE_SESSION_OK);
    assert_int_equal(serve_session_count(&t), 0);
    assert_int_equal(t.bytes, 0);
    serve_sessions_destroy(&t);
}

/* ---- Redis backend ------------------------------------------------------------- */

static const char *redis_binary(void)
{
    static char found[1024];
    const char *env = getenv("CDL_REDIS_SERVER");
    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s:/usr/bin:/usr/sbin:/usr/local/bin", path ? path : "");
    for (char *save = NULL, *dir = strtok_r(buf, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof found, "%s/redis-server", dir);
        if (access(found, X_OK) == 0)
            return found;
    }
    return NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t n = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static pid_t redis_start(const char *bin, int port, const char *dir)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(bin, bin, "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
              "--daemonize", "no", "--loglevel", "warning", "--logfile", "/dev/null", (char *)NULL);
        _exit(127);
    }
    /* ready when it answers */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    for (int i = 0; i < 100; i++) {
        serve_redis *r = NULL;
        if (serve_redis_open(url, &r) == CDL_OK) {
            serve_redis_close(r);
            return pid;
        }
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fail_msg("redis-server did not answer on port %d within 5 s", port);
    return -1;
}

static void redis_stop(pid_t pid)
{
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static void test_redis_urls(void **state)
{
    if (!cdl_serve_have_redis()) {
        serve_redis *r = NULL;
        assert_int_equal(serve_redis_open("redis://127.0.0.1:6379", &r), CDL_ERR_UNSUPPORTED);
        assert_non_null(strstr(cdl_last_error(), "no Redis support"));
        print_message("this build has no libhiredis: only the refusal is tested\n");
        return;
    }
    const char *bad[] = {"redis://", "redis://:6379", "redis://h:0", "redis://h:70000", "redis://h:12x",
                         "redis://:pw@h:6379", "http://h:6379", "redis://[::1", "redis://h:1/x", "redis://h h:1",
                         "redis://h:1/2/3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        serve_redis *r = NULL;
        cdl_status st = serve_redis_open(bad[i], &r);
        if (st != CDL_ERR_INVALID_ARGUMENT)
            fail_msg("'%s' gave status %d (%s)", bad[i], st, cdl_last_error());
        assert_null(r);
    }
    serve_redis *r = NULL;
    int port = free_port(); /* nobody listens there */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    assert_int_equal(serve_redis_open(url, &r), CDL_ERR_IO);
    assert_non_null(strstr(cdl_last_error(), "cannot reach Redis at 127.0.0.1"));
    /* and the server refuses to start on it */
    cdl_serve_config cfg;
    config(&cfg, url, 60, 4, 0);
    serve_store st;
    assert_int_not_equal(serve_store_init(&st, &cfg, &F.model, 1), CDL_OK);
    serve_store_destroy(&st);
}

/* Send one inline command to Redis on this port over a plain socket; its first reply line in line[64]. */
static void redis_cmd(int port, const char *cmd, char line[64])
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[128];
    const int len = snprintf(req, sizeof req, "%s\r\n", cmd);
    assert_int_equal(write(fd, req, (size_t)len), len);
    memset(line, 0, 64);
    size_t n = 0;
    while (n < 63 && !strchr(line, '\n')) {
        ssize_t r = read(fd, line + n, 63 - n);
        assert_true(r > 0);
        n += (size_t)r;
    }
    close(fd);
}

/* How many keys Redis on this port holds. */
static long redis_dbsize(int port)
{
    char line[64];
    redis_cmd(port, "DBSIZE", line);
    assert_int_equal(line[0], ':');
    return strtol(line + 1, NULL, 10);
}

static void test_redis_backend(void **state)
{
    const char *bin = redis_binary();
    if (!cdl_serve_have_redis() || !bin) {
        print_message("SKIPPED: %s\n", !bin ? "no redis-server binary (apt-get install redis-server)"
                                            : "this build has no libhiredis");
        skip();
    }
    char dir[] = "/tmp/cdl-redis-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    const int port = free_port();
    pid_t pid = redis_start(bin, port, dir);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    cdl_serve_config cfg;
    config(&cfg, url, 60, 1, 0);
    serve_store a, b;
    assert_int_equal(serve_store_init(&a, &cfg, &F.model, 1), CDL_OK);
    assert_int_equal(serve_store_init(&b, &cfg, &F.model, 1), CDL_OK);
    assert_non_null(strstr(serve_store_where(&a), "127.0.0.1:"));

    /* created on a (max_sessions 1 does not apply), served by b from Redis */
    char id[33], id2[33];
    uint64_t seq = 0, seq2 = 0;
    assert_int_equal(serve_store_create(&a, 0, a_key(), NULL, F.rlk_bytes, F.rlk_len, id, &seq), SERVE_STORE_OK);
    assert_int_equal(serve_store_create(&b, 0, a_key(), NULL, F.rlk_bytes, F.rlk_len, id2, &seq2), SERVE_STORE_OK);
    assert_true(seq >= 1 && seq2 == seq + 1); /* one sequence for every replica */
    uint8_t idb[SERVE_ID_BYTES];
    assert_true(serve_session_parse_id(id, idb));
    char key[SERVE_REDIS_KEY_MAX];
    serve_redis_key(idb, sizeof idb, key);
    assert_null(strstr(key, id)); /* the id itself never goes to Redis */
    assert_int_equal(strlen(key), strlen("cdl:session:") + 64);

    size_t h = 0, model = 9;
    uint64_t s = 0;
    const cdl_ckks_relin_key *rlk = NULL;
    const cdl_ckks_galois_keys *gk = NULL;
    double load_s = 0;
    assert_int_equal(serve_store_acquire(&b, id, &h, &s, &model), SERVE_STORE_OK);
    assert_int_equal(s, seq);
    assert_int_equal(model, 0);
    size_t h2 = 0;
    assert_int_equal(serve_store_acquire(&b, id, &h2, &s, &model), SERVE_STORE_BUSY);
    assert_int_equal(serve_store_keys(&b, h, &rlk, &gk, &load_s), SERVE_STORE_OK);
    assert_true(load_s > 0);
    assert_same_key(rlk);
    serve_store_release(&b, h);
    assert_int_equal(serve_store_acquire(&b, id, &h, &s, &model), SERVE_STORE_OK);
    assert_int_equal(serve_store_keys(&b, h, &rlk, &gk, &load_s), SERVE_STORE_OK);
    assert_true(load_s == 0); /* a hit */
    serve_store_release(&b, h);
    assert_int_equal(serve_store_acquire(&a, id, &h, &s, &model), SERVE_STORE_OK); /* cached at creation */
    assert_int_equal(serve_store_keys(&a, h, &rlk, &gk, &load_s), SERVE_STORE_OK);
    assert_true(load_s == 0);
    serve_store_release(&a, h);
    serve_store_stats sa, sb;
    serve_store_get_stats(&a, &sa);
    serve_store_get_stats(&b, &sb);
    assert_int_equal(sb.misses, 1);
    assert_int_equal(sb.hits, 1);
    assert_int_equal(sa.hits, 1);
    assert_int_equal(sa.misses, 0);
    assert_int_equal(sb.loads[SERVE_LOAD_BUCKETS], 0); /* under 10 s */
    assert_int_equal(sb.live, 2);                       /* id (loaded) and id2 (created there) */
    assert_int_equal(sb.cache_bytes, 2 * F.rlk_len);

    /* deleted through a: gone for b too (its cached copy is dropped at the next use) */
    assert_int_equal(serve_store_delete(&a, id, &s), SERVE_STORE_OK);
    assert_int_equal(s, seq);
    assert_int_equal(serve_store_delete(&a, id, &s), SERVE_STORE_UNKNOWN);
    assert_int_equal(serve_store_acquire(&b, id, &h, &s, &model), SERVE_STORE_UNKNOWN);
    serve_store_get_stats(&b, &sb);
    assert_int_equal(sb.live, 1);

    /* corrupt stored keys: the descriptor reads, the keys fail the loader's checks (never used) */
    serve_record rec;
    memset(&rec, 0, sizeof rec);
    rec.seq = 99;
    snprintf(rec.model, sizeof rec.model, "mnist");
    memcpy(rec.param_hash, cdl_ckks_param_hash(F.model.ctx), SERVE_RECORD_HASH_BYTES);
    assert_int_equal(serve_record_chunking(&rec, F.rlk_len, 1u << 20), CDL_OK); /* 6 chunks */
    uint8_t meta[SERVE_RECORD_MAX];
    size_t meta_len = 0;
    assert_int_equal(serve_record_encode(&rec, meta, &meta_len), CDL_OK);
    uint8_t *bad = malloc(F.rlk_len);
    assert_non_null(bad);
    memcpy(bad, F.rlk_bytes, F.rlk_len);
    bad[F.rlk_len / 2] ^= 1;
    const char *fake = "0123456789abcdef0123456789abcdef";
    uint8_t fid[SERVE_ID_BYTES];
    assert_true(serve_session_parse_id(fake, fid));
    serve_redis_key(fid, sizeof fid, key);
    int collision = 1;
    assert_int_equal(serve_redis_put(a.redis, key, meta, meta_len, bad, F.rlk_len, 1u << 20, 60, &collision), CDL_OK);
    assert_int_equal(collision, 0);
    assert_int_equal(serve_redis_put(a.redis, key, meta, meta_len, bad, F.rlk_len, 1u << 20, 60, &collision), CDL_OK);
    assert_int_equal(collision, 1); /* the hash exists: nothing written */
    assert_int_equal(serve_store_acquire(&b, fake, &h, &s, &model), SERVE_STORE_OK);
    assert_int_equal(s, 99);
    assert_int_equal(serve_store_keys(&b, h, &rlk, &gk, &load_s), SERVE_STORE_BAD);
    assert_non_null(strstr(cdl_last_error(), "failed the checks"));
    serve_store_release(&b, h);
    /* the same bytes, correct this time, in 6 chunks: accepted */
    int found = 0;
    size_t rl = 0;
    assert_int_equal(serve_redis_delete(a.redis, key, meta, sizeof meta, &rl, &found), CDL_OK);
    assert_int_equal(found, 1);
    assert_int_equal(serve_record_encode(&rec, meta, &meta_len), CDL_OK);
    assert_int_equal(serve_redis_put(a.redis, key, meta, meta_len, F.rlk_bytes, F.rlk_len, 1u << 20, 60, &collision),
                     CDL_OK);
    assert_int_equal(serve_store_acquire(&b, fake, &h, &s, &model), SERVE_STORE_OK);
    assert_int_equal(serve_store_keys(&b, h, &rlk, &gk, &load_s), SERVE_STORE_OK);
    assert_same_key(rlk);
    serve_store_release(&b, h);
    /* a descriptor for a model this replica does not serve */
    snprintf(rec.model, sizeof rec.model, "other");
    assert_int_equal(serve_record_encode(&rec, meta, &meta_len), CDL_OK);
    const char *fake2 = "fedcba9876543210fedcba9876543210";
    assert_true(serve_session_parse_id(fake2, fid));
    serve_redis_key(fid, sizeof fid, key);
    assert_int_equal(serve_redis_put(a.redis, key, meta, meta_len, F.rlk_bytes, F.rlk_len, 1u << 20, 60, &collision),
                     CDL_OK);
    assert_int_equal(serve_store_acquire(&b, fake2, &h, &s, &model), SERVE_STORE_BAD);
    assert_non_null(strstr(cdl_last_error(), "does not serve"));
    free(bad);

    /* the server's path: the keys written while they are checked (serve_store_write_begin); abandoned (the checks
     * failed): nothing left in Redis; published: a session like any other, served by the other replica */
    const long keys_before = redis_dbsize(port);
    serve_store_write *w = serve_store_write_begin(&a, F.rlk_bytes, F.rlk_len);
    assert_non_null(w);
    serve_store_write_abandon(&a, w);
    assert_int_equal(redis_dbsize(port), keys_before);
    w = serve_store_write_begin(&a, F.rlk_bytes, F.rlk_len);
    assert_non_null(w);
    char id4[33];
    uint64_t seq4 = 0;
    assert_int_equal(serve_store_create_written(&a, w, 0, a_key(), NULL, id4, &seq4), SERVE_STORE_OK);
    assert_true(seq4 > seq2);
    assert_int_equal(redis_dbsize(port), keys_before + 1);
    assert_int_equal(serve_store_acquire(&b, id4, &h, &s, &model), SERVE_STORE_OK);
    assert_int_equal(s, seq4);
    assert_int_equal(serve_store_keys(&b, h, &rlk, &gk, &load_s), SERVE_STORE_OK);
    assert_true(load_s > 0);
    assert_same_key(rlk);
    serve_store_release(&b, h);

    /* Redis full (its maxmemory): FULL (429) by both paths, nothing left behind, and the store's pooled connections
     * still in step with Redis afterwards (every reply of a refused pipeline read) */
    char line[64];
    redis_cmd(port, "CONFIG SET maxmemory 1mb", line);
    assert_int_equal(strncmp(line, "+OK", 3), 0);
    cdl_ckks_relin_key *kf = a_key();
    char idf[33];
    uint64_t seqf = 0;
    assert_int_equal(serve_store_create(&a, 0, kf, NULL, F.rlk_bytes, F.rlk_len, idf, &seqf), SERVE_STORE_FULL);
    w = serve_store_write_begin(&a, F.rlk_bytes, F.rlk_len);
    assert_non_null(w);
    assert_int_equal(serve_store_create_written(&a, w, 0, kf, NULL, idf, &seqf), SERVE_STORE_FULL);
    cdl_ckks_relin_key_free(kf);
    redis_cmd(port, "CONFIG SET maxmemory 0", line);
    assert_int_equal(strncmp(line, "+OK", 3), 0);
    assert_int_equal(redis_dbsize(port), keys_before + 1);
    for (int i = 0; i < 3; i++) { /* more uses than the failed operations' connections */
        assert_int_equal(serve_store_create(&a, 0, a_key(), NULL, F.rlk_bytes, F.rlk_len, idf, &seqf), SERVE_STORE_OK);
        assert_int_equal(serve_store_acquire(&b, idf, &h, &s, &model), SERVE_STORE_OK);
        assert_int_equal(s, seqf);
        assert_int_equal(serve_store_keys(&b, h, &rlk, &gk, &load_s), SERVE_STORE_OK);
        assert_same_key(rlk);
        serve_store_release(&b, h);
        assert_int_equal(serve_store_delete(&a, idf, &s), SERVE_STORE_OK);
        assert_int_equal(s, seqf);
    }

    /* Redis stopped: UNAVAILABLE (503), nothing crashes; restarted on the same port: served again */
    redis_stop(pid);
    assert_int_equal(serve_store_acquire(&b, id2, &h, &s, &model), SERVE_STORE_UNAVAILABLE);
    assert_non_null(strstr(cdl_last_error(), "Redis at 127.0.0.1"));
    cdl_ckks_relin_key *k = a_key();
    char id3[33];
    assert_int_equal(serve_store_create(&a, 0, k, NULL, F.rlk_bytes, F.rlk_len, id3, &seq), SERVE_STORE_UNAVAILABLE);
    cdl_ckks_relin_key_free(k);
    pid = redis_start(bin, port, dir); /* empty: the sessions were in its memory (no persistence in this test) */
    assert_int_equal(serve_store_acquire(&b, id2, &h, &s, &model), SERVE_STORE_UNKNOWN);
    assert_int_equal(serve_store_create(&a, 0, a_key(), NULL, F.rlk_bytes, F.rlk_len, id3, &seq), SERVE_STORE_OK);
    serve_store_get_stats(&b, &sb);
    assert_true(sb.errors >= 2);
    serve_store_destroy(&a);
    serve_store_destroy(&b);

    /* TTL: Redis's, refreshed by each use; a budget below one key set keeps nothing here */
    config(&cfg, url, 2, 1, 1);
    assert_int_equal(serve_store_init(&a, &cfg, &F.model, 1), CDL_OK);
    assert_int_equal(serve_store_create(&a, 0, a_key(), NULL, F.rlk_bytes, F.rlk_len, id, &seq), SERVE_STORE_OK);
    serve_store_get_stats(&a, &sa);
    assert_int_equal(sa.live, 0);
    assert_int_equal(sa.cache_bytes, 0);
    for (int i = 0; i < 3; i++) { /* 3 uses 1.2 s apart: 3.6 s > the TTL, alive because each use restarts it */
        struct timespec ts = {1, 200000000};
        nanosleep(&ts, NULL);
        assert_int_equal(serve_store_acquire(&a, id, &h, &s, &model), SERVE_STORE_OK);
        assert_int_equal(serve_store_keys(&a, h, &rlk, &gk, &load_s), SERVE_STORE_OK);
        assert_true(load_s > 0); /* a miss every time: nothing kept */
        serve_store_release(&a, h);
    }
    struct timespec ts = {2, 500000000};
    nanosleep(&ts, NULL);
    assert_int_equal(serve_store_acquire(&a, id, &h, &s, &model), SERVE_STORE_UNKNOWN);
    serve_store_get_stats(&a, &sa);
    assert_int_equal(sa.misses, 3);
    assert_true(sa.evictions >= 3);
    serve_store_destroy(&a);

    redis_stop(pid);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL); /* the store must not rely on the application ignoring it */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record),          cmocka_unit_test(test_memory_backend),
        cmocka_unit_test(test_cache_lru),       cmocka_unit_test(test_redis_urls),
        cmocka_unit_test(test_redis_backend),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
