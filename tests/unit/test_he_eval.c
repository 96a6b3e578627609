/* test_he_eval.c: encrypted batch inference against the plaintext float64
 * reference (cdl_nn_run) and, for the shipped MNIST model, against the
 * PyTorch logits of models/fixtures/mnist_cryptonets.json.
 *
 * Small rings (N = 2^11, allow_insecure) keep the tests fast; the code path
 * is the same as at the secure sizes. Tolerances: measured max |encrypted -
 * reference| 1.3e-6 on the tiny graph (100 random images) and 7.2e-6 on the
 * MNIST model (8 images, logits up to ~30) at scale 2^30, 1.7e-5 against
 * PyTorch's float32 logits; the bounds below leave ~10x margin. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "runtime/he_runtime.h"
#include "test_he_util.h"

#define TINY_TOL 1e-4   /* |encrypted - reference| on the tiny graph (logits ~1) */
#define MNIST_TOL 1e-4  /* on the MNIST model (logits up to ~40) */

/* Every supported kind: conv (padding) -> x^2 -> avgpool -> flatten -> dense
 * -> general quadratic -> +-1 affine -> a*x^2+c -> dense. */
static double conv_w[18], conv_b[2], fc1_w[18 * 6], fc1_b[6], aff_w[6], aff_b[6], fc2_w[6 * 3], fc2_b[3];
static double quad[3] = {0.1, 0.5, 0.25}, half_sq[3] = {-0.1, 0.0, 0.5};

static void build_tiny(test_graph *t)
{
    cdl_rng *r = tg_seeded_rng(7);
    double *all[] = {conv_w, conv_b, fc1_w, fc1_b, aff_b, fc2_w, fc2_b};
    size_t len[] = {18, 2, 18 * 6, 6, 6, 6 * 3, 3};
    for (size_t a = 0; a < sizeof all / sizeof all[0]; a++)
        for (size_t i = 0; i < len[a]; i++)
            all[a][i] = ((double)(cdl_rng_u64(r) >> 11) / 9007199254740992.0 - 0.5) * 0.8;
    cdl_rng_free(r);
    fc1_w[3] = 0.0; /* zero weights are skipped */
    for (int i = 0; i < 6; i++)
        aff_w[i] = i % 2 ? -1.0 : 1.0;
    tg_init(t, tg_shape3(1, 6, 6));
    cdl_nn_node *nd = tg_add(t, CDL_NN_CONV, "conv", tg_shape3(2, 6, 6));
    nd->kernel[0] = nd->kernel[1] = 3;
    for (int i = 0; i < 4; i++)
        nd->pads[i] = 1;
    nd->weight = conv_w;
    nd->n_weight = 18;
    nd->bias = conv_b;
    nd->n_bias = 2;
    tg_add(t, CDL_NN_SQUARE, "square", tg_shape3(2, 6, 6));
    nd = tg_add(t, CDL_NN_AVGPOOL, "pool", tg_shape3(2, 3, 3));
    nd->kernel[0] = nd->kernel[1] = 2;
    nd->stride[0] = nd->stride[1] = 2;
    nd->count_include_pad = 1;
    tg_add(t, CDL_NN_RESHAPE, "flatten", tg_shape1(18));
    nd = tg_add(t, CDL_NN_DENSE, "fc1", tg_shape1(6));
    nd->weight = fc1_w;
    nd->n_weight = 18 * 6;
    nd->bias = fc1_b;
    nd->n_bias = 6;
    nd = tg_add(t, CDL_NN_POLY, "quad", tg_shape1(6));
    nd->coeffs = quad;
    nd->degree = 2;
    nd = tg_add(t, CDL_NN_AFFINE, "flip", tg_shape1(6));
    nd->weight = aff_w;
    nd->n_weight = 6;
    nd->bias = aff_b;
    nd->n_bias = 6;
    nd = tg_add(t, CDL_NN_POLY, "half_square", tg_shape1(6));
    nd->coeffs = half_sq;
    nd->degree = 2;
    nd = tg_add(t, CDL_NN_DENSE, "fc2", tg_shape1(3));
    nd->weight = fc2_w;
    nd->n_weight = 18;
    nd->bias = fc2_b;
    nd->n_bias = 3;
    cdl_nn_analyze(&t->g);
}

typedef struct he_setup {
    cdl_he_plan *plan;
    cdl_ckks_context *ctx;
    cdl_ckks_secret_key *sk;
    cdl_ckks_relin_key *rlk;
    cdl_rng *rng;
} he_setup;

static void setup_he(he_setup *s, const cdl_nn_graph *g, int log_n)
{
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = log_n;
    opt.allow_insecure = 1;
    memset(s, 0, sizeof *s);
    assert_int_equal(cdl_he_plan_new(g, &opt, &s->plan), CDL_OK);
    assert_int_equal(cdl_he_context_new(s->plan, &s->ctx), CDL_OK);
    s->rng = tg_seeded_rng(42);
    assert_int_equal(cdl_ckks_keygen_secret(s->ctx, s->rng, &s->sk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_relin(s->ctx, s->sk, s->rng, &s->rlk), CDL_OK);
}

static void teardown_he(he_setup *s)
{
    cdl_ckks_relin_key_free(s->rlk);
    cdl_ckks_secret_key_free(s->sk);
    cdl_rng_free(s->rng);
    cdl_ckks_context_free(s->ctx);
    cdl_he_plan_free(s->plan);
}

static double max_diff(const double *a, const double *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (!(fabs(a[i] - b[i]) <= m))
            m = fabs(a[i] - b[i]);
    return m;
}

static int progress_calls;
static void count_progress(void *user, int node, const char *name, size_t done, size_t total)
{
    (void)user;
    (void)node;
    assert_non_null(name);
    assert_true(done <= total);
    progress_calls++;
}

/* The IFMA linear kernel's final reduction (lo + hi 2^52) mod q against
 * 128-bit integer arithmetic, over the whole input range: random words,
 * the largest sums (2^63 - 1) and zero, for primes of 30 to 51 bits. */
static void test_ifma_fold_matches_128bit(void **state)
{
    (void)state;
    const uint64_t primes[] = {1073479681ULL, 1099511480321ULL, 562949953216513ULL, 2251799813554177ULL};
    enum { N = 256 };
    uint64_t lo[N], hi[N], out[N];
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t p = 0; p < sizeof primes / sizeof *primes; p++) {
        const uint64_t q = primes[p], top = ((uint64_t)1 << 63) - 1;
        for (size_t k = 0; k < N; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            lo[k] = k % 4 == 0 ? top : x >> 1;
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            hi[k] = k % 4 == 1 ? top : k % 4 == 2 ? 0 : x >> (1 + k % 40);
        }
        if (!cdl_he_linear_fold_check(q, lo, hi, N, out)) {
            printf("no AVX-512 IFMA on this CPU: the fold is not used, nothing to check\n");
            return;
        }
        for (size_t k = 0; k < N; k++) {
            const unsigned __int128 v = ((unsigned __int128)hi[k] << 52) + lo[k];
            assert_int_equal(out[k], (uint64_t)(v % q));
        }
    }
}

static void test_tiny_graph_matches_reference(void **state)
{
    (void)state;
    test_graph t;
    build_tiny(&t);
    he_setup s;
    setup_he(&s, &t.g, 11);
    /* conv 1 + x^2 1 + pool 1 + fc1 1 + quadratic 2 + sign 0 + a*x^2+c 1 (the factor is free) + fc2 1; the nn
     * layer's convention counts a*x^2+c with a != +-1 as 2 */
    assert_int_equal(cdl_he_plan_levels(s.plan), 8);
    assert_int_equal(cdl_nn_graph_depth(&t.g), 9);
    const size_t n = 100, nin = 36, nout = 3;
    double *img = malloc(n * nin * sizeof *img), *ref = malloc(n * nout * sizeof *ref);
    double *he1 = malloc(n * nout * sizeof *he1), *he2 = malloc(n * nout * sizeof *he2);
    cdl_rng *r = tg_seeded_rng(3);
    for (size_t i = 0; i < n * nin; i++)
        img[i] = (double)(cdl_rng_u64(r) >> 11) / 9007199254740992.0;
    cdl_rng_free(r);
    assert_int_equal(cdl_nn_run(&t.g, img, n, ref), CDL_OK);

    cdl_he_batch *enc = NULL, *out1 = NULL, *out2 = NULL;
    assert_int_equal(cdl_he_encrypt_batch(s.plan, s.ctx, NULL, s.sk, img, n, s.rng, &enc), CDL_OK);
    assert_int_equal(cdl_he_batch_count(enc), nin);
    assert_int_equal(cdl_he_batch_images(enc), n);
    progress_calls = 0;
    cdl_set_threads(1);
    assert_int_equal(cdl_he_evaluate(s.plan, s.ctx, s.rlk, enc, count_progress, NULL, &out1), CDL_OK);
    assert_true(progress_calls >= 9);
    cdl_set_threads(2);
    assert_int_equal(cdl_he_evaluate(s.plan, s.ctx, s.rlk, enc, NULL, NULL, &out2), CDL_OK);
    cdl_set_threads(0);
    assert_int_equal(cdl_he_batch_count(out1), nout);
    assert_int_equal(cdl_he_decrypt_logits(s.plan, s.ctx, s.sk, out1, he1), CDL_OK);
    assert_int_equal(cdl_he_decrypt_logits(s.plan, s.ctx, s.sk, out2, he2), CDL_OK);
    double d = max_diff(he1, ref, n * nout);
    printf("tiny graph, %zu images: max |encrypted - reference| = %.3e\n", n, d);
    assert_true(d < TINY_TOL);
    /* the thread count does not change a single bit */
    assert_memory_equal(he1, he2, n * nout * sizeof *he1);
    /* the fused linear kernel (IFMA where the CPU has it, and the portable
     * one) is bit-identical to one mul_const + add per term */
    for (int mode = 0; mode < 3; mode++) {
        cdl_he_batch_free(out2);
        out2 = NULL;
        if (mode == 0)
            cdl_he_set_reference_linear(1);
        else
            cdl_he_set_linear_kernel(mode); /* 1 portable, 2 IFMA folded every 2 columns */
        assert_int_equal(cdl_he_evaluate(s.plan, s.ctx, s.rlk, enc, NULL, NULL, &out2), CDL_OK);
        cdl_he_set_reference_linear(0);
        cdl_he_set_linear_kernel(0);
        assert_int_equal(cdl_he_decrypt_logits(s.plan, s.ctx, s.sk, out2, he2), CDL_OK);
        assert_memory_equal(he1, he2, n * nout * sizeof *he1);
        for (size_t k = 0; k < nout; k++) {
            uint8_t *b1 = NULL, *b2 = NULL;
            size_t l1 = 0, l2 = 0;
            assert_int_equal(cdl_ckks_ciphertext_save(s.ctx, cdl_he_batch_ciphertext(out1, k), 0, &b1, &l1), CDL_OK);
            assert_int_equal(cdl_ckks_ciphertext_save(s.ctx, cdl_he_batch_ciphertext(out2, k), 0, &b2, &l2), CDL_OK);
            assert_int_equal(l1, l2);
            assert_memory_equal(b1, b2, l1);
            cdl_free_bytes(b1);
            cdl_free_bytes(b2);
        }
    }

    /* the input batch is untouched by evaluation, and survives save/load */
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_he_batch_save(s.ctx, enc, 0, &blob, &len), CDL_OK);
    cdl_he_batch *back = NULL, *out3 = NULL;
    assert_int_equal(cdl_he_batch_load(s.ctx, blob, len, &back), CDL_OK);
    assert_int_equal(cdl_he_evaluate(s.plan, s.ctx, s.rlk, back, NULL, NULL, &out3), CDL_OK);
    assert_int_equal(cdl_he_decrypt_logits(s.plan, s.ctx, s.sk, out3, he2), CDL_OK);
    assert_memory_equal(he1, he2, n * nout * sizeof *he1);
    cdl_he_batch *bad = NULL;
    /* mutated encrypted logits (3 small ciphertexts): every load is OK or a clean refusal, never a crash */
    {
        uint8_t *lb = NULL;
        size_t ll = 0;
        assert_int_equal(cdl_he_batch_save(s.ctx, out1, 0, &lb, &ll), CDL_OK);
        uint8_t *mut = malloc(ll);
        assert_non_null(mut);
        cdl_rng *mr = tg_seeded_rng(9);
        size_t refused = 0;
        for (int it = 0; it < 300; it++) {
            memcpy(mut, lb, ll);
            /* flip a byte in the batch header or a ciphertext header (the first 200 bytes after each length) */
            size_t at = (size_t)(cdl_rng_u64(mr) % (ll < 4096 ? ll : 4096));
            if (it % 3 == 0)
                at = (size_t)(cdl_rng_u64(mr) % 40);
            mut[at] ^= (uint8_t)(1u << (cdl_rng_u64(mr) % 8));
            size_t ml = it % 7 == 0 ? (size_t)(cdl_rng_u64(mr) % ll) : ll;
            cdl_he_batch *m = NULL;
            cdl_status st = cdl_he_batch_load(s.ctx, mut, ml, &m);
            assert_true(st == CDL_OK || st == CDL_ERR_FORMAT || st == CDL_ERR_MISMATCH);
            if (st == CDL_OK)
                assert_non_null(m);
            else {
                assert_null(m);
                refused++;
            }
            cdl_he_batch_free(m);
        }
        assert_true(refused > 0);
        cdl_rng_free(mr);
        free(mut);
        cdl_free_bytes(lb);
    }
    assert_int_equal(cdl_he_batch_load(s.ctx, blob, len - 1, &bad), CDL_ERR_FORMAT);
    blob[0] ^= 1;
    assert_int_equal(cdl_he_batch_load(s.ctx, blob, len, &bad), CDL_ERR_FORMAT);
    assert_null(bad);
    cdl_free_bytes(blob);

    /* the server side refuses what it cannot run, before any work */
    cdl_he_batch *x = NULL;
    assert_int_equal(cdl_he_evaluate(s.plan, s.ctx, NULL, enc, NULL, NULL, &x), CDL_ERR_EXHAUSTED);
    assert_non_null(strstr(cdl_last_error(), "relinearization key"));
    assert_int_equal(cdl_he_evaluate(s.plan, s.ctx, s.rlk, out1, NULL, NULL, &x), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_he_decrypt_logits(s.plan, s.ctx, s.sk, enc, he2), CDL_ERR_MISMATCH);
    assert_int_equal(cdl_he_encrypt_batch(s.plan, s.ctx, NULL, s.sk, img, 1025, s.rng, &x),
                     CDL_ERR_INVALID_ARGUMENT);
    assert_null(x);

    cdl_he_batch_free(back);
    cdl_he_batch_free(out3);
    cdl_he_batch_free(enc);
    cdl_he_batch_free(out1);
    cdl_he_batch_free(out2);
    free(img);
    free(ref);
    free(he1);
    free(he2);
    teardown_he(&s);
}

static void test_public_key_encryption(void **state)
{
    (void)state;
    test_graph t;
    build_tiny(&t);
    he_setup s;
    setup_he(&s, &t.g, 11);
    cdl_ckks_public_key *pk = NULL;
    assert_int_equal(cdl_ckks_keygen_public(s.ctx, s.sk, s.rng, &pk), CDL_OK);
    const size_t n = 7, nout = 3;
    double img[7 * 36], ref[7 * 3], he[7 * 3];
    for (size_t i = 0; i < n * 36; i++)
        img[i] = (double)((i * 37) % 101) / 100.0;
    assert_int_equal(cdl_nn_run(&t.g, img, n, ref), CDL_OK);
    cdl_he_batch *enc = NULL, *out = NULL;
    assert_int_equal(cdl_he_encrypt_batch(s.plan, s.ctx, pk, s.sk, img, n, s.rng, &enc), CDL_ERR_INVALID_ARGUMENT);
    assert_int_equal(cdl_he_encrypt_batch(s.plan, s.ctx, pk, NULL, img, n, s.rng, &enc), CDL_OK);
    assert_int_equal(cdl_he_evaluate(s.plan, s.ctx, s.rlk, enc, NULL, NULL, &out), CDL_OK);
    assert_int_equal(cdl_he_decrypt_logits(s.plan, s.ctx, s.sk, out, he), CDL_OK);
    assert_true(max_diff(he, ref, n * nout) < TINY_TOL);
    cdl_he_batch_free(enc);
    cdl_he_batch_free(out);
    cdl_ckks_public_key_free(pk);
    teardown_he(&s);
}

/* The shipped MNIST model on the 8 fixture images (real test-set digits):
 * encrypted logits against PyTorch's and against cdl_nn_run, same argmax. */
static void test_mnist_model_encrypted(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s/models/fixtures/mnist_cryptonets.json", tg_source_dir());
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        fail_msg("%s: %s", path, err.text);
    json_t *ji = json_object_get(root, "inputs"), *jo = json_object_get(root, "outputs"),
           *jl = json_object_get(root, "labels");
    snprintf(path, sizeof path, "%s/models/mnist_cryptonets.onnx", tg_source_dir());
    cdl_nn_graph *g = NULL;
    assert_int_equal(cdl_nn_load_file(path, &g), CDL_OK);
    const size_t nin = cdl_nn_input_size(g), nout = cdl_nn_output_size(g), n = json_array_size(ji) / nin;
    assert_int_equal(n, 8);
    double *img = malloc(n * nin * sizeof *img), *torch = malloc(n * nout * sizeof *torch);
    double *ref = malloc(n * nout * sizeof *ref), *he = malloc(n * nout * sizeof *he);
    for (size_t i = 0; i < n * nin; i++)
        img[i] = json_number_value(json_array_get(ji, i));
    for (size_t i = 0; i < n * nout; i++)
        torch[i] = json_number_value(json_array_get(jo, i));
    assert_int_equal(cdl_nn_run(g, img, n, ref), CDL_OK);

    he_setup s;
    setup_he(&s, g, 11);
    cdl_he_batch *enc = NULL, *out = NULL;
    assert_int_equal(cdl_he_encrypt_batch(s.plan, s.ctx, NULL, s.sk, img, n, s.rng, &enc), CDL_OK);
    assert_int_equal(cdl_he_evaluate(s.plan, s.ctx, s.rlk, enc, NULL, NULL, &out), CDL_OK);
    assert_int_equal(cdl_he_decrypt_logits(s.plan, s.ctx, s.sk, out, he), CDL_OK);
    double d_ref = max_diff(he, ref, n * nout), d_torch = max_diff(he, torch, n * nout);
    printf("mnist_cryptonets, 8 images: max |encrypted - cdl_nn_run| = %.3e, |encrypted - PyTorch| = %.3e\n", d_ref,
           d_torch);
    assert_true(d_ref < MNIST_TOL);
    assert_true(d_torch < 1e-3); /* PyTorch's logits are float32 */
    for (size_t j = 0; j < n; j++) {
        size_t a = 0, b = 0;
        for (size_t k = 1; k < nout; k++) {
            if (he[j * nout + k] > he[j * nout + a])
                a = k;
            if (torch[j * nout + k] > torch[j * nout + b])
                b = k;
        }
        assert_int_equal(a, b);
        if (json_is_array(jl))
            assert_int_equal(a, json_integer_value(json_array_get(jl, j)));
    }
    cdl_he_batch_free(enc);
    cdl_he_batch_free(out);
    teardown_he(&s);
    cdl_nn_graph_free(g);
    json_decref(root);
    free(img);
    free(torch);
    free(ref);
    free(he);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ifma_fold_matches_128bit),
        cmocka_unit_test(test_tiny_graph_matches_reference),
        cmocka_unit_test(test_public_key_encryption),
        cmocka_unit_test(test_mnist_model_encrypted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
