/* cmd_eval.c: `cryptodl eval` (not built yet: this placeholder says so). */
#include "cli.h"

int cmd_eval(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "cryptodl eval: not available in this build yet\n");
    return CLI_EXIT_FAILURE;
}
