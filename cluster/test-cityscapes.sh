#!/usr/bin/env bash
# Cityscapes tests run by `make test` (docs/data.md#cityscapes, docs/evaluation.md#cityscapes), on a synthetic split in
# the official layout (`maskpilot data synth --format cityscapes`):
#  1. for each task (semantic, instance, panoptic): a 2-rank training (the short-edge crop recipe at [64, 128]) writes
#     checkpoints; 6 steps + --resume + 6 steps equal 12 steps straight, bitwise; a 600-step model's 2-rank eval
#     scores above 1 % and writes the official result files; eval-results on those files gives the eval's numbers; the instance eval on 1 rank
#     equals the 2-rank one;
#  2. tools/check_cityscapes.py: our metrics equal cityscapesscripts' official evaluators (to 0.1) on predictions
#     synthesized from the ground truth with perturbations, and on the model's predictions;
#  3. bad input (a corrupt instanceIds PNG, a malformed panoptic JSON, a missing labelIds PNG, a prediction list line
#     with two fields) stops with exit status 1 and a message naming the file.
# cityscapesscripts comes from PyPI into a venv (.build/venv-cityscapes, numpy < 2; CITYSCAPES_VENV=DIR uses another).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/maskpilot
tmp=$(mktemp -d /tmp/maskpilot-cityscapes-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { echo "cityscapes test: $1: ok"; passed=$((passed + 1)); }
bad() { echo "cityscapes test: $1: FAILED — $2"; failed=$((failed + 1)); }
export OPENBLAS_NUM_THREADS=1

"$bin" data synth --format cityscapes --out "$tmp/data" --split train --images 16 --size 256x128 --seed 5 >"$tmp/synth.log" 2>&1 \
  && "$bin" data synth --format cityscapes --out "$tmp/data" --split val --images 4 --size 256x128 --seed 6 >>"$tmp/synth.log" 2>&1 \
  || { bad "synthesizing" "$(tail -3 "$tmp/synth.log")"; echo "cityscapes: $passed passed, $failed failed"; exit 1; }

venv=${CITYSCAPES_VENV:-.build/venv-cityscapes}
if ! "$venv/bin/python" -c "import cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling" >/dev/null 2>&1; then
  echo "cityscapes test: creating $venv with cityscapesscripts and numpy<2 from PyPI"
  python3 -m venv "$venv" >"$tmp/venv.log" 2>&1 && "$venv/bin/pip" install --quiet "numpy<2" cityscapesscripts >>"$tmp/venv.log" 2>&1 \
    || echo "cityscapes test: could not install cityscapesscripts: $(tail -3 "$tmp/venv.log")"
fi
python=$venv/bin/python

metric() { python3 -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$1" "$2" 2>/dev/null; }
declare -A classes=([semantic]=19 [instance]=8 [panoptic]=19)
declare -A headline=([semantic]=mIoU [instance]=AP [panoptic]=PQ)
for task in semantic instance panoptic; do
  common=(--config configs/smoke.yaml --set data.format=cityscapes-$task --set data.root="$tmp/data" --set data.train_split=train
          --set data.test_split=val --set model.decoder.num_classes=${classes[$task]} --set "input.crop_size=[64, 128]"
          --set "input.min_size_train=[64, 80, 96]" --set input.max_size_train=256 --set input.min_size_test=128
          --set input.max_size_test=256 --set solver.max_iter=12 --set checkpoint.period=6 --set eval.period=0)
  cluster/launch.sh -n 2 -- train "${common[@]}" --output "$tmp/$task-straight" >"$tmp/$task-straight.log" 2>&1
  cluster/launch.sh -n 2 -- train "${common[@]}" --output "$tmp/$task-split" --iterations 6 >"$tmp/$task-split1.log" 2>&1
  cluster/launch.sh -n 2 -- train "${common[@]}" --output "$tmp/$task-split" --resume >"$tmp/$task-split2.log" 2>&1
  if [ -f "$tmp/$task-split/model_0000006.h5" ] && "$bin" checkpoint diff "$tmp/$task-straight/model_final.h5" "$tmp/$task-split/model_final.h5" 2>&1 \
       | grep -q "tensors: all identical"; then
    ok "$task: 2-rank training checkpoints; 6 + resume + 6 steps == 12 steps, bitwise"
  else
    bad "$task training / resume" "$(tail -n 3 "$tmp/$task-straight.log" "$tmp/$task-split2.log")"; continue
  fi
  # A model trained long enough to score (600 steps, ~15 s), so that the checks below compare real numbers.
  if ! cluster/launch.sh -n 2 -- train "${common[@]}" --set solver.max_iter=600 --set checkpoint.period=0 --output "$tmp/$task-long" \
       >"$tmp/$task-long.log" 2>&1; then
    bad "$task: 600-step training" "$(tail -3 "$tmp/$task-long.log")"; continue
  fi
  if cluster/launch.sh -n 2 -- eval "${common[@]}" --weights "$tmp/$task-long/model_final.h5" --output "$tmp/$task-eval" >"$tmp/$task-eval.log" 2>&1 \
     && value=$(metric "$tmp/$task-eval/results.json" ${headline[$task]}) && [ -n "$value" ] \
     && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 1 else 1)" "$value"; then
    ok "$task: 2-rank eval of the 600-step model: ${headline[$task]} = $value (> 1: it learns)"
  else
    bad "$task eval" "${headline[$task]} '$value'; $(tail -4 "$tmp/$task-eval.log")"; continue
  fi
  case $task in
    semantic) results=$tmp/$task-eval/cityscapes_semantic; pattern='^mIoU ';;
    instance) results=$tmp/$task-eval/cityscapes_instance; pattern='^AP ';;
    panoptic) mkdir -p "$tmp/pan-results" && cp -r "$tmp/$task-eval"/cityscapes_panoptic_predictions* "$tmp/pan-results/"
              results=$tmp/pan-results; pattern='^All ';;
  esac
  if "$bin" eval-results --task cityscapes-$task --gt "$tmp/data" --split val --results "$results" >"$tmp/$task-er.log" 2>&1; then
    from_files=$(grep -E "$pattern" "$tmp/$task-er.log" | awk '{print $2}')
    if python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(a - b) < 0.005 or (a != a and b != b) else 1)" \
         "$from_files" "$value" 2>/dev/null; then
      ok "$task: eval-results on the written files gives the eval's ${headline[$task]} ($from_files)"
    else
      bad "$task eval-results" "files: '$from_files', eval: '$value'"
    fi
  else
    bad "$task eval-results" "$(tail -3 "$tmp/$task-er.log")"
  fi
done

# detectron2's filter of frames without instances (data.filter_empty_annotations): a copy of the split whose first
# frame's instanceIds map is all road (no instance), counted by data stats, left out by training, and named in the
# warning when resuming a run that trained on every frame.
cp -r "$tmp/data" "$tmp/empty"
first=$(find "$tmp/empty/gtFine/train" -name '*_gtFine_instanceIds.png' | sort | head -1)
python3 - "$first" <<'PY'
import struct, sys, zlib
def chunk(kind, data): return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
w, h = struct.unpack(">II", open(sys.argv[1], "rb").read()[16:24])
rows = b"".join(b"\0" + struct.pack(">H", 7) * w for _ in range(h))   # label id 7 (road) everywhere
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
"$bin" data stats --format cityscapes-instance --root "$tmp/empty" --split train >"$tmp/empty-stats.log" 2>&1
filter=(--config configs/smoke.yaml --set data.format=cityscapes-instance --set data.root="$tmp/empty" --set data.train_split=train
        --set data.test_split=val --set model.decoder.num_classes=8 --set "input.crop_size=[64, 128]" --set "input.min_size_train=[64]"
        --set input.max_size_train=256 --set checkpoint.period=0 --set eval.period=0)
"$bin" train "${filter[@]}" --set solver.max_iter=6 --set data.filter_empty_annotations=false --output "$tmp/empty-run" >"$tmp/empty-run.log" 2>&1
"$bin" train "${filter[@]}" --set solver.max_iter=8 --output "$tmp/empty-run" --resume >"$tmp/empty-resume.log" 2>&1; code=$?
if grep -q "images: 16" "$tmp/empty-stats.log" \
   && grep -q "frames without usable instances (none, or only group regions): 1 (training leaves them out" "$tmp/empty-stats.log" \
   && [ $code -eq 0 ] && grep -q "removed 1 frame(s) with no usable instances" "$tmp/empty-resume.log" \
   && grep -q "the training set has 15 images (this run leaves out 1 without usable annotations: data.filter_empty_annotations), the checkpoint's run had 16" \
        "$tmp/empty-resume.log"; then
  ok "a frame without instances: counted by data stats, left out of training, named when resuming a run that trained on it"
else
  bad "frames without instances" "exit $code: $(tail -n 3 "$tmp/empty-stats.log"; grep -E 'resume|removed|rror' "$tmp/empty-run.log" "$tmp/empty-resume.log" | head -4)"
fi

# Sharding does not change the numbers or the files: the instance eval (per-image match records gathered on rank 0)
# on 1 rank equals the 2-rank one.
if [ -d "$tmp/instance-eval" ]; then
  common=(--config configs/smoke.yaml --set data.format=cityscapes-instance --set data.root="$tmp/data" --set data.test_split=val
          --set model.decoder.num_classes=8 --set input.min_size_test=128 --set input.max_size_test=256)
  if "$bin" eval "${common[@]}" --weights "$tmp/instance-long/model_final.h5" --output "$tmp/instance-eval1" >"$tmp/instance-eval1.log" 2>&1 \
     && [ "$(metric "$tmp/instance-eval1/results.json" AP) $(metric "$tmp/instance-eval1/results.json" AP50)" = \
          "$(metric "$tmp/instance-eval/results.json" AP) $(metric "$tmp/instance-eval/results.json" AP50)" ] \
     && diff -r "$tmp/instance-eval1/cityscapes_instance" "$tmp/instance-eval/cityscapes_instance" >/dev/null; then
    ok "instance eval on 1 rank: the same AP/AP50 and byte-identical prediction files as on 2 ranks"
  else
    bad "instance eval 1 vs 2 ranks" "$(tail -3 "$tmp/instance-eval1.log")"
  fi
fi

# Our metrics equal the official scripts' (tools/check_cityscapes.py), on synthesized and on model predictions.
for seed in 1 2; do
  if "$python" tools/check_cityscapes.py --root "$tmp/data" --split val --maskpilot "$bin" --seed $seed --require >"$tmp/check$seed.log" 2>&1; then
    ok "metrics equal cityscapesscripts' on perturbed ground truth (seed $seed): $(tail -1 "$tmp/check$seed.log")"
  else
    bad "official scripts (seed $seed)" "$(tail -6 "$tmp/check$seed.log")"
  fi
done
for task in semantic instance panoptic; do
  [ -d "$tmp/$task-eval" ] || continue
  if "$python" tools/check_cityscapes.py --root "$tmp/data" --split val --maskpilot "$bin" --tasks $task --eval-output "$tmp/$task-eval" --require \
       >"$tmp/check-$task.log" 2>&1; then
    ok "$task: metrics equal cityscapesscripts' on the model's predictions: $(tail -1 "$tmp/check-$task.log")"
  else
    bad "official scripts on the model's $task predictions" "$(tail -6 "$tmp/check-$task.log")"
  fi
done

# Bad input: exit status 1, the file named.
expect_error() {  # name, expected text, log (the command's exit status is in $code)
  if [ "$code" -eq 1 ] && grep -q -- "$2" "$3"; then ok "$1"; else bad "$1" "exit $code: $(tail -2 "$3")"; fi
}
cp -r "$tmp/data" "$tmp/bad"
victim=$(ls "$tmp"/bad/gtFine/val/*/*_gtFine_instanceIds.png | head -1)
head -c 100 "$victim" >"$victim.part" && mv "$victim.part" "$victim"
"$bin" data stats --format cityscapes-instance --root "$tmp/bad" --split val >"$tmp/bad1.log" 2>&1; code=$?
expect_error "a truncated instanceIds PNG is refused, naming it" "$(basename "$victim")" "$tmp/bad1.log"
echo '{"images": [' >"$tmp/bad/gtFine/cityscapes_panoptic_val.json"
"$bin" data stats --format cityscapes-panoptic --root "$tmp/bad" --split val >"$tmp/bad2.log" 2>&1; code=$?
expect_error "a malformed panoptic JSON is refused, naming it" "cityscapes_panoptic_val.json" "$tmp/bad2.log"
victim=$(ls "$tmp"/bad/gtFine/val/*/*_gtFine_labelIds.png | head -1)
rm "$victim"
"$bin" train --config configs/smoke.yaml --set data.format=cityscapes-semantic --set data.root="$tmp/bad" --set data.train_split=val \
  --set model.decoder.num_classes=19 --set "input.crop_size=[64, 128]" --output "$tmp/bad-run" >"$tmp/bad3.log" 2>&1; code=$?
expect_error "a missing labelIds PNG stops training at the start, naming it" "$(basename "$victim")" "$tmp/bad3.log"
if [ -d "$tmp/instance-eval/cityscapes_instance" ]; then
  cp -r "$tmp/instance-eval/cityscapes_instance" "$tmp/bad-lists"
  list=$(ls "$tmp"/bad-lists/*/*_pred.txt | head -1)
  echo "masks/x.png 26" >>"$list"
  "$bin" eval-results --task cityscapes-instance --gt "$tmp/data" --split val --results "$tmp/bad-lists" >"$tmp/bad4.log" 2>&1; code=$?
  expect_error "a prediction list line with two fields is refused, naming the list and line" "$(basename "$list"): line" "$tmp/bad4.log"
fi

# predict with a Cityscapes panoptic model where the dataset is gone: the 19 classes and 8 thing classes are fixed by the
# format, so the weights' own configuration is enough.
if [ -f "$tmp/panoptic-long/model_final.h5" ]; then
  img=$(ls "$tmp"/data/leftImg8bit/val/*/*.png | head -1); stem=$(basename "$img" .png)
  "$bin" predict --weights "$tmp/panoptic-long/model_final.h5" --set data.root="$tmp/gone" --input "$img" --output "$tmp/pan-predict" \
    >"$tmp/pan-predict.log" 2>&1; code=$?
  if [ $code -eq 0 ] && [ -f "$tmp/pan-predict/${stem}_panoptic.png" ] && [ -f "$tmp/pan-predict/$stem.json" ]; then
    ok "cityscapes-panoptic predict without the dataset (the format's fixed classes)"
  else
    bad "cityscapes-panoptic predict without the dataset" "exit $code: $(tail -n 2 "$tmp/pan-predict.log")"
  fi
fi

echo "cityscapes: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
