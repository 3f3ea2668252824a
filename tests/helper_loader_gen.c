/* helper_loader_gen.c: writes a small ImageNet-layout tree of textured JPEGs
 * (and, with --bad, a class of broken files) for the shell tests of `pack`
 * and `bench-loader`. Usage: helper_loader_gen DIR CLASSES PER_CLASS [--bad] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test_loader_util.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: helper_loader_gen DIR CLASSES PER_CLASS [--bad]\n");
        return 2;
    }
    const char *dir = argv[1];
    int classes = atoi(argv[2]), per = atoi(argv[3]), bad = argc > 4 && strcmp(argv[4], "--bad") == 0;
    char p[1024];
    tu_mkdir("%s", dir);
    for (int c = 0; c < classes; c++) {
        tu_mkdir("%s/n%08d", dir, c);
        for (int k = 0; k < per; k++) {
            snprintf(p, sizeof p, "%s/n%08d/n%08d_%d.JPEG", dir, c, c, k);
            tu_write_texture_jpeg(p, 60 + 7 * k, 45 + 5 * c, (unsigned)(c * 1000 + k));
        }
    }
    if (bad) {
        tu_mkdir("%s/zz_bad", dir);
        snprintf(p, sizeof p, "%s/zz_bad/empty.JPEG", dir);
        tu_write_file(p, "", 0);
        snprintf(p, sizeof p, "%s/zz_bad/readme.JPEG", dir);
        tu_write_text(p, "this is text, not an image\n");
    }
    return 0;
}
