/* gemm.c: GEMM split into blocks of C over the pool (see gemm.h). */
#include "nn/gemm.h"

#include <cblas.h>

#include "nn/parallel.h"

typedef struct {
    int ta, tb, m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int split_n; /* 1: blocks of columns; 0: blocks of rows */
    int align;   /* block edges fall on multiples of this many columns/rows */
} GemmJob;

static void gemm_block(void *ctx, long lo, long hi)
{
    const GemmJob *j = ctx;
    long b0 = lo * j->align, b1 = hi * j->align;
    long len = j->split_n ? j->n : j->m;
    if (b1 > len) b1 = len;
    if (b0 >= b1) return;
    CBLAS_TRANSPOSE ta = j->ta ? CblasTrans : CblasNoTrans, tb = j->tb ? CblasTrans : CblasNoTrans;
    if (j->split_n) {
        const float *b = j->tb ? j->b + b0 * j->ldb : j->b + b0;
        cblas_sgemm(CblasRowMajor, ta, tb, j->m, (int)(b1 - b0), j->k, j->alpha, j->a, j->lda, b,
                    j->ldb, j->beta, j->c + b0, j->ldc);
    } else {
        const float *a = j->ta ? j->a + b0 : j->a + b0 * j->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)(b1 - b0), j->n, j->k, j->alpha, a, j->lda, j->b,
                    j->ldb, j->beta, j->c + b0 * j->ldc, j->ldc);
    }
}

void gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc)
{
    GemmJob j = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c, 0, 16};
    long threads = parallel_threads();
    /* too little work to share: one call */
    if (threads <= 1 || (double)m * n * k < 4e6) {
        gemm_block(&(GemmJob){trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c, 1, n}, 0, 1);
        return;
    }
    /* split the longer side of C, in blocks the kernels like (16 wide) */
    j.split_n = n >= m;
    long len = j.split_n ? n : m;
    long blocks = (len + j.align - 1) / j.align;
    parallel_for(blocks, 1, gemm_block, &j);
}
