/* direct.c (kernels): direct convolution of an input with few channels
 * (conv1: 3 channels, 7x7, stride 2), forward, for nn/conv.c. Compiled once
 * per instruction set (kernels.h).
 *
 * Why not im2col + GEMM here: with K = cin*k*k = 147 and 64 output channels
 * the GEMM is small and thin, and the lowering writes and reads 147 floats per
 * output position. Here an output row is made in registers, VL output columns
 * a vector times KB output channels, from the input rows split once into
 * their `stride` phases (so every kernel column is a contiguous load) and the
 * weights broadcast. Each output is summed in the same order, (c, kh, kw), by
 * either table and any thread count.
 */
#include <string.h>

#include "nn/kernels/isa.h"

/* Output channels per register tile, and vectors of output columns at most. */
#if VL == 16
#define KB 8
#else
#define KB 4
#endif
#define PV_MAX 3

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* Floats of one phase row: every vector of output columns, plus the kernel's
 * reach past them (whole-vector loads stay inside). */
static int phase_len(const ConvShape *s) { return ceil_div(s->wo, VL) * VL + ceil_div(s->k, s->stride); }

/* P[q][i] = the zero-padded input row at column i*stride + q - pad, for
 * i < len: the row placed in a zeroed buffer at its padding, then (stride 2)
 * split into its even and odd floats. */
static void split_row(const ConvShape *s, const float *xr, float *p, int len)
{
    int st = s->stride, span = st * len, cols = s->w < span - s->pad ? s->w : span - s->pad;
    if (st == 1) {
        memset(p, 0, sizeof(float) * len);
        if (cols > 0) memcpy(p + s->pad, xr, sizeof(float) * cols);
        return;
    }
    float tmp[span + 2 * VL];
    memset(tmp, 0, sizeof tmp);
    if (cols > 0) memcpy(tmp + s->pad, xr, sizeof(float) * cols);
    int i = 0;
    for (; i + VL <= len; i += VL) {
        vf a = vload(tmp + 2 * i), b = vload(tmp + 2 * i + VL);
        vstore(p + i, __builtin_shufflevector(a, b, EVENS));
        vstore(p + len + i, __builtin_shufflevector(a, b, ODDS));
    }
    for (; i < len; i++) {
        p[i] = tmp[2 * i];
        p[len + i] = tmp[2 * i + 1];
    }
}

/* One register tile: output channels k0..k0+KB-1 (weights wp, packed
 * [c][kh][kw][KB]) at output columns [v0*VL, (v0+PV)*VL) of one output row.
 * rows[c*k + kh]: the phase rows of input row oh*stride - pad + kh, or NULL
 * where that row is padding. */
static inline __attribute__((always_inline)) void tile(const ConvShape *s, const float *const *rows,
                                                       const float *wp, int v0, const int PV, vf acc[KB][PV_MAX],
                                                       const int k, const int st, const int cin)
{
    int len = phase_len(s);
    for (int b = 0; b < KB; b++)
        for (int v = 0; v < PV; v++) acc[b][v] = vzero();
    for (int c = 0; c < cin; c++)
        for (int kh = 0; kh < k; kh++) {
            const float *p = rows[c * k + kh];
            const float *w = wp + (size_t)(c * k + kh) * k * KB;
            if (!p) continue;
            p += v0 * VL;
#pragma GCC unroll 8
            for (int kw = 0; kw < k; kw++, w += KB) {
                const float *src = p + (size_t)(kw % st) * len + kw / st;
                vf xv[PV_MAX];
                for (int v = 0; v < PV; v++) xv[v] = vload(src + v * VL);
                for (int b = 0; b < KB; b++) {
                    vf wv = vset1(w[b]);
                    for (int v = 0; v < PV; v++) acc[b][v] += wv * xv[v];
                }
            }
        }
}

/* acc + bias, ReLU, into the output rows of channels k0.. (those below cout). */
static inline __attribute__((always_inline)) void tile_store(const ConvShape *s, vf acc[KB][PV_MAX], const int PV,
                                                             int k0, int v0, const float *bias, int relu,
                                                             float *yrow, size_t cstride)
{
    for (int b = 0; b < KB && k0 + b < s->cout; b++) {
        vf bv = vset1(bias ? bias[k0 + b] : 0.0f);
        float *yr = yrow + (size_t)(k0 + b) * cstride;
        for (int v = 0; v < PV; v++) {
            vf o = acc[b][v] + bv;
            if (relu) o = vmax0(o);
            int col = (v0 + v) * VL;
            if (col + VL <= s->wo) vstore(yr + col, o);
            else vstore_mask(yr + col, viota() < s->wo - col, o);
        }
    }
}

/* The tiles of one output row; K, ST, CIN: s's k, stride and cin, as constants
 * where the caller knows them (the loops over the taps unrolled). */
static inline __attribute__((always_inline)) void row_tiles_k(const ConvShape *s, const float *const *rows,
                                                              const float *wpack, const float *bias, int relu,
                                                              float *yrow, size_t cstride, const int K, const int ST,
                                                              const int CIN)
{
    int nv = ceil_div(s->wo, VL);
    size_t wstride = (size_t)s->cin * s->k * s->k * KB;
    for (int k0 = 0; k0 < s->cout; k0 += KB) {
        const float *wp = wpack + (size_t)(k0 / KB) * wstride;
        vf acc[KB][PV_MAX];
        for (int v0 = 0; v0 < nv;) {
            /* 3 vectors a tile, 2 + 2 rather than 3 + 1 */
            int left = nv - v0, pv = left == 4 ? 2 : left < PV_MAX ? left : PV_MAX;
            if (pv == 3) {
                tile(s, rows, wp, v0, 3, acc, K, ST, CIN);
                tile_store(s, acc, 3, k0, v0, bias, relu, yrow, cstride);
            } else if (pv == 2) {
                tile(s, rows, wp, v0, 2, acc, K, ST, CIN);
                tile_store(s, acc, 2, k0, v0, bias, relu, yrow, cstride);
            } else {
                tile(s, rows, wp, v0, 1, acc, K, ST, CIN);
                tile_store(s, acc, 1, k0, v0, bias, relu, yrow, cstride);
            }
            v0 += pv;
        }
    }
}

static void row_tiles(const ConvShape *s, const float *const *rows, const float *wpack, const float *bias,
                      int relu, float *yrow, size_t cstride)
{
    /* conv1/7x7_s2 on RGB */
    if (s->k == 7 && s->stride == 2 && s->cin == 3)
        row_tiles_k(s, rows, wpack, bias, relu, yrow, cstride, 7, 2, 3);
    else
        row_tiles_k(s, rows, wpack, bias, relu, yrow, cstride, s->k, s->stride, s->cin);
}

/* Weights as [k0 / KB][c][kh][kw][KB], zero past cout: what tile() reads. */
void ISA(direct_pack)(const ConvShape *s, const float *wt, float *wpack)
{
    int kk = s->k * s->k, cin = s->cin;
    for (int k0 = 0; k0 < s->cout; k0 += KB)
        for (int e = 0; e < cin * kk; e++)
            for (int b = 0; b < KB; b++)
                wpack[((size_t)(k0 / KB) * cin * kk + e) * KB + b] =
                    k0 + b < s->cout ? wt[(size_t)(k0 + b) * cin * kk + e] : 0.0f;
}

/* rows[c*k + kh] for output row oh of image img: the input rows split into
 * phases in the ring (cin*k slots, slot c*k + ih % k), split only when the
 * slot does not hold them already (tag: which (image, input row) a slot
 * holds, -1 none); NULL where a row is padding. */
static void ring_rows(const ConvShape *s, const float *x, int n, int img, int oh, float *ring, long *tag,
                      const float **rows)
{
    int k = s->k, len = phase_len(s);
    size_t plane = (size_t)s->h * s->w, slot_floats = (size_t)s->stride * len;
    for (int c = 0; c < s->cin; c++)
        for (int kh = 0; kh < k; kh++) {
            int ih = oh * s->stride - s->pad + kh;
            if (ih < 0 || ih >= s->h) {
                rows[c * k + kh] = NULL;
                continue;
            }
            int slot = c * k + ih % k;
            float *p = ring + (size_t)slot * slot_floats;
            long want = (long)img * s->h + ih;
            if (tag[slot] != want) {
                split_row(s, x + ((size_t)c * n + img) * plane + (size_t)ih * s->w, p, len);
                tag[slot] = want;
            }
            rows[c * k + kh] = p;
        }
}

/* Output rows [r0, r1) of the flattened (n, ho). Input rows are split into
 * phases once and kept in a ring of k per channel (consecutive output rows
 * share k - stride of them). */
void ISA(direct_forward)(const ConvShape *s, const float *x, const float *wt, const float *bias, int relu,
                         float *y, int n, long r0, long r1, float *scratch)
{
    int slots = s->cin * s->k;
    size_t oplane = (size_t)s->ho * s->wo;
    float *ring = scratch, *wpack = scratch + (size_t)slots * s->stride * phase_len(s);
    ISA(direct_pack)(s, wt, wpack);
    long tag[slots];
    for (int i = 0; i < slots; i++) tag[i] = -1;
    const float *rows[slots];
    for (long r = r0; r < r1; r++) {
        int img = (int)(r / s->ho), oh = (int)(r % s->ho);
        ring_rows(s, x, n, img, oh, ring, tag, rows);
        row_tiles(s, rows, wpack, bias, relu, y + (size_t)img * oplane + (size_t)oh * s->wo, (size_t)n * oplane);
    }
}

/* One output row for a caller that takes rows one at a time: channel k of
 * row oh of image img at yrow + k * cstride. */
void ISA(direct_row)(const ConvShape *s, const float *x, int n, int img, int oh, const float *wpack,
                     const float *bias, int relu, float *yrow, size_t cstride, float *ring, long *tag)
{
    const float *rows[s->cin * s->k];
    ring_rows(s, x, n, img, oh, ring, tag, rows);
    row_tiles(s, rows, wpack, bias, relu, yrow, cstride);
}

/* ---- the weight gradient: dw[k][c][kh][kw] = sum over output positions of
 * dy[k] times the input under tap (c, kh, kw) ----
 * A group of consecutive output rows of one image at a time: its input rows
 * split into phases once, then for each tile of output channels x taps the
 * products of every position of the group summed in registers, lanes of 16
 * columns (two vectors on AVX2, so that each lane sums the same columns in the
 * same order in both tables), each lane total folded in a fixed tree and
 * added to the caller's partial sums. */

#define HALVES (16 / VL)
#if VL == 16
#define DW_KB 4
#define DW_TB 6
#else
#define DW_KB 2
#define DW_TB 3
#endif

/* The sum of the 16 lanes lo (AVX-512), or lo and hi (AVX2: lanes 0-7 and
 * 8-15), in the same tree on both tables: the halves added, then 4, 2 and 1
 * lanes apart. By value: an address taken would keep the sums in memory. */
static inline __attribute__((always_inline)) float fold16(vf lo, vf hi)
{
#if VL == 16
    (void)hi;
    vf t = lo + __builtin_shufflevector(lo, lo, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
#else
    vf t = lo + hi;
#endif
    float q0 = t[0] + t[4], q1 = t[1] + t[5], q2 = t[2] + t[6], q3 = t[3] + t[7];
    return (q0 + q2) + (q1 + q3);
}

/* One tile: output channels k0.. (DW_KB) x taps t0.. (TB) over the group's
 * rows. dyr[r]: row r's dy of channel 0 (channels kstride apart); off[r][t]:
 * where tap t's input for output column 0 starts in buf. */
static inline __attribute__((always_inline)) void dw_tile(const ConvShape *s, int rows, const float *const *dyr,
                                                          size_t kstride, int k0, const int *off, int taps,
                                                          const float *buf, int t0, const int TB, const int MASK,
                                                          float *partial)
{
    vf acc[DW_KB][DW_TB][HALVES];
    #pragma GCC unroll 8
    for (int b = 0; b < DW_KB; b++)
        #pragma GCC unroll 8
        for (int t = 0; t < TB; t++)
            #pragma GCC unroll 8
            for (int h = 0; h < HALVES; h++) acc[b][t][h] = vzero();
    for (int r = 0; r < rows; r++) {
        const int *o = off + (size_t)r * taps + t0;
        for (int col = 0; col < s->wo; col += 16) {
            /* one path through the loop (all loads masked when a row ends
             * inside a lane group), so that the sums stay in registers */
            vf d[DW_KB][HALVES];
            #pragma GCC unroll 8
            for (int h = 0; h < HALVES; h++) {
                vi on = viota() < s->wo - col - h * VL;
                #pragma GCC unroll 8
                for (int b = 0; b < DW_KB; b++) {
                    const float *p = dyr[r] + (size_t)(k0 + b) * kstride + col + h * VL;
                    d[b][h] = MASK ? vload_mask(p, on) : vload(p);
                }
            }
            #pragma GCC unroll 8
            for (int t = 0; t < TB; t++)
                #pragma GCC unroll 8
                for (int h = 0; h < HALVES; h++) {
                    vf xv = vload(buf + o[t] + col + h * VL);
                    #pragma GCC unroll 8
                    for (int b = 0; b < DW_KB; b++) acc[b][t][h] += d[b][h] * xv;
                }
        }
    }
    #pragma GCC unroll 8
    for (int b = 0; b < DW_KB; b++)
        #pragma GCC unroll 8
        for (int t = 0; t < TB; t++)
            partial[(size_t)(k0 + b) * taps + t0 + t] += fold16(acc[b][t][0], acc[b][t][HALVES - 1]);
}

/* Floats of phase rows per input row, and input rows a group of `rows`
 * output rows reads. */
static int dw_row_floats(const ConvShape *s) { return s->stride * (ceil_div(s->wo, 16) * 16 + ceil_div(s->k, s->stride)); }

/* partial (cout, cin*k*k) += the weight gradient of output rows [oh0, oh1)
 * of image img. cout is a multiple of 4. scratch: (cin * ((oh1 - oh0 - 1) *
 * stride + k) + 1) * dw_row_floats floats, plus an int per row and tap. */
void ISA(direct_weights)(const ConvShape *s, const float *x, const float *dy, int n, int img, int oh0, int oh1,
                         float *partial, float *scratch)
{
    int k = s->k, st = s->stride, taps = s->cin * k * k, rows = oh1 - oh0, len = dw_row_floats(s) / st;
    int first = oh0 * st - s->pad, span = (rows - 1) * st + k;
    size_t rf = (size_t)dw_row_floats(s), plane = (size_t)s->h * s->w, oplane = (size_t)s->ho * s->wo;
    float *zero = scratch;
    memset(zero, 0, rf * sizeof(float));
    int *off = (int *)(scratch + rf * (1 + (size_t)s->cin * span));
    for (int c = 0; c < s->cin; c++)
        for (int i = 0; i < span; i++) {
            int ih = first + i;
            if (ih >= 0 && ih < s->h)
                split_row(s, x + ((size_t)c * n + img) * plane + (size_t)ih * s->w, scratch + rf * (1 + (size_t)c * span + i),
                          len);
        }
    const float *dyr[rows];
    for (int r = 0; r < rows; r++) {
        dyr[r] = dy + (size_t)img * oplane + (size_t)(oh0 + r) * s->wo;
        for (int c = 0; c < s->cin; c++)
            for (int kh = 0; kh < k; kh++) {
                int i = r * st + kh, ih = first + i;
                size_t row = ih >= 0 && ih < s->h ? rf * (1 + (size_t)c * span + i) : 0;
                for (int kw = 0; kw < k; kw++)
                    off[(size_t)r * taps + (c * k + kh) * k + kw] = (int)(row + (size_t)(kw % st) * len + kw / st);
            }
    }
    size_t kstride = (size_t)n * oplane;
    for (int k0 = 0; k0 < s->cout; k0 += DW_KB) {
        int t0 = 0;
        if (s->wo % 16 == 0) {
            for (; t0 + DW_TB <= taps; t0 += DW_TB)
                dw_tile(s, rows, dyr, kstride, k0, off, taps, scratch, t0, DW_TB, 0, partial);
            for (; t0 < taps; t0++) dw_tile(s, rows, dyr, kstride, k0, off, taps, scratch, t0, 1, 0, partial);
        } else {
            for (; t0 + DW_TB <= taps; t0 += DW_TB)
                dw_tile(s, rows, dyr, kstride, k0, off, taps, scratch, t0, DW_TB, 1, partial);
            for (; t0 < taps; t0++) dw_tile(s, rows, dyr, kstride, k0, off, taps, scratch, t0, 1, 1, partial);
        }
    }
}
