/* test_ckpt_writer.c: the asynchronous writer: the copy is independent of the
 * caller's buffers, `latest` follows, keep / keep_every (steps and epochs)
 * delete exactly the right files, and a failed write (injected ENOSPC and
 * EIO, a real EFBIG from RLIMIT_FSIZE, a real ENOSPC on a small tmpfs when
 * this machine allows mounting one) leaves a clear message, no temporary
 * file, every older checkpoint intact, and the policy's answer from poll. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/rng.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/ckpt/internal.h" /* ckpt_latest_read (its own test: test_ckpt.c) */

static char tmpdir[256];

static int setup_each(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ckpt_writer.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_each(void **state)
{
    (void)state;
    char cmd[600];
    /* a failed tmpfs test may have left its mount */
    snprintf(cmd, sizeof cmd, "umount '%s/small' 2>/dev/null; rm -rf '%s'", tmpdir, tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void fill(float *x, size_t n, uint64_t seed)
{
    uint64_t key = rng_key(seed, 9, 9, 9);
    for (size_t i = 0; i < n; i++) x[i] = (rng_uniform(key, i) - 0.5f) * 0.1f;
}

static void meta_for(CkptMeta *m, size_t np, long step)
{
    ckpt_meta_init(m);
    ModelConfig cfg = model_default_config();
    ckpt_meta_set_model(m, &cfg, np);
    m->step = step;
    m->seed = 5;
}

/* Names of ckpt-*.gnck in dir, sorted, joined by ' '. Fails on temp files. */
static void list_dir(const char *dir, char *out, size_t len)
{
    char names[64][256];
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strstr(de->d_name, ".tmp.")) fail_msg("temporary file left: %s", de->d_name);
        if (ckpt_file_step(de->d_name) >= 0 && n < 64) snprintf(names[n++], 256, "%s", de->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[j], names[i]) < 0) {
                char t[256];
                memcpy(t, names[i], 256);
                memcpy(names[i], names[j], 256);
                memcpy(names[j], t, 256);
            }
    out[0] = 0;
    for (int i = 0; i < n; i++) {
        strncat(out, names[i] + 5, len - strlen(out) - 1); /* "00000004.gnck" */
        out[strlen(out) - 5] = 0;                          /* "00000004" */
        if (i + 1 < n) strncat(out, " ", len - strlen(out) - 1);
    }
}

static void check_file(const char *dir, long step, const float *w, const float *m, const float *a, size_t np)
{
    char p[400], err[512], name[64];
    ckpt_file_name(step, name, sizeof name);
    snprintf(p, sizeof p, "%s/%s", dir, name);
    float *w2 = malloc(np * 4), *m2 = malloc(np * 4), *a2 = malloc(np * 4);
    CkptMeta meta;
    int rc = ckpt_load(p, &meta, w2, m2, a2, np, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(meta.step, step);
    assert_memory_equal(w, w2, np * 4);
    assert_memory_equal(m, m2, np * 4);
    assert_memory_equal(a, a2, np * 4);
    ckpt_meta_free(&meta);
    free(w2);
    free(m2);
    free(a2);
}

static void test_async_and_retention_steps(void **state)
{
    (void)state;
    size_t np = 30000;
    CkptWriterConfig cfg = ckpt_writer_default_config();
    cfg.dir = tmpdir;
    cfg.num_params = np;
    cfg.keep = 2;
    cfg.keep_every = 4;
    cfg.zstd_threads = 2;
    char err[1024], listing[512], latest[128];
    CkptWriter *w = ckpt_writer_create(&cfg, err, sizeof err);
    if (!w) fail_msg("%s", err);
    CkptWriterStats st;
    ckpt_writer_stats(w, &st);
    /* either the library runs zstd workers or the writer says why not */
    assert_true(st.zstd_threads == 2 || (st.zstd_threads == 0 && st.note[0]));
    float *x = malloc(3 * np * 4), *keep3 = malloc(3 * np * 4);
    for (long step = 1; step <= 9; step++) {
        fill(x, 3 * np, (uint64_t)step);
        if (step == 8) memcpy(keep3, x, 3 * np * 4);
        CkptMeta m;
        meta_for(&m, np, step);
        assert_int_equal(ckpt_writer_save(w, &m, x, x + np, x + 2 * np, err, sizeof err), 0);
        /* the caller may overwrite its buffers at once */
        memset(x, 0xff, 3 * np * 4);
        ckpt_meta_free(&m);
        assert_int_equal(ckpt_writer_poll(w, err, sizeof err), CKPT_POLL_OK);
    }
    assert_int_equal(ckpt_writer_wait(w, err, sizeof err), CKPT_POLL_OK);
    ckpt_writer_stats(w, &st);
    assert_int_equal(st.saves, 9);
    assert_int_equal(st.writes_done, 9);
    assert_int_equal(st.writes_failed, 0);
    assert_int_equal(st.busy, 0);
    assert_non_null(strstr(st.last_path, "ckpt-00000009.gnck"));
    assert_true(st.last_file_bytes > 0 && st.last_file_bytes < st.last_raw_bytes);
    assert_int_equal(st.last_raw_bytes, 3 * np * 4);
    list_dir(tmpdir, listing, sizeof listing);
    /* newest 2 (8, 9) and the multiples of 4 (4, 8) */
    assert_string_equal(listing, "00000004 00000008 00000009");
    ckpt_latest_read(tmpdir, latest, sizeof latest);
    assert_string_equal(latest, "ckpt-00000009.gnck");
    check_file(tmpdir, 8, keep3, keep3 + np, keep3 + 2 * np, np);
    /* a count mismatch is refused up front */
    CkptMeta m;
    meta_for(&m, np + 1, 10);
    assert_int_equal(ckpt_writer_save(w, &m, x, x, x, err, sizeof err), -1);
    ckpt_meta_free(&m);
    ckpt_writer_free(w);
    free(x);
    free(keep3);
}

static void test_retention_epochs(void **state)
{
    (void)state;
    size_t np = 1000;
    CkptWriterConfig cfg = ckpt_writer_default_config();
    cfg.dir = tmpdir;
    cfg.num_params = np;
    cfg.keep = 1;
    cfg.keep_every = 2;
    cfg.keep_every_unit = CKPT_UNIT_EPOCHS;
    char err[1024], listing[512];
    CkptWriter *w = ckpt_writer_create(&cfg, err, sizeof err);
    assert_non_null(w);
    float *x = calloc(3 * np, 4);
    /* 10 steps per epoch; saves every 5 steps: epochs boundaries at 10, 20, 30 */
    for (long step = 5; step <= 35; step += 5) {
        CkptMeta m;
        meta_for(&m, np, step);
        m.epoch = step / 10;
        m.epoch_step = step % 10;
        assert_int_equal(ckpt_writer_save(w, &m, x, x + np, x + 2 * np, err, sizeof err), 0);
        ckpt_meta_free(&m);
    }
    assert_int_equal(ckpt_writer_wait(w, err, sizeof err), CKPT_POLL_OK);
    list_dir(tmpdir, listing, sizeof listing);
    /* epoch 2 boundary (step 20) kept for good, step 35 the newest */
    assert_string_equal(listing, "00000020 00000035");
    ckpt_writer_free(w);
    free(x);
}

typedef struct {
    long fail_step_file; /* fail writes to this checkpoint ... */
    uint64_t after;      /* ... once this many bytes are written */
    int err_no;
} Fault;

static int fault_hook(void *ctx, const char *path, uint64_t written)
{
    Fault *f = ctx;
    char name[64];
    ckpt_file_name(f->fail_step_file, name, sizeof name);
    return strstr(path, name) && written >= f->after ? f->err_no : 0;
}

/* Checkpoint 3 of 4 fails (err_no) after `after` bytes. With zstd workers
 * and sections larger than the encoder's 4 MB output chunk, the failure falls
 * inside an unfinished zstd frame, as a disk filling up mid-write does. */
static void run_failure_with(int err_no, CkptFailPolicy policy, int want_poll, const char *want_text, size_t np,
                             int zstd_threads, uint64_t after)
{
    Fault fault = {3, after, err_no};
    CkptWriterConfig cfg = ckpt_writer_default_config();
    cfg.dir = tmpdir;
    cfg.num_params = np;
    cfg.zstd_threads = zstd_threads;
    cfg.keep = 1;
    cfg.fail = policy;
    cfg.fault = fault_hook;
    cfg.fault_ctx = &fault;
    char err[1024], listing[512], latest[128];
    CkptWriter *w = ckpt_writer_create(&cfg, err, sizeof err);
    assert_non_null(w);
    float *x = malloc(3 * np * 4);
    for (long step = 1; step <= 4; step++) {
        fill(x, 3 * np, (uint64_t)step);
        CkptMeta m;
        meta_for(&m, np, step);
        assert_int_equal(ckpt_writer_save(w, &m, x, x + np, x + 2 * np, err, sizeof err), 0);
        ckpt_meta_free(&m);
        int rc = ckpt_writer_wait(w, err, sizeof err);
        if (step != 3) {
            assert_int_equal(rc, CKPT_POLL_OK);
            continue;
        }
        assert_int_equal(rc, want_poll);
        assert_non_null(strstr(err, "ckpt-00000003.gnck"));
        assert_non_null(strstr(err, want_text));
        assert_non_null(strstr(err, "older checkpoints are intact"));
        assert_null(strchr(err, '\n'));
        /* reported once */
        assert_int_equal(ckpt_writer_poll(w, err, sizeof err), CKPT_POLL_OK);
        /* step 2 survives, verified, and latest still names it */
        list_dir(tmpdir, listing, sizeof listing);
        assert_string_equal(listing, "00000002");
        ckpt_latest_read(tmpdir, latest, sizeof latest);
        assert_string_equal(latest, "ckpt-00000002.gnck");
        fill(x, 3 * np, 2);
        check_file(tmpdir, 2, x, x + np, x + 2 * np, np);
    }
    /* training went on and the next checkpoint was written */
    list_dir(tmpdir, listing, sizeof listing);
    assert_string_equal(listing, "00000004");
    CkptWriterStats st;
    ckpt_writer_stats(w, &st);
    assert_int_equal(st.writes_failed, 1);
    assert_int_equal(st.writes_done, 3);
    ckpt_writer_free(w);
    free(x);
}

static void run_failure(int err_no, CkptFailPolicy policy, int want_poll, const char *want_text)
{
    run_failure_with(err_no, policy, want_poll, want_text, 20000, 0, 5000);
}

static void test_enospc_continue(void **state)
{
    (void)state;
    run_failure(ENOSPC, CKPT_FAIL_CONTINUE, CKPT_POLL_FAILED, "No space left on device");
}

/* The trainer's default, one zstd worker: the write after a failure inside
 * a frame crashed in libzstd's worker before the encoder made its context
 * anew. 4 M floats a section, the failure at its first output chunk (the
 * 32-byte header goes through): the frame is left with work in flight. */
static void test_enospc_inside_a_frame_with_workers(void **state)
{
    (void)state;
    run_failure_with(ENOSPC, CKPT_FAIL_CONTINUE, CKPT_POLL_FAILED, "No space left on device", 4000000, 1, 32);
}

static void test_eio_stop(void **state)
{
    (void)state;
    run_failure(EIO, CKPT_FAIL_STOP, CKPT_POLL_STOP, "Input/output error");
}

/* A failure of the `latest` update itself: the checkpoint is there, the
 * pointer keeps naming the previous one, and the trainer hears of it. */
static int latest_fault(void *ctx, const char *path, uint64_t written)
{
    (void)ctx;
    (void)written;
    return strstr(path, "/latest") ? ENOSPC : 0;
}

static void test_latest_failure(void **state)
{
    (void)state;
    size_t np = 100;
    CkptWriterConfig cfg = ckpt_writer_default_config();
    cfg.dir = tmpdir;
    cfg.num_params = np;
    cfg.fault = latest_fault;
    char err[1024], report[1024], found[512];
    CkptWriter *w = ckpt_writer_create(&cfg, err, sizeof err);
    assert_non_null(w);
    float *x = calloc(3 * np, 4);
    CkptMeta m;
    meta_for(&m, np, 7);
    assert_int_equal(ckpt_writer_save(w, &m, x, x + np, x + 2 * np, err, sizeof err), 0);
    assert_int_equal(ckpt_writer_wait(w, err, sizeof err), CKPT_POLL_FAILED);
    assert_non_null(strstr(err, "latest was not updated"));
    /* --resume auto scans and still finds it */
    float *back = malloc(3 * np * sizeof(float));
    assert_int_equal(ckpt_load_latest(tmpdir, found, sizeof found, NULL, back, back + np, back + 2 * np, np, report,
                                      sizeof report, err, sizeof err), 1);
    assert_non_null(strstr(found, "ckpt-00000007.gnck"));
    free(back);
    ckpt_meta_free(&m);
    ckpt_writer_free(w);
    free(x);
}

/* A real kernel error: the file size limit makes write() fail with EFBIG. */
static void test_rlimit_fsize(void **state)
{
    (void)state;
    size_t np = 200000; /* about 2 MB of checkpoint */
    CkptWriterConfig cfg = ckpt_writer_default_config();
    cfg.dir = tmpdir;
    cfg.num_params = np;
    char err[1024], listing[512];
    CkptWriter *w = ckpt_writer_create(&cfg, err, sizeof err);
    assert_non_null(w);
    float *x = malloc(3 * np * 4);
    fill(x, 3 * np, 1);
    CkptMeta m;
    meta_for(&m, np, 1);
    assert_int_equal(ckpt_writer_save(w, &m, x, x + np, x + 2 * np, err, sizeof err), 0);
    assert_int_equal(ckpt_writer_wait(w, err, sizeof err), CKPT_POLL_OK);

    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 256 * 1024;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    m.step = 2;
    assert_int_equal(ckpt_writer_save(w, &m, x, x + np, x + 2 * np, err, sizeof err), 0);
    int rc = ckpt_writer_wait(w, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rc, CKPT_POLL_FAILED);
    assert_non_null(strstr(err, "File too large"));
    list_dir(tmpdir, listing, sizeof listing);
    assert_string_equal(listing, "00000001");
    check_file(tmpdir, 1, x, x + np, x + 2 * np, np);
    ckpt_meta_free(&m);
    ckpt_writer_free(w);
    free(x);
}

/* A real ENOSPC: a 512 KB tmpfs, when this machine lets the test mount one. */
static void test_tmpfs_full(void **state)
{
    (void)state;
    char mnt[300], cmd[400];
    snprintf(mnt, sizeof mnt, "%s/small", tmpdir);
    mkdir(mnt, 0755);
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=512k tmpfs '%s' 2>/dev/null", mnt);
    if (geteuid() != 0 || system(cmd) != 0) {
        fprintf(stderr, "cannot mount a tmpfs here; ENOSPC is covered by the injected fault test\n");
        skip();
    }
    size_t np = 25000; /* random floats: about 260 KB a checkpoint */
    CkptWriterConfig cfg = ckpt_writer_default_config();
    cfg.dir = mnt;
    cfg.num_params = np;
    char err[1024], listing[512], latest[128];
    CkptWriter *w = ckpt_writer_create(&cfg, err, sizeof err);
    assert_non_null(w);
    float *x = malloc(3 * np * 4);
    uint64_t k = rng_key(1, 2, 3, 4);
    for (size_t i = 0; i < 3 * np; i++) {
        uint32_t u = (uint32_t)rng_bits(k, i);
        memcpy(&x[i], &u, 4);
        if (x[i] != x[i]) x[i] = 1.0f; /* no NaNs: a bitwise compare is still exact */
    }
    int failed_at = 0;
    for (long step = 1; step <= 4 && !failed_at; step++) {
        CkptMeta m;
        meta_for(&m, np, step);
        assert_int_equal(ckpt_writer_save(w, &m, x, x + np, x + 2 * np, err, sizeof err), 0);
        ckpt_meta_free(&m);
        if (ckpt_writer_wait(w, err, sizeof err) != CKPT_POLL_OK) failed_at = (int)step;
    }
    fprintf(stderr, "tmpfs full at checkpoint %d: %s\n", failed_at, err);
    assert_int_equal(failed_at, 2);
    assert_non_null(strstr(err, "No space left on device"));
    assert_non_null(strstr(err, "temporary file was removed"));
    list_dir(mnt, listing, sizeof listing);
    assert_string_equal(listing, "00000001");
    ckpt_latest_read(mnt, latest, sizeof latest);
    assert_string_equal(latest, "ckpt-00000001.gnck");
    check_file(mnt, 1, x, x + np, x + 2 * np, np);
    ckpt_writer_free(w);
    free(x);
    snprintf(cmd, sizeof cmd, "umount '%s'", mnt);
    assert_int_equal(system(cmd), 0);
}

static void test_create_errors_and_stale_temps(void **state)
{
    (void)state;
    char err[1024], p[400];
    CkptWriterConfig cfg = ckpt_writer_default_config();
    cfg.num_params = 10;
    cfg.dir = "/nonexistent/ckpts";
    assert_null(ckpt_writer_create(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "does not exist"));
    cfg.dir = tmpdir;
    cfg.zstd_level = 100;
    assert_null(ckpt_writer_create(&cfg, err, sizeof err));
    assert_non_null(strstr(err, "zstd level"));
    cfg.zstd_level = 3;
    /* a temporary file a crash left behind is removed; other files are not */
    snprintf(p, sizeof p, "%s/.ckpt-00000005.gnck.tmp.123.0", tmpdir);
    FILE *f = fopen(p, "w");
    fputs("partial", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/notes.txt", tmpdir);
    f = fopen(p, "w");
    fclose(f);
    CkptWriter *w = ckpt_writer_create(&cfg, err, sizeof err);
    assert_non_null(w);
    snprintf(p, sizeof p, "%s/.ckpt-00000005.gnck.tmp.123.0", tmpdir);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof p, "%s/notes.txt", tmpdir);
    assert_int_equal(access(p, F_OK), 0);
    ckpt_writer_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_async_and_retention_steps, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_retention_epochs, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_enospc_continue, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_enospc_inside_a_frame_with_workers, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_eio_stop, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_latest_failure, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_rlimit_fsize, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_tmpfs_full, setup_each, teardown_each),
        cmocka_unit_test_setup_teardown(test_create_errors_and_stale_temps, setup_each, teardown_each),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
