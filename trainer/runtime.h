/* runtime.h: what every subcommand needs of the process: threads, a clock,
 * memory figures. */
#ifndef TRAINER_RUNTIME_H
#define TRAINER_RUNTIME_H

/* Sets the thread count of the layers' pool (nn/parallel.h), which also splits
 * every GEMM; OpenBLAS itself runs single-threaded. 0 changes nothing. */
void trainer_set_threads(int threads);
/* The cores of this node divided among the ranks the launcher put on it (at
 * least 1): the default of every --threads. */
int trainer_default_threads(void);
/* Seconds of CLOCK_MONOTONIC (comparable across threads of a process). */
double trainer_now(void);
/* Peak resident memory of the process so far, in MB. */
double trainer_peak_rss_mb(void);
/* The OpenBLAS kernel set in use ("Cooperlake", "Haswell", ...). */
const char *trainer_blas_core(void);

#endif
