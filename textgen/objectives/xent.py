"""XENT: teacher forcing, the whole target through the fused decoder in one call."""

from __future__ import annotations

from torch import nn

from textgen.objectives.base import Context, Loss
from textgen.objectives.common import teacher_forced_loss


class Xent(nn.Module):
    log_columns = ()

    def __init__(self, ctx: Context):
        super().__init__()
        self.smoothing = ctx.recipe.train.label_smoothing

    def forward(self, model, batch, *, step: int) -> Loss:
        return Loss(teacher_forced_loss(model, batch, self.smoothing), batch.ntokens, batch.src.size(0))
