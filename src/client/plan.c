/*
 * plan.c: the client's plan (include/cryptodl/client.h): an ONNX model
 * imported from its bytes, activations replaced if asked, compiled for
 * encrypted inference, with its CKKS context; or the same from a plan file,
 * checked against the model and a fresh compilation (src/client/plan_record.c).
 * Also the plaintext reference (the graph's logits) and the conversions of
 * image values every step shares.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "core/error.h"
#include "core/memory.h"

cdl_status cdl_client_fail_cause(cdl_status st, const char *fmt, ...)
{
    char cause[512], what[512];
    snprintf(cause, sizeof cause, "%s", cdl_last_error());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return cdl_fail(st, "%s%s%s", what, cause[0] ? ": " : "", cause);
}

void cdl_client_options_default(cdl_client_options *opt)
{
    if (opt)
        memset(opt, 0, sizeof *opt);
}

void cdl_client_free(void *p) { free(p); }

size_t cdl_client_struct_size(int which)
{
    switch (which) {
    case 0: return sizeof(cdl_client_options);
    case 1: return sizeof(cdl_client_plan_info);
    case 2: return sizeof(cdl_client_progress);
    case 3: return sizeof(cdl_client_stats);
    default: return 0;
    }
}

static cdl_status check_range(const char *name, long long v, long long lo, long long hi)
{
    if (v != 0 && (v < lo || v > hi))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "%s must be %lld..%lld (or 0: automatic), got %lld", name, lo, hi, v);
    return CDL_OK;
}

/* The compile options of opt as a plan file records them. */
static cdl_status plan_options_of(const cdl_client_options *opt, cdl_plan_options *po)
{
    memset(po, 0, sizeof *po);
    CDL_TRY(check_range("log_n", opt->log_n, 13, 16));
    CDL_TRY(check_range("scale_bits", opt->scale_bits, 20, 50));
    CDL_TRY(check_range("output_bits", opt->output_bits, 2, 30));
    CDL_TRY(check_range("max_galois_keys", opt->max_galois_keys, 1, 100000));
    CDL_TRY(check_range("max_galois_mb", opt->max_galois_mb, 1, 100000000));
    if (opt->packing != CDL_HE_PACKING_BATCH && opt->packing != CDL_HE_PACKING_SLOTS &&
        opt->packing != CDL_HE_PACKING_AUTO)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "packing must be batch (%d), slots (%d) or auto (%d), got %d",
                        CDL_HE_PACKING_BATCH, CDL_HE_PACKING_SLOTS, CDL_HE_PACKING_AUTO, opt->packing);
    if (opt->approx) {
        size_t n = strlen(opt->approx);
        if (n == 0 || n > CDL_PLAN_APPROX_MAX)
            return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "the activation replacement (approx) must be 1..%d characters",
                            CDL_PLAN_APPROX_MAX);
        memcpy(po->approx, opt->approx, n + 1);
    }
    po->log_n = opt->log_n;
    po->scale_bits = opt->scale_bits;
    po->output_bits = opt->output_bits ? opt->output_bits : 10;
    po->packing = opt->packing;
    po->max_galois_keys = opt->max_galois_keys;
    po->max_galois_mb = opt->max_galois_mb;
    return CDL_OK;
}

/* Import, replace activations, compile with po (packing: what the compiler is
 * asked for), build the context, record. */
static cdl_status compile_with(const uint8_t *model, size_t len, const char *model_name, const char *sha,
                               const cdl_plan_options *po, int packing, size_t images_hint, int stream_weights,
                               cdl_client_plan **out)
{
    cdl_client_plan *p = cdl_calloc_array(1, sizeof *p);
    if (!p)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = CDL_OK;
    if (model_name && !(p->model_name = strdup(model_name))) {
        st = cdl_fail(CDL_ERR_NO_MEMORY, "out of memory");
        goto fail;
    }
    if ((st = cdl_nn_load_memory(model, len, &p->graph)) != CDL_OK) {
        st = cdl_client_fail_cause(st, "cannot import the model");
        goto fail;
    }
    if (po->approx[0] && (st = cdl_nn_apply_approx(p->graph, po->approx, NULL)) != CDL_OK) {
        st = cdl_client_fail_cause(st, "cannot apply --approx");
        goto fail;
    }
    cdl_he_options ho;
    cdl_he_options_default(&ho);
    ho.log_n = po->log_n;
    ho.scale_bits = po->scale_bits;
    ho.output_bits = po->output_bits;
    ho.packing = packing;
    ho.max_galois_keys = po->max_galois_keys;
    ho.max_galois_bytes = (uint64_t)po->max_galois_mb * 1000000u;
    ho.images_hint = images_hint;
    ho.cache_weights = !stream_weights; /* slots: weights encoded once for all the batches */
    if ((st = cdl_he_plan_new(p->graph, &ho, &p->own_he)) != CDL_OK) {
        st = cdl_client_fail_cause(st, "cannot compile the model for encrypted inference");
        goto fail;
    }
    p->he = p->own_he;
    cdl_plan_record_from(p->he, p->graph, po, sha, &p->rec);
    p->has_record = 1;
    /* the encrypted result is the logits: the reference is too (a trailing softmax dropped) */
    p->graph->output = cdl_nn_graph_logits(p->graph, NULL);
    if ((st = cdl_he_context_new(p->he, &p->own_ctx)) != CDL_OK) {
        st = cdl_client_fail_cause(st, "cannot build the CKKS context");
        goto fail;
    }
    p->ctx = p->own_ctx;
    *out = p;
    return CDL_OK;
fail:
    cdl_client_plan_free(p);
    return st;
}

cdl_status cdl_client_plan_compile(const uint8_t *model, size_t model_len, const char *model_name,
                                   const cdl_client_options *opt, cdl_client_plan **out)
{
    if (!out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_compile: out must not be NULL");
    *out = NULL;
    if (!model || !model_len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_compile: no model bytes");
    cdl_client_options def;
    if (!opt) {
        cdl_client_options_default(&def);
        opt = &def;
    }
    cdl_plan_options po;
    CDL_TRY(plan_options_of(opt, &po));
    char sha[65];
    cdl_plan_sha256(model, model_len, sha);
    return compile_with(model, model_len, model_name, sha, &po, opt->packing, opt->images_hint, opt->stream_weights,
                        out);
}

cdl_status cdl_client_plan_open(const uint8_t *model, size_t model_len, const char *model_name,
                                const uint8_t *plan_file, size_t plan_len, const char *plan_name,
                                const cdl_client_options *opt, cdl_client_plan **out)
{
    if (!out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_open: out must not be NULL");
    *out = NULL;
    if (!model || !model_len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_open: no model bytes");
    if (opt && (opt->packing || opt->log_n || opt->scale_bits || opt->output_bits || opt->approx ||
                opt->max_galois_keys || opt->max_galois_mb))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "give either a plan file or the compile options (log_n, "
                                                  "scale_bits, output_bits, approx, packing, max_galois_keys, "
                                                  "max_galois_mb), not both: the plan file holds the options");
    const char *pname = plan_name ? plan_name : "the plan file", *mname = model_name ? model_name : "the model";
    char err[512], sha[65];
    cdl_plan_record *from_file = cdl_calloc_array(1, sizeof *from_file);
    if (!from_file)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = CDL_OK;
    if (cdl_plan_record_parse(plan_file, plan_len, from_file, err, sizeof err) != 0) {
        st = cdl_fail(CDL_ERR_FORMAT, "%s is not a usable plan file: %s", pname, err);
        goto done;
    }
    cdl_plan_sha256(model, model_len, sha);
    if (strcmp(from_file->sha256, sha)) {
        st = cdl_fail(CDL_ERR_MISMATCH, "%s was made for another model: it records SHA-256 %s, but %s has %s.", pname,
                      from_file->sha256, mname, sha);
        goto done;
    }
    /* the packing as decided then: auto is not decided again on another machine */
    st = compile_with(model, model_len, model_name, sha, &from_file->opt, from_file->packing, 0,
                      opt ? opt->stream_weights : 0, out);
    if (st != CDL_OK)
        goto done;
    if (cdl_plan_record_compare(from_file, &(*out)->rec, err, sizeof err) != 0) {
        cdl_client_plan_free(*out);
        *out = NULL;
        st = cdl_fail(CDL_ERR_MISMATCH, "%s does not match this model and build: %s.", pname, err);
    }
done:
    cdl_free(from_file);
    return st;
}

cdl_status cdl_client_plan_view(const cdl_he_plan *he, const cdl_ckks_context *ctx, cdl_client_plan **out)
{
    if (!he || !ctx || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_view: NULL argument");
    cdl_client_plan *p = cdl_calloc_array(1, sizeof *p);
    if (!p)
        return CDL_ERR_NO_MEMORY;
    p->he = he;
    p->ctx = ctx;
    *out = p;
    return CDL_OK;
}

void cdl_client_plan_free(cdl_client_plan *plan)
{
    if (!plan)
        return;
    cdl_ckks_context_free(plan->own_ctx);
    cdl_he_plan_free(plan->own_he);
    cdl_nn_graph_free(plan->graph);
    free(plan->model_name);
    cdl_free(plan);
}

const cdl_plan_record *cdl_client_plan_record(const cdl_client_plan *plan)
{
    return plan && plan->has_record ? &plan->rec : NULL;
}

const cdl_he_plan *cdl_client_plan_he(const cdl_client_plan *plan) { return plan ? plan->he : NULL; }
const cdl_ckks_context *cdl_client_plan_context(const cdl_client_plan *plan) { return plan ? plan->ctx : NULL; }
const cdl_nn_graph *cdl_client_plan_graph(const cdl_client_plan *plan) { return plan ? plan->graph : NULL; }

cdl_status cdl_client_plan_get_info(const cdl_client_plan *plan, cdl_client_plan_info *info)
{
    if (!plan || !info)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_get_info: NULL argument");
    memset(info, 0, sizeof *info);
    const cdl_he_plan *he = plan->he;
    const cdl_ckks_param_spec *sp = cdl_he_plan_params(he);
    info->packing = cdl_he_plan_packing(he);
    info->log_n = sp->log_n;
    for (int i = 0; i < sp->q_count; i++)
        info->log_qp += sp->q_bits[i];
    for (int i = 0; i < sp->p_count; i++)
        info->log_qp += sp->p_bits[i];
    info->levels = cdl_he_plan_levels(he);
    info->scale_bits = (int)lround(log2(sp->scale));
    info->input_size = cdl_he_plan_input_size(he);
    info->output_size = cdl_he_plan_output_size(he);
    if (plan->graph) {
        info->input_rank = plan->graph->input_shape.rank;
        for (int i = 0; i < info->input_rank && i < CDL_NN_MAX_RANK; i++)
            info->input_shape[i] = plan->graph->input_shape.dims[i];
    } else {
        info->input_rank = 1;
        info->input_shape[0] = (int64_t)info->input_size;
    }
    info->batch_capacity = cdl_he_plan_batch_capacity(he);
    info->input_ciphertexts = cdl_he_plan_input_ciphertexts(he);
    info->output_ciphertexts = cdl_he_plan_output_ciphertexts(he);
    cdl_he_plan_galois_steps(he, NULL, &info->galois_steps);
    info->galois_key_bytes = info->galois_steps ? cdl_he_plan_galois_key_file_bytes(he) : 0;
    info->memory_bytes = cdl_he_plan_memory(he);
    cdl_he_cost cost;
    cdl_he_plan_cost(he, &cost);
    info->relin_key = cost.ct_mults > 0;
    if (plan->has_record)
        snprintf(info->sha256, sizeof info->sha256, "%s", plan->rec.sha256);
    const uint8_t *h = cdl_ckks_param_hash(plan->ctx);
    for (int i = 0; h && i < CDL_CKKS_PARAM_HASH_BYTES; i++)
        snprintf(info->param_hash + 2 * i, 3, "%02x", h[i]);
    return CDL_OK;
}

cdl_status cdl_client_plan_json(const cdl_client_plan *plan, char **json)
{
    if (!plan || !json)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_json: NULL argument");
    *json = NULL;
    if (!plan->has_record)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_json: this plan was not compiled from a model");
    if (plan->rec.n_galois > CDL_PLAN_MAX_GALOIS)
        return cdl_fail(CDL_ERR_UNSUPPORTED, "this plan needs more than %d rotation steps, more than a plan file "
                                             "lists; use batch packing", CDL_PLAN_MAX_GALOIS);
    *json = cdl_plan_record_json(&plan->rec, plan->model_name);
    return *json ? CDL_OK : cdl_fail(CDL_ERR_NO_MEMORY, "cannot write the plan: out of memory");
}

cdl_status cdl_client_plan_describe(const cdl_client_plan *plan, char **text)
{
    if (!plan || !text)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_describe: NULL argument");
    return cdl_he_plan_describe(plan->he, text); /* malloc'ed: cdl_client_free frees it too */
}

cdl_status cdl_client_images_f64(const void *images, cdl_client_dtype dtype, size_t count, const double **values,
                                 double **owned)
{
    *owned = NULL;
    *values = NULL;
    if (!images)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "no image values");
    if (dtype == CDL_CLIENT_F64) {
        const double *v = images;
        for (size_t i = 0; i < count; i++)
            if (!isfinite(v[i]))
                return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "image value %zu is not a finite number", i);
        *values = v;
        return CDL_OK;
    }
    if (dtype != CDL_CLIENT_F32 && dtype != CDL_CLIENT_U8)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "unknown image value type %d (0 double, 1 float, 2 uint8)",
                        (int)dtype);
    double *d = cdl_alloc_array(count ? count : 1, sizeof *d);
    if (!d)
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for %zu image values", count);
    for (size_t i = 0; i < count; i++) {
        if (dtype == CDL_CLIENT_U8) {
            d[i] = ((const uint8_t *)images)[i] / 255.0;
        } else {
            float f = ((const float *)images)[i];
            if (!isfinite(f)) {
                cdl_free(d);
                return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "image value %zu is not a finite number", i);
            }
            d[i] = f;
        }
    }
    *owned = d;
    *values = d;
    return CDL_OK;
}

cdl_status cdl_client_plan_reference(const cdl_client_plan *plan, const void *images, cdl_client_dtype dtype,
                                     size_t n, double *logits)
{
    if (!plan || !images || !logits)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_reference: NULL argument");
    if (!plan->graph)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_reference: this plan holds no model");
    size_t count;
    if (cdl_mul_size(n, cdl_he_plan_input_size(plan->he), &count) != 0)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_plan_reference: too many images");
    const double *v = NULL;
    double *owned = NULL;
    CDL_TRY(cdl_client_images_f64(images, dtype, count, &v, &owned));
    cdl_status st = cdl_nn_run(plan->graph, v, n, logits);
    cdl_free(owned);
    return st;
}
