#!/usr/bin/env bash
# demo.sh: the README's first command (`make demo`) after the build.
#
# Converts Debian's Fashion-MNIST (60,000 + 10,000 real 28x28 images, 10
# classes) into the ImageNet layout once, trains GoogLeNet with both auxiliary
# heads on it with `mpirun -np 2` at crop 64, writes checkpoints, evaluates the
# final model with 1 and 10 crops, and draws the training curves.
# DEMO_EPOCHS, DEMO_OUT, DEMO_DATA and DEMO_NP override the defaults;
# `scripts/demo.sh --full` runs the full recipe instead (README: "Fashion-MNIST").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=bin/googlenet
DATA=${DEMO_DATA:-data/fashion-mnist}
NP=${DEMO_NP:-2}
full=0
[ "${1:-}" = "--full" ] && full=1
if [ $full -eq 1 ]; then
  OUT=${DEMO_OUT:-runs/fashion-full}
  EPOCHS=${DEMO_EPOCHS:-30}
  TRAIN_FLAGS=(--epochs "$EPOCHS" --lr 0.03 --warmup-epochs 1 --lr-policy cosine --min-area 0.35
               --ckpt-every 1e --keep 3 --eval-every 2)
else
  OUT=${DEMO_OUT:-runs/demo}
  EPOCHS=${DEMO_EPOCHS:-1}
  TRAIN_FLAGS=(--epochs "$EPOCHS" --lr 0.03 --warmup-epochs 0.1 --lr-policy cosine --min-area 0.35
               --no-photometric --ckpt-every 300 --keep 2 --eval-every 1)
fi

# mpirun as root needs these two; they change nothing for other users
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
MPI=(mpirun -np "$NP")
[ "$NP" -gt "$(nproc)" ] && MPI+=(--oversubscribe)

start=$(date +%s)
echo "== 1/4 data: Fashion-MNIST -> $DATA (class directories of PNGs)"
python3 scripts/prepare_fashion_mnist.py --out "$DATA"

echo "== 2/4 training GoogLeNet (aux heads on, crop 64) on $NP ranks for $EPOCHS epoch(s) -> $OUT"
mkdir -p "$OUT"
"${MPI[@]}" "$BIN" train --data "$DATA/train" --val "$DATA/val" --classes-file "$DATA/classes.txt" \
  --crop 64 --batch 32 --workers 1 --out "$OUT" --log-every 10 --resume auto "${TRAIN_FLAGS[@]}"
ckpt=$(sed -n 1p "$OUT/latest")
case "$ckpt" in /*) ;; *) ckpt="$OUT/$ckpt" ;; esac

echo "== 3/4 evaluating $ckpt (Polyak average) with 1 and 10 crops on $NP ranks"
for crops in 1 10; do
  "${MPI[@]}" "$BIN" eval --ckpt "$ckpt" --data "$DATA/val" --classes-file "$DATA/classes.txt" \
    --crops $crops --batch 64 --workers 1 --report "$OUT/eval-${crops}crop.json" --quiet
done

echo "== 4/4 training curves"
png=$(scripts/plot_metrics "$OUT/metrics.jsonl" --out "$OUT/curves.png" --title "GoogLeNet on Fashion-MNIST") \
  || png="(not drawn: see the message above)"

t=$(( $(date +%s) - start ))
echo
echo "done in $((t / 60)) min $((t % 60)) s. Outputs:"
echo "  data          $DATA/{train,val}/<class>/*.png, $DATA/classes.txt"
echo "  checkpoints   $OUT/ckpt-*.gnck (newest: $ckpt; inspect with: $BIN ckpt info $ckpt)"
echo "  metrics       $OUT/metrics.jsonl (one JSON object per logged step and per evaluation)"
echo "  evaluation    $OUT/eval-1crop.json, $OUT/eval-10crop.json"
echo "  curves        $png"
