/* fuzz_dataset.c: the dataset properties of fuzz_dataset.h. */
#include "tests/fuzz/fuzz_dataset.h"

#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"

#define FUZZ_READ_ITEMS 8

void fuzz_dataset_check(const Dataset *ds)
{
    size_t n = dataset_size(ds);
    int classes = dataset_num_classes(ds);
    FUZZ_CHECK(n > 0 && classes > 0, "a dataset of %zu items and %d classes", n, classes);
    for (int c = 0; c < classes; c++) {
        const char *name = dataset_class_name(ds, c);
        FUZZ_CHECK(name[0] && !strpbrk(name, "\n\r"), "class %d is named '%s'", c, name);
    }
    for (size_t i = 0; i < n; i++) {
        int label = dataset_label(ds, i);
        FUZZ_CHECK(label >= 0 && label < classes, "item %zu has label %d of %d classes", i, label, classes);
        FUZZ_CHECK(dataset_item_name(ds, i)[0], "item %zu has no name", i);
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    char err[512];
    FUZZ_CHECK(dataset_serialize(ds, &buf, &len, err, sizeof err) == 0, "serialise: %s", err);
    Dataset *back = dataset_deserialize(buf, len, err, sizeof err);
    FUZZ_CHECK(back, "the serialised index does not read back: %s", err);
    FUZZ_CHECK(dataset_size(back) == n && dataset_num_classes(back) == classes, "the index read back differs");
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(dataset_label(back, i) == dataset_label(ds, i) &&
                       strcmp(dataset_item_name(back, i), dataset_item_name(ds, i)) == 0,
                   "item %zu read back differs", i);
    dataset_free(back);
    free(buf);
    buf = NULL;
    for (size_t i = 0; i < n && i < FUZZ_READ_ITEMS; i++) {
        size_t got = 0;
        if (dataset_read(ds, i, &buf, &cap, &got, err, sizeof err) == 0) FUZZ_CHECK(got > 0 && got <= cap, "read %zu", got);
        else FUZZ_CHECK(err[0], "dataset_read failed without a reason");
    }
    free(buf);
}

Dataset *fuzz_dataset_open(const DatasetOptions *opt)
{
    char err[1024] = "";
    Dataset *ds = dataset_open(opt, err, sizeof err);
    if (!ds) {
        FUZZ_CHECK(err[0], "dataset_open failed without a reason");
        return NULL;
    }
    fuzz_dataset_check(ds);
    return ds;
}
