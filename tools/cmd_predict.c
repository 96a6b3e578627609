/*
 * cmd_predict.c: `cryptodl predict MODEL.onnx`: encrypted inference end to
 * end in one process, as a demo and a measurement. It plays both roles:
 * the client (keygen, encrypt a batch of test images, decrypt the logits)
 * and the server (evaluate the compiled plan on the ciphertexts with the
 * relinearization key only), then compares the decrypted logits with the
 * plaintext float64 reference (cdl_nn_run) and with the labels.
 *
 * The same steps one at a time, with files, for a real client and server
 * (the code they share with the compile/keygen/encrypt/evaluate/decrypt
 * commands is in he_steps.c):
 *   --keygen   (client) DIR/secret.key (mode 0600), DIR/relin.key, DIR/public.key,
 *              and DIR/galois.key in slots packing
 *   --encrypt  (client) the first --limit test images -> --out FILE
 *   --evaluate (server) --in FILE -> --out FILE with DIR/relin.key (and
 *              DIR/galois.key) only
 *   --decrypt  (client) --in FILE -> predictions, checked as above
 * Both sides compile the same model with the same options, so they build
 * the same CKKS parameters; every file carries the parameter hash and is
 * refused under other parameters. The plan, the keys and every step are the
 * library's client layer (include/cryptodl/client.h); this file adds the
 * test set, the comparisons, the results file and the display.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cryptodl/cryptodl.h"
#include "he_steps.h"
#include "results_file.h"

/* Ctrl-C (or SIGTERM) during the one-process run: the first stops the run
 * after the batch being evaluated (its results are kept), the second stops
 * the process at once (the results file holds only complete lines). */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    static const char msg[] = "\ncryptodl predict: stopping after the current batch (its results are kept); "
                              "press Ctrl-C again to stop now\n";
    if (stop_requested) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    stop_requested = 1;
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

#define PREDICT_DEFAULT_LIMIT 4096

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl predict MODEL.onnx [options]\n\n"
            "Encrypted inference (CKKS, batch-SIMD: one image per slot) on test images, in one\n"
            "process: keygen, encrypt, evaluate without the secret key, decrypt; then compare\n"
            "with the plaintext reference and the labels.\n\n"
            "options:\n"
            "  --dataset NAME    mnist (default), fashion-mnist or cifar-10\n"
            "  --data-dir DIR    folder holding NAME/ (default: $CDL_DATA_DIR, ../shared/data, and\n"
            "                    for MNIST the test set shipped in data/)\n"
            "  --limit N         images to run (default %d = one batch at N=2^13); more images\n"
            "                    are run in batches of N/2\n"
            "  --results FILE    append one JSON line per image to FILE as each batch finishes; run again\n"
            "                    with the same FILE to resume an interrupted run where it stopped (the\n"
            "                    summary covers every image in FILE). Ctrl-C stops after the current batch\n"
            "  --threads T       worker threads (default: all cores)\n"
            "  --log-n L         force the ring degree 2^L (default: the smallest that fits)\n"
            "  --scale-bits B    force the scale 2^B (default: as large as the security budget allows)\n"
            "  --output-bits B   room for the logits in the last prime: |logit| < 2^(B-1) (default 10)\n"
            "  --approx SPEC     replace ReLU/Sigmoid/Tanh/LeakyRelu by polynomials first, e.g. relu=remez:4:-6:6\n"
            "  --packing P       batch (one image per slot, default), slots (one image across the slots,\n"
            "                    rotations; a few images share a ciphertext when they fit) or auto (slots\n"
            "                    unless batch fits this machine's memory and --limit fills batches)\n"
            "  --stream-weights  slots: encode the weights at every request instead of once (less memory)\n"
            "  --max-galois-keys K  slots: at most K rotation keys (the +-2^k basis and the most used steps;\n"
            "                    other steps are composed: fewer key bytes, more rotations)\n"
            "  --max-galois-mb M slots: at most M MB of rotation keys, chosen the same way (e.g. 4000)\n"
            "  --public-key      encrypt with the public key (default: the secret key, symmetric)\n"
            "  --plan            print the HE plan (layers, levels, parameters, cost, memory) and stop\n"
            "  --force           run even if the plan's ciphertext memory exceeds 90%% of this machine's RAM\n"
            "  --json            one JSON object on stdout instead of the text summary\n"
            "  --quiet           nothing on stderr but warnings and errors (no plan, no progress: otherwise bars\n"
            "                    with the time left on a terminal, plain lines when stderr is not one)\n"
            HE_FLOOD_HELP
            "                    (here, with the one-process run or --decrypt, to see its effect on accuracy)\n"
            "  -h, --help        this help\n\n"
            "client / server steps with files (same MODEL and --log-n/--scale-bits/--output-bits/--packing on both\n"
            "sides; the commands compile, keygen, encrypt, evaluate and decrypt do the same with your own images):\n"
            "  --keygen   --keys DIR                    client: DIR/secret.key, relin.key, public.key (and\n"
            "                                           galois.key with --packing slots)\n"
            "  --encrypt  --keys DIR --out FILE         client: encrypt the first --limit images (more than one\n"
            "                                           batch holds go in one file as several batches; with\n"
            "                                           --public-key only DIR/public.key is read)\n"
            "  --evaluate --keys DIR --in FILE --out F  server: needs only DIR/relin.key (and DIR/galois.key\n"
            "                                           with --packing slots)\n"
            "  --decrypt  --keys DIR --in FILE          client: predictions, compared with the labels and\n"
            "                                           the plaintext reference on the same images\n"
            "(with --packing auto, give every step the same --limit: it decides the packing)\n\n"
            "exit status: 0 done, 1 failure (message on stderr), 2 bad usage, 130 stopped by Ctrl-C\n",
            PREDICT_DEFAULT_LIMIT);
}

/* ---- client / server steps with files (tools/he_steps.c) ------------------ */

typedef struct step_args {
    int step;
    const char *keys, *in, *out, *dataset, *data_dir;
    int defaulted;
    size_t limit;
    int json, use_pk;
    const cdl_ckks_flood_options *flood; /* NULL: no --flood */
} step_args;

static int run_step(const cdl_client_plan *cp, const step_args *a)
{
    int rc = CLI_EXIT_FAILURE;
    const cdl_nn_graph *g = cdl_client_plan_graph(cp);
    const cdl_he_plan *plan = cdl_client_plan_he(cp);
    const cdl_ckks_context *ctx = cdl_client_plan_context(cp);
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL;
    cdl_ckks_public_key *pk = NULL;
    cdl_dataset *ds = NULL;
    double *img = NULL, *he = NULL, *ref = NULL;
    char path[4096];
    if (!a->keys)
        return cli_usage_error("predict", "this step needs --keys DIR (the folder of secret.key / relin.key)");
    if ((a->step == 'E' || a->step == 'V') && !a->out)
        return cli_usage_error("predict", "this step needs --out FILE");
    if ((a->step == 'V' || a->step == 'X') && !a->in)
        return cli_usage_error("predict", "this step needs --in FILE");
    if (a->step == 'K') {
        he_keygen_result kr;
        if ((rc = he_keygen("predict", plan, ctx, a->keys, &kr)) != CLI_EXIT_OK)
            goto done;
        printf("keys in %s: secret.key (%zu bytes, keep it), relin.key (%.1f MB, give it to the server), "
               "public.key (%.1f MB, for --encrypt --public-key)",
               a->keys, kr.secret_bytes, kr.relin_bytes / 1e6, kr.public_bytes / 1e6);
        if (kr.galois_steps)
            printf(", galois.key (%.1f MB, %zu rotation steps: give it to the server with relin.key)",
                   kr.galois_bytes / 1e6, kr.galois_steps);
        printf("; %.2f s\n", kr.seconds);
        goto done;
    }
    if (a->step == 'V') { /* server: no secret key is read */
        he_file_stats st;
        if (he_load_key("predict", ctx, he_key_path(path, sizeof path, a->keys, "relin.key"), HE_KEY_RELIN,
                        (void **)&rlk) != 0 ||
            he_load_galois("predict", plan, ctx, he_key_path(path, sizeof path, a->keys, "galois.key"), &gk) != 0)
            goto done;
        if ((rc = he_evaluate_file("predict", plan, ctx, rlk, gk, a->in, a->out, &st)) != CLI_EXIT_OK)
            goto done;
        printf("evaluated %zu encrypted images in %.2f s (%.0f predictions/hour); encrypted logits in %s (%.1f MB)\n",
               st.images, st.seconds, st.seconds > 0 ? 3600.0 * st.images / st.seconds : 0.0, a->out,
               st.bytes / 1e6);
        goto done;
    }
    /* client steps: the secret key (or, to encrypt only, the public key) and the test images */
    if (a->step == 'E' && a->use_pk) {
        if (he_load_key("predict", ctx, he_key_path(path, sizeof path, a->keys, "public.key"), HE_KEY_PUBLIC,
                        (void **)&pk) != 0)
            goto done;
    } else if (he_load_key("predict", ctx, he_key_path(path, sizeof path, a->keys, "secret.key"), HE_KEY_SECRET,
                           (void **)&sk) != 0)
        goto done;
    size_t n = a->limit;
    cdl_ckks_flood_info finfo;
    if (a->step == 'X' && he_decrypt_file("predict", plan, ctx, sk, a->in, a->flood, &finfo, &he, &n) != CLI_EXIT_OK)
        goto done;
    if (a->step == 'X' && a->flood)
        he_flood_report("predict", plan, a->flood, &finfo, he, n * cdl_he_plan_output_size(plan), 0);
    if (cdl_dataset_load(a->dataset, a->data_dir, "test", n, &ds) != CDL_OK &&
        !(a->defaulted && a->data_dir && cdl_dataset_load(a->dataset, NULL, "test", n, &ds) == CDL_OK)) {
        rc = cli_fail_status("predict", "cannot load the test set (give --data-dir DIR holding mnist/)");
        goto done;
    }
    const size_t per = cdl_dataset_image_size(ds), nout = cdl_he_plan_output_size(plan);
    if (per != cdl_he_plan_input_size(plan) || ds->n < n) {
        fprintf(stderr, "cryptodl predict: the test set does not match the model (%zu values per image, %zu images)\n",
                per, ds->n);
        goto done;
    }
    img = malloc(n * per * sizeof *img);
    if (!img)
        goto done;
    for (size_t i = 0; i < n * per; i++)
        img[i] = ds->pixels[i];
    if (a->step == 'E') {
        he_file_stats st;
        if ((rc = he_encrypt_file("predict", plan, ctx, pk, pk ? NULL : sk, img, n, a->out, &st)) != CLI_EXIT_OK)
            goto done;
        printf("encrypted the first %zu %s test images in %.2f s: %s (%.1f MB, %zu batch%s of %zu ciphertext%s, "
               "%s packing)\n", n, ds->name, st.seconds, a->out, st.bytes / 1e6, st.batches,
               st.batches == 1 ? "" : "es", cdl_he_plan_input_ciphertexts(plan),
               cdl_he_plan_input_ciphertexts(plan) == 1 ? "" : "s", he_packing_name(plan));
        goto done;
    }
    /* decrypt: compare with the labels and the plaintext reference */
    rc = CLI_EXIT_FAILURE;
    ref = malloc(n * nout * sizeof *ref);
    if (!ref || cdl_nn_run(g, img, n, ref) != CDL_OK) {
        rc = cli_fail_status("predict", "the plaintext reference failed");
        goto done;
    }
    size_t correct = 0, agree = 0;
    double max_diff = 0;
    for (size_t j = 0; j < n; j++) {
        size_t ph = he_argmax(he + j * nout, nout), pr = he_argmax(ref + j * nout, nout);
        correct += ph == ds->labels[j];
        agree += ph == pr;
        for (size_t k = 0; k < nout; k++)
            if (!(fabs(he[j * nout + k] - ref[j * nout + k]) <= max_diff))
                max_diff = fabs(he[j * nout + k] - ref[j * nout + k]);
        if (!a->json && j < 10)
            printf("image %zu: predicted %zu, label %u\n", j, ph, ds->labels[j]);
    }
    if (a->json)
        printf("{\"images\":%zu,\"encrypted_accuracy\":%.6f,\"argmax_agreement\":%.6f,\"max_abs_logit_diff\":%.3e}\n",
               n, (double)correct / n, (double)agree / n, max_diff);
    else
        printf("%zu images: encrypted accuracy %.2f%%, agreement with the plaintext reference %.2f%%, max |logit "
               "difference| %.2e\n", n, 100.0 * correct / n, 100.0 * agree / n, max_diff);
    rc = CLI_EXIT_OK;
done:
    free(img);
    free(he);
    free(ref);
    cdl_dataset_free(ds);
    cdl_ckks_galois_keys_free(gk);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_public_key_free(pk);
    cdl_ckks_secret_key_free(sk);
    return rc;
}

int cmd_predict(int argc, char **argv)
{
    static const struct option opts[] = {{"dataset", required_argument, 0, 'd'},
                                         {"data-dir", required_argument, 0, 'D'},
                                         {"limit", required_argument, 0, 'n'},
                                         {"threads", required_argument, 0, 't'},
                                         {"log-n", required_argument, 0, 'L'},
                                         {"scale-bits", required_argument, 0, 'S'},
                                         {"public-key", no_argument, 0, 'p'},
                                         {"output-bits", required_argument, 0, 'B'},
                                         {"approx", required_argument, 0, 'A'},
                                         {"packing", required_argument, 0, 'Q'},
                                         {"stream-weights", no_argument, 0, 'W'},
                                         {"max-galois-keys", required_argument, 0, 'G'},
                                         {"max-galois-mb", required_argument, 0, 'Y'},
                                         {"plan", no_argument, 0, 'P'},
                                         {"force", no_argument, 0, 'F'},
                                         {"json", no_argument, 0, 'j'},
                                         {"results", required_argument, 0, 'R'},
                                         HE_QUIET_OPTION,
                                         HE_FLOOD_OPTIONS,
                                         {"keygen", no_argument, 0, 'K'},
                                         {"encrypt", no_argument, 0, 'E'},
                                         {"evaluate", no_argument, 0, 'V'},
                                         {"decrypt", no_argument, 0, 'X'},
                                         {"keys", required_argument, 0, 'k'},
                                         {"in", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dataset = "mnist", *data_dir = NULL;
    long long limit = PREDICT_DEFAULT_LIMIT;
    int json = 0, threads = 0, use_pk = 0, plan_only = 0, step = 0, force = 0, stream_weights = 0, c;
    const char *keys_dir = NULL, *in_path = NULL, *out_path = NULL, *approx = NULL, *results_path = NULL;
    cdl_he_options hopt;
    cdl_he_options_default(&hopt);
    cdl_ckks_flood_options flood = {0, 0.0, 0.0};
    cdl_ckks_flood_info finfo = {0.0, 0.0, 0.0, 0.0};
    char *end;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int fr = he_flood_option("predict", c, optarg, argc, argv, &flood);
        if (fr < 0)
            return CLI_EXIT_USAGE;
        if (fr > 0)
            continue;
        switch (c) {
        case 'd': dataset = optarg; break;
        case 'D': data_dir = optarg; break;
        case 'p': use_pk = 1; break;
        case 'P': plan_only = 1; break;
        case 'j': json = 1; break;
        case 'R': results_path = optarg; break;
        case HE_OPT_QUIET: cli_set_quiet(1); break;
        case 'n':
            if (cli_parse_positive("predict", "--limit", optarg, &limit) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_threads("predict", optarg, &threads) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'L':
            hopt.log_n = (int)strtol(optarg, &end, 10);
            if (*end || hopt.log_n < 13 || hopt.log_n > 16)
                return cli_usage_error("predict", "--log-n must be 13..16 (128-bit security), got '%s'", optarg);
            break;
        case 'S':
            hopt.scale_bits = (int)strtol(optarg, &end, 10);
            if (*end || hopt.scale_bits < 20 || hopt.scale_bits > 50)
                return cli_usage_error("predict", "--scale-bits must be 20..50, got '%s'", optarg);
            break;
        case 'K':
        case 'E':
        case 'V':
        case 'X':
            if (step && step != c)
                return cli_usage_error("predict", "give only one of --keygen, --encrypt, --evaluate, --decrypt");
            step = c;
            break;
        case 'k': keys_dir = optarg; break;
        case 'F': force = 1; break;
        case 'A': approx = optarg; break;
        case 'Q':
            if (cli_parse_packing("predict", optarg, &hopt.packing) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'W': stream_weights = 1; break;
        case 'G': {
            long long k = 0;
            if (cli_parse_positive("predict", "--max-galois-keys", optarg, &k) != 0)
                return CLI_EXIT_USAGE;
            hopt.max_galois_keys = k > 100000 ? 100000 : (int)k;
            break;
        }
        case 'Y': {
            long long mb = 0;
            if (cli_parse_positive("predict", "--max-galois-mb", optarg, &mb) != 0)
                return CLI_EXIT_USAGE;
            hopt.max_galois_bytes = (uint64_t)(mb > 100000000 ? 100000000 : mb) * 1000000u;
            break;
        }
        case 'B':
            hopt.output_bits = (int)strtol(optarg, &end, 10);
            if (*end || hopt.output_bits < 2 || hopt.output_bits > 30)
                return cli_usage_error("predict", "--output-bits must be 2..30, got '%s'", optarg);
            break;
        case 'i': in_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("predict", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("predict", "expected exactly one MODEL.onnx (e.g. models/mnist_cryptonets.onnx)");
    if (flood.queries != 0.0 && !flood.security_bits)
        return cli_usage_error("predict", "--flood-queries needs --flood");
    if (flood.security_bits && step && step != 'X')
        return cli_usage_error("predict", "--flood applies to decryption: the one-process run or --decrypt");
    if (results_path && step)
        return cli_usage_error("predict", "--results is for the one-process run (not --keygen/--encrypt/--evaluate/"
                                          "--decrypt)");
    if (threads)
        cdl_set_threads(threads);
    hopt.images_hint = (size_t)limit;
    hopt.cache_weights = !stream_weights; /* slots: encode the weights once for all requests */
    const char *path = argv[optind];
    int defaulted = data_dir == NULL;
    if (!data_dir)
        data_dir = cli_default_data_dir();

    int rc = CLI_EXIT_FAILURE;
    cdl_client_plan *cp = NULL;
    cdl_client_keys *keys = NULL;
    cdl_dataset *ds = NULL;
    cdl_he_batch *enc = NULL, *res = NULL;
    double *images = NULL, *he_logits = NULL, *ref_logits = NULL;
    char *desc = NULL;
    results_file rf = {.fd = -1};
    int rf_open = 0, signals_set = 0, interrupted = 0;
    size_t n_run = 0; /* images evaluated by this run */
    const double logit_bound = ldexp(1.0, hopt.output_bits - 1); /* the plan's |logit| < 2^(output_bits - 1) */
    struct sigaction sa_int_old, sa_term_old;

    /* the model compiled by the library's client layer; its graph's output is
     * the value the plan encrypts (a trailing softmax is dropped from both),
     * the plaintext reference the encrypted logits are compared with */
    cdl_client_options copt;
    cdl_client_options_default(&copt);
    copt.packing = hopt.packing;
    copt.log_n = hopt.log_n;
    copt.scale_bits = hopt.scale_bits;
    copt.output_bits = hopt.output_bits;
    copt.approx = approx;
    copt.max_galois_keys = hopt.max_galois_keys;
    copt.max_galois_mb = (int)(hopt.max_galois_bytes / 1000000u);
    copt.images_hint = hopt.images_hint;
    copt.stream_weights = stream_weights;
    if (cdl_client_plan_compile_file(path, &copt, &cp) != CDL_OK) {
        fprintf(stderr, "cryptodl predict: %s\n", cdl_last_error());
        return CLI_EXIT_FAILURE;
    }
    const cdl_nn_graph *g = cdl_client_plan_graph(cp);
    const cdl_he_plan *plan = cdl_client_plan_he(cp);
    const cdl_ckks_context *ctx = cdl_client_plan_context(cp);
    if (cdl_he_plan_describe(plan, &desc) != CDL_OK) {
        rc = cli_fail_status("predict", "cannot describe the plan");
        goto done;
    }
    if (plan_only) {
        fputs(desc, stdout);
        rc = CLI_EXIT_OK;
        goto done;
    }
    if (!force && (!step || step == 'V') && he_check_memory("predict", plan) != CLI_EXIT_OK)
        goto done;
    if (step) {
        step_args sa = {step, keys_dir, in_path, out_path, dataset, data_dir, defaulted, (size_t)limit, json, use_pk,
                        flood.security_bits ? &flood : NULL};
        rc = run_step(cp, &sa);
        goto done;
    }
    if (!cli_quiet())
        fputs(desc, stderr);
    if (cdl_dataset_load(dataset, data_dir, "test", (size_t)limit, &ds) != CDL_OK) {
        if (!(defaulted && data_dir && cdl_dataset_load(dataset, NULL, "test", (size_t)limit, &ds) == CDL_OK)) {
            rc = cli_fail_status("predict", "cannot load the test set (give --data-dir DIR holding mnist/)");
            goto done;
        }
    }
    const size_t per = cdl_dataset_image_size(ds), nin = cdl_he_plan_input_size(plan),
                 nout = cdl_he_plan_output_size(plan), n = ds->n;
    if (per != nin) {
        fprintf(stderr, "cryptodl predict: the model takes %zu values per image but %s images have %zu: give the "
                        "--dataset the model was trained on\n", nin, ds->name, per);
        goto done;
    }
    images = malloc(n * per * sizeof *images);
    he_logits = malloc(n * nout * sizeof *he_logits);
    ref_logits = malloc(n * nout * sizeof *ref_logits);
    if (!images || !he_logits || !ref_logits) {
        fprintf(stderr, "cryptodl predict: out of memory for %zu images\n", n);
        goto done;
    }
    for (size_t i = 0; i < n * per; i++)
        images[i] = ds->pixels[i];

    const cdl_ckks_param_spec *sp = cdl_he_plan_params(plan);
    const int slots = cdl_he_plan_packing(plan) == CDL_HE_PACKING_SLOTS;
    double t_keygen = 0, t_encrypt = 0, t_eval = 0, t_decrypt = 0, t0;
    size_t in_bytes = 0, out_bytes = 0, rlk_bytes = 0, gk_bytes = 0, n_steps = 0, req_max = 0, resp_max = 0;
    cdl_he_plan_galois_steps(plan, NULL, &n_steps);
    /* the results file first: a file of another run is refused before any key is made */
    {
        results_run run = {.log_n = sp->log_n, .levels = cdl_he_plan_levels(plan),
                           .scale_bits = (int)lround(log2(sp->scale))};
        char err[256];
        if (plan_sha256_file(path, run.sha256, err, sizeof err) != 0) {
            fprintf(stderr, "cryptodl predict: %s\n", err);
            goto done;
        }
        snprintf(run.dataset, sizeof run.dataset, "%s", ds->name);
        snprintf(run.packing, sizeof run.packing, "%s", slots ? "slots" : "batch");
        if (results_open("predict", results_path, &run, &rf) != 0)
            goto done;
        rf_open = 1;
    }
    t0 = cli_now_seconds();
    {
        he_reporter rep;
        he_reporter_init(&rep);
        if (cdl_client_keygen(cp, use_pk ? CDL_CLIENT_KEYGEN_PUBLIC : 0, he_report, &rep, &keys) != CDL_OK) {
            fprintf(stderr, "cryptodl predict: %s\n", cdl_last_error());
            goto done;
        }
    }
    t_keygen = cli_now_seconds() - t0;
    {
        uint8_t *blob = NULL;
        if (cdl_client_keys_save(keys, CDL_CLIENT_RELIN_KEY, 0, &blob, &rlk_bytes) == CDL_OK)
            cdl_free_bytes(blob);
        if (slots)
            gk_bytes = (size_t)cdl_he_plan_galois_key_bytes(plan);
    }
    if (!cli_quiet()) {
        fprintf(stderr, "keys: %.2f s (relinearization key %.1f MB", t_keygen, rlk_bytes / 1e6);
        if (slots)
            fprintf(stderr, ", Galois keys %.1f MB for %zu rotation steps", gk_bytes / 1e6, n_steps);
        fprintf(stderr, "; sent to the server)\n");
    }
    const size_t cap = cdl_he_plan_batch_capacity(plan);
    const size_t start = rf.n < n ? rf.n : n;
    if (rf.resumed && !cli_quiet())
        fprintf(stderr, "%s: %zu image(s) already done; %s\n", results_path, rf.resumed,
                start < n ? "resuming" : "nothing left to run for this --limit");
    if (flood.security_bits && flood.queries == 0.0) /* every output ciphertext of the run is one decryption */
        flood.queries = (double)(((n - start + cap - 1) / cap) * cdl_he_plan_output_ciphertexts(plan));
    struct sigaction sa_stop;
    memset(&sa_stop, 0, sizeof sa_stop);
    sa_stop.sa_handler = on_stop_signal;
    sigemptyset(&sa_stop.sa_mask);
    stop_requested = 0;
    sigaction(SIGINT, &sa_stop, &sa_int_old);
    sigaction(SIGTERM, &sa_stop, &sa_term_old);
    signals_set = 1;
    for (size_t at = start; at < n && !stop_requested; at += cap) {
        size_t b = n - at < cap ? n - at : cap;
        if (!cli_quiet())
            fprintf(stderr, "batch of %zu images (%zu..%zu)\n", b, at, at + b - 1);
        t0 = cli_now_seconds();
        if (cdl_client_encrypt_batch(cp, keys, images + at * per, CDL_CLIENT_F64, b, use_pk, &enc) != CDL_OK) {
            rc = cli_fail_status("predict", "encryption failed");
            goto done;
        }
        double dt = cli_now_seconds() - t0;
        t_encrypt += dt;
        size_t bytes = 0;
        if (cdl_he_batch_bytes(ctx, enc, &bytes) == CDL_OK) {
            in_bytes += bytes;
            req_max = bytes > req_max ? bytes : req_max;
        }
        if (!cli_quiet())
            fprintf(stderr, "  encrypt: %zu ciphertexts, %.2f s, %.1f MB\n", cdl_he_batch_count(enc), dt,
                    bytes / 1e6);
        t0 = cli_now_seconds();
        he_reporter rep;
        he_reporter_init(&rep);
        if (cdl_client_evaluate_batch(cp, keys, enc, he_report, &rep, &res) != CDL_OK) {
            fprintf(stderr, "cryptodl predict: %s\n", cdl_last_error());
            goto done;
        }
        const double t_batch = cli_now_seconds() - t0;
        t_eval += t_batch;
        if (!cli_quiet())
            fprintf(stderr, "  evaluate: %.2f s\n", t_batch);
        cdl_he_batch_free(enc);
        enc = NULL;
        if (cdl_he_batch_bytes(ctx, res, &bytes) == CDL_OK) {
            out_bytes += bytes;
            resp_max = bytes > resp_max ? bytes : resp_max;
        }
        t0 = cli_now_seconds();
        cdl_ckks_flood_info fi;
        double *dest = he_logits + at * nout, *ref = ref_logits + at * nout;
        cdl_status dst = cdl_client_decrypt_batch(cp, keys, res, flood.security_bits ? &flood : NULL, dest, &fi);
        if (dst != CDL_OK) {
            fprintf(stderr, "cryptodl predict: %s\n", cdl_last_error());
            if (flood.security_bits)
                he_flood_hint("predict", dst);
            goto done;
        }
        if (flood.security_bits) {
            finfo.queries = fi.queries;
            finfo.noise_log2 = fi.noise_log2 > finfo.noise_log2 ? fi.noise_log2 : finfo.noise_log2;
            finfo.sigma_log2 = fi.sigma_log2 > finfo.sigma_log2 ? fi.sigma_log2 : finfo.sigma_log2;
            finfo.slot_error = fi.slot_error > finfo.slot_error ? fi.slot_error : finfo.slot_error;
        }
        t_decrypt += cli_now_seconds() - t0;
        cdl_he_batch_free(res);
        res = NULL;
        /* the plaintext reference on the same images, then one result line per image */
        if (cdl_nn_run(g, images + at * per, b, ref) != CDL_OK) {
            rc = cli_fail_status("predict", "the plaintext reference failed");
            goto done;
        }
        result_line *lines = calloc(b, sizeof *lines);
        if (!lines) {
            fprintf(stderr, "cryptodl predict: out of memory\n");
            goto done;
        }
        for (size_t j = 0; j < b; j++) {
            const double *hj = dest + j * nout, *rj = ref + j * nout;
            result_line *l = &lines[j];
            l->label = (int)ds->labels[at + j];
            l->plaintext_class = (int)he_argmax(rj, nout);
            l->encrypted_class = (int)he_argmax(hj, nout);
            l->seconds = t_batch / (double)b;
            for (size_t k = 0; k < nout; k++) {
                const double d = fabs(hj[k] - rj[k]);
                if (!(d <= l->max_abs_logit_diff))
                    l->max_abs_logit_diff = d;
                if (fabs(rj[k]) > l->max_abs_logit)
                    l->max_abs_logit = fabs(rj[k]);
            }
            if (l->max_abs_logit >= logit_bound)
                fprintf(stderr,
                        "cryptodl predict: warning: image %zu: the model's own (plaintext) logits reach %.4g, beyond "
                        "the range the plan guarantees, |logit| < 2^%d: its encrypted logits may have wrapped around "
                        "(compile with a larger --output-bits, or check the model on this input)\n",
                        at + j, l->max_abs_logit, hopt.output_bits - 1);
        }
        int arc = results_append("predict", &rf, lines, b);
        free(lines);
        if (arc != 0)
            goto done;
        n_run += b;
        if (at + b < n) {
            const double per_image = t_eval / (double)n_run, left = per_image * (double)(n - at - b);
            if (cli_progress_style() == CLI_STYLE_BAR) { /* the whole run; the layers' bars are above */
                char bar[40], t[32];
                cli_bar_text(bar, sizeof bar, at + b, n, 30);
                cli_duration_text(t, sizeof t, left);
                fprintf(stderr, "  %s %zu/%zu images, %.2f s per image, eta %s\n", bar, at + b, n, per_image, t);
            } else if (cli_progress_style() == CLI_STYLE_LINES) {
                fprintf(stderr, "  %zu/%zu images done, %.1f s per image, about %.0f min left\n", at + b, n,
                        per_image, left / 60.0);
            }
        }
    }
    if (stop_requested && rf.n < n) {
        fprintf(stderr, "cryptodl predict: stopped after %zu of %zu images%s%s\n", rf.n, n,
                results_path ? "; run the same command again to resume from " : "",
                results_path ? results_path : "");
        interrupted = 1;
    }
    if (flood.security_bits)
        he_flood_report("predict", plan, &flood, &finfo, he_logits + start * nout, n_run * nout, 0);
    /* the summary covers every image in the results (this run's and a resumed file's) */
    const size_t done_n = rf.n < n ? rf.n : n;
    size_t he_correct = 0, ref_correct = 0, agree = 0, out_of_range = 0;
    double max_diff = 0, max_logit = 0, seconds_all = 0, max_diff_in_range = 0;
    for (size_t j = 0; j < done_n; j++) {
        const result_line *l = &rf.lines[j];
        if (l->max_abs_logit >= logit_bound)
            out_of_range++;
        else if (!(l->max_abs_logit_diff <= max_diff_in_range))
            max_diff_in_range = l->max_abs_logit_diff;
        he_correct += (size_t)(l->encrypted_class == l->label);
        ref_correct += (size_t)(l->plaintext_class == l->label);
        agree += (size_t)(l->encrypted_class == l->plaintext_class);
        if (!(l->max_abs_logit_diff <= max_diff))
            max_diff = l->max_abs_logit_diff;
        if (l->max_abs_logit > max_logit)
            max_logit = l->max_abs_logit;
        seconds_all += l->seconds;
    }
    const double dn = done_n ? (double)done_n : 1.0;
    int log_qp = 0;
    for (int i = 0; i < sp->q_count; i++)
        log_qp += sp->q_bits[i];
    for (int i = 0; i < sp->p_count; i++)
        log_qp += sp->p_bits[i];
    /* throughput and latency: the batches evaluated by this run */
    const size_t batches = (n_run + cap - 1) / cap;
    const double per_hour_eval = t_eval > 0 ? 3600.0 * (double)n_run / t_eval : 0;
    const double t_total = t_encrypt + t_eval + t_decrypt;
    const double per_hour_total = t_total > 0 ? 3600.0 * (double)n_run / t_total : 0;
    const double per_hour_full = t_eval > 0 ? 3600.0 * (double)(batches * cap) / t_eval : 0;
    const double peak_rss_mb = cli_peak_rss_mb();
    const double latency = batches ? t_eval / (double)batches : 0.0; /* evaluate time per request (batch) */
    if (json) {
        printf("{\"model\":\"%s\",\"dataset\":\"%s\",\"images\":%zu,\"batches\":%zu,\"threads\":%d,"
               "\"encrypted_accuracy\":%.6f,\"plaintext_accuracy\":%.6f,\"argmax_agreement\":%.6f,"
               "\"max_abs_logit_diff\":%.3e,\"max_abs_logit\":%.3f,"
               "\"log_n\":%d,\"log_qp\":%d,\"levels\":%d,\"scale_bits\":%d,\"encryption\":\"%s\","
               "\"keygen_s\":%.3f,\"encrypt_s\":%.3f,\"evaluate_s\":%.3f,\"decrypt_s\":%.3f,"
               "\"predictions_per_hour_evaluate\":%.0f,\"predictions_per_hour_end_to_end\":%.0f,"
               "\"predictions_per_hour_full_batches\":%.0f,\"batch_capacity\":%zu,"
               "\"input_bytes\":%zu,\"output_bytes\":%zu,\"relin_key_bytes\":%zu,"
               "\"packing\":\"%s\",\"latency_s\":%.4f,\"images_per_ciphertext\":%zu,\"galois_key_bytes\":%zu,"
               "\"galois_steps\":%zu,\"request_bytes\":%zu,\"response_bytes\":%zu,\"peak_rss_mb\":%.0f,"
               "\"images_this_run\":%zu,\"resumed_images\":%zu,\"evaluate_s_per_image\":%.3f,\"interrupted\":%s,"
               "\"logit_bound\":%.0f,\"images_beyond_logit_bound\":%zu,\"max_abs_logit_diff_within_bound\":%.3e",
               path, ds->name, done_n, batches, cdl_get_threads(), (double)he_correct / dn, (double)ref_correct / dn,
               (double)agree / dn, max_diff, max_logit, sp->log_n, log_qp, cdl_he_plan_levels(plan),
               (int)lround(log2(sp->scale)), use_pk ? "public-key" : "secret-key", t_keygen, t_encrypt, t_eval,
               t_decrypt, per_hour_eval, per_hour_total, per_hour_full, cap, in_bytes, out_bytes, rlk_bytes,
               slots ? "slots" : "batch", latency, slots ? cap : 1, gk_bytes, n_steps, req_max, resp_max, peak_rss_mb,
               n_run, rf.resumed, seconds_all / dn, interrupted ? "true" : "false", logit_bound, out_of_range,
               max_diff_in_range);
        if (results_path) {
            printf(",\"results\":");
            cli_json_string(results_path);
        }
        if (flood.security_bits)
            printf(",\"flood\":{\"bits\":%d,\"queries\":%.0f,\"noise_log2\":%.0f,\"sigma_log2\":%.2f,"
                   "\"logit_rms_error\":%.3g}",
                   flood.security_bits, finfo.queries, finfo.noise_log2, finfo.sigma_log2, finfo.slot_error);
        printf("}\n");
    } else {
        printf("encrypted inference: %s on %zu %s test images (%d threads)%s\n", path, done_n, ds->name,
               cdl_get_threads(), interrupted ? ", interrupted" : "");
        if (rf.resumed)
            printf("  resumed       %zu image(s) from %s, %zu evaluated by this run\n", rf.resumed, results_path,
                   n_run);
        printf("  accuracy      encrypted %.2f%% (%zu/%zu), plaintext %.2f%% (%zu/%zu)\n", 100.0 * he_correct / dn,
               he_correct, done_n, 100.0 * ref_correct / dn, ref_correct, done_n);
        printf("  agreement     %.2f%% of predictions equal the plaintext reference's; max |logit difference| "
               "%.2e (logits up to %.1f)\n",
               100.0 * agree / dn, max_diff, max_logit);
        if (out_of_range) {
            printf("                %zu image(s) with plaintext logits beyond the bound the plan guarantees, %.0f (their "
                   "encrypted logits may have wrapped around)",
                   out_of_range, logit_bound);
            if (out_of_range < done_n)
                printf("; max |logit difference| of the others %.2e", max_diff_in_range);
            printf("\n");
        }
        printf("  parameters    N = 2^%d, log QP = %d bits, %d levels used, scale 2^%d, %s encryption\n", sp->log_n,
               log_qp, cdl_he_plan_levels(plan), (int)lround(log2(sp->scale)), use_pk ? "public-key" : "secret-key");
        printf("  time          keygen %.2f s, encrypt %.2f s, evaluate %.2f s (%zu batch%s), decrypt %.2f s\n",
               t_keygen, t_encrypt, t_eval, batches, batches == 1 ? "" : "es", t_decrypt);
        printf("  throughput    %.0f predictions/hour (evaluation), %.0f/hour (encrypt + evaluate + decrypt)\n",
               per_hour_eval, per_hour_total);
        if (n_run < batches * cap)
            printf("                a batch holds %zu images at the same cost: %.0f predictions/hour with full "
                   "batches\n", cap, per_hour_full);
        printf("  sizes         input ciphertexts %.1f MB, encrypted logits %.1f MB, relinearization key %.1f MB\n",
               in_bytes / 1e6, out_bytes / 1e6, rlk_bytes / 1e6);
        if (slots)
            printf("  slots         %zu image(s) per ciphertext; one request %.2f MB, its answer %.2f MB; %.3f s per "
                   "request; Galois keys %.1f MB (%zu steps)\n",
                   cap, req_max / 1e6, resp_max / 1e6, latency, gk_bytes / 1e6, n_steps);
        printf("  memory        peak resident %.0f MB\n", peak_rss_mb);
        if (flood.security_bits)
            printf("  flooding      %d bits of statistical security (IND-CPA-D): rms error %.2g per logit "
                   "(sigma 2^%.1f)\n",
                   flood.security_bits, finfo.slot_error, finfo.sigma_log2);
    }
    rc = interrupted ? CLI_EXIT_INTERRUPTED : CLI_EXIT_OK;
done:
    if (signals_set) {
        sigaction(SIGINT, &sa_int_old, NULL);
        sigaction(SIGTERM, &sa_term_old, NULL);
    }
    if (rf_open)
        results_close(&rf);
    cdl_he_string_free(desc);
    cdl_he_batch_free(enc);
    cdl_he_batch_free(res);
    cdl_client_keys_free(keys);
    cdl_dataset_free(ds);
    cdl_client_plan_free(cp);
    free(images);
    free(he_logits);
    free(ref_logits);
    return rc;
}
