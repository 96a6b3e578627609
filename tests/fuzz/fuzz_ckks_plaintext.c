/*
 * fuzz_ckks_plaintext.c: libFuzzer target for cdl_ckks_plaintext_load in the
 * small fixed setting of fuzz_ckks_common.h. Each input is tried as is and
 * with a repaired envelope checksum; a plaintext that loads is decoded and
 * multiplied into a fixed ciphertext.
 */
#include "fuzz_ckks_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fuzz_ckks_setting setting;
static cdl_ckks_ciphertext *fixed_ct;
static cdl_ckks_ciphertext *scratch_ct;

static void init_once(void)
{
    if (setting.ctx)
        return;
    static const double values[2] = {1.0, -2.0};
    if (fuzz_ckks_setup(&setting, 1) != 0 || fuzz_ckks_encrypt_values(&setting, values, 2, 0, &fixed_ct) != 0 ||
        cdl_ckks_ciphertext_new(setting.ctx, &scratch_ct) != CDL_OK)
        abort(); /* the fixed setting itself is broken: nothing to fuzz */
}

static void try_load(const uint8_t *data, size_t size)
{
    cdl_ckks_plaintext *pt = NULL;
    if (cdl_ckks_plaintext_load(setting.ctx, data, size, &pt) == CDL_OK) {
        double out[8];
        (void)cdl_ckks_decode(setting.ctx, pt, out, 8);
        (void)cdl_ckks_mul_plain(setting.ctx, fixed_ct, pt, scratch_ct);
        (void)cdl_ckks_add_plain(setting.ctx, fixed_ct, pt, scratch_ct);
        cdl_ckks_plaintext_free(pt);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_try_both(data, size, try_load);
    return 0;
}
