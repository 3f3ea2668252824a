/* kernels.h: the inner loops that run at the CPU's widest SIMD width, as one
 * table of function pointers per instruction set (ggml's backends, in small).
 *
 * Every .c file in nn/kernels/ is compiled twice: for AVX2 + FMA (8 floats a
 * vector) and for AVX-512 (16 floats), each copy exporting its table
 * (nn_kernels_avx2, nn_kernels_avx512). nn_kernels() hands out the widest one
 * the CPU and the OS support, chosen once at run time, so one binary runs on
 * any x86-64 with AVX2 and uses AVX-512 where it exists. GOOGLENET_SIMD=avx2
 * (or avx512) in the environment forces a table, for tests and benchmarks.
 *
 * The kernels are maths on plain float buffers: no threads, no allocation, no
 * I/O. Callers split work between threads; a kernel never depends on how.
 * Every result is independent of the table chosen except for rounding: both
 * tables add in the same order, but FMA contraction may differ.
 */
#ifndef NN_KERNELS_H
#define NN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "nn/conv.h"
#include "nn/lrn.h"
#include "nn/pool.h"

/* ---- Winograd convolution (nn/winograd.c drives these) ---- */

typedef enum { WINO_F2X3, WINO_F4X3, WINO_F2X5, WINO_F4X5, WINO_ALGS } WinoAlg;

/* The tiles of one block, as runs of consecutive tiles of one tile row: run r
 * covers tiles tx..tx+len-1 of tile row ty of image img (output rows ty*m..,
 * columns tx*m..), which are columns col..col+len-1 of the block's operands.
 * Runs are in column order and cover columns 0..count-1. */
typedef struct {
    int32_t img, ty, tx, len, col;
} WinoRun;

typedef struct {
    const WinoRun *runs;
    int nruns;
    int count; /* tiles in the block */
} WinoTiles;

/* Geometry of a stride-1 convolution as the tile kernels see it: input planes
 * h x w read at (oy - pad + i, ox - pad + j), zero outside; output ho x wo. */
typedef struct {
    int h, w, ho, wo, pad;
    size_t in_cstride;  /* floats from one channel's planes to the next: n*h*w */
    size_t out_cstride; /* n*ho*wo */
} WinoGeom;

/* ---- pooling (nn/pool.c drives these): planes [b, e) of one call ---- */

/* 3x3 windows, stride 1, padding 1 (the inception branch): pooled over the
 * plane as one flat array rather than row by row. */
static inline int pool_is_flat3(const PoolShape *s)
{
    return !s->adaptive && s->k == 3 && s->stride == 1 && s->pad == 1;
}

/* Floats of pool_flat3_cols's scratch for len positions: its row maxima
 * reach a row beyond them each way, the first back to a whole vector (of
 * at most 16 floats). */
static inline size_t pool_flat3_cols_floats(const PoolShape *s, long len)
{
    return ((size_t)len + 2 * (size_t)s->w + 16 + 15) / 16 * 16;
}

typedef struct {
    const PoolShape *s;
    const PoolWindow *th, *tw; /* per output row and column */
    const float *x, *y, *dy;
    float *out;                /* y forward, dx backward */
    unsigned char *arg;        /* pool_argmax writes the argmax records */
    const unsigned char *carg; /* pool_backward_argmax reads them */
    int accum;
} PoolArgs;

/* ---- LRN (nn/lrn.c drives these): strips [b, e) of LRN_STRIP positions ---- */

#define LRN_STRIP 2048

typedef struct {
    const LrnShape *s;
    const float *x, *dy;
    float *out; /* y forward, dx backward */
    int accum;
} LrnArgs;

/* ---- SGD with momentum and the Polyak average (nn/sgd.c): elements [b, e) ---- */

typedef struct {
    float *w, *v, *avg; /* avg may be NULL */
    const float *g;
    float lr, mom, wd, ema;
} SgdArgs;

typedef struct {
    const char *name; /* "avx2", "avx512" */
    int lanes;        /* floats per vector */

    /* V[xi*ldxi + c*ldc + t] = (BT d B)[xi] of input channel c (c < nc) for
     * every tile t of the block. x points at channel 0. */
    void (*wino_input)(WinoAlg a, float *v, size_t ldxi, size_t ldc, const float *x, int nc,
                       const WinoGeom *g, const WinoTiles *t);
    /* dM[xi*ldxi + k*ldk + t] = (A dY AT)[xi] of output-gradient channel k
     * (zero outside ho x wo): the weight gradient's transform of dY. */
    void (*wino_dy)(WinoAlg a, float *dm, size_t ldxi, size_t ldk, const float *dy, int nk,
                    const WinoGeom *g, const WinoTiles *t);
    /* U[xi*ldxi + e] = (G g G^T)[xi] for e in [e0, e1), where g is filter e of
     * wt (cout, cin, r, r), e = k*cin + c; with flip, g for e = c*cout + k is
     * wt[k][c] rotated by 180 degrees (backward data as a convolution of dY). */
    void (*wino_filter)(WinoAlg a, float *u, size_t ldxi, const float *wt, int cout, int cin,
                        int flip, size_t e0, size_t e1);
    /* dw[e] (r x r) += (G^T dU G) of dU[xi*ldxi + e] for e in [e0, e1). */
    void (*wino_filter_grad)(WinoAlg a, float *dw, const float *du, size_t ldxi, size_t e0,
                             size_t e1);
    /* The output of a block straight from V, products and output transform
     * fused: y[k] (= or +=) AT (sum_c U[xi][k][c] V[xi][c]) A, + bias[k], ReLU.
     * V: v[xi*ldxi + c*ldc + t] for the block's tiles t (columns up to the
     * next multiple of 16 must hold numbers). U packed by kr = wino_kr()
     * output channels: up[((kt*alpha^2 + xi)*cin + c)*kr + r] = U[xi][kt*kr +
     * r][c], zero past cout. */
    void (*wino_gemm_output)(WinoAlg a, const float *up, const float *v, size_t ldxi, size_t ldc, int cin, int cout,
                             float *y, const WinoGeom *g, const WinoTiles *t, const float *bias, int relu,
                             int accum);
    int (*wino_kr)(void);

    /* pooling: the forward; the backward finding each maximum again (or
     * average); the max forward recording argmaxes; the backward from them */
    void (*pool_forward)(const PoolArgs *a, long b, long e);
    void (*pool_backward)(const PoolArgs *a, long b, long e);
    void (*pool_argmax)(const PoolArgs *a, long b, long e);
    void (*pool_backward_argmax)(const PoolArgs *a, long b, long e);
    /* One output row yr (wo floats) of max pooling from its window's input
     * rows rows[0 .. nrows) (w floats each; tw: the column windows): what
     * pool_forward computes for a plane that is not pool_is_flat3. v: scratch
     * of w + 2 * 16 floats. */
    void (*pool_max_row)(const PoolShape *s, const PoolWindow *tw, const float *const *rows, int nrows, float *yr,
                         float *v);
    /* col (c, p1 - p0) = the max pooling of x (c, n, h, w) by a pool_is_flat3
     * s at positions [p0, p1) of the flattened (n, h, w), with the bits
     * pool_forward gives them (im2col's counterpart for a 1x1 convolution of
     * the pooling). hm: scratch of pool_flat3_cols_floats(s, p1 - p0) floats. */
    void (*pool_flat3_cols)(const PoolShape *s, const float *x, int n, int c, long p0, long p1, float *col,
                            float *hm);

    void (*lrn_forward)(const LrnArgs *a, long b, long e);
    void (*lrn_backward)(const LrnArgs *a, long b, long e);
    /* Positions [q0, q0 + len) of a plane of s->plane positions, with the
     * bits lrn_forward gives them: x's channel c at x + c * xstride, y's at
     * y + c * ystride. */
    void (*lrn_forward_span)(const LrnShape *s, const float *x, size_t xstride, float *y, size_t ystride, size_t q0,
                             int len);

    void (*sgd_update)(const SgdArgs *a, long b, long e);

    /* y (cout, n, ho, wo) rows [r0, r1) of the flattened (n, ho), by direct
     * convolution of x (cin, n, h, w) with wt (cout, cin, k, k), + bias
     * (NULL: none), ReLU when relu; stride 1 or 2. scratch: the thread's own,
     * conv_direct_scratch_floats(s) floats (nn/conv.h). */
    void (*direct_forward)(const ConvShape *s, const float *x, const float *wt, const float *bias, int relu,
                           float *y, int n, long r0, long r1, float *scratch);
    /* The same a row at a time, for a caller that consumes rows as they are
     * made (nn/fuse.c): the weights packed once by direct_pack into
     * direct_pack_floats(s) floats, then output row oh of image img, channel
     * k at yrow + k * cstride. ring: conv_direct_scratch_floats(s) floats,
     * the input rows split into phases; tag: s->cin * s->k longs saying what
     * the ring holds, all -1 before a thread's first row. */
    void (*direct_pack)(const ConvShape *s, const float *wt, float *wpack);
    void (*direct_row)(const ConvShape *s, const float *x, int n, int img, int oh, const float *wpack,
                       const float *bias, int relu, float *yrow, size_t cstride, float *ring, long *tag);
    /* partial (cout, cin*k*k) += the weight gradient of output rows [oh0, oh1)
     * of image img, from dy (cout, n, ho, wo) and x: the direct forward's
     * companion; cout a multiple of 4. Both tables give the same bits.
     * scratch: conv_direct_weights_scratch_floats(s, oh1 - oh0) floats. */
    void (*direct_weights)(const ConvShape *s, const float *x, const float *dy, int n, int img, int oh0, int oh1,
                           float *partial, float *scratch);
    /* The forward GEMM of a convolution block by block, bias and ReLU in
     * registers: for each output o and its row r < outs[o].cout,
     * outs[o].y[r*ldy + y0 + j] = act(sum_k outs[o].wt[r*kdim + k] x[k*ldx +
     * j] + outs[o].b[r]) for j < cols (b NULL: no bias; act: ReLU when relu).
     * Each output is one chain of fused multiply-adds in k order, then the
     * bias: the same bits in both tables and for any cut of the columns. */
    void (*gemm_forward)(const ConvOut *outs, int nouts, int kdim, const float *x, size_t ldx, long cols,
                         size_t ldy, size_t y0, int relu);
    /* col (cin*k*k, p1 - p0) = the im2col patches of output positions
     * [p0, p1) of the flattened (n, ho, wo); x: (cin, n, h, w). */
    void (*im2col)(const ConvShape *s, const float *x, int n, long p0, long p1, float *col);
    /* dx (cin, n, h, w) += col2im of col (cin*k*k, nc*ho*wo) for images
     * [n0, n0 + nc), input channels [c0, c1). */
    void (*col2im)(const ConvShape *s, float *dx, const float *col, int n, int n0, int nc, long c0, long c1);
} NnKernels;

extern const NnKernels nn_kernels_avx2, nn_kernels_avx512;

/* Floats of direct_pack's output in the widest table (tiles of 8 output
 * channels, zero-padded). */
static inline size_t direct_pack_floats(const ConvShape *s)
{
    return ((size_t)s->cout + 7) / 8 * 8 * s->cin * s->k * s->k;
}

/* The table for this CPU (or GOOGLENET_SIMD), chosen on first use. */
const NnKernels *nn_kernels(void);
/* Selects a table by name ("avx2", "avx512"); -1 when this CPU cannot run it. */
int nn_kernels_select(const char *name);
/* 1 when this CPU and OS can run the named table. */
int nn_kernels_supported(const char *name);

/* Winograd algorithm parameters: output tile m, filter r, tile alpha = m + r - 1. */
int wino_m(WinoAlg a);
int wino_r(WinoAlg a);
int wino_alpha(WinoAlg a);
const char *wino_name(WinoAlg a);

#endif
