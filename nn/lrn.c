/* lrn.c: cross-channel LRN (see lrn.h). The positions of a plane are split
 * among threads in strips of STRIP positions; each strip walks the channels
 * keeping the window's sum of squares as a running sum (add the channel that
 * enters, subtract the one that leaves), so every element is squared twice,
 * not `size` times. The running sum rounds differently from a fresh sum; it
 * only feeds scale = k + (alpha/size) sum, with k = 1 >> (alpha/size) sum, so
 * the difference is far below float precision of the scale. beta = 0.75
 * (GoogLeNet's) takes a fast path: s^-0.75 = r * sqrt(r) with r = 1/sqrt(s),
 * r from the hardware estimate refined by one Newton step (relative error
 * below 5e-7). Backward recomputes the scales from x and needs no y. */
#include "nn/lrn.h"

#include <assert.h>
#include <math.h>
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
    const float *x, *dy;
    float *out;
    int accum;
} LrnJob;

/* The running window sum of squares over channels, for one strip: after
 * window_next(c), sum holds sum_{c' in window(c)} x_c'^2. */
typedef struct {
    const LrnShape *s;
    const float *x;
    size_t p;
    int len;
    float sum[STRIP];
} Window;

static void window_start(Window *w, const LrnShape *s, const float *x, size_t p, int len)
{
    w->s = s;
    w->x = x;
    w->p = p;
    w->len = len;
    memset(w->sum, 0, sizeof w->sum);
    int half = s->size / 2;
    /* channels [0, half) enter before channel 0's window is complete */
    for (int c = 0; c < half && c < s->c; c++) {
        const float *xr = x + (size_t)c * s->plane + p;
        for (int i = 0; i < len; i++) w->sum[i] += xr[i] * xr[i];
    }
}

/* Channel c + half enters, c - half - 1 leaves; then scale = k + a * sum. */
static void window_next(Window *w, int c, float *scale)
{
    const LrnShape *s = w->s;
    int half = s->size / 2, in = c + half, out = c - half - 1;
    float a = s->alpha / (float)s->size;
    if (in < s->c) {
        const float *xr = w->x + (size_t)in * s->plane + w->p;
        for (int i = 0; i < w->len; i++) w->sum[i] += xr[i] * xr[i];
    }
    if (out >= 0) {
        const float *xr = w->x + (size_t)out * s->plane + w->p;
        for (int i = 0; i < w->len; i++) w->sum[i] -= xr[i] * xr[i];
    }
    for (int i = 0; i < w->len; i++) scale[i] = s->k + a * w->sum[i];
}

static void forward_range(void *ctx, long b, long e)
{
    const LrnJob *j = ctx;
    const LrnShape *s = j->s;
    float scale[STRIP], f[STRIP];
    Window w;
    for (long p = b * STRIP; p < e * STRIP && (size_t)p < s->plane; p += STRIP) {
        int len = (size_t)p + STRIP <= s->plane ? STRIP : (int)(s->plane - p);
        window_start(&w, s, j->x, (size_t)p, len);
        for (int c = 0; c < s->c; c++) {
            window_next(&w, c, scale);
            pow_neg_beta(f, scale, len, s->beta);
            const float *xr = j->x + (size_t)c * s->plane + p;
            float *yr = j->out + (size_t)c * s->plane + p;
            for (int i = 0; i < len; i++) yr[i] = xr[i] * f[i];
        }
    }
}

/* With y_c = x_c f_c, f_c = scale_c^-beta:
 *   dx_c = dy_c f_c - (2 alpha beta / size) x_c sum_{c' near c} dy_c' x_c' f_c' / scale_c'
 * The ratio rows (dy x f / scale) of the window live in a ring of `size` rows;
 * each channel's scale and f are computed once, f kept for its own dx. */
static void backward_range(void *ctx, long b, long e)
{
    const LrnJob *j = ctx;
    const LrnShape *s = j->s;
    int half = s->size / 2, ring = s->size;
    float ratios[LRN_MAX_SIZE][STRIP], fs[LRN_MAX_SIZE][STRIP], acc[STRIP], scale[STRIP];
    float coef = 2.0f * s->alpha * s->beta / (float)s->size;
    Window w;
    for (long p = b * STRIP; p < e * STRIP && (size_t)p < s->plane; p += STRIP) {
        int len = (size_t)p + STRIP <= s->plane ? STRIP : (int)(s->plane - p);
        window_start(&w, s, j->x, (size_t)p, len);
        /* the ratio row of a channel is made when it enters c's window */
        int made = 0;
        memset(acc, 0, sizeof acc);
        for (int c = 0; c < s->c; c++) {
            /* acc = sum of ratios over [c - half, c + half]: the one that left
             * goes first, as the one entering takes its ring slot */
            if (c - half - 1 >= 0) {
                const float *gone = ratios[(c - half - 1) % ring];
                for (int i = 0; i < len; i++) acc[i] -= gone[i];
            }
            for (; made < s->c && made <= c + half; made++) {
                int r = made % ring;
                window_next(&w, made, scale);
                pow_neg_beta(fs[r], scale, len, s->beta);
                const float *xr = j->x + (size_t)made * s->plane + p, *dyr = j->dy + (size_t)made * s->plane + p;
                for (int i = 0; i < len; i++) ratios[r][i] = dyr[i] * xr[i] * fs[r][i] / scale[i];
                for (int i = 0; i < len; i++) acc[i] += ratios[r][i];
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

void lrn_forward(float *y, const float *x, const LrnShape *s)
{
    LrnJob j = {.s = s, .x = x, .out = y};
    long strips = (long)((s->plane + STRIP - 1) / STRIP);
    parallel_for(strips, 1, forward_range, &j);
}

void lrn_backward(float *dx, const float *dy, const float *x, const LrnShape *s, int accum_dx)
{
    assert(s->size >= 1 && s->size <= LRN_MAX_SIZE && s->size % 2 == 1);
    LrnJob j = {.s = s, .x = x, .dy = dy, .out = dx, .accum = accum_dx};
    long strips = (long)((s->plane + STRIP - 1) / STRIP);
    parallel_for(strips, 1, backward_range, &j);
}
