/* fuzz_ckpt.c: libFuzzer target for the checkpoint reader: ckpt_open (what
 * `ckpt info` and `eval` read first) with the metadata's extra keys
 * (ckpt_meta_get_extra), ckpt_reader_verify (`ckpt verify`),
 * ckpt_reader_read and ckpt_load (a resume), and ckpt_load_latest
 * (`--resume auto`) over a directory that holds the file.
 *
 * Every part of a checkpoint carries an XXH64 checksum that a mutation almost
 * always breaks, which would stop the fuzzer at the first check. So each input
 * runs twice: as it is, and with every checksum recomputed (the header, each
 * section's stored and decoded bytes, the weights' SHA-256 in the metadata,
 * the table, the file size and the whole-file checksum) wherever the
 * structure allows, which takes the mutations past the checksums into the
 * table, the codecs and the metadata parser.
 *
 * Properties: a checkpoint that opens has a sane table; one that verifies
 * also loads, through ckpt_load and ckpt_load_latest, with the same weights
 * ckpt_reader_read gives. Float sections are decoded only up to 2^20
 * parameters (a real checkpoint's 13 million would make every run slow).
 * Seeds: tests/fuzz/corpus/ckpt (small checkpoints from ckpt_save). */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "dataloader/le.h"
#include "tests/fuzz/fuzz_util.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/ckpt/hash.h"

#define FUZZ_MAX_PARAMS ((size_t)1 << 20)
#define FUZZ_MAX_DECODE ((uint64_t)16 << 20)
enum { HDR = 32, ENTRY = 64, TRAILER = 48 };

static char dir[4096], file[4096];

/* Decodes the stored bytes of a zstd section (codec 1 or 2) to raw bytes in
 * parameter order; NULL when they do not decode to exactly raw bytes. */
static uint8_t *decode_section(const uint8_t *stored, uint64_t sn, uint64_t raw, uint32_t codec)
{
    if (raw > FUZZ_MAX_DECODE || (codec == 2 && raw % 4)) return NULL;
    uint8_t *out = malloc(raw ? raw : 1), *planes = codec == 2 ? malloc(raw ? raw : 1) : NULL;
    size_t got = ZSTD_decompress(codec == 2 ? planes : out, raw, stored, sn);
    if (ZSTD_isError(got) || got != raw) {
        free(out);
        free(planes);
        return NULL;
    }
    if (planes) { /* planes (4, n): byte k of every float */
        size_t n = raw / 4;
        for (size_t i = 0; i < n; i++)
            for (int k = 0; k < 4; k++) out[4 * i + k] = planes[(size_t)k * n + i];
        free(planes);
    }
    return out;
}

/* The params_sha256 value inside the raw metadata section, or NULL. */
static uint8_t *meta_sha_field(uint8_t *d, size_t len, const uint8_t *table, uint32_t nsec)
{
    static const char key[] = "params_sha256=";
    for (uint32_t i = 0; i < nsec; i++) {
        const uint8_t *e = table + (size_t)i * ENTRY;
        uint64_t off = le_get64(e + 16), sn = le_get64(e + 24);
        if (le_get32(e) != 1 || le_get32(e + 4) != 0 || off > len || sn > len - off) continue;
        uint8_t *m = memmem(d + off, sn, key, sizeof key - 1);
        if (m && (size_t)(d + off + sn - m) >= sizeof key - 1 + 64) return m + sizeof key - 1;
    }
    return NULL;
}

/* Recomputes every checksum the structure lets us find. */
static void fix_checksums(uint8_t *d, size_t len)
{
    if (len < HDR + TRAILER) return;
    le_put64(d + 24, xxh64(d, 24, 0));
    uint8_t *tr = d + len - TRAILER;
    uint64_t toff = le_get64(tr);
    uint32_t nsec = le_get32(tr + 8);
    if (le_get32(tr + 12) == ENTRY && nsec <= 256 && toff >= HDR && toff <= len - TRAILER &&
        (uint64_t)nsec * ENTRY == len - TRAILER - toff) {
        uint8_t *table = d + toff;
        for (int pass = 0; pass < 2; pass++) /* the weights' SHA-256 first: it lives in the metadata */
            for (uint32_t i = 0; i < nsec; i++) {
                uint8_t *e = table + (size_t)i * ENTRY;
                uint32_t kind = le_get32(e), codec = le_get32(e + 4);
                uint64_t off = le_get64(e + 16), sn = le_get64(e + 24), raw = le_get64(e + 32);
                if (off > len || sn > len - off || (pass == 0 && kind != 3)) continue;
                uint8_t *dec = codec == 0 ? NULL : decode_section(d + off, sn, raw, codec);
                if (pass == 0) {
                    uint8_t *field = meta_sha_field(d, len, table, nsec);
                    const uint8_t *w = codec == 0 ? d + off : dec;
                    if (field && w && (codec != 0 || sn == raw)) {
                        char hex[65];
                        sha256_buffer_hex(w, raw, hex);
                        memcpy(field, hex, 64);
                    }
                } else {
                    le_put64(e + 40, xxh64(d + off, sn, 0));
                    if (codec == 0) le_put64(e + 48, xxh64(d + off, sn, 0));
                    else if (dec) le_put64(e + 48, xxh64(dec, raw, 0));
                }
                free(dec);
            }
        le_put64(tr + 16, xxh64(table, (size_t)nsec * ENTRY, 0));
    }
    le_put64(tr + 24, len);
    le_put64(tr + 32, xxh64(d, len - 16, 0));
}

static void check_file(size_t len)
{
    char err[1024];
    CkptReader *r = ckpt_open(file, err, sizeof err);
    if (!r) {
        FUZZ_CHECK(err[0], "ckpt_open failed without a reason");
        return;
    }
    const CkptMeta *m = ckpt_reader_meta(r);
    int nsec;
    const CkptSectionInfo *sec = ckpt_reader_sections(r, &nsec);
    FUZZ_CHECK(m->num_params > 0 && nsec > 0, "opened with %zu parameters and %d sections", m->num_params, nsec);
    for (int i = 0; i < nsec; i++)
        FUZZ_CHECK(sec[i].offset <= len && sec[i].stored_bytes <= len - sec[i].offset, "section %d outside the file", i);
    float mean[3], std[3];
    ckpt_meta_get_norm(m, mean, std);
    char plan[4096]; /* the convolution plan's key, read by train's resume and by eval */
    ckpt_meta_get_extra(m, "conv_plan", plan, sizeof plan);
    size_t np = m->num_params;
    if (np > FUZZ_MAX_PARAMS) {
        ckpt_close(r);
        return;
    }
    int verified = ckpt_reader_verify(r, err, sizeof err) == 0;
    float *w = malloc(np * 4), *w2 = malloc(np * 4), *mo = malloc(np * 4), *av = malloc(np * 4);
    int read_ok = ckpt_reader_read(r, CKPT_SEC_WEIGHTS, w, np, err, sizeof err) == 0;
    ckpt_reader_read(r, CKPT_SEC_MOMENTUM, mo, np, err, sizeof err);
    ckpt_reader_read(r, CKPT_SEC_AVERAGE, av, np, err, sizeof err);
    ckpt_close(r);
    CkptMeta meta;
    int loaded = ckpt_load(file, &meta, w2, mo, av, np, err, sizeof err) == 0;
    if (loaded) ckpt_meta_free(&meta);
    FUZZ_CHECK(!verified || loaded, "verifies but does not load: %s", err);
    FUZZ_CHECK(!loaded || (read_ok && memcmp(w, w2, np * 4) == 0), "ckpt_load and ckpt_reader_read disagree");
    char path[4200], report[4096];
    int latest = ckpt_load_latest(dir, path, sizeof path, &meta, w2, mo, av, np, report, sizeof report, err, sizeof err);
    if (latest == 1) ckpt_meta_free(&meta);
    FUZZ_CHECK(latest == (loaded ? 1 : 0), "--resume auto gives %d for a file that %s", latest,
               loaded ? "loads" : "does not load");
    if (ckpt_peek_meta(file, &meta, err, sizeof err) == 0) ckpt_meta_free(&meta);
    free(w);
    free(w2);
    free(mo);
    free(av);
}

void fuzz_target(const uint8_t *data, size_t len)
{
    if (!dir[0]) {
        fuzz_path(dir, sizeof dir, "run");
        fuzz_mkdirs(dir);
        char latest[4200];
        snprintf(latest, sizeof latest, "%s/latest", dir);
        fuzz_write(latest, "ckpt-00000001.gnck\n", 19);
        snprintf(file, sizeof file, "%s/ckpt-00000001.gnck", dir);
    }
    fuzz_write(file, data, len);
    check_file(len);
    uint8_t *fixed = malloc(len ? len : 1);
    memcpy(fixed, data, len);
    fix_checksums(fixed, len);
    if (memcmp(fixed, data, len) != 0) {
        fuzz_write(file, fixed, len);
        check_file(len);
    }
    free(fixed);
}
