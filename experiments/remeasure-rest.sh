#!/usr/bin/env bash
# The rest of issue #12's re-measurement, as two one-thread queues on a 2-core machine, with the run
# definitions of experiments/compare-objectives.sh (whose runs are skipped when their files exist, so run
# this where results/objectives/ holds only re-measured files):
#   experiments/remeasure-rest.sh a &  experiments/remeasure-rest.sh b &  wait
#   a: AESLC seed 1 ROUGE-2 reward, DAD, E2E; the from-scratch pair; XENT for 4 epochs
#   b: AESLC seeds 2 and 3 (XENT, MIXER); MIXER for 4 epochs
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
export OMP_NUM_THREADS=1
OUT=results/objectives
eval "$(sed -n '/^run() {/,/^}/p' experiments/compare-objectives.sh)"
eval "$(sed -n '/^M30K=(/,/^AESLC_METRICS=/p' experiments/compare-objectives.sh)"
M=checkpoints/translate-multi30k.pt
case $1 in
  a)
    SEEDS=1 experiments/compare-objectives.sh aeslc
    experiments/compare-objectives.sh scratch
    run multi30k-xent-long-s1 $M "$M30K_METRICS" -- --recipe xent "${M30K[@]}" --set train.epochs=4 --set train.seed=1
    ;;
  b)
    SEEDS="2 3" SINGLES=no experiments/compare-objectives.sh aeslc
    run multi30k-mixer-long-s1 $M "$M30K_METRICS" -- --recipe mixer "${M30K[@]}" --set train.epochs=4 --set train.seed=1
    ;;
esac
echo "REMEASURE $1 DONE"
