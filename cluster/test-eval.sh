#!/usr/bin/env bash
# `maskpilot eval` tests run by `make test`: a tiny synthetic COCO-instance split, a 2-step smoke training for
# weights, then eval with 2 ranks and with 1 rank — both must succeed, write results.json with "AP", and agree
# on the metrics (sharding must not change the numbers).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/maskpilot
tmp=$(mktemp -d /tmp/maskpilot-eval-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { echo "eval test: $1: ok"; passed=$((passed + 1)); }
bad() { echo "eval test: $1: FAILED — $2"; failed=$((failed + 1)); }
finish() { echo "eval: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

export OPENBLAS_NUM_THREADS=1
if ! "$bin" data synth --format coco-instance --out "$tmp/data" --split val2017 --images 4 --size 96x96 --seed 7 >"$tmp/synth.log" 2>&1; then
  bad "synthesizing the dataset" "$(tail -3 "$tmp/synth.log")"; finish
fi
common=(--config configs/smoke.yaml --set data.root="$tmp/data" --set data.train_split=val2017 --set data.test_split=val2017)
if "$bin" train "${common[@]}" --set solver.max_iter=2 --set checkpoint.period=0 --output "$tmp/run" >"$tmp/train.log" 2>&1 \
   && [ -f "$tmp/run/model_final.h5" ]; then
  ok "2-step training wrote $tmp/run/model_final.h5"
else
  bad "training" "$(tail -3 "$tmp/train.log")"; finish
fi

ap() { python3 -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))["AP"]))' "$1" 2>/dev/null; }
for n in 2 1; do
  if cluster/launch.sh -n $n -- eval "${common[@]}" --weights "$tmp/run/model_final.h5" --output "$tmp/eval$n" >"$tmp/eval$n.log" 2>&1; then
    ok "eval with $n rank(s) exits 0"
  else
    bad "eval with $n rank(s)" "$(tail -5 "$tmp/eval$n.log")"; continue
  fi
  if [ -f "$tmp/eval$n/results.json" ] && grep -q '"AP"' "$tmp/eval$n/results.json"; then
    ok "eval with $n rank(s) wrote results.json with AP = $(ap "$tmp/eval$n/results.json")"
  else
    bad "results.json ($n ranks)" "missing or without an \"AP\" key"
  fi
  if [ -f "$tmp/eval$n/coco_instances_results.json" ]; then
    ok "eval with $n rank(s) wrote coco_instances_results.json"
  else
    bad "coco_instances_results.json ($n ranks)" "missing"
  fi
done
if grep -q "img/s" "$tmp/eval2.log" 2>/dev/null; then ok "progress line (images/s, ETA) shown"; else bad "progress line" "no img/s in the log"; fi
a2=$(grep '"AP' "$tmp/eval2/results.json" 2>/dev/null | sort); a1=$(grep '"AP' "$tmp/eval1/results.json" 2>/dev/null | sort)
if [ -n "$a2" ] && [ "$a2" = "$a1" ]; then
  ok "AP/AR identical with 2 ranks and 1 rank"
else
  bad "metrics depend on the world size" "2 ranks: $(echo $a2) / 1 rank: $(echo $a1)"
fi
if [ -f "$tmp/eval1/coco_instances_results.json" ] && cmp -s "$tmp/eval1/coco_instances_results.json" "$tmp/eval2/coco_instances_results.json"; then
  ok "coco_instances_results.json byte-identical with 2 ranks and 1 rank ($(grep -o '"image_id"' "$tmp/eval1/coco_instances_results.json" | wc -l) detections)"
else
  bad "detections depend on the world size" "coco_instances_results.json differs between 2 ranks and 1 rank"
fi
# The configuration from the weights (detectron2's OUTPUT/config.yaml, HF's self-describing weights): eval without
# --config on the checkpoint, on the run folder and on `checkpoint weights` output gives the same numbers as with it;
# a --config whose model differs from the stored one is named; a weights file without a configuration needs --config.
"$bin" checkpoint weights "$tmp/run/model_final.h5" --output "$tmp/stripped.h5" >/dev/null 2>&1
"$bin" checkpoint weights "$tmp/run/model_final.h5" --output "$tmp/partial.h5" --only 'backbone.*' >/dev/null 2>&1
stored_ok=1
for w in "$tmp/run/model_final.h5" "$tmp/run" "$tmp/stripped.h5"; do
  "$bin" eval --weights "$w" --set data.root="$tmp/data" --output "$tmp/stored" >"$tmp/stored.log" 2>&1 \
    && [ "$(grep '"AP' "$tmp/stored/results.json" | sort)" = "$a1" ] || { stored_ok=0; echo "  $w: $(tail -2 "$tmp/stored.log")"; }
done
"$bin" eval "${common[@]}" --set model.pixel_mean=[0,0,0] --weights "$tmp/run/model_final.h5" --max-images 1 >"$tmp/differs.log" 2>&1; d=$?
"$bin" eval --weights "$tmp/partial.h5" --set data.root="$tmp/data" >"$tmp/noconfig.log" 2>&1; n=$?
if [ $stored_ok -eq 1 ] && [ $d -eq 0 ] && grep -q "warning: --config differs from the configuration stored in $tmp/run/model_final.h5 in model.pixel_mean" "$tmp/differs.log" \
   && [ $n -eq 1 ] && grep -q "\-\-weights $tmp/partial.h5 holds no MaskPilot configuration .*give the configuration it was trained with as --config" "$tmp/noconfig.log"; then
  ok "eval without --config uses the weights' stored configuration (checkpoint, run folder, checkpoint weights output: the same AP); a differing --config is named; a file without one needs --config"
else
  bad "configuration from the weights" "differs exit $d, no-config exit $n: $(tail -n 2 "$tmp/differs.log" "$tmp/noconfig.log")"
fi
# bf16: a run trained with solver.precision=bf16 writes the same fp32 checkpoint layout, which evaluates in either
# precision (checkpoints are interchangeable between precisions).
if "$bin" train "${common[@]}" --set solver.max_iter=2 --set checkpoint.period=0 --set solver.precision=bf16 --output "$tmp/run16" \
     >"$tmp/train16.log" 2>&1 && grep -q "precision: bf16" "$tmp/train16.log"; then
  fp32bytes=$("$bin" checkpoint inspect "$tmp/run/model_final.h5" | grep '^/model:')
  bf16bytes=$("$bin" checkpoint inspect "$tmp/run16/model_final.h5" | grep '^/model:')
  if [ -n "$fp32bytes" ] && [ "$fp32bytes" = "$bf16bytes" ]; then
    ok "bf16 training writes the fp32 checkpoint layout ($bf16bytes)"
  else
    bad "bf16 checkpoint" "fp32 run: $fp32bytes / bf16 run: $bf16bytes"
  fi
  for p in fp32 bf16; do
    if "$bin" eval "${common[@]}" --weights "$tmp/run16/model_final.h5" --precision $p --output "$tmp/eval16$p" >"$tmp/eval16$p.log" 2>&1 \
       && grep -q '"AP"' "$tmp/eval16$p/results.json" && grep -q ", $p\$" "$tmp/eval16$p.log"; then
      ok "the bf16-trained checkpoint evaluates with --precision $p (AP = $(ap "$tmp/eval16$p/results.json"))"
    else
      bad "eval --precision $p of the bf16 checkpoint" "$(tail -3 "$tmp/eval16$p.log")"
    fi
  done
else
  bad "training in bf16" "$(tail -3 "$tmp/train16.log")"
fi
# Layer consistency: the same counts, and ratios equal to 12 digits (the IoU sums add in another order).
lc() { python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))["layer_consistency"]["layers"]
print(json.dumps([{k: (round(v, 12) if isinstance(v, float) else v) for k, v in r.items()} for r in rows], sort_keys=True))' "$1" 2>/dev/null; }
l2=$(lc "$tmp/eval2/results.json"); l1=$(lc "$tmp/eval1/results.json")
if [ -n "$l2" ] && [ "$l2" = "$l1" ] && echo "$l1" | grep -q '"util"'; then
  ok "layer-consistency table (mIoU-L_i, Util_i) in results.json, identical with 2 ranks and 1 rank"
else
  bad "layer consistency" "2 ranks: $l2 / 1 rank: $l1"
fi

# COCO mask AP equals the COCO API's (pycocotools COCOeval) on the same results: tools/check_coco_ap.py on the model's
# results and on detections synthesized from the ground truth (shifted, eroded, wrong-class, duplicate, missed).
if ! python3 -c "import pycocotools" 2>/dev/null; then
  echo "eval test: pycocotools not importable; installing it from PyPI (pip install --quiet pycocotools)"
  python3 -m pip install --quiet pycocotools >"$tmp/pip.log" 2>&1 || cat "$tmp/pip.log"
fi
"$bin" data synth --format coco-instance --out "$tmp/ap-data" --split ap2017 --images 40 --size 96x96 --seed 9 >/dev/null 2>&1
for results in model synthesized; do
  args=(--root "$tmp/ap-data" --split ap2017 --maskpilot "$bin" --require)
  [ $results = model ] && args=(--root "$tmp/data" --split val2017 --results "$tmp/eval1/coco_instances_results.json" --maskpilot "$bin" --require)
  if python3 tools/check_coco_ap.py "${args[@]}" >"$tmp/check-ap-$results.log" 2>&1; then
    ok "COCO mask AP equals pycocotools' ($results detections): $(tail -1 "$tmp/check-ap-$results.log")"
  else
    bad "COCO mask AP vs pycocotools ($results detections)" "$(tail -4 "$tmp/check-ap-$results.log")"
  fi
done

# Undefined COCO metrics (no ground truth in an area range: COCOeval's -1) are NaN in results.json, never -100.
undefined=$(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
bad = [n for n in names if not (r[n] == "nan" or (isinstance(r[n], (int, float)) and 0 <= r[n] <= 100))]
print("bad: %s" % bad if bad else " ".join(n for n in names if r[n] == "nan"))' "$tmp/eval1/results.json" 2>&1)
if [ -n "$undefined" ] && [[ $undefined != bad* ]] && [[ $undefined != *Error* ]]; then
  ok "undefined COCO metrics are NaN in results.json ($undefined), defined ones within 0…100"
else
  bad "undefined COCO metrics" "'$undefined' (96×96 images have no large objects, so APl must be nan)"
fi

# eval-results takes the annotation file itself, as pycocotools users pass it, and gives the same numbers as the root.
"$bin" eval-results --task instance --gt "$tmp/data" --split val2017 --results "$tmp/eval1/coco_instances_results.json" >"$tmp/er-root.log" 2>&1
if "$bin" eval-results --task instance --gt "$tmp/data/annotations/instances_val2017.json" --results "$tmp/eval1/coco_instances_results.json" \
     >"$tmp/er-file.log" 2>&1 && grep -q '^AP ' "$tmp/er-file.log" \
   && diff <(grep -E '^A[PR]' "$tmp/er-root.log") <(grep -E '^A[PR]' "$tmp/er-file.log") >/dev/null; then
  ok "eval-results --gt instances_val2017.json equals --gt ROOT --split val2017"
else
  bad "eval-results with an annotation file" "$(tail -3 "$tmp/er-file.log")"
fi

# eval-results refuses results that do not fit the ground truth, naming the result: a mask of another size, an unknown
# category, a score that is no confidence (outside 0…1).
for fault in size category score; do
  python3 - "$tmp/eval1/coco_instances_results.json" "$tmp/bad-$fault.json" "$fault" <<'PY'
import json, sys
results = json.load(open(sys.argv[1])); r = results[0]; fault = sys.argv[3]
if fault == "size": r["segmentation"] = {"size": [r["segmentation"]["size"][0] + 1, r["segmentation"]["size"][1]], "counts": "0"}
if fault == "category": r["category_id"] = 999
text = json.dumps(results)
if fault == "score": text = text.replace('"score": %s' % json.dumps(r["score"]), '"score": 1e30', 1)
open(sys.argv[2], "w").write(text)
PY
  "$bin" eval-results --task instance --gt "$tmp/data/annotations/instances_val2017.json" --results "$tmp/bad-$fault.json" >"$tmp/bad-$fault.log" 2>&1; code=$?
  if [ "$code" -eq 1 ] && grep -q "bad-$fault.json: result 0" "$tmp/bad-$fault.log"; then
    ok "eval-results refuses a result with a wrong $fault, naming result 0"
  else
    bad "eval-results with a wrong $fault" "exit $code: $(tail -2 "$tmp/bad-$fault.log")"
  fi
done

# eval --weights DIR: the folder's last_checkpoint; a folder without checkpoints is refused saying what was expected.
if "$bin" eval "${common[@]}" --weights "$tmp/run" --max-images 1 >"$tmp/eval-dir.log" 2>&1 \
   && grep -q "^weights: $tmp/run/model_final.h5: loaded" "$tmp/eval-dir.log"; then
  ok "eval --weights RUN_FOLDER reads the checkpoint its last_checkpoint names"
else
  bad "eval --weights RUN_FOLDER" "$(tail -3 "$tmp/eval-dir.log")"
fi
mkdir -p "$tmp/empty-run"
if "$bin" eval "${common[@]}" --weights "$tmp/empty-run" >"$tmp/eval-empty.log" 2>&1; then
  bad "eval --weights EMPTY_FOLDER" "exited 0"
elif grep -q "is a folder without a last_checkpoint file or model_\*.h5 checkpoints" "$tmp/eval-empty.log" && ! grep -q H5 "$tmp/eval-empty.log"; then
  ok "eval --weights on a folder without checkpoints says what it expected"
else
  bad "eval --weights EMPTY_FOLDER" "$(tail -3 "$tmp/eval-empty.log")"
fi

# --set key value (a space instead of '='): says how to write it, exit 1; a bad --set value names the --set argument.
"$bin" eval "${common[@]}" --weights "$tmp/run" --set eval.max_images 3 >"$tmp/set-space.log" 2>&1; code=$?
if [ "$code" -eq 1 ] && grep -q "write the override as one argument with '=': --set eval.max_images=3" "$tmp/set-space.log"; then
  ok "--set key value is refused saying to write key=value"
else
  bad "--set key value" "exit $code: $(tail -2 "$tmp/set-space.log")"
fi
if ! "$bin" eval "${common[@]}" --weights "$tmp/run" --set eval.max_images=three >"$tmp/set-type.log" 2>&1 \
   && grep -q "^Error: --set eval.max_images=three: 'eval.max_images' must be a whole number, found a string instead" "$tmp/set-type.log"; then
  ok "a --set type error names the --set argument"
else
  bad "--set type error" "$(tail -2 "$tmp/set-type.log")"
fi

# maskpilot predict: an overlay, the raw instance label PNG and the JSON per image; a corrupt image is named.
val=$(ls "$tmp/data/val2017" | head -2 | sed "s|^|$tmp/data/val2017/|")
# shellcheck disable=SC2086
if "$bin" predict "${common[@]}" --weights "$tmp/run/model_final.h5" --input $val --output "$tmp/predict" --score-threshold 0 \
     >"$tmp/predict.log" 2>&1 && [ "$(ls "$tmp/predict" | grep -c '_overlay\.png$')" = 2 ] \
   && [ "$(ls "$tmp/predict" | grep -c '_instances\.png$')" = 2 ] && [ "$(ls "$tmp/predict" | grep -c '\.json$')" = 2 ] \
   && python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); cats = {c["id"] for c in json.load(open(sys.argv[2]))["categories"]}
s = d["segments"][0]
assert d["task"] == "instance" and "score" in s and s["category_id"] in cats, (s, cats)' \
        "$(ls "$tmp"/predict/*.json | head -1)" "$tmp/data/annotations/instances_val2017.json"; then
  ok "predict wrote 2 overlays, 2 instance label PNGs and 2 JSON files (segments carry the dataset's category_id)"
else
  bad "predict" "$(tail -3 "$tmp/predict.log"; ls "$tmp/predict" 2>/dev/null | tr '\n' ' ')"
fi
first=$(echo "$val" | head -n 1)
if "$bin" predict "${common[@]}" --weights "$tmp/run/model_final.h5" --input "$first" --output "$tmp/predict-none" --score-threshold 1.01 \
     >"$tmp/predict-none.log" 2>&1 && grep -q "no instance scores 1.01 or more (--score-threshold); the best scores 0\.[0-9]*" "$tmp/predict-none.log"; then
  ok "predict with a threshold above every score says so and gives the best score"
else
  bad "predict with no segment left" "$(tail -2 "$tmp/predict-none.log")"
fi
# A folder as --input: its images (4 here), without --config (the checkpoint's); a folder without images is named.
mkdir -p "$tmp/no-images" && touch "$tmp/no-images/notes.txt"
if "$bin" predict --weights "$tmp/run/model_final.h5" --input "$tmp/data/val2017" --output "$tmp/predict-folder" \
     >"$tmp/predict-folder.log" 2>&1 && [ "$(ls "$tmp/predict-folder" | grep -c '_overlay\.png$')" = 4 ] \
   && ! "$bin" predict --weights "$tmp/run/model_final.h5" --input "$tmp/no-images" --output "$tmp/predict-empty" >"$tmp/predict-empty.log" 2>&1 \
   && grep -q "\-\-input $tmp/no-images: the folder holds no .jpg, .jpeg or .png file" "$tmp/predict-empty.log"; then
  ok "predict on a folder: its 4 images, with the checkpoint's configuration; a folder without images is named"
else
  bad "predict on a folder" "$(tail -n 2 "$tmp/predict-folder.log" "$tmp/predict-empty.log")"
fi
# The same folder under 2 ranks: each image predicted once (rank i mod 2), the files equal to the 1-rank run's.
if cluster/launch.sh -n 2 -- predict --weights "$tmp/run/model_final.h5" --input "$tmp/data/val2017" --output "$tmp/predict-2" \
     >"$tmp/predict-2.log" 2>&1 && [ "$(grep -c ' segment(s) → ' "$tmp/predict-2.log")" = 4 ] \
   && grep -q "predicted 4 image(s) on 2 rank(s)" "$tmp/predict-2.log" \
   && diff -r "$tmp/predict-folder" "$tmp/predict-2" >/dev/null; then
  ok "predict under 2 ranks shares the images (each once) and writes the same files as 1 rank"
else
  bad "predict with 2 ranks" "$(tail -n 3 "$tmp/predict-2.log"; diff -rq "$tmp/predict-folder" "$tmp/predict-2" | head -3)"
fi
printf 'not a jpeg' > "$tmp/corrupt.jpg"
if "$bin" predict "${common[@]}" --weights "$tmp/run/model_final.h5" --input "$tmp/corrupt.jpg" --output "$tmp/predict-bad" >"$tmp/predict-bad.log" 2>&1; then
  bad "predict on a corrupt image" "exited 0"
elif grep -q "corrupt.jpg" "$tmp/predict-bad.log"; then
  ok "predict on a corrupt image fails naming the file: $(grep -m1 corrupt.jpg "$tmp/predict-bad.log")"
else
  bad "predict on a corrupt image" "error does not name the file: $(tail -2 "$tmp/predict-bad.log")"
fi

# Periodic evaluation during training: eval.period=2 over 4 steps → two "eval" lines in metrics.jsonl and eval/ tags in TensorBoard.
if cluster/launch.sh -n 2 -- train "${common[@]}" --set solver.max_iter=4 --set checkpoint.period=0 --set eval.period=2 \
     --set eval.max_images=3 --output "$tmp/periodic" >"$tmp/periodic.log" 2>&1 \
   && [ "$(grep -c '"eval":{' "$tmp/periodic/metrics.jsonl")" = 2 ] && grep -q '"step":4' <(grep '"eval":{' "$tmp/periodic/metrics.jsonl") \
   && grep -q '"mIoU-L_0"' "$tmp/periodic/metrics.jsonl" && grep -q "eval/AP" -a -r "$tmp/periodic/tb"; then
  ok "eval.period=2: evaluations at steps 2 and 4 in metrics.jsonl and TensorBoard"
else
  bad "periodic evaluation" "$(tail -5 "$tmp/periodic.log"; grep '"eval"' "$tmp/periodic/metrics.jsonl" 2>/dev/null | head -2)"
fi

# eval.best_metric: model_best.h5 holds the evaluation with the highest value, model_best.json says which.
cluster/launch.sh -n 2 -- train "${common[@]}" --set solver.max_iter=60 --set checkpoint.period=0 --set eval.period=10 \
  --set eval.best_metric=AR100 --output "$tmp/best" >"$tmp/best.log" 2>&1
best=$(python3 -c '
import json, sys
evals = [json.loads(l) for l in open(sys.argv[1]) if "\"eval\"" in l]
top = max(evals, key=lambda e: (e["eval"]["AR100"], -e["step"]))
rec = json.load(open(sys.argv[2]))
print("ok" if rec == {"metric": "AR100", "value": top["eval"]["AR100"], "iteration": top["step"]} else "record %s, evaluations %s" % (rec, [(e["step"], e["eval"]["AR100"]) for e in evals]))
' "$tmp/best/metrics.jsonl" "$tmp/best/model_best.json" 2>&1)
if [ "$best" = ok ] && "$bin" eval "${common[@]}" --weights "$tmp/best/model_best.h5" --max-images 1 >"$tmp/best-eval.log" 2>&1; then
  ok "eval.best_metric=AR100: model_best.h5 and model_best.json hold the best of 6 evaluations ($(grep -c '^best:' "$tmp/best.log") replacements)"
else
  bad "eval.best_metric" "$best"
fi
if "$bin" train "${common[@]}" --set eval.period=2 --set eval.best_metric=mIoU --output "$tmp/bad-best" >"$tmp/bad-best.log" 2>&1; then
  bad "eval.best_metric=mIoU on an instance split" "training started"
elif grep -q "eval.best_metric 'mIoU' is not a metric of the instance evaluation; one of: AP, AP50" "$tmp/bad-best.log"; then
  ok "an unknown eval.best_metric is refused listing the metrics"
else
  bad "eval.best_metric=mIoU on an instance split" "$(tail -2 "$tmp/bad-best.log")"
fi

# Panoptic and semantic: eval writes the predictions in the official formats, and `eval-results` scores those files
# to the same numbers eval printed (an independent path: PNG/JSON files instead of in-memory predictions).
metric() { python3 -c 'import json,sys; print("%.2f" % json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" 2>/dev/null; }
# sem-seg is the generic semantic folder layout (classes stored as 0…6, 255 unlabeled), rescored with --num-classes.
for task in panoptic semantic sem-seg; do
  extra=(); rescore=()
  if [ $task = panoptic ]; then
    fmt=coco-panoptic; split=val2017; classes=7
  elif [ $task = semantic ]; then
    fmt=ade20k; split=validation; classes=150
  else
    fmt=sem-seg; split=validation; classes=7; rescore=(--num-classes 7 --classes sky grass "red box" "green disc" "blue wedge" "yellow box" "cyan disc")
    extra=(--set 'data.classes=[sky, grass, red box, green disc, blue wedge, yellow box, cyan disc]')
  fi
  set_task=(--config configs/smoke.yaml --set data.format=$fmt --set data.root="$tmp/$task-data" --set data.train_split=$split
            --set data.test_split=$split --set model.decoder.num_classes=$classes --set input.min_size_test=64
            --set eval.object_mask_threshold=0.3 --set eval.overlap_threshold=0.5 "${extra[@]}")
  if ! "$bin" data synth --format $fmt --out "$tmp/$task-data" --split $split --images 8 --size 96x64 --seed 3 >"$tmp/$task-synth.log" 2>&1 \
     || ! "$bin" train "${set_task[@]}" --set solver.max_iter=60 --set checkpoint.period=0 --output "$tmp/$task-run" >"$tmp/$task-train.log" 2>&1; then
    bad "$task: synthesizing and training" "$(tail -n 3 "$tmp/$task-synth.log" "$tmp/$task-train.log")"; continue
  fi
  if ! cluster/launch.sh -n 2 -- eval "${set_task[@]}" --weights "$tmp/$task-run/model_final.h5" --output "$tmp/$task-eval" >"$tmp/$task-eval.log" 2>&1; then
    bad "$task: eval with 2 ranks" "$(tail -5 "$tmp/$task-eval.log")"; continue
  fi
  if [ $task = panoptic ]; then
    n=$(ls "$tmp/$task-eval/panoptic_predictions" 2>/dev/null | grep -c '\.png$')
    [ "$n" = 8 ] && [ -f "$tmp/$task-eval/panoptic_predictions.json" ] && ok "panoptic: eval wrote panoptic_predictions.json and 8 PNGs" \
      || bad "panoptic: prediction files" "$n PNGs"
    grep -q '"per_class"' "$tmp/$task-eval/results.json" && ok "panoptic: per-class PQ in results.json" || bad "panoptic: per-class PQ" "missing"
    mkdir -p "$tmp/$task-pred" && mv "$tmp/$task-eval/panoptic_predictions" "$tmp/$task-eval/panoptic_predictions.json" "$tmp/$task-pred/"
    "$bin" eval-results --task panoptic --gt "$tmp/$task-data" --split $split --results "$tmp/$task-pred" >"$tmp/$task-rescore.log" 2>&1
    rescored=$(awk '$1 == "All" { print $2, $3, $4; exit }' "$tmp/$task-rescore.log"); keys="PQ SQ RQ"
  else
    n=$(ls "$tmp/$task-eval/semantic" 2>/dev/null | grep -c '\.png$')
    [ "$n" = 8 ] && ok "$task: eval wrote 8 label PNGs" || bad "$task: label PNGs" "$n PNGs"
    "$bin" eval-results --task semantic --gt "$tmp/$task-data" --split $split --results "$tmp/$task-eval/semantic" "${rescore[@]}" \
      >"$tmp/$task-rescore.log" 2>&1
    rescored=$(awk '$1 == "mIoU" || $1 == "pACC" { printf "%s ", $2 }' "$tmp/$task-rescore.log" | sed 's/ $//'); keys="mIoU pACC"
    if [ $task = sem-seg ]; then
      grep -qE '^6 cyan disc +[0-9.]+|\| 6 cyan disc +[0-9.]+' "$tmp/$task-rescore.log" && ok "sem-seg: eval-results names the classes given by --classes" \
        || bad "sem-seg: eval-results --classes" "$(grep -A3 per-class "$tmp/$task-rescore.log")"
    fi
  fi
  # predict on one image of the task: overlay, the task's raw PNG and the JSON.
  img=$(find "$tmp/$task-data" -name '*.jpg' | sort | head -1)
  raw=${task}; [ $task = sem-seg ] && raw=semantic
  if "$bin" predict "${set_task[@]}" --weights "$tmp/$task-run/model_final.h5" --input "$img" --output "$tmp/$task-predict" \
       >"$tmp/$task-predict.log" 2>&1 && stem=$(basename "$img" .jpg) && [ -f "$tmp/$task-predict/${stem}_overlay.png" ] \
     && [ -f "$tmp/$task-predict/${stem}_$raw.png" ] && [ -f "$tmp/$task-predict/$stem.json" ]; then
    ok "$task: predict wrote the overlay, ${stem}_$raw.png and $stem.json"
  else
    bad "$task: predict" "$(tail -3 "$tmp/$task-predict.log"; ls "$tmp/$task-predict" 2>/dev/null | tr '\n' ' ')"
  fi
  printed=$(for key in $keys; do metric "$tmp/$task-eval/results.json" $key; done | tr '\n' ' ' | sed 's/ $//')
  if [ -n "$printed" ] && [ "$printed" = "$rescored" ]; then
    ok "$task: eval-results on the written predictions gives eval's $keys ($printed)"
  else
    bad "$task: rescoring the written predictions" "eval $keys '$printed', eval-results '$rescored': $(tail -3 "$tmp/$task-rescore.log")"
  fi
done

# Weights alone (their stored config), the dataset gone: predict names a sem-seg model's classes by data.classes.
if [ -f "$tmp/sem-seg-run/model_final.h5" ]; then
  img=$(find "$tmp/sem-seg-data" -name '*.jpg' | sort | head -1); stem=$(basename "$img" .jpg)
  "$bin" predict --weights "$tmp/sem-seg-run/model_final.h5" --set data.root="$tmp/no-such-dataset" --input "$img" \
    --output "$tmp/sem-seg-alone" >"$tmp/sem-seg-alone.log" 2>&1
  names=$(python3 -c 'import json, sys
names = {s["name"] for s in json.load(open(sys.argv[1]))["segments"]}
known = {"sky", "grass", "red box", "green disc", "blue wedge", "yellow box", "cyan disc"}
print("ok" if names and names <= known else "names %s" % sorted(names))' "$tmp/sem-seg-alone/$stem.json" 2>&1)
  if [ "$names" = ok ] && grep -q "classes are shown by data.classes" "$tmp/sem-seg-alone.log"; then
    ok "sem-seg: predict from the weights alone names the classes by the stored data.classes"
  else
    bad "sem-seg: predict without the dataset" "$names; $(tail -2 "$tmp/sem-seg-alone.log")"
  fi
fi

# Test-time augmentation (eval.tta, Mask2Former's TEST.AUG) on the sem-seg model with 2 ranks: recorded in results.json
# and the log; refused on an instance format.
if [ -f "$tmp/sem-seg-run/model_final.h5" ]; then
  if cluster/launch.sh -n 2 -- eval --weights "$tmp/sem-seg-run/model_final.h5" --set data.root="$tmp/sem-seg-data" --set eval.tta=true \
       --set 'eval.tta_min_sizes=[48, 64, 96]' --output "$tmp/sem-seg-tta" >"$tmp/sem-seg-tta.log" 2>&1 \
     && python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); a = r["test_time_augmentation"]
sys.exit(0 if a == {"min_sizes": [48, 64, 96], "max_size": 3584, "flip": True} and r["images"] == 8 and "mIoU" in r else 1)' "$tmp/sem-seg-tta/results.json" \
     && grep -q "test-time augmentation: short edges 48, 64, 96, longest ≤ 3584, each also mirrored (6 passes per image" "$tmp/sem-seg-tta.log"; then
    ok "sem-seg: eval.tta averages 6 passes per image with 2 ranks, recorded in results.json (mIoU $(metric "$tmp/sem-seg-tta/results.json" mIoU) vs $(metric "$tmp/sem-seg-eval/results.json" mIoU) single-scale)"
  else
    bad "sem-seg: eval.tta" "$(tail -n 3 "$tmp/sem-seg-tta.log")"
  fi
  "$bin" eval --config configs/smoke.yaml --set data.root="$tmp/sem-seg-data" --set eval.tta=true --weights "$tmp/sem-seg-run/model_final.h5" \
    >"$tmp/tta-coco.log" 2>&1; code=$?
  if [ $code -eq 1 ] && grep -q "eval.tta: applies to semantic formats only" "$tmp/tta-coco.log"; then
    ok "eval.tta on an instance format is refused, naming the key"
  else
    bad "eval.tta on coco-instance" "exit $code: $(tail -n 2 "$tmp/tta-coco.log")"
  fi
fi

# sem-seg data holding a value beyond model.decoder.num_classes: training stops with exit 1 naming the label PNG.
if [ -d "$tmp/sem-seg-data" ]; then
  "$bin" train --config configs/smoke.yaml --set data.format=sem-seg --set data.root="$tmp/sem-seg-data" --set data.train_split=validation \
    --set model.decoder.num_classes=5 --set solver.max_iter=2 --output "$tmp/sem-seg-few" >"$tmp/sem-seg-few.log" 2>&1; code=$?
  if [ $code -eq 1 ] && grep -qE "sem-seg-data/annotations/validation/scene_[0-9]+\.png: image scene_[0-9]+: label [56] at pixel [0-9]+,[0-9]+ is outside 0…4 \(255 ignored\)" "$tmp/sem-seg-few.log"; then
    ok "sem-seg: a label beyond model.decoder.num_classes stops training, naming the PNG, value and pixel"
  else
    bad "sem-seg with too few classes" "exit $code: $(tail -2 "$tmp/sem-seg-few.log")"
  fi
fi

# configs/custom-coco-instance-r50.yaml (the template for a COCO-format export) on a Roboflow-style layout:
# train/_annotations.coco.json next to its images; one R50 step at 64² and an evaluation of the valid split.
"$bin" data synth --format coco-instance --out "$tmp/export" --split train --images 4 --size 64x64 --seed 6 >/dev/null 2>&1
"$bin" data synth --format coco-instance --out "$tmp/export" --split valid --images 2 --size 64x64 --seed 7 >/dev/null 2>&1
for split in train valid; do mv "$tmp/export/annotations/instances_$split.json" "$tmp/export/$split/_annotations.coco.json"; done
rmdir "$tmp/export/annotations" 2>/dev/null
template=(--config configs/custom-coco-instance-r50.yaml --set data.root="$tmp/export" --set model.decoder.num_classes=5
          --set input.crop_size=64 --set input.min_size_test=64 --set solver.ims_per_batch=2 --set loss.num_points=256)
if "$bin" train "${template[@]}" --set solver.max_iter=1 --set eval.period=0 --set eval.best_metric= --set checkpoint.period=0 --output "$tmp/template-run" \
     >"$tmp/template-train.log" 2>&1 \
   && "$bin" eval --weights "$tmp/template-run/model_final.h5" --set data.root="$tmp/export" --output "$tmp/template-eval" \
     >"$tmp/template-eval.log" 2>&1 && grep -q '"images" : 2\|"images": 2' "$tmp/template-eval/results.json"; then
  ok "configs/custom-coco-instance-r50.yaml trains and evaluates a Roboflow-style export (layout keys, {split} in paths)"
else
  bad "the custom COCO template" "$(tail -n 3 "$tmp/template-train.log" "$tmp/template-eval.log")"
fi

# A ground-truth label PNG with a value beyond ADE20K's 150 classes: eval-results names the annotation, not the prediction.
if [ -d "$tmp/semantic-eval/semantic" ]; then
  cp -r "$tmp/semantic-data" "$tmp/badgt-data"
  ann=$(find "$tmp/badgt-data" -path '*/annotations/*' -name '*.png' | sort | head -1)
  python3 - "$ann" <<'PY'
import struct, sys, zlib
w, h = struct.unpack(">II", open(sys.argv[1], "rb").read()[16:24])
raw = b"".join(b"\x00" + bytes([200] * w) for _ in range(h))
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
PY
  "$bin" eval-results --task semantic --gt "$tmp/badgt-data" --split validation --results "$tmp/semantic-eval/semantic" >"$tmp/badgt.log" 2>&1; code=$?
  if [ $code -eq 1 ] && grep -qF "$ann: image $(basename "$ann" .png): label 200 at pixel 0,0 is outside 1…150 (0 ignored)" "$tmp/badgt.log"; then
    ok "semantic eval-results names a ground-truth PNG holding a value beyond the 150 classes"
  else
    bad "semantic eval-results with a bad ground-truth value" "exit $code: $(tail -2 "$tmp/badgt.log")"
  fi
fi
finish
