#!/usr/bin/env bash
# test_predict.sh: `googlenet predict` on the images of a tiny generated
# validation set (3 colour classes; JPEG and PNG) with a checkpoint trained for
# 24 steps at crop 64 (it tells at least two classes apart):
#   - with 1 and with 10 crops, its decisions are eval's: per class, the images
#     whose first class is the label are as many as eval's report counts, and
#     the mean -log p(label) over its probabilities is eval's loss;
#   - plain lines name the checkpoint's classes; --list gives the same lines
#     as the images on the command line; --json has the documented fields;
#   - a corrupt and a missing file get one line each on stderr naming them,
#     the other images are still classified, and the exit code is 1;
#   - more than 64 images: a throughput line on stderr;
#   - usage errors exit 2 with one line.
. "$(dirname "$0")/lib.sh" keep-going mpi
bin=$BIN helper=$B/tests/helper_eval py=$PY tmp=$T
export OMPI_MCA_btl=self,vader

"$helper" gen "$tmp/train" --classes 3 --per-class 6 --seed 5 >/dev/null || exit 1
"$helper" gen "$tmp/val" --classes 3 --per-class 5 --seed 9 >/dev/null || exit 1
timeout -k 5 300 "$bin" train --data "$tmp/train" --crop 64 --batch 6 --steps 24 --lr 0.02 --out "$tmp/run" \
    --threads 1 --workers 1 --ckpt-every 0 --log-every 0 --quiet >"$tmp/train.log" 2>&1 ||
  { echo "FAIL: train failed: $(tail -n 5 "$tmp/train.log")"; exit 1; }
ck=$(ls "$tmp"/run/ckpt-*.gnck | tail -n 1)
find "$tmp/val" -type f | sort >"$tmp/images.txt"
mapfile -t images <"$tmp/images.txt"

# ---- the same decisions and probabilities as eval ----
for crops in 1 10; do
  timeout -k 5 300 "$bin" eval --ckpt "$ck" --data "$tmp/val" --crops "$crops" --batch 7 --threads 1 --workers 1 \
      --quiet --report "$tmp/eval$crops.json" >"$tmp/eval$crops.log" 2>&1 ||
    { fail "eval --crops $crops: $(tail -n 3 "$tmp/eval$crops.log")"; continue; }
  timeout -k 5 300 "$bin" predict --ckpt "$ck" --crops "$crops" --top 3 --json --batch 5 --threads 1 \
      "${images[@]}" >"$tmp/pred$crops.jsonl" 2>"$tmp/pred$crops.err" ||
    { fail "predict --crops $crops: $(cat "$tmp/pred$crops.err")"; continue; }
  $py - "$tmp/eval$crops.json" "$tmp/pred$crops.jsonl" "$crops" <<'EOF' || fail "predict --crops $crops differs from eval"
import json, math, re, sys
ev = json.load(open(sys.argv[1]))
preds = [json.loads(l) for l in open(sys.argv[2])]
assert len(preds) == ev["images"] == 15, (len(preds), ev["images"])
correct, loss, firsts = [0, 0, 0], 0.0, set()
for p in preds:
    assert set(p) == {"image", "top"} and len(p["top"]) == 3, p
    assert all(set(t) == {"class", "index", "p"} and t["class"] == f"class_{t['index']:02d}" for t in p["top"]), p
    assert abs(sum(t["p"] for t in p["top"]) - 1) < 1e-5, p
    label = int(re.search(r"class_(\d+)/", p["image"]).group(1))
    correct[label] += p["top"][0]["index"] == label
    firsts.add(p["top"][0]["index"])
    loss -= math.log(next(t["p"] for t in p["top"] if t["index"] == label))
loss /= len(preds)
want = [round(c["top1"] * c["images"]) for c in ev["per_class"]]
print(f"{sys.argv[3]} crop(s): correct per class: predict {correct}, eval {want}; mean -log p(label): "
      f"predict {loss:.7f}, eval {ev['loss']:.7f}; classes predicted: {sorted(firsts)}")
assert correct == want, "per-class decisions differ"
assert len(firsts) >= 2, "the checkpoint puts every image in one class: the comparison would prove little"
assert abs(loss - ev["loss"]) <= 1e-5 * max(1.0, abs(ev["loss"])), "probabilities differ"
EOF
done

# ---- plain lines, and --list ----
"$bin" predict --ckpt "$ck" --threads 1 "${images[@]}" >"$tmp/plain.txt" 2>"$tmp/plain.err" || fail "plain: $(cat "$tmp/plain.err")"
"$bin" predict --ckpt "$ck" --threads 1 --list "$tmp/images.txt" >"$tmp/list.txt" 2>&1 || fail "--list: $(cat "$tmp/list.txt")"
cmp -s "$tmp/plain.txt" "$tmp/list.txt" || fail "--list prints other lines than the same images as arguments"
[ "$(wc -l <"$tmp/plain.txt")" -eq 15 ] || fail "plain: $(wc -l <"$tmp/plain.txt") lines for 15 images"
grep -qE "^$tmp/val/class_00/img_000.jpg: class_0[0-2] 0\.[0-9]{4}, class_0[0-2] 0\.[0-9]{4}, class_0[0-2] 0\.[0-9]{4}$" \
  "$tmp/plain.txt" || fail "plain line not as documented: $(head -n 1 "$tmp/plain.txt")"
head -n 2 "$tmp/plain.txt" | sed 's/^/    /'

# ---- a corrupt and a missing file ----
printf '\xff\xd8\xff\xe0 not really a JPEG' >"$tmp/corrupt.jpg"
"$bin" predict --ckpt "$ck" --threads 1 "${images[0]}" "$tmp/corrupt.jpg" "$tmp/missing.png" "${images[1]}" \
    >"$tmp/bad.out" 2>"$tmp/bad.err"
rc=$?
[ "$rc" -eq 1 ] || fail "bad images: exit $rc, expected 1"
[ "$(wc -l <"$tmp/bad.err")" -eq 2 ] || fail "bad images: stderr has $(wc -l <"$tmp/bad.err") lines, expected 2"
grep -q "corrupt.jpg: " "$tmp/bad.err" || fail "the corrupt file is not named"
grep -q "missing.png: .*No such file" "$tmp/bad.err" || fail "the missing file is not named with its reason"
[ "$(wc -l <"$tmp/bad.out")" -eq 2 ] && grep -q "^${images[1]}: " "$tmp/bad.out" ||
  fail "the good images were not both classified: $(cat "$tmp/bad.out")"
sed 's/^/    /' "$tmp/bad.err"
"$bin" predict --ckpt "$ck" --threads 1 --json "$tmp/missing.png" "${images[0]}" >"$tmp/badj.out" 2>/dev/null
$py - "$tmp/badj.out" <<'EOF' || fail "--json: a failed image is not an error line"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 2 and "error" in lines[0] and "top" in lines[1], lines
EOF

# ---- throughput line beyond 64 images ----
for i in $(seq 5); do cat "$tmp/images.txt"; done >"$tmp/many.txt"
"$bin" predict --ckpt "$ck" --threads 1 --list "$tmp/many.txt" >/dev/null 2>"$tmp/many.err" || fail "75 images: $(cat "$tmp/many.err")"
grep -q "75 images (0 unreadable) in .* img/s" "$tmp/many.err" || fail "no throughput line for 75 images: $(cat "$tmp/many.err")"
sed 's/^/    /' "$tmp/many.err"

# ---- usage ----
usage() { # TEXT ARGS...
  local text=$1 rc
  shift
  "$bin" predict "$@" >"$tmp/usage.out" 2>&1
  rc=$?
  [ "$rc" -eq 2 ] && grep -qF -- "$text" "$tmp/usage.out" && [ "$(wc -l <"$tmp/usage.out")" -eq 1 ] ||
    fail "predict $*: exit $rc, $(cat "$tmp/usage.out")"
}
usage "--ckpt FILE is required" "${images[0]}"
usage "no images" --ckpt "$ck"
usage "not both" --ckpt "$ck" --list "$tmp/images.txt" "${images[0]}"
usage "--logits goes with --json" --ckpt "$ck" --logits "${images[0]}"
usage "--crops" --ckpt "$ck" --crops 144 "${images[0]}"
: >"$tmp/empty.txt"
"$bin" predict --ckpt "$ck" --list "$tmp/empty.txt" >"$tmp/empty.out" 2>&1
[ $? -eq 1 ] && grep -q "names no images" "$tmp/empty.out" || fail "an empty --list: $(cat "$tmp/empty.out")"
"$bin" predict --ckpt "$ck" --list "$tmp/nolist.txt" >"$tmp/nolist.out" 2>&1
[ $? -eq 1 ] && grep -q "cannot read --list .*nolist.txt" "$tmp/nolist.out" || fail "a missing --list: $(cat "$tmp/nolist.out")"
"$bin" predict --ckpt "$tmp/none.gnck" "${images[0]}" >"$tmp/nock.out" 2>&1
[ $? -eq 1 ] && grep -q "none.gnck" "$tmp/nock.out" || fail "a missing checkpoint: $(cat "$tmp/nock.out")"

[ $failed -eq 0 ] && echo "test_predict: all checks passed"
exit $failed
