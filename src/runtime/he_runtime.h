/*
 * he_runtime.h (private): the encrypted batch object shared by the batch
 * code (encrypt, decrypt, serialization) and the evaluator.
 */
#ifndef CDL_RUNTIME_HE_RUNTIME_H
#define CDL_RUNTIME_HE_RUNTIME_H

#include <stddef.h>

#include "cryptodl/he.h"

/* ct[i] encrypts value i of every image; NULL means "exactly zero" (padding). */
struct cdl_he_batch {
    size_t n_images;
    size_t count;
    cdl_ckks_ciphertext **ct;
};

cdl_status cdl_he_batch_alloc(size_t n_images, size_t count, cdl_he_batch **out);

struct he_op;
struct he_layout;
/* Slots packing (he_slots.c). The S slot values of input ciphertext `ct` for
 * n images (row-major, plan->input_size each); the n images' outputs held by
 * decoded output ciphertext `ct` written into out (row-major). */
void cdl_he_slots_input_vector(const cdl_he_plan *plan, const double *images, size_t n, size_t ct, double *vals);
void cdl_he_slots_output_values(const cdl_he_plan *plan, const double *vals, size_t ct, size_t n, double *out);
/* A linear op on the input ciphertexts in[0..n_in_ct) into out[0..n_out_ct) (new ciphertexts).
 * progress (may be NULL) hears, from the calling thread, how far it is (in output values, below
 * op->n_out: the caller reports the end). */
cdl_status cdl_he_slots_linear(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                               const struct he_op *op, cdl_ckks_ciphertext *const *in, cdl_he_progress_fn progress,
                               void *user, cdl_ckks_ciphertext **out);
/* The same for m twins (ops with the same diagonals, he_schedule.c): op g maps in[g] to out[g];
 * each diagonal is encoded once for all of them when their inputs share level and scale. */
cdl_status cdl_he_slots_linear_twins(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                     const cdl_ckks_galois_keys *gk, const struct he_op *const *ops, size_t m,
                                     cdl_ckks_ciphertext *const *const *in, cdl_he_progress_fn progress, void *user,
                                     cdl_ckks_ciphertext **const *out);
/* ADD whose inputs' layouts carry different signs (op->slot_sign_fix): the
 * aligned input times a +-1 plaintext, rescaled to target_scale, both at `level`. */
cdl_status cdl_he_slots_add_signed(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const struct he_op *op,
                                   cdl_ckks_ciphertext *const *a, cdl_ckks_ciphertext *const *b, int level,
                                   double target_scale, cdl_ckks_ciphertext **out);
/* SIGN in place on the ciphertexts of a tensor with layout lay. */
cdl_status cdl_he_slots_sign(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const struct he_op *op,
                             const struct he_layout *lay, cdl_ckks_ciphertext **cts);

/* Detect the CPU's kernels once, before the parallel loops read the result. */
void cdl_he_linear_prepare(void);
/* Linear group g of op (he_linear.c): out[r] (r < group rows, in the order of
 * op->order) = sum of w * in[col] with w encoded at const_scale, not yet
 * rescaled (scale s_in * const_scale, at `level`). */
cdl_status cdl_he_linear_group(const cdl_ckks_context *ctx, const struct he_op *op, size_t g,
                               cdl_ckks_ciphertext *const *in, double s_in, double const_scale, int level,
                               cdl_ckks_ciphertext **out);

/* Testing: 1 = compute linear layers with the public mul_const/add API, one
 * neuron at a time, instead of the fused kernel (the results must be
 * bit-identical). Not thread-safe; set it before evaluating. */
void cdl_he_set_reference_linear(int on);
/* Testing: 1 = the fused kernel's portable path even where AVX-512 IFMA exists;
 * 2 = the IFMA path folding every 2 columns (its multi-chunk path, normally
 * taken above 2048 columns); 0 = automatic. */
void cdl_he_set_linear_kernel(int mode);
/* Testing: the IFMA kernel's final reduction, out[k] = (lo[k] + hi[k] 2^52) mod q
 * for lo, hi < 2^63 (n a multiple of 8, q < 2^52). Returns 0 without IFMA. */
int cdl_he_linear_fold_check(uint64_t q, const uint64_t *lo, const uint64_t *hi, size_t n, uint64_t *out);

#endif
