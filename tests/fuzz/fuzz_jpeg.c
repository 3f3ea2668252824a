/* fuzz_jpeg.c: libFuzzer target for the JPEG decoder, through the whole
 * decode + augment path (fuzz_image.c). Seeds: tests/fuzz/corpus/jpeg. */
#include "tests/fuzz/fuzz_image.h"
#include "tests/fuzz/fuzz_util.h"

void fuzz_target(const uint8_t *data, size_t len)
{
    fuzz_image_run(data, len);
}
