/*
 * he_batch.c: the client side of batch-SIMD inference: encrypt a batch of
 * images (one ciphertext per input value, image j in slot j), decrypt the
 * logits, and the batch container with its serialization.
 *
 * Randomness: each ciphertext gets its own ChaCha20 stream seeded from the
 * caller's generator (drawn in order before the parallel loop), so the
 * ciphertexts do not depend on the thread count and threads never share a
 * generator. The flooded decryption does the same (cdl_rng_new_child, which
 * keeps the parent's kind: a seeded parent is refused).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile/he_plan.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/rng.h"
#include "runtime/he_runtime.h"

#define HE_BATCH_MAGIC "CDLHEBAT"
#define HE_BATCH_VERSION 1u
#define HE_BATCH_MAX_COUNT ((uint64_t)1 << 24)

cdl_status cdl_he_batch_alloc(size_t n_images, size_t count, cdl_he_batch **out)
{
    cdl_he_batch *b = cdl_calloc_array(1, sizeof *b);
    if (!b)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he batch: out of memory");
    b->ct = cdl_calloc_array(count ? count : 1, sizeof *b->ct);
    if (!b->ct) {
        cdl_free(b);
        return cdl_fail(CDL_ERR_NO_MEMORY, "he batch: out of memory for %zu ciphertexts", count);
    }
    b->n_images = n_images;
    b->count = count;
    *out = b;
    return CDL_OK;
}

void cdl_he_batch_free(cdl_he_batch *batch)
{
    if (!batch)
        return;
    for (size_t i = 0; i < batch->count; i++)
        cdl_ckks_ciphertext_free(batch->ct[i]);
    cdl_free(batch->ct);
    cdl_free(batch);
}

size_t cdl_he_batch_images(const cdl_he_batch *batch) { return batch ? batch->n_images : 0; }
size_t cdl_he_batch_count(const cdl_he_batch *batch) { return batch ? batch->count : 0; }
const cdl_ckks_ciphertext *cdl_he_batch_ciphertext(const cdl_he_batch *batch, size_t i)
{
    return batch && i < batch->count ? batch->ct[i] : NULL;
}

cdl_status cdl_he_batch_bytes(const cdl_ckks_context *ctx, const cdl_he_batch *batch, size_t *bytes)
{
    if (!ctx || !batch || !bytes)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_batch_bytes: NULL argument");
    /* every ciphertext of a batch has the same level and form: measure one */
    *bytes = 0;
    for (size_t i = 0; i < batch->count; i++) {
        if (!batch->ct[i])
            continue;
        uint8_t *data = NULL;
        size_t len = 0;
        CDL_TRY(cdl_ckks_ciphertext_save(ctx, batch->ct[i], 0, &data, &len));
        cdl_free_bytes(data);
        *bytes = len * batch->count;
        break;
    }
    return CDL_OK;
}

/* ---- encrypt / decrypt ------------------------------------------------------ */

cdl_status cdl_he_encrypt_batch(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                const cdl_ckks_public_key *pk, const cdl_ckks_secret_key *sk,
                                const double *images, size_t n, cdl_rng *rng, cdl_he_batch **out)
{
    if (!plan || !ctx || !images || !rng || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_encrypt_batch: NULL argument");
    *out = NULL;
    if ((pk == NULL) == (sk == NULL))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_he_encrypt_batch: give exactly one of the public key and the secret key");
    const int slots = plan->packing == CDL_HE_PACKING_SLOTS;
    if (n == 0 || n > cdl_he_plan_batch_capacity(plan))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_he_encrypt_batch: %zu images, but a batch holds 1..%zu (%s); split the images "
                        "into batches",
                        n, cdl_he_plan_batch_capacity(plan), slots ? "slots packing" : "N/2 slots");
    if (cdl_ckks_log_n(ctx) != plan->spec.log_n)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_he_encrypt_batch: the context is not the plan's (N = 2^%d, not 2^%d)",
                        cdl_ckks_log_n(ctx), plan->spec.log_n);
    if (cdl_ckks_max_level(ctx) < plan->levels)
        return cdl_fail(CDL_ERR_MISMATCH,
                        "cdl_he_encrypt_batch: the context has %d levels but the plan needs %d; build the context "
                        "with cdl_he_context_new",
                        cdl_ckks_max_level(ctx), plan->levels);
    const size_t count = cdl_he_plan_input_ciphertexts(plan), width = slots ? plan->slots : n;
    uint8_t(*seeds)[CDL_RNG_SEED_BYTES] = cdl_alloc_array(count, CDL_RNG_SEED_BYTES);
    if (!seeds)
        return cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_encrypt_batch: out of memory");
    for (size_t i = 0; i < count; i++)
        cdl_rng_bytes(rng, seeds[i], CDL_RNG_SEED_BYTES);
    cdl_he_batch *b = NULL;
    cdl_status st = cdl_he_batch_alloc(n, count, &b);
    if (st != CDL_OK) {
        cdl_free(seeds);
        return st;
    }
    int failed = 0;
    cdl_status fst = CDL_OK;
    char msg[512] = "";
#pragma omp parallel
    {
        double *vals = cdl_alloc_array(width, sizeof *vals);
        cdl_ckks_plaintext *pt = NULL;
        cdl_status ts = vals ? cdl_ckks_plaintext_new(ctx, &pt) : cdl_fail(CDL_ERR_NO_MEMORY, "out of memory");
#pragma omp for schedule(dynamic, 4)
        for (size_t i = 0; i < count; i++) {
            if (ts != CDL_OK || failed)
                continue;
            if (slots)
                cdl_he_slots_input_vector(plan, images, n, i, vals);
            else
                for (size_t j = 0; j < n; j++)
                    vals[j] = images[j * count + i];
            cdl_rng *r = NULL;
            ts = cdl_ckks_encode(ctx, vals, width, plan->scale, plan->levels, pt);
            if (ts == CDL_OK)
                ts = cdl_rng_new_seeded(seeds[i], &r);
            if (ts == CDL_OK)
                ts = cdl_ckks_ciphertext_new(ctx, &b->ct[i]);
            if (ts == CDL_OK)
                ts = pk ? cdl_ckks_encrypt_pk(ctx, pk, pt, r, b->ct[i]) : cdl_ckks_encrypt_sk(ctx, sk, pt, r, b->ct[i]);
            cdl_rng_free(r);
        }
        if (ts != CDL_OK) {
#pragma omp critical(cdl_he_encrypt_error)
            if (!failed) {
                failed = 1;
                fst = ts;
                snprintf(msg, sizeof msg, "%s", cdl_last_error());
            }
        }
        cdl_ckks_plaintext_free(pt);
        if (vals)
            cdl_wipe(vals, width * sizeof *vals); /* the client's pixels */
        cdl_free(vals);
    }
    cdl_wipe(seeds, count * CDL_RNG_SEED_BYTES);
    cdl_free(seeds);
    if (failed) {
        cdl_he_batch_free(b);
        return cdl_fail(fst, "cdl_he_encrypt_batch: %s", msg);
    }
    *out = b;
    return CDL_OK;
}

/* Decrypt (flood != NULL: flooded, one child stream of rng per ciphertext)
 * and decode every output ciphertext. */
static cdl_status decrypt_logits(const char *fn, const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                 const cdl_ckks_secret_key *sk, const cdl_he_batch *logits,
                                 const cdl_ckks_flood_options *flood, cdl_rng *rng, double *out,
                                 cdl_ckks_flood_info *info)
{
    if (!plan || !ctx || !sk || !logits || !out || (flood && !rng))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s: NULL argument", fn);
    const int slots = plan->packing == CDL_HE_PACKING_SLOTS;
    if (logits->count != cdl_he_plan_output_ciphertexts(plan))
        return cdl_fail(CDL_ERR_MISMATCH, "%s: %zu ciphertexts, but the plan (%s packing) gives %zu", fn,
                        logits->count, slots ? "slots" : "batch", cdl_he_plan_output_ciphertexts(plan));
    if (logits->n_images > cdl_he_plan_batch_capacity(plan))
        return cdl_fail(CDL_ERR_MISMATCH, "%s: %zu images, more than a batch of this plan holds", fn,
                        logits->n_images);
    const size_t n = logits->n_images, count = logits->count, width = slots ? plan->slots : n;
    cdl_rng **child = NULL;
    cdl_ckks_flood_info *infos = NULL;
    cdl_ckks_flood_options fopt;
    if (flood) {
        CDL_TRY(cdl_rng_check_secret(rng, fn));
        /* by default an adversary sees at least the ciphertexts decrypted here */
        fopt = *flood;
        if (fopt.queries == 0.0) {
            size_t present = 0;
            for (size_t k = 0; k < count; k++)
                present += logits->ct[k] != NULL;
            fopt.queries = present ? (double)present : 1.0;
        }
        flood = &fopt;
        child = cdl_calloc_array(count ? count : 1, sizeof *child);
        infos = cdl_calloc_array(count ? count : 1, sizeof *infos);
        if (!child || !infos) {
            cdl_free(child);
            cdl_free(infos);
            return cdl_fail(CDL_ERR_NO_MEMORY, "%s: out of memory", fn);
        }
        for (size_t k = 0; k < count; k++) {
            cdl_status cs = cdl_rng_new_child(rng, &child[k]);
            if (cs != CDL_OK) {
                for (size_t j = 0; j < k; j++)
                    cdl_rng_free(child[j]);
                cdl_free(child);
                cdl_free(infos);
                return cs;
            }
        }
    }
    int failed = 0;
    cdl_status fst = CDL_OK;
    char msg[512] = "";
#pragma omp parallel
    {
        double *vals = cdl_alloc_array(width ? width : 1, sizeof *vals);
        cdl_ckks_plaintext *pt = NULL;
        cdl_status ts = vals ? cdl_ckks_plaintext_new(ctx, &pt) : cdl_fail(CDL_ERR_NO_MEMORY, "out of memory");
#pragma omp for schedule(static)
        for (size_t k = 0; k < count; k++) {
            if (ts != CDL_OK || failed)
                continue;
            if (!logits->ct[k]) {
                if (slots) {
                    ts = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "output ciphertext %zu is missing", k);
                    continue;
                }
                for (size_t j = 0; j < n; j++)
                    out[j * count + k] = 0.0;
                continue;
            }
            ts = flood ? cdl_ckks_decrypt_flooded(ctx, sk, logits->ct[k], flood, child[k], pt, &infos[k])
                       : cdl_ckks_decrypt(ctx, sk, logits->ct[k], pt);
            if (ts == CDL_OK)
                ts = cdl_ckks_decode(ctx, pt, vals, width);
            if (ts == CDL_OK && slots)
                cdl_he_slots_output_values(plan, vals, k, n, out);
            else if (ts == CDL_OK)
                for (size_t j = 0; j < n; j++)
                    out[j * count + k] = vals[j];
        }
        if (ts != CDL_OK) {
#pragma omp critical(cdl_he_decrypt_error)
            if (!failed) {
                failed = 1;
                fst = ts;
                snprintf(msg, sizeof msg, "%s", cdl_last_error());
            }
        }
        cdl_ckks_plaintext_free(pt);
        if (vals)
            cdl_wipe(vals, (width ? width : 1) * sizeof *vals); /* decrypted values */
        cdl_free(vals);
    }
    if (flood) {
        cdl_ckks_flood_info worst = {fopt.queries, 0.0, 0.0, 0.0};
        for (size_t k = 0; k < count; k++) {
            cdl_rng_free(child[k]);
            if (!logits->ct[k])
                continue;
            worst.noise_log2 = infos[k].noise_log2 > worst.noise_log2 ? infos[k].noise_log2 : worst.noise_log2;
            worst.sigma_log2 = infos[k].sigma_log2 > worst.sigma_log2 ? infos[k].sigma_log2 : worst.sigma_log2;
            worst.slot_error = infos[k].slot_error > worst.slot_error ? infos[k].slot_error : worst.slot_error;
        }
        cdl_free(child);
        cdl_free(infos);
        if (info && !failed)
            *info = worst;
    }
    if (failed) {
        cdl_wipe(out, n * cdl_he_plan_output_size(plan) * sizeof *out); /* no partial results */
        return cdl_fail(fst, "%s: %s", fn, msg);
    }
    return CDL_OK;
}

cdl_status cdl_he_decrypt_logits(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                 const cdl_ckks_secret_key *sk, const cdl_he_batch *logits, double *out)
{
    return decrypt_logits("cdl_he_decrypt_logits", plan, ctx, sk, logits, NULL, NULL, out, NULL);
}

cdl_status cdl_he_decrypt_logits_flooded(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                         const cdl_ckks_secret_key *sk, const cdl_he_batch *logits,
                                         const cdl_ckks_flood_options *opt, cdl_rng *rng, double *out,
                                         cdl_ckks_flood_info *info)
{
    static const cdl_ckks_flood_options defaults = {0, 0.0, 0.0};
    return decrypt_logits("cdl_he_decrypt_logits_flooded", plan, ctx, sk, logits, opt ? opt : &defaults, rng, out,
                          info);
}

/* ---- serialization ----------------------------------------------------------- */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Layout: magic[8] | version u64 | images u64 | count u64 | count x (len u64 | ciphertext bytes). */
cdl_status cdl_he_batch_save(const cdl_ckks_context *ctx, const cdl_he_batch *batch, int compression,
                             uint8_t **data, size_t *len)
{
    if (!ctx || !batch || !data || !len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_batch_save: NULL argument");
    uint8_t **blobs = cdl_calloc_array(batch->count ? batch->count : 1, sizeof *blobs);
    size_t *lens = cdl_calloc_array(batch->count ? batch->count : 1, sizeof *lens);
    cdl_status st = CDL_OK;
    if (!blobs || !lens) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_batch_save: out of memory");
        goto done;
    }
    size_t total = 32;
    for (size_t i = 0; i < batch->count; i++) {
        if (!batch->ct[i]) {
            st = cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_batch_save: value %zu is an exact zero, not a ciphertext",
                          i);
            goto done;
        }
        CDL_TRY_GOTO(st, cdl_ckks_ciphertext_save(ctx, batch->ct[i], compression, &blobs[i], &lens[i]), done);
        total += 8 + lens[i];
    }
    uint8_t *buf = malloc(total);
    if (!buf) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_batch_save: out of memory for %zu bytes", total);
        goto done;
    }
    memcpy(buf, HE_BATCH_MAGIC, 8);
    put_u64(buf + 8, HE_BATCH_VERSION);
    put_u64(buf + 16, batch->n_images);
    put_u64(buf + 24, batch->count);
    size_t at = 32;
    for (size_t i = 0; i < batch->count; i++) {
        put_u64(buf + at, lens[i]);
        memcpy(buf + at + 8, blobs[i], lens[i]);
        at += 8 + lens[i];
    }
    *data = buf;
    *len = total;
done:
    if (blobs)
        for (size_t i = 0; i < batch->count; i++)
            cdl_free_bytes(blobs[i]);
    cdl_free(blobs);
    cdl_free(lens);
    return st;
}

cdl_status cdl_he_batch_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len, cdl_he_batch **out)
{
    if (!ctx || !data || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_batch_load: NULL argument");
    *out = NULL;
    if (len < 32 || memcmp(data, HE_BATCH_MAGIC, 8))
        return cdl_fail(CDL_ERR_FORMAT, "cdl_he_batch_load: not an encrypted batch (bad magic or too short)");
    uint64_t version = get_u64(data + 8), images = get_u64(data + 16), count = get_u64(data + 24);
    if (version != HE_BATCH_VERSION)
        return cdl_fail(CDL_ERR_FORMAT, "cdl_he_batch_load: format version %llu, this build reads %u",
                        (unsigned long long)version, HE_BATCH_VERSION);
    if (images == 0 || images > cdl_ckks_slots(ctx) || count == 0 || count > HE_BATCH_MAX_COUNT)
        return cdl_fail(CDL_ERR_FORMAT, "cdl_he_batch_load: %llu images / %llu ciphertexts out of range",
                        (unsigned long long)images, (unsigned long long)count);
    /* Each ciphertext takes at least its 8-byte length and a 96-byte envelope:
     * refuse a count the bytes cannot hold before allocating for it. */
    if (count > (len - 32) / (8 + 96))
        return cdl_fail(CDL_ERR_FORMAT, "cdl_he_batch_load: %llu ciphertexts cannot fit in %zu bytes",
                        (unsigned long long)count, len);
    cdl_he_batch *b = NULL;
    CDL_TRY(cdl_he_batch_alloc((size_t)images, (size_t)count, &b));
    size_t *offset = cdl_alloc_array((size_t)count, sizeof *offset), *length = cdl_alloc_array((size_t)count,
                                                                                                 sizeof *length);
    cdl_status st = CDL_OK;
    if (!offset || !length) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_batch_load: out of memory");
        goto fail;
    }
    /* The framing first (sequential, cheap), then the ciphertexts, which are
     * independent: their loaders (checksum, decompression, seed expansion,
     * coefficient checks) run in parallel. */
    size_t at = 32;
    for (size_t i = 0; i < count; i++) {
        if (len - at < 8) {
            st = cdl_fail(CDL_ERR_FORMAT, "cdl_he_batch_load: truncated at ciphertext %zu", i);
            goto fail;
        }
        uint64_t l = get_u64(data + at);
        at += 8;
        if (l > len - at) {
            st = cdl_fail(CDL_ERR_FORMAT, "cdl_he_batch_load: ciphertext %zu claims %llu bytes, %zu left", i,
                          (unsigned long long)l, len - at);
            goto fail;
        }
        offset[i] = at;
        length[i] = (size_t)l;
        at += (size_t)l;
    }
    if (at != len) {
        st = cdl_fail(CDL_ERR_FORMAT, "cdl_he_batch_load: %zu trailing bytes", len - at);
        goto fail;
    }
    size_t first_bad = (size_t)count;
#pragma omp parallel for schedule(dynamic, 4)
    for (size_t i = 0; i < (size_t)count; i++)
        if (cdl_ckks_ciphertext_load(ctx, data + offset[i], length[i], &b->ct[i]) != CDL_OK) {
#pragma omp critical(cdl_he_batch_load)
            if (i < first_bad)
                first_bad = i;
        }
    if (first_bad < (size_t)count) { /* again on this thread, for its message */
        cdl_ckks_ciphertext *ct = NULL;
        st = cdl_ckks_ciphertext_load(ctx, data + offset[first_bad], length[first_bad], &ct);
        cdl_ckks_ciphertext_free(ct);
        char msg[400]; /* cdl_fail writes where cdl_last_error() points: copy it first */
        snprintf(msg, sizeof msg, "%s", cdl_last_error());
        st = cdl_fail(st == CDL_OK ? CDL_ERR_INTERNAL : st, "cdl_he_batch_load: ciphertext %zu: %s", first_bad, msg);
        goto fail;
    }
    for (size_t i = 1; i < (size_t)count; i++)
        if (cdl_ckks_ciphertext_level(b->ct[i]) != cdl_ckks_ciphertext_level(b->ct[0]) ||
            cdl_ckks_ciphertext_scale(b->ct[i]) != cdl_ckks_ciphertext_scale(b->ct[0])) {
            st = cdl_fail(CDL_ERR_FORMAT, "cdl_he_batch_load: ciphertext %zu has another level or scale than the "
                          "first", i);
            goto fail;
        }
    cdl_free(offset);
    cdl_free(length);
    *out = b;
    return CDL_OK;
fail:
    cdl_free(offset);
    cdl_free(length);
    cdl_he_batch_free(b);
    return st;
}
