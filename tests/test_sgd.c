/* test_sgd.c: the optimizer update against values computed by hand, the
 * per-parameter multipliers, Polyak averaging and the learning-rate policies. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nn/sgd.h"

static void near(double got, double want, double tol)
{
    if (fabs(got - want) > tol * (1 + fabs(want))) fail_msg("got %.9g, want %.9g", got, want);
}

static void test_caffe_update(void **state)
{
    (void)state;
    /* a weight tensor of 2 and a bias tensor of 1 */
    ParamTensor t[2] = {{.offset = 0, .count = 2, .lr_mult = 1, .decay_mult = 1},
                        {.offset = 2, .count = 1, .lr_mult = 2, .decay_mult = 0, .is_bias = 1}};
    float w[3] = {1.0f, -2.0f, 0.5f}, v[3] = {0.1f, 0.2f, -0.3f}, g[3] = {0.5f, -1.0f, 0.25f};
    float avg[3] = {0.0f, 0.0f, 0.0f};
    sgd_step(w, v, g, avg, t, 2, 0.1f, 0.9f, 0.01f, 0.75f);
    /* weight 0: v = 0.9*0.1 + 0.1*(0.5 + 0.01*1) = 0.09 + 0.051 = 0.141; w = 1 - 0.141 = 0.859 */
    near(v[0], 0.141, 1e-6);
    near(w[0], 0.859, 1e-6);
    /* weight 1: v = 0.18 + 0.1*(-1 + 0.01*-2) = 0.18 - 0.102 = 0.078; w = -2.078 */
    near(v[1], 0.078, 1e-6);
    near(w[1], -2.078, 1e-6);
    /* bias: lr x2, no decay: v = -0.27 + 0.2*0.25 = -0.22; w = 0.5 + 0.22 = 0.72 */
    near(v[2], -0.22, 1e-6);
    near(w[2], 0.72, 1e-6);
    /* average: 0.75 * 0 + 0.25 * w */
    near(avg[0], 0.25 * 0.859, 1e-6);
    near(avg[2], 0.25 * 0.72, 1e-6);
    /* a second step with zero gradient: momentum carries on */
    float z[3] = {0, 0, 0};
    sgd_step(w, v, z, NULL, t, 2, 0.1f, 0.9f, 0.0f, 0.0f);
    near(v[0], 0.9 * 0.141, 1e-6);
    near(w[0], 0.859 - 0.9 * 0.141, 1e-6);
}

static void test_lr_policies(void **state)
{
    (void)state;
    LrSchedule s = {.policy = LR_STEP, .base_lr = 0.01, .gamma = 0.96, .step_size = 100};
    near(lr_at(&s, 0), 0.01, 1e-12);
    near(lr_at(&s, 99), 0.01, 1e-12);
    near(lr_at(&s, 100), 0.0096, 1e-12);
    near(lr_at(&s, 250), 0.01 * 0.96 * 0.96, 1e-12);
    s = (LrSchedule){.policy = LR_POLY, .base_lr = 0.01, .power = 0.5, .max_iter = 400};
    near(lr_at(&s, 0), 0.01, 1e-12);
    near(lr_at(&s, 300), 0.01 * sqrt(0.25), 1e-12);
    near(lr_at(&s, 400), 0.0, 1e-12);
    s = (LrSchedule){.policy = LR_COSINE, .base_lr = 0.1, .max_iter = 100};
    near(lr_at(&s, 0), 0.1, 1e-12);
    near(lr_at(&s, 50), 0.05, 1e-12);
    near(lr_at(&s, 100), 0.0, 1e-12);
    /* warm-up: linear ramp over the first 10 iterations, then the policy */
    s = (LrSchedule){.policy = LR_STEP, .base_lr = 0.2, .gamma = 0.5, .step_size = 1000, .warmup_iters = 10};
    near(lr_at(&s, 0), 0.02, 1e-12);
    near(lr_at(&s, 4), 0.1, 1e-12);
    near(lr_at(&s, 9), 0.2, 1e-12);
    near(lr_at(&s, 10), 0.2, 1e-12);
    assert_int_equal(lr_policy_parse("poly"), LR_POLY);
    assert_int_equal(lr_policy_parse("cosine"), LR_COSINE);
    assert_int_equal(lr_policy_parse("bogus"), -1);
    assert_string_equal(lr_policy_name(LR_STEP), "step");
}

/* The state type: a fresh state is (0, weights); the average's decay warms up
 * as min(decay, (1 + t) / (10 + t)); a step of the state is sgd_step with it. */
static void test_state_and_warmup(void **state)
{
    (void)state;
    near(sgd_ema_decay_at(0.9999, 0), 0.1, 1e-12);
    near(sgd_ema_decay_at(0.9999, 8), 0.5, 1e-12);
    near(sgd_ema_decay_at(0.9999, 1000000), 0.9999, 1e-12);
    near(sgd_ema_decay_at(0.5, 100), 0.5, 1e-12);
    ParamTensor t[2] = {{.offset = 0, .count = 2, .lr_mult = 1, .decay_mult = 1},
                        {.offset = 2, .count = 1, .lr_mult = 2, .decay_mult = 0, .is_bias = 1}};
    float w[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.5f, -1.0f, 0.25f};
    SgdState s;
    assert_int_equal(sgd_state_init(&s, 3, w, 0.9, 0.01, 0.75), 0);
    for (int i = 0; i < 3; i++) {
        assert_true(s.momentum[i] == 0.0f);
        assert_true(s.average[i] == w[i]);
    }
    /* the same update by hand, with the decay of step 5: min(0.75, 6/15) = 0.4 */
    float w2[3], v2[3] = {0, 0, 0}, a2[3];
    memcpy(w2, w, sizeof w);
    memcpy(a2, w, sizeof w);
    sgd_step(w2, v2, g, a2, t, 2, 0.1f, 0.9f, 0.01f, 0.4f);
    sgd_state_step(&s, w, g, t, 2, 0.1, 5);
    assert_memory_equal(w, w2, sizeof w);
    assert_memory_equal(s.momentum, v2, sizeof v2);
    assert_memory_equal(s.average, a2, sizeof a2);
    /* late in a run the configured decay holds */
    memcpy(w2, w, sizeof w);
    memcpy(v2, s.momentum, sizeof v2);
    memcpy(a2, s.average, sizeof a2);
    sgd_step(w2, v2, g, a2, t, 2, 0.1f, 0.9f, 0.01f, 0.75f);
    sgd_state_step(&s, w, g, t, 2, 0.1, 1000);
    assert_memory_equal(w, w2, sizeof w);
    assert_memory_equal(s.average, a2, sizeof a2);
    sgd_state_reset(&s, w);
    for (int i = 0; i < 3; i++) {
        assert_true(s.momentum[i] == 0.0f);
        assert_true(s.average[i] == w[i]);
    }
    sgd_state_free(&s);
    assert_null(s.momentum);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caffe_update),
        cmocka_unit_test(test_lr_policies),
        cmocka_unit_test(test_state_and_warmup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
