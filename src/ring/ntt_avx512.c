/*
 * ntt_avx512.c: the negacyclic NTT with AVX-512, eight 64-bit lanes.
 *
 * Same algorithm and value ranges as the portable kernel in ntt.c (Harvey's
 * lazy butterflies, "Faster arithmetic for number-theoretic transforms", 2014):
 * Cooley-Tukey forward with values in [0, 4q), Gentleman-Sande inverse with
 * values in [0, 2q). Two flavours of Shoup multiplication a*w mod q:
 *
 * - IFMA52, for q < 2^50 (so every lazy value < 4q fits in 52 bits), as in
 *   Intel HEXL (Boemer et al., "Intel HEXL: Accelerating Homomorphic
 *   Encryption with Intel AVX512-IFMA52", 2021): with w' = floor(w*2^52/q),
 *   h = madd52hi(a, w') = floor(a*w'/2^52) and r = (a*w - h*q) mod 2^52, two
 *   madd52lo and a mask; r < 2q because a < 2^52.
 * - AVX-512F/DQ, for any q < 2^61: the 64-bit Shoup constant of the portable
 *   kernel, an estimate of the high word of a*w' (at most 2 too small) from
 *   three _mm512_mul_epu32 pieces, the low words from _mm512_mullo_epi64,
 *   and one extra conditional subtraction.
 *
 * Stages with gap >= 8 use one broadcast twiddle per vector. The last three
 * forward stages (gap 4, 2, 1; the first three inverse ones) run together on
 * blocks of 16 values with in-register permutes, the final reduction to
 * [0, q) (forward) happens in the same pass, and the last inverse stage is
 * fused with the 1/N scaling. Outputs are the unique representatives in
 * [0, q), hence equal to the portable kernel's bit for bit.
 */
#include "ring/ntt_kernels.h"

#if CDL_HAVE_X86_KERNELS

#include <immintrin.h>

/* The F/DQ code must not need IFMA (Skylake-X has AVX-512 without it): only
 * mul_ifma and the two IFMA entry points carry the avx512ifma target. */
#define AVX512_TARGET "avx2,avx512f,avx512dq,avx512vl"
#define IFMA_TARGET "avx2,avx512f,avx512dq,avx512vl,avx512ifma"
#define AVX512_FN static inline __attribute__((target(AVX512_TARGET), always_inline))

/* x - m if x >= m, else x (unsigned: x - m wraps above x when x < m). */
AVX512_FN __m512i reduce_once(__m512i x, __m512i m) { return _mm512_min_epu64(x, _mm512_sub_epi64(x, m)); }

/* Parameters of one Shoup multiplication flavour, fixed per call. */
typedef struct {
    __m512i q, two_q;
    __m512i neg_q52; /* 2^52 - q (IFMA) */
    __m512i mask52;  /* 2^52 - 1 (IFMA) */
} z_mod;

/* A twiddle w with its Shoup constant ws (64-bit, or 52-bit for IFMA) and, for
 * the DQ flavour, ws >> 32. */
typedef struct {
    __m512i w, ws, wsh;
} z_twiddle;

AVX512_FN z_twiddle twiddle(__m512i w, __m512i ws)
{
    z_twiddle r = {w, ws, _mm512_srli_epi64(ws, 32)};
    return r;
}

/* floor(a*b / 2^64) - e with e in {0, 1, 2}, given bh = b >> 32: of the
 * schoolbook product on 32-bit halves, the low x low product and the carries
 * out of the middle words are dropped (each costs at most 1). */
AVX512_FN __m512i mulhi64_approx(__m512i a, __m512i b, __m512i bh)
{
    __m512i ah = _mm512_srli_epi64(a, 32);
    __m512i lh = _mm512_mul_epu32(a, bh), hl = _mm512_mul_epu32(ah, b), hh = _mm512_mul_epu32(ah, bh);
    return _mm512_add_epi64(hh, _mm512_add_epi64(_mm512_srli_epi64(lh, 32), _mm512_srli_epi64(hl, 32)));
}

/* a * w mod q in [0, 2q) for a < 2^52, with the 52-bit Shoup constant.
 * Not always_inline: it can only be inlined into the IFMA entry points, and
 * the F/DQ flavour never calls it (the branch below is dead there). */
static inline __attribute__((target(IFMA_TARGET))) __m512i mul_ifma(__m512i a, z_twiddle t, const z_mod *m)
{
    const __m512i zero = _mm512_setzero_si512();
    __m512i h = _mm512_madd52hi_epu64(zero, a, t.ws);
    __m512i r = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(zero, a, t.w), h, m->neg_q52);
    return _mm512_and_si512(r, m->mask52);
}

/* a * w mod q in [0, 2q): a < 2^52 for IFMA, a < 2^63 otherwise. `ifma` is a
 * compile-time constant in every caller, so each kernel has one flavour.
 * F/DQ: with the exact quotient h = floor(a*w'/2^64) the remainder a*w - h*q
 * is below q*(1 + a/2^64) < 1.5q; the approximate h adds at most 2q, and one
 * conditional subtraction of 2q brings the result back below 2q. */
AVX512_FN __m512i mul_shoup_lazy(__m512i a, z_twiddle t, const z_mod *m, int ifma)
{
    if (ifma)
        return mul_ifma(a, t, m);
    __m512i h = mulhi64_approx(a, t.ws, t.wsh);
    __m512i r = _mm512_sub_epi64(_mm512_mullo_epi64(a, t.w), _mm512_mullo_epi64(h, m->q));
    return reduce_once(r, m->two_q);
}

/* Cooley-Tukey butterfly: x, y < 4q -> x + w*y, x - w*y, both < 4q. */
AVX512_FN void ct_butterfly(__m512i *x, __m512i *y, z_twiddle t, const z_mod *m, int ifma)
{
    __m512i u = reduce_once(*x, m->two_q);
    __m512i v = mul_shoup_lazy(*y, t, m, ifma);
    *x = _mm512_add_epi64(u, v);
    *y = _mm512_add_epi64(_mm512_sub_epi64(u, v), m->two_q);
}

/* Gentleman-Sande butterfly: x, y < 2q -> x + y, (x - y) * w, both < 2q. */
AVX512_FN void gs_butterfly(__m512i *x, __m512i *y, z_twiddle t, const z_mod *m, int ifma)
{
    __m512i u = *x, v = *y;
    *x = reduce_once(_mm512_add_epi64(u, v), m->two_q);
    *y = mul_shoup_lazy(_mm512_add_epi64(_mm512_sub_epi64(u, v), m->two_q), t, m, ifma);
}

#define LOAD(p) _mm512_loadu_si512((const void *)(p))
#define STORE(p, v) _mm512_storeu_si512((void *)(p), (v))

/* {w[0] x4, w[1] x4} and {w[0] x2, w[1] x2, w[2] x2, w[3] x2}: one twiddle per
 * group of lanes in the gap-4 and gap-2 layouts below. */
AVX512_FN __m512i load_quads(const uint64_t *w)
{
    return _mm512_permutexvar_epi64(_mm512_set_epi64(1, 1, 1, 1, 0, 0, 0, 0),
                                    _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)w)));
}

AVX512_FN __m512i load_pairs(const uint64_t *w)
{
    return _mm512_permutexvar_epi64(_mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0),
                                    _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)w)));
}

AVX512_FN z_mod make_mod(uint64_t qv)
{
    z_mod m;
    m.q = _mm512_set1_epi64((long long)qv);
    m.two_q = _mm512_add_epi64(m.q, m.q);
    m.neg_q52 = _mm512_set1_epi64((long long)(((uint64_t)1 << 52) - qv));
    m.mask52 = _mm512_set1_epi64((long long)(((uint64_t)1 << 52) - 1));
    return m;
}

/* Layouts of a block of 16 values v0 = 0..7, v1 = 8..15 for the small gaps:
 *   gap 4: x = 0 1 2 3 8 9 10 11,   y = 4 5 6 7 12 13 14 15
 *   gap 2: x = 0 1 4 5 8 9 12 13,   y = 2 3 6 7 10 11 14 15
 *   gap 1: x = 0 2 4 6 8 10 12 14,  y = 1 3 5 7 9 11 13 15 */
#define IDX_G2_X _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0)   /* gap-4 layout -> gap-2 x (and back) */
#define IDX_G2_Y _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2)
#define IDX_EVEN _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0)
#define IDX_ODD _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1)
#define IDX_LO _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0)     /* interleave x, y: 0..7 */
#define IDX_HI _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4)   /* interleave x, y: 8..15 */

AVX512_FN z_twiddle broadcast_twiddle(const uint64_t *w, const uint64_t *ws)
{
    return twiddle(_mm512_set1_epi64((long long)*w), _mm512_set1_epi64((long long)*ws));
}

/* One Cooley-Tukey group: x = p[0..gap), y = p[gap..2*gap), twiddle *w. */
AVX512_FN void forward_radix2(uint64_t *p, size_t gap, const uint64_t *w, const uint64_t *ws, const z_mod *m,
                              int ifma)
{
    z_twiddle tw = broadcast_twiddle(w, ws);
    for (size_t j = 0; j < gap; j += 8) {
        __m512i x = LOAD(p + j), y = LOAD(p + gap + j);
        ct_butterfly(&x, &y, tw, m, ifma);
        STORE(p + j, x);
        STORE(p + gap + j, y);
    }
}

/* Group i of the stage with mm groups and the two groups 2i, 2i+1 of the next
 * stage, on p[0 .. 4*h): quarters x0..x3 of h values each. */
AVX512_FN void forward_radix4(uint64_t *p, size_t h, const uint64_t *w, const uint64_t *ws, size_t mm, size_t i,
                              const z_mod *m, int ifma)
{
    z_twiddle t1 = broadcast_twiddle(w + mm + i, ws + mm + i);
    z_twiddle t2a = broadcast_twiddle(w + 2 * mm + 2 * i, ws + 2 * mm + 2 * i);
    z_twiddle t2b = broadcast_twiddle(w + 2 * mm + 2 * i + 1, ws + 2 * mm + 2 * i + 1);
    for (size_t j = 0; j < h; j += 8) {
        __m512i x0 = LOAD(p + j), x1 = LOAD(p + h + j), x2 = LOAD(p + 2 * h + j), x3 = LOAD(p + 3 * h + j);
        ct_butterfly(&x0, &x2, t1, m, ifma);
        ct_butterfly(&x1, &x3, t1, m, ifma);
        ct_butterfly(&x0, &x1, t2a, m, ifma);
        ct_butterfly(&x2, &x3, t2b, m, ifma);
        STORE(p + j, x0);
        STORE(p + h + j, x1);
        STORE(p + 2 * h + j, x2);
        STORE(p + 3 * h + j, x3);
    }
}

/* One Gentleman-Sande group: x = p[0..gap), y = p[gap..2*gap), twiddle *w. */
AVX512_FN void inverse_radix2(uint64_t *p, size_t gap, const uint64_t *w, const uint64_t *ws, const z_mod *m,
                              int ifma)
{
    z_twiddle tw = broadcast_twiddle(w, ws);
    for (size_t j = 0; j < gap; j += 8) {
        __m512i x = LOAD(p + j), y = LOAD(p + gap + j);
        gs_butterfly(&x, &y, tw, m, ifma);
        STORE(p + j, x);
        STORE(p + gap + j, y);
    }
}

/* Groups 2i, 2i+1 of the stage with mm groups (gap g) and group i of the next
 * one (mm/2 groups, gap 2g), on p[0 .. 4g): quarters x0..x3 of g values each. */
AVX512_FN void inverse_radix4(uint64_t *p, size_t g, const uint64_t *w, const uint64_t *ws, size_t mm, size_t i,
                              const z_mod *m, int ifma)
{
    z_twiddle t1a = broadcast_twiddle(w + mm + 2 * i, ws + mm + 2 * i);
    z_twiddle t1b = broadcast_twiddle(w + mm + 2 * i + 1, ws + mm + 2 * i + 1);
    z_twiddle t2 = broadcast_twiddle(w + mm / 2 + i, ws + mm / 2 + i);
    for (size_t j = 0; j < g; j += 8) {
        __m512i x0 = LOAD(p + j), x1 = LOAD(p + g + j), x2 = LOAD(p + 2 * g + j), x3 = LOAD(p + 3 * g + j);
        gs_butterfly(&x0, &x1, t1a, m, ifma);
        gs_butterfly(&x2, &x3, t1b, m, ifma);
        gs_butterfly(&x0, &x2, t2, m, ifma);
        gs_butterfly(&x1, &x3, t2, m, ifma);
        STORE(p + j, x0);
        STORE(p + g + j, x1);
        STORE(p + 2 * g + j, x2);
        STORE(p + 3 * g + j, x3);
    }
}

AVX512_FN void forward_body(const cdl_ntt_table *t, uint64_t *a, int ifma)
{
    const cdl_ntt_kernel_data *d = t->isa_data;
    const size_t n = t->n;
    const uint64_t *ws_tab = ifma ? d->roots_shoup52 : t->roots_shoup;
    const z_mod md = make_mod(t->mod.value), *m = &md;
    /* Stages with gap n/2 .. 8. IFMA is bound by loads and stores: one
     * radix-2 stage if their number is odd, then pairs of stages fused (radix
     * 4), so each value is loaded and stored once per two stages. The F/DQ
     * flavour is bound by multiplies and measured faster with radix 2 only. */
    size_t mm = 1, gap = n >> 1;
    if (ifma) {
        if ((t->log_n - 3) % 2) {
            for (size_t i = 0; i < mm; i++)
                forward_radix2(a + 2 * i * gap, gap, t->roots + mm + i, ws_tab + mm + i, m, ifma);
            mm <<= 1;
            gap >>= 1;
        }
        for (; gap >= 16; mm <<= 2, gap >>= 2)
            for (size_t i = 0; i < mm; i++)
                forward_radix4(a + 2 * i * gap, gap / 2, t->roots, ws_tab, mm, i, m, ifma);
    }
    for (; gap >= 8; mm <<= 1, gap >>= 1)
        for (size_t i = 0; i < mm; i++)
            forward_radix2(a + 2 * i * gap, gap, t->roots + mm + i, ws_tab + mm + i, m, ifma);
    /* mm = n/8: stages with gap 4, 2, 1 per block of 16, then reduce to [0, q). */
    for (size_t b = 0; b < n / 16; b++) {
        uint64_t *p = a + 16 * b;
        __m512i v0 = LOAD(p), v1 = LOAD(p + 8);
        __m512i x = _mm512_shuffle_i64x2(v0, v1, 0x44), y = _mm512_shuffle_i64x2(v0, v1, 0xEE);
        const size_t k4 = mm + 2 * b, k2 = 2 * mm + 4 * b, k1 = 4 * mm + 8 * b;
        ct_butterfly(&x, &y, twiddle(load_quads(t->roots + k4), load_quads(ws_tab + k4)), m, ifma);
        __m512i x2 = _mm512_permutex2var_epi64(x, IDX_G2_X, y), y2 = _mm512_permutex2var_epi64(x, IDX_G2_Y, y);
        ct_butterfly(&x2, &y2, twiddle(load_pairs(t->roots + k2), load_pairs(ws_tab + k2)), m, ifma);
        __m512i x1 = _mm512_unpacklo_epi64(x2, y2), y1 = _mm512_unpackhi_epi64(x2, y2);
        ct_butterfly(&x1, &y1, twiddle(LOAD(t->roots + k1), LOAD(ws_tab + k1)), m, ifma);
        x1 = reduce_once(reduce_once(x1, m->two_q), m->q);
        y1 = reduce_once(reduce_once(y1, m->two_q), m->q);
        STORE(p, _mm512_permutex2var_epi64(x1, IDX_LO, y1));
        STORE(p + 8, _mm512_permutex2var_epi64(x1, IDX_HI, y1));
    }
}

AVX512_FN void inverse_body(const cdl_ntt_table *t, uint64_t *a, int ifma)
{
    const cdl_ntt_kernel_data *d = t->isa_data;
    const size_t n = t->n;
    const uint64_t *ws_tab = ifma ? d->inv_roots_shoup52 : t->inv_roots_shoup;
    const z_mod md = make_mod(t->mod.value), *m = &md;
    /* Stages with gap 1, 2, 4 (m = n/2, n/4, n/8) per block of 16. */
    for (size_t b = 0; b < n / 16; b++) {
        uint64_t *p = a + 16 * b;
        __m512i v0 = LOAD(p), v1 = LOAD(p + 8);
        __m512i x1 = _mm512_permutex2var_epi64(v0, IDX_EVEN, v1), y1 = _mm512_permutex2var_epi64(v0, IDX_ODD, v1);
        const size_t k1 = n / 2 + 8 * b, k2 = n / 4 + 4 * b, k4 = n / 8 + 2 * b;
        gs_butterfly(&x1, &y1, twiddle(LOAD(t->inv_roots + k1), LOAD(ws_tab + k1)), m, ifma);
        __m512i x2 = _mm512_unpacklo_epi64(x1, y1), y2 = _mm512_unpackhi_epi64(x1, y1);
        gs_butterfly(&x2, &y2, twiddle(load_pairs(t->inv_roots + k2), load_pairs(ws_tab + k2)), m, ifma);
        __m512i x = _mm512_permutex2var_epi64(x2, IDX_G2_X, y2), y = _mm512_permutex2var_epi64(x2, IDX_G2_Y, y2);
        gs_butterfly(&x, &y, twiddle(load_quads(t->inv_roots + k4), load_quads(ws_tab + k4)), m, ifma);
        STORE(p, _mm512_shuffle_i64x2(x, y, 0x44));
        STORE(p + 8, _mm512_shuffle_i64x2(x, y, 0xEE));
    }
    /* Stages with gap 8 .. n/4 (m = n/16 .. 2); as in the forward kernel, IFMA
     * fuses pairs of stages (after one radix-2 stage if their number is odd). */
    size_t mm = n >> 4, gap = 8;
    if (ifma) {
        if (mm >= 2 && (t->log_n - 4) % 2) {
            for (size_t i = 0; i < mm; i++)
                inverse_radix2(a + 2 * i * gap, gap, t->inv_roots + mm + i, ws_tab + mm + i, m, ifma);
            mm >>= 1;
            gap <<= 1;
        }
        for (; mm >= 4; mm >>= 2, gap <<= 2)
            for (size_t i = 0; i < mm / 2; i++)
                inverse_radix4(a + 4 * i * gap, gap, t->inv_roots, ws_tab, mm, i, m, ifma);
    }
    for (; mm >= 2; mm >>= 1, gap <<= 1)
        for (size_t i = 0; i < mm; i++)
            inverse_radix2(a + 2 * i * gap, gap, t->inv_roots + mm + i, ws_tab + mm + i, m, ifma);
    /* Last stage (gap n/2) fused with the 1/N scaling, outputs reduced to [0, q). */
    z_twiddle tn = twiddle(_mm512_set1_epi64((long long)t->n_inv),
                           _mm512_set1_epi64((long long)(ifma ? d->n_inv_shoup52 : t->n_inv_shoup)));
    z_twiddle tl = twiddle(_mm512_set1_epi64((long long)d->last_w),
                           _mm512_set1_epi64((long long)(ifma ? d->last_w_shoup52 : d->last_w_shoup)));
    uint64_t *x = a, *y = a + n / 2;
    for (size_t j = 0; j < n / 2; j += 8) {
        __m512i u = LOAD(x + j), v = LOAD(y + j);
        __m512i s = mul_shoup_lazy(_mm512_add_epi64(u, v), tn, m, ifma);
        __m512i r = mul_shoup_lazy(_mm512_add_epi64(_mm512_sub_epi64(u, v), m->two_q), tl, m, ifma);
        STORE(x + j, reduce_once(s, m->q));
        STORE(y + j, reduce_once(r, m->q));
    }
}

__attribute__((target(IFMA_TARGET))) static void forward_ifma(const cdl_ntt_table *t, uint64_t *a)
{
    forward_body(t, a, 1);
}
__attribute__((target(AVX512_TARGET))) static void forward_dq(const cdl_ntt_table *t, uint64_t *a)
{
    forward_body(t, a, 0);
}
__attribute__((target(IFMA_TARGET))) static void inverse_ifma(const cdl_ntt_table *t, uint64_t *a)
{
    inverse_body(t, a, 1);
}
__attribute__((target(AVX512_TARGET))) static void inverse_dq(const cdl_ntt_table *t, uint64_t *a)
{
    inverse_body(t, a, 0);
}

void cdl_ntt_forward_avx512(const cdl_ntt_table *t, uint64_t *a)
{
    const cdl_ntt_kernel_data *d = t->isa_data;
    if (t->n < 16)
        cdl_ntt_forward_avx2(t, a);
    else if (d->roots_shoup52)
        forward_ifma(t, a);
    else
        forward_dq(t, a);
}

void cdl_ntt_inverse_avx512(const cdl_ntt_table *t, uint64_t *a)
{
    const cdl_ntt_kernel_data *d = t->isa_data;
    if (t->n < 16)
        cdl_ntt_inverse_avx2(t, a);
    else if (d->inv_roots_shoup52)
        inverse_ifma(t, a);
    else
        inverse_dq(t, a);
}

#else /* not x86-64 GCC/clang: never selected (cdl_ntt_avx512_available() is 0) */

void cdl_ntt_forward_avx512(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_forward_portable(t, a); }
void cdl_ntt_inverse_avx512(const cdl_ntt_table *t, uint64_t *a) { cdl_ntt_inverse_portable(t, a); }

#endif
