/* ckpt/hash.h: the two hashes checkpoints use, implemented here so the
 * project needs no other library: SHA-256 (FIPS 180-4) for the
 * `params_sha256` fingerprint that other tools can recompute, and XXH64 (the
 * checksum Zstandard itself uses for frames) for the section and file
 * checksums, where speed matters and collisions need not resist an attacker.
 * Pure functions over bytes: no files, no allocation.
 */
#ifndef TRAINER_CKPT_HASH_H
#define TRAINER_CKPT_HASH_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t bytes;       /* message length so far */
    uint8_t buf[64];      /* a partial block */
    size_t nbuf;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t len);
void sha256_final(Sha256 *s, uint8_t digest[32]);
/* hex: 64 lowercase digits and a NUL */
void sha256_hex(const uint8_t digest[32], char hex[65]);
void sha256_buffer_hex(const void *data, size_t len, char hex[65]);
/* SHA-256 uses the x86 SHA extensions when the CPU has them. enable = 0 forces
 * the portable code (tests compare the two); returns whether they were in use. */
int sha256_use_hw(int enable);

typedef struct {
    uint64_t total;
    uint64_t v[4];
    uint8_t mem[32];      /* a partial stripe */
    size_t nmem;
    uint64_t seed;
} Xxh64;

void xxh64_init(Xxh64 *x, uint64_t seed);
void xxh64_update(Xxh64 *x, const void *data, size_t len);
uint64_t xxh64_digest(const Xxh64 *x);
uint64_t xxh64(const void *data, size_t len, uint64_t seed);

#endif
