/* primes.c: Miller-Rabin, NTT-friendly prime search, primitive roots. */
#include "ring/primes.h"

#include "core/error.h"

int cdl_is_prime(uint64_t n)
{
    if (n < 2)
        return 0;
    static const uint64_t small[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        if (n == small[i])
            return 1;
        if (n % small[i] == 0)
            return 0;
    }
    /* These 12 bases make Miller-Rabin deterministic below 3.3e24 > 2^64. */
    uint64_t d = n - 1;
    int s = 0;
    while ((d & 1) == 0) {
        d >>= 1;
        s++;
    }
    cdl_modulus m;
    cdl_modulus_init(&m, n);
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        uint64_t x = cdl_mod_pow(small[i], d, &m);
        if (x == 1 || x == n - 1)
            continue;
        int composite = 1;
        for (int r = 1; r < s; r++) {
            x = cdl_mod_mul(x, x, &m);
            if (x == n - 1) {
                composite = 0;
                break;
            }
        }
        if (composite)
            return 0;
    }
    return 1;
}

cdl_status cdl_generate_ntt_primes(int bits, size_t count, uint64_t two_n, const uint64_t *avoid, size_t n_avoid,
                                   uint64_t *out)
{
    if (bits < CDL_MODULUS_MIN_BITS || bits > CDL_MODULUS_MAX_BITS)
        return cdl_fail(CDL_ERR_PARAMETERS, "prime size %d bits is outside %d..%d", bits, CDL_MODULUS_MIN_BITS,
                        CDL_MODULUS_MAX_BITS);
    if (two_n == 0 || (two_n & (two_n - 1)) != 0)
        return cdl_fail(CDL_ERR_PARAMETERS, "2N = %llu is not a power of two", (unsigned long long)two_n);
    uint64_t lower = (uint64_t)1 << (bits - 1);
    uint64_t upper = (uint64_t)1 << bits;
    if (two_n >= lower)
        return cdl_fail(CDL_ERR_PARAMETERS, "no %d-bit primes = 1 mod %llu", bits, (unsigned long long)two_n);
    /* Largest candidate below 2^bits with candidate = 1 mod 2N. */
    uint64_t candidate = upper - two_n + 1;
    size_t found = 0;
    while (found < count && candidate > lower) {
        int skip = 0;
        for (size_t i = 0; i < n_avoid && !skip; i++)
            skip = avoid[i] == candidate;
        for (size_t i = 0; i < found && !skip; i++)
            skip = out[i] == candidate;
        if (!skip && cdl_is_prime(candidate))
            out[found++] = candidate;
        candidate -= two_n;
    }
    if (found < count)
        return cdl_fail(CDL_ERR_PARAMETERS, "only %zu of the %zu requested %d-bit primes = 1 mod %llu exist", found,
                        count, bits, (unsigned long long)two_n);
    return CDL_OK;
}

uint64_t cdl_primitive_root(uint64_t q, uint64_t two_n)
{
    if ((q - 1) % two_n != 0)
        return 0;
    cdl_modulus m;
    cdl_modulus_init(&m, q);
    uint64_t cofactor = (q - 1) / two_n;
    /* g^((q-1)/2N) has order dividing 2N; it is primitive iff its N-th power is -1. */
    uint64_t best = 0;
    for (uint64_t g = 2; g < q && g < 100000; g++) {
        uint64_t psi = cdl_mod_pow(g, cofactor, &m);
        if (cdl_mod_pow(psi, two_n / 2, &m) == q - 1) {
            best = psi;
            break;
        }
    }
    if (!best)
        return 0;
    /* Canonical choice: the smallest of the primitive roots psi^k, k odd. */
    uint64_t psi2 = cdl_mod_mul(best, best, &m), cur = best, smallest = best;
    for (uint64_t k = 1; k < two_n; k += 2) {
        if (cur < smallest)
            smallest = cur;
        cur = cdl_mod_mul(cur, psi2, &m);
    }
    return smallest;
}
