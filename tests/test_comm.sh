#!/usr/bin/env bash
# test_comm.sh: comm/'s results under mpirun with 2 and 3 ranks, through
# tests/helper_comm.c: bucketed allreduce against references (bucket sizes that
# do and do not divide the buffer, ready() in random steps, overlap on and off),
# fp32 sums independent of bucket size and overlap, determinism across runs,
# bf16/fp16 sums within their rounding bound, broadcast and the identical check
# with one flipped bit, metrics and the stop flag, settings that differ between
# ranks. The failure paths are in test_comm_failures.sh. Every mpirun runs under
# `timeout`: nothing here can hang the suite.
. "$(dirname "$0")/lib.sh" keep-going mpi
helper=$B/tests/helper_comm tmp=$T
[ -x "$helper" ] || { echo "missing $helper (make run-tests builds it)"; exit 1; }

# run NAME NP ARGS...: runs the helper; output in $tmp/NAME.out, exit code in $rc
run() {
  local name=$1 np=$2; shift 2
  local t0=$(date +%s%N)
  timeout -k 5 120 mpirun -np "$np" --oversubscribe "$helper" "$@" >"$tmp/$name.out" 2>&1
  rc=$?
  secs=$(( ($(date +%s%N) - t0) / 1000000000 ))
  echo "[$name] np=$np $* -> exit $rc in ${secs}s"
}
expect_ok() { [ "$rc" -eq 0 ] || { fail "$1: exit $rc"; sed 's/^/    /' "$tmp/$1.out" | tail -n 30; }; }
expect_fail_with() {   # NAME TEXT
  [ "$rc" -ne 0 ] || fail "$1: exited 0, expected a failure"
  [ "$rc" -ne 124 ] || fail "$1: hung until the test's timeout"
  grep -qF -- "$2" "$tmp/$1.out" || { fail "$1: output lacks '$2'"; sed 's/^/    /' "$tmp/$1.out" | tail -n 20; }
}
checksum() { sed -n 's/^sum: .*checksum=\([0-9a-f]*\).*/\1/p' "$tmp/$1.out"; }

# --- sums ----------------------------------------------------------------------
# n = 100003 floats in buckets of 10000 and 7777 floats (neither divides n), the
# whole buffer, and more than the buffer; each with overlap on and off. The
# helper checks every result and that they all agree bitwise.
buckets=40000,31108,400012,10000000
run sum-np2 2 sum --n 100003 --bucket $buckets --steps 2
expect_ok sum-np2
run sum-np3 3 sum --n 100003 --bucket $buckets --steps 2
expect_ok sum-np3
# fewer gradients than ranks in a bucket
run sum-tiny 3 sum --n 5 --bucket 8,4 --steps 3
expect_ok sum-tiny

# determinism: the same run twice, including 16-bit compression; bf16/fp16 at
# np=3 are also checked against the fp32 sums within the rounding bound
for c in none bf16 fp16; do
  run "det-$c-a" 3 sum --n 70001 --bucket 20000,280004 --compress $c --seed 9
  run "det-$c-b" 3 sum --n 70001 --bucket 20000,280004 --compress $c --seed 9
  expect_ok "det-$c-a"; expect_ok "det-$c-b"
  [ -n "$(checksum "det-$c-a")" ] && [ "$(checksum "det-$c-a")" = "$(checksum "det-$c-b")" ] \
    || fail "det-$c: two identical runs gave different sums"
done
for c in bf16 fp16; do
  run "wire-$c-np2" 2 sum --n 100003 --bucket 31108,400012 --compress $c --steps 2
  expect_ok "wire-$c-np2"
done

# --- broadcast, identical check, metrics ----------------------------------------
run identical-full 2 identical --n 13378280
expect_ok identical-full
run identical-flip 3 identical --n 13378280 --flip-rank 2 --flip-bit 123456789
expect_ok identical-flip
grep -q "differ from rank 0's on rank 2 " "$tmp/identical-flip.out" || fail "identical-flip: rank 0 did not name rank 2"
run identical-flip0 3 identical --n 1001 --flip-rank 0 --flip-bit 7
expect_ok identical-flip0
run metrics 3 metrics
expect_ok metrics

# --- bad settings ------------------------------------------------------------------
run bucket-tiny 2 sum --n 1000 --bucket 2
expect_fail_with bucket-tiny "bucket size 2 bytes is smaller than one gradient"
run bucket-many 2 sum --n 1000000 --bucket 8
expect_fail_with bucket-many "use buckets of at least"
timeout -k 5 60 mpirun --oversubscribe -np 1 "$helper" sum --n 1000 : -np 1 "$helper" sum --n 1001 \
  >"$tmp/mismatch.out" 2>&1
rc=$?
echo "[mismatch] ranks with 1000 and 1001 gradients -> exit $rc"
expect_fail_with mismatch "ranks disagree on the allreducer's gradient count (from 1000 to 1001)"

[ $failed -eq 0 ] && echo "test_comm: all checks passed"
exit $failed
