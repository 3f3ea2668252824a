/* test_fuse.c: the fused inference passes (nn/fuse.h) give the bits of the
 * layers run one after the other: whole inference models fused and unfused
 * (no_fuse) at crop 224 and at odd crops whose ceil-mode pooling windows are
 * clipped, at 1 and 2 threads, on every SIMD table this CPU has, with a batch
 * smaller than planned (bands of rows rather than whole images); the chains
 * found, the memory they save and what the profile says of them; the 1x1
 * convolution that pools its own input against pooling then convolution; and
 * the row-at-a-time kernels against the whole-tensor ones. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nn/conv.h"
#include "nn/fuse.h"
#include "nn/kernels/kernels.h"
#include "nn/lrn.h"
#include "nn/model.h"
#include "nn/parallel.h"
#include "nn/rng.h"

static const char *const TABLES[2] = {"avx2", "avx512"};

static void fill(float *a, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t k = rng_key(seed, 0x66757365ULL /* "fuse" */, 0, 0);
    for (size_t i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng_uniform(k, i);
}

static Model *make(int crop, int batch, int no_fuse)
{
    ModelConfig c = model_default_config();
    c.crop = crop;
    c.classes = 10;
    c.batch = batch;
    c.training = 0;
    c.no_fuse = no_fuse;
    char err[256];
    Model *m = model_init(&c, err, sizeof err);
    if (!m) fail_msg("model_init: %s", err);
    model_init_weights(m, 5);
    return m;
}

static int tensor_index(const Model *m, const char *name)
{
    for (int i = 0; i < model_tensor_count(m); i++) {
        int c, h, w;
        if (strcmp(model_tensor_info(m, i, &c, &h, &w), name) == 0) return i;
    }
    fail_msg("no tensor %s", name);
    return -1;
}

static int op_index(const Model *m, const char *name)
{
    for (int i = 0; i < model_num_ops(m); i++) {
        ModelOpProfile p;
        model_op_profile(m, i, &p);
        if (strcmp(p.name, name) == 0) return i;
    }
    fail_msg("no op %s", name);
    return -1;
}

/* Main-head logits of n images, (classes, n). */
static void logits_of(Model *m, const float *x, int n, float *out)
{
    model_forward(m, x, NULL, n, MODEL_EVAL, 0, NULL);
    memcpy(out, model_logits(m, MODEL_HEAD_MAIN), sizeof(float) * 10 * n);
}

/* Fused and unfused logits, bit for bit, at each table and thread count, for
 * the planned batch and one image less. */
static void check_crop(int crop, int batch)
{
    Model *f = make(crop, batch, 0), *u = make(crop, batch, 1);
    size_t in = (size_t)batch * 3 * crop * crop;
    float *x = malloc(sizeof(float) * in), ref[10 * 4], got[10 * 4];
    assert_true(batch <= 4);
    fill(x, in, (uint64_t)crop, -2.0f, 2.0f);
    for (int t = 0; t < 2; t++) {
        if (!nn_kernels_supported(TABLES[t])) continue;
        assert_int_equal(nn_kernels_select(TABLES[t]), 0);
        for (int n = batch; n >= batch - 1 && n >= 1; n--) {
            parallel_set_threads(1);
            logits_of(u, x, n, ref);
            /* logits that say something: not all equal */
            int differ = 0;
            for (int i = 1; i < 10 * n; i++) differ |= ref[i] != ref[0];
            assert_true(differ);
            for (int threads = 1; threads <= 2; threads++) {
                parallel_set_threads(threads);
                logits_of(f, x, n, got);
                if (memcmp(ref, got, sizeof(float) * 10 * n) != 0)
                    fail_msg("crop %d, %d of %d images, %s, %d threads: fused logits differ from unfused (%.9g vs %.9g)",
                             crop, n, batch, TABLES[t], threads, got[0], ref[0]);
                logits_of(u, x, n, got);
                assert_memory_equal(ref, got, sizeof(float) * 10 * n);
            }
        }
    }
    nn_kernels_select(nn_kernels_supported("avx512") ? "avx512" : "avx2");
    parallel_set_threads(1);
    free(x);
    model_free(f);
    model_free(u);
}

static void test_bits_224(void **state)
{
    (void)state;
    check_crop(224, 2);
}

/* 67: conv1 34x34, pool1 17x17 whose last window is clipped to 2 rows, LRN
 * planes whose strips end one position at a time; 99: pool1 25x25, pool2 13x13. */
static void test_bits_odd_crops(void **state)
{
    (void)state;
    check_crop(67, 2);
    check_crop(99, 3);
}

static const char *const MODULES[] = {"inception_3a", "inception_3b", "inception_4a", "inception_4b", "inception_4c",
                                      "inception_4d", "inception_4e", "inception_5a", "inception_5b"};
#define NMODULES (int)(sizeof MODULES / sizeof MODULES[0])

/* Every inception module's pool is computed by its pool_proj: the pooled
 * tensor gets no memory, the pool says where its time went, pool_proj says
 * it pools. */
static void check_pooled_convs(Model *f, Model *u)
{
    for (int k = 0; k < NMODULES; k++) {
        char pool[64], proj[64], algo[80];
        snprintf(pool, sizeof pool, "%s/pool", MODULES[k]);
        snprintf(proj, sizeof proj, "%s/pool_proj", MODULES[k]);
        assert_null(model_tensor_data(f, tensor_index(f, pool)));
        assert_non_null(model_tensor_data(u, tensor_index(u, pool)));
        ModelOpProfile p;
        int pi = op_index(f, proj);
        model_op_profile(f, op_index(f, pool), &p);
        assert_int_equal(p.fused_into, pi);
        assert_true(p.forward_s == 0);
        snprintf(algo, sizeof algo, "fused into %s", proj);
        assert_string_equal(p.algo, algo);
        model_op_profile(f, pi, &p);
        assert_int_equal(p.fused_into, -1);
        assert_true(p.forward_s > 0);
        snprintf(algo, sizeof algo, "%s + gemm", pool);
        assert_string_equal(p.algo, algo);
    }
}

/* The chains are found; their inner tensors get no memory; the first
 * layer's profile holds the time and names the others, which say where
 * their time went. */
static void test_chains(void **state)
{
    (void)state;
    Model *f = make(64, 2, 0), *u = make(64, 2, 1);
    static const char *const inner[] = {"conv1/7x7_s2", "pool1/3x3_s2", "conv2/norm2"};
    static const char *const outer[] = {"data", "pool1/norm1", "conv2/3x3", "pool2/3x3_s2"};
    float *x = malloc(sizeof(float) * 2 * 3 * 64 * 64);
    fill(x, (size_t)2 * 3 * 64 * 64, 3, -1.0f, 1.0f);
    model_forward(f, x, NULL, 2, MODEL_EVAL, 0, NULL);
    model_forward(u, x, NULL, 2, MODEL_EVAL, 0, NULL);
    for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++) {
        assert_null(model_tensor_data(f, tensor_index(f, inner[i])));
        assert_non_null(model_tensor_data(u, tensor_index(u, inner[i])));
    }
    /* the chain's output never shares memory with its input (both live at its step) */
    for (size_t i = 0; i < sizeof outer / sizeof outer[0]; i++) assert_non_null(model_tensor_data(f, tensor_index(f, outer[i])));
    assert_ptr_not_equal(model_tensor_data(f, tensor_index(f, "data")), model_tensor_data(f, tensor_index(f, "pool1/norm1")));
    assert_ptr_not_equal(model_tensor_data(f, tensor_index(f, "conv2/3x3")), model_tensor_data(f, tensor_index(f, "pool2/3x3_s2")));
    assert_true(model_activation_bytes(f) < model_activation_bytes(u));

    ModelOpProfile p;
    int conv1 = op_index(f, "conv1/7x7_s2"), norm2 = op_index(f, "conv2/norm2");
    model_op_profile(f, conv1, &p);
    assert_int_equal(p.fused_into, -1);
    assert_true(p.forward_s > 0);
    assert_string_equal(p.algo, "direct + pool1/3x3_s2 + pool1/norm1");
    model_op_profile(f, op_index(f, "pool1/3x3_s2"), &p);
    assert_int_equal(p.fused_into, conv1);
    assert_true(p.forward_s == 0);
    assert_string_equal(p.algo, "fused into conv1/7x7_s2");
    model_op_profile(f, op_index(f, "pool1/norm1"), &p);
    assert_int_equal(p.fused_into, conv1);
    model_op_profile(f, norm2, &p);
    assert_string_equal(p.algo, "+ pool2/3x3_s2");
    model_op_profile(f, op_index(f, "pool2/3x3_s2"), &p);
    assert_int_equal(p.fused_into, norm2);
    assert_string_equal(p.algo, "fused into conv2/norm2");
    check_pooled_convs(f, u);
    /* nothing else is fused; unfused, nothing is */
    int fused = 0;
    for (int i = 0; i < model_num_ops(f); i++) {
        model_op_profile(f, i, &p);
        fused += p.fused_into >= 0;
        model_op_profile(u, i, &p);
        assert_int_equal(p.fused_into, -1);
    }
    assert_int_equal(fused, 3 + NMODULES);
    free(x);
    model_free(f);
    model_free(u);
}

/* Training, and inference with keep_activations, keep every layer. */
static void test_no_fusion(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        ModelConfig c = model_default_config();
        c.crop = 64;
        c.classes = 10;
        c.batch = 1;
        c.training = k == 0;
        c.keep_activations = k == 1;
        char err[256];
        Model *m = model_init(&c, err, sizeof err);
        assert_non_null(m);
        for (int i = 0; i < model_num_ops(m); i++) {
            ModelOpProfile p;
            model_op_profile(m, i, &p);
            assert_int_equal(p.fused_into, -1);
        }
        if (c.training) { /* conv1's input gradient is never computed, so it has no algorithm */
            ModelOpProfile p;
            model_op_profile(m, op_index(m, "conv1/7x7_s2"), &p);
            assert_non_null(strstr(p.algo, " none "));
            model_op_profile(m, op_index(m, "conv2/3x3"), &p);
            assert_null(strstr(p.algo, "none"));
        }
        model_free(m);
    }
}

/* conv_forward_pooled against pool_forward then conv_forward, bit for bit:
 * planes from 1x1 to 28x28 (square and not), 1 to 3 images (blocks that
 * start and end inside a plane, or hold several), with and without bias and
 * ReLU, at 1 and 2 threads, on each table; its scratch exactly as counted,
 * with a guard after it. */
static void test_pooled_conv(void **state)
{
    (void)state;
    static const int hw[][2] = {{7, 7}, {14, 14}, {28, 28}, {9, 11}, {13, 5}, {1, 1}, {2, 3}, {1, 17}};
    const int cin = 19, cout = 12, guard = 64;
    for (size_t si = 0; si < sizeof hw / sizeof hw[0]; si++)
        for (int n = 1; n <= 3; n++) {
            int h = hw[si][0], w = hw[si][1];
            ConvShape cs;
            PoolShape ps;
            conv_shape_init(&cs, cin, cout, 1, 1, 0, h, w);
            pool_shape_init(&ps, POOL_MAX, 3, 1, 1, h, w);
            assert_true(conv_pooled_applies(&cs, &ps));
            size_t xf = (size_t)cin * n * h * w, yf = (size_t)cout * n * h * w;
            size_t wf = conv_pooled_work_floats(&cs, &ps, n, 2), uf = conv_work_floats(&cs, NULL, n, 2, 0);
            float *x = malloc(sizeof(float) * xf), *pooled = malloc(sizeof(float) * xf);
            float *wt = malloc(sizeof(float) * cin * cout), *b = malloc(sizeof(float) * cout);
            float *ref = malloc(sizeof(float) * yf), *got = malloc(sizeof(float) * yf);
            float *work = malloc(sizeof(float) * (wf + guard)), *uwork = malloc(sizeof(float) * (uf + 16));
            fill(x, xf, 100 + si * 4 + (size_t)n, -2.0f, 2.0f);
            fill(wt, (size_t)cin * cout, 7, -0.5f, 0.5f);
            fill(b, cout, 8, -0.3f, 0.3f);
            for (size_t i = 0; i < guard; i++) work[wf + i] = 1234.5f;
            for (int t = 0; t < 2; t++) {
                if (!nn_kernels_supported(TABLES[t])) continue;
                assert_int_equal(nn_kernels_select(TABLES[t]), 0);
                for (int threads = 1; threads <= 2; threads++) {
                    parallel_set_threads(threads);
                    for (int v = 0; v < 4; v++) {
                        int relu = v & 1;
                        const float *bias = v & 2 ? b : NULL;
                        pool_forward(pooled, x, &ps, (long)cin * n);
                        conv_forward(ref, pooled, wt, bias, &cs, n, relu, NULL, uwork, uf);
                        memset(got, 0xff, sizeof(float) * yf);
                        conv_forward_pooled(got, x, &ps, wt, bias, &cs, n, relu, work,
                                            conv_pooled_work_floats(&cs, &ps, n, threads));
                        if (memcmp(ref, got, sizeof(float) * yf) != 0)
                            fail_msg("%dx%d, %d images, %s, %d threads, relu %d, bias %d: pooled conv differs",
                                     h, w, n, TABLES[t], threads, relu, bias != NULL);
                        for (size_t i = 0; i < guard; i++) assert_true(work[wf + i] == 1234.5f);
                    }
                }
            }
            free(x);
            free(pooled);
            free(wt);
            free(b);
            free(ref);
            free(got);
            free(work);
            free(uwork);
        }
    nn_kernels_select(nn_kernels_supported("avx512") ? "avx512" : "avx2");
    parallel_set_threads(1);
}

/* lrn_forward_span over rows of a plane gives lrn_forward's bits, for spans
 * that end inside a vector and in the plane's scalar tail, beta 0.75 (the
 * fast path) and another. */
static void test_lrn_span(void **state)
{
    (void)state;
    const int c = 13, w = 37, rows = 5;
    const size_t plane = (size_t)rows * w; /* 185: a tail of 185 % 16 and 185 % 8 */
    float *x = malloc(sizeof(float) * c * plane), *ref = malloc(sizeof(float) * c * plane),
          *got = malloc(sizeof(float) * c * plane);
    fill(x, (size_t)c * plane, 9, -3.0f, 3.0f);
    const float betas[2] = {0.75f, 0.6f};
    for (int t = 0; t < 2; t++) {
        if (!nn_kernels_supported(TABLES[t])) continue;
        assert_int_equal(nn_kernels_select(TABLES[t]), 0);
        for (int b = 0; b < 2; b++) {
            LrnShape s = {.size = 5, .alpha = 1e-2f, .beta = betas[b], .k = 1.0f, .c = c, .plane = plane};
            lrn_forward(ref, x, &s);
            memset(got, 0, sizeof(float) * c * plane);
            for (int r = 0; r < rows; r++)
                nn_kernels()->lrn_forward_span(&s, x + (size_t)r * w, plane, got + (size_t)r * w, plane, (size_t)r * w, w);
            assert_memory_equal(ref, got, sizeof(float) * c * plane);
        }
    }
    nn_kernels_select(nn_kernels_supported("avx512") ? "avx512" : "avx2");
    free(x);
    free(ref);
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lrn_span),
        cmocka_unit_test(test_pooled_conv),
        cmocka_unit_test(test_chains),
        cmocka_unit_test(test_no_fusion),
        cmocka_unit_test(test_bits_odd_crops),
        cmocka_unit_test(test_bits_224),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
