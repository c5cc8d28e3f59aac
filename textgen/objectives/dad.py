"""DAD (data as demonstrator / scheduled sampling): sometimes feed the model's own prediction.

Targets stay the reference; with probability p(step) each next input is the model's previous
prediction (argmax, or a sample) instead of the reference token. p = 0 is teacher forcing.
"""

from __future__ import annotations

import torch
from torch import nn

from textgen.data.seqvocab import PAD
from textgen.decode.sampling import sample_categorical
from textgen.errors import UserError
from textgen.objectives.base import Context, Loss
from textgen.objectives.common import token_loss
from textgen.objectives.schedules import feed_probability


class DataAsDemonstrator(nn.Module):
    """Settings: [objective.dad]."""

    log_columns = ("dad_p",)

    def __init__(self, ctx: Context):
        super().__init__()
        self.ctx = ctx
        self.cfg = ctx.recipe.objective.dad
        if self.cfg.schedule == "inverse_sigmoid" and self.cfg.k_updates < 1:
            raise UserError(
                f"objective.dad.k_updates must be >= 1 for the inverse sigmoid schedule, got {self.cfg.k_updates}"
            )

    def forward(self, model, batch, *, step: int) -> Loss:
        p = feed_probability(self.cfg, step, self.ctx.steps_per_epoch)
        state = model.encode(batch.src, batch.src_lens)
        prev = batch.tgt_in[:, 0]
        logits_per_step = []
        for t in range(batch.tgt_in.size(1)):
            logits, state = model.step(prev, state)  # (B, V)
            logits_per_step.append(logits)
            if t + 1 < batch.tgt_in.size(1):
                prev = batch.tgt_in[:, t + 1]
                if p > 0:
                    guess = logits.detach()
                    pred = sample_categorical(guess.softmax(-1)) if self.cfg.sample else guess.argmax(-1)
                    use_model = (torch.rand(prev.shape, device=prev.device) < p) & (prev != PAD)
                    prev = torch.where(use_model, pred, prev)
        logits = torch.stack(logits_per_step, 1)  # (B, T, V)
        loss = token_loss(logits, batch.tgt_out, self.ctx.recipe.train.label_smoothing)
        return Loss(loss, batch.ntokens, batch.src.size(0), {"dad_p": p})
