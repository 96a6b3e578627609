/*
 * fuzz_serve_record.c: libFuzzer target for serve_record_parse, the parser of
 * a stored session's descriptor (src/serve/record.c), which the service reads
 * back from a shared store (Redis) that other processes can write. A record
 * that parses must satisfy every invariant the store relies on, and encode back
 * to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    serve_record r;
    if (serve_record_parse(data, size, &r) != CDL_OK)
        return 0;
    size_t n = strlen(r.model);
    if (r.seq == 0 || r.key_bytes == 0 || r.chunk_size == 0 || r.chunk_size > SERVE_RECORD_MAX_CHUNK ||
        !serve_valid_name(r.model, n) || (uint64_t)r.chunks * r.chunk_size < r.key_bytes ||
        (uint64_t)(r.chunks - 1) * r.chunk_size >= r.key_bytes)
        abort();
    uint8_t back[SERVE_RECORD_MAX];
    size_t len = 0;
    if (serve_record_encode(&r, back, &len) != CDL_OK || len != size || memcmp(back, data, size) != 0)
        abort();
    return 0;
}
