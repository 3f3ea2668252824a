/* crops.h: the geometry of the evaluation crop schemes (1, 10 and 144 crops)
 * as boxes in the source image, the decode options that let one decode serve
 * every box of an image, and the cut of one box into a normalised tensor. The
 * loader's evaluation transform is the 1-crop scheme (dataloader/loader.c);
 * `googlenet eval` asks the loader for 10 or 144.
 *
 * A box is in full-size source pixels (fractional edges allowed) and is
 * resampled to crop x crop, mirrored left-right when `mirror` is set. The
 * sizes of the paper (Szegedy et al. 2015, "Going deeper with convolutions",
 * section 7 and Table 3; docs/evaluation.md, "Crop schemes") are for crop 224 and are scaled by
 * crop/224: the shorter side goes to round(resize * crop / 224), resize being
 * 256 for 1 and 10 crops and 256, 288, 320, 352 for the 144. The resized image
 * is S x floor(S * long / short), as the loader and torchvision size it.
 *
 *   1:   the centre crop of the image resized to S (exactly the loader's
 *        evaluation transform, decode region and DCT scaling included: it is
 *        that transform).
 *   10:  the 4 corners and the centre of the image resized to S, in that order
 *        (top-left, top-right, bottom-left, bottom-right, centre), then the
 *        same 5 mirrored (torchvision's TenCrop order).
 *   144: for each of the 4 scales, for each of the 3 squares of side S (left,
 *        centre, right; top, centre, bottom for portrait images), the 4 corner
 *        crops, the centre crop and the whole square resized to crop x crop,
 *        each followed by its mirror: 4 x 3 x 6 x 2. A square image has 3 equal
 *        squares whose whole-square box is the whole image at every scale, so
 *        only 42 distinct boxes (still weighted as 144, as in the paper).
 * Centres are at round((S - crop) / 2) (round half away from zero, as the
 * loader does). Pure functions: no I/O, no allocation, no printing.
 */
#ifndef DATALOADER_CROPS_H
#define DATALOADER_CROPS_H

#include <stddef.h>

#include "dataloader/image.h"

#define CROPS_MAX 144

typedef struct {
    double x, y, w, h; /* in full-size source pixels */
    int mirror;
} CropBox;

typedef struct {
    int n;                          /* 1, 10 or 144 */
    CropBox box[CROPS_MAX];
    ImageDecodeOptions decode;      /* region and DCT-scaling hint for image_decode */
} CropPlan;

/* 1 when `crops` is a scheme this module knows (1, 10, 144). */
int crops_valid(int crops);

/* The boxes of scheme `crops` for a fw x fh image at output size `crop`;
 * resize is the 1- and 10-crop resize at crop 224 (256; the loader's
 * eval_resize), filter the resampler (it decides how far outside a box the
 * decode must reach). An image over max_pixels (0: the default limit) is
 * refused, and max_pixels goes into the decode options. Returns 0, or -1 with
 * a reason (an unknown scheme, an empty, too large or too elongated image,
 * resize < 224). */
int crops_plan(int crops, int fw, int fh, int crop, int resize, ImageFilter filter,
                    long long max_pixels, CropPlan *out, char *err, size_t errlen);

/* Filter support in source pixels at a given shrink factor: how far outside a
 * box the resampler reads, so how far around it a decode must reach. */
double crops_filter_reach(ImageFilter f, double shrink);

/* The min_side hint (ImageDecodeOptions) that makes image_decode scale the DCT
 * by the largest d in {8, 4, 2} that keeps a box of shorter side `shorter`
 * at least crop pixels, for a decoded region of shorter side region_short; 0
 * (no scaling) when even d = 2 would be too much. image_decode picks the
 * largest d with region_short / d >= min_side, so region_short / d is it. */
int crops_dct_min_side(double shorter, int crop, int region_short);

/* Resamples box k of plan from the decoded img into out (3, crop, crop),
 * normalised as (px/255 - mean[c]) / std[c]: the same arithmetic as the
 * loader's evaluation transform. Returns 0, or -1 with a reason. */
int crops_cut(const CropPlan *plan, int k, const Image *img, int crop, ImageFilter filter,
                   const float mean[3], const float std[3], float *out, ImageScratch *s,
                   char *err, size_t errlen);

#endif
