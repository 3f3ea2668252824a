/* runtime.c: threads and memory figures for every subcommand (see runtime.h). */
#include "trainer/runtime.h"

#include <cblas.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nn/model.h"
#include "nn/parallel.h"
#include "trainer/commands.h"

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

int trainer_launcher_rank(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return atoi(v);
    }
    return 0;
}

int trainer_under_mpirun(void) { return getenv("OMPI_COMM_WORLD_SIZE") != NULL; }

static void print_once_v(const char *cmd, const char *fmt, va_list ap)
{
    if (trainer_launcher_rank() != 0) return;
    char line[2048];
    int n = snprintf(line, sizeof line, "googlenet %s: ", cmd);
    if (n >= 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = strlen(line);
    if (len + 1 < sizeof line) line[len++] = '\n';
    else line[len - 1] = '\n';
    fwrite(line, 1, len, stderr);
}

void trainer_print_once(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_once_v(cmd, fmt, ap);
    va_end(ap);
}

int trainer_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    print_once_v(cmd, fmt, ap);
    va_end(ap);
    return EXIT_USAGE;
}

void trainer_crop_too_small(int crop, char *out, size_t len)
{
    int with = model_min_crop(1), without = model_min_crop(0);
    if (with == without) snprintf(out, len, "--crop %d is too small for GoogLeNet: the smallest is %d", crop, with);
    else snprintf(out, len, "--crop %d is too small for GoogLeNet: the smallest is %d, or %d without the aux heads (--no-aux)",
                  crop, with, without);
}
