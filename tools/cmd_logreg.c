/*
 * cmd_logreg.c: `cryptodl logreg`: training on encrypted data. A binary
 * task (two classes of MNIST or Fashion-MNIST, 14x14 average-pooled pixels in
 * [0, 1]) is encrypted by a client, trained by a server holding only the
 * evaluation keys (logistic regression, Nesterov gradient descent, polynomial
 * sigmoid), and decrypted by the client, all in one process; the result is
 * compared with the same algorithm run in plaintext, on the real test set.
 * Without bootstrapping (the iteration count is bounded by the levels);
 * `cryptodl train-encrypted` (cmd_train_encrypted.c) bootstraps.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cryptodl/cryptodl.h"
#include "learn_common.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl logreg [options]\n\n"
            "Train a logistic regression on ENCRYPTED data (CKKS): the client encrypts a labelled\n"
            "training set, the server runs K iterations of Nesterov-accelerated gradient descent\n"
            "with a polynomial sigmoid using only the relinearization and Galois keys, the client\n"
            "decrypts the weights. Reports the test accuracy of the decrypted weights and of the\n"
            "same algorithm run in plaintext, and their largest weight difference.\n"
            "Task: class A (label +1) against class B (label -1); features: the 28x28 pixels\n"
            "averaged over 2x2 blocks (14x14 = 196, in [0, 1]) and a bias.\n"
            "This command does not bootstrap: K is bounded by the levels (degree 3: K <= 3 at\n"
            "--log-n 14, K <= 5 at --log-n 15; degree 1: 3 and 6). To train to convergence with\n"
            "bootstrapping, use `cryptodl train-encrypted`.\n\n"
            "options:\n"
            "  --dataset NAME   mnist (default) or fashion-mnist\n"
            "  --classes A,B    the two classes (default 3,8)\n"
            "  --train N        training samples, the first N of the two classes (default 1024)\n"
            "  --test N         test samples (default: all of the two classes in the test set)\n"
            "  --train-from-test  take the training samples from the test split too (the first\n"
            "                   --train of the two classes; the test samples are the ones after\n"
            "                   them): for when only a test set is at hand, e.g. data/mnist\n"
            "  --iters K        gradient-descent iterations (default: the most that fit)\n"
            "  --log-n L        CKKS ring degree 2^L: 13, 14 (default) or 15 (128-bit presets)\n"
            "  --lr G           learning rate gamma (default 3); gamma_k = G / (k + 1)\n"
            "  --constant-lr    gamma_k = G\n"
            "  --no-nesterov    plain gradient descent\n"
            "  --degree D       sigmoid polynomial degree, 1 or 3 (default 3)\n"
            "  --bound B        the sigmoid is fitted by least squares on [-B, B] (default 8)\n"
            "  --data-dir DIR   folder holding mnist/ and fashion-mnist/ (default: $CDL_DATA_DIR,\n"
            "                   ../shared/data)\n"
            "  --threads T      worker threads (default: all)\n"
            "  --json           one JSON object on stdout\n"
            "  -h, --help       this help\n\n"
            "example:\n"
            "  cryptodl logreg --dataset mnist --classes 3,8 --train 1024 --iters 3 --log-n 14\n");
}

static void progress(void *user, int iteration, int total)
{
    double *start = user;
    fprintf(stderr, "cryptodl logreg: server: iteration %d/%d done (%.1f s)\n", iteration, total,
            cli_now_seconds() - *start);
}

int cmd_logreg(int argc, char **argv)
{
    static const struct option opts[] = {{"dataset", required_argument, 0, 'd'},
                                         {"classes", required_argument, 0, 'c'},
                                         {"train", required_argument, 0, 'n'},
                                         {"test", required_argument, 0, 'T'},
                                         {"iters", required_argument, 0, 'k'},
                                         {"log-n", required_argument, 0, 'L'},
                                         {"lr", required_argument, 0, 'g'},
                                         {"constant-lr", no_argument, 0, 'C'},
                                         {"no-nesterov", no_argument, 0, 'N'},
                                         {"degree", required_argument, 0, 'e'},
                                         {"bound", required_argument, 0, 'b'},
                                         {"data-dir", required_argument, 0, 'D'},
                                         {"threads", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"train-from-test", no_argument, 0, 'F'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dataset = "mnist", *data_dir = NULL;
    int class_a = 3, class_b = 8, json = 0, from_test = 0, threads = 0, c;
    long long n_train = 1024, n_test = 0, iters = 0, log_n = 14, degree = 3;
    cdl_logreg_config cfg;
    cdl_logreg_config_default(&cfg);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'd': dataset = optarg; break;
        case 'D': data_dir = optarg; break;
        case 'c':
            if (sscanf(optarg, "%d,%d", &class_a, &class_b) != 2 || class_a < 0 || class_a > 9 || class_b < 0 ||
                class_b > 9 || class_a == class_b)
                return cli_usage_error("logreg", "--classes wants two different digits 0..9 as A,B, got '%s'",
                                       optarg);
            break;
        case 'n':
            if (cli_parse_positive("logreg", "--train", optarg, &n_train) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'T':
            if (cli_parse_positive("logreg", "--test", optarg, &n_test) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'k':
            if (cli_parse_positive("logreg", "--iters", optarg, &iters) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'L':
            if (cli_parse_positive("logreg", "--log-n", optarg, &log_n) != 0)
                return CLI_EXIT_USAGE;
            if (log_n < 13 || log_n > 15)
                return cli_usage_error("logreg", "--log-n %lld: use 13, 14 or 15 (the 128-bit presets)", log_n);
            break;
        case 'e':
            if (cli_parse_positive("logreg", "--degree", optarg, &degree) != 0)
                return CLI_EXIT_USAGE;
            if (degree != 1 && degree != 3)
                return cli_usage_error("logreg", "--degree %lld: use 1 or 3", degree);
            break;
        case 'g':
            cfg.learning_rate = strtod(optarg, &end);
            if (*end || !(cfg.learning_rate > 0) || !isfinite(cfg.learning_rate))
                return cli_usage_error("logreg", "--lr wants a positive number, got '%s'", optarg);
            break;
        case 'b':
            cfg.sigmoid_bound = strtod(optarg, &end);
            if (*end || !(cfg.sigmoid_bound > 0) || !(cfg.sigmoid_bound <= 1000))
                return cli_usage_error("logreg", "--bound wants a number in (0, 1000], got '%s'", optarg);
            break;
        case 'C': cfg.lr_decay = 0; break;
        case 'N': cfg.nesterov = 0; break;
        case 'j': json = 1; break;
        case 'F': from_test = 1; break;
        case 't':
            if (cli_parse_threads("logreg", optarg, &threads) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("logreg", "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error("logreg", "unexpected argument '%s'", argv[optind]);
    if (strcmp(dataset, "mnist") && strcmp(dataset, "fashion-mnist"))
        return cli_usage_error("logreg", "--dataset %s: use mnist or fashion-mnist", dataset);
    if (threads)
        cdl_set_threads(threads);
    cfg.sigmoid_degree = (int)degree;
    cfg.log_n = (int)log_n;

    int rc = CLI_EXIT_FAILURE;
    cdl_dataset *train = NULL, *test = NULL;
    double *xtr = NULL, *xte = NULL, *w_enc = NULL, *w_plain = NULL;
    int *ytr = NULL, *yte = NULL;
    size_t ntr = 0, nte = 0;
    cdl_ckks_context *ctx = NULL;
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL;
    cdl_rng *rng = NULL;
    cdl_logreg_encrypted_data *enc = NULL;
    cdl_logreg_encrypted_weights *ew = NULL;

    /* Parameters first: refuse an iteration count that does not fit before any work. */
    cdl_ckks_param_spec spec;
    if (cdl_ckks_preset((int)log_n, &spec) != CDL_OK || cdl_ckks_context_new(&spec, &ctx) != CDL_OK)
        return cli_fail_status("logreg", "cannot create the CKKS context");
    const int max_level = cdl_ckks_max_level(ctx);
    const int kmax = cdl_logreg_max_iterations(max_level, cfg.sigmoid_degree);
    cfg.iterations = iters ? (int)iters : kmax;
    if (cfg.iterations > kmax) {
        fprintf(stderr,
                "cryptodl logreg: --iters %d does not fit: N = 2^%lld has %d levels, the first iteration costs none "
                "and each later one %d (degree-%d sigmoid), so at most %d iterations fit without bootstrapping "
                "(which this command does not do); use --iters %d, --log-n 15, --degree 1, or `cryptodl "
                "train-encrypted`, which bootstraps\n",
                cfg.iterations, log_n, max_level, cdl_logreg_levels_per_iteration(cfg.sigmoid_degree),
                cfg.sigmoid_degree, kmax, kmax);
        cdl_ckks_context_free(ctx);
        return CLI_EXIT_USAGE;
    }
    cdl_logreg_sigmoid sig;
    if (cdl_logreg_sigmoid_fit(&cfg, &sig) != CDL_OK) {
        rc = cli_fail_status("logreg", "cannot fit the sigmoid");
        goto done;
    }

    int defaulted = data_dir == NULL;
    if (!data_dir)
        data_dir = cli_default_data_dir();
    fprintf(stderr, "cryptodl logreg: loading %s (classes %d vs %d)\n", dataset, class_a, class_b);
    if ((!from_test && lr_load_split(dataset, data_dir, defaulted, "train", &train) != 0) ||
        lr_load_split(dataset, data_dir, defaulted, "test", &test) != 0) {
        rc = cli_fail_status("logreg", "cannot load the dataset (give --data-dir; without the train split, "
                                       "--train-from-test trains on part of the test split)");
        goto done;
    }
    const size_t skip = from_test ? (size_t)n_train : 0;
    if (lr_select_task(from_test ? test : train, class_a, class_b, 0, (size_t)n_train, &xtr, &ytr, &ntr) != 0 ||
        lr_select_task(test, class_a, class_b, skip, (size_t)n_test, &xte, &yte, &nte) != 0) {
        fprintf(stderr, "cryptodl logreg: out of memory\n");
        goto done;
    }
    if (ntr < (size_t)n_train)
        fprintf(stderr, "cryptodl logreg: only %zu training samples of classes %d and %d\n", ntr, class_a, class_b);
    if (ntr == 0) {
        fprintf(stderr, "cryptodl logreg: no training samples of classes %d and %d\n", class_a, class_b);
        goto done;
    }
    if (nte == 0) {
        fprintf(stderr, "cryptodl logreg: no test samples of classes %d and %d left%s\n", class_a, class_b,
                from_test ? ": with --train-from-test, give a --train below the test set's count of the two classes"
                          : "");
        goto done;
    }
    w_enc = calloc(LR_FEATURES + 1, sizeof *w_enc);
    w_plain = calloc(LR_FEATURES + 1, sizeof *w_plain);
    if (!w_enc || !w_plain)
        goto done;

    size_t row, rows;
    int steps[CDL_LOGREG_MAX_STEPS];
    size_t nsteps;
    if (cdl_logreg_layout(ctx, LR_FEATURES, &row, &rows) != CDL_OK ||
        cdl_logreg_galois_steps(ctx, LR_FEATURES, steps, CDL_LOGREG_MAX_STEPS, &nsteps) != CDL_OK) {
        rc = cli_fail_status("logreg", "cannot lay out the data");
        goto done;
    }

    /* client: keys and encryption */
    double t0 = cli_now_seconds();
    fprintf(stderr, "cryptodl logreg: client: keys (secret, relinearization, %zu Galois)\n", nsteps);
    if (cdl_rng_new_system(&rng) != CDL_OK || cdl_ckks_keygen_secret(ctx, rng, &sk) != CDL_OK ||
        cdl_ckks_keygen_relin(ctx, sk, rng, &rlk) != CDL_OK ||
        cdl_ckks_keygen_galois(ctx, sk, steps, nsteps, 0, rng, &gk) != CDL_OK) {
        rc = cli_fail_status("logreg", "key generation failed");
        goto done;
    }
    double t_keys = cli_now_seconds() - t0;
    t0 = cli_now_seconds();
    fprintf(stderr, "cryptodl logreg: client: encrypting %zu samples\n", ntr);
    if (cdl_logreg_encrypt_dataset(ctx, sk, rng, xtr, ytr, ntr, LR_FEATURES, &enc) != CDL_OK) {
        rc = cli_fail_status("logreg", "encryption failed");
        goto done;
    }
    double t_enc = cli_now_seconds() - t0;

    /* server: evaluation keys and ciphertexts only */
    t0 = cli_now_seconds();
    cfg.progress = progress;
    cfg.progress_user = &t0;
    fprintf(stderr, "cryptodl logreg: server: %d iterations on %zu ciphertexts\n", cfg.iterations,
            cdl_logreg_encrypted_data_ciphertexts(enc));
    if (cdl_logreg_train_encrypted(ctx, rlk, gk, enc, &cfg, &ew) != CDL_OK) {
        rc = cli_fail_status("logreg", "encrypted training failed");
        goto done;
    }
    double t_train = cli_now_seconds() - t0;

    /* client: decryption */
    t0 = cli_now_seconds();
    if (cdl_logreg_decrypt_weights(ctx, sk, ew, w_enc, LR_FEATURES + 1) != CDL_OK) {
        rc = cli_fail_status("logreg", "decryption failed");
        goto done;
    }
    double t_dec = cli_now_seconds() - t0;

    /* the same algorithm in plaintext */
    cfg.progress = NULL;
    t0 = cli_now_seconds();
    if (cdl_logreg_train_plain(xtr, ytr, ntr, LR_FEATURES, &cfg, w_plain) != CDL_OK) {
        rc = cli_fail_status("logreg", "plaintext training failed");
        goto done;
    }
    double t_plain = cli_now_seconds() - t0;
    double diff = 0, wmax = 0;
    for (size_t i = 0; i <= LR_FEATURES; i++) {
        diff = fmax(diff, fabs(w_enc[i] - w_plain[i]));
        wmax = fmax(wmax, fabs(w_plain[i]));
    }
    double acc_enc = cdl_logreg_accuracy(w_enc, xte, yte, nte, LR_FEATURES);
    double acc_plain = cdl_logreg_accuracy(w_plain, xte, yte, nte, LR_FEATURES);
    double acc_train_enc = cdl_logreg_accuracy(w_enc, xtr, ytr, ntr, LR_FEATURES);
    int level_left = cdl_logreg_encrypted_weights_level(ew);
    const int per_iter = cdl_logreg_levels_per_iteration(cfg.sigmoid_degree);

    if (json) {
        printf("{\"dataset\":");
        cli_json_string(dataset);
        printf(",\"classes\":[%d,%d],\"train_from_test\":%d,\"train\":%zu,\"test\":%zu,\"features\":%d,\"log_n\":%lld,\"slots\":%zu,"
               "\"max_level\":%d,\"log_qp\":%.1f,\"slots_per_sample\":%zu,\"samples_per_ciphertext\":%zu,"
               "\"ciphertexts\":%zu,\"galois_keys\":%zu,\"iterations\":%d,\"max_iterations\":%d,"
               "\"levels_per_iteration\":%d,\"level_left\":%d,\"learning_rate\":%g,\"lr_decay\":%d,"
               "\"nesterov\":%d,\"sigmoid\":{\"degree\":%d,\"bound\":%g,\"a0\":%.17g,\"a1\":%.17g,\"a3\":%.17g,"
               "\"max_abs_error\":%.6g},\"threads\":%d,\"seconds\":{\"keygen\":%.3f,\"encrypt\":%.3f,"
               "\"train_encrypted\":%.3f,\"decrypt\":%.3f,\"train_plain\":%.3f},"
               "\"accuracy_encrypted\":%.6f,\"accuracy_plain\":%.6f,\"train_accuracy_encrypted\":%.6f,"
               "\"max_weight_diff\":%.6g,\"max_weight\":%.6g}\n",
               class_a, class_b, from_test, ntr, nte, LR_FEATURES, log_n, cdl_ckks_slots(ctx), max_level,
               cdl_ckks_log_qp(ctx),
               row, rows, cdl_logreg_encrypted_data_ciphertexts(enc), nsteps, cfg.iterations, kmax, per_iter,
               level_left, cfg.learning_rate, cfg.lr_decay, cfg.nesterov, sig.degree, sig.bound, sig.a0, sig.a1,
               sig.a3, sig.max_abs_error, cdl_get_threads(), t_keys, t_enc, t_train, t_dec, t_plain, acc_enc,
               acc_plain, acc_train_enc, diff, wmax);
    } else {
        printf("logistic regression trained on encrypted data: %s, class %d (+1) vs %d (-1)\n", dataset, class_a,
               class_b);
        printf("  data        %zu training samples, %zu test samples, %d features + bias\n", ntr, nte, LR_FEATURES);
        printf("  CKKS        N = 2^%lld (%zu slots), %d levels, log2(QP) = %.0f (128-bit preset)\n", log_n,
               cdl_ckks_slots(ctx), max_level, cdl_ckks_log_qp(ctx));
        printf("  packing     %zu slots per sample, %zu samples per ciphertext, %zu ciphertexts, %zu Galois keys\n",
               row, rows, cdl_logreg_encrypted_data_ciphertexts(enc), nsteps);
        printf("  sigmoid     %.17g %c %.17g t %c %.17g t^3 on [-%g, %g] (least squares), max error %.4g\n", sig.a0,
               sig.a1 < 0 ? '-' : '+', fabs(sig.a1), sig.a3 < 0 ? '-' : '+', fabs(sig.a3), sig.bound, sig.bound,
               sig.max_abs_error);
        printf("  schedule    %d iterations (at most %d fit: the first costs 0 levels, each later one %d), "
               "gamma = %g%s, %s\n",
               cfg.iterations, kmax, per_iter, cfg.learning_rate, cfg.lr_decay ? " / (k + 1)" : " (constant)",
               cfg.nesterov ? "Nesterov" : "plain GD");
        printf("  levels      weights returned at level %d of %d\n", level_left, max_level);
        printf("  time        keygen %.2f s, encrypt %.2f s, train (server, encrypted) %.2f s, decrypt %.3f s; "
               "plaintext training %.3f s (%d threads)\n",
               t_keys, t_enc, t_train, t_dec, t_plain, cdl_get_threads());
        printf("  accuracy    encrypted training %.2f%%, plaintext training %.2f%% (test set, %zu samples)\n",
               100 * acc_enc, 100 * acc_plain, nte);
        printf("  weights     max |encrypted - plaintext| = %.3g (largest weight %.3g)\n", diff, wmax);
    }
    rc = CLI_EXIT_OK;
done:
    cdl_logreg_encrypted_weights_free(ew);
    cdl_logreg_encrypted_data_free(enc);
    cdl_ckks_galois_keys_free(gk);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);
    cdl_dataset_free(train);
    cdl_dataset_free(test);
    free(xtr);
    free(ytr);
    free(xte);
    free(yte);
    free(w_enc);
    free(w_plain);
    return rc;
}
