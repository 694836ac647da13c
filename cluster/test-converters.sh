#!/usr/bin/env bash
# Converter and pretrained-weight tests run by `make test`: the Python converters in tools/ (numpy + h5py;
# h5py is installed from PyPI when missing — a failed install fails this script, it is never skipped), h5py
# listing the reference names of a checkpoint written by maskpilot, and `model.weights` end to end:
# checkpoint → fake model-zoo .pkl → convert_pkl_to_h5.py → `maskpilot train --set model.weights=…`.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/maskpilot
tmp=$(mktemp -d /tmp/maskpilot-converters-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { echo "converter test: $1: ok"; passed=$((passed + 1)); }
bad() { echo "converter test: $1: FAILED — $2"; failed=$((failed + 1)); }
finish() { echo "converters: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }

if ! python3 -c "import numpy, h5py" 2>/dev/null; then
  echo "converters: numpy/h5py not importable; installing h5py from PyPI (pip install --quiet h5py)"
  if ! python3 -m pip install --quiet h5py >"$tmp/pip.log" 2>&1 || ! python3 -c "import numpy, h5py" 2>/dev/null; then
    cat "$tmp/pip.log"
    bad "python dependencies" "cannot install h5py with pip (see above); the converter tests did NOT run"
    finish
  fi
fi
ok "python3 with numpy $(python3 -c 'import numpy; print(numpy.__version__)') and h5py $(python3 -c 'import h5py; print(h5py.__version__)')"

export OPENBLAS_NUM_THREADS=1
"$bin" data synth --format coco-instance --out "$tmp/data" --images 8 --size 96x96 --seed 5 >/dev/null
common=(--config configs/smoke.yaml --set data.root="$tmp/data" --set solver.max_iter=2 --set checkpoint.period=0)
if "$bin" train "${common[@]}" --output "$tmp/run" >"$tmp/run.log" 2>&1 && [ -f "$tmp/run/model_final.h5" ]; then
  ok "maskpilot wrote a checkpoint ($tmp/run/model_final.h5)"
else
  bad "writing a checkpoint" "$(tail -3 "$tmp/run.log")"; finish
fi

if python3 tools/test_converters.py "$tmp/run/model_final.h5" >"$tmp/py.log" 2>&1; then
  ok "tools/test_converters.py ($(tail -1 "$tmp/py.log"))"
else
  bad "tools/test_converters.py" "$(cat "$tmp/py.log")"
fi
grep "^  " "$tmp/py.log" | head -1

# End to end: the checkpoint's /model as a detectron2 model-zoo pickle, converted back, then used as
# model.weights with the class head ignored.
python3 - "$tmp/run/model_final.h5" "$tmp/zoo.pkl" <<'PY' && python3 tools/convert_pkl_to_h5.py "$tmp/zoo.pkl" "$tmp/zoo.h5" >"$tmp/convert.log" 2>&1
import pickle, sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    model = {n: f["model"][n][()] for n in f["model"]}
with open(sys.argv[2], "wb") as out:
    pickle.dump({"model": model, "__author__": "test"}, out)
PY
"$bin" train "${common[@]}" --set model.weights="$tmp/zoo.h5" --set "model.weights_ignore=[sem_seg_head.predictor.class_embed.*]" \
  --output "$tmp/init" >"$tmp/init.log" 2>&1
if grep -q "weights: $tmp/zoo.h5: loaded .* 2 ignored, 2 missing, 0 unused" "$tmp/init.log" && [ -f "$tmp/init/model_final.h5" ]; then
  ok "model.weights from a converted .pkl: $(grep "^weights: $tmp" "$tmp/init.log" | sed "s|$tmp/||")"
else
  bad "model.weights from a converted .pkl" "$(grep weights "$tmp/init.log" | head -5; tail -3 "$tmp/init.log")"
fi

"$bin" train "${common[@]}" --set model.decoder.num_classes=7 --set model.weights="$tmp/zoo.h5" --output "$tmp/bad" >"$tmp/bad.log" 2>&1
if grep -q "sem_seg_head.predictor.class_embed.weight: the model has \[8, 32\], the file has \[6, 32\]" "$tmp/bad.log"; then
  ok "a different class head without model.weights_ignore is refused, naming the key and both shapes"
else
  bad "mis-shaped weights" "$(tail -3 "$tmp/bad.log")"
fi

if "$bin" train "${common[@]}" --set solver.max_iter=3 --set model.weights="$tmp/zoo.h5" --output "$tmp/run" --resume >"$tmp/resume.log" 2>&1 \
   && grep -q "is not loaded when resuming" "$tmp/resume.log"; then
  ok "resume with model.weights set: allowed (not a model change), the checkpoint's model is used"
else
  bad "resume with model.weights" "$(tail -3 "$tmp/resume.log")"
fi
finish
