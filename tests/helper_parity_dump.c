/* helper_parity_dump.c: runs one training forward + backward and the eval
 * forwards of GoogLeNet on a deterministic batch and writes everything an
 * independent implementation needs to check them, as .npy files, for
 * scripts/reference_googlenet.py (tests/test_parity.sh drives both).
 *
 * Dropout is 0 in the training pass (its masks cannot be shared with PyTorch);
 * the eval passes keep the paper's rates, which eval must ignore. This program
 * only computes and writes; it judges nothing.
 *
 * Weights: --init spread (the default) takes model_init_weights and then widens
 * the weights by sqrt(2) (He's gain for ReLU) and draws the biases uniformly in
 * [-0.1, 0.1). With Caffe's own init (--init caffe: xavier, biases 0.2) the
 * input's signal halves at every ReLU layer and the deep maps are nearly
 * constant planes of bias: a wrong spatial index there would hardly show, and
 * the max pools see near-ties that float32 and float64 break differently.
 * --plan-batch B > N plans the model for B images and runs N, the path of a
 * last partial batch.
 *
 * Written to --out DIR:
 *   params.npy (P) fp32, the flat parameter buffer the run used (see --init)
 *   grads.npy (P) fp32, d(mean loss)/d(params), i.e. backward with 1/N
 *   params.txt one line per tensor: name offset count shape...
 *   input.npy (N, 3, S, S) fp32, labels.npy (N) int32
 *   logits_main.npy, logits_aux1.npy, logits_aux2.npy (N, classes) fp32: the
 *     MODEL_TRAIN forward
 *   loss.npy (1) fp64: ModelStats.loss, the batch mean of main + 0.3 aux1 + 0.3 aux2
 *   logits_eval.npy (N, classes): MODEL_EVAL forward of the same (training) model
 *   acts/ every activation of the MODEL_TRAIN forward (N, C, H, W), and
 *     acts/index.txt: "name file C H W" per tensor; the reference takes C's
 *     ReLU and max-pool decisions from them (see AlignTap there)
 *   logits_infer.npy (N, classes): MODEL_EVAL forward of an inference-only model
 *     (training = 0: the other memory plan) holding the same parameters
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/model.h"
#include "nn/parallel.h"
#include "nn/rng.h"
#include "trainer/cli.h"

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("helper_parity_dump: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* NPY format 1.0: magic, version, little-endian u16 header length, a Python
 * dict literal padded with spaces to a multiple of 64 bytes ending in '\n',
 * then the raw C-order data. */
static void npy_write(const char *dir, const char *file, const char *descr, const void *data,
                      size_t elem_size, const int *shape, int ndim)
{
    char path[4096], dims[160] = "", header[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        size_t len = strlen(dims);
        const char *sep = ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""); /* (5,) but (2, 3) */
        snprintf(dims + len, sizeof dims - len, "%d%s", shape[i], sep);
        count *= (size_t)shape[i];
    }
    int hl = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                      descr, dims);
    int total = 10 + hl + 1;
    int padded = (total + 63) / 64 * 64;
    while (hl < padded - 10 - 1) header[hl++] = ' ';
    header[hl++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) die("cannot write %s: %s", path, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                             (unsigned char)(hl >> 8)};
    int ok = fwrite(pre, 1, sizeof pre, f) == sizeof pre && fwrite(header, 1, (size_t)hl, f) == (size_t)hl &&
             fwrite(data, elem_size, count, f) == count;
    if (fclose(f) != 0 || !ok) die("cannot write %s: %s", path, strerror(errno));
}

static void npy_write_f32(const char *dir, const char *file, const float *data, const int *shape, int ndim)
{
    npy_write(dir, file, "<f4", data, sizeof(float), shape, ndim);
}

/* (classes, n) column-major logits -> (n, classes) row-major */
static void logits_write(const char *dir, const char *file, const float *logits, int classes, int n)
{
    if (!logits) die("the model has no logits for %s", file);
    float *t = malloc(sizeof(float) * (size_t)classes * n); /* (n, classes) */
    if (!t) die("out of memory");
    for (int c = 0; c < classes; c++)
        for (int i = 0; i < n; i++) t[(size_t)i * classes + c] = logits[(size_t)c * n + i];
    int shape[2] = {n, classes};
    npy_write_f32(dir, file, t, shape, 2);
    free(t);
}

/* He's gain on Caffe's xavier and small random biases (see the top of the file). */
static void weights_spread(Model *m, uint64_t seed)
{
    int nt;
    const ParamTensor *pt = model_param_tensors(m, &nt);
    float *p = model_params(m);
    uint64_t key = rng_key(seed, 0x62696173ULL /* "bias" */, 0, 0);
    for (int i = 0; i < nt; i++) {
        float *w = p + pt[i].offset;
        for (size_t j = 0; j < pt[i].count; j++)
            w[j] = pt[i].is_bias ? 0.2f * rng_uniform(key, pt[i].offset + j) - 0.1f : w[j] * 1.41421356f;
    }
}

/* Every activation of the last forward as acts/<name, '/' as '__'>.npy, shape
 * (N, C, H, W), and acts/index.txt with a line "name file C H W" for each. */
static void activations_write(const char *dir, const Model *m, int n)
{
    char sub[4000], path[4096];
    snprintf(sub, sizeof sub, "%s/acts", dir);
    if (mkdir(sub, 0777) != 0 && errno != EEXIST) die("cannot create %s: %s", sub, strerror(errno));
    snprintf(path, sizeof path, "%s/index.txt", sub);
    FILE *idx = fopen(path, "w");
    if (!idx) die("cannot write %s: %s", path, strerror(errno));
    for (int i = 0; i < model_tensor_count(m); i++) {
        int c, h, w;
        const char *name = model_tensor_info(m, i, &c, &h, &w);
        const float *x = model_tensor_data(m, i); /* (c, n, h, w) */
        if (!x) continue;
        char file[160];
        size_t k = 0;
        for (const char *q = name; *q && k + 2 < sizeof file - 5; q++) {
            file[k++] = *q == '/' ? '_' : *q;
            if (*q == '/') file[k++] = '_';
        }
        snprintf(file + k, sizeof file - k, ".npy");
        size_t plane = (size_t)h * w;
        float *t = malloc(sizeof(float) * (size_t)c * n * plane); /* (n, c, h, w) */
        if (!t) die("out of memory");
        for (int ci = 0; ci < c; ci++)
            for (int j = 0; j < n; j++)
                memcpy(t + ((size_t)j * c + ci) * plane, x + ((size_t)ci * n + j) * plane, sizeof(float) * plane);
        int shape[4] = {n, c, h, w};
        npy_write_f32(sub, file, t, shape, 4);
        free(t);
        fprintf(idx, "%s %s %d %d %d\n", name, file, c, h, w);
    }
    if (fclose(idx) != 0) die("cannot write %s: %s", path, strerror(errno));
}

static void params_txt_write(const char *dir, const Model *m)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/params.txt", dir);
    FILE *f = fopen(path, "w");
    if (!f) die("cannot write %s: %s", path, strerror(errno));
    int nt;
    const ParamTensor *pt = model_param_tensors(m, &nt);
    for (int i = 0; i < nt; i++) {
        fprintf(f, "%s %zu %zu", pt[i].name, pt[i].offset, pt[i].count);
        for (int d = 0; d < pt[i].ndim; d++) fprintf(f, " %d", pt[i].shape[d]);
        fputc('\n', f);
    }
    if (fclose(f) != 0) die("cannot write %s: %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
    const char *out = NULL, *init = "spread";
    int crop = 224, batch = 2, classes = 10, threads = 1, plan_batch = 0;
    long seed = 1;
    CliFlag flags[] = {
        {"--out", CLI_STR, &out, "directory to write the .npy files into (created)"},
        {"--crop", CLI_INT, &crop, "input height and width", NULL, 8, 1024},
        {"--batch", CLI_INT, &batch, "images in the batch", NULL, 1, 4096},
        {"--plan-batch", CLI_INT, &plan_batch, "batch the model is planned for (0: --batch)", NULL, 0, 4096},
        {"--classes", CLI_INT, &classes, "classifier outputs", NULL, 2, 100000},
        {"--seed", CLI_LONG, &seed, "seed of the weights, the input and the labels", NULL, 0, 1e18},
        {"--threads", CLI_INT, &threads, "threads of the layer loops", NULL, 1, 256},
        {"--init", CLI_CHOICE, &init, "spread: Caffe's init widened so deep maps keep detail; caffe: as is",
         "spread|caffe"},
    };
    int help = 0;
    char err[256];
    if (cli_parse(flags, CLI_COUNT(flags), argc - 1, argv + 1, NULL, 0, NULL, &help, err, sizeof err) != 0)
        die("%s", err);
    if (help) {
        cli_print_help(stdout, "helper_parity_dump --out DIR [flags]",
                       "Dumps parameters, input, logits, loss and gradients of one GoogLeNet step\n"
                       "for scripts/reference_googlenet.py compare DIR.",
                       flags, CLI_COUNT(flags));
        return 0;
    }
    if (!out) die("--out DIR is required (the directory to write the dump into)");
    if (plan_batch == 0) plan_batch = batch;
    if (plan_batch < batch)
        die("--plan-batch %d is smaller than --batch %d; plan at least the batch run", plan_batch, batch);
    if (mkdir(out, 0777) != 0 && errno != EEXIST) die("cannot create %s: %s", out, strerror(errno));
    parallel_set_threads(threads);

    ModelConfig cfg = model_default_config();
    cfg.crop = crop;
    cfg.batch = plan_batch;
    cfg.classes = classes;
    cfg.aux = 1;
    cfg.training = 1;
    cfg.keep_activations = 1; /* every activation is dumped after the forward */
    cfg.head_dropout = 0.0f;
    cfg.aux_dropout = 0.0f;
    Model *m = model_init(&cfg, err, sizeof err);
    if (!m) die("%s", err);
    model_init_weights(m, (uint64_t)seed);
    if (strcmp(init, "spread") == 0) weights_spread(m, (uint64_t)seed);
    size_t np = model_num_params(m);

    size_t in_floats = (size_t)batch * 3 * crop * crop;
    float *input = malloc(sizeof(float) * in_floats); /* (N, 3, S, S) */
    int *labels = malloc(sizeof(int) * (size_t)batch); /* (N) */
    if (!input || !labels) die("out of memory");
    /* roughly the scale of a normalised image: uniform in [-2, 2) */
    uint64_t key = rng_key((uint64_t)seed, 0x696e707574ULL /* "input" */, 0, 0);
    for (size_t i = 0; i < in_floats; i++) input[i] = 4.0f * rng_uniform(key, i) - 2.0f;
    uint64_t lkey = rng_key((uint64_t)seed, 0x6c6162656cULL /* "label" */, 0, 0);
    for (int i = 0; i < batch; i++) labels[i] = (int)(rng_bits(lkey, (uint64_t)i) % (uint64_t)classes);

    int pshape[1] = {(int)np};
    npy_write_f32(out, "params.npy", model_params(m), pshape, 1);
    params_txt_write(out, m);
    int ishape[4] = {batch, 3, crop, crop};
    npy_write_f32(out, "input.npy", input, ishape, 4);
    int lshape[1] = {batch};
    npy_write(out, "labels.npy", "<i4", labels, sizeof(int), lshape, 1);

    /* logits are copied before backward, which may reuse their memory */
    ModelStats st;
    memset(model_grads(m), 0, np * sizeof(float));
    model_forward(m, input, labels, batch, MODEL_TRAIN, 0, &st);
    logits_write(out, "logits_main.npy", model_logits(m, MODEL_HEAD_MAIN), classes, batch);
    logits_write(out, "logits_aux1.npy", model_logits(m, MODEL_HEAD_AUX1), classes, batch);
    logits_write(out, "logits_aux2.npy", model_logits(m, MODEL_HEAD_AUX2), classes, batch);
    activations_write(out, m, batch);
    int one[1] = {1};
    npy_write(out, "loss.npy", "<f8", &st.loss, sizeof st.loss, one, 1);
    model_backward(m, 1.0f / (float)batch, NULL, NULL);
    npy_write_f32(out, "grads.npy", model_grads(m), pshape, 1);

    model_forward(m, input, NULL, batch, MODEL_EVAL, 0, NULL);
    logits_write(out, "logits_eval.npy", model_logits(m, MODEL_HEAD_MAIN), classes, batch);

    /* an inference-only plan with the paper's dropout rates, which eval ignores */
    ModelConfig icfg = cfg;
    icfg.training = 0;
    icfg.head_dropout = 0.4f;
    icfg.aux_dropout = 0.7f;
    Model *inf = model_init(&icfg, err, sizeof err);
    if (!inf) die("%s", err);
    if (model_num_params(inf) != np)
        die("the inference model has %zu parameters, the training model %zu", model_num_params(inf), np);
    memcpy(model_params(inf), model_params(m), np * sizeof(float));
    model_forward(inf, input, NULL, batch, MODEL_EVAL, 0, NULL);
    logits_write(out, "logits_infer.npy", model_logits(inf, MODEL_HEAD_MAIN), classes, batch);

    printf("helper_parity_dump: crop %d, batch %d (planned %d), %d classes, %zu parameters, init %s, "
           "loss %.6f -> %s\n", crop, batch, plan_batch, classes, np, init, st.loss, out);
    model_free(inf);
    model_free(m);
    free(input);
    free(labels);
    return 0;
}
