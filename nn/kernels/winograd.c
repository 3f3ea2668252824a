/* winograd.c (kernels): the tile transforms of Winograd convolution, vectorised
 * across tiles: lane l of every vector is tile l of a block, so the 36 (or 16)
 * transformed values of a tile land in 36 rows of the GEMM operands with one
 * full-width store each. The transforms are written once, generically over the
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

/* ---- input tiles: V = BT d B ---- */

INLINE void input_tpl(const float *bt, const int A, float *v, size_t ldxi, size_t ldc,
                      const float *x, int nc, const WinoGeom *g, const WinoTiles *t)
{
    /* channel by channel, so that the reads of one plane stream */
    for (int c = 0; c < nc; c++) {
        const float *xc = x + c * g->in_cstride;
        for (int t0 = 0; t0 < t->count; t0 += VL) {
            vi live = (viota() + t0) < t->count;
            vi iy = viload(t->oy + t0) - g->pad, ix = viload(t->ox + t0) - g->pad;
            vi base = viload(t->img + t0) * (g->h * g->w) + iy * g->w + ix;
            vi okr[8], okc[8];
#pragma GCC unroll 8
            for (int r = 0; r < A; r++) {
                okr[r] = live & (iy + r >= 0) & (iy + r < g->h);
                okc[r] = (ix + r >= 0) & (ix + r < g->w);
            }
            vf d[64], tmp[64], o[64];
#pragma GCC unroll 8
            for (int r = 0; r < A; r++)
#pragma GCC unroll 8
                for (int s = 0; s < A; s++) d[r * A + s] = vgather(xc, base + (r * g->w + s), okr[r] & okc[s]);
#pragma GCC unroll 8
            for (int s = 0; s < A; s++) tf(bt, A, A, 0, &d[s], A, &tmp[s], A);
#pragma GCC unroll 8
            for (int i = 0; i < A; i++) tf(bt, A, A, 0, &tmp[i * A], 1, &o[i * A], 1);
            float *vc = v + c * ldc + t0;
#pragma GCC unroll 8
            for (int xi = 0; xi < A * A; xi++) vstore(vc + xi * ldxi, o[xi]);
        }
    }
}

/* ---- output tiles: y = AT M A (+ bias, ReLU) ---- */

/* One output row (a) of the VL tiles of a group: row a of tile l is
 * o[a*M + 0..M-1][l], written to p[l] (M floats) for every full tile l. */
INLINE void store_rows_full(const int M, const vf *o, float *const *p, int cnt, int accum)
{
    if (M == 4) {
        /* a 4 x VL transpose, within each 128-bit lane L (tiles 4L..4L+3) */
        vf t0 = __builtin_shufflevector(o[0], o[1], UNPACK_LO), t1 = __builtin_shufflevector(o[0], o[1], UNPACK_HI);
        vf t2 = __builtin_shufflevector(o[2], o[3], UNPACK_LO), t3 = __builtin_shufflevector(o[2], o[3], UNPACK_HI);
        /* in each 128-bit lane L: t0 = (o0[4L], o1[4L], o0[4L+1], o1[4L+1]), t1 the same for 4L+2, 4L+3 */
        vf r[4] = {__builtin_shufflevector(t0, t2, MOVE_LH), __builtin_shufflevector(t0, t2, MOVE_HL),
                   __builtin_shufflevector(t1, t3, MOVE_LH), __builtin_shufflevector(t1, t3, MOVE_HL)};
        /* 128-bit lane L of r[q] is tile 4L + q's row */
        for (int l = 0; l < cnt; l++) {
            v4 row;
            memcpy(&row, (const float *)&r[l & 3] + 4 * (l >> 2), sizeof row);
            if (accum) {
                v4 old;
                memcpy(&old, p[l], sizeof old);
                row += old;
            }
            memcpy(p[l], &row, sizeof row);
        }
    } else {
        for (int l = 0; l < cnt; l++)
            for (int b = 0; b < M; b++) {
                if (accum) p[l][b] += o[b][l];
                else p[l][b] = o[b][l];
            }
    }
}

INLINE void output_tpl(const float *at, const int A, const int M, float *y, int nk,
                       const float *mb, size_t ldxi, size_t ldk, const WinoGeom *g,
                       const WinoTiles *t, const float *bias, int relu, int accum)
{
    /* channel by channel, so that the writes of one plane stream */
    for (int k = 0; k < nk; k++) {
        float *yk = y + k * g->out_cstride;
        for (int t0 = 0; t0 < t->count; t0 += VL) {
            int cnt = t->count - t0 < VL ? t->count - t0 : VL;
            vf mm[64], tmp[64], o[64];
            const float *mk = mb + k * ldk + t0;
#pragma GCC unroll 8
            for (int xi = 0; xi < A * A; xi++) mm[xi] = vload(mk + xi * ldxi);
#pragma GCC unroll 8
            for (int j = 0; j < A; j++) tf(at, M, A, 0, &mm[j], A, &tmp[j], A);
#pragma GCC unroll 8
            for (int a = 0; a < M; a++) tf(at, M, A, 0, &tmp[a * A], 1, &o[a * M], 1);
            if (bias) {
                vf bk = vset1(bias[k]);
#pragma GCC unroll 8
                for (int q = 0; q < M * M; q++) o[q] += bk;
            }
            if (relu) {
#pragma GCC unroll 8
                for (int q = 0; q < M * M; q++) o[q] = vmax0(o[q]);
            }
            float *p[VL];
            int full = 1;
            for (int l = 0; l < cnt; l++) {
                int oy = t->oy[t0 + l], ox = t->ox[t0 + l];
                p[l] = yk + ((size_t)t->img[t0 + l] * g->ho + oy) * g->wo + ox;
                full &= oy + M <= g->ho && ox + M <= g->wo;
            }
            if (full) {
#pragma GCC unroll 8
                for (int a = 0; a < M; a++) {
                    store_rows_full(M, &o[a * M], p, cnt, accum);
                    for (int l = 0; l < cnt; l++) p[l] += g->wo;
                }
                continue;
            }
            for (int l = 0; l < cnt; l++) {
                int oy = t->oy[t0 + l], ox = t->ox[t0 + l];
                int nr = g->ho - oy < M ? g->ho - oy : M, ncol = g->wo - ox < M ? g->wo - ox : M;
                for (int a = 0; a < nr; a++)
                    for (int b = 0; b < ncol; b++) {
                        if (accum) p[l][a * g->wo + b] += o[a * M + b][l];
                        else p[l][a * g->wo + b] = o[a * M + b][l];
                    }
            }
        }
    }
}

/* ---- output-gradient tiles for the weight gradient: dM = A dY AT ---- */

INLINE void dy_tpl(const float *at, const int A, const int M, float *dm, size_t ldxi, size_t ldk,
                   const float *dy, int nk, const WinoGeom *g, const WinoTiles *t)
{
    for (int k = 0; k < nk; k++) {
        const float *dk = dy + k * g->out_cstride;
        for (int t0 = 0; t0 < t->count; t0 += VL) {
            vi live = (viota() + t0) < t->count;
            vi oy = viload(t->oy + t0), ox = viload(t->ox + t0);
            vi base = (viload(t->img + t0) * g->ho + oy) * g->wo + ox;
            vi okr[8], okc[8];
#pragma GCC unroll 8
            for (int a = 0; a < M; a++) {
                okr[a] = live & (oy + a < g->ho);
                okc[a] = ox + a < g->wo;
            }
            vf d[64], tmp[64], o[64];
#pragma GCC unroll 8
            for (int a = 0; a < M; a++)
#pragma GCC unroll 8
                for (int b = 0; b < M; b++) d[a * M + b] = vgather(dk, base + (a * g->wo + b), okr[a] & okc[b]);
#pragma GCC unroll 8
            for (int b = 0; b < M; b++) tf(at, M, A, 1, &d[b], M, &tmp[b], M);
#pragma GCC unroll 8
            for (int i = 0; i < A; i++) tf(at, M, A, 1, &tmp[i * M], 1, &o[i * A], 1);
            float *out = dm + k * ldk + t0;
#pragma GCC unroll 8
            for (int xi = 0; xi < A * A; xi++) vstore(out + xi * ldxi, o[xi]);
        }
    }
}

/* ---- filters: U = G g G^T, and the weight gradient G^T dU G ---- */

INLINE void filter_tpl(const float *gm, const int A, const int R, float *u, size_t ldxi,
                       const float *wt, int cout, int cin, int flip, size_t e0, size_t e1)
{
    for (size_t e = e0; e < e1; e += VL) {
        int cnt = e1 - e < VL ? (int)(e1 - e) : VL;
        vi src = {0}, live = {0};
        for (int l = 0; l < cnt; l++) {
            size_t f = e + l;
            size_t w = flip ? (f % cout) * cin + f / cout : f;
            src[l] = (int32_t)(w * R * R);
            live[l] = -1;
        }
        vf gg[64], tmp[64], o[64];
#pragma GCC unroll 8
        for (int q = 0; q < R * R; q++) gg[q] = vgather(wt, src + (flip ? R * R - 1 - q : q), live);
#pragma GCC unroll 8
        for (int k = 0; k < R; k++) tf(gm, A, R, 0, &gg[k], R, &tmp[k], R);
#pragma GCC unroll 8
        for (int i = 0; i < A; i++) tf(gm, A, R, 0, &tmp[i * R], 1, &o[i * A], 1);
        if (cnt == VL) {
#pragma GCC unroll 8
            for (int xi = 0; xi < A * A; xi++) vstore(u + xi * ldxi + e, o[xi]);
        } else {
            for (int xi = 0; xi < A * A; xi++)
                for (int l = 0; l < cnt; l++) u[xi * ldxi + e + l] = o[xi][l];
        }
    }
}

INLINE void filter_grad_tpl(const float *gm, const int A, const int R, float *dw, const float *du,
                            size_t ldxi, size_t e0, size_t e1)
{
    for (size_t e = e0; e < e1; e += VL) {
        int cnt = e1 - e < VL ? (int)(e1 - e) : VL;
        vf d[64], tmp[64], o[64];
        if (cnt == VL) {
#pragma GCC unroll 8
            for (int xi = 0; xi < A * A; xi++) d[xi] = vload(du + xi * ldxi + e);
        } else {
            for (int xi = 0; xi < A * A; xi++) {
                d[xi] = vzero();
                for (int l = 0; l < cnt; l++) d[xi][l] = du[xi * ldxi + e + l];
            }
        }
#pragma GCC unroll 8
        for (int j = 0; j < A; j++) tf(gm, A, R, 1, &d[j], A, &tmp[j], A);
#pragma GCC unroll 8
        for (int k = 0; k < R; k++) tf(gm, A, R, 1, &tmp[k * A], 1, &o[k * R], 1);
        for (int l = 0; l < cnt; l++) {
            float *p = dw + (e + l) * R * R;
            for (int q = 0; q < R * R; q++) p[q] += o[q][l];
        }
    }
}

/* ---- one instantiation per algorithm ---- */

#define MAT(x) (&(x)[0][0])

void ISA(wino_input)(WinoAlg a, float *v, size_t ldxi, size_t ldc, const float *x, int nc,
                       const WinoGeom *g, const WinoTiles *t)
{
    switch (a) {
    case WINO_F2X3: input_tpl(MAT(F2x3_BT), 4, v, ldxi, ldc, x, nc, g, t); break;
    case WINO_F4X3: input_tpl(MAT(F4x3_BT), 6, v, ldxi, ldc, x, nc, g, t); break;
    case WINO_F2X5: input_tpl(MAT(F2x5_BT), 6, v, ldxi, ldc, x, nc, g, t); break;
    default: break;
    }
}

void ISA(wino_output)(WinoAlg a, float *y, int nk, const float *m, size_t ldxi, size_t ldk,
                        const WinoGeom *g, const WinoTiles *t, const float *bias, int relu, int accum)
{
    switch (a) {
    case WINO_F2X3: output_tpl(MAT(F2x3_AT), 4, 2, y, nk, m, ldxi, ldk, g, t, bias, relu, accum); break;
    case WINO_F4X3: output_tpl(MAT(F4x3_AT), 6, 4, y, nk, m, ldxi, ldk, g, t, bias, relu, accum); break;
    case WINO_F2X5: output_tpl(MAT(F2x5_AT), 6, 2, y, nk, m, ldxi, ldk, g, t, bias, relu, accum); break;
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
    default: break;
    }
}

void ISA(wino_filter_grad)(WinoAlg a, float *dw, const float *du, size_t ldxi, size_t e0, size_t e1)
{
    switch (a) {
    case WINO_F2X3: filter_grad_tpl(MAT(F2x3_G), 4, 3, dw, du, ldxi, e0, e1); break;
    case WINO_F4X3: filter_grad_tpl(MAT(F4x3_G), 6, 3, dw, du, ldxi, e0, e1); break;
    case WINO_F2X5: filter_grad_tpl(MAT(F2x5_G), 6, 5, dw, du, ldxi, e0, e1); break;
    default: break;
    }
}
