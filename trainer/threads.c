/* threads.c: one place that sets how many threads the compute uses. */
#include <cblas.h>

#include "nn/parallel.h"
#include "trainer/commands.h"

void trainer_set_threads(int threads)
{
    if (threads <= 0) return;
    openblas_set_num_threads(threads);
    parallel_set_threads(threads);
}
