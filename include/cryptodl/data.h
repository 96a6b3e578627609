/*
 * data.h: image datasets for evaluation and demos: MNIST and Fashion-MNIST
 * (IDX format, gzip or plain) and CIFAR-10 (binary batches, plain .bin or
 * .bin.xz). Pixels come out as floats in [0, 1] (byte / 255), NCHW, with
 * uint8 labels. Every file is validated: magic numbers, sizes, label ranges.
 *
 * Where files are looked for: data_dir if given; else $CDL_DATA_DIR; else
 * ../shared/data when it exists; and, for the MNIST test set only, the copy
 * shipped in the repository (data/ under $CDL_SOURCE_DIR, then under the
 * source tree this library was built from, then ./data).
 */
#ifndef CRYPTODL_DATA_H
#define CRYPTODL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest decompressed file the loaders accept (the MNIST training images are 47 MB). */
#define CDL_DATA_MAX_FILE_BYTES ((size_t)512 << 20)

typedef struct cdl_dataset {
    char name[32];     /* "mnist", "fashion-mnist", "cifar-10" */
    size_t n;          /* images */
    int channels, height, width;
    int n_classes;     /* 10 */
    float *pixels;     /* n * channels * height * width, in [0, 1] */
    uint8_t *labels;   /* n, each < n_classes */
    char source[512];  /* the folder the files were read from */
} cdl_dataset;

/* name: "mnist" | "fashion-mnist" | "cifar-10"; split: "test" | "train";
 * limit: keep the first `limit` images (0 = all). */
CDL_API cdl_status cdl_dataset_load(const char *name, const char *data_dir, const char *split, size_t limit,
                                    cdl_dataset **out);
CDL_API void cdl_dataset_free(cdl_dataset *ds);

/* Pixels per image (channels * height * width). */
CDL_API size_t cdl_dataset_image_size(const cdl_dataset *ds);

/* Parse an IDX file already in memory (uncompressed). expected_magic is
 * 0x00000801 (labels) or 0x00000803 (images), or 0 to accept either. Sets
 * the dimension count and sizes (up to 4) and points *payload into data. */
CDL_API cdl_status cdl_idx_parse(const uint8_t *data, size_t len, uint32_t expected_magic, int *n_dims,
                                 uint32_t dims[4], const uint8_t **payload);

/* Read a whole file, decompressing .gz (zlib) or .xz (liblzma) by content,
 * at most max_bytes after decompression. Free *out with cdl_free_bytes. */
CDL_API cdl_status cdl_read_file_decompressed(const char *path, size_t max_bytes, uint8_t **out, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
