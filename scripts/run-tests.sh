#!/usr/bin/env bash
# Runs every test given (cmocka binaries and tests/test_*.sh scripts), each under
# a time limit, and prints one summary line per test. Exits 1 when any failed.
# TEST_FILTER=substring runs only the matching tests.
set -u
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
limit=${TEST_TIMEOUT:-900}
failed=()
log_dir=${TEST_BUILD:-build/release}/test-logs
mkdir -p "$log_dir"
for t in "$@"; do
  name=$(basename "$t")
  [ -n "${TEST_FILTER:-}" ] && [[ "$name" != *"$TEST_FILTER"* ]] && continue
  log="$log_dir/$name.log"
  start=$(date +%s%N)
  if [[ "$t" == *.sh ]]; then timeout -k 10 "$limit" bash "$t" >"$log" 2>&1; else timeout -k 10 "$limit" "$t" >"$log" 2>&1; fi
  rc=$?
  ms=$(( ($(date +%s%N) - start) / 1000000 )); secs=$((ms / 1000)).$(( (ms % 1000) / 100 ))
  if [ $rc -eq 0 ]; then
    printf 'PASS  %-32s %6ss\n' "$name" "$secs"
  else
    [ $rc -eq 124 ] && why="timed out after ${limit}s" || why="exit $rc"
    printf 'FAIL  %-32s %6ss  (%s; log: %s)\n' "$name" "$secs" "$why" "$log"
    tail -n 25 "$log" | sed 's/^/      | /'
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "${#failed[@]} test(s) failed: ${failed[*]}"; exit 1
fi
echo "all tests passed"
