/* pool.c (kernels): max and average pooling of whole planes, forward and
 * backward, for nn/pool.c, which hands each thread its planes. Compiled once
 * per instruction set (kernels.h); the loops are written to vectorise. */
#include <float.h>
#include <string.h>

#include "nn/kernels/isa.h"

/* The maximum of 3 consecutive floats at o*ST - pad, for the interior
 * outputs o in [first, last] of a row of column maxima v; ST is a constant,
 * so the loop is vector code: stride 2 splits v into its even and odd floats. */
static inline __attribute__((always_inline)) void max3_row(const float *v, float *yr, int first, int last,
                                                           const int ST, int pad)
{
    int o = first;
    if (ST == 1 || ST == 2) {
        /* v is padded: whole-vector loads past the last window stay inside it */
        for (; o <= last; o += VL) {
            const float *p = v + o * ST - pad;
            vf m;
            if (ST == 1) {
                m = vmax(vmax(vload(p), vload(p + 1)), vload(p + 2));
            } else {
                vf a = vload(p), b = vload(p + VL), c = vload(p + 2), d = vload(p + 2 + VL);
                vf even = __builtin_shufflevector(a, b, EVENS), odd = __builtin_shufflevector(a, b, ODDS);
                m = vmax(vmax(even, odd), __builtin_shufflevector(c, d, EVENS));
            }
            if (last - o + 1 >= VL) vstore(yr + o, m);
            else vstore_mask(yr + o, viota() < last - o + 1, m);
        }
        return;
    }
    for (; o <= last; o++) {
        const float *p = v + (o * ST - pad);
        float m = p[0] > p[1] ? p[0] : p[1];
        yr[o] = p[2] > m ? p[2] : m;
    }
}

/* One output row of max pooling, separably: the maximum over the window's
 * rows (rows[0 .. nrows), each s->w floats; contiguous, vectorised) into v
 * (s->w + 2 VL floats), then over the window's columns of v into yr. */
void ISA(pool_max_row)(const PoolShape *s, const PoolWindow *tw, const float *const *rows, int nrows, float *yr,
                       float *v)
{
    int w = s->w;
    const float *x0 = rows[0];
    if (nrows == 3) {
        const float *x1 = rows[1], *x2 = rows[2];
        for (int iw = 0; iw < w; iw++) {
            float m = x0[iw] > x1[iw] ? x0[iw] : x1[iw];
            v[iw] = x2[iw] > m ? x2[iw] : m;
        }
    } else {
        memcpy(v, x0, sizeof(float) * w);
        for (int i = 1; i < nrows; i++) {
            const float *xr = rows[i];
            for (int iw = 0; iw < w; iw++) v[iw] = xr[iw] > v[iw] ? xr[iw] : v[iw];
        }
    }
    int ow = 0;
    if (!s->adaptive && s->k == 3) {
        /* interior windows of three columns: branch-free */
        int first = (s->pad + s->stride - 1) / s->stride, last = (w - 3 + s->pad) / s->stride;
        if (last > s->wo - 1) last = s->wo - 1;
        for (; ow < first && ow < s->wo; ow++) {
            const PoolWindow *c = &tw[ow];
            float m = v[c->lo];
            for (int iw = c->lo + 1; iw < c->hi; iw++) m = v[iw] > m ? v[iw] : m;
            yr[ow] = m;
        }
        if (ow <= last) {
            if (s->stride == 1) max3_row(v, yr, ow, last, 1, s->pad);
            else if (s->stride == 2) max3_row(v, yr, ow, last, 2, s->pad);
            else max3_row(v, yr, ow, last, s->stride, s->pad);
            ow = last + 1;
        }
    }
    for (; ow < s->wo; ow++) {
        const PoolWindow *c = &tw[ow];
        float m = v[c->lo];
        for (int iw = c->lo + 1; iw < c->hi; iw++) m = v[iw] > m ? v[iw] : m;
        yr[ow] = m;
    }
}

/* Max pooling of one plane, a row at a time. */
static void max_plane(const PoolArgs *j, const float *x, float *y, float *v)
{
    const PoolShape *s = j->s;
    const float *rows[s->h];
    for (int oh = 0; oh < s->ho; oh++) {
        const PoolWindow *r = &j->th[oh];
        for (int ih = r->lo; ih < r->hi; ih++) rows[ih - r->lo] = x + (size_t)ih * s->w;
        ISA(pool_max_row)(s, j->tw, rows, r->hi - r->lo, y + (size_t)oh * s->wo, v);
    }
}

/* ---- 3x3 windows, stride 1, padding 1 (the inception branch): the plane as
 * one flat array, so small planes (14x14, 7x7) fill the vectors too. A
 * neighbour across a row or plane edge is masked to -inf: it never wins. */


/* For each vector of positions of an h x w plane: the lanes whose left, right,
 * upper and lower neighbours exist, and the lanes inside the plane; made once
 * per call (divisions are slow), mask[5 * v + 0..4]. */
static void flat_masks(int h, int w, vi *mask)
{
    int n = h * w;
    for (int i = 0, v = 0; i < n; i += VL, v++) {
        vi row, col, pos = viota() + i;
        for (int l = 0; l < VL; l++) {
            row[l] = pos[l] / w;
            col[l] = pos[l] % w;
        }
        mask[5 * v + 0] = col > 0;
        mask[5 * v + 1] = col < w - 1;
        mask[5 * v + 2] = row > 0;
        mask[5 * v + 3] = row < h - 1;
        mask[5 * v + 4] = pos < n;
    }
}

/* y of one plane, without the argmax: the same maxima as flat3_plane (vmax
 * keeps its second operand on ties: the earlier candidate, as there). */
static void flat3_plane_max(const PoolShape *s, const vi *mask, const float *x, float *y, float *hm)
{
    int w = s->w, n = s->h * w;
    const vf ninf = vset1(-__builtin_inff());
    /* whole vectors plain, the plane's last one masked */
    for (int i = 0, v = 0; i < n; i += VL, v++) {
        vi in = mask[5 * v + 4];
        vf l = vload_or(x + i - 1, mask[5 * v] & in, ninf), r = vload_or(x + i + 1, mask[5 * v + 1] & in, ninf);
        if (i + VL <= n) vstore(hm + i, vmax(r, vmax(vload(x + i), l)));
        else vstore_mask(hm + i, in, vmax(r, vmax(vload_mask(x + i, in), l)));
    }
    for (int i = 0, v = 0; i < n; i += VL, v++) {
        vi in = mask[5 * v + 4];
        vf t = vload_or(hm + i - w, mask[5 * v + 2] & in, ninf), b = vload_or(hm + i + w, mask[5 * v + 3] & in, ninf);
        if (i + VL <= n) vstore(y + i, vmax(b, vmax(vload(hm + i), t)));
        else vstore_mask(y + i, in, vmax(b, vmax(vload_mask(hm + i, in), t)));
    }
}

/* For the vectors of positions [p0, p0 + len) of the flattened (n, h, w):
 * the lanes whose left and right (vertical: upper and lower) neighbours
 * exist in their plane, and the lanes inside the range, m[3 * v + 0..2]; made
 * once per call, not per channel. */
static void cols_masks(int h, int w, long p0, int len, int vertical, vi *m)
{
    /* counted along, not divided: a block's masks cost what a few of its
     * channels do otherwise */
    int r = (int)(p0 / w % h), k = (int)(p0 % w);
    for (int i = 0, v = 0; i < len; i += VL, v++) {
        vi row, col;
        for (int l = 0; l < VL; l++) {
            row[l] = r;
            col[l] = k;
            if (++k == w) {
                k = 0;
                r = r + 1 == h ? 0 : r + 1;
            }
        }
        m[3 * v + 0] = vertical ? row > 0 : col > 0;
        m[3 * v + 1] = vertical ? row < h - 1 : col < w - 1;
        m[3 * v + 2] = viota() + i < len;
    }
}

/* flat3_plane_max's maxima at the positions [p0, p1) of the flattened
 * (n, h, w) (a block of a GEMM operand, nn/conv.c): the same candidates in the
 * same order, so the same bits. A channel's images are contiguous, so each
 * channel is one run, across image edges (its masks stop the windows there).
 * The row maxima needed reach a row beyond the range each way: hm holds them
 * for [pa, pb), pa a little further back. */
void ISA(pool_flat3_cols)(const PoolShape *s, const float *x, int n, int c, long p0, long p1, float *col, float *hm)
{
    int w = s->w;
    /* pa rounded down to whole vectors: loads of x on vector boundaries */
    long total = (long)n * s->h * w, pa = p0 - w > 0 ? (p0 - w) / VL * VL : 0, pb = p1 + w < total ? p1 + w : total;
    int nh = (int)(pb - pa), ny = (int)(p1 - p0), up = (int)(p0 - pa);
    vi hmask[3 * (nh / VL + 1)], ymask[3 * (ny / VL + 1)];
    cols_masks(s->h, w, pa, nh, 0, hmask);
    cols_masks(s->h, w, p0, ny, 1, ymask);
    const vf ninf = vset1(-__builtin_inff());
    for (int ch = 0; ch < c; ch++) {
        const float *xp = x + (size_t)ch * total + pa; /* hm[i]: position pa + i */
        for (int i = 0, v = 0; i < nh; i += VL, v++) {
            /* the next channel's run (n planes on) is a new stream, which the
             * hardware prefetchers would find late: fetched a channel ahead */
            __builtin_prefetch(xp + total + i);
            vi in = hmask[3 * v + 2];
            vf l = vload_or(xp + i - 1, hmask[3 * v] & in, ninf), r = vload_or(xp + i + 1, hmask[3 * v + 1] & in, ninf);
            if (i + VL <= nh) vstore(hm + i, vmax(r, vmax(vload(xp + i), l)));
            else vstore_mask(hm + i, in, vmax(r, vmax(vload_mask(xp + i, in), l)));
        }
        const float *hp = hm + up;
        float *yp = col + (size_t)ch * ny;
        for (int i = 0, v = 0; i < ny; i += VL, v++) {
            vi in = ymask[3 * v + 2];
            vf t = vload_or(hp + i - w, ymask[3 * v] & in, ninf), b = vload_or(hp + i + w, ymask[3 * v + 1] & in, ninf);
            if (i + VL <= ny) vstore(yp + i, vmax(b, vmax(vload(hp + i), t)));
            else vstore_mask(yp + i, in, vmax(b, vmax(vload_mask(hp + i, in), t)));
        }
    }
}

/* y and the first maximum's position dh * 3 + dw of one plane; hm, hd: a
 * plane's row maxima and their columns. Whole vectors plain, the plane's last
 * one masked. */
static void flat3_plane(const PoolShape *s, const vi *mask, const float *x, float *y, unsigned char *arg,
                        float *hm, int *hd)
{
    int w = s->w, n = s->h * w;
    const vf ninf = vset1(-__builtin_inff());
    for (int i = 0, v = 0; i < n; i += VL, v++) {
        vi in = mask[5 * v + 4];
        int full = i + VL <= n;
        vf l = vload_or(x + i - 1, mask[5 * v] & in, ninf), r = vload_or(x + i + 1, mask[5 * v + 1] & in, ninf);
        vf c = full ? vload(x + i) : vload_mask(x + i, in);
        /* first maximum in column order: left, centre, right */
        vi b1 = c > l;
        vf m = vselect(b1, c, l);
        vi d = b1 & 1, b2 = r > m;
        m = vselect(b2, r, m);
        d = (b2 & (2 ^ d)) ^ d;
        if (full) {
            vstore(hm + i, m);
            vstore((float *)hd + i, (vf)d);
        } else {
            vstore_mask(hm + i, in, m);
            vstore_mask((float *)hd + i, in, (vf)d);
        }
    }
    for (int i = 0, v = 0; i < n; i += VL, v++) {
        vi up = mask[5 * v + 2], down = mask[5 * v + 3], in = mask[5 * v + 4];
        int full = i + VL <= n;
        vf t = vload_or(hm + i - w, up & in, ninf), b = vload_or(hm + i + w, down & in, ninf);
        vf c = full ? vload(hm + i) : vload_mask(hm + i, in);
        /* first maximum in row order: the row above, this one, the one below */
        vi b1 = c > t;
        vf m = vselect(b1, c, t);
        vi b2 = b > m;
        m = vselect(b2, b, m);
        vi dt = (vi)vload_mask((const float *)hd + i - w, up & in), db = (vi)vload_mask((const float *)hd + i + w, down & in);
        vi dc = full ? vloadi(hd + i) : (vi)vload_mask((const float *)hd + i, in);
        vi pos = dt; /* dh 0 */
        pos = (b1 & ((3 + dc) ^ pos)) ^ pos;
        pos = (b2 & ((6 + db) ^ pos)) ^ pos;
        if (full) {
            vstore(y + i, m);
            vstore_bytes(arg + i, pos);
            continue;
        }
        vstore_mask(y + i, in, m);
        unsigned char bytes[VL];
        vstore_bytes(bytes, pos);
        memcpy(arg + i, bytes, (size_t)(n - i));
    }
}

/* ---- the argmax forward of 3x3 windows, stride 2 (pool1-pool4, training):
 * each output row straight from its three input rows, VL outputs at a time.
 * A row's even and odd floats are the windows' first and middle columns, the
 * odd floats from one further on their last; the nine candidates are compared
 * in row-major order, a later one winning only when strictly larger: the
 * first maximum, as everywhere. */

static int is_s2k3(const PoolShape *s) { return !s->adaptive && s->k == 3 && s->stride == 2; }

/* Output ow of row oh (window rows r) by the window tables: value and argmax. */
static void argmax_one(const PoolArgs *j, const float *x, const PoolWindow *r, int top, int ow, float *y,
                       unsigned char *arg)
{
    const PoolShape *s = j->s;
    const PoolWindow *c = &j->tw[ow];
    int left = ow * s->stride - s->pad, best = (r->lo - top) * s->k + (c->lo - left);
    float m = x[(size_t)r->lo * s->w + c->lo];
    for (int ih = r->lo; ih < r->hi; ih++)
        for (int iw = c->lo; iw < c->hi; iw++)
            if (x[(size_t)ih * s->w + iw] > m) {
                m = x[(size_t)ih * s->w + iw];
                best = (ih - top) * s->k + (iw - left);
            }
    *y = m;
    *arg = (unsigned char)best;
}

static void argmax_s2k3_plane(const PoolArgs *j, const float *x, float *y, unsigned char *arg)
{
    const PoolShape *s = j->s;
    int w = s->w, wo = s->wo;
    /* outputs [first, last] have all three columns inside the row */
    int first = (s->pad + 1) / 2, last = (w - 3 + s->pad) / 2;
    if (last > wo - 1) last = wo - 1;
    for (int oh = 0; oh < s->ho; oh++) {
        const PoolWindow *r = &j->th[oh];
        int top = oh * 2 - s->pad, ow = 0;
        float *yr = y + (size_t)oh * wo;
        unsigned char *ar = arg + (size_t)oh * wo;
        if (r->lo == top && r->hi == top + 3) {
            for (; ow < first; ow++) argmax_one(j, x, r, top, ow, yr + ow, ar + ow);
            for (; ow <= last; ow += VL) {
                /* the last vector masked: its loads read only the floats its
                 * windows cover, p[0..2 cnt] */
                int cnt = last - ow + 1 < VL ? last - ow + 1 : VL, full = cnt == VL;
                vf m = vzero();
                vi at = viota() * 0;
                for (int dh = 0; dh < 3; dh++) {
                    const float *p = x + (size_t)(top + dh) * w + 2 * ow - s->pad;
                    vf a, b, c, d;
                    if (full) {
                        a = vload(p), b = vload(p + VL), c = vload(p + 1), d = vload(p + 1 + VL);
                    } else {
                        a = vload_mask(p, viota() <= 2 * cnt), b = vload_mask(p + VL, viota() + VL <= 2 * cnt);
                        c = vload_mask(p + 1, viota() + 1 <= 2 * cnt), d = vload_mask(p + 1 + VL, viota() + 1 + VL <= 2 * cnt);
                    }
                    vf cand[3] = {__builtin_shufflevector(a, b, EVENS), __builtin_shufflevector(a, b, ODDS),
                                  __builtin_shufflevector(c, d, ODDS)};
                    for (int dw = 0; dw < 3; dw++) {
                        if (dh == 0 && dw == 0) {
                            m = cand[0];
                            continue;
                        }
                        vi better = cand[dw] > m;
                        m = vselect(better, cand[dw], m);
                        at = (better & ((dh * 3 + dw) ^ at)) ^ at;
                    }
                }
                if (full) {
                    vstore(yr + ow, m);
                    vstore_bytes(ar + ow, at);
                    continue;
                }
                vstore_mask(yr + ow, viota() < cnt, m);
                unsigned char bytes[VL];
                vstore_bytes(bytes, at);
                memcpy(ar + ow, bytes, (size_t)cnt);
            }
            if (ow > last + 1) ow = last + 1; /* the vector loop went past last */
        }
        for (; ow < wo; ow++) argmax_one(j, x, r, top, ow, yr + ow, ar + ow);
    }
}

void ISA(pool_forward)(const PoolArgs *j, long b, long e)
{
    const PoolShape *s = j->s;
    size_t ip = (size_t)s->h * s->w, op = (size_t)s->ho * s->wo;
    /* a row of column maxima (+ the lanes a vector load past the last window
     * may read), or a plane of them for the flat 3x3 windows */
    float v[(pool_is_flat3(s) ? (size_t)s->h * s->w : (size_t)s->w) + 2 * VL];
    vi mask[pool_is_flat3(s) ? 5 * ((size_t)s->h * s->w / VL + 1) : 1];
    if (pool_is_flat3(s)) flat_masks(s->h, s->w, mask);
    for (long p = b; p < e; p++) {
        const float *x = j->x + p * ip;
        float *y = j->out + p * op;
        if (s->kind == POOL_MAX) {
            if (pool_is_flat3(s)) flat3_plane_max(s, mask, x, y, v);
            else max_plane(j, x, y, v);
            continue;
        }
        for (int oh = 0; oh < s->ho; oh++) {
            const PoolWindow *r = &j->th[oh];
            for (int ow = 0; ow < s->wo; ow++) {
                const PoolWindow *c = &j->tw[ow];
                float acc = 0.0f;
                for (int ih = r->lo; ih < r->hi; ih++)
                    for (int iw = c->lo; iw < c->hi; iw++) acc += x[ih * s->w + iw];
                y[oh * s->wo + ow] = acc / (float)(r->extent * c->extent);
            }
        }
    }
}

/* First maximum of the full 3-wide windows o in [first, last] of one input row:
 * value hm[o] and column hc[o]. ST is a constant, so the loop is vector code
 * (stride 2 split into even and odd floats); a later column wins only when
 * strictly larger. */
static inline __attribute__((always_inline)) void row_max3(const float *xr, int w, int first, int last,
                                                           const int ST, int pad, float *hm, int *hc)
{
    int o = first;
    if (ST == 1 || ST == 2) {
        /* whole vectors, the last one masked: loads read only the floats the
         * outputs [o, o + cnt) need */
        for (; o <= last; o += VL) {
            int cnt = last - o + 1 < VL ? last - o + 1 : VL;
            int need = (o + cnt - 1) * ST - pad + 3 - (o * ST - pad); /* floats from p */
            const float *p = xr + (o * ST - pad);
            vf p0, p1, p2;
            if (ST == 1) {
                p0 = vload_mask(p, viota() < need);
                p1 = vload_mask(p + 1, viota() + 1 < need);
                p2 = vload_mask(p + 2, viota() + 2 < need);
            } else {
                vf a = vload_mask(p, viota() < need), b = vload_mask(p + VL, viota() + VL < need);
                vf c = vload_mask(p + 2, viota() + 2 < need), d = vload_mask(p + 2 + VL, viota() + 2 + VL < need);
                p0 = __builtin_shufflevector(a, b, EVENS);
                p1 = __builtin_shufflevector(a, b, ODDS);
                p2 = __builtin_shufflevector(c, d, EVENS);
            }
            vi col = viota() * ST + (o * ST - pad), b1 = p1 > p0;
            vf m = vselect(b1, p1, p0);
            col += b1 & 1;
            vi b2 = p2 > m;
            m = vselect(b2, p2, m);
            col = (b2 & ((viota() * ST + (o * ST - pad + 2)) ^ col)) ^ col;
            vi on = viota() < cnt;
            vstore_mask(hm + o, on, m);
            vstore_mask((float *)hc + o, on, (vf)col);
        }
        return;
    }
    for (; o <= last; o++) {
        const float *p = xr + (o * ST - pad);
        float m = p[0];
        int c = 0;
        c = p[1] > m ? 1 : c;
        m = p[1] > m ? p[1] : m;
        c = p[2] > m ? 2 : c;
        m = p[2] > m ? p[2] : m;
        hm[o] = m;
        hc[o] = o * ST - pad + c;
    }
}

/* First maximum of each window of one input row: value hm[ow] and column hc[ow]. */
static void row_first_max(const PoolShape *s, const PoolWindow *tw, const float *xr, float *hm, int *hc)
{
    int wo = s->wo, first = wo, last = -1;
    if (!s->adaptive && s->k == 3) {
        first = (s->pad + s->stride - 1) / s->stride;
        last = (s->w - 3 + s->pad) / s->stride;
        if (last > wo - 1) last = wo - 1;
    }
    if (last >= first) {
        if (s->stride == 1) row_max3(xr, s->w, first, last, 1, s->pad, hm, hc);
        else if (s->stride == 2) row_max3(xr, s->w, first, last, 2, s->pad, hm, hc);
        else row_max3(xr, s->w, first, last, s->stride, s->pad, hm, hc);
    }
    for (int ow = 0; ow < wo; ow++) {
        if (ow >= first && ow <= last) continue;
        const PoolWindow *c = &tw[ow];
        float m = xr[c->lo];
        int ci = c->lo;
        for (int iw = c->lo + 1; iw < c->hi; iw++)
            if (xr[iw] > m) {
                m = xr[iw];
                ci = iw;
            }
        hm[ow] = m;
        hc[ow] = ci;
    }
}

/* Max-pooling backward of one plane. No indices were stored: the first
 * maximum of each window in row-major order (the element Caffe and PyTorch
 * route the gradient to) is found again, separably: per input row the first
 * maximum of each column window, then the first row holding the largest. */
static void max_backward_plane(const PoolArgs *j, const float *x, const float *dy, float *dx,
                               float *hm, int *hc, float *mx, int *idx)
{
    const PoolShape *s = j->s;
    int w = s->w, wo = s->wo;
    /* every input row once: rows shared by overlapping windows are not redone */
    for (int ih = 0; ih < s->h; ih++)
        row_first_max(s, j->tw, x + (size_t)ih * w, hm + (size_t)ih * wo, hc + (size_t)ih * wo);
    for (int oh = 0; oh < s->ho; oh++) {
        const PoolWindow *r = &j->th[oh];
        const float *v0 = hm + (size_t)r->lo * wo;
        const int *c0 = hc + (size_t)r->lo * wo;
        int base = r->lo * w;
        for (int ow = 0; ow < wo; ow++) {
            mx[ow] = v0[ow];
            idx[ow] = base + c0[ow];
        }
        for (int ih = r->lo + 1; ih < r->hi; ih++) {
            const float *v = hm + (size_t)ih * wo;
            const int *c = hc + (size_t)ih * wo;
            int rb = ih * w;
            /* a later row wins only when strictly larger: the first maximum */
            for (int ow = 0; ow < wo; ow++) {
                int better = v[ow] > mx[ow];
                idx[ow] = better ? rb + c[ow] : idx[ow];
                mx[ow] = better ? v[ow] : mx[ow];
            }
        }
        const float *g = dy + (size_t)oh * wo;
        for (int ow = 0; ow < wo; ow++) dx[idx[ow]] += g[ow];
    }
}

void ISA(pool_backward)(const PoolArgs *j, long b, long e)
{
    const PoolShape *s = j->s;
    size_t ip = (size_t)s->h * s->w, op = (size_t)s->ho * s->wo;
    /* (h, wo) row maxima and their columns, and one output row's running maximum */
    float hm[(size_t)s->h * s->wo], mx[s->wo];
    int hc[(size_t)s->h * s->wo], idx[s->wo];
    for (long p = b; p < e; p++) {
        const float *x = j->x + p * ip, *dy = j->dy + p * op;
        float *dx = j->out + p * ip;
        if (!j->accum) memset(dx, 0, sizeof(float) * ip);
        if (s->kind == POOL_MAX) {
            max_backward_plane(j, x, dy, dx, hm, hc, mx, idx);
            continue;
        }
        for (int oh = 0; oh < s->ho; oh++) {
            const PoolWindow *r = &j->th[oh];
            for (int ow = 0; ow < s->wo; ow++) {
                const PoolWindow *c = &j->tw[ow];
                float share = dy[oh * s->wo + ow] / (float)(r->extent * c->extent);
                for (int ih = r->lo; ih < r->hi; ih++)
                    for (int iw = c->lo; iw < c->hi; iw++) dx[ih * s->w + iw] += share;
            }
        }
    }
}

/* The first maximum of every window of one plane, as max_backward_plane finds
 * it, kept: y = the maximum, arg = its position dh * k + dw in the window. */
static void max_argmax_plane(const PoolArgs *j, const float *x, float *y, unsigned char *arg, float *hm,
                             int *hc)
{
    const PoolShape *s = j->s;
    int w = s->w, wo = s->wo, st = s->stride;
    for (int ih = 0; ih < s->h; ih++)
        row_first_max(s, j->tw, x + (size_t)ih * w, hm + (size_t)ih * wo, hc + (size_t)ih * wo);
    for (int oh = 0; oh < s->ho; oh++) {
        const PoolWindow *r = &j->th[oh];
        int top = oh * st - s->pad; /* the window's first row, maybe in the padding */
        float *yr = y + (size_t)oh * wo;
        unsigned char *ar = arg + (size_t)oh * wo;
        /* a later row wins only when strictly larger: the first maximum */
        for (int ow = 0; ow < wo; ow += VL) {
            int cnt = wo - ow < VL ? wo - ow : VL;
            vi on = viota() < cnt;
            vf m = vload_mask(hm + (size_t)r->lo * wo + ow, on);
            vi col = (vi)vload_mask((const float *)hc + (size_t)r->lo * wo + ow, on), dh = viota() * 0 + (r->lo - top);
            for (int ih = r->lo + 1; ih < r->hi; ih++) {
                vf v = vload_mask(hm + (size_t)ih * wo + ow, on);
                vi better = v > m;
                m = vselect(better, v, m);
                col = (better & ((vi)vload_mask((const float *)hc + (size_t)ih * wo + ow, on) ^ col)) ^ col;
                dh = (better & ((ih - top) ^ dh)) ^ dh;
            }
            vstore_mask(yr + ow, on, m);
            unsigned char bytes[VL];
            vstore_bytes(bytes, dh * s->k + (col - ((viota() + ow) * st - s->pad)));
            memcpy(ar + ow, bytes, (size_t)cnt);
        }
    }
}


void ISA(pool_argmax)(const PoolArgs *j, long b, long e)
{
    const PoolShape *s = j->s;
    size_t ip = (size_t)s->h * s->w, op = (size_t)s->ho * s->wo;
    size_t rows = (size_t)s->h * (s->w > s->wo ? s->w : s->wo);
    float hm[rows];
    int hc[rows];
    vi mask[pool_is_flat3(s) ? 5 * ((size_t)s->h * s->w / VL + 1) : 1];
    if (pool_is_flat3(s)) flat_masks(s->h, s->w, mask);
    for (long p = b; p < e; p++) {
        if (is_s2k3(s)) argmax_s2k3_plane(j, j->x + p * ip, j->out + p * op, j->arg + p * op);
        else if (pool_is_flat3(s)) flat3_plane(s, mask, j->x + p * ip, j->out + p * op, j->arg + p * op, hm, hc);
        else max_argmax_plane(j, j->x + p * ip, j->out + p * op, j->arg + p * op, hm, hc);
    }
}

/* dx[the recorded position] += dy, output by output: windows overlap, so a
 * plane is one thread's. */
void ISA(pool_backward_argmax)(const PoolArgs *j, long b, long e)
{
    const PoolShape *s = j->s;
    size_t ip = (size_t)s->h * s->w, op = (size_t)s->ho * s->wo;
    int off[256];
    for (int q = 0; q < s->k * s->k; q++) off[q] = (q / s->k) * s->w + q % s->k;
    for (long p = b; p < e; p++) {
        const float *dy = j->dy + p * op;
        const unsigned char *arg = j->carg + p * op;
        float *dx = j->out + p * ip;
        if (!j->accum) memset(dx, 0, sizeof(float) * ip);
        for (int oh = 0; oh < s->ho; oh++) {
            long base = (long)(oh * s->stride - s->pad) * s->w - s->pad;
            for (int ow = 0; ow < s->wo; ow++, base += s->stride) dx[base + off[*arg++]] += *dy++;
        }
    }
}

