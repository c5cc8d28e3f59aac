"""XENT: teacher forcing, the whole target through the fused decoder in one call."""

from __future__ import annotations

from torch import nn

from textgen.objectives.common import Context, token_loss
from textgen.trainer import Loss


class Xent(nn.Module):
    def __init__(self, ctx: Context):
        super().__init__()
        self.smoothing = ctx.recipe.train.label_smoothing

    def forward(self, model, batch, *, step: int) -> Loss:
        logits = model(batch.src, batch.src_lens, batch.tgt_in)  # (B, T, V)
        return Loss(token_loss(logits, batch.tgt_out, self.smoothing), batch.ntokens, batch.src.size(0))
