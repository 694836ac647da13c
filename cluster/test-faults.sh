#!/usr/bin/env bash
# Bad input and faults at the process level (`make test` runs it; under a minute). Every case must end with a clear
# error and exit status 1 (never a signal or a hang), or exit 0 where it is a clean stop, and lose nothing saved:
#  - disk full while writing a checkpoint (a small tmpfs): exit 1 naming ENOSPC, the previous checkpoint kept;
#  - disk full while appending metrics.jsonl: exit 1, every line of metrics.jsonl whole;
#  - a YAML alias bomb under a memory limit, duplicate keys, an empty file, a folder as --config: refused;
#  - a configuration with many bad values: every violation named at once, before anything is allocated;
#  - a fresh run into a folder holding a run: refused (its files untouched) unless --overwrite; a failed
#    invocation never rewrites config.yaml;
#  - runtime failures exit 1 without a usage block; a mistyped command line exits 64;
#  - SIGTERM to cluster/launch.sh: a checkpoint and exit 0;
#  - a dataset without images: named; a list of training splits trained as one, other categories refused; images whose test-time resize rounds a side to 0: predicted;
#  - `maskpilot config`: every key, read back as --config; bad keys and a model beyond memory named.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$PWD/.build/release/maskpilot
tmp=$(mktemp -d /tmp/maskpilot-faults-XXXXXX)
mounts=()
cleanup() { for m in "${mounts[@]}"; do umount "$m" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
passed=0; failed=0
ok() { echo "faults test: $1: ok"; passed=$((passed + 1)); }
bad() { echo "faults test: $1: FAILED — $2"; failed=$((failed + 1)); }
export OPENBLAS_NUM_THREADS=1

"$bin" data synth --format coco-instance --out "$tmp/data" --images 16 --size 96x96 --seed 5 >/dev/null
common=(--config configs/smoke.yaml --set data.root="$tmp/data")

# expect_error NAME EXPECTED_TEXT LOG CODE: exit status 1, the text in the log, no usage block, no crash report.
expect_error() {
  local name=$1 text=$2 log=$3 code=$4
  if [ "$code" -eq 1 ] && grep -qF -- "$text" "$log" && ! grep -q '^Usage:' "$log" && ! grep -q 'Program crashed\|Fatal error' "$log"; then
    ok "$name"
  else
    bad "$name" "exit $code (want 1); $(grep -m3 -E 'Error|rror:|crashed' "$log" | cut -c1-300)"
  fi
}

tmpfs() {  # tmpfs DIR SIZE: a small file system, unmounted at exit
  mkdir -p "$1"
  if mount -t tmpfs -o size="$2" tmpfs "$1"; then mounts+=("$1"); return 0; fi
  return 1
}

# 1. Disk full during the second checkpoint (each is ~6 MB): exit 1, ENOSPC named, model_0000010.h5 kept and pointed to.
if tmpfs "$tmp/full" 9m; then
  "$bin" train "${common[@]}" --set solver.max_iter=40 --set checkpoint.period=10 --output "$tmp/full/run" >"$tmp/full.log" 2>&1; code=$?
  expect_error "disk full during a checkpoint write: exit 1 naming the cause" "No space left on device" "$tmp/full.log" "$code"
  if [ "$(cat "$tmp/full/run/last_checkpoint" 2>/dev/null)" = model_0000010.h5 ] \
     && "$bin" checkpoint inspect "$tmp/full/run/model_0000010.h5" >/dev/null 2>&1 && ! ls "$tmp/full/run" | grep -q '\.tmp$'; then
    ok "disk full: the previous checkpoint is intact and last_checkpoint names it; no .tmp left"
  else
    bad "disk full: previous checkpoint" "$(ls "$tmp/full/run" | tr '\n' ' ')"
  fi
else
  bad "disk full" "cannot mount a tmpfs (needs root); the disk-full cases did NOT run"
fi

# 1b. A read-only output folder: a clear error at start, exit 1.
if tmpfs "$tmp/ro" 1m && mount -o remount,ro "$tmp/ro"; then
  "$bin" train "${common[@]}" --set solver.max_iter=2 --output "$tmp/ro/run" >"$tmp/ro.log" 2>&1
  expect_error "a read-only output folder is named at start" "--output $tmp/ro/run: cannot create the folder (Read-only file system)" "$tmp/ro.log" $?
fi

# 2. Disk full while appending metrics.jsonl (no checkpoints): exit 1 and no partial last line.
if tmpfs "$tmp/tiny" 160k; then
  "$bin" train "${common[@]}" --set solver.max_iter=100000 --set checkpoint.period=0 --output "$tmp/tiny/run" >"$tmp/tiny.log" 2>&1; code=$?
  expect_error "disk full while logging: exit 1 naming the cause" "No space left on device" "$tmp/tiny.log" "$code"
  lines=$(python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1], "rb").read().decode().split("\n")[:-1]:
    json.loads(line); n += 1
print(n)' "$tmp/tiny/run/metrics.jsonl" 2>&1)
  if [[ $lines =~ ^[0-9]+$ ]] && [ "$lines" -gt 0 ] && [ "$(tail -c 1 "$tmp/tiny/run/metrics.jsonl" | od -An -c | tr -d ' ')" = '\n' ]; then
    ok "disk full while logging: metrics.jsonl holds $lines whole lines"
  else
    bad "disk full while logging: metrics.jsonl" "$lines"
  fi
fi

# 3. Hostile YAML: an alias bomb (9 levels × 9 aliases → 387 million nodes) under a 4 GB address-space limit and
#    20 s; duplicate keys; an empty file; a folder.
python3 - "$tmp/bomb.yaml" <<'EOF'
import sys
lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
lines += ["a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * 9)) for i in range(1, 10)]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
EOF
(ulimit -v 4000000; timeout 20 "$bin" train --config "$tmp/bomb.yaml" --output "$tmp/bomb") >"$tmp/bomb.log" 2>&1; code=$?
expect_error "YAML alias bomb refused (4 GB limit, 20 s)" "more than 100000 values (through aliases" "$tmp/bomb.log" "$code"
printf 'seed: 1\nsolver:\n  max_iter: 10\nseed: 2\n' >"$tmp/dup.yaml"
"$bin" train --config "$tmp/dup.yaml" --output "$tmp/dup" >"$tmp/dup.log" 2>&1
expect_error "a duplicate YAML key is refused naming it and its line" "key 'seed' appears twice (the second at line 4)" "$tmp/dup.log" $?
printf '# only a comment\n\n' >"$tmp/empty.yaml"
"$bin" train --config "$tmp/empty.yaml" --output "$tmp/empty" >"$tmp/empty.log" 2>&1
expect_error "an empty (comment-only) config is refused" "holds no settings" "$tmp/empty.log" $?
"$bin" train --config configs --output "$tmp/folder" >"$tmp/folder.log" 2>&1
expect_error "a folder as --config is refused" "configs: is a folder, not a YAML configuration file" "$tmp/folder.log" $?

# 4. Many bad values at once: each named, before any allocation (the crop would need terabytes).
"$bin" train "${common[@]}" --set model.decoder.heads=5 --set input.crop_size=0 --set loss.num_points=0 \
  --set model.decoder.dec_layers=0 --set data.workers=0 --set data.prefetch=0 --set model.backbone.depths=[1,1] \
  --set solver.base_learning_rate=-1 --set solver.clip_grad_norm=-0.01 --set solver.ims_per_batch=0 \
  --output "$tmp/many" >"$tmp/many.log" 2>&1; code=$?
missing=()
for key in model.decoder.heads input.crop_size loss.num_points model.decoder.dec_layers data.workers data.prefetch \
           model.backbone.depths solver.base_learning_rate solver.clip_grad_norm solver.ims_per_batch; do
  grep -q "^  $key: " "$tmp/many.log" || missing+=("$key")
done
if [ ${#missing[@]} -eq 0 ]; then
  expect_error "10 bad values: every key named in one error" "the configuration cannot be used (10 problem(s))" "$tmp/many.log" "$code"
else
  bad "10 bad values" "not named: ${missing[*]}; $(head -c 600 "$tmp/many.log")"
fi
"$bin" train "${common[@]}" --set input.crop_size=60000 --output "$tmp/huge" >"$tmp/huge.log" 2>&1
expect_error "input.crop_size 60000 refused by the memory estimate" "more than this machine's" "$tmp/huge.log" $?
"$bin" train "${common[@]}" --set input.crop_size=100000 --output "$tmp/huge" >"$tmp/huge.log" 2>&1
expect_error "input.crop_size 100000 refused by its bound" "input.crop_size: must be at most 65536" "$tmp/huge.log" $?
"$bin" train "${common[@]}" --set model.decoder.num_classes=2 --output "$tmp/classes" >"$tmp/classes.log" 2>&1
expect_error "num_classes below the dataset's refused" "2 is fewer than the dataset's 5 classes" "$tmp/classes.log" $?
for set in seed=-1 input.crop_size=96.5 solver.base_learning_rate=.inf; do
  "$bin" train "${common[@]}" --set "$set" --output "$tmp/value" >"$tmp/value.log" 2>&1
  expect_error "--set $set names the key and the problem" "Error: --set $set: '${set%%=*}' must be" "$tmp/value.log" $?
done

# 5. A fresh run into a folder that holds a run: refused, files untouched; a failed invocation keeps config.yaml.
"$bin" train "${common[@]}" --set solver.max_iter=4 --set checkpoint.period=2 --output "$tmp/run" >"$tmp/run.log" 2>&1
before=$(cd "$tmp/run" && find . -type f -exec md5sum {} + | sort)
"$bin" train "${common[@]}" --set solver.max_iter=4 --output "$tmp/run" >"$tmp/again.log" 2>&1; code=$?
expect_error "a fresh run into a run's folder is refused" "already holds a run" "$tmp/again.log" "$code"
"$bin" train "${common[@]}" --set solver.max_iter=8 --set loss.num_points=0 --output "$tmp/run" --resume >"$tmp/badresume.log" 2>&1
after=$(cd "$tmp/run" && find . -type f -exec md5sum {} + | sort)
if [ "$before" = "$after" ]; then ok "the refused and the failed invocations changed no file of the run (config.yaml included)"; else bad "run folder changed" "$(diff <(echo "$before") <(echo "$after") | head -4)"; fi
if "$bin" train "${common[@]}" --set solver.max_iter=3 --output "$tmp/run" --overwrite >"$tmp/overwrite.log" 2>&1 \
   && [ "$(grep -vc '"eval"' "$tmp/run/metrics.jsonl")" = 3 ] && [ ! -f "$tmp/run/model_0000002.h5" ]; then
  ok "--overwrite starts the run over (old checkpoints and metrics deleted)"
else
  bad "--overwrite" "$(tail -2 "$tmp/overwrite.log")"
fi

# 6. Exit codes: a mistyped command line is a usage error (64, with usage); so is a numeric option out of range.
"$bin" train --config configs/smoke.yaml --no-such-option >"$tmp/usage.log" 2>&1; code=$?
if [ "$code" -eq 64 ] && grep -q '^Usage:' "$tmp/usage.log"; then ok "an unknown option exits 64 with the usage"; else bad "usage error" "exit $code"; fi
"$bin" train "${common[@]}" --iterations=-5 --output "$tmp/neg" >"$tmp/neg.log" 2>&1; code=$?
if [ "$code" -eq 64 ] && grep -q -- '--iterations must be at least 1' "$tmp/neg.log"; then ok "--iterations=-5 refused"; else bad "--iterations=-5" "exit $code: $(head -2 "$tmp/neg.log")"; fi
# A negative number after a numeric option is its value (as argparse reads it), checked like any other.
neg_case() {   # neg_case EXPECTED-MESSAGE ARGS…: exit 64 and the message, nothing written
  local want=$1; shift
  "$bin" "$@" >"$tmp/neg.log" 2>&1; code=$?
  if [ "$code" -eq 64 ] && grep -qF -- "$want" "$tmp/neg.log" && [ ! -e "$tmp/neg" ]; then ok "$1$([ "${2#-}" = "$2" ] && echo " $2"): $want (64)"; else bad "$*" "exit $code: $(head -2 "$tmp/neg.log")"; fi
}
neg_case '--iterations must be at least 1, got -5' train "${common[@]}" --iterations -5 --output "$tmp/neg"
neg_case '--images must be at least 1, got -3' data synth --format coco-instance --out "$tmp/neg" --images -3
neg_case '--annotations must be at least 0, got -3' data synth --format coco-instance --out "$tmp/neg" --annotations-only --annotations -3
neg_case '--max-images must be at least 0, got -1' eval "${common[@]}" --weights "$tmp/neg/none.h5" --max-images -1
neg_case '--score-threshold must be a finite number ≥ 0 (scores are within 0…1), got -0.5' predict "${common[@]}" --weights "$tmp/neg/none.h5" --input "$tmp/neg/a.png" --output "$tmp/neg" --score-threshold -0.5
neg_case '--steps must be at least 1, got -2' bench step --config configs/bench.yaml --steps -2
# bench step --inference-only times the inference forward alone (and trains nothing).
"$bin" bench step "${common[@]}" --steps 2 --inference-only >"$tmp/bench-inf.log" 2>&1; code=$?
if [ $code -eq 0 ] && grep -q "^inference forwards  *[0-9.]* [0-9.]* s" "$tmp/bench-inf.log" && grep -q "^inference (median)" "$tmp/bench-inf.log" \
   && ! grep -q "final loss" "$tmp/bench-inf.log"; then
  ok "bench step --inference-only: two timed inference forwards, no training step"
else
  bad "bench step --inference-only" "exit $code: $(tail -3 "$tmp/bench-inf.log")"
fi
# The decoder's attention in the memory bound: 100,000 queries are refused by key (they ended in an allocation failure).
for cmd in train "bench step"; do
  # shellcheck disable=SC2086
  "$bin" $cmd "${common[@]}" --set model.decoder.num_queries=100000 --set solver.max_iter=1 $([ "$cmd" = train ] && echo --output "$tmp/neg-q") \
    >"$tmp/queries.log" 2>&1
  expect_error "$cmd with 100,000 queries: refused by the activation memory bound" "model.decoder.num_queries: 100000 queries" "$tmp/queries.log" $?
done
neg_case '--seeds: 1 is listed twice' experiment-report --runs "$tmp" --seeds "1 2 1" --output "$tmp/neg" --steps 4 --ranks 1 --wall-seconds 1 --command x
neg_case '--arms: mpformer is listed twice' experiment-report --runs "$tmp" --seeds "1" --arms "mask2former mpformer mpformer" --output "$tmp/neg" \
  --steps 4 --ranks 1 --wall-seconds 1 --command x
neg_case '--images must be at least 1, got -1' bench data --images -1

# 7. SIGTERM to the launcher: the ranks write a checkpoint and everything exits 0.
cluster/launch.sh -n 2 -- train "${common[@]}" --set solver.max_iter=100000 --set checkpoint.period=0 --output "$tmp/term" >"$tmp/term.log" 2>&1 &
launcher=$!
for _ in $(seq 1 600); do grep -q '^step' "$tmp/term.log" 2>/dev/null && break; sleep 0.2; done
sleep 1
kill -TERM "$launcher"
for _ in $(seq 1 900); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.2; done   # at most 3 minutes
kill -KILL "$launcher" 2>/dev/null; wait "$launcher"; code=$?
latest=$(cat "$tmp/term/last_checkpoint" 2>/dev/null || true)
if [ "$code" -eq 0 ] && [ -n "$latest" ] && "$bin" checkpoint inspect "$tmp/term/$latest" >/dev/null 2>&1; then
  ok "SIGTERM to cluster/launch.sh: checkpoint $latest and exit 0"
else
  bad "SIGTERM to the launcher" "exit $code, pointer '$latest'; $(tail -3 "$tmp/term.log")"
fi

# 8. data.on_bad_sample: skip — a corrupt image is skipped in training and in the periodic evaluation, and the
#    per-epoch summary gathers every rank's skips (the same count with 1 and 2 ranks).
cp -r "$tmp/data" "$tmp/baddata"
bad_image=$(ls "$tmp/baddata/train2017" | sed -n 3p)
printf 'not an image' >"$tmp/baddata/train2017/$bad_image"
python3 - "$tmp/baddata/annotations/instances_train2017.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
a = dict(d["annotations"][0]); a["id"] = 999999; a["category_id"] = 12345   # a record the index drops under skip
d["annotations"].append(a)
json.dump(d, open(sys.argv[1], "w"))
EOF
skipset=(--config configs/smoke.yaml --set data.root="$tmp/baddata" --set data.on_bad_sample=skip --set solver.max_iter=8
         --set checkpoint.period=0 --set eval.period=4 --set eval.split=train2017 --set eval.max_images=6)
for n in 1 2; do
  cluster/launch.sh -n $n -- train "${skipset[@]}" --output "$tmp/skip$n" >"$tmp/skip$n.log" 2>&1; code=$?
  summaries=$(grep -c "^epoch [0-9]*: skipped 1 bad sample(s) on 1 of $n rank(s)" "$tmp/skip$n.log")
  evals=$(grep -c '"eval":{' "$tmp/skip$n/metrics.jsonl" 2>/dev/null)
  if [ "$code" -eq 0 ] && [ "$summaries" -ge 2 ] && [ "$evals" = 2 ] && grep -q "skipped 1 unreadable image(s) (data.on_bad_sample: skip)" "$tmp/skip$n.log" \
     && grep -q "instances_train2017.json: dropped 1 bad record(s) while indexing" "$tmp/skip$n.log"; then
    ok "on_bad_sample=skip with $n rank(s): the dropped record logged, $summaries epoch summaries of 1 skipped sample, 2 evaluations that skip it"
  else
    bad "on_bad_sample=skip with $n rank(s)" "exit $code, $summaries summaries, $evals evaluations; $(grep -m3 -E 'Error|skipped' "$tmp/skip$n.log")"
  fi
done

# 8b. Under skip, samples whose replacements all fail too (here a layout key naming a folder that does not exist, so
#     every image is unreadable) stop training with exit 1 and a message naming the first failure, on every rank.
for n in 1 2; do
  cluster/launch.sh -n $n -- train "${skipset[@]}" --set 'data.image_folder=typo/{split}' --set eval.period=0 --output "$tmp/noimages$n" \
    >"$tmp/noimages$n.log" 2>&1; code=$?
  if [ "$code" -eq 1 ] && grep -q "sample(s) of a batch of [0-9]* could not be read, nor their replacements (data.on_bad_sample: skip; .*typo/train2017/" \
       "$tmp/noimages$n.log" && ! grep -q "Fatal error\|precondition" "$tmp/noimages$n.log"; then
    ok "on_bad_sample=skip with every image unreadable, $n rank(s): exit 1 naming the first unreadable file"
  else
    bad "on_bad_sample=skip, every image unreadable, $n rank(s)" "exit $code; $(tail -3 "$tmp/noimages$n.log")"
  fi
done

# 8c. A loader that cannot start its worker threads (the user's thread limit, ulimit -u, as a container's pids limit
#     would do) stops with exit 1 naming data.workers, not a crash. The limit binds an unprivileged user only: as root
#     the run is made as nobody, from copies it can read.
mkdir -p "$tmp/nproc" && cp "$bin" configs/smoke.yaml "$tmp/nproc/" && chmod -R a+rwX "$tmp/nproc" && chmod a+rx "$tmp" && chmod -R a+rX "$tmp/data"
if [ "$(id -u)" = 0 ]; then as=(runuser -u nobody --); user=nobody; else as=(); user=$(id -un); fi
tasks=$(ps -L -u "$user" --no-headers 2>/dev/null | wc -l)
(cd "$tmp/nproc" && "${as[@]}" bash -c 'ulimit -u "$1" && shift && exec "$@"' limit $((tasks + 24)) ./maskpilot train --config smoke.yaml \
   --set data.root="$tmp/data" --set data.workers=64 --set train.threads=1 --set solver.max_iter=2 --set checkpoint.period=0 \
   --output "$tmp/nproc/run") >"$tmp/nproc.log" 2>&1
expect_error "a loader that cannot start its threads (ulimit -u)" "pthread_create failed (error 11" "$tmp/nproc.log" $?
grep -q "lower data.workers" "$tmp/nproc.log" || bad "the thread-limit error names data.workers" "$(tail -2 "$tmp/nproc.log")"

# 9. A global batch that straddles an epoch boundary (10 images, batches of 4 on 2 ranks: each rank's first sample
#    can be in different epochs) must not desynchronize the ranks' collectives: the run ends, it does not hang.
"$bin" data synth --format coco-instance --out "$tmp/ten" --images 10 --size 96x96 --seed 6 >/dev/null
timeout 180 cluster/launch.sh -n 2 -- train --config configs/smoke.yaml --set data.root="$tmp/ten" --set solver.max_iter=12 \
  --set checkpoint.period=0 --output "$tmp/straddle" >"$tmp/straddle.log" 2>&1; code=$?
if [ "$code" -eq 0 ] && [ -f "$tmp/straddle/model_final.h5" ] && [ "$(grep -c '"step"' "$tmp/straddle/metrics.jsonl")" = 12 ]; then
  ok "2 ranks over epochs that split global batches: 12 steps, no hang"
else
  bad "global batches straddling epochs" "exit $code (124 = timed out: a hang); $(tail -3 "$tmp/straddle.log")"
fi

# 10. A dataset with no images (every record dropped, or an empty "images" list): exit 1 naming data.root and the split,
#     not the sampler's bare "the dataset is empty".
mkdir -p "$tmp/nodata/annotations"
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d["images"] = []; d["annotations"] = []; json.dump(d, open(sys.argv[2], "w"))' \
  "$tmp/data/annotations/instances_train2017.json" "$tmp/nodata/annotations/instances_train2017.json"
"$bin" train --config configs/smoke.yaml --set data.root="$tmp/nodata" --set solver.max_iter=2 --set eval.period=0 \
  --output "$tmp/nodata-run" >"$tmp/nodata.log" 2>&1
expect_error "a dataset without images names data.root and the split" \
  "data.root $tmp/nodata: the coco-instance split 'train2017' has no training images" "$tmp/nodata.log" $?

# 10b. data.train_split as a list trains the splits as one dataset (the log counts each); a split whose categories differ
#      is refused naming both JSON files before anything trains.
"$bin" data synth --format coco-instance --out "$tmp/data" --images 4 --size 96x96 --seed 6 --split extra >/dev/null
"$bin" data synth --format coco-instance --out "$tmp/data" --images 2 --size 96x96 --seed 7 --split other --classes 6 >/dev/null
"$bin" train "${common[@]}" --set 'data.train_split=[train2017, extra]' --set solver.max_iter=2 --set eval.period=0 \
  --output "$tmp/splits-run" >"$tmp/splits.log" 2>&1; code=$?
if [ "$code" -eq 0 ] && grep -qF "data: 20 training images (coco-instance in $tmp/data: train2017 16, extra 4), 5 classes" "$tmp/splits.log" \
   && [ -f "$tmp/splits-run/model_final.h5" ]; then
  ok "data.train_split [train2017, extra] trains on 20 images"
else
  bad "data.train_split as a list" "exit $code; $(tail -3 "$tmp/splits.log")"
fi
"$bin" train "${common[@]}" --set 'data.train_split=[train2017, other]' --set solver.max_iter=2 --set eval.period=0 \
  --output "$tmp/splits-bad" >"$tmp/splits-bad.log" 2>&1
expect_error "listed splits with other categories are refused naming the files" \
  "data.train_split: the split 'other' ($tmp/data/annotations/instances_other.json) does not have the classes of 'train2017': 6 classes, 'train2017' 5" \
  "$tmp/splits-bad.log" $?

# 11. Images whose short side rounds to 0 pixels in the test-time resize (1×4000 at max_size_test 160; 300×100 at
#     max_size_test 1): predicted at a 1-pixel side, exit 0 (they reached a precondition in ResizeTransform).
python3 - "$tmp" <<'EOF2'
import struct, sys, zlib
def png(path, w, h):
    raw = b"".join(b"\x00" + bytes([(x * 7 + y * 3) % 256 for x in range(w) for _ in range(3)]) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
png(sys.argv[1] + "/strip.png", 4000, 1)
png(sys.argv[1] + "/tall.png", 100, 300)
EOF2
"$bin" predict --config configs/smoke.yaml --set data.root="$tmp/data" --weights "$tmp/straddle/model_final.h5" \
  --input "$tmp/strip.png" --output "$tmp/thin-out" >"$tmp/thin.log" 2>&1; t1=$?
"$bin" predict --config configs/smoke.yaml --set data.root="$tmp/data" --set input.max_size_test=1 \
  --weights "$tmp/straddle/model_final.h5" --input "$tmp/tall.png" --output "$tmp/tall-out" >"$tmp/tall.log" 2>&1; t2=$?
if [ $t1 -eq 0 ] && [ -s "$tmp/thin-out/strip_overlay.png" ] && [ $t2 -eq 0 ] && [ -s "$tmp/tall-out/tall_overlay.png" ]; then
  ok "images whose test-time resize rounds a side to 0 are predicted at a 1-pixel side"
else
  bad "thin images at test time" "exit $t1/$t2; $(tail -n 2 "$tmp/thin.log" "$tmp/tall.log" | cut -c1-300)"
fi
# 11b. A test-time resize far beyond the machine (predict: refused by the image's resized size before the model runs) and
#      a `model run` batch whose predictions cannot be held (refused naming --input, before the model is built).
"$bin" predict --config configs/smoke.yaml --set data.root="$tmp/data" --set input.min_size_test=65536 --set input.max_size_test=65536 \
  --weights "$tmp/straddle/model_final.h5" --input "$tmp/tall.png" --output "$tmp/huge-out" >"$tmp/huge.log" 2>&1
expect_error "a test-time resize beyond memory is refused by the image's resized size" \
  "$tmp/tall.png: the 100×300 image resized for the model to 21856×65536" "$tmp/huge.log" $?
"$bin" model run --config configs/smoke.yaml --set model.decoder.num_queries=16384 --set input.min_size_test=4096 --set input.max_size_test=4096 \
  --weights "$tmp/straddle/model_final.h5" --input "$tmp/tall.png" --output "$tmp/run-huge.h5" >"$tmp/run-huge.log" 2>&1
expect_error "model run refuses a batch whose predictions cannot be held" "--input: 1 image(s) in one 1376×4096 batch" "$tmp/run-huge.log" $?

# 11c. An output that is the command's own input (each replaced it and exited 0), a file where a folder is written, a
#      split name that leaves the dataset folder: usage errors, the input untouched.
ck="$tmp/straddle/model_final.h5"; ck_sum=$(md5sum "$ck" | cut -d' ' -f1); touch "$tmp/a-file"
ln -sfn "$tmp/straddle" "$tmp/straddle-link"
neg_case "--output $tmp/straddle-link/model_final.h5 is the file the checkpoint argument reads" checkpoint weights "$ck" --output "$tmp/straddle-link/model_final.h5"
neg_case "--output $ck is the file --from reads" model import --from "$ck" --output "$ck" --config configs/smoke.yaml
neg_case "--output $tmp/tall.png is the file --input reads" model run --config configs/smoke.yaml --weights "$ck" --input "$tmp/tall.png" --output "$tmp/tall.png"
neg_case "--output $ck is the file --weights reads" model run --config configs/smoke.yaml --weights "$tmp/straddle" --input "$tmp/tall.png" --output "$ck"
neg_case "--out $tmp/a-file is a file; give a folder" data synth --format coco-instance --out "$tmp/a-file" --images 2
neg_case "--split must be a folder name (no '/', not '.' or '..'), got '../escaped'" data synth --format coco-instance --out "$tmp/neg" --images 2 --split ../escaped
neg_case "--output $tmp/a-file is a file; give a folder" predict --config configs/smoke.yaml --weights "$ck" --input "$tmp/tall.png" --output "$tmp/a-file"
[ "$(md5sum "$ck" | cut -d' ' -f1)" = "$ck_sum" ] && file "$tmp/tall.png" | grep -q PNG && ok "the inputs of the refused commands are unchanged" \
  || bad "inputs after refused outputs" "the checkpoint or tall.png changed"

# 12. `maskpilot config`: the resolved configuration, every key; its output read back as --config gives itself; a bad
#     key or value is named (exit 1).
"$bin" config --config configs/smoke.yaml --set solver.max_iter=7 >"$tmp/resolved.yaml" 2>"$tmp/resolved.log"; c1=$?
"$bin" config --config "$tmp/resolved.yaml" >"$tmp/again.yaml" 2>>"$tmp/resolved.log"; c2=$?
"$bin" config --keys >"$tmp/keys.txt" 2>>"$tmp/resolved.log"; c3=$?
"$bin" config --set model.decoder.num_querys=5 >"$tmp/badkey.log" 2>&1; c4=$?
# (2^20 points in 2^20 encoder layers: petabytes, beyond any machine's memory)
"$bin" config --set model.pixel_decoder.encoder_points=1048576 --set model.pixel_decoder.encoder_layers=1048576 >"$tmp/points.log" 2>&1; c5=$?
if [ $c1 -eq 0 ] && [ $c2 -eq 0 ] && [ $c3 -eq 0 ] && grep -q "^  max_iter: 7$" "$tmp/resolved.yaml" && cmp -s "$tmp/resolved.yaml" "$tmp/again.yaml" \
   && grep -q "^model.decoder.num_queries = 100$" "$tmp/keys.txt" && grep -q "^data.test_split = " "$tmp/keys.txt" \
   && [ $c4 -eq 1 ] && grep -q "unknown key 'model.decoder.num_querys'" "$tmp/badkey.log" \
   && [ $c5 -eq 1 ] && grep -q "model.pixel_decoder: its parameters need at least" "$tmp/points.log"; then
  ok "config prints every key (round trip through --config; --keys); a bad key and a model beyond memory are named"
else
  bad "maskpilot config" "exit $c1/$c2/$c3/$c4/$c5: $(cat "$tmp/resolved.log" "$tmp/badkey.log" "$tmp/points.log" | tail -4)"
fi

echo "faults: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
