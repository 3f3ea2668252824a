/* conv.c: convolution by plan (see conv.h): the GEMM algorithm here, Winograd
 * in nn/winograd.c.
 *
 * GEMM: im2col + GEMM with the batch folded into the columns (the forward of
 * an input with few channels: direct, nn/kernels/direct.c). The forward
 * and the weight gradient work in blocks of output positions, each lowered
 * into its thread's own scratch; the input gradient works a few whole images
 * at a time, col2im parallel over input channels (each channel's rows touch
 * only that channel), so no two threads write the same float. The forward's
 * GEMM is our own (nn/kernels/gemm.c: bias and ReLU in registers, written
 * into the output's columns in place); the backward's are OpenBLAS SGEMMs.
 * A 1x1 convolution of
 * a 3x3 stride-1 max pooling (inference) pools each block of its operand into
 * the thread's scratch as im2col would lower it (conv_forward_pooled).
 */
#include "nn/conv.h"

#include <assert.h>
#include <cblas.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "nn/gemm.h"
#include "nn/kernels/kernels.h"
#include "nn/parallel.h"
#include "nn/winograd.h"

/* im2col scratch: enough floats for a few images of the largest layer */
#define COL_BUDGET_FLOATS ((size_t)8 << 20)

void conv_shape_init(ConvShape *s, int cin, int cout, int k, int stride, int pad, int h, int w)
{
    s->cin = cin;
    s->cout = cout;
    s->k = k;
    s->stride = stride;
    s->pad = pad;
    s->h = h;
    s->w = w;
    s->ho = (h + 2 * pad - k) / stride + 1;
    s->wo = (w + 2 * pad - k) / stride + 1;
}

int conv_is_pointwise(const ConvShape *s) { return s->k == 1 && s->stride == 1 && s->pad == 0; }

size_t conv_col_floats(const ConvShape *s, int images)
{
    if (conv_is_pointwise(s)) return 0;
    return (size_t)s->cin * s->k * s->k * s->ho * s->wo * (size_t)images;
}

double conv_macs(const ConvShape *s, int n)
{
    return (double)s->cout * s->cin * s->k * s->k * s->ho * s->wo * n;
}

static int images_per_chunk(const ConvShape *s, int n, size_t col_cap)
{
    size_t per = conv_col_floats(s, 1);
    int c = per ? (int)(col_cap / per) : n;
    if (c < 1) c = 1;
    return c < n ? c : n;
}

/* ---- col2im on channel-major input ---- */

typedef struct {
    const ConvShape *s;
    float *dx;  /* (cin, n, h, w) */
    float *col; /* (cin*k*k, nc*ho*wo) */
    int n, n0, nc;
} ColJob;

static void col2im_range(void *ctx, long b, long e)
{
    const ColJob *j = ctx;
    nn_kernels()->col2im(j->s, j->dx, j->col, j->n, j->n0, j->nc, b, e);
}

/* ---- bias, ReLU, bias gradient: one pass over each output row ---- */

typedef struct {
    float *dy;
    const float *relu_y;
    float *db;
    size_t len; /* n*ho*wo */
    int relu;
} RowJob;

static void bias_grad_range(void *ctx, long b, long e)
{
    const RowJob *j = ctx;
    for (long c = b; c < e; c++) {
        float *row = j->dy + (size_t)c * j->len;
        if (j->relu_y) {
            const float *yr = j->relu_y + (size_t)c * j->len;
            for (size_t i = 0; i < j->len; i++)
                if (!(yr[i] > 0.0f)) row[i] = 0.0f;
        }
        /* 8 partial sums: vectorisable and a fixed order, so deterministic */
        float acc[8] = {0};
        size_t i = 0;
        for (; i + 8 <= j->len; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += row[i + k];
        float s = 0.0f;
        for (; i < j->len; i++) s += row[i];
        j->db[c] += ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + s;
    }
}

/* ---- forward / backward ---- */

/* ---- forward by GEMM: blocks of output positions, one thread each ----
 * A block of output positions (columns of Y, across rows and images) is
 * lowered by im2col into its thread's own scratch, which stays in that core's
 * cache, multiplied by one single-threaded SGEMM, and given its bias and ReLU
 * while still in cache. Blocks depend on the shape only: the same bits for any
 * thread count. */

#define BLOCK_COL_BYTES ((size_t)512 << 10) /* one thread's im2col block */
#define POINTWISE_BLOCK 1024               /* columns per call of a 1x1 layer */

/* Blocks of at most the budget, their number rounded up to a multiple of
 * BLOCKS_ALIGN so that 2 or 4 threads get equal shares (blocks are a function
 * of the shape only, never of the thread count). */
#define BLOCKS_ALIGN 4

static long fwd_block(const ConvShape *s, long total)
{
    long b = conv_is_pointwise(s) ? POINTWISE_BLOCK
                                  : (long)(BLOCK_COL_BYTES / (sizeof(float) * s->cin * s->k * s->k));
    b = b / 16 * 16;
    if (b < 16) b = 16;
    long nb = (total + b - 1) / b;
    nb = (nb + BLOCKS_ALIGN - 1) / BLOCKS_ALIGN * BLOCKS_ALIGN;
    b = ((total + nb - 1) / nb + 15) / 16 * 16;
    if (b < 16) b = 16;
    return b < total ? b : total;
}

typedef struct {
    const ConvShape *s;     /* cout: the rows of all outputs */
    const PoolShape *pool;  /* 1x1 layers: the max pooling of x the GEMM multiplies, or NULL */
    const float *x;
    const ConvOut *outs;    /* where each output's rows go, in row order */
    int nouts;
    float *work;
    int n, relu;
    size_t slot;
    long block, blocks, total;
    atomic_long next;
} GemmFwdJob;

/* One block: im2col (or a pooled 1x1 layer's pooling) into the thread's
 * scratch, then the GEMM with its bias and ReLU straight into the outputs
 * (nn/kernels/gemm.c). A plain 1x1 layer's block of x is its own operand.
 * Each output is one chain of multiply-adds over the operand's rows, so the
 * bits do not depend on the blocks: a pooled layer's bits are those of the
 * pooling followed by the GEMM. */
static void gemm_fwd_block(const GemmFwdJob *j, long bi, float *scratch)
{
    const ConvShape *s = j->s;
    int kdim = s->cin * s->k * s->k;
    long p0 = bi * j->block, p1 = p0 + j->block < j->total ? p0 + j->block : j->total, cols = p1 - p0;
    const float *bm = j->x + p0;
    long ldb = j->total;
    if (!conv_is_pointwise(s) || j->pool) {
        if (j->pool)
            nn_kernels()->pool_flat3_cols(j->pool, j->x, j->n, s->cin, p0, p1, scratch,
                                          scratch + (size_t)kdim * j->block);
        else nn_kernels()->im2col(s, j->x, j->n, p0, p1, scratch);
        bm = scratch;
        ldb = cols;
    }
    nn_kernels()->gemm_forward(j->outs, j->nouts, kdim, bm, (size_t)ldb, cols, (size_t)j->total, (size_t)p0, j->relu);
}

static void gemm_fwd_slots(void *ctx, long s0, long s1)
{
    GemmFwdJob *j = ctx;
    (void)s1;
    for (long bi; (bi = atomic_fetch_add(&j->next, 1)) < j->blocks;) gemm_fwd_block(j, bi, j->work + s0 * j->slot);
}

/* A thread's scratch: the block's im2col (none for a plain 1x1 layer); a
 * pooled 1x1 layer's pooled block and the pooling's row maxima. */
static size_t gemm_fwd_slot(const ConvShape *s, const PoolShape *pool, int n)
{
    long block = fwd_block(s, (long)n * s->ho * s->wo);
    if (pool) return (size_t)s->cin * block + pool_flat3_cols_floats(pool, block);
    return conv_is_pointwise(s) ? 0 : (size_t)s->cin * s->k * s->k * block;
}

/* The forward of s (its cout the rows of all outs) by blocks of output
 * positions; pool: the max pooling of x a 1x1 layer multiplies, or NULL. */
static void gemm_forward_outs(const ConvOut *outs, int nouts, const float *x, const PoolShape *pool,
                              const ConvShape *s, int n, int relu, float *work, size_t work_floats)
{
    GemmFwdJob j = {.s = s, .pool = pool, .x = x, .outs = outs, .nouts = nouts, .work = work, .n = n,
                    .relu = relu, .total = (long)n * s->ho * s->wo};
    j.block = fwd_block(s, j.total);
    j.slot = gemm_fwd_slot(s, pool, n);
    long slots = parallel_threads();
    if (j.slot && (long)(work_floats / j.slot) < slots) slots = (long)(work_floats / j.slot);
    if (slots < 1) {
        /* less scratch than planned (a caller's own buffer): smaller blocks
         * (the same bits); a pooled layer's callers plan theirs */
        size_t rows = (size_t)s->cin * s->k * s->k;
        assert(!pool && work_floats >= rows);
        slots = 1;
        j.block = (long)(work_floats / rows);
        j.slot = (size_t)j.block * rows;
    }
    j.blocks = (j.total + j.block - 1) / j.block;
    if (slots > j.blocks) slots = j.blocks;
    atomic_init(&j.next, 0);
    parallel_for(slots, 1, gemm_fwd_slots, &j);
}

/* ---- the forward of an input with few channels: direct (nn/kernels/direct.c) ----
 * Output rows (image, row) are split evenly between the threads, each with its
 * own scratch; every output is computed the same way whoever computes it. */

#define DIRECT_MAX_CIN 4

int conv_direct_applies(const ConvShape *s)
{
    return s->cin <= DIRECT_MAX_CIN && s->k > 1 && (s->stride == 1 || s->stride == 2);
}

size_t conv_direct_scratch_floats(const ConvShape *s)
{
    /* the widest table's needs: 16 lanes, tiles of 8 output channels */
    size_t len = ((size_t)s->wo + 15) / 16 * 16 + (size_t)(s->k + s->stride - 1) / s->stride;
    return (size_t)s->cin * s->k * s->stride * len + direct_pack_floats(s);
}

typedef struct {
    const ConvShape *s;
    const float *x, *wt, *b;
    float *y, *work;
    int n, relu;
    long slots;
} DirectJob;

static void direct_slots(void *ctx, long s0, long s1)
{
    const DirectJob *j = ctx;
    long rows = (long)j->n * j->s->ho;
    for (long t = s0; t < s1; t++)
        nn_kernels()->direct_forward(j->s, j->x, j->wt, j->b, j->relu, j->y, j->n, rows * t / j->slots,
                                     rows * (t + 1) / j->slots, j->work + t * conv_direct_scratch_floats(j->s));
}

static void gemm_forward(float *y, const float *x, const float *wt, const float *b,
                         const ConvShape *s, int n, int relu, float *work, size_t work_floats)
{
    size_t one = conv_direct_scratch_floats(s);
    if (conv_direct_applies(s) && work_floats >= one) {
        DirectJob j = {.s = s, .x = x, .wt = wt, .b = b, .y = y, .work = work, .n = n, .relu = relu};
        j.slots = parallel_threads() < (long)(work_floats / one) ? parallel_threads() : (long)(work_floats / one);
        parallel_for(j.slots, 1, direct_slots, &j);
        return;
    }
    ConvOut out = {y, wt, b, s->cout};
    gemm_forward_outs(&out, 1, x, NULL, s, n, relu, work, work_floats);
}

/* ---- a 1x1 convolution of a max pooling: the pooling block by block ---- */

int conv_pooled_applies(const ConvShape *s, const PoolShape *ps)
{
    return conv_is_pointwise(s) && ps->kind == POOL_MAX && pool_is_flat3(ps) && ps->h == s->h && ps->w == s->w;
}

size_t conv_pooled_work_floats(const ConvShape *s, const PoolShape *ps, int n, int threads)
{
    return gemm_fwd_slot(s, ps, n) * (size_t)threads;
}

void conv_forward_pooled(float *y, const float *x, const PoolShape *ps, const float *wt, const float *b,
                         const ConvShape *s, int n, int relu, float *work, size_t work_floats)
{
    assert(conv_pooled_applies(s, ps));
    ConvOut out = {y, wt, b, s->cout};
    gemm_forward_outs(&out, 1, x, ps, s, n, relu, work, work_floats);
}

/* ---- several 1x1 convolutions of one input: one pass over it ---- */

size_t conv_pointwise_many_floats(const ConvShape *s, int n, int threads)
{
    return gemm_fwd_slot(s, NULL, n) * (size_t)threads;
}

void conv_forward_pointwise_many(const ConvOut *outs, int nouts, const float *x, const ConvShape *s, int n,
                                 int relu, float *work, size_t work_floats)
{
    assert(conv_is_pointwise(s));
    gemm_forward_outs(outs, nouts, x, NULL, s, n, relu, work, work_floats);
}

/* dx = or += col2im(W^T dY), a few whole images at a time: col2im adds into
 * overlapping windows, so each input channel is one thread's. */
static void gemm_backward_data(float *dx, const float *dy, const float *wt, const ConvShape *s, int n,
                               int accum_dx, float *col, size_t col_cap)
{
    int kdim = s->cin * s->k * s->k;
    size_t oplane = (size_t)s->ho * s->wo, ld = (size_t)n * oplane;
    if (conv_is_pointwise(s)) {
        gemm(1, 0, kdim, (int)ld, s->cout, 1.0f, wt, kdim, dy, (int)ld, accum_dx ? 1.0f : 0.0f, dx, (int)ld);
        return;
    }
    int chunk = images_per_chunk(s, n, col_cap);
    size_t plane = (size_t)s->h * s->w;
    for (int n0 = 0; n0 < n; n0 += chunk) {
        int nc = n - n0 < chunk ? n - n0 : chunk;
        ColJob j = {.s = s, .dx = dx, .col = col, .n = n, .n0 = n0, .nc = nc};
        gemm(1, 0, kdim, (int)(nc * oplane), s->cout, 1.0f, wt, kdim, dy + n0 * oplane, (int)ld, 0.0f, col,
             (int)(nc * oplane));
        if (!accum_dx)
            for (int c = 0; c < s->cin; c++) memset(dx + ((size_t)c * n + n0) * plane, 0, sizeof(float) * nc * plane);
        parallel_for(s->cin, 1, col2im_range, &j);
    }
}

/* ---- the weight gradient by GEMM: blocks of output positions into a fixed
 * number of partial sums ----
 * dW = dY . im2col(x)^T sums over every output position (for a 1x1 layer
 * x is its own im2col). Blocks as in the forward; block b is added into
 * partial sum b % G by one thread, in block order, and the G partials into dw
 * in order: the same bits for any thread count, and each block of dY and x is
 * read once (split along the output channels instead, every thread would read
 * all of it). G depends on the shape only. */

#define DW_PARTIALS_MAX 8
#define DW_PARTIALS_BUDGET ((size_t)4 << 20) /* floats */

static int dw_partials(const ConvShape *s, long blocks)
{
    size_t one = (size_t)s->cout * s->cin * s->k * s->k;
    long g = (long)(DW_PARTIALS_BUDGET / one);
    if (g > DW_PARTIALS_MAX) g = DW_PARTIALS_MAX;
    if (g > blocks) g = blocks;
    return g < 1 ? 1 : (int)g;
}

typedef struct {
    const ConvShape *s;
    const float *dy, *x;
    float *partial, *slots;
    int n, parts;
    size_t slot;
    long block, blocks, total;
    atomic_int next;
} GemmDwJob;

static void gemm_dw_slots(void *ctx, long s0, long s1)
{
    GemmDwJob *j = ctx;
    const ConvShape *s = j->s;
    int kdim = s->cin * s->k * s->k;
    float *col = j->slots + s0 * j->slot;
    int pointwise = conv_is_pointwise(s);
    (void)s1;
    for (int g; (g = atomic_fetch_add(&j->next, 1)) < j->parts;) {
        float *acc = j->partial + (size_t)g * s->cout * kdim;
        for (long bi = g; bi < j->blocks; bi += j->parts) {
            long p0 = bi * j->block, p1 = p0 + j->block < j->total ? p0 + j->block : j->total;
            /* a 1x1 layer's block of x is its own im2col */
            const float *bm = j->x + p0;
            long ldb = j->total;
            if (!pointwise) {
                nn_kernels()->im2col(s, j->x, j->n, p0, p1, col);
                bm = col;
                ldb = p1 - p0;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cout, kdim, (int)(p1 - p0), 1.0f,
                        j->dy + p0, (int)j->total, bm, (int)ldb, bi == g ? 0.0f : 1.0f, acc, kdim);
        }
    }
}

typedef struct {
    float *dw;
    const float *partial;
    int parts;
    size_t len;
} DwSumJob;

static void dw_sum_range(void *ctx, long b, long e)
{
    const DwSumJob *j = ctx;
    for (long i = b; i < e; i++) {
        float v = j->partial[i];
        for (int g = 1; g < j->parts; g++) v += j->partial[(size_t)g * j->len + i];
        j->dw[i] += v;
    }
}

static size_t gemm_dw_floats(const ConvShape *s, int n, int threads)
{
    long total = (long)n * s->ho * s->wo, block = fwd_block(s, total);
    size_t one = (size_t)s->cout * s->cin * s->k * s->k;
    size_t col = conv_is_pointwise(s) ? 0 : one / s->cout * block * (size_t)threads;
    return one * dw_partials(s, (total + block - 1) / block) + col;
}

/* Runs fn over min(slots, threads, parts) thread slots, each taking partial
 * sums from the counter next, then adds the parts partial sums of len floats
 * into dw in order. */
static void dw_run(ParallelFn fn, void *job, atomic_int *next, long slots, float *dw, const float *partial,
                   int parts, size_t len)
{
    if (slots > parallel_threads()) slots = parallel_threads();
    if (slots > parts) slots = parts;
    atomic_init(next, 0);
    parallel_for(slots, 1, fn, job);
    DwSumJob sj = {dw, partial, parts, len};
    parallel_for((long)len, 4096, dw_sum_range, &sj);
}

/* ---- the weight gradient of an input with few channels: direct ----
 * Groups of DIRECT_DW_ROWS output rows of one image (nn/kernels/direct.c),
 * group g added into partial sum g % G by one thread, in group order, as the
 * GEMM's blocks are. */

#define DIRECT_DW_ROWS 16

int conv_direct_weights_applies(const ConvShape *s) { return conv_direct_applies(s) && s->cout % 4 == 0; }

size_t conv_direct_weights_scratch_floats(const ConvShape *s, int rows)
{
    size_t rf = (size_t)s->stride * (((size_t)s->wo + 15) / 16 * 16 + (size_t)(s->k + s->stride - 1) / s->stride);
    size_t span = (size_t)(rows - 1) * s->stride + s->k;
    return rf * (1 + (size_t)s->cin * span) + (size_t)rows * s->cin * s->k * s->k;
}

typedef struct {
    const ConvShape *s;
    const float *dy, *x;
    float *partial, *slots;
    int n, parts, rows;
    size_t slot;
    long groups, per_image;
    atomic_int next;
} DirectDwJob;

static long direct_dw_groups(const ConvShape *s, int n) { return (long)n * ((s->ho + DIRECT_DW_ROWS - 1) / DIRECT_DW_ROWS); }

static size_t direct_dw_floats(const ConvShape *s, int n, int threads)
{
    size_t one = (size_t)s->cout * s->cin * s->k * s->k;
    return one * dw_partials(s, direct_dw_groups(s, n)) +
           conv_direct_weights_scratch_floats(s, DIRECT_DW_ROWS) * (size_t)threads;
}

static void direct_dw_slots(void *ctx, long s0, long s1)
{
    DirectDwJob *j = ctx;
    const ConvShape *s = j->s;
    size_t len = (size_t)s->cout * s->cin * s->k * s->k;
    (void)s1;
    for (int g; (g = atomic_fetch_add(&j->next, 1)) < j->parts;) {
        float *acc = j->partial + (size_t)g * len;
        memset(acc, 0, sizeof(float) * len);
        for (long gi = g; gi < j->groups; gi += j->parts) {
            int img = (int)(gi / j->per_image), oh0 = (int)(gi % j->per_image) * DIRECT_DW_ROWS;
            int oh1 = oh0 + DIRECT_DW_ROWS < s->ho ? oh0 + DIRECT_DW_ROWS : s->ho;
            nn_kernels()->direct_weights(s, j->x, j->dy, j->n, img, oh0, oh1, acc, j->slots + s0 * j->slot);
        }
    }
}

/* 0 when done; -1 when the scratch is smaller than planned (GEMM then). */
static int direct_backward_weights(float *dw, const float *dy, const float *x, const ConvShape *s, int n,
                                   float *work, size_t work_floats)
{
    if (!conv_direct_weights_applies(s) || work_floats < direct_dw_floats(s, n, 1)) return -1;
    DirectDwJob j = {.s = s, .dy = dy, .x = x, .n = n, .groups = direct_dw_groups(s, n),
                     .per_image = (s->ho + DIRECT_DW_ROWS - 1) / DIRECT_DW_ROWS};
    size_t len = (size_t)s->cout * s->cin * s->k * s->k;
    j.parts = dw_partials(s, j.groups);
    j.slot = conv_direct_weights_scratch_floats(s, DIRECT_DW_ROWS);
    j.partial = work;
    j.slots = work + len * j.parts;
    dw_run(direct_dw_slots, &j, &j.next, (long)((work_floats - len * j.parts) / j.slot), dw, j.partial, j.parts,
           len);
    return 0;
}

static void gemm_backward_weights(float *dw, const float *dy, const float *x, const ConvShape *s, int n,
                                  float *work, size_t work_floats)
{
    if (direct_backward_weights(dw, dy, x, s, n, work, work_floats) == 0) return;
    int kdim = s->cin * s->k * s->k;
    long total = (long)n * s->ho * s->wo;
    GemmDwJob j = {.s = s, .dy = dy, .x = x, .n = n, .total = total};
    j.block = fwd_block(s, total);
    j.blocks = (total + j.block - 1) / j.block;
    j.parts = dw_partials(s, j.blocks);
    j.slot = conv_is_pointwise(s) ? 0 : (size_t)kdim * j.block;
    size_t len = (size_t)s->cout * kdim;
    if (work_floats < len * j.parts + j.slot) {
        /* less scratch than planned (a caller's own buffer): one partial, smaller blocks */
        assert(work_floats >= len + (size_t)kdim);
        j.parts = 1;
        j.block = (long)((work_floats - len) / kdim);
        j.blocks = (total + j.block - 1) / j.block;
        j.slot = (size_t)kdim * j.block;
    }
    j.partial = work;
    j.slots = work + len * j.parts;
    dw_run(gemm_dw_slots, &j, &j.next, j.slot ? (long)((work_floats - len * j.parts) / j.slot) : parallel_threads(),
           dw, j.partial, j.parts, len);
}

/* ---- plans ---- */

static const char *const ALGO_NAMES[CONV_ALGOS] = {"gemm", "f2x3", "f4x3", "f2x5", "f4x5"};

const char *conv_algo_name(ConvAlgo a) { return a < CONV_ALGOS ? ALGO_NAMES[a] : "?"; }

int conv_algo_parse(const char *name)
{
    for (int a = 0; a < CONV_ALGOS; a++)
        if (strcmp(name, ALGO_NAMES[a]) == 0) return a;
    return -1;
}

static WinoAlg wino_of(ConvAlgo a) { return (WinoAlg)(a - CONV_F2X3); }

int conv_algo_applies(ConvAlgo a, const ConvShape *s)
{
    if (a == CONV_GEMM) return 1;
    return a < CONV_ALGOS && wino_applies(wino_of(a), s);
}

int conv_default_block(ConvAlgo a, const ConvShape *s, int n, ConvPass pass)
{
    return a == CONV_GEMM ? 0 : wino_default_block(wino_of(a), s, n, (int)pass);
}

ConvPlan conv_plan_uniform(ConvAlgo a, const ConvShape *s, int n)
{
    ConvPlan p = {{CONV_GEMM, CONV_GEMM, CONV_GEMM}, {0, 0, 0}};
    if (!conv_algo_applies(a, s)) return p;
    for (int i = 0; i < CONV_PASSES; i++) {
        p.algo[i] = (uint8_t)a;
        p.block[i] = (uint16_t)conv_default_block(a, s, n, (ConvPass)i);
    }
    return p;
}

int conv_plan_valid(const ConvPlan *p, const ConvShape *s)
{
    for (int i = 0; i < CONV_PASSES; i++) {
        if (p->algo[i] >= CONV_ALGOS || !conv_algo_applies(p->algo[i], s)) return -1;
        if (p->algo[i] != CONV_GEMM && (p->block[i] < 16 || p->block[i] % 16 != 0)) return -1;
    }
    return 0;
}

/* Pass 0: the forward's blocks; 1: backward data's chunk of whole images;
 * 2: the weight gradient's partial sums and blocks. */
static size_t gemm_work_floats(const ConvShape *s, int n, int threads, int pass)
{
    if (pass == 0 && conv_direct_applies(s)) return conv_direct_scratch_floats(s) * (size_t)threads;
    if (pass == 0) return gemm_fwd_slot(s, NULL, n) * (size_t)threads;
    if (pass == 2 && conv_direct_weights_applies(s)) return direct_dw_floats(s, n, threads);
    if (pass == 2) return gemm_dw_floats(s, n, threads);
    size_t all = conv_col_floats(s, n), one = conv_col_floats(s, 1);
    return all <= COL_BUDGET_FLOATS ? all : one > COL_BUDGET_FLOATS ? one : COL_BUDGET_FLOATS;
}

size_t conv_work_floats(const ConvShape *s, const ConvPlan *p, int n, int threads, int backward)
{
    size_t need = 0;
    for (int i = 0; i < (backward ? CONV_PASSES : 1); i++) {
        ConvAlgo a = p ? (ConvAlgo)p->algo[i] : CONV_GEMM;
        size_t f = a == CONV_GEMM ? gemm_work_floats(s, n, threads, i)
                                  : wino_scratch_floats(wino_of(a), s, n, p->block[i], threads, i);
        if (f > need) need = f;
    }
    return need;
}

/* ---- forward / backward by plan ---- */

void conv_forward(float *y, const float *x, const float *wt, const float *b, const ConvShape *s,
                  int n, int relu, const ConvPlan *p, float *work, size_t work_floats)
{
    if (p && p->algo[CONV_FWD] != CONV_GEMM)
        wino_forward(y, x, wt, b, s, n, relu, wino_of(p->algo[CONV_FWD]), p->block[CONV_FWD], work,
                     work_floats);
    else
        gemm_forward(y, x, wt, b, s, n, relu, work, work_floats);
}

void conv_filter_cache_free(ConvFilterCache *c)
{
    free(c->up);
    free(c->src);
    *c = (ConvFilterCache){0};
}

/* Room for n floats in *buf of *cap; 0 when it cannot be had. */
static int cache_room(float **buf, size_t *cap, size_t n)
{
    if (*cap >= n) return 1;
    free(*buf);
    *buf = aligned_alloc(64, (n + 15) / 16 * 16 * sizeof(float));
    *cap = *buf ? n : 0;
    return *buf != NULL;
}

void conv_forward_cached(ConvFilterCache *c, float *y, const float *x, const float *wt, const float *b,
                         const ConvShape *s, int n, int relu, const ConvPlan *p, float *work,
                         size_t work_floats)
{
    if (!c || !p || p->algo[CONV_FWD] == CONV_GEMM) {
        conv_forward(y, x, wt, b, s, n, relu, p, work, work_floats);
        return;
    }
    WinoAlg a = wino_of(p->algo[CONV_FWD]);
    size_t nw = (size_t)s->cout * s->cin * s->k * s->k, nu = wino_filters_floats(a, s);
    int layout = wino_filters_layout();
    if (c->up_cap < nu || c->src_cap < nw) c->valid = 0;
    if (!cache_room(&c->up, &c->up_cap, nu) || !cache_room(&c->src, &c->src_cap, nw)) {
        /* no memory for the cache: prepare them every call, as conv_forward does */
        conv_filter_cache_free(c);
        conv_forward(y, x, wt, b, s, n, relu, p, work, work_floats);
        return;
    }
    if (!c->valid || c->algo != (int)a || c->layout != layout || memcmp(c->src, wt, nw * sizeof(float))) {
        wino_forward_filters(c->up, wt, s, a, work, work_floats);
        memcpy(c->src, wt, nw * sizeof(float));
        c->algo = (int)a;
        c->layout = layout;
        c->valid = 1;
    }
    wino_forward_prepared(y, x, c->up, b, s, n, relu, a, p->block[CONV_FWD], work, work_floats);
}

void conv_backward_data(float *dx, const float *dy, const float *wt, const ConvShape *s, int n,
                        int accum_dx, const ConvPlan *p, float *work, size_t work_floats)
{
    ConvAlgo a = p ? (ConvAlgo)p->algo[CONV_BWD_DATA] : CONV_GEMM;
    if (a == CONV_GEMM) gemm_backward_data(dx, dy, wt, s, n, accum_dx, work, work_floats);
    else wino_backward_data(dx, dy, wt, s, n, accum_dx, wino_of(a), p->block[CONV_BWD_DATA], work, work_floats);
}

void conv_backward_weights(float *dw, const float *dy, const float *x, const ConvShape *s, int n,
                           const ConvPlan *p, float *work, size_t work_floats)
{
    ConvAlgo a = p ? (ConvAlgo)p->algo[CONV_BWD_WEIGHTS] : CONV_GEMM;
    if (a == CONV_GEMM) gemm_backward_weights(dw, dy, x, s, n, work, work_floats);
    else wino_backward_weights(dw, dy, x, s, n, wino_of(a), p->block[CONV_BWD_WEIGHTS], work, work_floats);
}

void conv_backward_bias(float *db, float *dy, const float *relu_y, const ConvShape *s, int n)
{
    RowJob rj = {.dy = dy, .relu_y = relu_y, .db = db, .len = (size_t)n * s->ho * s->wo};
    parallel_for(s->cout, 1, bias_grad_range, &rj);
}

void conv_backward(float *dx, float *dw, float *db, float *dy, const float *relu_y,
                   const float *x, const float *wt, const ConvShape *s, int n, int accum_dx,
                   const ConvPlan *p, float *work, size_t work_floats)
{
    conv_backward_bias(db, dy, relu_y, s, n);
    conv_backward_weights(dw, dy, x, s, n, p, work, work_floats);
    if (dx) conv_backward_data(dx, dy, wt, s, n, accum_dx, p, work, work_floats);
}

/* ---- reference ---- */

#define X4(p, c, i, hh, ww, N, H, W) (p)[((((size_t)(c) * (N) + (i)) * (H) + (hh)) * (W)) + (ww)]

void conv_forward_naive(float *y, const float *x, const float *wt, const float *b,
                        const ConvShape *s, int n, int relu)
{
    for (int co = 0; co < s->cout; co++)
        for (int i = 0; i < n; i++)
            for (int oh = 0; oh < s->ho; oh++)
                for (int ow = 0; ow < s->wo; ow++) {
                    double acc = b[co];
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int kh = 0; kh < s->k; kh++)
                            for (int kw = 0; kw < s->k; kw++) {
                                int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                acc += (double)wt[((co * s->cin + ci) * s->k + kh) * s->k + kw] *
                                       X4(x, ci, i, ih, iw, n, s->h, s->w);
                            }
                    float v = (float)acc;
                    X4(y, co, i, oh, ow, n, s->ho, s->wo) = relu && v < 0 ? 0.0f : v;
                }
}

void conv_backward_naive(float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *wt, const ConvShape *s, int n, int accum_dx)
{
    if (dx && !accum_dx) memset(dx, 0, sizeof(float) * s->cin * n * s->h * s->w);
    for (int co = 0; co < s->cout; co++)
        for (int i = 0; i < n; i++)
            for (int oh = 0; oh < s->ho; oh++)
                for (int ow = 0; ow < s->wo; ow++) {
                    float g = X4(dy, co, i, oh, ow, n, s->ho, s->wo);
                    db[co] += g;
                    for (int ci = 0; ci < s->cin; ci++)
                        for (int kh = 0; kh < s->k; kh++)
                            for (int kw = 0; kw < s->k; kw++) {
                                int ih = oh * s->stride - s->pad + kh, iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->h || iw < 0 || iw >= s->w) continue;
                                size_t wi = ((size_t)(co * s->cin + ci) * s->k + kh) * s->k + kw;
                                dw[wi] += g * X4(x, ci, i, ih, iw, n, s->h, s->w);
                                if (dx) X4(dx, ci, i, ih, iw, n, s->h, s->w) += g * wt[wi];
                            }
                }
}
