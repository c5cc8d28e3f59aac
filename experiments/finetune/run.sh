#!/usr/bin/env bash
# Does sequence-level fine-tuning of a trained model pay, against continuing XENT for the same budget? Each queue
# fine-tunes one recipe model with the fine-tuning recipes as a user runs them, keeps the best checkpoint on
# validation and scores it on test with greedy search and beam 5:
#   experiments/finetune/run.sh strong        # Multi30k, from translate-multi30k: finetune-{xent,mixer,mixer-loo,...}
#   experiments/finetune/run.sh strong-long   # the same for 4 epochs (MIXER's stages as in strong, then s = 1)
#   experiments/finetune/run.sh tatoeba       # Tatoeba, from translate-tatoeba: tatoeba-*.toml here
#   experiments/finetune/run.sh aeslc-strong  # AESLC, from summarize: aeslc-{xent,mixer-loo}.toml (ROUGE-mix reward)
#   experiments/finetune/run.sh aeslc-brio    # AESLC, the ranking objective (aeslc-rank*.toml) against
#                                             # aeslc-xent-valid-beam5.toml (rank-rouge2 and it pick by beam 5 on
#                                             # validation), from a summarize model of its own,
#                                             # trained first as a user runs the recipe (25 minutes, torch's threads)
#   experiments/finetune/run.sh oracle QUEUE RUN...  # the best reordering of each run's test beam 5 (nbest_oracle.py)
#   experiments/finetune/run.sh transformer   # Multi30k, from translate-multi30k-transformer: finetune-*-transformer
#   experiments/finetune/run.sh student       # Multi30k, run METHOD-sN from the distilled student of seed N
#                                             # (experiments/ensembles/run.sh strong-student distilled N), on the
#                                             # references; into results/ensembles, whose run.sh pairs and table
#                                             # take its runs (compare and table here do not)
#   experiments/finetune/run.sh compare       # every finished run and MBR decoding against its seed's XENT
#   experiments/finetune/run.sh table QUEUE   # results/finetune-CORPUS/QUEUE-table.{json,md}
# RUNS="xent-s2 mixer-loo-s2" picks runs (METHOD-sSEED). MBR decodings of a run go to results/finetune-CORPUS/mbr/
# under its name without the queue (experiments/mbr/run.sh one), e.g.
#   CKPT=checkpoints/finetune-multi30k/strong-long-mixer-loo-s1.pt OUT=results/finetune-multi30k/mbr/long-mixer-loo-s1 \
#     experiments/mbr/run.sh one test mbr32-bleu-beam5 --mbr 32 --mbr-utility bleu --mbr-beam 5 --seed 1
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/lib.sh  # train_and_score, pair, table
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
HERE=experiments/finetune
BLEU="--metric bleu4 --metric bleu4-lc"
ROUGE="--metric rouge1 --metric rouge2 --metric rougeL --metric bleu4"

study() {  # study QUEUE: the results folder, the start checkpoint, the test corpus and the metric runs are paired on
  case $1 in
    strong | strong-long) echo results/finetune-multi30k checkpoints/translate-multi30k.pt multi30k bleu4 ;;
    tatoeba) echo results/finetune-tatoeba checkpoints/translate-tatoeba.pt tatoeba bleu4 ;;
    aeslc-strong) echo results/finetune-aeslc checkpoints/summarize.pt aeslc rouge2 ;;  # against the original subject
    aeslc-brio) echo results/finetune-aeslc checkpoints/finetune-aeslc/aeslc-brio-start.pt aeslc rouge2 ;;
    transformer) echo results/finetune-multi30k-transformer checkpoints/translate-multi30k-transformer.pt multi30k bleu4 ;;
    student) echo results/ensembles checkpoints/ensembles/strong-student-distilled-seedN.pt multi30k bleu4 ;;
    *) echo "finetune/run.sh: no queue '$1' (strong, strong-long, tatoeba, aeslc-strong, aeslc-brio, transformer or student)" >&2
       return 2 ;;
  esac
}

start_model() {  # start_model QUEUE: train and score the start model a queue trains for itself (aeslc-brio)
  local out start corpus metric name
  read -r out start corpus metric < <(study "$1")
  name=$(basename "$start" .pt)
  if [[ ! -f $out/$name-train.json ]]; then  # as a user runs the recipe: its minutes, torch's default threads
    env -u OMP_NUM_THREADS "$TEXTGEN" train --recipe summarize -o "$start" --run-dir "runs/$(basename "$out")/$name" \
      --results "$out/$name-train.json"
  fi
  score_test "$out" "$name" "$ROUGE"
}

queue() {  # queue QUEUE RUN...: train and score each METHOD-sSEED run of QUEUE
  local q=$1 out start corpus metric name method seed; shift
  read -r out start corpus metric < <(study "$q")
  for name in "$@"; do
    method=${name%-s*} seed=${name##*-s}
    local init=${start/seedN/seed$seed}  # the student queue starts each seed from its own student
    [[ -f $init ]] || { echo "finetune/run.sh $q: no start model $init: train it first" >&2; exit 2; }
    case $q in
      strong | student) args=(--recipe "finetune-$method") ;;
      strong-long) args=(--recipe "finetune-$method" --set train.epochs=4) ;;
      tatoeba) args=(--recipe "$HERE/tatoeba-$method.toml") ;;
      aeslc-strong | aeslc-brio) args=(--recipe "$HERE/aeslc-$method.toml") ;;
      transformer) args=(--recipe "finetune-$method-transformer") ;;
    esac
    local metrics=$BLEU
    [[ $metric == rouge2 ]] && metrics=$ROUGE
    train_and_score "$out" "$q-$name" "$init" "$metrics" -- "${args[@]}" --set train.seed="$seed"
  done
}

oracle() {  # oracle QUEUE RUN...: each run's test beam 5 against the best of its 5 best, unless measured already
  local q=${1:?oracle QUEUE RUN...} out start corpus metric run
  shift
  read -r out start corpus metric < <(study "$q")
  for run in "$@"; do
    [[ -f $out/oracle/$q-$run-test-beam5.json ]] && continue
    "$PYTHON" $HERE/nbest_oracle.py "checkpoints/$(basename "$out")/$q-$run.pt" --split test --beam 5 \
      --metric "$metric" --out "$out/oracle/$q-$run-test-beam5.json"
  done
}

control() {  # control BUDGET: the XENT continuation a budget's runs are paired with (aeslc-brio picks every
             # checkpoint by beam 5 on validation, its control too)
  case $1 in aeslc-brio) echo xent-valid-beam5 ;; *) echo xent ;; esac
}

compare() {  # every finished QUEUE-METHOD-sN output and MBR decoding against the same budget's XENT sN
  local hyp name budget seed_beam out start corpus metric model seed base
  for hyp in results/finetune-*/hyps/*-test-beam*.txt{,.gz}; do
    [[ -f $hyp ]] || continue
    hyp=${hyp%.gz} name=$(basename "$hyp" .txt) seed_beam=${name##*-s}  # e.g. 1-test-beam5
    [[ $name == *-s[0-9]*-test-beam* ]] || continue  # skip a start model's output
    case $name in
      strong-long-*) budget=strong-long ;; aeslc-strong-*) budget=aeslc-strong ;; aeslc-brio-*) budget=aeslc-brio ;;
      *) budget=${name%%-*} ;;
    esac
    base=$(control "$budget")
    [[ $name == "$budget-$base"-s* ]] && continue
    read -r out start corpus metric < <(study "$budget")
    pair "$out/hyps/$budget-$base-s$seed_beam.txt" "$hyp" "$corpus" \
      "$out/${name%-test-beam*}-vs-xent-beam${name##*-beam}.json" "$metric"
  done
  for hyp in results/finetune-*/mbr/*-s*/hyps/test-mbr*.txt{,.gz}; do
    [[ -f $hyp ]] || continue
    hyp=${hyp%.gz} model=$(basename "$(dirname "$(dirname "$hyp")")") && seed=${model##*-s}  # long-mixer-loo-s1
    case $hyp in
      results/finetune-tatoeba/*) budget=tatoeba ;;
      results/finetune-aeslc/*) budget=aeslc-strong ;;
      results/finetune-multi30k-transformer/*) budget=transformer ;;
      *) budget=strong; [[ $model == long-* ]] && budget=strong-long ;;
    esac
    read -r out start corpus metric < <(study "$budget")
    pair "$out/hyps/$budget-xent-s$seed-test-beam5.txt" "$hyp" "$corpus" \
      "${hyp%/hyps/*}/$(basename "$hyp" .txt)-vs-xent-beam5.json" "$metric"
  done
}

case ${1:?strong, strong-long, tatoeba, aeslc-strong, aeslc-brio, transformer, student, compare, oracle or table} in
  strong) queue strong ${RUNS:-xent-s1 mrt-s1 mixer-loo-s1} ;;
  aeslc-brio) start_model aeslc-brio; queue aeslc-brio ${RUNS:-xent-valid-beam5-s1 rank-rouge2-s1} ;;
  oracle) oracle "${@:2}" ;;
  strong-long | tatoeba | aeslc-strong | transformer | student) queue "$1" ${RUNS:-xent-s1 mixer-loo-s1} ;;
  compare) compare ;;
  table) table $HERE/finetune_table.py "${2:-strong}" "$(control "${2:-strong}")" ;;
  *) study "$1" ;;
esac
