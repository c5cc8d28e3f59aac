"""The Transformer (`model.arch = "transformer"`): its key/value cache decodes as the full decoder does, in every
way search and the objectives drive it (steps, a teacher-forced prefix, input embeddings, reordered rows); masks
hide future tokens and source padding; the LM re-reads its last half-window past model.context; bad shapes are
user errors naming the key. Beam search against brute force and the objectives' gradient tests run on it in
test_search.py and test_objectives.py."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import tiny_transformer
from textgen.config import ModelConfig
from textgen.data.seqbatch import collate
from textgen.data.seqvocab import PAD
from textgen.errors import UserError
from textgen.models import build_model

TOL = 1e-5  # max abs difference allowed between cached and full decoding, in fp32
SOURCES = [[4, 5, 6], [7, 8, 9, 10, 11, 4], [5], [11, 10, 9, 8]]
TARGETS = [[4, 5, 6, 7], [5], [6, 6, 8], [8, 7, 6, 5, 4, 3]]  # padded after the shorter ones


def seq2seq():
    return tiny_transformer("seq2seq", 12, 9)


def batch():
    return collate(SOURCES, TARGETS, list(range(len(SOURCES))))


def assert_near(a: torch.Tensor, b: torch.Tensor, what: str = ""):
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    assert diff <= TOL, f"{what}: max abs difference {diff:.2e}"


def steps(model, state, inputs: torch.Tensor) -> tuple[torch.Tensor, object]:
    """Feed inputs (B, T) one step at a time: logits (B, T, V) and the state after them."""
    out = []
    for t in range(inputs.size(1)):
        logits, state = model.step(inputs[:, t], state)
        out.append(logits)
    return torch.stack(out, 1), state


@torch.no_grad()
def test_cached_steps_equal_the_full_decoder_at_every_step():
    """Step t's logits equal a full re-run of the decoder on the t + 1 inputs so far, and the teacher-forced pass."""
    model, b = seq2seq(), batch()
    full = model(b.src, b.src_lens, b.tgt_in)
    state = model.encode(b.src, b.src_lens)
    for t in range(b.tgt_in.size(1)):
        logits, state = model.step(b.tgt_in[:, t], state)
        assert_near(logits, model(b.src, b.src_lens, b.tgt_in[:, : t + 1])[:, -1], f"re-run at step {t}")
        assert_near(logits, full[:, t], f"teacher forcing at step {t}")


@torch.no_grad()
def test_a_teacher_forced_prefix_then_steps_equal_the_full_decoder():
    """MIXER and SCST roll out after `prefix`; MRT rescores with it: the state it leaves must go on as steps do."""
    model, b = seq2seq(), batch()
    full = model(b.src, b.src_lens, b.tgt_in)
    for k in range(b.tgt_in.size(1)):  # an empty prefix too
        feats, state = model.prefix(model.encode(b.src, b.src_lens), b.tgt_in[:, :k])
        assert_near(model.logits(feats), full[:, :k], f"prefix of {k}")
        logits, _ = steps(model, state, b.tgt_in[:, k:])
        assert_near(logits, full[:, k:], f"steps after a prefix of {k}")


@torch.no_grad()
def test_step_embedded_decodes_any_input_embedding_as_the_full_decoder_does():
    """E2E feeds mixtures of embeddings: stepping through them equals one pass over the same embeddings, and a
    token's own embedding steps as the token does."""
    model, b = seq2seq(), batch()
    state = model.encode(b.src, b.src_lens)
    mixtures = torch.randn(b.src.size(0), 5, 16, generator=torch.Generator().manual_seed(0))
    full, _ = model.decode(mixtures, state)
    s = state
    for t in range(mixtures.size(1)):
        feat, s = model.step_embedded(mixtures[:, t], s)
        assert_near(feat, full[:, t], f"mixture step {t}")
    tokens = b.tgt_in[:, 0]
    by_token, _ = model.step_features(tokens, state)
    by_embedding, _ = model.step_embedded(model.tgt_embed(tokens), state)
    assert_near(by_embedding, by_token, "token embedding")


@torch.no_grad()
def test_reordered_rows_decode_as_a_fresh_decoder_of_the_rows_they_copy():
    """Rows selected, repeated and permuted (sampling, rows leaving the batch) go on with the cache and the source
    of the row each copies."""
    model, b = seq2seq(), batch()
    index = torch.tensor([2, 0, 0, 3, 1, 2])
    state = model.encode(b.src, b.src_lens)
    before, state = steps(model, state, b.tgt_in[:, :2])
    after, _ = steps(model, model.reorder_state(state, index), b.tgt_in[index, 2:])
    full = model(b.src[index], b.src_lens[index], b.tgt_in[index])
    assert_near(torch.cat([before[index], after], 1), full, "reordered rows")


@torch.no_grad()
def test_beam_reordering_within_a_sentence_keeps_each_rows_source():
    """Beam search: K rows per sentence, reordered within it (keep_source=True leaves the encoder's keys as they
    are): each row goes on from the hypothesis it copies, against its own sentence's source."""
    model, b, K = seq2seq(), batch(), 3
    B, g = b.src.size(0), torch.Generator().manual_seed(1)
    expand = torch.arange(B).repeat_interleave(K)
    src, lens = b.src[expand], b.src_lens[expand]
    hyps = torch.randint(4, 9, (B * K, 3), generator=g)  # a different prefix on every row
    state = model.reorder_state(model.encode(b.src, b.src_lens), expand)
    _, state = steps(model, state, hyps)
    within = torch.stack([torch.randint(0, K, (K,), generator=g) for _ in range(B)])  # repeats and permutations
    index = (within + torch.arange(B).unsqueeze(1) * K).flatten()
    more = torch.randint(4, 9, (B * K, 3), generator=g)
    logits, _ = steps(model, model.reorder_state(state, index, keep_source=True), more)
    full = model(src, lens, torch.cat([hyps[index], more], 1))
    assert_near(logits, full[:, 3:], "beam-reordered rows")


def test_a_future_target_token_cannot_change_an_earlier_decoder_output():
    model, b = seq2seq(), batch()
    with torch.no_grad():
        base = model(b.src, b.src_lens, b.tgt_in)
    for j in range(1, b.tgt_in.size(1)):
        changed = b.tgt_in.clone()
        changed[:, j] = 4 + (changed[:, j] - 3) % 5  # another real token (4..8) everywhere
        with torch.no_grad():
            out = model(b.src, b.src_lens, changed)
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=1e-6)
        assert float((out[:, j] - base[:, j]).abs().max()) > 1e-3  # the token is read where it stands


@torch.no_grad()
def test_source_padding_changes_nothing():
    """Extra PAD columns after the sources, and a source decoded alone or among longer ones, give the same logits."""
    model, b = seq2seq(), batch()
    full = model(b.src, b.src_lens, b.tgt_in)
    padded = torch.cat([b.src, torch.full((b.src.size(0), 4), PAD)], 1)
    assert_near(model(padded, b.src_lens, b.tgt_in), full, "extra PAD columns")
    for i, (s, t) in enumerate(zip(SOURCES, TARGETS)):
        one = collate([s], [t], [0])
        alone = model(one.src, one.src_lens, one.tgt_in)
        assert_near(alone, full[i : i + 1, : one.tgt_in.size(1)], f"source {i} alone")


def lm(context: int):
    return tiny_transformer("lm", 7, context=context)


def stream(length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 7, (2, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("context", [8, 5])
@torch.no_grad()
def test_lm_token_at_a_time_equals_one_call(context):
    """Sampling reads one token a call, evaluation a window a call: the cache and the re-reads past the context
    make them agree, however the stream is cut."""
    model, x = lm(context), stream(3 * context + 12)
    whole, _ = model(x, model.init_state(2))
    assert whole.shape == (2, x.size(1), 7)
    for cuts in ([1] * x.size(1), [3, 1, context, 2, context + 3, context + 3]):
        state, pieces = model.init_state(2), []
        for piece in x.split(cuts, dim=1):
            out, state = model(piece, state)
            pieces.append(out)
        assert_near(torch.cat(pieces, 1), whole, f"pieces {cuts}")


@pytest.mark.parametrize("context", [8, 5])
@torch.no_grad()
def test_lm_past_its_context_equals_a_fresh_run_on_the_reread_window(context):
    """model.context tokens fill the cache; the next token re-reads the last context // 2 of them and goes on
    from there. Each token's logits are then those of a fresh run over its window."""
    model, x = lm(context), stream(3 * context + 3, seed=1)
    whole, _ = model(x, None)
    start = 0
    for i in range(x.size(1)):
        if i - start == context:  # full: keep the last half
            start = i - context // 2
        fresh, _ = model(x[:, start : i + 1], None)
        assert_near(whole[:, i], fresh[:, -1], f"token {i} (window from {start})")
    assert start > context // 2  # the stream ran past the context more than once


def test_lm_a_future_token_cannot_change_an_earlier_output():
    model, x = lm(8), stream(20, seed=2)
    with torch.no_grad():
        base, _ = model(x, None)
        for j in (1, 5, 7, 12, 19):  # in the first window and past it
            changed = x.clone()
            changed[:, j] = (changed[:, j] + 1) % 7
            out, _ = model(changed, None)
            torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=1e-6)
            assert float((out[:, j] - base[:, j]).abs().max()) > 1e-3


@pytest.mark.parametrize(
    "keys, match",
    [
        (dict(hidden=18, heads=4), r"model.hidden \(18\) must be a multiple of model.heads \(4\)"),
        (dict(hidden=16, embed=8), r"model.embed must be 0 or model.hidden \(16\), got 8"),
    ],
    ids=["heads", "embed"],
)
@pytest.mark.parametrize("task, vocab", [("lm", (7,)), ("seq2seq", (12, 9))], ids=["lm", "seq2seq"])
def test_a_shape_the_transformer_cannot_take_is_a_user_error_naming_the_keys(keys, match, task, vocab):
    cfg = ModelConfig(arch="transformer", layers=1, **keys)
    with pytest.raises(UserError, match=match):
        build_model(cfg, task, *vocab)
    ok = ModelConfig(arch="transformer", layers=1, hidden=16, heads=4, embed=16, context=8)  # embed = hidden
    build_model(ok, task, *vocab)


@pytest.mark.parametrize(
    "key, value", [("cell", "gru"), ("attention", "dot"), ("input_feeding", True), ("init_range", 0.1)]
)
def test_a_recurrent_only_setting_on_a_transformer_is_refused_not_ignored(key, value):
    cfg = ModelConfig(arch="transformer", layers=1, hidden=16, heads=4, context=8, **{key: value})
    for task, vocab in (("lm", (7,)), ("seq2seq", (12, 9))):
        with pytest.raises(UserError, match=f"model.{key} is a recurrent-model setting"):
            build_model(cfg, task, *vocab)


def test_every_lm_token_id_is_trained_as_an_input_including_id_0():
    """An LM vocabulary has no PAD: id 0 is a real token (a character, <unk>) whose embedding must learn."""
    lm = tiny_transformer("lm", 7, context=8).train()
    logits, _ = lm(torch.tensor([[0, 3, 0, 5]]), None)
    logits.sum().backward()
    assert lm.emb.table.weight.grad[0].abs().sum() > 0
    assert lm.emb.table.weight[0].abs().sum() > 0  # not initialised to zero either


def test_dropout_acts_in_training_only():
    mt = tiny_transformer("seq2seq", 12, 9, dropout=0.5)
    src, lens, tgt = torch.randint(4, 12, (2, 5)), torch.tensor([5, 3]), torch.randint(4, 9, (2, 4))
    assert torch.equal(mt(src, lens, tgt), mt(src, lens, tgt))  # eval: deterministic
    mt.train()
    assert not torch.equal(mt(src, lens, tgt), mt(src, lens, tgt))


def test_an_lm_context_is_its_training_window():
    from textgen.config import load_recipe
    from textgen.tasks.lm import model_config

    recipe = load_recipe("shakespeare-transformer", ["model.context=0", "train.bptt=64"])
    assert model_config(recipe).context == 64
    with pytest.raises(UserError, match="model.context = 32 must equal train.bptt = 64"):
        model_config(load_recipe("shakespeare-transformer", ["model.context=32", "train.bptt=64"]))


@pytest.mark.parametrize("arch", ["recurrent", "transformer"])
def test_shared_embeddings_need_one_vocabulary_and_are_one_table(arch):
    cfg = ModelConfig(arch=arch, layers=1, hidden=16, heads=4, share_embeddings=True)
    with pytest.raises(UserError, match="model.share_embeddings needs one joint vocabulary"):
        build_model(cfg, "seq2seq", 12, 9)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731 (shared parameters count once)
    separate = build_model(ModelConfig(arch=arch, layers=1, hidden=16, heads=4), "seq2seq", 12, 12)
    assert count(separate) - count(build_model(cfg, "seq2seq", 12, 12)) == 12 * 16
