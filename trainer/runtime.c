/* runtime.c: threads, clock and memory figures for every subcommand (see runtime.h). */
#include "trainer/runtime.h"

#include <cblas.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "nn/parallel.h"

void trainer_set_threads(int threads)
{
    if (threads <= 0) return;
    /* every GEMM is split over the layers' pool (nn/gemm.h): OpenBLAS itself
     * runs single-threaded, so no idle BLAS thread spins beside the pool */
    openblas_set_num_threads(1);
    parallel_set_threads(threads);
}

int trainer_default_threads(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const char *vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"};
    long local = 1;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && atol(v) > 0) {
            local = atol(v);
            break;
        }
    }
    long t = cores / local;
    return t < 1 ? 1 : (int)t;
}

double trainer_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

char *openblas_get_corename(void);

const char *trainer_blas_core(void)
{
    const char *c = openblas_get_corename();
    return c ? c : "unknown";
}

double trainer_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}
