/* ckpt/internal.h: what ckpt.c (the format), ckpt_writer.c (the asynchronous
 * writer) and ckpt_npy.c share; not for use outside trainer/ckpt*.c. */
#ifndef TRAINER_CKPT_INTERNAL_H
#define TRAINER_CKPT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "trainer/ckpt/ckpt.h"

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

/* Temporary files are ".<name>.tmp.<pid>.<n>" in the target's directory; this
 * says whether a directory entry is one (left by a crash). */
int ckpt_is_temp_name(const char *name);

/* dir of a path ("." when it has none), into out[outlen]. */
void ckpt_dir_of(const char *path, char *out, size_t outlen);

#endif
