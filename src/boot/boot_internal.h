/*
 * boot_internal.h: the pieces of CKKS bootstrapping (include/cryptodl/bootstrap.h).
 *
 *  dft.c       the encoder's special FFT as a product of sparse-diagonal
 *              matrices (one per butterfly stage), merged into one matrix per
 *              level, in plain doubles;
 *  lintrans.c  such a matrix applied to a ciphertext (baby-step giant-step,
 *              double-hoisted baby rotations, diagonals encoded once at their
 *              level, with the special primes for the rotated terms);
 *  evalmod.c   x -> sin(2 pi x) on a ciphertext (cosine interpolant + double angles);
 *  bootstrap.c parameters, presets, keys, ModRaise, sparse-secret encapsulation
 *              and the whole pipeline; serialize.c the keys' byte format.
 */
#ifndef CDL_BOOT_INTERNAL_H
#define CDL_BOOT_INTERNAL_H

#include "ckks/ckks_internal.h"
#include "cryptodl/approx.h"
#include "cryptodl/bootstrap.h"

/* A sparse n x n complex matrix by its cyclic diagonals:
 * (M x)[p] = sum_t diag_t[p] * x[(p + offset_t) mod n]. */
typedef struct boot_diag_matrix {
    size_t n;
    int count;
    int *offset;   /* count offsets in [0, n), increasing */
    double *re;    /* count * n */
    double *im;
} boot_diag_matrix;

void boot_diag_matrix_free(boot_diag_matrix *m);
/* The factors of the special FFT of size n (a power of two <= N/2; encoder.c
 * at n = N/2): decode = F_(n/2) ... F_2 F_1 R (R the bit reversal); the
 * matrices (n x n) merged into `groups` consecutive factors.
 * inverse = 0: out[g] for SlotToCoeff, applied in order 0, 1, ...: their
 * product applied to R c is the decoding of c. inverse = 1: CoeffToSlot: the
 * product of out[0], out[1], ... (out[0] first) is R times the encoder's
 * inverse FFT (1/n included). `groups` in 1..log2(n). */
cdl_status boot_dft_factors(const cdl_ckks_context *ctx, size_t n, int inverse, int groups, boot_diag_matrix *out);
/* The 2n x 2n matrix [[b0 M, b1 M], [b2 M, b3 M]] (b complex): for sparse
 * slots, one ciphertext holds a vector of period 2n in two halves. */
cdl_status boot_diag_matrix_lift2(const boot_diag_matrix *m, const double block_re[4], const double block_im[4],
                                  boot_diag_matrix *out);
/* Plain application, for tests: y = M x (complex, n entries). */
void boot_diag_matrix_apply(const boot_diag_matrix *m, const double *xr, const double *xi, double *yr, double *yi);

/* A diagonal matrix prepared for one level: its diagonals regrouped for
 * baby-step giant-step and encoded. Offsets are k * step, k = g * j + i. */
typedef struct boot_lintrans {
    int level;           /* level of the input ciphertext; the output is at level - 1 */
    int period;          /* the matrix's size: inputs repeat with this period */
    int step;            /* every offset is a multiple of step */
    int g;               /* baby steps 0..g-1 */
    int jmin, jcount;    /* giant steps jmin .. jmin + jcount - 1 */
    int nbaby;           /* baby steps used */
    int *baby;           /* nbaby baby indices i (0 first if used) */
    cdl_ckks_plaintext **pt; /* jcount * g: diagonal k = g j + i pre-rotated by -g j step, or NULL */
    double pt_scale;
} boot_lintrans;

/* Encode m for an input at `level`: diagonals at scale q_level * factor (the
 * output scale is the input's times factor), repeated over the N/2 slots
 * when m is smaller (sparse slots: inputs of period m->n). */
cdl_status boot_lintrans_prepare(const cdl_ckks_context *ctx, const boot_diag_matrix *m, int level, double factor,
                                 boot_lintrans *lt);
void boot_lintrans_release(boot_lintrans *lt);
/* Rotation steps the transform uses (signed, reduced to (-n/2, n/2]) with the
 * level each is needed at; returns the count written (at most `capacity`). */
int boot_lintrans_steps(const cdl_ckks_context *ctx, const boot_lintrans *lt, int *steps, int *levels,
                        int capacity);
/* out = M in, one level lower, rescaled. in at lt->level, size 2. */
cdl_status boot_lintrans_apply(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, const boot_lintrans *lt,
                               const cdl_ckks_ciphertext *in, cdl_ckks_ciphertext *out);
size_t boot_lintrans_bytes(const boot_lintrans *lt);

/* EvalMod plan: cos(2 pi (x - 1/4) / 2^r) ~ sum cheb[i] T_i(x / bound) on [-bound, bound]. */
typedef struct boot_evalmod {
    int degree;
    int double_angle;
    double bound;        /* K + 1/2 */
    double cheb[CDL_APPROX_MAX_DEGREE + 1];
    double max_error;    /* of the interpolant, before the double angles */
} boot_evalmod;
cdl_status boot_evalmod_plan(int k_bound, int degree, int double_angle, boot_evalmod *em);
/* out ~ sin(2 pi x) for x = the slot values of `in` (real), levels spent:
 * ceil(log2(degree + 1)) + double_angle. The output's scale is recorded in it. */
cdl_status boot_evalmod_apply(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk, const boot_evalmod *em,
                              const cdl_ckks_ciphertext *in, cdl_ckks_ciphertext *out);
int boot_evalmod_depth(const boot_evalmod *em);

struct cdl_ckks_bootstrapper {
    const cdl_ckks_context *ctx;
    cdl_ckks_bootstrap_params p;
    size_t slots;               /* n: N/2, or 2^log_slots for sparse slots */
    int subsum_steps;           /* log2(N / (2n)): rotations by n, 2n, ... after ModRaise */
    int log_ratio;              /* log2(q0 / input scale) in force: log_message_ratio + subsum_steps / 2 */
    cdl_ckks_context *sse_ctx;  /* (N, q0, p') with the sparse secret's weight; NULL without encapsulation */
    int cts_count, stc_count;
    boot_lintrans *cts;         /* applied in order, from max_level down */
    boot_lintrans *stc;
    boot_evalmod em;
    int level_cts_out;          /* after CoeffToSlot (EvalMod input) */
    int level_stc_in;
    int level_out;
    int packed;                 /* sparse slots with 2n <= N/2: real and imaginary parts share one EvalMod */
    cdl_ckks_plaintext *imag_unit; /* i (the monomial X^(N/2)) at level_cts_out, scale 1 */
    cdl_ckks_plaintext *imag_unit_stc; /* the same at level_stc_in */
    int nsteps;
    int *steps;                 /* rotation keys: step and level */
    int *step_levels;
};

struct cdl_ckks_bootstrap_keys {
    cdl_ckks_galois_keys *gk;   /* DFT rotations and conjugation */
    int has_sse;
    cdl_ckks_ksk to_sparse;     /* in sse_ctx: from s to s' (level 0 of q0 * p') */
    cdl_ckks_ksk from_sparse;   /* in ctx: from s' to s, full level */
};

#endif
