# Sourced by the experiment scripts: every paired significance test runs through `pair`, with one re-run rule
# and one way of unpacking a corpus's test references (data files are never committed, so they go to a temp
# dir, removed by an EXIT trap that `pair` sets on first use: a sourcing script must not set its own).
_PAIR_REFS=""

test_references() {  # test_references CORPUS: its test targets, one per line, as `textgen eval` reads them
  ${PYTHON:-.venv/bin/python} -c 'import sys; from textgen.data.parallel import load_parallel
sys.stdout.write("".join(t + "\n" for t in load_parallel(sys.argv[1], only="test").splits["test"].targets))' "$1"
}

pair() {  # pair BASE HYP CORPUS OUT [METRIC]: paired bootstrap of HYP against BASE on CORPUS's test references
          # (BLEU unless METRIC is given), unless OUT is newer than both; says so and skips when BASE is missing
  local base=$1 hyp=$2 out=$4 metric=${5:-bleu4}
  [[ -f $base ]] || { echo "pair: skipped $out: no baseline $base yet" >&2; return 0; }
  [[ -f $out && $out -nt $hyp && $out -nt $base ]] && return 0
  if [[ -z $_PAIR_REFS ]]; then
    _PAIR_REFS=$(mktemp -d)
    trap 'rm -rf "$_PAIR_REFS"' EXIT
  fi
  [[ -s $_PAIR_REFS/$3 ]] || test_references "$3" > "$_PAIR_REFS/$3"  # unpacked on first use
  "$TEXTGEN" eval --hyp "$base" --hyp "$hyp" --ref "$_PAIR_REFS/$3" --metric "$metric" --paired-bootstrap 1000 \
    --results "$out"
}
