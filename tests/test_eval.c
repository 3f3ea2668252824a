/* test_eval.c: evaluate_run in one process (no MPI): an ensemble of two
 * random models scores what cutting the crops by hand (from the reference's
 * description, not dataloader/crops.c) and averaging the probabilities
 * gives (1, 10 and 144 crops); an ensemble is the members' average; ties are
 * misses; the figures do not depend on the decode worker count or the batch;
 * unreadable images are skipped, counted and named, and too many of them
 * fail; bad configurations are refused with a reason; the JSON report holds
 * the figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "dataloader/dataset.h"
#include "nn/loss.h"
#include "nn/model.h"
#include "tests/test_loader_util.h"
#include "dataloader/crops.h"
#include "trainer/eval/evaluate.h"

#define CLASSES 6
#define CROP 64

typedef struct {
    char *root;
    Dataset *ds;
    char *root144;
    Dataset *ds144;    /* 2 images of the 6 classes: a landscape and a portrait one */
    Model *m;          /* batch 32, inference only, no aux heads */
    Model *big;        /* batch 144: all crops of one image in one forward */
    float *sets[2];    /* (np) each: two random models */
} Fixture;

static Fixture fx;

/* One image per class (landscape JPEGs for even classes, portrait PNGs for
 * odd ones) in class directories listed in `only` (NULL: all), plus bad files
 * in c0. A classes file names all CLASSES classes. */
static void make_data(const char *root, int bad, const int *only, int nonly)
{
    char path[4096];
    for (int k = 0; k < CLASSES; k++) {
        int take = !only;
        for (int i = 0; i < nonly; i++) take |= only[i] == k;
        if (!take && !(k == 0 && bad)) continue;
        tu_mkdir("%s/c%d", root, k);
        if (!take) continue;
        int land = k % 2 == 0, w = land ? 40 : 30, h = land ? 30 : 40;
        uint8_t *px = tu_texture_rgb(w, h, (unsigned)(k * 10 + 1));
        for (size_t p = 0; p < (size_t)w * h; p++) px[p * 3 + k % 3] = (uint8_t)(px[p * 3 + k % 3] / 2 + 120);
        if (land) {
            snprintf(path, sizeof path, "%s/c%d/i.jpg", root, k);
            TuBuf b = tu_jpeg(px, w, h, 3, JCS_RGB, JCS_YCbCr, 90, 0);
            tu_write_file(path, b.p, b.len);
            free(b.p);
        } else {
            snprintf(path, sizeof path, "%s/c%d/i.png", root, k);
            TuBuf b = tu_png(px, (size_t)w * 3, w, h, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0);
            tu_write_file(path, b.p, b.len);
            free(b.p);
        }
        free(px);
    }
    for (int i = 0; i < bad; i++) {
        snprintf(path, sizeof path, "%s/c0/zbad%d.jpg", root, i);
        if (i % 2) tu_write_text(path, "plain text, not an image\n");
        else tu_write_file(path, "\xff\xd8\xff\xe0 truncated", 14);
    }
    snprintf(path, sizeof path, "%s.classes", root);
    tu_write_text(path, "c0\nc1\nc2\nc3\nc4\nc5\n");
}

static Dataset *open_data(const char *root)
{
    char err[256], classes[512];
    snprintf(classes, sizeof classes, "%s.classes", root);
    DatasetOptions o = {0};
    o.path = root;
    o.classes_file = classes;
    Dataset *ds = dataset_open(&o, err, sizeof err);
    if (!ds) fail_msg("dataset_open %s: %s", root, err);
    return ds;
}

static int setup(void **state)
{
    (void)state;
    fx.root = tu_tmpdir("evaltest");
    make_data(fx.root, 0, NULL, 0);
    fx.ds = open_data(fx.root);
    fx.root144 = tu_tmpdir("eval144");
    const int two[2] = {2, 3};
    make_data(fx.root144, 0, two, 2);
    fx.ds144 = open_data(fx.root144);
    ModelConfig mc = model_default_config();
    mc.classes = CLASSES;
    mc.crop = CROP;
    mc.batch = 32;
    mc.aux = 0;
    mc.training = 0;
    char err[256];
    fx.m = model_init(&mc, err, sizeof err);
    if (!fx.m) fail_msg("model_init: %s", err);
    mc.batch = 144;
    fx.big = model_init(&mc, err, sizeof err);
    if (!fx.big) fail_msg("model_init: %s", err);
    size_t np = model_num_params(fx.m);
    for (int s = 0; s < 2; s++) {
        model_init_weights(fx.m, (uint64_t)(11 + s));
        fx.sets[s] = malloc(np * sizeof(float));
        memcpy(fx.sets[s], model_params(fx.m), np * sizeof(float));
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(fx.sets[0]);
    free(fx.sets[1]);
    model_free(fx.m);
    model_free(fx.big);
    dataset_free(fx.ds);
    dataset_free(fx.ds144);
    char path[512];
    snprintf(path, sizeof path, "%s.classes", fx.root);
    unlink(path);
    snprintf(path, sizeof path, "%s.classes", fx.root144);
    unlink(path);
    tu_rmtree(fx.root);
    tu_rmtree(fx.root144);
    return 0;
}

static EvalConfig config(const Dataset *ds, int crops)
{
    EvalConfig c = evaluate_default_config();
    c.ds = ds;
    c.crops = crops;
    return c;
}

typedef struct {
    long images, top1, top5;
    double loss;
} ByHand;

/* ---- the crops, cut by hand ----
 * Written from the reference's description (googlenet.md, "Testing") and
 * independently of dataloader/crops.c, which evaluate_run uses: the whole
 * image is resized so its shorter side is S = round(resize * crop / 224) (the
 * longer one S * long / short, truncated), the crops are cut from that
 * resized image at whole-pixel offsets (centred at round((side - crop) / 2),
 * half away from zero) and mirrored by reversing their columns; the 144-crop
 * scheme's "whole square" is the square resampled to crop x crop. Only the
 * resampler (image_resize_to_float) and the decoder are shared. */

typedef struct {
    const Image *img;
    ImageScratch *s;
    float *x;  /* (crops, 3, CROP, CROP) */
    int n;     /* crops cut so far */
} Cutter;

/* The whole image resized to shorter side S: (3, *H, *W) floats 0..255. */
static float *hand_resized(Cutter *c, int S, int *W, int *H)
{
    int fw = c->img->w, fh = c->img->h;
    *W = fw <= fh ? S : (int)((long long)S * fw / fh);
    *H = fw <= fh ? (int)((long long)S * fh / fw) : S;
    float *r = malloc((size_t)3 * *W * *H * sizeof(float));
    ImageBox all = {0, 0, (float)fw, (float)fh};
    char err[256];
    if (image_resize_to_float(c->img, all, *W, *H, IMAGE_FILTER_BILINEAR, 0, r, c->s, err, sizeof err) != 0)
        fail_msg("resize: %s", err);
    return r;
}

/* Normalises crop k of c in place, as (px / 255 - mean) / std. */
static void hand_normalise(Cutter *c, int k)
{
    const float mean[3] = IMAGE_MEAN_RGB, std[3] = IMAGE_STD_RGB;
    float *o = c->x + (size_t)k * 3 * CROP * CROP;
    for (int ch = 0; ch < 3; ch++)
        for (int i = 0; i < CROP * CROP; i++)
            o[ch * CROP * CROP + i] = (float)((o[ch * CROP * CROP + i] / 255.0 - mean[ch]) / std[ch]);
}

/* The CROP x CROP window at (x, y) of the resized image r (W wide), then,
 * with `mirror`, the window reversed left to right. */
static void hand_window(Cutter *c, const float *r, int W, int H, int x, int y, int mirror)
{
    for (int m = 0; m <= mirror; m++) {
        float *o = c->x + (size_t)c->n * 3 * CROP * CROP;
        for (int ch = 0; ch < 3; ch++)
            for (int i = 0; i < CROP; i++)
                for (int j = 0; j < CROP; j++)
                    o[(ch * CROP + i) * CROP + j] = r[((size_t)ch * H + y + i) * W + x + (m ? CROP - 1 - j : j)];
        hand_normalise(c, c->n++);
    }
}

/* The 4 corners and the centre of the side_w x side_h window at (qx, qy),
 * each with its mirror. */
static void hand_five(Cutter *c, const float *r, int W, int H, int qx, int qy, int side_w, int side_h)
{
    int xs[5] = {0, side_w - CROP, 0, side_w - CROP, (int)lround((side_w - CROP) / 2.0)};
    int ys[5] = {0, 0, side_h - CROP, side_h - CROP, (int)lround((side_h - CROP) / 2.0)};
    for (int i = 0; i < 5; i++) hand_window(c, r, W, H, qx + xs[i], qy + ys[i], 1);
}

/* Cuts the crops of scheme `crops` from the decoded image into c->x. */
static void hand_crops(Cutter *c, int crops)
{
    int W, H;
    if (crops == 1 || crops == 10) {
        float *r = hand_resized(c, (int)lround(256.0 * CROP / 224), &W, &H);
        if (crops == 1) {
            hand_window(c, r, W, H, (int)lround((W - CROP) / 2.0), (int)lround((H - CROP) / 2.0), 0);
        } else {
            hand_five(c, r, W, H, 0, 0, W, H);
        }
        free(r);
        return;
    }
    const int scales[4] = {256, 288, 320, 352};
    for (int s = 0; s < 4; s++) {
        float *r = hand_resized(c, (int)lround((double)scales[s] * CROP / 224), &W, &H);
        int side = W < H ? W : H, slack = (W > H ? W : H) - side;
        int offs[3] = {0, (int)lround(slack / 2.0), slack};
        for (int q = 0; q < 3; q++) {
            int qx = W >= H ? offs[q] : 0, qy = W >= H ? 0 : offs[q];
            hand_five(c, r, W, H, qx, qy, side, side);
            /* the whole square, resampled from the source */
            double sx = (double)c->img->w / W, sy = (double)c->img->h / H;
            ImageBox sq = {(float)(qx * sx), (float)(qy * sy), (float)(side * sx), (float)(side * sy)};
            for (int m = 0; m < 2; m++) {
                char err[256];
                if (image_resize_to_float(c->img, sq, CROP, CROP, IMAGE_FILTER_BILINEAR, m,
                                          c->x + (size_t)c->n * 3 * CROP * CROP, c->s, err, sizeof err) != 0)
                    fail_msg("square: %s", err);
                hand_normalise(c, c->n++);
            }
        }
        free(r);
    }
}

/* All crops of each image through the network in one forward per model, each
 * model's softmax added up and divided by crops x models, then scored: ranks
 * and the loss computed here, not by evaluate.c. */
static ByHand by_hand(const Dataset *ds, int crops, int nsets)
{
    ByHand r = {0};
    size_t np = model_num_params(fx.big);
    float *x = malloc((size_t)crops * 3 * CROP * CROP * sizeof(float)), *probs = malloc((size_t)crops * CLASSES * sizeof(float));
    ImageScratch *s = image_scratch_new();
    Image img = {0};
    uint8_t *bytes = NULL;
    size_t cap = 0, len;
    char err[256];
    for (size_t i = 0; i < dataset_size(ds); i++) {
        if (dataset_read(ds, i, &bytes, &cap, &len, err, sizeof err) != 0 ||
            image_decode(bytes, len, NULL, &img, s, err, sizeof err) != 0)
            continue;
        Cutter c = {&img, s, x, 0};
        hand_crops(&c, crops);
        assert_int_equal(c.n, crops);
        double acc[CLASSES] = {0};
        for (int m = 0; m < nsets; m++) {
            memcpy(model_params(fx.big), fx.sets[m], np * sizeof(float));
            model_forward(fx.big, x, NULL, crops, MODEL_EVAL, 0, NULL);
            loss_softmax(probs, model_logits(fx.big, 0), CLASSES, crops);
            for (int k = 0; k < crops; k++)
                for (int cl = 0; cl < CLASSES; cl++) acc[cl] += probs[k * CLASSES + cl];
        }
        int label = dataset_label(ds, i), rank = 1;
        for (int cl = 0; cl < CLASSES; cl++) acc[cl] /= (double)crops * nsets;
        for (int cl = 0; cl < CLASSES; cl++) {
            /* a margin this small could flip on the last bit of either side's arithmetic */
            if (cl != label && fabs(acc[cl] - acc[label]) < 1e-6)
                fail_msg("image %zu: class %d and the label within 1e-6; the fixture cannot tell", i, cl);
            if (cl != label && acc[cl] > acc[label]) rank++;
        }
        r.images++;
        r.top1 += rank == 1;
        r.top5 += rank <= 5;
        r.loss += -log(acc[label]);
    }
    r.loss /= r.images ? r.images : 1;
    free(bytes);
    image_free(&img);
    image_scratch_free(s);
    free(x);
    free(probs);
    return r;
}

static EvalResult run(const EvalConfig *c, int nsets)
{
    EvalResult r;
    char err[512] = "";
    const float *const sets[2] = {fx.sets[0], fx.sets[1]};
    if (evaluate_run(NULL, fx.m, sets, nsets, c, &r, err, sizeof err) != 0) fail_msg("evaluate_run: %s", err);
    return r;
}

static void expect_by_hand(const Dataset *ds, int crops, int nsets, int batch)
{
    EvalConfig c = config(ds, crops);
    c.batch = batch;
    EvalResult r = run(&c, nsets);
    ByHand h = by_hand(ds, crops, nsets);
    assert_int_equal(r.images, h.images);
    assert_int_equal(r.images, (int64_t)dataset_size(ds));
    assert_int_equal(r.top1, h.top1);
    assert_int_equal(r.top5, h.top5);
    assert_int_equal(r.models, nsets);
    assert_int_equal(r.crops, (int64_t)h.images * crops * nsets);
    assert_int_equal(r.bad, 0);
    if (fabs(r.loss - h.loss) > 1e-5 * fmax(1.0, h.loss))
        fail_msg("%d crops x %d models: loss %.9f, by hand %.9f", crops, nsets, r.loss, h.loss);
    int64_t total = 0, top1 = 0;
    for (int k = 0; k < CLASSES; k++) total += r.class_total[k], top1 += r.class_top1[k];
    assert_int_equal(total, r.images);
    assert_int_equal(top1, r.top1);
    evaluate_result_free(&r);
}

static void test_ensemble_by_hand(void **state)
{
    (void)state;
    expect_by_hand(fx.ds, 1, 2, 32);
    expect_by_hand(fx.ds, 10, 2, 32);
    expect_by_hand(fx.ds, 10, 1, 7);
    expect_by_hand(fx.ds144, 144, 1, 32);
}

/* An ensemble averages its members: {A, A} scores exactly as A alone (so
 * the average divides by crops x models), {A, B} exactly as {B, A} (every
 * member counts, in any order), and its loss lies strictly below the mean of
 * A's and B's (-log of a mean probability is below the mean of the -logs
 * where the members disagree), which a scoring of one member would not. */
static void test_ensemble_is_average(void **state)
{
    (void)state;
    EvalConfig c = config(fx.ds, 10);
    const float *a = fx.sets[0], *b = fx.sets[1];
    EvalResult ab = run(&c, 2);
    fx.sets[0] = (float *)b, fx.sets[1] = (float *)a;
    EvalResult ba = run(&c, 2);
    fx.sets[0] = fx.sets[1] = (float *)a;
    EvalResult aa = run(&c, 2);
    EvalResult one_a = run(&c, 1);
    fx.sets[0] = (float *)b;
    EvalResult one_b = run(&c, 1);
    fx.sets[0] = (float *)a, fx.sets[1] = (float *)b;
    assert_int_equal(aa.top1, one_a.top1);
    assert_int_equal(aa.top5, one_a.top5);
    if (fabs(aa.loss - one_a.loss) > 1e-6) fail_msg("{A, A} loss %.9f, A alone %.9f", aa.loss, one_a.loss);
    assert_int_equal(ab.top1, ba.top1);
    assert_int_equal(ab.top5, ba.top5);
    if (fabs(ab.loss - ba.loss) > 1e-6) fail_msg("{A, B} loss %.9f, {B, A} %.9f", ab.loss, ba.loss);
    double mean = (one_a.loss + one_b.loss) / 2;
    if (!(ab.loss < mean - 1e-6)) fail_msg("{A, B} loss %.9f is not below the members' mean %.9f", ab.loss, mean);
    EvalResult *all[5] = {&ab, &ba, &aa, &one_a, &one_b};
    for (int i = 0; i < 5; i++) evaluate_result_free(all[i]);
}

/* Top-1 and top-5 count a tie with another class as a miss (nn/loss.h, the
 * rule training counts by too): a model whose weights are all zero gives
 * every class the same score, so nothing is right, and the loss is log 6. */
static void test_ties_are_misses(void **state)
{
    (void)state;
    size_t np = model_num_params(fx.m);
    float *zero = calloc(np, sizeof(float));
    const float *const sets[1] = {zero};
    EvalConfig c = config(fx.ds, 1);
    EvalResult r;
    char err[512] = "";
    if (evaluate_run(NULL, fx.m, sets, 1, &c, &r, err, sizeof err) != 0) fail_msg("evaluate_run: %s", err);
    assert_int_equal(r.images, CLASSES);
    assert_int_equal(r.top1, 0);
    assert_int_equal(r.top5, 0);
    if (fabs(r.loss - log((double)CLASSES)) > 1e-6) fail_msg("loss %.9f, want log 6", r.loss);
    evaluate_result_free(&r);
    free(zero);
}

/* (workers, batch) = (0, 7), (3, 7), (1, 32) against the default (2, 32):
 * the same figures. */
static void test_workers_and_batch_invariant(void **state)
{
    (void)state;
    EvalConfig c = config(fx.ds, 10);
    EvalResult ref = run(&c, 1);
    const int workers[3] = {0, 3, 1}, batches[3] = {7, 7, 32};
    for (int i = 0; i < 3; i++) {
        c.workers = workers[i];
        c.batch = batches[i];
        EvalResult r = run(&c, 1);
        assert_int_equal(r.images, ref.images);
        assert_int_equal(r.top1, ref.top1);
        assert_int_equal(r.top5, ref.top5);
        assert_memory_equal(r.class_top1, ref.class_top1, CLASSES * sizeof(int64_t));
        if (fabs(r.loss - ref.loss) > 1e-6)
            fail_msg("workers %d batch %d: loss %.9f vs %.9f", workers[i], batches[i], r.loss, ref.loss);
        evaluate_result_free(&r);
    }
    evaluate_result_free(&ref);
}

static void test_bad_files_skipped(void **state)
{
    (void)state;
    char *root = tu_tmpdir("evalbad");
    make_data(root, 3, NULL, 0);
    Dataset *ds = open_data(root);
    assert_int_equal(dataset_size(ds), CLASSES + 3);
    EvalConfig c = config(ds, 10);
    c.max_bad = 0.5;
    EvalResult r = run(&c, 1);
    assert_int_equal(r.images, CLASSES);
    assert_int_equal(r.bad, 3);
    assert_int_equal(r.nbad_names, 3);
    assert_non_null(strstr(r.bad_names[0], "zbad0.jpg"));
    assert_int_equal(r.class_total[0], 1); /* bad files are not scored in their class */
    /* the same as the clean set: skipped, not counted wrong or right */
    EvalConfig cc = config(fx.ds, 10);
    EvalResult clean = run(&cc, 1);
    assert_int_equal(r.top1, clean.top1);
    assert_int_equal(r.top5, clean.top5);
    int64_t clean_top1 = clean.top1;
    assert_true(fabs(r.loss - clean.loss) < 1e-6);
    char *json = evaluate_json(&r, NULL, 1, 1);
    assert_non_null(strstr(json, "\"bad\":3"));
    assert_non_null(strstr(json, "zbad1.jpg"));
    assert_null(strchr(json, '\n'));
    free(json);
    evaluate_result_free(&r);
    evaluate_result_free(&clean);
    /* over the limit: what was scored comes back marked incomplete, with a
     * message naming a file */
    c.max_bad = 0.1;
    char err[512] = "";
    const float *const sets[1] = {fx.sets[0]};
    assert_int_equal(evaluate_run(NULL, fx.m, sets, 1, &c, &r, err, sizeof err), EVAL_INCOMPLETE);
    assert_true(r.incomplete);
    assert_int_equal(r.images, CLASSES);
    assert_int_equal(r.top1, clean_top1);
    assert_non_null(strstr(err, "3 of 9 images"));
    assert_non_null(strstr(err, "zbad"));
    evaluate_result_free(&r);
    dataset_free(ds);
    snprintf(err, sizeof err, "%s.classes", root);
    unlink(err);
    tu_rmtree(root);
}

static void test_bad_config_refused(void **state)
{
    (void)state;
    char err[512];
    EvalResult r;
    const float *const sets[1] = {fx.sets[0]};
    EvalConfig c = config(fx.ds, 5);
    assert_int_equal(evaluate_run(NULL, fx.m, sets, 1, &c, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "1, 10 or 144"));
    c = config(fx.ds, 10);
    c.batch = 64;
    assert_int_equal(evaluate_run(NULL, fx.m, sets, 1, &c, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "batch 64"));
    c = config(fx.ds, 10);
    c.crop = 96;
    assert_int_equal(evaluate_run(NULL, fx.m, sets, 1, &c, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "crop 96"));
    /* a dataset with other classes */
    char *root = tu_tmpdir("evalcls");
    tu_mkdir("%s/only", root);
    char path[4096];
    snprintf(path, sizeof path, "%s/only/x.jpg", root);
    tu_write_texture_jpeg(path, 40, 30, 1);
    DatasetOptions o = {0};
    o.path = root;
    Dataset *ds = dataset_open(&o, err, sizeof err);
    assert_non_null(ds);
    c = config(ds, 1);
    assert_int_equal(evaluate_run(NULL, fx.m, sets, 1, &c, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "6 classes"));
    dataset_free(ds);
    tu_rmtree(root);
}

static void test_report_file(void **state)
{
    (void)state;
    EvalConfig c = config(fx.ds, 1);
    EvalResult r = run(&c, 2);
    char *dir = tu_tmpdir("evalrep"), path[512], err[256];
    snprintf(path, sizeof path, "%s/report.json", dir);
    const char *names[2] = {"a.gnck", "b \"quoted\".gnck"};
    long steps[2] = {10, 20};
    EvalReportInfo info = {"/data/val", "raw", names, steps, NULL, 2, fx.ds};
    assert_int_equal(evaluate_report_write(path, &r, &info, err, sizeof err), 0);
    FILE *f = fopen(path, "r");
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    char want[64];
    snprintf(want, sizeof want, "\"top1\": %.6f", (double)r.top1 / r.images);
    assert_non_null(strstr(buf, want));
    assert_non_null(strstr(buf, "\"images\": 6"));
    assert_non_null(strstr(buf, "\"models\": 2"));
    assert_non_null(strstr(buf, "\"img_per_s\""));
    assert_non_null(strstr(buf, "b \\\"quoted\\\".gnck"));
    assert_non_null(strstr(buf, "{\"class\": \"c5\", \"images\": 1"));
    /* a report into a missing directory is an error, not a crash */
    assert_int_equal(evaluate_report_write("/nonexistent/dir/r.json", &r, &info, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/dir"));
    evaluate_result_free(&r);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ensemble_by_hand),
        cmocka_unit_test(test_ensemble_is_average),
        cmocka_unit_test(test_ties_are_misses),
        cmocka_unit_test(test_workers_and_batch_invariant),
        cmocka_unit_test(test_bad_files_skipped),
        cmocka_unit_test(test_bad_config_refused),
        cmocka_unit_test(test_report_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
