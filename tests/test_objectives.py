"""Sequence-level objectives on models small enough to enumerate every output sequence; what an objective must do
holds on each model.arch (EVERY_ARCH), recurrent and Transformer."""

import dataclasses
import itertools
import math

import pytest
import sacrebleu
import torch

from textgen.config import (
    CHOICES,
    DadConfig,
    DecodeConfig,
    MixerConfig,
    ModelConfig,
    ObjectiveConfig,
    Recipe,
    TrainConfig,
)
from textgen.data.seqbatch import collate
from textgen.data.seqvocab import BOS, EOS, PAD, UNK, WordVocab
from textgen.decode.generate import rollout
from textgen.decode.search import allowed_log_probs, greedy_or_sample
from textgen.metrics import sentence_bleu
from textgen.models import build_model
from textgen.objectives import OBJECTIVES
from textgen.objectives.base import Context
from textgen.objectives.common import teacher_forced_loss, token_loss
from textgen.objectives.mixer import Segment
from textgen.objectives.schedules import feed_probability, xent_prefix_length
from textgen.objectives.xent import drop_target_words

VOCAB = WordVocab(("<pad>", "<unk>", "<s>", "</s>", "x", "y"))
MAX_LEN = 3  # outputs of at most 3 tokens including EOS: 13 sequences in all


def objective_config(name="xent", sample_temperature=1.0, **tables) -> ObjectiveConfig:
    """An ObjectiveConfig with some keys of its tables set: mixer=dict(T=3)."""
    default = ObjectiveConfig()
    changed = {table: dataclasses.replace(getattr(default, table), **keys) for table, keys in tables.items()}
    return ObjectiveConfig(name=name, sample_temperature=sample_temperature, **changed)


TINY_MODELS = {  # model.arch → the tiny model the objectives' tests run on
    "recurrent": ModelConfig(layers=1, hidden=8, embed=6),
    "transformer": ModelConfig(arch="transformer", layers=1, hidden=8, heads=2, ffn=16),
}
EVERY_ARCH = pytest.mark.parametrize("arch", list(TINY_MODELS))  # what must hold for an objective on every model


def setup(name="xent", seed=0, dropout=0.0, arch="recurrent", train=TrainConfig(), **objective):
    torch.manual_seed(seed)
    recipe = Recipe(
        task="seq2seq",
        model=dataclasses.replace(TINY_MODELS[arch], dropout=dropout),
        train=train,
        decode=DecodeConfig(max_len_a=0.0, max_len_b=MAX_LEN),
        objective=objective_config(name, **objective),
    )
    model = build_model(recipe.model, "seq2seq", 9, len(VOCAB)).train()
    ctx = Context(recipe, VOCAB, ["x y"] * 4, steps_per_epoch=10)
    return model, OBJECTIVES[name](ctx)


def copies(n, src=(4, 5, 6), tgt=(4, 5)):
    return collate([list(src)] * n, [list(tgt)] * n, [0] * n)


def x_count(hyp: str, ref: str) -> float:
    return hyp.split().count("x") / 2.0


def exact_expected_reward(model, batch, temperature=1.0):
    """Sum over every sequence of p(sequence) * reward under softmax(logits / temperature), differentiable."""
    total = 0.0
    for n in range(MAX_LEN):
        for body in itertools.product([1, 4, 5], repeat=n):
            seq = list(body) + [EOS]
            state = model.encode(batch.src[:1], batch.src_lens[:1])
            prev, logp = torch.tensor([BOS]), 0.0
            for t, tok in enumerate(seq):
                logits, state = model.step(prev, state)
                step_logp = allowed_log_probs(logits / temperature, torch.tensor([t + 1 >= MAX_LEN]), renormalise=True)
                logp = logp + step_logp[0, tok]
                prev = torch.tensor([tok])
            total = total + logp.exp() * x_count(VOCAB.decode(list(body)), "")
    return total


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@EVERY_ARCH
def test_reinforce_gradient_matches_exact_gradient_of_expected_reward(temperature, arch):
    """Unbiased for the policy actually sampled, tempered too (samples and log-probs from softmax(z / T))."""
    model, objective = setup("reinforce", arch=arch, sample_temperature=temperature, mixer=dict(baseline="none"))
    objective.reward_fn = x_count
    batch = copies(1)
    expected = exact_expected_reward(model, batch, temperature)
    exact = torch.autograd.grad(expected, list(model.parameters()), allow_unused=True)
    assert_estimate_matches(model, objective, exact, sources=6000)


def assert_estimate_matches(model, objective, exact, sources):
    """The objective's REINFORCE gradient on `sources` copies of the source is close to the exact one."""
    exact = torch.cat([g.flatten() for g in exact if g is not None])
    torch.manual_seed(1)
    out = objective(model, copies(sources), step=0)
    estimate = torch.autograd.grad(-out.loss_sum / sources, list(model.parameters()), allow_unused=True)
    estimate = torch.cat([g.flatten() for g in estimate if g is not None])
    cosine = torch.nn.functional.cosine_similarity(estimate, exact, dim=0)
    relative = (estimate - exact).norm() / exact.norm()
    assert cosine > 0.98 and relative < 0.2, (float(cosine), float(relative))


def per_sample_gradients(model, objective, samples):
    grads = []
    for i in range(samples):
        torch.manual_seed(100 + i)
        out = objective(model, copies(1), step=0)
        grads.append(torch.autograd.grad(out.loss_sum, [model.proj.bias])[0].clone())
    return torch.stack(grads)


@EVERY_ARCH
def test_learned_baseline_reduces_gradient_variance(arch):
    model, objective = setup("reinforce", arch=arch, mixer=dict(baseline="learned"))
    objective.reward_fn = x_count
    # plain SGD's stable step depends on the features' scale: a tanh's (LSTM) takes lr 0.5, a LayerNorm's
    # (Transformer, norm ~sqrt(hidden)) diverges there and gets Adam, as training uses
    params = objective.baseline.parameters()
    opt = torch.optim.SGD(params, lr=0.5) if arch == "recurrent" else torch.optim.Adam(params, lr=0.02)
    for step in range(150):  # train only the regressor, as its own optimizer group would
        out = objective(model, copies(32), step=0)
        opt.zero_grad()
        (out.loss_sum / out.ntokens).backward()  # normalised as the trainer does
        opt.step()
    assert out.logs["baseline_mse"] < 0.1
    with_baseline = per_sample_gradients(model, objective, 300).var(0).sum()
    objective.cfg = dataclasses.replace(objective.cfg, baseline="none")
    without = per_sample_gradients(model, objective, 300).var(0).sum()
    assert with_baseline < 0.7 * without, (float(with_baseline), float(without))


@EVERY_ARCH
def test_baseline_loss_sends_no_gradient_into_the_decoder(arch):
    model, objective = setup("reinforce", arch=arch, mixer=dict(baseline="learned"))
    objective.reward_fn = x_count
    batch = copies(8)
    state = model.encode(batch.src, batch.src_lens)
    roll = rollout(model, state, batch.tgt_in[:, 0], torch.full((8,), MAX_LEN))
    reward = torch.rand(8)
    adv, baseline_loss, _ = objective.advantage(model, None, roll, reward)
    assert baseline_loss.requires_grad and not adv.requires_grad
    baseline_loss.backward()
    assert all(p.grad is None for p in model.parameters())
    assert objective.baseline.weight.grad is not None and objective.baseline.weight.grad.abs().sum() > 0


@EVERY_ARCH
def test_scst_baseline_is_the_test_time_greedy_decode_with_dropout_off(arch):
    """Rennie et al.: the baseline is the reward of what greedy decoding outputs at test time, not a dropout decode;
    it draws nothing from the RNG, and the model is left in train mode."""
    model, scst = setup("scst", arch=arch, dropout=0.5, mixer=dict(T=1, delta=1, xent_epochs=0, xent_weight=0.0))
    scst.reward_fn = lambda hyp, ref: float(len(hyp.split()) + 3 * hyp.split().count("x"))
    batch = collate([[4, 5, 6], [7, 8], [6, 6, 8, 7], [5]] * 4, [[4, 5]] * 16, [i % 4 for i in range(16)])
    rows = torch.arange(16)
    limit = torch.full((16,), MAX_LEN)
    seg = Segment(
        batch,
        rows,
        0,
        model.encode(batch.src, batch.src_lens),
        batch.tgt_in[:, 0],
        limit,
    )
    roll = rollout(model, seg.state, seg.prev, limit)
    reward = torch.rand(16)
    rng = torch.get_rng_state()
    adv, baseline_loss, logs = scst.advantage(model, seg, roll, reward)
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    model.eval()
    greedy = greedy_or_sample(model, batch.src, batch.src_lens, 0.0, MAX_LEN)
    model.train()
    base = torch.tensor([scst.reward_fn(VOCAB.decode(h[0]), "") for h in greedy.tokens])
    torch.testing.assert_close(adv, (reward - base).unsqueeze(1).expand_as(roll.logp))
    assert logs["greedy_reward"] == pytest.approx(float(base.mean())) and float(baseline_loss) == 0.0


@EVERY_ARCH
def test_scst_advantage_is_sample_reward_minus_greedy_reward(arch):
    model, scst = setup("scst", arch=arch, mixer=dict(T=4, delta=4, xent_epochs=0, epochs_per_stage=1, xent_weight=0.0))
    assert not list(scst.parameters())  # no regressor: the greedy decode is the baseline
    batch = copies(16)
    scst.reward_fn = lambda hyp, ref: 1.0  # every continuation earns the same: nothing to learn
    flat = scst(model, batch, step=0)
    assert float(flat.loss_sum.detach()) == 0.0 and flat.logs["greedy_reward"] == 1.0
    scst.reward_fn = x_count
    torch.manual_seed(1)
    out = scst(model, batch, step=0)
    out.loss_sum.backward()
    assert out.logs["s"] == 0 and out.loss_sum.requires_grad
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


def test_target_word_dropout_turns_inputs_after_bos_into_unk_at_its_rate():
    torch.manual_seed(0)
    tgt_in = torch.randint(4, 9, (4000, 7))
    tgt_in[:, 0], tgt_in[:, 5:] = BOS, PAD
    dropped = drop_target_words(tgt_in, 0.3)
    assert torch.equal(dropped[:, 0], tgt_in[:, 0]) and torch.equal(dropped[:, 5:], tgt_in[:, 5:])  # BOS, padding
    changed = dropped[:, 1:5] != tgt_in[:, 1:5]
    assert bool((dropped[:, 1:5][changed] == UNK).all())
    assert abs(changed.float().mean().item() - 0.3) < 0.02
    assert torch.equal(drop_target_words(tgt_in, 0.0), tgt_in)


@EVERY_ARCH
def test_xent_with_word_dropout_reads_dropped_inputs_in_training_only(arch):
    """The loss is XENT of the whole targets given the dropped inputs; at evaluation the inputs stay whole."""
    model, xent = setup("xent", arch=arch, train=TrainConfig(word_dropout=0.5))
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5, 4, 5], [5, 4]], [0, 1])
    torch.manual_seed(3)
    out = xent(model, batch, step=0)
    torch.manual_seed(3)
    dropped = dataclasses.replace(batch, tgt_in=drop_target_words(batch.tgt_in, 0.5))
    assert not torch.equal(dropped.tgt_in, batch.tgt_in)  # the draw under seed 3 drops some input
    torch.testing.assert_close(out.loss_sum, teacher_forced_loss(model, dropped))
    assert out.ntokens == batch.ntokens
    model.eval()
    torch.testing.assert_close(xent(model, batch, step=0).loss_sum, teacher_forced_loss(model, batch))


@EVERY_ARCH
def test_dad_with_p_zero_equals_xent(arch):
    model, dad = setup("dad", arch=arch, dad=dict(max_p=0.0))
    _, xent = setup("xent", arch=arch)
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5, 4], [5]], [0, 1])
    a, b = dad(model, batch, step=50), xent(model, batch, step=50)
    torch.testing.assert_close(a.loss_sum, b.loss_sum, rtol=1e-6, atol=1e-6)
    ga = torch.autograd.grad(a.loss_sum, list(model.parameters()))
    gb = torch.autograd.grad(b.loss_sum, list(model.parameters()))
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert a.ntokens == b.ntokens


@EVERY_ARCH
def test_dad_with_p_one_feeds_the_argmax_of_the_previous_step(arch):
    """p = 1: every input after BOS is the model's own previous argmax; targets stay the reference."""
    model, dad = setup("dad", arch=arch, dad=dict(max_p=1.0, ramp_epochs=1.0))
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5, 4, 5], [5, 4]], [0, 1])
    state = model.encode(batch.src, batch.src_lens)
    prev, logits_per_step = batch.tgt_in[:, 0], []
    for t in range(batch.tgt_in.size(1)):
        logits, state = model.step(prev, state)
        logits_per_step.append(logits)
        prev = torch.where(
            batch.tgt_in[:, min(t + 1, batch.tgt_in.size(1) - 1)] == PAD,
            batch.tgt_in[:, min(t + 1, batch.tgt_in.size(1) - 1)],
            logits.argmax(-1),
        )
    expected = token_loss(torch.stack(logits_per_step, 1), batch.tgt_out)
    out = dad(model, batch, step=100)
    assert out.logs["dad_p"] == 1.0
    torch.testing.assert_close(out.loss_sum, expected)


@EVERY_ARCH
def test_teacher_forced_loss_skips_the_padding_and_equals_the_token_loss_of_all_logits(arch):
    """The output layer runs only at non-PAD positions: same loss and gradients as logits for every position."""
    model, _ = setup("xent", arch=arch)
    batch = collate([[4, 5, 6], [7, 8], [4]], [[4, 5, 4, 5], [5], [4, 4]], [0, 1, 2])  # padded targets
    packed = teacher_forced_loss(model, batch, smoothing=0.1)
    full = token_loss(model(batch.src, batch.src_lens, batch.tgt_in), batch.tgt_out, 0.1)
    torch.testing.assert_close(packed, full)
    for a, b in zip(
        torch.autograd.grad(packed, list(model.parameters())), torch.autograd.grad(full, list(model.parameters()))
    ):
        torch.testing.assert_close(a, b)


@EVERY_ARCH
def test_mixer_with_s_equal_T_is_xent_exactly(arch):
    model, mixer = setup("mixer", arch=arch, mixer=dict(T=25, xent_epochs=5))
    _, xent = setup("xent", arch=arch)
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5, 4], [5]], [0, 1])
    assert torch.equal(mixer(model, batch, step=3).loss_sum, xent(model, batch, step=3).loss_sum)


def test_mixer_schedule_steps_as_specified():
    cfg = MixerConfig(T=25, delta=3, xent_epochs=25, epochs_per_stage=5)
    assert [xent_prefix_length(cfg, e) for e in (0, 24, 25, 29, 30, 34, 35, 70)] == [25, 25, 22, 22, 19, 19, 16, 0]
    assert xent_prefix_length(dataclasses.replace(cfg, min_s=1), 200) == 1
    summarize = MixerConfig(T=20, delta=2, xent_epochs=20, epochs_per_stage=5)
    assert [xent_prefix_length(summarize, e) for e in (19, 20, 25, 30)] == [20, 18, 16, 14]
    assert xent_prefix_length(cfg, 29.99) == 22  # progress is fractional: a stage ends only when its epochs are done
    finetune = MixerConfig(T=12, delta=4, xent_epochs=0, epochs_per_stage=0.5, min_s=1)
    assert [xent_prefix_length(finetune, e) for e in (0.0, 0.49, 0.5, 1.0, 1.6)] == [8, 8, 4, 1, 1]


def continuation_logp(model, src, prefix, continuation, limit):
    """log p(continuation + EOS | src, BOS + reference prefix) under the rollout's policy (renormalised, limit)."""
    batch = collate([src], [prefix], [0])
    state = model.encode(batch.src, batch.src_lens)
    _, state = model.prefix(state, batch.tgt_in[:, : len(prefix)])
    prev, total = batch.tgt_in[:, len(prefix)], 0.0
    for t, tok in enumerate(continuation + [EOS]):
        logits, state = model.step(prev, state)
        total = total + allowed_log_probs(logits, torch.tensor([t + 1 >= limit]), renormalise=True)[0, tok]
        prev = torch.tensor([tok])
    return total


@EVERY_ARCH
def test_mixer_below_T_weights_xent_prefix_and_reinforce_continuation_half_and_half(arch):
    """At s = 1 (T = 3): loss = 0.5 * XENT(first reference token) + 0.5 * -(R - b) log p(sampled continuation),
    the continuation sampled after the reference prefix."""
    model, mixer = setup(
        "mixer", arch=arch, mixer=dict(T=3, xent_epochs=0, delta=2, epochs_per_stage=1, baseline="none")
    )
    src, tgt = [4, 5, 6], [4, 5, 4]
    batch = copies(6, src=src, tgt=tgt)
    state = model.encode(batch.src, batch.src_lens)
    xent = token_loss(model.logits(model.prefix(state, batch.tgt_in[:, :1])[0]), batch.tgt_out[:, :1])
    mixer.reward_fn = lambda hyp, ref: 0.0
    zero = mixer(model, batch, step=0)
    assert zero.logs["s"] == 1
    torch.testing.assert_close(zero.loss_sum, 0.5 * xent)
    hyps = []
    mixer.reward_fn = lambda hyp, ref: hyps.append(hyp) or 2.0
    out = mixer(model, batch, step=0)
    limit = MAX_LEN - 1  # max_len_b = 3 steps in all, one of them teacher-forced
    nll = 0.0
    for hyp in hyps:
        words = hyp.split()
        assert words[:1] == ["x"]  # every rollout starts after the reference prefix (token 4 = "x")
        nll = nll - continuation_logp(model, src, tgt[:1], [VOCAB.encode(w)[0] for w in words[1:]], limit)
    assert len(hyps) == 6
    torch.testing.assert_close(out.loss_sum, 0.5 * xent + 0.5 * 2.0 * nll)
    assert out.ntokens == 6 + sum(len(h.split()) for h in hyps)  # 6 prefix tokens + sampled tokens incl. EOS


def test_dad_linear_schedule_rises_over_epochs():
    cfg = DadConfig(max_p=0.25, ramp_epochs=10)
    assert [feed_probability(cfg, e * 100, 100) for e in (0, 5, 10, 20)] == [0.0, 0.125, 0.25, 0.25]


@pytest.mark.parametrize("k", [10.0, 300.0])
def test_dad_inverse_sigmoid_is_bengio_et_al_in_updates(k):
    """p(i) = 1 - k / (k + exp(i / k)) at update i: k moves the midpoint (k ln k) and the width (k) together."""
    inv = DadConfig(schedule="inverse_sigmoid", k_updates=k)
    for i in (0, 1, 7, int(k), int(3 * k), int(10 * k)):
        assert feed_probability(inv, i, 50) == pytest.approx(1 - k / (k + math.exp(i / k)), rel=1e-12, abs=1e-15)
    assert feed_probability(inv, round(k * math.log(k)), 50) == pytest.approx(0.5, abs=0.002 if k == 10 else 2e-4)
    assert feed_probability(DadConfig(schedule="inverse_sigmoid", k_updates=10.0), 0, 50) == pytest.approx(1 / 11)
    assert feed_probability(inv, 10**9, 50) == 1.0  # no overflow far along


@EVERY_ARCH
def test_e2e_during_its_xent_epochs_is_xent_on_targets_longer_than_T(arch):
    model, e2e = setup("e2e", arch=arch, mixer=dict(T=2, xent_epochs=10), e2e=dict(k=3))
    _, xent = setup("xent", arch=arch)
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5, 4, 5, 4], [5, 4, 5]], [0, 1])  # targets longer than T = 2
    out = e2e(model, batch, step=0)
    assert out.logs["s"] == 2
    torch.testing.assert_close(out.loss_sum, xent(model, batch, step=0).loss_sum, rtol=0, atol=0)


@EVERY_ARCH
def test_e2e_gradient_flows_through_the_top_k_weights(arch):
    """d loss / d proj.bias by autograd equals finite differences: the bias moves the loss through the soft
    inputs' renormalised top-k weights too, so detaching them would make the two disagree."""
    model, soft = setup("e2e", arch=arch, mixer=dict(T=2, xent_epochs=0, delta=2), e2e=dict(k=3))
    model.double()
    batch = collate([[4, 5, 6]], [[4, 5, 4, 5]], [0])
    assert soft(model, batch, step=100).logs["s"] == 0
    bias = model.proj.bias
    grad = torch.autograd.grad(soft(model, batch, step=100).loss_sum, bias)[0]
    eps, numeric = 1e-6, torch.zeros_like(bias)
    with torch.no_grad():
        for i in range(bias.numel()):
            bias[i] += eps
            up = soft(model, batch, step=100).loss_sum
            bias[i] -= 2 * eps
            down = soft(model, batch, step=100).loss_sum
            bias[i] += eps
            numeric[i] = (up - down) / (2 * eps)
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-7)


def test_sentence_bleu_reward_matches_sacrebleu():
    pairs = [
        ("the cat sat on the mat", "the cat is on the mat"),
        ("a b", "a b c d"),
        ("completely different", "nothing in common here"),
    ]
    for hyp, ref in pairs:
        expected = sacrebleu.sentence_bleu(hyp, [ref], smooth_method="add-k", smooth_value=1).score / 100
        assert sentence_bleu(hyp, ref) == pytest.approx(expected)
    assert sentence_bleu("", "a b") == 0.0


@EVERY_ARCH
def test_leave_one_out_baseline_keeps_reinforce_unbiased(arch):
    """k = 4 samples per source, each with the mean reward of the other three as its baseline (Kool et al.):
    the estimate still matches the exact gradient of the expected reward on an enumerable model."""
    model, objective = setup("reinforce", arch=arch, mixer=dict(baseline="loo", samples=4))
    objective.reward_fn = x_count
    exact = torch.autograd.grad(exact_expected_reward(model, copies(1)), list(model.parameters()), allow_unused=True)
    assert_estimate_matches(model, objective, exact, sources=1500)


@EVERY_ARCH
def test_leave_one_out_advantage_is_reward_minus_the_others_mean_and_cuts_variance(arch):
    model, objective = setup("reinforce", arch=arch, mixer=dict(baseline="loo", samples=3))
    reward = torch.tensor([1.0, 0.0, 0.5, 0.2, 0.2, 0.8])  # two sources, three samples each
    roll = rollout(
        model, model.encode(copies(6).src, copies(6).src_lens), copies(6).tgt_in[:, 0], torch.full((6,), MAX_LEN)
    )
    adv, baseline_loss, _ = objective.advantage(model, None, roll, reward)
    expected = torch.tensor([1.0 - 0.25, 0.0 - 0.75, 0.5 - 0.5, 0.2 - 0.5, 0.2 - 0.5, 0.8 - 0.2])
    torch.testing.assert_close(adv[:, 0], expected)
    assert float(baseline_loss) == 0.0 and not list(objective.parameters())
    objective.reward_fn = lambda hyp, ref: 2.0 + x_count(hyp, ref)  # rewards far from 0, as BLEU's are
    loo = per_sample_gradients(model, objective, 300).var(0).sum()
    objective.cfg = dataclasses.replace(objective.cfg, baseline="none")
    none = per_sample_gradients(model, objective, 300).var(0).sum()
    assert loo < 0.5 * none, (float(loo), float(none))
    with pytest.raises(Exception, match="samples"):
        setup("reinforce", arch=arch, mixer=dict(baseline="loo", samples=1))


@EVERY_ARCH
def test_per_step_baselines_learn_and_send_no_gradient_into_the_decoder(arch):
    model, objective = setup("reinforce", arch=arch, mixer=dict(baseline="learned-per-step"))
    if arch == "recurrent":
        objective.reward_fn = x_count
        opt = torch.optim.SGD(objective.baseline.parameters(), lr=0.5)
    else:  # Adam for a LayerNorm's features (see above); a reward far from the regressors' first guess, 0
        objective.reward_fn = lambda hyp, ref: 1.0 + x_count(hyp, ref)
        opt = torch.optim.Adam(objective.baseline.parameters(), lr=0.05)
    first = None
    for step in range(100):
        out = objective(model, copies(32), step=0)
        first = first if first is not None else out.logs["baseline_mse"]
        opt.zero_grad()
        (out.loss_sum / out.ntokens).backward()
        opt.step()
    assert out.logs["baseline_mse"] < 0.5 * first
    w = objective.baseline.weight
    assert w[0].abs().sum() > 0 and w[1].abs().sum() > 0 and not torch.equal(w[0], w[1])  # one regressor per step
    batch = copies(8)
    state = model.encode(batch.src, batch.src_lens)
    roll = rollout(model, state, batch.tgt_in[:, 0], torch.full((8,), MAX_LEN))
    seg = Segment(batch, torch.arange(8), 0, state, batch.tgt_in[:, 0], torch.full((8,), MAX_LEN))
    model.zero_grad()
    _, baseline_loss, _ = objective.advantage(model, seg, roll, torch.rand(8))
    baseline_loss.backward()
    assert all(p.grad is None for p in model.parameters())


def test_sampled_ngram_bleu_is_sacrebleu_with_no_prefix_and_ignores_prefix_only_ngrams():
    from textgen.sampled_bleu import sampled_ngram_bleu

    words = "the a cat dog sat on mat rug".split()
    ids = {w: i + 10 for i, w in enumerate(words)}

    def enc(text):
        return [ids[w] for w in text.split()]

    for hyp, ref in [
        ("the cat sat on the mat", "the cat sat on the rug"),
        ("a dog", "the dog sat on a mat"),
        ("mat rug the", "the cat sat on the mat"),
        ("the cat sat on the mat", "the cat sat on the mat"),
    ]:
        expected = (
            sacrebleu.sentence_bleu(
                hyp, [ref], smooth_method="add-k", smooth_value=1, tokenize="none", use_effective_order=True
            ).score
            / 100
        )
        assert sampled_ngram_bleu([], enc(hyp), enc(ref)) == pytest.approx(expected, abs=1e-12)
    ref = enc("the cat sat on the mat")
    prefix = enc("the cat sat on the")
    # the prefix alone matches 5 words of the reference; a wrong last word must earn only add-1 smoothing,
    # while plain BLEU of the whole output would pay for the prefix
    wrong, right = sampled_ngram_bleu(prefix, enc("rug"), ref), sampled_ngram_bleu(prefix, enc("mat"), ref)
    plain = (
        sacrebleu.sentence_bleu(
            "the cat sat on the rug", ["the cat sat on the mat"], smooth_method="add-k", smooth_value=1, tokenize="none"
        ).score
        / 100
    )
    assert wrong == 0.0 and plain > 0.5 and right == pytest.approx(1.0)
    repeated = sampled_ngram_bleu(enc("the cat"), enc("the cat"), enc("the cat sat"))
    assert repeated < sampled_ngram_bleu(enc("the cat"), enc("sat"), enc("the cat sat"))  # clipping counts the prefix


def assert_gradient_is_finite_differences(fn, weight, count: int, eps: float) -> None:
    """autograd's gradient of fn() at the first `count` entries of `weight` equals central differences (and is
    not zero)."""
    grad = torch.autograd.grad(fn(), weight)[0].view(-1)[:count]
    numeric = torch.zeros_like(grad)
    flat = weight.data.view(-1)
    with torch.no_grad():
        for i in range(count):
            flat[i] += eps
            up = fn()
            flat[i] -= 2 * eps
            down = fn()
            flat[i] += eps
            numeric[i] = (up - down) / (2 * eps)
    torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-8)
    assert grad.abs().sum() > 0


@EVERY_ARCH
def test_mrt_gradient_equals_finite_differences_of_the_expected_risk(arch):
    """For a fixed candidate set the risk sum_y q(y) cost(y), q ~ p(y|x)^alpha renormalised, is a smooth
    function of the weights: autograd through the batched rescoring must match central differences."""
    from textgen.objectives.mrt import expected_risk, sequence_log_probs

    model, _ = setup("mrt", arch=arch)
    model.double()
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5], [5]], [0, 1])
    candidates = [[4, 5], [5], [], [4, 4, 5], [5, 4]]
    owner = torch.tensor([0, 0, 0, 1, 1])
    cost = torch.tensor([0.1, 0.7, 1.0, 0.3, 0.9], dtype=torch.float64)

    def risk():
        logp = sequence_log_probs(model, batch.src, batch.src_lens, candidates, owner).double()
        return expected_risk(logp, owner, cost, 2, alpha=0.7)

    # the output bias, and the encoder that each source's candidates share: the gradient reaches it through
    # the repeated state
    encoder = next(model.encoder.parameters())  # its first weight, whatever the architecture
    for weight, count in ((model.proj.bias, model.proj.bias.numel()), (encoder, 6)):
        assert_gradient_is_finite_differences(risk, weight, count, eps=1e-6)
    # and the risk itself: the exact expectation under the renormalised distribution
    with torch.no_grad():
        logp = sequence_log_probs(model, batch.src[owner], batch.src_lens[owner], candidates).double()
    q0, q1 = (0.7 * logp[:3]).softmax(0), (0.7 * logp[3:]).softmax(0)
    torch.testing.assert_close(expected_risk(logp, owner, cost, 2, 0.7), (q0 * cost[:3]).sum() + (q1 * cost[3:]).sum())


@EVERY_ARCH
def test_mrt_rescoring_encodes_each_source_once_and_equals_the_full_teacher_forced_pass(arch):
    """Encoding each source once (states repeated per candidate) and the output layer at real positions only
    give each candidate's log-probability as the plain forward over every padded position does."""
    from textgen.data.seqvocab import BOS, EOS
    from textgen.objectives.mrt import sequence_log_probs

    model, _ = setup("mrt", arch=arch)
    model.double().eval()
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5], [5]], [0, 1])
    candidates = [[4, 5], [5], [], [4, 4, 5], [5, 4]]
    owner = torch.tensor([0, 0, 0, 1, 1])
    with torch.no_grad():
        once = sequence_log_probs(model, batch.src, batch.src_lens, candidates, owner)
        for i, cand in enumerate(candidates):
            src = batch.src[owner[i] : owner[i] + 1]
            logp = model(src, batch.src_lens[owner[i] : owner[i] + 1], torch.tensor([[BOS] + cand])).log_softmax(-1)
            expected = logp[0, torch.arange(len(cand) + 1), torch.tensor(cand + [EOS])].sum()
            torch.testing.assert_close(once[i], expected)


def assert_one_candidate_mrt_is_weighted_xent(batch, arch, **objective):
    """One candidate per source makes q = 1 and the risk constant: MRT's gradient is w * XENT's (w = 0.3)."""
    model, mrt = setup("mrt", arch=arch, mrt=dict(xent_weight=0.3, **objective))
    _, xent = setup("xent", arch=arch)
    out = mrt(model, batch, step=0)
    assert out.logs["candidates"] == 1.0
    g_mrt = torch.autograd.grad(out.loss_sum, list(model.parameters()))
    g_xent = torch.autograd.grad(0.3 * xent(model, batch, step=0).loss_sum, list(model.parameters()))
    for a, b in zip(g_mrt, g_xent):
        torch.testing.assert_close(a, b)


@EVERY_ARCH
def test_mrt_with_one_candidate_is_weighted_xent_and_otherwise_moves_towards_better_candidates(arch):
    assert_one_candidate_mrt_is_weighted_xent(copies(4), arch=arch, candidates=1)
    model, many = setup("mrt", arch=arch, mrt=dict(candidates=6, xent_weight=0.0, reference=True))
    many.reward_fn = x_count
    out = many(model, copies(8), step=0)
    assert out.logs["candidates"] > 1 and out.loss_sum.requires_grad
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    with torch.no_grad():
        before = float(exact_expected_reward(model, copies(1)))
    for step in range(30):
        out = many(model, copies(8), step=step)
        opt.zero_grad()
        (out.loss_sum / out.ntokens).backward()
        opt.step()
    with torch.no_grad():
        assert float(exact_expected_reward(model, copies(1))) > before + 0.05  # lower risk = more x's


@EVERY_ARCH
def test_mrt_beam_candidates_are_the_samples_then_the_beam_n_best_and_beam_one_alone_is_weighted_xent(arch):
    """objective.mrt.beam adds the n-best of an eval-mode beam search of that width after the samples,
    deduplicated; the beam's best as the only candidate leaves the risk constant: the gradient is w * XENT's."""
    from textgen.decode.search import beam_search
    from textgen.errors import UserError

    batch = collate([[4, 5, 6], [7, 8]], [[4, 5], [5]], [0, 1])
    model, both = setup("mrt", arch=arch, dropout=0.5, mrt=dict(candidates=4, beam=3))
    d = dataclasses.replace(both.ctx.recipe.decode, lenpen=0.6, no_repeat_ngram=1)  # not beam_search's defaults
    both.ctx = dataclasses.replace(both.ctx, recipe=dataclasses.replace(both.ctx.recipe, decode=d))
    model.eval()  # what the candidates must come from: dropout off
    torch.manual_seed(1)
    sampled = greedy_or_sample(
        model,
        batch.src,
        batch.src_lens,
        d.max_len_a,
        d.max_len_b,
        temperature=both.temperature,
        num_samples=4,
    ).tokens
    search = dict(lenpen=d.lenpen, max_len_a=d.max_len_a, max_len_b=d.max_len_b, no_repeat_ngram=d.no_repeat_ngram)
    nbest = beam_search(model, batch.src, batch.src_lens, beam=3, nbest=3, **search).tokens
    assert nbest != beam_search(model, batch.src, batch.src_lens, beam=3, nbest=3, max_len_b=d.max_len_b).tokens
    assert all(len(n) == 3 for n in nbest)
    expected = [[list(c) for c in dict.fromkeys(map(tuple, s + n))] for s, n in zip(sampled, nbest, strict=True)]
    model.train()
    torch.manual_seed(1)
    assert both.candidates(model, batch) == expected and model.training  # back in training mode
    model.eval()
    torch.manual_seed(1)
    assert both.candidates(model, batch) == expected and not model.training  # and an eval model stays in eval
    _, beam_only = setup("mrt", arch=arch, mrt=dict(candidates=0, beam=3))
    beam_only.ctx = dataclasses.replace(beam_only.ctx, recipe=dataclasses.replace(beam_only.ctx.recipe, decode=d))
    assert beam_only.candidates(model, batch) == nbest
    assert_one_candidate_mrt_is_weighted_xent(batch, arch=arch, candidates=0, beam=1)
    for bad, message in (
        ({"candidates": 0}, "are both 0"),
        ({"beam": -1}, "objective.mrt.beam must be >= 0"),
        ({"candidates": -1, "beam": 2}, "objective.mrt.candidates must be >= 0"),
    ):
        with pytest.raises(UserError, match=message):
            setup("mrt", arch=arch, mrt=bad)


def test_ranking_loss_is_zero_when_the_order_and_margins_hold_and_averages_each_offsets_violations():
    from textgen.objectives.rank import ranking_loss

    owner = torch.tensor([0, 0, 0, 1, 1, 1])
    rewards = torch.tensor([0.2, 0.9, 0.5, 0.4, 0.4, 0.1])  # source 0 in reward order: 1, 2, 0; source 1: a tie
    ordered = torch.tensor([-3.0, -1.0, -2.0, -1.0, -1.0, -2.0])
    assert float(ranking_loss(ordered, rewards, owner, margin=0.5)) == 0.0  # gaps 1 >= 0.5, 2 >= 1.0
    # margins not met: source 0 offset 1 pairs (1, 2) and (2, 0), offset 2 pair (1, 0); source 1 tie makes no
    # pair, offset 1 (4, 5) and offset 2 (3, 5)
    scores = torch.tensor([-1.0, -1.2, -1.1, -1.0, -1.0, -1.05])
    m = 0.1
    hinge = lambda hi, lo, gap: max(0.0, scores[lo] - scores[hi] + gap * m)  # noqa: E731
    expected = (hinge(1, 2, 1) + hinge(2, 0, 1)) / 2 + hinge(1, 0, 2) + hinge(4, 5, 1) + hinge(3, 5, 2)
    assert float(ranking_loss(scores, rewards, owner, m)) == pytest.approx(float(expected))
    assert float(ranking_loss(scores, torch.full((6,), 0.3), owner, m)) == 0.0  # all tied: nothing to order


@EVERY_ARCH
def test_ranking_loss_gradient_equals_finite_differences(arch):
    """With every hinge active (a wide margin) the ranking loss of a fixed candidate set is smooth in the weights:
    autograd through the length-normalised rescoring must match central differences."""
    from textgen.objectives.mrt import sequence_log_probs
    from textgen.objectives.rank import ranking_loss

    model, _ = setup("rank", arch=arch)
    model.double()
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5], [5]], [0, 1])
    candidates = [[4, 5], [5], [], [4, 4, 5], [5, 4]]
    owner = torch.tensor([0, 0, 0, 1, 1])
    rewards = torch.tensor([0.1, 0.7, 0.4, 0.3, 0.9], dtype=torch.float64)
    lengths = torch.tensor([len(c) + 1 for c in candidates], dtype=torch.float64)

    def loss():
        logp = sequence_log_probs(model, batch.src, batch.src_lens, candidates, owner).double()
        return ranking_loss(logp / lengths**0.8, rewards, owner, margin=10.0)

    for weight in (model.proj.bias, next(model.encoder.parameters())):
        assert_gradient_is_finite_differences(loss, weight, 6, eps=1e-5)


@EVERY_ARCH
def test_the_ranking_objective_moves_towards_better_candidates_and_needs_two(arch):
    from textgen.errors import UserError

    model, rank = setup("rank", arch=arch, rank=dict(beam=4, candidates=4, xent_weight=0.0, margin=0.01))
    rank.reward_fn = x_count
    with torch.no_grad():
        before = float(exact_expected_reward(model, copies(1)))
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    for step in range(30):
        out = rank(model, copies(8), step=step)
        opt.zero_grad()
        (out.loss_sum / out.ntokens).backward()
        opt.step()
    assert out.logs["candidates"] > 2 and 0.0 <= out.logs["ordered"] <= 1.0
    with torch.no_grad():
        assert float(exact_expected_reward(model, copies(1))) > before + 0.05  # x's ranked up
    with pytest.raises(UserError, match="at least 2 candidates"):
        setup("rank", arch=arch, rank=dict(beam=1, candidates=0))


@EVERY_ARCH
def test_leave_one_out_groups_each_sources_own_samples(arch):
    """Rows are k samples of each source side by side: the baseline of a sample is its own source's other
    samples, so a source whose samples all earn 1 gets no push, whatever the other source earns."""
    model, objective = setup("reinforce", arch=arch, mixer=dict(baseline="loo", samples=3))
    objective.reward_fn = lambda hyp, ref: 1.0 if ref == "x" else float(len(hyp.split()))
    objective.ctx = dataclasses.replace(objective.ctx, references=["x", "y y"])
    batch = collate([[4, 5, 6], [7, 8]], [[4], [5, 5]], [0, 1])
    seen = []
    original = objective.advantage

    def spy(model, seg, roll, reward):
        seen.append((seg.batch.index[seg.rows].tolist(), reward.tolist()))
        return original(model, seg, roll, reward)

    objective.advantage = spy
    torch.manual_seed(0)
    objective(model, batch, step=0)
    index, reward = seen[0]
    assert index == [0, 0, 0, 1, 1, 1]
    adv, _, _ = original(
        model,
        None,
        rollout(
            model,
            model.encode(batch.src[[0, 0, 0, 1, 1, 1]], batch.src_lens[[0, 0, 0, 1, 1, 1]]),
            batch.tgt_in[[0, 0, 0, 1, 1, 1], 0],
            torch.full((6,), MAX_LEN),
        ),
        torch.tensor(reward),
    )
    assert torch.equal(adv[:3, 0], torch.zeros(3))  # source 0: every sample earned 1
    r1 = torch.tensor(reward[3:])
    torch.testing.assert_close(adv[3:, 0], r1 - (r1.sum() - r1) / 2)


@EVERY_ARCH
def test_scst_after_a_prefix_decodes_greedily_from_the_reference_prefix(arch):
    """At s > 0 the greedy baseline continues the same reference prefix, re-encoded in eval mode."""
    model, scst = setup("scst", arch=arch, dropout=0.5, mixer=dict(T=3, delta=1, xent_epochs=0, xent_weight=0.5))
    hyps = []
    scst.reward_fn = lambda hyp, ref: hyps.append(hyp) or 0.0
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5, 4], [5, 4, 5]], [0, 1])
    out = scst(model, batch, step=0)  # s = 2: the rollouts and the greedy decodes start after 2 reference tokens
    assert out.logs["s"] == 2 and len(hyps) == 4
    assert all(h.split()[:2] == p for h, p in zip(hyps, [["x", "y"], ["y", "x"]] * 2))
    model.eval()
    state = model.encode(batch.src, batch.src_lens)
    _, state = model.prefix(state, batch.tgt_in[:, :2])
    greedy = rollout(model, state, batch.tgt_in[:, 2], torch.full((2,), 1), sample=False)
    expected = [VOCAB.decode(p + strip_eos(t)) for p, t in zip([[4, 5], [5, 4]], greedy.tokens.tolist())]
    assert hyps[2:] == expected


def strip_eos(row):
    from textgen.decode.generate import strip

    return strip(row)


def write_cased_corpus(folder) -> str:
    """A tiny cased parallel corpus (target = source reversed) whose valid/test words all occur in training."""
    import random

    rng = random.Random(0)
    words = "The cat Sat ON a Mat Dog big".split()
    spec = []
    for split, n in (("train", 80), ("valid", 6), ("test", 6)):
        pairs = {tuple(rng.choice(words) for _ in range(rng.randint(2, 6))) for _ in range(n)}
        (folder / f"{split}.src").write_text("".join(" ".join(p) + "\n" for p in sorted(pairs)))
        (folder / f"{split}.tgt").write_text("".join(" ".join(reversed(p)) + "\n" for p in sorted(pairs)))
        spec.append(f"{folder}/{split}.src,{folder}/{split}.tgt")
    return ";".join(spec)


DATA_SETTINGS = {
    "words": ["data.tokenizer=word"],
    "lowercased words": ["data.tokenizer=word", "data.lowercase=true"],
    "sentencepiece": ["data.tokenizer=spm", "data.vocab_size=40"],
}


@pytest.fixture(params=list(DATA_SETTINGS))
def cased_recipe(request, tmp_path):
    from tests.conftest import write_reversal_recipe

    corpus = write_cased_corpus(tmp_path)
    path = write_reversal_recipe(
        tmp_path / "cased.toml", corpus, "cased", hidden=8, train={"max_tokens": 60, "valid_metric": "bleu4"}
    )
    return path, DATA_SETTINGS[request.param]


def test_the_reference_as_a_candidate_earns_reward_one_and_cost_zero_under_every_data_setting(cased_recipe):
    """Outputs come out in the target vocabulary's normalisation (e.g. lowercased): every reward, MRT cost and
    validation score compares them with references normalised the same way, so a perfect output scores 1 / 100."""
    from textgen.config import load_recipe
    from textgen.tasks.seq2seq import Seq2SeqTask

    path, settings = cased_recipe
    task = Seq2SeqTask(load_recipe(str(path), settings))
    batch = task._batch(0)
    rows = torch.arange(batch.src.size(0))
    ctx = Context(task.recipe, task.vocabs.tgt, task.references, task.steps_per_epoch)
    for name in ("mixer", "scst", "reinforce"):
        for reward in ("bleu", "bleu-sampled", "rouge2"):
            cfg = objective_config(name, mixer=dict(reward=reward, baseline="none" if name != "scst" else "learned"))
            recipe = dataclasses.replace(task.recipe, objective=cfg)
            objective = OBJECTIVES[name](dataclasses.replace(ctx, recipe=recipe))
            for s in (0, 1):  # the rest of the reference (with its EOS) after a reference prefix of s tokens
                got = objective.rewards(batch, rows, s, batch.tgt_out[:, s:])
                torch.testing.assert_close(got, torch.ones_like(got), msg=f"{name} {reward} s={s}")
    cfg = objective_config("mrt", mrt=dict(reward="bleu", reference=True))
    mrt = OBJECTIVES["mrt"](dataclasses.replace(ctx, recipe=dataclasses.replace(task.recipe, objective=cfg)))
    references = [strip_eos(row) for row in batch.tgt_out.tolist()]
    assert mrt.costs(batch, rows, references).tolist() == pytest.approx([0.0] * len(references), abs=1e-9)

    from textgen.decode.dispatch import Decoded

    def perfect(model, decode_text, sources, cfg, **options):  # what a perfect model outputs for the sources
        return [Decoded([(decode_text(ids), 0.0)]) for ids in task.valid_tgt[: len(sources)]]

    import textgen.tasks.seq2seq

    original, textgen.tasks.seq2seq.decode_sources = textgen.tasks.seq2seq.decode_sources, perfect
    try:
        assert task.validate()["valid_bleu4"] == 100.0
    finally:
        textgen.tasks.seq2seq.decode_sources = original


@pytest.mark.parametrize("valid_beam", [1, 4])
def test_validation_decodes_with_train_valid_beam(tmp_path, monkeypatch, valid_beam):
    """The validation metric that picks the checkpoint comes from a search of train.valid_beam's width (1: greedy,
    whatever decode.beam is), one output per sentence and never MBR, on train.valid_subset's sentences."""
    import textgen.tasks.seq2seq
    from tests.conftest import write_reversal_recipe
    from textgen.config import load_recipe
    from textgen.decode.dispatch import Decoded
    from textgen.tasks.seq2seq import Seq2SeqTask

    train = {"max_tokens": 60, "valid_metric": "bleu4", "valid_beam": valid_beam, "valid_subset": 3}
    path = write_reversal_recipe(tmp_path / "r.toml", write_cased_corpus(tmp_path), "cased", hidden=8, train=train)
    sets = ["decode.beam=2", "decode.nbest=2", "decode.mbr.samples=8", "decode.max_len_b=7"]
    task = Seq2SeqTask(load_recipe(str(path), sets))
    searches = []

    def record(model, decode_text, sources, cfg, **options):
        searches.append((cfg.beam, cfg.nbest, cfg.mbr.samples, cfg.max_len_b, len(sources)))
        return [Decoded([("x", 0.0)]) for _ in sources]

    monkeypatch.setattr(textgen.tasks.seq2seq, "decode_sources", record)
    task.validate()
    assert searches == [(valid_beam, 1, 0, 7, 3)]  # the recipe's length limit kept


def test_eval_scores_a_lowercased_model_against_lowercased_references(cli, tmp_path, monkeypatch):
    """`textgen eval` normalises the references as the checkpoint's target vocabulary does."""
    import json

    from tests.conftest import write_reversal_recipe

    corpus = write_cased_corpus(tmp_path)
    recipe = write_reversal_recipe(tmp_path / "lc.toml", corpus, "lc", hidden=8, train={"max_steps": 1})
    trained = cli("train", "-r", recipe, "--set", "data.lowercase=true", "-o", "lc.pt")
    assert trained.code == 0, trained.err
    pairs = dict(zip(open(tmp_path / "test.src").read().splitlines(), open(tmp_path / "test.tgt").read().splitlines()))

    from textgen.api import load
    from textgen.decode.dispatch import Decoded

    vocabs = load(tmp_path / "lc.pt").vocabs
    targets = {tuple(vocabs.src.encode(s)): t for s, t in pairs.items()}

    def perfect(model, decode_text, sources, cfg, **options):  # the model's best: each target as its vocabulary has it
        return [Decoded([(decode_text(vocabs.tgt.encode(targets[tuple(ids)])), 0.0)]) for ids in sources]

    monkeypatch.setattr("textgen.decode.dispatch.decode_sources", perfect)
    result = cli("eval", "lc.pt", "--split", "test", "--metric", "bleu4", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["metrics"]["bleu4"] == 100.0


def test_bleu_sampled_scores_a_correct_stop_as_plain_bleu_does():
    """After a prefix of the whole reference the right continuation is EOS alone: it earns plain BLEU's 1, not a
    wrong word's 0. Stopping early is a wrong choice: it earns no more than a wrong sampled word, and less than a
    right word followed by the same early stop (which the brevity penalty already charges)."""
    from textgen.sampled_bleu import sampled_ngram_bleu

    ref = [10, 11, 12, 13, 10, 14, 15, 16, 17, 18]

    def plain(hyp):
        text = " ".join(map(str, hyp))
        return (
            sacrebleu.sentence_bleu(text, [" ".join(map(str, ref))], smooth_method="add-k", smooth_value=1).score / 100
        )

    assert sampled_ngram_bleu(ref, [], ref) == pytest.approx(plain(ref)) == pytest.approx(1.0)
    for s in (3, 9):
        early, wrong, right = (sampled_ngram_bleu(ref[:s], sample, ref) for sample in ([], [99], ref[s : s + 1]))
        assert early == 0.0 and early <= wrong < right, (s, early, wrong, right)
    assert sampled_ngram_bleu([], [], ref) == 0.0
    model, mixer = setup("mixer", mixer=dict(reward="bleu-sampled", baseline="none"))
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5, 4], [5, 4]], [0, 1])
    stop = torch.full((2, 1), EOS)
    assert mixer.rewards(batch, torch.tensor([0]), 3, stop).tolist() == pytest.approx([1.0])  # s = target length
    assert mixer.rewards(batch, torch.tensor([1]), 2, stop).tolist() == pytest.approx([1.0])


class Unreadable(list):
    """A training split's references that no objective may read (bleu-sampled takes them from the batch)."""

    def __getitem__(self, i):
        raise AssertionError(f"reference {i} was read from the corpus")


def spy_rollouts(monkeypatch):
    """Record every rollout the sequence-level objectives make: (sample, rows, tokens)."""
    import textgen.objectives.mixer as sequence_level

    calls, original = [], sequence_level.rollout

    def spy(model, state, prev, limit, sample=True, **kw):
        roll = original(model, state, prev, limit, sample=sample, **kw)
        calls.append((sample, prev.size(0), roll.tokens))
        return roll

    monkeypatch.setattr(sequence_level, "rollout", spy)
    return calls


def test_bleu_sampled_reads_the_references_from_the_batch_and_keeps_no_per_corpus_state(monkeypatch):
    """MIXER's paper reward needs only the batch: training indices it never saw, and a corpus it never reads."""
    from textgen.sampled_bleu import sampled_ngram_bleu

    model, mixer = setup("mixer", mixer=dict(reward="bleu-sampled", baseline="none", T=3, delta=2, xent_epochs=0))
    mixer.ctx = dataclasses.replace(mixer.ctx, references=Unreadable())
    before = {k: v for k, v in vars(mixer).items() if not k.startswith("_")}
    calls = spy_rollouts(monkeypatch)
    targets = [[4, 5, 4], [5, 4, 4, 5], [4]]
    batch = collate([[4, 5, 6], [7, 8], [6]], targets, [7, 10**9, 3])
    torch.manual_seed(0)
    out = mixer(model, batch, step=0)  # s = 1: every row goes on past the prefix (the last one to EOS)
    ((_, rows, tokens),) = calls
    expected = [sampled_ngram_bleu(t[:1], strip_eos(c), t) for t, c in zip(targets, tokens.tolist())]
    assert rows == 3 and out.logs["reward"] == pytest.approx(sum(expected) / 3)
    assert {k: v for k, v in vars(mixer).items() if not k.startswith("_")} == before  # nothing kept per reference


@EVERY_ARCH
def test_scst_decodes_each_sources_greedy_baseline_once_for_all_its_samples(monkeypatch, arch):
    """samples = k rolls out k rows per source but one greedy decode per source: each of the k advantages is
    its sample's reward minus that one greedy reward."""
    model, scst = setup("scst", arch=arch, mixer=dict(samples=3, T=1, delta=1, xent_epochs=0, xent_weight=0.0))
    scst.reward_fn = lambda hyp, ref: float(len(hyp.split()) + 3 * hyp.split().count("x"))
    calls = spy_rollouts(monkeypatch)
    seen, original = [], scst.advantage

    def spy(model, seg, roll, reward):
        seen.append((reward, original(model, seg, roll, reward)))
        return seen[-1][1]

    scst.advantage = spy
    batch = collate([[4, 5, 6], [7, 8], [6, 6, 8, 7], [5]], [[4, 5]] * 4, list(range(4)))
    torch.manual_seed(0)
    scst(model, batch, step=0)
    sampled, greedy = [c for c in calls if c[0]], [c for c in calls if not c[0]]
    assert [rows for _, rows, _ in sampled] == [12] and [rows for _, rows, _ in greedy] == [4]
    model.eval()
    expected = greedy_or_sample(model, batch.src, batch.src_lens, 0.0, MAX_LEN).tokens
    assert [[strip_eos(t)] for t in greedy[0][2].tolist()] == expected
    base = torch.tensor([scst.reward_fn(VOCAB.decode(h[0]), "") for h in expected]).repeat_interleave(3)
    reward, (adv, _, logs) = seen[0]
    torch.testing.assert_close(adv[:, 0], reward - base)
    assert logs["greedy_reward"] == pytest.approx(float(base.mean()))


@pytest.mark.parametrize("name", list(OBJECTIVES))
@EVERY_ARCH
def test_every_objective_is_registered_by_name_and_declares_the_logs_it_reports(name, arch):
    """OBJECTIVES and the recipe's objective.name choices are one list; log_columns (metrics.csv's columns for a
    run of the objective) are exactly the keys a scheduled step logs."""
    assert sorted(OBJECTIVES) == sorted(CHOICES["objective.name"])
    model, objective = setup(name, mixer=dict(T=2, delta=1, xent_epochs=0), mrt=dict(candidates=2), e2e=dict(k=3))
    out = objective(model, copies(4), step=0)
    assert set(out.logs or {}) == set(objective.log_columns)
