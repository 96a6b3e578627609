/* cmd_bench.c: `cryptodl bench` (not built yet: this placeholder says so). */
#include "cli.h"

int cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "cryptodl bench: not available in this build yet\n");
    return CLI_EXIT_FAILURE;
}
