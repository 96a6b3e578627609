/*
 * serialize.c: save and load every CKKS object (parameters, secret, public,
 * relinearization and Galois keys, plaintexts, ciphertexts).
 *
 * Each object is a payload inside the envelope of src/core/bytes.h (magic,
 * format version, object type, parameter-set hash, optional zstd, BLAKE2b
 * checksum). The payloads are specified field by field in
 * docs/serialization.md; keep the two in step.
 *
 * Loaders treat their input as hostile. Before anything is used they check,
 * in this order: the envelope (magic, version, type, parameter hash, lengths,
 * checksum; the payload size is capped by the largest object the context
 * allows, or for Galois keys by the exact size the key count implies, before
 * any payload buffer is allocated), then every header field of the payload
 * against the context (level, size, counts, digits), then the exact payload
 * length, then every coefficient against its prime. The checksum is not a
 * defence (anyone can recompute it); the field checks are.
 *
 * Secret material (the secret key's payload, in both directions) lives only
 * in buffers that are wiped before they are freed.
 *
 * The end of the file exposes the key-switching-key, Galois-key and envelope
 * pieces to the bootstrapping-key serializer (serialize_internal.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "ckks/ckks_internal.h"
#include "ckks/serialize_internal.h"
#include "core/bytes.h"
#include "core/error.h"
#include "core/memory.h"
#include "ring/automorphism.h"

/* Payload encodings written by this file (see docs/serialization.md). */
#define SER_SK_TERNARY_PACKED 1u   /* secret key: 2 bits per coefficient */
#define SER_CT_FLAG_SEEDED 1u      /* ciphertext: c1 replaced by its 32-byte seed */
#define SER_CONTEXT_FIXED_BYTES 28 /* log_n, q_count, p_count, dnum, h (u32), scale (f64) */
#define SER_GK_PREFIX_BYTES 12     /* count, dnum, qp_count (u32) */

/* Envelope field offsets (layout in src/core/bytes.h), for the Galois-key
 * size check that runs before cdl_envelope_open. */
#define SER_ENV_COMPRESSION_AT 40
#define SER_ENV_RAW_LEN_AT 52

/* ---- small helpers ------------------------------------------------------ */

static cdl_status check_args(const cdl_ckks_context *ctx, const void *obj, uint8_t **data, size_t *len)
{
    if (!ctx || !obj || !data || !len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "save: NULL argument (context, object and outputs are required)");
    *data = NULL;
    *len = 0;
    return CDL_OK;
}

static cdl_status check_load_args(const cdl_ckks_context *ctx, const uint8_t *data, size_t len, void *out)
{
    if (!ctx || !out || (!data && len))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "load: NULL argument (context, data and output are required)");
    return CDL_OK;
}

/* Finish a save: wrap the writer's bytes, then wipe and free the writer. */
static cdl_status finish_save(cdl_writer *w, uint16_t type, const cdl_ckks_context *ctx, int compression,
                              uint8_t **data, size_t *len)
{
    cdl_status st = cdl_writer_status(w);
    if (st == CDL_OK)
        st = cdl_envelope_wrap(type, ctx->param_hash, w->data, w->len, compression, data, len);
    cdl_writer_free(w);
    return st;
}

/* Write `limbs` limbs of N words (limb-major, contiguous). */
static void write_limbs(cdl_writer *w, const uint64_t *src, int limbs, size_t n)
{
    cdl_write_u64_array(w, src, (size_t)limbs * n);
}

/* Read `limbs` limbs of N words into dst (contiguous); limb i must be reduced
 * modulo ctx->primes[i] (every object's limbs start at q_0). */
static cdl_status read_limbs_at(cdl_reader *r, const cdl_ckks_context *ctx, int first_prime, int limbs, uint64_t *dst,
                                const char *what)
{
    for (int i = 0; i < limbs; i++) {
        uint64_t *limb = dst + (size_t)i * ctx->n;
        CDL_TRY(cdl_read_u64_array(r, limb, ctx->n));
        uint64_t q = ctx->primes[first_prime + i], bad = 0;
        for (size_t j = 0; j < ctx->n; j++) /* a flat pass the compiler can vectorize */
            bad |= (uint64_t)(limb[j] >= q);
        if (!bad)
            continue;
        for (size_t j = 0; j < ctx->n; j++)
            if (limb[j] >= q)
                return cdl_fail(CDL_ERR_FORMAT,
                                "%s: coefficient %zu of RNS limb %d is %llu, not below its prime %llu "
                                "(corrupt or forged data)",
                                what, j, i, (unsigned long long)limb[j], (unsigned long long)q);
    }
    return CDL_OK;
}

static cdl_status read_limbs(cdl_reader *r, const cdl_ckks_context *ctx, int limbs, uint64_t *dst, const char *what)
{
    return read_limbs_at(r, ctx, 0, limbs, dst, what);
}

/* payload bytes = fixed + words * 8, with overflow checks; 0 on overflow. */
static size_t payload_size(size_t fixed, size_t words)
{
    size_t bytes;
    if (cdl_mul_size(words, 8, &bytes) != 0 || bytes > SIZE_MAX - fixed)
        return 0;
    return fixed + bytes;
}

static size_t ksk_words(const cdl_ckks_context *ctx)
{
    return (size_t)ctx->dnum * 2 * (size_t)ctx->qp_count * ctx->n;
}

/* Open the envelope of an object made for ctx. */
static cdl_status open_for(const cdl_ckks_context *ctx, const uint8_t *data, size_t len, cdl_object_type type,
                           size_t max_raw, uint8_t **payload, size_t *payload_len)
{
    return cdl_envelope_open(data, len, (uint16_t)type, ctx->param_hash, max_raw, payload, payload_len, NULL);
}

/* Free a payload; wipe it first if it held a secret. */
static void drop_payload(uint8_t *payload, size_t payload_len, int secret)
{
    if (secret)
        cdl_wipe(payload, payload_len);
    cdl_free_bytes(payload);
}

/* ---- parameters ---------------------------------------------------------- */

cdl_status cdl_ckks_context_save(const cdl_ckks_context *ctx, int compression, uint8_t **data, size_t *len)
{
    CDL_TRY(check_args(ctx, ctx, data, len));
    cdl_writer w;
    cdl_writer_init(&w);
    cdl_write_u32(&w, (uint32_t)ctx->log_n);
    cdl_write_u32(&w, (uint32_t)ctx->q_count);
    cdl_write_u32(&w, (uint32_t)ctx->p_count);
    cdl_write_u32(&w, (uint32_t)ctx->dnum);
    cdl_write_u32(&w, (uint32_t)ctx->spec.secret_hamming_weight);
    cdl_write_f64(&w, ctx->scale);
    for (int i = 0; i < ctx->q_count; i++)
        cdl_write_u32(&w, (uint32_t)ctx->spec.q_bits[i]);
    for (int i = 0; i < ctx->p_count; i++)
        cdl_write_u32(&w, (uint32_t)ctx->spec.p_bits[i]);
    cdl_write_u64_array(&w, ctx->primes, (size_t)ctx->qp_count);
    return finish_save(&w, CDL_OBJ_PARAMS, ctx, compression, data, len);
}

/* Read a u32 and check lo <= v <= hi. */
static cdl_status read_u32_in(cdl_reader *r, const char *what, uint32_t lo, uint32_t hi, uint32_t *v)
{
    CDL_TRY(cdl_read_u32(r, v));
    if (*v < lo || *v > hi)
        return cdl_fail(CDL_ERR_FORMAT, "%s is %u, outside the valid range %u..%u", what, *v, lo, hi);
    return CDL_OK;
}

static cdl_status parse_context(const uint8_t *payload, size_t payload_len, const uint8_t header_hash[CDL_HASH_BYTES],
                                cdl_ckks_context **out)
{
    cdl_reader r;
    cdl_reader_init(&r, payload, payload_len);
    uint32_t log_n, q_count, p_count, dnum, h;
    double scale;
    CDL_TRY(read_u32_in(&r, "parameters: log2(N)", CDL_CKKS_MIN_LOG_N, CDL_CKKS_MAX_LOG_N, &log_n));
    CDL_TRY(read_u32_in(&r, "parameters: number of ciphertext primes", 1, CDL_CKKS_MAX_PRIMES, &q_count));
    CDL_TRY(read_u32_in(&r, "parameters: number of special primes", 0, CDL_CKKS_MAX_PRIMES, &p_count));
    CDL_TRY(read_u32_in(&r, "parameters: key-switching digits (dnum)", 1, q_count, &dnum));
    CDL_TRY(read_u32_in(&r, "parameters: secret Hamming weight", 0, 1u << log_n, &h));
    CDL_TRY(cdl_read_f64(&r, &scale));
    if (!(scale > 0.0))
        return cdl_fail(CDL_ERR_FORMAT, "parameters: default scale %g is not a finite positive number", scale);
    size_t rest = (size_t)(q_count + p_count) * 12;
    if (cdl_reader_remaining(&r) != rest)
        return cdl_fail(CDL_ERR_FORMAT, "parameters: %zu bytes of prime data, expected exactly %zu for %u+%u primes",
                        cdl_reader_remaining(&r), rest, q_count, p_count);
    cdl_ckks_param_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.log_n = (int)log_n;
    spec.q_count = (int)q_count;
    spec.p_count = (int)p_count;
    spec.dnum = (int)dnum;
    spec.scale = scale;
    spec.secret_hamming_weight = (int)h;
    spec.allow_insecure = 0; /* a loaded context always passes the 128-bit check */
    uint32_t bits;
    for (uint32_t i = 0; i < q_count; i++) {
        CDL_TRY(read_u32_in(&r, "parameters: prime bit size", CDL_MODULUS_MIN_BITS, CDL_MODULUS_MAX_BITS, &bits));
        spec.q_bits[i] = (int)bits;
    }
    for (uint32_t i = 0; i < p_count; i++) {
        CDL_TRY(read_u32_in(&r, "parameters: prime bit size", CDL_MODULUS_MIN_BITS, CDL_MODULUS_MAX_BITS, &bits));
        spec.p_bits[i] = (int)bits;
    }
    uint64_t primes[CDL_CKKS_MAX_QP];
    CDL_TRY(cdl_read_u64_array(&r, primes, q_count + p_count));
    CDL_TRY(cdl_reader_expect_end(&r));

    /* The normal constructor re-validates everything, security included. */
    cdl_ckks_context *ctx = NULL;
    cdl_status st = cdl_ckks_context_new(&spec, &ctx);
    if (st != CDL_OK) {
        if (st == CDL_ERR_INSECURE)
            return cdl_fail(CDL_ERR_INSECURE,
                            "the saved parameters (N = 2^%u, %u+%u primes) are below 128-bit security; a loaded "
                            "context must pass the security check: %s",
                            log_n, q_count, p_count, cdl_last_error());
        return st;
    }
    for (uint32_t i = 0; i < q_count + p_count; i++)
        if (ctx->primes[i] != primes[i]) {
            unsigned long long want = (unsigned long long)ctx->primes[i];
            cdl_ckks_context_free(ctx);
            return cdl_fail(CDL_ERR_FORMAT,
                            "parameters: stored prime %u is %llu but the bit sizes generate %llu (corrupt data or "
                            "a different prime generator)",
                            i, (unsigned long long)primes[i], want);
        }
    if ((uint32_t)ctx->dnum != dnum) {
        int resolved = ctx->dnum;
        cdl_ckks_context_free(ctx);
        return cdl_fail(CDL_ERR_FORMAT, "parameters: %u key-switching digits stored but the parameters resolve to %d "
                        "(corrupt data)", dnum, resolved);
    }
    if (memcmp(ctx->param_hash, header_hash, CDL_HASH_BYTES) != 0) {
        cdl_ckks_context_free(ctx);
        return cdl_fail(CDL_ERR_FORMAT, "parameters: the header's parameter hash does not match the parameters "
                                        "it carries (corrupt or forged data)");
    }
    *out = ctx;
    return CDL_OK;
}

cdl_status cdl_ckks_context_load(const uint8_t *data, size_t len, cdl_ckks_context **out)
{
    if (!out || (!data && len))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "load: NULL argument (data and output are required)");
    *out = NULL;
    uint8_t *payload = NULL, hash[CDL_HASH_BYTES];
    size_t payload_len = 0;
    size_t max_raw = SER_CONTEXT_FIXED_BYTES + 2 * CDL_CKKS_MAX_PRIMES * 12;
    CDL_TRY(cdl_envelope_open(data, len, CDL_OBJ_PARAMS, NULL, max_raw, &payload, &payload_len, hash));
    cdl_status st = parse_context(payload, payload_len, hash, out);
    drop_payload(payload, payload_len, 0);
    return st;
}

/* ---- secret key ----------------------------------------------------------
 * Stored as the ternary coefficients, 2 bits each (0 -> 0, 1 -> 1, -1 -> 3),
 * four per byte, least significant first; the loader rebuilds the NTT form.
 * Encoding and decoding are branch-free in the coefficient values.
 * The saver never compresses (the compression argument is range-checked and
 * otherwise ignored): zstd's work buffers and the envelope's compressed copy
 * are freed without being wiped, and packed ternary data hardly compresses.
 * The loader accepts compressed keys all the same. */

cdl_status cdl_ckks_secret_key_save(const cdl_ckks_context *ctx, const cdl_ckks_secret_key *sk, int compression,
                                    uint8_t **data, size_t *len)
{
    CDL_TRY(check_args(ctx, sk, data, len));
    if (compression < 0 || compression > 19)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "compression level %d out of range (0 = none, 1..19 = zstd)",
                        compression);
    if (sk->n != ctx->n || sk->qp_count != ctx->qp_count)
        return cdl_fail(CDL_ERR_MISMATCH, "secret key save: the key does not belong to this context");
    size_t packed_len = ctx->n / 4;
    uint8_t *packed = cdl_secure_calloc(packed_len, 1);
    if (!packed)
        return CDL_ERR_NO_MEMORY;
    for (size_t j = 0; j < ctx->n; j++)
        packed[j / 4] |= (uint8_t)(((unsigned)sk->coeffs[j] & 3u) << (2 * (j % 4)));
    cdl_writer w;
    cdl_writer_init(&w);
    cdl_write_u32(&w, SER_SK_TERNARY_PACKED);
    cdl_write_bytes(&w, packed, packed_len);
    cdl_secure_free(packed, packed_len);
    return finish_save(&w, CDL_OBJ_SECRET_KEY, ctx, 0, data, len);
}

static cdl_status parse_secret_key(const cdl_ckks_context *ctx, const uint8_t *payload, size_t payload_len,
                                   cdl_ckks_secret_key *sk)
{
    cdl_reader r;
    cdl_reader_init(&r, payload, payload_len);
    uint32_t encoding;
    CDL_TRY(cdl_read_u32(&r, &encoding));
    if (encoding != SER_SK_TERNARY_PACKED)
        return cdl_fail(CDL_ERR_FORMAT, "secret key: unknown coefficient encoding %u (this build reads %u)", encoding,
                        SER_SK_TERNARY_PACKED);
    size_t packed_len = ctx->n / 4;
    if (cdl_reader_remaining(&r) != packed_len)
        return cdl_fail(CDL_ERR_FORMAT, "secret key: %zu bytes of coefficients, expected exactly %zu for N = %zu",
                        cdl_reader_remaining(&r), packed_len, ctx->n);
    const uint8_t *packed = payload + r.pos;
    unsigned bad = 0;
    size_t nonzero = 0;
    for (size_t j = 0; j < ctx->n; j++) {
        unsigned code = (packed[j / 4] >> (2 * (j % 4))) & 3u;
        bad |= (unsigned)(code == 2);
        int c = (int)(code ^ 2u) - 2; /* 0 -> 0, 1 -> 1, 3 -> -1 (2 -> -2, rejected) */
        sk->coeffs[j] = (int8_t)c;
        nonzero += (size_t)(c != 0);
    }
    if (bad)
        return cdl_fail(CDL_ERR_FORMAT, "secret key: a coefficient code is not ternary (corrupt data)");
    int h = ctx->spec.secret_hamming_weight;
    if (h > 0 && nonzero != (size_t)h)
        return cdl_fail(CDL_ERR_FORMAT, "secret key: the parameters fix the Hamming weight but the key does not "
                                        "have it (corrupt data)");
    for (int i = 0; i < ctx->qp_count; i++) {
        uint64_t q = ctx->primes[i];
        uint64_t *limb = sk->s + (size_t)i * ctx->n;
        for (size_t j = 0; j < ctx->n; j++) {
            int64_t c = sk->coeffs[j];
            uint64_t neg = (uint64_t)0 - (uint64_t)(c < 0);
            limb[j] = (uint64_t)c + (q & neg); /* -1 -> q - 1 without a branch */
        }
        cdl_ntt_forward(ctx->ntt[i], limb);
    }
    return CDL_OK;
}

cdl_status cdl_ckks_secret_key_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                    cdl_ckks_secret_key **out)
{
    CDL_TRY(check_load_args(ctx, data, len, out));
    *out = NULL;
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    CDL_TRY(open_for(ctx, data, len, CDL_OBJ_SECRET_KEY, 4 + ctx->n / 4, &payload, &payload_len));
    cdl_ckks_secret_key *sk = NULL;
    cdl_status st = cdl_ckks_secret_key_alloc(ctx, &sk);
    if (st == CDL_OK)
        st = parse_secret_key(ctx, payload, payload_len, sk);
    if (st == CDL_OK) /* the Shoup table that makes decrypt/encrypt_sk ~3x faster */
        st = cdl_ckks_secret_key_precompute(ctx, sk);
    drop_payload(payload, payload_len, 1);
    if (st != CDL_OK) {
        cdl_ckks_secret_key_free(sk);
        return st;
    }
    *out = sk;
    return CDL_OK;
}

/* ---- public key ---------------------------------------------------------- */

cdl_status cdl_ckks_public_key_save(const cdl_ckks_context *ctx, const cdl_ckks_public_key *pk, int compression,
                                    uint8_t **data, size_t *len)
{
    CDL_TRY(check_args(ctx, pk, data, len));
    if (pk->n != ctx->n || pk->q_count != ctx->q_count)
        return cdl_fail(CDL_ERR_MISMATCH, "public key save: the key does not belong to this context");
    cdl_writer w;
    /* The special-prime part (public-key encryption modulo QP, then divide by
     * P: about 4 bits less fresh noise) is saved when the key has it. */
    const int p_count = pk->p_data && pk->p_count == ctx->p_count ? ctx->p_count : 0;
    cdl_writer_init(&w);
    cdl_write_u32(&w, (uint32_t)ctx->q_count);
    cdl_write_u32(&w, (uint32_t)p_count);
    write_limbs(&w, pk->data, 2 * ctx->q_count, ctx->n);
    if (p_count)
        write_limbs(&w, pk->p_data, 2 * p_count, ctx->n);
    return finish_save(&w, CDL_OBJ_PUBLIC_KEY, ctx, compression, data, len);
}

cdl_status cdl_ckks_public_key_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                    cdl_ckks_public_key **out)
{
    CDL_TRY(check_load_args(ctx, data, len, out));
    *out = NULL;
    const size_t max_expect = payload_size(8, 2 * (size_t)(ctx->q_count + ctx->p_count) * ctx->n);
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    CDL_TRY(open_for(ctx, data, len, CDL_OBJ_PUBLIC_KEY, max_expect, &payload, &payload_len));
    cdl_ckks_public_key *pk = NULL;
    cdl_reader r;
    cdl_reader_init(&r, payload, payload_len);
    uint32_t limbs = 0, p_limbs = 0;
    cdl_status st = cdl_read_u32(&r, &limbs);
    if (st == CDL_OK)
        st = cdl_read_u32(&r, &p_limbs);
    if (st == CDL_OK && limbs != (uint32_t)ctx->q_count)
        st = cdl_fail(CDL_ERR_FORMAT, "public key: %u RNS limbs, the parameters have %d", limbs, ctx->q_count);
    if (st == CDL_OK && p_limbs != 0 && p_limbs != (uint32_t)ctx->p_count)
        st = cdl_fail(CDL_ERR_FORMAT, "public key: %u special-prime limbs, the parameters have %d (or 0)", p_limbs,
                      ctx->p_count);
    const size_t expect = payload_size(8, 2 * ((size_t)ctx->q_count + p_limbs) * ctx->n);
    if (st == CDL_OK && payload_len != expect)
        st = cdl_fail(CDL_ERR_FORMAT, "public key: payload is %zu bytes, expected exactly %zu", payload_len, expect);
    if (st == CDL_OK)
        st = cdl_ckks_public_key_alloc(ctx, &pk);
    for (int c = 0; st == CDL_OK && c < 2; c++)
        st = read_limbs(&r, ctx, ctx->q_count, pk->data + (size_t)c * (size_t)ctx->q_count * ctx->n, "public key");
    if (st == CDL_OK && p_limbs) {
        pk->p_data = cdl_calloc_array(2 * (size_t)p_limbs * ctx->n, sizeof(uint64_t));
        if (!pk->p_data)
            st = CDL_ERR_NO_MEMORY;
        else
            pk->p_count = (int)p_limbs;
    }
    for (int c = 0; st == CDL_OK && p_limbs && c < 2; c++)
        st = read_limbs_at(&r, ctx, ctx->q_count, (int)p_limbs, pk->p_data + (size_t)c * p_limbs * ctx->n,
                           "public key (special primes)");
    if (st == CDL_OK)
        st = cdl_reader_expect_end(&r);
    drop_payload(payload, payload_len, 0);
    if (st != CDL_OK) {
        cdl_ckks_public_key_free(pk);
        return st;
    }
    *out = pk;
    return CDL_OK;
}

/* ---- key-switching keys (relinearization and Galois) --------------------- */

static void write_ksk(cdl_writer *w, const cdl_ckks_ksk *k)
{
    cdl_write_u64_array(w, k->data, (size_t)k->dnum * 2 * (size_t)k->qp_count * k->n);
}

/* Each limb checked against its own prime: q_0..q_max_level, then the special primes. */
static cdl_status read_ksk(cdl_reader *r, const cdl_ckks_context *ctx, cdl_ckks_ksk *k, const char *what)
{
    for (int d = 0; d < k->dnum; d++)
        for (int c = 0; c < 2; c++) {
            CDL_TRY(read_limbs_at(r, ctx, 0, k->max_level + 1, cdl_ksk_poly(k, d, c, 0), what));
            CDL_TRY(read_limbs_at(r, ctx, ctx->q_count, ctx->p_count, cdl_ksk_poly(k, d, c, ctx->q_count), what));
        }
    return CDL_OK;
}

static int ksk_matches(const cdl_ckks_context *ctx, const cdl_ckks_ksk *k)
{
    return k->dnum == ctx->dnum && k->qp_count == ctx->qp_count && k->n == ctx->n;
}

cdl_status cdl_ckks_relin_key_save(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk, int compression,
                                   uint8_t **data, size_t *len)
{
    CDL_TRY(check_args(ctx, rlk, data, len));
    if (!ksk_matches(ctx, &rlk->ksk))
        return cdl_fail(CDL_ERR_MISMATCH, "relinearization key save: the key does not belong to this context");
    cdl_writer w;
    cdl_writer_init(&w);
    cdl_write_u32(&w, (uint32_t)ctx->dnum);
    cdl_write_u32(&w, (uint32_t)ctx->qp_count);
    write_ksk(&w, &rlk->ksk);
    return finish_save(&w, CDL_OBJ_RELIN_KEY, ctx, compression, data, len);
}

/* The u32 pair (dnum, qp_count) that opens every key-switching payload. */
static cdl_status read_ksk_shape(cdl_reader *r, const cdl_ckks_context *ctx, const char *what)
{
    uint32_t dnum, qp;
    CDL_TRY(cdl_read_u32(r, &dnum));
    CDL_TRY(cdl_read_u32(r, &qp));
    if (dnum != (uint32_t)ctx->dnum || qp != (uint32_t)ctx->qp_count)
        return cdl_fail(CDL_ERR_FORMAT, "%s: %u digits over %u primes, the parameters have %d digits over %d primes",
                        what, dnum, qp, ctx->dnum, ctx->qp_count);
    return CDL_OK;
}

cdl_status cdl_ckks_relin_key_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                   cdl_ckks_relin_key **out)
{
    CDL_TRY(check_load_args(ctx, data, len, out));
    *out = NULL;
    size_t expect = payload_size(8, ksk_words(ctx));
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    CDL_TRY(open_for(ctx, data, len, CDL_OBJ_RELIN_KEY, expect, &payload, &payload_len));
    cdl_reader r;
    cdl_reader_init(&r, payload, payload_len);
    cdl_ckks_relin_key *rlk = NULL;
    cdl_status st = read_ksk_shape(&r, ctx, "relinearization key");
    if (st == CDL_OK && payload_len != expect)
        st = cdl_fail(CDL_ERR_FORMAT, "relinearization key: payload is %zu bytes, expected exactly %zu", payload_len,
                      expect);
    if (st == CDL_OK)
        st = cdl_ckks_relin_key_alloc(ctx, &rlk);
    if (st == CDL_OK)
        st = read_ksk(&r, ctx, &rlk->ksk, "relinearization key");
    if (st == CDL_OK)
        st = cdl_reader_expect_end(&r);
    drop_payload(payload, payload_len, 0);
    if (st != CDL_OK) {
        cdl_ckks_relin_key_free(rlk);
        return st;
    }
    *out = rlk;
    return CDL_OK;
}

/* The Galois-key payload of gk appended to w (also the Galois part of the
 * bootstrapping keys, src/boot/serialize.c). CDL_ERR_MISMATCH before anything
 * is written if the keys are not of ctx. */
static cdl_status write_galois_keys(cdl_writer *w, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk)
{
    if (gk->n != ctx->n || gk->count == 0 || gk->count > ctx->n)
        return cdl_fail(CDL_ERR_MISMATCH, "Galois keys save: the keys do not belong to this context");
    int truncated = 0;
    for (size_t i = 0; i < gk->count; i++) {
        if (!cdl_ckks_ksk_fits(ctx, &gk->keys[i], 0))
            return cdl_fail(CDL_ERR_MISMATCH, "Galois keys save: key %zu does not belong to this context", i);
        truncated |= gk->keys[i].max_level != ctx->max_level;
    }
    /* count, dnum, qp_count; keys truncated to levels (cdl_ckks_keygen_galois_levels) write dnum 0 and
     * then one u32 level per key, each key then holding the digits and primes of its levels */
    cdl_write_u32(w, (uint32_t)gk->count);
    cdl_write_u32(w, truncated ? 0u : (uint32_t)ctx->dnum);
    cdl_write_u32(w, (uint32_t)ctx->qp_count);
    for (size_t i = 0; truncated && i < gk->count; i++)
        cdl_write_u32(w, (uint32_t)gk->keys[i].max_level);
    cdl_write_u64_array(w, gk->galois_elts, gk->count);
    /* the keys themselves: phi of the memory form, limb by limb (same layout as write_ksk) */
    uint64_t *limb = cdl_alloc_array(gk->n, sizeof *limb);
    if (!limb)
        return cdl_fail(CDL_ERR_NO_MEMORY, "Galois keys save: out of memory");
    for (size_t i = 0; i < gk->count; i++) {
        const cdl_ckks_ksk *k = &gk->keys[i];
        const uint32_t *idx = cdl_ckks_galois_keys_index(gk, i);
        for (size_t l = 0; l < (size_t)k->dnum * 2 * (size_t)k->qp_count; l++) {
            cdl_automorphism_ntt_apply(k->data + l * gk->n, limb, gk->n, idx);
            cdl_write_u64_array(w, limb, gk->n);
        }
    }
    cdl_free(limb);
    return cdl_writer_status(w);
}

cdl_status cdl_ckks_galois_keys_save(const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk, int compression,
                                     uint8_t **data, size_t *len)
{
    CDL_TRY(check_args(ctx, gk, data, len));
    cdl_writer w;
    cdl_writer_init(&w);
    cdl_status st = write_galois_keys(&w, ctx, gk);
    if (st != CDL_OK) {
        cdl_writer_free(&w);
        return st;
    }
    return finish_save(&w, CDL_OBJ_GALOIS_KEYS, ctx, compression, data, len);
}

/* Exact payload size of `count` Galois keys for ctx; 0 on overflow. */
static size_t galois_payload_size(const cdl_ckks_context *ctx, size_t count)
{
    size_t words; /* count key-switching keys plus count Galois elements */
    if (cdl_mul_size(ksk_words(ctx), count, &words) != 0 || words > SIZE_MAX - count)
        return 0;
    return payload_size(SER_GK_PREFIX_BYTES, words + count);
}

static uint32_t get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The first `want` bytes of the payload, before the envelope is opened, so
 * that the size of a Galois key set can be checked before the (possibly very
 * large, possibly compressed) payload is allocated. Only sizes a limit: the
 * real parse re-reads every field from the verified payload. Returns 0 on
 * success, -1 if the bytes cannot be had (the envelope check then reports why). */
static int peek_payload(const uint8_t *data, size_t len, uint8_t *dst, size_t want)
{
    if (len < CDL_ENVELOPE_BYTES + 1)
        return -1;
    const uint8_t *stored = data + CDL_ENVELOPE_BYTES;
    size_t stored_len = len - CDL_ENVELOPE_BYTES;
    uint8_t compression = data[SER_ENV_COMPRESSION_AT];
    if (compression == 0) {
        if (stored_len < want)
            return -1;
        memcpy(dst, stored, want);
        return 0;
    }
    if (compression != 1)
        return -1;
    ZSTD_DCtx *d = ZSTD_createDCtx();
    if (!d)
        return -1;
    /* Bound the decoder's window (what a hostile frame header could make it allocate). */
    ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, 27);
    ZSTD_inBuffer in = {stored, stored_len, 0};
    ZSTD_outBuffer o = {dst, want, 0};
    int ok = -1;
    while (o.pos < want) {
        size_t before_in = in.pos, before_out = o.pos;
        size_t rc = ZSTD_decompressStream(d, &o, &in);
        if (ZSTD_isError(rc) || (rc == 0 && o.pos < want) || (in.pos == before_in && o.pos == before_out))
            break;
    }
    if (o.pos == want)
        ok = 0;
    ZSTD_freeDCtx(d);
    return ok;
}

/* Header checks on the raw envelope bytes (same order as cdl_envelope_open)
 * so that a Galois key set's declared size is only looked at in an envelope
 * that is otherwise right. Returns 1 if the fixed fields match. */
static int envelope_header_ok(const cdl_ckks_context *ctx, const uint8_t *data, size_t len, uint16_t type)
{
    return len >= CDL_ENVELOPE_BYTES && memcmp(data, "CDL", 4) == 0 && data[4] == CDL_FORMAT_VERSION &&
           data[5] == 0 && data[6] == (uint8_t)type && data[7] == (uint8_t)(type >> 8) &&
           memcmp(data + 8, ctx->param_hash, CDL_HASH_BYTES) == 0;
}

static cdl_status check_galois_elements(const cdl_ckks_context *ctx, const uint64_t *elts, size_t count)
{
    uint64_t two_n = 2 * (uint64_t)ctx->n;
    for (size_t i = 0; i < count; i++) {
        if (elts[i] >= two_n || (elts[i] & 1) == 0)
            return cdl_fail(CDL_ERR_FORMAT, "Galois keys: element %zu is %llu, not an odd number below 2N = %llu", i,
                            (unsigned long long)elts[i], (unsigned long long)two_n);
    }
    /* No duplicates: a bitmap over the odd residues (N/2 .. 2^15 bytes). */
    uint8_t *seen = cdl_calloc_array(ctx->n / 8 + 1, 1);
    if (!seen)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = CDL_OK;
    for (size_t i = 0; i < count && st == CDL_OK; i++) {
        size_t k = (size_t)(elts[i] >> 1);
        if (seen[k / 8] & (1u << (k % 8)))
            st = cdl_fail(CDL_ERR_FORMAT, "Galois keys: element %llu appears twice", (unsigned long long)elts[i]);
        seen[k / 8] |= (uint8_t)(1u << (k % 8));
    }
    cdl_free(seen);
    return st;
}

/* Parse a whole Galois-key payload (every field and coefficient checked);
 * *out is set only on success. */
static cdl_status parse_galois_keys(const cdl_ckks_context *ctx, const uint8_t *payload, size_t payload_len,
                                    cdl_ckks_galois_keys **out)
{
    cdl_reader r;
    cdl_reader_init(&r, payload, payload_len);
    cdl_ckks_galois_keys *gk = NULL;
    uint32_t count = 0;
    cdl_status st = cdl_read_u32(&r, &count);
    if (st == CDL_OK && (count == 0 || count > ctx->n))
        st = cdl_fail(CDL_ERR_FORMAT, "Galois keys: the data declares %u keys; between 1 and N = %zu expected", count,
                      ctx->n);
    uint32_t dnum = 0, qp = 0;
    int *levels = NULL;
    size_t want = 0;
    if (st == CDL_OK)
        st = cdl_read_u32(&r, &dnum);
    if (st == CDL_OK)
        st = cdl_read_u32(&r, &qp);
    if (st == CDL_OK && ((dnum != 0 && dnum != (uint32_t)ctx->dnum) || qp != (uint32_t)ctx->qp_count))
        st = cdl_fail(CDL_ERR_FORMAT, "Galois keys: %u digits over %u primes, the parameters have %d digits over %d "
                      "primes", dnum, qp, ctx->dnum, ctx->qp_count);
    if (st == CDL_OK && dnum == 0) { /* one level per key, then keys of those levels */
        levels = cdl_alloc_array(count, sizeof *levels);
        if (!levels)
            st = CDL_ERR_NO_MEMORY;
        want = SER_GK_PREFIX_BYTES + 4 * (size_t)count + 8 * (size_t)count;
        for (size_t i = 0; st == CDL_OK && i < count; i++) {
            uint32_t lv = 0;
            st = cdl_read_u32(&r, &lv);
            if (st == CDL_OK && lv > (uint32_t)ctx->max_level)
                st = cdl_fail(CDL_ERR_FORMAT, "Galois keys: key %zu declares level %u; the parameters have levels "
                              "0..%d", i, lv, ctx->max_level);
            if (st == CDL_OK) {
                levels[i] = (int)lv;
                const size_t d = (size_t)((levels[i] + ctx->alpha) / ctx->alpha); /* ct-public: key levels */
                want += 8 * d * 2 * (size_t)(levels[i] + 1 + ctx->p_count) * ctx->n; /* bounded by the full size */
            }
        }
    } else if (st == CDL_OK) {
        want = galois_payload_size(ctx, count);
    }
    if (st == CDL_OK && payload_len != want)
        st = cdl_fail(CDL_ERR_FORMAT, "Galois keys: payload is %zu bytes, expected exactly %zu for %u keys",
                      payload_len, want, count);
    if (st == CDL_OK)
        st = cdl_ckks_galois_keys_alloc_levels(ctx, count, levels, &gk);
    cdl_free(levels);
    if (st == CDL_OK)
        st = cdl_read_u64_array(&r, gk->galois_elts, count);
    if (st == CDL_OK)
        st = check_galois_elements(ctx, gk->galois_elts, count);
    for (size_t i = 0; st == CDL_OK && i < count; i++)
        cdl_ckks_galois_keys_set_element(gk, i, gk->galois_elts[i]);
    for (size_t i = 0; st == CDL_OK && i < count; i++) {
        st = read_ksk(&r, ctx, &gk->keys[i], "Galois keys");
        if (st == CDL_OK)
            st = cdl_ckks_galois_key_permute(gk, i, 1); /* the memory form */
    }
    if (st == CDL_OK)
        st = cdl_reader_expect_end(&r);
    if (st != CDL_OK) {
        cdl_ckks_galois_keys_free(gk);
        return st;
    }
    *out = gk;
    return CDL_OK;
}

cdl_status cdl_ckks_galois_keys_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                     cdl_ckks_galois_keys **out)
{
    CDL_TRY(check_load_args(ctx, data, len, out));
    *out = NULL;
    /* Size the limit from the declared key count before anything is allocated. */
    size_t expect = SER_GK_PREFIX_BYTES;
    uint8_t prefix[SER_GK_PREFIX_BYTES];
    if (envelope_header_ok(ctx, data, len, CDL_OBJ_GALOIS_KEYS) &&
        peek_payload(data, len, prefix, sizeof prefix) == 0) {
        uint32_t count = get_u32le(prefix), dnum = get_u32le(prefix + 4), qp = get_u32le(prefix + 8);
        if (count == 0 || count > ctx->n)
            return cdl_fail(CDL_ERR_FORMAT, "Galois keys: the data declares %u keys; between 1 and N = %zu expected",
                            count, ctx->n);
        if ((dnum != 0 && dnum != (uint32_t)ctx->dnum) || qp != (uint32_t)ctx->qp_count)
            return cdl_fail(CDL_ERR_FORMAT,
                            "Galois keys: %u digits over %u primes, the parameters have %d digits over %d primes", dnum,
                            qp, ctx->dnum, ctx->qp_count);
        expect = galois_payload_size(ctx, count);
        if (expect == 0 || (dnum == 0 && expect > SIZE_MAX - 4 * (size_t)count))
            return cdl_fail(CDL_ERR_FORMAT, "Galois keys: %u keys would not fit in memory", count);
        if (dnum == 0) /* keys truncated to levels: at most full keys plus one level each */
            expect += 4 * (size_t)count;
        uint64_t raw_len = 0;
        for (int i = 7; i >= 0; i--)
            raw_len = (raw_len << 8) | data[SER_ENV_RAW_LEN_AT + i];
        if (dnum != 0 ? raw_len != expect : raw_len > expect)
            return cdl_fail(CDL_ERR_FORMAT,
                            "Galois keys: the header declares a %llu-byte payload but %u keys take %s %zu bytes",
                            (unsigned long long)raw_len, count, dnum != 0 ? "exactly" : "at most", expect);
    }
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    CDL_TRY(open_for(ctx, data, len, CDL_OBJ_GALOIS_KEYS, expect, &payload, &payload_len));
    cdl_status st = parse_galois_keys(ctx, payload, payload_len, out);
    drop_payload(payload, payload_len, 0);
    return st;
}

/* ---- plaintexts ---------------------------------------------------------- */

static cdl_status check_scale(double scale, const char *what)
{
    if (!(scale > 0.0) || !isfinite(scale))
        return cdl_fail(CDL_ERR_FORMAT, "%s: scale %g is not a finite positive number", what, scale);
    return CDL_OK;
}

cdl_status cdl_ckks_plaintext_save(const cdl_ckks_context *ctx, const cdl_ckks_plaintext *pt, int compression,
                                   uint8_t **data, size_t *len)
{
    CDL_TRY(check_args(ctx, pt, data, len));
    if (pt->n != ctx->n || pt->q_count != ctx->q_count || pt->level < 0 || pt->level > ctx->max_level)
        return cdl_fail(CDL_ERR_MISMATCH, "plaintext save: the plaintext does not belong to this context");
    cdl_writer w;
    cdl_writer_init(&w);
    cdl_write_u32(&w, (uint32_t)pt->level);
    cdl_write_f64(&w, pt->scale);
    write_limbs(&w, pt->data, pt->level + 1, ctx->n);
    return finish_save(&w, CDL_OBJ_PLAINTEXT, ctx, compression, data, len);
}

cdl_status cdl_ckks_plaintext_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                   cdl_ckks_plaintext **out)
{
    CDL_TRY(check_load_args(ctx, data, len, out));
    *out = NULL;
    size_t max_raw = payload_size(12, (size_t)ctx->q_count * ctx->n);
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    CDL_TRY(open_for(ctx, data, len, CDL_OBJ_PLAINTEXT, max_raw, &payload, &payload_len));
    cdl_reader r;
    cdl_reader_init(&r, payload, payload_len);
    cdl_ckks_plaintext *pt = NULL;
    uint32_t level = 0;
    double scale = 0;
    cdl_status st = cdl_read_u32(&r, &level);
    if (st == CDL_OK && level > (uint32_t)ctx->max_level)
        st = cdl_fail(CDL_ERR_FORMAT, "plaintext: level %u is above the parameters' maximum level %d", level,
                      ctx->max_level);
    if (st == CDL_OK)
        st = cdl_read_f64(&r, &scale);
    if (st == CDL_OK)
        st = check_scale(scale, "plaintext");
    size_t expect = payload_size(12, ((size_t)level + 1) * ctx->n);
    if (st == CDL_OK && payload_len != expect)
        st = cdl_fail(CDL_ERR_FORMAT, "plaintext: payload is %zu bytes, expected exactly %zu at level %u",
                      payload_len, expect, level);
    if (st == CDL_OK)
        st = cdl_ckks_plaintext_alloc(ctx, (int)level, &pt);
    if (st == CDL_OK)
        st = read_limbs(&r, ctx, (int)level + 1, pt->data, "plaintext");
    if (st == CDL_OK)
        st = cdl_reader_expect_end(&r);
    drop_payload(payload, payload_len, 0);
    if (st != CDL_OK) {
        cdl_ckks_plaintext_free(pt);
        return st;
    }
    pt->level = (int)level;
    pt->scale = scale;
    *out = pt;
    return CDL_OK;
}

/* ---- ciphertexts ---------------------------------------------------------
 * A fresh symmetric ciphertext whose c1 is still the expansion of its seed is
 * saved with the 32-byte seed in place of c1 (about half the size); the
 * loader re-expands it with the engine's own cdl_ckks_expand_seed. */

/* 1 if ct's c1 (limbs 0..level) is exactly the expansion of its seed. The
 * saver checks rather than trusts the flag: a stale flag would otherwise
 * silently corrupt the saved ciphertext. */
static cdl_status seed_still_valid(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *ct, int *valid)
{
    *valid = 0;
    if (!ct->seeded || ct->size != 2)
        return CDL_OK;
    size_t words = ((size_t)ct->level + 1) * ctx->n;
    uint64_t *tmp = cdl_alloc_array(words, sizeof *tmp);
    if (!tmp)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = cdl_ckks_expand_seed(ctx, ct->seed, ct->level, tmp);
    if (st == CDL_OK)
        *valid = memcmp(tmp, cdl_ct_poly(ct, 1, 0), words * sizeof *tmp) == 0;
    cdl_free(tmp);
    return st;
}

cdl_status cdl_ckks_ciphertext_save(const cdl_ckks_context *ctx, const cdl_ckks_ciphertext *ct, int compression,
                                    uint8_t **data, size_t *len)
{
    CDL_TRY(check_args(ctx, ct, data, len));
    if (!cdl_ckks_ct_fits(ctx, ct) || ct->size < 2 || ct->size > ct->capacity || ct->size > 3)
        return cdl_fail(CDL_ERR_MISMATCH, "ciphertext save: the ciphertext does not belong to this context");
    int seeded;
    CDL_TRY(seed_still_valid(ctx, ct, &seeded));
    cdl_writer w;
    cdl_writer_init(&w);
    cdl_write_u32(&w, (uint32_t)ct->size);
    cdl_write_u32(&w, (uint32_t)ct->level);
    cdl_write_u32(&w, seeded ? SER_CT_FLAG_SEEDED : 0u);
    cdl_write_f64(&w, ct->scale);
    if (seeded)
        cdl_write_bytes(&w, ct->seed, CDL_CKKS_SEED_BYTES);
    for (int k = 0; k < ct->size; k++)
        if (!(seeded && k == 1))
            write_limbs(&w, cdl_ct_poly(ct, k, 0), ct->level + 1, ctx->n);
    return finish_save(&w, CDL_OBJ_CIPHERTEXT, ctx, compression, data, len);
}

cdl_status cdl_ckks_ciphertext_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                    cdl_ckks_ciphertext **out)
{
    CDL_TRY(check_load_args(ctx, data, len, out));
    *out = NULL;
    size_t max_raw = payload_size(20, 3 * (size_t)ctx->q_count * ctx->n);
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    CDL_TRY(open_for(ctx, data, len, CDL_OBJ_CIPHERTEXT, max_raw, &payload, &payload_len));
    cdl_reader r;
    cdl_reader_init(&r, payload, payload_len);
    cdl_ckks_ciphertext *ct = NULL;
    uint32_t size = 0, level = 0, flags = 0;
    double scale = 0;
    uint8_t seed[CDL_CKKS_SEED_BYTES];
    cdl_status st = cdl_read_u32(&r, &size);
    if (st == CDL_OK && size != 2 && size != 3)
        st = cdl_fail(CDL_ERR_FORMAT, "ciphertext: %u polynomials; 2 or 3 expected", size);
    if (st == CDL_OK)
        st = cdl_read_u32(&r, &level);
    if (st == CDL_OK && level > (uint32_t)ctx->max_level)
        st = cdl_fail(CDL_ERR_FORMAT, "ciphertext: level %u is above the parameters' maximum level %d", level,
                      ctx->max_level);
    if (st == CDL_OK)
        st = cdl_read_u32(&r, &flags);
    if (st == CDL_OK && (flags & ~SER_CT_FLAG_SEEDED) != 0)
        st = cdl_fail(CDL_ERR_FORMAT, "ciphertext: unknown flags 0x%x", flags);
    int seeded = (flags & SER_CT_FLAG_SEEDED) != 0;
    if (st == CDL_OK && seeded && size != 2)
        st = cdl_fail(CDL_ERR_FORMAT, "ciphertext: only a 2-polynomial ciphertext can carry a seed");
    if (st == CDL_OK)
        st = cdl_read_f64(&r, &scale);
    if (st == CDL_OK)
        st = check_scale(scale, "ciphertext");
    size_t polys = (size_t)size - (size_t)seeded;
    size_t expect = payload_size(20 + (seeded ? CDL_CKKS_SEED_BYTES : 0), polys * ((size_t)level + 1) * ctx->n);
    if (st == CDL_OK && payload_len != expect)
        st = cdl_fail(CDL_ERR_FORMAT, "ciphertext: payload is %zu bytes, expected exactly %zu (%u polynomials%s at "
                      "level %u)", payload_len, expect, size, seeded ? ", one as a seed" : "", level);
    if (st == CDL_OK && seeded)
        st = cdl_read_bytes(&r, seed, sizeof seed);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_alloc(ctx, (int)size, (int)level, &ct);
    for (int k = 0; st == CDL_OK && k < (int)size; k++) {
        if (seeded && k == 1)
            st = cdl_ckks_expand_seed(ctx, seed, (int)level, cdl_ct_poly(ct, 1, 0));
        else
            st = read_limbs(&r, ctx, (int)level + 1, cdl_ct_poly(ct, k, 0), "ciphertext");
    }
    if (st == CDL_OK)
        st = cdl_reader_expect_end(&r);
    drop_payload(payload, payload_len, 0);
    if (st != CDL_OK) {
        cdl_ckks_ciphertext_free(ct);
        return st;
    }
    ct->size = (int)size;
    ct->level = (int)level;
    ct->scale = scale;
    ct->seeded = seeded;
    if (seeded)
        memcpy(ct->seed, seed, sizeof seed);
    *out = ct;
    return CDL_OK;
}

/* ---- for the other serializers (serialize_internal.h) -------------------- */

cdl_status cdl_ckks_ser_finish_save(cdl_writer *w, uint16_t type, const cdl_ckks_context *ctx, int compression,
                                    uint8_t **data, size_t *len)
{
    return finish_save(w, type, ctx, compression, data, len);
}

void cdl_ckks_ser_write_ksk(cdl_writer *w, const cdl_ckks_context *ctx, const cdl_ckks_ksk *k)
{
    cdl_write_u32(w, (uint32_t)ctx->dnum);
    cdl_write_u32(w, (uint32_t)ctx->qp_count);
    write_ksk(w, k);
}

size_t cdl_ckks_ser_ksk_size(const cdl_ckks_context *ctx)
{
    return payload_size(8, ksk_words(ctx));
}

cdl_status cdl_ckks_ser_read_ksk(cdl_reader *r, const cdl_ckks_context *ctx, cdl_ckks_ksk *k, const char *what)
{
    CDL_TRY(read_ksk_shape(r, ctx, what));
    const size_t need = payload_size(0, ksk_words(ctx));
    if (need == 0 || cdl_reader_remaining(r) < need)
        return cdl_fail(CDL_ERR_FORMAT, "%s: %zu bytes left but the key takes %zu", what, cdl_reader_remaining(r),
                        need);
    CDL_TRY(cdl_ckks_ksk_init(ctx, k));
    cdl_status st = read_ksk(r, ctx, k, what);
    if (st != CDL_OK)
        cdl_ckks_ksk_release(k);
    return st;
}

size_t cdl_ckks_ser_galois_max_size(const cdl_ckks_context *ctx, size_t count)
{
    size_t full = galois_payload_size(ctx, count);
    if (full == 0 || full > SIZE_MAX - 4 * count)
        return 0;
    return full + 4 * count; /* keys truncated to levels: at most full keys plus one level each */
}

cdl_status cdl_ckks_ser_write_galois_keys(cdl_writer *w, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk)
{
    return write_galois_keys(w, ctx, gk);
}

int cdl_ckks_ser_peek(const cdl_ckks_context *ctx, const uint8_t *data, size_t len, uint16_t type, uint8_t *dst,
                      size_t want, uint64_t *raw_len)
{
    if (!envelope_header_ok(ctx, data, len, type))
        return -1;
    *raw_len = 0;
    for (int i = 7; i >= 0; i--)
        *raw_len = (*raw_len << 8) | data[SER_ENV_RAW_LEN_AT + i];
    return want ? peek_payload(data, len, dst, want) : 0;
}

cdl_status cdl_ckks_ser_parse_galois_keys(const cdl_ckks_context *ctx, const uint8_t *payload, size_t payload_len,
                                          cdl_ckks_galois_keys **out)
{
    *out = NULL;
    return parse_galois_keys(ctx, payload, payload_len, out);
}
