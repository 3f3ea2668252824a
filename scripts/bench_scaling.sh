#!/usr/bin/env bash
# bench_scaling.sh: data-parallel scaling of `googlenet train`.
#
# On one node (the default): np=1 and np=2 with one compute thread per rank on
# the same generated ImageNet-like JPEGs, np=2 once with the allreduce
# overlapped with backward and once without (--no-overlap); prints per-rank
# throughput, the scaling efficiency (img/s at np=2 / (2 x img/s at np=1)), the
# allreduce time per step and the share of it left exposed.
#
# Across virtual hosts (--vcluster, root; cluster/vcluster.sh): 2 and 3 hosts,
# one rank each, at 1 Gbit/s, 10 Gbit/s and unshaped links. For each: the
# trainer's step time and img/s (fp32 and bf16 gradients), GoogLeNet steps of
# tests/helper_comm_bench with overlap on/off x bf16 on/off (allreduce time,
# time exposed, and the tail: what is left after the last rank ends backward),
# and the bare allreduce of the 53.5 MB. Results go to DIR/scaling.csv;
# scripts/plot_scaling prints the table, fits the ring-allreduce cost model and
# draws DIR/scaling.png. Every virtual host shares this machine's cores.
#
# Usage: scripts/bench_scaling.sh [--batch 32] [--crop 224] [--steps 6] [--bucket-mb 25]
#                                 [--data DIR] [--bin bin/googlenet]
#        scripts/bench_scaling.sh --vcluster [--out runs/scaling] [--hosts "2 3"]
#                                 [--links "1gbit 10gbit none"] [--batch 32] [--crop 224] [--steps 4]
# The first step of every run (allocation, first touch) is left out of the figures.
set -euo pipefail
batch=32 crop=224 steps="" bucket=25 data="" bin=bin/googlenet
vcluster=0 out=runs/scaling hosts="2 3" links="1gbit 10gbit none"
while [ $# -gt 0 ]; do
  case "$1" in
    --vcluster) vcluster=1; shift ;;
    --out) out=$2; shift 2 ;;
    --hosts) hosts=$2; shift 2 ;;
    --links) links=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --crop) crop=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --bucket-mb) bucket=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_scaling.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
# The study across virtual hosts (--vcluster): one CSV row per hosts x link x
# gradient format x overlap. Columns: step_s, img_s (the trainer, overlap on
# only), allreduce_ms, exposed_ms, tail_ms, backward_s, model_step_s (GoogLeNet
# steps of helper_comm_bench, slowest rank), raw_ms (the allreduce alone).
vcluster_study() {
  local root vc helper h link c ov rate line csv row ips
  [ "$(id -u)" -eq 0 ] || { echo "bench_scaling.sh: --vcluster needs root (network namespaces)" >&2; exit 1; }
  root=$(cd "$(dirname "$0")/.." && pwd)
  vc=$root/cluster/vcluster.sh
  helper=$root/build/release/tests/helper_comm_bench
  make -C "$root" --no-print-directory -s build/release/tests/helper_comm_bench >/dev/null
  bin=$(realpath "$bin")
  steps=${steps:-4}
  for h in $hosts; do
    [[ $h =~ ^[0-9]+$ ]] && [ "$h" -ge 2 ] || { echo "bench_scaling.sh: --hosts '$hosts': give host counts of 2 or more" >&2; exit 2; }
  done
  for link in $links; do
    [[ $link =~ ^(none|[0-9]+(bit|kbit|mbit|gbit|tbit))$ ]] || { echo "bench_scaling.sh: --links: '$link' is not a rate such as 10gbit, nor none" >&2; exit 2; }
  done
  export VC_NAME=vcb VC_STATE=/run/vcluster/vcb
  if ip -4 -o addr show | grep -q " ${VC_SUBNET:-10.77.0}\\."; then
    echo "bench_scaling.sh: ${VC_SUBNET:-10.77.0}.0/24 is in use (a virtual cluster is up?); take it down or set VC_SUBNET" >&2; exit 1
  fi
  trap "'$vc' down >/dev/null 2>&1; rm -rf '$work'" EXIT
  local maxh=0
  for h in $hosts; do [ "$h" -gt $maxh ] && maxh=$h; done
  data=$work/data
  /usr/bin/python3 "$root/scripts/gen_imagenet_like.py" --out "$data" --classes 8 \
    --per-class $(( (maxh * batch * steps + 7) / 8 )) >/dev/null
  mkdir -p "$out"
  csv=$out/scaling.csv
  echo "hosts,link,compress,overlap,step_s,img_s,allreduce_ms,exposed_ms,tail_ms,backward_s,model_step_s,raw_ms,batch,crop,cores" >"$csv"
  run np1 1
  read -r ips _ _ < <(summary "$work/np1/metrics.jsonl")
  line=$(mpirun -np 1 "$helper" --mode model --comm off --batch "$batch" --crop "$crop" --steps 2 --warmup 1)
  echo "1,none,none,off,$(awk "BEGIN {print $batch / $ips}"),$ips,0,0,0,$(field backward_s <<<"$line"),$(field step_s <<<"$line"),0,$batch,$crop,$(getconf _NPROCESSORS_ONLN)" >>"$csv"
  launch() { "$vc" mpirun --bind-to none -x OPENBLAS_NUM_THREADS "$@"; }
  for h in $hosts; do
    for link in $links; do
      rate=(); [ "$link" = none ] || rate=(--rate "$link")
      "$vc" down >/dev/null
      "$vc" up "$h" "${rate[@]}" >/dev/null
      for c in none bf16; do
        rm -rf "$work/vc"
        run vc "$h" --grad-compress "$c"
        read -r ips _ _ < <(summary "$work/vc/metrics.jsonl")
        raw=$(launch -np "$h" "$helper" --mode raw --bucket-mb "$bucket" --compress "$c" --reps 3 | field allreducer_ms)
        for ov in overlap nooverlap; do
          line=$(launch -np "$h" "$helper" --mode model --comm $ov --bucket-mb "$bucket" --compress "$c" \
            --batch "$batch" --crop "$crop" --steps 2 --warmup 1)
          row="$h,$link,$c,$([ $ov = overlap ] && echo on || echo off)"
          if [ $ov = overlap ]; then row+=",$(awk "BEGIN {print $h * $batch / $ips}"),$ips"; else row+=",,"; fi
          row+=",$(field comm_ms <<<"$line"),$(field exposed_ms <<<"$line"),$(field tail_ms <<<"$line")"
          row+=",$(field backward_s <<<"$line"),$(field step_s <<<"$line"),$raw,$batch,$crop,$(getconf _NPROCESSORS_ONLN)"
          echo "$row" >>"$csv"
          echo "bench_scaling.sh: $row" >&2
        done
      done
    done
  done
  "$vc" down >/dev/null
  "$root/scripts/plot_scaling" "$csv" --out "$out/scaling.png" | tee "$out/summary.txt"
}
field() { sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p"; }

[ -x "$bin" ] || { echo "bench_scaling.sh: $bin is missing; run make" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
work=$(mktemp -d /tmp/bench_scaling.XXXXXX)
trap 'rm -rf "$work"' EXIT
# How ranks start: on this node, one per core; on virtual hosts, through
# cluster/vcluster.sh and unbound (every host sees, and shares, all the cores).
launch() { mpirun --oversubscribe --bind-to core "$@"; }
run() { # name np extra-flags...
  local name=$1 np=$2; shift 2
  launch -np "$np" "$bin" train --data "$data" --crop "$crop" --batch "$batch" \
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

if [ $vcluster = 1 ]; then
  vcluster_study
  exit 0
fi
steps=${steps:-6}
if [ -z "$data" ]; then
  data=$work/data
  # enough images that neither run repeats an image within its steps
  /usr/bin/python3 "$(dirname "$0")/gen_imagenet_like.py" --out "$data" --classes 8 \
    --per-class $(( (2 * batch * steps + 7) / 8 )) >/dev/null
fi
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
