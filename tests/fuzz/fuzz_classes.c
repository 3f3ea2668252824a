/* fuzz_classes.c: libFuzzer target for the classes-file parser
 * (--classes-file: one class id per line, LOC_synset_mapping.txt lines
 * work). The input is the classes file of a fixed class tree of three
 * directories, and of a fixed flat directory whose "name class-id" label file
 * looks its ids up in it. Properties: those of fuzz_dataset.h; in the tree,
 * every directory's items carry the label the file gives that directory.
 * Seeds: tests/fuzz/corpus/classes. */
#include <stdio.h>
#include <string.h>

#include "tests/fuzz/fuzz_dataset.h"
#include "tests/fuzz/fuzz_util.h"

static const char *const dirs[] = {"7", "n01440764", "n01443537"};
static char tree[4096], flat[4096], labels[4096], classes[4096];

static void setup(void)
{
    char p[4200];
    fuzz_path(tree, sizeof tree, "tree");
    for (int d = 0; d < 3; d++) {
        snprintf(p, sizeof p, "%s/%s", tree, dirs[d]);
        fuzz_mkdirs(p);
        snprintf(p, sizeof p, "%s/%s/img.png", tree, dirs[d]);
        fuzz_write(p, "x", 1);
    }
    fuzz_path(flat, sizeof flat, "flat");
    fuzz_mkdirs(flat);
    snprintf(p, sizeof p, "%s/v1.png", flat);
    fuzz_write(p, "x", 1);
    snprintf(p, sizeof p, "%s/v2.png", flat);
    fuzz_write(p, "x", 1);
    fuzz_path(labels, sizeof labels, "labels.txt");
    fuzz_write(labels, "v1.png n01443537\nv2.png 7\n", 26);
    fuzz_path(classes, sizeof classes, "classes.txt");
}

/* The label the classes file gives to name: its line among the ids. */
static int label_in_file(const Dataset *ds, const char *name)
{
    for (int c = 0; c < dataset_num_classes(ds); c++)
        if (strcmp(dataset_class_name(ds, c), name) == 0) return c;
    return -1;
}

void fuzz_target(const uint8_t *data, size_t len)
{
    if (!tree[0]) setup();
    fuzz_write(classes, data, len);
    DatasetOptions o = {0};
    o.path = tree;
    o.classes_file = classes;
    Dataset *ds = fuzz_dataset_open(&o);
    if (ds) {
        for (size_t i = 0; i < dataset_size(ds); i++) {
            char dir[64];
            snprintf(dir, sizeof dir, "%.*s", (int)strcspn(dataset_item_name(ds, i), "/"), dataset_item_name(ds, i));
            FUZZ_CHECK(dataset_label(ds, i) == label_in_file(ds, dir), "%s has label %d, its class %d",
                       dataset_item_name(ds, i), dataset_label(ds, i), label_in_file(ds, dir));
        }
        dataset_free(ds);
    }
    o.path = flat;
    o.labels_file = labels;
    ds = fuzz_dataset_open(&o);
    dataset_free(ds);
}
