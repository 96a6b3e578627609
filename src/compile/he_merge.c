/*
 * he_merge.c: composing consecutive linear ops of an HE plan, so that a chain
 * of linear layers costs one CKKS level instead of one per layer.
 *
 * In batch-SIMD mode every linear node (conv, dense, average pool, an affine
 * map the importer could not fold) is a sparse matrix W plus a bias b, and
 * each costs a level (the weights are encoded at scale ~ q_l and rescaled
 * away). Two of them in a row, B reading A's output and nobody else reading
 * it, are one linear map: W = W_B W_A, b = W_B b_A + b_B, one level. A user's
 * PyTorch model has such chains: conv -> AvgPool -> BatchNorm (a BN after a
 * pool cannot be folded into the conv by the importer), x^2 -> AvgPool ->
 * conv, GlobalAveragePool -> Flatten -> Linear.
 *
 * Moves (pad, reshape: HE_OP_GATHER) and +-1 affines (HE_OP_SIGN) cost no
 * level; they are folded into the linear op that reads them when that lets it
 * merge with a linear op further up, or when they read the caller's input
 * batch (the runtime would copy every input ciphertext to move it). A move
 * is a matrix with at most one 1 per row, so folding it never adds weights.
 *
 * The product is exact double arithmetic (the same products and sums the
 * plaintext layers would compute, in another order); only weights that come
 * out exactly 0 are dropped. Columns stay ascending in each row, as the
 * runtime's grouping (he_plan.c) expects. The blow-up guard and its factor
 * are explained in he_merge.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile/he_merge.h"
#include "core/error.h"
#include "core/memory.h"

static int merge_enabled = 1;
void cdl_he_set_merge_linear(int on) { merge_enabled = on != 0; }

/* An op as a CSR matrix (rows = its outputs) plus a bias: a LINEAR op as it
 * is, a move as rows holding one 1 (or nothing: an exact zero, padding), a
 * +-1 affine as a diagonal. */
typedef struct csr_view {
    size_t n_rows;
    const size_t *row;
    const uint32_t *col;
    const double *w;
    const double *bias; /* may be NULL */
    size_t *own_row;
    uint32_t *own_col;
    double *own_w;
} csr_view;

static void view_free(csr_view *m)
{
    cdl_free(m->own_row);
    cdl_free(m->own_col);
    cdl_free(m->own_w);
}

static cdl_status view_of(const he_op *op, csr_view *m)
{
    memset(m, 0, sizeof *m);
    const size_t n = op->n_out;
    m->n_rows = n;
    if (op->kind == HE_OP_LINEAR) {
        m->row = op->row;
        m->col = op->col;
        m->w = op->w;
        m->bias = op->bias;
        return CDL_OK;
    }
    m->own_row = cdl_alloc_array(n + 1, sizeof *m->own_row);
    m->own_col = cdl_alloc_array(n ? n : 1, sizeof *m->own_col);
    m->own_w = cdl_alloc_array(n ? n : 1, sizeof *m->own_w);
    if (!m->own_row || !m->own_col || !m->own_w) {
        view_free(m);
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory merging node '%s'", op->name);
    }
    size_t k = 0;
    for (size_t r = 0; r < n; r++) {
        m->own_row[r] = k;
        if (op->kind == HE_OP_GATHER) {
            if (op->src[r] >= 0) {
                m->own_col[k] = (uint32_t)op->src[r];
                m->own_w[k++] = 1.0;
            }
        } else { /* HE_OP_SIGN */
            m->own_col[k] = (uint32_t)r;
            m->own_w[k++] = (double)op->sign[r];
        }
    }
    m->own_row[n] = k;
    m->row = m->own_row;
    m->col = m->own_col;
    m->w = m->own_w;
    m->bias = op->kind == HE_OP_SIGN ? op->bias : NULL;
    return CDL_OK;
}

static double max_abs(const double *w, size_t n)
{
    double m = 0.0;
    for (size_t k = 0; k < n; k++)
        m = fmax(m, fabs(w[k]));
    return m;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The product of linear op b (reading a's output) and a (n_in inputs): */
typedef struct product {
    size_t *row;
    uint32_t *col;
    double *w;
    double *bias;
} product;

static void product_free(product *c)
{
    cdl_free(c->row);
    cdl_free(c->col);
    cdl_free(c->w);
    cdl_free(c->bias);
    memset(c, 0, sizeof *c);
}

/* c = b a: row o of c = sum over b's terms (j, w) of w * row j of a, bias
 * b.bias + b a.bias. *fits = 0 (c empty) as soon as c would hold more than
 * max_nnz weights. */
static cdl_status compose(const he_op *b, const csr_view *a, size_t n_in, size_t max_nnz, product *c, int *fits)
{
    const size_t n = b->n_out;
    cdl_status st = CDL_OK;
    size_t cap = b->row[n] + 1024, nnz = 0; /* grown by doubling, trimmed at the end */
    if (cap > max_nnz)
        cap = max_nnz ? max_nnz : 1;
    memset(c, 0, sizeof *c);
    *fits = 1;
    double *acc = cdl_alloc_array(n_in ? n_in : 1, sizeof *acc);
    size_t *mark = cdl_alloc_array(n_in ? n_in : 1, sizeof *mark);
    uint32_t *touched = cdl_alloc_array(n_in ? n_in : 1, sizeof *touched);
    c->row = cdl_alloc_array(n + 1, sizeof *c->row);
    c->bias = cdl_alloc_array(n ? n : 1, sizeof *c->bias);
    c->col = cdl_alloc_array(cap, sizeof *c->col);
    c->w = cdl_alloc_array(cap, sizeof *c->w);
    if (!acc || !mark || !touched || !c->row || !c->bias || !c->col || !c->w) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory merging node '%s'", b->name);
        goto done;
    }
    for (size_t i = 0; i < n_in; i++)
        mark[i] = SIZE_MAX;
    for (size_t o = 0; o < n; o++) {
        size_t nt = 0;
        double bias = 0.0;
        c->row[o] = nnz;
        for (size_t k = b->row[o]; k < b->row[o + 1]; k++) {
            const uint32_t j = b->col[k];
            const double wb = b->w[k];
            if (a->bias)
                bias += wb * a->bias[j];
            for (size_t t = a->row[j]; t < a->row[j + 1]; t++) {
                const uint32_t col = a->col[t];
                if (mark[col] != o) {
                    mark[col] = o;
                    acc[col] = 0.0;
                    touched[nt++] = col;
                }
                acc[col] += wb * a->w[t];
            }
        }
        c->bias[o] = bias + (b->bias ? b->bias[o] : 0.0);
        qsort(touched, nt, sizeof *touched, cmp_u32);
        for (size_t t = 0; t < nt; t++) {
            const double w = acc[touched[t]];
            if (w == 0.0)
                continue; /* an exact zero costs nothing */
            if (nnz == cap) {
                if (cap >= max_nnz) {
                    *fits = 0;
                    product_free(c);
                    goto done;
                }
                size_t ncap = cap > max_nnz / 2 ? max_nnz : 2 * cap;
                uint32_t *nc = cdl_alloc_array(ncap, sizeof *nc);
                double *nw = cdl_alloc_array(ncap, sizeof *nw);
                if (!nc || !nw) {
                    cdl_free(nc);
                    cdl_free(nw);
                    st = cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory merging node '%s' (%zu weights)",
                                  b->name, ncap);
                    goto done;
                }
                memcpy(nc, c->col, nnz * sizeof *nc);
                memcpy(nw, c->w, nnz * sizeof *nw);
                cdl_free(c->col);
                cdl_free(c->w);
                c->col = nc;
                c->w = nw;
                cap = ncap;
            }
            c->col[nnz] = touched[t];
            c->w[nnz++] = w;
        }
    }
    c->row[n] = nnz;
    if (cap - nnz > cap / 8) { /* the plan keeps these arrays: no slack */
        uint32_t *nc = cdl_alloc_array(nnz ? nnz : 1, sizeof *nc);
        double *nw = cdl_alloc_array(nnz ? nnz : 1, sizeof *nw);
        if (nc && nw) {
            memcpy(nc, c->col, nnz * sizeof *nc);
            memcpy(nw, c->w, nnz * sizeof *nw);
            cdl_free(c->col);
            cdl_free(c->w);
            c->col = nc;
            c->w = nw;
        } else { /* keep the larger arrays */
            cdl_free(nc);
            cdl_free(nw);
        }
    }
done:
    if (st != CDL_OK)
        product_free(c);
    cdl_free(acc);
    cdl_free(mark);
    cdl_free(touched);
    return st;
}

/* How op looks in a chain: its chain of nodes, or its name. */
static size_t chain_text(const he_op *op, char *buf, size_t cap)
{
    const char *s = op->chain ? op->chain : op->name;
    const char *tag = op->kind == HE_OP_GATHER ? " (move)" : op->kind == HE_OP_SIGN ? " (+-1 affine)" : "";
    size_t len = strlen(s) + strlen(tag);
    if (buf && cap > len) {
        memcpy(buf, s, strlen(s));
        memcpy(buf + strlen(s), tag, strlen(tag) + 1);
    }
    return len;
}

/* Copy at most cap - 1 bytes of s to dst at *at. */
static void put_str(char *dst, size_t cap, size_t *at, const char *s)
{
    size_t n = strlen(s);
    if (*at + n >= cap)
        n = cap - 1 - *at;
    memcpy(dst + *at, s, n);
    *at += n;
    dst[*at] = '\0';
}

/* Record that op a (the producer of b's input) is folded into the linear op
 * b: b now reads a's input, its chain and name say so, and a becomes an
 * unused op. b's matrix is the caller's business. */
static cdl_status note_absorbed(const cdl_nn_graph *g, he_op *a, he_op *b)
{
    size_t la = chain_text(a, NULL, 0), lb = chain_text(b, NULL, 0);
    char *chain = cdl_alloc_array(la + lb + 5, 1);
    if (!chain)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory merging node '%s'", b->name);
    chain_text(a, chain, la + 1);
    memcpy(chain + la, " -> ", 4);
    chain_text(b, chain + la + 4, lb + 1);
    cdl_free(b->chain);
    b->chain = chain;
    b->in_value = a->in_value;
    b->n_in = a->n_in;
    b->first_node = a->first_node;
    if (a->kind == HE_OP_LINEAR) {
        b->n_linear += a->n_linear;
        b->n_moves += a->n_moves;
        /* no single layer shape any more: group_rows picks the grouping */
        const cdl_nn_shape *s = &g->nodes[b->node].out_shape;
        b->grp_choose = 1;
        b->grp_channels = s->rank == 3 ? (size_t)s->dims[0] : 0;
        b->kind_name = "merged";
    } else {
        b->n_moves++;
    }
    /* display name: first node + last node */
    size_t at = 0;
    b->name[0] = '\0';
    put_str(b->name, sizeof b->name, &at, g->nodes[b->first_node].name);
    put_str(b->name, sizeof b->name, &at, "+");
    put_str(b->name, sizeof b->name, &at, g->nodes[b->node].name);
    /* a is gone: an unused op, like a node the output does not depend on */
    int node = a->node;
    cdl_he_op_clear(a);
    memset(a, 0, sizeof *a);
    a->kind = HE_OP_SKIP;
    a->node = node;
    a->first_node = node;
    snprintf(a->name, sizeof a->name, "%s", g->nodes[node].name);
    return CDL_OK;
}

static int is_move(const he_op *op) { return op->kind == HE_OP_GATHER || op->kind == HE_OP_SIGN; }

/* Value v > 0 is computed by op v - 1, read by exactly one op and is not the
 * result: may it be folded away? */
static int foldable(const cdl_he_plan *p, const size_t *readers, int v)
{
    return v > 0 && (size_t)v <= p->n_ops && readers[v] == 1 && v != p->output_value &&
           p->ops[v - 1].out_value == v;
}

/* c = m c for the product so far (a linear op's matrix) and m a producer. */
static cdl_status compose_into(const he_op *cur, const he_op *m, size_t max_nnz, product *c, int *fits)
{
    csr_view mv;
    CDL_TRY(view_of(m, &mv));
    cdl_status st = compose(cur, &mv, m->n_in, max_nnz, c, fits);
    view_free(&mv);
    return st;
}

/* Try to fold what feeds linear op b: a run of moves (single readers), then
 * a linear op under the blow-up guard; or a run of moves that reads the
 * input batch. *done = 1 when nothing (more) can be folded. */
static cdl_status fold_once(cdl_he_plan *p, const cdl_nn_graph *g, size_t *readers, uint64_t total_nnz, he_op *b,
                            int *done)
{
    *done = 1;
    int u = b->in_value;
    size_t n_moves = 0;
    while (foldable(p, readers, u) && is_move(&p->ops[u - 1])) {
        u = p->ops[u - 1].in_value;
        n_moves++;
    }
    he_op *lin = foldable(p, readers, u) && p->ops[u - 1].kind == HE_OP_LINEAR ? &p->ops[u - 1] : NULL;
    if (!lin && !(u == 0 && n_moves > 0))
        return CDL_OK; /* moves that only lead to a non-linear op stay: folding them gains nothing */
    if (!lin && readers[0] > 1 && p->opt.packing != CDL_HE_PACKING_BATCH)
        return CDL_OK; /* moves of an input other ops read too (test-time augmentation): in slots packing the
                          client makes them (client_input, he_slots.c), and the linear ops of the branches
                          can then have the same diagonals (twins, he_schedule.c) */
    /* the product, nearest producer first, in a scratch op holding b's matrix */
    he_op cur = *b;
    product c = {0}, prev = {0};
    cdl_status st = CDL_OK;
    int fits = 1;
    for (int v = b->in_value; v != u && fits; v = p->ops[v - 1].in_value) {
        CDL_TRY_GOTO(st, compose_into(&cur, &p->ops[v - 1], SIZE_MAX, &c, &fits), out);
        product_free(&prev);
        prev = c;
        memset(&c, 0, sizeof c);
        cur.row = prev.row;
        cur.col = prev.col;
        cur.w = prev.w;
        cur.bias = prev.bias;
    }
    if (lin) { /* the blow-up guard (he_merge.h) */
        const size_t nnz_cur = cur.row[cur.n_out], nnz_lin = lin->row[lin->n_out];
        uint64_t work = 0;
        for (size_t k = 0; k < nnz_cur; k++)
            work += lin->row[cur.col[k] + 1] - lin->row[cur.col[k]];
        uint64_t limit = (uint64_t)CDL_HE_MERGE_FACTOR * (nnz_lin + nnz_cur);
        if (limit < total_nnz / CDL_HE_MERGE_SMALL_SHARE)
            limit = total_nnz / CDL_HE_MERGE_SMALL_SHARE;
        if (limit > CDL_HE_MERGE_MAX_NNZ)
            limit = CDL_HE_MERGE_MAX_NNZ;
        if (work > CDL_HE_MERGE_MAX_WORK)
            goto out; /* too costly to even compute: leave b as it is */
        CDL_TRY_GOTO(st, compose_into(&cur, lin, (size_t)limit, &c, &fits), out);
        if (!fits)
            goto out; /* the product would blow up: leave b (and the moves before it) as they are */
        /* and its weights must fit the runtime's 62-bit encoding as well as the parts' did */
        double wmax = CDL_HE_MERGE_MAX_WEIGHT, wc = 0.0;
        wmax = fmax(wmax, max_abs(cur.w, nnz_cur));
        wmax = fmax(wmax, max_abs(lin->w, nnz_lin));
        wc = max_abs(c.w, c.row[cur.n_out]);
        if (!(wc <= wmax))
            goto out;
        product_free(&prev);
        prev = c;
        memset(&c, 0, sizeof c);
    }
    /* commit: b takes the product, the folded ops are retired nearest first */
    for (int v = b->in_value; v != u;) {
        he_op *a = &p->ops[v - 1];
        const int next = a->in_value;
        CDL_TRY_GOTO(st, note_absorbed(g, a, b), out);
        readers[v] = 0; /* a no longer runs; b reads a's input instead */
        v = next;
    }
    if (lin) {
        CDL_TRY_GOTO(st, note_absorbed(g, lin, b), out);
        readers[u] = 0;
    }
    cdl_free(b->row);
    cdl_free(b->col);
    cdl_free(b->w);
    cdl_free(b->bias);
    b->row = prev.row;
    b->col = prev.col;
    b->w = prev.w;
    b->bias = prev.bias;
    memset(&prev, 0, sizeof prev);
    *done = 0;
out:
    product_free(&c);
    product_free(&prev);
    return st;
}

cdl_status cdl_he_merge_linear(cdl_he_plan *p, const cdl_nn_graph *g)
{
    if (!merge_enabled)
        return CDL_OK;
    size_t *readers = cdl_calloc_array(p->n_values, sizeof *readers);
    if (!readers)
        return cdl_fail(CDL_ERR_NO_MEMORY, "he plan: out of memory");
    /* readers from the graph's edges (every input of every node that runs), not
     * only op->in_value: an op with a second input must keep that value too */
    uint64_t total_nnz = 0;
    for (size_t i = 0; i < p->n_ops; i++) {
        const he_op *op = &p->ops[i];
        if (op->kind == HE_OP_SKIP)
            continue;
        const cdl_nn_node *nd = &g->nodes[op->node];
        for (int k = 0; k < nd->n_inputs && k < 2; k++)
            if (nd->inputs[k] >= 0 && (size_t)nd->inputs[k] < p->n_values)
                readers[nd->inputs[k]]++;
        if (op->kind == HE_OP_LINEAR)
            total_nnz += op->row[op->n_out];
    }
    cdl_status st = CDL_OK;
    /* in graph order, so that a producer has taken in its own chain first */
    for (size_t i = 0; i < p->n_ops && st == CDL_OK; i++) {
        he_op *b = &p->ops[i];
        if (b->kind != HE_OP_LINEAR)
            continue;
        for (int done = 0; !done && st == CDL_OK;)
            st = fold_once(p, g, readers, total_nnz, b, &done);
    }
    cdl_free(readers);
    return st;
}
