/*
 * fuzz_ckks_galois_keys.c: libFuzzer target for cdl_ckks_galois_keys_load in
 * the small fixed setting of fuzz_ckks_common.h. Each input is tried as is and
 * with a repaired envelope checksum; keys that load are used for every
 * rotation they claim to hold (and conjugation) on a fixed ciphertext.
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
    static const double values[4] = {1.0, 2.0, 3.0, 4.0};
    if (fuzz_ckks_setup(&setting, 1) != 0 || fuzz_ckks_encrypt_values(&setting, values, 4, 0, &fixed_ct) != 0 ||
        cdl_ckks_ciphertext_new(setting.ctx, &scratch_ct) != CDL_OK)
        abort(); /* the fixed setting itself is broken: nothing to fuzz */
}

static void try_load(const uint8_t *data, size_t size)
{
    cdl_ckks_galois_keys *gk = NULL;
    if (cdl_ckks_galois_keys_load(setting.ctx, data, size, &gk) == CDL_OK) {
        static const int probe[] = {1, -1, 2, 5, 7, -3};
        for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++)
            if (cdl_ckks_galois_keys_has_step(gk, probe[i]))
                (void)cdl_ckks_rotate(setting.ctx, gk, fixed_ct, probe[i], scratch_ct);
        (void)cdl_ckks_conjugate(setting.ctx, gk, fixed_ct, scratch_ct);
        cdl_ckks_galois_keys_free(gk);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    fuzz_try_both(data, size, try_load);
    return 0;
}
