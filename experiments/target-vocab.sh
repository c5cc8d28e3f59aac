#!/usr/bin/env bash
# Issue #14 item 5 (and #12's bf16 row): translate-multi30k with the decoder restricted to the target side's
# pieces (data.target_vocab = "targets"), fp32 and bf16, for the same 6,025 updates as the joint-vocabulary
# patience-2 run (results/translate-multi30k-patience2-train.json), then test2016 greedy and beam 5 (decoded in fp32). Budgets
# in updates, not minutes, so machine load changes only wall time. Two one-thread queues:
#   experiments/target-vocab.sh fp32 &  experiments/target-vocab.sh bf16 &  wait
# A second argument names the run (default translate-multi30k-targets-PRECISION), e.g. to re-measure after a
# change to the target vocabulary: experiments/target-vocab.sh fp32 translate-multi30k-padded
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
export OMP_NUM_THREADS=1
precision=${1:?fp32 or bf16}
name=${2:-translate-multi30k-targets-$precision}
prefix=${name#translate-}  # results/multi30k-...-test-{greedy,beam5}.json
mkdir -p results/hyps checkpoints runs
[[ -f results/$name-train.json ]] || "$TEXTGEN" train --recipe translate-multi30k --set data.target_vocab=targets \
  --set train.precision="$precision" --set train.max_steps=6025 --set train.max_minutes=0 --set train.threads=1 \
  -o "checkpoints/$name.pt" --run-dir "runs/$name" --results "results/$name-train.json"
for beam in 1 5; do
  out=$prefix-test-$([[ $beam == 1 ]] && echo greedy || echo beam5)
  [[ -f results/$out.json ]] || "$TEXTGEN" eval "checkpoints/$name.pt" --split test --beam $beam \
    --metric bleu4 --metric bleu4-lc --hyp-out "results/hyps/$out.txt" --results "results/$out.json"
done
echo "TARGET-VOCAB $precision DONE"
