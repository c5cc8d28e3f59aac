"""Ensembles (decode/ensemble.py) and checkpoint averaging (train/average.py): the mixture against hand-computed
probabilities and brute force, one member and identical members against the model, and both through the CLI."""

import itertools
import math

import pytest
import torch

from tests.conftest import tiny_transformer
from textgen.config import ModelConfig
from textgen.data.seqvocab import BOS, EOS
from textgen.decode.ensemble import Ensemble
from textgen.decode.search import beam_search, greedy_or_sample
from textgen.models.protocol import Seq2SeqDecoder
from textgen.models.seq2seq import Seq2Seq
from textgen.train import checkpoint
from textgen.train.average import average, checkpoint_files

V = 7  # PAD, UNK, BOS, EOS and three real tokens


def lstm(seed: int):
    torch.manual_seed(seed)
    return Seq2Seq(12, V, ModelConfig(layers=1, hidden=16, embed=8, attention="general")).eval()


def mixed(seed: int = 0) -> Ensemble:
    """An LSTM and a Transformer over the same vocabularies: members need not share an architecture."""
    return Ensemble([lstm(seed), tiny_transformer("seq2seq", 12, V, seed=seed + 1)]).eval()


@torch.no_grad()
def mixture_logprob(members, src, seq) -> float:
    """log p(seq | src) under the per-step mean of the members' probabilities, from their teacher-forced
    forward passes (not their step methods, which the ensemble uses)."""
    tgt_in = torch.tensor([[BOS, *seq[:-1]]])
    lens = torch.tensor([src.size(1)])
    probs = torch.stack([m(src, lens, tgt_in).log_softmax(-1).exp() for m in members]).mean(0)[0]  # (T, V)
    return float(sum(math.log(probs[t, y]) for t, y in enumerate(seq)))


def test_an_ensemble_is_a_decoder_and_its_step_is_the_mean_of_the_members_probabilities():
    ens = mixed()
    assert isinstance(ens, Seq2SeqDecoder)
    src, lens = torch.randint(4, 12, (3, 5)), torch.tensor([5, 4, 2])
    with torch.no_grad():
        logits, _ = ens.step(torch.full((3,), BOS), ens.encode(src, lens))
        members = [m.step(torch.full((3,), BOS), m.encode(src, lens))[0].softmax(-1) for m in ens.members]
    assert torch.allclose(logits.exp(), (members[0] + members[1]) / 2, atol=1e-6)
    assert not torch.allclose(members[0], members[1], atol=1e-3)  # the members differ: the mean is tested


def test_ensemble_beam_search_finds_the_brute_force_optimum():
    real = [1, 4, 5, 6]
    for seed in range(3):
        ens = mixed(seed)
        src = torch.tensor([[seed + 4, seed + 5, 7]])
        candidates = [list(p) + [EOS] for n in range(4) for p in itertools.product(real, repeat=n)]
        scored = sorted(((mixture_logprob(ens.members, src, c), c) for c in candidates), reverse=True)
        hyps = beam_search(ens, src, torch.tensor([3]), beam=len(candidates) + 1, nbest=5, lenpen=0.0,
                           max_len_a=0.0, max_len_b=4)  # fmt: skip
        assert hyps.tokens[0] == [c[:-1] for _, c in scored[:5]]
        assert all(math.isclose(h, s, rel_tol=1e-4) for h, (s, _) in zip(hyps.scores[0], scored))


def test_a_mixed_ensemble_decodes_each_sentence_in_a_batch_as_alone_and_scores_the_mixture():
    """Batched beam search drops finished sentences (keep_source off) and reorders within sentences (on): both
    reach each member's own state; forced scoring gives the per-step mixture's log-probability."""
    ens = mixed(5)
    src = torch.tensor([[4, 5, 6, 7], [8, 9, 0, 0], [10, 4, 11, 0], [5, 0, 0, 0]])
    lens = torch.tensor([4, 2, 3, 1])
    batched = beam_search(ens, src, lens, beam=3, nbest=3, lenpen=1.0, max_len_a=1.0, max_len_b=2)
    for i in range(4):
        alone = beam_search(ens, src[i : i + 1, : lens[i]], lens[i : i + 1], 3, 3, 1.0, 1.0, 2)
        assert alone.tokens[0] == batched.tokens[i]
        assert all(math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6) for a, b in zip(alone.scores[0], batched.scores[i]))
    seq = [4, 6, EOS]
    with torch.no_grad():
        logp = ens(src[:1], lens[:1], torch.tensor([[BOS, *seq[:-1]]])).log_softmax(-1)[0]
    assert float(sum(logp[t, y] for t, y in enumerate(seq))) == pytest.approx(
        mixture_logprob(ens.members, src[:1], seq)
    )


@pytest.mark.parametrize("copies", [1, 2], ids=["alone", "two-identical"])
def test_an_ensemble_of_one_model_or_of_identical_copies_decodes_as_the_model(copies):
    model = lstm(3)
    ens = Ensemble([model] * copies).eval()
    src, lens = torch.randint(4, 12, (6, 5)), torch.tensor([5, 5, 4, 3, 2, 1])
    for search in (
        lambda m: beam_search(m, src, lens, beam=4, nbest=4, lenpen=1.0, max_len_a=1.0, max_len_b=3),
        lambda m: greedy_or_sample(m, src, lens, max_len_a=1.0, max_len_b=3),
    ):
        alone, together = search(model), search(ens)
        assert alone.tokens == together.tokens
        for a, b in zip(alone.scores, together.scores):
            assert all(math.isclose(x, y, rel_tol=1e-5, abs_tol=1e-5) for x, y in zip(a, b))


def perturbed_copy(path, out, scale=0.05, seed=0):
    """A checkpoint with the same vocabularies and other weights: an ensemble member that is not the model."""
    payload = checkpoint.load(path)
    g = torch.Generator().manual_seed(seed)
    weights = payload["model"]
    payload["model"] = {
        k: v + scale * torch.randn(v.shape, generator=g) if v.is_floating_point() else v for k, v in weights.items()
    }
    checkpoint.save(out, {k: v for k, v in payload.items() if k != "format"})
    return out


def test_cli_and_api_decode_score_and_eval_an_ensemble(cli, trained_mt, tmp_path, monkeypatch):
    import io

    import textgen

    other = perturbed_copy(trained_mt, tmp_path / "other.pt")
    sources = ["a b c d", "h g f", "e e a b c"]
    alone, pair = textgen.load(trained_mt, "cpu"), textgen.load([trained_mt, other], "cpu")
    assert isinstance(pair.model, Ensemble) and str(other) in repr(pair)
    assert textgen.load([trained_mt, trained_mt], "cpu").translate(sources, beam=3) == alone.translate(sources, beam=3)
    hyps = pair.translate(sources, beam=3)
    src, tgt = tmp_path / "src.txt", tmp_path / "tgt.txt"
    src.write_text("\n".join(sources) + "\n")
    tgt.write_text("\n".join(hyps) + "\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(sources) + "\n"))
    decoded = cli("decode", trained_mt, other, "--beam", "3")
    assert decoded.code == 0 and decoded.out.splitlines() == hyps
    scored = cli("score", trained_mt, other, "--src", src, "--tgt", tgt)
    expected = [s.total for s in pair.score(sources, hyps)]
    assert scored.code == 0 and [float(line.split("\t")[0]) for line in scored.out.splitlines()] == pytest.approx(
        expected, abs=1e-3
    )
    assert expected != pytest.approx([s.total for s in alone.score(sources, hyps)], abs=1e-3)
    res = cli("eval", trained_mt, other, "--split", "test", "--beam", "3", "--json", "--hyp-out", f"{tmp_path}/")
    assert res.code == 0, res.err
    assert '"checkpoint": [' in res.out
    assert (tmp_path / "rev+other.test.beam3_lenpen1_len1x+2_norepeat0_fp32.hyp").is_file()


def test_an_ensemble_refuses_other_vocabularies_and_language_models(cli, trained_mt, tmp_path, tiny_recipe):
    payload = checkpoint.load(trained_mt)
    tgt = payload["vocab"]["tgt"]
    payload["vocab"] = {**payload["vocab"], "tgt": {**tgt, "symbols": tgt["symbols"][:-1] + ["zzz"]}}
    checkpoint.save(tmp_path / "alien.pt", {k: v for k, v in payload.items() if k != "format"})
    (tmp_path / "src.txt").write_text("a b c\n")
    res = cli("decode", trained_mt, tmp_path / "alien.pt", "-i", tmp_path / "src.txt")
    assert res.code == 2 and "members of an ensemble must share them" in res.err and len(res.err.splitlines()) == 1
    lm = tmp_path / "lm.pt"
    assert cli("train", "-r", tiny_recipe, "-o", lm, "--set", "train.max_steps=2").code == 0
    res = cli("score", lm, lm, "--text", tiny_recipe)
    assert res.code == 2 and "an ensemble is of seq2seq checkpoints" in res.err


def test_averaged_weights_are_the_mean_and_the_newest_metadata_is_kept(trained_mt, tmp_path):
    files = [perturbed_copy(trained_mt, tmp_path / f"checkpoint-{step}.pt", 0.5, step) for step in (10, 20, 30)]
    merged = average(checkpoint_files([tmp_path], last=2))
    weights = [checkpoint.load(f)["model"] for f in files[1:]]
    for name, value in merged["model"].items():
        if value.is_floating_point():
            assert torch.allclose(value, (weights[0][name] + weights[1][name]) / 2, atol=1e-6), name
        else:
            assert torch.equal(value, weights[1][name])
    assert merged["averaged"] == [str(f) for f in files[1:]] and "train_state" not in merged
    assert merged["vocab"] == checkpoint.load(trained_mt)["vocab"]


def test_a_run_keeps_its_last_checkpoints_and_average_writes_a_model_that_decodes(cli, reversal, tmp_path):
    import textgen

    _, recipe = reversal
    run = tmp_path / "run"
    sets = ["--set", "train.max_steps=8", "--set", "train.eval_every=2", "--set", "train.keep_checkpoints=3"]
    assert cli("train", "-r", recipe, "-o", tmp_path / "m.pt", "--run-dir", run, *sets).code == 0
    assert [p.name for p in checkpoint.kept(run)] == ["checkpoint-4.pt", "checkpoint-6.pt", "checkpoint-8.pt"]
    res = cli("average", run, "--last", "2", "-o", tmp_path / "avg.pt")
    assert res.code == 0 and "the mean of 2 checkpoints" in res.out
    assert textgen.load(tmp_path / "avg.pt", "cpu").translate(["a b c"], beam=2)
    assert checkpoint.load(tmp_path / "avg.pt")["averaged"] == [str(run / f"checkpoint-{s}.pt") for s in (6, 8)]
    res = cli("average", run / "checkpoint-8.pt", "-o", tmp_path / "one.pt")
    assert res.code == 2 and "at least 2 checkpoints" in res.err
    res = cli("average", tmp_path, "-o", tmp_path / "none.pt")
    assert res.code == 2 and "kept no checkpoints" in res.err and "train.keep_checkpoints" in res.err
