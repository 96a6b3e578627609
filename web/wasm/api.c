/*
 * api.c: the functions the browser page calls (web/worker.js, through
 * emscripten's ccall), a thin layer over include/cryptodl/client.h with
 * JavaScript-friendly arguments: plain numbers and pointers into the module's
 * memory, results returned as pointers (NULL/0 on failure, the message in
 * cdlw_last_error()) and their lengths in cdlw_out_len(). Compiled into the
 * WebAssembly module only (scripts/build-wasm.sh).
 *
 * The secret key lives in the cdl_client_keys object and never leaves the
 * module: there is no function here that serializes it. cdlw_keys_free wipes
 * it (cdl_client_keys_free).
 */
#include <emscripten.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cryptodl/client.h"
#include "cryptodl/common.h"

static size_t out_len; /* the length of the last buffer returned */

/* Progress events go to Module.onProgress(step, stage, done, total) if the page set it. */
EM_JS(void, cdlw_progress_js, (const char *step, const char *stage, double done, double total), {
    if (Module['onProgress'])
        Module['onProgress'](UTF8ToString(step), UTF8ToString(stage), done, total);
});

static void progress(void *user, const cdl_client_progress *p)
{
    (void)user;
    cdlw_progress_js(p->step ? p->step : "", p->stage ? p->stage : "", (double)p->done, (double)p->total);
}

EMSCRIPTEN_KEEPALIVE const char *cdlw_last_error(void) { return cdl_last_error(); }
EMSCRIPTEN_KEEPALIVE double cdlw_out_len(void) { return (double)out_len; }

/* Compile an ONNX model as `cryptodl serve` does with the same options
 * (packing: 0 batch, 1 slots, 2 auto; the other numbers 0 = automatic). */
EMSCRIPTEN_KEEPALIVE cdl_client_plan *cdlw_plan_compile(const uint8_t *model, size_t len, int packing, int log_n,
                                                        int scale_bits, int output_bits, int max_galois_mb)
{
    cdl_client_options opt;
    cdl_client_options_default(&opt);
    opt.packing = packing;
    opt.log_n = log_n;
    opt.scale_bits = scale_bits;
    opt.output_bits = output_bits;
    opt.max_galois_mb = max_galois_mb;
    cdl_client_plan *plan = NULL;
    if (cdl_client_plan_compile(model, len, "model.onnx", &opt, &plan) != CDL_OK)
        return NULL;
    return plan;
}

EMSCRIPTEN_KEEPALIVE void cdlw_plan_free(cdl_client_plan *plan) { cdl_client_plan_free(plan); }

/* What the plan is, as a JSON object (free with cdlw_free). */
EMSCRIPTEN_KEEPALIVE char *cdlw_plan_info(const cdl_client_plan *plan)
{
    cdl_client_plan_info in;
    if (cdl_client_plan_get_info(plan, &in) != CDL_OK)
        return NULL;
    char shape[96] = "";
    size_t at = 0;
    for (int i = 0; i < in.input_rank && at < sizeof shape - 24; i++)
        at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%lld", i ? "," : "", (long long)in.input_shape[i]);
    size_t cap = 1024;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    snprintf(s, cap,
             "{\"packing\":\"%s\",\"log_n\":%d,\"log_qp\":%d,\"levels\":%d,\"scale_bits\":%d,"
             "\"input_shape\":[%s],\"input_size\":%zu,\"output_size\":%zu,\"batch_capacity\":%zu,"
             "\"input_ciphertexts\":%zu,\"output_ciphertexts\":%zu,\"galois_steps\":%zu,"
             "\"galois_key_bytes\":%llu,\"sha256\":\"%s\",\"param_hash\":\"%s\"}",
             in.packing == CDL_HE_PACKING_SLOTS ? "slots" : "batch", in.log_n, in.log_qp, in.levels, in.scale_bits,
             shape, in.input_size, in.output_size, in.batch_capacity, in.input_ciphertexts, in.output_ciphertexts,
             in.galois_steps, (unsigned long long)in.galois_key_bytes, in.sha256, in.param_hash);
    return s;
}

/* The plaintext model's logits for n images of uint8 pixels (the model is
 * public: the page shows them beside the decrypted ones). */
EMSCRIPTEN_KEEPALIVE double *cdlw_reference(const cdl_client_plan *plan, const uint8_t *images, size_t n)
{
    cdl_client_plan_info in;
    if (cdl_client_plan_get_info(plan, &in) != CDL_OK)
        return NULL;
    double *logits = malloc((n ? n : 1) * in.output_size * sizeof *logits);
    if (!logits)
        return NULL;
    if (cdl_client_plan_reference(plan, images, CDL_CLIENT_U8, n, logits) != CDL_OK) {
        free(logits);
        return NULL;
    }
    out_len = n * in.output_size;
    return logits;
}

/* A secret key, the relinearization key and the plan's Galois keys, from the
 * browser's randomness (web/wasm/shim.c). */
EMSCRIPTEN_KEEPALIVE cdl_client_keys *cdlw_keygen(const cdl_client_plan *plan)
{
    cdl_client_keys *keys = NULL;
    if (cdl_client_keygen(plan, 0, progress, NULL, &keys) != CDL_OK)
        return NULL;
    return keys;
}

EMSCRIPTEN_KEEPALIVE void cdlw_keys_free(cdl_client_keys *keys) { cdl_client_keys_free(keys); }

/* The session body for `POST /v1/models/{name}/sessions`: the relinearization
 * key, then (slots packing) the Galois keys. Evaluation keys only. */
EMSCRIPTEN_KEEPALIVE uint8_t *cdlw_evaluation_keys(const cdl_client_keys *keys)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (cdl_client_keys_save_evaluation(keys, &data, &len) != CDL_OK)
        return NULL;
    out_len = len;
    return data;
}

/* n images of uint8 pixels (NCHW) encrypted with the secret key: the body of
 * `POST /v1/sessions/{id}/predict` (one batch when n fits in one). */
EMSCRIPTEN_KEEPALIVE uint8_t *cdlw_encrypt(const cdl_client_plan *plan, cdl_client_keys *keys, const uint8_t *images,
                                           size_t n)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (cdl_client_encrypt_bytes(plan, keys, images, CDL_CLIENT_U8, n, 0, &data, &len) != CDL_OK)
        return NULL;
    out_len = len;
    return data;
}

/* Decrypt the server's answer: images x output_size logits (free with
 * cdlw_free); cdlw_out_len() = the number of images. */
EMSCRIPTEN_KEEPALIVE double *cdlw_decrypt(const cdl_client_plan *plan, cdl_client_keys *keys, const uint8_t *in,
                                          size_t len)
{
    double *logits = NULL;
    size_t n = 0;
    if (cdl_client_decrypt(plan, keys, in, len, NULL, NULL, &logits, &n, NULL) != CDL_OK)
        return NULL;
    out_len = n;
    return logits;
}

EMSCRIPTEN_KEEPALIVE void cdlw_free_bytes(uint8_t *p) { cdl_free_bytes(p); }
EMSCRIPTEN_KEEPALIVE void cdlw_free(void *p) { cdl_client_free(p); }
EMSCRIPTEN_KEEPALIVE void *cdlw_malloc(size_t n) { return malloc(n ? n : 1); }
EMSCRIPTEN_KEEPALIVE void cdlw_release(void *p) { free(p); }
