/*
 * he_eval.c: the server side of batch-SIMD inference: run a compiled plan on
 * an encrypted batch. Needs only the relinearization key.
 *
 * Each layer's output values are independent, so a layer is an OpenMP loop
 * over its output neurons; each neuron is computed by the same sequence of
 * CKKS operations whatever thread runs it, so the ciphertexts (and hence the
 * decrypted logits) are identical for any thread count. Work is done in
 * chunks of neurons so that progress can be reported between chunks.
 *
 * Linear layer, one output neuron (CryptoNets' weighted sum): every term
 * w * x is cdl_ckks_mul_const with w encoded at scale c = S q_l / s_in, the
 * terms are added, one rescale divides by q_l, and the result has scale
 * s_in c / q_l = S exactly; the bias is then added at scale S. A value of a
 * tensor may be NULL: an exact zero (zero padding), skipped like a zero weight.
 *
 * Two inputs (ADD: a residual shortcut x + f(x), a difference; MUL: a
 * product of two computed tensors): the plan (count_levels in he_plan.c)
 * says which input is aligned to the other: multiplied by the constant 1 (or
 * alpha) encoded at scale T q_l / s, T the other input's scale, and rescaled,
 * so that both have the same level and exactly the same scale before they
 * are added; an input above that level only loses primes (a drop keeps the
 * scale). A product needs equal levels only: drop, multiply, relinearize,
 * rescale. These ops never work in place: their inputs are often read again
 * (the shortcut x is read by f and by the addition).
 *
 * Memory: a value's ciphertexts are freed as soon as the last op reading it is
 * done, element-wise ops (activations, moves) work in place on a value
 * nobody reads later, and every result is shrunk to the limbs of its level
 * (a ciphertext at level l holds l + 1 primes, not all of them), which takes
 * about a quarter off the peak of a 7-level network.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "compile/he_plan.h"
#include "core/error.h"
#include "core/memory.h"
#include "cryptodl/approx.h"
#include "runtime/he_runtime.h"

typedef struct he_tensor {
    size_t n;
    cdl_ckks_ciphertext **ct;
    int borrowed; /* the caller's input batch: never freed or modified */
} he_tensor;

static void tensor_release(he_tensor *t)
{
    if (!t->borrowed && t->ct) {
        for (size_t i = 0; i < t->n; i++)
            cdl_ckks_ciphertext_free(t->ct[i]);
        cdl_free(t->ct);
    }
    t->ct = NULL;
    t->n = 0;
}

static int reference_linear;
void cdl_he_set_reference_linear(int on) { reference_linear = on; }

typedef struct eval_env {
    const cdl_he_plan *plan;
    const cdl_ckks_context *ctx;
    const cdl_ckks_relin_key *rlk;
    const he_op *op;
    he_tensor *in, *out;
    he_tensor *in2;    /* ADD, MUL: the second input */
    int consume;       /* the op may take the input's ciphertexts */
    double const_scale; /* LINEAR: scale of the encoded weights */
    size_t any_input;  /* LINEAR: index of a non-zero input value */
    double s_in;       /* LINEAR: scale of the inputs */
    int level;         /* LINEAR: level of the inputs; ADD / MUL: level the inputs are combined at */
    double target_scale; /* ADD: scale both inputs have when added */
} eval_env;

typedef cdl_status (*item_fn)(const eval_env *e, size_t o, cdl_ckks_ciphertext *tmp);

/* Take or copy input value i. */
static cdl_status take_input(const eval_env *e, size_t i, cdl_ckks_ciphertext **y)
{
    if (e->consume) {
        *y = e->in->ct[i];
        e->in->ct[i] = NULL;
        return CDL_OK;
    }
    CDL_TRY(cdl_ckks_ciphertext_new(e->ctx, y));
    CDL_TRY(cdl_ckks_ciphertext_copy(e->ctx, e->in->ct[i], *y));
    return cdl_ckks_ciphertext_shrink(*y);
}

static cdl_status item_linear(const eval_env *e, size_t o, cdl_ckks_ciphertext *tmp)
{
    const he_op *op = e->op;
    cdl_ckks_ciphertext *acc = NULL;
    CDL_TRY(cdl_ckks_ciphertext_new(e->ctx, &acc));
    e->out->ct[o] = acc;
    int first = 1;
    for (size_t k = op->row[o]; k < op->row[o + 1]; k++) {
        const cdl_ckks_ciphertext *x = e->in->ct[op->col[k]];
        if (!x)
            continue;
        if (first) {
            CDL_TRY(cdl_ckks_mul_const(e->ctx, x, op->w[k], e->const_scale, acc));
            first = 0;
        } else {
            CDL_TRY(cdl_ckks_mul_const(e->ctx, x, op->w[k], e->const_scale, tmp));
            CDL_TRY(cdl_ckks_add(e->ctx, acc, tmp, acc));
        }
    }
    if (first) /* no term: an encryption of 0 at the right level and scale, then the bias */
        CDL_TRY(cdl_ckks_mul_const(e->ctx, e->in->ct[e->any_input], 0.0, e->const_scale, acc));
    CDL_TRY(cdl_ckks_rescale(e->ctx, acc, acc));
    cdl_ckks_ciphertext_set_scale(acc, e->plan->scale); /* equal up to rounding of the double product */
    if (op->bias && op->bias[o] != 0.0)
        CDL_TRY(cdl_ckks_add_const(e->ctx, acc, op->bias[o], acc));
    return cdl_ckks_ciphertext_shrink(acc); /* keep only the limbs of its level (see the memory note above) */
}

/* Fused kernel: group g of neurons (he_linear.c), then per neuron the rescale and the bias. */
static cdl_status item_linear_group(const eval_env *e, size_t g, cdl_ckks_ciphertext *tmp)
{
    (void)tmp;
    const he_op *op = e->op;
    cdl_ckks_ciphertext *rows[16];
    const size_t r0 = op->grp_row[g], nr = op->grp_row[g + 1] - r0;
    CDL_TRY(cdl_he_linear_group(e->ctx, op, g, e->in->ct, e->s_in, e->const_scale, e->level, rows));
    for (size_t r = 0; r < nr; r++)
        e->out->ct[op->order[r0 + r]] = rows[r]; /* owned by the output tensor from here on */
    for (size_t r = 0; r < nr; r++) {
        const size_t o = op->order[r0 + r];
        cdl_ckks_ciphertext *acc = rows[r];
        CDL_TRY(cdl_ckks_rescale(e->ctx, acc, acc));
        cdl_ckks_ciphertext_set_scale(acc, e->plan->scale);
        if (op->bias && op->bias[o] != 0.0)
            CDL_TRY(cdl_ckks_add_const(e->ctx, acc, op->bias[o], acc));
        CDL_TRY(cdl_ckks_ciphertext_shrink(acc));
    }
    return CDL_OK;
}

static cdl_status item_gather(const eval_env *e, size_t o, cdl_ckks_ciphertext *tmp)
{
    (void)tmp;
    int64_t s = e->op->src[o];
    if (s < 0 || !e->in->ct[s]) {
        e->out->ct[o] = NULL;
        return CDL_OK;
    }
    return take_input(e, (size_t)s, &e->out->ct[o]);
}

static cdl_status item_sign(const eval_env *e, size_t o, cdl_ckks_ciphertext *tmp)
{
    (void)tmp;
    if (!e->in->ct[o])
        return cdl_fail(CDL_ERR_UNSUPPORTED, "node '%s': an affine map of an exact zero (padding) is a constant; "
                        "this runtime keeps only encrypted values", e->op->name);
    cdl_ckks_ciphertext *y;
    CDL_TRY(take_input(e, o, &y));
    e->out->ct[o] = y;
    if (e->op->sign[o] < 0)
        CDL_TRY(cdl_ckks_negate(e->ctx, y, y));
    if (e->op->bias[o] != 0.0)
        CDL_TRY(cdl_ckks_add_const(e->ctx, y, e->op->bias[o], y));
    return CDL_OK;
}

static cdl_status item_square(const eval_env *e, size_t o, cdl_ckks_ciphertext *tmp)
{
    const he_op *op = e->op;
    if (!e->in->ct[o]) {
        if (op->kind == HE_OP_POW2K && op->pow_c0 != 0.0)
            return cdl_fail(CDL_ERR_UNSUPPORTED, "node '%s': the activation of an exact zero (padding) is the "
                            "constant %g; pad after the activation instead", op->name, op->pow_c0);
        e->out->ct[o] = NULL;
        return CDL_OK;
    }
    cdl_ckks_ciphertext *y;
    CDL_TRY(take_input(e, o, &y));
    e->out->ct[o] = y;
    int k = op->kind == HE_OP_SQUARE ? 1 : op->k;
    for (int r = 0; r < k; r++) {
        /* the size-3 product lives in the thread's scratch ciphertext, so y keeps room for 2 polynomials only */
        CDL_TRY(cdl_ckks_square(e->ctx, y, tmp));
        CDL_TRY(cdl_ckks_relinearize(e->ctx, e->rlk, tmp, y));
        CDL_TRY(cdl_ckks_rescale(e->ctx, y, y));
    }
    if (op->kind == HE_OP_POW2K) {
        /* a * t: read the ciphertext of t at scale s as one of |a| t at scale s / |a| (no level) */
        double a = op->pow_sign;
        if (fabs(a) != 1.0)
            cdl_ckks_ciphertext_set_scale(y, cdl_ckks_ciphertext_scale(y) / fabs(a));
        if (a < 0)
            CDL_TRY(cdl_ckks_negate(e->ctx, y, y));
        if (op->pow_c0 != 0.0)
            CDL_TRY(cdl_ckks_add_const(e->ctx, y, op->pow_c0, y));
    }
    return cdl_ckks_ciphertext_shrink(y);
}

static cdl_status item_poly(const eval_env *e, size_t o, cdl_ckks_ciphertext *tmp)
{
    (void)tmp;
    const he_op *op = e->op;
    const cdl_ckks_ciphertext *x = e->in->ct[o];
    if (!x)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "node '%s': the activation of an exact zero (padding) is a constant; "
                        "pad after the activation instead", op->name);
    cdl_ckks_ciphertext *y = NULL;
    CDL_TRY(cdl_ckks_ciphertext_new(e->ctx, &y));
    e->out->ct[o] = y;
    CDL_TRY(cdl_ckks_eval_poly(e->ctx, e->rlk, x, op->coeffs, op->degree, 1.0, 0.0, e->plan->scale, y, NULL));
    CDL_TRY(cdl_ckks_ciphertext_shrink(y));
    if (e->consume) {
        cdl_ckks_ciphertext_free(e->in->ct[o]);
        e->in->ct[o] = NULL;
    }
    return CDL_OK;
}

/* y = c x at level e->level and scale exactly e->target_scale. adjust: one
 * constant multiplication at scale T q_l / s_x and a rescale (one level of
 * x's), then primes dropped; else x only loses primes and its scale is read
 * as that of c x (s_x / |c|, c = +-1 or ADD's alpha: the plan chose T so). */
static cdl_status bring(const eval_env *e, const cdl_ckks_ciphertext *x, int adjust, double c, cdl_ckks_ciphertext *y)
{
    const double T = e->target_scale;
    if (adjust) {
        const int l = cdl_ckks_ciphertext_level(x);
        CDL_TRY(cdl_ckks_mul_const(e->ctx, x, c, T * (double)cdl_ckks_prime(e->ctx, l) / cdl_ckks_ciphertext_scale(x),
                                   y));
        CDL_TRY(cdl_ckks_rescale(e->ctx, y, y));
        cdl_ckks_ciphertext_set_scale(y, T); /* equal up to rounding of the double product */
        if (cdl_ckks_ciphertext_level(y) > e->level)
            CDL_TRY(cdl_ckks_drop_to_level(e->ctx, y, e->level, y));
        return CDL_OK;
    }
    CDL_TRY(cdl_ckks_drop_to_level(e->ctx, x, e->level, y)); /* a copy when x is at that level already */
    if (fabs(c) != 1.0)
        cdl_ckks_ciphertext_set_scale(y, cdl_ckks_ciphertext_scale(x) / fabs(c));
    if (c < 0)
        CDL_TRY(cdl_ckks_negate(e->ctx, y, y));
    return CDL_OK;
}

/* out = a + alpha b; an exact zero (NULL) input contributes nothing. */
static cdl_status item_add(const eval_env *e, size_t o, cdl_ckks_ciphertext *tmp)
{
    const he_op *op = e->op;
    const cdl_ckks_ciphertext *a = e->in->ct[o], *b = e->in2->ct[o];
    if (!a && !b) {
        e->out->ct[o] = NULL;
        return CDL_OK;
    }
    cdl_ckks_ciphertext *y = NULL;
    CDL_TRY(cdl_ckks_ciphertext_new(e->ctx, &y));
    e->out->ct[o] = y;
    if (!a) {
        CDL_TRY(bring(e, b, op->adjust_b, op->alpha, y));
        return cdl_ckks_ciphertext_shrink(y);
    }
    if (!b) {
        CDL_TRY(bring(e, a, op->adjust_a, 1.0, y));
        return cdl_ckks_ciphertext_shrink(y);
    }
    /* an input already at the level and scale is read as it is (no copy) */
    const cdl_ckks_ciphertext *ya = a, *yb = b;
    if (op->adjust_a || cdl_ckks_ciphertext_level(a) > e->level) {
        CDL_TRY(bring(e, a, op->adjust_a, 1.0, y));
        ya = y;
    }
    int sub = 0;
    if (op->adjust_b || cdl_ckks_ciphertext_level(b) > e->level || fabs(op->alpha) != 1.0) {
        CDL_TRY(bring(e, b, op->adjust_b, op->alpha, tmp)); /* alpha applied */
        yb = tmp;
    } else {
        sub = op->alpha < 0;
    }
    if (sub)
        CDL_TRY(cdl_ckks_sub(e->ctx, ya, yb, y));
    else
        CDL_TRY(cdl_ckks_add(e->ctx, ya, yb, y));
    return cdl_ckks_ciphertext_shrink(y);
}

/* out = a .* b: the shallower input dropped to the other's level, multiply, relinearize, rescale. */
static cdl_status item_mul(const eval_env *e, size_t o, cdl_ckks_ciphertext *tmp)
{
    const cdl_ckks_ciphertext *a = e->in->ct[o], *b = e->in2->ct[o];
    if (!a || !b) { /* times an exact zero */
        e->out->ct[o] = NULL;
        return CDL_OK;
    }
    cdl_ckks_ciphertext *y = NULL;
    CDL_TRY(cdl_ckks_ciphertext_new(e->ctx, &y));
    e->out->ct[o] = y;
    if (cdl_ckks_ciphertext_level(a) > e->level) {
        CDL_TRY(cdl_ckks_drop_to_level(e->ctx, a, e->level, y));
        a = y;
    } else if (cdl_ckks_ciphertext_level(b) > e->level) {
        CDL_TRY(cdl_ckks_drop_to_level(e->ctx, b, e->level, y));
        b = y;
    }
    /* the size-3 product in the thread's scratch ciphertext, as for x^2 */
    CDL_TRY(cdl_ckks_mul(e->ctx, a, b, tmp));
    CDL_TRY(cdl_ckks_relinearize(e->ctx, e->rlk, tmp, y));
    CDL_TRY(cdl_ckks_rescale(e->ctx, y, y));
    return cdl_ckks_ciphertext_shrink(y);
}

/* Run fn over the op's outputs in parallel, in chunks, reporting progress. */
static cdl_status run_items(const eval_env *e, item_fn fn, size_t n, cdl_he_progress_fn progress, void *user)
{
    size_t chunk = n / 10; /* ten progress reports per layer; each chunk ends in a barrier */
    if (chunk < 16)
        chunk = 16;
    const int parallel = fn != item_gather; /* moving pointers is not worth waking threads */
    int failed = 0;
    cdl_status fst = CDL_OK;
    char msg[512] = "";
    for (size_t start = 0; start < n && !failed; start += chunk) {
        size_t end = start + chunk < n ? start + chunk : n;
#pragma omp parallel if (parallel)
        {
            cdl_ckks_ciphertext *tmp = NULL;
            cdl_status ts = fn == item_linear || fn == item_square || fn == item_add || fn == item_mul
                                ? cdl_ckks_ciphertext_new(e->ctx, &tmp)
                                : CDL_OK;
#pragma omp for schedule(dynamic, 1)
            for (size_t o = start; o < end; o++) {
                if (ts != CDL_OK || failed)
                    continue;
                ts = fn(e, o, tmp);
            }
            if (ts != CDL_OK) {
#pragma omp critical(cdl_he_eval_error)
                if (!failed) {
                    failed = 1;
                    fst = ts;
                    snprintf(msg, sizeof msg, "%s", cdl_last_error());
                }
            }
            cdl_ckks_ciphertext_free(tmp);
        }
        if (progress && !failed) /* in output values, whatever the work items are */
            progress(user, e->op->node, e->op->name, end == n ? e->op->n_out : end * e->op->n_out / n,
                     e->op->n_out);
    }
    if (failed)
        return cdl_fail(fst, "%s", msg);
    return CDL_OK;
}

/* Slots packing: does the op see the layout (linear, moves, sign + bias, an
 * add of differently signed inputs), rather than run per ciphertext through
 * run_items as the element-wise ones do? */
static int slots_layout_op(const cdl_he_plan *plan, const he_op *op)
{
    return plan->packing == CDL_HE_PACKING_SLOTS &&
           (op->kind == HE_OP_LINEAR || op->kind == HE_OP_GATHER || op->kind == HE_OP_SIGN ||
            (op->kind == HE_OP_ADD && op->slot_sign_fix));
}

/* Run such an op. A move keeps the ciphertexts (the layout changed at compile time). */
static cdl_status run_slots_op(const eval_env *e, const cdl_ckks_galois_keys *gk, cdl_he_progress_fn progress,
                               void *user)
{
    const he_op *op = e->op;
    he_tensor *in = e->in, *out = e->out;
    if (op->kind == HE_OP_LINEAR)
        return cdl_he_slots_linear(e->plan, e->ctx, gk, op, in->ct, progress, user, out->ct);
    if (op->kind == HE_OP_ADD) { /* added at the scale of the input that is not aligned */
        const double T = op->slot_sign_fix == 1 ? cdl_ckks_ciphertext_scale(e->in2->ct[0]) / fabs(op->alpha)
                                                : cdl_ckks_ciphertext_scale(in->ct[0]);
        return cdl_he_slots_add_signed(e->plan, e->ctx, op, in->ct, e->in2->ct, op->level_out, T, out->ct);
    }
    if (out->n != in->n)
        return cdl_fail(CDL_ERR_INTERNAL, "node '%s': %zu ciphertexts in, %zu out", op->name, in->n, out->n);
    for (size_t c = 0; c < in->n; c++)
        CDL_TRY(take_input(e, c, &out->ct[c]));
    if (op->kind == HE_OP_SIGN)
        return cdl_he_slots_sign(e->plan, e->ctx, op, &e->plan->layout[op->out_value], out->ct);
    return CDL_OK;
}

/* Slots packing, a step of twin linear ops (he_schedule.c): run together,
 * each diagonal encoded once; then each op's inputs are released as usual. */
static cdl_status run_twins(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                            he_tensor *vals, size_t *readers, const size_t *members, size_t m,
                            cdl_he_progress_fn progress, void *user)
{
    const he_op *ops[HE_MAX_TWINS];
    cdl_ckks_ciphertext *const *in[HE_MAX_TWINS];
    cdl_ckks_ciphertext **out[HE_MAX_TWINS];
    if (m > HE_MAX_TWINS)
        return cdl_fail(CDL_ERR_INTERNAL, "cdl_he_evaluate: a step of %zu twins", m);
    for (size_t g = 0; g < m; g++) {
        const he_op *op = ops[g] = &plan->ops[members[g]];
        he_tensor *ti = &vals[op->in_value], *to = &vals[op->out_value];
        if (op->kind != HE_OP_LINEAR || !op->sl || ti->n < op->sl->n_in_ct || !ti->ct)
            return cdl_fail(CDL_ERR_INTERNAL, "cdl_he_evaluate: node '%s' is not a linear op with its input",
                            op->name);
        for (size_t c = 0; c < op->sl->n_in_ct; c++)
            if (!ti->ct[c] || cdl_ckks_ciphertext_level(ti->ct[c]) != op->level_in)
                return cdl_fail(CDL_ERR_INTERNAL, "cdl_he_evaluate: node '%s' expected its input at level %d",
                                op->name, op->level_in);
        to->n = plan->layout[op->out_value].n_ct;
        to->ct = cdl_calloc_array(to->n, sizeof *to->ct);
        if (!to->ct)
            return cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_evaluate: out of memory at node '%s'", op->name);
        in[g] = ti->ct;
        out[g] = to->ct;
    }
    CDL_TRY(cdl_he_slots_linear_twins(plan, ctx, gk, ops, m, in, progress, user, out));
    for (size_t g = 0; g < m; g++) {
        const he_op *op = ops[g];
        if (progress)
            progress(user, op->node, op->name, op->n_out, op->n_out);
        if (--readers[op->in_value] == 0 && op->in_value != plan->output_value)
            tensor_release(&vals[op->in_value]);
    }
    return CDL_OK;
}

/* First non-NULL ciphertext of a tensor, or NULL. */
static const cdl_ckks_ciphertext *first_ct(const he_tensor *t, size_t *index)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->ct[i]) {
            if (index)
                *index = i;
            return t->ct[i];
        }
    return NULL;
}

cdl_status cdl_he_evaluate(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                           const cdl_he_batch *in, cdl_he_progress_fn progress, void *user, cdl_he_batch **out)
{
    return cdl_he_evaluate_keys(plan, ctx, rlk, NULL, in, progress, user, out);
}

/* Slots packing: every rotation step of the plan must have its key, at its level. */
static cdl_status check_galois(const cdl_he_plan *plan, const cdl_ckks_galois_keys *gk)
{
    cdl_status st = cdl_he_check_galois_keys(plan, gk);
    if (st != CDL_OK) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", cdl_last_error());
        return cdl_fail(st, "cdl_he_evaluate: %s", msg);
    }
    return CDL_OK;
}

cdl_status cdl_he_evaluate_keys(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_relin_key *rlk,
                                const cdl_ckks_galois_keys *gk, const cdl_he_batch *in, cdl_he_progress_fn progress,
                                void *user, cdl_he_batch **out)
{
    if (!plan || !ctx || !in || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_evaluate: plan, ctx, in and out must not be NULL");
    *out = NULL;
    const int slots = plan->packing == CDL_HE_PACKING_SLOTS;
    if (in->count != cdl_he_plan_input_ciphertexts(plan))
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_he_evaluate: the batch has %zu ciphertexts but the plan (%s packing) "
                        "takes %zu per batch; client and server must compile the model with the same --packing",
                        in->count, slots ? "slots" : "batch", cdl_he_plan_input_ciphertexts(plan));
    if (slots && in->n_images > plan->images)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_he_evaluate: the batch claims %zu images; this slots plan holds at most "
                        "%zu per ciphertext", in->n_images, plan->images);
    if (cdl_ckks_log_n(ctx) != plan->spec.log_n || cdl_ckks_max_level(ctx) < plan->levels)
        return cdl_fail(CDL_ERR_MISMATCH, "cdl_he_evaluate: the context (N = 2^%d, %d levels) is not the plan's "
                        "(N = 2^%d, %d levels); build it with cdl_he_context_new",
                        cdl_ckks_log_n(ctx), cdl_ckks_max_level(ctx), plan->spec.log_n, plan->levels);
    for (size_t i = 0; i < in->count; i++) {
        if (!in->ct[i])
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_he_evaluate: input ciphertext %zu is missing", i);
        if (cdl_ckks_ciphertext_level(in->ct[i]) != plan->levels || cdl_ckks_ciphertext_size(in->ct[i]) != 2)
            return cdl_fail(CDL_ERR_MISMATCH,
                            "cdl_he_evaluate: input ciphertext %zu is at level %d (size %d); the plan needs fresh "
                            "ciphertexts at level %d (encrypt with cdl_he_encrypt_batch)",
                            i, cdl_ckks_ciphertext_level(in->ct[i]), cdl_ckks_ciphertext_size(in->ct[i]),
                            plan->levels);
        if (cdl_ckks_ciphertext_scale(in->ct[i]) != cdl_ckks_ciphertext_scale(in->ct[0]))
            return cdl_fail(CDL_ERR_MISMATCH, "cdl_he_evaluate: input ciphertexts have different scales");
    }
    CDL_TRY(check_galois(plan, gk));
    int needs_rlk = plan->cost.ct_mults > 0;
    if (needs_rlk && !rlk)
        return cdl_fail(CDL_ERR_EXHAUSTED, "cdl_he_evaluate: the model multiplies ciphertexts: the client's "
                        "relinearization key is needed");
    he_tensor *vals = cdl_calloc_array(plan->n_values, sizeof *vals);
    size_t *readers = cdl_calloc_array(plan->n_values, sizeof *readers);
    cdl_status st = CDL_OK;
    if (!vals || !readers) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_evaluate: out of memory");
        goto done;
    }
    for (size_t i = 0; i < plan->n_ops; i++)
        if (plan->ops[i].kind != HE_OP_SKIP) {
            readers[plan->ops[i].in_value]++;
            if (plan->ops[i].in_value2 >= 0) /* ADD, MUL: the second input (counted twice for x + x) */
                readers[plan->ops[i].in_value2]++;
        }
    cdl_he_linear_prepare();
    vals[0].n = slots ? plan->layout[0].n_ct : in->count;
    vals[0].ct = in->ct;
    vals[0].borrowed = 1;
    /* the moves of the input the client made: their ciphertexts follow the input's in the batch */
    for (size_t i = 0; slots && i < plan->n_ops; i++)
        if (plan->ops[i].client_input) {
            he_tensor *t = &vals[plan->ops[i].out_value];
            t->n = plan->layout[plan->ops[i].out_value].n_ct;
            t->ct = in->ct + plan->ops[i].client_ct;
            t->borrowed = 1;
        }
    /* slots packing follows the plan's schedule (twin linear ops together); batch packing the op order */
    const int scheduled = slots && plan->sched;
    for (size_t step = 0; step < (scheduled ? plan->n_steps : plan->n_ops); step++) {
        const size_t i = scheduled ? plan->sched[plan->step_off[step]] : step;
        const size_t members = scheduled ? plan->step_off[step + 1] - plan->step_off[step] : 1;
        if (members > 1) {
            CDL_TRY_GOTO(st, run_twins(plan, ctx, gk, vals, readers, plan->sched + plan->step_off[step], members,
                                       progress, user),
                         done);
            continue;
        }
        const he_op *op = &plan->ops[i];
        if (op->kind == HE_OP_SKIP || (slots && op->client_input))
            continue;
        he_tensor *ti = &vals[op->in_value], *to = &vals[op->out_value];
        to->n = slots ? plan->layout[op->out_value].n_ct : op->n_out;
        to->ct = cdl_calloc_array(to->n, sizeof *to->ct);
        if (!to->ct) {
            st = cdl_fail(CDL_ERR_NO_MEMORY, "cdl_he_evaluate: out of memory at node '%s'", op->name);
            goto done;
        }
        const int two = op->kind == HE_OP_ADD || op->kind == HE_OP_MUL;
        he_tensor *ti2 = two ? &vals[op->in_value2] : NULL;
        /* the last op still to read its input may take its ciphertexts (counted at run time: the schedule
         * may run the ops in another order than the compiler's) */
        const size_t own_reads = two && op->in_value2 == op->in_value ? 2 : 1;
        eval_env e = {.plan = plan, .ctx = ctx, .rlk = rlk, .op = op, .in = ti, .out = to, .in2 = ti2,
                      .consume = readers[op->in_value] == own_reads && op->in_value != 0 &&
                                 op->in_value != plan->output_value && !ti->borrowed};
        const cdl_ckks_ciphertext *x0 = first_ct(ti, &e.any_input), *x1 = two ? first_ct(ti2, NULL) : NULL;
        if (op->kind == HE_OP_ADD ? !x0 && !x1 : op->kind == HE_OP_MUL ? !x0 || !x1 : !x0 && op->kind != HE_OP_GATHER) {
            st = cdl_fail(CDL_ERR_UNSUPPORTED, "cdl_he_evaluate: the input of node '%s' is identically zero",
                          op->name);
            goto done;
        }
        if ((x0 && cdl_ckks_ciphertext_level(x0) != op->level_in) ||
            (x1 && cdl_ckks_ciphertext_level(x1) != op->level_in2)) {
            st = cdl_fail(CDL_ERR_INTERNAL, "cdl_he_evaluate: node '%s' expected its input at level %d, got %d",
                          op->name, x1 && cdl_ckks_ciphertext_level(x1) != op->level_in2 ? op->level_in2 : op->level_in,
                          cdl_ckks_ciphertext_level(x1 && cdl_ckks_ciphertext_level(x1) != op->level_in2 ? x1 : x0));
            goto done;
        }
        const int on_layout = slots_layout_op(plan, op);
        item_fn fn = item_gather;
        switch (on_layout ? HE_OP_SKIP : op->kind) {
        case HE_OP_LINEAR: {
            int l = cdl_ckks_ciphertext_level(x0);
            e.s_in = cdl_ckks_ciphertext_scale(x0);
            e.level = l;
            e.const_scale = plan->scale * (double)cdl_ckks_prime(ctx, l) / e.s_in;
            fn = reference_linear ? item_linear : item_linear_group;
            break;
        }
        case HE_OP_GATHER: fn = item_gather; break;
        case HE_OP_SIGN: fn = item_sign; break;
        case HE_OP_SQUARE:
        case HE_OP_POW2K: fn = item_square; break;
        case HE_OP_POLY: fn = item_poly; break;
        case HE_OP_ADD:
            e.level = op->level_out;
            if (!op->adjust_a && x0) /* the input that is not aligned sets the scale */
                e.target_scale = cdl_ckks_ciphertext_scale(x0);
            else if (!op->adjust_b && x1)
                e.target_scale = cdl_ckks_ciphertext_scale(x1) / fabs(op->alpha);
            else
                e.target_scale = plan->scale;
            fn = item_add;
            break;
        case HE_OP_MUL:
            e.level = op->level_out + 1;
            fn = item_mul;
            break;
        default: break;
        }
        if (on_layout) {
            CDL_TRY_GOTO(st, run_slots_op(&e, gk, progress, user), done);
            if (progress)
                progress(user, op->node, op->name, op->n_out, op->n_out);
        } else {
            CDL_TRY_GOTO(st, run_items(&e, fn, slots ? to->n : fn == item_linear_group ? op->n_groups : op->n_out,
                                       progress, user),
                         done);
        }
        if (--readers[op->in_value] == 0 && op->in_value != plan->output_value)
            tensor_release(ti);
        if (two && --readers[op->in_value2] == 0 && op->in_value2 != plan->output_value)
            tensor_release(ti2);
    }
    {
        he_tensor *res = &vals[plan->output_value];
        cdl_he_batch *b = NULL;
        for (size_t i = 0; i < res->n; i++)
            if (!res->ct[i]) {
                st = cdl_fail(CDL_ERR_UNSUPPORTED, "cdl_he_evaluate: output %zu is identically zero (it depends only "
                              "on padding)", i);
                goto done;
            }
        CDL_TRY_GOTO(st, cdl_he_batch_alloc(in->n_images, res->n, &b), done);
        cdl_free(b->ct);
        b->ct = res->ct; /* hand the ciphertexts over */
        res->ct = NULL;
        res->n = 0;
        *out = b;
    }
done:
    if (vals)
        for (size_t v = 0; v < plan->n_values; v++)
            tensor_release(&vals[v]);
    cdl_free(vals);
    cdl_free(readers);
    return st;
}
