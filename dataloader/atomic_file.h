/* atomic_file.h: writing a file so that readers, and a crash or power cut,
 * see either the old file or the whole new one, never a part: the bytes go to
 * a temporary file beside the target, which is flushed, fsynced, closed,
 * renamed over the target, and then the directory is fsynced so that the
 * rename itself survives. Checkpoints, reports, traces, shards and index
 * caches are all written this way. Not thread-safe per AtomicFile. */
#ifndef DATALOADER_ATOMIC_FILE_H
#define DATALOADER_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

typedef struct {
    FILE *f;          /* write here between open and commit */
    char *path;       /* the target */
    char *tmp;        /* "<path>.tmp.<pid>" */
} AtomicFile;

/* Creates the temporary file (mode "w" or "wb"). 0, or -1 with err naming
 * the file and what to check. */
int atomic_file_open(AtomicFile *a, const char *path, const char *mode, char *err, size_t errlen);
/* Flush, fsync, close, rename over the target, fsync its directory. 0, or -1
 * with err naming the step that failed; the temporary is then removed and the
 * target is as it was. Frees what open allocated either way. */
int atomic_file_commit(AtomicFile *a, char *err, size_t errlen);
/* Closes and removes the temporary; the target is untouched. */
void atomic_file_abandon(AtomicFile *a);

/* The whole file from one buffer: open, write, commit. */
int atomic_file_write(const char *path, const void *buf, size_t len, char *err, size_t errlen);

/* fsyncs the directory holding `path` (a file in it), so that a rename or a
 * removal in it is durable. File systems that cannot fsync a directory
 * (EINVAL, ENOTSUP) count as success: the rename is then as durable as they allow. */
int atomic_fsync_parent(const char *path, char *err, size_t errlen);

/* The temporary name for `path`, as atomic_file_open makes it: "<path>.tmp.<pid>".
 * Returns -1 when it does not fit in len. */
int atomic_tmp_name(const char *path, char *out, size_t len);

#endif
