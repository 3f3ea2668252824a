/* data_share.h: the dataset every rank reads. Rank 0 scans the tree (or reads
 * the index cache) and broadcasts the index; the other ranks never touch the
 * directory tree, so N ranks cost one scan. Used by train and eval. */
#ifndef TRAINER_DATA_SHARE_H
#define TRAINER_DATA_SHARE_H

#include <stddef.h>

#include "comm/comm.h"
#include "dataloader/dataset.h"

/* Collective. Every rank returns the same index, or NULL on every rank with
 * the agreed message in err (comm_agree: "rank R: ..." naming the rank that
 * failed when there are several). *cache_made (may be NULL) is set to 1 on
 * rank 0 when it wrote an index cache that was not there before, so that a
 * failed start can remove what it made. */
Dataset *data_share_open(Comm *c, const DatasetOptions *opt, int *cache_made, char *err, size_t errlen);

#endif
