/*
 * fuzz_he_batch.c: libFuzzer target for cdl_he_batch_load, the loader of an
 * encrypted batch (what a client uploads to the server: a small header, then
 * one serialized ciphertext per input value). It runs in the small fixed CKKS
 * setting of fuzz_ckks_common.h. Each input is tried as is and, when it
 * parses as a batch header followed by length-prefixed blobs, with every
 * inner envelope's checksum repaired, so the ciphertext checks behind the
 * checksums are reached too.
 *
 * With CDL_WRITE_FUZZ_SEED=<file> in the environment, the first run writes a
 * valid two-ciphertext batch for this setting to <file> (the committed seed in
 * tests/fuzz/corpus/he_batch/ was made that way).
 */
#include <stdio.h>

#include "fuzz_ckks_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fuzz_ckks_setting setting;
static int ready;

static uint64_t get_u64_le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void write_seed(const char *path)
{
    const double values[4] = {0.5, -0.25, 0.125, 1.0};
    uint8_t *blobs[2] = {NULL, NULL};
    size_t lens[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        cdl_ckks_plaintext *pt = NULL;
        cdl_ckks_ciphertext *ct = NULL;
        if (cdl_ckks_plaintext_new(setting.ctx, &pt) || cdl_ckks_ciphertext_new(setting.ctx, &ct) ||
            cdl_ckks_encode(setting.ctx, values, 4, cdl_ckks_default_scale(setting.ctx),
                            cdl_ckks_max_level(setting.ctx), pt) ||
            cdl_ckks_encrypt_sk(setting.ctx, setting.sk, pt, setting.rng, ct) ||
            cdl_ckks_ciphertext_save(setting.ctx, ct, 0, &blobs[i], &lens[i]))
            abort();
        cdl_ckks_plaintext_free(pt);
        cdl_ckks_ciphertext_free(ct);
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    uint8_t header[32] = {'C', 'D', 'L', 'H', 'E', 'B', 'A', 'T'};
    fuzz_put_u64(header + 8, 1);  /* format version */
    fuzz_put_u64(header + 16, 4); /* images */
    fuzz_put_u64(header + 24, 2); /* ciphertexts */
    fwrite(header, 1, sizeof header, f);
    for (int i = 0; i < 2; i++) {
        uint8_t len[8];
        fuzz_put_u64(len, lens[i]);
        fwrite(len, 1, 8, f);
        fwrite(blobs[i], 1, lens[i], f);
        cdl_free_bytes(blobs[i]);
    }
    fclose(f);
}

static void try_load(const uint8_t *data, size_t size)
{
    cdl_he_batch *batch = NULL;
    if (cdl_he_batch_load(setting.ctx, data, size, &batch) == CDL_OK) {
        volatile size_t sink = cdl_he_batch_images(batch);
        for (size_t i = 0; i < cdl_he_batch_count(batch); i++)
            sink ^= (size_t)cdl_ckks_ciphertext_level(cdl_he_batch_ciphertext(batch, i));
        (void)sink;
        cdl_he_batch_free(batch);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) {
        if (fuzz_ckks_setup(&setting, 1) != 0)
            abort();
        const char *seed = getenv("CDL_WRITE_FUZZ_SEED");
        if (seed)
            write_seed(seed);
        ready = 1;
    }
    try_load(data, size);
    /* Repair every inner envelope the length prefixes delimit. */
    if (size < 32 || size > (1u << 22))
        return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed)
        return 0;
    memcpy(fixed, data, size);
    size_t at = 32;
    while (size - at >= 8) {
        uint64_t l = get_u64_le(fixed + at);
        at += 8;
        if (l > size - at)
            break;
        uint8_t *inner = fuzz_fix_envelope(fixed + at, (size_t)l);
        if (inner) {
            memcpy(fixed + at, inner, (size_t)l);
            free(inner);
        }
        at += (size_t)l;
    }
    try_load(fixed, size);
    free(fixed);
    return 0;
}
