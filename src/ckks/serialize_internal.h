/*
 * serialize_internal.h: pieces of src/ckks/serialize.c for the serializers of
 * objects built from CKKS keys (src/boot/serialize.c: bootstrapping keys), so
 * that they write and check key material exactly as the CKKS loaders do.
 * The byte layouts are those of docs/serialization.md.
 */
#ifndef CDL_CKKS_SERIALIZE_INTERNAL_H
#define CDL_CKKS_SERIALIZE_INTERNAL_H

#include "ckks/ckks_internal.h"
#include "core/bytes.h"

/* Wrap w's bytes in the envelope (type, ctx's parameter hash, compression
 * 0..19), then wipe and free w. */
cdl_status cdl_ckks_ser_finish_save(cdl_writer *w, uint16_t type, const cdl_ckks_context *ctx, int compression,
                                    uint8_t **data, size_t *len);

/* A full-level key-switching key of ctx, laid out as the relinearization-key
 * payload: u32 dnum, u32 QP, then the key (cdl_ckks_ser_ksk_size bytes in
 * all; 0 on size overflow). The caller checks cdl_ckks_ksk_fits(ctx, k,
 * ctx->max_level) before writing. */
void cdl_ckks_ser_write_ksk(cdl_writer *w, const cdl_ckks_context *ctx, const cdl_ckks_ksk *k);
size_t cdl_ckks_ser_ksk_size(const cdl_ckks_context *ctx);
/* Read one back into k (allocated here; k->data is NULL on failure): shape
 * checked against ctx, the remaining length before allocating, every word
 * against its prime. CDL_ERR_FORMAT on bad bytes. */
cdl_status cdl_ckks_ser_read_ksk(cdl_reader *r, const cdl_ckks_context *ctx, cdl_ckks_ksk *k, const char *what);

/* The Galois-key payload (type 5) of gk appended to w; CDL_ERR_MISMATCH if
 * the keys are not of ctx. */
cdl_status cdl_ckks_ser_write_galois_keys(cdl_writer *w, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk);
/* Largest Galois-key payload of `count` keys for ctx (0 on overflow). */
size_t cdl_ckks_ser_galois_max_size(const cdl_ckks_context *ctx, size_t count);
/* Parse exactly one whole Galois-key payload; *out NULL on failure. */
cdl_status cdl_ckks_ser_parse_galois_keys(const cdl_ckks_context *ctx, const uint8_t *payload, size_t payload_len,
                                          cdl_ckks_galois_keys **out);

/* Before an envelope is opened: if its fixed header fields are those of an
 * object of `type` made for ctx, store its declared raw payload length in
 * *raw_len and the first `want` payload bytes in dst (decompressing only
 * those) and return 0; else -1. Nothing is verified (no checksum): only for
 * sizing limits and for choosing how to refuse. */
int cdl_ckks_ser_peek(const cdl_ckks_context *ctx, const uint8_t *data, size_t len, uint16_t type, uint8_t *dst,
                      size_t want, uint64_t *raw_len);

#endif
