/*
 * cmd_decrypt.c: `cryptodl decrypt MODEL.onnx --keys DIR --in FILE`: the
 * client's last step. Decrypts the server's encrypted logits with
 * DIR/secret.key and prints one line per image: its index, the predicted
 * class (argmax) and the logits; as CSV with a header (--csv FILE, - for
 * stdout) or one JSON object (--json). With --labels (IDX or .npy) it also
 * prints the accuracy. With --flood [BITS] the logits are noise-flooded
 * (cdl_he_decrypt_logits_flooded) before anything is printed or written: the
 * form to use for logits that leave the client (IND-CPA-D).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "he_steps.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl decrypt MODEL.onnx --keys DIR --in FILE [--labels FILE] [--csv OUT | --json]\n"
            "                        [--flood [BITS]]\n\n"
            "Client: decrypt the encrypted logits the server returned; print, per image, its index,\n"
            "the predicted class and the logits. Exact CKKS decryptions leak the secret key's noise:\n"
            "never give them (or anything computed from their exact values) to the server or anyone\n"
            "else without --flood.\n\n"
            "options:\n"
            "  --keys DIR        the folder holding secret.key (cryptodl keygen)\n"
            "  --in FILE         the encrypted logits (cryptodl evaluate --out)\n"
            "  --labels FILE     true classes (IDX label file or .npy integer vector, in image order):\n"
            "                    adds a label column and the accuracy\n"
            "  --csv OUT         write CSV with a header (index,predicted[,label],logit_0,...) to OUT\n"
            "                    (- for stdout)\n"
            "  --json            one JSON object on stdout: images, accuracy, predictions[] (and flood)\n"
            HE_FLOOD_HELP
            HE_QUIET_HELP
            "  -h, --help        this help\n"
            HE_MODEL_HELP
            "\n"
            "example:\n"
            "  cryptodl decrypt models/mnist_cryptonets.onnx --plan plan.json --keys client/ \\\n"
            "      --in logits.ct --csv predictions.csv\n"
            "  cryptodl decrypt models/mnist_cryptonets.onnx --plan plan.json --keys client/ \\\n"
            "      --in logits.ct --flood 40 --json     # logits to share (plan compiled with --scale-bits 50)\n\n"
            "exit status: 0 done, 1 failure (message on stderr), 2 bad usage\n");
}

static void print_csv(FILE *f, const double *logits, size_t n, size_t nout, const uint8_t *labels)
{
    fprintf(f, "index,predicted%s", labels ? ",label" : "");
    for (size_t k = 0; k < nout; k++)
        fprintf(f, ",logit_%zu", k);
    fputc('\n', f);
    for (size_t j = 0; j < n; j++) {
        fprintf(f, "%zu,%zu", j, he_argmax(logits + j * nout, nout));
        if (labels)
            fprintf(f, ",%u", labels[j]);
        for (size_t k = 0; k < nout; k++)
            fprintf(f, ",%.6g", logits[j * nout + k]);
        fputc('\n', f);
    }
}

int cmd_decrypt(int argc, char **argv)
{
    static const struct option opts[] = {HE_MODEL_OPTIONS,
                                         {"keys", required_argument, 0, 'k'},
                                         {"in", required_argument, 0, 'i'},
                                         {"labels", required_argument, 0, 'l'},
                                         {"csv", required_argument, 0, 'c'},
                                         {"json", no_argument, 0, 'j'},
                                         HE_FLOOD_OPTIONS,
                                         HE_QUIET_OPTION,
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    he_model_args ma;
    he_model_args_init(&ma);
    const char *keys = NULL, *in = NULL, *labels_path = NULL, *csv = NULL;
    int json = 0, c;
    cdl_ckks_flood_options flood = {0, 0.0, 0.0};
    cdl_ckks_flood_info finfo = {0.0, 0.0, 0.0, 0.0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = he_model_option("decrypt", c, optarg, &ma);
        if (r == 0)
            r = he_flood_option("decrypt", c, optarg, argc, argv, &flood);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (c) {
        case 'k': keys = optarg; break;
        case 'i': in = optarg; break;
        case 'l': labels_path = optarg; break;
        case 'c': csv = optarg; break;
        case 'j': json = 1; break;
        case HE_OPT_QUIET: cli_set_quiet(1); break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("decrypt", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("decrypt", "expected exactly one MODEL.onnx (e.g. models/mnist_cryptonets.onnx)");
    if (!keys || !in)
        return cli_usage_error("decrypt", "give --keys DIR (holding secret.key) and --in FILE (encrypted logits)");
    if (csv && json)
        return cli_usage_error("decrypt", "give --csv or --json, not both");
    if (flood.queries != 0.0 && !flood.security_bits)
        return cli_usage_error("decrypt", "--flood-queries needs --flood");
    he_model m;
    int rc = he_model_open("decrypt", argv[optind], &ma, &m);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = CLI_EXIT_FAILURE;
    cdl_ckks_secret_key *sk = NULL;
    double *logits = NULL;
    uint8_t *labels = NULL;
    size_t n = 0, n_labels = 0;
    const size_t nout = cdl_he_plan_output_size(m.plan);
    char path[4096];
    if (he_load_key("decrypt", m.ctx, he_key_path(path, sizeof path, keys, "secret.key"), HE_KEY_SECRET,
                    (void **)&sk) != 0)
        goto done;
    if ((rc = he_decrypt_file("decrypt", m.plan, m.ctx, sk, in, flood.security_bits ? &flood : NULL, &finfo, &logits,
                              &n)) != CLI_EXIT_OK)
        goto done;
    rc = CLI_EXIT_FAILURE;
    if (flood.security_bits && he_flood_report("decrypt", m.plan, &flood, &finfo, logits, n * nout, 1) != 0)
        goto done;
    if (labels_path) {
        if (cdl_labels_load(labels_path, nout < 256 ? (int)nout : 256, &labels, &n_labels) != CDL_OK) {
            rc = cli_fail_status("decrypt", "cannot use the labels");
            goto done;
        }
        if (n_labels < n) {
            fprintf(stderr, "cryptodl decrypt: %s holds %zu labels for %zu images\n", labels_path, n_labels, n);
            goto done;
        }
        if (n_labels > n)
            fprintf(stderr, "cryptodl decrypt: note: using the first %zu of the %zu labels in %s\n", n, n_labels,
                    labels_path);
    }
    size_t correct = 0;
    for (size_t j = 0; labels && j < n; j++)
        correct += he_argmax(logits + j * nout, nout) == labels[j];
    if (json) {
        printf("{\"images\":%zu,\"classes\":%zu,\"accuracy\":", n, nout);
        if (labels)
            printf("%.6f", (double)correct / (double)n);
        else
            printf("null");
        printf(",\"predictions\":[");
        for (size_t j = 0; j < n; j++) {
            printf("%s{\"index\":%zu,\"predicted\":%zu", j ? "," : "", j, he_argmax(logits + j * nout, nout));
            if (labels)
                printf(",\"label\":%u", labels[j]);
            printf(",\"logits\":[");
            for (size_t k = 0; k < nout; k++)
                printf("%s%.6g", k ? "," : "", logits[j * nout + k]);
            printf("]}");
        }
        printf("]");
        if (flood.security_bits)
            printf(",\"flood\":{\"bits\":%d,\"queries\":%.0f,\"noise_log2\":%.0f,\"sigma_log2\":%.2f,"
                   "\"logit_rms_error\":%.3g}",
                   flood.security_bits, finfo.queries, finfo.noise_log2,
                   finfo.sigma_log2, finfo.slot_error);
        printf("}\n");
    } else if (csv) {
        FILE *f = strcmp(csv, "-") ? fopen(csv, "w") : stdout;
        if (!f) {
            fprintf(stderr, "cryptodl decrypt: cannot write %s\n", csv);
            goto done;
        }
        print_csv(f, logits, n, nout, labels);
        if (f != stdout && fclose(f) != 0) {
            fprintf(stderr, "cryptodl decrypt: cannot write %s\n", csv);
            goto done;
        }
        FILE *s = f == stdout ? stderr : stdout;
        fprintf(s, "decrypted %zu predictions%s%s", n, f == stdout ? "" : " to ", f == stdout ? "" : csv);
        if (labels)
            fprintf(s, "; accuracy %.2f%% (%zu/%zu)", 100.0 * correct / n, correct, n);
        fputc('\n', s);
    } else {
        printf("image  class%s  logits\n", labels ? "  label" : "");
        for (size_t j = 0; j < n; j++) {
            printf("%5zu  %5zu", j, he_argmax(logits + j * nout, nout));
            if (labels)
                printf("  %5u", labels[j]);
            printf(" ");
            for (size_t k = 0; k < nout; k++)
                printf(" %8.3f", logits[j * nout + k]);
            putchar('\n');
        }
        if (labels)
            printf("accuracy %.2f%% (%zu/%zu)\n", 100.0 * correct / n, correct, n);
    }
    rc = CLI_EXIT_OK;
done:
    free(logits);
    cdl_labels_free(labels);
    cdl_ckks_secret_key_free(sk);
    he_model_close(&m);
    return rc;
}
