/* ckpt/protobuf.h: a writer of Protocol Buffers' wire format, the few pieces an
 * ONNX file needs: varint, 32-bit and length-delimited fields, and nested
 * messages. Encodes into one growing buffer; a message nested in another is
 * written in place and its length prefix inserted when it ends, so the output
 * is the canonical encoding (the shortest varints) any parser reads.
 *
 * No schema and no reading: the caller writes the field numbers of its .proto.
 * Out of memory is sticky (pb->oom) and checked once at the end, so a caller
 * writes a whole message without a check per field. Never prints, never exits.
 */
#ifndef TRAINER_PROTOBUF_H
#define TRAINER_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom; /* a write failed for memory; every later write is skipped */
} PbBuf;

void pb_free(PbBuf *b);

/* Wire type 0: int32, int64, uint64, enum, bool (negative values as the 64-bit
 * two's complement, as protobuf encodes int64). */
void pb_varint(PbBuf *b, int field, int64_t v);
/* Wire type 5: float. */
void pb_float(PbBuf *b, int field, float v);
/* Wire type 2: bytes and strings. */
void pb_bytes(PbBuf *b, int field, const void *data, size_t len);
void pb_string(PbBuf *b, int field, const char *s);

/* A nested message: pb_begin writes the tag and returns a mark; the message's
 * fields follow; pb_end(mark) inserts their length. Marks nest. */
size_t pb_begin(PbBuf *b, int field);
void pb_end(PbBuf *b, size_t mark);

#endif
