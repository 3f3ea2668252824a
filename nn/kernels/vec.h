/* vec.h: the vector type of the translation unit being compiled, for the files
 * of nn/kernels/ (compiled once per instruction set, see kernels.h). GCC's
 * vector extensions give one source for both widths; intrinsics appear only
 * where the extensions have no word for the operation (masked loads and
 * stores, max). No gathers: on the machines measured here a gather costs
 * about 50 cycles, a shuffle one. */
#ifndef NN_KERNELS_VEC_H
#define NN_KERNELS_VEC_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#define VL 16
#define ISA(name) name##_avx512
#else
#define VL 8
#define ISA(name) name##_avx2
#endif

typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));
typedef float vf_u __attribute__((vector_size(VL * 4), aligned(4)));
typedef int32_t vi_u __attribute__((vector_size(VL * 4), aligned(4)));

#define INLINE static inline __attribute__((always_inline))

/* Constant shuffle patterns over two vf (indices >= VL pick the second):
 * EVENS / ODDS take every other float of the 2*VL, ILV_LO / ILV_HI interleave
 * the lower / upper halves of the two. */
#if VL == 16
#define EVENS 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define ODDS 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#define ILV_LO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define ILV_HI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#else
#define EVENS 0, 2, 4, 6, 8, 10, 12, 14
#define ODDS 1, 3, 5, 7, 9, 11, 13, 15
#define ILV_LO 0, 8, 1, 9, 2, 10, 3, 11
#define ILV_HI 4, 12, 5, 13, 6, 14, 7, 15
#endif

INLINE vf vload(const float *p) { return *(const vf_u *)p; }
INLINE void vstore(float *p, vf v) { *(vf_u *)p = v; }
INLINE vi vloadi(const int32_t *p) { return *(const vi_u *)p; }
INLINE vf vzero(void) { return (vf){0}; }
INLINE vf vset1(float x)
{
#if defined(__AVX512F__)
    return (vf)_mm512_set1_ps(x);
#else
    return (vf)_mm256_set1_ps(x);
#endif
}
INLINE vi viota(void)
{
    vi r;
    for (int i = 0; i < VL; i++) r[i] = i;
    return r;
}

INLINE vf vmax(vf a, vf b)
{
#if defined(__AVX512F__)
    return (vf)_mm512_max_ps((__m512)a, (__m512)b);
#else
    return (vf)_mm256_max_ps((__m256)a, (__m256)b);
#endif
}
INLINE vf vmax0(vf a) { return vmax(a, vzero()); }

/* 1/sqrt(a) to 14 (AVX-512) or 12 (AVX2) bits, and sqrt(a). */
INLINE vf vrsqrt(vf a)
{
#if defined(__AVX512F__)
    return (vf)_mm512_rsqrt14_ps((__m512)a);
#else
    return (vf)_mm256_rsqrt_ps((__m256)a);
#endif
}
INLINE vf vsqrt(vf a)
{
#if defined(__AVX512F__)
    return (vf)_mm512_sqrt_ps((__m512)a);
#else
    return (vf)_mm256_sqrt_ps((__m256)a);
#endif
}

/* a where on, else b: bit by bit, so ties and signed zeros stay exact */
INLINE vf vselect(vi on, vf a, vf b) { return (vf)((on & (vi)a) | (~on & (vi)b)); }

/* p[l] = (uint8_t)v[l]: the lanes hold 0..255. */
INLINE void vstore_bytes(unsigned char *p, vi v)
{
#if defined(__AVX512F__)
    _mm_storeu_si128((__m128i *)p, _mm512_cvtepi32_epi8((__m512i)v));
#else
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128((__m256i)v), _mm256_extracti128_si256((__m256i)v, 1));
    _mm_storel_epi64((__m128i *)p, _mm_packus_epi16(w, w));
#endif
}

/* Lanes lo <= l < hi on (all bits set), the others off. */
INLINE vi vlanes(int lo, int hi)
{
    vi l = viota();
    return (l >= lo) & (l < hi);
}

/* p[l] for the lanes that are on, 0 for the others; nothing is read for lanes
 * that are off (they may lie outside any buffer). */
INLINE vf vload_mask(const float *p, vi on)
{
#if defined(__AVX512F__)
    return (vf)_mm512_maskz_loadu_ps(_mm512_test_epi32_mask((__m512i)on, (__m512i)on), p);
#else
    return (vf)_mm256_maskload_ps(p, (__m256i)on);
#endif
}

/* p[l] for the lanes that are on, fill[l] for the others (nothing is read
 * for those): one merge-masked load on AVX-512. */
INLINE vf vload_or(const float *p, vi on, vf fill)
{
#if defined(__AVX512F__)
    return (vf)_mm512_mask_loadu_ps((__m512)fill, _mm512_test_epi32_mask((__m512i)on, (__m512i)on), p);
#else
    return (vf)_mm256_blendv_ps((__m256)fill, _mm256_maskload_ps(p, (__m256i)on), (__m256)on);
#endif
}

/* p[l] = v[l] for the lanes that are on; nothing else is touched. */
INLINE void vstore_mask(float *p, vi on, vf v)
{
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(p, _mm512_test_epi32_mask((__m512i)on, (__m512i)on), (__m512)v);
#else
    _mm256_maskstore_ps(p, (__m256i)on, (__m256)v);
#endif
}

/* Splits 2, or 4, vectors of consecutive floats into their m phases:
 * p[j][l] = s[m*l + j] over the m*VL floats of s. */
INLINE void vdeinterleave(const int m, const vf *s, vf *p)
{
    if (m == 2) {
        p[0] = __builtin_shufflevector(s[0], s[1], EVENS);
        p[1] = __builtin_shufflevector(s[0], s[1], ODDS);
    } else {
        vf e01 = __builtin_shufflevector(s[0], s[1], EVENS), o01 = __builtin_shufflevector(s[0], s[1], ODDS);
        vf e23 = __builtin_shufflevector(s[2], s[3], EVENS), o23 = __builtin_shufflevector(s[2], s[3], ODDS);
        p[0] = __builtin_shufflevector(e01, e23, EVENS);
        p[2] = __builtin_shufflevector(e01, e23, ODDS);
        p[1] = __builtin_shufflevector(o01, o23, EVENS);
        p[3] = __builtin_shufflevector(o01, o23, ODDS);
    }
}

/* The inverse: s[m*l + j] = p[j][l]. */
INLINE void vinterleave(const int m, const vf *p, vf *s)
{
    if (m == 2) {
        s[0] = __builtin_shufflevector(p[0], p[1], ILV_LO);
        s[1] = __builtin_shufflevector(p[0], p[1], ILV_HI);
    } else {
        vf e01 = __builtin_shufflevector(p[0], p[2], ILV_LO), e23 = __builtin_shufflevector(p[0], p[2], ILV_HI);
        vf o01 = __builtin_shufflevector(p[1], p[3], ILV_LO), o23 = __builtin_shufflevector(p[1], p[3], ILV_HI);
        s[0] = __builtin_shufflevector(e01, o01, ILV_LO);
        s[1] = __builtin_shufflevector(e01, o01, ILV_HI);
        s[2] = __builtin_shufflevector(e23, o23, ILV_LO);
        s[3] = __builtin_shufflevector(e23, o23, ILV_HI);
    }
}

#endif
