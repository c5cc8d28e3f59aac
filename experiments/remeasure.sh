#!/usr/bin/env bash
# Re-measure what the review fixes of issue #12 change (run from a clean checkout of the commit to report):
# the Multi30k XENT model (the plateau now follows validation BLEU; batches are re-drawn every epoch), the
# objective fine-tunes that start from it, and Tiny Shakespeare (validation and test are now distinct halves).
# Queue a: the XENT model, then the same with plateau patience 2 (2 threads each); queue b (1 thread): test
# scores, Tiny Shakespeare, XENT vs MIXER fine-tunes (seed 2). Budgets in updates, not minutes, so machine
# load changes only wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
export OMP_NUM_THREADS=1
mkdir -p results/hyps checkpoints
queue_a() {
  if [[ ! -f results/translate-multi30k-train.json ]]; then  # the 25-minute model's 6,025 updates, by count
    "$TEXTGEN" train --recipe translate-multi30k --set train.max_steps=6025 --set train.max_minutes=0 \
      --set train.threads=2 -o checkpoints/translate-multi30k.pt --run-dir runs/translate-multi30k \
      --results results/translate-multi30k-train.json
  fi
  touch runs/.multi30k-ready
  # the plateau now follows validation BLEU (500 sentences, noisy): does patience 2 beat the recipe's 0 on valid?
  [[ -f results/translate-multi30k-patience2-train.json ]] || "$TEXTGEN" train --recipe translate-multi30k \
    --set train.patience=2 --set train.max_steps=6025 --set train.max_minutes=0 --set train.threads=2 \
    -o checkpoints/translate-multi30k-patience2.pt --run-dir runs/translate-multi30k-patience2 \
    --results results/translate-multi30k-patience2-train.json
}
queue_b() {
  while [[ ! -f runs/.multi30k-ready ]]; do sleep 30; done
  for beam in 1 5; do
    name=multi30k-test-$([[ $beam == 1 ]] && echo greedy || echo beam5)
    [[ -f results/$name.json ]] || "$TEXTGEN" eval checkpoints/translate-multi30k.pt --split test --beam $beam \
      --metric bleu4 --metric bleu4-lc --hyp-out results/hyps/$name.txt --results results/$name.json
  done
  if [[ ! -f results/shakespeare-train.json ]]; then
    "$TEXTGEN" train --recipe shakespeare --set train.max_minutes=0 --set train.threads=1 \
      -o checkpoints/shakespeare.pt --run-dir runs/shakespeare --results results/shakespeare-train.json
  fi
  [[ -f results/shakespeare.json ]] || "$TEXTGEN" eval checkpoints/shakespeare.pt --split valid --batch-size 32 \
    --results results/shakespeare.json
  [[ -f results/shakespeare-test.json ]] || "$TEXTGEN" eval checkpoints/shakespeare.pt --split test --batch-size 32 \
    --results results/shakespeare-test.json
  SEEDS=2 SINGLES=no experiments/compare-objectives.sh multi30k  # XENT vs MIXER fine-tunes, seed 2
}
queue_a > runs/remeasure-a.log 2>&1 &
queue_b > runs/remeasure-b.log 2>&1 &
wait
echo "REMEASURE DONE"
