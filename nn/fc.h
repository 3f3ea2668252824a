/* fc.h: fully connected layers on column-major batches, and the flatten that
 * feeds them.
 *
 * A batch is (features, N): column i is sample i. That is the channel-major
 * layout with H = W = 1, so the classifier after global pooling needs no copy.
 * Weights are (out, in), PyTorch's and Caffe's order.
 */
#ifndef NN_FC_H
#define NN_FC_H

/* x: (in, n); w: (out, in); b: (out); y: (out, n). relu applies max(0, .). */
void fc_forward(float *y, const float *x, const float *w, const float *b,
                int in, int out, int n, int relu);
/* dw, db added to; dx overwritten, or added to when accum_dx; NULL skips. */
void fc_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                 const float *w, int in, int out, int n, int accum_dx);

/* (c, n, h, w) -> (c*h*w, n) with feature index (c*h + y)*w + x: the per-sample
 * flattening order of Caffe and PyTorch. backward is the inverse permutation. */
void fc_flatten_forward(float *y, const float *x, int c, int n, int hw);
void fc_flatten_backward(float *dx, const float *dy, int c, int n, int hw, int accum_dx);

#endif
