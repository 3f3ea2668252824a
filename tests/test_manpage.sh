#!/usr/bin/env bash
# test_manpage.sh: docs/googlenet.1, the flag reference, cannot go stale.
# - it is byte for byte what `googlenet help --man` writes from the flag tables
#   now (`make man` rewrites it);
# - read the other way, from the --help texts: every command `googlenet --help`
#   lists, every action of a command that has actions (ckpt), and every flag
#   with its help, default and older name is in the rendered page;
# - groff renders it without a warning, and so does `man -l` where man-db is.
. "$(dirname "$0")/lib.sh" keep-going
page=$(cd "$(dirname "$0")/.." && pwd)/docs/googlenet.1

"$BIN" help --man >"$T/page.1" 2>"$T/man.err" || fail "googlenet help --man: $(cat "$T/man.err")"
if cmp -s "$T/page.1" "$page"; then
  echo "ok: docs/googlenet.1 is what the flag tables say"
else
  fail "docs/googlenet.1 differs from what the flag tables say now: run 'make man' and commit the page"
  diff -u "$page" "$T/page.1" | head -n 40 | sed 's/^/    /'
fi

command -v groff >/dev/null || { echo "FAIL: groff is missing: run scripts/install-deps.sh --test"; exit 1; }
groff -man -Tutf8 -ww -z "$page" >"$T/groff.err" 2>&1 || fail "groff exits $? on docs/googlenet.1"
[ -s "$T/groff.err" ] && { fail "groff warns about docs/googlenet.1:"; sed 's/^/    /' "$T/groff.err"; }
if command -v man >/dev/null; then
  MANWIDTH=80 man --warnings -l "$page" >"$T/man.txt" 2>"$T/man.err" || fail "man -l exits $?"
  [ -s "$T/man.err" ] && { fail "man -l warns about docs/googlenet.1:"; sed 's/^/    /' "$T/man.err"; }
  grep -q "googlenet train" "$T/man.txt" || fail "man -l shows no 'googlenet train'"
fi

# Every --help, read as text: commands, then actions where a command has them.
"$BIN" --help | sed -n '/^commands:/,/^$/p' | awk 'NR > 1 && NF {print $1}' >"$T/commands"
[ "$(wc -l <"$T/commands")" -ge 7 ] || fail "googlenet --help lists $(wc -l <"$T/commands") commands"
while read -r c; do
  "$BIN" "$c" --help >"$T/help.$c" 2>&1 || fail "$c --help exits $?"
  actions=$(sed -n '/^actions:/,/^$/p' "$T/help.$c" | awk 'NR > 1 && NF {print $1}')
  for a in $actions; do "$BIN" "$c" "$a" --help >"$T/help.$c.$a" 2>&1 || fail "$c $a --help exits $?"; done
done <"$T/commands"
groff -man -Tutf8 -P-cbou "$page" 2>/dev/null >"$T/page.txt"
"$PY" - "$T" <<'EOF' || fail "the rendered page lacks what --help says (above)"
import glob, os, re, sys
tmp = sys.argv[1]
flat = lambda s: " ".join(s.split())
# groff's typographic hyphens, minus signs and quotes read as the ASCII --help prints
ascii = str.maketrans({"\u2010": "-", "\u2212": "-", "\u2019": "'", "\u2018": "`"})
text = open(os.path.join(tmp, "page.txt"), encoding="utf-8").read().translate(ascii)
page = flat(re.sub(r"-\n\s+", "-", text))  # a line may break after a hyphen
missing = 0
for path in sorted(glob.glob(os.path.join(tmp, "help.*"))):
    title = "googlenet " + os.path.basename(path)[5:].replace(".", " ")
    text = open(path).read()
    if title not in page:
        print(f"  no section '{title}'"); missing += 1
    for line in text.splitlines():
        m = re.match(r"  (--\S+(?: \S+)?)\s+(.*)$", line)
        if not m:
            continue
        for want in (m.group(1), flat(m.group(2))):
            if want not in page:
                print(f"  {title}: '{want}' is not in the page"); missing += 1
sys.exit(1 if missing else 0)
EOF

[ $failed -eq 0 ] && echo "test_manpage: all checks passed"
exit $failed
