"""Objective schedules as pure functions of training progress (saved implicitly: progress is the step)."""

from __future__ import annotations

import math

from textgen.config import ObjectiveConfig


def dad_probability(cfg: ObjectiveConfig, epoch: float) -> float:
    """Probability of feeding the model's own prediction instead of the reference (DAD)."""
    if cfg.dad_schedule == "linear":
        return cfg.dad_max_p * min(1.0, epoch / max(cfg.dad_ramp_epochs, 1e-9))
    k = cfg.dad_k
    return 1.0 - k / (k + math.exp(min(epoch, 50.0)))  # Bengio et al.'s inverse sigmoid decay of the truth


def mixer_s(cfg: ObjectiveConfig, epoch: float) -> int:
    """MIXER's XENT prefix length: T for xent_epochs, then T - delta, T - 2 delta, ... every stage.

    `epoch` is fractional training progress, so stages shorter than an epoch work too."""
    if epoch < cfg.mixer_xent_epochs:
        return cfg.mixer_T
    stage = 1 + int((epoch - cfg.mixer_xent_epochs) // max(cfg.mixer_epochs_per_stage, 1e-9))
    return max(cfg.mixer_min_s, cfg.mixer_T - cfg.mixer_delta * stage)
