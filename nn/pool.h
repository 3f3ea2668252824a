/* pool.h: max and average pooling on channel-major (C, N, H, W) activations.
 *
 * Output sizes round UP as Caffe does (112->56->28->14->7 for 3x3/2), and a last
 * window that would start inside the padding is dropped. Average pooling divides
 * as Caffe does: by the window clipped to the padded input. The adaptive form
 * (PyTorch's adaptive_avg_pool2d windows) serves the heads at crops other than
 * 224. Max pooling routes the gradient to the first maximum of each window in
 * row-major order (the one Caffe and PyTorch pick on ties): training records
 * its position, one byte per output (pool_forward_argmax), so backward is a
 * single pass; pool_backward finds it again when no record was kept.
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

/* The window of one output index along an axis: input [lo, hi), and the
 * extent Caffe divides by. */
typedef struct {
    int lo, hi, extent;
} PoolWindow;

/* Caffe pooling: k x k, stride, padding, output size rounded up. */
void pool_shape_init(PoolShape *s, PoolKind kind, int k, int stride, int pad, int h, int w);
/* Adaptive average pooling of h x w to ho x wo. */
void pool_shape_adaptive(PoolShape *s, int h, int w, int ho, int wo);

/* The windows of every output row (th, ho of them) and column (tw, wo). */
void pool_windows(const PoolShape *s, PoolWindow *th, PoolWindow *tw);

/* x: (c, n, h, w) -> y: (c, n, ho, wo); planes = c * n. */
void pool_forward(float *y, const float *x, const PoolShape *s, long planes);
/* dx: overwritten, or added to when accum_dx. y is the forward output (max only). */
void pool_backward(float *dx, const float *dy, const float *x, const float *y,
                   const PoolShape *s, long planes, int accum_dx);

/* Max pooling that also records, in arg (one byte per output, (c, n, ho, wo)),
 * the window position dh * k + dw of each output's first maximum. k <= 15. */
void pool_forward_argmax(float *y, unsigned char *arg, const float *x, const PoolShape *s, long planes);
/* The max-pooling backward from those records. */
void pool_backward_argmax(float *dx, const float *dy, const unsigned char *arg, const PoolShape *s,
                          long planes, int accum_dx);

#endif
