#!/usr/bin/env bash
# bench_vs_pytorch.sh: bin/googlenet bench against PyTorch on the same machine, in one run.
#
# For each mode (training, inference) it alternates, R times, three one-process runs:
# ours (bin/googlenet bench), the same network in PyTorch and torchvision's googlenet
# (scripts/bench_pytorch.py), each with the same batch, crop and thread count, and
# prints the median of each figure and the median of the per-round ratios: on a
# shared machine the ratios of neighbouring runs are steadier than the times.
#
#   scripts/bench_vs_pytorch.sh [--batch 32] [--threads 2] [--crop 224] [--steps 3]
#                               [--warmup 1] [--repeats 3] [--modes train,eval]
#                               [--bin bin/googlenet] [--log FILE] [--plain]
#
# PyTorch runs as a careful user runs it on a CPU: under tcmalloc
# (libtcmalloc-minimal4, LD_PRELOAD) with the model and input in channels_last.
# --plain runs it with glibc malloc and NCHW instead, for reference.
# Ours runs without OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (some machines set
# them; a user's does not), with its default --conv-algo auto; the OpenBLAS
# kernels and the SIMD table it ran with are printed.
# The JSON line of every run is kept in the log (default: a file in /tmp, named at
# the end). Targets: training >= 2x PyTorch and >= 1.3x torchvision, inference
# >= 2.5x and >= 1.3x, peak memory of training <= 0.5x PyTorch's.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
batch=32 threads=2 crop=224 steps=3 warmup=1 repeats=3 modes=train,eval
bin=$here/bin/googlenet log= plain=0
py=/usr/bin/python3
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --batch|--threads|--crop|--steps|--warmup|--repeats|--modes|--bin|--log)
      [ $# -ge 2 ] || { echo "bench_vs_pytorch.sh: $1 needs a value" >&2; exit 2; }
      v=$2; k=${1#--}; shift 2
      case $k in
        modes|bin|log) ;;
        *) [[ "$v" =~ ^[0-9]+$ ]] || { echo "bench_vs_pytorch.sh: --$k takes a whole number, got '$v'" >&2; exit 2; } ;;
      esac
      printf -v "$k" '%s' "$v" ;;
    --plain) plain=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench_vs_pytorch.sh: unknown flag '$1' (--help lists them)" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "bench_vs_pytorch.sh: $bin is missing; run make first (or pass --bin)" >&2; exit 2; }
"$py" -c 'import torch, torchvision' 2>/dev/null ||
  { echo "bench_vs_pytorch.sh: $py cannot import torch/torchvision; apt-get install python3-torch python3-torchvision" >&2; exit 2; }
for m in ${modes//,/ }; do
  [[ $m == train || $m == eval ]] || { echo "bench_vs_pytorch.sh: --modes takes train and/or eval, got '$m'" >&2; exit 2; }
done
pt_env=(env LD_PRELOAD="$tcmalloc") pt_flags=()
if [ $plain -eq 1 ]; then
  pt_env=(env) pt_flags=(--plain)
elif [ ! -e "$tcmalloc" ]; then
  echo "bench_vs_pytorch.sh: $tcmalloc is missing; apt-get install libtcmalloc-minimal4 (or pass --plain)" >&2; exit 2
fi
[ -n "$log" ] || log=$(mktemp /tmp/bench_vs_pytorch.XXXXXX.jsonl)
: >"$log"

common=(--batch "$batch" --threads "$threads" --crop "$crop" --steps "$steps" --warmup "$warmup" --json)
one() { # mode impl round
  local mode=$1 impl=$2 round=$3 out extra=()
  [ "$mode" = eval ] && extra=(--eval)
  case $impl in
    ours) out=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$bin" bench "${common[@]}" "${extra[@]}" 2>&1) ;;
    pytorch) out=$("${pt_env[@]}" "$py" "$here/scripts/bench_pytorch.py" "${pt_flags[@]}" "${common[@]}" "${extra[@]}" 2>&1) ;;
    torchvision) out=$("${pt_env[@]}" "$py" "$here/scripts/bench_pytorch.py" --torchvision "${pt_flags[@]}" "${common[@]}" "${extra[@]}" 2>&1) ;;
  esac
  local rc=$? last
  last=$(printf '%s\n' "$out" | tail -n 1)
  if [ $rc -ne 0 ] || [[ "$last" != "{"* ]]; then
    echo "bench_vs_pytorch.sh: the $impl $mode run failed (exit $rc):" >&2
    printf '%s\n' "$out" | tail -n 5 >&2
    exit 1
  fi
  printf '{"round":%d,"impl":"%s","run_mode":"%s","result":%s}\n' "$round" "$impl" "$mode" "$last" >>"$log"
  printf '  %-5s round %d  %-11s %s\n' "$mode" "$round" "$impl" \
    "$(printf '%s\n' "$out" | grep -m1 -E 'img/s' | sed 's/^ *//')"
}

echo "bench_vs_pytorch: batch $batch, crop $crop, $threads threads, $steps timed steps after $warmup, $repeats rounds"
echo "  host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(grep -qw avx512f /proc/cpuinfo && echo AVX-512 || echo AVX2), load average $(cut -d' ' -f1-3 /proc/loadavg) at start, $(date -u +%Y-%m-%dT%H:%MZ)"
[ $plain -eq 1 ] && echo "  PyTorch: glibc malloc, NCHW (--plain)" || echo "  PyTorch: tcmalloc, channels_last"
impls=(ours pytorch torchvision)
for mode in ${modes//,/ }; do
  for ((r = 1; r <= repeats; r++)); do
    # rotate the order so that no implementation always runs first
    for ((i = 0; i < 3; i++)); do one "$mode" "${impls[$(((i + r - 1) % 3))]}" "$r"; done
  done
done
echo "  load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; every run's JSON: $log"

"$py" - "$log" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
med = statistics.median
print()
print(f"{'mode':<6} {'implementation':<26} {'img/s':>8} {'ms/step':>9} {'GFLOP/s':>8} {'peak RSS MB':>12}  runs")
names = {"ours": "ours (bin/googlenet)", "pytorch": "PyTorch, same network", "torchvision": "torchvision googlenet"}
kern = {(r["result"].get("blas_core"), r["result"].get("simd")) for r in rows if r["impl"] == "ours"}
print("ours ran with " + "; ".join(f"OpenBLAS {b} kernels, own SIMD {s}" for b, s in sorted(kern, key=str)))
for mode in ("train", "eval"):
    for impl in ("ours", "pytorch", "torchvision"):
        rs = [r["result"] for r in rows if r["run_mode"] == mode and r["impl"] == impl]
        if rs:
            print(f"{mode:<6} {names[impl]:<26} {med(r['img_per_s'] for r in rs):8.2f} {med(r['step_ms'] for r in rs):9.1f} "
                  f"{med(r['gflops'] for r in rs):8.1f} {med(r['peak_rss_mb'] for r in rs):12.0f}  {len(rs)}")
print()
targets = {("train", "pytorch"): 2.0, ("train", "torchvision"): 1.3, ("eval", "pytorch"): 2.5, ("eval", "torchvision"): 1.3}
print("ratios, median over rounds of (ours / other) in the same round:")
for mode in ("train", "eval"):
    rounds = sorted({r["round"] for r in rows if r["run_mode"] == mode})
    by = {(r["round"], r["impl"]): r["result"] for r in rows if r["run_mode"] == mode}
    for other in ("pytorch", "torchvision"):
        q = [by[(k, "ours")]["img_per_s"] / by[(k, other)]["img_per_s"] for k in rounds if (k, "ours") in by and (k, other) in by]
        if q:
            t = targets[(mode, other)]
            print(f"  {mode:<5} img/s vs {names[other]:<24} {med(q):5.2f}x  (target >= {t}x: {'met' if med(q) >= t else 'NOT met'})")
    if mode == "train":
        q = [by[(k, "ours")]["peak_rss_mb"] / by[(k, "pytorch")]["peak_rss_mb"] for k in rounds if (k, "ours") in by and (k, "pytorch") in by]
        if q:
            print(f"  train peak RSS ours / PyTorch same network {med(q):5.2f}   (target <= 0.5: {'met' if med(q) <= 0.5 else 'NOT met'})")
EOF
