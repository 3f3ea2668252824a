/* gemm.h: single-precision GEMM for the layers, row-major, threaded by this
 * library's own pool (nn/parallel.h) over blocks of C, each block one
 * single-threaded OpenBLAS call.
 *
 * Why not OpenBLAS's threads: between GEMMs its idle workers spin in
 * sched_yield for milliseconds, competing with the layers' own threads for the
 * same cores (16% of a training step on 2 cores). One pool for everything
 * keeps exactly one runnable thread per core. C is cut into blocks of a size
 * that depends on the shape only, each computed by one call with the whole K
 * reduction, so results do not depend on the thread count.
 */
#ifndef NN_GEMM_H
#define NN_GEMM_H

/* C (M x N) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C; op = transpose when set. */
void gemm(int trans_a, int trans_b, int m, int n, int k, float alpha, const float *a, int lda,
          const float *b, int ldb, float beta, float *c, int ldc);

#endif
