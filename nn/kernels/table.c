/* table.c (kernels): this instruction set's table of kernels (see kernels.h). */
#include "nn/kernels/isa.h"

const NnKernels ISA(nn_kernels) = {
#if defined(__AVX512F__)
    .name = "avx512",
#else
    .name = "avx2",
#endif
    .lanes = VL,
    .wino_input = ISA(wino_input),
    .wino_output = ISA(wino_output),
    .wino_dy = ISA(wino_dy),
    .wino_filter = ISA(wino_filter),
    .wino_filter_grad = ISA(wino_filter_grad),
};
