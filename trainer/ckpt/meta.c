/* ckpt/meta.c: CkptMeta and the meta section that stores it: "key=value\n"
 * text, one key per field in a table (meta_fields), values escaped so that
 * any byte but NUL reads back. Keys this build does not know are kept in
 * `extra`, so a newer writer's metadata survives a round trip. No files, no
 * printing. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trainer/ckpt/internal.h"

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

/* The fields and then the extra lines into t. */
static void meta_encode_text(const CkptMeta *m, Text *t)
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
}

char *ckpt_meta_encode(const CkptMeta *m, size_t *len)
{
    Text t = {0};
    meta_encode_text(m, &t);
    if (t.oom) {
        free(t.s);
        return NULL;
    }
    *len = t.len;
    return t.s;
}

int ckpt_meta_check_extra(const CkptMeta *m, char *err, size_t errlen)
{
    for (const char *p = m->extra; p && *p;) {
        const char *nl = strchr(p, '\n'), *eq = strchr(p, '=');
        if (!nl || !eq || eq > nl || !key_ok(p, (size_t)(eq - p)) || field_find(p, (size_t)(eq - p))) {
            snprintf(err, errlen, "checkpoint metadata extra line '%.40s' is not key=value with a new key; "
                     "use ckpt_meta_add_extra", p);
            return -1;
        }
        p = nl + 1;
    }
    return 0;
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

/* The value of one line, from eq + 1 to nl, unescaped into val (which has
 * room for it); -1 with err on a NUL byte or a bad escape. */
static int value_unescape(const char *eq, const char *nl, size_t line_no, char *val, char *err, size_t errlen)
{
    size_t vn = 0;
    for (const char *q = eq + 1; q < nl; q++) {
        char c = *q;
        if (c == 0) {
            snprintf(err, errlen, "metadata line %zu holds a NUL byte", line_no);
            return -1;
        }
        if (c == '\\') {
            if (q + 1 >= nl || (q[1] != '\\' && q[1] != 'n' && q[1] != 'r')) {
                snprintf(err, errlen, "metadata line %zu has a bad escape", line_no);
                return -1;
            }
            q++;
            c = *q == 'n' ? '\n' : *q == 'r' ? '\r' : '\\';
        }
        val[vn++] = c;
    }
    val[vn] = 0;
    return 0;
}

int ckpt_meta_parse(const char *text, size_t len, CkptMeta *m, char *err, size_t errlen)
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
        if (value_unescape(eq, nl, line_no, val, err, errlen) != 0) goto out;
        const MetaField *f = field_find(line, (size_t)(eq - line));
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
