/* ckpt/write.c: writing a checkpoint: each section encoded (shuffle4 and
 * zstd for the floats), hashed and written as it is produced, then the table
 * and the trailer, all into a temporary file that is fsynced and renamed over
 * the target, and the directory fsynced (dataloader/atomic_file's rule, with
 * this file's own temporary names and its fault-injection seam). On failure
 * the temporary file is removed and the target is untouched. Never prints. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "dataloader/atomic_file.h"
#include "trainer/ckpt/hash.h"
#include "trainer/ckpt/internal.h"

/* ---- the encoder ---- */

/* A compression context with the encoder's level and workers (threads asked
 * for; e->threads gets what libzstd grants). */
static ZSTD_CCtx *encoder_cctx(CkptEncoder *e, int threads)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!c) return NULL;
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, e->level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0); /* the section has its own */
    e->threads = 0;
    if (threads > 0) {
        /* libzstd built without ZSTD_MULTITHREAD refuses nbWorkers > 0 */
        size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, threads);
        if (ZSTD_isError(r)) {
            snprintf(e->note, sizeof e->note,
                     "libzstd cannot run %d worker threads (%s): compressing in the writer thread", threads,
                     ZSTD_getErrorName(r));
            ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, 0);
        } else {
            e->threads = threads;
        }
    }
    return c;
}

int ckpt_encoder_init(CkptEncoder *e, int level, int threads, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
        snprintf(err, errlen, "zstd level %d is outside [%d, %d]", level, ZSTD_minCLevel(), ZSTD_maxCLevel());
        return -1;
    }
    e->level = level;
    e->cctx = encoder_cctx(e, threads);
    e->out = malloc(CKPT_OUT_CHUNK);
    if (!e->cctx || !e->out) {
        ckpt_encoder_free(e);
        snprintf(err, errlen, "out of memory for the zstd compressor");
        return -1;
    }
    return 0;
}

void ckpt_encoder_free(CkptEncoder *e)
{
    ZSTD_freeCCtx(e->cctx);
    free(e->planes);
    free(e->out);
    memset(e, 0, sizeof *e);
}

/* The file being written: every byte goes through out_write. */
typedef struct {
    int fd;
    const char *path;  /* the final name, for messages */
    uint64_t written;
    Xxh64 file;        /* of bytes [0, file bytes - 16) */
    Xxh64 sec;         /* of the current section's stored bytes */
    int err_no;        /* errno of the failure */
    const char *what;  /* "write", "fsync", ... */
    const char *zstd_error; /* set when compression itself failed */
    int renamed;       /* urgent: the file has its final name (a flush may still fail) */
    CkptIoFault fault;
    void *fault_ctx;
} Out;

static int out_write(Out *o, const void *buf, size_t n, int hash_file, int hash_sec)
{
    const uint8_t *b = buf;
    if (hash_file) xxh64_update(&o->file, buf, n);
    if (hash_sec) xxh64_update(&o->sec, buf, n);
    while (n) {
        int injected = o->fault ? o->fault(o->fault_ctx, o->path, o->written) : 0;
        ssize_t k;
        if (injected) {
            errno = injected;
            k = -1;
        } else {
            k = write(o->fd, b, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        }
        if (k < 0) {
            if (errno == EINTR) continue;
            o->err_no = errno;
            o->what = "write";
            return -1;
        }
        if (k == 0) {
            o->err_no = ENOSPC;
            o->what = "write";
            return -1;
        }
        b += k;
        n -= (size_t)k;
        o->written += (uint64_t)k;
    }
    return 0;
}

/* Compresses src[raw_bytes] as one zstd frame into o. */
static int out_zstd(Out *o, CkptEncoder *e, const void *src, size_t raw_bytes)
{
    if (e->unfinished) {
        /* The last write failed inside a frame. libzstd 1.5.4 with worker
         * threads crashes in a worker when such a context is reset and
         * used again (a full disk, then the next checkpoint, crashed the
         * trainer), so the context is made anew. */
        ZSTD_CCtx *fresh = encoder_cctx(e, e->threads);
        if (!fresh) {
            o->err_no = ENOMEM;
            o->what = "allocate";
            return -1;
        }
        ZSTD_freeCCtx(e->cctx);
        e->cctx = fresh;
        e->unfinished = 0;
    }
    ZSTD_CCtx_reset(e->cctx, ZSTD_reset_session_only);
    ZSTD_CCtx_setPledgedSrcSize(e->cctx, raw_bytes);
    ZSTD_inBuffer in = {src, raw_bytes, 0};
    e->unfinished = 1;
    for (;;) {
        ZSTD_outBuffer ob = {e->out, CKPT_OUT_CHUNK, 0};
        size_t rem = ZSTD_compressStream2(e->cctx, &ob, &in, ZSTD_e_end);
        if (ZSTD_isError(rem)) {
            o->err_no = EIO;
            o->what = "compress";
            o->zstd_error = ZSTD_getErrorName(rem);
            return -1;
        }
        if (ob.pos && out_write(o, e->out, ob.pos, 1, 1) != 0) return -1;
        if (rem == 0) break;
    }
    e->unfinished = 0;
    return 0;
}

/* One section from raw bytes: writes it and fills *s. */
static int out_section(Out *o, CkptEncoder *e, uint32_t kind, uint32_t codec, uint32_t elem_size,
                       const void *raw, size_t raw_bytes, CkptSectionInfo *s, Sha256 *sha)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->codec = codec;
    s->elem_size = elem_size;
    s->offset = o->written;
    s->raw_bytes = raw_bytes;
    if (sha) sha256_update(sha, raw, raw_bytes);
    xxh64_init(&o->sec, 0);
    if (codec == CKPT_CODEC_RAW) {
        /* stored = raw: one pass hashes both */
        if (out_write(o, raw, raw_bytes, 1, 1) != 0) return -1;
    } else {
        s->raw_xxh64 = xxh64(raw, raw_bytes, 0);
        const void *src = raw;
        if (codec == CKPT_CODEC_SHUFFLE_ZSTD) {
            if (e->planes_cap < raw_bytes) {
                free(e->planes);
                e->planes = malloc(raw_bytes);
                e->planes_cap = e->planes ? raw_bytes : 0;
                if (!e->planes) {
                    o->err_no = ENOMEM;
                    o->what = "allocate";
                    return -1;
                }
            }
            ckpt_shuffle4(raw, raw_bytes / 4, e->planes);
            src = e->planes;
        }
        if (out_zstd(o, e, src, raw_bytes) != 0) return -1;
    }
    s->stored_bytes = o->written - s->offset;
    s->stored_xxh64 = xxh64_digest(&o->sec);
    if (codec == CKPT_CODEC_RAW) s->raw_xxh64 = s->stored_xxh64;
    return 0;
}

/* The meta section: meta as written (version, the weights' SHA-256, the time). */
static int out_meta(Out *o, CkptEncoder *e, const CkptMeta *meta, int minor, Sha256 *sha, CkptSectionInfo *s)
{
    CkptMeta m = *meta; /* shallow: only the scalars change */
    uint8_t digest[32];
    sha256_final(sha, digest);
    sha256_hex(digest, m.params_sha256);
    m.version_major = CKPT_VERSION_MAJOR;
    m.version_minor = minor;
    if (!m.class_names) m.num_class_names = 0;
    if (m.created_unix == 0) m.created_unix = (int64_t)time(NULL);
    size_t len;
    char *text = ckpt_meta_encode(&m, &len);
    if (!text) {
        o->err_no = ENOMEM;
        o->what = "allocate";
        return -1;
    }
    int rc = out_section(o, e, CKPT_SEC_META, CKPT_CODEC_RAW, 1, text, len, s, NULL);
    free(text);
    return rc;
}

/* The table of sec[0..ns) and the trailer. */
static int out_table(Out *o, const CkptSectionInfo *sec, int ns)
{
    uint8_t table[5 * CKPT_ENTRY_BYTES];
    for (int i = 0; i < ns; i++) ckpt_entry_pack(table + i * CKPT_ENTRY_BYTES, &sec[i]);
    CkptTrailer t = {.table_offset = o->written, .sections = (uint32_t)ns, .entry_bytes = CKPT_ENTRY_BYTES,
                     .table_xxh64 = xxh64(table, (size_t)ns * CKPT_ENTRY_BYTES, 0)};
    if (out_write(o, table, (size_t)ns * CKPT_ENTRY_BYTES, 1, 0) != 0) return -1;
    t.file_bytes = o->written + CKPT_TRAILER_BYTES;
    uint8_t tr[CKPT_TRAILER_BYTES];
    ckpt_trailer_pack_head(tr, &t);
    if (out_write(o, tr, 32, 1, 0) != 0) return -1;
    ckpt_trailer_pack_tail(tr + 32, xxh64_digest(&o->file));
    return out_write(o, tr + 32, 16, 0, 0);
}

/* Header, sections, table, trailer into o. */
static int out_checkpoint(Out *o, CkptEncoder *e, const CkptMeta *meta, const float *weights,
                          const float *momentum, const float *average)
{
    /* a file without momentum or average (slim) is version 1.1, so that a
     * reader of 1.0 names the missing section instead of calling it damaged */
    int minor = momentum && average ? CKPT_VERSION_MINOR : CKPT_VERSION_MINOR_SLIM;
    uint8_t hdr[CKPT_HEADER_BYTES];
    ckpt_header_pack(hdr, minor);
    if (out_write(o, hdr, sizeof hdr, 1, 0) != 0) return -1;

    CkptSectionInfo sec[5];
    int ns = 0;
    size_t nbytes = meta->num_params * sizeof(float);
    uint32_t codec = e->urgent ? CKPT_CODEC_RAW : CKPT_CODEC_SHUFFLE_ZSTD;
    Sha256 sha;
    sha256_init(&sha);
    if (out_section(o, e, CKPT_SEC_WEIGHTS, codec, 4, weights, nbytes, &sec[ns++], &sha) ||
        (momentum && out_section(o, e, CKPT_SEC_MOMENTUM, codec, 4, momentum, nbytes, &sec[ns++], NULL)) ||
        (average && out_section(o, e, CKPT_SEC_AVERAGE, codec, 4, average, nbytes, &sec[ns++], NULL)))
        return -1;
    if (meta->class_names && meta->num_class_names > 0 &&
        out_section(o, e, CKPT_SEC_CLASSES, CKPT_CODEC_RAW, 1, meta->class_names, strlen(meta->class_names),
                    &sec[ns++], NULL))
        return -1;
    if (out_meta(o, e, meta, minor, &sha, &sec[ns++]) != 0) return -1;
    return out_table(o, sec, ns);
}

/* ---- atomic writing ---- */

static const char *errno_hint(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return "free space on that file system or lower --keep";
    case EIO: return "the disk reported an I/O error: check it";
    case EACCES:
    case EPERM:
    case EROFS: return "check that the directory is writable";
    case ENOENT: return "check that the directory exists";
    default: return "check the directory and the disk";
    }
}

/* After the body: (urgent: rename,) fsync, close, (else: rename). Fills
 * o->what and o->err_no on failure. */
static int out_finish(Out *o, const char *tmp, const char *path, int urgent)
{
    int rc = 0;
    /* urgent: the complete file gets its name first; a kill after the rename
     * loses nothing, and the flush follows */
    if (urgent) {
        if (rename(tmp, path) != 0) {
            o->err_no = errno;
            o->what = "rename";
            rc = -1;
        } else {
            o->renamed = 1;
        }
    }
    if (rc == 0) {
        int injected = o->fault ? o->fault(o->fault_ctx, path, o->written) : 0;
        if (injected || fsync(o->fd) != 0) {
            o->err_no = injected ? injected : errno;
            o->what = "fsync";
            rc = -1;
        }
    }
    if (close(o->fd) != 0 && rc == 0) {
        o->err_no = errno;
        o->what = "close";
        rc = -1;
    }
    o->fd = -1;
    if (rc == 0 && !urgent && rename(tmp, path) != 0) {
        o->err_no = errno;
        o->what = "rename";
        rc = -1;
    }
    return rc;
}

/* The message for a failed write (o->what, o->err_no), after which the
 * temporary file is removed. */
static void out_failure(const Out *o, const char *path, char *err, size_t errlen)
{
    if (o->zstd_error)
        snprintf(err, errlen, "writing %s failed: zstd: %s; the temporary file was removed and older checkpoints are intact",
                 path, o->zstd_error);
    else
        snprintf(err, errlen,
                 "writing %s failed (%s after %llu bytes: %s); the temporary file was removed and older "
                 "checkpoints are intact; %s",
                 path, o->what ? o->what : "write", (unsigned long long)o->written, strerror(o->err_no),
                 errno_hint(o->err_no));
}

/* Temp file, body(ctx, Out*), fsync, close, rename, fsync dir; cleans up. */
static int write_atomic(const char *path, int (*body)(Out *, void *), void *ctx, int urgent, CkptIoFault fault,
                        void *fault_ctx, uint64_t *bytes, char *err, size_t errlen)
{
    char tmp[4200];
    if (ckpt_tmp_name(path, tmp, sizeof tmp) != 0) {
        snprintf(err, errlen, "path too long: %.100s", path);
        return -1;
    }
    Out o = {.fd = -1, .path = path, .fault = fault, .fault_ctx = fault_ctx};
    xxh64_init(&o.file, 0);
    o.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (o.fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create %s: %s; %s", tmp, strerror(e), errno_hint(e));
        return -1;
    }
    int rc = body(&o, ctx);
    if (rc != 0) {
        close(o.fd);
        o.fd = -1;
    } else {
        rc = out_finish(&o, tmp, path, urgent);
    }
    if (rc != 0 && o.renamed) {
        /* renamed complete, then the flush failed: the file is there, in the page cache */
        snprintf(err, errlen, "%s was written but not flushed to disk (%s: %s): it holds the state, but may not survive "
                 "a power cut", path, o.what, strerror(o.err_no));
        return -1;
    }
    if (rc != 0) {
        unlink(tmp);
        out_failure(&o, path, err, errlen);
        return -1;
    }
    if (atomic_fsync_parent(path, err, errlen) != 0) return -1;
    if (bytes) *bytes = o.written;
    return 0;
}

typedef struct {
    CkptEncoder *e;
    const CkptMeta *meta;
    const float *w, *m, *a;
} CkptBody;

static int ckpt_body(Out *o, void *ctx)
{
    CkptBody *b = ctx;
    return out_checkpoint(o, b->e, b->meta, b->w, b->m, b->a);
}

int ckpt_write_atomic(CkptEncoder *e, const char *path, const CkptMeta *meta, const float *weights,
                      const float *momentum, const float *average, CkptIoFault fault, void *fault_ctx,
                      uint64_t *file_bytes, char *err, size_t errlen)
{
    if (!weights || !momentum != !average || meta->num_params == 0) {
        snprintf(err, errlen, "a checkpoint needs weights, and momentum and average or neither (slim), of "
                 "num_params > 0 floats");
        return -1;
    }
    if (ckpt_meta_check_extra(meta, err, errlen) != 0) return -1;
    CkptBody b = {e, meta, weights, momentum, average};
    return write_atomic(path, ckpt_body, &b, e->urgent, fault, fault_ctx, file_bytes, err, errlen);
}

typedef struct {
    const void *head, *body;
    size_t head_len, body_len;
} BytesBody;

static int bytes_body(Out *o, void *ctx)
{
    BytesBody *b = ctx;
    if (b->head_len && out_write(o, b->head, b->head_len, 0, 0) != 0) return -1;
    return b->body_len ? out_write(o, b->body, b->body_len, 0, 0) : 0;
}

int ckpt_write_bytes_atomic(const char *path, const void *head, size_t head_len, const void *body,
                            size_t body_len, CkptIoFault fault, void *fault_ctx, char *err, size_t errlen)
{
    BytesBody b = {head, body, head_len, body_len};
    return write_atomic(path, bytes_body, &b, 0, fault, fault_ctx, NULL, err, errlen);
}

int ckpt_save(const char *path, const CkptMeta *meta, const float *weights, const float *momentum,
              const float *average, int zstd_level, int zstd_threads, char *err, size_t errlen)
{
    CkptEncoder e;
    if (ckpt_encoder_init(&e, zstd_level, zstd_threads, err, errlen) != 0) return -1;
    int rc = ckpt_write_atomic(&e, path, meta, weights, momentum, average, NULL, NULL, NULL, err, errlen);
    ckpt_encoder_free(&e);
    return rc;
}

