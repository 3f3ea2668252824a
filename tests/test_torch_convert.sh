#!/usr/bin/env bash
# test_torch_convert.sh: scripts/torch_googlenet.py between checkpoints and the
# PyTorch module of scripts/reference_googlenet.py, both ways, on a crop-64,
# 3-class checkpoint with aux heads and on images of exactly 64x64 (eval's
# transform at --resize 224 keeps every pixel):
#   - ours -> PyTorch: `ckpt export --section average` -> to-torch; PyTorch's
#     logits equal our forward's (`googlenet predict --logits`) within
#     max|diff| / max|ours| <= 1e-4;
#   - round trip: that state_dict -> from-torch -> `ckpt import --like` gives
#     bit-identical weights and the same logits as the original checkpoint;
#   - PyTorch -> ours: a model initialised in PyTorch (no aux heads) -> from-torch
#     -> `ckpt import --classes 3 --crop 64 --no-aux`: our logits equal PyTorch's;
#   - a class count that does not fit is one line and exit 1.
# Needs Debian's python3-torch and python3-pil for /usr/bin/python3.
. "$(dirname "$0")/lib.sh" keep-going mpi
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$BIN helper=$B/tests/helper_eval py=$PY tmp=$T
conv=$here/scripts/torch_googlenet.py
export OMPI_MCA_btl=self,vader
$py -c "import torch, numpy, PIL" 2>/dev/null ||
  { echo "FAIL: $py cannot import torch, numpy and PIL; run scripts/install-deps.sh --test"; exit 1; }

"$helper" ckpt "$tmp/a.gnck" --classes 3 --crop 64 --seed 11 --aux 1 >/dev/null || exit 1
$py - "$tmp" <<'EOF' || exit 1
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(3)
yy, xx = np.mgrid[0:64, 0:64]
for i in range(4):
    img = np.array([(i * 97) % 256, (i * 181 + 60) % 256, 120]) + 50 * np.sin(xx[..., None] / (3.0 + i) + yy[..., None] / 5.0)
    Image.fromarray(np.clip(img + rng.integers(-40, 40, (64, 64, 3)), 0, 255).astype(np.uint8)).save(f"{sys.argv[1]}/img_{i}.png")
EOF
images=("$tmp"/img_*.png)
# One fixed convolution algorithm: these checkpoints record no plan, and plans timed anew may differ
# between runs (another rounding), which would hide whether the round trip is exact.
predict() { # CKPT OUT
  "$bin" predict --ckpt "$1" --json --logits --resize 224 --threads 1 --conv-algo gemm "${images[@]}" >"$2" 2>"$2.err" ||
    fail "predict $1: $(cat "$2.err")"
}
# torch_logits MODEL.pt AUX OUT: PyTorch's logits of the images (ImageNet normalisation, as the checkpoints)
torch_logits() {
  $py - "$here/scripts" "$1" "$2" "$3" "${images[@]}" <<'EOF' || fail "PyTorch forward of $1"
import sys
sys.path.insert(0, sys.argv[1])
from reference_googlenet import GoogLeNet, np, torch
from PIL import Image
state = torch.load(sys.argv[2])
model = GoogLeNet(state["loss3.classifier.weight"].shape[0], aux=sys.argv[3] == "1").float().eval()
model.load_state_dict(state)
x = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32).transpose(2, 0, 1) / 255 for p in sys.argv[5:]])
mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(1, 3, 1, 1)
std = np.array([0.229, 0.224, 0.225], np.float32).reshape(1, 3, 1, 1)
with torch.no_grad():
    np.save(sys.argv[4], model(torch.from_numpy((x - mean) / std)).numpy())
EOF
}
# compare OURS.jsonl THEIRS.npy TOL WHAT
compare() {
  $py - "$@" <<'EOF' || fail "$4: logits differ"
import json, sys
import numpy as np
ours = np.array([json.loads(l)["logits"] for l in open(sys.argv[1])])
theirs = np.load(sys.argv[2]).astype(np.float64) if sys.argv[2].endswith(".npy") else \
    np.array([json.loads(l)["logits"] for l in open(sys.argv[2])])
rel = np.abs(ours - theirs).max() / np.abs(ours).max()
spread = np.abs(ours - ours.mean(0)).max() / np.abs(ours).max()
print(f"{sys.argv[4]}: max|diff|/max|ours| = {rel:.2e} over {ours.shape} logits (they vary by {spread:.1%} between images)")
assert rel <= float(sys.argv[3])
EOF
}

# ---- ours -> PyTorch ----
"$bin" ckpt export "$tmp/a.gnck" --section average --out "$tmp/a.npy" >/dev/null || fail "ckpt export"
$py "$conv" to-torch "$tmp/a.npy" --classes 3 --out "$tmp/a.pt" || fail "to-torch"
predict "$tmp/a.gnck" "$tmp/a.ours"
torch_logits "$tmp/a.pt" 1 "$tmp/a.torch.npy"
compare "$tmp/a.ours" "$tmp/a.torch.npy" 1e-4 "checkpoint -> PyTorch"

# ---- and back ----
$py "$conv" from-torch "$tmp/a.pt" --out "$tmp/back.npy" || fail "from-torch"
$py -c "import sys, numpy as np; sys.exit(not np.array_equal(np.load(sys.argv[1]), np.load(sys.argv[2])))" \
    "$tmp/a.npy" "$tmp/back.npy" || fail "the round trip changed the weights"
"$bin" ckpt import "$tmp/back.npy" --out "$tmp/back.gnck" --like "$tmp/a.gnck" >/dev/null || fail "ckpt import"
predict "$tmp/back.gnck" "$tmp/back.ours"
compare "$tmp/a.ours" "$tmp/back.ours" 0 "export -> PyTorch -> import"

# ---- a model born in PyTorch ----
$py - "$here/scripts" "$tmp/born.pt" <<'EOF' || fail "PyTorch model"
import sys
sys.path.insert(0, sys.argv[1])
from reference_googlenet import GoogLeNet, torch
m = GoogLeNet(3, aux=False)
m.init_caffe_(seed=5)
with torch.no_grad():
    for name, p in m.caffe_parameters():  # biases that differ per channel, as training leaves them
        if name.endswith("/bias"):
            p.copy_(torch.linspace(-0.1, 0.3, p.numel(), dtype=p.dtype))
torch.save(m.float().state_dict(), sys.argv[2])
EOF
$py "$conv" from-torch "$tmp/born.pt" --out "$tmp/born.npy" >/dev/null || fail "from-torch of a PyTorch model"
"$bin" ckpt import "$tmp/born.npy" --out "$tmp/born.gnck" --classes 3 --crop 64 --no-aux >/dev/null || fail "ckpt import --no-aux"
predict "$tmp/born.gnck" "$tmp/born.ours"
torch_logits "$tmp/born.pt" 0 "$tmp/born.torch.npy"
compare "$tmp/born.ours" "$tmp/born.torch.npy" 1e-4 "PyTorch -> checkpoint"

# ---- a count that does not fit ----
$py "$conv" to-torch "$tmp/a.npy" --classes 4 --out "$tmp/x.pt" >"$tmp/bad.out" 2>&1
rc=$?
[ "$rc" -eq 1 ] && [ "$(wc -l <"$tmp/bad.out")" -eq 1 ] && grep -q "check --classes" "$tmp/bad.out" ||
  fail "a wrong class count: exit $rc: $(cat "$tmp/bad.out")"
sed 's/^/    /' "$tmp/bad.out"
[ -e "$tmp/x.pt" ] && fail "a failed conversion left a file"

[ $failed -eq 0 ] && echo "test_torch_convert: all checks passed"
exit $failed
