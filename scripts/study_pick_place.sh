#!/usr/bin/env bash
# The pick-and-place study behind docs/BENCHMARKS.md ("HarmoWAM closed loop"): one command, results in files.
#
#   make study                     # or: bash scripts/study_pick_place.sh [OUT]
#
# 1. 100 scripted demonstrations (seeds 0-99, in-domain) -> OUT/data (harmowam sim demos)
# 2. HarmoWAM, default size and steps, one torch thread -> OUT/harmowam (harmowam train)
#    then HW_MORE_STEPS (8000) more expert steps from it (init_from, world model frozen) -> OUT/harmowam_more
# 3. LeRobot ACT, default config, ACT_STEPS steps (default 1200: about HarmoWAM's CPU time here) -> OUT/act
# 4. harmowam eval on held-out seeds (1000-1019) for the in-domain scenes and the position (spawn cells between
#    the training ones), position_far (the mirrored layout) and background variations: HarmoWAM (both), ACT
#    (re-planning every 6 and every 25 steps), the scripted expert (the reference); the routing ablations of
#    the first HarmoWAM, in domain -> OUT/eval_*.json
#    (An OUT/data recorded before in_domain was restricted to the even spawn cells covers the position cells
#    too: record it again, or `position` is not held out.)
# Each step is skipped when its output already exists, so an interrupted study goes on where it stopped
# (a half-written training directory is resumed by harmowam train --resume).
# Knobs (environment): EPISODES (100), HW_STEPS (default schedule), HW_MORE_STEPS (8000), ACT_STEPS (1200),
# EVAL_EPISODES (20).
# Takes ~1.5 h on the 2-core development VM (the two trainings run side by side, one core each).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/study_pick_place}
EPISODES=${EPISODES:-100}
ACT_STEPS=${ACT_STEPS:-1200}
HW_MORE_STEPS=${HW_MORE_STEPS:-8000}
EVAL_EPISODES=${EVAL_EPISODES:-20}
H=.venv/bin/harmowam
mkdir -p "$OUT"

if [ ! -f "$OUT/data/meta/info.json" ]; then
  $H sim demos --task pick_place --episodes "$EPISODES" --out "$OUT/data" --json > "$OUT/demos.json"
fi

train_harmowam() {
  local steps=()
  [ -n "${HW_STEPS:-}" ] && steps=(--steps "$HW_STEPS")
  if [ -f "$OUT/harmowam/summary.json" ] && [ -d "$OUT/harmowam/final" ]; then return 0; fi
  if [ -d "$OUT/harmowam/checkpoints" ]; then
    $H train --dataset "$OUT/data" --out "$OUT/harmowam" --resume --threads 1 --no-progress --json > "$OUT/train_harmowam.json"
  else
    $H train --dataset "$OUT/data" --out "$OUT/harmowam" "${steps[@]}" --threads 1 --no-progress --json > "$OUT/train_harmowam.json"
  fi
}
train_act() {
  if [ -f "$OUT/act/harmowam_baseline.json" ]; then return 0; fi
  rm -rf "$OUT/act"
  $H baseline act --dataset "$OUT/data" --out "$OUT/act" --steps "$ACT_STEPS" --torch-threads 1 \
    --set log_freq=50 --set save_freq="$ACT_STEPS" > "$OUT/train_act.log" 2>&1
}
train_more() {
  if [ -f "$OUT/harmowam_more/summary.json" ] && [ -d "$OUT/harmowam_more/final" ]; then return 0; fi
  printf 'autoencoder_steps: 0\nworld_steps: 0\nexpert_steps: %s\ninit_from: %s\n' "$HW_MORE_STEPS" "$OUT/harmowam" > "$OUT/more.yaml"
  local again=()
  [ -d "$OUT/harmowam_more/checkpoints" ] && again=(--resume)
  $H train --dataset "$OUT/data" --out "$OUT/harmowam_more" --config "$OUT/more.yaml" "${again[@]}" --threads 1 --no-progress --json > "$OUT/train_harmowam_more.json"
}
(train_harmowam && train_more) & hw=$!
train_act & act=$!
wait $hw
wait $act

evaluate() {  # NAME POLICY [extra harmowam eval args]
  local name=$1 policy=$2
  shift 2
  [ -f "$OUT/eval_$name.json" ] && return 0
  $H eval --policy "$policy" --task pick_place --variations in_domain position position_far background \
    --episodes "$EVAL_EPISODES" --out "$OUT/eval_$name.json" "$@" 2> "$OUT/eval_$name.log"
}
evaluate scripted scripted
evaluate harmowam "$OUT/harmowam"
evaluate harmowam_more "$OUT/harmowam_more"
evaluate act "$OUT/act"
evaluate act_replan25 "$OUT/act" --replan-every 25
for routing in predictive reactive average reversed; do
  evaluate "harmowam_$routing" "$OUT/harmowam" --set routing=$routing --variations in_domain  # ablations: in domain
done
echo "results: $OUT/eval_*.json"
