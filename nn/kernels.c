/* kernels.c: picks the table of SIMD kernels for this CPU (see nn/kernels/kernels.h). */
#include "nn/kernels/kernels.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

int nn_kernels_supported(const char *name)
{
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("fma");
    return 0;
}

static _Atomic(const NnKernels *) selected;
static pthread_once_t chosen = PTHREAD_ONCE_INIT;

int nn_kernels_select(const char *name)
{
    if (!nn_kernels_supported(name)) return -1;
    atomic_store(&selected, strcmp(name, "avx512") == 0 ? &nn_kernels_avx512 : &nn_kernels_avx2);
    return 0;
}

/* The first use, from whichever thread: GOOGLENET_SIMD when this CPU can run
 * it, else the widest table it can. Below AVX2 the binary does not run at
 * all: it is built with -mavx2. */
static void choose(void)
{
    if (atomic_load(&selected)) return;
    const char *want = getenv("GOOGLENET_SIMD");
    if (want && *want && nn_kernels_select(want) == 0) return;
    if (nn_kernels_select("avx512") != 0) atomic_store(&selected, &nn_kernels_avx2);
}

const NnKernels *nn_kernels(void)
{
    const NnKernels *k = atomic_load_explicit(&selected, memory_order_acquire);
    if (k) return k;
    pthread_once(&chosen, choose);
    return atomic_load(&selected);
}

static const struct {
    const char *name;
    int m, r;
} ALGS[WINO_ALGS] = {{"F(2x2,3x3)", 2, 3}, {"F(4x4,3x3)", 4, 3}, {"F(2x2,5x5)", 2, 5}, {"F(4x4,5x5)", 4, 5}};

int wino_m(WinoAlg a) { return ALGS[a].m; }
int wino_r(WinoAlg a) { return ALGS[a].r; }
int wino_alpha(WinoAlg a) { return ALGS[a].m + ALGS[a].r - 1; }
const char *wino_name(WinoAlg a) { return a < WINO_ALGS ? ALGS[a].name : "?"; }
