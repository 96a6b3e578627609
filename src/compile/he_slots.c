/*
 * he_slots.c: the compiler half of slots packing (one image across the slots;
 * see include/cryptodl/he.h). After cdl_he_plan_new has lowered the graph,
 * merged linear chains and counted the levels (the same ops and levels as
 * batch packing), this file
 *   1. gives every value a layout (he_plan.h, he_layout): the input image and
 *      every rank-3 output of a linear op in channel frames; a strided layer
 *      keeps its input's frame and fills the gaps it leaves with further
 *      channels (the multiplexed layout of Lee et al., ICML 2022), so a
 *      stride-2 convolution needs no repacking and its diagonals stay few;
 *      moves (pad, reshape, flatten, slice) only relabel slots; element-wise
 *      ops keep their input's layout;
 *   2. decides how many images share a ciphertext: when every tensor fits in
 *      `period` <= N/4 slots, the layout repeats every `period` slots (LoLa's
 *      replication), and a rotation by d acts on every copy at once;
 *   3. turns each linear op (a sparse matrix, CSR) into generalized diagonals
 *      between pairs of output / input ciphertexts: y = sum_d diag_d (.)
 *      rot(x, d), d = (input slot - output slot) mod N/2, and splits each
 *      d into giant + baby (Halevi-Shoup baby-step giant-step, CRYPTO 2018)
 *      with the modulus B that needs the fewest rotations for that op;
 *   4. lists the Galois steps (every nonzero baby and giant step).
 * Unused slots may hold anything: a diagonal is zero wherever its column is
 * not a value of the input, so nothing outside the layout reaches an output.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile/he_plan.h"
#include "core/error.h"
#include "core/memory.h"
#include "nn/nn_internal.h"


static void layout_clear(he_layout *l)
{
    cdl_free(l->slot);
    cdl_free(l->sign);
    memset(l, 0, sizeof *l);
}

void cdl_he_slot_linear_free(he_slot_linear *sl)
{
    if (!sl)
        return;
    if (sl->cache) {
        for (size_t t = 0; t < sl->n_terms; t++)
            cdl_ckks_plaintext_free(sl->cache[t]);
        cdl_free(sl->cache);
    }
    pthread_mutex_destroy(&sl->lock);
    cdl_free(sl->terms);
    cdl_free(sl->pos);
    cdl_free(sl->w);
    cdl_free(sl->baby_off);
    cdl_free(sl->babies);
    cdl_free(sl->bias);
    cdl_free(sl->giant_term);
    cdl_free(sl);
}

void cdl_he_slots_free(cdl_he_plan *p)
{
    if (p->layout)
        for (size_t v = 0; v < p->n_values; v++)
            layout_clear(&p->layout[v]);
    cdl_free(p->layout);
    p->layout = NULL;
    cdl_free(p->galois_steps);
    p->galois_steps = NULL;
    cdl_free(p->galois_levels);
    p->galois_levels = NULL;
    cdl_he_schedule_free(p);
    for (size_t i = 0; i < p->n_ops; i++) {
        cdl_he_slot_linear_free(p->ops[i].sl);
        p->ops[i].sl = NULL;
    }
}

static cdl_status layout_alloc(he_layout *l, size_t n)
{
    l->n = n;
    l->slot = cdl_alloc_array(n ? n : 1, sizeof *l->slot);
    if (!l->slot)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory for a layout of %zu values", n);
    return CDL_OK;
}

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

static void layout_count_ct(he_layout *l, size_t S)
{
    int64_t top = -1;
    for (size_t i = 0; i < l->n; i++)
        if (l->slot[i] > top)
            top = l->slot[i];
    l->n_ct = top < 0 ? 1 : (size_t)top / S + 1;
}

/* Frames of fh x fw slots, gap g, for a C x H x W tensor. The frame is
 * rounded up to a power of two when that takes no extra ciphertext (channel
 * shifts are then rotations by multiples of a power of two, which the
 * baby-step split handles best). */
static cdl_status layout_framed(he_layout *l, int C, int H, int W, int gap, int fh, int fw, size_t frame_size,
                                int mirror, size_t S)
{
    const size_t per = (size_t)gap * (size_t)gap, frames = ceil_div((size_t)C, per);
    if (!frame_size) {
        frame_size = (size_t)fh * (size_t)fw;
        size_t pow2 = 1;
        while (pow2 < frame_size)
            pow2 <<= 1;
        if (ceil_div(frames * pow2, S) == ceil_div(frames * frame_size, S))
            frame_size = pow2;
    }
    CDL_TRY(layout_alloc(l, (size_t)C * (size_t)H * (size_t)W));
    for (int c = 0; c < C; c++) {
        const size_t f = (size_t)c / per, sub = (size_t)c % per, dy = sub / (size_t)gap, dx = sub % (size_t)gap;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                size_t row = (size_t)gap * (size_t)y + dy, col = (size_t)gap * (size_t)x + dx;
                if (mirror & 1)
                    col = (size_t)fw - 1 - col;
                if (mirror & 2)
                    row = (size_t)fh - 1 - row;
                l->slot[((size_t)c * (size_t)H + (size_t)y) * (size_t)W + (size_t)x] =
                    (int64_t)(f * frame_size + row * (size_t)fw + col);
            }
    }
    l->framed = 1;
    l->C = C;
    l->H = H;
    l->W = W;
    l->gap = gap;
    l->frame_h = fh;
    l->frame_w = fw;
    l->frame_size = frame_size;
    l->mirror = mirror;
    layout_count_ct(l, S);
    return CDL_OK;
}

static cdl_status layout_contiguous(he_layout *l, size_t n, size_t S)
{
    CDL_TRY(layout_alloc(l, n));
    for (size_t i = 0; i < n; i++)
        l->slot[i] = (int64_t)i;
    layout_count_ct(l, S);
    return CDL_OK;
}

static cdl_status layout_copy(he_layout *dst, const he_layout *src)
{
    he_layout t = *src;
    t.slot = NULL;
    t.sign = NULL;
    CDL_TRY(layout_alloc(&t, src->n));
    memcpy(t.slot, src->slot, src->n * sizeof *t.slot);
    *dst = t;
    return CDL_OK;
}

static int sign_of(const he_layout *l, size_t i) { return l->sign ? l->sign[i] : 1; }

/* Give l the signs f(i) (+-1), or none if all are +1. */
static cdl_status layout_set_signs(he_layout *l, const he_layout *a, const he_layout *b, const int8_t *op_sign)
{
    int any = 0;
    for (size_t i = 0; i < l->n && !any; i++)
        any = (a ? sign_of(a, i) : 1) * (b ? sign_of(b, i) : 1) * (op_sign ? op_sign[i] : 1) < 0;
    cdl_free(l->sign);
    l->sign = NULL;
    if (!any)
        return CDL_OK;
    l->sign = cdl_alloc_array(l->n, sizeof *l->sign);
    if (!l->sign)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
    for (size_t i = 0; i < l->n; i++)
        l->sign[i] = (int8_t)((a ? sign_of(a, i) : 1) * (b ? sign_of(b, i) : 1) * (op_sign ? op_sign[i] : 1));
    return CDL_OK;
}

static int same_signs(const he_layout *a, const he_layout *b)
{
    for (size_t i = 0; i < a->n; i++)
        if (sign_of(a, i) != sign_of(b, i))
            return 0;
    return 1;
}

static int layout_has_zero(const he_layout *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->slot[i] < 0)
            return 1;
    return 0;
}

/* The output layout of a linear op. Rank-3 outputs of a framed input keep
 * the frame; a stride s (input H / output H) multiplies the gap by s. */
/* Distinct (output ciphertext, input ciphertext, d) diagonals of a linear op
 * between two layouts: one bit per possible diagonal, one pass over the weights. */
static cdl_status count_diagonals(const he_op *op, const he_layout *li, const he_layout *lo, size_t S, size_t *count)
{
    const size_t bits = lo->n_ct * li->n_ct * S;
    uint8_t *seen = cdl_calloc_array(bits / 8 + 1, 1);
    if (!seen)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
    size_t u = 0;
    for (size_t r = 0; r < op->n_out; r++) {
        const int64_t so = lo->slot[r];
        if (so < 0)
            continue;
        for (size_t k = op->row[r]; k < op->row[r + 1]; k++) {
            const int64_t si = li->slot[op->col[k]];
            if (si < 0)
                continue;
            const size_t d = ((size_t)si % S + S - (size_t)so % S) % S;
            const size_t bit = (((size_t)so / S) * li->n_ct + (size_t)si / S) * S + d;
            if (!(seen[bit / 8] & (1u << (bit % 8)))) {
                seen[bit / 8] |= (uint8_t)(1u << (bit % 8));
                u++;
            }
        }
    }
    cdl_free(seen);
    *count = u;
    return CDL_OK;
}

static cdl_status linear_layout(const he_op *op, const he_layout *in, const cdl_nn_shape *os, size_t S,
                                he_layout *out)
{
    if (os->rank != 3)
        return layout_contiguous(out, cdl_nn_shape_numel(os), S);
    const int C = (int)os->dims[0], H = (int)os->dims[1], W = (int)os->dims[2];
    /* The frame: the input's (a stride s multiplies its gap by s) or a fresh one; then of the four
     * orientations, the one with the fewest diagonals for this op, the input's own on a tie (a
     * convolution of a mirror image, such as the flip of a flip-averaged model merged into its first
     * layer, has few diagonals only into a mirrored frame). */
    int gap = 1, fh = H, fw = W, mirror = 0;
    size_t frame_size = 0;
    if (in->framed && H > 0 && W > 0) {
        const int sh = in->H / H, sw = in->W / W;
        if (sh >= 1 && sh == sw && (int64_t)in->gap * sh * H <= in->frame_h &&
            (int64_t)in->gap * sw * W <= in->frame_w && (int64_t)in->gap * sh <= 64) {
            gap = in->gap * sh;
            fh = in->frame_h;
            fw = in->frame_w;
            frame_size = in->frame_size;
        }
        mirror = in->mirror;
    }
    int best = mirror;
    size_t best_count = SIZE_MAX;
    for (int k = 0; k < 4; k++) {
        he_layout t = {0};
        CDL_TRY(layout_framed(&t, C, H, W, gap, fh, fw, frame_size, mirror ^ k, S));
        size_t count = 0;
        cdl_status st = count_diagonals(op, in, &t, S, &count);
        layout_clear(&t);
        CDL_TRY(st);
        if (count < best_count) {
            best_count = count;
            best = mirror ^ k;
        }
    }
    return layout_framed(out, C, H, W, gap, fh, fw, frame_size, best, S);
}

/* ---- diagonals --------------------------------------------------------------- */

/* A (ciphertext, diagonal) pair: an input ciphertext and a d it is rotated
 * by, or an output ciphertext and a d that reaches it. */
typedef struct ct_diag {
    uint32_t ct;
    uint32_t d;
} ct_diag;

static int bit_get(const uint8_t *b, size_t i) { return (b[i / 8] >> (i % 8)) & 1; }
static void bit_set(uint8_t *b, size_t i) { b[i / 8] |= (uint8_t)(1u << (i % 8)); }

/* The set bits of a cts x S bitmap as (ct, d) pairs, sorted; returns their number. */
static size_t bitmap_pairs(const uint8_t *bits, size_t cts, size_t S, ct_diag *out)
{
    size_t n = 0;
    for (size_t c = 0; c < cts; c++)
        for (size_t d = 0; d < S; d++)
            if (bit_get(bits, c * S + d))
                out[n++] = (ct_diag){(uint32_t)c, (uint32_t)d};
    return n;
}

/* The baby-step modulus B in 1..S with the fewest rotations: distinct
 * nonzero (d mod B) per input ciphertext (hoisted) plus distinct nonzero
 * (d - d mod B) per output ciphertext. stamp: S words of scratch. */
static uint32_t choose_baby(const ct_diag *in_d, size_t n_in, const ct_diag *out_d, size_t n_out, size_t S,
                            uint32_t *stamp)
{
    uint32_t best_b = 1, token = 0;
    double best = INFINITY;
    memset(stamp, 0, S * sizeof *stamp);
    for (size_t B = 1; B <= S; B++) {
        double cost = 0;
        uint32_t ct = UINT32_MAX;
        for (size_t i = 0; i < n_in; i++) {
            if (in_d[i].ct != ct) {
                ct = in_d[i].ct;
                token++;
            }
            uint32_t v = in_d[i].d % (uint32_t)B;
            if (v && stamp[v] != token) {
                stamp[v] = token;
                cost += HE_HOISTED_COST;
            }
        }
        ct = UINT32_MAX;
        for (size_t i = 0; i < n_out; i++) {
            if (out_d[i].ct != ct) {
                ct = out_d[i].ct;
                token++;
            }
            uint32_t v = out_d[i].d - out_d[i].d % (uint32_t)B;
            if (v && stamp[v] != token) {
                stamp[v] = token;
                cost += 1.0;
            }
        }
        if (cost < best) {
            best = cost;
            best_b = (uint32_t)B;
        }
        if (token > UINT32_MAX / 2) { /* restart the stamps long before they wrap */
            memset(stamp, 0, S * sizeof *stamp);
            token = 0;
        }
    }
    return best_b;
}

/* Build the diagonals of a linear op. fold = 0: each output at its layout
 * slot. fold = m (a power of two >= the outputs, contiguous layout in one
 * ciphertext): the hybrid method (Halevi-Shoup's extended diagonals, as in
 * Gazelle): weight (r, c) goes to the slot of residue r mod m nearest below
 * the input's slot, so every diagonal is one of m offsets; the partial sums
 * of output r, at the slots r + k m of the period, are then added by
 * log2(period / m) rotations (fold_steps). Pays for dense layers with few
 * outputs and many inputs (thousands of diagonals otherwise). */
/* One weight of the op in slots terms: output and input ciphertexts, the
 * diagonal d, the output slot within the period (before pre-rotation). */
typedef struct slot_weight {
    size_t ob, ib, d, pos;
    double w;
} slot_weight;

/* Weight k of row r, or 0 when it touches an exact zero (padding). fold and
 * cyc as in build_slot_linear. */
static int slot_weight_of(const cdl_he_plan *p, const he_op *op, const he_layout *li, const he_layout *lo, size_t fold,
                          size_t cyc, size_t r, size_t k, slot_weight *out)
{
    const size_t S = p->slots, P = p->period;
    const int64_t so = lo->slot[r], si = li->slot[op->col[k]];
    if (si < 0 || so < 0)
        return 0;
    size_t s_o = (size_t)so % S;
    const size_t s_i = (size_t)si % S;
    if (fold) /* the slot of residue r mod m at or below the input's, within the period */
        s_o = (s_i % P + P - ((s_i % P + fold - r % fold) % fold)) % P + (s_i / P) * P;
    out->ob = (size_t)so / S;
    out->ib = (size_t)si / S;
    out->pos = s_o % P;
    /* modulo S, not the period: a rotation by d - P would read the next image's copy; the cyclic
     * method reads slot s_o + d of the replicated input, which is s_i or its copy s_i + cyc */
    out->d = cyc ? (s_i + cyc - s_o) % cyc : (s_i + S - s_o) % S;
    out->w = op->w[k] * sign_of(li, op->col[k]); /* the slot holds sign * value */
    return 1;
}

/* Build the diagonals of a linear op. fold = 0: each output at its layout
 * slot. fold = m (a power of two >= the outputs, contiguous layout in one
 * ciphertext): the hybrid method (Halevi-Shoup's extended diagonals, as in
 * Gazelle): weight (r, c) goes to the slot of residue r mod m nearest below
 * the input's slot, so every diagonal is one of m offsets; the partial sums
 * of output r, at the slots r + k m of the period, are then added by
 * log2(period / m) rotations (fold_steps). Pays for dense layers with few
 * outputs and many inputs (thousands of diagonals otherwise).
 * cyc = n (every input and output slot below n, 2 n <= period, a clean input):
 * the cyclic method: the input is replicated, x + rot(x, -n), so that slots
 * n..2n-1 repeat 0..n-1, and each weight uses the diagonal (s_in - s_out)
 * mod n (Halevi-Shoup's diagonals of an n x n matrix, CRYPTO 2014): a
 * convolution whose channels span several frames then needs the frame
 * differences modulo the number of frames instead of every signed one.
 * The terms are the distinct (output ct, input ct, d), found with bitmaps and
 * ordered by (output ct, giant, input ct, baby); the weights are placed into
 * their terms by a counting sort (no comparison sort of millions of weights). */
static cdl_status build_slot_linear(const cdl_he_plan *p, const he_op *op, size_t fold, size_t cyc, uint32_t *stamp,
                                    he_slot_linear **out)
{
    const he_layout *li = &p->layout[op->in_value], *lo = &p->layout[op->out_value];
    const size_t S = p->slots, P = p->period, n_in_ct = li->n_ct, n_out_ct = lo->n_ct;
    const size_t n_pairs = n_out_ct * n_in_ct * S;
    cdl_status st = CDL_OK;
    he_slot_linear *sl = cdl_calloc_array(1, sizeof *sl);
    if (sl && pthread_mutex_init(&sl->lock, NULL) != 0) {
        cdl_free(sl);
        sl = NULL;
    }
    uint8_t *term_bits = cdl_calloc_array(n_pairs / 8 + 1, 1);
    uint8_t *in_bits = cdl_calloc_array(n_in_ct * S / 8 + 1, 1), *out_bits = cdl_calloc_array(n_out_ct * S / 8 + 1, 1);
    ct_diag *in_d = cdl_alloc_array(n_in_ct * S, sizeof *in_d), *out_d = cdl_alloc_array(n_out_ct * S, sizeof *out_d);
    uint32_t *term_of = NULL; /* per (ob, ib, d): its term */
    size_t *cursor = NULL;
    if (!sl || !term_bits || !in_bits || !out_bits || !in_d || !out_d) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory for node '%s'", op->name);
        goto done;
    }
    sl->n_in_ct = n_in_ct;
    sl->n_out_ct = n_out_ct;
    sl->cyc_n = cyc;
    /* pass 1: which (ob, ib, d) terms exist, which d each input / output ciphertext has */
    size_t m = 0;
    for (size_t r = 0; r < op->n_out; r++)
        for (size_t k = op->row[r]; k < op->row[r + 1]; k++) {
            slot_weight e;
            if (!slot_weight_of(p, op, li, lo, fold, cyc, r, k, &e))
                continue; /* an exact zero contributes nothing */
            bit_set(term_bits, (e.ob * n_in_ct + e.ib) * S + e.d);
            bit_set(in_bits, e.ib * S + e.d);
            bit_set(out_bits, e.ob * S + e.d);
            m++;
        }
    const size_t n_in = bitmap_pairs(in_bits, n_in_ct, S, in_d), n_out = bitmap_pairs(out_bits, n_out_ct, S, out_d);
    const uint32_t B = choose_baby(in_d, n_in, out_d, n_out, S, stamp);
    /* pass 2: number the terms in (ob, giant, ib, baby) order: per output ct, d ascending is (giant, baby)
     * ascending, so walk the giants, then the input cts, then the babies */
    size_t nt = 0, ng = 0;
    for (size_t i = 0; i < n_pairs; i++)
        nt += bit_get(term_bits, i);
    term_of = cdl_alloc_array(n_pairs ? n_pairs : 1, sizeof *term_of);
    sl->terms = cdl_alloc_array(nt ? nt : 1, sizeof *sl->terms);
    sl->giant_term = cdl_alloc_array(nt + 1, sizeof *sl->giant_term);
    sl->pos = cdl_alloc_array(m ? m : 1, sizeof *sl->pos);
    sl->w = cdl_alloc_array(m ? m : 1, sizeof *sl->w);
    sl->baby_off = cdl_calloc_array(n_in_ct + 1, sizeof *sl->baby_off);
    cursor = cdl_calloc_array(nt + 1, sizeof *cursor);
    if (!term_of || !sl->terms || !sl->giant_term || !sl->pos || !sl->w || !sl->baby_off || !cursor) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory for node '%s'", op->name);
        goto done;
    }
    nt = 0;
    for (size_t ob = 0; ob < n_out_ct; ob++)
        for (size_t g = 0; g < S; g += B) {
            const size_t first = nt;
            for (size_t ib = 0; ib < n_in_ct; ib++)
                for (size_t b = 0; b < B && g + b < S; b++) {
                    const size_t idx = (ob * n_in_ct + ib) * S + g + b;
                    if (!bit_get(term_bits, idx))
                        continue;
                    term_of[idx] = (uint32_t)nt;
                    sl->terms[nt++] = (he_slot_term){(uint32_t)ob, (uint32_t)ib, (int32_t)g, (int32_t)b, 0, 0};
                }
            if (nt > first) {
                sl->giant_term[ng++] = first;
                if (g)
                    sl->rotations++;
            }
        }
    sl->giant_term[ng] = nt;
    sl->n_terms = nt;
    sl->n_giants = ng;
    sl->n_entries = m;
    /* passes 3 and 4: count the weights of each term, then place them (pre-rotated by -giant) */
    for (size_t r = 0; r < op->n_out; r++)
        for (size_t k = op->row[r]; k < op->row[r + 1]; k++) {
            slot_weight e;
            if (slot_weight_of(p, op, li, lo, fold, cyc, r, k, &e))
                cursor[term_of[(e.ob * n_in_ct + e.ib) * S + e.d] + 1]++;
        }
    for (size_t t = 0; t < nt; t++) {
        cursor[t + 1] += cursor[t];
        sl->terms[t].e0 = cursor[t];
        sl->terms[t].e1 = cursor[t + 1];
    }
    for (size_t r = 0; r < op->n_out; r++)
        for (size_t k = op->row[r]; k < op->row[r + 1]; k++) {
            slot_weight e;
            if (!slot_weight_of(p, op, li, lo, fold, cyc, r, k, &e))
                continue;
            const uint32_t t = term_of[(e.ob * n_in_ct + e.ib) * S + e.d];
            const size_t at = cursor[t]++;
            sl->pos[at] = (uint32_t)((e.pos + (size_t)sl->terms[t].giant) % P);
            sl->w[at] = e.w;
        }
    /* baby steps per input ciphertext: the distinct nonzero d mod B */
    {
        memset(in_bits, 0, n_in_ct * S / 8 + 1);
        for (size_t i = 0; i < n_in; i++)
            bit_set(in_bits, in_d[i].ct * S + in_d[i].d % B);
        size_t nb = 0;
        for (size_t i = 0; i < n_in_ct * S; i++)
            nb += i % S != 0 && bit_get(in_bits, i);
        sl->babies = cdl_alloc_array(nb ? nb : 1, sizeof *sl->babies);
        if (!sl->babies) {
            st = cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
            goto done;
        }
        size_t k = 0;
        for (size_t c = 0; c < n_in_ct; c++) {
            sl->baby_off[c] = k;
            for (size_t d = 1; d < S; d++)
                if (bit_get(in_bits, c * S + d))
                    sl->babies[k++] = (int32_t)d;
        }
        sl->baby_off[n_in_ct] = k;
        sl->hoisted = k;
    }
    /* bias at the output slots */
    int any_bias = 0;
    for (size_t r = 0; op->bias && r < op->n_out; r++)
        any_bias |= op->bias[r] != 0.0 && lo->slot[r] >= 0;
    if (any_bias) {
        sl->bias = cdl_calloc_array(n_out_ct * P, sizeof *sl->bias);
        if (!sl->bias) {
            st = cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
            goto done;
        }
        for (size_t r = 0; r < op->n_out; r++)
            if (lo->slot[r] >= 0)
                sl->bias[((size_t)lo->slot[r] / S) * P + (size_t)lo->slot[r] % S % P] = op->bias[r];
    }
    if (fold) {
        sl->fold_m = fold;
        for (size_t step = P / 2; step >= fold; step /= 2)
            sl->fold_rotations++;
    }
done:
    cdl_free(term_bits);
    cdl_free(in_bits);
    cdl_free(out_bits);
    cdl_free(in_d);
    cdl_free(out_d);
    cdl_free(term_of);
    cdl_free(cursor);
    if (st != CDL_OK) {
        cdl_he_slot_linear_free(sl);
        return st;
    }
    *out = sl;
    return CDL_OK;
}

/* The model of he_plan.c's description in rotation units: a plaintext
 * product with its encoding costs about (100 + 30 (l + 1)) / (60 (l + 1)(l + 2))
 * of a key switch at level l. */
static double slot_linear_cost(const he_slot_linear *sl, int level)
{
    const double l = level, pt = (100.0 + 30.0 * (l + 1)) / (60.0 * (l + 1) * (l + 2));
    return (double)he_slot_linear_rotations(sl) +
           HE_HOISTED_COST * (double)sl->hoisted + pt * (double)sl->n_terms;
}

/* The replication period n of the cyclic method for op, or 0 when it does
 * not apply: the input must be clean (zero outside its slots, so that
 * x + rot(x, -n) is x twice) and every input and output slot below n with
 * 2 n <= period (the copy must not reach the next image's slots). */
static size_t cyclic_period(const cdl_he_plan *p, const he_op *op)
{
    const he_layout *li = &p->layout[op->in_value], *lo = &p->layout[op->out_value];
    if (!li->clean)
        return 0;
    size_t n = 1;
    for (size_t i = 0; i < li->n; i++)
        if (li->slot[i] >= 0 && (size_t)li->slot[i] % p->slots + 1 > n)
            n = (size_t)li->slot[i] % p->slots + 1;
    for (size_t i = 0; i < lo->n; i++)
        if (lo->slot[i] >= 0 && (size_t)lo->slot[i] % p->slots + 1 > n)
            n = (size_t)lo->slot[i] % p->slots + 1;
    return 2 * n <= p->period ? n : 0;
}

/* Keep the cheaper of two lowerings (freeing the other); a is kept on a tie. */
static he_slot_linear *cheaper(he_slot_linear *a, he_slot_linear *b, int level)
{
    if (slot_linear_cost(b, level) < slot_linear_cost(a, level)) {
        cdl_he_slot_linear_free(a);
        return b;
    }
    cdl_he_slot_linear_free(b);
    return a;
}

static cdl_status lower_slot_linear(const cdl_he_plan *p, he_op *op, uint32_t *stamp)
{
    he_slot_linear *plain = NULL, *folded = NULL;
    CDL_TRY(build_slot_linear(p, op, 0, 0, stamp, &plain));
    const size_t cyc = cyclic_period(p, op);
    if (cyc) {
        he_slot_linear *cyclic = NULL;
        cdl_status st = build_slot_linear(p, op, 0, cyc, stamp, &cyclic);
        if (st != CDL_OK) {
            cdl_he_slot_linear_free(plain);
            return st;
        }
        plain = cheaper(plain, cyclic, op->level_in);
    }
    const he_layout *lo = &p->layout[op->out_value];
    size_t m = 1;
    while (m < op->n_out)
        m <<= 1;
    int contiguous = lo->n_ct == 1 && !lo->framed && m < p->period;
    for (size_t r = 0; r < op->n_out && contiguous; r++)
        contiguous = lo->slot[r] == (int64_t)r;
    if (contiguous && plain->n_terms > 2 * m) {
        cdl_status st = build_slot_linear(p, op, m, 0, stamp, &folded);
        if (st != CDL_OK) {
            cdl_he_slot_linear_free(plain);
            return st;
        }
        plain = cheaper(plain, folded, op->level_in);
    }
    op->sl = plain;
    return CDL_OK;
}

/* ---- layouts of every value -------------------------------------------------- */

static cdl_status same_layout(const he_op *op, const he_layout *a, const he_layout *b)
{
    if (a->n == b->n && a->n_ct == b->n_ct && memcmp(a->slot, b->slot, a->n * sizeof *a->slot) == 0)
        return CDL_OK;
    return cdl_fail(CDL_ERR_UNSUPPORTED,
                    "node '%s' (%s): slots packing combines two tensors slot by slot, but its inputs are laid out "
                    "differently (one went through a move such as a slice or pad that the other did not); use "
                    "--packing batch for this model",
                    op->name, op->kind_name);
}

/* Ops that read the input batch. */
static size_t input_readers(const cdl_he_plan *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_ops; i++)
        n += p->ops[i].kind != HE_OP_SKIP && (p->ops[i].in_value == 0 || p->ops[i].in_value2 == 0);
    return n;
}

static cdl_status assign_layouts(cdl_he_plan *p, const cdl_nn_graph *g)
{
    const size_t S = p->slots;
    const cdl_nn_shape *is = &g->input_shape;
    if (is->rank == 3)
        CDL_TRY(layout_framed(&p->layout[0], (int)is->dims[0], (int)is->dims[1], (int)is->dims[2], 1,
                              (int)is->dims[1], (int)is->dims[2], 0, 0, S));
    else
        CDL_TRY(layout_contiguous(&p->layout[0], p->input_size, S));
    for (size_t i = 0; i < p->n_ops; i++) {
        he_op *op = &p->ops[i];
        if (op->kind == HE_OP_SKIP)
            continue;
        const he_layout *in = &p->layout[op->in_value];
        he_layout *out = &p->layout[op->out_value];
        switch (op->kind) {
        case HE_OP_LINEAR:
            CDL_TRY(linear_layout(op, in, cdl_nn_value_shape(g, op->out_value), S, out));
            break;
        case HE_OP_GATHER:
            if (op->in_value == 0 && input_readers(p) > 1) { /* the client makes it: a fresh layout */
                const cdl_nn_shape *os = cdl_nn_value_shape(g, op->out_value);
                if (os->rank == 3)
                    CDL_TRY(layout_framed(out, (int)os->dims[0], (int)os->dims[1], (int)os->dims[2], 1,
                                          (int)os->dims[1], (int)os->dims[2], 0, 0, S));
                else
                    CDL_TRY(layout_contiguous(out, op->n_out, S));
                op->client_input = 1;
                break;
            }
            CDL_TRY(layout_alloc(out, op->n_out));
            for (size_t o = 0; o < op->n_out; o++)
                out->slot[o] = op->src[o] < 0 ? -1 : in->slot[op->src[o]];
            out->n_ct = in->n_ct;
            if (in->sign) {
                out->sign = cdl_alloc_array(op->n_out, sizeof *out->sign);
                if (!out->sign)
                    return cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
                for (size_t o = 0; o < op->n_out; o++)
                    out->sign[o] = op->src[o] < 0 ? 1 : in->sign[op->src[o]];
            }
            break;
        case HE_OP_SIGN: /* y = s x + b: the sign goes into the layout, the bias is a plaintext */
            if (layout_has_zero(in))
                return cdl_fail(CDL_ERR_UNSUPPORTED, "node '%s': an affine map of an exact zero (padding) is a "
                                "constant; this runtime keeps only encrypted values", op->name);
            CDL_TRY(layout_copy(out, in));
            CDL_TRY(layout_set_signs(out, in, NULL, op->sign));
            break;
        case HE_OP_POLY:
        case HE_OP_POW2K: {
            if (layout_has_zero(in) && (op->kind == HE_OP_POW2K ? op->pow_c0 != 0.0 : op->coeffs[0] != 0.0))
                return cdl_fail(CDL_ERR_UNSUPPORTED, "node '%s': the activation of an exact zero (padding) is a "
                                "nonzero constant; pad after the activation instead", op->name);
            int odd = 0; /* p(-x) = p(x) makes the input's signs irrelevant */
            for (int d = 1; op->kind == HE_OP_POLY && d <= op->degree; d += 2)
                odd |= op->coeffs[d] != 0.0;
            if (odd && in->sign)
                return cdl_fail(CDL_ERR_UNSUPPORTED,
                                "node '%s' (%s): a polynomial with odd powers after an element-wise sign flip (an "
                                "affine map with weights -1) needs a level that the plan does not have; use "
                                "--packing batch for this model", op->name, op->kind_name);
            CDL_TRY(layout_copy(out, in));
            break;
        }
        case HE_OP_ADD:
        case HE_OP_MUL: {
            const he_layout *in2 = &p->layout[op->in_value2];
            CDL_TRY(same_layout(op, in, in2));
            CDL_TRY(layout_copy(out, in));
            if (op->kind == HE_OP_MUL) {
                CDL_TRY(layout_set_signs(out, in, in2, NULL));
            } else if (!same_signs(in, in2)) { /* the aligned input is multiplied by the sign ratio */
                if (!op->adjust_a && !op->adjust_b)
                    return cdl_fail(CDL_ERR_UNSUPPORTED,
                                    "node '%s' (add): its inputs carry different element-wise sign flips and neither "
                                    "is rescaled to the other, so aligning them would cost a level the plan does not "
                                    "have; use --packing batch for this model", op->name);
                op->slot_sign_fix = op->adjust_a ? 1 : 2;
                CDL_TRY(layout_set_signs(out, op->adjust_a ? in2 : in, NULL, NULL));
            } else {
                CDL_TRY(layout_set_signs(out, in, NULL, NULL));
            }
            break;
        }
        default: /* SQUARE */
            CDL_TRY(layout_copy(out, in));
            break;
        }
        out->n = op->n_out;
    }
    return CDL_OK;
}

/* Whether op's output is clean (he_layout.clean), from its input's and its
 * kind: a linear op writes only its output slots unless it folds partial
 * sums; a constant added everywhere (a polynomial's c0) or a move that drops
 * values (a slice) leaves nonzero slots outside the layout. */
static cdl_status set_clean(cdl_he_plan *p, const he_op *op)
{
    const he_layout *in = &p->layout[op->in_value];
    he_layout *out = &p->layout[op->out_value];
    switch (op->kind) {
    case HE_OP_LINEAR:
        out->clean = !op->sl->fold_m;
        break;
    case HE_OP_SIGN:
    case HE_OP_SQUARE:
        out->clean = in->clean;
        break;
    case HE_OP_POW2K:
        out->clean = in->clean && op->pow_c0 == 0.0;
        break;
    case HE_OP_POLY:
        out->clean = in->clean && op->coeffs[0] == 0.0;
        break;
    case HE_OP_ADD:
        out->clean = in->clean && p->layout[op->in_value2].clean;
        break;
    case HE_OP_MUL:
        out->clean = in->clean || p->layout[op->in_value2].clean;
        break;
    case HE_OP_GATHER: { /* clean when every slot of the input is still a slot of the output */
        out->clean = op->client_input; /* the client's vector is zero outside the layout */
        if (op->client_input)
            break;
        if (!in->clean)
            break;
        const size_t bits = in->n_ct * p->slots;
        uint8_t *kept = cdl_calloc_array(bits / 8 + 1, 1);
        if (!kept)
            return cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
        for (size_t o = 0; o < out->n; o++)
            if (out->slot[o] >= 0 && (size_t)out->slot[o] < bits)
                bit_set(kept, (size_t)out->slot[o]);
        out->clean = 1;
        for (size_t i = 0; i < in->n && out->clean; i++)
            out->clean = in->slot[i] < 0 || bit_get(kept, (size_t)in->slot[i]);
        cdl_free(kept);
        break;
    }
    default:
        out->clean = 0;
    }
    return CDL_OK;
}

int cdl_he_slots_naf(int step, size_t S, int *digits)
{
    /* the signed step in (-S/2, S/2], then its non-adjacent form */
    long long d = step % (long long)S;
    if (d > (long long)S / 2)
        d -= (long long)S;
    int n = 0;
    for (long long bit = 1; d != 0; bit <<= 1) {
        if (d & 1) {
            const long long z = 2 - (((d % 4) + 4) % 4); /* +1 or -1 */
            digits[n++] = (int)(z > 0 ? bit : (long long)S - bit);
            d -= z;
        }
        d /= 2;
    }
    return n;
}

/* One rotation the plan performs: its step and the level it happens at. */
typedef struct step_use {
    int step;
    int level;
} step_use;

static int use_step_cmp(const void *pa, const void *pb)
{
    const step_use *a = pa, *b = pb;
    return a->step < b->step ? -1 : a->step > b->step;
}

/* A distinct step: how often it is rotated by, and what a key of its own saves. */
typedef struct step_stat {
    int step;
    uint64_t uses;
    uint64_t saved; /* rotations saved by its own key: uses x (NAF digits - 1) */
} step_stat;

static int saved_cmp(const void *pa, const void *pb)
{
    const step_stat *a = pa, *b = pb;
    if (a->saved != b->saved)
        return a->saved > b->saved ? -1 : 1;
    return a->step < b->step ? -1 : a->step > b->step;
}

/* Raise the level of the key for `step` (or, for a step without its own
 * key, of the keys of its NAF digits) to `level`. */
static void need_level(const int *keys, int *levels, size_t n_keys, size_t S, int step, int level)
{
    size_t lo = 0, hi = n_keys;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (keys[mid] < step)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < n_keys && keys[lo] == step) {
        if (levels[lo] < level)
            levels[lo] = level;
        return;
    }
    int digits[64];
    const int n = cdl_he_slots_naf(step, S, digits);
    for (int i = 0; i < n; i++)
        need_level(keys, levels, n_keys, S, digits[i], level);
}

/* Each Galois key only as deep as the highest level it rotates at (a key
 * truncated there holds (l + 1)/(L + 1) of the primes and about as few
 * digits); returns the bytes of the key set. keys sorted. */
static uint64_t key_levels(const cdl_he_plan *p, const step_use *uses, size_t n_uses, const int *keys, size_t n_keys,
                           int *levels)
{
    memset(levels, 0, (n_keys ? n_keys : 1) * sizeof *levels);
    for (size_t i = 0; i < n_uses; i++)
        need_level(keys, levels, n_keys, p->slots, uses[i].step, uses[i].level);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n_keys; i++)
        bytes += cdl_he_ksk_bytes(p, 1, levels[i]);
    return bytes;
}

/* Insert v into the sorted array a of n entries (room for one more). */
static void sorted_insert(int *a, size_t n, int v)
{
    size_t i = n;
    while (i > 0 && a[i - 1] > v) {
        a[i] = a[i - 1];
        i--;
    }
    a[i] = v;
}

/* The key set, from every rotation the plan performs (uses, sorted by step).
 * All of the distinct steps when they fit max_galois_keys and
 * max_galois_bytes (or no limit is set); else the rotations by +-2^k (every
 * step is a sum of a few of them, its non-adjacent form) and then, while the
 * limits allow, the steps whose own key saves the most rotations (a step
 * without one costs a rotation per nonzero NAF digit; a key's bytes and a
 * rotation's work both grow with the level, so rotations saved is also the
 * gain per byte). Sets galois_steps / galois_levels / composed_rotations. */
static cdl_status choose_keys(cdl_he_plan *p, const step_use *uses, size_t n_uses)
{
    const size_t S = p->slots, limit = (size_t)p->opt.max_galois_keys;
    const uint64_t byte_limit = p->opt.max_galois_bytes;
    cdl_status st = CDL_OK;
    step_stat *ss = cdl_alloc_array(n_uses ? n_uses : 1, sizeof *ss);
    int *keys = cdl_alloc_array(n_uses + 64, sizeof *keys), *levels = cdl_alloc_array(n_uses + 64, sizeof *levels);
    int *trial = cdl_alloc_array(n_uses + 64, sizeof *trial);
    if (!ss || !keys || !levels || !trial) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
        goto done;
    }
    size_t u = 0;
    for (size_t i = 0; i < n_uses; i++) {
        if (u && ss[u - 1].step == uses[i].step)
            ss[u - 1].uses++;
        else
            ss[u++] = (step_stat){uses[i].step, 1, 0};
    }
    for (size_t i = 0; i < u; i++) {
        keys[i] = ss[i].step;
        int digits[64];
        ss[i].saved = ss[i].uses * (uint64_t)(cdl_he_slots_naf(ss[i].step, S, digits) - 1);
    }
    size_t n_keys = u;
    uint64_t bytes = key_levels(p, uses, n_uses, keys, n_keys, levels);
    p->composed_rotations = 0;
    if ((limit && u > limit) || (byte_limit && bytes > byte_limit)) {
        /* the basis first */
        n_keys = 0;
        for (size_t b = 1; b < S; b <<= 1) {
            sorted_insert(keys, n_keys++, (int)b);
            if (b != S / 2)
                sorted_insert(keys, n_keys++, (int)(S - b));
        }
        bytes = key_levels(p, uses, n_uses, keys, n_keys, levels);
        if ((limit && n_keys > limit) || (byte_limit && bytes > byte_limit)) {
            if (limit && n_keys > limit)
                st = cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                              "he plan (slots): the plan rotates by %zu distinct steps; with at most %zu Galois keys "
                              "every step is composed of rotations by +-2^k, which takes %zu keys at N = 2^%d: allow "
                              "at least that many", u, limit, n_keys, p->spec.log_n);
            else
                st = cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                              "he plan (slots): the Galois keys must fit %.0f MB, but the %zu keys of the rotations "
                              "by +-2^k alone (every other step is composed of them) take %.0f MB at the levels "
                              "this model rotates at: allow at least that much",
                              byte_limit / 1e6, n_keys, bytes / 1e6);
            goto done;
        }
        /* then the steps that save the most rotations, while they fit */
        qsort(ss, u, sizeof *ss, saved_cmp);
        for (size_t i = 0; i < u && (!limit || n_keys < limit); i++) {
            int is_key = 0;
            for (size_t j = 0; j < n_keys && !is_key; j++)
                is_key = keys[j] == ss[i].step;
            if (is_key || ss[i].saved == 0)
                continue;
            memcpy(trial, keys, n_keys * sizeof *trial);
            sorted_insert(trial, n_keys, ss[i].step);
            const uint64_t tb = byte_limit ? key_levels(p, uses, n_uses, trial, n_keys + 1, levels) : 0;
            if (byte_limit && tb > byte_limit)
                continue;
            memcpy(keys, trial, (n_keys + 1) * sizeof *keys);
            n_keys++;
        }
        bytes = key_levels(p, uses, n_uses, keys, n_keys, levels);
        /* the rotations the missing keys add */
        for (size_t i = 0; i < u; i++) {
            size_t lo = 0, hi = n_keys;
            while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (keys[mid] < ss[i].step)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo == n_keys || keys[lo] != ss[i].step)
                p->composed_rotations += ss[i].saved;
        }
        p->rotations += p->composed_rotations;
    }
    p->galois_steps = keys;
    p->galois_levels = levels;
    p->n_galois = n_keys;
    keys = levels = NULL;
    (void)bytes;
done:
    cdl_free(ss);
    cdl_free(keys);
    cdl_free(levels);
    cdl_free(trial);
    return st;
}

cdl_status cdl_he_slots_compile(cdl_he_plan *p, const cdl_nn_graph *g)
{
    p->slots = (size_t)1 << (p->spec.log_n - 1);
    p->layout = cdl_calloc_array(p->n_values, sizeof *p->layout);
    if (!p->layout)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
    CDL_TRY(assign_layouts(p, g));
    p->input_cts = p->layout[0].n_ct;
    for (size_t i = 0; i < p->n_ops; i++)
        if (p->ops[i].client_input) {
            p->ops[i].client_ct = p->input_cts;
            p->input_cts += p->layout[p->ops[i].out_value].n_ct;
        }
    /* period: the span of the widest tensor, if all fit in one ciphertext */
    size_t span = 1, multi = 0;
    for (size_t v = 0; v < p->n_values; v++) {
        const he_layout *l = &p->layout[v];
        if (!l->slot)
            continue;
        multi |= l->n_ct > 1;
        for (size_t i = 0; i < l->n; i++)
            if (l->slot[i] >= 0 && (size_t)l->slot[i] + 1 > span)
                span = (size_t)l->slot[i] + 1;
    }
    p->period = p->slots;
    if (!multi)
        while (p->period / 2 >= span && p->period > 1)
            p->period /= 2;
    p->images = p->slots / p->period;
    uint32_t *stamp = cdl_alloc_array(p->slots, sizeof *stamp);
    if (!stamp)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
    size_t n_steps = 0;
    cdl_status st = CDL_OK;
    p->layout[0].clean = 1; /* the client's vector is zero outside the input's slots */
    for (size_t i = 0; i < p->n_ops && st == CDL_OK; i++) {
        if (p->ops[i].kind == HE_OP_SKIP)
            continue;
        if (p->ops[i].kind == HE_OP_LINEAR) {
            st = lower_slot_linear(p, &p->ops[i], stamp);
            if (st == CDL_OK)
                n_steps += p->ops[i].sl->n_terms + p->ops[i].sl->hoisted + p->ops[i].sl->fold_rotations +
                           p->ops[i].sl->n_in_ct;
        }
        if (st == CDL_OK)
            st = set_clean(p, &p->ops[i]);
    }
    cdl_free(stamp);
    CDL_TRY(st);
    /* the Galois steps: every nonzero baby and giant step, with the level it rotates at */
    step_use *uses = cdl_alloc_array(n_steps ? n_steps : 1, sizeof *uses);
    if (!uses)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan (slots): out of memory");
    size_t k = 0;
    p->rotations = p->hoisted = p->plain_mults = 0;
    for (size_t i = 0; i < p->n_ops; i++) {
        const he_slot_linear *sl = p->ops[i].sl;
        if (p->ops[i].kind != HE_OP_LINEAR || !sl)
            continue;
        const int level = p->ops[i].level_in;
        for (size_t g = 0; g < sl->n_giants; g++)
            if (sl->terms[sl->giant_term[g]].giant)
                uses[k++] = (step_use){sl->terms[sl->giant_term[g]].giant, level};
        for (size_t b = 0; b < sl->hoisted; b++)
            uses[k++] = (step_use){sl->babies[b], level};
        for (size_t step = p->period / 2; sl->fold_m && step >= sl->fold_m; step /= 2)
            uses[k++] = (step_use){(int)step, level};
        for (size_t c = 0; sl->cyc_n && c < sl->n_in_ct; c++) /* the replication x + rot(x, -n) */
            uses[k++] = (step_use){(int)(p->slots - sl->cyc_n), level};
        p->rotations += he_slot_linear_rotations(sl);
        p->hoisted += sl->hoisted;
        p->plain_mults += sl->n_terms;
    }
    qsort(uses, k, sizeof *uses, use_step_cmp);
    cdl_status cst = choose_keys(p, uses, k);
    cdl_free(uses);
    return cst;
}
