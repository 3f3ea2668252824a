#!/usr/bin/env bash
# test_eval_train.sh: a model trained on a small generated dataset scores the
# same in `googlenet eval` as in training's own evaluation (train
# --eval-every, logged to metrics.jsonl) with the same crop scheme and
# weights: 1 crop with the Polyak average (the defaults of both), 10 crops
# with the raw weights, and 10 crops under mpirun with 2 ranks for both.
. "$(dirname "$0")/lib.sh" keep-going mpi
bin=$BIN helper=$B/tests/helper_eval py=$PY tmp=$T
export OMPI_MCA_btl=self,vader
"$helper" gen "$tmp/train" --classes 5 --per-class 6 --seed 5 || exit 1
"$helper" gen "$tmp/val" --classes 5 --per-class 3 --seed 9 || exit 1

# compare OUT CROPS WEIGHTS NP: train (NP ranks) with its evaluation, then eval of its last checkpoint
compare() {
  local out=$tmp/$1 crops=$2 weights=$3 np=$4 launch=()
  [ "$np" -gt 1 ] && launch=(mpirun -np "$np" --oversubscribe)
  timeout -k 5 300 "${launch[@]}" "$bin" train --data "$tmp/train" --val "$tmp/val" --crop 64 --batch 5 --steps 12 \
      --lr 0.005 --eval-every 1e --eval-crops "$crops" --eval-weights "$weights" --out "$out" --threads 1 \
      --workers 1 --ckpt-every 0 --log-every 0 --quiet >"$out.train.log" 2>&1 ||
    { fail "$1: train failed: $(tail -n 5 "$out.train.log")"; return; }
  local ck
  ck=$(ls "$out"/ckpt-*.gnck 2>/dev/null | tail -n 1)
  [ -n "$ck" ] || { fail "$1: no checkpoint written"; return; }
  timeout -k 5 300 "${launch[@]}" "$bin" eval --ckpt "$ck" --data "$tmp/val" --crops "$crops" --weights "$weights" \
      --batch 5 --threads 1 --workers 1 --quiet --report "$out.json" >"$out.eval.log" 2>&1 ||
    { fail "$1: eval failed: $(tail -n 5 "$out.eval.log")"; return; }
  $py - "$out/metrics.jsonl" "$out.json" "$1" <<'EOF' || fail "$1: eval and training's evaluation differ"
import json, sys
val = [json.loads(l) for l in open(sys.argv[1]) if '"val_top1"' in l]
assert val, "metrics.jsonl has no validation record"
t = val[-1]
e = json.load(open(sys.argv[2]))
print(f"{sys.argv[3]}: training's evaluation at step {t['step']}: top-1 {t['val_top1']} top-5 {t['val_top5']} "
      f"loss {t['val_loss']} ({t['val_images']} images); eval: top-1 {e['top1']} top-5 {e['top5']} "
      f"loss {e['loss']} ({e['images']} images, {e['bad']} unreadable)")
assert t["step"] == e["checkpoints"][0]["step"], "the last evaluation is not of the last checkpoint"
assert t["val_images"] == e["images"], "image counts differ"
assert t["val_crops"] == e["crops_per_image"]
assert abs(t["val_top1"] - e["top1"]) < 5e-7 and abs(t["val_top5"] - e["top5"]) < 5e-7, "accuracies differ"
assert abs(t["val_loss"] - e["loss"]) < 2e-6, "losses differ"
EOF
}
compare avg1 1 average 1
compare raw10 10 raw 1
compare mpi10 10 average 2
[ $failed -eq 0 ] && echo "test_eval_train: all checks passed"
exit $failed
