/*
 * fuzz_ckks_public_key.c: libFuzzer target for cdl_ckks_public_key_load in
 * the small fixed setting of fuzz_ckks_common.h. Each input is tried as is and
 * with a repaired envelope checksum; a key that loads is used to encrypt a
 * fixed plaintext.
 */
#include "fuzz_ckks_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fuzz_ckks_setting setting;
static cdl_ckks_plaintext *fixed_pt;
static cdl_ckks_ciphertext *scratch_ct;

static void init_once(void)
{
    if (setting.ctx)
        return;
    double values[3] = {1.0, 2.0, 3.0};
    if (fuzz_ckks_setup(&setting, 0) != 0 || cdl_ckks_plaintext_new(setting.ctx, &fixed_pt) != CDL_OK ||
        cdl_ckks_encode(setting.ctx, values, 3, cdl_ckks_default_scale(setting.ctx),
                        cdl_ckks_max_level(setting.ctx), fixed_pt) != CDL_OK ||
        cdl_ckks_ciphertext_new(setting.ctx, &scratch_ct) != CDL_OK)
        abort(); /* the fixed setting itself is broken: nothing to fuzz */
}

static void try_load(const uint8_t *data, size_t size)
{
    cdl_ckks_public_key *pk = NULL;
    if (cdl_ckks_public_key_load(setting.ctx, data, size, &pk) == CDL_OK) {
        (void)cdl_ckks_encrypt_pk(setting.ctx, pk, fixed_pt, setting.rng, scratch_ct);
        cdl_ckks_public_key_free(pk);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_try_both(data, size, try_load);
    return 0;
}
