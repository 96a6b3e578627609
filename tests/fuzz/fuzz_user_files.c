/* fuzz_user_files.c: libFuzzer target for the parsers of the files a user
 * hands to `cryptodl encrypt` / `decrypt` (src/data/user_files.c): .npy and
 * IDX images (matched against a one-channel 28x28 model and a rank-1 model),
 * labels, and the CDLPARTS multi-batch container. Any byte string must be
 * accepted with consistent sizes or refused; never read out of bounds.
 * Seeds: tests/fuzz/corpus/user_files/ (uint8 / float32 / float64 .npy of
 * versions 1.0-3.0, an IDX image file, int64 labels, a two-part container). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cryptodl/cryptodl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cdl_npy_array a;
    if (cdl_npy_parse(data, size, &a) == CDL_OK) {
        /* the payload lies exactly at the end of the buffer */
        if (a.count == 0 || a.payload < data || (size_t)(a.payload - data) + a.count * a.item_size != size)
            abort();
    }
    static const int64_t mnist[3] = {1, 28, 28}, flat[1] = {4};
    cdl_images *im = NULL;
    if (cdl_images_parse(data, size, 3, mnist, &im) == CDL_OK) {
        if (im->image_size != 784 || im->n == 0)
            abort();
        for (size_t i = 0; i < im->n * im->image_size; i++)
            if (!isfinite(im->pixels[i]))
                abort();
        cdl_images_free(im);
    }
    if (cdl_images_parse(data, size, 1, flat, &im) == CDL_OK) {
        if (im->image_size != 4)
            abort();
        cdl_images_free(im);
    }
    uint8_t *labels = NULL;
    size_t n = 0;
    if (cdl_labels_parse(data, size, 10, &labels, &n) == CDL_OK) {
        for (size_t i = 0; i < n; i++)
            if (labels[i] >= 10)
                abort();
        cdl_labels_free(labels);
    }
    cdl_part *parts = NULL;
    if (cdl_parts_parse(data, size, 64, &parts, &n) == CDL_OK) {
        size_t total = CDL_PARTS_HEADER_BYTES;
        for (size_t i = 0; i < n; i++) {
            if (parts[i].len == 0 || parts[i].data < data || parts[i].data + parts[i].len > data + size)
                abort();
            total += 8 + parts[i].len;
        }
        if (total != size)
            abort();
        cdl_parts_free(parts);
    }
    return 0;
}
