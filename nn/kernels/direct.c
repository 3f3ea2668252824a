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

/* P[q][i] = the zero-padded input row at column i*stride + q - pad. */
static void split_row(const ConvShape *s, const float *xr, float *p)
{
    int st = s->stride, len = phase_len(s);
    for (int q = 0; q < st; q++) {
        float *pq = p + (size_t)q * len;
        for (int i = 0; i < len; i++) {
            int iw = i * st + q - s->pad;
            pq[i] = iw >= 0 && iw < s->w ? xr[iw] : 0.0f;
        }
    }
}

/* One register tile: output channels k0..k0+KB-1 (weights wp, packed
 * [c][kh][kw][KB]) at output columns [v0*VL, (v0+PV)*VL) of one output row.
 * rows[c*k + kh]: the phase rows of input row oh*stride - pad + kh, or NULL
 * where that row is padding. */
static inline __attribute__((always_inline)) void tile(const ConvShape *s, const float *const *rows,
                                                       const float *wp, int v0, const int PV, vf acc[KB][PV_MAX])
{
    int k = s->k, st = s->stride, len = phase_len(s);
    for (int b = 0; b < KB; b++)
        for (int v = 0; v < PV; v++) acc[b][v] = vzero();
    for (int c = 0; c < s->cin; c++)
        for (int kh = 0; kh < k; kh++) {
            const float *p = rows[c * k + kh];
            const float *w = wp + (size_t)(c * k + kh) * k * KB;
            if (!p) continue;
            p += v0 * VL;
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

static void row_tiles(const ConvShape *s, const float *const *rows, const float *wpack, const float *bias,
                      int relu, float *yrow, size_t cstride)
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
                tile(s, rows, wp, v0, 3, acc);
                tile_store(s, acc, 3, k0, v0, bias, relu, yrow, cstride);
            } else if (pv == 2) {
                tile(s, rows, wp, v0, 2, acc);
                tile_store(s, acc, 2, k0, v0, bias, relu, yrow, cstride);
            } else {
                tile(s, rows, wp, v0, 1, acc);
                tile_store(s, acc, 1, k0, v0, bias, relu, yrow, cstride);
            }
            v0 += pv;
        }
    }
}

/* Output rows [r0, r1) of the flattened (n, ho). Input rows are split into
 * phases once and kept in a ring of k per channel (consecutive output rows
 * share k - stride of them). */
void ISA(direct_forward)(const ConvShape *s, const float *x, const float *wt, const float *bias, int relu,
                         float *y, int n, long r0, long r1, float *scratch)
{
    int k = s->k, kk = k * k, cin = s->cin, len = phase_len(s), slots = cin * k;
    size_t plane = (size_t)s->h * s->w, oplane = (size_t)s->ho * s->wo, slot_floats = (size_t)s->stride * len;
    float *ring = scratch, *wpack = scratch + (size_t)slots * slot_floats;
    /* weights as [k0 / KB][c][kh][kw][KB], zero past cout */
    for (int k0 = 0; k0 < s->cout; k0 += KB)
        for (int e = 0; e < cin * kk; e++)
            for (int b = 0; b < KB; b++)
                wpack[((size_t)(k0 / KB) * cin * kk + e) * KB + b] =
                    k0 + b < s->cout ? wt[(size_t)(k0 + b) * cin * kk + e] : 0.0f;
    long tag[slots]; /* which (image, input row) a slot holds, -1 none */
    for (int i = 0; i < slots; i++) tag[i] = -1;
    const float *rows[slots];
    for (long r = r0; r < r1; r++) {
        int img = (int)(r / s->ho), oh = (int)(r % s->ho);
        for (int c = 0; c < cin; c++)
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
                    split_row(s, x + ((size_t)c * n + img) * plane + (size_t)ih * s->w, p);
                    tag[slot] = want;
                }
                rows[c * k + kh] = p;
            }
        row_tiles(s, rows, wpack, bias, relu, y + (size_t)img * oplane + (size_t)oh * s->wo, (size_t)n * oplane);
    }
}
