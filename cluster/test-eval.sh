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
finish
