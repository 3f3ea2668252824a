/* cmd_pack.c: placeholder until this subcommand lands; it only reports that. */
#include <stdio.h>

#include "trainer/commands.h"

int cmd_pack(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "googlenet: 'pack' is not available in this build yet\n");
    return EXIT_FAIL;
}
