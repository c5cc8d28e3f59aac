#!/usr/bin/env bash
# Does a target-side output vocabulary or bf16 training cost BLEU? translate-multi30k with the decoder restricted to
# the target side's pieces (data.target_vocab = "targets"), fp32 and bf16, for the same 6,025 updates as the
# joint-vocabulary run (results/target-vocab/translate-multi30k-patience2-train.json), then test2016 greedy and
# beam 5 (decoded in fp32). Budgets in updates, not minutes, so machine load changes only wall time. Two queues:
#   experiments/target-vocab/run.sh fp32 &  experiments/target-vocab/run.sh bf16 &  wait
# A second argument names the run (default translate-multi30k-targets-PRECISION), e.g. the recipe as shipped
# (3,968 pieces, results/recipes/): OUT=results/recipes experiments/target-vocab/run.sh fp32 translate-multi30k-padded
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/lib.sh
OUT=${OUT:-results/target-vocab}
export OMP_NUM_THREADS=1
precision=${1:?fp32 or bf16}
name=${2:-translate-multi30k-targets-$precision}
prefix=${name#translate-}  # OUT/multi30k-...-test-{greedy,beam5}.json
mkdir -p "$OUT/hyps" checkpoints runs
[[ -f $OUT/$name-train.json ]] || "$TEXTGEN" train --recipe translate-multi30k --set data.target_vocab=targets \
  --set train.precision="$precision" --set train.max_steps=6025 --set train.max_minutes=0 --set train.threads=1 \
  -o "checkpoints/$name.pt" --run-dir "runs/$name" --results "$OUT/$name-train.json"
for beam in 1 5; do
  out=$prefix-test-$([[ $beam == 1 ]] && echo greedy || echo beam5)
  [[ -f $OUT/$out.json ]] || "$TEXTGEN" eval "checkpoints/$name.pt" --split test --beam $beam \
    --metric bleu4 --metric bleu4-lc --hyp-out "$OUT/hyps/$out.txt" --results "$OUT/$out.json"
done
echo "TARGET-VOCAB $precision DONE"
