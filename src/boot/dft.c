/*
 * dft.c: the encoder's special FFT (encoder.c, HEAAN's fftSpecial) as a
 * product of sparse matrices, for CoeffToSlot and SlotToCoeff.
 *
 * After the bit reversal R, the FFT is log2(n) butterfly stages. The stage of
 * half-length h maps, inside each block of 2h entries, (x_j, x_(j+h)) to
 * (x_j + w_j x_(j+h), x_j - w_j x_(j+h)): as a matrix it has three cyclic
 * diagonals, at offsets 0, h and -h (one fewer when h = n/2). Its inverse is
 * ((x + y) / 2, conj(w_j) (x - y) / 2), with the same diagonals. A product of
 * consecutive stages has at most 2^(s+1) - 1 diagonals for s stages, so the
 * transform is spent in `groups` levels of a few dozen diagonals each instead
 * of one level of n (Cheon, Han, Kim, Kim, Song, "Improved bootstrapping for
 * approximate HE", EUROCRYPT 2019; Han and Ki, CT-RSA 2020). The bit reversal
 * is never applied: CoeffToSlot leaves the coefficients in bit-reversed slot
 * order, EvalMod works slot by slot, and SlotToCoeff expects that order.
 *
 * Sparse slots: a plaintext m(X) = m'(X^gap), gap = N / (2n), has slots that
 * repeat with period n, and they are the size-n special FFT of m' (the roots
 * zeta^(gap 5^j) are those of the ring of degree 2n). The matrices are then
 * built for size n (offsets modulo n) and their diagonals repeated over the
 * N/2 slots: on period-n vectors a rotation by d and by d - n agree.
 */
#include <string.h>

#include "boot/boot_internal.h"
#include "core/error.h"
#include "core/memory.h"

void boot_diag_matrix_free(boot_diag_matrix *m)
{
    if (!m)
        return;
    cdl_free(m->offset);
    cdl_free(m->re);
    cdl_free(m->im);
    memset(m, 0, sizeof(*m));
}

static cdl_status matrix_alloc(size_t n, int count, boot_diag_matrix *m)
{
    memset(m, 0, sizeof(*m));
    m->n = n;
    m->count = count;
    m->offset = cdl_calloc_array((size_t)count, sizeof(int));
    m->re = cdl_calloc_array((size_t)count * n, sizeof(double));
    m->im = cdl_calloc_array((size_t)count * n, sizeof(double));
    if (!m->offset || !m->re || !m->im) {
        boot_diag_matrix_free(m);
        return cdl_fail(CDL_ERR_NO_MEMORY, "bootstrapping: out of memory for a DFT matrix");
    }
    return CDL_OK;
}

/* An offset map of n entries, all unmarked (-1); NULL when out of memory. */
static int *offset_marks(size_t n)
{
    int *index = cdl_alloc_array(n, sizeof(int));
    for (size_t d = 0; index && d < n; d++)
        index[d] = -1;
    return index;
}

/* Number the marked offsets (index[d] >= 0) in increasing order, in place, and
 * allocate m with one zero diagonal per marked offset. */
static cdl_status matrix_alloc_marked(size_t n, int *index, boot_diag_matrix *m)
{
    int count = 0;
    for (size_t d = 0; d < n; d++)
        if (index[d] >= 0)
            index[d] = count++;
    CDL_TRY(matrix_alloc(n, count, m));
    for (size_t d = 0; d < n; d++)
        if (index[d] >= 0)
            m->offset[index[d]] = (int)d;
    return CDL_OK;
}

/* One butterfly stage of half-length h (forward, or its exact inverse) of the
 * special FFT of size n. The twiddles of stage h do not depend on the size
 * (tw = exp(2 pi i (5^j mod 8h) / 8h)), so the context's table serves any n. */
static cdl_status stage_matrix(const cdl_ckks_context *ctx, size_t n, size_t h, int inverse, boot_diag_matrix *m)
{
    const int wrap = (2 * h == n); /* offsets h and -h coincide */
    CDL_TRY(matrix_alloc(n, wrap ? 2 : 3, m));
    /* diagonal 0: offset 0; 1: offset h; 2: offset n - h (or, wrapped, 1 holds both) */
    m->offset[0] = 0;
    m->offset[1] = (int)h;
    if (!wrap)
        m->offset[2] = (int)(n - h);
    const int down = wrap ? 1 : 2;
    const double *twr = ctx->fft_tw_re + h - 1, *twi = ctx->fft_tw_im + h - 1;
    for (size_t p = 0; p < n; p++) {
        const size_t j = p % (2 * h);
        double *d0r = m->re, *d0i = m->im;
        double *dur = m->re + n, *dui = m->im + n;
        double *ddr = m->re + (size_t)down * n, *ddi = m->im + (size_t)down * n;
        if (j < h) {
            if (!inverse) { /* out = x + w y */
                d0r[p] = 1.0;
                dur[p] = twr[j];
                dui[p] = twi[j];
            } else { /* out = (x + y) / 2 */
                d0r[p] = 0.5;
                dur[p] = 0.5;
            }
        } else {
            const size_t jj = j - h;
            if (!inverse) { /* out = x - w y, x at p - h */
                d0r[p] = -twr[jj];
                d0i[p] = -twi[jj];
                ddr[p] = 1.0;
            } else { /* out = conj(w) (x - y) / 2 */
                d0r[p] = -0.5 * twr[jj];
                d0i[p] = 0.5 * twi[jj];
                ddr[p] = 0.5 * twr[jj];
                ddi[p] = -0.5 * twi[jj];
            }
        }
    }
    return CDL_OK;
}

/* c = a b (b applied first): c_(s+t)[p] += a_s[p] b_t[p + s]. */
static cdl_status matrix_mul(const boot_diag_matrix *a, const boot_diag_matrix *b, boot_diag_matrix *c)
{
    const size_t n = a->n;
    int *index = offset_marks(n);
    if (!index)
        return cdl_fail(CDL_ERR_NO_MEMORY, "bootstrapping: out of memory for a DFT matrix");
    for (int s = 0; s < a->count; s++)
        for (int t = 0; t < b->count; t++)
            index[((size_t)a->offset[s] + (size_t)b->offset[t]) % n] = 0;
    cdl_status st = matrix_alloc_marked(n, index, c);
    if (st != CDL_OK) {
        cdl_free(index);
        return st;
    }
    for (int s = 0; s < a->count; s++) {
        const size_t os = (size_t)a->offset[s];
        const double *ar = a->re + (size_t)s * n, *ai = a->im + (size_t)s * n;
        for (int t = 0; t < b->count; t++) {
            const int k = index[(os + (size_t)b->offset[t]) % n];
            const double *br = b->re + (size_t)t * n, *bi = b->im + (size_t)t * n;
            double *cr = c->re + (size_t)k * n, *ci = c->im + (size_t)k * n;
            for (size_t p = 0; p < n; p++) {
                const size_t q = (p + os) % n;
                cr[p] += ar[p] * br[q] - ai[p] * bi[q];
                ci[p] += ar[p] * bi[q] + ai[p] * br[q];
            }
        }
    }
    cdl_free(index);
    return CDL_OK;
}

cdl_status boot_dft_factors(const cdl_ckks_context *ctx, size_t n, int inverse, int groups, boot_diag_matrix *out)
{
    if (n < 2 || n > ctx->slots || (n & (n - 1)))
        return cdl_fail(CDL_ERR_PARAMETERS, "bootstrapping: %zu slots: a power of two in 2..%zu", n, ctx->slots);
    const int stages = __builtin_ctzll(n);
    if (groups < 1 || groups > stages)
        return cdl_fail(CDL_ERR_PARAMETERS, "bootstrapping: %d DFT levels asked; %d slots allow 1..%d", groups,
                        (int)n, stages);
    memset(out, 0, sizeof(*out) * (size_t)groups);
    int done = 0;
    for (int g = 0; g < groups; g++) {
        /* equal shares, the remainder to the last groups (lower levels, cheaper rotations) */
        int size = stages / groups + (g >= groups - stages % groups ? 1 : 0);
        for (int s = 0; s < size; s++, done++) {
            /* application order: forward h = 1, 2, ..., n/2; inverse h = n/2, ..., 1 */
            size_t h = inverse ? n >> (done + 1) : (size_t)1 << done;
            boot_diag_matrix st_m, prod;
            cdl_status st = stage_matrix(ctx, n, h, inverse, &st_m);
            if (st == CDL_OK && s == 0) {
                out[g] = st_m;
                continue;
            }
            if (st == CDL_OK) {
                st = matrix_mul(&st_m, &out[g], &prod);
                boot_diag_matrix_free(&st_m);
            }
            if (st != CDL_OK) {
                for (int k = 0; k <= g; k++)
                    boot_diag_matrix_free(&out[k]);
                return st;
            }
            boot_diag_matrix_free(&out[g]);
            out[g] = prod;
        }
    }
    return CDL_OK;
}

void boot_diag_matrix_apply(const boot_diag_matrix *m, const double *xr, const double *xi, double *yr, double *yi)
{
    const size_t n = m->n;
    for (size_t p = 0; p < n; p++) {
        double sr = 0, si = 0;
        for (int t = 0; t < m->count; t++) {
            const size_t q = (p + (size_t)m->offset[t]) % n;
            const double dr = m->re[(size_t)t * n + p], di = m->im[(size_t)t * n + p];
            sr += dr * xr[q] - di * xi[q];
            si += dr * xi[q] + di * xr[q];
        }
        yr[p] = sr;
        yi[p] = si;
    }
}

cdl_status boot_diag_matrix_lift2(const boot_diag_matrix *m, const double block_re[4], const double block_im[4],
                                  boot_diag_matrix *out)
{
    const size_t n = m->n, n2 = 2 * n;
    int *index = offset_marks(n2);
    if (!index)
        return cdl_fail(CDL_ERR_NO_MEMORY, "bootstrapping: out of memory for a DFT matrix");
    /* entry (p, q) of block (r, c) sits at row r n + p, column c n + q: offset (c - r) n + q - p mod 2n */
    for (int t = 0; t < m->count; t++)
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < 2; c++)
                if (block_re[2 * r + c] != 0 || block_im[2 * r + c] != 0)
                    for (size_t p = 0; p < n; p++) {
                        const size_t row = (size_t)r * n + p, col = (size_t)c * n + (p + (size_t)m->offset[t]) % n;
                        index[(col + n2 - row) % n2] = 0;
                    }
    cdl_status st = matrix_alloc_marked(n2, index, out);
    if (st != CDL_OK) {
        cdl_free(index);
        return st;
    }
    for (int t = 0; t < m->count; t++)
        for (int r = 0; r < 2; r++)
            for (int c = 0; c < 2; c++) {
                const double br = block_re[2 * r + c], bi = block_im[2 * r + c];
                if (br == 0 && bi == 0)
                    continue;
                for (size_t p = 0; p < n; p++) {
                    const size_t row = (size_t)r * n + p, col = (size_t)c * n + (p + (size_t)m->offset[t]) % n;
                    const size_t k = (size_t)index[(col + n2 - row) % n2];
                    const double vr = m->re[(size_t)t * n + p], vi = m->im[(size_t)t * n + p];
                    out->re[k * n2 + row] += br * vr - bi * vi;
                    out->im[k * n2 + row] += br * vi + bi * vr;
                }
            }
    cdl_free(index);
    return CDL_OK;
}
