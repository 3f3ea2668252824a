/* train/finetune.h: a new run from another run's weights (train --init) and layers
 * kept fixed (train --freeze). Rank 0 reads; nothing here prints or exits.
 */
#ifndef TRAINER_FINETUNE_H
#define TRAINER_FINETUNE_H

#include <stddef.h>

#include "nn/model.h"

/* Sets the weights of m, which the caller initialised from the run's seed,
 * from checkpoint `path`: its Polyak average (average = 1; a slim
 * checkpoint's one set either way) or its last weights. Every tensor of the
 * same name and shape is copied; the classifiers (main and aux) are left as
 * initialised when the checkpoint's classes are not class_names (another
 * count, or other names), and so are tensors it does not hold (aux heads of a
 * checkpoint without them). report[rlen] gets lines for the user (each ended
 * by '\n'); *reinit_lo the lowest offset left as initialised (num_params when
 * none). 0, or -1 with one line in err. */
int finetune_init(Model *m, const char *path, int average, const char *class_names, int classes,
                  const float mean[3], const float std[3], char *report, size_t rlen, size_t *reinit_lo,
                  char *err, size_t errlen);

/* --freeze LAYER: the parameters of every layer up to and including LAYER (a
 * layer such as "inception_4e/3x3" or "conv2/3x3", or a module such as
 * "inception_4e", "conv2" or the aux head "loss1") stay fixed: *from is the
 * offset just past them (model_backward_from), *first_tensor the index of the
 * first tensor trained. 0, or -1 with one line in err. */
int finetune_freeze(const Model *m, const char *layer, size_t *from, int *first_tensor, char *err, size_t errlen);

#endif
