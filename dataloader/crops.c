/* crops.c: the boxes of the 1-, 10- and 144-crop schemes and the cut of one
 * box into a normalised tensor. The 1-crop scheme is the loader's evaluation
 * transform (loader.c calls crops_plan and crops_cut), so `eval --crops 1`
 * and a loader in eval mode see the same pixels by construction;
 * tests/test_eval_crops.c checks the loader's batches against direct calls and
 * tests/test_eval.c's by_hand test the crops against its own cut.
 * Must not read files, allocate or print.
 */
#include "dataloader/crops.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int crops_valid(int crops) { return crops == 1 || crops == 10 || crops == 144; }

double crops_filter_reach(ImageFilter f, double shrink)
{
    double s = f == IMAGE_FILTER_LANCZOS ? 3.0 : f == IMAGE_FILTER_BICUBIC ? 2.0 : 1.0;
    return s * (shrink > 1.0 ? shrink : 1.0) + 2.0;
}

/* The image resized so its shorter side is S: Wr x Hr and the source pixels
 * per resized pixel. */
typedef struct {
    int S, Wr, Hr;
    double sx, sy;
} Resized;

static int crops_resized(int fw, int fh, int S, Resized *r, char *err, size_t errlen)
{
    r->S = S;
    if (image_resized_size(fw, fh, S, &r->Wr, &r->Hr, err, errlen) != 0) return -1;
    r->sx = (double)fw / r->Wr;
    r->sy = (double)fh / r->Hr;
    return 0;
}

/* Box (x, y, w, h) of the resized image, in source pixels. */
static CropBox crops_box(const Resized *r, int x, int y, int w, int h, int mirror)
{
    CropBox b = {x * r->sx, y * r->sy, w * r->sx, h * r->sy, mirror};
    return b;
}

static int crops_side(int crop, int at224) { return (int)lround((double)crop * at224 / 224.0); }

int crops_dct_min_side(double shorter, int crop, int region_short)
{
    for (int d = 8; d >= 2; d /= 2)
        if (shorter / d >= crop) return region_short / d > 0 ? region_short / d : 1;
    return 0;
}

/* The decode region (the box plus the filter's reach) and DCT hint for one box. */
static void crops_decode_one(const CropBox *b, double sx, double sy, int crop, ImageFilter filter,
                             ImageDecodeOptions *opt)
{
    double reach = crops_filter_reach(filter, sx > sy ? sx : sy);
    int x0 = (int)floor(b->x - reach), y0 = (int)floor(b->y - reach);
    opt->roi_x = x0 < 0 ? 0 : x0;
    opt->roi_y = y0 < 0 ? 0 : y0;
    opt->roi_w = (int)ceil(b->x + b->w + reach) - opt->roi_x;
    opt->roi_h = (int)ceil(b->y + b->h + reach) - opt->roi_y;
    double shorter = b->w < b->h ? b->w : b->h;
    opt->min_side = crops_dct_min_side(shorter, crop, opt->roi_w < opt->roi_h ? opt->roi_w : opt->roi_h);
}

/* Whole-image decode at the largest 1/d that keeps every box at least crop
 * pixels on its shorter side. */
static void crops_decode_all(const CropPlan *p, int fw, int fh, int crop, ImageDecodeOptions *opt)
{
    double shortest = INFINITY;
    for (int k = 0; k < p->n; k++) {
        double s = p->box[k].w < p->box[k].h ? p->box[k].w : p->box[k].h;
        if (s < shortest) shortest = s;
    }
    opt->roi_x = opt->roi_y = opt->roi_w = opt->roi_h = 0;
    opt->min_side = crops_dct_min_side(shortest, crop, fw < fh ? fw : fh);
}

/* The 4 corners and the centre of a side x side window at (qx, qy) of the
 * resized image. */
static void crops_five(const Resized *r, int qx, int qy, int wside, int hside, int crop, CropBox *out,
                       int stride)
{
    int cx = qx + (int)lround((wside - crop) / 2.0), cy = qy + (int)lround((hside - crop) / 2.0);
    int xs[5] = {qx, qx + wside - crop, qx, qx + wside - crop, cx};
    int ys[5] = {qy, qy, qy + hside - crop, qy + hside - crop, cy};
    for (int i = 0; i < 5; i++) out[i * stride] = crops_box(r, xs[i], ys[i], crop, crop, 0);
}

int crops_plan(int crops, int fw, int fh, int crop, int resize, ImageFilter filter, long long max_pixels,
                    CropPlan *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!crops_valid(crops))
        return snprintf(err, errlen, "%d crops is not a scheme; use 1, 10 or 144", crops), -1;
    if (fw <= 0 || fh <= 0) return snprintf(err, errlen, "cannot crop a %dx%d image", fw, fh), -1;
    if (crop <= 0) return snprintf(err, errlen, "crop %d must be positive", crop), -1;
    if (resize < 224) return snprintf(err, errlen, "resize %d must be at least 224 (sizes are given at crop 224)", resize), -1;
    if (filter < 0 || filter >= IMAGE_FILTER_RANDOM)
        return snprintf(err, errlen, "the evaluation filter must be a fixed one, not '%s'", image_filter_name(filter)), -1;
    /* the limit first: box and region arithmetic is in int, which any image within it fits */
    if (image_check_pixels(fw, fh, max_pixels, err, errlen) != 0) return -1;
    out->n = crops;
    out->decode.max_pixels = max_pixels;
    Resized r;
    if (crops == 1) {
        if (crops_resized(fw, fh, crops_side(crop, resize), &r, err, errlen) != 0) return -1;
        int left = (int)lround((r.Wr - crop) / 2.0), top = (int)lround((r.Hr - crop) / 2.0);
        out->box[0] = crops_box(&r, left, top, crop, crop, 0);
        crops_decode_one(&out->box[0], r.sx, r.sy, crop, filter, &out->decode);
        out->decode.max_pixels = max_pixels;
        return 0;
    }
    if (crops == 10) {
        if (crops_resized(fw, fh, crops_side(crop, resize), &r, err, errlen) != 0) return -1;
        crops_five(&r, 0, 0, r.Wr, r.Hr, crop, out->box, 1);
        for (int i = 0; i < 5; i++) {
            out->box[5 + i] = out->box[i];
            out->box[5 + i].mirror = 1;
        }
    } else {
        static const int scales[4] = {256, 288, 320, 352};
        int k = 0;
        for (int s = 0; s < 4; s++) {
            if (crops_resized(fw, fh, crops_side(crop, scales[s]), &r, err, errlen) != 0) return -1;
            int side = r.Wr < r.Hr ? r.Wr : r.Hr, slack = (r.Wr > r.Hr ? r.Wr : r.Hr) - side;
            int offs[3] = {0, (int)lround(slack / 2.0), slack};
            for (int q = 0; q < 3; q++) {
                int qx = r.Wr >= r.Hr ? offs[q] : 0, qy = r.Wr >= r.Hr ? 0 : offs[q];
                /* 4 corners, centre, whole square; each followed by its mirror */
                crops_five(&r, qx, qy, side, side, crop, out->box + k, 2);
                out->box[k + 10] = crops_box(&r, qx, qy, side, side, 0);
                for (int i = 0; i < 6; i++) {
                    out->box[k + 2 * i + 1] = out->box[k + 2 * i];
                    out->box[k + 2 * i + 1].mirror = 1;
                }
                k += 12;
            }
        }
    }
    crops_decode_all(out, fw, fh, crop, &out->decode);
    out->decode.max_pixels = max_pixels;
    return 0;
}

int crops_cut(const CropPlan *plan, int k, const Image *img, int crop, ImageFilter filter,
                   const float mean[3], const float std[3], float *out, ImageScratch *s, char *err, size_t errlen)
{
    const CropBox *b = &plan->box[k];
    /* the box in decoded-region pixels */
    double sx = (double)img->sw / img->full_w, sy = (double)img->sh / img->full_h;
    double rx = b->x * sx - img->x0, ry = b->y * sy - img->y0, rw = b->w * sx, rh = b->h * sy;
    ImageBox box = {(float)rx, (float)ry, (float)rw, (float)rh};
    if (image_resize_to_float(img, box, crop, crop, filter, b->mirror, out, s, err, errlen) != 0) return -1;
    size_t n = (size_t)crop * crop;
    for (int ch = 0; ch < 3; ch++) {
        float a = 1.0f / (255.0f * std[ch]), c = -mean[ch] / std[ch];
        float *p = out + ch * n;
        for (size_t i = 0; i < n; i++) p[i] = p[i] * a + c;
    }
    return 0;
}
