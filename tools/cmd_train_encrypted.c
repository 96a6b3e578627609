/*
 * cmd_train_encrypted.c: `cryptodl train-encrypted`: training on encrypted
 * data to convergence, with bootstrapping. Task logreg: a binary task of
 * MNIST or Fashion-MNIST (two classes, 14x14 average-pooled pixels in [0, 1]
 * and a bias), the whole training set of the two classes packed into as many
 * ciphertexts as it needs, full-batch Nesterov gradient descent with a
 * polynomial sigmoid (src/learn/logreg.c); the weights are bootstrapped when
 * they run out of levels. The client (keys, encryption, decryption) and the
 * server (evaluation keys and ciphertexts only) run in one process; the
 * decrypted weights are scored on the real test set of the two classes and
 * compared with the same algorithm in plaintext.
 *
 * Checkpoints (--checkpoint FILE): after every iteration the server's state
 * (beta and v ciphertexts, iteration, configuration) goes to FILE, and the
 * client's 32-byte key seed, from which the secret key, every evaluation key
 * and the encrypted data are drawn, to FILE.key (mode 0600, as secret as a
 * secret key). --resume rebuilds the same keys and ciphertexts from the seed,
 * loads the state and goes on: the same arithmetic, bit for bit, as a run that
 * was never interrupted. Files are written to a temporary name and renamed,
 * with Ctrl-C held off meanwhile: never half written.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "cli.h"
#include "core/bytes.h"
#include "cryptodl/cryptodl.h"
#include "learn_common.h"

#define CMD "train-encrypted"
#define CKPT_MAGIC "CDLTRCK1"
#define CKPT_MAX_BYTES ((size_t)1 << 34)

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl " CMD " --task logreg [options]\n\n"
            "Train a model on ENCRYPTED data (CKKS) to convergence, bootstrapping the encrypted\n"
            "state when it runs out of levels. The client encrypts the labelled training set, the\n"
            "server trains with the evaluation keys only (relinearization, rotations, bootstrapping),\n"
            "the client decrypts the model and scores it on the real test set; the same algorithm\n"
            "is run in plaintext on the same data for comparison.\n\n"
            "Tasks:\n"
            "  logreg   binary logistic regression, class A (+1) against class B (-1); features:\n"
            "           the 28x28 pixels averaged over 2x2 blocks (196, in [0, 1]) and a bias;\n"
            "           full-batch Nesterov gradient descent (one iteration = one epoch) with a\n"
            "           degree-3 least-squares sigmoid; beta and v are bootstrapped together (one\n"
            "           complex ciphertext) every 2 iterations at N = 2^16\n"
            "  softmax  multiclass softmax regression: not implemented yet\n"
            "  mlp      a small neural network: not implemented yet\n\n"
            "options:\n"
            "  --task T         logreg (softmax, mlp: not implemented yet)\n"
            "  --dataset NAME   mnist (default) or fashion-mnist\n"
            "  --classes A,B    the two classes (default 3,8)\n"
            "  --iters K        gradient-descent iterations (default 20)\n"
            "  --epochs E       the same as --iters E (full batch: every iteration reads every sample)\n"
            "  --log-n L        16 (default): the 128-bit bootstrapping preset (9 levels after a\n"
            "                   bootstrap, ~10-12 GB of memory); 10..14: INSECURE small parameters\n"
            "                   with the same level plan, for tests only\n"
            "  --train N        the first N training samples of the two classes (default: all)\n"
            "  --test N         test samples (default: all of the two classes in the test set)\n"
            "  --train-from-test  take the training samples from the test split too (the first\n"
            "                   --train of the two classes; the test samples are the ones after them)\n"
            "  --lr G           learning rate gamma (default 10); gamma_k = G / (k + 1)\n"
            "  --constant-lr    gamma_k = G\n"
            "  --no-nesterov    plain gradient descent\n"
            "  --bound B        the sigmoid is fitted on [-B, B] (default 12)\n"
            "  --weight-bound W beta and v are divided by W before a bootstrap (default 8; every\n"
            "                   |weight| must stay below it, the plaintext run checks)\n"
            "  --checkpoint F   save the encrypted state to F after every iteration (and the client's\n"
            "                   key seed to F.key, mode 0600: keep it as secret as a secret key)\n"
            "  --resume         continue the run saved in --checkpoint F (same options); if F does\n"
            "                   not exist yet, start afresh (with the key seed in F.key if there is one)\n"
            "  --stop-after K   for tests: stop after iteration K as if interrupted (exit 130)\n"
            "  --data-dir DIR   folder holding mnist/ and fashion-mnist/ (default: $CDL_DATA_DIR,\n"
            "                   ../shared/data)\n"
            "  --threads T      worker threads (default: all)\n"
            "  --json           one JSON object on stdout\n"
            "  -h, --help       this help\n\n"
            "Progress (one line per iteration, with an ETA) goes to stderr. Ctrl-C stops after the\n"
            "current iteration (a second Ctrl-C stops at once); the checkpoint stays whole.\n"
            "exit status: 0 done, 1 failure, 2 bad usage or not implemented, 130 interrupted\n\n"
            "examples:\n"
            "  cryptodl " CMD " --task logreg --dataset mnist --log-n 16 --threads 2 --iters 20 --json\n"
            "  cryptodl " CMD " --task logreg --log-n 16 --checkpoint run.ckpt --resume\n"
            "  cryptodl " CMD " --task logreg --log-n 12 --train-from-test --train 64 --iters 6   # INSECURE\n");
}

static volatile sig_atomic_t stop_requested = 0;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void format_duration(double s, char *buf, size_t cap)
{
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, cap, "?");
        return;
    }
    long t = lround(s);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm%02lds", t / 3600, t / 60 % 60, t % 60);
    else if (t >= 60)
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, cap, "%.1fs", s);
}

/* Write path atomically (temporary file + rename) with SIGINT and SIGTERM held off. */
static int write_atomic(const char *path, const uint8_t *data, size_t len)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    cdl_status st = cdl_write_file(path, data, len);
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (st != CDL_OK) {
        fprintf(stderr, "cryptodl " CMD ": %s\n", cdl_last_error());
        return -1;
    }
    return 0;
}

/* The checkpoint container: magic | u32 config length | config text | BLAKE2b of the key seed |
 * f64 server seconds | f64 bootstrap seconds | u64 length | the trainer's bytes | BLAKE2b of all before. */
typedef struct checkpoint {
    char *config;
    uint8_t key_id[32];
    double train_s, bootstrap_s;
    const uint8_t *state; /* into the file's bytes */
    size_t state_len;
} checkpoint;

static int checkpoint_write(const char *path, const char *config, const uint8_t key_id[32], double train_s,
                            double bootstrap_s, const uint8_t *state, size_t state_len)
{
    cdl_writer w;
    cdl_writer_init(&w);
    cdl_write_bytes(&w, CKPT_MAGIC, 8);
    cdl_write_u32(&w, (uint32_t)strlen(config));
    cdl_write_bytes(&w, config, strlen(config));
    cdl_write_bytes(&w, key_id, 32);
    cdl_write_f64(&w, train_s);
    cdl_write_f64(&w, bootstrap_s);
    cdl_write_u64(&w, state_len);
    cdl_write_bytes(&w, state, state_len);
    uint8_t sum[32];
    if (cdl_writer_status(&w) == CDL_OK) {
        crypto_generichash(sum, sizeof sum, w.data, w.len, NULL, 0);
        cdl_write_bytes(&w, sum, sizeof sum);
    }
    int rc = -1;
    if (cdl_writer_status(&w) != CDL_OK)
        fprintf(stderr, "cryptodl " CMD ": out of memory writing the checkpoint\n");
    else
        rc = write_atomic(path, w.data, w.len);
    cdl_writer_free(&w);
    return rc;
}

/* Parse the container in bytes (kept by the caller); -1 after a message. */
static int checkpoint_parse(const char *path, const uint8_t *bytes, size_t len, checkpoint *ck)
{
    memset(ck, 0, sizeof *ck);
    uint8_t sum[32];
    if (len < 8 + 32 || memcmp(bytes, CKPT_MAGIC, 8) != 0) {
        fprintf(stderr, "cryptodl " CMD ": %s is not a train-encrypted checkpoint\n", path);
        return -1;
    }
    crypto_generichash(sum, sizeof sum, bytes, len - 32, NULL, 0);
    if (sodium_memcmp(sum, bytes + len - 32, 32) != 0) {
        fprintf(stderr, "cryptodl " CMD ": %s is damaged (checksum mismatch)\n", path);
        return -1;
    }
    cdl_reader r;
    cdl_reader_init(&r, bytes + 8, len - 8 - 32);
    uint32_t clen = 0;
    uint64_t slen = 0;
    int ok = cdl_read_u32(&r, &clen) == CDL_OK && clen < 65536 && clen <= cdl_reader_remaining(&r);
    if (ok) {
        ck->config = calloc(clen + 1, 1);
        ok = ck->config && cdl_read_bytes(&r, ck->config, clen) == CDL_OK;
    }
    ok = ok && cdl_read_bytes(&r, ck->key_id, 32) == CDL_OK && cdl_read_f64(&r, &ck->train_s) == CDL_OK &&
         cdl_read_f64(&r, &ck->bootstrap_s) == CDL_OK && cdl_read_u64(&r, &slen) == CDL_OK &&
         slen == cdl_reader_remaining(&r);
    if (!ok) {
        fprintf(stderr, "cryptodl " CMD ": %s: malformed checkpoint\n", path);
        free(ck->config);
        ck->config = NULL;
        return -1;
    }
    ck->state = r.data + r.pos;
    ck->state_len = (size_t)slen;
    return 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int cmd_train_encrypted(int argc, char **argv)
{
    static const struct option opts[] = {{"task", required_argument, 0, 'a'},
                                         {"dataset", required_argument, 0, 'd'},
                                         {"classes", required_argument, 0, 'c'},
                                         {"iters", required_argument, 0, 'k'},
                                         {"epochs", required_argument, 0, 'E'},
                                         {"log-n", required_argument, 0, 'L'},
                                         {"train", required_argument, 0, 'n'},
                                         {"test", required_argument, 0, 'T'},
                                         {"train-from-test", no_argument, 0, 'F'},
                                         {"lr", required_argument, 0, 'g'},
                                         {"constant-lr", no_argument, 0, 'C'},
                                         {"no-nesterov", no_argument, 0, 'N'},
                                         {"bound", required_argument, 0, 'b'},
                                         {"weight-bound", required_argument, 0, 'W'},
                                         {"checkpoint", required_argument, 0, 'P'},
                                         {"resume", no_argument, 0, 'R'},
                                         {"data-dir", required_argument, 0, 'D'},
                                         {"threads", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"stop-after", required_argument, 0, 'S'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *task = "logreg", *dataset = "mnist", *data_dir = NULL, *ckpt_path = NULL;
    int class_a = 3, class_b = 8, json = 0, from_test = 0, threads = 0, resume = 0, c;
    long long iters = 0, epochs = 0, log_n = 16, n_train = 0, n_test = 0, stop_after = 0;
    cdl_logreg_config cfg;
    cdl_logreg_config_default(&cfg);
    cfg.learning_rate = 10.0;
    cfg.sigmoid_bound = 12.0;
    cfg.weight_bound = 8.0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'a': task = optarg; break;
        case 'd': dataset = optarg; break;
        case 'D': data_dir = optarg; break;
        case 'P': ckpt_path = optarg; break;
        case 'R': resume = 1; break;
        case 'c':
            if (sscanf(optarg, "%d,%d", &class_a, &class_b) != 2 || class_a < 0 || class_a > 9 || class_b < 0 ||
                class_b > 9 || class_a == class_b)
                return cli_usage_error(CMD, "--classes wants two different digits 0..9 as A,B, got '%s'", optarg);
            break;
        case 'k':
            if (cli_parse_positive(CMD, "--iters", optarg, &iters) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'E':
            if (cli_parse_positive(CMD, "--epochs", optarg, &epochs) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'L':
            if (cli_parse_positive(CMD, "--log-n", optarg, &log_n) != 0)
                return CLI_EXIT_USAGE;
            if (log_n != 16 && (log_n < 10 || log_n > 14))
                return cli_usage_error(CMD, "--log-n %lld: use 16 (128-bit) or 10..14 (INSECURE, for tests)", log_n);
            break;
        case 'n':
            if (cli_parse_positive(CMD, "--train", optarg, &n_train) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'T':
            if (cli_parse_positive(CMD, "--test", optarg, &n_test) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'F': from_test = 1; break;
        case 'g':
            cfg.learning_rate = strtod(optarg, &end);
            if (*end || !(cfg.learning_rate > 0) || !isfinite(cfg.learning_rate))
                return cli_usage_error(CMD, "--lr wants a positive number, got '%s'", optarg);
            break;
        case 'b':
            cfg.sigmoid_bound = strtod(optarg, &end);
            if (*end || !(cfg.sigmoid_bound > 0) || !(cfg.sigmoid_bound <= 1000))
                return cli_usage_error(CMD, "--bound wants a number in (0, 1000], got '%s'", optarg);
            break;
        case 'W':
            cfg.weight_bound = strtod(optarg, &end);
            if (*end || !(cfg.weight_bound > 0) || !(cfg.weight_bound <= 1024))
                return cli_usage_error(CMD, "--weight-bound wants a number in (0, 1024], got '%s'", optarg);
            break;
        case 'C': cfg.lr_decay = 0; break;
        case 'N': cfg.nesterov = 0; break;
        case 'j': json = 1; break;
        case 'S':
            if (cli_parse_positive(CMD, "--stop-after", optarg, &stop_after) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_threads(CMD, optarg, &threads) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(CMD, "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if (!strcmp(task, "softmax") || !strcmp(task, "mlp")) {
        fprintf(stderr,
                "cryptodl " CMD ": --task %s is not implemented yet; --task logreg is (binary logistic "
                "regression)\n",
                task);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(task, "logreg"))
        return cli_usage_error(CMD, "--task %s: use logreg (softmax and mlp are not implemented yet)", task);
    if (strcmp(dataset, "mnist") && strcmp(dataset, "fashion-mnist"))
        return cli_usage_error(CMD, "--dataset %s: use mnist or fashion-mnist", dataset);
    if (iters && epochs && iters != epochs)
        return cli_usage_error(CMD, "--iters %lld and --epochs %lld disagree: with full-batch gradient descent an "
                                    "iteration is an epoch; give one of them",
                               iters, epochs);
    if (iters > 1000 || epochs > 1000)
        return cli_usage_error(CMD, "--iters / --epochs: at most 1000");
    if (resume && !ckpt_path)
        return cli_usage_error(CMD, "--resume needs --checkpoint FILE");
    if (from_test && !n_train)
        return cli_usage_error(CMD, "--train-from-test needs --train N (the test samples are the ones after them)");
    cfg.iterations = (int)(iters ? iters : epochs ? epochs : 20);
    if (threads)
        cdl_set_threads(threads);

    char key_path[4096];
    if (ckpt_path && snprintf(key_path, sizeof key_path, "%s.key", ckpt_path) >= (int)sizeof key_path)
        return cli_usage_error(CMD, "--checkpoint path too long");
    int have_ckpt = ckpt_path && file_exists(ckpt_path), have_key = 0;
    if (have_ckpt && !resume) {
        fprintf(stderr,
                "cryptodl " CMD ": %s exists: pass --resume to continue that run, or remove it (and %s) to "
                "start afresh\n",
                ckpt_path, key_path);
        return CLI_EXIT_USAGE;
    }

    /* Parameters first: refuse a plan that cannot run before any work. */
    cdl_ckks_param_spec spec;
    cdl_ckks_bootstrap_params bparams;
    cdl_ckks_context *ctx = NULL;
    if (cdl_logreg_bootstrap_preset((int)log_n, &spec, &bparams) != CDL_OK ||
        cdl_ckks_context_new(&spec, &ctx) != CDL_OK)
        return cli_fail_status(CMD, "cannot create the CKKS context");
    const int secure = !spec.allow_insecure;
    const int boot_level = cdl_ckks_max_level(ctx) - cdl_ckks_bootstrap_depth(&bparams);
    const int per_iter = cdl_logreg_levels_per_iteration(cfg.sigmoid_degree);
    const int planned_boots = cdl_logreg_bootstraps_needed(boot_level, boot_level, cfg.iterations, cfg.sigmoid_degree);
    if (!secure)
        fprintf(stderr,
                "cryptodl " CMD ": INSECURE parameters (--log-n %lld): for tests only, never for real data; "
                "--log-n 16 is the 128-bit preset\n",
                log_n);

    int rc = CLI_EXIT_FAILURE, signals_set = 0;
    struct sigaction sa_int_old, sa_term_old;
    cdl_dataset *train = NULL, *test = NULL;
    double *xtr = NULL, *xte = NULL, *w_enc = NULL, *w_plain = NULL;
    int *ytr = NULL, *yte = NULL;
    size_t ntr = 0, nte = 0;
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL;
    cdl_ckks_bootstrapper *bt = NULL;
    cdl_ckks_bootstrap_keys *bk = NULL;
    cdl_rng *rng = NULL;
    cdl_logreg_encrypted_data *enc = NULL;
    cdl_logreg_encrypted_weights *ew = NULL;
    cdl_logreg_trainer *tr = NULL;
    uint8_t *ckpt_bytes = NULL, *key_bytes = NULL, *state = NULL;
    size_t ckpt_len = 0, key_len = 0, state_len = 0;
    checkpoint ck;
    memset(&ck, 0, sizeof ck);
    char *config = NULL;
    uint8_t seed[CDL_RNG_SEED_BYTES], key_id[32];
    sodium_memzero(seed, sizeof seed);

    int defaulted = data_dir == NULL;
    if (!data_dir)
        data_dir = cli_default_data_dir();
    fprintf(stderr, "cryptodl " CMD ": loading %s (classes %d vs %d)\n", dataset, class_a, class_b);
    if ((!from_test && lr_load_split(dataset, data_dir, defaulted, "train", &train) != 0) ||
        lr_load_split(dataset, data_dir, defaulted, "test", &test) != 0) {
        rc = cli_fail_status(CMD, "cannot load the dataset (give --data-dir; without the train split, "
                                  "--train-from-test trains on part of the test split)");
        goto done;
    }
    if (lr_select_task(from_test ? test : train, class_a, class_b, 0, (size_t)n_train, &xtr, &ytr, &ntr) != 0 ||
        lr_select_task(test, class_a, class_b, from_test ? (size_t)n_train : 0, (size_t)n_test, &xte, &yte, &nte) !=
            0) {
        fprintf(stderr, "cryptodl " CMD ": out of memory\n");
        goto done;
    }
    if (ntr == 0 || nte == 0) {
        fprintf(stderr, "cryptodl " CMD ": no %s samples of classes %d and %d\n", ntr == 0 ? "training" : "test",
                class_a, class_b);
        goto done;
    }
    w_enc = calloc(LR_FEATURES + 1, sizeof *w_enc);
    w_plain = calloc(LR_FEATURES + 1, sizeof *w_plain);
    if (!w_enc || !w_plain)
        goto done;
    if (planned_boots < 0) {
        fprintf(stderr, "cryptodl " CMD ": %d iterations cannot run at --log-n %lld (%d levels after a bootstrap)\n",
                cfg.iterations, log_n, boot_level);
        rc = CLI_EXIT_USAGE;
        goto done;
    }

    /* The same algorithm in plaintext: the reference, and a check that the weights stay inside W. */
    double t0 = cli_now_seconds();
    cdl_logreg_plain_stats pstats;
    if (cdl_logreg_train_plain_stats(xtr, ytr, ntr, LR_FEATURES, &cfg, w_plain, &pstats) != CDL_OK) {
        rc = cli_fail_status(CMD, "plaintext training failed");
        goto done;
    }
    const double t_plain = cli_now_seconds() - t0;
    if (!(pstats.max_abs_state < cfg.weight_bound))
        fprintf(stderr,
                "cryptodl " CMD ": WARNING: in plaintext the weights reach %.3g, not below --weight-bound %g: the "
                "bootstraps will lose precision or fail; raise --weight-bound\n",
                pstats.max_abs_state, cfg.weight_bound);

    /* What a checkpoint must agree on (the library checks the rest: parameters, shape, schedule). */
    {
        uint8_t dh[32];
        crypto_generichash_state hs;
        crypto_generichash_init(&hs, NULL, 0, sizeof dh);
        crypto_generichash_update(&hs, (const uint8_t *)xtr, ntr * LR_FEATURES * sizeof *xtr);
        crypto_generichash_update(&hs, (const uint8_t *)ytr, ntr * sizeof *ytr);
        crypto_generichash_final(&hs, dh, sizeof dh);
        char hex[65];
        sodium_bin2hex(hex, sizeof hex, dh, 16);
        config = malloc(1024);
        if (!config)
            goto done;
        snprintf(config, 1024,
                 "task=logreg dataset=%s classes=%d,%d train=%zu train_from_test=%d data=%s log_n=%lld iters=%d "
                 "lr=%.17g lr_decay=%d nesterov=%d degree=%d bound=%.17g weight_bound=%.17g",
                 dataset, class_a, class_b, ntr, from_test, hex, log_n, cfg.iterations, cfg.learning_rate,
                 cfg.lr_decay, cfg.nesterov, cfg.sigmoid_degree, cfg.sigmoid_bound, cfg.weight_bound);
    }
    if (have_ckpt) {
        if (cdl_read_file(ckpt_path, CKPT_MAX_BYTES, &ckpt_bytes, &ckpt_len) != CDL_OK) {
            rc = cli_fail_status(CMD, "cannot read the checkpoint");
            goto done;
        }
        if (checkpoint_parse(ckpt_path, ckpt_bytes, ckpt_len, &ck) != 0)
            goto done;
        if (strcmp(ck.config, config)) {
            fprintf(stderr,
                    "cryptodl " CMD ": %s belongs to another run:\n  saved:    %s\n  this run: %s\nuse the same "
                    "options, or another --checkpoint\n",
                    ckpt_path, ck.config, config);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        if (cdl_read_file(key_path, 1024, &key_bytes, &key_len) != CDL_OK || key_len != CDL_RNG_SEED_BYTES) {
            fprintf(stderr, "cryptodl " CMD ": cannot read the client's key seed %s (32 bytes)\n", key_path);
            goto done;
        }
        memcpy(seed, key_bytes, sizeof seed);
        crypto_generichash(key_id, sizeof key_id, seed, sizeof seed, NULL, 0);
        if (sodium_memcmp(key_id, ck.key_id, 32) != 0) {
            fprintf(stderr, "cryptodl " CMD ": %s is not the key seed of %s\n", key_path, ckpt_path);
            goto done;
        }
    } else if (resume) {
        /* an attempt stopped before its first checkpoint: the same run again, from its key seed if it left one */
        have_key = file_exists(key_path);
        if (have_key && (cdl_read_file(key_path, 1024, &key_bytes, &key_len) != CDL_OK || key_len != sizeof seed)) {
            fprintf(stderr, "cryptodl " CMD ": cannot read the client's key seed %s (32 bytes)\n", key_path);
            goto done;
        }
        if (have_key)
            memcpy(seed, key_bytes, sizeof seed);
        fprintf(stderr, "cryptodl " CMD ": no checkpoint at %s yet: starting from iteration 1%s\n", ckpt_path,
                have_key ? " with the key seed in the .key file" : "");
    }

    /* client: the key seed, then keys and encryption, all drawn from it in a fixed order */
    t0 = cli_now_seconds();
    cdl_status kst = have_ckpt || have_key ? cdl_rng_new_from_key(seed, &rng) : cdl_rng_new_system_keyed(seed, &rng);
    if (kst != CDL_OK) {
        rc = cli_fail_status(CMD, "cannot create the random generator");
        goto done;
    }
    crypto_generichash(key_id, sizeof key_id, seed, sizeof seed, NULL, 0);
    if (ckpt_path && !have_ckpt && !have_key && write_atomic(key_path, seed, sizeof seed) != 0)
        goto done;
    sodium_memzero(seed, sizeof seed);
    fprintf(stderr, "cryptodl " CMD ": client: keys (secret, relinearization, bootstrapping, rotations)%s\n",
            have_ckpt || have_key ? ", rebuilt from the saved key seed" : "");
    double t_setup = 0;
    {
        double ts = cli_now_seconds();
        if (cdl_ckks_bootstrapper_new(ctx, &bparams, &bt) != CDL_OK) {
            rc = cli_fail_status(CMD, "cannot set up bootstrapping");
            goto done;
        }
        t_setup = cli_now_seconds() - ts;
    }
    cdl_ckks_bootstrap_info binfo;
    int steps[CDL_LOGREG_MAX_STEPS], levels[CDL_LOGREG_MAX_STEPS];
    size_t nsteps = 0, row = 0, rows = 0;
    if (cdl_ckks_bootstrapper_info(bt, &binfo) != CDL_OK ||
        cdl_logreg_layout(ctx, LR_FEATURES, &row, &rows) != CDL_OK ||
        cdl_logreg_galois_steps(ctx, LR_FEATURES, steps, CDL_LOGREG_MAX_STEPS, &nsteps) != CDL_OK) {
        rc = cli_fail_status(CMD, "cannot lay out the data");
        goto done;
    }
    for (size_t i = 0; i < nsteps; i++)
        levels[i] = binfo.level_out;
    t0 = cli_now_seconds();
    if (cdl_ckks_keygen_secret(ctx, rng, &sk) != CDL_OK || cdl_ckks_keygen_relin(ctx, sk, rng, &rlk) != CDL_OK ||
        cdl_ckks_bootstrap_keygen(bt, sk, rng, &bk) != CDL_OK ||
        cdl_ckks_keygen_galois_levels(ctx, sk, steps, levels, nsteps, 1, rng, &gk) != CDL_OK) {
        rc = cli_fail_status(CMD, "key generation failed");
        goto done;
    }
    const double t_keys = cli_now_seconds() - t0;
    t0 = cli_now_seconds();
    fprintf(stderr, "cryptodl " CMD ": client: encrypting %zu samples at level %d (%zu per ciphertext)\n", ntr,
            binfo.level_out, rows);
    if (cdl_logreg_encrypt_dataset_level(ctx, sk, rng, xtr, ytr, ntr, LR_FEATURES, binfo.level_out, &enc) !=
        CDL_OK) {
        rc = cli_fail_status(CMD, "encryption failed");
        goto done;
    }
    const double t_enc = cli_now_seconds() - t0;

    /* server: evaluation keys and ciphertexts only */
    const char *fn_new = have_ckpt ? "cannot resume from the checkpoint" : "cannot start the training";
    cdl_status tst = have_ckpt ? cdl_logreg_trainer_load(ctx, rlk, gk, bt, bk, enc, &cfg, ck.state, ck.state_len, &tr)
                               : cdl_logreg_trainer_new(ctx, rlk, gk, bt, bk, enc, &cfg, &tr);
    if (tst != CDL_OK) {
        rc = cli_fail_status(CMD, fn_new);
        goto done;
    }
    const int resumed_from = cdl_logreg_trainer_iteration(tr);
    double train_before = have_ckpt ? ck.train_s : 0.0, boot_before = have_ckpt ? ck.bootstrap_s : 0.0;
    free(ckpt_bytes); /* ck.state pointed into it; the trainer has its own copies */
    ckpt_bytes = NULL;
    fprintf(stderr,
            "cryptodl " CMD ": server: %d iterations on %zu ciphertexts (N = 2^%lld, %s), %d levels per iteration, "
            "%d after a bootstrap, %d bootstraps planned\n",
            cfg.iterations, cdl_logreg_encrypted_data_ciphertexts(enc), log_n, secure ? "128-bit" : "INSECURE",
            per_iter, binfo.level_out, planned_boots);
    if (resumed_from)
        fprintf(stderr, "cryptodl " CMD ": resuming after iteration %d (%d bootstraps done)\n", resumed_from,
                cdl_logreg_trainer_bootstraps(tr));

    struct sigaction sa_stop;
    memset(&sa_stop, 0, sizeof sa_stop);
    sa_stop.sa_handler = on_stop_signal;
    sa_stop.sa_flags = SA_RESETHAND; /* a second Ctrl-C stops at once */
    sigemptyset(&sa_stop.sa_mask);
    stop_requested = 0;
    sigaction(SIGINT, &sa_stop, &sa_int_old);
    sigaction(SIGTERM, &sa_stop, &sa_term_old);
    signals_set = 1;

    const double run_start = cli_now_seconds();
    double timed = 0;
    int timed_count = 0;
    while (cdl_logreg_trainer_iteration(tr) < cfg.iterations) {
        if (stop_after && cdl_logreg_trainer_iteration(tr) >= stop_after)
            stop_requested = 1;
        if (stop_requested)
            break;
        const double ti = cli_now_seconds(), bs0 = cdl_logreg_trainer_bootstrap_seconds(tr);
        const int b0 = cdl_logreg_trainer_bootstraps(tr);
        if (cdl_logreg_trainer_step(tr) != CDL_OK) {
            rc = cli_fail_status(CMD, "encrypted training failed");
            goto done;
        }
        const int k = cdl_logreg_trainer_iteration(tr);
        const double dt = cli_now_seconds() - ti, dboot = cdl_logreg_trainer_bootstrap_seconds(tr) - bs0;
        if (k >= 2) {
            timed += dt;
            timed_count++;
        }
        if (ckpt_path) {
            if (cdl_logreg_trainer_save(tr, &state, &state_len) != CDL_OK) {
                rc = cli_fail_status(CMD, "cannot save the training state");
                goto done;
            }
            const double so_far = train_before + (cli_now_seconds() - run_start);
            int w = checkpoint_write(ckpt_path, config, key_id, so_far,
                                     boot_before + cdl_logreg_trainer_bootstrap_seconds(tr), state, state_len);
            cdl_free_bytes(state);
            state = NULL;
            if (w != 0)
                goto done;
        }
        char el[32], eta[32];
        format_duration(cli_now_seconds() - run_start, el, sizeof el);
        format_duration(timed_count ? timed / timed_count * (cfg.iterations - k) : 0.0, eta, sizeof eta);
        fprintf(stderr,
                "cryptodl " CMD ": iteration %d/%d: %.1f s, level %d, %d bootstraps; elapsed %s, ETA %s%s\n", k,
                cfg.iterations, dt, cdl_logreg_trainer_level(tr), cdl_logreg_trainer_bootstraps(tr), el,
                k < cfg.iterations ? eta : "0s", ckpt_path ? " (checkpoint saved)" : "");
        if (cdl_logreg_trainer_bootstraps(tr) > b0)
            fprintf(stderr, "cryptodl " CMD ":   (including a bootstrap of beta and v: %.1f s)\n", dboot);
    }
    if (stop_requested && cdl_logreg_trainer_iteration(tr) < cfg.iterations) {
        fprintf(stderr, "cryptodl " CMD ": interrupted after iteration %d of %d%s\n", cdl_logreg_trainer_iteration(tr),
                cfg.iterations,
                ckpt_path ? "; the checkpoint holds it: run again with --resume (same options) to continue"
                          : " (no --checkpoint: nothing saved)");
        rc = CLI_EXIT_INTERRUPTED;
        goto done;
    }
    const double t_train_run = cli_now_seconds() - run_start;
    const double t_train = train_before + t_train_run;
    const double t_boot = boot_before + cdl_logreg_trainer_bootstrap_seconds(tr);

    /* client: decryption */
    t0 = cli_now_seconds();
    if (cdl_logreg_trainer_weights(tr, &ew) != CDL_OK ||
        cdl_logreg_decrypt_weights(ctx, sk, ew, w_enc, LR_FEATURES + 1) != CDL_OK) {
        rc = cli_fail_status(CMD, "decryption failed");
        goto done;
    }
    const double t_dec = cli_now_seconds() - t0;
    double diff = 0, wmax = 0;
    for (size_t i = 0; i <= LR_FEATURES; i++) {
        diff = fmax(diff, fabs(w_enc[i] - w_plain[i]));
        wmax = fmax(wmax, fabs(w_plain[i]));
    }
    const double acc_enc = cdl_logreg_accuracy(w_enc, xte, yte, nte, LR_FEATURES);
    const double acc_plain = cdl_logreg_accuracy(w_plain, xte, yte, nte, LR_FEATURES);
    const double acc_train_enc = cdl_logreg_accuracy(w_enc, xtr, ytr, ntr, LR_FEATURES);
    const int boots = cdl_logreg_trainer_bootstraps(tr);
    const int its_run = cfg.iterations - resumed_from;
    /* A fingerprint of the final encrypted state (beta, v, counters): equal for a resumed and an uninterrupted
     * run from the same key seed (the arithmetic is deterministic). */
    char state_hex[65] = "";
    if (cdl_logreg_trainer_save(tr, &state, &state_len) == CDL_OK) {
        uint8_t h[32];
        crypto_generichash(h, sizeof h, state, state_len, NULL, 0);
        sodium_bin2hex(state_hex, sizeof state_hex, h, sizeof h);
        cdl_free_bytes(state);
        state = NULL;
    }
    if (json) {
        printf("{\"task\":\"logreg\",\"dataset\":");
        cli_json_string(dataset);
        printf(",\"classes\":[%d,%d],\"n_train\":%zu,\"n_test\":%zu,\"train_from_test\":%d,\"features\":%d,"
               "\"batch\":\"full\",\"iterations\":%d,\"epochs\":%d,\"bootstraps\":%d,\"resumed_from\":%d,"
               "\"log_n\":%lld,\"secure\":%s,\"log_qp\":%.1f,\"levels_after_bootstrap\":%d,"
               "\"levels_per_iteration\":%d,\"ciphertexts\":%zu,\"samples_per_ciphertext\":%zu,"
               "\"learning_rate\":%g,\"lr_decay\":%d,\"nesterov\":%d,\"sigmoid_degree\":%d,\"sigmoid_bound\":%g,"
               "\"weight_bound\":%g,\"max_abs_state_plain\":%.4g,\"max_abs_margin_plain\":%.4g,\"threads\":%d,"
               "\"train_s\":%.3f,\"bootstrap_s\":%.3f,\"train_s_this_run\":%.3f,\"iterations_this_run\":%d,"
               "\"keygen_s\":%.3f,\"bootstrap_setup_s\":%.3f,\"encrypt_s\":%.3f,\"decrypt_s\":%.3f,"
               "\"plaintext_train_s\":%.3f,\"encrypted_accuracy\":%.6f,\"plaintext_accuracy\":%.6f,"
               "\"encrypted_train_accuracy\":%.6f,\"max_weight_diff\":%.6g,\"max_weight\":%.6g,"
               "\"state_blake2b\":\"%s\",\"peak_rss_mb\":%.0f}\n",
               class_a, class_b, ntr, nte, from_test, LR_FEATURES, cfg.iterations, cfg.iterations, boots,
               resumed_from, log_n, secure ? "true" : "false", cdl_ckks_log_qp(ctx), binfo.level_out, per_iter,
               cdl_logreg_encrypted_data_ciphertexts(enc), rows, cfg.learning_rate, cfg.lr_decay, cfg.nesterov,
               cfg.sigmoid_degree, cfg.sigmoid_bound, cfg.weight_bound, pstats.max_abs_state,
               pstats.max_abs_margin, cdl_get_threads(), t_train, t_boot, t_train_run, its_run, t_keys, t_setup,
               t_enc, t_dec, t_plain, acc_enc, acc_plain, acc_train_enc, diff, wmax, state_hex, cli_peak_rss_mb());
    } else {
        printf("logistic regression trained on encrypted data with bootstrapping: %s, class %d (+1) vs %d (-1)\n",
               dataset, class_a, class_b);
        printf("  data        %zu training samples%s, %zu test samples, %d features + bias\n", ntr,
               from_test ? " (from the test split)" : "", nte, LR_FEATURES);
        printf("  CKKS        N = 2^%lld, log2(QP) = %.0f, %s; %d levels after a bootstrap\n", log_n,
               cdl_ckks_log_qp(ctx), secure ? "128-bit preset" : "INSECURE test parameters", binfo.level_out);
        printf("  packing     %zu samples per ciphertext, %zu ciphertexts\n", rows,
               cdl_logreg_encrypted_data_ciphertexts(enc));
        printf("  schedule    %d iterations (full batch), gamma = %g%s, %s, sigmoid on [-%g, %g]\n", cfg.iterations,
               cfg.learning_rate, cfg.lr_decay ? " / (k + 1)" : " (constant)", cfg.nesterov ? "Nesterov" : "plain GD",
               cfg.sigmoid_bound, cfg.sigmoid_bound);
        printf("  bootstraps  %d (beta and v together), %.1f s\n", boots, t_boot);
        printf("  time        train (server) %.1f s%s; keygen %.1f s, bootstrapping setup %.1f s, encrypt %.1f s, "
               "decrypt %.3f s (%d threads)\n",
               t_train, resumed_from ? " over the runs" : "", t_keys, t_setup, t_enc, t_dec, cdl_get_threads());
        printf("  accuracy    encrypted training %.2f%%, plaintext training %.2f%% (test set, %zu samples)\n",
               100 * acc_enc, 100 * acc_plain, nte);
        printf("  weights     max |encrypted - plaintext| = %.3g (largest weight %.3g)\n", diff, wmax);
        printf("  memory      peak %.0f MB\n", cli_peak_rss_mb());
    }
    rc = CLI_EXIT_OK;
done:
    if (signals_set) {
        sigaction(SIGINT, &sa_int_old, NULL);
        sigaction(SIGTERM, &sa_term_old, NULL);
    }
    sodium_memzero(seed, sizeof seed);
    if (key_bytes) {
        sodium_memzero(key_bytes, key_len);
        cdl_free_bytes(key_bytes);
    }
    free(ck.config);
    free(ckpt_bytes);
    free(config);
    cdl_logreg_trainer_free(tr);
    cdl_logreg_encrypted_weights_free(ew);
    cdl_logreg_encrypted_data_free(enc);
    cdl_ckks_galois_keys_free(gk);
    cdl_ckks_bootstrap_keys_free(bk);
    cdl_ckks_bootstrapper_free(bt);
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
