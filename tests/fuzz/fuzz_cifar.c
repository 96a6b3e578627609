/* fuzz_cifar.c: libFuzzer target for the CIFAR-10 batch loader: the bytes of
 * a cifar-10-batches-bin file, raw or compressed. Inputs that start like gzip
 * or xz go through a temporary file and cdl_read_file_decompressed (the
 * loader's own path, with its size cap); then cdl_cifar_parse must accept
 * them with every label in 0..9 and every pixel in [0, 1], or refuse them.
 * Seeds: tests/fuzz/corpus/cifar/. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cryptodl/cryptodl.h"

static void check(const uint8_t *data, size_t len)
{
    uint8_t *labels = malloc(4);
    float *pixels = malloc(4 * 3072 * sizeof *pixels);
    size_t n = 0;
    if (labels && pixels && cdl_cifar_parse(data, len, 4, labels, pixels, &n) == CDL_OK) {
        if (n == 0 || n > 4 || len % CDL_CIFAR_RECORD_BYTES != 0)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (labels[i] > 9)
                abort();
            for (size_t k = 0; k < 3072; k++)
                if (!(pixels[i * 3072 + k] >= 0.0f && pixels[i * 3072 + k] <= 1.0f))
                    abort();
        }
    }
    free(labels);
    free(pixels);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b, xz = size >= 6 && data[0] == 0xfd;
    if (!gz && !xz) {
        check(data, size);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_cifar_%d.bin%s", (int)getpid(), gz ? ".gz" : ".xz");
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    const int ok = fwrite(data, 1, size, f) == size;
    fclose(f);
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ok && cdl_read_file_decompressed(path, 8u << 20, &buf, &len) == CDL_OK) {
        if (len > (8u << 20))
            abort();
        check(buf, len);
        free(buf);
    }
    unlink(path);
    return 0;
}
