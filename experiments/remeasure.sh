#!/usr/bin/env bash
# Re-measure what the review fixes of issue #12 change (run from a clean checkout of the commit to report):
# the Multi30k XENT model (the plateau now follows validation BLEU; batches are re-drawn every epoch) and its
# test scores, Tiny Shakespeare (validation and test are now distinct halves of the held-out tail), and the
# Multi30k model again with plateau patience 2 (BLEU on 500 validation sentences is noisier than the loss).
# One queue on both cores; budgets in updates, not minutes, so machine load changes only wall time.
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
mkdir -p results/hyps checkpoints runs
if [[ ! -f results/translate-multi30k-train.json ]]; then  # the 25-minute model's 6,025 updates, by count
  "$TEXTGEN" train --recipe translate-multi30k --set train.max_steps=6025 --set train.max_minutes=0 \
    --set train.threads=2 -o checkpoints/translate-multi30k.pt --run-dir runs/translate-multi30k \
    --results results/translate-multi30k-train.json
fi
for beam in 1 5; do
  name=multi30k-test-$([[ $beam == 1 ]] && echo greedy || echo beam5)
  [[ -f results/$name.json ]] || "$TEXTGEN" eval checkpoints/translate-multi30k.pt --split test --beam $beam \
    --metric bleu4 --metric bleu4-lc --hyp-out results/hyps/$name.txt --results results/$name.json
done
if [[ ! -f results/shakespeare-train.json ]]; then
  "$TEXTGEN" train --recipe shakespeare --set train.max_minutes=0 --set train.threads=2 \
    -o checkpoints/shakespeare.pt --run-dir runs/shakespeare --results results/shakespeare-train.json
fi
[[ -f results/shakespeare.json ]] || "$TEXTGEN" eval checkpoints/shakespeare.pt --split valid --batch-size 32 \
  --results results/shakespeare.json
[[ -f results/shakespeare-test.json ]] || "$TEXTGEN" eval checkpoints/shakespeare.pt --split test --batch-size 32 \
  --results results/shakespeare-test.json
[[ -f results/translate-multi30k-patience2-train.json ]] || "$TEXTGEN" train --recipe translate-multi30k \
  --set train.patience=2 --set train.max_steps=6025 --set train.max_minutes=0 --set train.threads=2 \
  -o checkpoints/translate-multi30k-patience2.pt --run-dir runs/translate-multi30k-patience2 \
  --results results/translate-multi30k-patience2-train.json
echo "REMEASURE DONE"
