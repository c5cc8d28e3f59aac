"""Attention over encoder states: Luong (general, dot) and Bahdanau (additive), padding masked."""

from __future__ import annotations

import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, kind: str, query_dim: int, memory_dim: int):
        super().__init__()
        self.kind = kind
        if kind == "general":
            self.key = nn.Linear(memory_dim, query_dim, bias=False)
        elif kind == "bahdanau":
            self.key = nn.Linear(memory_dim, query_dim, bias=False)
            self.query = nn.Linear(query_dim, query_dim, bias=True)
            self.v = nn.Linear(query_dim, 1, bias=False)
        elif memory_dim != query_dim:
            raise ValueError("dot attention needs equal query and memory sizes")

    def keys(self, memory: torch.Tensor) -> torch.Tensor:
        """Precompute per-source keys once per batch: (B, S, M) → (B, S, Q)."""
        return memory if self.kind == "dot" else self.key(memory)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, pad_mask: torch.Tensor):
        """query (B, T, Q), keys (B, S, Q), memory (B, S, M), pad_mask (B, S) True at padding.

        Returns context (B, T, M) and weights (B, T, S).
        """
        if self.kind == "bahdanau":
            energy = torch.tanh(self.query(query).unsqueeze(2) + keys.unsqueeze(1))  # (B, T, S, Q)
            scores = self.v(energy).squeeze(-1)  # (B, T, S)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(pad_mask.unsqueeze(1), torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)
        return torch.bmm(weights, memory), weights  # (B, T, M), (B, T, S)
