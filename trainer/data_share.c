/* data_share.c: rank 0 opens the dataset, every other rank gets its
 * serialised index by broadcast (see data_share.h). */
#include "trainer/data_share.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

Dataset *data_share_open(Comm *c, const DatasetOptions *opt, int *cache_made, char *err, size_t errlen)
{
    Dataset *ds = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int failed = 0;
    err[0] = '\0';
    if (comm_rank(c) == 0) {
        int had = opt->cache_file && access(opt->cache_file, F_OK) == 0;
        ds = dataset_open(opt, err, errlen);
        if (cache_made && opt->cache_file && !had && access(opt->cache_file, F_OK) == 0) *cache_made = 1;
        if (!ds) failed = 1;
        else if (comm_size(c) > 1 && dataset_serialize(ds, &buf, &len, err, errlen) != 0) failed = 1;
    }
    if (comm_agree(c, failed, err, err, errlen) != 0) goto fail;
    if (comm_size(c) == 1) return ds;
    uint64_t n = len;
    comm_broadcast(c, &n, sizeof n, "dataset index size");
    if (comm_rank(c) != 0 && !(buf = malloc(n ? n : 1))) {
        failed = 1;
        snprintf(err, errlen, "out of memory for the %llu-byte dataset index", (unsigned long long)n);
    }
    if (comm_agree(c, failed, err, err, errlen) != 0) goto fail;
    comm_broadcast(c, buf, n, "dataset index");
    if (comm_rank(c) != 0 && !(ds = dataset_deserialize(buf, n, err, errlen))) failed = 1;
    free(buf);
    buf = NULL;
    if (comm_agree(c, failed, err, err, errlen) != 0) goto fail;
    return ds;
fail:
    dataset_free(ds);
    free(buf);
    return NULL;
}
