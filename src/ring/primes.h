/*
 * primes.h: NTT-friendly primes (q = 1 mod 2N, so that a primitive 2N-th root
 * of unity exists and the negacyclic NTT of size N works modulo q).
 */
#ifndef CDL_RING_PRIMES_H
#define CDL_RING_PRIMES_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/common.h"
#include "ring/modarith.h"

/* Deterministic Miller-Rabin for 64-bit integers. */
int cdl_is_prime(uint64_t n);

/* Fill out[0..count) with distinct primes of exactly `bits` bits, q = 1 mod
 * two_n, searching downward from 2^bits and skipping any value in avoid[].
 * Fails with CDL_ERR_PARAMETERS if there are not enough. */
cdl_status cdl_generate_ntt_primes(int bits, size_t count, uint64_t two_n, const uint64_t *avoid, size_t n_avoid,
                                   uint64_t *out);

/* The smallest primitive two_n-th root of unity modulo prime q (q = 1 mod two_n),
 * i.e. psi with psi^(two_n/2) = -1. Returns 0 if none (q not NTT-friendly). */
uint64_t cdl_primitive_root(uint64_t q, uint64_t two_n);

#endif
