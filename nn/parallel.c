/* parallel.c: the worker pool behind parallel_for (see parallel.h). */
#include "nn/parallel.h"

#include <pthread.h>
#include <stdlib.h>

#define MAX_THREADS 64

static struct {
    pthread_t threads[MAX_THREADS];
    int nthreads; /* including the caller */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    unsigned long generation;
    int pending;
    int quit;
    ParallelFn fn;
    void *ctx;
    long n, chunks;
} pool = {.nthreads = 1, .mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void run_chunk(long i)
{
    long b = pool.n * i / pool.chunks, e = pool.n * (i + 1) / pool.chunks;
    if (b < e) pool.fn(pool.ctx, b, e);
}

static void *worker(void *arg)
{
    long id = (long)arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.generation == seen && !pool.quit) pthread_cond_wait(&pool.wake, &pool.mu);
        if (pool.quit) break;
        seen = pool.generation;
        int active = id < pool.chunks;
        pthread_mutex_unlock(&pool.mu);
        if (active) run_chunk(id);
        pthread_mutex_lock(&pool.mu);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

static void pool_stop(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.quit = 1;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 1; i < pool.nthreads; i++) pthread_join(pool.threads[i], NULL);
    pool.quit = 0;
    pool.nthreads = 1;
}

void parallel_set_threads(int threads)
{
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads == pool.nthreads) return;
    pool_stop();
    pool.nthreads = threads;
    for (long i = 1; i < threads; i++)
        if (pthread_create(&pool.threads[i], NULL, worker, (void *)i) != 0) {
            pool.nthreads = (int)i; /* fewer threads still compute correctly */
            break;
        }
}

int parallel_threads(void) { return pool.nthreads; }

void parallel_for(long n, long grain, ParallelFn fn, void *ctx)
{
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    long chunks = n / grain;
    if (chunks > pool.nthreads) chunks = pool.nthreads;
    if (chunks <= 1) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunks = chunks;
    pool.pending = pool.nthreads - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    run_chunk(0);
    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
}
