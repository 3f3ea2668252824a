/* test_image.c: decoding of every supported format against known images the
 * test writes itself (RGB, grey, CMYK and YCCK JPEGs; RGB, RGBA, grey 1-16 bit,
 * grey+alpha, palette with transparency, 16-bit and interlaced PNGs), region
 * and DCT-scaled decoding, the corrupt inputs and the pixel limit, and the
 * resampler against a naive double-precision reference. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataloader/image.h"
#include "tests/test_loader_util.h"

static ImageScratch *S;

static int setup(void **state)
{
    (void)state;
    S = image_scratch_new();
    return S ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    image_scratch_free(S);
    return 0;
}

/* libjpeg's own full-size decode, the straightforward way: the reference our
 * decoder must match bit for bit. comps_out 3 (RGB) or 4 (raw CMYK). */
static uint8_t *ref_jpeg_decode(const TuBuf *b, int *w, int *h, int *adobe, J_COLOR_SPACE out_cs)
{
    struct jpeg_decompress_struct ci;
    struct jpeg_error_mgr jerr;
    ci.err = jpeg_std_error(&jerr);
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, b->p, b->len);
    jpeg_read_header(&ci, TRUE);
    ci.out_color_space = out_cs;
    jpeg_start_decompress(&ci);
    *w = (int)ci.output_width;
    *h = (int)ci.output_height;
    int c = ci.output_components;
    uint8_t *px = malloc((size_t)*w * *h * c);
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = px + (size_t)ci.output_scanline * *w * c;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    if (adobe) *adobe = ci.saw_Adobe_marker;
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    return px;
}

static int max_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int m = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static void decode_ok(const TuBuf *b, Image *img, const ImageDecodeOptions *opt)
{
    char err[256] = "";
    int rc = image_decode(b->p, b->len, opt, img, S, err, sizeof err);
    if (rc != 0) fprintf(stderr, "decode failed: %s\n", err);
    assert_int_equal(rc, 0);
}

static void test_jpeg_rgb(void **state)
{
    (void)state;
    int W = 64, H = 48;
    uint8_t *px = tu_blocks_rgb(W, H, 0);
    for (int sub444 = 0; sub444 < 2; sub444++) {
        TuBuf b = tu_jpeg(px, W, H, 3, JCS_RGB, JCS_YCbCr, 100, sub444);
        assert_int_equal(image_sniff(b.p, b.len), IMAGE_FMT_JPEG);
        int pw, ph;
        ImageFormat f;
        char err[256];
        assert_int_equal(image_probe(b.p, b.len, &pw, &ph, &f, err, sizeof err), 0);
        assert_int_equal(pw, W);
        assert_int_equal(ph, H);
        Image img = {0};
        decode_ok(&b, &img, NULL);
        assert_int_equal(img.w, W);
        assert_int_equal(img.h, H);
        assert_int_equal(img.scale, 1);
        int rw, rh;
        uint8_t *ref = ref_jpeg_decode(&b, &rw, &rh, NULL, JCS_RGB);
        assert_memory_equal(img.px, ref, (size_t)W * H * 3); /* bit-exact against libjpeg */
        if (sub444) assert_true(max_diff(img.px, px, (size_t)W * H * 3) <= 2); /* and close to what was encoded */
        free(ref);
        image_free(&img);
        free(b.p);
    }
    free(px);
}

static void test_jpeg_grey(void **state)
{
    (void)state;
    int W = 40, H = 24;
    uint8_t *rgb = tu_blocks_rgb(W, H, 1), *grey = malloc((size_t)W * H);
    for (int i = 0; i < W * H; i++) grey[i] = rgb[3 * i];
    TuBuf b = tu_jpeg(grey, W, H, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 100, 1);
    Image img = {0};
    decode_ok(&b, &img, NULL);
    assert_int_equal(img.w, W);
    /* flat 8x8 blocks at quality 100 survive exactly; grey becomes 3 equal channels */
    assert_memory_equal(img.px, rgb, (size_t)W * H * 3);
    image_free(&img);
    free(b.p);
    free(rgb);
    free(grey);
}

/* PIL's conversion, written independently: inverted (Adobe) values are ink
 * amounts 255 - v; r = (255 - c) * (255 - k) / 255 rounded as PIL does. */
static void ref_cmyk_to_rgb(const uint8_t *cmyk, uint8_t *rgb, size_t n, int adobe)
{
    for (size_t i = 0; i < n; i++) {
        int v[4];
        for (int c = 0; c < 4; c++) v[c] = adobe ? 255 - cmyk[4 * i + c] : cmyk[4 * i + c];
        int nk = 255 - v[3];
        for (int c = 0; c < 3; c++) {
            int t = v[c] * nk + 128;
            rgb[3 * i + c] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
        }
    }
}

static void test_jpeg_cmyk_ycck(void **state)
{
    (void)state;
    int W = 32, H = 16;
    uint8_t *cmyk = malloc((size_t)W * H * 4);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 4; c++) cmyk[((size_t)y * W + x) * 4 + c] = (uint8_t)(40 * c + 50 * (x / 8) + 30 * (y / 8));
    J_COLOR_SPACE kinds[2] = {JCS_CMYK, JCS_YCCK};
    for (int k = 0; k < 2; k++) {
        TuBuf b = tu_jpeg(cmyk, W, H, 4, JCS_CMYK, kinds[k], 100, 1);
        Image img = {0};
        decode_ok(&b, &img, NULL);
        int rw, rh, adobe;
        uint8_t *raw = ref_jpeg_decode(&b, &rw, &rh, &adobe, JCS_CMYK);
        assert_true(adobe); /* libjpeg writes an Adobe marker for CMYK/YCCK */
        uint8_t *expect = malloc((size_t)W * H * 3);
        ref_cmyk_to_rgb(raw, expect, (size_t)W * H, adobe);
        assert_memory_equal(img.px, expect, (size_t)W * H * 3);
        if (k == 0) {
            /* plain CMYK at quality 100 keeps the flat blocks: the RGB is the
             * conversion of exactly what was encoded */
            ref_cmyk_to_rgb(cmyk, expect, (size_t)W * H, 1);
            assert_memory_equal(img.px, expect, (size_t)W * H * 3);
        }
        free(expect);
        free(raw);
        image_free(&img);
        free(b.p);
    }
    free(cmyk);
}

/* Decoding a region gives exactly the full decode's pixels there, at full and
 * at DCT-reduced scale. */
static void test_jpeg_region_and_scale(void **state)
{
    (void)state;
    int W = 203, H = 157;
    uint8_t *px = tu_texture_rgb(W, H, 3);
    TuBuf b = tu_jpeg(px, W, H, 3, JCS_RGB, JCS_YCbCr, 90, 0);
    Image full = {0}, roi = {0};
    const int denoms[3] = {1, 2, 4};
    for (int di = 0; di < 3; di++) {
        int d = denoms[di];
        ImageDecodeOptions o = {0};
        o.min_side = d > 1 ? (H / d) : 0; /* shorter side 157: 157/d >= 157/d picks d */
        decode_ok(&b, &full, &o);
        assert_int_equal(full.scale, d);
        assert_int_equal(full.w, (W + d - 1) / d);
        assert_int_equal(full.h, (H + d - 1) / d);
        assert_int_equal(full.sw, full.w);
        /* edges inside iMCUs, on iMCU boundaries (32, 16), and at the image's end */
        const int boxes[4][4] = {{0, 0, 50, 40}, {37, 21, 101, 77}, {32, 16, 48, 48}, {150, 100, 53, 57}};
        for (int k = 0; k < 4; k++) {
            ImageDecodeOptions r = {0};
            r.roi_x = boxes[k][0], r.roi_y = boxes[k][1], r.roi_w = boxes[k][2], r.roi_h = boxes[k][3];
            r.min_side = d > 1 ? (r.roi_w < r.roi_h ? r.roi_w : r.roi_h) / d : 0;
            decode_ok(&b, &roi, &r);
            assert_int_equal(roi.scale, d);
            /* the region covers the box */
            assert_true(roi.x0 * d <= r.roi_x && roi.y0 * d <= r.roi_y);
            assert_true((roi.x0 + roi.w) * d >= r.roi_x + r.roi_w || roi.x0 + roi.w == full.w);
            assert_true((roi.y0 + roi.h) * d >= r.roi_y + r.roi_h || roi.y0 + roi.h == full.h);
            /* inside the box (scaled), the pixels are the full decode's */
            int bx0 = r.roi_x / d, by0 = r.roi_y / d;
            int bx1 = (r.roi_x + r.roi_w + d - 1) / d, by1 = (r.roi_y + r.roi_h + d - 1) / d;
            if (bx1 > full.w) bx1 = full.w;
            if (by1 > full.h) by1 = full.h;
            for (int y = by0; y < by1; y++)
                assert_memory_equal(roi.px + ((size_t)(y - roi.y0) * roi.w + (bx0 - roi.x0)) * 3,
                                    full.px + ((size_t)y * full.w + bx0) * 3, (size_t)(bx1 - bx0) * 3);
        }
    }
    /* a scaled decode still looks like the image: compare with a box average */
    ImageDecodeOptions o = {0};
    o.min_side = H / 2;
    decode_ok(&b, &full, &o);
    double err = 0;
    for (int y = 0; y < H / 2; y++)
        for (int x = 0; x < W / 2; x++)
            for (int c = 0; c < 3; c++) {
                int s = 0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) s += px[((size_t)(2 * y + dy) * W + 2 * x + dx) * 3 + c];
                err += fabs(s / 4.0 - full.px[((size_t)y * full.w + x) * 3 + c]);
            }
    assert_true(err / (W / 2 * (H / 2) * 3) < 6.0);
    image_free(&full);
    image_free(&roi);
    free(b.p);
    free(px);
}

/* ---- PNG ---- */

static void png_case(const uint8_t *rows, size_t rowbytes, int w, int h, int type, int depth, int interlace,
                     const png_color *pal, int npal, const uint8_t *trns, int ntrns, const uint8_t *expect)
{
    TuBuf b = tu_png(rows, rowbytes, w, h, type, depth, interlace, pal, npal, trns, ntrns);
    assert_int_equal(image_sniff(b.p, b.len), IMAGE_FMT_PNG);
    int pw, ph;
    char err[256];
    assert_int_equal(image_probe(b.p, b.len, &pw, &ph, NULL, err, sizeof err), 0);
    assert_int_equal(pw, w);
    assert_int_equal(ph, h);
    Image img = {0};
    decode_ok(&b, &img, NULL);
    assert_int_equal(img.w, w);
    assert_int_equal(img.h, h);
    assert_memory_equal(img.px, expect, (size_t)w * h * 3);
    image_free(&img);
    free(b.p);
}

static void test_png_formats(void **state)
{
    (void)state;
    enum { W = 13, H = 7 };
    uint8_t rgb[H][W][3], rows[H][W * 8], expect[H][W][3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) rgb[y][x][c] = (uint8_t)(x * 19 + y * 31 + c * 70);

    /* RGB 8, plain and interlaced */
    for (int y = 0; y < H; y++) memcpy(rows[y], rgb[y], W * 3);
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0, &rgb[0][0][0]);
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_RGB, 8, 1, NULL, 0, NULL, 0, &rgb[0][0][0]);

    /* RGBA 8: alpha dropped, as PIL's convert("RGB") */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            memcpy(&rows[y][x * 4], rgb[y][x], 3);
            rows[y][x * 4 + 3] = (uint8_t)(x * 20);
        }
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_RGBA, 8, 0, NULL, 0, NULL, 0, &rgb[0][0][0]);

    /* RGB 16: the high byte */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 3; c++) {
                rows[y][x * 6 + 2 * c] = rgb[y][x][c];
                rows[y][x * 6 + 2 * c + 1] = (uint8_t)(255 - rgb[y][x][c]); /* low byte: noise to drop */
            }
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_RGB, 16, 0, NULL, 0, NULL, 0, &rgb[0][0][0]);

    /* RGBA 16 */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            for (int c = 0; c < 3; c++) {
                rows[y][x * 8 + 2 * c] = rgb[y][x][c];
                rows[y][x * 8 + 2 * c + 1] = 7;
            }
            rows[y][x * 8 + 6] = rows[y][x * 8 + 7] = (uint8_t)(y * 30);
        }
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_RGBA, 16, 0, NULL, 0, NULL, 0, &rgb[0][0][0]);

    /* grey 8 and grey+alpha 8: three equal channels */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t g = rgb[y][x][0];
            rows[y][x] = g;
            expect[y][x][0] = expect[y][x][1] = expect[y][x][2] = g;
        }
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_GRAY, 8, 0, NULL, 0, NULL, 0, &expect[0][0][0]);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            rows[y][2 * x] = expect[y][x][0];
            rows[y][2 * x + 1] = 99;
        }
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, NULL, 0, NULL, 0, &expect[0][0][0]);

    /* grey 16 */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            rows[y][2 * x] = expect[y][x][0];
            rows[y][2 * x + 1] = 200;
        }
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_GRAY, 16, 0, NULL, 0, NULL, 0, &expect[0][0][0]);

    /* grey 1, 2 and 4 bits: scaled to 0..255 (v * 255 / (2^depth - 1)) */
    const int depths[3] = {1, 2, 4};
    for (int di = 0; di < 3; di++) {
        int d = depths[di], maxv = (1 << d) - 1;
        memset(rows, 0, sizeof rows);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int v = (x + 3 * y) % (maxv + 1);
                int bit = x * d;
                rows[y][bit / 8] |= (uint8_t)(v << (8 - d - bit % 8));
                expect[y][x][0] = expect[y][x][1] = expect[y][x][2] = (uint8_t)(v * 255 / maxv);
            }
        png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_GRAY, d, 0, NULL, 0, NULL, 0, &expect[0][0][0]);
    }

    /* palette 8 bits with transparency, and palette 4 bits */
    png_color pal[16];
    uint8_t trns[16];
    for (int i = 0; i < 16; i++) {
        pal[i].red = (uint8_t)(i * 16), pal[i].green = (uint8_t)(255 - i * 9), pal[i].blue = (uint8_t)(i * i);
        trns[i] = (uint8_t)(i * 17);
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int i = (x * 5 + y) % 16;
            rows[y][x] = (uint8_t)i;
            expect[y][x][0] = pal[i].red, expect[y][x][1] = pal[i].green, expect[y][x][2] = pal[i].blue;
        }
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_PALETTE, 8, 0, pal, 16, trns, 16, &expect[0][0][0]);
    memset(rows, 0, sizeof rows);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) rows[y][x / 2] |= (uint8_t)(((x * 5 + y) % 16) << (x % 2 ? 0 : 4));
    png_case(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_PALETTE, 4, 1, pal, 16, NULL, 0, &expect[0][0][0]);
}

/* ---- bad input: an error message, never a crash or an exit ---- */

static void expect_fail(const uint8_t *p, size_t len, const ImageDecodeOptions *opt, const char *needle)
{
    Image img = {0};
    char err[256] = "";
    assert_int_equal(image_decode(p, len, opt, &img, S, err, sizeof err), -1);
    if (!strstr(err, needle)) fprintf(stderr, "message '%s' lacks '%s'\n", err, needle);
    assert_non_null(strstr(err, needle));
    image_free(&img);
}

static void test_bad_input(void **state)
{
    (void)state;
    int W = 120, H = 90;
    uint8_t *px = tu_texture_rgb(W, H, 5);
    TuBuf j = tu_jpeg(px, W, H, 3, JCS_RGB, JCS_YCbCr, 90, 0);
    uint8_t rows[90][360];
    for (int y = 0; y < H; y++) memcpy(rows[y], px + (size_t)y * W * 3, (size_t)W * 3);
    TuBuf p = tu_png(&rows[0][0], sizeof rows[0], W, H, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0);

    expect_fail(j.p, j.len * 6 / 10, NULL, "truncated");   /* cut inside the scan */
    expect_fail(j.p, 40, NULL, "JPEG");                     /* cut inside the headers */
    expect_fail(p.p, p.len * 6 / 10, NULL, "PNG");
    expect_fail(p.p, 30, NULL, "PNG");
    expect_fail((const uint8_t *)"", 0, NULL, "not an image");
    expect_fail((const uint8_t *)"<html>hello</html>", 18, NULL, "not a JPEG or PNG");

    /* corrupted entropy data in the middle: libjpeg warns (corrupt data) and
     * decodes the rest, as PIL does; the image comes back whole, and
     * differs from the clean decode */
    uint8_t *bad = malloc(j.len);
    memcpy(bad, j.p, j.len);
    for (size_t i = j.len / 2; i < j.len / 2 + 64; i++) bad[i] ^= 0x5a;
    Image img = {0}, clean = {0};
    char err[256];
    int rc = image_decode(bad, j.len, NULL, &img, S, err, sizeof err);
    if (rc != 0) fail_msg("corrupt entropy data: %s", err);
    assert_int_equal(img.w, W);
    assert_int_equal(img.h, H);
    decode_ok(&j, &clean, NULL);
    assert_true(memcmp(img.px, clean.px, (size_t)W * H * 3) != 0);
    image_free(&clean);
    /* a PNG with a broken chunk CRC */
    memcpy(bad, p.p, p.len < j.len ? p.len : j.len);
    bad[40] ^= 0xff;
    assert_int_equal(image_decode(bad, p.len < j.len ? p.len : j.len, NULL, &img, S, err, sizeof err), -1);

    /* the pixel limit: settable, and a header that declares a huge image */
    ImageDecodeOptions lim = {0};
    lim.max_pixels = 1000;
    expect_fail(j.p, j.len, &lim, "decompression bomb");
    expect_fail(p.p, p.len, &lim, "decompression bomb");
    memcpy(bad, j.p, j.len);
    for (size_t i = 2; i + 9 < j.len; i++)
        if (bad[i] == 0xff && bad[i + 1] == 0xc0) { /* SOF0: height, width at +5, +7 */
            bad[i + 5] = 0x4e, bad[i + 6] = 0x20; /* 20000 */
            bad[i + 7] = 0x4e, bad[i + 8] = 0x20;
            break;
        }
    int bw, bh;
    assert_int_equal(image_probe(bad, j.len, &bw, &bh, NULL, err, sizeof err), 0);
    assert_int_equal(bw, 20000);
    expect_fail(bad, j.len, NULL, "decompression bomb"); /* 400 M pixels > the 64 M default */

    /* the decoder is still usable after all those errors */
    decode_ok(&j, &img, NULL);
    assert_int_equal(img.w, W);
    image_free(&img);
    free(bad);
    free(j.p);
    free(p.p);
    free(px);
}

/* ---- resampling against a naive reference ---- */

static double ref_filter(ImageFilter f, double x)
{
    x = fabs(x);
    switch (f) {
    case IMAGE_FILTER_BILINEAR: return x < 1 ? 1 - x : 0;
    case IMAGE_FILTER_BICUBIC: return x < 1 ? (1.5 * x - 2.5) * x * x + 1 : x < 2 ? ((-0.5 * x + 2.5) * x - 4) * x + 2 : 0;
    case IMAGE_FILTER_LANCZOS: {
        if (x >= 3) return 0;
        if (x == 0) return 1;
        double a = M_PI * x;
        return 3 * sin(a) * sin(a / 3) / (a * a);
    }
    default: return x < 0.5 || x == 0.5 ? 1 : 0;
    }
}

static double ref_support(ImageFilter f)
{
    return f == IMAGE_FILTER_BILINEAR ? 1 : f == IMAGE_FILTER_BICUBIC ? 2 : f == IMAGE_FILTER_LANCZOS ? 3 : 0.5;
}

/* Weight of source pixel i for output o along an axis (PIL's definition). */
static void ref_axis(int in, double b0, double blen, int out, ImageFilter f, double *wts /* (out, in) */)
{
    double scale = blen / out, fs = scale < 1 ? 1 : scale, sup = ref_support(f) * fs;
    for (int o = 0; o < out; o++) {
        double c = b0 + (o + 0.5) * scale, sum = 0;
        int lo = (int)(c - sup + 0.5), hi = (int)(c + sup + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        for (int i = 0; i < in; i++) {
            double w = i >= lo && i < hi ? ref_filter(f, (i - c + 0.5) / fs) : 0;
            wts[(size_t)o * in + i] = w;
            sum += w;
        }
        for (int i = 0; i < in; i++) wts[(size_t)o * in + i] /= sum;
    }
}

static void ref_resize(const uint8_t *src, int w, int h, ImageBox box, int ow, int oh, ImageFilter f, double *out)
{
    double *wx = malloc(sizeof(double) * ow * w), *wy = malloc(sizeof(double) * oh * h);
    ref_axis(w, box.x, box.w, ow, f, wx);
    ref_axis(h, box.y, box.h, oh, f, wy);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                double s = 0;
                for (int j = 0; j < h; j++) {
                    if (wy[(size_t)y * w * 0 + (size_t)y * h + j] == 0) continue;
                    for (int i = 0; i < w; i++) s += wy[(size_t)y * h + j] * wx[(size_t)x * w + i] * src[((size_t)j * w + i) * 3 + c];
                }
                out[((size_t)c * oh + y) * ow + x] = s < 0 ? 0 : s > 255 ? 255 : s; /* as an 8-bit image holds it */
            }
    free(wx);
    free(wy);
}

static void test_resize_reference(void **state)
{
    (void)state;
    int W = 57, H = 41;
    Image src = {0};
    src.px = tu_texture_rgb(W, H, 9);
    src.w = W, src.h = H;
    const ImageFilter fs[4] = {IMAGE_FILTER_BILINEAR, IMAGE_FILTER_BICUBIC, IMAGE_FILTER_AREA, IMAGE_FILTER_LANCZOS};
    const ImageBox boxes[3] = {{0, 0, 57, 41}, {5.5f, 3.25f, 30.0f, 22.5f}, {10, 10, 7, 5}};
    const int sizes[3][2] = {{20, 13}, {64, 48}, {31, 31}};
    char err[256];
    for (int fi = 0; fi < 4; fi++)
        for (int bi = 0; bi < 3; bi++)
            for (int si = 0; si < 3; si++) {
                int ow = sizes[si][0], oh = sizes[si][1];
                float *got = malloc(sizeof(float) * 3 * ow * oh), *mir = malloc(sizeof(float) * 3 * ow * oh);
                double *want = malloc(sizeof(double) * 3 * ow * oh);
                assert_int_equal(image_resize_to_float(&src, boxes[bi], ow, oh, fs[fi], 0, got, S, err, sizeof err), 0);
                assert_int_equal(image_resize_to_float(&src, boxes[bi], ow, oh, fs[fi], 1, mir, S, err, sizeof err), 0);
                ref_resize(src.px, W, H, boxes[bi], ow, oh, fs[fi], want);
                double md = 0;
                for (int i = 0; i < 3 * ow * oh; i++) md = fmax(md, fabs(got[i] - want[i]));
                if (md > 2e-3) fprintf(stderr, "filter %s box %d size %d: max diff %g\n", image_filter_name(fs[fi]), bi, si, md);
                assert_true(md <= 2e-3);
                for (int c = 0; c < 3; c++)
                    for (int y = 0; y < oh; y++)
                        for (int x = 0; x < ow; x++)
                            assert_true(mir[((size_t)c * oh + y) * ow + x] == got[((size_t)c * oh + y) * ow + ow - 1 - x]);
                free(got);
                free(mir);
                free(want);
            }
    free(src.px);
}

static void test_resize_identity_flat_u8(void **state)
{
    (void)state;
    int W = 33, H = 21;
    Image src = {0}, dst = {0};
    src.px = tu_texture_rgb(W, H, 2);
    src.w = W, src.h = H;
    char err[256];
    ImageBox full = {0, 0, (float)W, (float)H};
    for (int f = 0; f < IMAGE_FILTER_RANDOM; f++) {
        assert_int_equal(image_resize(&src, full, W, H, (ImageFilter)f, &dst, S, err, sizeof err), 0);
        assert_memory_equal(dst.px, src.px, (size_t)W * H * 3); /* same size: untouched */
    }
    /* a flat image stays flat whatever the scale */
    memset(src.px, 77, (size_t)W * H * 3);
    const int sizes[3][2] = {{5, 4}, {33, 21}, {100, 70}};
    for (int f = 0; f < IMAGE_FILTER_RANDOM; f++)
        for (int k = 0; k < 3; k++) {
            assert_int_equal(image_resize(&src, full, sizes[k][0], sizes[k][1], (ImageFilter)f, &dst, S, err, sizeof err), 0);
            for (int i = 0; i < sizes[k][0] * sizes[k][1] * 3; i++) assert_int_equal(dst.px[i], 77);
        }
    /* shorter side, torchvision's rounding of the longer */
    assert_int_equal(image_resize_shorter(&src, 16, IMAGE_FILTER_BILINEAR, &dst, S, err, sizeof err), 0);
    assert_int_equal(dst.h, 16);
    assert_int_equal(dst.w, 16 * 33 / 21);
    /* a view with a stride reads only its window */
    Image view = src;
    view.px = src.px + (2 * W + 3) * 3;
    view.w = 10, view.h = 8, view.stride = W * 3, view.cap = 0;
    for (int i = 0; i < W * H * 3; i++) src.px[i] = (uint8_t)i;
    ImageBox vb = {0, 0, 10, 8};
    assert_int_equal(image_resize(&view, vb, 10, 8, IMAGE_FILTER_BILINEAR, &dst, S, err, sizeof err), 0);
    for (int y = 0; y < 8; y++) assert_memory_equal(dst.px + y * 30, src.px + ((y + 2) * W + 3) * 3, 30);
    image_free(&dst);
    free(src.px);
}

static void test_to_tensor(void **state)
{
    (void)state;
    Image src = {0};
    int W = 6, H = 4;
    src.px = tu_texture_rgb(W, H, 4);
    src.w = W, src.h = H;
    const float mean[3] = IMAGE_MEAN_RGB, std[3] = IMAGE_STD_RGB;
    float out[3 * 3 * 2];
    image_to_tensor(&src, 2, 1, 3, 2, 1, mean, std, out);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++) {
                int sx = 2 + (2 - x), sy = 1 + y; /* mirrored */
                float want = (src.px[(sy * W + sx) * 3 + c] / 255.0f - mean[c]) / std[c];
                assert_true(fabsf(out[(c * 2 + y) * 3 + x] - want) < 1e-5f);
            }
    free(src.px);
    ImageFilter f;
    assert_int_equal(image_filter_parse("bicubic", &f), 0);
    assert_int_equal(f, IMAGE_FILTER_BICUBIC);
    assert_int_equal(image_filter_parse("cubic", &f), -1);
    assert_string_equal(image_filter_name(IMAGE_FILTER_AREA), "area");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_rgb),
        cmocka_unit_test(test_jpeg_grey),
        cmocka_unit_test(test_jpeg_cmyk_ycck),
        cmocka_unit_test(test_jpeg_region_and_scale),
        cmocka_unit_test(test_png_formats),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_resize_reference),
        cmocka_unit_test(test_resize_identity_flat_u8),
        cmocka_unit_test(test_to_tensor),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
