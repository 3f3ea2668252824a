/* train/trace.h: a Chrome-trace (Perfetto) timeline of a training run, one process
 * row per rank, as Horovod's timeline: forward, backward, each bucket's
 * allreduce, data waits, the optimizer, checkpoints and evaluations.
 *
 * Each rank streams its events to PATH.rank<r>; at the end rank 0 merges the
 * files into PATH (when it can read them: a shared file system) and removes
 * the parts. A NULL Trace is valid and records nothing.
 */
#ifndef TRAINER_TRACE_H
#define TRAINER_TRACE_H

#include <stddef.h>

typedef struct Trace Trace;

/* t0 is the run's time origin (clock_now() seconds, comm/clock.h), the same on every
 * rank up to clock offsets. NULL with a message when the file cannot be made. */
Trace *trace_open(const char *path, int rank, double t0, char *err, size_t errlen);
/* A complete event [start, end) in seconds; tid separates rows within a rank
 * (0 compute, 1 communication, 2 data, 3 checkpoint writer). */
void trace_event(Trace *t, const char *name, int tid, double start, double end, long step);
/* Closes this rank's part. */
void trace_close(Trace *t);
/* Rank 0, after every rank closed: merges PATH.rank0 .. PATH.rank<world-1>
 * into PATH. Returns 0, or -1 with a message (the parts are kept). */
int trace_merge(const char *path, int world, char *err, size_t errlen);

#endif
