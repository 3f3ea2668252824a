#!/usr/bin/env bash
# fault_report.sh: injects the faults a long data-parallel run meets into real
# runs of bin/googlenet (2 ranks under mpirun, a tiny generated dataset, crop
# 64) and prints one table: faults injected, jobs that ended cleanly,
# resumes that matched an uninterrupted run bit for bit, and checkpoints lost
# or corrupted (which must be 0). docs/reliability.md explains each row.
#
#   scripts/fault_report.sh [--kills N] [--seed S] [--only a,b,...] [--keep-dir]
#
#   kill        kill -9 of one rank (chosen by the seed) at a random step, N
#               times (10): the job ends within --timeout naming the dead rank;
#               --resume auto then ends with the uninterrupted run's state
#   writer      kill -9 of rank 0 while its writer thread writes a checkpoint
#               (at 10%, 50% and 90% of the file): the previous checkpoint
#               stays valid, the temporary file goes at the next start
#   signal      SIGUSR1 to mpirun, SIGTERM to every rank: a checkpoint, exit 3,
#               and an exact resume
#   diskfull    --out on a tmpfs that holds one checkpoint: --ckpt-fail
#               continue trains to the end reporting each failure, stop stops
#   data        5% of the files truncated, emptied or garbage: training ends
#               and every epoch's summary counts exactly those files
#   ckpt        a bit flipped in, and a cut inside, every region of a
#               checkpoint: ckpt verify, --resume auto (falls back) and eval
#               refuse it naming the region
#   evalbad     eval over a validation set with unreadable files: counted and
#               named under --max-bad, refused above it
#
# Needs root for the tmpfs (diskfull is skipped otherwise, and says so).
# Everything it starts it stops, by pid; its files live in one temporary
# directory, removed at the end (--keep-dir keeps it). Run it niced on a
# shared machine: nice -n 19 scripts/fault_report.sh.
set -u
cd "$(dirname "$0")/.."
BIN=${GOOGLENET_BIN:-bin/googlenet}
B=${TEST_BUILD:-build/release}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
KILLS=10 SEED=1 ONLY=all KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --kills) KILLS=$2; shift 2 ;;
    --seed) SEED=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --keep-dir) KEEP=1; shift ;;
    *) echo "usage: scripts/fault_report.sh [--kills N] [--seed S] [--only kill,writer,signal,diskfull,data,ckpt,evalbad] [--keep-dir]" >&2
       exit 2 ;;
  esac
done
wanted() { [ "$ONLY" = all ] || [[ ",$ONLY," == *",$1,"* ]]; }

# Every training command takes these. The resumes are compared bit for bit
# with an uninterrupted run, so every run must choose the same kernels: the
# default --conv-algo auto times the algorithms at start-up and two runs may
# choose differently, so the plan is fixed here.
TRAIN=(--crop 64 --batch 4 --lr 0.005 --threads 1 --workers 1 --eval-every 0 --log-every 0 --keep 0 --ckpt-every 4
       --conv-algo winograd)
EPOCHS=3 STEPS=24 TIMEOUT=20 # 64 images / (2 ranks x 4) = 8 steps an epoch
MPI=(mpirun --oversubscribe --bind-to none -np 2) # forwards stdin to rank 0: runs get </dev/null

W=$(mktemp -d /tmp/fault_report.XXXXXX)
PIDS=() MOUNTS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null; done
  [ "$KEEP" = 1 ] && echo "kept $W" || rm -rf "$W"
}
trap cleanup EXIT
note() { echo "  $*"; }
say() { echo "== $*"; }

# ---- the table: per injection, counts; "lost" counts checkpoints that were
# complete before a fault and are missing, changed or unverifiable after it,
# and files under a checkpoint's name that do not verify
declare -A FAULTS CLEAN RESUMES EXACT LOST
ROWS=()
row() { ROWS+=("$1"); FAULTS[$1]=0 CLEAN[$1]=0 RESUMES[$1]=0 EXACT[$1]=0 LOST[$1]=0; }
add() { eval "$1[\$2]=\$(( \${$1[\$2]} + $3 ))"; }

[ -x "$BIN" ] || { echo "fault_report: $BIN is missing; run make" >&2; exit 1; }
[ -x "$B/tests/helper_gen_dataset" ] || make --no-print-directory "$B/tests/helper_gen_dataset" >/dev/null ||
  { echo "fault_report: cannot build $B/tests/helper_gen_dataset" >&2; exit 1; }
for h in helper_eval helper_kill_at_size; do
  [ -x "$B/tests/$h" ] || make --no-print-directory "$B/tests/$h" >/dev/null ||
    { echo "fault_report: cannot build $B/tests/$h" >&2; exit 1; }
done
"$B/tests/helper_gen_dataset" --out "$W/data" --classes 4 --per-class 16 --size 32 --seed 3 >/dev/null ||
  { echo "fault_report: cannot generate the dataset" >&2; exit 1; }

# ---- helpers

# state CKPT: one line holding the SHA-256 of the weights, momentum and average
state() {
  local s h out=""
  for s in weights momentum average; do
    "$BIN" ckpt export "$1" --section $s --out "$W/state.npy" >/dev/null 2>&1 || { echo "unreadable"; return; }
    h=$(sha256sum "$W/state.npy" | cut -c1-16)
    out="$out$s:$h "
  done
  rm -f "$W/state.npy"
  echo "$out"
}

# snapshot DIR: "name sha256" of every file under a checkpoint's name in DIR
# (the writer renames a file into place only once it is complete, so each of
# them must still be there, unchanged and verifying, after the next run)
snapshot() {
  local f
  for f in "$1"/ckpt-*.gnck; do
    [ -e "$f" ] && echo "$(basename "$f") $(sha256sum "$f" | cut -d' ' -f1)"
  done
}

# audit ROW DIR SNAPSHOT: counts into LOST every checkpoint of SNAPSHOT missing or
# changed in DIR, every ckpt-*.gnck in DIR that does not verify, and every
# temporary file left; prints what it found
audit() {
  local rowname=$1 dir=$2 snap=$3 bad=0 name sum f
  while read -r name sum; do
    [ -n "$name" ] || continue
    if [ ! -e "$dir/$name" ]; then note "LOST: $name was complete before the fault and is gone"; bad=$((bad + 1))
    elif [ "$(sha256sum "$dir/$name" | cut -d' ' -f1)" != "$sum" ]; then note "LOST: $name changed"; bad=$((bad + 1)); fi
  done <<<"$snap"
  for f in "$dir"/ckpt-*.gnck; do
    [ -e "$f" ] || continue
    "$BIN" ckpt verify "$f" >/dev/null 2>&1 || { note "CORRUPT: $(basename "$f") does not verify"; bad=$((bad + 1)); }
  done
  for f in "$dir"/.ckpt-*.tmp.*; do
    [ -e "$f" ] && { note "LEFT: temporary file $(basename "$f")"; bad=$((bad + 1)); }
  done
  add LOST "$rowname" $bad
}

# rank_pid MPIRUN_PID RANK: the pid of that rank (a child of mpirun)
rank_pid() {
  local p
  for p in $(pgrep -P "$1"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}

# wait_steps DIR N PID: until DIR's metrics.jsonl holds N steps (or PID ended)
wait_steps() {
  local i
  for i in $(seq 3000); do
    [ -f "$1/metrics.jsonl" ] && [ "$(grep -c '"loss"' "$1/metrics.jsonl")" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.02
  done
  return 1
}

# start OUT LOG [extra train flags]: the 2-rank job in the background; pid in $JOB
start() {
  local out=$1 log=$2; shift 2
  "${MPI[@]}" "$BIN" train --data "$W/data" --epochs $EPOCHS "${TRAIN[@]}" --quiet --timeout $TIMEOUT --out "$out" "$@" \
    >"$log" 2>&1 &
  JOB=$!
  PIDS+=("$JOB")
}

# resume ROW OUT: --resume auto to the end; compares the final state with the
# uninterrupted run's
resume() {
  local rowname=$1 out=$2
  "${MPI[@]}" "$BIN" train --data "$W/data" --epochs $EPOCHS "${TRAIN[@]}" --quiet --timeout 120 --out "$out" \
    --resume auto </dev/null >"$out.resume.log" 2>&1
  local rc=$?
  add RESUMES "$rowname" 1
  if [ $rc -ne 0 ]; then note "resume exited $rc: $(tail -n 2 "$out.resume.log" | tr '\n' ' ')"; return; fi
  local got
  got=$(state "$out/ckpt-$(printf %08d $STEPS).gnck")
  if [ "$got" = "$REF" ]; then add EXACT "$rowname" 1; note "resumed: final state equals the uninterrupted run's"
  else note "resumed: final state DIFFERS: $got"; fi
}

# ---- the uninterrupted run
say "reference: an uninterrupted run of $STEPS steps"
t0=$(date +%s)
"${MPI[@]}" "$BIN" train --data "$W/data" --epochs $EPOCHS "${TRAIN[@]}" --quiet --timeout 120 --out "$W/ref" \
  >"$W/ref.log" 2>&1 || { cat "$W/ref.log"; echo "fault_report: the reference run failed" >&2; exit 1; }
REF=$(state "$W/ref/ckpt-$(printf %08d $STEPS).gnck")
CKPT_BYTES=$(stat -c %s "$W/ref/ckpt-00000004.gnck")
note "$(( $(date +%s) - t0 )) s; final state $REF; a checkpoint is $CKPT_BYTES bytes"

# ---- kill -9 of one rank at a random step
if wanted kill; then
  row "kill -9 of one rank at a random step"
  r="kill -9 of one rank at a random step"
  for k in $(seq "$KILLS"); do
    RANDOM=$((SEED * 1000 + k))
    victim=$((RANDOM % 2)) step=$((1 + RANDOM % (STEPS - 3))) ms=$((RANDOM % 300))
    out=$W/kill$k
    say "kill $k/$KILLS: rank $victim after step $step + ${ms} ms"
    start "$out" "$out.log"
    if ! wait_steps "$out" "$step" "$JOB"; then note "the job ended before step $step: no fault"; wait "$JOB"; continue; fi
    sleep "0.$(printf %03d $ms)"
    pid=$(rank_pid "$JOB" "$victim")
    [ -n "$pid" ] || { note "rank $victim not found"; wait "$JOB"; continue; }
    t=$(date +%s.%N)
    kill -9 "$pid"
    add FAULTS "$r" 1
    wait "$JOB"; rc=$?
    took=$(echo "$(date +%s.%N) - $t" | bc)
    snap=$(snapshot "$out")
    if [ $rc -ne 0 ] && (( $(echo "$took <= $TIMEOUT" | bc) )) &&
       grep -qE "rank $victim with PID|late rank: $victim" "$out.log"; then
      add CLEAN "$r" 1; note "ended: exit $rc after ${took%???????} s, naming rank $victim"
    else
      note "NOT CLEAN: exit $rc after ${took%???????} s: $(grep -m1 -E 'rank|timeout' "$out.log")"
    fi
    resume "$r" "$out"
    audit "$r" "$out" "$snap"
    rm -rf "$out"
  done
fi

# ---- kill -9 of rank 0 while its writer thread writes a checkpoint
if wanted writer; then
  r="kill -9 of rank 0 during a checkpoint write"
  row "$r"
  for pct in 10 50 90; do
    out=$W/writer$pct
    say "writer: kill rank 0 when the checkpoint of step 8 is ${pct}% written"
    start "$out" "$out.log"
    wait_steps "$out" 1 "$JOB" || { note "the job ended early"; wait "$JOB"; continue; }
    pid=$(rank_pid "$JOB" 0)
    # the writer thread writes .ckpt-00000008.gnck.tmp.<pid>.<n>, then renames it;
    # the helper watches it grow (inotify) and kills rank 0 when it holds pct% of a checkpoint
    hit=$("$B/tests/helper_kill_at_size" "$out" .ckpt-00000008.gnck.tmp. $((CKPT_BYTES * pct / 100)) "$pid" 120)
    if [ -z "$hit" ]; then note "missed the write (it finished first)"; kill -9 "$JOB"; wait "$JOB"; continue; fi
    add FAULTS "$r" 1
    wait "$JOB"; rc=$?
    snap=$(snapshot "$out")
    hit=$out/$(sed -n 's/^killed [0-9]*: \([^ ]*\) had.*/\1/p' <<<"$hit")
    size=$(stat -c %s "$hit" 2>/dev/null || echo gone)
    latest=$(cat "$out/latest" 2>/dev/null)
    if [ $rc -ne 0 ] && grep -qE "rank 0 with PID|late rank: 0" "$out.log" && [ ! -e "$out/ckpt-00000008.gnck" ] &&
       [ "$latest" = "ckpt-00000004.gnck" ] && "$BIN" ckpt verify "$out/ckpt-00000004.gnck" >/dev/null 2>&1; then
      add CLEAN "$r" 1
      note "ended: exit $rc naming rank 0; temporary file cut at $size bytes; latest still names ckpt-00000004.gnck, which verifies"
    else
      note "NOT CLEAN: exit $rc, latest '$latest', ckpt-00000008.gnck $( [ -e "$out/ckpt-00000008.gnck" ] && echo exists || echo absent)"
    fi
    resume "$r" "$out"
    audit "$r" "$out" "$snap"
    rm -rf "$out"
  done
fi

# ---- SIGUSR1 to mpirun, SIGTERM to every rank
if wanted signal; then
  r="SIGUSR1 / SIGTERM to the job"
  row "$r"
  for how in usr1-mpirun term-ranks; do
    out=$W/$how
    say "signal: $how after step 9"
    start "$out" "$out.log"
    wait_steps "$out" 9 "$JOB" || { note "the job ended early"; wait "$JOB"; continue; }
    if [ $how = usr1-mpirun ]; then kill -USR1 "$JOB"
    else p0=$(rank_pid "$JOB" 0) p1=$(rank_pid "$JOB" 1); kill -TERM $p0 $p1; fi
    add FAULTS "$r" 1
    wait "$JOB"; rc=$?
    snap=$(snapshot "$out")
    stop=$(sed -n 's/.*stopped at step \([0-9]*\) on a signal.*/\1/p' "$out.log")
    if [ $rc -eq 3 ] && [ -n "$stop" ] && "$BIN" ckpt verify "$out/ckpt-$(printf %08d "$stop").gnck" >/dev/null 2>&1; then
      add CLEAN "$r" 1; note "ended: exit 3 at step $stop with a checkpoint that verifies"
    else
      note "NOT CLEAN: exit $rc: $(tail -n 2 "$out.log" | tr '\n' ' ')"
    fi
    resume "$r" "$out"
    audit "$r" "$out" "$snap"
    rm -rf "$out"
  done
fi

# ---- a full disk under --out
if wanted diskfull; then
  r="disk full under --out (tmpfs)"
  row "$r"
  if [ "$(id -u)" != 0 ]; then
    note "skipped: mounting a tmpfs needs root"
  else
    for policy in continue stop; do
      out=$W/full-$policy
      mkdir -p "$out"
      # room for one checkpoint and the small files, not for a second one beside it
      mount -t tmpfs -o size=$(( CKPT_BYTES * 3 / 2 / 1024 ))k tmpfs "$out" || { note "cannot mount a tmpfs"; continue; }
      MOUNTS+=("$out")
      say "disk full: --ckpt-fail $policy"
      "${MPI[@]}" "$BIN" train --data "$W/data" --epochs $EPOCHS "${TRAIN[@]}" --quiet --timeout 120 --out "$out" \
        --ckpt-fail $policy --index-cache "$W/full-$policy.cache" >"$out.log" 2>&1
      rc=$?
      add FAULTS "$r" 1
      fails=$(grep -c "No space left on device" "$out.log")
      last=$(grep -o '"step":[0-9]*' "$out/metrics.jsonl" | tail -1 | cut -d: -f2)
      ok=0
      if [ $policy = continue ]; then
        # every save after the first fails; training reaches the last step; the
        # final checkpoint's failure makes the exit code 1
        [ $rc -eq 1 ] && [ "$last" = $STEPS ] && [ "$fails" -ge 2 ] && ok=1
        note "exit $rc, trained to step $last, $fails failed writes reported"
      else
        [ $rc -ne 0 ] && [ "${last:-0}" -lt $STEPS ] && [ "$fails" -ge 1 ] && grep -q "temporary file was removed" "$out.log" && ok=1
        note "exit $rc, stopped at step $last: $(grep -m1 'No space' "$out.log" | cut -c1-150)"
      fi
      add CLEAN "$r" $ok
      [ "$(ls "$out"/ckpt-*.gnck | wc -l)" -eq 1 ] || note "expected exactly the first checkpoint: $(ls "$out")"
      audit "$r" "$out" "ckpt-00000004.gnck $(sha256sum "$out/ckpt-00000004.gnck" 2>/dev/null | cut -d' ' -f1)"
      umount "$out" && MOUNTS=("${MOUNTS[@]/$out/}")
    done
  fi
fi

# ---- damaged data: 5% of the files
if wanted data; then
  r="damaged data (5% of the files)"
  row "$r"
  say "data: a copy of the dataset with 5% of its files damaged"
  cp -r "$W/data" "$W/damaged"
  mapfile -t files < <(cd "$W/damaged" && ls -d */* | sort)
  n=${#files[@]} nbad=$(( (n * 5 + 99) / 100 ))
  RANDOM=$SEED
  picked=()
  while [ ${#picked[@]} -lt $nbad ]; do
    f=${files[$((RANDOM % n))]}
    [[ " ${picked[*]} " == *" $f "* ]] || picked+=("$f")
  done
  for i in "${!picked[@]}"; do
    f=$W/damaged/${picked[$i]}
    case $((i % 3)) in
      0) truncate -s $(( $(stat -c %s "$f") / 2 )) "$f" ;;  # truncated
      1) : >"$f" ;;                                         # emptied
      2) head -c 700 /dev/urandom >"$f" ;;                  # garbage
    esac
  done
  add FAULTS "$r" "$nbad"
  note "$nbad of $n files damaged: ${picked[*]}"
  "${MPI[@]}" "$BIN" train --data "$W/damaged" --epochs 2 "${TRAIN[@]}" --log-every 1000 --timeout 120 \
    --out "$W/damaged-run" >"$W/damaged.log" 2>&1
  rc=$?
  counts=$(sed -n 's/^epoch \([0-9]*\): \([0-9]*\) unreadable or corrupt files were replaced/\2/p' "$W/damaged.log" | tr '\n' ' ')
  note "exit $rc; epoch summaries count: ${counts:-none}"
  if [ $rc -eq 0 ] && [ "$counts" = "$nbad $nbad " ]; then add CLEAN "$r" "$nbad"; fi
  audit "$r" "$W/damaged-run" ""
fi

# ---- damaged checkpoints: every region, a flipped bit and a cut
if wanted ckpt; then
  r="damaged checkpoint (each region: bit flip, cut)"
  row "$r"
  say "ckpt: damage in every region, through ckpt verify, --resume auto and eval"
  src=$W/ref/ckpt-00000008.gnck
  # the regions from the file's own table and trailer
  regions=$(/usr/bin/python3 - "$src" <<'EOF'
import struct, sys
b = open(sys.argv[1], 'rb').read()
n = len(b)
toff, nsec = struct.unpack_from('<QI', b, n - 48)
names = {1: "'meta'", 2: "'classes'", 3: "'weights'", 4: "'momentum'", 5: "'average'"}
cut = {1: "metadata", 2: "class names", 3: "'weights'", 4: "'momentum'", 5: "'average'"}
print("header 0 24 header header")
print("header-checksum 24 32 header header")
for i in range(nsec):
    kind, _, _, _, off, stored = struct.unpack_from('<IIIIQQ', b, toff + 64 * i)
    print(f"section-{names[kind][1:-1]} {off} {off + stored} {names[kind]} {cut[kind].replace(' ', '_')}")
print(f"table {toff} {toff + 64 * nsec} section_table section_table")
t = n - 48  # the trailer: table offset, count, entry size | table checksum | file size | file checksum | end marker
print(f"trailer-layout {t} {t + 16} trailer trailer")
print(f"trailer-table-checksum {t + 16} {t + 24} trailer trailer")
print(f"trailer-file-size {t + 24} {t + 32} trailer trailer")
print(f"trailer-file-checksum {t + 32} {t + 40} trailer trailer")
print(f"trailer-end-marker {t + 40} {n} trailer trailer")
EOF
)
  mkdir -p "$W/dmg"
  "$B/tests/helper_eval" gen "$W/val" --classes 4 --per-class 2 --seed 9 >/dev/null 2>&1 ||
    "$B/tests/helper_gen_dataset" --out "$W/val" --classes 4 --per-class 2 --size 32 --seed 9 >/dev/null
  while read -r name from to says_flip says_cut <&3; do
    for kind in flip cut; do
      says=$([ $kind = flip ] && echo "$says_flip" || echo "$says_cut"); says=${says//_/ }
      d=$W/dmg/$name-$kind
      mkdir -p "$d"
      cp "$W/ref/ckpt-00000004.gnck" "$d/"
      at=$(( (from + to) / 2 ))
      if [ $kind = flip ]; then
        cp "$src" "$d/ckpt-00000008.gnck"
        printf "\\x$(printf %02x $(( $(od -An -tu1 -j $at -N1 "$src") ^ 4 )))" |
          dd of="$d/ckpt-00000008.gnck" bs=1 seek=$at conv=notrunc status=none
      else
        head -c $at "$src" >"$d/ckpt-00000008.gnck"
      fi
      snap=$(snapshot "$d" | grep -v ckpt-00000008)
      add FAULTS "$r" 1
      ok=1 why=""
      "$BIN" ckpt verify "$d/ckpt-00000008.gnck" >"$d.verify" 2>&1 && { ok=0; why="verify accepted it"; }
      grep -qF -- "$says" "$d.verify" || { ok=0; why="$why; verify: $(head -c 200 "$d.verify")"; }
      "$BIN" eval --ckpt "$d/ckpt-00000008.gnck" --data "$W/val" --threads 1 --workers 1 --quiet >"$d.eval" 2>&1
      erc=$?
      { [ $erc -eq 1 ] && grep -qF -- "$says" "$d.eval"; } || { ok=0; why="$why; eval exit $erc: $(head -c 200 "$d.eval")"; }
      # the same 2 ranks: on another rank count the position is re-split and step numbers change
      "${MPI[@]}" "$BIN" train --data "$W/data" "${TRAIN[@]}" --quiet --steps 5 --out "$d" --resume auto </dev/null \
        >"$d.resume" 2>&1 ||
        { ok=0; why="$why; resume exited $?"; }
      { grep -q "skipping checkpoint ckpt-00000008.gnck" "$d.resume" && grep -qF -- "$says" "$d.resume" &&
        grep -q "resuming from $d/ckpt-00000004.gnck" "$d.resume" && [ -e "$d/ckpt-00000005.gnck" ]; } ||
        { ok=0; why="$why; resume: $(head -c 300 "$d.resume")"; }
      add CLEAN "$r" $ok
      note "$name $kind at byte $at: $([ $ok = 1 ] && echo "refused by verify, resume (fell back to step 4) and eval, naming $says" || echo "NOT CLEAN:$why")"
      # the damaged file stays as it was put there; every other checkpoint,
      # and the one the resume wrote, must be intact
      mv "$d/ckpt-00000008.gnck" "$d.damaged"
      audit "$r" "$d" "$snap"
      rm -rf "$d" "$d".*
    done
  done 3<<<"$regions"
fi

# ---- eval over a validation set with unreadable files
if wanted evalbad; then
  r="eval over a bad validation set"
  row "$r"
  say "evalbad: 2 unreadable files of 14"
  "$B/tests/helper_eval" gen "$W/badval" --classes 4 --per-class 3 --bad 2 --seed 5 >/dev/null ||
    { echo "fault_report: helper_eval gen failed" >&2; exit 1; }
  add FAULTS "$r" 2
  "$BIN" eval --ckpt "$W/ref/ckpt-00000024.gnck" --data "$W/badval" --max-bad 0.2 --threads 1 --workers 1 \
    --report "$W/badval.json" >"$W/badval.log" 2>&1
  rc1=$?
  "$BIN" eval --ckpt "$W/ref/ckpt-00000024.gnck" --data "$W/badval" --max-bad 0.1 --threads 1 --workers 1 \
    >"$W/badval2.log" 2>&1
  rc2=$?
  bad=$(/usr/bin/python3 -c "import json; print(json.load(open('$W/badval.json'))['bad'])" 2>/dev/null)
  note "--max-bad 0.2: exit $rc1, bad $bad; --max-bad 0.1: exit $rc2: $(tail -n 1 "$W/badval2.log" | cut -c1-160)"
  [ $rc1 -eq 0 ] && [ "$bad" = 2 ] && grep -q "unreadable: class_00/zz_bad" "$W/badval.log" &&
    [ $rc2 -eq 1 ] && grep -q "2 of 14 images could not be read" "$W/badval2.log" && add CLEAN "$r" 2
fi

# ---- the table
echo
echo "fault report: $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n), $(getconf _NPROCESSORS_ONLN) cores, 2 ranks, crop 64, $STEPS steps a run"
printf '| %-48s | %6s | %13s | %13s | %27s |\n' "injection" "faults" "ended cleanly" "resumes exact" "checkpoints lost/corrupted"
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..50})" "--------" "---------------" "---------------" "-----------------------------"
tf=0 tc=0 tr=0 te=0 tl=0
for r in "${ROWS[@]}"; do
  res="-"
  [ "${RESUMES[$r]}" -gt 0 ] && res="${EXACT[$r]} of ${RESUMES[$r]}"
  printf '| %-48s | %6s | %13s | %13s | %27s |\n' "$r" "${FAULTS[$r]}" "${CLEAN[$r]} of ${FAULTS[$r]}" "$res" "${LOST[$r]}"
  tf=$((tf + FAULTS[$r])) tc=$((tc + CLEAN[$r])) tr=$((tr + RESUMES[$r])) te=$((te + EXACT[$r])) tl=$((tl + LOST[$r]))
done
printf '| %-48s | %6s | %13s | %13s | %27s |\n' "total" "$tf" "$tc of $tf" "$te of $tr" "$tl"
[ $tc -eq $tf ] && [ $te -eq $tr ] && [ $tl -eq 0 ]
