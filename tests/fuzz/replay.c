/* replay.c: main() for a fuzz target built without libFuzzer. Feeds every
 * file named on the command line, and every file in every directory named, to
 * LLVMFuzzerTestOneInput, in sorted order, so `make test` replays the seed
 * corpora and every input a fuzzer once crashed on, with any compiler. A
 * crash or a violated property aborts with the file's name on stderr.
 *
 * make fuzz counts a single allocation over 1 GB as a finding
 * (-malloc_limit_mb=1024): an allocation sized by a field nobody checked.
 * Outside AddressSanitizer (which replaces malloc itself) the replay does the
 * same, so such an input fails here too instead of passing on a machine that
 * overcommits memory. A hang (over FUZZ_CPU_SECONDS of CPU) aborts in
 * LLVMFuzzerTestOneInput itself, as under libFuzzer. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz_util.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPLAY_ASAN 1
#endif
#endif
#if !defined(__SANITIZE_ADDRESS__) && !defined(REPLAY_ASAN)
#include <unistd.h>

#define REPLAY_MALLOC_LIMIT ((size_t)1 << 30)
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

static void over_limit(void)
{
    static const char msg[] = "replay: a single allocation over 1 GB (libFuzzer's -malloc_limit_mb=1024)\n";
    if (write(2, msg, sizeof msg - 1) < 0) abort();
    abort();
}

void *malloc(size_t n)
{
    if (n > REPLAY_MALLOC_LIMIT) over_limit();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    if (size && n > REPLAY_MALLOC_LIMIT / size) over_limit();
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    if (n > REPLAY_MALLOC_LIMIT) over_limit();
    return __libc_realloc(p, n);
}
#endif

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return fprintf(stderr, "replay: cannot open %s\n", path), -1;
    size_t cap = 1 << 16, len = 0, n;
    uint8_t *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    if (!buf) return fprintf(stderr, "replay: out of memory reading %s\n", path), -1;
    /* a copy of exactly len bytes, so a read past the input is caught as under libFuzzer */
    uint8_t *in = malloc(len ? len : 1);
    memcpy(in, buf, len);
    free(buf);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
    LLVMFuzzerTestOneInput(in, len);
    free(in);
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int replay_dir(const char *dir, long *count)
{
    DIR *d = opendir(dir);
    if (!d) return fprintf(stderr, "replay: cannot open directory %s\n", dir), -1;
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        names = realloc(names, (n + 1) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(path) != 0) rc = -1;
            else (*count)++;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    long count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s does not exist\n", argv[i]);
            rc = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_dir(argv[i], &count) != 0) rc = 1;
        } else if (replay_file(argv[i]) != 0) {
            rc = 1;
        } else {
            count++;
        }
    }
    printf("replayed %ld input%s through %s\n", count, count == 1 ? "" : "s", argv[0]);
    return rc;
}
