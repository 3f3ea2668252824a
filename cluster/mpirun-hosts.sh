#!/bin/bash
# mpirun-hosts.sh: the training of train.sbatch without a scheduler, over the
# hosts of an Open MPI hostfile (one line per host: "node01 slots=2"). The
# ranks are the hostfile's slots; more trainer flags may follow the three
# arguments and override the ones below.
#
#   cluster/mpirun-hosts.sh HOSTFILE DATA_ROOT OUT_DIR [trainer flags]
#   THREADS=16 EPOCHS=90 cluster/mpirun-hosts.sh hosts /datasets/imagenet runs/a
#
# Run it again with the same OUT_DIR and it resumes (--resume auto). To stop it
# cleanly (every rank finishes its step, rank 0 writes a checkpoint, exit 3),
# send SIGUSR1 to this script's process: it is mpirun, which forwards the
# signal to every rank. SIGTERM to mpirun kills the ranks a second later,
# before rank 0 can write.
set -euo pipefail
HOSTFILE=${1:?usage: mpirun-hosts.sh HOSTFILE DATA_ROOT OUT_DIR [trainer flags]}
DATA=${2:?usage: mpirun-hosts.sh HOSTFILE DATA_ROOT OUT_DIR [trainer flags]}   # holds train/ and val/
OUT=${3:?usage: mpirun-hosts.sh HOSTFILE DATA_ROOT OUT_DIR [trainer flags]}
shift 3
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/bin/googlenet}
TRAIN=${TRAIN:-$DATA/train}                 # class tree or packed shards
VAL=${VAL-$DATA/val}                        # set it empty (VAL=) for no validation
THREADS=${THREADS:-8}                       # compute threads per rank: the cores of one socket
WORKERS=${WORKERS:-4}                       # decoding threads per rank
MAP=${MAP:---map-by ppr:1:socket --bind-to socket}   # one rank per socket, its threads on that socket
BATCH=${BATCH:-32}                          # images per rank per step
CROP=${CROP:-224}
EPOCHS=${EPOCHS:-60}
LR=${LR:-0.01}                              # for a global batch of LR_REF_BATCH, scaled linearly
LR_REF_BATCH=${LR_REF_BATCH:-32}
WARMUP_EPOCHS=${WARMUP_EPOCHS:-5}
CKPT_EVERY=${CKPT_EVERY:-2000}              # steps (or Ne for epochs)
KEEP=${KEEP:-3}
EVAL_EVERY=${EVAL_EVERY:-4e}
TIMEOUT=${TIMEOUT:-600}                     # seconds a collective may wait for a late rank

[ -r "$HOSTFILE" ] || { echo "mpirun-hosts.sh: cannot read hostfile '$HOSTFILE'" >&2; exit 2; }
[ -x "$BIN" ] || { echo "mpirun-hosts.sh: $BIN is missing; run make (or set BIN)" >&2; exit 2; }
NP=$(awk '!/^[[:space:]]*(#|$)/ {s = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) {split($i, a, "="); s = a[2]} n += s} END {print n + 0}' "$HOSTFILE")
[ "$NP" -gt 0 ] || { echo "mpirun-hosts.sh: no hosts in '$HOSTFILE'" >&2; exit 2; }
val=()
[ -z "$VAL" ] || val=(--val "$VAL")

# shellcheck disable=SC2086  # MAP is a list of mpirun flags
exec mpirun --hostfile "$HOSTFILE" -np "$NP" $MAP -x OPENBLAS_NUM_THREADS="$THREADS" \
  "$BIN" train --data "$TRAIN" "${val[@]}" --threads "$THREADS" --workers "$WORKERS" \
  --batch "$BATCH" --crop "$CROP" --epochs "$EPOCHS" \
  --lr "$LR" --lr-scale linear --lr-ref-batch "$LR_REF_BATCH" --warmup-epochs "$WARMUP_EPOCHS" \
  --ckpt-every "$CKPT_EVERY" --keep "$KEEP" --eval-every "$EVAL_EVERY" --timeout "$TIMEOUT" \
  --out "$OUT" --resume auto "$@"
