/*
 * he_merge.h (private): composing consecutive linear ops of an HE plan into
 * one (he_merge.c). cdl_he_plan_new runs it between lowering the graph and
 * counting the levels; the runtime only ever sees the result.
 */
#ifndef CDL_COMPILE_HE_MERGE_H
#define CDL_COMPILE_HE_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "compile/he_plan.h"

/*
 * When two linear ops A -> B are composed into C = B A, the blow-up guard:
 * merge only when nnz(C) <= CDL_HE_MERGE_FACTOR * (nnz(A) + nnz(B)).
 *
 * Why 2. The runtime's work for a linear op is one multiply-accumulate per
 * nonzero weight per limb. If A ran at level l, then before merging A costs
 * nnz(A) (l + 1) and B nnz(B) l limb-MACs; C runs at level l - 1 of the new,
 * one-level-shorter plan (l limbs), so up to nnz(C) ~ nnz(A) + nnz(B) the
 * merge is free for these two ops alone and the n_out(A) rescales of A are
 * saved. Beyond that, the level saved pays elsewhere: every op before the
 * merge point (and the client's input ciphertexts, upload and memory) works
 * on one limb fewer, a relinearization costs about the square of the limbs,
 * and one prime less in log Q can buy a larger scale (precision) or a ring
 * of half the size (everything twice as cheap). Factor 2 allows a merge to
 * at most double the MACs of the two ops it replaces: a conv 3x3 followed by
 * an average pool 2x2/2 (a 4x4 stride-2 conv, fewer MACs than the conv alone)
 * and conv -> BatchNorm or pool -> BatchNorm (no growth) merge; two 3x3 convs
 * (one 5x5 conv, 25/18 = 1.4x) merge; an average pool before a 3x3 conv (a
 * 6x6 stride-2 conv, ~4x) and dense layers around a narrow bottleneck do not.
 *
 * Small products: a product with at most 1/CDL_HE_MERGE_SMALL_SHARE of the
 * plan's linear weights merges whatever the factor (GlobalAveragePool over a
 * 4x4 map -> a dense layer is ~6x its inputs, but a few ten thousand weights
 * next to millions): its extra work is at most ~6% of the plan's linear
 * work, while the level saved takes 1/(L + 1) off the limbs of everything
 * before it.
 *
 * Weights: the runtime encodes w at a scale up to ~2^52 in a 62-bit word
 * (|w| < ~2^10). A product's largest weight may not exceed
 * CDL_HE_MERGE_MAX_WEIGHT = 2^9 or, if larger, the largest weight of its
 * parts: a merge does not create weights larger than the plan already
 * holds (a merged plan may still choose a larger scale: fewer levels).
 *
 * Caps: never more than CDL_HE_MERGE_MAX_NNZ weights in a product (2^25
 * weights hold ~0.7 GB of plan arrays, with the runtime's grouped copy; the
 * largest conv of the shipped models has 8.7M) and never more than
 * CDL_HE_MERGE_MAX_WORK multiply-adds to compute it (compile time).
 */
#define CDL_HE_MERGE_FACTOR 2
#define CDL_HE_MERGE_SMALL_SHARE 16
#define CDL_HE_MERGE_MAX_NNZ ((size_t)1 << 25)
#define CDL_HE_MERGE_MAX_WORK ((uint64_t)1 << 31)
#define CDL_HE_MERGE_MAX_WEIGHT 512.0

/* Compose chains of linear ops of p (lowered, not yet grouped nor leveled;
 * g the graph it was lowered from) in place: the absorbed ops become
 * HE_OP_SKIP. */
cdl_status cdl_he_merge_linear(cdl_he_plan *p, const cdl_nn_graph *g);

/* Testing and measurement: 0 = compile plans without merging (every linear
 * node keeps its own op and level, as before merging existed). Not
 * thread-safe; set it before compiling. */
void cdl_he_set_merge_linear(int on);

#endif
