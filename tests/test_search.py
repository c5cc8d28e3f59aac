"""Decoding: beam search against brute force, beam 1 against greedy, batching and padding invariance, on toy step
models, the recurrent encoder-decoder and the Transformer (its key/value cache reordered by search)."""

import itertools
import math

import pytest
import torch

from tests.conftest import tiny_transformer
from textgen.config import ModelConfig
from textgen.data.seqbatch import collate
from textgen.data.seqvocab import BOS, EOS, PAD, UNK
from textgen.decode.search import _block_repeated_ngrams, beam_search, greedy_or_sample
from textgen.models.seq2seq import Seq2Seq

V = 6  # PAD, UNK, BOS, EOS + two real tokens; UNK and the real tokens may be emitted


class ToyRNN:
    """A tiny random autoregressive model speaking the step protocol; logits depend on the whole prefix."""

    def __init__(self, seed=0, hidden=5):
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(hidden, hidden, generator=g)
        self.E = torch.randn(V, hidden, generator=g) * 2
        self.U = torch.randn(hidden, V, generator=g) * 2
        self.S = torch.randn(16, hidden, generator=g)

    def encode(self, src, src_lens):
        return self.S[src].sum(1) / src_lens.unsqueeze(1)  # (B, H)

    def step(self, prev, h):
        h = torch.tanh(h @ self.W + self.E[prev])
        return h @ self.U, h

    @staticmethod
    def reorder_state(h, index, keep_source=False):
        return h.index_select(0, index)


def toy_transformer(seed=0):
    """A tiny Transformer (16 source tokens, V target tokens): ToyRNN's search space, searched through its cache."""
    return tiny_transformer("seq2seq", 16, V, seed=seed)


STEP_MODELS = pytest.mark.parametrize("make", [ToyRNN, toy_transformer], ids=["toy-rnn", "transformer"])


@torch.no_grad()
def sequence_logprob(model, src, seq):
    h = model.encode(src, torch.tensor([src.size(1)]))
    prev, total = torch.tensor([BOS]), 0.0
    for tok in seq:
        logits, h = model.step(prev, h)
        total += float(logits.log_softmax(-1)[0, tok])  # the model's own log-prob, as search scores it
        prev = torch.tensor([tok])
    return total


@STEP_MODELS
def test_wide_beam_finds_the_brute_force_optimum_and_sorted_nbest(make):
    real = [1, 4, 5]  # UNK and two words
    for seed in range(5):
        model = make(seed)
        src = torch.tensor([[seed + 1, seed + 2]])
        candidates = [list(p) + [EOS] for n in range(4) for p in itertools.product(real, repeat=n)]
        scored = sorted(((sequence_logprob(model, src, c), c) for c in candidates), reverse=True)
        hyps = beam_search(
            model, src, torch.tensor([2]), beam=len(candidates) + 1, nbest=99, lenpen=0.0, max_len_a=0.0, max_len_b=4
        )
        assert hyps.tokens[0][0] == scored[0][1][:-1]
        assert math.isclose(hyps.scores[0][0], scored[0][0], rel_tol=1e-5)
        assert [t for t in hyps.tokens[0][:5]] == [c[:-1] for _, c in scored[:5]]
        assert hyps.scores[0] == sorted(hyps.scores[0], reverse=True)
        nbest = dict(zip(map(tuple, hyps.tokens[0]), hyps.scores[0]))  # wider than the space: all of it, scored
        assert len(nbest) == len(candidates) and all(
            math.isclose(nbest[tuple(c[:-1])], score, rel_tol=1e-5) for score, c in scored
        )


@STEP_MODELS
def test_beam_one_equals_greedy(make):
    model = make(3)
    src = torch.randint(3, 16, (7, 4))
    lens = torch.full((7,), 4)
    greedy = greedy_or_sample(model, src, lens, max_len_a=1.0, max_len_b=3)
    beam = beam_search(model, src, lens, beam=1, lenpen=0.0, max_len_a=1.0, max_len_b=3)
    assert [g[0] for g in greedy.tokens] == [b[0] for b in beam.tokens]
    for g, b in zip(greedy.scores, beam.scores):
        assert math.isclose(g[0], b[0], rel_tol=1e-5, abs_tol=1e-6)


def tiny_seq2seq(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = ModelConfig(**{"layers": 2, "hidden": 16, "embed": 8, "attention": "general", **kw})
    return Seq2Seq(12, 9, cfg).eval()


def random_sources(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(4, 12, (int(torch.randint(1, 9, (1,), generator=g)),), generator=g).tolist() for _ in range(n)
    ]


def test_batched_beam_equals_one_sentence_at_a_time():
    kinds = ({}, {"attention": "bahdanau", "input_feeding": True}, {"attention": "dot"})
    for model in [tiny_seq2seq(**kw) for kw in kinds] + [tiny_transformer("seq2seq", 12, 9)]:
        sources = random_sources(6)
        b = collate(sources, None, list(range(6)))
        batched = beam_search(model, b.src, b.src_lens, beam=4, nbest=3, max_len_b=6)
        for i, s in enumerate(sources):
            one = collate([s], None, [0])
            alone = beam_search(model, one.src, one.src_lens, beam=4, nbest=3, max_len_b=6)
            assert alone.tokens[0] == batched.tokens[i]
            torch.testing.assert_close(torch.tensor(alone.scores[0]), torch.tensor(batched.scores[i]))


def test_padding_does_not_change_encoding_or_decoding():
    model = tiny_seq2seq(1, input_feeding=True)
    short, longer = [5, 6, 7], [4, 5, 6, 7, 8, 9, 10, 11]
    alone = collate([short], None, [0])
    mixed = collate([longer, short, longer[:5]], None, [0, 1, 2])
    s1 = model.encode(alone.src, alone.src_lens)
    s2 = model.encode(mixed.src, mixed.src_lens)
    torch.testing.assert_close(s1.memory[0], s2.memory[1, :3])
    torch.testing.assert_close(s1.h[:, 0], s2.h[:, 1])
    g1 = greedy_or_sample(model, alone.src, alone.src_lens, max_len_b=8)
    g2 = greedy_or_sample(model, mixed.src, mixed.src_lens, max_len_b=8)
    assert g1.tokens[0] == g2.tokens[1]


def test_teacher_forced_fast_path_matches_stepwise():
    model = tiny_seq2seq(2)
    b = collate(random_sources(3, 1), [[4, 5, 6], [7, 8], [4]], [0, 1, 2])
    fused = model(b.src, b.src_lens, b.tgt_in)
    state = model.encode(b.src, b.src_lens)
    steps = []
    for t in range(b.tgt_in.size(1)):
        logits, state = model.step(b.tgt_in[:, t], state)
        steps.append(logits)
    torch.testing.assert_close(fused, torch.stack(steps, 1), rtol=1e-5, atol=1e-5)


def test_no_repeat_ngram_blocks_only_repeats():
    hist = torch.tensor([[4, 5, 4]])
    logp = torch.zeros(1, 8)
    blocked = _block_repeated_ngrams(logp, hist, 2)  # "4 5" seen: after a 4, 5 is banned
    assert torch.isinf(blocked[0, 5]) or blocked[0, 5] < -1e30
    assert (blocked[0, [0, 1, 2, 3, 4, 6, 7]] == 0).all()
    model = tiny_seq2seq(3)
    b = collate(random_sources(4, 2), None, list(range(4)))
    for hyp in beam_search(model, b.src, b.src_lens, beam=3, max_len_b=12, no_repeat_ngram=2).tokens:
        bigrams = list(zip(hyp[0], hyp[0][1:]))
        assert len(bigrams) == len(set(bigrams))


def _distinct(values, count, what):
    """The first `count` of the sorted `values` must be told apart from each other and from the next one
    by more than float round-off, so that the library and the reference cannot rank them differently."""
    head = values[: count + 1]
    gaps = [a - b for a, b in zip(head, head[1:])]
    assert all(g > 1e-4 for g in gaps), f"near-tie among the {what}: {head}; pick another seed"


def reference_beam_search(model, h, limit, K, lenpen, stats):
    """beam_search's rules for one sentence, spelled out on Python lists (an independent brute-force beam).

    Per step t (a hypothesis then has t+1 tokens, counting a final EOS): every live hypothesis is extended
    by every allowed token (never PAD/BOS; only EOS at the length limit), scored by its summed
    log-probability; the best 2K candidates are kept in rank order. EOS candidates among the first K ranks
    finish, normalised as sum log p / (t+1)**lenpen, and the K best finished ones are kept. The sentence
    is done once it has K finished hypotheses or reaches its limit; otherwise the live hypotheses are the
    best K non-EOS candidates. Returns [(normalised score, tokens without EOS)], best first."""
    live = [(0.0, [], h)]  # (sum log p, tokens, model state after the tokens)
    finished = []  # (normalised score, tokens including EOS)
    for t in range(limit):
        at_limit = t + 1 >= limit
        cands = []
        for score, toks, state in live:
            logits, nxt = model.step(torch.tensor([toks[-1] if toks else BOS]), state)
            logp = logits.float().log_softmax(-1)[0].tolist()
            for v in range(V):
                if v in (PAD, BOS) or (at_limit and v != EOS):
                    continue
                cands.append((score + logp[v], toks + [v], nxt))
        cands.sort(key=lambda c: -c[0])
        _distinct([c[0] for c in cands], 2 * K, "candidates")
        top = cands[: 2 * K]
        finished += [(s / (t + 1) ** lenpen, toks) for s, toks, _ in top[:K] if toks[-1] == EOS]
        finished.sort(key=lambda f: -f[0])
        _distinct([f[0] for f in finished], K, "finished hypotheses")
        finished = finished[:K]
        stats["eos_ranked_out"] += any(toks[-1] == EOS for _, toks, _ in top[K:])  # kept out of `finished`
        if len(finished) >= K or at_limit:
            stats["early"] += not at_limit
            break
        live = [c for c in top if c[1][-1] != EOS][:K]
    return [(s, toks[:-1]) for s, toks in finished]


def exhaustive_best(model, h, limit, lenpen):
    """The best complete hypothesis over the whole space (every sequence of real tokens then EOS, at most
    `limit` tokens with the EOS), under the same length-normalised score."""
    best = (-math.inf, None)
    stack = [(0.0, [], h)]
    while stack:
        score, toks, state = stack.pop()
        logits, nxt = model.step(torch.tensor([toks[-1] if toks else BOS]), state)
        logp = logits.float().log_softmax(-1)[0].tolist()
        best = max(best, ((score + logp[EOS]) / (len(toks) + 1) ** lenpen, toks), key=lambda b: b[0])
        if len(toks) + 2 <= limit:
            stack += [(score + logp[v], toks + [v], nxt) for v in range(V) if v not in (PAD, BOS, EOS)]
    return best


class GardenPath:
    """A hand-written step model over 4 emittable tokens (UNK, EOS, 4, 5) whose next-token distribution
    depends on the prefix's first and last tokens. Its best hypothesis starts with UNK, only the third
    most likely first token: UNK is nearly always followed by EOS, while 4 and 5 lead on to long,
    uncertain continuations. A beam of 2 prunes UNK at the first step and cannot find it."""

    START = {UNK: 0.2, EOS: 0.1, 4: 0.4, 5: 0.3}
    AFTER_UNK_FIRST = {UNK: 0.02, EOS: 0.95, 4: 0.02, 5: 0.01}
    AFTER_LAST = {
        4: {UNK: 0.1, EOS: 0.2, 4: 0.3, 5: 0.4},
        5: {UNK: 0.2, EOS: 0.45, 4: 0.25, 5: 0.1},
        UNK: {UNK: 0.3, EOS: 0.3, 4: 0.2, 5: 0.2},
    }

    def encode(self, src, src_lens):
        return torch.full((src.size(0),), BOS)  # the state is the prefix's first token (BOS before it)

    def probs(self, first, last):
        if last == BOS:
            return self.START
        if first == UNK:
            return self.AFTER_UNK_FIRST
        return self.AFTER_LAST.get(last, self.START)  # total, so a search that feeds EOS on still gets an answer

    def step(self, prev, first):
        first = torch.where(first == BOS, prev, first)  # prev is the first token at step 1
        p = torch.zeros(prev.size(0), V)
        for row, (f, last) in enumerate(zip(first.tolist(), prev.tolist())):
            for tok, q in self.probs(f, last).items():
                p[row, tok] = q
        return p.log(), first  # PAD and BOS get -inf logits

    @staticmethod
    def reorder_state(first, index, keep_source=False):
        return first.index_select(0, index)


def test_narrow_beam_with_length_penalty_equals_a_reference_beam_search():
    """A beam far narrower than the hypothesis space (4 emittable tokens, up to 6 steps), lenpen != 0, and
    a batch whose sentences have different length limits (2..6), so pruning, the 2K candidates with EOS only
    finishing among the first K ranks, early stopping at K finished hypotheses, the per-sentence length
    limit and the length penalty all decide the answer. The n-best lists (tokens, scores, order) must match
    the reference rule for rule; scores to float round-off (the batch runs the model on other row groupings)."""
    src = torch.tensor([[4, 0, 0, 0, 0], [5, 6, 0, 0, 0], [7, 8, 9, 0, 0], [10, 11, 12, 13, 0], [14, 15, 4, 5, 6]])
    lens = torch.tensor([1, 2, 3, 4, 5])
    limits = [1 * n + 1 for n in lens.tolist()]  # max_len_a=1, max_len_b=1: 2..6 tokens with the EOS
    stats = {"early": 0, "eos_ranked_out": 0}
    missed, answers = {}, {}
    for name, model in [("garden", GardenPath())] + [(f"toy{seed}", ToyRNN(seed)) for seed in range(3)]:
        for K, lenpen in ((2, 1.0), (2, 0.6), (3, 1.0), (3, 0.6)):
            hyps = beam_search(model, src, lens, beam=K, nbest=K, lenpen=lenpen, max_len_a=1.0, max_len_b=1)
            h = model.encode(src, lens)
            for b, limit in enumerate(limits):
                ref = reference_beam_search(model, h[b : b + 1], limit, K, lenpen, stats)
                assert hyps.tokens[b] == [toks for _, toks in ref], (name, K, lenpen, b)
                torch.testing.assert_close(
                    torch.tensor(hyps.scores[b]), torch.tensor([s for s, _ in ref]), rtol=1e-5, atol=1e-5
                )
                best_score, best_toks = exhaustive_best(model, h[b : b + 1], limit, lenpen)
                assert hyps.scores[b][0] <= best_score + 1e-5  # a beam can only miss the optimum, never beat it
                missed[name, K, lenpen, b] = hyps.tokens[b][0] != best_toks
                answers[name, K, lenpen, b] = hyps.tokens[b]
    # the garden path: beam 2 prunes the UNK start, beam 3 keeps it and finds the exhaustive best
    assert all(missed["garden", 2, lp, b] for lp in (1.0, 0.6) for b in range(len(limits)))
    assert not any(missed["garden", 3, lp, b] for lp in (1.0, 0.6) for b in range(len(limits)))
    assert answers["garden", 3, 1.0, 0][0] == [UNK]
    # the configurations exercise what the wide beam of the brute-force test never meets
    assert stats["early"] > 0, "no sentence stopped early at K finished hypotheses"
    assert stats["eos_ranked_out"] > 0, "no EOS candidate ranked below K among the 2K: that rule is untested"
    assert any(answers[key] != answers[key[0], key[1], 0.6, key[3]] for key in answers if key[2] == 1.0), (
        "the length penalty never changed an n-best list"
    )


def test_greedy_and_sampling_follow_no_repeat_ngram_as_beam_search_does():
    """The recipe's no_repeat_ngram applies to every decoder: greedy, sampled (and so MBR) outputs too."""
    model = tiny_seq2seq()
    src, lens = torch.tensor([[4, 5, 6]] * 8), torch.tensor([3] * 8)
    plain = greedy_or_sample(
        model, src, lens, max_len_a=0.0, max_len_b=8, temperature=1.0, generator=torch.Generator().manual_seed(1)
    )
    assert any(len(set(h[0])) < len(h[0]) for h in plain.tokens)  # without the block, tokens repeat
    for temperature in (0.0, 1.0):
        out = greedy_or_sample(
            model,
            src,
            lens,
            max_len_a=0.0,
            max_len_b=8,
            temperature=temperature,
            generator=torch.Generator().manual_seed(1),
            no_repeat_ngram=1,
        )
        assert all(len(set(h[0])) == len(h[0]) for h in out.tokens), out.tokens
