/* man.h: the man page of bin/googlenet (docs/googlenet.1, `make man`), written
 * from the commands' own flag tables, never from a copy of them: each command
 * runs with --help while a help hook (trainer/cli.h) receives its table, so the
 * page says exactly what --help says. A command without a table of its own
 * (ckpt) lists its actions in its --help ("actions:", then "  NAME  summary"
 * lines); each action is then walked the same way.
 *
 * Returns a status with one line in err; writes nothing but the page. */
#ifndef TRAINER_MAN_H
#define TRAINER_MAN_H

#include <stddef.h>
#include <stdio.h>

#include "trainer/commands.h"

typedef struct {
    int code;
    const char *meaning; /* "a bad flag or an impossible combination" */
} ManExitCode;

typedef struct {
    const char *name_line;   /* after "googlenet \-" in NAME: what the program does */
    const char *description; /* a paragraph */
    const ManExitCode *exit_codes;
    int nexit;
} ManText;

/* Writes the page of the commands cmds[0..n) to out. The page carries no date
 * and no revision: the same tables always give the same bytes. */
int man_write(FILE *out, const Command *cmds, int n, const ManText *text, char *err, size_t errlen);

/* Text as roff: backslashes escaped, a dash that starts a word (an option)
 * written \-, a line that starts with '.' or '\'' guarded, leading blanks of a
 * line dropped unless keep_indent. */
void man_roff_text(FILE *f, const char *s, int keep_indent);

#endif
