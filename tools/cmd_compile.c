/*
 * cmd_compile.c: `cryptodl compile MODEL.onnx [options] [--out plan.json]`:
 * the first step of DESIGN.md's pipeline. Compiles the model for encrypted
 * inference, prints the plan (layers, levels, CKKS parameters, cost, memory:
 * what `predict --plan` prints) and writes it as a JSON plan file that the
 * other steps (keygen, encrypt, evaluate, decrypt) take with --plan, so that
 * client and server run the same plan without repeating the options.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "he_steps.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl compile MODEL.onnx [options] [--out plan.json]\n\n"
            "Compile an ONNX model for encrypted inference (CKKS; --packing batch: one image per slot,\n"
            "or slots: one image across the slots): print the plan and, with --out, write it as JSON\n"
            "(format version, the model's SHA-256, the options, the packing chosen, CKKS parameters,\n"
            "input/output sizes and ciphertexts, batch capacity, key set with the rotation steps,\n"
            "memory). keygen, encrypt, evaluate and decrypt take it with --plan instead of the options.\n\n"
            "options:\n"
            "  --out FILE        write the JSON plan to FILE\n"
            "  --json            print the JSON plan on stdout instead of the text description\n"
            "  -h, --help        this help\n"
            HE_MODEL_HELP
            "\n"
            "example:\n"
            "  cryptodl compile models/mnist_cryptonets.onnx --out plan.json\n"
            "  cryptodl compile models/mnist_cryptonets.onnx --packing slots --out plan-slots.json\n\n"
            "exit status: 0 done, 1 failure (message on stderr), 2 bad usage\n");
}

int cmd_compile(int argc, char **argv)
{
    static const struct option opts[] = {HE_MODEL_OPTIONS,
                                         {"out", required_argument, 0, 'o'},
                                         {"json", no_argument, 0, 'j'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    he_model_args ma;
    he_model_args_init(&ma);
    const char *out = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = he_model_option("compile", c, optarg, &ma);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("compile", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("compile", "expected exactly one MODEL.onnx (e.g. models/mnist_cryptonets.onnx)");
    he_model m;
    int rc = he_model_open("compile", argv[optind], &ma, &m);
    if (rc != CLI_EXIT_OK)
        return rc;
    char *desc = NULL, *text = plan_record_json(&m.rec, m.path);
    if (!text || cdl_he_plan_describe(m.plan, &desc) != CDL_OK) {
        rc = cli_fail_status("compile", "cannot describe the plan");
        goto done;
    }
    if (json)
        fputs(text, stdout);
    else {
        char shape[128];
        he_shape_text(m.graph, shape, sizeof shape);
        printf("model %s (SHA-256 %s)\ninput %s = %zu values per image, output %zu values\n", m.path, m.rec.sha256,
               shape, m.rec.input_size, m.rec.output_size);
        printf("packing %s: %zu input and %zu output ciphertexts per batch of up to %zu images",
               he_packing_name(m.plan), m.rec.input_ciphertexts, m.rec.output_ciphertexts, m.rec.batch_capacity);
        if (m.rec.n_galois)
            printf("; the server needs Galois keys for %zu rotation steps (%.1f MB)", m.rec.n_galois,
                   m.rec.galois_key_bytes / 1e6);
        printf("\n");
        fputs(desc, stdout);
    }
    if (out) {
        if (he_write_file("compile", out, (const uint8_t *)text, strlen(text), 0) != 0) {
            rc = CLI_EXIT_FAILURE;
            goto done;
        }
        fprintf(json ? stderr : stdout, "plan written to %s: give it to keygen, encrypt, evaluate and decrypt with "
                                        "--plan %s\n", out, out);
    }
    rc = CLI_EXIT_OK;
done:
    cdl_he_string_free(desc);
    free(text);
    he_model_close(&m);
    return rc;
}
