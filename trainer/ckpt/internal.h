/* ckpt/internal.h: what the parts of the checkpoint subsystem share; not for
 * use outside trainer/ckpt/ and its tests. The parts, one job each:
 *   format.c  the bytes of the header, section table and trailer, and the
 *             byte-shuffle filter (the layout is written down there);
 *   meta.c    CkptMeta and its key=value text (the meta section);
 *   write.c   encoding a checkpoint and writing it atomically;
 *   read.c    CkptReader: opening, checking and decoding a file;
 *   dir.c     a checkpoint directory: listing, the `latest` pointer,
 *             --resume auto, temporary files and retention;
 *   writer.c  rank 0's asynchronous writer thread;
 *   hash.c, npy.c, onnx.c, params.c, protobuf.c: see their headers. */
#ifndef TRAINER_CKPT_INTERNAL_H
#define TRAINER_CKPT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "trainer/ckpt/ckpt.h"

/* ---- format.c: the layout ---- */

enum { CKPT_HEADER_BYTES = 32, CKPT_ENTRY_BYTES = 64, CKPT_TRAILER_BYTES = 48, CKPT_MAX_SECTIONS = 256 };
#define CKPT_MAX_TEXT_BYTES ((uint64_t)64 << 20) /* meta and class names */
#define CKPT_OUT_CHUNK ((size_t)4 << 20)

extern const uint8_t ckpt_magic[8];
extern const uint8_t ckpt_end_magic[8];

/* The header of a checkpoint with this minor version (its checksum filled). */
void ckpt_header_pack(uint8_t hdr[CKPT_HEADER_BYTES], int minor);
/* Checks hdr[0..hn) of a file of `size` bytes (hn = min(size, header)):
 * magic, length, checksum, version. 0 with the version in *major, *minor; -1
 * with one line naming path and what is wrong. */
int ckpt_header_check(const uint8_t *hdr, size_t hn, uint64_t size, const char *path, int *major, int *minor,
                      char *err, size_t errlen);

void ckpt_entry_pack(uint8_t p[CKPT_ENTRY_BYTES], const CkptSectionInfo *s);
void ckpt_entry_unpack(const uint8_t p[CKPT_ENTRY_BYTES], CkptSectionInfo *s);
/* Whether a table entry can be what it says (codec, element size, sizes),
 * for a kind this build knows; entries of unknown kinds pass. */
int ckpt_entry_plausible(const CkptSectionInfo *s);

/* The trailer's fields (the end marker aside). */
typedef struct {
    uint64_t table_offset;
    uint32_t sections, entry_bytes;
    uint64_t table_xxh64, file_bytes, file_xxh64;
} CkptTrailer;

/* The first 32 bytes (covered by the whole-file checksum) into p[0..32). */
void ckpt_trailer_pack_head(uint8_t *p, const CkptTrailer *t);
/* The last 16: the whole-file checksum and the end marker, into p[0..16). */
void ckpt_trailer_pack_tail(uint8_t *p, uint64_t file_xxh64);
/* Unpacks the fields; returns whether the end marker is there. */
int ckpt_trailer_unpack(const uint8_t p[CKPT_TRAILER_BYTES], CkptTrailer *t);

/* The shuffle4 filter: n floats <-> 4 planes of n bytes, plane k holding byte
 * k of every float. */
void ckpt_shuffle4(const float *src, size_t n, uint8_t *planes /* (4, n) */);
void ckpt_unshuffle4(const uint8_t *planes /* (4, n) */, size_t n, float *dst);

/* ---- meta.c: the meta section ---- */

/* m as "key=value\n" text (malloc'ed, NUL-ended, *len bytes); NULL when out
 * of memory. Writes the format version this build writes. */
char *ckpt_meta_encode(const CkptMeta *m, size_t *len);
/* text[len] -> m (which the caller has zeroed). Unknown keys go to m->extra. */
int ckpt_meta_parse(const char *text, size_t len, CkptMeta *m, char *err, size_t errlen);
/* 0 when every line of m->extra will read back: key=value with a key the
 * format does not define. */
int ckpt_meta_check_extra(const CkptMeta *m, char *err, size_t errlen);

/* ---- write.c ---- */

/* Compression state and buffers reused from one checkpoint to the next. */
typedef struct {
    ZSTD_CCtx *cctx;
    int level;
    int threads;          /* zstd workers in use (0: the calling thread compresses) */
    uint8_t *planes;      /* (4, n) bytes: the byte-shuffled section */
    size_t planes_cap;
    uint8_t *out;         /* (CKPT_OUT_CHUNK) compressed bytes on their way to the file */
    int unfinished;       /* a failed write left a zstd frame open: cctx must be made anew */
    char note[256];       /* why fewer threads than asked, or empty */
    int urgent;           /* float sections raw, and the file renamed before it is flushed:
                             a checkpoint in the time it takes to copy the state to the page
                             cache, for a run about to be killed (ckpt_writer_save_now) */
} CkptEncoder;

int ckpt_encoder_init(CkptEncoder *e, int level, int threads, char *err, size_t errlen);
void ckpt_encoder_free(CkptEncoder *e);

/* Writes the checkpoint into a temporary file beside `path`, fsyncs it,
 * renames it to `path` and fsyncs the directory (e->urgent: renames first and
 * then fsyncs, so a process killed meanwhile leaves a complete file; a power
 * cut may damage it, which readers detect). On failure the temporary file is
 * gone and `path` untouched. *file_bytes gets the size written. momentum and
 * average may be NULL: a slim checkpoint (format 1.1) without them. */
int ckpt_write_atomic(CkptEncoder *e, const char *path, const CkptMeta *meta, const float *weights,
                      const float *momentum, const float *average, CkptIoFault fault,
                      void *fault_ctx, uint64_t *file_bytes, char *err, size_t errlen);

/* The same for a small file of bytes (the `latest` pointer, an .npy file). */
int ckpt_write_bytes_atomic(const char *path, const void *head, size_t head_len, const void *body,
                            size_t body_len, CkptIoFault fault, void *fault_ctx, char *err,
                            size_t errlen);

/* ---- read.c ---- */

/* ckpt_load, telling apart why a file was not loaded. */
enum { CKPT_LOAD_OK = 0, CKPT_LOAD_DAMAGED = -1, CKPT_LOAD_OTHER_MODEL = -2, CKPT_LOAD_SLIM = -3 };
int ckpt_load_file(const char *path, CkptMeta *meta, float *weights, float *momentum, float *average,
                   size_t num_params, char *err, size_t errlen);

/* ---- dir.c ---- */

/* Temporary files are ".<name>.tmp.<pid>.<n>" in the target's directory
 * (atomic_tmp_name's "<path>.tmp.<pid>" for the hidden ".<name>", and a
 * counter: the writer thread and ckpt_writer_save_now may write the same
 * name at once). -1 when it does not fit in len. */
int ckpt_tmp_name(const char *path, char *out, size_t len);
/* Whether a directory entry is such a temporary file (left by a crash). */
int ckpt_is_temp_name(const char *name);

/* The checkpoint name the `latest` file of dir holds (its first line) into
 * name[len]; 1 when there is one, 0 (name "") when the file is missing or
 * empty. */
int ckpt_latest_read(const char *dir, char *name, size_t len);
/* Points `latest` in dir at name, atomically. */
int ckpt_latest_write(const char *dir, const char *name, CkptIoFault fault, void *fault_ctx, char *err,
                      size_t errlen);

/* Removes the temporary files a killed writer left in dir (checkpoints and
 * `latest`); returns how many, named in note (the first three, with sizes). */
int ckpt_remove_stale_temps(const char *dir, char *note, size_t notelen);

/* What the retention policy needs: the writer's settings and, for rewriting
 * an old checkpoint slim, an encoder and a (num_params) scratch buffer. */
typedef struct {
    const char *dir;
    int keep;
    long keep_every;
    CkptUnit keep_every_unit;
    int keep_every_slim;
    size_t num_params;
    CkptEncoder *enc;
    float *scratch;       /* (num_params) */
} CkptRetention;

/* Deletes checkpoints beyond the newest `keep`, except keep_every ones (made
 * slim when asked) and the protected names (protect2 may be NULL). Returns
 * the number of files it failed to delete; what went wrong is in note. */
int ckpt_retention_apply(const CkptRetention *r, const char *protect1, const char *protect2, char *note,
                         size_t notelen);

#endif
