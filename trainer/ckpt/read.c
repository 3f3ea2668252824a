/* ckpt/read.c: CkptReader: opens a checkpoint and trusts nothing it has not
 * checked. Every size and offset is checked against the file before it is
 * used, every part against its checksum, and an error names the part that is
 * damaged (or where a truncated file was cut short) and what to do. Never
 * prints. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "dataloader/le.h"
#include "trainer/ckpt/hash.h"
#include "trainer/ckpt/internal.h"

struct CkptReader {
    int fd;
    char path[4096];
    uint64_t size;
    CkptMeta meta;
    CkptSectionInfo *sec; /* (nsec) */
    int nsec;
    uint64_t file_xxh64;
};

static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    uint8_t *b = buf;
    while (n) {
        ssize_t k = pread(fd, b, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n, (off_t)off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO; /* the file shrank under us */
            return -1;
        }
        b += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

void ckpt_close(CkptReader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    ckpt_meta_free(&r->meta);
    free(r->sec);
    free(r);
}

static const CkptSectionInfo *find_section(const CkptReader *r, uint32_t kind)
{
    for (int i = 0; i < r->nsec; i++)
        if (r->sec[i].kind == kind) return &r->sec[i];
    return NULL;
}

/* Decodes section s into dst (s->raw_bytes), checking both checksums. */
static int section_decode(CkptReader *r, const CkptSectionInfo *s, void *dst, char *err, size_t errlen)
{
    const char *name = ckpt_section_name(s->kind);
    uint8_t *stored = s->codec == CKPT_CODEC_RAW ? dst : malloc(s->stored_bytes ? s->stored_bytes : 1);
    uint8_t *planes = NULL;
    int rc = -1;
    if (!stored) {
        snprintf(err, errlen, "%s: out of memory reading section '%s' (%llu bytes)", r->path, name,
                 (unsigned long long)s->stored_bytes);
        return -1;
    }
    if (pread_full(r->fd, stored, s->stored_bytes, s->offset) != 0) {
        snprintf(err, errlen, "%s: reading section '%s' failed: %s", r->path, name, strerror(errno));
        goto out;
    }
    if (xxh64(stored, s->stored_bytes, 0) != s->stored_xxh64) {
        snprintf(err, errlen, "%s: section '%s' is damaged (checksum mismatch); use an older checkpoint", r->path,
                 name);
        goto out;
    }
    if (s->codec != CKPT_CODEC_RAW) {
        uint8_t *target = dst;
        if (s->codec == CKPT_CODEC_SHUFFLE_ZSTD) {
            planes = malloc(s->raw_bytes ? s->raw_bytes : 1);
            if (!planes) {
                snprintf(err, errlen, "%s: out of memory decoding section '%s'", r->path, name);
                goto out;
            }
            target = planes;
        }
        size_t got = ZSTD_decompress(target, s->raw_bytes, stored, s->stored_bytes);
        if (ZSTD_isError(got) || got != s->raw_bytes) {
            snprintf(err, errlen, "%s: section '%s' does not decompress to its %llu bytes (%s)", r->path, name,
                     (unsigned long long)s->raw_bytes, ZSTD_isError(got) ? ZSTD_getErrorName(got) : "size differs");
            goto out;
        }
        if (planes) ckpt_unshuffle4(planes, s->raw_bytes / 4, dst);
    }
    if (xxh64(dst, s->raw_bytes, 0) != s->raw_xxh64) {
        snprintf(err, errlen, "%s: section '%s' decodes to bytes that fail their checksum; use an older checkpoint",
                 r->path, name);
        goto out;
    }
    rc = 0;
out:
    if (stored != dst) free(stored);
    free(planes);
    return rc;
}

/* Where a file without its end marker was cut short, for the message. The
 * writer puts the sections back to back after the header in a fixed order:
 * weights, momentum and average (one zstd frame each), the class names and
 * the metadata (text, the metadata starting with its format_version key),
 * then the table (its first entry: the weights at offset 32) and the trailer.
 * Walking the frames and finding those two landmarks names the region. */
static const char *truncation_region(CkptReader *r)
{
    static const char *const inside[3] = {"inside section 'weights'", "inside section 'momentum'",
                                          "inside section 'average'"};
    if (r->size <= CKPT_HEADER_BYTES) return "at the end of the header";
    size_t n = (size_t)(r->size - CKPT_HEADER_BYTES), off = 0;
    uint8_t *b = malloc(n);
    const char *where = "somewhere after the header";
    if (!b || pread_full(r->fd, b, n, CKPT_HEADER_BYTES) != 0) goto out;
    for (int k = 0; k < 3; k++) {
        if (off == n) {
            where = k ? "at the end of a float section" : "at the end of the header";
            goto out;
        }
        size_t f = ZSTD_findFrameCompressedSize(b + off, n - off);
        if (ZSTD_isError(f)) {
            where = inside[k];
            goto out;
        }
        off += f;
    }
    uint8_t entry0[24] = {0};
    le_put32(entry0, CKPT_SEC_WEIGHTS);
    le_put32(entry0 + 4, CKPT_CODEC_SHUFFLE_ZSTD);
    le_put32(entry0 + 8, 4);
    le_put64(entry0 + 16, CKPT_HEADER_BYTES);
    const uint8_t *meta = memmem(b + off, n - off, "format_version=", 15);
    const uint8_t *table = meta ? memmem(meta, (size_t)(b + n - meta), entry0, sizeof entry0) : NULL;
    if (!meta) {
        where = off == n ? "right after section 'average'" : "inside the class names (or the metadata)";
    } else if (!table) {
        where = "inside the metadata";
    } else {
        size_t nsec = meta > b + off ? 5 : 4; /* the class names are a section when present */
        where = (size_t)(b + n - table) < nsec * CKPT_ENTRY_BYTES ? "inside the section table" : "inside the trailer";
    }
out:
    free(b);
    return where;
}

/* ---- ckpt_open, step by step ---- */

/* Opens path read-only: a regular file; its size into r->size. */
static int reader_open_file(CkptReader *r, const char *path, char *err, size_t errlen)
{
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (r->fd < 0 || fstat(r->fd, &st) != 0) {
        snprintf(err, errlen, "cannot open checkpoint %s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        return -1;
    }
    r->size = (uint64_t)st.st_size;
    return 0;
}

/* Magic, header checksum and version. */
static int reader_header(CkptReader *r, char *err, size_t errlen)
{
    uint8_t hdr[CKPT_HEADER_BYTES];
    size_t hn = r->size < CKPT_HEADER_BYTES ? (size_t)r->size : CKPT_HEADER_BYTES;
    if (pread_full(r->fd, hdr, hn, 0) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", r->path, strerror(errno));
        return -1;
    }
    int major, minor;
    if (ckpt_header_check(hdr, hn, r->size, r->path, &major, &minor, err, errlen) != 0) return -1;
    r->meta.version_major = major;
    r->meta.version_minor = minor;
    return 0;
}

/* The trailer: end marker, file size, where the table is. */
static int reader_trailer(CkptReader *r, CkptTrailer *t, char *err, size_t errlen)
{
    const char *path = r->path;
    uint8_t tr[CKPT_TRAILER_BYTES];
    int whole = r->size >= CKPT_HEADER_BYTES + CKPT_TRAILER_BYTES;
    if (!whole || pread_full(r->fd, tr, CKPT_TRAILER_BYTES, r->size - CKPT_TRAILER_BYTES) != 0 ||
        !ckpt_trailer_unpack(tr, t)) {
        if (whole && le_get64(tr + 24) == r->size) /* complete, by its own count */
            snprintf(err, errlen, "%s: the trailer is damaged (its end marker); use an older checkpoint", path);
        else
            snprintf(err, errlen, "%s: truncated or cut short while being written: the file ends at byte %llu, %s; "
                     "use an older checkpoint", path, (unsigned long long)r->size, truncation_region(r));
        return -1;
    }
    r->file_xxh64 = t->file_xxh64;
    if (t->file_bytes != r->size) {
        snprintf(err, errlen, "%s: the file has %llu bytes but its trailer says %llu: truncated or damaged", path,
                 (unsigned long long)r->size, (unsigned long long)t->file_bytes);
        return -1;
    }
    if (t->entry_bytes != CKPT_ENTRY_BYTES || t->sections == 0 || t->sections > CKPT_MAX_SECTIONS ||
        t->table_offset < CKPT_HEADER_BYTES ||
        t->table_offset + (uint64_t)t->sections * CKPT_ENTRY_BYTES != r->size - CKPT_TRAILER_BYTES) {
        snprintf(err, errlen, "%s: the trailer is damaged (section table at %llu, %u entries of %u bytes)", path,
                 (unsigned long long)t->table_offset, t->sections, t->entry_bytes);
        return -1;
    }
    return 0;
}

/* The section table: its checksum, then each entry inside the file, once,
 * with a codec and size it can have. */
static int reader_table(CkptReader *r, const CkptTrailer *t, char *err, size_t errlen)
{
    const char *path = r->path;
    size_t bytes = (size_t)t->sections * CKPT_ENTRY_BYTES;
    uint8_t *table = malloc(bytes);
    r->sec = calloc(t->sections, sizeof *r->sec);
    if (!table || !r->sec) {
        free(table);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (pread_full(r->fd, table, bytes, t->table_offset) != 0 || xxh64(table, bytes, 0) != t->table_xxh64) {
        free(table);
        /* the table or the copy of its checksum in the trailer: no way to tell which */
        snprintf(err, errlen, "%s: the section table (or its checksum in the trailer) is damaged (checksum "
                 "mismatch); use an older checkpoint", path);
        return -1;
    }
    r->nsec = (int)t->sections;
    for (int i = 0; i < r->nsec; i++) ckpt_entry_unpack(table + (size_t)i * CKPT_ENTRY_BYTES, &r->sec[i]);
    free(table);
    for (int i = 0; i < r->nsec; i++) {
        const CkptSectionInfo *s = &r->sec[i];
        int known = s->kind >= CKPT_SEC_META && s->kind <= CKPT_SEC_AVERAGE;
        if (s->offset < CKPT_HEADER_BYTES || s->offset > t->table_offset ||
            s->stored_bytes > t->table_offset - s->offset) {
            snprintf(err, errlen, "%s: section %d (%s) lies outside the file", path, i, ckpt_section_name(s->kind));
            return -1;
        }
        if (known && find_section(r, s->kind) != s) {
            snprintf(err, errlen, "%s: section '%s' appears twice", path, ckpt_section_name(s->kind));
            return -1;
        }
        if (!ckpt_entry_plausible(s)) {
            snprintf(err, errlen, "%s: section '%s' has an impossible codec or size (codec %u, %llu bytes)", path,
                     ckpt_section_name(s->kind), s->codec, (unsigned long long)s->raw_bytes);
            return -1;
        }
    }
    return 0;
}

/* A text section (raw_bytes of it and a NUL), malloc'ed; NULL with err. */
static char *section_text(CkptReader *r, const CkptSectionInfo *s, char *err, size_t errlen)
{
    char *text = malloc(s->raw_bytes + 1);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (section_decode(r, s, text, err, errlen) != 0) {
        free(text);
        return NULL;
    }
    text[s->raw_bytes] = 0;
    return text;
}

/* The meta section into r->meta, and the float sections' sizes against it. */
static int reader_meta(CkptReader *r, char *err, size_t errlen)
{
    const char *path = r->path;
    const CkptSectionInfo *ms = find_section(r, CKPT_SEC_META);
    if (!ms) {
        snprintf(err, errlen, "%s: no metadata section", path);
        return -1;
    }
    char *text = section_text(r, ms, err, errlen);
    if (!text) return -1;
    char perr[200];
    int major = r->meta.version_major, minor = r->meta.version_minor;
    int prc = ckpt_meta_parse(text, ms->raw_bytes, &r->meta, perr, sizeof perr);
    free(text);
    if (prc != 0) {
        snprintf(err, errlen, "%s: %s", path, perr);
        return -1;
    }
    r->meta.version_major = major;
    r->meta.version_minor = minor;
    uint64_t want = (uint64_t)r->meta.num_params * 4;
    if (r->meta.num_params == 0 || r->meta.num_params > ((size_t)1 << 36)) {
        snprintf(err, errlen, "%s: metadata says %zu parameters", path, r->meta.num_params);
        return -1;
    }
    for (uint32_t k = CKPT_SEC_WEIGHTS; k <= CKPT_SEC_AVERAGE; k++) {
        const CkptSectionInfo *s = find_section(r, k);
        if (!s && k != CKPT_SEC_WEIGHTS) continue; /* a slim checkpoint */
        if (!s || s->raw_bytes != want) {
            snprintf(err, errlen, "%s: section '%s' %s, the metadata says %zu parameters", path,
                     ckpt_section_name(k), s ? "has another size" : "is missing", r->meta.num_params);
            return -1;
        }
    }
    return 0;
}

/* The class names section, which must hold the names the metadata counts. */
static int reader_class_names(CkptReader *r, char *err, size_t errlen)
{
    const CkptSectionInfo *cs = find_section(r, CKPT_SEC_CLASSES);
    if (!cs) {
        if (r->meta.num_class_names == 0) return 0;
        snprintf(err, errlen, "%s: metadata lists %d class names but the section is missing", r->path,
                 r->meta.num_class_names);
        return -1;
    }
    char *names = section_text(r, cs, err, errlen);
    if (!names) return -1;
    int lines = 0;
    for (uint64_t i = 0; i < cs->raw_bytes; i++) lines += names[i] == '\n';
    if (strlen(names) != cs->raw_bytes || lines != r->meta.num_class_names ||
        (cs->raw_bytes && names[cs->raw_bytes - 1] != '\n')) {
        free(names);
        snprintf(err, errlen, "%s: the class names section does not hold the %d names the metadata says", r->path,
                 r->meta.num_class_names);
        return -1;
    }
    r->meta.class_names = names;
    return 0;
}

CkptReader *ckpt_open(const char *path, char *err, size_t errlen)
{
    CkptReader *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->fd = -1;
    snprintf(r->path, sizeof r->path, "%s", path);
    CkptTrailer t;
    if (reader_open_file(r, path, err, errlen) != 0 || reader_header(r, err, errlen) != 0 ||
        reader_trailer(r, &t, err, errlen) != 0 || reader_table(r, &t, err, errlen) != 0 ||
        reader_meta(r, err, errlen) != 0 || reader_class_names(r, err, errlen) != 0) {
        ckpt_close(r);
        return NULL;
    }
    return r;
}

const CkptMeta *ckpt_reader_meta(const CkptReader *r) { return &r->meta; }

int ckpt_reader_has(const CkptReader *r, CkptSectionKind kind) { return find_section(r, kind) != NULL; }

const CkptSectionInfo *ckpt_reader_sections(const CkptReader *r, int *count)
{
    *count = r->nsec;
    return r->sec;
}

uint64_t ckpt_reader_file_bytes(const CkptReader *r) { return r->size; }

static int check_file_xxh64(CkptReader *r, char *err, size_t errlen)
{
    size_t chunk = (size_t)4 << 20;
    uint8_t *buf = malloc(chunk);
    if (!buf) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    Xxh64 x;
    xxh64_init(&x, 0);
    uint64_t end = r->size - 16;
    for (uint64_t off = 0; off < end;) {
        size_t n = end - off < chunk ? (size_t)(end - off) : chunk;
        if (pread_full(r->fd, buf, n, off) != 0) {
            snprintf(err, errlen, "%s: read failed: %s", r->path, strerror(errno));
            free(buf);
            return -1;
        }
        xxh64_update(&x, buf, n);
        off += n;
    }
    free(buf);
    if (xxh64_digest(&x) != r->file_xxh64) {
        /* every other part passed its own check: what is left is the trailer's
         * own fields (the whole-file checksum among them) */
        snprintf(err, errlen, "%s: the whole-file checksum does not match: the trailer is damaged; use an older "
                 "checkpoint", r->path);
        return -1;
    }
    return 0;
}

static int check_sha(CkptReader *r, const float *w, char *err, size_t errlen)
{
    if (!r->meta.params_sha256[0]) return 0;
    char hex[65];
    sha256_buffer_hex(w, r->meta.num_params * sizeof(float), hex);
    if (strcmp(hex, r->meta.params_sha256) != 0) {
        snprintf(err, errlen, "%s: the weights' SHA-256 %s differs from the recorded %s", r->path, hex,
                 r->meta.params_sha256);
        return -1;
    }
    return 0;
}

int ckpt_reader_verify(CkptReader *r, char *err, size_t errlen)
{
    for (int i = 0; i < r->nsec; i++) {
        const CkptSectionInfo *s = &r->sec[i];
        int known = s->kind >= CKPT_SEC_META && s->kind <= CKPT_SEC_AVERAGE && s->codec <= CKPT_CODEC_SHUFFLE_ZSTD;
        if (!known) {
            /* a newer writer's section: only its stored bytes can be checked */
            uint8_t *b = malloc(s->stored_bytes ? s->stored_bytes : 1);
            int bad = !b || pread_full(r->fd, b, s->stored_bytes, s->offset) != 0 ||
                      xxh64(b, s->stored_bytes, 0) != s->stored_xxh64;
            free(b);
            if (bad) {
                snprintf(err, errlen, "%s: section %d (kind %u) is damaged or unreadable", r->path, i, s->kind);
                return -1;
            }
            continue;
        }
        void *dst = malloc(s->raw_bytes ? s->raw_bytes : 1);
        if (!dst) {
            snprintf(err, errlen, "out of memory verifying %s", r->path);
            return -1;
        }
        int rc = section_decode(r, s, dst, err, errlen);
        if (rc == 0 && s->kind == CKPT_SEC_WEIGHTS) rc = check_sha(r, dst, err, errlen);
        free(dst);
        if (rc != 0) return -1;
    }
    return check_file_xxh64(r, err, errlen);
}

int ckpt_reader_read(CkptReader *r, CkptSectionKind kind, float *dst, size_t count, char *err, size_t errlen)
{
    const CkptSectionInfo *s = find_section(r, kind);
    if (kind < CKPT_SEC_WEIGHTS || kind > CKPT_SEC_AVERAGE || !s) {
        snprintf(err, errlen, "%s: no float section '%s'", r->path, ckpt_section_name(kind));
        return -1;
    }
    if (s->raw_bytes != (uint64_t)count * 4) {
        snprintf(err, errlen, "%s: section '%s' holds %llu floats, the caller expects %zu", r->path,
                 ckpt_section_name(kind), (unsigned long long)(s->raw_bytes / 4), count);
        return -1;
    }
    if (section_decode(r, s, dst, err, errlen) != 0) return -1;
    return kind == CKPT_SEC_WEIGHTS ? check_sha(r, dst, err, errlen) : 0;
}

int ckpt_peek_meta(const char *path, CkptMeta *meta, char *err, size_t errlen)
{
    CkptReader *r = ckpt_open(path, err, errlen);
    if (!r) return -1;
    *meta = r->meta;
    r->meta.class_names = NULL; /* ownership moves to the caller */
    r->meta.extra = NULL;
    ckpt_close(r);
    return 0;
}

int ckpt_verify_file(const char *path, char *err, size_t errlen)
{
    CkptReader *r = ckpt_open(path, err, errlen);
    if (!r) return -1;
    int rc = ckpt_reader_verify(r, err, errlen);
    ckpt_close(r);
    return rc;
}

/* CKPT_LOAD_OTHER_MODEL: the parameter count differs; CKPT_LOAD_SLIM: a
 * section asked for is not there; CKPT_LOAD_DAMAGED: anything else. */
int ckpt_load_file(const char *path, CkptMeta *meta, float *weights, float *momentum, float *average,
                     size_t num_params, char *err, size_t errlen)
{
    CkptReader *r = ckpt_open(path, err, errlen);
    if (!r) return -1;
    int rc = CKPT_LOAD_DAMAGED;
    if (r->meta.num_params != num_params) {
        snprintf(err, errlen, "%s holds %zu parameters and the model %zu", path, r->meta.num_params, num_params);
        rc = CKPT_LOAD_OTHER_MODEL;
        goto out;
    }
    if ((momentum && !find_section(r, CKPT_SEC_MOMENTUM)) || (average && !find_section(r, CKPT_SEC_AVERAGE))) {
        char set[16] = "";
        ckpt_meta_get_extra(&r->meta, CKPT_EXTRA_SLIM, set, sizeof set);
        snprintf(err, errlen, "%s is slim (%s%s, no optimizer state): evaluate it, or start a new run from it with "
                 "--init; it cannot be resumed", path, set[0] ? "its weights are the run's " : "weights only",
                 set[0] ? (strcmp(set, "raw") == 0 ? "last weights" : "Polyak average") : "");
        rc = CKPT_LOAD_SLIM;
        goto out;
    }
    if ((weights && ckpt_reader_read(r, CKPT_SEC_WEIGHTS, weights, num_params, err, errlen)) ||
        (momentum && ckpt_reader_read(r, CKPT_SEC_MOMENTUM, momentum, num_params, err, errlen)) ||
        (average && ckpt_reader_read(r, CKPT_SEC_AVERAGE, average, num_params, err, errlen)) ||
        check_file_xxh64(r, err, errlen))
        goto out;
    if (meta) {
        *meta = r->meta;
        r->meta.class_names = NULL;
        r->meta.extra = NULL;
    }
    rc = CKPT_LOAD_OK;
out:
    ckpt_close(r);
    return rc;
}

int ckpt_load(const char *path, CkptMeta *meta, float *weights, float *momentum, float *average,
              size_t num_params, char *err, size_t errlen)
{
    return ckpt_load_file(path, meta, weights, momentum, average, num_params, err, errlen) == CKPT_LOAD_OK ? 0 : -1;
}

