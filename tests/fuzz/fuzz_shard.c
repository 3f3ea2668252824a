/* fuzz_shard.c: libFuzzer target for the shard reader (a --data directory
 * written by `googlenet pack`). The input is a shard file; it is read as the
 * only shard of a directory, and as both shards of a two-shard directory
 * (the second shard's classes are checked against the first's). The index
 * and every item carry a CRC-32C that mutations break, so each input also
 * runs with them recomputed where the index can be walked. Properties: those
 * of fuzz_dataset.h, which reads the first items (their CRCs checked).
 * Seeds: tests/fuzz/corpus/shard (shards that `pack` wrote of test images). */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dataloader/le.h"
#include "dataloader/shard.h"
#include "tests/fuzz/fuzz_dataset.h"
#include "tests/fuzz/fuzz_util.h"

static char one[4096], two[4096];

/* Recomputes the CRC of every item the index lists inside the file, then the
 * index's own. */
static void fix_crcs(uint8_t *d, size_t len)
{
    if (len < SHARD_HEADER_BYTES) return;
    uint64_t count = le_get64(d + 16), ioff = le_get64(d + 32), isize = le_get64(d + 40);
    uint32_t ncls = le_get32(d + 52);
    if (ioff > len || isize > len - ioff) return;
    uint8_t *p = d + ioff, *end = p + isize;
    for (uint32_t c = 0; c < ncls && end - p >= 2 && end - p - 2 >= le_get16(p); c++) p += 2 + le_get16(p);
    for (uint64_t i = 0; i < count && end - p >= 22 && (size_t)(end - p - 22) >= le_get16(p + 20); i++) {
        uint64_t off = le_get64(p);
        uint32_t size = le_get32(p + 8);
        if (off <= len && size <= len - off) le_put32(p + 16, shard_crc32c(0, d + off, size));
        p += 22 + le_get16(p + 20);
    }
    le_put32(d + 48, shard_crc32c(0, d + ioff, isize));
}

static void run(const uint8_t *data, size_t len)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/shard-00000-of-00001.gshard", one);
    fuzz_write(p, data, len);
    DatasetOptions o = {0};
    o.path = one;
    Dataset *ds = fuzz_dataset_open(&o);
    if (ds) FUZZ_CHECK(dataset_kind(ds) == DATASET_SHARDS, "kind %d", (int)dataset_kind(ds));
    dataset_free(ds);
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/shard-%05d-of-00002.gshard", two, k);
        fuzz_write(p, data, len);
    }
    o.path = two;
    dataset_free(fuzz_dataset_open(&o));
}

void fuzz_target(const uint8_t *data, size_t len)
{
    if (!one[0]) {
        fuzz_path(one, sizeof one, "one");
        fuzz_mkdirs(one);
        fuzz_path(two, sizeof two, "two");
        fuzz_mkdirs(two);
    }
    run(data, len);
    uint8_t *fixed = malloc(len ? len : 1);
    memcpy(fixed, data, len);
    fix_crcs(fixed, len);
    if (memcmp(fixed, data, len) != 0) run(fixed, len);
    free(fixed);
}
