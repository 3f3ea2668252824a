/* train/stop.h: a run stopped by a signal loses at most the step in progress.
 *
 * SIGUSR1 and SIGUSR2 ask for a graceful stop: every rank finishes the same
 * step, rank 0 writes a checkpoint, the job exits 3. SIGTERM and SIGINT ask
 * for the same, and rank 0 also writes at once, from a thread of its own, an
 * emergency checkpoint of the last completed step: the launcher may kill the
 * ranks soon after (Open MPI's mpirun sends SIGTERM and then SIGKILL
 * odls_base_sigkill_timeout seconds apart, 1 by default; Slurm waits
 * KillWait). The emergency checkpoint is uncompressed and renamed before it is
 * flushed (ckpt_writer_save_now), so it takes about as long as copying the
 * state into the page cache.
 *
 * The training state (weights, momentum, average and the position) may change
 * only under train_stop_lock, so that the thread never writes a half-applied
 * update.
 */
#ifndef TRAINER_TRAIN_STOP_H
#define TRAINER_TRAIN_STOP_H

#include <stddef.h>

#include "trainer/ckpt/ckpt.h"

/* Installs the handlers of SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 (each asks
 * comm_request_stop; SIGTERM and SIGINT also wake the emergency thread). */
void train_stop_handlers(void);
/* The first stop signal this process received, 0 when none. */
int train_stop_signal(void);
/* It was SIGTERM or SIGINT: the process may be killed soon. */
int train_stop_urgent(void);
/* "SIGTERM", ... */
const char *train_stop_name(int sig);

/* Called by the emergency thread with the state locked: fills meta and the
 * three state buffers of the last completed step. Returns 0 (write them),
 * TRAIN_STOP_ON_DISK (that step is already in a complete checkpoint) or
 * TRAIN_STOP_NOTHING (no step done yet). */
enum { TRAIN_STOP_ON_DISK = 1, TRAIN_STOP_NOTHING = 2 };
typedef int (*TrainStopSnapshot)(void *ctx, CkptMeta *meta, const float **weights, const float **momentum,
                                 const float **average);

typedef struct TrainStop TrainStop;

/* Rank 0: starts the emergency thread over writer w. */
TrainStop *train_stop_start(CkptWriter *w, TrainStopSnapshot snapshot, void *ctx, char *err, size_t errlen);
/* NULL-safe: a rank without the thread locks nothing. */
void train_stop_lock(TrainStop *s);
void train_stop_unlock(TrainStop *s);
/* Stops and joins the thread (waits for a write in progress). */
void train_stop_free(TrainStop *s);

#endif
