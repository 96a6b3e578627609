/*
 * fuzz_serve_static_path.c: libFuzzer target for the URL-path check of
 * `cryptodl serve --web DIR` (serve_static_path), which reads paths from any
 * HTTP client. Whatever it accepts must be a relative path that cannot leave
 * DIR: no leading '/', no empty, "." or ".." segment, no hidden file, only
 * printable ASCII without a backslash, NUL-terminated within the buffer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/static.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096 || size == 0)
        return 0;
    /* the first byte picks the output buffer's size (tight buffers are where overflows hide) */
    const size_t cap = 1 + data[0] % 64 * 4;
    char *url = malloc(size), *rel = malloc(cap);
    if (!url || !rel) {
        free(url);
        free(rel);
        return 0;
    }
    memcpy(url, data + 1, size - 1);
    url[size - 1] = '\0';
    if (serve_static_path(url, rel, cap) == 0) {
        const size_t n = strnlen(rel, cap);
        if (n == cap || n == 0 || rel[0] == '/')
            abort();
        for (size_t i = 0; i < n; i++) {
            const unsigned char c = (unsigned char)rel[i];
            if (c < 0x20 || c >= 0x7f || c == '\\')
                abort();
            /* each segment starts after '/' or at 0: never empty, never a dot first */
            if ((i == 0 || rel[i - 1] == '/') && (c == '.' || c == '/'))
                abort();
        }
        if (rel[n - 1] == '/')
            abort();
    }
    free(url);
    free(rel);
    return 0;
}
