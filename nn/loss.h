/* loss.h: numerically stable softmax cross-entropy with top-1/top-5 counts.
 * Logits are column-major, (classes, n): column i is sample i. */
#ifndef NN_LOSS_H
#define NN_LOSS_H

typedef struct {
    double loss_sum; /* sum over the batch of -log p(label) */
    int top1, top5;  /* samples whose label is the first / among the first five */
} LossStats;

/* Forward (and the gradient when dlogits != NULL):
 *   dlogits = scale * (softmax(logits) - onehot(label))
 * scale folds in the head's weight and 1 / (global batch). */
void loss_softmax_xent(const float *logits, const int *labels, int classes, int n,
                       float *dlogits, float scale, LossStats *st);

/* Probabilities (n, classes), row i = softmax of column i of logits. */
void loss_softmax(float *probs, const float *logits, int classes, int n);

/* Rank of `label` among scores (1 = highest; scores[c * stride] is class c's).
 * The rule for top-1 and top-5, the same in training (loss_softmax_xent) and
 * evaluation (trainer/eval/evaluate.c): every other class whose score is not below
 * the label's counts against it. A tie is a miss, whatever the class order,
 * and so is a NaN on either side: a model that gives every class the same
 * score scores 0, not 1/classes or 1 for the lowest label. */
int loss_rank_of(const float *scores, int classes, long stride, int label);
/* The same rule on doubles (evaluation's averaged probabilities). */
int loss_rank_of_f64(const double *scores, int classes, int label);

#endif
