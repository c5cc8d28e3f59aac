"""E2E: from step s on, the next input is the top-k softmax mixture of embeddings; gradients flow through it.

s follows MIXER's schedule (reference inputs for the first s steps), as the paper anneals E2E; while
s = T (the XENT epochs) every position is teacher-forced, as in MIXER, so those epochs are XENT exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from textgen.objectives.base import Context, Loss
from textgen.objectives.common import teacher_forced_loss, token_loss
from textgen.objectives.schedules import xent_prefix_length


class EndToEnd(nn.Module):
    """Settings: [objective.e2e], and the schedule of [objective.mixer]."""

    log_columns = ("s",)

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.cfg, self.schedule = ctx.recipe.objective.e2e, ctx.recipe.objective.mixer

    def forward(self, model, batch, *, step: int) -> Loss:
        s = xent_prefix_length(self.schedule, self.ctx.epoch(step))
        smoothing = self.ctx.recipe.train.label_smoothing
        if s >= self.schedule.T:  # the XENT stage: plain teacher forcing over the whole target
            return Loss(teacher_forced_loss(model, batch, smoothing), batch.ntokens, batch.src.size(0), {"s": s})
        state = model.encode(batch.src, batch.src_lens)
        logits_per_step = []
        soft = None
        for t in range(batch.tgt_in.size(1)):
            if t < max(s, 1):
                feat, state = model.step_features(batch.tgt_in[:, t], state)
            else:
                feat, state = model.step_embedded(soft, state)
            logits = model.logits(feat)  # (B, V)
            logits_per_step.append(logits)
            top, idx = logits.topk(self.cfg.k, dim=-1)  # (B, k)
            weights = top.softmax(-1)  # renormalised over the top k; differentiable
            soft = (weights.unsqueeze(-1) * model.tgt_embed(idx)).sum(1)  # (B, E)
        logits = torch.stack(logits_per_step, 1)
        return Loss(token_loss(logits, batch.tgt_out, smoothing), batch.ntokens, batch.src.size(0), {"s": s})
