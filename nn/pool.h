/* pool.h: max and average pooling on channel-major (C, N, H, W) activations.
 *
 * Output sizes round UP as Caffe does (112->56->28->14->7 for 3x3/2), and a last
 * window that would start inside the padding is dropped. Average pooling divides
 * as Caffe does: by the window clipped to the padded input. The adaptive form
 * (PyTorch's adaptive_avg_pool2d windows) serves the heads at crops other than
 * 224. Max pooling keeps no indices: backward finds the first maximum of each
 * window again (the same one Caffe and PyTorch pick on ties).
 */
#ifndef NN_POOL_H
#define NN_POOL_H

typedef enum { POOL_MAX, POOL_AVG } PoolKind;

typedef struct {
    PoolKind kind;
    int k, stride, pad;
    int adaptive; /* 1: windows from PyTorch's adaptive pooling to ho x wo */
    int h, w, ho, wo;
} PoolShape;

/* Caffe pooling: k x k, stride, padding, output size rounded up. */
void pool_shape_init(PoolShape *s, PoolKind kind, int k, int stride, int pad, int h, int w);
/* Adaptive average pooling of h x w to ho x wo. */
void pool_shape_adaptive(PoolShape *s, int h, int w, int ho, int wo);

/* x: (c, n, h, w) -> y: (c, n, ho, wo); planes = c * n. */
void pool_forward(float *y, const float *x, const PoolShape *s, long planes);
/* dx: overwritten, or added to when accum_dx. y is the forward output (max only). */
void pool_backward(float *dx, const float *dy, const float *x, const float *y,
                   const PoolShape *s, long planes, int accum_dx);

#endif
