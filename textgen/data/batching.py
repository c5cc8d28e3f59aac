"""Language-model batching: one long token stream cut into B parallel streams, read in BPTT windows."""

from __future__ import annotations

import torch

from textgen.errors import UserError


def batchify(ids: torch.Tensor, batch_size: int, what: str = "corpus") -> torch.Tensor:
    """(N,) → (B, N // B): stream b is the b-th contiguous slice, so state can carry along it."""
    per_stream = ids.numel() // batch_size
    if per_stream < 2:
        raise UserError(
            f"the {what} has {ids.numel()} tokens, too few for {batch_size} streams: "
            "use a longer corpus or lower train.batch_size"
        )
    return ids[: per_stream * batch_size].view(batch_size, per_stream)  # (B, N/B)


def num_windows(streams: torch.Tensor, bptt: int) -> int:
    return (streams.size(1) - 1 + bptt - 1) // bptt


def window(streams: torch.Tensor, index: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Window `index`: inputs (B, T) and next-token targets (B, T) as int64 (streams may be stored narrower,
    e.g. memory-mapped uint16); the last window may be shorter."""
    start = index * bptt
    length = min(bptt, streams.size(1) - 1 - start)
    return streams[:, start : start + length].long(), streams[:, start + 1 : start + 1 + length].long()
