/*
 * nn_internal.h: helpers shared by the files of src/nn (import, graph
 * analysis, runtime) that are not part of the public API.
 */
#ifndef CDL_NN_INTERNAL_H
#define CDL_NN_INTERNAL_H

#include "cryptodl/nn.h"

/* Free the arrays a node owns (weight, bias, coeffs). */
void cdl_nn_node_clear(cdl_nn_node *node);
/* ceil(log2(degree + 1)): levels of a depth-optimal polynomial evaluation. */
int cdl_nn_poly_depth(int degree);

/* The input element (flat per-sample index) that output element out_index
 * of a CDL_NN_SLICE node reads. The importer guarantees that every index
 * start + i * step lies inside the input axis. */
size_t cdl_nn_slice_source(const cdl_nn_node *node, size_t out_index);

/* Merge elementwise affine maps (unfolded BatchNorm, degree-1 polynomials)
 * into a neighbouring conv/dense layer when that changes nothing else. */
void cdl_nn_fold_affine(cdl_nn_graph *graph);

#endif
