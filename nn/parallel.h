/* parallel.h: a fixed pool of worker threads for the layers' loops.
 *
 * parallel_for splits [0, n) into one contiguous range per thread, so a given
 * thread count always computes the same partition. Between calls workers spin
 * for a few tens of microseconds, then sleep on a condition variable. OpenBLAS
 * runs single-threaded inside the pool's threads (nn/gemm.h), so no other
 * thread pool competes for the cores. One pool per process;
 * parallel_set_threads may be called again to resize.
 */
#ifndef NN_PARALLEL_H
#define NN_PARALLEL_H

typedef void (*ParallelFn)(void *ctx, long begin, long end);

/* 1 (or less) runs everything on the caller's thread. */
void parallel_set_threads(int threads);
int parallel_threads(void);
/* Calls fn(ctx, b, e) over a partition of [0, n); returns when all are done.
 * Ranges are never split below `grain` items. Not reentrant. */
void parallel_for(long n, long grain, ParallelFn fn, void *ctx);

#endif
