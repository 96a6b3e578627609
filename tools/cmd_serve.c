/*
 * cmd_serve.c: `cryptodl serve MODEL.onnx [MODEL2.onnx ...]`: the server
 * side of encrypted inference as an HTTP service (include/cryptodl/serve.h,
 * docs/serve.md). It prints the URL and what each model expects, logs one
 * line per request to stderr, and stops cleanly on SIGINT / SIGTERM.
 *
 * The signals are blocked before the server starts, so that every thread it
 * creates inherits the mask and the main thread alone takes them in sigwait().
 *
 * With --sessions redis://HOST:PORT several of these processes share their
 * sessions behind a load balancer (deploy/README.md, docs/serve.md).
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cryptodl/cryptodl.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl serve MODEL.onnx [MODEL2.onnx ...] [options]\n\n"
            "Serve encrypted inference over HTTP. A client keys and encrypts with `cryptodl keygen`\n"
            "and `cryptodl encrypt` (or `predict MODEL --keygen/--encrypt`) with the same model and\n"
            "--log-n/--scale-bits/--output-bits/--packing, uploads its evaluation keys to open a\n"
            "session, posts encrypted batches (one per request) and decrypts the returned logits\n"
            "(`cryptodl decrypt`). The server never holds a secret key.\n\n"
            "  GET    /v1/health | /v1/metrics | /v1/models\n"
            "  POST   /v1/models/NAME/sessions   body: relin.key (batch packing), or relin.key followed\n"
            "                                    by galois.key (slots packing: cat relin.key galois.key)\n"
            "                                    -> {\"session\": ID, ...}\n"
            "  POST   /v1/sessions/ID/predict    body: one encrypted batch -> encrypted logits\n"
            "  DELETE /v1/sessions/ID\n\n"
            "options:\n"
            "  --name NAME          URL name of the next model (repeat per model; default: the file\n"
            "                       name without .onnx)\n"
            "  --host H             bind address (default 127.0.0.1; 0.0.0.0 or :: for every interface)\n"
            "  --port P             TCP port (default 8080; 0 = any free port, printed)\n"
            "  --max-sessions N     live sessions, each holding its client's evaluation keys (default 16;\n"
            "                       in slots packing the Galois keys take hundreds of MB per session)\n"
            "  --session-ttl S      seconds a session lives after its last use (default 3600)\n"
            "  --max-body MB        largest request body in MB (default: a public-key-encrypted batch or\n"
            "                       the session keys of the largest model, plus 1 MiB)\n"
            "  --max-evaluations N  evaluations running at once (default 1)\n"
            "  --max-queued N       further predict requests that wait for a slot (default 1); beyond:\n"
            "                       503 with Retry-After\n"
            "  --threads T          threads per evaluation (default: all cores)\n"
            "  --sessions WHERE     memory (default): sessions live in this process and end with it;\n"
            "                       redis://HOST:PORT[/DB]: sessions live in Redis, shared by every replica\n"
            "                       given the same address (behind a load balancer: deploy/README.md), kept\n"
            "                       --session-ttl s after their last use and lost by no replica's exit; the\n"
            "                       replicas must serve the same models with the same options. Password, if\n"
            "                       any: environment variable CDL_REDIS_PASSWORD. --max-sessions does not\n"
            "                       apply (Redis's maxmemory does: 429 when full)%s\n"
            "  --key-cache-mb MB    with redis://: session keys this replica keeps loaded between requests,\n"
            "                       least recently used evicted first (default 1024; a 5.5 MB relin.key in\n"
            "                       batch packing, 330 MB with slots packing's Galois keys; 0: keep none)\n"
            "  --log-n L            as `predict`: force the ring degree 2^L\n"
            "  --scale-bits B       as `predict`: force the scale 2^B\n"
            "  --output-bits B      as `predict`: room for the logits in the last prime (default 10)\n"
            "  --approx SPEC        as `predict`: replace ReLU/Sigmoid/Tanh by polynomials first\n"
            "  --packing P          batch (default), slots or auto, as `predict`; auto is decided here\n"
            "                       (GET /v1/models reports the outcome; the client must use the same)\n"
            "  --stream-weights     slots: encode the weights at every request instead of keeping them\n"
            "  --max-galois-keys K  slots, as `predict`: at most K rotation keys (the client's keygen must\n"
            "  --max-galois-mb M    use the same budget: the keys are chosen from it)\n"
            "  --web DIR            also serve the files of DIR at / (read-only, GET/HEAD; paths outside DIR,\n"
            "                       hidden or with '..' are 404): the browser client, scripts/build-wasm.sh's\n"
            "                       build-wasm/web (docs/browser.md)\n"
            "  -q, --quiet          no request log\n"
            "  -h, --help           this help\n\n"
            "exit status: 0 stopped by SIGINT/SIGTERM, 1 failure (message on stderr), 2 bad usage\n",
            cdl_serve_have_redis() ? "" : "\n                       (NOT in this build: it has no libhiredis)");
}

static void log_request(void *user, const char *method, const char *path, int status, uint64_t bytes_in,
                        uint64_t bytes_out, double ms)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (status)
        fprintf(stderr, "%s %s %s %d in=%llu out=%llu %.1f ms\n", when, method, path, status,
                (unsigned long long)bytes_in, (unsigned long long)bytes_out, ms);
    else
        fprintf(stderr, "%s %s %s - in=%llu (closed before an answer) %.1f ms\n", when, method, path,
                (unsigned long long)bytes_in, ms);
}

static int parse_bits(const char *opt, const char *text, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*end || end == text || v < lo || v > hi)
        return cli_usage_error("serve", "%s must be %d..%d, got '%s'", opt, lo, hi, text);
    *out = (int)v;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"name", required_argument, 0, 'N'},
                                         {"host", required_argument, 0, 'H'},
                                         {"port", required_argument, 0, 'p'},
                                         {"max-sessions", required_argument, 0, 's'},
                                         {"session-ttl", required_argument, 0, 'T'},
                                         {"max-body", required_argument, 0, 'b'},
                                         {"max-evaluations", required_argument, 0, 'e'},
                                         {"max-queued", required_argument, 0, 'Q'},
                                         {"threads", required_argument, 0, 't'},
                                         {"log-n", required_argument, 0, 'L'},
                                         {"scale-bits", required_argument, 0, 'S'},
                                         {"output-bits", required_argument, 0, 'B'},
                                         {"approx", required_argument, 0, 'A'},
                                         {"packing", required_argument, 0, 'M'},
                                         {"stream-weights", no_argument, 0, 'W'},
                                         {"max-galois-keys", required_argument, 0, 'G'},
                                         {"max-galois-mb", required_argument, 0, 'Y'},
                                         {"sessions", required_argument, 0, 'R'},
                                         {"key-cache-mb", required_argument, 0, 'K'},
                                         {"web", required_argument, 0, 'w'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    cdl_serve_config cfg;
    cdl_serve_config_default(&cfg);
    cfg.port = 8080;
    cdl_he_options hopt;
    cdl_he_options_default(&hopt);
    hopt.cache_weights = 1; /* slots: the weights are encoded once for all requests */
    const char *names[CDL_SERVE_MAX_MODELS] = {0}, *approx = NULL;
    size_t n_names = 0;
    int quiet = 0, cache_given = 0, c;
    long long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
        switch (c) {
        case 'N':
            if (n_names == CDL_SERVE_MAX_MODELS)
                return cli_usage_error("serve", "at most %d --name", CDL_SERVE_MAX_MODELS);
            names[n_names++] = optarg;
            break;
        case 'H': cfg.host = optarg; break;
        case 'p': {
            char *end;
            long p = strtol(optarg, &end, 10);
            if (*end || end == optarg || p < 0 || p > 65535)
                return cli_usage_error("serve", "--port must be 0..65535, got '%s'", optarg);
            cfg.port = (uint16_t)p;
            break;
        }
        case 's':
            if (cli_parse_positive("serve", "--max-sessions", optarg, &v) != 0)
                return CLI_EXIT_USAGE;
            cfg.max_sessions = (size_t)v;
            break;
        case 'T':
            if (cli_parse_positive("serve", "--session-ttl", optarg, &v) != 0 || v > 30LL * 86400)
                return v > 30LL * 86400 ? cli_usage_error("serve", "--session-ttl is at most 30 days") : CLI_EXIT_USAGE;
            cfg.session_ttl = (unsigned)v;
            break;
        case 'b':
            if (cli_parse_positive("serve", "--max-body", optarg, &v) != 0 || v > (1LL << 20))
                return v > (1LL << 20) ? cli_usage_error("serve", "--max-body is at most 1048576 MB") : CLI_EXIT_USAGE;
            cfg.max_body_bytes = (uint64_t)v << 20;
            break;
        case 'e':
            if (cli_parse_positive("serve", "--max-evaluations", optarg, &v) != 0 || v > 1024)
                return v > 1024 ? cli_usage_error("serve", "--max-evaluations is at most 1024") : CLI_EXIT_USAGE;
            cfg.max_evaluations = (unsigned)v;
            break;
        case 'Q': {
            char *end;
            long q = strtol(optarg, &end, 10);
            if (*end || end == optarg || q < 0 || q > 1024)
                return cli_usage_error("serve", "--max-queued must be 0..1024, got '%s'", optarg);
            cfg.max_queued = (unsigned)q;
            break;
        }
        case 't':
            if (cli_parse_threads("serve", optarg, &cfg.eval_threads) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'L':
            if (parse_bits("--log-n", optarg, 13, 16, &hopt.log_n) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'S':
            if (parse_bits("--scale-bits", optarg, 20, 50, &hopt.scale_bits) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'B':
            if (parse_bits("--output-bits", optarg, 2, 30, &hopt.output_bits) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'A': approx = optarg; break;
        case 'M':
            if (cli_parse_packing("serve", optarg, &hopt.packing) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'W': hopt.cache_weights = 0; break;
        case 'G':
            if (cli_parse_positive("serve", "--max-galois-keys", optarg, &v) != 0)
                return CLI_EXIT_USAGE;
            hopt.max_galois_keys = v > 100000 ? 100000 : (int)v;
            break;
        case 'Y':
            if (cli_parse_positive("serve", "--max-galois-mb", optarg, &v) != 0)
                return CLI_EXIT_USAGE;
            hopt.max_galois_bytes = (uint64_t)(v > 100000000 ? 100000000 : v) * 1000000u;
            break;
        case 'R':
            if (strcmp(optarg, "memory") && strncmp(optarg, "redis://", 8))
                return cli_usage_error("serve", "--sessions must be memory or redis://HOST:PORT, got '%s'", optarg);
            cfg.sessions = strcmp(optarg, "memory") ? optarg : NULL;
            break;
        case 'K': {
            char *end;
            long long mb = strtoll(optarg, &end, 10);
            if (*end || end == optarg || mb < 0 || mb > (1LL << 24))
                return cli_usage_error("serve", "--key-cache-mb must be 0..16777216, got '%s'", optarg);
            cfg.key_cache_bytes = mb ? (uint64_t)mb << 20 : 1; /* 1 byte: below any key, none kept */
            cache_given = 1;
            break;
        }
        case 'w': cfg.web_dir = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("serve", "unknown option");
        }
    }
    if (cache_given && !cfg.sessions)
        return cli_usage_error("serve", "--key-cache-mb is for --sessions redis://HOST:PORT (memory sessions keep "
                                        "every key: --max-sessions bounds them)");
    size_t n_models = (size_t)(argc - optind);
    if (n_models == 0)
        return cli_usage_error("serve", "give at least one MODEL.onnx (e.g. models/mnist_cryptonets.onnx)");
    if (n_models > CDL_SERVE_MAX_MODELS)
        return cli_usage_error("serve", "at most %d models", CDL_SERVE_MAX_MODELS);
    if (n_names > n_models)
        return cli_usage_error("serve", "%zu --name for %zu models", n_names, n_models);
    cdl_serve_model_spec specs[CDL_SERVE_MAX_MODELS];
    for (size_t i = 0; i < n_models; i++)
        specs[i] = (cdl_serve_model_spec){.name = names[i], .path = argv[optind + (int)i], .approx = approx,
                                          .he = hopt};
    cfg.models = specs;
    cfg.n_models = n_models;
    if (!quiet)
        cfg.log = log_request;

    /* Every thread the server starts inherits this mask: only sigwait() below sees the signals. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    cdl_serve *srv = NULL;
    if (cdl_serve_start(&cfg, &srv) != CDL_OK)
        return cli_fail_status("serve", "cannot start the server");
    const char *host = cfg.host;
    int v6 = strchr(host, ':') != NULL;
    printf("cryptodl serve: listening on http://%s%s%s:%u\n", v6 ? "[" : "", host, v6 ? "]" : "",
           (unsigned)cdl_serve_port(srv));
    if (cfg.web_dir)
        printf("  web: the files of %s at http://%s%s%s:%u/ (read-only)\n", cfg.web_dir, v6 ? "[" : "", host,
               v6 ? "]" : "", (unsigned)cdl_serve_port(srv));
    for (size_t i = 0; i < cdl_serve_model_count(srv); i++) {
        cdl_serve_model_info in;
        if (cdl_serve_model_get(srv, i, &in) != CDL_OK)
            continue;
        printf("  model %s: %s, input %s (%zu values), %zu logits\n", in.name, in.path, in.input_shape,
               in.input_size, in.output_size);
        printf("    %s packing: %zu images per request (%zu ciphertexts in, %zu out)\n",
               in.packing == CDL_HE_PACKING_SLOTS ? "slots" : "batch", in.batch_capacity, in.input_ciphertexts,
               in.output_ciphertexts);
        printf("    CKKS N = 2^%d, log QP = %d, %d levels, scale 2^%d\n", in.log_n, in.log_qp, in.levels,
               in.scale_bits);
        printf("    parameter hash %s\n", in.param_hash);
        printf("    relin.key %.1f MB, encrypted batch %.1f MB (secret-key encryption)\n", in.relin_key_bytes / 1e6,
               in.batch_bytes / 1e6);
        if (in.galois_steps)
            printf("    galois.key %.1f MB (%zu rotation steps): a session is relin.key followed by galois.key\n",
                   in.galois_key_bytes / 1e6, in.galois_steps);
    }
    if (cfg.sessions) {
        uint64_t cache = cfg.key_cache_bytes ? cfg.key_cache_bytes : (uint64_t)1 << 30;
        printf("  sessions: in Redis at %s (ttl %u s after the last use); keys cached here: %.0f MB\n", cfg.sessions,
               cfg.session_ttl, cache > 1 ? cache / 1048576.0 : 0.0);
        printf("  limits: body %.1f MB, %u evaluation(s) + %u queued, %s threads each\n", cdl_serve_max_body(srv) / 1e6,
               cfg.max_evaluations, cfg.max_queued, cfg.eval_threads ? "the given" : "all cores'");
    } else {
        printf("  limits: body %.1f MB, %zu sessions (ttl %u s), %u evaluation(s) + %u queued, %s threads each\n",
               cdl_serve_max_body(srv) / 1e6, cfg.max_sessions, cfg.session_ttl, cfg.max_evaluations,
               cfg.max_queued, cfg.eval_threads ? "the given" : "all cores'");
    }
    printf("Stop with Ctrl-C (SIGINT) or SIGTERM.\n");
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "cryptodl serve: %s: stopping (finishing requests in progress)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    cdl_serve_stop(srv);
    size_t live = cdl_serve_session_count(srv);
    cdl_serve_free(srv);
    if (cfg.sessions)
        fprintf(stderr, "cryptodl serve: stopped; freed %zu cached session key set(s); the sessions stay in Redis\n",
                live);
    else
        fprintf(stderr, "cryptodl serve: stopped; freed %zu session(s) (evaluation keys only: the server holds no "
                        "secret)\n", live);
    return CLI_EXIT_OK;
}
