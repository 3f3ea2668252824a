/* allreduce.c: the bucketed gradient allreducer (see comm.h).
 *
 * Each bucket is reduced as a reduce-scatter followed by an allgather, written
 * with point-to-point messages: the bucket is cut into one chunk per rank; every
 * rank sends chunk r to rank r; rank r sums the contributions to its chunk in
 * rank order 0, 1, ..., p-1 and sends the sum to everyone. Each element is thus
 * added up by exactly one rank, in a fixed order, so the result is bitwise the
 * same on every rank and in every run, whatever the bucket size or timing; and
 * each rank sends 2 (p-1)/p of the bucket, as a ring allreduce does.
 *
 * With bf16/fp16 the chunks travel as 16-bit values preceded by a 32-bit
 * exponent e (value = half * 2^-e); see half.h for the rounding.
 *
 * A communication thread starts the buckets in index order as backward makes
 * them ready and drives them with MPI_Test. While the caller computes, the
 * thread sleeps between tests (poll_us, longer while nothing moves) so it does
 * not take the core backward runs on; once the caller waits in finish() it
 * tests continuously while data moves, and backs off when a peer is late.
 *
 * This file must not call MPI from the caller's thread while a step runs,
 * except the watchdog in finish(); and never allocates during a step.
 */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/half.h"
#include "comm/internal.h"

enum { SLOTS = 2, HDR = 2 /* uint16 slots holding the int32 exponent */ };

typedef struct {
    int bucket;           /* -1: free */
    int phase;            /* 1: reduce-scatter in flight, 2: allgather in flight */
    int nreq;
    MPI_Request *req;     /* (2 * (size - 1)) */
    float *recv32;        /* (size - 1, chunk_max): contributions to this rank's chunk, fp32 */
    uint16_t *send16;     /* (bucket + HDR * size): this rank's bucket, 16-bit, [exponent][values] per chunk */
    uint16_t *recv16;     /* (size - 1, chunk_max + HDR): contributions, then the others' sums */
} Slot;

struct CommAllreducer {
    Comm *c;
    MPI_Comm comm;          /* this allreducer's own communicator, used by the thread only */
    float *grads;           /* (n) */
    size_t n, bucket;       /* bucket: floats per bucket */
    int nbuckets, rank, size, overlap;
    CommCompress compress;
    size_t chunk_max;
    Slot slot[SLOTS];
    int poll_us;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work;    /* to the thread: buckets ready, finish, quit */
    pthread_cond_t done;    /* to the caller: the step's buckets are all reduced */
    /* under mu */
    int begun;              /* between begin() and finish() (the caller's view) */
    int active, finishing, quit;
    int ready;              /* buckets whose gradients are final */
    int buckets_done;
    int64_t step;
    /* the thread's; read by the caller once the step is done (under mu) */
    int next, in_flight;
    double busy, busy_since;
    double cpu, cpu_since;  /* the thread's CPU seconds in this step, from its first wake-up */
    int64_t cpu_step;       /* the step cpu_since belongs to */
    uint64_t bytes;
    double *t_start, *t_end; /* (nbuckets) when each bucket of the step started and finished */
};

static size_t bucket_lo(const CommAllreducer *ar, int b)
{
    size_t hi = ar->n - (size_t)b * ar->bucket;
    return hi > ar->bucket ? hi - ar->bucket : 0;
}

static size_t bucket_hi(const CommAllreducer *ar, int b) { return ar->n - (size_t)b * ar->bucket; }

/* chunk r of [lo, hi): [lo + len r / p, lo + len (r + 1) / p) */
static size_t chunk_lo(const CommAllreducer *ar, size_t lo, size_t hi, int r)
{
    return lo + (hi - lo) * (size_t)r / (size_t)ar->size;
}

static size_t chunk_len(const CommAllreducer *ar, size_t lo, size_t hi, int r)
{
    return chunk_lo(ar, lo, hi, r + 1) - chunk_lo(ar, lo, hi, r);
}

/* index of a peer's area in the receive buffers */
static int peer_slot(const CommAllreducer *ar, int r) { return r < ar->rank ? r : r - 1; }

static int tag_of(int bucket, int phase) { return bucket * 2 + phase - 1; }

static int get_exponent(const uint16_t *msg)
{
    int32_t e;
    memcpy(&e, msg, sizeof e);
    return e;
}

static void put_exponent(uint16_t *msg, int e)
{
    int32_t v = e;
    memcpy(msg, &v, sizeof v);
}

/* offset in send16 of chunk r's message */
static size_t send16_off(const CommAllreducer *ar, size_t lo, size_t hi, int r)
{
    return chunk_lo(ar, lo, hi, r) - lo + (size_t)HDR * r;
}

static void post(CommAllreducer *ar, Slot *s, int send, void *buf, size_t count, MPI_Datatype type, int peer,
                 int tag)
{
    int rc;
    if (send) {
        rc = MPI_Isend(buf, (int)count, type, peer, tag, ar->comm, &s->req[s->nreq]);
        ar->bytes += count * (type == MPI_FLOAT ? 4 : 2);
    } else {
        rc = MPI_Irecv(buf, (int)count, type, peer, tag, ar->comm, &s->req[s->nreq]);
    }
    comm_check_mpi(ar->c, rc, "gradient allreduce");
    s->nreq++;
}

static void start_bucket(CommAllreducer *ar, Slot *s, int b)
{
    size_t lo = bucket_lo(ar, b), hi = bucket_hi(ar, b);
    int me = ar->rank, p = ar->size, tag = tag_of(b, 1);
    size_t mine = chunk_len(ar, lo, hi, me);
    s->bucket = b;
    s->phase = 1;
    s->nreq = 0;
    ar->t_start[b] = clock_now();
    if (ar->in_flight++ == 0) ar->busy_since = ar->t_start[b];
    if (ar->compress == COMM_COMPRESS_NONE) {
        for (int r = 0; r < p; r++)
            if (r != me) post(ar, s, 0, s->recv32 + peer_slot(ar, r) * ar->chunk_max, mine, MPI_FLOAT, r, tag);
        for (int r = 0; r < p; r++)
            if (r != me)
                post(ar, s, 1, ar->grads + chunk_lo(ar, lo, hi, r), chunk_len(ar, lo, hi, r), MPI_FLOAT, r, tag);
        return;
    }
    for (int r = 0; r < p; r++) {
        const float *src = ar->grads + chunk_lo(ar, lo, hi, r);
        size_t len = chunk_len(ar, lo, hi, r);
        uint16_t *msg = s->send16 + send16_off(ar, lo, hi, r);
        int e = comm_half_scale_exponent(ar->compress, src, len);
        put_exponent(msg, e);
        comm_half_encode(ar->compress, msg + HDR, src, len, ldexpf(1.0f, e));
    }
    for (int r = 0; r < p; r++)
        if (r != me)
            post(ar, s, 0, s->recv16 + peer_slot(ar, r) * (ar->chunk_max + HDR), mine + HDR, MPI_UINT16_T, r, tag);
    for (int r = 0; r < p; r++)
        if (r != me)
            post(ar, s, 1, s->send16 + send16_off(ar, lo, hi, r), chunk_len(ar, lo, hi, r) + HDR, MPI_UINT16_T, r,
                 tag);
}

enum { BLOCK = 2048 };

/* dst[i] = ((src[0][i] + src[1][i]) + src[2][i]) + ..., for p sources; one of them may be dst. */
static void sum_rank_order(float *dst, const float *const *src, int p, size_t n)
{
    float tmp[BLOCK];
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        memcpy(tmp, src[0] + i0, m * sizeof *tmp);
        for (int r = 1; r < p; r++) {
            const float *s = src[r] + i0;
            for (size_t j = 0; j < m; j++) tmp[j] += s[j];
        }
        memcpy(dst + i0, tmp, m * sizeof *tmp);
    }
}

/* The same over 16-bit messages [exponent][values]. */
static void sum_rank_order16(CommCompress kind, float *dst, const uint16_t *const *msg, int p, size_t n)
{
    float tmp[BLOCK];
    for (size_t i0 = 0; i0 < n; i0 += BLOCK) {
        size_t m = n - i0 < BLOCK ? n - i0 : BLOCK;
        comm_half_decode(kind, tmp, msg[0] + HDR + i0, m, ldexpf(1.0f, -get_exponent(msg[0])));
        for (int r = 1; r < p; r++)
            comm_half_accumulate(kind, tmp, msg[r] + HDR + i0, m, ldexpf(1.0f, -get_exponent(msg[r])));
        memcpy(dst + i0, tmp, m * sizeof *tmp);
    }
}

/* Reduce-scatter done: sum this rank's chunk and send it to everyone. */
static void reduce_and_gather(CommAllreducer *ar, Slot *s)
{
    int b = s->bucket, me = ar->rank, p = ar->size, tag = tag_of(b, 2);
    size_t lo = bucket_lo(ar, b), hi = bucket_hi(ar, b);
    size_t my_lo = chunk_lo(ar, lo, hi, me), mine = chunk_len(ar, lo, hi, me);
    float *out = ar->grads + my_lo;
    s->phase = 2;
    s->nreq = 0;
    if (ar->compress == COMM_COMPRESS_NONE) {
        const float *src[p];
        for (int r = 0; r < p; r++) src[r] = r == me ? out : s->recv32 + peer_slot(ar, r) * ar->chunk_max;
        sum_rank_order(out, src, p, mine);
        for (int r = 0; r < p; r++)
            if (r != me)
                post(ar, s, 0, ar->grads + chunk_lo(ar, lo, hi, r), chunk_len(ar, lo, hi, r), MPI_FLOAT, r, tag);
        for (int r = 0; r < p; r++)
            if (r != me) post(ar, s, 1, out, mine, MPI_FLOAT, r, tag);
        return;
    }
    const uint16_t *msg[p];
    for (int r = 0; r < p; r++)
        msg[r] = r == me ? s->send16 + send16_off(ar, lo, hi, me) : s->recv16 + peer_slot(ar, r) * (ar->chunk_max + HDR);
    sum_rank_order16(ar->compress, out, msg, p, mine);
    /* the sum goes out in 16 bits too; this rank keeps exactly what the others
     * will decode. The reduce-scatter's sends are complete: reuse send16. */
    int e = comm_half_scale_exponent(ar->compress, out, mine);
    put_exponent(s->send16, e);
    comm_half_encode(ar->compress, s->send16 + HDR, out, mine, ldexpf(1.0f, e));
    comm_half_decode(ar->compress, out, s->send16 + HDR, mine, ldexpf(1.0f, -e));
    for (int r = 0; r < p; r++)
        if (r != me)
            post(ar, s, 0, s->recv16 + peer_slot(ar, r) * (ar->chunk_max + HDR), chunk_len(ar, lo, hi, r) + HDR,
                 MPI_UINT16_T, r, tag);
    for (int r = 0; r < p; r++)
        if (r != me) post(ar, s, 1, s->send16, mine + HDR, MPI_UINT16_T, r, tag);
}

static void unpack_gathered(CommAllreducer *ar, Slot *s)
{
    if (ar->compress == COMM_COMPRESS_NONE) return;   /* received in place */
    size_t lo = bucket_lo(ar, s->bucket), hi = bucket_hi(ar, s->bucket);
    for (int r = 0; r < ar->size; r++) {
        if (r == ar->rank) continue;
        const uint16_t *msg = s->recv16 + peer_slot(ar, r) * (ar->chunk_max + HDR);
        comm_half_decode(ar->compress, ar->grads + chunk_lo(ar, lo, hi, r), msg + HDR, chunk_len(ar, lo, hi, r),
                         ldexpf(1.0f, -get_exponent(msg)));
    }
}

/* Advances one in-flight bucket. Returns 1 when something happened, 2 when the bucket is done. */
static int progress_slot(CommAllreducer *ar, Slot *s)
{
    int done = 0;
    comm_check_mpi(ar->c, MPI_Testall(s->nreq, s->req, &done, MPI_STATUSES_IGNORE), "gradient allreduce");
    if (!done) return 0;
    if (s->phase == 1) {
        reduce_and_gather(ar, s);
        return 1;
    }
    unpack_gathered(ar, s);
    double t = clock_now();
    ar->t_end[s->bucket] = t;
    s->bucket = -1;
    if (--ar->in_flight == 0) ar->busy += t - ar->busy_since;
    return 2;
}

static Slot *free_slot(CommAllreducer *ar)
{
    for (int i = 0; i < SLOTS; i++)
        if (ar->slot[i].bucket < 0) return &ar->slot[i];
    return NULL;
}

static void wait_for(pthread_cond_t *cv, pthread_mutex_t *mu, double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long ns = ts.tv_nsec + (long)(seconds * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(cv, mu, &ts);
}

static void *thread_main(void *arg)
{
    CommAllreducer *ar = arg;
    double last_progress = 0;
    pthread_mutex_lock(&ar->mu);
    while (!ar->quit) {
        if (ar->active && ar->cpu_step != ar->step) {
            ar->cpu_step = ar->step;
            ar->cpu_since = clock_cpu_thread();
        }
        int ready = ar->finishing ? ar->nbuckets : ar->ready;
        int startable = ar->active && ar->next < ready && free_slot(ar);
        if (!startable && ar->in_flight == 0) {
            pthread_cond_wait(&ar->work, &ar->mu);
            continue;
        }
        int finishing = ar->finishing;
        pthread_mutex_unlock(&ar->mu);

        int progressed = 0, completed = 0;
        Slot *s;
        while (ar->next < ready && (s = free_slot(ar))) {
            start_bucket(ar, s, ar->next++);
            progressed = 1;
        }
        /* oldest bucket first: its allgather is what the caller waits for */
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < SLOTS; i++) {
                Slot *t = &ar->slot[i];
                if (t->bucket < 0) continue;
                int r = progress_slot(ar, t);
                progressed |= r != 0;
                completed += r == 2;
            }
        }
        double t = clock_now();
        if (progressed) last_progress = t;

        pthread_mutex_lock(&ar->mu);
        ar->buckets_done += completed;
        if (ar->active && ar->buckets_done == ar->nbuckets) {
            ar->active = 0;
            ar->cpu = clock_cpu_thread() - ar->cpu_since;
            pthread_cond_signal(&ar->done);
        }
        if (progressed || ar->in_flight == 0) continue;
        double idle = t - last_progress;
        if (finishing && idle < 0.002) {
            /* the caller is blocked and data is moving: test continuously */
            pthread_mutex_unlock(&ar->mu);
            sched_yield();
            pthread_mutex_lock(&ar->mu);
        } else if (finishing) {
            /* a peer is late: a wake-up costs ~10 us of CPU that loader threads could use */
            wait_for(&ar->work, &ar->mu, comm_backoff(idle, 50e-6, 500e-6));
        } else if (ar->poll_us > 0) {
            /* backward runs on this core: the later a peer, the rarer the tests
             * (a bucket's start is all the caller's progress needs from us) */
            wait_for(&ar->work, &ar->mu, comm_backoff(idle * 2, ar->poll_us * 1e-6, ar->poll_us * 20e-6));
        } else {
            pthread_mutex_unlock(&ar->mu);
            sched_yield();
            pthread_mutex_lock(&ar->mu);
        }
    }
    pthread_mutex_unlock(&ar->mu);
    return NULL;
}

int comm_compress_parse(const char *name, CommCompress *out)
{
    if (!name) return -1;
    if (!strcmp(name, "none")) *out = COMM_COMPRESS_NONE;
    else if (!strcmp(name, "bf16")) *out = COMM_COMPRESS_BF16;
    else if (!strcmp(name, "fp16")) *out = COMM_COMPRESS_FP16;
    else return -1;
    return 0;
}

const char *comm_compress_name(CommCompress c)
{
    return c == COMM_COMPRESS_BF16 ? "bf16" : c == COMM_COMPRESS_FP16 ? "fp16" : "none";
}

static void free_buffers(CommAllreducer *ar)
{
    for (int i = 0; i < SLOTS; i++) {
        free(ar->slot[i].req);
        free(ar->slot[i].recv32);
        free(ar->slot[i].send16);
        free(ar->slot[i].recv16);
    }
    free(ar->t_start);
    free(ar->t_end);
}

CommAllreducer *comm_allreducer_init(Comm *c, float *grads, size_t n, size_t bucket_bytes, CommCompress compress,
                                     int overlap, char *err, size_t errlen)
{
    /* Every rank runs the same collectives whatever fails locally, so a rank
     * with bad arguments cannot leave the others waiting. */
    int *tag_ub = NULL, flag = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &flag);
    /* two tags per bucket; and far more buckets than layers only adds latency */
    long max_buckets = flag && tag_ub ? (*tag_ub - 1) / 2 : 16383;
    if (max_buckets > 65536) max_buckets = 65536;
    char local[256] = "";
    size_t bucket = bucket_bytes / sizeof(float);
    if (bucket > n) bucket = n;
    long nbuckets = bucket ? (long)((n + bucket - 1) / bucket) : 0;
    if (!grads || n == 0)
        snprintf(local, sizeof local, "the gradient buffer is empty");
    else if (compress != COMM_COMPRESS_NONE && compress != COMM_COMPRESS_BF16 && compress != COMM_COMPRESS_FP16)
        snprintf(local, sizeof local, "unknown gradient compression %d; use none, bf16 or fp16", (int)compress);
    else if (bucket == 0)
        snprintf(local, sizeof local, "bucket size %zu bytes is smaller than one gradient (4 bytes)", bucket_bytes);
    else if (nbuckets > max_buckets)
        snprintf(local, sizeof local, "bucket size %zu bytes cuts %zu gradients into %ld buckets, more than %ld; "
                 "use buckets of at least %zu bytes", bucket_bytes, n, nbuckets, max_buckets,
                 (n + max_buckets - 1) / max_buckets * sizeof(float));
    else if (bucket > (size_t)INT_MAX / 2)
        snprintf(local, sizeof local, "bucket size %zu bytes is too large; use at most 4 GB", bucket_bytes);

    int64_t lo[5] = {local[0] != 0, (int64_t)n, (int64_t)bucket, compress, overlap != 0}, hi[5];
    memcpy(hi, lo, sizeof hi);
    comm_allreduce_int64(c, lo, 5, COMM_MIN, "allreducer set-up");
    comm_allreduce_int64(c, hi, 5, COMM_MAX, "allreducer set-up");
    if (local[0]) {
        snprintf(err, errlen, "%s", local);
        return NULL;
    }
    if (hi[0]) {
        snprintf(err, errlen, "another rank rejected the allreducer's settings (see its message)");
        return NULL;
    }
    static const char *names[5] = {"", "gradient count", "bucket size (floats)", "compression", "overlap"};
    for (int i = 1; i < 5; i++) {
        if (lo[i] != hi[i]) {
            snprintf(err, errlen, "ranks disagree on the allreducer's %s (from %lld to %lld); every rank must "
                     "get the same model and flags", names[i], (long long)lo[i], (long long)hi[i]);
            return NULL;
        }
    }

    CommAllreducer *ar = calloc(1, sizeof *ar);
    if (!ar) {
        snprintf(err, errlen, "out of memory for the allreducer");
        return NULL;
    }
    ar->c = c;
    ar->grads = grads;
    ar->n = n;
    ar->bucket = bucket;
    ar->nbuckets = (int)nbuckets;
    ar->compress = compress;
    ar->overlap = overlap != 0;
    ar->rank = comm_rank(c);
    ar->size = comm_size(c);
    ar->chunk_max = (bucket + ar->size - 1) / ar->size;
    ar->poll_us = COMM_DEFAULT_POLL_US;
    int p = ar->size, ok = 1;
    ar->t_start = calloc((size_t)ar->nbuckets, sizeof(double));
    ar->t_end = calloc((size_t)ar->nbuckets, sizeof(double));
    ok &= ar->t_start && ar->t_end;
    for (int i = 0; i < SLOTS; i++) {
        Slot *s = &ar->slot[i];
        s->bucket = -1;
        s->req = calloc(2 * (size_t)p, sizeof *s->req);
        ok &= s->req != NULL;
        if (compress == COMM_COMPRESS_NONE) {
            s->recv32 = malloc(((p - 1) * ar->chunk_max + 1) * sizeof(float));
            ok &= s->recv32 != NULL;
        } else {
            s->send16 = malloc((bucket + (size_t)HDR * p) * sizeof(uint16_t));
            s->recv16 = malloc(((p - 1) * (ar->chunk_max + HDR) + 1) * sizeof(uint16_t));
            ok &= s->send16 && s->recv16;
        }
    }
    if (!ok) {
        free_buffers(ar);
        free(ar);
        snprintf(err, errlen, "out of memory for the allreducer's buffers (buckets of %zu bytes); use a smaller "
                 "--bucket-mb", bucket * sizeof(float));
        return NULL;
    }
    comm_check_mpi(c, MPI_Comm_dup(c->world, &ar->comm), "allreducer set-up");
    MPI_Comm_set_errhandler(ar->comm, MPI_ERRORS_RETURN);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&ar->mu, NULL);
    pthread_cond_init(&ar->work, &attr);
    pthread_cond_init(&ar->done, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&ar->thread, NULL, thread_main, ar) != 0) {
        MPI_Comm_free(&ar->comm);
        free_buffers(ar);
        free(ar);
        snprintf(err, errlen, "cannot start the communication thread (out of threads?)");
        return NULL;
    }
    return ar;
}

void comm_allreducer_free(CommAllreducer *ar)
{
    if (!ar) return;
    pthread_mutex_lock(&ar->mu);
    ar->quit = 1;
    pthread_cond_signal(&ar->work);
    pthread_mutex_unlock(&ar->mu);
    pthread_join(ar->thread, NULL);
    pthread_mutex_destroy(&ar->mu);
    pthread_cond_destroy(&ar->work);
    pthread_cond_destroy(&ar->done);
    MPI_Comm_free(&ar->comm);
    free_buffers(ar);
    free(ar);
}

int comm_allreducer_num_buckets(const CommAllreducer *ar) { return ar->nbuckets; }

void comm_allreducer_set_poll_us(CommAllreducer *ar, int us)
{
    pthread_mutex_lock(&ar->mu);
    ar->poll_us = us > 0 ? us : 0;
    pthread_mutex_unlock(&ar->mu);
}

void comm_allreducer_begin(CommAllreducer *ar)
{
    pthread_mutex_lock(&ar->mu);
    if (ar->begun) {
        pthread_mutex_unlock(&ar->mu);
        comm_abort(ar->c, 1, "internal error: comm_allreducer_begin called twice without finish");
    }
    ar->begun = 1;
    ar->active = 1;
    ar->finishing = 0;
    ar->ready = 0;
    ar->buckets_done = 0;
    ar->next = 0;
    ar->busy = 0;
    ar->cpu = 0;
    ar->bytes = 0;
    ar->step++;
    pthread_mutex_unlock(&ar->mu);
}

void comm_allreducer_ready(void *arg, size_t ready_from)
{
    CommAllreducer *ar = arg;
    if (!ar->overlap) return;
    /* bucket b is ready when its start n - (b + 1) B >= ready_from */
    int ready = ready_from == 0 ? ar->nbuckets
              : ready_from >= ar->n ? 0 : (int)((ar->n - ready_from) / ar->bucket);
    if (ready > ar->nbuckets) ready = ar->nbuckets;
    pthread_mutex_lock(&ar->mu);
    if (ar->active && ready > ar->ready) {
        ar->ready = ready;
        pthread_cond_signal(&ar->work);
    }
    pthread_mutex_unlock(&ar->mu);
}

void comm_allreducer_finish(CommAllreducer *ar, CommStepStats *stats)
{
    double t0 = clock_now();
    char label[64];
    pthread_mutex_lock(&ar->mu);
    if (!ar->begun) {
        pthread_mutex_unlock(&ar->mu);
        comm_abort(ar->c, 1, "internal error: comm_allreducer_finish called without begin");
    }
    ar->finishing = 1;
    pthread_cond_signal(&ar->work);
    snprintf(label, sizeof label, "gradient allreduce (step %lld)", (long long)ar->step);
    pthread_mutex_unlock(&ar->mu);

    comm_watch_enter(ar->c, label);
    pthread_mutex_lock(&ar->mu);
    while (ar->active) {
        wait_for(&ar->done, &ar->mu, 0.02);
        if (!ar->active) break;
        pthread_mutex_unlock(&ar->mu);
        comm_watch_poll(ar->c);
        double waited = clock_now() - t0;
        double timeout = comm_timeout(ar->c);
        if (timeout > 0 && waited > timeout) comm_watch_expired(ar->c, waited);
        pthread_mutex_lock(&ar->mu);
    }
    ar->finishing = 0;
    ar->begun = 0;
    if (stats) {
        stats->comm_seconds = ar->busy;
        stats->comm_cpu_seconds = ar->cpu;
        stats->bytes_sent = ar->bytes;
        stats->buckets = ar->nbuckets;
        stats->exposed_seconds = clock_now() - t0;
    }
    pthread_mutex_unlock(&ar->mu);
}

int comm_allreducer_bucket_times(CommAllreducer *ar, double *start, double *end, int max)
{
    pthread_mutex_lock(&ar->mu);
    int n = ar->nbuckets < max ? ar->nbuckets : max;
    for (int b = 0; b < n; b++) {
        start[b] = ar->t_start[b];
        end[b] = ar->t_end[b];
    }
    pthread_mutex_unlock(&ar->mu);
    return n;
}
