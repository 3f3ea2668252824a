#!/usr/bin/env bash
# bench_allreduce.sh: figures for comm/'s gradient allreducer (tests/helper_comm_bench.c).
#
#   1. raw: 13,378,280 floats (GoogLeNet's gradients) reduced by the allreducer
#      with no compute, for several bucket sizes and compressions, beside a
#      plain MPI_Allreduce and the broadcast of the same buffer.
#   2. model: GoogLeNet training steps on random data with the communication
#      off (the compute baseline), after backward (no overlap), and overlapped
#      with backward (the default polling, and continuous polling). Columns:
#      exposed = time finish() blocked (includes waiting for a slower rank);
#      tail = from the moment the LAST rank entered finish() until all left it,
#      i.e. the communication that balance cannot hide (the summary compares it
#      with the no-overlap run's); comm = the buckets' busy time; backward_cpu /
#      comm_cpu = CPU time of backward's thread and of the communication thread,
#      which stay meaningful on a loaded machine where wall times do not.
#      Wall times are the mean over steps of the slowest rank.
# Usage: scripts/bench_allreduce.sh [raw|model|all]   (default all)
# Environment: NP (2), BATCH (8), CROP (224), STEPS (3), BUCKET_MB (25),
#              REPS (10), MPIRUN_ARGS (extra mpirun flags).
# Run it on an otherwise idle machine: figures from a loaded one mean little.
set -eu
cd "$(dirname "$0")/.."
what=${1:-all}
NP=${NP:-2} BATCH=${BATCH:-8} CROP=${CROP:-224} STEPS=${STEPS:-3} BUCKET_MB=${BUCKET_MB:-25} REPS=${REPS:-10}
make --no-print-directory -s build/release/tests/helper_comm_bench >/dev/null
bench=build/release/tests/helper_comm_bench
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
# OpenBLAS misdetects this CPU under some hypervisors (see trainer/main.c)
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  if grep -qw avx512f /proc/cpuinfo; then export OPENBLAS_CORETYPE=SkylakeX; else export OPENBLAS_CORETYPE=Haswell; fi
fi
mpi() { mpirun -np "$NP" ${MPIRUN_ARGS:-} "$bench" "$@"; }
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
calc() { awk "BEGIN { print $1 }"; }

echo "# machine: $(getconf _NPROCESSORS_ONLN) cores, load $(cut -d' ' -f1-3 /proc/loadavg); np=$NP; OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE"
if [ "$what" = raw ] || [ "$what" = all ]; then
  echo "# raw allreduce of 13,378,280 floats (53.5 MB), $REPS repetitions, ms per operation (slowest rank)"
  printf '%-10s %-6s %8s %14s %10s %16s %13s %9s\n' bucket_mb wire buckets allreducer_ms cpu_ms mpi_allreduce_ms broadcast_ms sent_MB
  for c in none bf16 fp16; do
    for b in 4 25 100; do
      [ "$c" != none ] && [ "$b" != 25 ] && continue
      line=$(mpi --mode raw --bucket-mb "$b" --compress "$c" --reps "$REPS")
      printf '%-10s %-6s %8s %14s %10s %16s %13s %9.1f\n' "$b" "$c" "$(echo "$line" | field buckets)" \
        "$(echo "$line" | field allreducer_ms)" "$(echo "$line" | field allreducer_cpu_ms)" \
        "$(echo "$line" | field mpi_allreduce_ms)" \
        "$(echo "$line" | field broadcast_ms)" "$(calc "$(echo "$line" | field bytes_sent) / 1e6")"
    done
  done
fi
if [ "$what" = model ] || [ "$what" = all ]; then
  echo "# GoogLeNet steps: batch $BATCH per rank, crop $CROP, $STEPS timed steps after 1 warm-up, buckets of $BUCKET_MB MB"
  printf '%-22s %9s %10s %11s %8s %8s %7s %13s %14s %12s\n' mode forward_s backward_s exposed_ms tail_ms comm_ms step_s \
    bwd_slowdown backward_cpu_s comm_cpu_ms
  base= base_step= noov_tail= summary=
  for cfg in "off" "nooverlap 200" "overlap 200" "overlap 0"; do
    set -- $cfg
    line=$(mpi --mode model --comm "$1" --poll-us "${2:-200}" --batch "$BATCH" --crop "$CROP" --steps "$STEPS" \
      --bucket-mb "$BUCKET_MB")
    bwd=$(echo "$line" | field backward_s) step=$(echo "$line" | field step_s) tail=$(echo "$line" | field tail_ms)
    cpu=$(echo "$line" | field comm_cpu_ms) bcpu=$(echo "$line" | field backward_cpu_s)
    [ -z "$base" ] && base=$bwd base_step=$step
    [ "$1" = nooverlap ] && noov_tail=$tail
    name=$1; [ "$1" = overlap ] && name="overlap poll_us=$2"
    printf '%-22s %9s %10s %11s %8s %8s %7s %12.1f%% %14s %12s\n' "$name" "$(echo "$line" | field forward_s)" "$bwd" \
      "$(echo "$line" | field exposed_ms)" "$tail" "$(echo "$line" | field comm_ms)" "$step" \
      "$(calc "100 * ($bwd / $base - 1)")" "$bcpu" "$cpu"
    if [ "$1" = overlap ]; then
      summary+="$(printf '#   %s: tail %s ms against %s ms without overlap: %.1f%% of the allreduce hidden; communication thread CPU %.1f%% of backward'"'"'s; step %.1f%% of the no-communication step' \
        "$name" "$tail" "$noov_tail" "$(calc "100 * (1 - $tail / $noov_tail)")" "$(calc "100 * $cpu / 1000 / $bcpu")" \
        "$(calc "100 * $base_step / $step")")"$'\n'
    fi
  done
  printf '%s' "$summary"
fi
