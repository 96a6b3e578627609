/*
 * static.c: the static files of `cryptodl serve --web DIR` (static.h). The
 * HTTP side is in server.c (serve_web); here are the decisions that keep it
 * inside DIR: which URL paths are files at all (serve_static_path, text only,
 * total for any input: unit-tested exhaustively over short strings), and
 * opening one only if its resolved path stays below DIR and it is a regular
 * file (serve_static_open).
 */
#include "serve/static.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATIC_PATH_MAX 1024

int serve_static_path(const char *url, char *rel, size_t cap)
{
    static const char index[] = "index.html";
    if (!url || !rel || cap == 0)
        return -1;
    rel[0] = '\0';
    if (url[0] != '/')
        return -1;
    size_t n = strnlen(url, STATIC_PATH_MAX + 1);
    if (n > STATIC_PATH_MAX)
        return -1;
    const char *p = url + 1;
    size_t out = 0;
    /* one segment at a time: p at its first byte */
    for (;;) {
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t len = (size_t)(p - seg);
        if (len == 0) {
            if (*p == '/') /* "//": an empty segment */
                return -1;
            /* the end: "/" or "dir/" names its index */
            if (out + sizeof index > cap)
                return -1;
            memcpy(rel + out, index, sizeof index);
            return 0;
        }
        if (seg[0] == '.') /* ".", "..", and hidden files */
            return -1;
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)seg[i];
            if (ch < 0x20 || ch >= 0x7f || ch == '\\')
                return -1;
        }
        if (out + len + 1 >= cap)
            return -1;
        memcpy(rel + out, seg, len);
        out += len;
        if (*p == '\0') {
            rel[out] = '\0';
            return 0;
        }
        rel[out++] = '/';
        p++; /* past the '/' */
    }
}

const char *serve_static_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".wasm", "application/wasm"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".svg", "image/svg+xml"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".md", "text/plain; charset=utf-8"},
        {".gz", "application/gzip"},
    };
    const char *dot = name ? strrchr(name, '.') : NULL;
    const char *slash = name ? strrchr(name, '/') : NULL;
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcmp(dot, types[i].ext))
                return types[i].type;
    return "application/octet-stream";
}

int serve_static_open(const char *root, const char *rel, size_t *size)
{
    if (!root || !rel || !size)
        return -1;
    size_t rl = strlen(root), fl = strlen(rel);
    if (rl + 1 + fl + 1 > PATH_MAX)
        return -1;
    char full[PATH_MAX], real[PATH_MAX];
    memcpy(full, root, rl);
    full[rl] = '/';
    memcpy(full + rl + 1, rel, fl + 1);
    if (!realpath(full, real))
        return -1;
    /* inside root: root itself is not a file, so real must be root + "/" + something */
    if (strncmp(real, root, rl) != 0 || (rl > 1 && real[rl] != '/'))
        return -1;
    int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -1;
    }
    *size = (size_t)st.st_size;
    return fd;
}
