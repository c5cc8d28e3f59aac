"""A ranking objective (BRIO, Liu et al. 2022): the model must score its own candidates in the order of their
reward, mixed with token-level XENT.

For each source the current model makes candidates without gradient (objective.rank.beam's n-best and
objective.rank.candidates samples, as MRT's: objectives/mrt.py candidate_sets), ordered by sentence reward
against the reference (best first). One teacher-forced pass gives each its length-normalised log-probability
s(y) = log p(y|x) / |y|^length_penalty. Every pair (i, j), i ranked above j by a strictly higher reward, pays
max(0, s(y_j) - s(y_i) + (j - i) * margin): candidates further apart in the order must score further apart. As
in BRIO the pairs of each offset j - i are averaged and the offsets summed, per source. Equal rewards make no
pair, but keep their places in the order (the first given first), so offsets count every candidate between two.
Loss = xent_weight * XENT + weight * ranking loss per sentence.

Why not MRT: MRT's risk moves probability mass between candidates by their expected cost, and a peaky posterior
makes beam search blind to the change (greedy gains, beam gains little). The ranking loss asks the beam's own
n-best, in the score beam search uses, to be ordered by the metric: the quantity beam search picks by.
"""

from __future__ import annotations

import torch
from torch import nn

from textgen.errors import UserError
from textgen.metrics import REWARDS
from textgen.objectives.base import Context, Loss
from textgen.objectives.common import check_sample_temperature, teacher_forced_loss
from textgen.objectives.mrt import candidate_rewards, candidate_sets, flatten_candidates, sequence_log_probs


def ranking_loss(scores: torch.Tensor, rewards: torch.Tensor, owner: torch.Tensor, margin: float) -> torch.Tensor:
    """Sum over sources of sum over offsets d of the mean, over the pairs (i, i + d) of the source's candidates
    in reward order with reward_i > reward_{i+d}, of max(0, s_{i+d} - s_i + d * margin). Flat (N,) inputs; the
    order is by reward, best first, ties kept in input order (a tie makes no pair); differentiable in scores."""
    n = scores.numel()
    order = torch.argsort(-rewards, stable=True)
    order = order[torch.argsort(owner[order], stable=True)]  # by source, within it best first
    by_source = owner[order].contiguous()
    position = torch.empty_like(order)
    position[order] = torch.arange(n, device=order.device) - torch.searchsorted(by_source, by_source)  # in source
    gap = position.unsqueeze(0) - position.unsqueeze(1)  # gap[i, j] = pos_j - pos_i
    pairs = (owner.unsqueeze(1) == owner.unsqueeze(0)) & (rewards.unsqueeze(1) > rewards.unsqueeze(0)) & (gap > 0)
    hinge = (scores.unsqueeze(0) - scores.unsqueeze(1) + gap * margin).clamp(min=0)  # s_j - s_i + gap * margin
    i, j = pairs.nonzero(as_tuple=True)
    if i.numel() == 0:
        return scores.sum() * 0.0
    group = owner[i] * n + gap[i, j]  # (source, offset)
    count = scores.new_zeros(int(group.max()) + 1).index_add(0, group, torch.ones_like(hinge[i, j]))
    return (hinge[i, j] / count[group]).sum()


def best_scored_is_best(scores: torch.Tensor, rewards: torch.Tensor, owner: torch.Tensor, sources: int) -> float:
    """The share of sources whose highest-scoring candidate (the one beam search would prefer) has the best reward
    among their candidates: what the ranking loss drives to 1."""

    def per_source_max(values: torch.Tensor) -> torch.Tensor:
        return values.new_full((sources,), float("-inf")).scatter_reduce(0, owner, values, "amax")

    top = per_source_max(scores)
    best_of_top = per_source_max(torch.where(scores == top[owner], rewards, float("-inf")))
    return float((best_of_top == per_source_max(rewards)).float().mean())


class Rank(nn.Module):
    """Settings: [objective.rank]."""

    log_columns = ("loss_xent", "rank_loss", "candidates", "reward", "ordered")

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.cfg = ctx.recipe.objective.rank
        self.temperature = check_sample_temperature(ctx.recipe.objective)
        if self.cfg.candidates + self.cfg.beam < 2:
            raise UserError(
                "the ranking objective orders at least 2 candidates per source: make objective.rank.beam + "
                "objective.rank.candidates at least 2"
            )
        if self.cfg.reward not in REWARDS:
            raise UserError(f"objective.rank.reward must be one of {', '.join(REWARDS)}")
        self.reward_fn = REWARDS[self.cfg.reward]

    def forward(self, model, batch, *, step: int) -> Loss:
        c, B = self.cfg, batch.src.size(0)
        xent = teacher_forced_loss(model, batch, self.ctx.recipe.train.label_smoothing)
        sets = candidate_sets(model, batch, self.ctx.recipe.decode, c.candidates, c.beam, self.temperature, False)
        flat, owner = flatten_candidates(sets, batch.src.device)
        rewards = candidate_rewards(self.ctx, self.reward_fn, batch, owner, flat)
        lengths = torch.tensor([len(y) + 1 for y in flat], device=batch.src.device, dtype=torch.float)
        scores = sequence_log_probs(model, batch.src, batch.src_lens, flat, owner) / lengths**c.length_penalty
        loss = ranking_loss(scores, rewards, owner, c.margin)
        # per sentence; the trainer divides by tokens, so scale by the mean tokens per sentence (as MRT's risk)
        total = c.xent_weight * xent + c.weight * loss * self.ctx.mean_target_tokens
        logs = {
            "loss_xent": float(xent.detach()) / batch.ntokens,
            "rank_loss": float(loss.detach()) / B,
            "candidates": len(flat) / B,
            "reward": float(rewards.mean()),
            "ordered": best_scored_is_best(scores.detach(), rewards, owner, B),
        }
        return Loss(total, batch.ntokens, B, logs)
