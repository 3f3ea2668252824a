/* cmd_bench_loader.c: placeholder until this subcommand lands; it only reports that. */
#include <stdio.h>

#include "trainer/commands.h"

int cmd_bench_loader(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "googlenet: 'bench_loader' is not available in this build yet\n");
    return EXIT_FAIL;
}
