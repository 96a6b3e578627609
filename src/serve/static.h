/*
 * static.h (private to src/serve): the static files of `cryptodl serve --web
 * DIR` (cdl_serve_config.web_dir), e.g. the browser client's page (web/,
 * docs/browser.md). Read-only: GET and HEAD of regular files below DIR.
 */
#ifndef CDL_SERVE_STATIC_H
#define CDL_SERVE_STATIC_H

#include <stddef.h>

/* The file a URL path names, relative to DIR, into rel[cap]: 0 and rel set,
 * or -1 when the path is refused. Defined for any bytes: url is the path as
 * microhttpd gives it (percent-decoded, no query string). "/" and a path
 * ending in "/" name its index.html. Refused: not starting with "/", empty,
 * "." or ".." segments (or "//"), segments starting with "." (hidden files,
 * such as .git), backslashes, control characters and bytes >= 0x7f, and paths
 * longer than cap - 1 or 1024 bytes. So rel never leaves DIR by its text
 * (symbolic links are checked apart: serve_static_open). */
int serve_static_path(const char *url, char *rel, size_t cap);

/* The Content-Type for a file name, by its extension (application/wasm for
 * .wasm, text/html; charset=utf-8 for .html, ...; application/octet-stream
 * when unknown). */
const char *serve_static_type(const char *name);

/* Open root/rel read-only: the file descriptor and its size, or -1 when it is
 * not a regular file whose real path (symbolic links resolved) lies inside
 * root. root must be a real path itself (realpath(3)). */
int serve_static_open(const char *root, const char *rel, size_t *size);

#endif
