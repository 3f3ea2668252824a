/* lrn.c (kernels): cross-channel LRN over strips of positions, for nn/lrn.c,
 * which hands each thread its strips. Compiled once per instruction set
 * (kernels.h). Within a strip the channels are walked in order; every sum
 * over the window is made afresh in channel order (no running sums, whose
 * rounding would depend on the channels that left), from rows that stay in
 * L1. */
#include <math.h>
#include <string.h>

#include "nn/kernels/isa.h"

/* out[i] = scale[i]^-beta, and when inv is given inv[i] = 1 / scale[i], with
 * the beta test outside the loops so they vectorise. For beta = 0.75 both
 * come from r = 1/sqrt(s): s^-0.75 = r sqrt(r), 1/s = r^2 (no division). */
static void pow_neg_beta(float *out, float *inv, const float *scale, int len, float beta)
{
    if (beta == 0.75f) {
        int i = 0;
        for (; i + VL <= len; i += VL) {
            vf s = vload(scale + i), r = vrsqrt(s);
            r = r * (1.5f - 0.5f * s * r * r); /* one Newton step */
            vstore(out + i, r * vsqrt(r));
            if (inv) vstore(inv + i, r * r);
        }
        for (; i < len; i++) {
            float r = sqrtf(scale[i]);
            out[i] = 1.0f / (r * sqrtf(r));
            if (inv) inv[i] = 1.0f / scale[i];
        }
    } else {
        for (int i = 0; i < len; i++) out[i] = powf(scale[i], -beta);
        if (inv)
            for (int i = 0; i < len; i++) inv[i] = 1.0f / scale[i];
    }
}

/* scale[i] = k + (alpha / size) sum_{c' in window(c)} x_c'^2 over positions [p, p + len). */
static void scale_row(const LrnShape *s, const float *x, int c, size_t p, int len, float *scale)
{
    int half = s->size / 2;
    int c0 = c - half < 0 ? 0 : c - half, c1 = c + half >= s->c ? s->c - 1 : c + half;
    float a = s->alpha / (float)s->size;
    for (int i = 0; i < len; i++) scale[i] = 0.0f;
    for (int cc = c0; cc <= c1; cc++) {
        const float *xr = x + (size_t)cc * s->plane + p;
        for (int i = 0; i < len; i++) scale[i] += xr[i] * xr[i];
    }
    for (int i = 0; i < len; i++) scale[i] = s->k + a * scale[i];
}

/* ---- beta 0.75 in one pass a vector at a time: the window's sum, its scale
 * and the power from registers, the same operations in the same order as
 * scale_row and pow_neg_beta (so the same bits) ---- */

/* f = s^-0.75 of the window of channels [c0, c1] at x0 (channel c0), and
 * *inv = 1 / s. With MASK only the lanes that are on are read (the others
 * see zeros). */
static inline __attribute__((always_inline)) vf window_f075_m(const LrnShape *s, const float *x0, int c0, int c1,
                                                              vf *inv, const int MASK, vi on)
{
    vf sum = vzero();
    for (int cc = c0; cc <= c1; cc++, x0 += s->plane) {
        vf v = MASK ? vload_mask(x0, on) : vload(x0);
        sum += v * v;
    }
    vf sc = s->k + s->alpha / (float)s->size * sum, r = vrsqrt(sc);
    r = r * (1.5f - 0.5f * sc * r * r); /* one Newton step */
    *inv = r * r;
    return r * vsqrt(r);
}

static inline __attribute__((always_inline)) vf window_f075(const LrnShape *s, const float *x0, int c0, int c1,
                                                            vf *inv)
{
    return window_f075_m(s, x0, c0, c1, inv, 0, viota());
}

/* The same for one position (the tail of a strip). */
static float window_f075_one(const LrnShape *s, const float *x0, int c0, int c1, float *inv)
{
    float sum = 0.0f;
    for (int cc = c0; cc <= c1; cc++, x0 += s->plane) sum += *x0 * *x0;
    float sc = s->k + s->alpha / (float)s->size * sum, r = sqrtf(sc);
    *inv = 1.0f / sc;
    return 1.0f / (r * sqrtf(r));
}

/* The channels of c's window. */
static void window_of(const LrnShape *s, int c, int *c0, int *c1)
{
    int half = s->size / 2;
    *c0 = c - half < 0 ? 0 : c - half;
    *c1 = c + half >= s->c ? s->c - 1 : c + half;
}

/* y = x s^-0.75 for channel c at positions [p, p + len). */
static void forward_row_075(const LrnShape *s, const float *x, float *y, int c, size_t p, int len)
{
    int c0, c1;
    window_of(s, c, &c0, &c1);
    const float *xc = x + (size_t)c * s->plane + p, *x0 = x + (size_t)c0 * s->plane + p;
    float *yr = y + (size_t)c * s->plane + p;
    int i = 0;
    vf inv;
    float inv1;
    for (; i + VL <= len; i += VL) vstore(yr + i, vload(xc + i) * window_f075(s, x0 + i, c0, c1, &inv));
    for (; i < len; i++) yr[i] = xc[i] * window_f075_one(s, x0 + i, c0, c1, &inv1);
}

void ISA(lrn_forward)(const LrnArgs *j, long b, long e)
{
    const LrnShape *s = j->s;
    float scale[LRN_STRIP], f[LRN_STRIP];
    for (long p = b * LRN_STRIP; p < e * LRN_STRIP && (size_t)p < s->plane; p += LRN_STRIP) {
        int len = (size_t)p + LRN_STRIP <= s->plane ? LRN_STRIP : (int)(s->plane - p);
        for (int c = 0; c < s->c; c++) {
            if (s->beta == 0.75f) {
                forward_row_075(s, j->x, j->out, c, (size_t)p, len);
                continue;
            }
            scale_row(s, j->x, c, (size_t)p, len, scale);
            pow_neg_beta(f, NULL, scale, len, s->beta);
            const float *xr = j->x + (size_t)c * s->plane + p;
            float *yr = j->out + (size_t)c * s->plane + p;
            for (int i = 0; i < len; i++) yr[i] = xr[i] * f[i];
        }
    }
}

/* The position of a plane from which lrn_forward's strips compute one
 * position at a time: the last strip's floats past its whole vectors. */
static size_t scalar_from(size_t plane)
{
    size_t last = (plane - 1) / LRN_STRIP * LRN_STRIP;
    return last + (plane - last) / VL * VL;
}

/* Positions [q0, q0 + len) of the plane, beta 0.75: whole vectors, the last
 * one masked, then those from scalar_from on again one at a time, as the
 * strips compute them. xs: s with the stride of x. */
static void span_075(const LrnShape *s, const LrnShape *xs, const float *x, float *y, size_t ystride, size_t q0,
                     int len)
{
    size_t tail = scalar_from(s->plane);
    vf inv;
    float inv1;
    for (int c = 0; c < s->c; c++) {
        int c0, c1;
        window_of(s, c, &c0, &c1);
        const float *xc = x + (size_t)c * xs->plane, *x0 = x + (size_t)c0 * xs->plane;
        /* the channel that enters the window next: a span is a short run of
         * each channel, too short for the hardware prefetchers to follow */
        const float *xn = x + (size_t)(c1 + 1 < s->c ? c1 + 1 : c1) * xs->plane;
        float *yr = y + (size_t)c * ystride;
        int i = 0;
        for (; i + VL <= len; i += VL) {
            __builtin_prefetch(xn + i);
            vstore(yr + i, vload(xc + i) * window_f075(xs, x0 + i, c0, c1, &inv));
        }
        if (i < len) {
            vi on = viota() < len - i;
            vf f = window_f075_m(xs, x0 + i, c0, c1, &inv, 1, on);
            vstore_mask(yr + i, on, vload_mask(xc + i, on) * f);
        }
        for (size_t t = q0 < tail ? tail - q0 : 0; t < (size_t)len; t++)
            yr[t] = xc[t] * window_f075_one(xs, x0 + t, c0, c1, &inv1);
    }
}

/* The positions [q0, q0 + len) of a plane of s->plane positions, with the
 * bits lrn_forward gives them: x channel c at x + c * xstride, y likewise at
 * ystride. For a caller that normalises a row at a time (nn/fuse.c). */
void ISA(lrn_forward_span)(const LrnShape *s, const float *x, size_t xstride, float *y, size_t ystride, size_t q0,
                           int len)
{
    LrnShape xs = *s;
    xs.plane = xstride;
    if (s->beta == 0.75f) {
        span_075(s, &xs, x, y, ystride, q0, len);
        return;
    }
    float scale[LRN_STRIP], f[LRN_STRIP];
    for (int p = 0; p < len; p += LRN_STRIP) {
        int l = len - p < LRN_STRIP ? len - p : LRN_STRIP;
        for (int c = 0; c < s->c; c++) {
            scale_row(&xs, x, c, (size_t)p, l, scale);
            pow_neg_beta(f, NULL, scale, l, s->beta);
            const float *xr = x + (size_t)c * xstride + p;
            float *yr = y + (size_t)c * ystride + p;
            for (int i = 0; i < l; i++) yr[i] = xr[i] * f[i];
        }
    }
}

/* With y_c = x_c f_c, f_c = scale_c^-beta:
 *   dx_c = dy_c f_c - (2 alpha beta / size) x_c sum_{c' near c} dy_c' x_c' f_c' / scale_c'
 * The ratio rows (dy x f / scale) and f rows of the window live in rings of
 * `size` rows; each channel's are made once, when it enters c's window. */
/* beta 0.75, channel `made` entering the window: its f row and its ratio row
 * dy x f / scale in one pass (the operations of the general path, fused). */
static void backward_made_075(const LrnShape *s, const LrnArgs *j, int made, size_t p, int len, float *f,
                              float *ratio)
{
    int c0, c1;
    window_of(s, made, &c0, &c1);
    const float *x0 = j->x + (size_t)c0 * s->plane + p, *xr = j->x + (size_t)made * s->plane + p;
    const float *dyr = j->dy + (size_t)made * s->plane + p;
    int i = 0;
    for (; i + VL <= len; i += VL) {
        vf inv, fv = window_f075(s, x0 + i, c0, c1, &inv);
        vstore(f + i, fv);
        vstore(ratio + i, vload(dyr + i) * vload(xr + i) * fv * inv);
    }
    for (; i < len; i++) {
        float inv;
        f[i] = window_f075_one(s, x0 + i, c0, c1, &inv);
        ratio[i] = dyr[i] * xr[i] * f[i] * inv;
    }
}

/* dx of channel c from the ratio rows of its window, in one pass. */
static void backward_dx(const LrnShape *s, const LrnArgs *j, int c, size_t p, int len,
                        float ratios[][LRN_STRIP], const float *f, float coef)
{
    int ring = s->size, c0, c1;
    window_of(s, c, &c0, &c1);
    const float *xr = j->x + (size_t)c * s->plane + p, *dyr = j->dy + (size_t)c * s->plane + p;
    float *dxr = j->out + (size_t)c * s->plane + p;
    int i = 0;
    for (; i + VL <= len; i += VL) {
        vf acc = vzero();
        for (int cc = c0; cc <= c1; cc++) acc += vload(ratios[cc % ring] + i);
        vf d = vload(dyr + i) * vload(f + i) - coef * vload(xr + i) * acc;
        vstore(dxr + i, j->accum ? vload(dxr + i) + d : d);
    }
    for (; i < len; i++) {
        float acc = 0.0f;
        for (int cc = c0; cc <= c1; cc++) acc += ratios[cc % ring][i];
        float d = dyr[i] * f[i] - coef * xr[i] * acc;
        dxr[i] = j->accum ? dxr[i] + d : d;
    }
}

void ISA(lrn_backward)(const LrnArgs *j, long b, long e)
{
    const LrnShape *s = j->s;
    int half = s->size / 2, ring = s->size;
    float ratios[LRN_MAX_SIZE][LRN_STRIP], fs[LRN_MAX_SIZE][LRN_STRIP], acc[LRN_STRIP], scale[LRN_STRIP];
    float coef = 2.0f * s->alpha * s->beta / (float)s->size;
    for (long p = b * LRN_STRIP; p < e * LRN_STRIP && (size_t)p < s->plane; p += LRN_STRIP) {
        int len = (size_t)p + LRN_STRIP <= s->plane ? LRN_STRIP : (int)(s->plane - p);
        int made = 0;
        if (s->beta == 0.75f) {
            for (int c = 0; c < s->c; c++) {
                for (; made < s->c && made <= c + half; made++)
                    backward_made_075(s, j, made, (size_t)p, len, fs[made % ring], ratios[made % ring]);
                backward_dx(s, j, c, (size_t)p, len, ratios, fs[c % ring], coef);
            }
            continue;
        }
        for (int c = 0; c < s->c; c++) {
            for (; made < s->c && made <= c + half; made++) {
                int r = made % ring;
                scale_row(s, j->x, made, (size_t)p, len, scale);
                pow_neg_beta(fs[r], scale, scale, len, s->beta); /* scale becomes 1 / scale */
                const float *xr = j->x + (size_t)made * s->plane + p, *dyr = j->dy + (size_t)made * s->plane + p;
                for (int i = 0; i < len; i++) ratios[r][i] = dyr[i] * xr[i] * fs[r][i] * scale[i];
            }
            int c0 = c - half < 0 ? 0 : c - half, c1 = c + half >= s->c ? s->c - 1 : c + half;
            memset(acc, 0, sizeof(float) * len);
            for (int cc = c0; cc <= c1; cc++) {
                const float *r = ratios[cc % ring];
                for (int i = 0; i < len; i++) acc[i] += r[i];
            }
            const float *f = fs[c % ring];
            const float *xr = j->x + (size_t)c * s->plane + p, *dyr = j->dy + (size_t)c * s->plane + p;
            float *dxr = j->out + (size_t)c * s->plane + p;
            if (j->accum)
                for (int i = 0; i < len; i++) dxr[i] += dyr[i] * f[i] - coef * xr[i] * acc[i];
            else
                for (int i = 0; i < len; i++) dxr[i] = dyr[i] * f[i] - coef * xr[i] * acc[i];
        }
    }
}
