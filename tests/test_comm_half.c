/* test_comm_half.c: the bf16 / fp16 conversions used for gradient compression,
 * against independent references: gcc's _Float16 conversions (libgcc, correctly
 * rounded) for fp16, and a brute-force nearest-even choice between the two
 * neighbouring bf16 values for bf16. Exhaustive over the 65536 16-bit patterns
 * for decoding; millions of floats (random bits, near-ties, subnormals, huge
 * values) for encoding; the F16C array path against the scalar one; the fp16
 * scale exponent; and the checksum used by the identical check. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "comm/half.h"

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* a test float: random bits, with extra weight on near-ties and small / large exponents */
static float test_float(uint64_t i)
{
    uint64_t h = mix(i);
    uint32_t u = (uint32_t)h;
    switch ((h >> 32) % 4) {
    case 0: break;                                                     /* any bits */
    case 1: u = (u & 0xffff0000u) | 0x8000u | ((h >> 40) & 1); break;  /* bf16 ties and ties + 1 */
    case 2: u = (u & 0xffffe000u) | 0x1000u | ((h >> 40) & 1); break;  /* fp16 ties */
    case 3: u = (u & 0x807fffffu) | (uint32_t)((100 + (h >> 40) % 60) << 23); break; /* fp16's range */
    }
    return bitsf(u);
}

static void test_fp16_decode_exhaustive(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 ref;
        uint16_t hh = (uint16_t)h;
        memcpy(&ref, &hh, 2);
        float want = (float)ref, got = comm_fp16_to_float(hh);
        if (isnan(want)) {
            assert_true(isnan(got));
            continue;
        }
        if (fbits(got) != fbits(want)) fail_msg("fp16 %04x: got %a, want %a", h, got, want);
        /* and back: every fp16 value is exactly representable */
        assert_int_equal(comm_float_to_fp16(got), hh);
    }
}

static void test_bf16_decode_exhaustive(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = comm_bf16_to_float((uint16_t)h);
        assert_int_equal(fbits(got), h << 16);
        if (!isnan(got)) assert_int_equal(comm_float_to_bf16(got), h);
    }
}

static void test_fp16_encode_vs_libgcc(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 4000000; i++) {
        float f = test_float(i);
        _Float16 ref = (_Float16)f;
        uint16_t want, got = comm_float_to_fp16(f);
        memcpy(&want, &ref, 2);
        if (isnan(f)) {
            assert_true((got & 0x7c00) == 0x7c00 && (got & 0x3ff) != 0);
            continue;
        }
        if (got != want) fail_msg("fp16(%a) [%08x]: got %04x, want %04x", f, fbits(f), got, want);
    }
}

/* the nearest bf16 to f, ties to the even one, by comparing the two candidates in double */
static uint16_t bf16_reference(float f)
{
    uint32_t u = fbits(f);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double x = f, dlo = fabs(x - (double)bitsf((uint32_t)lo << 16));
    float fhi = bitsf((uint32_t)hi << 16);
    /* past the largest finite bf16 the upper candidate is infinity: the
     * rounding boundary is then halfway to 2^128 */
    double xhi = isinf(fhi) ? copysign(0x1p128, x) : (double)fhi;
    double dhi = fabs(x - xhi);
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1) ? hi : lo;
}

static void test_bf16_encode_vs_reference(void **state)
{
    (void)state;
    for (uint64_t i = 0; i < 4000000; i++) {
        float f = test_float(i);
        uint16_t got = comm_float_to_bf16(f);
        if (isnan(f)) {
            assert_true((got & 0x7f80) == 0x7f80 && (got & 0x7f) != 0);
            continue;
        }
        uint16_t want = bf16_reference(f);
        if (got != want) fail_msg("bf16(%a) [%08x]: got %04x, want %04x", f, fbits(f), got, want);
    }
    assert_int_equal(comm_float_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(comm_float_to_bf16(-0.0f), 0x8000);
}

/* the array functions (F16C for fp16 when the CPU has it) give the scalar bits */
static void test_arrays_match_scalar(void **state)
{
    (void)state;
    enum { N = 100003 };
    static float src[N], dec[N], acc[N];
    static uint16_t enc[N];
    const CommCompress kinds[2] = {COMM_COMPRESS_BF16, COMM_COMPRESS_FP16};
    for (int k = 0; k < 2; k++) {
        CommCompress kind = kinds[k];
        float scale = kind == COMM_COMPRESS_FP16 ? 0x1p10f : 1.0f;
        for (size_t i = 0; i < N; i++) src[i] = ldexpf(test_float(i + 77) , 0) * 1e-3f;
        for (size_t i = 0; i < N; i++)
            if (!isfinite(src[i])) src[i] = 0.5f;
        comm_half_encode(kind, enc, src, N, scale);
        for (size_t i = 0; i < N; i++) {
            float s = src[i] * scale;
            uint16_t want = kind == COMM_COMPRESS_FP16 ? comm_float_to_fp16(s) : comm_float_to_bf16(s);
            if (enc[i] != want) fail_msg("%s encode [%zu] %a: %04x vs scalar %04x", comm_compress_name(kind), i, s,
                                         enc[i], want);
        }
        comm_half_decode(kind, dec, enc, N, 1.0f / scale);
        for (size_t i = 0; i < N; i++) {
            float want = (kind == COMM_COMPRESS_FP16 ? comm_fp16_to_float(enc[i]) : comm_bf16_to_float(enc[i])) / scale;
            if (fbits(dec[i]) != fbits(want)) fail_msg("decode [%zu]: %a vs %a", i, dec[i], want);
            acc[i] = 1.0f;
        }
        comm_half_accumulate(kind, acc, enc, N, 1.0f / scale);
        for (size_t i = 0; i < N; i++)
            if (fbits(acc[i]) != fbits(1.0f + dec[i])) fail_msg("accumulate [%zu]: %a vs %a", i, acc[i], 1.0f + dec[i]);
    }
}

static void test_scale_exponent(void **state)
{
    (void)state;
    float x[4] = {1e-6f, -3e-5f, 2e-7f, 0.0f};
    int e = comm_half_scale_exponent(COMM_COMPRESS_FP16, x, 4);
    float m = 3e-5f * ldexpf(1.0f, e);
    assert_true(m >= 16384.0f && m < 32768.0f);
    assert_int_equal(comm_half_scale_exponent(COMM_COMPRESS_BF16, x, 4), 0);
    float zeros[3] = {0, -0.0f, 0};
    assert_int_equal(comm_half_scale_exponent(COMM_COMPRESS_FP16, zeros, 3), 0);
    float big[3] = {1e6f, -3.0f, 65536.0f};
    e = comm_half_scale_exponent(COMM_COMPRESS_FP16, big, 3);
    m = 1e6f * ldexpf(1.0f, e);
    assert_true(m >= 16384.0f && m < 32768.0f);
    float inf[2] = {1.0f, -INFINITY}, nan[2] = {NAN, 1.0f};
    assert_int_equal(comm_half_scale_exponent(COMM_COMPRESS_FP16, inf, 2), 0);
    assert_int_equal(comm_half_scale_exponent(COMM_COMPRESS_FP16, nan, 2), 0);
    /* exact powers of two land on 2^14 */
    float pow2[1] = {-0.25f};
    assert_int_equal(comm_half_scale_exponent(COMM_COMPRESS_FP16, pow2, 1), 16);
    float tiny[1] = {1e-38f};
    assert_int_equal(comm_half_scale_exponent(COMM_COMPRESS_FP16, tiny, 1), 126);
    /* scaled fp16 keeps ~11 bits for values far below fp16's normal range */
    float g = 1.2345e-9f;
    e = comm_half_scale_exponent(COMM_COMPRESS_FP16, &g, 1);
    float back = comm_fp16_to_float(comm_float_to_fp16(g * ldexpf(1.0f, e))) * ldexpf(1.0f, -e);
    assert_true(fabsf(back - g) <= g * 0x1p-11f);
}

static void test_checksum_single_bit(void **state)
{
    (void)state;
    enum { N = 1003 };   /* not a multiple of 8 or 32: the tail path too */
    unsigned char buf[N];
    for (int i = 0; i < N; i++) buf[i] = (unsigned char)mix((uint64_t)i);
    uint64_t base = comm_checksum(buf, N);
    assert_true(base == comm_checksum(buf, N));
    for (int bit = 0; bit < N * 8; bit++) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        if (comm_checksum(buf, N) == base) fail_msg("flipping bit %d left the checksum unchanged", bit);
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    assert_true(comm_checksum(buf, N - 1) != base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fp16_decode_exhaustive),
        cmocka_unit_test(test_bf16_decode_exhaustive),
        cmocka_unit_test(test_fp16_encode_vs_libgcc),
        cmocka_unit_test(test_bf16_encode_vs_reference),
        cmocka_unit_test(test_arrays_match_scalar),
        cmocka_unit_test(test_scale_exponent),
        cmocka_unit_test(test_checksum_single_bit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
