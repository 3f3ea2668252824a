#!/bin/sh
# vcluster-agent.sh: Open MPI's launcher ("rsh agent", plm_rsh_agent) for the
# virtual cluster of cluster/vcluster.sh. mpirun calls it the way it calls ssh,
#   vcluster-agent.sh [options] HOST COMMAND...
# and it runs COMMAND (Open MPI's daemon) inside HOST's network and UTS
# namespaces instead of logging in. Like ssh, it joins the words of COMMAND
# and gives them to a shell. The environment is passed on as it is: the hosts
# share this machine's file system and programs, as a cluster shares a home.
while [ $# -gt 0 ]; do
  case $1 in -*) shift ;; *) break ;; esac   # ssh-style options: none apply here
done
h=${1:?vcluster-agent.sh: no host given}
shift
state=${VC_STATE:-/run/vcluster/vc}
if [ ! -e "/run/netns/$h" ] || [ ! -e "$state/uts/$h" ]; then
  echo "vcluster-agent.sh: no virtual host '$h' (VC_STATE=$state); is the cluster up?" >&2
  exit 255   # ssh's code for "could not connect"
fi
exec nsenter --net="/run/netns/$h" --uts="$state/uts/$h" -- /bin/sh -c "$*"
