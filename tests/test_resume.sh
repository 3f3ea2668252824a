#!/usr/bin/env bash
# test_resume.sh: preemption and exact resume, under mpirun -np 2.
# - SIGUSR1 to mpirun (a scheduler's preemption): the ranks finish the step,
#   write a checkpoint and exit 3; `--resume auto` then repeats the
#   uninterrupted run step for step (the same losses) and bit for bit (the same
#   final weights), dropout and augmentation on.
# - a damaged newest checkpoint is named and the previous one is used; when
#   all are damaged the run starts afresh, identical to a new run;
# - another model's checkpoint (--no-aux) is refused naming the setting;
# - another rank count resumes: exactly with --accum keeping the global batch,
#   or with the epoch position re-split (and said so);
# - a rank killed with SIGKILL ends the job with a non-zero exit, no hang.
. "$(dirname "$0")/lib.sh" fail-fast mpi
test_cleanup() { pkill -9 -f "$T" 2>/dev/null; }

"$B/tests/helper_gen_dataset" --out "$T/data" --classes 4 --per-class 16 --size 32 --seed 3 || fail "dataset"
# a fixed convolution plan: independent runs are compared bit for bit (the
# timed plan of --conv-algo auto is tested on its own below)
RUN=(train --data "$T/data" --crop 64 --batch 4 --epochs 3 --lr 0.005 --threads 1 --workers 1
     --eval-every 0 --ckpt-every 4 --keep 0 --log-every 0 --quiet --conv-algo winograd)
sha() { # params_sha256 of a checkpoint; fails the test when there is none
  local h
  h=$("$BIN" ckpt info "$1" | sed -n 's/^params_sha256: //p')
  [ ${#h} -eq 64 ] || fail "no params_sha256 for $1"
  echo "$h"
}
losses() { "$PY" -c "import json,sys; [print(r['step'], r['loss']) for r in map(json.loads, open(sys.argv[1])) if 'loss' in r]" "$1"; }

# --- the uninterrupted run
mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]}" --out "$T/a" >"$T/a.log" 2>&1 || { cat "$T/a.log"; fail "uninterrupted run"; }
final=$(ls "$T"/a/ckpt-*.gnck | tail -1)
[ "$(basename "$final")" = "ckpt-00000024.gnck" ] || fail "expected 24 steps, got $final"

# --- preempted with SIGUSR1 after a few steps, then resumed
mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]}" --out "$T/b" >"$T/b.log" 2>&1 &
mpid=$!
for _ in $(seq 600); do
  [ -f "$T/b/metrics.jsonl" ] && [ "$(wc -l <"$T/b/metrics.jsonl")" -ge 6 ] && break
  sleep 0.1
done
kill -USR1 $mpid
wait $mpid; rc=$?
[ $rc -eq 3 ] || { cat "$T/b.log"; fail "preempted run exited $rc, want 3"; }
grep -q "stopped by SIGUSR1 after step" "$T/b.log" || fail "no stop message"
stopped=$(ls "$T"/b/ckpt-*.gnck | tail -1)
[ "$stopped" != "$T/b/ckpt-00000024.gnck" ] || fail "the run finished before the signal: nothing to resume"
"$BIN" ckpt verify "$stopped" >/dev/null || fail "the preemption checkpoint does not verify"
mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]}" --out "$T/b" --resume auto >"$T/b2.log" 2>&1 \
  || { cat "$T/b2.log"; fail "resumed run"; }
grep -q "resuming from $stopped" "$T/b2.log" || { cat "$T/b2.log"; fail "did not resume from $stopped"; }
[ "$(sha "$final")" = "$(sha "$T/b/ckpt-00000024.gnck")" ] || fail "resumed weights differ from the uninterrupted run"
for sec in momentum average; do
  "$BIN" ckpt export "$final" --section $sec --out "$T/a_$sec.npy" >/dev/null || fail "export $sec of $final"
  "$BIN" ckpt export "$T/b/ckpt-00000024.gnck" --section $sec --out "$T/b_$sec.npy" >/dev/null || fail "export $sec"
  "$B/tests/helper_npy_compare" "$T/a_$sec.npy" "$T/b_$sec.npy" exact >/dev/null || fail "resumed $sec differs"
done
# step for step: every logged step's loss equals the uninterrupted run's
losses "$T/a/metrics.jsonl" | sort -n >"$T/la"
losses "$T/b/metrics.jsonl" | sort -n -u >"$T/lb"
[ "$(wc -l <"$T/lb")" -ge 24 ] && diff "$T/la" "$T/lb" >/dev/null || { diff "$T/la" "$T/lb" | head; fail "losses differ step for step"; }
ok "SIGUSR1 -> checkpoint, exit 3; resume repeats the run bit for bit"

# --- the convolution plan: a timed one (--conv-algo auto) is kept in the
# checkpoints and a resume runs it again; --conv-algo on a resume replaces it
plan() { "$BIN" ckpt info "$1" | sed -n 's/^ *extra *conv_plan=//p'; }
AUTO=("${RUN[@]}")
AUTO[${#AUTO[@]}-1]=auto
mpirun --oversubscribe -np 2 "$BIN" "${AUTO[@]}" --steps 8 --out "$T/p" >"$T/p.log" 2>&1 || { cat "$T/p.log"; fail "auto run"; }
p8=$(plan "$T/p/ckpt-00000008.gnck")
grep -q "inception_3a/3x3=" <<<"$p8" || { "$BIN" ckpt info "$T/p/ckpt-00000008.gnck"; fail "no convolution plan in the checkpoint"; }
# (a run of 8 steps made 12 long: a change of what is trained, so --allow-changes)
mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]:0:${#RUN[@]}-2}" --steps 12 --allow-changes --out "$T/p" --resume auto >"$T/p2.log" 2>&1 \
  || { cat "$T/p2.log"; fail "resume of the auto run"; }
grep -q "convolution plan: the checkpoint's" "$T/p2.log" || { cat "$T/p2.log"; fail "the resume did not take the checkpoint's plan"; }
[ "$(plan "$T/p/ckpt-00000012.gnck")" = "$p8" ] || fail "the resumed run wrote another plan"
mkdir "$T/g2"
cp "$T"/a/ckpt-00000012.gnck "$T/g2/"
mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]:0:${#RUN[@]}-2}" --conv-algo gemm --out "$T/g2" --resume auto >"$T/g2.log" 2>&1 \
  || { cat "$T/g2.log"; fail "resume with --conv-algo gemm"; }
grep -q "replaces the checkpoint's convolution plan" "$T/g2.log" || { cat "$T/g2.log"; fail "no notice of the replaced plan"; }
grep -q "f4x3" <<<"$(plan "$T/g2/ckpt-00000024.gnck")" && fail "--conv-algo gemm was not applied"
[ "$(sha "$final")" != "$(sha "$T/g2/ckpt-00000024.gnck")" ] || fail "GEMM and Winograd gave the same bits: is the plan used at all?"
ok "a timed plan is kept and reused on resume; --conv-algo replaces it, with a notice"

# --- a damaged newest checkpoint: named, and the previous one used
mkdir "$T/c"
cp "$T"/a/ckpt-00000016.gnck "$T"/a/ckpt-00000020.gnck "$T/c/"
flip_byte "$T/c/ckpt-00000020.gnck" 100000
mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]}" --out "$T/c" --resume auto >"$T/c.log" 2>&1 || { cat "$T/c.log"; fail "resume past damage"; }
grep -q "ckpt-00000020.gnck" "$T/c.log" && grep -q "resuming from $T/c/ckpt-00000016.gnck" "$T/c.log" \
  || { cat "$T/c.log"; fail "damaged checkpoint not reported or not skipped"; }
[ "$(sha "$final")" = "$(sha "$T/c/ckpt-00000024.gnck")" ] || fail "resume from step 16 differs"
ok "a damaged newest checkpoint is named and skipped"
# every checkpoint damaged: named, and the run starts from scratch as a fresh
# one would (a damaged candidate partly read must not leak into the weights)
mkdir "$T/c2"
cp "$T"/a/ckpt-00000016.gnck "$T"/a/ckpt-00000020.gnck "$T/c2/"
# in the last section (the average): weights and momentum are read into the buffers first
for f in "$T"/c2/ckpt-*.gnck; do
  flip_byte "$f" $(( $(stat -c %s "$f") * 5 / 6 ))
done
mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]}" --out "$T/c2" --resume auto >"$T/c2.log" 2>&1 \
  || { cat "$T/c2.log"; fail "resume with every checkpoint damaged"; }
grep -q "none of the 2 checkpoints" "$T/c2.log" && grep -q "starting from scratch" "$T/c2.log" \
  || { cat "$T/c2.log"; fail "all-damaged --out not reported"; }
[ "$(sha "$final")" = "$(sha "$T/c2/ckpt-00000024.gnck")" ] || fail "the run from scratch differs from a fresh one"
ok "every checkpoint damaged: named, and a fresh start identical to a new run"

# --- nothing of a finished run is lost to a second run in the same --out
before=$(cd "$T/a" && sha256sum ckpt-*.gnck metrics.jsonl)
"$BIN" "${RUN[@]}" --out "$T/a" >"$T/f.log" 2>&1; rc=$?
[ $rc -ne 0 ] && grep -q "already holds checkpoints.*--resume auto" "$T/f.log" \
  || { cat "$T/f.log"; fail "a fresh run into a used --out was not refused (exit $rc)"; }
"$BIN" "${RUN[@]}" --out "$T/a" --resume "$T/a/ckpt-00000008.gnck" >"$T/g.log" 2>&1; rc=$?
[ $rc -ne 0 ] && grep -q "past step 8 .*ckpt-00000024.gnck" "$T/g.log" \
  || { cat "$T/g.log"; fail "resuming an older checkpoint over newer ones was not refused (exit $rc)"; }
# another model (here without the aux heads): the setting that differs is named, for
# --resume auto (no fall back to older checkpoints) as for --resume FILE
for how in auto "$T/a/ckpt-00000024.gnck"; do
  "$BIN" "${RUN[@]}" --no-aux --out "$T/a" --resume "$how" >"$T/h.log" 2>&1; rc=$?
  [ $rc -eq 1 ] && grep -q "ckpt-00000024.gnck: checkpoint was made with the auxiliary heads.*drop --no-aux" "$T/h.log" \
    || { cat "$T/h.log"; fail "--resume $how of another model's checkpoint: exit $rc, setting not named"; }
done
[ "$(cd "$T/a" && sha256sum ckpt-*.gnck metrics.jsonl)" = "$before" ] || fail "a refused run changed $T/a"
ok "a fresh run, an older checkpoint or another model's checkpoint in a used --out is refused and changes nothing"

# --- another rank count. 1 rank: --accum 2 keeps the global batch of 2 ranks x 4, so the run
# continues where it stopped and ends at step 24, with the weights of the uninterrupted 2-rank run
# up to rounding (dropout off: its masks are drawn per rank and micro-batch). 3 ranks cannot keep
# 8: the epoch position is re-split over 12, the samples of a partial batch are seen again, and the
# step count goes on from 12 (never recomputed into a larger one)
XRUN=("${RUN[@]}" --dropout 0 --aux-dropout 0)
mpirun --oversubscribe -np 2 "$BIN" "${XRUN[@]}" --out "$T/x" >"$T/x.log" 2>&1 || { cat "$T/x.log"; fail "dropout-free run"; }
mkdir "$T/d"
cp "$T"/x/ckpt-00000012.gnck "$T/d/"
"$BIN" "${XRUN[@]}" --out "$T/d" --resume auto >"$T/d.log" 2>&1 || { cat "$T/d.log"; fail "resume on 1 rank"; }
grep -q "resuming on 1 rank instead of 2: --accum 2 keeps the global batch at 8, so the run continues exactly" "$T/d.log" \
  || { cat "$T/d.log"; fail "no notice of the kept global batch"; }
[ -f "$T/d/ckpt-00000024.gnck" ] && ! ls "$T"/d/ckpt-0000004*.gnck >/dev/null 2>&1 || { ls "$T/d"; fail "1 rank x 4 x accum 2 should end at step 24"; }
"$BIN" ckpt export "$T/x/ckpt-00000024.gnck" --out "$T/x24.npy" >/dev/null || fail "export x"
"$BIN" ckpt export "$T/d/ckpt-00000024.gnck" --out "$T/d24.npy" >/dev/null || fail "export d"
"$B/tests/helper_npy_compare" "$T/d24.npy" "$T/x24.npy" 1e-4 >"$T/cmp.log" || { cat "$T/cmp.log"; fail "1 rank x accum 2 drifted from 2 ranks"; }
mkdir "$T/d3"
cp "$T"/x/ckpt-00000012.gnck "$T/d3/"
mpirun --oversubscribe -np 3 "$BIN" "${XRUN[@]}" --out "$T/d3" --resume auto >"$T/d3.log" 2>&1 || { cat "$T/d3.log"; fail "resume on 3 ranks"; }
grep -q "resuming on 3 ranks instead of 2: the global batch is 12 (was 8), so the epoch position is re-split: the run continues after step 12 (epoch 2, step 2 of 6), and 8 samples of that epoch are seen again; it now ends at step 22" "$T/d3.log" \
  || { cat "$T/d3.log"; fail "no re-split notice"; }
[ -f "$T/d3/ckpt-00000022.gnck" ] || { ls "$T/d3"; fail "3 ranks should end at step 22"; }
ok "another rank count: the global batch kept by --accum ($(sed 's/.*max |a-b| \/ max|b| = \([^,]*\),.*/\1/' "$T/cmp.log") from the 2-rank weights), or the epoch re-split"

# --- SIGKILL of one rank mid-run: non-zero exit within the timeout, no hang
mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]}" --epochs 100 --timeout 20 --out "$T/e" >"$T/e.log" 2>&1 &
mpid=$!
for _ in $(seq 600); do
  [ -f "$T/e/metrics.jsonl" ] && [ "$(wc -l <"$T/e/metrics.jsonl")" -ge 2 ] && break
  sleep 0.1
done
victim=$(pgrep -f -- "--out $T/e" | grep -v "^$mpid\$" | while read -r p; do
  [ "$(ps -o comm= -p "$p")" != "mpirun" ] && echo "$p"; done | tail -1)
[ -n "$victim" ] || fail "no rank process found"
start=$(date +%s)
kill -9 "$victim"
for _ in $(seq 120); do kill -0 $mpid 2>/dev/null || break; sleep 0.5; done
if kill -0 $mpid 2>/dev/null; then fail "the job still runs 60 s after a rank was killed"; fi
wait $mpid; rc=$?
[ $rc -ne 0 ] || fail "the job exited 0 after a rank was killed"
ok "a killed rank ends the job (exit $rc after $(( $(date +%s) - start )) s)"
echo "all resume tests passed"
