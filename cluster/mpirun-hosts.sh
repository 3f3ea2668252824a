#!/bin/bash
# mpirun-hosts.sh: the same training without a scheduler, over the hosts of a
# hostfile (one line per host: "node01 slots=2"), with Open MPI.
#
#   cluster/mpirun-hosts.sh hostfile /datasets/imagenet runs/googlenet
#
# To stop it cleanly (checkpoint, exit 3), send SIGUSR1 to mpirun: it forwards
# the signal to every rank. SIGTERM to mpirun kills the ranks a second later,
# before rank 0 can write.
set -euo pipefail
HOSTFILE=${1:?hostfile}; DATA=${2:?dataset root}; OUT=${3:?output directory}
NP=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^slots=/) {split($i, a, "="); n += a[2]}} END {print n}' "$HOSTFILE")
THREADS=${THREADS:-8}
exec mpirun --hostfile "$HOSTFILE" -np "$NP" --map-by ppr:1:socket --bind-to socket \
  -x OPENBLAS_NUM_THREADS="$THREADS" \
  bin/googlenet train --data "$DATA/train" --val "$DATA/val" --threads "$THREADS" \
  --lr 0.01 --lr-scale linear --lr-ref-batch 32 --warmup-epochs 5 \
  --ckpt-every 2000 --keep 3 --eval-every 4e --out "$OUT" --resume auto
