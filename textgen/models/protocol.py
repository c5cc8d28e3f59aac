"""What decoding and the objectives may call on a model: the only way they reach an architecture.

The decoder state is opaque: search and objectives get it from `encode`, pass it to the step methods and
reorder it by row; only the model that made it looks inside (an LSTM's (h, c), a Transformer's KV cache).
Rows are batch rows: beam search keeps each sentence's K hypotheses on K rows, sampling its N draws on N rows.
Features are the vectors the output layer reads, (..., model.hidden) wide (MIXER's baseline regresses on them).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

State = Any  # owned by the model that made it


@runtime_checkable
class Seq2SeqDecoder(Protocol):
    """What search (greedy, sampling, beam, MBR) and scoring drive: a model, or an ensemble of models
    (decode/ensemble.py) whose state is its members' states."""

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> State:
        """Sources (B, S) padded with PAD, their lengths (B,) → the decoder state before the first target token."""

    def step(self, prev: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One decoder step: previous tokens (B,) → logits (B, V) and the next state."""

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V): what `score` reads."""

    def reorder_state(self, state: State, index: torch.Tensor, keep_source: bool = False) -> State:
        """The state of rows `index` (R,), in that order: selects, repeats (beam expansion, N samples per source)
        and permutes rows. keep_source: each new row has the same source as the old row at its position (beam
        search reordering within a sentence), so per-source tensors need not be copied."""


@runtime_checkable
class Seq2SeqModel(Seq2SeqDecoder, Protocol):
    """An encoder-decoder that every objective can train, besides decoding it."""

    def step_features(self, prev: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One decoder step to features (B, H): `step` without the output layer (rollouts keep the features)."""

    def step_embedded(self, emb: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One decoder step from an input embedding (B, E) instead of a token (E2E's mixture of embeddings)."""

    def tgt_embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Target token embeddings (..., E), the inputs `step_embedded` takes."""

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """The output layer: features (..., H) → logits (..., V)."""

    def prefix(self, state: State, tgt_in: torch.Tensor) -> tuple[torch.Tensor, State]:
        """Teacher-force the inputs (B, T) from `state`: features (B, T, H) and the state after the last input
        (MIXER and SCST continue from it; MRT scores candidates with it)."""

    def features(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced features (B, T, H) for target inputs (B, T): the XENT fast path."""


@runtime_checkable
class LMNet(Protocol):
    """A language model that BPTT training, evaluation and sampling can drive."""

    def init_state(self, batch_size: int) -> State:
        """The state before the first token of `batch_size` streams (a Transformer's: None, no context)."""

    def forward(self, tokens: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Tokens (B, T) → logits (B, T, V) and the state after them (the next window starts from it)."""

    def detach_state(self, state: State) -> State:
        """The state the next window starts from, cut from the graph: a recurrent model carries its values on
        (gradients stop); a Transformer, whose context is one window, starts afresh (None)."""
