#!/usr/bin/env bash
# Which training objective pays at one budget? XENT, DAD, E2E and MIXER each fine-tune the same XENT checkpoint for
# the same 2 epochs (epochs, not minutes, so machine load changes only wall time), keep the best checkpoint on
# validation and are scored on test with greedy search and beam 5. Settings come from recipes: finetune-* on
# Multi30k, aeslc.toml / aeslc-mixer.toml here on AESLC. Results: results/objectives-one-budget/.
#   experiments/objectives-one-budget/run.sh multi30k   # and, in parallel on a 2-core machine:
#   experiments/objectives-one-budget/run.sh aeslc
#   experiments/objectives-one-budget/run.sh scratch    # pure REINFORCE against XENT from a random init
#   experiments/objectives-one-budget/run.sh long       # XENT and MIXER for 4 epochs (seed 1)
#   experiments/objectives-one-budget/run.sh samples    # sampled against greedy validation rewards of every run
#   experiments/objectives-one-budget/run.sh table      # objectives-{multi30k,aeslc}.{json,csv}, objectives-tables.md
# SEEDS="1 3" and SEEDS=2 SINGLES=no split a corpus's runs into two queues. MULTI30K and AESLC name the start
# checkpoints; the measured Multi30k start had the joint 8k output vocabulary (translate-multi30k with
# --set data.target_vocab=joint), hence that setting below.
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/lib.sh  # train_and_score, pair, table
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
HERE=experiments/objectives-one-budget
OUT=results/objectives-one-budget
MULTI30K=${MULTI30K:-checkpoints/translate-multi30k-joint.pt}
AESLC=${AESLC:-checkpoints/summarize.pt}
BLEU="--metric bleu4 --metric bleu4-lc"
ROUGE="--metric rouge1 --metric rouge2 --metric rougeL --metric bleu4"
JOINT=(--set data.target_vocab=joint)

multi30k() {  # multi30k NAME OBJECTIVE SEED [--set ...]: one Multi30k fine-tune by its finetune-OBJECTIVE recipe
  train_and_score $OUT "multi30k-$1-s$3" "$MULTI30K" "$BLEU" -- --recipe "finetune-$2" "${JOINT[@]}" \
    --set train.seed="$3" "${@:4}"
}

aeslc() {  # aeslc NAME RECIPE SEED [--set ...]: one AESLC fine-tune by a recipe of this folder
  train_and_score $OUT "aeslc-$1-s$3" "$AESLC" "$ROUGE" -- --recipe "$HERE/$2.toml" --set train.seed="$3" "${@:4}"
}

case ${1:?multi30k, aeslc, scratch, long, samples or table} in
  multi30k)
    for seed in ${SEEDS:-1 2 3}; do
      multi30k xent xent "$seed"
      multi30k mixer mixer "$seed"
    done
    [[ ${SINGLES:-yes} == yes ]] || exit 0
    multi30k dad dad 1
    multi30k e2e e2e 1 ;;
  aeslc)
    for seed in ${SEEDS:-1 2 3}; do
      aeslc xent aeslc "$seed"
      aeslc mixer-mix aeslc-mixer "$seed"
    done
    [[ ${SINGLES:-yes} == yes ]] || exit 0
    aeslc mixer-rouge2 aeslc-mixer 1 --set objective.mixer.reward=rouge2
    aeslc dad aeslc 1 --set objective.name=dad
    aeslc e2e aeslc 1 --set objective.name=e2e ;;
  scratch)  # the paper's failure case: REINFORCE from a random init against XENT, the same 400 updates
    mkdir -p $OUT/hyps checkpoints/objectives-one-budget runs/objectives-one-budget
    for objective in reinforce xent; do
      name=multi30k-scratch-$objective ckpt=checkpoints/objectives-one-budget/multi30k-scratch-$objective.pt
      [[ -f $OUT/$name-test-beam1.json ]] && continue
      "$TEXTGEN" train --recipe $objective --set train.max_steps=400 --set train.max_minutes=0 --set train.threads=1 \
        --set train.eval_every=100 --set objective.mixer.xent_epochs=0 \
        -o "$ckpt" --run-dir runs/objectives-one-budget/$name --results $OUT/$name-train.json
      # shellcheck disable=SC2086
      "$TEXTGEN" eval "$ckpt" --split test --beam 1 $BLEU --hyp-out $OUT/hyps/$name-test-beam1.txt \
        --results $OUT/$name-test-beam1.json
    done ;;
  long)  # does MIXER's validation gain keep growing? XENT and MIXER for 4 epochs, seed 1, side by side
    multi30k xent-long xent 1 --set train.epochs=4 &
    multi30k mixer-long mixer 1 --set train.epochs=4 &
    wait ;;
  samples)  # validation rewards of samples against greedy output, for both start models and every finished run
    for ckpt in "$MULTI30K" "$AESLC" checkpoints/objectives-one-budget/*.pt; do
      name=$(basename "$ckpt" .pt)
      [[ $ckpt == "$MULTI30K" ]] && name=multi30k-start
      [[ $ckpt == "$AESLC" ]] && name=aeslc-start
      [[ -f $OUT/$name-valid-samples.json ]] && continue
      "$PYTHON" $HERE/sample_rewards.py "$ckpt" --out "$OUT/$name-valid-samples.json"
    done ;;
  table) table $HERE/objectives_table.py ;;
  *) echo "objectives-one-budget/run.sh: no queue '$1'" >&2; exit 2 ;;
esac
