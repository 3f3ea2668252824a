/* activation.h: ReLU and inverted dropout, elementwise on any layout.
 * Dropout keeps no mask: it is a function of (key, element index), recomputed
 * in backward, so it costs no memory and does not depend on threads. */
#ifndef NN_ACTIVATION_H
#define NN_ACTIVATION_H

#include <stddef.h>
#include <stdint.h>

/* In place: x = max(0, x). */
void relu_forward(float *x, size_t len);
/* In place on dy: dy = 0 where the ReLU's output y was 0. */
void relu_backward(float *dy, const float *y, size_t len);

/* y = x * keep / (1 - p), keep = uniform(key, i) >= p. p = 0 copies. */
void dropout_forward(float *y, const float *x, size_t len, float p, uint64_t key);
/* dx = dy * keep / (1 - p) with the same key; overwritten or added to. */
void dropout_backward(float *dx, const float *dy, size_t len, float p, uint64_t key, int accum_dx);

#endif
