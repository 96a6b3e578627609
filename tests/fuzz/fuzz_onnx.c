/* fuzz_onnx.c: libFuzzer target for the ONNX importer. Any byte string must
 * be refused with a status or imported into a graph that then runs; never a
 * crash, leak or undefined behaviour. Small graphs are also run and compiled
 * for HE. Seeds: tests/fuzz/corpus/onnx/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cryptodl/cryptodl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cdl_nn_graph *g = NULL;
    if (cdl_nn_load_memory(data, size, &g) != CDL_OK)
        return 0;
    /* Small graphs are also run once, to exercise the shapes the importer accepted. */
    size_t nin = cdl_nn_input_size(g), nout = cdl_nn_output_size(g), values = nin;
    for (size_t i = 0; i < g->n_nodes; i++)
        values += cdl_nn_shape_numel(&g->nodes[i].out_shape);
    if (values <= 1000000 && cdl_nn_graph_macs(g) <= 1000000) {
        double *in = calloc(nin, sizeof *in), *out = calloc(nout, sizeof *out);
        if (in && out)
            (void)cdl_nn_run(g, in, 1, out);
        free(in);
        free(out);
        /* and compiled for HE (refusals, trailing-softmax dropping, lowering) */
        cdl_he_plan *plan = NULL;
        if (cdl_he_plan_new(g, NULL, &plan) == CDL_OK && cdl_he_plan_output_size(plan) > nout)
            abort(); /* the encrypted result is the output or the logits before a softmax: same size */
        cdl_he_plan_free(plan);
    }
    cdl_nn_graph_free(g);
    return 0;
}
