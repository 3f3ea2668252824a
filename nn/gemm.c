/* gemm.c: GEMM split into blocks of C over the pool (see gemm.h). */
#include "nn/gemm.h"

#include <cblas.h>

#include "nn/parallel.h"

/* Columns (or rows) of C per OpenBLAS call: a function of the shape only,
 * whatever the thread count (OpenBLAS picks its kernels by the size of the
 * call, small-matrix kernels below a threshold, and those round differently).
 * About 8 blocks of at most 512, so that a product with a short side and a
 * long K (a weight gradient) still feeds every thread. */
#define MAX_PER_CALL 512
#define BLOCKS_WANTED 8

static int per_call(long len)
{
    long per = (len + BLOCKS_WANTED - 1) / BLOCKS_WANTED;
    per = (per + 15) / 16 * 16;
    return (int)(per > MAX_PER_CALL ? MAX_PER_CALL : per);
}

typedef struct {
    int ta, tb, m, n, k, lda, ldb, ldc;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int split_n; /* 1: blocks of columns; 0: blocks of rows */
    int per;     /* columns or rows per block */
} GemmJob;

static void gemm_blocks(void *ctx, long lo, long hi)
{
    const GemmJob *j = ctx;
    CBLAS_TRANSPOSE ta = j->ta ? CblasTrans : CblasNoTrans, tb = j->tb ? CblasTrans : CblasNoTrans;
    long len = j->split_n ? j->n : j->m;
    for (long blk = lo; blk < hi; blk++) {
        long b0 = blk * j->per, b1 = b0 + j->per < len ? b0 + j->per : len;
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
}

void gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc)
{
    /* split the longer side of C; the blocks depend on the shape only */
    int split_n = n >= m;
    long len = split_n ? n : m;
    GemmJob j = {trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, a, b, c, split_n, per_call(len)};
    long blocks = (len + j.per - 1) / j.per;
    /* too little work to share: one thread */
    long grain = (double)m * n * k < 4e6 ? blocks : 1;
    parallel_for(blocks, grain, gemm_blocks, &j);
}
