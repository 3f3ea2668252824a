/* isa.h: the kernels of one instruction set, named with its suffix (ISA()),
 * shared by the files of nn/kernels/ and gathered into a table by table.c. */
#ifndef NN_KERNELS_ISA_H
#define NN_KERNELS_ISA_H

#include "nn/kernels/kernels.h"
#include "nn/kernels/vec.h"

void ISA(wino_input)(WinoAlg a, float *v, size_t ldxi, size_t ldc, const float *x, int nc,
                     const WinoGeom *g, const WinoTiles *t);
void ISA(wino_output)(WinoAlg a, float *y, int nk, const float *m, size_t ldxi, size_t ldk,
                      const WinoGeom *g, const WinoTiles *t, const float *bias, int relu, int accum);
void ISA(wino_dy)(WinoAlg a, float *dm, size_t ldxi, size_t ldk, const float *dy, int nk,
                  const WinoGeom *g, const WinoTiles *t);
void ISA(wino_filter)(WinoAlg a, float *u, size_t ldxi, const float *wt, int cout, int cin,
                      int flip, size_t e0, size_t e1);
void ISA(wino_filter_grad)(WinoAlg a, float *dw, const float *du, size_t ldxi, size_t e0, size_t e1);

#endif
