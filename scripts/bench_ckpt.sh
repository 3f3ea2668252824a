#!/usr/bin/env bash
# bench_ckpt.sh: the checkpoint figures of docs/checkpoints.md: bytes and
# seconds of raw fp32, plain zstd and byte-shuffle + zstd on Gaussian weights
# and on weights after SGD steps of the real network, and the training stall
# per checkpoint of the asynchronous writer against one training step.
#
#   scripts/bench_ckpt.sh                       # 200 SGD steps at crop 64, batch 16, then the figures
#   scripts/bench_ckpt.sh --from runs/x/ckpt-00012000.gnck   # on weights from a real run
#   scripts/bench_ckpt.sh --ckpt-threads 2 --ckpt-level 5    # other settings
#
# Extra arguments go to `googlenet bench ckpt` (see its --help; `googlenet ckpt
# bench` is another name of it). Takes a few
# minutes on 2 cores; run it on a quiet machine for figures worth quoting.
set -eu
cd "$(dirname "$0")/.."
bin=${GOOGLENET_BIN:-bin/googlenet}
[ -x "$bin" ] || make
threads=${THREADS:-$(nproc)}
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
echo "+ $bin bench ckpt --train-steps 200 --crop 64 --batch 16 --lr 0.01 --ckpt-level 3 --threads $threads $*"
exec "$bin" bench ckpt --train-steps 200 --crop 64 --batch 16 --lr 0.01 --ckpt-level 3 --threads "$threads" "$@"
