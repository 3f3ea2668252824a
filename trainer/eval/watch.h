/* eval/watch.h: the files of scheduled evaluation (`eval --watch DIR
 * --results FILE.jsonl`): which checkpoints a directory holds, which ones the
 * results file already holds, a lock per checkpoint, and the append of one
 * result line. The loop that picks, evaluates and records checkpoints is
 * watch_loop in cmd/eval.c; this module only keeps the files.
 *
 * Checkpoints are the files named ckpt-<digits>.gnck (ckpt_file_step): the
 * trainer writes them under another name and renames them, so a temporary
 * file is never listed. Locks are POSIX record locks (fcntl) on one byte per
 * checkpoint step of FILE.jsonl.lock: they vanish with the process that held
 * them (no stale locks after a crash) and work across NFS clients with lockd.
 * A result line is appended with one write() under a lock of byte 0, after
 * the evaluation is done, so a run that dies leaves no partial line; a reader
 * ignores a line that does not parse. Never prints, never exits.
 */
#ifndef TRAINER_EVAL_WATCH_H
#define TRAINER_EVAL_WATCH_H

#include <stddef.h>

#include "trainer/ckpt/ckpt.h"

typedef CkptEntry EvalWatchEntry;

/* The checkpoints of dir, lowest step first (ckpt_list in the order a watcher
 * evaluates them), into *out (malloc'd; *n entries; the caller frees).
 * Returns 0, or -1 with a reason. */
int eval_watch_list(const char *dir, EvalWatchEntry **out, int *n, char *err, size_t errlen);

/* Whether the results file holds a line for checkpoint `name` with params
 * digest sha256 (a missing file holds nothing). Returns 1, 0, or -1 with a
 * reason (unreadable file). */
int eval_watch_done(const char *results, const char *name, const char *sha256, char *err, size_t errlen);

/* Opens (creating) results + ".lock"; returns its descriptor or -1. */
int eval_watch_lock_open(const char *results, char *err, size_t errlen);
/* Tries to lock checkpoint `step` without waiting: 1 locked, 0 held by
 * another process, -1 error (err). */
int eval_watch_trylock(int fd, long step, char *err, size_t errlen);
void eval_watch_unlock(int fd, long step);

/* Appends line (no newline in it) plus '\n' to results with one write(),
 * serialised with other writers by the lock file fd, and fsyncs. A previous
 * writer's line left without its newline is closed first. 0, or -1 (err). */
int eval_watch_append(const char *results, int lock_fd, const char *line, char *err, size_t errlen);

#endif
