/*
 * fuzz_boot_common.h: the small fixed bootstrapping setting shared by
 * fuzz_bootstrap_keys.c and by the unit test that writes its seed corpus
 * (tests/unit/test_bootstrap_serialize.c, CDL_WRITE_FUZZ_CORPUS=<dir>). Both
 * must build the very same context and bootstrapper, or the seed would carry a
 * parameter hash or a plan the fuzzer rejects at once.
 *
 * N = 2^10 and the bootstrapping parameters of cdl_ckks_bootstrap_preset(10)
 * (sparse-secret encapsulation included), with the level plan shortened:
 * the preset's keys take 28.7 MB, far too much for a seed that a fuzzer
 * mutates many times a second. Here the cosine has degree 3 and no double angle
 * (depth 7: CoeffToSlot 3, EvalMod 2, SlotToCoeff 2), the chain is 8 primes
 * of 20 bits with one 20-bit special prime and one key-switching digit, and
 * p' has 20 bits: 26 rotation steps plus conjugation, 2.65 MB of words whose
 * top bytes are zero, 0.97 MB with zstd level 19. The plan is what matters
 * to the loader (steps, levels, key shapes), not the precision of a
 * bootstrap (which these primes would not give).
 * TESTING ONLY: insecure parameters and a fixed-seed RNG.
 */
#ifndef CDL_FUZZ_BOOT_COMMON_H
#define CDL_FUZZ_BOOT_COMMON_H

#include <math.h>
#include <string.h>

#include "cryptodl/bootstrap.h"
#include "fuzz_ckks_common.h"

typedef struct fuzz_boot_setting {
    cdl_ckks_context *ctx;
    cdl_ckks_bootstrapper *bt;
    cdl_ckks_secret_key *sk;
    cdl_rng *rng;
} fuzz_boot_setting;

static inline void fuzz_boot_spec(cdl_ckks_param_spec *spec, cdl_ckks_bootstrap_params *bp)
{
    (void)cdl_ckks_bootstrap_preset(10, spec, bp);
    bp->cos_degree = 3;
    bp->double_angle = 0;
    bp->sse_p_bits = 20;
    memset(spec->q_bits, 0, sizeof spec->q_bits);
    memset(spec->p_bits, 0, sizeof spec->p_bits);
    spec->q_count = cdl_ckks_bootstrap_depth(bp) + 1;
    spec->q_bits[0] = 20;
    for (int i = 1; i < spec->q_count; i++)
        spec->q_bits[i] = 20;
    spec->p_count = 1;
    spec->p_bits[0] = 20;
    spec->dnum = 1;
    spec->scale = ldexp(1.0, 12);
    spec->allow_insecure = 1; /* TESTING ONLY (the preset sets it too) */
}

/* The context, a secret key and the bootstrapper, from one fixed seed.
 * Returns 0 on success. */
static inline int fuzz_boot_setup(fuzz_boot_setting *s)
{
    memset(s, 0, sizeof *s);
    cdl_set_threads(1);
    cdl_ckks_param_spec spec;
    cdl_ckks_bootstrap_params bp;
    fuzz_boot_spec(&spec, &bp);
    uint8_t seed[CDL_RNG_SEED_BYTES];
    for (int i = 0; i < CDL_RNG_SEED_BYTES; i++)
        seed[i] = (uint8_t)(0x3C ^ i);
    if (cdl_ckks_context_new(&spec, &s->ctx) != CDL_OK || cdl_rng_new_seeded_insecure(seed, &s->rng) != CDL_OK ||
        cdl_ckks_keygen_secret(s->ctx, s->rng, &s->sk) != CDL_OK ||
        cdl_ckks_bootstrapper_new(s->ctx, &bp, &s->bt) != CDL_OK)
        return -1;
    return 0;
}

static inline void fuzz_boot_teardown(fuzz_boot_setting *s)
{
    cdl_ckks_bootstrapper_free(s->bt);
    cdl_ckks_secret_key_free(s->sk);
    cdl_rng_free(s->rng);
    cdl_ckks_context_free(s->ctx);
    memset(s, 0, sizeof *s);
}

#endif
