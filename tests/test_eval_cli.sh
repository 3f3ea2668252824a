#!/usr/bin/env bash
# test_eval_cli.sh: `googlenet eval` end to end on a tiny generated set (3
# classes, 40x30 JPEGs and 30x40 PNGs, 2 unreadable files): an ensemble of two
# random checkpoints with 10 crops gives identical counts with 1 process and
# under mpirun with 1, 2 and 3 ranks (shards neither overlap nor miss an
# image); the report has every field docs/evaluation.md names; 1 crop with raw weights
# differs from the average; and every kind of bad input ends with one clear
# line naming the culprit: a damaged checkpoint, a class count that differs
# from the data or from another ensemble member, an unknown crop scheme,
# missing flags, too many unreadable images.
. "$(dirname "$0")/lib.sh" keep-going mpi
bin=$BIN helper=$B/tests/helper_eval py=$PY tmp=$T
export OMPI_MCA_btl=self,vader
run() { local name=$1; shift; timeout -k 5 300 "$@" >"$tmp/$name.out" 2>&1; rc=$?; echo "[$name] exit $rc"; }
expect_ok() { [ "$rc" -eq 0 ] || { fail "$1: exit $rc"; tail -n 20 "$tmp/$1.out" | sed 's/^/    /'; }; }
expect_fail_with() {   # NAME EXIT TEXT
  [ "$rc" -eq "$2" ] || fail "$1: exit $rc, expected $2"
  grep -qF -- "$3" "$tmp/$1.out" || fail "$1: output lacks '$3'"
  grep -q "Segmentation\|Aborted\|core dumped\|AddressSanitizer" "$tmp/$1.out" && fail "$1: crashed"
  sed 's/^/    /' "$tmp/$1.out" | head -n 5
}

"$helper" gen "$tmp/val" --classes 3 --per-class 5 --bad 2 || { echo "helper_eval gen failed"; exit 1; }
"$helper" ckpt "$tmp/a.gnck" --classes 3 --crop 64 --seed 1 --step 100 || exit 1
"$helper" ckpt "$tmp/b.gnck" --classes 3 --crop 64 --seed 2 --step 200 || exit 1
"$helper" ckpt "$tmp/four.gnck" --classes 4 --crop 64 --seed 3 || exit 1
common=(--data "$tmp/val" --crops 10 --max-bad 0.2 --batch 16 --threads 1 --workers 1 --quiet)

# ---- the same counts whatever the number of ranks ----
run single "$bin" eval --ckpt "$tmp/a.gnck" --ckpt "$tmp/b.gnck" "${common[@]}" --report "$tmp/single.json"
expect_ok single
cat "$tmp/single.out"
for np in 1 2 3; do
  run "np$np" mpirun -np "$np" --oversubscribe "$bin" eval --ckpt "$tmp/a.gnck" --ckpt "$tmp/b.gnck" "${common[@]}" \
      --report "$tmp/np$np.json"
  expect_ok "np$np"
done
$py - "$tmp" <<'EOF' || fail "reports differ between rank counts (see above)"
import json, sys
d = sys.argv[1]
ref = json.load(open(f"{d}/single.json"))
need = ["top1", "top5", "loss", "images", "bad", "crops", "crops_per_image", "crop", "models", "seconds",
        "img_per_s", "world", "weights", "checkpoints", "bad_files", "per_class"]
missing = [k for k in need if k not in ref]
assert not missing, f"report lacks {missing}"
assert ref["images"] == 15 and ref["bad"] == 2 and ref["models"] == 2 and ref["crops"] == 15 * 10 * 2, ref
assert ref["weights"] == "average" and ref["crops_per_image"] == 10 and ref["crop"] == 64
assert [c["step"] for c in ref["checkpoints"]] == [100, 200]
assert len(ref["per_class"]) == 3 and sum(c["images"] for c in ref["per_class"]) == 15
assert len(ref["bad_files"]) == 2 and all("zz_bad" in b for b in ref["bad_files"])
ok = True
for np_ in (1, 2, 3):
    r = json.load(open(f"{d}/np{np_}.json"))
    assert r["world"] == np_, (np_, r["world"])
    for k in ("images", "bad", "crops", "top1", "top5", "per_class"):
        if r[k] != ref[k]:
            print(f"{np_} ranks: {k} = {r[k]} but {ref[k]} with one process"); ok = False
    if abs(r["loss"] - ref["loss"]) > 1e-5:
        print(f"{np_} ranks: loss {r['loss']} vs {ref['loss']}"); ok = False
print("counts identical with 1 process and 1, 2, 3 ranks:", ref["images"], "images,", ref["bad"], "unreadable,",
      "top-1", ref["top1"], "top-5", ref["top5"], "loss", ref["loss"])
sys.exit(0 if ok else 1)
EOF
grep -q "top-1" "$tmp/single.out" || fail "no table printed"
grep -q "unreadable: class_00/zz_bad_00.jpg" "$tmp/single.out" || fail "the table does not name the unreadable files"

# ---- raw weights are another model than the average ----
run raw "$bin" eval --ckpt "$tmp/a.gnck" --weights raw --data "$tmp/val" --crops 1 --max-bad 0.2 --threads 1 \
    --report "$tmp/raw.json" --quiet
expect_ok raw
run avg "$bin" eval --ckpt "$tmp/a.gnck" --data "$tmp/val" --crops 1 --max-bad 0.2 --threads 1 \
    --report "$tmp/avg.json" --quiet
expect_ok avg
$py -c "
import json; a = json.load(open('$tmp/avg.json')); r = json.load(open('$tmp/raw.json'))
assert r['weights'] == 'raw' and a['weights'] == 'average'
assert abs(a['loss'] - r['loss']) > 1e-6, (a['loss'], r['loss'])
assert a['crops'] == 15 and a['crops_per_image'] == 1
" || fail "--weights raw and average gave the same result"

# ---- bad input ----
cp "$tmp/a.gnck" "$tmp/flipped.gnck"
size=$(stat -c %s "$tmp/flipped.gnck")
flip_byte "$tmp/flipped.gnck" $((size / 2))
run flipped "$bin" eval --ckpt "$tmp/flipped.gnck" --data "$tmp/val" --quiet
expect_fail_with flipped 1 "flipped.gnck"
grep -q "does not verify" "$tmp/flipped.out" || fail "flipped: no 'does not verify'"
head -c 1000 "$tmp/a.gnck" >"$tmp/short.gnck"
run short "$bin" eval --ckpt "$tmp/short.gnck" --data "$tmp/val" --quiet
expect_fail_with short 1 "short.gnck"
run classes "$bin" eval --ckpt "$tmp/four.gnck" --data "$tmp/val" --quiet
expect_fail_with classes 1 "four.gnck has 4 classes but the dataset"
run members "$bin" eval --ckpt "$tmp/a.gnck" --ckpt "$tmp/four.gnck" --data "$tmp/val" --quiet
expect_fail_with members 1 "four.gnck has 4 classes but $tmp/a.gnck has 3"
run members_mpi mpirun -np 2 --oversubscribe "$bin" eval --ckpt "$tmp/a.gnck" --ckpt "$tmp/four.gnck" --data "$tmp/val" --quiet
expect_fail_with members_mpi 1 "four.gnck has 4 classes"
run scheme "$bin" eval --ckpt "$tmp/a.gnck" --data "$tmp/val" --crops 5
expect_fail_with scheme 2 "--crops"
run nodata "$bin" eval --ckpt "$tmp/a.gnck"
expect_fail_with nodata 2 "--data is required"
run nockpt "$bin" eval --data "$tmp/val"
expect_fail_with nockpt 2 "--ckpt"
run missing "$bin" eval --ckpt "$tmp/nope.gnck" --data "$tmp/val"
expect_fail_with missing 1 "nope.gnck"
run toomanybad "$bin" eval --ckpt "$tmp/a.gnck" --data "$tmp/val" --max-bad 0.05 --quiet
expect_fail_with toomanybad 1 "2 of 17 images could not be read"
run typo "$bin" eval --ckpt "$tmp/a.gnck" --data "$tmp/val" --crop-s 1
expect_fail_with typo 2 "did you mean"

[ $failed -eq 0 ] && echo "test_eval_cli: all checks passed"
exit $failed
