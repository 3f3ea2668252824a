/* fuzz_image.c: an image file through the whole decode + augment path.
 *
 * The input becomes the file a/x of a two-class tree whose other class holds
 * one good 4x4 PNG (a replacement for a bad file is drawn from both). A
 * loader with no worker threads then makes one batch of both items, in
 * training mode (random-sized crop, flip, filter, photometric distortions)
 * or evaluation mode (resize, centre crop), at a small crop; and the
 * evaluation crops (1 or 10) are cut from one decode, as `eval` does. The
 * settings come from the input's hash. Properties: the batch is full or the
 * loader says why not; every value is finite; labels are the items'; a
 * decoded region lies inside its image. */
#include "tests/fuzz/fuzz_image.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataloader/dataset.h"
#include "dataloader/image.h"
#include "dataloader/loader.h"
#include "tests/fuzz/fuzz_util.h"
#include "dataloader/crops.h"

#define FUZZ_BATCH 2
#define FUZZ_CROP_MAX 32
/* Decoding and resampling take time in proportion to the pixels a header
 * declares, up to the limit (64 M by default); in this instrumented build a
 * legitimate 50 M-pixel image takes over the 1 s that marks a hang, while the
 * release build decodes such a 2 KB file in 0.12 s. Pixels are capped here so
 * that 1 s means work out of proportion to the image. */
#define FUZZ_MAX_PIXELS (4LL * 1000 * 1000)

static const uint8_t good_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x02, 0x00, 0x00, 0x00, 0x26, 0x93, 0x09, 0x29, 0x00, 0x00, 0x00,
    0x3c, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0x05, 0xc1, 0x21, 0x02, 0x00, 0x30, 0x04, 0x05, 0xd0, 0x9f, 0x65,
    0xd9, 0x49, 0x96, 0x65, 0x79, 0x27, 0x91, 0xe5, 0x65, 0x27, 0x91, 0x65, 0xd9, 0x89, 0xf6, 0x1e, 0x00, 0x9c,
    0x73, 0xdc, 0xbd, 0xaa, 0x40, 0x44, 0xaa, 0x1a, 0x11, 0xdd, 0x0d, 0x66, 0x36, 0xb3, 0xf7, 0xde, 0xcc, 0x40,
    0x44, 0xee, 0xbd, 0x99, 0xb9, 0xbb, 0x1f, 0xb7, 0x7b, 0x13, 0xb1, 0x22, 0x9a, 0x5e, 0x77, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

static Dataset *fuzz_ds;
static char fuzz_file[4096];
static float images[FUZZ_BATCH * 3 * FUZZ_CROP_MAX * FUZZ_CROP_MAX];
static float crop_out[3 * FUZZ_CROP_MAX * FUZZ_CROP_MAX];

static void image_setup(void)
{
    char p[4096], err[256];
    fuzz_path(p, sizeof p, "tree/a");
    fuzz_mkdirs(p);
    fuzz_path(p, sizeof p, "tree/b");
    fuzz_mkdirs(p);
    fuzz_path(p, sizeof p, "tree/b/good.png");
    fuzz_write(p, good_png, sizeof good_png);
    fuzz_path(fuzz_file, sizeof fuzz_file, "tree/a/x");
    fuzz_write(fuzz_file, good_png, sizeof good_png);
    fuzz_path(p, sizeof p, "tree");
    DatasetOptions o = {0};
    o.path = p;
    fuzz_ds = dataset_open(&o, err, sizeof err);
    if (!fuzz_ds) fuzz_fail(__FILE__, __LINE__, "dataset_open of the fixture: %s", err);
}

static void check_finite(const float *x, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) FUZZ_CHECK(isfinite(x[i]), "%s: value %zu is %g", what, i, x[i]);
}

/* One batch of both items through a loader. */
static void run_loader(uint64_t h, int crop)
{
    LoaderConfig c = loader_default_config();
    c.ds = fuzz_ds;
    c.crop = crop;
    c.batch = FUZZ_BATCH;
    c.workers = 0;
    c.seed = h;
    c.train = (h >> 8) & 1;
    c.filter = (ImageFilter)((h >> 9) % IMAGE_FILTER_COUNT);
    c.eval_filter = (ImageFilter)((h >> 12) % IMAGE_FILTER_RANDOM);
    c.flip = (h >> 15) & 1;
    c.photometric = (h >> 16) & 1;
    c.min_area = (h >> 17) & 1 ? 0.08f : 1.0f;
    c.max_pixels = FUZZ_MAX_PIXELS;
    char err[512];
    Loader *L = loader_init(&c, err, sizeof err);
    FUZZ_CHECK(L, "loader_init: %s", err);
    int labels[FUZZ_BATCH];
    LoaderBatchInfo info;
    int got = loader_next(L, images, labels, &info, err, sizeof err);
    FUZZ_CHECK(got == FUZZ_BATCH || (got == -1 && err[0]), "loader_next returned %d", got);
    if (got == FUZZ_BATCH) {
        check_finite(images, (size_t)FUZZ_BATCH * 3 * crop * crop, "loader batch");
        for (int b = 0; b < FUZZ_BATCH; b++) FUZZ_CHECK(labels[b] == 0 || labels[b] == 1, "label %d", labels[b]);
        FUZZ_CHECK(info.bad >= 0, "bad count %d", info.bad);
    }
    loader_free(L);
}

/* Every box lies inside the fw x fh image, and a decode region (1 crop)
 * covers its box. */
static void check_plan(const CropPlan *p, int fw, int fh)
{
    const double slack = 1e-6 * (fw > fh ? fw : fh) + 1e-6;
    for (int k = 0; k < p->n; k++) {
        const CropBox *b = &p->box[k];
        FUZZ_CHECK(b->w > 0 && b->h > 0 && b->x >= -slack && b->y >= -slack && b->x + b->w <= fw + slack &&
                       b->y + b->h <= fh + slack,
                   "box %d (%g,%g %gx%g) of a %dx%d image", k, b->x, b->y, b->w, b->h, fw, fh);
    }
    const ImageDecodeOptions *d = &p->decode;
    if (d->roi_w != 0 || d->roi_h != 0)
        FUZZ_CHECK(d->roi_x >= 0 && d->roi_y >= 0 && d->roi_w > 0 && d->roi_h > 0 && d->roi_x <= p->box[0].x &&
                       d->roi_y <= p->box[0].y && (double)d->roi_x + d->roi_w >= p->box[0].x + p->box[0].w - slack &&
                       (double)d->roi_y + d->roi_h >= p->box[0].y + p->box[0].h - slack,
                   "decode region %d,%d %dx%d does not cover box 0", d->roi_x, d->roi_y, d->roi_w, d->roi_h);
}

/* The evaluation crops of `eval`: one decode, every box cut from it. */
static void run_eval_crops(const uint8_t *data, size_t len, uint64_t h, int crop)
{
    int fw, fh;
    ImageFormat fmt;
    char err[512];
    if (image_probe(data, len, &fw, &fh, &fmt, err, sizeof err) != 0) return;
    FUZZ_CHECK(fw > 0 && fh > 0, "probe gave %dx%d", fw, fh);
    int crops = (h >> 20) & 1 ? 10 : 1;
    ImageFilter f = (ImageFilter)((h >> 21) % IMAGE_FILTER_RANDOM);
    CropPlan plan;
    if (crops_plan(crops, fw, fh, crop, 256, f, FUZZ_MAX_PIXELS, &plan, err, sizeof err) != 0) return;
    check_plan(&plan, fw, fh);
    ImageScratch *s = image_scratch_new();
    Image img = {0};
    if (image_decode(data, len, &plan.decode, &img, s, err, sizeof err) == 0) {
        FUZZ_CHECK(img.w > 0 && img.h > 0 && img.x0 >= 0 && img.y0 >= 0 && img.x0 + img.w <= img.sw &&
                       img.y0 + img.h <= img.sh,
                   "decoded region %d,%d %dx%d of a %dx%d image", img.x0, img.y0, img.w, img.h, img.sw, img.sh);
        const float mean[3] = IMAGE_MEAN_RGB, std[3] = IMAGE_STD_RGB;
        for (int k = 0; k < plan.n; k++)
            if (crops_cut(&plan, k, &img, crop, f, mean, std, crop_out, s, err, sizeof err) == 0)
                check_finite(crop_out, (size_t)3 * crop * crop, "evaluation crop");
    }
    image_free(&img);
    image_scratch_free(s);
}

void fuzz_image_run(const uint8_t *data, size_t len)
{
    if (!fuzz_ds) image_setup();
    fuzz_write(fuzz_file, data, len);
    uint64_t h = fuzz_hash(data, len);
    int crop = 8 * (1 + (int)(h % 4)); /* 8 .. FUZZ_CROP_MAX */
    run_loader(h, crop);
    run_eval_crops(data, len, h, crop);
}
