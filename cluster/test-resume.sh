#!/usr/bin/env bash
# Checkpoint/resume tests run by `make test` (2 MPI ranks, MP-Former on the tiny smoke model):
#  1. N steps + --resume + N steps equals 2N steps straight, bitwise (maskpilot checkpoint diff);
#  2. a different world size resumes, saying the gradient is summed in another order (same batches and draws);
#  3. a config change that alters the model is refused, naming the key; log.txt holds every invocation;
#  4. SIGTERM mid-run leaves a complete checkpoint and exits 0;
#  5. on one rank, 20 steps on 1 thread + --resume on 2 threads equals 40 steps on 2 threads, bitwise (results do
#     not depend on the thread count);
#  6. a tiny Swin backbone with drop path 0.5: 10 + --resume + 10 steps equals 20 steps straight, bitwise (the
#     drop-path draws are keyed by image, iteration and block, so the resumed steps drop what the straight run did),
#     and differs from the same run without drop path.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/maskpilot
tmp=$(mktemp -d /tmp/maskpilot-resume-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { echo "resume test: $1: ok"; passed=$((passed + 1)); }
bad() { echo "resume test: $1: FAILED — $2"; failed=$((failed + 1)); }
"$bin" data synth --format coco-instance --out "$tmp/data" --images 16 --size 96x96 --seed 3 >/dev/null
common=(--config configs/smoke.yaml --set data.root="$tmp/data" --set solver.max_iter=40 --set checkpoint.period=20)

cluster/launch.sh -n 2 -- train "${common[@]}" --output "$tmp/straight" >"$tmp/straight.log" 2>&1
cluster/launch.sh -n 2 -- train "${common[@]}" --output "$tmp/split" --iterations 20 >"$tmp/split1.log" 2>&1
cluster/launch.sh -n 2 -- train "${common[@]}" --output "$tmp/split" --resume >"$tmp/split2.log" 2>&1
if "$bin" checkpoint diff "$tmp/straight/model_final.h5" "$tmp/split/model_final.h5" 2>&1 | grep -q "tensors: all identical"; then
  ok "20 + resume + 20 steps == 40 steps, bitwise"
else
  bad "bitwise resume" "$("$bin" checkpoint diff "$tmp/straight/model_final.h5" "$tmp/split/model_final.h5" 2>&1 | tail -3)"
fi

cp -r "$tmp/split" "$tmp/one"; rm -f "$tmp/one/model_final.h5"
echo "model_0000020.h5" > "$tmp/one/last_checkpoint"
if OPENBLAS_NUM_THREADS=1 "$bin" train "${common[@]}" --output "$tmp/one" --resume >"$tmp/one.log" 2>&1 \
   && grep -q "written by 2 rank(s), this run has 1: the same images in the same global batches" "$tmp/one.log" && [ -f "$tmp/one/model_final.h5" ]; then
  ok "a 2-rank checkpoint resumes on 1 rank, saying what changes"
else
  bad "world size change" "$(tail -3 "$tmp/one.log")"
fi

if OPENBLAS_NUM_THREADS=1 "$bin" train "${common[@]}" --set model.decoder.num_queries=12 --output "$tmp/split" --resume >"$tmp/refuse.log" 2>&1; then
  bad "model change refused" "the run was not refused"
elif grep -q "model.decoder.num_queries" "$tmp/refuse.log"; then
  ok "a model-changing config is refused, naming model.decoder.num_queries"
else
  bad "model change refused" "$(tail -3 "$tmp/refuse.log")"
fi

# log.txt: every invocation of the run appended (two trainings and the refused one), stamped lines, the header with
# the command and environment, plain step lines whatever the console showed, and the refusal's error.
lt="$tmp/split/log.txt"
if [ "$(grep -c "^\[20[0-9-]* [0-9:]*\] maskpilot train — 2 rank(s)" "$lt" 2>/dev/null)" = 2 ] \
   && [ "$(grep -c "^\[20[0-9-]* [0-9:]*\] maskpilot train — 1 rank(s)" "$lt")" = 1 ] \
   && grep -q "\] command: .*maskpilot train --config configs/smoke.yaml" "$lt" \
   && grep -q "\] environment: maskpilot .*; 2 rank(s); fp32; OpenBLAS.*; oneDNN [0-9.]* (.*); .*; HDF5 [0-9.]*$" "$lt" \
   && grep -q "\] step  1/40  loss" "$lt" && grep -q "\] step 40/40  loss" "$lt" && grep -q "\] done: 20 steps" "$lt" \
   && grep -q "\] resume: from $tmp/split/model_0000020.h5 at iteration 20" "$lt" && grep -q "\] done: 40 steps" "$lt" \
   && grep -q "\] weights: model.weights is not set" "$lt" && grep -q "\] error: .*model.decoder.num_queries" "$lt"; then
  ok "log.txt holds every invocation: header, command, environment, step lines, resume, done, the refusal's error"
else
  bad "log.txt" "$(head -c 600 "$lt" 2>&1; echo; grep -c . "$lt")"
fi

cluster/launch.sh -n 2 -- train "${common[@]}" --set solver.max_iter=100000 --set checkpoint.period=0 --output "$tmp/signal" >"$tmp/signal.log" 2>&1 &
launcher=$!
for _ in $(seq 1 100); do grep -q "^step" "$tmp/signal.log" 2>/dev/null && break; sleep 0.2; done
sleep 1
pkill -TERM -f "^[^ ]*maskpilot train .*--output $tmp/signal" || true   # the ranks, as SLURM signals job steps (not mpirun)
wait $launcher; code=$?
latest=$(cat "$tmp/signal/last_checkpoint" 2>/dev/null || true)
if [ "$code" -eq 0 ] && [ -n "$latest" ] && "$bin" checkpoint inspect "$tmp/signal/$latest" >/dev/null 2>&1; then
  ok "SIGTERM mid-run: exit 0 and a complete checkpoint ($latest)"
else
  bad "SIGTERM" "exit $code, pointer '$latest'; $(grep -v "^step" "$tmp/signal.log" | grep -v "^ *[a-z_]*:" | tail -25)"
fi
"$bin" train "${common[@]}" --threads 2 --output "$tmp/t2" >"$tmp/t2.log" 2>&1
"$bin" train "${common[@]}" --threads 1 --output "$tmp/t12" --iterations 20 >"$tmp/t12a.log" 2>&1
"$bin" train "${common[@]}" --threads 2 --output "$tmp/t12" --resume >"$tmp/t12b.log" 2>&1
if grep -q "threads: 2 compute" "$tmp/t12b.log" && grep -q "threads: 1 compute" "$tmp/t12a.log" \
   && "$bin" checkpoint diff "$tmp/t2/model_final.h5" "$tmp/t12/model_final.h5" 2>&1 | grep -q "tensors: all identical"; then
  ok "20 steps on 1 thread + resume on 2 threads == 40 steps on 2 threads, bitwise"
else
  bad "resume across --threads" "$(tail -2 "$tmp/t12b.log"; "$bin" checkpoint diff "$tmp/t2/model_final.h5" "$tmp/t12/model_final.h5" 2>&1 | tail -3)"
fi
swin=(--set model.backbone.name=swin --set model.backbone.swin.embed_dim=16 --set "model.backbone.swin.depths=[2,2,2,2]"
      --set "model.backbone.swin.num_heads=[1,2,2,4]" --set model.backbone.swin.window_size=3
      --set model.backbone.swin.drop_path_rate=0.5 --set solver.max_iter=20 --set checkpoint.period=10)
cluster/launch.sh -n 2 -- train "${common[@]}" "${swin[@]}" --output "$tmp/swin" >"$tmp/swin.log" 2>&1
cluster/launch.sh -n 2 -- train "${common[@]}" "${swin[@]}" --output "$tmp/swin-split" --iterations 10 >"$tmp/swin1.log" 2>&1
cluster/launch.sh -n 2 -- train "${common[@]}" "${swin[@]}" --output "$tmp/swin-split" --resume >"$tmp/swin2.log" 2>&1
cluster/launch.sh -n 2 -- train "${common[@]}" "${swin[@]}" --set model.backbone.swin.drop_path_rate=0 --output "$tmp/swin-nodrop" >"$tmp/swin0.log" 2>&1
if "$bin" checkpoint diff "$tmp/swin/model_final.h5" "$tmp/swin-split/model_final.h5" 2>&1 | grep -q "tensors: all identical" \
   && ! "$bin" checkpoint diff "$tmp/swin/model_final.h5" "$tmp/swin-nodrop/model_final.h5" 2>&1 | grep -q "tensors: all identical"; then
  ok "Swin with drop path 0.5: 10 + resume + 10 steps == 20 steps, bitwise (and differs from drop path 0)"
else
  bad "Swin resume" "$(tail -n 2 "$tmp/swin.log" "$tmp/swin2.log"; "$bin" checkpoint diff "$tmp/swin/model_final.h5" "$tmp/swin-split/model_final.h5" 2>&1 | tail -3)"
fi
# 7. A stop during a periodic evaluation (the checkpoint comes first, so the resume starts after it): the resumed run
#    evaluates that step before training on; a resume whose evaluation finished does not repeat it.
evalrun=("${common[@]}" --set solver.max_iter=30 --set checkpoint.period=10 --set eval.period=10 --set eval.max_images=4
         --set eval.split=train2017)
cluster/launch.sh -n 2 -- train "${evalrun[@]}" --output "$tmp/evalstop" --iterations 10 >"$tmp/evalstop1.log" 2>&1
grep -v '^{"eval":.*"step":10[,}]' "$tmp/evalstop/metrics.jsonl" > "$tmp/m" && mv "$tmp/m" "$tmp/evalstop/metrics.jsonl"
cluster/launch.sh -n 2 -- train "${evalrun[@]}" --output "$tmp/evalstop" --iterations 10 --resume >"$tmp/evalstop2.log" 2>&1
cluster/launch.sh -n 2 -- train "${evalrun[@]}" --output "$tmp/evalstop" --resume >"$tmp/evalstop3.log" 2>&1
steps=$(grep -o '^{"eval":.*"step":[0-9]*' "$tmp/evalstop/metrics.jsonl" | grep -o '[0-9]*$' | tr '\n' ' ')
order=$(grep -o '"step":[0-9]*' "$tmp/evalstop/metrics.jsonl" | sed -n '10,12p' | tr '\n' ' ')
if [ "$steps" = "10 20 30 " ] && grep -q "did not finish before the stop" "$tmp/evalstop2.log" \
   && ! grep -q "did not finish before the stop" "$tmp/evalstop3.log" && [ "$order" = '"step":10 "step":10 "step":11 ' ]; then
  ok "a stop during an evaluation: the resume evaluates that step first, once"
else
  bad "evaluation after a stop" "evaluations at '$steps', lines 10-12 '$order'; $(tail -2 "$tmp/evalstop2.log")"
fi
echo "resume: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
