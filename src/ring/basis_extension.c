/*
 * basis_extension.c: fast RNS base conversion (Halevi-Polyakov-Shoup,
 * "An Improved RNS Variant of the BFV Homomorphic Encryption Scheme", CT-RSA
 * 2019, section 2.2) and the centered lift used by rescaling. See the header
 * for the exact guarantee (result = x + k*Q with 0 <= k < |A|).
 */
#include "ring/basis_extension.h"

#include <string.h>

#include "core/error.h"
#include "core/memory.h"
#include "ring/rns_kernels.h"

cdl_status cdl_base_converter_init(cdl_base_converter *bc, const cdl_modulus *from, int from_count,
                                   const cdl_modulus *to, int to_count)
{
    memset(bc, 0, sizeof *bc);
    if (from_count < 1 || from_count > CDL_BASE_MAX_FROM || to_count < 0)
        return cdl_fail(CDL_ERR_INTERNAL, "base converter needs 1..%d source primes", CDL_BASE_MAX_FROM);
    bc->from_count = from_count;
    bc->to_count = to_count;
    size_t fc = (size_t)from_count, tc = (size_t)to_count;
    bc->from = cdl_alloc_array(fc, sizeof *bc->from);
    bc->to = cdl_alloc_array(tc ? tc : 1, sizeof *bc->to);
    bc->qhat_inv = cdl_alloc_array(fc, sizeof(uint64_t));
    bc->qhat_inv_shoup = cdl_alloc_array(fc, sizeof(uint64_t));
    bc->qhat_mod_p = cdl_alloc_array(fc * (tc ? tc : 1), sizeof(uint64_t));
    bc->qhat_mod_p_shoup = cdl_alloc_array(fc * (tc ? tc : 1), sizeof(uint64_t));
    bc->q_mult_mod_p = cdl_alloc_array((fc + 1) * (tc ? tc : 1), sizeof(uint64_t));
    if (!bc->from || !bc->to || !bc->qhat_inv || !bc->qhat_inv_shoup || !bc->qhat_mod_p || !bc->qhat_mod_p_shoup ||
        !bc->q_mult_mod_p) {
        cdl_base_converter_release(bc);
        return CDL_ERR_NO_MEMORY;
    }
    memcpy(bc->from, from, fc * sizeof *from);
    if (tc)
        memcpy(bc->to, to, tc * sizeof *to);
    for (int i = 0; i < from_count; i++) {
        /* (Q/q_i) mod q_i = prod_{k != i} q_k mod q_i */
        uint64_t qi = from[i].value, prod = 1;
        for (int k = 0; k < from_count; k++)
            if (k != i)
                prod = cdl_mod_mul(prod, from[k].value % qi, &from[i]);
        bc->qhat_inv[i] = cdl_mod_inv(prod, &from[i]);
        bc->qhat_inv_shoup[i] = cdl_shoup_precompute(bc->qhat_inv[i], qi);
        for (int j = 0; j < to_count; j++) {
            uint64_t pj = to[j].value, v = 1;
            for (int k = 0; k < from_count; k++)
                if (k != i)
                    v = cdl_mod_mul(v, cdl_barrett_reduce_64(from[k].value, &to[j]), &to[j]);
            bc->qhat_mod_p[(size_t)j * fc + (size_t)i] = v;
            bc->qhat_mod_p_shoup[(size_t)j * fc + (size_t)i] = cdl_shoup_precompute(v, pj);
        }
    }
    for (int j = 0; j < to_count; j++) {
        uint64_t qm = 1;
        for (int k = 0; k < from_count; k++)
            qm = cdl_mod_mul(qm, cdl_barrett_reduce_64(from[k].value, &to[j]), &to[j]);
        for (size_t c = 0; c <= fc; c++)
            bc->q_mult_mod_p[(size_t)j * (fc + 1) + c] = cdl_mod_mul(qm, c % to[j].value, &to[j]);
    }
    return CDL_OK;
}

void cdl_base_converter_release(cdl_base_converter *bc)
{
    if (!bc)
        return;
    cdl_free(bc->from);
    cdl_free(bc->to);
    cdl_free(bc->qhat_inv);
    cdl_free(bc->qhat_inv_shoup);
    cdl_free(bc->qhat_mod_p);
    cdl_free(bc->qhat_mod_p_shoup);
    cdl_free(bc->q_mult_mod_p);
    memset(bc, 0, sizeof *bc);
}

void cdl_base_convert_prepare(const cdl_base_converter *bc, const uint64_t *x, uint64_t *y, size_t n)
{
    if (bc->from_count == 1) { /* Q/q_0 = 1: y = x */
        if (y != x)
            memcpy(y, x, n * sizeof(uint64_t));
        return;
    }
    if (cdl_rns_vector_enabled(n)) {
        cdl_base_convert_prepare_avx512(bc, x, y, n);
        return;
    }
    for (int i = 0; i < bc->from_count; i++) {
        uint64_t q = bc->from[i].value, w = bc->qhat_inv[i], ws = bc->qhat_inv_shoup[i];
        const uint64_t *xi = x + (size_t)i * n;
        uint64_t *yi = y + (size_t)i * n;
        for (size_t k = 0; k < n; k++)
            yi[k] = cdl_mul_shoup(xi[k], w, ws, q);
    }
}

void cdl_base_convert_limb(const cdl_base_converter *bc, const uint64_t *y, int j, uint64_t *out, size_t n)
{
    const cdl_modulus *m = &bc->to[j];
    uint64_t p = m->value;
    size_t fc = (size_t)bc->from_count;
    const uint64_t *w = bc->qhat_mod_p + (size_t)j * fc;
    const uint64_t *ws = bc->qhat_mod_p_shoup + (size_t)j * fc;
    if (fc == 1) { /* exact centered lift of y < q_0 */
        cdl_lift_centered(y, bc->from[0].value, out, n, m);
        return;
    }
    if (cdl_rns_vector_enabled(n)) {
        cdl_base_convert_limb_avx512(bc, y, j, out, n);
        return;
    }
    const uint64_t *qmult = bc->q_mult_mod_p + (size_t)j * (fc + 1);
    uint64_t half[CDL_BASE_MAX_FROM];
    for (size_t i = 0; i < fc && i < CDL_BASE_MAX_FROM; i++)
        half[i] = bc->from[i].value >> 1;
    /* Shoup products are lazy in [0, 2p); four of them stay below 8p < 2^64,
     * which three conditional subtractions bring back to [0, p). */
    for (size_t k = 0; k < n; k++) {
        uint64_t acc = 0, cnt = 0;
        size_t i = 0;
        while (i < fc) {
            uint64_t part = 0;
            for (size_t stop = i + 4 < fc ? i + 4 : fc; i < stop; i++) {
                uint64_t v = y[i * n + k];
                cnt += (uint64_t)(v > half[i]); /* v - q_i: subtract Q once more */
                part += cdl_mul_shoup_lazy(v, w[i], ws[i], p);
            }
            part = cdl_reduce_once(part, 4 * p);
            part = cdl_reduce_once(part, 2 * p);
            acc = cdl_mod_add(acc, cdl_reduce_once(part, p), p);
        }
        out[k] = cdl_mod_sub(acc, qmult[cnt], p);
    }
}

void cdl_base_convert(const cdl_base_converter *bc, const uint64_t *x, uint64_t *y, uint64_t *out, size_t n)
{
    cdl_base_convert_prepare(bc, x, y, n);
    for (int j = 0; j < bc->to_count; j++)
        cdl_base_convert_limb(bc, y, j, out + (size_t)j * n, n);
}

/* Key switching calls this for every (digit, target) limb pair; the mask-only
 * paths vectorize, so x86-64 builds get AVX-512/AVX2 clones picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
void cdl_lift_centered(const uint64_t *x_last, uint64_t q_last, uint64_t *out, size_t n, const cdl_modulus *q)
{
    uint64_t half = q_last >> 1;
    uint64_t qv = q->value;
    uint64_t neg_shift = cdl_mod_neg(cdl_barrett_reduce_64(q_last, q), qv); /* -q_last mod q */
    /* The reduction of v < q_last modulo q depends only on the (public) moduli. */
    if (q_last <= qv) {
        for (size_t k = 0; k < n; k++) {
            uint64_t v = x_last[k];
            uint64_t mask = -(uint64_t)(v > half);
            out[k] = cdl_mod_add(v, neg_shift & mask, qv);
        }
    } else if (q_last <= 2 * qv) {
        for (size_t k = 0; k < n; k++) {
            uint64_t v = x_last[k];
            uint64_t mask = -(uint64_t)(v > half);
            out[k] = cdl_mod_add(cdl_reduce_once(v, qv), neg_shift & mask, qv);
        }
    } else {
        /* v mod q through a double-precision quotient: for v < 2^61 and
         * q >= 2^20, v/q < 2^41 is computed to within 2^-9, so the truncated
         * quotient is off by at most one and r = v - quot*q lies in [-q, 2q):
         * two masked corrections finish it (vectorizes, unlike 128-bit Barrett). */
        const double inv = 1.0 / (double)qv;
        for (size_t k = 0; k < n; k++) {
            uint64_t v = x_last[k];
            uint64_t quot = (uint64_t)((double)v * inv);
            int64_t r = (int64_t)(v - quot * qv);
            r += (int64_t)(qv & (uint64_t)(r >> 63));
            r -= (int64_t)(qv & ~(uint64_t)((r - (int64_t)qv) >> 63));
            uint64_t mask = -(uint64_t)(v > half);
            out[k] = cdl_mod_add((uint64_t)r, neg_shift & mask, qv);
        }
    }
}
