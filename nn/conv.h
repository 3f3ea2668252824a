/* conv.h: 2-D convolution, forward and backward, by one of several algorithms.
 *
 * Activations are channel-major, (C, N, H, W): a whole batch of one channel is
 * contiguous, so a convolution by GEMM is one GEMM with the batch folded into
 * its N dimension (Cout x Cin*K*K times Cin*K*K x N*Ho*Wo), a 1x1 stride-1
 * convolution needs no im2col at all, and a channel slice of a concatenation is
 * a contiguous block the branch writes in place.
 *
 * A ConvPlan names the algorithm of each pass (forward, backward data,
 * backward weights): im2col + GEMM, or Winograd (nn/winograd.h) for 3x3 and
 * 5x5 stride-1 layers, with its block size. Algorithms differ only in rounding;
 * a fixed plan gives the same bits every run, whatever the thread count.
 * Maths only: no I/O, no MPI.
 */
#ifndef NN_CONV_H
#define NN_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "nn/pool.h"

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

typedef enum { CONV_GEMM, CONV_F2X3, CONV_F4X3, CONV_F2X5, CONV_F4X5, CONV_ALGOS } ConvAlgo;
typedef enum { CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHTS, CONV_PASSES } ConvPass;

typedef struct {
    uint8_t algo[CONV_PASSES];   /* ConvAlgo of each pass */
    uint16_t block[CONV_PASSES]; /* Winograd: tiles per block, a multiple of 16 */
} ConvPlan;

/* "gemm", "f2x3", "f4x3", "f2x5"; parse returns -1 for an unknown name. */
const char *conv_algo_name(ConvAlgo a);
int conv_algo_parse(const char *name);
/* 1 when algorithm a can compute convolution s (GEMM always can). */
int conv_algo_applies(ConvAlgo a, const ConvShape *s);
/* Every pass by algorithm a with its default block, or by GEMM where a does
 * not apply. */
ConvPlan conv_plan_uniform(ConvAlgo a, const ConvShape *s, int n);
/* 0 when plan p can run convolution s (algorithms apply, blocks are sane). */
int conv_plan_valid(const ConvPlan *p, const ConvShape *s);
/* The default block of algorithm a in pass `pass` for n images. */
int conv_default_block(ConvAlgo a, const ConvShape *s, int n, ConvPass pass);
/* Floats of scratch plan p needs for n images and `threads` threads: forward
 * only, or forward and both backward passes. */
size_t conv_work_floats(const ConvShape *s, const ConvPlan *p, int n, int threads, int backward);

/* x: (cin, n, h, w); wt: (cout, cin, k, k); b: (cout); y: (cout, n, ho, wo).
 * relu != 0 applies max(0, .) after the bias. p: the plan (NULL: GEMM).
 * work: scratch of work_floats floats, at least conv_work_floats(s, p, n, 1, 0). */
void conv_forward(float *y, const float *x, const float *wt, const float *b,
                  const ConvShape *s, int n, int relu, const ConvPlan *p, float *work,
                  size_t work_floats);

/* A forward's prepared filters (Winograd's transformed weights), kept from
 * call to call with the weights they came from: conv_forward_cached compares
 * the weights it is given with that copy and prepares them again only when
 * they differ, so it gives the bits conv_forward gives. For inference, where
 * the weights stay the same from batch to batch. One per layer (the shape is
 * not part of what is compared). Zero-initialise; free with
 * conv_filter_cache_free. c NULL: no cache, conv_forward (training). */
typedef struct {
    float *up, *src;      /* prepared filters; the weights they came from */
    size_t up_cap, src_cap; /* floats */
    int algo, layout, valid;
} ConvFilterCache;

void conv_forward_cached(ConvFilterCache *c, float *y, const float *x, const float *wt, const float *b,
                         const ConvShape *s, int n, int relu, const ConvPlan *p, float *work,
                         size_t work_floats);
void conv_filter_cache_free(ConvFilterCache *c);

/* dy: (cout, n, ho, wo). relu_y: the forward output when the forward applied
 * ReLU (dy is then zeroed in place where relu_y <= 0), else NULL.
 * dw (cout, cin, k, k) and db (cout) are added to.
 * dx: (cin, n, h, w), overwritten, or added to when accum_dx; NULL skips it. */
void conv_backward(float *dx, float *dw, float *db, float *dy, const float *relu_y,
                   const float *x, const float *wt, const ConvShape *s, int n, int accum_dx,
                   const ConvPlan *p, float *work, size_t work_floats);

/* The GEMM algorithm's forward of an input with few channels (conv1: 3) is a
 * direct convolution instead: with K = cin*k*k that small, im2col costs more
 * than the products it feeds; so is its weight gradient when cout is a
 * multiple of 4. Chosen by shape only (run by GEMM only when the scratch
 * given is smaller than planned). */
int conv_direct_applies(const ConvShape *s);
/* Floats of one thread's scratch for the direct forward. */
size_t conv_direct_scratch_floats(const ConvShape *s);

/* Its weight gradient likewise, when cout is a multiple of 4 (and the
 * scratch given is as planned); rows: output rows a thread takes at a time. */
int conv_direct_weights_applies(const ConvShape *s);
size_t conv_direct_weights_scratch_floats(const ConvShape *s, int rows);

/* Several 1x1 convolutions of the same input x (cin, n, h, w) in one pass
 * over it: each block of x stays in cache while every output's channels pass
 * over it (the inception module's 1x1 and reduce layers). s: the shape with
 * cout the sum of the outputs' channels. */
typedef struct {
    float *y;                /* (cout, n, ho, wo) */
    const float *wt, *b;     /* (cout, cin), (cout) or NULL */
    int cout;
} ConvOut;
size_t conv_pointwise_many_floats(const ConvShape *s, int n, int threads);
void conv_forward_pointwise_many(const ConvOut *outs, int nouts, const float *x, const ConvShape *s, int n,
                                 int relu, float *work, size_t work_floats);

/* The forward of a 1x1 convolution s of the max pooling ps of x (cin, n, h,
 * w), 3x3 windows, stride 1, padding 1 (the inception module's pool and
 * pool_proj), for inference: each block of output positions pools its
 * columns of the GEMM's operand into its thread's scratch, so the pooled
 * tensor is never written. The bits of pool_forward then conv_forward (GEMM),
 * whatever the thread count. work: at least conv_pooled_work_floats(s, ps,
 * n, 1) floats (the blocks are as planned: no smaller ones). */
int conv_pooled_applies(const ConvShape *s, const PoolShape *ps);
size_t conv_pooled_work_floats(const ConvShape *s, const PoolShape *ps, int n, int threads);
void conv_forward_pooled(float *y, const float *x, const PoolShape *ps, const float *wt, const float *b,
                         const ConvShape *s, int n, int relu, float *work, size_t work_floats);

/* The three parts of conv_backward, for timing them apart: db += the bias
 * gradient, with dy first zeroed where relu_y <= 0 (relu_y NULL: no ReLU);
 * then, on that dy, dx = or += the input gradient and dw += the weight gradient. */
void conv_backward_bias(float *db, float *dy, const float *relu_y, const ConvShape *s, int n);
void conv_backward_data(float *dx, const float *dy, const float *wt, const ConvShape *s, int n,
                        int accum_dx, const ConvPlan *p, float *work, size_t work_floats);
void conv_backward_weights(float *dw, const float *dy, const float *x, const ConvShape *s, int n,
                           const ConvPlan *p, float *work, size_t work_floats);

/* Direct loops, the reference the tests hold the fast path to. */
void conv_forward_naive(float *y, const float *x, const float *wt, const float *b,
                        const ConvShape *s, int n, int relu);
void conv_backward_naive(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *wt, const ConvShape *s, int n, int accum_dx);

#endif
