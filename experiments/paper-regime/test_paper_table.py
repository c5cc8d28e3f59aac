"""paper_table: the per-seed MIXER − XENT differences and the p-values they take from the paired-bootstrap files,
on hand-made result files (results/paper-regime/'s tables are built from these). Run apart from the product's
tests: .venv/bin/python -m pytest experiments/"""

from __future__ import annotations

import json
from pathlib import Path

import paper_table
import pytest


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def write_bootstrap(path: Path, hyps: list[str], base: float, system: float, p: float) -> None:
    """The fields the tables read of a file that `textgen eval --hyp BASE --hyp SYSTEM --paired-bootstrap N`
    writes."""
    metrics = {"sys0_bleu4": base, "sys1_bleu4": system, "sys1_bleu4_p_bootstrap": p}
    write_json(path, {"systems": hyps, "metrics": metrics})


def rows(markdown: str) -> list[list[str]]:
    """The cells of the first markdown table's body rows."""
    return [[c.strip() for c in line.strip("|").split("|")] for line in markdown.split("\n\n")[0].splitlines()[2:]]


# results/paper-regime/ of `run.sh continue` and `compare`


def write_paper_run(folder: Path, name: str, valid: float, greedy: float, beam5: float | None) -> None:
    """A finished run's train and test results; beam5=None leaves it still decoding."""
    write_json(
        folder / f"{name}-train.json", {"metrics": {"steps": 100, "train_seconds": 60.0, "best_valid_bleu4": valid}}
    )
    for beam, score in ((1, greedy), (5, beam5)):
        if score is not None:
            write_json(folder / f"{name}-test-beam{beam}.json", {"metrics": {"bleu4": score}})


def write_paper_pair(folder: Path, start: str, seed: int, beam: int, xent: float, mixer: float, p: float) -> None:
    """`run.sh compare`'s file for one round, seed and beam."""
    hyps = [f"results/paper-regime/hyps/{start}-{obj}-s{seed}-test-beam{beam}.txt" for obj in ("xent", "mixer")]
    write_bootstrap(folder / f"{start}-mixer-s{seed}-vs-xent-beam{beam}-significance.json", hyps, xent, mixer, p)


@pytest.fixture
def paper(tmp_path: Path) -> Path:
    write_paper_run(tmp_path, "continued3-xent-s1", valid=30.0, greedy=27.0, beam5=28.0)
    write_paper_run(tmp_path, "continued3-mixer-s1", valid=32.0, greedy=28.5, beam5=28.25)
    write_paper_run(tmp_path, "continued3-xent-s2", valid=29.0, greedy=26.0, beam5=27.5)
    write_paper_run(tmp_path, "continued3-mixer-s2", valid=28.0, greedy=26.5, beam5=27.25)
    write_paper_run(tmp_path, "continued3-mixer-s3", valid=40.0, greedy=40.0, beam5=40.0)  # no XENT of seed 3
    write_paper_run(tmp_path, "continued4-mixer-s1", valid=1.0, greedy=1.0, beam5=None)  # still decoding
    write_paper_pair(tmp_path, "continued3", 1, 1, xent=27.0, mixer=28.5, p=0.004)
    return tmp_path


def test_paper_differences_pair_each_seed_with_its_own_xent_and_take_p_from_the_compare_file(paper):
    runs = paper_table.collect(paper)
    assert ("continued4", "mixer") not in runs  # a run without both test files is not finished
    diff = paper_table.differences(runs, "continued3", paper)
    assert diff["round"] == 3
    assert [r["seed"] for r in diff["per_seed"]] == [1, 2]  # seed 3 has no XENT to pair with
    s1, s2 = diff["per_seed"]
    assert (s1["test_bleu4_beam1"], s1["test_bleu4_beam5"], s1["best_valid_bleu4"]) == (1.5, 0.25, 2.0)
    assert (s2["test_bleu4_beam1"], s2["test_bleu4_beam5"], s2["best_valid_bleu4"]) == (0.5, -0.25, -1.0)
    assert (s1["p_beam1"], s1["p_beam5"], s2["p_beam1"]) == (0.004, None, None)  # None: not compared yet
    assert rows("\n".join(paper_table.difference_table(diff))) == [
        ["seed 1", "+1.50 (0.004)", "+0.25 (–)", "+2.00"],
        ["seed 2", "+0.50 (–)", "-0.25 (–)", "-1.00"],
        ["mean over seeds", "+1.00 ± 0.71 (n=2)", "+0.00 ± 0.35 (n=2)", "+0.50 ± 2.12 (n=2)"],
    ]
    xent = rows("\n".join(paper_table.table(runs, "continued3")))[0]
    assert xent[:5] == ["XENT", "1, 2", "26.50 ± 0.71 (n=2)", "27.75 ± 0.35 (n=2)", "29.50 ± 0.71 (n=2)"]


def test_paper_compare_file_older_than_the_scores_is_refused(paper):
    write_paper_pair(paper, "continued3", 2, 1, xent=26.0, mixer=26.75, p=0.2)  # MIXER seed 2 was re-decoded since
    with pytest.raises(AssertionError, match="stale"):
        paper_table.differences(paper_table.collect(paper), "continued3", paper)


def test_paper_compare_file_of_other_outputs_is_refused(paper):
    write_paper_pair(paper, "continued3", 2, 1, xent=26.0, mixer=26.5, p=0.2)
    path = paper / "continued3-mixer-s2-vs-xent-beam1-significance.json"
    pair = json.loads(path.read_text())
    pair["systems"][1] = pair["systems"][1].replace("-s2-", "-s1-")  # seed 1's MIXER against seed 2's XENT
    path.write_text(json.dumps(pair))
    with pytest.raises(AssertionError, match="other outputs"):
        paper_table.differences(paper_table.collect(paper), "continued3", paper)


def test_paper_round_at_a_set_lr_is_its_own_start(paper):
    write_paper_run(paper, "continued-lr0.05-xent-s1", valid=25.0, greedy=25.0, beam5=26.0)
    write_paper_run(paper, "continued-lr0.05-mixer-s1", valid=25.5, greedy=26.0, beam5=26.5)
    diff = paper_table.differences(paper_table.collect(paper), "continued-lr0.05", paper)
    assert diff["round"] == 1 and [r["test_bleu4_beam1"] for r in diff["per_seed"]] == [1.0]
    prefixes = ("continued", "continued2", "continued4", "continued3-lr0.1")
    assert [paper_table.round_of(s) for s in prefixes] == [1, 2, 4, 3]
