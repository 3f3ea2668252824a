#!/usr/bin/env bash
# slurm-test.sh: the Slurm scripts of cluster/ run for real, on a one-node
# Slurm that this script starts (munged, slurmctld, slurmd with their own key,
# socket, ports and state in a temporary directory) and stops again, also when
# a check fails. Run by `make test-cluster`.
# - train.sbatch trains a tiny generated set (crop 64, STEPS steps) under srun;
# - preemption: the running job gets SIGUSR1 as Slurm sends it before the time
#   limit (scancel --batch --signal=USR1), checkpoints, requeues itself
#   (scontrol requeue), runs again (SLURM_RESTART_COUNT 1), resumes with
#   --resume auto and ends with the same weights, bit for bit, as a job that
#   was never interrupted;
# - eval-watch.sbatch, submitted after the training, evaluates every
#   checkpoint once into eval.jsonl; a second submission adds nothing;
# - a plain scancel checkpoints and ends the job without requeueing it.
# Needs root and Debian's slurm-wlm and munge: without them it FAILS and says why.
set -u
cd "$(dirname "$0")/.."
BIN=$(realpath "${GOOGLENET_BIN:-bin/googlenet}")
B=${TEST_BUILD:-build/release}
. tests/cluster/lib.sh
STEPS=${STEPS:-200}                 # training steps per job
CKPT_EVERY=${CKPT_EVERY:-50}
STOP_AFTER=${STOP_AFTER:-20}        # steps logged before the preemption signal
JOB_WAIT=${JOB_WAIT:-300}           # seconds any one job may take here
NODE_CPUS=${NODE_CPUS:-$(getconf _NPROCESSORS_ONLN)}   # (nproc would follow OMP_NUM_THREADS)
[ "$NODE_CPUS" -ge 2 ] || NODE_CPUS=2                    # the jobs have 2 ranks; see config_overrides
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1

[ "$(id -u)" -eq 0 ] || fail "needs root to start munged, slurmctld and slurmd (run make test-cluster as root)"
for t in munged slurmctld slurmd sbatch scontrol squeue sinfo scancel srun; do
  command -v $t >/dev/null || fail "'$t' is missing: this machine cannot start Slurm (scripts/install-deps.sh --cluster installs slurm-wlm and munge)"
done
T=$(mktemp -d /tmp/slurm-test.XXXXXX)
chmod 711 "$T"                      # munged wants its socket's directory searchable
daemons=()                          # pids of what this script started
stop_all() {
  local p i jobs
  if [ ${#daemons[@]} -eq 3 ]; then # Slurm is up: end our jobs while slurmd still tracks them
    jobs=$(squeue -h -o %i 2>/dev/null)
    [ -z "$jobs" ] || scancel --full $jobs 2>/dev/null
    for i in $(seq 30); do [ -z "$(squeue -h -t R,CG -o %i 2>/dev/null)" ] && break; sleep 0.5; done
    for p in $(scontrol listpids 2>/dev/null | awk 'NR > 1 {print $1}'); do kill -9 "$p" 2>/dev/null; done
  fi
  for p in "${daemons[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${daemons[@]}"; do
    for i in $(seq 20); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap stop_all EXIT
trap 'exit 1' TERM INT              # a time limit or ^C also runs stop_all
logs() { local f; for f in "$@"; do echo "--- $f"; tail -n 15 "$f"; done; }

# --- munge: a key, socket and pid file of our own
mkdir -m 700 "$T/munge"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none && chmod 400 "$T/munge/munge.key"
munged --foreground --force --key-file="$T/munge/munge.key" --socket="$T/munge.sock" \
  --pid-file="$T/munge/munged.pid" --seed-file="$T/munge/seed" >"$T/munged.log" 2>&1 &
daemons+=($!)
for _ in $(seq 50); do [ -S "$T/munge.sock" ] && break; sleep 0.1; done
[ -S "$T/munge.sock" ] || { logs "$T/munged.log"; fail "munged did not start: this machine cannot run munge"; }

# --- a one-node Slurm on two free ports
read -r ctld_port d_port < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
mkdir -p "$T/state" "$T/spool"
export SLURM_CONF=$T/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=googlenet-test
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge.sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
KillWait=15
MpiDefault=pmix
MailProg=/bin/true
SlurmdParameters=config_overrides
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D >"$T/slurmctld.out" 2>&1 &
daemons+=($!)
slurmd -D -N localhost >"$T/slurmd.out" 2>&1 &
daemons+=($!)
for _ in $(seq 60); do [ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ] && break; sleep 0.5; done
[ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ] \
  || { logs "$T/slurmctld.log" "$T/slurmd.log" "$T/slurmctld.out" "$T/slurmd.out"; fail "Slurm did not start: the node is not idle after 30 s"; }
ok "munged, slurmctld and slurmd up; node idle ($NODE_CPUS CPUs)"

job_field() { scontrol show job "$1" 2>/dev/null | grep -o "$2=[^ ]*" | head -1 | cut -d= -f2; }
wait_job() { # ID: waits until the job has ended; prints its state
  local s i
  for i in $(seq $(( JOB_WAIT * 2 ))); do
    s=$(job_field "$1" JobState)
    case $s in PENDING|RUNNING|CONFIGURING|COMPLETING|REQUEUED|SUSPENDED|"") sleep 0.5 ;; *) echo "$s"; return ;; esac
  done
  echo "TIMEOUT"
}

wait_running() { # ID: fails when the job has not started within 60 s, with Slurm's reason
  local i
  for i in $(seq 120); do [ "$(job_field "$1" JobState)" = RUNNING ] && return 0; sleep 0.5; done
  logs "$T/slurmctld.log"
  fail "job $1 did not start within 60 s: $(job_field "$1" JobState) ($(job_field "$1" Reason))"
}

# --- tiny data and the training jobs
make_tiny_data "$T/data" 3
"$B/tests/helper_gen_dataset" --out "$T/val" --classes 4 --per-class 4 --size 32 --seed 9 >/dev/null || fail "val set"
submit_train() { # NAME
  sbatch --parsable -N 1 --ntasks-per-node=2 -c 1 -o "$T/$1.out" -J "$1" \
    --export=ALL,BIN="$BIN",TRAIN="$T/data",VAL=,OUT="$T/$1",STEPS="$STEPS",CROP=64,BATCH=4,WORKERS=1,LR=0.005,WARMUP_EPOCHS=0,CKPT_EVERY="$CKPT_EVERY",KEEP=0,KEEP_EVERY=0,EVAL_EVERY=0,TIMEOUT=60,EXTRA="--log-every 0 --quiet ${DETERMINISTIC[*]}" \
    cluster/train.sbatch
}
pre=$(submit_train preempted) || fail "sbatch train.sbatch"
ref=$(submit_train reference) || fail "sbatch train.sbatch"
wait_running "$pre"
wait_lines "$T/preempted/metrics.jsonl" "$STOP_AFTER" "$JOB_WAIT" || { logs "$T/preempted.out" "$T/slurmd.log"; fail "job $pre made no progress"; }
scancel --batch --signal=USR1 "$pre" || fail "scancel --batch --signal=USR1 $pre"
for _ in $(seq 120); do [ "$(job_field "$pre" Restarts)" = 1 ] && break; sleep 0.5; done
[ "$(job_field "$pre" Restarts)" = 1 ] || { logs "$T/preempted.out"; fail "job $pre did not requeue itself after SIGUSR1"; }
# Slurm holds a requeued job back for two minutes; an operator may release it at once
scontrol update JobId="$pre" StartTime=now || fail "scontrol update StartTime=now"
[ "$(wait_job "$ref")" = COMPLETED ] || { logs "$T/reference.out"; fail "the uninterrupted job $ref did not complete"; }
state=$(wait_job "$pre")
[ "$state" = COMPLETED ] || { logs "$T/preempted.out" "$T/slurmctld.log"; fail "the preempted job $pre ended $state"; }

# --- what the preempted job did, from its own output (appended over both runs)
out=$T/preempted.out
stopped=$(ls "$T"/preempted/ckpt-*.gnck | grep -v -E "ckpt-0*($(seq -s '|' "$CKPT_EVERY" "$CKPT_EVERY" "$STEPS"))\.gnck" | head -1)
[ -n "$stopped" ] || { ls "$T/preempted"; fail "no checkpoint written at the preemption (only the periodic ones)"; }
grep -q "restart count 0" "$out" && grep -q "restart count 1" "$out" || { cat "$out"; fail "SLURM_RESTART_COUNT did not go 0 then 1"; }
grep -q "SIGUSR1 .*stopping the ranks" "$out" && grep -q "requeueing job $pre" "$out" || { cat "$out"; fail "no SIGUSR1 and requeue in the job's output"; }
grep -q "resuming from $stopped" "$out" || { cat "$out"; fail "the restarted job did not resume from $stopped"; }
[ "$(job_field "$pre" Restarts)" = 1 ] || fail "Restarts is $(job_field "$pre" Restarts), want 1"
[ "$(ckpt_sha "$(ckpt_newest "$T/preempted")")" = "$(ckpt_sha "$(ckpt_newest "$T/reference")")" ] \
  || fail "preempted + requeued + resumed weights differ from the uninterrupted job's"
[ "$(basename "$(ckpt_newest "$T/reference")")" = "$(printf 'ckpt-%08d.gnck' "$STEPS")" ] || fail "the reference did not reach step $STEPS"
ok "SIGUSR1 -> checkpoint $(basename "$stopped"), scontrol requeue, restart 1, resumed: the same bits as the uninterrupted job"

# --- scheduled evaluation, twice
submit_eval() { # NAME
  sbatch --parsable -N 1 --ntasks-per-node=2 -c 1 -o "$T/$1.out" -J "$1" \
    --export=ALL,BIN="$BIN",VAL="$T/val",RUN="$T/preempted",WORKERS=1,CROPS=10,EXTRA=--quiet \
    cluster/eval-watch.sbatch
}
nck=$(ls "$T"/preempted/ckpt-*.gnck | wc -l)
e1=$(submit_eval eval1) || fail "sbatch eval-watch.sbatch"
[ "$(wait_job "$e1")" = COMPLETED ] || { logs "$T/eval1.out"; fail "eval job $e1 did not complete"; }
res=$T/preempted/eval.jsonl
[ -f "$res" ] || { logs "$T/eval1.out"; fail "no $res"; }
/usr/bin/python3 - "$res" "$T/preempted" <<'EOF' || fail "eval.jsonl does not hold each checkpoint once"
import json, os, sys
names = [json.loads(l)["ckpt"] for l in open(sys.argv[1])]
ckpts = sorted(f for f in os.listdir(sys.argv[2]) if f.endswith(".gnck"))
names = [os.path.basename(n) for n in names]
assert sorted(names) == ckpts, (names, ckpts)
EOF
[ "$(wc -l <"$res")" -eq "$nck" ] || fail "eval.jsonl has $(wc -l <"$res") lines for $nck checkpoints"
before=$(sha256sum "$res")
e2=$(submit_eval eval2) || fail "sbatch eval-watch.sbatch (second)"
[ "$(wait_job "$e2")" = COMPLETED ] || { logs "$T/eval2.out"; fail "the second eval job $e2 did not complete"; }
[ "$(sha256sum "$res")" = "$before" ] || fail "the second eval-watch job changed eval.jsonl"
ok "eval-watch.sbatch: $nck checkpoints, one line each; a second job adds nothing"

# --- a plain scancel (SIGTERM to the job): checkpoint, exit 3, no requeue
can=$(submit_train cancelled) || fail "sbatch train.sbatch"
wait_running "$can"
wait_lines "$T/cancelled/metrics.jsonl" 5 "$JOB_WAIT" || { logs "$T/cancelled.out"; fail "job $can made no progress"; }
scancel "$can" || fail "scancel $can"
state=$(wait_job "$can")
[ "$state" = CANCELLED ] || { logs "$T/cancelled.out"; fail "the cancelled job ended $state"; }
grep -q "stopped at step" "$T/cancelled.out" && grep -q "the ranks exited 3" "$T/cancelled.out" \
  || { cat "$T/cancelled.out"; fail "scancel: the ranks did not checkpoint and exit 3"; }
"$BIN" ckpt verify "$(ckpt_newest "$T/cancelled")" >/dev/null || fail "scancel: the last checkpoint does not verify"
[ "$(job_field "$can" Restarts)" = 0 ] || fail "a cancelled job was requeued"
ok "scancel: checkpoint $(basename "$(ckpt_newest "$T/cancelled")") written, exit 3, not requeued"
echo "slurm-test: all checks passed"
