/* ckpt/dir.c: a directory of checkpoints: the ckpt-<step>.gnck names and
 * their listing, the `latest` pointer (a hint for people and tools: the
 * listing decides), --resume auto, the temporary files of writes in flight
 * (and those a crash left) and the retention policy (keep, keep_every).
 * Never prints. */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataloader/atomic_file.h"
#include "trainer/ckpt/internal.h"

/* ---- names and listing ---- */

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

/* dir of a path ("." when it has none), into out[outlen]. */
static void dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, outlen, ".");
    else if (slash == path) snprintf(out, outlen, "/");
    else snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

int ckpt_tmp_name(const char *path, char *out, size_t len)
{
    static atomic_uint counter;
    char dir[4096], hidden[4400];
    dir_of(path, dir, sizeof dir);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int n = snprintf(hidden, sizeof hidden, "%s/.%s", dir, base);
    if (n < 0 || (size_t)n >= sizeof hidden || atomic_tmp_name(hidden, out, len) != 0) return -1;
    size_t used = strlen(out);
    n = snprintf(out + used, len - used, ".%u", atomic_fetch_add(&counter, 1));
    return n < 0 || (size_t)n >= len - used ? -1 : 0;
}

int ckpt_is_temp_name(const char *name)
{
    return name[0] == '.' && strstr(name, ".tmp.") != NULL;
}

/* ---- the `latest` pointer ---- */

int ckpt_latest_read(const char *dir, char *name, size_t len)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_LATEST);
    name[0] = 0;
    FILE *f = fopen(p, "r");
    if (!f) return 0;
    if (fgets(name, (int)len, f)) name[strcspn(name, "\r\n")] = 0;
    fclose(f);
    return name[0] != 0;
}

int ckpt_latest_write(const char *dir, const char *name, CkptIoFault fault, void *fault_ctx, char *err,
                      size_t errlen)
{
    char p[4200], line[300];
    snprintf(p, sizeof p, "%s/%s", dir, CKPT_LATEST);
    snprintf(line, sizeof line, "%s\n", name);
    return ckpt_write_bytes_atomic(p, NULL, 0, line, strlen(line), fault, fault_ctx, err, errlen);
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
    char target[256];
    ckpt_latest_read(dir, target, sizeof target);
    char line[4800], full[4400];
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        snprintf(full, sizeof full, "%s/%s", dir, f[i].name);
        char why[1024];
        int rc = ckpt_load_file(full, meta, weights, momentum, average, num_params, why, sizeof why);
        if (rc == CKPT_LOAD_OK) {
            snprintf(path, pathlen, "%s", full);
            found = 1;
        } else if (rc == CKPT_LOAD_SLIM) {
            snprintf(line, sizeof line, "skipping checkpoint %s: %s", f[i].name, why);
            report_add(report, reportlen, line);
        } else if (rc == CKPT_LOAD_OTHER_MODEL) {
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

/* ---- temporary files and retention ---- */

int ckpt_remove_stale_temps(const char *dir, char *note, size_t notelen)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    int n = 0;
    size_t at = 0;
    note[0] = '\0';
    while ((de = readdir(d))) {
        if (!ckpt_is_temp_name(de->d_name)) continue;
        if (strncmp(de->d_name, ".ckpt-", 6) != 0 && strncmp(de->d_name, "." CKPT_LATEST ".", 8) != 0) continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        double mb = stat(p, &st) == 0 ? st.st_size / 1e6 : 0;
        if (unlink(p) != 0) continue;
        if (n < 3 && at < notelen)
            at += (size_t)snprintf(note + at, notelen - at, "%s%s (%.1f MB)", n ? "; " : "", de->d_name, mb);
        else if (n == 3 && at < notelen)
            at += (size_t)snprintf(note + at, notelen - at, "; ...");
        n++;
    }
    closedir(d);
    return n;
}

static int is_keeper(const CkptRetention *w, const CkptEntry *e)
{
    long m = w->keep_every;
    if (m <= 0) return 0;
    if (w->keep_every_unit == CKPT_UNIT_STEPS) return e->step % m == 0;
    char path[4400], err[256];
    snprintf(path, sizeof path, "%s/%s", w->dir, e->name);
    CkptMeta meta;
    if (ckpt_peek_meta(path, &meta, err, sizeof err) != 0) return 0;
    int keep = meta.epoch_step == 0 && meta.epoch % m == 0;
    ckpt_meta_free(&meta);
    return keep;
}

/* Rewrites a full checkpoint slim (its average as the weights, no momentum),
 * in place and atomically, through w->scratch. A slim one is left as it is. */
static int make_slim(const CkptRetention *w, const char *path, char *note, size_t notelen)
{
    char err[512], set[16];
    CkptReader *r = ckpt_open(path, err, sizeof err);
    if (!r) {
        snprintf(note, notelen, "could not rewrite %s slim: %s", path, err);
        return -1;
    }
    const CkptMeta *m = ckpt_reader_meta(r);
    int rc = 0;
    if (!ckpt_meta_get_extra(m, CKPT_EXTRA_SLIM, set, sizeof set) && ckpt_reader_has(r, CKPT_SEC_AVERAGE)) {
        CkptMeta slim;
        rc = -1;
        if (m->num_params != w->num_params) snprintf(err, sizeof err, "it holds another model");
        else if (ckpt_reader_read(r, CKPT_SEC_AVERAGE, w->scratch, m->num_params, err, sizeof err) == 0 &&
                 ckpt_meta_copy(&slim, m) == 0) {
            if (ckpt_meta_add_extra(&slim, CKPT_EXTRA_SLIM, "average", err, sizeof err) == 0)
                rc = ckpt_write_atomic(w->enc, path, &slim, w->scratch, NULL, NULL, NULL, NULL, NULL, err, sizeof err);
            ckpt_meta_free(&slim);
        }
        if (rc != 0) snprintf(note, notelen, "could not rewrite %s slim: %s", path, err);
    }
    ckpt_close(r);
    return rc;
}

int ckpt_retention_apply(const CkptRetention *w, const char *protect1, const char *protect2, char *note,
                         size_t notelen)
{
    if (w->keep <= 0) return 0;
    CkptEntry *e;
    char err[512];
    long nl = ckpt_list(w->dir, &e, err, sizeof err);
    if (nl < 0) {
        snprintf(note, notelen, "old checkpoints were not pruned: %s", err);
        return 0;
    }
    size_t n = (size_t)nl;
    int failures = 0;
    for (size_t i = (size_t)w->keep; i < n; i++) {
        if (strcmp(e[i].name, protect1) == 0 || (protect2 && strcmp(e[i].name, protect2) == 0)) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", w->dir, e[i].name);
        if (is_keeper(w, &e[i])) {
            if (w->keep_every_slim) make_slim(w, path, note, notelen);
            continue;
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            failures++;
            snprintf(note, notelen, "could not delete old checkpoint %s: %s", path, strerror(errno));
        }
    }
    free(e);
    return failures;
}
