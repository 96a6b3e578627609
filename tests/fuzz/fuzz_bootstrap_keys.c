/*
 * fuzz_bootstrap_keys.c: libFuzzer target for cdl_ckks_bootstrap_keys_load
 * against the small fixed bootstrapper of fuzz_boot_common.h.
 *
 * Inputs that start with the envelope magic ("CDL\0", as the key-file seed in
 * tests/fuzz/corpus/bootstrap_keys does) are tried as is and with a repaired
 * envelope checksum, like every loader target. A valid key file is about
 * 2.6 MB, almost all of it key words, so random mutations of it rarely touch
 * the few hundred bytes of fields; any other input is therefore read as
 * a list of edits to a valid key file generated at start-up, 8 bytes each:
 *   u8 region: 0 the first 4 KB (header, binding, Galois prefix), 1 anywhere,
 *              2 around the encapsulation key to the sparse secret, 3 around
 *              the key back from it;
 *   u8 op:     0 xor a byte, 1 write the u32, 2 write it sign-extended to a
 *              u64, 3 truncate there;
 *   u16 offset within the region, u32 value;
 * then the envelope is repaired and the result loaded. Keys that load are
 * used: a fixed level-0 ciphertext is rotated by every step of the plan and
 * conjugated, and both encapsulation keys switch it (a whole bootstrap costs
 * far more than a fuzz iteration should; the unit test runs it on loaded keys).
 */
#include "boot/boot_internal.h"
#include "ckks/keyswitch.h"
#include "fuzz_boot_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key-file seed (0.97 MB) is close to libFuzzer's default input limit
 * (1 MB), which cuts longer seeds short: unless -max_len is given, ask for
 * 4 MB (libFuzzer reads its flags after this hook, which may edit them). */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (int i = 1; i < *argc; i++)
        if (strncmp((*argv)[i], "-max_len=", 9) == 0)
            return 0;
    static char flag[] = "-max_len=4194304";
    char **args = malloc(((size_t)*argc + 2) * sizeof *args); /* kept for the process lifetime */
    if (!args)
        return 0;
    args[0] = (*argv)[0];
    args[1] = flag;
    for (int i = 1; i < *argc; i++)
        args[i + 1] = (*argv)[i];
    args[*argc + 1] = NULL;
    *argv = args;
    (*argc)++;
    return 0;
}

static fuzz_boot_setting setting;
static cdl_ckks_ciphertext *fixed_ct;
static cdl_ckks_ciphertext *scratch_ct;
static uint64_t *ks_buf;  /* 3 polynomials of N words */
static uint8_t *valid;    /* a valid key file of the setting (uncompressed) */
static size_t valid_len;
static size_t to_at, from_at; /* where the two encapsulation keys start in it */

static void init_once(void)
{
    if (setting.ctx)
        return;
    static const double values[4] = {0.25, -0.5, 0.125, 0.75};
    cdl_ckks_plaintext *pt = NULL;
    cdl_ckks_bootstrap_keys *bk = NULL;
    int ok = fuzz_boot_setup(&setting) == 0 && cdl_ckks_plaintext_new(setting.ctx, &pt) == CDL_OK &&
             cdl_ckks_encode(setting.ctx, values, 4, cdl_ckks_default_scale(setting.ctx), 0, pt) == CDL_OK &&
             cdl_ckks_ciphertext_new(setting.ctx, &fixed_ct) == CDL_OK &&
             cdl_ckks_encrypt_sk(setting.ctx, setting.sk, pt, setting.rng, fixed_ct) == CDL_OK &&
             cdl_ckks_ciphertext_new(setting.ctx, &scratch_ct) == CDL_OK &&
             (ks_buf = malloc(3 * setting.ctx->n * sizeof(uint64_t))) != NULL &&
             cdl_ckks_bootstrap_keygen(setting.bt, setting.sk, setting.rng, &bk) == CDL_OK &&
             cdl_ckks_bootstrap_keys_save(setting.bt, bk, 0, &valid, &valid_len) == CDL_OK;
    cdl_ckks_plaintext_free(pt);
    cdl_ckks_bootstrap_keys_free(bk);
    if (!ok || !setting.bt->sse_ctx)
        abort(); /* the fixed setting itself is broken: nothing to fuzz */
    const cdl_ckks_context *sc = setting.bt->sse_ctx, *ctx = setting.ctx;
    const size_t from_bytes = 8 + (size_t)ctx->dnum * 2 * (size_t)ctx->qp_count * ctx->n * 8;
    const size_t to_bytes = 8 + (size_t)sc->dnum * 2 * (size_t)sc->qp_count * sc->n * 8;
    from_at = valid_len - from_bytes;
    to_at = from_at - to_bytes;
}

static void use_keys(const cdl_ckks_bootstrap_keys *bk)
{
    const cdl_ckks_bootstrapper *bt = setting.bt;
    const size_t n = setting.ctx->n;
    (void)cdl_ckks_bootstrap_keys_bytes(bk);
    for (int s = 0; s < bt->nsteps; s++)
        if (cdl_ckks_rotate(setting.ctx, bk->gk, fixed_ct, bt->steps[s], scratch_ct) != CDL_OK)
            abort(); /* a loaded key set must hold every step of the plan */
    if (cdl_ckks_conjugate(setting.ctx, bk->gk, fixed_ct, scratch_ct) != CDL_OK)
        abort();
    if (!bk->has_sse)
        return;
    uint64_t *c1 = ks_buf, *o0 = ks_buf + n, *o1 = ks_buf + 2 * n;
    memcpy(c1, cdl_ct_poly(fixed_ct, 1, 0), n * sizeof(uint64_t));
    if (cdl_ckks_keyswitch(bt->sse_ctx, c1, 0, &bk->to_sparse, NULL, o0, o1) != CDL_OK ||
        cdl_ckks_keyswitch(setting.ctx, c1, 0, &bk->from_sparse, NULL, o0, o1) != CDL_OK)
        abort();
}

static void try_load(const uint8_t *data, size_t size)
{
    cdl_ckks_bootstrap_keys *bk = (cdl_ckks_bootstrap_keys *)&setting; /* must be reset to NULL */
    if (cdl_ckks_bootstrap_keys_load(setting.bt, data, size, &bk) == CDL_OK) {
        use_keys(bk);
        cdl_ckks_bootstrap_keys_free(bk);
    } else if (bk != NULL) {
        abort(); /* out must be NULL after a failure */
    }
}

/* The edit list of the comment at the top, applied to a copy of the valid file. */
static void try_edits(const uint8_t *data, size_t size)
{
    uint8_t *b = malloc(valid_len);
    if (!b)
        return;
    memcpy(b, valid, valid_len);
    size_t len = valid_len;
    for (size_t at = 0; at + 8 <= size && at < 8 * 16; at += 8) {
        const uint8_t region = data[at] & 3, op = data[at + 1] & 3;
        const size_t off = (size_t)data[at + 2] | (size_t)data[at + 3] << 8;
        const uint32_t value = (uint32_t)data[at + 4] | (uint32_t)data[at + 5] << 8 | (uint32_t)data[at + 6] << 16 |
                               (uint32_t)data[at + 7] << 24;
        size_t pos;
        switch (region) {
        case 0: pos = off % 4096; break;
        case 1: pos = (size_t)((uint64_t)off * valid_len >> 16); break;
        case 2: pos = to_at - 64 + off % 256; break;
        default: pos = from_at - 64 + off % 256; break;
        }
        if (op == 3) {
            if (pos < len)
                len = pos;
            continue;
        }
        const size_t width = op == 0 ? 1 : op == 1 ? 4 : 8;
        if (pos + width > len)
            continue;
        /* a u64 is the value sign-extended: small numbers and 2^64 - small both reachable */
        const uint64_t word = op == 2 ? (uint64_t)(int64_t)(int32_t)value : (uint64_t)value;
        if (op == 0)
            b[pos] ^= (uint8_t)(value ? value : 1);
        else
            for (size_t i = 0; i < width; i++)
                b[pos + i] = (uint8_t)(word >> (8 * i));
    }
    uint8_t *fixed = fuzz_fix_envelope(b, len);
    try_load(fixed ? fixed : b, len);
    free(fixed);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size >= 4 && memcmp(data, "CDL", 4) == 0)
        fuzz_try_both(data, size, try_load);
    else
        try_edits(data, size);
    return 0;
}
