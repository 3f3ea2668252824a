/* cmd/train.c: `googlenet train`: the flags, their checks, and MPI around
 * train_run. Every check that needs no data happens here, before MPI starts,
 * so a bad flag costs no rank any time; only rank 0 prints it. */
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

static int usage_error(const char *fmt, const char *a, const char *b) __attribute__((format(printf, 1, 0)));
static int usage_error(const char *fmt, const char *a, const char *b)
{
    char msg[1024];
    snprintf(msg, sizeof msg, fmt, a, b);
    trainer_print_once("train", "%s", msg);
    return EXIT_USAGE;
}

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

static int valid_every(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 0) return 0;
    if (*end == 'e') end++;
    return *end == '\0';
}

int cmd_train(int argc, char **argv)
{
    TrainConfig c = train_default_config();
    int no_aux = 0, no_photometric = 0, no_flip = 0;
    const char *mean = "0.485,0.456,0.406", *std = "0.229,0.224,0.225", *eval_crops = "1";
    CliFlag flags[] = {
        {"--data", CLI_STR, &c.data, "training set: a class tree ROOT/<class>/<image>, a flat directory with --labels, or a directory of shards", NULL, 0, 0, "DIR"},
        {"--labels", CLI_STR, &c.labels, "label file of a flat --data directory (as eval --labels)", NULL, 0, 0, "FILE"},
        {"--val", CLI_STR, &c.val, "validation set (class tree, flat directory with --val-labels, or shards)", NULL, 0, 0, "DIR"},
        {"--val-labels", CLI_STR, &c.val_labels, "label file of a flat --val directory (ILSVRC ground truth, 'name label' lines or LOC_val_solution.csv)", NULL, 0, 0, "FILE"},
        {"--classes", CLI_INT, &c.classes, "number of classes; 0 takes it from the data, otherwise it must match", NULL, 0, CLI_CLASSES_MAX},
        {"--classes-file", CLI_STR, &c.classes_file, "label order: one class id per line (LOC_synset_mapping.txt works)", NULL, 0, 0, "FILE"},
        {"--index-cache", CLI_STR, &c.index_cache, "where rank 0 caches the training index [default: OUT/train-index.cache]", NULL, 0, 0, "FILE"},
        {"--crop", CLI_INT, &c.crop, "input height and width of the network", NULL, 8, CLI_CROP_MAX},
        {"--batch", CLI_INT, &c.batch, "images per rank per step", NULL, 1, CLI_BATCH_MAX},
        {"--accum", CLI_INT, &c.accum, "micro-batches accumulated per optimizer step (no communication between)", NULL, 1, 4096},
        {"--epochs", CLI_INT, &c.epochs, "epochs to train", NULL, 1, 100000},
        {"--steps", CLI_LONG, &c.steps, "optimizer steps to train (overrides --epochs when > 0)", NULL, 0, 1e15},
        {"--lr", CLI_FLOAT, &c.lr, "learning rate for the global batch as given (see --lr-scale)", NULL, 0, 100},
        {"--lr-policy", CLI_CHOICE, &c.lr_policy, "schedule: poly (Caffe quick_solver), step (x gamma every --step-epochs), cosine, fixed", "poly|step|cosine|fixed"},
        {"--lr-scale", CLI_CHOICE, &c.lr_scale, "linear: lr x global batch / --lr-ref-batch (Goyal et al.)", "none|linear"},
        {"--lr-ref-batch", CLI_INT, &c.lr_ref_batch, "the batch --lr is meant for, with --lr-scale linear", NULL, 1, 1 << 30},
        {"--warmup-epochs", CLI_FLOAT, &c.warmup_epochs, "linear warm-up of the learning rate over this many epochs", NULL, 0, 1e6},
        {"--gamma", CLI_FLOAT, &c.gamma, "step policy: factor per step (the paper: 0.96)", NULL, 0, 1},
        {"--step-epochs", CLI_FLOAT, &c.step_epochs, "step policy: epochs per step (the paper: 8)", NULL, 0.001, 1e6},
        {"--power", CLI_FLOAT, &c.power, "poly policy: exponent (quick_solver: 0.5)", NULL, 0, 100},
        {"--final-lr", CLI_FLOAT, &c.final_lr_frac, "cosine policy: final rate as a fraction of the initial one", NULL, 0, 1},
        {"--momentum", CLI_FLOAT, &c.momentum, "SGD momentum (Caffe's form: v = m v + lr g; w -= v)", NULL, 0, 1},
        {"--wd", CLI_FLOAT, &c.wd, "weight decay (biases: none)", NULL, 0, 1},
        {"--ema-decay", CLI_FLOAT, &c.ema_decay, "Polyak average decay per step (warmed up: min(d, (1+t)/(10+t)))", NULL, 0, 1},
        {"--seed", CLI_LONG, &c.seed, "seed of initialisation, data order, augmentation and dropout", NULL, 0, CLI_SEED_MAX},
        {"--no-aux", CLI_BOOL, &no_aux, "leave out the two auxiliary classifiers"},
        {"--dropout", CLI_FLOAT, &c.head_dropout, "dropout before the main classifier (the paper: 0.4)", NULL, 0, 0.99},
        {"--aux-dropout", CLI_FLOAT, &c.aux_dropout, "dropout in the auxiliary heads (the paper: 0.7)", NULL, 0, 0.99},
        {"--min-area", CLI_FLOAT, &c.min_area, "random-sized crop: smallest fraction of the image area (the paper: 0.08)", NULL, 0.001, 1},
        {"--no-photometric", CLI_BOOL, &no_photometric, "no brightness/contrast/saturation/lighting distortions"},
        {"--no-flip", CLI_BOOL, &no_flip, "no random horizontal flips"},
        {"--interp", CLI_CHOICE, &c.interp, "resampling of training crops; random picks one per sample as the paper did", CLI_INTERP_CHOICES},
        {"--mean", CLI_STR, &mean, "input normalisation: per-channel mean (RGB, of pixel/255); recorded in checkpoints", NULL, 0, 0, "R,G,B"},
        {"--std", CLI_STR, &std, "input normalisation: per-channel standard deviation", NULL, 0, 0, "R,G,B"},
        {"--drop-last", CLI_BOOL, &c.drop_last, "drop the epoch's remainder instead of padding it"},
        {"--workers", CLI_INT, &c.workers, "decoding threads per rank (0: decode in the training thread)", NULL, 0, CLI_THREADS_MAX},
        {"--threads", CLI_INT, &c.threads, "compute threads per rank (OpenBLAS and layers); 0: this node's cores / its ranks", NULL, 0, CLI_THREADS_MAX},
        {"--conv-algo", CLI_CHOICE, &c.conv_algo, "convolution algorithms per layer: auto times GEMM and Winograd at the start and keeps the fastest (kept in checkpoints; a resume reuses the checkpoint's plan unless this is given)", "auto|winograd|gemm"},
        {"--bucket-mb", CLI_FLOAT, &c.bucket_mb, "gradient allreduce bucket size in MB", NULL, 0.01, 4096},
        {"--grad-compress", CLI_CHOICE, &c.grad_compress, "16-bit gradients on the wire", "none|bf16|fp16"},
        {"--no-overlap", CLI_BOOL, &c.no_overlap, "allreduce after backward instead of during it (for measurements)"},
        {"--check-replicas", CLI_LONG, &c.check_replicas, "also compare every rank's weights every N steps (always done at the end)", NULL, 0, 1e15},
        {"--timeout", CLI_FLOAT, &c.timeout, "seconds a collective may take before the job is aborted (0: never)", NULL, 0, CLI_TIMEOUT_MAX},
        {"--out", CLI_STR, &c.out, "output directory: checkpoints, metrics.jsonl, index caches", NULL, 0, 0, "DIR"},
        {"--log-every", CLI_FLOAT, &c.log_every, "seconds between log lines and metrics.jsonl records", NULL, 0, 1e6},
        {"--quiet", CLI_BOOL, &c.quiet, "no progress output (metrics.jsonl is still written)"},
        {"--trace", CLI_STR, &c.trace, "write a Chrome-trace timeline of every rank (open in Perfetto)", NULL, 0, 0, "FILE"},
        {"--ckpt-every", CLI_STR, &c.ckpt_every, "checkpoint every N steps, or Ne epochs; 0 only at the end", NULL, 0, 0, "N|Ne"},
        {"--keep", CLI_INT, &c.keep, "keep the newest N checkpoints (0: all)", NULL, 0, 1 << 30},
        {"--keep-every", CLI_STR, &c.keep_every, "also keep for good every M steps, or Me epochs", NULL, 0, 0, "M|Me"},
        {"--keep-every-slim", CLI_BOOL, &c.keep_every_slim, "a --keep-every checkpoint past the newest --keep keeps only its Polyak average (no momentum, no raw weights): evaluate or --init, not resume"},
        {"--ckpt-fail", CLI_CHOICE, &c.ckpt_fail, "after a failed checkpoint write", "continue|stop"},
        {"--ckpt-level", CLI_INT, &c.ckpt_level, "Zstandard level of checkpoints", NULL, CLI_LEVEL_MIN, CLI_LEVEL_MAX},
        {"--ckpt-threads", CLI_INT, &c.ckpt_threads, "Zstandard worker threads of the checkpoint writer", NULL, 0, CLI_ZSTD_THREADS_MAX},
        {"--resume", CLI_STR, &c.resume, "auto: the newest checkpoint in --out that verifies (a fresh start when there is none); or a checkpoint file", NULL, 0, 0, "auto|FILE"},
        {"--allow-changes", CLI_BOOL, &c.allow_changes, "resume even when settings that change the run (batch, crop, length, data, schedule, ...) differ from the checkpoint's"},
        {"--init", CLI_STR, &c.init, "start a new run (step 0, new optimizer state) from this checkpoint's weights; classifiers are re-initialised when the classes differ", NULL, 0, 0, "FILE"},
        {"--init-weights", CLI_CHOICE, &c.init_weights, "which weights of the --init checkpoint", "average|raw"},
        {"--freeze", CLI_STR, &c.freeze, "keep the parameters of every layer up to and including this layer or module fixed: no gradients, no allreduce (e.g. inception_4e)", NULL, 0, 0, "LAYER"},
        {"--eval-every", CLI_STR, &c.eval_every, "evaluate --val every N steps or Ne epochs, and after the last step (0: never)", NULL, 0, 0, "N|Ne"},
        {"--eval-subset", CLI_LONG, &c.eval_subset, "validate on N images evenly spaced over --val (0: all of them)", NULL, 0, 1e12},
        {"--eval-crops", CLI_CHOICE, &eval_crops, "crops per validation image (as eval --crops)", "1|10|144"},
        {"--eval-weights", CLI_CHOICE, &c.eval_weights, "evaluate the Polyak average or the raw weights", "average|raw"},
        {"--eval-batch", CLI_INT, &c.eval_batch, "crops per evaluation forward (0: --batch)", NULL, 0, CLI_BATCH_MAX},
        {"--eval-resize", CLI_INT, &c.eval_resize, "validation: shorter side before the centre crop, at crop 224 (scaled by crop/224); 224 keeps the whole image", NULL, 224, 4096},
        {"--eval-max-bad", CLI_FLOAT, &c.eval_max_bad, "fraction of validation images allowed to be unreadable (skipped, counted)", NULL, 0, 1},
    };
    int help = 0;
    char err[512];
    if (cli_parse(flags, CLI_COUNT(flags), argc, argv, NULL, 0, NULL, &help, err, sizeof err) != 0)
        return usage_error("%s%s", err, "");
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
                           flags, CLI_COUNT(flags));
        return EXIT_OK;
    }
    c.aux = !no_aux;
    c.conv_algo_given = cli_given(flags, CLI_COUNT(flags), "--conv-algo");
    c.accum_given = cli_given(flags, CLI_COUNT(flags), "--accum");
    c.eval_crops = atoi(eval_crops);
    c.photometric = !no_photometric;
    c.flip = !no_flip;
    if (parse_triple(mean, c.mean) != 0) return usage_error("--mean takes R,G,B or one number, got '%s'%s", mean, "");
    if (parse_triple(std, c.std) != 0 || !(c.std[0] > 0 && c.std[1] > 0 && c.std[2] > 0))
        return usage_error("--std takes three positive numbers R,G,B or one, got '%s'%s", std, "");
    if (!c.data) return usage_error("--data is required (a class tree or a shard directory)%s%s", "", "");
    if (!valid_every(c.ckpt_every)) return usage_error("--ckpt-every takes N (steps) or Ne (epochs), got '%s'%s", c.ckpt_every, "");
    if (!valid_every(c.keep_every)) return usage_error("--keep-every takes M (steps) or Me (epochs), got '%s'%s", c.keep_every, "");
    if (c.crop < model_min_crop(c.aux)) {
        char lo[160];
        trainer_crop_too_small(c.crop, lo, sizeof lo);
        return usage_error("%s%s", lo, "");
    }
    if (c.init && c.resume && strcmp(c.resume, "auto") != 0)
        return usage_error("--init starts a new run and --resume %s continues one: give one of them (--resume auto "
                           "with --init continues the run in --out if it has begun)%s", c.resume, "");
    if (c.init_weights && !c.init && cli_given(flags, CLI_COUNT(flags), "--init-weights"))
        return usage_error("--init-weights goes with --init FILE%s%s", "", "");
    if (!valid_every(c.eval_every)) return usage_error("--eval-every takes N (steps) or Ne (epochs), got '%s'%s", c.eval_every, "");
    /* the command line and every setting, for the checkpoints */
    size_t off = snprintf(c.command, sizeof c.command, "googlenet train");
    for (int i = 0; i < argc && off < sizeof c.command; i++)
        off += snprintf(c.command + off, sizeof c.command - off, " %s", argv[i]);
    if (cli_settings_format(flags, CLI_COUNT(flags), c.settings, sizeof c.settings) < 0)
        return usage_error("the flags do not fit in %s bytes: shorten the paths%s", "8192", "");

    Comm *comm = comm_init(&argc, &argv, c.timeout, err, sizeof err);
    if (!comm) {
        fprintf(stderr, "googlenet train: %s\n", err);
        return EXIT_FAIL;
    }
    int code = train_run(&c, comm);
    comm_free(comm);
    return code;
}
