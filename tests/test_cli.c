/* test_cli.c: trainer/cli (the CLI_U64 kind, the help hook, a shown default),
 * trainer_usage_error (printf-style, printed once, exit code 2) and the man
 * page writer of trainer/man.c on a made-up command table: its roff escaping,
 * its walk of a command with a table and of one with actions, and the errors
 * of a command that shows neither or whose --help fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "trainer/cli.h"
#include "trainer/commands.h"
#include "trainer/man.h"
#include "trainer/runtime.h"

/* Parses one flag of a one-flag table; returns cli_parse's status. */
static int parse_one(CliFlag *f, const char *arg, char *err, size_t errlen)
{
    char *argv[] = {(char *)arg};
    int help = 0;
    return cli_parse(f, 1, 1, argv, NULL, 0, NULL, &help, err, errlen);
}

static void test_u64(void **state)
{
    (void)state;
    uint64_t seed = 7;
    CliFlag f = {"--seed", CLI_U64, &seed, "seed"};
    char err[256];
    assert_int_equal(parse_one(&f, "--seed=18446744073709551615", err, sizeof err), 0);
    assert_true(seed == UINT64_MAX);
    /* past 2^53 every bit is kept (a double would round this one) */
    assert_int_equal(parse_one(&f, "--seed=9007199254740993", err, sizeof err), 0);
    assert_true(seed == 9007199254740993ULL);
    assert_int_equal(parse_one(&f, "--seed=0", err, sizeof err), 0);
    assert_true(seed == 0);
    const char *bad[] = {"--seed=-1", "--seed=18446744073709551616", "--seed=1e3", "--seed=", "--seed= 7", "--seed=+3", "--seed=0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        seed = 42;
        assert_int_equal(parse_one(&f, bad[i], err, sizeof err), -1);
        assert_non_null(strstr(err, "--seed expects a whole number"));
        assert_true(seed == 42);
    }
    /* a range is checked in integers */
    CliFlag r = {"--seed", CLI_U64, &seed, "seed", NULL, 0, 9.2e18};
    assert_int_equal(parse_one(&r, "--seed=9200000000000000000", err, sizeof err), 0);
    assert_int_equal(parse_one(&r, "--seed=9200000000000000001", err, sizeof err), -1);
    assert_string_equal(err, "--seed must be in [0, 9200000000000000000], got 9200000000000000001");
    /* CLI_SEED_MAX is the whole of uint64_t */
    CliFlag whole = {"--seed", CLI_U64, &seed, "seed", NULL, 0, CLI_SEED_MAX};
    assert_int_equal(parse_one(&whole, "--seed=18446744073709551615", err, sizeof err), 0);
    assert_true(seed == UINT64_MAX);

    char v[64], settings[128];
    seed = UINT64_MAX;
    cli_format_value(&f, v, sizeof v);
    assert_string_equal(v, "18446744073709551615");
    assert_true(cli_settings_format(&f, 1, settings, sizeof settings) > 0);
    assert_int_equal(cli_settings_get(settings, "--seed", v, sizeof v), 1);
    assert_string_equal(v, "18446744073709551615");
    assert_string_equal(cli_flag_metavar(&f), "N");
}

static int hook_calls;
static const CliFlag *hook_flags;
static void hook(void *ctx, const char *usage, const char *summary, const CliFlag *flags, int nflags)
{
    (void)summary;
    assert_ptr_equal(ctx, &hook_calls);
    assert_string_equal(usage, "googlenet x [flags]");
    assert_int_equal(nflags, 2);
    hook_flags = flags;
    hook_calls++;
}

static char *help_text(const CliFlag *flags, int n)
{
    static char buf[2048];
    FILE *f = tmpfile();
    cli_print_help(f, "googlenet x [flags]", "sum", flags, n);
    rewind(f);
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

static void test_help_hook_and_shown_default(void **state)
{
    (void)state;
    int threads = 2, quiet = 0;
    CliFlag flags[] = {
        {"--threads", CLI_INT, &threads, "compute threads", NULL, 1, 256, NULL, NULL, "this machine's cores"},
        {"--quiet", CLI_BOOL, &quiet, "say less"},
    };
    cli_set_help_hook(hook, &hook_calls);
    assert_string_equal(help_text(flags, 2), "");
    assert_int_equal(hook_calls, 1);
    assert_ptr_equal(hook_flags, flags);
    cli_set_help_hook(NULL, NULL);
    const char *t = help_text(flags, 2);
    assert_int_equal(hook_calls, 1);
    assert_non_null(strstr(t, "--threads N"));
    assert_non_null(strstr(t, "compute threads [default: this machine's cores]\n"));
    assert_null(strstr(t, "[default: 2]"));
    assert_non_null(strstr(t, "  --quiet                    say less [default: off]\n"));
    /* the value itself is still what a run records */
    char settings[128];
    cli_settings_format(flags, 2, settings, sizeof settings);
    assert_string_equal(settings, "--threads=2 --quiet=off");
}

/* stderr while fn runs. */
static char *stderr_of(int (*fn)(void), int *rc)
{
    static char buf[1024];
    FILE *f = tmpfile();
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(f), STDERR_FILENO);
    *rc = fn();
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(f);
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

static int usage_mean(void) { return trainer_usage_error("train", "--mean takes R,G,B or one number, got '%s'", "1,2"); }
static int usage_plain(void) { return trainer_usage_error("pack", "--data DIR is required"); }
static int usage_numbers(void) { return trainer_usage_error("train", "%d flags, %s", 3, "one line"); }

static void test_usage_error(void **state)
{
    (void)state;
    int rc = -1;
    unsetenv("OMPI_COMM_WORLD_RANK");
    assert_string_equal(stderr_of(usage_mean, &rc), "googlenet train: --mean takes R,G,B or one number, got '1,2'\n");
    assert_int_equal(rc, EXIT_USAGE);
    assert_string_equal(stderr_of(usage_plain, &rc), "googlenet pack: --data DIR is required\n");
    assert_int_equal(rc, EXIT_USAGE);
    assert_string_equal(stderr_of(usage_numbers, &rc), "googlenet train: 3 flags, one line\n");
    /* another rank of the job says nothing, and fails the same way */
    setenv("OMPI_COMM_WORLD_RANK", "1", 1);
    assert_string_equal(stderr_of(usage_mean, &rc), "");
    assert_int_equal(rc, EXIT_USAGE);
    unsetenv("OMPI_COMM_WORLD_RANK");
}

static char *roff(const char *s, int keep_indent)
{
    static char *buf;
    size_t len;
    free(buf);
    FILE *f = open_memstream(&buf, &len);
    man_roff_text(f, s, keep_indent);
    fclose(f);
    return buf;
}

static void test_man_roff(void **state)
{
    (void)state;
    assert_string_equal(roff("--val-labels, data-parallel, -np 2, 2e-4", 0),
                        "\\-\\-val\\-labels, data-parallel, \\-np 2, 2e-4\n");
    assert_string_equal(roff("a\\b\n.dot\n'quote\n  indented\n\nnext", 0),
                        "a\\eb\n\\&.dot\n\\&'quote\nindented\n.PP\nnext\n");
    assert_string_equal(roff("usage: x\n       y --z", 1), "usage: x\n       y \\-\\-z\n");
}

/* A made-up program: "tab" has a table, "disp" has actions, "none" neither,
 * "bad" fails its --help. */
static int fake_tab(int argc, char **argv)
{
    static int batch = 32, quiet;
    static const char *mode = "fast";
    CliFlag flags[] = {
        {"--batch", CLI_INT, &batch, "images per batch", NULL, 1, 64, NULL, "--bs"},
        {"--mode", CLI_CHOICE, &mode, "how", "fast|slow"},
        {"--quiet", CLI_BOOL, &quiet, ".less output"},
    };
    int help = 0;
    char err[128];
    if (cli_parse(flags, CLI_COUNT(flags), argc, argv, NULL, 0, NULL, &help, err, sizeof err) != 0) return EXIT_USAGE;
    if (help) cli_print_help(stdout, "googlenet tab [flags]", "Does tab things.\n\nTwice.", flags, CLI_COUNT(flags));
    return EXIT_OK;
}

static int fake_disp(int argc, char **argv)
{
    if (argc == 1) {
        printf("usage: googlenet disp <action>\n\nactions:\n  one      the first action\n  two      the second\n");
        return EXIT_OK;
    }
    static uint64_t seed = 5;
    CliFlag flags[] = {{"--seed", CLI_U64, &seed, "seed"}, {"--out", CLI_STR, NULL, "output", NULL, 0, 0, "FILE"}};
    static const char *out;
    flags[1].dst = &out;
    int help = 0;
    char err[128];
    if (cli_parse(flags, CLI_COUNT(flags), argc - 1, argv + 1, NULL, 0, NULL, &help, err, sizeof err) != 0) return EXIT_USAGE;
    if (help) cli_print_help(stdout, strcmp(argv[0], "one") == 0 ? "googlenet disp one" : "googlenet disp two", "", flags, 2);
    return EXIT_OK;
}

static int fake_none(int argc, char **argv) { (void)argc, (void)argv; printf("nothing to see\n"); return EXIT_OK; }
static int fake_bad(int argc, char **argv) { (void)argc, (void)argv; return EXIT_FAIL; }

static const ManExitCode codes[] = {{0, "done"}, {2, "a bad flag"}};
static const ManText text = {"do things", "A program.", codes, 2};

static char *page_of(const Command *cmds, int n, int *rc, char *err, size_t errlen)
{
    static char *buf;
    size_t len;
    free(buf);
    FILE *f = open_memstream(&buf, &len);
    *rc = man_write(f, cmds, n, &text, err, errlen);
    fclose(f);
    return buf;
}

static void test_man_write(void **state)
{
    (void)state;
    const Command cmds[] = {{"tab", fake_tab, "a command with flags"}, {"disp", fake_disp, "a command with actions"}};
    char err[256] = "";
    int rc;
    char *page = page_of(cmds, 2, &rc, err, sizeof err);
    assert_int_equal(rc, 0);
    const char *want[] = {
        ".TH GOOGLENET 1 \"\" \"googlenet\" \"User Commands\"\n",
        ".SH NAME\ngooglenet \\- do things\n",
        ".SS \"googlenet tab\"\na command with flags\n.PP\n.nf\ngooglenet tab [flags]\n.fi\n",
        ".TP\n\\fB\\-\\-batch\\fR \\fIN\\fR\nimages per batch [default: 32] (also \\-\\-bs)\n",
        ".TP\n\\fB\\-\\-mode\\fR \\fIfast|slow\\fR\nhow [default: fast]\n",
        ".TP\n\\fB\\-\\-quiet\\fR\n\\&.less output [default: off]\n",
        ".PP\nDoes tab things.\n.PP\nTwice.\n",
        ".SS \"googlenet disp\"\na command with actions\n",
        ".TP\n.B one\nthe first action\n.TP\n.B two\nthe second\n",
        ".SS \"googlenet disp one\"\nthe first action\n.PP\n.nf\ngooglenet disp one\n.fi\n",
        ".SS \"googlenet disp two\"\nthe second\n",
        ".TP\n\\fB\\-\\-seed\\fR \\fIN\\fR\nseed [default: 5]\n.TP\n\\fB\\-\\-out\\fR \\fIFILE\\fR\noutput\n",
        ".SH \"EXIT STATUS\"\n.TP\n.B 0\ndone\n.TP\n.B 2\na bad flag\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(page, want[i])) fail_msg("the page lacks:\n%s\n--- page:\n%s", want[i], page);
    }
    /* the commands' order, and no date: the same tables give the same bytes */
    assert_true(strstr(page, "googlenet tab\"") < strstr(page, "googlenet disp\""));
    char *again = strdup(page);
    assert_string_equal(page_of(cmds, 2, &rc, err, sizeof err), again);
    free(again);

    const Command none[] = {{"none", fake_none, "x"}};
    page_of(none, 1, &rc, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "'googlenet none --help' shows neither a flag table nor actions");
    const Command bad[] = {{"tab", fake_tab, "x"}, {"bad", fake_bad, "y"}};
    page_of(bad, 2, &rc, err, sizeof err);
    assert_int_equal(rc, -1);
    assert_string_equal(err, "'googlenet bad --help' exited 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64),       cmocka_unit_test(test_help_hook_and_shown_default),
        cmocka_unit_test(test_usage_error), cmocka_unit_test(test_man_roff),
        cmocka_unit_test(test_man_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
