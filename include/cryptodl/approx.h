/*
 * approx.h: polynomial approximations of activation functions.
 *
 * Homomorphic encryption (CKKS) can only add and multiply, so a network that
 * runs on ciphertexts replaces each activation f (ReLU, Sigmoid, Tanh) by a
 * low-degree polynomial p on an interval [a, b] (CryptoDL, Hesamifard, Takabi,
 * Ghasemi 2017). This header computes p by several methods and measures how
 * far it is from f:
 *
 *   CDL_APPROX_LS           least squares on [a, b], uniform weight
 *   CDL_APPROX_LS_GAUSS     least squares weighted by the density of N(mu, sigma)
 *                           (defaults: the middle of [a, b] and (b - a) / 6)
 *                           over the whole real line (pre-activations are
 *                           roughly Gaussian; the weight is what makes low
 *                           degrees useful inside a network)
 *   CDL_APPROX_CHEB_INTERP  interpolation at the d+1 Chebyshev points (1st kind)
 *   CDL_APPROX_CHEB_PROJ    truncated Chebyshev series (projection with the
 *                           Chebyshev weight 1/sqrt(1-t^2))
 *   CDL_APPROX_REMEZ        minimax (best uniform) approximation, Remez exchange
 *   CDL_APPROX_DERIVATIVE   CryptoDL's construction: least-squares fit of f'
 *                           (a step for ReLU) of degree d-1, integrated
 *   CDL_APPROX_TAYLOR       Taylor series at 0 (baseline; undefined for ReLU,
 *                           which is not analytic at 0)
 *
 * Every result is given in two bases:
 *   power[k]      p(x) = sum_k power[k] x^k                       (lowest first)
 *   chebyshev[k]  p(x) = sum_k chebyshev[k] T_k(t),  t = (2x - a - b) / (b - a)
 * The Chebyshev form is the well-conditioned one for evaluation at higher
 * degree (Clenshaw); the power form is what a trainer or an HE evaluator in
 * the power basis wants. Numerical work is in long double, and least squares
 * is solved by Householder QR in the Chebyshev basis (never normal equations
 * in the power basis).
 *
 * Interchange: a polynomial activation is described in JSON as
 *   {"type":"poly_activation","function":"relu","method":"remez","degree":4,
 *    "interval":[-6,6],"basis":"power","coefficients":[c0,c1,...],
 *    "chebyshev":[...], "max_abs_error":..., "rms_error":..., ...}
 * (docs/activations.md states the schema in full).
 */
#ifndef CRYPTODL_APPROX_H
#define CRYPTODL_APPROX_H

#include "cryptodl/common.h"
#include "cryptodl/ckks.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CDL_APPROX_MAX_DEGREE 31

typedef enum cdl_activation {
    CDL_ACT_RELU = 0,
    CDL_ACT_SIGMOID = 1,
    CDL_ACT_TANH = 2,
    CDL_ACT_COUNT,
    /* A polynomial read from JSON with no known reference function (e.g. one
     * learned by the trainer, "function": "learned"): errors are NaN. */
    CDL_ACT_NONE = 100
} cdl_activation;

typedef enum cdl_approx_method {
    CDL_APPROX_LS = 0,
    CDL_APPROX_LS_GAUSS = 1,
    CDL_APPROX_CHEB_INTERP = 2,
    CDL_APPROX_CHEB_PROJ = 3,
    CDL_APPROX_REMEZ = 4,
    CDL_APPROX_DERIVATIVE = 5,
    CDL_APPROX_TAYLOR = 6,
    CDL_APPROX_METHOD_COUNT,
    /* Read from JSON with another "method" (e.g. "trained", "given"). */
    CDL_APPROX_GIVEN = 100
} cdl_approx_method;

/* "relu", "sigmoid", "tanh" ("none" for CDL_ACT_NONE); NULL for an unknown value. */
CDL_API const char *cdl_activation_name(cdl_activation fn);
/* Parse a name (case-insensitive); CDL_ERR_INVALID_ARGUMENT if unknown. */
CDL_API cdl_status cdl_activation_from_name(const char *name, cdl_activation *out);
/* "ls", "ls_gauss", "cheb_interp", "cheb_proj", "remez", "derivative", "taylor"
 * ("given" for CDL_APPROX_GIVEN). */
CDL_API const char *cdl_approx_method_name(cdl_approx_method method);
/* Also accepts the aliases "lsq", "gauss", "chebyshev", "minimax", "deriv". */
CDL_API cdl_status cdl_approx_method_from_name(const char *name, cdl_approx_method *out);

/* The activation itself, in double. */
CDL_API double cdl_activation_eval(cdl_activation fn, double x);

typedef struct cdl_approx_options {
    double mu;          /* mean of the pre-activation distribution (LS_GAUSS, gaussian_mse); NaN = (a + b) / 2 */
    double sigma;       /* its standard deviation; <= 0 means (b - a) / 6 */
    double remez_tol;   /* stop when (max|e| - min|e|) / max|e| on the reference < tol; default 1e-9 */
    int remez_max_iter; /* default 100 */
} cdl_approx_options;

/* mu = NaN (auto: (a + b) / 2), sigma = 0 (auto: (b - a) / 6), remez_tol = 1e-9, remez_max_iter = 100. */
CDL_API void cdl_approx_options_default(cdl_approx_options *opt);

typedef struct cdl_poly_approx {
    cdl_activation fn;
    cdl_approx_method method;
    int degree;
    double a, b;                                   /* the interval */
    double power[CDL_APPROX_MAX_DEGREE + 1];       /* p(x) = sum power[k] x^k */
    double chebyshev[CDL_APPROX_MAX_DEGREE + 1];   /* p(x) = sum chebyshev[k] T_k(t) on [a, b] */
    /* Error analysis (f - p): */
    double max_abs_error;  /* max over [a, b] */
    double rms_error;      /* sqrt(1/(b-a) * integral over [a, b] of (f-p)^2) */
    double gaussian_mse;   /* E[(f(x) - p(x))^2], x ~ N(gauss_mu, gauss_sigma), whole real line */
    double gauss_mu, gauss_sigma;
    /* Remez only (0 otherwise): iterations run, and the achieved relative spread
     * (max|e| - min|e|) / max|e| over the final reference; converged = spread < tol. */
    int iterations;
    double equioscillation_spread;
    int converged;
} cdl_poly_approx;

/*
 * Compute the degree-d approximation of fn on [a, b] by method, with its
 * error analysis. degree in 1..CDL_APPROX_MAX_DEGREE (the derivative method
 * needs d >= 1; the range is 2..15), a < b, opt may be NULL.
 * CDL_ERR_UNSUPPORTED for Taylor on ReLU.
 */
CDL_API cdl_status cdl_approx_compute(cdl_activation fn, cdl_approx_method method, int degree, double a, double b,
                                      const cdl_approx_options *opt, cdl_poly_approx *out);

/* p(x) from the power coefficients (Horner, long double accumulation). */
CDL_API double cdl_poly_eval_power(const double *coeffs, int degree, double x);
/* p(x) from Chebyshev coefficients on [a, b] (Clenshaw, long double accumulation). */
CDL_API double cdl_poly_eval_chebyshev(const double *coeffs, int degree, double a, double b, double x);

/* Conversions between the two bases on [a, b] (degree <= CDL_APPROX_MAX_DEGREE). */
CDL_API cdl_status cdl_poly_chebyshev_to_power(const double *cheb, int degree, double a, double b, double *power);
CDL_API cdl_status cdl_poly_power_to_chebyshev(const double *power, int degree, double a, double b, double *cheb);

/* Recompute max_abs_error, rms_error and gaussian_mse of `p` (fn, degree,
 * interval and chebyshev must be set) for N(mu, sigma); mu NaN and sigma <= 0
 * mean the defaults (a + b) / 2 and (b - a) / 6. */
CDL_API cdl_status cdl_approx_analyze(cdl_poly_approx *p, double mu, double sigma);

/* ---- JSON interchange ------------------------------------------------------- */

/* The description as a JSON object text (free with cdl_approx_string_free). */
CDL_API cdl_status cdl_poly_approx_to_json(const cdl_poly_approx *p, char **json);
CDL_API void cdl_approx_string_free(char *s);
/* Parse a description. "basis" is "power" (coefficients are power
 * coefficients) or "chebyshev" (coefficients are Chebyshev coefficients on the
 * interval); the other basis is recomputed, and the error fields are
 * recomputed from the function. Unknown extra keys are ignored. Written by
 * others (the Python trainer): an unknown "function" gives CDL_ACT_NONE (errors
 * NaN, not written back), an unknown or missing "method" CDL_APPROX_GIVEN, a
 * missing "interval" [-1, 1]. */
CDL_API cdl_status cdl_poly_approx_from_json(const char *json, cdl_poly_approx *out);
CDL_API cdl_status cdl_poly_approx_save(const cdl_poly_approx *p, const char *path);
CDL_API cdl_status cdl_poly_approx_load(const char *path, cdl_poly_approx *out);

/* ---- evaluation on ciphertexts: the plan ------------------------------------

 * What evaluating p(x) = sum coeffs[i] x^i (power basis) on a CKKS ciphertext
 * costs, before anything runs (the evaluator follows exactly this schedule;
 * docs/activations.md describes it):
 *   depth        levels consumed = ceil(log2(d + 1)), the minimum for degree d
 *   ct_mults     ciphertext x ciphertext multiplications (each followed by
 *                relinearization and one rescale), of which power_mults build
 *                powers x^i and the rest join sub-polynomials (q(x) * x^m)
 *   const_mults  ciphertext x constant multiplications
 * Zero coefficients are skipped (leading zeros lower the degree); coeffs ==
 * NULL plans a generic polynomial (every coefficient non-zero, and none
 * cancelling in a Chebyshev split). */
typedef struct cdl_poly_eval_plan {
    int degree;    /* effective degree */
    int depth;
    int baby_step; /* g: the powers x^2..x^(g-1) are computed once and shared */
    int ct_mults;
    int power_mults;
    int const_mults;
    int rescales;
} cdl_poly_eval_plan;

CDL_API cdl_status cdl_poly_eval_plan_compute(const double *coeffs, int degree, cdl_poly_eval_plan *plan);
/* The same for p(t) = sum cheb[i] T_i(t), evaluated in the Chebyshev basis
 * (what cdl_ckks_eval_poly_approx does; a Chebyshev split needs 2m > n, and
 * each T_i of non-power-of-two index costs one constant multiplication). */
CDL_API cdl_status cdl_poly_eval_plan_chebyshev(const double *cheb, int degree, cdl_poly_eval_plan *plan);

/* ---- evaluation on ciphertexts ----------------------------------------------- */

/* What a run did (to compare with the plan). */
typedef struct cdl_poly_eval_stats {
    int level_in, level_out;
    int depth;            /* level_in - level_out */
    int planned_depth;    /* from the plan, known before the run */
    int planned_ct_mults;
    int ct_mults;         /* ciphertext x ciphertext multiplications performed */
    int const_mults;
    int rescales;
} cdl_poly_eval_stats;

/*
 * out = p(t), t = alpha x + beta (alpha > 0), p(t) = sum coeffs[i] t^i, where
 * `in` encrypts x (relinearized, size 2). Consumes exactly ceil(log2(d+1))
 * levels (CDL_ERR_EXHAUSTED, before any work, if `in` has fewer) and returns
 * a ciphertext whose scale is exactly out_scale (0: the scale of `in`).
 * Needs the relinearization key. stats may be NULL.
 *
 * t costs no level: the ciphertext of x at scale s is read as one of alpha x
 * at scale s / alpha. So that t carries the working scale (about the next
 * prime), encrypt x at scale alpha * (working scale), or fold alpha and beta
 * into the previous linear layer and pass alpha = 1, beta = 0. A scale far
 * off (the powers of t would drift by more than 2^10) is refused with
 * CDL_ERR_PARAMETERS. Precision at scale 2^40: |decrypted - p(t)| < 2^-20
 * for |t| <= 1 and coefficients of size ~1 (measured: <= 3e-8, degree 1..15).
 */
CDL_API cdl_status cdl_ckks_eval_poly(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                      const cdl_ckks_ciphertext *in, const double *coeffs, int degree, double alpha,
                                      double beta, double out_scale, cdl_ckks_ciphertext *out,
                                      cdl_poly_eval_stats *stats);
/* out = sum cheb[i] T_i(t), t = alpha x + beta, in the Chebyshev basis (same
 * depth, better precision at high degree: |T_i(t)| <= 1 on [-1, 1]). */
CDL_API cdl_status cdl_ckks_eval_poly_chebyshev(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                                const cdl_ckks_ciphertext *in, const double *cheb, int degree,
                                                double alpha, double beta, double out_scale,
                                                cdl_ckks_ciphertext *out, cdl_poly_eval_stats *stats);
/* The same for an approximation: p->chebyshev in t = (2x - a - b)/(b - a). */
CDL_API cdl_status cdl_ckks_eval_poly_approx(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                             const cdl_ckks_ciphertext *in, const cdl_poly_approx *p,
                                             double out_scale, cdl_ckks_ciphertext *out, cdl_poly_eval_stats *stats);

#ifdef __cplusplus
}
#endif
#endif
