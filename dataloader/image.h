/* image.h: decoding (JPEG via libjpeg-turbo, PNG via libpng) to 8-bit RGB,
 * antialiased resampling, cropping, mirroring and normalisation to float.
 *
 * The loader builds its training and evaluation transforms from these, and the
 * multi-crop evaluation uses them directly. Decoding never exits or longjmps
 * out: a corrupt, truncated, non-image or oversized input returns -1 with a
 * reason. Buffers grow inside the Image and the ImageScratch a caller keeps, so
 * a steady stream of images allocates nothing beyond what libjpeg needs.
 * No file I/O, no threads, no printing.
 */
#ifndef DATALOADER_IMAGE_H
#define DATALOADER_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* The default normalisation, in ONE place: x = (pixel/255 - mean[c]) / std[c]
 * on RGB. These are the ImageNet statistics torchvision (and the parity and PIL
 * benchmark scripts) use; unit-variance inputs suit the xavier initialisation.
 * Caffe's BGR 0..255 minus (104,117,123) is the same formula with
 * mean = IMAGE_CAFFE_MEAN_RGB and std = 1/255 (channels stay RGB). */
#define IMAGE_MEAN_RGB {0.485f, 0.456f, 0.406f}
#define IMAGE_STD_RGB {0.229f, 0.224f, 0.225f}
#define IMAGE_CAFFE_MEAN_RGB {123.0f / 255, 117.0f / 255, 104.0f / 255}
#define IMAGE_CAFFE_STD_RGB {1.0f / 255, 1.0f / 255, 1.0f / 255}

/* Header pixels (width * height) above this are refused: a decompression bomb. */
#define IMAGE_MAX_PIXELS_DEFAULT (64LL * 1000 * 1000)

typedef enum { IMAGE_FMT_UNKNOWN = 0, IMAGE_FMT_JPEG, IMAGE_FMT_PNG } ImageFormat;

/* Resampling filters. All but NEAREST antialias when shrinking (the kernel is
 * widened by the shrink factor, as PIL does). AREA is a box filter (OpenCV's
 * INTER_AREA when shrinking). RANDOM is not a filter: the loader picks one of
 * NEAREST, BILINEAR, BICUBIC, AREA per sample, as the paper did. */
typedef enum {
    IMAGE_FILTER_NEAREST = 0,
    IMAGE_FILTER_BILINEAR,
    IMAGE_FILTER_BICUBIC,
    IMAGE_FILTER_AREA,
    IMAGE_FILTER_LANCZOS,
    IMAGE_FILTER_RANDOM,
    IMAGE_FILTER_COUNT
} ImageFilter;

/* "nearest", "bilinear", ...; image_filter_parse returns -1 for an unknown name. */
const char *image_filter_name(ImageFilter f);
int image_filter_parse(const char *name, ImageFilter *out);

typedef struct {
    uint8_t *px;      /* (h, w, 3) RGB, row r at px + r * (stride ? stride : 3*w) */
    int w, h;
    int stride;       /* bytes per row; 0: packed (3*w). Lets a view into a
                         larger image be resampled without copying */
    size_t cap;       /* bytes allocated at px (0 for a view) */
    /* Set by image_decode: the stored image size, and how the pixels relate to
     * it. px is the region starting at (x0, y0) of the image scaled by 1/scale
     * (DCT scaling), whose full size is sw x sh. */
    int full_w, full_h;
    int scale;        /* 1, 2, 4 or 8 */
    int sw, sh;       /* the scaled image's size (ceil(full/scale)) */
    int x0, y0;       /* region origin in scaled pixels */
} Image;

void image_free(Image *img); /* frees px; the struct may be reused after */

typedef struct ImageScratch ImageScratch; /* per-thread decoder and resampler state */
ImageScratch *image_scratch_new(void);
void image_scratch_free(ImageScratch *s);

typedef struct {
    /* > 0: the caller needs the shorter side of the region (or of the image
     * when there is no region) to be at least this: JPEGs are then decoded at
     * 1/2, 1/4 or 1/8 scale when that still holds. 0: full size. */
    int min_side;
    /* roi_w > 0: only this box (full-size pixels) is needed; JPEG decoding
     * skips the rows and (up to iMCU alignment) the columns outside it. The
     * decoded region covers the box and may be larger. */
    int roi_x, roi_y, roi_w, roi_h;
    long long max_pixels; /* 0: IMAGE_MAX_PIXELS_DEFAULT */
} ImageDecodeOptions;

/* 0 when a w x h header is within limit pixels (0: IMAGE_MAX_PIXELS_DEFAULT);
 * else -1 with a reason. Check before anything is sized by the header. */
int image_check_pixels(int w, int h, long long limit, char *err, size_t errlen);

/* Format from the magic bytes, whatever the file's name says. */
ImageFormat image_sniff(const uint8_t *data, size_t len);

/* Width and height from the header alone (JPEG SOF, PNG IHDR). */
int image_probe(const uint8_t *data, size_t len, int *w, int *h, ImageFormat *fmt,
                char *err, size_t errlen);

/* Decodes to RGB: grayscale becomes 3 equal channels, CMYK/YCCK JPEGs are
 * converted, PNG palette/16-bit/alpha are expanded, scaled and (alpha) dropped
 * as PIL's convert("RGB") does. opt may be NULL (full image, default limit). */
int image_decode(const uint8_t *data, size_t len, const ImageDecodeOptions *opt,
                 Image *out, ImageScratch *s, char *err, size_t errlen);

/* A box in source pixels; fractional edges are honoured by the resampler. */
typedef struct {
    float x, y, w, h;
} ImageBox;

/* Resamples box of src to dst (out_w x out_h, 8-bit RGB, rounded). The filter
 * reads pixels outside the box when they exist, as PIL's resize(box=) does. */
int image_resize(const Image *src, ImageBox box, int out_w, int out_h, ImageFilter f,
                 Image *dst, ImageScratch *s, char *err, size_t errlen);

/* The size torchvision's Resize(side) gives a w x h image: the shorter side
 * becomes `side`, the longer one side * longer / shorter, truncated. -1 with a
 * reason when a size is not positive, or when the longer side would not fit
 * in an int (an image thousands of times longer than wide), so that no caller
 * computes boxes from a size that overflowed. */
int image_resized_size(int w, int h, int side, int *out_w, int *out_h, char *err, size_t errlen);

/* Resizes the whole image so its shorter side is `side` (the longer one is
 * truncated as torchvision's Resize(int) does). */
int image_resize_shorter(const Image *src, int side, ImageFilter f, Image *dst,
                         ImageScratch *s, char *err, size_t errlen);

/* Cuts the w x h box at (x, y) of src, mirrored left-right when mirror is set,
 * into a normalised float tensor out (3, h, w): (px/255 - mean[c]) / std[c].
 * The box must lie inside src (asserted). */
void image_to_tensor(const Image *src, int x, int y, int w, int h, int mirror,
                     const float mean[3], const float std[3], float *out);

/* The fused path the loader uses: resample box of src straight to a float
 * tensor out (3, out_h, out_w) holding pixel values clamped to 0..255 (not
 * rounded, not normalised), mirrored when mirror is set. */
int image_resize_to_float(const Image *src, ImageBox box, int out_w, int out_h, ImageFilter f,
                          int mirror, float *out, ImageScratch *s, char *err, size_t errlen);

#endif
