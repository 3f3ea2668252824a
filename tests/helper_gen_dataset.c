/* helper_gen_dataset.c: writes a small class-tree dataset of PNG images whose
 * classes are easy to tell apart (each class a pattern: stripes of a class
 * orientation and colour, plus noise), for training and evaluation tests.
 *
 *   helper_gen_dataset --out DIR --classes K --per-class N [--size S] [--seed X]
 * writes DIR/class_<k>/img_<i>.png.
 */
#include <errno.h>
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static int write_png(const char *path, const uint8_t *rgb, int w, int h)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rgb + (size_t)y * w * 3));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f);
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    int classes = 4, per = 16, size = 32;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--classes")) classes = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--per-class")) per = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "helper_gen_dataset: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (!out || classes < 1 || per < 1 || size < 4) {
        fprintf(stderr, "usage: helper_gen_dataset --out DIR --classes K --per-class N [--size S] [--seed X]\n");
        return 2;
    }
    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        perror(out);
        return 1;
    }
    uint8_t *rgb = malloc((size_t)size * size * 3);
    char path[4096];
    for (int k = 0; k < classes; k++) {
        snprintf(path, sizeof path, "%s/class_%02d", out, k);
        if (mkdir(path, 0755) != 0 && errno != EEXIST) {
            perror(path);
            return 1;
        }
        /* class k: stripes at angle k*180/classes, colour from k */
        double ang = 3.14159265358979 * k / classes, cx = __builtin_cos(ang), sy = __builtin_sin(ang);
        int base[3] = {(int)(60 + 150 * ((k * 37) % 7) / 6.0), (int)(60 + 150 * ((k * 53) % 5) / 4.0),
                       (int)(60 + 150 * ((k * 11) % 3) / 2.0)};
        for (int i = 0; i < per; i++) {
            uint64_t r = mix(seed * 1000003 + (uint64_t)k * 7919 + (uint64_t)i);
            double phase = (r & 0xffff) / 65536.0 * 6.28, period = 5 + (r >> 16) % 4;
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++) {
                    double t = (x * cx + y * sy) * 6.2831853 / period + phase;
                    int on = __builtin_sin(t) > 0;
                    uint64_t n = mix(r + (uint64_t)(y * size + x));
                    for (int c = 0; c < 3; c++) {
                        int v = on ? base[c] : 255 - base[c];
                        v += (int)(n >> (c * 8) & 0x3f) - 32;
                        rgb[((size_t)y * size + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                    }
                }
            snprintf(path, sizeof path, "%s/class_%02d/img_%04d.png", out, k, i);
            if (write_png(path, rgb, size, size) != 0) {
                fprintf(stderr, "helper_gen_dataset: cannot write %s\n", path);
                return 1;
            }
        }
    }
    free(rgb);
    return 0;
}
