/*
 * sampler.h: the random polynomials of RLWE, from a cdl_rng.
 *
 *  - uniform mod q: rejection sampling on bits(q)-bit masked words (what is
 *    rejected is a fresh random value, never a secret);
 *  - ternary secret: uniform in {-1, 0, 1}, or exactly h nonzero entries
 *    (uniform signs) placed by a constant-time shuffle (sorting random keys
 *    with a bitonic network of branch-free compare-exchanges);
 *  - error: centered binomial with eta = 21 (sum of 21 coin differences):
 *    variance eta/2 = 10.5, sigma = 3.24, support [-21, 21]. It stands in for
 *    the rounded Gaussian of sigma = 3.2 of the HomomorphicEncryption.org
 *    standard (same variance within 3%, tails bounded; as in Kyber/NewHope the
 *    security estimate depends on the variance).
 * Secret-valued samplers use no branches or table lookups on secret values.
 */
#ifndef CDL_RING_SAMPLER_H
#define CDL_RING_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"

#define CDL_CBD_ETA 21

/* n values uniform in [0, q). */
void cdl_sample_uniform(cdl_rng *rng, uint64_t q, uint64_t *out, size_t n);
/* n values uniform in {-1, 0, 1}. */
void cdl_sample_ternary(cdl_rng *rng, int8_t *out, size_t n);
/* n values in {-1, 0, 1} with exactly h nonzero (1 <= h <= n). */
cdl_status cdl_sample_ternary_hw(cdl_rng *rng, size_t h, int8_t *out, size_t n);
/* n values from the centered binomial distribution with eta = 21. */
void cdl_sample_cbd(cdl_rng *rng, int8_t *out, size_t n);

#endif
