/* test_loader_util.h: what the data-loader tests share: encoders that write
 * known images (libjpeg, libpng) to memory or files, a temporary directory
 * that removes itself, and small file helpers. Test code only; static
 * functions so every test program gets its own copy. */
#ifndef TESTS_TEST_LOADER_UTIL_H
#define TESTS_TEST_LOADER_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

typedef struct {
    uint8_t *p;
    size_t len;
} TuBuf;

/* Encoder options beyond the baseline: progressive scans, arithmetic coding,
 * restart markers every n MCU rows. */
typedef struct {
    int progressive, arithmetic, restart_rows;
} TuJpegExtra;

/* Encodes px (h, w, comps) given in in_cs as a JPEG whose stored colour space
 * is jpeg_cs. sub444: no chroma subsampling. extra may be NULL. */
static inline TuBuf tu_jpeg_extra(const uint8_t *px, int w, int h, int comps, J_COLOR_SPACE in_cs,
                                  J_COLOR_SPACE jpeg_cs, int quality, int sub444, const TuJpegExtra *extra)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&ci);
    unsigned char *mem = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&ci, &mem, &size);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = in_cs;
    jpeg_set_defaults(&ci);
    jpeg_set_colorspace(&ci, jpeg_cs);
    jpeg_set_quality(&ci, quality, TRUE);
    if (sub444)
        for (int c = 0; c < ci.num_components; c++) ci.comp_info[c].h_samp_factor = ci.comp_info[c].v_samp_factor = 1;
    if (extra && extra->progressive) jpeg_simple_progression(&ci);
    if (extra && extra->arithmetic) ci.arith_code = TRUE;
    if (extra) ci.restart_in_rows = extra->restart_rows;
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * w * comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    TuBuf b = {malloc(size), size};
    memcpy(b.p, mem, size);
    free(mem);
    return b;
}

static inline TuBuf tu_jpeg(const uint8_t *px, int w, int h, int comps, J_COLOR_SPACE in_cs, J_COLOR_SPACE jpeg_cs,
                            int quality, int sub444)
{
    return tu_jpeg_extra(px, w, h, comps, in_cs, jpeg_cs, quality, sub444, NULL);
}

static inline void tu_png_write(png_structp png, png_bytep data, png_size_t n)
{
    TuBuf *b = png_get_io_ptr(png);
    b->p = realloc(b->p, b->len + n);
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static inline void tu_png_flush(png_structp png) { (void)png; }

/* Encodes raw PNG rows: rows (h, rowbytes) already in the PNG's own sample
 * layout (big-endian 16-bit, packed low bit depths). palette/trns optional. */
static inline TuBuf tu_png(const uint8_t *rows, size_t rowbytes, int w, int h, int color_type, int depth, int interlace,
                    const png_color *palette, int npalette, const uint8_t *trns, int ntrns)
{
    TuBuf b = {NULL, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "tu_png: libpng failed\n");
        abort();
    }
    png_set_write_fn(png, &b, tu_png_write, tu_png_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (palette) png_set_PLTE(png, info, palette, npalette);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    png_bytep *rp = malloc((size_t)h * sizeof *rp);
    for (int y = 0; y < h; y++) rp[y] = (png_bytep)(rows + (size_t)y * rowbytes);
    png_write_image(png, rp);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rp);
    return b;
}

/* A test pattern: 8x8 blocks of flat colour (so JPEG at quality 100 and 4:4:4
 * reproduces it almost exactly), (h, w, 3). */
static inline uint8_t *tu_blocks_rgb(int w, int h, int grey)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int bx = x / 8, by = y / 8;
            uint8_t *p = px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(30 + 37 * bx + 11 * by);
            p[1] = grey ? p[0] : (uint8_t)(200 - 23 * by + 5 * bx);
            p[2] = grey ? p[0] : (uint8_t)(90 + 17 * (bx + by));
        }
    return px;
}

/* A smooth, textured pattern for resampling and loader tests, (h, w, 3). */
static inline uint8_t *tu_texture_rgb(int w, int h, unsigned seed)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                unsigned v = (unsigned)(x * (3 + c) + y * (5 - c)) + seed * 31u;
                v = (v * 2654435761u) >> 27; /* a little noise */
                int base = (x * 255 / (w > 1 ? w - 1 : 1) + y * 128 / (h > 1 ? h - 1 : 1) + 60 * c) % 256;
                int val = base + (int)v - 16;
                px[((size_t)y * w + x) * 3 + c] = (uint8_t)(val < 0 ? 0 : val > 255 ? 255 : val);
            }
    return px;
}

static inline void tu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "tu_write_file: cannot create %s\n", path);
        abort();
    }
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

static inline void tu_write_text(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "tu_write_text: cannot create %s\n", path);
        abort();
    }
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

/* A fresh directory under /tmp; tu_rmtree removes it. */
static inline char *tu_tmpdir(const char *tag)
{
    char *p = malloc(256);
    snprintf(p, 256, "/tmp/gnet-%s-XXXXXX", tag);
    if (!mkdtemp(p)) {
        fprintf(stderr, "tu_tmpdir: mkdtemp failed\n");
        abort();
    }
    return p;
}

static inline void tu_rmtree(char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "tu_rmtree: could not remove %s\n", dir);
    free(dir);
}

static inline void tu_mkdir(const char *fmt, ...)
{
    char path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    mkdir(path, 0777);
}

/* Writes a textured JPEG of w x h at path. */
static inline void tu_write_texture_jpeg(const char *path, int w, int h, unsigned seed)
{
    uint8_t *px = tu_texture_rgb(w, h, seed);
    TuBuf b = tu_jpeg(px, w, h, 3, JCS_RGB, JCS_YCbCr, 90, 0);
    tu_write_file(path, b.p, b.len);
    free(b.p);
    free(px);
}

#endif
