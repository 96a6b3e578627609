/*
 * cmd_train_encrypted.c: `cryptodl train-encrypted`: training on encrypted
 * data to convergence, with bootstrapping. The client (keys, encryption,
 * decryption) and the server (evaluation keys and ciphertexts only) run in
 * one process; the decrypted model is scored on the real test set and
 * compared with the same algorithm run in plaintext on the same data.
 *
 *  --task logreg   a binary task of MNIST or Fashion-MNIST (two classes, 14x14
 *                  average-pooled pixels in [0, 1] and a bias), full-batch
 *                  Nesterov gradient descent with a polynomial sigmoid
 *                  (src/learn/logreg.c);
 *  --task softmax  transfer learning: the client runs a shipped CNN's frozen
 *                  trunk in plaintext (the input of its last dense layer),
 *                  standardizes and encrypts the features and labels; the
 *                  server trains a multiclass softmax regression on them
 *                  (src/learn/softmax.c);
 *  --task mlp      a one-hidden-layer network trained end to end on encrypted
 *                  pixels (src/learn/mlp.c).
 *
 * Checkpoints (--checkpoint FILE): after every iteration the server's state
 * (ciphertexts, iteration, configuration) goes to FILE, and the client's
 * 32-byte key seed, from which the secret key, every evaluation key and the
 * encrypted data are drawn, to FILE.key (mode 0600, as secret as a secret
 * key). --resume rebuilds the same keys and ciphertexts from the seed, loads
 * the state and goes on: the same arithmetic, bit for bit, as a run that was
 * never interrupted. Files are written to a temporary name and renamed, with
 * Ctrl-C held off meanwhile: never half written.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "cli.h"
#include "core/bytes.h"
#include "core/error.h"
#include "cryptodl/cryptodl.h"
#include "learn_common.h"

#define CMD "train-encrypted"
#define CKPT_MAGIC "CDLTRCK1"
#define CKPT_MAX_BYTES ((size_t)1 << 34)
#define MC_CLIP 10.0 /* standardized features are clipped to [-10, 10] */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl " CMD " --task logreg|softmax|mlp [options]\n\n"
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
            "  softmax  multiclass softmax regression on encrypted CNN features (transfer learning,\n"
            "           as HETAL): the client runs the frozen trunk of a shipped model (--features)\n"
            "           in plaintext up to the input of its last dense layer, standardizes the\n"
            "           features (and adds a bias when the row has room) and encrypts them with the\n"
            "           labels; the server trains the 10-class last layer by full-batch Nesterov\n"
            "           gradient descent with the softmax replaced by its first-order Taylor\n"
            "           polynomial (a squared loss: no interval to leave); weights and momentum are\n"
            "           packed into one ciphertext per bootstrap, every 2 iterations\n"
            "  mlp      a 197-H-10 network (14x14 pooled pixels, standardized, and a bias; H hidden\n"
            "           units with a square activation) trained end to end on encrypted MNIST or\n"
            "           Fashion-MNIST: forward and backward passes on ciphertexts, mini-batch Nesterov\n"
            "           momentum on the Taylor-softmax squared loss; the weights and momentum are\n"
            "           packed into one ciphertext and bootstrapped once per update\n\n"
            "options:\n"
            "  --task T         logreg (default), softmax or mlp\n"
            "  --dataset NAME   mnist (default), fashion-mnist; cifar-10 (softmax only)\n"
            "  --classes A,B    logreg: the two classes (default 3,8)\n"
            "  --features M     softmax: the ONNX model whose trunk gives the features (default:\n"
            "                   models/mnist_compact.onnx, models/fashion_mnist_deep.onnx or\n"
            "                   models/cifar10_resnet9_herpn_kd3.onnx, also looked up under\n"
            "                   $CDL_SOURCE_DIR)\n"
            "  --features-cache F  softmax: keep the extracted features in F and reuse them when\n"
            "                   the model and the selection are the same (the CIFAR-10 trunk runs\n"
            "                   at a few images per second)\n"
            "  --iters K        gradient-descent iterations (default: logreg 20, softmax 10; mlp: updates,\n"
            "                   default 100)\n"
            "  --epochs E       the same as --iters E (full batch: every iteration reads every sample);\n"
            "                   mlp: as many updates as E passes over the training set take\n"
            "  --hidden H       mlp: hidden units, a power of two (default 64)\n"
            "  --batch N        mlp: samples per update, a multiple of the samples per ciphertext\n"
            "                   (128 at N = 2^16; default 1024)\n"
            "  --momentum M     mlp: Nesterov momentum (default 0.9; --no-nesterov: 0)\n"
            "  --seed S         mlp: seed of the initial weights (default 1)\n"
            "  --log-n L        16 (default): the 128-bit bootstrapping preset (9 levels after a\n"
            "                   bootstrap, ~10-13 GB of memory); 10..14: INSECURE small parameters\n"
            "                   with the same level plan, for tests only\n"
            "  --train N        the first N training samples (logreg: of the two classes; default all)\n"
            "  --test N         test samples (default: all)\n"
            "  --train-from-test  take the training samples from the test split too (the first\n"
            "                   --train; the test samples are the ones after them)\n"
            "  --lr G           learning rate gamma (logreg: 10, as G / (k + 1); softmax: 0.9 c /\n"
            "                   lambda_max of the client's standardized features, constant; mlp: 0.15)\n"
            "  --constant-lr    logreg: gamma_k = G\n"
            "  --lr-decay       softmax: gamma_k = G / (k + 1)\n"
            "  --no-nesterov    plain gradient descent\n"
            "  --bound B        logreg: the sigmoid is fitted on [-B, B] (default 12)\n"
            "  --weight-bound W the state is divided by W before a bootstrap (logreg 8, softmax 4, mlp 8;\n"
            "                   every |weight| must stay below it, the plaintext run checks)\n"
            "  --checkpoint F   save the encrypted state to F after every iteration (and the client's\n"
            "                   key seed to F.key, mode 0600: keep it as secret as a secret key)\n"
            "  --resume         continue the run saved in --checkpoint F (same options); if F does\n"
            "                   not exist yet, start afresh (with the key seed in F.key if there is one)\n"
            "  --stop-after K   for tests: stop after iteration K as if interrupted (exit 130)\n"
            "  --check-every K  mlp, debugging: after every K updates the client's side of this command\n"
            "                   decrypts the weights and compares them with the plaintext twin's after\n"
            "                   as many updates (stderr; --json: a \"checks\" array). Costs a\n"
            "                   plaintext rerun per check; the server side never sees a decryption\n"
            "  --data-dir DIR   folder holding mnist/, fashion-mnist/ and cifar-10-batches-bin/\n"
            "                   (default: $CDL_DATA_DIR, ../shared/data)\n"
            "  --threads T      worker threads (default: all)\n"
            "  --json           one JSON object on stdout\n"
            "  -h, --help       this help\n\n"
            "Progress (one line per iteration, with an ETA) goes to stderr. Ctrl-C stops after the\n"
            "current iteration (a second Ctrl-C stops at once); the checkpoint stays whole.\n"
            "exit status: 0 done, 1 failure, 2 bad usage, 130 interrupted\n\n"
            "examples:\n"
            "  cryptodl " CMD " --task logreg --dataset mnist --log-n 16 --threads 2 --iters 20 --json\n"
            "  cryptodl " CMD " --task logreg --log-n 16 --checkpoint run.ckpt --resume\n"
            "  cryptodl " CMD " --task logreg --log-n 12 --train-from-test --train 64 --iters 6   # INSECURE\n"
            "  cryptodl " CMD " --task softmax --dataset mnist --features models/mnist_compact.onnx --json\n"
            "  cryptodl " CMD " --task softmax --dataset cifar-10 --train 10000 --features-cache cifar.feat\n"
            "  cryptodl " CMD " --task mlp --dataset mnist --hidden 64 --batch 1024 --iters 100 --json\n");
}

/* ---- options ---- */

typedef struct options {
    const char *task, *dataset, *data_dir, *ckpt_path, *features, *features_cache;
    int class_a, class_b, json, from_test, threads, resume, defaulted;
    long long iters, epochs, log_n, n_train, n_test, stop_after, check_every;
    double lr, bound, weight_bound, momentum;
    int lr_set, bound_set, wb_set, constant_lr, lr_decay, no_nesterov, momentum_set;
    long long hidden, batch, seed; /* mlp */
} options;

/* ---- signals, durations, files ---- */

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

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- the checkpoint container ----
 * magic | u32 config length | config text | BLAKE2b of the key seed | f64 server seconds | f64 bootstrap seconds |
 * u64 length | the trainer's bytes | BLAKE2b of all before. */
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

/* ---- the session: key seed and checkpoint of one run ---- */
typedef struct session {
    const options *o;
    char key_path[4096];
    int have_ckpt, have_key;
    uint8_t seed[CDL_RNG_SEED_BYTES], key_id[32];
    uint8_t *ckpt_bytes, *key_bytes;
    size_t ckpt_len, key_len;
    checkpoint ck;
    char *config;
} session;

/* Before any work: the paths, and a finished checkpoint is not overwritten without --resume. -1: exit 2. */
static int session_begin(session *s, const options *o)
{
    memset(s, 0, sizeof *s);
    s->o = o;
    sodium_memzero(s->seed, sizeof s->seed);
    if (o->ckpt_path && snprintf(s->key_path, sizeof s->key_path, "%s.key", o->ckpt_path) >= (int)sizeof s->key_path) {
        cli_usage_error(CMD, "--checkpoint path too long");
        return -1;
    }
    s->have_ckpt = o->ckpt_path && file_exists(o->ckpt_path);
    if (s->have_ckpt && !o->resume) {
        fprintf(stderr,
                "cryptodl " CMD ": %s exists: pass --resume to continue that run, or remove it (and %s) to "
                "start afresh\n",
                o->ckpt_path, s->key_path);
        return -1;
    }
    return 0;
}

/* config: what a checkpoint must agree on. Reads the checkpoint and the key seed when resuming. 0, 2 (the
 * checkpoint belongs to another run: exit 2), or -1 after a message. */
static int session_open(session *s, char *config)
{
    const options *o = s->o;
    s->config = config;
    if (s->have_ckpt) {
        if (cdl_read_file(o->ckpt_path, CKPT_MAX_BYTES, &s->ckpt_bytes, &s->ckpt_len) != CDL_OK) {
            cli_fail_status(CMD, "cannot read the checkpoint");
            return -1;
        }
        if (checkpoint_parse(o->ckpt_path, s->ckpt_bytes, s->ckpt_len, &s->ck) != 0)
            return -1;
        if (strcmp(s->ck.config, config)) {
            fprintf(stderr,
                    "cryptodl " CMD ": %s belongs to another run:\n  saved:    %s\n  this run: %s\nuse the same "
                    "options, or another --checkpoint\n",
                    o->ckpt_path, s->ck.config, config);
            return 2;
        }
        if (cdl_read_file(s->key_path, 1024, &s->key_bytes, &s->key_len) != CDL_OK ||
            s->key_len != CDL_RNG_SEED_BYTES) {
            fprintf(stderr, "cryptodl " CMD ": cannot read the client's key seed %s (32 bytes)\n", s->key_path);
            return -1;
        }
        memcpy(s->seed, s->key_bytes, sizeof s->seed);
        crypto_generichash(s->key_id, sizeof s->key_id, s->seed, sizeof s->seed, NULL, 0);
        if (sodium_memcmp(s->key_id, s->ck.key_id, 32) != 0) {
            fprintf(stderr, "cryptodl " CMD ": %s is not the key seed of %s\n", s->key_path, o->ckpt_path);
            return -1;
        }
    } else if (o->resume) {
        /* an attempt stopped before its first checkpoint: the same run again, from its key seed if it left one */
        s->have_key = file_exists(s->key_path);
        if (s->have_key &&
            (cdl_read_file(s->key_path, 1024, &s->key_bytes, &s->key_len) != CDL_OK || s->key_len != sizeof s->seed)) {
            fprintf(stderr, "cryptodl " CMD ": cannot read the client's key seed %s (32 bytes)\n", s->key_path);
            return -1;
        }
        if (s->have_key)
            memcpy(s->seed, s->key_bytes, sizeof s->seed);
        fprintf(stderr, "cryptodl " CMD ": no checkpoint at %s yet: starting from iteration 1%s\n", o->ckpt_path,
                s->have_key ? " with the key seed in the .key file" : "");
    }
    return 0;
}

/* The client's generator: from the saved seed, or a fresh one (saved to F.key with --checkpoint). 0 or -1. */
static int session_rng(session *s, cdl_rng **rng)
{
    const options *o = s->o;
    cdl_status kst = s->have_ckpt || s->have_key ? cdl_rng_new_from_key(s->seed, rng)
                                                 : cdl_rng_new_system_keyed(s->seed, rng);
    if (kst != CDL_OK) {
        cli_fail_status(CMD, "cannot create the random generator");
        return -1;
    }
    crypto_generichash(s->key_id, sizeof s->key_id, s->seed, sizeof s->seed, NULL, 0);
    if (o->ckpt_path && !s->have_ckpt && !s->have_key && write_atomic(s->key_path, s->seed, sizeof s->seed) != 0)
        return -1;
    sodium_memzero(s->seed, sizeof s->seed);
    return 0;
}

/* The trainer's bytes no longer need the file's (the trainer holds copies). */
static void session_drop_bytes(session *s)
{
    free(s->ckpt_bytes);
    s->ckpt_bytes = NULL;
    s->ck.state = NULL;
    s->ck.state_len = 0;
}

static void session_end(session *s)
{
    sodium_memzero(s->seed, sizeof s->seed);
    if (s->key_bytes) {
        sodium_memzero(s->key_bytes, s->key_len);
        cdl_free_bytes(s->key_bytes);
    }
    free(s->ck.config);
    free(s->ckpt_bytes);
    free(s->config);
    memset(s, 0, sizeof *s);
}

/* BLAKE2b of training arrays, as hex (16 bytes): part of a checkpoint's configuration. Returns hex. */
static const char *data_hash_hex(const void *a, size_t alen, const void *b, size_t blen, char hex[33])
{
    uint8_t dh[16];
    crypto_generichash_state hs;
    crypto_generichash_init(&hs, NULL, 0, sizeof dh);
    crypto_generichash_update(&hs, (const uint8_t *)a, alen);
    crypto_generichash_update(&hs, (const uint8_t *)b, blen);
    crypto_generichash_final(&hs, dh, sizeof dh);
    sodium_bin2hex(hex, 33, dh, sizeof dh);
    return hex;
}

/* data_hash_hex of the training features (n_train x d) and their labels. */
static const char *features_hash_hex(const mc_features *F, size_t d, char hex[33])
{
    return data_hash_hex(F->x_train, F->n_train * d * sizeof *F->x_train, F->y_train,
                         F->n_train * sizeof *F->y_train, hex);
}

/* ---- the training loop, the same for every trainer ---- */
typedef struct trainer_ops {
    cdl_status (*step)(void *tr);
    int (*iteration)(const void *tr);
    int (*bootstraps)(const void *tr);
    double (*bootstrap_seconds)(const void *tr);
    int (*level)(const void *tr);
    cdl_status (*save)(const void *tr, uint8_t **data, size_t *len);
    const char *state_name; /* "beta and v", "the weights and momentum" */
} trainer_ops;

/* The trainer_ops of cdl_<kind>_trainer: its functions behind void pointers. */
#define TRAINER_OPS(name, kind, state)                                                                              \
    static cdl_status kind##_step(void *t) { return cdl_##kind##_trainer_step(t); }                                \
    static int kind##_iteration(const void *t) { return cdl_##kind##_trainer_iteration(t); }                       \
    static int kind##_bootstraps(const void *t) { return cdl_##kind##_trainer_bootstraps(t); }                     \
    static double kind##_boot_s(const void *t) { return cdl_##kind##_trainer_bootstrap_seconds(t); }               \
    static int kind##_level(const void *t) { return cdl_##kind##_trainer_level(t); }                               \
    static cdl_status kind##_save(const void *t, uint8_t **d, size_t *l)                                           \
    {                                                                                                              \
        return cdl_##kind##_trainer_save(t, d, l);                                                                 \
    }                                                                                                              \
    static const trainer_ops name = {kind##_step, kind##_iteration, kind##_bootstraps, kind##_boot_s, kind##_level,  \
                                     kind##_save, state}

/* Optional debugging hook, run after every `every` updates and after the last: nonzero stops the run. */
typedef struct update_check {
    int (*fn)(void *arg, int update);
    void *arg;
    int every;
} update_check;

typedef struct loop_result {
    double t_run; /* seconds of this run's iterations */
    int resumed_from;
} loop_result;

/* Runs the remaining iterations with progress, checkpoints and Ctrl-C. CLI_EXIT_OK when all are done,
 * CLI_EXIT_INTERRUPTED, or CLI_EXIT_FAILURE after a message. */
static int train_loop(const trainer_ops *ops, void *tr, int iterations, session *s, double train_before,
                      double boot_before, double setup_s, const update_check *check, loop_result *res)
{
    const options *o = s->o;
    struct sigaction sa_stop, sa_int_old, sa_term_old;
    memset(&sa_stop, 0, sizeof sa_stop);
    sa_stop.sa_handler = on_stop_signal;
    sa_stop.sa_flags = SA_RESETHAND; /* a second Ctrl-C stops at once */
    sigemptyset(&sa_stop.sa_mask);
    stop_requested = 0;
    sigaction(SIGINT, &sa_stop, &sa_int_old);
    sigaction(SIGTERM, &sa_stop, &sa_term_old);
    int rc = CLI_EXIT_OK;
    const double run_start = cli_now_seconds();
    double timed = 0;
    int timed_count = 0;
    uint8_t *state = NULL;
    size_t state_len = 0;
    while (ops->iteration(tr) < iterations) {
        if (o->stop_after && ops->iteration(tr) >= o->stop_after)
            stop_requested = 1;
        if (stop_requested)
            break;
        const double ti = cli_now_seconds(), bs0 = ops->bootstrap_seconds(tr);
        const int b0 = ops->bootstraps(tr);
        if (ops->step(tr) != CDL_OK) {
            rc = cli_fail_status(CMD, "encrypted training failed");
            goto done;
        }
        const int k = ops->iteration(tr);
        const double dt = cli_now_seconds() - ti, dboot = ops->bootstrap_seconds(tr) - bs0;
        if (k >= 2) {
            timed += dt;
            timed_count++;
        }
        if (o->ckpt_path) {
            if (ops->save(tr, &state, &state_len) != CDL_OK) {
                rc = cli_fail_status(CMD, "cannot save the training state");
                goto done;
            }
            const double so_far = train_before + setup_s + (cli_now_seconds() - run_start);
            int w = checkpoint_write(o->ckpt_path, s->config, s->key_id, so_far, boot_before + ops->bootstrap_seconds(tr),
                                     state, state_len);
            cdl_free_bytes(state);
            state = NULL;
            if (w != 0) {
                rc = CLI_EXIT_FAILURE;
                goto done;
            }
        }
        char el[32], eta[32];
        format_duration(cli_now_seconds() - run_start, el, sizeof el);
        format_duration(timed_count ? timed / timed_count * (iterations - k) : 0.0, eta, sizeof eta);
        fprintf(stderr,
                "cryptodl " CMD ": iteration %d/%d: %.1f s, level %d, %d bootstraps; elapsed %s, ETA %s%s\n", k,
                iterations, dt, ops->level(tr), ops->bootstraps(tr), el, k < iterations ? eta : "0s",
                o->ckpt_path ? " (checkpoint saved)" : "");
        if (ops->bootstraps(tr) > b0)
            fprintf(stderr, "cryptodl " CMD ":   (including a bootstrap of %s: %.1f s)\n", ops->state_name, dboot);
        if (check && (k % check->every == 0 || k == iterations) && check->fn(check->arg, k) != 0) {
            rc = CLI_EXIT_FAILURE;
            goto done;
        }
    }
    if (stop_requested && ops->iteration(tr) < iterations) {
        fprintf(stderr, "cryptodl " CMD ": interrupted after iteration %d of %d%s\n", ops->iteration(tr), iterations,
                o->ckpt_path ? "; the checkpoint holds it: run again with --resume (same options) to continue"
                             : " (no --checkpoint: nothing saved)");
        rc = CLI_EXIT_INTERRUPTED;
    }
done:
    sigaction(SIGINT, &sa_int_old, NULL);
    sigaction(SIGTERM, &sa_term_old, NULL);
    res->t_run = cli_now_seconds() - run_start;
    return rc;
}

/* A fingerprint of the final encrypted state (ciphertexts, counters): equal for a resumed and an uninterrupted
 * run from the same key seed (the arithmetic is deterministic). */
static void state_fingerprint(const trainer_ops *ops, void *tr, char hex[65])
{
    uint8_t *state = NULL;
    size_t len = 0;
    hex[0] = 0;
    if (ops->save(tr, &state, &len) == CDL_OK) {
        uint8_t h[32];
        crypto_generichash(h, sizeof h, state, len, NULL, 0);
        sodium_bin2hex(hex, 65, h, sizeof h);
        cdl_free_bytes(state);
    }
}

/* ---- parameters shared by the tasks ---- */
typedef struct params {
    cdl_ckks_param_spec spec;
    cdl_ckks_bootstrap_params bparams;
    cdl_ckks_context *ctx;
    int secure, boot_level;
} params;

static int params_make(const options *o, params *p)
{
    memset(p, 0, sizeof *p);
    if (cdl_logreg_bootstrap_preset((int)o->log_n, &p->spec, &p->bparams) != CDL_OK ||
        cdl_ckks_context_new(&p->spec, &p->ctx) != CDL_OK)
        return cli_fail_status(CMD, "cannot create the CKKS context");
    p->secure = !p->spec.allow_insecure;
    p->boot_level = cdl_ckks_max_level(p->ctx) - cdl_ckks_bootstrap_depth(&p->bparams);
    if (!p->secure)
        fprintf(stderr,
                "cryptodl " CMD ": INSECURE parameters (--log-n %lld): for tests only, never for real data; "
                "--log-n 16 is the 128-bit preset\n",
                o->log_n);
    return 0;
}

/* The client's keys: secret, relinearization, bootstrapping, and the rotations (at the bootstrap's output level,
 * plus conjugation if asked). */
typedef struct keyset {
    cdl_ckks_secret_key *sk;
    cdl_ckks_relin_key *rlk;
    cdl_ckks_galois_keys *gk;
    cdl_ckks_bootstrapper *bt;
    cdl_ckks_bootstrap_keys *bk;
    cdl_ckks_bootstrap_info binfo;
    double t_setup, t_keys;
} keyset;

static int keys_make(const params *p, cdl_rng *rng, const int *steps, size_t nsteps, int conjugate, int resumed,
                     keyset *k)
{
    memset(k, 0, sizeof *k);
    fprintf(stderr, "cryptodl " CMD ": client: keys (secret, relinearization, bootstrapping, rotations)%s\n",
            resumed ? ", rebuilt from the saved key seed" : "");
    double ts = cli_now_seconds();
    if (cdl_ckks_bootstrapper_new(p->ctx, &p->bparams, &k->bt) != CDL_OK ||
        cdl_ckks_bootstrapper_info(k->bt, &k->binfo) != CDL_OK)
        return cli_fail_status(CMD, "cannot set up bootstrapping");
    k->t_setup = cli_now_seconds() - ts;
    int levels[128];
    if (nsteps > 128)
        return cli_fail_status(CMD, "too many rotation steps");
    for (size_t i = 0; i < nsteps; i++)
        levels[i] = k->binfo.level_out;
    ts = cli_now_seconds();
    if (cdl_ckks_keygen_secret(p->ctx, rng, &k->sk) != CDL_OK || cdl_ckks_keygen_relin(p->ctx, k->sk, rng, &k->rlk) != CDL_OK ||
        cdl_ckks_bootstrap_keygen(k->bt, k->sk, rng, &k->bk) != CDL_OK ||
        cdl_ckks_keygen_galois_levels(p->ctx, k->sk, steps, levels, nsteps, conjugate, rng, &k->gk) != CDL_OK)
        return cli_fail_status(CMD, "key generation failed");
    k->t_keys = cli_now_seconds() - ts;
    return 0;
}

static void keys_free(keyset *k)
{
    cdl_ckks_galois_keys_free(k->gk);
    cdl_ckks_bootstrap_keys_free(k->bk);
    cdl_ckks_bootstrapper_free(k->bt);
    cdl_ckks_relin_key_free(k->rlk);
    cdl_ckks_secret_key_free(k->sk);
    memset(k, 0, sizeof *k);
}

/* ======================= what every task's run shares ======================= */

/* One run of a task, around its model: the session (checkpoint and key seed), the CKKS parameters, the client's
 * generator and keys, and what the checkpoint says of the runs before this one. */
typedef struct job {
    const options *o;
    session s;
    params P;
    keyset K;
    cdl_rng *rng;
    int resumed_from;                 /* iterations the runs before did */
    double train_before, boot_before; /* their server and bootstrap seconds */
    loop_result loop;                 /* this run's iterations */
} job;

/* Before any work: the checkpoint's paths, then the parameters (a plan that cannot run is refused before any
 * work). 0, or the exit code after a message. */
static int job_begin(job *j, const options *o)
{
    memset(j, 0, sizeof *j);
    j->o = o;
    if (session_begin(&j->s, o) != 0)
        return CLI_EXIT_USAGE;
    if (params_make(o, &j->P) != 0) {
        session_end(&j->s);
        return CLI_EXIT_FAILURE;
    }
    return 0;
}

static void job_end(job *j)
{
    keys_free(&j->K);
    cdl_rng_free(j->rng);
    cdl_ckks_context_free(j->P.ctx);
    session_end(&j->s);
}

/* The iterations cannot run at these parameters: CLI_EXIT_USAGE after a message. */
static int job_refuse_plan(const job *j, int iterations)
{
    fprintf(stderr, "cryptodl " CMD ": %d iterations cannot run at --log-n %lld (%d levels after a bootstrap)\n",
            iterations, j->o->log_n, j->P.boot_level);
    return CLI_EXIT_USAGE;
}

/* The splits a task reads: the test split, and the train split unless --train-from-test. 0, or
 * CLI_EXIT_FAILURE after a message. */
static int load_splits(const options *o, cdl_dataset **train, cdl_dataset **test)
{
    const char *data_dir = o->data_dir ? o->data_dir : cli_default_data_dir();
    if ((!o->from_test && lr_load_split(o->dataset, data_dir, o->defaulted, "train", train) != 0) ||
        lr_load_split(o->dataset, data_dir, o->defaulted, "test", test) != 0)
        return cli_fail_status(CMD, "cannot load the dataset (give --data-dir; without the train split, "
                                    "--train-from-test trains on part of the test split)");
    return 0;
}

/* The selections (--train, --test, --train-from-test) of the loaded splits into F: the labels, and with `pooled`
 * the 14x14 pooled pixels. 0, or -1 after a message. */
static int select_samples(const options *o, const cdl_dataset *train, const cdl_dataset *test, int pooled,
                          mc_features *F)
{
    if (mc_select(o->from_test ? test : train, 0, (size_t)o->n_train, pooled, &F->x_train, &F->y_train,
                  &F->n_train) != 0 ||
        mc_select(test, o->from_test ? (size_t)o->n_train : 0, (size_t)o->n_test, pooled, &F->x_test, &F->y_test,
                  &F->n_test) != 0) {
        fprintf(stderr, "cryptodl " CMD ": out of memory\n");
        return -1;
    }
    if (F->n_train == 0 || F->n_test == 0) {
        fprintf(stderr, "cryptodl " CMD ": no %s samples\n", F->n_train == 0 ? "training" : "test");
        return -1;
    }
    return 0;
}

/* The plaintext twin shows whether the weights stay inside the bound the state is divided by for a bootstrap. */
static void warn_weight_bound(double max_state, double bound, const char *advice)
{
    if (!(max_state < bound))
        fprintf(stderr,
                "cryptodl " CMD ": WARNING: in plaintext the weights reach %.3g, not below --weight-bound %g: the "
                "bootstraps will lose precision or fail; %s\n",
                max_state, bound, advice);
}

/* The client, after the plaintext twin: what a checkpoint must agree on (printf-style; the library checks the
 * rest: parameters, shape, schedule), then the key seed, then the keys for these rotation steps (and the
 * conjugation if asked), all drawn from the seed in a fixed order, as the encryption after them. 0, or the exit
 * code after a message (CLI_EXIT_USAGE: the checkpoint belongs to another run). */
static int job_keys(job *j, const int *steps, size_t nsteps, int conjugate, const char *config_fmt, ...)
    CDL_PRINTF(5, 6);
static int job_keys(job *j, const int *steps, size_t nsteps, int conjugate, const char *config_fmt, ...)
{
    char *config = malloc(1024);
    if (!config)
        return CLI_EXIT_FAILURE;
    va_list ap;
    va_start(ap, config_fmt);
    vsnprintf(config, 1024, config_fmt, ap);
    va_end(ap);
    const int r = session_open(&j->s, config); /* the session owns config now */
    if (r != 0)
        return r == 2 ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
    if (session_rng(&j->s, &j->rng) != 0 ||
        keys_make(&j->P, j->rng, steps, nsteps, conjugate, j->s.have_ckpt || j->s.have_key, &j->K) != 0)
        return CLI_EXIT_FAILURE;
    return 0;
}

/* The server's trainer, made afresh or loaded from the checkpoint (made: the library's answer), and what the
 * checkpoint says of the runs before. 0, or CLI_EXIT_FAILURE after a message. */
static int job_trainer(job *j, cdl_status made, const trainer_ops *ops, const void *tr)
{
    if (made != CDL_OK)
        return cli_fail_status(CMD, j->s.have_ckpt ? "cannot resume from the checkpoint" : "cannot start the training");
    j->resumed_from = ops->iteration(tr);
    j->train_before = j->s.have_ckpt ? j->s.ck.train_s : 0.0;
    j->boot_before = j->s.have_ckpt ? j->s.ck.bootstrap_s : 0.0;
    session_drop_bytes(&j->s);
    return 0;
}

/* The remaining iterations (train_loop's exit codes); setup_s: server seconds before the first iteration. */
static int job_train(job *j, const trainer_ops *ops, void *tr, int iterations, double setup_s,
                     const update_check *check)
{
    return train_loop(ops, tr, iterations, &j->s, j->train_before, j->boot_before, setup_s, check, &j->loop);
}

/* max |enc - plain| and max |plain| over n weights, folded into *diff and *wmax. */
static void weight_diff(const double *enc, const double *plain, size_t n, double *diff, double *wmax)
{
    for (size_t i = 0; i < n; i++) {
        *diff = fmax(*diff, fabs(enc[i] - plain[i]));
        *wmax = fmax(*wmax, fabs(plain[i]));
    }
}

/* ---- the output: the parts every task prints, each in its place ---- */

static void json_run(const job *j, int bootstraps, int per_iteration)
{
    printf("\"bootstraps\":%d,\"resumed_from\":%d,\"log_n\":%lld,\"secure\":%s,\"log_qp\":%.1f,"
           "\"levels_after_bootstrap\":%d,\"levels_per_iteration\":%d,",
           bootstraps, j->resumed_from, j->o->log_n, j->P.secure ? "true" : "false", cdl_ckks_log_qp(j->P.ctx),
           j->K.binfo.level_out, per_iteration);
}

static void json_client_times(const job *j, double t_enc, double t_dec, double t_plain)
{
    printf("\"keygen_s\":%.3f,\"bootstrap_setup_s\":%.3f,\"encrypt_s\":%.3f,\"decrypt_s\":%.3f,"
           "\"plaintext_train_s\":%.3f,",
           j->K.t_keys, j->K.t_setup, t_enc, t_dec, t_plain);
}

/* The last members (the caller closes the object). */
static void json_weights(double diff, double wmax, const char *state_hex)
{
    printf("\"max_weight_diff\":%.6g,\"max_weight\":%.6g,\"state_blake2b\":\"%s\",\"peak_rss_mb\":%.0f", diff, wmax,
           state_hex, cli_peak_rss_mb());
}

static void text_ckks(const job *j)
{
    printf("  CKKS        N = 2^%lld, log2(QP) = %.0f, %s; %d levels after a bootstrap\n", j->o->log_n,
           cdl_ckks_log_qp(j->P.ctx), j->P.secure ? "128-bit preset" : "INSECURE test parameters",
           j->K.binfo.level_out);
}

static void text_accuracy(double acc_enc, double acc_plain, size_t n_test)
{
    printf("  accuracy    encrypted training %.2f%%, plaintext training %.2f%% (test set, %zu samples)\n",
           100 * acc_enc, 100 * acc_plain, n_test);
}

static void text_weights(double diff, double wmax)
{
    printf("  weights     max |encrypted - plaintext| = %.3g (largest weight %.3g)\n", diff, wmax);
    printf("  memory      peak %.0f MB\n", cli_peak_rss_mb());
}

/* ======================= logistic regression ======================= */

TRAINER_OPS(LOGREG_OPS, logreg, "beta and v");

static int run_logreg(const options *o)
{
    const char *dataset = o->dataset;
    const int class_a = o->class_a, class_b = o->class_b, from_test = o->from_test;
    cdl_logreg_config cfg;
    cdl_logreg_config_default(&cfg);
    cfg.learning_rate = o->lr_set ? o->lr : 10.0;
    cfg.sigmoid_bound = o->bound_set ? o->bound : 12.0;
    cfg.weight_bound = o->wb_set ? o->weight_bound : 8.0;
    if (o->constant_lr)
        cfg.lr_decay = 0;
    if (o->no_nesterov)
        cfg.nesterov = 0;
    cfg.iterations = (int)(o->iters ? o->iters : o->epochs ? o->epochs : 20);
    job J;
    int rc = job_begin(&J, o);
    if (rc != 0)
        return rc;
    const int per_iter = cdl_logreg_levels_per_iteration(cfg.sigmoid_degree);
    const int planned_boots =
        cdl_logreg_bootstraps_needed(J.P.boot_level, J.P.boot_level, cfg.iterations, cfg.sigmoid_degree);

    rc = CLI_EXIT_FAILURE;
    cdl_dataset *train = NULL, *test = NULL;
    double *xtr = NULL, *xte = NULL, *w_enc = NULL, *w_plain = NULL;
    int *ytr = NULL, *yte = NULL;
    size_t ntr = 0, nte = 0;
    cdl_logreg_encrypted_data *enc = NULL;
    cdl_logreg_encrypted_weights *ew = NULL;
    cdl_logreg_trainer *tr = NULL;

    fprintf(stderr, "cryptodl " CMD ": loading %s (classes %d vs %d)\n", dataset, class_a, class_b);
    if (load_splits(o, &train, &test) != 0)
        goto done;
    if (lr_select_task(from_test ? test : train, class_a, class_b, 0, (size_t)o->n_train, &xtr, &ytr, &ntr) != 0 ||
        lr_select_task(test, class_a, class_b, from_test ? (size_t)o->n_train : 0, (size_t)o->n_test, &xte, &yte,
                       &nte) != 0) {
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
        rc = job_refuse_plan(&J, cfg.iterations);
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
    warn_weight_bound(pstats.max_abs_state, cfg.weight_bound, "raise --weight-bound");

    /* client: the key seed, then keys and encryption, all drawn from it in a fixed order */
    int steps[CDL_LOGREG_MAX_STEPS];
    size_t nsteps = 0, row = 0, rows = 0;
    if (cdl_logreg_layout(J.P.ctx, LR_FEATURES, &row, &rows) != CDL_OK ||
        cdl_logreg_galois_steps(J.P.ctx, LR_FEATURES, steps, CDL_LOGREG_MAX_STEPS, &nsteps) != CDL_OK) {
        rc = cli_fail_status(CMD, "cannot lay out the data");
        goto done;
    }
    char hex[33];
    if ((rc = job_keys(&J, steps, nsteps, 1,
                       "task=logreg dataset=%s classes=%d,%d train=%zu train_from_test=%d data=%s log_n=%lld "
                       "iters=%d lr=%.17g lr_decay=%d nesterov=%d degree=%d bound=%.17g weight_bound=%.17g",
                       dataset, class_a, class_b, ntr, from_test,
                       data_hash_hex(xtr, ntr * LR_FEATURES * sizeof *xtr, ytr, ntr * sizeof *ytr, hex), o->log_n,
                       cfg.iterations, cfg.learning_rate, cfg.lr_decay, cfg.nesterov, cfg.sigmoid_degree,
                       cfg.sigmoid_bound, cfg.weight_bound)) != 0)
        goto done;
    rc = CLI_EXIT_FAILURE;
    t0 = cli_now_seconds();
    fprintf(stderr, "cryptodl " CMD ": client: encrypting %zu samples at level %d (%zu per ciphertext)\n", ntr,
            J.K.binfo.level_out, rows);
    if (cdl_logreg_encrypt_dataset_level(J.P.ctx, J.K.sk, J.rng, xtr, ytr, ntr, LR_FEATURES, J.K.binfo.level_out,
                                         &enc) != CDL_OK) {
        rc = cli_fail_status(CMD, "encryption failed");
        goto done;
    }
    const double t_enc = cli_now_seconds() - t0;

    /* server: evaluation keys and ciphertexts only */
    const keyset *K = &J.K;
    const cdl_status made =
        J.s.have_ckpt ? cdl_logreg_trainer_load(J.P.ctx, K->rlk, K->gk, K->bt, K->bk, enc, &cfg, J.s.ck.state,
                                                J.s.ck.state_len, &tr)
                      : cdl_logreg_trainer_new(J.P.ctx, K->rlk, K->gk, K->bt, K->bk, enc, &cfg, &tr);
    if (job_trainer(&J, made, &LOGREG_OPS, tr) != 0)
        goto done;
    fprintf(stderr,
            "cryptodl " CMD ": server: %d iterations on %zu ciphertexts (N = 2^%lld, %s), %d levels per iteration, "
            "%d after a bootstrap, %d bootstraps planned\n",
            cfg.iterations, cdl_logreg_encrypted_data_ciphertexts(enc), o->log_n, J.P.secure ? "128-bit" : "INSECURE",
            per_iter, K->binfo.level_out, planned_boots);
    if (J.resumed_from)
        fprintf(stderr, "cryptodl " CMD ": resuming after iteration %d (%d bootstraps done)\n", J.resumed_from,
                cdl_logreg_trainer_bootstraps(tr));
    if ((rc = job_train(&J, &LOGREG_OPS, tr, cfg.iterations, 0.0, NULL)) != CLI_EXIT_OK)
        goto done;
    rc = CLI_EXIT_FAILURE;
    const double t_train = J.train_before + J.loop.t_run;
    const double t_boot = J.boot_before + cdl_logreg_trainer_bootstrap_seconds(tr);

    /* client: decryption */
    t0 = cli_now_seconds();
    if (cdl_logreg_trainer_weights(tr, &ew) != CDL_OK ||
        cdl_logreg_decrypt_weights(J.P.ctx, K->sk, ew, w_enc, LR_FEATURES + 1) != CDL_OK) {
        rc = cli_fail_status(CMD, "decryption failed");
        goto done;
    }
    const double t_dec = cli_now_seconds() - t0;
    double diff = 0, wmax = 0;
    weight_diff(w_enc, w_plain, LR_FEATURES + 1, &diff, &wmax);
    const double acc_enc = cdl_logreg_accuracy(w_enc, xte, yte, nte, LR_FEATURES);
    const double acc_plain = cdl_logreg_accuracy(w_plain, xte, yte, nte, LR_FEATURES);
    const double acc_train_enc = cdl_logreg_accuracy(w_enc, xtr, ytr, ntr, LR_FEATURES);
    const int boots = cdl_logreg_trainer_bootstraps(tr);
    char state_hex[65];
    state_fingerprint(&LOGREG_OPS, tr, state_hex);
    if (o->json) {
        printf("{\"task\":\"logreg\",\"dataset\":");
        cli_json_string(dataset);
        printf(",\"classes\":[%d,%d],\"n_train\":%zu,\"n_test\":%zu,\"train_from_test\":%d,\"features\":%d,"
               "\"batch\":\"full\",\"iterations\":%d,\"epochs\":%d,",
               class_a, class_b, ntr, nte, from_test, LR_FEATURES, cfg.iterations, cfg.iterations);
        json_run(&J, boots, per_iter);
        printf("\"ciphertexts\":%zu,\"samples_per_ciphertext\":%zu,\"learning_rate\":%g,\"lr_decay\":%d,"
               "\"nesterov\":%d,\"sigmoid_degree\":%d,\"sigmoid_bound\":%g,\"weight_bound\":%g,"
               "\"max_abs_state_plain\":%.4g,\"max_abs_margin_plain\":%.4g,\"threads\":%d,\"train_s\":%.3f,"
               "\"bootstrap_s\":%.3f,\"train_s_this_run\":%.3f,\"iterations_this_run\":%d,",
               cdl_logreg_encrypted_data_ciphertexts(enc), rows, cfg.learning_rate, cfg.lr_decay, cfg.nesterov,
               cfg.sigmoid_degree, cfg.sigmoid_bound, cfg.weight_bound, pstats.max_abs_state, pstats.max_abs_margin,
               cdl_get_threads(), t_train, t_boot, J.loop.t_run, cfg.iterations - J.resumed_from);
        json_client_times(&J, t_enc, t_dec, t_plain);
        printf("\"encrypted_accuracy\":%.6f,\"plaintext_accuracy\":%.6f,\"encrypted_train_accuracy\":%.6f,", acc_enc,
               acc_plain, acc_train_enc);
        json_weights(diff, wmax, state_hex);
        printf("}\n");
    } else {
        printf("logistic regression trained on encrypted data with bootstrapping: %s, class %d (+1) vs %d (-1)\n",
               dataset, class_a, class_b);
        printf("  data        %zu training samples%s, %zu test samples, %d features + bias\n", ntr,
               from_test ? " (from the test split)" : "", nte, LR_FEATURES);
        text_ckks(&J);
        printf("  packing     %zu samples per ciphertext, %zu ciphertexts\n", rows,
               cdl_logreg_encrypted_data_ciphertexts(enc));
        printf("  schedule    %d iterations (full batch), gamma = %g%s, %s, sigmoid on [-%g, %g]\n", cfg.iterations,
               cfg.learning_rate, cfg.lr_decay ? " / (k + 1)" : " (constant)", cfg.nesterov ? "Nesterov" : "plain GD",
               cfg.sigmoid_bound, cfg.sigmoid_bound);
        printf("  bootstraps  %d (beta and v together), %.1f s\n", boots, t_boot);
        printf("  time        train (server) %.1f s%s; keygen %.1f s, bootstrapping setup %.1f s, encrypt %.1f s, "
               "decrypt %.3f s (%d threads)\n",
               t_train, J.resumed_from ? " over the runs" : "", K->t_keys, K->t_setup, t_enc, t_dec,
               cdl_get_threads());
        text_accuracy(acc_enc, acc_plain, nte);
        text_weights(diff, wmax);
    }
    rc = CLI_EXIT_OK;
done:
    cdl_logreg_trainer_free(tr);
    cdl_logreg_encrypted_weights_free(ew);
    cdl_logreg_encrypted_data_free(enc);
    job_end(&J);
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

/* ======================= softmax regression ======================= */

TRAINER_OPS(SOFTMAX_OPS, softmax, "the weights and momentum (one packed ciphertext)");

/* The model file: as given, else under $CDL_SOURCE_DIR. */
static int find_model(const char *given, char *path, size_t cap)
{
    snprintf(path, cap, "%s", given);
    if (file_exists(path))
        return 0;
    const char *src = getenv("CDL_SOURCE_DIR");
    if (src && src[0] && given[0] != '/') {
        snprintf(path, cap, "%s/%s", src, given);
        if (file_exists(path))
            return 0;
    }
    snprintf(path, cap, "%s", given);
    return -1;
}

/* The client side of transfer learning: images -> trunk features (or the cache) for the training and test
 * selections. 0, or an exit code after a message. */
static int softmax_features(const options *o, const cdl_ckks_context *ctx, const char *model_path, mc_features *F,
                            char *layer, size_t cap, double *t_feat, int *from_cache)
{
    const char *dataset = o->dataset;
    int rc = CLI_EXIT_FAILURE;
    cdl_nn_graph *g = NULL;
    cdl_dataset *train = NULL, *test = NULL;
    uint8_t *model_bytes = NULL;
    size_t model_len = 0;
    uint8_t key[32];
    *from_cache = 0;
    memset(F, 0, sizeof *F);
    if (cdl_read_file(model_path, CDL_NN_MAX_FILE_BYTES, &model_bytes, &model_len) != CDL_OK ||
        cdl_nn_load_memory(model_bytes, model_len, &g) != CDL_OK) {
        rc = cli_fail_status(CMD, "cannot load the feature extractor (--features)");
        goto done;
    }
    int value;
    size_t dim;
    if (mc_trunk_value(g, &value, &dim, layer, cap) != 0)
        goto done;
    {
        /* refuse a layout that cannot hold the features before extracting them */
        size_t row, rows, cp;
        if (cdl_softmax_layout(ctx, dim + ((dim & (dim - 1)) != 0), 10, &row, &rows, &cp) != CDL_OK) {
            rc = cli_fail_status(CMD, "cannot lay out the features");
            goto done;
        }
    }
    {
        /* the cache key: the model's bytes, the trunk value and the selection */
        char sel[256];
        snprintf(sel, sizeof sel, "dataset=%s value=%d train=%lld test=%lld from_test=%d", dataset, value, o->n_train,
                 o->n_test, o->from_test);
        crypto_generichash_state hs;
        crypto_generichash_init(&hs, NULL, 0, sizeof key);
        crypto_generichash_update(&hs, model_bytes, model_len);
        crypto_generichash_update(&hs, (const uint8_t *)sel, strlen(sel));
        crypto_generichash_final(&hs, key, sizeof key);
    }
    if (o->features_cache) {
        int r = mc_cache_load(CMD, o->features_cache, key, F);
        if (r < 0)
            goto done;
        if (r == 1) {
            if (F->dim != dim) {
                fprintf(stderr, "cryptodl " CMD ": the feature cache holds %zu features per sample, the model %zu\n",
                        F->dim, dim);
                goto done;
            }
            fprintf(stderr, "cryptodl " CMD ": client: features of %zu + %zu images from the cache %s\n", F->n_train,
                    F->n_test, o->features_cache);
            *from_cache = 1;
            rc = 0;
            goto done;
        }
    }
    fprintf(stderr, "cryptodl " CMD ": loading %s\n", dataset);
    if (load_splits(o, &train, &test) != 0)
        goto done;
    if (select_samples(o, train, test, 0, F) != 0)
        goto done;
    F->dim = dim;
    fprintf(stderr, "cryptodl " CMD ": client: features (%s) of %zu training and %zu test images, in plaintext\n",
            layer, F->n_train, F->n_test);
    const double t0 = cli_now_seconds();
    if (mc_extract(CMD, g, value, dim, o->from_test ? test : train, 0, F->n_train, "features (train)", &F->x_train) !=
            0 ||
        mc_extract(CMD, g, value, dim, test, o->from_test ? (size_t)o->n_train : 0, F->n_test, "features (test)",
                   &F->x_test) != 0)
        goto done;
    *t_feat = cli_now_seconds() - t0;
    if (o->features_cache && mc_cache_save(CMD, o->features_cache, key, F) != 0)
        goto done;
    rc = 0;
done:
    if (rc != 0)
        mc_features_free(F);
    cdl_free_bytes(model_bytes);
    cdl_nn_graph_free(g);
    cdl_dataset_free(train);
    cdl_dataset_free(test);
    return rc;
}

static int run_softmax(const options *o)
{
    const size_t classes = 10;
    job J;
    int rc = job_begin(&J, o);
    if (rc != 0)
        return rc;
    cdl_softmax_config cfg;
    cdl_softmax_config_default(&cfg);
    cfg.iterations = (int)(o->iters ? o->iters : o->epochs ? o->epochs : 10);
    cfg.lr_decay = o->lr_decay;
    cfg.nesterov = !o->no_nesterov;
    cfg.weight_bound = o->wb_set ? o->weight_bound : 4.0;
    const int data_level = cdl_softmax_data_level(J.P.ctx, J.P.boot_level);
    const int planned_boots = cdl_softmax_bootstraps_needed(data_level, J.P.boot_level, cfg.iterations);

    rc = CLI_EXIT_FAILURE;
    mc_features F;
    memset(&F, 0, sizeof F);
    cdl_softmax_encrypted_data *enc = NULL;
    cdl_softmax_encrypted_weights *ew = NULL;
    cdl_softmax_trainer *tr = NULL;
    double *w_enc = NULL, *w_plain = NULL, t_feat = 0;
    char model_path[4096], layer[160];
    int from_cache = 0, bias = 0;
    size_t d = 0, outliers = 0;
    if (planned_boots < 0) {
        rc = job_refuse_plan(&J, cfg.iterations);
        goto done;
    }
    const char *fdef = !strcmp(o->dataset, "mnist")           ? "models/mnist_compact.onnx"
                       : !strcmp(o->dataset, "fashion-mnist") ? "models/fashion_mnist_deep.onnx"
                                                              : "models/cifar10_resnet9_herpn_kd3.onnx";
    if (find_model(o->features ? o->features : fdef, model_path, sizeof model_path) != 0) {
        fprintf(stderr, "cryptodl " CMD ": cannot find the feature extractor %s; give --features MODEL.onnx (the "
                        "shipped models are in models/)\n",
                model_path);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    if ((rc = softmax_features(o, J.P.ctx, model_path, &F, layer, sizeof layer, &t_feat, &from_cache)) != 0)
        goto done;
    rc = CLI_EXIT_FAILURE;
    const size_t d_trunk = F.dim;
    if (mc_standardize(&F, 0.0, MC_CLIP, &bias, &d, &outliers) != 0) {
        fprintf(stderr, "cryptodl " CMD ": out of memory\n");
        goto done;
    }
    const double lambda_max = mc_lambda_max(F.x_train, F.n_train, d);
    cfg.learning_rate = o->lr_set ? o->lr : 0.9 * (double)classes / lambda_max;
    w_enc = calloc(classes * d, sizeof *w_enc);
    w_plain = calloc(classes * d, sizeof *w_plain);
    if (!w_enc || !w_plain)
        goto done;

    /* the same algorithm in plaintext */
    double t0 = cli_now_seconds();
    cdl_softmax_plain_stats pstats;
    if (cdl_softmax_train_plain(F.x_train, F.y_train, F.n_train, d, classes, &cfg, w_plain, &pstats) != CDL_OK) {
        rc = cli_fail_status(CMD, "plaintext training failed");
        goto done;
    }
    const double t_plain = cli_now_seconds() - t0;
    warn_weight_bound(pstats.max_abs_state, cfg.weight_bound, "raise --weight-bound or lower --lr");

    /* client */
    int steps[CDL_SOFTMAX_MAX_STEPS];
    size_t nsteps = 0, row = 0, rows = 0, cp = 0;
    if (cdl_softmax_layout(J.P.ctx, d, classes, &row, &rows, &cp) != CDL_OK ||
        cdl_softmax_galois_steps(J.P.ctx, d, classes, steps, CDL_SOFTMAX_MAX_STEPS, &nsteps) != CDL_OK) {
        rc = cli_fail_status(CMD, "cannot lay out the data");
        goto done;
    }
    char hex[33];
    if ((rc = job_keys(&J, steps, nsteps, 0,
                       "task=softmax dataset=%s train=%zu train_from_test=%d data=%s d=%zu log_n=%lld iters=%d "
                       "lr=%.17g lr_decay=%d nesterov=%d weight_bound=%.17g",
                       o->dataset, F.n_train, o->from_test, features_hash_hex(&F, d, hex), d, o->log_n,
                       cfg.iterations, cfg.learning_rate, cfg.lr_decay, cfg.nesterov, cfg.weight_bound)) != 0)
        goto done;
    rc = CLI_EXIT_FAILURE;
    const keyset *K = &J.K;
    t0 = cli_now_seconds();
    fprintf(stderr,
            "cryptodl " CMD ": client: encrypting %zu samples of %zu features at level %d (%zu per ciphertext) and "
            "their labels\n",
            F.n_train, d, data_level, rows);
    if (cdl_softmax_encrypt_dataset(J.P.ctx, K->sk, J.rng, F.x_train, F.y_train, F.n_train, d, classes, data_level,
                                    &enc) != CDL_OK) {
        rc = cli_fail_status(CMD, "encryption failed");
        goto done;
    }
    const double t_enc = cli_now_seconds() - t0;

    /* server: the label term when the trainer is made, then the iterations */
    fprintf(stderr,
            "cryptodl " CMD ": server: %d iterations on %zu ciphertexts (N = 2^%lld, %s), %d levels per iteration, "
            "%d after a bootstrap, %d bootstraps planned; first the label term (one pass)\n",
            cfg.iterations, cdl_softmax_encrypted_data_ciphertexts(enc), o->log_n, J.P.secure ? "128-bit" : "INSECURE",
            cdl_softmax_levels_per_iteration(), K->binfo.level_out, planned_boots);
    t0 = cli_now_seconds();
    const cdl_status made =
        J.s.have_ckpt ? cdl_softmax_trainer_load(J.P.ctx, K->rlk, K->gk, K->bt, K->bk, enc, &cfg, J.s.ck.state,
                                                 J.s.ck.state_len, &tr)
                      : cdl_softmax_trainer_new(J.P.ctx, K->rlk, K->gk, K->bt, K->bk, enc, &cfg, &tr);
    const double t_label = cli_now_seconds() - t0;
    if (job_trainer(&J, made, &SOFTMAX_OPS, tr) != 0)
        goto done;
    fprintf(stderr, "cryptodl " CMD ": server: label term in %.1f s\n", t_label);
    if (J.resumed_from)
        fprintf(stderr, "cryptodl " CMD ": resuming after iteration %d (%d bootstraps done)\n", J.resumed_from,
                cdl_softmax_trainer_bootstraps(tr));
    if ((rc = job_train(&J, &SOFTMAX_OPS, tr, cfg.iterations, t_label, NULL)) != CLI_EXIT_OK)
        goto done;
    rc = CLI_EXIT_FAILURE;
    const double t_train = J.train_before + t_label + J.loop.t_run;
    const double t_boot = J.boot_before + cdl_softmax_trainer_bootstrap_seconds(tr);

    /* client: decryption */
    t0 = cli_now_seconds();
    if (cdl_softmax_trainer_weights(tr, &ew) != CDL_OK ||
        cdl_softmax_decrypt_weights(J.P.ctx, K->sk, ew, w_enc, classes * d) != CDL_OK) {
        rc = cli_fail_status(CMD, "decryption failed");
        goto done;
    }
    const double t_dec = cli_now_seconds() - t0;
    double diff = 0, wmax = 0;
    weight_diff(w_enc, w_plain, classes * d, &diff, &wmax);
    const double acc_enc = cdl_softmax_accuracy(w_enc, F.x_test, F.y_test, F.n_test, d, classes);
    const double acc_plain = cdl_softmax_accuracy(w_plain, F.x_test, F.y_test, F.n_test, d, classes);
    const double acc_train_enc = cdl_softmax_accuracy(w_enc, F.x_train, F.y_train, F.n_train, d, classes);
    const int boots = cdl_softmax_trainer_bootstraps(tr);
    char state_hex[65];
    state_fingerprint(&SOFTMAX_OPS, tr, state_hex);
    if (o->json) {
        printf("{\"task\":\"softmax\",\"dataset\":");
        cli_json_string(o->dataset);
        printf(",\"features_model\":");
        cli_json_string(model_path);
        printf(",\"feature_layer\":");
        cli_json_string(layer);
        printf(",\"trunk_features\":%zu,\"bias\":%d,\"clip\":%g,\"outlier_samples\":%zu,\"features\":%zu,"
               "\"classes\":%zu,\"n_train\":%zu,\"n_test\":%zu,\"train_from_test\":%d,\"batch\":\"full\","
               "\"iterations\":%d,\"epochs\":%d,",
               d_trunk, bias, MC_CLIP, outliers, d, classes, F.n_train, F.n_test, o->from_test, cfg.iterations,
               cfg.iterations);
        json_run(&J, boots, cdl_softmax_levels_per_iteration());
        printf("\"data_level\":%d,\"ciphertexts\":%zu,\"samples_per_ciphertext\":%zu,\"row\":%zu,"
               "\"softmax\":\"taylor1\",\"learning_rate\":%.6g,\"lambda_max\":%.6g,\"lr_decay\":%d,\"nesterov\":%d,"
               "\"weight_bound\":%g,\"max_abs_state_plain\":%.4g,\"max_abs_logit_plain\":%.4g,\"threads\":%d,"
               "\"train_s\":%.3f,\"bootstrap_s\":%.3f,\"label_term_s\":%.3f,\"train_s_this_run\":%.3f,"
               "\"iterations_this_run\":%d,\"feature_s\":%.3f,\"features_from_cache\":%d,",
               data_level, cdl_softmax_encrypted_data_ciphertexts(enc), rows, row, cfg.learning_rate, lambda_max,
               cfg.lr_decay, cfg.nesterov, cfg.weight_bound, pstats.max_abs_state, pstats.max_abs_logit,
               cdl_get_threads(), t_train, t_boot, t_label, t_label + J.loop.t_run, cfg.iterations - J.resumed_from,
               t_feat, from_cache);
        json_client_times(&J, t_enc, t_dec, t_plain);
        printf("\"encrypted_accuracy\":%.6f,\"plaintext_accuracy\":%.6f,\"encrypted_train_accuracy\":%.6f,", acc_enc,
               acc_plain, acc_train_enc);
        json_weights(diff, wmax, state_hex);
        printf("}\n");
    } else {
        printf("softmax regression trained on encrypted features with bootstrapping: %s, %zu classes\n", o->dataset,
               classes);
        printf("  features    %s of %s, standardized%s: %zu per sample (client, plaintext%s)\n", layer, model_path,
               bias ? ", plus a bias" : "", d, from_cache ? ", from the cache" : "");
        printf("  data        %zu training samples%s, %zu test samples\n", F.n_train,
               o->from_test ? " (from the test split)" : "", F.n_test);
        text_ckks(&J);
        printf("  packing     %zu samples per ciphertext (%zu slots each), %zu ciphertexts\n", rows, row,
               cdl_softmax_encrypted_data_ciphertexts(enc));
        printf("  schedule    %d iterations (full batch), gamma = %.4g%s (lambda_max %.4g), %s, Taylor softmax\n",
               cfg.iterations, cfg.learning_rate, cfg.lr_decay ? " / (k + 1)" : "", lambda_max,
               cfg.nesterov ? "Nesterov" : "plain GD");
        printf("  bootstraps  %d (weights and momentum packed together), %.1f s\n", boots, t_boot);
        printf("  time        train (server) %.1f s%s incl. the label term %.1f s; features %.1f s, keygen %.1f s, "
               "bootstrapping setup %.1f s, encrypt %.1f s, decrypt %.3f s (%d threads)\n",
               t_train, J.resumed_from ? " over the runs" : "", t_label, t_feat, K->t_keys, K->t_setup, t_enc, t_dec,
               cdl_get_threads());
        text_accuracy(acc_enc, acc_plain, F.n_test);
        text_weights(diff, wmax);
    }
    rc = CLI_EXIT_OK;
done:
    cdl_softmax_trainer_free(tr);
    cdl_softmax_encrypted_weights_free(ew);
    cdl_softmax_encrypted_data_free(enc);
    job_end(&J);
    mc_features_free(&F);
    free(w_enc);
    free(w_plain);
    return rc;
}

/* ======================= one-hidden-layer network ======================= */

TRAINER_OPS(MLP_OPS, mlp, "the packed weights and momentum");

/* --check-every: the client decrypts the weights after an update and compares them with the plaintext twin
 * rerun for as many updates (the twin keeps no momentum to continue from, and a rerun costs about a second). */
typedef struct mlp_check_point {
    int update;
    double max_diff, max_enc, max_plain, acc_enc, acc_plain;
} mlp_check_point;

typedef struct mlp_checker {
    const cdl_ckks_context *ctx;
    const cdl_ckks_secret_key *sk;
    const cdl_mlp_trainer *tr;
    const mc_features *f;
    cdl_mlp_config cfg;
    const double *w1i, *w2i;
    double *w1e, *w2e, *w1p, *w2p; /* scratch */
    size_t d, classes, rows;
    mlp_check_point *points;
    size_t count, capacity;
} mlp_checker;

static int mlp_check_update(void *arg, int update)
{
    mlp_checker *c = arg;
    const size_t n1 = (size_t)c->cfg.hidden * c->d, n2 = c->classes * (size_t)c->cfg.hidden;
    cdl_mlp_encrypted_weights *ew = NULL;
    if (cdl_mlp_trainer_weights(c->tr, &ew) != CDL_OK || cdl_mlp_decrypt_weights(c->ctx, c->sk, ew, c->w1e, c->w2e) != CDL_OK) {
        cdl_mlp_encrypted_weights_free(ew);
        return cli_fail_status(CMD, "--check-every: cannot decrypt the weights");
    }
    cdl_mlp_encrypted_weights_free(ew);
    cdl_mlp_config cfg = c->cfg;
    cfg.iterations = update;
    cdl_mlp_plain_stats stats;
    if (cdl_mlp_train_plain(c->f->x_train, c->f->y_train, c->f->n_train, c->d, c->classes, c->rows, &cfg, c->w1i,
                            c->w2i, c->w1p, c->w2p, &stats) != CDL_OK)
        return cli_fail_status(CMD, "--check-every: plaintext training failed");
    mlp_check_point pt = {update, 0, 0, 0, 0, 0};
    for (size_t i = 0; i < n1 + n2; i++) {
        const double e = i < n1 ? c->w1e[i] : c->w2e[i - n1], q = i < n1 ? c->w1p[i] : c->w2p[i - n1];
        pt.max_diff = fmax(pt.max_diff, isfinite(e) ? fabs(e - q) : INFINITY);
        pt.max_enc = fmax(pt.max_enc, fabs(e));
        pt.max_plain = fmax(pt.max_plain, fabs(q));
    }
    pt.acc_enc = cdl_mlp_accuracy(c->w1e, c->w2e, c->f->x_test, c->f->y_test, c->f->n_test, c->d, (size_t)c->cfg.hidden,
                                  c->classes);
    pt.acc_plain = cdl_mlp_accuracy(c->w1p, c->w2p, c->f->x_test, c->f->y_test, c->f->n_test, c->d,
                                    (size_t)c->cfg.hidden, c->classes);
    if (c->count == c->capacity) {
        const size_t cap = c->capacity ? 2 * c->capacity : 64;
        mlp_check_point *grown = realloc(c->points, cap * sizeof *grown);
        if (!grown) {
            fprintf(stderr, "cryptodl " CMD ": out of memory\n");
            return 1;
        }
        c->points = grown;
        c->capacity = cap;
    }
    c->points[c->count++] = pt;
    fprintf(stderr,
            "cryptodl " CMD ":   check after update %d: max |W_enc - W_plain| = %.3g (largest |W| encrypted %.3g, "
            "plaintext %.3g); test accuracy %.2f%% encrypted, %.2f%% plaintext\n",
            update, pt.max_diff, pt.max_enc, pt.max_plain, 100 * pt.acc_enc, 100 * pt.acc_plain);
    return 0;
}

static void mlp_checks_json(const mlp_checker *c)
{
    printf(",\"checks\":[");
    for (size_t i = 0; i < c->count; i++) {
        const mlp_check_point *p = &c->points[i];
        printf("%s{\"update\":%d,\"max_weight_diff\":%.6g,\"max_abs_weight_encrypted\":%.6g,"
               "\"max_abs_weight_plain\":%.6g,\"encrypted_accuracy\":%.6f,\"plaintext_accuracy\":%.6f}",
               i ? "," : "", p->update, p->max_diff, p->max_enc, p->max_plain, p->acc_enc, p->acc_plain);
    }
    printf("]");
}

static int run_mlp(const options *o)
{
    const size_t classes = 10;
    job J;
    int rc = job_begin(&J, o);
    if (rc != 0)
        return rc;
    cdl_mlp_config cfg;
    cdl_mlp_config_default(&cfg);
    cfg.hidden = (int)(o->hidden ? o->hidden : 64);
    if (o->lr_set)
        cfg.learning_rate = o->lr;
    if (o->momentum_set)
        cfg.momentum = o->momentum;
    if (o->no_nesterov)
        cfg.momentum = 0.0;
    if (o->wb_set)
        cfg.weight_bound = o->weight_bound;
    const uint64_t seed = (uint64_t)(o->seed ? o->seed : 1);
    rc = CLI_EXIT_FAILURE;
    mc_features F;
    memset(&F, 0, sizeof F);
    cdl_mlp_encrypted_data *enc = NULL;
    cdl_mlp_encrypted_weights *ew = NULL, *init = NULL;
    cdl_mlp_trainer *tr = NULL;
    cdl_dataset *train = NULL, *test = NULL;
    double *w1i = NULL, *w2i = NULL, *w1e = NULL, *w2e = NULL, *w1p = NULL, *w2p = NULL;
    mlp_checker checker;
    memset(&checker, 0, sizeof checker);
    int bias = 0;
    size_t d = 0, row = 0, rows = 0, cp = 0, outliers = 0;
    if (cdl_mlp_layout(J.P.ctx, LR_FEATURES + 1, classes, (size_t)cfg.hidden, &row, &rows, &cp) != CDL_OK) {
        cli_fail_status(CMD, "cannot lay out the network (--hidden: a power of two, 16 or more)");
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    {
        const long long b = o->batch ? o->batch : 1024;
        if (b % (long long)rows != 0) {
            fprintf(stderr, "cryptodl " CMD ": --batch %lld: use a multiple of %zu (samples per ciphertext at N = "
                            "2^%lld)\n",
                    b, rows, o->log_n);
            rc = CLI_EXIT_USAGE;
            goto done;
        }
        cfg.batch_ciphertexts = (int)(b / (long long)rows);
    }
    fprintf(stderr, "cryptodl " CMD ": loading %s\n", o->dataset);
    if (load_splits(o, &train, &test) != 0)
        goto done;
    if (select_samples(o, train, test, 1, &F) != 0)
        goto done;
    F.dim = LR_FEATURES;
    if (mc_standardize(&F, 0.1, MC_CLIP, &bias, &d, &outliers) != 0) {
        fprintf(stderr, "cryptodl " CMD ": out of memory\n");
        goto done;
    }
    {
        const size_t n_ct = (F.n_train + rows - 1) / rows;
        if (o->epochs)
            cfg.iterations = (int)((o->epochs * (long long)n_ct + cfg.batch_ciphertexts - 1) / cfg.batch_ciphertexts);
        else
            cfg.iterations = (int)(o->iters ? o->iters : 100);
    }
    const size_t n1 = (size_t)cfg.hidden * d, n2 = classes * (size_t)cfg.hidden;
    w1i = calloc(n1, sizeof *w1i);
    w2i = calloc(n2, sizeof *w2i);
    w1e = calloc(n1, sizeof *w1e);
    w2e = calloc(n2, sizeof *w2e);
    w1p = calloc(n1, sizeof *w1p);
    w2p = calloc(n2, sizeof *w2p);
    if (!w1i || !w2i || !w1e || !w2e || !w1p || !w2p ||
        cdl_mlp_init_weights(d, classes, (size_t)cfg.hidden, seed, w1i, w2i) != CDL_OK)
        goto done;

    /* the same updates in plaintext */
    double t0 = cli_now_seconds();
    cdl_mlp_plain_stats pstats;
    if (cdl_mlp_train_plain(F.x_train, F.y_train, F.n_train, d, classes, rows, &cfg, w1i, w2i, w1p, w2p, &pstats) !=
        CDL_OK) {
        rc = cli_fail_status(CMD, "plaintext training failed");
        goto done;
    }
    const double t_plain = cli_now_seconds() - t0;
    warn_weight_bound(pstats.max_abs_state, cfg.weight_bound, "raise --weight-bound or lower --lr");

    /* client */
    int steps[CDL_MLP_MAX_STEPS];
    size_t nsteps = 0;
    if (cdl_mlp_galois_steps(J.P.ctx, d, classes, (size_t)cfg.hidden, steps, CDL_MLP_MAX_STEPS, &nsteps) != CDL_OK) {
        rc = cli_fail_status(CMD, "cannot lay out the data");
        goto done;
    }
    char hex[33];
    if ((rc = job_keys(&J, steps, nsteps, 1,
                       "task=mlp dataset=%s train=%zu train_from_test=%d data=%s d=%zu log_n=%lld hidden=%d "
                       "batch=%d updates=%d lr=%.17g momentum=%.17g weight_bound=%.17g seed=%llu",
                       o->dataset, F.n_train, o->from_test, features_hash_hex(&F, d, hex), d, o->log_n,
                       cfg.hidden, cfg.batch_ciphertexts, cfg.iterations, cfg.learning_rate, cfg.momentum,
                       cfg.weight_bound, (unsigned long long)seed)) != 0)
        goto done;
    rc = CLI_EXIT_FAILURE;
    const keyset *K = &J.K;
    const int data_level = cdl_mlp_data_level(K->binfo.level_out);
    t0 = cli_now_seconds();
    fprintf(stderr,
            "cryptodl " CMD ": client: encrypting %zu samples of %zu inputs at level %d (%zu per ciphertext), their "
            "labels and the initial weights\n",
            F.n_train, d, data_level, rows);
    if (cdl_mlp_encrypt_dataset(J.P.ctx, K->sk, J.rng, F.x_train, F.y_train, F.n_train, d, classes,
                                (size_t)cfg.hidden, data_level, &enc) != CDL_OK ||
        cdl_mlp_encrypt_weights(J.P.ctx, K->sk, J.rng, enc, w1i, w2i, K->binfo.level_out, &init) != CDL_OK) {
        rc = cli_fail_status(CMD, "encryption failed");
        goto done;
    }
    const double t_enc = cli_now_seconds() - t0;

    /* server */
    fprintf(stderr,
            "cryptodl " CMD ": server: %d updates of %d ciphertexts (%d samples) on %zu ciphertexts (N = 2^%lld, %s), "
            "%d-%d-%zu network, one bootstrap per update\n",
            cfg.iterations, cfg.batch_ciphertexts, cfg.batch_ciphertexts * (int)rows,
            cdl_mlp_encrypted_data_ciphertexts(enc), o->log_n, J.P.secure ? "128-bit" : "INSECURE", (int)d,
            cfg.hidden, classes);
    const cdl_status made =
        J.s.have_ckpt ? cdl_mlp_trainer_load(J.P.ctx, K->rlk, K->gk, K->bt, K->bk, enc, &cfg, J.s.ck.state,
                                             J.s.ck.state_len, &tr)
                      : cdl_mlp_trainer_new(J.P.ctx, K->rlk, K->gk, K->bt, K->bk, enc, init, &cfg, &tr);
    if (job_trainer(&J, made, &MLP_OPS, tr) != 0)
        goto done;
    if (J.resumed_from)
        fprintf(stderr, "cryptodl " CMD ": resuming after update %d\n", J.resumed_from);
    checker = (mlp_checker){J.P.ctx, K->sk, tr, &F, cfg, w1i, w2i, w1e, w2e, w1p, w2p, d, classes, rows, NULL, 0, 0};
    const update_check check = {mlp_check_update, &checker, (int)o->check_every};
    rc = job_train(&J, &MLP_OPS, tr, cfg.iterations, 0.0, o->check_every ? &check : NULL);
    /* the checks used the twin's buffers: the final twin again */
    if (rc == CLI_EXIT_OK && checker.count &&
        cdl_mlp_train_plain(F.x_train, F.y_train, F.n_train, d, classes, rows, &cfg, w1i, w2i, w1p, w2p, &pstats) !=
            CDL_OK) {
        rc = cli_fail_status(CMD, "plaintext training failed");
        goto done;
    }
    if (rc != CLI_EXIT_OK)
        goto done;
    rc = CLI_EXIT_FAILURE;
    const double t_train = J.train_before + J.loop.t_run;
    const double t_boot = J.boot_before + cdl_mlp_trainer_bootstrap_seconds(tr);

    /* client: decryption */
    t0 = cli_now_seconds();
    if (cdl_mlp_trainer_weights(tr, &ew) != CDL_OK || cdl_mlp_decrypt_weights(J.P.ctx, K->sk, ew, w1e, w2e) != CDL_OK) {
        rc = cli_fail_status(CMD, "decryption failed");
        goto done;
    }
    const double t_dec = cli_now_seconds() - t0;
    double diff = 0, wmax = 0;
    weight_diff(w1e, w1p, n1, &diff, &wmax);
    weight_diff(w2e, w2p, n2, &diff, &wmax);
    const double acc_enc = cdl_mlp_accuracy(w1e, w2e, F.x_test, F.y_test, F.n_test, d, (size_t)cfg.hidden, classes);
    const double acc_plain = cdl_mlp_accuracy(w1p, w2p, F.x_test, F.y_test, F.n_test, d, (size_t)cfg.hidden, classes);
    const double acc_init = cdl_mlp_accuracy(w1i, w2i, F.x_test, F.y_test, F.n_test, d, (size_t)cfg.hidden, classes);
    const double epochs = (double)cfg.iterations * cfg.batch_ciphertexts * (double)rows / (double)F.n_train;
    char state_hex[65];
    state_fingerprint(&MLP_OPS, tr, state_hex);
    if (o->json) {
        printf("{\"task\":\"mlp\",\"dataset\":");
        cli_json_string(o->dataset);
        printf(",\"inputs\":%zu,\"bias\":%d,\"hidden\":%d,\"classes\":%zu,\"activation\":\"square\","
               "\"loss\":\"taylor1\",\"n_train\":%zu,\"n_test\":%zu,\"train_from_test\":%d,\"batch\":%d,"
               "\"iterations\":%d,\"epochs\":%.3f,",
               d, bias, cfg.hidden, classes, F.n_train, F.n_test, o->from_test, cfg.batch_ciphertexts * (int)rows,
               cfg.iterations, epochs);
        json_run(&J, cdl_mlp_trainer_bootstraps(tr), cdl_mlp_levels_per_iteration());
        printf("\"data_level\":%d,\"ciphertexts\":%zu,\"samples_per_ciphertext\":%zu,\"row\":%zu,"
               "\"learning_rate\":%g,\"momentum\":%g,\"weight_bound\":%g,\"seed\":%llu,\"max_abs_state_plain\":%.4g,"
               "\"max_abs_hidden_plain\":%.4g,\"max_abs_logit_plain\":%.4g,\"threads\":%d,\"train_s\":%.3f,"
               "\"bootstrap_s\":%.3f,\"train_s_this_run\":%.3f,\"iterations_this_run\":%d,",
               data_level, cdl_mlp_encrypted_data_ciphertexts(enc), rows, row, cfg.learning_rate, cfg.momentum,
               cfg.weight_bound, (unsigned long long)seed, pstats.max_abs_state, pstats.max_abs_hidden,
               pstats.max_abs_logit, cdl_get_threads(), t_train, t_boot, J.loop.t_run, cfg.iterations - J.resumed_from);
        json_client_times(&J, t_enc, t_dec, t_plain);
        printf("\"initial_accuracy\":%.6f,\"encrypted_accuracy\":%.6f,\"plaintext_accuracy\":%.6f,", acc_init, acc_enc,
               acc_plain);
        json_weights(diff, wmax, state_hex);
        if (checker.count)
            mlp_checks_json(&checker);
        printf("}\n");
    } else {
        printf("a %zu-%d-%zu network (square activation) trained end to end on encrypted %s\n", d, cfg.hidden,
               classes, o->dataset);
        printf("  data        %zu training samples%s (14x14 pooled pixels, standardized, and a bias), %zu test\n",
               F.n_train, o->from_test ? " (from the test split)" : "", F.n_test);
        text_ckks(&J);
        printf("  schedule    %d updates of %d samples (%.2f epochs), gamma %g, Nesterov momentum %g\n",
               cfg.iterations, cfg.batch_ciphertexts * (int)rows, epochs, cfg.learning_rate, cfg.momentum);
        printf("  bootstraps  %d (one per update), %.1f s\n", cdl_mlp_trainer_bootstraps(tr), t_boot);
        printf("  time        train (server) %.1f s%s; keygen %.1f s, encrypt %.1f s, decrypt %.3f s (%d threads)\n",
               t_train, J.resumed_from ? " over the runs" : "", K->t_keys, t_enc, t_dec, cdl_get_threads());
        printf("  accuracy    encrypted training %.2f%%, plaintext training %.2f%% (initial weights %.2f%%; test "
               "set, %zu samples)\n",
               100 * acc_enc, 100 * acc_plain, 100 * acc_init, F.n_test);
        text_weights(diff, wmax);
    }
    rc = CLI_EXIT_OK;
done:
    free(checker.points);
    cdl_mlp_trainer_free(tr);
    cdl_mlp_encrypted_weights_free(ew);
    cdl_mlp_encrypted_weights_free(init);
    cdl_mlp_encrypted_data_free(enc);
    job_end(&J);
    mc_features_free(&F);
    cdl_dataset_free(train);
    cdl_dataset_free(test);
    free(w1i);
    free(w2i);
    free(w1e);
    free(w2e);
    free(w1p);
    free(w2p);
    return rc;
}

/* ======================= the command ======================= */

int cmd_train_encrypted(int argc, char **argv)
{
    static const struct option opts[] = {{"task", required_argument, 0, 'a'},
                                         {"dataset", required_argument, 0, 'd'},
                                         {"classes", required_argument, 0, 'c'},
                                         {"features", required_argument, 0, 'f'},
                                         {"features-cache", required_argument, 0, 'q'},
                                         {"iters", required_argument, 0, 'k'},
                                         {"epochs", required_argument, 0, 'E'},
                                         {"log-n", required_argument, 0, 'L'},
                                         {"train", required_argument, 0, 'n'},
                                         {"test", required_argument, 0, 'T'},
                                         {"train-from-test", no_argument, 0, 'F'},
                                         {"lr", required_argument, 0, 'g'},
                                         {"constant-lr", no_argument, 0, 'C'},
                                         {"lr-decay", no_argument, 0, 'Y'},
                                         {"no-nesterov", no_argument, 0, 'N'},
                                         {"bound", required_argument, 0, 'b'},
                                         {"weight-bound", required_argument, 0, 'W'},
                                         {"checkpoint", required_argument, 0, 'P'},
                                         {"resume", no_argument, 0, 'R'},
                                         {"data-dir", required_argument, 0, 'D'},
                                         {"threads", required_argument, 0, 't'},
                                         {"json", no_argument, 0, 'j'},
                                         {"stop-after", required_argument, 0, 'S'},
                                         {"check-every", required_argument, 0, 'K'},
                                         {"hidden", required_argument, 0, 'H'},
                                         {"batch", required_argument, 0, 'B'},
                                         {"momentum", required_argument, 0, 'M'},
                                         {"seed", required_argument, 0, 'e'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    options o;
    memset(&o, 0, sizeof o);
    o.task = "logreg";
    o.dataset = "mnist";
    o.class_a = 3;
    o.class_b = 8;
    o.log_n = 16;
    int c, classes_set = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'a': o.task = optarg; break;
        case 'd': o.dataset = optarg; break;
        case 'D': o.data_dir = optarg; break;
        case 'P': o.ckpt_path = optarg; break;
        case 'R': o.resume = 1; break;
        case 'f': o.features = optarg; break;
        case 'q': o.features_cache = optarg; break;
        case 'c':
            if (sscanf(optarg, "%d,%d", &o.class_a, &o.class_b) != 2 || o.class_a < 0 || o.class_a > 9 ||
                o.class_b < 0 || o.class_b > 9 || o.class_a == o.class_b)
                return cli_usage_error(CMD, "--classes wants two different digits 0..9 as A,B, got '%s'", optarg);
            classes_set = 1;
            break;
        case 'k':
            if (cli_parse_positive(CMD, "--iters", optarg, &o.iters) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'E':
            if (cli_parse_positive(CMD, "--epochs", optarg, &o.epochs) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'L':
            if (cli_parse_positive(CMD, "--log-n", optarg, &o.log_n) != 0)
                return CLI_EXIT_USAGE;
            if (o.log_n != 16 && (o.log_n < 10 || o.log_n > 14))
                return cli_usage_error(CMD, "--log-n %lld: use 16 (128-bit) or 10..14 (INSECURE, for tests)", o.log_n);
            break;
        case 'n':
            if (cli_parse_positive(CMD, "--train", optarg, &o.n_train) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'T':
            if (cli_parse_positive(CMD, "--test", optarg, &o.n_test) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'F': o.from_test = 1; break;
        case 'g':
            o.lr = strtod(optarg, &end);
            if (*end || !(o.lr > 0) || !isfinite(o.lr))
                return cli_usage_error(CMD, "--lr wants a positive number, got '%s'", optarg);
            o.lr_set = 1;
            break;
        case 'b':
            o.bound = strtod(optarg, &end);
            if (*end || !(o.bound > 0) || !(o.bound <= 1000))
                return cli_usage_error(CMD, "--bound wants a number in (0, 1000], got '%s'", optarg);
            o.bound_set = 1;
            break;
        case 'W':
            o.weight_bound = strtod(optarg, &end);
            if (*end || !(o.weight_bound > 0) || !(o.weight_bound <= 1024))
                return cli_usage_error(CMD, "--weight-bound wants a number in (0, 1024], got '%s'", optarg);
            o.wb_set = 1;
            break;
        case 'H':
            if (cli_parse_positive(CMD, "--hidden", optarg, &o.hidden) != 0)
                return CLI_EXIT_USAGE;
            if (o.hidden < 16 || o.hidden > 256 || (o.hidden & (o.hidden - 1)))
                return cli_usage_error(CMD, "--hidden %lld: use a power of two from 16 to 256", o.hidden);
            break;
        case 'B':
            if (cli_parse_positive(CMD, "--batch", optarg, &o.batch) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'M':
            o.momentum = strtod(optarg, &end);
            if (*end || !(o.momentum >= 0) || !(o.momentum < 1))
                return cli_usage_error(CMD, "--momentum wants a number in [0, 1), got '%s'", optarg);
            o.momentum_set = 1;
            break;
        case 'e':
            if (cli_parse_positive(CMD, "--seed", optarg, &o.seed) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'C': o.constant_lr = 1; break;
        case 'Y': o.lr_decay = 1; break;
        case 'N': o.no_nesterov = 1; break;
        case 'j': o.json = 1; break;
        case 'S':
            if (cli_parse_positive(CMD, "--stop-after", optarg, &o.stop_after) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'K':
            if (cli_parse_positive(CMD, "--check-every", optarg, &o.check_every) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_threads(CMD, optarg, &o.threads) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error(CMD, "unknown option");
        }
    }
    if (optind != argc)
        return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    const int is_logreg = !strcmp(o.task, "logreg"), is_softmax = !strcmp(o.task, "softmax"),
              is_mlp = !strcmp(o.task, "mlp");
    if (!is_logreg && !is_softmax && !is_mlp)
        return cli_usage_error(CMD, "--task %s: use logreg, softmax or mlp", o.task);
    if ((is_logreg || is_mlp) && strcmp(o.dataset, "mnist") && strcmp(o.dataset, "fashion-mnist"))
        return cli_usage_error(CMD, "--dataset %s: use mnist or fashion-mnist", o.dataset);
    if (is_softmax && strcmp(o.dataset, "mnist") && strcmp(o.dataset, "fashion-mnist") && strcmp(o.dataset, "cifar-10"))
        return cli_usage_error(CMD, "--dataset %s: use mnist, fashion-mnist or cifar-10", o.dataset);
    if (!is_logreg && (classes_set || o.bound_set || o.constant_lr))
        return cli_usage_error(CMD, "--classes, --bound and --constant-lr are options of --task logreg");
    if (!is_softmax && (o.features || o.features_cache || o.lr_decay))
        return cli_usage_error(CMD, "--features, --features-cache and --lr-decay are options of --task softmax");
    if (!is_mlp && (o.hidden || o.batch || o.momentum_set || o.seed))
        return cli_usage_error(CMD, "--hidden, --batch, --momentum and --seed are options of --task mlp");
    if (!is_mlp && o.check_every)
        return cli_usage_error(CMD, "--check-every is an option of --task mlp");
    if (is_mlp && o.iters && o.epochs)
        return cli_usage_error(CMD, "--iters (updates) and --epochs: give one of them for --task mlp");
    if (!is_mlp && o.iters && o.epochs && o.iters != o.epochs)
        return cli_usage_error(CMD, "--iters %lld and --epochs %lld disagree: with full-batch gradient descent an "
                                    "iteration is an epoch; give one of them",
                               o.iters, o.epochs);
    if ((!is_mlp && (o.iters > 1000 || o.epochs > 1000)) || o.iters > 100000 || o.epochs > 1000)
        return cli_usage_error(CMD, "--iters / --epochs: at most 1000 (--task mlp: 100000 updates, 1000 epochs)");
    if (o.resume && !o.ckpt_path)
        return cli_usage_error(CMD, "--resume needs --checkpoint FILE");
    if (o.from_test && !o.n_train)
        return cli_usage_error(CMD, "--train-from-test needs --train N (the test samples are the ones after them)");
    if (o.threads)
        cdl_set_threads(o.threads);
    o.defaulted = o.data_dir == NULL;
    return is_logreg ? run_logreg(&o) : is_softmax ? run_softmax(&o) : run_mlp(&o);
}
