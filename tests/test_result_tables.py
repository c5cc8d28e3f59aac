"""experiments/paper_table.py and strong_table.py: the per-seed differences to XENT and the p-values they take
from the paired-bootstrap files, on hand-made result files (the tables in docs/RESULTS.md are built from these)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
import paper_table  # noqa: E402
import strong_table  # noqa: E402


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


# paper_table: results/paper/ of `paper-table.sh continue` and `compare`


def write_paper_run(folder: Path, name: str, valid: float, greedy: float, beam5: float | None) -> None:
    """A finished run's train and test results; beam5=None leaves it still decoding."""
    write_json(
        folder / f"{name}-train.json", {"metrics": {"steps": 100, "train_seconds": 60.0, "best_valid_bleu4": valid}}
    )
    for beam, score in ((1, greedy), (5, beam5)):
        if score is not None:
            write_json(folder / f"{name}-test-beam{beam}.json", {"metrics": {"bleu4": score}})


def write_paper_pair(folder: Path, start: str, seed: int, beam: int, xent: float, mixer: float, p: float) -> None:
    """`paper-table.sh compare`'s file for one round, seed and beam."""
    hyps = [f"results/paper/hyps/{start}-{obj}-s{seed}-test-beam{beam}.txt" for obj in ("xent", "mixer")]
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


# strong_table: results/objectives/ of `compare-objectives.sh strong[-long]` and results/mbr-strong/ of mbr.sh

STRONG_RUNS = {  # name: (best valid, test greedy, test beam 5, train seconds)
    "xent-s1": (39.9, 39.7, 41.1, 100.0),
    "xent-s2": (39.5, 39.3, 40.7, 120.0),
    "mrt-s1": (40.1, 39.8, 41.0, 400.0),
    "mrt-s2": (40.3, 40.2, 41.2, 440.0),
    "long-xent-s1": (40.6, 40.0, 41.5, 300.0),
    "long-mrt-s1": (40.5, 40.25, 41.25, 600.0),
}


def hyp(run: str, beam: int) -> str:
    return f"results/objectives/hyps/strong-{run}-test-beam{beam}.txt"


def write_mbr(root: Path, run: str, valid_beam5: float, valid_mbr: float, test_mbr: float, versus: tuple) -> None:
    """mbr.sh's decodings of one model, and strong-compare's bootstrap of its test MBR against an XENT beam 5."""
    folder = root / "results" / "mbr-strong" / run
    scores = {"valid-beam5": valid_beam5, "valid-mbr32-bleu-beam5": valid_mbr, "test-mbr32-bleu-beam5": test_mbr}
    for name, score in scores.items():
        write_json(folder / f"{name}.json", {"metrics": {"bleu4": score}})
    xent_run, xent_score, p = versus
    mbr_hyp = f"results/mbr-strong/{run}/hyps/test-mbr32-bleu-beam5.txt"
    pair = [hyp(xent_run, 5), mbr_hyp]
    write_bootstrap(folder / "test-mbr32-bleu-beam5-vs-xent-beam5.json", pair, xent_score, test_mbr, p)


@pytest.fixture
def strong(tmp_path: Path, monkeypatch) -> Path:
    out = tmp_path / "results" / "objectives"
    monkeypatch.setattr(strong_table, "OUT", out)
    monkeypatch.setattr(strong_table, "ROOT", tmp_path)
    for run, (valid, greedy, beam5, seconds) in STRONG_RUNS.items():
        train = {"best_valid_bleu4": valid, "train_seconds": seconds, "steps": 500}
        write_json(out / f"strong-{run}-train.json", {"metrics": train})
        for beam, score in ((1, greedy), (5, beam5)):
            test = {"bleu4": score, "distinct_outputs": 1000}
            write_json(out / f"strong-{run}-test-beam{beam}.json", {"metrics": test})
    write_bootstrap(out / "strong-mrt-s1-vs-xent-beam5.json", [hyp("xent-s1", 5), hyp("mrt-s1", 5)], 41.1, 41.0, 0.3)
    for beam, (xent, mrt, p) in {1: (39.3, 40.2, 0.02), 5: (40.7, 41.2, 0.06)}.items():
        pair = [hyp("xent-s2", beam), hyp("mrt-s2", beam)]
        write_bootstrap(out / f"strong-mrt-s2-vs-xent-beam{beam}.json", pair, xent, mrt, p)
    long = [hyp("long-xent-s1", 1), hyp("long-mrt-s1", 1)]
    write_bootstrap(out / "strong-long-mrt-s1-vs-xent-beam1.json", long, 40.0, 40.25, 0.04)
    write_mbr(tmp_path, "mrt-s1", valid_beam5=40.5, valid_mbr=40.9, test_mbr=41.75, versus=("xent-s1", 41.1, 0.01))
    write_mbr(tmp_path, "long-mrt-s1", 40.4, 40.8, 41.8, versus=("long-xent-s1", 41.5, 0.2))
    return out


def test_strong_table_pairs_each_run_and_its_mbr_with_the_same_seed_and_budgets_xent(strong):
    result = strong_table.collect("strong")
    runs = {m: result["methods"][m]["runs"] for m in ("mrt", "long-mrt")}
    mrt1, mrt2, long_mrt = runs["mrt"][1], runs["mrt"][2], runs["long-mrt"][1]
    assert (mrt1["diff_vs_xent_beam5"], mrt1["p_vs_xent_beam5"]) == (-0.1, 0.3)
    assert "p_vs_xent_greedy" not in mrt1  # not compared: no figure rather than a guessed one
    assert (mrt2["diff_vs_xent_greedy"], mrt2["p_vs_xent_greedy"]) == (0.9, 0.02)  # seed 2 against XENT seed 2
    assert (long_mrt["diff_vs_xent_greedy"], long_mrt["p_vs_xent_greedy"]) == (0.25, 0.04)  # long against long
    assert (mrt1["valid_mbr"], mrt1["test_mbr"]) == (40.9, 41.75)
    assert (mrt1["diff_vs_xent_mbr"], mrt1["p_vs_xent_mbr"]) == (0.65, 0.01)  # MBR against the seed's XENT beam 5
    assert (long_mrt["diff_vs_xent_mbr"], long_mrt["p_vs_xent_mbr"]) == (0.3, 0.2)  # ... and the budget's


def test_strong_table_markdown(strong):
    text = strong_table.markdown(strong_table.collect("strong"))
    table = {r[0]: r for r in rows(text)}
    assert list(table) == ["xent", "mrt", "long-xent", "long-mrt"]  # the 2-epoch budget first, then ROWS' order
    assert table["mrt"][1:5] == ["1, 2", "40.20 ± 0.14 (n=2)", "40.00 ± 0.28 (n=2)", "41.10 ± 0.14 (n=2)"]
    assert table["mrt"][5] == "s1: – / -0.10 (p 0.300); s2: +0.90 (p 0.020) / +0.50 (p 0.060)"  # one seed: no mean
    assert table["long-xent"][2:5] == ["40.60", "40.00", "41.50"]  # whole scores keep their decimals
    assert (table["mrt"][6], table["long-mrt"][6]) == ("420 (3.8×)", "600 (2.0×)")  # against the budget's XENT
    assert "| mrt | 1 | 40.50 | 40.90 | 41.00 | 41.75 | +0.65 (p 0.010) |" in text


def test_strong_table_refuses_a_stale_bootstrap(strong):
    xent, mrt = hyp("xent-s1", 5), hyp("mrt-s1", 5)
    write_bootstrap(strong / "strong-mrt-s1-vs-xent-beam5.json", [xent, mrt], 41.1, 40.9, 0.3)  # MRT re-decoded since
    with pytest.raises(AssertionError, match="stale"):
        strong_table.collect("strong")
