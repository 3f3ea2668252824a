/* lrn.c: cross-channel LRN (see lrn.h). The positions of a plane are split
 * among threads; each walks all channels for a strip of L positions, keeping
 * the strip's rows in small per-call buffers. beta = 0.75 (GoogLeNet's) takes
 * a fast path: s^-0.75 = r * sqrt(r) with r = 1/sqrt(s), r from the hardware
 * estimate refined by one Newton step (relative error below 5e-7). */
#include "nn/lrn.h"

#include <math.h>
#include <assert.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "nn/parallel.h"

#define STRIP 256

/* out[i] = scale[i]^-beta, with the beta test outside the loops so they vectorise */
static void pow_neg_beta(float *out, const float *scale, int len, float beta)
{
    if (beta == 0.75f) {
        int i = 0;
#ifdef __AVX2__
        const __m256 half = _mm256_set1_ps(0.5f), three_halves = _mm256_set1_ps(1.5f);
        for (; i + 8 <= len; i += 8) {
            __m256 s = _mm256_loadu_ps(scale + i);
            __m256 r = _mm256_rsqrt_ps(s);
            /* r = r (1.5 - 0.5 s r^2) */
            r = _mm256_mul_ps(r, _mm256_fnmadd_ps(_mm256_mul_ps(half, s), _mm256_mul_ps(r, r), three_halves));
            _mm256_storeu_ps(out + i, _mm256_mul_ps(r, _mm256_sqrt_ps(r)));
        }
#endif
        for (; i < len; i++) {
            float r = sqrtf(scale[i]);
            out[i] = 1.0f / (r * sqrtf(r));
        }
    } else {
        for (int i = 0; i < len; i++) out[i] = powf(scale[i], -beta);
    }
}

typedef struct {
    const LrnShape *s;
    const float *x, *y, *dy;
    float *out;
    int accum;
} LrnJob;

/* scale row of channel c for positions [p, p+len) */
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

static void forward_range(void *ctx, long b, long e)
{
    const LrnJob *j = ctx;
    const LrnShape *s = j->s;
    float scale[STRIP], f[STRIP];
    for (long p = b * STRIP; p < e * STRIP && (size_t)p < s->plane; p += STRIP) {
        int len = (size_t)p + STRIP <= s->plane ? STRIP : (int)(s->plane - p);
        for (int c = 0; c < s->c; c++) {
            scale_row(s, j->x, c, p, len, scale);
            pow_neg_beta(f, scale, len, s->beta);
            const float *xr = j->x + (size_t)c * s->plane + p;
            float *yr = j->out + (size_t)c * s->plane + p;
            for (int i = 0; i < len; i++) yr[i] = xr[i] * f[i];
        }
    }
}

/* dx_c = dy_c * scale_c^-beta
 *        - (2 alpha beta / size) * x_c * sum_{c' near c} dy_c' * y_c' / scale_c'
 * The scale and ratio (dy*y/scale) rows of the window live in rings of `size`
 * rows; each channel's scale is computed once. */
static void ratio_row(const LrnJob *j, int c, size_t p, int len, float *scale, float *ratio)
{
    const LrnShape *s = j->s;
    scale_row(s, j->x, c, p, len, scale);
    const float *dyr = j->dy + (size_t)c * s->plane + p, *yr = j->y + (size_t)c * s->plane + p;
    for (int i = 0; i < len; i++) ratio[i] = dyr[i] * yr[i] / scale[i];
}

static void backward_range(void *ctx, long b, long e)
{
    const LrnJob *j = ctx;
    const LrnShape *s = j->s;
    int half = s->size / 2, ring = s->size;
    float scales[LRN_MAX_SIZE][STRIP], ratios[LRN_MAX_SIZE][STRIP], acc[STRIP], f[STRIP];
    float coef = 2.0f * s->alpha * s->beta / (float)s->size;
    for (long p = b * STRIP; p < e * STRIP && (size_t)p < s->plane; p += STRIP) {
        int len = (size_t)p + STRIP <= s->plane ? STRIP : (int)(s->plane - p);
        for (int c = 0; c < half && c < s->c; c++) ratio_row(j, c, p, len, scales[c % ring], ratios[c % ring]);
        for (int c = 0; c < s->c; c++) {
            int cn = c + half;
            if (cn < s->c) ratio_row(j, cn, p, len, scales[cn % ring], ratios[cn % ring]);
            int c0 = c - half < 0 ? 0 : c - half, c1 = c + half >= s->c ? s->c - 1 : c + half;
            memset(acc, 0, sizeof(float) * len);
            for (int cc = c0; cc <= c1; cc++) {
                const float *r = ratios[cc % ring];
                for (int i = 0; i < len; i++) acc[i] += r[i];
            }
            pow_neg_beta(f, scales[c % ring], len, s->beta);
            const float *xr = j->x + (size_t)c * s->plane + p, *dyr = j->dy + (size_t)c * s->plane + p;
            float *dxr = j->out + (size_t)c * s->plane + p;
            if (j->accum)
                for (int i = 0; i < len; i++) dxr[i] += dyr[i] * f[i] - coef * xr[i] * acc[i];
            else
                for (int i = 0; i < len; i++) dxr[i] = dyr[i] * f[i] - coef * xr[i] * acc[i];
        }
    }
}

void lrn_forward(float *y, const float *x, const LrnShape *s)
{
    LrnJob j = {.s = s, .x = x, .out = y};
    long strips = (long)((s->plane + STRIP - 1) / STRIP);
    parallel_for(strips, 1, forward_range, &j);
}

void lrn_backward(float *dx, const float *dy, const float *x, const float *y,
                  const LrnShape *s, int accum_dx)
{
    assert(s->size >= 1 && s->size <= LRN_MAX_SIZE && s->size % 2 == 1);
    LrnJob j = {.s = s, .x = x, .y = y, .dy = dy, .out = dx, .accum = accum_dx};
    long strips = (long)((s->plane + STRIP - 1) / STRIP);
    parallel_for(strips, 1, backward_range, &j);
}
