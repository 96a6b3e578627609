/*
 * rns_avx512.c: AVX-512 kernels for the RNS loops that dominate key switching
 * and public-key encryption at N = 2^15 (see rns_kernels.h): the two steps of
 * the fast base conversion (Halevi-Polyakov-Shoup 2019) and the last step of
 * ModDown. Eight 64-bit lanes; two flavours of Shoup multiplication a*w mod p
 * (the same as src/ring/ntt_avx512.c, D. Harvey 2014 / Intel HEXL 2021):
 *
 * - IFMA52 when a < 2^52 and p < 2^50: w52 = floor(w*2^52/p),
 *   h = madd52hi(a, w52), r = (a*w - h*p) mod 2^52 in [0, 2p);
 * - AVX-512F/DQ for any a < 2^64, p < 2^61: the 64-bit Shoup constant, the
 *   high word of a*w' estimated from three 32x32 products (at most 2 too
 *   small, so r < 3.5p), then one conditional subtraction of 2p.
 *
 * The portable loops in basis_extension.c and keyswitch.c are the reference:
 * every kernel ends with a full reduction to [0, p), so the outputs are equal
 * bit for bit (tests/unit/test_ring_ops.c compares them).
 */
#include "ring/rns_kernels.h"

#include "ring/ntt.h"
#include "ring/ntt_kernels.h"

#if CDL_HAVE_X86_KERNELS

#include <immintrin.h>

#define RNS_TARGET "avx2,avx512f,avx512dq,avx512vl,avx512ifma"
#define RNS_FN static inline __attribute__((target(RNS_TARGET), always_inline))
#define LOAD(p) _mm512_loadu_si512((const void *)(p))
#define STORE(p, v) _mm512_storeu_si512((void *)(p), (v))

int cdl_rns_vector_enabled(size_t n)
{
    return n % 8 == 0 && cdl_isa_active() == CDL_ISA_AVX512 && cdl_ntt_ifma_available();
}

/* x - m if x >= m, else x (any x < 2^64). */
RNS_FN __m512i reduce_once(__m512i x, __m512i m) { return _mm512_min_epu64(x, _mm512_sub_epi64(x, m)); }

/* One multiplier w mod p, in both flavours. */
typedef struct {
    __m512i w, ws, wsh; /* w, its Shoup constant (52-bit if ifma, else 64-bit), ws >> 32 */
    __m512i p, two_p, neg_p52, mask52;
    int ifma;
} z_mul;

/* ct-public: every multiplier below is an RNS constant of the parameters */
static inline uint64_t shoup52(uint64_t w, uint64_t p) { return (uint64_t)(((cdl_u128)w << 52) / p); } /* ct-public */

RNS_FN z_mul make_mul(uint64_t w, uint64_t p, int ifma)
{
    z_mul m;
    uint64_t ws = ifma ? shoup52(w, p) : cdl_shoup_precompute(w, p);
    m.w = _mm512_set1_epi64((long long)w);
    m.ws = _mm512_set1_epi64((long long)ws);
    m.wsh = _mm512_set1_epi64((long long)(ws >> 32));
    m.p = _mm512_set1_epi64((long long)p);
    m.two_p = _mm512_add_epi64(m.p, m.p);
    m.neg_p52 = _mm512_set1_epi64((long long)(((uint64_t)1 << 52) - p));
    m.mask52 = _mm512_set1_epi64((long long)(((uint64_t)1 << 52) - 1));
    m.ifma = ifma;
    return m;
}

/* a * w mod p in [0, 2p) (a < 2^52 for the IFMA flavour). */
RNS_FN __m512i mul_lazy(__m512i a, const z_mul *m)
{
    if (m->ifma) {
        const __m512i zero = _mm512_setzero_si512();
        __m512i h = _mm512_madd52hi_epu64(zero, a, m->ws);
        __m512i r = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, a, m->w), h, m->neg_p52);
        return _mm512_and_si512(r, m->mask52);
    }
    __m512i ah = _mm512_srli_epi64(a, 32);
    __m512i lh = _mm512_mul_epu32(a, m->wsh), hl = _mm512_mul_epu32(ah, m->ws), hh = _mm512_mul_epu32(ah, m->wsh);
    __m512i h = _mm512_add_epi64(hh, _mm512_add_epi64(_mm512_srli_epi64(lh, 32), _mm512_srli_epi64(hl, 32)));
    __m512i r = _mm512_sub_epi64(_mm512_mullo_epi64(a, m->w), _mm512_mullo_epi64(h, m->p));
    return reduce_once(r, m->two_p);
}

static int ifma_ok(uint64_t a_bound, uint64_t p)
{
    return a_bound <= ((uint64_t)1 << 52) && p < ((uint64_t)1 << CDL_IFMA_MODULUS_BITS);
}

__attribute__((target(RNS_TARGET))) void cdl_base_convert_prepare_avx512(const cdl_base_converter *bc,
                                                                          const uint64_t *x, uint64_t *y, size_t n)
{
    for (int i = 0; i < bc->from_count; i++) {
        uint64_t q = bc->from[i].value;
        z_mul m = make_mul(bc->qhat_inv[i], q, ifma_ok(q, q));
        const uint64_t *xi = x + (size_t)i * n;
        uint64_t *yi = y + (size_t)i * n;
        for (size_t k = 0; k < n; k += 8)
            STORE(yi + k, reduce_once(mul_lazy(LOAD(xi + k), &m), m.p));
    }
}

/* out = sum_i y_i * (Q/q_i) - Q * #{i : y_i > q_i/2} mod p: the centered sum
 * of basis_extension.c, with the -Q folded into each term under a mask. */
__attribute__((target(RNS_TARGET))) void cdl_base_convert_limb_avx512(const cdl_base_converter *bc,
                                                                       const uint64_t *y, int j, uint64_t *out,
                                                                       size_t n)
{
    const int fc = bc->from_count;
    const uint64_t p = bc->to[j].value;
    const uint64_t *w = bc->qhat_mod_p + (size_t)j * (size_t)fc;
    uint64_t q_mod_p = bc->q_mult_mod_p[(size_t)j * (size_t)(fc + 1) + 1];
    const __m512i neg_q = _mm512_set1_epi64((long long)(p - q_mod_p)); /* in (0, p] */
    const __m512i vp = _mm512_set1_epi64((long long)p);
    const __m512i two_p = _mm512_add_epi64(vp, vp), four_p = _mm512_add_epi64(two_p, two_p);
    z_mul mul[CDL_BASE_MAX_FROM];
    __m512i half[CDL_BASE_MAX_FROM];
    for (int i = 0; i < fc; i++) {
        mul[i] = make_mul(w[i], p, ifma_ok(bc->from[i].value, p));
        half[i] = _mm512_set1_epi64((long long)(bc->from[i].value >> 1));
    }
    for (size_t k = 0; k < n; k += 8) {
        __m512i acc = _mm512_setzero_si512(); /* < 2p */
        for (int i = 0; i < fc; i++) {
            __m512i v = LOAD(y + (size_t)i * n + k);
            __m512i t = mul_lazy(v, &mul[i]); /* < 2p */
            __mmask8 neg = _mm512_cmpgt_epu64_mask(v, half[i]);
            t = _mm512_mask_add_epi64(t, neg, t, neg_q); /* < 3p */
            acc = _mm512_add_epi64(acc, t);              /* < 5p < 2^64 */
            acc = reduce_once(reduce_once(acc, four_p), two_p);
        }
        STORE(out + k, reduce_once(acc, vp));
    }
}

__attribute__((target(RNS_TARGET))) void cdl_sub_mul_scalar_avx512(uint64_t *out, const uint64_t *c,
                                                                    const uint64_t *a, const uint64_t *b, uint64_t w,
                                                                    uint64_t ws, uint64_t q, size_t n)
{
    (void)ws; /* make_mul derives the constant of its flavour */
    z_mul m = make_mul(w, q, ifma_ok(2 * q, q));
    if (c) {
        for (size_t k = 0; k < n; k += 8) {
            __m512i d = _mm512_sub_epi64(_mm512_add_epi64(LOAD(a + k), m.p), LOAD(b + k)); /* < 2q */
            __m512i r = _mm512_add_epi64(reduce_once(mul_lazy(d, &m), m.p), LOAD(c + k)); /* < 2q */
            STORE(out + k, reduce_once(r, m.p));
        }
        return;
    }
    for (size_t k = 0; k < n; k += 8) {
        __m512i d = _mm512_sub_epi64(_mm512_add_epi64(LOAD(a + k), m.p), LOAD(b + k)); /* < 2q */
        STORE(out + k, reduce_once(mul_lazy(d, &m), m.p));
    }
}

/* o0 = sum_d x_d[perm(k)] * k0_d[k] mod p, o1 likewise with k1 (see
 * rns_kernels.h). Products of values below 2^50 split into their low and
 * high 52 bits (madd52lo / madd52hi) summed in two 64-bit lanes each:
 * lo < dcount * 2^52, hi < dcount * 2^48. Then V = lo + hi * 2^52 with the
 * carries of lo moved into hi (still < 2^52 for dcount <= 15) is reduced
 * as lo' * 1 + hi' * (2^52 mod p) with two IFMA Shoup products. */
RNS_FN __m512i fold52(__m512i lo, __m512i hi, const z_mul *one, const z_mul *c52)
{
    hi = _mm512_add_epi64(hi, _mm512_srli_epi64(lo, 52));
    lo = _mm512_and_si512(lo, one->mask52);
    __m512i r = _mm512_add_epi64(mul_lazy(lo, one), mul_lazy(hi, c52)); /* < 4p */
    return reduce_once(reduce_once(r, one->two_p), one->p);
}

__attribute__((target(RNS_TARGET))) void cdl_mac_ifma(const uint64_t *const *x, const uint64_t *const *k0,
                                                       const uint64_t *const *k1, int dcount, const uint32_t *perm,
                                                       uint64_t p, uint64_t *o0, uint64_t *o1, size_t n)
{
    const uint64_t r52 = ((uint64_t)1 << 52) % p; /* ct-public: the modulus */
    const z_mul one = make_mul(1, p, 1), c52 = make_mul(r52, p, 1);
    const __m512i zero = _mm512_setzero_si512();
    for (size_t k = 0; k < n; k += 8) {
        __m512i lo0 = zero, hi0 = zero, lo1 = zero, hi1 = zero;
        __m256i idx = perm ? _mm256_loadu_si256((const __m256i *)(const void *)(perm + k)) : _mm256_setzero_si256();
        for (int d = 0; d < dcount; d++) {
            __m512i v = perm ? _mm512_i32gather_epi64(idx, (const void *)x[d], 8) : LOAD(x[d] + k);
            __m512i a = LOAD(k0[d] + k), b = LOAD(k1[d] + k);
            lo0 = _mm512_madd52lo_epu64(lo0, v, a);
            hi0 = _mm512_madd52hi_epu64(hi0, v, a);
            lo1 = _mm512_madd52lo_epu64(lo1, v, b);
            hi1 = _mm512_madd52hi_epu64(hi1, v, b);
        }
        STORE(o0 + k, fold52(lo0, hi0, &one, &c52));
        STORE(o1 + k, fold52(lo1, hi1, &one, &c52));
    }
}

/* Tensor product of (a0, a1) and (b0, b1) modulo p < 2^50 (inputs < p): the
 * same 52-bit split products as cdl_mac_ifma, one fold per output. */
__attribute__((target(RNS_TARGET))) void cdl_tensor_ifma(const uint64_t *a0, const uint64_t *a1, const uint64_t *b0,
                                                          const uint64_t *b1, uint64_t *o0, uint64_t *o1,
                                                          uint64_t *o2, uint64_t p, size_t n)
{
    const uint64_t r52 = ((uint64_t)1 << 52) % p; /* ct-public: the modulus */
    const z_mul one = make_mul(1, p, 1), c52 = make_mul(r52, p, 1);
    const __m512i zero = _mm512_setzero_si512();
    for (size_t k = 0; k < n; k += 8) {
        __m512i x0 = LOAD(a0 + k), x1 = LOAD(a1 + k), y0 = LOAD(b0 + k), y1 = LOAD(b1 + k);
        __m512i l0 = _mm512_madd52lo_epu64(zero, x0, y0), h0 = _mm512_madd52hi_epu64(zero, x0, y0);
        __m512i l1 = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, x0, y1), x1, y0);
        __m512i h1 = _mm512_madd52hi_epu64(_mm512_madd52hi_epu64(zero, x0, y1), x1, y0);
        __m512i l2 = _mm512_madd52lo_epu64(zero, x1, y1), h2 = _mm512_madd52hi_epu64(zero, x1, y1);
        STORE(o0 + k, fold52(l0, h0, &one, &c52));
        STORE(o1 + k, fold52(l1, h1, &one, &c52));
        STORE(o2 + k, fold52(l2, h2, &one, &c52));
    }
}

/* o = c + a * b mod p, p < 2^50, inputs < p (o may be c). */
__attribute__((target(RNS_TARGET))) void cdl_mul_add_ifma(uint64_t *o, const uint64_t *c, const uint64_t *a,
                                                           const uint64_t *b, uint64_t p, size_t n)
{
    const uint64_t r52 = ((uint64_t)1 << 52) % p; /* ct-public: the modulus */
    const z_mul one = make_mul(1, p, 1), c52 = make_mul(r52, p, 1);
    const __m512i zero = _mm512_setzero_si512();
    for (size_t k = 0; k < n; k += 8) {
        __m512i x = LOAD(a + k), y = LOAD(b + k);
        __m512i lo = _mm512_madd52lo_epu64(LOAD(c + k), x, y), hi = _mm512_madd52hi_epu64(zero, x, y);
        STORE(o + k, fold52(lo, hi, &one, &c52));
    }
}

/* o = a * b mod p, p < 2^50, inputs < p (o may be a or b): mul_plain. */
__attribute__((target(RNS_TARGET))) void cdl_mul_ifma(uint64_t *o, const uint64_t *a, const uint64_t *b, uint64_t p,
                                                       size_t n)
{
    const uint64_t r52 = ((uint64_t)1 << 52) % p; /* ct-public: the modulus */
    const z_mul one = make_mul(1, p, 1), c52 = make_mul(r52, p, 1);
    const __m512i zero = _mm512_setzero_si512();
    for (size_t k = 0; k < n; k += 8) {
        __m512i x = LOAD(a + k), y = LOAD(b + k);
        __m512i lo = _mm512_madd52lo_epu64(zero, x, y), hi = _mm512_madd52hi_epu64(zero, x, y);
        STORE(o + k, fold52(lo, hi, &one, &c52));
    }
}

#else /* not x86-64 GCC/clang: the portable loops are always used */

int cdl_rns_vector_enabled(size_t n)
{
    (void)n;
    return 0;
}
void cdl_base_convert_prepare_avx512(const cdl_base_converter *bc, const uint64_t *x, uint64_t *y, size_t n)
{
    (void)bc, (void)x, (void)y, (void)n;
}
void cdl_base_convert_limb_avx512(const cdl_base_converter *bc, const uint64_t *y, int j, uint64_t *out, size_t n)
{
    (void)bc, (void)y, (void)j, (void)out, (void)n;
}
void cdl_sub_mul_scalar_avx512(uint64_t *out, const uint64_t *c, const uint64_t *a, const uint64_t *b, uint64_t w,
                               uint64_t ws, uint64_t q, size_t n)
{
    (void)out, (void)c, (void)a, (void)b, (void)w, (void)ws, (void)q, (void)n;
}
void cdl_mac_ifma(const uint64_t *const *x, const uint64_t *const *k0, const uint64_t *const *k1, int dcount,
                  const uint32_t *perm, uint64_t p, uint64_t *o0, uint64_t *o1, size_t n)
{
    (void)x, (void)k0, (void)k1, (void)dcount, (void)perm, (void)p, (void)o0, (void)o1, (void)n;
}
void cdl_tensor_ifma(const uint64_t *a0, const uint64_t *a1, const uint64_t *b0, const uint64_t *b1, uint64_t *o0,
                     uint64_t *o1, uint64_t *o2, uint64_t p, size_t n)
{
    (void)a0, (void)a1, (void)b0, (void)b1, (void)o0, (void)o1, (void)o2, (void)p, (void)n;
}
void cdl_mul_add_ifma(uint64_t *o, const uint64_t *c, const uint64_t *a, const uint64_t *b, uint64_t p, size_t n)
{
    (void)o, (void)c, (void)a, (void)b, (void)p, (void)n;
}

void cdl_mul_ifma(uint64_t *o, const uint64_t *a, const uint64_t *b, uint64_t p, size_t n)
{
    (void)o, (void)a, (void)b, (void)p, (void)n;
}

#endif
