/* winograd.c: Winograd convolution, the three passes (see winograd.h).
 *
 * Forward and backward data: each thread takes whole blocks of tiles (an
 * atomic counter hands them out), transforms the block's input into its own V,
 * and the fused kernel makes the alpha^2 products a few output channels and
 * tiles at a time in registers and transforms them into the output at once; no
 * two blocks write the same output, so the threads never meet. Backward
 * weights: the same, into a fixed number of partial sums of dU, block b into
 * sum b % G in block order, the sums then added in order: the same bits
 * whatever the thread count.
 */
#include "nn/winograd.h"

#include <assert.h>
#include <cblas.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/parallel.h"

/* Tile arrays and blocks are padded to the widest table's lanes. */
#define LANES 16
/* Scratch aimed at per block: one thread's V and M (forward, backward data),
 * and one thread's V and dM (the weight gradient: larger, the tiles are the
 * GEMMs' K). */
#define BLOCK_BUDGET_FLOATS ((size_t)384 << 10)
#define V_SKEW 16
#define BLOCK_BUDGET_FLOATS_DW ((size_t)1 << 20)

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

int wino_applies(WinoAlg a, const ConvShape *s)
{
    return a < WINO_ALGS && s->stride == 1 && s->k == wino_r(a) && s->pad < s->k &&
           s->ho >= 1 && s->wo >= 1;
}

/* A convolution as the tile kernels run it: backward data is a convolution of
 * dY (cout channels, ho x wo) into dX (cin channels, h x w). */
typedef struct {
    WinoAlg a;
    int A, M;
    int cin, cout;
    WinoGeom g;
    long tw, per_image, tiles;
    int block;
    long blocks;
} Tiling;

static void tiling_init(Tiling *t, WinoAlg a, int cin, int cout, int h, int w, int ho, int wo,
                        int pad, int n, int block)
{
    t->a = a;
    t->A = wino_alpha(a);
    t->M = wino_m(a);
    t->cin = cin;
    t->cout = cout;
    t->g = (WinoGeom){.h = h, .w = w, .ho = ho, .wo = wo, .pad = pad,
                      .in_cstride = (size_t)n * h * w, .out_cstride = (size_t)n * ho * wo};
    long th = (ho + t->M - 1) / t->M;
    t->tw = (wo + t->M - 1) / t->M;
    t->per_image = th * t->tw;
    t->tiles = t->per_image * n;
    t->block = block;
    t->blocks = (t->tiles + block - 1) / block;
    /* the kernels index a channel's planes with 32-bit offsets */
    assert((size_t)n * h * w < INT32_MAX && (size_t)n * ho * wo < INT32_MAX);
}

static void tiling_forward(Tiling *t, const ConvShape *s, WinoAlg a, int n, int block)
{
    tiling_init(t, a, s->cin, s->cout, s->h, s->w, s->ho, s->wo, s->pad, n, block);
}

static void tiling_backward_data(Tiling *t, const ConvShape *s, WinoAlg a, int n, int block)
{
    tiling_init(t, a, s->cout, s->cin, s->ho, s->wo, s->h, s->w, s->k - 1 - s->pad, n, block);
}

/* Tiles of block bi, in row-major order over (image, tile row, tile column),
 * as runs along tile rows. */
static void tiles_fill(const Tiling *t, long bi, WinoTiles *tl, WinoRun *runs)
{
    long p0 = bi * t->block;
    int cnt = (int)(t->tiles - p0 < t->block ? t->tiles - p0 : t->block);
    long img = p0 / t->per_image, r = p0 % t->per_image;
    long ty = r / t->tw, tx = r % t->tw;
    int nr = 0;
    for (int done = 0; done < cnt;) {
        int len = (int)(t->tw - tx < cnt - done ? t->tw - tx : cnt - done);
        runs[nr++] = (WinoRun){(int32_t)img, (int32_t)ty, (int32_t)tx, len, done};
        done += len;
        tx = 0;
        if (++ty * t->tw == t->per_image) {
            ty = 0;
            img++;
        }
    }
    *tl = (WinoTiles){runs, nr, cnt};
}

/* ---- scratch ---- */

static size_t u_floats(const Tiling *t) { return round_up((size_t)t->A * t->A * t->cin * t->cout, 16); }

/* U packed for the fused kernel: output channels padded to a multiple of 16,
 * which every table's kr divides */
static size_t up_floats(const Tiling *t) { return round_up((size_t)t->A * t->A * t->cin * round_up(t->cout, 16), 16); }

/* One thread's block: V (cin, alpha^2, block), then for the weight gradient
 * dM (cout, alpha^2, block), then the block's runs of tiles. The forward and
 * backward-data products never leave the fused kernel's registers and L1, so
 * they need no M. */
static size_t slot_tiles_floats(const Tiling *t, int with_m)
{
    return round_up((size_t)t->A * t->A * ((t->cin + (with_m ? t->cout : 0)) * t->block + V_SKEW), 16);
}

static size_t slot_floats(const Tiling *t, int with_m)
{
    size_t run_floats = sizeof(WinoRun) / sizeof(float) * (size_t)t->block;
    return slot_tiles_floats(t, with_m) + round_up(run_floats, 16);
}

static void slot_views(const Tiling *t, int with_m, float *slot, float **v, float **m, WinoRun **runs)
{
    *v = slot;
    *m = with_m ? slot + (size_t)t->A * t->A * t->cin * t->block : NULL;
    *runs = (WinoRun *)(slot + slot_tiles_floats(t, with_m));
}

int wino_default_block(WinoAlg a, const ConvShape *s, int n, int pass)
{
    int A = wino_alpha(a), M = wino_m(a);
    size_t budget = pass == 2 ? BLOCK_BUDGET_FLOATS_DW : BLOCK_BUDGET_FLOATS;
    size_t b = budget / ((size_t)A * A * (s->cin + s->cout));
    int oh = pass == 1 ? s->h : s->ho, ow = pass == 1 ? s->w : s->wo;
    size_t tiles = (size_t)n * ((oh + M - 1) / M) * ((ow + M - 1) / M);
    b = b / LANES * LANES;
    if (b < 2 * LANES) b = 2 * LANES;
    if (b > 1024) b = 1024;
    if (b > round_up(tiles, LANES)) b = round_up(tiles, LANES);
    return (int)b;
}

#define DW_PARTS_MAX 4
#define DW_PARTS_BUDGET ((size_t)8 << 20) /* floats of partial sums at most */

static int dw_parts(const Tiling *t)
{
    long g = (long)(DW_PARTS_BUDGET / u_floats(t));
    if (g > DW_PARTS_MAX) g = DW_PARTS_MAX;
    if (g > t->blocks) g = t->blocks;
    return g < 1 ? 1 : (int)g;
}

size_t wino_scratch_floats(WinoAlg a, const ConvShape *s, int n, int block, int threads, int pass)
{
    Tiling t;
    if (pass == 1) tiling_backward_data(&t, s, a, n, block);
    else tiling_forward(&t, s, a, n, block);
    if (pass == 2) {
        long slots = threads < dw_parts(&t) ? threads : dw_parts(&t);
        return (size_t)dw_parts(&t) * u_floats(&t) + (size_t)slots * slot_floats(&t, 1);
    }
    long slots = threads < t.blocks ? threads : t.blocks;
    return u_floats(&t) + up_floats(&t) + (size_t)slots * slot_floats(&t, 0);
}

/* ---- filters ---- */

typedef struct {
    const NnKernels *kn;
    WinoAlg a;
    float *u;
    const float *wt;
    int cout, cin, flip; /* of wt */
    size_t total;
} FilterJob;

static void filter_range(void *ctx, long b, long e)
{
    const FilterJob *j = ctx;
    size_t e0 = (size_t)b * LANES, e1 = (size_t)e * LANES;
    if (e1 > j->total) e1 = j->total;
    j->kn->wino_filter(j->a, j->u, j->total, j->wt, j->cout, j->cin, j->flip, e0, e1);
}

static void filters(const NnKernels *kn, WinoAlg a, float *u, const float *wt, int cout, int cin, int flip)
{
    FilterJob j = {kn, a, u, wt, cout, cin, flip, (size_t)cout * cin};
    parallel_for((long)((j.total + LANES - 1) / LANES), 4, filter_range, &j);
}

typedef struct {
    const float *u; /* (alpha^2, cout, cin) */
    float *up;
    int cout, cin, kr, aa;
} PackJob;

/* up[((kt*aa + xi)*cin + c)*kr + r] = u[xi][kt*kr + r][c], zero past cout */
static void pack_range(void *ctx, long b, long e)
{
    const PackJob *j = ctx;
    int nkt = (j->cout + j->kr - 1) / j->kr;
    for (long xi = b; xi < e; xi++) {
        const float *u = j->u + (size_t)xi * j->cout * j->cin;
        for (int kt = 0; kt < nkt; kt++) {
            float *up = j->up + ((size_t)kt * j->aa + xi) * j->kr * j->cin;
            for (int c = 0; c < j->cin; c++)
                for (int r = 0; r < j->kr; r++) {
                    int k = kt * j->kr + r;
                    *up++ = k < j->cout ? u[(size_t)k * j->cin + c] : 0.0f;
                }
        }
    }
}

/* ---- forward and backward data: blocks per thread ---- */

typedef struct {
    const Tiling *t;
    const NnKernels *kn;
    const float *in, *up, *bias;
    float *out, *slots;
    size_t slot;
    int relu, accum;
    atomic_long next;
} ConvJob;

static void conv_block(const ConvJob *j, long bi, float *v, WinoRun *runs)
{
    const Tiling *t = j->t;
    /* V (alpha^2, cin, block): for each xi the fused kernel reads the
     * channels' tiles as one contiguous stretch */
    size_t aa = (size_t)t->A * t->A, blk = (size_t)t->block, ld = (size_t)t->cin * blk + V_SKEW;
    WinoTiles tl;
    tiles_fill(t, bi, &tl, runs);
    j->kn->wino_input(t->a, v, ld, blk, j->in, t->cin, &t->g, &tl);
    /* the fused kernel reads whole vectors of tiles: numbers past the last */
    int pad = (int)(round_up((size_t)tl.count, LANES) - (size_t)tl.count);
    if (pad)
        for (size_t xi = 0; xi < aa; xi++)
            for (size_t c = 0; c < (size_t)t->cin; c++) memset(v + xi * ld + c * blk + tl.count, 0, sizeof(float) * pad);
    j->kn->wino_gemm_output(t->a, j->up, v, ld, blk, t->cin, t->cout, j->out, &t->g, &tl, j->bias, j->relu, j->accum);
}

static void conv_slots(void *ctx, long s0, long s1)
{
    ConvJob *j = ctx;
    float *v, *m;
    WinoRun *runs;
    slot_views(j->t, 0, j->slots + (size_t)s0 * j->slot, &v, &m, &runs);
    (void)s1;
    for (long bi; (bi = atomic_fetch_add(&j->next, 1)) < j->t->blocks;) conv_block(j, bi, v, runs);
}

/* The filters of t's convolution, transformed and packed for the fused
 * kernel, into up; u: scratch of u_floats(t). */
static void prepare_filters(const Tiling *t, const NnKernels *kn, float *up, float *u, const float *wt, int flip)
{
    /* as the kernels see it: filters (cout x cin) of this convolution; flipped,
     * they come from the forward layer's (cin x cout) */
    if (flip) filters(kn, t->a, u, wt, t->cin, t->cout, 1);
    else filters(kn, t->a, u, wt, t->cout, t->cin, 0);
    PackJob pj = {u, up, t->cout, t->cin, kn->wino_kr(), t->A * t->A};
    parallel_for((long)t->A * t->A, 1, pack_range, &pj);
}

/* The convolution of in by the packed filters up, blocks per thread in work. */
static void run_prepared(const Tiling *t, const NnKernels *kn, const float *in, const float *up,
                         const float *bias, float *out, int relu, int accum, float *work, size_t work_floats)
{
    size_t slot = slot_floats(t, 0);
    assert(work_floats >= slot);
    long slots = (long)(work_floats / slot);
    if (slots > parallel_threads()) slots = parallel_threads();
    if (slots > t->blocks) slots = t->blocks;
    ConvJob j = {.t = t, .kn = kn, .in = in, .up = up, .bias = bias, .out = out,
                 .slots = work, .slot = slot, .relu = relu, .accum = accum};
    atomic_init(&j.next, 0);
    parallel_for(slots, 1, conv_slots, &j);
}

static void run_conv(const Tiling *t, const float *in, const float *wt, int flip, const float *bias,
                     float *out, int relu, int accum, float *work, size_t work_floats)
{
    const NnKernels *kn = nn_kernels();
    size_t head = u_floats(t) + up_floats(t);
    assert(work_floats >= head);
    prepare_filters(t, kn, work + u_floats(t), work, wt, flip);
    run_prepared(t, kn, in, work + u_floats(t), bias, out, relu, accum, work + head, work_floats - head);
}

void wino_forward(float *y, const float *x, const float *wt, const float *b, const ConvShape *s,
                  int n, int relu, WinoAlg a, int block, float *work, size_t work_floats)
{
    Tiling t;
    tiling_forward(&t, s, a, n, block);
    run_conv(&t, x, wt, 0, b, y, relu, 0, work, work_floats);
}

size_t wino_filters_floats(WinoAlg a, const ConvShape *s)
{
    Tiling t;
    tiling_forward(&t, s, a, 1, LANES);
    return up_floats(&t);
}

int wino_filters_layout(void) { return nn_kernels()->wino_kr(); }

void wino_forward_filters(float *up, const float *wt, const ConvShape *s, WinoAlg a, float *work,
                          size_t work_floats)
{
    Tiling t;
    tiling_forward(&t, s, a, 1, LANES);
    assert(work_floats >= u_floats(&t));
    prepare_filters(&t, nn_kernels(), up, work, wt, 0);
}

void wino_forward_prepared(float *y, const float *x, const float *up, const float *b, const ConvShape *s,
                           int n, int relu, WinoAlg a, int block, float *work, size_t work_floats)
{
    Tiling t;
    tiling_forward(&t, s, a, n, block);
    run_prepared(&t, nn_kernels(), x, up, b, y, relu, 0, work, work_floats);
}

void wino_backward_data(float *dx, const float *dy, const float *wt, const ConvShape *s, int n,
                        int accum, WinoAlg a, int block, float *work, size_t work_floats)
{
    Tiling t;
    tiling_backward_data(&t, s, a, n, block);
    run_conv(&t, dy, wt, 1, NULL, dx, 0, accum, work, work_floats);
}

/* ---- backward weights: blocks per thread into a fixed number of partial sums ----
 * Block b is transformed and multiplied by one thread, in its own V and dM,
 * and added into partial sum b % G of dU (alpha^2, K, C); the G partials are
 * then summed in order, and G^T dU G taken once per (k, c). G depends on the
 * shape only: the same bits for any thread count. */

typedef struct {
    const Tiling *t;
    const NnKernels *kn;
    const float *x, *dy;
    float *du, *dw, *slots;
    size_t slot;
    int parts;
    atomic_int next;
} GradJob;

/* Block bi's V and dM in the thread's slot, then dU_g[xi] += dM[xi] V[xi]^T. */
static void grad_block(const GradJob *j, long bi, int first, float *du, float *v, float *dm, WinoRun *runs)
{
    const Tiling *t = j->t;
    size_t blk = (size_t)t->block, kc = (size_t)t->cout * t->cin, aa = (size_t)t->A * t->A, ld = aa * blk;
    WinoTiles tl;
    tiles_fill(t, bi, &tl, runs);
    j->kn->wino_input(t->a, v, blk, ld, j->x, t->cin, &t->g, &tl);
    j->kn->wino_dy(t->a, dm, blk, ld, j->dy, t->cout, &t->g, &tl);
    for (size_t xi = 0; xi < aa; xi++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, t->cout, t->cin, tl.count, 1.0f, dm + xi * blk,
                    (int)ld, v + xi * blk, (int)ld, first ? 0.0f : 1.0f, du + xi * kc, t->cin);
}

static void grad_slots(void *ctx, long s0, long s1)
{
    GradJob *j = ctx;
    const Tiling *t = j->t;
    float *v, *dm;
    WinoRun *runs;
    slot_views(t, 1, j->slots + (size_t)s0 * j->slot, &v, &dm, &runs);
    (void)s1;
    for (int g; (g = atomic_fetch_add(&j->next, 1)) < j->parts;)
        for (long bi = g; bi < t->blocks; bi += j->parts)
            grad_block(j, bi, bi == g, j->du + (size_t)g * u_floats(t), v, dm, runs);
}

static void grad_sum_range(void *ctx, long b, long e)
{
    const GradJob *j = ctx;
    size_t len = u_floats(j->t);
    for (long i = b; i < e; i++) {
        float v = j->du[i];
        for (int g = 1; g < j->parts; g++) v += j->du[(size_t)g * len + i];
        j->du[i] = v;
    }
}

static void grad_filter_range(void *ctx, long b, long e)
{
    const GradJob *j = ctx;
    size_t kc = (size_t)j->t->cout * j->t->cin, e0 = (size_t)b * LANES, e1 = (size_t)e * LANES;
    if (e1 > kc) e1 = kc;
    j->kn->wino_filter_grad(j->t->a, j->dw, j->du, kc, e0, e1);
}

void wino_backward_weights(float *dw, const float *dy, const float *x, const ConvShape *s, int n,
                           WinoAlg a, int block, float *work, size_t work_floats)
{
    Tiling t;
    tiling_forward(&t, s, a, n, block);
    GradJob j = {.t = &t, .kn = nn_kernels(), .x = x, .dy = dy, .du = work, .dw = dw, .parts = dw_parts(&t),
                 .slot = slot_floats(&t, 1)};
    j.slots = work + (size_t)j.parts * u_floats(&t);
    assert(work_floats >= (size_t)j.parts * u_floats(&t) + j.slot);
    long slots = (long)((work_floats - (size_t)j.parts * u_floats(&t)) / j.slot);
    if (slots > parallel_threads()) slots = parallel_threads();
    if (slots > j.parts) slots = j.parts;
    atomic_init(&j.next, 0);
    parallel_for(slots, 1, grad_slots, &j);
    parallel_for((long)u_floats(&t), 4096, grad_sum_range, &j);
    parallel_for((long)((size_t)t.cout * t.cin + LANES - 1) / LANES, 4, grad_filter_range, &j);
}
