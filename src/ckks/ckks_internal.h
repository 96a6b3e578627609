/*
 * ckks_internal.h: the structures behind the opaque CKKS handles of
 * include/cryptodl/ckks.h, and the internal helpers that the other CKKS
 * files (evaluator, keys, encoder, serialization) share.
 *
 * Memory layout conventions (all of them, everywhere):
 *  - A polynomial over a set of RNS primes is limb-major: limb i (the residues
 *    modulo prime i) is N contiguous uint64_t values, limbs one after another.
 *  - Polynomials are kept in the NTT domain (bit-reversed evaluation order of
 *    src/ring/ntt.h) unless a comment says otherwise.
 *  - Prime indices: 0 .. q_count-1 are the ciphertext primes q_0..q_L
 *    (q_0 = decryption prime), q_count .. q_count+p_count-1 the special
 *    primes p_0..p_{K-1} used only inside key switching.
 *  - A ciphertext/plaintext at level l uses limbs 0..l; its buffers always have
 *    room for q_count limbs per polynomial (stride q_count), so dropping or
 *    rescaling never reallocates.
 *  - A key-switching key covers all q_count+p_count primes (stride qp_count).
 *
 * Key switching is the hybrid method of Han-Ki (CT-RSA 2020): the Q primes
 * are cut into dnum digits of alpha consecutive primes; see docs/ckks-design.md.
 */
#ifndef CDL_CKKS_INTERNAL_H
#define CDL_CKKS_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "cryptodl/ckks.h"
#include "ring/basis_extension.h"
#include "ring/modarith.h"
#include "ring/ntt.h"

#define CDL_CKKS_MAX_QP (2 * CDL_CKKS_MAX_PRIMES)
#define CDL_CKKS_SEED_BYTES 32

struct cdl_ckks_context {
    cdl_ckks_param_spec spec; /* as given by the caller (dnum resolved below, not here) */
    int log_n;
    size_t n;                 /* ring degree N */
    size_t slots;             /* N / 2 */
    int q_count;              /* L + 1 */
    int p_count;              /* K */
    int qp_count;             /* q_count + p_count */
    int max_level;            /* q_count - 1 */
    int dnum;                 /* number of key-switching digits (resolved, >= 1) */
    int alpha;                /* primes per digit = ceil(q_count / dnum) */
    double scale;             /* default scale */
    double log_qp;            /* sum of log2 of all primes */
    uint8_t param_hash[CDL_CKKS_PARAM_HASH_BYTES]; /* BLAKE2b-256, see cdl_ckks_compute_param_hash */

    uint64_t primes[CDL_CKKS_MAX_QP];
    cdl_modulus mod[CDL_CKKS_MAX_QP];
    cdl_ntt_table *ntt[CDL_CKKS_MAX_QP];

    /* Rescale: rescale_inv[l * q_count + i] = q_l^-1 mod q_i (i < l), Shoup form alongside. */
    uint64_t *rescale_inv;
    uint64_t *rescale_inv_shoup;

    /* ModDown (divide by P = prod p_j): p_inv_mod_q[i] = P^-1 mod q_i (+ Shoup),
     * p_mod_q[i] = P mod q_i (+ Shoup; used to build key-switching keys). */
    uint64_t p_inv_mod_q[CDL_CKKS_MAX_PRIMES];
    uint64_t p_inv_mod_q_shoup[CDL_CKKS_MAX_PRIMES];
    uint64_t p_mod_q[CDL_CKKS_MAX_PRIMES];
    uint64_t p_mod_q_shoup[CDL_CKKS_MAX_PRIMES];

    /* Encoder: ksi_pows[j] = exp(2 pi i j / 2N) for j <= 2N (real, imag parts),
     * rot_group[j] = 5^j mod 2N for j < N/2. */
    double *ksi_re;
    double *ksi_im;
    uint64_t *rot_group;
    /* The special FFT's twiddles in the order its butterflies use them: for
     * the stage of half-length h (1, 2, 4, ..., N/4), tw[h - 1 + j] =
     * ksi_pows[(rot_group[j] mod 8h) * (2N / 8h)], j < h (the inverse FFT
     * uses their conjugates). N/2 - 1 entries. */
    double *fft_tw_re;
    double *fft_tw_im;

    /* Key switching (hybrid, Han-Ki). modup[l] converts the digit that holds
     * prime l, restricted to primes d*alpha..l (d = l / alpha), to all
     * qp_count primes (targets inside the digit are never used): the full
     * digit d is modup[min((d+1)*alpha, q_count) - 1], the partial top digit
     * at level l is modup[l]. moddown converts the P primes to all Q primes. */
    cdl_base_converter *modup; /* q_count converters */
    cdl_base_converter moddown;
};

/* Secret key s: ternary. Both forms are kept and both are zeroized on free. */
struct cdl_ckks_secret_key {
    size_t n;
    int qp_count;
    int8_t *coeffs; /* N coefficients in {-1, 0, 1} (cdl_secure_calloc) */
    uint64_t *s;    /* NTT form over all qp_count primes, qp_count * N (cdl_secure_calloc) */
    /* Optional speed-up, may be NULL: Shoup constants of s for the q_count Q
     * limbs (floor(s * 2^64 / q_i)), filled by cdl_ckks_secret_key_precompute.
     * Decryption and symmetric encryption use them when present. */
    uint64_t *s_shoup;
};

/* Public key (b, a) = (-a s + e, a) over the Q primes (q_count limbs each),
 * and optionally the same two polynomials modulo the special primes, which
 * lets encryption work modulo Q*P and divide by P (ModDown): the fresh noise
 * is then the rounding error only (~2.5 bits less). Without p_data (NULL),
 * encryption works modulo Q (correct, noisier). */
struct cdl_ckks_public_key {
    size_t n;
    int q_count;
    uint64_t *data;   /* 2 * q_count * N: poly 0 = b, poly 1 = a */
    int p_count;      /* limbs per polynomial in p_data (0 when p_data is NULL) */
    uint64_t *p_data; /* 2 * p_count * N: b then a modulo p_0..p_{K-1}, or NULL */
};

/* A hybrid key-switching key from s' (the "from" secret) to s:
 * per digit d: (b_d, a_d) = (-a_d s + e_d + P * g_d * s', a_d) mod Q*P where
 * g_d = (Q/Q_d) * [(Q/Q_d)^-1]_{Q_d} is 1 modulo the primes of digit d and 0
 * modulo the other Q primes. */
typedef struct cdl_ckks_ksk {
    int dnum;       /* digits stored: those of a ciphertext at max_level */
    int qp_count;   /* limbs stored: q_0..q_max_level, then the special primes */
    size_t n;
    int max_level;  /* highest ciphertext level it switches (the context's max level for a full key) */
    int q_count;    /* the context's ciphertext primes (to place the special primes) */
    uint64_t *data; /* dnum * 2 * qp_count * N; (digit d, component c, limb i) at ((d*2 + c)*qp_count + i)*N */
} cdl_ckks_ksk;

struct cdl_ckks_relin_key {
    cdl_ckks_ksk ksk; /* s' = s^2 */
};

struct cdl_ckks_galois_keys {
    size_t n;
    size_t count;
    uint64_t *galois_elts; /* count elements g (odd, < 2N); 2N-1 is conjugation */
    uint32_t *ntt_index;   /* count * N: row i is X -> X^g_i as a permutation of NTT slots,
                            * cached because recomputing it cost ~11% of a rotation at N = 2^13 */
    cdl_ckks_ksk *keys;    /* keys[i] for s' = s(X^g), held in memory as phi^-1(key) (phi: X -> X^g,
                            * every limb permuted by the inverse of ntt_index row i), so that hoisted
                            * rotations multiply the shared digits without permuting them and permute
                            * only the result (see rotate_elements); the files hold the key itself */
};

struct cdl_ckks_plaintext {
    size_t n;
    int q_count;
    int level;
    double scale;
    int limbs;      /* limbs allocated: q_count, or fewer for a plaintext made for low levels only */
    uint64_t *data; /* limbs * N, limbs 0..level valid, NTT form */
    /* Optional (cdl_ckks_plaintext_new_qp), else NULL: the same integer
     * polynomial modulo the special primes (p_count limbs of N, NTT form),
     * which double-hoisted rotations multiply in the extended basis Q_l u P
     * (cdl_ckks_rotate_dot_plain). p_valid: written by the last encode (a
     * decryption into the plaintext clears it). */
    int p_count;
    int p_valid;
    uint64_t *p_data;
};

struct cdl_ckks_ciphertext {
    size_t n;
    int q_count;  /* limbs allocated per polynomial (the layout's stride): ctx->q_count for a new
                   * ciphertext, level + 1 after cdl_ckks_ciphertext_shrink or when allocated at a level */
    int size;     /* 2, or 3 after a tensor product */
    int capacity; /* polynomials allocated (2 or 3) */
    int level;
    double scale;
    /* Fresh symmetric encryption: c1 was expanded from this seed (still
     * materialised in data); seeded = 1 while c1 is untouched, so a saver may
     * store the seed instead of c1. Every evaluator op clears it on its output. */
    int seeded;
    uint8_t seed[CDL_CKKS_SEED_BYTES];
    uint64_t *data; /* capacity * q_count * N; poly k limb i at (k*q_count + i)*N */
};

/* ---- pointers into the layouts above ---- */
static inline uint64_t *cdl_ct_poly(const cdl_ckks_ciphertext *ct, int k, int limb)
{
    return ct->data + ((size_t)k * (size_t)ct->q_count + (size_t)limb) * ct->n;
}
static inline uint64_t *cdl_pt_limb(const cdl_ckks_plaintext *pt, int limb)
{
    return pt->data + (size_t)limb * pt->n;
}
/* limb: the context's prime index (0..q_count-1 ciphertext primes, then the
 * special primes); a key truncated to max_level stores the special primes
 * right after q_max_level. A key restricted to the limbs and digits of levels
 * 0..max_level is the same key on those limbs (RNS limbs are independent):
 * it switches any ciphertext up to that level and reveals nothing more. */
static inline uint64_t *cdl_ksk_poly(const cdl_ckks_ksk *k, int digit, int comp, int limb)
{
    const int stored = limb < k->q_count ? limb : limb - k->q_count + k->max_level + 1;
    return k->data + (((size_t)digit * 2 + (size_t)comp) * (size_t)k->qp_count + (size_t)stored) * k->n;
}

/* ---- allocation (zero-filled objects; the public _new functions wrap these) ---- */
cdl_status cdl_ckks_ciphertext_alloc(const cdl_ckks_context *ctx, int size, int level, cdl_ckks_ciphertext **out);
/* Make room for `size` polynomials (2 or 3), keeping the contents. */
/* Room for `size` polynomials of `limbs` limbs; keeps the content (grows only). */
cdl_status cdl_ckks_ciphertext_reserve(cdl_ckks_ciphertext *ct, int size, int limbs);
/* A ciphertext of this context (N) whose storage holds its level. */
static inline int cdl_ckks_ct_fits(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *ct)
{
    return ct->n == ctx->n && ct->q_count >= 1 && ct->q_count <= ctx->q_count && ct->level >= 0 &&
           ct->level < ct->q_count;
}
cdl_status cdl_ckks_plaintext_alloc(const cdl_ckks_context *ctx, int level, cdl_ckks_plaintext **out);
cdl_status cdl_ckks_secret_key_alloc(const cdl_ckks_context *ctx, cdl_ckks_secret_key **out);
/* Fill sk->s_shoup from sk->s (call after setting s, e.g. after loading). */
cdl_status cdl_ckks_secret_key_precompute(const cdl_ckks_context *ctx, cdl_ckks_secret_key *sk);
cdl_status cdl_ckks_public_key_alloc(const cdl_ckks_context *ctx, cdl_ckks_public_key **out);
cdl_status cdl_ckks_ksk_init(const cdl_ckks_context *ctx, cdl_ckks_ksk *k); /* allocates k->data (zeroed) */
/* The same for a key truncated to ciphertext levels 0..level. */
cdl_status cdl_ckks_ksk_init_level(const cdl_ckks_context *ctx, int level, cdl_ckks_ksk *k);
/* Is k a key of ctx that can switch a ciphertext at `level`? */
int cdl_ckks_ksk_fits(const cdl_ckks_context *ctx, const cdl_ckks_ksk *k, int level);
void cdl_ckks_ksk_release(cdl_ckks_ksk *k);
cdl_status cdl_ckks_relin_key_alloc(const cdl_ckks_context *ctx, cdl_ckks_relin_key **out);
/* count keys, galois_elts zeroed, every keys[i] allocated. */
cdl_status cdl_ckks_galois_keys_alloc(const cdl_ckks_context *ctx, size_t count, cdl_ckks_galois_keys **out);
/* The same with keys[i] truncated to levels[i] (levels NULL: full keys). */
cdl_status cdl_ckks_galois_keys_alloc_levels(const cdl_ckks_context *ctx, size_t count, const int *levels,
                                             cdl_ckks_galois_keys **out);
/* Records galois element g as key i and caches its NTT-slot permutation. */
void cdl_ckks_galois_keys_set_element(cdl_ckks_galois_keys *gk, size_t i, uint64_t g);
static inline const uint32_t *cdl_ckks_galois_keys_index(const cdl_ckks_galois_keys *gk, size_t i)
{
    return gk->ntt_index + i * gk->n;
}
/* Key i between its file form (the key) and its memory form (phi^-1 of it):
 * to_memory 1 applies phi^-1 to every limb, 0 applies phi. In place. */
cdl_status cdl_ckks_galois_key_permute(cdl_ckks_galois_keys *gk, size_t i, int to_memory);

/* ---- helpers ---- */
/* Galois element for a left rotation by `step` slots: 5^step mod 2N (negative
 * steps wrap modulo N/2). Conjugation is 2N - 1. */
uint64_t cdl_ckks_galois_element(const cdl_ckks_context *ctx, int step);
static inline uint64_t cdl_ckks_conjugation_element(const cdl_ckks_context *ctx) { return 2 * (uint64_t)ctx->n - 1; }
/* Index of the key for galois element g in gk, or -1. */
int cdl_ckks_galois_keys_find(const cdl_ckks_galois_keys *gk, uint64_t g);

/* The uniform polynomial of a symmetric ciphertext, in NTT form, limbs
 * 0..level written to out (stride N), expanded deterministically from seed
 * (limb i only depends on the seed and i, so any level prefix agrees). */
cdl_status cdl_ckks_expand_seed(const cdl_ckks_context *ctx, const uint8_t seed[CDL_CKKS_SEED_BYTES], int level,
                                uint64_t *out);

/* BLAKE2b-256 (libsodium crypto_generichash) over the canonical encoding:
 * "cryptodl-ckks-params-v1", then little-endian u32 log_n, q_count, p_count,
 * dnum (resolved), secret_hamming_weight, the scale as IEEE-754 u64 bits, then
 * every prime (q then p) as u64. Fills ctx->param_hash. */
void cdl_ckks_compute_param_hash(cdl_ckks_context *ctx);

/* Nearest integer: below 2^51 by adding and removing 1.5 * 2^52 (exact in
 * double precision, and inlined where round() is a library call), else round(). */
static inline double cdl_ckks_round_to_integer(double x)
{
    const double magic = 6755399441055744.0;
    return fabs(x) < 2251799813685248.0 ? (x + magic) - magic : round(x);
}

/* AVX-512 encoder kernels (encoder_avx512.c), used when cdl_isa_active() is
 * AVX-512: one stage of the special FFT (h >= 8; inverse: the conjugate
 * twiddles), the scaled rounding of its output into coef (returns the largest
 * |coefficient|; slots a multiple of 8) and integer-valued doubles below 2^52
 * to residues modulo q (n a multiple of 8). Same results as the portable loops. */
void cdl_fft_stage_avx512(double *re, double *im, size_t size, size_t h, const double *wr, const double *wi,
                          int inverse);
double cdl_fft_round_avx512(const double *re, const double *im, size_t slots, double scale, double *coef);
void cdl_doubles_to_residues_avx512(uint64_t *o, const double *c, size_t n, uint64_t q);

/* Residue modulo m of an integer-valued double of any magnitude (encoder.c). */
uint64_t cdl_ckks_double_to_residue(double r, const cdl_modulus *m);

/* Per-thread reusable work buffers (scratch.c): a buffer of at least `words`
 * uint64_t for this slot, valid until the next call with the same slot on the
 * same thread; NULL when out of memory. Callers never hold two uses of one
 * slot at once: every function below has its own slots. */
enum {
    CDL_SCRATCH_KS_ACC,
    CDL_SCRATCH_KS_YP,
    CDL_SCRATCH_KS_CONV,
    CDL_SCRATCH_KS_CC,
    CDL_SCRATCH_KS_Y,
    CDL_SCRATCH_KS_BUFS,
    CDL_SCRATCH_KS_MAC,
    CDL_SCRATCH_EV_U,
    CDL_SCRATCH_EV_C2,
    CDL_SCRATCH_EV_C0,
    CDL_SCRATCH_EV_ROT,
    CDL_SCRATCH_RS_LAST,
    CDL_SCRATCH_RS_TMP,
    CDL_SCRATCH_MD_Y,
    CDL_SCRATCH_MD_TMP,
    CDL_SCRATCH_ENC_ACC,
    CDL_SCRATCH_ENC_U,
    CDL_SCRATCH_ENCODE,
    CDL_SCRATCH_DOT,
    CDL_SCRATCH_DH_ACC,
    CDL_SCRATCH_DH_BUFS,
    CDL_SCRATCH_SLOTS
};
uint64_t *cdl_ckks_scratch(int slot, size_t words);
/* Zeroize this thread's buffer of a slot (after it held secret-derived data). */
void cdl_ckks_scratch_wipe(int slot);
/* Free this thread's buffers now (they are also freed when the thread exits). */
void cdl_ckks_scratch_release(void);

/* Scales "equal" for add/sub: relative difference below 1e-9. */
int cdl_ckks_scales_match(double a, double b);

#endif
