/*
 * test_http_util.h: a small HTTP/1.1 client for the service tests
 * (test_serve.c, test_serve_web.c): one request per connection
 * (Connection: close), the whole response read, the status, the headers and
 * the body split out.
 */
#ifndef TEST_HTTP_UTIL_H
#define TEST_HTTP_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct http_resp {
    int status;
    char head[4096]; /* the status line and headers */
    uint8_t *body;   /* len bytes and a NUL */
    size_t len;
} http_resp;

static inline void resp_free(http_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static inline int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Send everything; 0, or -1 when the server closed its side (it may answer before reading a body). */
static inline int send_all(int fd, const void *data, size_t len)
{
    const uint8_t *p = data;
    while (len) {
        ssize_t w = send(fd, p, len > (1 << 20) ? (1 << 20) : len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Read until the server closes (we always send Connection: close), then parse. */
static inline void read_response(int fd, http_resp *r)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t got = recv(fd, buf + n, cap - n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    memset(r, 0, sizeof *r);
    uint8_t *end = NULL;
    for (size_t i = 0; i + 4 <= n; i++)
        if (!memcmp(buf + i, "\r\n\r\n", 4)) {
            end = buf + i;
            break;
        }
    assert_non_null(end);
    size_t hl = (size_t)(end - buf);
    assert_true(hl < sizeof r->head);
    memcpy(r->head, buf, hl);
    r->head[hl] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    r->len = n - hl - 4;
    r->body = malloc(r->len + 1);
    assert_non_null(r->body);
    memcpy(r->body, end + 4, r->len);
    r->body[r->len] = '\0';
    free(buf);
}

/* One request; content_length < 0 means "the body's length". */
static inline void http_ex(uint16_t port, const char *method, const char *path, const void *body, size_t len,
                    long long content_length, http_resp *r)
{
    int fd = connect_to(port);
    char head[512];
    int hl = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n", method, path);
    if (body || content_length >= 0)
        hl += snprintf(head + hl, sizeof head - (size_t)hl, "Content-Length: %lld\r\n",
                       content_length >= 0 ? content_length : (long long)len);
    hl += snprintf(head + hl, sizeof head - (size_t)hl, "\r\n");
    if (send_all(fd, head, (size_t)hl) == 0 && body)
        send_all(fd, body, len);
    read_response(fd, r);
}

static inline void http(uint16_t port, const char *method, const char *path, const void *body, size_t len, http_resp *r)
{
    http_ex(port, method, path, body, len, -1, r);
}

/* The value of header `name` (case-insensitive) in r, or NULL; copied to out. */
static inline const char *header(const http_resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (!strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1, *e = strstr(v, "\r\n");
            while (*v == ' ')
                v++;
            size_t vl = e ? (size_t)(e - v) : strlen(v);
            snprintf(out, cap, "%.*s", (int)vl, v);
            return out;
        }
    }
    return NULL;
}

#endif
