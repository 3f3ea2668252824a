/* cmd/ckpt.c: `googlenet ckpt info|verify|export|import|slim`: inspect and
 * check checkpoints, move weights to and from NumPy's .npy, and write the
 * inference-only part of a checkpoint. `ckpt bench` is another name of
 * `googlenet bench ckpt` (cmd/bench_ckpt.c). The format and the writer are in
 * trainer/ckpt/; this file only drives them and prints. It never writes over a
 * checkpoint it was not asked to replace. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nn/model.h"
#include "nn/sgd.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/ckpt/hash.h"
#include "trainer/ckpt/params.h"
#include "trainer/ckpt/onnx.h"
#include "trainer/cli.h"
#include "trainer/cmd/bench_ckpt.h"
#include "trainer/commands.h"
#include "trainer/runtime.h"
#include "trainer/train/resume.h"

/* Parses flags and exactly `npos` positional arguments (or prints help). */
static int parse_action(const char *action, const char *usage, const char *summary, CliFlag *flags, int nflags,
                        int argc, char **argv, const char **pos, int npos, int *done)
{
    int help = 0, got = 0;
    char err[300];
    *done = 0;
    if (cli_parse(flags, nflags, argc, argv, pos, npos, &got, &help, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet ckpt %s: %s\n", action, err);
        *done = 1;
        return EXIT_USAGE;
    }
    if (help) {
        cli_print_help(stdout, usage, summary, flags, nflags);
        *done = 1;
        return EXIT_OK;
    }
    if (got != npos) {
        fprintf(stderr, "googlenet ckpt %s: expected %d file argument%s, got %d (usage: %s)\n", action, npos,
                npos == 1 ? "" : "s", got, usage);
        *done = 1;
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* ---- info ---- */

static void print_meta(const CkptMeta *m)
{
    char when[64] = "?";
    time_t t = (time_t)m->created_unix;
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    printf("  architecture   %s, %d classes, crop %d, aux heads %s, dropout %g / %g\n", m->arch, m->classes, m->crop,
           m->aux ? "on" : "off", (double)m->head_dropout, (double)m->aux_dropout);
    printf("  num_params     %zu\n", m->num_params);
    char pos[128];
    TrainPosition at = {.step = m->step, .epoch = m->epoch, .epoch_step = m->epoch_step};
    train_format_position(&at, 0, pos, sizeof pos);
    printf("  position       %s; %lld samples seen\n", pos, m->samples_seen);
    printf("  seed           %llu (all randomness is counter-based: seed + position is the RNG state)\n",
           (unsigned long long)m->seed);
    printf("  ranks          %d x batch %d x accum %d = global batch %lld\n", m->world_size, m->batch, m->accum,
           (long long)m->world_size * m->batch * m->accum);
    const LrSchedule *s = &m->lr;
    printf("  learning rate  %s, base %g, warm-up %ld steps", lr_policy_name(s->policy), s->base_lr, s->warmup_iters);
    if (s->policy == LR_STEP) printf(", gamma %g every %ld steps", s->gamma, s->step_size);
    if (s->policy == LR_POLY) printf(", power %g over %ld steps", s->power, s->max_iter);
    if (s->policy == LR_COSINE) printf(", to %g x base over %ld steps", s->final_frac, s->max_iter);
    printf("; last %.6g\n", m->last_lr);
    printf("  optimizer      momentum %g, weight decay %g, ema decay %g\n", m->momentum, m->weight_decay,
           m->ema_decay);
    printf("  data           %lld training samples, drop_last %s\n", m->dataset_size, m->drop_last ? "yes" : "no");
    printf("  created        %s\n", when);
    printf("  command        %s\n", m->command[0] ? m->command : "(none)");
    if (m->class_names) {
        printf("  class names    %d:", m->num_class_names);
        const char *p = m->class_names;
        for (int i = 0; i < 5 && *p; i++) {
            const char *nl = strchr(p, '\n');
            printf(" %s%.*s", i ? "| " : "", (int)(nl - p), p);
            p = nl + 1;
        }
        printf("%s\n", m->num_class_names > 5 ? " | ... (--classes lists them all)" : "");
    } else {
        printf("  class names    (none recorded)\n");
    }
    if (m->extra && m->extra[0]) {
        const char *p = m->extra;
        while (*p) {
            const char *nl = strchr(p, '\n');
            int len = nl ? (int)(nl - p) : (int)strlen(p);
            printf("  extra          %.*s\n", len, p);
            p += len + (nl ? 1 : 0);
        }
    }
}

/* The parameter layout of the checkpoint's architecture, from nn/model.h. */
static int print_tensors(const CkptMeta *m)
{
    if (strcmp(m->arch, CKPT_ARCH) != 0) {
        fprintf(stderr, "googlenet ckpt info: no tensor table for architecture '%s'\n", m->arch);
        return -1;
    }
    char err[300];
    CkptLayout l;
    if (ckpt_layout_init(&l, m->classes, m->aux, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet ckpt info: %s\n", err);
        return -1;
    }
    printf("tensors (%d, parameter order: offset and count in floats):\n", l.n);
    for (int i = 0; i < l.n; i++) {
        char shape[64] = "";
        for (int d = 0; d < l.t[i].ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%d", d ? "x" : "", l.t[i].shape[d]);
        printf("  %10zu %9zu  %-16s %s\n", l.t[i].offset, l.t[i].count, shape, l.t[i].name);
    }
    int rc = l.num_params == m->num_params ? 0 : -1;
    if (rc) fprintf(stderr, "googlenet ckpt info: this build's layout has %zu parameters, the file %zu\n",
                    l.num_params, m->num_params);
    ckpt_layout_free(&l);
    return rc;
}

/* What a checkpoint can still do, by the sections it has. */
static void print_form(const CkptReader *r)
{
    char set[16];
    if (ckpt_meta_get_extra(ckpt_reader_meta(r), CKPT_EXTRA_SLIM, set, sizeof set))
        printf("  form           slim: the run's %s only, no optimizer state: evaluate it, or start a new run from it "
               "(train --init); it cannot be resumed\n", strcmp(set, "raw") == 0 ? "last weights" : "Polyak average");
    else if (ckpt_reader_has(r, CKPT_SEC_MOMENTUM) && ckpt_reader_has(r, CKPT_SEC_AVERAGE))
        printf("  form           full: resume it exactly (train --resume), evaluate it (its average or its weights), "
               "or start a new run from it (train --init)\n");
    else
        printf("  form           weights without optimizer state: evaluate it, or start a new run from it (train --init)\n");
}

static int ckpt_info(int argc, char **argv)
{
    int list_classes = 0, list_tensors = 0;
    CliFlag flags[] = {
        {"--classes", CLI_BOOL, &list_classes, "list every class name, one a line, after the summary"},
        {"--tensors", CLI_BOOL, &list_tensors,
         "list the parameter tensors (offset, count, shape, name): the order of every float section"},
    };
    const char *pos[1];
    int done;
    int rc = parse_action("info", "googlenet ckpt info FILE [flags]",
                          "Prints a checkpoint's metadata, its sections with their sizes and compression, and\n"
                          "params_sha256 (SHA-256 of the raw fp32 weights in parameter order, recomputed from\n"
                          "the decoded weights). Exit 1 when the file cannot be read or the weights fail.",
                          flags, CLI_COUNT(flags), argc, argv, pos, 1, &done);
    if (done) return rc;
    char err[1200];
    CkptReader *r = ckpt_open(pos[0], err, sizeof err);
    if (!r) {
        fprintf(stderr, "googlenet ckpt info: %s\n", err);
        return EXIT_FAIL;
    }
    const CkptMeta *m = ckpt_reader_meta(r);
    uint64_t fb = ckpt_reader_file_bytes(r);
    printf("checkpoint %s: format %d.%d, %llu bytes (%.1f MB)\n", pos[0], m->version_major, m->version_minor,
           (unsigned long long)fb, fb / 1e6);
    print_meta(m);
    print_form(r);
    int ns;
    const CkptSectionInfo *s = ckpt_reader_sections(r, &ns);
    printf("  sections       %-9s %-14s %14s %14s %7s\n", "name", "codec", "raw bytes", "stored bytes", "ratio");
    uint64_t raw = 0, stored = 0;
    for (int i = 0; i < ns; i++) {
        printf("                 %-9s %-14s %14llu %14llu %7.4f\n", ckpt_section_name(s[i].kind),
               ckpt_codec_name(s[i].codec), (unsigned long long)s[i].raw_bytes,
               (unsigned long long)s[i].stored_bytes,
               s[i].raw_bytes ? (double)s[i].stored_bytes / (double)s[i].raw_bytes : 1.0);
        if (s[i].elem_size == 4) {
            raw += s[i].raw_bytes;
            stored += s[i].stored_bytes;
        }
    }
    printf("  compression    float sections %.4f of raw (%llu of %llu bytes); whole file %.4f\n",
           raw ? (double)stored / (double)raw : 1.0, (unsigned long long)stored, (unsigned long long)raw,
           raw ? (double)fb / (double)raw : 1.0);
    rc = EXIT_OK;
    float *w = malloc(m->num_params * sizeof(float));
    if (!w) {
        fprintf(stderr, "googlenet ckpt info: out of memory for %zu weights\n", m->num_params);
        rc = EXIT_FAIL;
    } else if (ckpt_reader_read(r, CKPT_SEC_WEIGHTS, w, m->num_params, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet ckpt info: %s\n", err);
        rc = EXIT_FAIL;
    } else {
        char hex[65];
        sha256_buffer_hex(w, m->num_params * sizeof(float), hex);
        printf("params_sha256: %s\n", hex);
    }
    if (list_classes && m->class_names) fputs(m->class_names, stdout);
    if (list_tensors && print_tensors(m) != 0) rc = EXIT_FAIL;
    free(w);
    ckpt_close(r);
    return rc;
}

/* ---- verify ---- */

static int ckpt_verify(int argc, char **argv)
{
    const char *pos[1];
    int done;
    int rc = parse_action("verify", "googlenet ckpt verify FILE",
                          "Checks every checksum of a checkpoint (header, table, each section stored and\n"
                          "decoded, the weights' SHA-256, the whole file). Prints one line; exit 0 when all\n"
                          "hold, 1 otherwise.",
                          NULL, 0, argc, argv, pos, 1, &done);
    if (done) return rc;
    char err[1200];
    CkptReader *r = ckpt_open(pos[0], err, sizeof err);
    if (!r || ckpt_reader_verify(r, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet ckpt verify: %s\n", err);
        ckpt_close(r);
        return EXIT_FAIL;
    }
    const CkptMeta *m = ckpt_reader_meta(r);
    printf("OK %s: every checksum holds (step %ld, %zu parameters, %llu bytes)\n", pos[0], m->step, m->num_params,
           (unsigned long long)ckpt_reader_file_bytes(r));
    ckpt_close(r);
    return EXIT_OK;
}

/* ---- export / import ---- */

static int ckpt_export(int argc, char **argv)
{
    const char *out = NULL, *section = "weights", *format = "npy", *weights = "average";
    int logits = 0, crop = 0;
    CliFlag flags[] = {
        {"--out", CLI_STR, &out, "the file to write (replaced atomically)", NULL, 0, 0, "FILE"},
        {"--format", CLI_CHOICE, &format, "a float section as .npy, or the inference network as ONNX (trainer/ckpt/onnx.h)", "npy|onnx"},
        {"--section", CLI_CHOICE, &section, "npy: which float section", "weights|momentum|average"},
        {"--weights", CLI_CHOICE, &weights, "onnx: the Polyak average (the paper's final model) or the raw weights", "average|raw"},
        {"--crop", CLI_INT, &crop, "onnx: input size; 0 takes the checkpoint's", NULL, 0, 4096},
        {"--logits", CLI_BOOL, &logits, "onnx: a second output `logits` beside `prob`"},
    };
    const char *pos[1];
    int done, nf = CLI_COUNT(flags);
    int rc = parse_action("export", "googlenet ckpt export FILE --out F.npy [--section S] | --format onnx --out MODEL.onnx",
                          "Writes one float section of a checkpoint as a NumPy .npy file (format 1.0, dtype\n"
                          "'<f4', shape (num_params,), the parameter order of docs/checkpoints.md, \"Parameter\n"
                          "order\"), or with --format onnx the inference network (main head, softmax) as an\n"
                          "ONNX model: input `input` [N, 3, crop, crop] RGB in 0..1, output `prob`\n"
                          "[N, classes] (docs/deployment.md).",
                          flags, nf, argc, argv, pos, 1, &done);
    if (done) return rc;
    int onnx = strcmp(format, "onnx") == 0;
    const char *usage = !out ? "--out FILE is required"
                        : onnx && cli_given(flags, nf, "--section") ? "--section is for .npy; ONNX takes --weights average|raw"
                        : !onnx && (cli_given(flags, nf, "--weights") || crop || logits)
                            ? "--weights, --crop and --logits go with --format onnx (.npy takes --section)"
                        : onnx && crop > 0 && crop < model_min_crop(0) ? "--crop is too small for GoogLeNet"
                                                                       : NULL;
    if (usage) {
        fprintf(stderr, "googlenet ckpt export: %s\n", usage);
        return EXIT_USAGE;
    }
    char err[1200];
    if (onnx) {
        OnnxExportOptions o = {strcmp(weights, "average") == 0, crop, logits};
        char summary[1400];
        if (ckpt_onnx_export(pos[0], out, &o, summary, sizeof summary, err, sizeof err) != 0) {
            fprintf(stderr, "googlenet ckpt export: %s\n", err);
            return EXIT_FAIL;
        }
        printf("%s\n", summary);
        return EXIT_OK;
    }
    CkptSectionKind kind = strcmp(section, "weights") == 0    ? CKPT_SEC_WEIGHTS
                           : strcmp(section, "momentum") == 0 ? CKPT_SEC_MOMENTUM
                                                              : CKPT_SEC_AVERAGE;
    CkptReader *r = ckpt_open(pos[0], err, sizeof err);
    if (!r) {
        fprintf(stderr, "googlenet ckpt export: %s\n", err);
        return EXIT_FAIL;
    }
    size_t np = ckpt_reader_meta(r)->num_params;
    float *x = malloc(np * sizeof(float));
    rc = EXIT_FAIL;
    if (!x) snprintf(err, sizeof err, "out of memory for %zu floats", np);
    else if (ckpt_reader_read(r, kind, x, np, err, sizeof err) == 0 && ckpt_npy_write(out, x, np, err, sizeof err) == 0)
        rc = EXIT_OK;
    if (rc == EXIT_OK) printf("wrote %s: %s, %zu float32 values\n", out, section, np);
    else fprintf(stderr, "googlenet ckpt export: %s\n", err);
    free(x);
    ckpt_close(r);
    return rc;
}

static void join_command(char *out, size_t len, const char *prefix, int argc, char **argv)
{
    snprintf(out, len, "%s", prefix);
    for (int i = 0; i < argc; i++) {
        size_t used = strlen(out);
        if (used + 2 >= len) break;
        snprintf(out + used, len - used, " %s", argv[i]);
    }
}

/* The metadata of an imported checkpoint: --like's (settings, class names,
 * extras; the position is reset by the caller), or the default network's
 * with these classes, crop and heads. EXIT_OK, or the exit code with err. */
static int import_meta(const char *like, int classes, int crop, int no_aux, CkptMeta *meta, char *err, size_t errlen)
{
    ckpt_meta_init(meta);
    if (like) {
        CkptMeta lm;
        if (ckpt_peek_meta(like, &lm, err, errlen) != 0) return EXIT_FAIL;
        if (strcmp(lm.arch, CKPT_ARCH) != 0) {
            snprintf(err, errlen, "%s: architecture '%s' is not '%s'", like, lm.arch, CKPT_ARCH);
            ckpt_meta_free(&lm);
            return EXIT_FAIL;
        }
        ckpt_meta_free(meta);
        *meta = lm;
        meta->version_major = CKPT_VERSION_MAJOR;
        meta->version_minor = CKPT_VERSION_MINOR;
        return EXIT_OK;
    }
    ModelConfig cfg = model_default_config();
    cfg.classes = classes;
    cfg.crop = crop;
    cfg.aux = !no_aux;
    cfg.training = 0;
    cfg.batch = 1;
    Model *mdl = model_init(&cfg, err, errlen);
    if (!mdl) return EXIT_USAGE;
    ckpt_meta_set_model(meta, &cfg, model_num_params(mdl));
    model_free(mdl);
    return EXIT_OK;
}

static int ckpt_import(int argc, char **argv)
{
    const char *out = NULL, *like = NULL;
    int classes = 1000, crop = 224, no_aux = 0, level = 3, threads = 0, force = 0;
    long step = 0;
    CliFlag flags[] = {
        {"--out", CLI_STR, &out, "the checkpoint to write", NULL, 0, 0, "FILE.gnck"},
        {"--like", CLI_STR, &like, "take architecture, classes, class names and settings from this checkpoint",
         NULL, 0, 0, "OTHER.gnck"},
        {"--classes", CLI_INT, &classes, "classifier outputs (without --like)", NULL, 1, CLI_CLASSES_MAX},
        {"--crop", CLI_INT, &crop, "input crop recorded (without --like)", NULL, 8, CLI_CROP_MAX},
        {"--no-aux", CLI_BOOL, &no_aux, "the weights have no auxiliary heads (without --like)"},
        {"--step", CLI_LONG, &step, "step recorded in the checkpoint", NULL, 0, 1e15},
        {"--ckpt-level", CLI_INT, &level, "Zstandard level of the checkpoint", NULL, CLI_LEVEL_MIN, CLI_LEVEL_MAX, NULL, "--level"},
        {"--ckpt-threads", CLI_INT, &threads, "Zstandard worker threads (0: compress in this thread)", NULL, 0, CLI_ZSTD_THREADS_MAX, NULL, "--zstd-threads"},
        {"--force", CLI_BOOL, &force, "replace --out when it exists"},
    };
    const char *pos[1];
    int done;
    int rc = parse_action("import", "googlenet ckpt import F.npy --out FILE.gnck [--like OTHER.gnck | --classes C --crop S]",
                          "Builds a checkpoint from a flat float32 .npy of weights (momentum zero, average =\n"
                          "weights), so a model trained elsewhere can be evaluated or trained further. The\n"
                          "count must match the architecture.",
                          flags, CLI_COUNT(flags), argc, argv, pos, 1, &done);
    if (done) return rc;
    if (!out) {
        fprintf(stderr, "googlenet ckpt import: --out FILE.gnck is required\n");
        return EXIT_USAGE;
    }
    if (like && (cli_given(flags, CLI_COUNT(flags), "--classes") || cli_given(flags, CLI_COUNT(flags), "--crop") ||
                 no_aux)) {
        fprintf(stderr, "googlenet ckpt import: --like takes the architecture from OTHER.gnck; drop --classes, "
                        "--crop and --no-aux\n");
        return EXIT_USAGE;
    }
    if (!force && access(out, F_OK) == 0) {
        fprintf(stderr, "googlenet ckpt import: %s exists; pass --force to replace it\n", out);
        return EXIT_FAIL;
    }
    char err[1200];
    CkptMeta meta;
    if ((rc = import_meta(like, classes, crop, no_aux, &meta, err, sizeof err)) != EXIT_OK) {
        fprintf(stderr, "googlenet ckpt import: %s\n", err);
        return rc;
    }
    meta.step = step;
    meta.epoch = meta.epoch_step = 0;
    meta.epoch_samples = meta.samples_seen = 0;
    meta.created_unix = 0;
    join_command(meta.command, sizeof meta.command, "googlenet ckpt import", argc, argv);
    size_t n = 0;
    float *w = ckpt_npy_read(pos[0], &n, err, sizeof err);
    rc = EXIT_FAIL;
    float *mom = NULL;
    if (!w) {
        fprintf(stderr, "googlenet ckpt import: %s\n", err);
        goto out;
    }
    if (n != meta.num_params) {
        fprintf(stderr, "googlenet ckpt import: %s holds %zu floats but %s with %d classes%s has %zu parameters\n",
                pos[0], n, CKPT_ARCH, meta.classes, meta.aux ? " and aux heads" : ", no aux heads", meta.num_params);
        goto out;
    }
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !isfinite(w[i]);
    if (bad) {
        fprintf(stderr, "googlenet ckpt import: %s holds %zu NaN or infinite values; refusing to import them\n",
                pos[0], bad);
        goto out;
    }
    mom = calloc(n, sizeof(float));
    if (!mom) {
        fprintf(stderr, "googlenet ckpt import: out of memory\n");
        goto out;
    }
    if (ckpt_save(out, &meta, w, mom, w, level, threads, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet ckpt import: %s\n", err);
        goto out;
    }
    printf("wrote %s: %zu parameters (%s, %d classes, aux heads %s), step %ld\n", out, n, meta.arch, meta.classes,
           meta.aux ? "on" : "off", meta.step);
    rc = EXIT_OK;
out:
    free(w);
    free(mom);
    ckpt_meta_free(&meta);
    return rc;
}

/* ---- slim ---- */

/* The weights to keep: the chosen set, without the aux heads unless kept. */
static float *slim_weights(CkptReader *r, int average, int keep_aux, CkptMeta *meta, char *err, size_t errlen)
{
    const CkptMeta *m = ckpt_reader_meta(r);
    char was[16] = "";
    int slim = ckpt_meta_get_extra(m, CKPT_EXTRA_SLIM, was, sizeof was);
    if (slim && (strcmp(was, "average") == 0) != average)
        return snprintf(err, errlen, "it is slim already and holds only its %s; pass --weights %s",
                        average ? "last weights" : "Polyak average", average ? "raw" : "average"), NULL;
    float *w = malloc(m->num_params * sizeof(float));
    if (!w) return snprintf(err, errlen, "out of memory for %zu weights", m->num_params), NULL;
    CkptSectionKind kind = !slim && average ? CKPT_SEC_AVERAGE : CKPT_SEC_WEIGHTS;
    if (ckpt_reader_read(r, kind, w, m->num_params, err, errlen) != 0) {
        free(w);
        return NULL;
    }
    if (ckpt_meta_copy(meta, m) != 0 ||
        (!slim && ckpt_meta_add_extra(meta, CKPT_EXTRA_SLIM, average ? "average" : "raw", err, errlen) != 0)) {
        free(w);
        return snprintf(err, errlen, "out of memory"), NULL;
    }
    meta->created_unix = 0;
    if (!m->aux || keep_aux) return w;
    /* the aux heads only train: inference runs the main path */
    CkptLayout from, to;
    char missing[512];
    size_t lowest;
    float *main_path = NULL;
    if (ckpt_layout_init(&from, m->classes, 1, err, errlen) == 0) {
        if (ckpt_layout_init(&to, m->classes, 0, err, errlen) == 0) {
            if (from.num_params != m->num_params)
                snprintf(err, errlen, "it holds %zu parameters, not the %zu of its architecture", m->num_params,
                         from.num_params);
            else if (!(main_path = malloc(to.num_params * sizeof(float))))
                snprintf(err, errlen, "out of memory");
            else if (ckpt_params_copy(&to, main_path, &from, w, NULL, missing, sizeof missing, &lowest) != 0) {
                snprintf(err, errlen, "its layout lacks %s", missing);
                free(main_path);
                main_path = NULL;
            }
            meta->aux = 0;
            meta->num_params = to.num_params;
            ckpt_layout_free(&to);
        }
        ckpt_layout_free(&from);
    }
    free(w);
    if (!main_path) ckpt_meta_free(meta);
    return main_path;
}

static int ckpt_slim(int argc, char **argv)
{
    const char *out = NULL, *weights = "average";
    int keep_aux = 0, level = 3, threads = 0, force = 0;
    CliFlag flags[] = {
        {"--out", CLI_STR, &out, "the slim checkpoint to write", NULL, 0, 0, "FILE.gnck"},
        {"--weights", CLI_CHOICE, &weights, "which weights to keep: the Polyak average (what eval scores by default) "
         "or the last weights", "average|raw"},
        {"--keep-aux", CLI_BOOL, &keep_aux, "keep the auxiliary heads (only training uses them)"},
        {"--ckpt-level", CLI_INT, &level, "Zstandard level", NULL, CLI_LEVEL_MIN, CLI_LEVEL_MAX, NULL, "--level"},
        {"--ckpt-threads", CLI_INT, &threads, "Zstandard worker threads", NULL, 0, CLI_ZSTD_THREADS_MAX, NULL,
         "--zstd-threads"},
        {"--force", CLI_BOOL, &force, "replace --out when it exists"},
    };
    const char *pos[1];
    int done;
    int rc = parse_action("slim", "googlenet ckpt slim FILE --out SLIM.gnck [flags]",
                          "Writes the part of a checkpoint that inference needs: one set of weights (the\n"
                          "Polyak average by default) without the momentum, and without the aux heads\n"
                          "unless --keep-aux. eval reads it, and train --init starts a new run from it;\n"
                          "it cannot be resumed.",
                          flags, CLI_COUNT(flags), argc, argv, pos, 1, &done);
    if (done) return rc;
    if (!out) {
        fprintf(stderr, "googlenet ckpt slim: --out SLIM.gnck is required\n");
        return EXIT_USAGE;
    }
    if (!force && access(out, F_OK) == 0) {
        fprintf(stderr, "googlenet ckpt slim: %s exists; pass --force to replace it\n", out);
        return EXIT_FAIL;
    }
    char err[1200], why[1200];
    CkptReader *r = ckpt_open(pos[0], err, sizeof err);
    if (!r) {
        fprintf(stderr, "googlenet ckpt slim: %s\n", err);
        return EXIT_FAIL;
    }
    CkptMeta meta;
    float *w = slim_weights(r, strcmp(weights, "average") == 0, keep_aux, &meta, why, sizeof why);
    uint64_t full = ckpt_reader_file_bytes(r);
    ckpt_close(r);
    if (!w) {
        fprintf(stderr, "googlenet ckpt slim: %s: %s\n", pos[0], why);
        return EXIT_FAIL;
    }
    rc = EXIT_FAIL;
    struct stat st;
    if (ckpt_save(out, &meta, w, NULL, NULL, level, threads, err, sizeof err) != 0)
        fprintf(stderr, "googlenet ckpt slim: %s\n", err);
    else if (stat(out, &st) == 0) {
        printf("wrote %s: %s of %s (step %ld), %zu parameters%s, %.1f MB (the checkpoint: %.1f MB); evaluate it, or "
               "start a new run from it with train --init; it cannot be resumed\n", out,
               strcmp(weights, "average") == 0 ? "the Polyak average" : "the last weights", pos[0], meta.step,
               meta.num_params, meta.aux ? " with the aux heads" : " (no aux heads)", st.st_size / 1e6, full / 1e6);
        rc = EXIT_OK;
    }
    free(w);
    ckpt_meta_free(&meta);
    return rc;
}

/* ---- dispatch ---- */

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Action;

static const Action actions[] = {
    {"info", ckpt_info, "metadata, sections, compression and params_sha256 of a checkpoint"},
    {"verify", ckpt_verify, "check every checksum; exit 0 or 1 with one line"},
    {"export", ckpt_export, "write the weights (or another float section) as .npy, or the network as ONNX"},
    {"import", ckpt_import, "build a checkpoint from a .npy of weights"},
    {"slim", ckpt_slim, "write the inference-only part: one set of weights, no optimizer state, no aux heads"},
    {"bench", cmd_bench_ckpt, "the same as `googlenet bench ckpt`: compression ratios and the training stall per checkpoint"},
};

int cmd_ckpt(int argc, char **argv)
{
    int n = (int)(sizeof actions / sizeof actions[0]);
    if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
        FILE *f = argc < 1 ? stderr : stdout;
        fprintf(f, "usage: googlenet ckpt <action> [flags]     (googlenet ckpt <action> --help for its flags)\n\n"
                   "actions:\n");
        for (int i = 0; i < n; i++) fprintf(f, "  %-8s %s\n", actions[i].name, actions[i].summary);
        return argc < 1 ? EXIT_USAGE : EXIT_OK;
    }
    const char *names[8];
    for (int i = 0; i < n; i++) {
        names[i] = actions[i].name;
        if (strcmp(argv[0], actions[i].name) == 0) return actions[i].run(argc - 1, argv + 1);
    }
    const char *near = cli_closest(argv[0], names, n);
    if (near) fprintf(stderr, "googlenet ckpt: unknown action '%s'; did you mean '%s'?\n", argv[0], near);
    else fprintf(stderr, "googlenet ckpt: unknown action '%s'; one of info, verify, export, import, slim, bench\n", argv[0]);
    return EXIT_USAGE;
}
