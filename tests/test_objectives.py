"""Sequence-level objectives on models small enough to enumerate every output sequence."""

import dataclasses
import itertools

import pytest
import sacrebleu
import torch

from textgen.config import DecodeConfig, ModelConfig, ObjectiveConfig, Recipe, TrainConfig
from textgen.data.seqbatch import collate
from textgen.data.seqvocab import BOS, EOS, WordVocab
from textgen.decode.generate import rollout
from textgen.decode.search import allowed_log_probs
from textgen.metrics import sentence_bleu
from textgen.models.seq2seq import Seq2Seq
from textgen.objectives import OBJECTIVES
from textgen.objectives.common import Context
from textgen.objectives.schedules import dad_probability, mixer_s

VOCAB = WordVocab(("<pad>", "<unk>", "<s>", "</s>", "x", "y"))
MAX_LEN = 3  # outputs of at most 3 tokens including EOS: 13 sequences in all


def setup(name="xent", seed=0, **objective):
    torch.manual_seed(seed)
    recipe = Recipe(task="seq2seq", model=ModelConfig(layers=1, hidden=8, embed=6, dropout=0.0),
                    train=TrainConfig(), decode=DecodeConfig(max_len_a=0.0, max_len_b=MAX_LEN),
                    objective=ObjectiveConfig(name=name, **objective))
    model = Seq2Seq(9, len(VOCAB), recipe.model).train()
    ctx = Context(recipe, VOCAB, ["x y"] * 4, steps_per_epoch=10)
    return model, OBJECTIVES[name](ctx)


def copies(n, src=(4, 5, 6), tgt=(4, 5)):
    return collate([list(src)] * n, [list(tgt)] * n, [0] * n)


def x_count(hyp: str, ref: str) -> float:
    return hyp.split().count("x") / 2.0


def exact_expected_reward(model, batch):
    """Sum over every sequence of p(sequence) * reward, differentiable in the model's weights."""
    total = 0.0
    for n in range(MAX_LEN):
        for body in itertools.product([1, 4, 5], repeat=n):
            seq = list(body) + [EOS]
            state = model.encode(batch.src[:1], batch.src_lens[:1])
            prev, logp = torch.tensor([BOS]), 0.0
            for t, tok in enumerate(seq):
                logits, state = model.step(prev, state)
                step_logp = allowed_log_probs(logits, torch.tensor([t + 1 >= MAX_LEN]), renormalise=True)
                logp = logp + step_logp[0, tok]
                prev = torch.tensor([tok])
            total = total + logp.exp() * x_count(VOCAB.decode(list(body)), "")
    return total


def test_reinforce_gradient_matches_exact_gradient_of_expected_reward():
    model, objective = setup("reinforce", baseline="none")
    objective.reward_fn = x_count
    batch = copies(1)
    exact = torch.autograd.grad(exact_expected_reward(model, batch), list(model.parameters()), allow_unused=True)
    exact = torch.cat([g.flatten() for g in exact if g is not None])
    torch.manual_seed(1)
    n = 6000
    out = objective(model, copies(n), step=0)
    estimate = torch.autograd.grad(-out.loss_sum / n, list(model.parameters()), allow_unused=True)
    estimate = torch.cat([g.flatten() for g, e in zip(estimate, exact) if g is not None])
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


def test_learned_baseline_reduces_gradient_variance():
    model, objective = setup("reinforce", baseline="learned")
    objective.reward_fn = x_count
    opt = torch.optim.SGD(objective.baseline.parameters(), lr=0.5)
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


def test_baseline_loss_sends_no_gradient_into_the_decoder():
    model, objective = setup("reinforce", baseline="learned")
    objective.reward_fn = x_count
    batch = copies(8)
    state = model.encode(batch.src, batch.src_lens)
    roll = rollout(model, state, batch.tgt_in[:, 0], torch.full((8,), MAX_LEN))
    reward = torch.rand(8)
    adv, baseline_loss, _ = objective.advantage(model, state, None, None, roll, reward, None, None)
    assert baseline_loss.requires_grad and not adv.requires_grad
    baseline_loss.backward()
    assert all(p.grad is None for p in model.parameters())
    assert objective.baseline.weight.grad is not None and objective.baseline.weight.grad.abs().sum() > 0


def test_scst_advantage_is_sample_reward_minus_greedy_reward():
    model, scst = setup("scst", mixer_T=4, mixer_delta=4, mixer_xent_epochs=0, mixer_epochs_per_stage=1,
                        xent_weight=0.0)
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


def test_dad_with_p_zero_equals_xent():
    model, dad = setup("dad", dad_max_p=0.0)
    _, xent = setup("xent")
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5, 4], [5]], [0, 1])
    a, b = dad(model, batch, step=50), xent(model, batch, step=50)
    torch.testing.assert_close(a.loss_sum, b.loss_sum, rtol=1e-6, atol=1e-6)
    ga = torch.autograd.grad(a.loss_sum, list(model.parameters()))
    gb = torch.autograd.grad(b.loss_sum, list(model.parameters()))
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert a.ntokens == b.ntokens


def test_dad_with_p_one_feeds_predictions():
    model, dad = setup("dad", dad_max_p=1.0, dad_ramp_epochs=1.0)
    _, xent = setup("xent")
    batch = collate([[4, 5, 6]], [[4, 5, 4, 5]], [0])
    assert not torch.allclose(dad(model, batch, step=100).loss_sum, xent(model, batch, step=100).loss_sum)


def test_mixer_with_s_equal_T_is_xent_exactly():
    model, mixer = setup("mixer", mixer_T=25, mixer_xent_epochs=5)
    _, xent = setup("xent")
    batch = collate([[4, 5, 6], [7, 8]], [[4, 5, 4], [5]], [0, 1])
    assert torch.equal(mixer(model, batch, step=3).loss_sum, xent(model, batch, step=3).loss_sum)


def test_mixer_schedule_steps_as_specified():
    cfg = ObjectiveConfig(mixer_T=25, mixer_delta=3, mixer_xent_epochs=25, mixer_epochs_per_stage=5)
    assert [mixer_s(cfg, e) for e in (0, 24, 25, 29, 30, 34, 35, 70)] == [25, 25, 22, 22, 19, 19, 16, 0]
    assert mixer_s(dataclasses.replace(cfg, mixer_min_s=1), 200) == 1
    summarize = ObjectiveConfig(mixer_T=20, mixer_delta=2, mixer_xent_epochs=20, mixer_epochs_per_stage=5)
    assert [mixer_s(summarize, e) for e in (19, 20, 25, 30)] == [20, 18, 16, 14]
    assert mixer_s(cfg, 29.99) == 22  # progress is fractional: a stage ends only when its epochs are done
    finetune = ObjectiveConfig(mixer_T=12, mixer_delta=4, mixer_xent_epochs=0, mixer_epochs_per_stage=0.5, mixer_min_s=1)
    assert [mixer_s(finetune, e) for e in (0.0, 0.49, 0.5, 1.0, 1.6)] == [8, 8, 4, 1, 1]


def test_mixer_below_T_mixes_xent_prefix_and_reinforce():
    model, mixer = setup("mixer", mixer_T=3, mixer_xent_epochs=0, mixer_delta=2, mixer_epochs_per_stage=1)
    out = mixer(model, copies(4, tgt=(4, 5, 4)), step=0)  # epoch 0: s = 1
    assert out.logs["s"] == 1 and 0.0 <= out.logs["reward"] <= 1.0
    assert out.loss_sum.requires_grad and out.ntokens >= 4


def test_dad_schedule_rises():
    cfg = ObjectiveConfig(dad_max_p=0.25, dad_ramp_epochs=10)
    assert [dad_probability(cfg, e) for e in (0, 5, 10, 20)] == [0.0, 0.125, 0.25, 0.25]
    inv = ObjectiveConfig(dad_schedule="inverse_sigmoid", dad_k=10)
    values = [dad_probability(inv, e) for e in (0, 2, 4, 8)]
    assert values == sorted(values) and 0 < values[0] < 0.1 and values[-1] > 0.9


def test_e2e_with_all_reference_inputs_equals_xent_and_soft_inputs_carry_gradient():
    model, e2e = setup("e2e", mixer_T=25, mixer_xent_epochs=10, e2e_k=3)
    _, xent = setup("xent")
    batch = collate([[4, 5, 6]], [[4, 5, 4, 5]], [0])
    torch.testing.assert_close(e2e(model, batch, step=0).loss_sum, xent(model, batch, step=0).loss_sum)
    model, soft = setup("e2e", mixer_T=2, mixer_xent_epochs=0, mixer_delta=1, e2e_k=3)
    loss = soft(model, batch, step=100).loss_sum
    loss.backward()
    assert model.tgt_embed.weight.grad[4:].abs().sum() > 0


def test_sentence_bleu_reward_matches_sacrebleu():
    pairs = [("the cat sat on the mat", "the cat is on the mat"), ("a b", "a b c d"),
             ("completely different", "nothing in common here")]
    for hyp, ref in pairs:
        expected = sacrebleu.sentence_bleu(hyp, [ref], smooth_method="add-k", smooth_value=1).score / 100
        assert sentence_bleu(hyp, ref) == pytest.approx(expected)
    assert sentence_bleu("", "a b") == 0.0
