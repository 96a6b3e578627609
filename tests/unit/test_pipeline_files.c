/* test_pipeline_files.c: the CLI's step functions (tools/he_steps.c, compiled
 * in with tools/cli.c and tools/plan_file.c) on key and batch files.
 *
 * Batch packing, with a small hand-built network at N = 2^11 (allow_insecure:
 * 1,024 images per batch) so that several batches stay fast:
 *   - keygen writes secret.key with mode 0600; keys load back; a secret key
 *     given where the relinearization or public key is expected is refused;
 *   - 2,500 images -> a CDLPARTS file of 3 batches, 700 -> one plain batch;
 *     evaluate -> decrypt gives, image by image, the logits of the plaintext
 *     reference runtime (cdl_nn_run) within 1e-3 and the same argmax;
 *   - refusals: logits given to evaluate, images given to decrypt, --out equal
 *     to --in, a truncated container (and no half-written output is left).
 *
 * Slots packing, with models/mnist_cryptonets.onnx compiled as the commands
 * do (he_model_open with --packing slots, then again from the plan file it
 * writes) and 5 real MNIST test images:
 *   - keygen also writes galois.key (the plan's rotation steps); a secret key
 *     given as the Galois keys is refused;
 *   - encrypt (3 batches of up to 2 images in a CDLPARTS file) -> evaluate with
 *     relin.key + galois.key -> decrypt: the argmax of cdl_nn_run on the same
 *     images and logits within SLOTS_LOGIT_TOL;
 *   - refusals, each with a message saying what is wrong: Galois keys missing
 *     one rotation step (in memory and from a file), no galois.key, the
 *     encrypted images given to decrypt (same ciphertext count as the logits:
 *     the level tells them apart), and a packing mismatch both ways (a slots
 *     file given to a batch plan of the same model; batch and slots plans of
 *     the small network).
 *
 * SLOTS_LOGIT_TOL: `cryptodl predict --packing slots` measured max |logit
 * difference| 3.9e-4 on 4 images (logits up to 25); 5e-3 leaves 10x margin. */
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

#define SLOTS_LOGIT_TOL 5e-3
#define SLOTS_IMAGES 5

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
    static const char *const files[] = {
        "keys/secret.key", "keys/relin.key", "keys/public.key", "many.ct", "many_out.ct", "one.ct", "one_out.ct",
        "cut.ct", "cut_out.ct", "x.ct", "skeys/secret.key", "skeys/relin.key", "skeys/public.key",
        "skeys/galois.key", "short.key", "plan.json", "slots.ct", "slots_out.ct", "tiny_slots.ct", "tiny_batch.ct",
        "stderr.txt"};
    char p[256];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/keys", dir);
    rmdir(p);
    snprintf(p, sizeof p, "%s/skeys", dir);
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
    assert_int_equal(he_evaluate_file("test", plan, ctx, rlk, NULL, path_of(in), path_of(out), &st), CLI_EXIT_OK);
    assert_int_equal(st.images, n);
    assert_int_equal(st.batches, want_batches);
    size_t m = 0;
    assert_int_equal(he_decrypt_file("test", plan, ctx, sk, path_of(out), NULL, NULL, &got, &m), CLI_EXIT_OK);
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
    assert_int_equal(he_keygen("test", plan, ctx, kdir, &kr), CLI_EXIT_OK);
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
    assert_int_equal(he_evaluate_file("test", plan, ctx, rlk, NULL, path_of("many_out.ct"), path_of("x.ct"), &st),
                     CLI_EXIT_FAILURE); /* logits are not images */
    assert_int_equal(access(path_of("x.ct"), F_OK), -1); /* the refused output is not left behind */
    assert_int_equal(he_decrypt_file("test", plan, ctx, sk, path_of("one.ct"), NULL, NULL, &logits, &n),
                     CLI_EXIT_FAILURE);
    assert_null(logits);
    assert_int_equal(he_evaluate_file("test", plan, ctx, rlk, NULL, path_of("one.ct"), path_of("one.ct"), &st),
                     CLI_EXIT_USAGE);
    assert_true(file_starts_with(path_of("one.ct"), "CDLHEBAT")); /* untouched */
    /* a container cut short: refused by the container parser */
    const uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(he_map_file("test", path_of("many.ct"), &data, &len), 0);
    assert_int_equal(he_write_file("test", path_of("cut.ct"), data, len - 1000, 0), 0);
    he_unmap_file(data, len);
    assert_int_equal(he_evaluate_file("test", plan, ctx, rlk, NULL, path_of("cut.ct"), path_of("cut_out.ct"), &st),
                     CLI_EXIT_FAILURE);
    assert_int_equal(access(path_of("cut_out.ct"), F_OK), -1);

    cdl_ckks_public_key_free(pk);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
}

/* ---- slots packing ----------------------------------------------------------- */

/* stderr of the steps into a file while `captured` runs, then into buf. */
static int saved_stderr = -1;

static void capture_begin(void)
{
    fflush(stderr);
    saved_stderr = dup(2);
    FILE *f = fopen(path_of("stderr.txt"), "w");
    assert_non_null(f);
    dup2(fileno(f), 2);
    fclose(f);
}

static const char *capture_end(void)
{
    static char buf[8192];
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(path_of("stderr.txt"), "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fputs(buf, stderr); /* still shown in the test log */
    return buf;
}

static void expect_message(const char *got, const char *needle)
{
    if (!strstr(got, needle))
        fail_msg("the message lacks '%s': %s", needle, got);
}

static void test_slots_files(void **state)
{
    (void)state;
    char model[1024], keys[256], p[300];
    snprintf(model, sizeof model, "%s/models/mnist_cryptonets.onnx", tg_source_dir());
    snprintf(keys, sizeof keys, "%s", path_of("skeys"));
    /* compile as the commands do, write the plan file, and open the model again from it */
    he_model_args ma;
    he_model_args_init(&ma);
    assert_int_equal(he_model_option("test", 'M', "slots", &ma), 1);
    he_model first, m;
    assert_int_equal(he_model_open("test", model, &ma, &first), CLI_EXIT_OK);
    assert_int_equal(first.rec.packing, CDL_HE_PACKING_SLOTS);
    char *json = plan_record_json(&first.rec, model);
    assert_non_null(json);
    assert_int_equal(he_write_file("test", path_of("plan.json"), (const uint8_t *)json, strlen(json), 0), 0);
    free(json);
    he_model_close(&first);
    he_model_args_init(&ma);
    ma.plan_path = path_of("plan.json");
    assert_int_equal(he_model_open("test", model, &ma, &m), CLI_EXIT_OK);
    assert_int_equal(cdl_he_plan_packing(m.plan), CDL_HE_PACKING_SLOTS);
    const size_t cap = cdl_he_plan_batch_capacity(m.plan), nout = cdl_he_plan_output_size(m.plan);
    const size_t per = cdl_he_plan_input_size(m.plan);
    const int *steps = NULL;
    size_t n_steps = 0;
    cdl_he_plan_galois_steps(m.plan, &steps, &n_steps);
    assert_true(cap >= 1 && cap < SLOTS_IMAGES);
    assert_true(n_steps > 1);
    assert_true(cdl_he_plan_input_ciphertexts(m.plan) < per);

    /* keygen: galois.key with the plan's steps */
    cdl_ckks_context *ctx2 = NULL;
    assert_int_equal(cdl_he_context_new(m.plan, &ctx2), CDL_OK);
    he_keygen_result kr;
    assert_int_equal(he_keygen("test", m.plan, ctx2, keys, &kr), CLI_EXIT_OK);
    assert_int_equal(kr.galois_steps, n_steps);
    struct stat gst;
    assert_int_equal(stat(he_key_path(p, sizeof p, keys, "galois.key"), &gst), 0);
    assert_int_equal((size_t)gst.st_size, kr.galois_bytes);
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL, *shrt = NULL;
    void *wrong = NULL;
    assert_int_equal(he_load_key("test", ctx2, he_key_path(p, sizeof p, keys, "secret.key"), HE_KEY_SECRET,
                                 (void **)&sk), 0);
    assert_int_equal(he_load_key("test", ctx2, he_key_path(p, sizeof p, keys, "relin.key"), HE_KEY_RELIN,
                                 (void **)&rlk), 0);
    char near[300], rpath[300];
    he_galois_path_near(near, sizeof near, he_key_path(rpath, sizeof rpath, keys, "relin.key"));
    assert_string_equal(near, he_key_path(p, sizeof p, keys, "galois.key"));
    assert_int_equal(he_load_galois("test", m.plan, ctx2, near, &gk), 0);
    assert_non_null(gk);
    capture_begin();
    int rc = he_load_key("test", ctx2, he_key_path(p, sizeof p, keys, "secret.key"), HE_KEY_GALOIS, &wrong);
    expect_message(capture_end(), "is a SECRET key");
    assert_int_equal(rc, -1);
    assert_null(wrong);

    /* 5 real MNIST images: encrypt (3 batches) -> evaluate -> decrypt, against cdl_nn_run */
    char data_dir[1024];
    snprintf(data_dir, sizeof data_dir, "%s/data", tg_source_dir());
    cdl_dataset *ds = NULL;
    assert_int_equal(cdl_dataset_load("mnist", data_dir, "test", SLOTS_IMAGES, &ds), CDL_OK);
    assert_int_equal(cdl_dataset_image_size(ds), per);
    double *img = malloc(SLOTS_IMAGES * per * sizeof *img), *ref = malloc(SLOTS_IMAGES * nout * sizeof *ref),
           *got = NULL;
    assert_true(img && ref);
    for (size_t i = 0; i < SLOTS_IMAGES * per; i++)
        img[i] = ds->pixels[i];
    assert_int_equal(cdl_nn_run(m.graph, img, SLOTS_IMAGES, ref), CDL_OK);
    he_file_stats st;
    const size_t batches = (SLOTS_IMAGES + cap - 1) / cap;
    assert_int_equal(he_encrypt_file("test", m.plan, ctx2, NULL, sk, img, SLOTS_IMAGES, path_of("slots.ct"), &st),
                     CLI_EXIT_OK);
    assert_int_equal(st.batches, batches);
    assert_true(file_starts_with(path_of("slots.ct"), "CDLPARTS"));
    assert_int_equal(he_evaluate_file("test", m.plan, ctx2, rlk, gk, path_of("slots.ct"), path_of("slots_out.ct"),
                                      &st), CLI_EXIT_OK);
    assert_int_equal(st.images, SLOTS_IMAGES);
    assert_int_equal(st.batches, batches);
    size_t n = 0;
    assert_int_equal(he_decrypt_file("test", m.plan, ctx2, sk, path_of("slots_out.ct"), NULL, NULL, &got, &n),
                     CLI_EXIT_OK);
    assert_int_equal(n, SLOTS_IMAGES);
    double worst = 0;
    for (size_t j = 0; j < SLOTS_IMAGES; j++) {
        assert_int_equal(he_argmax(got + j * nout, nout), he_argmax(ref + j * nout, nout));
        for (size_t k = 0; k < nout; k++)
            worst = fmax(worst, fabs(got[j * nout + k] - ref[j * nout + k]));
    }
    fprintf(stderr, "slots through files: %d images, max |logit - reference| %.2e\n", SLOTS_IMAGES, worst);
    assert_true(worst < SLOTS_LOGIT_TOL);
    free(got);
    got = NULL;

    /* Galois keys without one of the steps: refused before any work, in memory and from a file */
    cdl_rng *rng = NULL;
    assert_int_equal(cdl_rng_new_system(&rng), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_galois(ctx2, sk, steps + 1, n_steps - 1, 0, rng, &shrt), CDL_OK);
    cdl_rng_free(rng);
    char want[128];
    snprintf(want, sizeof want, " 1 of the %zu rotation steps this plan needs (%d)", n_steps, steps[0]);
    capture_begin();
    rc = he_evaluate_file("test", m.plan, ctx2, rlk, shrt, path_of("slots.ct"), path_of("x.ct"), &st);
    expect_message(capture_end(), want);
    assert_int_equal(rc, CLI_EXIT_FAILURE);
    assert_int_equal(access(path_of("x.ct"), F_OK), -1);
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_ckks_galois_keys_save(ctx2, shrt, 0, &blob, &len), CDL_OK);
    cdl_ckks_galois_keys_free(shrt);
    shrt = NULL;
    assert_int_equal(he_write_file("test", path_of("short.key"), blob, len, 0), 0);
    cdl_free_bytes(blob);
    capture_begin();
    rc = he_load_galois("test", m.plan, ctx2, path_of("short.key"), &shrt);
    const char *msg = capture_end();
    expect_message(msg, want);
    expect_message(msg, "short.key");
    expect_message(msg, "cryptodl keygen");
    assert_int_equal(rc, -1);
    assert_null(shrt);
    unlink(path_of("short.key"));
    /* no Galois keys at all */
    capture_begin();
    rc = he_load_galois("test", m.plan, ctx2, path_of("short.key"), &shrt);
    msg = capture_end();
    expect_message(msg, "slots packing");
    expect_message(msg, "does not exist");
    assert_int_equal(rc, -1);
    capture_begin();
    rc = he_evaluate_file("test", m.plan, ctx2, rlk, NULL, path_of("slots.ct"), path_of("x.ct"), &st);
    expect_message(capture_end(), "needs the client's Galois keys");
    assert_int_equal(rc, CLI_EXIT_FAILURE);

    /* the encrypted images given to decrypt: as many ciphertexts as logits, at the input level */
    capture_begin();
    rc = he_decrypt_file("test", m.plan, ctx2, sk, path_of("slots.ct"), NULL, NULL, &got, &n);
    expect_message(capture_end(), "is it the encrypted images?");
    assert_int_equal(rc, CLI_EXIT_FAILURE);
    assert_null(got);

    /* a packing mismatch: the client's slots batches at a server compiled in batch packing */
    he_model_args_init(&ma);
    he_model mb;
    assert_int_equal(he_model_open("test", model, &ma, &mb), CLI_EXIT_OK);
    assert_int_equal(cdl_he_plan_packing(mb.plan), CDL_HE_PACKING_BATCH);
    cdl_ckks_context *ctxb = NULL;
    assert_int_equal(cdl_he_context_new(mb.plan, &ctxb), CDL_OK);
    capture_begin();
    rc = he_evaluate_file("test", mb.plan, ctxb, rlk, NULL, path_of("slots.ct"), path_of("x.ct"), &st);
    msg = capture_end();
    expect_message(msg, "batch packing");
    expect_message(msg, "slots");
    assert_int_equal(rc, CLI_EXIT_FAILURE);
    assert_int_equal(access(path_of("x.ct"), F_OK), -1);
    cdl_ckks_context_free(ctxb);
    he_model_close(&mb);

    free(img);
    free(ref);
    cdl_dataset_free(ds);
    cdl_ckks_galois_keys_free(gk);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
    cdl_ckks_context_free(ctx2);
    he_model_close(&m);
    for (const char *const *f = (const char *const[]){"secret.key", "relin.key", "public.key", "galois.key", NULL};
         *f; f++)
        unlink(he_key_path(p, sizeof p, keys, *f)); /* 330 MB: not kept until teardown */
}

/* The other direction on the small network: a batch-packing file at a slots server (and back). */
static void test_packing_mismatch(void **state)
{
    (void)state;
    cdl_he_options opt;
    cdl_he_options_default(&opt);
    opt.log_n = 11;
    opt.allow_insecure = 1;
    opt.packing = CDL_HE_PACKING_SLOTS;
    cdl_he_plan *sp = NULL;
    cdl_ckks_context *sctx = NULL;
    assert_int_equal(cdl_he_plan_new(&tg.g, &opt, &sp), CDL_OK);
    assert_int_equal(cdl_he_plan_packing(sp), CDL_HE_PACKING_SLOTS);
    assert_int_equal(cdl_he_context_new(sp, &sctx), CDL_OK);
    cdl_rng *rng = NULL;
    cdl_ckks_secret_key *sk = NULL, *ssk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL;
    assert_int_equal(cdl_rng_new_system(&rng), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(ctx, rng, &sk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_relin(ctx, sk, rng, &rlk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_secret(sctx, rng, &ssk), CDL_OK);
    assert_int_equal(cdl_he_keygen_galois(sp, sctx, ssk, rng, &gk), CDL_OK);
    double *x = make_images(3);
    he_file_stats st;
    assert_int_equal(he_encrypt_file("test", plan, ctx, NULL, sk, x, 3, path_of("tiny_batch.ct"), &st), CLI_EXIT_OK);
    assert_int_equal(he_encrypt_file("test", sp, sctx, NULL, ssk, x, 3, path_of("tiny_slots.ct"), &st), CLI_EXIT_OK);
    capture_begin();
    int rc = he_evaluate_file("test", sp, sctx, rlk, gk, path_of("tiny_batch.ct"), path_of("x.ct"), &st);
    const char *msg = capture_end();
    expect_message(msg, "slots packing");
    assert_int_equal(rc, CLI_EXIT_FAILURE);
    capture_begin();
    rc = he_evaluate_file("test", plan, ctx, rlk, NULL, path_of("tiny_slots.ct"), path_of("x.ct"), &st);
    msg = capture_end();
    expect_message(msg, "batch packing");
    assert_int_equal(rc, CLI_EXIT_FAILURE);
    assert_int_equal(access(path_of("x.ct"), F_OK), -1);
    free(x);
    cdl_ckks_galois_keys_free(gk);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(ssk);
    cdl_ckks_secret_key_free(sk);
    cdl_rng_free(rng);
    cdl_ckks_context_free(sctx);
    cdl_he_plan_free(sp);
}

/* `--flood [BITS]` and `--flood-queries Q` as decrypt and predict parse them:
 * returns the last he_flood_option result (or 0), *rest = optind. */
static int parse_flood(int argc, char **argv, cdl_ckks_flood_options *fl, int *rest)
{
    static const struct option opts[] = {HE_FLOOD_OPTIONS, {"keys", required_argument, 0, 'k'}, {0, 0, 0, 0}};
    memset(fl, 0, sizeof *fl);
    optind = 0; /* full getopt reinitialisation between runs */
    int c, r = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        r = he_flood_option("test", c, optarg, argc, argv, fl);
        if (r < 0)
            break;
    }
    *rest = optind;
    return r;
}

static void test_flood_options(void **state)
{
    (void)state;
    cdl_ckks_flood_options fl;
    int rest = 0;
    char *a1[] = {"decrypt", "model.onnx", "--flood", "35", "--keys", "d", NULL};
    assert_int_equal(parse_flood(6, a1, &fl, &rest), 0);
    assert_int_equal(fl.security_bits, 35);
    assert_int_equal(rest, 5); /* only the model is left */
    assert_string_equal(a1[rest], "model.onnx");
    char *a2[] = {"decrypt", "--flood", "model.onnx", "--keys", "d", NULL};
    parse_flood(5, a2, &fl, &rest);
    assert_int_equal(fl.security_bits, CDL_CKKS_FLOOD_DEFAULT_BITS);
    assert_int_equal(rest, 4);
    assert_string_equal(a2[rest], "model.onnx");
    char *a3[] = {"decrypt", "--flood=33", "m", NULL};
    parse_flood(3, a3, &fl, &rest);
    assert_int_equal(fl.security_bits, 33);
    char *a4[] = {"decrypt", "m", "--flood", "7", NULL};
    assert_int_equal(parse_flood(4, a4, &fl, &rest), -1);
    char *a5[] = {"decrypt", "m", "--flood-queries", "100", "--flood", NULL};
    parse_flood(5, a5, &fl, &rest);
    assert_int_equal(fl.security_bits, CDL_CKKS_FLOOD_DEFAULT_BITS);
    assert_true(fl.queries == 100.0);
    assert_string_equal(a5[rest], "m");
    char *a6[] = {"decrypt", "m", "--flood-queries", "0.5", NULL};
    assert_int_equal(parse_flood(4, a6, &fl, &rest), -1);
    optind = 1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_keys_and_batches), cmocka_unit_test(test_slots_files),
                                       cmocka_unit_test(test_packing_mismatch), cmocka_unit_test(test_flood_options)};
    return cmocka_run_group_tests_name("pipeline step files", tests, setup, teardown);
}
