/* winograd.c (kernels): the tile transforms of Winograd convolution, vectorised
 * across tiles: lane l of every vector is one tile of a block, so the 36 (or 16)
 * transformed values of a tile land in 36 rows of the GEMM operands with one
 * vector store each. The transforms are written once, generically over the
 * matrices of nn/winograd_tf.h; with the matrices known at compile time the
 * multiplications by 0 and +-1 fold away. Compiled once per instruction set
 * (kernels.h). No threads, no allocation. */
#include "nn/kernels/kernels.h"
#include "nn/kernels/isa.h"
#include "nn/kernels/vec.h"
#include "nn/winograd_tf.h"

/* out[i*os] = sum_j T(i, j) in[j*is] for the rows x cols matrix t, or for its
 * transpose when trans (then out has cols entries and in has rows). */
INLINE void tf(const float *t, int rows, int cols, int trans, const vf *in, int is, vf *out, int os)
{
    int n_out = trans ? cols : rows, n_in = trans ? rows : cols;
#pragma GCC unroll 8
    for (int i = 0; i < n_out; i++) {
        vf acc = vzero();
        int any = 0;
#pragma GCC unroll 8
        for (int j = 0; j < n_in; j++) {
            float c = trans ? t[j * cols + i] : t[i * cols + j];
            if (c == 0.0f) continue;
            vf x = in[j * is];
            if (c == 1.0f) acc = any ? acc + x : x;
            else if (c == -1.0f) acc = any ? acc - x : -x;
            else acc = any ? acc + x * c : x * c;
            any = 1;
        }
        out[i * os] = acc;
    }
}

/* out = T in T^T for square in (n_in x n_in), T = t or its transpose: every
 * transform of Winograd's is one such sandwich. */
INLINE void sandwich(const float *t, int rows, int cols, int trans, const vf *in, vf *out)
{
    int n_in = trans ? rows : cols, n_out = trans ? cols : rows;
    vf tmp[64];
#pragma GCC unroll 8
    for (int s = 0; s < n_in; s++) tf(t, rows, cols, trans, &in[s], n_in, &tmp[s], n_in);
#pragma GCC unroll 8
    for (int i = 0; i < n_out; i++) tf(t, rows, cols, trans, &tmp[i * n_in], 1, &out[i * n_out], 1);
}

/* ---- tiles in lanes ----
 * The tiles of a block are loaded run by run: the rows a run of tiles reads
 * are contiguous, so each is loaded with (masked) vector loads and split into
 * its m phases with constant shuffles; lane l of phase j then holds input
 * column m*l + j of the run. Tile l's column s (s < p, its patch width) is
 * phase s % m at lane l + s / m, so a run needs e = (p - 1) / m lanes beyond
 * its tiles: runs are packed into groups of VL lanes as pieces of at most
 * VL - e tiles with e idle lanes after each. Results go back piece by piece
 * with masked stores. */

typedef struct {
    int32_t img, ty, tx, len, col; /* as WinoRun, for a part of one */
    int32_t slot;                  /* first lane */
} Piece;

/* Cuts the runs into pieces packed into groups of VL lanes with e idle lanes
 * after each piece; group g is pieces [gs[g], gs[g + 1]). Returns the groups. */
static int pack(const WinoTiles *t, int e, Piece *pc, int *gs)
{
    int np = 0, ng = 0, slot = VL;
    for (int r = 0; r < t->nruns; r++) {
        const WinoRun *run = &t->runs[r];
        for (int done = 0; done < run->len;) {
            if (VL - slot - e <= 0) {
                gs[ng++] = np;
                slot = 0;
            }
            int take = run->len - done < VL - slot - e ? run->len - done : VL - slot - e;
            pc[np++] = (Piece){run->img, run->ty, run->tx + done, take, run->col + done, slot};
            slot += take + e;
            done += take;
        }
    }
    gs[ng] = np;
    return ng;
}

#define MAX_PIECES(t, e) ((t)->nruns + (t)->count / (VL - (e)) + 2)

/* d[r*P + s] = the input at row r, column s of the patch of every tile of
 * the group (P x P patches, tiles m apart, origin at -pad; zero outside h x w).
 * ph: scratch of P * m * 2 * VL floats. */
INLINE void load_patches(const int P, const int M, vf *d, const float *plane, int h, int w,
                         size_t plane_floats, int pad, const Piece *pc, int npc, float *ph)
{
    const int e = (P - 1) / M;
    for (int i = 0; i < npc; i++) {
        const Piece *q = &pc[i];
        int x0 = q->tx * M - pad, nfl = (q->len + e) * M;
        vi on[4];
#pragma GCC unroll 4
        for (int j = 0; j < M; j++) {
            vi x = viota() + (x0 + j * VL);
            on[j] = (x >= 0) & (x < w) & (viota() + j * VL < nfl);
        }
        const float *img = plane + q->img * plane_floats;
#pragma GCC unroll 8
        for (int r = 0; r < P; r++) {
            int y = q->ty * M - pad + r;
            vf ps[4];
            if (y < 0 || y >= h) {
#pragma GCC unroll 4
                for (int j = 0; j < M; j++) ps[j] = vzero();
            } else {
                vf sv[4];
                const float *row = img + (size_t)y * w + x0;
#pragma GCC unroll 4
                for (int j = 0; j < M; j++) sv[j] = vload_mask(row + j * VL, on[j]);
                vdeinterleave(M, sv, ps);
            }
#pragma GCC unroll 4
            for (int j = 0; j < M; j++) vstore(ph + (r * M + j) * 2 * VL + q->slot, ps[j]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < P; r++)
#pragma GCC unroll 8
        for (int s = 0; s < P; s++) d[r * P + s] = vload(ph + (r * M + s % M) * 2 * VL + s / M);
}

/* out[xi*ldxi + col] = o[xi] for the tiles of the group's pieces. */
INLINE void store_pieces(const int n, const vf *o, float *out, size_t ldxi, const Piece *pc, int npc)
{
    for (int i = 0; i < npc; i++) {
        vi on = vlanes(pc[i].slot, pc[i].slot + pc[i].len);
        float *base = out + pc[i].col - pc[i].slot;
#pragma GCC unroll 8
        for (int xi = 0; xi < n; xi++) vstore_mask(base + xi * ldxi, on, o[xi]);
    }
}

/* ---- input tiles: V = BT d B ---- */

INLINE void input_tpl(const float *bt, const int A, const int M, float *v, size_t ldxi, size_t ldc,
                      const float *x, int nc, const WinoGeom *g, const WinoTiles *t)
{
    const int e = (A - 1) / M;
    Piece pc[MAX_PIECES(t, e)];
    int gs[t->count + 2];
    int ng = pack(t, e, pc, gs);
    float ph[8 * 4 * 2 * VL];
    memset(ph, 0, sizeof ph);
    /* The block's input rows of a channel are one stretch of its plane, from
     * the first run's first patch row to the last run's last: prefetched a
     * channel ahead, as the loads of each channel's first rows missed. */
    const WinoRun *first = &t->runs[0], *last = &t->runs[t->nruns - 1];
    long r0 = (long)first->img * g->h + first->ty * M - g->pad, r1 = (long)last->img * g->h + last->ty * M - g->pad + A;
    long rlo = (long)first->img * g->h, rhi = (long)(last->img + 1) * g->h;
    size_t span0 = (size_t)(r0 > rlo ? r0 : rlo) * g->w, span1 = (size_t)(r1 < rhi ? r1 : rhi) * g->w;
    /* channel by channel, so that the reads of one plane stream */
    for (int c = 0; c < nc; c++) {
        const float *xc = x + c * g->in_cstride;
        if (c + 1 < nc)
            for (size_t f = span0; f < span1; f += 16) __builtin_prefetch(xc + g->in_cstride + f, 0, 3);
        for (int gi = 0; gi < ng; gi++) {
            vf d[64], o[64];
            load_patches(A, M, d, xc, g->h, g->w, (size_t)g->h * g->w, g->pad, pc + gs[gi], gs[gi + 1] - gs[gi], ph);
            sandwich(bt, A, A, 0, d, o);
            store_pieces(A * A, o, v + c * ldc, ldxi, pc + gs[gi], gs[gi + 1] - gs[gi]);
        }
    }
}

/* ---- output tiles: y = AT M A (+ bias, ReLU) ---- */

INLINE void output_tpl(const float *at, const int A, const int M, float *y, int nk,
                       const float *mb, size_t ldxi, size_t ldk, const WinoGeom *g,
                       const WinoTiles *t, const float *bias, int relu, int accum)
{
    /* no idle lanes: lane l is column t0 + l of M */
    Piece pc[MAX_PIECES(t, 0)];
    int gs[t->count + 2];
    int ng = pack(t, 0, pc, gs);
    /* channel by channel, so that the writes of one plane stream */
    for (int k = 0; k < nk; k++) {
        float *yk = y + k * g->out_cstride;
        for (int gi = 0; gi < ng; gi++) {
            vf mm[64], o[64];
            const float *mk = mb + k * ldk + gi * VL;
#pragma GCC unroll 8
            for (int xi = 0; xi < A * A; xi++) mm[xi] = vload(mk + xi * ldxi);
            sandwich(at, M, A, 0, mm, o);
            if (bias) {
                vf bk = vset1(bias[k]);
#pragma GCC unroll 8
                for (int q = 0; q < M * M; q++) o[q] += bk;
            }
            if (relu) {
#pragma GCC unroll 8
                for (int q = 0; q < M * M; q++) o[q] = vmax0(o[q]);
            }
            for (int a = 0; a < M; a++) {
                /* row a of every tile, in the order of the output row: float
                 * M*l + b of sv is row a, column b of the tile in lane l */
                vf sv[4];
                vinterleave(M, &o[a * M], sv);
                for (int i = gs[gi]; i < gs[gi + 1]; i++) {
                    const Piece *q = &pc[i];
                    int oy = q->ty * M + a;
                    if (oy >= g->ho) continue;
                    int f0 = q->slot * M, f1 = (q->slot + q->len) * M, ox0 = q->tx * M;
                    if (f1 - f0 > g->wo - ox0) f1 = f0 + g->wo - ox0;
                    float *row = yk + ((size_t)q->img * g->ho + oy) * g->wo + ox0 - f0;
#pragma GCC unroll 4
                    for (int j = 0; j < M; j++) {
                        if (f1 <= j * VL || f0 >= (j + 1) * VL) continue;
                        vi on = vlanes(f0 - j * VL, f1 - j * VL);
                        vf val = sv[j];
                        if (accum) val += vload_mask(row + j * VL, on);
                        vstore_mask(row + j * VL, on, val);
                    }
                }
            }
        }
    }
}

#define MAT(x) (&(x)[0][0])

/* ---- the products and the output transform, fused ----
 * For KR output channels and TW = 2 VL tiles at a time, the alpha^2 products
 * M[xi] = U[xi] V[xi] are made in registers (a GEMM micro-kernel: each
 * transformed filter value broadcast, times two vectors of tiles) into a
 * small M that stays in L1, and transformed into the output at once. U comes
 * packed (wino_pack_filters): for each xi and group of KR channels, the KR
 * values of a channel c side by side. */

#if VL == 16
#define KR 8
#else
#define KR 4
#endif
#define TW (2 * VL)

int ISA(wino_kr)(void) { return KR; }

/* m[r*TW + j] = sum_c u[c*KR + r] v[c*ldc + j] for r < KR, j < TV*VL */
INLINE void micro(const float *u, const float *v, size_t ldc, int cin, const int TV, float *m)
{
    vf acc[KR][2];
#pragma GCC unroll 8
    for (int r = 0; r < KR; r++) acc[r][0] = acc[r][1] = vzero();
    for (int c = 0; c < cin; c++) {
        const float *vc = v + c * ldc, *uc = u + c * KR;
        vf v0 = vload(vc), v1 = TV == 2 ? vload(vc + VL) : vzero();
#pragma GCC unroll 8
        for (int r = 0; r < KR; r++) {
            vf ub = vset1(uc[r]);
            acc[r][0] += ub * v0;
            if (TV == 2) acc[r][1] += ub * v1;
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < KR; r++) {
        vstore(m + r * TW, acc[r][0]);
        if (TV == 2) vstore(m + r * TW + VL, acc[r][1]);
    }
}

/* The tiles of t in columns [t0, t0 + w), as a block of their own. */
static WinoTiles clip_tiles(const WinoTiles *t, int t0, int w, WinoRun *out)
{
    WinoTiles c = {out, 0, t->count - t0 < w ? t->count - t0 : w};
    for (int i = 0; i < t->nruns; i++) {
        const WinoRun *r = &t->runs[i];
        int lo = r->col > t0 ? r->col : t0, hi = r->col + r->len < t0 + w ? r->col + r->len : t0 + w;
        if (lo >= hi) continue;
        out[c.nruns++] = (WinoRun){r->img, r->ty, r->tx + (lo - r->col), hi - lo, lo - t0};
    }
    return c;
}

INLINE void gemm_output_tpl(const float *at, const int A, const int M, const float *up, const float *v,
                            size_t ldxi, size_t ldc, int cin, int cout, float *y, const WinoGeom *g, const WinoTiles *t,
                            const float *bias, int relu, int accum)
{
    int nkt = (cout + KR - 1) / KR;
    float mbuf[A * A * KR * TW] __attribute__((aligned(64)));
    WinoRun runs[t->nruns + 1];
    for (int t0 = 0; t0 < t->count; t0 += TW) {
        WinoTiles st = clip_tiles(t, t0, TW, runs);
        for (int kt = 0; kt < nkt; kt++) {
            int nk0 = cout - kt * KR < KR ? cout - kt * KR : KR;
            for (int k = 0; k < nk0; k++) {
                const float *yk = y + (size_t)(kt * KR + k) * g->out_cstride;
                for (int i = 0; i < st.nruns; i++) {
                    const WinoRun *r = &st.runs[i];
                    int x0 = r->tx * M, x1 = (r->tx + r->len) * M;
                    if (x1 > g->wo) x1 = g->wo;
                    for (int a = 0; a < M; a++) {
                        int oy = r->ty * M + a;
                        if (oy >= g->ho) break;
                        const char *p0 = (const char *)(yk + ((size_t)r->img * g->ho + oy) * g->wo + x0);
                        const char *p1 = (const char *)(yk + ((size_t)r->img * g->ho + oy) * g->wo + x1);
                        for (const char *p = (const char *)((uintptr_t)p0 & ~(uintptr_t)63); p < p1; p += 64)
                            __builtin_prefetch(p, 1, 3);
                    }
                }
            }
            for (int xi = 0; xi < A * A; xi++) {
                const float *u = up + ((size_t)kt * A * A + xi) * cin * KR, *vx = v + (size_t)xi * ldxi + t0;
                if (st.count > VL) micro(u, vx, ldc, cin, 2, mbuf + xi * KR * TW);
                else micro(u, vx, ldc, cin, 1, mbuf + xi * KR * TW);
            }
            int nk = cout - kt * KR < KR ? cout - kt * KR : KR;
            output_tpl(at, A, M, y + (size_t)kt * KR * g->out_cstride, nk, mbuf, KR * TW, TW, g, &st,
                       bias ? bias + kt * KR : NULL, relu, accum);
        }
    }
}

void ISA(wino_gemm_output)(WinoAlg a, const float *up, const float *v, size_t ldxi, size_t ldc, int cin, int cout, float *y,
                           const WinoGeom *g, const WinoTiles *t, const float *bias, int relu, int accum)
{
    switch (a) {
    case WINO_F2X3: gemm_output_tpl(MAT(F2x3_AT), 4, 2, up, v, ldxi, ldc, cin, cout, y, g, t, bias, relu, accum); break;
    case WINO_F4X3: gemm_output_tpl(MAT(F4x3_AT), 6, 4, up, v, ldxi, ldc, cin, cout, y, g, t, bias, relu, accum); break;
    case WINO_F2X5: gemm_output_tpl(MAT(F2x5_AT), 6, 2, up, v, ldxi, ldc, cin, cout, y, g, t, bias, relu, accum); break;
    case WINO_F4X5: gemm_output_tpl(MAT(F4x5_AT), 8, 4, up, v, ldxi, ldc, cin, cout, y, g, t, bias, relu, accum); break;
    default: break;
    }
}

/* ---- output-gradient tiles for the weight gradient: dM = A dY AT ---- */

INLINE void dy_tpl(const float *at, const int A, const int M, float *dm, size_t ldxi, size_t ldk,
                   const float *dy, int nk, const WinoGeom *g, const WinoTiles *t)
{
    Piece pc[MAX_PIECES(t, 0)];
    int gs[t->count + 2];
    int ng = pack(t, 0, pc, gs);
    float ph[4 * 4 * 2 * VL];
    memset(ph, 0, sizeof ph);
    for (int k = 0; k < nk; k++) {
        const float *dk = dy + k * g->out_cstride;
        for (int gi = 0; gi < ng; gi++) {
            vf d[64], o[64];
            /* an M x M patch of dY at the tile's own outputs: zero past ho x wo */
            load_patches(M, M, d, dk, g->ho, g->wo, (size_t)g->ho * g->wo, 0, pc + gs[gi], gs[gi + 1] - gs[gi], ph);
            sandwich(at, M, A, 1, d, o);
            store_pieces(A * A, o, dm + k * ldk, ldxi, pc + gs[gi], gs[gi + 1] - gs[gi]);
        }
    }
}

/* ---- filters: U = G g G^T, and the weight gradient G^T dU G ---- */

INLINE void filter_tpl(const float *gm, const int A, const int R, float *u, size_t ldxi,
                       const float *wt, int cout, int cin, int flip, size_t e0, size_t e1)
{
    for (size_t e = e0; e < e1; e += VL) {
        int cnt = e1 - e < VL ? (int)(e1 - e) : VL;
        float in[25][VL];
        memset(in, 0, sizeof in);
        for (int l = 0; l < cnt; l++) {
            size_t f = e + l;
            const float *src = wt + (flip ? (f % cout) * cin + f / cout : f) * R * R;
            for (int q = 0; q < R * R; q++) in[q][l] = src[flip ? R * R - 1 - q : q];
        }
        vf gg[64], o[64];
#pragma GCC unroll 8
        for (int q = 0; q < R * R; q++) gg[q] = vload(in[q]);
        sandwich(gm, A, R, 0, gg, o);
        vi on = vlanes(0, cnt);
#pragma GCC unroll 8
        for (int xi = 0; xi < A * A; xi++) vstore_mask(u + xi * ldxi + e, on, o[xi]);
    }
}

INLINE void filter_grad_tpl(const float *gm, const int A, const int R, float *dw, const float *du,
                            size_t ldxi, size_t e0, size_t e1)
{
    for (size_t e = e0; e < e1; e += VL) {
        int cnt = e1 - e < VL ? (int)(e1 - e) : VL;
        vi on = vlanes(0, cnt);
        vf d[64], o[64];
#pragma GCC unroll 8
        for (int xi = 0; xi < A * A; xi++) d[xi] = vload_mask(du + xi * ldxi + e, on);
        sandwich(gm, A, R, 1, d, o);
        float out[25][VL];
#pragma GCC unroll 8
        for (int q = 0; q < R * R; q++) vstore(out[q], o[q]);
        for (int l = 0; l < cnt; l++) {
            float *p = dw + (e + l) * R * R;
            for (int q = 0; q < R * R; q++) p[q] += out[q][l];
        }
    }
}

/* ---- one instantiation per algorithm ---- */

void ISA(wino_input)(WinoAlg a, float *v, size_t ldxi, size_t ldc, const float *x, int nc,
                       const WinoGeom *g, const WinoTiles *t)
{
    switch (a) {
    case WINO_F2X3: input_tpl(MAT(F2x3_BT), 4, 2, v, ldxi, ldc, x, nc, g, t); break;
    case WINO_F4X3: input_tpl(MAT(F4x3_BT), 6, 4, v, ldxi, ldc, x, nc, g, t); break;
    case WINO_F2X5: input_tpl(MAT(F2x5_BT), 6, 2, v, ldxi, ldc, x, nc, g, t); break;
    case WINO_F4X5: input_tpl(MAT(F4x5_BT), 8, 4, v, ldxi, ldc, x, nc, g, t); break;
    default: break;
    }
}

void ISA(wino_dy)(WinoAlg a, float *dm, size_t ldxi, size_t ldk, const float *dy, int nk,
                    const WinoGeom *g, const WinoTiles *t)
{
    switch (a) {
    case WINO_F2X3: dy_tpl(MAT(F2x3_AT), 4, 2, dm, ldxi, ldk, dy, nk, g, t); break;
    case WINO_F4X3: dy_tpl(MAT(F4x3_AT), 6, 4, dm, ldxi, ldk, dy, nk, g, t); break;
    case WINO_F2X5: dy_tpl(MAT(F2x5_AT), 6, 2, dm, ldxi, ldk, dy, nk, g, t); break;
    case WINO_F4X5: dy_tpl(MAT(F4x5_AT), 8, 4, dm, ldxi, ldk, dy, nk, g, t); break;
    default: break;
    }
}

void ISA(wino_filter)(WinoAlg a, float *u, size_t ldxi, const float *wt, int cout, int cin,
                        int flip, size_t e0, size_t e1)
{
    switch (a) {
    case WINO_F2X3: filter_tpl(MAT(F2x3_G), 4, 3, u, ldxi, wt, cout, cin, flip, e0, e1); break;
    case WINO_F4X3: filter_tpl(MAT(F4x3_G), 6, 3, u, ldxi, wt, cout, cin, flip, e0, e1); break;
    case WINO_F2X5: filter_tpl(MAT(F2x5_G), 6, 5, u, ldxi, wt, cout, cin, flip, e0, e1); break;
    case WINO_F4X5: filter_tpl(MAT(F4x5_G), 8, 5, u, ldxi, wt, cout, cin, flip, e0, e1); break;
    default: break;
    }
}

void ISA(wino_filter_grad)(WinoAlg a, float *dw, const float *du, size_t ldxi, size_t e0, size_t e1)
{
    switch (a) {
    case WINO_F2X3: filter_grad_tpl(MAT(F2x3_G), 4, 3, dw, du, ldxi, e0, e1); break;
    case WINO_F4X3: filter_grad_tpl(MAT(F4x3_G), 6, 3, dw, du, ldxi, e0, e1); break;
    case WINO_F2X5: filter_grad_tpl(MAT(F2x5_G), 6, 5, dw, du, ldxi, e0, e1); break;
    case WINO_F4X5: filter_grad_tpl(MAT(F4x5_G), 8, 5, dw, du, ldxi, e0, e1); break;
    default: break;
    }
}
