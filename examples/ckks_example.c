/*
 * ckks_example.c: the smallest complete CKKS program with the public API.
 * It encrypts two vectors with a public key, multiplies them (relinearize,
 * rescale), rotates the product by one slot, decrypts, and checks every slot
 * against the same computation in plain double precision.
 *
 * Quoted in docs/ckks.md; built and run by CTest (tests/integration/tests.cmake),
 * which fails if the result is not within 2^-16 of the plaintext answer.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cryptodl/cryptodl.h"

#define CHECK(call)                                                                                                  \
    do {                                                                                                             \
        if ((call) != CDL_OK) {                                                                                      \
            fprintf(stderr, "%s failed: %s\n", #call, cdl_last_error());                                             \
            exit(1);                                                                                                 \
        }                                                                                                            \
    } while (0)

int main(void)
{
    /* Parameters: N = 2^13, log Q = 218 (128-bit security), scale 2^40-ish. */
    cdl_ckks_param_spec spec;
    cdl_ckks_context *ctx;
    CHECK(cdl_ckks_preset(13, &spec));
    CHECK(cdl_ckks_context_new(&spec, &ctx));
    size_t slots = cdl_ckks_slots(ctx);
    double scale = cdl_ckks_default_scale(ctx);
    int top = cdl_ckks_max_level(ctx);

    /* Keys: the client keeps sk; the others can go to a server. */
    cdl_rng *rng;
    cdl_ckks_secret_key *sk;
    cdl_ckks_public_key *pk;
    cdl_ckks_relin_key *rlk;
    cdl_ckks_galois_keys *gk;
    const int steps[] = {1};
    CHECK(cdl_rng_new_system(&rng));
    CHECK(cdl_ckks_keygen_secret(ctx, rng, &sk));
    CHECK(cdl_ckks_keygen_public(ctx, sk, rng, &pk));
    CHECK(cdl_ckks_keygen_relin(ctx, sk, rng, &rlk));
    CHECK(cdl_ckks_keygen_galois(ctx, sk, steps, 1, 0, rng, &gk));

    /* Two vectors, one value per slot. */
    double *x = malloc(slots * sizeof *x), *y = malloc(slots * sizeof *y), *out = malloc(slots * sizeof *out);
    if (!x || !y || !out)
        return 1;
    for (size_t i = 0; i < slots; i++) {
        x[i] = sin(0.001 * (double)i);
        y[i] = cos(0.003 * (double)i);
    }

    /* Encode and encrypt. */
    cdl_ckks_plaintext *pt;
    cdl_ckks_ciphertext *cx, *cy, *cr;
    CHECK(cdl_ckks_plaintext_new(ctx, &pt));
    CHECK(cdl_ckks_ciphertext_new(ctx, &cx));
    CHECK(cdl_ckks_ciphertext_new(ctx, &cy));
    CHECK(cdl_ckks_ciphertext_new(ctx, &cr));
    CHECK(cdl_ckks_encode(ctx, x, slots, scale, top, pt));
    CHECK(cdl_ckks_encrypt_pk(ctx, pk, pt, rng, cx));
    CHECK(cdl_ckks_encode(ctx, y, slots, scale, top, pt));
    CHECK(cdl_ckks_encrypt_pk(ctx, pk, pt, rng, cy));

    /* What a server does: r = rotate(x * y, 1), i.e. r[i] = x[i+1] * y[i+1]. */
    CHECK(cdl_ckks_mul_relin(ctx, rlk, cx, cy, cr)); /* scale^2, level top */
    CHECK(cdl_ckks_rescale(ctx, cr, cr));            /* scale^2 / q_top ~ scale, level top - 1 */
    CHECK(cdl_ckks_rotate(ctx, gk, cr, 1, cr));

    /* Back at the client: decrypt, decode, compare with plain arithmetic. */
    CHECK(cdl_ckks_decrypt(ctx, sk, cr, pt));
    CHECK(cdl_ckks_decode(ctx, pt, out, slots));
    double worst = 0;
    for (size_t i = 0; i < slots; i++) {
        size_t j = (i + 1) % slots;
        double err = fabs(out[i] - x[j] * y[j]);
        if (err > worst || isnan(err))
            worst = isnan(worst) ? worst : err;
    }
    printf("N = %zu slots, level %d -> %d, r[0] = %.9f (expected %.9f)\n", slots, top,
           cdl_ckks_ciphertext_level(cr), out[0], x[1] * y[1]);
    printf("largest error %.3g = 2^%.1f, i.e. %.1f bits of precision\n", worst, log2(worst), -log2(worst));

    cdl_ckks_ciphertext_free(cr);
    cdl_ckks_ciphertext_free(cy);
    cdl_ckks_ciphertext_free(cx);
    cdl_ckks_plaintext_free(pt);
    cdl_ckks_galois_keys_free(gk);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_public_key_free(pk);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(rng);
    cdl_ckks_context_free(ctx);
    free(x);
    free(y);
    free(out);
    return worst < 0x1p-16 ? 0 : 1; /* a wrong result is off by ~1, a right one by ~2^-20 */
}
