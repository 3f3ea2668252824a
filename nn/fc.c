/* fc.c: fully connected layers as SGEMM, and flatten (see fc.h). */
#include "nn/fc.h"

#include <stddef.h>

#include "nn/gemm.h"

void fc_forward(float *y, const float *x, const float *w, const float *b,
                int in, int out, int n, int relu)
{
    gemm(0, 0, out, n, in, 1.0f, w, in, x, n,
                0.0f, y, n);
    for (int o = 0; o < out; o++) {
        float *row = y + (size_t)o * n;
        for (int i = 0; i < n; i++) {
            float v = row[i] + b[o];
            row[i] = relu && v < 0.0f ? 0.0f : v;
        }
    }
}

void fc_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                 const float *w, int in, int out, int n, int accum_dx)
{
    for (int o = 0; o < out; o++) {
        const float *row = dy + (size_t)o * n;
        float s = 0.0f;
        for (int i = 0; i < n; i++) s += row[i];
        db[o] += s;
    }
    gemm(0, 1, out, in, n, 1.0f, dy, n, x, n, 1.0f,
                dw, in);
    if (dx)
        gemm(1, 0, in, n, out, 1.0f, w, in, dy, n,
                    accum_dx ? 1.0f : 0.0f, dx, n);
}

void fc_flatten_forward(float *y, const float *x, int c, int n, int hw)
{
    for (int ci = 0; ci < c; ci++)
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++)
                y[((size_t)ci * hw + p) * n + i] = x[((size_t)ci * n + i) * hw + p];
}

void fc_flatten_backward(float *dx, const float *dy, int c, int n, int hw, int accum_dx)
{
    for (int ci = 0; ci < c; ci++)
        for (int i = 0; i < n; i++)
            for (int p = 0; p < hw; p++) {
                float g = dy[((size_t)ci * hw + p) * n + i];
                float *d = &dx[((size_t)ci * n + i) * hw + p];
                *d = accum_dx ? *d + g : g;
            }
}
