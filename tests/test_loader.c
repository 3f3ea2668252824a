/* test_loader.c: the loader on tiny generated datasets: batches bitwise equal
 * whatever the worker count, exact resume with seek, the epoch rollover, the
 * evaluation shards with a short last batch, evaluation ranges, crops and
 * skipped bad files, the transforms against direct
 * computations, every image kind in one tree, small grey images upsampled,
 * and the corrupt-file corpus (replaced deterministically, named, counted). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataloader/dataset.h"
#include "dataloader/image.h"
#include "dataloader/loader.h"
#include "tests/test_loader_util.h"

static Dataset *open_tree(const char *root)
{
    DatasetOptions o = {root, NULL, NULL, NULL};
    char err[512];
    Dataset *ds = dataset_open(&o, err, sizeof err);
    if (!ds) fprintf(stderr, "%s\n", err);
    assert_non_null(ds);
    return ds;
}

static void write_png_rgb(const char *path, const uint8_t *px, int w, int h)
{
    TuBuf b = tu_png(px, (size_t)w * 3, w, h, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0);
    tu_write_file(path, b.p, b.len);
    free(b.p);
}

/* Three classes of assorted images: textured JPEGs of several sizes and
 * orientations, a grey JPEG, a CMYK JPEG, a PNG under a .JPEG name, a palette
 * PNG and a 16-bit PNG. */
static char *make_mixed_tree(void)
{
    char *root = tu_tmpdir("ldr");
    char p[512];
    for (int c = 0; c < 3; c++) tu_mkdir("%s/class%d", root, c);
    for (int k = 0; k < 17; k++) {
        int w = 40 + 13 * (k % 5), h = 30 + 11 * (k % 4);
        if (k % 3 == 0) {
            int t = w;
            w = h;
            h = t;
        }
        snprintf(p, sizeof p, "%s/class%d/img%02d.JPEG", root, k % 3, k);
        tu_write_texture_jpeg(p, w, h, (unsigned)k);
    }
    uint8_t *px = tu_texture_rgb(48, 40, 77);
    uint8_t *grey = malloc(48 * 40), *cmyk = malloc(48 * 40 * 4);
    for (int i = 0; i < 48 * 40; i++) {
        grey[i] = px[3 * i];
        for (int c = 0; c < 4; c++) cmyk[4 * i + c] = px[3 * i + (c % 3)];
    }
    TuBuf b = tu_jpeg(grey, 48, 40, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 90, 0);
    snprintf(p, sizeof p, "%s/class0/grey.JPEG", root);
    tu_write_file(p, b.p, b.len);
    free(b.p);
    b = tu_jpeg(cmyk, 48, 40, 4, JCS_CMYK, JCS_YCCK, 90, 0);
    snprintf(p, sizeof p, "%s/class1/cmyk.JPEG", root);
    tu_write_file(p, b.p, b.len);
    free(b.p);
    snprintf(p, sizeof p, "%s/class2/png_in_disguise.JPEG", root);
    write_png_rgb(p, px, 48, 40);
    png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {20, 40, 200}};
    uint8_t idx[40][48];
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 48; x++) idx[y][x] = (uint8_t)((x / 6 + y / 5) % 4);
    b = tu_png(&idx[0][0], 48, 48, 40, PNG_COLOR_TYPE_PALETTE, 8, 0, pal, 4, NULL, 0);
    snprintf(p, sizeof p, "%s/class0/palette.png", root);
    tu_write_file(p, b.p, b.len);
    free(b.p);
    uint8_t rows16[40][48 * 6];
    for (int y = 0; y < 40; y++)
        for (int x = 0; x < 48 * 3; x++) rows16[y][2 * x] = px[y * 48 * 3 + x], rows16[y][2 * x + 1] = 0x33;
    b = tu_png(&rows16[0][0], 48 * 6, 48, 40, PNG_COLOR_TYPE_RGB, 16, 1, NULL, 0, NULL, 0);
    snprintf(p, sizeof p, "%s/class1/deep16.png", root);
    tu_write_file(p, b.p, b.len);
    free(b.p);
    free(px);
    free(grey);
    free(cmyk);
    return root; /* 22 items */
}

typedef struct {
    float *images;
    int *labels;
    LoaderBatchInfo *info;
    int nbatches;
} Run;

static Run run_loader(LoaderConfig cfg, int nbatches, long seek_epoch, long seek_step)
{
    char err[512];
    Loader *L = loader_init(&cfg, err, sizeof err);
    if (!L) fprintf(stderr, "loader_init: %s\n", err);
    assert_non_null(L);
    if (seek_epoch >= 0) assert_int_equal(loader_seek(L, seek_epoch, seek_step, err, sizeof err), 0);
    size_t per = (size_t)cfg.batch * 3 * cfg.crop * cfg.crop;
    Run r = {malloc(per * nbatches * sizeof(float)), malloc(sizeof(int) * cfg.batch * nbatches),
             calloc(nbatches, sizeof(LoaderBatchInfo)), nbatches};
    for (int s = 0; s < nbatches; s++) {
        int got = loader_next(L, r.images + per * s, r.labels + cfg.batch * s, &r.info[s], err, sizeof err);
        if (got < 0) fprintf(stderr, "loader_next: %s\n", err);
        assert_true(got >= 0);
        assert_true(r.info[s].wait_s >= 0);
        r.info[s].warning = NULL; /* only valid until the next call */
    }
    loader_free(L);
    return r;
}

static void run_free(Run *r)
{
    free(r->images);
    free(r->labels);
    free(r->info);
}

static void test_workers_bitwise_equal(void **state)
{
    (void)state;
    char *root = make_mixed_tree();
    Dataset *ds = open_tree(root);
    assert_int_equal(dataset_size(ds), 22);
    LoaderConfig c = loader_default_config();
    c.ds = ds;
    c.crop = 24;
    c.batch = 4;
    c.seed = 5;
    c.filter = IMAGE_FILTER_RANDOM;
    c.workers = 0;
    long steps = 6; /* ceil(22 / 4), padded */
    int nb = (int)(2 * steps + 1);
    Run ref = run_loader(c, nb, -1, 0);
    size_t per = (size_t)c.batch * 3 * c.crop * c.crop;
    /* the epoch rolls over: step 0 of epoch 1 follows step 5 of epoch 0 */
    assert_int_equal(ref.info[5].epoch, 0);
    assert_int_equal(ref.info[5].step, 5);
    assert_int_equal(ref.info[6].epoch, 1);
    assert_int_equal(ref.info[6].step, 0);
    for (int s = 0; s < nb; s++) {
        assert_int_equal(ref.info[s].real, 4);
        assert_int_equal(ref.info[s].bad, 0); /* grey, CMYK, PNG named .JPEG, palette, 16-bit: all decode */
    }
    /* a new permutation and new augmentation every epoch */
    assert_memory_not_equal(ref.images, ref.images + per * steps, per * sizeof(float));
    const int workers[3] = {1, 2, 5}, prefetch[3] = {0, 2, 7};
    for (int k = 0; k < 3; k++) {
        c.workers = workers[k];
        c.prefetch = prefetch[k];
        Run r = run_loader(c, nb, -1, 0);
        assert_memory_equal(r.images, ref.images, per * nb * sizeof(float));
        assert_memory_equal(r.labels, ref.labels, sizeof(int) * c.batch * nb);
        run_free(&r);
    }
    /* exact resume: seek to epoch 1, step 2 */
    c.workers = 2;
    Run r = run_loader(c, 3, 1, 2);
    assert_int_equal(r.info[0].epoch, 1);
    assert_int_equal(r.info[0].step, 2);
    assert_memory_equal(r.images, ref.images + per * (steps + 2), per * 3 * sizeof(float));
    run_free(&r);
    /* a different seed is a different stream */
    c.seed = 6;
    r = run_loader(c, 1, -1, 0);
    assert_memory_not_equal(r.images, ref.images, per * sizeof(float));
    run_free(&r);
    run_free(&ref);
    dataset_free(ds);
    tu_rmtree(root);
}

static void test_seek_while_running(void **state)
{
    (void)state;
    char *root = make_mixed_tree();
    Dataset *ds = open_tree(root);
    LoaderConfig c = loader_default_config();
    c.ds = ds, c.crop = 16, c.batch = 3, c.workers = 0;
    Run ref = run_loader(c, 8, -1, 0);
    size_t per = (size_t)c.batch * 3 * c.crop * c.crop;
    c.workers = 3;
    char err[256];
    Loader *L = loader_init(&c, err, sizeof err);
    float *img = malloc(per * sizeof(float));
    int lab[3];
    LoaderBatchInfo info;
    for (int k = 0; k < 3; k++) assert_true(loader_next(L, img, lab, &info, err, sizeof err) >= 0);
    /* workers are ahead; seeking back discards their work */
    assert_int_equal(loader_seek(L, 0, 1, err, sizeof err), 0);
    assert_true(loader_next(L, img, lab, &info, err, sizeof err) >= 0);
    assert_memory_equal(img, ref.images + per, per * sizeof(float));
    /* a step past the end of an epoch is the next epoch */
    long steps = loader_steps_per_epoch(L);
    assert_int_equal(loader_seek(L, 0, steps + 1, err, sizeof err), 0);
    assert_true(loader_next(L, img, lab, &info, err, sizeof err) >= 0);
    assert_int_equal(info.epoch, 1);
    assert_int_equal(info.step, 1);
    assert_int_equal(loader_seek(L, -1, 0, err, sizeof err), -1);
    loader_free(L); /* with workers mid-batch */
    free(img);
    run_free(&ref);
    dataset_free(ds);
    tu_rmtree(root);
}

/* Eval shards: rank r of W takes a contiguous range, in order, unpadded. */
static void test_eval_contiguous(void **state)
{
    (void)state;
    char *root = make_mixed_tree();
    Dataset *ds = open_tree(root);
    int n = (int)dataset_size(ds), W = 2, B = 5;
    LoaderConfig c = loader_default_config();
    c.ds = ds, c.crop = 16, c.batch = B, c.train = 0, c.world = W, c.workers = 2;
    int next = 0;
    for (int r = 0; r < W; r++) {
        c.rank = r;
        char err[256];
        Loader *L = loader_init(&c, err, sizeof err);
        assert_non_null(L);
        long steps = loader_steps_per_epoch(L);
        assert_int_equal(steps, 3); /* ceil(ceil(22/2)/5) */
        float *img = malloc(sizeof(float) * B * 3 * 16 * 16);
        int lab[5], total = 0;
        for (long s = 0; s < steps; s++) {
            LoaderBatchInfo info;
            int real = loader_next(L, img, lab, &info, err, sizeof err);
            assert_int_equal(real, info.real);
            for (int b = 0; b < B; b++) {
                if (b < real) {
                    assert_int_equal(lab[b], dataset_label(ds, (size_t)next++));
                } else {
                    assert_int_equal(lab[b], -1);
                    for (int i = 0; i < 3 * 16 * 16; i++) assert_true(img[b * 3 * 16 * 16 + i] == 0.0f);
                }
            }
            total += real;
        }
        assert_int_equal(total, r == 0 ? n / 2 : n - n / 2);
        free(img);
        loader_free(L);
    }
    assert_int_equal(next, n);
    dataset_free(ds);
    tu_rmtree(root);
}

/* Evaluation items as a range with a stride, several crops an image, and bad
 * files skipped and reported with their item (eval_skip_bad) instead of
 * replaced. */
static void test_eval_range_crops_skip(void **state)
{
    (void)state;
    char *root = tu_tmpdir("ldrev");
    char p[512];
    tu_mkdir("%s/a", root);
    tu_mkdir("%s/b", root);
    for (int k = 0; k < 6; k++) {
        snprintf(p, sizeof p, "%s/%s/img%d.jpg", root, k < 4 ? "a" : "b", k);
        tu_write_texture_jpeg(p, 40 + 7 * k, 30 + 5 * k, k + 1);
    }
    snprintf(p, sizeof p, "%s/b/zbad.jpg", root);
    tu_write_file(p, "not an image", 12);
    Dataset *ds = open_tree(root); /* a/img0..3, b/img4, b/img5, b/zbad.jpg */
    assert_int_equal(dataset_size(ds), 7);
    const int crop = 16, K = 10, B = 2;
    size_t image_floats = (size_t)K * 3 * crop * crop;
    float *img = malloc(sizeof(float) * B * image_floats);
    int lab[2];
    char err[256];
    LoaderBatchInfo info;
    LoaderConfig c = loader_default_config();
    c.ds = ds, c.crop = crop, c.batch = B, c.train = 0, c.workers = 2, c.eval_crops = K;
    /* positions 0, 1, 2 are items 1, 3, 5 */
    c.eval_first = 1, c.eval_count = 3, c.eval_stride = 2;
    Loader *L = loader_init(&c, err, sizeof err);
    if (!L) fail_msg("loader_init: %s", err);
    assert_int_equal(loader_steps_per_epoch(L), 2);
    assert_int_equal(loader_next(L, img, lab, &info, err, sizeof err), 2);
    assert_int_equal(info.items[0], 1);
    assert_int_equal(info.items[1], 3);
    assert_int_equal(lab[1], dataset_label(ds, 3));
    assert_null(info.skipped);
    /* every crop of an image is written; the ten differ (corners, centre, mirrors) */
    for (int k = 1; k < K; k++)
        assert_memory_not_equal(img, img + (size_t)k * 3 * crop * crop, sizeof(float) * 3 * crop * crop);
    assert_int_equal(loader_next(L, img, lab, &info, err, sizeof err), 1);
    assert_int_equal(info.items[0], 5);
    assert_int_equal(info.items[1], SIZE_MAX);
    assert_int_equal(lab[0], 1);
    loader_free(L);

    /* the bad file (item 6) skipped and reported, not replaced */
    c.eval_first = 0, c.eval_count = 0, c.eval_stride = 0, c.eval_crops = 1, c.batch = 7, c.eval_skip_bad = 1;
    L = loader_init(&c, err, sizeof err);
    if (!L) fail_msg("loader_init: %s", err);
    float *all = malloc(sizeof(float) * 7 * 3 * crop * crop);
    int labs[7];
    assert_int_equal(loader_next(L, all, labs, &info, err, sizeof err), 7);
    assert_non_null(info.skipped);
    for (int b = 0; b < 6; b++) assert_null(info.skipped[b]);
    assert_non_null(info.skipped[6]);
    assert_int_equal(info.items[6], 6);
    assert_int_equal(labs[6], -1);
    assert_int_equal(info.bad, 1);
    assert_null(info.warning);
    for (int i = 0; i < 3 * crop * crop; i++) assert_true(all[(size_t)6 * 3 * crop * crop + i] == 0.0f);
    loader_free(L);
    /* without eval_skip_bad the loader replaces it, as in training */
    c.eval_skip_bad = 0;
    L = loader_init(&c, err, sizeof err);
    assert_int_equal(loader_next(L, all, labs, &info, err, sizeof err), 7);
    assert_null(info.skipped);
    assert_true(labs[6] >= 0);
    assert_int_equal(info.bad, 1);
    assert_non_null(info.warning);
    loader_free(L);

    /* refused: an unknown scheme, a range past the end, crops in training */
    c.eval_crops = 5;
    assert_null(loader_init(&c, err, sizeof err));
    assert_non_null(strstr(err, "1, 10 or 144"));
    c.eval_crops = 10, c.eval_first = 2, c.eval_count = 3, c.eval_stride = 3;
    assert_null(loader_init(&c, err, sizeof err));
    assert_non_null(strstr(err, "go past"));
    c.eval_first = 0, c.eval_count = 0, c.train = 1;
    assert_null(loader_init(&c, err, sizeof err));
    assert_non_null(strstr(err, "training takes one"));
    free(all);
    free(img);
    dataset_free(ds);
    tu_rmtree(root);
}

/* The transforms against direct computations on exact (PNG) pixels. */
static void test_transforms_exact(void **state)
{
    (void)state;
    char *root = tu_tmpdir("ldrx");
    tu_mkdir("%s/a", root);
    char p[512];
    int S = 40;
    uint8_t *px = tu_texture_rgb(S, S, 3);
    snprintf(p, sizeof p, "%s/a/square.png", root);
    write_png_rgb(p, px, S, S);
    uint8_t *big = tu_texture_rgb(64, 80, 4);
    snprintf(p, sizeof p, "%s/a/tall.png", root);
    write_png_rgb(p, big, 64, 80);
    Dataset *ds = open_tree(root);
    const float mean[3] = IMAGE_MEAN_RGB, std[3] = IMAGE_STD_RGB;
    Image img = {0};
    img.px = px, img.w = S, img.h = S;
    float *want = malloc(sizeof(float) * 3 * S * S), *wantm = malloc(sizeof(float) * 3 * S * S);
    image_to_tensor(&img, 0, 0, S, S, 0, mean, std, want);
    image_to_tensor(&img, 0, 0, S, S, 1, mean, std, wantm);

    /* training crop of the whole image (area and aspect pinned to 1) at its own
     * size: the identity, or its mirror */
    LoaderConfig c = loader_default_config();
    c.ds = ds, c.crop = S, c.batch = 2, c.workers = 1, c.photometric = 0;
    c.min_area = c.max_area = 1.0f;
    c.min_aspect = c.max_aspect = 1.0f;
    Run r = run_loader(c, 8, -1, 0);
    int plain = 0, mirrored = 0;
    for (int k = 0; k < 16; k++) {
        if (r.labels[k] != 0) continue;
        const float *o = r.images + (size_t)k * 3 * S * S;
        if (dataset_item_name(ds, 0)[2] == 's') {
            /* item order: a/square.png, a/tall.png */
        }
        int is_plain = memcmp(o, want, sizeof(float) * 3 * S * S) == 0;
        int is_mirror = memcmp(o, wantm, sizeof(float) * 3 * S * S) == 0;
        plain += is_plain;
        mirrored += is_mirror;
    }
    assert_true(plain > 0 && mirrored > 0); /* both occur; others are the tall image */
    assert_int_equal(plain + mirrored, 8);  /* the square appears once per batch of 2 */
    run_free(&r);

    /* evaluation of the 64x80 image at crop 56 (resize 64 = 56*256/224): the
     * shorter side is already 64, so the crop is the centre 56x56, exactly */
    c.train = 0, c.crop = 56, c.batch = 2;
    r = run_loader(c, 1, -1, 0);
    img.px = big, img.w = 64, img.h = 80;
    float *centre = malloc(sizeof(float) * 3 * 56 * 56);
    image_to_tensor(&img, 4, 12, 56, 56, 0, mean, std, centre);
    assert_memory_equal(r.images + 3 * 56 * 56, centre, sizeof(float) * 3 * 56 * 56);
    run_free(&r);
    free(centre);
    free(want);
    free(wantm);
    free(px);
    free(big);
    dataset_free(ds);
    tu_rmtree(root);
}

/* Fashion-MNIST-like: 28x28 grey PNGs trained at crop 64 (upsampled). */
static void test_small_grey_upsampled(void **state)
{
    (void)state;
    char *root = tu_tmpdir("fm");
    char p[512];
    for (int c = 0; c < 2; c++) {
        tu_mkdir("%s/%d", root, c);
        for (int k = 0; k < 3; k++) {
            uint8_t g[28][28];
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++) g[y][x] = (uint8_t)((x - 14) * (x - 14) + (y - 14) * (y - 14) < 60 + 40 * k ? 220 : 10 * c);
            TuBuf b = tu_png(&g[0][0], 28, 28, 28, PNG_COLOR_TYPE_GRAY, 8, 0, NULL, 0, NULL, 0);
            snprintf(p, sizeof p, "%s/%d/%d.png", root, c, k);
            tu_write_file(p, b.p, b.len);
            free(b.p);
        }
    }
    Dataset *ds = open_tree(root);
    LoaderConfig c = loader_default_config();
    c.ds = ds, c.crop = 64, c.batch = 6, c.workers = 2, c.min_area = 0.25f, c.photometric = 0;
    c.filter = IMAGE_FILTER_BICUBIC;
    const float mean[3] = IMAGE_MEAN_RGB, std[3] = IMAGE_STD_RGB;
    Run r = run_loader(c, 2, -1, 0);
    size_t plane = 64 * 64;
    for (int b = 0; b < 12; b++) {
        const float *o = r.images + (size_t)b * 3 * plane;
        float lo = 1e9f, hi = -1e9f;
        for (size_t i = 0; i < plane; i++) {
            /* grey in, grey out: the three channels carry the same pixel */
            float v0 = o[i] * std[0] + mean[0], v1 = o[plane + i] * std[1] + mean[1], v2 = o[2 * plane + i] * std[2] + mean[2];
            assert_true(fabsf(v0 - v1) < 1e-4f && fabsf(v0 - v2) < 1e-4f);
            assert_true(v0 > -0.01f && v0 < 1.01f); /* bicubic overshoot is clamped to 0..255 */
            lo = fminf(lo, v0), hi = fmaxf(hi, v0);
        }
        assert_true(hi - lo > 0.3f); /* the disc is in the crop: not a flat image */
    }
    /* with photometric distortions the values stay finite */
    c.photometric = 1;
    run_free(&r);
    r = run_loader(c, 1, -1, 0);
    for (size_t i = 0; i < 6 * 3 * plane; i++) assert_true(isfinite(r.images[i]));
    run_free(&r);
    dataset_free(ds);
    tu_rmtree(root);
}

/* The corrupt-file corpus: every kind of bad file in a "bad" class; each is
 * replaced by a good file, so every label in the batch is the good class. */
static void test_corrupt_corpus(void **state)
{
    (void)state;
    char *root = tu_tmpdir("bad");
    char p[512];
    tu_mkdir("%s/a_good", root);
    tu_mkdir("%s/b_bad", root);
    for (int k = 0; k < 10; k++) {
        snprintf(p, sizeof p, "%s/a_good/g%d.JPEG", root, k);
        tu_write_texture_jpeg(p, 50 + k, 40, (unsigned)k);
    }
    uint8_t *px = tu_texture_rgb(60, 50, 1);
    TuBuf j = tu_jpeg(px, 60, 50, 3, JCS_RGB, JCS_YCbCr, 90, 0);
    snprintf(p, sizeof p, "%s/b_bad/truncated.JPEG", root);
    tu_write_file(p, j.p, j.len / 2);
    snprintf(p, sizeof p, "%s/b_bad/zero.JPEG", root);
    tu_write_file(p, "", 0);
    snprintf(p, sizeof p, "%s/b_bad/notes.txt", root);
    tu_write_text(p, "not an image at all\n");
    for (size_t i = 2; i + 9 < j.len; i++)
        if (j.p[i] == 0xff && j.p[i + 1] == 0xc0) {
            j.p[i + 5] = 0x4e, j.p[i + 6] = 0x20, j.p[i + 7] = 0x4e, j.p[i + 8] = 0x20; /* 20000 x 20000 */
            break;
        }
    snprintf(p, sizeof p, "%s/b_bad/bomb.JPEG", root);
    tu_write_file(p, j.p, j.len);
    TuBuf png = tu_png(px, 180, 60, 50, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0);
    png.p[png.len / 2] ^= 0xff; /* breaks the image data's CRC */
    snprintf(p, sizeof p, "%s/b_bad/badcrc.png", root);
    tu_write_file(p, png.p, png.len);
    snprintf(p, sizeof p, "%s/b_bad/vanished.JPEG", root);
    tu_write_text(p, "x");
    Dataset *ds = open_tree(root);
    unlink(p); /* indexed, then gone: unreadable */
    int n = (int)dataset_size(ds);
    assert_int_equal(n, 16);

    LoaderConfig c = loader_default_config();
    c.ds = ds, c.crop = 16, c.batch = n, c.workers = 0, c.warn_names = 3;
    char err[512];
    Run ref = run_loader(c, 2, -1, 0);
    for (int b = 0; b < 2 * n; b++) assert_int_equal(ref.labels[b], 0); /* all replaced by good files */
    assert_int_equal(ref.info[0].bad, 6); /* each bad file once, whatever its replacements met */
    assert_int_equal(ref.info[1].bad, 6); /* and again in the next epoch */
    /* batches of 6 (pass 2): 3 steps, the last padded by wrapping to the head
     * of the epoch's order; per epoch each bad file is still counted once */
    for (int pass = 0; pass < 4; pass++) {
        LoaderConfig c6 = c;
        c6.batch = 6;
        c6.seed = 100 + (uint64_t)pass; /* other orders: the wrapped items differ */
        Run r6 = run_loader(c6, 6, -1, 0);
        assert_int_equal(r6.info[0].bad + r6.info[1].bad + r6.info[2].bad, 6);
        assert_int_equal(r6.info[3].bad + r6.info[4].bad + r6.info[5].bad, 6);
        run_free(&r6);
    }
    c.workers = 3;
    Loader *L = loader_init(&c, err, sizeof err);
    float *img = malloc(sizeof(float) * n * 3 * 16 * 16);
    int *lab = malloc(sizeof(int) * n);
    LoaderBatchInfo info;
    assert_int_equal(loader_next(L, img, lab, &info, err, sizeof err), n); /* the batch stays full */
    assert_memory_equal(img, ref.images, sizeof(float) * n * 3 * 16 * 16); /* replaced deterministically */
    assert_int_equal(info.bad, ref.info[0].bad);
    assert_non_null(info.warning);
    fprintf(stderr, "warning: %s\n", info.warning);
    assert_non_null(strstr(info.warning, "b_bad/"));
    assert_non_null(strstr(info.warning, "further bad files are only counted"));
    assert_null(strchr(info.warning, '\n'));
    LoaderEpochStats st;
    loader_epoch_stats(L, &st);
    assert_int_equal(st.epoch, 0);
    assert_int_equal(st.samples, n);
    assert_int_equal(st.bad, info.bad);
    assert_int_equal(loader_next(L, img, lab, &info, err, sizeof err), n);
    assert_null(info.warning); /* the budget of 3 names is spent */
    loader_epoch_stats(L, &st);
    assert_int_equal(st.epoch, 1); /* a new epoch, counted afresh */
    assert_int_equal(st.bad, info.bad);
    assert_int_equal(loader_total_bad(L), ref.info[0].bad + info.bad);
    loader_free(L);

    /* a pixel limit below every image: nothing decodes, a clear error, no hang */
    c.max_pixels = 100;
    c.batch = 4;
    L = loader_init(&c, err, sizeof err);
    assert_int_equal(loader_next(L, img, lab, &info, err, sizeof err), -1);
    assert_non_null(strstr(err, "could not be decoded"));
    loader_free(L);
    free(img);
    free(lab);
    free(j.p);
    free(png.p);
    free(px);
    run_free(&ref);
    dataset_free(ds);
    tu_rmtree(root);
}

static void test_config_errors(void **state)
{
    (void)state;
    char *root = make_mixed_tree();
    Dataset *ds = open_tree(root);
    char err[512];
    LoaderConfig c = loader_default_config();
    c.ds = ds, c.batch = 8, c.world = 3, c.drop_last = 1;
    assert_null(loader_init(&c, err, sizeof err)); /* 22 < 3 x 8 */
    assert_non_null(strstr(err, "fewer than one global batch"));
    c.drop_last = 0;
    c.crop = 0;
    assert_null(loader_init(&c, err, sizeof err));
    c.crop = 32;
    c.min_area = 0;
    assert_null(loader_init(&c, err, sizeof err));
    c.min_area = 0.08f;
    c.eval_filter = IMAGE_FILTER_RANDOM;
    assert_null(loader_init(&c, err, sizeof err));
    c.eval_filter = IMAGE_FILTER_BILINEAR;
    c.std[1] = 0;
    assert_null(loader_init(&c, err, sizeof err));
    c.std[1] = 0.2f;
    c.ds = NULL;
    assert_null(loader_init(&c, err, sizeof err));
    dataset_free(ds);
    tu_rmtree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_bitwise_equal),
        cmocka_unit_test(test_seek_while_running),
        cmocka_unit_test(test_eval_contiguous),
        cmocka_unit_test(test_eval_range_crops_skip),
        cmocka_unit_test(test_transforms_exact),
        cmocka_unit_test(test_small_grey_upsampled),
        cmocka_unit_test(test_corrupt_corpus),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
