/*
 * learn_common.c: the binary image task of the training commands
 * (learn_common.h).
 */
#include "learn_common.h"

#include <stdlib.h>

void lr_features(const float *img, double *out)
{
    for (int r = 0; r < 14; r++)
        for (int c = 0; c < 14; c++) {
            const float *p = img + (2 * r) * 28 + 2 * c;
            out[r * 14 + c] = ((double)p[0] + p[1] + p[28] + p[29]) / 4.0;
        }
}

int lr_select_task(const cdl_dataset *ds, int a, int b, size_t skip, size_t limit, double **x, int **y, size_t *n)
{
    size_t count = 0;
    for (size_t i = 0; i < ds->n; i++)
        count += ds->labels[i] == a || ds->labels[i] == b;
    count = count > skip ? count - skip : 0;
    if (limit && count > limit)
        count = limit;
    *x = malloc((count ? count : 1) * LR_FEATURES * sizeof **x);
    *y = malloc((count ? count : 1) * sizeof **y);
    if (!*x || !*y)
        return -1;
    size_t k = 0, seen = 0;
    for (size_t i = 0; i < ds->n && k < count; i++) {
        if (ds->labels[i] != a && ds->labels[i] != b)
            continue;
        if (seen++ < skip)
            continue;
        lr_features(ds->pixels + i * 784, *x + k * LR_FEATURES);
        (*y)[k++] = ds->labels[i] == a ? 1 : -1;
    }
    *n = k;
    return 0;
}

int lr_load_split(const char *dataset, const char *data_dir, int defaulted, const char *split, cdl_dataset **ds)
{
    if (cdl_dataset_load(dataset, data_dir, split, 0, ds) == CDL_OK)
        return 0;
    if (defaulted && data_dir && cdl_dataset_load(dataset, NULL, split, 0, ds) == CDL_OK)
        return 0;
    return -1;
}
