/*
 * he_steps.h: what the pipeline commands (compile, keygen, encrypt,
 * evaluate, decrypt) and `predict`'s step flags share (tools/he_steps.c):
 * the model options (or --plan FILE), key files, encrypted batch files (one
 * batch, or several in a CDLPARTS container), and progress. The work itself
 * is the library's client layer (include/cryptodl/client.h: plans, keys,
 * encrypt / evaluate / decrypt on bytes); these functions add the files, the
 * messages and the progress display. Every function prints its own error
 * message prefixed with "cryptodl <cmd>: " and returns a CLI exit status (or -1).
 */
#ifndef CDL_TOOLS_HE_STEPS_H
#define CDL_TOOLS_HE_STEPS_H

#include <stddef.h>
#include <stdint.h>

#include "cli.h"
#include "cryptodl/cryptodl.h"
#include "plan_file.h"

/* The options every pipeline command takes to compile the model. Option
 * letters: L, S, B, A, M, G, Y (the options) and P (--plan FILE). */
#define HE_MODEL_OPTIONS                                                                                               \
    {"log-n", required_argument, 0, 'L'}, {"scale-bits", required_argument, 0, 'S'},                                 \
        {"output-bits", required_argument, 0, 'B'}, {"approx", required_argument, 0, 'A'},                           \
        {"packing", required_argument, 0, 'M'}, {"plan", required_argument, 0, 'P'},                              \
        {"max-galois-keys", required_argument, 0, 'G'}, {"max-galois-mb", required_argument, 0, 'Y'}
/* --quiet: no progress on stderr (cli_set_quiet); a long option only. */
#define HE_OPT_QUIET 0x100
#define HE_QUIET_OPTION {"quiet", no_argument, 0, HE_OPT_QUIET}
#define HE_QUIET_HELP                                                                                                  \
    "  --quiet           no progress on stderr (otherwise a bar with the time left on a terminal, plain\n"             \
    "                    lines when stderr is not one)\n"
#define HE_MODEL_HELP                                                                                                  \
    "\nmodel options (the same on client and server; or give --plan):\n"                                              \
    "  --plan FILE       read the options below from a plan written by `cryptodl compile --out FILE`;\n"             \
    "                    refused if the model is not the one the plan was made for\n"                              \
    "  --packing P       batch (default: one image per slot, up to N/2 images per batch, no rotations),\n"        \
    "                    slots (one image across the slots, a few images per batch; the server also\n"           \
    "                    needs galois.key) or auto (slots unless batch packing fits this machine's\n"            \
    "                    memory and is less work; decided once: compile --out and share the plan)\n"             \
    "  --max-galois-keys K  slots: at most K rotation keys: the +-2^k basis and the most used steps, the\n"      \
    "                    other steps composed of those (less key memory, more rotations)\n"                     \
    "  --max-galois-mb M slots: at most M MB of rotation keys, chosen the same way (e.g. 4000)\n"                  \
    "  --log-n L         force the ring degree 2^L, 13..16 (default: the smallest that fits)\n"                    \
    "  --scale-bits B    force the scale 2^B, 20..50 (default: as large as the security budget allows)\n"          \
    "  --output-bits B   room for the logits: |logit| < 2^(B-1), 2..30 (default 10)\n"                             \
    "  --approx SPEC     replace ReLU/Sigmoid/Tanh by polynomials first, e.g. relu=remez:4:-6:6\n"

typedef struct he_model_args {
    plan_options opt;      /* log_n/scale_bits 0 = automatic; output_bits 0 = default; packing 0 = batch */
    const char *plan_path; /* --plan FILE */
    int any_option;        /* one of --log-n/--scale-bits/--output-bits/--approx/--packing was given */
} he_model_args;

void he_model_args_init(he_model_args *a);
/* Handle option letter c (L, S, B, A, M, P). Returns 1 if handled, 0 if c is
 * not a model option, -1 on a bad value (usage error printed). */
int he_model_option(const char *cmd, int c, const char *arg, he_model_args *a);

typedef struct he_model {
    const char *path;
    cdl_client_plan *cp;          /* the library's plan: graph, HE plan, CKKS context */
    const cdl_nn_graph *graph;    /* borrowed from cp (its output is the logits) */
    const cdl_he_plan *plan;
    const cdl_ckks_context *ctx;
    plan_record rec; /* what a plan file would record */
} he_model;

/* Import MODEL.onnx, apply --approx, compile, build the CKKS context
 * (cdl_client_plan_compile); with --plan, read the options from the file (and
 * the packing the compiler chose then, so that auto is not decided again on
 * another machine) and refuse if the model's hash or the outcome differ
 * (cdl_client_plan_open). Slots plans keep their encoded weights between
 * batches on every side, so that the recorded memory estimate is the same
 * everywhere. Returns CLI_EXIT_OK or an exit status (message printed). */
int he_model_open(const char *cmd, const char *path, const he_model_args *a, he_model *m);
void he_model_close(he_model *m);
/* Refuse (exit 1) when the plan's ciphertext memory exceeds 90% of RAM. */
int he_check_memory(const char *cmd, const cdl_he_plan *plan);
/* "(1, 28, 28)" */
void he_shape_text(const cdl_nn_graph *g, char *buf, size_t cap);

/* Files. write: mode 0600 if secret, else 0644. */
int he_write_file(const char *cmd, const char *path, const uint8_t *data, size_t len, int secret);
/* Map a file read-only (empty files refused). */
int he_map_file(const char *cmd, const char *path, const uint8_t **data, size_t *len);
void he_unmap_file(const uint8_t *data, size_t len);

/* "batch" or "slots": the packing a plan uses. */
const char *he_packing_name(const cdl_he_plan *plan);

/* Keys. */
typedef struct he_keygen_result {
    size_t secret_bytes, relin_bytes, public_bytes, galois_bytes; /* galois: 0 in batch packing */
    size_t galois_steps;
    double seconds;
} he_keygen_result;
/* DIR/secret.key (0600), relin.key, public.key, and for a slots plan
 * galois.key (the plan's rotation steps); DIR is created (0700) if missing. */
int he_keygen(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx, const char *dir,
              he_keygen_result *res);
typedef enum he_key_kind { HE_KEY_SECRET, HE_KEY_PUBLIC, HE_KEY_RELIN, HE_KEY_GALOIS } he_key_kind;
/* Load a key file. Its envelope's object type is checked first from its
 * first bytes: a secret key given where a public, relinearization or Galois
 * key is expected is refused before the rest of it is read. Galois keys
 * (hundreds of MB) are read from a mapping of the file. */
int he_load_key(const char *cmd, const cdl_ckks_context *ctx, const char *path, he_key_kind kind, void **key);
/* The server's Galois keys for a slots plan: *gk = NULL for a batch plan
 * (nothing is read); else the file at path, refused unless it holds every
 * rotation step of the plan (he_check_galois). */
int he_load_galois(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx, const char *path,
                   cdl_ckks_galois_keys **gk);
/* 0 if gk holds every step the plan needs (always, in batch packing); else
 * -1 with a message naming the missing steps and what to do (path names the
 * keys in it; may be NULL). */
int he_check_galois(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_galois_keys *gk, const char *path);
/* Where galois.key is by default: next to the relinearization key file. */
const char *he_galois_path_near(char *buf, size_t cap, const char *relin_path);
/* DIR/name into buf. */
const char *he_key_path(char *buf, size_t cap, const char *dir, const char *name);

/* Encrypt n images into one file: one batch (cdl_he_batch format) when
 * n <= capacity (N/2 in batch packing, a few images in slots packing), else
 * a CDLPARTS container of ceil(n / capacity) batches. Exactly one of pk, sk. */
typedef struct he_file_stats {
    size_t images, batches, bytes;
    double seconds;
} he_file_stats;
int he_encrypt_file(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                    const cdl_ckks_public_key *pk, const cdl_ckks_secret_key *sk, const double *images, size_t n,
                    const char *out, he_file_stats *st);
/* The server step: every batch of `in` through cdl_he_evaluate_keys
 * (progress on stderr), the encrypted logits to `out` in the same layout. gk:
 * the Galois keys a slots plan needs (checked first), NULL in batch packing.
 * Every batch must hold cdl_he_plan_input_ciphertexts; a file made under
 * another packing is refused with a message naming both. */
int he_evaluate_file(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                     const cdl_ckks_relin_key *rlk, const cdl_ckks_galois_keys *gk, const char *in, const char *out,
                     he_file_stats *st);
/* Decrypt a file of encrypted logits: *logits (malloc'ed) = n * output_size.
 * flood NULL: plain decryption; else every batch through
 * cdl_he_decrypt_logits_flooded with a system generator, and *flood_info
 * (may be NULL) gets the worst noise bound, sigma and rms logit error. */
int he_decrypt_file(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                    const cdl_ckks_secret_key *sk, const char *in, const cdl_ckks_flood_options *flood,
                    cdl_ckks_flood_info *flood_info, double **logits, size_t *n);

/* Noise flooding of decrypted logits (decrypt, predict): `--flood [BITS]`
 * and `--flood-queries Q`. */
#define HE_FLOOD_OPTIONS {"flood", optional_argument, 0, 'f'}, {"flood-queries", required_argument, 0, 'q'}
#define HE_FLOOD_HELP                                                                                                  \
    "  --flood [BITS]    add noise to the decrypted logits before they are shown or written, sized for\n"            \
    "                    BITS of statistical security (default 40, 20..128) against an adversary who sees\n"       \
    "                    them and the ciphertexts (IND-CPA-D, docs/security.md): use it whenever the logits\n"    \
    "                    leave this machine. It costs about BITS/2 + 9 bits of precision: compile the model\n"    \
    "                    with a large --scale-bits (e.g. 50); decrypt refuses (predict warns) when the rms\n"      \
    "                    error per logit exceeds 1%% of the largest |logit| (and 0.05)\n"                             \
    "  --flood-queries Q flooded decryptions under this key an adversary may see in all; each output\n"         \
    "                    ciphertext counts once (default: those of this run); sigma grows with sqrt(Q)\n"
/* The largest rms error per logit that `decrypt --flood` accepts: 1% of the
 * largest |logit|, and never less than 0.05. */
#define HE_FLOOD_MAX_LOGIT_ERROR 0.05
#define HE_FLOOD_MAX_RELATIVE_ERROR 0.01
/* Handle option letter c ('f': --flood with the getopt optarg, which is NULL
 * unless --flood=BITS; a following argument that is a number is taken as BITS;
 * 'q': --flood-queries). Returns 1 if handled, 0 if c is not a flood option,
 * -1 on a bad value (usage error printed). fl->security_bits != 0 once --flood
 * was given. */
int he_flood_option(const char *cmd, int c, const char *arg, int argc, char **argv, cdl_ckks_flood_options *fl);
/* After a flooded decryption failed with `st`: for CDL_ERR_PARAMETERS (the
 * flooding does not fit the output's modulus), how to make room for it. */
void he_flood_hint(const char *cmd, cdl_status st);
/* One line on stderr saying what the flooding did. If the rms error per logit
 * exceeds the larger of HE_FLOOD_MAX_LOGIT_ERROR and HE_FLOOD_MAX_RELATIVE_ERROR
 * times the largest |logit| of the n * nout logits: with refuse, an error
 * saying how to get the precision back and -1; else a warning and 0. */
int he_flood_report(const char *cmd, const cdl_he_plan *plan, const cdl_ckks_flood_options *fl,
                    const cdl_ckks_flood_info *info, const double *logits, size_t count, int refuse);

/* The progress display of the client layer's events (cdl_client_progress_fn;
 * user: an he_reporter), in the style of cli_progress_style():
 *   keygen    a bar over the keys (a Galois key per rotation step) / lines
 *   encrypt   a bar over the images / a line per batch when there are several
 *   evaluate  a bar per layer, then one line per layer (both styles), and a
 *             line per batch with the time left when there are several
 * and nothing with --quiet. */
typedef struct he_reporter {
    cli_progress bar;
    const char *step;
    int layer;
    size_t batch;
    double t_layer, t_start; /* the current layer's start, the step's */
    char label[96];
} he_reporter;
void he_reporter_init(he_reporter *r);
void he_report(void *user, const cdl_client_progress *p);

size_t he_argmax(const double *v, size_t n);

#endif
