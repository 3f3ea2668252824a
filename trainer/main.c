/* main.c: the entry point of bin/googlenet: picks the subcommand and makes sure
 * OpenBLAS runs the GEMM kernels the CPU supports. All work is in trainer/cmd/;
 * `googlenet help --man` writes the man page from the same command table. */
#include <cblas.h>
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "comm/comm.h"
#include "nn/kernels/kernels.h"
#include "trainer/ckpt/ckpt.h"
#include "trainer/cli.h"
#include "trainer/commands.h"
#include "trainer/man.h"
#include "version.h" /* GOOGLENET_REVISION, written by the Makefile */

char *openblas_get_corename(void);

static const Command commands[] = {
    {"train", cmd_train, "train GoogLeNet data-parallel (run under mpirun -np N)"},
    {"eval", cmd_eval, "evaluate checkpoints with 1, 10 or 144 crops, alone or as an ensemble"},
    {"predict", cmd_predict, "classify images with a checkpoint: top classes and probabilities"},
    {"bench", cmd_bench, "time training or inference steps on random data"},
    {"bench-loader", cmd_bench_loader, "time decoding and augmentation of a dataset"},
    {"pack", cmd_pack, "pack an image tree into shard files for cluster file systems"},
    {"ckpt", cmd_ckpt, "inspect, verify, export and import checkpoints"},
};

static const char description[] = "GoogLeNet (Szegedy et al. 2015, Caffe's bvlc_googlenet) trained data-parallel over MPI.";

static const ManExitCode exit_codes[] = {
    {EXIT_OK, "done"},
    {EXIT_FAIL, "a run-time error (one line on stderr)"},
    {EXIT_USAGE, "a bad flag or an impossible combination"},
    {EXIT_PREEMPTED, "training stopped by a signal after a checkpoint (continue with --resume auto)"},
};

/* OpenBLAS picks its kernels from CPUID when the library loads. Under some
 * hypervisors it does not recognise the CPU and falls back to "Prescott" (SSE3)
 * kernels, 3-6x slower than the AVX2/AVX-512 ones the CPU runs. The choice is
 * made before main(), so the only remedy is to set OPENBLAS_CORETYPE and
 * re-execute once. A value the user set is always respected. */
static const char *blas_target_for_cpu(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return NULL;
    int osxsave = (c >> 27) & 1, fma = (c >> 12) & 1;
    if (!osxsave) return NULL;
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    int ymm_os = (xlo & 6) == 6, zmm_os = (xlo & 0xe6) == 0xe6;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return NULL;
    int avx2 = (b >> 5) & 1, avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1,
        avx512vl = (b >> 31) & 1, amx_tile = (d >> 24) & 1;
    unsigned a1 = 0, b1, c1, d1;
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    int avx512bf16 = (a1 >> 5) & 1;
    if (zmm_os && avx512f && avx512bw && avx512vl) {
        if (amx_tile && avx512bf16) return "SapphireRapids";
        if (avx512bf16) return "Cooperlake";
        return "SkylakeX";
    }
    if (ymm_os && avx2 && fma) return "Haswell";
    return NULL;
}

static void blas_fix_coretype(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("GOOGLENET_BLAS_CHECKED")) return;
    const char *core = openblas_get_corename();
    static const char *weak[] = {"Prescott", "Core2", "Penryn", "Dunnington", "Nehalem",
                                 "Atom", "Katmai", "Coppermine", "Northwood", "Banias",
                                 "Sandybridge", "Barcelona", "Bulldozer", "Piledriver",
                                 "unknown"};
    int is_weak = 0;
    for (size_t i = 0; i < sizeof weak / sizeof weak[0]; i++)
        if (core && strcmp(core, weak[i]) == 0) is_weak = 1;
    const char *target = blas_target_for_cpu();
    if (!is_weak || !target) return;
    setenv("OPENBLAS_CORETYPE", target, 1);
    setenv("GOOGLENET_BLAS_CHECKED", "1", 1);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels rather than not at all */
}

/* GOOGLENET_SIMD picks the table of SIMD kernels (nn/kernels/kernels.h); one
 * this CPU cannot run is named, not silently replaced. */
static void simd_check(void)
{
    const char *want = getenv("GOOGLENET_SIMD");
    if (!want || !*want) return;
    const char *got = nn_kernels()->name;
    if (strcmp(want, got) != 0)
        fprintf(stderr, "googlenet: GOOGLENET_SIMD=%s is not a kernel table this CPU runs (avx2%s); using %s\n",
                want, nn_kernels_supported("avx512") ? ", avx512" : "", got);
}

static void print_usage(FILE *f)
{
    fprintf(f, "usage: googlenet <command> [flags]     (googlenet help <command>, or <command> --help, for its flags)\n"
               "       googlenet --version\n\n%s\n\ncommands:\n", description);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-14s %s\n", commands[i].name, commands[i].summary);
    /* the exit codes as one paragraph, wrapped before column 100 */
    int col = fprintf(f, "\nexit codes:") - 1;
    for (size_t i = 0; i < sizeof exit_codes / sizeof exit_codes[0]; i++) {
        char item[160];
        snprintf(item, sizeof item, "%d %s%s", exit_codes[i].code, exit_codes[i].meaning,
                 i + 1 < sizeof exit_codes / sizeof exit_codes[0] ? "," : "");
        for (char *w = strtok(item, " "); w; w = strtok(NULL, " ")) {
            if (col + 1 + (int)strlen(w) > 98) col = fprintf(f, "\n%s", w) - 1;
            else col += fprintf(f, " %s", w);
        }
    }
    fputc('\n', f);
}

/* `googlenet help --man`: the man page, docs/googlenet.1 (make man). */
static int print_man(void)
{
    ManText text = {"train GoogLeNet data-parallel over MPI, evaluate it and use its checkpoints", description,
                    exit_codes, (int)(sizeof exit_codes / sizeof exit_codes[0])};
    char err[512];
    if (man_write(stdout, commands, (int)(sizeof commands / sizeof commands[0]), &text, err, sizeof err) != 0) {
        fprintf(stderr, "googlenet help --man: %s\n", err);
        return EXIT_FAIL;
    }
    return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

/* What a bug report needs: the revision and the libraries it runs with. */
static void print_version(void)
{
    char mpi[256];
    comm_library_version(mpi, sizeof mpi);
    printf("googlenet %s\n", GOOGLENET_REVISION);
    printf("  checkpoints  writes format %d.%d (%d.%d when slim), reads %d.x\n", CKPT_VERSION_MAJOR,
           CKPT_VERSION_MINOR, CKPT_VERSION_MAJOR, CKPT_VERSION_MINOR_SLIM, CKPT_VERSION_MAJOR);
    printf("  MPI          %s\n", mpi);
    printf("  OpenBLAS     %s (kernels %s)\n", openblas_get_config(), openblas_get_corename());
    printf("  Zstandard    %s\n", ZSTD_versionString());
    printf("  SIMD         %s kernels\n", nn_kernels()->name);
}

/* `googlenet help CMD [ACTION]` is `googlenet CMD [ACTION] --help`. */
static int run_help(int argc, char **argv, const Command *cmds, int n)
{
    if (argc < 3) {
        print_usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[2], "--man") == 0) return print_man();
    for (int i = 0; i < n; i++)
        if (strcmp(argv[2], cmds[i].name) == 0) {
            char *args[8];
            int k = 0;
            for (int j = 3; j < argc && k < 6; j++) args[k++] = argv[j];
            args[k++] = "--help";
            args[k] = NULL;
            return cmds[i].run(k, args);
        }
    fprintf(stderr, "googlenet help: unknown command '%s'; run 'googlenet help' for the list\n", argv[2]);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    blas_fix_coretype(argv);
    simd_check();
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        print_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    int n = (int)(sizeof commands / sizeof commands[0]);
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        print_version();
        return EXIT_OK;
    }
    if (strcmp(argv[1], "help") == 0) return run_help(argc, argv, commands, n);
    const char *names[16];
    for (int i = 0; i < n; i++) {
        names[i] = commands[i].name;
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    }
    const char *near = cli_closest(argv[1], names, n);
    if (near) fprintf(stderr, "googlenet: unknown command '%s'; did you mean '%s'?\n", argv[1], near);
    else fprintf(stderr, "googlenet: unknown command '%s'; run 'googlenet --help' for the list\n", argv[1]);
    return EXIT_USAGE;
}
