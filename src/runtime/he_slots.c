/*
 * he_slots.c: the runtime half of slots packing (one image across the slots;
 * the compiler half is src/compile/he_slots.c): where the client puts the
 * pixels and finds the logits, and the server's linear layer.
 *
 * Linear layer (Halevi-Shoup diagonal method with baby-step giant-step):
 *   y_ob = sum_giant rot( sum_(ib, baby) diag'_(ob, ib, giant + baby) (.) rot(x_ib, baby), giant )
 * where diag' is the diagonal pre-rotated by -giant (done by the compiler
 * on the slot positions). The baby-step rotations of each input ciphertext
 * share one key-switching decomposition (cdl_ckks_rotate_hoisted); with the
 * compiler's cyclic method they are rotations of x_ib + rot(x_ib, -n). Work
 * items are the (output ciphertext, giant step) pairs, run in parallel, each
 * ending in its own ciphertext. An item encodes its diagonals on the fly at
 * the level they are used, eight at a time, limb by limb straight into the
 * products (cdl_ckks_dot_values: the plaintexts are never stored), or reads
 * them from the plan's cache (cache_weights). The giant rotations of one
 * output are summed in the extended basis and switched back together, one
 * ModDown for the sum (cdl_ckks_rotate_sum: the second level of double
 * hoisting), in a fixed order, so the result does not depend on the thread
 * count. The baby steps stay materialized: each feeds about a hundred
 * products, which in the extended basis would cost (l+5)/(l+1) times more
 * than the ModDown they save. Scales as in batch
 * packing: the weights are encoded at S q_l / s_in, one rescale brings the
 * sum to exactly S, and the bias is added at S.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "ckks/ckks_internal.h"
#include "compile/he_plan.h"
#include "core/error.h"
#include "core/memory.h"
#include "runtime/he_runtime.h"

void cdl_he_slots_input_vector(const cdl_he_plan *plan, const double *images, size_t n, size_t ct, double *vals)
{
    const size_t S = plan->slots, P = plan->period, per = plan->input_size;
    memset(vals, 0, S * sizeof *vals);
    const he_layout *l = &plan->layout[0];
    const int64_t *src = NULL; /* the input itself, or a move of it the client makes (op->client_input) */
    for (size_t i = 0; ct >= l->n_ct && i < plan->n_ops; i++) {
        const he_op *op = &plan->ops[i];
        if (op->client_input && ct >= op->client_ct && ct < op->client_ct + plan->layout[op->out_value].n_ct) {
            l = &plan->layout[op->out_value];
            src = op->src;
            ct -= op->client_ct;
            break;
        }
    }
    if (ct >= l->n_ct)
        return;
    for (size_t i = 0; i < l->n; i++) {
        const int64_t s = l->slot[i], from = src ? src[i] : (int64_t)i;
        if (s < 0 || (size_t)s / S != ct || from < 0)
            continue;
        for (size_t j = 0; j < n; j++)
            vals[(size_t)s % S + j * P] = images[j * per + (size_t)from];
    }
}

void cdl_he_slots_output_values(const cdl_he_plan *plan, const double *vals, size_t ct, size_t n, double *out)
{
    const he_layout *l = &plan->layout[plan->output_value];
    const size_t S = plan->slots, P = plan->period, per = plan->output_size;
    for (size_t i = 0; i < l->n; i++) {
        const int64_t s = l->slot[i];
        if (s < 0) {
            if (ct == 0)
                for (size_t j = 0; j < n; j++)
                    out[j * per + i] = 0.0;
            continue;
        }
        if ((size_t)s / S != ct)
            continue;
        const double sign = l->sign ? l->sign[i] : 1.0;
        for (size_t j = 0; j < n; j++)
            out[j * per + i] = sign * vals[(size_t)s % S + j * P];
    }
}

/* A key usable for `step` at `level` (its key is truncated at the highest level the plan rotates by it). */
static int key_serves(const cdl_ckks_galois_keys *gk, int step, int level)
{
    return cdl_ckks_galois_keys_has_step(gk, step) && cdl_ckks_galois_keys_step_level(gk, step) >= level;
}

/* Rotate a by all of `step` but a last step *last that has a Galois key (0:
 * none left; out = a then): nothing when step has its own key; else (a key
 * budget) the first of two steps with keys serving this level, when the
 * plan's keys hold such a pair; else all but the last of its non-adjacent
 * form, rotations by +-2^k (the keys the compiler made deep enough for it).
 * out may be a. */
static cdl_status slots_rotate_but_last(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                        const cdl_ckks_galois_keys *gk, const cdl_ckks_ciphertext *a, int step,
                                        cdl_ckks_ciphertext *out, int *last)
{
    *last = step;
    if (cdl_ckks_galois_keys_has_step(gk, step))
        return cdl_ckks_ciphertext_copy(ctx, a, out);
    const int level = cdl_ckks_ciphertext_level(a), S = (int)plan->slots;
    for (size_t i = 0; i < plan->n_galois; i++) {
        const int first = plan->galois_steps[i], second = ((step - first) % S + S) % S;
        if (second && key_serves(gk, first, level) && key_serves(gk, second, level)) {
            *last = second;
            return cdl_ckks_rotate(ctx, gk, a, first, out);
        }
    }
    int digits[64];
    const int n = cdl_he_slots_naf(step, plan->slots, digits);
    *last = n ? digits[n - 1] : 0;
    if (n <= 1)
        return cdl_ckks_ciphertext_copy(ctx, a, out);
    CDL_TRY(cdl_ckks_rotate(ctx, gk, a, digits[0], out));
    for (int i = 1; i < n - 1; i++)
        CDL_TRY(cdl_ckks_rotate(ctx, gk, out, digits[i], out));
    return CDL_OK;
}

/* Rotate by `step`, with its own key or composed (slots_rotate_but_last). */
static cdl_status slots_rotate(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                               const cdl_ckks_ciphertext *a, int step, cdl_ckks_ciphertext *out)
{
    if (cdl_ckks_galois_keys_has_step(gk, step))
        return cdl_ckks_rotate(ctx, gk, a, step, out);
    int last;
    CDL_TRY(slots_rotate_but_last(plan, ctx, gk, a, step, out, &last));
    return last ? cdl_ckks_rotate(ctx, gk, out, last, out) : CDL_OK;
}

/* Copy slots 0..period-1 of vec to every other image's copy. */
static void repeat_period(const cdl_he_plan *plan, double *vec)
{
    for (size_t j = 1; j < plan->slots / plan->period; j++)
        memcpy(vec + j * plan->period, vec, plan->period * sizeof *vec);
}

/* vec at slot s (within its ciphertext) of every image's copy = v. */
static void put_copies(const cdl_he_plan *plan, double *vec, size_t s, double v)
{
    for (size_t j = 0; j < plan->slots / plan->period; j++)
        vec[s % plan->slots + j * plan->period] = v;
}

/* A P-periodic vector of S slots from the entries [e0, e1) of a term. */
static void diag_vector(const cdl_he_plan *plan, const he_slot_linear *sl, size_t e0, size_t e1, double *v)
{
    const size_t P = plan->period;
    memset(v, 0, P * sizeof *v);
    for (size_t k = e0; k < e1; k++)
        v[sl->pos[k]] += sl->w[k];
    repeat_period(plan, v);
}

/* Terms whose diagonals are encoded and multiplied in one cdl_ckks_dot_values call. */
#define SLOTS_DOT_CHUNK 8

/* The rotated copy of x_ib by the term's baby step: index 0 is x_ib itself. */
static size_t baby_index(const he_slot_linear *sl, const he_slot_term *tm)
{
    if (!tm->baby)
        return 0;
    const int32_t *b = sl->babies + sl->baby_off[tm->ib];
    size_t lo = 0, hi = sl->baby_off[tm->ib + 1] - sl->baby_off[tm->ib];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b[mid] < tm->baby)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo + 1;
}

/* One work item: output ciphertext ob, one giant step, all its terms, for
 * each of the m twins (xr[g], acc[g]: their inputs' baby steps and sums).
 * The giant rotation is left to finish_outputs but for its last keyed step
 * (*rest), when it has to be composed.
 * cache: 0 = encode on the fly (SLOTS_DOT_CHUNK diagonals at a time, into
 * vecs, each shared by the twins); 1 = read sl->cache; 2 = encode into new
 * cache entries. */
static cdl_status giant_item(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                             const he_slot_linear *sl, size_t gi, cdl_ckks_ciphertext *const *const *const *xr,
                             size_t m, double const_scale, int level, int cache, double *vecs,
                             cdl_ckks_ciphertext *const *acc, int *rest)
{
    const size_t t_begin = sl->giant_term[gi], t_end = sl->giant_term[gi + 1];
    const int32_t giant = sl->terms[t_begin].giant;
    if (cache == 0) {
        const cdl_ckks_ciphertext *x[HE_MAX_TWINS * SLOTS_DOT_CHUNK];
        const double *v[SLOTS_DOT_CHUNK];
        for (size_t t0 = t_begin; t0 < t_end; t0 += SLOTS_DOT_CHUNK) {
            const size_t k = t_end - t0 < SLOTS_DOT_CHUNK ? t_end - t0 : SLOTS_DOT_CHUNK;
            for (size_t j = 0; j < k; j++) {
                const he_slot_term *tm = &sl->terms[t0 + j];
                double *vec = vecs + j * plan->slots;
                diag_vector(plan, sl, tm->e0, tm->e1, vec);
                for (size_t g = 0; g < m; g++)
                    x[g * k + j] = xr[g][tm->ib][baby_index(sl, tm)];
                v[j] = vec;
            }
            CDL_TRY(cdl_ckks_dot_values_shared(ctx, x, v, plan->slots, k, m, const_scale, t0 != t_begin, acc));
        }
    } else {
        for (size_t t = t_begin; t < t_end; t++) {
            const he_slot_term *tm = &sl->terms[t];
            const cdl_ckks_plaintext *w;
            if (cache == 1) {
                w = sl->cache[t];
            } else {
                CDL_TRY(cdl_ckks_plaintext_new_level(ctx, level, &sl->cache[t]));
                diag_vector(plan, sl, tm->e0, tm->e1, vecs);
                CDL_TRY(cdl_ckks_encode(ctx, vecs, plan->slots, const_scale, level, sl->cache[t]));
                w = sl->cache[t];
            }
            for (size_t g = 0; g < m; g++) {
                const cdl_ckks_ciphertext *x = xr[g][tm->ib][baby_index(sl, tm)];
                if (t == t_begin)
                    CDL_TRY(cdl_ckks_mul_plain(ctx, x, w, acc[g]));
                else
                    CDL_TRY(cdl_ckks_mul_plain_add(ctx, x, w, acc[g]));
            }
        }
    }
    *rest = giant;
    for (size_t g = 0; g < m && giant; g++)
        CDL_TRY(slots_rotate_but_last(plan, ctx, gk, acc[g], giant, acc[g], rest));
    return CDL_OK;
}

/* The baby steps of input ciphertext ib: xr[0] = x_ib (or, with the cyclic
 * method, its replica x + rot(x, -n), made into *rep), xr[1 + k] = rot(.,
 * babies[k]). The steps with a key of their own share one decomposition
 * (hoisted); the others (a key budget) are composed of other rotations. */
static cdl_status baby_steps(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                             const he_op *op, size_t ib, cdl_ckks_ciphertext *x, cdl_ckks_ciphertext **xr,
                             cdl_ckks_ciphertext **rep)
{
    const he_slot_linear *sl = op->sl;
    const size_t nb = sl->baby_off[ib + 1] - sl->baby_off[ib];
    xr[0] = x;
    const int level = cdl_ckks_ciphertext_level(x);
    if (sl->cyc_n) { /* slots n..2n-1 repeat 0..n-1 (the compiler checked that the rest is zero) */
        CDL_TRY(cdl_ckks_ciphertext_alloc(ctx, 2, level, rep));
        CDL_TRY(slots_rotate(plan, ctx, gk, x, (int)(plan->slots - sl->cyc_n), *rep));
        CDL_TRY(cdl_ckks_add(ctx, *rep, x, *rep));
        xr[0] = *rep;
    }
    const cdl_ckks_ciphertext *src = xr[0];
    for (size_t k = 0; k < nb; k++) /* storage for this level only: zeroing the top level's is a serial cost */
        CDL_TRY(cdl_ckks_ciphertext_alloc(ctx, 2, level, &xr[1 + k]));
    const int32_t *bs = sl->babies + sl->baby_off[ib];
    int *keyed = cdl_alloc_array(nb ? nb : 1, sizeof *keyed);
    cdl_ckks_ciphertext **keyed_out = cdl_alloc_array(nb ? nb : 1, sizeof *keyed_out);
    cdl_status st = CDL_OK;
    size_t nk = 0;
    for (size_t k = 0; keyed && keyed_out && k < nb; k++)
        if (cdl_ckks_galois_keys_has_step(gk, bs[k])) {
            keyed[nk] = bs[k];
            keyed_out[nk++] = xr[1 + k];
        }
    if (!keyed || !keyed_out)
        st = cdl_fail(CDL_ERR_NO_MEMORY, "node '%s': out of memory", op->name);
    else if (nk)
        st = cdl_ckks_rotate_hoisted(ctx, gk, src, keyed, nk, keyed_out);
    cdl_free(keyed);
    cdl_free(keyed_out);
    for (size_t k = 0; k < nb && st == CDL_OK; k++)
        if (!cdl_ckks_galois_keys_has_step(gk, bs[k]))
            st = slots_rotate(plan, ctx, gk, src, bs[k], xr[1 + k]);
    return st;
}

/* Output ciphertext by output ciphertext: the sum of its parts rotated by
 * their (remaining) giant steps rest[], switched back to the secret key
 * together (the second level of double hoisting, Bossuat et al. EUROCRYPT
 * 2021: one ModDown for the sum instead of one per giant step; in order, so
 * the result does not depend on the thread count), the folds of the hybrid
 * method, one rescale, the bias. The parts are consumed. */
static cdl_status finish_outputs(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                                 const he_op *op, const cdl_ckks_ciphertext *in0, double const_scale,
                                 cdl_ckks_ciphertext **parts, const int *rest, cdl_ckks_ciphertext **out)
{
    const he_slot_linear *sl = op->sl;
    cdl_status st = CDL_OK;
    double *vec = NULL;
    cdl_ckks_plaintext *pt = NULL;
    cdl_ckks_ciphertext *rot = NULL;
    size_t g = 0;
    for (size_t ob = 0; ob < sl->n_out_ct && st == CDL_OK; ob++) {
        cdl_ckks_ciphertext *acc = NULL;
        const size_t g0 = g;
        while (g < sl->n_giants && sl->terms[sl->giant_term[g]].ob == ob)
            g++;
        if (g - g0 == 1 && !rest[g0]) { /* one part, not rotated: the sum */
            acc = parts[g0];
            parts[g0] = NULL;
        } else if (g > g0) {
            st = cdl_ckks_ciphertext_alloc(ctx, 2, cdl_ckks_ciphertext_level(parts[g0]), &acc);
            if (st == CDL_OK)
                st = cdl_ckks_rotate_sum(ctx, gk, (const cdl_ckks_ciphertext *const *)(parts + g0), rest + g0, g - g0,
                                         acc);
            for (size_t j = g0; j < g; j++) { /* consumed */
                cdl_ckks_ciphertext_free(parts[j]);
                parts[j] = NULL;
            }
        }
        if (st == CDL_OK && !acc) { /* no weight reaches this ciphertext: an encryption of zero */
            st = cdl_ckks_ciphertext_new(ctx, &acc);
            if (st == CDL_OK)
                st = cdl_ckks_mul_const(ctx, in0, 0.0, const_scale, acc);
        }
        out[ob] = acc;
        if (!acc)
            break;
        /* hybrid method: add the partial sums fold_m slots apart (period/2, period/4, ..., fold_m) */
        for (size_t step = plan->period / 2; sl->fold_m && step >= sl->fold_m && st == CDL_OK; step /= 2) {
            if (!rot && (st = cdl_ckks_ciphertext_new(ctx, &rot)) != CDL_OK)
                break;
            st = slots_rotate(plan, ctx, gk, acc, (int)step, rot);
            if (st == CDL_OK)
                st = cdl_ckks_add(ctx, acc, rot, acc);
        }
        if (st == CDL_OK)
            st = cdl_ckks_rescale(ctx, acc, acc);
        if (st == CDL_OK) {
            cdl_ckks_ciphertext_set_scale(acc, plan->scale); /* equal up to rounding of the double product */
            if (sl->bias) {
                if (!vec)
                    vec = cdl_alloc_array(plan->slots, sizeof *vec);
                if (!pt && vec)
                    st = cdl_ckks_plaintext_new(ctx, &pt);
                if (!vec)
                    st = cdl_fail(CDL_ERR_NO_MEMORY, "out of memory");
                if (st == CDL_OK) {
                    memcpy(vec, sl->bias + ob * plan->period, plan->period * sizeof *vec);
                    repeat_period(plan, vec);
                    st = cdl_ckks_encode(ctx, vec, plan->slots, plan->scale, cdl_ckks_ciphertext_level(acc), pt);
                }
                if (st == CDL_OK)
                    st = cdl_ckks_add_plain(ctx, acc, pt, acc);
            }
        }
        if (st == CDL_OK)
            st = cdl_ckks_ciphertext_shrink(acc);
    }
    cdl_free(vec);
    cdl_ckks_plaintext_free(pt);
    cdl_ckks_ciphertext_free(rot);
    return st;
}

/* The kept encodings of sl: 1 = read them, 2 = this evaluation makes them, 0 = encode on the fly. */
static int claim_cache(const cdl_he_plan *plan, const he_op *op, int level, double const_scale)
{
    he_slot_linear *msl = op->sl; /* the cache is the plan's only mutable part (under its lock) */
    int cache = 0;
    if (plan->opt.cache_weights && op->level_in == level) {
        pthread_mutex_lock(&msl->lock);
        if (msl->cache_state == 2 && msl->cache_scale == const_scale) {
            cache = 1;
        } else if (msl->cache_state == 0) {
            msl->cache = cdl_calloc_array(msl->n_terms ? msl->n_terms : 1, sizeof *msl->cache);
            if (msl->cache) {
                msl->cache_state = 1;
                msl->cache_scale = const_scale;
                cache = 2;
            }
        }
        pthread_mutex_unlock(&msl->lock);
    }
    return cache;
}

/* After an evaluation that made the cache: complete, or given up (the next evaluation tries again). */
static void release_cache(const he_op *op, int failed)
{
    he_slot_linear *msl = op->sl;
    pthread_mutex_lock(&msl->lock);
    if (failed) {
        for (size_t t = 0; t < msl->n_terms; t++)
            cdl_ckks_plaintext_free(msl->cache[t]);
        cdl_free(msl->cache);
        msl->cache = NULL;
    }
    msl->cache_state = failed ? 0 : 2;
    pthread_mutex_unlock(&msl->lock);
}

cdl_status cdl_he_slots_linear_twins(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                     const cdl_ckks_galois_keys *gk, const struct he_op *const *ops, size_t m,
                                     cdl_ckks_ciphertext *const *const *in, cdl_he_progress_fn progress, void *user,
                                     cdl_ckks_ciphertext **const *out)
{
    if (m < 1 || m > HE_MAX_TWINS)
        return cdl_fail(CDL_ERR_INTERNAL, "slots linear: %zu twins (1..%d)", m, HE_MAX_TWINS);
    const he_op *op = ops[0];
    const he_slot_linear *sl = op->sl;
    const cdl_ckks_ciphertext *x0 = in[0][0];
    if (!x0)
        return cdl_fail(CDL_ERR_INTERNAL, "node '%s': input ciphertext 0 is missing", op->name);
    const int level = cdl_ckks_ciphertext_level(x0);
    const double s_in = cdl_ckks_ciphertext_scale(x0);
    for (size_t g = 0; g < m; g++)
        for (size_t ib = 0; ib < sl->n_in_ct; ib++)
            if (!in[g][ib] || cdl_ckks_ciphertext_level(in[g][ib]) != level)
                return cdl_fail(CDL_ERR_INTERNAL, "node '%s': input ciphertext %zu is missing or at another level",
                                ops[g]->name, ib);
    for (size_t g = 1; g < m; g++)
        if (cdl_ckks_ciphertext_scale(in[g][0]) != s_in) { /* the diagonals' encoding differs: one at a time */
            for (size_t h = 0; h < m; h++)
                CDL_TRY(cdl_he_slots_linear_twins(plan, ctx, gk, &ops[h], 1, &in[h], progress, user, &out[h]));
            return CDL_OK;
        }
    const double const_scale = plan->scale * (double)cdl_ckks_prime(ctx, level) / s_in;
    const int cache = claim_cache(plan, op, level, const_scale);
    int cache_open = cache == 2; /* this evaluation must complete or give up the cache */
    const size_t n_in = sl->n_in_ct, n_gi = sl->n_giants ? sl->n_giants : 1;
    cdl_status st = CDL_OK;
    /* per twin g: xr[g * n_in + ib] the baby steps of its input ib, rep the cyclic replicas, parts its giant items */
    cdl_ckks_ciphertext ***xr = cdl_calloc_array(m * n_in, sizeof *xr);
    cdl_ckks_ciphertext **rep = cdl_calloc_array(m * n_in, sizeof *rep);
    cdl_ckks_ciphertext **parts = cdl_calloc_array(m * n_gi, sizeof *parts);
    int *rest = cdl_calloc_array(n_gi, sizeof *rest); /* per giant item: the rotation finish_outputs applies */
    if (!xr || !rep || !parts || !rest) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "node '%s': out of memory", op->name);
        goto done;
    }
    for (size_t g = 0; g < m; g++)
        for (size_t ib = 0; ib < n_in; ib++) {
            const size_t nb = sl->baby_off[ib + 1] - sl->baby_off[ib];
            cdl_ckks_ciphertext **x = xr[g * n_in + ib] = cdl_calloc_array(nb + 1, sizeof **xr);
            if (!x) {
                st = cdl_fail(CDL_ERR_NO_MEMORY, "node '%s': out of memory", op->name);
                goto done;
            }
            CDL_TRY_GOTO(st, baby_steps(plan, ctx, gk, ops[g], ib, in[g][ib], x, &rep[g * n_in + ib]), done);
        }
    {
        int failed = 0;
        size_t done_items = 0;
        cdl_status fst = CDL_OK;
        char msg[512] = "";
        cdl_ckks_ciphertext *const *const *xg[HE_MAX_TWINS];
        for (size_t g = 0; g < m; g++)
            xg[g] = (cdl_ckks_ciphertext *const *const *)(xr + g * n_in);
#pragma omp parallel
        {
            double *vec = cdl_alloc_array(plan->slots * SLOTS_DOT_CHUNK, sizeof *vec);
            cdl_status ts = vec ? CDL_OK : cdl_fail(CDL_ERR_NO_MEMORY, "out of memory");
#pragma omp for schedule(dynamic, 1)
            for (size_t gi = 0; gi < sl->n_giants; gi++) {
                if (ts != CDL_OK || failed)
                    continue;
                /* each thread allocates its items' parts (at this level): in parallel, and only what is used */
                cdl_ckks_ciphertext *acc[HE_MAX_TWINS];
                for (size_t g = 0; g < m && ts == CDL_OK; g++)
                    ts = cdl_ckks_ciphertext_alloc(ctx, 2, level, &parts[g * n_gi + gi]);
                for (size_t g = 0; g < m; g++)
                    acc[g] = parts[g * n_gi + gi];
                if (ts != CDL_OK)
                    continue;
                ts = giant_item(plan, ctx, gk, sl, gi, xg, m, const_scale, level, cache, vec, acc, &rest[gi]);
                size_t now;
#pragma omp atomic capture
                now = ++done_items;
                if (progress && omp_get_thread_num() == 0 && now < sl->n_giants) /* the caller reports the end */
                    progress(user, op->node, op->name, now * op->n_out / sl->n_giants, op->n_out);
            }
            if (ts != CDL_OK) {
#pragma omp critical(cdl_he_slots_error)
                if (!failed) {
                    failed = 1;
                    fst = ts;
                    snprintf(msg, sizeof msg, "%s", cdl_last_error());
                }
            }
            cdl_free(vec);
        }
        if (cache_open)
            release_cache(op, failed);
        cache_open = 0;
        if (failed) {
            st = cdl_fail(fst, "node '%s': %s", op->name, msg);
            goto done;
        }
    }
    /* the hoisted and replicated copies are not needed any more */
    for (size_t j = 0; j < m * n_in; j++) {
        const size_t ib = j % n_in, nb = sl->baby_off[ib + 1] - sl->baby_off[ib];
        for (size_t k = 0; k < nb; k++) {
            cdl_ckks_ciphertext_free(xr[j][1 + k]);
            xr[j][1 + k] = NULL;
        }
        cdl_ckks_ciphertext_free(rep[j]);
        rep[j] = NULL;
    }
    for (size_t g = 0; g < m && st == CDL_OK; g++)
        st = finish_outputs(plan, ctx, gk, ops[g], in[g][0], const_scale, parts + g * n_gi, rest, out[g]);
done:
    if (cache_open) /* failed before the items ran */
        release_cache(op, 1);
    if (xr)
        for (size_t j = 0; j < m * n_in; j++) {
            if (!xr[j])
                continue;
            const size_t ib = j % n_in, nb = sl->baby_off[ib + 1] - sl->baby_off[ib];
            for (size_t k = 0; k < nb; k++)
                cdl_ckks_ciphertext_free(xr[j][1 + k]);
            cdl_free(xr[j]);
        }
    cdl_free(xr);
    for (size_t j = 0; rep && j < m * n_in; j++)
        cdl_ckks_ciphertext_free(rep[j]);
    cdl_free(rep);
    for (size_t j = 0; parts && j < m * n_gi; j++)
        cdl_ckks_ciphertext_free(parts[j]);
    cdl_free(parts);
    cdl_free(rest);
    return st;
}

cdl_status cdl_he_slots_linear(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const cdl_ckks_galois_keys *gk,
                               const struct he_op *op, cdl_ckks_ciphertext *const *in, cdl_he_progress_fn progress,
                               void *user, cdl_ckks_ciphertext **out)
{
    return cdl_he_slots_linear_twins(plan, ctx, gk, &op, 1, &in, progress, user, &out);
}

/* SIGN in slots packing: y = s x + b. The compiler recorded s in the output
 * layout's signs (the slot holds sign * value), so the ciphertext only gets
 * sign * b added, a plaintext at its own scale (no level). */
cdl_status cdl_he_slots_sign(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const struct he_op *op,
                             const he_layout *lay, cdl_ckks_ciphertext **cts)
{
    const size_t S = plan->slots;
    int any_bias = 0;
    for (size_t o = 0; o < op->n_out; o++)
        any_bias |= lay->slot[o] >= 0 && op->bias[o] != 0.0;
    if (!any_bias)
        return CDL_OK;
    double *vec = cdl_alloc_array(S, sizeof *vec);
    cdl_ckks_plaintext *pt = NULL;
    cdl_status st = vec ? cdl_ckks_plaintext_new(ctx, &pt) : cdl_fail(CDL_ERR_NO_MEMORY, "out of memory");
    for (size_t c = 0; c < lay->n_ct && st == CDL_OK; c++) {
        memset(vec, 0, S * sizeof *vec);
        for (size_t o = 0; o < op->n_out; o++)
            if (lay->slot[o] >= 0 && (size_t)lay->slot[o] / S == c)
                put_copies(plan, vec, (size_t)lay->slot[o], (lay->sign ? lay->sign[o] : 1) * op->bias[o]);
        st = cdl_ckks_encode(ctx, vec, S, cdl_ckks_ciphertext_scale(cts[c]), cdl_ckks_ciphertext_level(cts[c]), pt);
        if (st == CDL_OK)
            st = cdl_ckks_add_plain(ctx, cts[c], pt, cts[c]);
    }
    cdl_ckks_plaintext_free(pt);
    cdl_free(vec);
    return st;
}

/* The +-1 vector (times c) that turns the slots of ciphertext ct of layout
 * `from` into those of `to`: sign_from * sign_to per value (1 elsewhere). */
static void sign_ratio(const cdl_he_plan *plan, const he_layout *from, const he_layout *to, size_t ct, double c,
                       double *vec)
{
    const size_t S = plan->slots;
    for (size_t i = 0; i < S; i++)
        vec[i] = c;
    for (size_t o = 0; o < from->n; o++) {
        const int64_t s = from->slot[o];
        if (s < 0 || (size_t)s / S != ct)
            continue;
        const int r = (from->sign ? from->sign[o] : 1) * (to->sign ? to->sign[o] : 1);
        put_copies(plan, vec, (size_t)s, c * r);
    }
}

cdl_status cdl_he_slots_add_signed(const cdl_he_plan *plan, const cdl_ckks_context *ctx, const struct he_op *op,
                                   cdl_ckks_ciphertext *const *a, cdl_ckks_ciphertext *const *b, int level,
                                   double target_scale, cdl_ckks_ciphertext **out)
{
    const he_layout *la = &plan->layout[op->in_value], *lb = &plan->layout[op->in_value2];
    const size_t n = plan->layout[op->out_value].n_ct;
    double *vec = cdl_alloc_array(plan->slots, sizeof *vec);
    cdl_ckks_plaintext *pt = NULL;
    cdl_ckks_ciphertext *t = NULL;
    cdl_status st = vec ? cdl_ckks_plaintext_new(ctx, &pt) : cdl_fail(CDL_ERR_NO_MEMORY, "out of memory");
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_new(ctx, &t);
    for (size_t c = 0; c < n && st == CDL_OK; c++) {
        const int fix_a = op->slot_sign_fix == 1;
        const cdl_ckks_ciphertext *x = fix_a ? a[c] : b[c], *y = fix_a ? b[c] : a[c];
        /* the aligned input: times the sign ratio (and alpha for b) at scale T q_l / s_x, rescaled to T */
        const int l = cdl_ckks_ciphertext_level(x);
        sign_ratio(plan, fix_a ? la : lb, fix_a ? lb : la, c, fix_a ? 1.0 : op->alpha, vec);
        st = cdl_ckks_encode(ctx, vec, plan->slots,
                             target_scale * (double)cdl_ckks_prime(ctx, l) / cdl_ckks_ciphertext_scale(x), l, pt);
        if (st == CDL_OK)
            st = cdl_ckks_ciphertext_new(ctx, &out[c]);
        if (st == CDL_OK)
            st = cdl_ckks_mul_plain(ctx, x, pt, out[c]);
        if (st == CDL_OK)
            st = cdl_ckks_rescale(ctx, out[c], out[c]);
        if (st != CDL_OK)
            break;
        cdl_ckks_ciphertext_set_scale(out[c], target_scale);
        if (cdl_ckks_ciphertext_level(out[c]) > level)
            st = cdl_ckks_drop_to_level(ctx, out[c], level, out[c]);
        /* the other input: its primes dropped; for b, alpha read off its scale as in batch packing */
        if (st == CDL_OK)
            st = cdl_ckks_drop_to_level(ctx, y, level, t);
        if (st == CDL_OK && fix_a && fabs(op->alpha) != 1.0)
            cdl_ckks_ciphertext_set_scale(t, cdl_ckks_ciphertext_scale(y) / fabs(op->alpha));
        if (st == CDL_OK)
            st = fix_a && op->alpha < 0 ? cdl_ckks_sub(ctx, out[c], t, out[c]) : cdl_ckks_add(ctx, out[c], t, out[c]);
        if (st == CDL_OK)
            st = cdl_ckks_ciphertext_shrink(out[c]);
    }
    cdl_ckks_ciphertext_free(t);
    cdl_ckks_plaintext_free(pt);
    cdl_free(vec);
    return st;
}
