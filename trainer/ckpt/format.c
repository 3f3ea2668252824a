/* ckpt/format.c: the bytes of a .gnck file that are not sections: the
 * header, the section table and the trailer, and the byte-shuffle filter.
 * Packing and unpacking only: no files, no allocation, no printing. write.c
 * writes these, read.c reads them.
 *
 * Layout (all integers little-endian; docs/checkpoints.md, "Checkpoint format"):
 *
 *   header, 32 bytes at offset 0 (magic, version and header checksum are at
 *   these offsets in every version, so any reader can tell "newer" from
 *   "damaged"):
 *     0  u8[8]  magic 89 47 4E 43 4B 0D 0A 1A  ("\x89GNCK\r\n\x1a")
 *     8  u16    version major       10 u16  version minor
 *     12 u32    header bytes (32)   16 u32  flags (0)   20 u32 reserved (0)
 *     24 u64    XXH64 of bytes 0..23 (seed 0)
 *   sections, back to back from offset 32, in the order written: weights,
 *   momentum, average, classes (when there are names), meta
 *   section table, count entries of 64 bytes:
 *     0 u32 kind   4 u32 codec   8 u32 element bytes   12 u32 reserved (0)
 *     16 u64 offset   24 u64 stored bytes   32 u64 raw bytes
 *     40 u64 XXH64 of the stored bytes   48 u64 XXH64 of the raw bytes
 *     56 u64 reserved (0)
 *   trailer, the last 48 bytes:
 *     0 u64 table offset   8 u32 section count   12 u32 table entry bytes (64)
 *     16 u64 XXH64 of the table   24 u64 file bytes
 *     32 u64 XXH64 of bytes [0, file bytes - 16)   40 u8[8] "GNCKEND\n"
 *
 * Codecs: raw; zstd (one frame with its content size); shuffle4+zstd: the n
 * floats are first regrouped into 4 planes of n bytes, plane k holding byte k
 * (k = 0 least significant) of every float, then one zstd frame. The meta
 * section is "key=value\n" text (values escape '\\' '\n' '\r' as \\ \n \r);
 * the classes section is the class names, one per line.
 */
#include <stdio.h>
#include <string.h>

#include "dataloader/le.h"
#include "trainer/ckpt/hash.h"
#include "trainer/ckpt/internal.h"

const uint8_t ckpt_magic[8] = {0x89, 'G', 'N', 'C', 'K', '\r', '\n', 0x1a};
const uint8_t ckpt_end_magic[8] = {'G', 'N', 'C', 'K', 'E', 'N', 'D', '\n'};

/* ---- header ---- */

void ckpt_header_pack(uint8_t hdr[CKPT_HEADER_BYTES], int minor)
{
    memset(hdr, 0, CKPT_HEADER_BYTES);
    memcpy(hdr, ckpt_magic, 8);
    le_put16(hdr + 8, CKPT_VERSION_MAJOR);
    le_put16(hdr + 10, (uint16_t)minor);
    le_put32(hdr + 12, CKPT_HEADER_BYTES);
    le_put64(hdr + 24, xxh64(hdr, 24, 0));
}

/* A file that does not start with the magic number: cut short inside it, one
 * byte off (damaged), or another kind of file. */
static void header_bad_magic(const uint8_t *hdr, size_t hn, uint64_t size, const char *path, char *err,
                             size_t errlen)
{
    int same = 0;
    for (size_t i = 0; i < hn && i < 8; i++) same += hdr[i] == ckpt_magic[i];
    if (hn < 8 && memcmp(hdr, ckpt_magic, hn) == 0)
        snprintf(err, errlen, "%s: truncated: %llu bytes, shorter than the header", path, (unsigned long long)size);
    else if (same == 7) /* one byte off: a damaged checkpoint, not another kind of file */
        snprintf(err, errlen, "%s: the header is damaged (one byte of its magic number differs); use an older "
                 "checkpoint", path);
    else
        snprintf(err, errlen, "%s: not a googlenet checkpoint (wrong magic number)", path);
}

int ckpt_header_check(const uint8_t *hdr, size_t hn, uint64_t size, const char *path, int *major, int *minor,
                      char *err, size_t errlen)
{
    if (size == 0) {
        snprintf(err, errlen, "%s is empty (0 bytes): not a checkpoint, or one whose write never began", path);
        return -1;
    }
    if (hn < 8 || memcmp(hdr, ckpt_magic, 8) != 0) {
        header_bad_magic(hdr, hn, size, path, err, errlen);
        return -1;
    }
    if (hn < CKPT_HEADER_BYTES) {
        snprintf(err, errlen, "%s: truncated: %llu bytes, shorter than the header; use an older checkpoint", path,
                 (unsigned long long)size);
        return -1;
    }
    *major = le_get16(hdr + 8);
    *minor = le_get16(hdr + 10);
    if (le_get64(hdr + 24) != xxh64(hdr, 24, 0)) {
        snprintf(err, errlen, "%s: the header is damaged (checksum mismatch; version field reads %d.%d)", path,
                 *major, *minor);
        return -1;
    }
    if (*major > CKPT_VERSION_MAJOR) {
        snprintf(err, errlen, "%s: checkpoint format version %d.%d is newer than this build reads (%d.x); use a "
                 "newer bin/googlenet", path, *major, *minor, CKPT_VERSION_MAJOR);
        return -1;
    }
    if (*major < 1 || le_get32(hdr + 12) != CKPT_HEADER_BYTES) {
        snprintf(err, errlen, "%s: unsupported header (version %d.%d, %u header bytes)", path, *major, *minor,
                 le_get32(hdr + 12));
        return -1;
    }
    return 0;
}

/* ---- section table ---- */

void ckpt_entry_pack(uint8_t p[CKPT_ENTRY_BYTES], const CkptSectionInfo *s)
{
    memset(p, 0, CKPT_ENTRY_BYTES);
    le_put32(p, s->kind);
    le_put32(p + 4, s->codec);
    le_put32(p + 8, s->elem_size);
    le_put64(p + 16, s->offset);
    le_put64(p + 24, s->stored_bytes);
    le_put64(p + 32, s->raw_bytes);
    le_put64(p + 40, s->stored_xxh64);
    le_put64(p + 48, s->raw_xxh64);
}

void ckpt_entry_unpack(const uint8_t p[CKPT_ENTRY_BYTES], CkptSectionInfo *s)
{
    s->kind = le_get32(p);
    s->codec = le_get32(p + 4);
    s->elem_size = le_get32(p + 8);
    s->offset = le_get64(p + 16);
    s->stored_bytes = le_get64(p + 24);
    s->raw_bytes = le_get64(p + 32);
    s->stored_xxh64 = le_get64(p + 40);
    s->raw_xxh64 = le_get64(p + 48);
}

int ckpt_entry_plausible(const CkptSectionInfo *s)
{
    int known = s->kind >= CKPT_SEC_META && s->kind <= CKPT_SEC_AVERAGE;
    if (!known) return 1;
    int is_float = s->kind >= CKPT_SEC_WEIGHTS;
    return !(s->codec > CKPT_CODEC_SHUFFLE_ZSTD || s->elem_size != (is_float ? 4u : 1u) ||
             (s->codec == CKPT_CODEC_RAW && s->stored_bytes != s->raw_bytes) ||
             (!is_float && (s->codec != CKPT_CODEC_RAW || s->raw_bytes > CKPT_MAX_TEXT_BYTES)) ||
             (is_float && s->raw_bytes % 4 != 0));
}

/* ---- trailer ---- */

void ckpt_trailer_pack_head(uint8_t *p, const CkptTrailer *t)
{
    memset(p, 0, 32);
    le_put64(p, t->table_offset);
    le_put32(p + 8, t->sections);
    le_put32(p + 12, t->entry_bytes);
    le_put64(p + 16, t->table_xxh64);
    le_put64(p + 24, t->file_bytes);
}

void ckpt_trailer_pack_tail(uint8_t *p, uint64_t file_xxh64)
{
    le_put64(p, file_xxh64);
    memcpy(p + 8, ckpt_end_magic, 8);
}

int ckpt_trailer_unpack(const uint8_t p[CKPT_TRAILER_BYTES], CkptTrailer *t)
{
    t->table_offset = le_get64(p);
    t->sections = le_get32(p + 8);
    t->entry_bytes = le_get32(p + 12);
    t->table_xxh64 = le_get64(p + 16);
    t->file_bytes = le_get64(p + 24);
    t->file_xxh64 = le_get64(p + 32);
    return memcmp(p + 40, ckpt_end_magic, 8) == 0;
}

/* ---- names ---- */

const char *ckpt_section_name(uint32_t kind)
{
    switch (kind) {
    case CKPT_SEC_META: return "meta";
    case CKPT_SEC_CLASSES: return "classes";
    case CKPT_SEC_WEIGHTS: return "weights";
    case CKPT_SEC_MOMENTUM: return "momentum";
    case CKPT_SEC_AVERAGE: return "average";
    default: return "unknown";
    }
}

const char *ckpt_codec_name(uint32_t codec)
{
    switch (codec) {
    case CKPT_CODEC_RAW: return "raw";
    case CKPT_CODEC_ZSTD: return "zstd";
    case CKPT_CODEC_SHUFFLE_ZSTD: return "shuffle4+zstd";
    default: return "unknown";
    }
}

/* ---- the shuffle4 filter ---- */

void ckpt_shuffle4(const float *src, size_t n, uint8_t *planes /* (4, n) */)
{
    const uint32_t *u = (const uint32_t *)src;
    uint8_t *p0 = planes, *p1 = planes + n, *p2 = planes + 2 * n, *p3 = planes + 3 * n;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = u[i];
        p0[i] = (uint8_t)v;
        p1[i] = (uint8_t)(v >> 8);
        p2[i] = (uint8_t)(v >> 16);
        p3[i] = (uint8_t)(v >> 24);
    }
}

void ckpt_unshuffle4(const uint8_t *planes /* (4, n) */, size_t n, float *dst)
{
    uint32_t *u = (uint32_t *)dst;
    const uint8_t *p0 = planes, *p1 = planes + n, *p2 = planes + 2 * n, *p3 = planes + 3 * n;
    for (size_t i = 0; i < n; i++)
        u[i] = (uint32_t)p0[i] | (uint32_t)p1[i] << 8 | (uint32_t)p2[i] << 16 | (uint32_t)p3[i] << 24;
}
