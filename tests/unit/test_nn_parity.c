/* test_nn_parity.c: the plaintext runtime against PyTorch.
 *
 * Every parity fixture found is checked: tests/fixtures/onnx/<name>.json
 * (small models exported by Debian's PyTorch 1.13 exporter, made by
 * tests/fixtures/onnx/make_fixtures.py) and models/fixtures/<model>.json
 * (the training companion's real MNIST inputs with its PyTorch logits).
 * Each holds {"model", "input_shape", "inputs", "outputs"}; the model path
 * is relative to the JSON's folder or its parent. The outputs must agree
 * within 1e-4 (max absolute difference). tests/fixtures/onnx/malformed.json
 * lists hand-built bad files and the error each must give. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "cryptodl/cryptodl.h"

#define PARITY_TOL 1e-4

static const char *source_dir(void)
{
    const char *s = getenv("CDL_SOURCE_DIR");
    return s && s[0] ? s : ".";
}

/* Returns 1 if checked, 0 if skipped (not a parity fixture). */
static int check_fixture(const char *dir, const char *file, double *worst)
{
    char path[1024], model[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        fail_msg("%s: %s (line %d)", path, err.text, err.line);
    json_t *jm = json_object_get(root, "model"), *js = json_object_get(root, "input_shape"),
           *ji = json_object_get(root, "inputs"), *jo = json_object_get(root, "outputs");
    if (!json_is_string(jm) || !json_is_array(js) || !json_is_array(ji) || !json_is_array(jo)) {
        json_decref(root);
        return 0;
    }
    snprintf(model, sizeof model, "%s/%s", dir, json_string_value(jm));
    if (access(model, R_OK) != 0)
        snprintf(model, sizeof model, "%s/../%s", dir, json_string_value(jm));
    cdl_nn_graph *g = NULL;
    if (cdl_nn_load_file(model, &g) != CDL_OK)
        fail_msg("%s: cannot import %s: %s", path, model, cdl_last_error());
    size_t n = (size_t)json_integer_value(json_array_get(js, 0));
    size_t nin = cdl_nn_input_size(g), nout = cdl_nn_output_size(g);
    assert_int_equal(json_array_size(ji), n * nin);
    assert_int_equal(json_array_size(jo), n * nout);
    double *in = malloc(n * nin * sizeof *in), *out = malloc(n * nout * sizeof *out);
    assert_non_null(in);
    assert_non_null(out);
    for (size_t i = 0; i < n * nin; i++)
        in[i] = json_number_value(json_array_get(ji, i));
    assert_int_equal(cdl_nn_run(g, in, n, out), CDL_OK);
    double maxd = 0;
    for (size_t i = 0; i < n * nout; i++) {
        double d = fabs(out[i] - json_number_value(json_array_get(jo, i)));
        if (!(d <= maxd))
            maxd = d;
    }
    printf("parity %-28s n=%zu  max|diff| = %.3g  (depth %d, %zu layers)\n", file, n, maxd, cdl_nn_graph_depth(g),
           g->n_nodes);
    if (!(maxd <= PARITY_TOL))
        fail_msg("%s: max |cryptodl - PyTorch| = %g > %g", path, maxd, PARITY_TOL);
    /* labels, when given, are the true classes: PyTorch's argmax and ours must agree */
    json_t *jl = json_object_get(root, "labels");
    if (json_is_array(jl) && json_array_size(jl) == n && nout > 1) {
        for (size_t s = 0; s < n; s++) {
            size_t a = 0, b = 0;
            for (size_t k = 1; k < nout; k++) {
                if (out[s * nout + k] > out[s * nout + a])
                    a = k;
                if (json_number_value(json_array_get(jo, s * nout + k)) > json_number_value(json_array_get(jo, s * nout + b)))
                    b = k;
            }
            assert_int_equal(a, b);
        }
    }
    if (*worst < maxd)
        *worst = maxd;
    free(in);
    free(out);
    cdl_nn_graph_free(g);
    json_decref(root);
    return 1;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Check every fixture of a folder; *files: the JSON files other than
 * malformed.json, each of which must be a fixture. */
static int check_folder(const char *dir, double *worst, int *files)
{
    DIR *d = opendir(dir);
    *files = 0;
    if (!d)
        fail_msg("cannot open the fixture folder %s", dir);
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (ends_with(e->d_name, ".json") && strcmp(e->d_name, "malformed.json")) {
            ++*files;
            count += check_fixture(dir, e->d_name, worst);
        }
    closedir(d);
    return count;
}

static void test_pytorch_fixtures(void **state)
{
    (void)state;
    char dir[1024];
    double worst = 0;
    int files = 0;
    snprintf(dir, sizeof dir, "%s/tests/fixtures/onnx", source_dir());
    int ours = check_folder(dir, &worst, &files);
    printf("parity: %d of %d exporter fixture files checked\n", ours, files);
    assert_int_equal(ours, files); /* a JSON file that is not a fixture is a mistake, not a skip */
    assert_true(ours >= 36);       /* the committed exporter fixtures (make_fixtures.py) */
    snprintf(dir, sizeof dir, "%s/models/fixtures", source_dir());
    int trained = check_folder(dir, &worst, &files);
    printf("parity: %d of %d trained-model fixture files checked\n", trained, files);
    assert_int_equal(trained, files);
    assert_true(trained >= 7); /* one per shipped model */
    printf("parity: %d exporter fixtures, %d trained-model fixtures, worst max|diff| = %.3g\n", ours, trained, worst);
}

static void test_malformed_files(void **state)
{
    (void)state;
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s/tests/fixtures/onnx", source_dir());
    snprintf(path, sizeof path, "%s/malformed.json", dir);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root)
        fail_msg("%s: %s", path, err.text);
    assert_true(json_array_size(root) >= 8);
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *c = json_array_get(root, i);
        const char *file = json_string_value(json_object_get(c, "file"));
        const char *status = json_string_value(json_object_get(c, "status"));
        const char *frag = json_string_value(json_object_get(c, "contains"));
        snprintf(path, sizeof path, "%s/%s", dir, file);
        cdl_nn_graph *g = NULL;
        cdl_status st = cdl_nn_load_file(path, &g);
        cdl_status want = !strcmp(status, "unsupported") ? CDL_ERR_UNSUPPORTED : CDL_ERR_FORMAT;
        if (st != want)
            fail_msg("%s: status %d (%s), expected %s", file, st, cdl_last_error(), status);
        assert_null(g);
        if (frag && frag[0] && !strstr(cdl_last_error(), frag))
            fail_msg("%s: message '%s' does not mention '%s'", file, cdl_last_error(), frag);
        printf("rejected %-26s %s\n", file, cdl_last_error());
    }
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_pytorch_fixtures), cmocka_unit_test(test_malformed_files)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
