/*
 * test_ckks_ops.c: every homomorphic operation against the same computation
 * on the plaintext slot vectors (random complex values in [-1,1]^2), at
 * N = 2^11 with two key-switching layouts: one special prime with 5 one-prime
 * digits, and two special primes with digits of 2 primes (the top digit
 * partial at odd levels). Prints the bits of precision (-log2 max |error|)
 * and asserts the floors stated in docs/ckks-design.md. Also: the mismatch and
 * exhaustion errors, rotation by every step of a key set (negative too) and
 * conjugation, hoisted == individual rotations bit for bit, and identical
 * results with 1 and 2 threads.
 */
#include <complex.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "ckks/keyswitch.h"
#include "test_ckks_util.h"

#define FRESH_BITS 22.0  /* fresh encryption at scale 2^40 (public key: ~25 observed at N = 2^11) */
#define MUL_BITS 20.0    /* after mul + relinearize + rescale */
#define ROT_BITS 20.0    /* after a rotation / conjugation */

typedef struct cfg {
    int p_count;
    int p_bits;
    uint8_t tag;
} cfg;

static cfg CFG_ALPHA1 = {1, 60, 21};
static cfg CFG_ALPHA2 = {2, 55, 22};

static void setup_cfg(tctx *t, const cfg *c)
{
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 55, 4, c->p_bits, c->p_count, 0);
    t_setup(t, &s, c->tag);
}

typedef struct vecs {
    double *re, *im, *re2, *im2, *ore, *oim, *wre, *wim;
} vecs;

static void vecs_new(vecs *v, tctx *t)
{
    size_t n = t->slots;
    double **all[] = {&v->re, &v->im, &v->re2, &v->im2, &v->ore, &v->oim, &v->wre, &v->wim};
    for (int i = 0; i < 8; i++)
        *all[i] = cdl_alloc_array(n, sizeof(double));
    t_random(t->rng, v->re, n);
    t_random(t->rng, v->im, n);
    t_random(t->rng, v->re2, n);
    t_random(t->rng, v->im2, n);
}

static void vecs_free(vecs *v)
{
    double *all[] = {v->re, v->im, v->re2, v->im2, v->ore, v->oim, v->wre, v->wim};
    for (int i = 0; i < 8; i++)
        cdl_free(all[i]);
}

static double check(tctx *t, vecs *v, const cdl_ckks_ciphertext *ct, const char *what, double floor_bits)
{
    t_decrypt(t, ct, v->ore, v->oim);
    double bits = t_bits(v->ore, v->oim, v->wre, v->wim, t->slots);
    print_message("  %-40s level %d  %.1f bits\n", what, cdl_ckks_ciphertext_level(ct), bits);
    assert_true(bits >= floor_bits);
    return bits;
}

static void test_encrypt_decrypt(void **state)
{
    const cfg *c = *state;
    tctx t;
    setup_cfg(&t, c);
    vecs v;
    vecs_new(&v, &t);
    memcpy(v.wre, v.re, t.slots * 8);
    memcpy(v.wim, v.im, t.slots * 8);
    for (int use_pk = 0; use_pk <= 1; use_pk++)
        for (int level = 0; level <= 4; level += 2) {
            cdl_ckks_ciphertext *ct = t_encrypt(&t, v.re, v.im, level, use_pk);
            assert_int_equal(cdl_ckks_ciphertext_level(ct), level);
            assert_int_equal(ct->seeded, !use_pk);
            check(&t, &v, ct, use_pk ? "encrypt_pk/decrypt" : "encrypt_sk/decrypt", FRESH_BITS);
            {
                /* decryption with and without the optional Shoup table of s agree */
                cdl_ckks_plaintext *p1 = NULL, *p2 = NULL;
                assert_int_equal(cdl_ckks_plaintext_new(t.ctx, &p1), CDL_OK);
                assert_int_equal(cdl_ckks_plaintext_new(t.ctx, &p2), CDL_OK);
                assert_int_equal(cdl_ckks_decrypt(t.ctx, t.sk, ct, p1), CDL_OK);
                uint64_t *saved = t.sk->s_shoup;
                assert_non_null(saved);
                t.sk->s_shoup = NULL;
                assert_int_equal(cdl_ckks_decrypt(t.ctx, t.sk, ct, p2), CDL_OK);
                t.sk->s_shoup = saved;
                assert_memory_equal(p1->data, p2->data, (size_t)(level + 1) * t.ctx->n * 8);
                cdl_ckks_plaintext_free(p1);
                cdl_ckks_plaintext_free(p2);
            }
            if (!use_pk) {
                /* the seed regenerates c1 exactly */
                uint64_t *a = cdl_alloc_array((size_t)(level + 1) * t.ctx->n, 8);
                assert_int_equal(cdl_ckks_expand_seed(t.ctx, ct->seed, level, a), CDL_OK);
                assert_memory_equal(a, cdl_ct_poly(ct, 1, 0), (size_t)(level + 1) * t.ctx->n * 8);
                cdl_free(a);
            }
            cdl_ckks_ciphertext_free(ct);
        }
    /* a public key without its special-prime part (e.g. from an older file):
     * encryption modulo Q only, still correct (a little noisier) */
    {
        uint64_t *saved = t.pk->p_data;
        assert_non_null(saved);
        t.pk->p_data = NULL;
        cdl_ckks_ciphertext *ct = t_encrypt(&t, v.re, v.im, 3, 1);
        check(&t, &v, ct, "encrypt_pk modulo Q only", FRESH_BITS);
        cdl_ckks_ciphertext_free(ct);
        t.pk->p_data = saved;
    }
    vecs_free(&v);
    t_teardown(&t);
}

static void test_linear_ops(void **state)
{
    const cfg *c = *state;
    tctx t;
    setup_cfg(&t, c);
    vecs v;
    vecs_new(&v, &t);
    size_t n = t.slots;
    const cdl_ckks_context *ctx = t.ctx;
    const double scale = cdl_ckks_default_scale(ctx);
    cdl_ckks_ciphertext *a = t_encrypt(&t, v.re, v.im, 4, 1), *b = t_encrypt(&t, v.re2, v.im2, 4, 0);
    cdl_ckks_ciphertext *o = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &o), CDL_OK);

    assert_int_equal(cdl_ckks_add(ctx, a, b, o), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = v.re[i] + v.re2[i], v.wim[i] = v.im[i] + v.im2[i];
    check(&t, &v, o, "add", FRESH_BITS - 1);
    assert_int_equal(cdl_ckks_sub(ctx, a, b, o), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = v.re[i] - v.re2[i], v.wim[i] = v.im[i] - v.im2[i];
    check(&t, &v, o, "sub", FRESH_BITS - 1);
    assert_int_equal(cdl_ckks_negate(ctx, o, o), CDL_OK); /* aliasing */
    for (size_t i = 0; i < n; i++)
        v.wre[i] = -v.wre[i], v.wim[i] = -v.wim[i];
    check(&t, &v, o, "negate (in place)", FRESH_BITS - 1);

    cdl_ckks_plaintext *pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_encode_complex(ctx, v.re2, v.im2, n, scale, 4, pt), CDL_OK);
    assert_int_equal(cdl_ckks_add_plain(ctx, a, pt, o), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = v.re[i] + v.re2[i], v.wim[i] = v.im[i] + v.im2[i];
    check(&t, &v, o, "add_plain", FRESH_BITS);
    assert_int_equal(cdl_ckks_sub_plain(ctx, a, pt, o), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = v.re[i] - v.re2[i], v.wim[i] = v.im[i] - v.im2[i];
    check(&t, &v, o, "sub_plain", FRESH_BITS);
    assert_int_equal(cdl_ckks_mul_plain(ctx, a, pt, o), CDL_OK);
    assert_int_equal(cdl_ckks_rescale(ctx, o, o), CDL_OK);
    for (size_t i = 0; i < n; i++) {
        double complex z = (v.re[i] + I * v.im[i]) * (v.re2[i] + I * v.im2[i]);
        v.wre[i] = creal(z), v.wim[i] = cimag(z);
    }
    check(&t, &v, o, "mul_plain + rescale", MUL_BITS);
    assert_true(fabs(cdl_ckks_ciphertext_scale(o) / scale - 1) < 1e-3);
    /* fused multiply-accumulate: o = a pt, then o += b pt, against (a + b) pt */
    assert_int_equal(cdl_ckks_mul_plain(ctx, a, pt, o), CDL_OK);
    assert_int_equal(cdl_ckks_mul_plain_add(ctx, b, pt, o), CDL_OK);
    assert_int_equal(cdl_ckks_mul_plain_add(ctx, o, pt, o), CDL_ERR_INVALID_ARGUMENT); /* acc aliases a */
    assert_int_equal(cdl_ckks_mul_plain_add(ctx, b, pt, a), CDL_ERR_MISMATCH);         /* acc at another scale */
    assert_int_equal(cdl_ckks_rescale(ctx, o, o), CDL_OK);
    for (size_t i = 0; i < n; i++) {
        double complex z = (v.re[i] + v.re2[i] + I * (v.im[i] + v.im2[i])) * (v.re2[i] + I * v.im2[i]);
        v.wre[i] = creal(z), v.wim[i] = cimag(z);
    }
    check(&t, &v, o, "mul_plain + mul_plain_add + rescale", MUL_BITS - 1);
    /* encoded on the fly, limb by limb (cdl_ckks_dot_values), against encode + mul_plain + mul_plain_add:
     * the same residues, bit for bit; 11 terms (a chunk of 8 and 3), then accumulated onto */
    {
        enum { TERMS = 11 };
        const cdl_ckks_ciphertext *xs[TERMS];
        const double *vals[TERMS];
        double *w = cdl_alloc_array(TERMS * n, sizeof *w);
        cdl_ckks_ciphertext *want = NULL, *got = NULL;
        cdl_ckks_plaintext *wp = NULL;
        assert_non_null(w);
        assert_int_equal(cdl_ckks_plaintext_new(ctx, &wp), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &want), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &got), CDL_OK);
        for (int k = 0; k < TERMS; k++) {
            xs[k] = k % 2 ? a : b;
            vals[k] = w + (size_t)k * n;
            for (size_t i = 0; i < n; i++)
                w[(size_t)k * n + i] = v.re2[(i + 7 * (size_t)k) % n] * (1.0 + 0.25 * k);
            assert_int_equal(cdl_ckks_encode(ctx, vals[k], n, scale, cdl_ckks_ciphertext_level(a), wp), CDL_OK);
            assert_int_equal(k ? cdl_ckks_mul_plain_add(ctx, xs[k], wp, want) : cdl_ckks_mul_plain(ctx, xs[k], wp, want),
                             CDL_OK);
        }
        assert_int_equal(cdl_ckks_dot_values(ctx, xs, vals, n, 5, scale, 0, got), CDL_OK);
        assert_int_equal(cdl_ckks_dot_values(ctx, xs + 5, vals + 5, n, TERMS - 5, scale, 1, got), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_level(got), cdl_ckks_ciphertext_level(want));
        assert_true(cdl_ckks_ciphertext_scale(got) == cdl_ckks_ciphertext_scale(want));
        const size_t words = (size_t)(cdl_ckks_ciphertext_level(want) + 1) * ctx->n;
        for (int c = 0; c < 2; c++)
            assert_memory_equal(cdl_ct_poly(got, c, 0), cdl_ct_poly(want, c, 0), words * sizeof(uint64_t));
        /* two groups sharing the values (cdl_ckks_dot_values_shared): group 0 the terms above, group 1 the
         * other ciphertext in each term; each group's sum equals cdl_ckks_dot_values on that group alone */
        {
            const cdl_ckks_ciphertext *xg[2 * TERMS];
            cdl_ckks_ciphertext *acc2[2] = {NULL, NULL}, *alone = NULL;
            for (int k = 0; k < TERMS; k++) {
                xg[k] = xs[k];
                xg[TERMS + k] = xs[k] == a ? b : a;
            }
            for (int g = 0; g < 2; g++)
                assert_int_equal(cdl_ckks_ciphertext_new(ctx, &acc2[g]), CDL_OK);
            assert_int_equal(cdl_ckks_ciphertext_new(ctx, &alone), CDL_OK);
            assert_int_equal(cdl_ckks_dot_values_shared(ctx, xg, vals, n, TERMS, 2, scale, 0, acc2), CDL_OK);
            for (int c = 0; c < 2; c++)
                assert_memory_equal(cdl_ct_poly(acc2[0], c, 0), cdl_ct_poly(want, c, 0), words * sizeof(uint64_t));
            assert_int_equal(cdl_ckks_dot_values(ctx, xg + TERMS, vals, n, TERMS, scale, 0, alone), CDL_OK);
            for (int c = 0; c < 2; c++)
                assert_memory_equal(cdl_ct_poly(acc2[1], c, 0), cdl_ct_poly(alone, c, 0), words * sizeof(uint64_t));
            /* accumulated onto: both groups again, now twice the sum */
            assert_int_equal(cdl_ckks_dot_values_shared(ctx, xg, vals, n, TERMS, 2, scale, 1, acc2), CDL_OK);
            assert_int_equal(cdl_ckks_add(ctx, alone, alone, alone), CDL_OK);
            for (int c = 0; c < 2; c++)
                assert_memory_equal(cdl_ct_poly(acc2[1], c, 0), cdl_ct_poly(alone, c, 0), words * sizeof(uint64_t));
            /* refusals: one accumulator for both groups, an accumulator among the terms */
            cdl_ckks_ciphertext *same[2] = {acc2[0], acc2[0]};
            assert_int_equal(cdl_ckks_dot_values_shared(ctx, xg, vals, n, TERMS, 2, scale, 0, same),
                             CDL_ERR_INVALID_ARGUMENT);
            xg[TERMS + 3] = acc2[0];
            assert_int_equal(cdl_ckks_dot_values_shared(ctx, xg, vals, n, TERMS, 2, scale, 0, acc2),
                             CDL_ERR_INVALID_ARGUMENT);
            for (int g = 0; g < 2; g++)
                cdl_ckks_ciphertext_free(acc2[g]);
            cdl_ckks_ciphertext_free(alone);
        }
        /* refusals: the accumulator among the terms, a term at another level, no terms to start from */
        xs[0] = got;
        assert_int_equal(cdl_ckks_dot_values(ctx, xs, vals, n, 2, scale, 1, got), CDL_ERR_INVALID_ARGUMENT);
        xs[0] = a;
        assert_int_equal(cdl_ckks_drop_to_level(ctx, b, 1, want), CDL_OK);
        xs[1] = want;
        assert_int_equal(cdl_ckks_dot_values(ctx, xs, vals, n, 2, scale, 0, got), CDL_ERR_MISMATCH);
        assert_int_equal(cdl_ckks_dot_values(ctx, xs, vals, n, 0, scale, 0, got), CDL_ERR_INVALID_ARGUMENT);
        cdl_ckks_ciphertext_free(want);
        cdl_ckks_ciphertext_free(got);
        cdl_ckks_plaintext_free(wp);
        cdl_free(w);
    }

    assert_int_equal(cdl_ckks_add_const(ctx, a, -0.625, o), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = v.re[i] - 0.625, v.wim[i] = v.im[i];
    check(&t, &v, o, "add_const -0.625", FRESH_BITS);
    assert_int_equal(cdl_ckks_mul_const(ctx, a, -3.75, scale, o), CDL_OK);
    assert_int_equal(cdl_ckks_rescale(ctx, o, o), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = -3.75 * v.re[i], v.wim[i] = -3.75 * v.im[i];
    check(&t, &v, o, "mul_const -3.75 + rescale", MUL_BITS);
    assert_int_equal(cdl_ckks_mul_int(ctx, a, -7, o), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = -7 * v.re[i], v.wim[i] = -7 * v.im[i];
    check(&t, &v, o, "mul_int -7", FRESH_BITS - 3);
    assert_true(cdl_ckks_ciphertext_scale(o) == cdl_ckks_ciphertext_scale(a));

    /* a plaintext above the ciphertext's level is used at the ciphertext's level */
    {
        cdl_ckks_ciphertext *low = NULL;
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &low), CDL_OK);
        assert_int_equal(cdl_ckks_drop_to_level(ctx, a, 2, low), CDL_OK);
        assert_int_equal(cdl_ckks_mul_plain(ctx, low, pt, low), CDL_OK); /* pt is at level 4 */
        assert_int_equal(cdl_ckks_rescale(ctx, low, low), CDL_OK);
        for (size_t i = 0; i < n; i++) {
            double complex z = (v.re[i] + I * v.im[i]) * (v.re2[i] + I * v.im2[i]);
            v.wre[i] = creal(z), v.wim[i] = cimag(z);
        }
        check(&t, &v, low, "mul_plain (pt level 4, ct level 2)", MUL_BITS);
        cdl_ckks_ciphertext_free(low);
    }
    /* drop_to_level keeps the values */
    assert_int_equal(cdl_ckks_drop_to_level(ctx, a, 1, o), CDL_OK);
    memcpy(v.wre, v.re, n * 8), memcpy(v.wim, v.im, n * 8);
    check(&t, &v, o, "drop_to_level 1", FRESH_BITS);

    cdl_ckks_plaintext_free(pt);
    cdl_ckks_ciphertext_free(a), cdl_ckks_ciphertext_free(b), cdl_ckks_ciphertext_free(o);
    vecs_free(&v);
    t_teardown(&t);
}

static void test_mul_relin_rescale(void **state)
{
    const cfg *c = *state;
    tctx t;
    setup_cfg(&t, c);
    vecs v;
    vecs_new(&v, &t);
    size_t n = t.slots;
    const cdl_ckks_context *ctx = t.ctx;
    cdl_ckks_ciphertext *a = t_encrypt(&t, v.re, v.im, 4, 1), *b = t_encrypt(&t, v.re2, v.im2, 4, 0);
    cdl_ckks_ciphertext *o = NULL, *o2 = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &o), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &o2), CDL_OK);

    /* size-3 product decrypts directly */
    assert_int_equal(cdl_ckks_mul(ctx, a, b, o), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_size(o), 3);
    double complex *z = cdl_alloc_array(n, sizeof(double complex)), *w = cdl_alloc_array(n, sizeof(double complex));
    for (size_t i = 0; i < n; i++) {
        z[i] = (v.re[i] + I * v.im[i]) * (v.re2[i] + I * v.im2[i]);
        v.wre[i] = creal(z[i]), v.wim[i] = cimag(z[i]);
    }
    t_decrypt(&t, o, v.ore, v.oim); /* decoded at the product's scale (2^80) */
    double bits = t_bits(v.ore, v.oim, v.wre, v.wim, n);
    print_message("  %-40s %.1f bits\n", "mul (size 3, no relin)", bits);
    assert_true(bits >= MUL_BITS);

    /* the stored-digit key switch (decompose + apply) equals the fused one */
    {
        int lv = o->level;
        size_t w = (size_t)(lv + 1) * ctx->n;
        uint64_t *dig = cdl_alloc_array(cdl_ckks_digits_words(ctx, lv), 8);
        uint64_t *u1 = cdl_alloc_array(2 * w, 8), *u2 = cdl_alloc_array(2 * w, 8);
        assert_int_equal(cdl_ckks_ks_decompose(ctx, cdl_ct_poly(o, 2, 0), lv, dig), CDL_OK);
        assert_int_equal(cdl_ckks_ks_apply(ctx, dig, lv, &t.rlk->ksk, NULL, u1, u1 + w), CDL_OK);
        assert_int_equal(cdl_ckks_keyswitch(ctx, cdl_ct_poly(o, 2, 0), lv, &t.rlk->ksk, NULL, u2, u2 + w), CDL_OK);
        assert_memory_equal(u1, u2, 2 * w * 8);
        cdl_free(dig), cdl_free(u1), cdl_free(u2);
    }
    /* size-3 sums relinearize like products: 2ab */
    {
        cdl_ckks_ciphertext *two = NULL;
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &two), CDL_OK);
        assert_int_equal(cdl_ckks_add(ctx, o, o, two), CDL_OK);
        assert_int_equal(cdl_ckks_ciphertext_size(two), 3);
        assert_int_equal(cdl_ckks_relinearize(ctx, t.rlk, two, two), CDL_OK);
        assert_int_equal(cdl_ckks_rescale(ctx, two, two), CDL_OK);
        for (size_t i = 0; i < n; i++)
            v.wre[i] = 2 * creal(z[i]), v.wim[i] = 2 * cimag(z[i]);
        check(&t, &v, two, "(ab + ab) size 3, relin, rescale", MUL_BITS);
        cdl_ckks_ciphertext_free(two);
    }
    /* relinearize separately == mul_relin, bit for bit */
    assert_int_equal(cdl_ckks_relinearize(ctx, t.rlk, o, o), CDL_OK);
    assert_int_equal(cdl_ckks_mul_relin(ctx, t.rlk, a, b, o2), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_size(o2), 2);
    assert_memory_equal(cdl_ct_poly(o, 0, 0), cdl_ct_poly(o2, 0, 0), 5 * ctx->n * 8);
    assert_memory_equal(cdl_ct_poly(o, 1, 0), cdl_ct_poly(o2, 1, 0), 5 * ctx->n * 8);
    assert_int_equal(cdl_ckks_rescale(ctx, o2, o2), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = creal(z[i]), v.wim[i] = cimag(z[i]);
    check(&t, &v, o2, "mul_relin + rescale", MUL_BITS);

    /* repeated squaring down to level 0: x^16 stays in [-1,1]^2 scale; |z| <= sqrt2 so use real x/1.2 */
    for (size_t i = 0; i < n; i++)
        v.wre[i] = v.re[i] * 0.9, v.wim[i] = 0;
    cdl_ckks_ciphertext *x = t_encrypt(&t, v.wre, NULL, 4, 1);
    for (int d = 1; d <= 4; d++) {
        assert_int_equal(cdl_ckks_square(ctx, x, x), CDL_OK);
        assert_int_equal(cdl_ckks_relinearize(ctx, t.rlk, x, x), CDL_OK);
        assert_int_equal(cdl_ckks_rescale(ctx, x, x), CDL_OK);
        for (size_t i = 0; i < n; i++)
            v.wre[i] *= v.wre[i];
        char what[64];
        snprintf(what, sizeof what, "x^%d (square, relin, rescale)", 1 << d);
        check(&t, &v, x, what, MUL_BITS - 2);
    }
    assert_int_equal(cdl_ckks_ciphertext_level(x), 0);
    assert_int_equal(cdl_ckks_rescale(ctx, x, x), CDL_ERR_EXHAUSTED);
    assert_non_null(strstr(cdl_last_error(), "level 0"));

    /* mul_relin of operands at a lower level (partial digits for alpha = 2) */
    assert_int_equal(cdl_ckks_drop_to_level(ctx, a, 2, o), CDL_OK);
    assert_int_equal(cdl_ckks_drop_to_level(ctx, b, 2, o2), CDL_OK);
    assert_int_equal(cdl_ckks_mul_relin(ctx, t.rlk, o, o2, o), CDL_OK);
    assert_int_equal(cdl_ckks_rescale(ctx, o, o), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = creal(z[i]), v.wim[i] = cimag(z[i]);
    check(&t, &v, o, "mul_relin + rescale from level 2", MUL_BITS);

    cdl_free(z), cdl_free(w);
    cdl_ckks_ciphertext_free(x);
    cdl_ckks_ciphertext_free(a), cdl_ckks_ciphertext_free(b), cdl_ckks_ciphertext_free(o), cdl_ckks_ciphertext_free(o2);
    vecs_free(&v);
    t_teardown(&t);
}

static void test_rotations(void **state)
{
    const cfg *c = *state;
    tctx t;
    setup_cfg(&t, c);
    vecs v;
    vecs_new(&v, &t);
    size_t n = t.slots;
    const cdl_ckks_context *ctx = t.ctx;
    const int steps[] = {1, 2, 5, -1, -3, (int)n / 2 - 1, 777};
    const size_t ns = sizeof steps / sizeof steps[0];
    cdl_ckks_galois_keys *gk = NULL;
    assert_int_equal(cdl_ckks_keygen_galois(ctx, t.sk, steps, ns, 1, t.rng, &gk), CDL_OK);
    for (size_t r = 0; r < ns; r++)
        assert_true(cdl_ckks_galois_keys_has_step(gk, steps[r]));
    assert_true(cdl_ckks_galois_keys_has_step(gk, 0)); /* conjugation */
    assert_false(cdl_ckks_galois_keys_has_step(gk, 3));
    assert_true(cdl_ckks_galois_keys_has_step(gk, (int)n)); /* full turn: no key needed */

    cdl_ckks_ciphertext *a = t_encrypt(&t, v.re, v.im, 3, 1);
    cdl_ckks_ciphertext *outs[8];
    for (size_t r = 0; r < ns + 1; r++)
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &outs[r]), CDL_OK);
    for (size_t r = 0; r < ns; r++) {
        assert_int_equal(cdl_ckks_rotate(ctx, gk, a, steps[r], outs[r]), CDL_OK);
        for (size_t i = 0; i < n; i++) {
            size_t src = (size_t)(((int64_t)i + steps[r]) % (int64_t)n + (int64_t)n) % n;
            v.wre[i] = v.re[src], v.wim[i] = v.im[src];
        }
        char what[64];
        snprintf(what, sizeof what, "rotate by %d", steps[r]);
        check(&t, &v, outs[r], what, ROT_BITS);
    }
    assert_int_equal(cdl_ckks_conjugate(ctx, gk, a, outs[ns]), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = v.re[i], v.wim[i] = -v.im[i];
    check(&t, &v, outs[ns], "conjugate", ROT_BITS);

    /* hoisted == individual, bit for bit (both decompose c1 once and permute the digits) */
    cdl_ckks_ciphertext *h[8];
    for (size_t r = 0; r < ns; r++)
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &h[r]), CDL_OK);
    assert_int_equal(cdl_ckks_rotate_hoisted(ctx, gk, a, steps, ns, h), CDL_OK);
    for (size_t r = 0; r < ns; r++) {
        assert_int_equal(cdl_ckks_ciphertext_level(h[r]), 3);
        assert_memory_equal(cdl_ct_poly(h[r], 0, 0), cdl_ct_poly(outs[r], 0, 0), 4 * ctx->n * 8);
        assert_memory_equal(cdl_ct_poly(h[r], 1, 0), cdl_ct_poly(outs[r], 1, 0), 4 * ctx->n * 8);
    }
    /* more rotations than one hoisting batch (8), with repeats and a zero step */
    {
        const int many[11] = {1, 2, 5, -1, -3, (int)n / 2 - 1, 777, 1, 0, 2, -3};
        cdl_ckks_ciphertext *hm[11], *single = NULL;
        assert_int_equal(cdl_ckks_ciphertext_new(ctx, &single), CDL_OK);
        for (int r = 0; r < 11; r++)
            assert_int_equal(cdl_ckks_ciphertext_new(ctx, &hm[r]), CDL_OK);
        assert_int_equal(cdl_ckks_rotate_hoisted(ctx, gk, a, many, 11, hm), CDL_OK);
        for (int r = 0; r < 11; r++) {
            assert_int_equal(cdl_ckks_rotate(ctx, gk, a, many[r], single), CDL_OK);
            assert_memory_equal(cdl_ct_poly(hm[r], 0, 0), cdl_ct_poly(single, 0, 0), 4 * ctx->n * 8);
            assert_memory_equal(cdl_ct_poly(hm[r], 1, 0), cdl_ct_poly(single, 1, 0), 4 * ctx->n * 8);
            cdl_ckks_ciphertext_free(hm[r]);
        }
        cdl_ckks_ciphertext_free(single);
    }
    /* hoisted with the input among the outputs */
    cdl_ckks_ciphertext *alias[2] = {h[0], a};
    const int st2[2] = {2, 1};
    cdl_ckks_ciphertext *a_copy = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &a_copy), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_copy(ctx, a, a_copy), CDL_OK);
    assert_int_equal(cdl_ckks_rotate_hoisted(ctx, gk, a, st2, 2, alias), CDL_OK);
    assert_memory_equal(cdl_ct_poly(h[0], 0, 0), cdl_ct_poly(outs[1], 0, 0), 4 * ctx->n * 8);
    assert_memory_equal(cdl_ct_poly(a, 0, 0), cdl_ct_poly(outs[0], 0, 0), 4 * ctx->n * 8);
    /* hoisted with one output listed twice: the last rotation wins, as with
     * two single rotations (ModDown must not add both into it) */
    cdl_ckks_ciphertext *twice[2] = {h[1], h[1]};
    assert_int_equal(cdl_ckks_rotate_hoisted(ctx, gk, a_copy, steps, 2, twice), CDL_OK);
    assert_memory_equal(cdl_ct_poly(h[1], 0, 0), cdl_ct_poly(outs[1], 0, 0), 4 * ctx->n * 8);
    assert_memory_equal(cdl_ct_poly(h[1], 1, 0), cdl_ct_poly(outs[1], 1, 0), 4 * ctx->n * 8);

    /* missing key */
    assert_int_equal(cdl_ckks_rotate(ctx, gk, a_copy, 3, outs[0]), CDL_ERR_EXHAUSTED);
    assert_non_null(strstr(cdl_last_error(), "3 steps"));
    /* rotation at level 0 */
    assert_int_equal(cdl_ckks_drop_to_level(ctx, a_copy, 0, a_copy), CDL_OK);
    assert_int_equal(cdl_ckks_rotate(ctx, gk, a_copy, -1, outs[0]), CDL_OK);
    for (size_t i = 0; i < n; i++)
        v.wre[i] = v.re[(i + n - 1) % n], v.wim[i] = v.im[(i + n - 1) % n];
    check(&t, &v, outs[0], "rotate by -1 at level 0", ROT_BITS - 2);

    for (size_t r = 0; r < ns; r++)
        cdl_ckks_ciphertext_free(h[r]);
    for (size_t r = 0; r < ns + 1; r++)
        cdl_ckks_ciphertext_free(outs[r]);
    cdl_ckks_ciphertext_free(a);
    cdl_ckks_ciphertext_free(a_copy);
    cdl_ckks_galois_keys_free(gk);
    vecs_free(&v);
    t_teardown(&t);
}

static void test_mismatch_errors(void **state)
{
    (void)state;
    tctx t;
    setup_cfg(&t, &CFG_ALPHA2);
    vecs v;
    vecs_new(&v, &t);
    const cdl_ckks_context *ctx = t.ctx;
    cdl_ckks_ciphertext *a = t_encrypt(&t, v.re, v.im, 4, 1), *b = t_encrypt(&t, v.re2, v.im2, 3, 1);
    cdl_ckks_ciphertext *o = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &o), CDL_OK);
    assert_int_equal(cdl_ckks_add(ctx, a, b, o), CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "cdl_ckks_match_levels"));
    assert_int_equal(cdl_ckks_mul_relin(ctx, t.rlk, a, b, o), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_ckks_match_levels(ctx, a, b), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_level(a), 3);
    assert_int_equal(cdl_ckks_add(ctx, a, b, o), CDL_OK);
    cdl_ckks_ciphertext_set_scale(b, cdl_ckks_ciphertext_scale(b) * (1 + 1e-6));
    assert_int_equal(cdl_ckks_sub(ctx, a, b, o), CDL_ERR_MISMATCH);
    assert_non_null(strstr(cdl_last_error(), "1e-9"));
    assert_non_null(strstr(cdl_last_error(), "cdl_ckks_rescale"));
    cdl_ckks_ciphertext_set_scale(b, cdl_ckks_ciphertext_scale(a) * (1 + 1e-12));
    assert_int_equal(cdl_ckks_sub(ctx, a, b, o), CDL_OK);
    /* size-3 operands cannot be multiplied or rotated */
    assert_int_equal(cdl_ckks_mul(ctx, a, b, o), CDL_OK);
    assert_int_equal(cdl_ckks_mul(ctx, o, b, o), CDL_ERR_MISMATCH);
    /* plaintext below the ciphertext level */
    cdl_ckks_plaintext *pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_encode(ctx, v.re, 4, cdl_ckks_default_scale(ctx), 1, pt), CDL_OK);
    assert_int_equal(cdl_ckks_add_plain(ctx, a, pt, o), CDL_ERR_MISMATCH);
    /* a ciphertext of another context */
    cdl_ckks_param_spec s;
    t_spec(&s, 10, 55, 2, 55, 1, 0);
    cdl_ckks_context *other = NULL;
    assert_int_equal(cdl_ckks_context_new(&s, &other), CDL_OK);
    cdl_ckks_ciphertext *x = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(other, &x), CDL_OK);
    assert_int_equal(cdl_ckks_add(ctx, a, x, o), CDL_ERR_MISMATCH);
    cdl_ckks_ciphertext_free(x);
    cdl_ckks_context_free(other);
    cdl_ckks_plaintext_free(pt);
    cdl_ckks_ciphertext_free(a), cdl_ckks_ciphertext_free(b), cdl_ckks_ciphertext_free(o);
    vecs_free(&v);
    t_teardown(&t);
}

/* The same pipeline with 1 and with 2 threads gives the same bytes. */
static void run_pipeline(tctx *t, const cdl_ckks_galois_keys *gk, const cdl_ckks_ciphertext *a,
                         const cdl_ckks_ciphertext *b, cdl_ckks_ciphertext *o)
{
    const int steps[2] = {1, -3};
    cdl_ckks_ciphertext *r[2] = {NULL, NULL};
    assert_int_equal(cdl_ckks_ciphertext_new(t->ctx, &r[0]), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(t->ctx, &r[1]), CDL_OK);
    assert_int_equal(cdl_ckks_mul_relin(t->ctx, t->rlk, a, b, o), CDL_OK);
    assert_int_equal(cdl_ckks_rescale(t->ctx, o, o), CDL_OK);
    assert_int_equal(cdl_ckks_rotate_hoisted(t->ctx, gk, o, steps, 2, r), CDL_OK);
    assert_int_equal(cdl_ckks_add(t->ctx, r[0], r[1], o), CDL_OK);
    cdl_ckks_ciphertext_free(r[0]);
    cdl_ckks_ciphertext_free(r[1]);
}

static void test_thread_determinism(void **state)
{
    (void)state;
    tctx t;
    setup_cfg(&t, &CFG_ALPHA2);
    vecs v;
    vecs_new(&v, &t);
    const cdl_ckks_context *ctx = t.ctx;
    const int steps[2] = {1, -3};
    cdl_ckks_galois_keys *gk = NULL;
    assert_int_equal(cdl_ckks_keygen_galois(ctx, t.sk, steps, 2, 0, t.rng, &gk), CDL_OK);
    cdl_ckks_ciphertext *a = t_encrypt(&t, v.re, v.im, 4, 1), *b = t_encrypt(&t, v.re2, v.im2, 4, 1);
    cdl_ckks_ciphertext *o1 = NULL, *o2 = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &o1), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_new(ctx, &o2), CDL_OK);
    int saved = cdl_get_threads();
    cdl_set_threads(1);
    run_pipeline(&t, gk, a, b, o1);
    cdl_set_threads(2);
    run_pipeline(&t, gk, a, b, o2);
    cdl_set_threads(saved);
    assert_int_equal(o1->level, o2->level);
    assert_memory_equal(o1->data, o2->data, 2 * (size_t)(o1->level + 1) * ctx->n * 8);
    /* and key generation from the same seed too */
    uint8_t seed[CDL_RNG_SEED_BYTES] = {99};
    cdl_ckks_secret_key *sk[2];
    cdl_ckks_relin_key *rk[2];
    for (int th = 1; th <= 2; th++) {
        cdl_set_threads(th);
        cdl_rng *rng = NULL;
        assert_int_equal(cdl_rng_new_seeded_insecure(seed, &rng), CDL_OK);
        assert_int_equal(cdl_ckks_keygen_secret(ctx, rng, &sk[th - 1]), CDL_OK);
        assert_int_equal(cdl_ckks_keygen_relin(ctx, sk[th - 1], rng, &rk[th - 1]), CDL_OK);
        cdl_rng_free(rng);
    }
    cdl_set_threads(saved);
    assert_memory_equal(rk[0]->ksk.data, rk[1]->ksk.data, (size_t)ctx->dnum * 2 * ctx->qp_count * ctx->n * 8);
    for (int i = 0; i < 2; i++) {
        cdl_ckks_secret_key_free(sk[i]);
        cdl_ckks_relin_key_free(rk[i]);
    }
    cdl_ckks_ciphertext_free(a), cdl_ckks_ciphertext_free(b), cdl_ckks_ciphertext_free(o1), cdl_ckks_ciphertext_free(o2);
    cdl_ckks_galois_keys_free(gk);
    vecs_free(&v);
    t_teardown(&t);
}

static void test_sparse_secret(void **state)
{
    (void)state;
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 55, 2, 55, 1, 0);
    s.secret_hamming_weight = 64;
    tctx t;
    t_setup(&t, &s, 33);
    size_t nz = 0;
    for (size_t i = 0; i < t.ctx->n; i++)
        nz += t.sk->coeffs[i] != 0;
    assert_int_equal(nz, 64);
    vecs v;
    vecs_new(&v, &t);
    cdl_ckks_ciphertext *a = t_encrypt(&t, v.re, v.im, 2, 1), *b = t_encrypt(&t, v.re2, v.im2, 2, 0);
    assert_int_equal(cdl_ckks_mul_relin(t.ctx, t.rlk, a, b, a), CDL_OK);
    assert_int_equal(cdl_ckks_rescale(t.ctx, a, a), CDL_OK);
    for (size_t i = 0; i < t.slots; i++) {
        double complex z = (v.re[i] + I * v.im[i]) * (v.re2[i] + I * v.im2[i]);
        v.wre[i] = creal(z), v.wim[i] = cimag(z);
    }
    check(&t, &v, a, "h=64 secret: mul_relin + rescale", MUL_BITS);
    cdl_ckks_ciphertext_free(a), cdl_ckks_ciphertext_free(b);
    vecs_free(&v);
    t_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_encrypt_decrypt, &CFG_ALPHA1),
        cmocka_unit_test_prestate(test_encrypt_decrypt, &CFG_ALPHA2),
        cmocka_unit_test_prestate(test_linear_ops, &CFG_ALPHA1),
        cmocka_unit_test_prestate(test_linear_ops, &CFG_ALPHA2),
        cmocka_unit_test_prestate(test_mul_relin_rescale, &CFG_ALPHA1),
        cmocka_unit_test_prestate(test_mul_relin_rescale, &CFG_ALPHA2),
        cmocka_unit_test_prestate(test_rotations, &CFG_ALPHA1),
        cmocka_unit_test_prestate(test_rotations, &CFG_ALPHA2),
        cmocka_unit_test(test_mismatch_errors),
        cmocka_unit_test(test_thread_determinism),
        cmocka_unit_test(test_sparse_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
