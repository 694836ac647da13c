#!/usr/bin/env bash
# Launch `maskpilot train` (or any maskpilot command) across MPI ranks with mpirun.
# Usage: cluster/launch.sh [-n RANKS] [-t THREADS] [--hostfile FILE] [--bin PATH] [--dry-run] -- train --config x.yaml [...]
#
# Cores per node come from the compute nodes, not from this machine: a hostfile's `slots=` (one slot per core),
# else the Slurm allocation (SLURM_JOB_CPUS_PER_NODE / SLURM_CPUS_ON_NODE, SLURM_JOB_NUM_NODES) when launched
# inside one, else this machine's `nproc`. Ranks per node = ⌈ranks ÷ nodes⌉ and threads per rank
# T = cores ÷ ranks per node (at least 1); OPENBLAS_NUM_THREADS and OMP_NUM_THREADS are set to T and each rank
# is bound to T cores (mpirun --use-hwthread-cpus --map-by ppr:R:node:PE=T, R ranks per node). With more ranks than cores, ranks are not
# bound (--oversubscribe --bind-to none). `-t THREADS` alone fills every node with cores ÷ THREADS ranks of THREADS
# threads (e.g. `-t 8` on 4 nodes of 32 cores: 16 ranks, 4 per node); with -n too, THREADS per rank as given (ranks
# per node × THREADS must fit the cores). Without either, 2 ranks. Adds Open MPI's run-as-root settings when run as root.
# --dry-run prints the mpirun command instead of running it. SIGTERM to this script stops training cleanly (exit 0).
set -euo pipefail
# The whole script is one brace group, read before it runs, so editing this file cannot disturb a launch in progress.
{
# This machine's CPUs (its affinity mask). GNU nproc also honours OMP_NUM_THREADS / OMP_THREAD_LIMIT, which a user's
# environment (or a previous launch) may set to a thread count: those must not shrink the core count.
cpus() { env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc; }
ranks=""; want_threads=""; hostfile=""; bin="$(dirname "$0")/../.build/release/maskpilot"; dry=0
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--ranks) ranks="$2"; shift 2 ;;
    -t|--threads) want_threads="$2"; shift 2 ;;
    --hostfile) hostfile="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --dry-run) dry=1; shift ;;
    --) shift; break ;;
    *) echo "launch.sh: unknown option $1 (use -- before the maskpilot arguments)" >&2; exit 2 ;;
  esac
done
if [ -n "$want_threads" ]; then
  case "$want_threads" in *[!0-9]*|0) echo "launch.sh: -t needs a positive number of threads, got '$want_threads'" >&2; exit 2 ;; esac
fi
[ -n "$ranks" ] || [ -n "$want_threads" ] || ranks=2
if [ -n "$ranks" ]; then
  case "$ranks" in *[!0-9]*|0) echo "launch.sh: -n needs a positive number of ranks, got '$ranks'" >&2; exit 2 ;; esac
fi
[ "$dry" -eq 1 ] || [ -x "$bin" ] || { echo "launch.sh: $bin not found; run 'make build' first" >&2; exit 2; }

args=()
if [ -n "$hostfile" ]; then
  [ -r "$hostfile" ] || { echo "launch.sh: cannot read the hostfile $hostfile" >&2; exit 2; }
  args+=(--hostfile "$hostfile")
  # Nodes: the host lines; cores per node: the smallest slots= among them (a line without slots= counts as nproc).
  nodes=$(grep -cvE '^[[:space:]]*(#|$)' "$hostfile" || true)
  cores=$(awk -v fallback="$(cpus)" '!/^[[:space:]]*(#|$)/ { c = fallback; if (match($0, /slots=[0-9]+/)) c = substr($0, RSTART + 6, RLENGTH - 6) + 0;
           if (m == 0 || c < m) m = c } END { print (m > 0 ? m : fallback) }' "$hostfile")
  source="hostfile $hostfile"
elif [ -n "${SLURM_JOB_ID:-}" ]; then
  # SLURM_JOB_CPUS_PER_NODE looks like "32(x4),16": the first node's count; SLURM_CPUS_ON_NODE is this node's.
  cores=${SLURM_JOB_CPUS_PER_NODE:-${SLURM_CPUS_ON_NODE:-$(cpus)}}
  cores=${cores%%[(,]*}
  nodes=${SLURM_JOB_NUM_NODES:-${SLURM_NNODES:-1}}
  source="Slurm job $SLURM_JOB_ID"
else
  cores=$(cpus); nodes=1; source="this machine"
fi
[ "$nodes" -ge 1 ] 2>/dev/null || nodes=1
[ "$cores" -ge 1 ] 2>/dev/null || cores=1
if [ -z "$ranks" ]; then
  [ "$want_threads" -le "$cores" ] || { echo "launch.sh: -t $want_threads is more than the $cores core(s) per node ($source)" >&2; exit 2; }
  ranks=$(( nodes * (cores / want_threads) ))
fi
args=(-np "$ranks" "${args[@]}")
per_node=$(( (ranks + nodes - 1) / nodes ))
if [ -n "$want_threads" ] && [ $(( per_node * want_threads )) -gt "$cores" ]; then
  echo "launch.sh: $per_node rank(s) per node × $want_threads thread(s) is more than the $cores core(s) per node ($source)" >&2; exit 2
fi
if [ "$per_node" -gt "$cores" ]; then
  threads=1
  args+=(--oversubscribe --bind-to none)
else
  threads=${want_threads:-$(( cores / per_node ))}
  # Hardware threads are the CPUs here (as nproc and Slurm count them), so PE=T means T of them on any machine,
  # with or without SMT.
  args+=(--use-hwthread-cpus --map-by "ppr:$per_node:node:PE=$threads" --bind-to hwthread)
fi
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
# mpirun hands every rank a pseudo-terminal; tell rank 0 whether our own output is a terminal (and its width).
if [ -t 1 ]; then
  export MASKPILOT_PROGRESS=terminal
  export COLUMNS=${COLUMNS:-$(tput cols 2>/dev/null || stty size 2>/dev/null | cut -d' ' -f2 || echo 80)}
else
  export MASKPILOT_PROGRESS=plain
fi
args+=(-x OPENBLAS_NUM_THREADS -x OMP_NUM_THREADS -x MASKPILOT_PROGRESS)
[ -n "${COLUMNS:-}" ] && args+=(-x COLUMNS)
if [ "$dry" -eq 1 ]; then
  echo "launch.sh: $ranks rank(s) on $nodes node(s) of $cores core(s) ($source): $per_node per node, $threads thread(s) each"
  echo "mpirun ${args[*]} $bin $*"
  exit 0
fi
# A SIGTERM (or SIGUSR1) to this launcher is a request to stop: it is passed to mpirun as SIGUSR1, which Open MPI
# forwards to every rank without ending the job; the ranks write one checkpoint together and exit 0, and so do
# mpirun and this script. (A SIGTERM to mpirun itself would kill the ranks and exit 1.) Ctrl-C still aborts.
job=""
trap '[ -n "$job" ] && kill -USR1 "$job" 2>/dev/null' TERM USR1
mpirun "${args[@]}" "$bin" "$@" &
job=$!
while true; do
  status=0; wait "$job" || status=$?   # (set -e must not end the script on a trapped signal)
  kill -0 "$job" 2>/dev/null && continue   # wait returned early for a trapped signal: keep waiting
  # A signal that arrived as mpirun ended: ask once more for its own status (bash keeps it).
  if [ "$status" -gt 128 ]; then again=0; wait "$job" 2>/dev/null || again=$?; [ "$again" -ne 127 ] && status=$again; fi
  break
done
exit "$status"
}
