#!/usr/bin/env bash
# cluster/experiment.sh tests run by `make test`: the powered preset at a toy size (2 seeds × {mask2former, mpformer},
# 4 steps of 64² images from a 2-step shared initialization, 2 MPI ranks):
#  1. a first invocation trains the initialization and the four runs, records each (REPORT/runs/<run>/; the init's
#     backbone + pixel decoder as the weights file every run starts from) with the dataset's counts, draws the first
#     seed's overlays and writes a report read from the records;
#  2. with the runs folder gone (a fresh clone: only the records remain), a second invocation trains and synthesizes
#     nothing and writes the same report from the records alone;
#  3. with the runs folder gone and one record removed, only that run is trained again, from the recorded
#     initialization, to the same record (every logged loss, gradient norm and AP the same);
#  4. a dataset synthesized with other options (its fingerprint differs from the recorded one), a variant asking for
#     other synthesis options than the dataset in its --out was made with, and recorded runs without the recorded
#     initialization, stop the script with exit 1 before anything is trained;
# and `maskpilot checkpoint weights` refuses a selection of nothing and a missing file.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=${MASKPILOT_BIN:-.build/release/maskpilot}
tmp=$(mktemp -d /tmp/maskpilot-experiment-XXXXXX)
[ -n "${KEEP_TMP:-}" ] || trap 'rm -rf "$tmp"' EXIT
passed=0; failed=0
ok() { echo "experiment test: $1: ok"; passed=$((passed + 1)); }
bad() { echo "experiment test: $1: FAILED — $2"; failed=$((failed + 1)); }
out=$tmp/out; report=$tmp/report; records=$report/runs
experiment() {
  MASKPILOT_BIN=$bin cluster/experiment.sh --preset powered --out "$out" --report "$report" --seeds "1 2" \
    --arms "mask2former mpformer" --steps 4 --eval-period 2 --init-steps 2 --train-images 8 --val-images 4 --size 64x64 \
    -- --set input.crop_size=64 --set input.min_size_test=64 --set input.max_size_test=96 --set solver.ims_per_batch=4 \
       --set loss.num_points=256 --set train.gradient_split_period=2
}
# An evaluation's results without its timing.
results() { python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); d.pop("seconds", None); print(json.dumps(d, sort_keys=True))' "$1"; }
runs=(mask2former-seed1 mpformer-seed1 mask2former-seed2 mpformer-seed2)
# What a record's training log says, without the timings and memory peaks (which differ between invocations).
logged() { python3 -c '
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    print(sorted((k, v) for k, v in d.items() if "second" not in k and k not in ("time", "timing", "images_per_s", "max_mem_mb")))
' "$1"; }

experiment > "$tmp/first.log" 2>&1; code=$?
complete=1
for r in init "${runs[@]}"; do [ -f "$records/$r/metrics.jsonl" ] && [ -f "$records/$r/config.yaml" ] || complete=0; done
for r in "${runs[@]}"; do
  [ -f "$records/$r/eval/results.json" ] && grep -q "weights: $records/init/weights.h5" "$records/$r/config.yaml" || complete=0
done
if [ $code -eq 0 ] && [ $complete -eq 1 ] && grep -qE '^[0-9a-f]{16}$' "$records/init/model_digest" \
   && "$bin" checkpoint weights "$records/init/weights.h5" --output "$tmp/copy.h5" | grep -q "model digest: $(cat "$records/init/model_digest")" \
   && grep -q '"train2017"' "$records/dataset.json" && h5ls -r "$records/init/weights.h5" > "$tmp/h5ls.txt" && grep -q "backbone" "$tmp/h5ls.txt" \
   && grep -q "pixel_decoder" "$tmp/h5ls.txt" && ! grep -q "predictor" "$tmp/h5ls.txt" && grep -q fingerprint "$records/dataset.json" \
   && ls "$report/overlays/mask2former/"*.png "$report/overlays/mpformer/"*.png >/dev/null 2>&1 \
   && grep -q -- "--runs $records" "$report/report.md" && [ -f "$report/summary.json" ]; then
  ok "the runs are recorded with the init's digest, the overlays drawn and the report read from the records"
else
  bad "first invocation" "exit $code; $(tail -3 "$tmp/first.log")"
fi
cp "$report/summary.json" "$tmp/summary1.json"

# A variant (other synthesis options) pointed at the same --out is refused before anything runs, naming both.
MASKPILOT_BIN=$bin cluster/experiment.sh --preset powered --out "$out" --report "$tmp/variant" --seeds "1" --arms "mask2former" \
  --steps 4 --eval-period 2 --init-steps 2 --train-images 8 --val-images 4 --size 64x64 --difficulty standard > "$tmp/variant.log" 2>&1; code=$?
if [ $code -eq 1 ] && grep -q "difficulty hard.*this run asks for (.*difficulty standard" "$tmp/variant.log" \
   && grep -q "its own --out and --report" "$tmp/variant.log" && ! grep -qE "experiment: training|^wrote [0-9]+ images" "$tmp/variant.log" \
   && [ ! -e "$tmp/variant" ]; then
  ok "a variant's synthesis options against the dataset in --out are refused before anything runs"
else
  bad "variant in the same --out" "exit $code; $(tail -2 "$tmp/variant.log")"
fi

# checkpoint weights refuses a selection of nothing and a missing file, naming them, and writes nothing.
"$bin" checkpoint weights "$tmp/copy.h5" --only 'decoder_typo.*' --output "$tmp/none.h5" > "$tmp/none.log" 2>&1; code=$?
"$bin" checkpoint weights "$tmp/absent.h5" --output "$tmp/none.h5" > "$tmp/absent.log" 2>&1; code2=$?
if [ $code -eq 1 ] && grep -qE "copy.h5: none of its [0-9]+ tensors matches --only decoder_typo" "$tmp/none.log" \
   && [ $code2 -eq 1 ] && grep -q "absent.h5" "$tmp/absent.log" && [ ! -e "$tmp/none.h5" ]; then
  ok "checkpoint weights: an empty selection and a missing file are refused by name"
else
  bad "checkpoint weights errors" "exit $code/$code2: $(cat "$tmp/none.log" "$tmp/absent.log" | head -3)"
fi

rm -rf "$out"
experiment > "$tmp/second.log" 2>&1; code=$?
same=$(python3 -c '
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for d in (a, b): d.pop("wall_seconds")
print(a == b)' "$tmp/summary1.json" "$report/summary.json" 2>&1)
if [ $code -eq 0 ] && ! grep -qE "experiment: training|^wrote [0-9]+ images" "$tmp/second.log" && [ ! -e "$out/init" ] \
   && [ "$(grep -c "recorded in $records, kept" "$tmp/second.log")" -eq 4 ] && [ "$same" = True ]; then
  ok "from the records alone nothing is trained and the report is the same"
else
  bad "records alone" "exit $code, same summary: $same; $(grep -E "training|kept" "$tmp/second.log" | head -5)"
fi

rm -rf "$out"
mv "$records/mpformer-seed2" "$tmp/recorded-mpformer-seed2"
experiment > "$tmp/third.log" 2>&1; code=$?
trained=$(grep "experiment: training" "$tmp/third.log" | sed 's|.*/||' | tr '\n' ' ')
if [ $code -eq 0 ] && [ "$trained" = "mpformer-seed2 " ] \
   && [ "$(logged "$records/mpformer-seed2/metrics.jsonl")" = "$(logged "$tmp/recorded-mpformer-seed2/metrics.jsonl")" ] \
   && [ "$(grep -c grad_norm "$records/mpformer-seed2/metrics.jsonl")" -ge 4 ] \
   && [ "$(results "$records/mpformer-seed2/eval/results.json")" = "$(results "$tmp/recorded-mpformer-seed2/eval/results.json")" ]; then
  ok "a missing run is trained again from the recorded initialization to the same record"
else
  bad "retrained run" "exit $code, trained: $trained; $(diff <(logged "$records/mpformer-seed2/metrics.jsonl") \
    <(logged "$tmp/recorded-mpformer-seed2/metrics.jsonl") | head -4)"
fi

# A dataset synthesized with other options is not the one the records were made on.
rm -rf "$out" "$records/mpformer-seed2"
MASKPILOT_BIN=$bin cluster/experiment.sh --preset powered --out "$out" --report "$report" --seeds "1 2" --arms "mask2former mpformer" \
  --steps 4 --eval-period 2 --init-steps 2 --train-images 9 --val-images 4 --size 64x64 > "$tmp/data.log" 2>&1; code=$?
if [ $code -eq 1 ] && grep -q "is not the one the runs in $records were made on" "$tmp/data.log" \
   && ! grep -q "experiment: training" "$tmp/data.log"; then
  ok "a dataset other than the recorded one (its fingerprint) stops the script before any run"
else
  bad "dataset fingerprint" "exit $code; $(tail -2 "$tmp/data.log")"
fi

rm -rf "$out" "$records/init"
experiment > "$tmp/fourth.log" 2>&1; code=$?
if [ $code -eq 1 ] && grep -q "not the initialization they started from" "$tmp/fourth.log" \
   && ! grep -q "experiment: training" "$tmp/fourth.log"; then
  ok "recorded runs without their initialization stop the script before anything is trained"
else
  bad "init mismatch" "exit $code; $(tail -3 "$tmp/fourth.log")"
fi

echo "experiment tests: $passed passed, $failed failed"
[ $failed -eq 0 ]
