/* eval/watch.c: listing, results lookup, per-checkpoint locks and atomic
 * appends for scheduled evaluation (see eval/watch.h). Must not evaluate,
 * print or exit.
 */
#include "trainer/eval/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "trainer/ckpt/ckpt.h"

/* byte 0 of the lock file serialises appends; byte step + 1 is checkpoint step's */
#define WATCH_APPEND_BYTE 0

int eval_watch_list(const char *dir, EvalWatchEntry **out, int *n, char *err, size_t errlen)
{
    *n = 0;
    long cnt = ckpt_list(dir, out, err, errlen);
    if (cnt < 0) return -1;
    if (cnt > 1 << 30) {
        free(*out);
        *out = NULL;
        return snprintf(err, errlen, "%ld checkpoints in %s: too many to watch", cnt, dir), -1;
    }
    for (long i = 0, j = cnt - 1; i < j; i++, j--) {
        EvalWatchEntry t = (*out)[i];
        (*out)[i] = (*out)[j];
        (*out)[j] = t;
    }
    *n = (int)cnt;
    return 0;
}

/* The string value of "key":"..." in a one-line JSON object, into out; 0 when
 * found. Values written by this program hold no escaped quotes. */
static int watch_json_str(const char *line, const char *key, char *out, size_t outlen)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(line, pat);
    if (!p) return -1;
    p += strlen(pat);
    const char *q = strchr(p, '"');
    if (!q || (size_t)(q - p) >= outlen) return -1;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = 0;
    return 0;
}

int eval_watch_done(const char *results, const char *name, const char *sha256, char *err, size_t errlen)
{
    FILE *f = fopen(results, "r");
    if (!f) {
        if (errno == ENOENT) return 0;
        return snprintf(err, errlen, "cannot read results file %s: %s", results, strerror(errno)), -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int found = 0;
    while (!found && (len = getline(&line, &cap, f)) > 0) {
        /* only whole lines count: a line without its newline or closing brace is a torn write */
        if (line[len - 1] != '\n' || len < 3 || line[0] != '{' || line[len - 2] != '}') continue;
        char n[256], s[80];
        if (watch_json_str(line, "ckpt", n, sizeof n) != 0 || strcmp(n, name) != 0) continue;
        if (watch_json_str(line, "params_sha256", s, sizeof s) != 0) continue;
        found = strcmp(s, sha256) == 0;
    }
    free(line);
    fclose(f);
    return found;
}

int eval_watch_lock_open(const char *results, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s.lock", results);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        snprintf(err, errlen, "cannot open lock file %s: %s; the directory of --results must be writable", path,
                 strerror(errno));
    return fd;
}

static int watch_lock(int fd, off_t byte, int type, int wait)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = (short)type;
    fl.l_whence = SEEK_SET;
    fl.l_start = byte;
    fl.l_len = 1;
    int rc;
    do rc = fcntl(fd, wait ? F_SETLKW : F_SETLK, &fl);
    while (rc != 0 && errno == EINTR);
    return rc;
}

int eval_watch_trylock(int fd, long step, char *err, size_t errlen)
{
    if (watch_lock(fd, (off_t)step + 1, F_WRLCK, 0) == 0) return 1;
    if (errno == EACCES || errno == EAGAIN) return 0;
    return snprintf(err, errlen, "cannot lock checkpoint step %ld: %s", step, strerror(errno)), -1;
}

void eval_watch_unlock(int fd, long step) { watch_lock(fd, (off_t)step + 1, F_UNLCK, 0); }

int eval_watch_append(const char *results, int lock_fd, const char *line, char *err, size_t errlen)
{
    size_t len = strlen(line);
    char *buf = malloc(len + 2);
    if (!buf) return snprintf(err, errlen, "out of memory"), -1;
    if (watch_lock(lock_fd, WATCH_APPEND_BYTE, F_WRLCK, 1) != 0) {
        free(buf);
        return snprintf(err, errlen, "cannot lock %s.lock for appending: %s", results, strerror(errno)), -1;
    }
    /* read-write: the last byte is read back before appending */
    int rc = -1, fd = open(results, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open results file %s: %s", results, strerror(errno));
        goto out;
    }
    /* a torn line from a writer that died mid-write must not swallow ours */
    size_t off = 0;
    struct stat st;
    char last = '\n';
    if (fstat(fd, &st) == 0 && st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n')
        buf[off++] = '\n';
    memcpy(buf + off, line, len);
    buf[off + len] = '\n';
    size_t total = off + len + 1;
    ssize_t w;
    do w = write(fd, buf, total);
    while (w < 0 && errno == EINTR);
    if (w != (ssize_t)total) {
        snprintf(err, errlen, "cannot append to %s: %s", results, w < 0 ? strerror(errno) : "short write (disk full?)");
        close(fd);
        goto out;
    }
    if (fsync(fd) != 0) {
        snprintf(err, errlen, "cannot fsync %s: %s", results, strerror(errno));
        close(fd);
        goto out;
    }
    rc = close(fd) == 0 ? 0 : (snprintf(err, errlen, "cannot close %s: %s", results, strerror(errno)), -1);
out:
    watch_lock(lock_fd, WATCH_APPEND_BYTE, F_UNLCK, 0);
    free(buf);
    return rc;
}
