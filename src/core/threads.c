/*
 * threads.c: the library-wide thread count for OpenMP parallel sections.
 * Parallel loops split work over independent RNS limbs or ciphertexts, so the
 * result never depends on the number of threads.
 */
#include <omp.h>

#include "cryptodl/common.h"

void cdl_set_threads(int threads)
{
    if (threads <= 0)
        threads = omp_get_num_procs();
    omp_set_num_threads(threads);
}

int cdl_get_threads(void) { return omp_get_max_threads(); }
