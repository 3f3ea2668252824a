/* train/trace.c: Chrome-trace JSON timeline (see trace.h). Events are written as
 * they happen, so a run that dies still leaves a readable prefix; the merged
 * file is written atomically (dataloader/atomic_file.h). */
#include "trainer/train/trace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataloader/atomic_file.h"

struct Trace {
    FILE *f;
    int rank;
    double t0;
};

static const char *const ROWS[4] = {"compute", "communication", "data", "checkpoint"};

Trace *trace_open(const char *path, int rank, double t0, char *err, size_t errlen)
{
    char part[4200];
    snprintf(part, sizeof part, "%s.rank%d", path, rank);
    FILE *f = fopen(part, "w");
    if (!f) {
        snprintf(err, errlen, "cannot write the trace %s: %s", part, strerror(errno));
        return NULL;
    }
    Trace *t = calloc(1, sizeof *t);
    if (!t) {
        fclose(f);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->f = f;
    t->rank = rank;
    t->t0 = t0;
    fprintf(f, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":{\"name\":\"rank %d\"}},\n",
            rank, rank);
    for (int i = 0; i < 4; i++)
        fprintf(f, "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"args\":{\"name\":\"%s\"}},\n",
                rank, i, ROWS[i]);
    return t;
}

void trace_event(Trace *t, const char *name, int tid, double start, double end, long step)
{
    if (!t) return;
    fprintf(t->f,
            "{\"name\":\"%s\",\"ph\":\"X\",\"pid\":%d,\"tid\":%d,\"ts\":%.1f,\"dur\":%.1f,"
            "\"args\":{\"step\":%ld}},\n",
            name, t->rank, tid, (start - t->t0) * 1e6, (end - start) * 1e6, step);
}

void trace_close(Trace *t)
{
    if (!t) return;
    fclose(t->f);
    free(t);
}

/* Appends PATH.rank<r> to out. 0, or -1 with err. */
static int append_part(FILE *out, const char *path, int r, char *err, size_t errlen)
{
    char part[4200], line[1024];
    snprintf(part, sizeof part, "%s.rank%d", path, r);
    FILE *in = fopen(part, "r");
    if (!in) {
        snprintf(err, errlen, "cannot read %s (not a shared file system?): per-rank parts kept", part);
        return -1;
    }
    while (fgets(line, sizeof line, in)) fputs(line, out);
    fclose(in);
    return 0;
}

int trace_merge(const char *path, int world, char *err, size_t errlen)
{
    AtomicFile a;
    if (atomic_file_open(&a, path, "w", err, errlen) != 0) return -1;
    fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", a.f);
    for (int r = 0; r < world; r++)
        if (append_part(a.f, path, r, err, errlen) != 0) {
            atomic_file_abandon(&a);
            return -1;
        }
    /* the last event line ends with ",\n": close the array with a metadata event */
    fputs("{\"name\":\"trace_end\",\"ph\":\"M\",\"pid\":0,\"args\":{}}\n]}\n", a.f);
    if (atomic_file_commit(&a, err, errlen) != 0) return -1;
    for (int r = 0; r < world; r++) {
        char part[4200];
        snprintf(part, sizeof part, "%s.rank%d", path, r);
        remove(part);
    }
    return 0;
}
