/*
 * poly_eval_internal.h: the evaluation schedule shared by the planner
 * (poly_eval_plan.c) and the ciphertext evaluator (poly_eval.c), so that what
 * is predicted is what runs. A schedule is the set of basis polynomials to
 * compute (powers t^i, or Chebyshev T_i) and a tree of nodes, each holding
 * the coefficients of the sub-polynomial it produces.
 */
#ifndef CDL_APPROX_POLY_EVAL_INTERNAL_H
#define CDL_APPROX_POLY_EVAL_INTERNAL_H

#include "cryptodl/approx.h"

#define CDL_PE_MAX_POWER 32
#define CDL_PE_MAX_NODES 128

typedef enum { CDL_PE_CONST, CDL_PE_LEAF, CDL_PE_SPLIT } cdl_pe_kind;

/*
 * Node: the polynomial sum_{i=0..n} c[i] B_i (B_i = t^i or T_i(t)), to be
 * produced exactly `budget` levels below the level of t.
 *   CONST: c[0] only (no ciphertext).
 *   LEAF:  one linear combination of available B_i plus c[0].
 *   SPLIT: q * B_m + r, q = node `q` (budget - 1; q == -1: q is the constant
 *          qconst, a scalar term), r = node `r` (same budget).
 */
typedef struct cdl_pe_node {
    cdl_pe_kind kind;
    int n, budget, m;
    int q, r;
    double qconst;
    double c[CDL_APPROX_MAX_DEGREE + 1];
} cdl_pe_node;

typedef struct cdl_pe_schedule {
    int chebyshev; /* basis: 0 power, 1 Chebyshev */
    int degree;    /* effective degree */
    int depth;     /* ceil(log2(degree + 1)) */
    int baby;      /* g: B_i for i < g are available */
    int top_pow2;  /* largest power of two <= degree */
    unsigned char used[CDL_PE_MAX_POWER + 1]; /* B_i (i >= 2) the run computes */
    int n_nodes, root;
    cdl_pe_node nodes[CDL_PE_MAX_NODES];
    int power_mults, split_mults, ct_mults, const_mults, rescales;
} cdl_pe_schedule;

int cdl_pe_ceil_log2(int i);
int cdl_pe_floor_pow2(int n);
/* How B_i (i >= 2, not 1) is built: from B_a and B_b (a >= b, a + b = i), and
 * in the Chebyshev basis T_i = 2 T_a T_b - T_(a-b) (T_0 = 1 when a == b). */
void cdl_pe_factors(int i, int *a, int *b);
cdl_status cdl_pe_schedule_make(const double *coeffs, int degree, int chebyshev, int baby, cdl_pe_schedule *s);
cdl_status cdl_pe_schedule_best(const double *coeffs, int degree, int chebyshev, cdl_pe_schedule *best);

#endif
