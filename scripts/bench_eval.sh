#!/usr/bin/env bash
# bench_eval.sh: images per second of `googlenet eval` with 1, 10 and 144 crops
# on generated ImageNet-like JPEGs (about 500x375, a quarter portrait) and a
# checkpoint of random weights with 1000 classes, next to the network alone
# (`googlenet bench --eval`, same batch and threads) for the decode overhead.
#
#   scripts/bench_eval.sh [--crop 224] [--threads 2] [--workers 2] [--batch 32]
#                         [--np 1] [--images "200 40 6"] [--dir /tmp/gnet-bench-eval]
#
# --images gives the validation-set sizes for 1, 10 and 144 crops (the default
# scales with the crop so that each run takes tens of seconds). The data and
# the checkpoint are generated once into --dir and reused. --np N runs eval
# under mpirun -np N (img/s is then over all ranks). Prints one line per scheme
# and a Markdown table for docs/evaluation.md.
set -eu
cd "$(dirname "$0")/.."
crop=224 threads=$(nproc) workers=2 batch=32 np=1 images="" dir=/tmp/gnet-bench-eval
while [ $# -gt 0 ]; do
  case $1 in
    --crop) crop=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --np) np=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench_eval.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$images" ]; then
  if [ "$crop" -ge 160 ]; then images="200 40 6"; else images="1000 200 20"; fi
fi
read -r n1 n10 n144 <<<"$images"
py=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
make -s bin/googlenet build/release/tests/helper_eval >/dev/null
bin=bin/googlenet
mkdir -p "$dir"

# 1000 class ids (the generated tree uses the first 10) so the 1000-class
# checkpoint fits the data
classes=$dir/classes.txt
[ -s "$classes" ] || $py -c "
for i in range(1000): print('n%08d' % (1440764 + 7919 * i))" >"$classes"
for n in $n1 $n10 $n144; do
  [ -d "$dir/val-$n" ] && continue
  per=$(( (n + 9) / 10 ))
  echo "generating $((per * 10)) ImageNet-like JPEGs in $dir/val-$n ..."
  $py scripts/gen_imagenet_like.py --out "$dir/val-$n" --classes 10 --per-class "$per" --seed 7 >/dev/null
done
ck=$dir/random-$crop.gnck
[ -s "$ck" ] || build/release/tests/helper_eval ckpt "$ck" --classes 1000 --crop "$crop" --seed 1

launch=()
[ "$np" -gt 1 ] && launch=(mpirun -np "$np" --oversubscribe)
net=$(OPENBLAS_NUM_THREADS=$threads $bin bench --eval --crop "$crop" --batch "$batch" --threads "$threads" \
      --steps 8 --json | tail -n 1 | $py -c "import json,sys; print('%.2f' % json.load(sys.stdin)['img_per_s'])")
echo "network alone (bench --eval, crop $crop, batch $batch, $threads threads): $net crops/s"
rows=()
for scheme in 1 10 144; do
  case $scheme in 1) n=$n1 ;; 10) n=$n10 ;; 144) n=$n144 ;; esac
  report=$dir/report-$crop-$scheme.json
  "${launch[@]}" $bin eval --ckpt "$ck" --data "$dir/val-$n" --classes-file "$classes" --crops "$scheme" \
      --batch "$batch" --threads "$threads" --workers "$workers" --quiet --show-classes 0 --report "$report" >/dev/null
  line=$($py - "$report" "$net" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
crops_s = r["img_per_s"] * r["crops_per_image"]
print("%d %.3f %.1f %.1f %.0f" % (r["images"], r["img_per_s"], crops_s, r["seconds"],
                                  100 * crops_s / float(sys.argv[2])))
EOF
)
  read -r imgs ips cps secs share <<<"$line"
  echo "crops $scheme: $imgs images in $secs s: $ips img/s ($cps crops/s, $share% of the network alone)"
  rows+=("| $crop | $scheme | $imgs | $ips | $cps | $share% |")
done
echo
echo "command: scripts/bench_eval.sh --crop $crop --threads $threads --workers $workers --batch $batch --np $np --images \"$images\""
echo "| crop | crops | images | img/s | crops/s | of network alone |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
