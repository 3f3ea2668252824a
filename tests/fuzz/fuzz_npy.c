/* fuzz_npy.c: libFuzzer target for the .npy reader behind `googlenet ckpt
 * import` (ckpt_npy_read). The input is the file. Properties: a file read
 * holds exactly the floats its header declares; writing them back with
 * ckpt_npy_write and reading that gives the same bits. Seeds:
 * tests/fuzz/corpus/npy (versions 1.0, 2.0, 3.0, double-quoted keys). */
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"
#include "trainer/ckpt/ckpt.h"

void fuzz_target(const uint8_t *data, size_t len)
{
    char in[4096], out[4096], err[512];
    fuzz_path(in, sizeof in, "in.npy");
    fuzz_path(out, sizeof out, "out.npy");
    fuzz_write(in, data, len);
    size_t n = 0;
    float *a = ckpt_npy_read(in, &n, err, sizeof err);
    if (!a) {
        FUZZ_CHECK(err[0], "ckpt_npy_read failed without a reason");
        return;
    }
    FUZZ_CHECK(n * 4 < len, "%zu floats from a %zu-byte file", n, len);
    FUZZ_CHECK(memcmp(a, data + len - n * 4, n * 4) == 0, "the floats are not the file's last %zu bytes", n * 4);
    FUZZ_CHECK(ckpt_npy_write(out, a, n, err, sizeof err) == 0, "writing back: %s", err);
    size_t m = 0;
    float *b = ckpt_npy_read(out, &m, err, sizeof err);
    FUZZ_CHECK(b && m == n && memcmp(a, b, n * 4) == 0, "the array written back reads differently: %s", b ? "" : err);
    free(a);
    free(b);
}
