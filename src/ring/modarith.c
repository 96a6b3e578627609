/* modarith.c: Barrett constants, modular exponentiation and inversion. */
#include "ring/modarith.h"

void cdl_modulus_init(cdl_modulus *m, uint64_t q)
{
    m->value = q;
    m->bits = 64 - __builtin_clzll(q);
    /* floor(2^128 / q) = floor((2^128 - 1) / q) for q not a power of two. */
    cdl_u128 all = ~(cdl_u128)0;
    cdl_u128 r = all / q; /* ct-public: the modulus */
    m->barrett_lo = (uint64_t)r;
    m->barrett_hi = (uint64_t)(r >> 64);
}

uint64_t cdl_mod_pow(uint64_t base, uint64_t exp, const cdl_modulus *m)
{
    uint64_t result = 1 % m->value; /* ct-public: the modulus */
    base = cdl_barrett_reduce_64(base, m);
    while (exp) {
        if (exp & 1)
            result = cdl_mod_mul(result, base, m);
        base = cdl_mod_mul(base, base, m);
        exp >>= 1;
    }
    return result;
}

uint64_t cdl_mod_inv(uint64_t a, const cdl_modulus *m) { return cdl_mod_pow(a, m->value - 2, m); }
