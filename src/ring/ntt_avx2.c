/*
 * ntt_avx2.c: the negacyclic NTT with AVX2, four 64-bit lanes.
 *
 * Same algorithm and value ranges as the portable kernel in ntt.c (Harvey's
 * lazy butterflies, "Faster arithmetic for number-theoretic transforms", 2014):
 * Cooley-Tukey forward with values in [0, 4q), Gentleman-Sande inverse with
 * values in [0, 2q), q < 2^61. AVX2 has no 64x64-bit multiply, so the Shoup
 * product a*w - floor(a*w'/2^64)*q is built from 32x32->64 _mm256_mul_epu32
 * pieces: 3 for each low word and 3 for an estimate of the high word that may
 * be 2 too small, corrected by one extra conditional subtraction.
 *
 * Stages with gap >= 4 use one broadcast twiddle per vector. The last two
 * forward stages (gap 2 and 1; the first two inverse ones) run together on
 * blocks of 8 values with in-register shuffles, and the final reduction to
 * [0, q) (forward) or the 1/N scaling (inverse, fused with the gap N/2 stage)
 * happens in the same pass. Results equal the portable kernel bit for bit
 * because both return the unique representative in [0, q).
 */
#include "ring/ntt_kernels.h"

#if CDL_HAVE_X86_KERNELS

#include <immintrin.h>

#define AVX2_FN static inline __attribute__((target("avx2"), always_inline))

/* x - m if x >= m, else x; x and m below 2^63 (the sign of x - m decides). */
AVX2_FN __m256i reduce_once(__m256i x, __m256i m)
{
    __m256i d = _mm256_sub_epi64(x, m);
    return _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(d), _mm256_castsi256_pd(x),
                                                 _mm256_castsi256_pd(d)));
}

/* Low 64 bits of a*b, given b's high half bh = b >> 32. */
AVX2_FN __m256i mullo64(__m256i a, __m256i b, __m256i bh)
{
    __m256i ah = _mm256_srli_epi64(a, 32);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(ah, b), _mm256_mul_epu32(a, bh));
    return _mm256_add_epi64(_mm256_mul_epu32(a, b), _mm256_slli_epi64(cross, 32));
}

/* floor(a*b / 2^64) - e with e in {0, 1, 2}, given bh = b >> 32: of the
 * schoolbook product on 32-bit halves, the low x low product and the carries
 * out of the middle words are dropped (each costs at most 1). */
AVX2_FN __m256i mulhi64_approx(__m256i a, __m256i b, __m256i bh)
{
    __m256i ah = _mm256_srli_epi64(a, 32);
    __m256i lh = _mm256_mul_epu32(a, bh), hl = _mm256_mul_epu32(ah, b), hh = _mm256_mul_epu32(ah, bh);
    return _mm256_add_epi64(hh, _mm256_add_epi64(_mm256_srli_epi64(lh, 32), _mm256_srli_epi64(hl, 32)));
}

/* A twiddle w with its Shoup constant ws, and their high halves. */
typedef struct {
    __m256i w, wh, ws, wsh;
} avx2_twiddle;

AVX2_FN avx2_twiddle twiddle(__m256i w, __m256i ws)
{
    avx2_twiddle r = {w, _mm256_srli_epi64(w, 32), ws, _mm256_srli_epi64(ws, 32)};
    return r;
}

/* a * w mod q in [0, 2q) for a < 2^63 (Shoup). With the exact quotient
 * h = floor(a*w'/2^64) the remainder a*w - h*q is below q*(1 + a/2^64) < 1.5q;
 * the approximate h adds at most 2q, and one conditional subtraction of 2q
 * brings the result back below 2q. */
AVX2_FN __m256i mul_shoup_lazy(__m256i a, avx2_twiddle t, __m256i q, __m256i qh, __m256i two_q)
{
    __m256i hi = mulhi64_approx(a, t.ws, t.wsh);
    return reduce_once(_mm256_sub_epi64(mullo64(a, t.w, t.wh), mullo64(hi, q, qh)), two_q);
}

/* Cooley-Tukey butterfly: x, y < 4q -> x + w*y, x - w*y, both < 4q. */
AVX2_FN void ct_butterfly(__m256i *x, __m256i *y, avx2_twiddle t, __m256i q, __m256i qh, __m256i two_q)
{
    __m256i u = reduce_once(*x, two_q);
    __m256i v = mul_shoup_lazy(*y, t, q, qh, two_q);
    *x = _mm256_add_epi64(u, v);
    *y = _mm256_add_epi64(_mm256_sub_epi64(u, v), two_q);
}

/* Gentleman-Sande butterfly: x, y < 2q -> x + y, (x - y) * w, both < 2q. */
AVX2_FN void gs_butterfly(__m256i *x, __m256i *y, avx2_twiddle t, __m256i q, __m256i qh, __m256i two_q)
{
    __m256i u = *x, v = *y;
    *x = reduce_once(_mm256_add_epi64(u, v), two_q);
    *y = mul_shoup_lazy(_mm256_add_epi64(_mm256_sub_epi64(u, v), two_q), t, q, qh, two_q);
}

#define LOAD(p) _mm256_loadu_si256((const __m256i *)(p))
#define STORE(p, v) _mm256_storeu_si256((__m256i *)(p), (v))

/* {w[0], w[0], w[1], w[1]}: one twiddle per pair of lanes. */
AVX2_FN __m256i load_pairs(const uint64_t *w)
{
    return _mm256_permute4x64_epi64(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)w)), 0x50);
}

__attribute__((target("avx2"))) void cdl_ntt_forward_avx2(const cdl_ntt_table *t, uint64_t *a)
{
    const size_t n = t->n;
    if (n < 8) {
        cdl_ntt_forward_portable(t, a);
        return;
    }
    const __m256i q = _mm256_set1_epi64x((long long)t->mod.value), qh = _mm256_srli_epi64(q, 32);
    const __m256i two_q = _mm256_add_epi64(q, q);
    size_t m = 1, gap = n >> 1;
    for (; gap >= 4; m <<= 1, gap >>= 1) {
        for (size_t i = 0; i < m; i++) {
            avx2_twiddle tw = twiddle(_mm256_set1_epi64x((long long)t->roots[m + i]),
                                      _mm256_set1_epi64x((long long)t->roots_shoup[m + i]));
            uint64_t *x = a + 2 * i * gap, *y = x + gap;
            for (size_t j = 0; j < gap; j += 4) {
                __m256i vx = LOAD(x + j), vy = LOAD(y + j);
                ct_butterfly(&vx, &vy, tw, q, qh, two_q);
                STORE(x + j, vx);
                STORE(y + j, vy);
            }
        }
    }
    /* Now m = n/4: the gap-2 stage, then the gap-1 stage (m = n/2), per block of 8. */
    for (size_t b = 0; b < n / 8; b++) {
        uint64_t *p = a + 8 * b;
        __m256i v0 = LOAD(p), v1 = LOAD(p + 4);
        __m256i x = _mm256_permute2x128_si256(v0, v1, 0x20); /* 0 1 4 5 */
        __m256i y = _mm256_permute2x128_si256(v0, v1, 0x31); /* 2 3 6 7 */
        ct_butterfly(&x, &y, twiddle(load_pairs(t->roots + m + 2 * b), load_pairs(t->roots_shoup + m + 2 * b)), q,
                     qh, two_q);
        __m256i x1 = _mm256_unpacklo_epi64(x, y); /* 0 2 4 6 */
        __m256i y1 = _mm256_unpackhi_epi64(x, y); /* 1 3 5 7 */
        ct_butterfly(&x1, &y1, twiddle(LOAD(t->roots + 2 * m + 4 * b), LOAD(t->roots_shoup + 2 * m + 4 * b)), q,
                     qh, two_q);
        x1 = reduce_once(reduce_once(x1, two_q), q);
        y1 = reduce_once(reduce_once(y1, two_q), q);
        __m256i lo = _mm256_unpacklo_epi64(x1, y1); /* 0 1 4 5 */
        __m256i hi = _mm256_unpackhi_epi64(x1, y1); /* 2 3 6 7 */
        STORE(p, _mm256_permute2x128_si256(lo, hi, 0x20));
        STORE(p + 4, _mm256_permute2x128_si256(lo, hi, 0x31));
    }
}

__attribute__((target("avx2"))) void cdl_ntt_inverse_avx2(const cdl_ntt_table *t, uint64_t *a)
{
    const size_t n = t->n;
    const cdl_ntt_kernel_data *d = t->isa_data;
    if (n < 8) {
        cdl_ntt_inverse_portable(t, a);
        return;
    }
    const __m256i q = _mm256_set1_epi64x((long long)t->mod.value), qh = _mm256_srli_epi64(q, 32);
    const __m256i two_q = _mm256_add_epi64(q, q);
    /* Gap-1 stage (m = n/2) then gap-2 stage (m = n/4), per block of 8. */
    for (size_t b = 0; b < n / 8; b++) {
        uint64_t *p = a + 8 * b;
        __m256i v0 = LOAD(p), v1 = LOAD(p + 4);
        __m256i lo = _mm256_permute2x128_si256(v0, v1, 0x20); /* 0 1 4 5 */
        __m256i hi = _mm256_permute2x128_si256(v0, v1, 0x31); /* 2 3 6 7 */
        __m256i x = _mm256_unpacklo_epi64(lo, hi);            /* 0 2 4 6 */
        __m256i y = _mm256_unpackhi_epi64(lo, hi);            /* 1 3 5 7 */
        gs_butterfly(&x, &y, twiddle(LOAD(t->inv_roots + n / 2 + 4 * b), LOAD(t->inv_roots_shoup + n / 2 + 4 * b)),
                     q, qh, two_q);
        __m256i x1 = _mm256_unpacklo_epi64(x, y); /* 0 1 4 5 */
        __m256i y1 = _mm256_unpackhi_epi64(x, y); /* 2 3 6 7 */
        gs_butterfly(&x1, &y1,
                     twiddle(load_pairs(t->inv_roots + n / 4 + 2 * b), load_pairs(t->inv_roots_shoup + n / 4 + 2 * b)),
                     q, qh, two_q);
        STORE(p, _mm256_permute2x128_si256(x1, y1, 0x20));
        STORE(p + 4, _mm256_permute2x128_si256(x1, y1, 0x31));
    }
    /* Stages with gap 4 .. n/4. */
    for (size_t m = n >> 3, gap = 4; m >= 2; m >>= 1, gap <<= 1) {
        for (size_t i = 0; i < m; i++) {
            avx2_twiddle tw = twiddle(_mm256_set1_epi64x((long long)t->inv_roots[m + i]),
                                      _mm256_set1_epi64x((long long)t->inv_roots_shoup[m + i]));
            uint64_t *x = a + 2 * i * gap, *y = x + gap;
            for (size_t j = 0; j < gap; j += 4) {
                __m256i vx = LOAD(x + j), vy = LOAD(y + j);
                gs_butterfly(&vx, &vy, tw, q, qh, two_q);
                STORE(x + j, vx);
                STORE(y + j, vy);
            }
        }
    }
    /* Last stage (gap n/2) fused with the 1/N scaling, outputs reduced to [0, q). */
    avx2_twiddle tn = twiddle(_mm256_set1_epi64x((long long)t->n_inv), _mm256_set1_epi64x((long long)t->n_inv_shoup));
    avx2_twiddle tl = twiddle(_mm256_set1_epi64x((long long)d->last_w), _mm256_set1_epi64x((long long)d->last_w_shoup));
    uint64_t *x = a, *y = a + n / 2;
    for (size_t j = 0; j < n / 2; j += 4) {
        __m256i u = LOAD(x + j), v = LOAD(y + j);
        __m256i s = mul_shoup_lazy(_mm256_add_epi64(u, v), tn, q, qh, two_q);
        __m256i r = mul_shoup_lazy(_mm256_add_epi64(_mm256_sub_epi64(u, v), two_q), tl, q, qh, two_q);
        STORE(x + j, reduce_once(s, q));
        STORE(y + j, reduce_once(r, q));
    }
}

#else /* not x86-64 GCC/clang: never selected (cdl_ntt_avx2_available() is 0) */

void cdl_ntt_forward_avx2(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_forward_portable(t, a); }
void cdl_ntt_inverse_avx2(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_inverse_portable(t, a); }

#endif
