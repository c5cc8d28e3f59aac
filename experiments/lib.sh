# Sourced by the experiment scripts: every paired significance test runs through `pair`, with one re-run rule
# and one way of unpacking a corpus's test references (data files are never committed, so they go to a temp dir).

test_references() {  # test_references CORPUS: its test targets, one per line, as `textgen eval` reads them
  ${PYTHON:-.venv/bin/python} -c 'import sys; from textgen.data.parallel import load_parallel
sys.stdout.write("".join(t + "\n" for t in load_parallel(sys.argv[1], only="test").splits["test"].targets))' "$1"
}

pair() {  # pair BASE HYP CORPUS OUT [METRIC]: paired bootstrap of HYP against BASE on CORPUS's test references
          # (BLEU unless METRIC is given), unless BASE is missing or OUT is newer than both
  local base=$1 hyp=$2 out=$4 metric=${5:-bleu4}
  [[ -f $base ]] || return 0
  [[ -f $out && $out -nt $hyp && $out -nt $base ]] && return 0
  if [[ -z ${REFS:-} ]]; then
    REFS=$(mktemp -d)
    trap 'rm -rf "$REFS"' EXIT
  fi
  [[ -s $REFS/$3 ]] || test_references "$3" > "$REFS/$3"  # unpacked on first use
  "$TEXTGEN" eval --hyp "$base" --hyp "$hyp" --ref "$REFS/$3" --metric "$metric" --paired-bootstrap 1000 \
    --results "$out"
}
