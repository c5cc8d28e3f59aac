"""XENT: teacher forcing, the whole target through the fused decoder in one call; optionally with target-side word
dropout (Bowman et al. 2016), for tasks where a decoder can fit the targets' prior and ignore the source."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from textgen.data.seqvocab import PAD, UNK
from textgen.objectives.base import Context, Loss
from textgen.objectives.common import teacher_forced_loss


def drop_target_words(tgt_in: torch.Tensor, p: float) -> torch.Tensor:
    """tgt_in (B, T) with each input after the first (BOS) turned into UNK with probability p; padding is kept."""
    drop = torch.rand(tgt_in.shape, device=tgt_in.device) < p
    drop[:, 0] = False
    return tgt_in.masked_fill(drop & (tgt_in != PAD), UNK)


class Xent(nn.Module):
    log_columns = ()

    def __init__(self, ctx: Context):
        super().__init__()
        self.smoothing = ctx.recipe.train.label_smoothing
        self.word_dropout = ctx.recipe.train.word_dropout

    def forward(self, model, batch, *, step: int) -> Loss:
        if self.word_dropout and model.training:  # the targets (tgt_out) stay whole: only what the decoder reads
            batch = dataclasses.replace(batch, tgt_in=drop_target_words(batch.tgt_in, self.word_dropout))
        return Loss(teacher_forced_loss(model, batch, self.smoothing), batch.ntokens, batch.src.size(0))
