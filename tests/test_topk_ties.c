/* test_topk_ties.c: the top-1/top-5 rule of nn/loss.h, shared by training
 * (loss_softmax_xent's counts) and evaluation (loss_rank_of_f64 in
 * trainer/eval/evaluate.c): a tie with another class is a miss whatever the class
 * order, and a NaN is a miss. tests/test_eval.c checks the same through
 * evaluate_run with a model whose scores all tie. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "nn/loss.h"

/* Every class the same score: no label is top-1 (nor top-5 of 7), the first
 * class included, in training's counts and in both rank functions. */
static void test_all_tied_is_a_miss(void **state)
{
    (void)state;
    enum { C = 7, N = C };
    float logits[C * N]; /* (classes, n): every column equal */
    int labels[N];
    for (int i = 0; i < C * N; i++) logits[i] = 0.25f;
    for (int i = 0; i < N; i++) labels[i] = i; /* each label once, 0 first */
    LossStats st;
    loss_softmax_xent(logits, labels, C, N, NULL, 0, &st);
    assert_int_equal(st.top1, 0);
    assert_int_equal(st.top5, 0);
    double d[C];
    for (int c = 0; c < C; c++) d[c] = 1.0 / C;
    for (int y = 0; y < C; y++) {
        assert_int_equal(loss_rank_of(logits, C, N, y), C);
        assert_int_equal(loss_rank_of_f64(d, C, y), C);
    }
}

/* A tie with exactly one other class: rank 2 whether that class comes before
 * or after the label; the same label strictly highest: rank 1. */
static void test_one_tie_either_side(void **state)
{
    (void)state;
    float s[5] = {0.1f, 0.9f, 0.3f, 0.9f, 0.2f};
    double d[5] = {0.1, 0.9, 0.3, 0.9, 0.2};
    assert_int_equal(loss_rank_of(s, 5, 1, 1), 2); /* tied with the later class 3 */
    assert_int_equal(loss_rank_of(s, 5, 1, 3), 2); /* tied with the earlier class 1 */
    assert_int_equal(loss_rank_of_f64(d, 5, 1), 2);
    assert_int_equal(loss_rank_of_f64(d, 5, 3), 2);
    s[3] = 0.8f;
    d[3] = 0.8;
    assert_int_equal(loss_rank_of(s, 5, 1, 1), 1);
    assert_int_equal(loss_rank_of_f64(d, 5, 1), 1);
    assert_int_equal(loss_rank_of(s, 5, 1, 4), 4);
    /* training's counts on the same scores: label 3 (0.8) is second, top-5 */
    int y = 3;
    LossStats st;
    loss_softmax_xent(s, &y, 5, 1, NULL, 0, &st);
    assert_int_equal(st.top1, 0);
    assert_int_equal(st.top5, 1);
    y = 1;
    loss_softmax_xent(s, &y, 5, 1, NULL, 0, &st);
    assert_int_equal(st.top1, 1);
}

/* A NaN score, the label's or another's, never makes a hit. */
static void test_nan_is_a_miss(void **state)
{
    (void)state;
    float s[3] = {NAN, 0.5f, 0.1f};
    double d[3] = {0.2, 0.5, NAN};
    assert_int_equal(loss_rank_of(s, 3, 1, 0), 3);   /* the label's score is NaN */
    assert_int_equal(loss_rank_of(s, 3, 1, 1), 2);   /* another's is */
    assert_int_equal(loss_rank_of_f64(d, 3, 2), 3);
    assert_int_equal(loss_rank_of_f64(d, 3, 1), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_tied_is_a_miss),
        cmocka_unit_test(test_one_tie_either_side),
        cmocka_unit_test(test_nan_is_a_miss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
