/*
 * test_learn_util.h: what the encrypted-training tests share (test_logreg.c,
 * test_learn_softmax.c, test_learn_mlp.c): the bootstrapping fixture at
 * INSECURE small parameters and the comparison of two weight vectors.
 */
#ifndef TEST_LEARN_UTIL_H
#define TEST_LEARN_UTIL_H

#include <math.h>
#include <stddef.h>

#include "cryptodl/learn.h"
#include "test_ckks_util.h"

/* N = 2^11 and the insecure bootstrapping preset, given the 9 computation levels of the 128-bit one by
 * cdl_logreg_bootstrap_preset (for tests only); each test adds the Galois keys its trainer needs (gk). */
typedef struct bfixture {
    cdl_ckks_param_spec spec;
    cdl_ckks_bootstrap_params bp;
    tctx t;
    cdl_ckks_bootstrapper *bt;
    cdl_ckks_bootstrap_keys *bk;
    cdl_ckks_galois_keys *gk;
    int boot_level; /* the bootstrap's output level */
} bfixture;

/* Context, keys and bootstrapper, drawn from the seeded generator of `tag`. */
static inline void bfx_setup_bootstrapping(bfixture *f, uint8_t tag)
{
    assert_int_equal(cdl_logreg_bootstrap_preset(11, &f->spec, &f->bp), CDL_OK);
    assert_true(f->spec.allow_insecure); /* INSECURE test parameters */
    t_setup(&f->t, &f->spec, tag);
    assert_int_equal(cdl_ckks_bootstrapper_new(f->t.ctx, &f->bp, &f->bt), CDL_OK);
    assert_int_equal(cdl_ckks_bootstrap_keygen(f->bt, f->t.sk, f->t.rng, &f->bk), CDL_OK);
    cdl_ckks_bootstrap_info info;
    assert_int_equal(cdl_ckks_bootstrapper_info(f->bt, &info), CDL_OK);
    f->boot_level = info.level_out;
}

static inline void bfx_teardown(bfixture *f)
{
    cdl_ckks_galois_keys_free(f->gk);
    cdl_ckks_bootstrap_keys_free(f->bk);
    cdl_ckks_bootstrapper_free(f->bt);
    t_teardown(&f->t);
}

/* max |a_i - b_i| over n values; *big becomes the larger of itself and max |b_i| (start it at 0). */
static inline double t_max_diff(const double *a, const double *b, size_t n, double *big)
{
    double diff = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs(a[i] - b[i]));
        *big = fmax(*big, fabs(b[i]));
    }
    return diff;
}

#endif
