/* fuzz_util.c: the scratch directory, checks and input hash of fuzz_util.h. */
#include "tests/fuzz/fuzz_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fuzz_root[4096];
static pid_t fuzz_owner;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void fuzz_rmtree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static void fuzz_cleanup(void)
{
    /* a child that inherited the atexit handler must not remove its parent's files */
    if (fuzz_root[0] && getpid() == fuzz_owner) fuzz_rmtree(fuzz_root);
}

const char *fuzz_dir(void)
{
    if (fuzz_root[0]) return fuzz_root;
    const char *t = getenv("TMPDIR");
    snprintf(fuzz_root, sizeof fuzz_root, "%s/gnet-fuzz.XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(fuzz_root)) {
        fprintf(stderr, "fuzz: cannot create %s: %s\n", fuzz_root, strerror(errno));
        abort();
    }
    fuzz_owner = getpid();
    atexit(fuzz_cleanup);
    return fuzz_root;
}

void fuzz_path(char *out, size_t outlen, const char *fmt, ...)
{
    int n = snprintf(out, outlen, "%s/", fuzz_dir());
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, outlen - (size_t)n, fmt, ap);
    va_end(ap);
}

void fuzz_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
        abort();
    }
}

void fuzz_mkdirs(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(p, 0755);
            *s = '/';
        }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "fuzz: cannot create %s: %s\n", p, strerror(errno));
        abort();
    }
}

void fuzz_fail(const char *file, int line, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: property violated: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

uint64_t fuzz_hash(const uint8_t *data, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++) h = (h ^ data[i]) * 0x100000001b3ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}
