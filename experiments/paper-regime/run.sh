#!/usr/bin/env bash
# Does MIXER beat XENT in the paper's own regime? XENT, DAD, E2E and MIXER trained from scratch in Ranzato et al.'s translation
# regime (recipes/paper-*.toml, Multi30k-tok), 3 seeds for XENT and MIXER, 1 for DAD and E2E; each scored on
# test2016 with greedy search and beam 5, and MIXER compared with XENT by paired bootstrap (seed 1 outputs).
# Budgets are in epochs, not minutes. Two queues on a 2-core machine:
#   experiments/paper-regime/run.sh a &  experiments/paper-regime/run.sh b &  wait
# or one run at a time: experiments/paper-regime/run.sh one paper-dad 1; `table` writes results/paper-regime/'s tables.
# `continue N [R [OBJ]]`: does MIXER pay once XENT has had longer? Round R: 6 more epochs from XENT seed N's
# checkpoint after 6 + 6R epochs (the best on validation), at the lr it was saved with: MIXER's stages
# (continued[R]-mixer-sN) against XENT (continued[R]-xent-sN, the start of round R + 1); round 1 (the default)
# starts from the 12-epoch paper-xent-sN. OBJ (xent or mixer) runs one of the pair, so the two can run side by side.
# LR=X runs the round at learning rate X instead (runs continued[R]-lrX-OBJ-sN): the later rounds start at lower
# rates, and this separates the rate from the model's training.
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/lib.sh  # pair, table
export OMP_NUM_THREADS=1
OUT=results/paper-regime
mkdir -p "$OUT/hyps" checkpoints/paper runs/paper

run() {  # run RECIPE SEED [NAME [--set ...]]: train (unless done), then decode test2016 greedy and beam 5
  local name=${3:-$1-s$2}
  local ckpt=checkpoints/paper/$name.pt
  [[ -f $OUT/$name-train.json ]] || "$TEXTGEN" train --recipe "$1" --set train.seed="$2" --set train.threads=1 \
    "${@:4}" -o "$ckpt" --run-dir "runs/paper/$name" --results "$OUT/$name-train.json"
  for beam in 1 5; do
    [[ -f $OUT/$name-test-beam$beam.json ]] || "$TEXTGEN" eval "$ckpt" --split test --beam $beam --metric bleu4 \
      --hyp-out "$OUT/hyps/$name-test-beam$beam.txt" --results "$OUT/$name-test-beam$beam.json"
  done
}

case ${1:?a, b, one, continue, compare or table} in
  a) for seed in 1 2 3; do run paper-xent $seed; done; run paper-dad 1 ;;
  b) for seed in 1 2 3; do run paper-mixer $seed; done; run paper-e2e 1 ;;
  one) [[ ${2:?a paper-* recipe} == paper-* ]] || { echo "paper-regime/run.sh one: $2 is not a paper-* recipe" >&2; exit 2; }
       run "$2" "${3:?a seed}" ;;
  continue)
    seed=${2:?a seed} round=${3:-1}
    [[ $round =~ ^[1-9]$ ]] || { echo "paper-regime/run.sh continue: round '$round' is not 1-9" >&2; exit 2; }
    continued_name() { local r=$2; [[ $r == 1 ]] && r=; echo "continued$r${3:-}-$1-s$seed"; }  # OBJ ROUND [TAG]
    [[ $round == 1 ]] && from=paper-xent-s$seed || from=$(continued_name xent $((round - 1)))
    # the checkpoint exists from the first validation on: start only from a finished run
    [[ -f $OUT/$from-train.json ]] || { echo "paper-regime/run.sh continue: $from has not finished: run it first" >&2
                                        exit 2; }
    if [[ -n ${LR:-} ]]; then
      [[ $LR =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "paper-regime/run.sh continue: LR '$LR' is not a number" >&2; exit 2; }
      lr=$LR tag=-lr$LR
    else
      lr=$(${PYTHON:-.venv/bin/python} -c 'import sys; from textgen.train import checkpoint
print(checkpoint.load(sys.argv[1], kind="seq2seq")["train_state"]["optimizer"]["param_groups"][0]["lr"])' \
        "checkpoints/paper/$from.pt") tag=  # the lr in use when it was saved
    fi
    for obj in ${4:-xent mixer}; do  # 6 epochs: MIXER runs its stages s = 12, 9, 6, 3, 1, 1 from the first
      [[ $obj == xent || $obj == mixer ]] || { echo "paper-regime/run.sh continue: '$obj' is not xent or mixer" >&2; exit 2; }
      run paper-$obj "$seed" "$(continued_name "$obj" "$round" "$tag")" --set init_from="checkpoints/paper/$from.pt" \
        --set train.epochs=6 --set objective.mixer.xent_epochs=0 --set train.lr="$lr"
    done ;;
  compare)  # seed 1 of each objective against XENT's seed 1 (OBJ-vs-xent-beamB-significance.json), and each
            # continued MIXER against the XENT of its round and seed (continued[R]-mixer-sN-vs-xent-beamB-...)
    for beam in 1 5; do
      for obj in mixer dad e2e; do
        hyp=$OUT/hyps/paper-$obj-s1-test-beam$beam.txt
        [[ -f $hyp || -f $hyp.gz ]] || continue  # not run yet
        pair "$OUT/hyps/paper-xent-s1-test-beam$beam.txt" "$hyp" multi30k-tok \
          "$OUT/$obj-vs-xent-beam$beam-significance.json"
      done
      for hyp in "$OUT"/hyps/continued*-mixer-s*-test-beam$beam.txt{,.gz}; do
        [[ -f $hyp ]] || continue  # the glob matched nothing
        hyp=${hyp%.gz} mixer_run=$(basename "$hyp" "-test-beam$beam.txt")
        pair "$OUT/hyps/${mixer_run/mixer/xent}-test-beam$beam.txt" "$hyp" multi30k-tok \
          "$OUT/$mixer_run-vs-xent-beam$beam-significance.json"
      done
    done ;;
  table) table experiments/paper-regime/paper_table.py ;;
  *) echo "paper-regime/run.sh: no queue '$1' (a, b, one, continue, compare or table)" >&2; exit 2 ;;
esac
