/* mem.h: large buffers (activations, convolution scratch) on huge pages where
 * the kernel offers them.
 *
 * Layers walk these buffers plane by plane, dozens of planes at a time (a
 * Winograd block writes into every output channel's plane): with 4 KiB pages
 * that is a TLB miss on almost every row. Transparent huge pages cover 2 MiB
 * with one entry; many kernels give them only where madvise(MADV_HUGEPAGE)
 * asks for them. */
#ifndef NN_MEM_H
#define NN_MEM_H

#include <stddef.h>

/* bytes (rounded up to 64), 64-byte aligned, 2 MiB aligned and advised for
 * huge pages when at least 4 MiB; NULL when out of memory. Free with free(). */
void *nn_alloc_large(size_t bytes);

#endif
