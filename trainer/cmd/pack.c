/* cmd/pack.c: `googlenet pack`: copies a dataset (class tree, flat directory
 * with labels, or shards) into N shard files (format: dataloader/shard.h) so a
 * cluster file system serves a few large files instead of millions of small
 * ones. `--data` of train/eval/bench-loader accepts the output directory. */
#include <stdio.h>
#include <time.h>

#include "dataloader/dataset.h"
#include "comm/clock.h"
#include "dataloader/shard.h"
#include "trainer/cli.h"
#include "trainer/commands.h"
#include "trainer/runtime.h"

typedef struct {
    int quiet;
    int last_pct;
} Progress;

static void on_progress(size_t done, size_t total, void *ctx)
{
    Progress *p = ctx;
    int pct = (int)(100 * done / total);
    if (p->quiet || pct / 10 == p->last_pct / 10) return;
    p->last_pct = pct;
    fprintf(stderr, "googlenet pack: %zu of %zu items (%d%%)\n", done, total, pct);
}

int cmd_pack(int argc, char **argv)
{
    const char *data = NULL, *out = NULL, *classes_file = NULL, *labels = NULL;
    int shards = 16, quiet = 0;
    CliFlag flags[] = {
        {"--data", CLI_STR, &data, "class tree, flat directory (with --labels) or shard directory", NULL, 0, 0, "DIR"},
        {"--out", CLI_STR, &out, "directory for the shard files (created; must hold no shards yet)", NULL, 0, 0, "DIR"},
        {"--shards", CLI_INT, &shards, "number of shard files", NULL, 1, 1000000},
        {"--classes-file", CLI_STR, &classes_file, "class ids in label order, one per line", NULL, 0, 0, "FILE"},
        {"--labels", CLI_STR, &labels, "label file of a flat directory", NULL, 0, 0, "FILE"},
        {"--quiet", CLI_BOOL, &quiet, "no progress lines"},
    };
    int help = 0;
    char err[512];
    if (cli_parse(flags, CLI_COUNT(flags), argc, argv, NULL, 0, NULL, &help, err, sizeof err) != 0) {
        trainer_print_once("pack", "%s", err);
        return EXIT_USAGE;
    }
    if (help) {
        cli_print_help(stdout, "googlenet pack --data DIR --out DIR [--shards N]",
                       "Packs the images of a dataset, as they are (no re-encoding), with their labels\n"
                       "and names into N shard files shard-KKKKK-of-NNNNN.gshard, each with an index and\n"
                       "checksums. Train, eval and bench-loader read the directory with --data OUT.\n"
                       "Files that cannot be read are left out and counted.",
                       flags, CLI_COUNT(flags));
        return EXIT_OK;
    }
    if (!data || !out) {
        trainer_print_once("pack", "--data DIR and --out DIR are required (see --help)");
        return EXIT_USAGE;
    }
    double t0 = clock_now();
    DatasetOptions dopt = {data, classes_file, labels, NULL};
    Dataset *ds = dataset_open(&dopt, err, sizeof err);
    if (!ds) {
        fprintf(stderr, "googlenet pack: %s\n", err);
        return EXIT_FAIL;
    }
    Progress prog = {quiet, 0};
    ShardPackStats st;
    int rc = shard_pack(ds, out, shards, &st, on_progress, &prog, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "googlenet pack: %s\n", err);
        dataset_free(ds);
        return EXIT_FAIL;
    }
    printf("googlenet pack: %zu items of %d classes (%.1f MB) into %d shard%s in %s, %.1f s\n", st.items,
           dataset_num_classes(ds), st.bytes / 1e6, shards, shards == 1 ? "" : "s", out, clock_now() - t0);
    if (st.skipped)
        fprintf(stderr, "googlenet pack: warning: left out %zu unreadable or empty file%s (first: %s)\n", st.skipped,
                st.skipped == 1 ? "" : "s", st.first_skipped);
    dataset_free(ds);
    return EXIT_OK;
}
