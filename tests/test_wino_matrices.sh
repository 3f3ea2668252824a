#!/usr/bin/env bash
# test_wino_matrices.sh: nn/winograd_tf.h is what scripts/wino_matrices.py
# derives (and proves correct) from the interpolation points, not a hand edit.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 scripts/wino_matrices.py --check
echo "nn/winograd_tf.h matches scripts/wino_matrices.py"
