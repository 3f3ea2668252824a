/* loss.c: softmax, cross-entropy and top-k (see loss.h). */
#include "nn/loss.h"

#include <math.h>

/* The tie rule of loss.h, in one place: another class's score t counts
 * against the label's v unless it is strictly below (ties and NaNs count). */
static inline int counts_against(double t, double v) { return !(t < v); }

int loss_rank_of(const float *scores, int classes, long stride, int label)
{
    int rank = 1;
    for (int c = 0; c < classes; c++)
        rank += c != label && counts_against(scores[(long)c * stride], scores[(long)label * stride]);
    return rank;
}

int loss_rank_of_f64(const double *scores, int classes, int label)
{
    int rank = 1;
    for (int c = 0; c < classes; c++) rank += c != label && counts_against(scores[c], scores[label]);
    return rank;
}

void loss_softmax_xent(const float *logits, const int *labels, int classes, int n,
                       float *dlogits, float scale, LossStats *st)
{
    st->loss_sum = 0.0;
    st->top1 = st->top5 = 0;
    for (int i = 0; i < n; i++) {
        const float *col = logits + i;
        float mx = col[0];
        for (int c = 1; c < classes; c++)
            if (col[(long)c * n] > mx) mx = col[(long)c * n];
        double z = 0.0;
        for (int c = 0; c < classes; c++) z += exp((double)(col[(long)c * n] - mx));
        double logz = log(z) + mx;
        int y = labels[i];
        st->loss_sum += logz - col[(long)y * n];
        int r = loss_rank_of(col, classes, n, y);
        st->top1 += r == 1;
        st->top5 += r <= 5;
        if (dlogits)
            for (int c = 0; c < classes; c++) {
                double p = exp((double)col[(long)c * n] - logz);
                dlogits[(long)c * n + i] = (float)(scale * (p - (c == y)));
            }
    }
}

void loss_softmax(float *probs, const float *logits, int classes, int n)
{
    for (int i = 0; i < n; i++) {
        float mx = logits[i];
        for (int c = 1; c < classes; c++)
            if (logits[(long)c * n + i] > mx) mx = logits[(long)c * n + i];
        double z = 0.0;
        for (int c = 0; c < classes; c++) z += exp((double)(logits[(long)c * n + i] - mx));
        for (int c = 0; c < classes; c++)
            probs[(long)i * classes + c] = (float)(exp((double)(logits[(long)c * n + i] - mx)) / z);
    }
}
