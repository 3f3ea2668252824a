/* dataset.c: scanning a class tree, a flat directory with a label file or a
 * shard directory into one index; reading items; the serialised index and its
 * cache file. Never decodes images, never prints, never exits. */
#include "dataloader/dataset.h"


#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "comm/clock.h"
#include "dataloader/atomic_file.h"
#include "dataloader/le.h"
#include "dataloader/shard.h"

/* Encoded files above this are refused before reading: no image the loader
 * accepts is that large, and it keeps a stray video from filling memory. */
#define DATASET_MAX_FILE_BYTES (1LL << 30)
#define DATASET_INDEX_MAGIC "GNETIDX1"
#define DATASET_INDEX_VERSION 1u
#define DATASET_CACHE_MAGIC "GNETCACH"
/* Integer labels without a classes file make classes 0..max label: a label
 * above this is a mistake (a file name, an id), not a class of a real run. */
#define DATASET_MAX_NUMERIC_CLASSES (1 << 20)

typedef struct {
    uint64_t off;   /* shards: byte offset in the shard file */
    uint32_t size;  /* shards: byte count */
    uint32_t crc;   /* shards: crc32c of the bytes */
    uint32_t name;  /* offset of the name in the pool */
    int32_t label;
    int32_t group;  /* shards: shard number */
} Item;

struct Dataset {
    DatasetKind kind;
    char *root;
    Item *items; /* (n) */
    size_t n, items_cap;
    char *pool;  /* NUL-terminated names back to back */
    size_t pool_len, pool_cap;
    uint32_t *class_name; /* (nclasses) pool offsets */
    int nclasses;
    uint32_t *group_name; /* (ngroups) pool offsets: shard file names */
    int ngroups;
    int *fd;              /* (ngroups) open shard files, -1 when closed */
    double scan_s;
    int from_cache;
};

/* ---- small growable pieces ---- */

static int pool_add(Dataset *ds, const char *s, size_t len, uint32_t *off)
{
    if (ds->pool_len + len + 1 > UINT32_MAX) return -1;
    if (ds->pool_len + len + 1 > ds->pool_cap) {
        size_t cap = ds->pool_cap ? ds->pool_cap * 2 : 1 << 16;
        while (cap < ds->pool_len + len + 1) cap *= 2;
        char *p = realloc(ds->pool, cap);
        if (!p) return -1;
        ds->pool = p;
        ds->pool_cap = cap;
    }
    memcpy(ds->pool + ds->pool_len, s, len);
    ds->pool[ds->pool_len + len] = 0;
    *off = (uint32_t)ds->pool_len;
    ds->pool_len += len + 1;
    return 0;
}

static Item *item_add(Dataset *ds)
{
    if (ds->n == ds->items_cap) {
        size_t cap = ds->items_cap ? ds->items_cap * 2 : 1024;
        Item *p = realloc(ds->items, cap * sizeof *p);
        if (!p) return NULL;
        ds->items = p;
        ds->items_cap = cap;
    }
    Item *it = &ds->items[ds->n++];
    memset(it, 0, sizeof *it);
    return it;
}

typedef struct {
    char **v;
    size_t n, cap;
} StrVec;

static int strvec_push(StrVec *sv, const char *s)
{
    if (sv->n == sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 64;
        char **p = realloc(sv->v, cap * sizeof *p);
        if (!p) return -1;
        sv->v = p;
        sv->cap = cap;
    }
    sv->v[sv->n] = strdup(s);
    if (!sv->v[sv->n]) return -1;
    sv->n++;
    return 0;
}

static void strvec_free(StrVec *sv)
{
    for (size_t i = 0; i < sv->n; i++) free(sv->v[i]);
    free(sv->v);
    memset(sv, 0, sizeof *sv);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Reads a whole (small) text or index file; NUL-terminated. */
static char *read_whole(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap) break;
        cap *= 2;
        char *p = realloc(buf, cap + 1);
        if (!p) {
            free(buf);
            buf = NULL;
        } else {
            buf = p;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        snprintf(err, errlen, "cannot read %s: %s", path, buf ? "I/O error" : "out of memory");
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Whether a directory entry is a directory / regular file (following links). */
static int entry_kind(const char *dir, const struct dirent *e, int *is_dir)
{
    if (e->d_type == DT_DIR) {
        *is_dir = 1;
        return 1;
    }
    if (e->d_type == DT_REG) {
        *is_dir = 0;
        return 1;
    }
    if (e->d_type != DT_UNKNOWN && e->d_type != DT_LNK) return 0;
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) return 0;
    if (stat(path, &st) != 0) return 0;
    if (S_ISDIR(st.st_mode)) {
        *is_dir = 1;
        return 1;
    }
    if (S_ISREG(st.st_mode)) {
        *is_dir = 0;
        return 1;
    }
    return 0;
}

/* Sorted names of the non-hidden files and directories of dir. */
static int list_dir(const char *dir, StrVec *files, StrVec *dirs, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "cannot open directory %s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int is_dir;
        if (!entry_kind(dir, e, &is_dir)) continue;
        StrVec *sv = is_dir ? dirs : files;
        if (sv && strvec_push(sv, e->d_name) != 0) {
            closedir(d);
            snprintf(err, errlen, "out of memory listing %s", dir);
            return -1;
        }
    }
    closedir(d);
    if (files && files->n > 1) qsort(files->v, files->n, sizeof *files->v, cmp_str);
    if (dirs && dirs->n > 1) qsort(dirs->v, dirs->n, sizeof *dirs->v, cmp_str);
    return 0;
}

/* ---- classes file ---- */

typedef struct {
    const char *name;
    int label;
} NameLabel;

static int cmp_namelabel(const void *a, const void *b)
{
    return strcmp(((const NameLabel *)a)->name, ((const NameLabel *)b)->name);
}

/* One class id per line (first whitespace token); blank and '#' lines skipped.
 * Adds the names to ds->pool/class_name in file order. */
static int classes_load(Dataset *ds, const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = read_whole(path, &len, err, errlen);
    if (!text) return -1;
    int cap = 1024, n = 0, line = 0, rc = -1;
    uint32_t *names = malloc(cap * sizeof *names);
    char *save = NULL;
    for (char *ln = strtok_r(text, "\n", &save); ln && names; ln = strtok_r(NULL, "\n", &save)) {
        line++;
        ln += strspn(ln, " \t\r");
        if (!*ln || *ln == '#') continue;
        size_t tl = strcspn(ln, " \t\r,");
        if (tl == 0) {
            snprintf(err, errlen, "classes file %s line %d: no class id before '%c'; one id per line expected", path,
                     line, *ln);
            goto out;
        }
        if (n == cap) {
            cap *= 2;
            uint32_t *p = realloc(names, cap * sizeof *p);
            if (!p) break;
            names = p;
        }
        if (pool_add(ds, ln, tl, &names[n]) != 0) break;
        n++;
    }
    if (!names) {
        snprintf(err, errlen, "out of memory reading %s", path);
        goto out;
    }
    if (n == 0) {
        snprintf(err, errlen, "classes file %s lists no classes (one id per line expected)", path);
        goto out;
    }
    NameLabel *sorted = malloc(n * sizeof *sorted);
    if (!sorted) {
        snprintf(err, errlen, "out of memory reading %s", path);
        goto out;
    }
    for (int i = 0; i < n; i++) sorted[i] = (NameLabel){ds->pool + names[i], i};
    qsort(sorted, n, sizeof *sorted, cmp_namelabel);
    for (int i = 1; i < n; i++)
        if (strcmp(sorted[i].name, sorted[i - 1].name) == 0) {
            snprintf(err, errlen, "classes file %s lists '%s' twice; each class must appear once", path,
                     sorted[i].name);
            free(sorted);
            goto out;
        }
    free(sorted);
    ds->class_name = names;
    ds->nclasses = n;
    names = NULL;
    rc = 0;
out:
    free(names);
    free(text);
    return rc;
}

/* Sorted (name, label) table of the classes, for lookups; caller frees. */
static NameLabel *classes_sorted(const Dataset *ds)
{
    NameLabel *t = malloc((size_t)(ds->nclasses ? ds->nclasses : 1) * sizeof *t);
    if (!t) return NULL;
    for (int i = 0; i < ds->nclasses; i++) t[i] = (NameLabel){ds->pool + ds->class_name[i], i};
    qsort(t, ds->nclasses, sizeof *t, cmp_namelabel);
    return t;
}

static int class_lookup(const NameLabel *t, int n, const char *name)
{
    NameLabel key = {name, 0};
    const NameLabel *hit = bsearch(&key, t, n, sizeof *t, cmp_namelabel);
    return hit ? hit->label : -1;
}

/* ---- the class tree ---- */

typedef struct {
    char (*path)[PATH_MAX];
    size_t n, cap;
} DirStack;

/* Adds every non-hidden file under root/rel (recursively, sorted) with label. */
static int tree_walk(Dataset *ds, const char *root, const char *rel, int label, StrVec *visited,
                     char *err, size_t errlen)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/%s", root, rel) >= (int)sizeof dir) {
        snprintf(err, errlen, "path too long: %s/%s", root, rel);
        return -1;
    }
    if (visited && strvec_push(visited, rel) != 0) {
        snprintf(err, errlen, "out of memory scanning %s", dir);
        return -1;
    }
    StrVec files = {0}, dirs = {0};
    int rc = list_dir(dir, &files, &dirs, err, errlen);
    char name[PATH_MAX];
    for (size_t i = 0; rc == 0 && i < files.n; i++) {
        int nl = snprintf(name, sizeof name, "%s/%s", rel, files.v[i]);
        Item *it = nl < (int)sizeof name ? item_add(ds) : NULL;
        if (!it || pool_add(ds, name, (size_t)nl, &it->name) != 0) {
            snprintf(err, errlen, "out of memory (or a name too long) scanning %s", dir);
            rc = -1;
            break;
        }
        it->label = label;
    }
    for (size_t i = 0; rc == 0 && i < dirs.n; i++) {
        if (snprintf(name, sizeof name, "%s/%s", rel, dirs.v[i]) >= (int)sizeof name) continue;
        rc = tree_walk(ds, root, name, label, visited, err, errlen);
    }
    strvec_free(&files);
    strvec_free(&dirs);
    return rc;
}

static int tree_scan(Dataset *ds, const DatasetOptions *opt, const StrVec *class_dirs, StrVec *visited,
                     char *err, size_t errlen)
{
    ds->kind = DATASET_TREE;
    NameLabel *table = NULL;
    if (opt->classes_file) {
        if (classes_load(ds, opt->classes_file, err, errlen) != 0) return -1;
        table = classes_sorted(ds);
        if (!table) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    } else {
        ds->nclasses = (int)class_dirs->n;
        ds->class_name = malloc(class_dirs->n * sizeof *ds->class_name);
        if (!ds->class_name) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < class_dirs->n; i++)
            if (pool_add(ds, class_dirs->v[i], strlen(class_dirs->v[i]), &ds->class_name[i]) != 0) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
    }
    /* every label first: the table points into ds->pool, which the walk grows */
    int *labels = malloc((class_dirs->n ? class_dirs->n : 1) * sizeof *labels);
    if (!labels) {
        free(table);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    for (size_t c = 0; rc == 0 && c < class_dirs->n; c++) {
        labels[c] = (int)c;
        if (table) {
            labels[c] = class_lookup(table, ds->nclasses, class_dirs->v[c]);
            if (labels[c] < 0) {
                snprintf(err, errlen,
                         "class directory %s/%s is not listed in the classes file %s; "
                         "add it there or remove the directory",
                         ds->root, class_dirs->v[c], opt->classes_file);
                rc = -1;
            }
        }
    }
    free(table);
    for (size_t c = 0; rc == 0 && c < class_dirs->n; c++)
        rc = tree_walk(ds, ds->root, class_dirs->v[c], labels[c], visited, err, errlen);
    free(labels);
    return rc;
}

/* ---- flat directory + label file ---- */

typedef struct {
    const char *key; /* file name, or stem for LOC_val_solution.csv */
    const char *file;
} FileKey;

static int cmp_filekey(const void *a, const void *b)
{
    return strcmp(((const FileKey *)a)->key, ((const FileKey *)b)->key);
}

typedef struct {
    char *name;  /* into the label text */
    char *label; /* token: integer or class id */
    int line;
    int value;   /* the label once resolved */
} LabelLine;

static int cmp_labelline(const void *a, const void *b)
{
    return strcmp(((const LabelLine *)a)->name, ((const LabelLine *)b)->name);
}

static int parse_int(const char *s, long *v)
{
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return end != s && *end == 0 && errno == 0;
}

/* The label file's text split into lines (in place): "name label",
 * "label" alone (ILSVRC2012 ground truth: *single) or LOC_val_solution.csv
 * rows (*csv), the format found from the first line. *ll (free it) gets nl
 * lines. 0, or -1 with a reason. */
static int flat_parse_lines(char *text, const char *lf, LabelLine **ll, size_t *nl, int *csv, int *single, char *err,
                            size_t errlen)
{
    size_t cap = 1024;
    *nl = 0;
    *csv = *single = -1;
    if (!(*ll = malloc(cap * sizeof **ll))) return snprintf(err, errlen, "out of memory reading %s", lf), -1;
    int line = 0;
    char *save = NULL;
    for (char *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        line++;
        size_t L = strlen(ln);
        while (L && (ln[L - 1] == '\r' || ln[L - 1] == ' ' || ln[L - 1] == '\t')) ln[--L] = 0;
        ln += strspn(ln, " \t");
        if (!*ln) continue;
        if (*csv < 0) {
            *csv = strncmp(ln, "ImageId,", 8) == 0;
            if (*csv) {
                *single = 0;
                continue; /* the header */
            }
        }
        char *a = ln, *b;
        if (*csv) {
            char *comma = strchr(ln, ',');
            if (!comma) return snprintf(err, errlen, "%s line %d: expected 'ImageId,PredictionString' columns", lf, line), -1;
            *comma = 0;
            b = comma + 1;
            b += strspn(b, " \t");
            b[strcspn(b, " \t\r")] = 0;
        } else {
            size_t t = strcspn(ln, " \t\r,");
            if (ln[t]) {
                ln[t] = 0;
                b = ln + t + 1;
                b += strspn(b, " \t\r,");
                b[strcspn(b, " \t\r")] = 0; /* a label is one token: it becomes a class name */
            } else {
                b = NULL;
            }
            if (*single < 0) *single = b == NULL;
            if (*single != (b == NULL))
                return snprintf(err, errlen, "%s line %d: mixes 'label' and 'name label' lines; use one form", lf, line), -1;
            if (*single) {
                b = a;
                a = NULL;
            }
        }
        if (b && !*b) return snprintf(err, errlen, "%s line %d: no label after '%s'", lf, line, a ? a : ""), -1;
        if (*nl == cap) {
            cap *= 2;
            LabelLine *p = realloc(*ll, cap * sizeof *p);
            if (!p) return snprintf(err, errlen, "out of memory reading %s", lf), -1;
            *ll = p;
        }
        (*ll)[(*nl)++] = (LabelLine){a, b, line, 0};
    }
    if (*nl == 0) return snprintf(err, errlen, "labels file %s has no labels", lf), -1;
    return 0;
}

/* Class ids without a classes file: their sorted set (ImageNet's order)
 * becomes the classes. 0, or -1 when out of memory. */
static int flat_classes_from_ids(Dataset *ds, const LabelLine *ll, size_t nl)
{
    StrVec ids = {0};
    int rc = -1;
    for (size_t i = 0; i < nl; i++)
        if (strvec_push(&ids, ll[i].label) != 0) goto out;
    qsort(ids.v, ids.n, sizeof *ids.v, cmp_str);
    if (!(ds->class_name = malloc((ids.n ? ids.n : 1) * sizeof *ds->class_name))) goto out;
    for (size_t i = 0; i < ids.n; i++) {
        if (i > 0 && strcmp(ids.v[i], ids.v[i - 1]) == 0) continue;
        if (pool_add(ds, ids.v[i], strlen(ids.v[i]), &ds->class_name[ds->nclasses++]) != 0) goto out;
    }
    rc = 0;
out:
    strvec_free(&ids);
    return rc;
}

/* Classes "0".."n-1" for integer labels up to maxl without a classes file.
 * 0, or -1 when out of memory. */
static int flat_numeric_classes(Dataset *ds, int maxl)
{
    ds->nclasses = maxl + 1;
    ds->class_name = malloc((size_t)(ds->nclasses > 0 ? ds->nclasses : 1) * sizeof *ds->class_name);
    if (!ds->class_name) return -1;
    for (int c = 0; c < ds->nclasses; c++) {
        char num[16];
        int k = snprintf(num, sizeof num, "%d", c);
        if (pool_add(ds, num, (size_t)k, &ds->class_name[c]) != 0) return -1;
    }
    return 0;
}

/* Each line's label (ll[i].value): integers (1-based for ground truth:
 * single), or class ids looked up in the classes; also the classes when no
 * classes file gave them. 0, or -1 with a reason. */
static int flat_resolve_labels(Dataset *ds, const DatasetOptions *opt, LabelLine *ll, size_t nl, int single,
                               char *err, size_t errlen)
{
    const char *lf = opt->labels_file;
    long ival;
    int numeric = parse_int(ll[0].label, &ival);
    if (!numeric && !ds->class_name && flat_classes_from_ids(ds, ll, nl) != 0)
        return snprintf(err, errlen, "out of memory reading %s", lf), -1;
    NameLabel *table = NULL;
    if (!numeric && !(table = classes_sorted(ds))) return snprintf(err, errlen, "out of memory reading %s", lf), -1;
    int maxl = -1, rc = -1;
    for (size_t i = 0; i < nl; i++) {
        if (numeric) {
            if (!parse_int(ll[i].label, &ival)) {
                snprintf(err, errlen, "%s line %d: label '%s' is not an integer like the lines before", lf,
                         ll[i].line, ll[i].label);
                goto out;
            }
            if (single == 1) ival -= 1; /* ILSVRC2012 ground truth is 1-based */
            if (ival < 0 || ival >= DATASET_MAX_NUMERIC_CLASSES || (ds->class_name && ival >= ds->nclasses)) {
                int lo = single == 1, hi = (ds->class_name ? ds->nclasses : DATASET_MAX_NUMERIC_CLASSES) - 1 + lo;
                snprintf(err, errlen, "%s line %d: label %s is out of range: labels here run from %d to %d%s", lf,
                         ll[i].line, ll[i].label, lo, hi, lo ? " (ground-truth labels are 1-based)" : "");
                goto out;
            }
            ll[i].value = (int)ival;
        } else {
            ll[i].value = class_lookup(table, ds->nclasses, ll[i].label);
            if (ll[i].value < 0) {
                snprintf(err, errlen, "%s line %d: class '%s' is not in the classes file %s", lf, ll[i].line,
                         ll[i].label, opt->classes_file ? opt->classes_file : "");
                goto out;
            }
        }
        if (ll[i].value > maxl) maxl = ll[i].value;
    }
    if (!ds->class_name && flat_numeric_classes(ds, maxl) != 0) {
        snprintf(err, errlen, "out of memory reading %s", lf);
        goto out;
    }
    rc = 0;
out:
    free(table);
    return rc;
}

/* Ground truth: one label per file, in sorted file-name order. */
static int flat_add_in_order(Dataset *ds, const StrVec *files, const LabelLine *ll, size_t nl, const char *lf,
                             char *err, size_t errlen)
{
    if (nl != files->n)
        return snprintf(err, errlen,
                        "labels file %s has %zu labels but %s has %zu files; ILSVRC2012 ground truth needs "
                        "one line per file in sorted name order",
                        lf, nl, ds->root, files->n), -1;
    for (size_t i = 0; i < nl; i++) {
        Item *it = item_add(ds);
        if (!it || pool_add(ds, files->v[i], strlen(files->v[i]), &it->name) != 0)
            return snprintf(err, errlen, "out of memory reading %s", lf), -1;
        it->label = ll[i].value;
    }
    return 0;
}

/* Named files (by full name, or by stem for the CSV), kept in name order. */
static int flat_add_named(Dataset *ds, const StrVec *files, LabelLine *ll, size_t nl, int csv, const char *lf,
                          char *err, size_t errlen)
{
    FileKey *keys = malloc((files->n ? files->n : 1) * sizeof *keys);
    char **stems = calloc(files->n ? files->n : 1, sizeof *stems);
    int rc = -1;
    if (!keys || !stems) goto oom;
    for (size_t i = 0; i < files->n; i++) {
        keys[i].file = files->v[i];
        keys[i].key = files->v[i];
        if (csv) {
            if (!(stems[i] = strdup(files->v[i]))) goto oom;
            char *dot = strrchr(stems[i], '.');
            if (dot) *dot = 0;
            keys[i].key = stems[i];
        }
    }
    qsort(keys, files->n, sizeof *keys, cmp_filekey);
    qsort(ll, nl, sizeof *ll, cmp_labelline);
    for (size_t i = 0; i < nl; i++) {
        if (i > 0 && strcmp(ll[i].name, ll[i - 1].name) == 0) {
            snprintf(err, errlen, "labels file %s names '%s' twice", lf, ll[i].name);
            goto out;
        }
        FileKey key = {ll[i].name, NULL};
        FileKey *hit = bsearch(&key, keys, files->n, sizeof *keys, cmp_filekey);
        if (!hit) {
            snprintf(err, errlen, "labels file %s names '%s', which is not a file in %s", lf, ll[i].name, ds->root);
            goto out;
        }
        Item *it = item_add(ds);
        if (!it || pool_add(ds, hit->file, strlen(hit->file), &it->name) != 0) goto oom;
        it->label = ll[i].value;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory reading %s", lf);
out:
    if (stems)
        for (size_t i = 0; i < files->n; i++) free(stems[i]);
    free(stems);
    free(keys);
    return rc;
}

/* A flat directory of images with a label file (opt->labels_file). */
static int flat_scan(Dataset *ds, const DatasetOptions *opt, const StrVec *files, char *err, size_t errlen)
{
    ds->kind = DATASET_FLAT;
    const char *lf = opt->labels_file;
    if (opt->classes_file && classes_load(ds, opt->classes_file, err, errlen) != 0) return -1;
    size_t len, nl = 0;
    char *text = read_whole(lf, &len, err, errlen);
    if (!text) return -1;
    LabelLine *ll = NULL;
    int csv, single;
    int rc = flat_parse_lines(text, lf, &ll, &nl, &csv, &single, err, errlen);
    if (rc == 0) rc = flat_resolve_labels(ds, opt, ll, nl, single, err, errlen);
    if (rc == 0)
        rc = single == 1 ? flat_add_in_order(ds, files, ll, nl, lf, err, errlen)
                         : flat_add_named(ds, files, ll, nl, csv, lf, err, errlen);
    free(ll);
    free(text);
    return rc;
}

/* ---- shard directory ---- */

static int shards_open_files(Dataset *ds, char *err, size_t errlen)
{
    ds->fd = malloc((size_t)(ds->ngroups ? ds->ngroups : 1) * sizeof *ds->fd);
    if (!ds->fd) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int g = 0; g < ds->ngroups; g++) ds->fd[g] = -1;
    for (int g = 0; g < ds->ngroups; g++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", ds->root, ds->pool + ds->group_name[g]);
        ds->fd[g] = open(path, O_RDONLY | O_CLOEXEC);
        if (ds->fd[g] < 0) {
            snprintf(err, errlen, "cannot open shard %s: %s", path, strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int shard_read_index(Dataset *ds, int g, const char *path, const DatasetOptions *opt, char *err,
                            size_t errlen)
{
    int fd = ds->fd[g];
    struct stat st;
    uint8_t h[SHARD_HEADER_BYTES];
    if (fstat(fd, &st) != 0 || pread(fd, h, sizeof h, 0) != (ssize_t)sizeof h) {
        snprintf(err, errlen, "shard %s is shorter than its %d-byte header; repack it", path, SHARD_HEADER_BYTES);
        return -1;
    }
    if (memcmp(h, SHARD_MAGIC, 8) != 0) {
        snprintf(err, errlen, "%s is not a shard file (bad magic)", path);
        return -1;
    }
    if (le_get32(h + 8) != SHARD_VERSION || le_get32(h + 12) != SHARD_HEADER_BYTES) {
        snprintf(err, errlen, "shard %s has version %u; this build reads version %u: repack it", path,
                 le_get32(h + 8), SHARD_VERSION);
        return -1;
    }
    uint64_t count = le_get64(h + 16), ioff = le_get64(h + 32), isize = le_get64(h + 40);
    uint32_t icrc = le_get32(h + 48), ncls = le_get32(h + 52);
    uint64_t fsize = (uint64_t)st.st_size;
    if (ioff < SHARD_HEADER_BYTES || ioff > fsize || isize > fsize - ioff || isize > (1ULL << 32)) {
        snprintf(err, errlen, "shard %s is truncated or corrupt: its index lies outside the file; repack it",
                 path);
        return -1;
    }
    /* counts from the header, checked against the index before anything is
     * allocated by them: a class takes at least 2 bytes of it, an item 22 */
    if (ncls > isize / 2 || count > isize / 22) {
        snprintf(err, errlen, "shard %s is corrupt: its header declares %u classes and %llu items, more than its "
                 "%llu-byte index holds; repack it", path, ncls, (unsigned long long)count, (unsigned long long)isize);
        return -1;
    }
    uint8_t *idx = malloc(isize ? isize : 1);
    if (!idx) {
        snprintf(err, errlen, "out of memory reading the index of %s", path);
        return -1;
    }
    int rc = -1;
    if (pread(fd, idx, isize, (off_t)ioff) != (ssize_t)isize) {
        snprintf(err, errlen, "cannot read the index of shard %s", path);
        goto out;
    }
    if (shard_crc32c(0, idx, isize) != icrc) {
        snprintf(err, errlen, "shard %s: index checksum mismatch (the file is corrupt); repack it", path);
        goto out;
    }
    const uint8_t *p = idx, *end = idx + isize;
    /* classes: the first shard defines them, the others must agree */
    if (g == 0 && !opt->classes_file) {
        ds->class_name = malloc((ncls ? ncls : 1) * sizeof *ds->class_name);
        if (!ds->class_name) goto oom;
        ds->nclasses = (int)ncls;
    } else if ((int)ncls != ds->nclasses) {
        snprintf(err, errlen, "shard %s has %u classes but %s %d; shards of one dataset must agree", path, ncls,
                 g == 0 ? "the classes file lists" : "the first shard has", ds->nclasses);
        goto out;
    }
    for (uint32_t c = 0; c < ncls; c++) {
        if (end - p < 2 || end - p - 2 < le_get16(p)) goto corrupt;
        size_t L = le_get16(p);
        const char *name = (const char *)p + 2;
        /* names go into checkpoints, one a line */
        if (L == 0 || memchr(name, '\n', L) || memchr(name, '\r', L) || memchr(name, 0, L)) goto corrupt;
        if (g == 0 && !opt->classes_file) {
            if (pool_add(ds, name, L, &ds->class_name[c]) != 0) goto oom;
        } else {
            const char *have = ds->pool + ds->class_name[c];
            if (strlen(have) != L || memcmp(have, name, L) != 0) {
                snprintf(err, errlen, "shard %s class %u is '%.*s' but %s '%s'; repack or fix --classes-file",
                         path, c, (int)L, name, g == 0 ? "the classes file says" : "the first shard says", have);
                goto out;
            }
        }
        p += 2 + L;
    }
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 22) goto corrupt;
        uint64_t off = le_get64(p);
        uint32_t size = le_get32(p + 8);
        int32_t label = (int32_t)le_get32(p + 12);
        uint32_t crc = le_get32(p + 16);
        size_t L = le_get16(p + 20);
        if ((size_t)(end - p - 22) < L || L == 0 || memchr(p + 22, 0, L)) goto corrupt;
        if (off < SHARD_HEADER_BYTES || off > ioff || size > ioff - off || label < 0 || label >= ds->nclasses)
            goto corrupt;
        Item *it = item_add(ds);
        if (!it || pool_add(ds, (const char *)p + 22, L, &it->name) != 0) goto oom;
        it->off = off;
        it->size = size;
        it->crc = crc;
        it->label = label;
        it->group = g;
        p += 22 + L;
    }
    rc = 0;
    goto out;
corrupt:
    snprintf(err, errlen, "shard %s: index entries overrun the index or the data area (corrupt); repack it", path);
    goto out;
oom:
    snprintf(err, errlen, "out of memory reading the index of %s", path);
out:
    free(idx);
    return rc;
}

static int shards_scan(Dataset *ds, const DatasetOptions *opt, const StrVec *files, char *err, size_t errlen)
{
    ds->kind = DATASET_SHARDS;
    if (opt->classes_file && classes_load(ds, opt->classes_file, err, errlen) != 0) return -1;
    size_t sl = strlen(SHARD_SUFFIX);
    ds->group_name = malloc((files->n ? files->n : 1) * sizeof *ds->group_name);
    if (!ds->group_name) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < files->n; i++) {
        size_t L = strlen(files->v[i]);
        if (L > sl && strcmp(files->v[i] + L - sl, SHARD_SUFFIX) == 0)
            if (pool_add(ds, files->v[i], L, &ds->group_name[ds->ngroups++]) != 0) {
                snprintf(err, errlen, "out of memory");
                return -1;
            }
    }
    if (shards_open_files(ds, err, errlen) != 0) return -1;
    for (int g = 0; g < ds->ngroups; g++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", ds->root, ds->pool + ds->group_name[g]);
        if (shard_read_index(ds, g, path, opt, err, errlen) != 0) return -1;
    }
    return 0;
}

static int dir_has_shards(const StrVec *files)
{
    size_t sl = strlen(SHARD_SUFFIX);
    for (size_t i = 0; i < files->n; i++) {
        size_t L = strlen(files->v[i]);
        if (L > sl && strcmp(files->v[i] + L - sl, SHARD_SUFFIX) == 0) return 1;
    }
    return 0;
}

/* ---- serialisation ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int oom;
} Buf;

static void buf_put(Buf *b, const void *data, size_t n)
{
    if (b->oom || n == 0) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_u32(Buf *b, uint32_t v)
{
    uint8_t t[4];
    le_put32(t, v);
    buf_put(b, t, 4);
}

static void buf_u64(Buf *b, uint64_t v)
{
    uint8_t t[8];
    le_put64(t, v);
    buf_put(b, t, 8);
}

static void buf_str(Buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    buf_u32(b, (uint32_t)n);
    buf_put(b, s, n);
}

typedef struct {
    const uint8_t *p, *end;
    int bad;
} Rd;

static const uint8_t *rd_take(Rd *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p;
    r->p += n;
    return q;
}

static uint32_t rd_u32(Rd *r)
{
    const uint8_t *q = rd_take(r, 4);
    return q ? le_get32(q) : 0;
}

static uint64_t rd_u64(Rd *r)
{
    const uint8_t *q = rd_take(r, 8);
    return q ? le_get64(q) : 0;
}

/* A malloc'd copy of a length-prefixed string, or NULL. */
static char *rd_str(Rd *r)
{
    uint32_t n = rd_u32(r);
    const uint8_t *q = rd_take(r, n);
    if (!q) return NULL;
    char *s = malloc(n + 1);
    if (!s) {
        r->bad = 1;
        return NULL;
    }
    memcpy(s, q, n);
    s[n] = 0;
    return s;
}

static void serialize_into(const Dataset *ds, Buf *b)
{
    size_t start = b->len;
    buf_put(b, DATASET_INDEX_MAGIC, 8);
    buf_u32(b, DATASET_INDEX_VERSION);
    buf_u32(b, (uint32_t)ds->kind);
    buf_str(b, ds->root);
    buf_u64(b, ds->n);
    buf_u32(b, (uint32_t)ds->nclasses);
    buf_u32(b, (uint32_t)ds->ngroups);
    buf_u64(b, ds->pool_len);
    buf_put(b, ds->pool, ds->pool_len);
    for (int c = 0; c < ds->nclasses; c++) buf_u32(b, ds->class_name[c]);
    for (int g = 0; g < ds->ngroups; g++) buf_u32(b, ds->group_name[g]);
    for (size_t i = 0; i < ds->n; i++) {
        const Item *it = &ds->items[i];
        buf_u64(b, it->off);
        buf_u32(b, it->size);
        buf_u32(b, it->crc);
        buf_u32(b, it->name);
        buf_u32(b, (uint32_t)it->label);
        buf_u32(b, (uint32_t)it->group);
    }
    if (!b->oom) buf_u32(b, shard_crc32c(0, b->p + start, b->len - start));
}

int dataset_serialize(const Dataset *ds, uint8_t **out, size_t *len, char *err, size_t errlen)
{
    Buf b = {0};
    serialize_into(ds, &b);
    if (b.oom) {
        free(b.p);
        snprintf(err, errlen, "out of memory serialising the index of %zu items", ds->n);
        return -1;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* Parses a serialised index at r (consuming it). Shard files are not opened. */
static Dataset *deserialize_from(Rd *r, char *err, size_t errlen)
{
    const uint8_t *start = r->p;
    const uint8_t *magic = rd_take(r, 8);
    if (!magic || memcmp(magic, DATASET_INDEX_MAGIC, 8) != 0) {
        snprintf(err, errlen, "not a dataset index (bad magic)");
        return NULL;
    }
    if (rd_u32(r) != DATASET_INDEX_VERSION) {
        snprintf(err, errlen, "dataset index version differs from this build's %u; rescan", DATASET_INDEX_VERSION);
        return NULL;
    }
    Dataset *ds = calloc(1, sizeof *ds);
    if (!ds) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ds->kind = (DatasetKind)rd_u32(r);
    ds->root = rd_str(r);
    uint64_t n = rd_u64(r);
    uint32_t ncls = rd_u32(r), ngr = rd_u32(r);
    uint64_t pool_len = rd_u64(r);
    const uint8_t *pool = rd_take(r, pool_len);
    /* every count checked against the bytes left before allocating */
    size_t left = (size_t)(r->end - r->p);
    if (r->bad || !ds->root || ds->kind < DATASET_TREE || ds->kind > DATASET_SHARDS || pool_len == 0 ||
        pool[pool_len - 1] != 0 || (uint64_t)ncls * 4 + (uint64_t)ngr * 4 > left ||
        n > (left - (uint64_t)ncls * 4 - (uint64_t)ngr * 4) / 28 || n == 0 || ncls == 0 || ncls > INT_MAX ||
        ngr > INT_MAX) {
        snprintf(err, errlen, "dataset index is truncated or corrupt");
        dataset_free(ds);
        return NULL;
    }
    ds->pool = malloc(pool_len);
    ds->pool_len = ds->pool_cap = pool_len;
    ds->class_name = malloc((ncls ? ncls : 1) * sizeof *ds->class_name);
    ds->group_name = malloc((ngr ? ngr : 1) * sizeof *ds->group_name);
    ds->items = malloc((n ? n : 1) * sizeof *ds->items);
    if (!ds->pool || !ds->class_name || !ds->group_name || !ds->items) {
        snprintf(err, errlen, "out of memory for an index of %llu items", (unsigned long long)n);
        dataset_free(ds);
        return NULL;
    }
    memcpy(ds->pool, pool, pool_len);
    ds->nclasses = (int)ncls;
    ds->ngroups = (int)ngr;
    ds->n = ds->items_cap = n;
    /* names are pool offsets: inside the pool, not empty; a class name also
     * goes into checkpoints one a line, so it holds no line break */
    int bad = 0;
    for (uint32_t c = 0; c < ncls && !bad; c++) {
        uint32_t o = ds->class_name[c] = rd_u32(r);
        bad |= o >= pool_len || !ds->pool[o] || strpbrk(ds->pool + o, "\n\r");
    }
    for (uint32_t g = 0; g < ngr && !bad; g++) {
        uint32_t o = ds->group_name[g] = rd_u32(r);
        bad |= o >= pool_len || !ds->pool[o];
    }
    for (uint64_t i = 0; i < n && !bad; i++) {
        Item *it = &ds->items[i];
        it->off = rd_u64(r);
        it->size = rd_u32(r);
        it->crc = rd_u32(r);
        it->name = rd_u32(r);
        it->label = (int32_t)rd_u32(r);
        it->group = (int32_t)rd_u32(r);
        bad |= it->name >= pool_len || !ds->pool[it->name] || it->label < 0 || it->label >= (int32_t)ncls ||
               (ds->kind == DATASET_SHARDS && (it->group < 0 || it->group >= (int32_t)ngr));
    }
    uint32_t crc = shard_crc32c(0, start, (size_t)(r->p - start));
    if (bad || r->bad || rd_u32(r) != crc || r->bad) {
        snprintf(err, errlen, "dataset index is corrupt (checksum or ranges); rescan the dataset");
        dataset_free(ds);
        return NULL;
    }
    return ds;
}

Dataset *dataset_deserialize(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    Rd r = {buf, buf + len, 0};
    Dataset *ds = deserialize_from(&r, err, errlen);
    if (ds && ds->kind == DATASET_SHARDS && shards_open_files(ds, err, errlen) != 0) {
        dataset_free(ds);
        return NULL;
    }
    return ds;
}

/* ---- the index cache ---- */

/* What the index was built from: the options and the mtime of every scanned
 * directory (adding or removing a file changes its directory's mtime). */
static void stamps_put(Buf *b, const DatasetOptions *opt, const char *root, const StrVec *dirs)
{
    buf_str(b, root);
    buf_str(b, opt->classes_file);
    buf_str(b, opt->labels_file);
    struct stat st;
    const char *files[2] = {opt->classes_file, opt->labels_file};
    for (int i = 0; i < 2; i++) {
        memset(&st, 0, sizeof st);
        if (files[i]) stat(files[i], &st);
        buf_u64(b, (uint64_t)st.st_mtim.tv_sec);
        buf_u64(b, (uint64_t)st.st_mtim.tv_nsec);
        buf_u64(b, (uint64_t)st.st_size);
    }
    buf_u64(b, dirs->n);
    for (size_t i = 0; i < dirs->n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", root, dirs->v[i]);
        memset(&st, 0, sizeof st);
        stat(path, &st);
        buf_str(b, dirs->v[i]);
        buf_u64(b, (uint64_t)st.st_mtim.tv_sec);
        buf_u64(b, (uint64_t)st.st_mtim.tv_nsec);
    }
}

/* Loads the cache if it was built from these options and nothing changed. */
static Dataset *cache_load(const DatasetOptions *opt, const char *root)
{
    size_t len;
    char e[256];
    char *text = read_whole(opt->cache_file, &len, e, sizeof e);
    if (!text) return NULL;
    Rd r = {(const uint8_t *)text, (const uint8_t *)text + len, 0};
    const uint8_t *magic = rd_take(&r, 8);
    Dataset *ds = NULL;
    if (!magic || memcmp(magic, DATASET_CACHE_MAGIC, 8) != 0) goto out;
    /* rebuild the stamps as they are now and compare byte for byte */
    uint64_t slen = rd_u64(&r);
    const uint8_t *stamps = rd_take(&r, slen);
    if (!stamps) goto out;
    StrVec dirs = {0};
    Rd sr = {stamps, stamps + slen, 0};
    char *s_root = rd_str(&sr), *s_cls = rd_str(&sr), *s_lab = rd_str(&sr);
    rd_take(&sr, 48);
    uint64_t nd = rd_u64(&sr);
    for (uint64_t i = 0; i < nd && !sr.bad; i++) {
        char *d = rd_str(&sr);
        rd_take(&sr, 16);
        if (d && strvec_push(&dirs, d) != 0) sr.bad = 1;
        free(d);
    }
    free(s_root);
    free(s_cls);
    free(s_lab);
    if (!sr.bad) {
        Buf now = {0};
        stamps_put(&now, opt, root, &dirs);
        if (!now.oom && now.len == slen && memcmp(now.p, stamps, slen) == 0) ds = deserialize_from(&r, e, sizeof e);
        free(now.p);
    }
    strvec_free(&dirs);
    /* no cache is written for shards (their files are opened by the scan) */
    if (ds && ds->kind != DATASET_TREE && ds->kind != DATASET_FLAT) {
        dataset_free(ds);
        ds = NULL;
    }
    if (ds && strcmp(ds->root, opt->path) != 0) {
        free(ds->root);
        ds->root = strdup(opt->path);
        if (!ds->root) {
            dataset_free(ds);
            ds = NULL;
        }
    }
out:
    free(text);
    return ds;
}

/* Writes the cache atomically; a cache that cannot be written costs speed on
 * the next start, not correctness, so failure is silent. */
static void cache_save(const Dataset *ds, const DatasetOptions *opt, const char *root, const StrVec *dirs)
{
    Buf b = {0}, st = {0};
    buf_put(&b, DATASET_CACHE_MAGIC, 8);
    stamps_put(&st, opt, root, dirs);
    buf_u64(&b, st.len);
    buf_put(&b, st.p, st.len);
    free(st.p);
    serialize_into(ds, &b);
    char ignored[256];
    if (!b.oom && !st.oom) atomic_file_write(opt->cache_file, b.p, b.len, ignored, sizeof ignored);
    free(b.p);
}

/* ---- open ---- */

Dataset *dataset_open(const DatasetOptions *opt, char *err, size_t errlen)
{
    double t0 = clock_now();
    if (!opt->path || !*opt->path) {
        snprintf(err, errlen, "no dataset given: pass --data DIR");
        return NULL;
    }
    struct stat st;
    if (stat(opt->path, &st) != 0) {
        snprintf(err, errlen, "dataset %s: %s", opt->path, strerror(errno));
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "dataset %s is not a directory (expected a class tree, a flat directory "
                              "with --labels, or a shard directory)", opt->path);
        return NULL;
    }
    char root[PATH_MAX];
    if (!realpath(opt->path, root)) snprintf(root, sizeof root, "%s", opt->path);
    if (opt->cache_file) {
        Dataset *ds = cache_load(opt, root);
        if (ds) {
            ds->from_cache = 1;
            ds->scan_s = clock_now() - t0;
            return ds;
        }
    }
    Dataset *ds = calloc(1, sizeof *ds);
    if (!ds || !(ds->root = strdup(opt->path))) {
        free(ds);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    StrVec files = {0}, dirs = {0}, visited = {0};
    int rc = list_dir(opt->path, &files, &dirs, err, errlen);
    if (rc == 0) {
        if (dir_has_shards(&files)) {
            rc = shards_scan(ds, opt, &files, err, errlen);
        } else if (opt->labels_file) {
            rc = flat_scan(ds, opt, &files, err, errlen);
        } else if (dirs.n > 0) {
            rc = strvec_push(&visited, ".") == 0 ? tree_scan(ds, opt, &dirs, &visited, err, errlen) : -1;
        } else {
            snprintf(err, errlen,
                     "%s has %s; expected ROOT/<class>/<image> class directories, a flat directory "
                     "with --labels FILE, or shard files",
                     opt->path, files.n ? "files but no class subdirectories" : "nothing in it");
            rc = -1;
        }
    }
    if (rc == 0 && ds->n == 0) {
        snprintf(err, errlen, "dataset %s is empty: no image files found", opt->path);
        rc = -1;
    }
    if (rc == 0 && opt->cache_file && ds->kind != DATASET_SHARDS) {
        if (ds->kind == DATASET_FLAT) {
            strvec_free(&visited);
            strvec_push(&visited, ".");
        }
        cache_save(ds, opt, root, &visited);
    }
    strvec_free(&files);
    strvec_free(&dirs);
    strvec_free(&visited);
    if (rc != 0) {
        dataset_free(ds);
        return NULL;
    }
    ds->scan_s = clock_now() - t0;
    return ds;
}

Dataset *dataset_from_files(const char *const *paths, size_t n, int classes, char *err, size_t errlen)
{
    Dataset *ds = calloc(1, sizeof *ds);
    if (ds) ds->kind = DATASET_FLAT;
    int ok = ds && n > 0 && classes > 0 && (ds->root = strdup("")) &&
             (ds->class_name = malloc((size_t)classes * sizeof *ds->class_name));
    for (int c = 0; c < classes && ok; c++) {
        char name[16];
        int len = snprintf(name, sizeof name, "%d", c);
        ok = pool_add(ds, name, (size_t)len, &ds->class_name[c]) == 0;
        ds->nclasses = c + 1;
    }
    for (size_t i = 0; i < n && ok; i++) {
        Item *it = item_add(ds);
        ok = it && pool_add(ds, paths[i], strlen(paths[i]), &it->name) == 0;
    }
    if (!ok) {
        if (n == 0) snprintf(err, errlen, "no image files given");
        else snprintf(err, errlen, "out of memory for the list of %zu images", n);
        dataset_free(ds);
        return NULL;
    }
    return ds;
}

void dataset_free(Dataset *ds)
{
    if (!ds) return;
    if (ds->fd)
        for (int g = 0; g < ds->ngroups; g++)
            if (ds->fd[g] >= 0) close(ds->fd[g]);
    free(ds->fd);
    free(ds->root);
    free(ds->items);
    free(ds->pool);
    free(ds->class_name);
    free(ds->group_name);
    free(ds);
}

DatasetKind dataset_kind(const Dataset *ds) { return ds->kind; }
const char *dataset_root(const Dataset *ds) { return ds->root; }
size_t dataset_size(const Dataset *ds) { return ds->n; }
int dataset_num_classes(const Dataset *ds) { return ds->nclasses; }
double dataset_scan_seconds(const Dataset *ds) { return ds->scan_s; }
int dataset_from_cache(const Dataset *ds) { return ds->from_cache; }

const char *dataset_class_name(const Dataset *ds, int c)
{
    return c >= 0 && c < ds->nclasses ? ds->pool + ds->class_name[c] : "?";
}

int dataset_label(const Dataset *ds, size_t i) { return ds->items[i].label; }
const char *dataset_item_name(const Dataset *ds, size_t i) { return ds->pool + ds->items[i].name; }

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 1 << 16;
    while (c < need) c *= 2;
    uint8_t *p = realloc(*buf, c);
    if (!p) return -1;
    *buf = p;
    *cap = c;
    return 0;
}

int dataset_read(const Dataset *ds, size_t i, uint8_t **buf, size_t *cap, size_t *len, char *err, size_t errlen)
{
    const Item *it = &ds->items[i];
    const char *name = ds->pool + it->name;
    if (ds->kind == DATASET_SHARDS) {
        if (it->size == 0) {
            snprintf(err, errlen, "zero bytes");
            return -1;
        }
        if (grow(buf, cap, it->size) != 0) {
            snprintf(err, errlen, "out of memory for %u bytes", it->size);
            return -1;
        }
        ssize_t r = pread(ds->fd[it->group], *buf, it->size, (off_t)it->off);
        if (r != (ssize_t)it->size) {
            snprintf(err, errlen, "cannot read %u bytes at offset %llu of shard %s", it->size,
                     (unsigned long long)it->off, ds->pool + ds->group_name[it->group]);
            return -1;
        }
        if (shard_crc32c(0, *buf, it->size) != it->crc) {
            snprintf(err, errlen, "checksum mismatch in shard %s (the shard is corrupt)",
                     ds->pool + ds->group_name[it->group]);
            return -1;
        }
        *len = it->size;
        return 0;
    }
    char path[PATH_MAX];
    /* a list of files (dataset_from_files) has no root: names are paths */
    if (snprintf(path, sizeof path, "%s%s%s", ds->root, ds->root[0] ? "/" : "", name) >= (int)sizeof path) {
        snprintf(err, errlen, "path too long");
        return -1;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot stat: %s", strerror(errno));
    } else if (st.st_size == 0) {
        snprintf(err, errlen, "zero bytes");
    } else if (st.st_size > DATASET_MAX_FILE_BYTES) {
        snprintf(err, errlen, "%lld bytes is larger than any accepted image (1 GiB)", (long long)st.st_size);
    } else if (grow(buf, cap, (size_t)st.st_size) != 0) {
        snprintf(err, errlen, "out of memory for %lld bytes", (long long)st.st_size);
    } else {
        size_t got = 0, want = (size_t)st.st_size;
        while (got < want) {
            ssize_t r = read(fd, *buf + got, want - got);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            got += (size_t)r;
        }
        if (got != want) {
            snprintf(err, errlen, "read %zu of %zu bytes: %s", got, want, strerror(errno));
        } else {
            *len = got;
            rc = 0;
        }
    }
    close(fd);
    return rc;
}
