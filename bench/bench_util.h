/*
 * bench_util.h: the CKKS benchmark runner, shared (header-only, static inline)
 * by bench/bench_ckks.c (JSON lines) and `cryptodl bench ckks`
 * (tools/cmd_bench.c: a table, or the same JSON lines).
 *
 * What is measured and how:
 *   - one "set" per ring degree: the preset parameters of cdl_ckks_preset
 *     (N = 2^13, 2^14, 2^15 at the 128-bit maximum log Q 218, 438, 881), a
 *     secret/public/relinearization key, Galois keys for left rotations by
 *     1..8, and fresh public-key ciphertexts at the top level, as SEAL's
 *     sealbench does;
 *   - every operation is run once to warm up, then repeatedly, each call timed
 *     on its own with CLOCK_MONOTONIC, until both a minimum number of
 *     repetitions and a time budget are reached (or a maximum count); the
 *     reported figure is the median, which shrugs off the odd slow call on a
 *     shared machine;
 *   - ntt_fwd / ntt_inv transform one polynomial modulo one prime (q_0, the
 *     largest-precision prime of the chain) with the active kernel
 *     (src/ring/ntt.h, internal API); they are single-threaded whatever the
 *     thread setting.
 * It also measures the precision of each operation in bits (-log2 of the
 * worst slot error against the same computation in double precision).
 */
#ifndef CDL_BENCH_UTIL_H
#define CDL_BENCH_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/memory.h"
#include "cryptodl/cryptodl.h"
#include "ring/ntt.h"

/* ---- timing ---- */

static inline double bench_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: on a loaded machine it is what the code
 * costs, without the time spent waiting for a core. Meaningless for
 * multi-threaded calls (the other threads' work is not counted). */
static inline double bench_thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

/* CPU time of the whole process (every thread): set against the wall time of
 * a multi-threaded call, it shows how much of it the machine gave us. */
static inline double bench_process_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return 1e6 * (double)ts.tv_sec + 1e-3 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof v[0], bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- the operations ---- */

typedef enum bench_op {
    BENCH_NTT_FWD,
    BENCH_NTT_INV,
    BENCH_ENCODE,
    BENCH_DECODE,
    BENCH_ENCRYPT_PK,
    BENCH_ENCRYPT_SK,
    BENCH_DECRYPT,
    BENCH_ADD,
    BENCH_MUL_PLAIN,
    BENCH_MUL,
    BENCH_RELIN,
    BENCH_MUL_RELIN,
    BENCH_RESCALE,
    BENCH_ROTATE,
    BENCH_ROTATE8,
    BENCH_ROTATE_HOISTED8,
    BENCH_ROTATE_SUM8_REF, /* before the two below: their table rows give their ratio to it */
    BENCH_ROTATE_SUM8_HOISTED,
    BENCH_ROTATE_SUM8,
    BENCH_OP_COUNT
} bench_op;

#define BENCH_HOISTED 8 /* rotations in rotate8, rotate_hoisted8 and the rotate_sum8 rows: steps 1..8 */

static inline const char *bench_op_name(bench_op op)
{
    switch (op) {
    case BENCH_NTT_FWD: return "ntt_fwd";
    case BENCH_NTT_INV: return "ntt_inv";
    case BENCH_ENCODE: return "encode";
    case BENCH_DECODE: return "decode";
    case BENCH_ENCRYPT_PK: return "encrypt_pk";
    case BENCH_ENCRYPT_SK: return "encrypt_sk";
    case BENCH_DECRYPT: return "decrypt";
    case BENCH_ADD: return "add";
    case BENCH_MUL_PLAIN: return "mul_plain";
    case BENCH_MUL: return "mul";
    case BENCH_RELIN: return "relin";
    case BENCH_MUL_RELIN: return "mul_relin";
    case BENCH_RESCALE: return "rescale";
    case BENCH_ROTATE: return "rotate";
    case BENCH_ROTATE8: return "rotate8";
    case BENCH_ROTATE_HOISTED8: return "rotate_hoisted8";
    case BENCH_ROTATE_SUM8: return "rotate_sum8";
    case BENCH_ROTATE_SUM8_HOISTED: return "rotate_sum8_hoisted";
    case BENCH_ROTATE_SUM8_REF: return "rotate_sum8_ref";
    default: return "?";
    }
}

/* The op called `name`, or BENCH_OP_COUNT if there is none. */
static inline bench_op bench_op_from_name(const char *name)
{
    for (int i = 0; i < BENCH_OP_COUNT; i++)
        if (!strcmp(name, bench_op_name((bench_op)i)))
            return (bench_op)i;
    return BENCH_OP_COUNT;
}

/* How long to measure each operation. */
typedef struct bench_budget {
    double seconds; /* keep repeating until this much time was spent ... */
    int min_reps;   /* ... and at least this many timed calls ... */
    int max_reps;   /* ... but never more than this many */
    int thread_cpu; /* 0: wall clock (CLOCK_MONOTONIC); 1: the calling thread's CPU time (1 thread only) */
} bench_budget;

static inline bench_budget bench_budget_default(void) { return (bench_budget){0.5, 7, 2000, 0}; }
static inline bench_budget bench_budget_quick(void) { return (bench_budget){0.05, 3, 200, 0}; }

/* One measured line. */
typedef struct bench_row {
    bench_op op;
    size_t n;     /* ring degree N */
    int log_n;
    int log_q;    /* total modulus bits incl. special primes, rounded */
    int threads;
    double us;    /* median microseconds per call */
    double min_us; /* fastest call (what an unloaded machine approaches) */
    int reps;     /* timed calls behind the median */
    int thread_cpu; /* timed with the calling thread's CPU time instead of the wall clock */
} bench_row;

/* One JSON object on one line (no trailing comma, keys in a fixed order). */
static inline void bench_row_print_json(FILE *out, const bench_row *r)
{
    fprintf(out, "{\"bench\": \"%s\", \"n\": %zu, \"log_q\": %d, \"threads\": %d, \"us\": %.2f, \"min_us\": %.2f, "
                 "\"reps\": %d, \"isa\": \"%s\", \"clock\": \"%s\"}\n",
            bench_op_name(r->op), r->n, r->log_q, r->threads, r->us, r->min_us, r->reps,
            cdl_isa_name(cdl_isa_active()), r->thread_cpu ? "thread_cpu" : "wall");
}

/* ---- one parameter set with everything the operations need ---- */

typedef struct bench_ckks_set {
    int log_n;
    size_t n, slots;
    int log_q, max_level;
    double scale;
    cdl_ckks_context *ctx;
    cdl_rng *rng;
    cdl_ckks_secret_key *sk;
    cdl_ckks_public_key *pk;
    cdl_ckks_relin_key *rlk;
    cdl_ckks_galois_keys *gk;
    cdl_ckks_plaintext *pt, *pt_out;
    cdl_ckks_ciphertext *ct_a, *ct_b, *ct3, *ct_prod, *ct_out;
    cdl_ckks_ciphertext *rot[BENCH_HOISTED];
    cdl_ckks_plaintext *sum_pt[BENCH_HOISTED]; /* the rotate_sum8 plaintexts: top level, with the special primes */
    double *x, *y, *buf;     /* slots values each */
    cdl_ntt_table *ntt;
    uint64_t *ntt_buf;       /* N coefficients */
    double keygen_seconds;
} bench_ckks_set;

static inline void bench_ckks_set_free(bench_ckks_set *s)
{
    if (!s)
        return;
    for (int i = 0; i < BENCH_HOISTED; i++) {
        cdl_ckks_ciphertext_free(s->rot[i]);
        cdl_ckks_plaintext_free(s->sum_pt[i]);
    }
    cdl_ckks_ciphertext_free(s->ct_out);
    cdl_ckks_ciphertext_free(s->ct_prod);
    cdl_ckks_ciphertext_free(s->ct3);
    cdl_ckks_ciphertext_free(s->ct_b);
    cdl_ckks_ciphertext_free(s->ct_a);
    cdl_ckks_plaintext_free(s->pt_out);
    cdl_ckks_plaintext_free(s->pt);
    cdl_ckks_galois_keys_free(s->gk);
    cdl_ckks_relin_key_free(s->rlk);
    cdl_ckks_public_key_free(s->pk);
    cdl_ckks_secret_key_free(s->sk);
    cdl_rng_free(s->rng);
    cdl_ckks_context_free(s->ctx);
    cdl_ntt_table_free(s->ntt);
    cdl_free(s->ntt_buf);
    free(s->x);
    free(s->y);
    free(s->buf);
    memset(s, 0, sizeof *s);
}

/* Uniform in [-1, 1) from the library's random source. */
static inline double bench_uniform(cdl_rng *rng) { return (double)(cdl_rng_u64(rng) >> 11) * 0x1p-52 - 1.0; }

/*
 * Build the set for N = 2^log_n from cdl_ckks_preset. rng_or_null: NULL for
 * the system random source; a seeded rng makes the set reproducible (the set
 * takes ownership of it either way).
 */
static inline cdl_status bench_ckks_set_new(int log_n, cdl_rng *rng_or_null, bench_ckks_set *s)
{
    memset(s, 0, sizeof *s);
    s->rng = rng_or_null;
    cdl_status st = CDL_OK;
#define BENCH_TRY(call)                                                                                              \
    do {                                                                                                             \
        if ((st = (call)) != CDL_OK)                                                                                 \
            goto fail;                                                                                               \
    } while (0)
    if (!s->rng)
        BENCH_TRY(cdl_rng_new_system(&s->rng));
    double t0 = bench_now_us();
    cdl_ckks_param_spec spec;
    BENCH_TRY(cdl_ckks_preset(log_n, &spec));
    BENCH_TRY(cdl_ckks_context_new(&spec, &s->ctx));
    s->log_n = cdl_ckks_log_n(s->ctx);
    s->n = (size_t)1 << s->log_n;
    s->slots = cdl_ckks_slots(s->ctx);
    s->max_level = cdl_ckks_max_level(s->ctx);
    s->log_q = (int)lround(cdl_ckks_log_qp(s->ctx));
    s->scale = cdl_ckks_default_scale(s->ctx);

    BENCH_TRY(cdl_ckks_keygen_secret(s->ctx, s->rng, &s->sk));
    BENCH_TRY(cdl_ckks_keygen_public(s->ctx, s->sk, s->rng, &s->pk));
    BENCH_TRY(cdl_ckks_keygen_relin(s->ctx, s->sk, s->rng, &s->rlk));
    int steps[BENCH_HOISTED];
    for (int i = 0; i < BENCH_HOISTED; i++)
        steps[i] = i + 1;
    BENCH_TRY(cdl_ckks_keygen_galois(s->ctx, s->sk, steps, BENCH_HOISTED, 0, s->rng, &s->gk));
    s->keygen_seconds = 1e-6 * (bench_now_us() - t0);

    s->x = malloc(s->slots * sizeof(double));
    s->y = malloc(s->slots * sizeof(double));
    s->buf = malloc(s->slots * sizeof(double));
    s->ntt_buf = cdl_alloc_array(s->n, sizeof(uint64_t));
    if (!s->x || !s->y || !s->buf || !s->ntt_buf) {
        st = CDL_ERR_NO_MEMORY;
        goto fail;
    }
    for (size_t i = 0; i < s->slots; i++) {
        s->x[i] = bench_uniform(s->rng);
        s->y[i] = bench_uniform(s->rng);
    }
    BENCH_TRY(cdl_ckks_plaintext_new(s->ctx, &s->pt));
    BENCH_TRY(cdl_ckks_plaintext_new(s->ctx, &s->pt_out));
    BENCH_TRY(cdl_ckks_ciphertext_new(s->ctx, &s->ct_a));
    BENCH_TRY(cdl_ckks_ciphertext_new(s->ctx, &s->ct_b));
    BENCH_TRY(cdl_ckks_ciphertext_new(s->ctx, &s->ct3));
    BENCH_TRY(cdl_ckks_ciphertext_new(s->ctx, &s->ct_prod));
    BENCH_TRY(cdl_ckks_ciphertext_new(s->ctx, &s->ct_out));
    for (int i = 0; i < BENCH_HOISTED; i++)
        BENCH_TRY(cdl_ckks_ciphertext_new(s->ctx, &s->rot[i]));
    /* the rotate_sum8 rows' plaintexts (y, at the default scale; the rows do not rescale) */
    for (int i = 0; i < BENCH_HOISTED; i++) {
        BENCH_TRY(cdl_ckks_plaintext_new_qp(s->ctx, s->max_level, &s->sum_pt[i]));
        BENCH_TRY(cdl_ckks_encode(s->ctx, s->y, s->slots, s->scale, s->max_level, s->sum_pt[i]));
    }

    /* Inputs of the timed calls: fresh ciphertexts at the top level, their
     * size-3 product and its relinearization (the input of rescale). */
    BENCH_TRY(cdl_ckks_encode(s->ctx, s->y, s->slots, s->scale, s->max_level, s->pt));
    BENCH_TRY(cdl_ckks_encrypt_pk(s->ctx, s->pk, s->pt, s->rng, s->ct_b));
    BENCH_TRY(cdl_ckks_encode(s->ctx, s->x, s->slots, s->scale, s->max_level, s->pt));
    BENCH_TRY(cdl_ckks_encrypt_pk(s->ctx, s->pk, s->pt, s->rng, s->ct_a));
    BENCH_TRY(cdl_ckks_mul(s->ctx, s->ct_a, s->ct_b, s->ct3));
    BENCH_TRY(cdl_ckks_relinearize(s->ctx, s->rlk, s->ct3, s->ct_prod));

    /* One NTT prime: q_0, as SEAL's "one 60-bit prime" row. */
    BENCH_TRY(cdl_ntt_table_new(s->n, cdl_ckks_prime(s->ctx, 0), &s->ntt));
    for (size_t i = 0; i < s->n; i++)
        s->ntt_buf[i] = cdl_rng_u64(s->rng) % s->ntt->mod.value;
    return CDL_OK;
#undef BENCH_TRY
fail:
    bench_ckks_set_free(s);
    return st;
}

/* Run `op` once on the set's prepared inputs. */
static inline cdl_status bench_ckks_run_once(bench_ckks_set *s, bench_op op)
{
    const cdl_ckks_context *ctx = s->ctx;
    switch (op) {
    case BENCH_NTT_FWD: cdl_ntt_forward(s->ntt, s->ntt_buf); return CDL_OK;
    case BENCH_NTT_INV: cdl_ntt_inverse(s->ntt, s->ntt_buf); return CDL_OK;
    case BENCH_ENCODE: return cdl_ckks_encode(ctx, s->x, s->slots, s->scale, s->max_level, s->pt);
    case BENCH_DECODE: return cdl_ckks_decode(ctx, s->pt, s->buf, s->slots);
    case BENCH_ENCRYPT_PK: return cdl_ckks_encrypt_pk(ctx, s->pk, s->pt, s->rng, s->ct_out);
    case BENCH_ENCRYPT_SK: return cdl_ckks_encrypt_sk(ctx, s->sk, s->pt, s->rng, s->ct_out);
    case BENCH_DECRYPT: return cdl_ckks_decrypt(ctx, s->sk, s->ct_a, s->pt_out);
    case BENCH_ADD: return cdl_ckks_add(ctx, s->ct_a, s->ct_b, s->ct_out);
    case BENCH_MUL_PLAIN: return cdl_ckks_mul_plain(ctx, s->ct_a, s->pt, s->ct_out);
    case BENCH_MUL: return cdl_ckks_mul(ctx, s->ct_a, s->ct_b, s->ct_out);
    case BENCH_RELIN: return cdl_ckks_relinearize(ctx, s->rlk, s->ct3, s->ct_out);
    case BENCH_MUL_RELIN: return cdl_ckks_mul_relin(ctx, s->rlk, s->ct_a, s->ct_b, s->ct_out);
    case BENCH_RESCALE: return cdl_ckks_rescale(ctx, s->ct_prod, s->ct_out);
    case BENCH_ROTATE: return cdl_ckks_rotate(ctx, s->gk, s->ct_a, 1, s->ct_out);
    case BENCH_ROTATE8: /* the same 8 rotations as rotate_hoisted8, one key switch each (no hoisting) */
        for (int i = 0; i < BENCH_HOISTED; i++) {
            cdl_status st = cdl_ckks_rotate(ctx, s->gk, s->ct_a, i + 1, s->rot[i]);
            if (st != CDL_OK)
                return st;
        }
        return CDL_OK;
    case BENCH_ROTATE_HOISTED8: {
        int steps[BENCH_HOISTED];
        for (int i = 0; i < BENCH_HOISTED; i++)
            steps[i] = i + 1;
        return cdl_ckks_rotate_hoisted(ctx, s->gk, s->ct_a, steps, BENCH_HOISTED, s->rot);
    }
    case BENCH_ROTATE_SUM8: { /* sum_i pt_i (.) rot(x, i), double-hoisted: one decomposition, one ModDown */
        int steps[BENCH_HOISTED];
        for (int i = 0; i < BENCH_HOISTED; i++)
            steps[i] = i + 1;
        return cdl_ckks_rotate_dot_plain(ctx, s->gk, s->ct_a, steps, BENCH_HOISTED,
                                         (const cdl_ckks_plaintext *const *)s->sum_pt, 1, &s->ct_out);
    }
    case BENCH_ROTATE_SUM8_HOISTED: { /* the same sum, rotations hoisted (one ModDown each), then products */
        int steps[BENCH_HOISTED];
        for (int i = 0; i < BENCH_HOISTED; i++)
            steps[i] = i + 1;
        cdl_status st = cdl_ckks_rotate_hoisted(ctx, s->gk, s->ct_a, steps, BENCH_HOISTED, s->rot);
        for (int i = 0; i < BENCH_HOISTED && st == CDL_OK; i++)
            st = i ? cdl_ckks_mul_plain_add(ctx, s->rot[i], s->sum_pt[i], s->ct_out)
                   : cdl_ckks_mul_plain(ctx, s->rot[i], s->sum_pt[i], s->ct_out);
        return st;
    }
    case BENCH_ROTATE_SUM8_REF: { /* the same sum, no hoisting: 8 x (rotate + mul_plain + add) */
        cdl_status st = CDL_OK;
        for (int i = 0; i < BENCH_HOISTED && st == CDL_OK; i++) {
            st = cdl_ckks_rotate(ctx, s->gk, s->ct_a, i + 1, s->rot[0]);
            if (st == CDL_OK)
                st = cdl_ckks_mul_plain(ctx, s->rot[0], s->sum_pt[i], i ? s->rot[1] : s->ct_out);
            if (st == CDL_OK && i)
                st = cdl_ckks_add(ctx, s->ct_out, s->rot[1], s->ct_out);
        }
        return st;
    }
    default: return CDL_ERR_INVALID_ARGUMENT;
    }
}

/*
 * Time `op` with `threads` threads (cdl_set_threads) under the budget and fill
 * *row with the median. samples: scratch of at least budget->max_reps doubles.
 */
static inline cdl_status bench_ckks_measure(bench_ckks_set *s, bench_op op, int threads, const bench_budget *budget,
                                            double *samples, bench_row *row)
{
    cdl_set_threads(threads);
    cdl_status st = bench_ckks_run_once(s, op); /* warm-up: caches, page faults, lazy tables */
    if (st != CDL_OK)
        return st;
    int reps = 0;
    double spent = 0.0; /* wall clock, whatever is measured: the budget is the user's waiting time */
    while (reps < budget->max_reps && (reps < budget->min_reps || spent < 1e6 * budget->seconds)) {
        double w0 = bench_now_us(), c0 = budget->thread_cpu ? bench_thread_cpu_us() : 0.0;
        st = bench_ckks_run_once(s, op);
        double w1 = bench_now_us(), c1 = budget->thread_cpu ? bench_thread_cpu_us() : 0.0;
        if (st != CDL_OK)
            return st;
        samples[reps++] = budget->thread_cpu ? c1 - c0 : w1 - w0;
        spent += w1 - w0;
    }
    row->op = op;
    row->n = s->n;
    row->log_n = s->log_n;
    row->log_q = s->log_q;
    row->threads = threads;
    row->reps = reps;
    row->thread_cpu = budget->thread_cpu;
    row->us = bench_median(samples, (size_t)reps); /* sorts samples */
    row->min_us = samples[0];
    return CDL_OK;
}

/* ---- precision ---- */

/* One precision figure: bits = -log2(max |error|) over all slots (worst slot),
 * mean_bits = -log2(mean |error|). */
typedef struct bench_precision {
    const char *what;
    double bits;
    double mean_bits;
} bench_precision;

#define BENCH_PRECISION_COUNT 8

static inline void bench_error_bits(const double *got, const double *want, size_t count, bench_precision *p)
{
    double worst = 0.0, sum = 0.0;
    for (size_t i = 0; i < count; i++) {
        double e = fabs(got[i] - want[i]);
        sum += e;
        if (e > worst || e != e) /* a NaN counts as the worst */
            worst = e;
    }
    double mean = count ? sum / (double)count : 0.0;
    p->bits = worst > 0 ? -log2(worst) : INFINITY;
    p->mean_bits = mean > 0 ? -log2(mean) : INFINITY;
}

/*
 * Bits of precision after each operation on x, y uniform in [-1, 1), at the
 * preset's default scale, against the same computation in double precision.
 * Fills p[0..BENCH_PRECISION_COUNT).
 */
static inline cdl_status bench_ckks_precision(bench_ckks_set *s, bench_precision p[BENCH_PRECISION_COUNT])
{
    const cdl_ckks_context *ctx = s->ctx;
    size_t m = s->slots;
    cdl_status st = CDL_OK;
    double *want = malloc(m * sizeof(double));
    if (!want)
        return CDL_ERR_NO_MEMORY;
#define BENCH_TRY(call)                                                                                              \
    do {                                                                                                             \
        if ((st = (call)) != CDL_OK)                                                                                 \
            goto done;                                                                                               \
    } while (0)
    /* Decrypt ct and decode into s->buf. */
#define BENCH_OPEN(ct)                                                                                               \
    do {                                                                                                             \
        BENCH_TRY(cdl_ckks_decrypt(ctx, s->sk, (ct), s->pt_out));                                                    \
        BENCH_TRY(cdl_ckks_decode(ctx, s->pt_out, s->buf, m));                                                       \
    } while (0)
    int k = 0;

    BENCH_TRY(cdl_ckks_encode(ctx, s->x, m, s->scale, s->max_level, s->pt));
    BENCH_TRY(cdl_ckks_decode(ctx, s->pt, s->buf, m));
    p[k].what = "encode + decode";
    bench_error_bits(s->buf, s->x, m, &p[k++]);

    BENCH_TRY(cdl_ckks_encrypt_pk(ctx, s->pk, s->pt, s->rng, s->ct_out));
    BENCH_OPEN(s->ct_out);
    p[k].what = "encrypt_pk + decrypt";
    bench_error_bits(s->buf, s->x, m, &p[k++]);

    BENCH_TRY(cdl_ckks_encrypt_sk(ctx, s->sk, s->pt, s->rng, s->ct_out));
    BENCH_OPEN(s->ct_out);
    p[k].what = "encrypt_sk + decrypt";
    bench_error_bits(s->buf, s->x, m, &p[k++]);

    /* s->ct_a encrypts x and s->ct_b encrypts y (public key, top level). */
    BENCH_TRY(cdl_ckks_add(ctx, s->ct_a, s->ct_b, s->ct_out));
    BENCH_OPEN(s->ct_out);
    for (size_t i = 0; i < m; i++)
        want[i] = s->x[i] + s->y[i];
    p[k].what = "add";
    bench_error_bits(s->buf, want, m, &p[k++]);

    BENCH_TRY(cdl_ckks_encode(ctx, s->y, m, s->scale, s->max_level, s->pt));
    BENCH_TRY(cdl_ckks_mul_plain(ctx, s->ct_a, s->pt, s->ct_out));
    BENCH_TRY(cdl_ckks_rescale(ctx, s->ct_out, s->ct_out));
    BENCH_OPEN(s->ct_out);
    for (size_t i = 0; i < m; i++)
        want[i] = s->x[i] * s->y[i];
    p[k].what = "mul_plain + rescale";
    bench_error_bits(s->buf, want, m, &p[k++]);

    BENCH_TRY(cdl_ckks_mul_relin(ctx, s->rlk, s->ct_a, s->ct_b, s->ct_out));
    BENCH_TRY(cdl_ckks_rescale(ctx, s->ct_out, s->ct_out));
    BENCH_OPEN(s->ct_out);
    p[k].what = "mul_relin + rescale";
    bench_error_bits(s->buf, want, m, &p[k++]);

    BENCH_TRY(cdl_ckks_rotate(ctx, s->gk, s->ct_a, 1, s->ct_out));
    BENCH_OPEN(s->ct_out);
    for (size_t i = 0; i < m; i++)
        want[i] = s->x[(i + 1) % m];
    p[k].what = "rotate (1 step)";
    bench_error_bits(s->buf, want, m, &p[k++]);

    /* Depth: square x and rescale, three times in a row (x^8), or as many
     * times as there are levels. */
    static const char *const depth_label[] = {"-", "1 x (square + rescale), x^2", "2 x (square + rescale), x^4",
                                              "3 x (square + rescale), x^8"};
    int depth = s->max_level < 3 ? s->max_level : 3;
    BENCH_TRY(cdl_ckks_ciphertext_copy(ctx, s->ct_a, s->ct_out));
    for (size_t i = 0; i < m; i++)
        want[i] = s->x[i];
    for (int d = 0; d < depth; d++) {
        BENCH_TRY(cdl_ckks_mul_relin(ctx, s->rlk, s->ct_out, s->ct_out, s->ct_out));
        BENCH_TRY(cdl_ckks_rescale(ctx, s->ct_out, s->ct_out));
        for (size_t i = 0; i < m; i++)
            want[i] *= want[i];
    }
    BENCH_OPEN(s->ct_out);
    p[k].what = depth_label[depth];
    bench_error_bits(s->buf, want, m, &p[k++]);
#undef BENCH_OPEN
#undef BENCH_TRY
done:
    free(want);
    return st;
}

#endif
