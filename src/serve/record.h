/*
 * record.h: the small descriptor ("meta" field) of a session kept in a shared
 * store (Redis, src/serve/redis.c): which model the keys are for, the CKKS
 * parameter hash they were made with, the session's sequence number (its name
 * in the access logs of every replica) and how the key bytes are cut into
 * chunks. The bytes come back from the store, so the parser checks every field
 * as untrusted input (tests/fuzz/fuzz_serve_record.c).
 *
 * Layout (little-endian), SERVE_RECORD_FIXED + name_len bytes exactly:
 *   0   8  "CDLSESS" and the format version (1)
 *   8   8  sequence number (>= 1)
 *   16 32  parameter hash of the keys' CKKS context
 *   48  8  total key bytes (>= 1)
 *   56  4  chunk count (= ceil(total / chunk size))
 *   60  4  chunk size (1 .. SERVE_RECORD_MAX_CHUNK)
 *   64  1  model name length (1 .. CDL_SERVE_NAME_MAX - 1)
 *   65  .  model name ([A-Za-z0-9._-])
 */
#ifndef CDL_SERVE_RECORD_H
#define CDL_SERVE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"
#include "cryptodl/serve.h"

#define SERVE_RECORD_FIXED 65
#define SERVE_RECORD_MAX (SERVE_RECORD_FIXED + CDL_SERVE_NAME_MAX - 1)
#define SERVE_RECORD_MAX_CHUNK ((uint32_t)1 << 30)
#define SERVE_RECORD_HASH_BYTES 32

typedef struct serve_record {
    uint64_t seq;
    uint8_t param_hash[SERVE_RECORD_HASH_BYTES];
    uint64_t key_bytes;
    uint32_t chunks, chunk_size;
    char model[CDL_SERVE_NAME_MAX];
} serve_record;

/* 1 if s is a usable model name: 1..63 characters of [A-Za-z0-9._-]. */
int serve_valid_name(const char *s, size_t n);

/* Fill the chunking of r for key_bytes cut into chunk_size pieces. */
cdl_status serve_record_chunking(serve_record *r, uint64_t key_bytes, uint32_t chunk_size);
/* Write r into out (SERVE_RECORD_MAX bytes); *len = the bytes used. */
cdl_status serve_record_encode(const serve_record *r, uint8_t out[SERVE_RECORD_MAX], size_t *len);
/* Parse and check every field; CDL_ERR_FORMAT with a message otherwise. */
cdl_status serve_record_parse(const uint8_t *data, size_t len, serve_record *r);

#endif
