#!/usr/bin/env bash
# run.sh: `make valgrind`: a short 2-rank training run (crop 64, batch 2, 2
# steps, a checkpoint at the end) with every rank under valgrind memcheck.
# Passes when neither rank has an invalid access, a use of uninitialised
# memory, or a definite leak outside what tests/valgrind/openmpi.supp
# suppresses (Open MPI's own, each entry commented there). The logs stay in
# $BUILD/valgrind/ for reading; the last lines name the numbers.
#   VALGRIND_STEPS=2 tests/valgrind/run.sh
set -u
cd "$(dirname "$0")/../.."
BIN=${GOOGLENET_BIN:-bin/googlenet}
B=${TEST_BUILD:-build/release}
steps=${VALGRIND_STEPS:-2}
command -v valgrind >/dev/null || { echo "valgrind is not installed: apt-get install valgrind"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
out=$B/valgrind
rm -rf "$out"
mkdir -p "$out"
"$B/tests/helper_gen_dataset" --out "$out/data" --classes 4 --per-class 4 --size 32 --seed 1 >/dev/null ||
  { echo "valgrind: cannot generate the dataset (make $B/tests/helper_gen_dataset)"; exit 1; }
# Open MPI unloads its components at MPI_Finalize, which leaves their frames
# nameless in valgrind's stacks; keeping them loaded lets the suppressions name
# them. valgrind 3.19 emulates no AVX-512: OpenBLAS gets the AVX2 kernels (and
# nn/kernels.c picks the AVX2 table from the CPUID valgrind shows). The plan is
# fixed: --conv-algo auto would time some 15 times a step's convolutions
# first, which under memcheck takes longer than the run; Winograd for the 3x3
# and 5x5 layers, GEMM for the rest, so both kinds of kernel run.
start=$(date +%s)
mpirun --oversubscribe --bind-to none -np 2 -x OMPI_MCA_mca_base_component_disable_dlclose=1 \
  -x PMIX_MCA_mca_base_component_disable_dlclose=1 -x OPENBLAS_CORETYPE=Haswell \
  valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --num-callers=40 --suppressions=tests/valgrind/openmpi.supp --gen-suppressions=all \
  --log-file="$out/rank%q{OMPI_COMM_WORLD_RANK}.log" \
  "$BIN" train --data "$out/data" --crop 64 --batch 2 --steps "$steps" --lr 0.005 --threads 1 --workers 1 \
  --conv-algo winograd --eval-every 0 --log-every 0 --ckpt-every 0 --quiet --out "$out/run" </dev/null >"$out/train.log" 2>&1
rc=$?
secs=$(( $(date +%s) - start ))
fail=0
[ $rc -eq 0 ] || { echo "FAIL: the run under valgrind exited $rc:"; tail -n 5 "$out/train.log"; fail=1; }
for r in 0 1; do
  log=$out/rank$r.log
  [ -f "$log" ] || { echo "FAIL: no valgrind log for rank $r"; fail=1; continue; }
  errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
  suppressed=$(sed -n 's/.*ERROR SUMMARY: .*(suppressed: \([0-9]*\) from.*/\1/p' "$log" | tail -1)
  lost=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
  supbytes=$(sed -n 's/.*suppressed: \([0-9,]*\) bytes.*/\1/p' "$log" | tail -1)
  echo "rank $r: ${errors:-?} errors (${suppressed:-?} suppressed: Open MPI's), definitely lost ${lost:-?} bytes outside" \
       "the suppressions (${supbytes:-?} bytes suppressed)"
  if [ "${errors:-1}" != 0 ]; then
    fail=1
    grep -m 3 -A 12 -E 'Invalid|uninitialised|Conditional jump|definitely lost in loss' "$log" | sed 's/^/  | /'
  fi
done
echo "valgrind: 2 ranks, $steps steps, crop 64, batch 2: ${secs} s; logs in $out"
exit $fail
