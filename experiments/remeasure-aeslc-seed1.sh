#!/usr/bin/env bash
# Seed 1 of the AESLC fine-tuning comparison (XENT and MIXER with the ROUGE-1/2 reward) as two processes
# side by side, with the definitions of experiments/compare-objectives.sh; what issue #12's session had time
# for (the full table is `experiments/compare-objectives.sh aeslc`). From checkpoints/summarize.pt:
#   experiments/remeasure-aeslc-seed1.sh xent &  experiments/remeasure-aeslc-seed1.sh mixer &  wait
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
export OMP_NUM_THREADS=1
OUT=results/objectives
eval "$(sed -n '/^run() {/,/^}/p' experiments/compare-objectives.sh)"
eval "$(sed -n '/^AESLC=(/,/^AESLC_METRICS=/p' experiments/compare-objectives.sh)"
A=checkpoints/summarize.pt
case $1 in
  xent) run aeslc-xent-s1 $A "$AESLC_METRICS" -- --recipe summarize --set objective.name=xent "${AESLC[@]}" --set train.seed=1 ;;
  mixer) run aeslc-mixer-mix-s1 $A "$AESLC_METRICS" -- --recipe mixer-summarize "${AESLC[@]}" --set train.seed=1 ;;
esac
echo "AESLC $1 DONE"
