/*
 * client.h: the client half of encrypted inference, for any program that
 * links libcryptodl: the `cryptodl` CLI, the Python bindings (python/cryptodl,
 * ctypes) and a WebAssembly page. The secret key never leaves the
 * cdl_client_keys object that made it, unless the caller saves it.
 *
 *   client                                           server
 *   plan = cdl_client_plan_compile(model bytes)      the same plan (same model, same options,
 *          (or _open: model + plan file bytes)        or the plan file)
 *   keys = cdl_client_keygen(plan)
 *   evk  = cdl_client_keys_save_evaluation(keys) -->  cdl_client_keys_load_evaluation
 *   ct   = cdl_client_encrypt(plan, keys, images) -->  out = cdl_client_evaluate(plan, evk, ct)
 *   logits = cdl_client_decrypt(plan, keys, out)  <--
 *
 * Formats are those of the CLI's files: a plan file is the JSON of `cryptodl
 * compile --out`; keys are the serialized CKKS objects of `cryptodl keygen`
 * (secret.key, public.key, relin.key, galois.key); encrypted images and
 * encrypted logits are one batch (cdl_he_batch_save) when the images fit in one
 * batch, else a CDLPARTS container of batches (include/cryptodl/data.h). The
 * evaluation keys a server needs (a session body of `cryptodl serve`) are
 * relin.key's bytes followed, in slots packing, by galois.key's.
 *
 * Portability: every function above the "files" section computes on memory
 * only (byte buffers in and out, output streamed through a callback); no file,
 * socket or thread of its own (evaluation uses the library's OpenMP loops when
 * the library was built with OpenMP). The functions of the "files" section
 * at the end are conveniences on top, for POSIX systems.
 *
 * Objects are not thread-safe: use one cdl_client_keys per thread (it holds
 * the random generator of its encryptions). A keys object refers to its plan,
 * which must outlive it.
 *
 * Errors: cdl_status, and cdl_last_error() says what is wrong and what to do.
 * Functions that read bytes take a `name` (e.g. the file they came from, or
 * NULL) that their messages use to name the input.
 */
#ifndef CRYPTODL_CLIENT_H
#define CRYPTODL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cryptodl/ckks.h"
#include "cryptodl/common.h"
#include "cryptodl/he.h"
#include "cryptodl/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cdl_client_plan cdl_client_plan;
typedef struct cdl_client_keys cdl_client_keys;

/* ---- progress ---------------------------------------------------------------- */

/* One progress event. Each long function calls back once at the start of a
 * stage (done = 0) and then as work is done; the pointers are valid during the
 * call only. */
typedef struct cdl_client_progress {
    const char *step;   /* "keygen", "encrypt", "evaluate" or "decrypt" */
    const char *stage;  /* keygen: "secret key", "relinearization key", "public key", "Galois keys";
                           evaluate: the layer's graph node name; encrypt: "images"; decrypt: "batches" */
    int layer;          /* evaluate: the graph node of the layer (-1 otherwise) */
    size_t batch;       /* the batch being worked on, 0-based */
    size_t batches;     /* batches in all */
    size_t done, total; /* keygen: keys made of all (a Galois key per rotation step); evaluate: ciphertexts of
                           this layer; encrypt: images of all; decrypt: batches of all */
    size_t batch_images; /* encrypt, evaluate: images in this batch */
} cdl_client_progress;
typedef void (*cdl_client_progress_fn)(void *user, const cdl_client_progress *progress);

/* ---- plans --------------------------------------------------------------------- */

/* How to compile a model; zero fields are automatic (cdl_client_options_default). */
typedef struct cdl_client_options {
    int packing;         /* cdl_he_packing: batch (default), slots or auto */
    int log_n;           /* ring degree 2^log_n, 13..16; 0 = the smallest that fits */
    int scale_bits;      /* 20..50; 0 = as large as the security budget allows */
    int output_bits;     /* 2..30: room for the logits, |logit| < 2^(output_bits - 1); 0 = 10 */
    const char *approx;  /* NULL, or an activation replacement, e.g. "relu=remez:4:-6:6" */
    int max_galois_keys; /* slots: at most this many rotation keys (0 = no limit), 1..100000 */
    int max_galois_mb;   /* slots: at most this many MB (10^6 bytes) of rotation keys (0 = no limit) */
    size_t images_hint;  /* auto packing: images per request (0 = one) */
    int stream_weights;  /* slots: encode the weights at every evaluation instead of once (less memory) */
} cdl_client_options;
CDL_API void cdl_client_options_default(cdl_client_options *opt);

/* Import an ONNX model (its bytes), apply opt->approx, and compile it for
 * encrypted inference; the plan holds the graph, the HE plan and the CKKS
 * context. model_name is what the plan file records as the model's file
 * (informative) and what messages call it (NULL: "the model"). */
CDL_API cdl_status cdl_client_plan_compile(const uint8_t *model, size_t model_len, const char *model_name,
                                           const cdl_client_options *opt, cdl_client_plan **out);
/* The same with the options read from a plan file (cdl_client_plan_json):
 * refused (CDL_ERR_FORMAT) unless the file is a valid plan, and
 * (CDL_ERR_MISMATCH) unless the model's SHA-256 is the one it records and
 * compiling gives every outcome it records (parameters, packing, key set, ...).
 * opt: NULL, or only its stream_weights is used (give the compile options
 * either in the plan file or in opt, not both: CDL_ERR_INVALID_ARGUMENT). */
CDL_API cdl_status cdl_client_plan_open(const uint8_t *model, size_t model_len, const char *model_name,
                                        const uint8_t *plan_file, size_t plan_len, const char *plan_name,
                                        const cdl_client_options *opt, cdl_client_plan **out);
CDL_API void cdl_client_plan_free(cdl_client_plan *plan);

/* What the plan is. */
typedef struct cdl_client_plan_info {
    cdl_he_packing packing;          /* BATCH or SLOTS (auto is resolved) */
    int log_n, log_qp, levels, scale_bits;
    int input_rank;                  /* per image, e.g. 3 for (1, 28, 28) */
    int64_t input_shape[CDL_NN_MAX_RANK];
    size_t input_size, output_size;  /* values per image, logits per image */
    size_t batch_capacity;           /* images per batch (per request) */
    size_t input_ciphertexts, output_ciphertexts; /* per batch */
    size_t galois_steps;             /* rotation keys the server needs (0 in batch packing) */
    uint64_t galois_key_bytes;       /* the size of those Galois keys, serialized */
    uint64_t memory_bytes;           /* estimated ciphertext memory of one evaluation */
    int relin_key;                   /* 1: the server needs the relinearization key */
    char sha256[65];                 /* the model's SHA-256, hex */
    char param_hash[2 * CDL_CKKS_PARAM_HASH_BYTES + 1]; /* the CKKS parameters' hash, hex (bytes 8..40 of every
                                                           serialized object; `GET /v1/models` param_hash) */
} cdl_client_plan_info;
CDL_API cdl_status cdl_client_plan_get_info(const cdl_client_plan *plan, cdl_client_plan_info *info);
/* The HE plan, its CKKS context and the graph (whose output is the logits:
 * a trailing softmax is dropped, as the encrypted result). */
CDL_API const cdl_he_plan *cdl_client_plan_he(const cdl_client_plan *plan);
CDL_API const cdl_ckks_context *cdl_client_plan_context(const cdl_client_plan *plan);
CDL_API const cdl_nn_graph *cdl_client_plan_graph(const cdl_client_plan *plan);
/* The plan file's text (JSON, ends with a newline) and a human-readable
 * description; free with cdl_client_free. */
CDL_API cdl_status cdl_client_plan_json(const cdl_client_plan *plan, char **json);
CDL_API cdl_status cdl_client_plan_describe(const cdl_client_plan *plan, char **text);

/* Image values: NCHW, row-major, input_size values per image. */
typedef enum cdl_client_dtype {
    CDL_CLIENT_F64 = 0, /* double, taken as they are (the models take [0, 1] pixels) */
    CDL_CLIENT_F32 = 1, /* float, taken as they are */
    CDL_CLIENT_U8 = 2   /* bytes 0..255, scaled by 1/255 */
} cdl_client_dtype;

/* The plaintext reference: the model's logits for n images (cdl_nn_run in
 * float64), n * output_size doubles, to compare the decrypted logits with. */
CDL_API cdl_status cdl_client_plan_reference(const cdl_client_plan *plan, const void *images, cdl_client_dtype dtype,
                                             size_t n, double *logits);

/* ---- keys ---------------------------------------------------------------------- */

typedef enum cdl_client_key_kind {
    CDL_CLIENT_SECRET_KEY = 0, /* secret.key: decrypts; never leaves the client */
    CDL_CLIENT_PUBLIC_KEY = 1, /* public.key: encrypts only */
    CDL_CLIENT_RELIN_KEY = 2,  /* relin.key: the server's */
    CDL_CLIENT_GALOIS_KEYS = 3 /* galois.key: the server's, slots packing (the plan's rotation steps) */
} cdl_client_key_kind;
#define CDL_CLIENT_KEY_KINDS 4

#define CDL_CLIENT_KEYGEN_PUBLIC 1u /* also make the public key */

/* Make a secret key, the relinearization key, the Galois keys of the plan's
 * rotation steps (slots packing) and, with CDL_CLIENT_KEYGEN_PUBLIC, the
 * public key, from the system's randomness. progress may be NULL. */
CDL_API cdl_status cdl_client_keygen(const cdl_client_plan *plan, unsigned flags, cdl_client_progress_fn progress,
                                     void *user, cdl_client_keys **out);
/* An empty key set for the plan, to load keys into (cdl_client_keys_load). */
CDL_API cdl_status cdl_client_keys_new(const cdl_client_plan *plan, cdl_client_keys **out);
/* Frees the keys (the secret key is wiped). */
CDL_API void cdl_client_keys_free(cdl_client_keys *keys);
CDL_API int cdl_client_keys_has(const cdl_client_keys *keys, cdl_client_key_kind kind);
/* One key, serialized (compression: 0 none, 1..19 zstd); free with
 * cdl_free_bytes (wipe a secret key's bytes first). */
CDL_API cdl_status cdl_client_keys_save(const cdl_client_keys *keys, cdl_client_key_kind kind, int compression,
                                        uint8_t **data, size_t *len);
/* Load one key (replacing one of that kind). A serialized object of another
 * kind is refused from its header before anything else is read, and a secret
 * key given where another key is expected is refused saying so. */
CDL_API cdl_status cdl_client_keys_load(cdl_client_keys *keys, cdl_client_key_kind kind, const uint8_t *data,
                                        size_t len, const char *name);
/* The evaluation keys a server needs, in one buffer: the relinearization key,
 * then (slots packing) the Galois keys. Free with cdl_free_bytes. */
CDL_API cdl_status cdl_client_keys_save_evaluation(const cdl_client_keys *keys, uint8_t **data, size_t *len);
/* Load such a buffer (server side): both keys, each checked by its loader. */
CDL_API cdl_status cdl_client_keys_load_evaluation(cdl_client_keys *keys, const uint8_t *data, size_t len,
                                                   const char *name);
/* CDL_OK if keys hold what evaluating the plan needs: the relinearization key
 * and (slots packing) a Galois key for every rotation step at the level the
 * plan rotates at; else CDL_ERR_EXHAUSTED (a key is missing) or
 * CDL_ERR_MISMATCH (Galois keys lacking steps: made for another plan). */
CDL_API cdl_status cdl_client_keys_check(const cdl_client_keys *keys, const char *name);

/* The object level, for programs that hold CKKS objects themselves: the kind
 * of a serialized key from its first 8 bytes (-1 if it is not a serialized
 * object, CDL_CLIENT_KEY_KINDS if another object), refusing anything but
 * `kind` with a message (a secret key where another key is expected says so);
 * and loading one key into a new object of that kind (cdl_ckks_*_free). */
CDL_API int cdl_client_key_kind_of(const uint8_t *data, size_t len);
CDL_API cdl_status cdl_client_key_check_kind(const uint8_t *data, size_t len, cdl_client_key_kind kind,
                                             const char *name);
CDL_API cdl_status cdl_client_key_load(const cdl_ckks_context *ctx, cdl_client_key_kind kind, const uint8_t *data,
                                       size_t len, const char *name, void **key);

/* ---- encrypt, evaluate, decrypt --------------------------------------------- */

/* Where output bytes go: return 0, or nonzero to stop (the function then fails
 * with CDL_ERR_IO). */
typedef int (*cdl_client_write_fn)(void *user, const uint8_t *data, size_t len);

/* The input's name for messages, the output, progress, and a hint that the
 * caller may drop a part of the input (e.g. the pages of a mapped file) once
 * it has been loaded. Every field may be NULL (write only where no output is
 * written). */
typedef struct cdl_client_stream {
    const char *name;
    cdl_client_write_fn write;
    void *write_user;
    cdl_client_progress_fn progress;
    void *progress_user;
    void (*release)(void *user, const uint8_t *data, size_t len);
    void *release_user;
} cdl_client_stream;

typedef struct cdl_client_stats {
    size_t images, batches;
    size_t bytes;   /* written (encrypt, evaluate) */
    double seconds; /* encrypt: all of it; evaluate: the evaluations only; decrypt: all of it */
} cdl_client_stats;

/* Encrypt n images into one batch (n <= batch capacity) or a CDLPARTS
 * container of ceil(n / capacity) batches, written through io->write. With the
 * secret key (symmetric: faster, half-size ciphertexts) unless use_public is
 * set or the keys hold only the public key. stats may be NULL. */
CDL_API cdl_status cdl_client_encrypt(const cdl_client_plan *plan, cdl_client_keys *keys, const void *images,
                                      cdl_client_dtype dtype, size_t n, int use_public, const cdl_client_stream *io,
                                      cdl_client_stats *stats);
/* The server's step: every batch of `in` (encrypted images, as encrypt writes
 * them) through the plan with the evaluation keys (cdl_client_keys_check
 * first), the encrypted logits written through io->write in the same layout.
 * Every batch is checked before use: a batch of the other packing, of another
 * plan, or the encrypted logits instead of images is refused saying so. */
CDL_API cdl_status cdl_client_evaluate(const cdl_client_plan *plan, const cdl_client_keys *keys, const uint8_t *in,
                                       size_t len, const cdl_client_stream *io, cdl_client_stats *stats);
/* Decrypt encrypted logits (one batch or a container): *logits (free with
 * cdl_client_free) = *n images x output_size. flood NULL: plain decryption;
 * else every ciphertext through cdl_he_decrypt_logits_flooded (for logits that
 * leave the client; queries 0 = the ciphertexts of this input), and
 * *flood_info (may be NULL) gets the worst noise bound, sigma and rms error. */
CDL_API cdl_status cdl_client_decrypt(const cdl_client_plan *plan, cdl_client_keys *keys, const uint8_t *in,
                                      size_t len, const cdl_ckks_flood_options *flood, const cdl_client_stream *io,
                                      double **logits, size_t *n, cdl_ckks_flood_info *flood_info);
/* The same as encrypt and evaluate, into one malloc'ed buffer (free with
 * cdl_free_bytes). */
CDL_API cdl_status cdl_client_encrypt_bytes(const cdl_client_plan *plan, cdl_client_keys *keys, const void *images,
                                            cdl_client_dtype dtype, size_t n, int use_public, uint8_t **out,
                                            size_t *out_len);
CDL_API cdl_status cdl_client_evaluate_bytes(const cdl_client_plan *plan, const cdl_client_keys *keys,
                                             const uint8_t *in, size_t len, uint8_t **out, size_t *out_len);

/* One batch at a time, as objects (no serialization): encrypt n <= capacity
 * images; evaluate (progress events carry batch 0 of 1); load a serialized
 * batch checking it holds what the plan's images (logits = 0) or logits
 * (logits = 1) are; decrypt into n_images x output_size doubles. */
CDL_API cdl_status cdl_client_encrypt_batch(const cdl_client_plan *plan, cdl_client_keys *keys, const void *images,
                                            cdl_client_dtype dtype, size_t n, int use_public, cdl_he_batch **out);
CDL_API cdl_status cdl_client_evaluate_batch(const cdl_client_plan *plan, const cdl_client_keys *keys,
                                             const cdl_he_batch *in, cdl_client_progress_fn progress, void *user,
                                             cdl_he_batch **out);
CDL_API cdl_status cdl_client_load_batch(const cdl_client_plan *plan, const uint8_t *data, size_t len, int logits,
                                         const char *name, cdl_he_batch **out);
CDL_API cdl_status cdl_client_decrypt_batch(const cdl_client_plan *plan, cdl_client_keys *keys,
                                            const cdl_he_batch *logits, const cdl_ckks_flood_options *flood,
                                            double *out, cdl_ckks_flood_info *flood_info);

/* Free a string or an array this header's functions returned. */
CDL_API void cdl_client_free(void *p);
/* sizeof of this header's structs as the library was built (which = 0:
 * cdl_client_options, 1: cdl_client_plan_info, 2: cdl_client_progress,
 * 3: cdl_client_stats), for bindings that declare them (ctypes) to check. */
CDL_API size_t cdl_client_struct_size(int which);

/* ---- files (POSIX conveniences) --------------------------------------------- */

/* compile / open with the model (and plan) read from files. */
CDL_API cdl_status cdl_client_plan_compile_file(const char *model_path, const cdl_client_options *opt,
                                                cdl_client_plan **out);
CDL_API cdl_status cdl_client_plan_open_file(const char *model_path, const char *plan_path,
                                             const cdl_client_options *opt, cdl_client_plan **out);
/* Every key keys hold, as the CLI's key folder: DIR/secret.key (mode 0600),
 * public.key, relin.key, galois.key; DIR is created (mode 0700) if missing.
 * An existing DIR/secret.key is replaced only with overwrite != 0. */
CDL_API cdl_status cdl_client_keys_save_dir(const cdl_client_keys *keys, const char *dir, int overwrite);
/* Load the keys of the given kinds (a bit mask: 1 << cdl_client_key_kind)
 * from such a folder; Galois keys are read from a mapping of the file. */
CDL_API cdl_status cdl_client_keys_load_dir(cdl_client_keys *keys, const char *dir, unsigned kinds);

#ifdef __cplusplus
}
#endif
#endif
