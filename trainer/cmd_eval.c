/* cmd_eval.c: placeholder until this subcommand lands; it only reports that. */
#include <stdio.h>

#include "trainer/commands.h"

int cmd_eval(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "googlenet: 'eval' is not available in this build yet\n");
    return EXIT_FAIL;
}
