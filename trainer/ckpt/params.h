/* ckpt/params.h: the parameter layout a checkpoint implies (nn/model.h's
 * table for its class count and aux setting) and copying parameters between
 * two layouts by tensor name: what fine-tuning (train --init), slim
 * checkpoints without the aux heads (ckpt slim) and `ckpt info --tensors`
 * need. Never prints, never exits.
 */
#ifndef TRAINER_CKPT_PARAMS_H
#define TRAINER_CKPT_PARAMS_H

#include <stddef.h>

#include "nn/model.h"

typedef struct {
    Model *model;          /* the smallest model of that layout (batch 1, inference plan) */
    const ParamTensor *t;  /* (n) in parameter order */
    int n;
    size_t num_params;
} CkptLayout;

/* The layout of GoogLeNet with `classes` outputs, with or without the aux
 * heads. 0, or -1 with a message. */
int ckpt_layout_init(CkptLayout *l, int classes, int aux, char *err, size_t errlen);
void ckpt_layout_free(CkptLayout *l);

/* Copies each tensor of src (layout s) into dst (layout d) when d has a
 * tensor of that name and shape, and skip(name) (may be NULL) says no.
 * Returns how many of d's tensors got nothing; their layers' names go to
 * missing[len] ("loss1/conv, loss1/fc"), and the lowest offset of one into
 * *lowest (d->num_params when none). */
int ckpt_params_copy(const CkptLayout *d, float *dst, const CkptLayout *s, const float *src,
                     int (*skip)(const char *name), char *missing, size_t len, size_t *lowest);

#endif
