/*
 * fuzz_ckks_relin_key.c: libFuzzer target for cdl_ckks_relin_key_load in the
 * small fixed setting of fuzz_ckks_common.h. Each input is tried as is and
 * with a repaired envelope checksum; a key that loads relinearizes a fixed
 * size-3 ciphertext.
 */
#include "fuzz_ckks_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fuzz_ckks_setting setting;
static cdl_ckks_ciphertext *fixed_ct3;
static cdl_ckks_ciphertext *scratch_ct;

static void init_once(void)
{
    if (setting.ctx)
        return;
    static const double values[2] = {0.5, 1.5};
    cdl_ckks_ciphertext *ct = NULL;
    if (fuzz_ckks_setup(&setting, 1) != 0 || fuzz_ckks_encrypt_values(&setting, values, 2, 0, &ct) != 0 ||
        cdl_ckks_ciphertext_new(setting.ctx, &fixed_ct3) != CDL_OK ||
        cdl_ckks_mul(setting.ctx, ct, ct, fixed_ct3) != CDL_OK ||
        cdl_ckks_ciphertext_new(setting.ctx, &scratch_ct) != CDL_OK)
        abort(); /* the fixed setting itself is broken: nothing to fuzz */
    cdl_ckks_ciphertext_free(ct);
}

static void try_load(const uint8_t *data, size_t size)
{
    cdl_ckks_relin_key *rlk = NULL;
    if (cdl_ckks_relin_key_load(setting.ctx, data, size, &rlk) == CDL_OK) {
        (void)cdl_ckks_relinearize(setting.ctx, rlk, fixed_ct3, scratch_ct);
        cdl_ckks_relin_key_free(rlk);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_try_both(data, size, try_load);
    return 0;
}
