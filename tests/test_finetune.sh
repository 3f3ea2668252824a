#!/usr/bin/env bash
# test_finetune.sh: a new run from another run's weights (train --init) with
# layers kept fixed (--freeze).
# - a 4-class model fine-tuned to a 2-class subset of its data under mpirun
#   -np 2, everything up to inception_4e frozen: the classifier is
#   re-initialised (and said so), the run learns the 2 classes, and the frozen
#   tensors are bit for bit the checkpoint's;
# - the same command again with --resume auto continues that run, not a new one;
# - freezing a classifier that --init re-initialises, or a name that is no
#   layer, is refused with one line.
. "$(dirname "$0")/lib.sh" fail-fast mpi

"$B/tests/helper_gen_dataset" --out "$T/d4" --classes 4 --per-class 16 --size 32 --seed 3 || fail "dataset"
mkdir "$T/d2"
cp -r "$T/d4/class_00" "$T/d4/class_01" "$T/d2/"
# the generator's class k depends on the class count: the validation set is drawn as 4 classes too
"$B/tests/helper_gen_dataset" --out "$T/v4" --classes 4 --per-class 20 --size 32 --seed 11 || fail "validation set"
mkdir "$T/v2"
cp -r "$T/v4/class_00" "$T/v4/class_01" "$T/v2/"
# the augmentation and normalisation test_train.sh's learning run uses: these stripes are learnt
# in a few hundred images' time with them
COMMON=(--crop 64 --threads 1 --workers 1 --log-every 0 --eval-every 0 --conv-algo winograd
        --min-area 0.35 --no-photometric --mean 0.5 --std 0.25)
"$BIN" train --data "$T/d4" "${COMMON[@]}" --batch 8 --steps 144 --lr 0.01 --out "$T/base" >"$T/base.log" 2>&1 \
  || { cat "$T/base.log"; fail "the 4-class run"; }
INIT=$T/base/ckpt-00000144.gnck

# --- fine-tune to the 2-class subset, frozen up to inception_4e, on 2 ranks
FT=(train --data "$T/d2" "${COMMON[@]}" --no-aux --batch 4 --steps 30 --lr 0.01 --init "$INIT" --freeze inception_4e
    --val "$T/v2" --eval-every 30 --out "$T/ft" --resume auto)
mpirun --oversubscribe -np 2 "$BIN" "${FT[@]}" >"$T/ft.log" 2>&1 || { cat "$T/ft.log"; fail "fine-tuning"; }
grep -q "initialised from $INIT (step 144), its Polyak average: 114 of 116 tensors" "$T/ft.log" \
  && grep -q "re-initialised from --seed for 2 classes (the checkpoint has 4): loss3/classifier" "$T/ft.log" \
  || { cat "$T/ft.log"; fail "the --init lines"; }
grep -q "frozen: every layer up to inception_4e ([0-9]* of [0-9]* parameters) gets no gradient and no allreduce" "$T/ft.log" \
  || { cat "$T/ft.log"; fail "no freeze line"; }
top1=$(sed -n 's/.*"val_top1":\([0-9.]*\).*/\1/p' "$T/ft/metrics.jsonl" | tail -1)
"$PY" -c "import sys; sys.exit(0 if float('$top1') >= 0.9 else 1)" || { cat "$T/ft.log"; fail "the fine-tuned model scores $top1 on the 2 classes"; }
# the frozen tensors, by name, against the checkpoint's average
"$BIN" ckpt export "$INIT" --section average --out "$T/init.npy" >/dev/null || fail "export init"
"$BIN" ckpt export "$T/ft/ckpt-00000030.gnck" --out "$T/ft.npy" >/dev/null || fail "export fine-tuned"
"$BIN" ckpt info "$INIT" --tensors >"$T/init.tensors" || fail "init tensors"
"$BIN" ckpt info "$T/ft/ckpt-00000030.gnck" --tensors >"$T/ft.tensors" || fail "fine-tuned tensors"
"$PY" - "$T" <<'EOF' || fail "frozen tensors changed, or trained ones did not"
import sys, numpy as np
t = sys.argv[1]
def table(p):
    rows = [l.split() for l in open(p) if l.startswith("  ") and len(l.split()) == 4 and l.split()[0].isdigit()]
    return {r[3]: (int(r[0]), int(r[1])) for r in rows}
a, b = table(t + "/init.tensors"), table(t + "/ft.tensors")
wa, wb = np.load(t + "/init.npy"), np.load(t + "/ft.npy")
frozen = trained = 0
for name, (off, n) in sorted(b.items(), key=lambda kv: kv[1][0]):
    same = name in a and a[name][1] == n and wa[a[name][0]:a[name][0] + n].tobytes() == wb[off:off + n].tobytes()
    if name < "inception_5" and not name.startswith("loss"):
        if not same: sys.exit("frozen %s changed" % name)
        frozen += 1
    elif same:
        sys.exit("trained %s did not change" % name)
    else:
        trained += 1
print("frozen tensors bitwise equal: %d; trained and changed: %d" % (frozen, trained))
EOF
ok "2-class subset fine-tuned from a 4-class checkpoint: top-1 $top1, frozen layers bit for bit"

# --- the same command continues the run it started
mpirun --oversubscribe -np 2 "$BIN" "${FT[@]}" >"$T/ft2.log" 2>&1 || { cat "$T/ft2.log"; fail "second start"; }
grep -q "$T/ft is complete" "$T/ft2.log" || { cat "$T/ft2.log"; fail "--init with --resume auto started anew"; }
ok "--init with --resume auto continues the run once it has begun"

# --- refusals
# resuming another class count's checkpoint points to --init (not to --classes, which the data decides)
mkdir "$T/r0"
cp "$INIT" "$T/r0/"
"$BIN" train --data "$T/d2" "${COMMON[@]}" --batch 4 --steps 30 --out "$T/r0" --resume auto >"$T/r0.log" 2>&1; rc=$?
[ $rc -ne 0 ] && grep -q "ckpt-00000144.gnck has 4 classes and the training data $T/d2 has 2: it cannot be resumed on this data; start a new run from its weights with --init" "$T/r0.log" \
  || { cat "$T/r0.log"; fail "resuming a 4-class checkpoint on 2 classes: exit $rc, no way out named"; }
"$BIN" train --data "$T/d2" "${COMMON[@]}" --batch 4 --steps 2 --init "$INIT" --freeze inception_4e --out "$T/r1" >"$T/r1.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "freeze inception_4e would keep loss1/classifier/weight fixed at its fresh initialisation" "$T/r1.log" \
  || { cat "$T/r1.log"; fail "freezing a re-initialised aux classifier: exit $rc"; }
[ ! -e "$T/r1" ] || fail "the refused start left $T/r1"
"$BIN" train --data "$T/d2" "${COMMON[@]}" --batch 4 --steps 2 --freeze pool4 --out "$T/r2" >"$T/r2.log" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "freeze pool4 names no layer with parameters" "$T/r2.log" || { cat "$T/r2.log"; fail "--freeze pool4: exit $rc"; }
"$BIN" train --data "$T/d2" "${COMMON[@]}" --batch 4 --steps 2 --freeze loss3 --out "$T/r3" >"$T/r3.log" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "nothing left to train" "$T/r3.log" || { cat "$T/r3.log"; fail "--freeze loss3: exit $rc"; }
ok "another class count's checkpoint, a frozen re-initialised classifier, an unknown layer, freezing everything: refused"
echo "all fine-tuning tests passed"
