"""The public Python API (textgen.load) and `textgen score`: one path with the CLI, scores that match search."""

import json
import subprocess
import sys

import pytest
import torch

import textgen
from tests.conftest import ARCHS
from textgen.errors import UserError

# tests that take them run on the toy models (conftest.trained_mt, conftest.tiny_recipe) of each architecture
each_arch = pytest.mark.parametrize("trained_mt", list(ARCHS), indirect=True)
each_lm_arch = pytest.mark.parametrize("tiny_recipe", list(ARCHS), indirect=True)


def test_importing_textgen_does_not_import_torch():
    code = "import sys, textgen; assert callable(textgen.load); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@each_arch
def test_translate_lists_in_lists_out_and_matches_the_cli(cli, trained_mt, tmp_path):
    mt = textgen.load(trained_mt, device="cpu")
    assert mt.kind == "seq2seq"
    sources = ["a b c d", "e f", "h g h"]
    assert mt.translate(sources, beam=3)[:2] == ["d c b a", "f e"]
    (tmp_path / "src.txt").write_text("\n".join(sources) + "\n")
    assert cli("decode", trained_mt, "-i", "src.txt", "--beam", "3").out.splitlines() == mt.translate(sources, beam=3)
    nbest = mt.translate(sources, beam=4, nbest=3)
    assert [len(n) for n in nbest] == [3, 3, 3]
    assert all(isinstance(text, str) and s1 >= s2 for n in nbest for (text, s1), (_, s2) in zip(n, n[1:]))
    samples = [mt.translate(sources, sample=True, temperature=1.5, seed=s) for s in (1, 1, 2)]
    assert samples[0] == samples[1] and samples[0] != samples[2]  # repeatable with a seed, not constant
    assert mt.translate([]) == []


def test_api_errors_are_user_errors(trained_mt):
    mt = textgen.load(trained_mt, device="cpu")
    for call, fragment in [
        (lambda: mt.translate("a b"), "list of strings"),
        (lambda: mt.translate(["a"], beam=2, nbest=3), "raise the beam"),
        (lambda: mt.translate(["a"], temperature=-1), "temperature"),
        (lambda: mt.translate(["a"], beams=2), "unknown decode setting"),
        (lambda: mt.score(["a", "b"], ["a"]), "one target per source"),
        (lambda: mt.translate(["a", "b \ud800 c"]), r"sources\[1\] is not valid Unicode"),
        (lambda: mt.score(["a"], ["\udfff"]), r"targets\[0\] is not valid Unicode"),
        (lambda: mt.translate(["a", None]), r"sources\[1\] is NoneType, not a string"),
        (lambda: mt.translate(["a"], beam=3, nbest=2, lenpen=float("nan")), r"--lenpen must be a finite number"),
        (lambda: mt.translate(["a"], sample=True, temperature=float("nan")), "--temperature must be"),
        (lambda: mt.translate(["a"], sample=True, temperature=float("inf")), "--temperature must be"),
        (lambda: mt.translate(["a"], beam=True), r"--beam must be an integer >= 1 and <= \d+, got True"),
        (lambda: mt.translate(["a"], beam=2.5), "--beam must be an integer"),
        (lambda: mt.translate(["a"], beam=100_000), "--beam must be an integer"),
        (lambda: mt.translate(["a"], max_len_b=-5), "--max-len-b must be an integer >= 0"),
        (lambda: mt.translate(["a"], max_len_a=0, max_len_b=0), "every output would be empty"),
        (lambda: mt.translate(["a"], sample=True, seed=2**70), "--seed must be an integer >= 0"),
        (lambda: mt.translate(["a"], batch_size=0), "--batch-size must be an integer >= 1"),
        (lambda: mt.score(["a"], ["a"], batch_size=0), "--batch-size must be an integer >= 1"),
        (lambda: mt.translate(["a"], sample="yes"), "sample must be True or False"),
    ]:
        with pytest.raises(UserError, match=fragment):
            call()
    with pytest.raises(UserError, match="does not exist"):
        textgen.load("absent.pt")


@each_arch
def test_forced_decoding_equals_the_beam_search_score_of_its_own_hypotheses(trained_mt):
    """With lenpen 0 a beam hypothesis' score is its summed log-probability: scoring it must give the same."""
    mt = textgen.load(trained_mt, device="cpu")
    sources = ["a b c d", "e f g", "h h a b c d"]
    nbest = mt.translate(sources, beam=4, nbest=4, lenpen=0.0)
    for source, hyps in zip(sources, nbest):
        scored = mt.score([source] * len(hyps), [text for text, _ in hyps])
        for (text, beam_score), item in zip(hyps, scored):
            assert item.total == pytest.approx(beam_score, abs=1e-4), text
            assert len(item.tokens) == len(text.split()) + 1 and item.tokens[-1] == "</s>"
            assert item.mean == pytest.approx(item.total / len(item.tokens))


@each_lm_arch
def test_lm_sample_and_score(cli, tiny_recipe, tmp_path):
    assert cli("train", "-r", tiny_recipe, "-o", "lm.pt", "--run-dir", "run").code == 0
    lm = textgen.load(tmp_path / "lm.pt", device="cpu")
    assert lm.kind == "lm"
    text = lm.sample("the ", length=30, temperature=0.8, seed=3)
    assert text.startswith("the ") and len(text) == 34 and text == lm.sample("the ", 30, 0.8, seed=3)
    assert (
        cli("sample", "lm.pt", "--prime", "the ", "--length", "30", "--temperature", "0.8", "--seed", "3").out
        == text + "\n"
    )
    line = "the cat sat on the mat."
    (scored,) = lm.score([line])
    model, vocab = lm.model, lm.vocab  # the same log-probs, one step at a time from the start context
    state, prev, total = model.init_state(1), vocab.start_ids(), 0.0
    for token in vocab.encode(line):
        with torch.no_grad():
            logits, state = model(torch.tensor([prev[-1:]]), state)
        total += float(logits[0, -1].log_softmax(-1)[token])
        prev = [token]
    assert scored.total == pytest.approx(total, abs=1e-4) and len(scored.logprobs) == len(line)
    assert lm.score(["the cat sat on the mat."])[0].total > lm.score(["tac eht mat eht no tas"])[0].total
    texts = [line, "t", "the dog sat on the log.\nthe cat", "sat on", line * 3]  # lengths 1 to 69, out of order
    batched, alone = lm.score(texts, batch_size=3, max_tokens=80), [lm.score([t])[0] for t in texts]
    for b, a in zip(batched, alone):  # padded batches of similar lengths score each text as it alone scores
        assert b.tokens == a.tokens and b.logprobs == pytest.approx(a.logprobs, abs=1e-5)


@pytest.mark.parametrize("trained_mt, tiny_recipe", [(a, a) for a in ARCHS], indirect=True)
def test_score_command_for_both_kinds(cli, trained_mt, tiny_recipe, tmp_path):
    (tmp_path / "s.txt").write_text("a b c\ne f\n")
    (tmp_path / "t.txt").write_text("c b a\nf e\n")
    out = cli("score", trained_mt, "--src", "s.txt", "--tgt", "t.txt")
    assert out.code == 0, out.err
    rows = [line.split("\t") for line in out.out.splitlines()]
    assert len(rows) == 2 and [int(r[1]) for r in rows] == [4, 3]
    mt = textgen.load(trained_mt, device="cpu")
    assert float(rows[0][0]) == pytest.approx(mt.score(["a b c"], ["c b a"])[0].total, abs=1e-4)
    as_json = [
        json.loads(line)
        for line in cli("score", trained_mt, "--src", "s.txt", "--tgt", "t.txt", "--json").out.splitlines()
    ]
    assert [d["tokens"] for d in as_json] == [4, 3] and as_json[1]["per_token"][0]["token"] == "f"
    bad = cli("score", trained_mt, "--text", "s.txt")
    assert bad.code == 2 and "--src FILE --tgt FILE" in bad.err
    assert cli("train", "-r", tiny_recipe, "-o", "lm.pt", "--run-dir", "run").code == 0
    (tmp_path / "lines.txt").write_text("the cat\nthe dog sat\n")
    lm_out = cli("score", "lm.pt", "--text", "lines.txt")
    assert lm_out.code == 0 and [int(r.split("\t")[1]) for r in lm_out.out.splitlines()] == [7, 11]


@each_arch
def test_a_sampled_output_depends_on_its_source_and_seed_alone(cli, trained_mt, tmp_path):
    """Seeded sampling gives a source the same output alone, beside other sources, and at any batch size."""
    mt = textgen.load(trained_mt, device="cpu")
    sources = ["a b c d", "e f", "h g h a b", "c c d e f g", "b a"]
    settings = dict(sample=True, temperature=3.0, seed=11)
    together = mt.translate(sources, **settings)
    assert together == [mt.translate([s], **settings)[0] for s in sources]
    for batch_size in (1, 2, 4):
        assert mt.translate(sources, batch_size=batch_size, **settings) == together
    assert mt.translate(sources[::-1], **settings) == together[::-1]
    (tmp_path / "src.txt").write_text("\n".join(sources) + "\n")
    flags = ("decode", trained_mt, "-i", "src.txt", "--sample", "--temperature", "3", "--seed", "11")
    assert (
        cli(*flags, "--batch-size", "1").out.splitlines()
        == together
        == cli(*flags, "--batch-size", "4").out.splitlines()
    )
    assert together != mt.translate(sources, sample=True, temperature=3.0, seed=12)  # the seed still matters
    copies = mt.translate([sources[3]] * 8, **settings)  # duplicating a source is how users ask for more samples
    assert copies[0] == together[3] and len(set(copies)) > 1


def test_models_describe_themselves_and_refuse_the_other_kinds_methods(cli, trained_mt, tiny_recipe, tmp_path):
    mt = textgen.load(trained_mt, device="cpu")
    shown = repr(mt)
    assert shown.startswith("Translator(") and str(trained_mt) in shown and "device=cpu" in shown
    assert f"vocab={len(mt.vocabs.src)}/{len(mt.vocabs.tgt)}" in shown and "task=seq2seq" in shown
    assert cli("train", "-r", tiny_recipe, "-o", "lm.pt", "--run-dir", "run").code == 0
    lm = textgen.load(tmp_path / "lm.pt", device="cpu")
    assert repr(lm) == f"LanguageModel('{tmp_path / 'lm.pt'}', task=lm, level=char, vocab={len(lm.vocab)}, device=cpu)"
    with pytest.raises(UserError, match="is a language model: it has sample"):
        lm.translate(["the"])
    assert not hasattr(lm, "translate") and not hasattr(mt, "stream")  # still AttributeErrors for hasattr
    with pytest.raises(UserError, match="is a seq2seq model: it has translate"):
        mt.sample("the")
    for call, fragment in [
        (lambda: lm.sample("the", temperature=float("nan")), "--temperature must be a finite number"),
        (lambda: lm.sample("the", seed=2**70), "--seed must be an integer"),
        (lambda: lm.sample("the", length=True), "--length must be an integer"),
        (lambda: lm.sample("the", top_k=-1), "--top-k must be an integer >= 0"),
        (lambda: lm.sample("\ud800"), "the prime is not valid Unicode"),
        (lambda: lm.score(["the", "\ud800"]), r"texts\[1\] is not valid Unicode"),
    ]:
        with pytest.raises(UserError, match=fragment):
            call()
