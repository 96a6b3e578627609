/* test_serve.c: the HTTP service (include/cryptodl/serve.h) seen from a
 * client. Three servers on ephemeral ports serve models/mnist_cryptonets.onnx:
 * one with the default limits, one with small ones (8 MB bodies, 2 sessions
 * living 3 s, one evaluation and no queue) to reach every limit, and one in
 * slots packing, whose sessions carry Galois keys (the body is relin.key's
 * bytes followed by galois.key's): its model info, every refusal of a
 * session body (relin key alone, Galois keys alone or first, truncated,
 * lacking rotation steps, a secret key after the relin key; Galois keys sent
 * to the batch model), batches of the other packing, and real encrypted
 * predictions of MNIST images, a few per request. A tiny
 * blocking-socket HTTP/1.1 client, written here, exercises every endpoint
 * and error path, and one real encrypted prediction: keys and encryption of
 * real MNIST test images on the client side, the evaluation over HTTP, then
 * decryption; the predictions must equal the plaintext reference's
 * (cdl_nn_run on the same images) and the logits be within LOGIT_TOL of it.
 *
 * LOGIT_TOL: with the parameters the plan picks (N = 2^13, scale 2^28) max
 * |encrypted - reference| measured 6.5e-5 .. 1.8e-4 over runs of this test (4
 * images) and 2.3e-4 over a whole batch of 4,096 (`cryptodl predict`); 1e-3
 * leaves more than 4x margin. Slots packing (same parameters): 3.5e-4 .. 4e-4
 * on 4 images, 2.5x margin. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cryptodl/cryptodl.h"

#define LOGIT_TOL 1e-3
#define N_IMAGES 4

static const char *source_dir(void)
{
    const char *s = getenv("CDL_SOURCE_DIR");
    return s && s[0] ? s : ".";
}

/* ---- a tiny HTTP/1.1 client ------------------------------------------------ */

#include "test_http_util.h"

/* An error response: the expected status, a JSON object {"error": "..."} whose message contains `needle`. */
static void expect_error(const http_resp *r, int status, const char *needle)
{
    if (r->status != status)
        fprintf(stderr, "expected %d, got %d: %s\n", status, r->status, (const char *)r->body);
    assert_int_equal(r->status, status);
    char ct[64];
    assert_non_null(header(r, "Content-Type", ct, sizeof ct));
    assert_string_equal(ct, "application/json");
    json_error_t je;
    json_t *o = json_loads((const char *)r->body, 0, &je);
    assert_non_null(o);
    const char *msg = json_string_value(json_object_get(o, "error"));
    assert_non_null(msg);
    if (needle && !strstr(msg, needle))
        fprintf(stderr, "message '%s' lacks '%s'\n", msg, needle);
    assert_true(!needle || strstr(msg, needle) != NULL);
    json_decref(o);
}

/* ---- fixtures ------------------------------------------------------------------ */

typedef struct fixture {
    char model_path[4096];
    cdl_serve *srv, *small, *slots; /* default limits; small limits; slots packing */
    uint16_t port, small_port, slots_port;
    /* the client side */
    cdl_nn_graph *graph;
    cdl_he_plan *plan;
    cdl_ckks_context *ctx;
    cdl_rng *rng;
    cdl_ckks_secret_key *sk;
    uint8_t *rlk_bytes, *sk_bytes, *pk_bytes;
    size_t rlk_len, sk_len, pk_len;
    /* the client of the slots server: its plan, keys, and the session body (relin.key + galois.key) */
    cdl_he_plan *splan;
    cdl_ckks_context *sctx;
    cdl_ckks_secret_key *ssk;
    uint8_t *s_rlk, *s_gk, *s_body;
    size_t s_rlk_len, s_gk_len, s_body_len;
} fixture;

static fixture F;

/* The slots server, and its client's keys. */
static int setup_slots(cdl_serve_model_spec *spec)
{
    spec->name = "slots";
    spec->he.packing = CDL_HE_PACKING_SLOTS;
    cdl_serve_config cfg;
    cdl_serve_config_default(&cfg);
    cfg.port = 0;
    cfg.models = spec;
    cfg.n_models = 1;
    if (cdl_serve_start(&cfg, &F.slots) != CDL_OK) {
        fprintf(stderr, "cannot start the slots server: %s\n", cdl_last_error());
        return -1;
    }
    F.slots_port = cdl_serve_port(F.slots);
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL;
    if (cdl_he_plan_new(F.graph, &spec->he, &F.splan) != CDL_OK || cdl_he_context_new(F.splan, &F.sctx) != CDL_OK ||
        cdl_ckks_keygen_secret(F.sctx, F.rng, &F.ssk) != CDL_OK ||
        cdl_ckks_keygen_relin(F.sctx, F.ssk, F.rng, &rlk) != CDL_OK ||
        cdl_he_keygen_galois(F.splan, F.sctx, F.ssk, F.rng, &gk) != CDL_OK ||
        cdl_ckks_relin_key_save(F.sctx, rlk, 0, &F.s_rlk, &F.s_rlk_len) != CDL_OK ||
        cdl_ckks_galois_keys_save(F.sctx, gk, 0, &F.s_gk, &F.s_gk_len) != CDL_OK) {
        fprintf(stderr, "slots client setup failed: %s\n", cdl_last_error());
        return -1;
    }
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_galois_keys_free(gk);
    F.s_body_len = F.s_rlk_len + F.s_gk_len; /* cat relin.key galois.key */
    F.s_body = malloc(F.s_body_len);
    if (!F.s_body)
        return -1;
    memcpy(F.s_body, F.s_rlk, F.s_rlk_len);
    memcpy(F.s_body + F.s_rlk_len, F.s_gk, F.s_gk_len);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(F.model_path, sizeof F.model_path, "%s/models/mnist_cryptonets.onnx", source_dir());
    cdl_serve_model_spec spec = {.path = F.model_path};
    cdl_he_options_default(&spec.he);
    cdl_serve_config cfg;
    cdl_serve_config_default(&cfg);
    cfg.port = 0;
    cfg.models = &spec;
    cfg.n_models = 1;
    if (cdl_serve_start(&cfg, &F.srv) != CDL_OK) {
        fprintf(stderr, "cannot start the server: %s\n", cdl_last_error());
        return -1;
    }
    F.port = cdl_serve_port(F.srv);
    cfg.max_body_bytes = 8u << 20;
    cfg.max_sessions = 2;
    cfg.session_ttl = 3; /* long enough for the steps before the expiry check under load */
    cfg.max_evaluations = 1;
    cfg.max_queued = 0;
    spec.name = "small";
    if (cdl_serve_start(&cfg, &F.small) != CDL_OK) {
        fprintf(stderr, "cannot start the second server: %s\n", cdl_last_error());
        return -1;
    }
    F.small_port = cdl_serve_port(F.small);
    /* the client compiles the same model with the same options */
    cdl_ckks_public_key *pk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    if (cdl_nn_load_file(F.model_path, &F.graph) != CDL_OK || cdl_he_plan_new(F.graph, &spec.he, &F.plan) != CDL_OK ||
        cdl_he_context_new(F.plan, &F.ctx) != CDL_OK || cdl_rng_new_system(&F.rng) != CDL_OK ||
        cdl_ckks_keygen_secret(F.ctx, F.rng, &F.sk) != CDL_OK ||
        cdl_ckks_keygen_relin(F.ctx, F.sk, F.rng, &rlk) != CDL_OK ||
        cdl_ckks_keygen_public(F.ctx, F.sk, F.rng, &pk) != CDL_OK ||
        cdl_ckks_relin_key_save(F.ctx, rlk, 0, &F.rlk_bytes, &F.rlk_len) != CDL_OK ||
        cdl_ckks_secret_key_save(F.ctx, F.sk, 0, &F.sk_bytes, &F.sk_len) != CDL_OK ||
        cdl_ckks_public_key_save(F.ctx, pk, 0, &F.pk_bytes, &F.pk_len) != CDL_OK) {
        fprintf(stderr, "client setup failed: %s\n", cdl_last_error());
        return -1;
    }
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_public_key_free(pk);
    return setup_slots(&spec);
}

static int teardown(void **state)
{
    (void)state;
    cdl_serve_free(F.srv);
    cdl_serve_free(F.small);
    cdl_serve_free(F.slots);
    free(F.s_body);
    cdl_free_bytes(F.s_rlk);
    cdl_free_bytes(F.s_gk);
    cdl_ckks_secret_key_free(F.ssk);
    cdl_ckks_context_free(F.sctx);
    cdl_he_plan_free(F.splan);
    if (F.sk_bytes)
        memset(F.sk_bytes, 0, F.sk_len);
    cdl_free_bytes(F.sk_bytes);
    cdl_free_bytes(F.rlk_bytes);
    cdl_free_bytes(F.pk_bytes);
    cdl_ckks_secret_key_free(F.sk);
    cdl_rng_free(F.rng);
    cdl_ckks_context_free(F.ctx);
    cdl_he_plan_free(F.plan);
    cdl_nn_graph_free(F.graph);
    return 0;
}

/* POST relin.key bytes to a model; returns the session id (33 chars) on 201. */
static int open_session(uint16_t port, const char *model, const uint8_t *key, size_t len, char id[33])
{
    char path[256];
    snprintf(path, sizeof path, "/v1/models/%s/sessions", model);
    http_resp r;
    http(port, "POST", path, key, len, &r);
    int status = r.status;
    if (status == 201) {
        json_t *o = json_loads((const char *)r.body, 0, NULL);
        assert_non_null(o);
        const char *s = json_string_value(json_object_get(o, "session"));
        assert_non_null(s);
        assert_int_equal(strlen(s), 32);
        assert_int_equal(strspn(s, "0123456789abcdef"), 32);
        assert_string_equal(json_string_value(json_object_get(o, "model")), model);
        assert_true(json_integer_value(json_object_get(o, "expires_in")) > 0);
        memcpy(id, s, 33);
        json_decref(o);
    }
    resp_free(&r);
    return status;
}

static double metric(uint16_t port, const char *name)
{
    http_resp r;
    http(port, "GET", "/v1/metrics", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    char key[128];
    snprintf(key, sizeof key, "\n%s ", name);
    const char *p = strstr((const char *)r.body, key);
    double v = p ? atof(p + strlen(key)) : -1;
    resp_free(&r);
    return v;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_health_models_metrics(void **state)
{
    (void)state;
    http_resp r;
    http(F.port, "GET", "/v1/health", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal((const char *)r.body, "{\"status\":\"ok\"}");
    resp_free(&r);

    /* /v1/models reports what the client's own plan says, and the hash its objects carry */
    http(F.port, "GET", "/v1/models", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *root = json_loads((const char *)r.body, 0, NULL);
    assert_non_null(root);
    json_t *m = json_array_get(json_object_get(root, "models"), 0);
    assert_non_null(m);
    assert_string_equal(json_string_value(json_object_get(m, "name")), "mnist_cryptonets");
    assert_int_equal(json_integer_value(json_object_get(m, "input_size")), cdl_he_plan_input_size(F.plan));
    assert_int_equal(json_integer_value(json_object_get(m, "output_size")), cdl_he_plan_output_size(F.plan));
    json_t *shape = json_object_get(m, "input_shape");
    size_t numel = 1;
    for (size_t i = 0; i < json_array_size(shape); i++)
        numel *= (size_t)json_integer_value(json_array_get(shape, i));
    assert_int_equal(numel, cdl_he_plan_input_size(F.plan));
    json_t *he = json_object_get(m, "he");
    const cdl_ckks_param_spec *sp = cdl_he_plan_params(F.plan);
    assert_int_equal(json_integer_value(json_object_get(he, "log_n")), sp->log_n);
    assert_int_equal(json_integer_value(json_object_get(he, "levels")), cdl_he_plan_levels(F.plan));
    assert_int_equal(json_integer_value(json_object_get(he, "batch_capacity")), cdl_he_plan_batch_capacity(F.plan));
    assert_int_equal(json_integer_value(json_object_get(he, "log_qp")), (json_int_t)lround(cdl_ckks_log_qp(F.ctx)));
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", F.rlk_bytes[8 + i]); /* the hash in relin.key's envelope */
    assert_string_equal(json_string_value(json_object_get(he, "param_hash")), hex);
    assert_int_equal(json_integer_value(json_object_get(m, "relin_key_bytes")), F.rlk_len);
    json_decref(root);
    resp_free(&r);

    /* keep-alive: two requests on one connection, two answers */
    int fd = connect_to(F.port);
    const char *two = "GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n"
                      "GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_int_equal(send_all(fd, two, strlen(two)), 0);
    read_response(fd, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr((const char *)r.body, "HTTP/1.1 200 OK"));
    resp_free(&r);

    http(F.port, "HEAD", "/v1/health", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    http(F.port, "GET", "/v1/metrics", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    char ct[64];
    assert_non_null(header(&r, "Content-Type", ct, sizeof ct));
    assert_non_null(strstr(ct, "text/plain"));
    const char *body = (const char *)r.body;
    assert_non_null(strstr(body, "cdl_http_requests_total{endpoint=\"health\",status=\"200\"} "));
    assert_non_null(strstr(body, "cdl_http_requests_total{endpoint=\"models\",status=\"200\"} 1\n"));
    assert_non_null(strstr(body, "# TYPE cdl_evaluation_seconds_total counter\n"));
    assert_non_null(strstr(body, "\ncdl_sessions "));
    assert_non_null(strstr(body, "\ncdl_http_received_bytes_total "));
    assert_non_null(strstr(body, "\ncdl_http_sent_bytes_total "));
    resp_free(&r);
}

static void test_routes_and_methods(void **state)
{
    (void)state;
    http_resp r;
    char allow[64];
    http(F.port, "GET", "/nope", NULL, 0, &r);
    expect_error(&r, 404, "no such endpoint");
    resp_free(&r);
    http(F.port, "GET", "/v1/models/mnist_cryptonets/predict", NULL, 0, &r);
    expect_error(&r, 404, "no such endpoint");
    resp_free(&r);
    http(F.port, "PUT", "/v1/health", "x", 1, &r);
    expect_error(&r, 405, "use GET");
    assert_string_equal(header(&r, "Allow", allow, sizeof allow), "GET");
    resp_free(&r);
    http(F.port, "POST", "/v1/models", "x", 1, &r);
    expect_error(&r, 405, NULL);
    resp_free(&r);
    http(F.port, "GET", "/v1/models/mnist_cryptonets/sessions", NULL, 0, &r);
    expect_error(&r, 405, "use POST");
    assert_string_equal(header(&r, "Allow", allow, sizeof allow), "POST");
    resp_free(&r);
    http(F.port, "GET", "/v1/sessions/00112233445566778899aabbccddeeff/predict", NULL, 0, &r);
    expect_error(&r, 405, NULL);
    resp_free(&r);
    http(F.port, "POST", "/v1/sessions/00112233445566778899aabbccddeeff", "x", 1, &r);
    expect_error(&r, 405, NULL);
    assert_string_equal(header(&r, "Allow", allow, sizeof allow), "DELETE");
    resp_free(&r);
    /* unknown model, unknown or malformed session ids */
    http(F.port, "POST", "/v1/models/no_such_model/sessions", F.rlk_bytes, F.rlk_len, &r);
    expect_error(&r, 404, "no model named 'no_such_model'");
    resp_free(&r);
    http(F.port, "DELETE", "/v1/sessions/00112233445566778899aabbccddeeff", NULL, 0, &r);
    expect_error(&r, 404, "unknown session");
    resp_free(&r);
    http(F.port, "POST", "/v1/sessions/not-an-id/predict", "x", 1, &r);
    expect_error(&r, 404, "unknown session");
    resp_free(&r);
    http(F.port, "POST", "/v1/sessions/00112233445566778899aabbccddeeff00/predict", "x", 1, &r);
    expect_error(&r, 404, "unknown session");
    resp_free(&r);
}

static void test_session_key_errors(void **state)
{
    (void)state;
    http_resp r;
    const char *path = "/v1/models/mnist_cryptonets/sessions";
    /* garbage */
    uint8_t junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 131 + 7);
    http(F.port, "POST", path, junk, sizeof junk, &r);
    expect_error(&r, 400, "not a relinearization key");
    resp_free(&r);
    /* empty body */
    http_ex(F.port, "POST", path, NULL, 0, 0, &r);
    expect_error(&r, 400, "empty body");
    resp_free(&r);
    /* truncated */
    http(F.port, "POST", path, F.rlk_bytes, F.rlk_len / 2, &r);
    expect_error(&r, 400, "not a relinearization key");
    resp_free(&r);
    /* one corrupt byte in the payload: the checksum catches it */
    uint8_t *bad = malloc(F.rlk_len);
    assert_non_null(bad);
    memcpy(bad, F.rlk_bytes, F.rlk_len);
    bad[F.rlk_len - 100] ^= 0x40;
    http(F.port, "POST", path, bad, F.rlk_len, &r);
    expect_error(&r, 400, "not a relinearization key");
    resp_free(&r);
    free(bad);
    /* the wrong object type */
    http(F.port, "POST", path, F.pk_bytes, F.pk_len, &r);
    expect_error(&r, 400, "public key");
    resp_free(&r);
    /* a secret key is refused as such */
    http(F.port, "POST", path, F.sk_bytes, F.sk_len, &r);
    expect_error(&r, 400, "this is a secret key: a server must never receive it");
    resp_free(&r);
    /* a relinearization key made for other parameters (the N = 2^13 preset) */
    cdl_ckks_param_spec spec;
    cdl_ckks_context *other = NULL;
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_ckks_preset(13, &spec), CDL_OK);
    assert_int_equal(cdl_ckks_context_new(&spec, &other), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(other, F.rng, &sk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_relin(other, sk, F.rng, &rlk), CDL_OK);
    assert_int_equal(cdl_ckks_relin_key_save(other, rlk, 0, &blob, &len), CDL_OK);
    assert_memory_not_equal(blob + 8, F.rlk_bytes + 8, 32);
    http(F.port, "POST", path, blob, len, &r);
    expect_error(&r, 400, "other CKKS parameters");
    resp_free(&r);
    cdl_free_bytes(blob);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
    cdl_ckks_context_free(other);
    assert_int_equal(cdl_serve_session_count(F.srv), 0);
}

static void test_body_limits(void **state)
{
    (void)state;
    http_resp r;
    /* announced too large: refused at the headers, before any upload */
    http_ex(F.port, "POST", "/v1/models/mnist_cryptonets/sessions", NULL, 0,
            (long long)cdl_serve_max_body(F.srv) + 1, &r);
    expect_error(&r, 413, "larger than the limit");
    resp_free(&r);
    /* a session takes no more than a relinearization key's size (plus 64 KiB), whatever the body limit */
    http_ex(F.port, "POST", "/v1/models/mnist_cryptonets/sessions", NULL, 0, (long long)F.rlk_len + 65537, &r);
    expect_error(&r, 413, NULL);
    resp_free(&r);
    http_ex(F.port, "POST", "/v1/sessions/00112233445566778899aabbccddeeff/predict", NULL, 0,
            (long long)cdl_serve_max_body(F.srv) + 1, &r);
    expect_error(&r, 413, NULL);
    resp_free(&r);
    /* chunked (no Content-Length) beyond the small server's limit for a session, the smaller of its 8 MB and the
     * relinearization key's size (5.5 MB) + 64 KiB: dropped as it arrives, 413 at the end */
    int fd = connect_to(F.small_port);
    const char *head = "POST /v1/models/small/sessions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    assert_int_equal(send_all(fd, head, strlen(head)), 0);
    static uint8_t chunk[(1 << 20) + 16];
    int n = snprintf((char *)chunk, 16, "%x\r\n", 1 << 20);
    memset(chunk + n, 'a', 1 << 20);
    memcpy(chunk + n + (1 << 20), "\r\n", 2);
    for (int i = 0; i < 7; i++) /* 7 MB: over the limit, under twice it (then the connection is dropped) */
        if (send_all(fd, chunk, (size_t)n + (1 << 20) + 2) != 0)
            break;
    send_all(fd, "0\r\n\r\n", 5);
    read_response(fd, &r);
    char want[96];
    snprintf(want, sizeof want, "larger than the limit of %zu bytes", F.rlk_len + 65536);
    expect_error(&r, 413, want);
    resp_free(&r);
}

static void test_encrypted_prediction(void **state)
{
    (void)state;
    char id[33];
    assert_int_equal(open_session(F.port, "mnist_cryptonets", F.rlk_bytes, F.rlk_len, id), 201);
    assert_int_equal(cdl_serve_session_count(F.srv), 1);

    /* client: encrypt real MNIST test images */
    char data_dir[4096];
    snprintf(data_dir, sizeof data_dir, "%s/data", source_dir());
    cdl_dataset *ds = NULL;
    assert_int_equal(cdl_dataset_load("mnist", data_dir, "test", N_IMAGES, &ds), CDL_OK);
    const size_t per = cdl_dataset_image_size(ds), nout = cdl_he_plan_output_size(F.plan);
    assert_int_equal(per, cdl_he_plan_input_size(F.plan));
    double *img = malloc(N_IMAGES * per * sizeof *img), *ref = malloc(N_IMAGES * nout * sizeof *ref),
           *he = malloc(N_IMAGES * nout * sizeof *he);
    assert_true(img && ref && he);
    for (size_t i = 0; i < N_IMAGES * per; i++)
        img[i] = ds->pixels[i];
    cdl_he_batch *batch = NULL, *logits = NULL;
    assert_int_equal(cdl_he_encrypt_batch(F.plan, F.ctx, NULL, F.sk, img, N_IMAGES, F.rng, &batch), CDL_OK);
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_he_batch_save(F.ctx, batch, 0, &blob, &len), CDL_OK);
    cdl_he_batch_free(batch);

    /* server: evaluate over HTTP */
    char path[128];
    snprintf(path, sizeof path, "/v1/sessions/%s/predict", id);
    http_resp r;
    http(F.port, "POST", path, blob, len, &r);
    cdl_free_bytes(blob);
    if (r.status != 200)
        fprintf(stderr, "predict: %d %s\n", r.status, (const char *)r.body);
    assert_int_equal(r.status, 200);
    char hv[160];
    assert_string_equal(header(&r, "Content-Type", hv, sizeof hv), "application/octet-stream");
    assert_non_null(header(&r, "Server-Timing", hv, sizeof hv));
    assert_non_null(strstr(hv, "eval;dur="));

    /* client: decrypt and compare with the plaintext reference */
    assert_int_equal(cdl_he_batch_load(F.ctx, r.body, r.len, &logits), CDL_OK);
    resp_free(&r);
    assert_int_equal(cdl_he_batch_images(logits), N_IMAGES);
    assert_int_equal(cdl_he_decrypt_logits(F.plan, F.ctx, F.sk, logits, he), CDL_OK);
    cdl_he_batch_free(logits);
    assert_int_equal(cdl_nn_run(F.graph, img, N_IMAGES, ref), CDL_OK);
    double max_diff = 0;
    for (size_t j = 0; j < N_IMAGES; j++) {
        size_t ah = 0, ar = 0;
        for (size_t k = 0; k < nout; k++) {
            if (he[j * nout + k] > he[j * nout + ah])
                ah = k;
            if (ref[j * nout + k] > ref[j * nout + ar])
                ar = k;
            double d = fabs(he[j * nout + k] - ref[j * nout + k]);
            max_diff = d > max_diff ? d : max_diff;
        }
        assert_int_equal(ah, ar);
    }
    fprintf(stderr, "encrypted prediction over HTTP: %d images, max |logit - reference| %.2e\n", N_IMAGES, max_diff);
    assert_true(max_diff < LOGIT_TOL);
    assert_true(metric(F.port, "cdl_evaluations_total") >= 1);
    assert_true(metric(F.port, "cdl_evaluation_seconds_total") > 0);

    /* predict error paths on a live session */
    http(F.port, "POST", path, F.sk_bytes, F.sk_len, &r);
    expect_error(&r, 400, "this is a secret key");
    resp_free(&r);
    http(F.port, "POST", path, "garbage", 7, &r);
    expect_error(&r, 400, "not an encrypted batch");
    resp_free(&r);

    /* delete: 204, then the id is gone */
    char del[128];
    snprintf(del, sizeof del, "/v1/sessions/%s", id);
    http(F.port, "DELETE", del, NULL, 0, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    resp_free(&r);
    http(F.port, "POST", path, "garbage", 7, &r);
    expect_error(&r, 404, "unknown session");
    resp_free(&r);
    http(F.port, "DELETE", del, NULL, 0, &r);
    expect_error(&r, 404, "unknown session");
    resp_free(&r);
    assert_int_equal(cdl_serve_session_count(F.srv), 0);
    free(img);
    free(ref);
    free(he);
    cdl_dataset_free(ds);
}

/* Small server: 2 sessions of 3 s, one evaluation, no queue. */
static void test_session_and_queue_limits(void **state)
{
    (void)state;
    char s1[33], s2[33], s3[33], path[128];
    assert_int_equal(open_session(F.small_port, "small", F.rlk_bytes, F.rlk_len, s1), 201);
    assert_int_equal(open_session(F.small_port, "small", F.rlk_bytes, F.rlk_len, s2), 201);
    assert_int_equal(open_session(F.small_port, "small", F.rlk_bytes, F.rlk_len, s3), 429);
    http_resp r;
    http(F.small_port, "POST", "/v1/models/small/sessions", F.rlk_bytes, F.rlk_len, &r);
    expect_error(&r, 429, "sessions are in use");
    resp_free(&r);

    /* a predict on s1 that is still uploading holds s1 and the only evaluation place */
    int hold = connect_to(F.small_port);
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "POST /v1/sessions/%s/predict HTTP/1.1\r\nHost: localhost\r\nContent-Length: %d\r\n\r\n", s1,
                      4 << 20);
    assert_int_equal(send_all(hold, head, (size_t)hl), 0);
    static uint8_t part[1 << 20];
    assert_int_equal(send_all(hold, part, sizeof part), 0);
    for (int i = 0; i < 200 && metric(F.small_port, "cdl_predict_admitted") < 1; i++)
        sleep_ms(10);
    assert_true(metric(F.small_port, "cdl_predict_admitted") == 1);

    snprintf(path, sizeof path, "/v1/sessions/%s/predict", s1);
    http(F.small_port, "POST", path, "garbage", 7, &r);
    expect_error(&r, 409, "already evaluating");
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/sessions/%s/predict", s2);
    http(F.small_port, "POST", path, "garbage", 7, &r);
    expect_error(&r, 503, "busy");
    char retry[32];
    assert_non_null(header(&r, "Retry-After", retry, sizeof retry));
    assert_true(atoi(retry) >= 1);
    resp_free(&r);

    /* the client gives up: its place and its session are released */
    close(hold);
    for (int i = 0; i < 200 && metric(F.small_port, "cdl_predict_admitted") > 0; i++)
        sleep_ms(10);
    assert_true(metric(F.small_port, "cdl_predict_admitted") == 0);
    assert_true(metric(F.small_port, "cdl_http_requests_total{endpoint=\"predict\",status=\"none\"}") == 1);
    assert_true(metric(F.small_port, "cdl_http_requests_total{endpoint=\"predict\",status=\"503\"}") == 1);
    assert_true(metric(F.small_port, "cdl_predict_rejected_busy_total") == 1);
    http(F.small_port, "POST", path, "garbage", 7, &r);
    expect_error(&r, 400, "not an encrypted batch");
    resp_free(&r);
    snprintf(path, sizeof path, "/v1/sessions/%s/predict", s1);
    http(F.small_port, "POST", path, "garbage", 7, &r);
    expect_error(&r, 400, "not an encrypted batch");
    resp_free(&r);

    /* after the time to live both are gone, and the table has room again */
    sleep_ms(3600);
    http(F.small_port, "POST", path, "garbage", 7, &r);
    expect_error(&r, 404, "expired");
    resp_free(&r);
    assert_int_equal(cdl_serve_session_count(F.small), 0);
    assert_true(metric(F.small_port, "cdl_sessions_expired_total") == 2);
    assert_int_equal(open_session(F.small_port, "small", F.rlk_bytes, F.rlk_len, s3), 201);
    assert_true(metric(F.small_port, "cdl_sessions") == 1);
    (void)s2;
}

/* ---- slots packing ------------------------------------------------------------ */

/* A session body made of two blobs (either may be NULL). */
static int open_session2(uint16_t port, const char *model, const uint8_t *a, size_t alen, const uint8_t *b,
                         size_t blen, http_resp *r)
{
    uint8_t *body = malloc(alen + blen + 1);
    assert_non_null(body);
    if (alen)
        memcpy(body, a, alen);
    if (blen)
        memcpy(body + alen, b, blen);
    char path[256];
    snprintf(path, sizeof path, "/v1/models/%s/sessions", model);
    http(port, "POST", path, body, alen + blen, r);
    free(body);
    return r->status;
}

static void test_slots_model_info(void **state)
{
    (void)state;
    http_resp r;
    http(F.slots_port, "GET", "/v1/models", NULL, 0, &r);
    assert_int_equal(r.status, 200);
    json_t *root = json_loads((const char *)r.body, 0, NULL);
    assert_non_null(root);
    json_t *m = json_array_get(json_object_get(root, "models"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")), "slots");
    assert_string_equal(json_string_value(json_object_get(m, "packing")), "slots");
    assert_int_equal(json_integer_value(json_object_get(m, "images_per_request")),
                     cdl_he_plan_batch_capacity(F.splan));
    assert_int_equal(json_integer_value(json_object_get(m, "input_ciphertexts")),
                     cdl_he_plan_input_ciphertexts(F.splan));
    assert_int_equal(json_integer_value(json_object_get(m, "output_ciphertexts")),
                     cdl_he_plan_output_ciphertexts(F.splan));
    assert_int_equal(json_integer_value(json_object_get(m, "relin_key_bytes")), F.s_rlk_len);
    assert_int_equal(json_integer_value(json_object_get(m, "galois_key_bytes")), F.s_gk_len);
    const int *steps = NULL;
    size_t n = 0;
    cdl_he_plan_galois_steps(F.splan, &steps, &n);
    json_t *gs = json_object_get(m, "galois_steps");
    assert_int_equal(json_array_size(gs), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(json_integer_value(json_array_get(gs, i)), steps[i]);
    assert_non_null(strstr(json_string_value(json_object_get(m, "sessions")), "galois.key"));
    assert_true(json_integer_value(json_object_get(m, "max_body_bytes")) > (json_int_t)(F.s_body_len));
    json_decref(root);
    resp_free(&r);
    /* the batch model says so */
    http(F.port, "GET", "/v1/models", NULL, 0, &r);
    root = json_loads((const char *)r.body, 0, NULL);
    m = json_array_get(json_object_get(root, "models"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "packing")), "batch");
    assert_int_equal(json_integer_value(json_object_get(m, "galois_key_bytes")), 0);
    assert_int_equal(json_array_size(json_object_get(m, "galois_steps")), 0);
    json_decref(root);
    resp_free(&r);
    cdl_serve_model_info in;
    assert_int_equal(cdl_serve_model_get(F.slots, 0, &in), CDL_OK);
    assert_int_equal(in.packing, CDL_HE_PACKING_SLOTS);
    assert_int_equal(in.galois_steps, n);
    assert_int_equal(in.galois_key_bytes, F.s_gk_len);
}

static void test_slots_session_errors(void **state)
{
    (void)state;
    http_resp r;
    /* the relinearization key alone */
    open_session2(F.slots_port, "slots", F.s_rlk, F.s_rlk_len, NULL, 0, &r);
    expect_error(&r, 400, "uses slots packing: a session needs the Galois keys too");
    resp_free(&r);
    /* the Galois keys alone, or first */
    open_session2(F.slots_port, "slots", F.s_gk, F.s_gk_len, NULL, 0, &r);
    expect_error(&r, 400, "not a relinearization key");
    resp_free(&r);
    open_session2(F.slots_port, "slots", F.s_gk, F.s_gk_len, F.s_rlk, F.s_rlk_len, &r);
    expect_error(&r, 400, "not a relinearization key");
    resp_free(&r);
    /* truncated Galois keys, and garbage after the relinearization key */
    open_session2(F.slots_port, "slots", F.s_rlk, F.s_rlk_len, F.s_gk, F.s_gk_len / 3, &r);
    expect_error(&r, 400, "not Galois keys for model 'slots'");
    resp_free(&r);
    open_session2(F.slots_port, "slots", F.s_rlk, F.s_rlk_len, (const uint8_t *)"garbage", 7, &r);
    expect_error(&r, 400, "not Galois keys");
    resp_free(&r);
    /* a secret key after the relinearization key */
    open_session2(F.slots_port, "slots", F.s_rlk, F.s_rlk_len, F.sk_bytes, F.sk_len, &r);
    expect_error(&r, 400, "this is a secret key");
    resp_free(&r);
    /* Galois keys lacking rotation steps (keys for one step of the plan only) */
    const int *steps = NULL;
    size_t n = 0;
    cdl_he_plan_galois_steps(F.splan, &steps, &n);
    cdl_ckks_galois_keys *few = NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_ckks_keygen_galois(F.sctx, F.ssk, steps + 1, 1, 0, F.rng, &few), CDL_OK);
    assert_int_equal(cdl_ckks_galois_keys_save(F.sctx, few, 0, &blob, &len), CDL_OK);
    cdl_ckks_galois_keys_free(few);
    open_session2(F.slots_port, "slots", F.s_rlk, F.s_rlk_len, blob, len, &r);
    char want[96];
    snprintf(want, sizeof want, "lack rotation step %d and %zu more of the plan's %zu", steps[0], n - 2, n);
    expect_error(&r, 400, want);
    resp_free(&r);
    cdl_free_bytes(blob);
    /* Galois keys sent to the batch model */
    open_session2(F.port, "mnist_cryptonets", F.rlk_bytes, F.rlk_len, F.s_gk, 4096, &r);
    expect_error(&r, 400, "uses batch packing: send relin.key alone");
    resp_free(&r);
    /* the body limit: the session keys + 64 KiB */
    http_ex(F.slots_port, "POST", "/v1/models/slots/sessions", NULL, 0, (long long)F.s_body_len + 65537, &r);
    expect_error(&r, 413, "larger than the limit");
    resp_free(&r);
    assert_int_equal(cdl_serve_session_count(F.slots), 0);
    assert_int_equal(cdl_serve_session_count(F.srv), 0);
}

/* Encrypt n images in batches of the plan's capacity, one request each; the decrypted logits into he. */
static void predict_batches(uint16_t port, const char *id, const double *img, size_t n, double *he)
{
    const size_t cap = cdl_he_plan_batch_capacity(F.splan), per = cdl_he_plan_input_size(F.splan),
                 nout = cdl_he_plan_output_size(F.splan);
    char path[128];
    snprintf(path, sizeof path, "/v1/sessions/%s/predict", id);
    for (size_t at = 0; at < n; at += cap) {
        size_t b = n - at < cap ? n - at : cap, len = 0;
        cdl_he_batch *batch = NULL, *logits = NULL;
        uint8_t *blob = NULL;
        assert_int_equal(cdl_he_encrypt_batch(F.splan, F.sctx, NULL, F.ssk, img + at * per, b, F.rng, &batch),
                         CDL_OK);
        assert_int_equal(cdl_he_batch_count(batch), cdl_he_plan_input_ciphertexts(F.splan));
        assert_int_equal(cdl_he_batch_save(F.sctx, batch, 0, &blob, &len), CDL_OK);
        cdl_he_batch_free(batch);
        http_resp r;
        http(port, "POST", path, blob, len, &r);
        cdl_free_bytes(blob);
        if (r.status != 200)
            fprintf(stderr, "predict: %d %s\n", r.status, (const char *)r.body);
        assert_int_equal(r.status, 200);
        assert_int_equal(cdl_he_batch_load(F.sctx, r.body, r.len, &logits), CDL_OK);
        resp_free(&r);
        assert_int_equal(cdl_he_batch_images(logits), b);
        assert_int_equal(cdl_he_batch_count(logits), cdl_he_plan_output_ciphertexts(F.splan));
        assert_int_equal(cdl_he_decrypt_logits(F.splan, F.sctx, F.ssk, logits, he + at * nout), CDL_OK);
        cdl_he_batch_free(logits);
    }
}

static void test_slots_prediction(void **state)
{
    (void)state;
    char id[33];
    http_resp r;
    assert_int_equal(open_session2(F.slots_port, "slots", F.s_rlk, F.s_rlk_len, F.s_gk, F.s_gk_len, &r), 201);
    json_t *o = json_loads((const char *)r.body, 0, NULL);
    assert_non_null(o);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(o, "session")));
    json_decref(o);
    resp_free(&r);
    assert_int_equal(cdl_serve_session_count(F.slots), 1);

    char data_dir[4096];
    snprintf(data_dir, sizeof data_dir, "%s/data", source_dir());
    cdl_dataset *ds = NULL;
    assert_int_equal(cdl_dataset_load("mnist", data_dir, "test", N_IMAGES, &ds), CDL_OK);
    const size_t per = cdl_dataset_image_size(ds), nout = cdl_he_plan_output_size(F.splan);
    double *img = malloc(N_IMAGES * per * sizeof *img), *ref = malloc(N_IMAGES * nout * sizeof *ref),
           *he = malloc(N_IMAGES * nout * sizeof *he);
    assert_true(img && ref && he);
    for (size_t i = 0; i < N_IMAGES * per; i++)
        img[i] = ds->pixels[i];
    assert_true(cdl_he_plan_batch_capacity(F.splan) < N_IMAGES); /* several requests */
    predict_batches(F.slots_port, id, img, N_IMAGES, he);
    assert_int_equal(cdl_nn_run(F.graph, img, N_IMAGES, ref), CDL_OK);
    double max_diff = 0;
    for (size_t j = 0; j < N_IMAGES; j++) {
        size_t ah = 0, ar = 0;
        for (size_t k = 0; k < nout; k++) {
            if (he[j * nout + k] > he[j * nout + ah])
                ah = k;
            if (ref[j * nout + k] > ref[j * nout + ar])
                ar = k;
            max_diff = fmax(max_diff, fabs(he[j * nout + k] - ref[j * nout + k]));
        }
        assert_int_equal(ah, ar);
    }
    fprintf(stderr, "slots prediction over HTTP: %d images, max |logit - reference| %.2e\n", N_IMAGES, max_diff);
    assert_true(max_diff < LOGIT_TOL);

    /* batches of the other packing, several batches in one body */
    char path[128];
    snprintf(path, sizeof path, "/v1/sessions/%s/predict", id);
    /* a body far above one slots batch (a few MB) but under the server's global limit: the per-model cap answers */
    http_ex(F.slots_port, "POST", path, NULL, 0, 32LL << 20, &r);
    expect_error(&r, 413, "slots packing");
    resp_free(&r);
    uint8_t parts[CDL_PARTS_HEADER_BYTES + 16];
    cdl_parts_header(parts, 1);
    cdl_parts_length(parts + CDL_PARTS_HEADER_BYTES, 8);
    memset(parts + CDL_PARTS_HEADER_BYTES + 8, 0, 8);
    http(F.slots_port, "POST", path, parts, sizeof parts, &r);
    expect_error(&r, 400, "send one batch per request");
    resp_free(&r);
    /* a slots batch at the batch model: refused naming its packing */
    char bid[33];
    assert_int_equal(open_session(F.port, "mnist_cryptonets", F.rlk_bytes, F.rlk_len, bid), 201);
    cdl_he_batch *batch = NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_he_encrypt_batch(F.splan, F.sctx, NULL, F.ssk, img, 1, F.rng, &batch), CDL_OK);
    assert_int_equal(cdl_he_batch_save(F.sctx, batch, 0, &blob, &len), CDL_OK);
    cdl_he_batch_free(batch);
    char bpath[128];
    snprintf(bpath, sizeof bpath, "/v1/sessions/%s/predict", bid);
    http(F.port, "POST", bpath, blob, len, &r);
    cdl_free_bytes(blob);
    const int same_params = !memcmp(cdl_ckks_param_hash(F.sctx), cdl_ckks_param_hash(F.ctx), 32);
    expect_error(&r, 400, same_params ? "in batch packing" : "other CKKS parameters");
    resp_free(&r);
    char del[128];
    snprintf(del, sizeof del, "/v1/sessions/%s", bid);
    http(F.port, "DELETE", del, NULL, 0, &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    snprintf(del, sizeof del, "/v1/sessions/%s", id);
    http(F.slots_port, "DELETE", del, NULL, 0, &r);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    assert_int_equal(cdl_serve_session_count(F.slots), 0);
    free(img);
    free(ref);
    free(he);
    cdl_dataset_free(ds);
}

static void test_start_errors(void **state)
{
    (void)state;
    cdl_serve_model_spec spec = {.path = F.model_path};
    cdl_he_options_default(&spec.he);
    cdl_serve_config cfg;
    cdl_serve_config_default(&cfg);
    cdl_serve *s = NULL;
    /* no model */
    assert_int_not_equal(cdl_serve_start(&cfg, &s), CDL_OK);
    assert_null(s);
    cfg.models = &spec;
    cfg.n_models = 1;
    /* the port is taken */
    cfg.port = F.port;
    assert_int_equal(cdl_serve_start(&cfg, &s), CDL_ERR_IO);
    assert_null(s);
    assert_non_null(strstr(cdl_last_error(), "cannot listen"));
    cfg.port = 0;
    /* a bind address that does not resolve */
    cfg.host = "no-such-host.invalid";
    assert_int_not_equal(cdl_serve_start(&cfg, &s), CDL_OK);
    assert_null(s);
    cfg.host = "127.0.0.1";
    /* a missing model file, a bad name, two models under one name */
    cdl_serve_model_spec bad = {.path = "/nonexistent/model.onnx"};
    cdl_he_options_default(&bad.he);
    cfg.models = &bad;
    assert_int_not_equal(cdl_serve_start(&cfg, &s), CDL_OK);
    assert_non_null(strstr(cdl_last_error(), "/nonexistent/model.onnx"));
    bad = spec;
    bad.name = "a/b";
    assert_int_equal(cdl_serve_start(&cfg, &s), CDL_ERR_INVALID_ARGUMENT);
    cdl_serve_model_spec two[2] = {spec, spec};
    cfg.models = two;
    cfg.n_models = 2;
    assert_int_equal(cdl_serve_start(&cfg, &s), CDL_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(cdl_last_error(), "two models are named"));
    /* zero limits */
    cfg.n_models = 1;
    cfg.max_sessions = 0;
    assert_int_equal(cdl_serve_start(&cfg, &s), CDL_ERR_INVALID_ARGUMENT);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_models_metrics),
        cmocka_unit_test(test_routes_and_methods),
        cmocka_unit_test(test_session_key_errors),
        cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_encrypted_prediction),
        cmocka_unit_test(test_session_and_queue_limits),
        cmocka_unit_test(test_slots_model_info),
        cmocka_unit_test(test_slots_session_errors),
        cmocka_unit_test(test_slots_prediction),
        cmocka_unit_test(test_start_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
