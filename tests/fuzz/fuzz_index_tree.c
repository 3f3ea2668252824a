/* fuzz_index_tree.c: the fixed tree of fuzz_index_tree.h. */
#include "tests/fuzz/fuzz_index_tree.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"

static pid_t tree_owner;

static void tree_remove(void)
{
    if (getpid() == tree_owner) fuzz_rmtree(FUZZ_INDEX_TREE);
}

void fuzz_index_tree_make(void)
{
    if (!tree_owner) {
        tree_owner = getpid();
        atexit(tree_remove);
    }
    static const char *const files[] = {"c0/a.png", "c0/b.png", "c1/c.png", "c1/sub/d.png"};
    static const char *const dirs[] = {"c1/sub", "c0", "c1", ""}; /* children before parents */
    char p[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", FUZZ_INDEX_TREE, dirs[i]);
        fuzz_mkdirs(p);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", FUZZ_INDEX_TREE, files[i]);
        struct stat st;
        if (stat(p, &st) != 0) fuzz_write(p, "x", 1);
    }
    const struct timespec t[2] = {{1600000000, 123456789}, {1600000000, 123456789}};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", FUZZ_INDEX_TREE, dirs[i]);
        utimensat(AT_FDCWD, p, t, 0);
    }
}
