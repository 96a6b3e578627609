/*
 * cmd_keygen.c: `cryptodl keygen MODEL.onnx --keys DIR`: the client's first
 * step. Builds the CKKS parameters of the model's plan and writes
 * DIR/secret.key (mode 0600: it never leaves the client), DIR/relin.key (the
 * server's key), DIR/public.key (to encrypt on a device that must not
 * decrypt) and, when the plan uses slots packing, DIR/galois.key (the Galois
 * keys of the plan's rotation steps, which the server needs too). An
 * existing secret key is not overwritten without --force: ciphertexts made
 * under it could no longer be decrypted. The keys are the library's
 * (cdl_client_keygen); progress on stderr (the Galois keys of a large plan
 * take minutes), none with --quiet.
 */
#include <getopt.h>
#include <stdio.h>
#include <sys/stat.h>

#include "he_steps.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl keygen MODEL.onnx --keys DIR [--plan FILE | options]\n\n"
            "Client: generate the CKKS keys for the model's parameters:\n"
            "  DIR/secret.key   SECRET (file mode 0600): stays with the client; decrypts\n"
            "  DIR/relin.key    the relinearization key: give it to the server (cryptodl evaluate)\n"
            "  DIR/public.key   encrypts but cannot decrypt (cryptodl encrypt --public-key)\n"
            "  DIR/galois.key   slots packing only: the Galois keys of the plan's rotation steps (hundreds\n"
            "                   of MB); give it to the server with relin.key\n\n"
            "options:\n"
            "  --keys DIR        folder for the keys (created, mode 0700, if missing)\n"
            "  --force           overwrite an existing DIR/secret.key\n"
            HE_QUIET_HELP
            "  -h, --help        this help\n"
            HE_MODEL_HELP
            "\n"
            "example:\n"
            "  cryptodl compile models/mnist_cryptonets.onnx --out plan.json\n"
            "  cryptodl keygen models/mnist_cryptonets.onnx --plan plan.json --keys client/\n"
            "  cryptodl keygen models/mnist_cryptonets.onnx --packing slots --keys client/   # + galois.key\n\n"
            "exit status: 0 done, 1 failure (message on stderr), 2 bad usage\n");
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {HE_MODEL_OPTIONS,
                                         {"keys", required_argument, 0, 'k'},
                                         {"force", no_argument, 0, 'F'},
                                         HE_QUIET_OPTION,
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    he_model_args ma;
    he_model_args_init(&ma);
    const char *keys = NULL;
    int force = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = he_model_option("keygen", c, optarg, &ma);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (c) {
        case 'k': keys = optarg; break;
        case 'F': force = 1; break;
        case HE_OPT_QUIET: cli_set_quiet(1); break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("keygen", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("keygen", "expected exactly one MODEL.onnx (e.g. models/mnist_cryptonets.onnx)");
    if (!keys)
        return cli_usage_error("keygen", "give --keys DIR, the folder the keys are written to");
    char path[4096];
    struct stat st;
    if (!force && stat(he_key_path(path, sizeof path, keys, "secret.key"), &st) == 0) {
        fprintf(stderr, "cryptodl keygen: %s exists; a new key could not decrypt what the old one encrypted. "
                        "Use another --keys folder, or --force to replace it.\n", path);
        return CLI_EXIT_FAILURE;
    }
    he_model m;
    int rc = he_model_open("keygen", argv[optind], &ma, &m);
    if (rc != CLI_EXIT_OK)
        return rc;
    he_keygen_result kr;
    if ((rc = he_keygen("keygen", m.plan, m.ctx, keys, &kr)) == CLI_EXIT_OK) {
        printf("keys for N = 2^%d, log QP = %d, in %.2f s:\n", m.rec.log_n, m.rec.log_qp, kr.seconds);
        printf("  %s/secret.key  %8.1f KB  SECRET: keep it on the client (mode 0600); it decrypts\n", keys,
               kr.secret_bytes / 1e3);
        printf("  %s/relin.key   %8.1f MB  give it to the server: cryptodl evaluate --relin-key\n", keys,
               kr.relin_bytes / 1e6);
        printf("  %s/public.key  %8.1f MB  optional: encrypts without decrypting (cryptodl encrypt --public-key)\n",
               keys, kr.public_bytes / 1e6);
        if (kr.galois_steps)
            printf("  %s/galois.key  %8.1f MB  slots packing: Galois keys for %zu rotation steps; give it to the "
                   "server with relin.key (cryptodl evaluate --galois-key)\n",
                   keys, kr.galois_bytes / 1e6, kr.galois_steps);
    }
    he_model_close(&m);
    return rc;
}
