/* shard.h: the packed shard format, for file systems that suffer from millions
 * of small files. A shard holds the original encoded bytes of many items, an
 * index of (offset, size, label, crc, name) and the class list; dataset_open
 * reads a directory of them like a tree. All integers little-endian.
 *
 *   header (64 bytes)
 *     0  magic "GNETSHRD"            8  u32 version (1)    12 u32 header size (64)
 *     16 u64 items                   24 u32 shard          28 u32 shards
 *     32 u64 index offset            40 u64 index bytes    48 u32 crc32c(index)
 *     52 u32 classes                 56 u64 reserved (0)
 *   data: each item's bytes, back to back, from offset 64
 *   index (at index offset):
 *     classes x { u16 length, bytes }             the class names, label order
 *     items   x { u64 offset, u32 size, i32 label, u32 crc32c(bytes),
 *                 u16 name length, name bytes }
 *
 * File names: shard-00000-of-00008.gshard. A reader checks the magic, the
 * version, the header size, that the index lies inside the file, the index
 * checksum, and that every item lies inside the data area; an item's own
 * checksum is checked when it is read. Writing goes to a temporary file that is
 * renamed when complete. No decoding, no printing, no exiting.
 */
#ifndef DATALOADER_SHARD_H
#define DATALOADER_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "dataloader/dataset.h"

#define SHARD_MAGIC "GNETSHRD"
#define SHARD_VERSION 1u
#define SHARD_HEADER_BYTES 64
#define SHARD_SUFFIX ".gshard"

typedef struct {
    size_t items;     /* written */
    size_t skipped;   /* unreadable or empty source files left out */
    uint64_t bytes;   /* image bytes written */
    char first_skipped[256]; /* "name: reason" of the first skipped file, or "" */
} ShardPackStats;

/* Writes ds into `shards` files in out_dir (created if missing): shard k holds
 * items [k*n/shards, (k+1)*n/shards) in dataset order. progress (may be NULL)
 * is called after each item with (done, total, ctx). Returns 0, or -1 with a
 * reason. */
int shard_pack(const Dataset *ds, const char *out_dir, int shards, ShardPackStats *stats,
               void (*progress)(size_t done, size_t total, void *ctx), void *ctx,
               char *err, size_t errlen);

/* CRC-32C (Castagnoli) of data, continuing from crc (start with 0). */
uint32_t shard_crc32c(uint32_t crc, const void *data, size_t len);

#endif
