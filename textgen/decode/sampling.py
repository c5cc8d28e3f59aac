"""Pure logit transforms for sampling: temperature, top-k, top-p, epsilon; then a greedy choice or one categorical draw.

Draws come from a torch.Generator, or from `keyed_uniforms`: a counter-based generator whose draw for a row is a
pure function of (the row's key, the step), so a row samples the same tokens whatever else shares its batch."""

from __future__ import annotations

import hashlib

import numpy as np
import torch


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


def epsilon_filter(logits: torch.Tensor, epsilon: float) -> torch.Tensor:
    """Epsilon sampling's support (Hewitt et al. 2022): drop the tokens whose probability under softmax(logits) is
    below epsilon (set to -inf); the softmax of the result renormalises what is left (epsilon 0: keep all).

    The most likely token always survives, so a flat distribution with every p < epsilon keeps its argmax."""
    if epsilon <= 0.0:
        return logits
    probs = logits.float().softmax(dim=-1)
    drop = probs < epsilon
    drop.scatter_(-1, probs.argmax(dim=-1, keepdim=True), False)
    return logits.masked_fill(drop, float("-inf"))


_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)  # splitmix64's increment and multipliers, as signed int64
_MIX1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX2 = 0x94D049BB133111EB - (1 << 64)


def _signed(x: int) -> int:
    """x modulo 2**64 as a signed int64."""
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >> 63 else x


def _shr(x: torch.Tensor, k: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's >> is arithmetic)."""
    return (x >> k) & ((1 << (64 - k)) - 1)


def mix64(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 tensors (multiplication wraps modulo 2**64)."""
    x = (x ^ _shr(x, 30)) * _MIX1
    x = (x ^ _shr(x, 27)) * _MIX2
    return x ^ _shr(x, 31)


def _keys(seeds: list[int], count: int, device: torch.device | str) -> torch.Tensor:
    """(len(seeds), count) stream keys: key j of row i depends only on (seeds[i], j)."""
    base = mix64(torch.tensor([seed & ((1 << 63) - 1) for seed in seeds], dtype=torch.long, device=device))
    return mix64(base.unsqueeze(1) + torch.arange(count, dtype=torch.long, device=device) * _GOLDEN)


def row_keys(seed: int, count: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """`count` independent stream keys derived from `seed`: key j depends only on (seed, j)."""
    return _keys([seed], count, device)[0]


def source_keys(
    seed: int,
    sources: list[list[int]],
    count: int,
    device: torch.device | str = "cpu",
    repeats: list[int] | None = None,
) -> torch.Tensor:
    """(len(sources), count) stream keys: key j of a source depends only on (seed, the source's token ids, j), so a
    source samples the same outputs alone or in any batch, and different sources draw independently. `repeats[i]`
    counts the copies of source i earlier in the input (`repeat_counts`): a repeated source draws anew, while its
    first copy keeps the keys it has alone."""
    salt = seed.to_bytes(8, "little")
    repeats = repeats or [0] * len(sources)
    material = [np.asarray([*ids, -1 - r] if r else ids, "<i8").tobytes() for ids, r in zip(sources, repeats)]
    hashes = [hashlib.blake2b(m, key=salt, digest_size=8).digest() for m in material]
    return _keys([int.from_bytes(h, "little") for h in hashes], count, device)


def repeat_counts(sources: list[list[int]]) -> list[int]:
    """For each source, how many identical sources come before it in the input."""
    seen: dict[tuple[int, ...], int] = {}
    counts = []
    for ids in sources:
        counts.append(seen.get(tuple(ids), 0))
        seen[tuple(ids)] = counts[-1] + 1
    return counts


def keyed_uniforms(keys: torch.Tensor, step: int) -> torch.Tensor:
    """One float64 uniform in [0, 1) per key for this step: output `step` of splitmix64 seeded with the key.

    Counter-based: the draw of a row depends on its key and the step alone, never on the other rows of the
    batch or their number, so batched sampling equals sampling each row alone with the same keys."""
    x = mix64(keys + _signed((step + 1) * _GOLDEN))
    return _shr(x, 11).double() * (1.0 / (1 << 53))


def sample_categorical(
    probs: torch.Tensor, generator: torch.Generator | None = None, uniforms: torch.Tensor | None = None
) -> torch.Tensor:
    """One draw per row from probabilities (..., V), which need not sum to 1 → ids (...).

    By inverse CDF in float64: B uniforms for B rows, where torch.multinomial draws B*V exponential
    variates to take one sample per row (on a CPU at V = 8k, ~30x slower; it was a quarter of a MIXER
    step). Zero-probability tokens have empty intervals and are never drawn. `uniforms` (N,), in [0, 1), replaces
    the generator's draws (see keyed_uniforms)."""
    if probs.device.type == "mps" and uniforms is None:  # no float64 there
        return torch.multinomial(probs.reshape(-1, probs.size(-1)), 1, generator=generator).view(probs.shape[:-1])
    dtype = torch.float32 if probs.device.type == "mps" else torch.float64
    cdf = probs.reshape(-1, probs.size(-1)).to(dtype).cumsum(-1)  # (N, V)
    if uniforms is None:
        uniforms = torch.rand(cdf.size(0), dtype=dtype, device=cdf.device, generator=generator)
    u = uniforms.to(dtype).view(-1, 1) * cdf[:, -1:]
    ids = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.size(-1) - 1)  # first index whose cdf exceeds u
    return ids.view(probs.shape[:-1])


def next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    epsilon: float = 0.0,
    uniforms: torch.Tensor | None = None,
) -> torch.Tensor:
    """logits (B, V) → token ids (B,). Temperature 0 is greedy (argmax), as is any temperature too small to divide
    by in float32 (the limit of softmax(logits / T) as T → 0).

    The filters apply in the order temperature, epsilon, top-k, top-p; `uniforms` (B,) replace the generator."""
    if temperature < torch.finfo(torch.float32).tiny:
        return logits.argmax(dim=-1)
    if temperature < 1:  # dividing by T < 1 can overflow: shift first, so the best logit is 0 and the rest <= 0
        logits = logits - logits.max(dim=-1, keepdim=True).values
    logits = top_p_filter(top_k_filter(epsilon_filter(logits / temperature, epsilon), top_k), top_p)
    probs = logits.float().softmax(dim=-1)
    return sample_categorical(probs, generator, uniforms)
