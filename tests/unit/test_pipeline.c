/* test_pipeline.c: the files of the user pipeline (compile -> keygen ->
 * encrypt -> evaluate -> decrypt).
 *
 * - .npy parsing (src/data/user_files.c): files are built here byte by byte
 *   from the NumPy format description (magic, version, little-endian header
 *   length, dict literal, padding to 64 bytes), valid ones read back value by
 *   value, malformed ones refused: truncated, wrong magic, bad versions,
 *   Fortran order, big-endian and unsupported dtypes, huge and overflowing
 *   shapes, shape/size mismatch, missing / repeated / unknown keys.
 * - images matched against a model's input shape (and the message saying
 *   what it expects), IDX images and labels, label ranges.
 * - the CDLPARTS batch container: round trip and every refusal.
 * - the JSON plan file (tools/plan_file.c, compiled in here): SHA-256 against
 *   the FIPS 180-2 test vector, write -> read -> same record for the shipped
 *   MNIST model, and refusals of mutated files (types, ranges, unknown and
 *   duplicate keys, another model's hash, another outcome); the same for the
 *   model compiled in slots packing (rotation steps, ciphertext counts, a
 *   capacity below N/2), a file from before slots packing (no packing option,
 *   "batch-simd", no ciphertext counts) still reading as batch, and a slots
 *   record compared with a batch one naming both packings.
 */
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cryptodl/cryptodl.h"

#include "../../tools/plan_file.c"

/* A .npy file: version major.0, dict text (padded with spaces and a newline
 * so that the data starts at a multiple of 64), then the payload. */
static uint8_t *npy_make(int major, const char *dict, const void *payload, size_t plen, size_t *len)
{
    size_t prefix = major == 1 ? 10 : 12, dl = strlen(dict);
    size_t hl = dl + 1;
    while ((prefix + hl) % 64)
        hl++;
    *len = prefix + hl + plen;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (uint8_t)major;
    b[7] = 0;
    if (major == 1) {
        b[8] = (uint8_t)hl;
        b[9] = (uint8_t)(hl >> 8);
    } else
        for (int i = 0; i < 4; i++)
            b[8 + i] = (uint8_t)(hl >> (8 * i));
    memcpy(b + prefix, dict, dl);
    memset(b + prefix + dl, ' ', hl - dl - 1);
    b[prefix + hl - 1] = '\n';
    if (plen)
        memcpy(b + prefix + hl, payload, plen);
    return b;
}

static cdl_status parse_dict(int major, const char *dict, const void *payload, size_t plen, cdl_npy_array *a)
{
    size_t len;
    uint8_t *b = npy_make(major, dict, payload, plen, &len);
    cdl_status st = cdl_npy_parse(b, len, a);
    free(b);
    return st;
}

static void test_npy_valid(void **state)
{
    (void)state;
    uint8_t px[2 * 3 * 4];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)(11 * i + 3);
    for (int major = 1; major <= 3; major++) {
        size_t len;
        uint8_t *b = npy_make(major, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4), }", px,
                              sizeof px, &len);
        cdl_npy_array a;
        assert_int_equal(cdl_npy_parse(b, len, &a), CDL_OK);
        assert_int_equal(a.dtype, CDL_NPY_U8);
        assert_int_equal(a.ndim, 3);
        assert_true(a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4);
        assert_int_equal(a.count, 24);
        assert_memory_equal(a.payload, px, sizeof px);
        /* as images of a one-channel 3x4 model: (n, H, W) -> 2 images, / 255 */
        const int64_t dims[3] = {1, 3, 4};
        cdl_images *im = NULL;
        assert_int_equal(cdl_images_parse(b, len, 3, dims, &im), CDL_OK);
        assert_int_equal(im->n, 2);
        assert_int_equal(im->image_size, 12);
        for (size_t i = 0; i < sizeof px; i++)
            assert_true(im->pixels[i] == px[i] / 255.0);
        assert_string_equal(im->format, "npy");
        cdl_images_free(im);
        free(b);
    }
    /* key order, double quotes, no trailing comma, float64 one image (H, W) */
    double v[6] = {0.0, 0.25, 0.5, 0.75, 1.0, -0.125};
    size_t len;
    uint8_t *b = npy_make(1, "{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<f8\"}", v, sizeof v, &len);
    const int64_t d23[3] = {1, 2, 3};
    cdl_images *im = NULL;
    assert_int_equal(cdl_images_parse(b, len, 3, d23, &im), CDL_OK);
    assert_int_equal(im->n, 1);
    for (int i = 0; i < 6; i++)
        assert_true(im->pixels[i] == v[i]);
    assert_string_equal(im->dtype, "float64");
    cdl_images_free(im);
    free(b);
    /* float32 (n, C, H, W) for a 2-channel model */
    float f[2 * 2 * 1 * 2] = {0.5f, 1.5f, -2.0f, 0.125f, 3.0f, 0.0f, 1.0f, 0.25f};
    b = npy_make(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 1, 2), }", f, sizeof f, &len);
    const int64_t d212[3] = {2, 1, 2};
    assert_int_equal(cdl_images_parse(b, len, 3, d212, &im), CDL_OK);
    assert_int_equal(im->n, 2);
    for (int i = 0; i < 8; i++)
        assert_true(im->pixels[i] == (double)f[i]);
    cdl_images_free(im);
    /* ... which is not a one-channel model's (2, 1, 2) input */
    const int64_t d112[3] = {1, 1, 2};
    assert_int_equal(cdl_images_parse(b, len, 3, d112, &im), CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "(2, 2, 1, 2)"));
    assert_non_null(strstr(cdl_last_error(), "(n, 1, 1, 2)"));
    free(b);
    /* a rank-1 model takes (n, F) and (F) */
    b = npy_make(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", f, sizeof f, &len);
    const int64_t f2[1] = {2};
    assert_int_equal(cdl_images_parse(b, len, 1, f2, &im), CDL_OK);
    assert_int_equal(im->n, 4);
    cdl_images_free(im);
    free(b);
}

static void test_npy_malformed(void **state)
{
    (void)state;
    uint8_t px[24] = {0};
    cdl_npy_array a;
    const char *ok = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3, 4), }";
    size_t len;
    uint8_t *good = npy_make(1, ok, px, sizeof px, &len);
    assert_int_equal(cdl_npy_parse(good, len, &a), CDL_OK);
    /* truncated anywhere, or one byte too many */
    for (size_t cut = 0; cut < len; cut += 7)
        assert_int_not_equal(cdl_npy_parse(good, cut, &a), CDL_OK);
    assert_int_equal(cdl_npy_parse(good, len - 1, &a), CDL_ERR_FORMAT);
    assert_non_null(strstr(cdl_last_error(), "truncated"));
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, good, len);
    longer[len] = 0;
    assert_int_equal(cdl_npy_parse(longer, len + 1, &a), CDL_ERR_FORMAT);
    free(longer);
    /* wrong magic, versions */
    good[1] = 'n';
    assert_int_equal(cdl_npy_parse(good, len, &a), CDL_ERR_FORMAT);
    assert_non_null(strstr(cdl_last_error(), "magic"));
    good[1] = 'N';
    good[6] = 4;
    assert_int_equal(cdl_npy_parse(good, len, &a), CDL_ERR_FORMAT);
    good[6] = 1, good[7] = 1;
    assert_int_equal(cdl_npy_parse(good, len, &a), CDL_ERR_FORMAT);
    good[7] = 0;
    /* header length beyond the file, or not ending with a newline */
    good[8] = 0xff, good[9] = 0x7f;
    assert_int_equal(cdl_npy_parse(good, len, &a), CDL_ERR_FORMAT);
    good[8] = 10, good[9] = 0;
    assert_int_equal(cdl_npy_parse(good, len, &a), CDL_ERR_FORMAT);
    free(good);
    /* Fortran order, big-endian, unsupported dtypes */
    assert_int_equal(parse_dict(1, "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3, 4), }", px, 24, &a),
                     CDL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cdl_last_error(), "Fortran"));
    assert_int_equal(parse_dict(1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", px, 24, &a),
                     CDL_ERR_UNSUPPORTED);
    assert_non_null(strstr(cdl_last_error(), "big-endian"));
    const char *bad_dtypes[] = {"<f2", "|b1", "<c8", "<u8", "|S4", "<M8[s]", "O"};
    for (size_t i = 0; i < sizeof bad_dtypes / sizeof bad_dtypes[0]; i++) {
        char dict[160];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (24,), }", bad_dtypes[i]);
        assert_int_not_equal(parse_dict(1, dict, px, 24, &a), CDL_OK);
    }
    /* structured dtype (a list) */
    assert_int_equal(parse_dict(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (6,), }", px, 24, &a),
                     CDL_ERR_FORMAT);
    /* huge and overflowing shapes; shape/size mismatch; empty, scalar, too many dims */
    assert_int_equal(
        parse_dict(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000000, 100000000000000), }",
                   px, 24, &a),
        CDL_ERR_FORMAT);
    assert_int_equal(parse_dict(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
                                px, 24, &a),
                     CDL_ERR_FORMAT);
    assert_int_equal(parse_dict(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000000000000000000,), }",
                                px, 24, &a),
                     CDL_ERR_FORMAT);
    assert_int_equal(parse_dict(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (5, 5), }", px, 24, &a),
                     CDL_ERR_FORMAT);
    assert_int_equal(parse_dict(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (24,), }", px, 24, &a),
                     CDL_ERR_FORMAT);
    assert_int_equal(parse_dict(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (0, 3), }", px, 0, &a),
                     CDL_ERR_FORMAT);
    assert_int_equal(parse_dict(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (), }", px, 1, &a),
                     CDL_ERR_UNSUPPORTED);
    assert_int_equal(parse_dict(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 1, 2, 12), }", px, 24,
                                &a),
                     CDL_ERR_UNSUPPORTED);
    assert_int_equal(parse_dict(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (-24,), }", px, 24, &a),
                     CDL_ERR_FORMAT);
    /* missing, repeated, unknown keys; bad literals; bytes after the dict */
    const char *bad_dicts[] = {
        "{'descr': '|u1', 'shape': (24,), }",
        "{'descr': '|u1', 'fortran_order': False, }",
        "{'fortran_order': False, 'shape': (24,), }",
        "{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (24,), }",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (24,), 'extra': 1, }",
        "{'descr': '|u1', 'fortran_order': false, 'shape': (24,), }",
        "{'descr': '|u1', 'fortran_order': False, 'shape': [24], }",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (24,), } x",
        "{'descr': '|u1' 'fortran_order': False, 'shape': (24,), }",
        "['descr', '|u1']",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (24,)",
        "{'descr': '|u\\x31', 'fortran_order': False, 'shape': (24,), }",
        "{'descr': '|u1', 'fortran_order': False, 'shape': (2 4,), }",
    };
    for (size_t i = 0; i < sizeof bad_dicts / sizeof bad_dicts[0]; i++)
        assert_int_equal(parse_dict(1, bad_dicts[i], px, 24, &a), CDL_ERR_FORMAT);
    /* a non-printable byte in the header */
    size_t blen;
    uint8_t *b = npy_make(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (24,), }", px, 24, &blen);
    b[20] = 0x01;
    assert_int_equal(cdl_npy_parse(b, blen, &a), CDL_ERR_FORMAT);
    free(b);
}

static void test_images_and_labels(void **state)
{
    (void)state;
    const int64_t mnist[3] = {1, 28, 28};
    cdl_images *im = NULL;
    /* NHWC arrays get a hint */
    size_t len;
    uint8_t *px = calloc(2 * 4 * 4 * 3, 1);
    uint8_t *b = npy_make(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4, 3), }", px, 96, &len);
    const int64_t rgb[3] = {3, 4, 4};
    assert_int_equal(cdl_images_parse(b, len, 3, rgb, &im), CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "NHWC"));
    free(b);
    /* (n, H, W) is refused for a 3-channel model */
    b = npy_make(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (6, 4, 4), }", px, 96, &len);
    assert_int_equal(cdl_images_parse(b, len, 3, rgb, &im), CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "(3, 4, 4)"));
    /* and a shape other than 28 x 28 for MNIST names what the model takes */
    assert_int_equal(cdl_images_parse(b, len, 3, mnist, &im), CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "(n, 28, 28)"));
    free(b);
    /* integer and non-finite images are refused */
    b = npy_make(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (6, 4), }", px, 96, &len);
    const int64_t f4[1] = {4};
    assert_int_equal(cdl_images_parse(b, len, 1, f4, &im), CDL_ERR_UNSUPPORTED);
    free(b);
    double nan_img[4] = {0, 0.5, 0.0 / 0.0, 1};
    b = npy_make(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", nan_img, sizeof nan_img, &len);
    assert_int_equal(cdl_images_parse(b, len, 1, f4, &im), CDL_ERR_FORMAT);
    free(b);
    free(px);
    /* IDX images: the magic, then big-endian dims */
    uint8_t idx[16 + 2 * 28 * 28] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28};
    for (size_t i = 16; i < sizeof idx; i++)
        idx[i] = (uint8_t)(i * 13);
    assert_int_equal(cdl_images_parse(idx, sizeof idx, 3, mnist, &im), CDL_OK);
    assert_int_equal(im->n, 2);
    assert_true(im->pixels[100] == idx[116] / 255.0);
    assert_string_equal(im->format, "idx");
    cdl_images_free(im);
    assert_int_not_equal(cdl_images_parse(idx, sizeof idx - 1, 3, mnist, &im), CDL_OK);
    uint8_t junk[32] = "hello, not an image file";
    assert_int_equal(cdl_images_parse(junk, sizeof junk, 3, mnist, &im), CDL_ERR_FORMAT);
    assert_non_null(strstr(cdl_last_error(), ".npy"));
    /* labels: .npy int64 and uint8, IDX; ranges */
    int64_t l64[3] = {7, 2, 1};
    b = npy_make(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", l64, sizeof l64, &len);
    uint8_t *labels = NULL;
    size_t n = 0;
    assert_int_equal(cdl_labels_parse(b, len, 10, &labels, &n), CDL_OK);
    assert_int_equal(n, 3);
    assert_true(labels[0] == 7 && labels[1] == 2 && labels[2] == 1);
    cdl_labels_free(labels);
    assert_int_equal(cdl_labels_parse(b, len, 5, &labels, &n), CDL_ERR_FORMAT); /* 7 >= 5 classes */
    free(b);
    int64_t neg[1] = {-1};
    b = npy_make(1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", neg, sizeof neg, &len);
    assert_int_equal(cdl_labels_parse(b, len, 10, &labels, &n), CDL_ERR_FORMAT);
    free(b);
    float fl[1] = {1};
    b = npy_make(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", fl, sizeof fl, &len);
    assert_int_equal(cdl_labels_parse(b, len, 10, &labels, &n), CDL_ERR_UNSUPPORTED);
    free(b);
    uint8_t idx1[8 + 3] = {0, 0, 8, 1, 0, 0, 0, 3, 9, 0, 4};
    assert_int_equal(cdl_labels_parse(idx1, sizeof idx1, 10, &labels, &n), CDL_OK);
    assert_true(n == 3 && labels[0] == 9 && labels[2] == 4);
    cdl_labels_free(labels);
    /* an image file is not a label file */
    assert_int_not_equal(cdl_labels_parse(idx, sizeof idx, 10, &labels, &n), CDL_OK);
}

static void test_parts(void **state)
{
    (void)state;
    const char *p0 = "first part", *p1 = "2";
    size_t len = CDL_PARTS_HEADER_BYTES + 8 + strlen(p0) + 8 + strlen(p1);
    uint8_t *b = malloc(len + 1);
    cdl_parts_header(b, 2);
    size_t at = CDL_PARTS_HEADER_BYTES;
    cdl_parts_length(b + at, strlen(p0));
    memcpy(b + at + 8, p0, strlen(p0));
    at += 8 + strlen(p0);
    cdl_parts_length(b + at, strlen(p1));
    memcpy(b + at + 8, p1, strlen(p1));
    /* the layout is the documented one: magic, LE version 1, LE count */
    assert_memory_equal(b, "CDLPARTS\x01\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0", 24);
    cdl_part *parts = NULL;
    size_t n = 0;
    assert_true(cdl_parts_is(b, len));
    assert_int_equal(cdl_parts_parse(b, len, 16, &parts, &n), CDL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(parts[0].len, strlen(p0));
    assert_memory_equal(parts[0].data, p0, strlen(p0));
    assert_int_equal(parts[1].len, 1);
    assert_true(parts[1].data == b + len - 1);
    cdl_parts_free(parts);
    /* every truncation, a trailing byte, too many parts for max_parts */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_not_equal(cdl_parts_parse(b, cut, 16, &parts, &n), CDL_OK);
    b[len] = 0;
    assert_int_equal(cdl_parts_parse(b, len + 1, 16, &parts, &n), CDL_ERR_FORMAT);
    assert_int_equal(cdl_parts_parse(b, len, 1, &parts, &n), CDL_ERR_FORMAT);
    /* version, count 0, a huge count, a zero-length part */
    b[8] = 2;
    assert_int_equal(cdl_parts_parse(b, len, 16, &parts, &n), CDL_ERR_FORMAT);
    b[8] = 1;
    b[16] = 0;
    assert_int_equal(cdl_parts_parse(b, len, 16, &parts, &n), CDL_ERR_FORMAT);
    b[16] = 0xff, b[23] = 0x7f;
    assert_int_equal(cdl_parts_parse(b, len, (size_t)-1, &parts, &n), CDL_ERR_FORMAT);
    b[16] = 2, b[23] = 0;
    cdl_parts_length(b + CDL_PARTS_HEADER_BYTES, 0);
    assert_int_equal(cdl_parts_parse(b, len, 16, &parts, &n), CDL_ERR_FORMAT);
    cdl_parts_length(b + CDL_PARTS_HEADER_BYTES, UINT64_MAX);
    assert_int_equal(cdl_parts_parse(b, len, 16, &parts, &n), CDL_ERR_FORMAT);
    free(b);
}

/* ---- the plan file ---------------------------------------------------------- */

static void test_sha256(void **state)
{
    (void)state;
    char path[] = "/tmp/cdl_test_pipeline_XXXXXX", hex[65], err[256];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abc", 3), 3);
    close(fd);
    assert_int_equal(plan_sha256_file(path, hex, err, sizeof err), 0);
    /* FIPS 180-2, appendix B.1 */
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    unlink(path);
    assert_int_equal(plan_sha256_file(path, hex, err, sizeof err), -1);
}

static char model_path[1024];
static cdl_nn_graph *graph;
static cdl_he_plan *plan;
static plan_record rec;

static int setup_model(void **state)
{
    (void)state;
    const char *src = getenv("CDL_SOURCE_DIR");
    snprintf(model_path, sizeof model_path, "%s/models/mnist_cryptonets.onnx", src ? src : ".");
    if (cdl_nn_load_file(model_path, &graph) != CDL_OK)
        return -1;
    if (cdl_he_plan_new(graph, NULL, &plan) != CDL_OK)
        return -1;
    char hex[65], err[256];
    if (plan_sha256_file(model_path, hex, err, sizeof err) != 0)
        return -1;
    plan_options opt = {0};
    opt.output_bits = 10;
    plan_record_from(plan, graph, &opt, hex, &rec);
    return 0;
}

static int teardown_model(void **state)
{
    (void)state;
    cdl_he_plan_free(plan);
    cdl_nn_graph_free(graph);
    return 0;
}

/* Parse `text`; 0 when accepted. */
static int parse_text(const char *text, plan_record *out, char *err, size_t cap)
{
    return plan_record_parse((const uint8_t *)text, strlen(text), out, err, cap);
}

/* Set path (a.b) of record r's JSON to value (JSON text; NULL deletes the key) and parse it into out. */
static int parse_mutated_rec(const plan_record *r, const char *obj, const char *key, const char *value,
                             plan_record *out, char *err, size_t cap)
{
    char *text = plan_record_json(r, model_path);
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    json_t *o = obj ? json_object_get(root, obj) : root;
    assert_non_null(o);
    if (value)
        json_object_set_new(o, key, json_loads(value, JSON_DECODE_ANY, NULL));
    else
        json_object_del(o, key);
    char *mutated = json_dumps(root, 0);
    int rc = parse_text(mutated, out, err, cap);
    free(mutated);
    json_decref(root);
    free(text);
    return rc;
}

/* Set path (a.b) of the plan's JSON to value (JSON text) and parse it. */
static int parse_mutated(const char *obj, const char *key, const char *value, char *err, size_t cap)
{
    char *text = plan_record_json(&rec, model_path);
    json_t *root = json_loads(text, 0, NULL);
    assert_non_null(root);
    json_t *o = obj ? json_object_get(root, obj) : root;
    assert_non_null(o);
    if (value)
        json_object_set_new(o, key, json_loads(value, JSON_DECODE_ANY, NULL));
    else
        json_object_del(o, key);
    char *mutated = json_dumps(root, 0);
    plan_record r;
    int rc = parse_text(mutated, &r, err, cap);
    free(mutated);
    json_decref(root);
    free(text);
    return rc;
}

static void test_plan_round_trip(void **state)
{
    (void)state;
    /* the record holds what the plan computed */
    const cdl_ckks_param_spec *sp = cdl_he_plan_params(plan);
    assert_int_equal(rec.log_n, sp->log_n);
    assert_int_equal(rec.levels, cdl_he_plan_levels(plan));
    assert_int_equal(rec.input_size, 784);
    assert_int_equal(rec.input_rank, 3);
    assert_true(rec.input_shape[0] == 1 && rec.input_shape[1] == 28 && rec.input_shape[2] == 28);
    assert_int_equal(rec.output_size, 10);
    assert_int_equal(rec.batch_capacity, (size_t)1 << (sp->log_n - 1));
    assert_int_equal(rec.relin_key, 1);
    assert_true(rec.log_qp <= cdl_ckks_max_log_qp(rec.log_n));
    char *text = plan_record_json(&rec, model_path);
    assert_non_null(text);
    plan_record back;
    char err[512];
    assert_int_equal(parse_text(text, &back, err, sizeof err), 0);
    assert_int_equal(plan_record_compare(&back, &rec, err, sizeof err), 0);
    assert_memory_equal(&back.cost, &rec.cost, sizeof rec.cost);
    assert_string_equal(back.sha256, rec.sha256);
    /* options with values round trip too */
    plan_record r2 = rec, b2;
    r2.opt.log_n = 14;
    r2.opt.scale_bits = 40;
    snprintf(r2.opt.approx, sizeof r2.opt.approx, "relu=remez:4:-6:6");
    char *t2 = plan_record_json(&r2, model_path);
    assert_int_equal(parse_text(t2, &b2, err, sizeof err), 0);
    assert_int_equal(b2.opt.log_n, 14);
    assert_int_equal(b2.opt.scale_bits, 40);
    assert_string_equal(b2.opt.approx, "relu=remez:4:-6:6");
    free(t2);
    /* another model's hash, another outcome */
    plan_record other = back;
    other.sha256[0] = other.sha256[0] == '0' ? '1' : '0';
    assert_int_equal(plan_record_compare(&other, &rec, err, sizeof err), -1);
    assert_non_null(strstr(err, "another model"));
    other = back;
    other.levels++;
    assert_int_equal(plan_record_compare(&other, &rec, err, sizeof err), -1);
    other = back;
    other.q_bits[1]++;
    assert_int_equal(plan_record_compare(&other, &rec, err, sizeof err), -1);
    other = back;
    other.cost.adds++;
    assert_int_equal(plan_record_compare(&other, &rec, err, sizeof err), -1);
    free(text);
}

static void test_plan_refusals(void **state)
{
    (void)state;
    char err[512];
    plan_record r;
    assert_int_equal(parse_text("", &r, err, sizeof err), -1);
    assert_int_equal(parse_text("not json", &r, err, sizeof err), -1);
    assert_int_equal(parse_text("[1, 2]", &r, err, sizeof err), -1);
    assert_int_equal(parse_text("{\"format\": \"cryptodl-plan\", \"format\": \"cryptodl-plan\"}", &r, err, sizeof err),
                     -1);
    static const struct {
        const char *obj, *key, *value; /* value NULL: delete the key */
    } bad[] = {
        {NULL, "format", "\"other\""},
        {NULL, "version", "2"},
        {NULL, "version", "\"1\""},
        {NULL, "extra", "1"},
        {NULL, "model", NULL},
        {"model", "sha256", "\"ABC\""},
        {"model", "sha256", "\"c43c30c4bfa5af6f3e9ef6783978748c7b521a17e410d516d0c73fbb93b41d7A\""},
        {"model", "file", "3"},
        {"options", "log_n", "12"},
        {"options", "log_n", "17"},
        {"options", "log_n", "13.5"},
        {"options", "log_n", "\"13\""},
        {"options", "scale_bits", "19"},
        {"options", "scale_bits", "51"},
        {"options", "output_bits", "null"},
        {"options", "output_bits", "31"},
        {"options", "approx", "\"\""},
        {"options", "approx", "\"relu\\n\""},
        {"options", "approx", "5"},
        {"options", "unknown", "1"},
        {NULL, "packing", "\"latency\""},
        {"ckks", "log_n", "9"},
        {"ckks", "q_bits", "[]"},
        {"ckks", "q_bits", "[38, 63]"},
        {"ckks", "q_bits", "[38, \"28\"]"},
        {"ckks", "log_qp", "215"},
        {"ckks", "levels", "-1"},
        {"ckks", "scale_bits", "true"},
        {"input", "shape", "[1, 28, 0]"},
        {"input", "shape", "[1, 28, 28, 1, 1]"},
        {"input", "shape", "[16777216, 16777216]"},
        {"input", "size", "785"},
        {"output", "size", "0"},
        {NULL, "batch_capacity", "4095"},
        {NULL, "batch_capacity", "-1"},
        {"keys", "relinearization", "1"},
        {"keys", "galois", "[1]"},
        {NULL, "ciphertext_memory_bytes", "-5"},
        {NULL, "ciphertext_memory_bytes", "1e300"},
        {"cost", "adds", "-1"},
        {"cost", "adds", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse_mutated(bad[i].obj, bad[i].key, bad[i].value, err, sizeof err) != -1)
            fail_msg("accepted %s.%s = %s", bad[i].obj ? bad[i].obj : "", bad[i].key,
                     bad[i].value ? bad[i].value : "(deleted)");
        assert_true(err[0] != '\0');
    }
    /* the unmutated file passes (the mutation helper itself is sound) */
    assert_int_equal(parse_mutated("options", "log_n", "null", err, sizeof err), 0);
    assert_int_equal(parse_mutated("options", "approx", "\"relu=remez:4:-6:6\"", err, sizeof err), 0);
}

static void test_plan_slots(void **state)
{
    (void)state;
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.packing = CDL_HE_PACKING_SLOTS;
    cdl_he_plan *sp = NULL;
    assert_int_equal(cdl_he_plan_new(graph, &opt, &sp), CDL_OK);
    plan_options po = {0};
    po.output_bits = 10;
    po.packing = CDL_HE_PACKING_SLOTS;
    plan_record sr, back;
    plan_record_from(sp, graph, &po, rec.sha256, &sr);
    const int *steps = NULL;
    size_t n = 0;
    cdl_he_plan_galois_steps(sp, &steps, &n);
    assert_int_equal(sr.packing, CDL_HE_PACKING_SLOTS);
    assert_int_equal(sr.n_galois, n);
    assert_true(n > 1);
    assert_memory_equal(sr.galois, steps, n * sizeof *steps);
    assert_int_equal(sr.galois_key_bytes, cdl_he_plan_galois_key_bytes(sp));
    assert_int_equal(sr.input_ciphertexts, cdl_he_plan_input_ciphertexts(sp));
    assert_int_equal(sr.output_ciphertexts, cdl_he_plan_output_ciphertexts(sp));
    assert_true(sr.batch_capacity < (size_t)1 << (sr.log_n - 1));
    char *text = plan_record_json(&sr, model_path);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"packing\": \"slots\""));
    assert_non_null(strstr(text, "\"plain_mults\"")); /* the layers, with their diagonals */
    sr.plan = NULL; /* the record outlives the plan from here on */
    cdl_he_plan_free(sp);
    char err[512];
    assert_int_equal(parse_text(text, &back, err, sizeof err), 0);
    free(text);
    assert_int_equal(plan_record_compare(&back, &sr, err, sizeof err), 0);
    assert_int_equal(back.opt.packing, CDL_HE_PACKING_SLOTS);
    assert_int_equal(back.n_galois, n);
    /* the batch and slots plans of one model: refused naming both */
    assert_int_equal(plan_record_compare(&back, &rec, err, sizeof err), -1);
    assert_non_null(strstr(err, "slots packing"));
    assert_non_null(strstr(err, "batch packing"));
    /* one step less, one more: refused by the comparison */
    plan_record other = back;
    other.n_galois--;
    assert_int_equal(plan_record_compare(&other, &sr, err, sizeof err), -1);
    assert_non_null(strstr(err, "rotation steps"));
    /* options.packing auto reads back (the outcome is the top-level packing) */
    assert_int_equal(parse_mutated_rec(&sr, "options", "packing", "\"auto\"", &other, err, sizeof err), 0);
    assert_int_equal(other.opt.packing, CDL_HE_PACKING_AUTO);
    assert_int_equal(other.packing, CDL_HE_PACKING_SLOTS);
    static const struct {
        const char *obj, *key, *value;
    } bad[] = {
        {NULL, "packing", "\"auto\""},
        {NULL, "packing", "null"},
        {"options", "packing", "\"latency\""},
        {"options", "packing", "1"},
        {"keys", "galois", "[]"},
        {"keys", "galois", "[2, 1]"},
        {"keys", "galois", "[1, 1]"},
        {"keys", "galois", "[0]"},
        {"keys", "galois", "[4096]"},
        {"keys", "galois", "[1.5]"},
        {"keys", "galois", "3"},
        {"keys", "galois_key_bytes", "-1"},
        {"input", "ciphertexts", NULL},
        {"input", "ciphertexts", "0"},
        {"input", "ciphertexts", "785"},
        {"output", "ciphertexts", "11"},
        {NULL, "batch_capacity", "4097"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse_mutated_rec(&sr, bad[i].obj, bad[i].key, bad[i].value, &other, err, sizeof err) != -1)
            fail_msg("accepted %s.%s = %s", bad[i].obj ? bad[i].obj : "", bad[i].key,
                     bad[i].value ? bad[i].value : "(deleted)");
        assert_true(err[0] != '\0');
    }
    /* in batch packing: Galois key bytes without steps, fewer ciphertexts than values */
    assert_int_equal(parse_mutated("keys", "galois_key_bytes", "5", err, sizeof err), -1);
    assert_int_equal(parse_mutated("input", "ciphertexts", "1", err, sizeof err), -1);
    assert_int_equal(parse_mutated(NULL, "packing", "\"batch\"", err, sizeof err), 0);
}

/* A plan file written before slots packing existed reads as batch and matches a fresh compilation. */
static void test_plan_before_slots(void **state)
{
    (void)state;
    char *text = plan_record_json(&rec, model_path);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(root, "packing")), "batch-simd");
    json_object_del(json_object_get(root, "options"), "packing");
    json_object_del(json_object_get(root, "input"), "ciphertexts");
    json_object_del(json_object_get(root, "output"), "ciphertexts");
    json_object_del(json_object_get(root, "keys"), "galois_key_bytes");
    char *old = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    plan_record back;
    char err[512];
    assert_int_equal(parse_text(old, &back, err, sizeof err), 0);
    free(old);
    assert_int_equal(back.opt.packing, CDL_HE_PACKING_BATCH);
    assert_int_equal(back.packing, CDL_HE_PACKING_BATCH);
    assert_int_equal(back.input_ciphertexts, back.input_size);
    assert_int_equal(back.output_ciphertexts, back.output_size);
    assert_int_equal(plan_record_compare(&back, &rec, err, sizeof err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_valid),       cmocka_unit_test(test_npy_malformed),
        cmocka_unit_test(test_images_and_labels), cmocka_unit_test(test_parts),
        cmocka_unit_test(test_sha256),
    };
    const struct CMUnitTest plan_tests[] = {
        cmocka_unit_test(test_plan_round_trip),
        cmocka_unit_test(test_plan_refusals),
        cmocka_unit_test(test_plan_slots),
        cmocka_unit_test(test_plan_before_slots),
    };
    int failed = cmocka_run_group_tests_name("user files", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("plan file", plan_tests, setup_model, teardown_model);
    return failed;
}
