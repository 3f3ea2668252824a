/* conv.h: 2-D convolution over OpenBLAS SGEMM, forward and backward.
 *
 * Activations are channel-major, (C, N, H, W): a whole batch of one channel is
 * contiguous, so every convolution is one GEMM with the batch folded into its
 * N dimension (Cout x Cin*K*K times Cin*K*K x N*Ho*Wo), a 1x1 stride-1
 * convolution needs no im2col at all, and a channel slice of a concatenation is
 * a contiguous block the branch writes in place. Maths only: no I/O, no MPI.
 */
#ifndef NN_CONV_H
#define NN_CONV_H

#include <stddef.h>

typedef struct {
    int cin, cout, k, stride, pad;
    int h, w;   /* input plane */
    int ho, wo; /* output plane: floor((h + 2 pad - k) / stride) + 1 */
} ConvShape;

void conv_shape_init(ConvShape *s, int cin, int cout, int k, int stride, int pad, int h, int w);
/* 1x1, stride 1, no padding: the input is already the GEMM operand. */
int conv_is_pointwise(const ConvShape *s);
/* Floats of im2col scratch for `images` images at a time (0 when pointwise). */
size_t conv_col_floats(const ConvShape *s, int images);
/* Multiply-adds of the forward pass for n images. */
double conv_macs(const ConvShape *s, int n);

/* x: (cin, n, h, w); wt: (cout, cin, k, k); b: (cout); y: (cout, n, ho, wo).
 * relu != 0 applies max(0, .) after the bias. col: scratch of col_cap floats,
 * at least conv_col_floats(s, 1) unless pointwise. */
void conv_forward(float *y, const float *x, const float *wt, const float *b,
                  const ConvShape *s, int n, int relu, float *col, size_t col_cap);

/* dy: (cout, n, ho, wo). relu_y: the forward output when the forward applied
 * ReLU (dy is then zeroed in place where relu_y <= 0), else NULL.
 * dw (cout, cin, k, k) and db (cout) are added to.
 * dx: (cin, n, h, w), overwritten, or added to when accum_dx; NULL skips it. */
void conv_backward(float *dx, float *dw, float *db, float *dy, const float *relu_y,
                   const float *x, const float *wt, const ConvShape *s, int n, int accum_dx,
                   float *col, size_t col_cap);

/* Direct loops, the reference the tests hold the fast path to. */
void conv_forward_naive(float *y, const float *x, const float *wt, const float *b,
                        const ConvShape *s, int n, int relu);
void conv_backward_naive(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *wt, const ConvShape *s, int n, int accum_dx);

#endif
