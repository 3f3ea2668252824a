/* cmd/bench.c: `googlenet bench`: timed training steps (train_step, the one
 * `train` runs: forward, backward, SGD update and Polyak average) or
 * inference passes on random data, after a warm-up. Prints img/s, ms per
 * step, achieved GFLOP/s, peak memory and each layer kind's share of the time;
 * with --json the last line is one JSON object. `googlenet bench ckpt` is the
 * checkpoint benchmark (bench_ckpt.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "nn/kernels/kernels.h"
#include "comm/clock.h"
#include "nn/model.h"
#include "nn/parallel.h"
#include "nn/rng.h"
#include "trainer/cli.h"
#include "trainer/cmd/bench_ckpt.h"
#include "trainer/commands.h"
#include "trainer/runtime.h"
#include "trainer/train/step.h"

static int by_time_desc(const void *a, const void *b)
{
    const ModelOpProfile *x = a, *y = b;
    double tx = x->forward_s + x->backward_s, ty = y->forward_s + y->backward_s;
    return (tx < ty) - (tx > ty);
}

/* Per layer: ms per step forward and backward, GFLOP/s of each, share of the step. */
static void print_layers(const Model *m, int steps, int batch, int eval, double t_total)
{
    int n = model_num_ops(m);
    ModelOpProfile *p = malloc(sizeof *p * (size_t)n);
    if (!p) return;
    for (int i = 0; i < n; i++) model_op_profile(m, i, &p[i]);
    qsort(p, (size_t)n, sizeof *p, by_time_desc);
    printf("  %-34s %-8s %9s %8s %9s %8s %7s  %s\n", "layer", "kind", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s", "share",
           eval ? "algorithm" : "bwd data+weights ms  algorithm (fwd bwd-data bwd-weights)");
    for (int i = 0; i < n; i++) {
        double f = p[i].forward_s / steps, b = p[i].backward_s / steps;
        if (f + b < 1e-4 && p[i].fused_into < 0) continue; /* a fused layer: 0, and where its time went */
        double gf = f > 1e-5 ? 2 * p[i].forward_macs_per_image * batch / f / 1e9 : 0; /* 0: computed by another layer */
        double gb = b > 0 ? 2 * p[i].backward_macs_per_image * batch / b / 1e9 : 0;
        printf("  %-34s %-8s %9.1f %8.1f", p[i].name, model_op_kind_name(p[i].kind), 1e3 * f, gf);
        if (eval) printf(" %9s %8s", "", "");
        else printf(" %9.1f %8.1f", 1e3 * b, gb);
        printf(" %6.1f%%  ", 100 * (f + b) * steps / t_total);
        if (!eval && p[i].kind == OP_CONV)
            printf("%5.1f + %5.1f         ", 1e3 * p[i].backward_data_s / steps, 1e3 * p[i].backward_weights_s / steps);
        else if (!eval)
            printf("%21s", "");
        printf("%s\n", p[i].algo);
    }
    free(p);
}

typedef struct {
    int batch, threads, crop, eval, steps, warmup, classes, json, no_aux, layers, no_fuse;
    const char *conv_algo;
} BenchOptions;

/* The flags into o. EXIT_OK to go on; otherwise the exit code (help printed
 * or a bad flag said). *done: leave with that code. */
static int parse_options(int argc, char **argv, BenchOptions *o, int *done)
{
    *o = (BenchOptions){.batch = 32, .crop = 224, .steps = 5, .warmup = 1, .classes = 1000, .conv_algo = "auto"};
    CliFlag flags[] = {
        {"--batch", CLI_INT, &o->batch, "images per step", NULL, 1, CLI_BATCH_MAX},
        {"--threads", CLI_INT, &o->threads, "threads for GEMM (OpenBLAS) and the other layers; 0: this node's cores / its ranks", NULL, 0, CLI_THREADS_MAX},
        {"--crop", CLI_INT, &o->crop, "input height and width", NULL, 8, CLI_CROP_MAX},
        {"--eval", CLI_BOOL, &o->eval, "time inference (main head only) instead of training"},
        {"--steps", CLI_INT, &o->steps, "timed steps", NULL, 1, 100000},
        {"--warmup", CLI_INT, &o->warmup, "untimed steps first", NULL, 0, 1000},
        {"--classes", CLI_INT, &o->classes, "classifier outputs", NULL, 1, CLI_CLASSES_MAX},
        {"--no-aux", CLI_BOOL, &o->no_aux, "leave out the auxiliary heads"},
        {"--layers", CLI_BOOL, &o->layers, "also print every layer's time and GFLOP/s, slowest first"},
        {"--no-fuse", CLI_BOOL, &o->no_fuse, "with --eval: run every layer on its own (no fused chains), to measure what fusing buys"},
        {"--conv-algo", CLI_CHOICE, (void *)&o->conv_algo, "convolution algorithms: time them per layer first (auto), or fixed", "auto|winograd|gemm"},
        {"--json", CLI_BOOL, &o->json, "end with one JSON line of the figures"},
    };
    int help = 0;
    char err[256];
    *done = 1;
    if (cli_parse(flags, CLI_COUNT(flags), argc, argv, NULL, 0, NULL, &help, err, sizeof err) != 0) {
        trainer_print_once("bench", "%s", err);
        return EXIT_USAGE;
    }
    if (help) {
        cli_print_help(stdout, "googlenet bench [flags]   |   googlenet bench ckpt [flags]",
                       "Times training steps (the step `train` runs: forward, backward, SGD update,\n"
                       "Polyak average) or inference on random data in one process, after a warm-up.\n"
                       "`googlenet bench ckpt --help`: the checkpoint benchmark.",
                       flags, CLI_COUNT(flags));
        return EXIT_OK;
    }
    *done = 0;
    return EXIT_OK;
}

/* The model the benchmark times, with its convolution plan. NULL after a message. */
static Model *bench_model(const BenchOptions *o, double *tune_s, int *code)
{
    char err[512];
    ModelConfig cfg = model_default_config();
    cfg.classes = o->classes;
    cfg.crop = o->crop;
    cfg.batch = o->batch;
    cfg.aux = !o->no_aux;
    cfg.training = !o->eval;
    cfg.no_fuse = o->no_fuse;
    cfg.conv_gemm = strcmp(o->conv_algo, "gemm") == 0;
    Model *m = model_init(&cfg, err, sizeof err);
    if (!m) {
        fprintf(stderr, "googlenet bench: %s\n", err);
        *code = EXIT_USAGE;
        return NULL;
    }
    *tune_s = 0;
    if (strcmp(o->conv_algo, "auto") == 0 && (*tune_s = model_conv_tune(m, err, sizeof err)) < 0) {
        fprintf(stderr, "googlenet bench: %s\n", err);
        model_free(m);
        *code = EXIT_FAIL;
        return NULL;
    }
    model_init_weights(m, 1);
    return m;
}

/* Warm-up and timed steps; the seconds of the timed ones, or -1 after a message. */
static double time_steps(const BenchOptions *o, Model *m)
{
    char err[512];
    TrainStepLocal l;
    float *input = NULL;
    if (o->eval) {
        size_t in_floats = (size_t)o->batch * 3 * o->crop * o->crop;
        if (!(input = malloc(in_floats * sizeof(float)))) {
            fprintf(stderr, "googlenet bench: out of memory\n");
            return -1;
        }
        uint64_t key = rng_key(7, 0, 0, 0);
        for (size_t i = 0; i < in_floats; i++) input[i] = 2.0f * rng_uniform(key, i) - 1.0f;
    } else if (train_step_local_init(&l, m, o->batch, o->classes, 1e-4, 0.9, 2e-4, 0.999, 1, 7, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet bench: %s\n", err);
        return -1;
    }
    double t_total = 0;
    for (int s = 0; s < o->warmup + o->steps; s++) {
        if (s == o->warmup) model_profile_reset(m);
        double t0 = clock_now();
        StepStats st;
        if (o->eval) model_forward(m, input, NULL, o->batch, MODEL_EVAL, 0, NULL);
        else train_step(&l.step, &l.pos, &st, err, sizeof err); /* no fetch: cannot fail */
        if (s >= o->warmup) t_total += clock_now() - t0;
    }
    if (o->eval) free(input);
    else train_step_local_free(&l);
    return t_total;
}

/* The figures: the summary lines, per layer kind, per layer, JSON. */
static void print_report(const BenchOptions *o, const Model *m, double t_total, double tune_s)
{
    int eval = o->eval, steps = o->steps, batch = o->batch;
    size_t np = model_num_params(m);
    double step_ms = t_total / steps * 1e3;
    double img_s = batch * steps / t_total;
    double macs = eval ? model_forward_macs(m, batch, MODEL_EVAL) : model_train_macs(m, batch);
    double gflops = 2.0 * macs / (t_total / steps) / 1e9;
    double fwd[OP_KINDS], bwd[OP_KINDS], prof[OP_KINDS], prof_sum = 0, fsum = 0, bsum = 0;
    model_profile(m, fwd, bwd);
    for (int k = 0; k < OP_KINDS; k++) {
        prof[k] = fwd[k] + bwd[k];
        prof_sum += prof[k];
        fsum += fwd[k];
        bsum += bwd[k];
    }
    double other = t_total - prof_sum; /* input copy, zeroing, optimizer */
    printf("googlenet bench: %s, batch %d, crop %d, %d classes, %d thread%s, %zu parameters\n",
           eval ? "inference" : "training", batch, o->crop, o->classes, o->threads, o->threads == 1 ? "" : "s", np);
    printf("  %.2f img/s   %.1f ms/step   %.1f GFLOP/s   peak RSS %.0f MB   activations %.0f MB\n",
           img_s, step_ms, gflops, trainer_peak_rss_mb(), model_activation_bytes(m) / 1e6);
    printf("  kernels: OpenBLAS %s, own SIMD %s; convolutions %s", trainer_blas_core(), nn_kernels()->name,
           o->conv_algo);
    if (tune_s > 0) printf(" (plan timed in %.1f s)", tune_s);
    putchar('\n');
    printf("  time by layer kind:");
    for (int k = 0; k < OP_KINDS; k++)
        if (prof[k] > 0) printf(" %s %.1f%%", model_op_kind_name(k), 100 * prof[k] / t_total);
    printf(" %s %.1f%%\n", eval ? "other" : "update+other", 100 * other / t_total);
    printf("  forward %.0f ms/step", 1e3 * fsum / steps);
    for (int k = 0; k < OP_KINDS; k++)
        if (fwd[k] > 0.005 * t_total) printf(" | %s %.0f", model_op_kind_name(k), 1e3 * fwd[k] / steps);
    if (!eval) {
        printf("\n  backward %.0f ms/step", 1e3 * bsum / steps);
        for (int k = 0; k < OP_KINDS; k++)
            if (bwd[k] > 0.005 * t_total) printf(" | %s %.0f", model_op_kind_name(k), 1e3 * bwd[k] / steps);
    }
    putchar('\n');
    if (o->layers) print_layers(m, steps, batch, eval, t_total);
    if (!o->json) return;
    printf("{\"mode\":\"%s\",\"batch\":%d,\"crop\":%d,\"threads\":%d,\"img_per_s\":%.3f,"
           "\"step_ms\":%.2f,\"gflops\":%.2f,\"peak_rss_mb\":%.1f,\"params\":%zu,"
           "\"blas_core\":\"%s\",\"simd\":\"%s\",\"conv_algo\":\"%s\",\"shares\":{",
           eval ? "eval" : "train", batch, o->crop, o->threads, img_s, step_ms, gflops, trainer_peak_rss_mb(), np,
           trainer_blas_core(), nn_kernels()->name, o->conv_algo);
    int first = 1;
    for (int k = 0; k < OP_KINDS; k++)
        if (prof[k] > 0) {
            printf("%s\"%s\":%.4f", first ? "" : ",", model_op_kind_name(k), prof[k] / t_total);
            first = 0;
        }
    printf("%s\"other\":%.4f}}\n", first ? "" : ",", other / t_total);
}

int cmd_bench(int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "ckpt") == 0) return cmd_bench_ckpt(argc - 1, argv + 1);
    BenchOptions o;
    int done, code = parse_options(argc, argv, &o, &done);
    if (done) return code;
    if (o.threads == 0) o.threads = trainer_default_threads();
    trainer_set_threads(o.threads);
    double tune_s;
    Model *m = bench_model(&o, &tune_s, &code);
    if (!m) return code;
    double t_total = time_steps(&o, m);
    if (t_total >= 0) print_report(&o, m, t_total, tune_s);
    model_free(m);
    return t_total >= 0 ? EXIT_OK : EXIT_FAIL;
}
