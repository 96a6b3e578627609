/*
 * cmd_evaluate.c: `cryptodl evaluate MODEL.onnx --relin-key FILE --in FILE
 * --out FILE`: the server step. Runs the compiled plan on every encrypted
 * batch of the input file with the evaluation keys only: the relinearization
 * key and, in slots packing, the Galois keys (galois.key next to relin.key by
 * default, --galois-key FILE otherwise). A secret key is never read: one
 * given by mistake is refused from its header. Writes the encrypted logits in
 * the same layout, and prints time and throughput. Progress goes to stderr,
 * one line per layer.
 */
#include <getopt.h>
#include <stdio.h>

#include "he_steps.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl evaluate MODEL.onnx (--relin-key FILE | --keys DIR) --in FILE --out FILE [options]\n\n"
            "Server: run the model on encrypted images without any secret key; write the encrypted\n"
            "logits, which only the client can decrypt. Progress on stderr.\n\n"
            "options:\n"
            "  --relin-key FILE  the client's relinearization key (relin.key from cryptodl keygen)\n"
            "  --keys DIR        or a folder holding relin.key (and galois.key; only those are read)\n"
            "  --galois-key FILE slots packing: the client's Galois keys (default: galois.key next to\n"
            "                    --relin-key, or in --keys DIR); refused unless they hold every rotation\n"
            "                    step of the plan\n"
            "  --in FILE         the encrypted images (cryptodl encrypt --out)\n"
            "  --out FILE        the encrypted logits, for the client (cryptodl decrypt --in)\n"
            "  --threads T       worker threads (default: all cores)\n"
            "  --force           run even if the plan's ciphertext memory exceeds 90%% of the RAM\n"
            HE_QUIET_HELP
            "  -h, --help        this help\n"
            HE_MODEL_HELP
            "\n"
            "example:\n"
            "  cryptodl evaluate models/mnist_cryptonets.onnx --plan plan.json --relin-key relin.key \\\n"
            "      --in batch.ct --out logits.ct\n"
            "  cryptodl evaluate models/mnist_cryptonets.onnx --plan plan-slots.json --keys server/ \\\n"
            "      --in batch.ct --out logits.ct        # slots: server/relin.key and server/galois.key\n\n"
            "exit status: 0 done, 1 failure (message on stderr), 2 bad usage\n");
}

int cmd_evaluate(int argc, char **argv)
{
    static const struct option opts[] = {HE_MODEL_OPTIONS,
                                         {"relin-key", required_argument, 0, 'r'},
                                         {"keys", required_argument, 0, 'k'},
                                         {"galois-key", required_argument, 0, 'g'},
                                         {"in", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"threads", required_argument, 0, 't'},
                                         {"force", no_argument, 0, 'F'},
                                         HE_QUIET_OPTION,
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    he_model_args ma;
    he_model_args_init(&ma);
    const char *rlk_path = NULL, *keys = NULL, *gk_path = NULL, *in = NULL, *out = NULL;
    int threads = 0, force = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = he_model_option("evaluate", c, optarg, &ma);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (c) {
        case 'r': rlk_path = optarg; break;
        case 'k': keys = optarg; break;
        case 'g': gk_path = optarg; break;
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 'F': force = 1; break;
        case HE_OPT_QUIET: cli_set_quiet(1); break;
        case 't':
            if (cli_parse_threads("evaluate", optarg, &threads) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("evaluate", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("evaluate", "expected exactly one MODEL.onnx (e.g. models/mnist_cryptonets.onnx)");
    if (!rlk_path == !keys)
        return cli_usage_error("evaluate", "give the relinearization key: --relin-key FILE or --keys DIR (one)");
    if (!in || !out)
        return cli_usage_error("evaluate", "give --in FILE (encrypted images) and --out FILE (encrypted logits)");
    if (threads)
        cdl_set_threads(threads);
    he_model m;
    int rc = he_model_open("evaluate", argv[optind], &ma, &m);
    if (rc != CLI_EXIT_OK)
        return rc;
    cdl_ckks_relin_key *rlk = NULL;
    cdl_ckks_galois_keys *gk = NULL;
    char path[4096], gpath[4096];
    if (!force && (rc = he_check_memory("evaluate", m.plan)) != CLI_EXIT_OK)
        goto done;
    rc = CLI_EXIT_FAILURE;
    if (!rlk_path)
        rlk_path = he_key_path(path, sizeof path, keys, "relin.key");
    if (!gk_path)
        gk_path = keys ? he_key_path(gpath, sizeof gpath, keys, "galois.key")
                       : he_galois_path_near(gpath, sizeof gpath, rlk_path);
    if (he_load_key("evaluate", m.ctx, rlk_path, HE_KEY_RELIN, (void **)&rlk) != 0 ||
        he_load_galois("evaluate", m.plan, m.ctx, gk_path, &gk) != 0)
        goto done;
    if (!cli_quiet())
        fprintf(stderr, "evaluating %s on %s (%s packing, N = 2^%d, %d levels, %d threads)\n", m.path, in,
            he_packing_name(m.plan), m.rec.log_n, m.rec.levels, cdl_get_threads());
    he_file_stats st;
    if ((rc = he_evaluate_file("evaluate", m.plan, m.ctx, rlk, gk, in, out, &st)) != CLI_EXIT_OK)
        goto done;
    const double full = (double)(st.batches * cdl_he_plan_batch_capacity(m.plan));
    printf("evaluated %zu encrypted images (%zu batch%s) in %.2f s: %.0f predictions/hour (%.0f/hour with full "
           "batches); encrypted logits in %s (%.1f MB)\n",
           st.images, st.batches, st.batches == 1 ? "" : "es", st.seconds,
           st.seconds > 0 ? 3600.0 * (double)st.images / st.seconds : 0.0,
           st.seconds > 0 ? 3600.0 * full / st.seconds : 0.0, out, st.bytes / 1e6);
done:
    cdl_ckks_galois_keys_free(gk);
    cdl_ckks_relin_key_free(rlk);
    he_model_close(&m);
    return rc;
}
