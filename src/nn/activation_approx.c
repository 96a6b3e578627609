/*
 * activation_approx.c: `--approx relu=remez:4:-6:6`. Replaces the ReLU /
 * Sigmoid / Tanh / LeakyRelu nodes of a graph by a polynomial computed with the approx
 * layer (CryptoDL's idea: polynomial activations make a network
 * HE-evaluable). The spec is FUNCTION=METHOD:DEGREE:A:B, several separated
 * by commas, e.g. "relu=remez:4:-6:6,sigmoid=ls:3:-8:8". A leaky ReLU of
 * slope a becomes a x + (1 - a) p(x) with p the ReLU approximation.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "cryptodl/nn.h"
#include "nn/nn_internal.h"

#if defined(__has_include)
#if __has_include("cryptodl/approx.h")
#include "cryptodl/approx.h"
#define CDL_NN_HAVE_APPROX 1
#endif
#endif

static cdl_status apply_one(cdl_nn_graph *graph, const char *item, size_t *replaced)
{
    char buf[160], fn[32], method[32];
    snprintf(buf, sizeof buf, "%s", item);
    char *eq = strchr(buf, '=');
    if (!eq || eq == buf)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                        "--approx '%s': expected FUNCTION=METHOD:DEGREE:A:B, e.g. relu=remez:4:-6:6", item);
    *eq = '\0';
    if (strlen(buf) >= sizeof fn)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "--approx '%s': unknown function", item);
    memcpy(fn, buf, strlen(buf) + 1);
    char *rest = eq + 1;
    char *colon = strchr(rest, ':');
    int degree = 0;
    double a = 0, b = 0;
    char tail[128];
    if (!colon)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "--approx '%s': expected FUNCTION=METHOD:DEGREE:A:B", item);
    *colon = '\0';
    if (strlen(rest) >= sizeof method || strlen(colon + 1) >= sizeof tail)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "--approx '%s': too long", item);
    memcpy(method, rest, strlen(rest) + 1);
    memcpy(tail, colon + 1, strlen(colon + 1) + 1);
    char *end;
    degree = (int)strtol(tail, &end, 10);
    if (*end != ':')
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "--approx '%s': DEGREE must be an integer", item);
    a = strtod(end + 1, &end);
    if (*end != ':')
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "--approx '%s': A must be a number", item);
    b = strtod(end + 1, &end);
    if (*end != '\0' || !(a < b))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "--approx '%s': need numbers A < B for the interval", item);
    cdl_nn_kind kind;
    if (!strcmp(fn, "relu"))
        kind = CDL_NN_RELU;
    else if (!strcmp(fn, "sigmoid"))
        kind = CDL_NN_SIGMOID;
    else if (!strcmp(fn, "tanh"))
        kind = CDL_NN_TANH;
    else if (!strcmp(fn, "leakyrelu") || !strcmp(fn, "leaky_relu"))
        kind = CDL_NN_LEAKY_RELU; /* approximated through ReLU: a x + (1 - a) p(x) per node */
    else
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "--approx: unknown function '%s' (relu, sigmoid, tanh or leakyrelu)",
                        fn);
#ifdef CDL_NN_HAVE_APPROX
    cdl_activation act;
    cdl_approx_method m;
    CDL_TRY(cdl_activation_from_name(kind == CDL_NN_LEAKY_RELU ? "relu" : fn, &act));
    CDL_TRY(cdl_approx_method_from_name(method, &m));
    cdl_poly_approx p;
    CDL_TRY(cdl_approx_compute(act, m, degree, a, b, NULL, &p));
    size_t n = 0;
    CDL_TRY(cdl_nn_replace_activation(graph, kind, p.power, p.degree, &n));
    *replaced += n;
    return CDL_OK;
#else
    (void)graph;
    (void)replaced;
    (void)kind;
    (void)degree;
    return cdl_fail(CDL_ERR_UNSUPPORTED, "--approx is not available yet: this build has no approx layer (src/approx)");
#endif
}

cdl_status cdl_nn_apply_approx(cdl_nn_graph *graph, const char *spec, size_t *replaced)
{
    if (!graph || !spec)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_nn_apply_approx: NULL argument");
    size_t total = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *it = strtok_r(buf, ",", &save); it; it = strtok_r(NULL, ",", &save))
        CDL_TRY(apply_one(graph, it, &total));
    if (replaced)
        *replaced = total;
    return CDL_OK;
}
