/* man.c: the man page from the commands' flag tables (see man.h). Each command
 * prints its help while stdout is a temporary file, so the page itself is
 * assembled in memory and written once at the end. */
#include "trainer/man.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/cli.h"

typedef struct {
    FILE *page;        /* open_memstream: stdout is not ours while a command runs */
    const char *title; /* "train", "ckpt info": whose help is being walked */
    int tables;        /* tables the hook has received for title */
} Man;

/* A dash inside an option ("--val-labels", "-np") is the ASCII minus \- that a
 * reader can copy; one between words ("data-parallel") stays a hyphen. */
static int in_option(const char *s, const char *p)
{
    const char *q = p;
    while (q > s && (isalnum((unsigned char)q[-1]) || q[-1] == '-' || q[-1] == '_')) q--;
    return *q == '-';
}

/* The character *p of text s, escaped. */
static void roff_char(FILE *f, const char *s, const char *p)
{
    if (*p == '\\') fputs("\\e", f);
    else if (*p == '-' && in_option(s, p)) fputs("\\-", f);
    else fputc(*p, f);
}

/* Text inside a line (a flag's name, its metavar): no line handling. */
static void roff_inline(FILE *f, const char *s)
{
    for (const char *p = s; *p; p++) roff_char(f, s, p);
}

void man_roff_text(FILE *f, const char *s, int keep_indent)
{
    int line_start = 1;
    for (const char *p = s; *p; p++) {
        if (line_start) {
            if (!keep_indent)
                while (*p == ' ' || *p == '\t') p++;
            if (*p == '\0') break;
            if (*p == '\n') {
                /* an empty line of a filled paragraph starts a new one */
                fputs(keep_indent ? "\n" : ".PP\n", f);
                continue;
            }
            if (*p == '.' || *p == '\'') fputs("\\&", f);
            line_start = 0;
        }
        roff_char(f, s, p);
        if (*p == '\n') line_start = 1;
    }
    if (!line_start) fputc('\n', f);
}

/* One flag as a tagged paragraph: the name and metavar, then the help with
 * the default and the older name, as --help shows them. */
static void man_flag(FILE *f, const CliFlag *fl)
{
    const char *mv = cli_flag_metavar(fl);
    char def[256];
    cli_flag_default(fl, def, sizeof def);
    fputs(".TP\n\\fB", f);
    roff_inline(f, fl->name);
    fputs("\\fR", f);
    if (*mv) {
        fputs(" \\fI", f);
        roff_inline(f, mv);
        fputs("\\fR", f);
    }
    fputc('\n', f);
    char tail[512];
    int at = snprintf(tail, sizeof tail, "%s", fl->help ? fl->help : "");
    if (def[0] && at >= 0 && (size_t)at < sizeof tail) at += snprintf(tail + at, sizeof tail - (size_t)at, " [default: %s]", def);
    if (fl->alias && at >= 0 && (size_t)at < sizeof tail) snprintf(tail + at, sizeof tail - (size_t)at, " (also %s)", fl->alias);
    man_roff_text(f, tail, 0);
}

/* The help hook: one command's (or action's) usage, summary and flags. */
static void man_table(void *ctx, const char *usage, const char *summary, const CliFlag *flags, int nflags)
{
    Man *m = ctx;
    FILE *f = m->page;
    m->tables++;
    fputs(".PP\n.nf\n", f);
    man_roff_text(f, usage, 1);
    fputs(".fi\n", f);
    if (summary && *summary) {
        fputs(".PP\n", f);
        man_roff_text(f, summary, 0);
    }
    for (int i = 0; i < nflags; i++) man_flag(f, &flags[i]);
}

/* Runs cmd with args while the hook collects tables and stdout goes to a
 * temporary file; *text receives what the command printed (malloc'd). */
static int man_run(Man *m, const Command *c, char **args, int nargs, char **text, char *err, size_t errlen)
{
    *text = NULL;
    FILE *tmp = tmpfile();
    int saved = dup(STDOUT_FILENO);
    if (!tmp || saved < 0) {
        snprintf(err, errlen, "cannot capture the help of %s: no temporary file", m->title);
        if (tmp) fclose(tmp);
        return -1;
    }
    fflush(stdout);
    dup2(fileno(tmp), STDOUT_FILENO);
    cli_set_help_hook(man_table, m);
    int rc = c->run(nargs, args);
    cli_set_help_hook(NULL, NULL);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    long len = ftell(tmp);
    char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
    size_t got = 0;
    if (buf) {
        rewind(tmp);
        got = fread(buf, 1, (size_t)len, tmp);
        buf[got] = '\0';
    }
    fclose(tmp);
    if (!buf) {
        snprintf(err, errlen, "cannot read back the help of %s", m->title);
        return -1;
    }
    *text = buf;
    if (rc != EXIT_OK) {
        snprintf(err, errlen, "'googlenet %s --help' exited %d", m->title, rc);
        return -1;
    }
    return 0;
}

/* The actions a dispatching command lists after "actions:" in its --help, as
 * "  NAME  summary" lines, into names[] and summaries[] (pointers into text,
 * which is cut into pieces). Returns the count. */
static int man_actions(char *text, char **names, char **summaries, int max)
{
    char *p = strstr(text, "\nactions:\n");
    if (!p) return 0;
    p += strlen("\nactions:\n");
    int n = 0;
    while (n < max && p[0] == ' ' && p[1] == ' ' && isalpha((unsigned char)p[2])) {
        char *eol = strchr(p, '\n');
        if (eol) *eol = '\0';
        char *name = p + 2, *sp = strchr(name, ' ');
        if (!sp) break;
        *sp = '\0';
        char *sum = sp + 1;
        while (*sum == ' ') sum++;
        names[n] = name;
        summaries[n++] = sum;
        if (!eol) break;
        p = eol + 1;
    }
    return n;
}

/* A command that prints no table: its actions, each with its own table. */
static int man_dispatcher(Man *m, const Command *c, char *text, char *err, size_t errlen)
{
    char *names[32], *sums[32];
    int n = man_actions(text, names, sums, 32);
    if (n == 0) {
        snprintf(err, errlen, "'googlenet %s --help' shows neither a flag table nor actions", c->name);
        return -1;
    }
    fprintf(m->page, ".PP\n.nf\ngooglenet %s \\fIaction\\fR [flags]\n.fi\n.PP\nActions:\n", c->name);
    for (int i = 0; i < n; i++) {
        fprintf(m->page, ".TP\n.B %s\n", names[i]);
        man_roff_text(m->page, sums[i], 0);
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char title[128], help[] = "--help", *args[] = {names[i], help, NULL};
        snprintf(title, sizeof title, "%s %s", c->name, names[i]);
        fprintf(m->page, ".SS \"googlenet %s\"\n", title);
        man_roff_text(m->page, sums[i], 0);
        m->title = title;
        m->tables = 0;
        char *sub = NULL;
        rc = man_run(m, c, args, 2, &sub, err, errlen);
        if (rc == 0 && m->tables != 1) {
            snprintf(err, errlen, "'googlenet %s --help' shows %d flag tables, expected 1", title, m->tables);
            rc = -1;
        }
        free(sub);
    }
    return rc;
}

static int man_command(Man *m, const Command *c, char *err, size_t errlen)
{
    char help[] = "--help", *args[] = {help, NULL};
    fprintf(m->page, ".SS \"googlenet %s\"\n", c->name);
    man_roff_text(m->page, c->summary, 0);
    m->title = c->name;
    m->tables = 0;
    char *text = NULL;
    int rc = man_run(m, c, args, 1, &text, err, errlen);
    if (rc == 0 && m->tables == 0) rc = man_dispatcher(m, c, text, err, errlen);
    free(text);
    return rc;
}

static void man_head(FILE *f, const ManText *t)
{
    fputs(".\\\" googlenet.1: written by `googlenet help --man` (make man) from the flag\n"
          ".\\\" tables of trainer/cmd/*.c; edit those, not this file.\n"
          ".TH GOOGLENET 1 \"\" \"googlenet\" \"User Commands\"\n"
          ".nh\n" /* no hyphenation: flags and signal names stay whole */
          ".SH NAME\ngooglenet \\- ", f);
    man_roff_text(f, t->name_line, 0);
    fputs(".SH SYNOPSIS\n.B googlenet\n.I command\n.RI [ flags ]\n.br\n"
          ".B googlenet help\n.I command\n.br\n.B googlenet \\-\\-version\n.SH DESCRIPTION\n", f);
    man_roff_text(f, t->description, 0);
    fputs(".PP\nEach command's flags follow; \\fBgooglenet\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR prints the same.\n"
          "A flag takes its value as \\fB\\-\\-flag\\fR \\fIvalue\\fR or \\fB\\-\\-flag=\\fR\\fIvalue\\fR.\n"
          ".SH COMMANDS\n", f);
}

int man_write(FILE *out, const Command *cmds, int n, const ManText *text, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    Man m = {open_memstream(&buf, &len), NULL, 0};
    if (!m.page) {
        snprintf(err, errlen, "out of memory for the man page");
        return -1;
    }
    man_head(m.page, text);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = man_command(&m, &cmds[i], err, errlen);
    fputs(".SH \"EXIT STATUS\"\n", m.page);
    for (int i = 0; i < text->nexit; i++) {
        fprintf(m.page, ".TP\n.B %d\n", text->exit_codes[i].code);
        man_roff_text(m.page, text->exit_codes[i].meaning, 0);
    }
    fputs(".SH \"SEE ALSO\"\n.BR mpirun (1)\n", m.page);
    fclose(m.page);
    if (rc == 0 && fwrite(buf, 1, len, out) != len) {
        snprintf(err, errlen, "cannot write the man page: short write");
        rc = -1;
    }
    free(buf);
    return rc;
}
