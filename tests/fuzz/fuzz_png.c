/* fuzz_png.c: libFuzzer target for the PNG decoder, through the whole
 * decode + augment path (fuzz_image.c). Every chunk of a PNG carries a
 * CRC-32 that a mutation almost always breaks, so each input also runs with
 * its chunk CRCs recomputed: the mutations then reach the chunk parsers and
 * the image data. Seeds: tests/fuzz/corpus/png. */
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz_image.h"
#include "tests/fuzz/fuzz_util.h"

static uint32_t crc_table[256];

static uint32_t png_crc(const uint8_t *p, size_t n)
{
    if (!crc_table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            crc_table[i] = c;
        }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Recomputes the CRC of every whole chunk; 1 when any changed. */
static int fix_chunk_crcs(uint8_t *d, size_t len)
{
    int changed = 0;
    for (size_t at = 8; at + 12 <= len;) {
        uint32_t n = be32(d + at);
        if (n > len - at - 12) break;
        uint32_t c = png_crc(d + at + 4, (size_t)n + 4);
        uint8_t *q = d + at + 8 + n;
        if (be32(q) != c) {
            q[0] = (uint8_t)(c >> 24), q[1] = (uint8_t)(c >> 16), q[2] = (uint8_t)(c >> 8), q[3] = (uint8_t)c;
            changed = 1;
        }
        at += (size_t)n + 12;
    }
    return changed;
}

void fuzz_target(const uint8_t *data, size_t len)
{
    fuzz_image_run(data, len);
    if (len > 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0) {
        uint8_t *fixed = malloc(len);
        memcpy(fixed, data, len);
        if (fix_chunk_crcs(fixed, len)) fuzz_image_run(fixed, len);
        free(fixed);
    }
}
