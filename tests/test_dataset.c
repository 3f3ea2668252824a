/* test_dataset.c: the dataset index: class trees with and without a classes
 * file (plain ids and LOC_synset_mapping.txt lines), flat directories with each
 * kind of label file (ILSVRC2012 ground truth, "name label", LOC_val_solution.csv),
 * the one-line errors, serialisation, and the index cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataloader/dataset.h"
#include "tests/test_loader_util.h"

static Dataset *open_ok(const char *path, const char *classes, const char *labels, const char *cache)
{
    DatasetOptions o = {path, classes, labels, cache};
    char err[512] = "";
    Dataset *ds = dataset_open(&o, err, sizeof err);
    if (!ds) fprintf(stderr, "dataset_open(%s): %s\n", path, err);
    assert_non_null(ds);
    return ds;
}

static void open_fails(const char *path, const char *classes, const char *labels, const char *needle)
{
    DatasetOptions o = {path, classes, labels, NULL};
    char err[512] = "";
    Dataset *ds = dataset_open(&o, err, sizeof err);
    assert_null(ds);
    if (!strstr(err, needle)) fprintf(stderr, "message '%s' lacks '%s'\n", err, needle);
    assert_non_null(strstr(err, needle));
    assert_null(strchr(err, '\n')); /* one line */
}

/* root/{b,a,c}/ with files, in an order that is not the sorted one. */
static char *make_tree(void)
{
    char *root = tu_tmpdir("tree");
    char p[512];
    const char *classes[3] = {"b", "a", "c"};
    for (int c = 0; c < 3; c++) {
        tu_mkdir("%s/%s", root, classes[c]);
        for (int k = 2; k >= 0; k--) {
            snprintf(p, sizeof p, "%s/%s/%s_%d.JPEG", root, classes[c], classes[c], k);
            tu_write_text(p, "%s%d", classes[c], k);
        }
    }
    tu_mkdir("%s/a/sub", root);
    snprintf(p, sizeof p, "%s/a/sub/deep.JPEG", root);
    tu_write_text(p, "deep");
    snprintf(p, sizeof p, "%s/a/.hidden", root);
    tu_write_text(p, "x");
    snprintf(p, sizeof p, "%s/README.txt", root); /* files at the root are not items */
    tu_write_text(p, "x");
    return root;
}

static void test_tree_sorted(void **state)
{
    (void)state;
    char *root = make_tree();
    Dataset *ds = open_ok(root, NULL, NULL, NULL);
    assert_int_equal(dataset_kind(ds), DATASET_TREE);
    assert_int_equal(dataset_num_classes(ds), 3);
    assert_string_equal(dataset_class_name(ds, 0), "a");
    assert_string_equal(dataset_class_name(ds, 2), "c");
    assert_int_equal(dataset_size(ds), 10);
    const char *want[10] = {"a/a_0.JPEG", "a/a_1.JPEG", "a/a_2.JPEG", "a/sub/deep.JPEG", "b/b_0.JPEG",
                            "b/b_1.JPEG", "b/b_2.JPEG", "c/c_0.JPEG", "c/c_1.JPEG", "c/c_2.JPEG"};
    const int labels[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
    for (int i = 0; i < 10; i++) {
        assert_string_equal(dataset_item_name(ds, i), want[i]);
        assert_int_equal(dataset_label(ds, i), labels[i]);
    }
    uint8_t *buf = NULL;
    size_t cap = 0, len = 0;
    char err[256];
    assert_int_equal(dataset_read(ds, 5, &buf, &cap, &len, err, sizeof err), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(buf, "b1", 2);
    /* a file that vanished after indexing, and one that became empty */
    char p[512];
    snprintf(p, sizeof p, "%s/c/c_1.JPEG", root);
    unlink(p);
    assert_int_equal(dataset_read(ds, 8, &buf, &cap, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    snprintf(p, sizeof p, "%s/c/c_2.JPEG", root);
    tu_write_file(p, "", 0);
    assert_int_equal(dataset_read(ds, 9, &buf, &cap, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "zero bytes"));
    free(buf);
    dataset_free(ds);
    tu_rmtree(root);
}

static void test_classes_file(void **state)
{
    (void)state;
    char *root = make_tree();
    char cls[512], syn[512], bad[512], dup[512];
    snprintf(cls, sizeof cls, "%s.classes", root);
    snprintf(syn, sizeof syn, "%s.synsets", root);
    snprintf(bad, sizeof bad, "%s.bad", root);
    snprintf(dup, sizeof dup, "%s.dup", root);
    tu_write_text(cls, "c\n\nb\nextra\na\n");
    tu_write_text(syn, "c cat, house cat\r\nb bird\na ant, emmet, pismire\n");
    tu_write_text(bad, "a\nb\n");
    tu_write_text(dup, "a\nb\nc\nb\n");
    Dataset *ds = open_ok(root, cls, NULL, NULL);
    assert_int_equal(dataset_num_classes(ds), 4); /* a class without a directory is allowed */
    assert_string_equal(dataset_class_name(ds, 0), "c");
    assert_string_equal(dataset_class_name(ds, 2), "extra");
    assert_string_equal(dataset_item_name(ds, 0), "a/a_0.JPEG"); /* items stay in directory order */
    assert_int_equal(dataset_label(ds, 0), 3);
    assert_int_equal(dataset_label(ds, 4), 1);
    assert_int_equal(dataset_label(ds, 9), 0);
    dataset_free(ds);
    ds = open_ok(root, syn, NULL, NULL);
    assert_int_equal(dataset_num_classes(ds), 3);
    assert_string_equal(dataset_class_name(ds, 1), "b");
    assert_int_equal(dataset_label(ds, 0), 2);
    dataset_free(ds);
    open_fails(root, bad, NULL, "not listed in the classes file");
    open_fails(root, dup, NULL, "twice");
    unlink(cls), unlink(syn), unlink(bad), unlink(dup);
    tu_rmtree(root);
}

static char *make_flat(void)
{
    char *root = tu_tmpdir("flat");
    char p[512];
    const char *names[3] = {"ILSVRC2012_val_00000003.JPEG", "ILSVRC2012_val_00000001.JPEG",
                            "ILSVRC2012_val_00000002.JPEG"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", root, names[i]);
        tu_write_text(p, "img%d", i);
    }
    return root;
}

static void test_flat_ground_truth(void **state)
{
    (void)state;
    char *root = make_flat();
    char gt[512], short_gt[512];
    snprintf(gt, sizeof gt, "%s.gt", root);
    snprintf(short_gt, sizeof short_gt, "%s.short", root);
    tu_write_text(gt, "490\n361\n1\n"); /* 1-based, sorted file-name order */
    tu_write_text(short_gt, "490\n361\n");
    Dataset *ds = open_ok(root, NULL, gt, NULL);
    assert_int_equal(dataset_kind(ds), DATASET_FLAT);
    assert_int_equal(dataset_size(ds), 3);
    assert_string_equal(dataset_item_name(ds, 0), "ILSVRC2012_val_00000001.JPEG");
    assert_int_equal(dataset_label(ds, 0), 489);
    assert_int_equal(dataset_label(ds, 1), 360);
    assert_int_equal(dataset_label(ds, 2), 0);
    assert_int_equal(dataset_num_classes(ds), 490);
    dataset_free(ds);
    open_fails(root, NULL, short_gt, "has 2 labels but");
    tu_write_text(short_gt, "0\n1\n2\n");
    open_fails(root, NULL, short_gt, "1-based");
    unlink(gt), unlink(short_gt);
    tu_rmtree(root);
}

static void test_flat_name_label(void **state)
{
    (void)state;
    char *root = make_flat();
    char lf[512], cls[512];
    snprintf(lf, sizeof lf, "%s.txt", root);
    snprintf(cls, sizeof cls, "%s.cls", root);
    tu_write_text(lf, "ILSVRC2012_val_00000002.JPEG 7\nILSVRC2012_val_00000001.JPEG 0\n");
    Dataset *ds = open_ok(root, NULL, lf, NULL);
    assert_int_equal(dataset_size(ds), 2); /* only the labelled files */
    assert_string_equal(dataset_item_name(ds, 0), "ILSVRC2012_val_00000001.JPEG");
    assert_int_equal(dataset_label(ds, 0), 0);
    assert_int_equal(dataset_label(ds, 1), 7);
    assert_int_equal(dataset_num_classes(ds), 8);
    dataset_free(ds);
    /* class ids as labels, through a classes file */
    tu_write_text(cls, "n02\nn01\nn03\n");
    tu_write_text(lf, "ILSVRC2012_val_00000003.JPEG n03\nILSVRC2012_val_00000001.JPEG n01\n");
    ds = open_ok(root, cls, lf, NULL);
    assert_int_equal(dataset_num_classes(ds), 3);
    assert_int_equal(dataset_label(ds, 0), 1);
    assert_int_equal(dataset_label(ds, 1), 2);
    dataset_free(ds);
    tu_write_text(lf, "ILSVRC2012_val_00000009.JPEG 1\n");
    open_fails(root, NULL, lf, "which is not a file in");
    tu_write_text(lf, "ILSVRC2012_val_00000001.JPEG n09\n");
    open_fails(root, cls, lf, "not in the classes file");
    unlink(lf), unlink(cls);
    tu_rmtree(root);
}

static void test_flat_loc_csv(void **state)
{
    (void)state;
    char *root = make_flat();
    char csv[512], cls[512];
    snprintf(csv, sizeof csv, "%s.csv", root);
    snprintf(cls, sizeof cls, "%s.cls", root);
    tu_write_text(csv,
                  "ImageId,PredictionString\r\n"
                  "ILSVRC2012_val_00000002,n01751748 12 34 56 78 n01751748 1 2 3 4\r\n"
                  "ILSVRC2012_val_00000001,n01440764 1 1 9 9\r\n"
                  "ILSVRC2012_val_00000003,n09999999 0 0 1 1\r\n");
    /* without a classes file the sorted set of ids is the class list */
    Dataset *ds = open_ok(root, NULL, csv, NULL);
    assert_int_equal(dataset_size(ds), 3);
    assert_int_equal(dataset_num_classes(ds), 3);
    assert_string_equal(dataset_class_name(ds, 0), "n01440764");
    assert_string_equal(dataset_item_name(ds, 0), "ILSVRC2012_val_00000001.JPEG");
    assert_int_equal(dataset_label(ds, 0), 0);
    assert_int_equal(dataset_label(ds, 1), 1);
    assert_int_equal(dataset_label(ds, 2), 2);
    dataset_free(ds);
    tu_write_text(cls, "n09999999 z\nn01751748 y\nn01440764 x\nn00000001 w\n");
    ds = open_ok(root, cls, csv, NULL);
    assert_int_equal(dataset_num_classes(ds), 4);
    assert_int_equal(dataset_label(ds, 0), 2);
    assert_int_equal(dataset_label(ds, 1), 1);
    assert_int_equal(dataset_label(ds, 2), 0);
    dataset_free(ds);
    unlink(csv), unlink(cls);
    tu_rmtree(root);
}

static void test_open_errors(void **state)
{
    (void)state;
    open_fails("/nonexistent/imagenet", NULL, NULL, "No such file");
    open_fails("", NULL, NULL, "--data");
    char *root = tu_tmpdir("empty");
    open_fails(root, NULL, NULL, "nothing in it");
    tu_mkdir("%s/cls", root); /* a class directory without images */
    open_fails(root, NULL, NULL, "empty");
    char p[512];
    snprintf(p, sizeof p, "%s/x.JPEG", root);
    tu_write_text(p, "x");
    open_fails(p, NULL, NULL, "not a directory");
    tu_rmtree(root);
    root = make_flat();
    open_fails(root, NULL, NULL, "--labels");
    open_fails(root, NULL, "/nonexistent/labels.txt", "cannot open");
    tu_rmtree(root);
}

static void assert_same(const Dataset *a, const Dataset *b)
{
    assert_int_equal(dataset_size(a), dataset_size(b));
    assert_int_equal(dataset_num_classes(a), dataset_num_classes(b));
    assert_int_equal(dataset_kind(a), dataset_kind(b));
    for (int c = 0; c < dataset_num_classes(a); c++) assert_string_equal(dataset_class_name(a, c), dataset_class_name(b, c));
    for (size_t i = 0; i < dataset_size(a); i++) {
        assert_string_equal(dataset_item_name(a, i), dataset_item_name(b, i));
        assert_int_equal(dataset_label(a, i), dataset_label(b, i));
    }
}

static void test_serialize(void **state)
{
    (void)state;
    char *root = make_tree();
    Dataset *ds = open_ok(root, NULL, NULL, NULL);
    uint8_t *buf;
    size_t len;
    char err[256];
    assert_int_equal(dataset_serialize(ds, &buf, &len, err, sizeof err), 0);
    Dataset *copy = dataset_deserialize(buf, len, err, sizeof err);
    assert_non_null(copy);
    assert_same(ds, copy);
    uint8_t *bytes = NULL;
    size_t cap = 0, n = 0;
    assert_int_equal(dataset_read(copy, 0, &bytes, &cap, &n, err, sizeof err), 0); /* reads from the same root */
    assert_memory_equal(bytes, "a0", 2);
    free(bytes);
    dataset_free(copy);
    /* every single-byte corruption and every truncation is refused, never trusted */
    for (size_t i = 0; i < len; i += 7) {
        buf[i] ^= 0x41;
        Dataset *bad = dataset_deserialize(buf, len, err, sizeof err);
        assert_null(bad);
        buf[i] ^= 0x41;
    }
    for (size_t cut = 0; cut < len; cut += 5) assert_null(dataset_deserialize(buf, cut, err, sizeof err));
    free(buf);
    dataset_free(ds);
    tu_rmtree(root);
}

static void test_cache(void **state)
{
    (void)state;
    char *root = make_tree();
    char cache[512], cls[512], p[512];
    snprintf(cache, sizeof cache, "%s.index", root);
    snprintf(cls, sizeof cls, "%s.cls", root);
    Dataset *a = open_ok(root, NULL, NULL, cache);
    assert_false(dataset_from_cache(a));
    Dataset *b = open_ok(root, NULL, NULL, cache);
    assert_true(dataset_from_cache(b));
    assert_same(a, b);
    dataset_free(b);
    /* a new file changes its directory: the cache is stale and rebuilt */
    snprintf(p, sizeof p, "%s/b/b_9.JPEG", root);
    tu_write_text(p, "new");
    b = open_ok(root, NULL, NULL, cache);
    assert_false(dataset_from_cache(b));
    assert_int_equal(dataset_size(b), dataset_size(a) + 1);
    dataset_free(b);
    snprintf(p, sizeof p, "%s/a/sub/deep.JPEG", root); /* also in a nested directory */
    unlink(p);
    b = open_ok(root, NULL, NULL, cache);
    assert_false(dataset_from_cache(b));
    assert_int_equal(dataset_size(b), dataset_size(a));
    dataset_free(b);
    /* other options than the cache was built with: rescan */
    tu_write_text(cls, "c\nb\na\n");
    b = open_ok(root, cls, NULL, cache);
    assert_false(dataset_from_cache(b));
    assert_int_equal(dataset_label(b, 0), 2);
    dataset_free(b);
    b = open_ok(root, cls, NULL, cache);
    assert_true(dataset_from_cache(b));
    assert_int_equal(dataset_label(b, 0), 2);
    dataset_free(b);
    /* a corrupt cache is ignored, not trusted */
    tu_write_text(cache, "GNETCACH garbage");
    b = open_ok(root, cls, NULL, cache);
    assert_false(dataset_from_cache(b));
    dataset_free(b);
    dataset_free(a);
    unlink(cache), unlink(cls);
    tu_rmtree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_sorted),
        cmocka_unit_test(test_classes_file),
        cmocka_unit_test(test_flat_ground_truth),
        cmocka_unit_test(test_flat_name_label),
        cmocka_unit_test(test_flat_loc_csv),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_serialize),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
