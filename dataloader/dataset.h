/* dataset.h: the index of a dataset: which items exist, their labels, and how
 * to read an item's encoded bytes.
 *
 * Three layouts open with one call:
 *   - a class tree ROOT/<class_dir>/<file> (ImageNet train; also val laid out
 *     the same way): labels are the sorted class directory names, or the order
 *     of a classes file;
 *   - a flat directory plus a label file (ILSVRC2012 ground truth: one 1-based
 *     label per line in sorted file-name order; "name label" lines; or
 *     LOC_val_solution.csv);
 *   - a directory of shard files written by shard_pack() (shard.h).
 * The index can be serialised to a byte buffer (rank 0 scans, the trainer
 * broadcasts it) and cached in a file next to nothing the user did not name.
 * This module reads files; it never decodes images, never prints, never exits.
 * Every function that can fail writes one line into err saying what to do.
 */
#ifndef DATALOADER_DATASET_H
#define DATALOADER_DATASET_H

#include <stddef.h>
#include <stdint.h>

typedef struct Dataset Dataset;

typedef struct {
    const char *path;         /* class tree, flat directory or shard directory */
    const char *classes_file; /* NULL, or one class id per line (first token) giving
                                 the label order; LOC_synset_mapping.txt works */
    const char *labels_file;  /* NULL, or the label file of a flat directory */
    const char *cache_file;   /* NULL, or an index cache: read when it matches the
                                 tree (same root, same directory mtimes), else the
                                 tree is scanned and the cache (re)written */
} DatasetOptions;

typedef enum { DATASET_TREE = 1, DATASET_FLAT = 2, DATASET_SHARDS = 3 } DatasetKind;

/* Opens and indexes opt->path. NULL on failure with a one-line reason (missing
 * or empty dataset, unreadable label file, a class directory missing from the
 * classes file, ...). */
Dataset *dataset_open(const DatasetOptions *opt, char *err, size_t errlen);
void dataset_free(Dataset *ds);
/* A dataset of the files paths[0..n) as given (relative to the working
 * directory or absolute), every label 0, classes classes named "0", "1", ...:
 * for classifying images that belong to no dataset (`googlenet predict`). Its
 * root is "" and its item names are the paths. Not serialisable to a cache. */
Dataset *dataset_from_files(const char *const *paths, size_t n, int classes, char *err, size_t errlen);

DatasetKind dataset_kind(const Dataset *ds);
const char *dataset_root(const Dataset *ds);
size_t dataset_size(const Dataset *ds);
int dataset_num_classes(const Dataset *ds);
const char *dataset_class_name(const Dataset *ds, int c); /* "n01440764" or "3" */
int dataset_label(const Dataset *ds, size_t i);           /* 0 .. classes-1 */
/* The item's name relative to the root: "n01440764/n01440764_10026.JPEG". */
const char *dataset_item_name(const Dataset *ds, size_t i);

/* Reads item i's encoded bytes into *buf (grown with realloc when *cap is too
 * small; the caller frees it). Returns 0 and sets *len, or -1 with a reason
 * (unreadable, zero bytes, shard checksum mismatch). Thread-safe: any number
 * of threads may read concurrently, each with its own buffer. */
int dataset_read(const Dataset *ds, size_t i, uint8_t **buf, size_t *cap, size_t *len,
                 char *err, size_t errlen);

/* The whole index as one self-contained byte buffer (malloc'd; caller frees),
 * and back. A deserialised shard dataset reopens its shard files. */
int dataset_serialize(const Dataset *ds, uint8_t **out, size_t *len, char *err, size_t errlen);
Dataset *dataset_deserialize(const uint8_t *buf, size_t len, char *err, size_t errlen);

/* Seconds the last dataset_open spent building the index, and whether it came
 * from the cache file (for the scan figures bench-loader prints). */
double dataset_scan_seconds(const Dataset *ds);
int dataset_from_cache(const Dataset *ds);

#endif
