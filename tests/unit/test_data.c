/* test_data.c: dataset loaders. Small IDX and CIFAR-10 files are generated
 * here (gzip via zlib, xz via liblzma, and plain) and read back; corrupt ones
 * must be refused with a message. When ../shared/data (or $CDL_DATA_DIR)
 * holds the real datasets they are loaded too and checked against facts
 * published with them (sizes; first test labels: MNIST 7, 2, 1;
 * Fashion-MNIST 9 (ankle boot); CIFAR-10 3 (cat)). The MNIST test set
 * shipped in data/ must load with no data folder at all. */
#include <lzma.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "cryptodl/cryptodl.h"

static char tmpdir[256];

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static void write_gz(const char *path, const uint8_t *d, size_t n)
{
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, d, (unsigned)n), (int)n);
    gzclose(f);
}

static void write_plain(const char *path, const uint8_t *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
}

static void write_xz(const char *path, const uint8_t *d, size_t n)
{
    size_t cap = lzma_stream_buffer_bound(n), pos = 0;
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    assert_int_equal(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, NULL, d, n, out, &pos, cap), LZMA_OK);
    write_plain(path, out, pos);
    free(out);
}

/* An IDX images file of n images h x w with pixel (i, k) = (7 i + k) % 256. */
static uint8_t *make_idx_images(size_t n, int h, int w, size_t *len)
{
    *len = 16 + n * (size_t)(h * w);
    uint8_t *b = malloc(*len);
    put_be32(b, 0x803), put_be32(b + 4, (uint32_t)n), put_be32(b + 8, (uint32_t)h), put_be32(b + 12, (uint32_t)w);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < h * w; k++)
            b[16 + i * (size_t)(h * w) + (size_t)k] = (uint8_t)((7 * i + (size_t)k) % 256);
    return b;
}

static uint8_t *make_idx_labels(size_t n, size_t *len)
{
    *len = 8 + n;
    uint8_t *b = malloc(*len);
    put_be32(b, 0x801), put_be32(b + 4, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        b[8 + i] = (uint8_t)((3 * i + 1) % 10);
    return b;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cdl_test_data_%d", (int)getpid());
    mkdir(tmpdir, 0700);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_idx_parse(void **state)
{
    (void)state;
    size_t len;
    uint8_t *b = make_idx_images(3, 4, 5, &len);
    int nd;
    uint32_t dims[4];
    const uint8_t *payload;
    assert_int_equal(cdl_idx_parse(b, len, 0x803, &nd, dims, &payload), CDL_OK);
    assert_int_equal(nd, 3);
    assert_int_equal(dims[0], 3), assert_int_equal(dims[1], 4), assert_int_equal(dims[2], 5);
    assert_ptr_equal(payload, b + 16);
    /* wrong kind, truncated, bad magic, zero and overflowing dimensions */
    assert_int_equal(cdl_idx_parse(b, len, 0x801, &nd, dims, &payload), CDL_ERR_FORMAT);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_not_equal(cdl_idx_parse(b, cut, 0, &nd, dims, &payload), CDL_OK);
    b[2] = 0x0D; /* int32 data, not bytes */
    assert_int_equal(cdl_idx_parse(b, len, 0, &nd, dims, &payload), CDL_ERR_FORMAT);
    b[2] = 0x08;
    put_be32(b + 8, 0);
    assert_int_equal(cdl_idx_parse(b, len, 0, &nd, dims, &payload), CDL_ERR_FORMAT);
    put_be32(b + 4, 0xFFFFFFFFu), put_be32(b + 8, 0xFFFFFFFFu), put_be32(b + 12, 0xFFFFFFFFu);
    assert_int_equal(cdl_idx_parse(b, len, 0, &nd, dims, &payload), CDL_ERR_FORMAT);
    free(b);
}

static void write_mnist_like(const char *root, const char *sub, size_t n, int gz, int bad_label)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", root, sub);
    mkdir(root, 0700);
    mkdir(dir, 0700);
    size_t il, ll;
    uint8_t *im = make_idx_images(n, 28, 28, &il), *lb = make_idx_labels(n, &ll);
    if (bad_label)
        lb[8 + n / 2] = 10;
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte%s", dir, gz ? ".gz" : "");
    (gz ? write_gz : write_plain)(path, im, il);
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte%s", dir, gz ? ".gz" : "");
    (gz ? write_gz : write_plain)(path, lb, ll);
    free(im);
    free(lb);
}

static void test_generated_idx(void **state)
{
    (void)state;
    char root[400];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(root, sizeof root, "%s/idx%d", tmpdir, gz);
        write_mnist_like(root, gz ? "fashion-mnist" : "mnist", 12, gz, 0);
        cdl_dataset *ds = NULL;
        assert_int_equal(cdl_dataset_load(gz ? "fashion-mnist" : "mnist", root, "test", 0, &ds), CDL_OK);
        assert_int_equal(ds->n, 12);
        assert_int_equal(ds->channels, 1), assert_int_equal(ds->height, 28), assert_int_equal(ds->width, 28);
        for (size_t i = 0; i < 12; i++) {
            assert_int_equal(ds->labels[i], (3 * i + 1) % 10);
            for (int k = 0; k < 784; k += 97)
                assert_true(ds->pixels[i * 784 + (size_t)k] == (float)((7 * i + (size_t)k) % 256) / 255.0f);
        }
        cdl_dataset_free(ds);
        assert_int_equal(cdl_dataset_load(gz ? "fashion-mnist" : "mnist", root, "test", 5, &ds), CDL_OK);
        assert_int_equal(ds->n, 5);
        cdl_dataset_free(ds);
    }
    /* a label out of range is refused */
    snprintf(root, sizeof root, "%s/badlabel", tmpdir);
    write_mnist_like(root, "mnist", 12, 1, 1);
    cdl_dataset *ds = NULL;
    assert_int_equal(cdl_dataset_load("mnist", root, "test", 0, &ds), CDL_ERR_FORMAT);
    assert_non_null(strstr(cdl_last_error(), "label"));
    assert_null(ds);
    /* unknown names and missing folders say what to do */
    assert_int_equal(cdl_dataset_load("imagenet", root, "test", 0, &ds), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_dataset_load("mnist", "/nonexistent/folder", "test", 0, &ds), CDL_ERR_IO);
    assert_non_null(strstr(cdl_last_error(), "--data-dir"));
}

static void test_generated_cifar(void **state)
{
    (void)state;
    char root[400], dir[500], path[600];
    const size_t n = 20;
    uint8_t *b = malloc(n * 3073);
    for (size_t r = 0; r < n; r++) {
        b[r * 3073] = (uint8_t)(r % 10);
        for (size_t k = 0; k < 3072; k++)
            b[r * 3073 + 1 + k] = (uint8_t)((r * 5 + k * 3) % 256);
    }
    for (int xz = 0; xz < 2; xz++) {
        snprintf(root, sizeof root, "%s/cifar%d", tmpdir, xz);
        snprintf(dir, sizeof dir, "%s/cifar-10-batches-bin", root);
        mkdir(root, 0700);
        mkdir(dir, 0700);
        snprintf(path, sizeof path, "%s/test_batch.bin%s", dir, xz ? ".xz" : "");
        (xz ? write_xz : write_plain)(path, b, n * 3073);
        cdl_dataset *ds = NULL;
        assert_int_equal(cdl_dataset_load("cifar-10", root, "test", 0, &ds), CDL_OK);
        assert_int_equal(ds->n, n);
        assert_int_equal(ds->channels, 3), assert_int_equal(ds->height, 32);
        for (size_t r = 0; r < n; r++) {
            assert_int_equal(ds->labels[r], r % 10);
            assert_true(ds->pixels[r * 3072 + 1500] == (float)((r * 5 + 1500 * 3) % 256) / 255.0f);
        }
        cdl_dataset_free(ds);
    }
    /* a partial record and a bad label are refused */
    snprintf(path, sizeof path, "%s/cifar-10-batches-bin/test_batch.bin.xz", root);
    write_xz(path, b, n * 3073 - 5);
    cdl_dataset *ds = NULL;
    assert_int_equal(cdl_dataset_load("cifar-10", root, "test", 0, &ds), CDL_ERR_FORMAT);
    b[3073 * 4] = 11;
    write_xz(path, b, n * 3073);
    assert_int_equal(cdl_dataset_load("cifar-10", root, "test", 0, &ds), CDL_ERR_FORMAT);
    assert_non_null(strstr(cdl_last_error(), "label"));
    /* corrupt xz */
    b[0] = 0xFD, b[1] = '7', b[2] = 'z', b[3] = 'X', b[4] = 'Z', b[5] = 0;
    write_plain(path, b, 100);
    assert_int_equal(cdl_dataset_load("cifar-10", root, "test", 0, &ds), CDL_ERR_FORMAT);
    free(b);
}

/* cdl_cifar_parse on bytes: records kept up to max_records, every label checked, bad lengths refused */
static void test_cifar_parse(void **state)
{
    (void)state;
    enum { R = CDL_CIFAR_RECORD_BYTES };
    uint8_t *b = calloc(3, R);
    uint8_t labels[2];
    float *px = malloc(2 * 3072 * sizeof *px);
    size_t n = 99;
    assert_non_null(b);
    assert_non_null(px);
    for (int r = 0; r < 3; r++) {
        b[r * R] = (uint8_t)(r + 4);
        b[r * R + 1] = 255;
        b[r * R + 3072] = 51;
    }
    assert_int_equal(cdl_cifar_parse(b, 3 * R, 2, labels, px, &n), CDL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(labels[0], 4);
    assert_int_equal(labels[1], 5);
    assert_true(px[0] == 1.0f && px[3071] == 0.2f && px[3072] == 1.0f && px[1] == 0.0f);
    b[2 * R] = 10; /* a bad label past the records kept is still refused */
    assert_int_equal(cdl_cifar_parse(b, 3 * R, 2, labels, px, &n), CDL_ERR_FORMAT);
    assert_int_equal(n, 0);
    assert_non_null(strstr(cdl_last_error(), "label 10 of record 2"));
    assert_int_equal(cdl_cifar_parse(b, 3 * R - 1, 2, labels, px, &n), CDL_ERR_FORMAT);
    assert_int_equal(cdl_cifar_parse(b, 0, 2, labels, px, &n), CDL_ERR_FORMAT);
    assert_int_equal(cdl_cifar_parse(NULL, 5, 2, labels, px, &n), CDL_ERR_INVALID_ARGUMENT);
    free(b);
    free(px);
}

static const char *real_data_dir(void)
{
    const char *env = getenv("CDL_DATA_DIR");
    if (env && env[0])
        return env;
    static char path[600];
    const char *src = getenv("CDL_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/../shared/data", src && src[0] ? src : ".");
    struct stat st;
    return stat(path, &st) == 0 ? path : NULL;
}

/* The real data sets (test_data --real-datasets, a CTest of its own that
 * reports "skipped" when they are missing); *missing counts those not found. */
static void test_real_datasets(void **state)
{
    int *missing = *state;
    const char *dir = real_data_dir();
    if (!dir) {
        printf("no ../shared/data and no $CDL_DATA_DIR: the real data sets cannot be checked here\n");
        *missing = 3;
        return;
    }
    static const struct {
        const char *name;
        size_t n;
        int c, h;
        uint8_t first;
    } sets[] = {{"mnist", 10000, 1, 28, 7}, {"fashion-mnist", 10000, 1, 28, 9}, {"cifar-10", 10000, 3, 32, 3}};
    for (size_t i = 0; i < 3; i++) {
        cdl_dataset *ds = NULL;
        if (cdl_dataset_load(sets[i].name, dir, "test", 0, &ds) != CDL_OK) {
            printf("%s not in %s: not checked (%s)\n", sets[i].name, dir, cdl_last_error());
            ++*missing;
            continue;
        }
        assert_int_equal(ds->n, sets[i].n);
        assert_int_equal(ds->channels, sets[i].c);
        assert_int_equal(ds->height, sets[i].h);
        assert_int_equal(ds->labels[0], sets[i].first);
        size_t hist[10] = {0};
        for (size_t k = 0; k < ds->n; k++)
            hist[ds->labels[k]]++;
        for (int k = 0; k < 10; k++)
            assert_true(hist[k] >= 800); /* every class present (test sets are near-balanced) */
        cdl_dataset_free(ds);
    }
    cdl_dataset *ds = NULL;
    assert_int_equal(cdl_dataset_load("mnist", dir, "test", 3, &ds), CDL_OK);
    assert_int_equal(ds->labels[1], 2);
    assert_int_equal(ds->labels[2], 1);
    cdl_dataset_free(ds);
}

/* The shipped data/mnist must be found with no data folder configured. */
static void test_shipped_mnist(void **state)
{
    (void)state;
    char path[600];
    const char *src = getenv("CDL_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/data/mnist/t10k-images-idx3-ubyte.gz", src && src[0] ? src : ".");
    assert_int_equal(access(path, R_OK), 0);
    snprintf(path, sizeof path, "%s/data", src && src[0] ? src : ".");
    cdl_dataset *ds = NULL;
    assert_int_equal(cdl_dataset_load("mnist", path, "test", 0, &ds), CDL_OK);
    assert_int_equal(ds->n, 10000);
    assert_int_equal(ds->labels[0], 7);
    cdl_dataset_free(ds);
    /* default search: no data dir, an empty CDL_DATA_DIR, from a folder with no ../shared/data */
    char cwd[600];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("/"), 0);
    setenv("CDL_DATA_DIR", "", 1);
    cdl_status st = cdl_dataset_load("mnist", NULL, "test", 10, &ds);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(st, CDL_OK);
    assert_int_equal(ds->n, 10);
    cdl_dataset_free(ds);
}

/* Exit status CTest reads as "skipped" (SKIP_RETURN_CODE in tests/integration/tests.cmake). */
#define SKIP_EXIT 77

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--real-datasets")) {
        int missing = 0;
        const struct CMUnitTest real[] = {cmocka_unit_test_prestate(test_real_datasets, &missing)};
        int failed = cmocka_run_group_tests(real, NULL, NULL);
        if (failed)
            return failed;
        if (missing)
            printf("SKIPPED: %d of the 3 real data sets are missing\n", missing);
        return missing ? SKIP_EXIT : 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idx_parse),     cmocka_unit_test(test_generated_idx), cmocka_unit_test(test_generated_cifar),
        cmocka_unit_test(test_shipped_mnist), cmocka_unit_test(test_cifar_parse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
