/* fuse.h: inference passes that run a chain of layers in one sweep over each
 * image, so that the tensors between the layers are never written to memory:
 *   direct convolution -> max pooling -> LRN   (conv1/7x7_s2, pool1, norm1)
 *   LRN -> max pooling                          (conv2/norm2, pool2)
 * (The third chain, max pooling 3x3/1 -> 1x1 convolution, the inception
 * module's pool and pool_proj, is the GEMM's own: conv_forward_pooled in
 * nn/conv.h pools each block of its operand as it goes.)
 * Rows are made as they are needed into small per-thread rings that stay in
 * cache, and each output has the bits the layers give one after the other:
 * the same kernels (nn/kernels/) on the same numbers, whatever the thread
 * count. For models without backward only (backward reads the tensors this
 * skips). Maths only: no I/O, nothing allocated.
 */
#ifndef NN_FUSE_H
#define NN_FUSE_H

#include <stddef.h>

#include "nn/conv.h"
#include "nn/lrn.h"
#include "nn/pool.h"

/* 1 when a convolution's forward can be made a row at a time (it is the
 * direct kernel's), and when a max pooling can take its input a row at a time. */
int fuse_conv_applies(const ConvShape *s);
int fuse_pool_applies(const PoolShape *s);

/* y: (cout, n, ho, wo) = LRN(maxpool(conv(x) + b, ReLU when relu)), x: (cin, n,
 * h, w), wt: (cout, cin, k, k); ps: the pooling of the convolution's output,
 * lrn: size, alpha, beta and k (c and plane are set here). work: at least
 * fuse_conv_pool_lrn_floats(cs, ps, 1) floats. */
size_t fuse_conv_pool_lrn_floats(const ConvShape *cs, const PoolShape *ps, int threads);
void fuse_conv_pool_lrn(float *y, const float *x, const float *wt, const float *b, int relu, const ConvShape *cs,
                        const PoolShape *ps, const LrnShape *lrn, int n, float *work, size_t work_floats);

/* y: (c, n, ho, wo) = maxpool(LRN(x)), x: (c, n, h, w). work: at least
 * fuse_lrn_pool_floats(ps, c, 1) floats. */
size_t fuse_lrn_pool_floats(const PoolShape *ps, int c, int threads);
void fuse_lrn_pool(float *y, const float *x, const LrnShape *lrn, const PoolShape *ps, int c, int n, float *work,
                   size_t work_floats);

#endif
