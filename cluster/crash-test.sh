#!/usr/bin/env bash
# Crash test behind `make crash-test` (not run by `make test` / CI; takes a few minutes).
# Trains the 2-rank smoke model (configs/smoke.yaml, checkpoint every 5 steps) on a small synthetic dataset and
# kills it with SIGKILL — every rank and mpirun — at CRASH_ROUNDS (default 20) random moments, resuming with
# `--resume` each time. Some rounds (CRASH_TMP_ROUNDS, default 6) wait for a `model_*.h5.tmp` file to appear and
# kill the moment it does, so those kills land inside a checkpoint write. After every kill it checks:
#   - every `*.h5` file under its final name passes `maskpilot checkpoint inspect` (all checksums verified);
#   - `last_checkpoint`, when present, names an existing intact file (no pointer is fine while no checkpoint exists);
#   - stale `*.tmp` files are allowed (a write interrupted before its rename) and only reported;
# and the next run's "resume: from PATH at iteration N" line must name the newest intact checkpoint found after
# the kill. Finally one more resume must run 10 steps and exit 0.
# Environment: CRASH_ROUNDS, CRASH_TMP_ROUNDS, CRASH_SEED (random delays; default: random), CRASH_KEEP=1 keeps
# the work folder (it is always kept when a round fails).
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.build/release/maskpilot
[ -x "$bin" ] || { echo "crash-test: $bin not found; run 'make build' first" >&2; exit 2; }
rounds=${CRASH_ROUNDS:-20}
tmp_rounds=${CRASH_TMP_ROUNDS:-6}
seed=${CRASH_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$seed
work=$(mktemp -d /tmp/maskpilot-crash-XXXXXX)
out="$work/run"
mkdir -p "$out"
shopt -s nullglob

"$bin" data synth --format coco-instance --out "$work/data" --images 32 --size 96x96 --seed 5 >/dev/null \
  || { echo "crash-test: data synth failed" >&2; exit 1; }
common=(--config configs/smoke.yaml --set data.root="$work/data" --set checkpoint.period=5
        --set solver.max_iter=1000000 --output "$out")
rank_pattern="^[^ ]*maskpilot train .*--output $out( |\$)"

# Which rounds aim at a checkpoint write: tmp_rounds of them, spread evenly (rounds 1-based).
declare -A aim=()
if [ "$tmp_rounds" -gt 0 ]; then
  for i in $(seq 1 "$tmp_rounds"); do aim[$(( i * rounds / tmp_rounds ))]=1; done
fi

now() { echo "${EPOCHREALTIME}"; }
rand_between() { # rand_between LO_MS HI_MS -> seconds with 3 decimals
  local ms=$(( $1 + (RANDOM * 32768 + RANDOM) % ($2 - $1 + 1) ))
  printf '%d.%03d' $(( ms / 1000 )) $(( ms % 1000 ))
}
# The newest intact checkpoint under its final name (model_final.h5 first, then by iteration), or "-".
newest_intact() {
  local f
  for f in $( { ls "$out" | grep -x 'model_final\.h5'; ls "$out" | grep -x 'model_[0-9]*\.h5' | sort -rV; } 2>/dev/null ); do
    if "$bin" checkpoint inspect "$out/$f" >/dev/null 2>&1; then echo "$f"; return; fi
  done
  echo "-"
}
iteration_of() { # iteration of a model_NNNNNNN.h5 name
  local n=${1#model_}; n=${n%.h5}; echo $(( 10#$n ))
}
wait_dead() { # wait until no rank of this output dir and no launcher is left
  local launcher=$1
  for _ in $(seq 1 200); do
    pgrep -f "$rank_pattern" >/dev/null || break
    pkill -KILL -f "$rank_pattern" 2>/dev/null; sleep 0.05
  done
  for _ in $(seq 1 200); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.05; done
  ! kill -0 "$launcher" 2>/dev/null && ! pgrep -f "$rank_pattern" >/dev/null
}

passed=0; failed=0; kills_in_write=0; resumes_ok=0; resumes_checked=0; unreadable=0; stale_total=0
declare -a rows=()
expected="-"   # the newest intact checkpoint after the previous kill: what the next resume must use
printf 'crash-test: %d rounds (%d aimed at a checkpoint write), seed %d, work folder %s\n' "$rounds" "$tmp_rounds" "$seed" "$work"

for r in $(seq 1 "$rounds"); do
  log="$work/round-$r.log"
  # Always --resume: it continues from the newest intact checkpoint, or starts fresh while there is none.
  args=(train "${common[@]}" --resume)
  touch "$work/round-start"
  cluster/launch.sh -n 2 -- "${args[@]}" >"$log" 2>&1 &
  launcher=$!
  disown "$launcher"   # no "Killed" job notices; wait_dead polls it instead of `wait`
  problems=()
  resumed="-"
  # Wait for training to begin: the resume line (resumed runs) or the rank processes (a fresh run).
  t0=$(now)
  for _ in $(seq 1 600); do
    if [ "$expected" != "-" ]; then grep -q '^resume: from ' "$log" && break
    else [ "$(pgrep -fc "$rank_pattern")" -ge 2 ] && break; fi
    kill -0 "$launcher" 2>/dev/null || break
    sleep 0.05
  done
  if [ "$expected" != "-" ]; then
    line=$(grep -m1 '^resume: from ' "$log")
    if [ -n "$line" ]; then
      resumed=$(basename "$(sed -E 's/^resume: from (.*) at iteration [0-9]+$/\1/' <<<"$line")")
      resumes_checked=$((resumes_checked + 1))
      if [ "$resumed" = "$expected" ]; then resumes_ok=$((resumes_ok + 1))
      else problems+=("resumed from $resumed, the newest intact checkpoint was $expected"); fi
    else
      problems+=("the resume did not start: $(tail -n 2 "$log" | tr '\n' ' ')")
    fi
  fi
  pids=$(pgrep -f "$rank_pattern" | tr '\n' ' ')
  if [ -n "${aim[$r]:-}" ]; then
    mode="aim"
    sleep "$(rand_between 0 1500)"
    # Spin (no forks) until a checkpoint write is under way, then kill at once.
    before=("$out"/*.h5.tmp)
    deadline=$(( ${EPOCHREALTIME%.*} + 30 ))
    while :; do
      cur=("$out"/*.h5.tmp)
      [ "${#cur[@]}" -gt "${#before[@]}" ] && break
      [ "${#before[@]}" -gt 0 ] && [ "${#cur[@]}" -gt 0 ] && [ "${cur[*]}" != "${before[*]}" ] && break
      [ "${EPOCHREALTIME%.*}" -ge "$deadline" ] && { problems+=("no .h5.tmp appeared within 30 s"); break; }
    done
    # shellcheck disable=SC2086
    kill -KILL $pids "$launcher" 2>/dev/null
  else
    mode="random"
    sleep "$(rand_between 200 3500)"
    # shellcheck disable=SC2086
    kill -KILL $pids "$launcher" 2>/dev/null
  fi
  delay=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.2f", b - a}')
  pkill -KILL -f "$rank_pattern" 2>/dev/null
  wait_dead "$launcher" || problems+=("ranks still alive after SIGKILL")
  # A .tmp written during this round and left behind means the kill interrupted a write before its rename
  # (older stale .tmp files from earlier rounds stay until the same name is written again).
  stale=("$out"/*.tmp)
  stale_names=$(for f in "${stale[@]}"; do basename "$f"; done | tr '\n' ' ')
  stale_total=${#stale[@]}
  if [ -n "$(find "$out" -maxdepth 1 -name '*.tmp' -newer "$work/round-start" -print -quit)" ]; then
    in_write=yes; kills_in_write=$((kills_in_write + 1))
  else in_write=no; fi
  # Every file under its final name must be intact.
  for f in "$out"/*.h5; do
    if ! "$bin" checkpoint inspect "$f" >"$work/inspect.txt" 2>&1; then
      unreadable=$((unreadable + 1))
      problems+=("unreadable under its final name: $(basename "$f"): $(tail -n 1 "$work/inspect.txt")")
    fi
  done
  newest=$(newest_intact)
  pointer=$(cat "$out/last_checkpoint" 2>/dev/null | tr -d '\n' || true)
  if [ -n "$pointer" ]; then
    if [ ! -f "$out/$pointer" ]; then problems+=("last_checkpoint names $pointer, which does not exist")
    elif ! "$bin" checkpoint inspect "$out/$pointer" >/dev/null 2>&1; then problems+=("last_checkpoint names $pointer, which is damaged"); fi
    # A kill between a checkpoint's rename and the pointer update leaves the pointer one file behind; that is
    # allowed here, but then the next resume must still pick the newest intact file (checked next round).
    [ "$pointer" != "$newest" ] && echo "crash-test: round $r: note: last_checkpoint names $pointer, the newest intact checkpoint is $newest"
  elif [ "$newest" != "-" ]; then
    problems+=("no last_checkpoint although $newest exists")
  fi
  if [ "$newest" = "-" ] && [ "$expected" != "-" ]; then problems+=("no intact checkpoint left (there was $expected)"); fi
  # The previous newest checkpoint must not have been replaced by an older one.
  if [ "$expected" != "-" ] && [ "$newest" != "-" ] && [ "$(iteration_of "$newest")" -lt "$(iteration_of "$expected")" ]; then
    problems+=("the newest intact checkpoint went back from $expected to $newest")
  fi
  rows+=("$(printf '%5s  %-6s  %7s  %-8s  %-16s  %-16s  %-5s  %s' "$r" "$mode" "$delay" "$in_write" "$resumed" "$newest" \
             "$([ ${#problems[@]} -eq 0 ] && echo ok || echo FAIL)" "${stale_names:--}")")
  if [ ${#problems[@]} -eq 0 ]; then passed=$((passed + 1))
  else
    failed=$((failed + 1))
    for p in "${problems[@]}"; do echo "crash-test: round $r: $p"; done
  fi
  printf 'crash-test: round %d/%d: %s kill after %s s, in write: %s, resumed from %s, newest intact now %s\n' \
    "$r" "$rounds" "$mode" "$delay" "$in_write" "$resumed" "$newest"
  expected=$newest
done

# One final resume must complete 10 steps.
log="$work/final.log"
final_problems=()
if [ "$expected" = "-" ]; then
  final_problems+=("no checkpoint to resume from")
elif cluster/launch.sh -n 2 -- train "${common[@]}" --resume --iterations 10 >"$log" 2>&1; then
  line=$(grep -m1 '^resume: from ' "$log")
  got=$(basename "$(sed -E 's/^resume: from (.*) at iteration [0-9]+$/\1/' <<<"$line")")
  start=$(sed -E 's/^.* at iteration ([0-9]+)$/\1/' <<<"$line")
  resumes_checked=$((resumes_checked + 1))
  if [ "$got" = "$expected" ]; then resumes_ok=$((resumes_ok + 1)); else final_problems+=("resumed from $got, expected $expected"); fi
  after=$(newest_intact)
  if [ "$after" = "-" ] || [ "$(iteration_of "$after")" -ne $(( start + 10 )) ]; then
    final_problems+=("after 10 steps from iteration $start the newest checkpoint is $after")
  fi
else
  final_problems+=("the final resume failed: $(tail -n 3 "$log" | tr '\n' ' ')")
fi
if [ ${#final_problems[@]} -eq 0 ]; then
  passed=$((passed + 1)); final_status="ok: resumed from $expected at iteration $start, ran 10 steps to $after"
else
  failed=$((failed + 1)); final_status="FAILED: ${final_problems[*]}"
fi

echo
echo "crash-test summary (seed $seed)"
printf '%5s  %-6s  %7s  %-8s  %-16s  %-16s  %-5s  %s\n' round mode delay_s in_write resumed_from newest_after ok stale_tmp
for row in "${rows[@]}"; do echo "$row"; done
echo "final resume: $final_status"
echo "kills: $rounds ($kills_in_write during a checkpoint or pointer write; $stale_total stale .tmp file(s) in the folder at the end, allowed)"
echo "resumes from the newest intact checkpoint: $resumes_ok of $resumes_checked"
echo "unreadable .h5 files under their final name: $unreadable"
echo "crash-test: $passed passed, $failed failed"
if [ "$failed" -eq 0 ] && [ -z "${CRASH_KEEP:-}" ]; then rm -rf "$work"; else echo "crash-test: work folder kept: $work"; fi
[ "$failed" -eq 0 ]
