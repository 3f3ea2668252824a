# lib.sh: what the cluster tests (tests/cluster/test_vcluster.sh,
# cluster/slurm-test.sh) share: messages, the checkpoint hash, the flags that
# make two training runs comparable bit for bit, and the tiny training set.
# Sourced, never run. Expects BIN and B (the build directory) to be set.

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

# Flags for runs whose weights are compared bit for bit. The convolution
# algorithm must not be chosen by timing at start-up (two runs could choose
# differently), so when the trainer offers --conv-algo it is pinned to gemm.
DETERMINISTIC=()
"$BIN" train --help 2>/dev/null | grep -q -- '--conv-algo' && DETERMINISTIC=(--conv-algo gemm)

# params_sha256 of a checkpoint file; fails the test when there is none.
ckpt_sha() {
  local h
  h=$("$BIN" ckpt info "$1" 2>/dev/null | sed -n 's/^params_sha256: //p')
  [ ${#h} -eq 64 ] || fail "no params_sha256 in $1"
  echo "$h"
}

# The newest checkpoint of a run directory, or fails.
ckpt_newest() {
  local f
  f=$(ls "$1"/ckpt-*.gnck 2>/dev/null | tail -1)
  [ -n "$f" ] || fail "no checkpoint in $1"
  echo "$f"
}

# A tiny generated class tree: 4 classes of 16 images, 32x32.
make_tiny_data() { # DIR [SEED]
  "$B/tests/helper_gen_dataset" --out "$1" --classes 4 --per-class 16 --size 32 --seed "${2:-3}" >/dev/null \
    || fail "cannot generate the dataset in $1"
}

# Waits until FILE has at least N lines, at most S seconds; returns 1 on time-out.
wait_lines() { # FILE N S
  local i
  for i in $(seq $(( $3 * 10 ))); do
    [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
