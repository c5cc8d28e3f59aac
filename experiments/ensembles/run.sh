#!/usr/bin/env bash
# Ensembles and checkpoint averaging of the translate-multi30k recipe: four seeds of the recipe as shipped (25
# minutes on one thread each, pinned to one core, as in the transformer study), decoded alone, averaged over their
# last kept checkpoints, and as ensembles of 2 and 4; valid and test2016, beam 5. Run two seeds side by side on
# different cores, then the rest:
#   CORE=0 experiments/ensembles/run.sh seed 2 & CORE=1 experiments/ensembles/run.sh seed 3 & wait
# Jobs: seed N (train seed N, keeping its last 5 validations' weights, and score it; strong N the same with the
# recipe's two-thread budget in updates, strong-ensemble N... their ensemble), average N K (the mean of
# seed N's last K kept checkpoints, scored), ensemble N... (the ensemble of those seeds, scored), pairs BASE
# SYSTEM... (paired bootstraps on test), mixed (seed 1 with the transformer study's Transformer), reverse and lm (the reranking models), rerank NAME CHECKPOINT... (tune
# n-best reranking on valid, score test), teacher (the 4-model ensemble's beam-5 outputs for the training sources,
# `data.distill_from`, decoded once into the cache) and student MIX N (translate-multi30k trained on them with
# data.distill_targets = MIX, distilled or both, seed N; scored); strong-teacher and strong-student MIX N the same
# from the strong ensemble; pairs-xent pairs the strong students (and their fine-tunes) with the XENT continuation.
# score NAME... scores checkpoints/ensembles/NAME.pt (valid and test, beam 5).
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
STRONG=(--set train.max_steps=6025 --set train.max_minutes=0)  # the updates the recipe makes in 25 two-thread minutes

score() {  # score NAME CHECKPOINT...: beam 5 on valid and test (the recipe's decoding otherwise)
  local name=$1 split; shift
  for split in valid test; do
    [[ -f $OUT/$name-$split-beam5.json ]] || taskset -c "$core" "$TEXTGEN" eval "$@" --split $split --beam 5 \
      --metric bleu4 --hyp-out "$OUT/hyps/$name-$split-beam5.txt" --results "$OUT/$name-$split-beam5.json"
  done
}

case $job in
  seed | strong)  # seed N: 25 one-thread minutes; strong N: the 6,025 updates the recipe makes in 25 two-thread
                  # minutes (results/recipes), counted in updates so that two such runs go side by side, one core each
    n=$1 budget=()
    if [[ $job == seed ]]; then name=mt-seed$n; else name=strong-seed$n budget=("${STRONG[@]}"); fi
    ckpt=checkpoints/ensembles/$name.pt
    if [[ $job == seed && $n == 1 ]]; then
      [[ -f $ckpt ]] || ln -s ../transformer/mt-lstm.pt "$ckpt"  # experiments/transformer/run.sh mt-lstm
    elif [[ ! -f $OUT/$name-train.json ]]; then
      taskset -c "$core" "$TEXTGEN" train --recipe translate-multi30k --set train.seed="$n" --set train.threads=1 \
        --set train.keep_checkpoints=5 "${budget[@]}" -o "$ckpt" --overwrite --run-dir "runs/ensembles/$name" \
        --results "$OUT/$name-train.json"
    fi
    score "$name" "$ckpt" ;;
  average)  # average N K: the mean of seed N's last K kept checkpoints (K from 2 to 5)
    ckpt=checkpoints/ensembles/mt-seed$1-avg$2.pt
    [[ -f $ckpt ]] || "$TEXTGEN" average "runs/ensembles/mt-seed$1" --last "$2" -o "$ckpt"
    score "mt-seed$1-avg$2" "$ckpt" ;;
  ensemble | strong-ensemble)  # the ensemble of those seeds (of `seed` or `strong` models)
    (( $# )) || { echo "usage: $job N..." >&2; exit 2; }
    if [[ $job == ensemble ]]; then kind=mt; else kind=strong; fi
    members=()
    for n in "$@"; do members+=("checkpoints/ensembles/$kind-seed$n.pt"); done
    score "$kind-ensemble-$(IFS=-; echo "$*")" "${members[@]}" ;;
  score)  # score NAME...: checkpoints/ensembles/NAME.pt on valid and test (e.g. a student's fine-tunes, whose
          # experiments/finetune/run.sh student scores test only)
    (( $# )) || { echo "usage: score NAME..." >&2; exit 2; }
    for name in "$@"; do score "$name" "checkpoints/ensembles/$name.pt"; done ;;
  mixed)  # seed 1's LSTM with the transformer study's Transformer (the same vocabulary)
    score mt-ensemble-lstm-transformer checkpoints/ensembles/mt-seed1.pt checkpoints/transformer/mt-transformer.pt ;;
  reverse | lm)  # the reranking models: en->de translate-multi30k, and a char LM of the English targets (15 min)
    [[ -f $OUT/$job-train.json ]] || taskset -c "$core" "$TEXTGEN" train --recipe "experiments/ensembles/$(
      [[ $job == lm ]] && echo target-lm || echo reverse).toml" --set train.threads=1 -o "checkpoints/ensembles/$job.pt" \
      --overwrite --run-dir "runs/ensembles/$job" --results "$OUT/$job-train.json" ;;
  rerank)  # rerank NAME CHECKPOINT...: weights tuned on valid (beam 8's 8-best), then test reranked
    name=$1; shift
    [[ -f $OUT/$name-rerank.json ]] || taskset -c "$core" "$TEXTGEN" rerank "$@" --reverse checkpoints/ensembles/reverse.pt \
      --lm checkpoints/ensembles/lm.pt --nbest 8 -o "$OUT/$name-rerank.json"
    [[ -f $OUT/$name-rerank-test.json ]] || taskset -c "$core" "$TEXTGEN" eval "$@" --split test --metric bleu4 \
      --rerank "$OUT/$name-rerank.json" --hyp-out "$OUT/hyps/$name-rerank8-test.txt" --results "$OUT/$name-rerank-test.json" ;;
  teacher | student | strong-teacher | strong-student)  # sequence-level distillation from the 4-model ensemble
    # (its [decode]: beam 5) of `seed` models, or of `strong` ones (then the students get the same 6,025 updates)
    if [[ $job == strong-* ]]; then kind=strong budget=("${STRONG[@]}")
    else kind=mt budget=(); fi
    teachers=$(printf "checkpoints/ensembles/$kind-seed%s.pt," 1 2 3 4)
    distill=(--set "data.distill_from=\"${teachers%,}\"")
    if [[ $job == *teacher ]]; then  # decode ahead, so that students started side by side find the outputs
      decoded=$OUT/$job-decode.json  # teacher-decode.json or strong-teacher-decode.json
      [[ -f $decoded ]] || {
        scratch
        taskset -c "$core" "$TEXTGEN" data prepare --recipe translate-multi30k "${distill[@]}" 2> >(tee "$_SCRATCH/log" >&2)
        made=$(sed -n "s/.*teachers' outputs in \(.*\) (distill.json.*/\1/p" "$_SCRATCH/log")
        cp "$(dirname "$made")/distill.json" "$decoded"  # teachers, settings, speed, hardware
      }
    else
      mix=${1:?student MIX N: MIX distilled or both} n=${2:?student MIX N} name=$kind-student-$1-seed$2
      [[ -f $OUT/$name-train.json ]] || taskset -c "$core" "$TEXTGEN" train --recipe translate-multi30k "${distill[@]}" \
        --set data.distill_targets="$mix" --set train.seed="$n" --set train.threads=1 "${budget[@]}" \
        -o "checkpoints/ensembles/$name.pt" --overwrite --run-dir "runs/ensembles/$name" --results "$OUT/$name-train.json"
      score "$name" "checkpoints/ensembles/$name.pt"
    fi ;;
  pairs)  # pairs BASE SYSTEM...: paired bootstraps of each system's test outputs against BASE's (hyps/NAME.txt)
    base=$1; shift
    for sys in "$@"; do
      pair "$OUT/hyps/$base.txt" "$OUT/hyps/$sys.txt" multi30k "$OUT/$sys-vs-$base.json"
    done ;;
  pairs-xent)  # each strong student, reranked or fine-tuned (seed N), against the finetune-multi30k study's XENT continuation
               # of seed N (translate-multi30k plus 4 epochs of finetune-xent), test beam 5
    for hyp in "$OUT"/hyps/{strong-student-distilled-seed[0-9]-{test-beam5,rerank8-test},student-*-s[0-9]-test-beam5}.txt{,.gz}; do
      [[ -f $hyp ]] || continue
      name=$(basename "${hyp%.gz}" .txt)
      [[ $name =~ (seed|-s)([0-9]+)- ]] || { echo "pairs-xent: no seed in $name" >&2; exit 2; }
      n=${BASH_REMATCH[2]}
      pair results/finetune-multi30k/hyps/strong-long-xent-s$n-test-beam5.txt "${hyp%.gz}" multi30k \
        "$OUT/$name-vs-long-xent-s$n.json"
    done ;;
  *) echo "unknown job $job" >&2; exit 2 ;;
esac
echo "ENSEMBLES $job $* DONE"
