/*
 * keyswitch.h: hybrid key switching (Han-Ki, "Better Bootstrapping for
 * Approximate Homomorphic Encryption", CT-RSA 2020, section 3), split in two
 * halves so that rotations can share the first (Halevi-Shoup hoisting):
 *
 *  decompose: c (NTT, level l) -> for each digit d (alpha primes of Q_l):
 *    D_d = ModUp([c]_{Q_d}) over Q_l u P, NTT form. Limbs inside the digit are
 *    copied exactly; the others come from the fast base conversion (exact up
 *    to a multiple k*Q_d, k < alpha, which the gadget g_d cancels mod Q_l P).
 *  apply: (u0, u1) = ModDown( sum_d D_d(o perm) * ksk_d ), i.e. divide by P.
 *    With a permutation (automorphism in NTT form), D_d is read permuted.
 *
 * Extended-basis limb t of a digit buffer is Q prime t for t <= l and
 * special prime t - (l+1) for t > l; buffers are (digit, limb) major.
 */
#ifndef CDL_CKKS_KEYSWITCH_H
#define CDL_CKKS_KEYSWITCH_H

#include "ckks/ckks_internal.h"

/* Number of digits at level l: ceil((l+1) / alpha). */
static inline int cdl_ckks_digit_count(const cdl_ckks_context *ctx, int level)
{
    return (level + ctx->alpha) / ctx->alpha;
}
/* uint64_t words of a digit buffer at level l. */
static inline size_t cdl_ckks_digits_words(const cdl_ckks_context *ctx, int level)
{
    return (size_t)cdl_ckks_digit_count(ctx, level) * (size_t)(level + 1 + ctx->p_count) * ctx->n;
}

/* c: level+1 limbs (stride n), NTT form. digits: cdl_ckks_digits_words(level) words. */
cdl_status cdl_ckks_ks_decompose(const cdl_ckks_context *ctx, const uint64_t *c, int level, uint64_t *digits);
/* out0, out1: level+1 limbs each (stride n), overwritten with the switched pair. perm may be NULL. */
cdl_status cdl_ckks_ks_apply(const cdl_ckks_context *ctx, const uint64_t *digits, int level, const cdl_ckks_ksk *key,
                             const uint32_t *perm, uint64_t *out0, uint64_t *out1);

/* Both halves fused, digit limbs computed on the fly (no digit buffer): same
 * result, bit for bit, as decompose + apply. c must not alias out0/out1. */
cdl_status cdl_ckks_keyswitch(const cdl_ckks_context *ctx, const uint64_t *c, int level, const cdl_ckks_ksk *key,
                              const uint32_t *perm, uint64_t *out0, uint64_t *out1);

/* As cdl_ckks_keyswitch without a permutation, fused with the accumulation
 * into a ciphertext: out0 += switched half 0 when add_mask bit 0 is set
 * (else overwritten), likewise out1 with bit 1. */
cdl_status cdl_ckks_keyswitch_add(const cdl_ckks_context *ctx, const uint64_t *c, int level, const cdl_ckks_ksk *key,
                                  uint64_t *out0, uint64_t *out1, int add_mask);
/* Hoisted: `count` switches of the same c with keys[r] and automorphism perms[r]
 * (perms or perms[r] may be NULL); every digit limb is built once and used by
 * all keys while in cache. Results equal count separate cdl_ckks_keyswitch
 * (add0: out0[r] += the first half instead, as cdl_ckks_keyswitch_add). */
cdl_status cdl_ckks_keyswitch_multi(const cdl_ckks_context *ctx, const uint64_t *c, int level,
                                    const cdl_ckks_ksk *const *keys, const uint32_t *const *perms, int count,
                                    uint64_t *const *out0, uint64_t *const *out1, int add0);

/* Double hoisting (Bossuat, Mouchet, Troncoso-Pastoriza, Hubaux, "Efficient
 * Bootstrapping for Approximate Homomorphic Encryption with Non-Sparse Keys",
 * EUROCRYPT 2021; its baby-step giant-step transform with double hoisting):
 * for groups j < groups,
 *   (out0[j], out1[j]) = ModDown( sum_r pts[j*count + r] * phi_r(P c0 + V0_r, V1_r) )
 * over Q_l u P, V_r = sum_d D_d(c1) * keys[r]_d the inner product before
 * ModDown, phi_r the automorphism of perms[r] (an NTT-slot gather; NULL: none)
 * and keys[r] held as phi_r^-1 of the key (as Galois keys are in memory): that
 * is sum_r pts[j*count + r] * rotate_r(c0, c1) with one ModDown per group
 * instead of one per rotation, and without the rounding of each rotation
 * multiplied by its plaintext. c1's decomposition is shared by every r; the
 * rotations are summed in the extended basis, permuted term by term (each has
 * its own phi). pts entries may be NULL (no term); the others need their
 * special primes (cdl_ckks_plaintext_new_qp, encoded) and a level >= level;
 * every group has a term. Outputs: level+1 limbs each (stride n), overwritten;
 * they must not alias c0 or c1. */
cdl_status cdl_ckks_keyswitch_rotate_dot(const cdl_ckks_context *ctx, const uint64_t *c0, const uint64_t *c1,
                                         int level, const cdl_ckks_ksk *const *keys, const uint32_t *const *perms,
                                         int count, const cdl_ckks_plaintext *const *pts, int groups,
                                         uint64_t *const *out0, uint64_t *const *out1);

/* The second level of double hoisting (same paper): (out0, out1) = the sum
 * over r of the rotations phi_r(c0[r], c1[r]) switched back to s, that is
 * ModDown( sum_r phi_r(P c0[r] + V0_r, V1_r) ), V_r the inner product of
 * c1[r]'s digits with keys[r] (held as phi_r^-1 of the key): every input has
 * its own decomposition, but the sum has one ModDown. Inputs at `level`
 * (level+1 limbs, stride n); outputs must not alias them. */
cdl_status cdl_ckks_keyswitch_rotate_sum(const cdl_ckks_context *ctx, const uint64_t *const *c0,
                                         const uint64_t *const *c1, int level, const cdl_ckks_ksk *const *keys,
                                         const uint32_t *const *perms, int count, uint64_t *out0, uint64_t *out1);

/* ModDown: acc holds level+1 Q limbs then the p_count special-prime limbs
 * (NTT form; the special limbs are overwritten); out (level+1 limbs) =
 * round(acc / P) modulo Q_l. out may not alias acc. */
cdl_status cdl_ckks_moddown(const cdl_ckks_context *ctx, int level, uint64_t *acc, uint64_t *out);

/* Generate a key switching from s_from (NTT over all qp primes) to sk. */
cdl_status cdl_ckks_ksk_generate(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, const uint64_t *s_from,
                                 cdl_rng *rng, cdl_ckks_ksk *key);

#endif
