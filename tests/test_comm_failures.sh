#!/usr/bin/env bash
# test_comm_failures.sh: comm/'s failure paths under mpirun, through
# tests/helper_comm.c. The watchdog aborts a job in which one rank sleeps past
# --timeout before each kind of collective, naming the late rank; a rank's
# comm_abort ends the whole job with its message; SIGKILL of a rank in the middle
# of allreduce steps ends the job non-zero. Every mpirun runs under `timeout`, and
# each case must end well before it.
. "$(dirname "$0")/lib.sh" keep-going mpi
helper=$B/tests/helper_comm tmp=$T
[ -x "$helper" ] || { echo "missing $helper (make run-tests builds it)"; exit 1; }

run() {
  local name=$1 np=$2; shift 2
  local t0=$(date +%s%N)
  timeout -k 5 120 mpirun -np "$np" --oversubscribe "$helper" "$@" >"$tmp/$name.out" 2>&1
  rc=$?
  secs=$(( ($(date +%s%N) - t0) / 1000000000 ))
  echo "[$name] np=$np $* -> exit $rc in ${secs}s"
}
# NAME TEXT MAX_SECONDS: failed (not by the test's timeout), said TEXT, in time
expect_fail_with() {
  [ "$rc" -ne 0 ] || fail "$1: exited 0, expected a failure"
  [ "$rc" -ne 124 ] || fail "$1: hung until the test's timeout"
  grep -qF -- "$2" "$tmp/$1.out" || { fail "$1: output lacks '$2'"; sed 's/^/    /' "$tmp/$1.out" | tail -n 20; }
  [ "$secs" -le "$3" ] || fail "$1: took ${secs}s, expected at most $3 s"
}

# a rank that sleeps 60 s before a collective, with --timeout 2
for where in allreduce barrier broadcast metrics; do
  run "late-$where" 3 late --timeout 2 --sleep 60 --late 2 --where $where --n 200000 --bucket 100000
  expect_fail_with "late-$where" "late rank: 2" 30
  grep -q "did not complete within 2 s" "$tmp/late-$where.out" || fail "late-$where: no timeout message"
done
run late-rank0 2 late --timeout 2 --sleep 60 --late 0 --where allreduce
expect_fail_with late-rank0 "late rank: 0 (last entered #" 30

# a fatal error on one rank while the others wait in a barrier
run abort 3 abort --late 1 --sleep 0.5
expect_fail_with abort "googlenet: [rank 1] cannot read shard 7: disk full" 30
[ "$rc" -eq 3 ] || fail "abort: exit $rc, expected the rank's code 3"

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
    [ "$rc" -ne 0 ] || fail "kill$victim: the job exited 0 after a rank was killed"
    [ "$rc" -ne 124 ] || fail "kill$victim: the job hung"
    [ "$secs" -le 40 ] || fail "kill$victim: took ${secs}s"
  else
    kill $job 2>/dev/null; wait $job
    fail "kill$victim: the ranks never started"; cat "$tmp/kill$victim.out"
  fi
done

[ $failed -eq 0 ] && echo "test_comm_failures: all checks passed"
exit $failed
