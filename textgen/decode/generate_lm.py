"""Sample from a language model one token at a time, feeding each sample back as the next input."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from textgen.decode.driver import model_device
from textgen.decode.sampling import next_token
from textgen.models.protocol import LMNet


@torch.no_grad()
def generate(
    model: LMNet,
    prime: list[int],
    length: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> Iterator[int]:
    """Yield `length` token ids continuing `prime` (which must be non-empty)."""
    model.eval()
    device = model_device(model)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    state = model.init_state(1)
    logits, state = model(torch.tensor([prime], device=device), state)  # (1, P, V): the prime in one fused call
    logits = logits[:, -1]  # (1, V)
    for _ in range(length):
        token = next_token(logits, temperature, top_k, top_p, generator)  # (1,)
        yield int(token)
        logits, state = model(token.view(1, 1), state)
        logits = logits[:, -1]
