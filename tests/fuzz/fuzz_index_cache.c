/* fuzz_index_cache.c: libFuzzer target for the index cache reader
 * (--index-cache, and the OUT/train-index.cache train writes) and for the
 * serialised index rank 0 broadcasts (dataset_deserialize), which the cache
 * holds after its stamps.
 *
 * The cache is only believed when its stamps (the root, the options, the
 * mtime of every scanned directory) equal the tree's now, so the target keeps
 * a fixed tree at a fixed path with fixed mtimes; the seed caches were written
 * for exactly that tree (tests/fuzz/make_seeds.sh). The input is the cache
 * file; it is also given to dataset_deserialize from where its index starts.
 * The index ends with a CRC-32C that mutations break, so each input also runs
 * with it recomputed. Properties: those of fuzz_dataset.h, whether the
 * dataset came from the cache or from a rescan. Seeds:
 * tests/fuzz/corpus/index_cache. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataloader/le.h"
#include "dataloader/shard.h"
#include "tests/fuzz/fuzz_dataset.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/fuzz_index_tree.h"

static char cache[4096];

/* Where the serialised index starts: after the magic and the stamps. */
static size_t index_start(const uint8_t *d, size_t len)
{
    if (len < 16) return len;
    uint64_t slen = le_get64(d + 8);
    return slen <= len - 16 ? 16 + (size_t)slen : len;
}

static void run(const uint8_t *data, size_t len)
{
    fuzz_write(cache, data, len);
    DatasetOptions o = {0};
    o.path = FUZZ_INDEX_TREE;
    o.cache_file = cache;
    dataset_free(fuzz_dataset_open(&o));
    size_t at = index_start(data, len);
    char err[512] = "";
    Dataset *ds = dataset_deserialize(data + at, len - at, err, sizeof err);
    if (ds) fuzz_dataset_check(ds);
    else FUZZ_CHECK(err[0], "dataset_deserialize failed without a reason");
    dataset_free(ds);
}

void fuzz_target(const uint8_t *data, size_t len)
{
    if (!cache[0]) {
        fuzz_index_tree_make();
        fuzz_path(cache, sizeof cache, "index.cache");
    }
    run(data, len);
    size_t at = index_start(data, len);
    if (len - at >= 4) {
        uint8_t *fixed = malloc(len);
        memcpy(fixed, data, len);
        le_put32(fixed + len - 4, shard_crc32c(0, fixed + at, len - at - 4));
        if (memcmp(fixed, data, len) != 0) run(fixed, len);
        free(fixed);
    }
    /* a rescan rewrote the cache: the tree's stamps stay as they were */
    fuzz_index_tree_make();
}
