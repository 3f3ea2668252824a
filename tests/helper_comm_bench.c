/* helper_comm_bench.c: timings of comm/ for scripts/bench_allreduce.sh (run
 * under mpirun). Prints figures; judges nothing.
 *
 *   raw    the allreducer over 13,378,280 floats with no compute (every bucket
 *          in finish), against MPI_Allreduce of the same buffer, and the
 *          broadcast of it: ms per operation.
 *   model  GoogLeNet training steps (forward, backward with the allreducer's
 *          hook, finish) on random data: forward / backward / exposed / comm
 *          seconds per step, and the CPU seconds of backward's thread and of
 *          the communication thread (CPU times stay meaningful on a loaded
 *          machine, wall times do not), and the tail: the time from the moment
 *          the last rank entered finish() until the last one left it (one node
 *          only: it compares CLOCK_MONOTONIC between processes). --comm off runs the same compute with no
 *          communication, the baseline that shows how much the communication
 *          slows backward down.
 *
 * Options: --mode raw|model --comm off|overlap|nooverlap --poll-us US
 *          --bucket-mb MB --compress none|bf16|fp16 --batch B --crop C
 *          --steps S --warmup W --reps R
 * Output (rank 0): one line "key=value ..." per run; times are the mean over
 * steps of the slowest rank.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/comm.h"
#include "comm/clock.h"
#include "nn/model.h"
#include "nn/parallel.h"

typedef struct {
    const char *mode, *comm;
    int poll_us, batch, crop, steps, warmup, reps;
    double bucket_mb;
    CommCompress compress;
} Opts;

static void run_raw(Comm *c, const Opts *o)
{
    const size_t n = 13378280;
    char err[256];
    float *g = malloc(n * sizeof *g);
    if (!g) comm_abort(c, 1, "out of memory");
    for (size_t i = 0; i < n; i++) g[i] = (float)(i % 1000) * 1e-3f;
    CommAllreducer *ar = comm_allreducer_init(c, g, n, (size_t)(o->bucket_mb * 1048576), o->compress, 0, err,
                                              sizeof err);
    if (!ar) comm_abort(c, 1, "%s", err);
    double t[4] = {0, 0, 0, 0};
    CommStepStats st = {0};
    for (int r = -1; r < o->reps; r++) {
        comm_barrier(c, "bench");
        double t0 = clock_now();
        comm_allreducer_begin(ar);
        comm_allreducer_finish(ar, &st);
        double t1 = clock_now();
        MPI_Allreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t2 = clock_now();
        comm_broadcast(c, g, n * sizeof *g, "bench weights");
        double t3 = clock_now();
        if (r >= 0) {
            t[0] += t1 - t0;
            t[1] += t2 - t1;
            t[2] += t3 - t2;
            t[3] += st.comm_cpu_seconds;
        }
        for (size_t i = 0; i < n; i++) g[i] = (float)(i % 1000) * 1e-3f;
    }
    comm_allreduce_double(c, t, 4, COMM_MAX, "bench times");
    if (comm_rank(c) == 0)
        printf("raw np=%d floats=%zu bucket_mb=%g compress=%s buckets=%d allreducer_ms=%.1f mpi_allreduce_ms=%.1f "
               "broadcast_ms=%.1f bytes_sent=%llu allreducer_cpu_ms=%.1f\n",
               comm_size(c), n, o->bucket_mb, comm_compress_name(o->compress), comm_allreducer_num_buckets(ar),
               1e3 * t[0] / o->reps, 1e3 * t[1] / o->reps, 1e3 * t[2] / o->reps, (unsigned long long)st.bytes_sent, 1e3 * t[3] / o->reps);
    comm_allreducer_free(ar);
    free(g);
}

static void run_model(Comm *c, const Opts *o)
{
    char err[256];
    ModelConfig cfg = model_default_config();
    cfg.batch = o->batch;
    cfg.crop = o->crop;
    cfg.training = 1;
    Model *m = model_init(&cfg, err, sizeof err);
    if (!m) comm_abort(c, 1, "%s", err);
    model_init_weights(m, 1);
    size_t np = model_num_params(m), in = (size_t)o->batch * 3 * o->crop * o->crop;
    float *input = malloc(in * sizeof *input);
    int *labels = malloc(o->batch * sizeof *labels);
    if (!input || !labels) comm_abort(c, 1, "out of memory");
    for (size_t i = 0; i < in; i++) input[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    for (int i = 0; i < o->batch; i++) labels[i] = (i * 37 + comm_rank(c)) % cfg.classes;
    CommAllreducer *ar = NULL;
    if (strcmp(o->comm, "off") != 0) {
        ar = comm_allreducer_init(c, model_grads(m), np, (size_t)(o->bucket_mb * 1048576), o->compress,
                                  !strcmp(o->comm, "overlap"), err, sizeof err);
        if (!ar) comm_abort(c, 1, "%s", err);
        comm_allreducer_set_poll_us(ar, o->poll_us);
    }
    /* forward, backward, exposed, comm, step, backward CPU (this thread), comm thread CPU */
    double sum[7] = {0, 0, 0, 0, 0, 0, 0}, tail = 0;
    for (int s = 0; s < o->warmup + o->steps; s++) {
        comm_barrier(c, "step");
        double t0 = clock_now();
        ModelStats ms;
        memset(model_grads(m), 0, np * sizeof(float));
        model_forward(m, input, labels, o->batch, MODEL_TRAIN, (uint64_t)s, &ms);
        double t1 = clock_now();
        CommStepStats st = {0};
        if (ar) comm_allreducer_begin(ar);
        double c1 = clock_cpu_thread();
        model_backward(m, 1.0f / o->batch, ar ? comm_allreducer_ready : NULL, ar);
        double t2 = clock_now(), c2 = clock_cpu_thread();
        if (ar) comm_allreducer_finish(ar, &st);
        double t3 = clock_now();
        if (s >= o->warmup) {
            double v[7] = {t1 - t0, t2 - t1, t3 - t2, st.comm_seconds, t3 - t0, c2 - c1, st.comm_cpu_seconds};
            comm_allreduce_double(c, v, 7, COMM_MAX, "bench times");
            for (int k = 0; k < 7; k++) sum[k] += v[k];
            /* CLOCK_MONOTONIC is one clock for the whole machine: the part of
             * finish() after the LAST rank entered it is communication no
             * amount of balance between the ranks would hide */
            double last_in = t2, last_out = t3;
            comm_allreduce_double(c, &last_in, 1, COMM_MAX, "bench times");
            comm_allreduce_double(c, &last_out, 1, COMM_MAX, "bench times");
            tail += last_out - last_in;
        }
    }
    if (comm_rank(c) == 0) {
        double k = 1.0 / o->steps;
        printf("model np=%d batch=%d crop=%d comm=%s poll_us=%d bucket_mb=%g compress=%s forward_s=%.3f "
               "backward_s=%.3f exposed_ms=%.1f comm_ms=%.1f step_s=%.3f hidden_pct=%.1f backward_cpu_s=%.3f "
               "comm_cpu_ms=%.1f tail_ms=%.1f\n",
               comm_size(c), o->batch, o->crop, o->comm, o->poll_us, o->bucket_mb, comm_compress_name(o->compress),
               sum[0] * k, sum[1] * k, 1e3 * sum[2] * k, 1e3 * sum[3] * k, sum[4] * k,
               sum[3] > 0 ? 100.0 * (1.0 - sum[2] / sum[3]) : 0.0, sum[5] * k, 1e3 * sum[6] * k, 1e3 * tail * k);
    }
    comm_allreducer_free(ar);
    model_free(m);
    free(input);
    free(labels);
}

int main(int argc, char **argv)
{
    Opts o = {.mode = "raw", .comm = "overlap", .poll_us = COMM_DEFAULT_POLL_US, .batch = 8, .crop = 224,
              .steps = 3, .warmup = 1, .reps = 10, .bucket_mb = 25};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--mode")) o.mode = v;
        else if (!strcmp(k, "--comm")) o.comm = v;
        else if (!strcmp(k, "--poll-us")) o.poll_us = atoi(v);
        else if (!strcmp(k, "--bucket-mb")) o.bucket_mb = atof(v);
        else if (!strcmp(k, "--compress")) { if (comm_compress_parse(v, &o.compress)) return 2; }
        else if (!strcmp(k, "--batch")) o.batch = atoi(v);
        else if (!strcmp(k, "--crop")) o.crop = atoi(v);
        else if (!strcmp(k, "--steps")) o.steps = atoi(v);
        else if (!strcmp(k, "--warmup")) o.warmup = atoi(v);
        else if (!strcmp(k, "--reps")) o.reps = atoi(v);
        else {
            fprintf(stderr, "helper_comm_bench: unknown option %s\n", k);
            return 2;
        }
    }
    char err[256];
    Comm *c = comm_init(&argc, &argv, 120, err, sizeof err);
    if (!c) {
        fprintf(stderr, "helper_comm_bench: %s\n", err);
        return 1;
    }
    parallel_set_threads(1);
    if (!strcmp(o.mode, "raw")) run_raw(c, &o);
    else run_model(c, &o);
    comm_free(c);
    return 0;
}
