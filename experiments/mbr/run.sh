#!/usr/bin/env bash
# Does MBR decoding beat beam 5? MBR decoding of the translate-multi30k checkpoint against beam 5: settings are
# chosen on the validation set (`valid`: N, utility, beam candidates), then the chosen one runs once on test2016,
# compared with beam 5 by paired bootstrap resampling (`test NAME ARGS...`). Results: results/mbr-multi30k/.
#   experiments/mbr/run.sh valid  ;  experiments/mbr/run.sh test mbr32-bleu-beam5 --mbr 32 --mbr-utility bleu --mbr-beam 5 --seed 1
# CKPT and OUT choose another model and results folder; `one SPLIT NAME ARGS...` decodes one setting only:
#   CKPT=checkpoints/finetune-multi30k/strong-mrt-s1.pt OUT=results/finetune-multi30k/mbr/mrt-s1 \
#     experiments/mbr/run.sh one valid beam5 --beam 5
set -euo pipefail
cd "$(dirname "$0")/../.."
source experiments/lib.sh  # pair
CKPT=${CKPT:-checkpoints/translate-multi30k.pt}
# results of another model never mix with the recipe model's: its own folder unless OUT says otherwise
[[ $CKPT == checkpoints/translate-multi30k.pt ]] && default=results/mbr-multi30k || default=results/mbr-$(basename "$CKPT" .pt)
OUT=${OUT:-$default}
mkdir -p "$OUT/hyps"

decode() {  # decode SPLIT NAME ARGS...: one decoding of SPLIT, scored, its outputs kept for the bootstrap
  local split=$1 name=$2; shift 2
  [[ -f $OUT/$split-$name.json ]] || "$TEXTGEN" eval "$CKPT" --split "$split" --metric bleu4 "$@" \
    --hyp-out "$OUT/hyps/$split-$name.txt" --results "$OUT/$split-$name.json"
}

case ${1:?valid, test or one} in
  one) shift; decode "$@" ;;
  valid)  # the sweep that chose the test setting
    decode valid beam5 --beam 5
    for n in 16 32; do decode valid "mbr$n-bleu" --mbr $n --mbr-utility bleu --seed 1; done
    decode valid mbr16-chrf --mbr 16 --mbr-utility chrf --seed 1
    for n in 32 64; do decode valid "mbr$n-bleu-beam5" --mbr $n --mbr-utility bleu --mbr-beam 5 --seed 1; done ;;
  test)  # test NAME ARGS...: the chosen setting on test2016, against beam 5 by paired bootstrap
    name=${2:?a name, e.g. mbr32-bleu-beam5}; shift 2
    decode test beam5 --beam 5
    decode test "$name" "$@"
    # paired on the checkpoint's own corpus and on the metric it was selected by (BLEU when that was the loss)
    read -r corpus metric < <("$PYTHON" -c 'import sys; from textgen.train import checkpoint
r = checkpoint.load(sys.argv[1], kind="seq2seq")["recipe"]
print(r["data"]["corpus"], r["train"]["valid_metric"].replace("loss", "bleu4"))' "$CKPT")
    pair "$OUT/hyps/test-beam5.txt" "$OUT/hyps/test-$name.txt" "$corpus" "$OUT/test-$name-vs-beam5.json" "$metric" ;;
esac
