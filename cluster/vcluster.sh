#!/usr/bin/env bash
# vcluster.sh: a virtual cluster of N hosts on one Linux machine, for running
# and testing multi-host MPI jobs without the hardware. Each host is a network
# namespace with its own hostname (a UTS namespace), joined by a veth pair to
# one bridge in the root namespace; every link can be shaped with tc. The
# hosts share the machine's cores, memory and file system: absolute speeds are
# a simulation, the traffic between hosts is real TCP over the shaped links.
#
#   cluster/vcluster.sh up N [--rate 10gbit] [--delay 50us] [--slots S]
#   cluster/vcluster.sh mpirun [mpirun args]    Open MPI across the hosts
#   cluster/vcluster.sh run CMD [args]          CMD with Open MPI set up for the hosts
#   cluster/vcluster.sh exec HOST CMD [args]    CMD inside one host
#   cluster/vcluster.sh status                  what exists
#   cluster/vcluster.sh down                    remove everything `up` made
#
# Needs root. `up` is idempotent (the same cluster twice is a no-op) and
# cleans the remains of a crashed one; `down` is safe to run at any time and
# stops the processes still running inside the hosts. Only names derived from
# VC_NAME are ever created or removed. See cluster/README.md.
set -euo pipefail

VC_NAME=${VC_NAME:-vc}                    # prefix of every name made: hosts $VC_NAME-h1.., bridge $VC_NAME-br
VC_SUBNET=${VC_SUBNET:-10.77.0}           # /24: host i is .i, the bridge (root namespace) .254
VC_STATE=${VC_STATE:-/run/vcluster/$VC_NAME}  # hostfile, settings, the hosts' UTS namespaces
VC_SLOTS=${VC_SLOTS:-1}                   # slots per host in the hostfile
VC_TBF_LATENCY=${VC_TBF_LATENCY:-10ms}    # longest a packet may queue in a shaped link

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AGENT=$here/vcluster-agent.sh
BR=$VC_NAME-br

die() { echo "vcluster.sh: $*" >&2; exit 1; }
host() { echo "$VC_NAME-h$1"; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, veth, tc); run it as root or with sudo"
  local t
  for t in ip tc nsenter unshare; do
    command -v $t >/dev/null || die "'$t' is missing; install iproute2 and util-linux (scripts/install-deps.sh --cluster)"
  done
}

# Bits per second of a tc rate such as 10gbit, 500mbit, 1000000bit.
rate_bits() {
  local r=$1 n unit
  [[ $r =~ ^([0-9]+)(bit|kbit|mbit|gbit|tbit)$ ]] || die "--rate '$r': give a number and bit, kbit, mbit, gbit or tbit (e.g. 10gbit)"
  n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]}
  case $unit in
    bit) echo "$n" ;; kbit) echo $((n * 1000)) ;; mbit) echo $((n * 1000000)) ;;
    gbit) echo $((n * 1000000000)) ;; tbit) echo $((n * 1000000000000)) ;;
  esac
}

# Shapes the egress of one veth end: netem for the delay, tbf for the rate (as
# netem's child when both are given). tbf's burst is at least 1 MB and 1 ms at
# the rate: a burst below one 64 KB GSO packet stalls the link.
shape() { # NETNS-or-empty DEV RATE DELAY
  local ns=$1 dev=$2 rate=$3 delay=$4 nsarg=() parent=(root) burst
  [ -n "$ns" ] && nsarg=(-n "$ns")
  if [ -n "$delay" ]; then
    tc "${nsarg[@]}" qdisc add dev "$dev" root handle 1: netem delay "$delay" limit 100000 2>/dev/null \
      || die "cannot add 'netem delay $delay' to $dev: this kernel lacks the netem qdisc (sch_netem); leave out --delay or load sch_netem"
    parent=(parent 1:1)
  fi
  if [ -n "$rate" ]; then
    burst=$(( $(rate_bits "$rate") / 8 / 1000 ))
    [ "$burst" -ge 1048576 ] || burst=1048576
    tc "${nsarg[@]}" qdisc add dev "$dev" "${parent[@]}" handle 10: tbf rate "$rate" burst "$burst" latency "$VC_TBF_LATENCY" \
      || die "cannot add 'tbf rate $rate' to $dev"
  fi
}

# Prints the settings a complete cluster was made with, or nothing.
current() { [ -f "$VC_STATE/settings" ] && cat "$VC_STATE/settings" || true; }

cmd_up() {
  local n="" rate="" delay="" i h
  while [ $# -gt 0 ]; do
    case $1 in
      --rate) rate=${2:?--rate needs a value}; shift 2 ;;
      --delay) delay=${2:?--delay needs a value}; shift 2 ;;
      --slots) VC_SLOTS=${2:?--slots needs a value}; shift 2 ;;
      -*) die "up: unknown option $1 (see --help)" ;;
      *) [ -z "$n" ] || die "up: one host count, got '$n' and '$1'"; n=$1; shift ;;
    esac
  done
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 253 ] || die "up: give the number of hosts, 1..253 (got '${n}')"
  [[ $VC_SLOTS =~ ^[1-9][0-9]*$ ]] || die "--slots '$VC_SLOTS': give a positive integer"
  [ ${#VC_NAME} -le 9 ] && [[ $VC_NAME =~ ^[a-z][a-z0-9]*$ ]] || die "VC_NAME '$VC_NAME': 1..9 lower-case letters and digits (interface names are limited to 15 characters)"
  [[ $VC_SUBNET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "VC_SUBNET '$VC_SUBNET': give the first three numbers of a /24, e.g. 10.77.0"
  [ -z "$rate" ] || rate_bits "$rate" >/dev/null
  need_root
  local want="hosts=$n rate=${rate:-none} delay=${delay:-none} slots=$VC_SLOTS subnet=$VC_SUBNET.0/24"
  local have; have=$(current)
  if [ -n "$have" ] && complete; then
    [ "$have" = "$want" ] && { echo "vcluster.sh: already up: $have"; return 0; }
    die "a cluster '$VC_NAME' is up with different settings ($have); run 'cluster/vcluster.sh down' first"
  fi
  cmd_down >/dev/null  # the remains of a crashed up/down, if any
  local clash
  clash=$(ip -4 -o addr show | awk -v p=" $VC_SUBNET." 'index($0, p) {print $2}' | head -1)
  [ -z "$clash" ] || die "$VC_SUBNET.0/24 is already on interface $clash (another virtual cluster?); take it down or set VC_SUBNET"
  trap 'cmd_down >/dev/null 2>&1' EXIT  # a failed up leaves nothing behind
  mkdir -p "$VC_STATE/uts"
  ip link add "$BR" type bridge
  ip addr add "$VC_SUBNET.254/24" dev "$BR"
  ip link set "$BR" up
  : >"$VC_STATE/hostfile.tmp"
  for i in $(seq "$n"); do
    h=$(host "$i")
    ip netns add "$h"
    ip link add "$h" type veth peer name eth0 netns "$h"
    ip link set "$h" master "$BR"
    ip link set "$h" up
    ip -n "$h" addr add "$VC_SUBNET.$i/24" dev eth0
    ip -n "$h" link set eth0 up
    ip -n "$h" link set lo up
    shape "" "$h" "$rate" "$delay"
    shape "$h" eth0 "$rate" "$delay"
    touch "$VC_STATE/uts/$h"
    unshare --uts="$VC_STATE/uts/$h" hostname "$h"
    echo "$h slots=$VC_SLOTS" >>"$VC_STATE/hostfile.tmp"
  done
  mv "$VC_STATE/hostfile.tmp" "$VC_STATE/hostfile"
  echo "$want" >"$VC_STATE/settings"
  trap - EXIT
  echo "vcluster.sh: up: $want; hostfile $VC_STATE/hostfile"
}

# True when every host of the recorded settings exists.
complete() {
  local n i
  n=$(sed -n 's/^hosts=\([0-9]*\) .*/\1/p' "$VC_STATE/settings" 2>/dev/null)
  [ -n "$n" ] || return 1
  ip link show "$BR" >/dev/null 2>&1 || return 1
  for i in $(seq "$n"); do
    [ -e "/run/netns/$(host "$i")" ] && [ -e "$VC_STATE/uts/$(host "$i")" ] || return 1
  done
}

# The hosts that exist, as namespaces or UTS files, whatever the settings say.
existing_hosts() {
  { ip netns list 2>/dev/null | awk '{print $1}'; ls "$VC_STATE/uts" 2>/dev/null || true; } \
    | grep -E "^$VC_NAME-h[0-9]+\$" | sort -u -V || true
}

# A host that goes down takes its processes with it (left-over Open MPI
# daemons of a job whose mpirun died, for instance): TERM, then KILL after 3 s.
# Only the processes inside this host's network namespace are touched.
stop_host_processes() {
  local h=$1 pids i
  pids=$(ip netns pids "$h" 2>/dev/null || true)
  [ -n "$pids" ] || return 0
  echo "vcluster.sh: stopping the processes still running in $h: $(echo $pids)" >&2
  kill $pids 2>/dev/null || true
  for i in 1 2 3 4 5 6; do
    pids=$(ip netns pids "$h" 2>/dev/null || true)
    [ -n "$pids" ] || return 0
    sleep 0.5
  done
  kill -9 $pids 2>/dev/null || true
}

cmd_down() {
  need_root
  local h
  for h in $(existing_hosts); do
    stop_host_processes "$h"
    ip link del "$h" 2>/dev/null || true      # removes both ends of the veth pair
    ip netns del "$h" 2>/dev/null || true
    if [ -e "$VC_STATE/uts/$h" ]; then
      umount "$VC_STATE/uts/$h" 2>/dev/null || true
      rm -f "$VC_STATE/uts/$h"
    fi
  done
  ip link del "$BR" 2>/dev/null || true
  rm -rf "$VC_STATE"
  rmdir "$(dirname "$VC_STATE")" 2>/dev/null || true
  echo "vcluster.sh: down: nothing of '$VC_NAME' is left"
}

cmd_status() {
  local h hosts; hosts=$(existing_hosts)
  if [ -z "$hosts" ] && ! ip link show "$BR" >/dev/null 2>&1; then
    echo "vcluster '$VC_NAME': down"; return 0
  fi
  if complete; then echo "vcluster '$VC_NAME': up: $(current)"; else echo "vcluster '$VC_NAME': INCOMPLETE (run down, then up)"; fi
  ip -br addr show dev "$BR" 2>/dev/null || echo "bridge $BR: missing"
  for h in $hosts; do
    printf '%s: %s, hostname %s, processes %s\n' "$h" \
      "$(ip -n "$h" -br addr show dev eth0 2>/dev/null | awk '{print $3}' || echo 'no eth0')" \
      "$(nsenter --uts="$VC_STATE/uts/$h" hostname 2>/dev/null || echo '?')" \
      "$(ip netns pids "$h" 2>/dev/null | wc -l)"
    tc -n "$h" qdisc show dev eth0 2>/dev/null | sed 's/^/    eth0: /'
  done
  [ -f "$VC_STATE/hostfile" ] && echo "hostfile: $VC_STATE/hostfile"
  return 0
}

# Open MPI's settings for the hosts, as environment variables, so that any
# mpirun (also one inside a script such as mpirun-hosts.sh) uses them.
mpi_env() {
  complete || die "no complete virtual cluster '$VC_NAME'; run 'cluster/vcluster.sh up N' first"
  export VC_STATE
  export OMPI_MCA_plm_rsh_agent=$AGENT
  export OMPI_MCA_btl=tcp,self                    # no shared memory between "hosts"
  export OMPI_MCA_btl_tcp_if_include=$VC_SUBNET.0/24
  export OMPI_MCA_oob_tcp_if_include=$VC_SUBNET.0/24
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
}

cmd_exec() {
  local h=${1:?exec needs a host and a command}; shift
  [ $# -gt 0 ] || die "exec: give a command to run in $h"
  [ -e "/run/netns/$h" ] && [ -e "$VC_STATE/uts/$h" ] || die "exec: no host '$h' (cluster/vcluster.sh status lists them)"
  exec nsenter --net="/run/netns/$h" --uts="$VC_STATE/uts/$h" -- "$@"
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down ;;
  status) need_root; cmd_status ;;
  exec) shift; need_root; cmd_exec "$@" ;;
  run) shift; need_root; mpi_env; [ $# -gt 0 ] || die "run: give a command"; exec "$@" ;;
  mpirun) shift; need_root; mpi_env; exec mpirun --hostfile "$VC_STATE/hostfile" "$@" ;;
  -h|--help|help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) die "unknown command '${1:-}'; use up, down, status, mpirun, run or exec (see --help)" ;;
esac
