#!/usr/bin/env bash
# test_vcluster.sh: multi-host training on the virtual cluster of
# cluster/vcluster.sh (2 hosts as network + UTS namespaces, links shaped to
# 1 Gbit/s, Open MPI over TCP only):
# - up/status/down: each host has its own hostname and address, no route out,
#   `up` twice is a no-op, other settings are refused, bad input named;
# - 2 hosts x 1 rank train to bitwise the same weights as 2 ranks on one host,
#   and the gradients really crossed the shaped links (tc's byte counters);
# - cluster/mpirun-hosts.sh with a written hostfile: trains, stops cleanly on
#   SIGUSR1 (exit 3) and resumes to the same weights as an uninterrupted run;
# - a rank killed on one host ends the job within --timeout naming that rank;
#   a frozen rank (SIGSTOP) ends it through the watchdog soon after --timeout.
# Needs root and network namespaces: without them it FAILS and says why.
set -u
cd "$(dirname "$0")/../.."
BIN=${GOOGLENET_BIN:-bin/googlenet}
B=${TEST_BUILD:-build/release}
BIN=$(realpath "$BIN")
. tests/cluster/lib.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export VC_NAME=${TEST_VC_NAME:-vct} VC_SUBNET=${TEST_VC_SUBNET:-10.77.0}
export VC_STATE=/run/vcluster/$VC_NAME
VC=cluster/vcluster.sh
T=$(mktemp -d /tmp/test_vcluster.XXXXXX)
jobs_started=()
cleanup() {
  local p
  for p in "${jobs_started[@]}"; do kill -9 "$p" 2>/dev/null; done
  [ "${made_cluster:-0}" = 1 ] && $VC down >/dev/null 2>&1
  rm -rf "$T"
}
trap cleanup EXIT

# --- what the machine must allow; a missing piece fails the test, saying which
[ "$(id -u)" -eq 0 ] || fail "needs root to create network namespaces (run make test-cluster as root)"
for t in ip tc nsenter unshare mpirun; do
  command -v $t >/dev/null || fail "'$t' is missing (scripts/install-deps.sh --cluster installs it)"
done
ip netns add "$VC_NAME-probe" 2>"$T/probe.err" || fail "this machine cannot create network namespaces: $(cat "$T/probe.err")"
ip netns del "$VC_NAME-probe"
if ip -4 -o addr show | grep -q " $VC_SUBNET\."; then
  fail "another virtual cluster already uses $VC_SUBNET.0/24 ($(ip -4 -o addr show | grep " $VC_SUBNET\." | awk '{print $2}' | head -1)); take it down or set TEST_VC_SUBNET"
fi
[ -e "$VC_STATE" ] && fail "$VC_STATE exists: a cluster '$VC_NAME' is up; run 'VC_NAME=$VC_NAME $VC down' or set TEST_VC_NAME"

# --- up, status, idempotence, bad input
made_cluster=1
$VC up 2 --rate 1gbit >"$T/up.log" 2>&1 || { cat "$T/up.log"; fail "vcluster.sh up 2 --rate 1gbit"; }
$VC up 2 --rate 1gbit 2>&1 | grep -q "already up" || fail "a second identical up is not a no-op"
out=$($VC up 3 2>&1) && fail "up 3 over a 2-host cluster succeeded"
grep -q "different settings" <<<"$out" || fail "up 3 over a 2-host cluster: '$out'"
out=$($VC up 2 --rate 10gb 2>&1) && fail "--rate 10gb accepted"
grep -q "rate '10gb'" <<<"$out" || fail "bad rate not named: '$out'"
$VC status >"$T/status" 2>&1 || fail "status"
grep -q "up: hosts=2 rate=1gbit" "$T/status" && grep -q "$VC_NAME-h2: $VC_SUBNET.2/24, hostname $VC_NAME-h2" "$T/status" \
  && grep -q "tbf .*rate 1Gbit" "$T/status" || { cat "$T/status"; fail "status does not show the hosts and their shaping"; }
for i in 1 2; do
  h=$VC_NAME-h$i
  [ "$($VC exec "$h" hostname)" = "$h" ] || fail "$h has not its own hostname"
  [ "$(ip -n "$h" route | grep -c default)" -eq 0 ] || fail "$h has a default route: traffic could leave the subnet"
  tc -n "$h" qdisc show dev eth0 | grep -q tbf && tc qdisc show dev "$h" | grep -q tbf || fail "$h's link is not shaped both ways"
done
[ "$($VC mpirun -np 2 hostname | sort | tr '\n' ' ')" = "$VC_NAME-h1 $VC_NAME-h2 " ] || fail "mpirun -np 2 did not put one rank on each host"
ok "up/status: 2 hosts with their own hostnames and shaped links; up twice is a no-op; bad input named"

# --- 2 hosts x 1 rank against 2 ranks on one host: the same bits
make_tiny_data "$T/data"
STEPS=6
RUN=(train --data "$T/data" --crop 64 --batch 4 --steps $STEPS --lr 0.005 --threads 1 --workers 1
     --eval-every 0 --ckpt-every 0 --log-every 0 --quiet "${DETERMINISTIC[@]}")
sent() { tc -s -n "$VC_NAME-h1" qdisc show dev eth0 | awk '/Sent/ {print $2; exit}'; }
before=$(sent)
nice -n 19 $VC mpirun -np 2 -x OPENBLAS_NUM_THREADS "$BIN" "${RUN[@]}" --out "$T/two-hosts" >"$T/two-hosts.log" 2>&1 \
  || { cat "$T/two-hosts.log"; fail "2-host training run"; }
crossed=$(( $(sent) - before ))
nice -n 19 mpirun --oversubscribe -np 2 "$BIN" "${RUN[@]}" --out "$T/one-host" >"$T/one-host.log" 2>&1 \
  || { cat "$T/one-host.log"; fail "1-host training run"; }
[ "$(ckpt_sha "$(ckpt_newest "$T/two-hosts")")" = "$(ckpt_sha "$(ckpt_newest "$T/one-host")")" ] \
  || fail "2 hosts x 1 rank and 2 ranks on one host trained different weights"
# each step moves the 53.5 MB of fp32 gradients (13,378,280 floats) out of host 1
[ "$crossed" -ge $(( STEPS * 13378280 * 4 )) ] || fail "only $crossed bytes left host 1: the gradients did not cross the shaped link"
ok "2 hosts x 1 rank = 2 ranks on one host, bit for bit ($(( crossed / 1000000 )) MB crossed the 1 Gbit/s link)"

# --- cluster/mpirun-hosts.sh with a hostfile: run, stop on SIGUSR1, resume
printf '%s slots=1\n%s slots=1\n' "$VC_NAME-h1" "$VC_NAME-h2" >"$T/hostfile"
mkdir -p "$T/root" && ln -s "$T/data" "$T/root/train"
HOSTS=(env BIN="$BIN" THREADS=1 WORKERS=1 BATCH=4 CROP=64 EPOCHS=2 VAL= CKPT_EVERY=4 KEEP=0 EVAL_EVERY=0
       WARMUP_EPOCHS=0 LR=0.005 TIMEOUT=60 nice -n 19 $VC run cluster/mpirun-hosts.sh "$T/hostfile" "$T/root")
"${HOSTS[@]}" "$T/a" --log-every 0 --quiet "${DETERMINISTIC[@]}" >"$T/a.log" 2>&1 || { cat "$T/a.log"; fail "mpirun-hosts.sh"; }
full=$(ckpt_newest "$T/a")
[ "$(basename "$full")" = ckpt-00000016.gnck ] || fail "mpirun-hosts.sh: 2 epochs of 64 images at 2 x 4 should end at step 16, got $full"
"${HOSTS[@]}" "$T/b" --log-every 0 --quiet "${DETERMINISTIC[@]}" >"$T/b.log" 2>&1 &
job=$!; jobs_started+=($job)
wait_lines "$T/b/metrics.jsonl" 4 120 || { cat "$T/b.log"; fail "mpirun-hosts.sh: no progress within 120 s"; }
kill -USR1 $job
wait $job; rc=$?; jobs_started=()
[ $rc -eq 3 ] || { cat "$T/b.log"; fail "mpirun-hosts.sh stopped by SIGUSR1 exited $rc, want 3"; }
stopped=$(ckpt_newest "$T/b")
[ "$stopped" != "$T/b/ckpt-00000016.gnck" ] || fail "the run ended before SIGUSR1 arrived: nothing to resume"
"${HOSTS[@]}" "$T/b" --log-every 0 --quiet "${DETERMINISTIC[@]}" >"$T/b2.log" 2>&1 || { cat "$T/b2.log"; fail "mpirun-hosts.sh resume"; }
grep -q "resuming from $stopped" "$T/b2.log" || { cat "$T/b2.log"; fail "the second run did not resume from $stopped"; }
[ "$(ckpt_sha "$full")" = "$(ckpt_sha "$T/b/ckpt-00000016.gnck")" ] || fail "stopped and resumed on 2 hosts: weights differ from the uninterrupted run"
ok "mpirun-hosts.sh over a hostfile: SIGUSR1 -> checkpoint, exit 3 at $(basename "$stopped"); resumed to the same bits"

# --- a host's rank killed, and a host frozen: the job ends within --timeout naming rank 1
TIMEOUT=10
LONG=(train --data "$T/data" --crop 64 --batch 4 --steps 100000 --threads 1 --workers 1 --eval-every 0
      --ckpt-every 0 --log-every 0 --quiet --timeout $TIMEOUT)
rank_on_h2() { # pid of the trainer inside host 2
  local p
  for p in $(ip netns pids "$VC_NAME-h2"); do [ "$(ps -o comm= -p "$p")" = googlenet ] && echo "$p"; done
}
for how in KILL STOP; do
  nice -n 19 $VC mpirun -np 2 -x OPENBLAS_NUM_THREADS "$BIN" "${LONG[@]}" --out "$T/k$how" >"$T/k$how.log" 2>&1 &
  job=$!; jobs_started+=($job)
  wait_lines "$T/k$how/metrics.jsonl" 2 120 || { cat "$T/k$how.log"; fail "$how: no progress within 120 s"; }
  victim=$(rank_on_h2)
  [ -n "$victim" ] || fail "$how: no trainer process in $VC_NAME-h2"
  t0=$(date +%s)
  kill -$how "$victim"
  for _ in $(seq $(( (TIMEOUT + 30) * 2 ))); do kill -0 $job 2>/dev/null || break; sleep 0.5; done
  kill -0 $job 2>/dev/null && fail "$how: the job still runs $((TIMEOUT + 30)) s after rank 1 was hit"
  wait $job; rc=$?; jobs_started=(); secs=$(( $(date +%s) - t0 ))
  [ $rc -ne 0 ] || fail "$how: the job exited 0"
  if [ $how = KILL ]; then
    # mpirun notices the death itself
    grep -q "process rank 1 with PID $victim on node $VC_NAME-h2 exited on signal 9" "$T/k$how.log" \
      || { cat "$T/k$how.log"; fail "KILL: rank 1 on $VC_NAME-h2 not named"; }
    [ $secs -le $TIMEOUT ] || fail "KILL: the job ended after $secs s, more than --timeout $TIMEOUT"
  else
    # a frozen process: only the watchdog can tell, after --timeout. Frozen
    # between collectives it is named as late; frozen inside one (after its
    # announcement) the watchdog knows only that a rank is stuck inside MPI.
    grep -q -e "did not complete within $TIMEOUT s; late rank: 1 " -e "did not complete within $TIMEOUT s although every rank entered" \
      "$T/k$how.log" || { cat "$T/k$how.log"; fail "STOP: no watchdog message"; }
    [ $secs -le $((TIMEOUT + 10)) ] || fail "STOP: the job ended $secs s after the freeze, --timeout is $TIMEOUT"
  fi
  ok "rank 1 on $VC_NAME-h2 hit with SIG$how: exit $rc after $secs s: $(grep -o -m1 -e 'process rank 1 with PID [0-9]* on node [^ ]*' -e 'late rank: 1 ' -e 'every rank entered it' "$T/k$how.log")"
done

made_cluster=0
$VC down >"$T/down.log" 2>&1 || { cat "$T/down.log"; fail "down"; }
[ -z "$(ip netns list | grep "^$VC_NAME-h")" ] && ! ip link show "$VC_NAME-br" >/dev/null 2>&1 && [ ! -e "$VC_STATE" ] \
  || fail "down left something of '$VC_NAME' behind"
$VC down >/dev/null 2>&1 || fail "a second down failed"
ok "down removes everything and is idempotent"
echo "test_vcluster: all checks passed"
