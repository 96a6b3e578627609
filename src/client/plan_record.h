/*
 * plan_record.h (private to the library and the CLI): the JSON plan file
 * `cryptodl compile --out plan.json` writes and the other pipeline steps read
 * (src/client/plan_record.c). The public side is cdl_client_plan_json and
 * cdl_client_plan_open (include/cryptodl/client.h).
 *
 * The file records the model's SHA-256, the options the user chose, and what
 * the compiler made of them (CKKS parameters, shapes, batch capacity, key set,
 * memory estimate, cost). A reader takes the options from it, compiles the
 * model again with them, and refuses unless the model's hash and every
 * recorded outcome match: client and server then provably run the same plan.
 * The file is input: every field is checked for its type and range.
 */
#ifndef CDL_CLIENT_PLAN_RECORD_H
#define CDL_CLIENT_PLAN_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/cryptodl.h"

#define CDL_PLAN_FILE_FORMAT "cryptodl-plan"
#define CDL_PLAN_FILE_VERSION 1
#define CDL_PLAN_FILE_MAX_BYTES ((size_t)1 << 20)
#define CDL_PLAN_APPROX_MAX 255
#define CDL_PLAN_MAX_GALOIS 4096 /* rotation steps a plan file can list */

/* The user's choices; 0 = automatic (log_n, scale_bits). */
typedef struct cdl_plan_options {
    int log_n;
    int scale_bits;
    int output_bits;                      /* 2..30 */
    char approx[CDL_PLAN_APPROX_MAX + 1]; /* "" = none */
    int packing;                          /* cdl_he_packing as asked: batch (default), slots or auto */
    int max_galois_keys;                  /* slots: at most this many Galois keys (0 = no limit) */
    int max_galois_mb;                    /* slots: at most this many MB (10^6 bytes) of Galois keys (0 = no limit) */
} cdl_plan_options;

/* Everything a plan file holds, as read (or as computed for writing). */
typedef struct cdl_plan_record {
    char sha256[65];               /* the model file's SHA-256, lowercase hex */
    cdl_plan_options opt;
    int log_n, q_count, p_count, log_qp, scale_bits, levels;
    int q_bits[CDL_CKKS_MAX_PRIMES], p_bits[CDL_CKKS_MAX_PRIMES];
    int input_rank;
    int64_t input_shape[CDL_NN_MAX_RANK];
    size_t input_size, output_size, batch_capacity;
    int packing;                   /* the packing the compiler chose: CDL_HE_PACKING_BATCH or _SLOTS */
    size_t input_ciphertexts, output_ciphertexts; /* per batch */
    int relin_key;                 /* 1: the server needs the relinearization key */
    size_t n_galois;               /* rotation steps the server's Galois keys must hold (slots) */
    int galois[CDL_PLAN_MAX_GALOIS]; /* ascending, 1..N/2-1 */
    uint64_t galois_key_bytes;     /* their size (cdl_he_plan_galois_key_bytes) */
    uint64_t memory_bytes;
    cdl_he_cost cost;
    const cdl_he_plan *plan;       /* when made from a plan: its layers are written ("layers", descriptive:
                                      a reader checks their form, not their values, which compiling again
                                      gives). Borrowed: set it to NULL before freeing the plan if the record
                                      is written afterwards. */
} cdl_plan_record;

/* SHA-256 of bytes, lowercase hex. */
void cdl_plan_sha256(const uint8_t *data, size_t len, char hex[65]);

/* Fill a record from a compiled plan (g: the graph it was compiled from). A
 * plan with more than CDL_PLAN_MAX_GALOIS rotation steps records only the
 * first ones and n_galois = CDL_PLAN_MAX_GALOIS + 1 (the caller refuses it). */
void cdl_plan_record_from(const cdl_he_plan *plan, const cdl_nn_graph *g, const cdl_plan_options *opt,
                          const char *sha256, cdl_plan_record *rec);

/* The JSON text of a record (malloc'ed, NUL-terminated, free()), or NULL when
 * out of memory. model_file is informative. */
char *cdl_plan_record_json(const cdl_plan_record *rec, const char *model_file);

/* Parse and validate a plan file's bytes. 0 on success, -1 with a message in err.
 * Files written before slots packing existed (no options.packing, "packing":
 * "batch-simd", no ciphertext counts, no galois_key_bytes) read as batch. */
int cdl_plan_record_parse(const uint8_t *data, size_t len, cdl_plan_record *rec, char *err, size_t errcap);

/* Compare what a file recorded with a fresh compilation: 0 if equal, else -1 naming the first difference. */
int cdl_plan_record_compare(const cdl_plan_record *file, const cdl_plan_record *now, char *err, size_t errcap);

/* "batch", "slots" or "auto". */
const char *cdl_plan_packing_name(int packing);

#endif
