"""Transformers: a pre-norm encoder–decoder and a decoder-only (causal) language model.

Both decode incrementally with a per-layer key/value cache: a step attends to the cached keys and values of
the tokens before it, so decoding a token costs one position, not a re-run of the prefix. The cache is the
opaque decoder state of models.protocol; `reorder_state` selects its rows for beam search and sampling.
Attention is torch's scaled_dot_product_attention; positions are sinusoidal; embeddings are scaled by
sqrt(hidden) (Vaswani et al. 2017); the output layer is tied to the target embedding when model.tie_weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from textgen.config import ModelConfig
from textgen.data.seqvocab import PAD
from textgen.errors import UserError
from textgen.models.dropout import Dropout

Tensors = tuple[torch.Tensor, ...]


def check_shape(cfg: ModelConfig) -> None:
    """Refuse what a Transformer cannot take, and the recurrent-only settings it would otherwise silently ignore."""
    recurrent = {"cell": "lstm", "attention": "general", "input_feeding": False, "init_range": 0.0}
    for key, default in recurrent.items():
        if getattr(cfg, key) != default:
            raise UserError(f"model.{key} is a recurrent-model setting: a transformer takes no model.{key} (remove it)")
    if cfg.embed not in (0, cfg.hidden):
        raise UserError(f"a transformer's model.embed must be 0 or model.hidden ({cfg.hidden}), got {cfg.embed}")
    if cfg.hidden % cfg.heads:
        raise UserError(f"model.hidden ({cfg.hidden}) must be a multiple of model.heads ({cfg.heads})")


def sinusoids(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal position encodings (T,) → (T, dim): sin on even, cos on odd features."""
    rates = torch.exp(torch.arange(0, dim, 2, device=positions.device) * (-math.log(10000.0) / dim))  # (dim/2,)
    angles = positions.float().unsqueeze(1) * rates  # (T, dim/2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, :dim]  # (T, dim)


class Embedding(nn.Module):
    """Token embedding (N(0, hidden^-1/2)) scaled by sqrt(hidden), plus sinusoidal positions. `pad`: the padding
    id, whose row stays zero (seq2seq); None where every id is a real token (an LM's vocabulary has no PAD)."""

    def __init__(self, vocab: int, dim: int, dropout: float, pad: int | None = PAD):
        super().__init__()
        self.table = nn.Embedding(vocab, dim, padding_idx=pad)
        nn.init.normal_(self.table.weight, std=dim**-0.5)
        if pad is not None:
            with torch.no_grad():
                self.table.weight[pad].zero_()
        self.scale, self.drop = math.sqrt(dim), Dropout(dropout)

    def with_positions(self, emb: torch.Tensor, start: int) -> torch.Tensor:
        """Raw embeddings (B, T, E) of positions start.. → the first layer's inputs (B, T, E)."""
        pos = sinusoids(torch.arange(start, start + emb.size(1), device=emb.device), emb.size(-1))
        return self.drop(emb * self.scale + pos.to(emb.dtype))

    def forward(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        return self.with_positions(self.table(tokens), start)


class Attention(nn.Module):
    """Multi-head attention of queries (B, T, H) over keys and values already split into heads (B, h, S, d)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.p = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, H = x.shape
        return x.view(B, T, self.heads, H // self.heads).transpose(1, 2)  # (B, h, T, d)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(x).chunk(2, dim=-1)  # (B, S, H) each
        return self.split(k), self.split(v)

    def forward(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, causal: bool):
        """mask: bool, True where a query may look, broadcast to (B, h, T, S) (source padding); causal (with mask
        None): T new queries after S - T cached positions each see the cache and the new positions up to their own."""
        q = self.split(self.q(x))  # (B, h, T, d)
        T, S = q.size(2), k.size(2)
        if causal and 1 < T < S:  # a block after a cache: the lower triangle shifted by the cached positions
            mask = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(S - T)  # (T, S)
        p = self.p if self.training else 0.0
        is_causal = causal and 1 < T == S  # no cache: torch's own causal path, no mask to build
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=is_causal)  # (B, h, T, d)
        return self.out(out.transpose(1, 2).flatten(2))  # (B, T, H)


class Block(nn.Module):
    """Pre-norm layer: self-attention, cross-attention (decoder of an encoder–decoder), feed-forward."""

    def __init__(self, cfg: ModelConfig, cross: bool):
        super().__init__()
        dim, p = cfg.hidden, cfg.dropout
        self.self_norm, self.self_attn = nn.LayerNorm(dim), Attention(dim, cfg.heads, p)
        self.cross_norm = nn.LayerNorm(dim) if cross else None
        self.cross_attn = Attention(dim, cfg.heads, p) if cross else None
        self.ffn_norm = nn.LayerNorm(dim)
        width = cfg.ffn or 4 * dim
        self.ffn = nn.Sequential(nn.Linear(dim, width), nn.GELU(), Dropout(p), nn.Linear(width, dim))
        self.drop = Dropout(p)

    def forward(
        self,
        x: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        mask: torch.Tensor | None = None,
        cross: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, H). past: this layer's cached (keys, values) (B, h, S', d) for causal self-attention, None for
        the encoder (mask then masks source padding). cross: (keys, values, source mask) of the encoder output.
        Returns x and the (keys, values) of the tokens so far."""
        h = self.self_norm(x)
        k, v = self.self_attn.keys_values(h)
        if past is not None and past[0].size(2):  # (an empty cache is not concatenated: it would be fp32 under bf16)
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, h, S'+T, d)
        x = x + self.drop(self.self_attn(h, k, v, mask, causal=past is not None))
        if cross is not None:
            x = x + self.drop(self.cross_attn(self.cross_norm(x), *cross, causal=False))
        return x + self.drop(self.ffn(self.ffn_norm(x))), (k, v)


@dataclass(frozen=True)
class DecoderState:
    keys: Tensors  # per layer (B, h, t, d): the decoder's self-attention cache over the t target tokens so far
    values: Tensors
    cross_keys: Tensors  # per layer (B, h, S, d): the encoder output, projected once
    cross_values: Tensors
    src_mask: torch.Tensor  # (B, 1, 1, S) True at real source tokens


class TransformerSeq2Seq(nn.Module):
    """models.protocol.Seq2SeqModel: teacher forcing is one causal pass; `step` reads and extends the cache."""

    def __init__(self, src_vocab: int, tgt_vocab: int, cfg: ModelConfig):
        super().__init__()
        check_shape(cfg)
        self.cfg = cfg
        self.src_emb = Embedding(src_vocab, cfg.hidden, cfg.dropout)
        self.tgt_emb = Embedding(tgt_vocab, cfg.hidden, cfg.dropout)
        if cfg.share_embeddings:  # build_model has checked that the sizes agree
            self.tgt_emb.table = self.src_emb.table
        self.encoder = nn.ModuleList(Block(cfg, cross=False) for _ in range(cfg.layers))
        self.decoder = nn.ModuleList(Block(cfg, cross=True) for _ in range(cfg.layers))
        self.enc_norm, self.dec_norm = nn.LayerNorm(cfg.hidden), nn.LayerNorm(cfg.hidden)
        self.proj = nn.Linear(cfg.hidden, tgt_vocab, bias=not cfg.tie_weights)
        if cfg.tie_weights:
            self.proj.weight = self.tgt_emb.table.weight

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> DecoderState:
        B, S = src.shape
        src_mask = (torch.arange(S, device=src.device) < src_lens.unsqueeze(1)).view(B, 1, 1, S)
        x = self.src_emb(src)  # (B, S, H)
        for block in self.encoder:
            x, _ = block(x, None, src_mask)
        memory = self.enc_norm(x)
        cross = [block.cross_attn.keys_values(memory) for block in self.decoder]
        empty = memory.new_zeros(B, self.cfg.heads, 0, self.cfg.hidden // self.cfg.heads)
        n = len(self.decoder)
        return DecoderState((empty,) * n, (empty,) * n, *(tuple(kv) for kv in zip(*cross)), src_mask)

    def decode(self, emb: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """Raw target embeddings (B, T, H) of the next T positions → features (B, T, H) and the extended cache."""
        x = self.tgt_emb.with_positions(emb, state.keys[0].size(2))
        keys, values = [], []
        for i, block in enumerate(self.decoder):
            cross = (state.cross_keys[i], state.cross_values[i], state.src_mask)
            x, (k, v) = block(x, (state.keys[i], state.values[i]), cross=cross)
            keys.append(k)
            values.append(v)
        return self.dec_norm(x), replace(state, keys=tuple(keys), values=tuple(values))

    def tgt_embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.tgt_emb.table(tokens)

    def prefix(self, state: DecoderState, tgt_in: torch.Tensor) -> tuple[torch.Tensor, DecoderState]:
        return self.decode(self.tgt_embed(tgt_in), state)

    def features(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.prefix(self.encode(src, src_lens), tgt_in)[0]

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(src, src_lens, tgt_in))

    def step_embedded(self, emb: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        feat, state = self.decode(emb.unsqueeze(1), state)  # (B, 1, H)
        return feat.squeeze(1), state

    def step_features(self, prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        return self.step_embedded(self.tgt_embed(prev), state)

    def step(self, prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        feat, state = self.step_features(prev, state)
        return self.logits(feat), state

    @staticmethod
    def reorder_state(state: DecoderState, index: torch.Tensor, keep_source: bool = False) -> DecoderState:
        """Rows `index` of the cache; keep_source (rows keep their sources) leaves the encoder's keys as they are."""
        pick = lambda ts: tuple(t.index_select(0, index) for t in ts)  # noqa: E731
        state = replace(state, keys=pick(state.keys), values=pick(state.values))
        if keep_source:
            return state
        mask = state.src_mask.index_select(0, index)
        return replace(state, cross_keys=pick(state.cross_keys), cross_values=pick(state.cross_values), src_mask=mask)


@dataclass(frozen=True)
class LMState:
    keys: Tensors  # per layer (B, h, t, d)
    values: Tensors
    tokens: torch.Tensor  # (B, t) the tokens the cache holds: re-read when the context is full


class TransformerLM(nn.Module):
    """models.protocol.LMNet, decoder-only and causal. It sees model.context tokens: training windows are
    independent (detach_state starts the next one afresh), and reading past the context (evaluation across
    windows, long samples) re-reads the last context/2 tokens into a fresh cache and goes on from there."""

    def __init__(self, vocab_size: int, cfg: ModelConfig):
        super().__init__()
        check_shape(cfg)
        self.cfg = cfg
        if cfg.context < 2:
            raise UserError(
                f"a transformer language model needs a context (train.bptt) of at least 2, got {cfg.context}"
            )
        self.emb = Embedding(vocab_size, cfg.hidden, cfg.dropout, pad=None)  # every id of an LM vocabulary is a token
        self.blocks = nn.ModuleList(Block(cfg, cross=False) for _ in range(cfg.layers))
        self.norm = nn.LayerNorm(cfg.hidden)
        self.proj = nn.Linear(cfg.hidden, vocab_size, bias=not cfg.tie_weights)
        if cfg.tie_weights:
            self.proj.weight = self.emb.table.weight

    def init_state(self, batch_size: int) -> None:
        return None  # no context yet

    @staticmethod
    def detach_state(state: LMState | None) -> None:
        return None  # a training window is the whole context: the next one starts afresh

    def _run(self, tokens: torch.Tensor, state: LMState | None) -> tuple[torch.Tensor, LMState]:
        """tokens (B, T) after the cached ones (T + cached <= context) → logits (B, T, V) and the extended cache."""
        start = 0 if state is None else state.tokens.size(1)
        x = self.emb(tokens, start)  # (B, T, H)
        keys, values = [], []
        for i, block in enumerate(self.blocks):
            past = None if state is None else (state.keys[i], state.values[i])
            if past is None:  # an empty cache of the right shape, so the block takes the causal path
                past = (x.new_zeros(x.size(0), self.cfg.heads, 0, self.cfg.hidden // self.cfg.heads),) * 2
            x, (k, v) = block(x, past)
            keys.append(k)
            values.append(v)
        seen = tokens if state is None else torch.cat([state.tokens, tokens], dim=1)
        return self.proj(self.norm(x)), LMState(tuple(keys), tuple(values), seen)

    def forward(self, tokens: torch.Tensor, state: LMState | None) -> tuple[torch.Tensor, LMState]:
        """tokens (B, T) → logits (B, T, V), each position seeing the cached tokens and those before it."""
        context, outs = self.cfg.context, []
        while tokens.size(1):
            held = 0 if state is None else state.tokens.size(1)
            if held == context:  # full: keep the last half as context, re-read into a fresh cache
                _, state = self._run(state.tokens[:, context - context // 2 :], None)
                held = state.tokens.size(1)
            logits, state = self._run(tokens[:, : context - held], state)
            outs.append(logits)
            tokens = tokens[:, context - held :]
        return torch.cat(outs, dim=1), state
