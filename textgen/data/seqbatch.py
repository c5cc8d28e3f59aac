"""Seq2seq batching: token-budget batches of similar length, padded tensors with BOS/EOS framing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


def collate_arrays(sources: list[np.ndarray], targets: list[np.ndarray], index: list[int]) -> Batch:
    """`collate` for id arrays (rows of memory-mapped splits): the same padded tensors, built in numpy."""
    n = len(sources)
    src_lens = np.fromiter(map(len, sources), dtype=np.int64, count=n)
    tgt_lens = np.fromiter(map(len, targets), dtype=np.int64, count=n)
    src = np.full((n, int(src_lens.max())), PAD, dtype=np.int64)
    tgt_in = np.full((n, int(tgt_lens.max()) + 1), PAD, dtype=np.int64)
    tgt_out = np.full_like(tgt_in, PAD)
    for i, (s, t) in enumerate(zip(sources, targets)):
        src[i, : len(s)] = s
        tgt_in[i, 0] = BOS
        tgt_in[i, 1 : len(t) + 1] = t
        tgt_out[i, : len(t)] = t
        tgt_out[i, len(t)] = EOS
    as_tensor = torch.from_numpy
    return Batch(as_tensor(src), as_tensor(src_lens), as_tensor(tgt_in), as_tensor(tgt_out), torch.tensor(index))


def budget_boundaries(sizes: np.ndarray, max_tokens: int) -> np.ndarray:
    """Where batches start in a sequence of example sizes (padded cost per example), plus the end.

    The greedy rule: an example joins the current batch while (longest size so far) x (examples + 1)
    stays within `max_tokens`; a batch has at least one example. Worked out per run of equal sizes, so
    the cost grows with the number of distinct lengths and batches, not of examples."""
    change = np.flatnonzero(np.diff(sizes)) + 1
    starts = np.concatenate(([0], change)).tolist()
    counts = np.diff(np.concatenate((starts, [sizes.size]))).tolist()
    values = sizes[starts].tolist() if sizes.size else []
    bounds, pos, filled, longest = [0], 0, 0, 0
    for value, remaining in zip(values, counts):
        while remaining:
            if filled and max(longest, value) * (filled + 1) > max_tokens:
                bounds.append(pos)
                filled, longest = 0, 0
            longest = max(longest, value)
            take = min(remaining, max(max_tokens // longest - filled, 1))
            filled, pos, remaining = filled + take, pos + take, remaining - take
    if filled:
        bounds.append(pos)
    return np.asarray(bounds, dtype=np.int64)


class BatchPlan:
    """Token-budget batches over examples of given lengths: the sort, boundaries and one draw of batches.

    Examples are sorted by (source length, target length); batch boundaries depend only on that sorted
    length sequence, so they are computed once and every draw has the same number of batches of the
    same shapes. A draw with a generator breaks length ties at random and shuffles the batch order."""

    def __init__(self, src_lens: np.ndarray, tgt_lens: np.ndarray, max_tokens: int):
        src_lens, tgt_lens = np.asarray(src_lens, dtype=np.int64), np.asarray(tgt_lens, dtype=np.int64)
        self.width = int(tgt_lens.max(initial=0)) + 1
        self.key = src_lens * self.width + tgt_lens  # orders like (src, tgt)
        keys = np.sort(self.key)  # the sorted lengths alone fix the boundaries, whatever breaks the ties
        self.bounds = budget_boundaries(np.maximum(keys // self.width, keys % self.width + 1), max_tokens)

    def __len__(self) -> int:
        return self.bounds.size - 1

    def draw(self, generator: torch.Generator | None = None) -> list[np.ndarray]:
        """The batches as arrays of example indices; with a generator, random ties and batch order."""
        if generator is None:
            order = np.argsort(self.key, kind="stable")
        else:  # ties in length broken by uniform noise, then by position (a stable sort)
            noise = torch.rand(self.key.size, generator=generator).numpy()  # multiples of 2^-24 in [0, 1)
            if self.key.max(initial=0) < 1 << 39:  # one int64 key: (length key, noise) -- twice lexsort's speed
                order = np.argsort(self.key << 24 | (noise * (1 << 24)).astype(np.int64), kind="stable")
            else:
                order = np.lexsort((noise, self.key))
        batches = np.split(order, self.bounds[1:-1])
        if generator is not None:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches


def token_budget_batches(
    src_lens: list[int], tgt_lens: list[int], max_tokens: int, generator: torch.Generator | None = None
) -> list[list[int]]:
    """Group examples of similar length so each padded batch holds at most `max_tokens` tokens.

    With a generator, ties are broken at random and the batch order is shuffled (training);
    without, order is deterministic (evaluation). Every example appears exactly once.
    """
    return [b.tolist() for b in BatchPlan(src_lens, tgt_lens, max_tokens).draw(generator)]
