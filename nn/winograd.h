/* winograd.h: stride-1 convolution by Winograd's minimal filtering algorithms
 * (Lavin & Gray 2016): F(2x2,3x3), F(4x4,3x3), F(2x2,5x5) and F(4x4,5x5), for all three
 * passes of training.
 *
 * The output is cut into m x m tiles; each tile's (m+r-1)^2 input patch and
 * each filter are transformed, and the alpha^2 = (m+r-1)^2 elementwise
 * products summed over channels are alpha^2 independent SGEMMs,
 * [K x C] . [C x tiles]. Tiles are processed in blocks of `block` so the
 * transformed operands stay in cache; scratch is bounded by the block, not by
 * the batch.
 * - forward: Y = AT [U . V] A, with U = G g GT, V = BT d B;
 * - backward data: the same algorithm on dY with every filter rotated by 180
 *   degrees and the roles of C and K swapped (a stride-1 convolution too);
 * - backward weights: dg = GT [sum over tiles of (A dY AT) . V] G, the
 *   transpose of the forward algorithm (F(r, m) on the same tiles): the sum
 *   over images and tiles is the K dimension of the GEMMs.
 * Each output is computed by one block and one GEMM, and the weight gradient
 * sums its blocks in a fixed order, so results do not depend on the thread
 * count; they depend on `block`, which a plan fixes (nn/conv.h).
 *
 * Maths only: no I/O, no MPI; threads come from nn/parallel.h.
 */
#ifndef NN_WINOGRAD_H
#define NN_WINOGRAD_H

#include <stddef.h>

#include "nn/conv.h"
#include "nn/kernels/kernels.h"

/* 1 when algorithm a computes convolution s (stride 1, a k x k filter of its r). */
int wino_applies(WinoAlg a, const ConvShape *s);
/* A block size (tiles, a multiple of 16) that keeps one thread's operands
 * near its cache, for pass 0 forward, 1 backward data, 2 backward weights. */
int wino_default_block(WinoAlg a, const ConvShape *s, int n, int pass);
/* Floats of scratch a pass needs for n images with blocks of `block` tiles and
 * up to `threads` threads. */
size_t wino_scratch_floats(WinoAlg a, const ConvShape *s, int n, int block, int threads, int pass);

/* x: (cin, n, h, w); wt: (cout, cin, k, k); b: (cout) or NULL; y: (cout, n, ho, wo),
 * overwritten; relu != 0 applies max(0, .) after the bias. */
void wino_forward(float *y, const float *x, const float *wt, const float *b, const ConvShape *s,
                  int n, int relu, WinoAlg a, int block, float *work, size_t work_floats);
/* The forward's filters transformed and packed once, for wino_forward_prepared
 * (inference keeps them while the weights stay the same): wino_filters_floats
 * floats, in the layout wino_filters_layout() names (it depends on the kernel
 * table in use); work: at least wino_scratch_floats(a, s, 1, 16, 1, 0) floats. */
size_t wino_filters_floats(WinoAlg a, const ConvShape *s);
int wino_filters_layout(void);
void wino_forward_filters(float *up, const float *wt, const ConvShape *s, WinoAlg a, float *work,
                          size_t work_floats);
/* wino_forward by filters up from wino_forward_filters (same a and s, the
 * current layout); the same bits as wino_forward. */
void wino_forward_prepared(float *y, const float *x, const float *up, const float *b, const ConvShape *s,
                           int n, int relu, WinoAlg a, int block, float *work, size_t work_floats);
/* dx: (cin, n, h, w), overwritten or added to (accum); dy: (cout, n, ho, wo). */
void wino_backward_data(float *dx, const float *dy, const float *wt, const ConvShape *s, int n,
                        int accum, WinoAlg a, int block, float *work, size_t work_floats);
/* dw (cout, cin, k, k) is added to. */
void wino_backward_weights(float *dw, const float *dy, const float *x, const ConvShape *s, int n,
                           WinoAlg a, int block, float *work, size_t work_floats);

#endif
