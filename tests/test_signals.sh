#!/usr/bin/env bash
# test_signals.sh: a run stopped by a signal under mpirun loses at most the
# step in progress.
# - SIGINT to mpirun (a terminal's Ctrl-C reaches only mpirun) and SIGTERM to
#   mpirun: mpirun sends the ranks SIGTERM GRACE seconds later and SIGKILL
#   GRACE seconds after that (Open MPI's odls_base_sigkill_timeout, which the
#   launchers here raise from its default of 1 s: docs/training.md). Rank 0's
#   emergency checkpoint of the last completed step is on disk, verifies, and
#   holds exactly the state of an uninterrupted run at that step. GRACE is 5 s
#   here: the 1 s default is usually enough for the emergency write alone, but
#   not on a machine whose cores other jobs keep busy, and a test must not
#   depend on the load.
# - a temporary file of a checkpoint write cut off by a kill is removed, with
#   a line naming it, when the next run starts in that --out (--resume auto);
# - SIGUSR1 to mpirun: every rank finishes its step, rank 0 writes a
#   checkpoint, exit 3, and the stop line says before mpirun's "aborted" note
#   that nothing was lost.
. "$(dirname "$0")/lib.sh" fail-fast mpi
mpids=()
test_cleanup() { # the mpiruns this test started, and their ranks
  for p in "${mpids[@]}"; do
    for c in $(pgrep -P "$p" 2>/dev/null); do kill -9 "$c" 2>/dev/null; done
    kill -9 "$p" 2>/dev/null
  done
}

"$B/tests/helper_gen_dataset" --out "$T/data" --classes 2 --per-class 32 --size 32 --seed 5 || fail "dataset"
# a constant rate, so that a run of S steps is the interrupted run's first S steps
RUN=(train --data "$T/data" --crop 64 --batch 4 --no-aux --lr 0.005 --lr-policy fixed --threads 1 --workers 1
     --eval-every 0 --ckpt-every 100000 --keep 0 --log-every 0 --quiet --conv-algo winograd)
logged() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
steps_of() { ls "$1"/ckpt-*.gnck 2>/dev/null | sed 's/.*ckpt-0*\([0-9][0-9]*\)\.gnck/\1/' | sort -n | tail -1; }

# start a long run, wait for some logged steps, send $1 to mpirun; sets rc
interrupt() { # SIGNAL OUT
  mpirun --oversubscribe -np 2 --mca odls_base_sigkill_timeout 5 "$BIN" "${RUN[@]}" --steps 100000 --out "$2" >"$2.log" 2>&1 &
  local mpid=$!
  mpids+=("$mpid")
  for _ in $(seq 600); do [ "$(logged "$2/metrics.jsonl")" -ge 5 ] && break; sleep 0.1; done
  [ "$(logged "$2/metrics.jsonl")" -ge 5 ] || { cat "$2.log"; fail "$1: the run did not start"; }
  done_before=$(logged "$2/metrics.jsonl") # a line is logged after its step's update
  kill -"$1" "$mpid"
  wait "$mpid"; rc=$?
}

# the emergency checkpoint against an uninterrupted run of as many steps
check_exact() { # OUT STEP
  local s=$2 ck ref
  ck=$(printf '%s/ckpt-%08d.gnck' "$1" "$s")
  "$BIN" ckpt verify "$ck" >/dev/null || fail "$ck does not verify"
  mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]}" --steps "$s" --out "$1.ref" >"$1.ref.log" 2>&1 \
    || { cat "$1.ref.log"; fail "reference run"; }
  ref=$(printf '%s.ref/ckpt-%08d.gnck' "$1" "$s")
  for sec in weights momentum average; do
    "$BIN" ckpt export "$ck" --section $sec --out "$T/x.npy" >/dev/null || fail "export $ck"
    "$BIN" ckpt export "$ref" --section $sec --out "$T/y.npy" >/dev/null || fail "export $ref"
    "$B/tests/helper_npy_compare" "$T/x.npy" "$T/y.npy" exact >/dev/null || fail "$ck: $sec differs from an uninterrupted run of $s steps"
  done
}

for sig in INT TERM; do
  out=$T/$sig
  interrupt $sig "$out"
  # mpirun exits 1 after its own SIGINT/SIGTERM, whatever the ranks do
  [ $rc -ne 0 ] || fail "SIG$sig: mpirun exited 0"
  grep -q "googlenet train: SIGTERM: emergency checkpoint ckpt-[0-9]*\.gnck of step [0-9]* written in" "$out.log" \
    || { cat "$out.log"; fail "SIG$sig: no emergency checkpoint line"; }
  s=$(sed -n 's/.*emergency checkpoint ckpt-[0-9]*\.gnck of step \([0-9]*\) written in.*/\1/p' "$out.log")
  [ "${s:-0}" -ge "$done_before" ] || fail "SIG$sig: emergency checkpoint at step ${s:-none}, but step $done_before was done"
  check_exact "$out" "$s"
  ok "SIG$sig to mpirun: the emergency checkpoint of step $s (step $done_before done at the signal) equals an uninterrupted run's; newest checkpoint: step $(steps_of "$out")"
done

# --- a write cut off by the kill: its temporary file goes with a line, and --resume auto continues;
#     then SIGUSR1 to mpirun: a graceful stop, exit 3
out=$T/TERM
s=$(steps_of "$out")
printf 'partial' >"$out/.ckpt-99999999.gnck.tmp.4242.1"
mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]}" --steps 100000 --out "$out" --resume auto >"$out.2.log" 2>&1 &
mpid=$!
mpids+=("$mpid")
n0=$(logged "$out/metrics.jsonl")
for _ in $(seq 600); do [ "$(logged "$out/metrics.jsonl")" -ge $((n0 + 3)) ] && break; sleep 0.1; done
kill -USR1 $mpid
wait $mpid; rc=$?
[ $rc -eq 3 ] || { cat "$out.2.log"; fail "SIGUSR1 to mpirun: exit $rc, want 3"; }
grep -q "removed 1 temporary file left in $out by a checkpoint write that was interrupted: .ckpt-99999999.gnck.tmp.4242.1" "$out.2.log" \
  || { cat "$out.2.log"; fail "the stale temporary file was not reported"; }
[ ! -e "$out/.ckpt-99999999.gnck.tmp.4242.1" ] || fail "the stale temporary file is still there"
grep -q "resuming from $out/ckpt-$(printf %08d "$s").gnck" "$out.2.log" || { cat "$out.2.log"; fail "did not resume from step $s"; }
grep -q "googlenet train: stopped by SIGUSR1 after step [0-9]* .*, saved in $out/ckpt-[0-9]*.gnck; continue with --resume auto. Exit code 3, which mpirun reports below as the job being aborted: nothing was lost" "$out.2.log" \
  || { cat "$out.2.log"; fail "no stop line explaining mpirun's note"; }
grep -n "stopped by SIGUSR1" "$out.2.log" | head -1 >"$T/a"; grep -n "the job has been aborted\|exited with non-zero status" "$out.2.log" | head -1 >"$T/b"
[ -s "$T/b" ] && [ "$(cut -d: -f1 "$T/a")" -lt "$(cut -d: -f1 "$T/b")" ] || { cat "$out.2.log"; fail "the stop line does not come before mpirun's note"; }
s2=$(steps_of "$out")
[ "$s2" -gt "$s" ] || fail "SIGUSR1: no checkpoint past step $s"
"$BIN" ckpt verify "$(printf '%s/ckpt-%08d.gnck' "$out" "$s2")" >/dev/null || fail "the SIGUSR1 checkpoint does not verify"
ok "a stale temporary file is removed and named; SIGUSR1 to mpirun stops after a checkpoint with exit 3 and an explained note"
echo "all signal tests passed"
