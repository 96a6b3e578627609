/*
 * test_he_slots.c: slots packing (one image across the slots, rotations)
 * against the plaintext runtime cdl_nn_run, on hand-built networks with
 * random weights: dense layers (rectangular, several input ciphertexts),
 * convolutions (odd sizes, stride 2, padding, channel counts that need
 * several ciphertexts), average pooling, pad, flatten, a residual add and
 * polynomial activations. Small rings (N = 2^11 or 2^12, allow_insecure)
 * keep the cases fast; the code paths are the same as at secure sizes.
 * Also: a batch of several images sharing a ciphertext, keys missing a
 * rotation refused, a batch made for the other packing refused, and the
 * Galois steps of the plan being exactly the ones the runtime uses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "compile/he_plan.h" /* cdl_he_slots_naf */
#include "test_he_util.h"

#define REL_TOL 1e-3

static double rnd(cdl_rng *r) { return (double)(cdl_rng_u64(r) >> 11) / 9007199254740992.0 * 2.0 - 1.0; }

/* weights of every node, freed at the end of a test */
static double *pool[TG_MAX_NODES * 2];
static size_t n_pool;

static double *rand_array(cdl_rng *r, size_t n, double amp)
{
    double *a = malloc(n * sizeof *a);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a[i] = rnd(r) * amp;
    pool[n_pool++] = a;
    return a;
}

static void free_pool(void)
{
    for (size_t i = 0; i < n_pool; i++)
        free(pool[i]);
    n_pool = 0;
}

static const cdl_nn_shape *last_shape(test_graph *t)
{
    return t->g.n_nodes ? &t->nodes[t->g.n_nodes - 1].out_shape : &t->g.input_shape;
}

static cdl_nn_node *add_conv(test_graph *t, cdl_rng *r, int O, int k, int stride, int pad)
{
    const cdl_nn_shape *in = last_shape(t);
    const int64_t C = in->dims[0], H = in->dims[1], W = in->dims[2];
    const int64_t OH = (H + 2 * pad - k) / stride + 1, OW = (W + 2 * pad - k) / stride + 1;
    cdl_nn_node *nd = tg_add(t, CDL_NN_CONV, "conv", tg_shape3(O, OH, OW));
    nd->kernel[0] = nd->kernel[1] = k;
    nd->stride[0] = nd->stride[1] = stride;
    for (int i = 0; i < 4; i++)
        nd->pads[i] = pad;
    nd->n_weight = (size_t)(O * C * k * k);
    nd->weight = rand_array(r, nd->n_weight, 1.0 / sqrt((double)(C * k * k)));
    nd->n_bias = (size_t)O;
    nd->bias = rand_array(r, nd->n_bias, 0.2);
    return nd;
}

static void add_pool(test_graph *t, int k, int stride)
{
    const cdl_nn_shape *in = last_shape(t);
    const int64_t OH = (in->dims[1] - k) / stride + 1, OW = (in->dims[2] - k) / stride + 1;
    cdl_nn_node *nd = tg_add(t, CDL_NN_AVGPOOL, "pool", tg_shape3(in->dims[0], OH, OW));
    nd->kernel[0] = nd->kernel[1] = k;
    nd->stride[0] = nd->stride[1] = stride;
    nd->count_include_pad = 1;
}

static void add_pad(test_graph *t, int p)
{
    const cdl_nn_shape *in = last_shape(t);
    cdl_nn_node *nd = tg_add(t, CDL_NN_PAD, "pad", tg_shape3(in->dims[0], in->dims[1] + 2 * p, in->dims[2] + 2 * p));
    for (int i = 0; i < 4; i++)
        nd->pads[i] = p;
}

static double quad[3] = {0.1, 0.5, 0.25};
static double cubic[4] = {0.0, 0.6, 0.2, -0.05};

static void add_act(test_graph *t, int cubic_act)
{
    cdl_nn_node *nd = tg_add(t, CDL_NN_POLY, "act", *last_shape(t));
    nd->coeffs = cubic_act ? cubic : quad;
    nd->degree = cubic_act ? 3 : 2;
}

static void add_dense(test_graph *t, cdl_rng *r, int out)
{
    const cdl_nn_shape *in = last_shape(t);
    if (in->rank != 1)
        tg_add(t, CDL_NN_RESHAPE, "flatten", tg_shape1((int64_t)cdl_nn_shape_numel(in)));
    const size_t n_in = cdl_nn_shape_numel(last_shape(t));
    cdl_nn_node *nd = tg_add(t, CDL_NN_DENSE, "fc", tg_shape1(out));
    nd->n_weight = (size_t)out * n_in;
    nd->weight = rand_array(r, nd->n_weight, 1.0 / sqrt((double)n_in));
    nd->n_bias = (size_t)out;
    nd->bias = rand_array(r, nd->n_bias, 0.2);
}

static int special_primes; /* 0 = automatic */
static int max_keys;       /* 0 = no limit */
static uint64_t max_bytes; /* 0 = no limit */

static cdl_he_plan *compile_slots(const cdl_nn_graph *g, int log_n)
{
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = log_n;
    opt.special_primes = special_primes;
    opt.max_galois_keys = max_keys;
    opt.max_galois_bytes = max_bytes;
    opt.allow_insecure = 1;
    opt.packing = CDL_HE_PACKING_SLOTS;
    cdl_he_plan *p = NULL;
    if (cdl_he_plan_new(g, &opt, &p) != CDL_OK)
        fail_msg("cdl_he_plan_new: %s", cdl_last_error());
    assert_int_equal(cdl_he_plan_packing(p), CDL_HE_PACKING_SLOTS);
    return p;
}

/* Encrypt n random images, evaluate in slots packing, compare with cdl_nn_run. */
static void check_slots(const char *what, test_graph *t, int log_n, size_t n)
{
    cdl_nn_analyze(&t->g);
    cdl_he_plan *plan = compile_slots(&t->g, log_n);
    tg_he_session s;
    tg_he_open(plan, &t->g, n, &s);
    double den = 0.0;
    for (size_t i = 0; i < s.n * s.nout; i++)
        if (fabs(s.ref[i]) > den)
            den = fabs(s.ref[i]);
    assert_true(den > 0.0);
    const double rel = tg_he_max_error(&s) / den;
    size_t steps = 0;
    cdl_he_plan_galois_steps(plan, NULL, &steps);
    printf("%-40s %zu image(s), %zu per ct, %zu input ct, %zu Galois steps, levels %d: max rel err %.2e\n", what, n,
           cdl_he_plan_batch_capacity(plan), cdl_he_plan_input_ciphertexts(plan), steps, cdl_he_plan_levels(plan),
           rel);
    assert_true(rel < REL_TOL);
    tg_he_close(&s);
    cdl_he_plan_free(plan);
}

static void test_dense(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(1);
    test_graph t;
    tg_init(&t, tg_shape1(37));
    add_dense(&t, r, 11); /* rectangular, fewer outputs */
    add_act(&t, 0);
    add_dense(&t, r, 53); /* more outputs than inputs */
    add_act(&t, 1);
    add_dense(&t, r, 5);
    check_slots("dense 37-11-53-5", &t, 11, 1);
    free_pool();
    cdl_rng_free(r);
}

/* conv 3x3 pad 1 (odd size), conv 3x3 stride 2, average pool, dense */
static void test_conv_stride(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(2);
    test_graph t;
    tg_init(&t, tg_shape3(2, 9, 9));
    add_conv(&t, r, 3, 3, 1, 1);
    add_act(&t, 0);
    add_conv(&t, r, 5, 3, 2, 1); /* 9 -> 5, gap 2 */
    add_act(&t, 0);
    add_pool(&t, 2, 1);          /* 5 -> 4 */
    add_dense(&t, r, 4);
    check_slots("conv s1, conv s2, pool, dense", &t, 11, 1);
    special_primes = 3; /* hybrid key switching with digits of 3 primes */
    check_slots("the same, 3 special primes", &t, 11, 1);
    special_primes = 0;
    max_keys = 2 * 9 + 1 + 3; /* +-2^k at N/2 = 1024, and the 3 most used steps: the rest composed */
    cdl_he_plan *plan = compile_slots(&t.g, 11);
    size_t steps = 0;
    cdl_he_plan_galois_steps(plan, NULL, &steps);
    assert_int_equal(steps, (size_t)max_keys);
    cdl_he_plan_free(plan);
    check_slots("the same, 22 Galois keys (steps composed)", &t, 11, 1);
    max_keys = 2 * 9 + 1 - 1; /* fewer than the +-2^k basis: refused */
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 11;
    opt.allow_insecure = 1;
    opt.packing = CDL_HE_PACKING_SLOTS;
    opt.max_galois_keys = max_keys;
    assert_int_equal(cdl_he_plan_new(&t.g, &opt, &plan), CDL_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(cdl_last_error(), "allow at least"));
    max_keys = 0;
    /* a byte budget: 70% of the unlimited keys' bytes; the keys fit it, some steps are composed, and the
     * results are still right */
    plan = compile_slots(&t.g, 11);
    const uint64_t all = cdl_he_plan_galois_key_bytes(plan);
    cdl_he_plan_free(plan);
    max_bytes = all * 7 / 10;
    plan = compile_slots(&t.g, 11);
    printf("byte budget %llu of %llu: keys take %llu\n", (unsigned long long)max_bytes, (unsigned long long)all,
           (unsigned long long)cdl_he_plan_galois_key_bytes(plan));
    assert_true(cdl_he_plan_galois_key_bytes(plan) <= max_bytes);
    assert_true(cdl_he_plan_galois_key_bytes(plan) > max_bytes / 2); /* the budget is used, not ignored */
    cdl_he_plan_free(plan);
    check_slots("the same, keys within 70% of their bytes", &t, 11, 1);
    max_bytes = all / 50; /* below the +-2^k basis: refused, saying how much it needs */
    opt.max_galois_keys = 0;
    opt.max_galois_bytes = max_bytes;
    assert_int_equal(cdl_he_plan_new(&t.g, &opt, &plan), CDL_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(cdl_last_error(), "allow at least that much"));
    max_bytes = 0;
    free_pool();
    cdl_rng_free(r);
}

/* tensors larger than the slots: several ciphertexts per tensor */
static void test_multi_ciphertext(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(3);
    test_graph t;
    tg_init(&t, tg_shape3(1, 12, 12));
    add_conv(&t, r, 9, 3, 1, 1);  /* 9 x 144 = 1296 values > 1024 slots */
    add_act(&t, 0);
    add_conv(&t, r, 12, 5, 2, 2); /* 12 x 6 x 6 */
    add_act(&t, 1);
    add_pad(&t, 1);               /* 12 x 8 x 8 */
    add_pool(&t, 2, 2);           /* 12 x 4 x 4 */
    add_dense(&t, r, 3);
    check_slots("multi-ciphertext conv, pad, pool", &t, 11, 1);
    free_pool();
    cdl_rng_free(r);
}

static double one = 1.0;

/* x + f(x): a residual block, and a flip (slice) before the first conv */
static void test_residual_and_slice(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(4);
    test_graph t;
    tg_init(&t, tg_shape3(2, 7, 7));
    cdl_nn_node *nd = tg_add(&t, CDL_NN_SLICE, "flip", tg_shape3(2, 7, 7));
    nd->slice_start[0] = 0;
    nd->slice_step[0] = 1;
    nd->slice_start[1] = 0;
    nd->slice_step[1] = 1;
    nd->slice_start[2] = 6; /* mirror image: x -> 6 - x */
    nd->slice_step[2] = -1;
    add_conv(&t, r, 3, 3, 1, 1);
    add_act(&t, 0);
    const int x = (int)t.g.n_nodes; /* the block's input */
    add_conv(&t, r, 3, 3, 1, 1);
    add_act(&t, 0);
    add_conv(&t, r, 3, 3, 1, 1);
    nd = tg_add(&t, CDL_NN_ADD, "residual", tg_shape3(3, 7, 7));
    nd->n_inputs = 2;
    nd->inputs[1] = x;
    nd->coeffs = &one; /* alpha */
    add_act(&t, 0);
    add_pool(&t, 7, 7); /* global average pool */
    add_dense(&t, r, 4);
    check_slots("slice, residual block, global pool", &t, 11, 1);
    free_pool();
    cdl_rng_free(r);
}

/* Test-time augmentation: the same convolutions on the input and on its mirror image, averaged.
 * The client encrypts the mirror image itself (a client-side move), so the two branches' linear ops
 * have the same diagonals and run together, each diagonal encoded once (twins, he_schedule.c). The
 * result must equal the plaintext model, and bit for bit the same plan run op by op. */
static void test_twin_branches(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(9);
    test_graph t;
    tg_init(&t, tg_shape3(2, 6, 6));
    cdl_nn_node *nd = tg_add(&t, CDL_NN_SLICE, "flip", tg_shape3(2, 6, 6));
    nd->slice_step[0] = nd->slice_step[1] = 1;
    nd->slice_start[2] = 5; /* mirror image: x -> 5 - x */
    nd->slice_step[2] = -1;
    const size_t first_b = t.g.n_nodes;
    add_conv(&t, r, 3, 3, 1, 1);
    add_act(&t, 0);
    add_conv(&t, r, 3, 3, 1, 1);
    const int end_b = (int)t.g.n_nodes; /* the mirror branch's value */
    for (size_t k = 0; k < 3; k++) {    /* the same nodes (same weight arrays) on the input itself */
        const size_t i = t.g.n_nodes++;
        t.nodes[i] = t.nodes[first_b + k];
        snprintf(t.nodes[i].name, sizeof t.nodes[i].name, "%s_a%zu", t.nodes[first_b + k].name, k);
        t.nodes[i].inputs[0] = k == 0 ? 0 : (int)i;
    }
    nd = tg_add(&t, CDL_NN_ADD, "average", tg_shape3(3, 6, 6));
    nd->n_inputs = 2;
    nd->inputs[1] = end_b;
    nd->coeffs = &one;
    add_act(&t, 0);
    add_pool(&t, 6, 6);
    add_dense(&t, r, 4);
    cdl_nn_analyze(&t.g);
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 11;
    opt.allow_insecure = 1;
    opt.packing = CDL_HE_PACKING_SLOTS;
    cdl_he_plan *together = NULL, *apart = NULL;
    if (cdl_he_plan_new(&t.g, &opt, &together) != CDL_OK)
        fail_msg("cdl_he_plan_new: %s", cdl_last_error());
    opt.separate_twins = 1;
    assert_int_equal(cdl_he_plan_new(&t.g, &opt, &apart), CDL_OK);
    assert_int_equal(together->twin_steps, 2); /* conv 1 and conv 2 of both branches */
    assert_int_equal(apart->twin_steps, 0);
    assert_int_equal(cdl_he_plan_input_ciphertexts(together), 2); /* the image and its mirror */
    size_t client_moves = 0;
    for (size_t i = 0; i < together->n_ops; i++)
        client_moves += together->ops[i].client_input;
    assert_int_equal(client_moves, 1);
    tg_he_session s;
    tg_he_open(together, &t.g, 1, &s);
    double den = 0.0;
    for (size_t i = 0; i < s.nout; i++)
        den = fmax(den, fabs(s.ref[i]));
    const double rel = tg_he_max_error(&s) / den;
    printf("%-40s max rel err %.2e\n", "twin branches (mirror TTA)", rel);
    assert_true(rel < REL_TOL);
    double *op_by_op = malloc(s.nout * sizeof *op_by_op);
    assert_non_null(op_by_op);
    tg_he_evaluate(apart, &s, op_by_op);
    assert_memory_equal(op_by_op, s.he, s.nout * sizeof *op_by_op);
    free(op_by_op);
    tg_he_close(&s);
    cdl_he_plan_free(together);
    cdl_he_plan_free(apart);
    free_pool();
    cdl_rng_free(r);
}

/* y = s x^2 + b with per-channel signs s (HerPN-style affine after a square):
 * the signs live in the layout; a residual add of two such tensors with
 * different signs aligns the shallower one with a +-1 plaintext. */
static void add_signed_affine(test_graph *t, cdl_rng *r)
{
    const cdl_nn_shape *in = last_shape(t);
    const size_t n = cdl_nn_shape_numel(in), hw = (size_t)(in->dims[1] * in->dims[2]);
    cdl_nn_node *nd = tg_add(t, CDL_NN_AFFINE, "signed", *in);
    nd->n_weight = nd->n_bias = n;
    nd->weight = rand_array(r, n, 1.0);
    nd->bias = rand_array(r, n, 0.3);
    for (size_t i = 0; i < n; i++) /* one sign per channel, both signs present */
        nd->weight[i] = ((i / hw) % 2 == 0) == (nd->weight[i - i % hw] > 0) ? 1.0 : -1.0;
    nd->weight[0] = 1.0;
    nd->weight[hw] = -1.0;
}

static void test_signed_affines(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(7);
    test_graph t;
    tg_init(&t, tg_shape3(2, 6, 6));
    add_conv(&t, r, 3, 3, 1, 1);
    tg_add(&t, CDL_NN_SQUARE, "sq", *last_shape(&t));
    add_signed_affine(&t, r);
    const int a = (int)t.g.n_nodes;
    add_conv(&t, r, 3, 3, 1, 1);
    tg_add(&t, CDL_NN_SQUARE, "sq2", *last_shape(&t));
    add_signed_affine(&t, r);
    cdl_nn_node *nd = tg_add(&t, CDL_NN_ADD, "residual", *last_shape(&t));
    nd->n_inputs = 2;
    nd->inputs[1] = a;
    nd->coeffs = &one;
    add_conv(&t, r, 2, 3, 2, 1); /* reads the signed slots: the signs go into its weights */
    add_dense(&t, r, 3);
    cdl_nn_analyze(&t.g);
    cdl_he_plan *plan = compile_slots(&t.g, 11);
    char *text = NULL;
    assert_int_equal(cdl_he_plan_describe(plan, &text), CDL_OK);
    assert_non_null(strstr(text, "aligned by a +-1 plaintext")); /* the path this test is for */
    cdl_he_string_free(text);
    cdl_he_plan_free(plan);
    check_slots("signed affines, residual of two signs", &t, 11, 1);
    free_pool();
    cdl_rng_free(r);
}

/* several images share a ciphertext: each must get its own logits */
static void test_replicated_images(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(5);
    test_graph t;
    tg_init(&t, tg_shape3(1, 6, 6));
    add_conv(&t, r, 2, 3, 2, 1);
    add_act(&t, 0);
    add_dense(&t, r, 5);
    cdl_nn_analyze(&t.g);
    cdl_he_plan *plan = compile_slots(&t.g, 11);
    const size_t cap = cdl_he_plan_batch_capacity(plan);
    assert_true(cap >= 4);
    cdl_he_plan_free(plan);
    check_slots("images sharing a ciphertext", &t, 11, cap);
    free_pool();
    cdl_rng_free(r);
}

static double quad_c0[3] = {0.0, 0.5, 0.25}; /* no constant: zero slots stay zero */

/* Linear ops of a plan that use the cyclic method (input replicated). */
static size_t cyclic_ops(const cdl_he_plan *p)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n_ops; i++)
        n += p->ops[i].kind == HE_OP_LINEAR && p->ops[i].sl && p->ops[i].sl->cyc_n;
    return n;
}

/* Late convolutions over channels spanning several frames of a small map
 * take the cyclic method when their input is zero outside its slots (no
 * constant added everywhere); with a constant term the same network must
 * not, and both must match the plaintext runtime, also with the replication
 * step composed of other keys. */
static void test_cyclic_diagonals(void **state)
{
    (void)state;
    for (int constant = 0; constant < 2; constant++) {
        cdl_rng *r = tg_seeded_rng(8);
        test_graph t;
        tg_init(&t, tg_shape3(3, 8, 8));
        add_conv(&t, r, 8, 3, 1, 1);  /* 8 x 8 x 8: 512 slots */
        add_act(&t, 0);
        t.nodes[t.g.n_nodes - 1].coeffs = constant ? quad : quad_c0;
        add_conv(&t, r, 16, 3, 2, 1); /* 16 x 4 x 4, gap 2: 4 frames of 64 slots */
        add_act(&t, 0);
        t.nodes[t.g.n_nodes - 1].coeffs = constant ? quad : quad_c0;
        const size_t res = t.g.n_nodes - 1;
        add_conv(&t, r, 16, 3, 1, 1); /* 16 -> 16 on 4 x 4: frame differences mod 4 */
        add_act(&t, 0);
        t.nodes[t.g.n_nodes - 1].coeffs = quad_c0;
        cdl_nn_node *sum = tg_add(&t, CDL_NN_ADD, "residual", *last_shape(&t));
        sum->n_inputs = 2;
        sum->inputs[1] = (int)res + 1; /* value index: node + 1 */
        sum->coeffs = &one;            /* alpha */
        add_conv(&t, r, 16, 3, 1, 1); /* reads the sum of two clean values */
        add_act(&t, 0);
        add_dense(&t, r, 4);
        cdl_nn_analyze(&t.g);
        cdl_he_plan *plan = compile_slots(&t.g, 11);
        const size_t cyc = cyclic_ops(plan);
        printf("constant term %d: %zu cyclic linear op(s)\n", constant, cyc);
        if (constant)
            assert_int_equal(cyc, 0);
        else
            assert_true(cyc >= 2); /* both 4 x 4 convolutions */
        cdl_he_plan_free(plan);
        check_slots(constant ? "small maps, constant terms" : "small maps, cyclic diagonals", &t, 11, 1);
        if (!constant) {
            max_keys = 2 * 9 + 1; /* only +-2^k: the replication step is composed too */
            check_slots("cyclic diagonals, +-2^k keys only", &t, 11, 1);
            max_keys = 0;
        }
        free_pool();
        cdl_rng_free(r);
    }
}

/* The same model in batch packing cannot read a slots batch, keys missing a
 * step are refused before any work, and the weight cache gives the same
 * logits as encoding on the fly. */
static void test_refusals_and_cache(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(6);
    test_graph t;
    tg_init(&t, tg_shape3(1, 8, 8));
    add_conv(&t, r, 3, 3, 2, 1);
    add_act(&t, 0);
    add_dense(&t, r, 4);
    cdl_nn_analyze(&t.g);
    cdl_he_plan *plan = compile_slots(&t.g, 11);
    tg_he_session s;
    tg_he_open(plan, &t.g, 1, &s);
    const double err = tg_he_max_error(&s);
    assert_true(err < 1e-3);
    /* batch packing of the same model: another ciphertext count */
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 11;
    opt.allow_insecure = 1;
    cdl_he_plan *batch = NULL;
    assert_int_equal(cdl_he_plan_new(&t.g, &opt, &batch), CDL_OK);
    cdl_he_batch *out = NULL;
    assert_int_equal(cdl_he_evaluate_keys(batch, s.ctx, s.rlk, NULL, s.enc, NULL, NULL, &out), CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "packing"));
    cdl_he_plan_free(batch);
    /* keys without one of the steps */
    const int *steps = NULL;
    size_t n_steps = 0;
    cdl_he_plan_galois_steps(plan, &steps, &n_steps);
    assert_true(n_steps >= 2);
    cdl_ckks_galois_keys *partial = NULL;
    assert_int_equal(cdl_ckks_keygen_galois(s.ctx, s.sk, steps + 1, n_steps - 1, 0, s.rng, &partial), CDL_OK);
    assert_int_equal(cdl_he_evaluate_keys(plan, s.ctx, s.rlk, partial, s.enc, NULL, NULL, &out), CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "lack rotation step"));
    assert_int_equal(cdl_he_evaluate_keys(plan, s.ctx, s.rlk, NULL, s.enc, NULL, NULL, &out), CDL_ERR_EXHAUSTED);
    cdl_ckks_galois_keys_free(partial);
    /* every step of the plan is one the evaluation uses: with keys for all of
     * them it runs (above); the steps are sorted, distinct and in 1..N/2-1 */
    for (size_t i = 0; i < n_steps; i++) {
        assert_true(steps[i] >= 1 && (size_t)steps[i] < cdl_ckks_slots(s.ctx));
        if (i)
            assert_true(steps[i] > steps[i - 1]);
    }
    /* weights kept between evaluations: the same logits, twice */
    cdl_he_plan *cached = NULL;
    opt.packing = CDL_HE_PACKING_SLOTS;
    opt.cache_weights = 1;
    assert_int_equal(cdl_he_plan_new(&t.g, &opt, &cached), CDL_OK);
    assert_true(cdl_he_plan_weight_bytes(cached) > 0);
    double *a = malloc(s.n * s.nout * sizeof *a), *b = malloc(s.n * s.nout * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    tg_he_evaluate(cached, &s, a); /* fills the cache */
    tg_he_evaluate(cached, &s, b); /* reads it */
    for (size_t i = 0; i < s.n * s.nout; i++) {
        assert_true(a[i] == b[i]);       /* the same plaintexts: bit-identical */
        assert_true(fabs(a[i] - s.he[i]) < 1e-6); /* and the encodings equal those made on the fly */
    }
    free(a);
    free(b);
    cdl_he_plan_free(cached);
    tg_he_close(&s);
    cdl_he_plan_free(plan);
    free_pool();
    cdl_rng_free(r);
}

/* Every PyTorch-exported fixture (tests/fixtures/onnx, written by
 * make_fixtures.py: unfused BatchNorm, Pow, Pad before AveragePool,
 * view/Reshape, slices, residuals, trailing softmax...) that batch packing
 * compiles runs in slots packing with the same logits as cdl_nn_run, or is
 * refused with a message naming the node. */
static void test_pytorch_fixtures(void **state)
{
    (void)state;
    static const char *const names[] = {
        "bn_after_activation",   "channel_quadratics_opset17", "conv_bn_pow_view",  "conv_pad_stride",
        "functional_logsoftmax_opset13", "he_avgpool_ceil_logsoftmax_opset17", "he_softmax_opset13",
        "matmul_residual",       "mlp_poly_bn1d",              "pool_pad_global",   "residual_avgpool_opset17",
        "slice_crop_opset9",     "slice_moves_opset13",        "slice_negative_steps_opset13",
        "variants_a_opset13",    "variants_b_opset17"};
    size_t ran = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/tests/fixtures/onnx/%s.onnx", tg_source_dir(), names[i]);
        cdl_nn_graph *g = NULL;
        if (cdl_nn_load_file(path, &g) != CDL_OK)
            fail_msg("%s: %s", path, cdl_last_error());
        cdl_he_options opt;
        cdl_he_options_default(&opt);
        opt.log_n = 12;
        opt.allow_insecure = 1;
        cdl_he_plan *batch = NULL;
        if (cdl_he_plan_new(g, &opt, &batch) != CDL_OK) { /* not an HE model (max pool, ...) */
            cdl_nn_graph_free(g);
            continue;
        }
        cdl_he_plan_free(batch);
        opt.packing = CDL_HE_PACKING_SLOTS;
        cdl_he_plan *plan = NULL;
        if (cdl_he_plan_new(g, &opt, &plan) != CDL_OK) {
            printf("%-40s refused: %s\n", names[i], cdl_last_error());
            assert_non_null(strstr(cdl_last_error(), "node '"));
            cdl_nn_graph_free(g);
            continue;
        }
        tg_he_session s;
        tg_he_open(plan, g, cdl_he_plan_batch_capacity(plan) >= 2 ? 2 : 1, &s);
        double den = 0.0;
        for (size_t k = 0; k < s.n * s.nout; k++)
            den = fabs(s.ref[k]) > den ? fabs(s.ref[k]) : den;
        const double rel = tg_he_max_error(&s) / (den > 0 ? den : 1.0);
        printf("%-40s slots: %zu input ct, %zu per ct, max rel err %.2e\n", names[i],
               cdl_he_plan_input_ciphertexts(plan), cdl_he_plan_batch_capacity(plan), rel);
        assert_true(rel < REL_TOL);
        ran++;
        tg_he_close(&s);
        cdl_he_plan_free(plan);
        cdl_nn_graph_free(g);
    }
    assert_true(ran >= 8);
}

/* --packing auto: slots when batch packing does not fit the memory budget or
 * the request is small, batch for full batches; the plan says why. */
static void test_auto_packing(void **state)
{
    (void)state;
    cdl_rng *r = tg_seeded_rng(8);
    test_graph t;
    tg_init(&t, tg_shape3(1, 8, 8));
    add_conv(&t, r, 4, 3, 2, 1);
    add_act(&t, 0);
    add_dense(&t, r, 3);
    cdl_nn_analyze(&t.g);
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 11;
    opt.allow_insecure = 1;
    opt.packing = CDL_HE_PACKING_AUTO;
    const struct {
        size_t images;
        uint64_t budget;
        cdl_he_packing want;
        const char *why;
    } cases[] = {{1, (uint64_t)1 << 40, CDL_HE_PACKING_SLOTS, "less work than batch"},
                 {1024, (uint64_t)1 << 40, CDL_HE_PACKING_BATCH, "less work than slots"},
                 {1024, 1u << 20, CDL_HE_PACKING_SLOTS, "batch packing needs"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        opt.images_hint = cases[i].images;
        opt.memory_budget = cases[i].budget;
        cdl_he_plan *plan = NULL;
        assert_int_equal(cdl_he_plan_new(&t.g, &opt, &plan), CDL_OK);
        printf("auto, %zu images, budget %llu bytes: %s\n", cases[i].images, (unsigned long long)cases[i].budget,
               cdl_he_plan_packing_reason(plan));
        assert_int_equal(cdl_he_plan_packing(plan), cases[i].want);
        assert_non_null(strstr(cdl_he_plan_packing_reason(plan), cases[i].why));
        cdl_he_plan_free(plan);
    }
    free_pool();
    cdl_rng_free(r);
}

/* Every step is the sum (mod S) of its NAF digits, each +-2^k, no two adjacent nonzero. */
static void test_naf(void **state)
{
    (void)state;
    const size_t S = 1024;
    for (int step = 0; step < (int)S; step++) {
        int d[64];
        const int n = cdl_he_slots_naf(step, S, d);
        long long sum = 0;
        assert_true(n <= 11);
        for (int i = 0; i < n; i++) {
            const long long v = d[i] > (int)S / 2 ? (long long)d[i] - (long long)S : d[i];
            const long long a = v < 0 ? -v : v;
            assert_true(a > 0 && (a & (a - 1)) == 0); /* +-2^k */
            if (i)
                assert_true(a >= 4 * (d[i - 1] > (int)S / 2 ? (long long)S - d[i - 1] : d[i - 1]));
            sum += v;
        }
        assert_int_equal(((sum % (long long)S) + (long long)S) % (long long)S, step);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_naf),
        cmocka_unit_test(test_auto_packing),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_conv_stride),
        cmocka_unit_test(test_multi_ciphertext),
        cmocka_unit_test(test_residual_and_slice),
        cmocka_unit_test(test_twin_branches),
        cmocka_unit_test(test_replicated_images),
        cmocka_unit_test(test_cyclic_diagonals),
        cmocka_unit_test(test_signed_affines),
        cmocka_unit_test(test_refusals_and_cache),
        cmocka_unit_test(test_pytorch_fixtures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
