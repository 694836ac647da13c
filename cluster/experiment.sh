#!/usr/bin/env bash
# The MP-Former vs Mask2Former experiments: synthesize a COCO-instance dataset (train + held-out val), train the
# arms (Mask2Former, MP-Former and its variants) from the same initialization, with the same data order and budget,
# for several seeds, evaluate each on the held-out split (COCO mask AP + layer consistency), draw prediction
# overlays, and write the report with plots drawn by MaskPilot.
#
#   cluster/experiment.sh [--preset synthetic|powered] [--steps N] [--seeds "1 2 3"] [--arms "mask2former mpformer …"]
#                         [--ranks R] [--out DIR] [--report DIR] [--hostfile H] [--train-images N] [--val-images N]
#                         [--size WxH] [--difficulty standard|hard] [--classes N] [--init-steps N] [--eval-period N]
#                         [--runs-only] [-- extra train --set options…]
#
# Presets (every option after --preset overrides it):
# - synthetic (default, `make experiment`; report docs/experiments/synthetic): configs/experiment-synthetic.yaml,
#   3 seeds × {mask2former, mpformer} × 2000 steps on 2 ranks, 512 train / 128 val images of 128×128, 5 classes,
#   random initialization; about 30 minutes on a 2-core machine.
# - powered (issue 18; report docs/experiments/powered): configs/experiment-powered.yaml, 1024 train / 512 val
#   cluttered images of 256×256 with 24 classes in look-alike pairs; first a Mask2Former trained from scratch in fp32
#   for --init-steps (1000, seed 1) whose backbone and pixel decoder initialize every arm (the transformer decoder
#   keeps each seed's random initialization); then 5 seeds (11–15) × 4 arms × 1500 steps in bf16, evaluated every
#   250 steps. About 30–40 minutes per run on 2 cores with native bf16 (AVX-512), about 55 where bf16 is emulated
#   (AVX2 only): 10 to 18 hours in all, so it is resumable across sessions and machines (see below).
#
# Arms: mask2former (mask piloting off), mpformer (on, the released setting: all layers), mpformer-first4 (mask
# piloting in the first layers only: model.mask_piloting.all_layers=false), mpformer-halfmp (the MP losses at half
# weight: model.mask_piloting.loss_weight=0.5). Runs go seed by seed, every arm of a seed before the next seed, so a
# partial experiment has complete paired seeds of every comparison.
#
# Records: each finished run's record (config.yaml, metrics.jsonl, eval/results.json, train_seconds, eval_seconds, and
# the CPU it ran on with how it ran bf16) is
# copied to REPORT/runs/<arm>-seed<S>/, which the report reads, and which is small enough to commit: a fresh clone
# continues an experiment from the committed records alone, and anyone can rebuild the report from them
# (`maskpilot experiment-report --runs REPORT/runs …`, the command report.md ends with). The first seed's prediction
# overlays are drawn as soon as its runs are evaluated (REPORT/overlays/<arm>).
# The shared initialization (--init-steps > 0) is trained once: its record holds its backbone and pixel decoder as a
# weights file (`maskpilot checkpoint weights`, 14 MB for the powered model), which every arm starts from, so runs
# made later, on another machine or from a fresh clone, start from the same bits as the recorded ones.
#
# Resuming: recorded runs are kept, and so are finished runs in --out. The powered preset checkpoints at every
# evaluation, so a run that was stopped continues from its last checkpoint (train --resume; on the same kind of CPU
# bitwise the same result, and an evaluation the stop interrupted is run first); the synthetic preset's unfinished
# runs start over. So an interrupted experiment continues where it stopped; delete --out and REPORT/runs to start over.
# --runs-only trains and evaluates what is missing and stops before the report.
set -euo pipefail
# The whole script is one brace group, read before it runs: editing this file while an experiment runs (hours) does
# not change the running one.
{
cd "$(dirname "$0")/.."
bin=${MASKPILOT_BIN:-.build/release/maskpilot}
invocation=cluster/experiment.sh
[ $# -gt 0 ] && invocation+=$(printf ' %q' "$@")

preset=synthetic
for ((k = 1; k <= $#; k++)); do
  if [ "${!k}" = --preset ]; then j=$((k + 1)); preset=${!j:-}; fi
  [ "${!k}" = -- ] && break
done
case "$preset" in
  synthetic)
    config=configs/experiment-synthetic.yaml; steps=2000; seeds="1 2 3"; arms="mask2former mpformer"
    out=checkpoints/experiment; report=docs/experiments/synthetic
    train_images=512; val_images=128; size=128x128; difficulty=standard; classes=5; data_seeds=(11 12)
    init_steps=0; init_seed=1; eval_period="" ;;
  powered)
    config=configs/experiment-powered.yaml; steps=1500; seeds="11 12 13 14 15"
    arms="mask2former mpformer mpformer-first4 mpformer-halfmp"
    out=checkpoints/experiment-powered; report=docs/experiments/powered
    train_images=1024; val_images=512; size=256x256; difficulty=hard; classes=24; data_seeds=(21 22)
    init_steps=1000; init_seed=1; eval_period=250 ;;
  *) echo "experiment.sh: unknown --preset '$preset' (synthetic or powered)" >&2; exit 2 ;;
esac
ranks=2; hostfile=""; runs_only=0; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --preset) shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --arms) arms=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    --hostfile) hostfile=$2; shift 2 ;;
    --train-images) train_images=$2; shift 2 ;;
    --val-images) val_images=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --difficulty) difficulty=$2; shift 2 ;;
    --classes) classes=$2; shift 2 ;;
    --init-steps) init_steps=$2; shift 2 ;;
    --eval-period) eval_period=$2; shift 2 ;;
    --runs-only) runs_only=1; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "experiment.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
seeds=${seeds//,/ }
for n in "$steps" "$ranks" "$init_steps" ${eval_period:+"$eval_period"} "$train_images" "$val_images" "$classes"; do
  case "$n" in ''|*[!0-9]*) echo "experiment.sh: expected a number ≥ 0, got '$n'" >&2; exit 2 ;; esac
done
# The synthesis options in one spelling (data synth reads 0512 as 512 and 128X128 as 128x128).
train_images=$((10#$train_images)); val_images=$((10#$val_images)); classes=$((10#$classes))
size=${size,,}
[ "${eval_period:-1}" -gt 0 ] && [ "$steps" -gt 0 ] || { echo "experiment.sh: --steps and --eval-period must be > 0" >&2; exit 2; }
# The per-arm settings (one place): the train --set options that make an arm.
arm_sets() {
  case "$1" in
    mask2former) echo "model.mask_piloting.enabled=false" ;;
    mpformer) echo "model.mask_piloting.enabled=true" ;;
    mpformer-first4) echo "model.mask_piloting.enabled=true model.mask_piloting.all_layers=false" ;;
    mpformer-halfmp) echo "model.mask_piloting.enabled=true model.mask_piloting.loss_weight=0.5" ;;
    *) echo "experiment.sh: unknown arm '$1' (mask2former, mpformer, mpformer-first4, mpformer-halfmp)" >&2; return 2 ;;
  esac
}
for arm in $arms; do arm_sets "$arm" > /dev/null || exit 2; done
data=$out/data
records=$report/runs
launch=(cluster/launch.sh --bin "$bin" -n "$ranks")
[ -n "$hostfile" ] && launch+=(--hostfile "$hostfile")
[ -n "$eval_period" ] || eval_period=$(( steps / 8 > 0 ? steps / 8 : 1 ))
# With periodic evaluations as the resume points, a stopped run continues; without, it starts over.
resumable=0; [ "$preset" = powered ] && resumable=1
start=$(date +%s); trained=0

# Run order: seed by seed, every arm of a seed before the next seed. Pending: the runs without a record.
order=()
for seed in $seeds; do for arm in $arms; do order+=("$arm:$seed"); done; done
pending=0; recorded=0
for item in "${order[@]}"; do
  if [ -f "$records/${item%%:*}-seed${item##*:}/eval/results.json" ]; then recorded=$((recorded + 1)); else pending=$((pending + 1)); fi
done
# The options the dataset in --out is synthesized with, kept next to it (a file inside would change its fingerprint)
# and written before it is: a variant (--difficulty, --size, …) run with the default --out would otherwise reuse the
# first dataset silently. Checked before anything is written.
synth=(--size "$size" --difficulty "$difficulty" --classes "$classes")
synthesis="train $train_images val $val_images ${synth[*]} seeds ${data_seeds[*]}"
if [ $pending -gt 0 ] && [ -f "$data/annotations/instances_val2017.json" ]; then
  if [ ! -f "$out/data.synthesis" ]; then
    echo "experiment: warning: $data holds a dataset whose synthesis options were not recorded (made before they were);" \
      "it is used as it is (the records' fingerprint still has to match)" >&2
  elif [ "$(cat "$out/data.synthesis")" != "$synthesis" ]; then
    echo "experiment: $data was synthesized with ($(cat "$out/data.synthesis")), this run asks for ($synthesis):" \
      "give a variant its own --out and --report, or delete $data" >&2; exit 1
  fi
fi
# Recorded runs started from the recorded initialization: without it, no further run can be paired with them.
if [ "$init_steps" -gt 0 ] && [ $recorded -gt 0 ] && [ $pending -gt 0 ] && [ ! -f "$records/init/weights.h5" ]; then
  echo "experiment: runs are recorded in $records but not the initialization they started from ($records/init/weights.h5):" \
    "restore it (git checkout), or delete $records to start over" >&2; exit 1
fi
mkdir -p "$out" "$records"
echo "experiment ($preset): seeds $seeds × {$arms} × $steps steps on $ranks rank(s); runs in $out, records and report in $report"

# record RUN NAME: copies what the report reads of a run (the init: also its weights) to $records/NAME, atomically.
record() {
  local run=$1 dest=$records/$2 f
  rm -rf "$dest.tmp" && mkdir -p "$dest.tmp/eval"
  cp "$run/config.yaml" "$run/metrics.jsonl" "$dest.tmp/"
  for f in eval/results.json train_seconds eval_seconds weights.h5 model_digest source; do
    if [ -f "$run/$f" ]; then cp "$run/$f" "$dest.tmp/$f"; fi
  done
  # Where it ran: runs made on other CPUs differ in the last bits (and bf16 runs natively only with AVX-512): this
  # machine's CPU and how each invocation of the run said it computed.
  { awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true
    grep -h '^precision:' "$out/$2.log" 2>/dev/null | sort -u || true; } > "$dest.tmp/machine"
  rm -rf "$dest" && mv "$dest.tmp" "$dest"
}

if [ $pending -gt 0 ] && [ ! -f "$data/annotations/instances_val2017.json" ]; then
  echo "$synthesis" > "$out/data.synthesis"
  "$bin" data synth --format coco-instance --out "$data" --split train2017 --images "$train_images" --seed "${data_seeds[0]}" "${synth[@]}"
  "$bin" data synth --format coco-instance --out "$data" --split val2017 --images "$val_images" --seed "${data_seeds[1]}" "${synth[@]}"
fi
# The dataset's counts next to the records, for the report (which then needs no dataset), and its fingerprint
# (SHA-256 over every file's path and bytes): a dataset synthesized again for further runs must be the same one.
if [ $pending -gt 0 ] && [ -f "$data/annotations/instances_val2017.json" ]; then
  python3 -c 'import hashlib, json, os, sys
data, path = sys.argv[1], sys.argv[2]
counts = {}
for split in ("train2017", "val2017"):
    d = json.load(open(data + "/annotations/instances_" + split + ".json"))
    counts[split] = {k: len(d[k]) for k in ("images", "annotations", "categories")}
h = hashlib.sha256()
for root, dirs, files in sorted(os.walk(data)):
    dirs.sort()
    for f in sorted(files):
        name = os.path.join(root, f)
        h.update(os.path.relpath(name, data).encode() + b"\0")
        h.update(open(name, "rb").read())
counts["fingerprint"] = h.hexdigest()
recorded = json.load(open(path)) if os.path.exists(path) else None
if recorded is not None and recorded.get("fingerprint", counts["fingerprint"]) != counts["fingerprint"]:
    sys.exit("experiment: the dataset in %s (fingerprint %s) is not the one the runs in %s were made on (%s); "
             "synthesize it with the recorded options, or delete the records to start over"
             % (data, counts["fingerprint"][:16], os.path.dirname(path), recorded["fingerprint"][:16]))
if recorded != counts:
    json.dump(counts, open(path, "w"), indent=1, sort_keys=True)' "$data" "$records/dataset.json"
fi

# train RUN LOG SET… : trains one run (resuming it when resumable) and records its training seconds.
train_run() {
  local run=$1 log=$2; shift 2
  local sets=() s t0 mode=(--resume)
  for s in "$@"; do sets+=(--set "$s"); done
  if [ $resumable -eq 0 ] || [ ! -f "$run/config.yaml" ]; then rm -rf "$run"; mode=(); fi
  [ $resumable -eq 1 ] && sets+=(--set checkpoint.period="$eval_period" --set checkpoint.keep=1)
  echo "experiment: training $run"
  t0=$(date +%s)
  MASKPILOT_PROGRESS=plain "${launch[@]}" -- train --config "$config" "${sets[@]}" "${extra[@]}" "${mode[@]}" --output "$run" \
    >> "$log" 2>&1 \
    || { echo "experiment: training $run failed; see $log" >&2; tail -5 "$log" >&2; exit 1; }
  [ -f "$run/model_final.h5" ] || { echo "experiment: $run stopped before its last step; run the same command again to continue" >&2; exit 1; }
  # The seconds of the invocation that finished the run (a stopped one's are not known here; the powered report
  # counts each run's compute from its log instead, and the wall time below leaves stopped invocations out).
  echo $(( $(date +%s) - t0 )) > "$run/train_seconds"
  trained=$(( trained + $(date +%s) - t0 ))
}

common=(data.root="$data" eval.period="$eval_period")

init_sets=()
if [ "$init_steps" -gt 0 ]; then
  # The arms start from the recorded weights file (backbone + pixel decoder), the same bits on every machine.
  weights=$records/init/weights.h5
  if [ -f "$weights" ]; then echo "experiment: the shared initialization is recorded ($weights), kept"
  elif [ $pending -gt 0 ]; then
    init=$out/init
    if [ -f "$init/model_final.h5" ] && [ -f "$init/train_seconds" ]; then echo "experiment: $init done, kept"; else
      # fp32, as the design's pre-check trained it (docs/experiments/powered/precheck.md); the arms run the config's precision.
      train_run "$init" "$out/init.log" "${common[@]}" seed="$init_seed" solver.max_iter="$init_steps" model.mask_piloting.enabled=false \
        solver.precision=fp32
    fi
    "$bin" checkpoint weights "$init/model_final.h5" --only 'backbone.*' --only 'sem_seg_head.pixel_decoder.*' --output "$init/weights.h5" \
      > "$init/weights.log" || { echo "experiment: extracting the initialization's weights failed; see $init/weights.log" >&2; exit 1; }
    sed -n 's/.*model digest: //p' "$init/weights.log" > "$init/model_digest"
    # The source tree the experiment started from (with the default binary, what built it).
    git describe --always --dirty --abbrev=12 > "$init/source" 2>/dev/null || echo unknown > "$init/source"
    record "$init" init
    echo "experiment: recorded the shared initialization $weights (model digest $(cat "$init/model_digest"))"
  fi
  init_sets=(model.weights="$weights")
fi

first=${seeds%% *}
images=""
for item in "${order[@]}"; do
  arm=${item%%:*}; seed=${item##*:}
  name=$arm-seed$seed; run=$out/$name
  if [ -f "$records/$name/eval/results.json" ]; then echo "experiment: $name recorded in $records, kept"; continue; fi
  if [ -f "$run/eval/results.json" ]; then
    # A finished run found in --out is recorded only if it started from the recorded initialization.
    if [ "$init_steps" -gt 0 ] && ! grep -qF "weights: $weights" "$run/config.yaml"; then
      echo "experiment: $run did not start from the recorded initialization $weights (its config.yaml:" \
        "$(grep -m1 '^  weights:' "$run/config.yaml" || echo 'no model.weights')); delete it to train it again" >&2; exit 1
    fi
    echo "experiment: $run done, kept"
  else
    # shellcheck disable=SC2046
    sets=("${common[@]}" seed="$seed" solver.max_iter="$steps" "${init_sets[@]}" $(arm_sets "$arm"))
    [ -f "$run/model_final.h5" ] || train_run "$run" "$out/$name.log" "${sets[@]}"
    evalsets=(); for s in "${sets[@]}"; do evalsets+=(--set "$s"); done
    t1=$(date +%s)
    MASKPILOT_PROGRESS=plain "${launch[@]}" -- eval --config "$config" "${evalsets[@]}" "${extra[@]}" --weights "$run/model_final.h5" --output "$run/eval" \
      > "$run/eval.log" 2>&1 || { echo "experiment: evaluating $run failed; see $run/eval.log" >&2; exit 1; }
    echo $(( $(date +%s) - t1 )) > "$run/eval_seconds"
    trained=$(( trained + $(date +%s) - t1 ))
    { grep -E '^AP +' "$run/eval.log" || true; } | sed "s|^|experiment: $arm seed $seed: |"
  fi
  # The first seed's prediction overlays on the first held-out images.
  if [ "$seed" = "$first" ]; then
    [ -n "$images" ] || images=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(" ".join(sys.argv[2] + "/val2017/" + i["file_name"] for i in d["images"][:4]))' \
      "$data/annotations/instances_val2017.json" "$data")
    sets=(); for s in data.root="$data" $(arm_sets "$arm"); do sets+=(--set "$s"); done
    mkdir -p "$report/overlays"
    # shellcheck disable=SC2086
    "$bin" predict --config "$config" "${sets[@]}" "${extra[@]}" --weights "$run/model_final.h5" \
      --input $images --output "$report/overlays/$arm" > "$out/predict-$arm.log" \
      || { echo "experiment: drawing the overlays of $run failed; see $out/predict-$arm.log" >&2; exit 1; }
    # The report shows the overlays only (predict also writes raw label PNGs and JSON).
    find "$report/overlays/$arm" -type f ! -name '*_overlay.png' -delete
  fi
  record "$run" "$name"
done
[ $runs_only -eq 1 ] && { echo "experiment: runs done (--runs-only: no report)"; exit 0; }

# Wall time of the whole experiment, also when it was continued: this invocation's time outside the runs it trained,
# plus every recorded run's training and evaluation seconds.
runs_seconds=0
for run in "$records"/init $(for seed in $seeds; do for arm in $arms; do echo "$records/$arm-seed$seed"; done; done); do
  for f in train_seconds eval_seconds; do
    [ -f "$run/$f" ] && runs_seconds=$(( runs_seconds + $(cat "$run/$f") ))
  done
done
wall=$(( $(date +%s) - start - trained + runs_seconds ))
# The two-arm report for the synthetic design, else the paired-arms report (convergence, test, gradient diagnostics).
report_arms=(); [ "$preset" = synthetic ] && [ "$arms" = "mask2former mpformer" ] || report_arms=(--arms "$arms")
"$bin" experiment-report --runs "$records" --seeds "$seeds" "${report_arms[@]}" --output "$report" --steps "$steps" --ranks "$ranks" \
  --wall-seconds "$wall" --command "$invocation"
echo "experiment: $(( wall / 60 )) min of runs and reporting; report: $report/report.md"
exit 0
}
