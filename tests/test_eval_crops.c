/* test_eval_crops.c: the crop geometry of the 1-, 10- and 144-crop schemes
 * (exact boxes for a landscape and a portrait image, 144 distinct boxes with
 * mirrors), the scaling of the sizes with the crop, and the loader's
 * evaluation batches (1, 10 and 144 crops an image) against crops_plan and
 * crops_cut called directly, bit for bit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "dataloader/dataset.h"
#include "dataloader/image.h"
#include "dataloader/loader.h"
#include "tests/test_loader_util.h"
#include "dataloader/crops.h"

static CropPlan plan_of(int crops, int fw, int fh, int crop)
{
    CropPlan p;
    char err[256] = "";
    int rc = crops_plan(crops, fw, fh, crop, 256, IMAGE_FILTER_BILINEAR, 0, &p, err, sizeof err);
    if (rc != 0) fail_msg("plan %d crops of %dx%d: %s", crops, fw, fh, err);
    return p;
}

/* Box (x, y, w, h) given in pixels of the image resized to Wr x Hr. */
static void expect_box(const CropBox *b, int fw, int fh, int Wr, int Hr, int x, int y, int w, int h, int mirror)
{
    double sx = (double)fw / Wr, sy = (double)fh / Hr;
    if (fabs(b->x - x * sx) > 1e-9 || fabs(b->y - y * sy) > 1e-9 || fabs(b->w - w * sx) > 1e-9 ||
        fabs(b->h - h * sy) > 1e-9 || b->mirror != mirror)
        fail_msg("box (%.4f %.4f %.4f %.4f m%d), expected resized (%d %d %d %d m%d) = (%.4f %.4f %.4f %.4f)", b->x,
                 b->y, b->w, b->h, b->mirror, x, y, w, h, mirror, x * sx, y * sy, w * sx, h * sy);
}

static void test_one_crop_boxes(void **state)
{
    (void)state;
    /* 500x375 at crop 224: resized 341x256, centre at (round(58.5), 16) = (59, 16) */
    CropPlan p = plan_of(1, 500, 375, 224);
    assert_int_equal(p.n, 1);
    expect_box(&p.box[0], 500, 375, 341, 256, 59, 16, 224, 224, 0);
    /* portrait 375x500: 256x341, centre (16, 59) */
    p = plan_of(1, 375, 500, 224);
    expect_box(&p.box[0], 375, 500, 256, 341, 16, 59, 224, 224, 0);
    /* crop 64: shorter side round(256 * 64 / 224) = 73; 40x30 -> 97x73 */
    p = plan_of(1, 40, 30, 64);
    expect_box(&p.box[0], 40, 30, 97, 73, 17, 5, 64, 64, 0);
}

static void test_ten_crop_boxes(void **state)
{
    (void)state;
    CropPlan p = plan_of(10, 500, 375, 224);
    assert_int_equal(p.n, 10);
    const int xs[5] = {0, 117, 0, 117, 59}, ys[5] = {0, 0, 32, 32, 16};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < 5; i++) expect_box(&p.box[m * 5 + i], 500, 375, 341, 256, xs[i], ys[i], 224, 224, m);
    p = plan_of(10, 375, 500, 224);
    const int pxs[5] = {0, 32, 0, 32, 16}, pys[5] = {0, 0, 117, 117, 59};
    for (int m = 0; m < 2; m++)
        for (int i = 0; i < 5; i++) expect_box(&p.box[m * 5 + i], 375, 500, 256, 341, pxs[i], pys[i], 224, 224, m);
    /* the whole image is decoded (one decode serves all ten) */
    assert_int_equal(p.decode.roi_w, 0);
}

/* The 144 boxes, enumerated independently in the documented order. */
static void check_144(int fw, int fh, int crop)
{
    CropPlan p = plan_of(144, fw, fh, crop);
    assert_int_equal(p.n, 144);
    const int scales[4] = {256, 288, 320, 352};
    int k = 0;
    for (int s = 0; s < 4; s++) {
        int S = (int)lround(scales[s] * crop / 224.0);
        int Wr = fw <= fh ? S : (int)((long long)S * fw / fh), Hr = fw <= fh ? (int)((long long)S * fh / fw) : S;
        int slack = (Wr > Hr ? Wr : Hr) - S;
        int offs[3] = {0, (int)lround(slack / 2.0), slack};
        for (int q = 0; q < 3; q++) {
            int qx = fw > fh ? offs[q] : 0, qy = fw > fh ? 0 : offs[q];
            int c = (int)lround((S - crop) / 2.0);
            int bx[6] = {qx, qx + S - crop, qx, qx + S - crop, qx + c, qx};
            int by[6] = {qy, qy, qy + S - crop, qy + S - crop, qy + c, qy};
            int bw[6] = {crop, crop, crop, crop, crop, S};
            for (int i = 0; i < 6; i++)
                for (int m = 0; m < 2; m++) expect_box(&p.box[k++], fw, fh, Wr, Hr, bx[i], by[i], bw[i], bw[i], m);
        }
    }
    /* 144 distinct (box, mirror), all inside the image */
    for (int i = 0; i < 144; i++) {
        const CropBox *a = &p.box[i];
        assert_true(a->x >= -1e-9 && a->y >= -1e-9 && a->x + a->w <= fw + 1e-6 && a->y + a->h <= fh + 1e-6);
        for (int j = 0; j < i; j++) {
            const CropBox *b = &p.box[j];
            if (a->x == b->x && a->y == b->y && a->w == b->w && a->h == b->h && a->mirror == b->mirror)
                fail_msg("%dx%d: boxes %d and %d are the same", fw, fh, j, i);
        }
    }
}

static void test_144_crop_boxes(void **state)
{
    (void)state;
    check_144(500, 375, 224); /* landscape: left, centre, right squares */
    check_144(375, 500, 224); /* portrait: top, centre, bottom */
    check_144(40, 30, 64);
    check_144(30, 40, 64);
    /* spot checks against numbers worked by hand: 500x375, scale 352 is
     * 469x352, the right square starts at x 117; its bottom-right crop is
     * at (117 + 128, 128) */
    CropPlan p = plan_of(144, 500, 375, 224);
    expect_box(&p.box[3 * 36 + 2 * 12 + 3 * 2], 500, 375, 469, 352, 245, 128, 224, 224, 0);
    /* scale 256, centre square of 341x256 at x round(42.5) = 43, whole square, mirrored */
    expect_box(&p.box[1 * 12 + 5 * 2 + 1], 500, 375, 341, 256, 43, 0, 256, 256, 1);
    /* a square image has three equal squares, and its whole square is the
     * whole image at every scale: 4 x 5 x 2 + 2 = 42 distinct boxes */
    p = plan_of(144, 300, 300, 224);
    int distinct = 0;
    for (int i = 0; i < 144; i++) {
        int seen = 0;
        for (int j = 0; j < i && !seen; j++)
            seen = !memcmp(&p.box[i], &p.box[j], sizeof p.box[i]);
        distinct += !seen;
    }
    assert_int_equal(distinct, 42);
}

static void test_plan_rejects(void **state)
{
    (void)state;
    CropPlan p;
    char err[256];
    assert_int_equal(crops_plan(5, 100, 100, 64, 256, IMAGE_FILTER_BILINEAR, 0, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "1, 10 or 144"));
    assert_int_equal(crops_plan(10, 0, 100, 64, 256, IMAGE_FILTER_BILINEAR, 0, &p, err, sizeof err), -1);
    assert_int_equal(crops_plan(10, 100, 100, 64, 256, IMAGE_FILTER_RANDOM, 0, &p, err, sizeof err), -1);
}

/* The loader's eval batches of `crops` crops an image equal the crops cut
 * directly, bit for bit, over JPEG and PNG, landscape and portrait, upsampled
 * and DCT-downscaled images. */
static void parity_at(const char *root, int crop, ImageFilter filter, int crops)
{
    char err[256] = "";
    DatasetOptions o = {0};
    o.path = root;
    Dataset *ds = dataset_open(&o, err, sizeof err);
    if (!ds) fail_msg("dataset_open: %s", err);
    size_t n = dataset_size(ds);
    LoaderConfig lc = loader_default_config();
    lc.ds = ds;
    lc.crop = crop;
    lc.batch = (int)n;
    lc.train = 0;
    lc.workers = 0;
    lc.eval_filter = filter;
    lc.eval_crops = crops;
    Loader *L = loader_init(&lc, err, sizeof err);
    if (!L) fail_msg("loader_init: %s", err);
    size_t cf = (size_t)3 * crop * crop;
    float *want = malloc(n * crops * cf * sizeof(float)), *got = malloc(cf * sizeof(float));
    int *labels = malloc(n * sizeof(int));
    LoaderBatchInfo info;
    assert_int_equal(loader_next(L, want, labels, &info, err, sizeof err), (int)n);
    assert_int_equal(info.bad, 0);
    ImageScratch *s = image_scratch_new();
    Image img = {0};
    uint8_t *bytes = NULL;
    size_t cap = 0, len = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(dataset_read(ds, i, &bytes, &cap, &len, err, sizeof err), 0);
        int fw, fh;
        ImageFormat fmt;
        assert_int_equal(image_probe(bytes, len, &fw, &fh, &fmt, err, sizeof err), 0);
        CropPlan p;
        assert_int_equal(crops_plan(crops, fw, fh, crop, 256, filter, 0, &p, err, sizeof err), 0);
        assert_int_equal(image_decode(bytes, len, &p.decode, &img, s, err, sizeof err), 0);
        for (int c = 0; c < crops; c++) {
            const float *w = want + (i * crops + c) * cf;
            assert_int_equal(crops_cut(&p, c, &img, crop, filter, lc.mean, lc.std, got, s, err, sizeof err), 0);
            if (memcmp(got, w, cf * sizeof(float)) != 0) {
                size_t k = 0;
                while (got[k] == w[k]) k++;
                fail_msg("%s at crop %d, crop %d of %d: float %zu differs from the loader's (%.9g vs %.9g)",
                         dataset_item_name(ds, i), crop, c, crops, k, got[k], w[k]);
            }
        }
    }
    free(bytes);
    image_free(&img);
    image_scratch_free(s);
    free(want);
    free(got);
    free(labels);
    loader_free(L);
    dataset_free(ds);
}

static void test_one_crop_matches_loader(void **state)
{
    (void)state;
    char *root = tu_tmpdir("evalcrops");
    tu_mkdir("%s/a", root);
    tu_mkdir("%s/b", root);
    char path[4096];
    snprintf(path, sizeof path, "%s/a/land.jpg", root);
    tu_write_texture_jpeg(path, 500, 375, 1);
    snprintf(path, sizeof path, "%s/a/portrait.jpg", root);
    tu_write_texture_jpeg(path, 300, 533, 2);
    snprintf(path, sizeof path, "%s/b/big.jpg", root); /* DCT scaling at crop 64 */
    tu_write_texture_jpeg(path, 1600, 1200, 3);
    uint8_t *rgb = tu_texture_rgb(40, 30, 4);
    TuBuf png = tu_png(rgb, 40 * 3, 40, 30, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0);
    snprintf(path, sizeof path, "%s/b/small.png", root);
    tu_write_file(path, png.p, png.len);
    free(png.p);
    free(rgb);
    parity_at(root, 64, IMAGE_FILTER_BILINEAR, 1);
    parity_at(root, 224, IMAGE_FILTER_BILINEAR, 1);
    parity_at(root, 96, IMAGE_FILTER_BICUBIC, 1);
    parity_at(root, 64, IMAGE_FILTER_BILINEAR, 10);
    parity_at(root, 64, IMAGE_FILTER_BICUBIC, 144);
    tu_rmtree(root);
}

/* Mirrored crops are the left-right flips of their unmirrored twins. */
static void test_mirror_is_flip(void **state)
{
    (void)state;
    int w = 120, h = 90, crop = 64;
    uint8_t *rgb = tu_texture_rgb(w, h, 9);
    Image img = {0};
    img.px = rgb;
    img.w = img.full_w = img.sw = w;
    img.h = img.full_h = img.sh = h;
    img.scale = 1;
    CropPlan p = plan_of(10, w, h, crop);
    const float mean[3] = IMAGE_MEAN_RGB, std[3] = IMAGE_STD_RGB;
    size_t cf = (size_t)3 * crop * crop;
    float *a = malloc(cf * sizeof(float)), *b = malloc(cf * sizeof(float));
    ImageScratch *s = image_scratch_new();
    char err[256];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(crops_cut(&p, i, &img, crop, IMAGE_FILTER_BILINEAR, mean, std, a, s, err, sizeof err), 0);
        assert_int_equal(crops_cut(&p, i + 5, &img, crop, IMAGE_FILTER_BILINEAR, mean, std, b, s, err, sizeof err), 0);
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < crop; y++)
                for (int x = 0; x < crop; x++)
                    assert_true(a[(size_t)c * crop * crop + (size_t)y * crop + x] ==
                                b[(size_t)c * crop * crop + (size_t)y * crop + (crop - 1 - x)]);
    }
    image_scratch_free(s);
    free(a);
    free(b);
    free(rgb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_crop_boxes),
        cmocka_unit_test(test_ten_crop_boxes),
        cmocka_unit_test(test_144_crop_boxes),
        cmocka_unit_test(test_plan_rejects),
        cmocka_unit_test(test_one_crop_matches_loader),
        cmocka_unit_test(test_mirror_is_flip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
