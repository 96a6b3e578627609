/*
 * he_plan.h (private): what a compiled HE plan holds, shared by the compiler
 * (src/compile) and the runtime (src/runtime). One op per graph node; linear
 * nodes (conv, dense, average pool, non-trivial affine) are all lowered to a
 * sparse matrix (CSR rows of (input index, weight), zero weights dropped) plus
 * a bias, so the runtime has a single linear kernel. After lowering, chains of
 * linear ops are composed into one op (he_merge.c): such an op stands for
 * several graph nodes (n_linear, chain) and sits at the index of the last.
 * ADD and MUL read two values (in_value, in_value2): a residual shortcut
 * x + f(x), a difference, a product of two computed tensors.
 */
#ifndef CDL_COMPILE_HE_PLAN_H
#define CDL_COMPILE_HE_PLAN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "cryptodl/he.h"

typedef enum he_op_kind {
    HE_OP_LINEAR = 0, /* out[o] = sum_k w[k] in[col[k]] + bias[o]: 1 level */
    HE_OP_GATHER,     /* out[o] = in[src[o]] or exactly zero (src -1): pad, reshape; 0 levels */
    HE_OP_SIGN,       /* out[o] = sign[o] * in[o] + bias[o], sign = +-1: 0 levels */
    HE_OP_SQUARE,     /* out = in^2 (relinearize, rescale): 1 level */
    HE_OP_POW2K,      /* out = sign * in^(2^k) + c0: k repeated squarings, k levels */
    HE_OP_POLY,       /* out = p(in), power basis, through the approx layer: ceil(log2(d+1)) levels */
    HE_OP_ADD,        /* out = a + alpha b: 0 levels, or 1 when the two branches have equal depth but
                         scales that may differ (see count_levels in he_plan.c) */
    HE_OP_MUL,        /* out = a .* b (relinearize, rescale): 1 level beyond the deeper input */
    HE_OP_SKIP        /* a node the output does not depend on */
} he_op_kind;

/* Slots packing: where the values of a tensor live. slot[i] = ct * S + s
 * (S = N/2 slots) for value i of image 0 (image j is at s + j * period), or
 * -1: exactly zero (padding), never stored. Rank-3 tensors laid out by the
 * compiler (he_slots.c) also keep their frame description so that the next
 * layer can derive its own: value (c, y, x) sits in frame c / gap^2 at row
 * gap * y + (c % gap^2) / gap, column gap * x + c % gap of a frame_h x
 * frame_w grid, frames frame_size slots apart. */
typedef struct he_layout {
    size_t n;        /* values */
    size_t n_ct;     /* ciphertexts */
    int64_t *slot;
    int8_t *sign;    /* NULL, or per value: the slot holds sign[i] * value i (an element-wise
                        sign flip is recorded here instead of costing a level) */
    int framed;      /* the frame fields below are valid */
    int C, H, W;
    int gap, frame_h, frame_w;
    size_t frame_size;
    int mirror;      /* frames read right to left (bit 0) and/or bottom to top (bit 1): the layout a
                        convolution of a flipped image keeps its diagonals few in */
    int clean;       /* every slot outside the layout holds zero (up to CKKS noise), in every
                        ciphertext and image copy: what lets a linear op replicate its input */
} he_layout;

/* Slots packing, one linear op: y = sum_d diag_d (.) rot(x, d) per pair of
 * output / input ciphertexts, d = giant + baby (Halevi-Shoup baby-step
 * giant-step). Terms are sorted by output ciphertext, then giant step, then
 * input ciphertext and baby step; a term's weights are pre-rotated by
 * -giant, so that the giant rotation is applied once to a sum of products. */
typedef struct he_slot_term {
    uint32_t ob, ib;   /* output and input ciphertext */
    int32_t giant, baby; /* rotation steps, 0..S-1 */
    size_t e0, e1;     /* entries [e0, e1): positions (already pre-rotated) and weights */
} he_slot_term;

typedef struct he_slot_linear {
    size_t n_terms;
    he_slot_term *terms;
    uint32_t *pos;     /* slot in 0..period-1 (replicated to every image copy) */
    double *w;
    size_t n_entries;
    /* per input ciphertext: its baby steps (sorted, without 0) */
    size_t n_in_ct, n_out_ct;
    size_t *baby_off;  /* n_in_ct + 1 offsets into babies */
    int32_t *babies;
    /* per output ciphertext: its bias (exact zero when absent), period values */
    double *bias;      /* n_out_ct * period, or NULL when every bias is zero */
    size_t n_giants;   /* distinct (ob, giant) pairs = work items */
    size_t *giant_term; /* n_giants + 1 offsets into terms */
    uint64_t rotations, hoisted; /* giant-step rotations (nonzero steps), hoisted baby steps */
    size_t fold_m;     /* hybrid method (he_slots.c): partial sums m slots apart, added by rotations */
    uint64_t fold_rotations; /* log2(period / fold_m) */
    size_t cyc_n;      /* 0, or the cyclic method (he_slots.c): each input ciphertext x is first
                          replicated, x + rot(x, -cyc_n), and d = (input slot - output slot) mod cyc_n */
    /* cdl_he_options.cache_weights: the encoded diagonals (one plaintext per
     * term, at the op's level) kept after the first evaluation. The first
     * evaluation to reach the op fills them (state 1), later ones read them
     * (state 2) if encoded at the scale they need; others encode on the fly. */
    pthread_mutex_t lock;
    int cache_state;   /* 0 empty, 1 being filled, 2 complete */
    double cache_scale;
    cdl_ckks_plaintext **cache;
} he_slot_linear;

/* Rotations of a slots linear op that are not hoisted: giant steps, the
 * folds of the hybrid method and the replications of the cyclic method. */
static inline uint64_t he_slot_linear_rotations(const he_slot_linear *sl)
{
    return sl->rotations + sl->fold_rotations + (sl->cyc_n ? sl->n_in_ct : 0);
}

typedef struct he_op {
    he_op_kind kind;
    int node;           /* graph node index */
    char name[64];
    const char *kind_name;
    int in_value, out_value;
    int in_value2;      /* ADD, MUL: the second input (b); -1 for the other ops */
    size_t n_in, n_out;
    int level_in, level_out;
    int level_in2;      /* ADD, MUL: level of in_value2 */
    int cost;           /* levels it consumes (1 for LINEAR, k for POW2K, ...) */
    /* LINEAR after merging (he_merge.c): graph nodes composed into this op */
    int n_linear;       /* linear nodes (each was a level of its own); 1 for an unmerged op */
    int n_moves;        /* moves / +-1 affines folded in (free) */
    int first_node;     /* graph index of the first node of the chain */
    char *chain;        /* "a -> b (move) -> c": the nodes, in order; NULL when nothing was folded */
    /* LINEAR */
    size_t *row;        /* n_out + 1 offsets into col / w */
    uint32_t *col;
    double *w;
    double *bias;       /* n_out (LINEAR, SIGN); may be NULL */
    /* LINEAR, how to group (set by the lowering, see group_rows in he_plan.c):
     * grp_channels O > 0 = position-major over O channels; grp_size rows per
     * group; grp_choose = pick the cheapest grouping (merged ops) */
    size_t grp_channels, grp_size;
    int grp_choose;
    /* LINEAR, grouped for the runtime's fused kernel: group g holds rows
     * order[grp_row[g] .. grp_row[g+1]) (rows sharing most inputs: for a conv
     * every output channel at one position, for a dense layer 8 neighbours),
     * the sorted union of their columns gcol[grp_col[g] .. grp_col[g+1]) and
     * the rows x columns weights (0 where a row lacks the column) at gw[grp_w[g]]. */
    size_t n_groups;
    size_t *order;
    size_t *grp_row, *grp_col, *grp_w;
    uint32_t *gcol;
    double *gw;
    /* GATHER */
    int64_t *src;
    /* SIGN */
    int8_t *sign;
    /* POW2K / POLY */
    int k;
    double pow_sign, pow_c0;
    double *coeffs;
    int degree;
    /* ADD: alpha (+-1 for Add / Sub / Sum; any other constant is folded into
     * the rescale of b, or read off b's scale). adjust_a / adjust_b: that
     * input is multiplied by a constant (1, or alpha for b) encoded so that
     * after one rescale it has exactly the other input's scale, then its
     * extra primes are dropped (count_levels sets them; at most one is set). */
    double alpha;
    int adjust_a, adjust_b;
    int last_use_of_input; /* no later op reads in_value: the runtime may consume it */
    he_slot_linear *sl;    /* slots packing, LINEAR: the diagonals */
    int client_input;      /* slots packing, GATHER of the input batch while other ops read it too (a flip
                              or crop for test-time augmentation): the client encrypts this move's result
                              itself, in a fresh layout, in the batch's ciphertexts client_ct.. after the
                              input's; the server runs nothing (he_slots.c) */
    size_t client_ct;
    int slot_sign_fix;     /* slots packing, ADD: the inputs' layout signs differ; 1 = a, 2 = b is
                              aligned by a +-1 plaintext (instead of adjust's constant) */
} he_op;

/* Free an op's arrays (the op itself is not freed); he_plan.c. */
void cdl_he_op_clear(he_op *op);

struct cdl_he_plan {
    size_t n_ops;
    he_op *ops;
    size_t n_values;    /* graph nodes + 1 */
    size_t *value_size; /* ciphertexts per value */
    int output_value;   /* the logits: the graph output minus trailing softmax nodes */
    size_t dropped_softmax; /* trailing Softmax / LogSoftmax nodes not evaluated (see cdl_nn_graph_logits) */
    char dropped_name[64];  /* the last of them (the graph output) */
    size_t input_size, output_size;
    int levels;
    int levels_unmerged; /* what the levels would be without composing linear ops (he_merge.c) */
    cdl_he_options opt;
    cdl_ckks_param_spec spec;
    double scale;       /* S = 2^scale_bits */
    cdl_he_cost cost;
    int insecure;       /* parameters above the 128-bit budget (allow_insecure) */
    uint64_t peak_bytes; /* estimated peak ciphertext memory of one evaluation (input batch included) */
    int peak_node;       /* the graph node at which it is reached */
    /* packing (cdl_he_packing: BATCH or SLOTS) and, for slots, the layouts */
    int packing;
    char packing_reason[256];
    size_t slots;        /* N/2 */
    size_t period;       /* slots between image copies (slots packing); = slots for one image */
    size_t images;       /* images per ciphertext (slots packing) */
    he_layout *layout;   /* n_values layouts (slots packing) */
    int *galois_steps;   /* sorted, distinct */
    int *galois_levels;  /* per step: the highest level it rotates at (its key is truncated there) */
    size_t n_galois;
    uint64_t rotations, hoisted, plain_mults;
    uint64_t galois_bytes; /* the Galois keys the server holds */
    uint64_t composed_rotations; /* extra rotations for steps without a key of their own (max_galois_keys) */
    uint64_t weight_bytes; /* the encoded diagonals of every linear op, if kept (cache_weights) */
    int weights_streamed;  /* cache_weights was asked, but kept weights would not fit the memory budget */
    /* slots packing: the evaluation order (he_schedule.c): steps of one op, or of twin linear ops run
     * together; step s runs ops sched[step_off[s] .. step_off[s + 1]) */
    size_t *sched, *step_off;
    size_t n_steps;
    size_t twin_steps;     /* steps of more than one op */
    size_t input_cts;      /* slots packing: ciphertexts per batch (the input's, then the client moves') */
};

/* Twin linear ops evaluated together, at most (he_schedule.c). */
#define HE_MAX_TWINS 4

/* Relative cost of a hoisted rotation (the key-switching decomposition is
 * shared; the inner product and ModDown are not) against a plain one. */
#define HE_HOISTED_COST 0.6

/* Bytes of one key-switching key of the plan's parameters truncated to
 * `level` (rotation: plus the cached permutation); he_plan.c. */
uint64_t cdl_he_ksk_bytes(const cdl_he_plan *p, int rotation, int level);

/* Slots packing (he_slots.c): layouts of every value, the diagonals of every
 * linear op, the Galois steps and the period; called by cdl_he_plan_new
 * after the levels and parameters are known. */
cdl_status cdl_he_slots_compile(cdl_he_plan *p, const cdl_nn_graph *g);
void cdl_he_slots_free(cdl_he_plan *p);
void cdl_he_slot_linear_free(he_slot_linear *sl);
/* The non-adjacent form of a rotation step modulo S: the left rotations by
 * 2^k or S - 2^k whose composition it is, into digits (at most log2 S + 1);
 * returns their number (0 for a multiple of S). */
int cdl_he_slots_naf(int step, size_t S, int *digits);
/* The evaluation order with twin linear ops grouped (he_schedule.c); freed by cdl_he_slots_free. */
cdl_status cdl_he_schedule(cdl_he_plan *p);
void cdl_he_schedule_free(cdl_he_plan *p);

#endif
