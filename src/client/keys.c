/*
 * keys.c: the client's keys (include/cryptodl/client.h): key generation for a
 * plan with progress (the Galois keys of slots packing one rotation step at a
 * time: at N = 2^14..2^16 they take from seconds to minutes), keys to and from
 * their serialized form with the kind checked from the header first (a secret
 * key is never loaded where an evaluation key is expected), the evaluation
 * keys a server needs in one buffer, and the check that keys are complete for
 * a plan.
 *
 * The Galois keys are made step by step with cdl_ckks_keygen_galois_levels at
 * each step's level (the compiler's per-step levels, src/compile/he_plan.h)
 * and then joined into one key set: the keys move, nothing is copied but the
 * small index tables (src/ckks/ckks_internal.h). The result is the set
 * cdl_he_keygen_galois makes, from other random draws.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckks/ckks_internal.h"
#include "client/client_internal.h"
#include "compile/he_plan.h"
#include "core/bytes.h"
#include "core/error.h"
#include "core/memory.h"

/* Object types of the envelope for each kind, and how messages name them. */
static const uint16_t kind_type[CDL_CLIENT_KEY_KINDS] = {CDL_OBJ_SECRET_KEY, CDL_OBJ_PUBLIC_KEY, CDL_OBJ_RELIN_KEY,
                                                         CDL_OBJ_GALOIS_KEYS};
static const char *const kind_file[CDL_CLIENT_KEY_KINDS] = {"secret.key", "public.key", "relin.key", "galois.key"};
static const char *const type_names[] = {"?", "parameter set", "secret key", "public key", "relinearization key",
                                         "Galois key set", "plaintext", "ciphertext", "plan"};
#define N_TYPE_NAMES (sizeof type_names / sizeof type_names[0])

static const char *kind_name(cdl_client_key_kind kind) { return type_names[kind_type[kind]]; }

static int kind_ok(int kind) { return kind >= 0 && kind < CDL_CLIENT_KEY_KINDS; }

/* ---- objects ------------------------------------------------------------------- */

static cdl_status keys_alloc(const cdl_client_plan *plan, cdl_client_keys **out)
{
    if (!plan || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keys: NULL argument");
    *out = NULL;
    cdl_client_keys *k = cdl_calloc_array(1, sizeof *k);
    if (!k)
        return CDL_ERR_NO_MEMORY;
    k->plan = plan;
    cdl_status st = cdl_rng_new_system(&k->rng);
    if (st != CDL_OK) {
        cdl_free(k);
        return cdl_client_fail_cause(st, "cannot start the random number generator");
    }
    *out = k;
    return CDL_OK;
}

cdl_status cdl_client_keys_new(const cdl_client_plan *plan, cdl_client_keys **out) { return keys_alloc(plan, out); }

cdl_status cdl_client_keys_view(const cdl_client_plan *plan, const cdl_ckks_secret_key *sk,
                                const cdl_ckks_public_key *pk, const cdl_ckks_relin_key *rlk,
                                const cdl_ckks_galois_keys *gk, cdl_client_keys **out)
{
    CDL_TRY(keys_alloc(plan, out));
    /* borrowed: never freed or changed through the view */
    (*out)->sk = (cdl_ckks_secret_key *)sk;
    (*out)->pk = (cdl_ckks_public_key *)pk;
    (*out)->rlk = (cdl_ckks_relin_key *)rlk;
    (*out)->gk = (cdl_ckks_galois_keys *)gk;
    (*out)->borrowed = 1;
    return CDL_OK;
}

static void drop_key(cdl_client_keys *k, cdl_client_key_kind kind)
{
    if (!k->borrowed) {
        switch (kind) {
        case CDL_CLIENT_SECRET_KEY: cdl_ckks_secret_key_free(k->sk); break;
        case CDL_CLIENT_PUBLIC_KEY: cdl_ckks_public_key_free(k->pk); break;
        case CDL_CLIENT_RELIN_KEY: cdl_ckks_relin_key_free(k->rlk); break;
        case CDL_CLIENT_GALOIS_KEYS: cdl_ckks_galois_keys_free(k->gk); break;
        }
    }
    switch (kind) {
    case CDL_CLIENT_SECRET_KEY: k->sk = NULL; break;
    case CDL_CLIENT_PUBLIC_KEY: k->pk = NULL; break;
    case CDL_CLIENT_RELIN_KEY: k->rlk = NULL; break;
    case CDL_CLIENT_GALOIS_KEYS: k->gk = NULL; break;
    }
}

void cdl_client_keys_free(cdl_client_keys *keys)
{
    if (!keys)
        return;
    for (int kind = 0; kind < CDL_CLIENT_KEY_KINDS; kind++)
        drop_key(keys, (cdl_client_key_kind)kind);
    cdl_rng_free(keys->rng);
    cdl_free(keys);
}

static const void *key_of(const cdl_client_keys *k, cdl_client_key_kind kind)
{
    switch (kind) {
    case CDL_CLIENT_SECRET_KEY: return k->sk;
    case CDL_CLIENT_PUBLIC_KEY: return k->pk;
    case CDL_CLIENT_RELIN_KEY: return k->rlk;
    case CDL_CLIENT_GALOIS_KEYS: return k->gk;
    }
    return NULL;
}

int cdl_client_keys_has(const cdl_client_keys *keys, cdl_client_key_kind kind)
{
    return keys && kind_ok((int)kind) && key_of(keys, kind) != NULL;
}

/* ---- key generation ------------------------------------------------------------- */

typedef struct keygen_progress {
    cdl_client_progress_fn fn;
    void *user;
    cdl_client_progress p;
} keygen_progress;

static void kg_emit(keygen_progress *kp, const char *stage)
{
    kp->p.stage = stage;
    if (kp->fn)
        kp->fn(kp->user, &kp->p);
}

/* Join key sets made for distinct steps into one (parts are freed). */
static cdl_status galois_join(cdl_ckks_galois_keys **parts, size_t nparts, cdl_ckks_galois_keys **out)
{
    size_t total = 0, n = nparts ? parts[0]->n : 0;
    for (size_t i = 0; i < nparts; i++)
        total += parts[i]->count;
    cdl_ckks_galois_keys *gk = cdl_calloc_array(1, sizeof *gk);
    if (gk) {
        gk->n = n;
        gk->galois_elts = cdl_calloc_array(total ? total : 1, sizeof(uint64_t));
        gk->keys = cdl_calloc_array(total ? total : 1, sizeof(cdl_ckks_ksk));
        gk->ntt_index = cdl_alloc_array(total ? total : 1, n * sizeof(uint32_t));
    }
    if (!gk || !gk->galois_elts || !gk->keys || !gk->ntt_index) {
        cdl_ckks_galois_keys_free(gk);
        return cdl_fail(CDL_ERR_NO_MEMORY, "out of memory joining the Galois keys");
    }
    size_t at = 0;
    for (size_t i = 0; i < nparts; i++) {
        cdl_ckks_galois_keys *p = parts[i];
        memcpy(gk->galois_elts + at, p->galois_elts, p->count * sizeof(uint64_t));
        memcpy(gk->ntt_index + at * n, p->ntt_index, p->count * n * sizeof(uint32_t));
        memcpy(gk->keys + at, p->keys, p->count * sizeof(cdl_ckks_ksk)); /* the key data moves */
        at += p->count;
        gk->count = at;
        p->count = 0; /* its keys now belong to gk */
        cdl_ckks_galois_keys_free(p);
        parts[i] = NULL;
    }
    *out = gk;
    return CDL_OK;
}

/* The plan's Galois keys, one rotation step at a time (progress after each). */
static cdl_status keygen_galois(const cdl_client_plan *plan, const cdl_ckks_secret_key *sk, cdl_rng *rng,
                                keygen_progress *kp, cdl_ckks_galois_keys **out)
{
    const cdl_he_plan *he = plan->he;
    *out = NULL;
    if (!he->n_galois)
        return CDL_OK;
    cdl_ckks_galois_keys **parts = cdl_calloc_array(he->n_galois, sizeof *parts);
    if (!parts)
        return CDL_ERR_NO_MEMORY;
    cdl_status st = CDL_OK;
    size_t made = 0;
    kg_emit(kp, "Galois keys");
    for (; made < he->n_galois; made++) {
        st = cdl_ckks_keygen_galois_levels(plan->ctx, sk, &he->galois_steps[made], &he->galois_levels[made], 1, 0,
                                           rng, &parts[made]);
        if (st != CDL_OK)
            break;
        kp->p.done++;
        kg_emit(kp, "Galois keys");
    }
    if (st == CDL_OK)
        st = galois_join(parts, made, out);
    for (size_t i = 0; i < he->n_galois; i++)
        cdl_ckks_galois_keys_free(parts[i]);
    cdl_free(parts);
    return st;
}

cdl_status cdl_client_keygen(const cdl_client_plan *plan, unsigned flags, cdl_client_progress_fn progress,
                             void *user, cdl_client_keys **out)
{
    if (!out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keygen: out must not be NULL");
    *out = NULL;
    cdl_client_keys *k = NULL;
    CDL_TRY(keys_alloc(plan, &k));
    const int pub = (flags & CDL_CLIENT_KEYGEN_PUBLIC) != 0;
    keygen_progress kp = {progress, user, {"keygen", "", -1, 0, 1, 0, 0, 0}};
    kp.p.total = 2 + (size_t)pub + plan->he->n_galois;
    cdl_status st;
    kg_emit(&kp, "secret key");
    if ((st = cdl_ckks_keygen_secret(plan->ctx, k->rng, &k->sk)) != CDL_OK)
        goto fail;
    kp.p.done++;
    kg_emit(&kp, "relinearization key");
    if ((st = cdl_ckks_keygen_relin(plan->ctx, k->sk, k->rng, &k->rlk)) != CDL_OK)
        goto fail;
    kp.p.done++;
    if (pub) {
        kg_emit(&kp, "public key");
        if ((st = cdl_ckks_keygen_public(plan->ctx, k->sk, k->rng, &k->pk)) != CDL_OK)
            goto fail;
        kp.p.done++;
    }
    if ((st = keygen_galois(plan, k->sk, k->rng, &kp, &k->gk)) != CDL_OK) {
        st = cdl_client_fail_cause(st, "Galois key generation failed");
        goto fail_quiet;
    }
    kg_emit(&kp, "done");
    *out = k;
    return CDL_OK;
fail:
    st = cdl_client_fail_cause(st, "key generation failed");
fail_quiet:
    cdl_client_keys_free(k);
    return st;
}

/* ---- serialized keys ------------------------------------------------------------- */

int cdl_client_key_kind_of(const uint8_t *data, size_t len)
{
    if (!data || len < 8 || memcmp(data, "CDL\0", 4))
        return -1;
    unsigned type = data[6] | (unsigned)data[7] << 8;
    for (int kind = 0; kind < CDL_CLIENT_KEY_KINDS; kind++)
        if (type == kind_type[kind])
            return kind;
    return CDL_CLIENT_KEY_KINDS;
}

cdl_status cdl_client_key_check_kind(const uint8_t *data, size_t len, cdl_client_key_kind kind, const char *name)
{
    if (!kind_ok((int)kind))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "unknown key kind %d", (int)kind);
    if (!data || len < 8 || memcmp(data, "CDL\0", 4))
        return CDL_OK; /* not an envelope at all: the loader says what is wrong */
    unsigned type = data[6] | (unsigned)data[7] << 8;
    if (type == kind_type[kind])
        return CDL_OK;
    const char *nm = name ? name : "the data";
    if (type == CDL_OBJ_SECRET_KEY)
        return cdl_fail(CDL_ERR_MISMATCH,
                        "%s is a SECRET key: it must stay with the client and is never read here. Give the %s "
                        "instead (%s in the keys folder).",
                        nm, kind_name(kind), kind_file[kind]);
    return cdl_fail(CDL_ERR_MISMATCH, "%s holds a %s, not the %s expected here", nm,
                    type < N_TYPE_NAMES ? type_names[type] : "unknown object", kind_name(kind));
}

cdl_status cdl_client_key_load(const cdl_ckks_context *ctx, cdl_client_key_kind kind, const uint8_t *data,
                               size_t len, const char *name, void **key)
{
    if (!ctx || !key)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_key_load: NULL argument");
    *key = NULL;
    CDL_TRY(cdl_client_key_check_kind(data, len, kind, name));
    cdl_status st = CDL_OK;
    switch (kind) {
    case CDL_CLIENT_SECRET_KEY: st = cdl_ckks_secret_key_load(ctx, data, len, (cdl_ckks_secret_key **)key); break;
    case CDL_CLIENT_PUBLIC_KEY: st = cdl_ckks_public_key_load(ctx, data, len, (cdl_ckks_public_key **)key); break;
    case CDL_CLIENT_RELIN_KEY: st = cdl_ckks_relin_key_load(ctx, data, len, (cdl_ckks_relin_key **)key); break;
    case CDL_CLIENT_GALOIS_KEYS: st = cdl_ckks_galois_keys_load(ctx, data, len, (cdl_ckks_galois_keys **)key); break;
    }
    if (st != CDL_OK) {
        char cause[512];
        snprintf(cause, sizeof cause, "%s", cdl_last_error());
        return cdl_fail(st, "%s: %s (made for another model or other --log-n/--scale-bits?)",
                        name ? name : "the key", cause);
    }
    return CDL_OK;
}

cdl_status cdl_client_keys_load(cdl_client_keys *keys, cdl_client_key_kind kind, const uint8_t *data, size_t len,
                                const char *name)
{
    if (!keys || !kind_ok((int)kind))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keys_load: NULL keys or unknown kind");
    if (keys->borrowed)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keys_load: these keys are a view");
    void *key = NULL;
    CDL_TRY(cdl_client_key_load(keys->plan->ctx, kind, data, len, name, &key));
    drop_key(keys, kind);
    switch (kind) {
    case CDL_CLIENT_SECRET_KEY: keys->sk = key; break;
    case CDL_CLIENT_PUBLIC_KEY: keys->pk = key; break;
    case CDL_CLIENT_RELIN_KEY: keys->rlk = key; break;
    case CDL_CLIENT_GALOIS_KEYS: keys->gk = key; break;
    }
    return CDL_OK;
}

cdl_status cdl_client_keys_save(const cdl_client_keys *keys, cdl_client_key_kind kind, int compression,
                                uint8_t **data, size_t *len)
{
    if (!keys || !data || !len || !kind_ok((int)kind))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keys_save: NULL argument or unknown kind");
    *data = NULL;
    *len = 0;
    if (!key_of(keys, kind))
        return cdl_fail(CDL_ERR_EXHAUSTED, "there is no %s to save (generate or load it first)", kind_name(kind));
    const cdl_ckks_context *ctx = keys->plan->ctx;
    cdl_status st = CDL_OK;
    switch (kind) {
    case CDL_CLIENT_SECRET_KEY: st = cdl_ckks_secret_key_save(ctx, keys->sk, compression, data, len); break;
    case CDL_CLIENT_PUBLIC_KEY: st = cdl_ckks_public_key_save(ctx, keys->pk, compression, data, len); break;
    case CDL_CLIENT_RELIN_KEY: st = cdl_ckks_relin_key_save(ctx, keys->rlk, compression, data, len); break;
    case CDL_CLIENT_GALOIS_KEYS: st = cdl_ckks_galois_keys_save(ctx, keys->gk, compression, data, len); break;
    }
    if (st != CDL_OK)
        return cdl_client_fail_cause(st, "cannot serialize the %s", kind_name(kind));
    return CDL_OK;
}

/* ---- evaluation keys -------------------------------------------------------------- */

cdl_status cdl_client_keys_save_evaluation(const cdl_client_keys *keys, uint8_t **data, size_t *len)
{
    if (!keys || !data || !len)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keys_save_evaluation: NULL argument");
    *data = NULL;
    *len = 0;
    CDL_TRY(cdl_client_keys_check(keys, "these keys"));
    uint8_t *r = NULL, *g = NULL;
    size_t rl = 0, gl = 0;
    CDL_TRY(cdl_client_keys_save(keys, CDL_CLIENT_RELIN_KEY, 0, &r, &rl));
    if (!keys->gk) {
        *data = r;
        *len = rl;
        return CDL_OK;
    }
    /* the Galois keys' buffer grown to hold both (hundreds of MB: no third copy) */
    cdl_status st = cdl_client_keys_save(keys, CDL_CLIENT_GALOIS_KEYS, 0, &g, &gl);
    if (st == CDL_OK) {
        uint8_t *both = realloc(g, rl + gl);
        if (!both) {
            st = cdl_fail(CDL_ERR_NO_MEMORY, "out of memory for %zu bytes of evaluation keys", rl + gl);
        } else {
            g = NULL;
            memmove(both + rl, both, gl);
            memcpy(both, r, rl);
            *data = both;
            *len = rl + gl;
        }
    }
    cdl_free_bytes(r);
    cdl_free_bytes(g);
    return st;
}

/* Where the first serialized object of data ends, from its envelope (the
 * stored payload length at bytes 44..52); len when that cannot be read. */
static size_t first_object_end(const uint8_t *data, size_t len)
{
    if (len < CDL_ENVELOPE_BYTES || memcmp(data, "CDL\0", 4))
        return len;
    uint64_t stored = 0;
    for (int i = 7; i >= 0; i--)
        stored = stored << 8 | data[44 + i];
    if (stored > len - CDL_ENVELOPE_BYTES)
        return len;
    return CDL_ENVELOPE_BYTES + (size_t)stored;
}

cdl_status cdl_client_keys_load_evaluation(cdl_client_keys *keys, const uint8_t *data, size_t len, const char *name)
{
    if (!keys || !data)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keys_load_evaluation: NULL argument");
    const size_t cut = first_object_end(data, len);
    const int slots = keys->plan->he->n_galois > 0;
    char what[300];
    snprintf(what, sizeof what, "%s (relinearization key)", name ? name : "the evaluation keys");
    CDL_TRY(cdl_client_keys_load(keys, CDL_CLIENT_RELIN_KEY, data, cut, what));
    if (!slots) {
        if (cut != len)
            return cdl_fail(CDL_ERR_FORMAT, "%s: %zu bytes after the relinearization key: this plan uses batch "
                            "packing, whose evaluation key is the relinearization key alone",
                            name ? name : "the evaluation keys", len - cut);
        return CDL_OK;
    }
    if (cut == len)
        return cdl_fail(CDL_ERR_EXHAUSTED, "%s: this plan uses slots packing: the Galois keys must follow the "
                        "relinearization key", name ? name : "the evaluation keys");
    snprintf(what, sizeof what, "%s (Galois keys)", name ? name : "the evaluation keys");
    CDL_TRY(cdl_client_keys_load(keys, CDL_CLIENT_GALOIS_KEYS, data + cut, len - cut, what));
    return cdl_client_keys_check(keys, name);
}

size_t cdl_client_missing_steps(const cdl_he_plan *he, const cdl_ckks_galois_keys *gk, int *list, size_t cap)
{
    const int *steps = NULL;
    size_t n = 0, missing = 0;
    cdl_he_plan_galois_steps(he, &steps, &n);
    for (size_t i = 0; i < n; i++) {
        if (gk && cdl_ckks_galois_keys_has_step(gk, steps[i]))
            continue;
        if (missing < cap)
            list[missing] = steps[i];
        missing++;
    }
    return missing;
}

cdl_status cdl_client_check_galois(const cdl_he_plan *he, const cdl_ckks_galois_keys *gk, const char *name)
{
    const int *steps = NULL;
    size_t n = 0;
    cdl_he_plan_galois_steps(he, &steps, &n);
    if (n == 0)
        return CDL_OK;
    if (!gk)
        return cdl_fail(CDL_ERR_EXHAUSTED, "this plan uses slots packing: the server needs the client's Galois keys "
                                           "(galois.key, made with the same plan) besides relin.key");
    int list[8];
    const size_t missing = cdl_client_missing_steps(he, gk, list, 8);
    if (!missing) { /* every step has a key: each must also serve the level the plan rotates at */
        cdl_status st = cdl_he_check_galois_keys(he, gk);
        if (st != CDL_OK)
            return cdl_client_fail_cause(st, "%s", name ? name : "the Galois keys");
        return CDL_OK;
    }
    char text[160] = "";
    size_t at = 0;
    for (size_t i = 0; i < missing && i < 8 && at < sizeof text; i++)
        at += (size_t)snprintf(text + at, sizeof text - at, "%s%d", i ? " " : "", list[i]);
    return cdl_fail(CDL_ERR_MISMATCH, "%s %s %zu of the %zu rotation steps this plan needs (%s%s): made for another "
                    "plan or --packing?",
                    name ? name : "the Galois keys", name ? "lacks" : "lack", missing, n, text,
                    missing > 8 ? " ..." : "");
}

cdl_status cdl_client_keys_check(const cdl_client_keys *keys, const char *name)
{
    if (!keys)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keys_check: NULL keys");
    const cdl_he_plan *he = keys->plan->he;
    cdl_he_cost cost;
    cdl_he_plan_cost(he, &cost);
    if (cost.ct_mults > 0 && !keys->rlk)
        return cdl_fail(CDL_ERR_EXHAUSTED, "evaluating this plan needs the client's relinearization key (relin.key)");
    return cdl_client_check_galois(he, keys->gk, name);
}
