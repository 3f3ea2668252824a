/* helper_npy_compare.c: compares two flat fp32 .npy files.
 *   helper_npy_compare A.npy B.npy TOL
 * prints the largest |a - b| / max(|b|) and the largest elementwise
 * |a - b| / (|b| + 1e-3 max|b|); exits 1 when the first exceeds TOL or the
 * shapes differ, 0 otherwise. "exact" as TOL demands identical bits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trainer/ckpt/ckpt.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: helper_npy_compare A.npy B.npy TOL|exact\n");
        return 2;
    }
    char err[512];
    size_t na, nb;
    float *a = ckpt_npy_read(argv[1], &na, err, sizeof err);
    if (!a) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    float *b = ckpt_npy_read(argv[2], &nb, err, sizeof err);
    if (!b) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (na != nb) {
        printf("sizes differ: %zu vs %zu\n", na, nb);
        return 1;
    }
    if (strcmp(argv[3], "exact") == 0) {
        int same = memcmp(a, b, na * sizeof(float)) == 0;
        printf("%s\n", same ? "identical" : "different bits");
        return same ? 0 : 1;
    }
    double tol = atof(argv[3]), mx = 0, worst = 0, worst_el = 0, mean_abs = 0;
    for (size_t i = 0; i < na; i++)
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
    for (size_t i = 0; i < na; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > worst) worst = d;
        double e = d / (fabs(b[i]) + 1e-3 * mx);
        if (e > worst_el) worst_el = e;
        mean_abs += d;
    }
    printf("%zu values: max |a-b| / max|b| = %.3g, max elementwise = %.3g, mean |a-b| = %.3g\n", na,
           worst / mx, worst_el, mean_abs / na);
    return worst / mx <= tol ? 0 : 1;
}
