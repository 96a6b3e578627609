/*
 * learn_common.h: what the training commands share (`cryptodl logreg`,
 * `cryptodl train-encrypted`): the binary task of two image classes and its
 * features, 28x28 pixels averaged over 2x2 blocks (14x14 = 196 values in
 * [0, 1]); and, for the multiclass tasks, the client's plaintext feature
 * extraction with a frozen trunk (the input of a shipped model's last dense
 * layer), its cache file, standardization, and the curvature that sets the
 * default learning rate.
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

/* ---- multiclass tasks ---- */

/* The samples of a split after the first `skip` (at most limit; 0 = all):
 * their pooled pixels (196 per 28x28 image, as lr_features) or nothing, and
 * their labels 0..9 (malloc'ed). 0, or -1 when out of memory. */
int mc_select(const cdl_dataset *ds, size_t skip, size_t limit, int pooled, double **x, int **labels, size_t *n);

/* The frozen trunk of a model: the value feeding its last dense layer (for a
 * flip-averaged model whose branches share weights, the last branch's: the
 * unflipped image). -1 (with a message on stderr) if the model has no dense
 * layer. desc gets a human description of the value. */
int mc_trunk_value(const cdl_nn_graph *g, int *value, size_t *dim, char *desc, size_t cap);

/* Features of images [skip, skip + n) of ds through the trunk (plaintext,
 * chunked, progress on stderr unless quiet). x: n * dim doubles (malloc'ed).
 * 0, or -1 after a message. */
int mc_extract(const char *cmd, const cdl_nn_graph *g, int value, size_t dim, const cdl_dataset *ds, size_t skip,
               size_t n, const char *what, double **x);

/* The feature cache: a file holding the extracted features of a training and
 * a test selection, keyed by the model file's BLAKE2b and the selection.
 * load: 1 if the file exists and matches (x and labels malloc'ed), 0 if it
 * does not exist or belongs to another selection (a message says so), -1 if
 * damaged. save: 0, or -1 after a message (written atomically). */
typedef struct mc_features {
    size_t dim, n_train, n_test;
    double *x_train, *x_test;
    int *y_train, *y_test;
} mc_features;
void mc_features_free(mc_features *f);
int mc_cache_load(const char *cmd, const char *path, const uint8_t key[32], mc_features *f);
int mc_cache_save(const char *cmd, const char *path, const uint8_t key[32], const mc_features *f);

/* Standardize every feature with the training set's mean and standard
 * deviation plus eps (in place, both sets; eps keeps near-constant inputs
 * such as border pixels from blowing up), leaving out of these statistics
 * the training samples whose largest |feature| is 100 times the median one
 * (their count goes to *outliers: a polynomial trunk blows up on a few
 * images), clip every standardized value to [-clip, clip], then append a
 * constant 1 (a bias) when that does not grow the row (dim not a power of
 * two). The new width goes to *out_dim, the arrays are reallocated. 0, or -1
 * when out of memory. */
int mc_standardize(mc_features *f, double eps, double clip, int *bias, size_t *out_dim, size_t *outliers);

/* The largest eigenvalue of (1/n) X^T X (power iteration, 200 steps or a
 * relative change below 1e-9). */
double mc_lambda_max(const double *x, size_t n, size_t d);

#endif
