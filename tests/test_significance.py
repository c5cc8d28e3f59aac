"""Paired significance tests (`textgen eval --hyp A --hyp B --ref R --paired-bootstrap N / --paired-ar N`):
sacrebleu's PairedTest, the first system the baseline; its values, its edge cases and the CLI around it."""

import json
import os
import random
from pathlib import Path

import pytest

from tests.test_cli_errors import assert_clean_error
from textgen.compare import compare_systems, eval_files
from textgen.data.registry import sha256_of
from textgen.errors import UserError

WORDS = "a b c d e f g h i j k l".split()


@pytest.fixture
def systems(tmp_path):
    """100 references of 8 words; a baseline with 60% of its words replaced, a system with 30% replaced."""
    rng = random.Random(0)
    refs = [" ".join(rng.choice(WORDS) for _ in range(8)) for _ in range(100)]

    def corrupt(line, p):
        return " ".join(w if rng.random() > p else rng.choice(WORDS) for w in line.split())

    files = {"ref": refs, "base": [corrupt(r, 0.6) for r in refs], "better": [corrupt(r, 0.3) for r in refs]}
    for name, lines in files.items():
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    return {name: tmp_path / f"{name}.txt" for name in files}


def test_identical_systems_get_sacrebleus_minimum_p_and_are_flagged(systems):
    out = compare_systems([systems["base"], systems["base"]], [systems["ref"]], "bleu4", bootstrap=500, ar=400)
    base, same = out["systems"]
    assert same["score"] == base["score"] and same["differing_lines"] == 0
    # sacrebleu counts resampled differences strictly larger than the observed one (0 here), so an identical
    # system gets (0 + 1) / (n + 1): the smallest p it can give, not 1 (significance.py, _compute_p_value)
    assert same["p_bootstrap"] == pytest.approx(1 / 501) and same["p_ar"] == pytest.approx(1 / 401)
    assert base["p_bootstrap"] is None and base["p_ar"] is None


def test_a_clearly_better_system_is_significant_and_a_near_copy_is_not_under_bootstrap(systems, tmp_path):
    out = compare_systems([systems["base"], systems["better"]], [systems["ref"]], "bleu4", bootstrap=1000, ar=1000)
    base, better = out["systems"]
    assert better["score"] > base["score"] + 10
    assert better["p_bootstrap"] < 0.05 and better["p_ar"] < 0.05
    assert base["ci"] > 0 and better["ci"] > 0
    assert better["mean"] == pytest.approx(better["score"], abs=2 * better["ci"])
    lines = systems["base"].read_text().splitlines()  # the baseline with one sentence changed: no real difference
    lines[0] = systems["better"].read_text().splitlines()[0]
    (tmp_path / "near.txt").write_text("\n".join(lines) + "\n")
    near = compare_systems(
        [systems["base"], tmp_path / "near.txt"], [systems["ref"]], "bleu4", bootstrap=1000, ar=1000
    )["systems"][1]
    assert near["differing_lines"] == 1 and near["p_bootstrap"] > 0.05
    # AR: swapping the one differing line reproduces the observed difference exactly, every trial ties it, and
    # sacrebleu counts only strictly larger differences: its minimum p. `textgen eval` prints a note for this.
    assert near["p_ar"] == pytest.approx(1 / 1001)


def test_results_equal_sacrebleus_paired_test_called_directly(systems, monkeypatch):
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    read = {k: p.read_text().splitlines() for k, p in systems.items()}
    named = [(str(systems["base"]), read["base"]), (str(systems["better"]), read["better"])]
    ours = compare_systems(
        [systems["base"], systems["better"]], [systems["ref"]], "bleu4", bootstrap=300, ar=200, seed=7
    )
    assert "SACREBLEU_SEED" not in os.environ or os.environ["SACREBLEU_SEED"] != "7"  # the seed is put back
    monkeypatch.setenv("SACREBLEU_SEED", "7")
    _, bs = PairedTest(named, {"bleu4": BLEU()}, [read["ref"]], test_type="bs", n_samples=300)()
    sigs, ar = PairedTest(named, {"bleu4": BLEU()}, [read["ref"]], test_type="ar", n_samples=200, n_ar_confidence=-1)()
    for row, b, a in zip(ours["systems"], bs["BLEU"], ar["BLEU"]):
        assert (row["score"], row["mean"], row["ci"], row["p_bootstrap"]) == (b.score, b.mean, b.ci, b.p_value)
        assert row["p_ar"] == a.p_value and a.score == b.score
    assert ours["seed"] == 7 and ours["signatures"]["paired_ar"] == str(sigs["BLEU"])
    assert "bs:300|seed:7" in ours["signatures"]["paired_bootstrap"]
    alone = compare_systems([systems["base"], systems["better"]], [systems["ref"]], "bleu4", ar=200, seed=7)
    _, ar_ci = PairedTest(
        named, {"bleu4": BLEU()}, [read["ref"]], test_type="ar", n_samples=200, n_ar_confidence=1000
    )()
    assert [(r["mean"], r["ci"], r["p_ar"]) for r in alone["systems"]] == [
        (x.mean, x.ci, x.p_value) for x in ar_ci["BLEU"]
    ]  # AR alone: sacrebleu's bootstrap CI for AR


def test_default_seed_is_sacrebleus_and_lowercase_bleu_works(systems):
    out = compare_systems([systems["base"], systems["better"]], [systems["ref"]], "bleu4-lc", bootstrap=100)
    assert out["seed"] == int(os.environ.get("SACREBLEU_SEED", "12345"))
    assert "case:lc" in out["signatures"]["paired_bootstrap"]
    assert out == compare_systems([systems["base"], systems["better"]], [systems["ref"]], "bleu4-lc", bootstrap=100)


def test_rouge_comparisons_score_as_eval_does(systems, tmp_path):
    from textgen.metrics import rouge

    read = {k: p.read_text().splitlines() for k, p in systems.items()}
    (tmp_path / "ref2.txt").write_text("\n".join(read["better"]) + "\n")  # a second stream: best of the two counts
    for refs in ([systems["ref"]], [systems["ref"], tmp_path / "ref2.txt"]):
        streams = [p.read_text().splitlines() for p in refs]
        out = compare_systems([systems["base"], systems["better"]], refs, "rouge2", bootstrap=500, ar=300, seed=3)
        base, better = out["systems"]
        assert base["score"] == pytest.approx(rouge(read["base"], streams, ("rouge2",))["rouge2"], abs=1e-8)
        assert better["score"] == pytest.approx(rouge(read["better"], streams, ("rouge2",))["rouge2"], abs=1e-8)
        assert better["score"] > base["score"] + 10 and better["p_bootstrap"] < 0.05 and better["p_ar"] < 0.05
        assert better["mean"] == pytest.approx(better["score"], abs=better["ci"])
        assert f"nrefs:{len(refs)}" in out["signatures"]["paired_bootstrap"]
        assert "kind:rouge2" in out["signatures"]["paired_bootstrap"]
        if len(refs) == 2:  # the system is the second reference: 100 in every resample
            assert better["score"] == 100.0 and better["ci"] == 0.0
        else:
            assert better["ci"] > 0


def test_rouge_bootstrap_equals_resampling_per_sentence_f1_by_hand(systems):
    import numpy as np

    from textgen.metrics import sentence_rouge

    read = {k: p.read_text().splitlines() for k, p in systems.items()}
    f1 = {
        k: np.array([sentence_rouge(h, r, "rougeL") for h, r in zip(read[k], read["ref"])]) for k in ("base", "better")
    }
    out = compare_systems([systems["base"], systems["better"]], [systems["ref"]], "rougeL", bootstrap=400, seed=11)
    idxs = np.random.default_rng(11).choice(100, size=(400, 100), replace=True)  # sacrebleu's resamples
    scores = {k: 100 * v[idxs].mean(axis=1) for k, v in f1.items()}
    diffs = np.abs(scores["better"] - scores["base"])
    observed = 100 * abs(f1["better"].mean() - f1["base"].mean())
    p = (np.sum(diffs - diffs.mean() > observed) + 1) / 401
    base, better = out["systems"]
    assert better["score"] == pytest.approx(100 * f1["better"].mean(), abs=1e-8)
    assert (base["mean"], better["mean"]) == (
        pytest.approx(scores["base"].mean(), abs=1e-3),
        pytest.approx(scores["better"].mean(), abs=1e-3),
    )
    assert better["p_bootstrap"] == pytest.approx(p, abs=2 / 401)


def test_rouge_ar_ties_a_one_line_change_and_a_null_pair_is_not_significant(systems, tmp_path):
    read = {k: p.read_text().splitlines() for k, p in systems.items()}
    near = list(read["base"])
    near[0] = read["better"][0]
    mixed_a = [b if i % 2 else g for i, (b, g) in enumerate(zip(read["base"], read["better"]))]
    mixed_b = [g if i % 2 else b for i, (b, g) in enumerate(zip(read["base"], read["better"]))]
    for name, lines in (("near", near), ("a", mixed_a), ("b", mixed_b)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    one = compare_systems([systems["base"], tmp_path / "near.txt"], [systems["ref"]], "rouge2", 1000, 1000, seed=5)
    # as for BLEU: every AR shuffle reproduces the observed difference or 0, and ties are not counted; float F1
    # sums in another order would break the tie at ~1e-14 without the metric's rounding
    assert one["systems"][1]["p_ar"] == pytest.approx(1 / 1001) and one["systems"][1]["p_bootstrap"] > 0.05
    null = compare_systems([tmp_path / "a.txt", tmp_path / "b.txt"], [systems["ref"]], "rouge2", 1000, 1000)
    assert null["systems"][1]["differing_lines"] > 90
    assert null["systems"][1]["p_bootstrap"] > 0.05 and null["systems"][1]["p_ar"] > 0.05


def test_eval_compares_rouge_from_the_command_line(cli, systems):
    files = [str(systems[k]) for k in ("base", "better")]
    result = cli(
        "eval", "--hyp", files[0], "--hyp", files[1], "--ref", systems["ref"], "--metric", "rouge2",
        "--paired-bootstrap", "300", "--json",
    )  # fmt: skip
    assert result.code == 0, result.err
    m = json.loads(result.out)["metrics"]
    assert m["sys1_rouge2"] > m["sys0_rouge2"] + 10 and m["sys1_rouge2_p_bootstrap"] < 0.05


def test_bad_comparisons_are_user_errors(systems, tmp_path):
    (tmp_path / "short.txt").write_text("a b\n" * 99)
    two, ref = [systems["base"], systems["better"]], [systems["ref"]]
    for call, fragment in [
        (lambda: compare_systems([systems["base"], tmp_path / "short.txt"], ref, "bleu4", 100), "has 99 lines but"),
        (lambda: compare_systems(two, [tmp_path / "short.txt"], "bleu4", 100), "has 100 lines but"),
        (lambda: compare_systems([systems["base"]], ref, "bleu4", 100), "two or more --hyp"),
        (lambda: compare_systems(two, ref, "bleu4"), "needs a paired test"),
        (lambda: compare_systems(two, ref, "bleu4", -1), ">= 1"),
        (lambda: compare_systems(two, ref, "meteor", 100), "unknown metric"),
        (lambda: compare_systems(two, [], "bleu4", 100), "--ref"),
        (lambda: compare_systems(two, ref, "bleu4", 100, seed=0), "--seed"),
    ]:
        with pytest.raises(UserError, match=fragment):
            call()


def test_eval_compares_systems_and_one_hyp_works_as_before(cli, systems, tmp_path):
    files = [str(systems[k]) for k in ("base", "better")]
    result = cli(
        "eval",
        "--hyp",
        files[0],
        "--hyp",
        files[1],
        "--ref",
        systems["ref"],
        "--metric",
        "bleu4",
        "--paired-bootstrap",
        "1000",
        "--paired-ar",
        "1000",
        "--json",
        "--results",
        "sig.json",
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data == {**json.loads((tmp_path / "sig.json").read_text()), "seconds": data["seconds"]}
    m = data["metrics"]
    assert data["systems"] == files and m["sys1_bleu4"] > m["sys0_bleu4"] + 10 and m["sys1_differing_lines"] == 100
    assert m["sys1_bleu4_p_bootstrap"] < 0.05 and m["sys1_bleu4_p_ar"] < 0.05 and m["sys0_bleu4_ci95"] > 0
    assert "bs:1000" in data["signatures"]["bleu4 paired_bootstrap"]
    assert "ar:1000" in data["signatures"]["bleu4 paired_ar"]
    table = cli(
        "eval",
        "--hyp",
        files[0],
        "--hyp",
        files[1],
        "--hyp",
        files[0],
        "--ref",
        systems["ref"],
        "--paired-bootstrap",
        "200",
    ).out.splitlines()
    assert table[0].startswith("bleu4 signature (paired bootstrap): nrefs:1|bs:200|seed:12345")
    assert table[2].startswith(f"{files[0]} (baseline)") and table[3].startswith(files[1])
    assert table[-1].startswith(f"note: {files[0]} is line for line the baseline")
    assert table[2].split()[2] == "-" and table[3].split()[1] == "100" and table[4].split()[1] == "0"
    assert data["data"] == {p: sha256_of(Path(p)) for p in [*files, str(systems["ref"])]}
    one = cli("eval", "--hyp", files[1], "--ref", systems["ref"], "--metric", "bleu4", "--json")
    assert one.code == 0 and json.loads(one.out)["data"] == {
        p: sha256_of(Path(p)) for p in [files[1], str(systems["ref"])]
    }
    assert json.loads(one.out)["metrics"] == eval_files(Path(files[1]), [systems["ref"]], ["bleu4"])[0]


def test_eval_comparison_errors_are_one_line(cli, systems, tmp_path):
    (tmp_path / "short.txt").write_text("a b\n" * 99)
    base, ref = systems["base"], systems["ref"]
    assert_clean_error(
        cli("eval", "--hyp", base, "--hyp", "short.txt", "--ref", ref, "--paired-bootstrap", "100"),
        "short.txt has 99 lines but",
        "line-aligned",
    )
    assert_clean_error(cli("eval", "--hyp", base, "--ref", ref, "--paired-bootstrap", "100"), "two or more --hyp")
    assert_clean_error(cli("eval", "--hyp", base, "--hyp", systems["better"], "--ref", ref), "needs a paired test")
    assert_clean_error(cli("eval", "--paired-ar", "100"), "--hyp BASE --hyp NEW")


def test_sacrebleus_tokenized_output_warning_comes_once_per_process(monkeypatch, caplog):
    """Validation on a tokenized corpus scores BLEU every epoch: the warning must not repeat each time, and a
    first scoring that does not look tokenized (an early, untrained model's output) must not use it up."""
    from textgen import metrics

    monkeypatch.setattr(metrics, "_detokenize_warned", False)
    clean = [f"a man rides horse number {i}" for i in range(120)]
    tokenized = [line + " ." for line in clean]
    with caplog.at_level("WARNING", logger="sacrebleu"):
        assert metrics.bleu4(clean, [clean])[0] == pytest.approx(100.0) and not caplog.records
        first, _ = metrics.bleu4(tokenized, [tokenized])
        warned = len(caplog.records)
        second, _ = metrics.bleu4(tokenized, [tokenized])
    assert warned >= 1 and "detokenize" in caplog.text
    assert len(caplog.records) == warned and first == second == pytest.approx(100.0)
