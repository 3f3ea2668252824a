/* test_ckpt_hash.c: SHA-256 against the FIPS 180-4 example vectors, XXH64
 * against its reference value and libzstd's frame checksums (the low 32 bits
 * of XXH64 of the content, computed by an independent implementation), and
 * streaming in odd pieces against one-shot hashing; two threads hashing at
 * once before the CPU was probed (the writer thread and the training thread
 * do; under SANITIZE=thread that probe must not be a data race). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <zstd.h>

#include "trainer/ckpt/hash.h"

/* "abc" repeated to 1 MiB, hashed by a thread; the digest into arg. */
static void *sha_thread(void *arg)
{
    size_t n = (size_t)1 << 20;
    char *m = malloc(n);
    if (!m) return NULL;
    for (size_t i = 0; i < n; i++) m[i] = "abc"[i % 3];
    sha256_buffer_hex(m, n, arg);
    free(m);
    return NULL;
}

/* Runs first: no hash has been computed yet, so both threads find the
 * hardware path unprobed and probe it at the same time. */
static void test_sha256_first_use_two_threads(void **state)
{
    (void)state;
    char a[65] = "", b[65] = "", one[65] = "";
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, sha_thread, a), 0);
    assert_int_equal(pthread_create(&tb, NULL, sha_thread, b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    sha_thread(one);
    assert_int_equal(strlen(one), 64);
    assert_string_equal(a, one);
    assert_string_equal(b, one);
    /* and the same digest by the portable code */
    int hw = sha256_use_hw(0);
    char portable[65];
    sha_thread(portable);
    assert_string_equal(portable, one);
    sha256_use_hw(hw);
}

static void check_sha(const char *msg, size_t len, const char *want)
{
    char hex[65];
    sha256_buffer_hex(msg, len, hex);
    assert_string_equal(hex, want);
}

static void sha256_fips_vectors(void)
{
    check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_sha(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check_sha(m896, strlen(m896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    size_t n = 1000000;
    char *a = malloc(n);
    assert_non_null(a);
    memset(a, 'a', n);
    check_sha(a, n, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* the same million in pieces of every size from 1 to 97 */
    Sha256 s;
    sha256_init(&s);
    size_t off = 0, piece = 1;
    while (off < n) {
        size_t take = piece < n - off ? piece : n - off;
        sha256_update(&s, a + off, take);
        off += take;
        piece = piece % 97 + 1;
    }
    uint8_t d[32];
    char hex[65];
    sha256_final(&s, d);
    sha256_hex(d, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

/* The vectors through the SHA-extension path (when the CPU has one) and the
 * portable path. */
static void test_sha256_fips(void **state)
{
    (void)state;
    sha256_use_hw(1);
    sha256_fips_vectors();
    sha256_use_hw(0);
    sha256_fips_vectors();
    sha256_use_hw(1);
}

/* Both paths agree on every length up to a few blocks and on a large buffer. */
static void test_sha256_paths_agree(void **state)
{
    (void)state;
    size_t n = (1 << 20) + 77;
    uint8_t *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(i * 2654435761u >> 13);
    char hw[65], sw[65];
    for (size_t len = 0; len < n; len = len < 300 ? len + 1 : len * 3 + 11) {
        sha256_use_hw(1);
        sha256_buffer_hex(b, len, hw);
        sha256_use_hw(0);
        sha256_buffer_hex(b, len, sw);
        assert_string_equal(hw, sw);
    }
    sha256_use_hw(1);
    free(b);
}

/* Pads of 55, 56, 63, 64 bytes cross the one-block / two-block boundary. */
static void test_sha256_padding_boundaries(void **state)
{
    (void)state;
    char buf[130];
    memset(buf, 'x', sizeof buf);
    char one[65], pieces[65];
    for (size_t len = 50; len <= 130; len++) {
        sha256_buffer_hex(buf, len, one);
        Sha256 s;
        uint8_t d[32];
        sha256_init(&s);
        for (size_t i = 0; i < len; i++) sha256_update(&s, buf + i, 1);
        sha256_final(&s, d);
        sha256_hex(d, pieces);
        assert_string_equal(one, pieces);
    }
}

static uint32_t zstd_frame_checksum(const void *src, size_t len)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
    size_t cap = ZSTD_compressBound(len);
    uint8_t *dst = malloc(cap);
    assert_non_null(dst);
    size_t n = ZSTD_compress2(c, dst, cap, src, len);
    assert_false(ZSTD_isError(n));
    uint32_t v;
    memcpy(&v, dst + n - 4, 4);
    free(dst);
    ZSTD_freeCCtx(c);
    return v;
}

static void test_xxh64_reference(void **state)
{
    (void)state;
    assert_int_equal(xxh64("", 0, 0), 0xEF46DB3751D8E999ULL);
    size_t n = 1 << 20;
    uint8_t *buf = malloc(n);
    assert_non_null(buf);
    uint64_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        buf[i] = (uint8_t)(x >> 56);
    }
    static const size_t lens[] = {0, 1, 3, 4, 7, 8, 15, 31, 32, 33, 63, 64, 65, 100, 1000, 4095, 65537, 1 << 20};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint64_t h = xxh64(buf, lens[i], 0);
        assert_int_equal((uint32_t)h, zstd_frame_checksum(buf, lens[i]));
        /* streaming in uneven pieces gives the same digest */
        Xxh64 s;
        xxh64_init(&s, 0);
        size_t off = 0, piece = 1;
        while (off < lens[i]) {
            size_t take = piece < lens[i] - off ? piece : lens[i] - off;
            xxh64_update(&s, buf + off, take);
            off += take;
            piece = piece * 3 % 101 + 1;
        }
        assert_int_equal(xxh64_digest(&s), h);
    }
    /* the seed matters and one flipped bit changes the digest */
    assert_int_not_equal(xxh64(buf, 1000, 0), xxh64(buf, 1000, 1));
    uint64_t before = xxh64(buf, n, 0);
    buf[n / 2] ^= 4;
    assert_int_not_equal(before, xxh64(buf, n, 0));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_first_use_two_threads),
        cmocka_unit_test(test_sha256_fips),
        cmocka_unit_test(test_sha256_padding_boundaries),
        cmocka_unit_test(test_sha256_paths_agree),
        cmocka_unit_test(test_xxh64_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
