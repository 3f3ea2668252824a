/* test_eval.c: evaluate_run in one process (no MPI): an ensemble of two
 * random models scores exactly what averaging their probabilities by hand
 * gives (1, 10 and 144 crops); the figures do not depend on the decode worker
 * count or the batch; unreadable images are skipped, counted and named, and
 * too many of them fail; bad configurations are refused with a reason; the
 * JSON report holds the figures. */
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
#include "trainer/eval_crops.h"
#include "trainer/evaluate.h"

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

/* All crops of each image through the network in one forward per model, each
 * model's softmax added up and divided by crops x models, then scored. */
static ByHand by_hand(const Dataset *ds, int crops, int nsets)
{
    ByHand r = {0};
    size_t np = model_num_params(fx.big), cf = (size_t)3 * CROP * CROP;
    float *x = malloc((size_t)crops * cf * sizeof(float)), *probs = malloc((size_t)crops * CLASSES * sizeof(float));
    const float mean[3] = IMAGE_MEAN_RGB, std[3] = IMAGE_STD_RGB;
    ImageScratch *s = image_scratch_new();
    Image img = {0};
    uint8_t *bytes = NULL;
    size_t cap = 0, len;
    char err[256];
    for (size_t i = 0; i < dataset_size(ds); i++) {
        int fw, fh;
        ImageFormat fmt;
        if (dataset_read(ds, i, &bytes, &cap, &len, err, sizeof err) != 0 ||
            image_probe(bytes, len, &fw, &fh, &fmt, err, sizeof err) != 0)
            continue;
        EvalCropPlan p;
        assert_int_equal(eval_crops_plan(crops, fw, fh, CROP, 256, IMAGE_FILTER_BILINEAR, 0, &p, err, sizeof err), 0);
        if (image_decode(bytes, len, &p.decode, &img, s, err, sizeof err) != 0) continue;
        double acc[CLASSES] = {0};
        for (int k = 0; k < crops; k++)
            assert_int_equal(eval_crops_cut(&p, k, &img, CROP, IMAGE_FILTER_BILINEAR, mean, std, x + k * cf, s, err, sizeof err), 0);
        for (int m = 0; m < nsets; m++) {
            memcpy(model_params(fx.big), fx.sets[m], np * sizeof(float));
            model_forward(fx.big, x, NULL, crops, MODEL_EVAL, 0, NULL);
            loss_softmax(probs, model_logits(fx.big, 0), CLASSES, crops);
            for (int k = 0; k < crops; k++)
                for (int c = 0; c < CLASSES; c++) acc[c] += probs[k * CLASSES + c];
        }
        int label = dataset_label(ds, i), rank = 1;
        for (int c = 0; c < CLASSES; c++) acc[c] /= (double)crops * nsets;
        for (int c = 0; c < CLASSES; c++)
            if (c != label && acc[c] >= acc[label]) rank++;
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

/* The ensemble is not either member: its loss differs from both. */
static void test_ensemble_is_average(void **state)
{
    (void)state;
    EvalConfig c = config(fx.ds, 10);
    EvalResult both = run(&c, 2);
    const float *tmp = fx.sets[0];
    EvalResult a = run(&c, 1);
    fx.sets[0] = fx.sets[1];
    EvalResult b = run(&c, 1);
    fx.sets[0] = (float *)tmp;
    assert_true(fabs(both.loss - a.loss) > 1e-6 && fabs(both.loss - b.loss) > 1e-6);
    evaluate_result_free(&both);
    evaluate_result_free(&a);
    evaluate_result_free(&b);
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
        cmocka_unit_test(test_workers_and_batch_invariant),
        cmocka_unit_test(test_bad_files_skipped),
        cmocka_unit_test(test_bad_config_refused),
        cmocka_unit_test(test_report_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
