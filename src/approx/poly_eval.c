/*
 * poly_eval.c: evaluate a polynomial activation on a CKKS ciphertext at the
 * minimal depth ceil(log2(d+1)), following the schedule of poly_eval_plan.c
 * (computed first, so the levels it will consume are known before anything
 * runs), using only the public CKKS API (include/cryptodl/ckks.h).
 *
 * Variable and basis. The polynomial is evaluated in the normalised variable
 * t = alpha x + beta (t in [-1, 1] on the approximation interval), either in
 * the power basis t^i or in the Chebyshev basis T_i(t) (the default for
 * approximations: |T_i| <= 1 and the coefficients stay O(max|f|), while power
 * coefficients grow and cancel at high degree). t costs no level: a
 * ciphertext of x at scale D is also a ciphertext of alpha x at scale D/alpha
 * (we only relabel the scale), and beta is added as a constant.
 * Chebyshev polynomials come from T_2k = 2 T_k^2 - 1 and
 * T_(a+b) = 2 T_a T_b - T_(a-b), where T_(a-b) (at a higher level) is brought
 * to the product's scale by a multiplication by 1 encoded at the ratio of the
 * scales, before the common rescale: no extra level.
 *
 * Scales. Every node is asked for an exact (level, scale) and delivers it
 * (the scale-invariant evaluation of Bossuat et al. 2021, section 5; Lattigo's
 * polynomial evaluator does the same): a product q(x) * x^m that must come
 * out at (l, S) asks q for scale S * q_(l+1) / scale(x^m) at level l+1, so
 * that the product has scale S * q_(l+1) and the rescale by q_(l+1) lands on
 * S; a constant c_i multiplying x^i is encoded at S * q_(l+1) / scale(x^i)
 * for the same reason. The bookkeeping in doubles drifts by an ulp, which is
 * written back with cdl_ckks_ciphertext_set_scale (relative error ~1e-16).
 */
#include <math.h>
#include <string.h>

#include "approx/approx_internal.h"
#include "approx/poly_eval_internal.h"
#include "core/error.h"
#include "core/memory.h"

typedef struct pe_run {
    const cdl_ckks_context *ctx;
    const cdl_ckks_relin_key *rlk;
 const cdl_pe_schedule *s;
    int top;                                   /* level of t */
    cdl_ckks_ciphertext *pw[CDL_PE_MAX_POWER + 1];
    cdl_poly_eval_stats *st;
} pe_run;

static cdl_status new_ct(pe_run *r, cdl_ckks_ciphertext **out) { return cdl_ckks_ciphertext_new(r->ctx, out); }

/* out = c * pw[i] brought to (level + 1), encoded so that out has scale target * q_(level+1); not rescaled. */
static cdl_status const_term(pe_run *r, int i, double c, int level, double target, cdl_ckks_ciphertext *out)
{
    cdl_ckks_ciphertext *tmp = NULL;
    cdl_status st;
    CDL_TRY(new_ct(r, &tmp));
    CDL_TRY_GOTO(st, cdl_ckks_drop_to_level(r->ctx, r->pw[i], level + 1, tmp), done);
    double q = (double)cdl_ckks_prime(r->ctx, level + 1);
    double want = target * q;
    CDL_TRY_GOTO(st, cdl_ckks_mul_const(r->ctx, tmp, c, want / cdl_ckks_ciphertext_scale(tmp), out), done);
    cdl_ckks_ciphertext_set_scale(out, want);
    r->st->const_mults++;
done:
    cdl_ckks_ciphertext_free(tmp);
    return st;
}

static cdl_status rescale_to(pe_run *r, const cdl_ckks_ciphertext *a, double target, cdl_ckks_ciphertext *out)
{
    CDL_TRY(cdl_ckks_rescale(r->ctx, a, out));
    r->st->rescales++;
    double got = cdl_ckks_ciphertext_scale(out);
    if (fabs(got - target) > 1e-9 * target)
        return cdl_fail(CDL_ERR_INTERNAL, "polynomial evaluation: scale bookkeeping drifted (2^%.6f vs 2^%.6f)",
                        log2(got), log2(target));
    cdl_ckks_ciphertext_set_scale(out, target);
    return CDL_OK;
}

/* Produce node `id` at (level, target scale). *out is NULL for a constant node. */
static cdl_status run_node(pe_run *r, int id, int level, double target, cdl_ckks_ciphertext **out)
{
    const cdl_pe_node *nd = &r->s->nodes[id];
    const double *c = nd->c;
    cdl_ckks_ciphertext *acc = NULL, *term = NULL, *tmp = NULL, *res = NULL;
    cdl_status st = CDL_OK;
    *out = NULL;
    if (nd->kind == CDL_PE_CONST)
        return CDL_OK;
    if (level != r->top - nd->budget)
        return cdl_fail(CDL_ERR_INTERNAL, "polynomial evaluation: node %d at level %d, budget says %d", id, level,
                        r->top - nd->budget);
    CDL_TRY_GOTO(st, new_ct(r, &term), done);
    CDL_TRY_GOTO(st, new_ct(r, &tmp), done);
    CDL_TRY_GOTO(st, new_ct(r, &res), done);
    if (nd->kind == CDL_PE_LEAF) {
        for (int i = 1; i <= nd->n; i++) {
            if (c[i] == 0.0)
                continue;
            CDL_TRY_GOTO(st, const_term(r, i, c[i], level, target, term), done);
            if (!acc) {
                CDL_TRY_GOTO(st, new_ct(r, &acc), done);
                CDL_TRY_GOTO(st, cdl_ckks_ciphertext_copy(r->ctx, term, acc), done);
            } else {
                CDL_TRY_GOTO(st, cdl_ckks_add(r->ctx, acc, term, tmp), done);
                CDL_TRY_GOTO(st, cdl_ckks_ciphertext_copy(r->ctx, tmp, acc), done);
            }
        }
        CDL_TRY_GOTO(st, rescale_to(r, acc, target, res), done);
        if (c[0] != 0.0) {
            CDL_TRY_GOTO(st, cdl_ckks_add_const(r->ctx, res, c[0], tmp), done);
            CDL_TRY_GOTO(st, cdl_ckks_ciphertext_copy(r->ctx, tmp, res), done);
        }
    } else {
        int m = nd->m;
        double q = (double)cdl_ckks_prime(r->ctx, level + 1);
        if (nd->q >= 0) {
            cdl_ckks_ciphertext *qct = NULL;
            CDL_TRY_GOTO(st, cdl_ckks_drop_to_level(r->ctx, r->pw[m], level + 1, term), done);
            double qs = target * q / cdl_ckks_ciphertext_scale(term);
            CDL_TRY_GOTO(st, run_node(r, nd->q, level + 1, qs, &qct), done);
            if (!qct) {
                st = cdl_fail(CDL_ERR_INTERNAL, "polynomial evaluation: constant quotient node");
                goto done;
            }
            st = cdl_ckks_mul_relin(r->ctx, r->rlk, qct, term, tmp);
            cdl_ckks_ciphertext_free(qct);
            if (st != CDL_OK)
                goto done;
            r->st->ct_mults++;
            cdl_ckks_ciphertext_set_scale(tmp, target * q);
        } else {
            CDL_TRY_GOTO(st, const_term(r, m, nd->qconst, level, target, tmp), done);
        }
        CDL_TRY_GOTO(st, rescale_to(r, tmp, target, res), done);
        cdl_ckks_ciphertext *rct = NULL;
        CDL_TRY_GOTO(st, run_node(r, nd->r, level, target, &rct), done);
        if (rct) {
            st = cdl_ckks_add(r->ctx, res, rct, tmp);
            cdl_ckks_ciphertext_free(rct);
            if (st != CDL_OK)
                goto done;
            CDL_TRY_GOTO(st, cdl_ckks_ciphertext_copy(r->ctx, tmp, res), done);
        } else if (r->s->nodes[nd->r].c[0] != 0.0) {
            CDL_TRY_GOTO(st, cdl_ckks_add_const(r->ctx, res, r->s->nodes[nd->r].c[0], tmp), done);
            CDL_TRY_GOTO(st, cdl_ckks_ciphertext_copy(r->ctx, tmp, res), done);
        }
    }
    *out = res;
    res = NULL;
done:
    cdl_ckks_ciphertext_free(acc);
    cdl_ckks_ciphertext_free(term);
    cdl_ckks_ciphertext_free(tmp);
    cdl_ckks_ciphertext_free(res);
    return st;
}

/* B_i for every i the schedule uses, in increasing i (factors come first). */
static cdl_status build_powers(pe_run *r)
{
    cdl_ckks_ciphertext *a = NULL, *b = NULL, *prod = NULL, *sub = NULL;
    cdl_status st = CDL_OK;
    CDL_TRY_GOTO(st, new_ct(r, &a), done);
    CDL_TRY_GOTO(st, new_ct(r, &b), done);
    CDL_TRY_GOTO(st, new_ct(r, &prod), done);
    CDL_TRY_GOTO(st, new_ct(r, &sub), done);
    for (int i = 2; i <= CDL_PE_MAX_POWER; i++) {
        if (!r->s->used[i])
            continue;
        int fa, fb;
        cdl_pe_factors(i, &fa, &fb);
        int cheb = r->s->chebyshev;
        if (!r->pw[fa] || !r->pw[fb] || (cheb && fa != fb && !r->pw[fa - fb])) {
            st = cdl_fail(CDL_ERR_INTERNAL, "polynomial evaluation: B_%d built before its factors", i);
            goto done;
        }
        int la = cdl_ckks_ciphertext_level(r->pw[fa]), lb = cdl_ckks_ciphertext_level(r->pw[fb]);
        int l = la < lb ? la : lb;
        CDL_TRY_GOTO(st, cdl_ckks_drop_to_level(r->ctx, r->pw[fa], l, a), done);
        CDL_TRY_GOTO(st, cdl_ckks_drop_to_level(r->ctx, r->pw[fb], l, b), done);
        CDL_TRY_GOTO(st, cdl_ckks_mul_relin(r->ctx, r->rlk, a, b, prod), done);
        r->st->ct_mults++;
        if (cheb) {
            /* 2 T_a T_b, minus T_(a-b) at the product's scale (a != b) */
            CDL_TRY_GOTO(st, cdl_ckks_mul_int(r->ctx, prod, 2, prod), done);
            if (fa != fb) {
                double ps = cdl_ckks_ciphertext_scale(prod);
                CDL_TRY_GOTO(st, cdl_ckks_drop_to_level(r->ctx, r->pw[fa - fb], l, a), done);
                CDL_TRY_GOTO(st,
                             cdl_ckks_mul_const(r->ctx, a, 1.0, ps / cdl_ckks_ciphertext_scale(a), sub), done);
                r->st->const_mults++;
                cdl_ckks_ciphertext_set_scale(sub, ps);
                CDL_TRY_GOTO(st, cdl_ckks_sub(r->ctx, prod, sub, prod), done);
            }
        }
        CDL_TRY_GOTO(st, new_ct(r, &r->pw[i]), done);
        CDL_TRY_GOTO(st, cdl_ckks_rescale(r->ctx, prod, r->pw[i]), done);
        r->st->rescales++;
        if (cheb && fa == fb) /* T_2k = 2 T_k^2 - 1 */
            CDL_TRY_GOTO(st, cdl_ckks_add_const(r->ctx, r->pw[i], -1.0, r->pw[i]), done);
    }
done:
    cdl_ckks_ciphertext_free(a);
    cdl_ckks_ciphertext_free(b);
    cdl_ckks_ciphertext_free(prod);
    cdl_ckks_ciphertext_free(sub);
    return st;
}

static cdl_status eval_sched(cdl_pe_schedule *sched, const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                             const cdl_ckks_ciphertext *in, const double *coeffs, int degree, int chebyshev,
                             double alpha, double beta, double out_scale, cdl_ckks_ciphertext *out,
                             cdl_poly_eval_stats *stats)
{
    if (!ctx || !rlk || !in || !coeffs || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_eval_poly: NULL argument");
    if (degree < 1 || degree > CDL_APPROX_MAX_DEGREE)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_eval_poly: degree %d outside 1..%d", degree,
                        CDL_APPROX_MAX_DEGREE);
    if (!(alpha > 0) || !isfinite(alpha) || !isfinite(beta))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_ckks_eval_poly: alpha must be positive and finite (t = alpha x + beta), got %g", alpha);
    for (int i = 0; i <= degree; i++)
        if (!isfinite(coeffs[i]))
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_eval_poly: coefficient %d is not finite", i);
    cdl_poly_eval_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);

    CDL_TRY(cdl_pe_schedule_best(coeffs, degree, chebyshev, sched));
    if (sched->degree < 1)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "cdl_ckks_eval_poly: the polynomial is a constant (%g); no encrypted evaluation needed",
                        coeffs[0]);
    int level = cdl_ckks_ciphertext_level(in);
    stats->level_in = level;
    stats->planned_depth = sched->depth;
    stats->planned_ct_mults = sched->ct_mults;
    if (level < sched->depth)
        return cdl_fail(CDL_ERR_EXHAUSTED,
                        "cdl_ckks_eval_poly: degree %d needs %d levels, the ciphertext has %d left; use parameters "
                        "with more primes or a lower degree",
                        sched->degree, sched->depth, level);
    if (cdl_ckks_ciphertext_size(in) != 2)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_eval_poly: relinearize the input first");
    if (!(out_scale > 0))
        out_scale = cdl_ckks_ciphertext_scale(in);
    {
        /* t's scale against the first prime it will be divided by: the powers
         * x^(2^k) carry (scale(t)/q)^(2^k) on top of q, so a large ratio either
         * overflows the modulus or wastes precision. */
        double ratio = cdl_ckks_ciphertext_scale(in) / alpha / (double)cdl_ckks_prime(ctx, level);
        double growth = pow(ratio, (double)sched->top_pow2);
        if (sched->top_pow2 >= 2 && (growth > 1024.0 || growth < 1.0 / 1024.0))
            return cdl_fail(CDL_ERR_PARAMETERS,
                            "cdl_ckks_eval_poly: the input scale 2^%.2f with alpha = %g gives t the scale 2^%.2f, "
                            "far from the prime 2^%.2f it is rescaled by (the powers of t would drift by a factor "
                            "%.3g); encrypt x at scale alpha * 2^%.0f, or fold alpha into the previous layer",
                            log2(cdl_ckks_ciphertext_scale(in)), alpha, log2(cdl_ckks_ciphertext_scale(in) / alpha),
                            log2((double)cdl_ckks_prime(ctx, level)), growth,
                            log2((double)cdl_ckks_prime(ctx, level)));
    }

    pe_run r;
    memset(&r, 0, sizeof r);
    r.ctx = ctx;
    r.rlk = rlk;
    r.s = sched;
    r.top = level;
    r.st = stats;
    cdl_status st;
    cdl_ckks_ciphertext *res = NULL, *t = NULL;
    /* t = alpha x + beta: relabel the scale, add beta */
    CDL_TRY_GOTO(st, new_ct(&r, &t), done);
    CDL_TRY_GOTO(st, cdl_ckks_ciphertext_copy(ctx, in, t), done);
    cdl_ckks_ciphertext_set_scale(t, cdl_ckks_ciphertext_scale(in) / alpha);
    CDL_TRY_GOTO(st, new_ct(&r, &r.pw[1]), done);
    if (beta != 0.0) {
        CDL_TRY_GOTO(st, cdl_ckks_add_const(ctx, t, beta, r.pw[1]), done);
    } else {
        CDL_TRY_GOTO(st, cdl_ckks_ciphertext_copy(ctx, t, r.pw[1]), done);
    }
    CDL_TRY_GOTO(st, build_powers(&r), done);
    CDL_TRY_GOTO(st, run_node(&r, sched->root, level - sched->depth, out_scale, &res), done);
    if (!res) {
        st = cdl_fail(CDL_ERR_INTERNAL, "cdl_ckks_eval_poly: the root produced no ciphertext");
        goto done;
    }
    CDL_TRY_GOTO(st, cdl_ckks_ciphertext_copy(ctx, res, out), done);
    stats->level_out = cdl_ckks_ciphertext_level(out);
    stats->depth = stats->level_in - stats->level_out;
done:
    cdl_ckks_ciphertext_free(t);
    cdl_ckks_ciphertext_free(res);
    for (int i = 1; i <= CDL_PE_MAX_POWER; i++)
        cdl_ckks_ciphertext_free(r.pw[i]);
    return st;
}

static cdl_status eval_in(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk, const cdl_ckks_ciphertext *in,
                          const double *coeffs, int degree, int chebyshev, double alpha, double beta,
                          double out_scale, cdl_ckks_ciphertext *out, cdl_poly_eval_stats *stats)
{
    cdl_pe_schedule *sched = cdl_alloc_array(1, sizeof *sched);
    if (!sched)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = eval_sched(sched, ctx, rlk, in, coeffs, degree, chebyshev, alpha, beta, out_scale, out, stats);
    cdl_free(sched);
    return st;
}

cdl_status cdl_ckks_eval_poly(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                              const cdl_ckks_ciphertext *in, const double *coeffs, int degree, double alpha,
                              double beta, double out_scale, cdl_ckks_ciphertext *out, cdl_poly_eval_stats *stats)
{
    return eval_in(ctx, rlk, in, coeffs, degree, 0, alpha, beta, out_scale, out, stats);
}

cdl_status cdl_ckks_eval_poly_chebyshev(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                        const cdl_ckks_ciphertext *in, const double *cheb, int degree, double alpha,
                                        double beta, double out_scale, cdl_ckks_ciphertext *out,
                                        cdl_poly_eval_stats *stats)
{
    return eval_in(ctx, rlk, in, cheb, degree, 1, alpha, beta, out_scale, out, stats);
}

cdl_status cdl_ckks_eval_poly_approx(const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                     const cdl_ckks_ciphertext *in, const cdl_poly_approx *p, double out_scale,
                                     cdl_ckks_ciphertext *out, cdl_poly_eval_stats *stats)
{
    if (!p || p->degree < 1 || p->degree > CDL_APPROX_MAX_DEGREE || !(p->a < p->b))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_ckks_eval_poly_approx: invalid polynomial description");
    double alpha = 2.0 / (p->b - p->a), beta = -(p->a + p->b) / (p->b - p->a);
    return eval_in(ctx, rlk, in, p->chebyshev, p->degree, 1, alpha, beta, out_scale, out, stats);
}
