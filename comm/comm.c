/* comm.c: MPI start-up, the watchdog, and the small collectives (broadcast,
 * identical check, metrics, barrier, stop flag). See comm.h.
 *
 * Every collective is posted non-blocking and waited for by wait_all(), which
 * tests it, sleeps between tests once the wait gets long (a rank waiting for a
 * slow peer must not take a core from another rank on the same machine), and
 * aborts the job when the timeout passes. To say WHO is late, each rank
 * announces every collective it enters to every other rank on a separate
 * communicator (one 64-byte message per peer, non-blocking); a waiting rank
 * names the ranks whose last announcement is older than its own.
 *
 * This file must not block in MPI without a deadline, and must not print except
 * when it ends the job.
 */
#include "comm/internal.h"

#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { WATCH_TAG = 7 };

static volatile sig_atomic_t stop_flag;

double comm_backoff(double idle, double min, double max)
{
    double s = idle / 8;
    return s < min ? min : s > max ? max : s;
}

static void *xcalloc(Comm *c, size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) comm_abort(c, 1, "out of memory allocating %zu bytes for %s", n * size, what);
    return p;
}

_Noreturn void comm_abort(Comm *c, int code, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int inited = 0, finalized = 0, rank = -1;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    int live = inited && !finalized;
    if (c) rank = c->rank;
    else if (live) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (rank >= 0) fprintf(stderr, "googlenet: [rank %d] %s\n", rank, msg);
    else fprintf(stderr, "googlenet: %s\n", msg);
    fflush(stderr);
    if (code == 0) code = 1;
    if (live) MPI_Abort(MPI_COMM_WORLD, code);
    _exit(code);
}

void comm_check_mpi(Comm *c, int rc, const char *what)
{
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error %d", rc);
    comm_abort(c, 1, "MPI failed during %s: %s", what, text);
}

/* ---- watchdog ------------------------------------------------------------ */

static void watch_send(Comm *c, int p)
{
    c->outbox[p] = c->mine;
    comm_check_mpi(c, MPI_Isend(&c->outbox[p], sizeof(CommArrival), MPI_BYTE, p, WATCH_TAG, c->watch,
                                &c->send_req[p]),
                   "watchdog announcement");
    c->send_stale[p] = 0;
}

void comm_watch_poll(Comm *c)
{
    if (c->size == 1) return;
    for (;;) {
        int idx = MPI_UNDEFINED, flag = 0;
        comm_check_mpi(c, MPI_Testany(c->size, c->recv_req, &idx, &flag, MPI_STATUS_IGNORE),
                       "watchdog receive");
        if (!flag || idx == MPI_UNDEFINED) break;
        c->peer[idx] = c->inbox[idx];
        c->peer[idx].what[sizeof c->peer[idx].what - 1] = '\0';
        comm_check_mpi(c, MPI_Irecv(&c->inbox[idx], sizeof(CommArrival), MPI_BYTE, idx, WATCH_TAG,
                                    c->watch, &c->recv_req[idx]),
                       "watchdog receive");
    }
    for (int p = 0; p < c->size; p++) {
        if (p == c->rank || !c->send_stale[p]) continue;
        int done = 0;
        comm_check_mpi(c, MPI_Test(&c->send_req[p], &done, MPI_STATUS_IGNORE), "watchdog announcement");
        if (done) watch_send(c, p);
    }
}

void comm_watch_enter(Comm *c, const char *what)
{
    c->seq++;
    c->mine.seq = c->seq;
    snprintf(c->mine.what, sizeof c->mine.what, "%s", what ? what : "?");
    c->peer[c->rank] = c->mine;
    for (int p = 0; p < c->size; p++) {
        if (p == c->rank) continue;
        int done = 0;
        comm_check_mpi(c, MPI_Test(&c->send_req[p], &done, MPI_STATUS_IGNORE), "watchdog announcement");
        /* a send still in flight (peer not reading): resend the newest later */
        if (done) watch_send(c, p);
        else c->send_stale[p] = 1;
    }
    comm_watch_poll(c);
}

_Noreturn void comm_watch_expired(Comm *c, double waited)
{
    /* announcements may still be in transit: drain for a moment */
    double t0 = clock_now();
    while (clock_now() - t0 < 0.2) {
        comm_watch_poll(c);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    char late[1536] = "", other[512] = "";
    size_t ll = 0, lo = 0;
    int nlate = 0, nother = 0;
    for (int p = 0; p < c->size; p++) {
        const CommArrival *a = &c->peer[p];
        if (p == c->rank) continue;
        if (a->seq < c->mine.seq) {
            if (nlate++ < 16 && ll < sizeof late) {
                if (a->seq == 0)
                    ll += snprintf(late + ll, sizeof late - ll, "%s%d (in no collective yet)", ll ? ", " : "", p);
                else
                    ll += snprintf(late + ll, sizeof late - ll, "%s%d (last entered #%" PRId64 " '%s')",
                                   ll ? ", " : "", p, a->seq, a->what);
            }
        } else if (a->seq == c->mine.seq && strcmp(a->what, c->mine.what) != 0) {
            if (nother++ < 8 && lo < sizeof other)
                lo += snprintf(other + lo, sizeof other - lo, "%s rank %d entered '%s' as #%" PRId64, lo ? ";" : "",
                               p, a->what, a->seq);
        }
    }
    if (nlate > 16 && ll < sizeof late) snprintf(late + ll, sizeof late - ll, " and %d more", nlate - 16);
    const char *head = "timeout";
    if (nlate)
        comm_abort(c, 1, "%s: '%s' (collective #%" PRId64 ") did not complete within %.0f s; late rank%s: %s%s%s",
                   head, c->mine.what, c->mine.seq, waited, nlate > 1 ? "s" : "", late,
                   nother ? "; also" : "", other);
    if (nother)
        comm_abort(c, 1, "%s: '%s' (collective #%" PRId64 ") did not complete within %.0f s: ranks call collectives "
                   "in different orders:%s", head, c->mine.what, c->mine.seq, waited, other);
    comm_abort(c, 1, "%s: '%s' (collective #%" PRId64 ") did not complete within %.0f s although every rank entered "
               "it; a rank may have died or be stuck inside MPI", head, c->mine.what, c->mine.seq, waited);
}

/* Tests req[0..n) until all complete: spins (yielding) for the first 2 ms,
 * then sleeps between tests; aborts the job past the timeout. */
static void wait_all(Comm *c, int n, MPI_Request *req, const char *what)
{
    double t0 = clock_now(), last_poll = t0;
    for (;;) {
        int done = 0;
        comm_check_mpi(c, MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE), what);
        if (done) return;
        double t = clock_now(), waited = t - t0;
        if (t - last_poll > 0.01) {
            comm_watch_poll(c);
            last_poll = t;
        }
        if (c->timeout > 0 && waited > c->timeout) comm_watch_expired(c, waited);
        if (waited < 0.002) {
            sched_yield();
        } else {
            double s = comm_backoff(waited, 50e-6, 1e-3);
            struct timespec ts = {0, (long)(s * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
}

/* ---- start-up ------------------------------------------------------------ */

static const char *thread_level_name(int level)
{
    switch (level) {
    case MPI_THREAD_SINGLE: return "MPI_THREAD_SINGLE";
    case MPI_THREAD_FUNNELED: return "MPI_THREAD_FUNNELED";
    case MPI_THREAD_SERIALIZED: return "MPI_THREAD_SERIALIZED";
    case MPI_THREAD_MULTIPLE: return "MPI_THREAD_MULTIPLE";
    }
    return "unknown";
}

Comm *comm_init(int *argc, char ***argv, double timeout, char *err, size_t errlen)
{
    if (!(timeout >= 0)) {
        snprintf(err, errlen, "timeout %g s is negative; give seconds, or 0 to wait forever", timeout);
        return NULL;
    }
    int inited = 0, provided = MPI_THREAD_SINGLE;
    MPI_Initialized(&inited);
    if (!inited) {
        if (MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) {
            snprintf(err, errlen, "MPI_Init_thread failed; run under mpirun, or check the MPI installation");
            return NULL;
        }
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_MULTIPLE) {
        snprintf(err, errlen,
                 "the MPI library offers %s, the gradient communication thread needs MPI_THREAD_MULTIPLE; "
                 "use an MPI built with thread support (Open MPI: --enable-mpi-thread-multiple)",
                 thread_level_name(provided));
        return NULL;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    Comm *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->timeout = timeout;
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->size);
    comm_check_mpi(c, MPI_Comm_dup(MPI_COMM_WORLD, &c->world), "start-up (communicator)");
    comm_check_mpi(c, MPI_Comm_dup(MPI_COMM_WORLD, &c->watch), "start-up (communicator)");
    MPI_Comm_set_errhandler(c->world, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(c->watch, MPI_ERRORS_RETURN);
    int n = c->size;
    c->peer = xcalloc(c, n, sizeof *c->peer, "the watchdog");
    c->inbox = xcalloc(c, n, sizeof *c->inbox, "the watchdog");
    c->outbox = xcalloc(c, n, sizeof *c->outbox, "the watchdog");
    c->recv_req = xcalloc(c, n, sizeof *c->recv_req, "the watchdog");
    c->send_req = xcalloc(c, n, sizeof *c->send_req, "the watchdog");
    c->send_stale = xcalloc(c, n, sizeof *c->send_stale, "the watchdog");
    for (int p = 0; p < n; p++) {
        c->send_req[p] = MPI_REQUEST_NULL;
        c->recv_req[p] = MPI_REQUEST_NULL;
        if (p == c->rank) continue;
        comm_check_mpi(c, MPI_Irecv(&c->inbox[p], sizeof(CommArrival), MPI_BYTE, p, WATCH_TAG, c->watch,
                                    &c->recv_req[p]),
                       "start-up (watchdog)");
    }
    return c;
}

void comm_free(Comm *c)
{
    if (!c) return;
    comm_barrier(c, "shutdown");
    /* every peer's last announcement is this barrier: collect them so no
     * message is left unreceived, then withdraw the receives */
    double t0 = clock_now();
    for (;;) {
        comm_watch_poll(c);
        int all = 1;
        for (int p = 0; p < c->size; p++) all &= c->peer[p].seq >= c->seq;
        if (all || clock_now() - t0 > 2.0) break;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    for (int p = 0; p < c->size; p++) {
        if (c->recv_req[p] != MPI_REQUEST_NULL) {
            MPI_Cancel(&c->recv_req[p]);
            MPI_Wait(&c->recv_req[p], MPI_STATUS_IGNORE);
        }
        if (c->send_req[p] != MPI_REQUEST_NULL) MPI_Wait(&c->send_req[p], MPI_STATUS_IGNORE);
    }
    MPI_Comm_free(&c->world);
    MPI_Comm_free(&c->watch);
    free(c->peer);
    free(c->inbox);
    free(c->outbox);
    free(c->recv_req);
    free(c->send_req);
    free(c->send_stale);
    free(c);
    MPI_Finalize();
}

void comm_library_version(char *out, size_t len)
{
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int n = 0;
    MPI_Get_library_version(v, &n);
    v[strcspn(v, "\n")] = '\0'; /* the first line names it */
    snprintf(out, len, "%s", v);
}

int comm_rank(const Comm *c) { return c->rank; }
int comm_size(const Comm *c) { return c->size; }
double comm_timeout(const Comm *c) { return c->timeout; }
void comm_set_timeout(Comm *c, double timeout) { c->timeout = timeout > 0 ? timeout : 0; }

/* ---- collectives --------------------------------------------------------- */

void comm_broadcast(Comm *c, void *buf, size_t bytes, const char *what)
{
    char label[96];
    snprintf(label, sizeof label, "broadcast of %s", what);
    comm_watch_enter(c, label);
    const size_t piece = (size_t)1 << 30;   /* MPI counts are int */
    for (size_t off = 0; off < bytes; off += piece) {
        size_t len = bytes - off < piece ? bytes - off : piece;
        MPI_Request req;
        comm_check_mpi(c, MPI_Ibcast((char *)buf + off, (int)len, MPI_BYTE, 0, c->world, &req), label);
        wait_all(c, 1, &req, label);
    }
}

uint64_t comm_checksum(const void *buf, size_t bytes)
{
    /* Four independent lanes of (h ^ word) * odd, h ^= h >> 29: each step is a
     * bijection of the word and of the previous state, so changing any single
     * word (any flipped bit) always changes the result. */
    const unsigned char *p = buf;
    const uint64_t mul = 0x9e3779b97f4a7c15ULL;
    uint64_t h[4] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
    size_t i = 0;
    for (; i + 32 <= bytes; i += 32) {
        for (int k = 0; k < 4; k++) {
            uint64_t w;
            memcpy(&w, p + i + 8 * k, 8);
            h[k] = (h[k] ^ w) * mul;
            h[k] ^= h[k] >> 29;
        }
    }
    for (int k = 0; i < bytes; k = (k + 1) & 3) {
        uint64_t w = 0;
        size_t len = bytes - i < 8 ? bytes - i : 8;
        memcpy(&w, p + i, len);
        h[k] = (h[k] ^ w) * mul;
        h[k] ^= h[k] >> 29;
        i += len;
    }
    uint64_t out = (uint64_t)bytes * mul;
    for (int k = 0; k < 4; k++) {
        uint64_t x = h[k] + 0x9e3779b97f4a7c15ULL * (uint64_t)(k + 1);
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
        out ^= x ^ (x >> 31);
    }
    return out;
}

/* every rank's n items of `size` bytes into all: (comm size, n) */
static void allgather(Comm *c, const void *mine, void *all, int n, MPI_Datatype type, const char *what)
{
    MPI_Request req;
    comm_watch_enter(c, what);
    comm_check_mpi(c, MPI_Iallgather(mine, n, type, all, n, type, c->world, &req), what);
    wait_all(c, 1, &req, what);
}

int comm_check_identical(Comm *c, const void *buf, size_t bytes, const char *what, char *err, size_t errlen)
{
    uint64_t mine = comm_checksum(buf, bytes);
    uint64_t *all = xcalloc(c, c->size, sizeof *all, "checksums");
    char label[96];
    snprintf(label, sizeof label, "identical check of %s", what);
    allgather(c, &mine, all, 1, MPI_UINT64_T, label);
    int ndiff = 0;
    size_t len = 0;
    char list[512] = "";
    for (int p = 1; p < c->size; p++) {
        if (all[p] == all[0]) continue;
        if (ndiff++ < 32 && len < sizeof list)
            len += snprintf(list + len, sizeof list - len, "%s%d", len ? ", " : "", p);
    }
    if (ndiff > 32 && len < sizeof list) snprintf(list + len, sizeof list - len, " and %d more", ndiff - 32);
    if (ndiff)
        snprintf(err, errlen, "%s differ from rank 0's on rank%s %s (checksum %016" PRIx64 " on rank 0); "
                 "the replicas did not start identical", what, ndiff > 1 ? "s" : "", list, all[0]);
    free(all);
    return ndiff ? -1 : 0;
}

void comm_allreduce_double(Comm *c, double *v, int n, CommOp op, const char *what)
{
    if (n <= 0) return;
    double *all = xcalloc(c, (size_t)c->size * n, sizeof *all, what);
    allgather(c, v, all, n, MPI_DOUBLE, what);
    for (int i = 0; i < n; i++) {
        double acc = all[i];
        for (int p = 1; p < c->size; p++) {
            double x = all[(size_t)p * n + i];
            if (op == COMM_SUM) acc += x;
            else if (op == COMM_MAX) acc = x > acc ? x : acc;
            else acc = x < acc ? x : acc;
        }
        v[i] = acc;
    }
    free(all);
}

void comm_allreduce_int64(Comm *c, int64_t *v, int n, CommOp op, const char *what)
{
    if (n <= 0) return;
    int64_t *all = xcalloc(c, (size_t)c->size * n, sizeof *all, what);
    allgather(c, v, all, n, MPI_INT64_T, what);
    for (int i = 0; i < n; i++) {
        int64_t acc = all[i];
        for (int p = 1; p < c->size; p++) {
            int64_t x = all[(size_t)p * n + i];
            if (op == COMM_SUM) acc += x;
            else if (op == COMM_MAX) acc = x > acc ? x : acc;
            else acc = x < acc ? x : acc;
        }
        v[i] = acc;
    }
    free(all);
}

int comm_any(Comm *c, int flag, const char *what)
{
    int64_t v = flag != 0;
    comm_allreduce_int64(c, &v, 1, COMM_MAX, what);
    return v != 0;
}

void comm_barrier(Comm *c, const char *what)
{
    char label[96];
    snprintf(label, sizeof label, "barrier (%s)", what);
    comm_watch_enter(c, label);
    MPI_Request req;
    comm_check_mpi(c, MPI_Ibarrier(c->world, &req), label);
    wait_all(c, 1, &req, label);
}

void comm_allgather_string(Comm *c, const char *mine, char *all, size_t len, const char *what)
{
    if (len == 0) return;
    if (len > (size_t)1 << 20) comm_abort(c, 1, "status string length %zu is too long for %s", len, what);
    char *tmp = xcalloc(c, len, 1, what);
    snprintf(tmp, len, "%s", mine ? mine : "");
    allgather(c, tmp, all, (int)len, MPI_CHAR, what);
    for (int p = 0; p < c->size; p++) all[(size_t)p * len + len - 1] = '\0';
    free(tmp);
}

int comm_agree(Comm *c, int failed, const char *msg, char *err, size_t errlen)
{
    if (!comm_any(c, failed, "error check")) return 0;
    /* every rank learns the lowest failing rank's words, so that whichever
     * rank prints (rank 0, by the callers' rule) prints the same line */
    enum { SLOT = 512 };
    char *all = xcalloc(c, (size_t)c->size, SLOT, "error messages");
    comm_allgather_string(c, failed ? (msg && msg[0] ? msg : "failed") : "", all, SLOT, "error messages");
    for (int r = 0; r < c->size; r++) {
        const char *m = all + (size_t)r * SLOT;
        if (!m[0]) continue;
        if (errlen) {
            if (c->size > 1) snprintf(err, errlen, "rank %d: %s", r, m);
            else snprintf(err, errlen, "%s", m);
        }
        break;
    }
    free(all);
    return -1;
}

void comm_request_stop(void) { stop_flag = 1; }
int comm_stop_requested(void) { return stop_flag != 0; }
int comm_stop_agreed(Comm *c) { return comm_any(c, stop_flag != 0, "stop flag"); }
