"""Seq2seq batching: token-budget batches of similar length, padded tensors with BOS/EOS framing."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from textgen.data.seqvocab import BOS, EOS, PAD


@dataclass(frozen=True)
class Batch:
    src: torch.Tensor  # (B, S) padded source ids
    src_lens: torch.Tensor  # (B,)
    tgt_in: torch.Tensor  # (B, T) BOS + target
    tgt_out: torch.Tensor  # (B, T) target + EOS, PAD after
    index: torch.Tensor  # (B,) positions in the split, to restore order

    @property
    def ntokens(self) -> int:
        return int((self.tgt_out != PAD).sum())

    def to(self, device: torch.device) -> "Batch":
        """The batch on `device` (lengths too: they index and mask device tensors)."""
        if self.src.device == device:
            return self
        return Batch(
            *(t.to(device, non_blocking=True) for t in (self.src, self.src_lens, self.tgt_in, self.tgt_out, self.index))
        )


def pad(seqs: list[list[int]], value: int = PAD) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out  # (B, max_len)


def collate(sources: list[list[int]], targets: list[list[int]] | None, index: list[int]) -> Batch:
    src_lens = torch.tensor([len(s) for s in sources])
    if targets is None:
        empty = torch.zeros(len(sources), 0, dtype=torch.long)
        return Batch(pad(sources), src_lens, empty, empty, torch.tensor(index))
    tgt_in = pad([[BOS] + t for t in targets])
    tgt_out = pad([t + [EOS] for t in targets])
    return Batch(pad(sources), src_lens, tgt_in, tgt_out, torch.tensor(index))


def token_budget_batches(
    src_lens: list[int], tgt_lens: list[int], max_tokens: int, generator: torch.Generator | None = None
) -> list[list[int]]:
    """Group examples of similar length so each padded batch holds at most `max_tokens` tokens.

    With a generator, ties are broken at random and the batch order is shuffled (training);
    without, order is deterministic (evaluation). Every example appears exactly once.
    """
    n = len(src_lens)
    noise = torch.rand(n, generator=generator).tolist() if generator is not None else [0.0] * n
    order = sorted(range(n), key=lambda i: (src_lens[i], tgt_lens[i], noise[i]))
    batches, current, longest = [], [], 0
    for i in order:
        size = max(src_lens[i], tgt_lens[i] + 1)
        if current and max(longest, size) * (len(current) + 1) > max_tokens:
            batches.append(current)
            current, longest = [], 0
        current.append(i)
        longest = max(longest, size)
    if current:
        batches.append(current)
    if generator is not None:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches
