/* test_atomic_file.c: dataloader/atomic_file: the target holds the old bytes
 * until commit and the new ones after; an abandoned or failed write leaves
 * the target as it was and no temporary file behind; a missing directory is
 * a one-line error naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "dataloader/atomic_file.h"

static char dir[] = "/tmp/test_atomic_file.XXXXXX";

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    static char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* entries of dir other than . and .. */
static int entries(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void test_replace(void **state)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/a.txt", dir);
    assert_int_equal(atomic_file_write(path, "old", 3, err, sizeof err), 0);
    assert_string_equal(slurp(path), "old");
    AtomicFile a;
    assert_int_equal(atomic_file_open(&a, path, "w", err, sizeof err), 0);
    fputs("new bytes", a.f);
    fflush(a.f);
    assert_string_equal(slurp(path), "old"); /* readers see the old file until commit */
    assert_int_equal(entries(), 2);          /* the target and the temporary */
    assert_int_equal(atomic_file_commit(&a, err, sizeof err), 0);
    assert_string_equal(slurp(path), "new bytes");
    assert_int_equal(entries(), 1);
    unlink(path);
}

static void test_abandon(void **state)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/b.txt", dir);
    assert_int_equal(atomic_file_write(path, "keep", 4, err, sizeof err), 0);
    AtomicFile a;
    assert_int_equal(atomic_file_open(&a, path, "wb", err, sizeof err), 0);
    fputs("half", a.f);
    atomic_file_abandon(&a);
    assert_string_equal(slurp(path), "keep");
    assert_int_equal(entries(), 1);
    unlink(path);
}

static void test_missing_dir(void **state)
{
    char path[256], err[256] = "";
    snprintf(path, sizeof path, "%s/no/such/c.txt", dir);
    assert_int_equal(atomic_file_write(path, "x", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "no/such/c.txt.tmp."));
    assert_non_null(strstr(err, "No such file or directory"));
    assert_null(strchr(err, '\n'));
    assert_int_equal(entries(), 0);
}

/* a rename onto a directory fails after the bytes are written: the error names
 * both files and the temporary is removed */
static void test_rename_fails(void **state)
{
    char path[256], err[256] = "";
    snprintf(path, sizeof path, "%s/d", dir);
    char inner[300];
    snprintf(inner, sizeof inner, "%s/x", path);
    assert_int_equal(mkdir(path, 0700), 0);
    assert_int_equal(atomic_file_write(inner, "x", 1, err, sizeof err), 0);
    assert_int_equal(atomic_file_write(path, "y", 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot rename"));
    assert_int_equal(entries(), 1);
    unlink(inner);
    rmdir(path);
}

static void test_fsync_parent(void **state)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "%s/e", dir);
    assert_int_equal(atomic_fsync_parent(path, err, sizeof err), 0);
    assert_int_equal(atomic_fsync_parent("relative-name", err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/none/e", dir);
    assert_int_equal(atomic_fsync_parent(path, err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open directory"));
}

int main(void)
{
    if (!mkdtemp(dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace),      cmocka_unit_test(test_abandon),
        cmocka_unit_test(test_missing_dir),  cmocka_unit_test(test_rename_fails),
        cmocka_unit_test(test_fsync_parent),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(dir);
    return rc;
}
