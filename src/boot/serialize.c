/*
 * serialize.c: save and load the CKKS bootstrapping keys
 * (cdl_ckks_bootstrap_keys_save / _load, include/cryptodl/bootstrap.h).
 *
 * The keys travel in the envelope of src/core/bytes.h like every CKKS object
 * (magic, format version, object type 9 "bootstrapping keys", the parameter
 * hash of the bootstrapper's main context, optional zstd, BLAKE2b checksum).
 * Payload (little-endian; docs/serialization.md, "Bootstrapping keys"):
 *
 *   offset   size     field                               loader check
 *   0        9 x u32  log_slots, cts_levels, stc_levels,  each = the bootstrapper's
 *                     k_bound, cos_degree, double_angle,  (else CDL_ERR_MISMATCH)
 *                     log_message_ratio,
 *                     sse_hamming_weight, sse_p_bits
 *   36       f64      out_scale (as resolved: the         = the bootstrapper's (MISMATCH)
 *                     context's default when 0 was asked)
 *   44       32       parameter hash of the encapsulation = the bootstrapper's (MISMATCH)
 *                     context (q0, p'), zeros without
 *   76       u32      S: rotation steps of the plan        = bt->nsteps (MISMATCH)
 *                     (SubSum's included)
 *   80       S x      (step as i32, level as u32)         = bt->steps, bt->step_levels (MISMATCH)
 *                     2 x u32
 *   80+8S    u32      has_sse                              0 or 1, and = (encapsulation on)
 *   84+8S    u64      G: length of the Galois part         <= what is left, and what follows
 *                                                          it must be exactly the two keys below
 *   92+8S    G        a Galois-key payload (type 5, with   parsed by the Galois-key loader;
 *                     the per-key levels)                  then: exactly the keys the plan
 *                                                          needs (the steps' distinct Galois
 *                                                          elements plus conjugation), each
 *                                                          at least at its step's level,
 *                                                          conjugation at least at the
 *                                                          CoeffToSlot output level
 *   if has_sse:       to_sparse: u32 dnum, u32 QP', the   full-level key of the encapsulation
 *                     key (relinearization-key layout)    context (q0 and p'), words < primes
 *                     from_sparse: the same over the      full-level key of the main context
 *                     main context
 *
 * Everything after the header is bound to the bootstrapping parameters, so
 * keys made for another plan are refused with CDL_ERR_MISMATCH before any key
 * material is read; bad bytes give CDL_ERR_FORMAT (the binding fields are
 * first checked against the ranges any bootstrapper has, so that another
 * object relabelled as bootstrapping keys is FORMAT). The envelope's raw length
 * is bounded before decompression by what the bootstrapper's keys can take at
 * most (a full-level key per rotation step plus conjugation, the two
 * encapsulation keys); a larger one has its binding fields read first (only
 * those decompressed), so that the keys of a larger plan are CDL_ERR_MISMATCH
 * too. The keys are public evaluation keys: nothing is wiped.
 */
#include <math.h>
#include <string.h>

#include "boot/boot_internal.h"
#include "ckks/serialize_internal.h"
#include "core/bytes.h"
#include "core/error.h"
#include "core/memory.h"

#define BK_PARAM_FIELDS 9
#define BK_FIXED_BYTES (BK_PARAM_FIELDS * 4 + 8 + CDL_HASH_BYTES + 4) /* up to S */
#define BK_TAIL_BYTES (4 + 8)                                          /* has_sse, G */

static void param_fields(const cdl_ckks_bootstrap_params *p, uint32_t v[BK_PARAM_FIELDS])
{
    v[0] = (uint32_t)p->log_slots;
    v[1] = (uint32_t)p->cts_levels;
    v[2] = (uint32_t)p->stc_levels;
    v[3] = (uint32_t)p->k_bound;
    v[4] = (uint32_t)p->cos_degree;
    v[5] = (uint32_t)p->double_angle;
    v[6] = (uint32_t)p->log_message_ratio;
    v[7] = (uint32_t)p->sse_hamming_weight;
    v[8] = (uint32_t)p->sse_p_bits;
}

static const char *const param_names[BK_PARAM_FIELDS] = {
    "log_slots",    "cts_levels",        "stc_levels",         "k_bound",   "cos_degree",
    "double_angle", "log_message_ratio", "sse_hamming_weight", "sse_p_bits"};

/* Distinct Galois keys the plan needs: the steps' elements (identity
 * excluded) plus conjugation (2N - 1, never a power of 5 modulo 2N). */
static size_t needed_keys(const cdl_ckks_bootstrapper *bt)
{
    size_t m = 1;
    for (int s = 0; s < bt->nsteps; s++) {
        const uint64_t g = cdl_ckks_galois_element(bt->ctx, bt->steps[s]);
        int dup = g == 1;
        for (int t = 0; t < s && !dup; t++)
            dup = cdl_ckks_galois_element(bt->ctx, bt->steps[t]) == g;
        m += (size_t)!dup;
    }
    return m;
}

/* Do the keys fit the bootstrapper? `status` is what a misfit returns
 * (CDL_ERR_MISMATCH when saving, CDL_ERR_FORMAT for loaded bytes whose
 * parameters matched). */
static cdl_status check_fit(const cdl_ckks_bootstrapper *bt, const cdl_ckks_bootstrap_keys *bk, cdl_status status)
{
    const char *what = status == CDL_ERR_FORMAT ? "bootstrapping keys (corrupt or forged data)"
                                                : "bootstrapping keys save: the keys do not fit the bootstrapper";
    if (!bk->gk || !!bk->has_sse != !!bt->sse_ctx)
        return cdl_fail(status, "%s: %s", what,
                        !bk->gk ? "no Galois keys" : "encapsulation keys present for a plan without, or the reverse");
    const size_t need = needed_keys(bt);
    if (bk->gk->count != need)
        return cdl_fail(status, "%s: %zu Galois keys, the plan needs exactly %zu", what, bk->gk->count, need);
    for (int s = 0; s < bt->nsteps; s++)
        if (cdl_ckks_galois_keys_step_level(bk->gk, bt->steps[s]) < bt->step_levels[s])
            return cdl_fail(status, "%s: no key for rotation step %d at level %d or above", what, bt->steps[s],
                            bt->step_levels[s]);
    if (cdl_ckks_galois_keys_step_level(bk->gk, 0) < bt->level_cts_out)
        return cdl_fail(status, "%s: no conjugation key at level %d or above", what, bt->level_cts_out);
    for (size_t i = 0; i < bk->gk->count; i++)
        if (!bk->gk->keys[i].data || !cdl_ckks_ksk_fits(bt->ctx, &bk->gk->keys[i], 0))
            return cdl_fail(status, "%s: Galois key %zu is not a key of the context", what, i);
    if (bk->has_sse && (!bk->to_sparse.data || !bk->from_sparse.data ||
                        !cdl_ckks_ksk_fits(bt->sse_ctx, &bk->to_sparse, 0) ||
                        !cdl_ckks_ksk_fits(bt->ctx, &bk->from_sparse, bt->ctx->max_level)))
        return cdl_fail(status, "%s: the encapsulation keys do not have the shapes of their contexts", what);
    return CDL_OK;
}

/* The encapsulation part after the Galois keys, in bytes (0 on overflow). */
static size_t sse_bytes(const cdl_ckks_bootstrapper *bt)
{
    if (!bt->sse_ctx)
        return 0;
    const size_t a = cdl_ckks_ser_ksk_size(bt->sse_ctx), b = cdl_ckks_ser_ksk_size(bt->ctx);
    return a == 0 || b == 0 || a > SIZE_MAX - b ? 0 : a + b;
}

cdl_status cdl_ckks_bootstrap_keys_save(const cdl_ckks_bootstrapper *bt, const cdl_ckks_bootstrap_keys *bk,
                                        int compression, uint8_t **data, size_t *len)
{
    if (!bt || !bk || !data || !len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_ckks_bootstrap_keys_save: NULL argument (bootstrapper, keys and outputs are required)");
    *data = NULL;
    *len = 0;
    if (compression < 0 || compression > 19)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "compression level %d out of range (0 = none, 1..19 = zstd)",
                        compression);
    CDL_TRY(check_fit(bt, bk, CDL_ERR_MISMATCH));
    uint32_t fields[BK_PARAM_FIELDS];
    param_fields(&bt->p, fields);
    uint8_t sse_hash[CDL_HASH_BYTES] = {0};
    if (bt->sse_ctx)
        memcpy(sse_hash, bt->sse_ctx->param_hash, CDL_HASH_BYTES);
    cdl_writer w;
    cdl_writer_init(&w);
    for (int i = 0; i < BK_PARAM_FIELDS; i++)
        cdl_write_u32(&w, fields[i]);
    cdl_write_f64(&w, bt->p.out_scale);
    cdl_write_bytes(&w, sse_hash, sizeof sse_hash);
    cdl_write_u32(&w, (uint32_t)bt->nsteps);
    for (int s = 0; s < bt->nsteps; s++) {
        cdl_write_u32(&w, (uint32_t)bt->steps[s]);
        cdl_write_u32(&w, (uint32_t)bt->step_levels[s]);
    }
    cdl_write_u32(&w, bk->has_sse ? 1u : 0u);
    const size_t g_at = w.len;
    cdl_write_u64(&w, 0); /* G, patched below */
    cdl_status st = cdl_writer_status(&w);
    if (st == CDL_OK)
        st = cdl_ckks_ser_write_galois_keys(&w, bt->ctx, bk->gk);
    if (st == CDL_OK) {
        const uint64_t g = (uint64_t)(w.len - g_at - 8);
        for (int i = 0; i < 8; i++)
            w.data[g_at + (size_t)i] = (uint8_t)(g >> (8 * i));
    }
    if (st == CDL_OK && bk->has_sse) {
        cdl_ckks_ser_write_ksk(&w, bt->sse_ctx, &bk->to_sparse);
        cdl_ckks_ser_write_ksk(&w, bt->ctx, &bk->from_sparse);
    }
    if (st != CDL_OK) {
        cdl_writer_free(&w);
        return st;
    }
    return cdl_ckks_ser_finish_save(&w, CDL_OBJ_BOOTSTRAP_KEYS, bt->ctx, compression, data, len);
}

/* The binding part (parameters, encapsulation hash, plan, has_sse) in two
 * passes: first every field against its valid range, whatever the
 * bootstrapper (CDL_ERR_FORMAT: the bytes cannot be bootstrapping keys, e.g.
 * another object relabelled), then against bt (CDL_ERR_MISMATCH: valid keys
 * of other bootstrapping parameters). The ranges are those that
 * cdl_ckks_bootstrapper_new accepts. Sets *has_sse. */
static cdl_status read_binding(cdl_reader *r, const cdl_ckks_bootstrapper *bt, uint32_t *has_sse)
{
    const cdl_ckks_context *ctx = bt->ctx;
    const char *bad = "bootstrapping keys (corrupt data or not bootstrapping keys)";
    uint32_t v[BK_PARAM_FIELDS];
    for (int i = 0; i < BK_PARAM_FIELDS; i++)
        CDL_TRY(cdl_read_u32(r, &v[i]));
    const uint32_t full = (uint32_t)ctx->log_n - 1, sse = v[7] != 0;
    const uint32_t stages = v[0] >= 1 && v[0] <= full ? v[0] : full; /* log2 of the slots */
    const uint32_t lo[BK_PARAM_FIELDS] = {0, 1, 1, 1, 3, 0, 1, 0, sse ? 20u : 0u};
    const uint32_t hi[BK_PARAM_FIELDS] = {full, stages, stages, 1024, CDL_APPROX_MAX_DEGREE, 6, 30, (uint32_t)ctx->n,
                                          61};
    for (int i = 0; i < BK_PARAM_FIELDS; i++)
        if (v[i] < lo[i] || v[i] > hi[i])
            return cdl_fail(CDL_ERR_FORMAT, "%s: %s is %u, outside %u..%u", bad, param_names[i], v[i], lo[i], hi[i]);
    double out_scale;
    CDL_TRY(cdl_read_f64(r, &out_scale));
    if (!(out_scale > 0))
        return cdl_fail(CDL_ERR_FORMAT, "%s: output scale %g is not positive", bad, out_scale);
    uint8_t hash[CDL_HASH_BYTES], zero[CDL_HASH_BYTES] = {0};
    CDL_TRY(cdl_read_bytes(r, hash, sizeof hash));
    if ((memcmp(hash, zero, sizeof hash) != 0) != sse)
        return cdl_fail(CDL_ERR_FORMAT, "%s: an encapsulation hash %s sparse-secret encapsulation", bad,
                        sse ? "of zeros with" : "without");
    uint32_t steps;
    CDL_TRY(cdl_read_u32(r, &steps));
    if (steps > cdl_reader_remaining(r) / 8)
        return cdl_fail(CDL_ERR_FORMAT, "%s: %u rotation steps in %zu bytes", bad, steps, cdl_reader_remaining(r));
    const uint8_t *plan = r->data + r->pos;
    for (uint32_t s = 0; s < steps; s++) {
        uint32_t step, level;
        CDL_TRY(cdl_read_u32(r, &step));
        CDL_TRY(cdl_read_u32(r, &level));
        const int64_t signed_step = (int32_t)step;
        if (signed_step <= -(int64_t)ctx->n || signed_step >= (int64_t)ctx->n || level > (uint32_t)ctx->max_level)
            return cdl_fail(CDL_ERR_FORMAT, "%s: rotation %u is step %lld at level %u", bad, s,
                            (long long)signed_step, level);
    }
    CDL_TRY(cdl_read_u32(r, has_sse));
    if (*has_sse != sse)
        return cdl_fail(CDL_ERR_FORMAT, "%s: has_sse is %u, the encapsulation weight %u", bad, *has_sse, v[7]);

    const char *other = "bootstrapping keys made for other bootstrapping parameters";
    uint32_t fields[BK_PARAM_FIELDS];
    param_fields(&bt->p, fields);
    for (int i = 0; i < BK_PARAM_FIELDS; i++)
        if (v[i] != fields[i])
            return cdl_fail(CDL_ERR_MISMATCH, "%s: %s is %u in the data, %u here", other, param_names[i], v[i],
                            fields[i]);
    if (out_scale != bt->p.out_scale)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: output scale 2^%.2f in the data, 2^%.2f here", other, log2(out_scale),
                        log2(bt->p.out_scale));
    if (memcmp(hash, bt->sse_ctx ? bt->sse_ctx->param_hash : zero, sizeof hash) != 0)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: the encapsulation parameters (q0, p', h') differ", other);
    if (steps != (uint32_t)bt->nsteps)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: a plan of %u rotation steps in the data, %d here", other, steps,
                        bt->nsteps);
    cdl_reader pr;
    cdl_reader_init(&pr, plan, 8 * (size_t)steps);
    for (int s = 0; s < bt->nsteps; s++) {
        uint32_t step, level;
        CDL_TRY(cdl_read_u32(&pr, &step));
        CDL_TRY(cdl_read_u32(&pr, &level));
        if (step != (uint32_t)bt->steps[s] || level != (uint32_t)bt->step_levels[s])
            return cdl_fail(CDL_ERR_MISMATCH, "%s: rotation %d of the plan is step %d at level %u in the data, step "
                            "%d at level %d here", other, s, (int32_t)step, level, bt->steps[s], bt->step_levels[s]);
    }
    return CDL_OK;
}

static cdl_status parse_keys(const cdl_ckks_bootstrapper *bt, const uint8_t *payload, size_t payload_len,
                             cdl_ckks_bootstrap_keys *bk)
{
    cdl_reader r;
    cdl_reader_init(&r, payload, payload_len);
    uint32_t has_sse;
    CDL_TRY(read_binding(&r, bt, &has_sse));
    bk->has_sse = (int)has_sse; /* = (bt->sse_ctx != NULL): the weights matched */
    uint64_t g_len;
    CDL_TRY(cdl_read_u64(&r, &g_len));
    const size_t left = cdl_reader_remaining(&r), tail = sse_bytes(bt);
    if (g_len > left || left - (size_t)g_len != tail)
        return cdl_fail(CDL_ERR_FORMAT,
                        "bootstrapping keys: a %llu-byte Galois part and %zu bytes of encapsulation keys do not make "
                        "the %zu bytes that follow",
                        (unsigned long long)g_len, tail, left);
    CDL_TRY(cdl_ckks_ser_parse_galois_keys(bt->ctx, payload + r.pos, (size_t)g_len, &bk->gk));
    r.pos += (size_t)g_len;
    if (has_sse) {
        CDL_TRY(cdl_ckks_ser_read_ksk(&r, bt->sse_ctx, &bk->to_sparse,
                                      "bootstrapping keys (switch to the sparse secret)"));
        CDL_TRY(cdl_ckks_ser_read_ksk(&r, bt->ctx, &bk->from_sparse, "bootstrapping keys (switch back from it)"));
    }
    CDL_TRY(cdl_reader_expect_end(&r));
    return check_fit(bt, bk, CDL_ERR_FORMAT);
}

/* A payload declared larger than bt's keys can be: read its binding fields
 * first (decompressing only them) so that valid keys of a larger plan are
 * refused as CDL_ERR_MISMATCH rather than as oversized. CDL_OK when they
 * cannot be read or match bt (the envelope check then refuses the size). */
static cdl_status refuse_oversized(const cdl_ckks_bootstrapper *bt, const uint8_t *data, size_t len)
{
    uint8_t head[BK_FIXED_BYTES];
    uint64_t raw_len;
    if (cdl_ckks_ser_peek(bt->ctx, data, len, CDL_OBJ_BOOTSTRAP_KEYS, head, sizeof head, &raw_len) != 0)
        return CDL_OK;
    const uint8_t *p = head + BK_FIXED_BYTES - 4;
    const uint32_t steps = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (steps > bt->ctx->n)
        return CDL_OK;
    const size_t want = BK_FIXED_BYTES + 8 * (size_t)steps + 4;
    uint8_t *buf = cdl_alloc_array(want, 1);
    if (!buf)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = CDL_OK;
    if (cdl_ckks_ser_peek(bt->ctx, data, len, CDL_OBJ_BOOTSTRAP_KEYS, buf, want, &raw_len) == 0) {
        cdl_reader r;
        uint32_t has_sse;
        cdl_reader_init(&r, buf, want);
        st = read_binding(&r, bt, &has_sse);
    }
    cdl_free(buf);
    return st;
}

cdl_status cdl_ckks_bootstrap_keys_load(const cdl_ckks_bootstrapper *bt, const uint8_t *data, size_t len,
                                        cdl_ckks_bootstrap_keys **out)
{
    if (!bt || !out || (!data && len))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_ckks_bootstrap_keys_load: NULL argument (bootstrapper, data and output are required)");
    *out = NULL;
    /* Above the largest valid payload: a full-level key per step plus
     * conjugation (needed_keys is exact but quadratic in the steps), the
     * encapsulation keys. */
    const size_t fixed = BK_FIXED_BYTES + 8 * (size_t)bt->nsteps + BK_TAIL_BYTES;
    const size_t galois = cdl_ckks_ser_galois_max_size(bt->ctx, (size_t)bt->nsteps + 1), tail = sse_bytes(bt);
    if (galois == 0 || (bt->sse_ctx && tail == 0) || tail > SIZE_MAX - fixed || galois > SIZE_MAX - fixed - tail)
        return cdl_fail(CDL_ERR_NO_MEMORY, "bootstrapping keys: these parameters' keys would not fit in memory");
    const size_t max_raw = fixed + galois + tail;
    uint64_t raw_len;
    if (cdl_ckks_ser_peek(bt->ctx, data, len, CDL_OBJ_BOOTSTRAP_KEYS, NULL, 0, &raw_len) == 0 && raw_len > max_raw)
        CDL_TRY(refuse_oversized(bt, data, len));
    uint8_t *payload = NULL;
    size_t payload_len = 0;
    CDL_TRY(cdl_envelope_open(data, len, CDL_OBJ_BOOTSTRAP_KEYS, bt->ctx->param_hash, max_raw, &payload,
                              &payload_len, NULL));
    cdl_ckks_bootstrap_keys *bk = cdl_calloc_array(1, sizeof *bk);
    cdl_status st = bk ? parse_keys(bt, payload, payload_len, bk) : CDL_ERR_NO_MEMORY;
    cdl_free_bytes(payload);
    if (st != CDL_OK) {
        cdl_ckks_bootstrap_keys_free(bk);
        return st;
    }
    *out = bk;
    return CDL_OK;
}
