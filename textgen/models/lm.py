"""Recurrent language model: embed → RNN/LSTM/GRU stack → (tied) projection to the vocabulary.

models.protocol.LMNet: init_state, forward, detach_state; the state is (h, c) for an LSTM, h otherwise."""

from __future__ import annotations

import torch
from torch import nn

from textgen.config import ModelConfig
from textgen.errors import UserError
from textgen.models.dropout import Dropout

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class RNNLM(nn.Module):
    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        embed = cfg.embed or cfg.hidden
        if cfg.tie_weights and embed != cfg.hidden:
            raise UserError(f"model.tie_weights needs model.embed == model.hidden (got {embed} and {cfg.hidden})")
        self.cfg = cfg
        self.embedding = nn.Embedding(vocab_size, embed)
        self.drop = Dropout(cfg.dropout)
        self.rnn = CELLS[cfg.cell](
            embed,
            cfg.hidden,
            num_layers=cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.proj = nn.Linear(cfg.hidden, vocab_size)
        if cfg.init_range > 0:
            for p in self.parameters():
                nn.init.uniform_(p, -cfg.init_range, cfg.init_range)
        if cfg.tie_weights:
            self.proj.weight = self.embedding.weight

    def init_state(self, batch_size: int) -> State:
        h = self.proj.weight.new_zeros(self.cfg.layers, batch_size, self.cfg.hidden)  # (L, B, H)
        return (h, h.clone()) if self.cfg.cell == "lstm" else h

    def forward(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """tokens (B, T) → logits (B, T, V); the state carries on to the next window."""
        x = self.drop(self.embedding(tokens))  # (B, T, E)
        out, state = self.rnn(x, state)  # (B, T, H)
        return self.proj(self.drop(out)), state  # (B, T, V)

    @staticmethod
    def detach_state(state: State) -> State:
        """Cut the graph between BPTT windows: values carry on, gradients stop."""
        return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
