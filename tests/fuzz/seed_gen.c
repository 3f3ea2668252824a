/* seed_gen.c: writes the seed corpora of the fuzz targets into a directory,
 * one subdirectory per target (tests/fuzz/make_seeds.sh runs it and copies
 * the result to tests/fuzz/corpus/). The files are the kinds the tests
 * generate, made with the same encoders and writers: the JPEG and PNG
 * variants of test_image.c and test_loader.c (small, so the fuzzers run
 * fast), checkpoints from ckpt_save, .npy files of every version the reader
 * takes, shards from shard_pack, the label and classes files of
 * test_dataset.c, and an index cache of the index-cache target's fixed tree.
 *
 *   seed_gen OUTDIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataloader/dataset.h"
#include "dataloader/shard.h"
#include "tests/fuzz/fuzz_index_tree.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/test_loader_util.h"
#include "trainer/ckpt/ckpt.h"

static const char *out_root;

static void put(const char *target, const char *name, const void *data, size_t len)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", out_root, target);
    fuzz_mkdirs(p);
    snprintf(p, sizeof p, "%s/%s/%s", out_root, target, name);
    fuzz_write(p, data, len);
}

static void put_buf(const char *target, const char *name, TuBuf b)
{
    put(target, name, b.p, b.len);
    free(b.p);
}

static void put_text(const char *target, const char *name, const char *text) { put(target, name, text, strlen(text)); }

static void jpeg_seeds(void)
{
    uint8_t *tex = tu_texture_rgb(40, 30, 1), *blocks = tu_blocks_rgb(24, 16, 0);
    put_buf("jpeg", "rgb-420-q90.jpg", tu_jpeg(tex, 40, 30, 3, JCS_RGB, JCS_YCbCr, 90, 0));
    put_buf("jpeg", "rgb-444-q100.jpg", tu_jpeg(blocks, 24, 16, 3, JCS_RGB, JCS_YCbCr, 100, 1));
    uint8_t grey[30 * 40], cmyk[30 * 40 * 4];
    for (int i = 0; i < 30 * 40; i++) {
        grey[i] = tex[i * 3];
        for (int c = 0; c < 4; c++) cmyk[i * 4 + c] = (uint8_t)(tex[i * 3 + c % 3] ^ (c * 60));
    }
    put_buf("jpeg", "grey.jpg", tu_jpeg(grey, 40, 30, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 90, 0));
    put_buf("jpeg", "cmyk.jpg", tu_jpeg(cmyk, 40, 30, 4, JCS_CMYK, JCS_CMYK, 90, 1));
    put_buf("jpeg", "ycck.jpg", tu_jpeg(cmyk, 40, 30, 4, JCS_CMYK, JCS_YCCK, 90, 0));
    TuJpegExtra prog = {1, 0, 0}, arith = {0, 1, 0}, restart = {0, 0, 1};
    put_buf("jpeg", "progressive.jpg", tu_jpeg_extra(tex, 40, 30, 3, JCS_RGB, JCS_YCbCr, 90, 0, &prog));
    put_buf("jpeg", "arithmetic.jpg", tu_jpeg_extra(tex, 40, 30, 3, JCS_RGB, JCS_YCbCr, 90, 0, &arith));
    put_buf("jpeg", "restart-markers.jpg", tu_jpeg_extra(tex, 40, 30, 3, JCS_RGB, JCS_YCbCr, 90, 0, &restart));
    /* large enough for DCT scaling (1/2 .. 1/8) at the targets' crops, and a portrait one */
    uint8_t *big = tu_texture_rgb(320, 200, 2);
    put_buf("jpeg", "scaled-320x200-q30.jpg", tu_jpeg(big, 320, 200, 3, JCS_RGB, JCS_YCbCr, 30, 0));
    put_buf("jpeg", "portrait-200x320-q30.jpg", tu_jpeg(big, 200, 320, 3, JCS_RGB, JCS_YCbCr, 30, 0));
    TuBuf t = tu_jpeg(tex, 40, 30, 3, JCS_RGB, JCS_YCbCr, 90, 0);
    put("jpeg", "truncated.jpg", t.p, t.len / 2);
    free(t.p);
    free(big);
    free(tex);
    free(blocks);
}

static void png_seeds(void)
{
    enum { W = 12, H = 9 };
    uint8_t *rgb = tu_texture_rgb(W, H, 3);
    uint8_t rows[H][W * 8];
    put_buf("png", "rgb8.png", tu_png(rgb, W * 3, W, H, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0));
    put_buf("png", "rgb8-interlaced.png", tu_png(rgb, W * 3, W, H, PNG_COLOR_TYPE_RGB, 8, 1, NULL, 0, NULL, 0));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 4; c++) rows[y][x * 4 + c] = c < 3 ? rgb[(y * W + x) * 3 + c] : (uint8_t)(x * 20);
    put_buf("png", "rgba8.png", tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_RGBA, 8, 0, NULL, 0, NULL, 0));
    for (int y = 0; y < H; y++)
        for (int i = 0; i < W * 8; i++) rows[y][i] = (uint8_t)(rgb[(y * W + (i / 8) % W) * 3 + (i / 2) % 3] + i);
    put_buf("png", "rgb16.png", tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_RGB, 16, 0, NULL, 0, NULL, 0));
    put_buf("png", "rgba16.png", tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_RGBA, 16, 0, NULL, 0, NULL, 0));
    put_buf("png", "grey8.png", tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_GRAY, 8, 0, NULL, 0, NULL, 0));
    put_buf("png", "grey-alpha8.png",
            tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, NULL, 0, NULL, 0));
    put_buf("png", "grey16.png", tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_GRAY, 16, 0, NULL, 0, NULL, 0));
    for (int d = 1; d <= 4; d *= 2) {
        char name[32];
        snprintf(name, sizeof name, "grey%d.png", d);
        put_buf("png", name, tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_GRAY, d, 0, NULL, 0, NULL, 0));
    }
    png_color pal[16];
    uint8_t trns[16];
    for (int i = 0; i < 16; i++) pal[i] = (png_color){(uint8_t)(i * 16), (uint8_t)(255 - i * 16), (uint8_t)(i * 7)}, trns[i] = (uint8_t)(i * 17);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) rows[y][x] = (uint8_t)((x + y) % 16);
    put_buf("png", "palette8-trns.png",
            tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_PALETTE, 8, 0, pal, 16, trns, 16));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W / 2; x++) rows[y][x] = (uint8_t)(((x + y) % 16) << 4 | ((x * 3 + y) % 16));
    put_buf("png", "palette4-interlaced.png",
            tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_PALETTE, 4, 1, pal, 16, NULL, 0));
    uint8_t *big = tu_texture_rgb(90, 60, 4);
    put_buf("png", "rgb8-90x60.png", tu_png(big, 90 * 3, 90, 60, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0));
    TuBuf t = tu_png(rgb, W * 3, W, H, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0);
    put("png", "truncated.png", t.p, t.len - 20);
    free(t.p);
    free(big);
    free(rgb);
}

static void ckpt_seed(const char *name, size_t np, int with_classes, const char *tmp)
{
    CkptMeta m;
    ckpt_meta_init(&m);
    m.num_params = np;
    m.classes = 3;
    m.crop = 64;
    m.aux = 1;
    m.step = 12;
    m.epoch = 1;
    m.epoch_step = 4;
    m.epoch_samples = 32;
    m.samples_seen = 96;
    m.seed = 7;
    m.world_size = 2;
    m.batch = 4;
    m.lr.base_lr = 0.01, m.last_lr = 0.005, m.momentum = 0.9, m.weight_decay = 2e-4, m.ema_decay = 0.9999;
    m.dataset_size = 64;
    snprintf(m.command, sizeof m.command, "googlenet train --data d --crop 64");
    char err[512];
    if (with_classes) {
        const char *names[3] = {"n01440764", "n01443537", "cat"};
        ckpt_meta_set_class_names(&m, names, 3, err, sizeof err);
        const float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
        ckpt_meta_set_norm(&m, mean, std, err, sizeof err);
    }
    float *w = malloc(np * 4), *v = malloc(np * 4), *a = malloc(np * 4);
    for (size_t i = 0; i < np; i++) w[i] = (float)i * 0.01f - 0.1f, v[i] = i % 3 ? 0.0f : 0.001f * i, a[i] = w[i] * 0.9f;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    if (ckpt_save(path, &m, w, v, a, 3, 0, err, sizeof err) != 0) fuzz_fail(__FILE__, __LINE__, "%s", err);
    FILE *f = fopen(path, "rb");
    uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    put("ckpt", name, buf, n);
    ckpt_meta_free(&m);
    free(w);
    free(v);
    free(a);
}

static void npy_seeds(const char *tmp)
{
    float x[5] = {1.0f, -2.5f, 0.0f, 3.25f, 1e-3f};
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/a.npy", tmp);
    ckpt_npy_write(path, x, 5, err, sizeof err);
    FILE *f = fopen(path, "rb");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    put("npy", "v1-5-floats.npy", buf, n);
    ckpt_npy_write(path, x, 0, err, sizeof err);
    f = fopen(path, "rb");
    n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    put("npy", "v1-empty.npy", buf, n);
    /* versions 2.0 and 3.0: a 4-byte header length; double-quoted keys */
    const char *dict = "{\"descr\": \"<f4\", \"fortran_order\": false, \"shape\": (5,), }";
    for (int v = 2; v <= 3; v++) {
        size_t hl = 64 - 12 + 64;
        uint8_t h[12 + 128];
        memcpy(h, "\x93NUMPY", 6);
        h[6] = (uint8_t)v, h[7] = 0;
        h[8] = (uint8_t)hl, h[9] = h[10] = h[11] = 0;
        memset(h + 12, ' ', hl);
        memcpy(h + 12, dict, strlen(dict));
        h[12 + hl - 1] = '\n';
        memcpy(buf, h, 12 + hl);
        memcpy(buf + 12 + hl, x, sizeof x);
        char name[32];
        snprintf(name, sizeof name, "v%d-5-floats.npy", v);
        put("npy", name, buf, 12 + hl + sizeof x);
    }
}

static void copy_file_to(const char *target, const char *name, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fuzz_fail(__FILE__, __LINE__, "cannot read %s", path);
    uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    put(target, name, buf, n);
}

static void shard_seeds(const char *tmp)
{
    char p[4096], err[512];
    const char *cls[3] = {"n01440764", "n01443537", "cat"};
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "%s/src/%s", tmp, cls[c]);
        fuzz_mkdirs(p);
        for (int k = 0; k < 2; k++) {
            uint8_t *px = tu_texture_rgb(8, 6, (unsigned)(c * 2 + k));
            TuBuf b = c == 1 ? tu_png(px, 24, 8, 6, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0)
                             : tu_jpeg(px, 8, 6, 3, JCS_RGB, JCS_YCbCr, 50, 0);
            snprintf(p, sizeof p, "%s/src/%s/img%d.%s", tmp, cls[c], k, c == 1 ? "png" : "jpg");
            tu_write_file(p, b.p, b.len);
            free(b.p);
            free(px);
        }
    }
    snprintf(p, sizeof p, "%s/src", tmp);
    DatasetOptions o = {0};
    o.path = p;
    Dataset *ds = dataset_open(&o, err, sizeof err);
    if (!ds) fuzz_fail(__FILE__, __LINE__, "%s", err);
    for (int shards = 1; shards <= 2; shards++) {
        char out[4200];
        snprintf(out, sizeof out, "%s/packed%d", tmp, shards);
        ShardPackStats st;
        if (shard_pack(ds, out, shards, &st, NULL, NULL, err, sizeof err) != 0) fuzz_fail(__FILE__, __LINE__, "%s", err);
        for (int k = 0; k < shards; k++) {
            char name[64];
            snprintf(p, sizeof p, "%s/shard-%05d-of-%05d.gshard", out, k, shards);
            snprintf(name, sizeof name, "shard-%d-of-%d.gshard", k, shards);
            copy_file_to("shard", name, p);
        }
    }
    dataset_free(ds);
}

static void text_seeds(void)
{
    /* the label files of fuzz_labels.c's directory, in every format */
    put_text("labels", "ilsvrc-ground-truth.txt", "3\n1\n2\n1\n3\n");
    put_text("labels", "name-label.txt", "ILSVRC2012_val_00000002.JPEG 7\nILSVRC2012_val_00000001.JPEG 0\na.png 2\n");
    put_text("labels", "name-synset.txt",
             "ILSVRC2012_val_00000003.JPEG n01484850\nILSVRC2012_val_00000001.JPEG n01440764\na.png n01443537\n");
    put_text("labels", "loc-val-solution.csv",
             "ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 10 20 30 40\n"
             "ILSVRC2012_val_00000002,n01443537 1 2 3 4 n01440764 5 6 7 8\r\n");
    put_text("labels", "crlf-tabs.txt", "a.png\t1\r\nILSVRC2012_val_00000003.JPEG\t0\r\n");
    /* the classes files of test_dataset.c's kinds, for fuzz_classes.c's tree */
    put_text("classes", "ids.txt", "n01443537\n7\nn01440764\n");
    put_text("classes", "synset-mapping.txt",
             "n01440764 tench, Tinca tinca\r\nn01443537 goldfish, Carassius auratus\r\n7 seven\r\n");
    put_text("classes", "comments-blank-extra.txt", "# ids\n\n7\n  n01440764\nextra\n\tn01443537,x\n");
}

static void index_cache_seed(const char *tmp)
{
    char cache[4096], err[512];
    fuzz_index_tree_make();
    snprintf(cache, sizeof cache, "%s/index.cache", tmp);
    DatasetOptions o = {0};
    o.path = FUZZ_INDEX_TREE;
    o.cache_file = cache;
    Dataset *ds = dataset_open(&o, err, sizeof err);
    if (!ds) fuzz_fail(__FILE__, __LINE__, "%s", err);
    dataset_free(ds);
    ds = dataset_open(&o, err, sizeof err); /* the cache must now be read, not rewritten */
    if (!ds || !dataset_from_cache(ds)) fuzz_fail(__FILE__, __LINE__, "the seed cache is not used");
    dataset_free(ds);
    copy_file_to("index_cache", "tree.cache", cache);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seed_gen OUTDIR\n");
        return 2;
    }
    out_root = argv[1];
    const char *tmp = fuzz_dir();
    jpeg_seeds();
    png_seeds();
    ckpt_seed("classes-norm-37-params.gnck", 37, 1, tmp);
    ckpt_seed("no-classes-1-param.gnck", 1, 0, tmp);
    ckpt_seed("no-classes-300-params.gnck", 300, 0, tmp);
    npy_seeds(tmp);
    shard_seeds(tmp);
    text_seeds();
    index_cache_seed(tmp);
    printf("seed corpora written to %s\n", out_root);
    return 0;
}
