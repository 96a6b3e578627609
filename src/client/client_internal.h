/*
 * client_internal.h (private to the library and the CLI): the objects of the
 * client layer (include/cryptodl/client.h) and the views the CLI makes of the
 * HE objects it already holds, so that its step functions on raw plans and
 * keys go through the same code.
 */
#ifndef CDL_CLIENT_INTERNAL_H
#define CDL_CLIENT_INTERNAL_H

#include "client/plan_record.h"
#include "cryptodl/client.h"

struct cdl_client_plan {
    const cdl_he_plan *he;        /* what every function uses */
    const cdl_ckks_context *ctx;
    cdl_he_plan *own_he;          /* owned (NULL in a view) */
    cdl_ckks_context *own_ctx;
    cdl_nn_graph *graph;          /* owned; output = the logits; NULL in a view */
    char *model_name;             /* as given to compile (the plan file's model.file); may be NULL */
    int has_record;               /* rec is valid (not in a view) */
    cdl_plan_record rec;
};

struct cdl_client_keys {
    const cdl_client_plan *plan;  /* borrowed */
    cdl_ckks_secret_key *sk;
    cdl_ckks_public_key *pk;
    cdl_ckks_relin_key *rlk;
    cdl_ckks_galois_keys *gk;
    cdl_rng *rng;                 /* encryption and flooding */
    int borrowed;                 /* the four keys belong to the caller (a view) */
};

/* A plan that borrows an HE plan and its context (no graph, no record). */
cdl_status cdl_client_plan_view(const cdl_he_plan *he, const cdl_ckks_context *ctx, cdl_client_plan **out);
/* Keys that borrow the caller's objects (any may be NULL); freeing the view
 * leaves them alone. */
cdl_status cdl_client_keys_view(const cdl_client_plan *plan, const cdl_ckks_secret_key *sk,
                                const cdl_ckks_public_key *pk, const cdl_ckks_relin_key *rlk,
                                const cdl_ckks_galois_keys *gk, cdl_client_keys **out);
/* The plan file record of a compiled plan (NULL for a view). */
const cdl_plan_record *cdl_client_plan_record(const cdl_client_plan *plan);

/* Rotation steps of the plan that gk lacks: their count, and the first ones
 * (up to cap) in list. */
size_t cdl_client_missing_steps(const cdl_he_plan *he, const cdl_ckks_galois_keys *gk, int *list, size_t cap);
/* CDL_OK if gk holds every rotation step of the plan at its level (always in
 * batch packing); else CDL_ERR_EXHAUSTED (no keys) or CDL_ERR_MISMATCH
 * (steps missing, named; `name` names the keys, NULL: "the Galois keys"). */
cdl_status cdl_client_check_galois(const cdl_he_plan *he, const cdl_ckks_galois_keys *gk, const char *name);

/* Image values as doubles: *values points to images (F64, checked finite)
 * or to *owned, a converted copy (cdl_free). */
cdl_status cdl_client_images_f64(const void *images, cdl_client_dtype dtype, size_t count, const double **values,
                                 double **owned);

/* Record a failure whose message is `fmt` followed by ": " and the current
 * last error (the cause). */
cdl_status cdl_client_fail_cause(cdl_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
