/*
 * test_ct_shrink.c: a ciphertext whose storage was shrunk to its level
 * (cdl_ckks_ciphertext_shrink) or allocated at a level (loaders) behaves
 * exactly like a full-size one. Every operation is run twice, once on
 * full-size ciphertexts and once on shrunk inputs and shrunk (too small)
 * outputs that must grow; the results must be equal bit for bit (the
 * evaluator is deterministic), and the storage must really shrink.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_ckks_util.h"

/* Equal level, size, scale and every limb of every polynomial. */
static void assert_same(const cdl_ckks_ciphertext *x, const cdl_ckks_ciphertext *y, const char *what)
{
    if (x->level != y->level || x->size != y->size || x->scale != y->scale)
        fail_msg("%s: level %d/%d size %d/%d scale %g/%g", what, x->level, y->level, x->size, y->size, x->scale,
                 y->scale);
    for (int k = 0; k < x->size; k++)
        for (int i = 0; i <= x->level; i++)
            if (memcmp(cdl_ct_poly(x, k, i), cdl_ct_poly(y, k, i), x->n * sizeof(uint64_t)) != 0)
                fail_msg("%s: polynomial %d limb %d differs", what, k, i);
}

static cdl_ckks_ciphertext *fresh(tctx *t)
{
    cdl_ckks_ciphertext *ct = NULL;
    assert_int_equal(cdl_ckks_ciphertext_new(t->ctx, &ct), CDL_OK);
    return ct;
}

/* A copy of src shrunk to its level. */
static cdl_ckks_ciphertext *shrunk_copy(tctx *t, const cdl_ckks_ciphertext *src)
{
    cdl_ckks_ciphertext *ct = fresh(t);
    assert_int_equal(cdl_ckks_ciphertext_copy(t->ctx, src, ct), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_shrink(ct), CDL_OK);
    assert_int_equal(ct->q_count, src->level + 1);
    return ct;
}

/* An output ciphertext holding a level-0 value, shrunk to one limb: every
 * operation at a higher level has to grow it. */
static cdl_ckks_ciphertext *tiny_out(tctx *t, const cdl_ckks_ciphertext *any)
{
    cdl_ckks_ciphertext *ct = fresh(t);
    assert_int_equal(cdl_ckks_drop_to_level(t->ctx, any, 0, ct), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_shrink(ct), CDL_OK);
    assert_int_equal(ct->q_count, 1);
    return ct;
}

static void test_shrunk_equals_full(void **state)
{
    (void)state;
    tctx t;
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 55, 4, 60, 1, 0);
    t_setup(&t, &s, 77);
    const cdl_ckks_context *ctx = t.ctx;
    double *re = cdl_alloc_array(t.slots, sizeof(double)), *im = cdl_alloc_array(t.slots, sizeof(double));
    t_random(t.rng, re, t.slots);
    t_random(t.rng, im, t.slots);
    const int steps[2] = {1, -3};
    cdl_ckks_galois_keys *gk = NULL;
    assert_int_equal(cdl_ckks_keygen_galois(ctx, t.sk, steps, 2, 0, t.rng, &gk), CDL_OK);

    /* a at level 3 (one rescale below the top), b at the top */
    cdl_ckks_ciphertext *top = t_encrypt(&t, re, im, 4, 0), *b = t_encrypt(&t, im, re, 4, 0);
    cdl_ckks_ciphertext *a = fresh(&t);
    assert_int_equal(cdl_ckks_mul_relin(ctx, t.rlk, top, b, a), CDL_OK);
    assert_int_equal(cdl_ckks_rescale(ctx, a, a), CDL_OK);
    cdl_ckks_ciphertext *b3 = fresh(&t);
    assert_int_equal(cdl_ckks_drop_to_level(ctx, b, 3, b3), CDL_OK);
    b3->scale = a->scale; /* same nominal scale so that add/sub accept them */
    cdl_ckks_ciphertext *sa = shrunk_copy(&t, a), *sb3 = shrunk_copy(&t, b3);
    assert_same(a, sa, "copy + shrink");

    cdl_ckks_plaintext *pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(ctx, &pt), CDL_OK);
    assert_int_equal(cdl_ckks_encode(ctx, re, t.slots, a->scale, 3, pt), CDL_OK);

    cdl_ckks_ciphertext *want = fresh(&t), *got = tiny_out(&t, a);
#define BOTH(what, call_full, call_shrunk)                                                                           \
    do {                                                                                                             \
        assert_int_equal((call_full), CDL_OK);                                                                       \
        assert_int_equal((call_shrunk), CDL_OK);                                                                     \
        assert_same(want, got, what);                                                                                \
        cdl_ckks_ciphertext_free(got);                                                                               \
        got = tiny_out(&t, a);                                                                                       \
    } while (0)
    BOTH("add", cdl_ckks_add(ctx, a, b3, want), cdl_ckks_add(ctx, sa, sb3, got));
    BOTH("sub", cdl_ckks_sub(ctx, a, b3, want), cdl_ckks_sub(ctx, sa, sb3, got));
    BOTH("negate", cdl_ckks_negate(ctx, a, want), cdl_ckks_negate(ctx, sa, got));
    BOTH("add_plain", cdl_ckks_add_plain(ctx, a, pt, want), cdl_ckks_add_plain(ctx, sa, pt, got));
    BOTH("mul_plain", cdl_ckks_mul_plain(ctx, a, pt, want), cdl_ckks_mul_plain(ctx, sa, pt, got));
    BOTH("add_const", cdl_ckks_add_const(ctx, a, 0.25, want), cdl_ckks_add_const(ctx, sa, 0.25, got));
    BOTH("mul_const", cdl_ckks_mul_const(ctx, a, -1.5, 0x1p30, want),
         cdl_ckks_mul_const(ctx, sa, -1.5, 0x1p30, got));
    BOTH("mul (size 3)", cdl_ckks_mul(ctx, a, b3, want), cdl_ckks_mul(ctx, sa, sb3, got));
    BOTH("mul_relin", cdl_ckks_mul_relin(ctx, t.rlk, a, b3, want), cdl_ckks_mul_relin(ctx, t.rlk, sa, sb3, got));
    BOTH("rescale", cdl_ckks_rescale(ctx, a, want), cdl_ckks_rescale(ctx, sa, got));
    BOTH("drop_to_level", cdl_ckks_drop_to_level(ctx, a, 2, want), cdl_ckks_drop_to_level(ctx, sa, 2, got));
    BOTH("rotate", cdl_ckks_rotate(ctx, gk, a, 1, want), cdl_ckks_rotate(ctx, gk, sa, 1, got));
    BOTH("copy", cdl_ckks_ciphertext_copy(ctx, a, want), cdl_ckks_ciphertext_copy(ctx, sa, got));
#undef BOTH

    /* relinearize a shrunk size-3 ciphertext into a tiny output, and in place */
    cdl_ckks_ciphertext *m3 = fresh(&t), *m3s = tiny_out(&t, a);
    assert_int_equal(cdl_ckks_mul(ctx, a, b3, m3), CDL_OK);
    assert_int_equal(cdl_ckks_mul(ctx, sa, sb3, m3s), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_shrink(m3s), CDL_OK);
    assert_int_equal(cdl_ckks_relinearize(ctx, t.rlk, m3, want), CDL_OK);
    assert_int_equal(cdl_ckks_relinearize(ctx, t.rlk, m3s, got), CDL_OK);
    assert_same(want, got, "relinearize");
    assert_int_equal(cdl_ckks_relinearize(ctx, t.rlk, m3s, m3s), CDL_OK);
    assert_same(want, m3s, "relinearize in place");
    assert_int_equal(cdl_ckks_ciphertext_shrink(m3s), CDL_OK);
    assert_int_equal(m3s->capacity, 2);

    /* hoisted rotations into two tiny outputs */
    cdl_ckks_ciphertext *w2[2] = {fresh(&t), fresh(&t)}, *g2[2] = {tiny_out(&t, a), tiny_out(&t, a)};
    assert_int_equal(cdl_ckks_rotate_hoisted(ctx, gk, a, steps, 2, w2), CDL_OK);
    assert_int_equal(cdl_ckks_rotate_hoisted(ctx, gk, sa, steps, 2, g2), CDL_OK);
    assert_same(w2[0], g2[0], "hoisted rotation 1");
    assert_same(w2[1], g2[1], "hoisted rotation -3");

    /* encryption into a tiny ciphertext grows it; decryption of shrunk ones */
    cdl_ckks_plaintext *top_pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(ctx, &top_pt), CDL_OK);
    assert_int_equal(cdl_ckks_encode(ctx, re, t.slots, cdl_ckks_default_scale(ctx), 4, top_pt), CDL_OK);
    cdl_ckks_ciphertext *enc = tiny_out(&t, a);
    assert_int_equal(cdl_ckks_encrypt_sk(ctx, t.sk, top_pt, t.rng, enc), CDL_OK);
    assert_int_equal(enc->level, 4);
    double *dre = cdl_alloc_array(t.slots, sizeof(double)), *dim = cdl_alloc_array(t.slots, sizeof(double));
    t_decrypt(&t, enc, dre, dim);
    assert_true(t_bits(dre, dim, re, NULL, t.slots) > 20.0);
    double *fre = cdl_alloc_array(t.slots, sizeof(double)), *fim = cdl_alloc_array(t.slots, sizeof(double));
    t_decrypt(&t, a, fre, fim);
    t_decrypt(&t, sa, dre, dim);
    assert_memory_equal(fre, dre, t.slots * sizeof(double));
    assert_memory_equal(fim, dim, t.slots * sizeof(double));

    /* save: the same bytes; load: allocated at the level */
    uint8_t *bytes_full = NULL, *bytes_shrunk = NULL;
    size_t len_full = 0, len_shrunk = 0;
    assert_int_equal(cdl_ckks_ciphertext_save(ctx, a, 0, &bytes_full, &len_full), CDL_OK);
    assert_int_equal(cdl_ckks_ciphertext_save(ctx, sa, 0, &bytes_shrunk, &len_shrunk), CDL_OK);
    assert_int_equal(len_full, len_shrunk);
    assert_memory_equal(bytes_full, bytes_shrunk, len_full);
    cdl_ckks_ciphertext *loaded = NULL;
    assert_int_equal(cdl_ckks_ciphertext_load(ctx, bytes_full, len_full, &loaded), CDL_OK);
    assert_int_equal(loaded->q_count, a->level + 1);
    assert_same(a, loaded, "load");

    cdl_free(bytes_full);
    cdl_free(bytes_shrunk);
    cdl_ckks_ciphertext_free(loaded);
    cdl_free(dre), cdl_free(dim), cdl_free(fre), cdl_free(fim);
    cdl_ckks_ciphertext_free(enc);
    cdl_ckks_plaintext_free(top_pt);
    for (int i = 0; i < 2; i++)
        cdl_ckks_ciphertext_free(w2[i]), cdl_ckks_ciphertext_free(g2[i]);
    cdl_ckks_ciphertext_free(m3), cdl_ckks_ciphertext_free(m3s);
    cdl_ckks_ciphertext_free(want), cdl_ckks_ciphertext_free(got);
    cdl_ckks_plaintext_free(pt);
    cdl_ckks_ciphertext_free(sa), cdl_ckks_ciphertext_free(sb3);
    cdl_ckks_ciphertext_free(a), cdl_ckks_ciphertext_free(b3), cdl_ckks_ciphertext_free(b),
        cdl_ckks_ciphertext_free(top);
    cdl_ckks_galois_keys_free(gk);
    cdl_free(re), cdl_free(im);
    t_teardown(&t);
}

/* Shrink refuses nonsense and is a no-op at the top level. */
static void test_shrink_edges(void **state)
{
    (void)state;
    tctx t;
    cdl_ckks_param_spec s;
    t_spec(&s, 11, 55, 2, 60, 1, 0);
    t_setup(&t, &s, 78);
    assert_int_not_equal(cdl_ckks_ciphertext_shrink(NULL), CDL_OK);
    double *v = cdl_calloc_array(t.slots, sizeof(double));
    cdl_ckks_ciphertext *ct = t_encrypt(&t, v, v, 2, 1);
    uint64_t *before = ct->data;
    assert_int_equal(cdl_ckks_ciphertext_shrink(ct), CDL_OK);
    assert_ptr_equal(ct->data, before); /* already exact: nothing moved */
    assert_int_equal(ct->q_count, 3);
    cdl_ckks_ciphertext_free(ct);
    cdl_free(v);
    t_teardown(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shrunk_equals_full),
        cmocka_unit_test(test_shrink_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
