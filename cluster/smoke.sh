#!/usr/bin/env bash
# The one-command demo behind `make smoke`: synthesize a small COCO-instance dataset, train MP-Former
# (configs/smoke.yaml, tiny model) with 2 MPI ranks for 200 steps (checkpoint every 100), resume from the
# last checkpoint to step 300, evaluating on a held-out split every 100 steps, and show the loss going down,
# the AP going up and where the outputs are.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/maskpilot
data=checkpoints/smoke-data
out=checkpoints/smoke
if [ ! -f "$data/annotations/instances_train2017.json" ]; then
  "$bin" data synth --format coco-instance --out "$data" --images 64 --size 96x96 --seed 1
fi
if [ ! -f "$data/annotations/instances_val2017.json" ]; then
  "$bin" data synth --format coco-instance --out "$data" --split val2017 --images 16 --size 96x96 --seed 2
fi
# Evaluate on the held-out split every 100 steps (COCO mask AP and layer consistency, in metrics.jsonl and tb/).
evals=(--set data.test_split=val2017 --set eval.period=100)
rm -rf "$out"
start=$(date +%s)
cluster/launch.sh -n 2 -- train --config configs/smoke.yaml "${evals[@]}" --output "$out" --iterations 200
echo
echo "smoke: resuming from $(cat "$out/last_checkpoint")"
cluster/launch.sh -n 2 -- train --config configs/smoke.yaml "${evals[@]}" --output "$out" --resume
echo
echo "smoke: $(( $(date +%s) - start )) s; first and last logged steps:"
head -n 1 "$out/metrics.jsonl" | grep -o '"step":[0-9]*\|"total":[0-9.e+-]*' | tr '\n' ' '; echo
grep -v '"eval":' "$out/metrics.jsonl" | tail -n 1 | grep -o '"step":[0-9]*\|"total":[0-9.e+-]*' | tr '\n' ' '; echo
echo "held-out COCO mask AP by step: $(grep '"eval":' "$out/metrics.jsonl" | sed -E 's/.*"AP":([0-9.]+).*"step":([0-9]+).*/\2: \1/' | awk -F': ' '{ printf "%s%s: %.1f", sep, $1, $2; sep=", " }')"
echo "outputs: $out/config.yaml, $out/metrics.jsonl, $out/tb/, checkpoints $(ls "$out" | grep '\.h5$' | tr '\n' ' ')"
