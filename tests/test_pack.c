/* test_pack.c: the shard round trip: pack a tree (and a flat directory) into
 * shards, read them back as a dataset with the same items, labels, names,
 * classes and bytes, also after serialising the index; and the reader's
 * checks: corrupt data, a corrupt or truncated index, a wrong magic, packing
 * over existing shards, unreadable sources left out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataloader/dataset.h"
#include "dataloader/shard.h"
#include "tests/test_loader_util.h"

static Dataset *open_path(const char *path, const char *labels, char *err, size_t errlen)
{
    DatasetOptions o = {path, NULL, labels, NULL};
    return dataset_open(&o, err, errlen);
}

static char *make_tree(int classes, int per_class)
{
    char *root = tu_tmpdir("packsrc");
    char p[512];
    for (int c = 0; c < classes; c++) {
        tu_mkdir("%s/n%08d", root, c);
        for (int k = 0; k < per_class; k++) {
            snprintf(p, sizeof p, "%s/n%08d/img_%d.JPEG", root, c, k);
            if ((c + k) % 3 == 0) {
                tu_write_texture_jpeg(p, 20 + k, 16 + c, (unsigned)(c * 100 + k));
            } else {
                tu_write_text(p, "bytes of class %d item %d %s", c, k, k % 2 ? "odd" : "even-and-longer");
            }
        }
    }
    return root;
}

static void assert_same_items(const Dataset *a, const Dataset *b)
{
    assert_int_equal(dataset_size(a), dataset_size(b));
    assert_int_equal(dataset_num_classes(a), dataset_num_classes(b));
    for (int c = 0; c < dataset_num_classes(a); c++) assert_string_equal(dataset_class_name(a, c), dataset_class_name(b, c));
    uint8_t *x = NULL, *y = NULL;
    size_t cx = 0, cy = 0, lx, ly;
    char err[256];
    for (size_t i = 0; i < dataset_size(a); i++) {
        assert_string_equal(dataset_item_name(a, i), dataset_item_name(b, i));
        assert_int_equal(dataset_label(a, i), dataset_label(b, i));
        assert_int_equal(dataset_read(a, i, &x, &cx, &lx, err, sizeof err), 0);
        assert_int_equal(dataset_read(b, i, &y, &cy, &ly, err, sizeof err), 0);
        assert_int_equal(lx, ly);
        assert_memory_equal(x, y, lx);
    }
    free(x);
    free(y);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *src = make_tree(4, 5);
    char *out = tu_tmpdir("shards");
    char err[512];
    Dataset *a = open_path(src, NULL, err, sizeof err);
    assert_non_null(a);
    ShardPackStats st;
    assert_int_equal(shard_pack(a, out, 3, &st, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(st.items, 20);
    assert_int_equal(st.skipped, 0);
    Dataset *b = open_path(out, NULL, err, sizeof err);
    if (!b) fprintf(stderr, "%s\n", err);
    assert_non_null(b);
    assert_int_equal(dataset_kind(b), DATASET_SHARDS);
    assert_same_items(a, b);
    /* the serialised index of a shard dataset reopens the shard files */
    uint8_t *buf;
    size_t len;
    assert_int_equal(dataset_serialize(b, &buf, &len, err, sizeof err), 0);
    Dataset *c = dataset_deserialize(buf, len, err, sizeof err);
    assert_non_null(c);
    assert_same_items(a, c);
    free(buf);
    dataset_free(c);
    dataset_free(b);
    /* packing again into the same directory would mix two packings */
    assert_int_equal(shard_pack(a, out, 2, &st, NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "already holds shard files"));
    assert_int_equal(shard_pack(a, "/tmp", 0, &st, NULL, NULL, err, sizeof err), -1);
    dataset_free(a);
    tu_rmtree(out);
    tu_rmtree(src);
}

static void test_flat_and_skipped(void **state)
{
    (void)state;
    char *src = tu_tmpdir("packflat");
    char p[512], lf[512];
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/v%d.JPEG", src, i);
        tu_write_text(p, "v%d", i);
    }
    snprintf(lf, sizeof lf, "%s.labels", src);
    tu_write_text(lf, "3\n1\n4\n1\n5\n");
    char err[512];
    Dataset *a = open_path(src, lf, err, sizeof err);
    assert_non_null(a);
    snprintf(p, sizeof p, "%s/v2.JPEG", src);
    unlink(p); /* unreadable by the time it is packed */
    char *out = tu_tmpdir("shards");
    ShardPackStats st;
    assert_int_equal(shard_pack(a, out, 2, &st, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(st.items, 4);
    assert_int_equal(st.skipped, 1);
    assert_non_null(strstr(st.first_skipped, "v2.JPEG"));
    Dataset *b = open_path(out, NULL, err, sizeof err);
    assert_non_null(b);
    assert_int_equal(dataset_size(b), 4);
    assert_string_equal(dataset_item_name(b, 2), "v3.JPEG");
    assert_int_equal(dataset_label(b, 2), 0);
    assert_int_equal(dataset_label(b, 3), 4);
    dataset_free(b);
    dataset_free(a);
    unlink(lf);
    tu_rmtree(out);
    tu_rmtree(src);
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    if (off < 0) {
        fseek(f, 0, SEEK_END);
        off += ftell(f);
    }
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
}

static void test_corruption(void **state)
{
    (void)state;
    char *src = make_tree(2, 4);
    char *out = tu_tmpdir("shards");
    char err[512], shard[600];
    Dataset *a = open_path(src, NULL, err, sizeof err);
    ShardPackStats st;
    assert_int_equal(shard_pack(a, out, 1, &st, NULL, NULL, err, sizeof err), 0);
    snprintf(shard, sizeof shard, "%s/shard-00000-of-00001.gshard", out);

    /* a flipped byte in an item: that item fails its checksum, the others read */
    flip_byte(shard, SHARD_HEADER_BYTES + 3);
    Dataset *b = open_path(out, NULL, err, sizeof err);
    assert_non_null(b);
    uint8_t *buf = NULL;
    size_t cap = 0, len;
    assert_int_equal(dataset_read(b, 0, &buf, &cap, &len, err, sizeof err), -1);
    assert_non_null(strstr(err, "checksum"));
    assert_int_equal(dataset_read(b, 1, &buf, &cap, &len, err, sizeof err), 0);
    dataset_free(b);
    flip_byte(shard, SHARD_HEADER_BYTES + 3);

    /* a flipped byte in the index: the shard is refused */
    flip_byte(shard, -5);
    assert_null(open_path(out, NULL, err, sizeof err));
    assert_non_null(strstr(err, "checksum"));
    flip_byte(shard, -5);

    /* a truncated shard */
    FILE *f = fopen(shard, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    assert_int_equal(truncate(shard, size - 10), 0);
    assert_null(open_path(out, NULL, err, sizeof err));
    assert_non_null(strstr(err, "truncated"));
    assert_int_equal(truncate(shard, 10), 0);
    assert_null(open_path(out, NULL, err, sizeof err));
    assert_non_null(strstr(err, "shorter than its"));

    /* not a shard at all */
    tu_write_text(shard, "this is not a shard file, but it is long enough to hold a header of 64 bytes.....");
    assert_null(open_path(out, NULL, err, sizeof err));
    assert_non_null(strstr(err, "bad magic"));
    free(buf);
    dataset_free(a);
    tu_rmtree(out);
    tu_rmtree(src);
}

static void test_crc32c(void **state)
{
    (void)state;
    /* the standard check value of CRC-32C */
    assert_int_equal(shard_crc32c(0, "123456789", 9), 0xe3069283u);
    /* incremental equals one pass */
    uint32_t c = shard_crc32c(0, "1234", 4);
    assert_int_equal(shard_crc32c(c, "56789", 5), 0xe3069283u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_flat_and_skipped),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_crc32c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
