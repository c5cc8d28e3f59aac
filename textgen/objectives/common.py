"""The token-level losses objectives are built from, and the checks several share."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from textgen.data.seqvocab import PAD
from textgen.errors import UserError


def token_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Summed cross-entropy over non-PAD targets; logits (..., V), targets (...)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        targets.reshape(-1),
        ignore_index=PAD,
        reduction="sum",
        label_smoothing=smoothing,
    )


def output_loss(model, features: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """token_loss of features (B, T, H) with the output layer applied at the non-PAD positions only: the
    projection and its softmax, the largest cost of a step, skip the batch's padding."""
    keep = targets != PAD
    return token_loss(model.logits(features[keep]), targets[keep], smoothing)


def teacher_forced_loss(model, batch, smoothing: float = 0.0) -> torch.Tensor:
    """Summed cross-entropy of the whole target under teacher forcing: XENT's loss."""
    return output_loss(model, model.features(batch.src, batch.src_lens, batch.tgt_in), batch.tgt_out, smoothing)


def check_sample_temperature(cfg) -> float:
    """[objective]'s sample_temperature, checked by objectives that sample when they are built, not hours later
    at the first sampled step."""
    if cfg.sample_temperature <= 0:
        raise UserError(f"objective.sample_temperature must be > 0, got {cfg.sample_temperature}")
    return cfg.sample_temperature
