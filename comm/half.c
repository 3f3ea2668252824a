/* half.c: fp32 <-> bf16 / fp16 conversions (see half.h).
 *
 * The scalar versions are the reference; the F16C loops are the fast path for
 * fp16 and must give the same bits (tests/test_comm_half.c checks both). bf16
 * is a shift plus a rounding increment, which gcc vectorizes as it stands.
 */
#include "comm/half.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t bf16_round(uint32_t u)
{
    uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    uint32_t quiet_nan = (u >> 16) | 0x40u;
    /* a NaN could round to infinity: keep it a (quiet) NaN instead */
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

uint16_t comm_float_to_bf16(float f) { return bf16_round(float_bits(f)); }

float comm_bf16_to_float(uint16_t h) { return bits_float((uint32_t)h << 16); }

/* After F. Giesen's float_to_half_fast3_rtne: exact round to nearest even,
 * including fp16 subnormals (done by an fp32 addition, which rounds to nearest
 * even in the default floating-point environment). */
uint16_t comm_float_to_fp16(float f)
{
    const uint32_t f32_inf = 255u << 23;
    const uint32_t f16_max = (127u + 16u) << 23;       /* 65536: rounds to infinity and beyond */
    const uint32_t denorm_magic_bits = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t u = float_bits(f);
    uint32_t sign = u & 0x80000000u;
    uint16_t out;
    u ^= sign;
    if (u >= f16_max) {
        out = u > f32_inf ? 0x7e00 : 0x7c00;
    } else if (u < (113u << 23)) {                     /* below 2^-14: fp16 subnormal or zero */
        float t = bits_float(u) + bits_float(denorm_magic_bits);
        out = (uint16_t)(float_bits(t) - denorm_magic_bits);
    } else {
        uint32_t mant_odd = (u >> 13) & 1u;
        u += ((uint32_t)(15 - 127) << 23) + 0xfffu;
        u += mant_odd;
        out = (uint16_t)(u >> 13);
    }
    return out | (uint16_t)(sign >> 16);
}

float comm_fp16_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0) {
        float v = (float)mant * 0x1p-24f;              /* exact: at most 10 bits */
        return bits_float(float_bits(v) | sign);
    }
    if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));
    return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* reads the CPU model libgcc filled in at start-up: cheap, and safe from any thread */
static int have_f16c(void) { return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx"); }

__attribute__((target("avx,f16c")))
static size_t fp16_encode_f16c(uint16_t *dst, const float *src, size_t n, float scale)
{
    __m256 s = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(src + i), s);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    return i;
}

__attribute__((target("avx,f16c")))
static size_t fp16_decode_f16c(float *dst, const uint16_t *src, size_t n, float scale, int accumulate)
{
    __m256 s = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))), s);
        if (accumulate) v = _mm256_add_ps(_mm256_loadu_ps(dst + i), v);
        _mm256_storeu_ps(dst + i, v);
    }
    return i;
}

void comm_half_encode(CommCompress kind, uint16_t *dst, const float *src, size_t n, float scale)
{
    size_t i = 0;
    if (kind == COMM_COMPRESS_BF16) {
        for (; i < n; i++) dst[i] = bf16_round(float_bits(src[i] * scale));
        return;
    }
    if (have_f16c()) i = fp16_encode_f16c(dst, src, n, scale);
    for (; i < n; i++) dst[i] = comm_float_to_fp16(src[i] * scale);
}

void comm_half_decode(CommCompress kind, float *dst, const uint16_t *src, size_t n, float scale)
{
    size_t i = 0;
    if (kind == COMM_COMPRESS_BF16) {
        for (; i < n; i++) dst[i] = bits_float((uint32_t)src[i] << 16) * scale;
        return;
    }
    if (have_f16c()) i = fp16_decode_f16c(dst, src, n, scale, 0);
    for (; i < n; i++) dst[i] = comm_fp16_to_float(src[i]) * scale;
}

void comm_half_accumulate(CommCompress kind, float *dst, const uint16_t *src, size_t n, float scale)
{
    size_t i = 0;
    if (kind == COMM_COMPRESS_BF16) {
        for (; i < n; i++) dst[i] += bits_float((uint32_t)src[i] << 16) * scale;
        return;
    }
    if (have_f16c()) i = fp16_decode_f16c(dst, src, n, scale, 1);
    for (; i < n; i++) dst[i] += comm_fp16_to_float(src[i]) * scale;
}

int comm_half_scale_exponent(CommCompress kind, const float *x, size_t n)
{
    if (kind != COMM_COMPRESS_FP16) return 0;
    /* the largest |x| by its bit pattern (the order of the magnitudes for
     * non-negative floats), in integers so the loop vectorizes */
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t a = float_bits(x[i]) & 0x7fffffffu;
        max = a > max ? a : max;
    }
    if (max == 0 || max >= 0x7f800000u) return 0;   /* all zero, or an infinity / NaN */
    int ex;
    frexpf(bits_float(max), &ex);  /* max = m * 2^ex, m in [0.5, 1) */
    int e = 15 - ex;               /* max * 2^e = m * 2^15 in [2^14, 2^15) */
    return e < -126 ? -126 : e > 126 ? 126 : e;
}
