/*
 * test_ckks_rotate_dot.c: double-hoisted sums of rotations
 * (cdl_ckks_rotate_dot_plain: Bossuat et al., EUROCRYPT 2021) against the
 * reference path (one cdl_ckks_rotate per step, cdl_ckks_mul_plain,
 * cdl_ckks_add), both decrypted and compared with the same sums computed in
 * doubles, and the giant-step sum (cdl_ckks_rotate_sum: rotations of several
 * ciphertexts summed before one ModDown) against separate rotations and
 * additions, at N = 2^11 (INSECURE test parameters) with two key-switching
 * layouts (one special prime and one-prime digits; two special primes and
 * two-prime digits, the top digit partial at odd levels). Also: groups that
 * share the rotations, absent terms, unrotated terms, more rotations than one
 * batch of the kernel, inputs below the top level, thread-count determinism
 * and the refusals.
 */
#include <complex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "test_ckks_util.h"

#define DH_BITS 19.0 /* sums of up to 20 products of values in [-1, 1], before rescaling */

typedef struct cfg {
    int p_count;
    int p_bits;
    uint8_t tag;
} cfg;

static cfg CFG_ALPHA1 = {1, 60, 41};
static cfg CFG_ALPHA2 = {2, 55, 42};

#define MAX_STEPS 20

/* One scenario: count steps, groups sums, pattern[j][r] = 1 when group j has a term for step r. */
typedef struct scenario {
    int count, groups;
    int steps[MAX_STEPS];
    unsigned char pattern[4][MAX_STEPS];
} scenario;

/* want[j] = sum_r pattern * v[j][r] (.) rot(x, steps[r]) in complex doubles. */
static void expected(const scenario *sc, size_t slots, const double *xr, const double *xi, double *const *vr,
                     double *const *vi, double *wr, double *wi, int j)
{
    for (size_t k = 0; k < slots; k++) {
        double complex s = 0;
        for (int r = 0; r < sc->count; r++) {
            if (!sc->pattern[j][r])
                continue;
            long long src = ((long long)k + sc->steps[r]) % (long long)slots;
            src += src < 0 ? (long long)slots : 0;
            const size_t u = (size_t)(j * sc->count + r);
            s += (vr[u][k] + I * vi[u][k]) * (xr[src] + I * xi[src]);
        }
        wr[k] = creal(s);
        wi[k] = cimag(s);
    }
}

static void run_scenario(tctx *t, const cdl_ckks_galois_keys *gk, const scenario *sc, int level, int pt_level)
{
    const cdl_ckks_context *ctx = t->ctx;
    const size_t slots = t->slots, terms = (size_t)(sc->groups * sc->count);
    double *xr = cdl_alloc_array(slots, sizeof(double)), *xi = cdl_alloc_array(slots, sizeof(double));
    double *wr = cdl_alloc_array(slots, sizeof(double)), *wi = cdl_alloc_array(slots, sizeof(double));
    double *gr = cdl_alloc_array(slots, sizeof(double)), *gi = cdl_alloc_array(slots, sizeof(double));
    double *hr = cdl_alloc_array(slots, sizeof(double)), *hi = cdl_alloc_array(slots, sizeof(double));
    double **vr = cdl_calloc_array(terms, sizeof(double *)), **vi = cdl_calloc_array(terms, sizeof(double *));
    cdl_ckks_plaintext **pts = cdl_calloc_array(terms, sizeof(*pts));
    assert_non_null(xr);
    assert_non_null(xi);
    assert_non_null(wr);
    assert_non_null(wi);
    assert_non_null(gr);
    assert_non_null(gi);
    assert_non_null(hr);
    assert_non_null(hi);
    assert_non_null(vr);
    assert_non_null(vi);
    assert_non_null(pts);
    t_random(t->rng, xr, slots);
    t_random(t->rng, xi, slots);
    cdl_ckks_ciphertext *x = t_encrypt(t, xr, xi, cdl_ckks_max_level(ctx), 1);
    assert_int_equal(cdl_ckks_drop_to_level(ctx, x, level, x), CDL_OK);
    const double pscale = ldexp(1.0, 30);
    for (size_t u = 0; u < terms; u++) {
        if (!sc->pattern[u / (size_t)sc->count][u % (size_t)sc->count])
            continue;
        vr[u] = cdl_alloc_array(slots, sizeof(double));
        vi[u] = cdl_alloc_array(slots, sizeof(double));
        assert_non_null(vr[u]);
        assert_non_null(vi[u]);
        t_random(t->rng, vr[u], slots);
        t_random(t->rng, vi[u], slots);
        assert_int_equal(cdl_ckks_plaintext_new_qp(ctx, pt_level, &pts[u]), CDL_OK);
        assert_int_equal(cdl_ckks_encode_complex(ctx, vr[u], vi[u], slots, pscale, pt_level, pts[u]), CDL_OK);
    }
    cdl_ckks_ciphertext *outs[4] = {NULL}, *ref = NULL, *rot = NULL, *prod = NULL;
    for (int j = 0; j < sc->groups; j++)
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &outs[j]), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &ref), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &rot), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &prod), CDL_OK);
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, sc->steps, (size_t)sc->count,
                                               (const cdl_ckks_plaintext *const *)pts, (size_t)sc->groups, outs),
                     CDL_OK);
    for (int j = 0; j < sc->groups; j++) {
        /* the reference path: one rotation, one product and one addition per term */
        int first = 1;
        for (int r = 0; r < sc->count; r++) {
            const cdl_ckks_plaintext *pt = pts[j * sc->count + r];
            if (!pt)
                continue;
            assert_int_equal(cdl_ckks_rotate(ctx, gk, x, sc->steps[r], rot), CDL_OK);
            assert_int_equal(cdl_ckks_mul_plain(ctx, rot, pt, first ? ref : prod), CDL_OK);
            if (!first)
                assert_int_equal(cdl_ckks_add(ctx, ref, prod, ref), CDL_OK);
            first = 0;
        }
        assert_int_equal(cdl_ckks_ciphertext_level(outs[j]), level);
        assert_true(cdl_ckks_scales_match(cdl_ckks_ciphertext_scale(outs[j]), cdl_ckks_ciphertext_scale(ref)));
        expected(sc, slots, xr, xi, vr, vi, wr, wi, j);
        t_decrypt(t, outs[j], gr, gi);
        const double dh = t_bits(gr, gi, wr, wi, slots);
        t_decrypt(t, ref, hr, hi);
        const double rf = t_bits(hr, hi, wr, wi, slots);
        /* both carry x's encryption error; they differ by the key-switching errors only */
        const double apart = t_bits(gr, gi, hr, hi, slots);
        print_message("N=2^11 K=%d level %d, group %d (%d steps): double-hoisted %.1f bits, reference %.1f bits, "
                      "%.1f bits apart\n",
                      ctx->p_count, level, j, sc->count, dh, rf, apart);
        assert_true(dh > DH_BITS);
        assert_true(dh > rf - 1.0); /* the same or better: one rounding instead of one per rotation */
        assert_true(apart > dh + 2.0);
    }
    for (int j = 0; j < sc->groups; j++)
        cdl_ckks_ciphertext_free(outs[j]);
    cdl_ckks_ciphertext_free(ref);
    cdl_ckks_ciphertext_free(rot);
    cdl_ckks_ciphertext_free(prod);
    cdl_ckks_ciphertext_free(x);
    for (size_t u = 0; u < terms; u++) {
        cdl_ckks_plaintext_free(pts[u]);
        cdl_free(vr[u]);
        cdl_free(vi[u]);
    }
    cdl_free(pts);
    cdl_free(vr);
    cdl_free(vi);
    cdl_free(xr);
    cdl_free(xi);
    cdl_free(wr);
    cdl_free(wi);
    cdl_free(gr);
    cdl_free(gi);
    cdl_free(hr);
    cdl_free(hi);
}

static cdl_ckks_galois_keys *keys_for(tctx *t, const int *steps, size_t count)
{
    cdl_ckks_galois_keys *gk = NULL;
    assert_int_equal(cdl_ckks_keygen_galois(t->ctx, t->sk, steps, count, 0, t->rng, &gk), CDL_OK);
    return gk;
}

/* The setup both small tests share: keys for nkeys of the steps, random values v, x their encryption at
 * x_level, two outputs. */
typedef struct {
    tctx t;
    cdl_ckks_galois_keys *gk;
    double *v;
    cdl_ckks_ciphertext *x, *o1, *o2;
} fixture;

static void fixture_setup(fixture *f, const cdl_ckks_param_spec *s, uint8_t tag, const int *steps, size_t nkeys,
                          int x_level)
{
    t_setup(&f->t, s, tag);
    f->gk = keys_for(&f->t, steps, nkeys);
    f->v = cdl_alloc_array(f->t.slots, sizeof(double));
    assert_non_null(f->v);
    t_random(f->t.rng, f->v, f->t.slots);
    f->x = t_encrypt(&f->t, f->v, NULL, x_level < 0 ? cdl_ckks_max_level(f->t.ctx) : x_level, 1);
    f->o1 = f->o2 = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(f->t.ctx, &f->o1), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(f->t.ctx, &f->o2), CDL_OK);
}

static void fixture_teardown(fixture *f)
{
    cdl_ckks_ciphertext_free(f->o1);
    cdl_ckks_ciphertext_free(f->o2);
    cdl_ckks_ciphertext_free(f->x);
    cdl_free(f->v);
    cdl_ckks_galois_keys_free(f->gk);
    t_teardown(&f->t);
}

static void test_rotate_dot(void **state)
{
    const cfg *c = *state;
    tctx t;
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 55, 4, c->p_bits, c->p_count, 0);
    t_setup(&t, &s, c->tag);
    int key_steps[MAX_STEPS];
    for (int i = 0; i < MAX_STEPS; i++)
        key_steps[i] = i + 1;
    key_steps[MAX_STEPS - 1] = -3;
    cdl_ckks_galois_keys *gk = keys_for(&t, key_steps, MAX_STEPS);

    /* one sum of 8 rotations (the bench's rotate_sum8) */
    scenario one = {.count = 8, .groups = 1, .steps = {1, 2, 3, 4, 5, 6, 7, 8}};
    memset(one.pattern[0], 1, 8);
    run_scenario(&t, gk, &one, 4, 4);

    /* BSGS-like: 3 groups sharing 6 steps (0 = unrotated), terms absent here
     * and there, one group with the unrotated term only, a negative step */
    scenario bsgs = {.count = 6, .groups = 3, .steps = {0, 1, 2, -3, 5, 4},
                     .pattern = {{1, 1, 0, 1, 1, 0}, {0, 1, 1, 1, 0, 1}, {1, 0, 0, 0, 0, 0}}};
    run_scenario(&t, gk, &bsgs, 4, 4);
    /* below the top level (odd level: a partial top digit with two-prime digits), plaintexts encoded higher */
    run_scenario(&t, gk, &bsgs, 3, 4);
    run_scenario(&t, gk, &bsgs, 2, 2);

    /* more rotations than one batch of the kernel (16) and than one inner product (15 terms) */
    scenario many = {.count = 20, .groups = 2};
    for (int r = 0; r < 20; r++) {
        many.steps[r] = key_steps[r];
        many.pattern[0][r] = 1;
        many.pattern[1][r] = (unsigned char)(r % 3 != 1);
    }
    run_scenario(&t, gk, &many, 4, 4);

    cdl_ckks_galois_keys_free(gk);
    t_teardown(&t);
}

/* The same bits with 1 and 2 threads (every parallel loop is over independent limbs). */
static void test_rotate_dot_threads(void **state)
{
    (void)state;
    fixture f;
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 55, 4, 55, 2, 0);
    const int steps[3] = {1, 2, 0};
    fixture_setup(&f, &s, 43, steps, 2, -1);
    const cdl_ckks_context *ctx = f.t.ctx;
    const size_t slots = f.t.slots;
    const double *v = f.v;
    cdl_ckks_ciphertext *x = f.x, *o1 = f.o1, *o2 = f.o2;
    const cdl_ckks_galois_keys *gk = f.gk;
    cdl_ckks_plaintext *pts[3] = {NULL};
    for (int r = 0; r < 3; r++) {
        assert_int_equal(cdl_ckks_plaintext_new_qp(ctx, 4, &pts[r]), CDL_OK);
        assert_int_equal(cdl_ckks_encode(ctx, v, slots, ldexp(1.0, 30), 4, pts[r]), CDL_OK);
    }
    cdl_set_threads(1);
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 3, (const cdl_ckks_plaintext *const *)pts, 1, &o1),
                     CDL_OK);
    cdl_set_threads(2);
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 3, (const cdl_ckks_plaintext *const *)pts, 1, &o2),
                     CDL_OK);
    cdl_set_threads(0);
    const size_t words = (size_t)(o1->level + 1) * ctx->n;
    assert_memory_equal(cdl_ct_poly(o1, 0, 0), cdl_ct_poly(o2, 0, 0), words * sizeof(uint64_t));
    assert_memory_equal(cdl_ct_poly(o1, 1, 0), cdl_ct_poly(o2, 1, 0), words * sizeof(uint64_t));
    for (int r = 0; r < 3; r++)
        cdl_ckks_plaintext_free(pts[r]);
    fixture_teardown(&f);
}

static void test_rotate_dot_refusals(void **state)
{
    (void)state;
    fixture f;
    cdl_ckks_param_spec s;
    t_spec(&s, 10, 55, 3, 55, 1, 0);
    const int steps[2] = {1, 2};
    fixture_setup(&f, &s, 44, steps, 1, 3); /* no key for 2 */
    const cdl_ckks_context *ctx = f.t.ctx;
    const size_t slots = f.t.slots;
    const double *v = f.v;
    cdl_ckks_ciphertext *x = f.x, *o = f.o1;
    const cdl_ckks_galois_keys *gk = f.gk;
    cdl_ckks_plaintext *qp = NULL, *q = NULL, *qp2 = NULL, *low = NULL;
    assert_int_equal(cdl_ckks_plaintext_new_qp(ctx, 3, &qp), CDL_OK);
    assert_int_equal(cdl_ckks_plaintext_new_qp(ctx, 3, &qp2), CDL_OK);
    assert_int_equal(cdl_ckks_plaintext_new_level(ctx, 3, &q), CDL_OK);
    assert_int_equal(cdl_ckks_plaintext_new_qp(ctx, 2, &low), CDL_OK);
    assert_int_equal(cdl_ckks_encode(ctx, v, slots, ldexp(1.0, 30), 3, qp), CDL_OK);
    assert_int_equal(cdl_ckks_encode(ctx, v, slots, ldexp(1.0, 31), 3, qp2), CDL_OK);
    assert_int_equal(cdl_ckks_encode(ctx, v, slots, ldexp(1.0, 30), 3, q), CDL_OK);
    assert_int_equal(cdl_ckks_encode(ctx, v, slots, ldexp(1.0, 30), 2, low), CDL_OK);
    const cdl_ckks_plaintext *one[1] = {qp};
    /* a rotated term needs the special primes */
    const cdl_ckks_plaintext *plain_q[1] = {q};
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 1, plain_q, 1, &o), CDL_ERR_INVALID_ARGUMENT);
    /* ... but an unrotated one does not */
    const int zero[1] = {0};
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, zero, 1, plain_q, 1, &o), CDL_OK);
    /* no key */
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps + 1, 1, one, 1, &o), CDL_ERR_EXHAUSTED);
    /* the output may not be the input; groups need a term and distinct outputs; one scale per group */
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 1, one, 1, &x), CDL_ERR_INVALID_ARGUMENT);
    const cdl_ckks_plaintext *none[1] = {NULL};
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 1, none, 1, &o), CDL_ERR_INVALID_ARGUMENT);
    const cdl_ckks_plaintext *two[2] = {qp, qp};
    cdl_ckks_ciphertext *same[2] = {o, o};
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 1, two, 2, same), CDL_ERR_INVALID_ARGUMENT);
    const int both[2] = {1, 0};
    const cdl_ckks_plaintext *mixed[2] = {qp, qp2};
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, both, 2, mixed, 1, &o), CDL_ERR_MISMATCH);
    /* a plaintext below the ciphertext's level */
    const cdl_ckks_plaintext *lows[1] = {low};
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 1, lows, 1, &o), CDL_ERR_MISMATCH);
    /* a decryption into a plaintext leaves its special primes stale: refused */
    assert_int_equal(cdl_ckks_decrypt(ctx, f.t.sk, x, qp2), CDL_OK);
    const cdl_ckks_plaintext *stale[1] = {qp2};
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 1, stale, 1, &o), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 0, one, 1, &o), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 1, NULL, 1, &o), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_ckks_rotate_dot_plain(ctx, gk, x, steps, 1, one, 1, &o), CDL_OK);
    cdl_ckks_plaintext_free(qp);
    cdl_ckks_plaintext_free(qp2);
    cdl_ckks_plaintext_free(q);
    cdl_ckks_plaintext_free(low);
    fixture_teardown(&f);
}

/* The giant-step sum: sum_j rot(x_j, s_j) with one ModDown, against separate rotations and additions. */
static void test_rotate_sum(void **state)
{
    const cfg *c = *state;
    tctx t;
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 55, 4, c->p_bits, c->p_count, 0);
    t_setup(&t, &s, (uint8_t)(c->tag + 10));
    const cdl_ckks_context *ctx = t.ctx;
    const size_t slots = t.slots;
    enum { TERMS = 5 };
    const int steps[TERMS] = {4, 0, -3, 12, 4}; /* a repeated step and an unrotated term */
    cdl_ckks_galois_keys *gk = keys_for(&t, (const int[]){4, -3, 12}, 3);
    double *xr[TERMS], *xi[TERMS];
    cdl_ckks_ciphertext *x[TERMS], *sum = NULL, *ref = NULL, *rot = NULL;
    double *wr = cdl_calloc_array(slots, sizeof(double)), *wi = cdl_calloc_array(slots, sizeof(double));
    double *gr = cdl_alloc_array(slots, sizeof(double)), *gi = cdl_alloc_array(slots, sizeof(double));
    double *hr = cdl_alloc_array(slots, sizeof(double)), *hi = cdl_alloc_array(slots, sizeof(double));
    assert_true(wr && wi && gr && gi && hr && hi);
    for (int level = 4; level >= 3; level--) {
        memset(wr, 0, slots * sizeof(double));
        memset(wi, 0, slots * sizeof(double));
        for (int j = 0; j < TERMS; j++) {
            xr[j] = cdl_alloc_array(slots, sizeof(double));
            xi[j] = cdl_alloc_array(slots, sizeof(double));
            assert_true(xr[j] && xi[j]);
            t_random(t.rng, xr[j], slots);
            t_random(t.rng, xi[j], slots);
            x[j] = t_encrypt(&t, xr[j], xi[j], level, 1);
            for (size_t k = 0; k < slots; k++) {
                long long src = ((long long)k + steps[j]) % (long long)slots;
                src += src < 0 ? (long long)slots : 0;
                wr[k] += xr[j][src];
                wi[k] += xi[j][src];
            }
        }
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &sum), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &ref), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &rot), CDL_OK);
        assert_int_equal(cdl_ckks_rotate_sum(ctx, gk, (const cdl_ckks_ciphertext *const *)x, steps, TERMS, sum),
                         CDL_OK);
        for (int j = 0; j < TERMS; j++) {
            assert_int_equal(cdl_ckks_rotate(ctx, gk, x[j], steps[j], j ? rot : ref), CDL_OK);
            if (j)
                assert_int_equal(cdl_ckks_add(ctx, ref, rot, ref), CDL_OK);
        }
        assert_int_equal(cdl_ckks_ciphertext_level(sum), level);
        t_decrypt(&t, sum, gr, gi);
        t_decrypt(&t, ref, hr, hi);
        const double got = t_bits(gr, gi, wr, wi, slots), want = t_bits(hr, hi, wr, wi, slots);
        print_message("N=2^11 K=%d level %d, sum of %d rotations: one ModDown %.1f bits, separate %.1f bits\n",
                      ctx->p_count, level, TERMS, got, want);
        assert_true(got > DH_BITS);
        assert_true(got > want - 1.0);
        /* refusals: the output among the terms, terms at different levels, no key */
        assert_int_equal(cdl_ckks_rotate_sum(ctx, gk, (const cdl_ckks_ciphertext *const *)x, steps, TERMS, x[2]),
                         CDL_ERR_INVALID_ARGUMENT);
        const int nokey[1] = {5};
        assert_int_equal(cdl_ckks_rotate_sum(ctx, gk, (const cdl_ckks_ciphertext *const *)x, nokey, 1, sum),
                         CDL_ERR_EXHAUSTED);
        assert_int_equal(cdl_ckks_drop_to_level(ctx, x[1], level - 1, x[1]), CDL_OK);
        assert_int_equal(cdl_ckks_rotate_sum(ctx, gk, (const cdl_ckks_ciphertext *const *)x, steps, TERMS, sum),
                         CDL_ERR_MISMATCH);
        for (int j = 0; j < TERMS; j++) {
            cdl_ckks_ciphertext_free(x[j]);
            cdl_free(xr[j]);
            cdl_free(xi[j]);
        }
        cdl_ckks_ciphertext_free(sum);
        cdl_ckks_ciphertext_free(ref);
        cdl_ckks_ciphertext_free(rot);
    }
    cdl_free(wr);
    cdl_free(wi);
    cdl_free(gr);
    cdl_free(gi);
    cdl_free(hr);
    cdl_free(hi);
    cdl_ckks_galois_keys_free(gk);
    t_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_rotate_dot, &CFG_ALPHA1),
        cmocka_unit_test_prestate(test_rotate_dot, &CFG_ALPHA2),
        cmocka_unit_test_prestate(test_rotate_sum, &CFG_ALPHA1),
        cmocka_unit_test_prestate(test_rotate_sum, &CFG_ALPHA2),
        cmocka_unit_test(test_rotate_dot_threads),
        cmocka_unit_test(test_rotate_dot_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
