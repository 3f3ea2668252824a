/* fuse.c: the fused inference passes (see fuse.h). Work is split into items
 * of (image, band of output rows); each thread takes a contiguous range of
 * items with its own scratch. A band starts its rings afresh, so a row at a
 * band's edge may be made twice: bands are whole images unless there are too
 * few images to keep the threads busy. */
#include "nn/fuse.h"

#include <assert.h>
#include <string.h>

#include "nn/kernels/kernels.h"
#include "nn/parallel.h"

#define ROUND16(x) (((size_t)(x) + 15) / 16 * 16)
#define BAND_MIN_ROWS 8 /* output rows a band has at least (a ring refilled at most once per 8 rows) */
#define CPL_CHUNK 8     /* pooled rows normalised together: runs of a few hundred floats per channel written */

int fuse_conv_applies(const ConvShape *s) { return conv_direct_applies(s); }

int fuse_pool_applies(const PoolShape *s) { return s->kind == POOL_MAX && !s->adaptive && !pool_is_flat3(s); }

/* Bands per image so that n images give every thread a few items. */
static int bands_per_image(int n, int ho)
{
    int want = (4 * parallel_threads() + n - 1) / n, most = (ho + BAND_MIN_ROWS - 1) / BAND_MIN_ROWS;
    if (want > most) want = most;
    return want < 1 ? 1 : want;
}

/* Threads to use: at most one per item and one per share of scratch. */
static long slots_for(long items, size_t work_floats, size_t shared, size_t per_thread)
{
    long t = parallel_threads();
    if (t > items) t = items;
    if (work_floats < shared + per_thread) return 0;
    long fit = (long)((work_floats - shared) / per_thread);
    return t < fit ? t : fit;
}

/* ---- direct convolution -> max pooling -> LRN ---- */

typedef struct {
    const ConvShape *cs;
    const PoolShape *ps;
    LrnShape lrn;
    const PoolWindow *th, *tw;
    const float *x, *wpack, *b;
    float *y, *work;
    int relu, n, bands;
    long items, slots;
    size_t per_thread;
} ConvPoolLrnJob;

/* Per thread: the input ring of the direct kernel, k_pool rows of all output
 * channels of the convolution, CPL_CHUNK pooled rows of them, and the pool's row. */
static size_t cpl_thread_floats(const ConvShape *cs, const PoolShape *ps)
{
    return ROUND16(conv_direct_scratch_floats(cs)) + (size_t)ps->k * cs->cout * ROUND16(cs->wo) +
           (size_t)cs->cout * ROUND16((size_t)CPL_CHUNK * ps->wo) + ROUND16(ps->w + 32);
}

size_t fuse_conv_pool_lrn_floats(const ConvShape *cs, const PoolShape *ps, int threads)
{
    return ROUND16(direct_pack_floats(cs)) + cpl_thread_floats(cs, ps) * (size_t)threads;
}

/* Pooled rows [oh0, oh1) of image img: each convolution row made once into
 * the ring (row r in slot r % k_pool), each pooled row made when its window's
 * rows exist, and every CPL_CHUNK of them normalised across the channels
 * together and written to y. */
static void cpl_band(const ConvPoolLrnJob *j, int img, int oh0, int oh1, float *scratch, long *tag)
{
    const ConvShape *cs = j->cs;
    const PoolShape *ps = j->ps;
    const NnKernels *kn = nn_kernels();
    size_t ldc = ROUND16(cs->wo), ldp = ROUND16((size_t)CPL_CHUNK * ps->wo), slot = (size_t)cs->cout * ldc;
    size_t oplane = (size_t)ps->ho * ps->wo;
    float *ring = scratch, *crow = ring + ROUND16(conv_direct_scratch_floats(cs));
    float *prow = crow + (size_t)ps->k * slot, *v = prow + (size_t)cs->cout * ldp;
    const float *rows[ps->k];
    int next = j->th[oh0].lo;
    for (int oh = oh0; oh < oh1; oh++) {
        int lo = j->th[oh].lo, hi = j->th[oh].hi;
        for (int r = next > lo ? next : lo; r < hi; r++)
            kn->direct_row(cs, j->x, j->n, img, r, j->wpack, j->b, j->relu, crow + (size_t)(r % ps->k) * slot, ldc,
                           ring, tag);
        next = hi;
        int at = (oh - oh0) % CPL_CHUNK;
        for (int c = 0; c < cs->cout; c++) {
            for (int r = lo; r < hi; r++) rows[r - lo] = crow + (size_t)(r % ps->k) * slot + (size_t)c * ldc;
            kn->pool_max_row(ps, j->tw, rows, hi - lo, prow + (size_t)c * ldp + (size_t)at * ps->wo, v);
        }
        if (at == CPL_CHUNK - 1 || oh == oh1 - 1) {
            size_t q0 = (size_t)img * oplane + (size_t)(oh - at) * ps->wo;
            kn->lrn_forward_span(&j->lrn, prow, ldp, j->y + q0, j->lrn.plane, q0, (at + 1) * ps->wo);
        }
    }
}

static void cpl_slots(void *ctx, long s0, long s1)
{
    const ConvPoolLrnJob *j = ctx;
    long tag[j->cs->cin * j->cs->k];
    for (long t = s0; t < s1; t++) {
        for (int i = 0; i < j->cs->cin * j->cs->k; i++) tag[i] = -1;
        float *scratch = j->work + t * j->per_thread;
        for (long it = j->items * t / j->slots; it < j->items * (t + 1) / j->slots; it++) {
            int img = (int)(it / j->bands), band = (int)(it % j->bands);
            cpl_band(j, img, (int)((long)j->ps->ho * band / j->bands), (int)((long)j->ps->ho * (band + 1) / j->bands),
                     scratch, tag);
        }
    }
}

void fuse_conv_pool_lrn(float *y, const float *x, const float *wt, const float *b, int relu, const ConvShape *cs,
                        const PoolShape *ps, const LrnShape *lrn, int n, float *work, size_t work_floats)
{
    PoolWindow th[ps->ho], tw[ps->wo];
    pool_windows(ps, th, tw);
    ConvPoolLrnJob j = {.cs = cs, .ps = ps, .lrn = *lrn, .th = th, .tw = tw, .x = x, .b = b, .y = y,
                        .relu = relu, .n = n, .per_thread = cpl_thread_floats(cs, ps)};
    j.lrn.c = cs->cout;
    j.lrn.plane = (size_t)n * ps->ho * ps->wo;
    j.bands = bands_per_image(n, ps->ho);
    j.items = (long)n * j.bands;
    size_t pack = ROUND16(direct_pack_floats(cs));
    j.slots = slots_for(j.items, work_floats, pack, j.per_thread);
    assert(j.slots >= 1);
    nn_kernels()->direct_pack(cs, wt, work);
    j.wpack = work;
    j.work = work + pack;
    parallel_for(j.slots, 1, cpl_slots, &j);
}

/* ---- LRN -> max pooling ---- */

/* Bytes of normalised rows a thread keeps (L2-resident, with room for the other thread's). */
#define LP_BUDGET (384 * 1024)

typedef struct {
    const PoolShape *ps;
    LrnShape lrn;
    const PoolWindow *th, *tw;
    const float *x;
    float *y, *work;
    int n, bands, chunk; /* chunk: output rows pooled from one buffer of normalised rows */
    long items, slots;
    size_t per_thread, ld;
} LrnPoolJob;

/* Output rows a buffer serves: as many as LP_BUDGET holds the input rows of
 * (in runs of a few kB per channel, which the prefetchers follow), at least 1. */
static int lp_chunk(const PoolShape *ps, int c)
{
    size_t row = (size_t)c * ps->w * sizeof(float);
    int rows = (int)(LP_BUDGET / row), chunk = rows < ps->k ? 1 : (rows - ps->k) / ps->stride + 1;
    return chunk < ps->ho ? chunk : ps->ho;
}

/* Input rows the chunk's output rows read, and the floats of a channel's run of them. */
static int lp_rows(const PoolShape *ps, int chunk) { return (chunk - 1) * ps->stride + ps->k; }
static size_t lp_ld(const PoolShape *ps, int chunk) { return ROUND16((size_t)lp_rows(ps, chunk) * ps->w); }

/* Per thread: the chunk's normalised input rows of every channel, and the pool's row. */
static size_t lp_thread_floats(const PoolShape *ps, int c)
{
    return (size_t)c * lp_ld(ps, lp_chunk(ps, c)) + ROUND16(ps->w + 32);
}

size_t fuse_lrn_pool_floats(const PoolShape *ps, int c, int threads) { return lp_thread_floats(ps, c) * (size_t)threads; }

/* Output rows [oh0, oh1) of image img, `chunk` at a time: the input rows a
 * chunk reads normalised into the buffer in one run per channel (those the
 * previous chunk made moved to its front), then pooled from it. */
static void lp_band(const LrnPoolJob *j, int img, int oh0, int oh1, float *scratch)
{
    const PoolShape *ps = j->ps;
    const NnKernels *kn = nn_kernels();
    int c = j->lrn.c, w = ps->w;
    size_t ld = j->ld, iplane = (size_t)ps->h * w, oplane = (size_t)ps->ho * ps->wo;
    float *buf = scratch, *v = buf + (size_t)c * ld;
    const float *rows[ps->k];
    int have_lo = 0, have_hi = 0; /* input rows in the buffer, from its front */
    for (int o0 = oh0; o0 < oh1; o0 += j->chunk) {
        int o1 = o0 + j->chunk < oh1 ? o0 + j->chunk : oh1;
        int lo = j->th[o0].lo, hi = j->th[o1 - 1].hi, from = lo;
        if (have_hi > lo && have_lo <= lo) {
            for (int ch = 0; ch < c && lo > have_lo; ch++)
                memmove(buf + (size_t)ch * ld, buf + (size_t)ch * ld + (size_t)(lo - have_lo) * w,
                        sizeof(float) * (size_t)(have_hi - lo) * w);
            from = have_hi;
        }
        if (from < hi) {
            size_t q0 = (size_t)img * iplane + (size_t)from * w;
            kn->lrn_forward_span(&j->lrn, j->x + q0, j->lrn.plane, buf + (size_t)(from - lo) * w, ld, q0,
                                 (hi - from) * w);
        }
        have_lo = lo;
        have_hi = hi;
        for (int oh = o0; oh < o1; oh++) {
            int rlo = j->th[oh].lo, rhi = j->th[oh].hi;
            for (int ch = 0; ch < c; ch++) {
                for (int r = rlo; r < rhi; r++) rows[r - rlo] = buf + (size_t)ch * ld + (size_t)(r - lo) * w;
                kn->pool_max_row(ps, j->tw, rows, rhi - rlo,
                                 j->y + ((size_t)ch * j->n + img) * oplane + (size_t)oh * ps->wo, v);
            }
        }
    }
}

static void lp_slots(void *ctx, long s0, long s1)
{
    const LrnPoolJob *j = ctx;
    for (long t = s0; t < s1; t++) {
        float *scratch = j->work + t * j->per_thread;
        for (long it = j->items * t / j->slots; it < j->items * (t + 1) / j->slots; it++) {
            int img = (int)(it / j->bands), band = (int)(it % j->bands);
            lp_band(j, img, (int)((long)j->ps->ho * band / j->bands), (int)((long)j->ps->ho * (band + 1) / j->bands),
                    scratch);
        }
    }
}

void fuse_lrn_pool(float *y, const float *x, const LrnShape *lrn, const PoolShape *ps, int c, int n, float *work,
                   size_t work_floats)
{
    PoolWindow th[ps->ho], tw[ps->wo];
    pool_windows(ps, th, tw);
    LrnPoolJob j = {.ps = ps, .lrn = *lrn, .th = th, .tw = tw, .x = x, .y = y, .n = n,
                    .per_thread = lp_thread_floats(ps, c), .chunk = lp_chunk(ps, c)};
    j.ld = lp_ld(ps, j.chunk);
    j.lrn.c = c;
    j.lrn.plane = (size_t)n * ps->h * ps->w;
    j.bands = bands_per_image(n, ps->ho);
    j.items = (long)n * j.bands;
    j.slots = slots_for(j.items, work_floats, 0, j.per_thread);
    assert(j.slots >= 1);
    j.work = work;
    parallel_for(j.slots, 1, lp_slots, &j);
}
