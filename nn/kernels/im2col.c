/* im2col.c (kernels): lowering of convolution inputs into GEMM operands and
 * back, for nn/conv.c. Compiled once per instruction set (kernels.h). */
#include <string.h>

#include "nn/kernels/isa.h"

/* col (cin*k*k, p1 - p0) = the patches of output positions [p0, p1) of the
 * flattened (n, ho, wo). A strided layer splits each input row once into its
 * `stride` phases, so that every kernel column is a contiguous copy. */
void ISA(im2col)(const ConvShape *s, const float *x, int n, long p0, long p1, float *col)
{
    long cols = p1 - p0;
    size_t oplane = (size_t)s->ho * s->wo;
    int st = s->stride, wph = (s->w + st - 1) / st;
    float phase[st * wph];
    for (int ci = 0; ci < s->cin; ci++)
        for (int kh = 0; kh < s->k; kh++) {
            float *rows = col + (size_t)(ci * s->k + kh) * s->k * cols;
            for (long p = p0; p < p1;) {
                long img = p / (long)oplane, r = p % (long)oplane;
                int oh = (int)(r / s->wo), ow0 = (int)(r % s->wo);
                int ow1 = p1 - p < s->wo - ow0 ? ow0 + (int)(p1 - p) : s->wo;
                long at = p - p0;
                int ih = oh * st - s->pad + kh;
                p += ow1 - ow0;
                if (ih < 0 || ih >= s->h) {
                    for (int kw = 0; kw < s->k; kw++) memset(rows + kw * cols + at, 0, sizeof(float) * (ow1 - ow0));
                    continue;
                }
                const float *src = x + (((size_t)ci * n + img) * s->h + ih) * s->w;
                int count = s->w; /* columns in the source row (phase) used */
                if (st > 1) {
                    for (int q = 0; q < st; q++)
                        for (int i = 0; i * st + q < s->w; i++) phase[q * wph + i] = src[i * st + q];
                }
                for (int kw = 0; kw < s->k; kw++) {
                    /* input column of output column ow: st * ow + d = st * (ow + off) + q */
                    int d = kw - s->pad, q = ((d % st) + st) % st, off = (d - q) / st;
                    const float *from = src + d;
                    if (st > 1) {
                        count = (s->w - q + st - 1) / st;
                        from = phase + q * wph + off;
                    }
                    int lo = -off > ow0 ? -off : ow0, hi = count - off < ow1 ? count - off : ow1;
                    if (st == 1) {
                        lo = -d > ow0 ? -d : ow0;
                        hi = s->w - d < ow1 ? s->w - d : ow1;
                    }
                    /* a block may cut a row shorter than the padding */
                    if (lo > ow1) lo = ow1;
                    if (hi < lo) hi = lo;
                    float *dst = rows + kw * cols + at - ow0;
                    memset(dst + ow0, 0, sizeof(float) * (lo - ow0));
                    memcpy(dst + lo, from + lo, sizeof(float) * (hi - lo));
                    memset(dst + hi, 0, sizeof(float) * (ow1 - hi));
                }
            }
        }
}

/* Adds the rows of channel ci back into dx (images n0..n0+nc). */
static void col2im_channel(const ConvShape *s, float *dx, const float *col, int n, int n0, int nc, int ci)
{
    size_t plane = (size_t)s->h * s->w, oplane = (size_t)s->ho * s->wo;
    for (int kh = 0; kh < s->k; kh++)
        for (int kw = 0; kw < s->k; kw++) {
            int row = (ci * s->k + kh) * s->k + kw;
            int ow_lo = 0, ow_hi = s->wo;
            while (ow_lo < s->wo && ow_lo * s->stride - s->pad + kw < 0) ow_lo++;
            while (ow_hi > ow_lo && (ow_hi - 1) * s->stride - s->pad + kw >= s->w) ow_hi--;
            const float *src = col + (size_t)row * nc * oplane;
            for (int im = 0; im < nc; im++) {
                float *dst = dx + ((size_t)ci * n + n0 + im) * plane;
                for (int oh = 0; oh < s->ho; oh++, src += s->wo) {
                    int ih = oh * s->stride - s->pad + kh;
                    if (ih < 0 || ih >= s->h) continue;
                    long base = (long)ih * s->w - s->pad + kw;
                    if (s->stride == 1) {
                        for (int ow = ow_lo; ow < ow_hi; ow++) dst[base + ow] += src[ow];
                    } else {
                        for (int ow = ow_lo; ow < ow_hi; ow++) dst[base + (long)ow * s->stride] += src[ow];
                    }
                }
            }
        }
}

void ISA(col2im)(const ConvShape *s, float *dx, const float *col, int n, int n0, int nc, long c0, long c1)
{
    for (long c = c0; c < c1; c++) col2im_channel(s, dx, col, n, n0, nc, (int)c);
}
