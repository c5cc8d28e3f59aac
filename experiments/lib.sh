# Sourced by every study's run.sh (never run by itself): one way to train-and-score a run, to pair two outputs by
# paired bootstrap, to unpack a corpus's test references and to build a study's table. Scripts source it from the
# repository root: `source experiments/lib.sh`. Data files are never committed, so references (and hypotheses that
# were gzipped after their study finished) are unpacked into a temp dir, removed by an EXIT trap that the first
# use sets: a sourcing script must not set its own.
TEXTGEN=${TEXTGEN:-.venv/bin/textgen}
PYTHON=${PYTHON:-.venv/bin/python}
_SCRATCH=""

scratch() {  # make the temp dir once, in the calling shell (not in a $(...) subshell, whose exit would remove it)
  if [[ -z $_SCRATCH ]]; then
    _SCRATCH=$(mktemp -d)
    trap 'rm -rf "$_SCRATCH"' EXIT
  fi
}

test_references() {  # test_references CORPUS: its test targets, one per line, as `textgen eval` reads them
  "$PYTHON" -c 'import sys; from textgen.data.parallel import load_parallel
sys.stdout.write("".join(t + "\n" for t in load_parallel(sys.argv[1], only="test").splits["test"].targets))' "$1"
}

hyp_path() {  # hyp_path HYP: HYP itself, or HYP.gz unpacked under the temp dir at the same relative path (so the
              # paired-bootstrap file names the same output either way); nothing when neither exists
  if [[ -f $1 ]]; then echo "$1"; return; fi
  [[ -f $1.gz ]] || return 0
  [[ -n $_SCRATCH ]] || { echo "hyp_path: call scratch first" >&2; return 1; }
  mkdir -p "$_SCRATCH/$(dirname "$1")"
  [[ -f $_SCRATCH/$1 ]] || gunzip -c "$1.gz" > "$_SCRATCH/$1"
  echo "$_SCRATCH/$1"
}

pair() {  # pair BASE HYP CORPUS OUT [METRIC]: paired bootstrap of HYP against BASE on CORPUS's test references
          # (BLEU unless METRIC is given), unless OUT exists; says so and skips when BASE is missing
  local out=$4 metric=${5:-bleu4} base hyp refs
  [[ -f $out ]] && return 0
  scratch
  base=$(hyp_path "$1") hyp=$(hyp_path "$2")
  [[ -n $base ]] || { echo "pair: skipped $out: no baseline $1 yet" >&2; return 0; }
  [[ -n $hyp ]] || { echo "pair: skipped $out: no output $2 yet" >&2; return 0; }
  refs=$_SCRATCH/$3.ref
  [[ -s $refs ]] || test_references "$3" > "$refs"  # unpacked on first use
  "$TEXTGEN" eval --hyp "$base" --hyp "$hyp" --ref "$refs" --metric "$metric" --paired-bootstrap 1000 \
    --results "$out"
}

train_and_score() {  # train_and_score OUT NAME INIT METRICS -- train args...: fine-tune NAME from INIT (epochs, not
                     # minutes, one thread) unless OUT/NAME-train.json exists, then score test greedy and beam 5
  local out=$1 name=$2 init=$3 metrics=$4; shift 5
  local study ckpt
  study=$(basename "$out") ckpt=checkpoints/$(basename "$out")/$name.pt
  mkdir -p "$out/hyps" "checkpoints/$study" "runs/$study"
  if [[ ! -f $out/$name-train.json ]]; then
    "$TEXTGEN" train "$@" --set init_from="$init" --set train.max_minutes=0 --set train.threads=1 \
      -o "$ckpt" --run-dir "runs/$study/$name" --results "$out/$name-train.json"
  fi
  score_test "$out" "$name" "$metrics"
}

score_test() {  # score_test OUT NAME METRICS: score checkpoints/STUDY/NAME.pt on test with greedy search and beam 5
                # into OUT/NAME-test-beamB.json and OUT/hyps/, unless scored already
  local out=$1 name=$2 metrics=$3 beam ckpt
  ckpt=checkpoints/$(basename "$out")/$name.pt
  for beam in 1 5; do
    [[ -f $out/$name-test-beam$beam.json ]] && continue
    # shellcheck disable=SC2086  # METRICS is a list of --metric options
    "$TEXTGEN" eval "$ckpt" --split test --beam $beam $metrics \
      --hyp-out "$out/hyps/$name-test-beam$beam.txt" --results "$out/$name-test-beam$beam.json"
  done
}

table() {  # table SCRIPT ARGS...: run a study's table builder (experiments/tables.py importable)
  PYTHONPATH=experiments${PYTHONPATH:+:$PYTHONPATH} "$PYTHON" "$@"
}
