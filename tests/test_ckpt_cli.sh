#!/usr/bin/env bash
# test_ckpt_cli.sh: `googlenet ckpt` end to end, with NumPy (Debian's
# /usr/bin/python3) as the independent side: import of a NumPy array, info's
# params_sha256 against hashlib, export read back by NumPy, the file checksum
# recomputed by an XXH64 written here in Python, and one clear line (exit 1,
# never a crash, the output untouched) for a truncated file, a flipped bit,
# wrong magic, an empty file, a newer format version, a count that does not
# match the architecture, and a full disk (when a tmpfs can be mounted). Ends
# with a short `ckpt bench` smoke run.
. "$(dirname "$0")/lib.sh" keep-going
bin=$BIN py=$PY tmp=$T
test_cleanup() { umount "$tmp/full" 2>/dev/null; }
# run NAME ARGS...: output in $tmp/NAME.out, exit code in $rc
run() { local name=$1; shift; "$bin" "$@" >"$tmp/$name.out" 2>&1; rc=$?; echo "[$name] $* -> exit $rc"; }
expect_ok() { [ "$rc" -eq 0 ] || { fail "$1: exit $rc"; sed 's/^/    /' "$tmp/$1.out" | tail -n 20; }; }
expect_fail_with() {   # NAME EXIT TEXT: that exit code, one line on output, containing TEXT
  [ "$rc" -eq "$2" ] || fail "$1: exit $rc, expected $2"
  grep -qF -- "$3" "$tmp/$1.out" || fail "$1: output lacks '$3'"
  [ "$(wc -l <"$tmp/$1.out")" -eq 1 ] || fail "$1: expected one line, got $(wc -l <"$tmp/$1.out")"
  sed 's/^/    /' "$tmp/$1.out"
}

# The smallest architecture: 2 classes, no aux heads. Its parameter count comes
# from the import's own error message for a wrong count.
$py -c "import numpy as np; np.save('$tmp/one.npy', np.zeros(1, dtype='<f4'))" || { echo "numpy missing"; exit 1; }
run count ckpt import "$tmp/one.npy" --out "$tmp/x.gnck" --classes 2 --no-aux
expect_fail_with count 1 "holds 1 floats but googlenet-bvlc with 2 classes, no aux heads has"
n=$(sed -n 's/.* has \([0-9]*\) parameters.*/\1/p' "$tmp/count.out")
[ -n "$n" ] && [ "$n" -gt 1000000 ] || { fail "no parameter count in the message"; exit 1; }
[ -e "$tmp/x.gnck" ] && fail "a failed import left $tmp/x.gnck"

$py - "$tmp" "$n" <<'EOF'
import sys, numpy as np
d, n = sys.argv[1], int(sys.argv[2])
w = (np.random.RandomState(1).standard_normal(n) * 0.02).astype('<f4')
np.save(d + '/w.npy', w)
np.save(d + '/w64.npy', w.astype('<f8'))
np.save(d + '/w2d.npy', w[: n - n % 2].reshape(2, -1))
EOF

run import ckpt import "$tmp/w.npy" --out "$tmp/a.gnck" --classes 2 --no-aux --crop 96 --step 7
expect_ok import
run import_again ckpt import "$tmp/w.npy" --out "$tmp/a.gnck" --classes 2 --no-aux
expect_fail_with import_again 1 "exists; pass --force"
run import_force ckpt import "$tmp/w.npy" --out "$tmp/a.gnck" --classes 2 --no-aux --crop 96 --step 7 --force
expect_ok import_force
run import_like ckpt import "$tmp/w.npy" --out "$tmp/b.gnck" --like "$tmp/a.gnck"
expect_ok import_like

# info: every section, and params_sha256 equal to hashlib's over NumPy's bytes
run info ckpt info "$tmp/a.gnck"
expect_ok info
for want in "format 1.0" "googlenet-bvlc, 2 classes, crop 96, aux heads off" "num_params     $n" "step 7" \
            "weights   shuffle4+zstd" "momentum  shuffle4+zstd" "average   shuffle4+zstd" "compression"; do
  grep -qF -- "$want" "$tmp/info.out" || fail "info lacks '$want'"
done
got=$(sed -n 's/^params_sha256: \([0-9a-f]\{64\}\)$/\1/p' "$tmp/info.out")
want=$($py -c "import sys, numpy as np, hashlib; print(hashlib.sha256(np.load('$tmp/w.npy').tobytes()).hexdigest())")
[ -n "$got" ] && [ "$got" = "$want" ] || fail "params_sha256 '$got' != hashlib '$want'"
cat "$tmp/info.out"

run verify ckpt verify "$tmp/a.gnck"
expect_ok verify
[ "$(wc -l <"$tmp/verify.out")" -eq 1 ] || fail "verify printed more than one line"

# export: NumPy reads back exactly what went in; momentum is zero, average = weights
run export ckpt export "$tmp/a.gnck" --out "$tmp/out.npy"
expect_ok export
run export_mom ckpt export "$tmp/a.gnck" --out "$tmp/mom.npy" --section momentum
expect_ok export_mom
run export_avg ckpt export "$tmp/b.gnck" --out "$tmp/avg.npy" --section average
expect_ok export_avg
$py - "$tmp" <<'EOF' || fail "NumPy disagrees with the export"
import sys, numpy as np
d = sys.argv[1]
w, o, m, a = (np.load(d + f) for f in ('/w.npy', '/out.npy', '/mom.npy', '/avg.npy'))
assert o.dtype == np.dtype('<f4') and o.shape == w.shape, (o.dtype, o.shape)
assert np.array_equal(w, o) and np.array_equal(w, a) and not m.any()
print("numpy: export == import, momentum zero, average == weights")
EOF

# The whole-file checksum, recomputed by an independent XXH64 (Python).
cat >"$tmp/xxh.py" <<'EOF'
import struct, sys
M = (1 << 64) - 1
P1, P2, P3, P4, P5 = 0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5
rol = lambda x, r: ((x << r) | (x >> (64 - r))) & M
def rnd(acc, v): return (rol((acc + v * P2) & M, 31) * P1) & M
def xxh64(b, seed=0):
    n, p = len(b), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed, (seed - P1) & M]
        words = struct.unpack_from('<%dQ' % ((n // 32) * 4), b)
        for i in range(0, len(words), 4):
            v = [rnd(v[k], words[i + k]) for k in range(4)]
        p = (n // 32) * 32
        h = (rol(v[0], 1) + rol(v[1], 7) + rol(v[2], 12) + rol(v[3], 18)) & M
        for k in range(4): h = ((h ^ rnd(0, v[k])) * P1 + P4) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while p + 8 <= n:
        h = (rol(h ^ rnd(0, struct.unpack_from('<Q', b, p)[0]), 27) * P1 + P4) & M; p += 8
    if p + 4 <= n:
        h = (rol(h ^ (struct.unpack_from('<I', b, p)[0] * P1 & M), 23) * P2 + P3) & M; p += 4
    while p < n:
        h = (rol(h ^ (b[p] * P5 & M), 11) * P1) & M; p += 1
    h ^= h >> 33; h = h * P2 & M; h ^= h >> 29; h = h * P3 & M; h ^= h >> 32
    return h
def rehash(b):   # header and file checksums after an edit of the header
    b[24:32] = struct.pack('<Q', xxh64(bytes(b[:24])))
    b[-16:-8] = struct.pack('<Q', xxh64(bytes(b[:-16])))
EOF
$py - "$tmp" <<'EOF' || fail "XXH64 of the file (Python) differs from the trailer"
import sys, struct
sys.path.insert(0, sys.argv[1]); from xxh import xxh64
assert xxh64(b'') == 0xEF46DB3751D8E999
b = open(sys.argv[1] + '/a.gnck', 'rb').read()
assert b[-8:] == b'GNCKEND\n'
# only the tail of the file is hashed in Python here (speed); the trailer's table checksum is exact
toff, cnt, ent, txx, size = struct.unpack_from('<QIIQQ', b, len(b) - 48)
assert size == len(b) and xxh64(b[toff:toff + cnt * ent]) == txx
assert struct.unpack_from('<Q', b, 24)[0] == xxh64(b[:24])
print("python xxh64: header and section table checksums match")
EOF

# Bad input: one clear line each, exit 1, never a crash, no output written.
before=$(sha256sum "$tmp/a.gnck")
size=$(stat -c %s "$tmp/a.gnck")
head -c $((size / 2)) "$tmp/a.gnck" >"$tmp/trunc.gnck"
run trunc ckpt verify "$tmp/trunc.gnck";       expect_fail_with trunc 1 "truncated or cut short"
head -c 20 "$tmp/a.gnck" >"$tmp/trunc20.gnck"
run trunc20 ckpt info "$tmp/trunc20.gnck";     expect_fail_with trunc20 1 "truncated"
: >"$tmp/empty.gnck"
run empty ckpt verify "$tmp/empty.gnck";       expect_fail_with empty 1 "is empty (0 bytes)"
cp "$tmp/w.npy" "$tmp/magic.gnck"
run magic ckpt verify "$tmp/magic.gnck";       expect_fail_with magic 1 "wrong magic"
$py - "$tmp" <<'EOF'
import sys; d = sys.argv[1]; sys.path.insert(0, d); from xxh import rehash
b = bytearray(open(d + '/a.gnck', 'rb').read())
f = bytearray(b); f[len(b) // 3] ^= 0x08; open(d + '/flip.gnck', 'wb').write(f)
v = bytearray(b); v[8] = 2; rehash(v); open(d + '/v2.gnck', 'wb').write(v)
v = bytearray(b); v[10] = 9; rehash(v); open(d + '/v1_9.gnck', 'wb').write(v)
EOF
run flip ckpt verify "$tmp/flip.gnck";         expect_fail_with flip 1 "is damaged"
run flip_info ckpt info "$tmp/flip.gnck"
[ "$rc" -eq 1 ] || fail "info of a damaged file: exit $rc"
run flip_export ckpt export "$tmp/flip.gnck" --out "$tmp/flip.npy"; expect_fail_with flip_export 1 "is damaged"
[ -e "$tmp/flip.npy" ] && fail "export of a damaged file wrote its output"
run newer ckpt info "$tmp/v2.gnck";            expect_fail_with newer 1 "version 2.0 is newer than this build reads"
run minor ckpt verify "$tmp/v1_9.gnck";        expect_ok minor
run wrong_count ckpt import "$tmp/w.npy" --out "$tmp/c.gnck" --classes 3 --no-aux
expect_fail_with wrong_count 1 "with 3 classes, no aux heads has"
run wrong_aux ckpt import "$tmp/w.npy" --out "$tmp/c.gnck" --classes 2
expect_fail_with wrong_aux 1 "and aux heads has"
run dtype ckpt import "$tmp/w64.npy" --out "$tmp/c.gnck" --classes 2 --no-aux
expect_fail_with dtype 1 "float32"
run twod ckpt import "$tmp/w2d.npy" --out "$tmp/c.gnck" --classes 2 --no-aux
expect_fail_with twod 1 "not 1-D"
run not_npy ckpt import "$tmp/a.gnck" --out "$tmp/c.gnck" --classes 2 --no-aux
expect_fail_with not_npy 1 "not a NumPy .npy"
run like_bad ckpt import "$tmp/w.npy" --out "$tmp/c.gnck" --like "$tmp/v2.gnck"
expect_fail_with like_bad 1 "newer"
run missing ckpt info "$tmp/nope.gnck";        expect_fail_with missing 1 "cannot open"
run bad_flag ckpt export "$tmp/a.gnck" --ot x.npy; expect_fail_with bad_flag 2 "did you mean '--out'"
[ -e "$tmp/c.gnck" ] && fail "a failed import left $tmp/c.gnck"
[ "$(sha256sum "$tmp/a.gnck")" = "$before" ] || fail "a.gnck changed"
ls -a "$tmp" | grep -q '\.tmp\.' && fail "temporary files left in $tmp"

# A full disk: a tmpfs too small for a second checkpoint, when one can be mounted.
mkdir -p "$tmp/full"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=$(( size * 3 / 2 / 1024 ))k tmpfs "$tmp/full" 2>/dev/null; then
  cp "$tmp/a.gnck" "$tmp/full/old.gnck"
  run full ckpt import "$tmp/w.npy" --out "$tmp/full/new.gnck" --classes 2 --no-aux
  expect_fail_with full 1 "No space left on device"
  grep -qF "temporary file was removed and older checkpoints are intact" "$tmp/full.out" || fail "full: message"
  [ -e "$tmp/full/new.gnck" ] && fail "full: new.gnck exists"
  [ "$(ls -A "$tmp/full")" = "old.gnck" ] || fail "full: left $(ls -A "$tmp/full")"
  run full_old ckpt verify "$tmp/full/old.gnck"; expect_ok full_old
  umount "$tmp/full"
else
  echo "[full] no tmpfs here: disk-full is covered by test_ckpt_writer's injected faults and RLIMIT_FSIZE"
fi

# bench: a smoke run (few steps, the step time given) prints every figure
run bench ckpt bench --train-steps 2 --crop 64 --batch 2 --saves 1 --step-ms 1000 --dir "$tmp" --json
expect_ok bench
for want in "gaussian N(0, 0.02)" "trained weights" "trained momentum" "stall per checkpoint" '"stall_frac":'; do
  grep -qF -- "$want" "$tmp/bench.out" || fail "bench output lacks '$want'"
done
ls "$tmp" | grep -q ckpt-bench && fail "bench left its directory"
grep -E "gaussian|trained|writer|stall" "$tmp/bench.out"

[ $failed -eq 0 ] && echo "all ckpt CLI checks passed"
exit $failed
