/* image.c: JPEG and PNG decoding into 8-bit RGB, the antialiasing resampler,
 * and the conversions to normalised float tensors (image.h).
 *
 * libjpeg and libpng report errors by longjmp; both are caught here, inside the
 * decoding function that called setjmp, and turned into a message. Their
 * warnings are never printed. No file I/O, no threads, no printing, no exit.
 */
#include "dataloader/image.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

/* ---- scratch ---- */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    int eof; /* the data ended before the image did: a truncated file */
    char msg[JMSG_LENGTH_MAX];
} JpegErr;

typedef struct {
    const uint8_t *data;
    size_t len, pos;
    jmp_buf jmp;
    char msg[200];
} PngIo;

typedef struct {
    int *start, *count; /* (n) first source pixel and taps of each output pixel */
    float *w;           /* (n, ksize) normalised weights */
    int n, ksize;
    size_t cap_n, cap_w;
} Coeffs;

struct ImageScratch {
    struct jpeg_decompress_struct cinfo;
    JpegErr jerr;
    int jpeg_ready;
    PngIo png; /* here rather than on the stack: it changes between setjmp and longjmp */
    uint8_t **rows;     /* (cap_rows) row pointers for libjpeg/libpng */
    size_t cap_rows;
    uint8_t *cmyk;      /* (h, w, 4) CMYK rows before conversion */
    size_t cap_cmyk;
    Coeffs cx, cy;
    float *line;        /* one vertically filtered row: (w, 3) + 4 floats of padding */
    size_t cap_line;
};

ImageScratch *image_scratch_new(void) { return calloc(1, sizeof(ImageScratch)); }

void image_scratch_free(ImageScratch *s)
{
    if (!s) return;
    if (s->jpeg_ready) jpeg_destroy_decompress(&s->cinfo);
    free(s->rows);
    free(s->cmyk);
    free(s->cx.start);
    free(s->cx.count);
    free(s->cx.w);
    free(s->cy.start);
    free(s->cy.count);
    free(s->cy.w);
    free(s->line);
    free(s);
}

void image_free(Image *img)
{
    free(img->px);
    memset(img, 0, sizeof *img);
}

/* Grows *p to hold n bytes; keeps the old contents. */
static int grow_bytes(void **p, size_t *cap, size_t n)
{
    if (n <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < n) c *= 2;
    void *q = realloc(*p, c);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int image_reserve(Image *img, int w, int h, char *err, size_t errlen)
{
    size_t need = (size_t)w * (size_t)h * 3;
    if (grow_bytes((void **)&img->px, &img->cap, need ? need : 1) != 0) {
        snprintf(err, errlen, "out of memory for a %dx%d image", w, h);
        return -1;
    }
    img->w = w;
    img->h = h;
    img->stride = 0;
    return 0;
}

static int rows_reserve(ImageScratch *s, size_t n, char *err, size_t errlen)
{
    size_t bytes = s->cap_rows * sizeof *s->rows;
    if (grow_bytes((void **)&s->rows, &bytes, n * sizeof *s->rows) != 0) {
        snprintf(err, errlen, "out of memory for %zu row pointers", n);
        return -1;
    }
    s->cap_rows = bytes / sizeof *s->rows;
    return 0;
}

/* ---- names ---- */

static const char *const filter_names[IMAGE_FILTER_COUNT] = {"nearest", "bilinear", "bicubic",
                                                             "area",    "lanczos",  "random"};

const char *image_filter_name(ImageFilter f) { return f >= 0 && f < IMAGE_FILTER_COUNT ? filter_names[f] : "?"; }

int image_filter_parse(const char *name, ImageFilter *out)
{
    for (int i = 0; i < IMAGE_FILTER_COUNT; i++)
        if (strcmp(name, filter_names[i]) == 0) {
            *out = (ImageFilter)i;
            return 0;
        }
    return -1;
}

/* ---- sniffing and headers ---- */

ImageFormat image_sniff(const uint8_t *d, size_t len)
{
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff) return IMAGE_FMT_JPEG;
    if (len >= 8 && memcmp(d, png_magic, 8) == 0) return IMAGE_FMT_PNG;
    return IMAGE_FMT_UNKNOWN;
}

static int be16(const uint8_t *p) { return (p[0] << 8) | p[1]; }
static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void describe_unknown(const uint8_t *d, size_t len, char *err, size_t errlen)
{
    if (len < 4)
        snprintf(err, errlen, "not an image: only %zu bytes", len);
    else
        snprintf(err, errlen, "not a JPEG or PNG (starts with %02x %02x %02x %02x)", d[0], d[1], d[2], d[3]);
}

int image_probe(const uint8_t *d, size_t len, int *w, int *h, ImageFormat *fmt, char *err, size_t errlen)
{
    ImageFormat f = image_sniff(d, len);
    if (fmt) *fmt = f;
    if (f == IMAGE_FMT_PNG) {
        if (len < 24 || memcmp(d + 12, "IHDR", 4) != 0) {
            snprintf(err, errlen, "truncated PNG: no IHDR header");
            return -1;
        }
        uint32_t pw = be32(d + 16), ph = be32(d + 20);
        if (pw == 0 || ph == 0 || pw > 0x7fffffff || ph > 0x7fffffff) {
            snprintf(err, errlen, "PNG header declares an impossible size %ux%u", pw, ph);
            return -1;
        }
        *w = (int)pw;
        *h = (int)ph;
        return 0;
    }
    if (f != IMAGE_FMT_JPEG) {
        describe_unknown(d, len, err, errlen);
        return -1;
    }
    size_t i = 2;
    while (i < len) {
        if (d[i] != 0xff) {
            snprintf(err, errlen, "corrupt JPEG: expected a marker at byte %zu", i);
            return -1;
        }
        while (i < len && d[i] == 0xff) i++;
        if (i >= len) break;
        int m = d[i++];
        if (m == 0xd8 || m == 0x01 || (m >= 0xd0 && m <= 0xd7)) continue;
        if (m == 0xd9 || m == 0xda) break; /* image data before any frame header */
        if (i + 2 > len) break;
        int seg = be16(d + i);
        if (seg < 2 || i + (size_t)seg > len) break;
        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            if (seg < 7) break;
            *h = be16(d + i + 3);
            *w = be16(d + i + 5);
            if (*w == 0 || *h == 0) {
                snprintf(err, errlen, "JPEG header declares an empty %dx%d image", *w, *h);
                return -1;
            }
            return 0;
        }
        i += (size_t)seg;
    }
    snprintf(err, errlen, "truncated or corrupt JPEG: no frame header found");
    return -1;
}

int image_check_pixels(int w, int h, long long limit, char *err, size_t errlen)
{
    if (limit <= 0) limit = IMAGE_MAX_PIXELS_DEFAULT;
    if ((long long)w * h > limit) {
        snprintf(err, errlen, "header declares %dx%d = %lld pixels, over the limit of %lld (a decompression bomb?)", w,
                 h, (long long)w * h, limit);
        return -1;
    }
    return 0;
}

/* ---- JPEG ---- */

static void jerr_exit(j_common_ptr c)
{
    JpegErr *e = (JpegErr *)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jmp, 1);
}

static void jerr_emit(j_common_ptr c, int level)
{
    JpegErr *e = (JpegErr *)c->err;
    if (level >= 0) return; /* trace messages */
    c->err->num_warnings++;
    /* A premature end is a truncated file: refused like PIL refuses it, at
     * once (libjpeg would go on to decode the rest of the image as grey, work
     * thrown away: a few bytes of header can declare 64 M pixels). Other
     * corrupt-data warnings (extraneous bytes) decode fine and are tolerated. */
    if (c->err->msg_code == JWRN_JPEG_EOF) {
        e->eof = 1;
        longjmp(e->jmp, 1);
    }
}

static void jerr_output(j_common_ptr c) { (void)c; }

/* PIL's CMYK to RGB (Convert.c cmyk2rgb) on PIL's CMYK values, where files with
 * an Adobe marker (Photoshop's) hold inverted ink values. */
static inline uint8_t muldiv255(int a, int b)
{
    int t = a * b + 128;
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, size_t n, int inverted)
{
    for (size_t i = 0; i < n; i++, in += 4, out += 3) {
        int c = in[0], m = in[1], y = in[2], k = in[3];
        if (inverted) {
            c = 255 - c;
            m = 255 - m;
            y = 255 - y;
            k = 255 - k;
        }
        int nk = 255 - k;
        out[0] = (uint8_t)(nk - muldiv255(c, nk));
        out[1] = (uint8_t)(nk - muldiv255(m, nk));
        out[2] = (uint8_t)(nk - muldiv255(y, nk));
    }
}

/* The decompressor of s, created on first use; 0, or -1 with a reason. */
static int jpeg_ready(ImageScratch *s, char *err, size_t errlen)
{
    if (s->jpeg_ready) return 0;
    struct jpeg_decompress_struct *ci = &s->cinfo;
    ci->err = jpeg_std_error(&s->jerr.pub);
    s->jerr.pub.error_exit = jerr_exit;
    s->jerr.pub.emit_message = jerr_emit;
    s->jerr.pub.output_message = jerr_output;
    if (setjmp(s->jerr.jmp)) {
        snprintf(err, errlen, "libjpeg could not start: %s", s->jerr.msg);
        return -1;
    }
    jpeg_create_decompress(ci);
    s->jpeg_ready = 1;
    return 0;
}

/* The box of a fw x fh image that is needed, in full-size pixels: opt's
 * region clipped to the image, or the whole image. 0, or -1 with a reason
 * when the region lies outside. */
static int jpeg_region(const ImageDecodeOptions *opt, int fw, int fh, int *rx, int *ry, int *rw, int *rh, char *err,
                       size_t errlen)
{
    *rx = 0, *ry = 0, *rw = fw, *rh = fh;
    if (opt->roi_w <= 0 || opt->roi_h <= 0) return 0;
    *rx = opt->roi_x < 0 ? 0 : opt->roi_x;
    *ry = opt->roi_y < 0 ? 0 : opt->roi_y;
    *rw = opt->roi_x + opt->roi_w > fw ? fw - *rx : opt->roi_x + opt->roi_w - *rx;
    *rh = opt->roi_y + opt->roi_h > fh ? fh - *ry : opt->roi_y + opt->roi_h - *ry;
    if (*rw > 0 && *rh > 0) return 0;
    return snprintf(err, errlen, "region %d,%d %dx%d lies outside the %dx%d image", opt->roi_x, opt->roi_y, opt->roi_w,
                    opt->roi_h, fw, fh), -1;
}

/* DCT-domain scaling: the largest 1/d that keeps the region's shorter side >= min_side. */
static int jpeg_denom(int rw, int rh, int min_side)
{
    int shorter = rw < rh ? rw : rh;
    for (int d = 8; d >= 2 && min_side > 0; d /= 2)
        if (shorter / d >= min_side) return d;
    return 1;
}

/* Once decompression has started: reads the h scaled rows from sy0 of the
 * columns jpeg_crop_scanline kept (w of them) into out as RGB, and ends the
 * decompression. Errors inside libjpeg jump to jpeg_decode's setjmp. 0, or -1
 * with a reason. */
static int jpeg_read_rows(ImageScratch *s, Image *out, int w, int h, int sy0, int cmyk, char *err, size_t errlen)
{
    struct jpeg_decompress_struct *ci = &s->cinfo;
    if (image_reserve(out, w, h, err, errlen) != 0 || rows_reserve(s, (size_t)h, err, errlen) != 0) {
        jpeg_abort_decompress(ci);
        return -1;
    }
    uint8_t *dst = out->px;
    size_t row_bytes = (size_t)w * 3;
    if (cmyk) {
        if (grow_bytes((void **)&s->cmyk, &s->cap_cmyk, (size_t)w * h * 4) != 0) {
            jpeg_abort_decompress(ci);
            snprintf(err, errlen, "out of memory for a %dx%d CMYK image", w, h);
            return -1;
        }
        dst = s->cmyk;
        row_bytes = (size_t)w * 4;
    }
    if (ci->output_components != (cmyk ? 4 : 3)) {
        jpeg_abort_decompress(ci);
        snprintf(err, errlen, "JPEG decodes to %d components; expected %d", ci->output_components, cmyk ? 4 : 3);
        return -1;
    }
    for (int y = 0; y < h; y++) s->rows[y] = dst + (size_t)y * row_bytes;
    if (sy0 > 0) jpeg_skip_scanlines(ci, (JDIMENSION)sy0);
    int got = 0;
    while (got < h) {
        JDIMENSION r = jpeg_read_scanlines(ci, s->rows + got, (JDIMENSION)(h - got));
        if (r == 0) break;
        got += (int)r;
    }
    int eof = s->jerr.eof;
    int inverted = ci->saw_Adobe_marker;
    if (ci->output_scanline == ci->output_height)
        jpeg_finish_decompress(ci);
    else
        jpeg_abort_decompress(ci);
    if (got < h || eof) {
        snprintf(err, errlen, "truncated JPEG: the data ends before the image does");
        return -1;
    }
    if (cmyk) cmyk_to_rgb(s->cmyk, out->px, (size_t)w * h, inverted);
    return 0;
}

static int jpeg_decode(const uint8_t *data, size_t len, const ImageDecodeOptions *opt, Image *out, ImageScratch *s,
                       char *err, size_t errlen)
{
    struct jpeg_decompress_struct *ci = &s->cinfo;
    if (jpeg_ready(s, err, errlen) != 0) return -1;
    s->jerr.eof = 0;
    s->jerr.pub.num_warnings = 0;
    /* every libjpeg error below, in this function or its helpers, lands here */
    if (setjmp(s->jerr.jmp)) {
        jpeg_abort_decompress(ci);
        if (s->jerr.eof) snprintf(err, errlen, "truncated JPEG: the data ends before the image does");
        else snprintf(err, errlen, "corrupt JPEG: %s", s->jerr.msg);
        return -1;
    }
    jpeg_mem_src(ci, data, (unsigned long)len);
    jpeg_read_header(ci, TRUE);
    int fw = (int)ci->image_width, fh = (int)ci->image_height, rx, ry, rw, rh;
    if (image_check_pixels(fw, fh, opt->max_pixels, err, errlen) != 0 ||
        jpeg_region(opt, fw, fh, &rx, &ry, &rw, &rh, err, errlen) != 0) {
        jpeg_abort_decompress(ci);
        return -1;
    }
    int cmyk = ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK;
    ci->out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    int denom = jpeg_denom(rw, rh, opt->min_side);
    ci->scale_num = 1;
    ci->scale_denom = (unsigned)denom;
    jpeg_start_decompress(ci);
    int sw = (int)ci->output_width, sh = (int)ci->output_height;
    /* the region in scaled pixels, rounded outwards */
    int sx0 = rx / denom, sy0 = ry / denom;
    int sx1 = (rx + rw + denom - 1) / denom, sy1 = (ry + rh + denom - 1) / denom;
    if (sx1 > sw) sx1 = sw;
    if (sy1 > sh) sy1 = sh;
    /* Fancy chroma upsampling of a cropped row replicates the edge samples at
     * both ends of the crop, so its first and last columns differ from a full
     * decode: decode one iMCU more on each side and those columns lie outside
     * the box. */
    int imcu = ci->max_h_samp_factor * ci->min_DCT_scaled_size;
    sx0 = sx0 > imcu ? sx0 - imcu : 0;
    sx1 = sx1 + imcu < sw ? sx1 + imcu : sw;
    JDIMENSION xoff = (JDIMENSION)sx0, cw = (JDIMENSION)(sx1 - sx0);
    if (sx0 > 0 || sx1 < sw) jpeg_crop_scanline(ci, &xoff, &cw); /* widens to iMCU boundaries */
    else xoff = 0, cw = (JDIMENSION)sw;
    if (jpeg_read_rows(s, out, (int)cw, sy1 - sy0, sy0, cmyk, err, errlen) != 0) return -1;
    out->full_w = fw;
    out->full_h = fh;
    out->scale = denom;
    out->sw = sw;
    out->sh = sh;
    out->x0 = (int)xoff;
    out->y0 = sy0;
    return 0;
}

/* ---- PNG ---- */

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    PngIo *io = png_get_io_ptr(png);
    if (io->len - io->pos < n) png_error(png, "the data ends before the image does (truncated PNG)");
    memcpy(out, io->data + io->pos, n);
    io->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    PngIo *io = png_get_error_ptr(png);
    snprintf(io->msg, sizeof io->msg, "%s", msg);
    longjmp(io->jmp, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

static int png_decode(const uint8_t *data, size_t len, const ImageDecodeOptions *opt, Image *out, ImageScratch *s,
                      char *err, size_t errlen)
{
    PngIo *io = &s->png;
    io->data = data;
    io->len = len;
    io->pos = 8;
    io->msg[0] = 0;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, io, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(err, errlen, "out of memory starting libpng");
        return -1;
    }
    if (setjmp(io->jmp)) {
        png_destroy_read_struct(&png, &info, NULL);
        snprintf(err, errlen, "corrupt PNG: %s", io->msg);
        return -1;
    }
    png_set_read_fn(png, io, png_read_mem);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if (image_check_pixels((int)(w > 0x7fffffff ? 0x7fffffff : w), (int)(h > 0x7fffffff ? 0x7fffffff : h),
                           opt->max_pixels, err, errlen) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
    png_set_expand(png); /* palette -> RGB, gray < 8 bits -> 8, tRNS -> alpha */
    if (depth == 16) png_set_strip_16(png); /* the high byte, as PIL reads 16-bit RGB */
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_strip_alpha(png); /* PIL's convert("RGB") drops alpha */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        png_destroy_read_struct(&png, &info, NULL);
        snprintf(err, errlen, "PNG of color type %d and depth %d does not expand to RGB", color, depth);
        return -1;
    }
    if (image_reserve(out, (int)w, (int)h, err, errlen) != 0 || rows_reserve(s, h, err, errlen) != 0) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    for (png_uint_32 y = 0; y < h; y++) s->rows[y] = out->px + (size_t)y * w * 3;
    png_read_image(png, s->rows);
    png_destroy_read_struct(&png, &info, NULL);
    out->full_w = out->sw = (int)w;
    out->full_h = out->sh = (int)h;
    out->scale = 1;
    out->x0 = out->y0 = 0;
    return 0;
}

int image_decode(const uint8_t *data, size_t len, const ImageDecodeOptions *opt, Image *out, ImageScratch *s,
                 char *err, size_t errlen)
{
    static const ImageDecodeOptions none = {0};
    if (!opt) opt = &none;
    ImageFormat f = image_sniff(data, len);
    if (f == IMAGE_FMT_JPEG) return jpeg_decode(data, len, opt, out, s, err, errlen);
    if (f == IMAGE_FMT_PNG) return png_decode(data, len, opt, out, s, err, errlen);
    describe_unknown(data, len, err, errlen);
    return -1;
}

/* ---- resampling ---- */

static double filter_triangle(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_cubic(double x)
{
    const double a = -0.5; /* PIL's and the Keys kernel's */
    x = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static double sinc(double x)
{
    if (x == 0.0) return 1.0;
    x *= M_PI;
    return sin(x) / x;
}

static double filter_lanczos(double x) { return x > -3.0 && x < 3.0 ? sinc(x) * sinc(x / 3.0) : 0.0; }

static double filter_box(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

/* Weights of each output pixel along one axis, as PIL's precompute_coeffs:
 * the output pixel xx covers source [b0 + xx*scale, b0 + (xx+1)*scale). */
static int coeffs_build(Coeffs *c, int in_size, double b0, double blen, int out, ImageFilter f)
{
    double (*fn)(double) = NULL, support = 0;
    switch (f) {
    case IMAGE_FILTER_BILINEAR: fn = filter_triangle, support = 1.0; break;
    case IMAGE_FILTER_BICUBIC: fn = filter_cubic, support = 2.0; break;
    case IMAGE_FILTER_LANCZOS: fn = filter_lanczos, support = 3.0; break;
    case IMAGE_FILTER_AREA: fn = filter_box, support = 0.5; break;
    default: break;
    }
    double scale = blen / out;
    double fscale = scale < 1.0 ? 1.0 : scale;
    int ksize = fn ? (int)ceil(support * fscale) * 2 + 1 : 1;
    size_t nb = (size_t)out * sizeof(int), wb = (size_t)out * ksize * sizeof(float);
    size_t cap_n = c->cap_n;
    if (grow_bytes((void **)&c->start, &cap_n, nb) != 0) return -1;
    cap_n = c->cap_n;
    if (grow_bytes((void **)&c->count, &cap_n, nb) != 0) return -1;
    c->cap_n = cap_n;
    if (grow_bytes((void **)&c->w, &c->cap_w, wb) != 0) return -1;
    c->n = out;
    c->ksize = ksize;
    for (int xx = 0; xx < out; xx++) {
        double center = b0 + (xx + 0.5) * scale;
        float *k = c->w + (size_t)xx * ksize;
        if (!fn) { /* nearest: the source pixel under the centre */
            int x = (int)floor(center);
            c->start[xx] = x < 0 ? 0 : x >= in_size ? in_size - 1 : x;
            c->count[xx] = 1;
            k[0] = 1.0f;
            continue;
        }
        double sup = support * fscale, ss = 1.0 / fscale, ww = 0.0;
        int xmin = (int)(center - sup + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + sup + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize;
        for (int x = 0; x < xmax; x++) {
            double v = fn((x + xmin - center + 0.5) * ss);
            k[x] = (float)v;
            ww += v;
        }
        if (xmax <= 0 || ww == 0.0) { /* a box outside the image: clamp to the edge */
            xmin = center < 0 ? 0 : center >= in_size ? in_size - 1 : (int)center;
            xmax = 1;
            k[0] = 1.0f;
            ww = 1.0;
        }
        c->start[xx] = xmin;
        c->count[xx] = xmax;
        for (int x = 0; x < xmax; x++) k[x] = (float)(k[x] / ww);
    }
    return 0;
}

enum { SINK_PLANAR, SINK_RGB8 };

typedef struct {
    int kind;
    float *planes; /* SINK_PLANAR: (3, oh, ow) */
    int mirror;
    uint8_t *rgb;  /* SINK_RGB8: (oh, ow, 3) */
} Sink;

/* v already clamped to 0..255: round to nearest */
static inline uint8_t clamp_u8(float v) { return (uint8_t)(v + 0.5f); }

#if !defined(__SSE__)
static inline float clamp_f255(float v) { return v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v; }
#endif

/* Vertical pass into one float row (only the columns the horizontal pass
 * reads), then the horizontal pass into the sink, row by row. */
static int resample(const Image *src, ImageBox box, int ow, int oh, ImageFilter f, const Sink *sink,
                    ImageScratch *s, char *err, size_t errlen)
{
    if (!src->px || src->w <= 0 || src->h <= 0 || ow <= 0 || oh <= 0 || !(box.w > 0) || !(box.h > 0)) {
        snprintf(err, errlen, "cannot resample a %dx%d image box %.1fx%.1f to %dx%d", src->w, src->h, box.w, box.h,
                 ow, oh);
        return -1;
    }
    if (f == IMAGE_FILTER_RANDOM || f < 0 || f >= IMAGE_FILTER_COUNT) f = IMAGE_FILTER_BILINEAR;
    if (coeffs_build(&s->cx, src->w, box.x, box.w, ow, f) != 0 || coeffs_build(&s->cy, src->h, box.y, box.h, oh, f) != 0) {
        snprintf(err, errlen, "out of memory for resampling weights");
        return -1;
    }
    const Coeffs *cx = &s->cx, *cy = &s->cy;
    int xlo = src->w, xhi = 0;
    for (int x = 0; x < ow; x++) {
        if (cx->start[x] < xlo) xlo = cx->start[x];
        if (cx->start[x] + cx->count[x] > xhi) xhi = cx->start[x] + cx->count[x];
    }
    int span = (xhi - xlo) * 3;
    if (grow_bytes((void **)&s->line, &s->cap_line, ((size_t)span + 4) * sizeof(float)) != 0) {
        snprintf(err, errlen, "out of memory for a resampling row");
        return -1;
    }
    float *line = s->line;
    const size_t stride = src->stride ? (size_t)src->stride : (size_t)src->w * 3;
    size_t plane = (size_t)ow * oh;
    for (int y = 0; y < oh; y++) {
        const float *wy = cy->w + (size_t)y * cy->ksize;
        const uint8_t *base = src->px + (size_t)cy->start[y] * stride + (size_t)xlo * 3;
        for (int j = 0; j < span; j++) line[j] = 0.0f;
        for (int k = 0; k < cy->count[y]; k++) {
            const uint8_t *row = base + (size_t)k * stride;
            float wk = wy[k];
            for (int j = 0; j < span; j++) line[j] += wk * (float)row[j];
        }
        line[span] = line[span + 1] = line[span + 2] = line[span + 3] = 0.0f;
        for (int x = 0; x < ow; x++) {
            const float *wx = cx->w + (size_t)x * cx->ksize;
            const float *p = line + (size_t)(cx->start[x] - xlo) * 3;
            /* t: the pixel clamped to 0..255 like the 8-bit image PIL would
             * hold, not rounded */
            float t[4];
#if defined(__SSE__)
            __m128 acc = _mm_setzero_ps();
            for (int k = 0; k < cx->count[x]; k++)
                acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(wx[k]), _mm_loadu_ps(p + 3 * k)));
            acc = _mm_min_ps(_mm_max_ps(acc, _mm_setzero_ps()), _mm_set1_ps(255.0f));
            _mm_storeu_ps(t, acc);
#else
            t[0] = t[1] = t[2] = 0.0f;
            for (int k = 0; k < cx->count[x]; k++) {
                t[0] += wx[k] * p[3 * k];
                t[1] += wx[k] * p[3 * k + 1];
                t[2] += wx[k] * p[3 * k + 2];
            }
            for (int c = 0; c < 3; c++) t[c] = clamp_f255(t[c]);
#endif
            if (sink->kind == SINK_PLANAR) {
                size_t o = (size_t)y * ow + (size_t)(sink->mirror ? ow - 1 - x : x);
                sink->planes[o] = t[0];
                sink->planes[plane + o] = t[1];
                sink->planes[2 * plane + o] = t[2];
            } else {
                uint8_t *o = sink->rgb + ((size_t)y * ow + (size_t)x) * 3;
                o[0] = clamp_u8(t[0]);
                o[1] = clamp_u8(t[1]);
                o[2] = clamp_u8(t[2]);
            }
        }
    }
    return 0;
}

int image_resize_to_float(const Image *src, ImageBox box, int out_w, int out_h, ImageFilter f, int mirror, float *out,
                          ImageScratch *s, char *err, size_t errlen)
{
    Sink sink = {SINK_PLANAR, out, mirror, NULL};
    return resample(src, box, out_w, out_h, f, &sink, s, err, errlen);
}

int image_resize(const Image *src, ImageBox box, int out_w, int out_h, ImageFilter f, Image *dst, ImageScratch *s,
                 char *err, size_t errlen)
{
    assert(dst != src);
    if (image_reserve(dst, out_w > 0 ? out_w : 0, out_h > 0 ? out_h : 0, err, errlen) != 0) return -1;
    Sink sink = {SINK_RGB8, NULL, 0, dst->px};
    if (resample(src, box, out_w, out_h, f, &sink, s, err, errlen) != 0) return -1;
    dst->full_w = dst->sw = out_w;
    dst->full_h = dst->sh = out_h;
    dst->scale = 1;
    dst->x0 = dst->y0 = 0;
    return 0;
}

int image_resized_size(int w, int h, int side, int *out_w, int *out_h, char *err, size_t errlen)
{
    if (side <= 0 || w <= 0 || h <= 0) {
        snprintf(err, errlen, "cannot resize a %dx%d image to shorter side %d", w, h, side);
        return -1;
    }
    int portrait = w <= h;
    long long longer = (long long)side * (portrait ? h : w) / (portrait ? w : h);
    if (longer > INT_MAX) {
        snprintf(err, errlen, "a %dx%d image is too elongated: with its shorter side at %d pixels the longer one "
                 "would be %lld", w, h, side, longer);
        return -1;
    }
    *out_w = portrait ? side : (int)longer;
    *out_h = portrait ? (int)longer : side;
    return 0;
}

int image_resize_shorter(const Image *src, int side, ImageFilter f, Image *dst, ImageScratch *s, char *err,
                         size_t errlen)
{
    int w, h;
    if (image_resized_size(src->w, src->h, side, &w, &h, err, errlen) != 0) return -1;
    ImageBox box = {0, 0, (float)src->w, (float)src->h};
    return image_resize(src, box, w, h, f, dst, s, err, errlen);
}

void image_to_tensor(const Image *src, int x, int y, int w, int h, int mirror, const float mean[3], const float std[3],
                     float *out)
{
    assert(x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= src->w && y + h <= src->h);
    float a[3], b[3];
    for (int c = 0; c < 3; c++) {
        a[c] = 1.0f / (255.0f * std[c]);
        b[c] = -mean[c] / std[c];
    }
    size_t plane = (size_t)w * h, stride = src->stride ? (size_t)src->stride : (size_t)src->w * 3;
    for (int r = 0; r < h; r++) {
        const uint8_t *row = src->px + (size_t)(y + r) * stride + (size_t)x * 3;
        for (int i = 0; i < w; i++) {
            const uint8_t *p = row + (size_t)(mirror ? w - 1 - i : i) * 3;
            size_t o = (size_t)r * w + i;
            out[o] = p[0] * a[0] + b[0];
            out[plane + o] = p[1] * a[1] + b[1];
            out[2 * plane + o] = p[2] * a[2] + b[2];
        }
    }
}
