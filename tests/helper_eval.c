/* helper_eval.c: makes what the evaluation shell tests need.
 *
 *   helper_eval gen DIR --classes K --per-class N [--seed S] [--bad B]
 *       a class tree DIR/class_<k>/ of tiny images whose class is its colour:
 *       landscape 40x30 JPEGs and portrait 30x40 PNGs alternately, plus B
 *       unreadable files in class_00 (truncated JPEG, text, empty file).
 *   helper_eval ckpt FILE --classes K --crop C --seed S [--avg-seed A] [--step N] [--aux 0|1]
 *       a checkpoint of a randomly initialised model (Caffe's xavier from
 *       seed S; the Polyak average section from seed A, default S + 1000).
 * Test code: prints errors and exits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/model.h"
#include "tests/test_loader_util.h"
#include "trainer/ckpt/ckpt.h"

static const char *arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static int gen(int argc, char **argv)
{
    const char *dir = argv[2];
    int classes = atoi(arg(argc, argv, "--classes", "3")), per = atoi(arg(argc, argv, "--per-class", "4"));
    int bad = atoi(arg(argc, argv, "--bad", "0"));
    uint64_t seed = strtoull(arg(argc, argv, "--seed", "1"), NULL, 10);
    tu_mkdir("%s", dir);
    char path[4096];
    for (int k = 0; k < classes; k++) {
        tu_mkdir("%s/class_%02d", dir, k);
        int base[3] = {(k * 97) % 256, (k * 181 + 60) % 256, (k * 59 + 120) % 256};
        for (int i = 0; i < per; i++) {
            int land = i % 2 == 0, w = land ? 40 : 30, h = land ? 30 : 40;
            uint8_t *px = malloc((size_t)w * h * 3);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    uint64_t r = mix(seed * 1000003 + (uint64_t)k * 7919 + (uint64_t)i * 104729 + (uint64_t)(y * w + x));
                    for (int c = 0; c < 3; c++) {
                        int v = base[c] + (int)((r >> (8 * c)) & 0x3f) - 32 + (x + y) % 16;
                        px[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                    }
                }
            if (land) {
                snprintf(path, sizeof path, "%s/class_%02d/img_%03d.jpg", dir, k, i);
                TuBuf b = tu_jpeg(px, w, h, 3, JCS_RGB, JCS_YCbCr, 92, 0);
                tu_write_file(path, b.p, b.len);
                free(b.p);
            } else {
                snprintf(path, sizeof path, "%s/class_%02d/img_%03d.png", dir, k, i);
                TuBuf b = tu_png(px, (size_t)w * 3, w, h, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0);
                tu_write_file(path, b.p, b.len);
                free(b.p);
            }
            free(px);
        }
    }
    for (int i = 0; i < bad; i++) {
        snprintf(path, sizeof path, "%s/class_00/zz_bad_%02d.jpg", dir, i);
        if (i % 3 == 0) {
            uint8_t *px = tu_texture_rgb(40, 30, 7);
            TuBuf b = tu_jpeg(px, 40, 30, 3, JCS_RGB, JCS_YCbCr, 92, 0);
            tu_write_file(path, b.p, b.len / 3); /* truncated */
            free(b.p);
            free(px);
        } else if (i % 3 == 1) {
            tu_write_text(path, "not an image\n");
        } else {
            tu_write_file(path, "", 0);
        }
    }
    return 0;
}

static int ckpt(int argc, char **argv)
{
    const char *path = argv[2];
    ModelConfig mc = model_default_config();
    mc.classes = atoi(arg(argc, argv, "--classes", "3"));
    mc.crop = atoi(arg(argc, argv, "--crop", "64"));
    mc.aux = atoi(arg(argc, argv, "--aux", "1"));
    mc.batch = 1;
    mc.training = 0;
    uint64_t seed = strtoull(arg(argc, argv, "--seed", "1"), NULL, 10);
    uint64_t avg_seed = strtoull(arg(argc, argv, "--avg-seed", "0"), NULL, 10);
    if (!avg_seed) avg_seed = seed + 1000;
    char err[512];
    Model *m = model_init(&mc, err, sizeof err);
    if (!m) {
        fprintf(stderr, "helper_eval ckpt: %s\n", err);
        return 1;
    }
    size_t np = model_num_params(m);
    float *w = malloc(np * sizeof(float)), *avg = malloc(np * sizeof(float)), *mom = calloc(np, sizeof(float));
    model_init_weights(m, avg_seed);
    memcpy(avg, model_params(m), np * sizeof(float));
    model_init_weights(m, seed);
    memcpy(w, model_params(m), np * sizeof(float));
    CkptMeta meta;
    ckpt_meta_init(&meta);
    ckpt_meta_set_model(&meta, &mc, np);
    meta.step = atol(arg(argc, argv, "--step", "1"));
    meta.seed = seed;
    meta.world_size = 1;
    meta.batch = 8;
    meta.accum = 1;
    meta.ema_decay = 0.9999;
    meta.momentum = 0.9;
    snprintf(meta.command, sizeof meta.command, "helper_eval ckpt");
    int rc = ckpt_save(path, &meta, w, mom, avg, 1, 0, err, sizeof err);
    if (rc != 0) fprintf(stderr, "helper_eval ckpt: %s\n", err);
    ckpt_meta_free(&meta);
    free(w);
    free(avg);
    free(mom);
    model_free(m);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "gen") == 0) return gen(argc, argv);
    if (argc >= 3 && strcmp(argv[1], "ckpt") == 0) return ckpt(argc, argv);
    fprintf(stderr, "usage: helper_eval gen DIR [--classes K --per-class N --seed S --bad B]\n"
                    "       helper_eval ckpt FILE [--classes K --crop C --seed S --avg-seed A --step N --aux 0|1]\n");
    return 2;
}
