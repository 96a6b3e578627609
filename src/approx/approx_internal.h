/*
 * approx_internal.h: the numerical kernels behind include/cryptodl/approx.h,
 * shared by the files of src/approx and by the unit tests (which use them on
 * functions other than the activations, e.g. |x| and e^x, whose minimax
 * errors are known in closed form).
 *
 * All work is in long double on t in [-1, 1]; x = mid + half * t maps it to
 * the caller's interval [a, b].
 */
#ifndef CDL_APPROX_INTERNAL_H
#define CDL_APPROX_INTERNAL_H

#include "cryptodl/approx.h"

#define CDL_APPROX_NMAX (CDL_APPROX_MAX_DEGREE + 2)

/* A function to approximate: value, derivative (may be NULL if not needed),
 * and up to 4 points where it is not smooth (kinks), so that quadrature
 * and extremum searches split there. */
typedef long double (*cdl_approx_real_fn)(long double x, const void *ctx);
typedef struct cdl_approx_target {
    cdl_approx_real_fn f;
    cdl_approx_real_fn df;
    const void *ctx;
    int n_kinks;
    long double kinks[4];
} cdl_approx_target;

/* The target for an activation. */
void cdl_approx_target_activation(cdl_activation fn, cdl_approx_target *t);

/* Integration rule: n nodes/weights of Gauss-Legendre on [-1, 1] (n <= 64). */
void cdl_gauss_legendre(int n, long double *nodes, long double *weights);

/* Composite Gauss-Legendre nodes on [lo, hi], split at the kinks inside and
 * into `panels` equal panels per smooth piece. Returns the number of nodes
 * written (at most capacity); x/w may be NULL to only count. */
size_t cdl_quad_composite(long double lo, long double hi, const long double *kinks, int n_kinks, int panels,
                          long double *x, long double *w, size_t capacity);

/* Clenshaw for sum c[k] T_k(t). */
long double cdl_cheb_clenshaw(const long double *c, int degree, long double t);

/* Least squares min sum_i w_i (g(x_i) - sum_k c_k T_k(t_i))^2 with Householder
 * QR, where t_i = (x_i - mid)/half. m rows, degree+1 <= m columns. */
cdl_status cdl_ls_chebyshev(const long double *x, const long double *w, const long double *y, size_t m, int degree,
                            long double mid, long double half, long double *c);

/* Solve the n x n system A z = r (row-major, overwritten) by Gaussian
 * elimination with partial pivoting. */
cdl_status cdl_solve_dense(long double *A, long double *r, int n, long double *z);

/* Fitting kernels on the target (Chebyshev coefficients on [a, b] out). */
cdl_status cdl_fit_ls(const cdl_approx_target *t, int degree, long double a, long double b, long double *c);
cdl_status cdl_fit_ls_gauss(const cdl_approx_target *t, int degree, long double a, long double b, long double mu,
                            long double sigma, long double *c);
cdl_status cdl_fit_cheb_interp(const cdl_approx_target *t, int degree, long double a, long double b, long double *c);
cdl_status cdl_fit_cheb_proj(const cdl_approx_target *t, int degree, long double a, long double b, long double *c);
cdl_status cdl_fit_derivative(const cdl_approx_target *t, int degree, long double a, long double b, long double *c);

typedef struct cdl_remez_report {
    int iterations;
    long double spread; /* (max|e| - min|e|) / max|e| on the final reference */
    long double level;  /* |E|, the levelled error of the final reference */
    long double max_error;
    int converged;
} cdl_remez_report;
cdl_status cdl_fit_remez(const cdl_approx_target *t, int degree, long double a, long double b, long double tol,
                         int max_iter, long double *c, cdl_remez_report *rep);

/* Max over [a, b] of |f - p| for p = sum c_k T_k on [a, b]. */
long double cdl_approx_max_error(const cdl_approx_target *t, const long double *c, int degree, long double a,
                                 long double b);

/* Chebyshev (on [a,b]) <-> power coefficients, long double. */
void cdl_cheb_to_power_ld(const long double *c, int degree, long double a, long double b, long double *p);
void cdl_power_to_cheb_ld(const long double *p, int degree, long double a, long double b, long double *c);

/* Taylor coefficients at 0 of tanh and sigmoid up to degree. */
void cdl_taylor_tanh(int degree, long double *p);
void cdl_taylor_sigmoid(int degree, long double *p);

#endif
