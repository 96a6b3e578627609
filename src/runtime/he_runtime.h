/*
 * he_runtime.h (private): the encrypted batch object shared by the batch
 * code (encrypt, decrypt, serialization) and the evaluator.
 */
#ifndef CDL_RUNTIME_HE_RUNTIME_H
#define CDL_RUNTIME_HE_RUNTIME_H

#include <stddef.h>

#include "cryptodl/he.h"

/* ct[i] encrypts value i of every image; NULL means "exactly zero" (padding). */
struct cdl_he_batch {
    size_t n_images;
    size_t count;
    cdl_ckks_ciphertext **ct;
};

cdl_status cdl_he_batch_alloc(size_t n_images, size_t count, cdl_he_batch **out);

#endif
