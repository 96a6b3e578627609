/*
 * fuzz_approx_json.c: libFuzzer target for the polynomial-activation JSON
 * reader (cdl_poly_approx_from_json), which reads files written by others
 * (the Python trainer, users). Whatever it accepts must write back to JSON
 * and read again.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cryptodl/approx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cdl_poly_approx p;
    if (cdl_poly_approx_from_json(text, &p) == CDL_OK) {
        char *back = NULL;
        if (cdl_poly_approx_to_json(&p, &back) != CDL_OK)
            abort(); /* an accepted description must serialize */
        cdl_poly_approx again;
        if (cdl_poly_approx_from_json(back, &again) != CDL_OK)
            abort(); /* and what we write we must read */
        cdl_approx_string_free(back);
    }
    free(text);
    return 0;
}
