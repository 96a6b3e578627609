/*
 * he_schedule.c: the order in which slots packing evaluates the ops, with
 * "twin" linear ops run together.
 *
 * Two linear ops are twins when their diagonals are the same (the same
 * weights on the same layout at the same level; the bias may differ): the two
 * branches of a siamese network, or of a test-time augmentation such as the
 * flip-averaged CIFAR-10 ResNet, whose second branch repeats every layer of
 * the first on the mirrored image. Encoding a diagonal (an inverse FFT and
 * one NTT per prime) costs far more than multiplying it into a ciphertext, so
 * twins evaluated together share each encoding (cdl_ckks_dot_values_shared)
 * and pay it once.
 *
 * The schedule is a list scheduling of the graph's topological order: the
 * first op (in the original order) whose inputs are ready runs next, except
 * that an op with twins waits until every twin is ready, and they then run as
 * one step. When nothing but waiting twins is ready, the first of them runs
 * alone (a twin that depends on its sibling's output can never join it).
 */
#include <string.h>

#include "compile/he_plan.h"
#include "core/error.h"
#include "core/memory.h"

/* The same diagonals (every field but the bias and the weight cache). */
static int same_diagonals(const he_slot_linear *a, const he_slot_linear *b)
{
    if (a->n_terms != b->n_terms || a->n_entries != b->n_entries || a->n_in_ct != b->n_in_ct ||
        a->n_out_ct != b->n_out_ct || a->n_giants != b->n_giants || a->fold_m != b->fold_m || a->cyc_n != b->cyc_n)
        return 0;
    for (size_t t = 0; t < a->n_terms; t++) {
        const he_slot_term *x = &a->terms[t], *y = &b->terms[t];
        if (x->ob != y->ob || x->ib != y->ib || x->giant != y->giant || x->baby != y->baby || x->e0 != y->e0 ||
            x->e1 != y->e1)
            return 0;
    }
    return !memcmp(a->pos, b->pos, a->n_entries * sizeof *a->pos) &&
           !memcmp(a->w, b->w, a->n_entries * sizeof *a->w) &&
           !memcmp(a->baby_off, b->baby_off, (a->n_in_ct + 1) * sizeof *a->baby_off) &&
           !memcmp(a->babies, b->babies, a->baby_off[a->n_in_ct] * sizeof *a->babies) &&
           !memcmp(a->giant_term, b->giant_term, (a->n_giants + 1) * sizeof *a->giant_term);
}

static int twins(const he_op *a, const he_op *b)
{
    return a->kind == HE_OP_LINEAR && b->kind == HE_OP_LINEAR && a->sl && b->sl && a->level_in == b->level_in &&
           a->level_out == b->level_out && same_diagonals(a->sl, b->sl);
}

void cdl_he_schedule_free(cdl_he_plan *p)
{
    cdl_free(p->sched);
    cdl_free(p->step_off);
    p->sched = p->step_off = NULL;
    p->n_steps = p->twin_steps = 0;
}

cdl_status cdl_he_schedule(cdl_he_plan *p)
{
    cdl_he_schedule_free(p);
    const size_t n = p->n_ops;
    size_t *group = cdl_alloc_array(n ? n : 1, sizeof *group); /* first op of its twin group */
    size_t *members = cdl_calloc_array(n ? n : 1, sizeof *members);
    unsigned char *done = cdl_calloc_array(n ? n : 1, 1), *ready_value = cdl_calloc_array(p->n_values + 1, 1);
    p->sched = cdl_alloc_array(n ? n : 1, sizeof *p->sched);
    p->step_off = cdl_alloc_array(n + 1, sizeof *p->step_off);
    cdl_status st = CDL_OK;
    if (!group || !members || !done || !ready_value || !p->sched || !p->step_off) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory for the schedule");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        group[i] = i;
        if (p->opt.separate_twins || p->ops[i].kind != HE_OP_LINEAR)
            continue;
        for (size_t j = 0; j < i; j++)
            if (group[j] == j && members[j] < HE_MAX_TWINS && twins(&p->ops[j], &p->ops[i])) {
                group[i] = j;
                break;
            }
        members[group[i]]++;
    }
    ready_value[0] = 1;
    size_t placed = 0, left = 0;
    for (size_t i = 0; i < n; i++)
        left += p->ops[i].kind != HE_OP_SKIP;
#define OP_READY(k)                                                                                                   \
    (ready_value[p->ops[k].in_value] && (p->ops[k].in_value2 < 0 || ready_value[p->ops[k].in_value2]))
    while (left) {
        size_t pick = n, alone = n;
        for (size_t i = 0; i < n && pick == n; i++) {
            if (done[i] || p->ops[i].kind == HE_OP_SKIP || !OP_READY(i))
                continue;
            int all = 1;
            for (size_t j = 0; j < n && all; j++)
                if (j != i && group[j] == group[i] && !done[j] && p->ops[j].kind != HE_OP_SKIP && !OP_READY(j))
                    all = 0;
            if (all)
                pick = i;
            else if (alone == n)
                alone = i;
        }
        p->step_off[p->n_steps] = placed;
        if (pick == n) { /* only waiting twins are ready: the first runs alone */
            if (alone == n) {
                st = cdl_fail(CDL_ERR_INTERNAL, "he plan: no op is ready to run (the graph has a cycle?)");
                goto out;
            }
            group[alone] = alone;
            done[alone] = 1;
            p->sched[placed++] = alone;
        } else {
            const size_t g = group[pick];
            for (size_t j = 0; j < n; j++)
                if (group[j] == g && !done[j] && p->ops[j].kind != HE_OP_SKIP) {
                    done[j] = 1;
                    p->sched[placed++] = j;
                }
            p->twin_steps += placed - p->step_off[p->n_steps] > 1;
        }
        p->n_steps++;
        for (size_t k = p->step_off[p->n_steps - 1]; k < placed; k++) {
            ready_value[p->ops[p->sched[k]].out_value] = 1;
            left--;
        }
    }
#undef OP_READY
    p->step_off[p->n_steps] = placed;
out:
    cdl_free(group);
    cdl_free(members);
    cdl_free(done);
    cdl_free(ready_value);
    if (st != CDL_OK)
        cdl_he_schedule_free(p);
    return st;
}
