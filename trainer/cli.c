/* cli.c: table-driven flag parsing with ranges, choices and "did you mean".
 * Parses and reports; never exits and never prints except cli_print_help
 * (which hands the table to the help hook instead while one is set). */
#include "trainer/cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

const char *cli_closest(const char *word, const char *const *candidates, int n)
{
    const char *best = NULL;
    int best_d = 1 << 30;
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, candidates[i]);
        /* a prefix ("--ep" for "--epochs") counts as close */
        if (strncmp(candidates[i], word, strlen(word)) == 0 && strlen(word) > 3) d = 1;
        if (d < best_d) { best_d = d; best = candidates[i]; }
    }
    size_t len = strlen(word);
    int allowed = len < 6 ? 2 : (int)(len / 3) + 1;
    return best_d <= allowed ? best : NULL;
}

static int choice_ok(const char *choices, const char *v)
{
    size_t lv = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t l = bar ? (size_t)(bar - p) : strlen(p);
        if (l == lv && strncmp(p, v, l) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

static int set_integer(CliFlag *f, const char *v, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end) {
        snprintf(err, errlen, "%s expects an integer, got '%s'", f->name, v);
        return -1;
    }
    if (f->min < f->max && (x < f->min || x > f->max)) {
        snprintf(err, errlen, "%s must be in [%.0f, %.0f], got %lld", f->name, f->min, f->max, x);
        return -1;
    }
    if (f->type == CLI_INT) {
        if (x < -2147483647LL || x > 2147483647LL) {
            snprintf(err, errlen, "%s: %s is out of range", f->name, v);
            return -1;
        }
        *(int *)f->dst = (int)x;
    } else {
        *(long *)f->dst = (long)x;
    }
    return 0;
}

/* Decimal digits only: strtoull would take "-1" as 2^64-1 and " 7" as 7. The
 * range is compared in integers, so that values past 2^53 keep every bit. */
static int set_u64(CliFlag *f, const char *v, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = (*v >= '0' && *v <= '9') ? strtoull(v, &end, 10) : 0;
    if (!end || errno || *end) {
        snprintf(err, errlen, "%s expects a whole number from 0 to 18446744073709551615, got '%s'", f->name, v);
        return -1;
    }
    if (f->min < f->max) {
        unsigned long long lo = f->min > 0 ? (unsigned long long)f->min : 0;
        unsigned long long hi = f->max >= 18446744073709551615.0 ? UINT64_MAX : (unsigned long long)f->max;
        if (x < lo || x > hi) {
            snprintf(err, errlen, "%s must be in [%llu, %llu], got %llu", f->name, lo, hi, x);
            return -1;
        }
    }
    *(uint64_t *)f->dst = (uint64_t)x;
    return 0;
}

static int set_float(CliFlag *f, const char *v, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x)) {
        snprintf(err, errlen, "%s expects a number, got '%s'", f->name, v);
        return -1;
    }
    if (f->min < f->max && (x < f->min || x > f->max)) {
        snprintf(err, errlen, "%s must be in [%g, %g], got %g", f->name, f->min, f->max, x);
        return -1;
    }
    *(double *)f->dst = x;
    return 0;
}

static int set_value(CliFlag *f, const char *v, char *err, size_t errlen)
{
    switch (f->type) {
    case CLI_INT:
    case CLI_LONG: return set_integer(f, v, err, errlen);
    case CLI_U64: return set_u64(f, v, err, errlen);
    case CLI_FLOAT: return set_float(f, v, err, errlen);
    case CLI_STR:
        *(const char **)f->dst = v;
        return 0;
    case CLI_CHOICE:
        if (!choice_ok(f->choices, v)) {
            snprintf(err, errlen, "%s must be one of %s, got '%s'", f->name, f->choices, v);
            return -1;
        }
        *(const char **)f->dst = v;
        return 0;
    case CLI_STR_LIST: {
        CliStrList *l = f->dst;
        if (l->n >= CLI_LIST_MAX) {
            snprintf(err, errlen, "%s given more than %d times", f->name, CLI_LIST_MAX);
            return -1;
        }
        l->items[l->n++] = v;
        return 0;
    }
    case CLI_BOOL:
        break;
    }
    return -1;
}

/* The flag called `name` (or by its older name), or NULL with "did you mean". */
static CliFlag *find_flag(CliFlag *flags, int nflags, const char *name, char *err, size_t errlen)
{
    for (int k = 0; k < nflags; k++)
        if (strcmp(flags[k].name, name) == 0 || (flags[k].alias && strcmp(flags[k].alias, name) == 0)) return &flags[k];
    const char *names[128];
    int n = nflags < 128 ? nflags : 128;
    for (int k = 0; k < n; k++) names[k] = flags[k].name;
    const char *near = cli_closest(name, names, n);
    if (near) snprintf(err, errlen, "unknown flag '%s'; did you mean '%s'?", name, near);
    else snprintf(err, errlen, "unknown flag '%s' (see --help)", name);
    return NULL;
}

int cli_parse(CliFlag *flags, int nflags, int argc, char **argv,
              const char **positional, int max_positional, int *npositional,
              int *want_help, char *err, size_t errlen)
{
    *want_help = 0;
    if (npositional) *npositional = 0;
    for (int i = 0; i < nflags; i++) flags[i].given = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *want_help = 1;
            return 0;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (!npositional || *npositional >= max_positional) {
                snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
                return -1;
            }
            positional[(*npositional)++] = a;
            continue;
        }
        char name[64];
        const char *value = NULL;
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof name) nl = sizeof name - 1;
        memcpy(name, a, nl);
        name[nl] = '\0';
        if (eq) value = eq + 1;

        CliFlag *f = find_flag(flags, nflags, name, err, errlen);
        if (!f) return -1;
        f->given = 1;
        if (f->type == CLI_BOOL) {
            if (value && strcmp(value, "0") != 0 && strcmp(value, "1") != 0) {
                snprintf(err, errlen, "%s takes no value (or =0/=1), got '%s'", f->name, value);
                return -1;
            }
            *(int *)f->dst = value ? atoi(value) : 1;
            continue;
        }
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "%s needs a value", f->name);
                return -1;
            }
            value = argv[++i];
        }
        if (set_value(f, value, err, errlen) != 0) return -1;
    }
    return 0;
}

int cli_given(const CliFlag *flags, int nflags, const char *name)
{
    for (int i = 0; i < nflags; i++)
        if (strcmp(flags[i].name, name) == 0) return flags[i].given;
    return 0;
}

void cli_format_value(const CliFlag *fl, char *out, size_t len)
{
    out[0] = '\0';
    switch (fl->type) {
    case CLI_INT: snprintf(out, len, "%d", *(int *)fl->dst); break;
    case CLI_LONG: snprintf(out, len, "%ld", *(long *)fl->dst); break;
    case CLI_U64: snprintf(out, len, "%" PRIu64, *(uint64_t *)fl->dst); break;
    case CLI_FLOAT: snprintf(out, len, "%g", *(double *)fl->dst); break;
    case CLI_STR:
        if (*(const char **)fl->dst) snprintf(out, len, "%s", *(const char **)fl->dst);
        break;
    case CLI_CHOICE: snprintf(out, len, "%s", *(const char **)fl->dst); break;
    case CLI_BOOL: snprintf(out, len, "%s", *(int *)fl->dst ? "on" : "off"); break;
    case CLI_STR_LIST: {
        const CliStrList *l = fl->dst;
        size_t at = 0;
        for (int i = 0; i < l->n && at < len; i++) at += (size_t)snprintf(out + at, len - at, "%s%s", i ? "," : "", l->items[i]);
        break;
    }
    }
}

int cli_settings_format(const CliFlag *flags, int nflags, char *out, size_t len)
{
    size_t at = 0;
    char v[4096];
    if (len) out[0] = '\0';
    for (int i = 0; i < nflags; i++) {
        cli_format_value(&flags[i], v, sizeof v);
        int n = snprintf(out + at, at < len ? len - at : 0, "%s%s=", at ? " " : "", flags[i].name);
        if (n < 0 || at + (size_t)n >= len) return -1;
        at += (size_t)n;
        for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
            int esc = *p == '%' || *p == ' ' || *p < 0x20 || *p == 0x7f;
            if (at + (esc ? 3 : 1) >= len) return -1;
            if (esc) at += (size_t)snprintf(out + at, len - at, "%%%02X", *p);
            else out[at++] = (char)*p;
        }
        out[at] = '\0';
    }
    return (int)at;
}

int cli_settings_get(const char *settings, const char *name, char *out, size_t len)
{
    size_t nl = strlen(name);
    for (const char *p = settings; p && *p;) {
        const char *end = strchr(p, ' ');
        if (!end) end = p + strlen(p);
        if ((size_t)(end - p) > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t at = 0;
            for (const char *q = p + nl + 1; q < end && at + 1 < len; q++) {
                unsigned x;
                if (*q == '%' && end - q >= 3 && sscanf(q + 1, "%2x", &x) == 1) {
                    out[at++] = (char)x;
                    q += 2;
                } else {
                    out[at++] = *q;
                }
            }
            out[at] = '\0';
            return 1;
        }
        p = *end ? end + 1 : end;
    }
    return 0;
}

static CliHelpHook help_hook;
static void *help_hook_ctx;

void cli_set_help_hook(CliHelpHook hook, void *ctx)
{
    help_hook = hook;
    help_hook_ctx = ctx;
}

const char *cli_flag_metavar(const CliFlag *f)
{
    if (f->type == CLI_BOOL) return "";
    if (f->metavar) return f->metavar;
    switch (f->type) {
    case CLI_INT:
    case CLI_LONG:
    case CLI_U64: return "N";
    case CLI_FLOAT: return "X";
    case CLI_CHOICE: return f->choices;
    default: return "S";
    }
}

void cli_flag_default(const CliFlag *f, char *out, size_t len)
{
    if (f->shown_default) snprintf(out, len, "%s", f->shown_default);
    else if (f->type == CLI_STR_LIST) snprintf(out, len, "%s", "");
    else cli_format_value(f, out, len);
}

void cli_print_help(FILE *f, const char *usage, const char *summary,
                    const CliFlag *flags, int nflags)
{
    if (help_hook) {
        help_hook(help_hook_ctx, usage, summary, flags, nflags);
        return;
    }
    fprintf(f, "usage: %s\n", usage);
    if (summary && *summary) fprintf(f, "\n%s\n", summary);
    if (nflags) fprintf(f, "\nflags:\n");
    for (int i = 0; i < nflags; i++) {
        const CliFlag *fl = &flags[i];
        char left[96], def[96];
        const char *mv = cli_flag_metavar(fl);
        cli_flag_default(fl, def, sizeof def);
        snprintf(left, sizeof left, "%s%s%s", fl->name, *mv ? " " : "", mv);
        fprintf(f, "  %-26s %s", left, fl->help ? fl->help : "");
        if (def[0]) fprintf(f, " [default: %s]", def);
        if (fl->alias) fprintf(f, " (also %s)", fl->alias);
        fputc('\n', f);
    }
}
