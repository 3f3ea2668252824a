/* eval/evaluate.c: the scoring of one rank's shard, the reduction over ranks,
 * and the report (JSON) and table of the figures.
 *
 * The images come from the loader in evaluation mode (dataloader/loader.h):
 * its worker threads read and decode each image once and cut its 1, 10 or
 * 144 crops; a file that cannot be read or decoded comes back as skipped, with
 * its item and the reason, and is counted here, never scored. A loader batch
 * holds whole images, as many as fill whole forwards of B crops where memory
 * allows; this file squeezes out the skipped images, runs the network once per
 * forward and weight set, and adds the softmax rows into per-image sums.
 * Functions return a status and one line in err; nothing here exits, and
 * only evaluate_print_table and evaluate_json_print_string print (to the
 * FILE they are given).
 */
#include "trainer/eval/evaluate.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "comm/clock.h"
#include "dataloader/atomic_file.h"
#include "dataloader/crops.h"
#include "dataloader/loader.h"
#include "dataloader/sampler.h"
#include "nn/loss.h"

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

/* One rank's evaluation: the loader's batches in, the figures out. */
typedef struct {
    const EvalConfig *cfg;
    Model *m;
    const float *const *sets; /* (nsets) weight sets, np floats each */
    int nsets;
    size_t np;
    int K, B, crop, classes;
    int nb;              /* images per loader batch */
    size_t crop_floats;  /* 3 * crop * crop */
    long nimg, done;     /* images of this rank's shard; taken so far */
    Loader *loader;
    float *x;            /* (nb * K, 3, crop, crop) the loader's batch, bad images squeezed out */
    int *labels;         /* (nb) */
    size_t *items;       /* (nb) the dataset item of each image kept */
    float *probs;        /* (B, classes) softmax of one forward */
    double *acc;         /* (nb, classes) probabilities summed over crops and weight sets */
    float *logits;       /* (nb, classes) the network's outputs, for on_image with 1 crop and 1 set; or NULL */
    /* the figures of this rank */
    int64_t images, top1, top5, crops;
    double loss_sum;
    int64_t *class_total, *class_top1, *class_top5; /* (classes) each, borrowed */
    long bad;            /* images of this shard that could not be read or decoded */
    char bad_names[EVAL_BAD_NAMES][256];
    int nbad_names;
    int stopped;         /* over the bad-file limit: stopped early */
} Evaluator;

/* Images per loader batch: the fewest whose crops fill whole forwards of B
 * (so forwards are full and fall where a stream of crops would cut them),
 * unless that batch would pass 192 MB; then as many as one forward takes. */
static int eval_batch_images(int K, int B, size_t crop_floats)
{
    int a = K, b = B;
    while (b) {
        int t = a % b;
        a = b;
        b = t;
    }
    long whole = (long)B / a; /* lcm(K, B) / K */
    if ((size_t)whole * K * crop_floats * sizeof(float) <= ((size_t)192 << 20)) return (int)whole;
    return B / K > 0 ? B / K : 1;
}

/* Records image `item` as unreadable; stops the shard once it is clearly over the limit. */
static void eval_note_bad(Evaluator *E, size_t item, const char *why)
{
    const EvalConfig *c = E->cfg;
    E->bad++;
    if (c->on_image) c->on_image(c->on_image_ctx, item, NULL, NULL, why);
    if (E->nbad_names < EVAL_BAD_NAMES)
        snprintf(E->bad_names[E->nbad_names++], 256, "%.150s: %.100s", dataset_item_name(c->ds, item), why);
    if (E->bad >= EVAL_MIN_BAD_TO_STOP && E->bad > c->max_bad * (double)E->nimg) E->stopped = 1;
}

static void eval_free(Evaluator *E)
{
    loader_free(E->loader);
    free(E->x);
    free(E->labels);
    free(E->items);
    free(E->probs);
    free(E->acc);
    free(E->logits);
    E->loader = NULL;
    E->x = E->probs = E->logits = NULL;
    E->labels = NULL;
    E->items = NULL;
    E->acc = NULL;
}

/* The loader (eval mode, one shard of the positions, bad files skipped) and
 * the buffers. Returns 0, or -1 with a reason. */
static int eval_setup(Evaluator *E, Comm *c, size_t count, size_t stride, char *err, size_t errlen)
{
    const EvalConfig *cfg = E->cfg;
    int rank = c ? comm_rank(c) : 0, world = c ? comm_size(c) : 1;
    size_t begin, end;
    sampler_contiguous_range(count, world, rank, &begin, &end);
    E->nimg = (long)(end - begin);
    E->crop_floats = (size_t)3 * E->crop * E->crop;
    E->nb = eval_batch_images(E->K, E->B, E->crop_floats);
    size_t batch_bytes = (size_t)E->nb * E->K * E->crop_floats * sizeof(float);
    LoaderConfig lc = loader_default_config();
    lc.ds = cfg->ds;
    lc.crop = E->crop;
    lc.batch = E->nb;
    lc.rank = rank;
    lc.world = world;
    lc.workers = cfg->workers;
    /* batches decoded ahead: one per worker and two more, so that the
     * workers never wait on a slow forward; within ~512 MB with the caller's
     * copy, while the ring still holds two */
    lc.prefetch = cfg->workers + 3;
    while (lc.prefetch > 2 && (size_t)(lc.prefetch + 1) * batch_bytes > ((size_t)512 << 20)) lc.prefetch--;
    lc.train = 0;
    memcpy(lc.mean, cfg->mean, sizeof lc.mean);
    memcpy(lc.std, cfg->std, sizeof lc.std);
    lc.eval_filter = cfg->filter;
    lc.eval_resize = cfg->resize;
    lc.max_pixels = cfg->max_pixels;
    lc.eval_crops = E->K;
    lc.eval_count = count;
    lc.eval_stride = stride;
    lc.eval_skip_bad = 1;
    int want_logits = cfg->on_image && E->K == 1 && E->nsets == 1;
    E->x = malloc(batch_bytes);
    E->labels = malloc((size_t)E->nb * sizeof *E->labels);
    E->items = malloc((size_t)E->nb * sizeof *E->items);
    E->probs = malloc((size_t)E->B * E->classes * sizeof *E->probs);
    E->acc = malloc((size_t)E->nb * E->classes * sizeof *E->acc);
    E->logits = want_logits ? malloc((size_t)E->nb * E->classes * sizeof *E->logits) : NULL;
    if (!E->x || !E->labels || !E->items || !E->probs || !E->acc || (want_logits && !E->logits))
        return snprintf(err, errlen, "out of memory for %d images of %d crops of %dx%d", E->nb, E->K, E->crop, E->crop), -1;
    E->loader = loader_init(&lc, err, errlen);
    return E->loader ? 0 : -1;
}

/* The next loader batch into E->x, the crops of unreadable images squeezed
 * out (those are noted bad). Returns the images kept, or -1 with a reason. */
static int eval_take_batch(Evaluator *E, char *err, size_t errlen)
{
    LoaderBatchInfo info;
    int real = loader_next(E->loader, E->x, E->labels, &info, err, errlen);
    if (real < 0) return -1;
    size_t image_floats = (size_t)E->K * E->crop_floats;
    int kept = 0;
    for (int b = 0; b < real; b++) {
        if (info.skipped[b]) {
            eval_note_bad(E, info.items[b], info.skipped[b]);
            continue;
        }
        if (kept != b)
            memcpy(E->x + (size_t)kept * image_floats, E->x + (size_t)b * image_floats, image_floats * sizeof(float));
        E->labels[kept] = E->labels[b];
        E->items[kept++] = info.items[b];
    }
    E->done += real;
    return kept;
}

/* The network over the crops of n images, forwards of at most B crops, each
 * under every weight set in turn (an ensemble reloads weights per forward: a
 * memcpy of the parameters is about 1% of a forward of 32 crops at 224), the
 * softmax rows summed into E->acc. */
static void eval_forward(Evaluator *E, int n)
{
    int classes = E->classes, K = E->K;
    float *params = model_params(E->m);
    memset(E->acc, 0, (size_t)n * classes * sizeof *E->acc);
    long total = (long)n * K;
    for (long at = 0; at < total; at += E->B) {
        int cnt = total - at < E->B ? (int)(total - at) : E->B;
        for (int s = 0; s < E->nsets; s++) {
            if (E->nsets > 1) memcpy(params, E->sets[s], E->np * sizeof(float));
            model_forward(E->m, E->x + (size_t)at * E->crop_floats, NULL, cnt, MODEL_EVAL, 0, NULL);
            const float *logits = model_logits(E->m, MODEL_HEAD_MAIN); /* (classes, cnt) */
            loss_softmax(E->probs, logits, classes, cnt);
            for (int i = 0; i < cnt && E->logits; i++) /* one crop an image: crop at + i is image at + i */
                for (int k = 0; k < classes; k++) E->logits[(size_t)(at + i) * classes + k] = logits[(size_t)k * cnt + i];
            for (int i = 0; i < cnt; i++) {
                double *dst = E->acc + (size_t)((at + i) / K) * classes;
                const float *src = E->probs + (size_t)i * classes;
                for (int k = 0; k < classes; k++) dst[k] += src[k];
            }
        }
    }
}

/* Scores the n images of E->acc: top-1, top-5, -log p(label), per class. */
static void eval_score(Evaluator *E, int n)
{
    const EvalConfig *cfg = E->cfg;
    int classes = E->classes;
    double inv = 1.0 / ((double)E->K * E->nsets);
    for (int j = 0; j < n; j++) {
        double *p = E->acc + (size_t)j * classes;
        int label = E->labels[j];
        for (int k = 0; k < classes; k++) p[k] *= inv;
        int rank = loss_rank_of_f64(p, classes, label);
        double pl = p[label] > EVAL_P_FLOOR ? p[label] : EVAL_P_FLOOR;
        E->images++;
        E->crops += (int64_t)E->K * E->nsets;
        E->loss_sum += -log(pl);
        E->top1 += rank == 1;
        E->top5 += rank <= 5;
        E->class_total[label]++;
        E->class_top1[label] += rank == 1;
        E->class_top5[label] += rank <= 5;
        if (cfg->on_image)
            cfg->on_image(cfg->on_image_ctx, E->items[j], p, E->logits ? E->logits + (size_t)j * classes : NULL, NULL);
    }
}

/* Every batch of this rank's shard through the network; stops early over the
 * bad-file limit (E->stopped). Returns 0, or -1 with a reason. */
static int eval_shard(Evaluator *E, char *err, size_t errlen)
{
    /* a caller may pass the model's own parameters as its one weight set */
    if (E->nsets == 1 && E->sets[0] != model_params(E->m)) memcpy(model_params(E->m), E->sets[0], E->np * sizeof(float));
    long steps = loader_steps_per_epoch(E->loader);
    for (long q = 0; q < steps && !E->stopped; q++) {
        int n = eval_take_batch(E, err, errlen);
        if (n < 0) return -1;
        if (E->stopped) break;
        eval_forward(E, n);
        eval_score(E, n);
        if (E->cfg->progress) E->cfg->progress(E->cfg->progress_ctx, E->done, E->nimg);
    }
    return 0;
}

/* Local checks that need no collective; the message names what to change. */
static int eval_check(const Model *m, int nsets, const EvalConfig *cfg, int *B, int *crop, char *err, size_t errlen)
{
    const ModelConfig *mc = model_config(m);
    if (!cfg->ds) return snprintf(err, errlen, "no dataset to evaluate"), -1;
    if (nsets < 1) return snprintf(err, errlen, "no weights to evaluate"), -1;
    if (!crops_valid(cfg->crops))
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

/* What the reduction over ranks needs, allocated before the first collective
 * so that no rank can fail between collectives. */
typedef struct {
    int64_t *counts; /* (ncounts) images, crops, bad, top1, top5, 3 x (classes), ranks stopped early */
    size_t ncounts;
    char *names;     /* (world + 1, EVAL_NAMES) every rank's bad names, then this rank's */
} EvalTotals;

enum { EVAL_NAMES = EVAL_BAD_NAMES * 256 };

static int eval_totals_alloc(EvalTotals *T, int world, int classes, EvalResult *out)
{
    T->ncounts = 6 + 3 * (size_t)classes;
    T->counts = calloc(T->ncounts, sizeof *T->counts);
    T->names = calloc((size_t)world + 1, EVAL_NAMES);
    out->class_total = malloc((size_t)classes * sizeof(int64_t));
    out->class_top1 = malloc((size_t)classes * sizeof(int64_t));
    out->class_top5 = malloc((size_t)classes * sizeof(int64_t));
    return T->counts && T->names && out->class_total && out->class_top1 && out->class_top5 ? 0 : -1;
}

static void eval_totals_free(EvalTotals *T)
{
    free(T->counts);
    free(T->names);
}

/* Collective: 0 when no rank failed, else -1 with the first failure's words
 * (comm_agree; without a Comm, this process's). */
static int eval_agree(Comm *c, int failed, const char *msg, char *err, size_t errlen)
{
    if (c) return comm_agree(c, failed, msg, err, errlen);
    if (failed) snprintf(err, errlen, "%s", msg);
    return failed ? -1 : 0;
}

/* Collective: this rank's figures (E, seconds) summed over the ranks into out. */
static void eval_reduce(Comm *c, const Evaluator *E, double seconds, EvalTotals *T, EvalResult *out)
{
    int world = c ? comm_size(c) : 1, classes = E->classes;
    int64_t *counts = T->counts;
    counts[0] = E->images;
    counts[1] = E->crops;
    counts[2] = E->bad;
    counts[3] = E->top1;
    counts[4] = E->top5;
    counts[T->ncounts - 1] = E->stopped;
    double sums[1] = {E->loss_sum}, maxs[1] = {seconds};
    char *mine = T->names + (size_t)world * EVAL_NAMES;
    for (int k = 0; k < E->nbad_names; k++) {
        size_t used = strlen(mine), len = strlen(E->bad_names[k]);
        if (used + len + 2 > EVAL_NAMES) break;
        memcpy(mine + used, E->bad_names[k], len);
        mine[used + len] = '\n';
    }
    if (c) {
        comm_allreduce_int64(c, counts, (int)T->ncounts, COMM_SUM, "evaluation counts");
        comm_allreduce_double(c, sums, 1, COMM_SUM, "evaluation loss");
        comm_allreduce_double(c, maxs, 1, COMM_MAX, "evaluation time");
        comm_allgather_string(c, mine, T->names, EVAL_NAMES, "bad file names");
    } else {
        memcpy(T->names, mine, EVAL_NAMES);
    }
    out->images = counts[0];
    out->crops = counts[1];
    out->bad = counts[2];
    out->top1 = counts[3];
    out->top5 = counts[4];
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
        const char *s = T->names + (size_t)r * EVAL_NAMES;
        while (*s && out->nbad_names < EVAL_BAD_NAMES) {
            const char *nl = strchr(s, '\n');
            size_t len = nl ? (size_t)(nl - s) : strlen(s);
            snprintf(out->bad_names[out->nbad_names++], 256, "%.*s", (int)(len < 255 ? len : 255), s);
            s += len + (nl ? 1 : 0);
        }
    }
}

/* EVAL_INCOMPLETE with the reason when more images than max_bad were unreadable, else 0. */
static int eval_limit(const EvalConfig *cfg, EvalResult *out, int64_t stopped_ranks, char *err, size_t errlen)
{
    int64_t seen = out->images + out->bad;
    if (!((out->bad > 0 && out->bad > cfg->max_bad * (double)seen) || stopped_ranks)) return 0;
    out->incomplete = 1;
    snprintf(err, errlen,
             "%lld of %lld images could not be read (limit %.3g%%)%s, e.g. %.150s; the figures cover only the "
             "%lld images scored; check the dataset or raise %s",
             (long long)out->bad, (long long)seen, 100 * cfg->max_bad,
             stopped_ranks ? " and the evaluation stopped early" : "", out->nbad_names ? out->bad_names[0] : "?",
             (long long)out->images, cfg->max_bad_name ? cfg->max_bad_name : "the bad-file limit");
    return EVAL_INCOMPLETE;
}

int evaluate_run(Comm *c, Model *m, const float *const *weight_sets, int nsets, const EvalConfig *cfg,
                 EvalResult *out, char *err, size_t errlen)
{
    double t0 = clock_now();
    memset(out, 0, sizeof *out);
    char msg[EVAL_MSG] = "";
    Evaluator E;
    memset(&E, 0, sizeof E);
    E.cfg = cfg, E.m = m, E.sets = weight_sets, E.nsets = nsets, E.K = cfg->crops;
    E.classes = model_config(m)->classes;
    E.np = model_num_params(m);
    EvalTotals T = {0};
    int failed = eval_check(m, nsets, cfg, &E.B, &E.crop, msg, sizeof msg) != 0;
    if (!failed && eval_totals_alloc(&T, c ? comm_size(c) : 1, E.classes, out) != 0)
        failed = 1, snprintf(msg, sizeof msg, "out of memory for the evaluation counts");
    if (!failed) {
        E.class_total = T.counts + 5;
        E.class_top1 = E.class_total + E.classes;
        E.class_top5 = E.class_top1 + E.classes;
        size_t n = dataset_size(cfg->ds), stride = 1;
        if (cfg->subset > 0 && (size_t)cfg->subset < n) { /* item i * floor(size / N) */
            stride = n / (size_t)cfg->subset;
            n = (size_t)cfg->subset;
        }
        failed = eval_setup(&E, c, n, stride, msg, sizeof msg) != 0 || eval_shard(&E, msg, sizeof msg) != 0;
    }
    eval_free(&E); /* the loader's threads end before the collectives */
    double seconds = clock_now() - t0;
    if (eval_agree(c, failed, msg, err, errlen) != 0) {
        eval_totals_free(&T);
        evaluate_result_free(out);
        return -1;
    }
    eval_reduce(c, &E, seconds, &T, out);
    out->models = nsets;
    out->crops_per_image = cfg->crops;
    out->crop = E.crop;
    int64_t stopped_ranks = T.counts[T.ncounts - 1];
    eval_totals_free(&T);
    return eval_limit(cfg, out, stopped_ranks, err, errlen);
}

/* ---- report and table ---- */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} JsonText;

static void json_printf(JsonText *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void json_printf(JsonText *b, const char *fmt, ...)
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
static void json_string(JsonText *b, const char *s)
{
    json_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') json_printf(b, "\\%c", *p);
        else if (*p < 0x20) json_printf(b, "\\u%04x", *p);
        else json_printf(b, "%c", *p);
    }
    json_printf(b, "\"");
}

void evaluate_json_print_string(FILE *f, const char *s)
{
    JsonText b = {0};
    json_string(&b, s);
    fputs(b.oom || !b.s ? "\"\"" : b.s, f);
    free(b.s);
}

static double eval_frac(int64_t a, int64_t b) { return b > 0 ? (double)a / (double)b : 0.0; }

char *evaluate_json(const EvalResult *r, const EvalReportInfo *info, int per_class, int one_line)
{
    JsonText b = {0};
    const char *nl = one_line ? "" : "\n  ", *sp = one_line ? "" : " ";
    json_printf(&b, "{%s\"top1\":%s%.6f,%s\"top5\":%s%.6f,%s\"loss\":%s%.6f,", nl, sp, eval_frac(r->top1, r->images), nl,
              sp, eval_frac(r->top5, r->images), nl, sp, r->loss);
    json_printf(&b, "%s\"images\":%s%lld,%s\"bad\":%s%lld,%s\"crops\":%s%lld,%s\"crops_per_image\":%s%d,", nl, sp,
              (long long)r->images, nl, sp, (long long)r->bad, nl, sp, (long long)r->crops, nl, sp,
              r->crops_per_image);
    json_printf(&b, "%s\"crop\":%s%d,%s\"models\":%s%d,%s\"seconds\":%s%.3f,%s\"img_per_s\":%s%.3f,%s\"world\":%s%d", nl,
              sp, r->crop, nl, sp, r->models, nl, sp, r->seconds, nl, sp, r->img_per_s, nl, sp, r->world);
    if (r->incomplete) json_printf(&b, ",%s\"incomplete\":%strue", nl, sp);
    if (info && info->weights) {
        json_printf(&b, ",%s\"weights\":%s", nl, sp);
        json_string(&b, info->weights);
    }
    if (info && info->data) {
        json_printf(&b, ",%s\"data\":%s", nl, sp);
        json_string(&b, info->data);
    }
    if (info && info->nckpt > 0) {
        json_printf(&b, ",%s\"checkpoints\":%s[", nl, sp);
        for (int i = 0; i < info->nckpt; i++) {
            json_printf(&b, "%s{\"path\":%s", i ? "," : "", sp);
            json_string(&b, info->ckpt_names[i]);
            if (info->ckpt_steps) json_printf(&b, ",%s\"step\":%s%ld", sp, sp, info->ckpt_steps[i]);
            if (info->ckpt_sha256) {
                json_printf(&b, ",%s\"params_sha256\":%s", sp, sp);
                json_string(&b, info->ckpt_sha256[i]);
            }
            json_printf(&b, "}");
        }
        json_printf(&b, "]");
    }
    json_printf(&b, ",%s\"bad_files\":%s[", nl, sp);
    for (int i = 0; i < r->nbad_names; i++) {
        if (i) json_printf(&b, ",");
        json_string(&b, r->bad_names[i]);
    }
    json_printf(&b, "]");
    if (per_class && r->class_total) {
        json_printf(&b, ",%s\"per_class\":%s[", nl, sp);
        for (int k = 0; k < r->classes; k++) {
            json_printf(&b, "%s%s{\"class\":%s", k ? "," : "", one_line ? "" : "\n    ", sp);
            if (info && info->ds && k < dataset_num_classes(info->ds)) json_string(&b, dataset_class_name(info->ds, k));
            else json_printf(&b, "\"%d\"", k);
            json_printf(&b, ",%s\"images\":%s%lld,%s\"top1\":%s%.6f,%s\"top5\":%s%.6f}", sp, sp,
                      (long long)r->class_total[k], sp, sp, eval_frac(r->class_top1[k], r->class_total[k]), sp, sp,
                      eval_frac(r->class_top5[k], r->class_total[k]));
        }
        json_printf(&b, "%s]", one_line ? "" : "\n  ");
    }
    json_printf(&b, "%s}", one_line ? "" : "\n");
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
    size_t len = json ? strlen(json) : 0;
    char *text = json ? realloc(json, len + 2) : NULL;
    if (!text) {
        free(json);
        return snprintf(err, errlen, "out of memory for the report"), -1;
    }
    text[len] = '\n';
    text[len + 1] = '\0';
    int rc = atomic_file_write(path, text, len + 1, err, errlen);
    free(text);
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
