/* train/resume.h: what a resumed run may change, and where it continues.
 *
 * A checkpoint records every flag its run was started with (the extra key
 * train_settings, cli_settings_format's form) and the data it read (size,
 * class names, data_digest). Resuming compares them with the new command:
 * - settings that change what is trained (the global batch, crop, length,
 *   data, classes, schedule, optimizer, augmentation, seed, ...) are refused,
 *   each named with its old value, unless --allow-changes;
 * - settings that do not (threads, workers, logging, evaluation, checkpoint
 *   cadence, ...) are accepted and listed;
 * - another rank count is accepted: --accum is raised or lowered to keep the
 *   global batch when it divides (the run then continues exactly), otherwise
 *   the epoch position is re-split over the new global batch;
 * - the step count and the samples seen are carried over as they are;
 * - a checkpoint at the end of the run is "complete": nothing to do.
 * Pure: no I/O, no MPI; the messages come back as text for rank 0 to print.
 */
#ifndef TRAINER_TRAIN_RESUME_H
#define TRAINER_TRAIN_RESUME_H

#include <stddef.h>

#include "trainer/ckpt/ckpt.h"
#include "trainer/train/step.h"
#include "trainer/train/train.h"

/* The new run as the data and the launcher make it. */
typedef struct {
    int world;
    long long dataset_size;
    const char *data_digest;  /* train_data_digest of the training set */
    const char *class_names;  /* the training set's names, each ended by '\n' */
    int classes;
} ResumeRun;

/* The run's shape on this many ranks. */
typedef struct {
    int accum;                /* cfg->accum, or what keeps the global batch on another rank count */
    int global_batch;         /* samples per optimizer step over every rank */
    long steps_per_epoch;     /* optimizer steps per epoch at this shape (>= 1) */
    long total_steps;         /* the step the run ends at */
} TrainShape;

/* Where and how a run starts. Every field before notes is the same on every
 * rank (rank 0 works it out and broadcasts them). */
typedef struct {
    TrainShape shape;
    TrainPosition at;         /* where training continues (epoch 0-based, as in CkptMeta) */
    int complete;             /* the checkpoint is already the end of the run */
    char notes[4096];         /* lines for rank 0 to print, each ended by '\n' */
} ResumePlan;

/* The plan of a run from step 0 (no checkpoint). -1 with err when the shape
 * leaves no step per epoch. */
int train_resume_fresh(const TrainConfig *cfg, const ResumeRun *run, ResumePlan *p, char *err, size_t errlen);

/* The plan of a run resumed from the checkpoint with metadata m (path names
 * it in messages). Returns 0, or -1 with one line in err: settings that
 * change the run without --allow-changes, an impossible shape. */
int train_resume_plan(const TrainConfig *cfg, const CkptMeta *m, const char *path, const ResumeRun *run,
                      ResumePlan *p, char *err, size_t errlen);

/* "step 14 (epoch 2, step 4 of 10)", or "step 20 (end of epoch 2)": a
 * position in the words every command uses (epochs and steps counted from 1;
 * epoch is 0-based and epoch_step the steps done of it, as in CkptMeta).
 * steps_per_epoch <= 0 leaves out "of N". */
void train_format_position(const TrainPosition *at, long steps_per_epoch, char *out, size_t len);

#endif
