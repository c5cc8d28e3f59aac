#!/usr/bin/env bash
# Transformer against LSTM (and OpenNMT-py's Transformer) at one wall-clock budget per corpus. The budget is the
# question here, so it is counted in minutes (the recipes' train.max_minutes), on one thread each: run two jobs side
# by side, each pinned to its own core (CORE=0 or 1), or one after another on an otherwise idle core:
#   CORE=0 experiments/transformer/run.sh mt-transformer & CORE=1 experiments/transformer/run.sh mt-lstm & wait
# Jobs: mt-{transformer,lstm} (Multi30k, test2016 greedy and beam 5), aeslc-{transformer,lstm} (ROUGE-1/2/L), onmt
# (../shared/tools/peer-onmt.sh ARCH=transformer with LR, WARMUP from the environment, its report turned into a
# result file), onmt-lstm (the same with ARCH=lstm, the translate-multi30k shape), lm-{transformer,lstm}; pairs (paired bootstraps of the Multi30k outputs); tune (the Transformer recipe
# with TAG naming the variant and SETS its `--set` overrides, scored on the validation split: settings are chosen
# there, and only the chosen variant is scored on test, with `TAG=... SETS=... run.sh tune-test`); aeslc-tune and
# aeslc-tune-test (the same for summarize-transformer); lm-tune (the same for the Tiny Shakespeare Transformer, whose
# training result holds its validation loss).
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/lib.sh
OUT=${OUT:-results/transformer}
export OMP_NUM_THREADS=1
job=${1:?a job: mt-transformer mt-lstm aeslc-transformer aeslc-lstm onmt onmt-lstm onmt-valid lm-transformer lm-lstm pairs tune tune-test aeslc-tune aeslc-tune-test lm-tune}
core=${CORE:-0}  # the core this job is pinned to: give two jobs run side by side different cores
mkdir -p "$OUT/hyps" checkpoints/transformer runs/transformer
ROUGE=(--metric rouge1 --metric rouge2 --metric rougeL)

train() {  # train NAME RECIPE [--set K=V...]: the recipe (as shipped unless overridden), one thread pinned to this job's core
  local name=$1 recipe=$2; shift 2
  [[ -f $OUT/$name-train.json ]] || taskset -c "$core" "$TEXTGEN" train --recipe "$recipe" --set train.threads=1 "$@" \
    -o "checkpoints/transformer/$name.pt" --overwrite --run-dir "runs/transformer/$name" --results "$OUT/$name-train.json"
}

score() {  # score NAME METRICS...: test split (SPLIT=valid: validation), greedy and beam 5 (the recipe's decoding otherwise)
  local name=$1 split=${SPLIT:-test} beam out; shift
  for beam in 1 5; do
    out=$name-$split-$([[ $beam == 1 ]] && echo greedy || echo beam5)
    [[ -f $OUT/$out.json ]] || taskset -c "$core" "$TEXTGEN" eval "checkpoints/transformer/$name.pt" --split "$split" \
      --beam $beam "$@" --hyp-out "$OUT/hyps/$out.txt" --results "$OUT/$out.json"
  done
}

onmt_valid() {  # onmt_valid RUN: the peer's last checkpoint on the validation set, beam 5 as its test decode (its
               # script scores test only): the score its schedule is chosen by, in RUN/bleu.valid-beam5.json
  local run=$1 venv=${VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/onmt-venv} last
  [[ -f $run/bleu.valid-beam5.json ]] && return 0
  last=$(ls "$run"/model_step_*.pt | sed 's/.*model_step_\([0-9]*\)\.pt/\1 &/' | sort -n | tail -1 | cut -d' ' -f2)
  TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 taskset -c "$core" "$venv/bin/onmt_translate" -model "$last" \
    -src "$run/data/val.sp.de" -output "$run/hyp.valid-beam5.sp" -beam_size 5 > "$run/translate.valid-beam5.log" 2>&1
  "$venv/bin/python" -c 'import sys, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=sys.argv[1])
sys.stdout.write("".join(sp.decode(line.split()) + "\n" for line in open(sys.argv[2], encoding="utf-8")))' \
    "$run/data/spm.model" "$run/hyp.valid-beam5.sp" > "$run/hyp.valid-beam5.detok"
  "$venv/bin/sacrebleu" "$run/data/val.en" -i "$run/hyp.valid-beam5.detok" -m bleu -w 2 > "$run/bleu.valid-beam5.tmp"
  mv "$run/bleu.valid-beam5.tmp" "$run/bleu.valid-beam5.json"
}

peer() {  # peer NAME ARCH: peer-onmt.sh (25 minutes, this job's core) into runs/transformer/NAME, scored on valid
          # too, its report turned into OUT/NAME.json and its test outputs kept, unless that file exists
  local name=$1 arch=$2 tag
  [[ -f $OUT/$name.json ]] && return 0
  ARCH=$arch TRAIN_SECONDS=1500 REUSE_VENV=1 W=$PWD/runs/transformer/$name taskset -c "$core" \
    bash ../shared/tools/peer-onmt.sh
  onmt_valid "runs/transformer/$name"
  ARCH=$arch "$PYTHON" experiments/transformer/onmt_result.py "runs/transformer/$name" "$OUT/$name.json"
  for tag in greedy beam5; do gzip -9c "runs/transformer/$name/hyp.$tag.detok" > "$OUT/hyps/$name-test-$tag.txt.gz"; done
}

case $job in
  mt-transformer) train "$job" translate-multi30k-transformer && score "$job" --metric bleu4 ;;
  mt-lstm) train "$job" translate-multi30k && score "$job" --metric bleu4 ;;
  aeslc-transformer) train "$job" summarize-transformer; score "$job" "${ROUGE[@]}" ;;
  aeslc-lstm) train "$job" summarize; SPLIT=valid score "$job" "${ROUGE[@]}"; score "$job" "${ROUGE[@]}" ;;
  lm-transformer) train "$job" shakespeare-transformer ;;
  lm-lstm) train "$job" shakespeare ;;
  tune | tune-test | lm-tune | aeslc-tune | aeslc-tune-test)  # TAG names the variant, SETS holds its overrides (space-separated KEY=VALUE)
    read -ra sets <<< "${SETS:?SETS holds KEY=VALUE overrides}"
    if [[ $job == lm-tune ]]; then  # the LM's training result holds its validation loss
      train "lm-transformer-${TAG:?TAG names the variant}" shakespeare-transformer "${sets[@]/#/--set=}"
    elif [[ $job == aeslc-tune* ]]; then
      name=aeslc-transformer-${TAG:?TAG names the variant}
      train "$name" summarize-transformer "${sets[@]/#/--set=}"
      if [[ $job == aeslc-tune ]]; then SPLIT=valid score "$name" "${ROUGE[@]}"; else score "$name" "${ROUGE[@]}"; fi
    else
      name=mt-transformer-${TAG:?TAG names the variant}
      train "$name" translate-multi30k-transformer "${sets[@]/#/--set=}"
      if [[ $job == tune ]]; then SPLIT=valid score "$name" --metric bleu4; else score "$name" --metric bleu4; fi
    fi ;;
  onmt-valid)  # RUN=runs/transformer/onmt-transformer-lrLR-warmupW: score a finished peer run on validation, and
               # write its result file again with that score
    run=${RUN:?RUN names a peer run folder} && name=$(basename "$run")
    onmt_valid "$run"
    arch=transformer  # onmt_result.py reads LR and WARMUP (the noam schedule in the name) for a transformer only
    if [[ $name == onmt-lstm ]]; then arch=lstm; fi
    ARCH=$arch LR=${name#*-lr} LR=${LR%-warmup*} WARMUP=${name##*-warmup} \
      "$PYTHON" experiments/transformer/onmt_result.py "$run" "$OUT/$name.json" ;;
  onmt)  # LR and WARMUP: OpenNMT-py's noam schedule (peer-onmt.sh's defaults 0.5 and 1000)
    export LR=${LR:-0.5} WARMUP=${WARMUP:-1000}
    peer "onmt-transformer-lr$LR-warmup$WARMUP" transformer ;;
  onmt-lstm) peer onmt-lstm lstm ;;  # OpenNMT-py's LSTM of translate-multi30k's shape (the script's own settings)
  pairs)  # paired bootstraps of the Transformer's test outputs against the LSTM's and OpenNMT-py's, and of the
          # LSTM's against OpenNMT-py's LSTM
    H=$OUT/hyps
    for b in greedy beam5; do
      pair "$H/mt-lstm-test-$b.txt" "$H/mt-transformer-test-$b.txt" multi30k "$OUT/transformer-vs-lstm-$b.json"
      pair "$H/onmt-transformer-lr0.3-warmup300-test-$b.txt" "$H/mt-transformer-test-$b.txt" multi30k \
        "$OUT/transformer-vs-onmt-lr0.3-$b.json"
      pair "$H/mt-lstm-test-$b.txt" "$H/mt-transformer-layers2-lr2e-3-cosine-test-$b.txt" multi30k \
        "$OUT/tuned-transformer-vs-lstm-$b.json"  # the variant chosen on validation, now the recipe
      pair "$H/onmt-lstm-test-$b.txt" "$H/mt-lstm-test-$b.txt" multi30k "$OUT/lstm-vs-onmt-lstm-$b.json"
    done ;;
  *) echo "unknown job $job" >&2; exit 2 ;;
esac
echo "TRANSFORMER $job DONE"
