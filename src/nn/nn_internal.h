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

/* Merge elementwise affine maps (unfolded BatchNorm, degree-1 polynomials)
 * into a neighbouring conv/dense layer when that changes nothing else. */
void cdl_nn_fold_affine(cdl_nn_graph *graph);

#endif
