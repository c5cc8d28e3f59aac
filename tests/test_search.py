"""Decoding: beam search against brute force, beam 1 against greedy, batching and padding invariance."""

import itertools
import math

import torch

from textgen.config import ModelConfig
from textgen.data.seqbatch import collate
from textgen.data.seqvocab import BOS, EOS
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


def sequence_logprob(model, src, seq):
    h = model.encode(src, torch.tensor([src.size(1)]))
    prev, total = torch.tensor([BOS]), 0.0
    for tok in seq:
        logits, h = model.step(prev, h)
        total += float(logits.log_softmax(-1)[0, tok])  # the model's own log-prob, as search scores it
        prev = torch.tensor([tok])
    return total


def test_wide_beam_finds_the_brute_force_optimum_and_sorted_nbest():
    real = [1, 4, 5]  # UNK and two words
    for seed in range(5):
        model = ToyRNN(seed)
        src = torch.tensor([[seed + 1, seed + 2]])
        candidates = [list(p) + [EOS] for n in range(4) for p in itertools.product(real, repeat=n)]
        scored = sorted(((sequence_logprob(model, src, c), c) for c in candidates), reverse=True)
        hyps = beam_search(model, src, torch.tensor([2]), beam=len(candidates) + 1, nbest=5, lenpen=0.0,
                           max_len_a=0.0, max_len_b=4)
        assert hyps.tokens[0][0] == scored[0][1][:-1]
        assert math.isclose(hyps.scores[0][0], scored[0][0], rel_tol=1e-5)
        assert [t for t in hyps.tokens[0]] == [c[:-1] for _, c in scored[:5]]
        assert hyps.scores[0] == sorted(hyps.scores[0], reverse=True)


def test_beam_one_equals_greedy():
    model = ToyRNN(3)
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
    return [torch.randint(4, 12, (int(torch.randint(1, 9, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def test_batched_beam_equals_one_sentence_at_a_time():
    for kw in ({}, {"attention": "bahdanau", "input_feeding": True}, {"attention": "dot"}):
        model = tiny_seq2seq(**kw)
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
