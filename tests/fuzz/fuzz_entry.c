/* fuzz_entry.c: LLVMFuzzerTestOneInput for every target: fuzz_target under
 * the CPU-time limit of fuzz_util.h. Linked into the libFuzzer builds and the
 * replays, not into seed_gen. */
#include <signal.h>
#include <stdlib.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/fuzz/fuzz_util.h"

static void on_cpu_limit(int sig)
{
    static const char msg[] = "fuzz: hang: the input ran over 1 s of CPU time (FUZZ_CPU_SECONDS)\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) abort();
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    struct itimerval limit = {{0, 0}, {FUZZ_CPU_SECONDS, 0}}, off = {{0, 0}, {0, 0}};
    signal(SIGPROF, on_cpu_limit);
    setitimer(ITIMER_PROF, &limit, NULL);
    fuzz_target(data, len);
    setitimer(ITIMER_PROF, &off, NULL);
    return 0;
}
