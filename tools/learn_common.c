/*
 * learn_common.c: the image tasks of the training commands
 * (learn_common.h): the binary task's pooled pixels, and for the multiclass
 * tasks the client's feature extraction with a frozen trunk, its cache,
 * standardization and curvature.
 */
#include "learn_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "core/bytes.h"

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

/* ---- multiclass tasks ---- */

int mc_select(const cdl_dataset *ds, size_t skip, size_t limit, int pooled, double **x, int **labels, size_t *n)
{
    size_t count = ds->n > skip ? ds->n - skip : 0;
    if (limit && count > limit)
        count = limit;
    *x = NULL;
    if (pooled) {
        *x = malloc((count ? count : 1) * LR_FEATURES * sizeof **x);
        if (!*x)
            return -1;
    }
    *labels = malloc((count ? count : 1) * sizeof **labels);
    if (!*labels) {
        free(*x);
        *x = NULL;
        return -1;
    }
    for (size_t k = 0; k < count; k++) {
        if (pooled)
            lr_features(ds->pixels + (skip + k) * cdl_dataset_image_size(ds), *x + k * LR_FEATURES);
        (*labels)[k] = ds->labels[skip + k];
    }
    *n = count;
    return 0;
}

int mc_trunk_value(const cdl_nn_graph *g, int *value, size_t *dim, char *desc, size_t cap)
{
    int last = -1;
    for (size_t k = 0; k < g->n_nodes; k++)
        if (g->nodes[k].kind == CDL_NN_DENSE)
            last = (int)k;
    if (last < 0) {
        fprintf(stderr, "the model has no dense layer: no last layer to retrain on its features\n");
        return -1;
    }
    *value = g->nodes[last].inputs[0];
    *dim = cdl_nn_shape_numel(cdl_nn_value_shape(g, *value));
    snprintf(desc, cap, "the input of dense layer '%s' (%zu values)", g->nodes[last].name, *dim);
    return 0;
}

int mc_extract(const char *cmd, const cdl_nn_graph *g, int value, size_t dim, const cdl_dataset *ds, size_t skip,
               size_t n, const char *what, double **x)
{
    const size_t isz = cdl_dataset_image_size(ds), chunk = 256;
    if (isz != cdl_nn_input_size(g)) {
        fprintf(stderr, "cryptodl %s: the model takes %zu values per image, the dataset has %zu: use a model of this "
                        "dataset\n",
                cmd, cdl_nn_input_size(g), isz);
        return -1;
    }
    *x = malloc((n ? n : 1) * dim * sizeof **x);
    double *in = malloc(chunk * isz * sizeof *in);
    if (!*x || !in) {
        free(*x);
        free(in);
        *x = NULL;
        fprintf(stderr, "cryptodl %s: out of memory for the features\n", cmd);
        return -1;
    }
    cli_progress p;
    cli_progress_start(&p, what, n);
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        const size_t cnt = n - i0 < chunk ? n - i0 : chunk;
        for (size_t t = 0; t < cnt * isz; t++)
            in[t] = ds->pixels[(skip + i0) * isz + t];
        if (cdl_nn_run_value(g, value, in, cnt, *x + i0 * dim) != CDL_OK) {
            cli_progress_finish(&p);
            fprintf(stderr, "cryptodl %s: feature extraction failed: %s\n", cmd, cdl_last_error());
            free(in);
            free(*x);
            *x = NULL;
            return -1;
        }
        cli_progress_update(&p, i0 + cnt);
    }
    cli_progress_finish(&p);
    free(in);
    return 0;
}

void mc_features_free(mc_features *f)
{
    free(f->x_train);
    free(f->x_test);
    free(f->y_train);
    free(f->y_test);
    memset(f, 0, sizeof *f);
}

#define MC_CACHE_MAGIC "CDLFEAT1"
#define MC_CACHE_MAX_BYTES ((size_t)4 << 30)

int mc_cache_load(const char *cmd, const char *path, const uint8_t key[32], mc_features *f)
{
    memset(f, 0, sizeof *f);
    FILE *probe = fopen(path, "rb");
    if (!probe)
        return 0;
    fclose(probe);
    uint8_t *bytes = NULL;
    size_t len = 0;
    if (cdl_read_file(path, MC_CACHE_MAX_BYTES, &bytes, &len) != CDL_OK) {
        fprintf(stderr, "cryptodl %s: cannot read the feature cache %s: %s\n", cmd, path, cdl_last_error());
        return -1;
    }
    uint8_t sum[32], k2[32];
    int rc = -1;
    if (len < 8 + 32 + 32 || memcmp(bytes, MC_CACHE_MAGIC, 8) != 0) {
        fprintf(stderr, "cryptodl %s: %s is not a feature cache\n", cmd, path);
        goto done;
    }
    crypto_generichash(sum, sizeof sum, bytes, len - 32, NULL, 0);
    if (sodium_memcmp(sum, bytes + len - 32, 32) != 0) {
        fprintf(stderr, "cryptodl %s: the feature cache %s is damaged (checksum mismatch); remove it\n", cmd, path);
        goto done;
    }
    cdl_reader r;
    cdl_reader_init(&r, bytes + 8, len - 8 - 32);
    uint64_t dim = 0, ntr = 0, nte = 0;
    if (cdl_read_bytes(&r, k2, 32) != CDL_OK)
        goto bad;
    if (memcmp(k2, key, 32) != 0) {
        fprintf(stderr, "cryptodl %s: the feature cache %s belongs to another model or selection: extracting again "
                        "(it will be replaced)\n",
                cmd, path);
        rc = 0;
        goto done;
    }
    if (cdl_read_u64(&r, &dim) != CDL_OK || cdl_read_u64(&r, &ntr) != CDL_OK || cdl_read_u64(&r, &nte) != CDL_OK ||
        dim == 0 || dim > ((uint64_t)1 << 24) || ntr > ((uint64_t)1 << 24) || nte > ((uint64_t)1 << 24) ||
        (ntr + nte) * (dim * 8 + 1) != cdl_reader_remaining(&r))
        goto bad;
    f->dim = (size_t)dim;
    f->n_train = (size_t)ntr;
    f->n_test = (size_t)nte;
    f->x_train = malloc((ntr ? ntr : 1) * dim * sizeof(double));
    f->x_test = malloc((nte ? nte : 1) * dim * sizeof(double));
    f->y_train = malloc((ntr ? ntr : 1) * sizeof(int));
    f->y_test = malloc((nte ? nte : 1) * sizeof(int));
    if (!f->x_train || !f->x_test || !f->y_train || !f->y_test) {
        fprintf(stderr, "cryptodl %s: out of memory reading the feature cache\n", cmd);
        mc_features_free(f);
        goto done;
    }
    for (uint64_t i = 0; i < (ntr + nte) * dim; i++) {
        double v;
        if (cdl_read_f64(&r, &v) != CDL_OK) {
            mc_features_free(f);
            goto bad;
        }
        if (i < ntr * dim)
            f->x_train[i] = v;
        else
            f->x_test[i - ntr * dim] = v;
    }
    for (uint64_t i = 0; i < ntr + nte; i++) {
        uint8_t v;
        if (cdl_read_u8(&r, &v) != CDL_OK || v > 99) {
            mc_features_free(f);
            goto bad;
        }
        if (i < ntr)
            f->y_train[i] = v;
        else
            f->y_test[i - ntr] = v;
    }
    rc = 1;
    goto done;
bad:
    fprintf(stderr, "cryptodl %s: the feature cache %s is malformed; remove it\n", cmd, path);
    rc = -1;
done:
    cdl_free_bytes(bytes);
    return rc;
}

int mc_cache_save(const char *cmd, const char *path, const uint8_t key[32], const mc_features *f)
{
    cdl_writer w;
    cdl_writer_init(&w);
    cdl_write_bytes(&w, MC_CACHE_MAGIC, 8);
    cdl_write_bytes(&w, key, 32);
    cdl_write_u64(&w, f->dim);
    cdl_write_u64(&w, f->n_train);
    cdl_write_u64(&w, f->n_test);
    for (size_t i = 0; i < f->n_train * f->dim; i++)
        cdl_write_f64(&w, f->x_train[i]);
    for (size_t i = 0; i < f->n_test * f->dim; i++)
        cdl_write_f64(&w, f->x_test[i]);
    for (size_t i = 0; i < f->n_train; i++)
        cdl_write_u8(&w, (uint8_t)f->y_train[i]);
    for (size_t i = 0; i < f->n_test; i++)
        cdl_write_u8(&w, (uint8_t)f->y_test[i]);
    uint8_t sum[32];
    int rc = -1;
    if (cdl_writer_status(&w) == CDL_OK) {
        crypto_generichash(sum, sizeof sum, w.data, w.len, NULL, 0);
        cdl_write_bytes(&w, sum, sizeof sum);
    }
    if (cdl_writer_status(&w) != CDL_OK)
        fprintf(stderr, "cryptodl %s: out of memory writing the feature cache\n", cmd);
    else if (cdl_write_file(path, w.data, w.len) != CDL_OK)
        fprintf(stderr, "cryptodl %s: cannot write the feature cache %s: %s\n", cmd, path, cdl_last_error());
    else
        rc = 0;
    cdl_writer_free(&w);
    return rc;
}

static int widen(double **x, size_t n, size_t d, size_t d2, int bias)
{
    double *y = malloc((n ? n : 1) * d2 * sizeof *y);
    if (!y)
        return -1;
    for (size_t i = 0; i < n; i++) {
        memcpy(y + i * d2, *x + i * d, d * sizeof *y);
        if (bias)
            y[i * d2 + d] = 1.0;
    }
    free(*x);
    *x = y;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int mc_standardize(mc_features *f, double eps, double clip, int *bias, size_t *out_dim, size_t *outliers)
{
    const size_t d = f->dim, n = f->n_train;
    double *mu = calloc(d, sizeof *mu), *sd = calloc(d, sizeof *sd), *mx = calloc(n ? n : 1, sizeof *mx);
    unsigned char *skip = calloc(n ? n : 1, 1);
    if (!mu || !sd || !mx || !skip) {
        free(mu);
        free(sd);
        free(mx);
        free(skip);
        return -1;
    }
    /* samples whose largest |feature| is 100 times the median one are left out of the statistics (a polynomial
     * trunk can blow up on a few inputs: their features are clipped below like any other) */
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < d; s++)
            mx[i] = fmax(mx[i], fabs(f->x_train[i * d + s]));
    double *sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted) {
        free(mu);
        free(sd);
        free(mx);
        free(skip);
        return -1;
    }
    memcpy(sorted, mx, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_double);
    const double thr = n ? 100.0 * sorted[n / 2] : 0.0;
    free(sorted);
    size_t kept = 0;
    *outliers = 0;
    for (size_t i = 0; i < n; i++) {
        skip[i] = !(mx[i] <= thr) && thr > 0;
        *outliers += skip[i];
        kept += !skip[i];
    }
    for (size_t i = 0; i < n; i++)
        if (!skip[i])
            for (size_t s = 0; s < d; s++)
                mu[s] += f->x_train[i * d + s];
    for (size_t s = 0; s < d; s++)
        mu[s] /= (double)(kept ? kept : 1);
    for (size_t i = 0; i < n; i++)
        if (!skip[i])
            for (size_t s = 0; s < d; s++) {
                const double t = f->x_train[i * d + s] - mu[s];
                sd[s] += t * t;
            }
    for (size_t s = 0; s < d; s++) {
        sd[s] = sqrt(sd[s] / (double)(kept ? kept : 1)) + eps;
        if (!(sd[s] > 1e-12))
            sd[s] = 1.0; /* a constant feature: centred to 0 */
    }
    for (size_t i = 0; i < n * d; i++)
        f->x_train[i] = fmin(clip, fmax(-clip, (f->x_train[i] - mu[i % d]) / sd[i % d]));
    for (size_t i = 0; i < f->n_test * d; i++)
        f->x_test[i] = fmin(clip, fmax(-clip, (f->x_test[i] - mu[i % d]) / sd[i % d]));
    free(mu);
    free(sd);
    free(mx);
    free(skip);
    *bias = (d & (d - 1)) != 0;
    const size_t d2 = d + (size_t)*bias;
    if (*bias && (widen(&f->x_train, f->n_train, d, d2, 1) != 0 || widen(&f->x_test, f->n_test, d, d2, 1) != 0))
        return -1;
    f->dim = d2;
    *out_dim = d2;
    return 0;
}

double mc_lambda_max(const double *x, size_t n, size_t d)
{
    double *v = malloc(d * sizeof *v), *w = malloc(d * sizeof *w);
    if (!v || !w || n == 0) {
        free(v);
        free(w);
        return 0.0;
    }
    for (size_t s = 0; s < d; s++)
        v[s] = 1.0 / sqrt((double)d);
    double lambda = 0.0;
    for (int it = 0; it < 200; it++) {
        memset(w, 0, d * sizeof *w);
        for (size_t i = 0; i < n; i++) {
            const double *xi = x + i * d;
            double t = 0;
            for (size_t s = 0; s < d; s++)
                t += xi[s] * v[s];
            for (size_t s = 0; s < d; s++)
                w[s] += t * xi[s];
        }
        double norm = 0;
        for (size_t s = 0; s < d; s++) {
            w[s] /= (double)n;
            norm += w[s] * w[s];
        }
        norm = sqrt(norm);
        if (!(norm > 0))
            break;
        for (size_t s = 0; s < d; s++)
            v[s] = w[s] / norm;
        const double prev = lambda;
        lambda = norm;
        if (it > 10 && fabs(lambda - prev) <= 1e-9 * lambda)
            break;
    }
    free(v);
    free(w);
    return lambda;
}
