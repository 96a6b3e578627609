/*
 * fuzz_bootstrap_keys.c: libFuzzer target for cdl_ckks_bootstrap_keys_load
 * against the small fixed bootstrapper of fuzz_boot_common.h. Each input is
 * tried as is and with a repaired envelope checksum; keys that load are used:
 * a fixed level-0 ciphertext is rotated by every step of the plan and
 * conjugated, and both encapsulation keys switch it (the full bootstrap costs
 * far more than a fuzz iteration should; the test runs it on loaded keys).
 */
#include "boot/boot_internal.h"
#include "ckks/keyswitch.h"
#include "fuzz_boot_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fuzz_boot_setting setting;
static cdl_ckks_ciphertext *fixed_ct;
static cdl_ckks_ciphertext *scratch_ct;
static uint64_t *ks_buf; /* 3 polynomials of N words */

static void init_once(void)
{
    if (setting.ctx)
        return;
    static const double values[4] = {0.25, -0.5, 0.125, 0.75};
    cdl_ckks_plaintext *pt = NULL;
    int ok = fuzz_boot_setup(&setting) == 0 && cdl_ckks_plaintext_new(setting.ctx, &pt) == CDL_OK &&
             cdl_ckks_encode(setting.ctx, values, 4, cdl_ckks_default_scale(setting.ctx), 0, pt) == CDL_OK &&
             cdl_ckks_ciphertext_new(setting.ctx, &fixed_ct) == CDL_OK &&
             cdl_ckks_encrypt_sk(setting.ctx, setting.sk, pt, setting.rng, fixed_ct) == CDL_OK &&
             cdl_ckks_ciphertext_new(setting.ctx, &scratch_ct) == CDL_OK &&
             (ks_buf = malloc(3 * setting.ctx->n * sizeof(uint64_t))) != NULL;
    cdl_ckks_plaintext_free(pt);
    if (!ok)
        abort(); /* the fixed setting itself is broken: nothing to fuzz */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_try_both(data, size, try_load);
    return 0;
}
