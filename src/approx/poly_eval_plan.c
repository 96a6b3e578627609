/*
 * poly_eval_plan.c: the schedule for evaluating a polynomial on a CKKS
 * ciphertext at the minimal multiplicative depth ceil(log2(d+1)), with few
 * ciphertext-ciphertext multiplications. Pure functions: the same schedule
 * drives the dry run (cdl_poly_eval_plan_compute: what it will cost, before
 * anything runs) and the real evaluation (poly_eval.c), so the prediction
 * and the run cannot disagree.
 *
 * The scheme is a depth-aware baby-step giant-step in the power basis (after
 * Paterson & Stockmeyer 1973 and Bossuat et al., EUROCRYPT 2021, section 5):
 *
 *   node(p, budget b): p = sum_{i<=n} c_i x^i must come out exactly b levels
 *                      below the level where x sits.
 *   - leaf: if every x^i with c_i != 0 is an available power whose depth
 *     ceil(log2 i) is <= b - 1, p is one linear combination: each x^i is
 *     dropped to the level just above the target, multiplied by its constant
 *     (scaled so that the product has exactly target_scale * q), summed,
 *     rescaled once, and c_0 added.
 *   - split at an available m (x^m of depth <= b - 1): p = q(x) x^m + r(x),
 *     q of degree n - m (budget b - 1), r of degree < m (budget b), one
 *     ciphertext multiplication q * x^m (a constant q is a scalar term).
 *
 * Depth: splitting at m = 2^floor(log2 n) always fits the budget
 * b = ceil(log2(n+1)) (for 2^k <= n < 2^(k+1): q needs <= k = b - 1, x^m has
 * depth k, r needs <= k), and a degree-1 leaf needs 1; so every polynomial of
 * degree d runs in exactly ceil(log2(d+1)) levels, the minimum for degree d.
 * Among the options that fit, each node takes the cheapest (counting the
 * powers it would newly need), by exhaustive search: degrees are <= 31.
 *
 * Available powers: x^(2^j) for 2^j <= d (repeated squaring, depth j), and the
 * baby steps x^i for 2 < i < g, g a power of two, each computed once as
 * x^(2^floor(log2 i)) * x^(i - 2^floor(log2 i)) (depth ceil(log2 i)). The
 * planner tries g = 2, 4, 8, 16, 32 and keeps the cheapest (ties: smaller g).
 */
#include <math.h>
#include <string.h>

#include "approx/poly_eval_internal.h"
#include "core/error.h"

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

/* Mark x^i and what it is built from; returns the number of newly marked powers. */
static int mark_power(unsigned char *used, int i)
{
    if (i <= 1 || used[i])
        return 0;
    used[i] = 1;
    int hi = cdl_pe_floor_pow2(i);
    if (hi == i)
        return 1 + mark_power(used, i / 2);
    return 1 + mark_power(used, hi) + mark_power(used, i - hi);
}

static int leaf_fits(const cdl_pe_schedule *s, const double *c, int n, int budget)
{
    for (int i = 1; i <= n; i++)
        if (c[i] != 0.0 && (!available(s, i) || cdl_pe_ceil_log2(i) + 1 > budget))
            return 0;
    return 1;
}

/*
 * Cost (ciphertext multiplications: split products + newly needed powers) of
 * the cheapest way to produce slice c[0..n] with the budget, updating `used`.
 * With build != 0 the chosen nodes are appended to s->nodes and the index of
 * the subtree root is stored in *node. Returns -1 if nothing fits.
 */
static int solve(cdl_pe_schedule *s, const double *c, int lo, int n, int budget, unsigned char *used, int build,
                 int *node)
{
    n = trim(c + lo, n);
    if (n == 0) {
        if (build) {
            if (s->n_nodes >= CDL_PE_MAX_NODES)
                return -1;
            cdl_pe_node *nd = &s->nodes[s->n_nodes];
            memset(nd, 0, sizeof *nd);
            nd->kind = CDL_PE_CONST;
            nd->lo = lo;
            nd->q = nd->r = -1;
            nd->budget = budget;
            *node = s->n_nodes++;
        }
        return 0;
    }
    if (budget < cdl_pe_ceil_log2(n + 1))
        return -1;
    /* candidates: leaf (kind 0), or split at m (kind m >= 2) */
    int best_cost = -1, best_choice = 0;
    unsigned char best_used[CDL_PE_MAX_POWER + 1];
    unsigned char trial[CDL_PE_MAX_POWER + 1];
    if (leaf_fits(s, c + lo, n, budget)) {
        memcpy(trial, used, sizeof trial);
        int cost = 0;
        for (int i = 1; i <= n; i++)
            if (c[lo + i] != 0.0)
                cost += mark_power(trial, i);
        best_cost = cost;
        best_choice = 0;
        memcpy(best_used, trial, sizeof trial);
    }
    for (int m = 2; m <= n; m++) {
        if (!available(s, m) || cdl_pe_ceil_log2(m) > budget - 1)
            continue;
        int nq = trim(c + lo + m, n - m);
        if (cdl_pe_ceil_log2(nq + 1) > budget - 1 || cdl_pe_ceil_log2(m) > budget)
            continue;
        memcpy(trial, used, sizeof trial);
        int cost = mark_power(trial, m), dummy;
        if (nq > 0) {
            int cq = solve(s, c, lo + m, n - m, budget - 1, trial, 0, &dummy);
            if (cq < 0)
                continue;
            cost += 1 + cq;
        }
        int cr = solve(s, c, lo, m - 1, budget, trial, 0, &dummy);
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
    /* build the chosen option (re-solving the children deterministically) */
    if (s->n_nodes >= CDL_PE_MAX_NODES)
        return -1;
    int me = s->n_nodes++;
    cdl_pe_node nd = {CDL_PE_LEAF, lo, n, budget, 0, -1, -1};
    if (best_choice == 0) {
        for (int i = 1; i <= n; i++)
            if (c[lo + i] != 0.0) {
                mark_power(used, i);
                s->const_mults++;
            }
        s->rescales++;
    } else {
        int m = best_choice;
        nd.kind = CDL_PE_SPLIT;
        nd.m = m;
        mark_power(used, m);
        int nq = trim(c + lo + m, n - m);
        if (nq > 0) {
            if (solve(s, c, lo + m, n - m, budget - 1, used, 1, &nd.q) < 0)
                return -1;
            s->split_mults++;
        } else {
            s->const_mults++; /* scalar term c_m x^m */
        }
        s->rescales++;
        if (solve(s, c, lo, m - 1, budget, used, 1, &nd.r) < 0)
            return -1;
    }
    s->nodes[me] = nd;
    *node = me;
    return best_cost;
}

cdl_status cdl_pe_schedule_make(const double *coeffs, int degree, int baby, cdl_pe_schedule *s)
{
    memset(s, 0, sizeof *s);
    int n = trim(coeffs, degree);
    s->degree = n;
    s->baby = baby;
    s->top_pow2 = cdl_pe_floor_pow2(n > 0 ? n : 1);
    s->depth = cdl_pe_ceil_log2(n + 1);
    if (solve(s, coeffs, 0, n, s->depth, s->used, 1, &s->root) < 0)
        return cdl_fail(CDL_ERR_INTERNAL, "polynomial schedule: no split fits the depth budget (degree %d)", n);
    for (int i = 2; i <= CDL_PE_MAX_POWER; i++)
        if (s->used[i])
            s->power_mults++;
    s->ct_mults = s->power_mults + s->split_mults;
    s->rescales += s->power_mults;
    return CDL_OK;
}

cdl_status cdl_pe_schedule_best(const double *coeffs, int degree, cdl_pe_schedule *best)
{
    static _Thread_local cdl_pe_schedule s;
    int have = 0;
    for (int g = 2; g <= 32; g *= 2) {
        CDL_TRY(cdl_pe_schedule_make(coeffs, degree, g, &s));
        if (!have || s.ct_mults < best->ct_mults) {
            *best = s;
            have = 1;
        }
    }
    return CDL_OK;
}

cdl_status cdl_poly_eval_plan_compute(const double *coeffs, int degree, cdl_poly_eval_plan *plan)
{
    if (!plan || degree < 0 || degree > CDL_APPROX_MAX_DEGREE)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "poly eval plan: degree must be in 0..%d", CDL_APPROX_MAX_DEGREE);
    double ones[CDL_APPROX_MAX_DEGREE + 1];
    if (!coeffs) {
        for (int i = 0; i <= degree; i++)
            ones[i] = 1.0;
        coeffs = ones;
    }
    for (int i = 0; i <= degree; i++)
        if (!isfinite(coeffs[i]))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "poly eval plan: coefficient %d is not finite", i);
    static _Thread_local cdl_pe_schedule s;
    CDL_TRY(cdl_pe_schedule_best(coeffs, degree, &s));
    memset(plan, 0, sizeof *plan);
    plan->degree = s.degree;
    plan->depth = s.depth;
    plan->baby_step = s.baby;
    plan->ct_mults = s.ct_mults;
    plan->power_mults = s.power_mults;
    plan->const_mults = s.const_mults;
    plan->rescales = s.rescales;
    return CDL_OK;
}
