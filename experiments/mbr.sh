#!/usr/bin/env bash
# Issue #13 item 4 measured: MBR decoding of the translate-multi30k checkpoint against beam 5. Settings are
# chosen on the validation set (`valid`: N and utility), then the chosen one is run once on test2016 and
# compared with beam 5 by paired bootstrap resampling (`test UTILITY N`).
#   experiments/mbr.sh valid  ;  experiments/mbr.sh test bleu 32
set -euo pipefail
cd "$(dirname "$0")/.."
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
CKPT=${CKPT:-checkpoints/translate-multi30k.pt}
OUT=results/mbr
mkdir -p "$OUT/hyps"

decode() {  # decode SPLIT NAME ARGS...: one decoding of SPLIT, scored, its outputs kept for the bootstrap
  local split=$1 name=$2; shift 2
  [[ -f $OUT/$split-$name.json ]] || "$TEXTGEN" eval "$CKPT" --split "$split" --metric bleu4 "$@" \
    --hyp-out "$OUT/hyps/$split-$name.txt" --results "$OUT/$split-$name.json"
}

case ${1:?valid or test} in
  valid)
    decode valid beam5 --beam 5
    for n in 16 32; do for u in bleu chrf; do decode valid "mbr$n-$u" --mbr $n --mbr-utility $u --seed 1; done; done ;;
  test)
    u=${2:?utility} n=${3:?N}
    decode test beam5 --beam 5
    decode test "mbr$n-$u" --mbr "$n" --mbr-utility "$u" --seed 1
    ref=$(mktemp)  # the references, unpacked outside the repository (data files are never committed)
    gzip -dc "$(.venv/bin/python -c 'from textgen.data.registry import fetch; print(fetch("multi30k")["test_2016_flickr.en.gz"])')" > "$ref"
    "$TEXTGEN" eval --hyp "$OUT/hyps/test-beam5.txt" --hyp "$OUT/hyps/test-mbr$n-$u.txt" --ref "$ref" \
      --metric bleu4 --paired-bootstrap 1000 --results "$OUT/test-mbr$n-$u-vs-beam5.json" ;;
esac
