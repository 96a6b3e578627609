/*
 * learn_internal.h: what the trainers of src/learn share (logreg.c,
 * softmax.c, mlp.c): constant products that land on an exact scale,
 * rotate-and-add sums, the level plan between bootstraps, and the
 * sample-interleaved slot layout of the multiclass trainers with its
 * operations (sums over the samples, packing many sample-replicated
 * ciphertexts into one for a single bootstrap and back, matrix products by
 * generalized diagonals).
 *
 * The interleaved layout (docs/learn.md, "Softmax regression"): a
 * ciphertext of S = N/2 slots holds m samples of r values each (r a power of
 * two, m = S / r); value s of sample i sits in slot s * m + i. A rotation by
 * k * m then shifts the values of every sample cyclically by k (the slot
 * index wraps around S exactly when s + k wraps around r), so products of a
 * sample by a matrix (generalized diagonals, Halevi-Shoup) need no masks;
 * sums over the samples (the gradient) are not cyclic and need one mask.
 * A ciphertext "replicated over the samples" holds the same r values for
 * every i (weights).
 */
#ifndef CDL_LEARN_INTERNAL_H
#define CDL_LEARN_INTERNAL_H

#include <stddef.h>

#include "cryptodl/learn.h"

/* a += rot(a, sign * s) for s = first, 2 first, ... < limit. */
cdl_status lrn_rotate_sum(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, cdl_ckks_ciphertext *a,
                          cdl_ckks_ciphertext *tmp, size_t first, size_t limit, int sign);
/* out = c * a, rescaled once, with the result's scale exactly `target` (a at level >= 1). */
cdl_status lrn_mul_const_to(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, double c, double target,
                            cdl_ckks_ciphertext *out);
/* out = a * b, relinearized and rescaled. */
cdl_status lrn_mul_relin_rescale(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                 const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b,
                                 cdl_ckks_ciphertext *out);
double lrn_now_seconds(void);

/* The level an iteration runs at, from the state at level l with r
 * iterations left (this one included) each spending `per` levels: the lowest
 * level that holds them all if l does; else, with bootstrapping, the lowest
 * level that leaves as many iterations before the next bootstrap plus the one
 * level the packing spends (l - (l - 1) mod per), if l holds one; else -1:
 * bootstrap first. -2: cannot run (no bootstrapping, not enough levels). */
int lrn_plan_level(int l, int r, int per, int boot);
/* The whole plan: bootstraps for iterations 2..K when iteration 1 leaves the
 * state at `first_level` and a bootstrap (with its unpacking) returns it at
 * `top` (< 0: no bootstrapping); -1 if it cannot run. */
int lrn_plan_bootstraps(int first_level, int top, int iterations, int per);

/* Nesterov's eta_k from lambda_k (updated to lambda_(k+1)); 0 without Nesterov. */
double lrn_step_eta(int nesterov, double *lambda);

/* The smallest power of two >= v (1 for v = 0). */
size_t lrn_pow2_at_least(size_t v);

/* ---- the interleaved layout ---- */
typedef struct lrn_layout {
    size_t slots; /* S = N / 2 */
    size_t row;   /* r: values per sample, a power of two */
    size_t m;     /* samples per ciphertext, S / r */
} lrn_layout;

/* A layout with r = the smallest power of two >= width (CDL_ERR_PARAMETERS if r > S / min_samples). */
cdl_status lrn_layout_make(const cdl_ckks_context *ctx, size_t width, size_t min_samples, lrn_layout *L,
                           const char *fn);

/* A plaintext encoded on demand and kept while its level and scale do not change. */
typedef struct lrn_mask {
    cdl_ckks_plaintext *pt;
    int level;
    double scale;
} lrn_mask;
void lrn_mask_free(lrn_mask *mk);
/* Sets the nonzero entries of v (L->slots values, zero on entry; slot s * L->m + i holds value s of sample i). */
typedef void (*lrn_fill_fn)(const lrn_layout *L, const void *arg, double *v);
/* Encode the values fill(L, arg) sets into *pt (made when NULL). */
cdl_status lrn_encode_filled(const cdl_ckks_context *ctx, const lrn_layout *L, lrn_fill_fn fill, const void *arg,
                             int level, double scale, cdl_ckks_plaintext **pt);
/* The same into a kept mask: nothing to do when mk holds it at this level and scale already. */
cdl_status lrn_mask_filled(const cdl_ckks_context *ctx, const lrn_layout *L, lrn_fill_fn fill, const void *arg,
                           int level, double scale, lrn_mask *mk);
/* The mask "1 at the sample positions i with i mod period == 0, 0 elsewhere" (every value s). */
cdl_status lrn_mask_columns(const cdl_ckks_context *ctx, const lrn_layout *L, size_t period, int level, double scale,
                            lrn_mask *mk);

/* Sum over the m samples of every value s, replicated over the samples again:
 * ct (level >= 1) becomes, in place, the sums at level - 1 with scale exactly
 * `target`. 2 log2(m) rotations (1, 2, ..., m/2 and their negatives) and one
 * plaintext product (the mask of the sample position 0). */
cdl_status lrn_sum_samples(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const lrn_layout *L,
                           cdl_ckks_ciphertext *ct, cdl_ckks_ciphertext *tmp, lrn_mask *mask, double target);

/* Pack count <= m ciphertexts, each replicated over the samples and at level
 * >= 1, into one at level 0 whose sample position j holds cts[j] / bound,
 * read at scale = the context's default (the bootstrap's input). One constant
 * product per group of equal level and scale (cdl_ckks_dot_values). */
cdl_status lrn_pack(const cdl_ckks_context *ctx, const lrn_layout *L, cdl_ckks_ciphertext *const *cts, size_t count,
                    double bound, cdl_ckks_ciphertext *out, cdl_ckks_ciphertext *tmp);
/* The inverse, after the bootstrap: out[j] = bound * (sample position j of
 * in), replicated over the samples, at in's level - 1 with scale exactly
 * `target`. `in` is overwritten. log2(m / P) + count (1 + log2 P) rotations
 * (P = count rounded up to a power of two). */
cdl_status lrn_unpack(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const lrn_layout *L,
                      cdl_ckks_ciphertext *in, size_t count, double bound, double target,
                      cdl_ckks_ciphertext *const *out, cdl_ckks_ciphertext *tmp, lrn_mask *mask);

/* The Galois steps the layout operations above need (sum over the samples,
 * pack, unpack): +-1, +-2, ..., +-m/2. Appended to steps[*count..). */
cdl_status lrn_steps_samples(const lrn_layout *L, int *steps, size_t capacity, size_t *count);
/* Append one step unless it is 0 or already listed. */
cdl_status lrn_steps_add(int step, int *steps, size_t capacity, size_t *count);

/* ---- products by generalized diagonals (baby-step giant-step) ---- */
/* out[0] = src dropped to level; out[a] = rot(out[0], a * step) for a = 1..count-1 (hoisted). */
cdl_status lrn_hoisted(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const cdl_ckks_ciphertext *src,
                       int level, int step, size_t count, cdl_ckks_ciphertext *const *out);
/* out = sum_b rot( sum_a R[a] (*) F[a + b B], b giant_step ), relinearized, not rescaled (B baby, G giant
 * terms). t3 and m3 are scratch (size 3), tmp scratch. */
cdl_status lrn_diag_product(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                            const cdl_ckks_galois_keys *gk, cdl_ckks_ciphertext *const *R, size_t B, size_t G,
                            int giant_step, cdl_ckks_ciphertext *const *F, cdl_ckks_ciphertext *out,
                            cdl_ckks_ciphertext *t3, cdl_ckks_ciphertext *m3, cdl_ckks_ciphertext *tmp);
/* Acc[a + b B] (+)= R[a] (*) E[b] (size 3, not relinearized; set when first). */
cdl_status lrn_outer_accumulate(const cdl_ckks_context *ctx, cdl_ckks_ciphertext *const *R, size_t B,
                                cdl_ckks_ciphertext *const *E, size_t G, cdl_ckks_ciphertext *const *acc, int first,
                                cdl_ckks_ciphertext *m3);

/* ---- client: the interleaved layout's encryption ---- */
/* The client's data before encryption: labels in 0..classes-1, every value of x (n x d) finite (`value` names
 * them in the message: "feature", "input"). */
cdl_status lrn_check_samples(const double *x, const int *labels, size_t n, size_t d, size_t classes,
                             const char *value, const char *fn);
/* ceil(n / m) ciphertexts of the samples (x row-major, n x d, d <= r) at level. */
cdl_status lrn_encrypt_samples(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                               const lrn_layout *L, const double *x, size_t n, size_t d, int level,
                               cdl_ckks_ciphertext ***out, size_t *count);
/* One-hot labels, r / cp feature ciphertexts per label ciphertext: feature ciphertext q P + p in the values
 * p cp .. p cp + cp - 1 of label ciphertext q. */
cdl_status lrn_encrypt_labels(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                              const lrn_layout *L, const int *labels, size_t n, size_t cp, int level,
                              cdl_ckks_ciphertext ***out, size_t *count);
void lrn_free_cts(cdl_ckks_ciphertext **a, size_t n);
/* A working ciphertext that starts small (level 0, one limb) and grows to the levels it is used at. */
cdl_status lrn_new_ct(const cdl_ckks_context *ctx, cdl_ckks_ciphertext **out);
cdl_status lrn_new_cts(const cdl_ckks_context *ctx, cdl_ckks_ciphertext ***a, size_t n);

/* ---- serialization of ciphertext lists (checkpoints) ---- */
#include "core/bytes.h"
/* u64 length + cdl_ckks_ciphertext_save bytes, for each. */
cdl_status lrn_write_cts(const cdl_ckks_context *ctx, cdl_writer *w, cdl_ckks_ciphertext *const *cts, size_t count);
/* The inverse: replaces cts[i] (freed) by the loaded ones; each must be of size
 * 2 and at a level <= max_level. */
cdl_status lrn_read_cts(const cdl_ckks_context *ctx, cdl_reader *r, cdl_ckks_ciphertext **cts, size_t count,
                        int max_level, const char *fn);

/* ---- trainer_common.c: what the three trainers check, keep and save alike ---- */

/* The checks before a trainer is made: the data (by their parameter hash) belong to ctx, and so does the
 * bootstrapper if there is one, working on all the slots (`fills`: what fills them, for the message, e.g.
 * "the weights fill"). *boot_level: its output level, -1 without. */
cdl_status lrn_check_setup(const cdl_ckks_context *ctx, const uint8_t *data_hash, const cdl_ckks_bootstrapper *bt,
                           const char *fills, const char *fn, int *boot_level);
/* Every step has a Galois key serving levels up to `need` (else: generate them with the steps of steps_fn). */
cdl_status lrn_check_galois_keys(const cdl_ckks_galois_keys *gk, const int *steps, size_t count, int need,
                                 const char *steps_fn, const char *fn);
/* The conjugation key serves `level` (it splits the bootstrapped `what`). */
cdl_status lrn_check_conjugation(const cdl_ckks_galois_keys *gk, int level, const char *what, const char *fn);

/* i in every slot at scale 1, at level: exactly the monomial X^(N/2). */
cdl_status lrn_imag_plaintext(const cdl_ckks_context *ctx, int level, cdl_ckks_plaintext **out);

/* One bootstrap of two real ciphertexts re and im (both at level 1, scale free; overwritten): packed as
 * u = (re + i im) / bound at level 0 (a constant product to the default scale S spends the level; the real
 * and imaginary parts are in the bootstrap's range |.| <= 1 while |re|, |im| <= bound), bootstrapped, and
 * split by a conjugation: with b the bootstrapped u at scale s, b + conj(b) = 2 re / bound and
 * -i (b - conj(b)) = 2 im / bound, read at scale 2 s / bound. Multiplying by i (`imag`, from
 * lrn_imag_plaintext), conjugating and relabelling cost no level. out_re and out_im at the bootstrap's output
 * level; tmp scratch; the bootstrap's seconds are added to *seconds. */
typedef struct lrn_boot {
    const cdl_ckks_bootstrapper *bt;
    const cdl_ckks_bootstrap_keys *bk;
    const cdl_ckks_relin_key *rlk;
    const cdl_ckks_galois_keys *gk; /* with the conjugation */
    const cdl_ckks_plaintext *imag;
} lrn_boot;
cdl_status lrn_bootstrap_pair(const cdl_ckks_context *ctx, const lrn_boot *b, double bound, cdl_ckks_ciphertext *re,
                              cdl_ckks_ciphertext *im, cdl_ckks_ciphertext *out_re, cdl_ckks_ciphertext *out_im,
                              cdl_ckks_ciphertext *tmp, double *seconds);

/* Nesterov's lambda after k iterations (lambda_(k+1)), the same doubles as the run that made them. */
double lrn_lambda_after(int nesterov, int k);
/* A saved state at levels lw (weights) and lv (momentum) can go on with `remaining` iterations of `per` levels. */
int lrn_state_fits_plan(int lw, int lv, int remaining, int per, int boot);

/* The trainers' checkpoint envelope: 8 magic bytes, the payload, a BLAKE2b-256 of both.
 * lrn_checkpoint_finish: w holds magic and payload; when st and w are fine, append the checksum and hand w's
 * bytes over (*data, *len); otherwise free w and return the failure. */
cdl_status lrn_checkpoint_finish(cdl_writer *w, cdl_status st, uint8_t **data, size_t *len);
/* Check the magic (else "fn: not <what>") and the checksum; r then reads the payload. */
cdl_status lrn_checkpoint_open(const uint8_t *bytes, size_t len, const char *magic, const char *what, const char *fn,
                               cdl_reader *r);
/* "fn: the checkpoint was made with <what> = saved, this run has now" (CDL_ERR_MISMATCH). */
cdl_status lrn_mismatch(const char *fn, const char *what, double saved, double now);

/* The payload's header, the same shape for every trainer: u32 version, the CKKS parameter hash, the trainer's
 * configuration fields (in its own order), then three u32 counters (bootstrap level, iterations done,
 * bootstraps). A trainer describes its configuration once, as the fields this run would write: the writer
 * writes them, the reader reads the saved ones and refuses the first that differs (lrn_mismatch), so a
 * checkpoint resumes only the job that made it. */
typedef enum { LRN_U8, LRN_U32, LRN_U64, LRN_F64 } lrn_field_type;
typedef struct lrn_field {
    lrn_field_type type;
    const char *what; /* its name in the mismatch message */
    uint64_t u;       /* the value as written (LRN_U8, LRN_U32: truncated to that width) */
    double f;         /* LRN_F64 */
} lrn_field;
#define LRN_MAX_FIELDS 16
lrn_field lrn_field_u8(const char *what, uint8_t v);
lrn_field lrn_field_u32(const char *what, uint32_t v);
lrn_field lrn_field_u64(const char *what, uint64_t v);
lrn_field lrn_field_f64(const char *what, double v);
/* The data's fields every trainer starts with: samples, values per sample (named `width`: "features",
 * "inputs"), classes (0: no such field), the data's level. Returns how many it wrote (at most 4). */
size_t lrn_fields_data(lrn_field *f, uint64_t samples, const char *width, uint64_t d, uint64_t classes, int level);
typedef struct lrn_counters {
    uint32_t boot, k, bootstraps;
} lrn_counters;
/* Starts w with the magic and the header; the trainer appends its ciphertexts, then lrn_checkpoint_finish. */
void lrn_checkpoint_begin(cdl_writer *w, const char *magic, uint32_t version, const uint8_t *hash,
                          const lrn_field *fields, size_t count, const lrn_counters *c);
/* After lrn_checkpoint_open: reads the version (another one: CDL_ERR_FORMAT), then the rest of the header, then
 * checks the parameter hash against ctx's and the fields, in order (CDL_ERR_MISMATCH); *c gets the saved
 * counters. */
cdl_status lrn_header_read(cdl_reader *r, uint32_t version, const cdl_ckks_context *ctx, const lrn_field *fields,
                           size_t count, lrn_counters *c, const char *fn);

#endif
