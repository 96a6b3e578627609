/*
 * common.h: what every part of the cryptodl API shares: the export macro,
 * status codes and the per-thread "last error" message, library-wide
 * settings (threads), and the random-number source handle.
 *
 * Convention: every function that can fail returns cdl_status (CDL_OK == 0)
 * and, on failure, leaves a human-readable message in cdl_last_error() that
 * says what went wrong and, where possible, what to do about it.
 */
#ifndef CRYPTODL_COMMON_H
#define CRYPTODL_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(CDL_BUILDING_LIBRARY)
#define CDL_API __attribute__((visibility("default")))
#else
#define CDL_API
#endif

typedef enum cdl_status {
    CDL_OK = 0,
    CDL_ERR_INVALID_ARGUMENT = 1, /* a NULL pointer, an out-of-range value, ... */
    CDL_ERR_NO_MEMORY = 2,        /* an allocation failed */
    CDL_ERR_IO = 3,               /* a file could not be opened, read or written */
    CDL_ERR_FORMAT = 4,           /* bytes that are not what they claim to be */
    CDL_ERR_INSECURE = 5,         /* parameters below 128-bit security */
    CDL_ERR_PARAMETERS = 6,       /* parameters that cannot work (no primes, ...) */
    CDL_ERR_MISMATCH = 7,         /* operands at different levels, scales, contexts */
    CDL_ERR_UNSUPPORTED = 8,      /* valid but not implemented (an ONNX op, ...) */
    CDL_ERR_EXHAUSTED = 9,        /* no level left to spend, key missing, ... */
    CDL_ERR_INTERNAL = 10         /* a bug: please report */
} cdl_status;

/* The message of the last failure on this thread ("" if none). */
CDL_API const char *cdl_last_error(void);
/* A short fixed name for a status ("out of memory", ...). */
CDL_API const char *cdl_status_name(cdl_status status);
/* Forget the last error of this thread. */
CDL_API void cdl_clear_error(void);

/* Free a byte buffer returned by a _save function. */
CDL_API void cdl_free_bytes(uint8_t *data);

/* Library version as "MAJOR.MINOR.PATCH". */
CDL_API const char *cdl_version(void);

/* Threads used by parallel sections (OpenMP). 0 means "all available".
 * Results are bit-identical for any thread count. */
CDL_API void cdl_set_threads(int threads);
CDL_API int cdl_get_threads(void);

/*
 * Random source. The default (cdl_rng_new_system) draws from libsodium's
 * randombytes. The seeded form expands a 32-byte seed with ChaCha20 and is for
 * tests and known-answer vectors only: its output is reproducible, so key
 * generation (cdl_ckks_keygen_*) and flooded decryption refuse it with
 * CDL_ERR_INSECURE. cdl_rng_new_seeded_insecure makes the same stream but
 * lets those functions use it (with a warning on stderr, once per process):
 * the explicit opt-in for tests that need reproducible keys. NEVER for real
 * keys.
 */
typedef struct cdl_rng cdl_rng;
#define CDL_RNG_SEED_BYTES 32
CDL_API cdl_status cdl_rng_new_system(cdl_rng **out);
CDL_API cdl_status cdl_rng_new_seeded(const uint8_t seed[CDL_RNG_SEED_BYTES], cdl_rng **out);
/* INSECURE, TESTS ONLY: a seeded generator that key generation accepts. */
CDL_API cdl_status cdl_rng_new_seeded_insecure(const uint8_t seed[CDL_RNG_SEED_BYTES], cdl_rng **out);
/* A system generator whose 32-byte ChaCha20 key (drawn by libsodium's
 * randombytes, as for cdl_rng_new_system) is also copied to key_out, and
 * cdl_rng_new_from_key, which makes the same stream again from that key, as a
 * system generator (secrets may be drawn from it). For a long job that must
 * regenerate the same keys when it resumes in a new process (cryptodl
 * train-encrypted --checkpoint). The key is then exactly as secret as a
 * secret key: whoever holds it can rebuild every key drawn from the stream.
 * Never pass cdl_rng_new_from_key a key that did not come from
 * cdl_rng_new_system_keyed (a fixed or guessable key makes guessable keys). */
CDL_API cdl_status cdl_rng_new_system_keyed(uint8_t key_out[CDL_RNG_SEED_BYTES], cdl_rng **out);
CDL_API cdl_status cdl_rng_new_from_key(const uint8_t key[CDL_RNG_SEED_BYTES], cdl_rng **out);
CDL_API void cdl_rng_free(cdl_rng *rng);
CDL_API void cdl_rng_bytes(cdl_rng *rng, void *buf, size_t len);
CDL_API uint64_t cdl_rng_u64(cdl_rng *rng);

#ifdef __cplusplus
}
#endif
#endif
