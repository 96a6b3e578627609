/*
 * record.c: encode and parse the descriptor of a stored session (record.h).
 * The parser reads bytes that come back from a shared store, which other
 * processes can write: it checks the length first, then every field, and
 * never reads past `len`.
 */
#include <string.h>

#include "core/error.h"
#include "serve/record.h"

static const uint8_t MAGIC[8] = {'C', 'D', 'L', 'S', 'E', 'S', 'S', 1};

int serve_valid_name(const char *s, size_t n)
{
    if (n == 0 || n >= CDL_SERVE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return 0;
    }
    return 1;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

cdl_status serve_record_chunking(serve_record *r, uint64_t key_bytes, uint32_t chunk_size)
{
    if (key_bytes == 0 || chunk_size == 0 || chunk_size > SERVE_RECORD_MAX_CHUNK)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "session record: %llu key bytes in chunks of %u",
                        (unsigned long long)key_bytes, (unsigned)chunk_size);
    uint64_t n = key_bytes / chunk_size + (key_bytes % chunk_size != 0);
    if (n > UINT32_MAX)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "session record: too many chunks");
    r->key_bytes = key_bytes;
    r->chunk_size = chunk_size;
    r->chunks = (uint32_t)n;
    return CDL_OK;
}

cdl_status serve_record_encode(const serve_record *r, uint8_t out[SERVE_RECORD_MAX], size_t *len)
{
    size_t n = strnlen(r->model, CDL_SERVE_NAME_MAX);
    if (!serve_valid_name(r->model, n) || r->seq == 0 || r->key_bytes == 0 || r->chunk_size == 0 ||
        r->chunk_size > SERVE_RECORD_MAX_CHUNK)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "session record: invalid fields");
    memcpy(out, MAGIC, 8);
    put64(out + 8, r->seq);
    memcpy(out + 16, r->param_hash, SERVE_RECORD_HASH_BYTES);
    put64(out + 48, r->key_bytes);
    put32(out + 56, r->chunks);
    put32(out + 60, r->chunk_size);
    out[64] = (uint8_t)n;
    memcpy(out + SERVE_RECORD_FIXED, r->model, n);
    *len = SERVE_RECORD_FIXED + n;
    return CDL_OK;
}

cdl_status serve_record_parse(const uint8_t *data, size_t len, serve_record *r)
{
    memset(r, 0, sizeof *r);
    if (!data || len < SERVE_RECORD_FIXED)
        return cdl_fail(CDL_ERR_FORMAT, "session record: %zu bytes, at least %d expected", len, SERVE_RECORD_FIXED);
    if (memcmp(data, MAGIC, 7) != 0)
        return cdl_fail(CDL_ERR_FORMAT, "session record: bad magic (not written by cryptodl serve)");
    if (data[7] != MAGIC[7])
        return cdl_fail(CDL_ERR_FORMAT, "session record: format version %u, this server reads version %u",
                        (unsigned)data[7], (unsigned)MAGIC[7]);
    size_t n = data[64];
    if (len != SERVE_RECORD_FIXED + n)
        return cdl_fail(CDL_ERR_FORMAT, "session record: %zu bytes for a model name of %zu", len, n);
    if (!serve_valid_name((const char *)data + SERVE_RECORD_FIXED, n))
        return cdl_fail(CDL_ERR_FORMAT, "session record: invalid model name");
    r->seq = get64(data + 8);
    memcpy(r->param_hash, data + 16, SERVE_RECORD_HASH_BYTES);
    uint64_t key_bytes = get64(data + 48);
    uint32_t chunks = get32(data + 56), chunk_size = get32(data + 60);
    if (r->seq == 0)
        return cdl_fail(CDL_ERR_FORMAT, "session record: sequence number 0");
    serve_record expect;
    memset(&expect, 0, sizeof expect);
    if (key_bytes == 0 || chunk_size == 0 || chunk_size > SERVE_RECORD_MAX_CHUNK ||
        serve_record_chunking(&expect, key_bytes, chunk_size) != CDL_OK || expect.chunks != chunks)
        return cdl_fail(CDL_ERR_FORMAT, "session record: %llu key bytes do not make %u chunks of %u",
                        (unsigned long long)key_bytes, (unsigned)chunks, (unsigned)chunk_size);
    r->key_bytes = key_bytes;
    r->chunks = chunks;
    r->chunk_size = chunk_size;
    memcpy(r->model, data + SERVE_RECORD_FIXED, n);
    r->model[n] = '\0';
    return CDL_OK;
}
