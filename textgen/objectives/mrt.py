"""Minimum risk training (Shen et al. 2016) mixed with label-smoothed XENT (Edunov et al. 2018).

For each source the current model makes a candidate set without gradient: objective.mrt.candidates
samples, drawn at objective.sample_temperature, and the n-best of a beam search of width
objective.mrt.beam under the recipe's decode settings (beam candidates as in Edunov et al.; taking both
is textgen's option), deduplicated, optionally with the reference added.
One batched teacher-forced pass rescores every candidate: log p(y|x) summed over its tokens and EOS.
q(y) = softmax(alpha * log p(y|x)) over the set, the model's distribution renormalised to the
candidates; the risk is sum q(y) * (1 - reward(y)). The gradient flows through q, not through the
search or the sampling, so no baseline is needed. Loss = w * XENT + (1 - w) * risk, the risk scaled
by the training set's mean target length so that the trainer's token normalisation leaves it (about) a
mean risk per sentence.

k = 1 candidate (one sample, or beam 1 alone) makes q = 1 and the risk a constant: MRT reduces to w * XENT.
"""

from __future__ import annotations

import torch
from torch import nn

from textgen.config import DecodeConfig
from textgen.data.seqvocab import BOS, EOS, PAD
from textgen.decode.generate import strip
from textgen.decode.search import beam_search, greedy_or_sample
from textgen.errors import UserError
from textgen.metrics import REWARDS
from textgen.objectives.base import Context, Loss
from textgen.objectives.common import check_sample_temperature, teacher_forced_loss


def sequence_log_probs(
    model, src: torch.Tensor, src_lens: torch.Tensor, candidates: list[list[int]], owner: torch.Tensor | None = None
) -> torch.Tensor:
    """log p(candidate + EOS | source) for each candidate, in one teacher-forced pass: (N,). Candidate i
    belongs to source owner[i] (default: source i); each source is encoded once and its state repeated,
    and the output layer runs only at the candidates' real positions, not their padding. In training mode
    a source's candidates so share one encoder dropout mask: q compares them under the same encoding."""
    state = model.encode(src, src_lens)
    if owner is not None:
        state = model.reorder_state(state, owner)
    T = max(len(c) for c in candidates) + 1
    tgt_in = torch.tensor([[BOS] + c + [PAD] * (T - 1 - len(c)) for c in candidates], device=src.device)  # (N, T)
    tgt_out = torch.tensor([c + [EOS] + [PAD] * (T - 1 - len(c)) for c in candidates], device=src.device)
    keep = tgt_out != PAD
    logits = model.logits(model.prefix(state, tgt_in)[0][keep])  # (real positions, V)
    logp = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(-1)
    picked = logp.gather(1, tgt_out[keep].unsqueeze(1)).squeeze(1)
    rows = torch.arange(len(candidates), device=src.device).unsqueeze(1).expand_as(keep)[keep]
    return picked.new_zeros(len(candidates)).index_add(0, rows, picked)


def expected_risk(
    seq_logp: torch.Tensor, owner: torch.Tensor, cost: torch.Tensor, sources: int, alpha: float
) -> torch.Tensor:
    """Sum over sources of sum_y q(y) cost(y), q = softmax(alpha * log p) within each source's candidates.

    seq_logp, owner (source index of each candidate) and cost are flat (N,); differentiable in seq_logp."""
    scaled = alpha * seq_logp
    top = scaled.new_full((sources,), float("-inf")).scatter_reduce(
        0, owner, scaled.detach(), "amax"
    )  # per-source max for a stable softmax
    weights = (scaled - top[owner]).exp()
    norm = scaled.new_zeros(sources).index_add(0, owner, weights)
    return (weights / norm[owner] * cost).sum()


@torch.no_grad()
def candidate_sets(
    model, batch, decode: DecodeConfig, samples: int, beam: int, temperature: float, reference: bool
) -> list[list[list[int]]]:
    """Per source, the distinct `samples` samples (at `temperature`) and beam-`beam` n-best of the current model
    (dropout off), in that order, plus the reference if asked: MRT's and the ranking objective's candidates."""
    B = batch.src.size(0)
    found: list[list[list[int]]] = [[] for _ in range(B)]
    was_training = model.training
    model.eval()
    try:
        if samples:
            sampled = greedy_or_sample(  # each source encoded once, sampled on `samples` rows
                model,
                batch.src,
                batch.src_lens,
                decode.max_len_a,
                decode.max_len_b,
                temperature=temperature,
                num_samples=samples,
            )
            for f, s in zip(found, sampled.tokens, strict=True):
                f.extend(s)
        if beam:
            searched = beam_search(
                model,
                batch.src,
                batch.src_lens,
                beam=beam,
                nbest=beam,
                lenpen=decode.lenpen,
                max_len_a=decode.max_len_a,
                max_len_b=decode.max_len_b,
                no_repeat_ngram=decode.no_repeat_ngram,
            )
            for f, s in zip(found, searched.tokens, strict=True):
                f.extend(s)
    finally:
        model.train(was_training)
    out = []
    for i in range(B):
        seen = dict.fromkeys(map(tuple, found[i]))  # distinct, in order
        if reference:
            seen.setdefault(tuple(strip(batch.tgt_out[i].tolist())), None)
        out.append([list(c) for c in seen])
    return out


def flatten_candidates(sets: list[list[list[int]]], device: torch.device) -> tuple[list[list[int]], torch.Tensor]:
    """candidate_sets' candidates in one list, and the batch row each belongs to: (N,) long."""
    owner = torch.tensor([i for i, cs in enumerate(sets) for _ in cs], dtype=torch.long, device=device)
    return [y for cs in sets for y in cs], owner


def candidate_rewards(ctx: Context, reward_fn, batch, owner: torch.Tensor, candidates: list[list[int]]) -> torch.Tensor:
    """reward_fn of each candidate (token ids) against the reference of its batch row owner[i]: (N,)."""
    index = batch.index[owner].tolist()
    return torch.tensor(
        [reward_fn(ctx.tgt_vocab.decode(c), ctx.reference(i)) for i, c in zip(index, candidates)],
        device=batch.src.device,
    )


class MinimumRisk(nn.Module):
    """Settings: [objective.mrt]."""

    log_columns = ("loss_xent", "risk", "candidates", "reward")

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.cfg = ctx.recipe.objective.mrt
        self.temperature = check_sample_temperature(ctx.recipe.objective)
        for key in ("candidates", "beam"):
            if getattr(self.cfg, key) < 0:
                raise UserError(
                    f"objective.mrt.{key} must be >= 0 (0: none of these candidates), got {getattr(self.cfg, key)}"
                )
        if self.cfg.candidates == self.cfg.beam == 0:
            raise UserError(
                "objective.mrt.candidates and objective.mrt.beam are both 0, so MRT has no candidates: "
                "set objective.mrt.candidates >= 1 or objective.mrt.beam >= 1"
            )
        if self.cfg.reward not in REWARDS:
            raise UserError(
                f"MRT's cost is 1 - a text reward: objective.mrt.reward must be one of {', '.join(REWARDS)}"
            )
        self.reward_fn = REWARDS[self.cfg.reward]

    def candidates(self, model, batch) -> list[list[list[int]]]:
        """Per source, its distinct samples and beam n-best (and the reference if asked): candidate_sets."""
        c = self.cfg
        return candidate_sets(model, batch, self.ctx.recipe.decode, c.candidates, c.beam, self.temperature, c.reference)

    def costs(self, batch, owner: torch.Tensor, candidates: list[list[int]]) -> torch.Tensor:
        """1 - reward of each candidate (token ids) against the reference of its batch row owner[i]."""
        return 1.0 - candidate_rewards(self.ctx, self.reward_fn, batch, owner, candidates)

    def forward(self, model, batch, *, step: int) -> Loss:
        B = batch.src.size(0)
        smoothing = self.ctx.recipe.train.label_smoothing
        xent = teacher_forced_loss(model, batch, smoothing)
        flat, owner = flatten_candidates(self.candidates(model, batch), batch.src.device)
        cost = self.costs(batch, owner, flat)
        seq_logp = sequence_log_probs(model, batch.src, batch.src_lens, flat, owner)
        risk = expected_risk(seq_logp, owner, cost, B, self.cfg.alpha)
        w = self.cfg.xent_weight
        # the risk is per sentence and the trainer divides by all ranks' tokens: scaling by the training set's
        # mean tokens per sentence (a constant, the same on every rank) keeps it a mean risk per sentence and
        # keeps N ranks of batch B equal to one process of batch N*B
        total = w * xent + (1.0 - w) * risk * self.ctx.mean_target_tokens
        logs = {
            "loss_xent": float(xent.detach()) / batch.ntokens,
            "risk": float(risk.detach()) / B,
            "candidates": len(flat) / B,
            "reward": float(1.0 - cost.mean()),
        }
        return Loss(total, batch.ntokens, B, logs)
