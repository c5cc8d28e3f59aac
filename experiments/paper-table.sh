#!/usr/bin/env bash
# Issue #13's paper-regime table: XENT, DAD, E2E and MIXER trained from scratch in Ranzato et al.'s translation
# regime (recipes/paper-*.toml, Multi30k-tok), 3 seeds for XENT and MIXER, 1 for DAD and E2E; each scored on
# test2016 with greedy search and beam 5, and MIXER compared with XENT by paired bootstrap (seed 1 outputs).
# Budgets are in epochs, not minutes. Two queues on a 2-core machine:
#   experiments/paper-table.sh a &  experiments/paper-table.sh b &  wait
# or one run at a time: experiments/paper-table.sh one paper-dad 1
# `continue N [R [OBJ]]`: does MIXER pay once XENT has had longer? Round R of 6 more epochs from XENT seed N's
# model after 6 + 6R epochs, at its final lr: MIXER's stages (continued[R]-mixer-sN) against XENT
# (continued[R]-xent-sN, the start of round R + 1); round 1 (the default) starts from the 12-epoch paper-xent-sN.
# OBJ (xent or mixer) runs one of the pair, so that the two can run side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
source experiments/lib.sh  # pair, test_references
export OMP_NUM_THREADS=1
OUT=results/paper
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

case ${1:?a, b, one, continue or compare} in
  a) for seed in 1 2 3; do run paper-xent $seed; done; run paper-dad 1 ;;
  b) for seed in 1 2 3; do run paper-mixer $seed; done; run paper-e2e 1 ;;
  one) [[ ${2:?a paper-* recipe} == paper-* ]] || { echo "paper-table.sh one: $2 is not a paper-* recipe" >&2; exit 2; }
       run "$2" "${3:?a seed}" ;;
  continue)
    seed=${2:?a seed} round=${3:-1}
    [[ $round =~ ^[1-9]$ ]] || { echo "paper-table.sh continue: round '$round' is not 1-9" >&2; exit 2; }
    name() { [[ $2 == 1 ]] && echo "continued-$1-s$seed" || echo "continued$2-$1-s$seed"; }  # name OBJ ROUND
    [[ $round == 1 ]] && start=checkpoints/paper/paper-xent-s$seed.pt \
      || start=checkpoints/paper/$(name xent $((round - 1))).pt
    [[ -f $start ]] || { echo "paper-table.sh continue: no $start: run the XENT it starts from first" >&2; exit 2; }
    lr=$(${PYTHON:-.venv/bin/python} -c 'import sys, torch
p = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
print(p["recipe"]["train"]["lr"] * p["train_state"]["schedule"]["scale"])' "$start")
    for obj in ${4:-xent mixer}; do  # 6 epochs: MIXER runs its stages s = 12, 9, 6, 3, 1, 1 from the first
      [[ $obj == xent || $obj == mixer ]] || { echo "paper-table.sh continue: '$obj' is not xent or mixer" >&2; exit 2; }
      run paper-$obj "$seed" "$(name "$obj" "$round")" --set init_from="$start" --set train.epochs=6 \
        --set objective.mixer_xent_epochs=0 --set train.lr="$lr"
    done ;;
  compare)  # seed 1 of each objective against XENT's seed 1 (OBJ-vs-xent-beamB-significance.json), and each
            # continued MIXER against the XENT of its round and seed (continued[R]-mixer-sN-vs-xent-beamB-...)
    for beam in 1 5; do
      pairs=()
      for obj in mixer dad e2e; do
        pairs+=("paper-xent-s1 paper-$obj-s1 $obj-vs-xent-beam$beam")
      done
      for hyp in "$OUT"/hyps/continued*-mixer-s*-test-beam$beam.txt; do
        [[ -f $hyp ]] || continue  # the glob matched nothing
        run=$(basename "$hyp" "-test-beam$beam.txt")
        pairs+=("${run/mixer/xent} $run $run-vs-xent-beam$beam")
      done
      for entry in "${pairs[@]}"; do
        read -r base sys out <<<"$entry"
        hyp=$OUT/hyps/$sys-test-beam$beam.txt
        if [[ -f $hyp ]]; then  # run already
          pair "$OUT/hyps/$base-test-beam$beam.txt" "$hyp" multi30k-tok "$OUT/$out-significance.json"
        fi
      done
    done ;;
  *) echo "paper-table.sh: no queue '$1' (a, b, one, continue or compare)" >&2; exit 2 ;;
esac
