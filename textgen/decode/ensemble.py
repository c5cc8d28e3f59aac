"""Several seq2seq models with the same vocabularies, decoded as one (models.protocol.Seq2SeqDecoder).

Each step's distribution is the mean of the members' probabilities, log(1/N sum_i p_i(y)), as fairseq's
ensembles do: a mixture is a proper distribution whatever the members' calibration, and a token one member
rules out stays possible if another favours it (averaging log-probabilities would veto it). The members may
be of different architectures (an LSTM next to a Transformer); their states travel together as a tuple, so
greedy, sampling, beam, MBR and forced scoring run on an ensemble through the same loop as on one model.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Ensemble(nn.Module):
    """Decoding and scoring only: training takes one model, so the objectives' methods are not offered."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.log_n = math.log(len(members))

    def _mixture(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """log of the mean of the members' probabilities, from their logits (..., V)."""
        return torch.logsumexp(torch.stack([x.float().log_softmax(-1) for x in logits]), 0) - self.log_n

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple:
        return tuple(m.encode(src, src_lens) for m in self.members)

    def step(self, prev: torch.Tensor, state: tuple) -> tuple[torch.Tensor, tuple]:
        steps = [m.step(prev, s) for m, s in zip(self.members, state)]
        return self._mixture([logits for logits, _ in steps]), tuple(s for _, s in steps)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self._mixture([m(src, src_lens, tgt_in) for m in self.members])

    def reorder_state(self, state: tuple, index: torch.Tensor, keep_source: bool = False) -> tuple:
        return tuple(m.reorder_state(s, index, keep_source) for m, s in zip(self.members, state))
