/*
 * numerics.c: the linear algebra and quadrature under the approximation
 * methods, in long double:
 *   - Gauss-Legendre rules (Newton on the Legendre recurrence, Golub-Welsch
 *     would do too) and composite rules split at kinks, so that integrals of
 *     ReLU-like functions converge at the smooth rate on each piece;
 *   - Clenshaw's recurrence for Chebyshev series;
 *   - weighted least squares in the Chebyshev basis by Householder QR
 *     (Golub & Van Loan, "Matrix Computations", 5.3): the Chebyshev basis on
 *     the interval keeps the matrix well conditioned, unlike the power basis
 *     whose Gram (Hilbert-like) matrix is hopeless beyond degree ~10;
 *   - a small dense solver (partial pivoting) for the Remez systems;
 *   - conversions between Chebyshev coefficients on [a, b] and power
 *     coefficients in x.
 */
#include <math.h>
#include <string.h>

#include "approx/approx_internal.h"
#include "core/error.h"
#include "core/memory.h"

#define CDL_PI_L 3.141592653589793238462643383279502884L

void cdl_gauss_legendre(int n, long double *nodes, long double *weights)
{
    for (int i = 0; i < (n + 1) / 2; i++) {
        long double z = cosl(CDL_PI_L * ((long double)i + 0.75L) / ((long double)n + 0.5L));
        long double dp = 1.0L;
        for (int it = 0; it < 100; it++) {
            long double p0 = 1.0L, p1 = z;
            for (int k = 2; k <= n; k++) {
                long double p2 = ((2.0L * k - 1.0L) * z * p1 - (k - 1.0L) * p0) / (long double)k;
                p0 = p1;
                p1 = p2;
            }
            /* p1 = P_n(z), p0 = P_{n-1}(z) */
            dp = (long double)n * (z * p1 - p0) / (z * z - 1.0L);
            long double dz = p1 / dp;
            z -= dz;
            if (fabsl(dz) < 1e-19L)
                break;
        }
        {
            long double p0 = 1.0L, p1 = z;
            for (int k = 2; k <= n; k++) {
                long double p2 = ((2.0L * k - 1.0L) * z * p1 - (k - 1.0L) * p0) / (long double)k;
                p0 = p1;
                p1 = p2;
            }
            dp = (long double)n * (z * p1 - p0) / (z * z - 1.0L);
        }
        long double w = 2.0L / ((1.0L - z * z) * dp * dp);
        nodes[i] = -z;
        nodes[n - 1 - i] = z;
        weights[i] = w;
        weights[n - 1 - i] = w;
    }
    if (n % 2 == 1)
        nodes[n / 2] = 0.0L;
}

#define CDL_QUAD_ORDER 24

size_t cdl_quad_composite(long double lo, long double hi, const long double *kinks, int n_kinks, int panels,
                          long double *x, long double *w, size_t capacity)
{
    long double gx[CDL_QUAD_ORDER], gw[CDL_QUAD_ORDER];
    cdl_gauss_legendre(CDL_QUAD_ORDER, gx, gw);
    long double cuts[8];
    int nc = 0;
    cuts[nc++] = lo;
    for (int i = 0; i < n_kinks && i < 4; i++)
        if (kinks[i] > lo && kinks[i] < hi)
            cuts[nc++] = kinks[i];
    cuts[nc++] = hi;
    /* sort the interior cuts (at most 4: insertion sort) */
    for (int i = 1; i < nc; i++)
        for (int j = i; j > 0 && cuts[j] < cuts[j - 1]; j--) {
            long double tmp = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = tmp;
        }
    size_t count = 0;
    for (int piece = 0; piece + 1 < nc; piece++) {
        long double plo = cuts[piece], phi = cuts[piece + 1];
        if (!(phi > plo))
            continue;
        long double h = (phi - plo) / (long double)panels;
        for (int p = 0; p < panels; p++) {
            long double c = plo + h * ((long double)p + 0.5L);
            for (int q = 0; q < CDL_QUAD_ORDER; q++) {
                if (x && count < capacity) {
                    x[count] = c + 0.5L * h * gx[q];
                    w[count] = 0.5L * h * gw[q];
                }
                count++;
            }
        }
    }
    return count;
}

long double cdl_cheb_clenshaw(const long double *c, int degree, long double t)
{
    long double b1 = 0.0L, b2 = 0.0L;
    for (int k = degree; k >= 1; k--) {
        long double b0 = 2.0L * t * b1 - b2 + c[k];
        b2 = b1;
        b1 = b0;
    }
    return t * b1 - b2 + c[0];
}

cdl_status cdl_ls_chebyshev(const long double *x, const long double *w, const long double *y, size_t m, int degree,
                            long double mid, long double half, long double *c)
{
    int n = degree + 1;
    if (degree < 0 || degree > CDL_APPROX_MAX_DEGREE || m < (size_t)n)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "least squares: %zu samples cannot determine degree %d", m, degree);
    long double *A = cdl_alloc_array(m * (size_t)n, sizeof *A);
    long double *r = cdl_alloc_array(m, sizeof *r);
    if (!A || !r) {
        cdl_free(A);
        cdl_free(r);
        return CDL_ERR_NO_MEMORY;
    }
    /* Column-major A (column k = sqrt(w) T_k(t)), so Householder touches contiguous memory. */
    for (size_t i = 0; i < m; i++) {
        long double sw = sqrtl(w[i]);
        long double t = (x[i] - mid) / half;
        long double t0 = 1.0L, t1 = t;
        A[i] = sw;
        if (n > 1)
            A[m + i] = sw * t;
        for (int k = 2; k < n; k++) {
            long double t2 = 2.0L * t * t1 - t0;
            A[(size_t)k * m + i] = sw * t2;
            t0 = t1;
            t1 = t2;
        }
        r[i] = sw * y[i];
    }
    long double diag[CDL_APPROX_NMAX];
    for (int k = 0; k < n; k++) {
        long double *col = A + (size_t)k * m;
        long double norm = 0.0L;
        for (size_t i = (size_t)k; i < m; i++)
            norm += col[i] * col[i];
        norm = sqrtl(norm);
        if (norm == 0.0L) {
            cdl_free(A);
            cdl_free(r);
            return cdl_fail(CDL_ERR_INTERNAL, "least squares: rank-deficient system at column %d", k);
        }
        long double alpha = col[k] > 0 ? -norm : norm;
        /* v = col[k..] - alpha e_k, stored in place */
        col[k] -= alpha;
        long double vnorm2 = 0.0L;
        for (size_t i = (size_t)k; i < m; i++)
            vnorm2 += col[i] * col[i];
        diag[k] = alpha;
        if (vnorm2 == 0.0L)
            continue;
        for (int j = k + 1; j < n; j++) {
            long double *cj = A + (size_t)j * m;
            long double s = 0.0L;
            for (size_t i = (size_t)k; i < m; i++)
                s += col[i] * cj[i];
            s = 2.0L * s / vnorm2;
            for (size_t i = (size_t)k; i < m; i++)
                cj[i] -= s * col[i];
        }
        long double s = 0.0L;
        for (size_t i = (size_t)k; i < m; i++)
            s += col[i] * r[i];
        s = 2.0L * s / vnorm2;
        for (size_t i = (size_t)k; i < m; i++)
            r[i] -= s * col[i];
    }
    /* Back substitution with R: diag on the diagonal, A[j*m + k] above it. */
    for (int k = n - 1; k >= 0; k--) {
        long double s = r[k];
        for (int j = k + 1; j < n; j++)
            s -= A[(size_t)j * m + (size_t)k] * c[j];
        c[k] = s / diag[k];
    }
    cdl_free(A);
    cdl_free(r);
    return CDL_OK;
}

cdl_status cdl_solve_dense(long double *A, long double *r, int n, long double *z)
{
    for (int k = 0; k < n; k++) {
        int piv = k;
        for (int i = k + 1; i < n; i++)
            if (fabsl(A[i * n + k]) > fabsl(A[piv * n + k]))
                piv = i;
        if (A[piv * n + k] == 0.0L)
            return cdl_fail(CDL_ERR_INTERNAL, "singular linear system (column %d): the reference points collapsed", k);
        if (piv != k) {
            for (int j = 0; j < n; j++) {
                long double tmp = A[k * n + j];
                A[k * n + j] = A[piv * n + j];
                A[piv * n + j] = tmp;
            }
            long double tmp = r[k];
            r[k] = r[piv];
            r[piv] = tmp;
        }
        for (int i = k + 1; i < n; i++) {
            long double f = A[i * n + k] / A[k * n + k];
            if (f == 0.0L)
                continue;
            for (int j = k; j < n; j++)
                A[i * n + j] -= f * A[k * n + j];
            r[i] -= f * r[k];
        }
    }
    for (int k = n - 1; k >= 0; k--) {
        long double s = r[k];
        for (int j = k + 1; j < n; j++)
            s -= A[k * n + j] * z[j];
        z[k] = s / A[k * n + k];
    }
    return CDL_OK;
}

void cdl_cheb_to_power_ld(const long double *c, int degree, long double a, long double b, long double *p)
{
    /* 1. sum c_k T_k(t) as a polynomial in t, with T_k's power coefficients by recurrence. */
    long double q[CDL_APPROX_NMAX] = {0}, t0[CDL_APPROX_NMAX] = {0}, t1[CDL_APPROX_NMAX] = {0},
                t2[CDL_APPROX_NMAX];
    t0[0] = 1.0L;
    q[0] = c[0];
    if (degree >= 1) {
        t1[1] = 1.0L;
        q[1] += c[1];
    }
    for (int k = 2; k <= degree; k++) {
        for (int j = 0; j <= k; j++)
            t2[j] = (j > 0 ? 2.0L * t1[j - 1] : 0.0L) - t0[j];
        for (int j = 0; j <= k; j++) {
            q[j] += c[k] * t2[j];
            t0[j] = t1[j];
            t1[j] = t2[j];
        }
    }
    /* 2. substitute t = alpha x + beta (Horner on polynomials). */
    long double alpha = 2.0L / (b - a), beta = -(a + b) / (b - a);
    long double r[CDL_APPROX_NMAX] = {0};
    r[0] = q[degree];
    for (int j = degree - 1; j >= 0; j--) {
        /* r <- r * (alpha x + beta) + q_j */
        for (int i = degree - j; i >= 1; i--)
            r[i] = r[i] * beta + r[i - 1] * alpha;
        r[0] = r[0] * beta + q[j];
    }
    for (int i = 0; i <= degree; i++)
        p[i] = r[i];
}

void cdl_power_to_cheb_ld(const long double *p, int degree, long double a, long double b, long double *c)
{
    /* x = mid + half t; Horner in the Chebyshev basis: s <- s * x + p_j, where
     * t T_0 = T_1 and t T_k = (T_{k-1} + T_{k+1}) / 2. */
    long double mid = 0.5L * (a + b), half = 0.5L * (b - a);
    long double s[CDL_APPROX_NMAX + 1] = {0}, u[CDL_APPROX_NMAX + 1];
    s[0] = p[degree];
    for (int j = degree - 1; j >= 0; j--) {
        int len = degree - j; /* current degree of s is len-1; after multiply: len */
        for (int k = 0; k <= len; k++)
            u[k] = 0.0L;
        for (int k = 0; k < len; k++) {
            long double v = s[k] * half;
            if (k == 0) {
                u[1] += v;
            } else {
                u[k - 1] += 0.5L * v;
                u[k + 1] += 0.5L * v;
            }
        }
        for (int k = 0; k < len; k++)
            u[k] += mid * s[k];
        u[0] += p[j];
        for (int k = 0; k <= len; k++)
            s[k] = u[k];
    }
    for (int k = 0; k <= degree; k++)
        c[k] = s[k];
}
