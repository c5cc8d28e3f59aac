"""Objective schedules as pure functions of training progress (saved implicitly: progress is the step)."""

from __future__ import annotations

import math

from textgen.config import DadConfig, MixerConfig


def feed_probability(cfg: DadConfig, step: int, steps_per_epoch: int) -> float:
    """Probability of feeding the model's own prediction instead of the reference (DAD) at update `step`.

    linear: rises from 0 to max_p over ramp_epochs. inverse_sigmoid: Bengio et al. (2015)'s
    decay of the truth, eps_i = k / (k + exp(i / k)) with i the update count, so p = 1 - eps_i
    = sigmoid(i / k - ln k): k sets both where the curve sits (p = 1/2 at i = k ln k) and how slowly
    it rises (its width is k updates)."""
    if cfg.schedule == "linear":
        return cfg.max_p * min(1.0, step / steps_per_epoch / max(cfg.ramp_epochs, 1e-9))
    k = cfg.k_updates
    return 1.0 / (1.0 + math.exp(min(math.log(k) - step / k, 700.0)))


def xent_prefix_length(cfg: MixerConfig, epoch: float) -> int:
    """MIXER's XENT prefix length s: T for xent_epochs, then T - delta, T - 2 delta, ... every stage.

    `epoch` is fractional training progress, so stages shorter than an epoch work too."""
    if epoch < cfg.xent_epochs:
        return cfg.T
    stage = 1 + int((epoch - cfg.xent_epochs) // max(cfg.epochs_per_stage, 1e-9))
    return max(cfg.min_s, cfg.T - cfg.delta * stage)
