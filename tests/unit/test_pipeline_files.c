/* test_pipeline_files.c: the CLI's step functions (tools/he_steps.c, compiled
 * in with tools/cli.c and tools/plan_file.c) on key and batch files, with a
 * small hand-built network at N = 2^11 (allow_insecure: 1,024 images per
 * batch) so that several batches stay fast:
 *   - keygen writes secret.key with mode 0600; keys load back; a secret key
 *     given where the relinearization or public key is expected is refused;
 *   - 2,500 images -> a CDLPARTS file of 3 batches, 700 -> one plain batch;
 *     evaluate -> decrypt gives, image by image, the logits of the plaintext
 *     reference runtime (cdl_nn_run) within 1e-3 and the same argmax;
 *   - refusals: logits given to evaluate, images given to decrypt, --out equal
 *     to --in, a truncated container (and no half-written output is left).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../tools/cli.c"
#include "../../tools/he_steps.c"
#include "../../tools/plan_file.c"
#include "unit/test_he_util.h"

static double fc1_w[3 * 4] = {0.5, -0.25, 0.125, 0.75, -0.5, 0.3, 0.2, -0.1, 0.05, 0.6, -0.4, 0.35};
static double fc1_b[3] = {0.1, -0.2, 0.05};
static double fc2_w[2 * 3] = {0.7, -0.3, 0.45, -0.6, 0.25, 0.9};
static double fc2_b[2] = {-0.05, 0.15};

static test_graph tg;
static cdl_he_plan *plan;
static cdl_ckks_context *ctx;
static char dir[64];

static int setup(void **state)
{
    (void)state;
    tg_init(&tg, tg_shape1(4));
    cdl_nn_node *nd = tg_add(&tg, CDL_NN_DENSE, "fc1", tg_shape1(3));
    nd->weight = fc1_w, nd->n_weight = 12, nd->bias = fc1_b, nd->n_bias = 3;
    tg_add(&tg, CDL_NN_SQUARE, "square", tg_shape1(3));
    nd = tg_add(&tg, CDL_NN_DENSE, "fc2", tg_shape1(2));
    nd->weight = fc2_w, nd->n_weight = 6, nd->bias = fc2_b, nd->n_bias = 2;
    cdl_nn_analyze(&tg.g);
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 11;
    opt.allow_insecure = 1;
    if (cdl_he_plan_new(&tg.g, &opt, &plan) != CDL_OK || cdl_he_context_new(plan, &ctx) != CDL_OK)
        return -1;
    snprintf(dir, sizeof dir, "/tmp/cdl_test_steps_XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *const files[] = {"keys/secret.key", "keys/relin.key", "keys/public.key", "many.ct",
                                        "many_out.ct", "one.ct", "one_out.ct", "cut.ct", "cut_out.ct", "x.ct"};
    char p[256];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/keys", dir);
    rmdir(p);
    rmdir(dir);
    cdl_ckks_context_free(ctx);
    cdl_he_plan_free(plan);
    return 0;
}

static const char *path_of(const char *name)
{
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static double *make_images(size_t n)
{
    double *x = malloc(n * 4 * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n * 4; i++)
        x[i] = (double)((i * 2654435761u) % 1000) / 1000.0; /* in [0, 1) */
    return x;
}

static int file_starts_with(const char *path, const char *magic)
{
    char head[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t got = fread(head, 1, 8, f);
    fclose(f);
    return got == 8 && !memcmp(head, magic, 8);
}

/* encrypt -> evaluate -> decrypt n images; the logits match cdl_nn_run */
static void round_trip(const cdl_ckks_secret_key *sk, const cdl_ckks_relin_key *rlk, size_t n, const char *in,
                       const char *out, size_t want_batches)
{
    double *x = make_images(n), *ref = malloc(n * 2 * sizeof *ref), *got = NULL;
    assert_non_null(ref);
    assert_int_equal(cdl_nn_run(&tg.g, x, n, ref), CDL_OK);
    he_file_stats st;
    assert_int_equal(he_encrypt_file("test", plan, ctx, NULL, sk, x, n, path_of(in), &st), CLI_EXIT_OK);
    assert_int_equal(st.batches, want_batches);
    assert_true(file_starts_with(path_of(in), want_batches > 1 ? "CDLPARTS" : "CDLHEBAT"));
    assert_int_equal(he_evaluate_file("test", plan, ctx, rlk, path_of(in), path_of(out), &st), CLI_EXIT_OK);
    assert_int_equal(st.images, n);
    assert_int_equal(st.batches, want_batches);
    size_t m = 0;
    assert_int_equal(he_decrypt_file("test", plan, ctx, sk, path_of(out), &got, &m), CLI_EXIT_OK);
    assert_int_equal(m, n);
    double worst = 0;
    for (size_t j = 0; j < n; j++) {
        assert_int_equal(he_argmax(got + 2 * j, 2), he_argmax(ref + 2 * j, 2));
        for (int k = 0; k < 2; k++)
            worst = fmax(worst, fabs(got[2 * j + k] - ref[2 * j + k]));
    }
    assert_true(worst < 1e-3);
    free(x);
    free(ref);
    free(got);
}

static void test_keys_and_batches(void **state)
{
    (void)state;
    he_keygen_result kr;
    const char *keys = path_of("keys");
    char kdir[256];
    snprintf(kdir, sizeof kdir, "%s", keys);
    assert_int_equal(he_keygen("test", ctx, kdir, &kr), CLI_EXIT_OK);
    struct stat sst;
    char p[300];
    assert_int_equal(stat(he_key_path(p, sizeof p, kdir, "secret.key"), &sst), 0);
    assert_int_equal(sst.st_mode & 0777, 0600);
    assert_int_equal((size_t)sst.st_size, kr.secret_bytes);
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_public_key *pk = NULL;
    void *wrong = NULL;
    assert_int_equal(he_load_key("test", ctx, he_key_path(p, sizeof p, kdir, "secret.key"), HE_KEY_SECRET,
                                 (void **)&sk), 0);
    assert_int_equal(he_load_key("test", ctx, he_key_path(p, sizeof p, kdir, "relin.key"), HE_KEY_RELIN,
                                 (void **)&rlk), 0);
    assert_int_equal(he_load_key("test", ctx, he_key_path(p, sizeof p, kdir, "public.key"), HE_KEY_PUBLIC,
                                 (void **)&pk), 0);
    /* the secret key where the server's key is expected, and keys swapped */
    assert_int_equal(he_load_key("test", ctx, he_key_path(p, sizeof p, kdir, "secret.key"), HE_KEY_RELIN, &wrong),
                     -1);
    assert_null(wrong);
    assert_int_equal(he_load_key("test", ctx, he_key_path(p, sizeof p, kdir, "secret.key"), HE_KEY_PUBLIC, &wrong),
                     -1);
    assert_int_equal(he_load_key("test", ctx, he_key_path(p, sizeof p, kdir, "relin.key"), HE_KEY_SECRET, &wrong),
                     -1);
    assert_null(wrong);

    const size_t cap = cdl_he_plan_batch_capacity(plan);
    assert_int_equal(cap, 1024);
    round_trip(sk, rlk, 2500, "many.ct", "many_out.ct", 3); /* 1024 + 1024 + 452 */
    round_trip(sk, rlk, 700, "one.ct", "one_out.ct", 1);

    /* public-key encryption writes a batch the secret key decrypts through the same path */
    double *x = make_images(3);
    he_file_stats st;
    assert_int_equal(he_encrypt_file("test", plan, ctx, pk, NULL, x, 3, path_of("x.ct"), &st), CLI_EXIT_OK);
    free(x);

    /* refusals */
    double *logits = NULL;
    size_t n = 0;
    assert_int_equal(he_evaluate_file("test", plan, ctx, rlk, path_of("many_out.ct"), path_of("x.ct"), &st),
                     CLI_EXIT_FAILURE); /* logits are not images */
    assert_int_equal(access(path_of("x.ct"), F_OK), -1); /* the refused output is not left behind */
    assert_int_equal(he_decrypt_file("test", plan, ctx, sk, path_of("one.ct"), &logits, &n), CLI_EXIT_FAILURE);
    assert_null(logits);
    assert_int_equal(he_evaluate_file("test", plan, ctx, rlk, path_of("one.ct"), path_of("one.ct"), &st),
                     CLI_EXIT_USAGE);
    assert_true(file_starts_with(path_of("one.ct"), "CDLHEBAT")); /* untouched */
    /* a container cut short: refused by the container parser */
    const uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(he_map_file("test", path_of("many.ct"), &data, &len), 0);
    assert_int_equal(he_write_file("test", path_of("cut.ct"), data, len - 1000, 0), 0);
    he_unmap_file(data, len);
    assert_int_equal(he_evaluate_file("test", plan, ctx, rlk, path_of("cut.ct"), path_of("cut_out.ct"), &st),
                     CLI_EXIT_FAILURE);
    assert_int_equal(access(path_of("cut_out.ct"), F_OK), -1);

    cdl_ckks_public_key_free(pk);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_keys_and_batches)};
    return cmocka_run_group_tests_name("pipeline step files", tests, setup, teardown);
}
