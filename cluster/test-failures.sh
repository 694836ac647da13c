#!/usr/bin/env bash
# Failure tests of `maskpilot train` under 2 MPI ranks (a failing rank ends the job; mismatched configurations stop at start); `make test` runs it.
# (c) a rank that fails on a bad sample ends the whole job promptly, non-zero, with the rank and the file named
#     (run twice, corrupting each image of a 2-image dataset in turn, so each rank fails once while the
#     other one waits in a collective);
# (d) ranks started with different configurations stop at start with a message naming the difference.
# Uses the release binary that `make test` builds; builds nothing itself.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/maskpilot
[ -x "$bin" ] || { echo "test-failures: $bin not found; run 'swift build -c release' first" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/maskpilot-failures.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0; failed=0
pass() { echo "PASS  $1"; passed=$((passed + 1)); }
fail() { echo "FAIL  $1"; failed=$((failed + 1)); [ -f "${2:-}" ] && sed 's/^/      | /' "$2" | tail -n 25; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b - a}'; }

# A 2-image dataset with global batch 2: the first global batch holds both images, one per rank.
"$bin" data synth --format coco-instance --out "$work/clean" --images 2 --size 96x96 --seed 1 >/dev/null || exit 2
images=("$work"/clean/train2017/*.jpg)
[ "${#images[@]}" -eq 2 ] || { echo "test-failures: expected 2 synthetic images" >&2; exit 2; }

# (c) bad sample on one rank.
ranks_named=""
for i in 0 1; do
  data="$work/data$i"; cp -r "$work/clean" "$data"
  name=$(basename "${images[$i]}")
  head -c 200 "$data/train2017/$name" > "$data/bad.jpg" && mv "$data/bad.jpg" "$data/train2017/$name"
  log="$work/bad$i.log"
  t0=$(now)
  timeout 60 cluster/launch.sh -n 2 -- train --config configs/smoke.yaml --set data.root="$data" \
    --set data.on_bad_sample=error --set solver.ims_per_batch=2 --set data.workers=1 --output "$work/out$i" >"$log" 2>&1
  rc=$?; t=$(elapsed "$t0" "$(now)")
  rank=$(grep -o "^rank [01]: .*$name" "$log" | head -n 1 | cut -c6)
  case="(c) corrupt $name: exit $rc in ${t} s"
  if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then fail "$case — expected a non-zero exit without the 60 s timeout" "$log"
  elif awk -v t="$t" 'BEGIN{exit !(t >= 20)}'; then fail "$case — took ≥ 20 s" "$log"
  elif [ -z "$rank" ]; then fail "$case — no 'rank N: …$name' message" "$log"
  else pass "$case, rank $rank named with the file"; ranks_named="$ranks_named$rank"
  fi
done
case "$ranks_named" in
  01|10) pass "(c) both ranks' failures were reported (ranks named: $ranks_named)" ;;
  *) fail "(c) expected one failure on each rank, got ranks '$ranks_named'" ;;
esac

# (d) configuration mismatch: rank 1 runs with a different number of queries.
cat > "$work/per-rank.sh" <<EOF
#!/usr/bin/env bash
q=16; [ "\${OMPI_COMM_WORLD_RANK:-0}" = 1 ] && q=20
exec "$PWD/$bin" train --config configs/smoke.yaml --set data.root="$work/clean" --set solver.ims_per_batch=2 \
  --set model.decoder.num_queries=\$q --output "$work/out-mismatch" --iterations 1
EOF
chmod +x "$work/per-rank.sh"
log="$work/mismatch.log"
t0=$(now)
timeout 60 cluster/launch.sh -n 2 --bin "$work/per-rank.sh" >"$log" 2>&1
rc=$?; t=$(elapsed "$t0" "$(now)")
case="(d) configuration mismatch: exit $rc in ${t} s"
if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then fail "$case — expected a non-zero exit without the timeout" "$log"
elif ! grep -q "configuration differs between ranks" "$log"; then fail "$case — no 'configuration differs between ranks'" "$log"
elif ! grep -q "rank 1 differs from rank 0: line [0-9]*: rank 0 has '.*num_queries: 16', rank 1 has '.*num_queries: 20'" "$log"; then
  fail "$case — the message does not name the differing line (num_queries)" "$log"
else pass "$case, names rank 1 and the num_queries line"
fi

echo "failures: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
