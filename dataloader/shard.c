/* shard.c: writing shard files (the format is in shard.h; dataset.c reads
 * them) and the CRC-32C both sides check. Copies encoded bytes as they are:
 * no decoding, no printing, no exiting. */
#include "dataloader/shard.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataloader/atomic_file.h"
#include "dataloader/le.h"

/* ---- CRC-32C: SSE4.2's crc32 instruction when the CPU has it, a table otherwise ---- */

static uint32_t crc_table[8][256];

static void crc_table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc_soft(uint32_t c, const uint8_t *p, size_t n)
{
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        v ^= c;
        c = crc_table[7][v & 0xff] ^ crc_table[6][(v >> 8) & 0xff] ^ crc_table[5][(v >> 16) & 0xff] ^
            crc_table[4][(v >> 24) & 0xff] ^ crc_table[3][(v >> 32) & 0xff] ^ crc_table[2][(v >> 40) & 0xff] ^
            crc_table[1][(v >> 48) & 0xff] ^ crc_table[0][v >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--) c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

uint32_t shard_crc32c(uint32_t crc, const void *data, size_t len)
{
    static int mode_cache; /* 0 unknown, 1 hardware, 2 table */
    uint32_t c = ~crc;
    int mode = __atomic_load_n(&mode_cache, __ATOMIC_ACQUIRE);
    if (mode == 0) {
        /* threads racing here all compute the same table and the same answer */
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, crc_table_init);
        mode = 2;
#if defined(__x86_64__)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("sse4.2")) mode = 1;
#endif
        __atomic_store_n(&mode_cache, mode, __ATOMIC_RELEASE);
    }
#if defined(__x86_64__)
    if (mode == 1) return ~crc_hw(c, data, len);
#endif
    return ~crc_soft(c, data, len);
}

/* ---- writing ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} Bytes;

static int bytes_put(Bytes *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 16;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static int dir_has_shard_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    size_t sl = strlen(SHARD_SUFFIX);
    int found = 0;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L > sl && strcmp(e->d_name + L - sl, SHARD_SUFFIX) == 0) found = 1;
    }
    closedir(d);
    return found;
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

/* One shard file: items [begin, end) of ds. */
static int pack_one(const Dataset *ds, const char *out_dir, int k, int shards, size_t begin, size_t end,
                    ShardPackStats *stats, size_t *done, void (*progress)(size_t, size_t, void *), void *ctx,
                    char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/shard-%05d-of-%05d%s", out_dir, k, shards, SHARD_SUFFIX);
    AtomicFile af;
    if (atomic_file_open(&af, path, "wb", err, errlen) != 0) return -1;
    FILE *f = af.f;
    Bytes index = {0};
    uint8_t *buf = NULL, t[32];
    size_t cap = 0, len = 0;
    uint64_t off = SHARD_HEADER_BYTES, count = 0;
    int rc = -1;
    memset(t, 0, sizeof t);
    if (write_all(f, t, 32) || write_all(f, t, 32)) goto io;
    int ncls = dataset_num_classes(ds);
    for (int c = 0; c < ncls; c++) {
        const char *name = dataset_class_name(ds, c);
        size_t L = strlen(name);
        if (L > 65535) L = 65535;
        le_put16(t, (uint16_t)L);
        if (bytes_put(&index, t, 2) || bytes_put(&index, name, L)) goto oom;
    }
    for (size_t i = begin; i < end; i++) {
        char e[256];
        const char *name = dataset_item_name(ds, i);
        if (dataset_read(ds, i, &buf, &cap, &len, e, sizeof e) != 0 || len > UINT32_MAX) {
            if (stats->skipped++ == 0) snprintf(stats->first_skipped, sizeof stats->first_skipped, "%.120s: %.120s", name, e);
        } else {
            if (write_all(f, buf, len)) goto io;
            size_t L = strlen(name);
            if (L > 65535) L = 65535;
            le_put64(t, off);
            le_put32(t + 8, (uint32_t)len);
            le_put32(t + 12, (uint32_t)dataset_label(ds, i));
            le_put32(t + 16, shard_crc32c(0, buf, len));
            le_put16(t + 20, (uint16_t)L);
            if (bytes_put(&index, t, 22) || bytes_put(&index, name, L)) goto oom;
            off += len;
            count++;
            stats->items++;
            stats->bytes += len;
        }
        (*done)++;
        if (progress) progress(*done, dataset_size(ds), ctx);
    }
    if (index.len && write_all(f, index.p, index.len)) goto io;
    uint8_t h[SHARD_HEADER_BYTES] = {0};
    memcpy(h, SHARD_MAGIC, 8);
    le_put32(h + 8, SHARD_VERSION);
    le_put32(h + 12, SHARD_HEADER_BYTES);
    le_put64(h + 16, count);
    le_put32(h + 24, (uint32_t)k);
    le_put32(h + 28, (uint32_t)shards);
    le_put64(h + 32, off);
    le_put64(h + 40, index.len);
    le_put32(h + 48, shard_crc32c(0, index.p, index.len));
    le_put32(h + 52, (uint32_t)ncls);
    if (fseek(f, 0, SEEK_SET) != 0 || write_all(f, h, sizeof h)) goto io;
    rc = atomic_file_commit(&af, err, errlen);
    goto out;
oom:
    snprintf(err, errlen, "out of memory building the index of %s", path);
    atomic_file_abandon(&af);
    goto out;
io:
    snprintf(err, errlen, "cannot write %s: %s (disk full?)", af.tmp, strerror(errno));
    atomic_file_abandon(&af);
out:
    free(buf);
    free(index.p);
    return rc;
}

int shard_pack(const Dataset *ds, const char *out_dir, int shards, ShardPackStats *stats,
               void (*progress)(size_t done, size_t total, void *ctx), void *ctx, char *err, size_t errlen)
{
    memset(stats, 0, sizeof *stats);
    size_t n = dataset_size(ds);
    if (shards < 1 || (size_t)shards > n) {
        snprintf(err, errlen, "--shards %d must be between 1 and the %zu items of the dataset", shards, n);
        return -1;
    }
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create %s: %s", out_dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(out_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", out_dir);
        return -1;
    }
    if (dir_has_shard_files(out_dir)) {
        snprintf(err, errlen, "%s already holds shard files; remove them or pick another --out", out_dir);
        return -1;
    }
    size_t done = 0;
    for (int k = 0; k < shards; k++) {
        size_t begin = (size_t)((unsigned __int128)n * k / shards), end = (size_t)((unsigned __int128)n * (k + 1) / shards);
        if (pack_one(ds, out_dir, k, shards, begin, end, stats, &done, progress, ctx, err, errlen) != 0) return -1;
    }
    if (stats->items == 0) {
        snprintf(err, errlen, "no item of %s could be read (first: %s)", dataset_root(ds), stats->first_skipped);
        return -1;
    }
    return 0;
}
