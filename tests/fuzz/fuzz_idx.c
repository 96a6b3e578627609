/* fuzz_idx.c: libFuzzer target for the IDX (MNIST) header parser: any byte
 * string is accepted with consistent sizes or refused. Seeds:
 * tests/fuzz/corpus/idx/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cryptodl/cryptodl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int nd = 0;
    uint32_t dims[4];
    const uint8_t *payload = NULL;
    if (cdl_idx_parse(data, size, 0, &nd, dims, &payload) != CDL_OK)
        return 0;
    size_t total = 1;
    for (int i = 0; i < nd; i++)
        total *= dims[i];
    /* the payload must be exactly inside the buffer */
    if (payload < data || (size_t)(payload - data) + total != size)
        abort();
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < total; i++)
        sink ^= payload[i];
    (void)sink;
    return 0;
}
