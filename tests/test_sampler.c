/* test_sampler.c: the sampler's partition over several ranks and epochs:
 * disjoint, covering, equal step counts, the same permutation on every rank,
 * a new one every epoch, padding and dropping, and the contiguous mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dataloader/sampler.h"

/* Every (n, world, batch, drop_last) over a few epochs: count how often each
 * item is taken across all ranks. */
static void check_partition(size_t n, int world, int batch, int drop_last, long epoch)
{
    long steps = sampler_steps_per_epoch(n, world, batch, drop_last, SAMPLER_SHUFFLED);
    size_t global = (size_t)world * batch;
    if (drop_last) {
        assert_int_equal(steps, n / global);
    } else {
        assert_int_equal(steps, (n + global - 1) / global);
    }
    if (steps == 0) return;
    int *seen = calloc(n, sizeof *seen);
    size_t *idx = malloc(sizeof(size_t) * batch);
    int *pass = malloc(sizeof(int) * batch);
    char err[256];
    for (int r = 0; r < world; r++) {
        SamplerConfig c = {n, world, r, batch, drop_last, SAMPLER_SHUFFLED, 42};
        Sampler *s = sampler_init(&c, err, sizeof err);
        assert_non_null(s);
        assert_int_equal(sampler_steps(s), steps); /* every rank runs the same number of steps */
        for (long st = 0; st < steps; st++) {
            assert_int_equal(sampler_batch(s, epoch, st, idx, pass), batch); /* always full */
            for (int b = 0; b < batch; b++) {
                assert_true(idx[b] < n);
                seen[idx[b]]++;
            }
        }
        sampler_free(s);
    }
    size_t taken = (size_t)steps * global;
    if (drop_last) {
        /* disjoint: nothing twice, and exactly steps*global distinct items */
        size_t once = 0;
        for (size_t i = 0; i < n; i++) {
            assert_true(seen[i] <= 1);
            once += seen[i] == 1;
        }
        assert_int_equal(once, taken);
    } else {
        /* covering: the padding wraps around the permutation, so every item is
         * taken q or q+1 times (q = taken / n, at least 1) */
        size_t q = taken / n, more = 0;
        assert_true(q >= 1);
        for (size_t i = 0; i < n; i++) {
            assert_true(seen[i] == (int)q || seen[i] == (int)q + 1);
            more += seen[i] == (int)q + 1;
        }
        assert_int_equal(more, taken % n);
    }
    free(seen);
    free(idx);
    free(pass);
}

static void test_partition_many(void **state)
{
    (void)state;
    const size_t ns[] = {1, 7, 64, 100, 1001};
    const int worlds[] = {1, 2, 3, 4, 8};
    const int batches[] = {1, 3, 16};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t w = 0; w < sizeof worlds / sizeof *worlds; w++)
            for (size_t b = 0; b < sizeof batches / sizeof *batches; b++)
                for (int d = 0; d < 2; d++)
                    for (long e = 0; e < 3; e++) check_partition(ns[a], worlds[w], batches[b], d, e);
}

static void test_permutation_per_epoch(void **state)
{
    (void)state;
    size_t n = 1000;
    uint32_t *p0 = malloc(n * 4), *p0b = malloc(n * 4), *p1 = malloc(n * 4), *q0 = malloc(n * 4);
    sampler_permutation(n, 7, 0, p0);
    sampler_permutation(n, 7, 0, p0b);
    sampler_permutation(n, 7, 1, p1);
    sampler_permutation(n, 8, 0, q0);
    assert_memory_equal(p0, p0b, n * 4);        /* same (seed, epoch): same order on every rank */
    assert_memory_not_equal(p0, p1, n * 4);     /* a new order each epoch */
    assert_memory_not_equal(p0, q0, n * 4);     /* and per seed */
    int *seen = calloc(n, sizeof *seen);
    size_t fixed = 0;
    for (size_t i = 0; i < n; i++) {
        seen[p1[i]]++;
        fixed += p1[i] == i;
    }
    for (size_t i = 0; i < n; i++) assert_int_equal(seen[i], 1);
    assert_true(fixed < 20); /* a shuffle, not the identity */
    free(p0), free(p0b), free(p1), free(q0), free(seen);
}

/* Ranks read disjoint consecutive slices of one global order: rank r's step s
 * equals the permutation at [s*W*B + r*B, ...). */
static void test_layout_matches_permutation(void **state)
{
    (void)state;
    size_t n = 50;
    int W = 3, B = 4;
    uint32_t perm[50];
    sampler_permutation(n, 9, 2, perm);
    char err[256];
    size_t idx[4];
    int pass[4];
    for (int r = 0; r < W; r++) {
        SamplerConfig c = {n, W, r, B, 0, SAMPLER_SHUFFLED, 9};
        Sampler *s = sampler_init(&c, err, sizeof err);
        for (long st = 0; st < sampler_steps(s); st++) {
            sampler_batch(s, 2, st, idx, pass);
            for (int b = 0; b < B; b++) {
                size_t j = (size_t)st * W * B + (size_t)r * B + b;
                assert_int_equal(idx[b], perm[j % n]);
                assert_int_equal(pass[b], (int)(j / n));
            }
        }
        sampler_free(s);
    }
}

static void test_contiguous(void **state)
{
    (void)state;
    const size_t ns[] = {1, 5, 10, 33, 1000};
    char err[256];
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (int W = 1; W <= 6; W++)
            for (int B = 1; B <= 7; B += 3) {
                size_t n = ns[a], next = 0;
                long steps = sampler_steps_per_epoch(n, W, B, 0, SAMPLER_CONTIGUOUS);
                size_t *idx = malloc(sizeof(size_t) * B);
                for (int r = 0; r < W; r++) {
                    size_t begin, end;
                    sampler_contiguous_range(n, W, r, &begin, &end);
                    assert_int_equal(begin, next); /* ranks tile [0, n) in order */
                    assert_true(end - begin <= (n + W - 1) / W);
                    next = end;
                    SamplerConfig c = {n, W, r, B, 0, SAMPLER_CONTIGUOUS, 1};
                    Sampler *s = sampler_init(&c, err, sizeof err);
                    assert_non_null(s);
                    assert_int_equal(sampler_steps(s), steps);
                    size_t expect = begin, total = 0;
                    for (long st = 0; st < steps; st++) {
                        int real = sampler_batch(s, 5, st, idx, NULL);
                        assert_true(real >= 0 && real <= B);
                        for (int b = 0; b < B; b++) {
                            if (b < real) {
                                assert_int_equal(idx[b], expect++);
                            } else {
                                assert_int_equal(idx[b], SIZE_MAX);
                            }
                        }
                        total += (size_t)real;
                    }
                    assert_int_equal(total, end - begin); /* no padding, nothing lost */
                    sampler_free(s);
                }
                assert_int_equal(next, n);
                free(idx);
            }
}

static void test_errors(void **state)
{
    (void)state;
    char err[256];
    SamplerConfig c = {10, 4, 0, 4, 1, SAMPLER_SHUFFLED, 1};
    assert_null(sampler_init(&c, err, sizeof err)); /* 10 < 4*4 with drop_last: an empty epoch */
    assert_non_null(strstr(err, "drop-last"));
    c.drop_last = 0;
    Sampler *s = sampler_init(&c, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(sampler_steps(s), 1);
    sampler_free(s);
    c.rank = 4;
    assert_null(sampler_init(&c, err, sizeof err));
    c.rank = 0;
    c.n = 0;
    assert_null(sampler_init(&c, err, sizeof err));
    assert_non_null(strstr(err, "empty"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition_many),
        cmocka_unit_test(test_permutation_per_epoch),
        cmocka_unit_test(test_layout_matches_permutation),
        cmocka_unit_test(test_contiguous),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
