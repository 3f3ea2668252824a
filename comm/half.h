/* half.h: fp32 <-> bf16 / fp16 conversions for gradient compression on the wire.
 *
 * Round to nearest, ties to even, in both formats; NaN stays NaN, values past
 * the format's largest finite number become infinities. Encoding multiplies by
 * `scale` first and decoding multiplies by `scale` after (the allreducer passes
 * powers of two, which are exact). Array versions use F16C when the CPU has it;
 * they give the same bits as the scalar ones. Internal to comm/: no MPI here.
 */
#ifndef COMM_HALF_H
#define COMM_HALF_H

#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"

uint16_t comm_float_to_bf16(float f);
float comm_bf16_to_float(uint16_t h);
uint16_t comm_float_to_fp16(float f);
float comm_fp16_to_float(uint16_t h);

/* dst[i] = to16(src[i] * scale). kind: COMM_COMPRESS_BF16 or COMM_COMPRESS_FP16. dst: (n), src: (n) */
void comm_half_encode(CommCompress kind, uint16_t *dst, const float *src, size_t n, float scale);
/* dst[i] = to32(src[i]) * scale. */
void comm_half_decode(CommCompress kind, float *dst, const uint16_t *src, size_t n, float scale);
/* dst[i] += to32(src[i]) * scale. */
void comm_half_accumulate(CommCompress kind, float *dst, const uint16_t *src, size_t n, float scale);

/* The power-of-two exponent e for which max|x| * 2^e lies in [2^14, 2^15), so fp16
 * keeps its full precision and cannot overflow; 0 for bf16 (fp32's range), and
 * for a slice that is all zero or holds an infinity or NaN (which then stay so). Clamped to [-126, 126] so 2^e and 2^-e are normal floats. */
int comm_half_scale_exponent(CommCompress kind, const float *x, size_t n);

#endif
