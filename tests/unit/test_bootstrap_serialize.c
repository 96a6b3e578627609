/*
 * test_bootstrap_serialize.c: cdl_ckks_bootstrap_keys_save / _load
 * (src/boot/serialize.c, format in docs/serialization.md).
 *  - round trip at the INSECURE N = 2^10 bootstrapping preset (with
 *    sparse-secret encapsulation), compression off and on: the loaded keys
 *    equal the generated ones word for word, and a bootstrap with them gives
 *    the very ciphertext the original keys give, which decrypts to the input
 *    within 2^-15;
 *  - the rest on the small setting of tests/fuzz/fuzz_boot_common.h (1 MB of
 *    keys instead of 27 MB): every truncation refused, truncations behind a
 *    repaired checksum, bit flips of the header and of the payload, forged
 *    fields behind a valid checksum (has_sse, lengths, counts, Galois
 *    elements, coefficients, trailing bytes), keys of other bootstrapping
 *    parameters (encapsulation on / off, CoeffToSlot levels, output scale,
 *    another context: CDL_ERR_MISMATCH), other object types, NULL arguments;
 *  - the fuzz seeds: with CDL_WRITE_FUZZ_CORPUS=<dir> set, written to
 *    <dir>/bootstrap_keys (a key file, and edit lists for the target's second
 *    mode); without, the committed key files must still load.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "boot/boot_internal.h"
#include "core/bytes.h"
#include "fuzz/fuzz_boot_common.h"
#include "test_ckks_util.h"

/* The small setting: the fuzz bootstrapper (encapsulation on) and its keys,
 * plus bootstrappers of the same context with other parameters. */
typedef struct small_fixture {
    fuzz_boot_setting fz;
    cdl_ckks_bootstrap_keys *bk;
    cdl_ckks_bootstrapper *no_sse;  /* encapsulation off */
    cdl_ckks_bootstrap_keys *no_sse_bk;
    cdl_ckks_bootstrapper *cts2;    /* CoeffToSlot in 2 levels instead of 3 */
    cdl_ckks_bootstrapper *scale2;  /* another output scale */
    cdl_ckks_bootstrapper *sparse;  /* 2^5 of the 512 slots */
    cdl_ckks_bootstrap_keys *sparse_bk;
    uint8_t *blob;                  /* fz.bt's keys, uncompressed */
    size_t len;
} small_fixture;

static small_fixture S;

static int group_setup(void **state)
{
    (void)state;
    if (fuzz_boot_setup(&S.fz) != 0 || cdl_ckks_bootstrap_keygen(S.fz.bt, S.fz.sk, S.fz.rng, &S.bk) != CDL_OK)
        return -1;
    cdl_ckks_param_spec spec;
    cdl_ckks_bootstrap_params bp;
    fuzz_boot_spec(&spec, &bp);
    cdl_ckks_bootstrap_params p = bp;
    p.sse_hamming_weight = 0;
    if (cdl_ckks_bootstrapper_new(S.fz.ctx, &p, &S.no_sse) != CDL_OK ||
        cdl_ckks_bootstrap_keygen(S.no_sse, S.fz.sk, S.fz.rng, &S.no_sse_bk) != CDL_OK)
        return -1;
    p = bp;
    p.cts_levels = 2;
    if (cdl_ckks_bootstrapper_new(S.fz.ctx, &p, &S.cts2) != CDL_OK)
        return -1;
    p = bp;
    p.out_scale = ldexp(1.0, 21);
    if (cdl_ckks_bootstrapper_new(S.fz.ctx, &p, &S.scale2) != CDL_OK)
        return -1;
    p = bp;
    p.log_slots = 5;
    if (cdl_ckks_bootstrapper_new(S.fz.ctx, &p, &S.sparse) != CDL_OK ||
        cdl_ckks_bootstrap_keygen(S.sparse, S.fz.sk, S.fz.rng, &S.sparse_bk) != CDL_OK)
        return -1;
    return cdl_ckks_bootstrap_keys_save(S.fz.bt, S.bk, 0, &S.blob, &S.len) == CDL_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    cdl_free_bytes(S.blob);
    cdl_ckks_bootstrap_keys_free(S.sparse_bk);
    cdl_ckks_bootstrapper_free(S.sparse);
    cdl_ckks_bootstrapper_free(S.scale2);
    cdl_ckks_bootstrapper_free(S.cts2);
    cdl_ckks_bootstrap_keys_free(S.no_sse_bk);
    cdl_ckks_bootstrapper_free(S.no_sse);
    cdl_ckks_bootstrap_keys_free(S.bk);
    fuzz_boot_teardown(&S.fz);
    return 0;
}

/* ---- helpers --------------------------------------------------------------- */

static void ksk_equal(const cdl_ckks_ksk *a, const cdl_ckks_ksk *b)
{
    assert_int_equal(a->dnum, b->dnum);
    assert_int_equal(a->qp_count, b->qp_count);
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->max_level, b->max_level);
    assert_int_equal(a->q_count, b->q_count);
    assert_memory_equal(a->data, b->data, (size_t)a->dnum * 2 * (size_t)a->qp_count * a->n * sizeof(uint64_t));
}

static void keys_equal(const cdl_ckks_bootstrap_keys *a, const cdl_ckks_bootstrap_keys *b)
{
    assert_int_equal(a->has_sse, b->has_sse);
    assert_int_equal(a->gk->count, b->gk->count);
    assert_memory_equal(a->gk->galois_elts, b->gk->galois_elts, a->gk->count * sizeof(uint64_t));
    assert_memory_equal(a->gk->ntt_index, b->gk->ntt_index, a->gk->count * a->gk->n * sizeof(uint32_t));
    for (size_t i = 0; i < a->gk->count; i++)
        ksk_equal(&a->gk->keys[i], &b->gk->keys[i]);
    if (a->has_sse) {
        ksk_equal(&a->to_sparse, &b->to_sparse);
        ksk_equal(&a->from_sparse, &b->from_sparse);
    }
}

/* Load into bt; *out must be NULL whenever the status is not CDL_OK. */
static cdl_status load(const cdl_ckks_bootstrapper *bt, const uint8_t *data, size_t len)
{
    cdl_ckks_bootstrap_keys *bk = (cdl_ckks_bootstrap_keys *)&S; /* a sentinel the loader must clear */
    cdl_status st = cdl_ckks_bootstrap_keys_load(bt, data, len, &bk);
    if (st != CDL_OK)
        assert_null(bk);
    cdl_ckks_bootstrap_keys_free(bk);
    return st;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Payload offsets of the binding fields (src/boot/serialize.c). */
enum {
    AT_LOG_SLOTS = 0,
    AT_CTS = 4,
    AT_COS = 16,
    AT_DOUBLE_ANGLE = 20,
    AT_SSE_WEIGHT = 28,
    AT_SSE_P = 32,
    AT_SCALE = 36,
    AT_SSE_HASH = 44,
    AT_STEPS = 76, /* S, then S pairs (step, level) */
};

/* A copy of the small keys' payload to forge, and the offsets of its parts. */
typedef struct forge {
    uint8_t *p;
    size_t len;
    size_t sse_at;    /* has_sse */
    size_t g_at;      /* G, then the Galois payload at g_at + 8 */
    size_t g_len;
    size_t to_at;     /* to_sparse (u32 dnum, u32 QP, words), then from_sparse */
    size_t from_at;
} forge;

static void forge_open(forge *f)
{
    assert_int_equal(cdl_envelope_open(S.blob, S.len, CDL_OBJ_BOOTSTRAP_KEYS, NULL, SIZE_MAX, &f->p, &f->len, NULL),
                     CDL_OK);
    const size_t steps = get_u32(f->p + AT_STEPS);
    assert_int_equal(steps, (size_t)S.fz.bt->nsteps);
    f->sse_at = AT_STEPS + 4 + 8 * steps;
    assert_int_equal(get_u32(f->p + f->sse_at), 1);
    f->g_at = f->sse_at + 4;
    f->g_len = (size_t)get_u64(f->p + f->g_at);
    f->to_at = f->g_at + 8 + f->g_len;
    const cdl_ckks_context *sc = S.fz.bt->sse_ctx;
    f->from_at = f->to_at + 8 + (size_t)sc->dnum * 2 * (size_t)sc->qp_count * sc->n * 8;
    const cdl_ckks_context *ctx = S.fz.ctx;
    assert_int_equal(f->from_at + 8 + (size_t)ctx->dnum * 2 * (size_t)ctx->qp_count * ctx->n * 8, f->len);
}

/* Wrap the forged payload (valid checksum) and load it into the small bootstrapper. */
static cdl_status forge_load(const forge *f, size_t len)
{
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    assert_int_equal(cdl_envelope_wrap(CDL_OBJ_BOOTSTRAP_KEYS, S.fz.ctx->param_hash, f->p, len, 0, &blob, &blob_len),
                     CDL_OK);
    cdl_status st = load(S.fz.bt, blob, blob_len);
    cdl_free_bytes(blob);
    return st;
}

static void forge_close(forge *f) { cdl_free_bytes(f->p); }

/* ---- round trip at the bootstrapping preset ---------------------------------- */

static void test_round_trip_preset(void **state)
{
    (void)state;
    cdl_ckks_param_spec spec;
    cdl_ckks_bootstrap_params bp;
    assert_int_equal(cdl_ckks_bootstrap_preset(10, &spec, &bp), CDL_OK);
    tctx t;
    t_setup(&t, &spec, 41);
    cdl_ckks_bootstrapper *bt = NULL;
    cdl_ckks_bootstrap_keys *bk = NULL;
    assert_int_equal(cdl_ckks_bootstrapper_new(t.ctx, &bp, &bt), CDL_OK);
    assert_int_equal(cdl_ckks_bootstrap_keygen(bt, t.sk, t.rng, &bk), CDL_OK);
    const size_t n = t.slots;
    double *v = malloc(n * sizeof(double)), *dr = malloc(n * sizeof(double)), *di = malloc(n * sizeof(double));
    t_random(t.rng, v, n);
    cdl_ckks_ciphertext *ct = t_encrypt(&t, v, NULL, 0, 0), *want = NULL, *got = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(t.ctx, &want), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(t.ctx, &got), CDL_OK);
    assert_int_equal(cdl_ckks_bootstrap(bt, bk, t.rlk, ct, want), CDL_OK);
    uint8_t *want_bytes = NULL;
    size_t want_len = 0;
    assert_int_equal(cdl_ckks_ciphertext_save(t.ctx, want, 0, &want_bytes, &want_len), CDL_OK);
    size_t sizes[2] = {0, 0};
    for (int compression = 0; compression <= 1; compression++) {
        uint8_t *blob = NULL, *ct_bytes = NULL;
        size_t len = 0, ct_len = 0;
        assert_int_equal(cdl_ckks_bootstrap_keys_save(bt, bk, compression, &blob, &len), CDL_OK);
        assert_int_equal(blob[40], compression);
        sizes[compression] = len;
        cdl_ckks_bootstrap_keys *back = NULL;
        assert_int_equal(cdl_ckks_bootstrap_keys_load(bt, blob, len, &back), CDL_OK);
        keys_equal(bk, back);
        assert_int_equal(cdl_ckks_bootstrap_keys_bytes(back), cdl_ckks_bootstrap_keys_bytes(bk));
        /* a bootstrap with the loaded keys: the same ciphertext, the input values */
        assert_int_equal(cdl_ckks_bootstrap(bt, back, t.rlk, ct, got), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_save(t.ctx, got, 0, &ct_bytes, &ct_len), CDL_OK);
        assert_int_equal(ct_len, want_len);
        assert_memory_equal(ct_bytes, want_bytes, want_len);
        t_decrypt(&t, got, dr, di);
        const double bits = t_bits(dr, di, v, NULL, n);
        print_message("preset N=2^10 keys %s: %zu bytes, bootstrap with the loaded keys: %.1f bits\n",
                      compression ? "zstd" : "raw", len, bits);
        assert_true(bits > 15.0);
        cdl_free_bytes(ct_bytes);
        cdl_ckks_bootstrap_keys_free(back);
        cdl_free_bytes(blob);
    }
    assert_true(sizes[1] < sizes[0]);
    cdl_free_bytes(want_bytes);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_ciphertext_free(want);
    cdl_ckks_ciphertext_free(got);
    free(v);
    free(dr);
    free(di);
    cdl_ckks_bootstrap_keys_free(bk);
    cdl_ckks_bootstrapper_free(bt);
    t_teardown(&t);
}

/* ---- the small setting ------------------------------------------------------- */

/* Both settings of encapsulation, sparse slots, both compressions, on the small context. */
static void test_round_trip_small(void **state)
{
    (void)state;
    const cdl_ckks_bootstrapper *bts[3] = {S.fz.bt, S.no_sse, S.sparse};
    const cdl_ckks_bootstrap_keys *bks[3] = {S.bk, S.no_sse_bk, S.sparse_bk};
    for (int k = 0; k < 3; k++)
        for (int compression = 0; compression <= 3; compression += 3) {
            uint8_t *blob = NULL;
            size_t len = 0;
            assert_int_equal(cdl_ckks_bootstrap_keys_save(bts[k], bks[k], compression, &blob, &len), CDL_OK);
            if (k == 0 && compression == 0) {
                assert_int_equal(len, S.len);
                assert_memory_equal(blob, S.blob, len); /* saving is deterministic */
            }
            cdl_ckks_bootstrap_keys *back = NULL;
            assert_int_equal(cdl_ckks_bootstrap_keys_load(bts[k], blob, len, &back), CDL_OK);
            keys_equal(bks[k], back);
            cdl_ckks_bootstrap_keys_free(back);
            cdl_free_bytes(blob);
        }
}

/* Every truncation of the raw and of the compressed bytes; truncated payloads
 * behind a repaired checksum at every field boundary of the fixed part and at
 * spread offsets of the key material. */
static void test_truncations(void **state)
{
    (void)state;
    for (size_t cut = 0; cut < S.len; cut++)
        if (load(S.fz.bt, S.blob, cut) != CDL_ERR_FORMAT)
            fail_msg("the keys truncated to %zu of %zu bytes were not refused", cut, S.len);
    uint8_t *z = NULL;
    size_t zlen = 0;
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.fz.bt, S.bk, 1, &z, &zlen), CDL_OK);
    for (size_t cut = 0; cut < zlen; cut++)
        if (load(S.fz.bt, z, cut) != CDL_ERR_FORMAT)
            fail_msg("the compressed keys truncated to %zu of %zu bytes were not refused", cut, zlen);
    cdl_free_bytes(z);
    forge f;
    forge_open(&f);
    const size_t fixed = f.g_at + 8 + 12 + 4 * (size_t)S.bk->gk->count + 8 * S.bk->gk->count;
    for (size_t cut = 0; cut < f.len; cut += cut < fixed ? 1 : f.len / 64 + 1) {
        if (forge_load(&f, cut) != CDL_ERR_FORMAT)
            fail_msg("the payload truncated to %zu of %zu bytes (checksum repaired) was not refused", cut, f.len);
    }
    for (size_t cut = f.len - 64; cut < f.len; cut++)
        assert_int_equal(forge_load(&f, cut), CDL_ERR_FORMAT);
    forge_close(&f);
}

/* Single-bit flips: every bit of the header, bytes spread over the payload. */
static void test_bit_flips(void **state)
{
    (void)state;
    uint8_t *b = malloc(S.len);
    memcpy(b, S.blob, S.len);
    for (size_t bit = 0; bit < 8 * CDL_ENVELOPE_BYTES; bit++) {
        const size_t at = bit / 8;
        b[at] ^= (uint8_t)(1u << (bit % 8));
        const cdl_status want = at >= 8 && at < 8 + CDL_HASH_BYTES ? CDL_ERR_MISMATCH : CDL_ERR_FORMAT;
        if (load(S.fz.bt, b, S.len) != want)
            fail_msg("header bit %zu flipped: status %d, expected %d", bit, load(S.fz.bt, b, S.len), want);
        b[at] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t at = CDL_ENVELOPE_BYTES; at < S.len; at += S.len / 128 + 1) {
        b[at] ^= 0x10;
        if (load(S.fz.bt, b, S.len) != CDL_ERR_FORMAT)
            fail_msg("payload byte %zu flipped was not refused", at);
        b[at] ^= 0x10;
    }
    b[S.len - 1] ^= 1;
    assert_int_equal(load(S.fz.bt, b, S.len), CDL_ERR_FORMAT);
    b[S.len - 1] ^= 1;
    assert_int_equal(load(S.fz.bt, b, S.len), CDL_OK);
    free(b);
}

/* Forged fields behind a valid checksum: each must be caught by its own check. */
static void test_forged_fields(void **state)
{
    (void)state;
    forge f;
    forge_open(&f);
    assert_int_equal(forge_load(&f, f.len), CDL_OK);
    const cdl_ckks_context *ctx = S.fz.ctx, *sc = S.fz.bt->sse_ctx;
    uint8_t save[8];
#define FORGE(at, width, value, want)                                                 \
    do {                                                                             \
        memcpy(save, f.p + (at), (width));                                           \
        if ((width) == 4)                                                            \
            put_u32(f.p + (at), (uint32_t)(value));                                  \
        else                                                                         \
            for (int i_ = 0; i_ < 8; i_++)                                           \
                f.p[(at) + (size_t)i_] = (uint8_t)((uint64_t)(value) >> (8 * i_));   \
        cdl_status st_ = forge_load(&f, f.len);                                      \
        if (st_ != (want))                                                           \
            fail_msg("forged %s: status %d (%s), expected %d", #value, st_, cdl_last_error(), (want)); \
        memcpy(f.p + (at), save, (width));                                           \
    } while (0)
    /* the binding to the bootstrapping parameters */
    /* the binding to the bootstrapping parameters: valid values of other
     * parameters are CDL_ERR_MISMATCH, values no bootstrapper has CDL_ERR_FORMAT */
    const uint32_t log_n = (uint32_t)S.fz.ctx->log_n;
    FORGE(AT_LOG_SLOTS, 4, 6, CDL_ERR_MISMATCH);                       /* sparse slots */
    FORGE(AT_LOG_SLOTS, 4, log_n, CDL_ERR_FORMAT);
    FORGE(AT_LOG_SLOTS, 4, 2, CDL_ERR_FORMAT);                         /* fewer than cts_levels */
    FORGE(AT_CTS, 4, get_u32(f.p + AT_CTS) + 1, CDL_ERR_MISMATCH);     /* cts_levels */
    FORGE(AT_CTS, 4, 0, CDL_ERR_FORMAT);
    FORGE(AT_CTS, 4, log_n, CDL_ERR_FORMAT);
    FORGE(AT_COS, 4, 2, CDL_ERR_FORMAT);                               /* cos_degree */
    FORGE(AT_DOUBLE_ANGLE, 4, 7, CDL_ERR_FORMAT);
    FORGE(AT_SSE_WEIGHT, 4, get_u32(f.p + AT_SSE_WEIGHT) + 1, CDL_ERR_MISMATCH);
    FORGE(AT_SSE_WEIGHT, 4, 0, CDL_ERR_FORMAT);                        /* off, with a hash */
    FORGE(AT_SSE_P, 4, 19, CDL_ERR_FORMAT);
    FORGE(AT_SCALE, 8, 0x4000000000000000ull, CDL_ERR_MISMATCH);      /* out_scale = 2.0 */
    FORGE(AT_SCALE, 8, 0xc000000000000000ull, CDL_ERR_FORMAT);        /* -2.0 */
    FORGE(AT_SCALE, 8, 0x7ff0000000000000ull, CDL_ERR_FORMAT);        /* infinity */
    FORGE(AT_SSE_HASH, 4, get_u32(f.p + AT_SSE_HASH) ^ 1, CDL_ERR_MISMATCH);
    FORGE(AT_STEPS, 4, get_u32(f.p + AT_STEPS) + 1, CDL_ERR_FORMAT);   /* number of steps: the layout breaks */
    FORGE(AT_STEPS, 4, get_u32(f.p + AT_STEPS) - 1, CDL_ERR_FORMAT);
    FORGE(AT_STEPS, 4, 0xffffffffu, CDL_ERR_FORMAT);
    FORGE(AT_STEPS + 4, 4, get_u32(f.p + AT_STEPS + 4) + 1, CDL_ERR_MISMATCH); /* a step */
    FORGE(AT_STEPS + 4, 4, (uint32_t)S.fz.ctx->n, CDL_ERR_FORMAT);
    for (int s = 0; s < S.fz.bt->nsteps; s++)                                  /* a level */
        if (S.fz.bt->step_levels[s] < S.fz.ctx->max_level) {
            FORGE(AT_STEPS + 8 + 8 * (size_t)s, 4, S.fz.bt->step_levels[s] + 1, CDL_ERR_MISMATCH);
            break;
        }
    FORGE(AT_STEPS + 8, 4, (uint32_t)S.fz.ctx->max_level + 1, CDL_ERR_FORMAT);
    /* has_sse and the Galois part's length */
    FORGE(f.sse_at, 4, 0, CDL_ERR_FORMAT);
    FORGE(f.sse_at, 4, 2, CDL_ERR_FORMAT);
    FORGE(f.g_at, 8, f.g_len + 8, CDL_ERR_FORMAT);
    FORGE(f.g_at, 8, f.g_len - 8, CDL_ERR_FORMAT);
    FORGE(f.g_at, 8, 0, CDL_ERR_FORMAT);
    FORGE(f.g_at, 8, UINT64_MAX, CDL_ERR_FORMAT);
    FORGE(f.g_at, 8, f.len, CDL_ERR_FORMAT);
    /* the Galois payload: count, dnum, QP, a level, an element */
    const size_t gp = f.g_at + 8, count = get_u32(f.p + gp);
    assert_int_equal(count, S.bk->gk->count);
    assert_int_equal(get_u32(f.p + gp + 4), 0); /* keys truncated to their levels */
    FORGE(gp, 4, count - 1, CDL_ERR_FORMAT);
    FORGE(gp, 4, count + 1, CDL_ERR_FORMAT);
    FORGE(gp, 4, 0, CDL_ERR_FORMAT);
    FORGE(gp + 4, 4, ctx->dnum, CDL_ERR_FORMAT);
    FORGE(gp + 8, 4, ctx->qp_count + 1, CDL_ERR_FORMAT);
    for (size_t i = 0; i < count; i++) {
        const uint32_t level = get_u32(f.p + gp + 12 + 4 * i);
        FORGE(gp + 12 + 4 * i, 4, level + 1, CDL_ERR_FORMAT);
        FORGE(gp + 12 + 4 * i, 4, (uint32_t)ctx->max_level + 1, CDL_ERR_FORMAT);
    }
    const size_t elts = gp + 12 + 4 * count;
    for (size_t i = 0; i < count; i++) {
        /* another odd element, not in the set: a needed key goes missing */
        uint64_t g = 3;
        while (cdl_ckks_galois_keys_find(S.bk->gk, g) >= 0)
            g += 2;
        FORGE(elts + 8 * i, 8, g, CDL_ERR_FORMAT);
        FORGE(elts + 8 * i, 8, get_u64(f.p + elts + 8 * ((i + 1) % count)), CDL_ERR_FORMAT); /* duplicate */
        FORGE(elts + 8 * i, 8, 2 * (uint64_t)ctx->n + 1, CDL_ERR_FORMAT);
    }
    /* coefficients: the first and last word of each part equal to their prime */
    const size_t first_key = elts + 8 * count;
    FORGE(first_key, 8, ctx->primes[0], CDL_ERR_FORMAT);
    FORGE(f.to_at - 8, 8, UINT64_MAX, CDL_ERR_FORMAT);
    FORGE(f.to_at + 8, 8, sc->primes[0], CDL_ERR_FORMAT);
    FORGE(f.from_at - 8, 8, sc->primes[sc->qp_count - 1], CDL_ERR_FORMAT);
    FORGE(f.from_at + 8, 8, ctx->primes[0], CDL_ERR_FORMAT);
    FORGE(f.len - 8, 8, ctx->primes[ctx->qp_count - 1], CDL_ERR_FORMAT);
    FORGE(f.len - 8, 8, ctx->primes[ctx->qp_count - 1] - 1, CDL_OK);
    /* the encapsulation keys' shapes */
    FORGE(f.to_at, 4, 2, CDL_ERR_FORMAT);
    FORGE(f.to_at + 4, 4, sc->qp_count + 1, CDL_ERR_FORMAT);
    FORGE(f.from_at, 4, ctx->dnum + 1, CDL_ERR_FORMAT);
    FORGE(f.from_at + 4, 4, ctx->qp_count - 1, CDL_ERR_FORMAT);
#undef FORGE
    /* a trailing byte, a missing one */
    uint8_t *longer = malloc(f.len + 1);
    memcpy(longer, f.p, f.len);
    longer[f.len] = 0;
    forge g = f;
    g.p = longer;
    assert_int_equal(forge_load(&g, f.len + 1), CDL_ERR_FORMAT);
    assert_int_equal(forge_load(&f, f.len - 1), CDL_ERR_FORMAT);
    free(longer);
    /* a compressed payload claiming a huge raw length */
    uint8_t *z = NULL;
    size_t zlen = 0;
    assert_int_equal(cdl_envelope_wrap(CDL_OBJ_BOOTSTRAP_KEYS, ctx->param_hash, f.p, f.len, 1, &z, &zlen), CDL_OK);
    for (int i = 0; i < 8; i++)
        z[52 + i] = 0xff;
    uint8_t *fixed = fuzz_fix_envelope(z, zlen);
    memcpy(fixed + 52, z + 52, 8);
    assert_int_equal(load(S.fz.bt, fixed, zlen), CDL_ERR_FORMAT);
    free(fixed);
    cdl_free_bytes(z);
    forge_close(&f);
}

/* Keys of other bootstrapping parameters or another context: CDL_ERR_MISMATCH. */
static void test_other_parameters(void **state)
{
    (void)state;
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(load(S.no_sse, S.blob, S.len), CDL_ERR_MISMATCH); /* encapsulation on -> off */
    assert_int_equal(load(S.cts2, S.blob, S.len), CDL_ERR_MISMATCH);
    assert_int_equal(load(S.scale2, S.blob, S.len), CDL_ERR_MISMATCH);
    /* full slots -> sparse: a larger plan than the bootstrapper's, refused
     * as other parameters before its size is (raw and compressed) */
    assert_int_equal(load(S.sparse, S.blob, S.len), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.fz.bt, S.bk, 1, &blob, &len), CDL_OK);
    assert_int_equal(load(S.sparse, blob, len), CDL_ERR_MISMATCH);
    cdl_free_bytes(blob);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.sparse, S.sparse_bk, 0, &blob, &len), CDL_OK);
    assert_int_equal(load(S.fz.bt, blob, len), CDL_ERR_MISMATCH); /* sparse -> full */
    cdl_free_bytes(blob);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.no_sse, S.no_sse_bk, 0, &blob, &len), CDL_OK);
    assert_int_equal(load(S.fz.bt, blob, len), CDL_ERR_MISMATCH); /* off -> on */
    assert_int_equal(load(S.no_sse, blob, len), CDL_OK);
    cdl_free_bytes(blob);
    /* keys that do not fit the bootstrapper cannot be saved with it */
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.no_sse, S.bk, 0, &blob, &len), CDL_ERR_MISMATCH);
    assert_null(blob);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.fz.bt, S.no_sse_bk, 0, &blob, &len), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.cts2, S.bk, 0, &blob, &len), CDL_ERR_MISMATCH);
    /* another context (the N = 2^10 preset's longer chain) */
    cdl_ckks_param_spec spec;
    cdl_ckks_bootstrap_params bp;
    assert_int_equal(cdl_ckks_bootstrap_preset(10, &spec, &bp), CDL_OK);
    cdl_ckks_context *other = NULL;
    cdl_ckks_bootstrapper *bt = NULL;
    assert_int_equal(cdl_ckks_context_new(&spec, &other), CDL_OK);
    assert_int_equal(cdl_ckks_bootstrapper_new(other, &bp, &bt), CDL_OK);
    assert_int_equal(load(bt, S.blob, S.len), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(bt, S.bk, 0, &blob, &len), CDL_ERR_MISMATCH);
    cdl_ckks_bootstrapper_free(bt);
    cdl_ckks_context_free(other);
}

/* Other object types are refused both ways. */
static void test_wrong_type(void **state)
{
    (void)state;
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_ckks_galois_keys_save(S.fz.ctx, S.bk->gk, 0, &blob, &len), CDL_OK);
    assert_int_equal(load(S.fz.bt, blob, len), CDL_ERR_FORMAT);
    cdl_ckks_galois_keys *gk = NULL;
    assert_int_equal(cdl_ckks_galois_keys_load(S.fz.ctx, S.blob, S.len, &gk), CDL_ERR_FORMAT);
    assert_null(gk);
    /* relabelled (the checksum covers the payload only) */
    blob[6] = CDL_OBJ_BOOTSTRAP_KEYS;
    assert_int_equal(load(S.fz.bt, blob, len), CDL_ERR_FORMAT);
    cdl_free_bytes(blob);
    assert_string_equal(cdl_object_type_name(CDL_OBJ_BOOTSTRAP_KEYS), "bootstrapping keys");
}

static void test_null_arguments(void **state)
{
    (void)state;
    uint8_t *blob = (uint8_t *)&S;
    size_t len = 1;
    assert_int_equal(cdl_ckks_bootstrap_keys_save(NULL, S.bk, 0, &blob, &len), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.fz.bt, NULL, 0, &blob, &len), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.fz.bt, S.bk, 0, NULL, &len), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.fz.bt, S.bk, 0, &blob, NULL), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.fz.bt, S.bk, -1, &blob, &len), CDL_ERR_INVALID_ARGUMENT);
    assert_null(blob);
    assert_int_equal(len, 0);
    assert_int_equal(cdl_ckks_bootstrap_keys_save(S.fz.bt, S.bk, 20, &blob, &len), CDL_ERR_INVALID_ARGUMENT);
    cdl_ckks_bootstrap_keys *bk = NULL;
    assert_int_equal(cdl_ckks_bootstrap_keys_load(NULL, S.blob, S.len, &bk), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_bootstrap_keys_load(S.fz.bt, S.blob, S.len, NULL), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_bootstrap_keys_load(S.fz.bt, NULL, 5, &bk), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(load(S.fz.bt, NULL, 0), CDL_ERR_FORMAT);
    /* the bootstrap itself refuses nothing the loader let through */
    assert_int_equal(cdl_ckks_bootstrap_keys_load(S.fz.bt, S.blob, S.len, &bk), CDL_OK);
    cdl_ckks_bootstrap_keys_free(bk);
    cdl_ckks_bootstrap_keys_free(NULL);
}

/* ---- the fuzz seed ----------------------------------------------------------- */

#define CORPUS "bootstrap_keys"

static void write_seed(const char *dir, const char *name, const uint8_t *data, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, CORPUS);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, CORPUS, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void test_fuzz_corpus(void **state)
{
    (void)state;
    const char *out = getenv("CDL_WRITE_FUZZ_CORPUS");
    if (out && *out) {
        uint8_t *z = NULL;
        size_t zlen = 0;
        assert_int_equal(cdl_ckks_bootstrap_keys_save(S.fz.bt, S.bk, 19, &z, &zlen), CDL_OK);
        write_seed(out, "bk_sse_zstd", z, zlen);
        cdl_free_bytes(z);
        /* edit lists for the target's second mode (see fuzz_bootstrap_keys.c):
         * none (the valid file), the Galois part's length set to 2^64 - 1, the
         * digit count of the first encapsulation key set to 2 */
        forge f;
        forge_open(&f);
        const size_t g_at = CDL_ENVELOPE_BYTES + f.g_at;
        const uint8_t g_len[8] = {0, 2, (uint8_t)g_at, (uint8_t)(g_at >> 8), 0xff, 0xff, 0xff, 0xff};
        const uint8_t to_dnum[8] = {2, 1, 64, 0, 2, 0, 0, 0};
        write_seed(out, "edits_none", (const uint8_t *)"edit", 4);
        write_seed(out, "edits_galois_length", g_len, sizeof g_len);
        write_seed(out, "edits_to_sparse_digits", to_dnum, sizeof to_dnum);
        forge_close(&f);
        return;
    }
    const char *root = getenv("CDL_SOURCE_DIR");
    if (!root)
        skip();
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", root, CORPUS);
    DIR *d = opendir(path);
    if (!d)
        fail_msg("missing fuzz corpus %s", path);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, "edits_", 6) == 0) /* edit lists, not key files */
            continue;
        char file[8192];
        snprintf(file, sizeof file, "%s/%s", path, e->d_name);
        uint8_t *data = NULL;
        size_t len = 0;
        assert_int_equal(cdl_read_file(file, 1 << 26, &data, &len), CDL_OK);
        if (load(S.fz.bt, data, len) != CDL_OK)
            fail_msg("seed %s: %s; regenerate it (docs/serialization.md, section Fuzzing)", file, cdl_last_error());
        files++;
        cdl_free_bytes(data);
    }
    closedir(d);
    assert_true(files >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_preset),
        cmocka_unit_test(test_round_trip_small),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_forged_fields),
        cmocka_unit_test(test_other_parameters),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_fuzz_corpus),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
