#!/usr/bin/env bash
# test_resume_rules.sh: what a resume may change, and the words and limits
# every command shares.
# - settings that change the run (global batch, length, crop, schedule, data)
#   are refused with one line naming each and its old value, and nothing in
#   --out changes; --allow-changes continues with them from the checkpoint's
#   step, never from a step recomputed from the samples seen;
# - harmless settings (threads, workers, logging) are accepted and listed;
# - a complete run says so, exits 0 and writes nothing;
# - a failed start leaves nothing behind in --out;
# - steps and epochs are counted one way (ckpt info, resume, progress lines);
# - under mpirun a bad flag is reported once, in one piece;
# - googlenet --version and googlenet help CMD.
. "$(dirname "$0")/lib.sh" fail-fast mpi
# the checkpoints, latest and metrics.jsonl (an index cache may be rebuilt for other data)
snapshot() { (cd "$1" && find . -type f ! -name "*.cache" -exec sha256sum {} + | sort); }

"$B/tests/helper_gen_dataset" --out "$T/data" --classes 3 --per-class 16 --size 32 --seed 2 || fail "dataset"
"$B/tests/helper_gen_dataset" --out "$T/data2" --classes 3 --per-class 17 --size 32 --seed 2 || fail "dataset 2"
# 48 images, batch 8: 6 steps per epoch; 10 steps, checkpoints at 5 and 10
RUN=(train --data "$T/data" --crop 64 --batch 8 --no-aux --lr 0.005 --threads 1 --workers 1 --eval-every 0
     --ckpt-every 5 --keep 0 --log-every 0 --conv-algo winograd)
"$BIN" "${RUN[@]}" --steps 10 --out "$T/a" >"$T/a.log" 2>&1 || { cat "$T/a.log"; fail "base run"; }
[ -f "$T/a/ckpt-00000010.gnck" ] || fail "no step-10 checkpoint"

# --- one vocabulary: epochs counted from 1 in ckpt info, the progress lines and metrics
"$BIN" ckpt info "$T/a/ckpt-00000005.gnck" | grep -q "position       step 5 (epoch 1, step 5); 40 samples seen" \
  || { "$BIN" ckpt info "$T/a/ckpt-00000005.gnck"; fail "ckpt info's position"; }
"$BIN" ckpt info "$T/a/ckpt-00000010.gnck" | grep -q "warm-up 0 steps" || fail "ckpt info still says iters"
grep -q "^step 6/10 (epoch 1: 6/6)" "$T/a.log" && grep -q "^step 7/10 (epoch 2: 1/6)" "$T/a.log" \
  || { cat "$T/a.log"; fail "progress lines"; }
grep -q '"step":6,"epoch":1,"epoch_step":6,"epochs_done":1.0000' "$T/a/metrics.jsonl" || fail "metrics.jsonl epochs"
ok "steps and epochs: the same words in ckpt info, progress lines and metrics"

# --- a complete run: says so, exit 0, nothing written (the index cache included)
all=$(cd "$T/a" && find . -type f -exec sha256sum {} + | sort)
before=$(snapshot "$T/a")
"$BIN" "${RUN[@]}" --steps 10 --out "$T/a" --resume auto >"$T/c.log" 2>&1 || { cat "$T/c.log"; fail "complete run: exit $?"; }
grep -q "$T/a is complete: $T/a/ckpt-00000010.gnck is step 10 (epoch 2, step 4 of 6), the last of the run; nothing to do" "$T/c.log" \
  || { cat "$T/c.log"; fail "no 'complete' line"; }
[ "$(cd "$T/a" && find . -type f -exec sha256sum {} + | sort)" = "$all" ] || fail "a complete run changed $T/a"
ok "a complete run exits 0 and writes nothing"

# --- settings that change the run are refused, each named, nothing changed
refuse() { # WHAT-TO-GREP... -- FLAGS
  local want=() flags=()
  while [ "$1" != "--" ]; do want+=("$1"); shift; done
  shift
  "$BIN" "${RUN[@]}" --out "$T/a" --resume auto "$@" >"$T/r.log" 2>&1; local rc=$?
  [ $rc -eq 2 ] || { cat "$T/r.log"; fail "$*: exit $rc, want 2"; }
  for w in "${want[@]}"; do grep -q -- "$w" "$T/r.log" || { cat "$T/r.log"; fail "$*: the refusal does not name '$w'"; }; done
  grep -q -- "pass --allow-changes" "$T/r.log" || fail "$*: no way out named"
  [ "$(snapshot "$T/a")" = "$before" ] || fail "a refused resume ($*) changed $T/a"
}
refuse "the global batch 4 = 1 rank x --batch 4 x --accum 1 (was 8 = 1 x 8 x 1)" "--steps 12 (was 10)" -- --batch 4 --steps 12
refuse "--crop 96 (was 64)" -- --steps 10 --crop 96
refuse "--lr 0.05 (was 0.005)" "--lr-policy fixed (was poly)" -- --steps 10 --lr 0.05 --lr-policy fixed
refuse "the training data (51 images, was 48)" -- --steps 10 --data "$T/data2"
ok "changes of batch, length, crop, schedule and data are refused, named, and change nothing"

# --- --allow-changes: continues from the checkpoint's step, at the new batch
"$BIN" "${RUN[@]}" --out "$T/a" --resume auto --batch 4 --steps 12 --allow-changes >"$T/ac.log" 2>&1 \
  || { cat "$T/ac.log"; fail "--allow-changes"; }
grep -q "resuming with changed settings (--allow-changes): the global batch 4" "$T/ac.log" \
  && grep -q "steps 11 to 12" "$T/ac.log" || { cat "$T/ac.log"; fail "--allow-changes did not continue at step 11"; }
[ -f "$T/a/ckpt-00000012.gnck" ] && ! ls "$T"/a/ckpt-0000002*.gnck >/dev/null 2>&1 || { ls "$T/a"; fail "steps were recomputed"; }
ok "--allow-changes continues from step 10 to 12"

# --- harmless changes are accepted and listed; the same global batch split otherwise is exact
mkdir "$T/h"
cp "$T/a/ckpt-00000005.gnck" "$T/h/"
"$BIN" "${RUN[@]}" --steps 10 --out "$T/h" --resume auto --threads 2 --workers 2 --log-every 3 >"$T/h.log" 2>&1 \
  || { cat "$T/h.log"; fail "harmless changes"; }
grep -q "changed since the checkpoint, without changing what is trained: --workers 2 (was 1), --threads 2 (was 1), --out $T/h (was $T/a), --log-every 3 (was 0)" "$T/h.log" \
  || { cat "$T/h.log"; fail "harmless changes not listed"; }
sha() { "$BIN" ckpt info "$1" | sed -n 's/^params_sha256: //p'; }
[ "$(sha "$T/h/ckpt-00000010.gnck")" = "$(sha "$T/a/ckpt-00000010.gnck")" ] || fail "a harmless change changed the weights"
mkdir "$T/g"
cp "$T/a/ckpt-00000005.gnck" "$T/g/"
"$BIN" "${RUN[@]}" --steps 10 --out "$T/g" --resume auto --batch 4 --accum 2 >"$T/g.log" 2>&1 \
  || { cat "$T/g.log"; fail "the same global batch as 4 x 2"; }
grep -q "1 rank x --batch 4 x --accum 2 (was 1 x 8 x 1; the same global batch 8)" "$T/g.log" || { cat "$T/g.log"; fail "split not listed"; }
ok "threads, workers, log interval accepted and listed (bit for bit the same run); the same global batch resumes"

# --- a failed start leaves nothing behind
"$BIN" "${RUN[@]}" --steps 10 --out "$T/new/run" --classes 5 >"$T/f.log" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "classes 5 does not match the 3 classes" "$T/f.log" || { cat "$T/f.log"; fail "bad --classes: exit $rc"; }
[ ! -e "$T/new/run" ] || { ls -la "$T/new/run"; fail "a failed start left $T/new/run behind"; }
ok "a failed start leaves nothing in --out"

# --- under mpirun a bad flag is one line, once, prefix and message together
mpirun --oversubscribe -np 2 "$BIN" train --data "$T/data" --bacth 4 >"$T/m.log" 2>&1
n=$(grep -c "googlenet train: unknown flag '--bacth'; did you mean '--batch'?" "$T/m.log")
[ "$n" -eq 1 ] && ! grep -q "^googlenet train: *$" "$T/m.log" || { cat "$T/m.log"; fail "bad flag under mpirun: $n lines"; }
mpirun --oversubscribe -np 2 "$BIN" eval --data "$T/data" --ckpt "$T/a/ckpt-00000010.gnck" --crop 10 >"$T/m.log" 2>&1
[ "$(grep -c "googlenet eval: --crop 10 is too small for GoogLeNet: the smallest is 63" "$T/m.log")" -eq 1 ] \
  || { cat "$T/m.log"; fail "eval --crop 10 under mpirun"; }
ok "a bad flag under mpirun: one line, once; the smallest crop is stated"

# --- --version and help CMD
"$BIN" --version | grep -q "^googlenet .*" && "$BIN" --version | grep -q "checkpoints  writes format 1.0" \
  || fail "googlenet --version"
diff <("$BIN" help eval) <("$BIN" eval --help) >/dev/null || fail "help eval differs from eval --help"
diff <("$BIN" help ckpt slim) <("$BIN" ckpt slim --help) >/dev/null || fail "help ckpt slim"
"$BIN" help nothing >/dev/null 2>&1; [ $? -eq 2 ] || fail "help of an unknown command"
ok "--version and help CMD"
echo "all resume-rule tests passed"
