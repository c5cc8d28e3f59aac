"""Objective schedules as pure functions of training progress (saved implicitly: progress is the step)."""

from __future__ import annotations

import math

from textgen.config import ObjectiveConfig


def dad_probability(cfg: ObjectiveConfig, step: int, steps_per_epoch: int) -> float:
    """Probability of feeding the model's own prediction instead of the reference (DAD) at update `step`.

    linear: rises from 0 to dad_max_p over dad_ramp_epochs. inverse_sigmoid: Bengio et al. (2015)'s
    decay of the truth, eps_i = k / (k + exp(i / k)) with i the update count, so p = 1 - eps_i
    = sigmoid(i / k - ln k): k sets both where the curve sits (p = 1/2 at i = k ln k) and how slowly
    it rises (its width is k updates)."""
    if cfg.dad_schedule == "linear":
        return cfg.dad_max_p * min(1.0, step / steps_per_epoch / max(cfg.dad_ramp_epochs, 1e-9))
    k = cfg.dad_k_updates
    return 1.0 / (1.0 + math.exp(min(math.log(k) - step / k, 700.0)))


def mixer_s(cfg: ObjectiveConfig, epoch: float) -> int:
    """MIXER's XENT prefix length: T for xent_epochs, then T - delta, T - 2 delta, ... every stage.

    `epoch` is fractional training progress, so stages shorter than an epoch work too."""
    if epoch < cfg.mixer_xent_epochs:
        return cfg.mixer_T
    stage = 1 + int((epoch - cfg.mixer_xent_epochs) // max(cfg.mixer_epochs_per_stage, 1e-9))
    return max(cfg.mixer_min_s, cfg.mixer_T - cfg.mixer_delta * stage)
