/* bytes.c: little-endian byte streams, the object envelope, file helpers. */
#include "core/bytes.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zstd.h>
#include <unistd.h>

#include "core/error.h"
#include "core/memory.h"

static const uint8_t envelope_magic[4] = {'C', 'D', 'L', 0};

const char *cdl_object_type_name(uint16_t type)
{
    static const char *names[] = {"unknown",  "parameters",  "secret key", "public key", "relinearization key",
                                  "Galois keys", "plaintext", "ciphertext", "plan", "bootstrapping keys"};
    return type <= CDL_OBJ_TYPE_MAX ? names[type] : "unknown";
}

void cdl_free_bytes(uint8_t *data) { free(data); }

/* ---- writer ---- */

void cdl_writer_init(cdl_writer *w) { memset(w, 0, sizeof *w); }

void cdl_writer_free(cdl_writer *w)
{
    if (w->data)
        cdl_secure_free(w->data, w->cap);
    memset(w, 0, sizeof *w);
}

cdl_status cdl_writer_status(const cdl_writer *w) { return w->status; }

static int writer_reserve(cdl_writer *w, size_t extra)
{
    if (w->status != CDL_OK)
        return -1;
    if (extra <= w->cap - w->len)
        return 0;
    if (extra > SIZE_MAX / 2 - w->len) {
        w->status = cdl_fail(CDL_ERR_NO_MEMORY, "serialized object too large");
        return -1;
    }
    size_t cap = w->cap ? w->cap : 256;
    while (cap - w->len < extra)
        cap *= 2;
    uint8_t *p = malloc(cap);
    if (!p) {
        w->status = cdl_fail(CDL_ERR_NO_MEMORY, "out of memory serializing (%zu bytes)", cap);
        return -1;
    }
    if (w->data) {
        memcpy(p, w->data, w->len);
        cdl_secure_free(w->data, w->cap);
    }
    w->data = p;
    w->cap = cap;
    return 0;
}

void cdl_write_bytes(cdl_writer *w, const void *src, size_t len)
{
    if (len == 0 || writer_reserve(w, len) != 0)
        return;
    memcpy(w->data + w->len, src, len);
    w->len += len;
}

static void write_le(cdl_writer *w, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    cdl_write_bytes(w, b, (size_t)bytes);
}

void cdl_write_u8(cdl_writer *w, uint8_t v) { write_le(w, v, 1); }
void cdl_write_u16(cdl_writer *w, uint16_t v) { write_le(w, v, 2); }
void cdl_write_u32(cdl_writer *w, uint32_t v) { write_le(w, v, 4); }
void cdl_write_u64(cdl_writer *w, uint64_t v) { write_le(w, v, 8); }

void cdl_write_f64(cdl_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    write_le(w, bits, 8);
}

void cdl_write_u64_array(cdl_writer *w, const uint64_t *src, size_t count)
{
    size_t bytes;
    if (cdl_mul_size(count, 8, &bytes) != 0) {
        if (w->status == CDL_OK)
            w->status = cdl_fail(CDL_ERR_NO_MEMORY, "serialized array of %zu words too large", count);
        return;
    }
    if (writer_reserve(w, bytes) != 0)
        return;
    uint8_t *dst = w->data + w->len;
    for (size_t i = 0; i < count; i++)
        for (int k = 0; k < 8; k++)
            dst[8 * i + (size_t)k] = (uint8_t)(src[i] >> (8 * k));
    w->len += bytes;
}

/* ---- reader ---- */

void cdl_reader_init(cdl_reader *r, const uint8_t *data, size_t len)
{
    r->data = data;
    r->len = data ? len : 0;
    r->pos = 0;
}

size_t cdl_reader_remaining(const cdl_reader *r) { return r->len - r->pos; }

cdl_status cdl_read_bytes(cdl_reader *r, void *dst, size_t len)
{
    if (len > cdl_reader_remaining(r))
        return cdl_fail(CDL_ERR_FORMAT, "truncated data: need %zu more bytes at offset %zu, have %zu", len, r->pos,
                        cdl_reader_remaining(r));
    if (len)
        memcpy(dst, r->data + r->pos, len);
    r->pos += len;
    return CDL_OK;
}

static cdl_status read_le(cdl_reader *r, uint64_t *v, int bytes)
{
    uint8_t b[8] = {0};
    CDL_TRY(cdl_read_bytes(r, b, (size_t)bytes));
    uint64_t x = 0;
    for (int i = bytes - 1; i >= 0; i--)
        x = (x << 8) | b[i];
    *v = x;
    return CDL_OK;
}

cdl_status cdl_read_u8(cdl_reader *r, uint8_t *v)
{
    uint64_t x;
    CDL_TRY(read_le(r, &x, 1));
    *v = (uint8_t)x;
    return CDL_OK;
}

cdl_status cdl_read_u16(cdl_reader *r, uint16_t *v)
{
    uint64_t x;
    CDL_TRY(read_le(r, &x, 2));
    *v = (uint16_t)x;
    return CDL_OK;
}

cdl_status cdl_read_u32(cdl_reader *r, uint32_t *v)
{
    uint64_t x;
    CDL_TRY(read_le(r, &x, 4));
    *v = (uint32_t)x;
    return CDL_OK;
}

cdl_status cdl_read_u64(cdl_reader *r, uint64_t *v) { return read_le(r, v, 8); }

cdl_status cdl_read_f64(cdl_reader *r, double *v)
{
    uint64_t bits;
    CDL_TRY(read_le(r, &bits, 8));
    double d;
    memcpy(&d, &bits, sizeof d);
    if (!isfinite(d))
        return cdl_fail(CDL_ERR_FORMAT, "non-finite floating-point value at offset %zu", r->pos - 8);
    *v = d;
    return CDL_OK;
}

cdl_status cdl_read_u64_array(cdl_reader *r, uint64_t *dst, size_t count)
{
    size_t bytes;
    if (cdl_mul_size(count, 8, &bytes) != 0 || bytes > cdl_reader_remaining(r))
        return cdl_fail(CDL_ERR_FORMAT, "truncated data: %zu words expected at offset %zu", count, r->pos);
    const uint8_t *src = r->data + r->pos;
    for (size_t i = 0; i < count; i++) {
        uint64_t x = 0;
        for (int k = 7; k >= 0; k--)
            x = (x << 8) | src[8 * i + (size_t)k];
        dst[i] = x;
    }
    r->pos += bytes;
    return CDL_OK;
}

cdl_status cdl_reader_expect_end(const cdl_reader *r)
{
    if (r->pos != r->len)
        return cdl_fail(CDL_ERR_FORMAT, "%zu unexpected trailing bytes after offset %zu", r->len - r->pos, r->pos);
    return CDL_OK;
}

/* ---- envelope ---- */

cdl_status cdl_envelope_wrap(uint16_t type, const uint8_t param_hash[CDL_HASH_BYTES], const uint8_t *payload,
                             size_t payload_len, int compression, uint8_t **out, size_t *out_len)
{
    if (!out || !out_len || (!payload && payload_len))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "serialize: NULL argument");
    if (compression < 0 || compression > 19)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "compression level %d out of range (0 = none, 1..19 = zstd)",
                        compression);
    *out = NULL;
    *out_len = 0;
    uint8_t *stored = (uint8_t *)payload;
    size_t stored_len = payload_len;
    uint8_t *compressed = NULL;
    size_t compressed_cap = 0;
    if (compression > 0) {
        compressed_cap = ZSTD_compressBound(payload_len);
        compressed = malloc(compressed_cap ? compressed_cap : 1);
        if (!compressed)
            return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory compressing %zu bytes", payload_len);
        size_t got = ZSTD_compress(compressed, compressed_cap, payload, payload_len, compression);
        if (ZSTD_isError(got)) {
            cdl_secure_free(compressed, compressed_cap);
            return cdl_fail(CDL_ERR_INTERNAL, "zstd compression failed: %s", ZSTD_getErrorName(got));
        }
        stored = compressed;
        stored_len = got;
    }
    if (stored_len > SIZE_MAX - CDL_ENVELOPE_BYTES) {
        cdl_secure_free(compressed, compressed_cap);
        return cdl_fail(CDL_ERR_NO_MEMORY, "serialized object too large");
    }
    size_t total = CDL_ENVELOPE_BYTES + stored_len;
    uint8_t *buf = malloc(total);
    if (!buf) {
        cdl_secure_free(compressed, compressed_cap);
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory serializing (%zu bytes)", total);
    }
    uint8_t *p = buf;
    memcpy(p, envelope_magic, 4);
    p += 4;
    p[0] = (uint8_t)CDL_FORMAT_VERSION;
    p[1] = (uint8_t)(CDL_FORMAT_VERSION >> 8);
    p[2] = (uint8_t)type;
    p[3] = (uint8_t)(type >> 8);
    p += 4;
    if (param_hash)
        memcpy(p, param_hash, CDL_HASH_BYTES);
    else
        memset(p, 0, CDL_HASH_BYTES);
    p += CDL_HASH_BYTES;
    p[0] = compression > 0 ? 1 : 0;
    p[1] = p[2] = p[3] = 0;
    p += 4;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)stored_len >> (8 * i));
    p += 8;
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)payload_len >> (8 * i));
    p += 8;
    crypto_generichash(p, CDL_HASH_BYTES, stored, stored_len, NULL, 0);
    p += CDL_HASH_BYTES;
    memset(p, 0, 4);
    p += 4;
    memcpy(p, stored, stored_len);
    /* The compressed copy is as sensitive as the payload it encodes. */
    if (compressed)
        cdl_secure_free(compressed, compressed_cap);
    *out = buf;
    *out_len = total;
    return CDL_OK;
}

cdl_status cdl_envelope_open(const uint8_t *data, size_t len, uint16_t expected_type,
                             const uint8_t expected_hash[CDL_HASH_BYTES], size_t max_raw_len, uint8_t **payload,
                             size_t *payload_len, uint8_t hash_out[CDL_HASH_BYTES])
{
    if (!payload || !payload_len || (!data && len))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "load: NULL argument");
    *payload = NULL;
    *payload_len = 0;
    const char *want = cdl_object_type_name(expected_type);
    if (len < CDL_ENVELOPE_BYTES)
        return cdl_fail(CDL_ERR_FORMAT, "not a cryptodl %s: %zu bytes is shorter than the %d-byte header", want, len,
                        CDL_ENVELOPE_BYTES);
    if (memcmp(data, envelope_magic, 4) != 0)
        return cdl_fail(CDL_ERR_FORMAT, "not a cryptodl %s: bad magic bytes", want);
    uint16_t version = (uint16_t)(data[4] | (data[5] << 8));
    uint16_t type = (uint16_t)(data[6] | (data[7] << 8));
    if (version != CDL_FORMAT_VERSION)
        return cdl_fail(CDL_ERR_FORMAT, "unsupported format version %u (this build reads version %d)", version,
                        CDL_FORMAT_VERSION);
    if (type != expected_type)
        return cdl_fail(CDL_ERR_FORMAT, "expected a %s but the data holds a %s (type %u)", want,
                        cdl_object_type_name(type), type);
    const uint8_t *hash = data + 8;
    if (expected_hash && sodium_memcmp(hash, expected_hash, CDL_HASH_BYTES) != 0)
        return cdl_fail(CDL_ERR_MISMATCH, "this %s was made for other CKKS parameters (parameter hash differs)", want);
    if (hash_out)
        memcpy(hash_out, hash, CDL_HASH_BYTES);
    const uint8_t *p = data + 8 + CDL_HASH_BYTES;
    uint8_t compression = p[0];
    if (compression > 1 || p[1] || p[2] || p[3])
        return cdl_fail(CDL_ERR_FORMAT, "unknown compression mode %u", compression);
    p += 4;
    uint64_t stored_len = 0, raw_len = 0;
    for (int i = 7; i >= 0; i--)
        stored_len = (stored_len << 8) | p[i];
    p += 8;
    for (int i = 7; i >= 0; i--)
        raw_len = (raw_len << 8) | p[i];
    p += 8;
    const uint8_t *checksum = p;
    p += CDL_HASH_BYTES;
    if (p[0] || p[1] || p[2] || p[3])
        return cdl_fail(CDL_ERR_FORMAT, "reserved header bytes are not zero");
    p += 4;
    if (stored_len != len - CDL_ENVELOPE_BYTES)
        return cdl_fail(CDL_ERR_FORMAT, "%s payload length says %llu bytes but %zu follow the header", want,
                        (unsigned long long)stored_len, len - CDL_ENVELOPE_BYTES);
    if (raw_len > max_raw_len)
        return cdl_fail(CDL_ERR_FORMAT, "%s payload of %llu bytes exceeds the limit of %zu", want,
                        (unsigned long long)raw_len, max_raw_len);
    if (!compression && raw_len != stored_len)
        return cdl_fail(CDL_ERR_FORMAT, "uncompressed %s: raw and stored lengths differ", want);
    uint8_t digest[CDL_HASH_BYTES];
    crypto_generichash(digest, sizeof digest, p, (size_t)stored_len, NULL, 0);
    if (sodium_memcmp(digest, checksum, CDL_HASH_BYTES) != 0)
        return cdl_fail(CDL_ERR_FORMAT, "%s checksum mismatch: the data is corrupted", want);
    uint8_t *out = malloc(raw_len ? (size_t)raw_len : 1);
    if (!out)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory loading a %s (%llu bytes)", want,
                        (unsigned long long)raw_len);
    if (compression) {
        size_t got = ZSTD_decompress(out, (size_t)raw_len, p, (size_t)stored_len);
        if (ZSTD_isError(got) || got != raw_len) {
            free(out);
            return cdl_fail(CDL_ERR_FORMAT, "%s: zstd payload does not decompress to the stated %llu bytes", want,
                            (unsigned long long)raw_len);
        }
    } else if (raw_len) {
        memcpy(out, p, (size_t)raw_len);
    }
    *payload = out;
    *payload_len = (size_t)raw_len;
    return CDL_OK;
}

/* ---- files ---- */

cdl_status cdl_read_file(const char *path, size_t max_len, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cdl_fail(CDL_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory reading '%s'", path);
    }
    for (;;) {
        if (n == cap) {
            if (n > max_len) {
                free(buf);
                fclose(f);
                return cdl_fail(CDL_ERR_IO, "'%s' is larger than the limit of %zu bytes", path, max_len);
            }
            /* Grow up to one byte past the limit: enough to tell "too large". */
            size_t next = cap <= max_len / 2 ? cap * 2 : max_len + 1;
            uint8_t *bigger = realloc(buf, next);
            if (!bigger) {
                free(buf);
                fclose(f);
                return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory reading '%s'", path);
            }
            buf = bigger;
            cap = next;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return cdl_fail(CDL_ERR_IO, "error reading '%s'", path);
    }
    if (n > max_len) {
        free(buf);
        return cdl_fail(CDL_ERR_IO, "'%s' is larger than the limit of %zu bytes", path, max_len);
    }
    *data = buf;
    *len = n;
    return CDL_OK;
}

cdl_status cdl_write_file(const char *path, const uint8_t *data, size_t len)
{
    /* Write a fresh temporary file next to the target (mkstemp: unique name,
     * created exclusively, so no symlink is followed), flush it to disk, then
     * rename it over the target: a failure never leaves half a file. */
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 12);
    if (!tmp)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory");
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", 12);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        cdl_status st = cdl_fail(CDL_ERR_IO, "cannot create a temporary file next to '%s': %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    int err = 0;
    size_t done = 0;
    while (done < len && !err) {
        ssize_t put = write(fd, data + done, len - done);
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            err = put < 0 ? errno : EIO;
        else
            done += (size_t)put;
    }
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        remove(tmp);
        free(tmp);
        return cdl_fail(CDL_ERR_IO, "cannot write '%s': %s", path, strerror(err));
    }
    free(tmp);
    return CDL_OK;
}
