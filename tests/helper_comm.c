/* helper_comm.c: drives comm/ under mpirun for tests/test_comm.sh. One mode per
 * run; each checks what it can itself and exits 0 only when every check passed
 * (on every rank: the verdict is agreed with comm_any), printing what failed.
 *
 *   sum       for each bucket size of --bucket B1,B2,... with overlap on and off:
 *             bucketed allreduce against references computed locally from every
 *             rank's (reproducible) gradients: bitwise equal to the rank-order
 *             fp32 sum and to MPI_Allreduce (np=2), or within the 16-bit rounding
 *             bound; ready() in random decreasing steps over gradients that are
 *             NaN until "backward" reaches them. fp32 results must not depend on
 *             the bucket size or overlap. Prints a checksum of the results.
 *   identical broadcast from rank 0, then the identical check, optionally after
 *             flipping one bit on one rank.
 *   metrics   allreduce of doubles / int64, comm_any, allgather of strings,
 *             comm_agree (the lowest failing rank's message on every rank), the
 *             stop flag.
 *   late      rank --late sleeps --sleep seconds before collective --where
 *             (allreduce, barrier, broadcast, metrics): the watchdog must abort.
 *   abort     rank --late calls comm_abort while the others wait in a barrier.
 *   loop      allreduce steps until killed; writes DIR/rank<r>.pid first.
 *
 * Options: --n N --bucket BYTES --compress none|bf16|fp16 
 *          --steps S --seed X --timeout T --late R --sleep S --where W
 *          --flip-rank R --flip-bit B --dir DIR
 */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm.h"
#include "comm/clock.h"

typedef struct {
    const char *mode;
    size_t n, bucket;       /* bucket: the first of `buckets` */
    const char *buckets;
    CommCompress compress;
    int steps, late, flip_rank, flip_bit;
    uint64_t seed;
    double timeout, sleep;
    const char *where, *dir;
} Opts;

static int failures;

#define CHECK(cond, ...)                                                                                 \
    do {                                                                                                 \
        if (!(cond)) {                                                                                   \
            if (failures++ < 20) {                                                                       \
                fprintf(stderr, "helper_comm [rank %d] %s:%d: check failed: ", rank_, __FILE__, __LINE__); \
                fprintf(stderr, __VA_ARGS__);                                                            \
                fprintf(stderr, "\n");                                                                   \
            }                                                                                            \
        }                                                                                                \
    } while (0)

static int rank_;

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* rank r's gradient i at step s: signed, magnitudes spread over 2^-24 .. 2^2,
 * with runs of exact zeros, so the fp16 scaling and bf16 range both matter */
static float grad_value(uint64_t seed, int step, int r, size_t i)
{
    uint64_t h = mix(seed ^ mix((uint64_t)step * 1000003u + (uint64_t)r) ^ mix(i));
    if ((h & 63) == 0) return 0.0f;
    float u = (float)((h >> 11) & 0xffffff) / 16777216.0f + 0.5f;   /* [0.5, 1.5) */
    int e = (int)((i / 4096 + (h >> 40)) % 27) - 24;                /* per 4096-block spread */
    float v = ldexpf(u, e);
    return (h >> 8) & 1 ? -v : v;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* ---- sum ------------------------------------------------------------------ */

static void sum_one(Comm *c, const Opts *o, size_t bucket, int overlap, uint64_t *out_checksum)
{
    int rank = comm_rank(c), p = comm_size(c);
    char err[512];
    float *grads = malloc(o->n * sizeof *grads);
    float *want = malloc(o->n * sizeof *want);
    float *mpi = malloc(o->n * sizeof *mpi);
    double *bound = malloc(o->n * sizeof *bound);
    double *magn = malloc(o->n * sizeof *magn);
    if (!grads || !want || !mpi || !bound || !magn) comm_abort(c, 1, "out of memory");
    CommAllreducer *ar = comm_allreducer_init(c, grads, o->n, bucket, o->compress, overlap, err, sizeof err);
    if (!ar) comm_abort(c, 1, "allreducer: %s", err);
    double u = o->compress == COMM_COMPRESS_BF16 ? 0x1p-8 : 0x1p-11;
    uint64_t checksum = 0;
    for (int step = 0; step < o->steps; step++) {
        /* references */
        size_t inexact = 0;
        for (size_t i = 0; i < o->n; i++) {
            float acc = grad_value(o->seed, step, 0, i);
            double exact = acc, mag = fabs(acc);
            for (int r = 1; r < p; r++) {
                float g = grad_value(o->seed, step, r, i);
                acc += g;
                exact += g;
                mag += fabs(g);
            }
            want[i] = acc;
            /* each contribution and the sum are rounded once to 16 bits (relative
             * u), fp16's power-of-two scaling loses at most 2^-25 of its slice's
             * largest value per element (bounded here by 2^2 * 2^-25 * 2), and
             * the fp32 additions are accurate to p 2^-24 of the magnitudes */
            magn[i] = mag;
            bound[i] = u * mag + u * (fabs(exact) + u * mag) + p * 0x1p-24 * mag + 0x1p-20;
            mpi[i] = grad_value(o->seed, step, rank, i);
        }
        MPI_Allreduce(MPI_IN_PLACE, mpi, (int)o->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);

        /* "backward": gradients are NaN until they become final */
        for (size_t i = 0; i < o->n; i++) grads[i] = NAN;
        comm_allreducer_begin(ar);
        uint64_t key = mix(o->seed ^ 0xbacc ^ (uint64_t)step * 77 ^ (uint64_t)rank);
        size_t at = o->n;
        for (int k = 0; at > 0; k++) {
            uint64_t h = mix(key + (uint64_t)k);
            /* steps of 0 (the same offset again), 1, or up to n/7 */
            size_t stepsz = h % 5 == 0 ? 0 : (h & 0x300) == 0 ? 1 : 1 + (size_t)(h >> 12) % (o->n / 7 + 1);
            size_t from = stepsz >= at ? 0 : at - stepsz;
            for (size_t i = from; i < at; i++) grads[i] = grad_value(o->seed, step, rank, i);
            if ((h >> 20) % 7 == 0) sleep_s(0.0005);
            /* sometimes backward's last call never comes: finish() must start the rest */
            if (from == 0 && (h >> 30) % 2 == 0) break;
            comm_allreducer_ready(ar, from);
            at = from;
        }
        /* other collectives may run while buckets are in flight */
        double one = 1;
        comm_allreduce_double(c, &one, 1, COMM_SUM, "metrics during the step");
        CHECK(one == p, "metrics during the step: %g", one);
        CommStepStats st;
        comm_allreducer_finish(ar, &st);

        for (size_t i = 0; i < o->n; i++) {
            if (o->compress == COMM_COMPRESS_NONE) {
                CHECK(memcmp(&grads[i], &want[i], 4) == 0, "step %d: grads[%zu] = %.9g, rank-order sum %.9g", step, i,
                      grads[i], want[i]);
                if (p == 2)
                    CHECK(memcmp(&grads[i], &mpi[i], 4) == 0, "step %d: grads[%zu] = %.9g, MPI_Allreduce %.9g", step,
                          i, grads[i], mpi[i]);
                else
                    CHECK(fabs((double)grads[i] - mpi[i]) <= 2 * p * 0x1p-24 * magn[i],
                          "step %d: grads[%zu] = %.9g, MPI_Allreduce %.9g", step, i, grads[i], mpi[i]);
            } else {
                double d = fabs((double)grads[i] - (double)want[i]);
                CHECK(d <= bound[i], "step %d: %s grads[%zu] = %.9g, fp32 sum %.9g, error %.3g above bound %.3g",
                      step, comm_compress_name(o->compress), i, grads[i], want[i], d, bound[i]);
                inexact += grads[i] != want[i];
            }
        }
        if (o->compress != COMM_COMPRESS_NONE)
            CHECK(inexact > 0, "step %d: %s gave the exact fp32 sums: were 16 bits sent?", step,
                  comm_compress_name(o->compress));
        int nb = comm_allreducer_num_buckets(ar);
        CHECK(st.buckets == nb, "stats name %d buckets, allreducer has %d", st.buckets, nb);
        if (p == 2) {
            /* each rank sends the other half of every bucket, then its own half */
            uint64_t expect = o->compress == COMM_COMPRESS_NONE ? 4 * (uint64_t)o->n : 2 * (uint64_t)o->n + 8 * (uint64_t)nb;
            CHECK(st.bytes_sent == expect, "bytes sent %llu, expected %llu", (unsigned long long)st.bytes_sent,
                  (unsigned long long)expect);
        }
        CHECK(st.exposed_seconds >= 0 && st.comm_seconds >= 0, "negative times");
        if (comm_check_identical(c, grads, o->n * sizeof *grads, "summed gradients", err, sizeof err) != 0)
            CHECK(0, "%s", err);
        checksum ^= comm_checksum(grads, o->n * sizeof *grads) + (uint64_t)step;
    }
    if (rank == 0)
        printf("sum n=%zu bucket=%zu compress=%s overlap=%d buckets=%d checksum=%016llx\n", o->n, bucket,
               comm_compress_name(o->compress), overlap, comm_allreducer_num_buckets(ar),
               (unsigned long long)checksum);
    *out_checksum = checksum;
    comm_allreducer_free(ar);
    free(grads);
    free(want);
    free(mpi);
    free(bound);
    free(magn);
}

/* every bucket size in --bucket (a comma-separated list) with overlap on and
 * off; fp32 sums must not depend on either */
static int run_sum(Comm *c, const Opts *o)
{
    uint64_t first = 0;
    int nconf = 0;
    for (const char *b = o->buckets; *b;) {
        char *end;
        size_t bucket = strtoull(b, &end, 10);
        for (int overlap = 1; overlap >= 0; overlap--) {
            uint64_t sum;
            sum_one(c, o, bucket, overlap, &sum);
            if (nconf++ == 0) first = sum;
            else if (o->compress == COMM_COMPRESS_NONE)
                CHECK(sum == first, "buckets of %zu bytes, overlap %d: sums differ from the first configuration's",
                      bucket, overlap);
        }
        b = *end == ',' ? end + 1 : end;
    }
    if (comm_rank(c) == 0) printf("sum: %d configurations, checksum=%016llx\n", nconf, (unsigned long long)first);
    return 0;
}

/* ---- identical -------------------------------------------------------------- */

static int run_identical(Comm *c, const Opts *o)
{
    int rank = comm_rank(c);
    char err[512] = "";
    size_t n = o->n;
    float *w = malloc(n * sizeof *w);
    if (!w) comm_abort(c, 1, "out of memory");
    for (size_t i = 0; i < n; i++) w[i] = rank == 0 ? grad_value(o->seed, 0, 0, i) : (float)rank;
    comm_broadcast(c, w, n * sizeof *w, "initial weights");
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += w[i] != grad_value(o->seed, 0, 0, i);
    CHECK(bad == 0, "%zu values differ from rank 0's after the broadcast", bad);
    if (rank == o->flip_rank) {
        size_t byte = (size_t)o->flip_bit / 8 % (n * sizeof *w);
        ((unsigned char *)w)[byte] ^= (unsigned char)(1u << (o->flip_bit % 8));
    }
    int rc = comm_check_identical(c, w, n * sizeof *w, "initial weights", err, sizeof err);
    if (o->flip_rank >= 0) {
        char name[32];
        snprintf(name, sizeof name, "rank %d ", o->flip_rank);
        CHECK(rc == -1, "a flipped bit on rank %d went unnoticed", o->flip_rank);
        /* a flip on rank 0 makes every other rank differ from it */
        if (o->flip_rank > 0) CHECK(strstr(err, name) != NULL, "message does not name %s: %s", name, err);
        if (rank == 0) printf("identical: %s\n", err);
    } else {
        CHECK(rc == 0, "identical replicas reported as different: %s", err);
        if (rank == 0) printf("identical: all %d ranks agree\n", comm_size(c));
    }
    free(w);
    return 0;
}

/* ---- metrics ----------------------------------------------------------------- */

static int run_metrics(Comm *c, const Opts *o)
{
    int rank = comm_rank(c), p = comm_size(c);
    double d[3] = {0.1 * (rank + 1), (double)rank, -(double)rank};
    double dsum = 0;
    for (int r = 0; r < p; r++) dsum += 0.1 * (r + 1);
    double dmax[3], dmin[3];
    memcpy(dmax, d, sizeof d);
    memcpy(dmin, d, sizeof d);
    comm_allreduce_double(c, d, 3, COMM_SUM, "loss");
    comm_allreduce_double(c, dmax, 3, COMM_MAX, "loss max");
    comm_allreduce_double(c, dmin, 3, COMM_MIN, "loss min");
    CHECK(d[0] == dsum, "sum of doubles %.17g, expected %.17g", d[0], dsum);
    CHECK(dmax[1] == p - 1 && dmin[1] == 0 && dmax[2] == 0 && dmin[2] == -(p - 1), "max/min of doubles");
    int64_t l[2] = {(int64_t)1 << 40, rank};
    comm_allreduce_int64(c, l, 2, COMM_SUM, "counts");
    CHECK(l[0] == ((int64_t)p << 40) && l[1] == (int64_t)p * (p - 1) / 2, "sum of int64");
    CHECK(comm_any(c, rank == p - 1, "any") == 1, "comm_any missed a flag");
    CHECK(comm_any(c, 0, "any") == 0, "comm_any invented a flag");
    char mine[64], all[64 * 16];
    snprintf(mine, sizeof mine, "rank%d-status-long-text", rank);   /* comm truncates it to 15 bytes */
    comm_allgather_string(c, mine, all, 16, "status");
    for (int r = 0; r < p && r < 64; r++) {
        char want[64];
        snprintf(want, sizeof want, "rank%d-status-long-text", r);
        want[15] = '\0';
        CHECK(strcmp(all + r * 16, want) == 0, "status of rank %d: '%s'", r, all + r * 16);
    }
    char agreed[128] = "untouched";
    CHECK(comm_agree(c, 0, "", agreed, sizeof agreed) == 0 && !strcmp(agreed, "untouched"),
          "comm_agree reported a failure when no rank failed");
    char why[64];
    snprintf(why, sizeof why, "failure on rank %d", rank);
    /* ranks 1.. fail (or rank 0 alone): every rank must get the lowest failing rank's words */
    int failing = p > 1 ? rank >= 1 : 1;
    CHECK(comm_agree(c, failing, why, agreed, sizeof agreed) == -1, "comm_agree missed a failure");
    if (p > 1) CHECK(!strcmp(agreed, "rank 1: failure on rank 1"), "comm_agree gave '%s'", agreed);
    else CHECK(!strcmp(agreed, "failure on rank 0"), "comm_agree gave '%s'", agreed);
    CHECK(comm_stop_agreed(c) == 0, "stop agreed without a request");
    if (rank == p - 1) comm_request_stop();
    CHECK(comm_stop_requested() == (rank == p - 1), "stop requested flag");
    CHECK(comm_stop_agreed(c) == 1, "rank %d's stop request was not agreed", p - 1);
    comm_barrier(c, "end of metrics");
    if (rank == 0) printf("metrics: ok on %d ranks\n", p);
    (void)o;
    return 0;
}

/* ---- late, abort, loop ------------------------------------------------------ */

static int run_late(Comm *c, const Opts *o)
{
    int rank = comm_rank(c);
    size_t n = o->n;
    char err[256];
    float *grads = calloc(n, sizeof *grads);
    CommAllreducer *ar = comm_allreducer_init(c, grads, n, o->bucket, o->compress, 1, err, sizeof err);
    if (!ar) comm_abort(c, 1, "allreducer: %s", err);
    for (int step = 0; step < 3; step++) {
        int late = rank == o->late && step == 1;
        if (late) fprintf(stderr, "helper_comm [rank %d] sleeping %.1f s before the %s\n", rank, o->sleep, o->where);
        if (late && !strcmp(o->where, "allreduce")) sleep_s(o->sleep);
        comm_allreducer_begin(ar);
        comm_allreducer_ready(ar, n / 2);
        comm_allreducer_finish(ar, NULL);
        if (late && !strcmp(o->where, "barrier")) sleep_s(o->sleep);
        comm_barrier(c, "end of step");
        if (late && !strcmp(o->where, "broadcast")) sleep_s(o->sleep);
        comm_broadcast(c, grads, n * sizeof *grads, "weights");
        if (late && !strcmp(o->where, "metrics")) sleep_s(o->sleep);
        double loss = 1;
        comm_allreduce_double(c, &loss, 1, COMM_SUM, "loss");
    }
    comm_allreducer_free(ar);
    free(grads);
    if (rank == 0) printf("late: no rank was late\n");
    return 0;
}

static int run_abort(Comm *c, const Opts *o)
{
    if (comm_rank(c) == o->late) {
        sleep_s(o->sleep);
        comm_abort(c, 3, "cannot read shard 7: disk full (helper's deliberate error)");
    }
    comm_barrier(c, "waiting for the failing rank");
    return 0;
}

static int run_loop(Comm *c, const Opts *o)
{
    int rank = comm_rank(c);
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/rank%d.pid", o->dir, rank);
    FILE *f = fopen(path, "w");
    if (!f) comm_abort(c, 1, "cannot write %s", path);
    fprintf(f, "%d\n", (int)getpid());
    fclose(f);
    float *grads = calloc(o->n, sizeof *grads);
    CommAllreducer *ar = comm_allreducer_init(c, grads, o->n, o->bucket, o->compress, 1, err, sizeof err);
    if (!ar) comm_abort(c, 1, "allreducer: %s", err);
    double t0 = clock_now();
    for (long step = 0; clock_now() - t0 < 120; step++) {
        comm_allreducer_begin(ar);
        for (size_t at = o->n; at > 0; at = at > o->n / 8 ? at - o->n / 8 : 0) {
            sleep_s(0.001);
            comm_allreducer_ready(ar, at);
        }
        comm_allreducer_finish(ar, NULL);
        double loss = 1;
        comm_allreduce_double(c, &loss, 1, COMM_SUM, "loss");
    }
    comm_allreducer_free(ar);
    free(grads);
    return 1;   /* the test kills a rank long before this */
}

static int parse(int argc, char **argv, Opts *o)
{
    *o = (Opts){.mode = argc > 1 ? argv[1] : "", .n = 100000, .bucket = 40000, .buckets = "40000", .steps = 2,
                .seed = 1, .timeout = 30, .late = 1, .sleep = 10, .where = "allreduce", .flip_rank = -1,
                .flip_bit = 12345, .dir = "."};
    for (int i = 2; i < argc; i += 2) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return -1;
        if (!strcmp(k, "--n")) o->n = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--bucket")) {
            o->buckets = v;
            o->bucket = strtoull(v, NULL, 10);
        }
        else if (!strcmp(k, "--compress")) { if (comm_compress_parse(v, &o->compress)) return -1; }
        else if (!strcmp(k, "--steps")) o->steps = atoi(v);
        else if (!strcmp(k, "--seed")) o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--timeout")) o->timeout = atof(v);
        else if (!strcmp(k, "--late")) o->late = atoi(v);
        else if (!strcmp(k, "--sleep")) o->sleep = atof(v);
        else if (!strcmp(k, "--where")) o->where = v;
        else if (!strcmp(k, "--flip-rank")) o->flip_rank = atoi(v);
        else if (!strcmp(k, "--flip-bit")) o->flip_bit = atoi(v);
        else if (!strcmp(k, "--dir")) o->dir = v;
        else return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    Opts o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: helper_comm sum|identical|metrics|late|abort|loop [--key value]...\n");
        return 2;
    }
    char err[512];
    Comm *c = comm_init(&argc, &argv, o.timeout, err, sizeof err);
    if (!c) {
        fprintf(stderr, "helper_comm: %s\n", err);
        return 1;
    }
    rank_ = comm_rank(c);
    int rc;
    if (!strcmp(o.mode, "sum")) rc = run_sum(c, &o);
    else if (!strcmp(o.mode, "identical")) rc = run_identical(c, &o);
    else if (!strcmp(o.mode, "metrics")) rc = run_metrics(c, &o);
    else if (!strcmp(o.mode, "late")) rc = run_late(c, &o);
    else if (!strcmp(o.mode, "abort")) rc = run_abort(c, &o);
    else if (!strcmp(o.mode, "loop")) rc = run_loop(c, &o);
    else comm_abort(c, 2, "unknown mode '%s'", o.mode);
    int any_failed = comm_any(c, failures > 0 || rc != 0, "verdict");
    comm_free(c);
    return any_failed ? 1 : 0;
}
