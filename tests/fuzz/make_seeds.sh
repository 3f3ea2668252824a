#!/usr/bin/env bash
# make_seeds.sh: regenerates the seed corpora tests/fuzz/corpus/<target>/ with
# seed_gen (built by make, with the project's compiler). Inputs the fuzzers
# found (tests/fuzz/regressions/) are kept apart and never touched here.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build/release}
make --no-print-directory "$BUILD/tests/fuzz/seed_gen" >/dev/null
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$BUILD/tests/fuzz/seed_gen" "$tmp/corpus"
rm -rf tests/fuzz/corpus
cp -r "$tmp/corpus" tests/fuzz/corpus
for d in tests/fuzz/corpus/*/; do printf '%-14s %3d files %7d bytes\n' "$(basename "$d")" "$(ls "$d" | wc -l)" "$(cat "$d"/* | wc -c)"; done
