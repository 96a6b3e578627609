/*
 * main.c: the `cryptodl` command. It only dispatches: every subcommand is a
 * thin layer over libcryptodl, in tools/cmd_<name>.c.
 */
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli.h"
#include "cryptodl/cryptodl.h"

static const cli_command commands[] = {
    {"approx", "polynomial approximations of ReLU/Sigmoid/Tanh with error analysis", cmd_approx},
    {"info", "describe an ONNX model: layers, shapes, depth, what HE can run", cmd_info},
    {"eval", "plaintext accuracy of an ONNX model on a dataset", cmd_eval},
    {"compile", "compile a model for encrypted inference: print the plan, write plan.json", cmd_compile},
    {"keygen", "client: secret.key (kept), relin.key (for the server), public.key", cmd_keygen},
    {"encrypt", "client: encrypt your images (.npy, IDX) or test images into batches", cmd_encrypt},
    {"evaluate", "server: run the model on encrypted images with the relinearization key only", cmd_evaluate},
    {"decrypt", "client: decrypt the encrypted logits: class and logits per image, accuracy", cmd_decrypt},
    {"predict", "encrypted inference on test images: keygen, encrypt, evaluate, decrypt, compare", cmd_predict},
    {"serve", "HTTP service: evaluate clients' encrypted batches with their evaluation keys only", cmd_serve},
    {"logreg", "train a logistic regression on encrypted data (client + server in one process)", cmd_logreg},
    {"train-encrypted", "train on encrypted data to convergence, with bootstrapping and checkpoints",
     cmd_train_encrypted},
    {"bench", "benchmarks (`cryptodl bench ckks`: CKKS operation timings)", cmd_bench},
};

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: cryptodl <command> [options]\n"
            "       cryptodl --help | --version\n\n"
            "Deep neural networks on homomorphically encrypted data (RNS-CKKS).\n\n"
            "commands:\n");
    int width = 8;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        width = (int)strlen(commands[i].name) > width ? (int)strlen(commands[i].name) : width;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-*s %s\n", width, commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'cryptodl <command> --help' for the options of a command.\n"
                 "Environment: CDL_ISA=portable|avx2|avx512 forces an NTT kernel; "
                 "OMP_NUM_THREADS sets threads.\n");
}

/* Ciphertexts are megabytes each and an evaluation allocates and frees
 * thousands of them. With glibc's defaults every one above the (adaptive)
 * mmap threshold is a fresh mapping whose pages the kernel faults in and
 * zeroes, and freed heap memory is returned and faulted in again: about a
 * sixth of the CPU time of a CIFAR-10 ResNet-9 evaluation (30 s of system
 * time in 130 s). Keeping blocks up to 32 MB (glibc's largest mmap threshold)
 * in the heap makes that 18 s and the evaluation 11% faster, for the same
 * peak memory (docs/inference.md). Trimming is off altogether (-1, see
 * mallopt(3)): a layer frees gigabytes at once, more than any finite
 * threshold mallopt accepts (an int), and the next layer faulted them in
 * again. The process policy of the tool, not of the library. */
static void tune_allocator(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, -1);
#endif
}

int main(int argc, char **argv)
{
    tune_allocator();
    if (argc < 2) {
        print_help(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        print_help(stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        printf("cryptodl %s\n", cdl_version());
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "cryptodl: unknown command '%s'\n\n", name);
    print_help(stderr);
    return CLI_EXIT_USAGE;
}
