/*
 * cmd_eval.c: `cryptodl eval model.onnx --dataset NAME`: plaintext accuracy
 * of an ONNX model on a test set with the float64 reference runtime (inputs
 * scaled to [0, 1] as the training companion does), with a progress bar,
 * throughput, and on request a confusion matrix. --json prints one object.
 * Progress on stderr: a bar on a terminal, lines otherwise, none with --quiet.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cryptodl/cryptodl.h"

#define EVAL_BATCH 256

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl eval MODEL.onnx --dataset mnist|fashion-mnist|cifar-10 [options]\n\n"
            "Plaintext accuracy of an ONNX model on a dataset's test set (float64 reference\n"
            "runtime, pixels scaled to [0, 1]).\n\n"
            "options:\n"
            "  --dataset NAME   mnist, fashion-mnist or cifar-10 (required)\n"
            "  --data-dir DIR   folder holding NAME/ (default: $CDL_DATA_DIR, ../shared/data,\n"
            "                   and for MNIST the test set shipped in data/)\n"
            "  --split S        test (default) or train\n"
            "  --limit N        evaluate the first N images only\n"
            "  --approx SPEC    replace activations by polynomials first, e.g. relu=remez:4:-6:6\n"
            "  --threads T      worker threads (default: all)\n"
            "  --confusion      print the confusion matrix (rows: true label, columns: predicted)\n"
            "  --json           one JSON object: accuracy (fraction), n, correct, images_per_second, ...\n"
            "  --quiet          no progress on stderr (otherwise a bar with the time left on a terminal,\n"
            "                   plain lines when stderr is not one and the run takes more than a second)\n"
            "  -h, --help       this help\n");
}

int cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {{"dataset", required_argument, 0, 'd'},
                                         {"data-dir", required_argument, 0, 'D'},
                                         {"split", required_argument, 0, 's'},
                                         {"limit", required_argument, 0, 'n'},
                                         {"approx", required_argument, 0, 'a'},
                                         {"threads", required_argument, 0, 't'},
                                         {"confusion", no_argument, 0, 'c'},
                                         {"json", no_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dataset = NULL, *data_dir = NULL, *split = "test", *approx = NULL;
    long long limit = 0;
    int json = 0, confusion = 0, threads = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dataset = optarg; break;
        case 'D': data_dir = optarg; break;
        case 's': split = optarg; break;
        case 'a': approx = optarg; break;
        case 'c': confusion = 1; break;
        case 'j': json = 1; break;
        case 'q': cli_set_quiet(1); break;
        case 'n':
            if (cli_parse_positive("eval", "--limit", optarg, &limit) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 't':
            if (cli_parse_threads("eval", optarg, &threads) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("eval", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("eval", "expected exactly one MODEL.onnx");
    if (!dataset)
        return cli_usage_error("eval", "--dataset is required (mnist, fashion-mnist or cifar-10)");
    if (threads)
        cdl_set_threads(threads);
    const char *path = argv[optind];
    int defaulted = data_dir == NULL;
    if (!data_dir)
        data_dir = cli_default_data_dir();

    cdl_nn_graph *g = NULL;
    cdl_dataset *ds = NULL;
    double *in = NULL, *out = NULL;
    int rc = CLI_EXIT_FAILURE;
    if (cdl_nn_load_file(path, &g) != CDL_OK)
        return cli_fail_status("eval", "cannot import the model");
    if (approx && cdl_nn_apply_approx(g, approx, NULL) != CDL_OK) {
        rc = cli_fail_status("eval", "cannot apply --approx");
        goto done;
    }
    if (cdl_dataset_load(dataset, data_dir, split, (size_t)limit, &ds) != CDL_OK) {
        /* The default ../shared/data may lack this dataset: let the loader's own search try. */
        if (!(defaulted && data_dir && cdl_dataset_load(dataset, NULL, split, (size_t)limit, &ds) == CDL_OK)) {
            rc = cli_fail_status("eval", "cannot load the dataset");
            goto done;
        }
    }
    const size_t per = cdl_dataset_image_size(ds), nin = cdl_nn_input_size(g), nout = cdl_nn_output_size(g);
    if (per != nin) {
        fprintf(stderr, "cryptodl eval: the model takes %zu values per image but %s images have %zu (%dx%dx%d): "
                        "is this a model for %s?\n", nin, ds->name, per, ds->channels, ds->height, ds->width, ds->name);
        goto done;
    }
    if (nout != (size_t)ds->n_classes) {
        fprintf(stderr, "cryptodl eval: the model outputs %zu values per image; %s has %d classes\n", nout, ds->name,
                ds->n_classes);
        goto done;
    }
    /* batch: up to EVAL_BATCH images, fewer for wide models (~256 MB of activations) */
    size_t values = nin;
    for (size_t i = 0; i < g->n_nodes; i++)
        values += cdl_nn_shape_numel(&g->nodes[i].out_shape);
    size_t batch = ((size_t)32 << 20) / values;
    batch = batch < 1 ? 1 : (batch > EVAL_BATCH ? EVAL_BATCH : batch);
    in = malloc(batch * per * sizeof *in);
    out = malloc(batch * nout * sizeof *out);
    size_t cm[10][10];
    memset(cm, 0, sizeof cm);
    if (!in || !out) {
        fprintf(stderr, "cryptodl eval: out of memory\n");
        goto done;
    }
    size_t correct = 0;
    cli_progress prog;
    cli_progress_begin(&prog, "eval", ds->n);
    double t0 = cli_now_seconds();
    for (size_t at = 0; at < ds->n; at += batch) {
        size_t b = ds->n - at < batch ? ds->n - at : batch;
        for (size_t i = 0; i < b * per; i++)
            in[i] = ds->pixels[at * per + i];
        if (cdl_nn_run(g, in, b, out) != CDL_OK) {
            rc = cli_fail_status("eval", "inference failed");
            goto done;
        }
        for (size_t i = 0; i < b; i++) {
            size_t best = 0;
            for (size_t k = 1; k < nout; k++)
                if (out[i * nout + k] > out[i * nout + best])
                    best = k;
            unsigned lab = ds->labels[at + i];
            correct += best == lab;
            cm[lab][best]++;
        }
        cli_progress_update(&prog, at + b);
    }
    double secs = cli_now_seconds() - t0;
    cli_progress_finish(&prog);
    double acc = ds->n ? (double)correct / (double)ds->n : 0.0, ips = secs > 0 ? (double)ds->n / secs : 0.0;
    if (json) {
        printf("{\"model\":");
        cli_json_string(path);
        printf(",\"dataset\":\"%s\",\"split\":\"%s\",\"n\":%zu,\"correct\":%zu,\"accuracy\":%.6f,"
               "\"seconds\":%.4f,\"images_per_second\":%.2f,\"threads\":%d",
               ds->name, split, ds->n, correct, acc, secs, ips, cdl_get_threads());
        if (confusion) {
            printf(",\"confusion\":[");
            for (int r = 0; r < 10; r++) {
                printf("%s[", r ? "," : "");
                for (int k = 0; k < 10; k++)
                    printf("%s%zu", k ? "," : "", cm[r][k]);
                printf("]");
            }
            printf("]");
        }
        printf("}\n");
    } else {
        printf("model     %s\ndataset   %s (%s, %zu images from %s)\naccuracy  %.2f%% (%zu/%zu)\n"
               "speed     %.1f images/s (%.2f s, %d threads)\n",
               path, ds->name, split, ds->n, ds->source, 100.0 * acc, correct, ds->n, ips, secs, cdl_get_threads());
        if (confusion) {
            printf("\nconfusion matrix (rows: true label, columns: predicted)\n      ");
            for (int k = 0; k < 10; k++)
                printf("%6d", k);
            printf("\n");
            for (int r = 0; r < 10; r++) {
                printf("%6d", r);
                for (int k = 0; k < 10; k++)
                    printf("%6zu", cm[r][k]);
                printf("\n");
            }
        }
    }
    rc = CLI_EXIT_OK;
done:
    free(in);
    free(out);
    cdl_dataset_free(ds);
    cdl_nn_graph_free(g);
    return rc;
}
