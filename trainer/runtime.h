/* runtime.h: what every subcommand needs of the process: threads, memory
 * figures, and messages that a job of many ranks prints once. */
#ifndef TRAINER_RUNTIME_H
#define TRAINER_RUNTIME_H

#include <stddef.h>

/* Sets the thread count of the layers' pool (nn/parallel.h), which also splits
 * every GEMM; OpenBLAS itself runs single-threaded. 0 changes nothing. */
void trainer_set_threads(int threads);
/* The cores of this node divided among the ranks the launcher put on it (at
 * least 1): the default of every --threads. */
int trainer_default_threads(void);
/* Peak resident memory of the process so far, in MB. */
double trainer_peak_rss_mb(void);
/* The OpenBLAS kernel set in use ("Cooperlake", "Haswell", ...). */
const char *trainer_blas_core(void);
/* This process's rank as its launcher set it before MPI starts (Open MPI,
 * PMIx, Slurm, MPICH/Hydra); 0 when not launched as a rank. */
int trainer_launcher_rank(void);
/* "--crop 10 is too small for GoogLeNet: the smallest is 63": the one
 * statement of the minimum crop (nn/model.h model_min_crop) every command
 * makes. */
void trainer_crop_too_small(int crop, char *out, size_t len);
/* Whether an Open MPI mpirun started this process. */
int trainer_under_mpirun(void);
/* "googlenet CMD: message\n" on stderr, written at once (so that no other
 * output lands inside the line), by the launcher's rank 0 only: a bad flag
 * that every rank sees is reported once. */
void trainer_print_once(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A bad flag or an impossible combination: trainer_print_once, then the exit
 * code EXIT_USAGE (2) for the caller to return:
 *     return trainer_usage_error("train", "--mean takes R,G,B, got '%s'", mean); */
int trainer_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
