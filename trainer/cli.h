/* cli.h: the command-line flags of every subcommand, declared as a table.
 *
 * A subcommand lists its flags (name, type, destination, help, range); cli_parse
 * fills the destinations, checks ranges and choices, and on a bad flag writes one
 * line naming it and the closest valid flag. The destination's value before
 * parsing is the default that --help shows. This file parses; it never exits.
 */
#ifndef TRAINER_CLI_H
#define TRAINER_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    CLI_INT,     /* int *          */
    CLI_LONG,    /* long *         */
    CLI_U64,     /* uint64_t *, 0 .. 2^64-1 (seeds): no sign, no rounding through double */
    CLI_FLOAT,   /* double *       */
    CLI_STR,     /* const char **  */
    CLI_BOOL,    /* int *, set to 1 by the bare flag */
    CLI_CHOICE,  /* const char **, one of `choices` ("a|b|c") */
    CLI_STR_LIST /* CliStrList *, the flag may repeat */
} CliType;

#define CLI_LIST_MAX 64
typedef struct {
    const char *items[CLI_LIST_MAX];
    int n;
} CliStrList;

typedef struct {
    const char *name;    /* with its dashes: "--batch" */
    CliType type;
    void *dst;
    const char *help;
    const char *choices; /* CLI_CHOICE: "step|poly|cosine" */
    double min, max;     /* numeric range, checked when min < max */
    const char *metavar; /* shown in help: "N", "FILE"; NULL picks one from the type */
    const char *alias;   /* an older name of the flag, still accepted: "--filter" */
    /* What --help and the man page show as the default instead of the value,
     * for a default the machine decides ("this node's cores"), so that the
     * generated reference is the same on every machine. NULL: the value. */
    const char *shown_default;
    int given;           /* set by cli_parse: the flag was on the command line */
} CliFlag;

/* Limits shared by every command that has the flag, so that one option has
 * one range everywhere. */
#define CLI_BATCH_MAX 65536    /* --batch, --eval-batch */
#define CLI_CROP_MAX 4096      /* --crop (the smallest is model_min_crop) */
#define CLI_THREADS_MAX 256    /* --threads, --workers */
#define CLI_CLASSES_MAX 1000000
#define CLI_SEED_MAX 18446744073709551615.0 /* the whole of uint64_t */
#define CLI_TIMEOUT_MAX 1e9
#define CLI_LEVEL_MIN -7       /* --ckpt-level: Zstandard's range */
#define CLI_LEVEL_MAX 19
#define CLI_ZSTD_THREADS_MAX 64 /* --ckpt-threads */
#define CLI_INTERP_CHOICES "random|nearest|bilinear|bicubic|area|lanczos"

/* Parses argv[0..argc) (argv[0] is the first flag, not the program name).
 * Arguments that are not flags are collected into positional[0..*npositional)
 * up to max_positional. Returns 0, or -1 with a one-line message in err.
 * "--help" / "-h" sets *want_help and returns 0. */
int cli_parse(CliFlag *flags, int nflags, int argc, char **argv,
              const char **positional, int max_positional, int *npositional,
              int *want_help, char *err, size_t errlen);

/* "usage" is the first line ("googlenet train [flags]"), "summary" a paragraph.
 * While a help hook is set (cli_set_help_hook), the table goes to the hook and
 * nothing is printed. */
void cli_print_help(FILE *f, const char *usage, const char *summary,
                    const CliFlag *flags, int nflags);

/* Receives what cli_print_help would print: how the man page generator
 * (trainer/man.c) walks every command's own table instead of a copy of it. */
typedef void (*CliHelpHook)(void *ctx, const char *usage, const char *summary,
                            const CliFlag *flags, int nflags);
/* Sets the hook; NULL restores printing. Not thread-safe: for main's thread. */
void cli_set_help_hook(CliHelpHook hook, void *ctx);

/* The metavar --help shows for a flag ("N", "FILE", the choices; "" for a
 * bare flag), and its default as shown ("" when there is none to show). */
const char *cli_flag_metavar(const CliFlag *f);
void cli_flag_default(const CliFlag *f, char *out, size_t len);

/* The candidate nearest to `word` by edit distance, or NULL when none is close. */
const char *cli_closest(const char *word, const char *const *candidates, int n);

/* Whether flag `name` was given to the last cli_parse of this table. */
int cli_given(const CliFlag *flags, int nflags, const char *name);

/* The flag's current value as text ("32", "0.01", "on", "" for an unset
 * string); the form --help shows as the default. */
void cli_format_value(const CliFlag *f, char *out, size_t len);
/* Every flag of the table with its current value, "--batch=32 --crop=224 ...":
 * what a run was started with, to be recorded and compared later (a value's
 * '%', ' ' and control bytes are written %XX). Returns the length, or -1 when
 * it does not fit in len. */
int cli_settings_format(const CliFlag *flags, int nflags, char *out, size_t len);
/* The value of `name` in a string made by cli_settings_format, unescaped, into
 * out[len]: 1 when present, 0 when absent. */
int cli_settings_get(const char *settings, const char *name, char *out, size_t len);

#define CLI_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

#endif
