/* activation.c: ReLU and inverted dropout (see activation.h). */
#include "nn/activation.h"

#include "nn/rng.h"

void relu_forward(float *x, size_t len)
{
    for (size_t i = 0; i < len; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(float *dy, const float *y, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!(y[i] > 0.0f)) dy[i] = 0.0f;
}

void dropout_forward(float *y, const float *x, size_t len, float p, uint64_t key)
{
    float scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    for (size_t i = 0; i < len; i++) y[i] = rng_uniform(key, i) >= p ? x[i] * scale : 0.0f;
}

void dropout_backward(float *dx, const float *dy, size_t len, float p, uint64_t key, int accum_dx)
{
    float scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    for (size_t i = 0; i < len; i++) {
        float g = rng_uniform(key, i) >= p ? dy[i] * scale : 0.0f;
        dx[i] = accum_dx ? dx[i] + g : g;
    }
}
