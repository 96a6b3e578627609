/*
 * automorphism.c: X -> X^g in coefficient and NTT (bit-reversed) form; see
 * automorphism.h for the index derivation.
 */
#include "ring/automorphism.h"

#include "ring/modarith.h"
#include "ring/ntt.h"

void cdl_automorphism_coeff(const uint64_t *in, uint64_t *out, size_t n, uint64_t g, uint64_t q)
{
    uint64_t two_n_mask = 2 * (uint64_t)n - 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t j = ((uint64_t)i * g) & two_n_mask;
        uint64_t v = in[i];
        if (j >= n)
            out[j - n] = cdl_mod_neg(v, q);
        else
            out[j] = v;
    }
}

void cdl_automorphism_ntt_index(size_t n, uint64_t g, uint32_t *index)
{
    int log_n = __builtin_ctzll(n);
    uint64_t two_n_mask = 2 * (uint64_t)n - 1;
    for (size_t k = 0; k < n; k++) {
        uint64_t e = 2 * (uint64_t)cdl_bit_reverse(k, log_n) + 1;
        uint64_t f = (e * g) & two_n_mask; /* odd */
        index[k] = (uint32_t)cdl_bit_reverse((size_t)((f - 1) >> 1), log_n);
    }
}

void cdl_automorphism_ntt_apply(const uint64_t *in, uint64_t *out, size_t n, const uint32_t *index)
{
    for (size_t k = 0; k < n; k++)
        out[k] = in[index[k]];
}

void cdl_automorphism_ntt_apply_inverse(const uint64_t *in, uint64_t *out, size_t n, const uint32_t *index)
{
    for (size_t k = 0; k < n; k++)
        out[index[k]] = in[k];
}
