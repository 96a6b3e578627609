/*
 * fuzz_ckks_context.c: libFuzzer target for cdl_ckks_context_load. The bytes
 * go to the loader directly (no fixed context to build), once as they are and
 * once with the envelope checksum repaired (fuzz_ckks_common.h), so that the
 * parameter checks behind the checksum are reached. A loaded context must be
 * usable: its parameter hash and prime list are read back.
 */
#include "fuzz_ckks_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_load(const uint8_t *data, size_t size)
{
    cdl_ckks_context *ctx = NULL;
    if (cdl_ckks_context_load(data, size, &ctx) == CDL_OK) {
        volatile uint64_t sink = cdl_ckks_param_hash(ctx)[0];
        for (int i = 0; i <= cdl_ckks_max_level(ctx); i++)
            sink ^= cdl_ckks_prime(ctx, i);
        (void)sink;
        cdl_ckks_context_free(ctx);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cdl_set_threads(1); /* building a context's tables is parallel; barriers would dominate */
    fuzz_try_both(data, size, try_load);
    return 0;
}
