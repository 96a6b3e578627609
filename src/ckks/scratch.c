/*
 * scratch.c: per-thread reusable work buffers for the evaluator. Key
 * switching and rescaling need several megabytes of temporaries per call;
 * fresh allocations that size come from mmap and cost thousands of page
 * faults each time (about a fifth of a relinearization at N = 2^14), so each
 * thread keeps its buffers (one per slot) and grows them when needed. They are
 * released when the thread exits (pthread key destructor) or by
 * cdl_ckks_scratch_release().
 */
#include <pthread.h>
#include <stdlib.h>

#include "ckks/ckks_internal.h"
#include "core/memory.h"

typedef struct scratch_set {
    void *buf[CDL_SCRATCH_SLOTS];
    size_t bytes[CDL_SCRATCH_SLOTS];
} scratch_set;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_destroy(void *p)
{
    scratch_set *s = p;
    if (!s)
        return;
    for (int i = 0; i < CDL_SCRATCH_SLOTS; i++)
        cdl_free(s->buf[i]);
    free(s);
}

static void scratch_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0; }

uint64_t *cdl_ckks_scratch(int slot, size_t words)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok || slot < 0 || slot >= CDL_SCRATCH_SLOTS)
        return NULL;
    scratch_set *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    size_t bytes = (words ? words : 1) * sizeof(uint64_t);
    if (s->bytes[slot] < bytes) {
        cdl_free(s->buf[slot]);
        s->buf[slot] = cdl_alloc_array(bytes / sizeof(uint64_t), sizeof(uint64_t));
        s->bytes[slot] = s->buf[slot] ? bytes : 0;
    }
    return s->buf[slot];
}

void cdl_ckks_scratch_wipe(int slot)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok || slot < 0 || slot >= CDL_SCRATCH_SLOTS)
        return;
    scratch_set *s = pthread_getspecific(scratch_key);
    if (s && s->buf[slot])
        cdl_wipe(s->buf[slot], s->bytes[slot]);
}

void cdl_ckks_scratch_release(void)
{
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok)
        return;
    scratch_set *s = pthread_getspecific(scratch_key);
    scratch_destroy(s);
    pthread_setspecific(scratch_key, NULL);
}
