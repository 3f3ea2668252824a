/* ckpt/protobuf.c: Protocol Buffers' wire format (see protobuf.h): a tag is
 * (field << 3 | wire type) as a varint; varints are 7 bits per byte, least
 * significant first, the high bit set on every byte but the last. */
#include "trainer/ckpt/protobuf.h"

#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "protobuf.c writes floats as the host stores them: a little-endian host is assumed"
#endif

enum { PB_VARINT = 0, PB_LEN = 2, PB_FIXED32 = 5 };

void pb_free(PbBuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Room for n more bytes; 0, or -1 (and oom set). */
static int pb_reserve(PbBuf *b, size_t n)
{
    if (b->oom) return -1;
    if (b->len + n <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* The varint of v into out (at most 10 bytes); its length. */
static size_t pb_encode_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static void pb_raw_varint(PbBuf *b, uint64_t v)
{
    if (pb_reserve(b, 10) != 0) return;
    b->len += pb_encode_varint(b->p + b->len, v);
}

static void pb_tag(PbBuf *b, int field, int wire) { pb_raw_varint(b, ((uint64_t)field << 3) | (uint64_t)wire); }

void pb_varint(PbBuf *b, int field, int64_t v)
{
    pb_tag(b, field, PB_VARINT);
    pb_raw_varint(b, (uint64_t)v);
}

void pb_float(PbBuf *b, int field, float v)
{
    pb_tag(b, field, PB_FIXED32);
    if (pb_reserve(b, 4) != 0) return;
    memcpy(b->p + b->len, &v, 4);
    b->len += 4;
}

void pb_bytes(PbBuf *b, int field, const void *data, size_t len)
{
    pb_tag(b, field, PB_LEN);
    pb_raw_varint(b, len);
    if (len == 0 || pb_reserve(b, len) != 0) return;
    memcpy(b->p + b->len, data, len);
    b->len += len;
}

void pb_string(PbBuf *b, int field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

size_t pb_begin(PbBuf *b, int field)
{
    pb_tag(b, field, PB_LEN);
    return b->len;
}

/* The length is known only now: its varint goes in front of the message,
 * which moves up by that many bytes (one memmove per nested message). */
void pb_end(PbBuf *b, size_t mark)
{
    if (b->oom) return;
    uint8_t v[10];
    size_t body = b->len - mark, n = pb_encode_varint(v, body);
    if (pb_reserve(b, n) != 0) return;
    memmove(b->p + mark + n, b->p + mark, body);
    memcpy(b->p + mark, v, n);
    b->len += n;
}
