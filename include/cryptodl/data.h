/*
 * data.h: image datasets for evaluation and demos: MNIST and Fashion-MNIST
 * (IDX format, gzip or plain) and CIFAR-10 (binary batches, plain .bin or
 * .bin.xz). Pixels come out as floats in [0, 1] (byte / 255), NCHW, with
 * uint8 labels. Every file is validated: magic numbers, sizes, label ranges.
 *
 * User files (src/data/user_files.c): images and labels as NumPy .npy or IDX
 * files, matched against a model's input shape; and a container of several
 * encrypted batches in one file.
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

/* CIFAR-10 binary records (the cifar-10-batches-bin files): each is a label
 * byte 0..9 then 3 x 32 x 32 pixel bytes (red, green, blue planes). The bytes
 * must be a whole number (1..10,000) of 3,073-byte records and every label in
 * range, else CDL_ERR_FORMAT. The first min(records, max_records) go to
 * labels[] and pixels[] (scaled to [0, 1], 3,072 per image); *records gets
 * that count. */
#define CDL_CIFAR_RECORD_BYTES 3073
#define CDL_CIFAR_MAX_RECORDS 10000
CDL_API cdl_status cdl_cifar_parse(const uint8_t *data, size_t len, size_t max_records, uint8_t *labels,
                                   float *pixels, size_t *records);

/* ---- user files: images and labels as .npy or IDX (src/data/user_files.c) ---- */

#define CDL_NPY_MAX_DIMS 4

typedef enum cdl_npy_dtype {
    CDL_NPY_U8 = 0, /* '|u1' */
    CDL_NPY_I8,     /* '|i1' */
    CDL_NPY_I32,    /* '<i4' */
    CDL_NPY_I64,    /* '<i8' */
    CDL_NPY_F32,    /* '<f4' */
    CDL_NPY_F64     /* '<f8' */
} cdl_npy_dtype;

/* A parsed .npy array: points into the caller's bytes. */
typedef struct cdl_npy_array {
    cdl_npy_dtype dtype;
    size_t item_size;                 /* bytes per element */
    int ndim;                         /* 1..CDL_NPY_MAX_DIMS */
    uint64_t shape[CDL_NPY_MAX_DIMS];
    size_t count;                     /* elements (product of shape, >= 1) */
    int fortran_order;                /* always 0 on success (Fortran order is refused) */
    const uint8_t *payload;           /* count * item_size little-endian bytes */
} cdl_npy_array;

/* Parse a NumPy .npy file (format 1.0, 2.0 or 3.0) held in memory. Refuses,
 * with a message: a bad magic or version, a header that is not the dict of
 * exactly 'descr', 'fortran_order' and 'shape', Fortran order, big-endian or
 * other dtypes than the six above, more than 4 dimensions, empty or
 * overflowing shapes, and a data size other than shape x dtype. */
CDL_API cdl_status cdl_npy_parse(const uint8_t *data, size_t len, cdl_npy_array *out);

/* Images a user gives for encryption, converted to the model's input values. */
typedef struct cdl_images {
    size_t n;          /* images */
    size_t image_size; /* values per image */
    double *pixels;    /* n * image_size, row-major (NCHW): uint8 / 255, floats as given (finite) */
    char format[8];    /* "npy" or "idx" */
    char dtype[8];     /* "uint8", "float32", "float64" */
} cdl_images;

/* Images from a .npy file (uint8 -> /255; float32 / float64 taken as they
 * are) or an IDX ubyte file (as MNIST's *-images-idx3-ubyte; /255). rank and
 * dims give the model's per-sample input shape (e.g. 3 and {1, 28, 28}); the
 * array may be (n, *dims) or one image (*dims), and for one-channel models
 * also (n, H, W) or (H, W). Any other shape is refused with a message giving
 * the shapes the model accepts. load reads a file (plain or gzip). */
CDL_API cdl_status cdl_images_parse(const uint8_t *data, size_t len, int rank, const int64_t *dims,
                                    cdl_images **out);
CDL_API cdl_status cdl_images_load(const char *path, int rank, const int64_t *dims, cdl_images **out);
CDL_API void cdl_images_free(cdl_images *images);

/* Class labels from a .npy vector of integers (uint8, int8, int32, int64) or
 * an IDX label file; every label must be < n_classes. Free with cdl_labels_free. */
CDL_API cdl_status cdl_labels_parse(const uint8_t *data, size_t len, int n_classes, uint8_t **labels, size_t *n);
CDL_API cdl_status cdl_labels_load(const char *path, int n_classes, uint8_t **labels, size_t *n);
CDL_API void cdl_labels_free(uint8_t *labels);

/* A file of several parts (e.g. encrypted batches): "CDLPARTS", u64 version,
 * u64 count, then per part a u64 length and its bytes (little-endian),
 * filling the file exactly. Writers emit the header, then each part's length
 * and bytes; readers get pointers into their buffer and check each part
 * with that part's own loader. */
#define CDL_PARTS_MAGIC "CDLPARTS"
#define CDL_PARTS_VERSION 1
#define CDL_PARTS_HEADER_BYTES 24
typedef struct cdl_part {
    const uint8_t *data;
    size_t len;
} cdl_part;
CDL_API int cdl_parts_is(const uint8_t *data, size_t len); /* starts with the magic */
CDL_API void cdl_parts_header(uint8_t out[CDL_PARTS_HEADER_BYTES], uint64_t count);
CDL_API void cdl_parts_length(uint8_t out[8], uint64_t len);
/* At most max_parts parts, each non-empty. Free *parts with cdl_parts_free. */
CDL_API cdl_status cdl_parts_parse(const uint8_t *data, size_t len, size_t max_parts, cdl_part **parts,
                                   size_t *count);
CDL_API void cdl_parts_free(cdl_part *parts);

#ifdef __cplusplus
}
#endif
#endif
