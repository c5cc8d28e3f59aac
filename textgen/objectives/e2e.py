"""E2E: from step s on, the next input is the top-k softmax mixture of embeddings; gradients flow through it.

s follows MIXER's schedule (reference inputs for the first s steps), as the paper anneals E2E; while
s = T (the XENT epochs) every position is teacher-forced, as in MIXER, so those epochs are XENT exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from textgen.objectives.common import Context, teacher_forced_loss, token_loss
from textgen.objectives.schedules import mixer_s
from textgen.trainer import Loss


class EndToEnd(nn.Module):
    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.cfg = ctx.recipe.objective

    def forward(self, model, batch, *, step: int) -> Loss:
        s = mixer_s(self.cfg, self.ctx.epoch(step))
        smoothing = self.ctx.recipe.train.label_smoothing
        if s >= self.cfg.mixer_T:  # the XENT stage: plain teacher forcing over the whole target
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
            top, idx = logits.topk(self.cfg.e2e_k, dim=-1)  # (B, k)
            weights = top.softmax(-1)  # renormalised over the top k; differentiable
            soft = (weights.unsqueeze(-1) * model.tgt_embed(idx)).sum(1)  # (B, E)
        logits = torch.stack(logits_per_step, 1)
        return Loss(token_loss(logits, batch.tgt_out, smoothing), batch.ntokens, batch.src.size(0), {"s": s})
