/*
 * poly_eval_internal.h: the evaluation schedule shared by the planner
 * (poly_eval_plan.c) and the ciphertext evaluator, so that what is predicted
 * is what runs. A schedule is the set of powers x^i to compute and a tree of
 * nodes over slices of the coefficient array.
 */
#ifndef CDL_APPROX_POLY_EVAL_INTERNAL_H
#define CDL_APPROX_POLY_EVAL_INTERNAL_H

#include "cryptodl/approx.h"

#define CDL_PE_MAX_POWER 32
#define CDL_PE_MAX_NODES 256

typedef enum { CDL_PE_CONST, CDL_PE_LEAF, CDL_PE_SPLIT } cdl_pe_kind;

/* Node: the polynomial sum_{i=0..n} c[lo + i] x^i, to be produced exactly
 * `budget` levels below the level of x. LEAF: one linear combination of
 * available powers. SPLIT at m: q(x) * x^m + r(x), q = c[lo+m .. lo+n] (child
 * q, budget - 1; q == -1 when q is the constant c[lo+m], then a scalar term),
 * r = c[lo .. lo+m-1] (child r, same budget). CONST: just c[lo]. */
typedef struct cdl_pe_node {
    cdl_pe_kind kind;
    int lo, n, budget, m;
    int q, r;
} cdl_pe_node;

typedef struct cdl_pe_schedule {
    int degree;   /* effective degree */
    int depth;    /* ceil(log2(degree + 1)) */
    int baby;     /* g: x^i for i < g are available */
    int top_pow2; /* largest power of two <= degree */
    unsigned char used[CDL_PE_MAX_POWER + 1]; /* powers x^i (i >= 2) the run computes */
    int n_nodes, root;
    cdl_pe_node nodes[CDL_PE_MAX_NODES];
    int power_mults, split_mults, ct_mults, const_mults, rescales;
} cdl_pe_schedule;

int cdl_pe_ceil_log2(int i);
int cdl_pe_floor_pow2(int n);
cdl_status cdl_pe_schedule_make(const double *coeffs, int degree, int baby, cdl_pe_schedule *s);
cdl_status cdl_pe_schedule_best(const double *coeffs, int degree, cdl_pe_schedule *best);

#endif
