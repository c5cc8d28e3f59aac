"""Free-running decoder rollouts for the sequence-level objectives (sampled or greedy, with log-probs)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from textgen.data.seqvocab import EOS, PAD
from textgen.decode.sampling import sample_categorical
from textgen.decode.search import allowed_log_probs
from textgen.errors import UserError


@dataclass
class Rollout:
    tokens: torch.Tensor  # (B, L) generated ids, PAD after EOS
    logp: torch.Tensor  # (B, L) log p(token) under the sampled (tempered) policy; differentiable with grad
    features: torch.Tensor  # (B, L, H) decoder attentional vectors h_t (for the baseline regressor)
    mask: torch.Tensor  # (B, L) 1.0 up to and including each row's EOS


def rollout(
    model, state, prev: torch.Tensor, limit: torch.Tensor, sample: bool = True, temperature: float = 1.0
) -> Rollout:
    """Run the decoder on its own outputs from `state`, feeding `prev` first, for at most limit[b] steps.

    Sampling draws from the tempered policy softmax(logits / temperature) and `logp` is that policy's
    log-probability, so REINFORCE's score-function gradient is unbiased for the distribution actually
    sampled (the untempered log-prob would bias it). What is trained is the tempered policy softmax(z / T):
    decoded at test time without T, the model is flatter (T < 1) or sharper (T > 1) than that policy."""
    if temperature <= 0:
        raise UserError(f"objective.sample_temperature must be > 0 for sampled rollouts, got {temperature}")
    B = prev.size(0)
    alive = torch.ones(B, dtype=torch.bool, device=prev.device)
    tokens, logps, feats, masks = [], [], [], []
    for t in range(int(limit.max())):
        feat, state = model.step_features(prev, state)  # (B, H)
        logits = model.logits(feat)
        if sample and temperature != 1.0:
            logits = logits / temperature
        logp = allowed_log_probs(logits, t + 1 >= limit, renormalise=True)  # (B, V)
        if sample:
            tok = sample_categorical(logp.detach().exp())
        else:
            tok = logp.detach().argmax(-1)
        masks.append(alive.float())
        tokens.append(torch.where(alive, tok, torch.full_like(tok, PAD)))
        logps.append(logp.gather(1, tok[:, None]).squeeze(1))
        feats.append(feat)
        alive = alive & (tok != EOS)
        prev = tok
        if not bool(alive.any()):
            break
    return Rollout(torch.stack(tokens, 1), torch.stack(logps, 1), torch.stack(feats, 1), torch.stack(masks, 1))


def strip(row: list[int]) -> list[int]:
    """Token ids up to (not including) EOS, without padding."""
    out = []
    for t in row:
        if t == EOS:
            break
        if t != PAD:
            out.append(t)
    return out
