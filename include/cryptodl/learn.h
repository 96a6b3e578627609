/*
 * learn.h: training on encrypted data, three models: a binary logistic
 * regression (cdl_logreg_*, this comment), a multiclass softmax regression on
 * a frozen CNN trunk's features (transfer learning, cdl_softmax_*) and a
 * one-hidden-layer network trained end to end (cdl_mlp_*), each with
 * bootstrapping, checkpoints and a plaintext twin (docs/learn.md).
 *
 * Logistic regression by (Nesterov-
 * accelerated) gradient descent with a low-degree polynomial sigmoid, run by
 * a server on CKKS ciphertexts of a client's labelled training set (Kim,
 * Song, Kim, Lee, Jiang, "Secure logistic regression based on homomorphic
 * encryption", JMIR 2018; Kim et al., "Logistic regression model training
 * based on the approximate homomorphic encryption", BMC Med Genomics 2018;
 * with bootstrapping, as Han, Hong, Cheon, Park, IAAI 2019).
 *
 *   client: cdl_logreg_encrypt_dataset[_level] (secret key; labels y in {-1, +1})
 *   server: cdl_logreg_train_encrypted         (relinearization + Galois keys only)
 *           or a cdl_logreg_trainer, one iteration at a time, bootstrapping
 *           the weights when they run out of levels (+ bootstrapping keys),
 *           with checkpoints (cdl_logreg_trainer_save / _load)
 *   client: cdl_logreg_decrypt_weights
 *   check:  cdl_logreg_train_plain             (the same algorithm in doubles)
 *
 * Algorithm (docs/learn.md). Z_i = y_i (1, x_i) in R^(d+1). With
 * sigma(t) ~ a0 + a1 t + a3 t^3 (least squares on [-B, B], a0 = 1/2) and
 * g(t) = a0 - a1 t - a3 t^3 ~ sigma(-t), iteration k = 1..K is
 *   beta_k = v_(k-1) + (gamma_k / n) sum_i g(<Z_i, v_(k-1)>) Z_i
 *   v_k    = (1 - eta_k) beta_k + eta_k beta_(k-1)
 * from beta_0 = v_0 = 0, with gamma_k = gamma / (k + 1) (or constant) and
 * Nesterov's eta_k = (1 - lambda_k) / lambda_(k+1), lambda_1 = 1,
 * lambda_(k+1) = (1 + sqrt(1 + 4 lambda_k^2)) / 2 (eta_k = 0 without Nesterov).
 * Every iteration uses the whole training set (full-batch gradient descent:
 * one iteration = one epoch). The weights are beta_K: predict +1 when
 * <(1, x), beta_K> > 0.
 *
 * Packing: d' = d + 1 rounded up to a power of two slots per sample, N/2 / d'
 * samples per ciphertext (as many ciphertexts as the set needs), beta and v
 * replicated in every row. Levels: the first iteration costs none
 * (beta_0 = 0), every later one cdl_logreg_levels_per_iteration() levels (4
 * for degree 3, 3 for degree 1). Without bootstrapping that bounds K by
 * 1 + max_level / 4: 3 at N = 2^14, 5 at N = 2^15 (degree 3). With a
 * bootstrapper, beta and v are bootstrapped together when the next iteration
 * does not fit: packed as one complex ciphertext (beta + i v) / W (one spare
 * level pays for the packing; W = cfg->weight_bound keeps the values inside
 * the bootstrap's designed range |.| <= 1), bootstrapped once, and split again
 * by a conjugation (no level). With 9 levels after a bootstrap (the 128-bit
 * N = 2^16 preset) that is 2 iterations per bootstrap (9 -> 5 -> 1 -> pack).
 */
#ifndef CRYPTODL_LEARN_H
#define CRYPTODL_LEARN_H

#include <stddef.h>

#include "cryptodl/common.h"
#include "cryptodl/ckks.h"
#include "cryptodl/bootstrap.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Called by the trainers after each iteration (iteration = 1..total). */
typedef void (*cdl_logreg_progress_fn)(void *user, int iteration, int total);

typedef struct cdl_logreg_config {
    int iterations;       /* K >= 1 */
    double learning_rate; /* gamma > 0 */
    int lr_decay;         /* 1: gamma_k = gamma / (k + 1); 0: gamma_k = gamma */
    int nesterov;         /* 1: Nesterov acceleration; 0: plain gradient descent */
    int sigmoid_degree;   /* 1 or 3 */
    double sigmoid_bound; /* B: the sigmoid is fitted by least squares on [-B, B] */
    int log_n;            /* CKKS preset used by the CLI (cdl_ckks_preset); 13..15 */
    double weight_bound;  /* W: with bootstrapping, beta and v are divided by W before a bootstrap and
                             multiplied back after (through the scale: free), so every |beta_j|, |v_j|
                             must stay below W (cdl_logreg_train_plain_stats tells); each doubling of W
                             costs a bit of precision; 0 < W <= 1024, default 8 (0 also means 8) */
    cdl_logreg_progress_fn progress; /* may be NULL */
    void *progress_user;
} cdl_logreg_config;

/* iterations 3, learning_rate 3, lr_decay 1, nesterov 1, degree 3, B 8, log_n 14, W 8, no progress. */
CDL_API void cdl_logreg_config_default(cdl_logreg_config *cfg);

/* The polynomial sigmoid a config uses: sigma(t) ~ a0 + a1 t + a3 t^3 (a3 = 0
 * for degree 1), the least-squares fit of the approx layer on [-B, B] with the
 * even coefficients set to their exact values (a0 = 1/2, a2 = 0; sigma - 1/2
 * is odd), and its maximum error on [-B, B]. */
typedef struct cdl_logreg_sigmoid {
    int degree;
    double bound;
    double a0, a1, a3;
    double max_abs_error;
} cdl_logreg_sigmoid;
CDL_API cdl_status cdl_logreg_sigmoid_fit(const cdl_logreg_config *cfg, cdl_logreg_sigmoid *out);

/* Levels one iteration after the first consumes (degree 3: 4, degree 1: 3). */
CDL_API int cdl_logreg_levels_per_iteration(int sigmoid_degree);
/* Largest K whose training fits max_level levels: 1 + max_level / per-iteration. */
CDL_API int cdl_logreg_max_iterations(int max_level, int sigmoid_degree);
/* Bootstraps K iterations take when the data are at data_level and a
 * bootstrap returns at boot_level (the trainer's plan, below); -1 if they
 * cannot run (the iterations after a bootstrap need per-iteration + 1 levels). */
CDL_API int cdl_logreg_bootstraps_needed(int data_level, int boot_level, int iterations, int sigmoid_degree);

/* CKKS parameters with bootstrapping for the trainer: log_n = 16 is the
 * 128-bit preset of cdl_ckks_bootstrap_preset (9 levels after a bootstrap);
 * log_n = 10..14 are INSECURE test parameters (allow_insecure set) with the
 * same level plan: the insecure bootstrapping preset of that N with 9
 * computation primes of 40 bits instead of 2. */
CDL_API cdl_status cdl_logreg_bootstrap_preset(int log_n, cdl_ckks_param_spec *spec,
                                               cdl_ckks_bootstrap_params *params);

/* Slots per sample (d + 1 rounded up to a power of two) and samples per
 * ciphertext for d features in this context (CDL_ERR_PARAMETERS if a row does
 * not fit the slots). */
CDL_API cdl_status cdl_logreg_layout(const cdl_ckks_context *ctx, size_t d, size_t *row, size_t *rows_per_ct);

/* The rotation steps the server needs for d features, written to
 * steps[0..*count) (capacity CDL_LOGREG_MAX_STEPS is always enough):
 * 1, 2, ..., d'/2 and their negatives (sum and replication within a row),
 * d', 2 d', ..., N/4 (sum over rows). Pass them to cdl_ckks_keygen_galois. */
#define CDL_LOGREG_MAX_STEPS 64
CDL_API cdl_status cdl_logreg_galois_steps(const cdl_ckks_context *ctx, size_t d, int *steps, size_t capacity,
                                           size_t *count);

/* ---- client ---- */
typedef struct cdl_logreg_encrypted_data cdl_logreg_encrypted_data;
typedef struct cdl_logreg_encrypted_weights cdl_logreg_encrypted_weights;

/* Encrypt n samples of d features (x row-major, n * d) with labels y[i] in
 * {-1, +1}, as Z_i = y_i (1, x_i), under the secret key, at the top level.
 * Features should be scaled to about [-1, 1] (e.g. pixels in [0, 1]) so that
 * <Z_i, beta> stays inside the sigmoid's interval. */
CDL_API cdl_status cdl_logreg_encrypt_dataset(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                              cdl_rng *rng, const double *x, const int *y, size_t n, size_t d,
                                              cdl_logreg_encrypted_data **out);
/* The same at a given level (with bootstrapping: the bootstrap's output level,
 * the highest any iteration runs at; smaller ciphertexts). Draws the same
 * randomness in the same order: a seeded generator gives the same ciphertexts. */
CDL_API cdl_status cdl_logreg_encrypt_dataset_level(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                                    cdl_rng *rng, const double *x, const int *y, size_t n, size_t d,
                                                    int level, cdl_logreg_encrypted_data **out);
CDL_API void cdl_logreg_encrypted_data_free(cdl_logreg_encrypted_data *data);
CDL_API size_t cdl_logreg_encrypted_data_samples(const cdl_logreg_encrypted_data *data);
CDL_API size_t cdl_logreg_encrypted_data_ciphertexts(const cdl_logreg_encrypted_data *data);
CDL_API int cdl_logreg_encrypted_data_level(const cdl_logreg_encrypted_data *data);

/* ---- server: evaluation keys only ---- */
/* Run cfg->iterations iterations on the encrypted set. Refuses, before any
 * work: a set encrypted under other parameters (CDL_ERR_MISMATCH), missing
 * Galois keys (CDL_ERR_EXHAUSTED, naming the step), more iterations than the
 * levels allow (CDL_ERR_EXHAUSTED, giving the largest K that fits). */
CDL_API cdl_status cdl_logreg_train_encrypted(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                              const cdl_ckks_galois_keys *gk,
                                              const cdl_logreg_encrypted_data *data, const cdl_logreg_config *cfg,
                                              cdl_logreg_encrypted_weights **out);
/* The same with bootstrapping (bt and bk may both be NULL: the call above).
 * gk must then also hold the conjugation key (cdl_ckks_keygen_galois with
 * conjugate = 1); the rotation keys may be limited to the data's level. */
CDL_API cdl_status cdl_logreg_train_encrypted_bootstrapped(const cdl_ckks_context *ctx,
                                                           const cdl_ckks_relin_key *rlk,
                                                           const cdl_ckks_galois_keys *gk,
                                                           const cdl_ckks_bootstrapper *bt,
                                                           const cdl_ckks_bootstrap_keys *bk,
                                                           const cdl_logreg_encrypted_data *data,
                                                           const cdl_logreg_config *cfg,
                                                           cdl_logreg_encrypted_weights **out);
CDL_API void cdl_logreg_encrypted_weights_free(cdl_logreg_encrypted_weights *w);
/* Level of the weights' ciphertext (what is left of the budget). */
CDL_API int cdl_logreg_encrypted_weights_level(const cdl_logreg_encrypted_weights *w);

/* ---- server: training one iteration at a time ----
 * A trainer holds the encrypted state (beta_k and v_k, both full-slot
 * ciphertexts) and the iteration count k. It refers to the keys, the
 * bootstrapper and the data (which must outlive it) and copies cfg (its
 * progress callback is not used). bt and bk NULL: no bootstrapping, K must fit
 * the levels (as cdl_logreg_train_encrypted). The arithmetic is deterministic:
 * the same inputs give bit-identical ciphertexts, whether the run went through
 * a save / load or not. After a failed call the trainer must only be freed. */
typedef struct cdl_logreg_trainer cdl_logreg_trainer;
CDL_API cdl_status cdl_logreg_trainer_new(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                          const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                          const cdl_ckks_bootstrap_keys *bk, const cdl_logreg_encrypted_data *data,
                                          const cdl_logreg_config *cfg, cdl_logreg_trainer **out);
CDL_API void cdl_logreg_trainer_free(cdl_logreg_trainer *tr);
/* Iteration k + 1 (bootstrapping beta and v first if it does not fit their levels). */
CDL_API cdl_status cdl_logreg_trainer_step(cdl_logreg_trainer *tr);
CDL_API int cdl_logreg_trainer_iteration(const cdl_logreg_trainer *tr); /* k: iterations done, 0..K */
CDL_API int cdl_logreg_trainer_bootstraps(const cdl_logreg_trainer *tr); /* bootstraps so far (saved too) */
/* Wall time of the bootstraps this trainer object ran (not saved: a loaded trainer starts at 0). */
CDL_API double cdl_logreg_trainer_bootstrap_seconds(const cdl_logreg_trainer *tr);
/* Level of beta_k (after k >= 1 iterations). */
CDL_API int cdl_logreg_trainer_level(const cdl_logreg_trainer *tr);
/* A copy of beta_k (k >= 1) for the client to decrypt. */
CDL_API cdl_status cdl_logreg_trainer_weights(const cdl_logreg_trainer *tr, cdl_logreg_encrypted_weights **out);
/* The state after k >= 1 iterations as bytes (malloc'ed, cdl_free_bytes):
 * format tag, parameter hash, the data's shape, the config, k, the bootstrap
 * count, beta_k and v_k, a BLAKE2b checksum. Ciphertexts only: nothing secret.
 * Deterministic: a resumed run saves the same bytes as an uninterrupted one. */
CDL_API cdl_status cdl_logreg_trainer_save(const cdl_logreg_trainer *tr, uint8_t **data, size_t *len);
/* A trainer from saved bytes, for the same keys, bootstrapper, data and
 * config (every field is checked: CDL_ERR_MISMATCH naming the first that
 * differs, CDL_ERR_FORMAT for damaged bytes). */
CDL_API cdl_status cdl_logreg_trainer_load(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                           const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                           const cdl_ckks_bootstrap_keys *bk, const cdl_logreg_encrypted_data *data,
                                           const cdl_logreg_config *cfg, const uint8_t *bytes, size_t len,
                                           cdl_logreg_trainer **out);

/* ---- client ---- */
/* weights[0] is the bias, weights[1..d] the features' weights (d + 1 values). */
CDL_API cdl_status cdl_logreg_decrypt_weights(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                              const cdl_logreg_encrypted_weights *w, double *weights,
                                              size_t count);

/* ---- plaintext ---- */
/* The same algorithm (same polynomial, schedule and order of updates) in
 * doubles; weights has d + 1 entries. */
CDL_API cdl_status cdl_logreg_train_plain(const double *x, const int *y, size_t n, size_t d,
                                          const cdl_logreg_config *cfg, double *weights);
/* What the plaintext run saw: the largest |beta_k| and |v_k| entry over
 * k = 1..K (bootstrapping needs it below cfg->weight_bound) and the largest
 * |<Z_i, v_(k-1)>| (the sigmoid's argument; the polynomial is fitted on [-B, B]). */
typedef struct cdl_logreg_plain_stats {
    double max_abs_state;
    double max_abs_margin;
} cdl_logreg_plain_stats;
CDL_API cdl_status cdl_logreg_train_plain_stats(const double *x, const int *y, size_t n, size_t d,
                                                const cdl_logreg_config *cfg, double *weights,
                                                cdl_logreg_plain_stats *stats);
/* Fraction of samples with sign(<(1, x_i), w>) == y_i (0 counts as -1). */
CDL_API double cdl_logreg_accuracy(const double *weights, const double *x, const int *y, size_t n, size_t d);

/* ======================================================================
 * Multiclass softmax regression on encrypted features (src/learn/softmax.c)
 * ======================================================================
 * Transfer learning as HETAL (Lee et al., ICML 2023): the client runs a
 * frozen feature extractor in plaintext (e.g. cdl_nn_run_value up to the
 * input of a shipped CNN's last dense layer), encrypts the features and the
 * labels; the server trains the last layer on ciphertexts (evaluation keys
 * only) and returns the encrypted weights.
 *
 * Algorithm (docs/learn.md). x_i in R^d (the client appends a constant 1 if it
 * wants a bias), one-hot y_i in {0, 1}^c, weights W (c x d), logits
 * z_i = W x_i. The softmax is replaced by its first-order Taylor polynomial at
 * equal logits, p(z) = 1/c + (z - mean(z)) / c; with W = 0 at the start the
 * logits keep mean 0 over the classes (the gradient's rows sum to 0), so the
 * gradient is
 *   G(W) = (1/n) sum_i (z_i / c + 1/c - y_i) x_i^T,
 * the gradient of the squared loss (1 / 2c) sum_i |z_i - (c y_i - 1)|^2 / n
 * (convex: no interval for the logits to leave). Full-batch Nesterov
 * gradient descent, iteration k = 1..K from W_0 = V_0 = 0:
 *   W_k = V_(k-1) - gamma_k G(V_(k-1)),  V_k = (1 - eta_k) W_k + eta_k W_(k-1)
 * with gamma_k = gamma (or gamma / (k + 1)) and eta_k as in the logistic
 * regression. Predict argmax_j (W_K x)_j.
 *
 * Packing: the sample-interleaved layout (src/learn/learn_internal.h): r = d
 * rounded up to a power of two values per sample, m = N/2 / r samples per
 * ciphertext, value s of sample i in slot s m + i. The weights are kept as
 * C' = c rounded up to a power of two generalized diagonals (Halevi-Shoup),
 * each replicated over the samples, so z = W x is C' ciphertext products, a
 * few rotations by multiples of m and log2(r / C') more to fold, with no
 * mask; the gradient is the same products with the roles swapped, summed
 * over the samples once per iteration (one mask). 3 levels per iteration;
 * the weights and the Nesterov state (2 C' ciphertexts) are packed into one
 * ciphertext for a single bootstrap when the levels run out.
 */
typedef struct cdl_softmax_config {
    int iterations;       /* K >= 1 (full batch: one iteration = one epoch) */
    double learning_rate; /* gamma > 0; stable below about c / lambda_max((1/n) X^T X) */
    int lr_decay;         /* 1: gamma_k = gamma / (k + 1); 0: gamma_k = gamma (default) */
    int nesterov;         /* 1 (default): Nesterov acceleration; 0: plain gradient descent */
    double weight_bound;  /* W: every |weight| and Nesterov state entry must stay below it (the
                             bootstrap's range); 0 < W <= 1024, 0 means the default 4 */
} cdl_softmax_config;

/* iterations 10, learning_rate 0.5, constant, Nesterov, W 4. */
CDL_API void cdl_softmax_config_default(cdl_softmax_config *cfg);

/* Levels an iteration after the first spends (3: the logits, the gradient's
 * products, the sum over the samples). */
CDL_API int cdl_softmax_levels_per_iteration(void);
/* Bootstraps K iterations take with the data at data_level and a bootstrap
 * returning at boot_level (< 0: no bootstrapping); -1 if they cannot run. */
CDL_API int cdl_softmax_bootstraps_needed(int data_level, int boot_level, int iterations);
/* The level the features must be encrypted at for a bootstrap output level
 * (the labels go one level higher): boot_level - 2 (iterations then start at
 * boot_level - 2 at most), or, without bootstrapping (boot_level < 0),
 * max_level - 1. */
CDL_API int cdl_softmax_data_level(const cdl_ckks_context *ctx, int boot_level);

/* Values per sample (d rounded up to a power of two), samples per
 * ciphertext, padded classes (c rounded up to a power of two; the row must
 * hold them and each ciphertext 2 C' samples) for d features and c classes. */
CDL_API cdl_status cdl_softmax_layout(const cdl_ckks_context *ctx, size_t d, size_t classes, size_t *row,
                                      size_t *rows_per_ct, size_t *classes_padded);
/* The rotation steps the server needs (capacity CDL_SOFTMAX_MAX_STEPS is always enough). */
#define CDL_SOFTMAX_MAX_STEPS 96
CDL_API cdl_status cdl_softmax_galois_steps(const cdl_ckks_context *ctx, size_t d, size_t classes, int *steps,
                                            size_t capacity, size_t *count);

typedef struct cdl_softmax_encrypted_data cdl_softmax_encrypted_data;
typedef struct cdl_softmax_encrypted_weights cdl_softmax_encrypted_weights;

/* ---- client ----
 * Encrypt n samples of d features (x row-major, n * d) and their labels
 * (0..classes-1) under the secret key: the features at `level`, the labels
 * (one-hot, r / C' ciphertexts of features per label ciphertext) at level + 1.
 * Features should be scaled to about unit variance (the CLI standardizes). */
CDL_API cdl_status cdl_softmax_encrypt_dataset(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                               cdl_rng *rng, const double *x, const int *labels, size_t n, size_t d,
                                               size_t classes, int level, cdl_softmax_encrypted_data **out);
CDL_API void cdl_softmax_encrypted_data_free(cdl_softmax_encrypted_data *data);
CDL_API size_t cdl_softmax_encrypted_data_samples(const cdl_softmax_encrypted_data *data);
CDL_API size_t cdl_softmax_encrypted_data_ciphertexts(const cdl_softmax_encrypted_data *data); /* of features */
CDL_API int cdl_softmax_encrypted_data_level(const cdl_softmax_encrypted_data *data);

/* ---- server: evaluation keys only ----
 * A trainer holds the encrypted state (W_k and V_k as C' diagonals each) and
 * k, refers to the keys, the bootstrapper and the data (which must outlive
 * it) and copies cfg. bt and bk NULL: no bootstrapping (K must fit the
 * levels). Creating it computes (1/n) sum_i (y_i - 1/c) x_i^T once (the label
 * term of every gradient, at the cost of about half an iteration).
 * Deterministic: the same inputs give bit-identical ciphertexts, through a
 * save / load or not. After a failed call the trainer must only be freed. */
typedef struct cdl_softmax_trainer cdl_softmax_trainer;
CDL_API cdl_status cdl_softmax_trainer_new(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                           const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                           const cdl_ckks_bootstrap_keys *bk, const cdl_softmax_encrypted_data *data,
                                           const cdl_softmax_config *cfg, cdl_softmax_trainer **out);
CDL_API void cdl_softmax_trainer_free(cdl_softmax_trainer *tr);
/* Iteration k + 1 (bootstrapping the state first if it does not fit its levels). */
CDL_API cdl_status cdl_softmax_trainer_step(cdl_softmax_trainer *tr);
CDL_API int cdl_softmax_trainer_iteration(const cdl_softmax_trainer *tr);
CDL_API int cdl_softmax_trainer_bootstraps(const cdl_softmax_trainer *tr);
CDL_API double cdl_softmax_trainer_bootstrap_seconds(const cdl_softmax_trainer *tr); /* this object's */
CDL_API int cdl_softmax_trainer_level(const cdl_softmax_trainer *tr);                /* of W_k, k >= 1 */
/* A copy of W_k (k >= 1) for the client. */
CDL_API cdl_status cdl_softmax_trainer_weights(const cdl_softmax_trainer *tr, cdl_softmax_encrypted_weights **out);
/* The state after k >= 1 iterations as bytes (cdl_free_bytes): format tag,
 * parameter hash, the data's shape, the config, k, the bootstrap count, W_k
 * and V_k, a BLAKE2b checksum. Ciphertexts only. Deterministic. */
CDL_API cdl_status cdl_softmax_trainer_save(const cdl_softmax_trainer *tr, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_softmax_trainer_load(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                            const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                            const cdl_ckks_bootstrap_keys *bk, const cdl_softmax_encrypted_data *data,
                                            const cdl_softmax_config *cfg, const uint8_t *bytes, size_t len,
                                            cdl_softmax_trainer **out);
CDL_API void cdl_softmax_encrypted_weights_free(cdl_softmax_encrypted_weights *w);

/* ---- client ---- */
/* weights: classes * d values, row j = the weights of class j. */
CDL_API cdl_status cdl_softmax_decrypt_weights(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                               const cdl_softmax_encrypted_weights *w, double *weights, size_t count);

/* ---- plaintext ---- */
/* The same algorithm in doubles (same schedule and order of updates); weights
 * gets classes * d values. stats (may be NULL): the largest |W_k|, |V_k|
 * entry (must stay below cfg->weight_bound) and the largest |logit|. */
typedef struct cdl_softmax_plain_stats {
    double max_abs_state;
    double max_abs_logit;
} cdl_softmax_plain_stats;
CDL_API cdl_status cdl_softmax_train_plain(const double *x, const int *labels, size_t n, size_t d, size_t classes,
                                           const cdl_softmax_config *cfg, double *weights,
                                           cdl_softmax_plain_stats *stats);
/* Fraction of samples with argmax_j (W x_i)_j == labels[i] (ties: the lowest j). */
CDL_API double cdl_softmax_accuracy(const double *weights, const double *x, const int *labels, size_t n, size_t d,
                                    size_t classes);

/* ======================================================================
 * A one-hidden-layer network trained end to end on encrypted data
 * (src/learn/mlp.c)
 * ======================================================================
 * x (d inputs, the client appends a 1 for a bias) -> u = W1 x (H hidden)
 * -> h = u^2 -> z = W2 h (c classes), trained by mini-batch Nesterov momentum
 * on the squared loss of the first-order Taylor softmax (as the softmax
 * regression above): dL/dz = (z + 1 - c y) / c, back-propagated through
 * h = u^2 (dL/du = 2 u W2^T dL/dz). Update t on the samples of B
 * ciphertexts (the batch, in order, wrapping around):
 *   W_t = V_(t-1) - gamma G(V_(t-1)),  V_t = W_t + mu (W_t - W_(t-1)),
 * from W_0 = V_0 = the client's initial weights.
 *
 * Packing: the layout of the softmax regression (r = d rounded up to a
 * power of two, m = N/2 / r samples per ciphertext); W1 is kept as H
 * generalized diagonals, W2 as C' (c rounded up to a power of two) diagonals
 * over the hidden units (period H), all replicated over the samples for the
 * forward pass. Forward, output error, W2^T times the error, the hidden
 * error and both gradients are ciphertext products and rotations by
 * multiples of m (no mask); the gradients are summed over the samples and
 * packed H + C' to one ciphertext (one mask), the Nesterov update is done on
 * the packed W and V, and (W + i V) / bound is bootstrapped once per update;
 * V is then unpacked (one mask) for the next forward pass. Levels: 9 per
 * update (the 128-bit N = 2^16 preset has exactly 9 after a bootstrap).
 */
typedef struct cdl_mlp_config {
    int hidden;             /* H: a power of two, 16..r, and H + C' <= samples per ciphertext */
    int batch_ciphertexts;  /* B >= 1: ciphertexts (of m samples each) per update */
    int iterations;         /* updates, >= 1 */
    double learning_rate;   /* gamma > 0 */
    double momentum;        /* mu in [0, 1) */
    double weight_bound;    /* every |W|, |V| entry must stay below it (the bootstrap's range); 0: 8 */
} cdl_mlp_config;

/* H 64, B 8, 100 updates, gamma 0.15, mu 0.9, bound 8. */
CDL_API void cdl_mlp_config_default(cdl_mlp_config *cfg);
/* Levels one update needs after a bootstrap (9). */
CDL_API int cdl_mlp_levels_per_iteration(void);
/* Values per sample, samples per ciphertext, padded classes for d inputs, c classes and H hidden units
 * (CDL_ERR_PARAMETERS if they do not fit: H <= r, C' <= H, H + C' <= m). */
CDL_API cdl_status cdl_mlp_layout(const cdl_ckks_context *ctx, size_t d, size_t classes, size_t hidden, size_t *row,
                                  size_t *rows_per_ct, size_t *classes_padded);
/* The rotation steps the server needs; it also needs the conjugation key. */
#define CDL_MLP_MAX_STEPS 128
CDL_API cdl_status cdl_mlp_galois_steps(const cdl_ckks_context *ctx, size_t d, size_t classes, size_t hidden,
                                        int *steps, size_t capacity, size_t *count);
/* The inputs' level for a bootstrap output level: boot_level - 1 (the labels one lower). */
CDL_API int cdl_mlp_data_level(int boot_level);

typedef struct cdl_mlp_encrypted_data cdl_mlp_encrypted_data;
typedef struct cdl_mlp_encrypted_weights cdl_mlp_encrypted_weights;

/* ---- client ---- */
/* Initial weights: W1 (H x d) ~ N(0, 1/d), W2 (c x H) ~ N(0, 1/H), from a public seed (deterministic). */
CDL_API cdl_status cdl_mlp_init_weights(size_t d, size_t classes, size_t hidden, uint64_t seed, double *w1,
                                        double *w2);
/* Inputs at level, labels at level - 1 (as the softmax regression's). */
CDL_API cdl_status cdl_mlp_encrypt_dataset(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                           const double *x, const int *labels, size_t n, size_t d, size_t classes,
                                           size_t hidden, int level, cdl_mlp_encrypted_data **out);
CDL_API void cdl_mlp_encrypted_data_free(cdl_mlp_encrypted_data *data);
CDL_API size_t cdl_mlp_encrypted_data_ciphertexts(const cdl_mlp_encrypted_data *data);
/* The initial weights, packed (one ciphertext at level). */
CDL_API cdl_status cdl_mlp_encrypt_weights(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                           const cdl_mlp_encrypted_data *data, const double *w1, const double *w2,
                                           int level, cdl_mlp_encrypted_weights **out);
CDL_API void cdl_mlp_encrypted_weights_free(cdl_mlp_encrypted_weights *w);
/* w1: H x d, w2: c x H. */
CDL_API cdl_status cdl_mlp_decrypt_weights(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                           const cdl_mlp_encrypted_weights *w, double *w1, double *w2);

/* ---- server (evaluation keys, conjugation and bootstrapping keys) ---- */
typedef struct cdl_mlp_trainer cdl_mlp_trainer;
CDL_API cdl_status cdl_mlp_trainer_new(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                       const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                       const cdl_ckks_bootstrap_keys *bk, const cdl_mlp_encrypted_data *data,
                                       const cdl_mlp_encrypted_weights *init, const cdl_mlp_config *cfg,
                                       cdl_mlp_trainer **out);
CDL_API void cdl_mlp_trainer_free(cdl_mlp_trainer *tr);
CDL_API cdl_status cdl_mlp_trainer_step(cdl_mlp_trainer *tr); /* one update (and its bootstrap) */
CDL_API int cdl_mlp_trainer_iteration(const cdl_mlp_trainer *tr);
CDL_API int cdl_mlp_trainer_bootstraps(const cdl_mlp_trainer *tr);
CDL_API double cdl_mlp_trainer_bootstrap_seconds(const cdl_mlp_trainer *tr);
CDL_API int cdl_mlp_trainer_level(const cdl_mlp_trainer *tr);
CDL_API cdl_status cdl_mlp_trainer_weights(const cdl_mlp_trainer *tr, cdl_mlp_encrypted_weights **out);
CDL_API cdl_status cdl_mlp_trainer_save(const cdl_mlp_trainer *tr, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_mlp_trainer_load(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                        const cdl_ckks_galois_keys *gk, const cdl_ckks_bootstrapper *bt,
                                        const cdl_ckks_bootstrap_keys *bk, const cdl_mlp_encrypted_data *data,
                                        const cdl_mlp_config *cfg, const uint8_t *bytes, size_t len,
                                        cdl_mlp_trainer **out);

/* ---- plaintext twin ---- */
typedef struct cdl_mlp_plain_stats {
    double max_abs_state;  /* largest |W|, |V| entry (below cfg->weight_bound for the bootstraps) */
    double max_abs_hidden; /* largest |u| */
    double max_abs_logit;  /* largest |z| */
} cdl_mlp_plain_stats;
/* The same updates in doubles from the same initial weights; w1, w2 get W_K. */
CDL_API cdl_status cdl_mlp_train_plain(const double *x, const int *labels, size_t n, size_t d, size_t classes,
                                       size_t samples_per_ct, const cdl_mlp_config *cfg, const double *w1_init,
                                       const double *w2_init, double *w1, double *w2, cdl_mlp_plain_stats *stats);
CDL_API double cdl_mlp_accuracy(const double *w1, const double *w2, const double *x, const int *labels, size_t n,
                                size_t d, size_t hidden, size_t classes);

#ifdef __cplusplus
}
#endif
#endif
