/* loader.c: worker threads, the ring of batch buffers, the training and
 * evaluation transforms (the evaluation crops are crops.c's), and the
 * deterministic replacement (or, in evaluation, the reporting) of bad files.
 *
 * The ring: batch number q (counted from the last seek) lives in slot
 * q % nslots. Workers take samples one at a time, in batch order, under one
 * mutex, and decode them without it, straight into the slot's buffer; the
 * caller waits for the oldest batch to complete, copies it out and frees the
 * slot. Never prints, never exits; allocation happens only when a buffer must
 * grow (a larger file or image than any before).
 */
#include "comm/clock.h"
#include "dataloader/loader.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataloader/crops.h"
#include "dataloader/dlrand.h"
#include "dataloader/sampler.h"

#define LOADER_MAX_TRIES 16     /* a bad file and up to 15 bad replacements in a row */
#define LOADER_SLOT_WARNINGS 4  /* bad-file messages kept per batch */
#define LOADER_MSG 256          /* bytes of one "name (reason)" message */
#define LOADER_TAG_AUG 0x61756775ULL
#define LOADER_TAG_REPLACE 0x7265706cULL

/* AlexNet's PCA of ImageNet RGB (on 0..1), as fb.resnet.torch and torchvision's
 * references use it. */
static const float pca_eigval[3] = {0.2175f, 0.0188f, 0.0045f};
static const float pca_eigvec[3][3] = {
    {-0.5675f, 0.7192f, 0.4009f},
    {-0.5808f, -0.0045f, -0.8140f},
    {-0.5836f, -0.6948f, 0.4203f},
};

typedef struct {
    float *images;  /* (batch, crops, 3, crop, crop) */
    int *labels;    /* (batch) */
    size_t *idx;    /* (batch) the dataset items; SIZE_MAX for an empty slot */
    char (*why)[LOADER_MSG]; /* (batch) eval_skip_bad: why the image was left out, "" if it was not */
    int *pass;      /* (batch) */
    long seq;       /* the batch number it holds, -1 when free */
    long epoch, step;
    int real, issued, done, bad;
    int nwarn;
    char warn[LOADER_SLOT_WARNINGS][LOADER_MSG]; /* of the lowest sample positions, in order */
    int warn_pos[LOADER_SLOT_WARNINGS];
    int failed;
    char fail_msg[256];
} Slot;

typedef struct {
    uint8_t *bytes;  /* encoded file, grown to the largest seen */
    size_t cap;
    Image img;
    ImageScratch *scratch;
} Worker;

struct Loader {
    LoaderConfig cfg;
    Sampler *sampler;
    long steps;
    int crops;            /* per image: 1 in training, eval_crops in evaluation */
    size_t crop_floats;   /* 3 * crop * crop */
    size_t sample_floats; /* crops * crop_floats: one image's share of a batch */
    Slot *slots;
    int nslots;
    long base_epoch, base_step; /* batch 0 of the stream */
    long issue_seq;             /* the batch whose samples are being handed out */
    long consume_seq;           /* the batch loader_next returns next */
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    pthread_t *threads;
    int nthreads, started, stop, paused, inflight;
    Worker *workers; /* (max(nthreads, 1)) */
    LoaderEpochStats stats;
    long total_bad;
    int named, named_here;
    char warning[2048];
    /* the caller's copies of the last batch's items and skip reasons */
    size_t *out_items;            /* (batch) */
    char (*out_why)[LOADER_MSG];  /* (batch) */
    const char **out_skipped;     /* (batch) into out_why, or NULL */
};

LoaderConfig loader_default_config(void)
{
    LoaderConfig c;
    memset(&c, 0, sizeof c);
    c.crop = 224;
    c.batch = 32;
    c.world = 1;
    c.workers = 1;
    c.seed = 1;
    c.train = 1;
    const float mean[3] = IMAGE_MEAN_RGB, std[3] = IMAGE_STD_RGB;
    memcpy(c.mean, mean, sizeof mean);
    memcpy(c.std, std, sizeof std);
    c.filter = IMAGE_FILTER_BILINEAR;
    c.eval_filter = IMAGE_FILTER_BILINEAR;
    c.min_area = 0.08f;
    c.max_area = 1.0f;
    c.min_aspect = 3.0f / 4.0f;
    c.max_aspect = 4.0f / 3.0f;
    c.flip = 1;
    c.photometric = 1;
    c.brightness = c.contrast = c.saturation = 0.4f;
    c.lighting = 0.1f;
    c.eval_resize = 256;
    c.max_pixels = IMAGE_MAX_PIXELS_DEFAULT;
    c.warn_names = 5;
    return c;
}

/* ---- the transforms ---- */

/* The paper's random-sized crop, as torchvision's RandomResizedCrop draws it:
 * up to 10 tries of (area fraction, log-uniform aspect), then a centred crop of
 * the whole image clamped to the aspect range. Integer box in full pixels. */
static void random_crop_box(const LoaderConfig *c, int W, int H, uint64_t key, int box[4])
{
    double area = (double)W * H, lr0 = log(c->min_aspect), lr1 = log(c->max_aspect);
    for (int t = 0; t < 10; t++) {
        double target = area * (c->min_area + (c->max_area - c->min_area) * dlrand_uniform(key, 4 * t));
        double ar = exp(lr0 + (lr1 - lr0) * dlrand_uniform(key, 4 * t + 1));
        int w = (int)lround(sqrt(target * ar)), h = (int)lround(sqrt(target / ar));
        if (w > 0 && h > 0 && w <= W && h <= H) {
            box[0] = (int)dlrand_below(key, 4 * t + 2, (uint64_t)(W - w + 1));
            box[1] = (int)dlrand_below(key, 4 * t + 3, (uint64_t)(H - h + 1));
            box[2] = w;
            box[3] = h;
            return;
        }
    }
    double in_ratio = (double)W / H;
    int w, h;
    if (in_ratio < c->min_aspect) {
        w = W;
        h = (int)lround(w / c->min_aspect);
    } else if (in_ratio > c->max_aspect) {
        h = H;
        w = (int)lround(h * c->max_aspect);
    } else {
        w = W;
        h = H;
    }
    if (w < 1) w = 1;
    if (h < 1) h = 1;
    if (w > W) w = W;
    if (h > H) h = H;
    box[0] = (W - w) / 2;
    box[1] = (H - h) / 2;
    box[2] = w;
    box[3] = h;
}

static double gauss(uint64_t key, uint64_t i)
{
    double u1 = dlrand_uniform(key, i), u2 = dlrand_uniform(key, i + 1);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static inline float clamp255(float v) { return v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v; }

/* Mean grey (ITU-R 601 luma) of x (3, n); eight partial sums so it vectorises. */
static float mean_grey(const float *r, const float *g, const float *b, size_t n)
{
    float acc[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += 0.299f * r[i + k] + 0.587f * g[i + k] + 0.114f * b[i + k];
    double m = 0;
    for (; i < n; i++) m += 0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i];
    for (int k = 0; k < 8; k++) m += acc[k];
    return (float)(m / (double)n);
}

/* Brightness, contrast and saturation in a random order (each a blend with
 * black, the mean grey, or the pixel's grey, clamped to 0..255, as
 * torchvision's ColorJitter), then AlexNet's PCA lighting noise, which is
 * returned as a per-channel offset (on 0..255) for normalise() to add. x is
 * (3, n) on 0..255. */
static void photometric(const LoaderConfig *c, float *x, size_t n, uint64_t key, float off[3])
{
    float *r = x, *g = x + n, *b = x + 2 * n;
    int order[3] = {0, 1, 2};
    for (int i = 2; i > 0; i--) {
        int j = (int)dlrand_below(key, 100 + i, (uint64_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    const float amount[3] = {c->brightness, c->contrast, c->saturation};
    for (int k = 0; k < 3; k++) {
        int op = order[k];
        float v = amount[op];
        if (v <= 0.0f) continue;
        float lo = 1.0f - v < 0.0f ? 0.0f : 1.0f - v;
        float f = lo + (float)dlrand_uniform(key, 110 + op) * (1.0f + v - lo);
        if (op == 0) {
            for (size_t i = 0; i < 3 * n; i++) x[i] = clamp255(x[i] * f);
        } else if (op == 1) {
            float mg = mean_grey(r, g, b, n) * (1.0f - f);
            for (size_t i = 0; i < 3 * n; i++) x[i] = clamp255(x[i] * f + mg);
        } else {
            for (size_t i = 0; i < n; i++) {
                float gr = (0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i]) * (1.0f - f);
                r[i] = clamp255(r[i] * f + gr);
                g[i] = clamp255(g[i] * f + gr);
                b[i] = clamp255(b[i] * f + gr);
            }
        }
    }
    off[0] = off[1] = off[2] = 0.0f;
    if (c->lighting > 0.0f) {
        float alpha[3];
        for (int e = 0; e < 3; e++) alpha[e] = (float)(gauss(key, 120 + 2 * e) * c->lighting) * pca_eigval[e];
        for (int ch = 0; ch < 3; ch++)
            off[ch] = 255.0f * (pca_eigvec[ch][0] * alpha[0] + pca_eigvec[ch][1] * alpha[1] + pca_eigvec[ch][2] * alpha[2]);
    }
}

/* x = ((x + off) / 255 - mean) / std, per channel. */
static void normalise(const LoaderConfig *c, float *x, size_t n, const float off[3])
{
    for (int ch = 0; ch < 3; ch++) {
        float a = 1.0f / (255.0f * c->std[ch]), b = off[ch] * a - c->mean[ch] / c->std[ch];
        float *p = x + ch * n;
        for (size_t i = 0; i < n; i++) p[i] = p[i] * a + b;
    }
}

/* The evaluation transform: image bytes to L->crops crops (crops.h's
 * schemes; the 1-crop one is the shorter side resized to round(crop *
 * eval_resize / 224) and the centre crop), normalised, one decode for all. */
static int transform_eval(const Loader *L, Worker *w, size_t len, float *out, char *err, size_t errlen)
{
    const LoaderConfig *c = &L->cfg;
    int fw, fh;
    ImageFormat fmt;
    CropPlan plan;
    if (image_probe(w->bytes, len, &fw, &fh, &fmt, err, errlen) != 0) return -1;
    if (crops_plan(L->crops, fw, fh, c->crop, c->eval_resize, c->eval_filter, c->max_pixels, &plan, err, errlen) != 0)
        return -1;
    if (image_decode(w->bytes, len, &plan.decode, &w->img, w->scratch, err, errlen) != 0) return -1;
    for (int k = 0; k < L->crops; k++)
        if (crops_cut(&plan, k, &w->img, c->crop, c->eval_filter, c->mean, c->std, out + (size_t)k * L->crop_floats,
                      w->scratch, err, errlen) != 0)
            return -1;
    return 0;
}

/* The training transform: decodes item bytes and writes out (3, crop, crop),
 * augmented and normalised. */
static int transform_train(const Loader *L, Worker *w, size_t len, uint64_t key, float *out, char *err, size_t errlen)
{
    const LoaderConfig *c = &L->cfg;
    int fw, fh, crop = c->crop;
    ImageFormat fmt;
    if (image_probe(w->bytes, len, &fw, &fh, &fmt, err, errlen) != 0) return -1;
    if (image_check_pixels(fw, fh, c->max_pixels, err, errlen) != 0) return -1;
    ImageDecodeOptions opt = {0};
    opt.max_pixels = c->max_pixels;
    int box[4];
    random_crop_box(c, fw, fh, key, box);
    double bx = box[0], by = box[1], bw = box[2], bh = box[3]; /* the box to resample, full-size pixels */
    int mirror = c->flip && dlrand_uniform(key, 60) < 0.5;
    ImageFilter filter = c->filter;
    if (filter == IMAGE_FILTER_RANDOM) {
        static const ImageFilter pick[4] = {IMAGE_FILTER_NEAREST, IMAGE_FILTER_BILINEAR, IMAGE_FILTER_BICUBIC,
                                            IMAGE_FILTER_AREA};
        filter = pick[dlrand_below(key, 61, 4)];
    }
    /* torchvision crops, then resizes: the filter sees only the box, which is
     * also the decoded region */
    opt.roi_x = box[0], opt.roi_y = box[1], opt.roi_w = box[2], opt.roi_h = box[3];
    opt.min_side = crops_dct_min_side(bw < bh ? bw : bh, crop, opt.roi_w < opt.roi_h ? opt.roi_w : opt.roi_h);
    if (image_decode(w->bytes, len, &opt, &w->img, w->scratch, err, errlen) != 0) return -1;
    const Image *im = &w->img;
    double sx = (double)im->sw / im->full_w, sy = (double)im->sh / im->full_h;
    /* the box in decoded-region pixels */
    double rx = bx * sx - im->x0, ry = by * sy - im->y0, rw = bw * sx, rh = bh * sy;
    Image view = *im;
    view.cap = 0;
    int vx0 = (int)floor(rx), vy0 = (int)floor(ry);
    int vx1 = (int)ceil(rx + rw - 1e-9), vy1 = (int)ceil(ry + rh - 1e-9);
    if (vx0 < 0) vx0 = 0;
    if (vy0 < 0) vy0 = 0;
    if (vx1 > im->w) vx1 = im->w;
    if (vy1 > im->h) vy1 = im->h;
    if (vx1 <= vx0) vx1 = vx0 + 1 <= im->w ? vx0 + 1 : im->w, vx0 = vx1 - 1;
    if (vy1 <= vy0) vy1 = vy0 + 1 <= im->h ? vy0 + 1 : im->h, vy0 = vy1 - 1;
    view.stride = im->stride ? im->stride : im->w * 3;
    view.px = im->px + (size_t)vy0 * view.stride + (size_t)vx0 * 3;
    view.w = vx1 - vx0;
    view.h = vy1 - vy0;
    rx -= vx0;
    ry -= vy0;
    ImageBox ibox = {(float)rx, (float)ry, (float)rw, (float)rh};
    if (image_resize_to_float(&view, ibox, crop, crop, filter, mirror, out, w->scratch, err, errlen) != 0) return -1;
    size_t n = (size_t)crop * crop;
    float off[3] = {0, 0, 0};
    if (c->photometric) photometric(c, out, n, key, off);
    normalise(c, out, n, off);
    return 0;
}

/* One sample: item i, replaced while bad. Fills out, *label; appends bad-file
 * messages to msgs (up to LOADER_SLOT_WARNINGS). Returns the bad count, or -1
 * when every try failed. With skip (LOADER_MSG bytes) a bad file is not
 * replaced: its reason goes into skip and -1 comes back at once. */
static int load_sample(const Loader *L, Worker *w, long epoch, size_t i, int pass, float *out, int *label,
                       char msgs[][LOADER_MSG], int *nmsgs, char *skip, char *fail, size_t faillen)
{
    const LoaderConfig *c = &L->cfg;
    size_t n = dataset_size(c->ds), orig = i;
    int bad = 0;
    for (int t = 0; t < LOADER_MAX_TRIES; t++) {
        char e[LOADER_MSG];
        size_t len = 0;
        uint64_t key = dlrand_key(c->seed, LOADER_TAG_AUG, (uint64_t)epoch, i, (uint64_t)pass | ((uint64_t)t << 32));
        if (dataset_read(c->ds, i, &w->bytes, &w->cap, &len, e, sizeof e) == 0 &&
            (c->train ? transform_train(L, w, len, key, out, e, sizeof e)
                      : transform_eval(L, w, len, out, e, sizeof e)) == 0) {
            *label = dataset_label(c->ds, i);
            return bad;
        }
        if (skip) {
            snprintf(skip, LOADER_MSG, "%s", e);
            return -1;
        }
        bad++;
        if (*nmsgs < LOADER_SLOT_WARNINGS)
            snprintf(msgs[(*nmsgs)++], LOADER_MSG, "%.90s (%.150s)", dataset_item_name(c->ds, i), e);
        if (t == LOADER_MAX_TRIES - 1)
            snprintf(fail, faillen, "%d files in a row could not be decoded (the last: %.100s: %.80s); check the dataset",
                     LOADER_MAX_TRIES, dataset_item_name(c->ds, i), e);
        /* a deterministic replacement: a function of (seed, epoch, item, try) */
        i = (size_t)dlrand_below(dlrand_key(c->seed, LOADER_TAG_REPLACE, (uint64_t)epoch, orig, (uint64_t)pass), (uint64_t)t, n);
    }
    return -1;
}

/* ---- the ring ---- */

static void seq_position(const Loader *L, long seq, long *epoch, long *step)
{
    long s = L->base_step + seq;
    *epoch = L->base_epoch + s / L->steps;
    *step = s % L->steps;
}

/* Makes the slot hold batch seq: sampler indices, counters reset. Under mu. */
static void slot_prepare(Loader *L, Slot *sl, long seq)
{
    sl->seq = seq;
    seq_position(L, seq, &sl->epoch, &sl->step);
    sl->real = sampler_batch(L->sampler, sl->epoch, sl->step, sl->idx, sl->pass);
    if (!L->cfg.train) /* sampler positions to the evaluated items */
        for (int b = 0; b < sl->real; b++) sl->idx[b] = L->cfg.eval_first + sl->idx[b] * L->cfg.eval_stride;
    sl->issued = sl->done = sl->bad = sl->nwarn = sl->failed = 0;
}

static void do_sample(Loader *L, Worker *w, Slot *sl, int b, int *bad, char msgs[][LOADER_MSG], int *nmsgs, int *failed,
                      char *fail, size_t faillen)
{
    float *out = sl->images + (size_t)b * L->sample_floats;
    if (sl->idx[b] == SIZE_MAX) {
        memset(out, 0, L->sample_floats * sizeof *out);
        sl->labels[b] = -1;
        *bad = 0;
        return;
    }
    char *skip = L->cfg.eval_skip_bad ? sl->why[b] : NULL;
    if (skip) skip[0] = '\0';
    int tries = load_sample(L, w, sl->epoch, sl->idx[b], sl->pass[b], out, &sl->labels[b], msgs, nmsgs, skip, fail,
                            faillen);
    if (tries < 0) {
        *failed = !skip; /* a skipped file is reported, not a failure */
        memset(out, 0, L->sample_floats * sizeof *out);
        sl->labels[b] = -1;
    }
    /* One count per sample whose own file is bad, however many replacements
     * it took (a bad replacement is counted at its own place in the epoch),
     * and none for a padding duplicate of an item the epoch reads anyway: an
     * epoch's counts, summed over the ranks, are the damaged files it met. */
    *bad = tries != 0 && sl->pass[b] == 0;
}

/* Records finished sample b in its slot. The messages kept are those of the
 * lowest positions, whatever order the workers finish in. Under mu. */
static void slot_finish(Slot *sl, int b, int bad, char msgs[][LOADER_MSG], int nmsgs, int failed, const char *fail)
{
    sl->bad += bad;
    for (int k = 0; k < nmsgs; k++) {
        int at = sl->nwarn;
        while (at > 0 && sl->warn_pos[at - 1] > b) at--;
        if (at >= LOADER_SLOT_WARNINGS) break;
        int last = sl->nwarn < LOADER_SLOT_WARNINGS ? sl->nwarn : LOADER_SLOT_WARNINGS - 1;
        for (int m = last; m > at; m--) {
            memcpy(sl->warn[m], sl->warn[m - 1], LOADER_MSG);
            sl->warn_pos[m] = sl->warn_pos[m - 1];
        }
        memcpy(sl->warn[at], msgs[k], LOADER_MSG);
        sl->warn_pos[at] = b;
        if (sl->nwarn < LOADER_SLOT_WARNINGS) sl->nwarn++;
    }
    if (failed && !sl->failed) {
        sl->failed = 1;
        snprintf(sl->fail_msg, sizeof sl->fail_msg, "%s", fail);
    }
    sl->done++;
}

static void *worker_main(void *arg)
{
    void **a = arg;
    Loader *L = a[0];
    Worker *w = a[1];
    free(arg);
    pthread_mutex_lock(&L->mu);
    for (;;) {
        if (L->stop) break;
        Slot *sl = &L->slots[L->issue_seq % L->nslots];
        if (L->paused || (sl->seq != L->issue_seq && sl->seq != -1)) {
            pthread_cond_wait(&L->work_cv, &L->mu);
            continue;
        }
        if (sl->seq == -1) slot_prepare(L, sl, L->issue_seq);
        int b = sl->issued++;
        if (sl->issued == L->cfg.batch) L->issue_seq++;
        L->inflight++;
        pthread_mutex_unlock(&L->mu);
        char msgs[LOADER_SLOT_WARNINGS][LOADER_MSG], fail[256] = "";
        int bad = 0, nmsgs = 0, failed = 0;
        do_sample(L, w, sl, b, &bad, msgs, &nmsgs, &failed, fail, sizeof fail);
        pthread_mutex_lock(&L->mu);
        slot_finish(sl, b, bad, msgs, nmsgs, failed, fail);
        L->inflight--;
        if (sl->done == L->cfg.batch || L->inflight == 0) pthread_cond_broadcast(&L->done_cv);
    }
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

static void loader_stop_threads(Loader *L)
{
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    for (int t = 0; t < L->started; t++) pthread_join(L->threads[t], NULL);
    L->started = 0;
}

void loader_free(Loader *L)
{
    if (!L) return;
    if (L->started) loader_stop_threads(L);
    if (L->slots)
        for (int k = 0; k < L->nslots; k++) {
            free(L->slots[k].images);
            free(L->slots[k].labels);
            free(L->slots[k].idx);
            free(L->slots[k].pass);
            free(L->slots[k].why);
        }
    free(L->slots);
    if (L->workers)
        for (int t = 0; t < (L->nthreads ? L->nthreads : 1); t++) {
            free(L->workers[t].bytes);
            image_free(&L->workers[t].img);
            image_scratch_free(L->workers[t].scratch);
        }
    free(L->workers);
    free(L->threads);
    sampler_free(L->sampler);
    free(L->out_items);
    free(L->out_why);
    free(L->out_skipped);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->work_cv);
    pthread_cond_destroy(&L->done_cv);
    free(L);
}

static int config_check(const LoaderConfig *c, char *err, size_t errlen)
{
    if (!c->ds) return snprintf(err, errlen, "the loader needs a dataset"), -1;
    if (c->crop < 1 || c->crop > 4096) return snprintf(err, errlen, "crop %d must be in [1, 4096]", c->crop), -1;
    if (c->batch < 1) return snprintf(err, errlen, "batch %d must be at least 1", c->batch), -1;
    if (c->workers < 0 || c->workers > 256)
        return snprintf(err, errlen, "--workers %d must be in [0, 256]", c->workers), -1;
    if (!(c->min_area > 0.0f && c->min_area <= c->max_area && c->max_area <= 1.0f))
        return snprintf(err, errlen, "crop area range [%g, %g] must satisfy 0 < min <= max <= 1", c->min_area,
                        c->max_area), -1;
    if (!(c->min_aspect > 0.0f && c->min_aspect <= c->max_aspect))
        return snprintf(err, errlen, "aspect range [%g, %g] must satisfy 0 < min <= max", c->min_aspect,
                        c->max_aspect), -1;
    for (int ch = 0; ch < 3; ch++)
        if (!(c->std[ch] > 0.0f)) return snprintf(err, errlen, "std[%d] = %g must be positive", ch, c->std[ch]), -1;
    if (c->filter < 0 || c->filter >= IMAGE_FILTER_COUNT)
        return snprintf(err, errlen, "unknown training filter %d", (int)c->filter), -1;
    if (c->eval_filter < 0 || c->eval_filter >= IMAGE_FILTER_RANDOM)
        return snprintf(err, errlen, "the evaluation filter must be a fixed one, not '%s'",
                        image_filter_name(c->eval_filter)), -1;
    if (c->eval_resize < 224)
        return snprintf(err, errlen, "eval resize %d must be at least 224 (the crop scaled to 224)", c->eval_resize), -1;
    if (c->eval_crops != 0 && !crops_valid(c->eval_crops))
        return snprintf(err, errlen, "%d crops is not a scheme; use 1, 10 or 144", c->eval_crops), -1;
    if (c->train && c->eval_crops > 1)
        return snprintf(err, errlen, "%d crops per image is an evaluation scheme; training takes one", c->eval_crops), -1;
    size_t n = dataset_size(c->ds), stride = c->eval_stride ? c->eval_stride : 1;
    if (!c->train && (c->eval_first >= n || (c->eval_count > 0 && (c->eval_count - 1) > (n - 1 - c->eval_first) / stride)))
        return snprintf(err, errlen, "evaluation items %zu + %zu x %zu go past the %zu items of %s", c->eval_first,
                        c->eval_count, stride, n, dataset_root(c->ds)), -1;
    if (c->brightness < 0 || c->contrast < 0 || c->saturation < 0 || c->lighting < 0)
        return snprintf(err, errlen, "photometric amounts must not be negative"), -1;
    return 0;
}

Loader *loader_init(const LoaderConfig *cfg, char *err, size_t errlen)
{
    if (config_check(cfg, err, errlen) != 0) return NULL;
    Loader *L = calloc(1, sizeof *L);
    if (!L) return snprintf(err, errlen, "out of memory"), NULL;
    L->cfg = *cfg;
    if (!cfg->train) {
        if (L->cfg.eval_stride == 0) L->cfg.eval_stride = 1;
        if (L->cfg.eval_count == 0)
            L->cfg.eval_count = (dataset_size(cfg->ds) - cfg->eval_first + L->cfg.eval_stride - 1) / L->cfg.eval_stride;
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->work_cv, NULL);
    pthread_cond_init(&L->done_cv, NULL);
    SamplerConfig sc = {cfg->train ? dataset_size(cfg->ds) : L->cfg.eval_count, cfg->world, cfg->rank, cfg->batch, cfg->drop_last,
                        cfg->train ? SAMPLER_SHUFFLED : SAMPLER_CONTIGUOUS, cfg->seed};
    L->sampler = sampler_init(&sc, err, errlen);
    if (!L->sampler) {
        loader_free(L);
        return NULL;
    }
    L->steps = sampler_steps(L->sampler);
    L->crops = cfg->train || cfg->eval_crops == 0 ? 1 : cfg->eval_crops;
    L->crop_floats = (size_t)3 * cfg->crop * cfg->crop;
    L->sample_floats = (size_t)L->crops * L->crop_floats;
    L->nthreads = cfg->workers;
    L->nslots = cfg->prefetch > 0 ? cfg->prefetch : cfg->workers + 1;
    if (L->nslots < 2) L->nslots = 2;
    if (cfg->workers == 0) L->nslots = 1;
    L->slots = calloc((size_t)L->nslots, sizeof *L->slots);
    int nw = L->nthreads ? L->nthreads : 1;
    L->workers = calloc((size_t)nw, sizeof *L->workers);
    L->threads = calloc((size_t)nw, sizeof *L->threads);
    L->out_items = malloc((size_t)cfg->batch * sizeof *L->out_items);
    L->out_why = calloc((size_t)cfg->batch, sizeof *L->out_why);
    L->out_skipped = calloc((size_t)cfg->batch, sizeof *L->out_skipped);
    if (!L->slots || !L->workers || !L->threads || !L->out_items || !L->out_why || !L->out_skipped) {
        loader_free(L);
        return snprintf(err, errlen, "out of memory"), NULL;
    }
    for (int k = 0; k < L->nslots; k++) {
        Slot *sl = &L->slots[k];
        sl->seq = -1;
        sl->images = malloc((size_t)cfg->batch * L->sample_floats * sizeof(float));
        sl->labels = malloc((size_t)cfg->batch * sizeof(int));
        sl->idx = malloc((size_t)cfg->batch * sizeof(size_t));
        sl->pass = malloc((size_t)cfg->batch * sizeof(int));
        sl->why = calloc((size_t)cfg->batch, sizeof *sl->why);
        if (!sl->images || !sl->labels || !sl->idx || !sl->pass || !sl->why) {
            snprintf(err, errlen, "out of memory for %d batch buffers of %d x %d x 3 x %d x %d floats", L->nslots,
                     cfg->batch, L->crops, cfg->crop, cfg->crop);
            loader_free(L);
            return NULL;
        }
    }
    for (int t = 0; t < nw; t++)
        if (!(L->workers[t].scratch = image_scratch_new())) {
            loader_free(L);
            return snprintf(err, errlen, "out of memory"), NULL;
        }
    L->stats.epoch = 0;
    for (int t = 0; t < L->nthreads; t++) {
        void **arg = malloc(2 * sizeof *arg);
        if (!arg) {
            loader_free(L);
            return snprintf(err, errlen, "out of memory"), NULL;
        }
        arg[0] = L;
        arg[1] = &L->workers[t];
        if (pthread_create(&L->threads[t], NULL, worker_main, arg) != 0) {
            free(arg);
            loader_free(L);
            return snprintf(err, errlen, "cannot start loader thread %d of %d", t + 1, L->nthreads), NULL;
        }
        L->started++;
    }
    return L;
}

long loader_steps_per_epoch(const Loader *L) { return L->steps; }

int loader_seek(Loader *L, long epoch, long step, char *err, size_t errlen)
{
    if (epoch < 0 || step < 0) {
        snprintf(err, errlen, "cannot seek to epoch %ld step %ld", epoch, step);
        return -1;
    }
    pthread_mutex_lock(&L->mu);
    L->paused = 1;
    while (L->inflight > 0) pthread_cond_wait(&L->done_cv, &L->mu);
    for (int k = 0; k < L->nslots; k++) L->slots[k].seq = -1;
    L->base_epoch = epoch + step / L->steps;
    L->base_step = step % L->steps;
    L->issue_seq = L->consume_seq = 0;
    L->paused = 0;
    pthread_cond_broadcast(&L->work_cv);
    pthread_mutex_unlock(&L->mu);
    return 0;
}

/* Builds the warning line naming this batch's bad files, within the budget. */
static const char *compose_warning(Loader *L, const Slot *sl)
{
    /* skipped files are reported per image (LoaderBatchInfo.skipped) */
    if (sl->bad == 0 || L->named >= L->cfg.warn_names || L->cfg.eval_skip_bad) return NULL;
    L->named_here = 0;
    /* epochs and batches counted from 1, as the trainer's messages count them */
    size_t o = (size_t)snprintf(L->warning, sizeof L->warning, "epoch %ld, batch %ld of rank %d: replaced %d bad file%s:",
                                sl->epoch + 1, sl->step + 1, L->cfg.rank, sl->bad, sl->bad == 1 ? "" : "s");
    for (int k = 0; k < sl->nwarn && L->named < L->cfg.warn_names && o < sizeof L->warning; k++) {
        int dup = 0; /* a file that came up twice in the batch is named once */
        for (int m = 0; m < k; m++) dup |= strcmp(sl->warn[m], sl->warn[k]) == 0;
        if (dup) continue;
        o += (size_t)snprintf(L->warning + o, sizeof L->warning - o, "%s %s", L->named_here++ ? ";" : "", sl->warn[k]);
        L->named++;
    }
    if (L->named >= L->cfg.warn_names && o < sizeof L->warning)
        snprintf(L->warning + o, sizeof L->warning - o, " (further bad files are only counted)");
    return L->warning;
}

int loader_next(Loader *L, float *images, int *labels, LoaderBatchInfo *info, char *err, size_t errlen)
{
    const int B = L->cfg.batch;
    double t0 = clock_now(), waited = 0;
    Slot *sl;
    if (L->nthreads == 0) {
        sl = &L->slots[0];
        slot_prepare(L, sl, L->consume_seq);
        for (int b = 0; b < B; b++) {
            char msgs[LOADER_SLOT_WARNINGS][LOADER_MSG], fail[256] = "";
            int bad = 0, nmsgs = 0, failed = 0;
            do_sample(L, &L->workers[0], sl, b, &bad, msgs, &nmsgs, &failed, fail, sizeof fail);
            slot_finish(sl, b, bad, msgs, nmsgs, failed, fail);
        }
        waited = clock_now() - t0; /* the caller did the work itself: all of it is waiting */
    } else {
        pthread_mutex_lock(&L->mu);
        sl = &L->slots[L->consume_seq % L->nslots];
        while (sl->seq != L->consume_seq || sl->done < B) pthread_cond_wait(&L->done_cv, &L->mu);
        pthread_mutex_unlock(&L->mu);
        waited = clock_now() - t0;
    }
    /* the slot is complete: no worker touches it until it is freed below */
    int rc = sl->real;
    if (sl->failed) {
        snprintf(err, errlen, "%s", sl->fail_msg);
        rc = -1;
    } else {
        memcpy(images, sl->images, (size_t)B * L->sample_floats * sizeof *images);
        memcpy(labels, sl->labels, (size_t)B * sizeof *labels);
    }
    memcpy(L->out_items, sl->idx, (size_t)B * sizeof *L->out_items);
    for (int b = 0; b < B && L->cfg.eval_skip_bad; b++) {
        memcpy(L->out_why[b], sl->why[b], LOADER_MSG);
        L->out_skipped[b] = b < sl->real && L->out_why[b][0] ? L->out_why[b] : NULL;
    }
    if (L->stats.epoch != sl->epoch) {
        L->stats.epoch = sl->epoch;
        L->stats.samples = L->stats.bad = 0;
    }
    L->stats.samples += sl->real;
    L->stats.bad += sl->bad;
    L->total_bad += sl->bad;
    if (info) {
        info->epoch = sl->epoch;
        info->step = sl->step;
        info->real = sl->real;
        info->wait_s = waited;
        info->bad = sl->bad;
        info->warning = compose_warning(L, sl);
        info->items = L->out_items;
        info->skipped = L->cfg.eval_skip_bad ? L->out_skipped : NULL;
    }
    if (L->nthreads == 0) {
        L->consume_seq++;
    } else {
        pthread_mutex_lock(&L->mu);
        sl->seq = -1;
        L->consume_seq++;
        pthread_cond_broadcast(&L->work_cv);
        pthread_mutex_unlock(&L->mu);
    }
    return rc;
}

void loader_epoch_stats(const Loader *L, LoaderEpochStats *out) { *out = L->stats; }

long loader_total_bad(const Loader *L) { return L->total_bad; }
