/* train/stop.c: the stop signals and rank 0's emergency checkpoint thread
 * (see train/stop.h). The signal handler only records the signal, asks for a
 * stop and posts a semaphore: everything else happens in the thread. */
#include "trainer/train/stop.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"

static sem_t urgent_sem;
static volatile sig_atomic_t first_signal;
static pthread_once_t sem_once = PTHREAD_ONCE_INIT;

static void sem_setup(void) { sem_init(&urgent_sem, 0, 0); }

static void on_signal(int sig)
{
    if (!first_signal) first_signal = sig;
    comm_request_stop();
    if (sig == SIGTERM || sig == SIGINT) sem_post(&urgent_sem); /* async-signal-safe */
}

void train_stop_handlers(void)
{
    pthread_once(&sem_once, sem_setup);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
}

int train_stop_signal(void) { return first_signal; }

int train_stop_urgent(void) { return first_signal == SIGTERM || first_signal == SIGINT; }

const char *train_stop_name(int sig)
{
    switch (sig) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    case SIGUSR2: return "SIGUSR2";
    default: return "a signal";
    }
}

struct TrainStop {
    CkptWriter *writer;
    TrainStopSnapshot snapshot;
    void *ctx;
    pthread_mutex_t state;
    pthread_t thread;
    volatile int quit;
};

/* One emergency checkpoint per wake-up, of the last completed step. */
static void emergency_write(TrainStop *s)
{
    CkptMeta meta;
    const float *w = NULL, *m = NULL, *a = NULL;
    char err[1200];
    double secs = 0;
    pthread_mutex_lock(&s->state);
    ckpt_meta_init(&meta);
    int on_disk = s->snapshot(s->ctx, &meta, &w, &m, &a);
    int rc = on_disk ? 0 : ckpt_writer_save_now(s->writer, &meta, w, m, a, &secs, err, sizeof err);
    pthread_mutex_unlock(&s->state);
    char name[64];
    ckpt_file_name(meta.step, name, sizeof name);
    if (on_disk == TRAIN_STOP_NOTHING)
        fprintf(stderr, "googlenet train: %s: no step done yet, nothing to save\n", train_stop_name(train_stop_signal()));
    else if (on_disk)
        fprintf(stderr, "googlenet train: %s: step %ld is already in a complete checkpoint; finishing the step in progress\n",
                train_stop_name(train_stop_signal()), meta.step);
    else if (rc == 0)
        fprintf(stderr, "googlenet train: %s: emergency checkpoint %s of step %ld written in %.2f s (%.0f MB, "
                "uncompressed); finishing the step in progress\n", train_stop_name(train_stop_signal()), name,
                meta.step, secs, 3.0 * meta.num_params * sizeof(float) / 1e6);
    else
        fprintf(stderr, "googlenet train: %s: the emergency checkpoint failed: %s\n",
                train_stop_name(train_stop_signal()), err);
    ckpt_meta_free(&meta);
}

static void *stop_main(void *arg)
{
    TrainStop *s = arg;
    for (;;) {
        while (sem_wait(&urgent_sem) != 0 && errno == EINTR) continue;
        if (s->quit) break;
        emergency_write(s);
    }
    return NULL;
}

TrainStop *train_stop_start(CkptWriter *w, TrainStopSnapshot snapshot, void *ctx, char *err, size_t errlen)
{
    pthread_once(&sem_once, sem_setup);
    TrainStop *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->writer = w;
    s->snapshot = snapshot;
    s->ctx = ctx;
    pthread_mutex_init(&s->state, NULL);
    /* signals go to the training threads: this one only waits */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&s->thread, NULL, stop_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_mutex_destroy(&s->state);
        free(s);
        snprintf(err, errlen, "cannot start the emergency checkpoint thread");
        return NULL;
    }
    return s;
}

void train_stop_lock(TrainStop *s)
{
    if (s) pthread_mutex_lock(&s->state);
}

void train_stop_unlock(TrainStop *s)
{
    if (s) pthread_mutex_unlock(&s->state);
}

void train_stop_free(TrainStop *s)
{
    if (!s) return;
    s->quit = 1;
    sem_post(&urgent_sem);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->state);
    free(s);
}
