/* cmd/bench_loader.c: `googlenet bench-loader`: how fast the data loader
 * indexes a dataset and turns its files into augmented, normalised batches.
 * Prints the index time, then img/s in total and per worker thread after a
 * warm-up; with --json the last line is one JSON object. Compare with
 * scripts/bench_loader_pil.py on the same files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dataloader/dataset.h"
#include "comm/clock.h"
#include "dataloader/image.h"
#include "dataloader/loader.h"
#include "trainer/cli.h"
#include "trainer/commands.h"
#include "trainer/runtime.h"

/* CPU seconds of the whole process (all threads). */
int cmd_bench_loader(int argc, char **argv)
{
    const char *data = NULL, *classes_file = NULL, *labels = NULL, *cache = NULL, *interp = "random";
    int workers = (int)sysconf(_SC_NPROCESSORS_ONLN), batch = 32, crop = 224, batches = 20, warmup = 2;
    int eval = 0, no_photometric = 0, no_flip = 0, json = 0, scan_only = 0;
    long seed = 1;
    double min_area = 0.08, max_pixels = (double)IMAGE_MAX_PIXELS_DEFAULT;
    CliFlag flags[] = {
        {"--data", CLI_STR, &data, "class tree, flat directory (with --labels) or shard directory", NULL, 0, 0, "DIR"},
        {"--classes-file", CLI_STR, &classes_file, "class ids in label order, one per line", NULL, 0, 0, "FILE"},
        {"--labels", CLI_STR, &labels, "label file of a flat directory", NULL, 0, 0, "FILE"},
        {"--index-cache", CLI_STR, &cache, "read/write the dataset index here", NULL, 0, 0, "FILE"},
        {"--workers", CLI_INT, &workers, "decoding threads (0: decode in the main thread)", NULL, 0, CLI_THREADS_MAX},
        {"--batch", CLI_INT, &batch, "images per batch", NULL, 1, CLI_BATCH_MAX},
        {"--crop", CLI_INT, &crop, "output height and width", NULL, 8, CLI_CROP_MAX},
        {"--batches", CLI_INT, &batches, "timed batches", NULL, 1, 1000000},
        {"--warmup", CLI_INT, &warmup, "untimed batches first", NULL, 0, 1000},
        {"--eval", CLI_BOOL, &eval, "time the evaluation transform (resize, centre crop)"},
        {"--interp", CLI_CHOICE, &interp, "resampling of training crops; random picks one per sample (as train); the evaluation transform is always bilinear", CLI_INTERP_CHOICES},
        {"--min-area", CLI_FLOAT, &min_area, "smallest random crop, as a fraction of the image area", NULL, 0.001, 1},
        {"--no-photometric", CLI_BOOL, &no_photometric, "leave out brightness/contrast/saturation/lighting"},
        {"--no-flip", CLI_BOOL, &no_flip, "leave out the random mirror"},
        {"--max-pixels", CLI_FLOAT, &max_pixels, "refuse images whose header declares more pixels", NULL, 1, 1e12},
        {"--seed", CLI_LONG, &seed, "augmentation and shuffle seed", NULL, 0, CLI_SEED_MAX},
        {"--scan-only", CLI_BOOL, &scan_only, "only time building the index"},
        {"--json", CLI_BOOL, &json, "end with one JSON line of the figures"},
    };
    int help = 0;
    char err[512];
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
    if (!data) {
        trainer_print_once("bench-loader", "--data DIR is required (see --help)");
        return EXIT_USAGE;
    }
    DatasetOptions dopt = {data, classes_file, labels, cache};
    Dataset *ds = dataset_open(&dopt, err, sizeof err);
    if (!ds) {
        fprintf(stderr, "googlenet bench-loader: %s\n", err);
        return EXIT_FAIL;
    }
    size_t n = dataset_size(ds);
    double scan_s = dataset_scan_seconds(ds);
    printf("googlenet bench-loader: %s: %zu items, %d classes, indexed in %.3f s (%.0f files/s)%s\n", data, n,
           dataset_num_classes(ds), scan_s, scan_s > 0 ? n / scan_s : 0.0,
           dataset_from_cache(ds) ? " from the index cache" : "");
    if (scan_only) {
        if (json)
            printf("{\"items\":%zu,\"scan_s\":%.4f,\"files_per_s\":%.1f,\"from_cache\":%d}\n", n, scan_s,
                   scan_s > 0 ? n / scan_s : 0.0, dataset_from_cache(ds));
        dataset_free(ds);
        return EXIT_OK;
    }
    LoaderConfig cfg = loader_default_config();
    cfg.ds = ds;
    cfg.crop = crop;
    cfg.batch = batch;
    cfg.workers = workers;
    cfg.seed = (uint64_t)seed;
    cfg.train = !eval;
    cfg.min_area = (float)min_area;
    cfg.photometric = !no_photometric;
    cfg.flip = !no_flip;
    cfg.max_pixels = (long long)max_pixels;
    image_filter_parse(interp, &cfg.filter);
    Loader *L = loader_init(&cfg, err, sizeof err);
    if (!L) {
        fprintf(stderr, "googlenet bench-loader: %s\n", err);
        dataset_free(ds);
        return EXIT_FAIL;
    }
    float *images = malloc((size_t)batch * 3 * crop * crop * sizeof(float));
    int *lab = malloc((size_t)batch * sizeof(int));
    if (!images || !lab) {
        fprintf(stderr, "googlenet bench-loader: out of memory for a batch of %d x 3 x %d x %d\n", batch, crop, crop);
        return EXIT_FAIL;
    }
    double t0 = 0, c0 = 0, wait = 0;
    long images_done = 0, bad = 0;
    int rc = EXIT_OK;
    for (int s = 0; s < warmup + batches; s++) {
        if (s == warmup) {
            t0 = clock_now();
            c0 = clock_cpu_process();
        }
        LoaderBatchInfo info;
        if (loader_next(L, images, lab, &info, err, sizeof err) < 0) {
            fprintf(stderr, "googlenet bench-loader: %s\n", err);
            rc = EXIT_FAIL;
            break;
        }
        if (info.warning) fprintf(stderr, "googlenet bench-loader: warning: %s\n", info.warning);
        if (s >= warmup) {
            images_done += info.real;
            wait += info.wait_s;
        }
        bad += info.bad;
    }
    double secs = clock_now() - t0, cpu = clock_cpu_process() - c0;
    if (rc == EXIT_OK) {
        int threads = workers > 0 ? workers : 1;
        double ips = images_done / secs;
        printf("  %s transform, crop %d, batch %d, filter %s%s, %d worker%s\n", eval ? "evaluation" : "training", crop,
               batch, eval ? "bilinear" : interp, eval || no_photometric ? "" : ", photometric", threads,
               threads == 1 ? "" : "s");
        printf("  %.1f img/s total   %.1f img/s per worker   %.1f img/s per CPU-second   main thread waited %.0f%%"
               "   bad files %ld\n",
               ips, ips / threads, images_done / cpu, 100 * wait / secs, bad);
        if (json)
            printf("{\"items\":%zu,\"scan_s\":%.4f,\"mode\":\"%s\",\"crop\":%d,\"batch\":%d,\"workers\":%d,"
                   "\"img_per_s\":%.2f,\"img_per_s_per_worker\":%.2f,\"img_per_cpu_s\":%.2f,\"wait_share\":%.4f,"
                   "\"bad\":%ld}\n",
                   n, scan_s, eval ? "eval" : "train", crop, batch, threads, ips, ips / threads, images_done / cpu,
                   wait / secs, bad);
    }
    free(images);
    free(lab);
    loader_free(L);
    dataset_free(ds);
    return rc;
}
