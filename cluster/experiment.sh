#!/usr/bin/env bash
# The MP-Former vs Mask2Former experiment (docs/evaluation.md; report in docs/experiments/synthetic/report.md): synthesize a COCO-instance dataset (train + held-out val),
# train Mask2Former (mask piloting off) and MP-Former (on) from the same initialization, with the same data order
# and budget, for several seeds, evaluate each on the held-out split (COCO mask AP + layer consistency), draw
# prediction overlays, and write the report with plots drawn by MaskPilot.
#
#   cluster/experiment.sh [--steps N] [--seeds "1 2 3"] [--ranks R] [--out DIR] [--report DIR] [--hostfile H]
#                         [--train-images N] [--val-images N] [--size WxH] [--difficulty standard|hard]
#                         [-- extra train --set options…]
#
# Defaults (`make experiment`): 3 seeds × 2 models × 2000 steps on 2 ranks, 512 train / 128 val images of 128×128;
# about 30 minutes on a 2-core machine. Bigger budgets: more --steps, --ranks and a --hostfile. Finished runs
# (those with eval/results.json) are kept, so an interrupted experiment continues where it stopped; delete
# --out to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MASKPILOT_BIN:-.build/release/maskpilot}
steps=2000; seeds="1 2 3"; ranks=2; out=checkpoints/experiment; report=docs/experiments/synthetic; hostfile=""
train_images=512; val_images=128; size=128x128; difficulty=standard; extra=()
invocation=cluster/experiment.sh
[ $# -gt 0 ] && invocation+=$(printf ' %q' "$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --hostfile) hostfile=$2; shift 2 ;;
    --train-images) train_images=$2; shift 2 ;;
    --val-images) val_images=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --difficulty) difficulty=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "experiment.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
seeds=${seeds//,/ }
config=configs/experiment-synthetic.yaml
data=$out/data
launch=(cluster/launch.sh -n "$ranks")
[ -n "$hostfile" ] && launch+=(--hostfile "$hostfile")
period=$(( steps / 8 > 0 ? steps / 8 : 1 ))
start=$(date +%s); trained=0
mkdir -p "$out"
echo "experiment: $seeds seeds × {mask2former, mpformer} × $steps steps on $ranks rank(s); runs in $out, report in $report"

if [ ! -f "$data/annotations/instances_val2017.json" ]; then
  "$bin" data synth --format coco-instance --out "$data" --split train2017 --images "$train_images" --size "$size" --seed 11 --difficulty "$difficulty"
  "$bin" data synth --format coco-instance --out "$data" --split val2017 --images "$val_images" --size "$size" --seed 12 --difficulty "$difficulty"
fi

for seed in $seeds; do
  for model in mask2former mpformer; do
    run=$out/$model-seed$seed
    if [ -f "$run/eval/results.json" ]; then echo "experiment: $run done, kept"; continue; fi
    rm -rf "$run"
    mp=true; [ $model = mask2former ] && mp=false
    sets=(--set data.root="$data" --set seed="$seed" --set solver.max_iter="$steps" --set eval.period="$period"
          --set model.mask_piloting.enabled=$mp "${extra[@]}")
    echo "experiment: training $run"
    t0=$(date +%s)
    MASKPILOT_PROGRESS=plain "${launch[@]}" -- train --config "$config" "${sets[@]}" --output "$run" > "$out/$model-seed$seed.log" 2>&1 \
      || { echo "experiment: training $run failed; see $out/$model-seed$seed.log" >&2; tail -5 "$out/$model-seed$seed.log" >&2; exit 1; }
    echo $(( $(date +%s) - t0 )) > "$run/train_seconds"
    t1=$(date +%s)
    MASKPILOT_PROGRESS=plain "${launch[@]}" -- eval --config "$config" "${sets[@]}" --weights "$run/model_final.h5" --output "$run/eval" \
      > "$run/eval.log" 2>&1 || { echo "experiment: evaluating $run failed; see $run/eval.log" >&2; exit 1; }
    echo $(( $(date +%s) - t1 )) > "$run/eval_seconds"
    trained=$(( trained + $(date +%s) - t0 ))
    grep -E '^AP +' "$run/eval.log" | sed "s|^|experiment: $model seed $seed: |"
  done
done

# Prediction overlays of the first seed's two models on the first held-out images.
first=${seeds%% *}
mkdir -p "$report/overlays"
images=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(sys.argv[2] + "/val2017/" + i["file_name"] for i in d["images"][:4]))' \
  "$data/annotations/instances_val2017.json" "$data")
for model in mask2former mpformer; do
  mp=true; [ $model = mask2former ] && mp=false
  # shellcheck disable=SC2086
  "$bin" predict --config "$config" --set data.root="$data" --set model.mask_piloting.enabled=$mp "${extra[@]}" \
    --weights "$out/$model-seed$first/model_final.h5" --input $images --output "$report/overlays/$model" > "$out/predict-$model.log"
done

# Wall time of the whole experiment, also when it was continued: this invocation's time outside the runs it trained,
# plus every run's training and evaluation seconds.
runs_seconds=0
for seed in $seeds; do for model in mask2former mpformer; do
  for f in train_seconds eval_seconds; do
    [ -f "$out/$model-seed$seed/$f" ] && runs_seconds=$(( runs_seconds + $(cat "$out/$model-seed$seed/$f") ))
  done
done; done
wall=$(( $(date +%s) - start - trained + runs_seconds ))
"$bin" experiment-report --runs "$out" --seeds "$seeds" --output "$report" --steps "$steps" --ranks "$ranks" \
  --wall-seconds "$wall" --command "$invocation"
echo "experiment: $(( wall / 60 )) min of runs and reporting; report: $report/report.md"
