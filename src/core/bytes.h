/*
 * bytes.h: bounds-checked little-endian byte streams and the envelope that
 * every serialized object travels in.
 *
 * Envelope layout (all integers little-endian), 96 bytes then the payload:
 *   magic "CDL\0" | u16 format version | u16 object type |
 *   32-byte parameter-set hash | u8 compression (0 none, 1 zstd) | 3 zero bytes |
 *   u64 stored payload length | u64 raw payload length | 32-byte BLAKE2b of the stored payload |
 *   4 zero bytes (reserved)
 * The checksum catches corruption, not forgery: an attacker can recompute it,
 * so loaders still validate every field of the payload.
 */
#ifndef CDL_CORE_BYTES_H
#define CDL_CORE_BYTES_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"

#define CDL_FORMAT_VERSION 1
#define CDL_ENVELOPE_BYTES 96
#define CDL_HASH_BYTES 32

typedef enum cdl_object_type {
    CDL_OBJ_PARAMS = 1,
    CDL_OBJ_SECRET_KEY = 2,
    CDL_OBJ_PUBLIC_KEY = 3,
    CDL_OBJ_RELIN_KEY = 4,
    CDL_OBJ_GALOIS_KEYS = 5,
    CDL_OBJ_PLAINTEXT = 6,
    CDL_OBJ_CIPHERTEXT = 7,
    CDL_OBJ_PLAN = 8,
    CDL_OBJ_BOOTSTRAP_KEYS = 9,
    CDL_OBJ_TYPE_MAX = 9
} cdl_object_type;

const char *cdl_object_type_name(uint16_t type);

/* Growable output buffer. Errors are sticky: after a failed write every
 * further write is a no-op and cdl_writer_status reports the first error. */
typedef struct cdl_writer {
    uint8_t *data;
    size_t len;
    size_t cap;
    cdl_status status;
} cdl_writer;

void cdl_writer_init(cdl_writer *w);
void cdl_writer_free(cdl_writer *w);        /* wipes the bytes: they may be secret */
cdl_status cdl_writer_status(const cdl_writer *w);
void cdl_write_bytes(cdl_writer *w, const void *src, size_t len);
void cdl_write_u8(cdl_writer *w, uint8_t v);
void cdl_write_u16(cdl_writer *w, uint16_t v);
void cdl_write_u32(cdl_writer *w, uint32_t v);
void cdl_write_u64(cdl_writer *w, uint64_t v);
void cdl_write_f64(cdl_writer *w, double v);
/* Write count 64-bit words. */
void cdl_write_u64_array(cdl_writer *w, const uint64_t *src, size_t count);

/* Read cursor over untrusted bytes. Every read checks the remaining length. */
typedef struct cdl_reader {
    const uint8_t *data;
    size_t len;
    size_t pos;
} cdl_reader;

void cdl_reader_init(cdl_reader *r, const uint8_t *data, size_t len);
size_t cdl_reader_remaining(const cdl_reader *r);
cdl_status cdl_read_bytes(cdl_reader *r, void *dst, size_t len);
cdl_status cdl_read_u8(cdl_reader *r, uint8_t *v);
cdl_status cdl_read_u16(cdl_reader *r, uint16_t *v);
cdl_status cdl_read_u32(cdl_reader *r, uint32_t *v);
cdl_status cdl_read_u64(cdl_reader *r, uint64_t *v);
cdl_status cdl_read_f64(cdl_reader *r, double *v); /* rejects NaN and infinities */
cdl_status cdl_read_u64_array(cdl_reader *r, uint64_t *dst, size_t count);
/* Fail unless every byte was consumed (trailing garbage is an error). */
cdl_status cdl_reader_expect_end(const cdl_reader *r);

/* Wrap a payload: *out is malloc'ed (free with cdl_free_bytes). */
cdl_status cdl_envelope_wrap(uint16_t type, const uint8_t param_hash[CDL_HASH_BYTES], const uint8_t *payload,
                             size_t payload_len, int compression, uint8_t **out, size_t *out_len);
/* Check an envelope and return its raw (decompressed) payload in *payload
 * (malloc'ed, free with cdl_free_bytes after wiping if secret).
 * expected_hash may be NULL to accept any parameter set (hash_out then tells
 * which). max_raw_len bounds decompression. */
cdl_status cdl_envelope_open(const uint8_t *data, size_t len, uint16_t expected_type,
                             const uint8_t expected_hash[CDL_HASH_BYTES], size_t max_raw_len, uint8_t **payload,
                             size_t *payload_len, uint8_t hash_out[CDL_HASH_BYTES]);

/* Whole-file helpers (size-limited). */
cdl_status cdl_read_file(const char *path, size_t max_len, uint8_t **data, size_t *len);
cdl_status cdl_write_file(const char *path, const uint8_t *data, size_t len);

#endif
