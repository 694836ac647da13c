#!/usr/bin/env bash
# Stopping, resubmission and automatic requeueing under a real Slurm (`make test` runs it; about two minutes):
#  1. start a one-node Slurm on this machine (cluster/slurm-local.sh: munged, slurmctld, slurmd);
#  2. submit cluster/slurm.sbatch for a tiny 2-rank run into a fresh folder: it starts fresh and says so;
#  3. send the stop signal by hand (scancel --signal=TERM --batch): a checkpoint is written, the job ends COMPLETED
#     with exit code 0 and is not requeued;
#  4. resubmit the same script: training resumes from that checkpoint and continues its step count;
#  5. send the time-limit warning by hand (scancel --signal=USR1 --batch, what --signal=B:USR1@300 sends): the ranks
#     checkpoint, the script requeues the job, and the job starts again by itself (Restarts=1) and resumes there.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/.build/release/maskpilot
tmp=$(mktemp -d /tmp/maskpilot-slurm-XXXXXX)
cleanup() { cluster/slurm-local.sh stop "$tmp/slurm" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
passed=0; failed=0
ok() { echo "slurm test: $1: ok"; passed=$((passed + 1)); }
bad() { echo "slurm test: $1: FAILED — $2"; failed=$((failed + 1)); }
finish() { echo "slurm: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

[ -x "$bin" ] || { echo "slurm test: $bin not found; run 'make build'"; exit 1; }
if ! cluster/slurm-local.sh start "$tmp/slurm" >"$tmp/slurm-start.log" 2>&1; then
  cat "$tmp/slurm-start.log"; tail -n 20 "$tmp"/slurm/log/* 2>/dev/null
  bad "local Slurm" "the one-node cluster did not start"; finish
fi
export SLURM_CONF=$tmp/slurm/slurm.conf
ok "one-node Slurm up ($(sinfo -h -o '%n %t %c CPUs'))"

"$bin" data synth --format coco-instance --out "$tmp/data" --images 16 --size 96x96 --seed 4 >/dev/null
run=$tmp/run
export MASKPILOT_BIN=$bin MASKPILOT_OUTPUT=$run
train=(configs/smoke.yaml --set data.root="$tmp/data" --set solver.max_iter=100000 --set checkpoint.period=0
       --set train.log_period=1)
submit() {  # submit LOG [train options]: prints the job id
  local log=$1; shift
  sbatch --parsable --job-name=maskpilot-test --nodes=1 --ntasks-per-node=2 --cpus-per-task=1 --time=10 \
         --output="$log" cluster/slurm.sbatch "${train[@]}" "$@"
}
job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
wait_done() {  # wait (≤ 180 s) until job $1 has left the queue
  for _ in $(seq 1 900); do
    case "$(job_state "$1")" in PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|"") sleep 0.2 ;; *) return 0 ;; esac
  done
  scancel "$1"; return 1
}

# 1. First submission into an empty folder, then the preemption signal.
job1=$(submit "$tmp/job1.log") || { bad "sbatch" "$job1"; finish; }
for _ in $(seq 1 600); do grep -q '^step' "$tmp/job1.log" 2>/dev/null && break; sleep 0.2; done
sleep 1
if grep -q "has no checkpoint yet; starting a fresh run" "$tmp/job1.log"; then
  ok "the first submission (--resume into an empty folder) starts fresh and says so"
else
  bad "fresh start" "$(tail -n 5 "$tmp/job1.log")"
fi
scancel --signal=TERM --batch "$job1"
wait_done "$job1" || bad "job 1" "did not end within 180 s after the signal"
state=$(job_state "$job1"); exit_code=$(scontrol show job "$job1" | grep -o ' ExitCode=[0-9:]*' | cut -d= -f2)
stopped_at=$(sed -n 's/^stop signal: checkpoint written at iteration \([0-9]*\).*/\1/p' "$tmp/job1.log" | head -n 1)
pointer=$(cat "$run/last_checkpoint" 2>/dev/null || true)
if [ "$state" = COMPLETED ] && [ "$exit_code" = 0:0 ] && [ -n "$stopped_at" ] && ! grep -q requeueing "$tmp/job1.log" \
   && [ "$pointer" = "$(printf 'model_%07d.h5' "$stopped_at")" ] && "$bin" checkpoint inspect "$run/$pointer" >/dev/null 2>&1; then
  ok "scancel --signal=TERM --batch: checkpoint $pointer written, job COMPLETED with exit code 0, not requeued"
else
  bad "preemption" "state $state, exit code $exit_code, stopped at '${stopped_at}', pointer '$pointer'; $(tail -n 8 "$tmp/job1.log")"
fi

# 2. The same script again: it resumes from that checkpoint and carries on counting steps.
job2=$(submit "$tmp/job2.log" --iterations 3) || { bad "sbatch (resubmission)" "$job2"; finish; }
wait_done "$job2" || bad "job 2" "did not end within 180 s"
last_step=$(grep -v '"eval":' "$run/metrics.jsonl" 2>/dev/null | tail -n 1 | grep -o '"step":[0-9]*' | cut -d: -f2)
if [ "$(job_state "$job2")" = COMPLETED ] && grep -q "resume: from $run/$pointer at iteration $stopped_at" "$tmp/job2.log" \
   && [ -n "$stopped_at" ] && [ "$last_step" = "$((stopped_at + 3))" ]; then
  ok "the resubmitted job resumes at iteration $stopped_at and ends at step $last_step"
else
  bad "resubmission" "state $(job_state "$job2"), last step '$last_step'; $(tail -n 8 "$tmp/job2.log")"
fi

# 3. The time-limit warning: checkpoint, requeue, start again by itself, resume. Each start runs 100 more steps
#    (--iterations), so the requeued start ends the job.
job3=$(submit "$tmp/job3.log" --iterations 100) || { bad "sbatch (requeue)" "$job3"; finish; }
for _ in $(seq 1 600); do grep -q '^step' "$tmp/job3.log" 2>/dev/null && break; sleep 0.2; done
scancel --signal=USR1 --batch "$job3"
# wait_done would stop at the REQUEUED state: first wait (≤ 180 s) for the restart's header line.
for _ in $(seq 1 900); do grep -q "^slurm.sbatch: job $job3 on .*(restart 1)" "$tmp/job3.log" 2>/dev/null && break; sleep 0.2; done
wait_done "$job3" || bad "job 3" "did not end within 180 s after it restarted"
at3=$(sed -n 's/^stop signal: checkpoint written at iteration \([0-9]*\).*/\1/p' "$tmp/job3.log" | tail -n 1)
restarts=$(scontrol show job "$job3" | grep -o 'Restarts=[0-9]*' | cut -d= -f2)
last_step=$(grep -v '"eval":' "$run/metrics.jsonl" 2>/dev/null | tail -n 1 | grep -o '"step":[0-9]*' | cut -d: -f2)
if [ "$(job_state "$job3")" = COMPLETED ] && [ "$restarts" = 1 ] && grep -q "slurm.sbatch: requeueing job $job3 (restart 1)" "$tmp/job3.log" \
   && [ -n "$at3" ] && grep -q "resume: from $run/$(printf 'model_%07d.h5' "$at3") at iteration $at3" "$tmp/job3.log" \
   && [ "$last_step" = "$((at3 + 100))" ]; then
  ok "the time-limit signal checkpoints at iteration $at3, requeues the job, and its restart resumes there (ends at step $last_step)"
else
  bad "requeue" "state $(job_state "$job3"), restarts '$restarts', stopped at '$at3', last step '$last_step'; $(grep -E '^(slurm|resume|stop)' "$tmp/job3.log" | tail -n 8)"
fi
finish
