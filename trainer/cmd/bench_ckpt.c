/* cmd/bench_ckpt.c: `googlenet bench ckpt` (bench_ckpt.h). Measures
 * checkpoint compression (raw fp32, plain zstd, byte-shuffle + zstd) on
 * Gaussian weights and on weights after SGD steps of the real network (or
 * --from a file), then the training stall per checkpoint of the asynchronous
 * writer against one training step. Every step is train_step (step.h). It
 * writes only inside a temporary directory it removes. */
#include "trainer/cmd/bench_ckpt.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "comm/clock.h"
#include "nn/model.h"
#include "nn/rng.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/cli.h"
#include "trainer/commands.h"
#include "trainer/runtime.h"
#include "trainer/train/step.h"

typedef struct {
    const char *from, *dir;
    int train_steps, crop, batch, level, zthreads, saves, json;
    int step_crop, step_batch, threads, nice;
    double lr, step_ms_given;
} BenchCkptOptions;

/* The state whose compression is measured: (np) each. */
typedef struct {
    size_t np;
    float *w, *mom, *avg;
    int have_mom;        /* an .npy gives no momentum */
    char source[600];    /* where it came from, for the report */
} BenchState;

typedef struct {
    uint64_t raw, zstd, shuffled;
    double t_zstd, t_shuffled;
    double entropy_floor; /* order-0 entropy of the four byte planes / 32 bits */
} CodecFigures;

static size_t zstd_once(ZSTD_CCtx *c, void *dst, size_t cap, const void *src, size_t n)
{
    ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
    size_t r = ZSTD_compress2(c, dst, cap, src, n);
    return ZSTD_isError(r) ? 0 : r;
}

static double plane_entropy(const uint8_t *p, size_t n)
{
    size_t h[256] = {0};
    for (size_t i = 0; i < n; i++) h[p[i]]++;
    double e = 0;
    for (int k = 0; k < 256; k++)
        if (h[k]) e -= (double)h[k] / (double)n * log2((double)h[k] / (double)n);
    return e;
}

static int codec_figures(const float *x, size_t n, int level, int threads, CodecFigures *f)
{
    size_t bytes = n * sizeof(float), cap = ZSTD_compressBound(bytes);
    uint8_t *dst = malloc(cap), *planes = malloc(bytes);
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!dst || !planes || !c) {
        free(dst);
        free(planes);
        ZSTD_freeCCtx(c);
        return -1;
    }
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
    if (threads > 0) ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, threads);
    memset(f, 0, sizeof *f);
    f->raw = bytes;
    double t0 = clock_now();
    f->zstd = zstd_once(c, dst, cap, x, bytes);
    double t1 = clock_now();
    const uint32_t *u = (const uint32_t *)x;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) planes[k * n + i] = (uint8_t)(u[i] >> (8 * k));
    f->shuffled = zstd_once(c, dst, cap, planes, bytes);
    double t2 = clock_now();
    f->t_zstd = t1 - t0;
    f->t_shuffled = t2 - t1;
    for (int k = 0; k < 4; k++) f->entropy_floor += plane_entropy(planes + k * n, n) / 32.0;
    free(dst);
    free(planes);
    ZSTD_freeCCtx(c);
    return f->zstd && f->shuffled ? 0 : -1;
}

static void print_codec(const char *what, const CodecFigures *f)
{
    printf("  %-22s raw %7.2f MB | zstd %7.2f MB %.4f %5.2fs | shuffle+zstd %7.2f MB %.4f %5.2fs | "
           "order-0 floor %.4f\n",
           what, f->raw / 1e6, f->zstd / 1e6, (double)f->zstd / f->raw, f->t_zstd, f->shuffled / 1e6,
           (double)f->shuffled / f->raw, f->t_shuffled, f->entropy_floor);
}

static void gaussian(float *x, size_t n, float sigma, uint64_t seed)
{
    uint64_t key = rng_key(seed, 0x6a, 0, 0);
    for (size_t i = 0; i < n; i += 2) {
        double u1 = (rng_bits(key, i) >> 11) * 0x1.0p-53, u2 = (rng_bits(key, i + 1) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1 > 0 ? u1 : 0x1.0p-53)), a = 2 * M_PI * u2;
        x[i] = (float)(sigma * r * cos(a));
        if (i + 1 < n) x[i + 1] = (float)(sigma * r * sin(a));
    }
}


/* Ten fixed batches the network can partly memorise, so that gradients stay
 * informative (TrainFetch). */
static int fetch_memorable(void *ctx, const TrainPosition *pos, int micro, float *images, int *labels,
                           StepStats *st, char *err, size_t errlen)
{
    const int *shape = ctx; /* batch, crop */
    size_t in_n = (size_t)shape[0] * 3 * shape[1] * shape[1];
    uint64_t key = rng_key(11, (uint64_t)(pos->step % 10), 0, 0);
    for (size_t i = 0; i < in_n; i++) images[i] = 2.0f * rng_uniform(key, i) - 1.0f;
    for (int i = 0; i < shape[0]; i++) labels[i] = (int)(rng_bits(key, in_n + (uint64_t)i) % 1000);
    return 0;
}

/* Trains the real network on random data: weights that moved under SGD,
 * with momentum and an average, not a fresh initialisation. */
static int train_state(const BenchCkptOptions *o, BenchState *s, double *loss_first, double *loss_last, char *err,
                       size_t errlen)
{
    ModelConfig cfg = model_default_config();
    cfg.crop = o->crop;
    cfg.batch = o->batch;
    Model *m = model_init(&cfg, err, errlen);
    if (!m) return -1;
    if (model_num_params(m) != s->np) {
        snprintf(err, errlen, "model has %zu parameters, expected %zu", model_num_params(m), s->np);
        model_free(m);
        return -1;
    }
    model_init_weights(m, 1);
    TrainStepLocal l;
    if (train_step_local_init(&l, m, o->batch, 1000, o->lr, 0.9, 2e-4, 0.99, 11, 11, err, errlen) != 0) {
        model_free(m);
        return -1;
    }
    int shape[2] = {o->batch, o->crop};
    l.step.fetch = fetch_memorable;
    l.step.fetch_ctx = shape;
    *loss_last = 0;
    for (int i = 0; i < o->train_steps; i++) {
        StepStats st;
        train_step(&l.step, &l.pos, &st, err, errlen);
        double loss = st.loss / st.samples;
        if (i == 0) *loss_first = loss;
        *loss_last = loss;
        if (!isfinite(loss)) {
            snprintf(err, errlen, "training diverged at step %d (loss %g); lower --lr", i, loss);
            break;
        }
        if ((i + 1) % 50 == 0) fprintf(stderr, "  trained %d/%d steps, loss %.3f\n", i + 1, o->train_steps, loss);
    }
    memcpy(s->w, model_params(m), s->np * sizeof(float));
    memcpy(s->mom, l.opt.momentum, s->np * sizeof(float));
    memcpy(s->avg, l.opt.average, s->np * sizeof(float));
    train_step_local_free(&l);
    model_free(m);
    return isfinite(*loss_last) ? 0 : -1;
}

/* One training step's time at the production shape, alone (steps 1 and 2;
 * step 0 warms up) and while the writer compresses a checkpoint of s in the
 * background (step 3). */
static int time_step(const BenchCkptOptions *o, const BenchState *s, CkptWriter *wr, const CkptMeta *meta,
                     double *alone_ms, double *during_ms, char *err, size_t errlen)
{
    ModelConfig cfg = model_default_config();
    cfg.crop = o->step_crop;
    cfg.batch = o->step_batch;
    Model *m = model_init(&cfg, err, errlen);
    if (!m) return -1;
    memcpy(model_params(m), s->w, s->np * sizeof(float));
    TrainStepLocal l;
    if (train_step_local_init(&l, m, o->step_batch, 1000, 1e-4, 0.9, 2e-4, 0.999, 3, 3, err, errlen) != 0) {
        model_free(m);
        return -1;
    }
    double t_alone = 0;
    int rc = 0;
    for (int i = 0; i < 4 && rc == 0; i++) {
        if (i == 3 && (rc = ckpt_writer_save(wr, meta, s->w, s->mom, s->avg, err, errlen)) != 0) break;
        double t0 = clock_now();
        StepStats st;
        train_step(&l.step, &l.pos, &st, err, errlen);
        double dt = clock_now() - t0;
        if (i == 1 || i == 2) t_alone += dt;
        if (i == 3) *during_ms = dt * 1e3;
    }
    *alone_ms = t_alone / 2 * 1e3;
    train_step_local_free(&l);
    model_free(m);
    return rc;
}

/* The flags into o. *done: leave with the returned code (help, or a bad flag). */
static int parse_options(int argc, char **argv, BenchCkptOptions *o, int *done)
{
    *o = (BenchCkptOptions){.dir = "/tmp", .train_steps = 200, .crop = 64, .batch = 16, .level = 3, .saves = 3,
                            .step_crop = 224, .step_batch = 32, .nice = 10, .lr = 0.01};
    CliFlag flags[] = {
        {"--from", CLI_STR, &o->from, "take trained weights from a checkpoint (.gnck) or an .npy instead of training",
         NULL, 0, 0, "FILE"},
        {"--train-steps", CLI_INT, &o->train_steps, "SGD steps of the real network on random data", NULL, 0, 100000},
        {"--crop", CLI_INT, &o->crop, "crop of those steps", NULL, 8, CLI_CROP_MAX},
        {"--batch", CLI_INT, &o->batch, "batch of those steps", NULL, 1, CLI_BATCH_MAX},
        {"--lr", CLI_FLOAT, &o->lr, "learning rate of those steps", NULL, 0, 100},
        {"--ckpt-level", CLI_INT, &o->level, "Zstandard level", NULL, CLI_LEVEL_MIN, CLI_LEVEL_MAX, NULL, "--level"},
        {"--ckpt-threads", CLI_INT, &o->zthreads, "Zstandard worker threads (0: the writer thread compresses)", NULL, 0,
         CLI_ZSTD_THREADS_MAX, NULL, "--zstd-threads"},
        {"--nice", CLI_INT, &o->nice, "nice value of the writer thread (0 leaves it as training's)", NULL, 0, 19},
        {"--saves", CLI_INT, &o->saves, "checkpoints written through the asynchronous writer", NULL, 1, 100},
        {"--dir", CLI_STR, &o->dir, "where the benchmark writes (a temporary directory inside it)", NULL, 0, 0, "DIR"},
        {"--step-ms", CLI_FLOAT, &o->step_ms_given, "one training step's time (from `googlenet bench`); 0 measures it",
         NULL, 0, 1e9},
        {"--step-crop", CLI_INT, &o->step_crop, "crop of the measured training step", NULL, 8, CLI_CROP_MAX},
        {"--step-batch", CLI_INT, &o->step_batch, "batch of the measured training step", NULL, 1, CLI_BATCH_MAX},
        {"--threads", CLI_INT, &o->threads, "threads for training; 0: this node's cores / its ranks", NULL, 0, CLI_THREADS_MAX},
        {"--json", CLI_BOOL, &o->json, "end with one JSON line of the figures"},
    };
    int help = 0, npos = 0;
    char err[300];
    *done = 1;
    if (cli_parse(flags, CLI_COUNT(flags), argc, argv, NULL, 0, &npos, &help, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet bench ckpt: %s\n", err);
        return EXIT_USAGE;
    }
    if (help) {
        cli_print_help(stdout, "googlenet bench ckpt [flags]   (also: googlenet ckpt bench [flags])",
                       "Measures checkpoint compression (raw fp32, plain zstd, byte-shuffle + zstd) on\n"
                       "Gaussian weights and on weights after SGD steps of the real network (or --from a\n"
                       "file), then the training stall per checkpoint of the asynchronous writer against\n"
                       "one training step (the step `train` runs).",
                       flags, CLI_COUNT(flags));
        return EXIT_OK;
    }
    *done = 0;
    return EXIT_OK;
}

/* --from FILE: a checkpoint's three sets, or an .npy of weights. */
static int load_state(const char *from, BenchState *s, char *err, size_t errlen)
{
    size_t len = strlen(from), n = 0, np = s->np;
    if (len > 4 && strcmp(from + len - 4, ".npy") == 0) {
        float *x = ckpt_npy_read(from, &n, err, errlen);
        if (!x) return -1;
        if (n != np) {
            snprintf(err, errlen, "%s holds %zu floats, the default network %zu", from, n, np);
            free(x);
            return -1;
        }
        memcpy(s->w, x, np * 4);
        memcpy(s->avg, x, np * 4);
        memset(s->mom, 0, np * 4);
        s->have_mom = 0;
        free(x);
    } else if (ckpt_load(from, NULL, s->w, s->mom, s->avg, np, err, errlen) != 0) {
        return -1;
    }
    snprintf(s->source, sizeof s->source, "weights from %s", from);
    return 0;
}

/* The trained state (from --from, or trained now), and its compression. */
static int trained_state(const BenchCkptOptions *o, BenchState *s, CodecFigures *fw, char *err, size_t errlen)
{
    s->have_mom = 1;
    if (o->from) {
        if (load_state(o->from, s, err, errlen) != 0) return -1;
    } else {
        double l0 = 0, l1 = 0;
        fprintf(stderr, "  training %d steps (crop %d, batch %d, lr %g) for trained weights...\n", o->train_steps,
                o->crop, o->batch, o->lr);
        if (train_state(o, s, &l0, &l1, err, errlen) != 0) return -1;
        snprintf(s->source, sizeof s->source, "after %d SGD steps (crop %d, batch %d, lr %g; loss %.3f -> %.3f)",
                 o->train_steps, o->crop, o->batch, o->lr, l0, l1);
    }
    printf("  trained state: %s\n", s->source);
    CodecFigures fm = {0}, fa = {0};
    if (codec_figures(s->w, s->np, o->level, o->zthreads, fw) != 0 ||
        (s->have_mom && codec_figures(s->mom, s->np, o->level, o->zthreads, &fm) != 0) ||
        codec_figures(s->avg, s->np, o->level, o->zthreads, &fa) != 0) {
        snprintf(err, errlen, "zstd failed");
        return -1;
    }
    print_codec("trained weights", fw);
    if (s->have_mom) print_codec("trained momentum", &fm);
    print_codec("trained average", &fa);
    return 0;
}

/* What the asynchronous writer costs training. */
typedef struct {
    double copy_ms, copy_max_ms, write_s;  /* per save: blocked (copy), and written in the background */
    uint64_t file_bytes, raw_bytes;
    double alone_ms, during_ms;            /* one training step, alone and during a write */
} WriterFigures;

/* --saves checkpoints through the writer, then the step timed alone and
 * during a write (unless --step-ms gave it). */
static int writer_figures(const BenchCkptOptions *o, const BenchState *s, CkptWriter *wr, WriterFigures *f,
                          char *err, size_t errlen)
{
    CkptMeta meta;
    ckpt_meta_init(&meta);
    ModelConfig dc = model_default_config();
    ckpt_meta_set_model(&meta, &dc, s->np);
    double copy_sum = 0, write_sum = 0;
    CkptWriterStats st;
    int rc = 0;
    memset(f, 0, sizeof *f);
    for (int i = 0; i < o->saves && rc == 0; i++) {
        meta.step = i + 1;
        if (ckpt_writer_save(wr, &meta, s->w, s->mom, s->avg, err, errlen) != 0 ||
            ckpt_writer_wait(wr, err, errlen) != CKPT_POLL_OK) {
            rc = -1;
            break;
        }
        ckpt_writer_stats(wr, &st);
        copy_sum += st.last_copy_s;
        f->copy_max_ms = fmax(f->copy_max_ms, st.last_copy_s * 1e3);
        write_sum += st.last_write_s;
        f->file_bytes = st.last_file_bytes;
        f->raw_bytes = st.last_raw_bytes;
    }
    if (rc == 0) {
        if (st.note[0]) printf("  note: %s\n", st.note);
        f->copy_ms = copy_sum / o->saves * 1e3;
        f->write_s = write_sum / o->saves;
        printf("  writer: %d checkpoints of %.1f MB (%.4f of %.1f MB raw): training blocked %.1f ms per save "
               "(copy; max %.1f ms), written in %.2f s in the background\n",
               o->saves, f->file_bytes / 1e6, (double)f->file_bytes / f->raw_bytes, f->raw_bytes / 1e6, f->copy_ms,
               f->copy_max_ms, f->write_s);
        f->alone_ms = o->step_ms_given;
    }
    if (rc == 0 && o->step_ms_given <= 0) {
        fprintf(stderr, "  timing training steps (crop %d, batch %d, %d threads)...\n", o->step_crop, o->step_batch,
                o->threads);
        meta.step = o->saves + 1;
        rc = time_step(o, s, wr, &meta, &f->alone_ms, &f->during_ms, err, errlen);
        char werr[256];
        ckpt_writer_wait(wr, werr, sizeof werr);
        if (rc == 0)
            printf("  training step (crop %d, batch %d, %d threads): %.0f ms alone, %.0f ms while the writer "
                   "compresses\n", o->step_crop, o->step_batch, o->threads, f->alone_ms, f->during_ms);
    } else if (rc == 0) {
        printf("  training step: %.0f ms (given by --step-ms)\n", f->alone_ms);
    }
    ckpt_meta_free(&meta);
    return rc;
}

/* The writer in a temporary directory under --dir, its figures, and the
 * directory removed with what it wrote. */
static int measure_writer(const BenchCkptOptions *o, const BenchState *s, WriterFigures *f, char *err, size_t errlen)
{
    char tdir[4096];
    snprintf(tdir, sizeof tdir, "%s/ckpt-bench.XXXXXX", o->dir);
    if (!mkdtemp(tdir)) {
        snprintf(err, errlen, "cannot create a directory in %s: %s", o->dir, strerror(errno));
        return -1;
    }
    CkptWriterConfig wc = ckpt_writer_default_config();
    wc.dir = tdir;
    wc.num_params = s->np;
    wc.zstd_level = o->level;
    wc.zstd_threads = o->zthreads;
    wc.keep = 2;
    wc.nice = o->nice;
    CkptWriter *wr = ckpt_writer_create(&wc, err, errlen);
    int rc = wr ? writer_figures(o, s, wr, f, err, errlen) : -1;
    ckpt_writer_free(wr);
    char p[4400];
    for (int i = 1; i <= o->saves + 1; i++) {
        char name[64];
        ckpt_file_name(i, name, sizeof name);
        snprintf(p, sizeof p, "%s/%s", tdir, name);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/%s", tdir, CKPT_LATEST);
    unlink(p);
    rmdir(tdir);
    return rc;
}

static void print_summary(const BenchCkptOptions *o, size_t np, const CodecFigures *fg, const CodecFigures *fw,
                          const WriterFigures *f)
{
    double stall_frac = f->copy_ms / f->alone_ms;
    printf("  stall per checkpoint: %.1f ms = %.2f%% of one training step (target < 5%%)\n", f->copy_ms,
           100 * stall_frac);
    printf("  shuffle+zstd on trained weights: %.4f of raw (target <= 0.87)\n", (double)fw->shuffled / fw->raw);
    if (!o->json) return;
    printf("{\"params\":%zu,\"level\":%d,\"zstd_threads\":%d,\"nice\":%d,"
           "\"gaussian\":{\"raw\":%llu,\"zstd\":%llu,\"shuffle_zstd\":%llu,\"t_zstd\":%.3f,\"t_shuffle_zstd\":%.3f},"
           "\"trained\":{\"raw\":%llu,\"zstd\":%llu,\"shuffle_zstd\":%llu,\"t_zstd\":%.3f,\"t_shuffle_zstd\":%.3f},"
           "\"file_bytes\":%llu,\"raw_bytes\":%llu,\"copy_ms\":%.2f,\"write_s\":%.3f,\"step_ms\":%.1f,"
           "\"step_ms_during_write\":%.1f,\"stall_frac\":%.5f}\n",
           np, o->level, o->zthreads, o->nice, (unsigned long long)fg->raw, (unsigned long long)fg->zstd,
           (unsigned long long)fg->shuffled, fg->t_zstd, fg->t_shuffled, (unsigned long long)fw->raw,
           (unsigned long long)fw->zstd, (unsigned long long)fw->shuffled, fw->t_zstd, fw->t_shuffled,
           (unsigned long long)f->file_bytes, (unsigned long long)f->raw_bytes, f->copy_ms, f->write_s, f->alone_ms,
           f->during_ms, stall_frac);
}

/* The default network's parameter count. 0 after a message in err. */
static size_t default_num_params(char *err, size_t errlen)
{
    ModelConfig cfg = model_default_config();
    cfg.training = 0;
    cfg.batch = 1;
    Model *probe = model_init(&cfg, err, errlen);
    if (!probe) return 0;
    size_t np = model_num_params(probe);
    model_free(probe);
    return np;
}

static int run_bench(const BenchCkptOptions *o, BenchState *s, char *err, size_t errlen)
{
    printf("googlenet bench ckpt: %zu parameters, zstd level %d, %d zstd worker thread%s, writer nice %d\n", s->np,
           o->level, o->zthreads, o->zthreads == 1 ? "" : "s", o->nice);
    CodecFigures fg, fw;
    /* the Gaussian set lives in the average's buffer until the trained state replaces it */
    gaussian(s->avg, s->np, 0.02f, 1);
    if (codec_figures(s->avg, s->np, o->level, o->zthreads, &fg) != 0) {
        snprintf(err, errlen, "zstd failed");
        return -1;
    }
    print_codec("gaussian N(0, 0.02)", &fg);
    WriterFigures f;
    if (trained_state(o, s, &fw, err, errlen) != 0 || measure_writer(o, s, &f, err, errlen) != 0) return -1;
    print_summary(o, s->np, &fg, &fw, &f);
    return 0;
}

int cmd_bench_ckpt(int argc, char **argv)
{
    BenchCkptOptions o;
    int done, rc = parse_options(argc, argv, &o, &done);
    if (done) return rc;
    if (o.threads == 0) o.threads = trainer_default_threads();
    trainer_set_threads(o.threads);
    char err[1200];
    BenchState s = {.np = default_num_params(err, sizeof err)};
    if (!s.np) {
        fprintf(stderr, "googlenet bench ckpt: %s\n", err);
        return EXIT_FAIL;
    }
    s.w = malloc(s.np * 4);
    s.mom = malloc(s.np * 4);
    s.avg = malloc(s.np * 4);
    if (!s.w || !s.mom || !s.avg) {
        snprintf(err, sizeof err, "out of memory for %zu parameters", s.np);
        rc = -1;
    } else {
        rc = run_bench(&o, &s, err, sizeof err);
    }
    if (rc != 0) fprintf(stderr, "googlenet bench ckpt: %s\n", err);
    free(s.w);
    free(s.mom);
    free(s.avg);
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}
