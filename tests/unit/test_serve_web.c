/* test_serve_web.c: `cryptodl serve --web DIR` (cdl_serve_config.web_dir,
 * src/serve/static.c), the static files of the browser client.
 *
 * The path check (serve_static_path) on a table of cases, then on every
 * string of up to 6 bytes over an alphabet of the troublesome ones ('/', '.',
 * '\\', '%', 'a', a control byte, a byte >= 0x80): whatever it accepts must be
 * a relative path with no empty, "." or ".." or hidden segment and only
 * printable bytes, fitting its buffer; content types by extension; and over
 * HTTP, a server with a web folder holding a page, a .wasm, a sub-folder, a
 * hidden file and symbolic links leading out of it: the files come with
 * their content types and bytes (GET and HEAD), everything outside the
 * folder is 404 (raw "..", percent-encoded "%2e%2e", links), other methods
 * are 405, and the API under /v1/ is unchanged. A missing folder fails at
 * start with a message. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cryptodl/cryptodl.h"
#include "serve/static.h"
#include "test_http_util.h"

static const char *source_dir(void)
{
    const char *s = getenv("CDL_SOURCE_DIR");
    return s && s[0] ? s : ".";
}

/* ---- the path check ------------------------------------------------------------ */

static void expect_path(const char *url, const char *rel)
{
    char out[256];
    int rc = serve_static_path(url, out, sizeof out);
    if (rel) {
        if (rc != 0)
            fail_msg("'%s' refused, expected '%s'", url, rel);
        assert_string_equal(out, rel);
    } else if (rc == 0) {
        fail_msg("'%s' accepted as '%s'", url, out);
    }
}

static void test_path_cases(void **state)
{
    (void)state;
    expect_path("/", "index.html");
    expect_path("/index.html", "index.html");
    expect_path("/cryptodl.wasm", "cryptodl.wasm");
    expect_path("/mnist/t10k-images-idx3-ubyte.gz", "mnist/t10k-images-idx3-ubyte.gz");
    expect_path("/models/", "models/index.html");
    expect_path("/a.b/c..d", "a.b/c..d"); /* dots inside a name are fine */
    expect_path("", NULL);
    expect_path("index.html", NULL);
    expect_path("/..", NULL);
    expect_path("/../etc/passwd", NULL);
    expect_path("/a/../../b", NULL);
    expect_path("/a/..", NULL);
    expect_path("/./a", NULL);
    expect_path("/a/.", NULL);
    expect_path("//etc/passwd", NULL);
    expect_path("/a//b", NULL);
    expect_path("/.git/config", NULL);
    expect_path("/a/.hidden", NULL);
    expect_path("/a\\..\\b", NULL);
    expect_path("/a\nb", NULL);
    expect_path("/caf\xc3\xa9", NULL);
    expect_path("/a\x7f", NULL);
    assert_int_equal(serve_static_path(NULL, (char[4]){0}, 4), -1);
    char small[8];
    assert_int_equal(serve_static_path("/", small, 8), -1); /* "index.html" does not fit */
    assert_int_equal(serve_static_path("/abcdef", small, 8), 0);
    assert_string_equal(small, "abcdef");
    assert_int_equal(serve_static_path("/abcdefg", small, 8), -1);
    assert_string_equal(small, "");
    char *longurl = malloc(2000);
    assert_non_null(longurl);
    longurl[0] = '/';
    memset(longurl + 1, 'a', 1998);
    longurl[1999] = '\0';
    char big[4096];
    assert_int_equal(serve_static_path(longurl, big, sizeof big), -1); /* above 1024 bytes */
    free(longurl);
}

/* What an accepted path must be: relative, segments non-empty, not "." or "..",
 * not hidden, printable ASCII without backslashes. */
static void check_accepted(const char *url, const char *rel, size_t cap)
{
    size_t n = strlen(rel);
    if (n == 0 || n >= cap || rel[0] == '/')
        fail_msg("'%s' -> '%s'", url, rel);
    const char *seg = rel;
    for (const char *p = rel;; p++) {
        if (*p == '/' || *p == '\0') {
            if (p == seg || seg[0] == '.')
                fail_msg("'%s' -> '%s': bad segment", url, rel);
            if (*p == '\0')
                break;
            seg = p + 1;
        } else if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f || *p == '\\') {
            fail_msg("'%s' -> '%s': bad byte", url, rel);
        }
    }
}

static void test_path_exhaustive(void **state)
{
    (void)state;
    static const char alphabet[] = {'/', '.', '\\', '%', 'a', '\x01', (char)0x80};
    const size_t k = sizeof alphabet, maxlen = 6;
    char url[8], rel[16];
    size_t accepted = 0, total = 0;
    for (size_t len = 0; len <= maxlen; len++) {
        size_t count = 1;
        for (size_t i = 0; i < len; i++)
            count *= k;
        for (size_t code = 0; code < count; code++) {
            size_t c = code;
            for (size_t i = 0; i < len; i++) {
                url[i] = alphabet[c % k];
                c /= k;
            }
            url[len] = '\0';
            for (size_t cap = 1; cap <= sizeof rel; cap += 7) { /* caps 1, 8, 15 */
                memset(rel, 'X', sizeof rel);
                total++;
                if (serve_static_path(url, rel, cap) == 0) {
                    accepted++;
                    check_accepted(url, rel, cap);
                }
            }
        }
    }
    assert_true(accepted > 0 && accepted < total);
}

static void test_types(void **state)
{
    (void)state;
    assert_string_equal(serve_static_type("cryptodl.wasm"), "application/wasm");
    assert_string_equal(serve_static_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(serve_static_type("app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(serve_static_type("style.css"), "text/css; charset=utf-8");
    assert_string_equal(serve_static_type("config.json"), "application/json");
    assert_string_equal(serve_static_type("img/shot.png"), "image/png");
    assert_string_equal(serve_static_type("mnist/t10k-images-idx3-ubyte.gz"), "application/gzip");
    assert_string_equal(serve_static_type("models/mnist.onnx"), "application/octet-stream");
    assert_string_equal(serve_static_type("a.d/noext"), "application/octet-stream");
    assert_string_equal(serve_static_type(NULL), "application/octet-stream");
}

/* ---- over HTTP ------------------------------------------------------------------ */

/* A request without a body (a POST says Content-Length: 0). */
static void request(uint16_t port, const char *method, const char *path, http_resp *r)
{
    http_ex(port, method, path, NULL, 0, strcmp(method, "POST") ? -1 : 0, r);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void expect_file(uint16_t port, const char *path, const char *type, const void *data, size_t len)
{
    http_resp r;
    char v[128];
    request(port, "GET", path, &r);
    if (r.status != 200)
        fail_msg("GET %s: %d %s", path, r.status, (const char *)r.body);
    assert_non_null(header(&r, "Content-Type", v, sizeof v));
    assert_string_equal(v, type);
    assert_non_null(header(&r, "X-Content-Type-Options", v, sizeof v));
    assert_int_equal(r.len, len);
    assert_memory_equal(r.body, data, len);
    free(r.body);
    request(port, "HEAD", path, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    assert_non_null(header(&r, "Content-Length", v, sizeof v));
    assert_int_equal(strtoull(v, NULL, 10), len);
    free(r.body);
}

static void expect_status(uint16_t port, const char *method, const char *path, int status)
{
    http_resp r;
    request(port, method, path, &r);
    if (r.status != status)
        fail_msg("%s %s: %d, expected %d (%s)", method, path, r.status, status, (const char *)r.body);
    free(r.body);
}

static void test_http(void **state)
{
    (void)state;
    char tmp[] = "/tmp/cdl_web_XXXXXX";
    assert_non_null(mkdtemp(tmp));
    char root[600], p[700], outside[700];
    snprintf(root, sizeof root, "%s/web", tmp);
    assert_int_equal(mkdir(root, 0700), 0);
    snprintf(p, sizeof p, "%s/sub", root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/nodex", root);
    assert_int_equal(mkdir(p, 0700), 0);
    static const char page[] = "<!doctype html><title>t</title>";
    static const uint8_t wasm[] = {0, 'a', 's', 'm', 1, 0, 0, 0, 0xff, 0};
    static const char js[] = "console.log(1);\n";
    static const char secret[] = "outside the web folder";
    snprintf(p, sizeof p, "%s/index.html", root);
    write_file(p, page, sizeof page - 1);
    snprintf(p, sizeof p, "%s/cryptodl.wasm", root);
    write_file(p, wasm, sizeof wasm);
    snprintf(p, sizeof p, "%s/sub/app.js", root);
    write_file(p, js, sizeof js - 1);
    snprintf(p, sizeof p, "%s/.hidden", root);
    write_file(p, secret, sizeof secret - 1);
    snprintf(outside, sizeof outside, "%s/secret.txt", tmp);
    write_file(outside, secret, sizeof secret - 1);
    snprintf(p, sizeof p, "%s/link.txt", root); /* a link out of the folder */
    assert_int_equal(symlink(outside, p), 0);
    snprintf(p, sizeof p, "%s/up", root); /* a link to the folder above */
    assert_int_equal(symlink(tmp, p), 0);
    snprintf(p, sizeof p, "%s/in.js", root); /* a link inside: served */
    assert_int_equal(symlink("sub/app.js", p), 0);

    char model[512];
    snprintf(model, sizeof model, "%s/models/mnist_cryptonets.onnx", source_dir());
    cdl_serve_model_spec spec = {.name = "mnist", .path = model};
    cdl_he_options_default(&spec.he);
    cdl_serve_config cfg;
    cdl_serve_config_default(&cfg);
    cfg.models = &spec;
    cfg.n_models = 1;
    cfg.port = 0;
    cfg.web_dir = root;
    cdl_serve *s = NULL;
    if (cdl_serve_start(&cfg, &s) != CDL_OK)
        fail_msg("serve: %s", cdl_last_error());
    uint16_t port = cdl_serve_port(s);

    expect_file(port, "/", "text/html; charset=utf-8", page, sizeof page - 1);
    expect_file(port, "/index.html", "text/html; charset=utf-8", page, sizeof page - 1);
    expect_file(port, "/cryptodl.wasm", "application/wasm", wasm, sizeof wasm);
    expect_file(port, "/sub/app.js", "text/javascript; charset=utf-8", js, sizeof js - 1);
    expect_file(port, "/in.js", "text/javascript; charset=utf-8", js, sizeof js - 1);
    expect_file(port, "/index.html?x=1", "text/html; charset=utf-8", page, sizeof page - 1);
    expect_status(port, "GET", "/missing.html", 404);
    expect_status(port, "GET", "/sub/", 404);   /* no index.html there */
    expect_status(port, "GET", "/nodex", 404);  /* a folder is not a file */
    expect_status(port, "GET", "/.hidden", 404);
    expect_status(port, "GET", "/link.txt", 404);
    expect_status(port, "GET", "/up/secret.txt", 404);
    expect_status(port, "GET", "/../secret.txt", 404);
    expect_status(port, "GET", "/sub/../../secret.txt", 404);
    expect_status(port, "GET", "/%2e%2e/secret.txt", 404);
    expect_status(port, "GET", "/sub/%2E%2E/%2E%2E/secret.txt", 404);
    expect_status(port, "GET", "/sub%2f..%2f..%2fsecret.txt", 404);
    expect_status(port, "GET", "//etc/passwd", 404);
    expect_status(port, "POST", "/index.html", 405);
    expect_status(port, "DELETE", "/index.html", 405);
    /* the API is unchanged */
    http_resp r;
    request(port, "GET", "/v1/models", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr((const char *)r.body, "\"mnist\""));
    free(r.body);
    request(port, "GET", "/v1/nothing", &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr((const char *)r.body, "no such endpoint"));
    free(r.body);
    request(port, "GET", "/v1/metrics", &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr((const char *)r.body, "endpoint=\"web\",status=\"200\""));
    free(r.body);
    cdl_serve_free(s);

    /* a folder that is not there, or a file */
    cfg.web_dir = "/nonexistent/web";
    s = NULL;
    assert_int_equal(cdl_serve_start(&cfg, &s), CDL_ERR_INVALID_ARGUMENT);
    assert_null(s);
    assert_non_null(strstr(cdl_last_error(), "/nonexistent/web"));
    cfg.web_dir = outside;
    assert_int_equal(cdl_serve_start(&cfg, &s), CDL_ERR_INVALID_ARGUMENT);
    assert_null(s);

    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_cases),
        cmocka_unit_test(test_path_exhaustive),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
