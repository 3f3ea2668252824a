#!/usr/bin/env bash
# test_onnx.sh: `googlenet ckpt export --format onnx` checked by two clients
# this project did not write. A checkpoint trained for 24 steps on a tiny
# generated set (3 colour classes, crop 64) is exported at crop 64 and 224;
#   - Debian's python3-onnx accepts each file (checker, full check), and its
#     shape inference, run on a copy without our value_info, gives every
#     intermediate tensor the shape our network has; the interface (input
#     `input` [N, 3, crop, crop], outputs `prob` and `logits` [N, classes],
#     dynamic N, opset >= 13, only the ops the format promises) and the
#     metadata (class names, normalisation) are as documented;
#   - ONNX Runtime (npm onnxruntime-node, run by Debian's node) runs each file
#     on a batch of generated images, and its logits equal those of our own
#     forward of the same checkpoint and images (`googlenet predict --logits`,
#     eval's pipeline) within max|diff| / max|ours| <= 1e-4, its probabilities
#     within 1e-5; --weights raw exports the other weights;
#   - bad input ends with one line and leaves no file.
# Needs python3-onnx, python3-pil and onnxruntime-node: scripts/install-deps.sh
# --test installs them (the runtime into $GOOGLENET_CACHE, default
# ~/.cache/googlenet); missing ones fail the test with the command to run.
. "$(dirname "$0")/lib.sh" keep-going mpi
bin=$BIN helper=$B/tests/helper_eval py=$PY tmp=$T
here=$(cd "$(dirname "$0")" && pwd)
cache=${GOOGLENET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/googlenet}
export NODE_PATH=$cache/onnxruntime/node_modules${NODE_PATH:+:$NODE_PATH}
export OMPI_MCA_btl=self,vader

$py -c "import onnx, numpy, PIL" 2>/dev/null ||
  { echo "FAIL: $py cannot import onnx, numpy and PIL; run scripts/install-deps.sh --test"; exit 1; }
node -e "require('onnxruntime-node')" 2>/dev/null ||
  { echo "FAIL: node cannot load onnxruntime-node from $NODE_PATH; run scripts/install-deps.sh --test"; exit 1; }

# ---- a checkpoint that has learnt something ----
"$helper" gen "$tmp/train" --classes 3 --per-class 6 --seed 5 >/dev/null || exit 1
timeout -k 5 300 "$bin" train --data "$tmp/train" --crop 64 --batch 6 --steps 24 --lr 0.02 --out "$tmp/run" \
    --threads 1 --workers 1 --ckpt-every 0 --log-every 0 --quiet >"$tmp/train.log" 2>&1 ||
  { echo "FAIL: train failed: $(tail -n 5 "$tmp/train.log")"; exit 1; }
ck=$(ls "$tmp"/run/ckpt-*.gnck | tail -n 1)

# ---- images of exactly crop x crop, so that eval's transform at --resize 224 keeps every pixel ----
$py - "$tmp" <<'EOF' || exit 1
import sys
import numpy as np
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(7)
for crop, n in ((64, 6), (224, 2)):
    yy, xx = np.mgrid[0:crop, 0:crop]
    batch = []
    for i in range(n):
        base = np.array([(i * 97) % 256, (i * 181 + 60) % 256, (i * 59 + 120) % 256])
        img = base + 40 * np.sin(xx[..., None] / (4.0 + i) + yy[..., None] / 6.0) + rng.integers(-30, 30, (crop, crop, 3))
        img = np.clip(img, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(f"{d}/img{crop}_{i}.png")
        batch.append(img.transpose(2, 0, 1))
    (np.stack(batch).astype(np.float32) / 255).astype("<f4").tofile(f"{d}/batch{crop}.f32")
EOF

# export CROP WEIGHTS: the model, our logits of the same images, ONNX Runtime's
check_crop() {
  local crop=$1 weights=$2 name=$1_$2 n
  n=$(ls "$tmp"/img"$crop"_*.png | wc -l)
  "$bin" ckpt export "$ck" --format onnx --out "$tmp/$name.onnx" --crop "$crop" --weights "$weights" --logits \
      >"$tmp/$name.export" 2>&1 || { fail "export $name: $(cat "$tmp/$name.export")"; return; }
  "$bin" predict --ckpt "$ck" --crop "$crop" --resize 224 --weights "$weights" --json --logits --top 3 \
      --threads 1 --workers 1 "$tmp"/img"$crop"_*.png >"$tmp/$name.ours" 2>"$tmp/$name.ours.err" ||
    { fail "predict $name: $(cat "$tmp/$name.ours.err")"; return; }
  timeout -k 5 300 node "$here/helper_ort.js" "$tmp/$name.onnx" "$tmp/batch$crop.f32" "$n" 3 "$crop" "$crop" \
      "$tmp/$name.ort" >"$tmp/$name.ort.log" 2>&1 || { fail "onnxruntime $name: $(tail -n 2 "$tmp/$name.ort.log")"; return; }
  $py - "$tmp" "$name" "$crop" "$n" <<'EOF' || fail "$name: ONNX Runtime and our forward differ"
import json, sys
import numpy as np
d, name, crop, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ours = [json.loads(l) for l in open(f"{d}/{name}.ours")]
assert len(ours) == n, f"{len(ours)} predictions for {n} images"
lo = np.array([o["logits"] for o in ours], np.float64)
po = np.zeros_like(lo)
for i, o in enumerate(ours):
    for t in o["top"]:
        po[i, t["index"]] = t["p"]
lr = np.fromfile(f"{d}/{name}.ort.logits.f32", "<f4").reshape(n, -1).astype(np.float64)
pr = np.fromfile(f"{d}/{name}.ort.prob.f32", "<f4").reshape(n, -1).astype(np.float64)
rel = np.abs(lr - lo).max() / np.abs(lo).max()
dp = np.abs(pr - po).max()
spread = np.abs(lo - lo.mean(0)).max() / np.abs(lo).max()
print(f"{name}: {n} images at crop {crop}: logits max|diff|/max|ours| = {rel:.2e}, probabilities max|diff| = {dp:.2e} "
      f"(the logits vary by {spread:.1%} between images)")
assert rel <= 1e-4 and dp <= 1e-5
EOF
}
check_crop 64 average
check_crop 224 average
check_crop 64 raw

# ---- python3-onnx: checker, shape inference against our shapes, interface, metadata ----
[ -f "$tmp/64_average.onnx" ] && [ -f "$tmp/224_average.onnx" ] && $py - "$tmp" "$ck" <<'EOF' || fail "python3-onnx checks"
import sys
import numpy as np
import onnx
from onnx import numpy_helper, shape_inference
d, ck = sys.argv[1], sys.argv[2]
allowed = {"Conv", "Relu", "MaxPool", "LRN", "Concat", "AveragePool", "Gemm", "Softmax", "Flatten", "Sub", "Div"}

def dims(v):
    return [x.dim_param or x.dim_value for x in v.type.tensor_type.shape.dim]

for crop in (64, 224):
    m = onnx.load(f"{d}/{crop}_average.onnx")
    onnx.checker.check_model(m, full_check=True)
    opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
    assert opset and opset[0] >= 13, opset
    g = m.graph
    assert [i.name for i in g.input] == ["input"] and dims(g.input[0]) == ["N", 3, crop, crop], g.input
    assert g.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [o.name for o in g.output] == ["prob", "logits"], [o.name for o in g.output]
    assert all(dims(o) == ["N", 3] for o in g.output)
    ops = {n.op_type for n in g.node}
    assert ops <= allowed, ops - allowed
    assert all(a.i == 1 for n in g.node if n.op_type == "MaxPool" for a in n.attribute if a.name == "ceil_mode")
    # shape inference on a copy without our value_info: every tensor we declared gets our shape
    ours = {v.name: dims(v) for v in g.value_info}
    bare = onnx.ModelProto()
    bare.CopyFrom(m)
    del bare.graph.value_info[:]
    inferred = {v.name: dims(v) for v in shape_inference.infer_shapes(bare, check_type=True, strict_mode=True).graph.value_info}
    assert len(ours) > 80, f"only {len(ours)} shapes declared"
    bad = [(k, ours[k], inferred.get(k)) for k in ours if inferred.get(k) != ours[k]]
    assert not bad, f"shape inference disagrees: {bad[:5]}"
    assert ours["inception_5b/output"] == ["N", 1024, (crop + 31) // 32, (crop + 31) // 32], ours["inception_5b/output"]
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["class_names"].split("\n")[:3] == ["class_00", "class_01", "class_02"], meta.get("class_names")
    assert meta["weights"] == "average" and meta["crop"] == str(crop) and meta["classes"] == "3", meta
    mean = numpy_helper.to_array([t for t in g.initializer if t.name == "input_mean"][0]).ravel()
    assert np.allclose(mean, [float(x) for x in meta["input_mean"].split(",")]), (mean, meta["input_mean"])
    print(f"crop {crop}: onnx {onnx.__version__} check_model(full_check) passed; {len(ours)} tensor shapes agree "
          f"with shape inference; {len(g.node)} nodes of {sorted(ops)}")
EOF

# ---- raw and average weights are different models ----
cmp -s "$tmp/64_average.onnx" "$tmp/64_raw.onnx" && fail "--weights raw wrote the same model as the average"

# ---- bad input: one line, exit code, no file left ----
expect() { # NAME EXIT TEXT CMD...
  local name=$1 code=$2 text=$3 rc
  shift 3
  "$@" >"$tmp/$name.out" 2>&1
  rc=$?
  [ "$rc" -eq "$code" ] || fail "$name: exit $rc, expected $code"
  grep -qF -- "$text" "$tmp/$name.out" || fail "$name: output lacks '$text': $(cat "$tmp/$name.out")"
  [ "$(wc -l <"$tmp/$name.out")" -eq 1 ] || fail "$name: more than one line"
  sed 's/^/    /' "$tmp/$name.out"
}
cp "$ck" "$tmp/damaged.gnck"
size=$(stat -c %s "$tmp/damaged.gnck")
printf 'XXXX' | dd of="$tmp/damaged.gnck" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
expect damaged 1 "damaged.gnck" "$bin" ckpt export "$tmp/damaged.gnck" --format onnx --out "$tmp/damaged.onnx"
[ -e "$tmp/damaged.onnx" ] && fail "a damaged checkpoint left an ONNX file"
expect missing 1 "nothere.gnck" "$bin" ckpt export "$tmp/nothere.gnck" --format onnx --out "$tmp/x.onnx"
expect section 2 "--section is for .npy" "$bin" ckpt export "$ck" --format onnx --section momentum --out "$tmp/x.onnx"
expect smallcrop 2 "--crop is too small" "$bin" ckpt export "$ck" --format onnx --crop 8 --out "$tmp/x.onnx"
expect nodir 1 "$tmp/no/such/dir" "$bin" ckpt export "$ck" --format onnx --out "$tmp/no/such/dir/m.onnx"
ls "$tmp" | grep -q '\.tmp\.' && fail "a temporary file was left behind"

[ $failed -eq 0 ] && echo "test_onnx: all checks passed"
exit $failed
