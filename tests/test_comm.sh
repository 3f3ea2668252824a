#!/usr/bin/env bash
# test_comm.sh: comm/ under mpirun with 2 and 3 ranks, through tests/helper_comm.c:
# bucketed allreduce against references (bucket sizes that do and do not divide
# the buffer, ready() in random steps, overlap on and off), determinism across
# runs and bucket sizes, bf16/fp16 sums within their rounding bound, broadcast
# and the identical check with one flipped bit, metrics, settings that differ
# between ranks, and the failure paths: the watchdog names a rank that sleeps
# past --timeout, a rank's comm_abort ends the job with its message, SIGKILL of
# a rank ends the job non-zero. Every mpirun runs under `timeout`: nothing here
# can hang the suite.
set -u
build=${TEST_BUILD:-build/release}
helper=$build/tests/helper_comm
[ -x "$helper" ] || { echo "missing $helper (make run-tests builds it)"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# Open MPI's own allocations are never freed: leak reports would only be noise
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; }

# run NAME NP ARGS...: runs the helper, output in $tmp/NAME.out, exit code in $rc
run() {
  local name=$1 np=$2; shift 2
  local t0=$(date +%s%N)
  timeout -k 5 120 mpirun -np "$np" --oversubscribe "$helper" "$@" >"$tmp/$name.out" 2>&1
  rc=$?
  secs=$(( ($(date +%s%N) - t0) / 1000000000 ))
  echo "[$name] np=$np $* -> exit $rc in ${secs}s"
}
expect_ok() { [ "$rc" -eq 0 ] || { fail "$1: exit $rc"; sed 's/^/    /' "$tmp/$1.out" | tail -n 30; }; }
expect_fail_with() {   # NAME TEXT MAX_SECONDS
  if [ "$rc" -eq 0 ]; then fail "$1: exited 0, expected a failure"; fi
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 -a "$secs" -ge 120 ]; then fail "$1: hung until the test's timeout"; fi
  grep -qF -- "$2" "$tmp/$1.out" || { fail "$1: output lacks '$2'"; sed 's/^/    /' "$tmp/$1.out" | tail -n 20; }
  [ "$secs" -le "$3" ] || fail "$1: took ${secs}s, expected at most $3 s"
}
checksum() { sed -n 's/.*checksum=\([0-9a-f]*\).*/\1/p' "$tmp/$1.out"; }

# --- sums -------------------------------------------------------------------
# n = 100003 floats; buckets of 10000, 7777 (neither divides n), 1 bucket (the
# whole buffer), and a bucket larger than the buffer
for np in 2 3; do
  for b in 40000 31108 400012 10000000; do
    for ov in 1 0; do
      run "sum-np$np-b$b-ov$ov" $np sum --n 100003 --bucket $b --overlap $ov --steps 2
      expect_ok "sum-np$np-b$b-ov$ov"
    done
  done
  # fp32 sums are taken in rank order by one rank per element: the result does not
  # depend on the bucket size or on overlap
  ref=$(checksum "sum-np$np-b40000-ov1")
  [ -n "$ref" ] || fail "sum-np$np: no checksum printed"
  for b in 40000 31108 400012 10000000; do
    for ov in 1 0; do
      [ "$(checksum "sum-np$np-b$b-ov$ov")" = "$ref" ] || fail "sum-np$np-b$b-ov$ov: checksum differs from buckets of 40000 B"
    done
  done
done
# a tiny buffer: fewer gradients than ranks in some buckets
run sum-tiny 3 sum --n 5 --bucket 8 --steps 3
expect_ok sum-tiny

# determinism: the same run twice, including 16-bit compression
for c in none bf16 fp16; do
  run "det-$c-a" 3 sum --n 70001 --bucket 20000 --compress $c --seed 9
  run "det-$c-b" 3 sum --n 70001 --bucket 20000 --compress $c --seed 9
  expect_ok "det-$c-a"; expect_ok "det-$c-b"
  [ -n "$(checksum "det-$c-a")" ] && [ "$(checksum "det-$c-a")" = "$(checksum "det-$c-b")" ] \
    || fail "det-$c: two identical runs gave different sums"
done

# bf16 / fp16 on the wire: within the rounding bound, identical on every rank
for c in bf16 fp16; do
  for np in 2 3; do
    run "wire-$c-np$np" $np sum --n 100003 --bucket 31108 --compress $c --steps 2
    expect_ok "wire-$c-np$np"
  done
  run "wire-$c-noov" 2 sum --n 50000 --bucket 400000 --compress $c --overlap 0
  expect_ok "wire-$c-noov"
done

# --- broadcast, identical check, metrics -------------------------------------
run identical-full 2 identical --n 13378280
expect_ok identical-full
run identical-flip 3 identical --n 13378280 --flip-rank 2 --flip-bit 123456789
expect_ok identical-flip
grep -q "differ from rank 0's on rank 2 " "$tmp/identical-flip.out" || fail "identical-flip: rank 0 did not name rank 2"
run identical-flip0 3 identical --n 1001 --flip-rank 0 --flip-bit 7
expect_ok identical-flip0
run metrics 3 metrics
expect_ok metrics

# --- bad settings --------------------------------------------------------------
run bucket-tiny 2 sum --n 1000 --bucket 2
expect_fail_with bucket-tiny "bucket size 2 bytes is smaller than one gradient" 30
run bucket-many 2 sum --n 1000000 --bucket 8
expect_fail_with bucket-many "use buckets of at least" 30
timeout -k 5 60 mpirun --oversubscribe -np 1 "$helper" sum --n 1000 : -np 1 "$helper" sum --n 1001 >"$tmp/mismatch.out" 2>&1
rc=$?; secs=0
expect_fail_with mismatch "ranks disagree on the allreducer's gradient count" 30

# --- failures: nothing hangs ----------------------------------------------------
for where in allreduce barrier broadcast metrics; do
  run "late-$where" 3 late --timeout 2 --sleep 60 --late 2 --where $where --n 200000 --bucket 100000
  expect_fail_with "late-$where" "late rank: 2" 30
  grep -q "did not complete within 2 s" "$tmp/late-$where.out" || fail "late-$where: no timeout message"
done
run late-rank0 2 late --timeout 2 --sleep 60 --late 0 --where allreduce
expect_fail_with late-rank0 "late rank: 0" 30

run abort 3 abort --late 1 --sleep 0.5
expect_fail_with abort "googlenet: [rank 1] cannot read shard 7: disk full" 30

# SIGKILL of one rank in the middle of allreduce steps
for victim in 1 0; do
  dir=$tmp/kill$victim; mkdir -p "$dir"
  t0=$(date +%s)
  timeout -k 5 120 mpirun -np 3 --oversubscribe "$helper" loop --dir "$dir" --timeout 10 --n 1000000 --bucket 400000 \
    >"$tmp/kill$victim.out" 2>&1 &
  job=$!
  for _ in $(seq 300); do [ -f "$dir/rank0.pid" ] && [ -f "$dir/rank1.pid" ] && [ -f "$dir/rank2.pid" ] && break; sleep 0.1; done
  if [ -f "$dir/rank$victim.pid" ]; then
    sleep 1
    kill -9 "$(cat "$dir/rank$victim.pid")"
    wait $job; rc=$?; secs=$(( $(date +%s) - t0 ))
    echo "[kill$victim] SIGKILL to rank $victim -> exit $rc in ${secs}s"
    [ "$rc" -ne 0 ] || fail "kill$victim: job exited 0 after a rank was killed"
    [ "$rc" -ne 124 ] || fail "kill$victim: job hung"
    [ "$secs" -le 40 ] || fail "kill$victim: took ${secs}s"
  else
    kill $job 2>/dev/null; wait $job
    fail "kill$victim: ranks never started"; cat "$tmp/kill$victim.out"
  fi
done

[ $failed -eq 0 ] && echo "test_comm: all checks passed"
exit $failed
