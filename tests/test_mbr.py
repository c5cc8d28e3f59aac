"""MBR decoding: the epsilon transform, keyed sampling, mbr_select on hand-made candidate sets, batched MBR
against one source at a time, and `decode --mbr` / `eval --mbr` through the CLI."""

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

import textgen
from tests.test_cli_errors import assert_clean_error
from textgen.decode.mbr import UTILITIES, mbr_decode, mbr_select
from textgen.decode.sampling import epsilon_filter, keyed_uniforms, next_token, row_keys
from textgen.decode.search import greedy_or_sample
from textgen.metrics import sentence_bleu, sentence_chrf


def with_mbr(cfg, **mbr):
    """A DecodeConfig with these [decode.mbr] settings."""
    return dataclasses.replace(cfg, mbr=dataclasses.replace(cfg.mbr, **mbr))


def test_epsilon_filter_zeroes_exactly_the_tokens_below_epsilon_and_renormalises():
    probs = torch.tensor([[0.50, 0.30, 0.15, 0.04, 0.01], [0.02, 0.05, 0.03, 0.60, 0.30]])
    kept = epsilon_filter(probs.log(), 0.05).softmax(-1)
    below = probs < 0.05
    assert torch.equal(kept == 0, below)  # exactly the tokens below epsilon are gone
    expected = probs.masked_fill(below, 0.0)
    assert torch.allclose(kept, expected / expected.sum(-1, keepdim=True), atol=1e-6)  # the rest, renormalised
    assert torch.allclose(kept.sum(-1), torch.ones(2))
    flat = torch.tensor([[0.26, 0.25, 0.25, 0.24]])  # every token below epsilon: the most likely one survives
    assert (epsilon_filter(flat.log(), 0.5).softmax(-1) > 0).tolist() == [[True, False, False, False]]
    logits = torch.randn(3, 7)
    assert epsilon_filter(logits, 0.0) is logits  # epsilon 0: no transform
    g = torch.Generator().manual_seed(0)
    for _ in range(200):  # sampling never draws a dropped token
        tok = next_token(probs.log(), epsilon=0.05, generator=g)
        assert not below.gather(1, tok[:, None]).any()


def test_keyed_uniforms_are_splitmix64_and_independent_of_the_other_rows():
    mask = (1 << 64) - 1

    def splitmix64(state: int, steps: int) -> list[float]:  # the reference generator, in Python integers
        out = []
        for _ in range(steps):
            state = (state + 0x9E3779B97F4A7C15) & mask
            z = state
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
            out.append(((z ^ (z >> 31)) >> 11) / 2**53)
        return out

    keys = row_keys(7, 5)
    for row, key in enumerate(keys.tolist()):
        assert [float(keyed_uniforms(keys, t)[row]) for t in range(4)] == splitmix64(key & mask, 4)
        assert float(keyed_uniforms(keys[row : row + 1], 3)[0]) == float(keyed_uniforms(keys, 3)[row])
    assert torch.equal(row_keys(7, 3), keys[:3]) and not torch.equal(row_keys(8, 3), keys[:3])
    u = torch.stack([keyed_uniforms(keys, t) for t in range(2000)])
    assert 0 <= float(u.min()) and float(u.max()) < 1 and abs(float(u.mean()) - 0.5) < 0.02


CONSENSUS = [
    "a man rides a red bike down the hill",
    "a man rides a red bike down a hill",
    "a man is riding a red bike down the hill",
    "two cats sleep on the sofa",
]


def naive_expected(candidates, utility):
    """The definition, with no deduplication: mean utility against every other candidate."""
    n = len(candidates)
    return [sum(utility(h, r) for j, r in enumerate(candidates) if j != i) / (n - 1) for i, h in enumerate(candidates)]


@pytest.mark.parametrize("name", ["bleu", "chrf", "rouge2"])
def test_mbr_select_picks_the_consensus_and_matches_the_definition(name):
    utility = UTILITIES[name]
    index, expected = mbr_select(CONSENSUS, utility)
    naive = naive_expected(CONSENSUS, utility)
    assert expected == pytest.approx(naive, abs=1e-12)
    assert index == max(range(4), key=lambda i: naive[i]) and index != 3  # the outlier never wins
    assert expected[3] == min(expected)


def test_mbr_select_counts_duplicates_and_scores_each_distinct_string_once():
    calls = []

    def exact(h, r):
        calls.append((h, r))
        return float(h == r)

    candidates = ["b", "a", "c", "a", "b", "a"]
    index, expected = mbr_select(candidates, exact)
    assert expected == pytest.approx([1 / 5, 2 / 5, 0.0, 2 / 5, 1 / 5, 2 / 5])  # (copies - 1) / (N - 1)
    assert index == 1  # exact match: MBR is the mode (its first occurrence)
    assert len(calls) == 3 * 2 + 2  # m(m - 1) pairs of distinct strings + a self-utility for "a" and "b"
    assert len(set(calls)) == len(calls)


def test_the_most_frequent_candidate_is_not_always_the_bleu_mbr_choice():
    candidates = [
        "a man rides a red bike down the hill",
        "a man rides a red bike down a hill",
        "a man rides the red bike down the hill",
        "a man rides a red bike on the hill",
        "two cats sleep",
        "two cats sleep",
    ]
    index, expected = mbr_select(candidates, sentence_bleu)
    mode = candidates.index("two cats sleep")
    assert index < 4 and expected[index] > expected[mode]  # four near-paraphrases outvote one string drawn twice
    assert expected == pytest.approx(naive_expected(candidates, sentence_bleu), abs=1e-12)


def test_one_candidate_is_returned_as_it_is_without_a_utility_call():
    def never(h, r):
        raise AssertionError("N = 1 needs no utility")

    index, expected = mbr_select(["the only sample"], never)
    assert index == 0 and len(expected) == 1 and math.isnan(expected[0])
    with pytest.raises(ValueError):
        mbr_select([], never)


def test_searched_hypotheses_are_scored_against_every_draw_and_can_win():
    def overlap(h, r):  # a hand-checkable utility: shared words over the hypothesis's words
        return len(set(h.split()) & set(r.split())) / len(h.split())

    draws = ["a b c", "a b d", "a b e", "x y z"]
    index, expected = mbr_select(draws, overlap, ["a b", "x y z"])
    assert expected[:4] == pytest.approx(naive_expected(draws, overlap))  # draws: as without searched ones
    assert expected[4] == pytest.approx(1.0 * 3 / 4) and expected[5] == pytest.approx(1 / 4)  # against all 4 draws
    assert index == 4  # "a b" is in three of four draws: more expected overlap than any draw has
    assert mbr_select(draws, overlap, []) == mbr_select(draws, overlap)  # nothing searched: unchanged
    one, values = mbr_select(["a b c"], overlap, ["a b c d"])  # one draw: it has no references, the searched one has
    assert one == 1 and math.isnan(values[0]) and values[1] == pytest.approx(3 / 4)


def test_mbr_beam_adds_the_beam_outputs_to_the_candidates(trained_mt):
    mt = textgen.load(trained_mt, device="cpu")
    sources = ["a b c d", "e f", "h g h"]
    beam = mt.translate(sources, beam=3, nbest=3)
    cfg = with_mbr(mt.recipe.decode, samples=4, seed=1, beam=3)
    chosen = mbr_decode(mt.model, mt.vocabs.tgt.decode, mt.encode(sources), cfg)
    for c, nbest in zip(chosen, beam):
        assert c.candidates[4:] == [text for text, _ in nbest if text not in c.candidates[:4]]
        assert len(c.expected) == len(c.candidates)
        assert c.text == c.candidates[c.index] and c.expected[c.index] == max(c.expected)
    assert mt.translate(sources, mbr=4, mbr_beam=3, seed=1) == [c.text for c in chosen]


def test_chrf_utility_is_sacrebleu_chrf():
    from sacrebleu.metrics import CHRF

    h, r = "A man rides a bike.", "A man is riding a bicycle."
    assert sentence_chrf(h, r) == pytest.approx(CHRF().sentence_score(h, [r]).score / 100)
    assert sentence_chrf("", r) == 0.0


def test_several_samples_per_source_share_one_encoding(trained_mt):
    from textgen.data.seqbatch import collate

    mt = textgen.load(trained_mt, device="cpu")
    b = collate(mt.encode(["a b c d", "e f"]), None, [0, 1])
    src, lens = b.src, b.src_lens
    greedy = greedy_or_sample(mt.model, src, lens, 1.0, 2)
    repeated = greedy_or_sample(mt.model, src, lens, 1.0, 2, num_samples=3)
    assert [len(t) for t in repeated.tokens] == [3, 3]
    assert all(row == [g[0]] * 3 for row, g in zip(repeated.tokens, greedy.tokens))  # temperature 0: greedy, 3 times
    keys = row_keys(1, 4)
    both = greedy_or_sample(mt.model, src, lens, 1.0, 2, temperature=1.5, keys=keys, num_samples=4)
    alone = greedy_or_sample(mt.model, src[1:, :2], lens[1:], 1.0, 2, temperature=1.5, keys=keys, num_samples=4)
    assert both.tokens[1] == alone.tokens[0] and both.scores[1] == pytest.approx(alone.scores[0], abs=1e-5)


def test_batched_mbr_equals_each_source_alone_and_is_repeatable(trained_mt):
    mt = textgen.load(trained_mt, device="cpu")
    sources = ["a b c d", "e f", "h g h a b", "a b c d", "c c d e f g"]
    settings = dict(mbr=6, mbr_sampling="ancestral", temperature=1.5, seed=3)
    batched = mt.translate(sources, **settings)
    assert len(batched) == len(sources) and batched[0] == batched[3]
    assert batched == [mt.translate([s], **settings)[0] for s in sources]
    assert batched == mt.translate(sources, batch_size=2, **settings)  # batching does not change any draw
    assert batched[:2] == ["d c b a", "f e"]  # the toy model reverses: the consensus of its samples too

    def candidates(seed):
        cfg = with_mbr(mt.recipe.decode, samples=6, sampling="ancestral", utility="bleu", seed=seed)
        out = mbr_decode(mt.model, mt.vocabs.tgt.decode, mt.encode(sources), dataclasses.replace(cfg, temperature=1.5))
        for choice in out:
            assert choice.text == choice.candidates[choice.index] and len(choice.candidates) == 6
            assert choice.expected[choice.index] == max(choice.expected)
        return [c.candidates for c in out]

    assert candidates(3) == candidates(3) and candidates(3) != candidates(4)
    for sampling in ("epsilon", "top_p"):
        assert mt.translate(sources, mbr=4, mbr_sampling=sampling, mbr_utility="chrf", seed=1) == mt.translate(
            sources, mbr=4, mbr_sampling=sampling, mbr_utility="chrf", seed=1
        )
    single = mbr_decode(
        mt.model, mt.vocabs.tgt.decode, mt.encode(sources), with_mbr(mt.recipe.decode, samples=1, seed=5)
    )
    assert all(c.candidates == [c.text] for c in single)  # N = 1: the one epsilon sample


def test_mbr_api_errors(trained_mt):
    from textgen.errors import UserError

    mt = textgen.load(trained_mt, device="cpu")
    for settings, fragment in [
        (dict(mbr=0), "--mbr must be an integer >= 1"),
        (dict(mbr=True), "--mbr must be an integer >= 1"),
        (dict(mbr=4, mbr_top_p=float("nan")), "--mbr-top-p must be a finite number > 0"),
        (dict(mbr=4, mbr_utility="meteor"), "--mbr-utility"),
        (dict(mbr=4, mbr_sampling="beam"), "--mbr-sampling"),
        (dict(mbr=4, mbr_epsilon=1.0), "--mbr-epsilon"),
        (dict(mbr=4, beam=3), "leave out --beam"),
        (dict(mbr=4, sample=True), "leave out --beam, --sample"),
        (dict(mbr=4, nbest=2), "and --nbest"),
        (dict(mbr=4, temperature=0), "> 0"),
        (dict(mbr_beam=2), "give --mbr N too"),
        (dict(mbr=4, mbr_beam=-1), "--mbr-beam must be an integer >= 0"),
    ]:
        with pytest.raises(UserError, match=fragment):
            mt.translate(["a b"], **settings)


def test_decode_and_eval_with_mbr_through_the_cli(cli, trained_mt, tmp_path):
    (tmp_path / "src.txt").write_text("a b c d\ne f\nh g h\n")
    out = cli("decode", trained_mt, "-i", "src.txt", "--mbr", "4", "--seed", "1")
    assert out.code == 0, out.err
    assert len(out.out.splitlines()) == 3 and out.out.splitlines()[:2] == ["d c b a", "f e"]
    assert out.out == cli("decode", trained_mt, "-i", "src.txt", "--mbr", "4", "--seed", "1").out
    result = cli(
        "eval",
        trained_mt,
        "--split",
        "test",
        "--mbr",
        "4",
        "--mbr-utility",
        "chrf",
        "--metric",
        "bleu4",
        "--json",
        "--results",
        "r.json",
        "--hyp-out",
        "mbr.txt",
    )
    assert result.code == 0, result.err
    metrics = json.loads(result.out)["metrics"]
    assert metrics["mbr"] == 4 and metrics["mbr_utility"] == "chrf" and metrics["mbr_sampling"] == "epsilon"
    assert metrics["sentences"] == 40 and metrics["bleu4"] > 50 and "beam" not in metrics
    assert json.loads((tmp_path / "r.json").read_text())["metrics"] == metrics
    assert len((tmp_path / "mbr.txt").read_text().splitlines()) == 40


def test_eval_with_mbr_beam_counts_the_draws_and_reports_the_beams_share(cli, trained_mt, tmp_path):
    def metrics(*extra):
        result = cli("eval", trained_mt, "--split", "test", "--mbr", "4", "--seed", "1", "--json", *extra)
        assert result.code == 0, result.err
        return json.loads(result.out)["metrics"]

    drawn, mixed = metrics("--hyp-out", "drawn.txt"), metrics("--mbr-beam", "3", "--hyp-out", "hyps/")
    assert mixed["mbr_beam"] == 3 and 0.0 <= mixed["mbr_chose_searched"] <= 1.0 and "mbr_beam" not in drawn
    assert mixed["mbr_distinct_candidates"] == drawn["mbr_distinct_candidates"]  # the same draws; beam not counted
    (written,) = (tmp_path / "hyps").iterdir()  # a name of its own: the draws' settings and the beam's
    assert written.name.startswith(f"{Path(trained_mt).stem}.test.mbr4_epsilon0.02_bleu_t1_seed1_beam3_lenpen1_")
    lm_error = cli("eval", trained_mt, "--split", "test", "--mbr-beam", "3")
    assert lm_error.code == 2 and "give --mbr N too" in lm_error.err


def test_mbr_cli_errors_are_one_line(cli, trained_mt, tmp_path):
    (tmp_path / "src.txt").write_text("a b\n")
    assert_clean_error(cli("decode", trained_mt, "-i", "src.txt", "--mbr", "0"), "--mbr must be an integer >= 1")
    assert_clean_error(
        cli("decode", trained_mt, "-i", "src.txt", "--mbr", "4", "--mbr-utility", "meteor"),
        "unknown --mbr-utility 'meteor'",
    )
    assert_clean_error(cli("eval", trained_mt, "--split", "test", "--mbr", "4", "--beam", "2"), "leave out --beam")
