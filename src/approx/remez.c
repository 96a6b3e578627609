/*
 * remez.c: minimax (best uniform) polynomial approximation by the Remez
 * exchange algorithm (E. Remez 1934; see Trefethen, "Approximation Theory and
 * Approximation Practice", ch. 10, and Pachon & Trefethen, "Barycentric-Remez
 * algorithms for best polynomial approximation in the chebfun system", 2009).
 *
 * Chebyshev's alternation theorem: p* of degree d is the best approximation
 * of f on [a, b] iff f - p* reaches its maximum modulus with alternating signs
 * at d+2 points. The algorithm keeps a reference of d+2 points, solves
 *     sum_k c_k T_k(r_i) + (-1)^i E = f(r_i),  i = 0..d+1
 * for the Chebyshev coefficients c and the levelled error E, then moves the
 * reference to the extrema of the new error curve (multi-point exchange: one
 * extremum per run of constant sign, then trimmed from the ends to d+2 points
 * keeping the global maximum). It stops when the relative spread
 * (max|e(r_i)| - min|e(r_i)|) / max|e(r_i)| falls below the tolerance, which
 * bounds how far the result is from best: by de la Vallee Poussin,
 * min|e(r_i)| <= E* <= max|e|.
 *
 * Everything is in long double on t in [-1, 1]; the initial reference is the
 * Chebyshev extrema cos(pi i / (d+1)), the optimal reference of x^(d+1).
 * Extrema are found on a Chebyshev-distributed grid (plus the kinks of f,
 * where the error of ReLU has a cusp) and refined by golden-section search.
 */
#include <math.h>
#include <string.h>

#include "approx/approx_internal.h"
#include "core/error.h"
#include "core/memory.h"

#define CDL_PI_L 3.141592653589793238462643383279502884L

typedef struct remez_ctx {
    const cdl_approx_target *t;
    long double mid, half;
    const long double *c;
    int degree;
} remez_ctx;

static long double e_at(const remez_ctx *r, long double u)
{
    return r->t->f(r->mid + r->half * u, r->t->ctx) - cdl_cheb_clenshaw(r->c, r->degree, u);
}

/* Maximise s * e(u) on [lo, hi] (golden section; |e| is unimodal there by construction). */
static long double refine(const remez_ctx *r, long double lo, long double hi, long double s, long double *uout)
{
    const long double g = 0.6180339887498948482L;
    long double x1 = hi - g * (hi - lo), x2 = lo + g * (hi - lo);
    long double f1 = s * e_at(r, x1), f2 = s * e_at(r, x2);
    for (int it = 0; it < 90 && hi - lo > 1e-18L; it++) {
        if (f1 > f2) {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - g * (hi - lo);
            f1 = s * e_at(r, x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + g * (hi - lo);
            f2 = s * e_at(r, x2);
        }
    }
    *uout = f1 > f2 ? x1 : x2;
    return f1 > f2 ? f1 : f2;
}

cdl_status cdl_fit_remez(const cdl_approx_target *t, int degree, long double a, long double b, long double tol,
                         int max_iter, long double *c, cdl_remez_report *rep)
{
    int n = degree + 2;
    remez_ctx r = {t, 0.5L * (a + b), 0.5L * (b - a), c, degree};
    memset(rep, 0, sizeof *rep);

    /* Grid: Chebyshev-distributed points plus the kinks, sorted. */
    int ng = 400 * n;
    if (ng < 6000)
        ng = 6000;
    long double *grid = cdl_alloc_array((size_t)ng + 8, sizeof *grid);
    long double *eg = cdl_alloc_array((size_t)ng + 8, sizeof *eg);
    long double *ex = cdl_alloc_array((size_t)ng + 8, sizeof *ex); /* candidate extrema */
    long double *ev = cdl_alloc_array((size_t)ng + 8, sizeof *ev);
    long double *A = cdl_alloc_array((size_t)n * (size_t)n, sizeof *A);
    if (!grid || !eg || !ex || !ev || !A) {
        cdl_free(grid);
        cdl_free(eg);
        cdl_free(ex);
        cdl_free(ev);
        cdl_free(A);
        return CDL_ERR_NO_MEMORY;
    }
    int m = 0;
    for (int i = 0; i < ng; i++)
        grid[m++] = -cosl(CDL_PI_L * (long double)i / (long double)(ng - 1));
    for (int k = 0; k < t->n_kinks; k++) {
        long double u = (t->kinks[k] - r.mid) / r.half;
        if (u > -1.0L && u < 1.0L) {
            int j = m++;
            while (j > 0 && grid[j - 1] > u) {
                grid[j] = grid[j - 1];
                j--;
            }
            grid[j] = u;
        }
    }

    long double ref[CDL_APPROX_NMAX + 1], rhs[CDL_APPROX_NMAX + 1], z[CDL_APPROX_NMAX + 1];
    /* Chebyshev extrema, warped by u + eps (1 - u^2) (monotone, endpoints fixed)
     * to break the symmetry: for an odd or even f, a symmetric reference can
     * make the levelled error E vanish identically (the best approximation
     * then alternates at d+3 points and the d+2-point system is degenerate). */
    long double eps = 0.03L;
    for (int i = 0; i < n; i++) {
        long double u = -cosl(CDL_PI_L * (long double)i / (long double)(n - 1));
        ref[i] = u + eps * (1.0L - u * u);
    }

    cdl_status st = CDL_OK;
    int warps = 0;
    long double scale = 0.0L; /* size of f, to recognise an exact fit */
    for (int i = 0; i < m; i += 97)
        scale = fmaxl(scale, fabsl(t->f(r.mid + r.half * grid[i], t->ctx)));
    if (scale == 0.0L)
        scale = 1.0L;

    for (int iter = 1; iter <= max_iter; iter++) {
        /* 1. levelled-error system on the reference */
        for (int i = 0; i < n; i++) {
            long double u = ref[i], t0 = 1.0L, t1 = u;
            A[i * n + 0] = 1.0L;
            if (degree >= 1)
                A[i * n + 1] = u;
            for (int k = 2; k <= degree; k++) {
                long double t2 = 2.0L * u * t1 - t0;
                A[i * n + k] = t2;
                t0 = t1;
                t1 = t2;
            }
            A[i * n + degree + 1] = (i % 2 == 0) ? 1.0L : -1.0L;
            rhs[i] = t->f(r.mid + r.half * u, t->ctx);
        }
        CDL_TRY_GOTO(st, cdl_solve_dense(A, rhs, n, z), done);
        for (int k = 0; k <= degree; k++)
            c[k] = z[k];
        rep->level = fabsl(z[degree + 1]);
        rep->iterations = iter;

        /* 2. extrema of the error: one per run of constant sign */
        for (int i = 0; i < m; i++)
            eg[i] = e_at(&r, grid[i]);
        int ne = 0;
        int i = 0;
        while (i < m) {
            long double s = eg[i] >= 0 ? 1.0L : -1.0L;
            int best = i, j = i;
            while (j < m && (eg[j] >= 0) == (s > 0)) {
                if (s * eg[j] > s * eg[best])
                    best = j;
                j++;
            }
            long double lo = grid[best > 0 ? best - 1 : 0], hi = grid[best + 1 < m ? best + 1 : m - 1];
            long double u, v = refine(&r, lo, hi, s, &u);
            if (v < s * eg[best]) {
                u = grid[best];
                v = s * eg[best];
            }
            ex[ne] = u;
            ev[ne] = s * v;
            ne++;
            i = j;
        }
        long double gmax = 0.0L;
        for (int k = 0; k < ne; k++)
            gmax = fmaxl(gmax, fabsl(ev[k]));
        rep->max_error = gmax;
        if (gmax <= 64.0L * 1e-19L * scale) { /* f is (numerically) a polynomial of degree <= d */
            rep->spread = 0.0L;
            rep->converged = 1;
            goto done;
        }
        if (ne < n) {
            /* Fewer than d+2 alternations: the reference was degenerate (E = 0
             * by symmetry, or the error is at rounding level in places). Warp
             * the reference once more and retry; give up after a few tries
             * without pretending convergence. */
            rep->spread = 1.0L;
            rep->converged = 0;
            if (++warps > 4)
                break;
            eps = -1.7L * eps;
            for (int k = 0; k < n; k++)
                ref[k] = ref[k] + eps * (1.0L - ref[k] * ref[k]);
            continue;
        }
        /* 3. trim to n points from the ends, never dropping the global maximum */
        int first = 0, last = ne - 1;
        while (last - first + 1 > n) {
            if (fabsl(ev[first]) < fabsl(ev[last]))
                first++;
            else
                last--;
        }
        long double emin = INFINITY;
        for (int k = 0; k < n; k++) {
            ref[k] = ex[first + k];
            emin = fminl(emin, fabsl(ev[first + k]));
        }
        /* the spread is measured against the global maximum: an extremum left
         * outside the reference also counts */
        rep->spread = (gmax - emin) / gmax;
        if (rep->spread < tol) {
            rep->converged = 1; /* c is the polynomial whose error curve was measured */
            break;
        }
    }
done:
    cdl_free(grid);
    cdl_free(eg);
    cdl_free(ex);
    cdl_free(ev);
    cdl_free(A);
    return st;
}
