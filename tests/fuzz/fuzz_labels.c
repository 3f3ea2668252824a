/* fuzz_labels.c: libFuzzer target for the label-file parser of a flat
 * validation directory (--val-labels, --labels): ILSVRC2012 ground truth,
 * "name label" lines, LOC_val_solution.csv. The input is the label file of a
 * fixed directory of five files, read once alone and once with a classes file
 * of three synsets (class ids are then looked up in it). Properties: those of
 * fuzz_dataset.h, and every item is one of the directory's files.
 * Seeds: tests/fuzz/corpus/labels. */
#include <stdio.h>
#include <string.h>

#include "tests/fuzz/fuzz_dataset.h"
#include "tests/fuzz/fuzz_util.h"

static const char *const files[] = {"ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG",
                                    "ILSVRC2012_val_00000003.JPEG", "a.png", "b c.png"};
static char flat[4096], labels[4096], classes[4096];

static void setup(void)
{
    char p[4200];
    fuzz_path(flat, sizeof flat, "flat");
    fuzz_mkdirs(flat);
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", flat, files[i]);
        fuzz_write(p, "x", 1);
    }
    fuzz_path(labels, sizeof labels, "labels.txt");
    fuzz_path(classes, sizeof classes, "synsets.txt");
    const char *syn = "n01440764 tench, Tinca tinca\nn01443537 goldfish\nn01484850 great white shark\n";
    fuzz_write(classes, syn, strlen(syn));
}

void fuzz_target(const uint8_t *data, size_t len)
{
    if (!flat[0]) setup();
    fuzz_write(labels, data, len);
    for (int with_classes = 0; with_classes < 2; with_classes++) {
        DatasetOptions o = {0};
        o.path = flat;
        o.labels_file = labels;
        o.classes_file = with_classes ? classes : NULL;
        Dataset *ds = fuzz_dataset_open(&o);
        if (!ds) continue;
        FUZZ_CHECK(dataset_kind(ds) == DATASET_FLAT, "kind %d", (int)dataset_kind(ds));
        for (size_t i = 0; i < dataset_size(ds); i++) {
            int known = 0;
            for (size_t f = 0; f < sizeof files / sizeof *files; f++) known |= !strcmp(dataset_item_name(ds, i), files[f]);
            FUZZ_CHECK(known, "item '%s' is not a file of the directory", dataset_item_name(ds, i));
        }
        if (with_classes) FUZZ_CHECK(dataset_num_classes(ds) == 3, "%d classes", dataset_num_classes(ds));
        dataset_free(ds);
    }
}
