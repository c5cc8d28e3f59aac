#!/usr/bin/env bash
# The GPU check as one script for a device machine (one command, well inside 10 minutes on an H100/H200): the
# CUDA tests, `make bench-gpu`'s benchmarks, and one epoch each of Multi30k XENT (fp32, bf16) and MIXER on the GPU,
# to set beside the CPU epoch times.
#
# The corpora do not travel to the device machine by themselves; once, here (.gpu-data is git-ignored):
#   mkdir -p .gpu-data && cp -r ../shared/data/{multi30k,tinyshakespeare} .gpu-data/
# then run `benchmarks/gpu-check.sh` there with carry [".gpu-data"] (its python3 has torch+CUDA, typer,
# rich, sacrebleu and sentencepiece; nothing here needs rouge-score). Results land in $OUT.
# A dry run on a CPU: DEVICE=cpu EPOCHS=0.05 OUT=/tmp/gpu-check benchmarks/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
EPOCHS=${EPOCHS:-1}
OUT=${OUT:-results/speed/gpu-check}
export TEXTGEN_DATA_MIRROR=${TEXTGEN_DATA_MIRROR:-$PWD/.gpu-data} PYTHONUNBUFFERED=1 PYTHONPATH=$PWD  # textgen is not installed there
mkdir -p "$OUT" checkpoints/gpu-check
"$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
"$PY" -m pytest -q -rs tests/test_cuda.py tests/test_device.py tests/test_precision.py 2>&1 | tee "$OUT/tests.log"
"$PY" benchmarks/bench_lm.py --device "$DEVICE" --repeats 1 --recipes shakespeare --out "$OUT/bench-lm-$DEVICE.json"
"$PY" benchmarks/bench_seq2seq.py --device "$DEVICE" --out "$OUT/bench-seq2seq-$DEVICE.json"
epoch() {  # epoch NAME RECIPE -- extra train args
  local name=$1 recipe=$2; shift 3
  "$PY" -m textgen train -r "$recipe" --device "$DEVICE" --set train.epochs="$EPOCHS" --set train.max_minutes=0 \
    --set train.valid_subset=200 "$@" -o "checkpoints/gpu-check/$name.pt" --run-dir "runs/gpu-check-$name" \
    --results "$OUT/multi30k-$name-epoch-$DEVICE.json"
}
epoch xent-fp32 translate-multi30k --
epoch xent-bf16 translate-multi30k -- --set train.precision=bf16
epoch mixer-fp32 mixer -- --set init_from=checkpoints/gpu-check/xent-fp32.pt --set objective.mixer.xent_epochs=0
