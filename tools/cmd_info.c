/*
 * cmd_info.c: `cryptodl info model.onnx`: what the importer made of a model:
 * one line per IR layer (kind, ONNX origin, shapes, parameters, MACs, the
 * multiplicative depth it costs and the total so far, whether HE can run it
 * and why not), then totals. --json prints the same as one object.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cryptodl/cryptodl.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl info MODEL.onnx [--approx SPEC] [--json]\n\n"
            "Describe an ONNX model as cryptodl imports it: layers, shapes, parameters,\n"
            "multiply-accumulates, multiplicative depth per layer (what CKKS will spend),\n"
            "and which layers homomorphic evaluation can run. A trailing softmax is\n"
            "reported as dropped under encryption (the encrypted result is the logits).\n\n"
            "options:\n"
            "  --approx SPEC  replace activations by polynomials before analysis:\n"
            "                 FUNCTION=METHOD:DEGREE:A:B[,...], e.g. relu=remez:4:-6:6\n"
            "                 (FUNCTION: relu, sigmoid, tanh, leakyrelu)\n"
            "  --json         one JSON object instead of the table\n"
            "  -h, --help     this help\n");
}

static void shape_str(const cdl_nn_shape *s, char *buf, size_t cap)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, cap - at, "[");
    for (int i = 0; i < s->rank && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%" PRId64, i ? "," : "", s->dims[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
}

static void json_shape(const cdl_nn_shape *s)
{
    printf("[");
    for (int i = 0; i < s->rank; i++)
        printf("%s%" PRId64, i ? "," : "", s->dims[i]);
    printf("]");
}

static void print_json(const cdl_nn_graph *g, const char *path)
{
    printf("{\"model\":");
    cli_json_string(path);
    printf(",\"producer\":");
    cli_json_string(g->producer);
    printf(",\"opset\":%" PRId64 ",\"input\":", g->opset);
    json_shape(&g->input_shape);
    printf(",\"output\":");
    json_shape(cdl_nn_value_shape(g, g->output));
    printf(",\"params\":%" PRIu64 ",\"macs\":%" PRIu64 ",\"depth\":%d,\"he_ready\":%s,",
           cdl_nn_graph_params(g), cdl_nn_graph_macs(g), cdl_nn_graph_depth(g),
           cdl_nn_graph_he_blockers(g) ? "false" : "true");
    size_t dropped = 0;
    cdl_nn_graph_logits(g, &dropped);
    printf("\"he_softmax_dropped\":%zu,\"layers\":[", dropped); /* > 0: the encrypted result is the logits */
    for (size_t i = 0; i < g->n_nodes; i++) {
        const cdl_nn_node *nd = &g->nodes[i];
        printf("%s{\"kind\":\"%s\",\"onnx_op\":", i ? "," : "", cdl_nn_kind_name(nd->kind));
        cli_json_string(nd->onnx_op);
        printf(",\"name\":");
        cli_json_string(nd->name);
        printf(",\"inputs\":[%d", nd->inputs[0]);
        if (nd->n_inputs > 1)
            printf(",%d", nd->inputs[1]);
        printf("],\"in\":");
        json_shape(&nd->in_shape);
        printf(",\"out\":");
        json_shape(&nd->out_shape);
        printf(",\"params\":%" PRIu64 ",\"macs\":%" PRIu64 ",\"depth\":%d,\"total_depth\":%d,\"he\":%s",
               nd->params, nd->macs, nd->depth, nd->total_depth, nd->he_ok ? "true" : "false");
        if (nd->kind == CDL_NN_POLY) {
            printf(",\"degree\":%d,\"coefficients\":[", nd->degree);
            for (int k = 0; k <= nd->degree; k++)
                printf("%s%.17g", k ? "," : "", nd->coeffs[k]);
            printf("]");
        }
        if (nd->he_reason[0]) {
            printf(",\"he_reason\":");
            cli_json_string(nd->he_reason);
        }
        printf("}");
    }
    printf("]}\n");
}

static void print_table(const cdl_nn_graph *g, const char *path)
{
    char a[96], b[96];
    shape_str(&g->input_shape, a, sizeof a);
    shape_str(cdl_nn_value_shape(g, g->output), b, sizeof b);
    printf("model    %s\nproducer %s, opset %" PRId64 "\ninput    %s %s\noutput   %s %s\n\n", path,
           g->producer[0] ? g->producer : "?", g->opset, g->input_name, a, g->output_name, b);
    printf("%3s  %-8s %-22s %-14s %-14s %9s %11s %5s %5s  %s\n", "#", "layer", "from (ONNX)", "input", "output",
           "params", "MACs", "depth", "total", "HE");
    for (size_t i = 0; i < g->n_nodes; i++) {
        const cdl_nn_node *nd = &g->nodes[i];
        char from[128];
        snprintf(from, sizeof from, "%s %s", nd->onnx_op, nd->name);
        if (strlen(from) > 22)
            from[22] = '\0';
        shape_str(&nd->in_shape, a, sizeof a);
        shape_str(&nd->out_shape, b, sizeof b);
        printf("%3zu  %-8s %-22s %-14s %-14s %9" PRIu64 " %11" PRIu64 " %5d %5d  %s", i + 1,
               cdl_nn_kind_name(nd->kind), from, a, b, nd->params, nd->macs, nd->depth, nd->total_depth,
               nd->he_ok ? "yes" : "NO");
        if (nd->kind == CDL_NN_POLY) {
            printf("  (degree %d:", nd->degree);
            for (int k = 0; k <= nd->degree; k++)
                printf(" %.4g", nd->coeffs[k]);
            printf(")");
        }
        printf("\n");
        if (nd->he_reason[0]) /* why not, or (trailing softmax) what HE does instead */
            printf("     -> %s\n", nd->he_reason);
    }
    size_t blockers = cdl_nn_graph_he_blockers(g);
    printf("\nparameters %" PRIu64 ", MACs per image %" PRIu64 ", multiplicative depth %d\n", cdl_nn_graph_params(g),
           cdl_nn_graph_macs(g), cdl_nn_graph_depth(g));
    if (blockers)
        printf("HE: %zu layer(s) cannot run encrypted (see above)\n", blockers);
    else
        printf("HE: every layer can run encrypted\n");
    size_t dropped = 0;
    cdl_nn_graph_logits(g, &dropped);
    if (dropped)
        printf("HE: the trailing softmax is not evaluated under encryption: the encrypted result is the logits "
               "(argmax unchanged)\n");
}

int cmd_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'}, {"approx", required_argument, 0, 'a'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int json = 0, c;
    const char *approx = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'a': approx = optarg; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("info", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("info", "expected exactly one MODEL.onnx");
    const char *path = argv[optind];
    cdl_nn_graph *g = NULL;
    if (cdl_nn_load_file(path, &g) != CDL_OK)
        return cli_fail_status("info", "cannot import the model");
    if (approx && cdl_nn_apply_approx(g, approx, NULL) != CDL_OK) {
        cdl_nn_graph_free(g);
        return cli_fail_status("info", "cannot apply --approx");
    }
    if (json)
        print_json(g, path);
    else
        print_table(g, path);
    cdl_nn_graph_free(g);
    return CLI_EXIT_OK;
}
