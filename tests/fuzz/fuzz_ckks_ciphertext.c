/*
 * fuzz_ckks_ciphertext.c: libFuzzer target for cdl_ckks_ciphertext_load in
 * the small fixed setting of fuzz_ckks_common.h. Each input is tried as is and
 * with a repaired envelope checksum; a ciphertext that loads is decrypted,
 * decoded, rescaled, relinearized (if size 3) and added to itself.
 */
#include "fuzz_ckks_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fuzz_ckks_setting setting;
static cdl_ckks_plaintext *scratch_pt;
static cdl_ckks_ciphertext *scratch_ct;

static void init_once(void)
{
    if (setting.ctx)
        return;
    if (fuzz_ckks_setup(&setting, 1) != 0 || cdl_ckks_plaintext_new(setting.ctx, &scratch_pt) != CDL_OK ||
        cdl_ckks_ciphertext_new(setting.ctx, &scratch_ct) != CDL_OK)
        abort(); /* the fixed setting itself is broken: nothing to fuzz */
}

static void try_load(const uint8_t *data, size_t size)
{
    cdl_ckks_ciphertext *ct = NULL;
    if (cdl_ckks_ciphertext_load(setting.ctx, data, size, &ct) == CDL_OK) {
        double out[8];
        if (cdl_ckks_decrypt(setting.ctx, setting.sk, ct, scratch_pt) == CDL_OK)
            (void)cdl_ckks_decode(setting.ctx, scratch_pt, out, 8);
        if (cdl_ckks_ciphertext_size(ct) == 3)
            (void)cdl_ckks_relinearize(setting.ctx, setting.rlk, ct, scratch_ct);
        (void)cdl_ckks_add(setting.ctx, ct, ct, scratch_ct);
        (void)cdl_ckks_rescale(setting.ctx, ct, scratch_ct);
        cdl_ckks_ciphertext_free(ct);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_try_both(data, size, try_load);
    return 0;
}
