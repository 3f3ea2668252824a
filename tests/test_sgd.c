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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_caffe_update),
        cmocka_unit_test(test_lr_policies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
