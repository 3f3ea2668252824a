/* test_ckpt.c: the .gnck format: a bitwise round trip of the three float
 * sections and every metadata field, the reader's answer to each kind of bad
 * input (truncation at many lengths, a flipped bit at every byte, wrong magic,
 * a newer major version, a newer minor version it must still read, another
 * architecture or class count), --resume auto's choice, and .npy files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/rng.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/ckpt/hash.h"
#include "trainer/ckpt/internal.h" /* temporary names, the latest pointer */

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_ckpt.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in(char *out, size_t len, const char *name) { snprintf(out, len, "%s/%s", tmpdir, name); }

/* Gaussian-ish values (sum of uniforms) so the codec sees realistic floats */
static float *make_floats(size_t n, uint64_t seed)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    uint64_t key = rng_key(seed, 1, 2, 3);
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int k = 0; k < 4; k++) s += rng_uniform(key, 4 * i + k);
        x[i] = (s - 2.0f) * 0.05f;
    }
    return x;
}

static void fill_meta(CkptMeta *m, size_t np)
{
    ckpt_meta_init(m);
    ModelConfig cfg = model_default_config();
    cfg.classes = 10;
    cfg.crop = 64;
    ckpt_meta_set_model(m, &cfg, np);
    m->step = 1234;
    m->epoch = 3;
    m->epoch_step = 17;
    m->epoch_samples = 17 * 64;
    m->samples_seen = 1234LL * 64;
    m->seed = 0xdeadbeefcafef00dULL;
    m->world_size = 4;
    m->batch = 16;
    m->accum = 1;
    m->lr.policy = LR_POLY;
    m->lr.base_lr = 0.1;
    m->lr.gamma = 0.96;
    m->lr.step_size = 320000;
    m->lr.power = 0.5;
    m->lr.max_iter = 2400000;
    m->lr.final_frac = 1e-3;
    m->lr.warmup_iters = 500;
    m->last_lr = 0.0999876543210123;
    m->momentum = 0.9;
    m->weight_decay = 2e-4;
    m->ema_decay = 0.9999;
    m->dataset_size = 60000;
    m->drop_last = 1;
    m->created_unix = 1700000000;
    snprintf(m->command, sizeof m->command, "googlenet train --lr 0.1 --note 'a\\b\nc'");
    const char *names[] = {"tench, Tinca tinca", "goldfish", "great white shark", "tiger shark", "hammerhead",
                           "electric ray", "stingray", "cock", "hen", "ostrich"};
    char err[200];
    assert_int_equal(ckpt_meta_set_class_names(m, names, 10, err, sizeof err), 0);
    assert_int_equal(ckpt_meta_add_extra(m, "loader.note", "kept = verbatim", err, sizeof err), 0);
}

static void save_sample(const char *path, size_t np, uint64_t seed, CkptMeta *meta_out)
{
    float *w = make_floats(np, seed), *m = make_floats(np, seed + 1), *a = make_floats(np, seed + 2);
    CkptMeta meta;
    fill_meta(&meta, np);
    char err[512];
    int rc = ckpt_save(path, &meta, w, m, a, 3, 0, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    if (meta_out) *meta_out = meta;
    else ckpt_meta_free(&meta);
    free(w);
    free(m);
    free(a);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void spit(const char *path, const uint8_t *b, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, len, f), len);
    fclose(f);
}

static void test_roundtrip_bitwise(void **state)
{
    (void)state;
    size_t np = 100003;
    char path[300], err[512];
    path_in(path, sizeof path, "rt.gnck");
    CkptMeta want;
    save_sample(path, np, 42, &want);
    float *w = make_floats(np, 42), *m = make_floats(np, 43), *a = make_floats(np, 44);
    float *w2 = malloc(np * 4), *m2 = malloc(np * 4), *a2 = malloc(np * 4);
    CkptMeta got;
    int rc = ckpt_load(path, &got, w2, m2, a2, np, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_memory_equal(w, w2, np * 4);
    assert_memory_equal(m, m2, np * 4);
    assert_memory_equal(a, a2, np * 4);

    assert_int_equal(got.version_major, CKPT_VERSION_MAJOR);
    assert_int_equal(got.step, 1234);
    assert_int_equal(got.epoch, 3);
    assert_int_equal(got.epoch_step, 17);
    assert_int_equal(got.epoch_samples, 17 * 64);
    assert_int_equal(got.samples_seen, 1234LL * 64);
    assert_true(got.seed == 0xdeadbeefcafef00dULL);
    assert_int_equal(got.world_size, 4);
    assert_int_equal(got.batch, 16);
    assert_int_equal(got.accum, 1);
    assert_string_equal(got.arch, CKPT_ARCH);
    assert_int_equal(got.classes, 10);
    assert_int_equal(got.crop, 64);
    assert_int_equal(got.aux, 1);
    assert_true(got.head_dropout == 0.4f && got.aux_dropout == 0.7f);
    assert_int_equal(got.num_params, np);
    assert_int_equal(got.lr.policy, LR_POLY);
    /* doubles survive the text form exactly */
    assert_true(got.lr.base_lr == want.lr.base_lr && got.lr.gamma == want.lr.gamma);
    assert_true(got.lr.power == want.lr.power && got.lr.final_frac == want.lr.final_frac);
    assert_int_equal(got.lr.step_size, 320000);
    assert_int_equal(got.lr.max_iter, 2400000);
    assert_int_equal(got.lr.warmup_iters, 500);
    assert_true(got.last_lr == want.last_lr);
    assert_true(got.momentum == 0.9 && got.weight_decay == 2e-4 && got.ema_decay == 0.9999);
    assert_int_equal(got.dataset_size, 60000);
    assert_int_equal(got.drop_last, 1);
    assert_int_equal(got.created_unix, 1700000000);
    assert_string_equal(got.command, want.command);
    assert_int_equal(got.num_class_names, 10);
    assert_string_equal(got.class_names, want.class_names);
    assert_non_null(got.extra);
    assert_string_equal(got.extra, "loader.note=kept = verbatim\n");
    char hex[65];
    sha256_buffer_hex(w, np * 4, hex);
    assert_string_equal(got.params_sha256, hex);

    /* the reader API: sections, sizes, verify */
    CkptReader *r = ckpt_open(path, err, sizeof err);
    assert_non_null(r);
    int ns;
    const CkptSectionInfo *s = ckpt_reader_sections(r, &ns);
    assert_int_equal(ns, 5);
    int floats = 0;
    for (int i = 0; i < ns; i++)
        if (s[i].kind >= CKPT_SEC_WEIGHTS && s[i].kind <= CKPT_SEC_AVERAGE) {
            floats++;
            assert_int_equal(s[i].codec, CKPT_CODEC_SHUFFLE_ZSTD);
            assert_int_equal(s[i].raw_bytes, np * 4);
            assert_true(s[i].stored_bytes < s[i].raw_bytes);
        }
    assert_int_equal(floats, 3);
    assert_int_equal(ckpt_reader_verify(r, err, sizeof err), 0);
    /* a caller buffer of the wrong size is refused */
    assert_int_equal(ckpt_reader_read(r, CKPT_SEC_MOMENTUM, m2, np - 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "expects"));
    ckpt_close(r);
    /* a load into a model of another size is refused */
    assert_int_equal(ckpt_load(path, NULL, w2, NULL, NULL, np + 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "parameters"));

    ckpt_meta_free(&got);
    ckpt_meta_free(&want);
    free(w); free(m); free(a); free(w2); free(m2); free(a2);
}

/* Every length shorter than the file: a clear "truncated" line, no crash. */
static void test_truncated(void **state)
{
    (void)state;
    char path[300], cut[300], err[512];
    path_in(path, sizeof path, "full.gnck");
    path_in(cut, sizeof cut, "cut.gnck");
    save_sample(path, 2000, 7, NULL);
    size_t len;
    uint8_t *b = slurp(path, &len);
    for (size_t n = 0; n < len; n += (n < 100 ? 1 : 37)) {
        spit(cut, b, n);
        err[0] = 0;
        assert_int_equal(ckpt_verify_file(cut, err, sizeof err), -1);
        assert_true(strstr(err, "truncated") || strstr(err, "cut short") || strstr(err, "is empty"));
        CkptMeta m;
        assert_int_equal(ckpt_peek_meta(cut, &m, err, sizeof err), -1);
    }
    spit(cut, b, len - 1);
    assert_int_equal(ckpt_verify_file(cut, err, sizeof err), -1);
    assert_non_null(strstr(err, "cut.gnck"));
    free(b);
}

/* One flipped bit anywhere in the file is caught by verify. */
static void test_bit_flip_every_byte(void **state)
{
    (void)state;
    char path[300], bad[300], err[512];
    path_in(path, sizeof path, "flip.gnck");
    path_in(bad, sizeof bad, "flipped.gnck");
    save_sample(path, 300, 9, NULL);
    size_t len;
    uint8_t *b = slurp(path, &len);
    assert_int_equal(ckpt_verify_file(path, err, sizeof err), 0);
    for (size_t i = 0; i < len; i++) {
        b[i] ^= (uint8_t)(1u << (i % 8));
        spit(bad, b, len);
        int rc = ckpt_verify_file(bad, err, sizeof err);
        if (rc == 0) fprintf(stderr, "flip at byte %zu of %zu not detected\n", i, len);
        assert_int_equal(rc, -1);
        assert_true(strlen(err) > 10 && !strchr(err, '\n'));
        b[i] ^= (uint8_t)(1u << (i % 8));
    }
    free(b);
}

/* A flip inside the weights of a large file names the section. */
static void test_bit_flip_names_section(void **state)
{
    (void)state;
    size_t np = 50000;
    char path[300], err[512];
    path_in(path, sizeof path, "big.gnck");
    save_sample(path, np, 11, NULL);
    size_t len;
    uint8_t *b = slurp(path, &len);
    b[32 + 1000] ^= 0x10; /* the weights section starts at offset 32 */
    spit(path, b, len);
    assert_int_equal(ckpt_verify_file(path, err, sizeof err), -1);
    assert_non_null(strstr(err, "'weights' is damaged"));
    float *w = malloc(np * 4);
    assert_int_equal(ckpt_load(path, NULL, w, NULL, NULL, np, err, sizeof err), -1);
    assert_non_null(strstr(err, "weights"));
    /* open alone (metadata only) still works: the damage is in a float section */
    CkptMeta m;
    assert_int_equal(ckpt_peek_meta(path, &m, err, sizeof err), 0);
    ckpt_meta_free(&m);
    free(w);
    free(b);
}

/* Each region of a checkpoint, damaged by a flipped bit and by a cut inside
 * it, is named in the reader's message: the header, every section, the
 * section table and the trailer. The regions come from the file's own table. */
static void test_damage_names_region(void **state)
{
    (void)state;
    size_t np = 20000;
    char path[300], bad[300], err[512];
    path_in(path, sizeof path, "regions.gnck");
    path_in(bad, sizeof bad, "regions-bad.gnck");
    float *w = make_floats(np, 3), *m = make_floats(np, 4), *a = make_floats(np, 5);
    CkptMeta meta;
    fill_meta(&meta, np);
    const char *names[3] = {"n01440764", "n01443537", "cat"};
    assert_int_equal(ckpt_meta_set_class_names(&meta, names, 3, err, sizeof err), 0);
    assert_int_equal(ckpt_save(path, &meta, w, m, a, 3, 0, err, sizeof err), 0);
    ckpt_meta_free(&meta);
    size_t len;
    uint8_t *b = slurp(path, &len);
    uint64_t toff = 0;
    for (int i = 0; i < 8; i++) toff |= (uint64_t)b[len - 48 + i] << (8 * i);
    uint32_t nsec = b[len - 40] | (uint32_t)b[len - 39] << 8;
    assert_int_equal(nsec, 5);
    struct {
        const char *what, *flip_says, *cut_says;
        size_t from, to;
    } reg[16];
    int nr = 0;
    reg[nr++] = (__typeof__(reg[0])){"header", "header", "header", 0, 32};
    static const char *const sec_flip[6] = {"", "'meta'", "'classes'", "'weights'", "'momentum'", "'average'"};
    static const char *const sec_cut[6] = {"", "metadata", "class names", "'weights'", "'momentum'", "'average'"};
    for (uint32_t i = 0; i < nsec; i++) {
        const uint8_t *e = b + toff + 64 * i;
        uint32_t kind = e[0];
        uint64_t off = 0, stored = 0;
        for (int k = 0; k < 8; k++) off |= (uint64_t)e[16 + k] << (8 * k), stored |= (uint64_t)e[24 + k] << (8 * k);
        assert_true(kind >= 1 && kind <= 5);
        reg[nr++] = (__typeof__(reg[0])){sec_flip[kind], sec_flip[kind], sec_cut[kind], off, off + stored};
    }
    reg[nr++] = (__typeof__(reg[0])){"table", "section table", "section table", toff, toff + 64 * nsec};
    static const char *const fields[7] = {"table offset", "section count", "entry size", "table checksum",
                                          "file size", "file checksum", "end marker"};
    static const size_t at[8] = {0, 8, 12, 16, 24, 32, 40, 48};
    for (int f = 0; f < 7; f++)
        reg[nr++] = (__typeof__(reg[0])){fields[f], "trailer", "trailer", len - 48 + at[f], len - 48 + at[f + 1]};
    for (int r = 0; r < nr; r++) {
        /* a flipped bit in the middle of the region */
        size_t i = (reg[r].from + reg[r].to) / 2;
        b[i] ^= 0x04;
        spit(bad, b, len);
        assert_int_equal(ckpt_verify_file(bad, err, sizeof err), -1);
        if (!strstr(err, reg[r].flip_says))
            fail_msg("a flip in the %s (byte %zu) says '%s', not naming '%s'", reg[r].what, i, err, reg[r].flip_says);
        b[i] ^= 0x04;
        /* the file cut in the middle of the region (the trailer's fields: the trailer) */
        spit(bad, b, i);
        assert_int_equal(ckpt_verify_file(bad, err, sizeof err), -1);
        if (!strstr(err, reg[r].cut_says) || !strstr(err, "truncated"))
            fail_msg("a cut in the %s (at byte %zu) says '%s', not naming '%s'", reg[r].what, i, err, reg[r].cut_says);
    }
    free(b);
    free(w);
    free(m);
    free(a);
}

static void rehash_header_and_file(uint8_t *b, size_t len)
{
    uint64_t h = xxh64(b, 24, 0);
    for (int i = 0; i < 8; i++) b[24 + i] = (uint8_t)(h >> (8 * i));
    uint64_t f = xxh64(b, len - 16, 0);
    for (int i = 0; i < 8; i++) b[len - 16 + i] = (uint8_t)(f >> (8 * i));
}

static void test_magic_and_versions(void **state)
{
    (void)state;
    char path[300], other[300], err[512];
    path_in(path, sizeof path, "v.gnck");
    path_in(other, sizeof other, "other.gnck");
    save_sample(path, 500, 5, NULL);
    size_t len;
    uint8_t *b = slurp(path, &len);

    uint8_t *c = malloc(len);
    memcpy(c, b, len);
    memcpy(c, "PK\x03\x04", 4);
    spit(other, c, len);
    assert_int_equal(ckpt_verify_file(other, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a googlenet checkpoint"));
    spit(other, (const uint8_t *)"hello\n", 6);
    assert_int_equal(ckpt_verify_file(other, err, sizeof err), -1);
    assert_non_null(strstr(err, "not a googlenet checkpoint"));

    /* a newer major version, consistently written, is refused by name */
    memcpy(c, b, len);
    c[8] = 2;
    rehash_header_and_file(c, len);
    spit(other, c, len);
    assert_int_equal(ckpt_verify_file(other, err, sizeof err), -1);
    assert_non_null(strstr(err, "version 2.0 is newer"));
    /* ... but a damaged version field is reported as damage */
    memcpy(c, b, len);
    c[8] = 2;
    spit(other, c, len);
    assert_int_equal(ckpt_verify_file(other, err, sizeof err), -1);
    assert_non_null(strstr(err, "header is damaged"));

    /* a newer minor version is read */
    memcpy(c, b, len);
    c[10] = 7;
    rehash_header_and_file(c, len);
    spit(other, c, len);
    CkptMeta m;
    assert_int_equal(ckpt_verify_file(other, err, sizeof err), 0);
    assert_int_equal(ckpt_peek_meta(other, &m, err, sizeof err), 0);
    assert_int_equal(m.version_minor, 7);
    assert_int_equal(m.step, 1234);
    ckpt_meta_free(&m);

    assert_int_equal(ckpt_verify_file("/nonexistent/x.gnck", err, sizeof err), -1);
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(ckpt_verify_file(tmpdir, err, sizeof err), -1);
    free(c);
    free(b);
}

static void test_model_check(void **state)
{
    (void)state;
    CkptMeta m;
    fill_meta(&m, 1000);
    ModelConfig cfg = model_default_config();
    char err[300];
    cfg.classes = 10;
    assert_int_equal(ckpt_meta_check_model(&m, &cfg, 1000, err, sizeof err), 0);
    cfg.crop = 224; /* another crop is fine */
    assert_int_equal(ckpt_meta_check_model(&m, &cfg, 1000, err, sizeof err), 0);
    cfg.classes = 1000;
    assert_int_equal(ckpt_meta_check_model(&m, &cfg, 1000, err, sizeof err), -1);
    assert_non_null(strstr(err, "10 classes"));
    cfg.classes = 10;
    cfg.aux = 0;
    assert_int_equal(ckpt_meta_check_model(&m, &cfg, 1000, err, sizeof err), -1);
    assert_non_null(strstr(err, "auxiliary"));
    cfg.aux = 1;
    assert_int_equal(ckpt_meta_check_model(&m, &cfg, 999, err, sizeof err), -1);
    snprintf(m.arch, sizeof m.arch, "resnet50");
    assert_int_equal(ckpt_meta_check_model(&m, &cfg, 1000, err, sizeof err), -1);
    assert_non_null(strstr(err, "resnet50"));
    /* keys the format defines, or bad characters, cannot be added as extras */
    assert_int_equal(ckpt_meta_add_extra(&m, "step", "1", err, sizeof err), -1);
    assert_int_equal(ckpt_meta_add_extra(&m, "Bad Key", "1", err, sizeof err), -1);
    const char *bad[] = {"ok", "two\nlines"};
    assert_int_equal(ckpt_meta_set_class_names(&m, bad, 2, err, sizeof err), -1);
    ckpt_meta_free(&m);
}

/* A file from another architecture is read (for `ckpt info`) and refused by
 * the model check; one with a different class count likewise. */
static void test_other_arch_file(void **state)
{
    (void)state;
    size_t np = 64;
    float *x = make_floats(np, 3);
    CkptMeta m;
    fill_meta(&m, np);
    snprintf(m.arch, sizeof m.arch, "alexnet");
    char path[300], err[512];
    path_in(path, sizeof path, "alex.gnck");
    assert_int_equal(ckpt_save(path, &m, x, x, x, 1, 0, err, sizeof err), 0);
    CkptMeta got;
    assert_int_equal(ckpt_peek_meta(path, &got, err, sizeof err), 0);
    ModelConfig cfg = model_default_config();
    cfg.classes = 10;
    assert_int_equal(ckpt_meta_check_model(&got, &cfg, np, err, sizeof err), -1);
    assert_non_null(strstr(err, "alexnet"));
    ckpt_meta_free(&got);
    ckpt_meta_free(&m);
    free(x);
}

static void test_file_names(void **state)
{
    (void)state;
    char name[64];
    ckpt_file_name(1234, name, sizeof name);
    assert_string_equal(name, "ckpt-00001234.gnck");
    assert_int_equal(ckpt_file_step(name), 1234);
    ckpt_file_name(123456789012L, name, sizeof name);
    assert_int_equal(ckpt_file_step(name), 123456789012L);
    assert_int_equal(ckpt_file_step("ckpt-.gnck"), -1);
    assert_int_equal(ckpt_file_step("ckpt-12.gnck.tmp"), -1);
    assert_int_equal(ckpt_file_step(".ckpt-00000001.gnck.tmp.1.0"), -1);
    assert_int_equal(ckpt_file_step("ckpt-1x.gnck"), -1);
    assert_int_equal(ckpt_file_step("latest"), -1);
}

/* ckpt_list: checkpoint names only (no temporaries or strays), highest step
 * first whatever the creation order; ckpt_newest_step is its first entry. */
static void test_list(void **state)
{
    (void)state;
    char dir[300], p[400], err[512], name[256];
    path_in(dir, sizeof dir, "listing");
    mkdir(dir, 0755);
    CkptEntry *e = (CkptEntry *)1;
    assert_int_equal(ckpt_list(dir, &e, err, sizeof err), 0);
    assert_null(e);
    assert_int_equal(ckpt_newest_step(dir, name, sizeof name), -1);
    const char *files[] = {"ckpt-00000020.gnck", "ckpt-00000003.gnck", "ckpt-100000000.gnck", "latest",
                           ".ckpt-00000500.gnck.tmp.7.0", "ckpt-00000700.gnck.bak", "ckpt-00000010.gnck"};
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        spit(p, (const uint8_t *)"x", 1); /* contents do not matter to the listing */
    }
    long n = ckpt_list(dir, &e, err, sizeof err);
    assert_int_equal(n, 4);
    long want[] = {100000000, 20, 10, 3};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(e[i].step, want[i]);
        assert_int_equal(ckpt_file_step(e[i].name), want[i]);
    }
    free(e);
    assert_int_equal(ckpt_newest_step(dir, name, sizeof name), 100000000);
    assert_string_equal(name, "ckpt-100000000.gnck");
    assert_int_equal(ckpt_list("/nonexistent-dir", &e, err, sizeof err), -1);
    assert_null(e);
    assert_non_null(strstr(err, "/nonexistent-dir"));
}

/* --resume auto past damaged files: an empty directory, then the newest
 * checkpoint damaged, truncated, and all of them unusable; the `latest`
 * pointer that names a damaged file is reported, not followed. */
static void test_load_latest_falls_back(void **state)
{
    (void)state;
    char dir[300], p[400], err[512], report[2048], found[400];
    float *st = malloc(3 * 1000 * sizeof(float)); /* what a candidate loads into */
#define FIND(d) ckpt_load_latest(d, found, sizeof found, NULL, st, st + 1000, st + 2000, 1000, report, sizeof report, \
                                 err, sizeof err)
    path_in(dir, sizeof dir, "runs");
    mkdir(dir, 0755);
    assert_int_equal(FIND(dir), 0);
    assert_non_null(strstr(report, "no checkpoint"));
    assert_int_equal(FIND("/nonexistent-dir"), -1);
    long steps[] = {100, 200, 300};
    for (int i = 0; i < 3; i++) {
        float *x = make_floats(1000, (uint64_t)i);
        CkptMeta m;
        fill_meta(&m, 1000);
        m.step = steps[i];
        char name[64];
        ckpt_file_name(steps[i], name, sizeof name);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        assert_int_equal(ckpt_save(p, &m, x, x, x, 3, 0, err, sizeof err), 0);
        ckpt_meta_free(&m);
        free(x);
    }
    snprintf(p, sizeof p, "%s/latest", dir);
    spit(p, (const uint8_t *)"ckpt-00000300.gnck\n", 19);
    assert_int_equal(FIND(dir), 1);
    assert_non_null(strstr(found, "ckpt-00000300.gnck"));
    assert_string_equal(report, "");

    /* damage the newest: the previous one is used and the newest named */
    snprintf(p, sizeof p, "%s/ckpt-00000300.gnck", dir);
    size_t len;
    uint8_t *b = slurp(p, &len);
    b[len / 2] ^= 1;
    spit(p, b, len);
    free(b);
    assert_int_equal(FIND(dir), 1);
    assert_non_null(strstr(found, "ckpt-00000200.gnck"));
    assert_non_null(strstr(report, "ckpt-00000300.gnck"));
    assert_non_null(strstr(report, "latest"));
    /* truncate the next one too; a stray file is ignored */
    snprintf(p, sizeof p, "%s/ckpt-00000200.gnck", dir);
    truncate(p, 100);
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    spit(p, (const uint8_t *)"x", 1);
    assert_int_equal(FIND(dir), 1);
    assert_non_null(strstr(found, "ckpt-00000100.gnck"));
    assert_non_null(strstr(report, "ckpt-00000200.gnck"));
    snprintf(p, sizeof p, "%s/ckpt-00000100.gnck", dir);
    truncate(p, 0);
    assert_int_equal(FIND(dir), 0);
    assert_non_null(strstr(report, "none of the 3"));
#undef FIND
    free(st);
}

/* --resume auto's load: each candidate read once, a damaged newest one
 * skipped, the older one's three sections loaded bit for bit; a sound file of
 * another model stops the search instead of falling back past it. */
static void test_load_latest(void **state)
{
    (void)state;
    char dir[300], p[400], err[512], report[2048], found[400];
    path_in(dir, sizeof dir, "load-latest");
    mkdir(dir, 0755);
    const size_t np = 5000;
    float *src[2][3];
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 3; k++) src[i][k] = make_floats(np, (uint64_t)(10 * i + k));
        CkptMeta m;
        fill_meta(&m, np);
        m.step = 100 * (i + 1);
        char name[64];
        ckpt_file_name(m.step, name, sizeof name);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        assert_int_equal(ckpt_save(p, &m, src[i][0], src[i][1], src[i][2], 3, 0, err, sizeof err), 0);
        ckpt_meta_free(&m);
    }
    float *w = malloc(np * 4), *mo = malloc(np * 4), *av = malloc(np * 4);
    CkptMeta got;
    assert_int_equal(ckpt_load_latest(dir, found, sizeof found, &got, w, mo, av, np, report, sizeof report, err,
                                      sizeof err), 1);
    assert_non_null(strstr(found, "ckpt-00000200.gnck"));
    assert_int_equal(got.step, 200);
    assert_memory_equal(w, src[1][0], np * 4);
    assert_memory_equal(av, src[1][2], np * 4);
    ckpt_meta_free(&got);

    /* a flipped bit in the newest file's last section (the average, after
     * the weights and momentum that are read first into the buffers): the
     * older checkpoint's bits must replace them all */
    snprintf(p, sizeof p, "%s/ckpt-00000200.gnck", dir);
    size_t len;
    uint8_t *b = slurp(p, &len);
    b[len * 5 / 6] ^= 4;
    spit(p, b, len);
    free(b);
    assert_int_equal(ckpt_load_latest(dir, found, sizeof found, &got, w, mo, av, np, report, sizeof report, err,
                                      sizeof err), 1);
    assert_non_null(strstr(found, "ckpt-00000100.gnck"));
    assert_non_null(strstr(report, "ckpt-00000200.gnck"));
    assert_int_equal(got.step, 100);
    assert_memory_equal(w, src[0][0], np * 4);
    assert_memory_equal(mo, src[0][1], np * 4);
    assert_memory_equal(av, src[0][2], np * 4);
    ckpt_meta_free(&got);

    /* another model's count of parameters: an error naming the file */
    assert_int_equal(ckpt_load_latest(dir, found, sizeof found, &got, w, mo, av, np - 1, report, sizeof report,
                                      err, sizeof err), -1);
    assert_non_null(strstr(err, "parameters"));
    assert_non_null(strstr(err, "give --out"));
    free(w);
    free(mo);
    free(av);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++) free(src[i][k]);
}

/* What a fault hook sees of the directory while the checkpoint is being
 * written: the temporary file's name. */
typedef struct {
    const char *dir;
    char seen[256];
} TmpSpy;

static int spy_tmp(void *ctx, const char *path, uint64_t written)
{
    (void)path;
    (void)written;
    TmpSpy *s = ctx;
    DIR *d = opendir(s->dir);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".tmp.")) snprintf(s->seen, sizeof s->seen, "%s", de->d_name);
    if (d) closedir(d);
    return 0;
}

/* Temporary names are ".<name>.tmp.<pid>.<n>" beside the target (the crash
 * clean-up of ckpt_writer_create and tests/test_signals.sh look for them),
 * a new <n> each time, and the write really uses one. */
static void test_tmp_names(void **state)
{
    (void)state;
    char a[400], b[400], want[400], err[512];
    snprintf(want, sizeof want, "/runs/x/.ckpt-00000005.gnck.tmp.%ld.", (long)getpid());
    assert_int_equal(ckpt_tmp_name("/runs/x/ckpt-00000005.gnck", a, sizeof a), 0);
    assert_int_equal(ckpt_tmp_name("/runs/x/ckpt-00000005.gnck", b, sizeof b), 0);
    assert_int_equal(strncmp(a, want, strlen(want)), 0);
    assert_int_equal(strncmp(b, want, strlen(want)), 0);
    assert_true(strspn(a + strlen(want), "0123456789") == strlen(a + strlen(want)) && a[strlen(want)]);
    assert_string_not_equal(a, b);
    assert_true(ckpt_is_temp_name(strrchr(a, '/') + 1));
    assert_int_equal(ckpt_file_step(strrchr(a, '/') + 1), -1);
    snprintf(want, sizeof want, "./.latest.tmp.%ld.", (long)getpid());
    assert_int_equal(ckpt_tmp_name("latest", a, sizeof a), 0);
    assert_int_equal(strncmp(a, want, strlen(want)), 0);
    assert_int_equal(ckpt_tmp_name("/runs/x/ckpt-00000005.gnck", a, 20), -1);
    assert_false(ckpt_is_temp_name("ckpt-00000005.gnck"));

    char path[300];
    path_in(path, sizeof path, "ckpt-00000042.gnck");
    float *x = make_floats(1000, 3);
    CkptMeta m;
    fill_meta(&m, 1000);
    CkptEncoder e;
    assert_int_equal(ckpt_encoder_init(&e, 3, 0, err, sizeof err), 0);
    TmpSpy spy = {.dir = tmpdir};
    assert_int_equal(ckpt_write_atomic(&e, path, &m, x, x, x, spy_tmp, &spy, NULL, err, sizeof err), 0);
    snprintf(want, sizeof want, ".ckpt-00000042.gnck.tmp.%ld.", (long)getpid());
    assert_int_equal(strncmp(spy.seen, want, strlen(want)), 0);
    snprintf(path, sizeof path, "%s/%s", tmpdir, spy.seen);
    assert_int_equal(access(path, F_OK), -1); /* renamed away */
    ckpt_encoder_free(&e);
    ckpt_meta_free(&m);
    free(x);
}

/* The `latest` pointer: written atomically, read back without its line end
 * (a hand-edited one with \r\n too); missing or empty reads as none. */
static void test_latest_pointer(void **state)
{
    (void)state;
    char dir[300], p[400], name[256], err[512];
    path_in(dir, sizeof dir, "latest-ptr");
    mkdir(dir, 0755);
    assert_int_equal(ckpt_latest_read(dir, name, sizeof name), 0);
    assert_string_equal(name, "");
    assert_int_equal(ckpt_latest_write(dir, "ckpt-00000007.gnck", NULL, NULL, err, sizeof err), 0);
    assert_int_equal(ckpt_latest_read(dir, name, sizeof name), 1);
    assert_string_equal(name, "ckpt-00000007.gnck");
    snprintf(p, sizeof p, "%s/latest", dir);
    size_t len;
    uint8_t *b = slurp(p, &len);
    assert_int_equal(len, strlen("ckpt-00000007.gnck\n"));
    assert_memory_equal(b, "ckpt-00000007.gnck\n", len);
    free(b);
    spit(p, (const uint8_t *)"ckpt-00000009.gnck\r\nmore\n", 25);
    assert_int_equal(ckpt_latest_read(dir, name, sizeof name), 1);
    assert_string_equal(name, "ckpt-00000009.gnck");
    spit(p, (const uint8_t *)"", 0);
    assert_int_equal(ckpt_latest_read(dir, name, sizeof name), 0);
    assert_int_equal(ckpt_latest_write("/nonexistent-dir", "ckpt-00000007.gnck", NULL, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir"));
}

/* A failed save leaves the existing file as it was and no temporary file. */
static void test_save_failure_keeps_old(void **state)
{
    (void)state;
    char path[300], err[512];
    path_in(path, sizeof path, "keep.gnck");
    save_sample(path, 1000, 1, NULL);
    size_t len;
    uint8_t *before = slurp(path, &len);
    float *x = make_floats(1000, 2);
    CkptMeta m;
    fill_meta(&m, 1000);
    m.num_params = 0;
    assert_int_equal(ckpt_save(path, &m, x, x, x, 3, 0, err, sizeof err), -1);
    m.num_params = 1000;
    assert_int_equal(ckpt_save(path, &m, x, x, x, 99, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "zstd level"));
    free(m.extra);
    m.extra = strdup("no equals sign\n");
    assert_int_equal(ckpt_save(path, &m, x, x, x, 3, 0, err, sizeof err), -1);
    assert_non_null(strstr(err, "not key=value"));
    free(m.extra);
    m.extra = strdup("step=5\n");
    assert_int_equal(ckpt_save(path, &m, x, x, x, 3, 0, err, sizeof err), -1);
    size_t len2;
    uint8_t *after = slurp(path, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(before, after, len);
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while ((de = readdir(d))) assert_null(strstr(de->d_name, ".tmp."));
    closedir(d);
    ckpt_meta_free(&m);
    free(x);
    free(before);
    free(after);
}

static void test_npy(void **state)
{
    (void)state;
    char path[300], err[512];
    path_in(path, sizeof path, "w.npy");
    size_t n = 12345, got_n = 0;
    float *x = make_floats(n, 77);
    assert_int_equal(ckpt_npy_write(path, x, n, err, sizeof err), 0);
    size_t len;
    uint8_t *b = slurp(path, &len);
    assert_memory_equal(b, "\x93NUMPY\x01\x00", 8);
    size_t hlen = b[8] | (size_t)b[9] << 8;
    assert_int_equal((10 + hlen) % 64, 0);
    assert_int_equal(len, 10 + hlen + n * 4);
    assert_non_null(memmem(b, 10 + hlen, "'descr': '<f4'", 14));
    float *y = ckpt_npy_read(path, &got_n, err, sizeof err);
    assert_non_null(y);
    assert_int_equal(got_n, n);
    assert_memory_equal(x, y, n * 4);
    free(y);

    /* bad files: each refused with its reason */
    spit(path, b, len - 3);
    assert_null(ckpt_npy_read(path, &got_n, err, sizeof err));
    assert_non_null(strstr(err, "truncated"));
    uint8_t *c = malloc(len);
    memcpy(c, b, len);
    memcpy(memmem(c, 10 + hlen, "<f4", 3), "<f8", 3);
    spit(path, c, len);
    assert_null(ckpt_npy_read(path, &got_n, err, sizeof err));
    assert_non_null(strstr(err, "float32"));
    memcpy(c, b, len);
    char *shape = memmem(c, 10 + hlen, "(12345,)", 8);
    memcpy(shape, "(5,2469)", 8);
    spit(path, c, len);
    assert_null(ckpt_npy_read(path, &got_n, err, sizeof err));
    assert_non_null(strstr(err, "1-D"));
    memcpy(c, b, len);
    c[0] = 'X';
    spit(path, c, len);
    assert_null(ckpt_npy_read(path, &got_n, err, sizeof err));
    assert_non_null(strstr(err, "not a NumPy"));
    memcpy(c, b, len);
    c[8] = 0xff;
    c[9] = 0xff;
    spit(path, c, len);
    assert_null(ckpt_npy_read(path, &got_n, err, sizeof err));
    spit(path, c, 7);
    assert_null(ckpt_npy_read(path, &got_n, err, sizeof err));
    free(c);
    free(b);
    free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_bitwise),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_bit_flip_every_byte),
        cmocka_unit_test(test_bit_flip_names_section),
        cmocka_unit_test(test_damage_names_region),
        cmocka_unit_test(test_magic_and_versions),
        cmocka_unit_test(test_model_check),
        cmocka_unit_test(test_other_arch_file),
        cmocka_unit_test(test_file_names),
        cmocka_unit_test(test_list),
        cmocka_unit_test(test_load_latest_falls_back),
        cmocka_unit_test(test_load_latest),
        cmocka_unit_test(test_tmp_names),
        cmocka_unit_test(test_latest_pointer),
        cmocka_unit_test(test_save_failure_keeps_old),
        cmocka_unit_test(test_npy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
