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
    .wino_dy = ISA(wino_dy),
    .wino_filter = ISA(wino_filter),
    .wino_filter_grad = ISA(wino_filter_grad),
    .wino_gemm_output = ISA(wino_gemm_output),
    .wino_kr = ISA(wino_kr),
    .pool_forward = ISA(pool_forward),
    .pool_backward = ISA(pool_backward),
    .pool_argmax = ISA(pool_argmax),
    .pool_backward_argmax = ISA(pool_backward_argmax),
    .pool_max_row = ISA(pool_max_row),
    .pool_flat3_cols = ISA(pool_flat3_cols),
    .lrn_forward = ISA(lrn_forward),
    .lrn_backward = ISA(lrn_backward),
    .lrn_forward_span = ISA(lrn_forward_span),
    .sgd_update = ISA(sgd_update),
    .direct_forward = ISA(direct_forward),
    .direct_pack = ISA(direct_pack),
    .direct_row = ISA(direct_row),
    .direct_weights = ISA(direct_weights),
    .gemm_forward = ISA(gemm_forward),
    .im2col = ISA(im2col),
    .col2im = ISA(col2im),
};
