/* cmd/predict.c: `googlenet predict`: the classes of single images given by
 * path. The evaluation of `googlenet eval` (cmd/eval.h, eval/evaluate.h) on a
 * dataset made of the images given (every label 0, never scored): the same
 * transform, crops, batching and decode threads, and so the same
 * probabilities eval computes for the same file. Each image's top classes are
 * kept as it finishes (EvalConfig.on_image) and printed in the order given
 * once all are done. One process: no mpirun.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/clock.h"
#include "comm/comm.h"
#include "dataloader/dataset.h"
#include "dataloader/image.h"
#include "nn/model.h"
#include "trainer/cli.h"
#include "trainer/cmd/eval.h"
#include "trainer/commands.h"
#include "trainer/eval/evaluate.h"
#include "trainer/runtime.h"

#define ERRLEN 1024

typedef struct {
    int top, classes;
    int *idx;             /* (n, top) class indices, most probable first */
    double *p;            /* (n, top) their probabilities */
    float *logits;        /* (n, classes) with --logits, else NULL */
    char **why;           /* (n) why an image failed, or NULL */
    unsigned char *state; /* (n) 0 not reported, 1 classified, 2 failed */
} Predictions;

static void predict_on_image(void *ctx, size_t item, const double *p, const float *logits, const char *why)
{
    Predictions *P = ctx;
    if (!p) {
        P->why[item] = strdup(why && *why ? why : "cannot be read");
        P->state[item] = 2;
        return;
    }
    int *idx = P->idx + item * (size_t)P->top;
    double *pp = P->p + item * (size_t)P->top;
    /* the k-th pick: the largest below the previous one, ties to the lower index */
    for (int r = 0; r < P->top; r++) {
        int best = -1;
        for (int k = 0; k < P->classes; k++) {
            int below = r == 0 || p[k] < pp[r - 1] || (p[k] == pp[r - 1] && k > idx[r - 1]);
            if (below && (best < 0 || p[k] > p[best])) best = k;
        }
        idx[r] = best;
        pp[r] = p[best];
    }
    if (P->logits && logits) memcpy(P->logits + item * (size_t)P->classes, logits, (size_t)P->classes * sizeof(float));
    P->state[item] = 1;
}

static void predictions_free(Predictions *P, size_t n)
{
    for (size_t i = 0; P->why && i < n; i++) free(P->why[i]);
    free(P->why);
    free(P->idx);
    free(P->p);
    free(P->logits);
    free(P->state);
}

/* The lines of a --list file (empty lines skipped) into *paths, pointing into
 * *text (free both). Returns the count, or -1 with a reason. */
static long predict_read_list(const char *file, char **text, const char ***paths, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) return snprintf(err, errlen, "cannot read --list %s: %s", file, strerror(errno)), -1;
    size_t cap = 1 << 16, len = 0;
    char *t = malloc(cap + 1);
    size_t got;
    while (t && (got = fread(t + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *g = realloc(t, 2 * cap + 1);
            if (!g) free(t);
            t = g;
            cap *= 2;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (!t || rerr) {
        free(t);
        return snprintf(err, errlen, rerr ? "cannot read --list %s" : "out of memory reading --list %s", file), -1;
    }
    t[len] = 0;
    long n = 0;
    for (size_t i = 0; i < len; i++) n += t[i] == '\n';
    const char **v = malloc((size_t)(n + 1) * sizeof *v);
    if (!v) {
        free(t);
        return snprintf(err, errlen, "out of memory reading --list %s", file), -1;
    }
    n = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        size_t l = strlen(line);
        if (l && line[l - 1] == '\r') line[--l] = 0;
        if (l) v[n++] = line;
    }
    *text = t;
    *paths = v;
    return n;
}

/* Prints one image's result: a plain line, or a JSON line (errors too). */
static void predict_print(const Predictions *P, size_t i, const char *path, const char *const *names, int json)
{
    if (P->state[i] != 1) {
        const char *why = P->state[i] == 2 && P->why[i] ? P->why[i] : "cannot be read";
        fprintf(stderr, "googlenet predict: %s: %s\n", path, why);
        if (json) {
            printf("{\"image\": ");
            evaluate_json_print_string(stdout, path);
            printf(", \"error\": ");
            evaluate_json_print_string(stdout, why);
            printf("}\n");
        }
        return;
    }
    const int *idx = P->idx + i * (size_t)P->top;
    const double *p = P->p + i * (size_t)P->top;
    if (!json) {
        printf("%s:", path);
        for (int r = 0; r < P->top; r++) printf("%s %s %.4f", r ? "," : "", names[idx[r]], p[r]);
        printf("\n");
        return;
    }
    printf("{\"image\": ");
    evaluate_json_print_string(stdout, path);
    printf(", \"top\": [");
    for (int r = 0; r < P->top; r++) {
        printf("%s{\"class\": ", r ? ", " : "");
        evaluate_json_print_string(stdout, names[idx[r]]);
        printf(", \"index\": %d, \"p\": %.9g}", idx[r], p[r]);
    }
    printf("]");
    if (P->logits) {
        printf(", \"logits\": [");
        for (int k = 0; k < P->classes; k++) printf("%s%.9g", k ? ", " : "", P->logits[i * (size_t)P->classes + k]);
        printf("]");
    }
    printf("}\n");
}

/* The class names of e, or their indices as text; names[k] for k < classes. */
static char *predict_class_names(const Ensemble *e, const char **names)
{
    int have = e->class_names && e->num_class_names == e->classes;
    char *buf = have ? NULL : malloc((size_t)e->classes * 12);
    if (!have && !buf) return NULL;
    char *p = e->class_names;
    for (int k = 0; k < e->classes; k++) {
        if (have) { /* split in place: the names are ensemble_read_one's copy */
            names[k] = p;
            p += strcspn(p, "\n");
            *p++ = 0;
        } else {
            snprintf(buf + (size_t)k * 12, 12, "%d", k);
            names[k] = buf + (size_t)k * 12;
        }
    }
    return have ? e->class_names : buf;
}

/* Classifies paths[0..n) with the loaded checkpoint; prints; the exit code. */
static int predict_run(Comm *c, const EvalArgs *a, Ensemble *e, const char *const *paths, size_t n, int top,
                       int json, int logits)
{
    char err[ERRLEN] = "";
    Predictions P = {top < e->classes ? top : e->classes, e->classes, NULL, NULL, NULL, NULL, NULL};
    P.idx = malloc(n * (size_t)P.top * sizeof *P.idx);
    P.p = malloc(n * (size_t)P.top * sizeof *P.p);
    P.why = calloc(n, sizeof *P.why);
    P.state = calloc(n, 1);
    if (logits) P.logits = malloc(n * (size_t)e->classes * sizeof(float));
    const char **names = malloc((size_t)e->classes * sizeof *names);
    char *owned = names ? predict_class_names(e, names) : NULL;
    Dataset *ds = dataset_from_files(paths, n, e->classes, err, sizeof err);
    Model *m = NULL;
    int code = EXIT_FAIL;
    if (!P.idx || !P.p || !P.why || !P.state || (logits && !P.logits) || !names || !owned) {
        fprintf(stderr, "googlenet predict: out of memory for %zu images\n", n);
        goto out;
    }
    if (!ds || !(m = eval_model(e, a, err, sizeof err)) || eval_plan(c, m, e, a, 1, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
        goto out;
    }
    Progress pg = {clock_now(), clock_now(), 0, 1};
    EvalConfig ec;
    EvalResult res;
    if (eval_config(a, ds, e, &ec, &pg, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
        goto out;
    }
    ec.max_bad = 1.0; /* a bad image is reported, the others still classified */
    ec.on_image = predict_on_image;
    ec.on_image_ctx = &P;
    if (evaluate_run(c, m, (const float *const *)e->sets, 1, &ec, &res, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
        goto out;
    }
    code = EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        predict_print(&P, i, paths[i], names, json);
        if (P.state[i] != 1) code = EXIT_FAIL;
    }
    fflush(stdout);
    if (n > 64)
        fprintf(stderr, "googlenet predict: %zu images (%lld unreadable) in %.2f s: %.1f img/s, %d crop%s each, batch %d, %d threads\n",
                n, (long long)res.bad, res.seconds, res.img_per_s, res.crops_per_image,
                res.crops_per_image == 1 ? "" : "s", a->batch, eval_threads(a));
    evaluate_result_free(&res);
out:
    if (owned != e->class_names) free(owned);
    free(names);
    model_free(m);
    dataset_free(ds);
    predictions_free(&P, n);
    return code;
}

int cmd_predict(int argc, char **argv)
{
    EvalArgs a;
    eval_args_default(&a);
    a.quiet = 1;
    const char *ckpt = NULL, *list = NULL;
    int top = 5, json = 0, logits = 0;
    CliFlag flags[] = {
        {"--ckpt", CLI_STR, &ckpt, "the checkpoint to classify with", NULL, 0, 0, "FILE"},
        {"--list", CLI_STR, &list, "a file of image paths, one a line (instead of IMAGE...)", NULL, 0, 0, "FILE"},
        {"--crops", CLI_CHOICE, &a.crops, "crops per image (probabilities averaged): centre; 4 corners + centre, mirrored", "1|10"},
        {"--top", CLI_INT, &top, "classes shown per image", NULL, 1, 100000},
        {"--json", CLI_BOOL, &json, "one JSON line per image: {\"image\", \"top\": [{\"class\", \"index\", \"p\"}]}"},
        {"--logits", CLI_BOOL, &logits, "with --json and --crops 1: add the network's outputs (\"logits\", every class)"},
        {"--weights", CLI_CHOICE, &a.weights, "the checkpoint's Polyak average or its last weights", "average|raw"},
        {"--crop", CLI_INT, &a.crop, "input size; 0 takes the checkpoint's", NULL, 0, 4096},
        {"--resize", CLI_INT, &a.resize, "shorter side at crop 224 before cropping (scaled by crop/224)", NULL, 224, 4096},
        {"--filter", CLI_STR, &a.filter, "resampling filter: nearest|bilinear|bicubic|area|lanczos", NULL, 0, 0, "NAME"},
        {"--norm", CLI_CHOICE, &a.norm, "input normalisation, as eval's", "checkpoint|imagenet|caffe"},
        {"--batch", CLI_INT, &a.batch, "crops per forward pass", NULL, 1, 4096},
        {"--threads", CLI_INT, &a.threads, "threads for the network (GEMM and layers); 0: this node's cores", NULL, 0, CLI_THREADS_MAX},
        {"--workers", CLI_INT, &a.workers, "decode threads (0: decode in the main thread)", NULL, 0, 64},
        {"--conv-algo", CLI_CHOICE, &a.conv_algo, "convolution algorithms, as eval's", "checkpoint|auto|winograd|gemm"},
    };
    int nf = CLI_COUNT(flags), help = 0, npos = 0;
    char err[ERRLEN];
    const char **pos = malloc((size_t)(argc > 0 ? argc : 1) * sizeof *pos);
    if (!pos) return EXIT_FAIL;
    if (cli_parse(flags, nf, argc, argv, pos, argc, &npos, &help, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
        free(pos);
        return EXIT_USAGE;
    }
    if (help) {
        cli_print_help(stdout, "googlenet predict --ckpt FILE [--crops 1|10] [--top 5] [--json] IMAGE... | --list FILE",
                       "Classifies images with a checkpoint: the top classes (names from the\n"
                       "checkpoint) and their softmax probabilities, one line per image in the order\n"
                       "given. The image transform is eval's (same flags, same numbers). An image\n"
                       "that cannot be read gets one line on stderr naming it and why; the others\n"
                       "are still classified, and the exit code is then 1.",
                       flags, nf);
        free(pos);
        return EXIT_OK;
    }
    ImageFilter f;
    const char *usage = !ckpt ? "--ckpt FILE is required"
                        : list && npos > 0 ? "give images either as arguments or with --list FILE, not both"
                        : !list && npos == 0 ? "no images: give IMAGE... or --list FILE"
                        : logits && (!json || strcmp(a.crops, "1") != 0) ? "--logits goes with --json and --crops 1"
                        : a.crop > 0 && a.crop < model_min_crop(0) ? "--crop is too small for GoogLeNet"
                        : image_filter_parse(a.filter, &f) != 0 || f == IMAGE_FILTER_RANDOM
                            ? "--filter must be one of nearest, bilinear, bicubic, area, lanczos"
                            : NULL;
    if (usage) {
        fprintf(stderr, "googlenet predict: %s\n", usage);
        free(pos);
        return EXIT_USAGE;
    }
    char *text = NULL;
    const char **paths = pos;
    long n = npos;
    if (list && (n = predict_read_list(list, &text, &paths, err, sizeof err)) <= 0) {
        fprintf(stderr, "googlenet predict: %s\n", n < 0 ? err : "--list names no images");
        if (paths != pos) free(paths);
        free(text);
        free(pos);
        return EXIT_FAIL;
    }
    int code = EXIT_FAIL;
    Comm *c = comm_init(&argc, &argv, 0, err, sizeof err);
    Ensemble e;
    memset(&e, 0, sizeof e);
    if (!c) {
        fprintf(stderr, "googlenet predict: %s\n", err);
    } else if (comm_size(c) > 1) {
        fprintf(stderr, "googlenet predict: runs as one process; use --threads, not mpirun\n");
    } else if (ensemble_load(c, &ckpt, 1, strcmp(a.weights, "average") == 0, &e, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet predict: %s\n", err);
    } else {
        trainer_set_threads(eval_threads(&a));
        code = predict_run(c, &a, &e, paths, (size_t)n, top, json, logits);
    }
    ensemble_free(&e);
    comm_free(c);
    if (paths != pos) free(paths);
    free(text);
    free(pos);
    return code;
}
