#!/usr/bin/env bash
# test_ckpt_forms.sh: what each form of checkpoint can still do, and
# evaluations that keep what they scored.
# - train --keep-every-slim: a kept-for-good checkpoint becomes slim (the
#   Polyak average only) once it leaves the newest --keep; the newest stays full;
# - ckpt slim: the average without momentum and without the aux heads, a
#   fraction of the size; eval scores it exactly as the full checkpoint;
#   --weights raw of it, and --resume of it, are refused naming why; --init
#   starts a new run from it;
# - eval over a set with more unreadable images than --max-bad prints the
#   table of what it scored, marked incomplete, writes the report, exits 1.
. "$(dirname "$0")/lib.sh" fail-fast mpi
size() { stat -c %s "$1"; }

"$B/tests/helper_gen_dataset" --out "$T/data" --classes 3 --per-class 16 --size 32 --seed 4 || fail "dataset"
"$B/tests/helper_gen_dataset" --out "$T/val" --classes 3 --per-class 10 --size 32 --seed 8 || fail "validation set"
COMMON=(--crop 64 --threads 1 --workers 1 --log-every 0 --eval-every 0 --conv-algo winograd --quiet)
"$BIN" train --data "$T/data" "${COMMON[@]}" --batch 8 --steps 12 --ckpt-every 2 --keep 1 --keep-every 4 --keep-every-slim \
  --out "$T/a" >"$T/a.log" 2>&1 || { cat "$T/a.log"; fail "run"; }
[ "$(cd "$T/a" && ls ckpt-*.gnck | tr '\n' ' ')" = "ckpt-00000004.gnck ckpt-00000008.gnck ckpt-00000012.gnck " ] \
  || { ls "$T/a"; fail "retention with --keep 1 --keep-every 4"; }
for s in 4 8; do
  f=$(printf '%s/a/ckpt-%08d.gnck' "$T" $s)
  "$BIN" ckpt info "$f" | grep -q "form           slim: the run's Polyak average only" || { "$BIN" ckpt info "$f"; fail "$f is not slim"; }
  "$BIN" ckpt verify "$f" >/dev/null || fail "$f does not verify"
done
FULL=$T/a/ckpt-00000012.gnck
"$BIN" ckpt info "$FULL" | grep -q "form           full: resume it exactly" || fail "the newest is not full"
[ $(( $(size "$T/a/ckpt-00000008.gnck") * 2 )) -lt "$(size "$FULL")" ] || fail "a slim checkpoint is not smaller"
ok "--keep-every-slim: kept checkpoints slim, the newest full"

# --- ckpt slim: the inference part; eval scores it exactly as the full one
"$BIN" ckpt slim "$FULL" --out "$T/s.gnck" >"$T/s.log" || { cat "$T/s.log"; fail "ckpt slim"; }
grep -q "wrote $T/s.gnck: the Polyak average of $FULL (step 12), [0-9]* parameters (no aux heads)" "$T/s.log" || { cat "$T/s.log"; fail "slim line"; }
"$BIN" ckpt verify "$T/s.gnck" >/dev/null || fail "the slim checkpoint does not verify"
"$BIN" ckpt info "$T/s.gnck" | grep -q "format 1.1" || fail "a slim checkpoint is not format 1.1"
[ $(( $(size "$T/s.gnck") * 4 )) -lt "$(size "$FULL")" ] || fail "ckpt slim: $(size "$T/s.gnck") bytes of $(size "$FULL")"
EVAL=(eval --data "$T/val" --batch 8 --workers 1 --quiet)
"$BIN" "${EVAL[@]}" --ckpt "$FULL" --report "$T/full.json" >/dev/null || fail "eval full"
"$BIN" "${EVAL[@]}" --ckpt "$T/s.gnck" --report "$T/slim.json" >/dev/null || fail "eval slim"
"$PY" - "$T" <<'EOF' || fail "the slim checkpoint scores differently"
import json, sys
a, b = (json.load(open(sys.argv[1] + f)) for f in ("/full.json", "/slim.json"))
for k in ("top1", "top5", "loss", "images"):
    if a[k] != b[k]: sys.exit(f"{k}: {a[k]} vs {b[k]}")
EOF
"$BIN" "${EVAL[@]}" --ckpt "$T/s.gnck" --weights raw >"$T/e.log" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "is slim and holds only its Polyak average: evaluate it with --weights average" "$T/e.log" \
  || { cat "$T/e.log"; fail "--weights raw of a slim checkpoint: exit $rc"; }
"$BIN" train --data "$T/data" "${COMMON[@]}" --no-aux --batch 8 --steps 14 --resume "$T/s.gnck" --out "$T/r" >"$T/r.log" 2>&1; rc=$?
[ $rc -ne 0 ] && grep -q "s.gnck is slim (its weights are the run's Polyak average, no optimizer state): evaluate it, or start a new run from it with --init; it cannot be resumed" "$T/r.log" \
  || { cat "$T/r.log"; fail "--resume of a slim checkpoint: exit $rc"; }
"$BIN" train --data "$T/data" "${COMMON[@]}" --batch 8 --steps 2 --init "$T/s.gnck" --out "$T/i" >"$T/i.log" 2>&1 \
  || { cat "$T/i.log"; fail "--init from a slim checkpoint"; }
grep -q "its Polyak average (slim): 116 of 128 tensors" "$T/i.log" \
  && grep -q "not in the checkpoint, initialised from --seed: loss1/conv, loss1/fc, loss1/classifier, loss2/conv" "$T/i.log" \
  || { cat "$T/i.log"; fail "--init from a slim checkpoint: the lines"; }
ok "ckpt slim: $(size "$T/s.gnck") of $(size "$FULL") bytes, the same scores; not resumable; --init from it"

# --- an evaluation over the unreadable-image limit keeps what it scored
cp -r "$T/val" "$T/bad"
for i in 1 2 3; do printf 'not an image' >"$T/bad/class_00/zz_bad_$i.png"; done
"$BIN" eval --data "$T/bad" --ckpt "$FULL" --batch 8 --workers 1 --max-bad 0.05 --report "$T/bad.json" >"$T/b.out" 2>"$T/b.err"; rc=$?
[ $rc -eq 1 ] || { cat "$T/b.out" "$T/b.err"; fail "eval over --max-bad: exit $rc"; }
grep -q "INCOMPLETE" "$T/b.out" && grep -q "^ *30 " "$T/b.out" || { cat "$T/b.out"; fail "no table of the 30 images scored"; }
grep -q "googlenet eval: incomplete: 3 of 33 images could not be read (limit 5%)" "$T/b.err" || { cat "$T/b.err"; fail "the reason"; }
"$PY" -c "import json,sys; r=json.load(open('$T/bad.json')); sys.exit(0 if r['incomplete'] and r['images']==30 and r['bad']==3 else 1)" \
  || fail "the report of an incomplete evaluation"
ok "over --max-bad: the table and report of the 30 images scored, marked incomplete, exit 1"
echo "all checkpoint-form tests passed"
