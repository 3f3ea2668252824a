/* ckpt/npy.c: weights to and from NumPy's .npy format, so other tools (the
 * PyTorch parity script, NumPy) can read and produce them. Only what this
 * project needs: a flat little-endian float32 array. Never trusts the header:
 * the shape is checked against the file's size. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dataloader/le.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/ckpt/internal.h"

static const char npy_magic[6] = {(char)0x93, 'N', 'U', 'M', 'P', 'Y'};

int ckpt_npy_write(const char *path, const float *data, size_t count, char *err, size_t errlen)
{
    /* v1.0: magic, 1, 0, u16 header length, a Python dict padded with spaces
     * and ended by '\n' so that the data starts at a multiple of 64 */
    char dict[128];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu,), }", count);
    size_t total = 10 + (size_t)n + 1;
    total = (total + 63) / 64 * 64;
    uint8_t head[192];
    memcpy(head, npy_magic, 6);
    head[6] = 1;
    head[7] = 0;
    size_t hlen = total - 10;
    le_put16(head + 8, (uint16_t)hlen);
    memset(head + 10, ' ', hlen);
    memcpy(head + 10, dict, (size_t)n);
    head[total - 1] = '\n';
    return ckpt_write_bytes_atomic(path, head, total, data, count * sizeof(float), NULL, NULL, err, errlen);
}

/* The value text after 'key': in dict, or NULL. */
static const char *dict_value(const char *dict, const char *key)
{
    char k1[40], k2[40];
    snprintf(k1, sizeof k1, "'%s'", key);
    snprintf(k2, sizeof k2, "\"%s\"", key);
    const char *p = strstr(dict, k1);
    if (!p) p = strstr(dict, k2);
    if (!p) return NULL;
    p += strlen(k1);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

/* The header of an open .npy file: magic, version, the dict (malloc'ed,
 * NUL-ended, into *dict); *data_off gets where the array starts. */
static int npy_read_header(FILE *f, const char *path, uint64_t size, char **dict, size_t *data_off, char *err,
                           size_t errlen)
{
    uint8_t pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, npy_magic, 6) != 0) {
        snprintf(err, errlen, "%s is not a NumPy .npy file (no \\x93NUMPY magic)", path);
        return -1;
    }
    int major = pre[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = le_get16(pre + 8);
        start = 10;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            snprintf(err, errlen, "%s: truncated .npy header", path);
            return -1;
        }
        hlen = le_get32(pre + 8);
        start = 12;
    } else {
        snprintf(err, errlen, "%s: .npy format version %d.%d is not supported (1.0, 2.0, 3.0 are)", path, major,
                 pre[7]);
        return -1;
    }
    if (hlen > (1u << 20) || start + hlen > size) {
        snprintf(err, errlen, "%s: .npy header length %zu does not fit the %llu-byte file", path, hlen,
                 (unsigned long long)size);
        return -1;
    }
    *dict = malloc(hlen + 1);
    if (!*dict || fread(*dict, 1, hlen, f) != hlen) {
        snprintf(err, errlen, "%s: cannot read the .npy header", path);
        return -1;
    }
    (*dict)[hlen] = 0;
    *data_off = start + hlen;
    return 0;
}

/* The element count of a 1-D little-endian float32 array the dict describes. */
static int npy_parse_dict(const char *dict, const char *path, unsigned long long *count, char *err, size_t errlen)
{
    const char *descr = dict_value(dict, "descr"), *fo = dict_value(dict, "fortran_order"),
               *shape = dict_value(dict, "shape");
    if (!descr || !fo || !shape) {
        snprintf(err, errlen, "%s: the .npy header lacks descr, fortran_order or shape", path);
        return -1;
    }
    if (strncmp(descr, "'<f4'", 5) != 0 && strncmp(descr, "\"<f4\"", 5) != 0) {
        char d[16];
        snprintf(d, sizeof d, "%.*s", (int)strcspn(descr, ",}"), descr);
        snprintf(err, errlen, "%s holds dtype %s; save a little-endian float32 array (numpy: a.astype('<f4'))", path,
                 d);
        return -1;
    }
    if (*shape != '(') {
        snprintf(err, errlen, "%s: bad shape in the .npy header", path);
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(shape + 1, &end, 10);
    while (*end == ' ') end++;
    int one_d = !errno && end != shape + 1 && *end == ',';
    if (one_d) {
        end++;
        while (*end == ' ') end++;
        one_d = *end == ')';
    }
    if (!one_d) {
        snprintf(err, errlen, "%s: the array is not 1-D (shape %.*s); save a flat array (numpy: a.ravel())", path,
                 (int)strcspn(shape, ")") + 1, shape);
        return -1;
    }
    *count = n;
    return 0;
}

float *ckpt_npy_read(const char *path, size_t *count, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    float *data = NULL;
    char *dict = NULL;
    struct stat st;
    size_t data_off;
    unsigned long long n;
    if (fstat(fileno(f), &st) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (npy_read_header(f, path, (uint64_t)st.st_size, &dict, &data_off, err, errlen) != 0 ||
        npy_parse_dict(dict, path, &n, err, errlen) != 0)
        goto out;
    if ((unsigned long long)st.st_size - data_off != n * 4) {
        snprintf(err, errlen, "%s: the header says %llu floats (%llu bytes) but %lld bytes follow it: truncated or "
                 "damaged", path, n, n * 4, (long long)(st.st_size - (off_t)data_off));
        goto out;
    }
    data = malloc(n ? n * 4 : 4);
    if (!data) {
        snprintf(err, errlen, "out of memory for %llu floats from %s", n, path);
        goto out;
    }
    if (fread(data, 4, n, f) != n) {
        snprintf(err, errlen, "%s: read failed", path);
        free(data);
        data = NULL;
        goto out;
    }
    *count = (size_t)n;
out:
    free(dict);
    fclose(f);
    return data;
}
