/*
 * bench_ntt.c: single-thread timings of the negacyclic NTT on one prime, for
 * every kernel this CPU supports. Prints one JSON line per measurement:
 *   {"bench":"ntt_fwd"|"ntt_inv","n":N,"log_q":bits,"threads":1,"isa":"...","us":median}
 * N = 2^13 .. 2^16; one 60-bit prime and one 50-bit prime (< 2^50, the IFMA52
 * range). Each sample times a batch of transforms lasting >= ~0.5 ms; the
 * median of the samples is printed, so that on a busy shared machine the
 * batches that were preempted do not count.
 * Usage: bench_ntt [samples (default 101)] [log_n_min (13) [log_n_max (16)]]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/memory.h"
#include "ring/ntt.h"
#include "ring/primes.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median over `samples` batches of the time of one transform, in microseconds. */
static double time_transform(const cdl_ntt_table *t, uint64_t *buf, cdl_isa isa, int inverse, int samples)
{
    void (*fn)(const cdl_ntt_table *, uint64_t *, cdl_isa) = inverse ? cdl_ntt_inverse_with : cdl_ntt_forward_with;
    /* Warm up and size the batch to about 0.5 ms. */
    int batch = 1;
    for (;;) {
        double t0 = now_us();
        for (int i = 0; i < batch; i++)
            fn(t, buf, isa);
        if (now_us() - t0 >= 500.0 || batch >= 1 << 20)
            break;
        batch *= 2;
    }
    double *s = malloc((size_t)samples * sizeof *s);
    if (!s)
        return -1;
    for (int k = 0; k < samples; k++) {
        double t0 = now_us();
        for (int i = 0; i < batch; i++)
            fn(t, buf, isa);
        s[k] = (now_us() - t0) / batch;
    }
    qsort(s, (size_t)samples, sizeof *s, cmp_double);
    double med = s[samples / 2];
    free(s);
    return med;
}

int main(int argc, char **argv)
{
    int samples = argc > 1 ? atoi(argv[1]) : 101;
    int log_min = argc > 2 ? atoi(argv[2]) : 13;
    int log_max = argc > 3 ? atoi(argv[3]) : 16;
    if (samples < 1 || log_min < 1 || log_max > 17 || log_min > log_max) {
        fprintf(stderr, "usage: bench_ntt [samples >= 1] [log_n_min [log_n_max <= 17]]\n");
        return 2;
    }
    const int bit_sizes[] = {60, 50};
    for (int log_n = log_min; log_n <= log_max; log_n++) {
        size_t n = (size_t)1 << log_n;
        for (size_t b = 0; b < sizeof bit_sizes / sizeof bit_sizes[0]; b++) {
            uint64_t q;
            cdl_ntt_table *t = NULL;
            if (cdl_generate_ntt_primes(bit_sizes[b], 1, 2 * (uint64_t)n, NULL, 0, &q) != CDL_OK ||
                cdl_ntt_table_new(n, q, &t) != CDL_OK) {
                fprintf(stderr, "bench_ntt: cannot set up N=%zu, %d-bit prime: %s\n", n, bit_sizes[b],
                        cdl_last_error());
                return 1;
            }
            uint64_t *buf = cdl_alloc_array(n, sizeof(uint64_t));
            if (!buf)
                return 1;
            for (size_t i = 0; i < n; i++)
                buf[i] = (i * 0x9e3779b97f4a7c15ull) % q;
            for (int isa = 0; isa < CDL_ISA_COUNT; isa++) {
                if (!cdl_isa_supported((cdl_isa)isa))
                    continue;
                for (int inv = 0; inv < 2; inv++) {
                    double us = time_transform(t, buf, (cdl_isa)isa, inv, samples);
                    printf("{\"bench\":\"%s\",\"n\":%zu,\"log_q\":%d,\"threads\":1,\"isa\":\"%s\",\"us\":%.2f}\n",
                           inv ? "ntt_inv" : "ntt_fwd", n, 64 - __builtin_clzll(q), cdl_isa_name((cdl_isa)isa), us);
                    fflush(stdout);
                }
            }
            cdl_free(buf);
            cdl_ntt_table_free(t);
        }
    }
    return 0;
}
