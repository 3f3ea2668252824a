/* gemm.c (kernels): the forward GEMM of a convolution, Y = act(W X + b), with
 * the bias and ReLU applied in registers on the way to Y: no product scratch
 * and no second pass over it. X is a block's operand, kdim rows of cols
 * floats, ldx apart: a 1x1 layer's input read in place, or im2col's (or a
 * pooling's) block in the thread's scratch. Tiles of MR output channels by
 * NV vectors of columns hold their sums in registers; the weights are read
 * as they are, MR rows at a time (broadcasts), never packed.
 *
 * Every output is one chain of fused multiply-adds over k = 0, 1, ..,
 * kdim - 1, then + bias: the same bits in both tables, and for any split of
 * the columns into blocks or tiles. */
#include "nn/kernels/isa.h"

#if VL == 16
#define MR 8
#else
#define MR 4
#endif
#define NV 3
#define PANEL (NV * VL)
/* Columns taken at a time: their kdim rows of X stay in L2 while every output
 * channel passes over them, and the next ones are prefetched meanwhile. */
#define SUB_BYTES ((size_t)384 << 10)

/* y[r*ldy + j] = act(sum_k w[r][k] x[k*ldx + j] + bias[r]) for r < rows, j
 * < the columns of nv vectors (the last one's lanes `on` when masked). */
INLINE void tile(const float *const *w, int kdim, const float *x, size_t ldx, const int nv, const int masked,
                 vi on, float *y, size_t ldy, int rows, const float *bias, int relu)
{
    vf acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++) acc[r][v] = vzero();
    for (int k = 0; k < kdim; k++) {
        const float *xk = x + (size_t)k * ldx;
        vf xv[NV];
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) xv[v] = masked && v == nv - 1 ? vload_mask(xk + v * VL, on) : vload(xk + v * VL);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            vf wb = vset1(w[r][k]);
#pragma GCC unroll 3
            for (int v = 0; v < nv; v++) acc[r][v] += wb * xv[v];
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        if (r >= rows) break;
        vf b = vset1(bias ? bias[r] : 0.0f);
        float *yr = y + (size_t)r * ldy;
#pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            vf o = acc[r][v] + b;
            if (relu) o = vmax0(o);
            if (masked && v == nv - 1) vstore_mask(yr + v * VL, on, o);
            else vstore(yr + v * VL, o);
        }
    }
}

/* One tile row (MR output channels) over columns [q0, q1). */
static void tile_row(const float *const *w, int kdim, const float *x, size_t ldx, long q0, long q1, float *y,
                     size_t ldy, int rows, const float *bias, int relu)
{
    long p = q0;
    for (; p + PANEL <= q1; p += PANEL)
        tile(w, kdim, x + p, ldx, NV, 0, vlanes(0, VL), y + p, ldy, rows, bias, relu);
    long left = q1 - p;
    if (left <= 0) return;
    int nv = (int)((left + VL - 1) / VL), last = (int)(left - (long)(nv - 1) * VL);
    vi on = vlanes(0, last);
    switch (nv) {
    case 1: tile(w, kdim, x + p, ldx, 1, 1, on, y + p, ldy, rows, bias, relu); break;
    case 2: tile(w, kdim, x + p, ldx, 2, 1, on, y + p, ldy, rows, bias, relu); break;
    default: tile(w, kdim, x + p, ldx, 3, 1, on, y + p, ldy, rows, bias, relu); break;
    }
}

void ISA(gemm_forward)(const ConvOut *outs, int nouts, int kdim, const float *x, size_t ldx, long cols, size_t ldy,
                       size_t y0, int relu)
{
    long sub = (long)(SUB_BYTES / (sizeof(float) * (size_t)kdim)) / PANEL * PANEL;
    if (sub < PANEL) sub = PANEL;
    int tiles = 0;
    for (int o = 0; o < nouts; o++) tiles += (outs[o].cout + MR - 1) / MR;
    for (long q0 = 0; q0 < cols; q0 += sub) {
        long q1 = q0 + sub < cols ? q0 + sub : cols;
        long n1 = q1 + sub < cols ? q1 + sub : cols; /* the next columns, prefetched row by row */
        int t = 0;
        for (int o = 0; o < nouts; o++) {
            const ConvOut *out = &outs[o];
            for (int r0 = 0; r0 < out->cout; r0 += MR, t++) {
                for (long k = (long)kdim * t / tiles, ke = (long)kdim * (t + 1) / tiles; k < ke; k++)
                    for (long p = q1; p < n1; p += 16) __builtin_prefetch(x + (size_t)k * ldx + p, 0, 3);
                int rows = out->cout - r0 < MR ? out->cout - r0 : MR;
                const float *w[MR];
                for (int r = 0; r < MR; r++) w[r] = out->wt + (size_t)(r0 + (r < rows ? r : rows - 1)) * kdim;
                tile_row(w, kdim, x, ldx, q0, q1, out->y + (size_t)r0 * ldy + y0, ldy, rows,
                         out->b ? out->b + r0 : NULL, relu);
            }
        }
    }
}
