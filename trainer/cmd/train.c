/* cmd/train.c: `googlenet train`: the flags, their checks, and MPI around
 * train_run. Every check that needs no data happens here, before MPI starts,
 * so a bad flag costs no rank any time; only rank 0 prints it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm.h"
#include "dataloader/image.h"
#include "nn/model.h"
#include "nn/sgd.h"
#include "trainer/cli.h"
#include "trainer/commands.h"
#include "trainer/runtime.h"
#include "trainer/train/train.h"

/* "googlenet train: <message>" once (rank 0), and the usage exit code. */
#define usage_error(...) trainer_usage_error("train", __VA_ARGS__)

/* "a,b,c" (or one value for all three channels) into v[3]. */
static int parse_triple(const char *s, float v[3])
{
    char *end;
    for (int i = 0; i < 3; i++) {
        v[i] = strtof(s, &end);
        if (end == s) return -1;
        if (i == 0 && *end == '\0') {
            v[1] = v[2] = v[0];
            return 0;
        }
        if (i < 2 && *end != ',') return -1;
        s = end + 1;
    }
    return *end == '\0' ? 0 : -1;
}

/* The flags that are choices or N|Ne, as their text; parsed into TrainConfig
 * once the table has been read. */
typedef struct {
    const char *mean, *std, *eval_crops, *interp, *lr_policy, *lr_scale, *conv_algo, *grad_compress;
    const char *ckpt_every, *keep_every, *ckpt_fail, *eval_every, *eval_weights, *init_weights;
    uint64_t seed;
    int no_aux, no_photometric, no_flip;
} TrainFlagText;

static const char *every_text(TrainEvery e, char *out, size_t len)
{
    snprintf(out, len, "%ld%s", e.n, e.epochs && e.n ? "e" : "");
    return out;
}

/* The defaults of train_default_config as the text --help shows (and
 * cli_settings_format records), so that each default is written once. */
static void flag_text_defaults(const TrainConfig *c, TrainFlagText *t, char text[6][48])
{
    memset(t, 0, sizeof *t);
    snprintf(text[4], sizeof text[4], "%g,%g,%g", c->mean[0], c->mean[1], c->mean[2]);
    snprintf(text[5], sizeof text[5], "%g,%g,%g", c->std[0], c->std[1], c->std[2]);
    t->mean = text[4];
    t->std = text[5];
    snprintf(text[0], sizeof text[0], "%d", c->eval_crops);
    t->eval_crops = text[0];
    t->interp = image_filter_name(c->filter);
    t->lr_policy = lr_policy_name(c->lr_policy);
    t->lr_scale = c->lr_scale_linear ? "linear" : "none";
    t->conv_algo = train_conv_choice_name(c->conv_algo);
    t->grad_compress = comm_compress_name(c->grad_compress);
    t->ckpt_every = every_text(c->ckpt_every, text[1], sizeof text[1]);
    t->keep_every = every_text(c->keep_every, text[2], sizeof text[2]);
    t->eval_every = every_text(c->eval_every, text[3], sizeof text[3]);
    t->ckpt_fail = c->ckpt_fail == CKPT_FAIL_STOP ? "stop" : "continue";
    t->eval_weights = c->eval_average ? "average" : "raw";
    t->init_weights = c->init_average ? "average" : "raw";
    t->seed = c->seed;
}

/* The flag table of `train` over c (the plain values) and t (the text of the
 * rest); returns its length. */
#define TRAIN_FLAGS_MAX 80
static int flag_table(TrainConfig *c, TrainFlagText *t, CliFlag *out)
{
    CliFlag flags[] = {
        {"--data", CLI_STR, &c->data, "training set: a class tree ROOT/<class>/<image>, a flat directory with --labels, or a directory of shards", NULL, 0, 0, "DIR"},
        {"--labels", CLI_STR, &c->labels, "label file of a flat --data directory (as eval --labels)", NULL, 0, 0, "FILE"},
        {"--val", CLI_STR, &c->val, "validation set (class tree, flat directory with --val-labels, or shards)", NULL, 0, 0, "DIR"},
        {"--val-labels", CLI_STR, &c->val_labels, "label file of a flat --val directory (ILSVRC ground truth, 'name label' lines or LOC_val_solution.csv)", NULL, 0, 0, "FILE"},
        {"--classes", CLI_INT, &c->classes, "number of classes; 0 takes it from the data, otherwise it must match", NULL, 0, CLI_CLASSES_MAX},
        {"--classes-file", CLI_STR, &c->classes_file, "label order: one class id per line (LOC_synset_mapping.txt works)", NULL, 0, 0, "FILE"},
        {"--index-cache", CLI_STR, &c->index_cache, "where rank 0 caches the training index [default: OUT/train-index.cache]", NULL, 0, 0, "FILE"},
        {"--crop", CLI_INT, &c->crop, "input height and width of the network", NULL, 8, CLI_CROP_MAX},
        {"--batch", CLI_INT, &c->batch, "images per rank per step", NULL, 1, CLI_BATCH_MAX},
        {"--accum", CLI_INT, &c->accum, "micro-batches accumulated per optimizer step (no communication between)", NULL, 1, 4096},
        {"--epochs", CLI_INT, &c->epochs, "epochs to train", NULL, 1, 100000},
        {"--steps", CLI_LONG, &c->steps, "optimizer steps to train (overrides --epochs when > 0)", NULL, 0, 1e15},
        {"--lr", CLI_FLOAT, &c->lr, "learning rate for the global batch as given (see --lr-scale)", NULL, 0, 100},
        {"--lr-policy", CLI_CHOICE, &t->lr_policy, "schedule: poly (Caffe quick_solver), step (x gamma every --step-epochs), cosine, fixed", "poly|step|cosine|fixed"},
        {"--lr-scale", CLI_CHOICE, &t->lr_scale, "linear: lr x global batch / --lr-ref-batch (Goyal et al.)", "none|linear"},
        {"--lr-ref-batch", CLI_INT, &c->lr_ref_batch, "the batch --lr is meant for, with --lr-scale linear", NULL, 1, 1 << 30},
        {"--warmup-epochs", CLI_FLOAT, &c->warmup_epochs, "linear warm-up of the learning rate over this many epochs", NULL, 0, 1e6},
        {"--gamma", CLI_FLOAT, &c->gamma, "step policy: factor per step (the paper: 0.96)", NULL, 0, 1},
        {"--step-epochs", CLI_FLOAT, &c->step_epochs, "step policy: epochs per step (the paper: 8)", NULL, 0.001, 1e6},
        {"--power", CLI_FLOAT, &c->power, "poly policy: exponent (quick_solver: 0.5)", NULL, 0, 100},
        {"--final-lr", CLI_FLOAT, &c->final_lr_frac, "cosine policy: final rate as a fraction of the initial one", NULL, 0, 1},
        {"--momentum", CLI_FLOAT, &c->momentum, "SGD momentum (Caffe's form: v = m v + lr g; w -= v)", NULL, 0, 1},
        {"--wd", CLI_FLOAT, &c->wd, "weight decay (biases: none)", NULL, 0, 1},
        {"--ema-decay", CLI_FLOAT, &c->ema_decay, "Polyak average decay per step (warmed up: min(d, (1+t)/(10+t)))", NULL, 0, 1},
        {"--seed", CLI_U64, &t->seed, "seed of initialisation, data order, augmentation and dropout", NULL, 0, CLI_SEED_MAX},
        {"--no-aux", CLI_BOOL, &t->no_aux, "leave out the two auxiliary classifiers"},
        {"--dropout", CLI_FLOAT, &c->head_dropout, "dropout before the main classifier (the paper: 0.4)", NULL, 0, 0.99},
        {"--aux-dropout", CLI_FLOAT, &c->aux_dropout, "dropout in the auxiliary heads (the paper: 0.7)", NULL, 0, 0.99},
        {"--min-area", CLI_FLOAT, &c->min_area, "random-sized crop: smallest fraction of the image area (the paper: 0.08)", NULL, 0.001, 1},
        {"--no-photometric", CLI_BOOL, &t->no_photometric, "no brightness/contrast/saturation/lighting distortions"},
        {"--no-flip", CLI_BOOL, &t->no_flip, "no random horizontal flips"},
        {"--interp", CLI_CHOICE, &t->interp, "resampling of training crops; random picks one per sample as the paper did", CLI_INTERP_CHOICES},
        {"--mean", CLI_STR, &t->mean, "input normalisation: per-channel mean (RGB, of pixel/255); recorded in checkpoints", NULL, 0, 0, "R,G,B"},
        {"--std", CLI_STR, &t->std, "input normalisation: per-channel standard deviation", NULL, 0, 0, "R,G,B"},
        {"--drop-last", CLI_BOOL, &c->drop_last, "drop the epoch's remainder instead of padding it"},
        {"--workers", CLI_INT, &c->workers, "decoding threads per rank (0: decode in the training thread)", NULL, 0, CLI_THREADS_MAX},
        {"--threads", CLI_INT, &c->threads, "compute threads per rank (OpenBLAS and layers); 0: this node's cores / its ranks", NULL, 0, CLI_THREADS_MAX},
        {"--conv-algo", CLI_CHOICE, &t->conv_algo, "convolution algorithms per layer: auto times GEMM and Winograd at the start and keeps the fastest (kept in checkpoints; a resume reuses the checkpoint's plan unless this is given)", "auto|winograd|gemm"},
        {"--bucket-mb", CLI_FLOAT, &c->bucket_mb, "gradient allreduce bucket size in MB", NULL, 0.01, 4096},
        {"--grad-compress", CLI_CHOICE, &t->grad_compress, "16-bit gradients on the wire", "none|bf16|fp16"},
        {"--no-overlap", CLI_BOOL, &c->no_overlap, "allreduce after backward instead of during it (for measurements)"},
        {"--check-replicas", CLI_LONG, &c->check_replicas, "also compare every rank's weights every N steps (always done at the end)", NULL, 0, 1e15},
        {"--timeout", CLI_FLOAT, &c->timeout, "seconds a collective may take before the job is aborted (0: never)", NULL, 0, CLI_TIMEOUT_MAX},
        {"--out", CLI_STR, &c->out, "output directory: checkpoints, metrics.jsonl, index caches", NULL, 0, 0, "DIR"},
        {"--log-every", CLI_FLOAT, &c->log_every, "seconds between log lines and metrics.jsonl records", NULL, 0, 1e6},
        {"--quiet", CLI_BOOL, &c->quiet, "no progress output (metrics.jsonl is still written)"},
        {"--trace", CLI_STR, &c->trace, "write a Chrome-trace timeline of every rank (open in Perfetto)", NULL, 0, 0, "FILE"},
        {"--ckpt-every", CLI_STR, &t->ckpt_every, "checkpoint every N steps, or Ne epochs; 0 only at the end", NULL, 0, 0, "N|Ne"},
        {"--keep", CLI_INT, &c->keep, "keep the newest N checkpoints (0: all)", NULL, 0, 1 << 30},
        {"--keep-every", CLI_STR, &t->keep_every, "also keep for good every M steps, or Me epochs", NULL, 0, 0, "M|Me"},
        {"--keep-every-slim", CLI_BOOL, &c->keep_every_slim, "a --keep-every checkpoint past the newest --keep keeps only its Polyak average (no momentum, no raw weights): evaluate or --init, not resume"},
        {"--ckpt-fail", CLI_CHOICE, &t->ckpt_fail, "after a failed checkpoint write", "continue|stop"},
        {"--ckpt-level", CLI_INT, &c->ckpt_level, "Zstandard level of checkpoints", NULL, CLI_LEVEL_MIN, CLI_LEVEL_MAX},
        {"--ckpt-threads", CLI_INT, &c->ckpt_threads, "Zstandard worker threads of the checkpoint writer", NULL, 0, CLI_ZSTD_THREADS_MAX},
        {"--resume", CLI_STR, &c->resume, "auto: the newest checkpoint in --out that verifies (a fresh start when there is none); or a checkpoint file", NULL, 0, 0, "auto|FILE"},
        {"--allow-changes", CLI_BOOL, &c->allow_changes, "resume even when settings that change the run (batch, crop, length, data, schedule, ...) differ from the checkpoint's"},
        {"--init", CLI_STR, &c->init, "start a new run (step 0, new optimizer state) from this checkpoint's weights; classifiers are re-initialised when the classes differ", NULL, 0, 0, "FILE"},
        {"--init-weights", CLI_CHOICE, &t->init_weights, "which weights of the --init checkpoint", "average|raw"},
        {"--freeze", CLI_STR, &c->freeze, "keep the parameters of every layer up to and including this layer or module fixed: no gradients, no allreduce (e.g. inception_4e)", NULL, 0, 0, "LAYER"},
        {"--eval-every", CLI_STR, &t->eval_every, "evaluate --val every N steps or Ne epochs, and after the last step (0: never)", NULL, 0, 0, "N|Ne"},
        {"--eval-subset", CLI_LONG, &c->eval_subset, "validate on N images evenly spaced over --val (0: all of them)", NULL, 0, 1e12},
        {"--eval-crops", CLI_CHOICE, &t->eval_crops, "crops per validation image (as eval --crops)", "1|10|144"},
        {"--eval-weights", CLI_CHOICE, &t->eval_weights, "evaluate the Polyak average or the raw weights", "average|raw"},
        {"--eval-batch", CLI_INT, &c->eval_batch, "crops per evaluation forward (0: --batch)", NULL, 0, CLI_BATCH_MAX},
        {"--eval-resize", CLI_INT, &c->eval_resize, "validation: shorter side before the centre crop, at crop 224 (scaled by crop/224); 224 keeps the whole image", NULL, 224, 4096},
        {"--eval-max-bad", CLI_FLOAT, &c->eval_max_bad, "fraction of validation images allowed to be unreadable (skipped, counted)", NULL, 0, 1},
    };
    _Static_assert(sizeof flags / sizeof flags[0] <= TRAIN_FLAGS_MAX, "TRAIN_FLAGS_MAX is too small");
    memcpy(out, flags, sizeof flags);
    return CLI_COUNT(flags);
}

/* The text of the choices and N|Ne flags into their types, and every check
 * that needs no data. EXIT_OK, or EXIT_USAGE after one line. */
static int apply_flags(TrainConfig *c, const TrainFlagText *t, const CliFlag *flags, int nflags)
{
    c->aux = !t->no_aux;
    c->photometric = !t->no_photometric;
    c->flip = !t->no_flip;
    c->seed = t->seed;
    c->conv_algo_given = cli_given(flags, nflags, "--conv-algo");
    c->accum_given = cli_given(flags, nflags, "--accum");
    /* the choices were checked against their lists by cli_parse */
    c->eval_crops = atoi(t->eval_crops);
    image_filter_parse(t->interp, &c->filter);
    c->lr_policy = (LrPolicy)lr_policy_parse(t->lr_policy);
    c->lr_scale_linear = strcmp(t->lr_scale, "linear") == 0;
    c->conv_algo = (TrainConvChoice)train_conv_choice_parse(t->conv_algo);
    comm_compress_parse(t->grad_compress, &c->grad_compress);
    c->ckpt_fail = strcmp(t->ckpt_fail, "stop") == 0 ? CKPT_FAIL_STOP : CKPT_FAIL_CONTINUE;
    c->eval_average = strcmp(t->eval_weights, "average") == 0;
    c->init_average = strcmp(t->init_weights, "average") == 0;
    if (parse_triple(t->mean, c->mean) != 0) return usage_error("--mean takes R,G,B or one number, got '%s'", t->mean);
    if (parse_triple(t->std, c->std) != 0 || !(c->std[0] > 0 && c->std[1] > 0 && c->std[2] > 0))
        return usage_error("--std takes three positive numbers R,G,B or one, got '%s'", t->std);
    if (!c->data) return usage_error("--data is required (a class tree or a shard directory)");
    if (train_every_parse(t->ckpt_every, &c->ckpt_every) != 0)
        return usage_error("--ckpt-every takes N (steps) or Ne (epochs), got '%s'", t->ckpt_every);
    if (train_every_parse(t->keep_every, &c->keep_every) != 0)
        return usage_error("--keep-every takes M (steps) or Me (epochs), got '%s'", t->keep_every);
    if (train_every_parse(t->eval_every, &c->eval_every) != 0)
        return usage_error("--eval-every takes N (steps) or Ne (epochs), got '%s'", t->eval_every);
    if (c->crop < model_min_crop(c->aux)) {
        char lo[160];
        trainer_crop_too_small(c->crop, lo, sizeof lo);
        return usage_error("%s", lo);
    }
    if (c->init && c->resume && strcmp(c->resume, "auto") != 0)
        return usage_error("--init starts a new run and --resume %s continues one: give one of them (--resume auto "
                           "with --init continues the run in --out if it has begun)", c->resume);
    if (!c->init && cli_given(flags, nflags, "--init-weights")) return usage_error("--init-weights goes with --init FILE");
    return EXIT_OK;
}

int cmd_train(int argc, char **argv)
{
    TrainConfig c = train_default_config();
    TrainFlagText t;
    char text[6][48];
    flag_text_defaults(&c, &t, text);
    CliFlag flags[TRAIN_FLAGS_MAX];
    int nflags = flag_table(&c, &t, flags);
    int help = 0;
    char err[512];
    if (cli_parse(flags, nflags, argc, argv, NULL, 0, NULL, &help, err, sizeof err) != 0) return usage_error("%s", err);
    if (help) {
        if (trainer_launcher_rank() == 0)
            cli_print_help(stdout, "[mpirun -np N] googlenet train --data DIR [--val DIR] [flags]",
                           "Trains GoogLeNet (with both auxiliary classifiers) data-parallel: every rank holds a\n"
                           "replica and reads its own shard; gradients are allreduced in buckets during backward.\n"
                           "Defaults follow Caffe's quick_solver (batch 32, lr 0.01, poly 0.5, momentum 0.9,\n"
                           "weight decay 2e-4). Exit codes: 0 done, 1 error, 2 bad flags, 3 stopped by\n"
                           "SIGTERM, SIGINT, SIGUSR1 or SIGUSR2 after a checkpoint (resume with --resume auto;\n"
                           "under mpirun send SIGUSR1 to mpirun: it forwards it, while it kills the ranks\n"
                           "a second after forwarding SIGTERM).",
                           flags, nflags);
        return EXIT_OK;
    }
    int code = apply_flags(&c, &t, flags, nflags);
    if (code != EXIT_OK) return code;
    /* the command line and every setting, for the checkpoints */
    size_t off = snprintf(c.command, sizeof c.command, "googlenet train");
    for (int i = 0; i < argc && off < sizeof c.command; i++)
        off += snprintf(c.command + off, sizeof c.command - off, " %s", argv[i]);
    if (cli_settings_format(flags, nflags, c.settings, sizeof c.settings) < 0)
        return usage_error("the flags do not fit in %zu bytes: shorten the paths", sizeof c.settings);

    Comm *comm = comm_init(&argc, &argv, c.timeout, err, sizeof err);
    if (!comm) {
        fprintf(stderr, "googlenet train: %s\n", err);
        return EXIT_FAIL;
    }
    code = train_run(&c, comm);
    comm_free(comm);
    return code;
}
