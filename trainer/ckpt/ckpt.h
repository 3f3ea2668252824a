/* ckpt/ckpt.h: checkpoints: the .gnck file format, a reader that trusts nothing it
 * has not checked, and an asynchronous, atomic writer for rank 0.
 *
 * A checkpoint holds three float sections of num_params floats each (weights,
 * momentum, Polyak average, in the parameter order of nn/model.h) and the
 * metadata needed to resume bitwise: all randomness in this trainer is
 * counter-based (a pure function of seed, epoch, step, sample index), so the
 * seed and the position are the whole RNG state. Float sections pass a
 * byte-shuffle filter and then Zstandard; every section, the section table and
 * the whole file carry an XXH64 checksum. The layout is in docs/checkpoints.md
 * ("Checkpoint format") and at the top of ckpt/format.c.
 *
 * Writing is atomic (temporary file in the same directory, fsync, rename, fsync
 * of the directory) and the writer never deletes a checkpoint it did not
 * supersede. Every function returns a status and writes one line into
 * err[errlen] on failure; nothing here prints or exits. Not thread-safe except
 * where said: one CkptWriter is driven by one training thread.
 */
#ifndef TRAINER_CKPT_H
#define TRAINER_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "nn/model.h"
#include "nn/sgd.h"

/* A reader accepts any minor version of its major version (unknown metadata
 * keys and unknown sections are skipped) and refuses a newer major version. */
#define CKPT_VERSION_MAJOR 1
#define CKPT_VERSION_MINOR 0
#define CKPT_VERSION_MINOR_SLIM 1 /* 1.1: the momentum and average sections may be absent */
#define CKPT_ARCH "googlenet-bvlc"
#define CKPT_EXT ".gnck"
#define CKPT_LATEST "latest" /* a text file in the directory naming the newest checkpoint */
#define CKPT_COMMAND_MAX 2048

/* ---- metadata ---- */

typedef struct {
    /* format: filled by the reader; the writer always writes its own version */
    int version_major, version_minor;

    /* position. epoch is the epoch in progress (0-based); epoch_step optimizer
     * steps and epoch_samples samples (summed over ranks) of it are done. A
     * checkpoint taken at an epoch boundary has epoch_step = 0 and epoch + 1. */
    long step;               /* optimizer steps done since the start */
    long epoch;
    long epoch_step;
    long long epoch_samples;
    long long samples_seen;  /* samples (summed over ranks) since the start */
    uint64_t seed;           /* with the position: every RNG state of the run */
    int world_size;          /* ranks of the run that wrote it */
    int batch;               /* images per rank per micro-step */
    int accum;               /* micro-steps per optimizer step */

    /* architecture */
    char arch[32];           /* CKPT_ARCH */
    int classes;
    int crop;
    int aux;                 /* 1: the auxiliary heads' parameters are included */
    float head_dropout, aux_dropout;
    size_t num_params;       /* floats in each float section */

    /* optimizer */
    LrSchedule lr;
    double last_lr;          /* the learning rate of the last step done */
    double momentum, weight_decay, ema_decay;

    /* loader settings that change the data order */
    long long dataset_size;  /* training samples */
    int drop_last;

    /* provenance */
    int64_t created_unix;    /* seconds since 1970; the writer sets it when 0 */
    char command[CKPT_COMMAND_MAX]; /* the command line (truncated to fit) */
    char params_sha256[65];  /* reader: SHA-256 (hex) of the weights, computed by the writer */

    /* owned by the struct (ckpt_meta_free); NULL when absent */
    char *class_names;       /* num_class_names names, each ended by '\n' */
    int num_class_names;
    char *extra;             /* "key=value\n" lines: keys this build does not know
                                (from a newer writer), or the caller's own */
} CkptMeta;

/* A slim checkpoint (`ckpt slim`, --keep-every-slim) holds one set of weights
 * in its weights section and no momentum or average; this extra key says
 * which set it was: "average" (the Polyak average) or "raw". */
#define CKPT_EXTRA_SLIM "slim"

/* Zeroes m and fills the format version and CKPT_ARCH. */
void ckpt_meta_init(CkptMeta *m);
/* Deep copy (class names and extra included); -1 only when out of memory. */
int ckpt_meta_copy(CkptMeta *dst, const CkptMeta *src);
void ckpt_meta_free(CkptMeta *m);
/* Replaces the class names by a copy of names[0..n); a name may not contain
 * '\n' or be empty. */
int ckpt_meta_set_class_names(CkptMeta *m, const char *const *names, int n, char *err, size_t errlen);
/* Appends "key=value" to extra. Keys are [a-z0-9_.], not one the format
 * defines; the value may hold any byte but NUL. */
int ckpt_meta_add_extra(CkptMeta *m, const char *key, const char *value, char *err, size_t errlen);
/* The value of extra key `key` into out[outlen]; 1 when present and it fits,
 * else 0. */
int ckpt_meta_get_extra(const CkptMeta *m, const char *key, char *out, size_t outlen);
/* The input normalisation a run trained with, kept as the extra keys
 * input_mean and input_std ("r,g,b" on pixel/255). get returns 1 and fills
 * mean/std when both are recorded and valid, 0 otherwise. */
int ckpt_meta_set_norm(CkptMeta *m, const float mean[3], const float std[3], char *err, size_t errlen);
int ckpt_meta_get_norm(const CkptMeta *m, float mean[3], float std[3]);
/* Sets arch, classes, crop, aux, dropouts and num_params from a model. */
void ckpt_meta_set_model(CkptMeta *m, const ModelConfig *cfg, size_t num_params);
/* 0 when a checkpoint with meta m can be loaded into a model built from cfg
 * with num_params parameters (architecture, aux heads, classes, count); else
 * -1 with one line naming the mismatch. The crop may differ. */
int ckpt_meta_check_model(const CkptMeta *m, const ModelConfig *cfg, size_t num_params,
                          char *err, size_t errlen);

/* ---- the file ---- */

typedef enum {
    CKPT_SEC_META = 1,     /* key=value text, raw */
    CKPT_SEC_CLASSES = 2,  /* class names, one a line, raw */
    CKPT_SEC_WEIGHTS = 3,  /* (num_params) fp32 */
    CKPT_SEC_MOMENTUM = 4, /* (num_params) fp32 */
    CKPT_SEC_AVERAGE = 5   /* (num_params) fp32, the Polyak average */
} CkptSectionKind;

typedef enum { CKPT_CODEC_RAW = 0, CKPT_CODEC_ZSTD = 1, CKPT_CODEC_SHUFFLE_ZSTD = 2 } CkptCodec;

typedef struct {
    uint32_t kind;          /* CkptSectionKind, or one a newer writer defines */
    uint32_t codec;         /* CkptCodec */
    uint32_t elem_size;     /* 4 for floats, 1 for text */
    uint64_t offset;        /* of the stored bytes in the file */
    uint64_t stored_bytes;  /* in the file (compressed) */
    uint64_t raw_bytes;     /* after decoding */
    uint64_t stored_xxh64;  /* of the stored bytes */
    uint64_t raw_xxh64;     /* of the decoded bytes (little-endian floats) */
} CkptSectionInfo;

const char *ckpt_section_name(uint32_t kind); /* "weights", ...; "unknown" */
const char *ckpt_codec_name(uint32_t codec);  /* "shuffle4+zstd", ... */

/* "ckpt-00001234.gnck": names sort by step. */
void ckpt_file_name(long step, char *out, size_t outlen);
/* The step in a name made by ckpt_file_name, or -1 when it is not one. */
long ckpt_file_step(const char *name);

/* Writes a checkpoint to `path` atomically (temporary file beside it, fsync,
 * rename, fsync of the directory); synchronous. weights, momentum, average:
 * (meta->num_params) each. zstd_threads 0 compresses in the calling thread.
 * On failure the temporary file is removed and `path` is untouched. */
int ckpt_save(const char *path, const CkptMeta *meta, const float *weights, const float *momentum,
              const float *average, int zstd_level, int zstd_threads, char *err, size_t errlen);

/* ---- reading ---- */

typedef struct CkptReader CkptReader;

/* Opens a checkpoint and checks what is cheap: magic, version, sizes against
 * the file, the header and table checksums, the metadata's checksum and
 * fields. Float sections are not read (ckpt_reader_verify does that). */
CkptReader *ckpt_open(const char *path, char *err, size_t errlen);
void ckpt_close(CkptReader *r);
const CkptMeta *ckpt_reader_meta(const CkptReader *r);
/* The section table: *count entries, in file order. */
const CkptSectionInfo *ckpt_reader_sections(const CkptReader *r, int *count);
uint64_t ckpt_reader_file_bytes(const CkptReader *r);
/* Whether the file has the section (a slim checkpoint has no momentum and
 * no average). */
int ckpt_reader_has(const CkptReader *r, CkptSectionKind kind);
/* Reads every byte: the file checksum, each section's stored and decoded
 * checksums, and the weights' SHA-256 against the metadata. */
int ckpt_reader_verify(CkptReader *r, char *err, size_t errlen);
/* Decodes a float section into dst (count floats; count must equal the
 * section's), checking both its checksums. */
int ckpt_reader_read(CkptReader *r, CkptSectionKind kind, float *dst, size_t count, char *err,
                     size_t errlen);

/* ckpt_open + copy of the metadata + ckpt_close: no float section is decoded.
 * The caller frees *meta with ckpt_meta_free. */
int ckpt_peek_meta(const char *path, CkptMeta *meta, char *err, size_t errlen);
/* ckpt_open + ckpt_reader_verify. */
int ckpt_verify_file(const char *path, char *err, size_t errlen);
/* Everything a resume needs: checks the file checksum, then decodes the three
 * float sections (num_params floats each; any of the pointers may be NULL to
 * skip that section) and copies the metadata into *meta (free it with
 * ckpt_meta_free). */
int ckpt_load(const char *path, CkptMeta *meta, float *weights, float *momentum, float *average,
              size_t num_params, char *err, size_t errlen);

/* One ckpt-*.gnck file of a directory. */
typedef struct {
    long step;
    char name[256];
} CkptEntry;

/* The ckpt-*.gnck files in dir (damaged or not), highest step first, in *out
 * (free it; NULL when there are none). Returns their count, or -1 with err
 * when dir cannot be read or memory runs out. */
long ckpt_list(const char *dir, CkptEntry **out, char *err, size_t errlen);

/* The highest step of any ckpt-*.gnck in dir (damaged or not), its file name
 * in name; -1 when there is none or dir cannot be read. */
long ckpt_newest_step(const char *dir, char *name, size_t namelen);

/* For `--resume auto`: the checkpoint with the highest step in dir that
 * loads (as ckpt_load, so each file is read once), its path in path[pathlen]
 * and its state in the buffers. Damaged or unreadable newer ones are named
 * in report[reportlen] (one line each, empty when none) and the next older
 * one is tried, as is a `latest` pointer that is stale or names a damaged
 * file. Returns 1 when found; 0 when dir holds no checkpoint that loads
 * (report says why); -1 on an error reading dir, or for a sound checkpoint of
 * another model (its parameter count differs; its name in path), which is
 * not a reason to go back (err). After 0 or -1 the buffers hold whatever the
 * failed attempts left. */
int ckpt_load_latest(const char *dir, char *path, size_t pathlen, CkptMeta *meta, float *weights,
                     float *momentum, float *average, size_t num_params, char *report, size_t reportlen,
                     char *err, size_t errlen);

/* ---- the asynchronous writer (rank 0) ---- */

typedef enum { CKPT_FAIL_CONTINUE, CKPT_FAIL_STOP } CkptFailPolicy;
typedef enum { CKPT_UNIT_STEPS, CKPT_UNIT_EPOCHS } CkptUnit;

/* Test seam: called before each write() of a checkpoint or pointer file with
 * the bytes written to it so far; a nonzero return is taken as the errno of
 * that write (ENOSPC, EIO). NULL in production. */
typedef int (*CkptIoFault)(void *ctx, const char *path, uint64_t written);

typedef struct {
    const char *dir;         /* must exist; checkpoints and `latest` go here */
    size_t num_params;       /* floats per section: the copy buffer is allocated up front */
    int zstd_level;          /* ZSTD_minCLevel()..ZSTD_maxCLevel(); 3 */
    int zstd_threads;        /* zstd worker threads; 0 compresses in the writer thread */
    int keep;                /* newest N kept; 0 keeps every checkpoint */
    long keep_every;         /* 0, or checkpoints at multiples of this are kept for good */
    CkptUnit keep_every_unit;/* steps: step % keep_every == 0; epochs: taken at an epoch
                                boundary (epoch_step == 0) with epoch % keep_every == 0 */
    int keep_every_slim;     /* a keep_every checkpoint that falls out of the newest `keep` is
                                rewritten slim: its Polyak average only (CKPT_EXTRA_SLIM) */
    CkptFailPolicy fail;     /* what ckpt_writer_poll tells the trainer after a failed write */
    int nice;                /* 0..19: the writer thread's (and zstd workers') nice value; 10,
                                so training threads win the cores when both want them */
    CkptIoFault fault;       /* tests only */
    void *fault_ctx;
} CkptWriterConfig;

typedef struct {
    long saves;              /* ckpt_writer_save calls accepted */
    long writes_done;        /* checkpoints on disk and pointed to by `latest` */
    long writes_failed;
    int busy;                /* a write is in flight */
    char last_path[4096];    /* the checkpoint of the highest step written */
    long last_step;          /* its step; -1 before the first */
    double last_copy_s;      /* training blocked by the copy of the last save */
    double last_wait_s;      /* training blocked waiting for the previous write */
    double last_write_s;     /* writer thread: shuffle, compress, write, fsync, rename */
    uint64_t last_raw_bytes; /* the three float sections, uncompressed */
    uint64_t last_file_bytes;
    int zstd_threads;        /* in use: 0 when the library cannot run workers */
    char note[256];          /* e.g. why zstd runs single-threaded; empty otherwise */
    int stale_removed;       /* temporary files of interrupted writes ckpt_writer_create removed */
    char stale_note[512];    /* "2 files (.ckpt-00000006.gnck.tmp.1234.1, 8.0 MB; ...)" */
} CkptWriterStats;

typedef struct CkptWriter CkptWriter;

/* level 3, zstd_threads 0, keep 0, keep_every 0, fail continue, nice 10. */
CkptWriterConfig ckpt_writer_default_config(void);
/* Checks the directory is writable, removes temporary files a crashed writer
 * left there (counted and named in the stats), allocates and touches the copy
 * buffer, starts the thread. */
CkptWriter *ckpt_writer_create(const CkptWriterConfig *cfg, char *err, size_t errlen);
/* Copies meta and the three (num_params) buffers, which the caller may change
 * as soon as this returns, and hands them to the writer thread, which writes
 * ckpt-<step>.gnck, moves `latest` to it and applies keep / keep_every. Waits
 * first when the previous write is still in flight (at most one). -1 (err)
 * only for bad arguments (count mismatch); write failures come from poll. */
int ckpt_writer_save(CkptWriter *w, const CkptMeta *meta, const float *weights,
                     const float *momentum, const float *average, char *err, size_t errlen);

/* Writes ckpt-<step>.gnck now, in the calling thread, without waiting for the
 * write in flight: float sections uncompressed, the file renamed before it is
 * flushed, `latest` moved to it unless a newer checkpoint exists. For a run
 * that may be killed in a second (a signal). Safe to call from another thread
 * than ckpt_writer_save's; no retention. Returns 0, or -1 with err; *seconds
 * (may be NULL) gets the time it took. */
int ckpt_writer_save_now(CkptWriter *w, const CkptMeta *meta, const float *weights, const float *momentum,
                         const float *average, double *seconds, char *err, size_t errlen);

enum { CKPT_POLL_OK = 0, CKPT_POLL_FAILED = 1, CKPT_POLL_STOP = 2 };
/* Non-blocking. CKPT_POLL_OK when no write has failed since the last call;
 * otherwise the failure (path, cause, what to do) in err and CKPT_POLL_FAILED
 * (fail policy continue: older checkpoints are intact, training may go on) or
 * CKPT_POLL_STOP (fail policy stop). */
int ckpt_writer_poll(CkptWriter *w, char *err, size_t errlen);
/* Waits for the write in flight, then as ckpt_writer_poll. */
int ckpt_writer_wait(CkptWriter *w, char *err, size_t errlen);
void ckpt_writer_stats(CkptWriter *w, CkptWriterStats *st);
/* Waits for the write in flight and frees everything. */
void ckpt_writer_free(CkptWriter *w);

/* ---- NumPy .npy (v1.0, '<f4', shape (count,)) ---- */

/* Writes data[count] atomically. */
int ckpt_npy_write(const char *path, const float *data, size_t count, char *err, size_t errlen);
/* Reads a 1-D little-endian fp32 array (versions 1.0, 2.0, 3.0); the caller
 * frees the result. */
float *ckpt_npy_read(const char *path, size_t *count, char *err, size_t errlen);

#endif
