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


def write_run(folder: Path, name: str, valid: float, greedy: float, beam5: float | None) -> None:
    """A finished run's train and test results; beam5=None leaves it still decoding."""
    metrics = {"steps": 100, "train_seconds": 60.0, "best_valid_bleu4": valid}
    (folder / f"{name}-train.json").write_text(json.dumps({"metrics": metrics}))
    for beam, score in ((1, greedy), (5, beam5)):
        if score is not None:
            (folder / f"{name}-test-beam{beam}.json").write_text(json.dumps({"metrics": {"bleu4": score}}))


def write_bootstrap(path: Path, hyps: list[str], base: float, system: float, p: float) -> None:
    """A significance file as `textgen eval --hyp BASE --hyp SYSTEM --paired-bootstrap N` writes it."""
    metrics = {"sys0_bleu4": base, "sys1_bleu4": system, "sys1_bleu4_p_bootstrap": p}
    path.write_text(json.dumps({"systems": hyps, "metrics": metrics}))


def write_pair(folder: Path, start: str, seed: int, beam: int, xent: float, mixer: float, p: float) -> None:
    """`paper-table.sh compare`'s file for one round, seed and beam."""
    hyps = [f"results/paper/hyps/{start}-{obj}-s{seed}-test-beam{beam}.txt" for obj in ("xent", "mixer")]
    write_bootstrap(folder / f"{start}-mixer-s{seed}-vs-xent-beam{beam}-significance.json", hyps, xent, mixer, p)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_run(tmp_path, "continued3-xent-s1", valid=30.0, greedy=27.0, beam5=28.0)
    write_run(tmp_path, "continued3-mixer-s1", valid=31.5, greedy=28.5, beam5=28.25)
    write_run(tmp_path, "continued3-xent-s2", valid=29.0, greedy=26.0, beam5=27.5)
    write_run(tmp_path, "continued3-mixer-s2", valid=29.5, greedy=26.5, beam5=27.0)
    write_run(tmp_path, "continued3-mixer-s3", valid=40.0, greedy=40.0, beam5=40.0)  # no XENT of seed 3
    write_run(tmp_path, "continued4-mixer-s1", valid=1.0, greedy=1.0, beam5=None)  # still decoding
    write_pair(tmp_path, "continued3", 1, 1, xent=27.0, mixer=28.5, p=0.004)
    return tmp_path


def test_differences_pair_each_seed_with_its_own_xent_and_take_p_from_the_compare_file(folder):
    runs = paper_table.collect(folder)
    assert ("continued4", "mixer") not in runs  # a run without both test files is not finished
    diff = paper_table.differences(runs, "continued3", folder)
    assert diff["round"] == 3
    assert [r["seed"] for r in diff["per_seed"]] == [1, 2]  # seed 3 has no XENT to pair with
    s1, s2 = diff["per_seed"]
    assert (s1["test_bleu4_beam1"], s1["test_bleu4_beam5"], s1["best_valid_bleu4"]) == (1.5, 0.25, 1.5)
    assert (s2["test_bleu4_beam1"], s2["test_bleu4_beam5"], s2["best_valid_bleu4"]) == (0.5, -0.5, 0.5)
    assert (s1["p_beam1"], s1["p_beam5"], s2["p_beam1"]) == (0.004, None, None)  # None: not compared yet
    assert diff["mean"]["test_bleu4_beam1"]["mean"] == 1.0
    assert diff["mean"]["test_bleu4_beam5"]["mean"] == -0.12  # −0.125 rounded half to even
    assert "| mean over seeds | +1.00 ± 0.71 (n=2) |" in "\n".join(paper_table.difference_table(diff))


def test_a_compare_file_older_than_the_scores_is_refused(folder):
    write_pair(folder, "continued3", 2, 1, xent=26.0, mixer=26.75, p=0.2)  # MIXER seed 2 was re-decoded since
    with pytest.raises(AssertionError, match="stale"):
        paper_table.differences(paper_table.collect(folder), "continued3", folder)


def test_a_compare_file_of_other_outputs_is_refused(folder):
    write_pair(folder, "continued3", 2, 1, xent=26.0, mixer=26.5, p=0.2)
    path = folder / "continued3-mixer-s2-vs-xent-beam1-significance.json"
    pair = json.loads(path.read_text())
    pair["systems"][1] = pair["systems"][1].replace("-s2-", "-s1-")  # seed 1's MIXER against seed 2's XENT
    path.write_text(json.dumps(pair))
    with pytest.raises(AssertionError, match="other outputs"):
        paper_table.differences(paper_table.collect(folder), "continued3", folder)


def test_round_of_reads_the_run_name_prefix():
    assert [paper_table.round_of(s) for s in ("continued", "continued2", "continued4")] == [1, 2, 4]


def write_strong_run(out: Path, name: str, valid: float, greedy: float, beam5: float, seconds: float) -> None:
    """A `compare-objectives.sh strong` run's train and test results in results/objectives/."""
    train = {"best_valid_bleu4": valid, "train_seconds": seconds, "steps": 500}
    (out / f"{name}-train.json").write_text(json.dumps({"metrics": train}))
    for beam, score in ((1, greedy), (5, beam5)):
        test = {"bleu4": score, "distinct_outputs": 1000}
        (out / f"{name}-test-beam{beam}.json").write_text(json.dumps({"metrics": test}))


def test_strong_table_pairs_each_run_with_the_same_seed_and_budgets_xent(tmp_path, monkeypatch):
    out = tmp_path / "results" / "objectives"
    mbr = tmp_path / "results" / "mbr-strong" / "mrt-s1"
    out.mkdir(parents=True)
    mbr.mkdir(parents=True)
    monkeypatch.setattr(strong_table, "OUT", out)
    monkeypatch.setattr(strong_table, "ROOT", tmp_path)
    write_strong_run(out, "strong-xent-s1", valid=39.9, greedy=39.7, beam5=41.1, seconds=100.0)
    write_strong_run(out, "strong-mrt-s1", valid=40.1, greedy=39.8, beam5=41.0, seconds=400.0)
    write_strong_run(out, "strong-long-xent-s1", valid=40.0, greedy=40.0, beam5=41.5, seconds=300.0)
    write_strong_run(out, "strong-long-mrt-s1", valid=40.5, greedy=40.25, beam5=41.25, seconds=600.0)
    xent_hyp, mrt_hyp = (f"results/objectives/hyps/strong-{m}-s1-test-beam5.txt" for m in ("xent", "mrt"))
    write_bootstrap(out / "strong-mrt-s1-vs-xent-beam5.json", [xent_hyp, mrt_hyp], 41.1, 41.0, 0.3)
    long_hyps = [f"results/objectives/hyps/strong-long-{m}-s1-test-beam1.txt" for m in ("xent", "mrt")]
    write_bootstrap(out / "strong-long-mrt-s1-vs-xent-beam1.json", long_hyps, 40.0, 40.25, 0.04)
    for name, score in (("valid-beam5", 40.5), ("valid-mbr32-bleu-beam5", 41.0), ("test-mbr32-bleu-beam5", 41.75)):
        (mbr / f"{name}.json").write_text(json.dumps({"metrics": {"bleu4": score}}))
    mbr_hyp = "results/mbr-strong/mrt-s1/hyps/test-mbr32-bleu-beam5.txt"
    write_bootstrap(mbr / "test-mbr32-bleu-beam5-vs-xent-beam5.json", [xent_hyp, mbr_hyp], 41.1, 41.75, 0.01)

    result = strong_table.collect("strong")
    mrt, long_mrt = result["methods"]["mrt"]["runs"][1], result["methods"]["long-mrt"]["runs"][1]
    assert (mrt["diff_vs_xent_beam5"], mrt["p_vs_xent_beam5"]) == (-0.1, 0.3)
    assert "p_vs_xent_greedy" not in mrt  # not compared: no figure rather than a guessed one
    assert (long_mrt["diff_vs_xent_greedy"], long_mrt["p_vs_xent_greedy"]) == (0.25, 0.04)  # long against long
    assert (mrt["valid_mbr"], mrt["test_mbr"]) == (41.0, 41.75)
    assert (mrt["diff_vs_xent_mbr"], mrt["p_vs_xent_mbr"]) == (0.65, 0.01)  # MBR against the seed's XENT beam 5
    text = strong_table.markdown(result)
    rows = [line.split(" | ")[0] for line in text.split("\n\n")[0].splitlines()[2:]]  # the first table's rows
    assert rows == ["| xent", "| mrt", "| long-xent", "| long-mrt"]  # the 2-epoch budget first
    assert "| 400 (4.0×) |" in text and "| 600 (2.0×) |" in text  # train time against the same budget's XENT
    assert "| mrt | 1 | 40.50 | 41.00 | 41.00 | 41.75 | +0.65 (p 0.010) |" in text

    write_bootstrap(out / "strong-mrt-s1-vs-xent-beam5.json", [xent_hyp, mrt_hyp], 41.1, 40.9, 0.3)
    with pytest.raises(AssertionError, match="stale"):  # MRT's test output changed since the bootstrap
        strong_table.collect("strong")
