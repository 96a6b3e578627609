/* cmd_info.c: `cryptodl info` (not built yet: this placeholder says so). */
#include "cli.h"

int cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "cryptodl info: not available in this build yet\n");
    return CLI_EXIT_FAILURE;
}
