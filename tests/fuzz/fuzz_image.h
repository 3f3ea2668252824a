/* fuzz_image.h: the image pipeline every image fuzz target drives (see
 * fuzz_image.c). */
#ifndef TESTS_FUZZ_FUZZ_IMAGE_H
#define TESTS_FUZZ_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* Runs data, as the bytes of an image file, through the loader (read,
 * decode, training or evaluation transform) and through the evaluation
 * crops, with settings drawn from the input's hash. */
void fuzz_image_run(const uint8_t *data, size_t len);

#endif
