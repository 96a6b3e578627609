/*
 * rng.c: ChaCha20-based random source. The key comes from libsodium's
 * randombytes_buf (system mode) or from the caller (seeded test mode); the
 * output is the ChaCha20-IETF keystream, buffered, with a 32-bit block
 * counter and a 96-bit nonce that is advanced when the counter wraps.
 *
 * A seeded generator is as secret as its seed, so whatever must stay secret
 * (keys, their noise, flooding noise) refuses one (cdl_rng_check_secret)
 * unless it was made by cdl_rng_new_seeded_insecure, the tests' explicit
 * opt-in, which warns once per process on stderr. cdl_rng_new_system_keyed
 * hands a system generator's key to the caller, and cdl_rng_new_from_key
 * rebuilds that system generator from it (to regenerate keys on resume).
 */
#include "core/rng.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/error.h"
#include "core/memory.h"

#define RNG_BUFFER_BYTES 4096

struct cdl_rng {
    uint8_t key[crypto_stream_chacha20_ietf_KEYBYTES];
    uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES];
    uint32_t counter; /* next 64-byte block */
    uint8_t buffer[RNG_BUFFER_BYTES];
    size_t available; /* unread bytes at the end of buffer */
    int seeded;
    int insecure_ok; /* seeded by cdl_rng_new_seeded_insecure: secrets may be drawn from it (tests only) */
};

static cdl_status rng_init(void)
{
    if (sodium_init() < 0)
        return cdl_fail(CDL_ERR_INTERNAL, "libsodium failed to initialise");
    return CDL_OK;
}

static cdl_status rng_new(const uint8_t *seed, int insecure_ok, cdl_rng **out)
{
    if (!out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_rng_new: output pointer is NULL");
    *out = NULL;
    CDL_TRY(rng_init());
    cdl_rng *rng = cdl_secure_calloc(1, sizeof *rng);
    if (!rng)
        return CDL_ERR_NO_MEMORY;
    if (seed) {
        memcpy(rng->key, seed, sizeof rng->key);
        rng->seeded = 1;
        rng->insecure_ok = insecure_ok;
    } else {
        randombytes_buf(rng->key, sizeof rng->key);
    }
    *out = rng;
    return CDL_OK;
}

cdl_status cdl_rng_new_system(cdl_rng **out) { return rng_new(NULL, 0, out); }

cdl_status cdl_rng_new_seeded(const uint8_t seed[CDL_RNG_SEED_BYTES], cdl_rng **out)
{
    if (!seed)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_rng_new_seeded: seed is NULL");
    return rng_new(seed, 0, out);
}

cdl_status cdl_rng_new_seeded_insecure(const uint8_t seed[CDL_RNG_SEED_BYTES], cdl_rng **out)
{
    if (!seed)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_rng_new_seeded_insecure: seed is NULL");
    return rng_new(seed, 1, out);
}

cdl_status cdl_rng_new_system_keyed(uint8_t key_out[CDL_RNG_SEED_BYTES], cdl_rng **out)
{
    if (!key_out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_rng_new_system_keyed: key_out is NULL");
    CDL_TRY(rng_new(NULL, 0, out));
    memcpy(key_out, (*out)->key, CDL_RNG_SEED_BYTES);
    return CDL_OK;
}

cdl_status cdl_rng_new_from_key(const uint8_t key[CDL_RNG_SEED_BYTES], cdl_rng **out)
{
    if (!key)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_rng_new_from_key: key is NULL");
    CDL_TRY(rng_new(key, 0, out));
    (*out)->seeded = 0; /* a system generator's key, kept by the caller: not a test seed */
    return CDL_OK;
}

void cdl_rng_free(cdl_rng *rng) { cdl_secure_free(rng, sizeof *rng); }

int cdl_rng_is_seeded(const cdl_rng *rng) { return rng->seeded; }

static atomic_flag insecure_warned = ATOMIC_FLAG_INIT;

cdl_status cdl_rng_check_secret(const cdl_rng *rng, const char *what)
{
    if (!rng->seeded)
        return CDL_OK;
    if (!rng->insecure_ok)
        return cdl_fail(CDL_ERR_INSECURE,
                        "%s: refusing a seeded random generator (cdl_rng_new_seeded): its whole output follows "
                        "from the 32-byte seed, so secrets drawn from it are no more secret than the seed. Use "
                        "cdl_rng_new_system() for real keys; tests and known-answer vectors that need "
                        "reproducible keys create the generator with cdl_rng_new_seeded_insecure()",
                        what);
    if (!atomic_flag_test_and_set(&insecure_warned))
        fprintf(stderr, "cryptodl: WARNING: %s from a seeded generator (cdl_rng_new_seeded_insecure): "
                        "REPRODUCIBLE TEST SECRETS, never use them for real data.\n",
                what);
    return CDL_OK;
}

cdl_status cdl_rng_new_child(cdl_rng *parent, cdl_rng **out)
{
    if (!parent || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_rng_new_child: NULL argument");
    uint8_t seed[CDL_RNG_SEED_BYTES];
    cdl_rng_bytes(parent, seed, sizeof seed);
    cdl_status st = rng_new(seed, parent->insecure_ok, out);
    sodium_memzero(seed, sizeof seed);
    if (st == CDL_OK) {
        /* a child of the system generator is as unpredictable as its parent */
        (*out)->seeded = parent->seeded;
    }
    return st;
}

static void rng_refill(cdl_rng *rng)
{
    const uint32_t blocks = RNG_BUFFER_BYTES / 64;
    if (rng->counter > UINT32_MAX - blocks) {
        /* 2^38 bytes under this nonce: move to the next nonce. */
        sodium_increment(rng->nonce, sizeof rng->nonce);
        rng->counter = 0;
    }
    memset(rng->buffer, 0, sizeof rng->buffer);
    crypto_stream_chacha20_ietf_xor_ic(rng->buffer, rng->buffer, sizeof rng->buffer, rng->nonce, rng->counter,
                                       rng->key);
    rng->counter += blocks;
    rng->available = sizeof rng->buffer;
}

void cdl_rng_bytes(cdl_rng *rng, void *buf, size_t len)
{
    uint8_t *dst = buf;
    while (len > 0) {
        if (rng->available == 0)
            rng_refill(rng);
        size_t take = len < rng->available ? len : rng->available;
        uint8_t *src = rng->buffer + (sizeof rng->buffer - rng->available);
        memcpy(dst, src, take);
        sodium_memzero(src, take); /* consumed randomness is not kept around */
        rng->available -= take;
        dst += take;
        len -= take;
    }
}

uint64_t cdl_rng_u64(cdl_rng *rng)
{
    uint8_t b[8];
    cdl_rng_bytes(rng, b, sizeof b);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | b[i];
    return v;
}

void cdl_rng_derive_seed(cdl_rng *rng, uint8_t seed_out[CDL_RNG_SEED_BYTES])
{
    cdl_rng_bytes(rng, seed_out, CDL_RNG_SEED_BYTES);
}
