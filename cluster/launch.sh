#!/usr/bin/env bash
# Launch `maskpilot train` (or any maskpilot command) across MPI ranks.
# Usage: cluster/launch.sh -n RANKS [--hostfile FILE] [--bin PATH] -- train --config configs/x.yaml [...]
# Adds Open MPI's run-as-root settings when run as root, --oversubscribe when ranks exceed the cores,
# and sets OPENBLAS_NUM_THREADS = cores ÷ ranks per node (at least 1).
set -euo pipefail
ranks=2; hostfile=""; bin="$(dirname "$0")/../.build/release/maskpilot"
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--ranks) ranks="$2"; shift 2 ;;
    --hostfile) hostfile="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "launch.sh: unknown option $1 (use -- before the maskpilot arguments)" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "launch.sh: $bin not found; run 'make build' first" >&2; exit 2; }
cores=$(nproc)
args=(-np "$ranks")
if [ -n "$hostfile" ]; then
  args+=(--hostfile "$hostfile")
  # Ranks per node: the largest slot count in the hostfile (defaults to cores).
  per_node=$(awk '/slots=/{split($0,a,"slots="); if (a[2]+0>m) m=a[2]+0} END{print (m>0?m:0)}' "$hostfile")
  [ "$per_node" -gt 0 ] || per_node=$cores
else
  per_node=$ranks
fi
if [ "$per_node" -gt "$cores" ]; then args+=(--oversubscribe); fi
threads=$(( cores / per_node )); [ "$threads" -ge 1 ] || threads=1
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OPENBLAS_NUM_THREADS=$threads
# mpirun hands every rank a pseudo-terminal; tell rank 0 whether our own output is a terminal.
if [ -t 1 ]; then export MASKPILOT_PROGRESS=terminal; else export MASKPILOT_PROGRESS=plain; fi
exec mpirun "${args[@]}" -x OPENBLAS_NUM_THREADS -x MASKPILOT_PROGRESS "$bin" "$@"
