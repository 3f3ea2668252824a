/* fuzz_dataset.h: the properties every opened dataset must have, shared by
 * the label-file, classes-file, shard and index-cache targets. */
#ifndef TESTS_FUZZ_FUZZ_DATASET_H
#define TESTS_FUZZ_FUZZ_DATASET_H

#include "dataloader/dataset.h"

/* Checks ds (from dataset_open or dataset_deserialize): at least one item and
 * one class; every label a class; every item and class named, and no class
 * name that a checkpoint could not store (empty, or holding a line break);
 * the serialised index reads back the same; the first items read. */
void fuzz_dataset_check(const Dataset *ds);

/* dataset_open(opt); when it fails, that it said why. Returns the dataset
 * (checked) or NULL. */
Dataset *fuzz_dataset_open(const DatasetOptions *opt);

#endif
