/* internal.h: what comm.c shares with allreduce.c: the Comm struct, the clock,
 * MPI error checks and the watchdog. Not for use outside comm/.
 */
#ifndef COMM_INTERNAL_H
#define COMM_INTERNAL_H

#include <mpi.h>

#include "comm/clock.h"
#include "comm/comm.h"

/* A rank's announcement on the watchdog's side channel: it has entered its
 * collective number `seq`, described by `what`. */
typedef struct {
    int64_t seq;
    char what[56];
} CommArrival;

struct Comm {
    int rank, size;
    double timeout;          /* seconds; 0 = no watchdog */
    MPI_Comm world;          /* duplicate of MPI_COMM_WORLD for the main thread's collectives */
    MPI_Comm watch;          /* duplicate for the arrival announcements */
    int64_t seq;             /* collectives this rank has entered */
    CommArrival mine;        /* the current one */
    CommArrival *peer;       /* (size) latest announcement received from each rank */
    CommArrival *inbox;      /* (size) receive buffer per rank */
    CommArrival *outbox;     /* (size) send buffer per rank */
    MPI_Request *recv_req;   /* (size) one posted receive per other rank */
    MPI_Request *send_req;   /* (size) the last send to each other rank */
    int *send_stale;         /* (size) 1: `mine` changed while the last send was in flight */
};

/* How long to sleep before testing again after `idle` seconds without news:
 * an eighth of that, within [min, max]. Each sleep costs ~10 us of CPU (the
 * wake-up), so long waits cost little, and a late peer is noticed after at
 * most max, or idle / 8. */
double comm_backoff(double idle, double min, double max);

/* Aborts the job with a message naming `what` when rc is not MPI_SUCCESS. */
void comm_check_mpi(Comm *c, int rc, const char *what);

/* The watchdog: announce entry into a collective to every other rank; drain
 * the announcements received so far; abort naming the late ranks. Main thread only. */
void comm_watch_enter(Comm *c, const char *what);
void comm_watch_poll(Comm *c);
_Noreturn void comm_watch_expired(Comm *c, double waited);

#endif
