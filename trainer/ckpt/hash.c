/* ckpt/hash.c: SHA-256 (FIPS 180-4) and XXH64 (Yann Collet's xxHash
 * specification, 64-bit variant), portable C, tested against the FIPS vectors
 * and against libzstd's frame checksums (tests/test_ckpt_hash.c). SHA-256 also
 * has a path for the x86 SHA extensions (about 10x faster), chosen at run time
 * and tested against the portable one. */
#include "trainer/ckpt/hash.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* ---- SHA-256 ---- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t ror32(uint32_t x, int r) { return (x >> r) | (x << (32 - r)); }

static void sha256_block(uint32_t h[8], const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror32(w[i - 15], 7) ^ ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror32(w[i - 2], 17) ^ ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ror32(e, 6) ^ ror32(e, 11) ^ ror32(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ror32(a, 2) ^ ror32(a, 13) ^ ror32(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

/* The x86 SHA extensions: two rounds per sha256rnds2 on the state held as
 * (ABEF, CDGH); the message schedule by sha256msg1/msg2 over a ring of four
 * 4-word groups. */
__attribute__((target("sha,sse4.1,ssse3"))) static void sha256_blocks_ni(uint32_t h[8], const uint8_t *p,
                                                                          size_t nblocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1); /* CDAB */
    __m128i st1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B); /* EFGH */
    __m128i st0 = _mm_alignr_epi8(tmp, st1, 8);                                     /* ABEF */
    st1 = _mm_blend_epi16(st1, tmp, 0xF0);                                          /* CDGH */
    for (; nblocks; nblocks--, p += 64) {
        __m128i save0 = st0, save1 = st1, w[4];
        for (int i = 0; i < 16; i++) {
            if (i < 4) w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), bswap);
            __m128i msg = _mm_add_epi32(w[i & 3], _mm_loadu_si128((const __m128i *)&sha_k[4 * i]));
            st1 = _mm_sha256rnds2_epu32(st1, st0, msg);
            if (i >= 3 && i <= 14) {
                /* w[i+1] = sigma1 part of w[i] + w[i-3] (msg1 done) + words 1..4 of w[i-1]:w[i] */
                __m128i t = _mm_alignr_epi8(w[i & 3], w[(i - 1) & 3], 4);
                __m128i x = _mm_add_epi32(w[(i + 1) & 3], t);
                w[(i + 1) & 3] = _mm_sha256msg2_epu32(x, w[i & 3]);
            }
            st0 = _mm_sha256rnds2_epu32(st0, st1, _mm_shuffle_epi32(msg, 0x0E));
            if (i >= 1 && i <= 12) w[(i - 1) & 3] = _mm_sha256msg1_epu32(w[(i - 1) & 3], w[i & 3]);
        }
        st0 = _mm_add_epi32(st0, save0);
        st1 = _mm_add_epi32(st1, save1);
    }
    tmp = _mm_shuffle_epi32(st0, 0x1B);  /* FEBA */
    st1 = _mm_shuffle_epi32(st1, 0xB1);  /* DCHG */
    st0 = _mm_blend_epi16(tmp, st1, 0xF0); /* DCBA */
    st1 = _mm_alignr_epi8(st1, tmp, 8);    /* HGFE */
    _mm_storeu_si128((__m128i *)&h[0], st0);
    _mm_storeu_si128((__m128i *)&h[4], st1);
}

/* Whether to use sha256_blocks_ni: -1 until the CPU is probed. The writer
 * thread and the training thread (ckpt_load, ckpt_reader_read) both hash and
 * may probe first at the same time; a plain int written by one thread while
 * another reads it is a data race (undefined behaviour, and what
 * ThreadSanitizer reports), so it is a C11 atomic. Relaxed order suffices:
 * every thread that probes stores the same value, and nothing else is
 * published through it. */
static atomic_int sha_hw = -1;

static int cpu_has_sha(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int sha = (b >> 29) & 1;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int sse41 = (c >> 19) & 1, ssse3 = (c >> 9) & 1;
    return sha && sse41 && ssse3;
}

int sha256_use_hw(int enable)
{
    int had = atomic_exchange_explicit(&sha_hw, enable ? cpu_has_sha() : 0, memory_order_relaxed);
    return had > 0;
}

static void sha256_blocks(uint32_t h[8], const uint8_t *p, size_t nblocks)
{
    int hw = atomic_load_explicit(&sha_hw, memory_order_relaxed);
    if (hw < 0) {
        hw = cpu_has_sha();
        atomic_store_explicit(&sha_hw, hw, memory_order_relaxed);
    }
    if (hw) {
        sha256_blocks_ni(h, p, nblocks);
        return;
    }
    for (; nblocks; nblocks--, p += 64) sha256_block(h, p);
}

void sha256_init(Sha256 *s)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->bytes = 0;
    s->nbuf = 0;
}

void sha256_update(Sha256 *s, const void *data, size_t len)
{
    const uint8_t *p = data;
    s->bytes += len;
    if (s->nbuf) {
        size_t take = 64 - s->nbuf < len ? 64 - s->nbuf : len;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += take;
        p += take;
        len -= take;
        if (s->nbuf < 64) return;
        sha256_blocks(s->h, s->buf, 1);
        s->nbuf = 0;
    }
    sha256_blocks(s->h, p, len / 64);
    p += len / 64 * 64;
    len %= 64;
    memcpy(s->buf, p, len);
    s->nbuf = len;
}

void sha256_final(Sha256 *s, uint8_t digest[32])
{
    uint64_t bits = s->bytes * 8;
    uint8_t pad[72] = {0x80};
    size_t padlen = (s->nbuf < 56 ? 56 : 120) - s->nbuf;
    for (int i = 0; i < 8; i++) pad[padlen + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t keep = s->bytes;
    sha256_update(s, pad, padlen + 8);
    s->bytes = keep;
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(s->h[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        digest[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void sha256_hex(const uint8_t digest[32], char hex[65])
{
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

void sha256_buffer_hex(const void *data, size_t len, char hex[65])
{
    Sha256 s;
    uint8_t d[32];
    sha256_init(&s);
    sha256_update(&s, data, len);
    sha256_final(&s, d);
    sha256_hex(d, hex);
}

/* ---- XXH64 ---- */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rol64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

/* the format is little-endian; so is every target this project builds for */
static inline uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint64_t xround(uint64_t acc, uint64_t in)
{
    acc += in * P2;
    acc = rol64(acc, 31);
    return acc * P1;
}

static inline uint64_t xmerge(uint64_t acc, uint64_t v)
{
    acc ^= xround(0, v);
    return acc * P1 + P4;
}

void xxh64_init(Xxh64 *x, uint64_t seed)
{
    memset(x, 0, sizeof *x);
    x->seed = seed;
    x->v[0] = seed + P1 + P2;
    x->v[1] = seed + P2;
    x->v[2] = seed;
    x->v[3] = seed - P1;
}

void xxh64_update(Xxh64 *x, const void *data, size_t len)
{
    const uint8_t *p = data, *end = p + len;
    x->total += len;
    if (x->nmem + len < 32) {
        memcpy(x->mem + x->nmem, p, len);
        x->nmem += len;
        return;
    }
    if (x->nmem) {
        size_t take = 32 - x->nmem;
        memcpy(x->mem + x->nmem, p, take);
        for (int i = 0; i < 4; i++) x->v[i] = xround(x->v[i], rd64(x->mem + 8 * i));
        p += take;
        x->nmem = 0;
    }
    uint64_t v0 = x->v[0], v1 = x->v[1], v2 = x->v[2], v3 = x->v[3];
    for (; end - p >= 32; p += 32) {
        v0 = xround(v0, rd64(p));
        v1 = xround(v1, rd64(p + 8));
        v2 = xround(v2, rd64(p + 16));
        v3 = xround(v3, rd64(p + 24));
    }
    x->v[0] = v0; x->v[1] = v1; x->v[2] = v2; x->v[3] = v3;
    x->nmem = (size_t)(end - p);
    memcpy(x->mem, p, x->nmem);
}

uint64_t xxh64_digest(const Xxh64 *x)
{
    uint64_t h;
    if (x->total >= 32) {
        h = rol64(x->v[0], 1) + rol64(x->v[1], 7) + rol64(x->v[2], 12) + rol64(x->v[3], 18);
        for (int i = 0; i < 4; i++) h = xmerge(h, x->v[i]);
    } else {
        h = x->seed + P5;
    }
    h += x->total;
    const uint8_t *p = x->mem, *end = p + x->nmem;
    for (; end - p >= 8; p += 8) h = rol64(h ^ xround(0, rd64(p)), 27) * P1 + P4;
    if (end - p >= 4) {
        h = rol64(h ^ ((uint64_t)rd32(p) * P1), 23) * P2 + P3;
        p += 4;
    }
    for (; p < end; p++) h = rol64(h ^ (*p * P5), 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

uint64_t xxh64(const void *data, size_t len, uint64_t seed)
{
    Xxh64 x;
    xxh64_init(&x, seed);
    xxh64_update(&x, data, len);
    return xxh64_digest(&x);
}
