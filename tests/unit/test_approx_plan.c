/*
 * test_approx_plan.c: the schedule for evaluating polynomials on ciphertexts,
 * checked in plaintext:
 *   - depth is ceil(log2(d+1)) for every degree 1..31, and every node of the
 *     schedule respects its level budget (re-derived here from the node tree);
 *   - interpreting the schedule on doubles (the same tree the ciphertext
 *     evaluator walks, with exact x^i or T_i(x) = cos(i acos x)) gives p(x)
 *     (Horner, or Clenshaw for the Chebyshev basis) for random coefficients,
 *     so the schedule really computes the polynomial, in both bases;
 *   - the multiplication count is between the information bound
 *     ceil(log2 d) and the count of plain binary splitting, and equals the
 *     hand-derived minimum for small degrees (d = 1: 0; 2: 1 (x^2); 3: 2 (x^2,
 *     (c3 x + c2) x^2); 4: 2 (x^2, (c4 x^2 + c3 x + c2) x^2));
 *   - zero coefficients are skipped (an even polynomial needs fewer).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "approx/poly_eval_internal.h"
#include "cryptodl/cryptodl.h"

static double horner(const double *c, int d, double x)
{
    double s = 0;
    for (int i = d; i >= 0; i--)
        s = s * x + c[i];
    return s;
}

/* Walk the schedule the way the evaluator does, on a double x; check budgets.
 * `level_of_power[i]` = depth of x^i as built: x^(2^j) by squaring (depth j),
 * others from their two factors. */
static int power_depth(int i)
{
    if (i <= 1)
        return 0;
    int hi = cdl_pe_floor_pow2(i);
    if (hi == i)
        return power_depth(i / 2) + 1;
    int a = power_depth(hi), b = power_depth(i - hi);
    return (a > b ? a : b) + 1;
}

/* B_i(x): x^i, or T_i(x) = cos(i acos x) on [-1, 1]. */
static double basis(int cheb, int i, double x) { return cheb ? cos(i * acos(x)) : pow(x, i); }

static double walk(const cdl_pe_schedule *s, int node, double x, int *ok)
{
    const cdl_pe_node *nd = &s->nodes[node];
    int cheb = s->chebyshev;
    switch (nd->kind) {
    case CDL_PE_CONST:
        return nd->c[0];
    case CDL_PE_LEAF: {
        double v = nd->c[0];
        for (int i = 1; i <= nd->n; i++) {
            if (nd->c[i] == 0.0)
                continue;
            if (i >= 2 && !s->used[i])
                *ok = 0; /* a basis polynomial the schedule did not compute */
            if (power_depth(i) + 1 > nd->budget)
                *ok = 0; /* the constant multiplication would not fit */
            v += nd->c[i] * basis(cheb, i, x);
        }
        return v;
    }
    default: {
        if (nd->m >= 2 && !s->used[nd->m])
            *ok = 0;
        if (power_depth(nd->m) + 1 > nd->budget)
            *ok = 0;
        double q;
        if (nd->q >= 0) {
            if (s->nodes[nd->q].budget != nd->budget - 1)
                *ok = 0;
            q = walk(s, nd->q, x, ok);
        } else {
            q = nd->qconst;
        }
        if (s->nodes[nd->r].budget != nd->budget)
            *ok = 0;
        return q * basis(cheb, nd->m, x) + walk(s, nd->r, x, ok);
    }
    }
}

/* sum c_i T_i(x) by Clenshaw, independently of the library */
static double clenshaw(const double *c, int d, double x)
{
    double b1 = 0, b2 = 0;
    for (int k = d; k >= 1; k--) {
        double b0 = 2 * x * b1 - b2 + c[k];
        b2 = b1;
        b1 = b0;
    }
    return x * b1 - b2 + c[0];
}

static uint64_t lcg = 12345;
static double rnd(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) / 9007199254740992.0 * 2 - 1;
}

static void test_depth_and_correctness(void **state)
{
    (void)state;
    static cdl_pe_schedule s;
    for (int cheb = 0; cheb <= 1; cheb++)
        for (int d = 1; d <= 31; d++) {
            double c[32];
            for (int i = 0; i <= d; i++)
                c[i] = rnd();
            assert_int_equal(cdl_pe_schedule_best(c, d, cheb, &s), CDL_OK);
            int want_depth = (int)ceil(log2(d + 1.0));
            assert_int_equal(s.depth, want_depth);
            assert_int_equal(s.nodes[s.root].budget, want_depth);
            for (int i = 2; i <= CDL_PE_MAX_POWER; i++)
                if (s.used[i]) {
                    assert_true(power_depth(i) <= want_depth - 1);
                    /* the Chebyshev recurrence T_i = 2 T_a T_b - T_(a-b) needs T_(a-b) too */
                    int a, b;
                    cdl_pe_factors(i, &a, &b);
                    assert_true(a + b == i && (a < 2 || s.used[a]) && (b < 2 || s.used[b]));
                    if (cheb && a != b)
                        assert_true(a - b < 2 || s.used[a - b]);
                }
            for (double x = -1; x <= 1; x += 0.125) {
                int ok = 1;
                double v = walk(&s, s.root, x, &ok);
                assert_true(ok);
                double want = cheb ? clenshaw(c, d, x) : horner(c, d, x);
                assert_true(fabs(v - want) < 1e-12 * (cheb ? 100 : 1));
            }
            cdl_poly_eval_plan plan;
            assert_int_equal(cheb ? cdl_poly_eval_plan_chebyshev(c, d, &plan) : cdl_poly_eval_plan_compute(c, d, &plan),
                             CDL_OK);
            assert_int_equal(plan.depth, want_depth);
            assert_int_equal(plan.ct_mults, s.ct_mults);
            /* bounds: at least ceil(log2 d) products to reach degree d; at most
             * what plain binary splitting spends on a full polynomial of degree
             * 2^k - 1 >= d: k - 1 squarings and 2^(k-1) - 1 joins */
            assert_true(plan.ct_mults >= (int)ceil(log2((double)d)));
            int k = want_depth;
            assert_true(plan.ct_mults <= (k - 1) + (1 << (k - 1)) - 1);
        }
}

static void test_small_degree_counts(void **state)
{
    (void)state;
    const int want[5] = {0, 0, 1, 2, 2};
    for (int d = 1; d <= 4; d++) {
        cdl_poly_eval_plan plan;
        assert_int_equal(cdl_poly_eval_plan_compute(NULL, d, &plan), CDL_OK);
        assert_int_equal(plan.ct_mults, want[d]);
        /* Chebyshev: T_2 (1), T_3 = 2 T_2 T_1 - T_1 or q T_2 + r (2), d = 4: T_2, T_4 = 2 T_2^2 - 1 and
         * (c4 ... ) needs 2m > n, so at most one more than the power basis */
        assert_int_equal(cdl_poly_eval_plan_chebyshev(NULL, d, &plan), CDL_OK);
        assert_true(plan.ct_mults >= want[d] && plan.ct_mults <= want[d] + 1);
    }
}

static void test_zero_coefficients(void **state)
{
    (void)state;
    /* an even polynomial of degree 8: x^2, x^4, x^8 by squaring; then
     * c8 x^8 + (c6 x^2 + c4) x^4 + c2 x^2 + c0 ... at most 4 products */
    double even[9] = {1, 0, 2, 0, 3, 0, 4, 0, 5}, full[9] = {1, 1, 2, 1, 3, 1, 4, 1, 5};
    cdl_poly_eval_plan pe, pf;
    assert_int_equal(cdl_poly_eval_plan_compute(even, 8, &pe), CDL_OK);
    assert_int_equal(cdl_poly_eval_plan_compute(full, 8, &pf), CDL_OK);
    assert_true(pe.ct_mults <= pf.ct_mults);
    assert_true(pe.ct_mults <= 4);
    /* leading zeros lower the degree and the depth */
    double lead[8] = {1, 2, 3, 0, 0, 0, 0, 0};
    assert_int_equal(cdl_poly_eval_plan_compute(lead, 7, &pe), CDL_OK);
    assert_int_equal(pe.degree, 2);
    assert_int_equal(pe.depth, 2);
    double bad[3] = {1, NAN, 2};
    assert_int_equal(cdl_poly_eval_plan_compute(bad, 2, &pe), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_poly_eval_plan_compute(NULL, 40, &pe), CDL_ERR_INVALID_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_and_correctness),
        cmocka_unit_test(test_small_degree_counts),
        cmocka_unit_test(test_zero_coefficients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
