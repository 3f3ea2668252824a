/* lrn.h: local response normalisation across channels, Caffe's form:
 *   scale_c = k + (alpha / size) * sum_{c' in [c - size/2, c + size/2]} x_c'^2
 *   y_c     = x_c * scale_c^(-beta)
 * on channel-major (C, N, H, W) activations. Nothing is stored between forward
 * and backward: backward recomputes the scale from x.
 */
#ifndef NN_LRN_H
#define NN_LRN_H

#include <stddef.h>

#define LRN_MAX_SIZE 15 /* odd window sizes up to this */

typedef struct {
    int size;
    float alpha, beta, k;
    int c;         /* channels */
    size_t plane;  /* n * h * w: the stride between channels */
} LrnShape;

void lrn_forward(float *y, const float *x, const LrnShape *s);
/* dx overwritten, or added to when accum_dx. Needs x, not y. */
void lrn_backward(float *dx, const float *dy, const float *x, const LrnShape *s, int accum_dx);

#endif
