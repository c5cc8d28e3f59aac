#!/usr/bin/env bash
# Same-budget comparison of XENT / DAD / E2E / MIXER fine-tuning (issue #5), one queue per argument.
# Every run starts from the same XENT checkpoint, trains a fixed number of epochs (not minutes, so
# machine load changes only wall time), keeps the best checkpoint by validation metric, and is scored on
# test with greedy and beam 5. Results land in results/objectives/, tabulated by experiments/objectives_table.py.
#   experiments/compare-objectives.sh multi30k   # and, in parallel on a 2-core machine:
#   experiments/compare-objectives.sh aeslc
#   experiments/compare-objectives.sh scratch    # pure REINFORCE vs XENT from a random init
#   experiments/compare-objectives.sh samples    # sampled vs greedy validation rewards of every run
#   experiments/compare-objectives.sh long       # XENT and MIXER for 4 epochs (seed 1)
#   experiments/compare-objectives.sh strong     # issue #13: finetune-{xent,mrt,mixer-loo} recipes as they are
#   experiments/compare-objectives.sh strong-long  # the same for 4 epochs (RUNS="xent-s2 mixer-loo-s2" etc.)
#   experiments/compare-objectives.sh tatoeba      # the same recipes on Tatoeba, from the translate-tatoeba model
#   experiments/compare-objectives.sh aeslc-strong # XENT against MIXER-LOO on AESLC, from a fresh summarize model
#   experiments/compare-objectives.sh strong-compare  # each finished strong/tatoeba/aeslc-strong run (and its
#                 # MBR test decodings in results/mbr-{strong,tatoeba,aeslc}/) against XENT, paired bootstrap
# MBR decodings of a strong (tatoeba, aeslc-strong) run go to results/mbr-strong/ (mbr-tatoeba/, mbr-aeslc/) under
# the run's name without that prefix (AESLC: the ROUGE-2 utility, mbr32-rouge2-beam5, --metric rouge2), e.g.
#   CKPT=checkpoints/objectives/strong-long-mixer-loo-s1.pt OUT=results/mbr-strong/long-mixer-loo-s1 \
#     experiments/mbr.sh one test mbr32-bleu-beam5 --mbr 32 --mbr-utility bleu --mbr-beam 5 --seed 1
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
source experiments/lib.sh  # pair, test_references
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=results/objectives
mkdir -p "$OUT" "$OUT/hyps" checkpoints/objectives runs/objectives

run() {  # run NAME INIT METRICS -- train args...
  local name=$1 init=$2 metrics=$3; shift 4
  local ckpt=checkpoints/objectives/$name.pt
  if [[ ! -f $OUT/$name-train.json ]]; then
    "$TEXTGEN" train "$@" --set init_from="$init" --set train.max_minutes=0 --set train.threads=1 \
      -o "$ckpt" --run-dir "runs/objectives/$name" --results "$OUT/$name-train.json"
  fi
  for beam in 1 5; do
    [[ -f $OUT/$name-test-beam$beam.json ]] && continue
    "$TEXTGEN" eval "$ckpt" --split test --beam $beam $metrics \
      --hyp-out "$OUT/hyps/$name-test-beam$beam.txt" --results "$OUT/$name-test-beam$beam.json"
  done
}

corpus_metric() {  # corpus_metric QUEUE: the test corpus of a queue's runs and the metric they are paired on
  case $1 in
    tatoeba) echo tatoeba bleu4 ;;
    aeslc-strong) echo aeslc rouge2 ;;  # ROUGE-2 against the original subject
    *) echo multi30k bleu4 ;;  # strong, strong-long
  esac
}

# Multi30k: 2 epochs from the 25-minute XENT model; constant lr 2e-4; MIXER/E2E anneal s = 8, 4, 1, 1
# (T=12, delta 4, half-epoch stages) since Multi30k targets are ~14 pieces long.
M30K=(--set train.epochs=2 --set train.lr=2e-4 --set train.lr_schedule=constant --set train.eval_every=170
      --set train.valid_subset=0 --set objective.mixer_T=12 --set objective.mixer_delta=4
      --set objective.mixer_xent_epochs=0 --set objective.mixer_epochs_per_stage=0.5 --set objective.mixer_min_s=1
      --set objective.dad_ramp_epochs=2)
M30K_METRICS="--metric bleu4 --metric bleu4-lc"
# AESLC: subjects are ~6 pieces: T=6, delta 2 -> s = 4, 2, 1, 1; ROUGE-2 reward vs the ROUGE-1/2 mix.
AESLC=(--set train.epochs=2 --set train.lr=2e-4 --set train.lr_schedule=constant --set train.eval_every=200
       --set train.valid_subset=0 --set objective.mixer_T=6 --set objective.mixer_delta=2
       --set objective.mixer_xent_epochs=0 --set objective.mixer_epochs_per_stage=0.5 --set objective.mixer_min_s=1
       --set objective.dad_ramp_epochs=2 --set data.corpus=aeslc --set data.max_source_tokens=100)
AESLC_METRICS="--metric rouge1 --metric rouge2 --metric rougeL --metric bleu4"

case ${1:?multi30k, aeslc, scratch, long, strong, strong-long, tatoeba, aeslc-strong, strong-compare or samples} in
  multi30k)
    M=checkpoints/translate-multi30k.pt
    for seed in ${SEEDS:-1 2 3}; do  # SEEDS="1 3" and SEEDS=2 SINGLES=no run as two queues on 2 cores
      run multi30k-xent-s$seed $M "$M30K_METRICS" -- --recipe xent "${M30K[@]}" --set train.seed=$seed
      run multi30k-mixer-s$seed $M "$M30K_METRICS" -- --recipe mixer "${M30K[@]}" --set train.seed=$seed
    done
    [[ ${SINGLES:-yes} == yes ]] || exit 0
    run multi30k-dad-s1 $M "$M30K_METRICS" -- --recipe dad "${M30K[@]}" --set train.seed=1
    run multi30k-e2e-s1 $M "$M30K_METRICS" -- --recipe e2e "${M30K[@]}" --set train.seed=1
    ;;
  aeslc)
    A=checkpoints/summarize.pt
    for seed in ${SEEDS:-1 2 3}; do  # as for multi30k: SEEDS=1 and SEEDS="2 3" SINGLES=no as two queues
      run aeslc-xent-s$seed $A "$AESLC_METRICS" -- --recipe summarize --set objective.name=xent "${AESLC[@]}" --set train.seed=$seed
      run aeslc-mixer-mix-s$seed $A "$AESLC_METRICS" -- --recipe mixer-summarize "${AESLC[@]}" --set train.seed=$seed
      [[ $seed == 1 ]] && run aeslc-mixer-rouge2-s1 $A "$AESLC_METRICS" -- --recipe mixer-summarize \
        "${AESLC[@]}" --set objective.reward=rouge2 --set train.seed=1
    done
    [[ ${SINGLES:-yes} == yes ]] || exit 0
    run aeslc-dad-s1 $A "$AESLC_METRICS" -- --recipe summarize --set objective.name=dad "${AESLC[@]}" --set train.seed=1
    run aeslc-e2e-s1 $A "$AESLC_METRICS" -- --recipe summarize --set objective.name=e2e --set objective.e2e_k=10 "${AESLC[@]}" --set train.seed=1
    ;;
  scratch)  # the paper's failure case: REINFORCE from a random init vs XENT, same 400 updates
    for obj in reinforce xent; do
      name=multi30k-scratch-$obj
      [[ -f $OUT/$name-test-beam1.json ]] && continue
      "$TEXTGEN" train --recipe $obj --set train.max_steps=400 --set train.max_minutes=0 --set train.threads=1 \
        --set train.eval_every=100 --set objective.mixer_xent_epochs=0 \
        -o checkpoints/objectives/$name.pt --run-dir runs/objectives/$name --results "$OUT/$name-train.json"
      "$TEXTGEN" eval checkpoints/objectives/$name.pt --split test --beam 1 $M30K_METRICS \
        --hyp-out "$OUT/hyps/$name-test-beam1.txt" --results "$OUT/$name-test-beam1.json"
    done
    ;;
  long)  # does MIXER's validation gain keep growing? XENT and MIXER for 4 epochs instead of 2, seed 1, in parallel
    M=checkpoints/translate-multi30k.pt
    run multi30k-xent-long-s1 $M "$M30K_METRICS" -- --recipe xent "${M30K[@]}" --set train.epochs=4 --set train.seed=1 &
    run multi30k-mixer-long-s1 $M "$M30K_METRICS" -- --recipe mixer "${M30K[@]}" --set train.epochs=4 --set train.seed=1 &
    wait
    ;;
  strong)  # issue #13: the fine-tuning recipes as a user runs them, from the recipe model (3,968 target pieces)
    M=checkpoints/translate-multi30k.pt
    for name in ${RUNS:-xent-s1 mrt-s1 mixer-loo-s1}; do  # RUNS="xent-s2 mrt-s2" etc.: more seeds
      run strong-$name $M "$M30K_METRICS" -- --recipe "finetune-${name%-s*}" --set train.seed="${name##*-s}"
    done
    ;;
  strong-long)  # the same recipes for 4 epochs (1,352 updates; validation BLEU was still rising after 2). MIXER's
                # schedule is not stretched: s = 8, 4, 1, 1 over the first 2 epochs as in `strong`, then s = 1
    M=checkpoints/translate-multi30k.pt
    for name in ${RUNS:-xent-s1 mixer-loo-s1}; do
      run strong-long-$name $M "$M30K_METRICS" -- --recipe "finetune-${name%-s*}" --set train.seed="${name##*-s}" \
        --set train.epochs=4
    done
    ;;
  tatoeba)  # the strong recipes on a second MT corpus, from the 30-minute translate-tatoeba model: 1 epoch
            # (1,183 updates, 1.75x the Multi30k budget) with MIXER's s = 8, 4, 1, 1 in quarter-epoch stages
    T=checkpoints/translate-tatoeba.pt
    for name in ${RUNS:-xent-s1 mixer-loo-s1}; do
      run tatoeba-$name $T "$M30K_METRICS" -- --recipe "finetune-${name%-s*}" --set train.seed="${name##*-s}" \
        --set data.corpus=tatoeba --set train.epochs=1 --set objective.mixer_epochs_per_stage=0.25
    done
    ;;
  aeslc-strong)  # AESLC from a summarize model trained as the recipe says (first run: 25 minutes, 1 thread):
                 # XENT continuation against MIXER with 4 samples and the leave-one-out baseline, ROUGE-mix reward
    A=checkpoints/summarize.pt
    if [[ ! -f results/summarize-train.json ]]; then  # the checkpoint alone may be a periodic save
      "$TEXTGEN" train --recipe summarize --set train.threads=1 -o "$A" --run-dir runs/summarize \
        --results results/summarize-train.json
    fi
    for name in ${RUNS:-xent-s1 mixer-loo-s1}; do
      case ${name%-s*} in
        xent) args=(--recipe summarize --set objective.name=xent) ;;
        mixer-loo) args=(--recipe mixer-summarize --set objective.baseline=loo --set objective.samples=4) ;;
        *) echo "aeslc-strong: no method '${name%-s*}' (xent or mixer-loo)" >&2; exit 2 ;;
      esac
      run aeslc-strong-$name $A "$AESLC_METRICS" -- "${args[@]}" "${AESLC[@]}" --set train.seed="${name##*-s}"
    done
    ;;
  strong-compare)  # every finished {strong[-long],tatoeba,aeslc-strong}-METHOD-sN against the same budget's
                   # XENT sN, paired bootstrap on BLEU (AESLC: ROUGE-2 against the original subject)
    for hyp in "$OUT"/hyps/{strong,tatoeba,aeslc-strong}-*-test-beam*.txt; do
      [[ -f $hyp ]] || continue
      name=$(basename "$hyp" .txt); seed_beam=${name##*-s}  # e.g. 1-test-beam5
      budget=${name%%-*}
      [[ $name == strong-long-* ]] && budget=strong-long
      [[ $name == aeslc-strong-* ]] && budget=aeslc-strong
      [[ $name == "$budget"-xent-* ]] && continue
      read -r corpus metric < <(corpus_metric "$budget")
      pair "$OUT/hyps/$budget-xent-s$seed_beam.txt" "$hyp" "$corpus" \
        "$OUT/${name%-test-beam*}-vs-xent-beam${name##*-beam}.json" "$metric"
    done
    for hyp in results/mbr-{strong,tatoeba,aeslc}/*-s*/hyps/test-mbr*.txt; do  # MBR decodings of those runs
      [[ -f $hyp ]] || continue
      model=$(basename "$(dirname "$(dirname "$hyp")")") && seed=${model##*-s}  # mixer-loo-s2, long-mixer-loo-s1
      budget=strong; [[ $model == long-* ]] && budget=strong-long
      [[ $hyp == results/mbr-tatoeba/* ]] && budget=tatoeba
      [[ $hyp == results/mbr-aeslc/* ]] && budget=aeslc-strong
      read -r corpus metric < <(corpus_metric "$budget")
      pair "$OUT/hyps/$budget-xent-s$seed-test-beam5.txt" "$hyp" "$corpus" \
        "${hyp%/hyps/*}/$(basename "$hyp" .txt)-vs-xent-beam5.json" "$metric"
    done
    ;;
  samples)  # validation rewards of samples vs greedy output, for every finished run and both starting points
    for ckpt in checkpoints/translate-multi30k.pt checkpoints/summarize.pt checkpoints/objectives/*.pt; do
      name=$(basename "$ckpt" .pt)
      [[ $name == translate-multi30k ]] && name=multi30k-start
      [[ $name == summarize ]] && name=aeslc-start
      [[ -f $OUT/$name-valid-samples.json ]] && continue
      .venv/bin/python experiments/sample_rewards.py "$ckpt" --out "$OUT/$name-valid-samples.json"
    done
    ;;
  *) echo "compare-objectives.sh: no queue '$1'" >&2; exit 2 ;;
esac
echo "QUEUE $1 DONE"
