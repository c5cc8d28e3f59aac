"""Pure logit transforms for sampling: temperature, top-k, top-p; then a greedy choice or one categorical draw."""

from __future__ import annotations

import torch

from textgen.errors import UserError


def check_sampling_args(temperature: float, top_k: int, top_p: float) -> None:
    if temperature < 0:
        raise UserError(f"--temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k < 0:
        raise UserError(f"--top-k must be >= 0 (0 means no limit), got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise UserError(f"--top-p must be in (0, 1], got {top_p}")


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits of each row, set the rest to -inf (k=0: keep all)."""
    if k <= 0 or k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of tokens whose probability mass reaches p (nucleus sampling)."""
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # mass of strictly better tokens
    drop_sorted = mass_before >= p  # the top token always survives (mass_before = 0)
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One draw per row from probabilities (..., V), which need not sum to 1 → ids (...).

    By inverse CDF in float64: B uniforms for B rows, where torch.multinomial draws B*V exponential
    variates to take one sample per row (on a CPU at V = 8k, ~30x slower; it was a quarter of a MIXER
    step). Zero-probability tokens have empty intervals and are never drawn."""
    if probs.device.type == "mps":  # no float64 there
        return torch.multinomial(probs.reshape(-1, probs.size(-1)), 1, generator=generator).view(probs.shape[:-1])
    cdf = probs.reshape(-1, probs.size(-1)).double().cumsum(-1)  # (N, V)
    u = torch.rand(cdf.size(0), 1, dtype=torch.float64, device=cdf.device, generator=generator) * cdf[:, -1:]
    ids = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.size(-1) - 1)  # first index whose cdf exceeds u
    return ids.view(probs.shape[:-1])


def next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits (B, V) → token ids (B,). Temperature 0 is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = top_p_filter(top_k_filter(logits / temperature, top_k), top_p)
    probs = logits.float().softmax(dim=-1)
    return sample_categorical(probs, generator)
