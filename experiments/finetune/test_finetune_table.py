"""finetune_table: each run and MBR decoding paired with the same seed and budget's XENT, and the p-values taken
from the paired-bootstrap files, on hand-made result files (results/finetune-*/'s tables are built from these).
Run apart from the product's tests: .venv/bin/python -m pytest experiments/"""

from __future__ import annotations

import json
from pathlib import Path

import finetune_table
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


# results/finetune-multi30k/ of `run.sh strong[-long]` and its mbr/ of experiments/mbr/run.sh

STRONG_RUNS = {  # name: (best valid, test greedy, test beam 5, train seconds)
    "xent-s1": (39.9, 39.7, 41.1, 100.0),
    "xent-s2": (39.5, 39.3, 40.7, 120.0),
    "mrt-s1": (40.1, 39.8, 41.0, 400.0),
    "mrt-s2": (40.3, 40.2, 41.2, 440.0),
    "long-xent-s1": (40.6, 40.0, 41.5, 300.0),
    "long-mrt-s1": (40.5, 40.25, 41.25, 600.0),
}


def hyp(run: str, beam: int) -> str:
    return f"results/finetune-multi30k/hyps/strong-{run}-test-beam{beam}.txt"


def write_mbr(root: Path, run: str, valid_beam5: float, valid_mbr: float, test_mbr: float, versus: tuple) -> None:
    """mbr/run.sh's decodings of one model, and `compare`'s bootstrap of its test MBR against an XENT beam 5."""
    folder = root / "finetune-multi30k" / "mbr" / run
    scores = {"valid-beam5": valid_beam5, "valid-mbr32-bleu-beam5": valid_mbr, "test-mbr32-bleu-beam5": test_mbr}
    for name, score in scores.items():
        write_json(folder / f"{name}.json", {"metrics": {"bleu4": score}})
    xent_run, xent_score, p = versus
    mbr_hyp = f"results/finetune-multi30k/mbr/{run}/hyps/test-mbr32-bleu-beam5.txt"
    pair = [hyp(xent_run, 5), mbr_hyp]
    write_bootstrap(folder / "test-mbr32-bleu-beam5-vs-xent-beam5.json", pair, xent_score, test_mbr, p)


@pytest.fixture
def strong(tmp_path: Path, monkeypatch) -> Path:
    out = tmp_path / "finetune-multi30k"
    monkeypatch.setattr(finetune_table, "RESULTS", tmp_path)
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


def test_finetune_table_pairs_each_run_and_its_mbr_with_the_same_seed_and_budgets_xent(strong):
    result = finetune_table.collect("strong")
    runs = {m: result["methods"][m]["runs"] for m in ("mrt", "long-mrt")}
    mrt1, mrt2, long_mrt = runs["mrt"][1], runs["mrt"][2], runs["long-mrt"][1]
    assert (mrt1["diff_vs_xent_beam5"], mrt1["p_vs_xent_beam5"]) == (-0.1, 0.3)
    assert "p_vs_xent_greedy" not in mrt1  # not compared: no figure rather than a guessed one
    assert (mrt2["diff_vs_xent_greedy"], mrt2["p_vs_xent_greedy"]) == (0.9, 0.02)  # seed 2 against XENT seed 2
    assert (long_mrt["diff_vs_xent_greedy"], long_mrt["p_vs_xent_greedy"]) == (0.25, 0.04)  # long against long
    assert (mrt1["valid_mbr"], mrt1["test_mbr"]) == (40.9, 41.75)
    assert (mrt1["diff_vs_xent_mbr"], mrt1["p_vs_xent_mbr"]) == (0.65, 0.01)  # MBR against the seed's XENT beam 5
    assert (long_mrt["diff_vs_xent_mbr"], long_mrt["p_vs_xent_mbr"]) == (0.3, 0.2)  # ... and the budget's


def test_finetune_table_markdown(strong):
    text = finetune_table.markdown(finetune_table.collect("strong"))
    table = {r[0]: r for r in rows(text)}
    assert list(table) == ["xent", "mrt", "long-xent", "long-mrt"]  # the 2-epoch budget first, then ROWS' order
    assert table["mrt"][1:5] == ["1, 2", "40.20 ± 0.14 (n=2)", "40.00 ± 0.28 (n=2)", "41.10 ± 0.14 (n=2)"]
    assert table["mrt"][5] == "s1: – / -0.10 (p 0.300); s2: +0.90 (p 0.020) / +0.50 (p 0.060)"  # one seed: no mean
    assert table["long-xent"][2:5] == ["40.60", "40.00", "41.50"]  # whole scores keep their decimals
    assert (table["mrt"][6], table["long-mrt"][6]) == ("420 (3.8×)", "600 (2.0×)")  # against the budget's XENT
    assert "| mrt | 1 | 40.50 | 40.90 | 41.00 | 41.75 | +0.65 (p 0.010) |" in text


def test_finetune_table_refuses_a_stale_bootstrap(strong):
    xent, mrt = hyp("xent-s1", 5), hyp("mrt-s1", 5)
    write_bootstrap(strong / "strong-mrt-s1-vs-xent-beam5.json", [xent, mrt], 41.1, 40.9, 0.3)  # MRT re-decoded since
    with pytest.raises(AssertionError, match="stale"):
        finetune_table.collect("strong")


def test_finetune_table_of_a_queue_with_its_own_start_model_takes_no_other_queues_mbr(tmp_path, monkeypatch):
    out = tmp_path / "finetune-aeslc"
    monkeypatch.setattr(finetune_table, "RESULTS", tmp_path)
    for queue in ("aeslc-strong", "aeslc-brio"):
        train = {"best_valid_rouge2": 4.4, "train_seconds": 300.0, "steps": 788}
        write_json(out / f"{queue}-xent-s1-train.json", {"metrics": train})
        write_json(out / f"{queue}-xent-s1-test-beam5.json", {"metrics": {"rouge2": 4.5, "distinct_outputs": 770}})
    write_json(out / "aeslc-brio-start-test-beam5.json", {"metrics": {"rouge2": 4.7}})
    scores = {"valid-beam5": 4.3, "valid-mbr32-rouge2-beam5": 4.55}  # aeslc-strong's xent-s1, decoded with MBR
    for name, score in scores.items():
        write_json(out / "mbr" / "xent-s1" / f"{name}.json", {"metrics": {"rouge2": score}})
    assert finetune_table.collect("aeslc-strong")["methods"]["xent"]["runs"][1]["valid_mbr"] == 4.55
    for method, score in (("xent-valid-beam5", 4.4), ("rank", 4.8)):  # the queue's control, and a ranking run
        train = {"best_valid_rouge2": 4.6, "train_seconds": 300.0 if method != "rank" else 1200.0, "steps": 788}
        write_json(out / f"aeslc-brio-{method}-s1-train.json", {"metrics": train})
        scores = {"rouge2": score, "distinct_outputs": 800}
        write_json(out / f"aeslc-brio-{method}-s1-test-beam5.json", {"metrics": scores})
    pair = [f"results/finetune-aeslc/hyps/aeslc-brio-{m}-s1-test-beam5.txt" for m in ("xent-valid-beam5", "rank")]
    metrics = {"sys0_rouge2": 4.4, "sys1_rouge2": 4.8, "sys1_rouge2_p_bootstrap": 0.04}
    write_json(out / "aeslc-brio-rank-s1-vs-xent-beam5.json", {"systems": pair, "metrics": metrics})
    result = finetune_table.collect("aeslc-brio", control="xent-valid-beam5")
    assert not {"valid_beam5", "valid_mbr", "test_mbr"} & result["methods"]["xent"]["runs"][1].keys()
    assert sorted(result["methods"]) == ["rank", "xent", "xent-valid-beam5"]  # not aeslc-strong's runs
    rank = result["methods"]["rank"]["runs"][1]
    assert (rank["diff_vs_xent_beam5"], rank["p_vs_xent_beam5"]) == (0.4, 0.04)  # against the queue's control
    assert result["start"] == {"test beam5": 4.7}
    text = finetune_table.markdown(result)
    assert "The start model: test beam5 4.70." in text
    assert {r[0]: r[-1] for r in rows(text)}["rank"] == "1200 (4.0×)"  # time against the control's
