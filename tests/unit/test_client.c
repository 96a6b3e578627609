/* test_client.c: the client layer (include/cryptodl/client.h, src/client/).
 *
 * With models/mnist_cryptonets.onnx and the MNIST test images shipped in data/:
 *   - compile from bytes: the plan's info (packing, shapes, N, capacity,
 *     the model's SHA-256, the parameter hash of serialized objects); bad
 *     options and bytes that are not a model refused with a message;
 *   - the plan file: its JSON opens the same plan again; another model's
 *     plan, a malformed file, and options given with a plan are refused;
 *   - keygen with progress (done counts up to total, in order); keys saved
 *     and loaded back, one kind at a time and as a folder (secret.key 0600);
 *     a secret key given for another kind refused from its header;
 *   - encrypt (uint8, float and double images give one ciphertext format:
 *     every pixel's ciphertext at the plan's level and scale, and every 13th
 *     decrypts to that pixel of every image within PIXEL_TOL) -> evaluate with a key set
 *     holding only the evaluation keys (no secret) -> decrypt: the argmax of
 *     the plaintext reference (the library's float64 runtime) on every image
 *     and the logits within LOGIT_TOL, for the uint8 images (secret-key
 *     encryption) and the double ones (public key); the float images' batch,
 *     shown to be the same ciphertexts of the same values, is not evaluated
 *     a third time (the evaluation never sees the image type: at N = 2^13 it
 *     is the costliest step of this test, ~20 s of CPU under ASan);
 *   - refusals: evaluate without the relinearization key, decrypt without the
 *     secret key, the logits given to evaluate and the images to decrypt,
 *     NaN pixels, a failing output writer;
 *   - slots packing: keygen makes the Galois keys one step at a time (a
 *     progress event per step) and the joined set passes the plan's check;
 *     the evaluation-key buffer (relin + galois) loads on a fresh key set and
 *     evaluates 3 images (2 batches) right; relin.key alone is refused.
 * With a hand-built network at N = 2^11 (allow_insecure, 1,024 images per
 * batch) through the views the CLI uses: 2,500 images become a CDLPARTS stream
 * of 3 batches whose release hints and evaluate progress name each batch.
 *
 * LOGIT_TOL: `cryptodl predict` measures max |logit difference| 2.4e-4 (batch)
 * and 3.9e-4 (slots) on MNIST; 5e-3 leaves 10x margin.
 * PIXEL_TOL: a fresh encryption at the plan's input scale decrypts to its values
 * within 3.3e-6 (secret key) and 2.8e-5 (public key), measured; 2.5e-4 leaves 9x
 * margin and is 16x below the step between two uint8 pixel values (1/255 = 3.9e-3),
 * so a wrong conversion or a shifted image fails. */
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

#include "client/client_internal.h"
#include "unit/test_he_util.h"

#define LOGIT_TOL 5e-3
#define PIXEL_TOL 2.5e-4
#define PIXEL_STRIDE 13 /* decrypt every 13th pixel's ciphertext: 61 of 784, in every row and column */
#define N_IMAGES 12

static uint8_t *model;
static size_t model_len;
static cdl_dataset *ds;

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int setup(void **state)
{
    (void)state;
    char p[1024];
    snprintf(p, sizeof p, "%s/models/mnist_cryptonets.onnx", tg_source_dir());
    model = read_all(p, &model_len);
    snprintf(p, sizeof p, "%s/data", tg_source_dir());
    return model && cdl_dataset_load("mnist", p, "test", N_IMAGES, &ds) == CDL_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(model);
    cdl_dataset_free(ds);
    return 0;
}

static void expect_message(const char *needle)
{
    if (!strstr(cdl_last_error(), needle))
        fail_msg("the message lacks '%s': %s", needle, cdl_last_error());
}

/* ---- progress recorder ---------------------------------------------------------- */

typedef struct events {
    size_t count, last_done, last_total, galois, max_batch, layers_done;
    int ordered;
    char first_stage[32], last_stage[32];
} events;

static void record(void *user, const cdl_client_progress *p)
{
    events *e = user;
    if (e->count && strcmp(p->step, "evaluate") && p->done < e->last_done)
        e->ordered = 0;
    if (!e->count)
        snprintf(e->first_stage, sizeof e->first_stage, "%s", p->stage);
    snprintf(e->last_stage, sizeof e->last_stage, "%s", p->stage);
    e->count++;
    e->last_done = p->done;
    e->last_total = p->total;
    e->galois += !strcmp(p->stage, "Galois keys");
    e->max_batch = p->batch > e->max_batch ? p->batch : e->max_batch;
    e->layers_done += !strcmp(p->step, "evaluate") && p->done == p->total;
}

/* ---- plans ------------------------------------------------------------------------ */

static void test_plan(void **state)
{
    (void)state;
    cdl_client_plan *plan = NULL, *again = NULL;
    assert_int_equal(cdl_client_plan_compile(model, model_len, "mnist_cryptonets.onnx", NULL, &plan), CDL_OK);
    cdl_client_plan_info info, info2;
    assert_int_equal(cdl_client_plan_get_info(plan, &info), CDL_OK);
    assert_int_equal(info.packing, CDL_HE_PACKING_BATCH);
    assert_int_equal(info.input_rank, 3);
    assert_true(info.input_shape[0] == 1 && info.input_shape[1] == 28 && info.input_shape[2] == 28);
    assert_int_equal(info.input_size, 784);
    assert_int_equal(info.output_size, 10);
    assert_int_equal(info.log_n, 13);
    assert_int_equal(info.batch_capacity, 4096);
    assert_int_equal(info.input_ciphertexts, 784);
    assert_int_equal(info.galois_steps, 0);
    assert_int_equal(info.relin_key, 1);
    assert_true(info.log_qp <= cdl_ckks_max_log_qp(13));
    char sha[65];
    cdl_plan_sha256(model, model_len, sha);
    assert_string_equal(info.sha256, sha);
    assert_int_equal(strlen(info.param_hash), 64);
    /* the parameter hash is bytes 8..40 of every serialized object */
    cdl_client_keys *keys = NULL;
    assert_int_equal(cdl_client_keygen(plan, 0, NULL, NULL, &keys), CDL_OK);
    uint8_t *blob = NULL;
    size_t len = 0;
    assert_int_equal(cdl_client_keys_save(keys, CDL_CLIENT_RELIN_KEY, 0, &blob, &len), CDL_OK);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", blob[8 + i]);
    assert_string_equal(hex, info.param_hash);
    cdl_free_bytes(blob);
    cdl_client_keys_free(keys);
    assert_int_equal(cdl_he_plan_levels(cdl_client_plan_he(plan)), info.levels);
    assert_non_null(cdl_client_plan_graph(plan));

    /* the plan file opens the same plan */
    char *json = NULL;
    assert_int_equal(cdl_client_plan_json(plan, &json), CDL_OK);
    assert_non_null(strstr(json, "\"mnist_cryptonets.onnx\""));
    assert_int_equal(cdl_client_plan_open(model, model_len, "m.onnx", (const uint8_t *)json, strlen(json),
                                          "plan.json", NULL, &again),
                     CDL_OK);
    assert_int_equal(cdl_client_plan_get_info(again, &info2), CDL_OK);
    assert_memory_equal(&info, &info2, sizeof info);
    cdl_client_plan_free(again);
    again = NULL;
    /* refusals */
    char *other = strdup(json);
    char *at = strstr(other, sha);
    assert_non_null(at);
    at[0] = at[0] == '0' ? '1' : '0';
    assert_int_equal(cdl_client_plan_open(model, model_len, "m.onnx", (const uint8_t *)other, strlen(other),
                                          "plan.json", NULL, &again),
                     CDL_ERR_MISMATCH);
    expect_message("plan.json was made for another model");
    assert_null(again);
    assert_int_equal(cdl_client_plan_open(model, model_len, NULL, (const uint8_t *)json, 100, "cut.json", NULL, &again),
                     CDL_ERR_FORMAT);
    expect_message("cut.json is not a usable plan file");
    cdl_client_options o;
    cdl_client_options_default(&o);
    o.log_n = 14;
    assert_int_equal(cdl_client_plan_open(model, model_len, NULL, (const uint8_t *)json, strlen(json), NULL, &o,
                                          &again),
                     CDL_ERR_INVALID_ARGUMENT);
    expect_message("not both");
    free(other);
    cdl_client_free(json);
    cdl_client_plan_free(plan);

    /* options out of range, bytes that are not a model */
    cdl_client_options_default(&o);
    o.log_n = 12;
    assert_int_equal(cdl_client_plan_compile(model, model_len, NULL, &o, &plan), CDL_ERR_INVALID_ARGUMENT);
    expect_message("log_n must be 13..16");
    assert_null(plan);
    cdl_client_options_default(&o);
    o.packing = 7;
    assert_int_equal(cdl_client_plan_compile(model, model_len, NULL, &o, &plan), CDL_ERR_INVALID_ARGUMENT);
    expect_message("packing must be batch");
    assert_int_not_equal(cdl_client_plan_compile((const uint8_t *)"not an onnx file", 16, NULL, NULL, &plan), CDL_OK);
    expect_message("cannot import the model");
    assert_null(plan);
    cdl_client_options_default(&o);
    o.approx = "relu=nonsense";
    assert_int_not_equal(cdl_client_plan_compile(model, model_len, NULL, &o, &plan), CDL_OK);
    expect_message("--approx");
    assert_int_equal(cdl_client_struct_size(1), sizeof(cdl_client_plan_info));
    assert_int_equal(cdl_client_struct_size(9), 0);
}

/* ---- keys ------------------------------------------------------------------------- */

static void test_keys(void **state)
{
    (void)state;
    cdl_client_plan *plan = NULL;
    assert_int_equal(cdl_client_plan_compile(model, model_len, NULL, NULL, &plan), CDL_OK);
    events ev = {0, 0, 0, 0, 0, 0, 1, "", ""};
    cdl_client_keys *keys = NULL, *back = NULL;
    assert_int_equal(cdl_client_keygen(plan, CDL_CLIENT_KEYGEN_PUBLIC, record, &ev, &keys), CDL_OK);
    assert_true(ev.ordered);
    assert_int_equal(ev.last_total, 3); /* secret, relinearization, public */
    assert_int_equal(ev.last_done, 3);
    assert_string_equal(ev.first_stage, "secret key");
    assert_string_equal(ev.last_stage, "done");
    for (int k = 0; k < CDL_CLIENT_KEY_KINDS; k++)
        assert_int_equal(cdl_client_keys_has(keys, (cdl_client_key_kind)k), k != CDL_CLIENT_GALOIS_KEYS);
    /* one kind at a time */
    assert_int_equal(cdl_client_keys_new(plan, &back), CDL_OK);
    uint8_t *sk = NULL, *rk = NULL;
    size_t sl = 0, rl = 0;
    assert_int_equal(cdl_client_keys_save(keys, CDL_CLIENT_SECRET_KEY, 0, &sk, &sl), CDL_OK);
    assert_int_equal(cdl_client_keys_save(keys, CDL_CLIENT_RELIN_KEY, 0, &rk, &rl), CDL_OK);
    assert_int_equal(cdl_client_key_kind_of(sk, sl), CDL_CLIENT_SECRET_KEY);
    assert_int_equal(cdl_client_key_kind_of(rk, rl), CDL_CLIENT_RELIN_KEY);
    assert_int_equal(cdl_client_key_kind_of((const uint8_t *)"garbage!", 8), -1);
    assert_int_equal(cdl_client_keys_load(back, CDL_CLIENT_RELIN_KEY, sk, sl, "secret.key"), CDL_ERR_MISMATCH);
    expect_message("secret.key is a SECRET key");
    assert_false(cdl_client_keys_has(back, CDL_CLIENT_RELIN_KEY));
    assert_int_equal(cdl_client_keys_load(back, CDL_CLIENT_SECRET_KEY, rk, rl, "relin.key"), CDL_ERR_MISMATCH);
    expect_message("relin.key holds a relinearization key, not the secret key");
    assert_int_equal(cdl_client_keys_load(back, CDL_CLIENT_RELIN_KEY, rk, rl - 1, "cut.key"), CDL_ERR_FORMAT);
    expect_message("cut.key: ");
    assert_int_equal(cdl_client_keys_load(back, CDL_CLIENT_SECRET_KEY, sk, sl, "secret.key"), CDL_OK);
    assert_true(cdl_client_keys_has(back, CDL_CLIENT_SECRET_KEY));
    memset(sk, 0, sl);
    cdl_free_bytes(sk);
    cdl_free_bytes(rk);
    /* nothing to save */
    assert_int_equal(cdl_client_keys_save(back, CDL_CLIENT_PUBLIC_KEY, 0, &sk, &sl), CDL_ERR_EXHAUSTED);
    assert_int_equal(cdl_client_keys_check(back, NULL), CDL_ERR_EXHAUSTED);
    expect_message("relinearization key");
    cdl_client_keys_free(back);

    /* a folder, as the CLI writes it */
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/cdl_test_client_XXXXXX");
    assert_non_null(mkdtemp(dir));
    char keydir[128], p[192];
    snprintf(keydir, sizeof keydir, "%s/keys", dir);
    assert_int_equal(cdl_client_keys_save_dir(keys, keydir, 0), CDL_OK);
    struct stat st;
    snprintf(p, sizeof p, "%s/secret.key", keydir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(p, sizeof p, "%s", keydir);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(cdl_client_keys_save_dir(keys, keydir, 0), CDL_ERR_IO); /* no silent overwrite */
    expect_message("exists");
    assert_int_equal(cdl_client_keys_new(plan, &back), CDL_OK);
    assert_int_equal(cdl_client_keys_load_dir(back, keydir, 1u << CDL_CLIENT_RELIN_KEY | 1u << CDL_CLIENT_SECRET_KEY),
                     CDL_OK);
    assert_true(cdl_client_keys_has(back, CDL_CLIENT_SECRET_KEY) && cdl_client_keys_has(back, CDL_CLIENT_RELIN_KEY));
    assert_false(cdl_client_keys_has(back, CDL_CLIENT_PUBLIC_KEY));
    assert_int_equal(cdl_client_keys_load_dir(back, keydir, 1u << CDL_CLIENT_GALOIS_KEYS), CDL_ERR_IO);
    expect_message("galois.key");
    cdl_client_keys_free(back);
    for (const char *const *f = (const char *const[]){"secret.key", "relin.key", "public.key", NULL}; *f; f++) {
        snprintf(p, sizeof p, "%s/%s", keydir, *f);
        unlink(p);
    }
    rmdir(keydir);
    rmdir(dir);
    cdl_client_keys_free(keys);
    cdl_client_plan_free(plan);
}

/* ---- encrypt, evaluate, decrypt ---------------------------------------------------- */

static int failing_write(void *user, const uint8_t *data, size_t len)
{
    (void)data;
    size_t *budget = user;
    if (len > *budget)
        return -1;
    *budget -= len;
    return 0;
}

/* The batch of encrypted images (one ciphertext per pixel, image j in slot j): every ciphertext at the
 * same level and scale (*level, *scale: those of the first); returns the largest |decrypted - want| over
 * every image, for every PIXEL_STRIDE-th pixel (decrypting all 784 would cost as much as encrypting them). */
static double encrypted_pixels_error(const cdl_client_plan *plan, const cdl_client_keys *keys, const uint8_t *ct,
                                     size_t ctl, const double *want, size_t n, size_t per, int *level, double *scale)
{
    cdl_he_batch *b = NULL;
    assert_int_equal(cdl_he_batch_load(plan->ctx, ct, ctl, &b), CDL_OK);
    assert_int_equal(cdl_he_batch_images(b), n);
    assert_int_equal(cdl_he_batch_count(b), per);
    cdl_ckks_plaintext *pt = NULL;
    assert_int_equal(cdl_ckks_plaintext_new(plan->ctx, &pt), CDL_OK);
    double *v = malloc(n * sizeof *v), worst = 0;
    assert_non_null(v);
    *level = cdl_ckks_ciphertext_level(cdl_he_batch_ciphertext(b, 0));
    *scale = cdl_ckks_ciphertext_scale(cdl_he_batch_ciphertext(b, 0));
    for (size_t i = 0; i < per; i++) {
        const cdl_ckks_ciphertext *c = cdl_he_batch_ciphertext(b, i);
        assert_int_equal(cdl_ckks_ciphertext_level(c), *level);
        assert_true(cdl_ckks_ciphertext_scale(c) == *scale);
        if (i % PIXEL_STRIDE)
            continue;
        assert_int_equal(cdl_ckks_decrypt(plan->ctx, keys->sk, c, pt), CDL_OK);
        assert_int_equal(cdl_ckks_decode(plan->ctx, pt, v, n), CDL_OK);
        for (size_t j = 0; j < n; j++)
            worst = fmax(worst, fabs(v[j] - want[j * per + i]));
    }
    free(v);
    cdl_ckks_plaintext_free(pt);
    cdl_he_batch_free(b);
    return worst;
}

static void test_round_trip(void **state)
{
    (void)state;
    cdl_client_plan *plan = NULL;
    assert_int_equal(cdl_client_plan_compile(model, model_len, NULL, NULL, &plan), CDL_OK);
    cdl_client_keys *keys = NULL, *server = NULL;
    assert_int_equal(cdl_client_keygen(plan, CDL_CLIENT_KEYGEN_PUBLIC, NULL, NULL, &keys), CDL_OK);
    const size_t per = 784, n = N_IMAGES;
    float *f32 = malloc(n * per * sizeof *f32);
    double *f64 = malloc(n * per * sizeof *f64), *ref = malloc(n * 10 * sizeof *ref),
           *ref8 = malloc(n * 10 * sizeof *ref8);
    uint8_t *u8 = malloc(n * per);
    assert_true(f32 && f64 && ref && ref8 && u8);
    for (size_t i = 0; i < n * per; i++) {
        u8[i] = (uint8_t)lround(ds->pixels[i] * 255.0); /* the IDX bytes */
        f32[i] = (float)(u8[i] / 255.0);
        f64[i] = u8[i] / 255.0;
    }
    assert_int_equal(cdl_client_plan_reference(plan, f64, CDL_CLIENT_F64, n, ref), CDL_OK);
    assert_int_equal(cdl_client_plan_reference(plan, u8, CDL_CLIENT_U8, n, ref8), CDL_OK);
    assert_memory_equal(ref, ref8, n * 10 * sizeof *ref);

    /* the server's key set: only what the evaluation-key buffer holds */
    uint8_t *evk = NULL;
    size_t evl = 0;
    assert_int_equal(cdl_client_keys_save_evaluation(keys, &evk, &evl), CDL_OK);
    assert_int_equal(cdl_client_key_kind_of(evk, evl), CDL_CLIENT_RELIN_KEY);
    assert_int_equal(cdl_client_keys_new(plan, &server), CDL_OK);
    assert_int_equal(cdl_client_keys_load_evaluation(server, evk, evl, "session"), CDL_OK);
    assert_false(cdl_client_keys_has(server, CDL_CLIENT_SECRET_KEY));
    assert_int_equal(cdl_client_keys_check(server, NULL), CDL_OK);

    const void *inputs[3] = {u8, f32, f64};
    const cdl_client_dtype types[3] = {CDL_CLIENT_U8, CDL_CLIENT_F32, CDL_CLIENT_F64};
    double *f32d = malloc(n * per * sizeof *f32d); /* the float images' values, as encrypted */
    assert_non_null(f32d);
    for (size_t i = 0; i < n * per; i++)
        f32d[i] = f32[i];
    const double *values[3] = {f64, f32d, f64}; /* u8[i] / 255.0 == f64[i] exactly */
    uint8_t *ct = NULL, *out = NULL;
    size_t ctl = 0, outl = 0, sk_ctl = 0;
    int level0 = -1;
    double scale0 = 0;
    for (int t = 0; t < 3; t++) {
        assert_int_equal(cdl_client_encrypt_bytes(plan, keys, inputs[t], types[t], n, t == 2, &ct, &ctl), CDL_OK);
        assert_memory_equal(ct, "CDLHEBAT", 8); /* one batch */
        /* one ciphertext format: every pixel at the plan's level and scale, whatever the image type */
        int level;
        double scale;
        const double perr = encrypted_pixels_error(plan, keys, ct, ctl, values[t], n, per, &level, &scale);
        fprintf(stderr, "client encrypt (%s%s): %zu images, level %d, max |decrypted pixel - pixel| %.2e\n",
                t == 0 ? "uint8" : t == 1 ? "float" : "double", t == 2 ? ", public key" : "", n, level, perr);
        assert_true(perr < PIXEL_TOL);
        if (t == 0) {
            level0 = level, scale0 = scale, sk_ctl = ctl;
        } else {
            assert_int_equal(level, level0);
            assert_true(scale == scale0);
        }
        if (t == 1) {
            assert_int_equal(ctl, sk_ctl); /* secret-key encryption: the same bytes per ciphertext */
            cdl_free_bytes(ct); /* the uint8 batch's twin: evaluated above (see the header) */
            continue;
        }
        assert_int_equal(cdl_client_evaluate_bytes(plan, server, ct, ctl, &out, &outl), CDL_OK);
        double *logits = NULL;
        size_t m = 0;
        assert_int_equal(cdl_client_decrypt(plan, keys, out, outl, NULL, NULL, &logits, &m, NULL), CDL_OK);
        assert_int_equal(m, n);
        double worst = 0;
        for (size_t j = 0; j < n; j++) {
            size_t a = 0, b = 0;
            for (size_t k = 1; k < 10; k++) {
                a = logits[j * 10 + k] > logits[j * 10 + a] ? k : a;
                b = ref[j * 10 + k] > ref[j * 10 + b] ? k : b;
            }
            assert_int_equal(a, b);
            for (size_t k = 0; k < 10; k++)
                worst = fmax(worst, fabs(logits[j * 10 + k] - ref[j * 10 + k]));
        }
        fprintf(stderr, "client round trip (%s%s): %zu images, max |logit - reference| %.2e\n",
                t == 0 ? "uint8" : t == 1 ? "float" : "double", t == 2 ? ", public key" : "", n, worst);
        assert_true(worst < LOGIT_TOL);
        cdl_client_free(logits);
        if (t < 2) {
            cdl_free_bytes(ct);
            cdl_free_bytes(out);
        }
    }
    free(f32d);
    /* flooded decryption: the same classes with the noise it reports */
    double *logits = NULL;
    size_t m = 0;
    cdl_ckks_flood_options fl = {30, 0.0, 0.0};
    cdl_ckks_flood_info fi = {0.0, 0.0, 0.0, 0.0};
    cdl_status fst = cdl_client_decrypt(plan, keys, out, outl, &fl, NULL, &logits, &m, &fi);
    if (fst == CDL_OK) {
        assert_true(fi.queries == 10.0); /* the output ciphertexts of this input */
        assert_true(fi.sigma_log2 > 0);
        cdl_client_free(logits);
    } else {
        assert_int_equal(fst, CDL_ERR_PARAMETERS); /* no room at the default scale: said so */
    }

    /* refusals */
    cdl_client_keys *nothing = NULL;
    assert_int_equal(cdl_client_keys_new(plan, &nothing), CDL_OK);
    uint8_t *none = NULL;
    size_t nonel = 0;
    assert_int_equal(cdl_client_evaluate_bytes(plan, nothing, ct, ctl, &none, &nonel), CDL_ERR_EXHAUSTED);
    expect_message("relinearization key");
    assert_null(none);
    assert_int_equal(cdl_client_decrypt(plan, server, out, outl, NULL, NULL, &logits, &m, NULL), CDL_ERR_EXHAUSTED);
    expect_message("secret key");
    assert_null(logits);
    assert_int_equal(cdl_client_encrypt_bytes(plan, nothing, f64, CDL_CLIENT_F64, n, 0, &none, &nonel),
                     CDL_ERR_EXHAUSTED);
    cdl_client_keys_free(nothing);
    uint8_t *bad = NULL;
    size_t badl = 0;
    assert_int_equal(cdl_client_evaluate_bytes(plan, server, out, outl, &bad, &badl), CDL_ERR_MISMATCH);
    expect_message("is it the evaluate output");
    assert_null(bad);
    assert_int_equal(cdl_client_decrypt(plan, keys, ct, ctl, NULL, NULL, &logits, &m, NULL), CDL_ERR_MISMATCH);
    expect_message("is it the encrypted images?");
    f64[5] = NAN;
    assert_int_equal(cdl_client_encrypt_bytes(plan, keys, f64, CDL_CLIENT_F64, n, 0, &bad, &badl),
                     CDL_ERR_INVALID_ARGUMENT);
    expect_message("not a finite number");
    size_t budget = 1000;
    cdl_client_stream io = {NULL, failing_write, &budget, NULL, NULL, NULL, NULL};
    assert_int_equal(cdl_client_encrypt(plan, keys, u8, CDL_CLIENT_U8, n, 0, &io, NULL), CDL_ERR_IO);
    cdl_free_bytes(ct);
    cdl_free_bytes(out);
    cdl_free_bytes(evk);
    free(f32);
    free(f64);
    free(ref);
    free(ref8);
    free(u8);
    cdl_client_keys_free(server);
    cdl_client_keys_free(keys);
    cdl_client_plan_free(plan);
}

/* ---- slots packing ----------------------------------------------------------------- */

static void test_slots(void **state)
{
    (void)state;
    cdl_client_options o;
    cdl_client_options_default(&o);
    o.packing = CDL_HE_PACKING_SLOTS;
    cdl_client_plan *plan = NULL;
    assert_int_equal(cdl_client_plan_compile(model, model_len, NULL, &o, &plan), CDL_OK);
    cdl_client_plan_info info;
    assert_int_equal(cdl_client_plan_get_info(plan, &info), CDL_OK);
    assert_int_equal(info.packing, CDL_HE_PACKING_SLOTS);
    assert_true(info.galois_steps > 1);
    assert_true(info.batch_capacity >= 1 && info.batch_capacity < 3);
    events ev = {0, 0, 0, 0, 0, 0, 1, "", ""};
    cdl_client_keys *keys = NULL, *server = NULL;
    assert_int_equal(cdl_client_keygen(plan, 0, record, &ev, &keys), CDL_OK);
    assert_true(ev.ordered);
    assert_int_equal(ev.last_total, 2 + info.galois_steps);
    assert_int_equal(ev.last_done, ev.last_total);
    assert_int_equal(ev.galois, info.galois_steps + 1); /* the stage's start, then one per step */
    assert_true(cdl_client_keys_has(keys, CDL_CLIENT_GALOIS_KEYS));
    assert_false(cdl_client_keys_has(keys, CDL_CLIENT_PUBLIC_KEY));
    assert_int_equal(cdl_he_check_galois_keys(cdl_client_plan_he(plan), keys->gk), CDL_OK);
    uint8_t *gk = NULL;
    size_t gl = 0;
    assert_int_equal(cdl_client_keys_save(keys, CDL_CLIENT_GALOIS_KEYS, 0, &gk, &gl), CDL_OK);
    assert_int_equal(gl, cdl_he_plan_galois_key_file_bytes(cdl_client_plan_he(plan)));
    assert_int_equal(gl, info.galois_key_bytes);
    cdl_free_bytes(gk);

    uint8_t *evk = NULL, *rk = NULL;
    size_t evl = 0, rl = 0;
    assert_int_equal(cdl_client_keys_save_evaluation(keys, &evk, &evl), CDL_OK);
    assert_int_equal(cdl_client_keys_save(keys, CDL_CLIENT_RELIN_KEY, 0, &rk, &rl), CDL_OK);
    assert_int_equal(evl, rl + gl);
    assert_int_equal(cdl_client_keys_new(plan, &server), CDL_OK);
    assert_int_equal(cdl_client_keys_load_evaluation(server, rk, rl, "relin only"), CDL_ERR_EXHAUSTED);
    expect_message("Galois keys must follow");
    assert_int_equal(cdl_client_keys_load_evaluation(server, evk, evl, "session"), CDL_OK);
    cdl_free_bytes(rk);
    cdl_free_bytes(evk);

    /* 3 images: 2 batches in a CDLPARTS container */
    const size_t n = 3, per = 784;
    double *img = malloc(n * per * sizeof *img), *ref = malloc(n * 10 * sizeof *ref), *logits = NULL;
    assert_true(img && ref);
    for (size_t i = 0; i < n * per; i++)
        img[i] = ds->pixels[i];
    assert_int_equal(cdl_client_plan_reference(plan, img, CDL_CLIENT_F64, n, ref), CDL_OK);
    uint8_t *ct = NULL, *out = NULL;
    size_t ctl = 0, outl = 0, m = 0;
    assert_int_equal(cdl_client_encrypt_bytes(plan, keys, img, CDL_CLIENT_F64, n, 0, &ct, &ctl), CDL_OK);
    assert_memory_equal(ct, "CDLPARTS", 8);
    assert_int_equal(cdl_client_evaluate_bytes(plan, server, ct, ctl, &out, &outl), CDL_OK);
    assert_int_equal(cdl_client_decrypt(plan, keys, out, outl, NULL, NULL, &logits, &m, NULL), CDL_OK);
    assert_int_equal(m, n);
    double worst = 0;
    for (size_t j = 0; j < n; j++) {
        size_t a = 0, b = 0;
        for (size_t k = 1; k < 10; k++) {
            a = logits[j * 10 + k] > logits[j * 10 + a] ? k : a;
            b = ref[j * 10 + k] > ref[j * 10 + b] ? k : b;
        }
        assert_int_equal(a, b);
        for (size_t k = 0; k < 10; k++)
            worst = fmax(worst, fabs(logits[j * 10 + k] - ref[j * 10 + k]));
    }
    fprintf(stderr, "client slots round trip: %zu images in 2 batches, max |logit - reference| %.2e\n", n, worst);
    assert_true(worst < LOGIT_TOL);
    cdl_client_free(logits);
    cdl_free_bytes(ct);
    cdl_free_bytes(out);
    free(img);
    free(ref);
    cdl_client_keys_free(server);
    cdl_client_keys_free(keys);
    cdl_client_plan_free(plan);
}

/* ---- streams of several batches, through the CLI's views -------------------------- */

static double fc1_w[3 * 4] = {0.5, -0.25, 0.125, 0.75, -0.5, 0.3, 0.2, -0.1, 0.05, 0.6, -0.4, 0.35};
static double fc1_b[3] = {0.1, -0.2, 0.05};
static double fc2_w[2 * 3] = {0.7, -0.3, 0.45, -0.6, 0.25, 0.9};
static double fc2_b[2] = {-0.05, 0.15};

typedef struct sink {
    uint8_t *data;
    size_t len;
    size_t releases;
} sink;

static int sink_write(void *user, const uint8_t *data, size_t len)
{
    sink *s = user;
    uint8_t *g = realloc(s->data, s->len + len);
    if (!g)
        return -1;
    memcpy(g + s->len, data, len);
    s->data = g;
    s->len += len;
    return 0;
}

static void sink_release(void *user, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    ((sink *)user)->releases++;
}

static void test_streams(void **state)
{
    (void)state;
    test_graph tg;
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
    cdl_he_plan *he = NULL;
    cdl_ckks_context *ctx = NULL;
    assert_int_equal(cdl_he_plan_new(&tg.g, &opt, &he), CDL_OK);
    assert_int_equal(cdl_he_context_new(he, &ctx), CDL_OK);
    cdl_client_plan *plan = NULL;
    assert_int_equal(cdl_client_plan_view(he, ctx, &plan), CDL_OK);
    cdl_client_plan_info info;
    assert_int_equal(cdl_client_plan_get_info(plan, &info), CDL_OK);
    assert_int_equal(info.batch_capacity, 1024);
    assert_int_equal(info.input_rank, 1);
    char *json = NULL;
    assert_int_equal(cdl_client_plan_json(plan, &json), CDL_ERR_INVALID_ARGUMENT); /* a view has no model */
    /* keys made elsewhere, seen through a view */
    cdl_rng *rng = tg_seeded_rng(7);
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_relin_key *rlk = NULL;
    assert_int_equal(cdl_ckks_keygen_secret(ctx, rng, &sk), CDL_OK);
    assert_int_equal(cdl_ckks_keygen_relin(ctx, sk, rng, &rlk), CDL_OK);
    cdl_rng_free(rng);
    cdl_client_keys *keys = NULL;
    assert_int_equal(cdl_client_keys_view(plan, sk, NULL, rlk, NULL, &keys), CDL_OK);
    assert_int_equal(cdl_client_keys_load(keys, CDL_CLIENT_RELIN_KEY, (const uint8_t *)"x", 1, NULL),
                     CDL_ERR_INVALID_ARGUMENT); /* a view is read-only */

    const size_t n = 2500;
    double *x = malloc(n * 4 * sizeof *x), *ref = malloc(n * 2 * sizeof *ref), *logits = NULL;
    assert_true(x && ref);
    for (size_t i = 0; i < n * 4; i++)
        x[i] = (double)((i * 2654435761u) % 1000) / 1000.0;
    assert_int_equal(cdl_nn_run(&tg.g, x, n, ref), CDL_OK);
    sink in = {NULL, 0, 0}, out = {NULL, 0, 0};
    events eenc = {0, 0, 0, 0, 0, 0, 1, "", ""}, eev = {0, 0, 0, 0, 0, 0, 1, "", ""};
    cdl_client_stream io = {"many.ct", sink_write, &in, record, &eenc, NULL, NULL};
    cdl_client_stats st;
    assert_int_equal(cdl_client_encrypt(plan, keys, x, CDL_CLIENT_F64, n, 0, &io, &st), CDL_OK);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.images, n);
    assert_int_equal(st.bytes, in.len);
    assert_memory_equal(in.data, "CDLPARTS", 8);
    assert_int_equal(eenc.last_done, n);
    assert_int_equal(eenc.max_batch, 3); /* the last event: all 3 done */
    cdl_client_stream io2 = {"many.ct", sink_write, &out, record, &eev, sink_release, &out};
    assert_int_equal(cdl_client_evaluate(plan, keys, in.data, in.len, &io2, &st), CDL_OK);
    assert_int_equal(st.batches, 3);
    assert_int_equal(st.images, n);
    assert_int_equal(out.releases, 3);
    assert_int_equal(eev.max_batch, 2);
    assert_true(eev.layers_done >= 3 * 2); /* every layer of every batch finished */
    size_t m = 0;
    cdl_client_stream io3 = {"logits.ct", NULL, NULL, NULL, NULL, NULL, NULL};
    assert_int_equal(cdl_client_decrypt(plan, keys, out.data, out.len, NULL, &io3, &logits, &m, NULL), CDL_OK);
    assert_int_equal(m, n);
    double worst = 0;
    for (size_t j = 0; j < n * 2; j++)
        worst = fmax(worst, fabs(logits[j] - ref[j]));
    assert_true(worst < 1e-3);
    cdl_client_free(logits);
    /* a container cut short, and a batch of it named in the message */
    assert_int_equal(cdl_client_decrypt(plan, keys, out.data, out.len - 100, NULL, &io3, &logits, &m, NULL),
                     CDL_ERR_FORMAT);
    expect_message("logits.ct");
    assert_int_equal(cdl_client_decrypt(plan, keys, in.data, in.len, NULL, &io3, &logits, &m, NULL), CDL_ERR_MISMATCH);
    expect_message("logits.ct (batch 1 of 3)");
    free(in.data);
    free(out.data);
    free(x);
    free(ref);
    cdl_client_keys_free(keys); /* a view: sk and rlk are still ours */
    assert_int_equal(cdl_ckks_secret_key_save(ctx, sk, 0, &in.data, &in.len), CDL_OK);
    cdl_free_bytes(in.data);
    cdl_client_plan_free(plan);
    cdl_ckks_relin_key_free(rlk);
    cdl_ckks_secret_key_free(sk);
    cdl_ckks_context_free(ctx);
    cdl_he_plan_free(he);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_plan), cmocka_unit_test(test_keys),
                                       cmocka_unit_test(test_round_trip), cmocka_unit_test(test_slots),
                                       cmocka_unit_test(test_streams)};
    return cmocka_run_group_tests_name("client layer", tests, setup, teardown);
}
