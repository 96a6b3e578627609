/*
 * fuzz_serve.c: libFuzzer target for the HTTP service's request handling
 * (src/serve: routing, session ids, Content-Length and chunked bodies, the
 * limits, secret-key refusal, the key and batch loaders behind them, and the
 * split of a slots model's session body into its relinearization and Galois
 * keys). One server runs for the whole fuzzing session, serving
 * models/mnist_cryptonets.onnx (from $CDL_SOURCE_DIR or the current folder)
 * twice: as "m" in batch packing with one live session, and as "s" in slots
 * packing (POST /v1/models/s/sessions reaches the split; seed
 * corpus/serve/session_slots); each input is sent as-is as the raw bytes of an
 * HTTP request, with every "SESSIONID" replaced by that session's id so that
 * the fuzzer reaches the predict and delete paths. The server must answer
 * with a status it documents (or close the connection on malformed HTTP),
 * and never crash.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cryptodl/cryptodl.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cdl_serve *server;
static uint16_t port;
static char session[33];

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Send, half-close, read the answer (its first bytes into head); the status code, 0 if none. */
static int exchange(const uint8_t *req, size_t len, char *head, size_t cap)
{
    int fd = connect_server();
    if (fd < 0)
        abort();
    size_t at = 0;
    while (at < len) {
        ssize_t w = send(fd, req + at, len - at, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close before reading everything */
        at += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t got = 0;
    char sink[4096];
    for (;;) {
        ssize_t r = recv(fd, sink, sizeof sink, 0);
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r && got < cap - 1; i++)
            head[got++] = sink[i];
    }
    head[got] = '\0';
    close(fd);
    const char *final = head; /* after an interim "100 Continue", the final answer */
    while (!strncmp(final, "HTTP/1.1 100", 12) && strstr(final, "\r\n\r\n"))
        final = strstr(final, "\r\n\r\n") + 4;
    int status = 0;
    if (sscanf(final, "HTTP/1.%*c %d", &status) != 1)
        status = 0;
    return status;
}

static uint8_t *key;
static size_t key_len;

/* Open the session the inputs refer to as SESSIONID. */
static void open_session(void)
{
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "POST /v1/models/m/sessions HTTP/1.1\r\nHost: f\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n",
                      key_len);
    uint8_t *req = malloc((size_t)hl + key_len);
    if (!req)
        abort();
    memcpy(req, head, (size_t)hl);
    memcpy(req + hl, key, key_len);
    char resp[4096];
    int status = exchange(req, (size_t)hl + key_len, resp, sizeof resp);
    free(req);
    const char *s = strstr(resp, "\"session\":\"");
    if (status != 201 || !s) {
        fprintf(stderr, "fuzz_serve: cannot open a session: %s\n", resp);
        abort();
    }
    memcpy(session, s + 11, 32);
    session[32] = '\0';
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *src = getenv("CDL_SOURCE_DIR");
    static char path[4096];
    snprintf(path, sizeof path, "%s/models/mnist_cryptonets.onnx", src && src[0] ? src : ".");
    cdl_serve_model_spec specs[2] = {{.name = "m", .path = path}, {.name = "s", .path = path}}, spec;
    cdl_he_options_default(&specs[0].he);
    cdl_he_options_default(&specs[1].he);
    specs[1].he.packing = CDL_HE_PACKING_SLOTS;
    spec = specs[0];
    cdl_serve_config cfg;
    cdl_serve_config_default(&cfg);
    cfg.port = 0;
    cfg.models = specs;
    cfg.n_models = 2;
    cfg.max_sessions = 4;
    cdl_nn_graph *g = NULL;
    cdl_he_plan *plan = NULL;
    cdl_ckks_context *ctx = NULL;
    cdl_rng *rng = NULL;
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    if (cdl_serve_start(&cfg, &server) != CDL_OK || cdl_nn_load_file(path, &g) != CDL_OK ||
        cdl_he_plan_new(g, &spec.he, &plan) != CDL_OK || cdl_he_context_new(plan, &ctx) != CDL_OK ||
        cdl_rng_new_system(&rng) != CDL_OK || cdl_ckks_keygen_secret(ctx, rng, &sk) != CDL_OK ||
        cdl_ckks_keygen_relin(ctx, sk, rng, &rlk) != CDL_OK ||
        cdl_ckks_relin_key_save(ctx, rlk, 0, &key, &key_len) != CDL_OK) {
        fprintf(stderr, "fuzz_serve: setup failed (run from the repository root or set CDL_SOURCE_DIR): %s\n",
                cdl_last_error());
        abort();
    }
    port = cdl_serve_port(server);
    open_session(); /* key stays: a fuzzed DELETE may close the session, which is then reopened */
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);
    cdl_he_plan_free(plan);
    cdl_nn_graph_free(g);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    /* SESSIONID (9 bytes) -> the 32-digit id: at most 4x longer */
    uint8_t *req = malloc(size * 4 + 1);
    if (!req)
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < size;) {
        if (size - i >= 9 && !memcmp(data + i, "SESSIONID", 9)) {
            memcpy(req + n, session, 32);
            n += 32;
            i += 9;
        } else {
            req[n++] = data[i++];
        }
    }
    char resp[8192];
    int status = exchange(req, n, resp, sizeof resp);
    free(req);
    if (status == 204) /* a DELETE reached the session */
        open_session();
    /* microhttpd answers malformed HTTP itself (or closes); what the service answers is JSON or one of its
     * documented bodies, with one of these statuses */
    static const int ours[] = {200, 201, 204, 400, 404, 405, 409, 413, 429, 500, 503};
    int ok = strstr(resp, "\r\nContent-Type: application/json") == NULL;
    for (size_t k = 0; k < sizeof ours / sizeof ours[0]; k++)
        ok |= status == ours[k];
    if (!ok) {
        fprintf(stderr, "fuzz_serve: unexpected status %d\n", status);
        abort();
    }
    return 0;
}
