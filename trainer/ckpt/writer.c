/* ckpt/writer.c: rank 0's asynchronous checkpoint writer. save() copies the
 * state into the writer's own buffer (the only time training is blocked,
 * besides waiting for a write still in flight) and a thread shuffles,
 * compresses, checksums and writes it atomically, moves the `latest` pointer
 * the same way and applies the retention policy (dir.c; it may rewrite old
 * keep-every checkpoints slim). At most one write is in flight. save_now()
 * writes at once, uncompressed, for a run about to be killed. Failures are
 * kept for ckpt_writer_poll; nothing here prints. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trainer/ckpt/ckpt.h"
#include "comm/clock.h"
#include "trainer/ckpt/internal.h"

struct CkptWriter {
    CkptWriterConfig cfg;
    char dir[4096];
    CkptEncoder enc;
    CkptEncoder urgent;    /* ckpt_writer_save_now's: raw sections, under now_mu */
    pthread_mutex_t now_mu;
    float *buf;            /* (3, num_params): weights, momentum, average */
    CkptMeta meta;         /* the job's metadata (a deep copy) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending;           /* a job waits for the thread */
    int busy;              /* a job is pending or being written */
    int quit;
    int unreported;        /* a failure poll has not returned yet */
    char fail_msg[1200];
    CkptWriterStats st;
};

/* snprintf that may cut a long path short; messages are one line, not data */
static void say(char *dst, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *dst, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, len, fmt, ap);
    va_end(ap);
}

CkptWriterConfig ckpt_writer_default_config(void)
{
    CkptWriterConfig c = {.dir = ".", .zstd_level = 3, .zstd_threads = 0, .keep = 0, .keep_every = 0,
                          .keep_every_unit = CKPT_UNIT_STEPS, .fail = CKPT_FAIL_CONTINUE, .nice = 10};
    return c;
}

/* Writes the job; returns 0 or -1 with msg. */
static int write_job(CkptWriter *w, char *path, size_t pathlen, uint64_t *bytes, char *msg, size_t msglen,
                     char *note, size_t notelen)
{
    size_t np = w->cfg.num_params;
    char name[256];
    ckpt_file_name(w->meta.step, name, sizeof name);
    snprintf(path, pathlen, "%s/%s", w->dir, name);
    if (ckpt_write_atomic(&w->enc, path, &w->meta, w->buf, w->buf + np, w->buf + 2 * np, w->cfg.fault,
                          w->cfg.fault_ctx, bytes, msg, msglen) != 0)
        return -1;
    char old[256], err[1024];
    ckpt_latest_read(w->dir, old, sizeof old);
    CkptRetention keep = {.dir = w->dir, .keep = w->cfg.keep, .keep_every = w->cfg.keep_every,
                          .keep_every_unit = w->cfg.keep_every_unit, .keep_every_slim = w->cfg.keep_every_slim,
                          .num_params = np, .enc = &w->enc, .scratch = w->buf};
    /* w->buf is free while the thread runs retention: the job is on disk */
    if (ckpt_latest_write(w->dir, name, w->cfg.fault, w->cfg.fault_ctx, err, sizeof err) != 0) {
        say(msg, msglen, "%s was written but %s was not updated: %s", path, CKPT_LATEST, err);
        ckpt_retention_apply(&keep, name, old[0] ? old : NULL, note, notelen);
        return -1;
    }
    ckpt_retention_apply(&keep, name, NULL, note, notelen);
    return 0;
}

static void *writer_main(void *arg)
{
    CkptWriter *w = arg;
    /* Linux nice values are per thread: lowering the writer's lets the
     * training threads win the cores whenever both want them. Best effort. */
    if (w->cfg.nice > 0) setpriority(PRIO_PROCESS, (id_t)gettid(), w->cfg.nice);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->pending && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (!w->pending) break;
        w->pending = 0;
        pthread_mutex_unlock(&w->mu);

        double t0 = clock_now();
        char path[4400], msg[1200], note[256] = "";
        uint64_t bytes = 0;
        int rc = write_job(w, path, sizeof path, &bytes, msg, sizeof msg, note, sizeof note);
        double dt = clock_now() - t0;

        pthread_mutex_lock(&w->mu);
        w->st.last_write_s = dt;
        if (note[0]) say(w->st.note, sizeof w->st.note, "%s", note);
        if (rc == 0) {
            w->st.writes_done++;
            w->st.last_file_bytes = bytes;
            if (w->meta.step >= w->st.last_step) {
                w->st.last_step = w->meta.step;
                say(w->st.last_path, sizeof w->st.last_path, "%s", path);
            }
        } else {
            w->st.writes_failed++;
            w->unreported = 1;
            snprintf(w->fail_msg, sizeof w->fail_msg, "%s", msg);
        }
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

CkptWriter *ckpt_writer_create(const CkptWriterConfig *cfg, char *err, size_t errlen)
{
    if (!cfg->dir || !cfg->dir[0] || strlen(cfg->dir) >= 4000) {
        snprintf(err, errlen, "checkpoint directory missing or too long");
        return NULL;
    }
    if (cfg->num_params == 0) {
        snprintf(err, errlen, "checkpoint writer needs num_params > 0");
        return NULL;
    }
    if (cfg->keep < 0 || cfg->keep_every < 0 || cfg->zstd_threads < 0 || cfg->zstd_threads > 256 || cfg->nice < 0 ||
        cfg->nice > 19) {
        snprintf(err, errlen, "bad checkpoint writer settings (keep %d, keep_every %ld, zstd threads %d, nice %d)",
                 cfg->keep, cfg->keep_every, cfg->zstd_threads, cfg->nice);
        return NULL;
    }
    struct stat st;
    if (stat(cfg->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "checkpoint directory %s %s; create it first", cfg->dir,
                 errno == ENOENT ? "does not exist" : "is not a directory");
        return NULL;
    }
    /* a probe file catches a read-only or full file system now, not in an hour */
    char probe[4200], perr[1024];
    snprintf(probe, sizeof probe, "%s/.ckpt-probe", cfg->dir);
    if (ckpt_write_bytes_atomic(probe, NULL, 0, "ok\n", 3, NULL, NULL, perr, sizeof perr) != 0) {
        snprintf(err, errlen, "checkpoint directory %s is not writable: %s", cfg->dir, perr);
        return NULL;
    }
    unlink(probe);

    CkptWriter *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->st.stale_removed = ckpt_remove_stale_temps(cfg->dir, w->st.stale_note, sizeof w->st.stale_note);
    w->st.last_step = -1;
    w->cfg = *cfg;
    snprintf(w->dir, sizeof w->dir, "%s", cfg->dir);
    w->cfg.dir = w->dir;
    if (ckpt_encoder_init(&w->enc, cfg->zstd_level, cfg->zstd_threads, err, errlen) != 0) {
        free(w);
        return NULL;
    }
    if (ckpt_encoder_init(&w->urgent, 1, 0, err, errlen) != 0) {
        ckpt_encoder_free(&w->enc);
        free(w);
        return NULL;
    }
    w->urgent.urgent = 1;
    size_t bytes = 3 * cfg->num_params * sizeof(float);
    w->buf = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!w->buf) {
        ckpt_encoder_free(&w->enc);
        ckpt_encoder_free(&w->urgent);
        free(w);
        snprintf(err, errlen, "out of memory for the checkpoint buffer (%.0f MB)", bytes / 1e6);
        return NULL;
    }
    /* touch every page now so the first save's copy does not pay for faults */
    memset(w->buf, 0, bytes);
    ckpt_meta_init(&w->meta);
    w->st.zstd_threads = w->enc.threads;
    snprintf(w->st.note, sizeof w->st.note, "%s", w->enc.note);
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->now_mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        snprintf(err, errlen, "cannot start the checkpoint writer thread");
        pthread_mutex_destroy(&w->mu);
        pthread_mutex_destroy(&w->now_mu);
        pthread_cond_destroy(&w->cv);
        ckpt_encoder_free(&w->enc);
        ckpt_encoder_free(&w->urgent);
        free(w->buf);
        free(w);
        return NULL;
    }
    return w;
}

int ckpt_writer_save(CkptWriter *w, const CkptMeta *meta, const float *weights, const float *momentum,
                     const float *average, char *err, size_t errlen)
{
    size_t np = w->cfg.num_params;
    if (meta->num_params != np || !weights || !momentum || !average) {
        snprintf(err, errlen, "checkpoint of %zu parameters given to a writer made for %zu", meta->num_params, np);
        return -1;
    }
    if (meta->step < 0) {
        snprintf(err, errlen, "checkpoint step %ld is negative", meta->step);
        return -1;
    }
    double t0 = clock_now();
    pthread_mutex_lock(&w->mu);
    while (w->busy) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    double t1 = clock_now();
    /* the thread is idle: the buffer and the metadata are ours */
    CkptMeta copy;
    if (ckpt_meta_copy(&copy, meta) != 0) {
        snprintf(err, errlen, "out of memory copying checkpoint metadata");
        return -1;
    }
    ckpt_meta_free(&w->meta);
    w->meta = copy;
    memcpy(w->buf, weights, np * sizeof(float));
    memcpy(w->buf + np, momentum, np * sizeof(float));
    memcpy(w->buf + 2 * np, average, np * sizeof(float));
    double t2 = clock_now();
    pthread_mutex_lock(&w->mu);
    w->st.saves++;
    w->st.last_wait_s = t1 - t0;
    w->st.last_copy_s = t2 - t1;
    w->st.last_raw_bytes = 3 * (uint64_t)np * sizeof(float);
    w->pending = 1;
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int ckpt_writer_save_now(CkptWriter *w, const CkptMeta *meta, const float *weights, const float *momentum,
                         const float *average, double *seconds, char *err, size_t errlen)
{
    double t0 = clock_now();
    if (meta->num_params != w->cfg.num_params || meta->step < 0) {
        snprintf(err, errlen, "checkpoint of %zu parameters at step %ld given to a writer made for %zu", meta->num_params,
                 meta->step, w->cfg.num_params);
        return -1;
    }
    char name[256], path[4400], why[1024];
    ckpt_file_name(meta->step, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", w->dir, name);
    pthread_mutex_lock(&w->now_mu);
    uint64_t bytes = 0;
    int rc = ckpt_write_atomic(&w->urgent, path, meta, weights, momentum, average, NULL, NULL, &bytes, err, errlen);
    if (rc == 0) {
        /* `latest` names the newest checkpoint; the background writer may have
         * finished a later one meanwhile */
        char newest[256];
        if (ckpt_newest_step(w->dir, newest, sizeof newest) <= meta->step) {
            if (ckpt_latest_write(w->dir, name, NULL, NULL, why, sizeof why) != 0) {
                snprintf(err, errlen, "%s was written but %s was not updated: %s", path, CKPT_LATEST, why);
                rc = -1;
            }
        }
    }
    pthread_mutex_unlock(&w->now_mu);
    pthread_mutex_lock(&w->mu);
    if (rc == 0) {
        w->st.writes_done++;
        w->st.last_file_bytes = bytes;
        if (meta->step >= w->st.last_step) {
            w->st.last_step = meta->step;
            say(w->st.last_path, sizeof w->st.last_path, "%s", path);
        }
    } else {
        w->st.writes_failed++;
    }
    pthread_mutex_unlock(&w->mu);
    if (seconds) *seconds = clock_now() - t0;
    return rc;
}

int ckpt_writer_poll(CkptWriter *w, char *err, size_t errlen)
{
    pthread_mutex_lock(&w->mu);
    int rc = CKPT_POLL_OK;
    if (w->unreported) {
        snprintf(err, errlen, "%s", w->fail_msg);
        w->unreported = 0;
        rc = w->cfg.fail == CKPT_FAIL_STOP ? CKPT_POLL_STOP : CKPT_POLL_FAILED;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int ckpt_writer_wait(CkptWriter *w, char *err, size_t errlen)
{
    pthread_mutex_lock(&w->mu);
    while (w->busy) pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
    return ckpt_writer_poll(w, err, errlen);
}

void ckpt_writer_stats(CkptWriter *w, CkptWriterStats *st)
{
    pthread_mutex_lock(&w->mu);
    *st = w->st;
    st->busy = w->busy;
    pthread_mutex_unlock(&w->mu);
}

void ckpt_writer_free(CkptWriter *w)
{
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    while (w->busy) pthread_cond_wait(&w->cv, &w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->now_mu);
    pthread_cond_destroy(&w->cv);
    ckpt_encoder_free(&w->enc);
    ckpt_encoder_free(&w->urgent);
    ckpt_meta_free(&w->meta);
    free(w->buf);
    free(w);
}
