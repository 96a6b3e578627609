/*
 * fit.c: the approximation methods other than Remez (least squares, weighted
 * least squares, Chebyshev interpolation and projection, CryptoDL's
 * derivative method, Taylor), the error analysis, and cdl_approx_compute(),
 * which dispatches between them and fills a cdl_poly_approx.
 *
 * Every method works on t in [-1, 1] (x = mid + half t) and returns Chebyshev
 * coefficients; the power form is derived from them at the end.
 *
 * Integrals (least squares, RMS and Gaussian errors) use composite
 * Gauss-Legendre rules split at the kink of ReLU, so that they are accurate to
 * long double precision rather than to the O(h^2) of a sampled sum.
 */
#include <math.h>
#include <string.h>

#include "approx/approx_internal.h"
#include "core/error.h"
#include "core/memory.h"

#define CDL_PI_L 3.141592653589793238462643383279502884L
#define LS_PANELS 48
#define GAUSS_SPAN 10.0L /* N(mu, sigma) integrated over mu +- 10 sigma: tail mass < 2e-23 */

void cdl_approx_options_default(cdl_approx_options *opt)
{
    opt->mu = NAN; /* auto: the middle of the interval */
    opt->sigma = 0.0;
    opt->remez_tol = 1e-9;
    opt->remez_max_iter = 100;
}

/* Weighted least squares on the composite rule of [lo, hi] with the extra weight
 * `weight(x)` (NULL = 1), fitting g = f or f'. */
static cdl_status fit_ls_on(const cdl_approx_target *t, cdl_approx_real_fn g, int degree, long double lo,
                            long double hi, long double mu, long double sigma, int gaussian, long double a,
                            long double b, long double *c)
{
    size_t m = cdl_quad_composite(lo, hi, t->kinks, t->n_kinks, LS_PANELS, NULL, NULL, 0);
    long double *x = cdl_alloc_array(m, sizeof *x);
    long double *w = cdl_alloc_array(m, sizeof *w);
    long double *y = cdl_alloc_array(m, sizeof *y);
    cdl_status st = CDL_OK;
    if (!x || !w || !y) {
        st = CDL_ERR_NO_MEMORY;
        goto done;
    }
    cdl_quad_composite(lo, hi, t->kinks, t->n_kinks, LS_PANELS, x, w, m);
    for (size_t i = 0; i < m; i++) {
        y[i] = g(x[i], t->ctx);
        if (gaussian) {
            long double z = (x[i] - mu) / sigma;
            w[i] *= expl(-0.5L * z * z);
        }
    }
    st = cdl_ls_chebyshev(x, w, y, m, degree, 0.5L * (a + b), 0.5L * (b - a), c);
done:
    cdl_free(x);
    cdl_free(w);
    cdl_free(y);
    return st;
}

cdl_status cdl_fit_ls(const cdl_approx_target *t, int degree, long double a, long double b, long double *c)
{
    return fit_ls_on(t, t->f, degree, a, b, 0, 1, 0, a, b, c);
}

cdl_status cdl_fit_ls_gauss(const cdl_approx_target *t, int degree, long double a, long double b, long double mu,
                            long double sigma, long double *c)
{
    return fit_ls_on(t, t->f, degree, mu - GAUSS_SPAN * sigma, mu + GAUSS_SPAN * sigma, mu, sigma, 1, a, b, c);
}

cdl_status cdl_fit_cheb_interp(const cdl_approx_target *t, int degree, long double a, long double b, long double *c)
{
    int n = degree + 1;
    long double mid = 0.5L * (a + b), half = 0.5L * (b - a);
    long double fv[CDL_APPROX_NMAX];
    for (int j = 0; j < n; j++)
        fv[j] = t->f(mid + half * cosl(CDL_PI_L * ((long double)j + 0.5L) / (long double)n), t->ctx);
    for (int k = 0; k < n; k++) {
        long double s = 0.0L;
        for (int j = 0; j < n; j++)
            s += fv[j] * cosl(CDL_PI_L * (long double)k * ((long double)j + 0.5L) / (long double)n);
        c[k] = s * (k == 0 ? 1.0L : 2.0L) / (long double)n;
    }
    return CDL_OK;
}

cdl_status cdl_fit_cheb_proj(const cdl_approx_target *t, int degree, long double a, long double b, long double *c)
{
    /* c_k = (2/pi) int_0^pi f(mid + half cos th) cos(k th) dth (halved for k = 0),
     * split at the angles of the kinks. */
    long double mid = 0.5L * (a + b), half = 0.5L * (b - a);
    long double kth[4];
    int nk = 0;
    for (int i = 0; i < t->n_kinks; i++) {
        long double u = (t->kinks[i] - mid) / half;
        if (u > -1.0L && u < 1.0L)
            kth[nk++] = acosl(u);
    }
    size_t m = cdl_quad_composite(0.0L, CDL_PI_L, kth, nk, LS_PANELS, NULL, NULL, 0);
    long double *th = cdl_alloc_array(m, sizeof *th);
    long double *w = cdl_alloc_array(m, sizeof *w);
    if (!th || !w) {
        cdl_free(th);
        cdl_free(w);
        return CDL_ERR_NO_MEMORY;
    }
    cdl_quad_composite(0.0L, CDL_PI_L, kth, nk, LS_PANELS, th, w, m);
    for (int k = 0; k <= degree; k++)
        c[k] = 0.0L;
    for (size_t i = 0; i < m; i++) {
        long double fv = t->f(mid + half * cosl(th[i]), t->ctx) * w[i];
        for (int k = 0; k <= degree; k++)
            c[k] += fv * cosl((long double)k * th[i]);
    }
    for (int k = 0; k <= degree; k++)
        c[k] *= (k == 0 ? 1.0L : 2.0L) / CDL_PI_L;
    cdl_free(th);
    cdl_free(w);
    return CDL_OK;
}

cdl_status cdl_fit_derivative(const cdl_approx_target *t, int degree, long double a, long double b, long double *c)
{
    /* CryptoDL (Hesamifard et al. 2017, section 3): approximate the derivative
     * (for ReLU, the step function) by a polynomial q of degree d-1 (here: least
     * squares on [a, b]), and take p = integral of q. With dx = half dt and
     * int T_k = T_{k+1}/(2(k+1)) - T_{k-1}/(2(k-1)), the Chebyshev coefficients
     * of p are C_1 = half (q_0 - q_2/2), C_k = half (q_{k-1} - q_{k+1}) / (2k).
     * The constant C_0 is the one that minimises the L2 error on [a, b]
     * (the mean of f - (p - C_0)). */
    if (degree < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "the derivative method needs degree >= 1");
    if (!t->df)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "the derivative method needs the derivative of the function");
    long double q[CDL_APPROX_NMAX + 2] = {0};
    CDL_TRY(fit_ls_on(t, t->df, degree - 1, a, b, 0, 1, 0, a, b, q));
    long double half = 0.5L * (b - a), mid = 0.5L * (a + b);
    c[0] = 0.0L;
    for (int k = 1; k <= degree; k++) {
        long double lo = (k == 1) ? 2.0L * q[0] : q[k - 1];
        c[k] = half * (lo - q[k + 1]) / (2.0L * (long double)k);
    }
    size_t m = cdl_quad_composite(a, b, t->kinks, t->n_kinks, LS_PANELS, NULL, NULL, 0);
    long double *x = cdl_alloc_array(m, sizeof *x), *w = cdl_alloc_array(m, sizeof *w);
    if (!x || !w) {
        cdl_free(x);
        cdl_free(w);
        return CDL_ERR_NO_MEMORY;
    }
    cdl_quad_composite(a, b, t->kinks, t->n_kinks, LS_PANELS, x, w, m);
    long double s = 0.0L;
    for (size_t i = 0; i < m; i++)
        s += w[i] * (t->f(x[i], t->ctx) - cdl_cheb_clenshaw(c, degree, (x[i] - mid) / half));
    c[0] = s / (b - a);
    cdl_free(x);
    cdl_free(w);
    return CDL_OK;
}

/* ---- error analysis ---------------------------------------------------------- */

static long double err_at(const cdl_approx_target *t, const long double *c, int degree, long double mid,
                          long double half, long double x)
{
    return t->f(x, t->ctx) - cdl_cheb_clenshaw(c, degree, (x - mid) / half);
}

long double cdl_approx_max_error(const cdl_approx_target *t, const long double *c, int degree, long double a,
                                 long double b)
{
    /* Dense sampling, then golden-section refinement around the largest sample. */
    const int n = 8192;
    long double mid = 0.5L * (a + b), half = 0.5L * (b - a);
    long double best = -1.0L, bx = a;
    int bi = 0;
    for (int i = 0; i <= n; i++) {
        long double x = a + (b - a) * (long double)i / (long double)n;
        long double e = fabsl(err_at(t, c, degree, mid, half, x));
        if (e > best) {
            best = e;
            bx = x;
            bi = i;
        }
    }
    for (int k = 0; k < t->n_kinks; k++)
        if (t->kinks[k] > a && t->kinks[k] < b) {
            long double e = fabsl(err_at(t, c, degree, mid, half, t->kinks[k]));
            if (e > best)
                best = e;
        }
    long double lo = a + (b - a) * (long double)(bi > 0 ? bi - 1 : 0) / (long double)n;
    long double hi = a + (b - a) * (long double)(bi < n ? bi + 1 : n) / (long double)n;
    const long double g = 0.6180339887498948482L;
    long double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    long double e1 = fabsl(err_at(t, c, degree, mid, half, x1)), e2 = fabsl(err_at(t, c, degree, mid, half, x2));
    for (int it = 0; it < 80; it++) {
        if (e1 > e2) {
            hi = x2;
            x2 = x1;
            e2 = e1;
            x1 = hi - g * (hi - lo);
            e1 = fabsl(err_at(t, c, degree, mid, half, x1));
        } else {
            lo = x1;
            x1 = x2;
            e1 = e2;
            x2 = lo + g * (hi - lo);
            e2 = fabsl(err_at(t, c, degree, mid, half, x2));
        }
    }
    (void)bx;
    if (e1 > best)
        best = e1;
    if (e2 > best)
        best = e2;
    return best;
}

/* integral of weight * (f - p)^2 over [lo, hi]; gaussian != 0 multiplies by the N(mu, sigma) density. */
static cdl_status sq_error_integral(const cdl_approx_target *t, const long double *c, int degree, long double a,
                                    long double b, long double lo, long double hi, int gaussian, long double mu,
                                    long double sigma, long double *out)
{
    size_t m = cdl_quad_composite(lo, hi, t->kinks, t->n_kinks, 64, NULL, NULL, 0);
    long double *x = cdl_alloc_array(m, sizeof *x), *w = cdl_alloc_array(m, sizeof *w);
    if (!x || !w) {
        cdl_free(x);
        cdl_free(w);
        return CDL_ERR_NO_MEMORY;
    }
    cdl_quad_composite(lo, hi, t->kinks, t->n_kinks, 64, x, w, m);
    long double mid = 0.5L * (a + b), half = 0.5L * (b - a), s = 0.0L;
    for (size_t i = 0; i < m; i++) {
        long double e = err_at(t, c, degree, mid, half, x[i]);
        long double wi = w[i];
        if (gaussian) {
            long double z = (x[i] - mu) / sigma;
            wi *= expl(-0.5L * z * z) / (sigma * sqrtl(2.0L * CDL_PI_L));
        }
        s += wi * e * e;
    }
    cdl_free(x);
    cdl_free(w);
    *out = s;
    return CDL_OK;
}

cdl_status cdl_approx_analyze(cdl_poly_approx *p, double mu, double sigma)
{
    if (!p || ((unsigned)p->fn >= CDL_ACT_COUNT && p->fn != CDL_ACT_NONE) || p->degree < 0 ||
        p->degree > CDL_APPROX_MAX_DEGREE || !(p->a < p->b))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx analyze: invalid polynomial description");
    if (!(sigma > 0))
        sigma = (p->b - p->a) / 6.0;
    if (isnan(mu))
        mu = 0.5 * (p->a + p->b);
    if (p->fn == CDL_ACT_NONE) { /* no reference function: nothing to compare with */
        p->max_abs_error = p->rms_error = p->gaussian_mse = NAN;
        p->gauss_mu = mu;
        p->gauss_sigma = sigma;
        return CDL_OK;
    }
    cdl_approx_target t;
    cdl_approx_target_activation(p->fn, &t);
    long double c[CDL_APPROX_NMAX];
    for (int k = 0; k <= p->degree; k++)
        c[k] = p->chebyshev[k];
    long double a = p->a, b = p->b, s;
    p->max_abs_error = (double)cdl_approx_max_error(&t, c, p->degree, a, b);
    CDL_TRY(sq_error_integral(&t, c, p->degree, a, b, a, b, 0, 0, 1, &s));
    p->rms_error = (double)sqrtl(s / (b - a));
    CDL_TRY(sq_error_integral(&t, c, p->degree, a, b, mu - GAUSS_SPAN * sigma, mu + GAUSS_SPAN * sigma, 1, mu,
                              sigma, &s));
    p->gaussian_mse = (double)s;
    p->gauss_mu = mu;
    p->gauss_sigma = sigma;
    return CDL_OK;
}

cdl_status cdl_approx_compute(cdl_activation fn, cdl_approx_method method, int degree, double a, double b,
                              const cdl_approx_options *opt_in, cdl_poly_approx *out)
{
    if (!out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx: NULL output");
    if ((unsigned)fn >= CDL_ACT_COUNT)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx: unknown activation %d", (int)fn);
    if ((unsigned)method >= CDL_APPROX_METHOD_COUNT)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx: unknown method %d", (int)method);
    if (degree < 1 || degree > CDL_APPROX_MAX_DEGREE)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx: degree %d is outside 1..%d", degree,
                        CDL_APPROX_MAX_DEGREE);
    if (!(a < b) || !isfinite(a) || !isfinite(b))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx: the interval [%g, %g] is empty or not finite; give a < b",
                        a, b);
    cdl_approx_options opt;
    if (opt_in)
        opt = *opt_in;
    else
        cdl_approx_options_default(&opt);
    double sigma = opt.sigma > 0 ? opt.sigma : (b - a) / 6.0;
    if (isnan(opt.mu))
        opt.mu = 0.5 * (a + b);
    if (!isfinite(opt.mu) || !isfinite(sigma))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx: mu and sigma must be finite");
    if (method == CDL_APPROX_TAYLOR && fn == CDL_ACT_RELU)
        return cdl_fail(CDL_ERR_UNSUPPORTED,
                        "approx: ReLU has no Taylor series at 0 (it is not differentiable there); "
                        "use another method (remez, ls, ls_gauss, cheb_interp, cheb_proj, derivative)");

    memset(out, 0, sizeof *out);
    out->fn = fn;
    out->method = method;
    out->degree = degree;
    out->a = a;
    out->b = b;
    cdl_approx_target t;
    cdl_approx_target_activation(fn, &t);
    long double c[CDL_APPROX_NMAX + 2] = {0}, pw[CDL_APPROX_NMAX] = {0};
    long double la = a, lb = b;
    switch (method) {
    case CDL_APPROX_LS:
        CDL_TRY(cdl_fit_ls(&t, degree, la, lb, c));
        break;
    case CDL_APPROX_LS_GAUSS:
        CDL_TRY(cdl_fit_ls_gauss(&t, degree, la, lb, opt.mu, sigma, c));
        break;
    case CDL_APPROX_CHEB_INTERP:
        CDL_TRY(cdl_fit_cheb_interp(&t, degree, la, lb, c));
        break;
    case CDL_APPROX_CHEB_PROJ:
        CDL_TRY(cdl_fit_cheb_proj(&t, degree, la, lb, c));
        break;
    case CDL_APPROX_DERIVATIVE:
        CDL_TRY(cdl_fit_derivative(&t, degree, la, lb, c));
        break;
    case CDL_APPROX_REMEZ: {
        cdl_remez_report rep;
        double tol = opt.remez_tol > 0 ? opt.remez_tol : 1e-9;
        int iters = opt.remez_max_iter > 0 ? opt.remez_max_iter : 100;
        CDL_TRY(cdl_fit_remez(&t, degree, la, lb, tol, iters, c, &rep));
        out->iterations = rep.iterations;
        out->equioscillation_spread = (double)rep.spread;
        out->converged = rep.converged;
        break;
    }
    case CDL_APPROX_TAYLOR:
        if (fn == CDL_ACT_TANH)
            cdl_taylor_tanh(degree, pw);
        else
            cdl_taylor_sigmoid(degree, pw);
        cdl_power_to_cheb_ld(pw, degree, la, lb, c);
        break;
    default:
        return cdl_fail(CDL_ERR_INTERNAL, "approx: method %d not dispatched", (int)method);
    }
    /* Symmetry: on a symmetric interval (with a symmetric weight) the exact
     * answer of every method has the parity of f: ReLU = x/2 + (even part),
     * Sigmoid = 1/2 + (odd part), Tanh odd. The coefficients that must vanish
     * come out as iteration or rounding residue (1e-12 after Remez, whose
     * reference is deliberately asymmetric); set them to exactly 0, so that
     * the polynomial is exactly as symmetric as f and costs less on
     * ciphertexts. T_k has the parity of k. */
    if (fabs(a + b) <= 1e-12 * (b - a) && (method != CDL_APPROX_LS_GAUSS || fabs(opt.mu) <= 1e-12 * (b - a))) {
        for (int k = 0; k <= degree; k++) {
            int odd = k % 2;
            if ((fn == CDL_ACT_RELU && odd && k >= 3) || (fn == CDL_ACT_SIGMOID && !odd && k >= 2) ||
                (fn == CDL_ACT_TANH && !odd))
                c[k] = 0.0L;
        }
    }
    /* Coefficients at rounding level (e.g. the even ones of tanh on a symmetric
     * interval, 1e-17 instead of 0) are set to exactly 0: they carry no
     * information, and a zero coefficient is skipped on ciphertexts. */
    long double cmax = 0.0L;
    for (int k = 0; k <= degree; k++)
        cmax = fmaxl(cmax, fabsl(c[k]));
    for (int k = 0; k <= degree; k++)
        if (fabsl(c[k]) <= 1e-15L * cmax)
            c[k] = 0.0L;
    if (method != CDL_APPROX_TAYLOR) {
        cdl_cheb_to_power_ld(c, degree, la, lb, pw);
    } else {
        long double pmax = 0.0L;
        for (int k = 0; k <= degree; k++)
            pmax = fmaxl(pmax, fabsl(pw[k]));
        for (int k = 0; k <= degree; k++)
            if (fabsl(pw[k]) <= 1e-15L * pmax)
                pw[k] = 0.0L;
    }
    for (int k = 0; k <= degree; k++) {
        out->chebyshev[k] = (double)c[k];
        out->power[k] = (double)pw[k];
    }
    return cdl_approx_analyze(out, opt.mu, sigma);
}

/* ---- public evaluation and conversion helpers ----------------------------------- */

double cdl_poly_eval_power(const double *coeffs, int degree, double x)
{
    long double s = 0.0L;
    for (int k = degree; k >= 0; k--)
        s = s * (long double)x + (long double)coeffs[k];
    return (double)s;
}

double cdl_poly_eval_chebyshev(const double *coeffs, int degree, double a, double b, double x)
{
    long double c[CDL_APPROX_NMAX];
    if (degree < 0 || degree > CDL_APPROX_MAX_DEGREE)
        return NAN;
    for (int k = 0; k <= degree; k++)
        c[k] = coeffs[k];
    long double t = (2.0L * (long double)x - (long double)a - (long double)b) / ((long double)b - (long double)a);
    return (double)cdl_cheb_clenshaw(c, degree, t);
}

cdl_status cdl_poly_chebyshev_to_power(const double *cheb, int degree, double a, double b, double *power)
{
    if (!cheb || !power || degree < 0 || degree > CDL_APPROX_MAX_DEGREE || !(a < b))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "chebyshev_to_power: need degree 0..%d and a < b",
                        CDL_APPROX_MAX_DEGREE);
    long double c[CDL_APPROX_NMAX], p[CDL_APPROX_NMAX];
    for (int k = 0; k <= degree; k++)
        c[k] = cheb[k];
    cdl_cheb_to_power_ld(c, degree, a, b, p);
    for (int k = 0; k <= degree; k++)
        power[k] = (double)p[k];
    return CDL_OK;
}

cdl_status cdl_poly_power_to_chebyshev(const double *power, int degree, double a, double b, double *cheb)
{
    if (!cheb || !power || degree < 0 || degree > CDL_APPROX_MAX_DEGREE || !(a < b))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "power_to_chebyshev: need degree 0..%d and a < b",
                        CDL_APPROX_MAX_DEGREE);
    long double c[CDL_APPROX_NMAX], p[CDL_APPROX_NMAX];
    for (int k = 0; k <= degree; k++)
        p[k] = power[k];
    cdl_power_to_cheb_ld(p, degree, a, b, c);
    for (int k = 0; k <= degree; k++)
        cheb[k] = (double)c[k];
    return CDL_OK;
}
