#!/usr/bin/env bash
# bench_scaling.sh: data-parallel scaling of `googlenet train` on one node.
#
# Runs np=1 and np=2 with one compute thread per rank on the same generated
# ImageNet-like JPEGs, np=2 once with the allreduce overlapped with backward
# and once without (--no-overlap), and prints per-rank throughput, the scaling
# efficiency (img/s at np=2 / (2 x img/s at np=1)), the allreduce time per step
# and the share of it left exposed (not hidden behind backward).
#
# Usage: scripts/bench_scaling.sh [--batch 32] [--crop 224] [--steps 6] [--bucket-mb 25]
#                                 [--data DIR] [--bin bin/googlenet]
# The first step of every run (allocation, first touch) is left out of the figures.
set -euo pipefail
batch=32 crop=224 steps=6 bucket=25 data="" bin=bin/googlenet
while [ $# -gt 0 ]; do
  case "$1" in
    --batch) batch=$2; shift 2 ;;
    --crop) crop=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --bucket-mb) bucket=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_scaling.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "bench_scaling.sh: $bin is missing; run make" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d /tmp/bench_scaling.XXXXXX)
trap 'rm -rf "$work"' EXIT
if [ -z "$data" ]; then
  data=$work/data
  # enough images that neither run repeats an image within its steps
  /usr/bin/python3 "$(dirname "$0")/gen_imagenet_like.py" --out "$data" --classes 8 \
    --per-class $(( (2 * batch * steps + 7) / 8 )) >/dev/null
fi

run() { # name np extra-flags...
  local name=$1 np=$2; shift 2
  mpirun --oversubscribe --bind-to core -np "$np" "$bin" train --data "$data" --crop "$crop" --batch "$batch" \
    --steps "$steps" --threads 1 --workers 1 --bucket-mb "$bucket" --eval-every 0 --ckpt-every 0 \
    --log-every 0 --quiet --out "$work/$name" "$@" >"$work/$name.log" 2>&1 \
    || { cat "$work/$name.log" >&2; echo "bench_scaling.sh: run $name failed" >&2; exit 1; }
}
summary() { # metrics.jsonl -> "img_per_s exposed_share busy_share" (medians, first step left out)
  /usr/bin/python3 - "$1" <<'EOF'
import json, statistics, sys
rows = [r for r in map(json.loads, open(sys.argv[1])) if 'loss' in r][1:]
med = lambda k: statistics.median(r[k] for r in rows)
print(med('img_per_s'), med('comm_exposed'), med('comm_busy'))
EOF
}

run np1 1
run np2 2
run np2_noovl 2 --no-overlap
read -r ips1 _ _ < <(summary "$work/np1/metrics.jsonl")
read -r ips2 exp2 busy2 < <(summary "$work/np2/metrics.jsonl")
read -r ips3 exp3 busy3 < <(summary "$work/np2_noovl/metrics.jsonl")
/usr/bin/python3 - "$ips1" "$ips2" "$exp2" "$busy2" "$ips3" "$exp3" "$busy3" "$batch" "$crop" <<'EOF'
import sys
ips1, ips2, exp2, busy2, ips3, exp3, busy3 = map(float, sys.argv[1:8])
batch, crop = sys.argv[8], sys.argv[9]
step1 = int(batch) / ips1
step2 = 2 * int(batch) / ips2
print(f"googlenet train scaling: batch {batch} per rank, crop {crop}, 1 thread per rank, median of steps 2..")
print(f"{'run':<22}{'img/s':>9}{'per rank':>10}{'step s':>8}{'allreduce/step':>16}{'exposed':>9}{'hidden':>8}")
print(f"{'np=1':<22}{ips1:>9.2f}{ips1:>10.2f}{step1:>8.2f}{'-':>16}{'-':>9}{'-':>8}")
for name, ips, exp, busy in (("np=2 overlap", ips2, exp2, busy2), ("np=2 --no-overlap", ips3, exp3, busy3)):
    st = 2 * int(batch) / ips
    ar = busy * st
    hidden = 1 - exp / busy if busy > 0 else 0
    print(f"{name:<22}{ips:>9.2f}{ips / 2:>10.2f}{st:>8.2f}{1e3 * ar:>13.0f} ms{100 * exp / busy if busy else 0:>8.0f}%{100 * hidden:>7.0f}%")
print(f"scaling efficiency at np=2: {100 * ips2 / (2 * ips1):.1f}% with overlap, {100 * ips3 / (2 * ips1):.1f}% without")
print("allreduce/step is the buckets' busy time and 'exposed' the time finish() blocked: both include waiting")
print("for the slower rank's backward. scripts/bench_allreduce.sh model measures the tail after the last")
print("rank arrives, which is the communication that overlap must hide.")
EOF
