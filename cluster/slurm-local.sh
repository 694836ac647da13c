#!/usr/bin/env bash
# A real one-node Slurm on this machine, for cluster/test-slurm.sh: munged + slurmctld + slurmd from Debian's
# packages (slurmctld slurmd slurm-client munge; `make deps` installs them), run as root without systemd or
# cgroups, with every file in one folder.
#
#   cluster/slurm-local.sh start DIR   # writes DIR/slurm.conf, starts the daemons, waits for the node to be idle
#   cluster/slurm-local.sh stop DIR    # stops the daemons started by `start DIR` (by their pid files)
#
# Clients and daemons find the cluster through SLURM_CONF=DIR/slurm.conf (export it after `start`).
set -euo pipefail
cmd=${1:?usage: slurm-local.sh start|stop DIR}
dir=${2:?usage: slurm-local.sh start|stop DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

stop_pidfile() {  # the daemon named by a pid file, TERM then KILL after 5 s
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

case "$cmd" in
start)
  for tool in munged slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "slurm-local: $tool not found (make deps installs slurmctld slurmd slurm-client munge)" >&2; exit 1; }
  done
  [ "$(id -u)" -eq 0 ] || { echo "slurm-local: run as root (the daemons run as root here)" >&2; exit 1; }
  host=$(hostname)
  cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)   # nproc alone honours OMP_NUM_THREADS
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
  # munge: our own socket, key, pid and log in DIR, so a system munged (if any) is left alone.
  [ -f "$dir/munge/munge.key" ] || { dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none; chmod 600 "$dir/munge/munge.key"; }
  munged --force --socket="$dir/munge/socket" --key-file="$dir/munge/munge.key" \
         --pid-file="$dir/munge.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed" 2>>"$dir/log/munged.err"
  # Two free ports, slurmctld's and slurmd's: a fixed pair would collide with a leftover test cluster or another
  # Slurm on this machine. A port is taken when something accepts a connection on it (bash's /dev/tcp).
  port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
  ctld_port=
  for _ in $(seq 1 100); do
    p=$(( 20000 + RANDOM % 40000 ))
    port_free "$p" && port_free $(( p + 1 )) && { ctld_port=$p; break; }
  done
  [ -n "$ctld_port" ] || { echo "slurm-local: found no two free ports in 20000–60000" >&2; exit 1; }
  cat >"$conf" <<EOF
ClusterName=maskpilot-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
KillWait=30
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=$ctld_port
SlurmdPort=$(( ctld_port + 1 ))
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  slurmctld -f "$conf"
  slurmd -f "$conf"
  for _ in $(seq 1 100); do
    state=$(sinfo -h -n "$host" -o '%t' 2>/dev/null || true)
    [ "$state" = idle ] && { echo "slurm-local: node $host idle ($cpus CPUs), ports $ctld_port/$(( ctld_port + 1 )), SLURM_CONF=$conf"; exit 0; }
    sleep 0.2
  done
  echo "slurm-local: the node did not become idle (state '${state:-none}'); logs in $dir/log" >&2
  exit 1
  ;;
stop)
  stop_pidfile "$dir/slurmd.pid"
  stop_pidfile "$dir/slurmctld.pid"
  stop_pidfile "$dir/munge.pid"
  ;;
*)
  echo "usage: slurm-local.sh start|stop DIR" >&2; exit 2 ;;
esac
