/* ckpt/ckpt.c: the .gnck checkpoint format: metadata, encoding, atomic writing,
 * and a reader that checks every size against the file before trusting it.
 * It never prints and never exits; the asynchronous writer is ckpt_writer.c.
 *
 * Layout (all integers little-endian; docs/checkpoints.md, "Checkpoint format"):
 *
 *   header, 32 bytes at offset 0 (magic, version and header checksum are at
 *   these offsets in every version, so any reader can tell "newer" from
 *   "damaged"):
 *     0  u8[8]  magic 89 47 4E 43 4B 0D 0A 1A  ("\x89GNCK\r\n\x1a")
 *     8  u16    version major       10 u16  version minor
 *     12 u32    header bytes (32)   16 u32  flags (0)   20 u32 reserved (0)
 *     24 u64    XXH64 of bytes 0..23 (seed 0)
 *   sections, back to back from offset 32, in the order written: weights,
 *   momentum, average, classes (when there are names), meta
 *   section table, count entries of 64 bytes:
 *     0 u32 kind   4 u32 codec   8 u32 element bytes   12 u32 reserved (0)
 *     16 u64 offset   24 u64 stored bytes   32 u64 raw bytes
 *     40 u64 XXH64 of the stored bytes   48 u64 XXH64 of the raw bytes
 *     56 u64 reserved (0)
 *   trailer, the last 48 bytes:
 *     0 u64 table offset   8 u32 section count   12 u32 table entry bytes (64)
 *     16 u64 XXH64 of the table   24 u64 file bytes
 *     32 u64 XXH64 of bytes [0, file bytes - 16)   40 u8[8] "GNCKEND\n"
 *
 * Codecs: raw; zstd (one frame with its content size); shuffle4+zstd: the n
 * floats are first regrouped into 4 planes of n bytes, plane k holding byte k
 * (k = 0 least significant) of every float, then one zstd frame. The meta
 * section is "key=value\n" text (values escape '\\' '\n' '\r' as \\ \n \r);
 * the classes section is the class names, one per line.
 */
#include "trainer/ckpt/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "trainer/ckpt/hash.h"
#include "trainer/ckpt/internal.h"

static const uint8_t ckpt_magic[8] = {0x89, 'G', 'N', 'C', 'K', '\r', '\n', 0x1a};
static const uint8_t ckpt_end_magic[8] = {'G', 'N', 'C', 'K', 'E', 'N', 'D', '\n'};
enum { HEADER_BYTES = 32, ENTRY_BYTES = 64, TRAILER_BYTES = 48, MAX_SECTIONS = 256 };
#define MAX_TEXT_BYTES ((uint64_t)64 << 20) /* meta and class names */
#define CKPT_OUT_CHUNK ((size_t)4 << 20)

/* ---- little-endian fields ---- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* ---- a growable text buffer ---- */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} Text;

static void text_add(Text *t, const char *s, size_t n)
{
    if (t->oom) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->s, cap);
        if (!p) {
            t->oom = 1;
            return;
        }
        t->s = p;
        t->cap = cap;
    }
    memcpy(t->s + t->len, s, n);
    t->len += n;
    t->s[t->len] = 0;
}

/* "key=value\n" with the value escaped */
static void text_kv(Text *t, const char *key, const char *value)
{
    text_add(t, key, strlen(key));
    text_add(t, "=", 1);
    for (const char *p = value; *p; p++) {
        if (*p == '\\') text_add(t, "\\\\", 2);
        else if (*p == '\n') text_add(t, "\\n", 2);
        else if (*p == '\r') text_add(t, "\\r", 2);
        else text_add(t, p, 1);
    }
    text_add(t, "\n", 1);
}

/* ---- metadata ---- */

typedef enum { F_INT, F_LONG, F_LLONG, F_U64, F_I64, F_SIZE, F_DOUBLE, F_FLOAT, F_STR, F_POLICY, F_INFO } FieldType;

typedef struct {
    const char *key;
    FieldType type;
    size_t offset;
    size_t size;  /* F_STR: the buffer */
    int required;
} MetaField;

#define FLD(k, t, member, req) {k, t, offsetof(CkptMeta, member), sizeof(((CkptMeta *)0)->member), req}
static const MetaField meta_fields[] = {
    {"format_version", F_INFO, 0, 0, 0},
    FLD("arch", F_STR, arch, 1),
    FLD("num_params", F_SIZE, num_params, 1),
    FLD("classes", F_INT, classes, 1),
    FLD("crop", F_INT, crop, 0),
    FLD("aux", F_INT, aux, 1),
    FLD("head_dropout", F_FLOAT, head_dropout, 0),
    FLD("aux_dropout", F_FLOAT, aux_dropout, 0),
    FLD("step", F_LONG, step, 1),
    FLD("epoch", F_LONG, epoch, 0),
    FLD("epoch_step", F_LONG, epoch_step, 0),
    FLD("epoch_samples", F_LLONG, epoch_samples, 0),
    FLD("samples_seen", F_LLONG, samples_seen, 0),
    FLD("seed", F_U64, seed, 0),
    FLD("world_size", F_INT, world_size, 0),
    FLD("batch", F_INT, batch, 0),
    FLD("accum", F_INT, accum, 0),
    FLD("lr_policy", F_POLICY, lr.policy, 0),
    FLD("base_lr", F_DOUBLE, lr.base_lr, 0),
    FLD("lr_gamma", F_DOUBLE, lr.gamma, 0),
    FLD("lr_step_size", F_LONG, lr.step_size, 0),
    FLD("lr_power", F_DOUBLE, lr.power, 0),
    FLD("lr_max_iter", F_LONG, lr.max_iter, 0),
    FLD("lr_final_frac", F_DOUBLE, lr.final_frac, 0),
    FLD("lr_warmup_iters", F_LONG, lr.warmup_iters, 0),
    FLD("last_lr", F_DOUBLE, last_lr, 0),
    FLD("momentum", F_DOUBLE, momentum, 0),
    FLD("weight_decay", F_DOUBLE, weight_decay, 0),
    FLD("ema_decay", F_DOUBLE, ema_decay, 0),
    FLD("dataset_size", F_LLONG, dataset_size, 0),
    FLD("drop_last", F_INT, drop_last, 0),
    FLD("created_unix", F_I64, created_unix, 0),
    {"created", F_INFO, 0, 0, 0},
    FLD("command", F_STR, command, 0),
    FLD("params_sha256", F_STR, params_sha256, 0),
    FLD("num_class_names", F_INT, num_class_names, 0),
};
#define NFIELDS ((int)(sizeof meta_fields / sizeof meta_fields[0]))

void ckpt_meta_init(CkptMeta *m)
{
    memset(m, 0, sizeof *m);
    m->version_major = CKPT_VERSION_MAJOR;
    m->version_minor = CKPT_VERSION_MINOR;
    snprintf(m->arch, sizeof m->arch, "%s", CKPT_ARCH);
    m->world_size = 1;
    m->accum = 1;
}

void ckpt_meta_free(CkptMeta *m)
{
    free(m->class_names);
    free(m->extra);
    m->class_names = NULL;
    m->extra = NULL;
    m->num_class_names = 0;
}

int ckpt_meta_copy(CkptMeta *dst, const CkptMeta *src)
{
    CkptMeta t = *src;
    t.class_names = src->class_names ? strdup(src->class_names) : NULL;
    t.extra = src->extra ? strdup(src->extra) : NULL;
    if ((src->class_names && !t.class_names) || (src->extra && !t.extra)) {
        ckpt_meta_free(&t);
        return -1;
    }
    *dst = t;
    return 0;
}

int ckpt_meta_set_class_names(CkptMeta *m, const char *const *names, int n, char *err, size_t errlen)
{
    Text t = {0};
    for (int i = 0; i < n; i++) {
        if (!names[i][0] || strchr(names[i], '\n') || strchr(names[i], '\r')) {
            snprintf(err, errlen, "class name %d ('%.40s') is empty or holds a line break", i, names[i]);
            free(t.s);
            return -1;
        }
        text_add(&t, names[i], strlen(names[i]));
        text_add(&t, "\n", 1);
    }
    if (t.oom) {
        snprintf(err, errlen, "out of memory for %d class names", n);
        free(t.s);
        return -1;
    }
    free(m->class_names);
    m->class_names = t.s;
    m->num_class_names = n;
    return 0;
}

static const MetaField *field_find(const char *key, size_t len)
{
    for (int i = 0; i < NFIELDS; i++)
        if (strlen(meta_fields[i].key) == len && memcmp(meta_fields[i].key, key, len) == 0)
            return &meta_fields[i];
    return NULL;
}

static int key_ok(const char *k, size_t len)
{
    if (len == 0 || len > 64) return 0;
    for (size_t i = 0; i < len; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '.'))
            return 0;
    return 1;
}

int ckpt_meta_add_extra(CkptMeta *m, const char *key, const char *value, char *err, size_t errlen)
{
    if (!key_ok(key, strlen(key)) || field_find(key, strlen(key))) {
        snprintf(err, errlen, "metadata key '%.64s' is not allowed: use [a-z0-9_.], not a key the format defines", key);
        return -1;
    }
    Text t = {0};
    if (m->extra) text_add(&t, m->extra, strlen(m->extra));
    text_kv(&t, key, value);
    if (t.oom) {
        free(t.s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(m->extra);
    m->extra = t.s;
    return 0;
}

int ckpt_meta_set_norm(CkptMeta *m, const float mean[3], const float std[3], char *err, size_t errlen)
{
    char v[96];
    snprintf(v, sizeof v, "%.9g,%.9g,%.9g", mean[0], mean[1], mean[2]);
    if (ckpt_meta_add_extra(m, "input_mean", v, err, errlen) != 0) return -1;
    snprintf(v, sizeof v, "%.9g,%.9g,%.9g", std[0], std[1], std[2]);
    return ckpt_meta_add_extra(m, "input_std", v, err, errlen);
}

/* The three numbers of extra key `key` ("key=a,b,c" on its own line). */
static int extra_triple(const char *extra, const char *key, float out[3])
{
    size_t kl = strlen(key);
    for (const char *p = extra; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=') continue;
        char *end;
        const char *q = p + kl + 1;
        for (int i = 0; i < 3; i++) {
            out[i] = strtof(q, &end);
            if (end == q || (i < 2 && *end != ',') || !isfinite(out[i])) return 0;
            q = end + 1;
        }
        return *end == '\n' || *end == '\0';
    }
    return 0;
}

int ckpt_meta_get_norm(const CkptMeta *m, float mean[3], float std[3])
{
    float a[3], b[3];
    if (!extra_triple(m->extra, "input_mean", a) || !extra_triple(m->extra, "input_std", b)) return 0;
    if (!(b[0] > 0 && b[1] > 0 && b[2] > 0)) return 0;
    memcpy(mean, a, sizeof a);
    memcpy(std, b, sizeof b);
    return 1;
}

int ckpt_meta_get_extra(const CkptMeta *m, const char *key, char *out, size_t outlen)
{
    size_t kl = strlen(key);
    for (const char *p = m->extra; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, key, kl) != 0 || p[kl] != '=') continue;
        size_t n = 0;
        for (const char *q = p + kl + 1; *q && *q != '\n'; q++) {
            char c = *q;
            if (c == '\\' && q[1]) {
                q++;
                c = *q == 'n' ? '\n' : *q == 'r' ? '\r' : *q;
            }
            if (n + 1 >= outlen) return 0;
            out[n++] = c;
        }
        out[n] = '\0';
        return 1;
    }
    return 0;
}

void ckpt_meta_set_model(CkptMeta *m, const ModelConfig *cfg, size_t num_params)
{
    snprintf(m->arch, sizeof m->arch, "%s", CKPT_ARCH);
    m->classes = cfg->classes;
    m->crop = cfg->crop;
    m->aux = cfg->aux;
    m->head_dropout = cfg->head_dropout;
    m->aux_dropout = cfg->aux_dropout;
    m->num_params = num_params;
}

int ckpt_meta_check_model(const CkptMeta *m, const ModelConfig *cfg, size_t num_params, char *err,
                          size_t errlen)
{
    if (strcmp(m->arch, CKPT_ARCH) != 0) {
        snprintf(err, errlen, "architecture '%s' is not the '%s' this build runs", m->arch, CKPT_ARCH);
        return -1;
    }
    if (m->aux != cfg->aux) {
        snprintf(err, errlen, "checkpoint was made %s the auxiliary heads and the model is built %s them; %s",
                 m->aux ? "with" : "without", cfg->aux ? "with" : "without",
                 m->aux ? "drop --no-aux" : "add --no-aux");
        return -1;
    }
    if (m->classes != cfg->classes) {
        snprintf(err, errlen, "checkpoint has %d classes and the model %d; pass --classes %d", m->classes,
                 cfg->classes, m->classes);
        return -1;
    }
    if (m->num_params != num_params) {
        snprintf(err, errlen, "checkpoint holds %zu parameters and the model %zu", m->num_params, num_params);
        return -1;
    }
    return 0;
}

static int meta_encode(const CkptMeta *m, Text *t)
{
    char v[128];
    for (int i = 0; i < NFIELDS; i++) {
        const MetaField *f = &meta_fields[i];
        const char *p = (const char *)m + f->offset;
        if (strcmp(f->key, "format_version") == 0) {
            snprintf(v, sizeof v, "%d.%d", CKPT_VERSION_MAJOR, CKPT_VERSION_MINOR);
        } else if (strcmp(f->key, "created") == 0) {
            time_t tt = (time_t)m->created_unix;
            struct tm tm;
            gmtime_r(&tt, &tm);
            strftime(v, sizeof v, "%Y-%m-%dT%H:%M:%SZ", &tm);
        } else {
            switch (f->type) {
            case F_INT: snprintf(v, sizeof v, "%d", *(const int *)p); break;
            case F_LONG: snprintf(v, sizeof v, "%ld", *(const long *)p); break;
            case F_LLONG: snprintf(v, sizeof v, "%lld", *(const long long *)p); break;
            case F_U64: snprintf(v, sizeof v, "%llu", (unsigned long long)*(const uint64_t *)p); break;
            case F_I64: snprintf(v, sizeof v, "%lld", (long long)*(const int64_t *)p); break;
            case F_SIZE: snprintf(v, sizeof v, "%zu", *(const size_t *)p); break;
            case F_DOUBLE: snprintf(v, sizeof v, "%.17g", *(const double *)p); break;
            case F_FLOAT: snprintf(v, sizeof v, "%.9g", (double)*(const float *)p); break;
            case F_POLICY: snprintf(v, sizeof v, "%s", lr_policy_name(*(const LrPolicy *)p)); break;
            case F_STR: text_kv(t, f->key, p); continue;
            case F_INFO: continue;
            }
        }
        text_kv(t, f->key, v);
    }
    if (m->extra) text_add(t, m->extra, strlen(m->extra));
    return t->oom ? -1 : 0;
}

/* The field's storage inside m. Through uintptr_t because gcc's object-size
 * tracking (under -fsanitize) takes (char *)m + offset for m's first member
 * and warns about every write wider than it. */
static char *field_ptr(CkptMeta *m, const MetaField *f) { return (char *)((uintptr_t)m + f->offset); }

/* Parses one value into its field; -1 with err when it does not fit. */
static int field_set(CkptMeta *m, const MetaField *f, const char *v, char *err, size_t errlen)
{
    char *p = field_ptr(m, f), *end = NULL;
    errno = 0;
    switch (f->type) {
    case F_INT:
    case F_LONG:
    case F_LLONG:
    case F_I64: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end) break;
        if (f->type == F_INT) {
            if (x < -2147483647LL - 1 || x > 2147483647LL) break;
            *(int *)p = (int)x;
        } else if (f->type == F_LONG) *(long *)p = (long)x;
        else if (f->type == F_LLONG) *(long long *)p = x;
        else *(int64_t *)p = (int64_t)x;
        return 0;
    }
    case F_U64:
    case F_SIZE: {
        if (v[0] == '-') break;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end) break;
        if (f->type == F_U64) *(uint64_t *)p = (uint64_t)x;
        else *(size_t *)p = (size_t)x;
        return 0;
    }
    case F_DOUBLE:
    case F_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end) break;
        if (f->type == F_DOUBLE) *(double *)p = x;
        else *(float *)p = (float)x;
        return 0;
    }
    case F_POLICY: {
        int pol = lr_policy_parse(v);
        if (pol < 0) break;
        *(LrPolicy *)p = (LrPolicy)pol;
        return 0;
    }
    case F_STR:
        if (strlen(v) >= f->size) {
            if (f->offset != offsetof(CkptMeta, command)) break;
            memcpy(p, v, f->size - 1);
            p[f->size - 1] = 0;
            return 0;
        }
        memcpy(p, v, strlen(v) + 1);
        return 0;
    case F_INFO:
        return 0;
    }
    snprintf(err, errlen, "metadata key '%s' has a bad value '%.60s'", f->key, v);
    return -1;
}

/* text[len] -> m (which the caller has zeroed). Unknown keys go to m->extra. */
static int meta_parse(const char *text, size_t len, CkptMeta *m, char *err, size_t errlen)
{
    int seen[NFIELDS] = {0};
    char *val = malloc(len + 1);
    Text extra = {0};
    if (!val) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    size_t line_no = 0;
    for (size_t pos = 0; pos < len;) {
        line_no++;
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        if (!nl) {
            snprintf(err, errlen, "metadata line %zu does not end with a newline", line_no);
            goto out;
        }
        size_t ll = (size_t)(nl - line);
        pos += ll + 1;
        const char *eq = memchr(line, '=', ll);
        if (!eq || !key_ok(line, (size_t)(eq - line))) {
            snprintf(err, errlen, "metadata line %zu is not key=value: '%.40s'", line_no, line);
            goto out;
        }
        size_t klen = (size_t)(eq - line), vn = 0;
        for (const char *q = eq + 1; q < nl; q++) {
            char c = *q;
            if (c == 0) {
                snprintf(err, errlen, "metadata line %zu holds a NUL byte", line_no);
                goto out;
            }
            if (c == '\\') {
                if (q + 1 >= nl || (q[1] != '\\' && q[1] != 'n' && q[1] != 'r')) {
                    snprintf(err, errlen, "metadata line %zu has a bad escape", line_no);
                    goto out;
                }
                q++;
                c = *q == 'n' ? '\n' : *q == 'r' ? '\r' : '\\';
            }
            val[vn++] = c;
        }
        val[vn] = 0;
        const MetaField *f = field_find(line, klen);
        if (!f) {
            text_add(&extra, line, ll + 1);
            continue;
        }
        int idx = (int)(f - meta_fields);
        if (seen[idx]) {
            snprintf(err, errlen, "metadata key '%s' appears twice", f->key);
            goto out;
        }
        seen[idx] = 1;
        if (field_set(m, f, val, err, errlen) != 0) goto out;
    }
    for (int i = 0; i < NFIELDS; i++)
        if (meta_fields[i].required && !seen[i]) {
            snprintf(err, errlen, "metadata lacks the key '%s'", meta_fields[i].key);
            goto out;
        }
    if (extra.oom) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    m->extra = extra.s;
    extra.s = NULL;
    rc = 0;
out:
    free(val);
    free(extra.s);
    return rc;
}

/* ---- names ---- */

const char *ckpt_section_name(uint32_t kind)
{
    switch (kind) {
    case CKPT_SEC_META: return "meta";
    case CKPT_SEC_CLASSES: return "classes";
    case CKPT_SEC_WEIGHTS: return "weights";
    case CKPT_SEC_MOMENTUM: return "momentum";
    case CKPT_SEC_AVERAGE: return "average";
    default: return "unknown";
    }
}

const char *ckpt_codec_name(uint32_t codec)
{
    switch (codec) {
    case CKPT_CODEC_RAW: return "raw";
    case CKPT_CODEC_ZSTD: return "zstd";
    case CKPT_CODEC_SHUFFLE_ZSTD: return "shuffle4+zstd";
    default: return "unknown";
    }
}

void ckpt_file_name(long step, char *out, size_t outlen)
{
    snprintf(out, outlen, "ckpt-%08ld%s", step, CKPT_EXT);
}

long ckpt_file_step(const char *name)
{
    if (strncmp(name, "ckpt-", 5) != 0) return -1;
    const char *d = name + 5;
    size_t nd = strspn(d, "0123456789");
    if (nd == 0 || nd > 18 || strcmp(d + nd, CKPT_EXT) != 0) return -1;
    long s = 0;
    for (size_t i = 0; i < nd; i++) s = s * 10 + (d[i] - '0');
    return s;
}

static int entry_desc(const void *a, const void *b)
{
    long x = ((const CkptEntry *)a)->step, y = ((const CkptEntry *)b)->step;
    return x < y ? 1 : x > y ? -1 : 0;
}

long ckpt_list(const char *dir, CkptEntry **out, char *err, size_t errlen)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot read checkpoint directory %s: %s", dir, strerror(errno));
        return -1;
    }
    CkptEntry *e = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long step = ckpt_file_step(de->d_name);
        if (step < 0 || strlen(de->d_name) >= sizeof e->name) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            CkptEntry *g = realloc(e, cap * sizeof *e);
            if (!g) {
                free(e);
                closedir(d);
                snprintf(err, errlen, "out of memory listing %s", dir);
                return -1;
            }
            e = g;
        }
        e[n].step = step;
        snprintf(e[n].name, sizeof e[n].name, "%s", de->d_name);
        n++;
    }
    closedir(d);
    if (n) qsort(e, n, sizeof *e, entry_desc);
    *out = e;
    return (long)n;
}

long ckpt_newest_step(const char *dir, char *name, size_t namelen)
{
    CkptEntry *e;
    char err[256];
    long n = ckpt_list(dir, &e, err, sizeof err);
    long step = n > 0 ? e[0].step : -1;
    if (n > 0) snprintf(name, namelen, "%s", e[0].name);
    free(e);
    return step;
}

void ckpt_dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, outlen, ".");
    else if (slash == path) snprintf(out, outlen, "/");
    else snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

int ckpt_is_temp_name(const char *name)
{
    return name[0] == '.' && strstr(name, ".tmp.") != NULL;
}

/* ---- encoding ---- */

/* A compression context with the encoder's level and workers (threads asked
 * for; e->threads gets what libzstd grants). */
static ZSTD_CCtx *encoder_cctx(CkptEncoder *e, int threads)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    if (!c) return NULL;
    ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, e->level);
    ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0); /* the section has its own */
    e->threads = 0;
    if (threads > 0) {
        /* libzstd built without ZSTD_MULTITHREAD refuses nbWorkers > 0 */
        size_t r = ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, threads);
        if (ZSTD_isError(r)) {
            snprintf(e->note, sizeof e->note,
                     "libzstd cannot run %d worker threads (%s): compressing in the writer thread", threads,
                     ZSTD_getErrorName(r));
            ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, 0);
        } else {
            e->threads = threads;
        }
    }
    return c;
}

int ckpt_encoder_init(CkptEncoder *e, int level, int threads, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
        snprintf(err, errlen, "zstd level %d is outside [%d, %d]", level, ZSTD_minCLevel(), ZSTD_maxCLevel());
        return -1;
    }
    e->level = level;
    e->cctx = encoder_cctx(e, threads);
    e->out = malloc(CKPT_OUT_CHUNK);
    if (!e->cctx || !e->out) {
        ckpt_encoder_free(e);
        snprintf(err, errlen, "out of memory for the zstd compressor");
        return -1;
    }
    return 0;
}

void ckpt_encoder_free(CkptEncoder *e)
{
    ZSTD_freeCCtx(e->cctx);
    free(e->planes);
    free(e->out);
    memset(e, 0, sizeof *e);
}

static void shuffle4(const float *src, size_t n, uint8_t *planes /* (4, n) */)
{
    const uint32_t *u = (const uint32_t *)src;
    uint8_t *p0 = planes, *p1 = planes + n, *p2 = planes + 2 * n, *p3 = planes + 3 * n;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = u[i];
        p0[i] = (uint8_t)v;
        p1[i] = (uint8_t)(v >> 8);
        p2[i] = (uint8_t)(v >> 16);
        p3[i] = (uint8_t)(v >> 24);
    }
}

static void unshuffle4(const uint8_t *planes /* (4, n) */, size_t n, float *dst)
{
    uint32_t *u = (uint32_t *)dst;
    const uint8_t *p0 = planes, *p1 = planes + n, *p2 = planes + 2 * n, *p3 = planes + 3 * n;
    for (size_t i = 0; i < n; i++)
        u[i] = (uint32_t)p0[i] | (uint32_t)p1[i] << 8 | (uint32_t)p2[i] << 16 | (uint32_t)p3[i] << 24;
}

/* The file being written: every byte goes through out_write. */
typedef struct {
    int fd;
    const char *path;  /* the final name, for messages */
    uint64_t written;
    Xxh64 file;        /* of bytes [0, file bytes - 16) */
    Xxh64 sec;         /* of the current section's stored bytes */
    int err_no;        /* errno of the failure */
    const char *what;  /* "write", "fsync", ... */
    const char *zstd_error; /* set when compression itself failed */
    CkptIoFault fault;
    void *fault_ctx;
} Out;

static int out_write(Out *o, const void *buf, size_t n, int hash_file, int hash_sec)
{
    const uint8_t *b = buf;
    if (hash_file) xxh64_update(&o->file, buf, n);
    if (hash_sec) xxh64_update(&o->sec, buf, n);
    while (n) {
        int injected = o->fault ? o->fault(o->fault_ctx, o->path, o->written) : 0;
        ssize_t k;
        if (injected) {
            errno = injected;
            k = -1;
        } else {
            k = write(o->fd, b, n > ((size_t)1 << 30) ? (size_t)1 << 30 : n);
        }
        if (k < 0) {
            if (errno == EINTR) continue;
            o->err_no = errno;
            o->what = "write";
            return -1;
        }
        if (k == 0) {
            o->err_no = ENOSPC;
            o->what = "write";
            return -1;
        }
        b += k;
        n -= (size_t)k;
        o->written += (uint64_t)k;
    }
    return 0;
}

/* One section from raw bytes: writes it and fills *s. */
static int out_section(Out *o, CkptEncoder *e, uint32_t kind, uint32_t codec, uint32_t elem_size,
                       const void *raw, size_t raw_bytes, CkptSectionInfo *s, Sha256 *sha)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->codec = codec;
    s->elem_size = elem_size;
    s->offset = o->written;
    s->raw_bytes = raw_bytes;
    if (sha) sha256_update(sha, raw, raw_bytes);
    xxh64_init(&o->sec, 0);
    if (codec == CKPT_CODEC_RAW) {
        /* stored = raw: one pass hashes both */
        if (out_write(o, raw, raw_bytes, 1, 1) != 0) return -1;
    } else {
        s->raw_xxh64 = xxh64(raw, raw_bytes, 0);
        const void *src = raw;
        if (codec == CKPT_CODEC_SHUFFLE_ZSTD) {
            if (e->planes_cap < raw_bytes) {
                free(e->planes);
                e->planes = malloc(raw_bytes);
                e->planes_cap = e->planes ? raw_bytes : 0;
                if (!e->planes) {
                    o->err_no = ENOMEM;
                    o->what = "allocate";
                    return -1;
                }
            }
            shuffle4(raw, raw_bytes / 4, e->planes);
            src = e->planes;
        }
        if (e->unfinished) {
            /* The last write failed inside a frame. libzstd 1.5.4 with worker
             * threads crashes in a worker when such a context is reset and
             * used again (a full disk, then the next checkpoint, crashed the
             * trainer), so the context is made anew. */
            ZSTD_CCtx *fresh = encoder_cctx(e, e->threads);
            if (!fresh) {
                o->err_no = ENOMEM;
                o->what = "allocate";
                return -1;
            }
            ZSTD_freeCCtx(e->cctx);
            e->cctx = fresh;
            e->unfinished = 0;
        }
        ZSTD_CCtx_reset(e->cctx, ZSTD_reset_session_only);
        ZSTD_CCtx_setPledgedSrcSize(e->cctx, raw_bytes);
        ZSTD_inBuffer in = {src, raw_bytes, 0};
        e->unfinished = 1;
        for (;;) {
            ZSTD_outBuffer ob = {e->out, CKPT_OUT_CHUNK, 0};
            size_t rem = ZSTD_compressStream2(e->cctx, &ob, &in, ZSTD_e_end);
            if (ZSTD_isError(rem)) {
                o->err_no = EIO;
                o->what = "compress";
                o->zstd_error = ZSTD_getErrorName(rem);
                return -1;
            }
            if (ob.pos && out_write(o, e->out, ob.pos, 1, 1) != 0) return -1;
            if (rem == 0) break;
        }
        e->unfinished = 0;
    }
    s->stored_bytes = o->written - s->offset;
    s->stored_xxh64 = xxh64_digest(&o->sec);
    if (codec == CKPT_CODEC_RAW) s->raw_xxh64 = s->stored_xxh64;
    return 0;
}

static void entry_pack(uint8_t *p, const CkptSectionInfo *s)
{
    memset(p, 0, ENTRY_BYTES);
    put32(p, s->kind);
    put32(p + 4, s->codec);
    put32(p + 8, s->elem_size);
    put64(p + 16, s->offset);
    put64(p + 24, s->stored_bytes);
    put64(p + 32, s->raw_bytes);
    put64(p + 40, s->stored_xxh64);
    put64(p + 48, s->raw_xxh64);
}

static void entry_unpack(const uint8_t *p, CkptSectionInfo *s)
{
    s->kind = get32(p);
    s->codec = get32(p + 4);
    s->elem_size = get32(p + 8);
    s->offset = get64(p + 16);
    s->stored_bytes = get64(p + 24);
    s->raw_bytes = get64(p + 32);
    s->stored_xxh64 = get64(p + 40);
    s->raw_xxh64 = get64(p + 48);
}

/* Header, sections, table, trailer into o. */
static int out_checkpoint(Out *o, CkptEncoder *e, const CkptMeta *meta, const float *weights,
                          const float *momentum, const float *average)
{
    /* a file without momentum or average (slim) is version 1.1, so that a
     * reader of 1.0 names the missing section instead of calling it damaged */
    int minor = momentum && average ? CKPT_VERSION_MINOR : CKPT_VERSION_MINOR_SLIM;
    uint8_t hdr[HEADER_BYTES] = {0};
    memcpy(hdr, ckpt_magic, 8);
    put16(hdr + 8, CKPT_VERSION_MAJOR);
    put16(hdr + 10, (uint16_t)minor);
    put32(hdr + 12, HEADER_BYTES);
    put64(hdr + 24, xxh64(hdr, 24, 0));
    if (out_write(o, hdr, sizeof hdr, 1, 0) != 0) return -1;

    CkptSectionInfo sec[5];
    int ns = 0;
    size_t nbytes = meta->num_params * sizeof(float);
    uint32_t codec = e->urgent ? CKPT_CODEC_RAW : CKPT_CODEC_SHUFFLE_ZSTD;
    Sha256 sha;
    sha256_init(&sha);
    if (out_section(o, e, CKPT_SEC_WEIGHTS, codec, 4, weights, nbytes, &sec[ns++], &sha) ||
        (momentum && out_section(o, e, CKPT_SEC_MOMENTUM, codec, 4, momentum, nbytes, &sec[ns++], NULL)) ||
        (average && out_section(o, e, CKPT_SEC_AVERAGE, codec, 4, average, nbytes, &sec[ns++], NULL)))
        return -1;
    if (meta->class_names && meta->num_class_names > 0 &&
        out_section(o, e, CKPT_SEC_CLASSES, CKPT_CODEC_RAW, 1, meta->class_names, strlen(meta->class_names),
                    &sec[ns++], NULL))
        return -1;

    CkptMeta m = *meta; /* shallow: only the scalars change */
    uint8_t digest[32];
    sha256_final(&sha, digest);
    sha256_hex(digest, m.params_sha256);
    m.version_major = CKPT_VERSION_MAJOR;
    m.version_minor = minor;
    if (!m.class_names) m.num_class_names = 0;
    if (m.created_unix == 0) m.created_unix = (int64_t)time(NULL);
    Text t = {0};
    if (meta_encode(&m, &t) != 0) {
        free(t.s);
        o->err_no = ENOMEM;
        o->what = "allocate";
        return -1;
    }
    int rc = out_section(o, e, CKPT_SEC_META, CKPT_CODEC_RAW, 1, t.s, t.len, &sec[ns++], NULL);
    free(t.s);
    if (rc) return -1;

    uint8_t table[5 * ENTRY_BYTES];
    for (int i = 0; i < ns; i++) entry_pack(table + i * ENTRY_BYTES, &sec[i]);
    uint64_t table_off = o->written;
    if (out_write(o, table, (size_t)ns * ENTRY_BYTES, 1, 0) != 0) return -1;
    uint8_t tr[TRAILER_BYTES] = {0};
    put64(tr, table_off);
    put32(tr + 8, (uint32_t)ns);
    put32(tr + 12, ENTRY_BYTES);
    put64(tr + 16, xxh64(table, (size_t)ns * ENTRY_BYTES, 0));
    put64(tr + 24, o->written + TRAILER_BYTES);
    if (out_write(o, tr, 32, 1, 0) != 0) return -1;
    put64(tr + 32, xxh64_digest(&o->file));
    memcpy(tr + 40, ckpt_end_magic, 8);
    return out_write(o, tr + 32, 16, 0, 0);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    /* some file systems cannot fsync a directory; the rename is then as durable as they allow */
    return rc != 0 && errno != EINVAL && errno != ENOTSUP ? -1 : 0;
}

static const char *errno_hint(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return "free space on that file system or lower --keep";
    case EIO: return "the disk reported an I/O error: check it";
    case EACCES:
    case EPERM:
    case EROFS: return "check that the directory is writable";
    case ENOENT: return "check that the directory exists";
    default: return "check the directory and the disk";
    }
}

static atomic_uint temp_counter;

/* Temp file, body(ctx, Out*), fsync, close, rename, fsync dir; cleans up. */
static int write_atomic(const char *path, int (*body)(Out *, void *), void *ctx, int urgent, CkptIoFault fault,
                        void *fault_ctx, uint64_t *bytes, char *err, size_t errlen)
{
    char dir[4096], tmp[4200];
    ckpt_dir_of(path, dir, sizeof dir);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.tmp.%ld.%u", dir, base, (long)getpid(),
                     atomic_fetch_add(&temp_counter, 1));
    if (n < 0 || (size_t)n >= sizeof tmp) {
        snprintf(err, errlen, "path too long: %.100s", path);
        return -1;
    }
    Out o = {.fd = -1, .path = path, .fault = fault, .fault_ctx = fault_ctx};
    xxh64_init(&o.file, 0);
    o.fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (o.fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot create %s: %s; %s", tmp, strerror(e), errno_hint(e));
        return -1;
    }
    int rc = body(&o, ctx);
    /* urgent: the complete file gets its name first; a kill after the rename
     * loses nothing, and the flush follows */
    if (rc == 0 && urgent && rename(tmp, path) != 0) {
        o.err_no = errno;
        o.what = "rename";
        rc = -1;
    }
    if (rc == 0) {
        int injected = fault ? fault(fault_ctx, path, o.written) : 0;
        if (injected || fsync(o.fd) != 0) {
            o.err_no = injected ? injected : errno;
            o.what = "fsync";
            rc = -1;
        }
    }
    if (close(o.fd) != 0 && rc == 0) {
        o.err_no = errno;
        o.what = "close";
        rc = -1;
    }
    if (rc == 0 && !urgent && rename(tmp, path) != 0) {
        o.err_no = errno;
        o.what = "rename";
        rc = -1;
    }
    if (rc != 0 && urgent && o.what && strcmp(o.what, "rename") != 0 && !o.zstd_error && strcmp(o.what, "write") != 0) {
        /* renamed complete, then the flush failed: the file is there, in the page cache */
        snprintf(err, errlen, "%s was written but not flushed to disk (%s: %s): it holds the state, but may not survive "
                 "a power cut", path, o.what, strerror(o.err_no));
        return -1;
    }
    if (rc != 0) {
        unlink(tmp);
        if (o.zstd_error)
            snprintf(err, errlen, "writing %s failed: zstd: %s; the temporary file was removed and older checkpoints are intact",
                     path, o.zstd_error);
        else
            snprintf(err, errlen,
                     "writing %s failed (%s after %llu bytes: %s); the temporary file was removed and older "
                     "checkpoints are intact; %s",
                     path, o.what ? o.what : "write", (unsigned long long)o.written, strerror(o.err_no),
                     errno_hint(o.err_no));
        return -1;
    }
    if (fsync_dir(dir) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s was written but fsync of its directory %s failed: %s; it may not survive a power cut",
                 path, dir, strerror(e));
        return -1;
    }
    if (bytes) *bytes = o.written;
    return 0;
}

typedef struct {
    CkptEncoder *e;
    const CkptMeta *meta;
    const float *w, *m, *a;
} CkptBody;

static int ckpt_body(Out *o, void *ctx)
{
    CkptBody *b = ctx;
    return out_checkpoint(o, b->e, b->meta, b->w, b->m, b->a);
}

int ckpt_write_atomic(CkptEncoder *e, const char *path, const CkptMeta *meta, const float *weights,
                      const float *momentum, const float *average, CkptIoFault fault, void *fault_ctx,
                      uint64_t *file_bytes, char *err, size_t errlen)
{
    if (!weights || !momentum != !average || meta->num_params == 0) {
        snprintf(err, errlen, "a checkpoint needs weights, and momentum and average or neither (slim), of "
                 "num_params > 0 floats");
        return -1;
    }
    /* extra lines must read back: key=value with a key the format does not define */
    for (const char *p = meta->extra; p && *p;) {
        const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
        if (!nl || !eq || eq > nl || !key_ok(p, (size_t)(eq - p)) || field_find(p, (size_t)(eq - p))) {
            snprintf(err, errlen, "checkpoint metadata extra line '%.40s' is not key=value with a new key; "
                     "use ckpt_meta_add_extra", p);
            return -1;
        }
        p = nl + 1;
    }
    CkptBody b = {e, meta, weights, momentum, average};
    return write_atomic(path, ckpt_body, &b, e->urgent, fault, fault_ctx, file_bytes, err, errlen);
}

typedef struct {
    const void *head, *body;
    size_t head_len, body_len;
} BytesBody;

static int bytes_body(Out *o, void *ctx)
{
    BytesBody *b = ctx;
    if (b->head_len && out_write(o, b->head, b->head_len, 0, 0) != 0) return -1;
    return b->body_len ? out_write(o, b->body, b->body_len, 0, 0) : 0;
}

int ckpt_write_bytes_atomic(const char *path, const void *head, size_t head_len, const void *body,
                            size_t body_len, CkptIoFault fault, void *fault_ctx, char *err, size_t errlen)
{
    BytesBody b = {head, body, head_len, body_len};
    return write_atomic(path, bytes_body, &b, 0, fault, fault_ctx, NULL, err, errlen);
}

int ckpt_save(const char *path, const CkptMeta *meta, const float *weights, const float *momentum,
              const float *average, int zstd_level, int zstd_threads, char *err, size_t errlen)
{
    CkptEncoder e;
    if (ckpt_encoder_init(&e, zstd_level, zstd_threads, err, errlen) != 0) return -1;
    int rc = ckpt_write_atomic(&e, path, meta, weights, momentum, average, NULL, NULL, NULL, err, errlen);
    ckpt_encoder_free(&e);
    return rc;
}

/* ---- reading ---- */

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
        if (planes) unshuffle4(planes, s->raw_bytes / 4, dst);
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
    if (r->size <= HEADER_BYTES) return "at the end of the header";
    size_t n = (size_t)(r->size - HEADER_BYTES), off = 0;
    uint8_t *b = malloc(n);
    const char *where = "somewhere after the header";
    if (!b || pread_full(r->fd, b, n, HEADER_BYTES) != 0) goto out;
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
    put32(entry0, CKPT_SEC_WEIGHTS);
    put32(entry0 + 4, CKPT_CODEC_SHUFFLE_ZSTD);
    put32(entry0 + 8, 4);
    put64(entry0 + 16, HEADER_BYTES);
    const uint8_t *meta = memmem(b + off, n - off, "format_version=", 15);
    const uint8_t *table = meta ? memmem(meta, (size_t)(b + n - meta), entry0, sizeof entry0) : NULL;
    if (!meta) {
        where = off == n ? "right after section 'average'" : "inside the class names (or the metadata)";
    } else if (!table) {
        where = "inside the metadata";
    } else {
        size_t nsec = meta > b + off ? 5 : 4; /* the class names are a section when present */
        where = (size_t)(b + n - table) < nsec * ENTRY_BYTES ? "inside the section table" : "inside the trailer";
    }
out:
    free(b);
    return where;
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
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (r->fd < 0 || fstat(r->fd, &st) != 0) {
        snprintf(err, errlen, "cannot open checkpoint %s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        goto fail;
    }
    r->size = (uint64_t)st.st_size;
    uint8_t hdr[HEADER_BYTES];
    size_t hn = r->size < HEADER_BYTES ? (size_t)r->size : HEADER_BYTES;
    if (pread_full(r->fd, hdr, hn, 0) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    if (r->size == 0) {
        snprintf(err, errlen, "%s is empty (0 bytes): not a checkpoint, or one whose write never began", path);
        goto fail;
    }
    if (hn < 8 || memcmp(hdr, ckpt_magic, 8) != 0) {
        int same = 0;
        for (size_t i = 0; i < hn && i < 8; i++) same += hdr[i] == ckpt_magic[i];
        if (hn < 8 && memcmp(hdr, ckpt_magic, hn) == 0)
            snprintf(err, errlen, "%s: truncated: %llu bytes, shorter than the header", path,
                     (unsigned long long)r->size);
        else if (same == 7) /* one byte off: a damaged checkpoint, not another kind of file */
            snprintf(err, errlen, "%s: the header is damaged (one byte of its magic number differs); use an older "
                     "checkpoint", path);
        else
            snprintf(err, errlen, "%s: not a googlenet checkpoint (wrong magic number)", path);
        goto fail;
    }
    if (hn < HEADER_BYTES) {
        snprintf(err, errlen, "%s: truncated: %llu bytes, shorter than the header; use an older checkpoint", path,
                 (unsigned long long)r->size);
        goto fail;
    }
    int major = get16(hdr + 8), minor = get16(hdr + 10);
    int hdr_ok = get64(hdr + 24) == xxh64(hdr, 24, 0);
    if (!hdr_ok) {
        snprintf(err, errlen, "%s: the header is damaged (checksum mismatch; version field reads %d.%d)", path,
                 major, minor);
        goto fail;
    }
    if (major > CKPT_VERSION_MAJOR) {
        snprintf(err, errlen, "%s: checkpoint format version %d.%d is newer than this build reads (%d.x); use a "
                 "newer bin/googlenet", path, major, minor, CKPT_VERSION_MAJOR);
        goto fail;
    }
    if (major < 1 || get32(hdr + 12) != HEADER_BYTES) {
        snprintf(err, errlen, "%s: unsupported header (version %d.%d, %u header bytes)", path, major, minor,
                 get32(hdr + 12));
        goto fail;
    }
    r->meta.version_major = major;
    r->meta.version_minor = minor;
    uint8_t tr[TRAILER_BYTES];
    if (r->size < HEADER_BYTES + TRAILER_BYTES || pread_full(r->fd, tr, TRAILER_BYTES, r->size - TRAILER_BYTES) != 0 ||
        memcmp(tr + 40, ckpt_end_magic, 8) != 0) {
        if (r->size >= HEADER_BYTES + TRAILER_BYTES && get64(tr + 24) == r->size) /* complete, by its own count */
            snprintf(err, errlen, "%s: the trailer is damaged (its end marker); use an older checkpoint", path);
        else
            snprintf(err, errlen, "%s: truncated or cut short while being written: the file ends at byte %llu, %s; "
                     "use an older checkpoint", path, (unsigned long long)r->size, truncation_region(r));
        goto fail;
    }
    uint64_t table_off = get64(tr), file_bytes = get64(tr + 24);
    uint32_t nsec = get32(tr + 8), entry = get32(tr + 12);
    r->file_xxh64 = get64(tr + 32);
    if (file_bytes != r->size) {
        snprintf(err, errlen, "%s: the file has %llu bytes but its trailer says %llu: truncated or damaged", path,
                 (unsigned long long)r->size, (unsigned long long)file_bytes);
        goto fail;
    }
    if (entry != ENTRY_BYTES || nsec == 0 || nsec > MAX_SECTIONS || table_off < HEADER_BYTES ||
        table_off + (uint64_t)nsec * ENTRY_BYTES != r->size - TRAILER_BYTES) {
        snprintf(err, errlen, "%s: the trailer is damaged (section table at %llu, %u entries of %u bytes)", path,
                 (unsigned long long)table_off, nsec, entry);
        goto fail;
    }
    uint8_t *table = malloc((size_t)nsec * ENTRY_BYTES);
    r->sec = calloc(nsec, sizeof *r->sec);
    if (!table || !r->sec) {
        free(table);
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (pread_full(r->fd, table, (size_t)nsec * ENTRY_BYTES, table_off) != 0 ||
        xxh64(table, (size_t)nsec * ENTRY_BYTES, 0) != get64(tr + 16)) {
        free(table);
        /* the table or the copy of its checksum in the trailer: no way to tell which */
        snprintf(err, errlen, "%s: the section table (or its checksum in the trailer) is damaged (checksum "
                 "mismatch); use an older checkpoint", path);
        goto fail;
    }
    r->nsec = (int)nsec;
    for (uint32_t i = 0; i < nsec; i++) entry_unpack(table + i * ENTRY_BYTES, &r->sec[i]);
    free(table);
    for (int i = 0; i < r->nsec; i++) {
        const CkptSectionInfo *s = &r->sec[i];
        int known = s->kind >= CKPT_SEC_META && s->kind <= CKPT_SEC_AVERAGE;
        if (s->offset < HEADER_BYTES || s->offset > table_off || s->stored_bytes > table_off - s->offset) {
            snprintf(err, errlen, "%s: section %d (%s) lies outside the file", path, i, ckpt_section_name(s->kind));
            goto fail;
        }
        if (known && find_section(r, s->kind) != s) {
            snprintf(err, errlen, "%s: section '%s' appears twice", path, ckpt_section_name(s->kind));
            goto fail;
        }
        int is_float = s->kind >= CKPT_SEC_WEIGHTS && s->kind <= CKPT_SEC_AVERAGE;
        if (known && (s->codec > CKPT_CODEC_SHUFFLE_ZSTD || s->elem_size != (is_float ? 4u : 1u) ||
                      (s->codec == CKPT_CODEC_RAW && s->stored_bytes != s->raw_bytes) ||
                      (!is_float && (s->codec != CKPT_CODEC_RAW || s->raw_bytes > MAX_TEXT_BYTES)) ||
                      (is_float && s->raw_bytes % 4 != 0))) {
            snprintf(err, errlen, "%s: section '%s' has an impossible codec or size (codec %u, %llu bytes)", path,
                     ckpt_section_name(s->kind), s->codec, (unsigned long long)s->raw_bytes);
            goto fail;
        }
    }
    const CkptSectionInfo *ms = find_section(r, CKPT_SEC_META);
    if (!ms) {
        snprintf(err, errlen, "%s: no metadata section", path);
        goto fail;
    }
    char *text = malloc(ms->raw_bytes + 1);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (section_decode(r, ms, text, err, errlen) != 0) {
        free(text);
        goto fail;
    }
    text[ms->raw_bytes] = 0;
    char perr[200];
    int prc = meta_parse(text, ms->raw_bytes, &r->meta, perr, sizeof perr);
    free(text);
    if (prc != 0) {
        snprintf(err, errlen, "%s: %s", path, perr);
        goto fail;
    }
    r->meta.version_major = major;
    r->meta.version_minor = minor;
    uint64_t want = (uint64_t)r->meta.num_params * 4;
    if (r->meta.num_params == 0 || r->meta.num_params > ((size_t)1 << 36)) {
        snprintf(err, errlen, "%s: metadata says %zu parameters", path, r->meta.num_params);
        goto fail;
    }
    for (uint32_t k = CKPT_SEC_WEIGHTS; k <= CKPT_SEC_AVERAGE; k++) {
        const CkptSectionInfo *s = find_section(r, k);
        if (!s && k != CKPT_SEC_WEIGHTS) continue; /* a slim checkpoint */
        if (!s || s->raw_bytes != want) {
            snprintf(err, errlen, "%s: section '%s' %s, the metadata says %zu parameters", path,
                     ckpt_section_name(k), s ? "has another size" : "is missing", r->meta.num_params);
            goto fail;
        }
    }
    const CkptSectionInfo *cs = find_section(r, CKPT_SEC_CLASSES);
    if (cs) {
        char *names = malloc(cs->raw_bytes + 1);
        if (!names) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if (section_decode(r, cs, names, err, errlen) != 0) {
            free(names);
            goto fail;
        }
        names[cs->raw_bytes] = 0;
        int lines = 0;
        for (uint64_t i = 0; i < cs->raw_bytes; i++) lines += names[i] == '\n';
        if (strlen(names) != cs->raw_bytes || lines != r->meta.num_class_names ||
            (cs->raw_bytes && names[cs->raw_bytes - 1] != '\n')) {
            free(names);
            snprintf(err, errlen, "%s: the class names section does not hold the %d names the metadata says", path,
                     r->meta.num_class_names);
            goto fail;
        }
        r->meta.class_names = names;
    } else if (r->meta.num_class_names != 0) {
        snprintf(err, errlen, "%s: metadata lists %d class names but the section is missing", path,
                 r->meta.num_class_names);
        goto fail;
    }
    return r;
fail:
    ckpt_close(r);
    return NULL;
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

/* ckpt_load, telling apart a file that belongs to another model (-2: its
 * parameter count differs) from one that is damaged or unreadable (-1). */
static int load_file(const char *path, CkptMeta *meta, float *weights, float *momentum, float *average,
                     size_t num_params, char *err, size_t errlen)
{
    CkptReader *r = ckpt_open(path, err, errlen);
    if (!r) return -1;
    int rc = -1;
    if (r->meta.num_params != num_params) {
        snprintf(err, errlen, "%s holds %zu parameters and the model %zu", path, r->meta.num_params, num_params);
        rc = -2;
        goto out;
    }
    if ((momentum && !find_section(r, CKPT_SEC_MOMENTUM)) || (average && !find_section(r, CKPT_SEC_AVERAGE))) {
        char set[16] = "";
        ckpt_meta_get_extra(&r->meta, CKPT_EXTRA_SLIM, set, sizeof set);
        snprintf(err, errlen, "%s is slim (%s%s, no optimizer state): evaluate it, or start a new run from it with "
                 "--init; it cannot be resumed", path, set[0] ? "its weights are the run's " : "weights only",
                 set[0] ? (strcmp(set, "raw") == 0 ? "last weights" : "Polyak average") : "");
        rc = -3;
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
    rc = 0;
out:
    ckpt_close(r);
    return rc;
}

int ckpt_load(const char *path, CkptMeta *meta, float *weights, float *momentum, float *average,
              size_t num_params, char *err, size_t errlen)
{
    return load_file(path, meta, weights, momentum, average, num_params, err, errlen) == 0 ? 0 : -1;
}

/* ---- --resume auto ---- */

static void report_add(char *report, size_t len, const char *line)
{
    size_t used = strlen(report);
    if (used + 1 < len) snprintf(report + used, len - used, "%s\n", line);
}

/* Loading a candidate is verifying it: reading the three sections checks
 * their hashes and the weights' SHA-256, then the file's checksum. */
int ckpt_load_latest(const char *dir, char *path, size_t pathlen, CkptMeta *meta, float *weights,
                     float *momentum, float *average, size_t num_params, char *report, size_t reportlen,
                     char *err, size_t errlen)
{
    if (reportlen) report[0] = 0;
    CkptEntry *f;
    long nl = ckpt_list(dir, &f, err, errlen);
    if (nl < 0) return -1;
    size_t n = (size_t)nl;

    /* the pointer is a hint for people and tools; the scan decides */
    char latest_path[4200], target[256] = "";
    snprintf(latest_path, sizeof latest_path, "%s/%s", dir, CKPT_LATEST);
    FILE *lf = fopen(latest_path, "r");
    if (lf) {
        if (fgets(target, sizeof target, lf)) target[strcspn(target, "\r\n")] = 0;
        fclose(lf);
    }
    char line[4800], full[4400];
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        snprintf(full, sizeof full, "%s/%s", dir, f[i].name);
        char why[1024];
        int rc = load_file(full, meta, weights, momentum, average, num_params, why, sizeof why);
        if (rc == 0) {
            snprintf(path, pathlen, "%s", full);
            found = 1;
        } else if (rc == -3) {
            snprintf(line, sizeof line, "skipping checkpoint %s: %s", f[i].name, why);
            report_add(report, reportlen, line);
        } else if (rc == -2) {
            /* sound, but of another model: not a reason to fall back to an older one */
            snprintf(path, pathlen, "%s", full);
            snprintf(err, errlen, "%s; give --out a directory of this model's run", why);
            free(f);
            return -1;
        } else {
            snprintf(line, sizeof line, "skipping checkpoint %s (damaged or unreadable): %s", f[i].name, why);
            report_add(report, reportlen, line);
        }
    }
    if (found && target[0] && strcmp(target, strrchr(path, '/') + 1) != 0) {
        snprintf(line, sizeof line, "note: %s/%s names %s, but the newest checkpoint that verifies is %s", dir,
                 CKPT_LATEST, target, strrchr(path, '/') + 1);
        report_add(report, reportlen, line);
    }
    if (!found) {
        if (n) snprintf(line, sizeof line, "none of the %zu checkpoints in %s verifies", n, dir);
        else snprintf(line, sizeof line, "no checkpoint (ckpt-*.gnck) in %s", dir);
        report_add(report, reportlen, line);
    }
    free(f);
    return found;
}
