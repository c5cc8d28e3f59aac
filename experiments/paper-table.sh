#!/usr/bin/env bash
# Issue #13's paper-regime table: XENT, DAD, E2E and MIXER trained from scratch in Ranzato et al.'s translation
# regime (recipes/paper-*.toml, Multi30k-tok), 3 seeds for XENT and MIXER, 1 for DAD and E2E; each scored on
# test2016 with greedy search and beam 5, and MIXER compared with XENT by paired bootstrap (seed 1 outputs).
# Budgets are in epochs, not minutes. Two queues on a 2-core machine:
#   experiments/paper-table.sh a &  experiments/paper-table.sh b &  wait
# or one run at a time: experiments/paper-table.sh one paper-dad 1
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
export OMP_NUM_THREADS=1
OUT=results/paper
mkdir -p "$OUT/hyps" checkpoints/paper runs/paper

run() {  # run RECIPE SEED
  local name=$1-s$2 ckpt=checkpoints/paper/$1-s$2.pt
  [[ -f $OUT/$name-train.json ]] || "$TEXTGEN" train --recipe "$1" --set train.seed="$2" --set train.threads=1 \
    -o "$ckpt" --run-dir "runs/paper/$name" --results "$OUT/$name-train.json"
  for beam in 1 5; do
    [[ -f $OUT/$name-test-beam$beam.json ]] || "$TEXTGEN" eval "$ckpt" --split test --beam $beam --metric bleu4 \
      --hyp-out "$OUT/hyps/$name-test-beam$beam.txt" --results "$OUT/$name-test-beam$beam.json"
  done
}

case ${1:?a, b, one or compare} in
  a) for seed in 1 2 3; do run paper-xent $seed; done; run paper-dad 1 ;;
  b) for seed in 1 2 3; do run paper-mixer $seed; done; run paper-e2e 1 ;;
  one) [[ ${2:?a paper-* recipe} == paper-* ]] || { echo "paper-table.sh one: $2 is not a paper-* recipe" >&2; exit 2; }
       run "$2" "${3:?a seed}" ;;
  compare)  # seed 1 of each objective against XENT's seed 1 (OBJ-vs-xent-beamB-significance.json)
    ref=$(${PYTHON:-.venv/bin/python} -c 'from textgen.data.registry import fetch
print(fetch("multi30k-tok")["test_2016_flickr.lc.norm.tok.en"])')
    for obj in mixer dad e2e; do
      for beam in 1 5; do
        hyp=$OUT/hyps/paper-$obj-s1-test-beam$beam.txt out=$OUT/$obj-vs-xent-beam$beam-significance.json
        [[ -f $hyp && ! $out -nt $hyp ]] || continue  # not run yet, or compared since
        "$TEXTGEN" eval --hyp "$OUT/hyps/paper-xent-s1-test-beam$beam.txt" --hyp "$hyp" --ref "$ref" \
          --metric bleu4 --paired-bootstrap 1000 --results "$out"
      done
    done ;;
  *) echo "paper-table.sh: no queue '$1' (a, b, one or compare)" >&2; exit 2 ;;
esac
