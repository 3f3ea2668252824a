/* mem.c: large buffers on huge pages (see mem.h). */
#include "nn/mem.h"

#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

void *nn_alloc_large(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    if (bytes < 2 * HUGE_PAGE) return aligned_alloc(64, bytes ? bytes : 64);
    size_t len = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = aligned_alloc(HUGE_PAGE, len);
    /* advice only: without huge pages the buffer works the same */
    if (p) (void)madvise(p, len, MADV_HUGEPAGE);
    return p;
}
