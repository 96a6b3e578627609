/*
 * bootstrap.h: CKKS bootstrapping (full or sparse slots). A ciphertext at level 0 comes
 * back at a higher level with the same values, so a computation can go on
 * past the end of the modulus chain.
 *
 * The steps (Cheon, Han, Kim, Kim, Song, EUROCRYPT 2018; Han and Ki, CT-RSA
 * 2020; Bossuat, Mouchet, Troncoso-Pastoriza and Hubaux, EUROCRYPT 2021):
 *  1. sparse-secret encapsulation (Bossuat, Troncoso-Pastoriza and Hubaux,
 *     ACNS 2022), optional: switch the level-0 ciphertext to a secret of small
 *     Hamming weight h' under a small modulus q0 * p', so that step 2 adds
 *     only a small multiple of q0;
 *  2. ModRaise: read the residues mod q0 as integers modulo the whole chain:
 *     the plaintext becomes m + q0 * I with |I| <= K (then switch back to s);
 *     (sparse slots: then SubSum, the trace to the subring of period-n slots);
 *  3. CoeffToSlot: the inverse of the encoder's special FFT, evaluated on the
 *     ciphertext as a few sparse-diagonal matrices (the FFT's butterfly stages
 *     merged, one level per matrix, baby-step giant-step with hoisted
 *     rotations), then a conjugation splits real and imaginary parts;
 *  4. EvalMod: x -> sin(2 pi x) / (2 pi) ~ x - I on both parts: a Chebyshev
 *     interpolant of the cosine of (x - 1/4) / 2^r, then r double-angle steps;
 *  5. SlotToCoeff: the special FFT itself, the same way.
 * docs/bootstrapping.md has the derivation, the level plan and the figures.
 */
#ifndef CRYPTODL_BOOTSTRAP_H
#define CRYPTODL_BOOTSTRAP_H

#include "cryptodl/ckks.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cdl_ckks_bootstrap_params {
    int log_slots;         /* 0: full slots (N/2). 1..log2(N/2) - 1: sparse, n = 2^log_slots slots: the
                              input's N/2 slot values must repeat with period n (encode the n values
                              repeated N/(2n) times), and so will the output's. Costs log2(N/(2n))
                              rotations more (SubSum after ModRaise), smaller DFTs */
    int cts_levels;        /* levels spent by CoeffToSlot (1..log2(n)); the top ones */
    int stc_levels;        /* levels spent by SlotToCoeff (1..log2(n)) */
    int k_bound;           /* K: EvalMod is exact for |I| <= K (the overflow of ModRaise) */
    int cos_degree;        /* degree of the cosine interpolant, 3..31 (depth ceil(log2(d+1))) */
    int double_angle;      /* r: double-angle steps, 0..6 (one level each) */
    int log_message_ratio; /* log2(q0 / scale of the input): the input is brought to this scale
                              by an integer multiplication; larger = more precise sine, less precision.
                              Sparse slots add ceil(log2(N / (2n)) / 2) (the message sits in fewer,
                              larger coefficients) */
    int sse_hamming_weight;/* 0: ModRaise under the context's secret; else the weight h' of the
                              encapsulated sparse secret (sparse-secret encapsulation) */
    int sse_p_bits;        /* size of the special prime p' of the encapsulation modulus q0 * p' */
    double out_scale;      /* scale of the bootstrapped ciphertext; 0 = the context's default */
} cdl_ckks_bootstrap_params;

/* Levels one bootstrap spends: cts_levels + ceil(log2(cos_degree + 1)) +
 * double_angle + stc_levels. A bootstrapped ciphertext is at
 * max_level - cdl_ckks_bootstrap_depth(p); that many levels minus nothing are
 * left for computation before the next bootstrap. */
CDL_API int cdl_ckks_bootstrap_depth(const cdl_ckks_bootstrap_params *p);

/*
 * A preset: a context spec and bootstrapping parameters that fit each other.
 *  log_n = 16: 128-bit security, secret of Hamming weight 192 (log2 QP <= 1553,
 *     docs/security.md) with sparse-secret encapsulation to h' = 32 under
 *     q0 * p' (log2 <= 117); the level plan is in docs/bootstrapping.md.
 *  log_n = 10..14: INSECURE test presets with the same structure (allow_insecure
 *     set; for tests and quick experiments only).
 */
CDL_API cdl_status cdl_ckks_bootstrap_preset(int log_n, cdl_ckks_param_spec *spec, cdl_ckks_bootstrap_params *params);

/* The public, key-independent part: the factored DFT matrices encoded as
 * plaintexts at the levels they are used, the EvalMod polynomial, the plan.
 * Built once per context; read-only afterwards (may be shared by threads). */
typedef struct cdl_ckks_bootstrapper cdl_ckks_bootstrapper;
/* The evaluation keys bootstrapping needs beyond the relinearization key:
 * the rotation and conjugation keys of the DFTs (each at the highest level it
 * is used) and the two encapsulation switching keys. */
typedef struct cdl_ckks_bootstrap_keys cdl_ckks_bootstrap_keys;

CDL_API cdl_status cdl_ckks_bootstrapper_new(const cdl_ckks_context *ctx, const cdl_ckks_bootstrap_params *params,
                                             cdl_ckks_bootstrapper **out);
CDL_API void cdl_ckks_bootstrapper_free(cdl_ckks_bootstrapper *bt);

/* What the plan is and costs (filled by cdl_ckks_bootstrapper_info). */
typedef struct cdl_ckks_bootstrap_info {
    int slots;
    int level_in;          /* always 0: the input is first dropped to level 0 */
    int level_out;         /* level of a bootstrapped ciphertext = levels left for computation */
    int depth;             /* levels spent by one bootstrap */
    int rotation_keys;     /* distinct rotation steps (plus one conjugation key) */
    int rotations;         /* key switches per bootstrap (rotations + conjugation + SSE) */
    int relinearizations;  /* ciphertext products in EvalMod (both halves) */
    size_t plaintext_bytes;/* the encoded DFT diagonals held by the bootstrapper */
    double k_bound;
    double cos_max_error;  /* |interpolant - cos| over [-K-1/2, K+1/2], before double angles */
} cdl_ckks_bootstrap_info;
CDL_API cdl_status cdl_ckks_bootstrapper_info(const cdl_ckks_bootstrapper *bt, cdl_ckks_bootstrap_info *info);

/* Key generation (client side, needs the secret key). */
CDL_API cdl_status cdl_ckks_bootstrap_keygen(const cdl_ckks_bootstrapper *bt, const cdl_ckks_secret_key *sk,
                                             cdl_rng *rng, cdl_ckks_bootstrap_keys **out);
CDL_API void cdl_ckks_bootstrap_keys_free(cdl_ckks_bootstrap_keys *bk);
/* Bytes of key material held (all switching keys). */
CDL_API size_t cdl_ckks_bootstrap_keys_bytes(const cdl_ckks_bootstrap_keys *bk);

/* out = a ciphertext of the values of `in` (any level, size 2) at level
 * info.level_out and scale params.out_scale. `in` may alias `out`. Values of
 * the input must be small enough that the coefficients of the message
 * stay below q0 / 2^log_message_ratio times a few (|values| <= 1 is the
 * designed range; docs/bootstrapping.md). */
CDL_API cdl_status cdl_ckks_bootstrap(const cdl_ckks_bootstrapper *bt, const cdl_ckks_bootstrap_keys *bk,
                                      const cdl_ckks_relin_key *rlk, const cdl_ckks_ciphertext *in,
                                      cdl_ckks_ciphertext *out);

/* Two bootstraps for more precision (the residual method of "Meta-BTS", Bae
 * et al. CCS 2022): the error of the first is bootstrapped, scaled by 2^18,
 * and subtracted. Twice the time; the output is at info.level_out - 1 (one
 * level pays for the division by 2^18). Same keys. */
CDL_API cdl_status cdl_ckks_bootstrap_refined(const cdl_ckks_bootstrapper *bt, const cdl_ckks_bootstrap_keys *bk,
                                              const cdl_ckks_relin_key *rlk, const cdl_ckks_ciphertext *in,
                                              cdl_ckks_ciphertext *out);

/* Serialization, as every other object of ckks.h (header, parameter hash,
 * checksum, zstd; every field validated on load). The keys are tied to the
 * context and to the bootstrapping parameters. */
CDL_API cdl_status cdl_ckks_bootstrap_keys_save(const cdl_ckks_bootstrapper *bt, const cdl_ckks_bootstrap_keys *bk,
                                                int compression, uint8_t **data, size_t *len);
CDL_API cdl_status cdl_ckks_bootstrap_keys_load(const cdl_ckks_bootstrapper *bt, const uint8_t *data, size_t len,
                                                cdl_ckks_bootstrap_keys **out);

#ifdef __cplusplus
}
#endif
#endif
