#!/usr/bin/env bash
# Tests of cluster/launch.sh's rank placement (`make test` runs it; a few seconds): every rank is bound to as
# many cores as it has BLAS/OpenMP threads (its /proc Cpus_allowed_list covers them), ranks of a node get
# disjoint cores, and the cores per node come from the hostfile or the Slurm allocation, not from `nproc`; and
# cluster/slurm.sbatch in a job array (a fake srun): the task's own folder and %a replaced by the task id.
set -uo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/maskpilot-launch-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { echo "launch test: $1: ok"; passed=$((passed + 1)); }
bad() { echo "launch test: $1: FAILED — $2"; failed=$((failed + 1)); }
cores=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)

# Each rank prints "rank threads cpulist".
probe='echo "$OMPI_COMM_WORLD_RANK $OPENBLAS_NUM_THREADS $OMP_NUM_THREADS $(sed -n "s/^Cpus_allowed_list:[[:space:]]*//p" /proc/self/status)"'
count_cpus() {  # "0-3,8,10-11" → 7
  local n=0 part
  for part in ${1//,/ }; do
    if [[ $part == *-* ]]; then n=$(( n + ${part#*-} - ${part%-*} + 1 )); else n=$(( n + 1 )); fi
  done
  echo "$n"
}
check_ranks() {  # NAME EXPECTED_THREADS OUTPUT_FILE EXPECTED_RANKS: bound to exactly T cores each, disjoint
  local name=$1 want=$2 file=$3 nranks=$4 problems="" seen="" rank blas omp list n
  [ "$(wc -l <"$file")" -eq "$nranks" ] || problems="expected $nranks ranks, got: $(cat "$file")"
  while read -r rank blas omp list; do
    n=$(count_cpus "$list")
    [ "$blas" = "$want" ] && [ "$omp" = "$want" ] || problems+=" rank $rank has OPENBLAS/OMP threads $blas/$omp, want $want;"
    [ "$n" -eq "$want" ] || problems+=" rank $rank may run on cores '$list' ($n) for $want thread(s);"
    seen+="$list,"
  done <"$file"
  [ "$(echo "${seen%,}" | tr ',' '\n' | sort | uniq -d | wc -l)" -eq 0 ] || problems+=" ranks share cores: ${seen%,};"
  if [ -z "$problems" ]; then ok "$name"; else bad "$name" "$problems"; fi
}

cluster/launch.sh -n 1 --bin /bin/sh -- -c "$probe" >"$tmp/one" 2>&1
check_ranks "1 rank on $cores cores: $cores thread(s), bound to $cores core(s)" "$cores" "$tmp/one" 1

cluster/launch.sh -n "$cores" --bin /bin/sh -- -c "$probe" >"$tmp/full" 2>&1
check_ranks "$cores ranks on $cores cores: 1 thread each, one core each" 1 "$tmp/full" "$cores"

# OMP_NUM_THREADS=1 in the caller's environment (GNU nproc would then report 1 CPU) changes nothing.
OMP_NUM_THREADS=1 cluster/launch.sh -n "$cores" --bin /bin/sh -- -c "$probe" >"$tmp/omp1" 2>&1
check_ranks "OMP_NUM_THREADS=1 in the environment: still $cores ranks bound to one core each" 1 "$tmp/omp1" "$cores"

cluster/launch.sh -t "$cores" --bin /bin/sh -- -c "$probe" >"$tmp/bythreads" 2>&1
check_ranks "-t $cores: one rank of $cores threads per node" "$cores" "$tmp/bythreads" 1
cluster/launch.sh -t 1 --bin /bin/sh -- -c "$probe" >"$tmp/bythreads1" 2>&1
check_ranks "-t 1: $cores ranks of 1 thread" 1 "$tmp/bythreads1" "$cores"
printf 'node1 slots=32\nnode2 slots=32\n' >"$tmp/two-nodes"
out=$(cluster/launch.sh -t 8 --hostfile "$tmp/two-nodes" --dry-run -- train 2>&1)
if echo "$out" | grep -q "8 rank(s) on 2 node(s) of 32 core(s).*4 per node, 8 thread(s) each" && echo "$out" | grep -q "ppr:4:node:PE=8"; then
  ok "-t 8 on 2 nodes of 32 cores: 8 ranks, 4 per node, bound to 8 cores each"
else
  bad "-t 8 placement" "$out"
fi
if cluster/launch.sh -n 4 -t "$cores" --bin /bin/sh -- -c true >"$tmp/toomany" 2>&1; then
  bad "-n × -t beyond the cores refused" "it ran"
elif grep -q "more than the $cores core(s)" "$tmp/toomany"; then
  ok "-n 4 -t $cores beyond the cores is refused"
else
  bad "-n × -t beyond the cores refused" "$(cat "$tmp/toomany")"
fi

printf 'localhost slots=%s\n' "$cores" >"$tmp/hostfile"
cluster/launch.sh -n 1 --hostfile "$tmp/hostfile" --bin /bin/sh -- -c "$probe" >"$tmp/hostfile.out" 2>&1
check_ranks "hostfile 'localhost slots=$cores', 1 rank: $cores thread(s)" "$cores" "$tmp/hostfile.out" 1

# The launching machine's core count must not matter: a hostfile (or Slurm allocation) of bigger nodes.
printf '# two 32-core nodes\nnode1 slots=32\nnode2 slots=32\n' >"$tmp/big"
line=$(cluster/launch.sh -n 8 --hostfile "$tmp/big" --dry-run -- train | tail -n 1)
if [[ $line == *"--map-by ppr:4:node:PE=8 --bind-to hwthread"* ]] && [[ $line == *"--hostfile $tmp/big"* ]]; then
  ok "hostfile of two 32-core nodes, 8 ranks: 4 per node × 8 threads"
else
  bad "hostfile of big nodes" "$line"
fi
line=$(env SLURM_JOB_ID=7 SLURM_JOB_CPUS_PER_NODE='48(x4)' SLURM_JOB_NUM_NODES=4 cluster/launch.sh -n 16 --dry-run -- train | tail -n 1)
if [[ $line == *"--map-by ppr:4:node:PE=12 --bind-to hwthread"* ]]; then
  ok "inside a Slurm allocation of 4 × 48 cores, 16 ranks: 4 per node × 12 threads"
else
  bad "Slurm allocation" "$line"
fi
line=$(cluster/launch.sh -n $((cores + 1)) --dry-run -- train | tail -n 1)
if [[ $line == *"--oversubscribe --bind-to none"* ]]; then
  ok "more ranks than cores: oversubscribed and unbound"
else
  bad "oversubscription" "$line"
fi
# slurm.sbatch in a job array, with a fake srun that prints what it would run: the task's own folder, and "%a" in
# the arguments replaced by the task id (the same script outside an array keeps the folder and the arguments).
mkdir -p "$tmp/fakebin"
printf '#!/bin/sh\necho "srun $*"\n' >"$tmp/fakebin/srun"; chmod +x "$tmp/fakebin/srun"
printf '#!/bin/sh\n' >"$tmp/fake-maskpilot"; chmod +x "$tmp/fake-maskpilot"
array=$(env PATH="$tmp/fakebin:$PATH" MASKPILOT_BIN="$tmp/fake-maskpilot" SLURM_JOB_NAME=sweep SLURM_ARRAY_TASK_ID=3 SLURM_CPUS_PER_TASK=2 \
        bash cluster/slurm.sbatch configs/smoke.yaml --set seed=%a --set data.root=d 2>&1 | grep '^srun ')
single=$(env PATH="$tmp/fakebin:$PATH" MASKPILOT_BIN="$tmp/fake-maskpilot" SLURM_JOB_NAME=sweep SLURM_CPUS_PER_TASK=2 \
         bash cluster/slurm.sbatch configs/smoke.yaml --set seed=%a 2>&1 | grep '^srun ')
if [[ $array == *"--mpi=pmix --cpus-per-task=2"*"train --config configs/smoke.yaml --output checkpoints/sweep-3 --resume --set seed=3 --set data.root=d" ]] \
   && [[ $single == *"--output checkpoints/sweep --resume --set seed=%a" ]]; then
  ok "slurm.sbatch in a job array: the task's folder (checkpoints/sweep-3) and %a → the task id in the arguments"
else
  bad "slurm.sbatch in a job array" "array: $array; single: $single"
fi
echo "launch: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
