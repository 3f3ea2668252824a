/* cmd_ckpt.c: placeholder until this subcommand lands; it only reports that. */
#include <stdio.h>

#include "trainer/commands.h"

int cmd_ckpt(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "googlenet: 'ckpt' is not available in this build yet\n");
    return EXIT_FAIL;
}
