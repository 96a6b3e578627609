/*
 * fuzz_ckks_secret_key.c: libFuzzer target for cdl_ckks_secret_key_load in
 * the small fixed setting of fuzz_ckks_common.h. Each input is tried as is and
 * with a repaired envelope checksum; a key that loads is used to decrypt a
 * fixed ciphertext, so that anything the loader lets through must be safe to
 * use.
 */
#include "fuzz_ckks_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fuzz_ckks_setting setting;
static cdl_ckks_ciphertext *fixed_ct;
static cdl_ckks_plaintext *scratch_pt;

static void init_once(void)
{
    if (setting.ctx)
        return;
    static const double values[4] = {0.5, -1.0, 2.0, 0.25};
    if (fuzz_ckks_setup(&setting, 1) != 0 || fuzz_ckks_encrypt_values(&setting, values, 4, 1, &fixed_ct) != 0 ||
        cdl_ckks_plaintext_new(setting.ctx, &scratch_pt) != CDL_OK)
        abort(); /* the fixed setting itself is broken: nothing to fuzz */
}

static void try_load(const uint8_t *data, size_t size)
{
    cdl_ckks_secret_key *sk = NULL;
    if (cdl_ckks_secret_key_load(setting.ctx, data, size, &sk) == CDL_OK) {
        double out[4];
        if (cdl_ckks_decrypt(setting.ctx, sk, fixed_ct, scratch_pt) == CDL_OK)
            (void)cdl_ckks_decode(setting.ctx, scratch_pt, out, 4);
        cdl_ckks_secret_key_free(sk);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_try_both(data, size, try_load);
    return 0;
}
