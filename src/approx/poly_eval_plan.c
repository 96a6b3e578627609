/*
 * poly_eval_plan.c: the schedule for evaluating a polynomial on a CKKS
 * ciphertext at the minimal multiplicative depth ceil(log2(d+1)), with few
 * ciphertext-ciphertext multiplications. Pure functions: the same schedule
 * drives the dry run (cdl_poly_eval_plan_*: what it will cost, before
 * anything runs) and the real evaluation (poly_eval.c), so the prediction
 * and the run cannot disagree.
 *
 * The scheme is a depth-aware baby-step giant-step (after Paterson &
 * Stockmeyer 1973, and Bossuat et al., EUROCRYPT 2021, section 5, for the
 * Chebyshev basis), in the power basis t^i or the Chebyshev basis T_i(t):
 *
 *   node(p, budget b): p = sum_{i<=n} c_i B_i must come out exactly b levels
 *                      below the level where t sits.
 *   - leaf: if every B_i with c_i != 0 is available with depth
 *     ceil(log2 i) <= b - 1, p is one linear combination: each B_i dropped to
 *     the level just above the target, multiplied by its constant (scaled so
 *     that the product has exactly target_scale * q), summed, rescaled once,
 *     and c_0 added.
 *   - split at an available m (B_m of depth <= b - 1): p = q B_m + r, q of
 *     degree n - m (budget b - 1), r of degree < m (budget b), one ciphertext
 *     multiplication (a constant q is a scalar term instead). Power basis:
 *     q = c[m..n], r = c[0..m-1]. Chebyshev basis (needs 2m > n): from
 *     T_(m+j) = 2 T_m T_j - T_(m-j): q_0 = c_m, q_j = 2 c_(m+j),
 *     r_i = c_i - c_(2m-i) for 2m - n <= i < m.
 *
 * Depth: splitting at m = 2^floor(log2 n) always fits the budget
 * b = ceil(log2(n+1)) (for 2^k <= n < 2^(k+1): q needs <= k = b - 1, B_m has
 * depth k, r needs <= k), and a degree-1 leaf needs 1; so every polynomial of
 * degree d runs in exactly ceil(log2(d+1)) levels, the minimum for degree d.
 * Among the options that fit, each node takes the one needing the fewest new
 * ciphertext multiplications (exhaustive search; degrees are <= 31).
 *
 * Available B_i: B_(2^j) for 2^j <= d (squaring; T_2k = 2 T_k^2 - 1), and the
 * baby steps B_i for 2 < i < g (g a power of two), each computed once from
 * B_a B_b, a = 2^floor(log2 i), b = i - a (T_i = 2 T_a T_b - T_(a-b)), depth
 * ceil(log2 i). The planner tries g = 2, 4, 8, 16, 32 and keeps the cheapest
 * (ties: the smaller g).
 */
#include <math.h>
#include <string.h>

#include "approx/poly_eval_internal.h"
#include "core/error.h"
#include "core/memory.h"

#define NC (CDL_APPROX_MAX_DEGREE + 1)

int cdl_pe_ceil_log2(int i)
{
    int k = 0;
    while ((1 << k) < i)
        k++;
    return k;
}

int cdl_pe_floor_pow2(int n)
{
    int m = 1;
    while (2 * m <= n)
        m *= 2;
    return m;
}

void cdl_pe_factors(int i, int *a, int *b)
{
    int hi = cdl_pe_floor_pow2(i);
    if (hi == i) {
        *a = *b = i / 2;
    } else {
        *a = hi;
        *b = i - hi;
    }
}

static int available(const cdl_pe_schedule *s, int i)
{
    if (i == 1)
        return 1;
    if ((i & (i - 1)) == 0)
        return i <= s->top_pow2;
    return i < s->baby;
}

static int trim(const double *c, int n)
{
    while (n > 0 && c[n] == 0.0)
        n--;
    return n;
}

/* Mark B_i and what it is built from; returns the number of newly marked ones. */
static int mark(const cdl_pe_schedule *s, unsigned char *used, int i)
{
    if (i <= 1 || used[i])
        return 0;
    used[i] = 1;
    int a, b;
    cdl_pe_factors(i, &a, &b);
    int k = 1 + mark(s, used, a) + mark(s, used, b);
    if (s->chebyshev && a != b)
        k += mark(s, used, a - b);
    return k;
}

static int leaf_fits(const cdl_pe_schedule *s, const double *c, int n, int budget)
{
    for (int i = 1; i <= n; i++)
        if (c[i] != 0.0 && (!available(s, i) || cdl_pe_ceil_log2(i) + 1 > budget))
            return 0;
    return 1;
}

/* Split c (degree n) at m into q (degree n - m) and r (degree m - 1). */
static void split(const cdl_pe_schedule *s, const double *c, int n, int m, double *q, double *r)
{
    memset(q, 0, NC * sizeof *q);
    memset(r, 0, NC * sizeof *r);
    for (int i = 0; i < m; i++)
        r[i] = c[i];
    if (!s->chebyshev) {
        for (int j = 0; j <= n - m; j++)
            q[j] = c[m + j];
        return;
    }
    q[0] = c[m];
    for (int j = 1; j <= n - m; j++) {
        q[j] = 2.0 * c[m + j];
        r[m - j] -= c[m + j];
    }
}

/*
 * Cost (new ciphertext multiplications: split products + newly needed B_i) of
 * the cheapest way to produce c (degree n) with the budget, updating `used`.
 * With build != 0 the chosen nodes are appended to s->nodes and the index of
 * the subtree root is stored in *node. Returns -1 if nothing fits.
 */
static int solve(cdl_pe_schedule *s, const double *cin, int n, int budget, unsigned char *used, int build, int *node)
{
    double c[NC];
    memset(c, 0, sizeof c);
    memcpy(c, cin, (size_t)(n + 1) * sizeof c[0]);
    n = trim(c, n);
    if (n == 0) {
        if (build) {
            if (s->n_nodes >= CDL_PE_MAX_NODES)
                return -1;
            cdl_pe_node *nd = &s->nodes[s->n_nodes];
            memset(nd, 0, sizeof *nd);
            nd->kind = CDL_PE_CONST;
            nd->q = nd->r = -1;
            nd->budget = budget;
            nd->c[0] = c[0];
            *node = s->n_nodes++;
        }
        return 0;
    }
    if (budget < cdl_pe_ceil_log2(n + 1))
        return -1;
    int best_cost = -1, best_choice = 0;
    unsigned char best_used[CDL_PE_MAX_POWER + 1], trial[CDL_PE_MAX_POWER + 1];
    double q[NC], r[NC];
    if (leaf_fits(s, c, n, budget)) {
        memcpy(trial, used, sizeof trial);
        int cost = 0;
        for (int i = 1; i <= n; i++)
            if (c[i] != 0.0)
                cost += mark(s, trial, i);
        best_cost = cost;
        memcpy(best_used, trial, sizeof trial);
    }
    for (int m = 2; m <= n; m++) {
        if (!available(s, m) || cdl_pe_ceil_log2(m) > budget - 1 || (s->chebyshev && 2 * m <= n))
            continue;
        split(s, c, n, m, q, r);
        int nq = trim(q, n - m);
        if (cdl_pe_ceil_log2(nq + 1) > budget - 1)
            continue;
        memcpy(trial, used, sizeof trial);
        int cost = mark(s, trial, m), dummy;
        if (nq > 0) {
            int cq = solve(s, q, n - m, budget - 1, trial, 0, &dummy);
            if (cq < 0)
                continue;
            cost += 1 + cq;
        }
        int cr = solve(s, r, m - 1, budget, trial, 0, &dummy);
        if (cr < 0)
            continue;
        cost += cr;
        if (best_cost < 0 || cost < best_cost) {
            best_cost = cost;
            best_choice = m;
            memcpy(best_used, trial, sizeof trial);
        }
    }
    if (best_cost < 0)
        return -1;
    if (!build) {
        memcpy(used, best_used, sizeof best_used);
        return best_cost;
    }
    /* build the chosen option (re-solving the children deterministically, in
     * the same order as when it was costed) */
    if (s->n_nodes >= CDL_PE_MAX_NODES)
        return -1;
    int me = s->n_nodes++;
    cdl_pe_node nd;
    memset(&nd, 0, sizeof nd);
    nd.kind = CDL_PE_LEAF;
    nd.n = n;
    nd.budget = budget;
    nd.q = nd.r = -1;
    memcpy(nd.c, c, sizeof c);
    if (best_choice == 0) {
        for (int i = 1; i <= n; i++)
            if (c[i] != 0.0) {
                mark(s, used, i);
                s->const_mults++;
            }
        s->rescales++;
    } else {
        int m = best_choice;
        nd.kind = CDL_PE_SPLIT;
        nd.m = m;
        mark(s, used, m);
        split(s, c, n, m, q, r);
        int nq = trim(q, n - m);
        if (nq > 0) {
            if (solve(s, q, n - m, budget - 1, used, 1, &nd.q) < 0)
                return -1;
            s->split_mults++;
        } else {
            nd.qconst = q[0];
            s->const_mults++; /* scalar term q_0 B_m */
        }
        s->rescales++;
        if (solve(s, r, m - 1, budget, used, 1, &nd.r) < 0)
            return -1;
    }
    s->nodes[me] = nd;
    *node = me;
    return best_cost;
}

cdl_status cdl_pe_schedule_make(const double *coeffs, int degree, int chebyshev, int baby, cdl_pe_schedule *s)
{
    memset(s, 0, sizeof *s);
    if (degree < 0 || degree > CDL_APPROX_MAX_DEGREE)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "polynomial schedule: degree %d outside 0..%d", degree,
                        CDL_APPROX_MAX_DEGREE);
    int n = trim(coeffs, degree);
    s->chebyshev = chebyshev;
    s->degree = n;
    s->baby = baby;
    s->top_pow2 = cdl_pe_floor_pow2(n > 0 ? n : 1);
    s->depth = cdl_pe_ceil_log2(n + 1);
    if (solve(s, coeffs, n, s->depth, s->used, 1, &s->root) < 0)
        return cdl_fail(CDL_ERR_INTERNAL, "polynomial schedule: no split fits the depth budget (degree %d)", n);
    for (int i = 2; i <= CDL_PE_MAX_POWER; i++)
        if (s->used[i]) {
            s->power_mults++;
            int a, b;
            cdl_pe_factors(i, &a, &b);
            if (s->chebyshev && a != b)
                s->const_mults++; /* T_(a-b) brought to the product's scale */
        }
    s->ct_mults = s->power_mults + s->split_mults;
    s->rescales += s->power_mults;
    return CDL_OK;
}

cdl_status cdl_pe_schedule_best(const double *coeffs, int degree, int chebyshev, cdl_pe_schedule *best)
{
    cdl_pe_schedule *s = cdl_alloc_array(1, sizeof *s);
    if (!s)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = CDL_OK;
    int have = 0;
    for (int g = 2; g <= 32; g *= 2) {
        CDL_TRY_GOTO(st, cdl_pe_schedule_make(coeffs, degree, chebyshev, g, s), done);
        if (!have || s->ct_mults < best->ct_mults) {
            *best = *s;
            have = 1;
        }
    }
done:
    cdl_free(s);
    return st;
}

static cdl_status plan_in(const double *coeffs, int degree, int chebyshev, cdl_poly_eval_plan *plan)
{
    if (!plan || degree < 0 || degree > CDL_APPROX_MAX_DEGREE)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "poly eval plan: degree must be in 0..%d", CDL_APPROX_MAX_DEGREE);
    double generic[NC];
    if (!coeffs) {
        /* generic non-zero coefficients: no two combine to zero in a
         * Chebyshev split (c_i - c_(2m-i) != 0), unlike all-ones */
        for (int i = 0; i <= degree; i++)
            generic[i] = 1.0 + 0.4142135623730951 * i * i;
        coeffs = generic;
    }
    for (int i = 0; i <= degree; i++)
        if (!isfinite(coeffs[i]))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "poly eval plan: coefficient %d is not finite", i);
    cdl_pe_schedule *s = cdl_alloc_array(1, sizeof *s);
    if (!s)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = cdl_pe_schedule_best(coeffs, degree, chebyshev, s);
    if (st == CDL_OK) {
        memset(plan, 0, sizeof *plan);
        plan->degree = s->degree;
        plan->depth = s->depth;
        plan->baby_step = s->baby;
        plan->ct_mults = s->ct_mults;
        plan->power_mults = s->power_mults;
        plan->const_mults = s->const_mults;
        plan->rescales = s->rescales;
    }
    cdl_free(s);
    return st;
}

cdl_status cdl_poly_eval_plan_compute(const double *coeffs, int degree, cdl_poly_eval_plan *plan)
{
    return plan_in(coeffs, degree, 0, plan);
}

cdl_status cdl_poly_eval_plan_chebyshev(const double *cheb, int degree, cdl_poly_eval_plan *plan)
{
    return plan_in(cheb, degree, 1, plan);
}
