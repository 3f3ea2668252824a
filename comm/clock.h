/* clock.h: the one clock of the program. Header-only and free of MPI, so
 * that every module (nn/'s planner, dataloader/'s timings, comm/'s watchdog,
 * trainer/'s logs and traces) reads the same time: seconds of
 * CLOCK_MONOTONIC, comparable across the threads of a process. The CPU-time
 * variants serve the benchmarks that report busy time. */
#ifndef COMM_CLOCK_H
#define COMM_CLOCK_H

#include <time.h>

static inline double clock_seconds(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wall time, monotonic. */
static inline double clock_now(void) { return clock_seconds(CLOCK_MONOTONIC); }
/* CPU time of the whole process (all threads). */
static inline double clock_cpu_process(void) { return clock_seconds(CLOCK_PROCESS_CPUTIME_ID); }
/* CPU time of the calling thread. */
static inline double clock_cpu_thread(void) { return clock_seconds(CLOCK_THREAD_CPUTIME_ID); }

#endif
