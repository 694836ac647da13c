#!/usr/bin/env bash
# Converter and pretrained-weight tests run by `make test`: the Python converters in tools/ (numpy + h5py;
# h5py is installed from PyPI when missing — a failed install fails this script, it is never skipped), h5py
# listing the reference names of a checkpoint written by maskpilot, `model.weights` end to end:
# checkpoint → fake model-zoo .pkl → convert_pkl_to_h5.py → `maskpilot train --set model.weights=…`, and
# `maskpilot model import` / `model run` on HF save_pretrained folders (Tests/Fixtures/hf, made by
# tools/make_hf_checkpoints.py): the imported model reproduces HF's logits; ImageNet Swin pickles; bad sources.
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

# Fine-tuning on a dataset with other classes (6 here) without ignoring the class head.
"$bin" data synth --format coco-instance --out "$tmp/data6" --images 4 --size 96x96 --seed 6 --classes 6 >/dev/null
"$bin" train "${common[@]}" --set data.root="$tmp/data6" --set model.decoder.num_classes=6 --set model.weights="$tmp/zoo.h5" \
  --output "$tmp/bad" >"$tmp/bad.log" 2>&1
if grep -q "sem_seg_head.predictor.class_embed.weight: the model has \[7, 32\], the file has \[6, 32\]" "$tmp/bad.log"; then
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

# model import + model run against HF transformers' own outputs (Swin with safetensors; ResNet with a torch zip pickle,
# read without torch). `compare` prints the largest deviation relative to each tensor's largest magnitude.
compare() {
  python3 - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
ours, ref = h5py.File(sys.argv[1], "r"), h5py.File(sys.argv[2], "r")
names = []
ref.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
worst = max(float(np.abs(ours[n][()] - ref[n][()]).max() / max(np.abs(ref[n][()]).max(), 1e-12)) for n in names)
print(f"{len(names)} tensors, worst relative deviation {worst:.2e}")
sys.exit(0 if worst <= 1e-4 and all(ours[n].shape == ref[n].shape for n in names) else 1)
PY
}
for case in swin resnet-bin; do
  src=Tests/Fixtures/hf/$case
  if "$bin" model import --from "$src" --output "$tmp/hf-$case.h5" --config-out "$tmp/hf-$case.yaml" >"$tmp/import-$case.log" 2>&1 \
     && grep -q "0 missing, .* 0 unused" "$tmp/import-$case.log" \
     && "$bin" model run --config "$tmp/hf-$case.yaml" --weights "$tmp/hf-$case.h5" --input "$src/expected.h5" \
          --output "$tmp/out-$case.h5" >"$tmp/run-$case.log" 2>&1 \
     && result=$(compare "$tmp/out-$case.h5" "$src/expected.h5"); then
    ok "model import $src + model run reproduce HF's logits ($result; $(head -1 "$tmp/import-$case.log" | sed 's/.*: \([0-9]* tensor\)/\1/'))"
  else
    bad "model import/run $src" "$(cat "$tmp/import-$case.log" "$tmp/run-$case.log" 2>/dev/null | tail -5) ${result:-}"
  fi
done

# model export: each imported HF fixture written back as an HF folder. The Swin safetensors must hold exactly the
# fixture's names, shapes and bytes (HF wrote the fixture; only SwinModel's unused final layer norm is at its initial
# values) and config.json the fixture's model fields; both folders re-import to weights that reproduce HF's logits.
for case in swin resnet-bin; do
  src=Tests/Fixtures/hf/$case
  if [ -f "$tmp/hf-$case.h5" ] && "$bin" model export --weights "$tmp/hf-$case.h5" --output "$tmp/export-$case" >"$tmp/export-$case.log" 2>&1 \
     && "$bin" model import --from "$tmp/export-$case" --output "$tmp/back-$case.h5" --config-out "$tmp/back-$case.yaml" >"$tmp/back-$case.log" 2>&1 \
     && grep -q "0 missing, .* 0 unused" "$tmp/back-$case.log" \
     && cmp -s <("$bin" config --config "$tmp/hf-$case.yaml" --keys) <("$bin" config --config "$tmp/back-$case.yaml" --keys) \
     && "$bin" model run --config "$tmp/back-$case.yaml" --weights "$tmp/back-$case.h5" --input "$src/expected.h5" \
          --output "$tmp/back-out-$case.h5" >"$tmp/back-run-$case.log" 2>&1 \
     && result=$(compare "$tmp/back-out-$case.h5" "$src/expected.h5"); then
    ok "model export of $case + import back: the same configuration, HF's logits reproduced ($result)"
  else
    bad "model export $case" "$(cat "$tmp/export-$case.log" "$tmp/back-$case.log" "$tmp/back-run-$case.log" 2>/dev/null | tail -5) ${result:-}"
  fi
done
same=$(python3 - Tests/Fixtures/hf/swin "$tmp/export-swin" <<'PY' 2>&1
import json, struct, sys
def tensors(folder):
    d = open(folder + "/model.safetensors", "rb").read()
    n = struct.unpack("<Q", d[:8])[0]; h = json.loads(d[8:8 + n])
    return {k: (v["dtype"], v["shape"], d[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items() if k != "__metadata__"}
theirs, ours = tensors(sys.argv[1]), tensors(sys.argv[2])
unused = {"model.pixel_level_module.encoder.swin.layernorm.weight", "model.pixel_level_module.encoder.swin.layernorm.bias"}
differ = sorted(k for k in theirs if k in ours and theirs[k] != ours[k] and k not in unused)
shapes = sorted(k for k in unused if theirs[k][:2] != ours[k][:2])
ca, cb = (json.load(open(f + "/config.json")) for f in sys.argv[1:3])
model_keys = [k for k in ca if k not in ("transformers_version", "backbone_config")]
bb_keys = [k for k in ("model_type", "embed_dim", "depths", "num_heads", "window_size", "mlp_ratio", "qkv_bias", "patch_size",
                       "out_features", "hidden_act", "layer_norm_eps", "use_absolute_embeddings", "drop_path_rate")]
config = [k for k in model_keys if ca[k] != cb.get(k)] + ["backbone_config." + k for k in bb_keys if ca["backbone_config"][k] != cb["backbone_config"].get(k)]
missing, extra = sorted(set(theirs) - set(ours)), sorted(set(ours) - set(theirs))
print("ok" if not (differ or shapes or config or missing or extra) else
      "differ %s, shapes %s, config %s, missing %s, extra %s" % (differ[:3], shapes, config, missing[:3], extra[:3]))
PY
)
if [ "$same" = ok ]; then
  ok "model export of the Swin fixture: every name, shape and byte of HF's model.safetensors (292 tensors) and config.json's model fields"
else
  bad "model export against HF's own files" "$same"
fi
# An MP-Former checkpoint exports without its label embedding (training only) and runs the same after re-import;
# a model HF cannot build is refused before anything is written, naming the key.
if "$bin" model export --weights "$tmp/run/model_final.h5" --output "$tmp/export-mp" >"$tmp/export-mp.log" 2>&1 \
   && grep -q "left out: sem_seg_head.predictor.label_enc.weight" "$tmp/export-mp.log" \
   && "$bin" model import --from "$tmp/export-mp" --output "$tmp/back-mp.h5" --config-out "$tmp/back-mp.yaml" >"$tmp/back-mp.log" 2>&1 \
   && "$bin" model run --weights "$tmp/run/model_final.h5" --config "$tmp/run/config.yaml" --input "$tmp/data/train2017/"*.jpg --output "$tmp/mp-out.h5" >/dev/null 2>&1 \
   && "$bin" model run --config "$tmp/back-mp.yaml" --weights "$tmp/back-mp.h5" --input "$tmp/mp-out.h5" --output "$tmp/back-mp-out.h5" >/dev/null 2>&1 \
   && result=$(compare "$tmp/back-mp-out.h5" "$tmp/mp-out.h5"); then
  ok "an MP-Former checkpoint exports without label_enc and re-imports to the same outputs ($result)"
else
  bad "model export of an MP-Former checkpoint" "$(tail -n 3 "$tmp/export-mp.log" "$tmp/back-mp.log" 2>/dev/null) ${result:-}"
fi
"$bin" model export --weights "$tmp/run/model_final.h5" --set model.pixel_decoder.name=fpn --output "$tmp/export-fpn" >"$tmp/export-fpn.log" 2>&1; code=$?
if [ $code -eq 1 ] && grep -q "model.pixel_decoder.name fpn: HF builds the MSDeformAttn pixel decoder only" "$tmp/export-fpn.log" && [ ! -e "$tmp/export-fpn" ]; then
  ok "model export refuses a model HF cannot build (FPN pixel decoder), exit 1, naming the key, writing nothing"
else
  bad "model export of an FPN model" "exit $code: $(tail -n 2 "$tmp/export-fpn.log")"
fi

# A standalone .safetensors file with --config, then images through model run (test-time resize, padding).
if "$bin" model import --from Tests/Fixtures/hf/swin/model.safetensors --config "$tmp/hf-swin.yaml" --output "$tmp/st.h5" >"$tmp/st.log" 2>&1 \
   && cmp -s <(h5dump -d /model/backbone.layers.1.blocks.0.attn.qkv.weight "$tmp/st.h5" | tail -n +3) \
             <(h5dump -d /model/backbone.layers.1.blocks.0.attn.qkv.weight "$tmp/hf-swin.h5" | tail -n +3) \
   && "$bin" model run --config "$tmp/hf-swin.yaml" --weights "$tmp/st.h5" --input "$tmp/data/train2017/"*.jpg --output "$tmp/imgs.h5" >"$tmp/imgs.log" 2>&1 \
   && grep -q "run: 8 image(s) of" "$tmp/imgs.log"; then
  ok "model import of a .safetensors file with --config; model run on 8 images ($(cut -c6- "$tmp/imgs.log"))"
else
  bad "model import .safetensors / model run on images" "$(cat "$tmp/st.log" "$tmp/imgs.log" 2>/dev/null | tail -4)"
fi

# A detectron2-style ImageNet Swin pickle (classification names: no backbone. prefix, the classifier head and final
# norm, attn_mask and relative_position_index buffers): prefixed, the buffers and the classifier reported as ignored,
# the backbone loaded with the same values, the per-stage norms and the head missing.
python3 - "$tmp/hf-swin.h5" "$tmp/swin_imagenet.pkl" <<'PY'
import pickle, sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    model = {n[len("backbone."):]: f["model"][n][()] for n in f["model"] if n.startswith("backbone.") and not n.startswith("backbone.norm")}
model["norm.weight"], model["norm.bias"] = np.ones(128, np.float32), np.zeros(128, np.float32)
model["head.weight"], model["head.bias"] = np.zeros((1000, 128), np.float32), np.zeros(1000, np.float32)
model["layers.0.blocks.1.attn_mask"] = np.zeros((1, 9, 9), np.float32)
model["layers.0.blocks.0.attn.relative_position_index"] = np.zeros(81, np.int64)
with open(sys.argv[2], "wb") as out:
    pickle.dump({"model": model, "__author__": "third_party", "matching_heuristics": True}, out)
PY
if "$bin" model import --from "$tmp/swin_imagenet.pkl" --config "$tmp/hf-swin.yaml" --output "$tmp/swin_in.h5" >"$tmp/in.log" 2>&1 \
   && grep -q "6 ignored, 0 unused" "$tmp/in.log" && grep -q "missing: backbone.norm0.weight" "$tmp/in.log" \
   && grep -q "missing: sem_seg_head.predictor.class_embed.bias" "$tmp/in.log" \
   && grep -q "ignored: backbone.head.weight — the ImageNet classifier head" "$tmp/in.log" \
   && cmp -s <(h5dump -d /model/backbone.layers.2.blocks.1.mlp.fc1.weight "$tmp/swin_in.h5" | tail -n +3) \
             <(h5dump -d /model/backbone.layers.2.blocks.1.mlp.fc1.weight "$tmp/hf-swin.h5" | tail -n +3); then
  ok "an ImageNet Swin .pkl imports into backbone.* ($(head -1 "$tmp/in.log" | sed 's/.*: \([0-9]* tensor\)/\1/'))"
else
  bad "ImageNet Swin .pkl" "$(head -12 "$tmp/in.log")"
fi

# The fake model-zoo .pkl of the first test (a whole Mask2Former under detectron2 names) through `model import`.
if "$bin" model import --from "$tmp/zoo.pkl" --config configs/smoke.yaml --set data.root="$tmp/data" --output "$tmp/zoo-import.h5" \
     >"$tmp/zoo-import.log" 2>&1 && grep -q "0 missing, 0 ignored, 0 unused" "$tmp/zoo-import.log" \
   && cmp -s <(h5dump -d /model/sem_seg_head.predictor.class_embed.weight "$tmp/zoo-import.h5" | tail -n +3) \
             <(h5dump -d /model/sem_seg_head.predictor.class_embed.weight "$tmp/zoo.h5" | tail -n +3); then
  ok "a detectron2 model-zoo .pkl through model import: $(head -1 "$tmp/zoo-import.log" | sed 's/.*: \([0-9]* tensor\)/\1/')"
else
  bad "model-zoo .pkl through model import" "$(head -5 "$tmp/zoo-import.log")"
fi

# HF's image processor: preprocessor_config.json with HF's ImageNet values imports with the default normalization;
# other statistics import into model.pixel_mean / pixel_std of the written configuration, and `model run` then feeds
# the model pixels normalized with them; a given configuration that disagrees, or bad JSON, stops the import with
# exit 1, naming the file, and writes no output.
for case in same other broken; do
  cp -r Tests/Fixtures/hf/swin "$tmp/pre-$case"
  case $case in
    same) echo '{"do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
                 "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}' ;;
    other) echo '{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}' ;;
    broken) echo '{"image_mean": [0.5, 0.5' ;;
  esac >"$tmp/pre-$case/preprocessor_config.json"
  "$bin" model import --from "$tmp/pre-$case" --output "$tmp/pre-$case.h5" --config-out "$tmp/pre-$case.yaml" >"$tmp/pre-$case.log" 2>&1
  echo $? >"$tmp/pre-$case.status"
done
"$bin" model import --from "$tmp/pre-other" --config "$tmp/hf-swin.yaml" --output "$tmp/pre-given.h5" >"$tmp/pre-given.log" 2>&1; given=$?
img=$(ls "$tmp/data/train2017/"*.jpg | head -1)
size=(--set input.min_size_test=64 --set input.max_size_test=64)
"$bin" model run --config "$tmp/pre-other.yaml" "${size[@]}" --weights "$tmp/pre-other.h5" --input "$img" --output "$tmp/run-other.h5" >"$tmp/run-other.log" 2>&1; r1=$?
"$bin" model run --config "$tmp/pre-same.yaml" "${size[@]}" --weights "$tmp/pre-same.h5" --input "$img" --output "$tmp/run-same.h5" >"$tmp/run-same.log" 2>&1; r2=$?
# Both runs saw the same resized pixels: (x − 127.5) / 127.5 in one, ImageNet's statistics in the other.
same_pixels=$(python3 - "$tmp/run-other.h5" "$tmp/run-same.h5" <<'PY' 2>&1
import sys, h5py, numpy as np
a = h5py.File(sys.argv[1], "r")["pixel_values"][()]; b = h5py.File(sys.argv[2], "r")["pixel_values"][()]
mean = np.array([123.675, 116.28, 103.53]).reshape(1, 3, 1, 1); std = np.array([58.395, 57.12, 57.375]).reshape(1, 3, 1, 1)
print(a.shape == b.shape == (1, 3, 64, 64) and not np.allclose(a, b) and np.allclose(a * 127.5 + 127.5, b * std + mean, atol=1e-3))
PY
)
if [ "$(cat "$tmp/pre-same.status")" -eq 0 ] && [ -s "$tmp/pre-same.h5" ] \
   && "$bin" config --config "$tmp/pre-same.yaml" --keys | grep -q "^model.pixel_mean = \[123.675, 116.28, 103.53\]$" \
   && [ "$(cat "$tmp/pre-other.status")" -eq 0 ] && [ -s "$tmp/pre-other.h5" ] \
   && grep -q "configuration from config.json and preprocessor_config.json (model.pixel_mean \[127.500, 127.500, 127.500\]" "$tmp/pre-other.log" \
   && "$bin" config --config "$tmp/pre-other.yaml" --keys | grep -q "^model.pixel_std = \[127.5, 127.5, 127.5\]$" \
   && [ $r1 -eq 0 ] && [ $r2 -eq 0 ] && [ "$same_pixels" = True ] \
   && [ $given -eq 1 ] && [ ! -e "$tmp/pre-given.h5" ] \
   && grep -q "pre-other/preprocessor_config.json: the model was trained on pixels normalized with mean \[127.500, 127.500, 127.500\] and std \[127.500, 127.500, 127.500\] (0–255 scale), but the given configuration has model.pixel_mean \[123.675" "$tmp/pre-given.log" \
   && [ "$(cat "$tmp/pre-broken.status")" -eq 1 ] && grep -q "pre-broken/preprocessor_config.json: not valid JSON" "$tmp/pre-broken.log"; then
  ok "preprocessor_config.json's normalization: ImageNet's imports as the default, other statistics into model.pixel_mean/std (and model run normalizes with them), a disagreeing --config and bad JSON stop the import (exit 1, named)"
else
  bad "model import and preprocessor_config.json" "given $given, runs $r1/$r2, pixels '$same_pixels'; $(tail -n 2 "$tmp"/pre-*.log "$tmp"/run-*.log)"
fi

# Bad sources: a file that maps onto no parameter, a folder without weights, a .pkl without --config.
python3 -c "import pickle; pickle.dump({'model': {'foo.weight': __import__('numpy').zeros(3, 'float32')}}, open('$tmp/foo.pkl', 'wb'))"
mkdir -p "$tmp/empty-folder"
"$bin" model import --from "$tmp/foo.pkl" --config "$tmp/hf-swin.yaml" --output "$tmp/foo.h5" >"$tmp/foo.log" 2>&1; s1=$?
"$bin" model import --from "$tmp/empty-folder" --output "$tmp/e.h5" >"$tmp/e.log" 2>&1; s2=$?
"$bin" model import --from "$tmp/swin_imagenet.pkl" --output "$tmp/n.h5" >"$tmp/n.log" 2>&1; s3=$?
if [ $s1 -eq 1 ] && grep -q "none of its 1 tensor(s) maps onto a parameter" "$tmp/foo.log" && [ ! -e "$tmp/foo.h5" ] \
   && [ $s2 -eq 1 ] && grep -q "no model.safetensors, pytorch_model.bin or shard index" "$tmp/e.log" \
   && [ $s3 -eq 1 ] && grep -q "give --config" "$tmp/n.log"; then
  ok "model import refuses a file that maps onto nothing, a folder without weights and a pickle without --config (exit 1, named)"
else
  bad "model import errors" "exit $s1/$s2/$s3: $(cat "$tmp/foo.log" "$tmp/e.log" "$tmp/n.log" | head -6)"
fi

# A .safetensors file whose decoder k_proj is half as wide as its q_proj and v_proj (the triple cannot be stacked
# into in_proj_weight), and `model run` on an empty pixel_values: exit 1 naming the tensor, not a trap.
python3 - Tests/Fixtures/hf/swin/model.safetensors "$tmp/badqkv.safetensors" "$tmp/empty.h5" <<'PY'
import json, struct, sys, h5py, numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); data = raw[8 + n:]
tensors = {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items() if k != "__metadata__"}
key = sorted(k for k in tensors if k.endswith("decoder.layers.0.self_attn.k_proj.weight"))[0]
rows, cols = tensors[key][1]
tensors[key] = ("F32", [rows, cols // 2], np.zeros((rows, cols // 2), np.float32).tobytes())
out, body, offset = {}, b"", 0
for k, (dtype, shape, blob) in tensors.items():
    out[k] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}; body += blob; offset += len(blob)
head = json.dumps(out).encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(head)) + head + body)
with h5py.File(sys.argv[3], "w") as f:
    f.create_dataset("pixel_values", data=np.zeros((1, 3, 0, 32), np.float32))
PY
"$bin" model import --from "$tmp/badqkv.safetensors" --config "$tmp/hf-swin.yaml" --output "$tmp/badqkv.h5" >"$tmp/badqkv.log" 2>&1; q1=$?
"$bin" model run --config "$tmp/hf-swin.yaml" --weights "$tmp/st.h5" --input "$tmp/empty.h5" --output "$tmp/empty-out.h5" >"$tmp/empty.log" 2>&1; q2=$?
"$bin" train "${common[@]}" --set model.weights="$tmp/badqkv.safetensors" --output "$tmp/badqkv-run" >"$tmp/badqkv-train.log" 2>&1; q3=$?
if [ $q1 -eq 1 ] && grep -q "badqkv.safetensors: the query/key/value projections cannot be stacked into sem_seg_head.predictor.transformer_self_attention_layers.0.self_attn.in_proj_weight" "$tmp/badqkv.log" \
   && grep -q "self_attn.k_proj.weight \[" "$tmp/badqkv.log" && [ ! -e "$tmp/badqkv.h5" ] \
   && [ $q2 -eq 1 ] && grep -q "empty.h5: pixel_values has shape \[1, 3, 0, 32\], an empty batch or image" "$tmp/empty.log" \
   && [ ! -e "$tmp/empty-out.h5" ] \
   && [ $q3 -eq 1 ] && grep -q "model.weights: $tmp/badqkv.safetensors: the query/key/value projections cannot be stacked" "$tmp/badqkv-train.log"; then
  ok "a q/k/v triple that cannot be stacked (model import, model.weights) and an empty pixel_values are refused (exit 1, named)"
else
  bad "unstackable q/k/v, empty pixel_values" "exit $q1/$q2/$q3: $(cat "$tmp/badqkv.log" "$tmp/empty.log" "$tmp/badqkv-train.log" | tail -4)"
fi

# Hostile HDF5 (a few KB each): a declared shape beyond 2^40 elements, one beyond the machine's memory, a checkpoint
# whose counters are out of range. Each is refused naming the file and object (they used to overflow an Int or
# reach the sampler's precondition).
python3 - "$tmp" "$tmp/run/model_final.h5" <<'PY'
import shutil, sys, h5py, numpy as np
tmp, ckpt = sys.argv[1], sys.argv[2]
with h5py.File(f"{tmp}/huge.h5", "w") as f:
    f.create_group("model").create_dataset("w", shape=(2**33, 2**33), dtype="f4", chunks=(1, 16))
with h5py.File(f"{tmp}/big.h5", "w") as f:
    f.create_group("model").create_dataset("w", shape=(2**20, 2**20), dtype="f4", chunks=(1, 16))
for name, value in (("neg", -5), ("far", 2**62)):
    shutil.copy(ckpt, f"{tmp}/{name}.h5")
    with h5py.File(f"{tmp}/{name}.h5", "r+") as f:
        f["trainer"].attrs["iteration"] = np.int64(value)
PY
"$bin" checkpoint inspect "$tmp/huge.h5" >"$tmp/huge.log" 2>&1; h1=$?
"$bin" eval "${common[@]}" --split train2017 --weights "$tmp/big.h5" >"$tmp/big.log" 2>&1; h2=$?
"$bin" train "${common[@]}" --set solver.max_iter=4 --resume "$tmp/neg.h5" --output "$tmp/neg-run" >"$tmp/neg.log" 2>&1; h3=$?
"$bin" train "${common[@]}" --set solver.max_iter=4 --resume "$tmp/far.h5" --output "$tmp/far-run" >"$tmp/far.log" 2>&1; h4=$?
if [ $h1 -eq 1 ] && grep -q "/model/w: .*the declared shape \[8589934592, 8589934592\] has more than 2^40 elements" "$tmp/huge.log" \
   && [ $h2 -eq 1 ] && grep -q "big.h5.*declares 1099511627776 elements.*more than this machine's" "$tmp/big.log" \
   && [ $h3 -eq 1 ] && grep -q 'neg.h5.*/trainer (attribute "iteration").*must be within 0…1099511627776, got -5' "$tmp/neg.log" \
   && [ $h4 -eq 1 ] && grep -q 'far.h5.*got 4611686018427387904' "$tmp/far.log"; then
  ok "hostile HDF5: a shape beyond 2^40 elements or the machine's memory, a checkpoint's iteration -5 or 2^62: exit 1, named"
else
  bad "hostile HDF5" "exit $h1/$h2/$h3/$h4: $(tail -n 2 "$tmp/huge.log" "$tmp/big.log" "$tmp/neg.log" "$tmp/far.log")"
fi

# A checkpoint written before data.filter_empty_annotations existed (its stored configuration lacks the key, edited out
# with h5py here) trained on every image: resuming it on a dataset the filter shrinks says so.
"$bin" data synth --format coco-instance --out "$tmp/crowd" --images 6 --size 96x96 --seed 8 >/dev/null
python3 - "$tmp/crowd/annotations/instances_train2017.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); first = d["images"][0]["id"]
for a in d["annotations"]:
    if a["image_id"] == first: a["iscrowd"] = 1
json.dump(d, open(sys.argv[1], "w"))
PY
"$bin" data stats --format coco-instance --root "$tmp/crowd" --split train2017 >"$tmp/crowd-stats.log" 2>&1
grep -q "images without usable annotations (none, or only crowd regions): 1 (training leaves them out" "$tmp/crowd-stats.log" \
  && ok "data stats counts the images the empty-annotation filter leaves out" || bad "data stats unusable images" "$(tail -3 "$tmp/crowd-stats.log")"
"$bin" train "${common[@]}" --set data.root="$tmp/crowd" --set data.filter_empty_annotations=false --output "$tmp/old" >"$tmp/old.log" 2>&1
python3 - "$tmp/old/model_final.h5" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "r+") as f:
    text = f["meta"].attrs["config"]; text = text.decode() if isinstance(text, bytes) else text
    f["meta"].attrs["config"] = "\n".join(l for l in text.split("\n") if "filter_empty_annotations" not in l)
PY
"$bin" train "${common[@]}" --set data.root="$tmp/crowd" --set solver.max_iter=3 --output "$tmp/old" --resume >"$tmp/old-resume.log" 2>&1; code=$?
if [ $code -eq 0 ] && grep -q "was written before data.filter_empty_annotations existed" "$tmp/old-resume.log" \
   && grep -q "the training set has 5 images, the checkpoint's run had 6" "$tmp/old-resume.log" \
   && grep -q "removed 1 image(s) with no usable annotations" "$tmp/old-resume.log"; then
  ok "resuming a checkpoint from before data.filter_empty_annotations warns that the training set changes"
else
  bad "resume across the filter_empty_annotations default" "exit $code: $(grep -E 'resume|removed|rror' "$tmp/old-resume.log" | head -4)"
fi
finish
