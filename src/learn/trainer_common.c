/*
 * trainer_common.c: the plumbing the trainers of src/learn (logreg.c,
 * softmax.c, mlp.c) share around their arithmetic: the checks before a
 * trainer is made (data, bootstrapper, Galois keys), the bootstrap of a pair
 * of real ciphertexts as one complex one, Nesterov's sequence on resuming,
 * and the checkpoint format (envelope and header).
 *
 * Why one header format: a checkpoint must resume only the job that made it,
 * so each trainer saves the configuration its arithmetic depends on and
 * refuses to load another. Each trainer lists those fields once (the values
 * this run would write); saving writes them, loading compares the saved ones
 * with them in the same order. The bytes are those the trainers wrote field
 * by field before: the resume tests compare state hashes.
 */
#include <string.h>

#include <sodium.h>

#include "boot/boot_internal.h"
#include "core/error.h"
#include "core/memory.h"
#include "learn/learn_internal.h"

/* ---- checks ---- */

cdl_status lrn_check_setup(const cdl_ckks_context *ctx, const uint8_t *data_hash, const cdl_ckks_bootstrapper *bt,
                           const char *fills, const char *fn, int *boot_level)
{
    *boot_level = -1;
    if (memcmp(data_hash, cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES) != 0)
        return cdl_fail(CDL_ERR_MISMATCH,
                        "%s: the data set was encrypted under other CKKS parameters than this context; use the "
                        "client's context",
                        fn);
    if (!bt)
        return CDL_OK;
    if (memcmp(cdl_ckks_param_hash(bt->ctx), cdl_ckks_param_hash(ctx), CDL_CKKS_PARAM_HASH_BYTES) != 0)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: the bootstrapper was made for other CKKS parameters", fn);
    cdl_ckks_bootstrap_info info;
    CDL_TRY(cdl_ckks_bootstrapper_info(bt, &info));
    if ((size_t)info.slots != cdl_ckks_slots(ctx))
        return cdl_fail(CDL_ERR_PARAMETERS, "%s: the bootstrapper works on %d slots; %s all %zu (use log_slots = 0)",
                        fn, info.slots, fills, cdl_ckks_slots(ctx));
    *boot_level = info.level_out;
    return CDL_OK;
}

cdl_status lrn_check_galois_keys(const cdl_ckks_galois_keys *gk, const int *steps, size_t count, int need,
                                 const char *steps_fn, const char *fn)
{
    for (size_t i = 0; i < count; i++) {
        if (!cdl_ckks_galois_keys_has_step(gk, steps[i]))
            return cdl_fail(CDL_ERR_EXHAUSTED,
                            "%s: the Galois keys lack rotation step %d; generate them with the steps of %s", fn,
                            steps[i], steps_fn);
        if (cdl_ckks_galois_keys_step_level(gk, steps[i]) < need)
            return cdl_fail(CDL_ERR_EXHAUSTED,
                            "%s: the Galois key for rotation step %d serves levels up to %d, %d needed", fn, steps[i],
                            cdl_ckks_galois_keys_step_level(gk, steps[i]), need);
    }
    return CDL_OK;
}

cdl_status lrn_check_conjugation(const cdl_ckks_galois_keys *gk, int level, const char *what, const char *fn)
{
    if (cdl_ckks_galois_keys_step_level(gk, 0) < level)
        return cdl_fail(CDL_ERR_EXHAUSTED,
                        "%s: the Galois keys lack the conjugation key (at level %d) that splits the bootstrapped "
                        "%s; generate them with conjugate = 1",
                        fn, level, what);
    return CDL_OK;
}

/* ---- the bootstrap of a pair ---- */

cdl_status lrn_imag_plaintext(const cdl_ckks_context *ctx, int level, cdl_ckks_plaintext **out)
{
    const size_t slots = cdl_ckks_slots(ctx);
    double *re = cdl_calloc_array(slots, sizeof *re), *im = cdl_alloc_array(slots, sizeof *im);
    cdl_status st = re && im ? CDL_OK : CDL_ERR_NO_MEMORY;
    for (size_t i = 0; im && i < slots; i++)
        im[i] = 1.0;
    if (st == CDL_OK)
        st = cdl_ckks_plaintext_new_level(ctx, level, out);
    if (st == CDL_OK)
        st = cdl_ckks_encode_complex(ctx, re, im, slots, 1.0, level, *out);
    cdl_free(re);
    cdl_free(im);
    return st;
}

cdl_status lrn_bootstrap_pair(const cdl_ckks_context *ctx, const lrn_boot *b, double bound, cdl_ckks_ciphertext *re,
                              cdl_ckks_ciphertext *im, cdl_ckks_ciphertext *out_re, cdl_ckks_ciphertext *out_im,
                              cdl_ckks_ciphertext *tmp, double *seconds)
{
    const double S = cdl_ckks_default_scale(ctx);
    CDL_TRY(lrn_mul_const_to(ctx, re, 1.0, S, re));
    CDL_TRY(lrn_mul_const_to(ctx, im, 1.0, S, im));
    CDL_TRY(cdl_ckks_mul_plain(ctx, im, b->imag, im));
    cdl_ckks_ciphertext_set_scale(im, S);
    CDL_TRY(cdl_ckks_add(ctx, re, im, re));
    cdl_ckks_ciphertext_set_scale(re, S * bound);
    const double t0 = lrn_now_seconds();
    CDL_TRY(cdl_ckks_bootstrap(b->bt, b->bk, b->rlk, re, tmp));
    *seconds += lrn_now_seconds() - t0;
    const double s = cdl_ckks_ciphertext_scale(tmp);
    CDL_TRY(cdl_ckks_conjugate(ctx, b->gk, tmp, im));
    CDL_TRY(cdl_ckks_add(ctx, tmp, im, out_re));
    CDL_TRY(cdl_ckks_sub(ctx, tmp, im, out_im));
    CDL_TRY(cdl_ckks_mul_plain(ctx, out_im, b->imag, out_im));
    CDL_TRY(cdl_ckks_negate(ctx, out_im, out_im));
    cdl_ckks_ciphertext_set_scale(out_re, 2.0 * s / bound);
    cdl_ckks_ciphertext_set_scale(out_im, 2.0 * s / bound);
    return CDL_OK;
}

/* ---- resuming ---- */

double lrn_lambda_after(int nesterov, int k)
{
    double lambda = 1.0;
    for (int i = 1; i <= k; i++)
        (void)lrn_step_eta(nesterov, &lambda);
    return lambda;
}

int lrn_state_fits_plan(int lw, int lv, int remaining, int per, int boot)
{
    const int p = lrn_plan_level(lv, remaining, per, boot);
    return !(lw < lv || p == -2 || (p == -1 && lv < 1));
}

/* ---- checkpoints ---- */

cdl_status lrn_checkpoint_finish(cdl_writer *w, cdl_status st, uint8_t **data, size_t *len)
{
    if (st == CDL_OK)
        st = cdl_writer_status(w);
    if (st == CDL_OK) {
        uint8_t sum[32];
        crypto_generichash(sum, sizeof sum, w->data, w->len, NULL, 0);
        cdl_write_bytes(w, sum, sizeof sum);
        st = cdl_writer_status(w);
    }
    if (st != CDL_OK) {
        cdl_writer_free(w);
        return st;
    }
    *data = w->data;
    *len = w->len;
    return CDL_OK;
}

cdl_status lrn_checkpoint_open(const uint8_t *bytes, size_t len, const char *magic, const char *what, const char *fn,
                               cdl_reader *r)
{
    if (len < 8 + 32 || memcmp(bytes, magic, 8) != 0)
        return cdl_fail(CDL_ERR_FORMAT, "%s: not %s", fn, what);
    uint8_t sum[32];
    crypto_generichash(sum, sizeof sum, bytes, len - 32, NULL, 0);
    if (sodium_memcmp(sum, bytes + len - 32, 32) != 0)
        return cdl_fail(CDL_ERR_FORMAT, "%s: checksum mismatch (damaged or truncated checkpoint)", fn);
    cdl_reader_init(r, bytes + 8, len - 8 - 32);
    return CDL_OK;
}

cdl_status lrn_mismatch(const char *fn, const char *what, double saved, double now)
{
    return cdl_fail(CDL_ERR_MISMATCH, "%s: the checkpoint was made with %s = %.17g, this run has %.17g", fn, what,
                    saved, now);
}

lrn_field lrn_field_u8(const char *what, uint8_t v)
{
    return (lrn_field){LRN_U8, what, v, 0.0};
}

lrn_field lrn_field_u32(const char *what, uint32_t v)
{
    return (lrn_field){LRN_U32, what, v, 0.0};
}

lrn_field lrn_field_u64(const char *what, uint64_t v)
{
    return (lrn_field){LRN_U64, what, v, 0.0};
}

lrn_field lrn_field_f64(const char *what, double v)
{
    return (lrn_field){LRN_F64, what, 0, v};
}

size_t lrn_fields_data(lrn_field *f, uint64_t samples, const char *width, uint64_t d, uint64_t classes, int level)
{
    size_t n = 0;
    f[n++] = lrn_field_u64("samples", samples);
    f[n++] = lrn_field_u64(width, d);
    if (classes)
        f[n++] = lrn_field_u64("classes", classes);
    f[n++] = lrn_field_u32("the data's level", (uint32_t)level);
    return n;
}

void lrn_checkpoint_begin(cdl_writer *w, const char *magic, uint32_t version, const uint8_t *hash,
                          const lrn_field *fields, size_t count, const lrn_counters *c)
{
    cdl_writer_init(w);
    cdl_write_bytes(w, magic, 8);
    cdl_write_u32(w, version);
    cdl_write_bytes(w, hash, CDL_CKKS_PARAM_HASH_BYTES);
    for (size_t i = 0; i < count; i++) {
        const lrn_field *f = &fields[i];
        switch (f->type) {
        case LRN_U8: cdl_write_u8(w, (uint8_t)f->u); break;
        case LRN_U32: cdl_write_u32(w, (uint32_t)f->u); break;
        case LRN_U64: cdl_write_u64(w, f->u); break;
        case LRN_F64: cdl_write_f64(w, f->f); break;
        }
    }
    cdl_write_u32(w, c->boot);
    cdl_write_u32(w, c->k);
    cdl_write_u32(w, c->bootstraps);
}

static cdl_status read_field(cdl_reader *r, lrn_field_type type, lrn_field *saved)
{
    saved->type = type;
    switch (type) {
    case LRN_U8: {
        uint8_t v = 0;
        CDL_TRY(cdl_read_u8(r, &v));
        saved->u = v;
        return CDL_OK;
    }
    case LRN_U32: {
        uint32_t v = 0;
        CDL_TRY(cdl_read_u32(r, &v));
        saved->u = v;
        return CDL_OK;
    }
    case LRN_U64: return cdl_read_u64(r, &saved->u);
    case LRN_F64: return cdl_read_f64(r, &saved->f);
    }
    return cdl_fail(CDL_ERR_INTERNAL, "checkpoint header: unknown field type");
}

cdl_status lrn_header_read(cdl_reader *r, uint32_t version, const cdl_ckks_context *ctx, const lrn_field *fields,
                           size_t count, lrn_counters *c, const char *fn)
{
    if (count > LRN_MAX_FIELDS)
        return cdl_fail(CDL_ERR_INTERNAL, "%s: %zu checkpoint fields, at most %d", fn, count, LRN_MAX_FIELDS);
    uint32_t v = 0;
    CDL_TRY(cdl_read_u32(r, &v));
    if (v != version)
        return cdl_fail(CDL_ERR_FORMAT, "%s: checkpoint format version %u, this build reads %u", fn, v, version);
    uint8_t hash[CDL_CKKS_PARAM_HASH_BYTES];
    lrn_field saved[LRN_MAX_FIELDS];
    memset(saved, 0, sizeof saved);
    CDL_TRY(cdl_read_bytes(r, hash, sizeof hash));
    for (size_t i = 0; i < count; i++)
        CDL_TRY(read_field(r, fields[i].type, &saved[i]));
    CDL_TRY(cdl_read_u32(r, &c->boot));
    CDL_TRY(cdl_read_u32(r, &c->k));
    CDL_TRY(cdl_read_u32(r, &c->bootstraps));
    /* The same job? Every field that the arithmetic depends on. */
    if (memcmp(hash, cdl_ckks_param_hash(ctx), sizeof hash) != 0)
        return cdl_fail(CDL_ERR_MISMATCH, "%s: the checkpoint was made under other CKKS parameters", fn);
    for (size_t i = 0; i < count; i++) {
        const lrn_field *now = &fields[i], *was = &saved[i];
        if (now->type == LRN_F64 ? was->f != now->f : was->u != now->u)
            return now->type == LRN_F64 ? lrn_mismatch(fn, now->what, was->f, now->f)
                                        : lrn_mismatch(fn, now->what, (double)was->u, (double)now->u);
    }
    return CDL_OK;
}
