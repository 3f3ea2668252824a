#!/usr/bin/env bash
# test_eval_watch.sh: scheduled evaluation, `eval --watch DIR --results FILE`.
# Only finished checkpoints are read (temporary files, `latest` and a file that
# does not verify are left alone); a second run adds nothing; a new checkpoint
# adds one line; a checkpoint another job holds the lock of is skipped; two
# jobs at once evaluate each checkpoint once; a torn line from a dead writer is
# ignored and does not swallow the next line; a job killed mid-evaluation
# leaves no line and its lock dies with it; --follow picks up a checkpoint that
# arrives later and stops on SIGTERM; under mpirun the line says 2 ranks.
. "$(dirname "$0")/lib.sh" keep-going mpi
bin=$BIN helper=$B/tests/helper_eval py=$PY tmp=$T
export OMPI_MCA_btl=self,vader
pids=()
test_cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
d=$tmp/run
res=$tmp/results.jsonl
mkdir -p "$d"
"$helper" gen "$tmp/val" --classes 3 --per-class 3 || exit 1
mk() { "$helper" ckpt "$1" --classes 3 --crop 64 --seed "$2" --step "$2" || exit 1; }
watch=("$bin" eval --watch "$d" --results "$res" --data "$tmp/val" --threads 1 --workers 1 --quiet)
# lines of the results file that parse, for checkpoint NAME (all when empty)
count() { $py - "$res" "${1:-}" <<'EOF'
import json, sys
n = 0
for line in open(sys.argv[1]) if __import__("os").path.exists(sys.argv[1]) else []:
    try:
        o = json.loads(line)
    except ValueError:
        continue
    if not sys.argv[2] or o["ckpt"] == sys.argv[2]:
        n += 1
print(n)
EOF
}
name() { printf 'ckpt-%08d.gnck' "$1"; }

mk "$d/$(name 10)" 10
mk "$d/$(name 20)" 20
mk "$tmp/c30" 30
head -c 5000 "$tmp/c30" >"$d/$(name 30).tmp.4242"   # the trainer's temporary file
echo "$(name 20)" >"$d/latest"
head -c 3000 "$tmp/c30" >"$d/$(name 40)"            # arriving: does not verify yet
timeout 120 "${watch[@]}" >"$tmp/w1.out" 2>&1; rc=$?
cat "$tmp/w1.out"
[ $rc -eq 0 ] || fail "first run: exit $rc"
[ "$(count)" = 2 ] || fail "first run: $(count) lines, expected 2 (10 and 20)"
[ "$(count "$(name 10)")" = 1 ] && [ "$(count "$(name 20)")" = 1 ] || fail "first run: 10 and 20 not one line each"
grep -q "$(name 40) does not verify yet" "$tmp/w1.out" || fail "the arriving checkpoint is not reported"
$py - "$res" <<'EOF' || fail "result lines lack fields"
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    for k in ("ckpt", "path", "step", "params_sha256", "top1", "top5", "loss", "images", "crops", "models", "seconds", "img_per_s"):
        assert k in o, (k, o)
    assert o["step"] == int(o["ckpt"][5:13]) and len(o["params_sha256"]) == 64 and o["images"] == 9
EOF

# a second run adds nothing
timeout 120 "${watch[@]}" >"$tmp/w2.out" 2>&1 || fail "second run failed: $(cat "$tmp/w2.out")"
[ "$(count)" = 2 ] || fail "second run: $(count) lines, expected 2"

# the temporary file is renamed into place: one more line
mv "$tmp/c30" "$d/$(name 30)"
rm -f "$d/$(name 30).tmp.4242" "$d/$(name 40)"
timeout 120 "${watch[@]}" >"$tmp/w3.out" 2>&1 || fail "third run failed: $(cat "$tmp/w3.out")"
[ "$(count)" = 3 ] && [ "$(count "$(name 30)")" = 1 ] || fail "third run: $(count) lines, 30 missing?"

# another job holds checkpoint 50's lock (an fcntl record lock on byte 51)
mk "$d/$(name 50)" 50
$py - "$res.lock" <<'EOF' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 51)
open(sys.argv[1] + ".held", "w").close()
time.sleep(30)
EOF
holder=$!
pids+=($holder)
for _ in $(seq 100); do [ -e "$res.lock.held" ] && break; sleep 0.1; done
timeout 120 "${watch[@]}" >"$tmp/w4.out" 2>&1 || fail "run beside a held lock failed"
[ "$(count "$(name 50)")" = 0 ] || fail "checkpoint 50 was evaluated although another job held its lock"
kill $holder 2>/dev/null; wait $holder 2>/dev/null
timeout 120 "${watch[@]}" >"$tmp/w5.out" 2>&1 || fail "run after the lock was released failed"
[ "$(count "$(name 50)")" = 1 ] || fail "checkpoint 50 not evaluated once its lock was free"

# two jobs at once: each new checkpoint evaluated exactly once
mk "$d/$(name 60)" 60
mk "$d/$(name 70)" 70
timeout 120 "${watch[@]}" >"$tmp/j1.out" 2>&1 &
j1=$!
timeout 120 "${watch[@]}" >"$tmp/j2.out" 2>&1 &
j2=$!
wait $j1 || fail "concurrent job 1 failed: $(cat "$tmp/j1.out")"
wait $j2 || fail "concurrent job 2 failed: $(cat "$tmp/j2.out")"
[ "$(count "$(name 60)")" = 1 ] && [ "$(count "$(name 70)")" = 1 ] ||
  fail "concurrent jobs: 60 has $(count "$(name 60)") lines, 70 has $(count "$(name 70)")"

# a torn line (a writer that died mid-write) neither counts nor swallows the next line
printf '{"ckpt":"%s","params_sha256":"' "$(name 80)" >>"$res"
mk "$d/$(name 80)" 80
timeout 120 "${watch[@]}" >"$tmp/w6.out" 2>&1 || fail "run after a torn line failed"
[ "$(count "$(name 80)")" = 1 ] || fail "checkpoint 80 recorded $(count "$(name 80)") times after a torn line"
$py - "$res" <<'EOF' || fail "the torn line is not alone on its line"
import json, sys
bad = []
for line in open(sys.argv[1]):
    try:
        json.loads(line)
    except ValueError:
        bad.append(line)
assert len(bad) == 1 and bad[0].startswith('{"ckpt":"ckpt-00000080.gnck","params_sha256":"') and bad[0].endswith('"\n'), bad
EOF

# a job killed while evaluating leaves no line; its lock dies with it
mk "$d/$(name 90)" 90
before=$(wc -l <"$res")
"$bin" eval --watch "$d" --results "$res" --data "$tmp/val" --threads 1 --workers 1 --crops 144 --quiet >/dev/null 2>&1 &
k=$!
# killed once it holds checkpoint 90's lock (byte 91): mid-evaluation, not before it began
held=0
for _ in $(seq 300); do
  $py - "$res.lock" <<'EOF' && { held=1; break; }
import fcntl, os, struct, sys
# F_GETLK asks without taking the lock (taking it, even briefly, would make the job skip checkpoint 90)
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fmt = 'hh4xqqi4x'  # struct flock on x86-64: l_type, l_whence, l_start, l_len, l_pid
r = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack(fmt, fcntl.F_WRLCK, 0, 91, 1, 0))
sys.exit(0 if struct.unpack(fmt, r)[0] != fcntl.F_UNLCK else 1)
EOF
  kill -0 $k 2>/dev/null || break
  sleep 0.1
done
[ $held = 1 ] || fail "the job never held checkpoint 90's lock: the kill would not be mid-evaluation"
kill -9 $k 2>/dev/null; wait $k 2>/dev/null
[ "$(wc -l <"$res")" = "$before" ] || fail "a killed job changed the results file"
[ "$(count "$(name 90)")" = 0 ] || fail "a killed job recorded checkpoint 90"
timeout 120 "${watch[@]}" >"$tmp/w7.out" 2>&1 || fail "run after a killed job failed"
[ "$(count "$(name 90)")" = 1 ] || fail "checkpoint 90 not evaluated after the killed job"

# --follow waits for the next checkpoint and stops on SIGTERM
"${watch[@]}" --follow --poll 0.3 >"$tmp/f.out" 2>&1 &
f=$!
pids+=($f)
sleep 1
mk "$d/$(name 100)" 100
for _ in $(seq 300); do [ "$(count "$(name 100)")" = 1 ] && break; sleep 0.2; done
[ "$(count "$(name 100)")" = 1 ] || fail "--follow did not evaluate a checkpoint that arrived later"
kill -TERM $f
for _ in $(seq 100); do kill -0 $f 2>/dev/null || break; sleep 0.1; done
kill -0 $f 2>/dev/null && { fail "--follow did not stop on SIGTERM"; kill -9 $f; }
wait $f; rc=$?
[ $rc -eq 0 ] || fail "--follow stopped with exit $rc: $(cat "$tmp/f.out")"

# under mpirun: the shards of 2 ranks
mk "$d/$(name 110)" 110
timeout 120 mpirun -np 2 --oversubscribe "${watch[@]}" >"$tmp/m.out" 2>&1 || fail "mpirun watch failed: $(cat "$tmp/m.out")"
grep -q "\"ckpt\":\"$(name 110)\".*\"world\":2" "$res" || fail "no 2-rank line for checkpoint 110"
[ "$(count "$(name 110)")" = 1 ] || fail "mpirun recorded checkpoint 110 $(count "$(name 110)") times"

# usage errors
"$bin" eval --watch "$d" --data "$tmp/val" >"$tmp/u1.out" 2>&1; [ $? -eq 2 ] && grep -q -- "--results" "$tmp/u1.out" ||
  fail "--watch without --results: $(cat "$tmp/u1.out")"
"$bin" eval --watch "$tmp/nope" --results "$res" --data "$tmp/val" >"$tmp/u2.out" 2>&1; [ $? -eq 1 ] &&
  grep -q "nope" "$tmp/u2.out" || fail "missing --watch directory: $(cat "$tmp/u2.out")"

echo "results file:"; cut -c1-160 "$res"
[ $failed -eq 0 ] && echo "test_eval_watch: all checks passed"
exit $failed
