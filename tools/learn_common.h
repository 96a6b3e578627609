/*
 * learn_common.h: what the training commands share (`cryptodl logreg`,
 * `cryptodl train-encrypted`): the binary task of two image classes and its
 * features, 28x28 pixels averaged over 2x2 blocks (14x14 = 196 values in
 * [0, 1]).
 */
#ifndef CDL_TOOLS_LEARN_COMMON_H
#define CDL_TOOLS_LEARN_COMMON_H

#include <stddef.h>

#include "cryptodl/cryptodl.h"

#define LR_FEATURES 196 /* 14 x 14 */

/* 2x2 average pooling of a 28x28 image: 196 features in [0, 1]. */
void lr_features(const float *img, double *out);

/* The samples of classes a and b after the first `skip` of them (at most
 * limit; 0 = all): x (n x 196), y = +1 for a, -1 for b (malloc'ed). 0, or -1
 * when out of memory. */
int lr_select_task(const cdl_dataset *ds, int a, int b, size_t skip, size_t limit, double **x, int **y, size_t *n);

/* Load a split from data_dir; when data_dir was defaulted (not given), also
 * try the library's own default. 0, or -1. */
int lr_load_split(const char *dataset, const char *data_dir, int defaulted, const char *split, cdl_dataset **ds);

#endif
