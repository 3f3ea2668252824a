/* eval/evaluate.c: the multi-crop evaluation of one rank's shard, the reduction over
 * ranks, and the report (JSON) and table of the figures.
 *
 * The crop stream: image j of the shard owns crop positions [j*K, (j+1)*K)
 * (K crops per image), and batch q holds positions [q*B, (q+1)*B). Batch q
 * lives in ring slot q % nslots. A decode worker takes the next image, reads,
 * decodes and plans it once, and writes each crop straight into its position,
 * waiting while that position's slot still holds an older batch; an image that
 * fails leaves holes (valid = 0) where its crops would be. The caller's thread
 * waits for the oldest batch to fill, squeezes out the holes, runs the network
 * once per weight set and adds the softmax rows into per-image accumulators.
 * Progress is guaranteed with nslots > the batches one image spans: the worker
 * on the oldest unfinished image never waits for a slot.
 * Never prints, never exits: failures come back as one line in err.
 */
#include "trainer/eval/evaluate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/clock.h"
#include "dataloader/sampler.h"
#include "nn/loss.h"
#include "trainer/eval/crops.h"
#include "trainer/runtime.h"

#define EVAL_MIN_BAD_TO_STOP 16 /* a rank stops early only after this many bad files */
#define EVAL_P_FLOOR 1e-30      /* -log p is taken of max(p, this): a finite loss */
#define EVAL_MSG 256

EvalConfig evaluate_default_config(void)
{
    EvalConfig c;
    memset(&c, 0, sizeof c);
    c.crops = 1;
    c.resize = 256;
    c.filter = IMAGE_FILTER_BILINEAR;
    const float mean[3] = IMAGE_MEAN_RGB, std[3] = IMAGE_STD_RGB;
    memcpy(c.mean, mean, sizeof mean);
    memcpy(c.std, std, sizeof std);
    c.workers = 2;
    c.max_pixels = IMAGE_MAX_PIXELS_DEFAULT;
    c.max_bad = 0.01;
    return c;
}

typedef struct {
    float *x;        /* (B, 3, crop, crop) */
    uint8_t *valid;  /* (B) 1: a crop was written; 0: a hole (its image failed) */
    long seq;        /* the batch it holds or waits for */
    int done;        /* positions written */
} EvalSlot;

typedef struct {
    uint8_t *bytes;  /* encoded file, grown to the largest seen */
    size_t cap;
    Image img;
    ImageScratch *scratch;
} EvalWorker;

typedef struct {
    const EvalConfig *cfg;
    const Dataset *ds;
    size_t begin;        /* first position of the shard (in the subset when there is one) */
    size_t stride;       /* dataset item of position p: p * stride */
    long nimg;           /* images in the shard */
    int K, B, crop;
    size_t crop_floats;  /* 3 * crop * crop */
    long total;          /* nimg * K crop positions */
    long nbatches;
    EvalSlot *slots;
    int nslots;
    pthread_mutex_t mu;
    pthread_cond_t free_cv, done_cv;
    long next_image;     /* the next image a worker takes */
    int stop, failed;
    char fail_msg[EVAL_MSG];
    long bad;            /* images of this shard that failed */
    char bad_names[EVAL_BAD_NAMES][256];
    int nbad_names;
    EvalWorker *workers; /* (max(nthreads, 1)) */
    pthread_t *threads;
    int nthreads, started;
} Evaluator;

static long eval_batch_count(const Evaluator *E, long q)
{
    long left = E->total - q * E->B;
    return left < E->B ? (left > 0 ? left : 0) : E->B;
}

/* Records a failed image; stops the shard once it is clearly over the limit. Under mu. */
static void eval_note_bad(Evaluator *E, long j, const char *why)
{
    E->bad++;
    if (E->cfg->on_image) E->cfg->on_image(E->cfg->on_image_ctx, (E->begin + (size_t)j) * E->stride, NULL, NULL, why);
    if (E->nbad_names < EVAL_BAD_NAMES)
        snprintf(E->bad_names[E->nbad_names++], 256, "%.150s: %.100s",
                 dataset_item_name(E->ds, (E->begin + (size_t)j) * E->stride), why);
    if (E->bad >= EVAL_MIN_BAD_TO_STOP && E->bad > E->cfg->max_bad * (double)E->nimg && !E->failed) {
        E->failed = 1;
        E->stop = 1;
        snprintf(E->fail_msg, sizeof E->fail_msg,
                 "%ld of %ld images could not be read (limit %.3g%%), e.g. %.120s; check the dataset or raise %s",
                 E->bad, E->nimg, 100 * E->cfg->max_bad, E->bad_names[0],
                 E->cfg->max_bad_name ? E->cfg->max_bad_name : "the bad-file limit");
        pthread_cond_broadcast(&E->free_cv);
        pthread_cond_broadcast(&E->done_cv);
    }
}

/* Reads, decodes and plans image j into w; 0, or -1 with a reason. */
static int eval_decode(Evaluator *E, EvalWorker *w, long j, EvalCropPlan *plan, char *why, size_t whylen)
{
    const EvalConfig *c = E->cfg;
    size_t len = 0;
    if (dataset_read(E->ds, (E->begin + (size_t)j) * E->stride, &w->bytes, &w->cap, &len, why, whylen) != 0) return -1;
    int fw, fh;
    ImageFormat fmt;
    if (image_probe(w->bytes, len, &fw, &fh, &fmt, why, whylen) != 0) return -1;
    if (eval_crops_plan(E->K, fw, fh, E->crop, c->resize, c->filter, c->max_pixels, plan, why, whylen) != 0) return -1;
    return image_decode(w->bytes, len, &plan->decode, &w->img, w->scratch, why, whylen);
}

/* Decodes image j and writes its K crops (or holes) into their slots. */
static void eval_produce(Evaluator *E, EvalWorker *w, long j)
{
    const EvalConfig *c = E->cfg;
    EvalCropPlan plan;
    char why[200] = "";
    int ok = eval_decode(E, w, j, &plan, why, sizeof why) == 0;
    for (int k = 0; k < E->K; k++) {
        long p = j * E->K + k, q = p / E->B;
        EvalSlot *sl = &E->slots[q % E->nslots];
        pthread_mutex_lock(&E->mu);
        while (sl->seq != q && !E->stop) pthread_cond_wait(&E->free_cv, &E->mu);
        int stop = E->stop;
        pthread_mutex_unlock(&E->mu);
        if (stop) return;
        int b = (int)(p - q * E->B);
        if (ok && eval_crops_cut(&plan, k, &w->img, E->crop, c->filter, c->mean, c->std,
                                 sl->x + (size_t)b * E->crop_floats, w->scratch, why, sizeof why) != 0)
            ok = 0;
        sl->valid[b] = (uint8_t)ok;
        pthread_mutex_lock(&E->mu);
        if (!ok && k == E->K - 1) eval_note_bad(E, j, why);
        if (++sl->done == eval_batch_count(E, q)) pthread_cond_broadcast(&E->done_cv);
        pthread_mutex_unlock(&E->mu);
    }
}

static void *eval_worker_main(void *arg)
{
    void **a = arg;
    Evaluator *E = a[0];
    EvalWorker *w = a[1];
    free(arg);
    for (;;) {
        pthread_mutex_lock(&E->mu);
        long j = E->stop || E->next_image >= E->nimg ? -1 : E->next_image++;
        pthread_mutex_unlock(&E->mu);
        if (j < 0) break;
        eval_produce(E, w, j);
    }
    return NULL;
}

static void eval_stop_workers(Evaluator *E)
{
    pthread_mutex_lock(&E->mu);
    E->stop = 1;
    pthread_cond_broadcast(&E->free_cv);
    pthread_mutex_unlock(&E->mu);
    for (int t = 0; t < E->started; t++) pthread_join(E->threads[t], NULL);
    E->started = 0;
}

static void eval_free(Evaluator *E)
{
    if (E->started) eval_stop_workers(E);
    if (E->slots)
        for (int s = 0; s < E->nslots; s++) {
            free(E->slots[s].x);
            free(E->slots[s].valid);
        }
    free(E->slots);
    if (E->workers)
        for (int t = 0; t < (E->nthreads ? E->nthreads : 1); t++) {
            free(E->workers[t].bytes);
            image_free(&E->workers[t].img);
            image_scratch_free(E->workers[t].scratch);
        }
    free(E->workers);
    free(E->threads);
    pthread_mutex_destroy(&E->mu);
    pthread_cond_destroy(&E->free_cv);
    pthread_cond_destroy(&E->done_cv);
}

/* Ring size: the batches one image spans plus one per worker, at least 2 and,
 * while that still leaves one image's span plus one, at most ~512 MB. */
static int eval_ring_slots(int K, int B, int workers, size_t crop_floats)
{
    int span = (K + B - 1) / B + 1;
    int want = span + (workers > 0 ? workers : 0) * ((K + B - 1) / B) + 1;
    if (want < 2) want = 2;
    size_t slot_bytes = (size_t)B * crop_floats * sizeof(float);
    size_t cap = ((size_t)512 << 20) / (slot_bytes ? slot_bytes : 1);
    if ((size_t)want > cap) want = (int)cap;
    if (want < span + 1) want = span + 1;
    return want;
}

static int eval_setup(Evaluator *E, const EvalConfig *cfg, size_t begin, size_t end, size_t stride, int K,
                      int B, int crop, char *err, size_t errlen)
{
    memset(E, 0, sizeof *E);
    pthread_mutex_init(&E->mu, NULL);
    pthread_cond_init(&E->free_cv, NULL);
    pthread_cond_init(&E->done_cv, NULL);
    E->cfg = cfg;
    E->ds = cfg->ds;
    E->begin = begin;
    E->stride = stride;
    E->nimg = (long)(end - begin);
    E->K = K;
    E->B = B;
    E->crop = crop;
    E->crop_floats = (size_t)3 * crop * crop;
    E->total = E->nimg * K;
    E->nbatches = (E->total + B - 1) / B;
    E->nthreads = cfg->workers > 0 ? cfg->workers : 0;
    E->nslots = eval_ring_slots(K, B, E->nthreads, E->crop_floats);
    E->slots = calloc((size_t)E->nslots, sizeof *E->slots);
    int nw = E->nthreads ? E->nthreads : 1;
    E->workers = calloc((size_t)nw, sizeof *E->workers);
    E->threads = calloc((size_t)nw, sizeof *E->threads);
    if (!E->slots || !E->workers || !E->threads) return snprintf(err, errlen, "out of memory for the evaluator"), -1;
    for (int s = 0; s < E->nslots; s++) {
        E->slots[s].x = malloc((size_t)B * E->crop_floats * sizeof(float));
        E->slots[s].valid = calloc((size_t)B, 1);
        E->slots[s].seq = s;
        if (!E->slots[s].x || !E->slots[s].valid)
            return snprintf(err, errlen, "out of memory for %d batches of %d crops of %dx%d", E->nslots, B, crop, crop), -1;
    }
    for (int t = 0; t < nw; t++)
        if (!(E->workers[t].scratch = image_scratch_new()))
            return snprintf(err, errlen, "out of memory for the image decoders"), -1;
    for (int t = 0; t < E->nthreads; t++) {
        void **a = malloc(2 * sizeof *a);
        if (!a) return snprintf(err, errlen, "out of memory for the decode threads"), -1;
        a[0] = E;
        a[1] = &E->workers[t];
        if (pthread_create(&E->threads[t], NULL, eval_worker_main, a) != 0) {
            free(a);
            return snprintf(err, errlen, "cannot start decode thread %d: %s", t, strerror(errno)), -1;
        }
        E->started++;
    }
    return 0;
}

/* Local figures of one rank, reduced afterwards. */
typedef struct {
    int64_t images, top1, top5, crops;
    double loss_sum;
    int64_t *class_total, *class_top1, *class_top5; /* (classes) */
} EvalLocal;

typedef struct {
    double *p;  /* (classes) summed probabilities */
    int bad;    /* some crop of the image is a hole */
} EvalAcc;

/* The caller's side: batches through the network, images scored. */
static int eval_consume(Evaluator *E, Model *m, const float *const *weight_sets, int nsets, EvalLocal *L,
                        char *err, size_t errlen)
{
    const EvalConfig *cfg = E->cfg;
    int classes = model_config(m)->classes, K = E->K, B = E->B;
    int R = B / K + 3; /* accumulators: more than the images one batch touches */
    size_t np = model_num_params(m);
    float *params = model_params(m);
    float *probs = malloc((size_t)B * classes * sizeof(float)); /* (B, classes) */
    int *pos = malloc((size_t)B * sizeof(int));                  /* valid crop i sits at position pos[i] */
    EvalAcc *acc = calloc((size_t)R, sizeof *acc);
    double *accbuf = malloc((size_t)R * classes * sizeof(double)); /* (R, classes) */
    /* (B, classes) each position's logits, for on_image when a crop is an image */
    int want_logits = cfg->on_image && K == 1 && nsets == 1;
    float *lg = want_logits ? malloc((size_t)B * classes * sizeof(float)) : NULL;
    int rc = 0;
    if (!probs || !pos || !acc || !accbuf || (want_logits && !lg)) {
        rc = -1;
        snprintf(err, errlen, "out of memory for %d x %d probabilities", B, classes);
        goto done;
    }
    for (int r = 0; r < R; r++) acc[r].p = accbuf + (size_t)r * classes;
    if (nsets == 1) memcpy(params, weight_sets[0], np * sizeof(float));
    EvalWorker *self = E->nthreads == 0 ? &E->workers[0] : NULL;
    for (long q = 0; q < E->nbatches; q++) {
        EvalSlot *sl = &E->slots[q % E->nslots];
        long count = eval_batch_count(E, q);
        if (self) /* no workers: decode here until batch q is full */
            while (!E->stop && sl->done < count && E->next_image < E->nimg) eval_produce(E, self, E->next_image++);
        pthread_mutex_lock(&E->mu);
        while (sl->done < count && !E->failed) pthread_cond_wait(&E->done_cv, &E->mu);
        int failed = E->failed;
        pthread_mutex_unlock(&E->mu);
        if (failed) break;
        /* new images start; holes mark theirs bad; squeeze the holes out */
        int n = 0;
        for (int b = 0; b < count; b++) {
            long p = q * B + b, j = p / K;
            EvalAcc *a = &acc[j % R];
            if (p % K == 0) {
                memset(a->p, 0, (size_t)classes * sizeof(double));
                a->bad = 0;
            }
            if (!sl->valid[b]) {
                a->bad = 1;
                continue;
            }
            if (n != b) memcpy(sl->x + (size_t)n * E->crop_floats, sl->x + (size_t)b * E->crop_floats,
                               E->crop_floats * sizeof(float));
            pos[n++] = b;
        }
        for (int s = 0; s < nsets && n > 0; s++) {
            if (nsets > 1) memcpy(params, weight_sets[s], np * sizeof(float));
            model_forward(m, sl->x, NULL, n, MODEL_EVAL, 0, NULL);
            const float *logits = model_logits(m, MODEL_HEAD_MAIN); /* (classes, n) */
            loss_softmax(probs, logits, classes, n);
            for (int i = 0; i < n && lg; i++)
                for (int k = 0; k < classes; k++) lg[(size_t)pos[i] * classes + k] = logits[(size_t)k * n + i];
            for (int i = 0; i < n; i++) {
                double *dst = acc[((q * B + pos[i]) / K) % R].p;
                const float *src = probs + (size_t)i * classes;
                for (int k = 0; k < classes; k++) dst[k] += src[k];
            }
        }
        /* images whose last crop is in this batch are complete */
        for (int b = 0; b < count; b++) {
            long p = q * B + b, j = p / K;
            if (p % K != K - 1) continue;
            EvalAcc *a = &acc[j % R];
            if (a->bad) continue;
            int label = dataset_label(E->ds, (E->begin + (size_t)j) * E->stride);
            double inv = 1.0 / ((double)K * nsets);
            for (int k = 0; k < classes; k++) a->p[k] *= inv;
            int rank = loss_rank_of_f64(a->p, classes, label);
            double pl = a->p[label] > EVAL_P_FLOOR ? a->p[label] : EVAL_P_FLOOR;
            L->images++;
            L->crops += (int64_t)K * nsets;
            L->loss_sum += -log(pl);
            L->top1 += rank == 1;
            L->top5 += rank <= 5;
            L->class_total[label]++;
            L->class_top1[label] += rank == 1;
            L->class_top5[label] += rank <= 5;
            if (cfg->on_image)
                cfg->on_image(cfg->on_image_ctx, (E->begin + (size_t)j) * E->stride, a->p,
                              lg ? lg + (size_t)b * classes : NULL, NULL);
        }
        pthread_mutex_lock(&E->mu);
        sl->seq = q + E->nslots;
        sl->done = 0;
        pthread_cond_broadcast(&E->free_cv);
        pthread_mutex_unlock(&E->mu);
        if (cfg->progress) {
            long done_img = (q * B + count) / K;
            cfg->progress(cfg->progress_ctx, done_img, E->nimg);
        }
    }
done:
    free(lg);
    free(probs);
    free(pos);
    free(acc);
    free(accbuf);
    return rc;
}

/* Local checks that need no collective; the message names what to change. */
static int eval_check(const Model *m, int nsets, const EvalConfig *cfg, int *B, int *crop, char *err, size_t errlen)
{
    const ModelConfig *mc = model_config(m);
    if (!cfg->ds) return snprintf(err, errlen, "no dataset to evaluate"), -1;
    if (nsets < 1) return snprintf(err, errlen, "no weights to evaluate"), -1;
    if (!eval_crops_valid(cfg->crops))
        return snprintf(err, errlen, "%d crops is not a scheme; use 1, 10 or 144", cfg->crops), -1;
    int dc = dataset_num_classes(cfg->ds);
    if (dc != mc->classes)
        return snprintf(err, errlen,
                        "the model has %d classes and the dataset %s %d; evaluate with data of the same classes "
                        "(a classes file fixes the label order)", mc->classes, dataset_root(cfg->ds), dc), -1;
    *crop = cfg->crop > 0 ? cfg->crop : mc->crop;
    if (*crop != mc->crop)
        return snprintf(err, errlen, "crop %d asked but the model was built for crop %d", *crop, mc->crop), -1;
    *B = cfg->batch > 0 ? cfg->batch : mc->batch;
    if (*B > mc->batch)
        return snprintf(err, errlen, "batch %d is larger than the model's batch %d", *B, mc->batch), -1;
    if (cfg->resize < 224) return snprintf(err, errlen, "resize %d must be at least 224", cfg->resize), -1;
    if (cfg->filter < 0 || cfg->filter >= IMAGE_FILTER_RANDOM)
        return snprintf(err, errlen, "the evaluation filter must be a fixed one"), -1;
    if (!(cfg->max_bad >= 0 && cfg->max_bad <= 1))
        return snprintf(err, errlen, "bad-file limit %g must be a fraction in [0, 1]", cfg->max_bad), -1;
    for (int c = 0; c < 3; c++)
        if (!(cfg->std[c] > 0)) return snprintf(err, errlen, "normalisation std[%d] = %g must be positive", c, cfg->std[c]), -1;
    return 0;
}

void evaluate_result_free(EvalResult *r)
{
    if (!r) return;
    free(r->class_total);
    free(r->class_top1);
    free(r->class_top5);
    r->class_total = r->class_top1 = r->class_top5 = NULL;
}

int evaluate_run(Comm *c, Model *m, const float *const *weight_sets, int nsets, const EvalConfig *cfg,
                 EvalResult *out, char *err, size_t errlen)
{
    double t0 = clock_now();
    int rank = c ? comm_rank(c) : 0, world = c ? comm_size(c) : 1;
    memset(out, 0, sizeof *out);
    char msg[EVAL_MSG] = "";
    int B = 0, crop = 0, classes = model_config(m)->classes;
    int failed = eval_check(m, nsets, cfg, &B, &crop, msg, sizeof msg) != 0, stopped = 0;

    /* everything the reduction needs is allocated before the first collective */
    enum { NAMES = EVAL_BAD_NAMES * 256 };
    /* images, crops, bad, top1, top5, 3 x (classes), ranks stopped early */
    size_t ncounts = 6 + 3 * (size_t)classes;
    int64_t *counts = calloc(ncounts, sizeof *counts);
    char *names = calloc((size_t)world + 1, NAMES);    /* (world + 1, NAMES): all ranks', then mine */
    char *msgs = calloc((size_t)world, EVAL_MSG);      /* (world, EVAL_MSG) */
    out->class_total = malloc((size_t)classes * sizeof(int64_t));
    out->class_top1 = malloc((size_t)classes * sizeof(int64_t));
    out->class_top5 = malloc((size_t)classes * sizeof(int64_t));
    if (!counts || !names || !msgs || !out->class_total || !out->class_top1 || !out->class_top5)
        failed = 1, snprintf(msg, sizeof msg, "out of memory for the evaluation counts");

    EvalLocal L;
    memset(&L, 0, sizeof L);
    Evaluator E;
    memset(&E, 0, sizeof E);
    int have_E = 0;
    if (!failed) {
        L.class_total = counts + 5;
        L.class_top1 = L.class_total + classes;
        L.class_top5 = L.class_top1 + classes;
        size_t begin, end, n = dataset_size(cfg->ds), stride = 1;
        if (cfg->subset > 0 && (size_t)cfg->subset < n) {
            stride = n / (size_t)cfg->subset;
            n = (size_t)cfg->subset;
        }
        sampler_contiguous_range(n, world, rank, &begin, &end);
        have_E = 1;
        if (eval_setup(&E, cfg, begin, end, stride, cfg->crops, B, crop, msg, sizeof msg) != 0) failed = 1;
        else if (eval_consume(&E, m, weight_sets, nsets, &L, msg, sizeof msg) != 0) failed = 1;
        else if (E.failed) stopped = 1; /* over the bad-file limit: what was scored is still reported */
        if (E.started) eval_stop_workers(&E);
    }
    double seconds = clock_now() - t0;

    /* every rank learns whether any failed, and the first failure's words */
    int any = c ? comm_any(c, failed, "evaluation status") : failed;
    if (any) {
        if (c && msgs) {
            comm_allgather_string(c, failed ? msg : "", msgs, EVAL_MSG, "evaluation errors");
            for (int r = 0; r < world; r++)
                if (msgs[(size_t)r * EVAL_MSG]) {
                    if (world > 1) snprintf(err, errlen, "rank %d: %s", r, msgs + (size_t)r * EVAL_MSG);
                    else snprintf(err, errlen, "%s", msgs + (size_t)r * EVAL_MSG);
                    break;
                }
        } else {
            snprintf(err, errlen, "%s", msg[0] ? msg : "evaluation failed on another rank");
        }
        if (have_E) eval_free(&E);
        free(counts);
        free(names);
        free(msgs);
        evaluate_result_free(out);
        return -1;
    }

    counts[0] = L.images;
    counts[1] = L.crops;
    counts[2] = E.bad;
    counts[3] = L.top1;
    counts[4] = L.top5;
    counts[ncounts - 1] = stopped;
    double sums[1] = {L.loss_sum}, maxs[1] = {seconds};
    char *mine = names + (size_t)world * NAMES;
    for (int k = 0; k < E.nbad_names; k++) {
        size_t used = strlen(mine), len = strlen(E.bad_names[k]);
        if (used + len + 2 > NAMES) break;
        memcpy(mine + used, E.bad_names[k], len);
        mine[used + len] = '\n';
    }
    if (c) {
        comm_allreduce_int64(c, counts, (int)ncounts, COMM_SUM, "evaluation counts");
        comm_allreduce_double(c, sums, 1, COMM_SUM, "evaluation loss");
        comm_allreduce_double(c, maxs, 1, COMM_MAX, "evaluation time");
        comm_allgather_string(c, mine, names, NAMES, "bad file names");
    } else {
        memcpy(names, mine, NAMES);
    }
    eval_free(&E);

    out->images = counts[0];
    out->crops = counts[1];
    out->bad = counts[2];
    out->top1 = counts[3];
    out->top5 = counts[4];
    out->models = nsets;
    out->crops_per_image = cfg->crops;
    out->crop = crop;
    out->loss = out->images ? sums[0] / out->images : 0.0;
    out->seconds = maxs[0];
    out->img_per_s = out->seconds > 0 ? (out->images + out->bad) / out->seconds : 0.0;
    out->world = world;
    out->classes = classes;
    memcpy(out->class_total, counts + 5, (size_t)classes * sizeof(int64_t));
    memcpy(out->class_top1, counts + 5 + classes, (size_t)classes * sizeof(int64_t));
    memcpy(out->class_top5, counts + 5 + 2 * (size_t)classes, (size_t)classes * sizeof(int64_t));
    /* the first few bad names over all ranks, in rank order */
    for (int r = 0; r < world && out->nbad_names < EVAL_BAD_NAMES; r++) {
        const char *s = names + (size_t)r * NAMES;
        while (*s && out->nbad_names < EVAL_BAD_NAMES) {
            const char *nl = strchr(s, '\n');
            size_t len = nl ? (size_t)(nl - s) : strlen(s);
            snprintf(out->bad_names[out->nbad_names++], 256, "%.*s", (int)(len < 255 ? len : 255), s);
            s += len + (nl ? 1 : 0);
        }
    }
    free(names);
    free(msgs);
    int64_t seen = out->images + out->bad, stopped_ranks = counts[ncounts - 1];
    free(counts);
    if ((out->bad > 0 && out->bad > cfg->max_bad * (double)seen) || stopped_ranks) {
        out->incomplete = 1;
        snprintf(err, errlen,
                 "%lld of %lld images could not be read (limit %.3g%%)%s, e.g. %.150s; the figures cover only the "
                 "%lld images scored; check the dataset or raise %s",
                 (long long)out->bad, (long long)seen, 100 * cfg->max_bad,
                 stopped_ranks ? " and the evaluation stopped early" : "", out->nbad_names ? out->bad_names[0] : "?",
                 (long long)out->images, cfg->max_bad_name ? cfg->max_bad_name : "the bad-file limit");
        return EVAL_INCOMPLETE;
    }
    return 0;
}

/* ---- report and table ---- */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} EvalStr;

static void es_printf(EvalStr *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void es_printf(EvalStr *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
}

/* s as a JSON string literal (quotes included). */
static void es_json_string(EvalStr *b, const char *s)
{
    es_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') es_printf(b, "\\%c", *p);
        else if (*p < 0x20) es_printf(b, "\\u%04x", *p);
        else es_printf(b, "%c", *p);
    }
    es_printf(b, "\"");
}

void evaluate_json_print_string(FILE *f, const char *s)
{
    EvalStr b = {0};
    es_json_string(&b, s);
    fputs(b.oom || !b.s ? "\"\"" : b.s, f);
    free(b.s);
}

static double eval_frac(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 0.0; }

char *evaluate_json(const EvalResult *r, const EvalReportInfo *info, int per_class, int one_line)
{
    EvalStr b = {0};
    const char *nl = one_line ? "" : "\n  ", *sp = one_line ? "" : " ";
    es_printf(&b, "{%s\"top1\":%s%.6f,%s\"top5\":%s%.6f,%s\"loss\":%s%.6f,", nl, sp, eval_frac(r->top1, r->images), nl,
              sp, eval_frac(r->top5, r->images), nl, sp, r->loss);
    es_printf(&b, "%s\"images\":%s%lld,%s\"bad\":%s%lld,%s\"crops\":%s%lld,%s\"crops_per_image\":%s%d,", nl, sp,
              (long long)r->images, nl, sp, (long long)r->bad, nl, sp, (long long)r->crops, nl, sp,
              r->crops_per_image);
    es_printf(&b, "%s\"crop\":%s%d,%s\"models\":%s%d,%s\"seconds\":%s%.3f,%s\"img_per_s\":%s%.3f,%s\"world\":%s%d", nl,
              sp, r->crop, nl, sp, r->models, nl, sp, r->seconds, nl, sp, r->img_per_s, nl, sp, r->world);
    if (r->incomplete) es_printf(&b, ",%s\"incomplete\":%strue", nl, sp);
    if (info && info->weights) {
        es_printf(&b, ",%s\"weights\":%s", nl, sp);
        es_json_string(&b, info->weights);
    }
    if (info && info->data) {
        es_printf(&b, ",%s\"data\":%s", nl, sp);
        es_json_string(&b, info->data);
    }
    if (info && info->nckpt > 0) {
        es_printf(&b, ",%s\"checkpoints\":%s[", nl, sp);
        for (int i = 0; i < info->nckpt; i++) {
            es_printf(&b, "%s{\"path\":%s", i ? "," : "", sp);
            es_json_string(&b, info->ckpt_names[i]);
            if (info->ckpt_steps) es_printf(&b, ",%s\"step\":%s%ld", sp, sp, info->ckpt_steps[i]);
            if (info->ckpt_sha256) {
                es_printf(&b, ",%s\"params_sha256\":%s", sp, sp);
                es_json_string(&b, info->ckpt_sha256[i]);
            }
            es_printf(&b, "}");
        }
        es_printf(&b, "]");
    }
    es_printf(&b, ",%s\"bad_files\":%s[", nl, sp);
    for (int i = 0; i < r->nbad_names; i++) {
        if (i) es_printf(&b, ",");
        es_json_string(&b, r->bad_names[i]);
    }
    es_printf(&b, "]");
    if (per_class && r->class_total) {
        es_printf(&b, ",%s\"per_class\":%s[", nl, sp);
        for (int k = 0; k < r->classes; k++) {
            es_printf(&b, "%s%s{\"class\":%s", k ? "," : "", one_line ? "" : "\n    ", sp);
            if (info && info->ds && k < dataset_num_classes(info->ds)) es_json_string(&b, dataset_class_name(info->ds, k));
            else es_printf(&b, "\"%d\"", k);
            es_printf(&b, ",%s\"images\":%s%lld,%s\"top1\":%s%.6f,%s\"top5\":%s%.6f}", sp, sp,
                      (long long)r->class_total[k], sp, sp, eval_frac(r->class_top1[k], r->class_total[k]), sp, sp,
                      eval_frac(r->class_top5[k], r->class_total[k]));
        }
        es_printf(&b, "%s]", one_line ? "" : "\n  ");
    }
    es_printf(&b, "%s}", one_line ? "" : "\n");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

int evaluate_report_write(const char *path, const EvalResult *r, const EvalReportInfo *info, char *err,
                          size_t errlen)
{
    char *json = evaluate_json(r, info, 1, 0);
    if (!json) return snprintf(err, errlen, "out of memory for the report"), -1;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 32);
    if (!tmp) {
        free(json);
        return snprintf(err, errlen, "out of memory for the report"), -1;
    }
    snprintf(tmp, plen + 32, "%s.tmp.%ld", path, (long)getpid());
    int rc = -1;
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(err, errlen, "cannot create %s: %s; check the directory exists and is writable", tmp, strerror(errno));
    } else {
        int ok = fputs(json, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
        int saved = errno;
        if (fclose(f) != 0 && ok) ok = 0, saved = errno;
        if (!ok) snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(saved));
        else if (rename(tmp, path) != 0)
            snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        else rc = 0;
        if (rc != 0) unlink(tmp);
    }
    free(tmp);
    free(json);
    return rc;
}

typedef struct {
    int k;
    double acc;
} EvalClassAcc;

static int eval_class_cmp(const void *a, const void *b)
{
    const EvalClassAcc *x = a, *y = b;
    if (x->acc != y->acc) return x->acc < y->acc ? -1 : 1;
    return x->k - y->k;
}

void evaluate_print_table(FILE *f, const EvalResult *r, const EvalReportInfo *info, int show_classes)
{
    fprintf(f, "%d model%s x %d crop%s at %d, %s weights, %d rank%s%s\n", r->models, r->models == 1 ? "" : "s",
            r->crops_per_image, r->crops_per_image == 1 ? "" : "s", r->crop,
            info && info->weights ? info->weights : "given", r->world, r->world == 1 ? "" : "s",
            r->incomplete ? "  INCOMPLETE: over the unreadable-image limit, the figures cover the images scored" : "");
    fprintf(f, "  %10s %8s %8s %8s %10s %12s %9s %8s\n", "images", "top-1", "top-5", "loss", "unreadable", "crops",
            "seconds", "img/s");
    fprintf(f, "  %10lld %7.2f%% %7.2f%% %8.4f %10lld %12lld %9.1f %8.2f\n", (long long)r->images,
            100 * eval_frac(r->top1, r->images), 100 * eval_frac(r->top5, r->images), r->loss, (long long)r->bad,
            (long long)r->crops, r->seconds, r->img_per_s);
    for (int i = 0; i < r->nbad_names; i++) fprintf(f, "  unreadable: %s\n", r->bad_names[i]);
    if (r->bad > r->nbad_names) fprintf(f, "  ... and %lld more unreadable\n", (long long)(r->bad - r->nbad_names));
    if (show_classes <= 0 || !r->class_total) return;
    EvalClassAcc *v = malloc((size_t)r->classes * sizeof *v);
    if (!v) return;
    int n = 0;
    for (int k = 0; k < r->classes; k++)
        if (r->class_total[k] > 0) v[n].k = k, v[n].acc = eval_frac(r->class_top1[k], r->class_total[k]), n++;
    qsort(v, (size_t)n, sizeof *v, eval_class_cmp);
    int show = show_classes < n ? show_classes : n;
    for (int pass = 0; pass < 2 && n > 0; pass++) {
        fprintf(f, "  %s %d classes by top-1:", pass ? "best" : "worst", show);
        for (int i = 0; i < show; i++) {
            const EvalClassAcc *e = &v[pass ? n - 1 - i : i];
            const char *name = info && info->ds && e->k < dataset_num_classes(info->ds) ? dataset_class_name(info->ds, e->k) : NULL;
            if (name) fprintf(f, " %s %.1f%% (%lld)", name, 100 * e->acc, (long long)r->class_total[e->k]);
            else fprintf(f, " %d %.1f%% (%lld)", e->k, 100 * e->acc, (long long)r->class_total[e->k]);
        }
        fputc('\n', f);
    }
    free(v);
}
