"""Encoder–decoder with attention: bi-LSTM encoder, LSTM decoder, Luong/Bahdanau attention.

models.protocol.Seq2SeqModel, what every decoder and objective calls; the teacher-forced `prefix` (and so
`features` and `forward`) runs the fused nn.LSTM over the whole target when the decoder has no input feeding
(each step then depends only on the reference prefix). DecoderState stays inside models/.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from textgen.config import ModelConfig
from textgen.data.seqvocab import PAD
from textgen.errors import UserError
from textgen.models.attention import Attention
from textgen.models.dropout import Dropout


@dataclass(frozen=True)
class DecoderState:
    h: torch.Tensor  # (L, B, H)
    c: torch.Tensor  # (L, B, H)
    feed: torch.Tensor  # (B, H) last attentional vector (input feeding)
    memory: torch.Tensor  # (B, S, H) encoder outputs
    keys: torch.Tensor  # (B, S, H) attention keys, computed once
    pad_mask: torch.Tensor  # (B, S) True at source padding


class Seq2Seq(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int, cfg: ModelConfig):
        super().__init__()
        if cfg.cell != "lstm":
            raise UserError('seq2seq models use model.cell = "lstm"')
        if cfg.hidden % 2:
            raise UserError(f"model.hidden must be even (two encoder directions of hidden/2), got {cfg.hidden}")
        embed, hidden = cfg.embed or cfg.hidden, cfg.hidden
        if cfg.tie_weights and embed != hidden:
            raise UserError(f"model.tie_weights needs model.embed == model.hidden (got {embed} and {hidden})")
        self.cfg = cfg
        self.drop = Dropout(cfg.dropout)
        self.src_embed = nn.Embedding(src_vocab, embed, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, embed, padding_idx=PAD)
        if cfg.share_embeddings:  # build_model has checked that the sizes agree
            self.tgt_embed = self.src_embed
        dropout = cfg.dropout if cfg.layers > 1 else 0.0
        self.encoder = nn.LSTM(embed, hidden // 2, cfg.layers, batch_first=True, bidirectional=True, dropout=dropout)
        feed = hidden if cfg.input_feeding else 0
        self.decoder = nn.LSTM(embed + feed, hidden, cfg.layers, batch_first=True, dropout=dropout)
        self.attention = Attention(cfg.attention, hidden, hidden)
        self.combine = nn.Linear(2 * hidden, hidden, bias=False)
        self.proj = nn.Linear(hidden, tgt_vocab)
        if cfg.tie_weights:
            self.proj.weight = self.tgt_embed.weight

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> DecoderState:
        """src (B, S) padded with PAD, src_lens (B,) → the decoder's initial state."""
        B, S = src.shape
        x = self.drop(self.src_embed(src))  # (B, S, E)
        packed = pack_padded_sequence(x, src_lens.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, c) = self.encoder(packed)
        memory, _ = pad_packed_sequence(out, batch_first=True, total_length=S)  # (B, S, H)
        L, half = self.cfg.layers, self.cfg.hidden // 2

        def join(s: torch.Tensor) -> torch.Tensor:  # (2L, B, H/2) → (L, B, H): both directions side by side
            return s.view(L, 2, B, half).permute(0, 2, 1, 3).reshape(L, B, 2 * half)

        pad_mask = torch.arange(S, device=src.device).unsqueeze(0) >= src_lens.unsqueeze(1)  # (B, S)
        feed = memory.new_zeros(B, self.cfg.hidden)
        return DecoderState(join(h), join(c), feed, memory, self.attention.keys(memory), pad_mask)

    def _attend(self, out: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """Decoder outputs (B, T, H) → attentional vectors tanh(W [context; h]) (B, T, H)."""
        context, _ = self.attention(out, state.keys, state.memory, state.pad_mask)  # (B, T, H)
        return torch.tanh(self.combine(torch.cat([context, out], dim=-1)))

    def features(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced attentional vectors (B, T, H) for target inputs (B, T)."""
        return self.prefix(self.encode(src, src_lens), tgt_in)[0]

    def prefix(self, state: DecoderState, tgt_in: torch.Tensor) -> tuple[torch.Tensor, DecoderState]:
        """Teacher-force the inputs (B, T): features (B, T, H) and the state after the last input."""
        if tgt_in.size(1) == 0:
            return state.memory.new_zeros(state.memory.size(0), 0, self.cfg.hidden), state
        if self.cfg.input_feeding:
            outs = []
            for t in range(tgt_in.size(1)):
                feat, state = self.step_features(tgt_in[:, t], state)
                outs.append(feat)
            return torch.stack(outs, dim=1), state
        out, (h, c) = self.decoder(self.drop(self.tgt_embed(tgt_in)), (state.h, state.c))  # (B, T, H): one fused call
        feats = self._attend(out, state)
        return feats, replace(state, h=h, c=c, feed=feats[:, -1])

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(self.drop(features))

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (B, T, V)."""
        return self.logits(self.features(src, src_lens, tgt_in))

    def step_features(self, prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        return self.step_embedded(self.tgt_embed(prev), state)

    def step_embedded(self, emb: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """One step from an input embedding (B, E): a token's, or E2E's mixture of top-k embeddings."""
        x = self.drop(emb).unsqueeze(1)  # (B, 1, E)
        if self.cfg.input_feeding:
            x = torch.cat([x, state.feed.unsqueeze(1)], dim=-1)  # (B, 1, E+H)
        out, (h, c) = self.decoder(x, (state.h, state.c))  # (B, 1, H)
        feat = self._attend(out, state).squeeze(1)  # (B, H)
        return feat, replace(state, h=h, c=c, feed=feat)

    def step(self, prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """One decoder step: previous tokens (B,) → logits (B, V) and the next state."""
        feat, state = self.step_features(prev, state)
        return self.logits(feat), state

    @staticmethod
    def reorder_state(state: DecoderState, index: torch.Tensor, keep_source: bool = False) -> DecoderState:
        """Select / repeat batch rows (beam expansion and reordering).

        keep_source: the caller guarantees each new row has the same source as the old row at its
        position (beam search permuting hypotheses within a sentence), so the encoder memory, keys
        and mask — the large tensors — are not copied."""
        h, c, feed = state.h.index_select(1, index), state.c.index_select(1, index), state.feed.index_select(0, index)
        if keep_source:
            return replace(state, h=h, c=c, feed=feed)
        return DecoderState(
            h,
            c,
            feed,
            state.memory.index_select(0, index),
            state.keys.index_select(0, index),
            state.pad_mask.index_select(0, index),
        )
