/*
 * encoder_avx512.c: AVX-512 versions of the encoder's hot loops (encoder.c),
 * picked at run time with the other AVX-512 kernels (cdl_rns_vector_enabled):
 *   - one butterfly stage of the special FFT and of its inverse on split
 *     real / imaginary arrays (eight doubles per lane group, h >= 8);
 *   - scaling and rounding the inverse FFT's output to integer coefficients;
 *   - integer-valued doubles below 2^52 to residues modulo q.
 * Each computes exactly what the portable loop in encoder.c computes (the
 * same IEEE operations in the same order, and the same unique residue), so
 * an encoding does not depend on the CPU; tests/unit/test_ckks_encode.c
 * compares the two.
 */
#include <math.h>

#include "ckks/ckks_internal.h"
#include "ring/ntt_kernels.h"

#if CDL_HAVE_X86_KERNELS

#include <immintrin.h>

#define ENC_TARGET "avx2,avx512f,avx512dq,avx512vl"

#ifdef __clang__
#pragma clang fp contract(off) /* no fused multiply-adds: the portable loops have none */
#endif

__attribute__((target(ENC_TARGET))) void cdl_fft_stage_avx512(double *re, double *im, size_t size, size_t h,
                                                               const double *wr, const double *wi, int inverse)
{
    for (size_t i = 0; i < size; i += 2 * h) {
        double *ar = re + i, *ai = im + i, *br = re + i + h, *bi = im + i + h;
        for (size_t j = 0; j < h; j += 8) {
            const __m512d xr = _mm512_loadu_pd(ar + j), xi = _mm512_loadu_pd(ai + j);
            const __m512d yr = _mm512_loadu_pd(br + j), yi = _mm512_loadu_pd(bi + j);
            const __m512d cr = _mm512_loadu_pd(wr + j), ci = _mm512_loadu_pd(wi + j);
            if (!inverse) { /* t = y w; (x + t, x - t) */
                const __m512d tr = _mm512_sub_pd(_mm512_mul_pd(yr, cr), _mm512_mul_pd(yi, ci));
                const __m512d ti = _mm512_add_pd(_mm512_mul_pd(yr, ci), _mm512_mul_pd(yi, cr));
                _mm512_storeu_pd(ar + j, _mm512_add_pd(xr, tr));
                _mm512_storeu_pd(ai + j, _mm512_add_pd(xi, ti));
                _mm512_storeu_pd(br + j, _mm512_sub_pd(xr, tr));
                _mm512_storeu_pd(bi + j, _mm512_sub_pd(xi, ti));
            } else { /* (x + y, (x - y) conj(w)) */
                const __m512d dr = _mm512_sub_pd(xr, yr), di = _mm512_sub_pd(xi, yi);
                _mm512_storeu_pd(ar + j, _mm512_add_pd(xr, yr));
                _mm512_storeu_pd(ai + j, _mm512_add_pd(xi, yi));
                _mm512_storeu_pd(br + j, _mm512_add_pd(_mm512_mul_pd(dr, cr), _mm512_mul_pd(di, ci)));
                _mm512_storeu_pd(bi + j, _mm512_sub_pd(_mm512_mul_pd(di, cr), _mm512_mul_pd(dr, ci)));
            }
        }
    }
}

__attribute__((target(ENC_TARGET))) double cdl_fft_round_avx512(const double *re, const double *im, size_t slots,
                                                                 double scale, double *coef)
{
    const __m512d s = _mm512_set1_pd(scale), magic = _mm512_set1_pd(6755399441055744.0);
    const __m512d limit = _mm512_set1_pd(2251799813685248.0);
    __m512d top = _mm512_setzero_pd();
    double maxabs = 0;
    for (size_t j = 0; j < slots; j += 8) {
        for (int part = 0; part < 2; part++) {
            const __m512d x = _mm512_mul_pd(_mm512_loadu_pd((part ? im : re) + j), s);
            const __m512d a = _mm512_abs_pd(x);
            if (_mm512_cmp_pd_mask(a, limit, _CMP_LT_OQ) != 0xff) { /* a large value: the portable rounding */
                for (int k = 0; k < 8; k++) {
                    const double v = ((part ? im : re)[j + k]) * scale;
                    const double r = cdl_ckks_round_to_integer(v);
                    coef[j + k + (part ? slots : 0)] = r;
                    maxabs = fabs(r) > maxabs || r != r ? fabs(r) : maxabs;
                }
                continue;
            }
            const __m512d r = _mm512_sub_pd(_mm512_add_pd(x, magic), magic);
            _mm512_storeu_pd(coef + j + (part ? slots : 0), r);
            top = _mm512_max_pd(top, _mm512_abs_pd(r));
        }
    }
    const double t = _mm512_reduce_max_pd(top);
    return t > maxabs ? t : maxabs;
}

__attribute__((target(ENC_TARGET))) void cdl_doubles_to_residues_avx512(uint64_t *o, const double *c, size_t n,
                                                                         uint64_t q)
{
    const __m512i vq = _mm512_set1_epi64((long long)q);
    const __m512d inv = _mm512_set1_pd(1.0 / (double)q);
    for (size_t k = 0; k < n; k += 8) {
        const __m512d x = _mm512_loadu_pd(c + k);
        const __m512i xi = _mm512_cvttpd_epi64(x), t = _mm512_cvttpd_epi64(_mm512_mul_pd(x, inv));
        __m512i r = _mm512_sub_epi64(xi, _mm512_mullo_epi64(t, vq)); /* in (-2q, 2q) */
        r = _mm512_add_epi64(r, _mm512_and_si512(vq, _mm512_srai_epi64(r, 63)));
        r = _mm512_add_epi64(r, _mm512_and_si512(vq, _mm512_srai_epi64(r, 63)));
        r = _mm512_min_epu64(r, _mm512_sub_epi64(r, vq)); /* [0, 2q) -> [0, q) */
        _mm512_storeu_si512((void *)(o + k), r);
    }
}

#endif
