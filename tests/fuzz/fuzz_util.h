/* fuzz_util.h: what the fuzz targets in tests/fuzz/ share: a private scratch
 * directory for the files a parser reads, checks that abort (so libFuzzer
 * records the input), and a hash of the input that picks settings.
 *
 * The targets are built two ways: with clang and -fsanitize=fuzzer (make
 * fuzz), and with the project's compiler and replay.c as main (make test
 * replays every kept input). Nothing here may depend on which. Test code only.
 */
#ifndef TESTS_FUZZ_FUZZ_UTIL_H
#define TESTS_FUZZ_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Every target defines fuzz_target. LLVMFuzzerTestOneInput, libFuzzer's entry
 * point (fuzz_util.c), runs it under a limit of FUZZ_CPU_SECONDS of CPU time:
 * an input over it aborts as a hang. CPU time, not wall time (libFuzzer's
 * -timeout, which make fuzz sets to 10 s as a backstop), because the cores are
 * shared: a busy machine must not turn a slow input into a finding. */
#define FUZZ_CPU_SECONDS 1
void fuzz_target(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

/* A directory of this process, created on first use under $TMPDIR (or /tmp)
 * and removed at exit. */
const char *fuzz_dir(void);

/* out = fuzz_dir() + "/" + the formatted name. */
void fuzz_path(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes (replacing) a file, creates a directory (and its parents); abort on
 * failure: the harness, not the input, is broken then. */
void fuzz_write(const char *path, const void *data, size_t len);
void fuzz_mkdirs(const char *path);
void fuzz_rmtree(const char *path);

/* A property of the code under test that must hold whatever the input:
 * prints what and aborts, which libFuzzer and the replay report as a crash. */
#define FUZZ_CHECK(cond, ...) \
    do { \
        if (!(cond)) fuzz_fail(__FILE__, __LINE__, __VA_ARGS__); \
    } while (0)
_Noreturn void fuzz_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* 64-bit hash of the input: settings drawn from it change with every
 * mutation, and a kept input always replays with the same ones. */
uint64_t fuzz_hash(const uint8_t *data, size_t len);

#endif
