#!/usr/bin/env bash
# test_parity.sh: bin/googlenet's GoogLeNet against an independent PyTorch one.
#
# tests/helper_parity_dump runs one training step (dropout 0) and the eval
# forwards on a generated batch and writes parameters, input, logits, loss,
# gradients and activations as .npy; scripts/reference_googlenet.py compare
# rebuilds the network in float64 PyTorch, loads the same parameters and fails
# when any logit, the loss, any activation or any parameter's gradient is off by
# more than 1e-4 (max|c - ref| / max|ref| per tensor). Two shapes:
#   crop 224, batch 2: Caffe's exact head pooling (aux 5x5/3 on 14x14, 7x7/1);
#   crop 112, batch 2 of a model planned for 3, 2 threads: the adaptive aux
#     pooling, a partial batch and the threaded layer loops.
# Needs Debian's python3-torch for /usr/bin/python3 (.ci/run installs it).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
helper=${TEST_BUILD:-build/release}/tests/helper_parity_dump
py=/usr/bin/python3
ref=$here/scripts/reference_googlenet.py

if [ ! -x "$helper" ]; then
  echo "test_parity: $helper is missing; build it with 'make run-tests' (or make $helper)"; exit 1
fi
if ! "$py" -c 'import torch, numpy' 2>/dev/null; then
  echo "test_parity: $py cannot import torch and numpy; install them: apt-get install python3-torch python3-numpy"
  exit 1
fi
# The kernels bin/googlenet uses (it sets OPENBLAS_CORETYPE itself, see trainer/main.c).
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  flags=$(grep -m1 '^flags' /proc/cpuinfo)
  has() { [[ " $flags " == *" $1 "* ]]; }
  if has avx512f && has avx512bw && has avx512vl; then
    if has amx_tile && has avx512_bf16; then export OPENBLAS_CORETYPE=SapphireRapids
    elif has avx512_bf16; then export OPENBLAS_CORETYPE=Cooperlake
    else export OPENBLAS_CORETYPE=SkylakeX; fi
  elif has avx2 && has fma; then export OPENBLAS_CORETYPE=Haswell
  fi
fi

work=$(mktemp -d /tmp/test_parity.XXXXXX)
trap 'rm -rf "$work"' EXIT
status=0
run() { # name, helper flags...
  local name=$1; shift
  echo "== $name: helper_parity_dump $*"
  if ! "$helper" --out "$work/$name" "$@"; then
    echo "test_parity: helper_parity_dump failed for $name"; status=1; return
  fi
  if [ ! -f "$work/$name/acts/index.txt" ]; then
    echo "test_parity: the dump has no activations (acts/): without C's ReLU and max-pool decisions the"
    echo "  float64 reference breaks the near-ties float32 leaves differently, and gradients differ by up to"
    echo "  1e-3 (PyTorch's own float32 too); the comparison below is not sharp and may fail for that reason"
  fi
  "$py" "$ref" compare "$work/$name" || status=1
}
run crop224 --crop 224 --batch 2 --classes 10 --seed 1
run crop112 --crop 112 --batch 2 --plan-batch 3 --classes 10 --seed 2 --threads 2
[ $status -eq 0 ] && echo "test_parity: PASS" || echo "test_parity: FAIL"
exit $status
