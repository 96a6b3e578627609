/*
 * rng.h: private view of the random source. Every cdl_rng is a ChaCha20
 * keystream (libsodium's crypto_stream_chacha20_ietf) under a 32-byte key:
 * taken from randombytes_buf for real use, or given by the caller for
 * reproducible tests. Not thread-safe: one rng per thread.
 */
#ifndef CDL_CORE_RNG_H
#define CDL_CORE_RNG_H

#include "cryptodl/common.h"

/* Derive a child stream (for per-object seeds, e.g. the uniform half of a
 * symmetric ciphertext): fills seed_out with fresh bytes from rng. */
void cdl_rng_derive_seed(cdl_rng *rng, uint8_t seed_out[CDL_RNG_SEED_BYTES]);
/* 1 if the rng was created from a caller's seed (test mode). */
int cdl_rng_is_seeded(const cdl_rng *rng);
/* Before drawing anything that must stay secret (keys, key noise, flooding
 * noise): CDL_OK for a system generator (or a child of one) and, with a
 * one-time warning, for cdl_rng_new_seeded_insecure; CDL_ERR_INSECURE with a
 * message naming `what` and the fix for a plain seeded generator. */
cdl_status cdl_rng_check_secret(const cdl_rng *rng, const char *what);
/* A new generator keyed by 32 bytes of parent's stream, of the same kind
 * (system, seeded, seeded-insecure): for one generator per thread. */
cdl_status cdl_rng_new_child(cdl_rng *parent, cdl_rng **out);

#endif
