/*
 * evalmod.c: the modular reduction of CKKS bootstrapping. After ModRaise and
 * CoeffToSlot a slot holds x = m / q0 + I, I an integer with |I| <= K; we
 * want m / q0, i.e. x mod 1 near 0, and sin(2 pi x) / (2 pi) = m / q0 up to
 * (2 pi m / q0)^3 / 6 (Cheon, Han, Kim, Kim, Song, EUROCRYPT 2018).
 *
 * sin(2 pi x) = cos(2 pi (x - 1/4)). A polynomial of low degree cannot follow
 * that cosine over 2K periods, so we interpolate cos(2 pi (x - 1/4) / 2^r)
 * (K / 2^r periods) at the Chebyshev nodes of [-(K + 1/2), K + 1/2] and apply
 * r double-angle steps c -> 2 c^2 - 1 (Han and Ki, CT-RSA 2020). Each step
 * multiplies the interpolation error by at most 4; measured with K = 12, degree
 * 31 and r = 3: 2^-38.8 near the integers.
 */
#include <math.h>
#include <string.h>

#include "approx/approx_internal.h"
#include "approx/poly_eval_internal.h"
#include "boot/boot_internal.h"
#include "core/error.h"

typedef struct cos_target {
    long double period_scale; /* 2 pi / 2^r */
} cos_target;

static long double shifted_cos(long double x, const void *p)
{
    const cos_target *c = p;
    return cosl(c->period_scale * (x - 0.25L));
}

int boot_evalmod_depth(const boot_evalmod *em) { return cdl_pe_ceil_log2(em->degree + 1) + em->double_angle; }

cdl_status boot_evalmod_plan(int k_bound, int degree, int double_angle, boot_evalmod *em)
{
    memset(em, 0, sizeof(*em));
    if (k_bound < 1 || k_bound > 1024)
        return cdl_fail(CDL_ERR_PARAMETERS, "bootstrapping: K = %d must be in 1..1024", k_bound);
    if (degree < 3 || degree > CDL_APPROX_MAX_DEGREE)
        return cdl_fail(CDL_ERR_PARAMETERS, "bootstrapping: cosine degree %d must be in 3..%d", degree,
                        CDL_APPROX_MAX_DEGREE);
    if (double_angle < 0 || double_angle > 6)
        return cdl_fail(CDL_ERR_PARAMETERS, "bootstrapping: %d double-angle steps; 0..6 are allowed", double_angle);
    cos_target ct = {2.0L * 3.14159265358979323846264338327950288L / (long double)(1 << double_angle)};
    cdl_approx_target t = {0};
    t.f = shifted_cos;
    t.ctx = &ct;
    long double c[CDL_APPROX_MAX_DEGREE + 1];
    const long double bound = (long double)k_bound + 0.5L;
    CDL_TRY(cdl_fit_cheb_interp(&t, degree, -bound, bound, c));
    em->degree = degree;
    em->double_angle = double_angle;
    em->bound = (double)bound;
    for (int i = 0; i <= degree; i++)
        em->cheb[i] = (double)c[i];
    em->max_error = (double)cdl_approx_max_error(&t, c, degree, -bound, bound);
    return CDL_OK;
}

cdl_status boot_evalmod_apply(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk, const boot_evalmod *em,
                              const cdl_ckks_ciphertext *in, cdl_ckks_ciphertext *out)
{
    const int poly_depth = cdl_pe_ceil_log2(em->degree + 1);
    if (in->level < boot_evalmod_depth(em))
        return cdl_fail(CDL_ERR_EXHAUSTED, "bootstrapping: EvalMod needs %d levels, the input has %d",
                        boot_evalmod_depth(em), in->level);
    /* The cosine comes out at the scale of the prime the first squaring divides by,
     * so that every double-angle step keeps the scale near the primes. */
    const int level = in->level - poly_depth;
    const double out_scale = em->double_angle ? (double)ctx->primes[level] : cdl_ckks_ciphertext_scale(in);
    CDL_TRY(cdl_ckks_eval_poly_chebyshev(ctx, rlk, in, em->cheb, em->degree, 1.0 / em->bound, 0.0, out_scale, out,
                                         NULL));
    for (int r = 0; r < em->double_angle; r++) {
        CDL_TRY(cdl_ckks_mul_relin(ctx, rlk, out, out, out));
        CDL_TRY(cdl_ckks_rescale(ctx, out, out));
        CDL_TRY(cdl_ckks_mul_int(ctx, out, 2, out));
        CDL_TRY(cdl_ckks_add_const(ctx, out, -1.0, out));
    }
    return CDL_OK;
}
