/* fuzz_index_tree.h: the fixed class tree the index-cache target and the
 * seed generator share. A cache is only read when its stamps match the tree
 * (root path, directory mtimes), so both must build exactly this tree. */
#ifndef TESTS_FUZZ_FUZZ_INDEX_TREE_H
#define TESTS_FUZZ_FUZZ_INDEX_TREE_H

#define FUZZ_INDEX_TREE "/tmp/googlenet-fuzz-index-tree"

/* Creates (or restores) FUZZ_INDEX_TREE: classes c0 (two files) and c1 (one
 * file, and one in a subdirectory), every directory's mtime set to a fixed
 * time. The tree is removed when the process exits. */
void fuzz_index_tree_make(void);

#endif
