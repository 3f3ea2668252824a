/* parallel.c: the worker pool behind parallel_for (see parallel.h).
 *
 * A call publishes its job by bumping `generation`; workers that are spinning
 * see it at once, workers that slept are woken through the condition variable.
 * Both sides spin for a short while before they sleep: layers issue thousands
 * of short parallel_for calls per step (the Winograd blocks), and a sleep and
 * a wake-up through the kernel cost more than many of them take. The waits
 * are Dekker-style: the publisher stores generation then reads `sleepers`; a
 * worker going to sleep stores sleepers then reads generation (both
 * sequentially consistent, the second under the mutex), so one of the two
 * always sees the other and no wake-up is lost.
 */
#include "nn/parallel.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define MAX_THREADS 64
/* pause instructions spun before sleeping: tens of microseconds */
#define SPIN_LIMIT 20000

static struct {
    pthread_t threads[MAX_THREADS];
    int nthreads; /* including the caller */
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    atomic_ulong generation;
    unsigned long first_seen; /* generation when the workers were created */
    atomic_int pending;
    atomic_int sleepers;
    atomic_int quit;
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

/* Returns the generation after `seen` (or seen when quitting). */
static unsigned long wait_generation(unsigned long seen)
{
    for (int i = 0; i < SPIN_LIMIT; i++) {
        unsigned long g = atomic_load(&pool.generation);
        if (g != seen || atomic_load(&pool.quit)) return g;
        _mm_pause();
    }
    pthread_mutex_lock(&pool.mu);
    atomic_fetch_add(&pool.sleepers, 1);
    while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.quit))
        pthread_cond_wait(&pool.wake, &pool.mu);
    atomic_fetch_sub(&pool.sleepers, 1);
    pthread_mutex_unlock(&pool.mu);
    return atomic_load(&pool.generation);
}

static void *worker(void *arg)
{
    long id = (long)arg;
    /* not the current generation: a job may already be published before this
     * thread runs */
    unsigned long seen = pool.first_seen;
    for (;;) {
        seen = wait_generation(seen);
        if (atomic_load(&pool.quit)) break;
        if (id < pool.chunks) run_chunk(id);
        if (atomic_fetch_sub(&pool.pending, 1) == 1) {
            pthread_mutex_lock(&pool.mu);
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    return NULL;
}

static void pool_stop(void)
{
    pthread_mutex_lock(&pool.mu);
    atomic_store(&pool.quit, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 1; i < pool.nthreads; i++) pthread_join(pool.threads[i], NULL);
    atomic_store(&pool.quit, 0);
    pool.nthreads = 1;
}

void parallel_set_threads(int threads)
{
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads == pool.nthreads) return;
    pool_stop();
    pool.nthreads = threads;
    pool.first_seen = atomic_load(&pool.generation);
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
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunks = chunks;
    atomic_store(&pool.pending, pool.nthreads - 1);
    atomic_fetch_add(&pool.generation, 1);
    if (atomic_load(&pool.sleepers) > 0) {
        pthread_mutex_lock(&pool.mu);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mu);
    }
    run_chunk(0);
    for (int i = 0; i < SPIN_LIMIT && atomic_load(&pool.pending) > 0; i++) _mm_pause();
    if (atomic_load(&pool.pending) > 0) {
        pthread_mutex_lock(&pool.mu);
        while (atomic_load(&pool.pending) > 0) pthread_cond_wait(&pool.done, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
    }
}
