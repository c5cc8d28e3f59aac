#!/usr/bin/env bash
# Ensembles and checkpoint averaging of the translate-multi30k recipe: four seeds of the recipe as shipped (25
# minutes on one thread each, pinned to one core, as in the transformer study), decoded alone, averaged over their
# last kept checkpoints, and as ensembles of 2 and 4; valid and test2016, beam 5. Run two seeds side by side on
# different cores, then the rest:
#   CORE=0 experiments/ensembles/run.sh seed 2 & CORE=1 experiments/ensembles/run.sh seed 3 & wait
# Jobs: seed N (train seed N, keeping its last 5 validations' weights, and score it), average N K (the mean of
# seed N's last K kept checkpoints, scored), ensemble N... (the ensemble of those seeds, scored), pairs BASE
# SYSTEM... (paired bootstraps on test).
# Seed 1 is the transformer study's mt-lstm run (the same command without kept checkpoints): `seed 1` links it.
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/lib.sh
OUT=${OUT:-results/ensembles}
export OMP_NUM_THREADS=1
core=${CORE:-0}
job=${1:?a job: seed N, average N, ensemble N..., pairs}
shift
mkdir -p "$OUT/hyps" checkpoints/ensembles runs/ensembles

score() {  # score NAME CHECKPOINT...: beam 5 on valid and test (the recipe's decoding otherwise)
  local name=$1 split; shift
  for split in valid test; do
    [[ -f $OUT/$name-$split-beam5.json ]] || taskset -c "$core" "$TEXTGEN" eval "$@" --split $split --beam 5 \
      --metric bleu4 --hyp-out "$OUT/hyps/$name-$split-beam5.txt" --results "$OUT/$name-$split-beam5.json"
  done
}

case $job in
  seed)
    n=$1 ckpt=checkpoints/ensembles/mt-seed$1.pt
    if [[ $n == 1 ]]; then
      [[ -f $ckpt ]] || ln -s ../transformer/mt-lstm.pt "$ckpt"  # experiments/transformer/run.sh mt-lstm
    elif [[ ! -f $OUT/mt-seed$n-train.json ]]; then
      taskset -c "$core" "$TEXTGEN" train --recipe translate-multi30k --set train.seed="$n" --set train.threads=1 \
        --set train.keep_checkpoints=5 -o "$ckpt" --overwrite --run-dir "runs/ensembles/mt-seed$n" \
        --results "$OUT/mt-seed$n-train.json"
    fi
    score "mt-seed$n" "$ckpt" ;;
  average)  # average N K: the mean of seed N's last K kept checkpoints (K from 2 to 5)
    ckpt=checkpoints/ensembles/mt-seed$1-avg$2.pt
    [[ -f $ckpt ]] || "$TEXTGEN" average "runs/ensembles/mt-seed$1" --last "$2" -o "$ckpt"
    score "mt-seed$1-avg$2" "$ckpt" ;;
  ensemble)
    score "mt-ensemble-$(IFS=-; echo "$*")" $(printf 'checkpoints/ensembles/mt-seed%s.pt ' "$@") ;;
  pairs)  # pairs BASE SYSTEM...: paired bootstraps on test of each system against BASE (names as scored)
    base=$1; shift
    for sys in "$@"; do
      pair "$OUT/hyps/$base-test-beam5.txt" "$OUT/hyps/$sys-test-beam5.txt" multi30k "$OUT/$sys-vs-$base-test.json"
    done ;;
  *) echo "unknown job $job" >&2; exit 2 ;;
esac
echo "ENSEMBLES $job $* DONE"
