/*
 * dataset.c: loaders for the evaluation datasets.
 *
 * MNIST / Fashion-MNIST use LeCun's IDX format: a big-endian magic
 * (0x00000803 for uint8 images with 3 dimensions, 0x00000801 for labels),
 * the dimensions as big-endian uint32, then the bytes. CIFAR-10's binary
 * batches are 10,000 records of 1 label byte + 3,072 pixel bytes (R, G, B
 * planes of 32x32). Files may be gzip (zlib) or xz (liblzma) compressed;
 * the format is detected from the first bytes, not the name. All sizes and
 * label ranges are checked before use: these files come from outside.
 */
#include <errno.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/error.h"
#include "core/memory.h"
#include "cryptodl/data.h"

#define IDX_LABELS 0x00000801u
#define IDX_IMAGES 0x00000803u

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

cdl_status cdl_idx_parse(const uint8_t *data, size_t len, uint32_t expected_magic, int *n_dims, uint32_t dims[4],
                         const uint8_t **payload)
{
    if (!data || !n_dims || !dims || !payload)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_idx_parse: NULL argument");
    if (len < 4)
        return cdl_fail(CDL_ERR_FORMAT, "IDX file too short (%zu bytes) for its header", len);
    uint32_t magic = be32(data);
    if (data[0] != 0 || data[1] != 0 || data[2] != 0x08)
        return cdl_fail(CDL_ERR_FORMAT, "not an IDX file of bytes (magic 0x%08x; expected 0x0000080N)", magic);
    int nd = data[3];
    if (nd < 1 || nd > 4)
        return cdl_fail(CDL_ERR_FORMAT, "IDX file with %d dimensions (1 to 4 supported)", nd);
    if (expected_magic && magic != expected_magic)
        return cdl_fail(CDL_ERR_FORMAT, "IDX magic 0x%08x, expected 0x%08x (%s file)", magic, expected_magic,
                        expected_magic == IDX_LABELS ? "a labels" : "an images");
    size_t header = 4 + 4 * (size_t)nd;
    if (len < header)
        return cdl_fail(CDL_ERR_FORMAT, "IDX file truncated in its header");
    size_t total = 1;
    for (int i = 0; i < nd; i++) {
        dims[i] = be32(data + 4 + 4 * i);
        if (dims[i] == 0)
            return cdl_fail(CDL_ERR_FORMAT, "IDX dimension %d is zero", i);
        if (total > (SIZE_MAX / dims[i]))
            return cdl_fail(CDL_ERR_FORMAT, "IDX dimensions overflow");
        total *= dims[i];
    }
    if (len - header != total)
        return cdl_fail(CDL_ERR_FORMAT, "IDX file holds %zu data bytes, its header says %zu (truncated or corrupt)",
                        len - header, total);
    *n_dims = nd;
    *payload = data + header;
    return CDL_OK;
}

size_t cdl_dataset_image_size(const cdl_dataset *ds)
{
    return (size_t)ds->channels * (size_t)ds->height * (size_t)ds->width;
}

void cdl_dataset_free(cdl_dataset *ds)
{
    if (!ds)
        return;
    cdl_free(ds->pixels);
    cdl_free(ds->labels);
    cdl_free(ds);
}

/* ---- reading and decompressing ------------------------------------------ */

static cdl_status grow(uint8_t **buf, size_t *cap, size_t need, size_t max_bytes, const char *path)
{
    if (need <= *cap)
        return CDL_OK;
    if (need > max_bytes)
        return cdl_fail(CDL_ERR_FORMAT, "'%s' is larger than %zu bytes once decompressed", path, max_bytes);
    size_t ncap = *cap ? *cap : 1 << 20;
    while (ncap < need)
        ncap *= 2;
    if (ncap > max_bytes)
        ncap = max_bytes;
    uint8_t *nb = realloc(*buf, ncap);
    if (!nb)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory reading '%s'", path);
    *buf = nb;
    *cap = ncap;
    return CDL_OK;
}

static cdl_status read_gz(const char *path, size_t max_bytes, uint8_t **out, size_t *len)
{
    /* gzread also reads plain files transparently. */
    gzFile f = gzopen(path, "rb");
    if (!f)
        return cdl_fail(CDL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0;
    cdl_status st = CDL_OK;
    for (;;) {
        if ((st = grow(&buf, &cap, n + 1, max_bytes + 1, path)) != CDL_OK)
            break;
        size_t want = cap - n > (1u << 30) ? (1u << 30) : cap - n;
        int r = gzread(f, buf + n, (unsigned)want);
        if (r < 0) {
            int e;
            st = cdl_fail(CDL_ERR_FORMAT, "'%s': corrupt gzip data (%s)", path, gzerror(f, &e));
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > max_bytes) {
            st = cdl_fail(CDL_ERR_FORMAT, "'%s' is larger than %zu bytes once decompressed", path, max_bytes);
            break;
        }
    }
    gzclose(f);
    if (st != CDL_OK) {
        free(buf);
        return st;
    }
    *out = buf;
    *len = n;
    return CDL_OK;
}

static cdl_status read_xz(const char *path, size_t max_bytes, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cdl_fail(CDL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    lzma_stream strm = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&strm, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
        fclose(f);
        return cdl_fail(CDL_ERR_NO_MEMORY, "cannot start the xz decoder");
    }
    uint8_t inbuf[1 << 16];
    uint8_t *buf = NULL;
    size_t cap = 0;
    cdl_status st = CDL_OK;
    lzma_action action = LZMA_RUN;
    strm.avail_in = 0;
    for (;;) {
        if (strm.avail_in == 0 && action == LZMA_RUN) {
            strm.next_in = inbuf;
            strm.avail_in = fread(inbuf, 1, sizeof inbuf, f);
            if (ferror(f)) {
                st = cdl_fail(CDL_ERR_IO, "error reading '%s'", path);
                break;
            }
            if (feof(f))
                action = LZMA_FINISH;
        }
        if (strm.avail_out == 0) {
            size_t used = strm.total_out;
            if ((st = grow(&buf, &cap, used + 1, max_bytes + 1, path)) != CDL_OK)
                break;
            strm.next_out = buf + used;
            strm.avail_out = cap - used;
        }
        lzma_ret r = lzma_code(&strm, action);
        if (r == LZMA_STREAM_END)
            break;
        if (r != LZMA_OK) {
            st = cdl_fail(CDL_ERR_FORMAT, "'%s': corrupt xz data (liblzma error %d)", path, (int)r);
            break;
        }
        if (strm.total_out > max_bytes) {
            st = cdl_fail(CDL_ERR_FORMAT, "'%s' is larger than %zu bytes once decompressed", path, max_bytes);
            break;
        }
    }
    size_t n = (size_t)strm.total_out;
    lzma_end(&strm);
    fclose(f);
    if (st != CDL_OK) {
        free(buf);
        return st;
    }
    *out = buf ? buf : malloc(1);
    if (!*out)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory");
    *len = n;
    return CDL_OK;
}

cdl_status cdl_read_file_decompressed(const char *path, size_t max_bytes, uint8_t **out, size_t *len)
{
    if (!path || !out || !len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_read_file_decompressed: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return cdl_fail(CDL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    uint8_t head[6] = {0};
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    static const uint8_t xz_magic[6] = {0xFD, '7', 'z', 'X', 'Z', 0x00};
    if (got == 6 && !memcmp(head, xz_magic, 6))
        return read_xz(path, max_bytes, out, len);
    return read_gz(path, max_bytes, out, len);
}

/* ---- locating files ------------------------------------------------------ */

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int dir_exists(const char *path)
{
    struct stat st;
    return path && path[0] && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* dir/sub/base, base.gz or base.xz: first that exists. */
static int find_file(const char *dir, const char *sub, const char *base, char *out, size_t cap)
{
    static const char *const ext[] = {"", ".gz", ".xz"};
    for (int i = 0; i < 3; i++) {
        snprintf(out, cap, "%s/%s/%s%s", dir, sub, base, ext[i]);
        if (file_exists(out))
            return 1;
    }
    return 0;
}

#ifndef CDL_SOURCE_DIR_DEFAULT
#define CDL_SOURCE_DIR_DEFAULT "."
#endif

/* ---- loaders ------------------------------------------------------------- */

static cdl_status load_idx_pair(cdl_dataset *ds, const char *dir, const char *sub, const char *split, size_t limit)
{
    char ipath[1024], lpath[1024];
    const char *pre = !strcmp(split, "train") ? "train" : "t10k";
    char ibase[64], lbase[64];
    snprintf(ibase, sizeof ibase, "%s-images-idx3-ubyte", pre);
    snprintf(lbase, sizeof lbase, "%s-labels-idx1-ubyte", pre);
    if (!find_file(dir, sub, ibase, ipath, sizeof ipath) || !find_file(dir, sub, lbase, lpath, sizeof lpath))
        return cdl_fail(CDL_ERR_IO, "%s: %s/%s/%s(.gz) or its labels file not found: pass --data-dir with the folder "
                                    "that holds %s/", ds->name, dir, sub, ibase, sub);
    uint8_t *ib = NULL, *lb = NULL;
    size_t il = 0, ll = 0;
    cdl_status st = cdl_read_file_decompressed(ipath, CDL_DATA_MAX_FILE_BYTES, &ib, &il);
    if (st == CDL_OK)
        st = cdl_read_file_decompressed(lpath, CDL_DATA_MAX_FILE_BYTES, &lb, &ll);
    int ndi = 0, ndl = 0;
    uint32_t di[4], dl[4];
    const uint8_t *ip = NULL, *lp = NULL;
    if (st == CDL_OK && (st = cdl_idx_parse(ib, il, IDX_IMAGES, &ndi, di, &ip)) != CDL_OK)
        cdl_fail(st, "%s: %s", ipath, cdl_last_error());
    if (st == CDL_OK && (st = cdl_idx_parse(lb, ll, IDX_LABELS, &ndl, dl, &lp)) != CDL_OK)
        cdl_fail(st, "%s: %s", lpath, cdl_last_error());
    if (st == CDL_OK && (ndi != 3 || ndl != 1 || di[0] != dl[0]))
        st = cdl_fail(CDL_ERR_FORMAT, "%s: %u images but %u labels (or wrong dimensions)", ds->name, di[0], dl[0]);
    if (st == CDL_OK && (di[1] > 4096 || di[2] > 4096))
        st = cdl_fail(CDL_ERR_FORMAT, "%s: images of %ux%u are implausible", ipath, di[1], di[2]);
    if (st == CDL_OK) {
        size_t n = di[0];
        if (limit && limit < n)
            n = limit;
        ds->n = n;
        ds->channels = 1;
        ds->height = (int)di[1];
        ds->width = (int)di[2];
        size_t per = cdl_dataset_image_size(ds);
        ds->pixels = cdl_alloc_array(n, per * sizeof(float));
        ds->labels = cdl_alloc_array(n, 1);
        if (!ds->pixels || !ds->labels)
            st = CDL_ERR_NO_MEMORY;
        for (size_t i = 0; st == CDL_OK && i < n; i++) {
            if (lp[i] >= ds->n_classes) {
                st = cdl_fail(CDL_ERR_FORMAT, "%s: label %u of image %zu is out of range 0..%d", lpath, lp[i], i,
                              ds->n_classes - 1);
                break;
            }
            ds->labels[i] = lp[i];
            for (size_t k = 0; k < per; k++)
                ds->pixels[i * per + k] = (float)ip[i * per + k] / 255.0f;
        }
    }
    free(ib);
    free(lb);
    return st;
}

cdl_status cdl_cifar_parse(const uint8_t *data, size_t len, size_t max_records, uint8_t *labels, float *pixels,
                           size_t *records)
{
    if ((!data && len) || !records || (max_records && (!labels || !pixels)))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_cifar_parse: NULL argument");
    *records = 0;
    if (len == 0 || len % CDL_CIFAR_RECORD_BYTES != 0 || len / CDL_CIFAR_RECORD_BYTES > CDL_CIFAR_MAX_RECORDS)
        return cdl_fail(CDL_ERR_FORMAT, "%zu bytes is not a whole number (1 to %d) of %d-byte CIFAR-10 records", len,
                        CDL_CIFAR_MAX_RECORDS, CDL_CIFAR_RECORD_BYTES);
    const size_t recs = len / CDL_CIFAR_RECORD_BYTES;
    for (size_t r = 0; r < recs; r++) /* every label checked, also past max_records */
        if (data[r * CDL_CIFAR_RECORD_BYTES] > 9)
            return cdl_fail(CDL_ERR_FORMAT, "label %u of record %zu is out of range 0..9",
                            (unsigned)data[r * CDL_CIFAR_RECORD_BYTES], r);
    const size_t n = recs < max_records ? recs : max_records;
    for (size_t r = 0; r < n; r++) {
        const uint8_t *rec = data + r * CDL_CIFAR_RECORD_BYTES;
        labels[r] = rec[0];
        for (size_t k = 0; k < CDL_CIFAR_RECORD_BYTES - 1; k++)
            pixels[r * (CDL_CIFAR_RECORD_BYTES - 1) + k] = (float)rec[1 + k] / 255.0f;
    }
    *records = n;
    return CDL_OK;
}

static cdl_status load_cifar(cdl_dataset *ds, const char *dir, const char *split, size_t limit)
{
    const char *sub = "cifar-10-batches-bin";
    int nb = !strcmp(split, "train") ? 5 : 1;
    size_t cap_n = (size_t)nb * CDL_CIFAR_MAX_RECORDS;
    if (limit && limit < cap_n)
        cap_n = limit;
    ds->channels = 3;
    ds->height = ds->width = 32;
    ds->pixels = cdl_alloc_array(cap_n, 3072 * sizeof(float));
    ds->labels = cdl_alloc_array(cap_n, 1);
    if (!ds->pixels || !ds->labels)
        return CDL_ERR_NO_MEMORY;
    ds->n = 0;
    for (int b = 0; b < nb && ds->n < cap_n; b++) {
        char base[64], path[1024];
        if (nb == 1)
            snprintf(base, sizeof base, "test_batch.bin");
        else
            snprintf(base, sizeof base, "data_batch_%d.bin", b + 1);
        if (!find_file(dir, sub, base, path, sizeof path))
            return cdl_fail(CDL_ERR_IO, "cifar-10: %s/%s/%s(.xz) not found: pass --data-dir with the folder that holds %s/",
                            dir, sub, base, sub);
        uint8_t *buf = NULL;
        size_t len = 0, got = 0;
        CDL_TRY(cdl_read_file_decompressed(path, CDL_DATA_MAX_FILE_BYTES, &buf, &len));
        cdl_status st = cdl_cifar_parse(buf, len, cap_n - ds->n, ds->labels + ds->n, ds->pixels + ds->n * 3072, &got);
        free(buf);
        if (st != CDL_OK) {
            char why[256];
            snprintf(why, sizeof why, "%s", cdl_last_error()); /* cdl_fail rewrites that buffer */
            return cdl_fail(st, "%s: %s", path, why);
        }
        ds->n += got;
    }
    return CDL_OK;
}

cdl_status cdl_dataset_load(const char *name, const char *data_dir, const char *split, size_t limit, cdl_dataset **out)
{
    if (!name || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_dataset_load: name and out must not be NULL");
    *out = NULL;
    if (!split)
        split = "test";
    if (strcmp(split, "test") && strcmp(split, "train"))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "unknown split '%s': use test or train", split);
    const char *sub;
    int cifar = 0;
    if (!strcmp(name, "mnist"))
        sub = "mnist";
    else if (!strcmp(name, "fashion-mnist") || !strcmp(name, "fashion_mnist"))
        sub = "fashion-mnist";
    else if (!strcmp(name, "cifar-10") || !strcmp(name, "cifar10"))
        sub = "cifar-10-batches-bin", cifar = 1;
    else
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "unknown dataset '%s': use mnist, fashion-mnist or cifar-10", name);

    /* Candidate folders, most specific first. */
    const char *cands[6];
    int nc = 0;
    char src_data[600], def_data[600];
    if (data_dir && data_dir[0]) {
        cands[nc++] = data_dir;
    } else {
        const char *env = getenv("CDL_DATA_DIR");
        if (env && env[0])
            cands[nc++] = env;
        cands[nc++] = "../shared/data";
        if (!cifar && !strcmp(sub, "mnist") && !strcmp(split, "test")) {
            const char *src = getenv("CDL_SOURCE_DIR");
            if (src && src[0]) {
                snprintf(src_data, sizeof src_data, "%s/data", src);
                cands[nc++] = src_data;
            }
            snprintf(def_data, sizeof def_data, "%s/data", CDL_SOURCE_DIR_DEFAULT);
            cands[nc++] = def_data;
            cands[nc++] = "data";
        }
    }
    const char *dir = NULL;
    char probe[1024];
    for (int i = 0; i < nc && !dir; i++) {
        char sd[700];
        snprintf(sd, sizeof sd, "%s/%s", cands[i], sub);
        if (dir_exists(sd)) {
            if (cifar)
                dir = find_file(cands[i], sub, !strcmp(split, "train") ? "data_batch_1.bin" : "test_batch.bin", probe,
                                sizeof probe) ? cands[i] : NULL;
            else
                dir = find_file(cands[i], sub, !strcmp(split, "train") ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte",
                                probe, sizeof probe) ? cands[i] : NULL;
        }
    }
    if (!dir)
        return cdl_fail(CDL_ERR_IO, "%s (%s split) not found in %s%s: pass --data-dir DIR where DIR/%s/ holds the files",
                        name, split, data_dir && data_dir[0] ? data_dir : "$CDL_DATA_DIR, ../shared/data",
                        data_dir && data_dir[0] ? "" : (!cifar && !strcmp(sub, "mnist") ? " or the shipped data/" : ""),
                        sub);
    cdl_dataset *ds = cdl_calloc_array(1, sizeof *ds);
    if (!ds)
        return CDL_ERR_NO_MEMORY;
    snprintf(ds->name, sizeof ds->name, "%s", cifar ? "cifar-10" : sub);
    snprintf(ds->source, sizeof ds->source, "%s/%s", dir, sub);
    ds->n_classes = 10;
    cdl_status st = cifar ? load_cifar(ds, dir, split, limit) : load_idx_pair(ds, dir, sub, split, limit);
    if (st != CDL_OK) {
        cdl_dataset_free(ds);
        return st;
    }
    *out = ds;
    return CDL_OK;
}
