/* cmd/bench_loader.c: `googlenet bench-loader`: how fast the data loader
 * indexes a dataset and turns its files into augmented, normalised batches.
 * Prints the index time, then img/s in total and per worker thread after a
 * warm-up; with --json the last line is one JSON object. Compare with
 * scripts/bench_loader_pil.py on the same files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataloader/dataset.h"
#include "comm/clock.h"
#include "dataloader/image.h"
#include "dataloader/loader.h"
#include "trainer/cli.h"
#include "trainer/commands.h"
#include "trainer/runtime.h"

typedef struct {
    const char *data, *classes_file, *labels, *cache, *interp;
    int workers, batch, crop, batches, warmup;
    int eval, no_photometric, no_flip, json, scan_only;
    uint64_t seed;
    double min_area, max_pixels;
} LoaderBenchOptions;

/* The flags into o. *done: leave with the returned code (help, or a bad flag). */
static int parse_options(int argc, char **argv, LoaderBenchOptions *o, int *done)
{
    *o = (LoaderBenchOptions){.interp = "random", .workers = (int)sysconf(_SC_NPROCESSORS_ONLN), .batch = 32,
                              .crop = 224, .batches = 20, .warmup = 2, .seed = 1, .min_area = 0.08,
                              .max_pixels = (double)IMAGE_MAX_PIXELS_DEFAULT};
    CliFlag flags[] = {
        {"--data", CLI_STR, &o->data, "class tree, flat directory (with --labels) or shard directory", NULL, 0, 0, "DIR"},
        {"--classes-file", CLI_STR, &o->classes_file, "class ids in label order, one per line", NULL, 0, 0, "FILE"},
        {"--labels", CLI_STR, &o->labels, "label file of a flat directory", NULL, 0, 0, "FILE"},
        {"--index-cache", CLI_STR, &o->cache, "read/write the dataset index here", NULL, 0, 0, "FILE"},
        {"--workers", CLI_INT, &o->workers, "decoding threads (0: decode in the main thread)", NULL, 0, CLI_THREADS_MAX,
         .shown_default = "this node's cores"},
        {"--batch", CLI_INT, &o->batch, "images per batch", NULL, 1, CLI_BATCH_MAX},
        {"--crop", CLI_INT, &o->crop, "output height and width", NULL, 8, CLI_CROP_MAX},
        {"--batches", CLI_INT, &o->batches, "timed batches", NULL, 1, 1000000},
        {"--warmup", CLI_INT, &o->warmup, "untimed batches first", NULL, 0, 1000},
        {"--eval", CLI_BOOL, &o->eval, "time the evaluation transform (resize, centre crop)"},
        {"--interp", CLI_CHOICE, &o->interp, "resampling of training crops; random picks one per sample (as train); the evaluation transform is always bilinear", CLI_INTERP_CHOICES},
        {"--min-area", CLI_FLOAT, &o->min_area, "smallest random crop, as a fraction of the image area", NULL, 0.001, 1},
        {"--no-photometric", CLI_BOOL, &o->no_photometric, "leave out brightness/contrast/saturation/lighting"},
        {"--no-flip", CLI_BOOL, &o->no_flip, "leave out the random mirror"},
        {"--max-pixels", CLI_FLOAT, &o->max_pixels, "refuse images whose header declares more pixels", NULL, 1, 1e12},
        {"--seed", CLI_U64, &o->seed, "augmentation and shuffle seed", NULL, 0, CLI_SEED_MAX},
        {"--scan-only", CLI_BOOL, &o->scan_only, "only time building the index"},
        {"--json", CLI_BOOL, &o->json, "end with one JSON line of the figures"},
    };
    int help = 0;
    char err[512];
    *done = 1;
    if (cli_parse(flags, CLI_COUNT(flags), argc, argv, NULL, 0, NULL, &help, err, sizeof err) != 0) {
        trainer_print_once("bench-loader", "%s", err);
        return EXIT_USAGE;
    }
    if (help) {
        cli_print_help(stdout, "googlenet bench-loader --data DIR [flags]",
                       "Times indexing a dataset, then decoding + augmenting + normalising its images\n"
                       "into batches with N worker threads (img/s in total and per worker).\n"
                       "scripts/bench_loader_pil.py times PIL + torchvision on the same files.",
                       flags, CLI_COUNT(flags));
        return EXIT_OK;
    }
    if (!o->data) {
        trainer_print_once("bench-loader", "--data DIR is required (see --help)");
        return EXIT_USAGE;
    }
    *done = 0;
    return EXIT_OK;
}

static Loader *open_loader(const LoaderBenchOptions *o, Dataset *ds, char *err, size_t errlen)
{
    LoaderConfig cfg = loader_default_config();
    cfg.ds = ds;
    cfg.crop = o->crop;
    cfg.batch = o->batch;
    cfg.workers = o->workers;
    cfg.seed = o->seed;
    cfg.train = !o->eval;
    cfg.min_area = (float)o->min_area;
    cfg.photometric = !o->no_photometric;
    cfg.flip = !o->no_flip;
    cfg.max_pixels = (long long)o->max_pixels;
    image_filter_parse(o->interp, &cfg.filter);
    return loader_init(&cfg, err, errlen);
}

/* What the timed batches took. */
typedef struct {
    double secs, cpu, wait; /* wall and process CPU seconds; the main thread's wait */
    long images, bad;
} LoaderFigures;

/* Warm-up and timed batches. 0, or -1 with err. */
static int time_batches(const LoaderBenchOptions *o, Loader *L, LoaderFigures *f, char *err, size_t errlen)
{
    float *images = malloc((size_t)o->batch * 3 * o->crop * o->crop * sizeof(float));
    int *lab = malloc((size_t)o->batch * sizeof(int));
    int rc = 0;
    double t0 = 0, c0 = 0;
    memset(f, 0, sizeof *f);
    if (!images || !lab) {
        snprintf(err, errlen, "out of memory for a batch of %d x 3 x %d x %d", o->batch, o->crop, o->crop);
        rc = -1;
    }
    for (int s = 0; rc == 0 && s < o->warmup + o->batches; s++) {
        if (s == o->warmup) {
            t0 = clock_now();
            c0 = clock_cpu_process();
        }
        LoaderBatchInfo info;
        if (loader_next(L, images, lab, &info, err, errlen) < 0) {
            rc = -1;
            break;
        }
        if (info.warning) fprintf(stderr, "googlenet bench-loader: warning: %s\n", info.warning);
        if (s >= o->warmup) {
            f->images += info.real;
            f->wait += info.wait_s;
        }
        f->bad += info.bad;
    }
    f->secs = clock_now() - t0;
    f->cpu = clock_cpu_process() - c0;
    free(images);
    free(lab);
    return rc;
}

static void print_figures(const LoaderBenchOptions *o, const LoaderFigures *f, size_t n, double scan_s)
{
    int threads = o->workers > 0 ? o->workers : 1;
    double ips = f->images / f->secs;
    printf("  %s transform, crop %d, batch %d, filter %s%s, %d worker%s\n", o->eval ? "evaluation" : "training",
           o->crop, o->batch, o->eval ? "bilinear" : o->interp, o->eval || o->no_photometric ? "" : ", photometric",
           threads, threads == 1 ? "" : "s");
    printf("  %.1f img/s total   %.1f img/s per worker   %.1f img/s per CPU-second   main thread waited %.0f%%"
           "   bad files %ld\n",
           ips, ips / threads, f->images / f->cpu, 100 * f->wait / f->secs, f->bad);
    if (o->json)
        printf("{\"items\":%zu,\"scan_s\":%.4f,\"mode\":\"%s\",\"crop\":%d,\"batch\":%d,\"workers\":%d,"
               "\"img_per_s\":%.2f,\"img_per_s_per_worker\":%.2f,\"img_per_cpu_s\":%.2f,\"wait_share\":%.4f,"
               "\"bad\":%ld}\n",
               n, scan_s, o->eval ? "eval" : "train", o->crop, o->batch, threads, ips, ips / threads,
               f->images / f->cpu, f->wait / f->secs, f->bad);
}

int cmd_bench_loader(int argc, char **argv)
{
    LoaderBenchOptions o;
    int done, rc = parse_options(argc, argv, &o, &done);
    if (done) return rc;
    char err[512];
    DatasetOptions dopt = {o.data, o.classes_file, o.labels, o.cache};
    Dataset *ds = dataset_open(&dopt, err, sizeof err);
    if (!ds) {
        fprintf(stderr, "googlenet bench-loader: %s\n", err);
        return EXIT_FAIL;
    }
    size_t n = dataset_size(ds);
    double scan_s = dataset_scan_seconds(ds);
    printf("googlenet bench-loader: %s: %zu items, %d classes, indexed in %.3f s (%.0f files/s)%s\n", o.data, n,
           dataset_num_classes(ds), scan_s, scan_s > 0 ? n / scan_s : 0.0,
           dataset_from_cache(ds) ? " from the index cache" : "");
    if (o.scan_only) {
        if (o.json)
            printf("{\"items\":%zu,\"scan_s\":%.4f,\"files_per_s\":%.1f,\"from_cache\":%d}\n", n, scan_s,
                   scan_s > 0 ? n / scan_s : 0.0, dataset_from_cache(ds));
        dataset_free(ds);
        return EXIT_OK;
    }
    Loader *L = open_loader(&o, ds, err, sizeof err);
    LoaderFigures f;
    rc = L ? time_batches(&o, L, &f, err, sizeof err) : -1;
    if (rc == 0) print_figures(&o, &f, n, scan_s);
    else fprintf(stderr, "googlenet bench-loader: %s\n", err);
    loader_free(L);
    dataset_free(ds);
    return rc == 0 ? EXIT_OK : EXIT_FAIL;
}
