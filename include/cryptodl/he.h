/*
 * he.h: encrypted inference. A trained network (the nn graph IR) is compiled
 * into an HE plan, the client encrypts a batch of images under its own key,
 * a server that holds only evaluation keys runs the plan on the ciphertexts,
 * and the client decrypts the logits.
 *
 * Packing, two kinds (cdl_he_options.packing):
 *
 * batch: throughput ("batch-SIMD") mode, as in CryptoNets (Gilad-Bachrach
 * et al., ICML 2016) and CryptoDL (Hesamifard et al. 2017): slot j of every
 * ciphertext holds image j of the batch, and each value of a layer (a pixel,
 * a neuron) is one ciphertext holding that value for up to N/2 images. A
 * linear layer is then a sum of ciphertext x plaintext scalar products (no
 * rotations, no Galois keys); an activation is a polynomial evaluated slot by
 * slot. One batch costs the same whether it holds 1 or N/2 images.
 *
 * slots: one image laid across the slots of one or a few ciphertexts
 * (latency mode, as in LoLa, Gazelle and Orion). Every tensor has a layout
 * chosen by the compiler: C x H x W in channel frames, with the gaps a
 * strided layer leaves filled by further channels (the multiplexed layout of
 * Lee et al., ICML 2022); a tensor larger than N/2 spans several
 * ciphertexts. A linear layer is a matrix-vector product by the diagonal
 * method (Halevi-Shoup) with baby-step giant-step and hoisted baby steps, so
 * the server needs Galois keys for the exact rotation steps the plan lists
 * (cdl_he_plan_galois_steps). When the widest tensor takes at most half the
 * slots, several images share each ciphertext (LoLa-style replication). A
 * request is a few ciphertexts instead of one per pixel.
 *
 * Scales: every linear layer encodes its weights at scale q_l * S / s_in
 * (q_l the prime the rescale divides by, s_in the input's scale, S = 2^scale_bits)
 * so that its output has exactly the scale S; activations record the scale
 * they produce, and the next linear layer brings it back to S.
 *
 *   client                               server
 *   cdl_he_plan_new(graph) ------------- cdl_he_plan_new(graph)   (same model, same options)
 *   cdl_he_context_new(plan) ----------- the same parameters
 *   keys: secret (kept), relin key ----> relin key
 *   cdl_he_encrypt_batch --------------> cdl_he_evaluate (no secret key)
 *   cdl_he_decrypt_logits <------------- encrypted logits
 */
#ifndef CRYPTODL_HE_H
#define CRYPTODL_HE_H

#include <stddef.h>

#include "cryptodl/ckks.h"
#include "cryptodl/common.h"
#include "cryptodl/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How images are laid out in the slots (see the top of this file). */
typedef enum cdl_he_packing {
    CDL_HE_PACKING_BATCH = 0, /* one image per slot, one ciphertext per value */
    CDL_HE_PACKING_SLOTS = 1, /* one image across the slots, rotations */
    CDL_HE_PACKING_AUTO = 2   /* slots unless batch fits the memory budget and the request fills a batch */
} cdl_he_packing;

/* How to choose the CKKS parameters. Zero fields mean "automatic". */
typedef struct cdl_he_options {
    int log_n;          /* ring degree 2^log_n; 0 = the smallest N whose 128-bit budget fits the levels */
    int scale_bits;     /* S = 2^scale_bits, also the size of the middle primes; 0 = as large as fits (max 50) */
    int min_scale_bits; /* the automatic choice moves to a larger N below this; default 26 */
    int output_bits;    /* bits of headroom above S in the decryption prime q_0: the logits must satisfy
                           |y| < 2^(output_bits - 1); default 10 */
    int allow_insecure; /* TESTING ONLY: with log_n < 13, build parameters above the 128-bit budget */
    int packing;        /* cdl_he_packing; default batch */
    size_t images_hint; /* AUTO: images per request (0 = one) */
    uint64_t memory_budget; /* AUTO, cache_weights: bytes one evaluation may use (0 = this machine's
                               physical memory) */
    int cache_weights;  /* slots: 1 = keep the encoded weights after the first evaluation (faster later
                           evaluations, more memory: cdl_he_plan_weight_bytes), unless with the rest of the
                           peak they would pass 80% of the memory budget (then encoded on the fly, said in
                           the plan's description); 0 = encode them on the fly */
    int max_galois_keys; /* slots: at most this many Galois keys (0 = one per rotation step the plan uses);
                            above it, steps are composed of rotations by +-2^k (2 log2(N/2) - 1 keys) plus
                            the most used steps: fewer key bytes, more rotations */
    uint64_t max_galois_bytes; /* slots: at most this many bytes of Galois keys (0 = no limit); like
                                  max_galois_keys, the keys that save the most rotations are kept */
    int special_primes; /* slots: special primes for key switching (digits of that many primes: smaller
                           Galois keys, faster rotations, fewer scale bits); 0 = automatic, 1..8 */
    int separate_twins; /* slots: 1 = run linear ops with the same weights and layout ("twins": two branches of
                           a network, e.g. an image and its mirror) one after the other; 0 (default) = together,
                           each diagonal encoded once for all of them (faster, their intermediate ciphertexts
                           live at the same time) */
} cdl_he_options;

CDL_API void cdl_he_options_default(cdl_he_options *opt);

typedef struct cdl_he_plan cdl_he_plan;

/*
 * Compile a graph. Every node the output depends on must be runnable
 * (CDL_ERR_UNSUPPORTED names the first node that is not, and why); the plan
 * counts the levels the graph consumes and picks CKKS parameters. The plan
 * copies what it needs: the graph may be freed afterwards.
 */
CDL_API cdl_status cdl_he_plan_new(const cdl_nn_graph *graph, const cdl_he_options *opt, cdl_he_plan **out);
CDL_API void cdl_he_plan_free(cdl_he_plan *plan);
/* A multi-line, human-readable description (layers, levels, parameters, cost); free with cdl_he_string_free. */
CDL_API cdl_status cdl_he_plan_describe(const cdl_he_plan *plan, char **text);
CDL_API void cdl_he_string_free(char *s);
/* The parameters the plan chose (a 128-bit secure spec unless allow_insecure was needed). */
CDL_API const cdl_ckks_param_spec *cdl_he_plan_params(const cdl_he_plan *plan);
CDL_API int cdl_he_plan_levels(const cdl_he_plan *plan);       /* levels consumed by one inference */
CDL_API size_t cdl_he_plan_input_size(const cdl_he_plan *plan);  /* input ciphertexts (values per image) */
CDL_API size_t cdl_he_plan_output_size(const cdl_he_plan *plan); /* output ciphertexts (logits per image) */
CDL_API size_t cdl_he_plan_batch_capacity(const cdl_he_plan *plan); /* images per batch: N/2, or per slot batch */
/* The packing the plan uses (BATCH or SLOTS; AUTO is resolved at compile time)
 * and, for AUTO, a sentence saying why. */
CDL_API cdl_he_packing cdl_he_plan_packing(const cdl_he_plan *plan);
CDL_API const char *cdl_he_plan_packing_reason(const cdl_he_plan *plan);
/* Ciphertexts of one batch of input images / of its encrypted logits
 * (batch packing: the values per image; slots packing: a few). */
CDL_API size_t cdl_he_plan_input_ciphertexts(const cdl_he_plan *plan);
CDL_API size_t cdl_he_plan_output_ciphertexts(const cdl_he_plan *plan);
/* The rotation steps (left, 1..N/2-1) the server's Galois keys must hold;
 * none in batch packing. The array belongs to the plan. */
CDL_API void cdl_he_plan_galois_steps(const cdl_he_plan *plan, const int **steps, size_t *count);
/* Rotations of one evaluation (hoisted ones counted apart) and ciphertext x
 * plaintext products; zero in batch packing. */
CDL_API void cdl_he_plan_rotations(const cdl_he_plan *plan, uint64_t *rotations, uint64_t *hoisted,
                                   uint64_t *plain_mults);
/* Slots packing: bytes of the encoded weights (diagonals) of every linear op at
 * the level it runs, what cache_weights keeps in memory. */
CDL_API uint64_t cdl_he_plan_weight_bytes(const cdl_he_plan *plan);
/* Bytes of the Galois keys' uncompressed file (cdl_ckks_galois_keys_save), exactly. */
CDL_API uint64_t cdl_he_plan_galois_key_file_bytes(const cdl_he_plan *plan);
/* CDL_OK if gk holds a key for every rotation step of the plan, each serving
 * the level the plan rotates at; else CDL_ERR_MISMATCH naming a missing step. */
CDL_API cdl_status cdl_he_check_galois_keys(const cdl_he_plan *plan, const cdl_ckks_galois_keys *gk);
/* Bytes of those Galois keys in memory (about their uncompressed file size). */
CDL_API uint64_t cdl_he_plan_galois_key_bytes(const cdl_he_plan *plan);
/* Client: Galois keys for exactly the plan's rotation steps. */
CDL_API cdl_status cdl_he_keygen_galois(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                        const cdl_ckks_secret_key *sk, cdl_rng *rng, cdl_ckks_galois_keys **out);

/* Operation counts of one evaluation (the same for any batch size). */
typedef struct cdl_he_cost {
    uint64_t const_mults; /* ciphertext x scalar (zero weights skipped) */
    uint64_t adds;        /* ciphertext + ciphertext */
    uint64_t ct_mults;    /* ciphertext x ciphertext, each relinearized */
    uint64_t rescales;
} cdl_he_cost;
CDL_API void cdl_he_plan_cost(const cdl_he_plan *plan, cdl_he_cost *cost);
/* Estimated peak memory of the ciphertexts of one cdl_he_evaluate, in bytes
 * (the input batch included): one ciphertext per value of the widest live
 * layers, whatever the number of images. */
CDL_API uint64_t cdl_he_plan_memory(const cdl_he_plan *plan);

/* The plan layer by layer (the ops it runs, in order; merged linear chains
 * are one layer), for descriptions and JSON. */
typedef struct cdl_he_layer_info {
    const char *name;      /* the graph node (the last of a merged chain) */
    const char *op;        /* "linear", "x^2", "polynomial", "a + b", "move", ... */
    size_t values;         /* outputs per image */
    int level_in, level_out;
    size_t ciphertexts;    /* ciphertexts of the output (batch: one per value) */
    int gap, frame_h, frame_w; /* slots: the output's frame layout (0 when not framed) */
    uint64_t rotations, hoisted, plain_mults; /* slots, linear layers */
    double est_seconds;    /* slots: a rough single-thread estimate (not a measurement); 0 for batch */
} cdl_he_layer_info;
CDL_API size_t cdl_he_plan_layer_count(const cdl_he_plan *plan);
CDL_API cdl_status cdl_he_plan_layer(const cdl_he_plan *plan, size_t i, cdl_he_layer_info *out);

/* A CKKS context with the plan's parameters. */
CDL_API cdl_status cdl_he_context_new(const cdl_he_plan *plan, cdl_ckks_context **out);

/* A batch: one ciphertext per value (input pixels, or output logits), each
 * holding that value for n_images images in slots 0..n_images-1. */
typedef struct cdl_he_batch cdl_he_batch;
CDL_API void cdl_he_batch_free(cdl_he_batch *batch);
CDL_API size_t cdl_he_batch_images(const cdl_he_batch *batch);
CDL_API size_t cdl_he_batch_count(const cdl_he_batch *batch); /* ciphertexts */
CDL_API const cdl_ckks_ciphertext *cdl_he_batch_ciphertext(const cdl_he_batch *batch, size_t i);
/* Serialized size in bytes (uncompressed) of the whole batch. */
CDL_API cdl_status cdl_he_batch_bytes(const cdl_ckks_context *ctx, const cdl_he_batch *batch, size_t *bytes);
/* One file-friendly blob: header (magic "CDLHEBAT", version, images, count) + each ciphertext's
 * own serialization (which carries the parameter hash). compression as cdl_ckks_ciphertext_save. */
CDL_API cdl_status cdl_he_batch_save(const cdl_ckks_context *ctx, const cdl_he_batch *batch, int compression,
                                     uint8_t **data, size_t *len);
CDL_API cdl_status cdl_he_batch_load(const cdl_ckks_context *ctx, const uint8_t *data, size_t len,
                                     cdl_he_batch **out);

/*
 * Client: encrypt n images (n * input_size doubles, row-major, as cdl_nn_run
 * takes them) at the plan's top level and scale. Give the public key or the
 * secret key (symmetric encryption: faster, and a saved fresh ciphertext is
 * about half the size); exactly one of pk and sk. n <= batch capacity.
 */
CDL_API cdl_status cdl_he_encrypt_batch(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                        const cdl_ckks_public_key *pk, const cdl_ckks_secret_key *sk,
                                        const double *images, size_t n, cdl_rng *rng, cdl_he_batch **out);

/* Progress: node (index into the graph), work done and total for that node. */
typedef void (*cdl_he_progress_fn)(void *user, int node, const char *name, size_t done, size_t total);

/*
 * Server: run the plan on an encrypted batch. Needs only the relinearization
 * key. Multithreaded over the neurons of a layer (cdl_set_threads); the
 * result does not depend on the thread count. progress may be NULL.
 */
CDL_API cdl_status cdl_he_evaluate(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                   const cdl_ckks_relin_key *rlk, const cdl_he_batch *in,
                                   cdl_he_progress_fn progress, void *user, cdl_he_batch **out);
/* The same with Galois keys, which slots packing needs (every step of
 * cdl_he_plan_galois_steps; a missing one is refused before any work). */
CDL_API cdl_status cdl_he_evaluate_keys(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                        const cdl_ckks_relin_key *rlk, const cdl_ckks_galois_keys *gk,
                                        const cdl_he_batch *in, cdl_he_progress_fn progress, void *user,
                                        cdl_he_batch **out);

/* Client: decrypt the logits into n_images * output_size doubles (row-major per image). */
CDL_API cdl_status cdl_he_decrypt_logits(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                         const cdl_ckks_secret_key *sk, const cdl_he_batch *logits,
                                         double *out);
/* The same with every ciphertext decrypted by cdl_ckks_decrypt_flooded (opt
 * NULL = defaults: 40 bits, as many queries as ciphertexts decrypted here,
 * noise estimated per ciphertext): for
 * logits that leave the client (IND-CPA-D, docs/security.md). rng must be a
 * system generator (or the tests' cdl_rng_new_seeded_insecure); one child
 * stream per ciphertext is drawn from it in order, so the result does not
 * depend on the thread count. info (may be NULL) gets the largest noise
 * bound, sigma and per-logit rms error over the ciphertexts; an error of
 * more than a few hundredths means the plan's output scale is too small for
 * this flooding (compile with a larger --scale-bits). */
CDL_API cdl_status cdl_he_decrypt_logits_flooded(const cdl_he_plan *plan, const cdl_ckks_context *ctx,
                                                 const cdl_ckks_secret_key *sk, const cdl_he_batch *logits,
                                                 const cdl_ckks_flood_options *opt, cdl_rng *rng, double *out,
                                                 cdl_ckks_flood_info *info);

#ifdef __cplusplus
}
#endif
#endif
