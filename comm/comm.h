/* comm.h: the narrow MPI interface of the data-parallel trainer.
 *
 * Start-up and shut-down of MPI, broadcast of the initial state from rank 0,
 * the "replicas identical" check, reduction of metrics, a barrier, an agreed
 * stop flag, and the bucketed gradient allreducer that overlaps communication
 * with backward. Every collective here runs under a watchdog: one that has not
 * completed within the timeout prints which ranks are late and aborts the whole
 * job (MPI_Abort). That, and comm_abort, are the only places this module ends
 * the process: a collective that cannot complete has no caller to recover in.
 *
 * Knows nothing of the model, files or the command line (the trainer parses
 * --timeout, --bucket-mb, --grad-compress and passes the values in).
 *
 * Threads: comm_init asks MPI for MPI_THREAD_MULTIPLE because the allreducer
 * runs a communication thread beside the caller's thread. Every function below
 * is called from one thread (the trainer's main thread), except
 * comm_request_stop, which is async-signal-safe.
 *
 * Every rank must call the collectives (marked "collective") in the same order:
 * the watchdog numbers them, and "late" means "has not reached the collective
 * this rank is waiting in".
 */
#ifndef COMM_COMM_H
#define COMM_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct Comm Comm;

/* Default of --timeout: seconds a collective may take before the job is aborted. */
#define COMM_DEFAULT_TIMEOUT 300.0

/* Initializes MPI (MPI_THREAD_MULTIPLE) and the watchdog's side channel.
 * timeout: seconds, 0 = wait forever. Works without mpirun (one rank).
 * Returns NULL with a one-line message in err (e.g. the MPI library lacks
 * thread support); MPI may then be unusable, so the caller just exits. */
Comm *comm_init(int *argc, char ***argv, double timeout, char *err, size_t errlen);
/* Collective. Finalizes MPI. Call after every allreducer is freed. */
void comm_free(Comm *c);

/* The MPI library's version line ("Open MPI v4.1.4, ..."); callable before
 * comm_init. */
void comm_library_version(char *out, size_t len);

int comm_rank(const Comm *c);
int comm_size(const Comm *c);
double comm_timeout(const Comm *c);
void comm_set_timeout(Comm *c, double timeout);

/* Prints "googlenet: [rank r] <message>" on stderr and aborts the whole job
 * with exit code `code` (MPI_Abort). c may be NULL (before or without comm_init). */
_Noreturn void comm_abort(Comm *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Collective. Copies rank 0's buf[0..bytes) into every rank's buf. bytes must be
 * equal on every rank (broadcast a size first when only rank 0 knows it); any
 * size, sent in pieces below MPI's int limit. `what` names the data in watchdog
 * messages ("initial weights"). */
void comm_broadcast(Comm *c, void *buf, size_t bytes, const char *what);

/* Collective. A 64-bit checksum of buf[0..bytes) on every rank, compared with
 * rank 0's. Returns 0 when all agree; otherwise -1 on every rank, with a message
 * naming the ranks that differ ("initial weights differ from rank 0's on ranks 1, 3"). */
int comm_check_identical(Comm *c, const void *buf, size_t bytes, const char *what,
                         char *err, size_t errlen);
/* The checksum used above (local, not collective). */
uint64_t comm_checksum(const void *buf, size_t bytes);

typedef enum { COMM_SUM, COMM_MAX, COMM_MIN } CommOp;

/* Collective. v[0..n) becomes op over the ranks, on every rank. Sums are taken
 * in rank order, so every rank (and every run) gets bitwise the same result.
 * For metrics: small n (up to a few thousand). */
void comm_allreduce_double(Comm *c, double *v, int n, CommOp op, const char *what);
void comm_allreduce_int64(Comm *c, int64_t *v, int n, CommOp op, const char *what);

/* Collective. Returns 1 on every rank when flag is non-zero on any rank. */
int comm_any(Comm *c, int flag, const char *what);

/* Collective: "did every rank succeed". Returns 0 when `failed` is 0 on every
 * rank. Otherwise every rank returns -1 with, in err, the message of the
 * lowest failing rank ("rank 2: cannot open ..." when there are several
 * ranks; msg alone with one), so that one rank (rank 0, by convention) prints
 * it once. msg may be err itself. Prints nothing. */
int comm_agree(Comm *c, int failed, const char *msg, char *err, size_t errlen);

/* Collective. Waits for every rank, under the watchdog. */
void comm_barrier(Comm *c, const char *what);

/* Collective. Gathers each rank's string into all[r * len .. (r+1) * len) on every
 * rank, truncated to len - 1 bytes and NUL-terminated. all: (size, len). */
void comm_allgather_string(Comm *c, const char *mine, char *all, size_t len, const char *what);

/* Async-signal-safe: marks that this rank was asked to stop (SIGTERM handler). */
void comm_request_stop(void);
/* Whether comm_request_stop was called in this process (local). */
int comm_stop_requested(void);
/* Collective, cheap (one small allreduce): 1 on every rank when any rank has a
 * stop request, so all ranks finish the same step and stop together. */
int comm_stop_agreed(Comm *c);

/* ---- Bucketed gradient allreduce ---------------------------------------- */

typedef enum { COMM_COMPRESS_NONE, COMM_COMPRESS_BF16, COMM_COMPRESS_FP16 } CommCompress;

/* "none" | "bf16" | "fp16". Returns 0, or -1 for an unknown name. */
int comm_compress_parse(const char *name, CommCompress *out);
const char *comm_compress_name(CommCompress c);

/* One step's figures for this rank (comm_allreducer_finish fills them). */
typedef struct {
    double comm_seconds;    /* busy time of the communication: from the start of the
                               first bucket to the completion of the last, minus the
                               gaps when no bucket was in flight */
    double exposed_seconds; /* time comm_allreducer_finish blocked the caller */
    double comm_cpu_seconds; /* CPU time the communication thread used (polling, copies,
                                sums, 16-bit conversions): what it took from compute
                                when every core is busy */
    uint64_t bytes_sent;    /* payload bytes this rank sent (both phases) */
    int buckets;
} CommStepStats;

typedef struct CommAllreducer CommAllreducer;

/* Collective (every rank must pass the same n, bucket_bytes, compress, overlap;
 * a mismatch is reported in err on every rank). Reduces grads[0..n) (n floats)
 * in buckets of bucket_bytes of fp32 gradients (the last one, at the start of
 * the buffer, may be shorter), laid out from the END of the buffer: bucket 0 is
 * [n - B, n), bucket 1 [n - 2B, n - B), ... overlap = 0 reduces every bucket in
 * finish(), after backward (the no-overlap baseline). Starts the communication
 * thread. Returns NULL with a message in err on bad arguments. */
CommAllreducer *comm_allreducer_init(Comm *c, float *grads, size_t n, size_t bucket_bytes,
                                     CommCompress compress, int overlap, char *err, size_t errlen);
void comm_allreducer_free(CommAllreducer *ar);
int comm_allreducer_num_buckets(const CommAllreducer *ar);
/* How long the communication thread sleeps between tests of in-flight buckets
 * while backward runs: poll_us after progress, backing off to 20 x poll_us while
 * nothing moves (default COMM_DEFAULT_POLL_US); 0 tests continuously. For
 * benchmarks (scripts/bench_allreduce.sh). */
#define COMM_DEFAULT_POLL_US 200
void comm_allreducer_set_poll_us(CommAllreducer *ar, int us);

/* Per step: begin(); backward calls ready() with decreasing offsets; finish().
 * With gradient accumulation over K micro-batches, run the first K - 1
 * backwards without the hook and begin() before the last one only.
 * Between begin() and finish() the caller must not write grads[ready_from, n)
 * after passing ready_from to ready(), nor free or resize grads. Other comm
 * collectives may run meanwhile (the allreducer has its own communicator). */
void comm_allreducer_begin(CommAllreducer *ar);
/* grads[ready_from, n) are final: every bucket lying entirely inside starts now.
 * The signature of nn/model.h's ModelGradHook: pass it with ctx = the allreducer.
 * Cheap (no MPI call, wakes the communication thread). */
void comm_allreducer_ready(void *ar, size_t ready_from);
/* Collective. Starts what is left, waits for all buckets under the watchdog, and
 * leaves grads holding the SUM over ranks, bitwise identical on every rank and
 * every run (each element is summed by one rank in rank order 0, 1, ...).
 * With bf16/fp16, each rank's gradients are rounded to 16 bits for the wire,
 * summed in fp32, and the sum rounded to 16 bits once more (round to nearest
 * even); fp16 scales each bucket slice by a power of two first, so small
 * gradients do not underflow. stats may be NULL. */
void comm_allreducer_finish(CommAllreducer *ar, CommStepStats *stats);
/* After finish(): when each bucket of the step started and completed on this
 * rank (clock_now() seconds, comm/clock.h), for timelines. Returns the count
 * written (at most max, bucket 0 first). */
int comm_allreducer_bucket_times(CommAllreducer *ar, double *start, double *end, int max);

#endif
