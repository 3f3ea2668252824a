/* isa.h: the kernels of one instruction set, named with its suffix (ISA()),
 * shared by the files of nn/kernels/ and gathered into a table by table.c. */
#ifndef NN_KERNELS_ISA_H
#define NN_KERNELS_ISA_H

#include "nn/kernels/kernels.h"
#include "nn/kernels/vec.h"

void ISA(wino_input)(WinoAlg a, float *v, size_t ldxi, size_t ldc, const float *x, int nc,
                     const WinoGeom *g, const WinoTiles *t);
void ISA(wino_dy)(WinoAlg a, float *dm, size_t ldxi, size_t ldk, const float *dy, int nk,
                  const WinoGeom *g, const WinoTiles *t);
void ISA(wino_filter)(WinoAlg a, float *u, size_t ldxi, const float *wt, int cout, int cin,
                      int flip, size_t e0, size_t e1);
void ISA(wino_filter_grad)(WinoAlg a, float *dw, const float *du, size_t ldxi, size_t e0, size_t e1);
void ISA(wino_gemm_output)(WinoAlg a, const float *up, const float *v, size_t ldxi, size_t ldc, int cin, int cout, float *y,
                           const WinoGeom *g, const WinoTiles *t, const float *bias, int relu, int accum);
int ISA(wino_kr)(void);
void ISA(pool_forward)(const PoolArgs *a, long b, long e);
void ISA(pool_backward)(const PoolArgs *a, long b, long e);
void ISA(pool_argmax)(const PoolArgs *a, long b, long e);
void ISA(pool_backward_argmax)(const PoolArgs *a, long b, long e);
void ISA(pool_max_row)(const PoolShape *s, const PoolWindow *tw, const float *const *rows, int nrows, float *yr,
                       float *v);
void ISA(pool_flat3_cols)(const PoolShape *s, const float *x, int n, int c, long p0, long p1, float *col, float *hm);
void ISA(lrn_forward)(const LrnArgs *a, long b, long e);
void ISA(lrn_forward_span)(const LrnShape *s, const float *x, size_t xstride, float *y, size_t ystride, size_t q0,
                           int len);
void ISA(lrn_backward)(const LrnArgs *a, long b, long e);
void ISA(sgd_update)(const SgdArgs *a, long b, long e);
void ISA(direct_forward)(const ConvShape *s, const float *x, const float *wt, const float *bias, int relu,
                         float *y, int n, long r0, long r1, float *scratch);
void ISA(direct_pack)(const ConvShape *s, const float *wt, float *wpack);
void ISA(direct_row)(const ConvShape *s, const float *x, int n, int img, int oh, const float *wpack,
                     const float *bias, int relu, float *yrow, size_t cstride, float *ring, long *tag);
void ISA(direct_weights)(const ConvShape *s, const float *x, const float *dy, int n, int img, int oh0, int oh1,
                         float *partial, float *scratch);
void ISA(gemm_forward)(const ConvOut *outs, int nouts, int kdim, const float *x, size_t ldx, long cols, size_t ldy,
                       size_t y0, int relu);
void ISA(im2col)(const ConvShape *s, const float *x, int n, long p0, long p1, float *col);
void ISA(col2im)(const ConvShape *s, float *dx, const float *col, int n, int n0, int nc, long c0, long c1);

#endif
