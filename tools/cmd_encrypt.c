/*
 * cmd_encrypt.c: `cryptodl encrypt MODEL.onnx --keys DIR --input FILE --out
 * FILE`: the client encrypts its own images (a NumPy .npy array or an IDX
 * file, read by cdl_images_load and matched against the model's input
 * shape) or the first images of a test set (--dataset). One batch holds up
 * to cdl_he_plan_batch_capacity images (N/2 in batch packing, a few in slots
 * packing); more are split into several batches in one file (a CDLPARTS
 * container), which evaluate and decrypt read batch by batch.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "he_steps.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl encrypt MODEL.onnx --keys DIR (--input FILE | --dataset NAME) --out FILE [options]\n\n"
            "Client: encrypt images for the server. A batch holds up to N/2 images in batch packing\n"
            "and a few (1..4 for the MNIST models) in slots packing; more images are written as\n"
            "several batches in the same file.\n\n"
            "input (one of):\n"
            "  --input FILE      your images: a NumPy .npy array, uint8 (0..255, scaled by 1/255) or\n"
            "                    float32/float64 (the model's [0, 1] pixels), little-endian, C order, of\n"
            "                    shape (n, C, H, W), (n, H, W) for one channel, or one image (C, H, W) /\n"
            "                    (H, W); or an IDX ubyte image file as MNIST's t10k-images-idx3-ubyte\n"
            "                    (plain or gzip). The shape must be the model's input shape.\n"
            "  --dataset NAME    the first --limit test images of mnist, fashion-mnist or cifar-10\n"
            "  --data-dir DIR    folder holding NAME/ (default: $CDL_DATA_DIR, ../shared/data, data/)\n"
            "  --limit N         encrypt only the first N images (default: all of --input; one batch\n"
            "                    of --dataset)\n\n"
            "options:\n"
            "  --keys DIR        DIR/secret.key (symmetric encryption, half-size ciphertexts), or with\n"
            "  --public-key      DIR/public.key only (a device that encrypts but cannot decrypt)\n"
            "  --out FILE        the encrypted batch(es), to send to the server\n"
            HE_QUIET_HELP
            "  -h, --help        this help\n"
            HE_MODEL_HELP
            "\n"
            "example:\n"
            "  cryptodl encrypt models/mnist_cryptonets.onnx --plan plan.json --keys client/ \\\n"
            "      --input digits.npy --out batch.ct\n\n"
            "exit status: 0 done, 1 failure (message on stderr), 2 bad usage\n");
}

int cmd_encrypt(int argc, char **argv)
{
    static const struct option opts[] = {HE_MODEL_OPTIONS,
                                         {"keys", required_argument, 0, 'k'},
                                         {"input", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"public-key", no_argument, 0, 'p'},
                                         {"dataset", required_argument, 0, 'd'},
                                         {"data-dir", required_argument, 0, 'D'},
                                         {"limit", required_argument, 0, 'n'},
                                         HE_QUIET_OPTION,
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    he_model_args ma;
    he_model_args_init(&ma);
    const char *keys = NULL, *input = NULL, *out = NULL, *dataset = NULL, *data_dir = NULL;
    long long limit = 0;
    int use_pk = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int r = he_model_option("encrypt", c, optarg, &ma);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        switch (c) {
        case 'k': keys = optarg; break;
        case 'i': input = optarg; break;
        case 'o': out = optarg; break;
        case 'p': use_pk = 1; break;
        case 'd': dataset = optarg; break;
        case 'D': data_dir = optarg; break;
        case HE_OPT_QUIET: cli_set_quiet(1); break;
        case 'n':
            if (cli_parse_positive("encrypt", "--limit", optarg, &limit) != 0)
                return CLI_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("encrypt", "unknown option");
        }
    }
    if (optind != argc - 1)
        return cli_usage_error("encrypt", "expected exactly one MODEL.onnx (e.g. models/mnist_cryptonets.onnx)");
    if (!keys || !out)
        return cli_usage_error("encrypt", "give --keys DIR (your keys) and --out FILE (the encrypted batch)");
    if (!input == !dataset)
        return cli_usage_error("encrypt", "give either --input FILE (your images) or --dataset NAME");
    he_model m;
    int rc = he_model_open("encrypt", argv[optind], &ma, &m);
    if (rc != CLI_EXIT_OK)
        return rc;
    rc = CLI_EXIT_FAILURE;
    cdl_images *im = NULL;
    cdl_dataset *ds = NULL;
    cdl_ckks_secret_key *sk = NULL;
    cdl_ckks_public_key *pk = NULL;
    double *pixels = NULL;
    size_t n = 0;
    const size_t per = cdl_he_plan_input_size(m.plan), cap = cdl_he_plan_batch_capacity(m.plan);
    char what[600];
    if (input) {
        if (cdl_images_load(input, m.graph->input_shape.rank, m.graph->input_shape.dims, &im) != CDL_OK) {
            rc = cli_fail_status("encrypt", "cannot use these images");
            goto done;
        }
        n = limit && (size_t)limit < im->n ? (size_t)limit : im->n;
        pixels = im->pixels;
        double lo = pixels[0], hi = pixels[0];
        for (size_t i = 0; i < n * per; i++) {
            lo = pixels[i] < lo ? pixels[i] : lo;
            hi = pixels[i] > hi ? pixels[i] : hi;
        }
        if (lo < -0.01 || hi > 1.01)
            fprintf(stderr, "cryptodl encrypt: note: pixel values span [%g, %g]; the shipped models take [0, 1] "
                            "(uint8 arrays are scaled by 1/255 for you)\n", lo, hi);
        snprintf(what, sizeof what, "%zu images from %s (%s, %s)", n, input, im->format, im->dtype);
    } else {
        const char *dir = data_dir ? data_dir : cli_default_data_dir();
        size_t want = limit ? (size_t)limit : cap;
        if (cdl_dataset_load(dataset, dir, "test", want, &ds) != CDL_OK &&
            !(!data_dir && dir && cdl_dataset_load(dataset, NULL, "test", want, &ds) == CDL_OK)) {
            rc = cli_fail_status("encrypt", "cannot load the test set (give --data-dir DIR holding NAME/)");
            goto done;
        }
        if (cdl_dataset_image_size(ds) != per) {
            fprintf(stderr, "cryptodl encrypt: %s images have %zu values, the model takes %zu: give the dataset the "
                            "model was trained on\n", ds->name, cdl_dataset_image_size(ds), per);
            goto done;
        }
        n = ds->n;
        pixels = malloc(n * per * sizeof *pixels);
        if (!pixels) {
            fprintf(stderr, "cryptodl encrypt: out of memory for %zu images\n", n);
            goto done;
        }
        for (size_t i = 0; i < n * per; i++)
            pixels[i] = ds->pixels[i];
        snprintf(what, sizeof what, "the first %zu %s test images", n, ds->name);
    }
    char path[4096];
    if (he_load_key("encrypt", m.ctx, he_key_path(path, sizeof path, keys, use_pk ? "public.key" : "secret.key"),
                    use_pk ? HE_KEY_PUBLIC : HE_KEY_SECRET, use_pk ? (void **)&pk : (void **)&sk) != 0)
        goto done;
    he_file_stats st;
    if ((rc = he_encrypt_file("encrypt", m.plan, m.ctx, pk, sk, pixels, n, out, &st)) != CLI_EXIT_OK)
        goto done;
    printf("encrypted %s in %.2f s (%s key): %s, %.1f MB, %zu batch%s of up to %zu images\n", what, st.seconds,
           use_pk ? "public" : "secret", out, st.bytes / 1e6, st.batches, st.batches == 1 ? "" : "es", cap);
    printf("send %s to the server: cryptodl evaluate %s%s%s --relin-key relin.key%s --in %s --out logits.ct\n",
           out, m.path, ma.plan_path ? " --plan " : "", ma.plan_path ? ma.plan_path : "",
           m.rec.n_galois ? " --galois-key galois.key" : "", out);
done:
    if (!im)
        free(pixels);
    cdl_images_free(im);
    cdl_dataset_free(ds);
    cdl_ckks_secret_key_free(sk);
    cdl_ckks_public_key_free(pk);
    he_model_close(&m);
    return rc;
}
