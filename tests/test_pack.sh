#!/usr/bin/env bash
# test_pack.sh: `googlenet pack` and `googlenet bench-loader` end to end: a
# generated tree packed into shards, both read back by bench-loader; the index
# cache; --help; and the one-line errors for bad flags and bad data.
set -u
BIN=${GOOGLENET_BIN:-bin/googlenet}
GEN=${TEST_BUILD:-build/release}/tests/helper_loader_gen
T=$(mktemp -d /tmp/gnet-packsh-XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check() { # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "ok   $name"; pass=$((pass + 1)); else echo "FAIL $name"; fail=$((fail + 1)); fi
}

"$GEN" "$T/tree" 3 6 --bad || { echo "FAIL generator"; exit 1; }

$BIN pack --help >"$T/out" 2>&1; rc=$?
check "pack --help" test $rc -eq 0
check "pack --help shows defaults" grep -q -- "--shards" "$T/out"
$BIN bench-loader --help >"$T/out" 2>&1; rc=$?
check "bench-loader --help" test $rc -eq 0

$BIN pack --data "$T/tree" --out "$T/shards" --shards 3 --quiet >"$T/out" 2>"$T/err"; rc=$?
check "pack exits 0" test $rc -eq 0
check "pack wrote 3 shards" test "$(ls "$T/shards" | grep -c '\.gshard$')" -eq 3
check "pack reports the items" grep -q "19 items of 4 classes" "$T/out"
check "pack names the file it left out" grep -q "zz_bad/empty.JPEG: zero bytes" "$T/err"

for data in tree shards; do
  $BIN bench-loader --data "$T/$data" --workers 2 --batch 4 --crop 32 --batches 3 --warmup 1 --json >"$T/out" 2>"$T/err"; rc=$?
  check "bench-loader on $data exits 0" test $rc -eq 0
  check "bench-loader on $data prints img/s" grep -q '"img_per_s":' "$T/out"
  check "bench-loader on $data per worker" grep -q 'img/s per worker' "$T/out"
done
$BIN bench-loader --data "$T/tree" --workers 1 --batch 20 --crop 16 --batches 1 --warmup 0 >"$T/out" 2>"$T/err"
check "bad files are named in a warning" grep -q "zz_bad/empty.JPEG" "$T/err"

$BIN bench-loader --data "$T/tree" --scan-only --index-cache "$T/index" >"$T/out" 2>&1
check "first scan builds the index" bash -c "! grep -q 'from the index cache' '$T/out'"
$BIN bench-loader --data "$T/tree" --scan-only --index-cache "$T/index" >"$T/out" 2>&1
check "second scan reads the cache" grep -q "from the index cache" "$T/out"

$BIN pack --data "$T/tree" --out "$T/shards" --shards 2 --quiet >"$T/out" 2>"$T/err"; rc=$?
check "pack over existing shards fails" test $rc -eq 1
check "  saying so" grep -q "already holds shard files" "$T/err"
$BIN pack --data "$T/tree" >"$T/out" 2>"$T/err"; rc=$?
check "pack without --out is a usage error" test $rc -eq 2
$BIN bench-loader --data "$T/nonexistent" >"$T/out" 2>"$T/err"; rc=$?
check "missing dataset fails" test $rc -eq 1
check "  in one line" test "$(wc -l <"$T/err")" -eq 1
mkdir "$T/empty"
$BIN bench-loader --data "$T/empty" >"$T/out" 2>"$T/err"; rc=$?
check "empty dataset fails" test $rc -eq 1
check "  naming it" grep -q "nothing in it" "$T/err"
$BIN bench-loader --data "$T/tree" --wrkers 2 >"$T/out" 2>"$T/err"; rc=$?
check "misspelt flag is a usage error" test $rc -eq 2
check "  with a suggestion" grep -q -- "--workers" "$T/err"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
