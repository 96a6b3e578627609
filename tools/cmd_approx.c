/* cmd_approx.c: `cryptodl approx` (not built yet: this placeholder says so). */
#include "cli.h"

int cmd_approx(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "cryptodl approx: not available in this build yet\n");
    return CLI_EXIT_FAILURE;
}
