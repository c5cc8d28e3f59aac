"""n-best reranking (textgen/rerank.py): the plain weights keep beam search's order, tuning finds a feature that
pays, the features are the models' own scores, and `textgen rerank` / `--rerank` run end to end."""

import json

import pytest
from sacrebleu.metrics import BLEU

from tests.conftest import train_for_session, write_recipe
from textgen.metrics import bleu4
from textgen.rerank import FEATURES, GRID, PLAIN, Reranker, corpus_metric, pick, tune


def test_the_plain_weights_pick_beam_searchs_best_and_each_weight_moves_the_choice():
    nbests = [[("a b", -1.0), ("a", -2.0), ("a b c", -3.0)], [("x", -0.5), ("x y", -0.7)], []]
    features = [[[-1.0, -9.0, -4.0, 2.0], [-2.0, -1.0, -3.0, 1.0], [-3.0, -5.0, -1.0, 3.0]],
                [[-0.5, -2.0, -2.0, 1.0], [-0.7, -1.0, -1.0, 2.0]], []]  # fmt: skip
    assert pick(nbests, features, [1, 0, 0, 0]) == ["a b", "x", ""]
    assert pick(nbests, features, [1, 1, 0, 0]) == ["a", "x y", ""]  # the reverse score decides
    assert pick(nbests, features, [1, 0, 1, 0]) == ["a b c", "x y", ""]  # the LM score decides
    assert pick(nbests, features, [1, 0, 0, -2]) == ["a", "x", ""]  # shorter is better


def test_tuning_finds_the_feature_that_raises_the_metric_and_keeps_plain_weights_when_none_does():
    # the reference is always the longest candidate; the forward score prefers the shortest
    nbests = [[("w", -1.0), ("w w", -1.5), ("w w w", -2.0)] for _ in range(5)]
    features = [[[s, 0.0, 0.0, float(len(t.split()))] for t, s in nb] for nb in nbests]
    metric = lambda hyps: sum(h == "w w w" for h in hyps)  # noqa: E731
    weights, best = tune(nbests, features, metric, ["reverse", "length"])
    assert best == 5 and weights["length"] > 0.5 and weights["reverse"] == 0.0 and weights["forward"] == 1.0
    weights, best = tune(nbests, features, metric, ["reverse"])  # a feature that carries nothing: no change
    assert weights == PLAIN and best == 0
    assert 0.0 in GRID and min(GRID) == -2.0 and max(GRID) == 2.0 and 0.01 in GRID


@pytest.mark.parametrize("metric", ["bleu4", "bleu4-lc"])
def test_bleu_corpus_metric_equals_sacrebleus_corpus_score(metric, monkeypatch):
    refs = ["A man rides a red bike .", "Two dogs play in the snow", "a child eats", "The Cat sleeps on a mat ."]
    picks = [
        ["a man rides a bike .", "two dogs play in snow", "a child", "the cat sleeps ."],
        ["A man rides a red bike .", "Dogs play", "a child eats food", "The cat sleeps on the mat ."],
    ]
    picks.append(["", "", "zebra", ""])  # empty outputs and no match at all
    calls = []
    real = BLEU.sentence_score
    monkeypatch.setattr(BLEU, "sentence_score", lambda self, h, r: calls.append(h) or real(self, h, r))
    score = corpus_metric(metric, refs)
    for hyps in picks:
        assert score(hyps) == bleu4(hyps, [refs], lowercase=metric == "bleu4-lc")[0]
    assert len(calls) == len({(i, h) for hyps in picks for i, h in enumerate(hyps)})
    assert score(picks[0]) == bleu4(picks[0], [refs], lowercase=metric == "bleu4-lc")[0]  # from remembered counts
    assert len(calls) == len({(i, h) for hyps in picks for i, h in enumerate(hyps)})
    assert score(picks[0]) != score(picks[1])


def test_rouge_corpus_metric_is_the_mean_of_sentence_f1s_as_eval_scores_it():
    from textgen.metrics import rouge

    refs, hyps = ["the cat sat", "a dog ran far"], ["the cat", "a dog ran far"]
    assert corpus_metric("rouge2", refs)(hyps) == pytest.approx(rouge(hyps, [refs], ("rouge2",))["rouge2"])


@pytest.fixture(scope="module")
def target_lm(reversal, tmp_path_factory):
    """A tiny char LM of the reversal corpus's target side, trained through the CLI."""

    folder, _ = reversal
    tmp = tmp_path_factory.mktemp("lm")
    return train_for_session(write_recipe(tmp / "lm.toml", folder / "train.tgt", max_steps=30), tmp / "lm.pt", tmp)


def test_features_are_the_reverse_and_language_models_own_scores(trained_mt, target_lm):
    import textgen

    mt, lm = textgen.load(trained_mt, "cpu"), textgen.load(target_lm, "cpu")
    sources = ["a b c", "h g"]
    nbests = mt.translate(sources, beam=3, nbest=3)
    rows = Reranker(PLAIN, 3, 1.0, mt, lm).features(sources, nbests)  # the reversal model reverses either way
    for source, nbest, feats in zip(sources, nbests, rows):
        for (text, score), (forward, reverse, lm_score, length) in zip(nbest, feats):
            assert forward == score and length == len(text.split())
            assert reverse == pytest.approx(mt.score([text], [source])[0].mean)  # per token, as the forward score
            assert lm_score == pytest.approx(lm.score([text + "\n"])[0].mean)  # the line end scores "" too
    assert mt.translate(sources, rerank=Reranker(PLAIN, 3, 1.0, mt, lm)) == mt.translate(sources, beam=3)


def test_cli_tunes_on_valid_and_decode_and_eval_rerank_with_the_file(cli, trained_mt, target_lm, tmp_path):
    weights = tmp_path / "rerank.json"
    res = cli("rerank", trained_mt, "--reverse", trained_mt, "--lm", target_lm, "--nbest", "3", "-o", weights)
    assert res.code == 0, res.err
    saved = json.loads(weights.read_text())
    assert saved["nbest"] == 3 and saved["reverse"] == str(trained_mt.resolve()) and saved["lenpen"] == 1.0
    assert set(saved["weights"]) == set(FEATURES)
    assert saved["valid_bleu4_reranked"] >= saved["valid_bleu4_beam3"]  # the plain weights are a point of the search
    res = cli("eval", trained_mt, "--split", "test", "--rerank", weights, "--json")
    assert res.code == 0, res.err
    metrics = json.loads(res.out)["metrics"]
    assert {f: metrics[f"rerank_{f}_weight"] for f in FEATURES} == saved["weights"] and metrics["beam"] == 3
    # weights that prefer the longest candidate: eval's outputs are pick() over the n best, not beam search's best
    longest = {**saved, "weights": {"forward": 0.0, "reverse": 0.0, "lm": 0.0, "length": 1.0}}
    (tmp_path / "longest.json").write_text(json.dumps(longest))
    res = cli("eval", trained_mt, "--split", "test", "--rerank", tmp_path / "longest.json", "--hyp-out", tmp_path / "h")
    assert res.code == 0, res.err
    import textgen
    from textgen.data.parallel import read_lines

    sources = read_lines(trained_mt.parent / "test.src")  # the toy reversal corpus, beside its model
    nbests = textgen.load(trained_mt, "cpu").translate(sources, beam=3, nbest=3)
    expected = [max(nb, key=lambda c: len(c[0].split()))[0] for nb in nbests]
    assert (tmp_path / "h").read_text().splitlines() == expected != [nb[0][0] for nb in nbests]
    src = tmp_path / "src.txt"
    src.write_text("a b c\nh g f e\n")
    res = cli("decode", trained_mt, "-i", src, "--rerank", weights)
    expected = textgen.load(trained_mt, "cpu").translate(["a b c", "h g f e"], rerank=weights)
    assert res.code == 0 and res.out.splitlines() == expected
    res = cli("decode", trained_mt, "-i", src, "--rerank", weights, "--nbest", "2")
    assert res.code == 2 and "give it without nbest" in res.err
    (tmp_path / "bad.json").write_text("{}")
    res = cli("eval", trained_mt, "--split", "test", "--rerank", tmp_path / "bad.json")
    assert res.code == 2 and "is not a reranking file" in res.err
