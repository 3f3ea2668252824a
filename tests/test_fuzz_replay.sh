#!/usr/bin/env bash
# test_fuzz_replay.sh: every kept fuzz input (the seed corpora in
# tests/fuzz/corpus/ and the inputs that once crashed, hung or ran out of
# memory in tests/fuzz/regressions/) through its target, built with the
# project's compiler and tests/fuzz/replay.c as main: no clang needed. A
# crash or a violated property fails the test (under SANITIZE=address,undefined
# the sanitizers check every input as well).
set -u
B=${TEST_BUILD:-build/release}
cd "$(dirname "$0")/.."
fail=0
for t in jpeg png ckpt shard labels classes index_cache npy; do
  dirs=("tests/fuzz/corpus/$t")
  [ -d "tests/fuzz/regressions/$t" ] && dirs+=("tests/fuzz/regressions/$t")
  want=$(find "${dirs[@]}" -maxdepth 1 -type f ! -name '.*' | wc -l)
  [ "$want" -gt 0 ] || { echo "FAIL: no kept inputs for $t"; fail=1; continue; }
  mkdir -p "$B/test-logs"
  out=$("$B/tests/fuzz/replay_$t" "${dirs[@]}" 2>"$B/test-logs/replay_$t.err")
  rc=$?
  [ "$want" -eq 1 ] && s= || s=s
  if [ $rc -ne 0 ] || [ "$out" != "replayed $want input$s through $B/tests/fuzz/replay_$t" ]; then
    echo "FAIL: $t: exit $rc, '$out' (expected $want inputs)"
    tail -n 15 "$B/test-logs/replay_$t.err" | sed 's/^/  | /'
    fail=1
  else
    echo "ok: $t: $want input$s"
  fi
done
exit $fail
