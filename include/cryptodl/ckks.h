/*
 * ckks.h: the public RNS-CKKS API (Cheon-Kim-Kim-Song, full-RNS variant of
 * Cheon-Han-Kim-Kim-Song SAC 2018, hybrid key switching of Han-Ki CT-RSA 2020).
 *
 * Object model (all handles opaque, each with a matching _free):
 *   cdl_ckks_context     parameters + precomputed tables, shared read-only
 *   cdl_ckks_secret_key  stays with the client; zeroized on free
 *   cdl_ckks_public_key, cdl_ckks_relin_key, cdl_ckks_galois_keys
 *   cdl_ckks_plaintext   an encoded vector (polynomial in the NTT domain)
 *   cdl_ckks_ciphertext  (c0, c1[, c2]) at some level with some scale
 *
 * Levels: a ciphertext at level l is defined modulo q_0 * ... * q_l, so
 * level max_level is a fresh ciphertext and level 0 cannot be rescaled any more.
 *
 * Output arguments of the evaluator may alias inputs.
 */
#ifndef CRYPTODL_CKKS_H
#define CRYPTODL_CKKS_H

#include "cryptodl/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cdl_ckks_context cdl_ckks_context;
typedef struct cdl_ckks_secret_key cdl_ckks_secret_key;
typedef struct cdl_ckks_public_key cdl_ckks_public_key;
typedef struct cdl_ckks_relin_key cdl_ckks_relin_key;
typedef struct cdl_ckks_galois_keys cdl_ckks_galois_keys;
typedef struct cdl_ckks_plaintext cdl_ckks_plaintext;
typedef struct cdl_ckks_ciphertext cdl_ckks_ciphertext;

#define CDL_CKKS_MIN_LOG_N 10
#define CDL_CKKS_MAX_LOG_N 16
#define CDL_CKKS_MAX_PRIMES 64
#define CDL_CKKS_PARAM_HASH_BYTES 32

/* How to build a context. Prime bit sizes are 20..61. */
typedef struct cdl_ckks_param_spec {
    int log_n;                       /* ring degree N = 2^log_n, 10..16 */
    int q_count;                     /* number of ciphertext primes (levels + 1) */
    int q_bits[CDL_CKKS_MAX_PRIMES]; /* q_0 (decryption prime) first */
    int p_count;                     /* number of special primes (key switching) */
    int p_bits[CDL_CKKS_MAX_PRIMES];
    int dnum;                        /* key-switching digits; 0 = ceil(q_count / p_count) */
    double scale;                    /* default encoding scale, e.g. 2^40 */
    int secret_hamming_weight;       /* 0 = uniform ternary; else exactly h nonzero (sparse h < 2N/3 is
                                        checked against its own limit: cdl_ckks_max_log_qp_secret) */
    int allow_insecure;              /* TESTING ONLY: skip the 128-bit check (warns loudly) */
} cdl_ckks_param_spec;

/* Presets at the 128-bit table's maximum log Q for N = 2^13, 2^14, 2^15
 * (log Q 218, 438, 881 including the special primes). */
CDL_API cdl_status cdl_ckks_preset(int log_n, cdl_ckks_param_spec *spec);
/* Largest total log2(Q*P) allowed for N = 2^log_n at 128-bit security with a
 * uniform ternary secret (HomomorphicEncryption.org 2018 table; 1747 at 2^16,
 * from the 2024 guidelines). */
CDL_API int cdl_ckks_max_log_qp(int log_n);
/* The same for a secret of the given Hamming weight (0 = uniform ternary):
 * the dense limit for h = 0 or h >= 2N/3; for a sparse secret the published
 * 128-bit estimate that covers it (docs/security.md: h >= 192 at N = 2^15,
 * log2(Q*P) <= 767, and 2^16, <= 1553; h >= 32 at 2^16, <= 117), or 0 when
 * none does (every sparse secret at N <= 2^14): such parameters are refused. */
CDL_API int cdl_ckks_max_log_qp_secret(int log_n, int hamming_weight);

CDL_API cdl_status cdl_ckks_context_new(const cdl_ckks_param_spec *spec, cdl_ckks_context **out);
CDL_API void cdl_ckks_context_free(cdl_ckks_context *ctx);
CDL_API int cdl_ckks_log_n(const cdl_ckks_context *ctx);
CDL_API size_t cdl_ckks_slots(const cdl_ckks_context *ctx);      /* N/2 */
CDL_API int cdl_ckks_max_level(const cdl_ckks_context *ctx);      /* q_count - 1 */
CDL_API double cdl_ckks_log_qp(const cdl_ckks_context *ctx);      /* total bits incl. special primes */
CDL_API double cdl_ckks_default_scale(const cdl_ckks_context *ctx);
CDL_API uint64_t cdl_ckks_prime(const cdl_ckks_context *ctx, int index); /* q_index */
/* 32-byte digest of the parameters; serialized objects carry it. */
CDL_API const uint8_t *cdl_ckks_param_hash(const cdl_ckks_context *ctx);

/* ---- keys ---- */
CDL_API cdl_status cdl_ckks_keygen_secret(const cdl_ckks_context *ctx, cdl_rng *rng, cdl_ckks_secret_key **out);
CDL_API cdl_status cdl_ckks_keygen_public(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                          cdl_ckks_public_key **out);
CDL_API cdl_status cdl_ckks_keygen_relin(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                         cdl_ckks_relin_key **out);
/* Galois keys for rotations by each of steps[0..count) (negative = right) and,
 * if conjugate != 0, for complex conjugation. */
CDL_API cdl_status cdl_ckks_keygen_galois(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                          const int *steps, size_t count, int conjugate, cdl_rng *rng,
                                          cdl_ckks_galois_keys **out);
/* The same with one level per step: key i only switches ciphertexts at levels
 * 0..levels[i] (it holds the digits and primes of those levels: a key used
 * deep in a circuit is a fraction of a full one). levels NULL = full keys;
 * conjugation, if asked, gets a full key. */
CDL_API cdl_status cdl_ckks_keygen_galois_levels(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                                 const int *steps, const int *levels, size_t count, int conjugate,
                                                 cdl_rng *rng, cdl_ckks_galois_keys **out);
CDL_API void cdl_ckks_secret_key_free(cdl_ckks_secret_key *sk);
CDL_API void cdl_ckks_public_key_free(cdl_ckks_public_key *pk);
CDL_API void cdl_ckks_relin_key_free(cdl_ckks_relin_key *rlk);
CDL_API void cdl_ckks_galois_keys_free(cdl_ckks_galois_keys *gk);
/* Does gk hold the key for this rotation step (or conjugation if step == 0 and conjugate)? */
CDL_API int cdl_ckks_galois_keys_has_step(const cdl_ckks_galois_keys *gk, int step);
/* The highest level the key for this step serves (-1: no key; INT32_MAX: none needed). */
CDL_API int cdl_ckks_galois_keys_step_level(const cdl_ckks_galois_keys *gk, int step);

/* ---- plaintexts ---- */
CDL_API cdl_status cdl_ckks_plaintext_new(const cdl_ckks_context *ctx, cdl_ckks_plaintext **out);
CDL_API void cdl_ckks_plaintext_free(cdl_ckks_plaintext *pt);
/* A plaintext that holds levels 0..level only (level + 1 limbs instead of
 * all): for encodings kept in memory at the level they are used. */
CDL_API cdl_status cdl_ckks_plaintext_new_level(const cdl_ckks_context *ctx, int level, cdl_ckks_plaintext **out);
/* As cdl_ckks_plaintext_new_level, and the encoding is also kept modulo the
 * special primes (the key-switching primes; (level + 1 + special) limbs in
 * all): the form cdl_ckks_rotate_dot_plain multiplies rotations by. */
CDL_API cdl_status cdl_ckks_plaintext_new_qp(const cdl_ckks_context *ctx, int level, cdl_ckks_plaintext **out);
CDL_API int cdl_ckks_plaintext_level(const cdl_ckks_plaintext *pt);
CDL_API double cdl_ckks_plaintext_scale(const cdl_ckks_plaintext *pt);
/* Encode count <= slots real values (the rest are zero) at the given scale and level. */
CDL_API cdl_status cdl_ckks_encode(const cdl_ckks_context *ctx, const double *values, size_t count, double scale,
                                   int level, cdl_ckks_plaintext *pt);
/* Complex form: im may be NULL (all zero). */
CDL_API cdl_status cdl_ckks_encode_complex(const cdl_ckks_context *ctx, const double *re, const double *im,
                                           size_t count, double scale, int level, cdl_ckks_plaintext *pt);
CDL_API cdl_status cdl_ckks_decode(const cdl_ckks_context *ctx, const cdl_ckks_plaintext *pt, double *values,
                                   size_t count);
CDL_API cdl_status cdl_ckks_decode_complex(const cdl_ckks_context *ctx, const cdl_ckks_plaintext *pt, double *re,
                                           double *im, size_t count);

/* ---- ciphertexts ---- */
CDL_API cdl_status cdl_ckks_ciphertext_new(const cdl_ckks_context *ctx, cdl_ckks_ciphertext **out);
CDL_API void cdl_ckks_ciphertext_free(cdl_ckks_ciphertext *ct);
/* Release the storage of the primes above the ciphertext's level (and of a
 * third polynomial once relinearized): a ciphertext at level l then takes
 * (l + 1) / (max_level + 1) of a fresh one. It grows again if it is later the
 * output of an operation at a higher level. Values are unchanged. */
CDL_API cdl_status cdl_ckks_ciphertext_shrink(cdl_ckks_ciphertext *ct);
CDL_API cdl_status cdl_ckks_ciphertext_copy(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *src,
                                            cdl_ckks_ciphertext *dst);
CDL_API int cdl_ckks_ciphertext_level(const cdl_ckks_ciphertext *ct);
CDL_API double cdl_ckks_ciphertext_scale(const cdl_ckks_ciphertext *ct);
CDL_API int cdl_ckks_ciphertext_size(const cdl_ckks_ciphertext *ct); /* 2, or 3 after mul */
/* Overwrite the recorded scale (for callers that track scale drift themselves). */
CDL_API void cdl_ckks_ciphertext_set_scale(cdl_ckks_ciphertext *ct, double scale);

CDL_API cdl_status cdl_ckks_encrypt_pk(const cdl_ckks_context *ctx, const cdl_ckks_public_key *pk,
                                       const cdl_ckks_plaintext *pt, cdl_rng *rng, cdl_ckks_ciphertext *ct);
/* Symmetric encryption; the uniform half is kept as a seed so that a saved
 * fresh ciphertext is about half the size. */
CDL_API cdl_status cdl_ckks_encrypt_sk(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                       const cdl_ckks_plaintext *pt, cdl_rng *rng, cdl_ckks_ciphertext *ct);
CDL_API cdl_status cdl_ckks_decrypt(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                    const cdl_ckks_ciphertext *ct, cdl_ckks_plaintext *pt);

/*
 * Flooded decryption, for results that leave the client. A CKKS decryption
 * m + e reveals the error e, which depends on the secret key (Li and
 * Micciancio, EUROCRYPT 2021: IND-CPA-D); adding fresh noise f to the
 * decrypted polynomial hides it. f has independent coefficients, rounded
 * Gaussian of standard deviation
 *     sigma = sqrt(12 * queries) * 2^(security_bits / 2) * E,
 * E a bound on the l2 norm of e (coefficient embedding): the bound of Li,
 * Micciancio, Schultz and Sorrell (CRYPTO 2022) as OpenFHE applies it
 * (NOISE_FLOODING_DECRYPT), for an adversary that sees `queries` flooded
 * decryptions under the key to succeed with probability at most
 * 2^-security_bits. The flooding costs log2(sigma * sqrt(N) / E) bits of
 * precision (about s/2 + 9 at N = 2^13..2^14): the ciphertext's scale must
 * leave room for it. Drawn from rng, which must not be a plain seeded one
 * (CDL_ERR_INSECURE). CDL_ERR_PARAMETERS when the flood could reach Q/8 of the
 * ciphertext's modulus, CDL_ERR_UNSUPPORTED when sigma would exceed 2^45; on
 * any failure after decryption pt is wiped. docs/security.md gives the
 * derivation.
 */
#define CDL_CKKS_FLOOD_DEFAULT_BITS 40
typedef struct cdl_ckks_flood_options {
    int security_bits; /* s, 20..128; 0 = CDL_CKKS_FLOOD_DEFAULT_BITS */
    double queries;    /* flooded decryptions (ciphertexts) under this key an adversary may see in all (>= 1);
                          0 = 1 here, the number of ciphertexts decrypted by the call in the he layer */
    double noise_log2; /* log2 of a public bound on ||e||_2; 0 = estimate it from this decryption: the
                          imaginary parts of the slots (real-valued messages), rounded up to a power
                          of two, times 2, and at least the rescaling error of a fresh rescale */
} cdl_ckks_flood_options;
typedef struct cdl_ckks_flood_info {
    double queries;    /* the number of decryptions sigma was sized for */
    double noise_log2; /* the bound E used, log2 */
    double sigma_log2; /* the flooding standard deviation per coefficient, log2 */
    double slot_error; /* expected rms of the error the flooding adds to the real part of a slot:
                          sigma * sqrt(N / 2) / scale */
} cdl_ckks_flood_info;
/* As cdl_ckks_decrypt, then + f. opt NULL = defaults; info may be NULL. */
CDL_API cdl_status cdl_ckks_decrypt_flooded(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                            const cdl_ckks_ciphertext *ct, const cdl_ckks_flood_options *opt,
                                            cdl_rng *rng, cdl_ckks_plaintext *pt, cdl_ckks_flood_info *info);

/* ---- evaluator ---- */
CDL_API cdl_status cdl_ckks_add(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                const cdl_ckks_ciphertext *b, cdl_ckks_ciphertext *out);
CDL_API cdl_status cdl_ckks_sub(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                const cdl_ckks_ciphertext *b, cdl_ckks_ciphertext *out);
CDL_API cdl_status cdl_ckks_negate(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                   cdl_ckks_ciphertext *out);
CDL_API cdl_status cdl_ckks_add_plain(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                      const cdl_ckks_plaintext *b, cdl_ckks_ciphertext *out);
CDL_API cdl_status cdl_ckks_sub_plain(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                      const cdl_ckks_plaintext *b, cdl_ckks_ciphertext *out);
CDL_API cdl_status cdl_ckks_mul_plain(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                      const cdl_ckks_plaintext *b, cdl_ckks_ciphertext *out);
/* acc += a * b in one pass (no temporary): acc must be at a's level, with a's
 * size and the product's scale (a's times b's), and must not be a. */
CDL_API cdl_status cdl_ckks_mul_plain_add(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                          const cdl_ckks_plaintext *b, cdl_ckks_ciphertext *acc);
/* acc = (or, with accumulate, +=) sum over t < terms of x[t] * encode(values[t]): each values[t]
 * (count real values, the rest zero) encoded at `scale` and x[t]'s level exactly as cdl_ckks_encode
 * does, and multiplied in limb by limb without keeping the plaintexts (a linear layer's diagonals
 * encoded on the fly, without their memory traffic). Every x[t] at one level, size and scale; acc
 * is not one of them. The result's scale is x's times `scale`. */
CDL_API cdl_status cdl_ckks_dot_values(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *const *x,
                                       const double *const *values, size_t count, size_t terms, double scale,
                                       int accumulate, cdl_ckks_ciphertext *acc);
/* The same for `groups` sets of ciphertexts sharing the values: acc[g] = (or +=) sum over t < terms
 * of x[g * terms + t] * encode(values[t]). Each values[t] is encoded once and multiplied into every
 * group (two branches of a network with the same weights pay one encoding). Every x at one level,
 * size and scale; the accumulators are distinct and none of them is a term. */
CDL_API cdl_status cdl_ckks_dot_values_shared(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *const *x,
                                              const double *const *values, size_t count, size_t terms, size_t groups,
                                              double scale, int accumulate, cdl_ckks_ciphertext *const *acc);
/* Add a real constant to every slot (no level consumed). */
CDL_API cdl_status cdl_ckks_add_const(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, double c,
                                      cdl_ckks_ciphertext *out);
/* Multiply every slot by a real constant encoded at `scale` (the result's
 * scale is a's scale times `scale`; rescale afterwards). */
CDL_API cdl_status cdl_ckks_mul_const(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, double c,
                                      double scale, cdl_ckks_ciphertext *out);
/* Multiply by an integer (no scale change, no level consumed). */
CDL_API cdl_status cdl_ckks_mul_int(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, int64_t c,
                                    cdl_ckks_ciphertext *out);
/* Tensor product: out has size 3 until relinearized. */
CDL_API cdl_status cdl_ckks_mul(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                const cdl_ckks_ciphertext *b, cdl_ckks_ciphertext *out);
CDL_API cdl_status cdl_ckks_square(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                   cdl_ckks_ciphertext *out);
CDL_API cdl_status cdl_ckks_relinearize(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                        const cdl_ckks_ciphertext *a, cdl_ckks_ciphertext *out);
CDL_API cdl_status cdl_ckks_mul_relin(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                      const cdl_ckks_ciphertext *a, const cdl_ckks_ciphertext *b,
                                      cdl_ckks_ciphertext *out);
/* Divide by the last prime: level - 1, scale / q_level. */
CDL_API cdl_status cdl_ckks_rescale(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a,
                                    cdl_ckks_ciphertext *out);
/* Drop primes without dividing (scale unchanged) down to `level`. */
CDL_API cdl_status cdl_ckks_drop_to_level(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *a, int level,
                                          cdl_ckks_ciphertext *out);
/* Rotate slots left by `steps` (negative = right). Needs the Galois key. */
CDL_API cdl_status cdl_ckks_rotate(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                   const cdl_ckks_ciphertext *a, int steps, cdl_ckks_ciphertext *out);
CDL_API cdl_status cdl_ckks_conjugate(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                      const cdl_ckks_ciphertext *a, cdl_ckks_ciphertext *out);
/* Many rotations of one ciphertext sharing one key-switching decomposition
 * (Halevi-Shoup hoisting): outs[i] = rotate(a, steps[i]). */
CDL_API cdl_status cdl_ckks_rotate_hoisted(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                           const cdl_ckks_ciphertext *a, const int *steps, size_t count,
                                           cdl_ckks_ciphertext *const *outs);
/* Sums of rotations times plaintexts, double-hoisted (Bossuat et al., EUROCRYPT 2021):
 *   outs[j] = sum over r < count of pts[j * count + r] * rotate(a, steps[r]),  j < groups,
 * as cdl_ckks_rotate_hoisted + cdl_ckks_mul_plain + cdl_ckks_add would give (not rescaled: the
 * scale is a's times the plaintexts'), but with one key-switching decomposition for all
 * rotations and one ModDown per group instead of one per rotation, the products being summed
 * modulo Q*P (so also a little less noise). The groups share the rotations (the giant steps of
 * a baby-step giant-step transform). pts entries may be NULL (no term); every group has at
 * least one term, and its plaintexts one scale; a plaintext multiplying a rotation (steps[r]
 * not 0 modulo the slots) must come from cdl_ckks_plaintext_new_qp and be encoded at a level
 * >= a's. The outputs are distinct and none of them is a. */
CDL_API cdl_status cdl_ckks_rotate_dot_plain(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                             const cdl_ckks_ciphertext *a, const int *steps, size_t count,
                                             const cdl_ckks_plaintext *const *pts, size_t groups,
                                             cdl_ckks_ciphertext *const *outs);
/* out = sum over r < count of rotate(cts[r], steps[r]) (the giant steps of a baby-step giant-step
 * transform): every term has its own key-switching decomposition, but the products are summed
 * modulo Q*P before one ModDown for the sum (the second level of double hoisting). The terms share
 * one level and scale; out is none of them. */
CDL_API cdl_status cdl_ckks_rotate_sum(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                       const cdl_ckks_ciphertext *const *cts, const int *steps, size_t count,
                                       cdl_ckks_ciphertext *out);
/* Bring a and b to the same (lower) level by dropping primes of the higher one. */
CDL_API cdl_status cdl_ckks_match_levels(const cdl_ckks_context *ctx, cdl_ckks_ciphertext *a,
                                         cdl_ckks_ciphertext *b);

/* ---- serialization ----
 * Every _save allocates *data with malloc (free it with cdl_free_bytes) and
 * writes a header (magic, format version, object type, parameter hash,
 * compression, payload length, checksum). compression: 0 = none,
 * 1..19 = zstd level. Every _load validates all of it, every length and every
 * coefficient range before use, and returns CDL_ERR_FORMAT on bad bytes or
 * CDL_ERR_MISMATCH on objects made for other parameters. */
CDL_API cdl_status cdl_ckks_context_save(const cdl_ckks_context *ctx, int compression, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_ckks_context_load(const uint8_t *data, size_t len, cdl_ckks_context **out);
CDL_API cdl_status cdl_ckks_secret_key_save(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk,
                                            int compression, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_ckks_secret_key_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                            cdl_ckks_secret_key **out);
CDL_API cdl_status cdl_ckks_public_key_save(const cdl_ckks_context *ctx, const cdl_ckks_public_key *pk,
                                            int compression, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_ckks_public_key_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                            cdl_ckks_public_key **out);
CDL_API cdl_status cdl_ckks_relin_key_save(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                           int compression, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_ckks_relin_key_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                           cdl_ckks_relin_key **out);
CDL_API cdl_status cdl_ckks_galois_keys_save(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                             int compression, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_ckks_galois_keys_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                             cdl_ckks_galois_keys **out);
CDL_API cdl_status cdl_ckks_plaintext_save(const cdl_ckks_context *ctx, const cdl_ckks_plaintext *pt,
                                           int compression, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_ckks_plaintext_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                           cdl_ckks_plaintext **out);
CDL_API cdl_status cdl_ckks_ciphertext_save(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *ct,
                                            int compression, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_ckks_ciphertext_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                            cdl_ckks_ciphertext **out);

#ifdef __cplusplus
}
#endif
#endif
