"""Language-model library functions: data preparation, the loss, one training step, evaluation, loading."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from textgen import checkpoint
from textgen.config import Recipe, from_dict
from textgen.data.batching import batchify, num_windows, window
from textgen.data.corpus import load_text_corpus
from textgen.data.vocab import Vocab, build_vocab, vocab_from_dict
from textgen.errors import UserError
from textgen.models.lm import RNNLM, State, detach_state


@dataclass(frozen=True)
class LMData:
    vocab: Vocab
    ids: dict[str, torch.Tensor]  # split -> (N,) token ids
    sha256: dict[str, str]


def prepare_data(recipe: Recipe, vocab: Vocab | None = None, splits=("train", "valid", "test")) -> LMData:
    """Read the corpus and encode it; a given vocab (from a checkpoint) is reused as-is."""
    d = recipe.data
    corpus = load_text_corpus(d.corpus, d.holdout)
    vocab = vocab or build_vocab(d.level, corpus.splits, d.min_freq, d.max_vocab)
    ids = {}
    for split in splits:
        if split in corpus.splits:
            ids[split] = torch.tensor(vocab.encode(corpus.splits[split]), dtype=torch.long)
    return LMData(vocab, ids, corpus.sha256)


def loss_sum(model: RNNLM, x: torch.Tensor, y: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    """Summed next-token cross-entropy over a (B, T) window, and the state after it."""
    logits, state = model(x, state)  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
    return loss, state


def train_step(
    model: RNNLM,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    state: State,
    clip: float,
    loss_norm: str = "tokens",
) -> tuple[float, State]:
    """One truncated-BPTT update; returns the mean loss per token and the detached state to carry on.

    loss_norm "batch" sums the loss over time steps and averages over streams, as Zaremba et al.'s
    code does: the gradient is T times the per-token mean, which their lr 1 / clip 5 assume.
    """
    optimizer.zero_grad(set_to_none=True)
    loss, state = loss_sum(model, x, y, state)
    (loss / (y.numel() if loss_norm == "tokens" else y.size(0))).backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return loss.item() / y.numel(), detach_state(state)


@torch.no_grad()
def evaluate(model: RNNLM, ids: torch.Tensor, batch_size: int, bptt: int) -> float:
    """Mean next-token loss (nats) over a split, state carried through each stream."""
    was_training = model.training
    model.eval()
    streams = batchify(ids, batch_size, "evaluation split")
    state = model.init_state(batch_size)
    total, count = 0.0, 0
    for i in range(num_windows(streams, bptt)):
        x, y = window(streams, i, bptt)
        loss, state = loss_sum(model, x, y, state)
        total += loss.item()
        count += y.numel()
    model.train(was_training)
    return total / count


def metrics_from_loss(loss: float, level: str, prefix: str) -> dict[str, float]:
    out = {f"{prefix}_loss": round(loss, 5), f"{prefix}_ppl": round(math.exp(min(loss, 50.0)), 3)}
    if level == "char":
        out[f"{prefix}_bpc"] = round(loss / math.log(2), 5)
    return out


def load_model(path: Path) -> tuple[RNNLM, Vocab, Recipe, dict]:
    """Rebuild model, vocab and recipe from a checkpoint file alone."""
    payload = checkpoint.load(path, kind="lm")
    recipe = from_dict(payload["recipe"])
    vocab = vocab_from_dict(payload["vocab"])
    model = RNNLM(len(vocab), recipe.model)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError:
        raise UserError(f"checkpoint '{path}' weights do not match its recipe: it is damaged") from None
    model.eval()
    return model, vocab, recipe, payload
