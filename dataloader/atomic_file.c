/* atomic_file.c: temporary file, fsync, rename, fsync of the directory (see
 * atomic_file.h for why each step is there). */
#include "dataloader/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int atomic_tmp_name(const char *path, char *out, size_t len)
{
    int n = snprintf(out, len, "%s.tmp.%ld", path, (long)getpid());
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void atomic_free(AtomicFile *a)
{
    free(a->path);
    free(a->tmp);
    a->path = a->tmp = NULL;
    a->f = NULL;
}

int atomic_file_open(AtomicFile *a, const char *path, const char *mode, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    size_t cap = strlen(path) + 32;
    a->path = strdup(path);
    a->tmp = malloc(cap);
    if (!a->path || !a->tmp) {
        atomic_free(a);
        snprintf(err, errlen, "out of memory writing %s", path);
        return -1;
    }
    atomic_tmp_name(path, a->tmp, cap);
    a->f = fopen(a->tmp, mode);
    if (!a->f) {
        snprintf(err, errlen, "cannot create %s: %s; check that the directory exists and is writable", a->tmp,
                 strerror(errno));
        atomic_free(a);
        return -1;
    }
    return 0;
}

int atomic_fsync_parent(const char *path, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open directory %s to make %s durable: %s", dir, path, strerror(errno));
        return -1;
    }
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    if (rc != 0 && saved != EINVAL && saved != ENOTSUP) {
        snprintf(err, errlen, "%s was written but fsync of its directory %s failed: %s; it may not survive a power cut",
                 path, dir, strerror(saved));
        return -1;
    }
    return 0;
}

int atomic_file_commit(AtomicFile *a, char *err, size_t errlen)
{
    int rc = -1;
    if (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0) {
        snprintf(err, errlen, "cannot write %s: %s (disk full?)", a->tmp, strerror(errno));
        fclose(a->f);
    } else if (fclose(a->f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s (disk full?)", a->tmp, strerror(errno));
    } else if (rename(a->tmp, a->path) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", a->tmp, a->path, strerror(errno));
    } else {
        rc = atomic_fsync_parent(a->path, err, errlen);
        atomic_free(a);
        return rc;
    }
    unlink(a->tmp);
    atomic_free(a);
    return rc;
}

void atomic_file_abandon(AtomicFile *a)
{
    if (a->f) fclose(a->f);
    if (a->tmp) unlink(a->tmp);
    atomic_free(a);
}

int atomic_file_write(const char *path, const void *buf, size_t len, char *err, size_t errlen)
{
    AtomicFile a;
    if (atomic_file_open(&a, path, "wb", err, errlen) != 0) return -1;
    if (len && fwrite(buf, 1, len, a.f) != len) {
        snprintf(err, errlen, "cannot write %s: %s (disk full?)", a.tmp, strerror(errno));
        atomic_file_abandon(&a);
        return -1;
    }
    return atomic_file_commit(&a, err, errlen);
}
