/* test_model.c: GoogLeNet as built from its table: parameter counts, shapes at
 * 224 and at small crops, seeded initialisation, the gradient of the whole
 * network against finite differences, the backward hook's contract, and
 * backward with frozen layers. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn/model.h"
#include "nn/parallel.h"
#include "nn/rng.h"

static Model *make(int crop, int classes, int batch, int aux, int training)
{
    ModelConfig c = model_default_config();
    c.crop = crop;
    c.classes = classes;
    c.batch = batch;
    c.aux = aux;
    c.training = training;
    char err[256];
    Model *m = model_init(&c, err, sizeof err);
    if (!m) fail_msg("model_init: %s", err);
    return m;
}

static void test_param_count(void **state)
{
    (void)state;
    Model *m = make(224, 1000, 1, 1, 0);
    assert_int_equal(model_num_params(m), 13378280);
    int n;
    const ParamTensor *pt = model_param_tensors(m, &n);
    size_t sum = 0, aux = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(pt[i].offset, sum); /* contiguous, in order */
        sum += pt[i].count;
        if (pt[i].head) aux += pt[i].count;
    }
    assert_int_equal(sum, 13378280);
    assert_int_equal(aux, 6379728);
    assert_string_equal(pt[0].name, "conv1/7x7_s2/weight");
    assert_string_equal(pt[n - 1].name, "loss3/classifier/bias");
    model_free(m);
    m = make(224, 1000, 1, 0, 0);
    assert_int_equal(model_num_params(m), 6998552);
    model_free(m);
    /* the parameter count does not depend on the crop (the aux heads pool to 4x4) */
    m = make(96, 1000, 1, 1, 0);
    assert_int_equal(model_num_params(m), 13378280);
    model_free(m);
}

static void expect_shape(const Model *m, const char *name, int c, int h, int w)
{
    int tc, th, tw;
    if (model_tensor_shape(m, name, &tc, &th, &tw) != 0) fail_msg("no tensor %s", name);
    if (tc != c || th != h || tw != w) fail_msg("%s: %dx%dx%d, want %dx%dx%d", name, tc, th, tw, c, h, w);
}

static void test_shapes(void **state)
{
    (void)state;
    Model *m = make(224, 1000, 2, 1, 1);
    expect_shape(m, "conv1/7x7_s2", 64, 112, 112);
    expect_shape(m, "pool1/3x3_s2", 64, 56, 56);
    expect_shape(m, "conv2/3x3", 192, 56, 56);
    expect_shape(m, "pool2/3x3_s2", 192, 28, 28);
    expect_shape(m, "inception_3a/output", 256, 28, 28);
    expect_shape(m, "inception_3b/output", 480, 28, 28);
    expect_shape(m, "pool3/3x3_s2", 480, 14, 14);
    expect_shape(m, "inception_4a/output", 512, 14, 14);
    expect_shape(m, "inception_4d/output", 528, 14, 14);
    expect_shape(m, "inception_4e/output", 832, 14, 14);
    expect_shape(m, "pool4/3x3_s2", 832, 7, 7);
    expect_shape(m, "inception_5b/output", 1024, 7, 7);
    expect_shape(m, "pool5/7x7_s1", 1024, 1, 1);
    expect_shape(m, "loss1/ave_pool", 512, 4, 4);
    expect_shape(m, "loss2/ave_pool", 528, 4, 4);
    expect_shape(m, "loss1/fc", 1024, 1, 1);
    expect_shape(m, "loss3/classifier", 1000, 1, 1);
    model_free(m);
    m = make(96, 10, 2, 1, 1);
    expect_shape(m, "pool2/3x3_s2", 192, 12, 12);
    expect_shape(m, "inception_4a/output", 512, 6, 6);
    expect_shape(m, "loss1/ave_pool", 512, 4, 4);
    expect_shape(m, "inception_5b/output", 1024, 3, 3);
    expect_shape(m, "pool5/7x7_s1", 1024, 1, 1);
    model_free(m);
    /* too small: one clear error naming the smallest crop */
    ModelConfig c = model_default_config();
    c.crop = 40;
    c.batch = 1;
    char err[256] = "";
    assert_null(model_init(&c, err, sizeof err));
    assert_non_null(strstr(err, "crop 40 is too small"));
    char want[32];
    snprintf(want, sizeof want, "smallest crop: %d", model_min_crop(1));
    assert_non_null(strstr(err, want));
    assert_int_equal(model_min_crop(1), 63);
    Model *ok = make(model_min_crop(1), 10, 1, 1, 1);
    model_free(ok);
}

static void test_init_determinism(void **state)
{
    (void)state;
    Model *a = make(64, 10, 1, 1, 0), *b = make(64, 10, 1, 1, 0);
    size_t n = model_num_params(a);
    parallel_set_threads(1);
    model_init_weights(a, 42);
    parallel_set_threads(3);
    model_init_weights(b, 42);
    parallel_set_threads(1);
    assert_memory_equal(model_params(a), model_params(b), n * sizeof(float));
    model_init_weights(b, 43);
    assert_true(memcmp(model_params(a), model_params(b), n * sizeof(float)) != 0);
    int nt;
    const ParamTensor *pt = model_param_tensors(a, &nt);
    for (int i = 0; i < nt; i++) {
        const float *w = model_params(a) + pt[i].offset;
        if (pt[i].is_bias) {
            int classifier = strstr(pt[i].name, "classifier") != NULL;
            for (size_t j = 0; j < pt[i].count; j++) assert_true(w[j] == (classifier ? 0.0f : 0.2f));
            assert_true(pt[i].lr_mult == 2.0f && pt[i].decay_mult == 0.0f);
        } else {
            float bound = sqrtf(3.0f / pt[i].fan_in), mx = 0;
            double mean = 0;
            for (size_t j = 0; j < pt[i].count; j++) {
                if (fabsf(w[j]) > mx) mx = fabsf(w[j]);
                mean += w[j];
            }
            mean /= pt[i].count;
            assert_true(mx <= bound);
            if (pt[i].count > 1000) assert_true(mx > 0.95f * bound && fabs(mean) < 0.05 * bound);
            assert_true(pt[i].lr_mult == 1.0f && pt[i].decay_mult == 1.0f);
        }
    }
    model_free(a);
    model_free(b);
}

static void fill_input(float *x, size_t n, uint64_t seed)
{
    uint64_t k = rng_key(seed, 9, 9, 9);
    for (size_t i = 0; i < n; i++) x[i] = 2.0f * rng_uniform(k, i) - 1.0f;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    size_t last;
    int calls;
    int increasing;
} HookLog;

static void hook(void *ctx, size_t ready_from)
{
    HookLog *h = ctx;
    if (h->calls && ready_from > h->last) h->increasing = 1;
    h->last = ready_from;
    h->calls++;
}

/* The loss of the whole network against central differences on sampled
 * weights of every layer kind, at a small crop, with dropout off. */
static void test_whole_network_gradient(void **state)
{
    (void)state;
    const int n = 2, crop = 64, classes = 5;
    ModelConfig c = model_default_config();
    c.crop = crop;
    c.classes = classes;
    c.batch = n;
    c.head_dropout = c.aux_dropout = 0;
    char err[256];
    Model *m = model_init(&c, err, sizeof err);
    assert_non_null(m);
    model_init_weights(m, 3);
    size_t np = model_num_params(m);
    float *x = malloc(sizeof(float) * n * 3 * crop * crop);
    fill_input(x, (size_t)n * 3 * crop * crop, 5);
    int labels[2] = {1, 4};
    ModelStats st;
    memset(model_grads(m), 0, np * sizeof(float));
    model_forward(m, x, labels, n, MODEL_TRAIN, 0, &st);
    HookLog h = {0};
    model_backward(m, 1.0f, hook, &h);
    assert_true(h.calls > 50);
    assert_int_equal(h.last, 0);
    assert_false(h.increasing);
    float *g = malloc(np * sizeof(float));
    memcpy(g, model_grads(m), np * sizeof(float));
    double loss0 = st.loss * n;
    assert_true(isfinite(loss0));

    /* Directional derivatives: along a random direction confined to one
     * tensor at a time (every tensor of every layer), scaled to the tensor's
     * own magnitude. The loss is evaluated in float32 and the network has ReLU
     * and max-pool kinks, so the check is at the 1e-2 level; the float64
     * PyTorch comparison (test_parity.sh) is the sharp one. */
    int nt;
    const ParamTensor *pt = model_param_tensors(m, &nt);
    float *w0 = malloc(np * sizeof(float));
    memcpy(w0, model_params(m), np * sizeof(float));
    double worst = 0, *errs = malloc(sizeof(double) * nt);
    const char *worst_name = "";
    for (int t = 0; t < nt; t++) {
        const ParamTensor *p = &pt[t];
        uint64_t key = rng_key(17, (uint64_t)t, 0, 0);
        double scale = 0;
        for (size_t j = 0; j < p->count; j++) scale += fabs(w0[p->offset + j]);
        scale = p->is_bias ? 0.05 : scale / p->count;
        double ana = 0;
        for (size_t j = 0; j < p->count; j++) ana += g[p->offset + j] * scale * (rng_uniform(key, j) - 0.5);
        double eps = 3e-3, lpm[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            for (size_t j = 0; j < p->count; j++)
                model_params(m)[p->offset + j] = w0[p->offset + j] + (float)((sgn ? -eps : eps) * scale * (rng_uniform(key, j) - 0.5));
            model_forward(m, x, labels, n, MODEL_TRAIN, 0, &st);
            lpm[sgn] = st.loss * n;
        }
        memcpy(model_params(m) + p->offset, w0 + p->offset, p->count * sizeof(float));
        double num = (lpm[0] - lpm[1]) / (2 * eps);
        /* float32 loss differences carry about 1e-4 of noise here: tensors whose
         * directional derivative is below 1e-3 are compared against that floor */
        double e = fabs(num - ana) / fmax(fabs(num) + fabs(ana), 1e-3);
        if (getenv("VERBOSE")) printf("%-40s num %12.6g ana %12.6g err %.3g\n", p->name, num, ana, e);
        errs[t] = e;
        if (e > worst) {
            worst = e;
            worst_name = p->name;
        }
    }
    /* kinks make a few tensors noisy; a wrong or missing gradient term is off
     * by 100% or more, and would move the median */
    qsort(errs, (size_t)nt, sizeof(double), cmp_double);
    double median = errs[nt / 2];
    if (median > 0.03 || worst > 0.6)
        fail_msg("whole-network gradient: median relative error %g, worst %g at %s", median, worst, worst_name);
    free(errs);
    free(w0);
    free(x);
    free(g);
    model_free(m);
}

/* Smaller batches in a larger plan, eval mode, and a second model give the same logits. */
static void test_forward_consistency(void **state)
{
    (void)state;
    const int crop = 64, classes = 7;
    ModelConfig c = model_default_config();
    c.crop = crop;
    c.classes = classes;
    c.batch = 5;
    c.head_dropout = c.aux_dropout = 0;
    char err[256];
    Model *big = model_init(&c, err, sizeof err);
    c.batch = 3;
    c.training = 0;
    Model *small = model_init(&c, err, sizeof err);
    assert_non_null(big);
    assert_non_null(small);
    model_init_weights(big, 11);
    model_init_weights(small, 11);
    float *x = malloc(sizeof(float) * 3 * 3 * crop * crop);
    fill_input(x, (size_t)3 * 3 * crop * crop, 8);
    int labels[3] = {0, 1, 2};
    ModelStats st;
    model_forward(big, x, labels, 3, MODEL_TRAIN, 0, &st);
    float train_logits[21];
    memcpy(train_logits, model_logits(big, MODEL_HEAD_MAIN), sizeof train_logits);
    model_forward(small, x, NULL, 3, MODEL_EVAL, 0, NULL);
    const float *ev = model_logits(small, MODEL_HEAD_MAIN);
    for (int i = 0; i < 21; i++) assert_true(fabsf(ev[i] - train_logits[i]) <= 1e-5f * (1 + fabsf(ev[i])));
    /* an inference plan is much smaller than a training plan */
    assert_true(model_activation_bytes(small) < model_activation_bytes(big));
    free(x);
    model_free(big);
    model_free(small);
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

/* One training step's logits and gradients of model m on fixed data. */
static void step(Model *m, const float *x, const int *labels, int n, float *logits, float *grads)
{
    const ModelConfig *c = model_config(m);
    memset(model_grads(m), 0, model_num_params(m) * sizeof(float));
    model_forward(m, x, labels, n, MODEL_TRAIN, 7, NULL);
    memcpy(logits, model_logits(m, MODEL_HEAD_MAIN), sizeof(float) * c->classes * n);
    model_backward(m, 1.0f / n, NULL, NULL);
    memcpy(grads, model_grads(m), model_num_params(m) * sizeof(float));
}

/* Backward with the layers before a tensor frozen: their gradients are left
 * as they were (not even zeroed), every other gradient is bit for bit the full
 * backward's, and the hook never sees the frozen part. Cut points: between
 * modules, inside a module (the concatenation's gradient is then half needed),
 * inside an aux head, past an aux head, and before the last classifier only. */
static void test_backward_from(void **state)
{
    (void)state;
    const int n = 2, crop = 64, classes = 5;
    Model *m = make(crop, classes, n, 1, 1);
    model_init_weights(m, 11);
    size_t np = model_num_params(m);
    float *x = malloc(sizeof(float) * n * 3 * crop * crop), *full = malloc(np * sizeof(float));
    fill_input(x, (size_t)n * 3 * crop * crop, 6);
    int labels[2] = {3, 0};
    memset(model_grads(m), 0, np * sizeof(float));
    model_forward(m, x, labels, n, MODEL_TRAIN, 7, NULL);
    model_backward(m, 0.5f, NULL, NULL);
    memcpy(full, model_grads(m), np * sizeof(float));
    int nt;
    const ParamTensor *pt = model_param_tensors(m, &nt);
    const char *cuts[] = {"inception_4e/1x1/weight", "inception_4e/5x5_reduce/weight", "loss1/fc/weight",
                          "inception_4b/1x1/weight", "loss3/classifier/weight", "conv1/7x7_s2/weight"};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        size_t from = np;
        for (int t = 0; t < nt; t++)
            if (strcmp(pt[t].name, cuts[c]) == 0) from = pt[t].offset;
        assert_true(from < np);
        float *g = model_grads(m);
        for (size_t i = 0; i < np; i++) g[i] = i < from ? (float)i : 0.0f; /* a frozen gradient must stay */
        model_forward(m, x, labels, n, MODEL_TRAIN, 7, NULL);
        HookLog h = {0};
        model_backward_from(m, from, 0.5f, hook, &h);
        assert_int_equal(h.last, from);
        assert_false(h.increasing);
        for (size_t i = 0; i < from; i++)
            if (g[i] != (float)i) fail_msg("cut at %s: frozen gradient %zu was written", cuts[c], i);
        if (memcmp(g + from, full + from, (np - from) * sizeof(float)) != 0)
            fail_msg("cut at %s: the trainable gradients differ from the full backward's", cuts[c]);
    }
    free(x);
    free(full);
    model_free(m);
}

/* The convolution plan: formatted, applied, refused when wrong, timed; a plan
 * gives the same bits every time and with any thread count. */
static void test_conv_plan(void **state)
{
    (void)state;
    const int n = 4, crop = 64, classes = 6;
    char err[256], plan[4096], again[4096];
    Model *a = make(crop, classes, n, 1, 1), *b = make(crop, classes, n, 1, 1);
    model_init_weights(a, 5);
    model_init_weights(b, 5);
    assert_true(model_conv_plan_format(a, plan, sizeof plan) > 0);
    /* conv2/3x3, and the 3x3 and 5x5 branches of the nine inception modules */
    assert_int_equal(count_char(plan, '='), 19);
    assert_non_null(strstr(plan, "conv2/3x3=f4x3."));
    assert_non_null(strstr(plan, "inception_5b/5x5=f4x5."));
    assert_int_equal(model_conv_plan_format(a, plan, 40), -1);
    assert_true(model_conv_plan_format(a, plan, sizeof plan) > 0);

    /* refused, and the model keeps its plan */
    const char *bad[] = {
        "",                                                  /* names no layer */
        "conv2/3x3=f4x3.64,f4x3.64,f4x3.64",                 /* names one */
        "conv9/3x3=gemm,gemm,gemm",                          /* no such layer */
        "conv1/7x7_s2=gemm,gemm,gemm",                       /* no choice there */
        "conv2/3x3=f9x9.64,gemm,gemm",                       /* no such algorithm */
        "conv2/3x3=f4x3.24,gemm,gemm",                       /* block not a multiple of 16 */
        "conv2/3x3=f4x3,gemm,gemm",                          /* no block */
        "conv2/3x3=f4x3.64,gemm",                            /* two passes */
        "conv2/3x3",                                         /* no '=' */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char p2[4096];
        snprintf(p2, sizeof p2, "%s", bad[i]);
        assert_int_equal(model_conv_plan_apply(a, p2, err, sizeof err), -1);
        assert_true(strlen(err) > 10);
        model_conv_plan_format(a, again, sizeof again);
        assert_string_equal(again, plan);
    }
    /* a block past the 16-bit field is refused, not stored as the remainder
     * (65600 = 65536 + 64 would otherwise run as 64) */
    char big[4096];
    const char *key = strstr(plan, "conv2/3x3=f4x3.");
    assert_non_null(key);
    const char *digits = key + strlen("conv2/3x3=f4x3.");
    size_t pre = (size_t)(digits - plan);
    snprintf(big, sizeof big, "%.*s65600%s", (int)pre, plan, digits + strspn(digits, "0123456789"));
    assert_int_equal(model_conv_plan_apply(a, big, err, sizeof err), -1);
    assert_non_null(strstr(err, "conv2/3x3"));
    /* f2x5 cannot run a 3x3 layer */
    char wrong[4096];
    snprintf(wrong, sizeof wrong, "%s", plan);
    char *at = strstr(wrong, "inception_3a/3x3=f4x3");
    memcpy(at + strlen("inception_3a/3x3="), "f2x5", 4);
    assert_int_equal(model_conv_plan_apply(a, wrong, err, sizeof err), -1);
    assert_non_null(strstr(err, "inception_3a/3x3"));

    /* the same plan on two models, and with 1 and 2 threads: the same bits */
    size_t np = model_num_params(a);
    float *x = malloc(sizeof(float) * n * 3 * crop * crop), *la = malloc(sizeof(float) * n * classes),
          *lb = malloc(sizeof(float) * n * classes), *ga = malloc(np * sizeof(float)), *gb = malloc(np * sizeof(float));
    fill_input(x, (size_t)n * 3 * crop * crop, 21);
    int labels[4] = {0, 5, 2, 3};
    parallel_set_threads(1);
    step(a, x, labels, n, la, ga);
    parallel_set_threads(2);
    step(b, x, labels, n, lb, gb);
    assert_memory_equal(la, lb, sizeof(float) * n * classes);
    assert_memory_equal(ga, gb, np * sizeof(float));

    /* GEMM everywhere: the same network up to rounding */
    char gemm[4096];
    snprintf(gemm, sizeof gemm, "%s", plan);
    for (char *p = strchr(gemm, '='); p; p = strchr(p + 1, '=')) {
        char rest[4096], *semi = strchr(p, ';');
        snprintf(rest, sizeof rest, "%s", semi ? semi : "");
        snprintf(p + 1, sizeof gemm - (size_t)(p + 1 - gemm), "gemm,gemm,gemm%s", rest);
    }
    assert_int_equal(model_conv_plan_apply(b, gemm, err, sizeof err), 0);
    model_conv_plan_format(b, again, sizeof again);
    assert_string_equal(again, gemm);
    step(b, x, labels, n, lb, gb);
    double e = 0, r = 0;
    for (int i = 0; i < n * classes; i++) {
        e += (double)(la[i] - lb[i]) * (la[i] - lb[i]);
        r += (double)lb[i] * lb[i];
    }
    assert_true(sqrt(e / r) < 1e-5);
    assert_true(memcmp(ga, gb, np * sizeof(float)) != 0);

    /* timed: a valid plan, gradients cleared, and what it picked can be reapplied */
    model_grads(a)[0] = 1.0f;
    assert_true(model_conv_tune(a, err, sizeof err) >= 0);
    assert_true(model_grads(a)[0] == 0.0f);
    assert_true(model_conv_plan_format(a, again, sizeof again) > 0);
    assert_int_equal(model_conv_plan_apply(b, again, err, sizeof err), 0);
    parallel_set_threads(1);
    free(x);
    free(la);
    free(lb);
    free(ga);
    free(gb);
    model_free(a);
    model_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_plan),
        cmocka_unit_test(test_param_count),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_init_determinism),
        cmocka_unit_test(test_whole_network_gradient),
        cmocka_unit_test(test_backward_from),
        cmocka_unit_test(test_forward_consistency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
