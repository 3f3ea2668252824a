/* vec.h: the vector type of the translation unit being compiled, for the files
 * of nn/kernels/ (compiled once per instruction set, see kernels.h). GCC's
 * vector extensions give one source for both widths; intrinsics appear only
 * where the extensions have no word for the operation (masked gathers). */
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

typedef float v4 __attribute__((vector_size(16)));

/* Shuffle patterns of _mm*_unpacklo/hi_ps, _mm_movelh/hl_ps per 128-bit lane,
 * for __builtin_shufflevector on two vf (indices >= VL pick the second). */
#if VL == 16
#define UNPACK_LO 0, 16, 1, 17, 4, 20, 5, 21, 8, 24, 9, 25, 12, 28, 13, 29
#define UNPACK_HI 2, 18, 3, 19, 6, 22, 7, 23, 10, 26, 11, 27, 14, 30, 15, 31
#define MOVE_LH 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define MOVE_HL 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#else
#define UNPACK_LO 0, 8, 1, 9, 4, 12, 5, 13
#define UNPACK_HI 2, 10, 3, 11, 6, 14, 7, 15
#define MOVE_LH 0, 1, 8, 9, 4, 5, 12, 13
#define MOVE_HL 2, 3, 10, 11, 6, 7, 14, 15
#endif

INLINE vf vload(const float *p) { return *(const vf_u *)p; }
INLINE void vstore(float *p, vf v) { *(vf_u *)p = v; }
INLINE vi viload(const int32_t *p) { return *(const vi_u *)p; }
INLINE vf vzero(void) { return (vf){0}; }
INLINE vf vset1(float x) { return vzero() + x; }
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

/* base[idx[l]] where ok[l] is nonzero (all bits set), else 0; nothing is read
 * for lanes that are off. */
INLINE vf vgather(const float *base, vi idx, vi ok)
{
#if defined(__AVX512F__)
    __mmask16 k = _mm512_test_epi32_mask((__m512i)ok, (__m512i)ok);
    return (vf)_mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, (__m512i)idx, base, 4);
#else
    return (vf)_mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, (__m256i)idx, (__m256)ok, 4);
#endif
}

#endif
