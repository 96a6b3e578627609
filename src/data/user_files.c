/*
 * user_files.c: the files a user hands to `cryptodl encrypt` / `decrypt`:
 * images and labels as NumPy .npy arrays or IDX files, and the container
 * that holds several encrypted batches in one file.
 *
 * These bytes come from outside, so every parser is strict and checks sizes
 * before it touches memory:
 *   - .npy (NumPy's format, versions 1.0, 2.0 and 3.0): magic "\x93NUMPY",
 *     version, little-endian header length, a Python dict literal with exactly
 *     the keys 'descr', 'fortran_order' and 'shape'; C order only, little-endian
 *     (or byte) dtypes only; element count and byte size overflow-checked; the
 *     file length must equal header + data exactly.
 *   - IDX (LeCun's MNIST format): parsed by cdl_idx_parse (dataset.c).
 *   - The batch container: "CDLPARTS", u64 version 1, u64 part count, then per
 *     part a u64 length and that many bytes (all integers little-endian); the
 *     parts must fill the file exactly. It knows nothing of what the parts are:
 *     each one is then checked by its own loader (cdl_he_batch_load).
 * Images are matched against the model's per-sample input shape, with a
 * message saying what the model expects when they do not fit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/memory.h"
#include "cryptodl/data.h"

#define NPY_MAX_HEADER 65536u /* numpy itself refuses headers above 10,000 bytes by default */
#define NPY_MAX_PARSE_DIMS 8

/* ---- .npy ------------------------------------------------------------------ */

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

typedef struct hdr_cursor {
    const char *s;
    size_t n, at;
} hdr_cursor;

static void skip_ws(hdr_cursor *c)
{
    while (c->at < c->n && (c->s[c->at] == ' ' || c->s[c->at] == '\t'))
        c->at++;
}

static int accept(hdr_cursor *c, char ch)
{
    skip_ws(c);
    if (c->at < c->n && c->s[c->at] == ch) {
        c->at++;
        return 1;
    }
    return 0;
}

/* A quoted Python string ('...' or "..."), no escapes; copies at most cap-1 bytes. */
static int parse_string(hdr_cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->at >= c->n || (c->s[c->at] != '\'' && c->s[c->at] != '"'))
        return -1;
    char q = c->s[c->at++];
    size_t len = 0;
    while (c->at < c->n && c->s[c->at] != q) {
        if (c->s[c->at] == '\\' || len + 1 >= cap)
            return -1;
        out[len++] = c->s[c->at++];
    }
    if (c->at >= c->n)
        return -1;
    c->at++;
    out[len] = '\0';
    return 0;
}

static int parse_word(hdr_cursor *c, const char *w)
{
    skip_ws(c);
    size_t l = strlen(w);
    if (c->n - c->at >= l && !memcmp(c->s + c->at, w, l)) {
        c->at += l;
        return 1;
    }
    return 0;
}

static cdl_status npy_dtype(const char *descr, cdl_npy_dtype *dt, size_t *item)
{
    static const struct {
        const char *descr;
        cdl_npy_dtype dt;
        size_t item;
    } known[] = {{"|u1", CDL_NPY_U8, 1},  {"<u1", CDL_NPY_U8, 1},  {"|i1", CDL_NPY_I8, 1},
                 {"<i1", CDL_NPY_I8, 1},  {"<i4", CDL_NPY_I32, 4}, {"<i8", CDL_NPY_I64, 8},
                 {"<f4", CDL_NPY_F32, 4}, {"<f8", CDL_NPY_F64, 8}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(descr, known[i].descr)) {
            *dt = known[i].dt;
            *item = known[i].item;
            return CDL_OK;
        }
    if (descr[0] == '>')
        return cdl_fail(CDL_ERR_UNSUPPORTED,
                        ".npy dtype '%s' is big-endian: save it little-endian (a.astype(a.dtype.newbyteorder('<')))",
                        descr);
    return cdl_fail(CDL_ERR_UNSUPPORTED,
                    ".npy dtype '%s' is not supported: images are uint8 ('|u1', scaled by 1/255), float32 ('<f4') "
                    "or float64 ('<f8'); labels are uint8, int8, int32 or int64",
                    descr);
}

cdl_status cdl_npy_parse(const uint8_t *data, size_t len, cdl_npy_array *out)
{
    if (!data || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_npy_parse: NULL argument");
    memset(out, 0, sizeof *out);
    if (len < 10 || memcmp(data, "\x93NUMPY", 6))
        return cdl_fail(CDL_ERR_FORMAT, "not a .npy file (no \\x93NUMPY magic)");
    int major = data[6], minor = data[7];
    if (major < 1 || major > 3 || minor != 0)
        return cdl_fail(CDL_ERR_FORMAT, ".npy format version %d.%d: this build reads 1.0, 2.0 and 3.0", major, minor);
    size_t prefix = major == 1 ? 10 : 12, hlen;
    if (len < prefix)
        return cdl_fail(CDL_ERR_FORMAT, ".npy file truncated in its header");
    hlen = major == 1 ? (size_t)data[8] | (size_t)data[9] << 8 : (size_t)le32(data + 8);
    if (hlen == 0 || hlen > NPY_MAX_HEADER)
        return cdl_fail(CDL_ERR_FORMAT, ".npy header length %zu out of range (1..%u)", hlen, NPY_MAX_HEADER);
    if (hlen > len - prefix)
        return cdl_fail(CDL_ERR_FORMAT, ".npy header claims %zu bytes, the file has %zu after the prefix", hlen,
                        len - prefix);
    const char *h = (const char *)data + prefix;
    if (h[hlen - 1] != '\n')
        return cdl_fail(CDL_ERR_FORMAT, ".npy header does not end with a newline");
    for (size_t i = 0; i < hlen - 1; i++)
        if ((unsigned char)h[i] < 0x20 || (unsigned char)h[i] > 0x7e)
            return cdl_fail(CDL_ERR_FORMAT, ".npy header has a non-printable byte at %zu", i);
    size_t n = hlen - 1;
    while (n > 0 && h[n - 1] == ' ') /* padding */
        n--;
    hdr_cursor c = {h, n, 0};
    if (!accept(&c, '{'))
        return cdl_fail(CDL_ERR_FORMAT, ".npy header is not a dict ('{' expected)");
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    char descr[16] = "";
    for (;;) {
        if (accept(&c, '}'))
            break;
        char key[24];
        if (parse_string(&c, key, sizeof key) != 0 || !accept(&c, ':'))
            return cdl_fail(CDL_ERR_FORMAT, ".npy header: a quoted key and ':' expected at byte %zu", c.at);
        if (!strcmp(key, "descr")) {
            if (have_descr++ || parse_string(&c, descr, sizeof descr) != 0)
                return cdl_fail(CDL_ERR_FORMAT, ".npy header: 'descr' repeated or not a short string "
                                                "(structured dtypes are not supported)");
        } else if (!strcmp(key, "fortran_order")) {
            if (have_fortran++)
                return cdl_fail(CDL_ERR_FORMAT, ".npy header: 'fortran_order' repeated");
            if (parse_word(&c, "True"))
                out->fortran_order = 1;
            else if (!parse_word(&c, "False"))
                return cdl_fail(CDL_ERR_FORMAT, ".npy header: 'fortran_order' must be True or False");
        } else if (!strcmp(key, "shape")) {
            if (have_shape++ || !accept(&c, '('))
                return cdl_fail(CDL_ERR_FORMAT, ".npy header: 'shape' repeated or not a tuple");
            int nd = 0;
            while (!accept(&c, ')')) {
                skip_ws(&c);
                uint64_t v = 0;
                size_t digits = 0;
                while (c.at < c.n && c.s[c.at] >= '0' && c.s[c.at] <= '9') {
                    if (++digits > 15) /* < 10^15: products are then checked for overflow below */
                        return cdl_fail(CDL_ERR_FORMAT, ".npy header: a dimension is too large");
                    v = v * 10 + (uint64_t)(c.s[c.at++] - '0');
                }
                if (!digits)
                    return cdl_fail(CDL_ERR_FORMAT, ".npy header: 'shape' holds something other than integers");
                if (nd == NPY_MAX_PARSE_DIMS)
                    return cdl_fail(CDL_ERR_FORMAT, ".npy array with more than %d dimensions", NPY_MAX_PARSE_DIMS);
                if (nd < CDL_NPY_MAX_DIMS)
                    out->shape[nd] = v;
                nd++;
                if (!accept(&c, ',')) {
                    if (!accept(&c, ')'))
                        return cdl_fail(CDL_ERR_FORMAT, ".npy header: ',' or ')' expected in 'shape'");
                    break;
                }
            }
            if (nd > CDL_NPY_MAX_DIMS)
                return cdl_fail(CDL_ERR_UNSUPPORTED, ".npy array with %d dimensions (at most %d supported)", nd,
                                CDL_NPY_MAX_DIMS);
            out->ndim = nd;
        } else
            return cdl_fail(CDL_ERR_FORMAT, ".npy header: unexpected key '%s'", key);
        if (!accept(&c, ',')) {
            if (!accept(&c, '}'))
                return cdl_fail(CDL_ERR_FORMAT, ".npy header: ',' or '}' expected at byte %zu", c.at);
            break;
        }
    }
    skip_ws(&c);
    if (c.at != c.n)
        return cdl_fail(CDL_ERR_FORMAT, ".npy header: bytes after the dict");
    if (!have_descr || !have_fortran || !have_shape)
        return cdl_fail(CDL_ERR_FORMAT, ".npy header lacks %s", !have_descr ? "'descr'"
                                                                : !have_fortran ? "'fortran_order'"
                                                                                : "'shape'");
    size_t item = 0;
    CDL_TRY(npy_dtype(descr, &out->dtype, &item));
    if (out->fortran_order)
        return cdl_fail(CDL_ERR_UNSUPPORTED, ".npy array in Fortran order: save a C-order array "
                                             "(np.save(f, np.ascontiguousarray(a)))");
    if (out->ndim == 0)
        return cdl_fail(CDL_ERR_UNSUPPORTED, ".npy array is a scalar (shape ()): an array of images is expected");
    size_t count = 1;
    for (int i = 0; i < out->ndim; i++) {
        if (out->shape[i] == 0)
            return cdl_fail(CDL_ERR_FORMAT, ".npy array is empty (dimension %d is 0)", i);
        if (out->shape[i] > SIZE_MAX || count > SIZE_MAX / (size_t)out->shape[i])
            return cdl_fail(CDL_ERR_FORMAT, ".npy shape overflows");
        count *= (size_t)out->shape[i];
    }
    if (count > SIZE_MAX / item)
        return cdl_fail(CDL_ERR_FORMAT, ".npy shape overflows");
    size_t bytes = count * item, at = prefix + hlen;
    if (len - at != bytes)
        return cdl_fail(CDL_ERR_FORMAT, ".npy data is %zu bytes but the header's shape and dtype need %zu "
                                        "(truncated or corrupt file)",
                        len - at, bytes);
    out->count = count;
    out->item_size = item;
    out->payload = data + at;
    return CDL_OK;
}

static double npy_value(const cdl_npy_array *a, size_t i)
{
    const uint8_t *p = a->payload + i * a->item_size;
    switch (a->dtype) {
    case CDL_NPY_U8: return (double)p[0];
    case CDL_NPY_I8: return (double)(int8_t)p[0];
    case CDL_NPY_I32: return (double)(int32_t)le32(p);
    case CDL_NPY_I64: return (double)(int64_t)le64(p);
    case CDL_NPY_F32: {
        uint32_t u = le32(p);
        float f;
        memcpy(&f, &u, sizeof f);
        return (double)f;
    }
    case CDL_NPY_F64: {
        uint64_t u = le64(p);
        double d;
        memcpy(&d, &u, sizeof d);
        return d;
    }
    }
    return 0;
}

static const char *dtype_name(cdl_npy_dtype dt)
{
    switch (dt) {
    case CDL_NPY_U8: return "uint8";
    case CDL_NPY_I8: return "int8";
    case CDL_NPY_I32: return "int32";
    case CDL_NPY_I64: return "int64";
    case CDL_NPY_F32: return "float32";
    case CDL_NPY_F64: return "float64";
    }
    return "?";
}

/* ---- images ------------------------------------------------------------------ */

static void shape_text(char *buf, size_t cap, int nd, const uint64_t *dims)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, cap - at, "(");
    for (int i = 0; i < nd && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, nd == 1 ? ",)" : ")");
}

static int dims_equal(const uint64_t *a, const int64_t *b, int n)
{
    for (int i = 0; i < n; i++)
        if (b[i] < 0 || a[i] != (uint64_t)b[i])
            return 0;
    return 1;
}

/* How many images an array of shape dims holds for a model whose per-sample
 * input shape is want (rank r): (n, *want), (*want), and for one-channel
 * images (n, H, W) and (H, W). 0 when it does not fit. */
static uint64_t images_in(int nd, const uint64_t *dims, int r, const int64_t *want)
{
    if (nd == r + 1 && dims_equal(dims + 1, want, r))
        return dims[0];
    if (nd == r && dims_equal(dims, want, r))
        return 1;
    if (r == 3 && want[0] == 1) {
        if (nd == 3 && dims_equal(dims + 1, want + 1, 2))
            return dims[0];
        if (nd == 2 && dims_equal(dims, want + 1, 2))
            return 1;
    }
    return 0;
}

static cdl_status shape_mismatch(const char *what, int nd, const uint64_t *dims, int r, const int64_t *want)
{
    char got[128], exp[128];
    uint64_t w[CDL_NPY_MAX_DIMS] = {0};
    for (int i = 0; i < r && i < CDL_NPY_MAX_DIMS; i++)
        w[i] = want[i] < 0 ? 0 : (uint64_t)want[i];
    shape_text(got, sizeof got, nd, dims);
    shape_text(exp, sizeof exp, r, w);
    if (r == 3 && nd == 4 && want[0] > 1 && dims[3] == w[0] && dims[1] == w[1] && dims[2] == w[2])
        return cdl_fail(CDL_ERR_MISMATCH,
                        "%s has shape %s, channels last (NHWC); the model takes channels first: one image is %s. "
                        "Transpose it: np.transpose(a, (0, 3, 1, 2))",
                        what, got, exp);
    if (r == 3 && w[0] == 1)
        return cdl_fail(CDL_ERR_MISMATCH,
                        "%s has shape %s but the model takes images of shape %s: give (n, %llu, %llu, %llu), "
                        "(n, %llu, %llu), (%llu, %llu, %llu) or (%llu, %llu)",
                        what, got, exp, (unsigned long long)w[0], (unsigned long long)w[1], (unsigned long long)w[2],
                        (unsigned long long)w[1], (unsigned long long)w[2], (unsigned long long)w[0],
                        (unsigned long long)w[1], (unsigned long long)w[2], (unsigned long long)w[1],
                        (unsigned long long)w[2]);
    return cdl_fail(CDL_ERR_MISMATCH, "%s has shape %s but the model takes one image of shape %s: give (n, %s) or %s",
                    what, got, exp, exp + 1, exp);
}

void cdl_images_free(cdl_images *im)
{
    if (!im)
        return;
    cdl_free(im->pixels);
    cdl_free(im);
}

static cdl_status make_images(const cdl_npy_array *a, const char *format, int rank, const int64_t *dims,
                              cdl_images **out)
{
    if (a->dtype != CDL_NPY_U8 && a->dtype != CDL_NPY_F32 && a->dtype != CDL_NPY_F64)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "images of dtype %s: give uint8 (0..255), float32 or float64 (0..1)",
                        dtype_name(a->dtype));
    uint64_t n = images_in(a->ndim, a->shape, rank, dims);
    if (n == 0)
        return shape_mismatch("the image array", a->ndim, a->shape, rank, dims);
    size_t per = a->count / (size_t)n;
    cdl_images *im = calloc(1, sizeof *im);
    if (!im)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for the images");
    im->pixels = cdl_alloc_array(a->count, sizeof *im->pixels);
    if (!im->pixels) {
        cdl_images_free(im);
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for %llu images", (unsigned long long)n);
    }
    for (size_t i = 0; i < a->count; i++) {
        double v = npy_value(a, i);
        if (a->dtype == CDL_NPY_U8)
            v /= 255.0;
        else if (!isfinite(v)) {
            cdl_images_free(im);
            return cdl_fail(CDL_ERR_FORMAT, "image %zu, value %zu is not a finite number", i / per, i % per);
        }
        im->pixels[i] = v;
    }
    im->n = (size_t)n;
    im->image_size = per;
    snprintf(im->format, sizeof im->format, "%s", format);
    snprintf(im->dtype, sizeof im->dtype, "%s", dtype_name(a->dtype));
    *out = im;
    return CDL_OK;
}

/* An IDX file as a uint8 array (cdl_idx_parse checks its sizes). */
static cdl_status idx_as_array(const uint8_t *data, size_t len, uint32_t magic, cdl_npy_array *a)
{
    int nd = 0;
    uint32_t d[4];
    const uint8_t *payload = NULL;
    CDL_TRY(cdl_idx_parse(data, len, magic, &nd, d, &payload));
    memset(a, 0, sizeof *a);
    a->dtype = CDL_NPY_U8;
    a->item_size = 1;
    a->ndim = nd;
    a->count = 1;
    for (int i = 0; i < nd; i++) {
        a->shape[i] = d[i];
        a->count *= d[i];
    }
    a->payload = payload;
    return CDL_OK;
}

static int is_npy(const uint8_t *data, size_t len)
{
    return len >= 6 && !memcmp(data, "\x93NUMPY", 6);
}

static int is_idx(const uint8_t *data, size_t len)
{
    return len >= 4 && data[0] == 0 && data[1] == 0 && data[2] == 0x08;
}

cdl_status cdl_images_parse(const uint8_t *data, size_t len, int rank, const int64_t *dims, cdl_images **out)
{
    if (!data || !dims || !out || rank < 1 || rank > CDL_NPY_MAX_DIMS - 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_images_parse: NULL argument or rank %d out of 1..%d", rank,
                        CDL_NPY_MAX_DIMS - 1);
    *out = NULL;
    cdl_npy_array a;
    if (is_npy(data, len)) {
        CDL_TRY(cdl_npy_parse(data, len, &a));
        return make_images(&a, "npy", rank, dims, out);
    }
    if (is_idx(data, len)) {
        CDL_TRY(idx_as_array(data, len, 0x00000803u, &a));
        return make_images(&a, "idx", rank, dims, out);
    }
    return cdl_fail(CDL_ERR_FORMAT, "neither a NumPy .npy file nor an IDX image file (supported: .npy of uint8, "
                                    "float32 or float64; IDX ubyte images as MNIST's t10k-images-idx3-ubyte)");
}

/* Prefix a failure with the file's path (copying the message first: it lives
 * in the buffer cdl_fail writes to). */
static cdl_status with_path(cdl_status st, const char *path)
{
    char msg[400];
    snprintf(msg, sizeof msg, "%s", cdl_last_error());
    return cdl_fail(st, "%s: %s", path, msg);
}

cdl_status cdl_images_load(const char *path, int rank, const int64_t *dims, cdl_images **out)
{
    if (!path || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_images_load: NULL argument");
    uint8_t *data = NULL;
    size_t len = 0;
    cdl_status st = cdl_read_file_decompressed(path, CDL_DATA_MAX_FILE_BYTES, &data, &len);
    if (st != CDL_OK)
        return st;
    st = cdl_images_parse(data, len, rank, dims, out);
    free(data);
    return st == CDL_OK ? st : with_path(st, path);
}

/* ---- labels ------------------------------------------------------------------ */

cdl_status cdl_labels_parse(const uint8_t *data, size_t len, int n_classes, uint8_t **labels, size_t *n)
{
    if (!data || !labels || !n || n_classes < 1 || n_classes > 256)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_labels_parse: NULL argument or n_classes out of 1..256");
    *labels = NULL;
    *n = 0;
    cdl_npy_array a;
    if (is_npy(data, len))
        CDL_TRY(cdl_npy_parse(data, len, &a));
    else if (is_idx(data, len))
        CDL_TRY(idx_as_array(data, len, 0x00000801u, &a));
    else
        return cdl_fail(CDL_ERR_FORMAT, "neither a NumPy .npy file nor an IDX label file (as MNIST's "
                                        "t10k-labels-idx1-ubyte)");
    if (a.dtype == CDL_NPY_F32 || a.dtype == CDL_NPY_F64)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "labels of dtype %s: give integers (uint8, int8, int32, int64)",
                        dtype_name(a.dtype));
    if (a.ndim != 1 && !(a.ndim == 2 && a.shape[1] == 1))
        return cdl_fail(CDL_ERR_MISMATCH, "labels must be a vector (n,) of class indices, got %d dimensions", a.ndim);
    uint8_t *l = cdl_alloc_array(a.count, 1);
    if (!l)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for %zu labels", a.count);
    for (size_t i = 0; i < a.count; i++) {
        double v = npy_value(&a, i);
        if (v < 0 || v >= n_classes) {
            cdl_free(l);
            return cdl_fail(CDL_ERR_FORMAT, "label %zu is %.0f, outside 0..%d", i, v, n_classes - 1);
        }
        l[i] = (uint8_t)v;
    }
    *labels = l;
    *n = a.count;
    return CDL_OK;
}

cdl_status cdl_labels_load(const char *path, int n_classes, uint8_t **labels, size_t *n)
{
    if (!path || !labels || !n)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_labels_load: NULL argument");
    uint8_t *data = NULL;
    size_t len = 0;
    cdl_status st = cdl_read_file_decompressed(path, CDL_DATA_MAX_FILE_BYTES, &data, &len);
    if (st != CDL_OK)
        return st;
    st = cdl_labels_parse(data, len, n_classes, labels, n);
    free(data);
    return st == CDL_OK ? st : with_path(st, path);
}

void cdl_labels_free(uint8_t *labels) { cdl_free(labels); }

/* ---- the multi-part container ------------------------------------------------ */

int cdl_parts_is(const uint8_t *data, size_t len)
{
    return data && len >= 8 && !memcmp(data, CDL_PARTS_MAGIC, 8);
}

void cdl_parts_header(uint8_t out[CDL_PARTS_HEADER_BYTES], uint64_t count)
{
    memcpy(out, CDL_PARTS_MAGIC, 8);
    put_le64(out + 8, CDL_PARTS_VERSION);
    put_le64(out + 16, count);
}

void cdl_parts_length(uint8_t out[8], uint64_t len) { put_le64(out, len); }

cdl_status cdl_parts_parse(const uint8_t *data, size_t len, size_t max_parts, cdl_part **parts, size_t *count)
{
    if (!data || !parts || !count)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_parts_parse: NULL argument");
    *parts = NULL;
    *count = 0;
    if (len < CDL_PARTS_HEADER_BYTES || !cdl_parts_is(data, len))
        return cdl_fail(CDL_ERR_FORMAT, "not a multi-batch file (no CDLPARTS header)");
    uint64_t version = le64(data + 8), n = le64(data + 16);
    if (version != CDL_PARTS_VERSION)
        return cdl_fail(CDL_ERR_FORMAT, "multi-batch file version %llu, this build reads %d",
                        (unsigned long long)version, CDL_PARTS_VERSION);
    /* each part takes at least its 8-byte length and one byte */
    if (n == 0 || n > max_parts || n > (len - CDL_PARTS_HEADER_BYTES) / 9)
        return cdl_fail(CDL_ERR_FORMAT, "multi-batch file claims %llu parts (1..%zu that fit in %zu bytes)",
                        (unsigned long long)n, max_parts, len);
    cdl_part *p = cdl_alloc_array((size_t)n, sizeof *p);
    if (!p)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for %llu parts", (unsigned long long)n);
    size_t at = CDL_PARTS_HEADER_BYTES;
    for (size_t i = 0; i < n; i++) {
        if (len - at < 8) {
            cdl_free(p);
            return cdl_fail(CDL_ERR_FORMAT, "multi-batch file truncated at part %zu", i);
        }
        uint64_t l = le64(data + at);
        at += 8;
        if (l == 0 || l > len - at) {
            cdl_free(p);
            return cdl_fail(CDL_ERR_FORMAT, "multi-batch file: part %zu claims %llu bytes, %zu left", i,
                            (unsigned long long)l, len - at);
        }
        p[i].data = data + at;
        p[i].len = (size_t)l;
        at += (size_t)l;
    }
    if (at != len) {
        cdl_free(p);
        return cdl_fail(CDL_ERR_FORMAT, "multi-batch file: %zu trailing bytes", len - at);
    }
    *parts = p;
    *count = (size_t)n;
    return CDL_OK;
}

void cdl_parts_free(cdl_part *parts) { cdl_free(parts); }
