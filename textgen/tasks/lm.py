"""Language-model library functions: data preparation, the loss, one training step, evaluation, loading."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from textgen.config import ModelConfig, Recipe, recipe_from_checkpoint
from textgen.console import progress_bar
from textgen.data.batching import batchify, num_windows, window
from textgen.data.corpus import load_text_corpus
from textgen.data.prepared import MANIFEST
from textgen.data.prepared_text import prepare_text
from textgen.data.vocab import Vocab, build_vocab, vocab_from_dict
from textgen.decode.driver import model_device
from textgen.errors import UserError
from textgen.models import build_model, load_model_weights
from textgen.models.protocol import LMNet, State
from textgen.objectives.base import Loss
from textgen.train import checkpoint
from textgen.train.distributed import Dist, main_first


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


def model_config(recipe: Recipe) -> ModelConfig:
    """The settings the LM is built with. A Transformer's context is its training window, train.bptt: it is trained
    at no other positions, so model.context is 0 (meaning train.bptt) or equal to it."""
    m, bptt = recipe.model, recipe.train.bptt
    if m.arch != "transformer":
        return m
    if m.context not in (0, bptt):
        raise UserError(
            f"a transformer language model attends to its training window: model.context = {m.context} must equal "
            f"train.bptt = {bptt} (or be 0, which means train.bptt)"
        )
    return replace(m, context=bptt)


def loss_sum(model: LMNet, x: torch.Tensor, y: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
    """Summed next-token cross-entropy over a (B, T) window, and the state after it."""
    logits, state = model(x, state)  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
    return loss, state


class LMTask:
    """Truncated BPTT over B parallel streams; a recurrent model's hidden state carries (detached) from window to
    window, a Transformer starts each window afresh (its context is the window).

    Under data parallelism the corpus is cut into world x B streams and rank r trains rows r*B..r*B+B-1,
    so N ranks see exactly the windows of one process with batch N*B."""

    kind = "lm"
    best_metric = "valid_loss"
    higher_is_better = False
    notes: list[str] = []  # streams of text drop nothing and start from no other checkpoint
    start_step = 0

    def __init__(self, recipe: Recipe, vocab: Vocab | None = None, dist: Dist = Dist(), prepared: Path | None = None):
        t = recipe.train
        if t.word_dropout:
            raise UserError("train.word_dropout is for seq2seq recipes (the decoder's target inputs): remove it here")
        self.recipe = recipe
        data = main_first(  # rank 0 prepares; the others map its folder, or prepare where they cannot see it
            dist,
            lambda: prepare_text(recipe, prepared, vocab=vocab),  # a resumed run keeps its checkpoint's vocabulary
            lambda shared: shared if (shared.folder / MANIFEST).is_file() else prepare_text(recipe, vocab=vocab),
        )
        if vocab is not None and data.vocab != vocab:
            raise UserError(
                "the corpus gives a different vocabulary than the --resume checkpoint: resume on the same data"
            )
        self.vocab, self.sha256, self.valid_ids = data.vocab, data.sha256, data.ids("valid")
        streams = batchify(data.ids("train"), t.batch_size * dist.world, "training split")  # (world*B, N/(world*B))
        self.train = streams[dist.rank * t.batch_size : (dist.rank + 1) * t.batch_size].to(dist.device)
        if self.train.size(1) <= t.bptt:
            raise UserError(
                f"the training split has {self.train.size(1)} tokens per stream, fewer than one BPTT window of "
                f"{t.bptt}: use more text or lower train.bptt / train.batch_size"
            )
        self.steps_per_epoch = num_windows(self.train, t.bptt)
        self.model = build_model(model_config(recipe), "lm", len(self.vocab)).to(dist.device)
        self.state = self.model.init_state(t.batch_size)
        self.valid_columns = ["valid_loss", "valid_ppl"] + (["valid_bpc"] if recipe.data.level == "char" else [])

    def loss(self, step: int) -> Loss:
        index = step % self.steps_per_epoch
        if index == 0:  # each epoch starts the streams afresh
            self.state = self.model.init_state(self.recipe.train.batch_size)
        x, y = window(self.train, index, self.recipe.train.bptt)
        loss, state = loss_sum(self.model, x, y, self.state)
        self.state = self.model.detach_state(state)  # values carry on, gradients stop at the window edge
        return Loss(loss, y.numel(), y.size(0))

    train_log_columns: list[str] = []

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.model.parameters())}]

    def trainable_modules(self) -> list[torch.nn.Module]:
        return [self.model]

    def validate(self) -> dict[str, float]:
        loss = evaluate(self.model, self.valid_ids, self.recipe.train.eval_batch_size, self.recipe.train.bptt)
        return metrics_from_loss(loss, self.recipe.data.level, "valid")

    def vocab_dict(self) -> dict:
        return self.vocab.to_dict()

    def state_dict(self) -> dict:
        return {"hidden": list(self.state) if isinstance(self.state, tuple) else self.state}

    def load_state_dict(self, state: dict, resharded: bool = False) -> None:
        if resharded:  # the saved state belongs to other streams: start these afresh
            return
        device = self.train.device  # checkpoints load onto the CPU
        hidden = state["hidden"]  # None: a model that carries nothing across windows (a Transformer)
        if isinstance(hidden, list):
            self.state = tuple(h.to(device) for h in hidden)
        else:
            self.state = None if hidden is None else hidden.to(device)

    def describe(self) -> str:
        return f"vocab {len(self.vocab)}, {self.train.numel():,} training tokens"


@torch.no_grad()
def evaluate(model: LMNet, ids: torch.Tensor, batch_size: int, bptt: int, progress: str = "") -> float:
    """Mean next-token loss (nats) over a split, state carried through each stream; `progress` names a progress
    bar on stderr (drawn when stderr is a terminal; "": none)."""
    was_training = model.training
    model.eval()
    streams = batchify(ids.to(model_device(model)), batch_size, "evaluation split")
    state = model.init_state(batch_size)
    total, count = 0.0, 0
    windows = num_windows(streams, bptt)
    with progress_bar(progress, windows if progress else 0) as advance:
        for i in range(windows):
            x, y = window(streams, i, bptt)
            loss, state = loss_sum(model, x, y, state)
            total += loss.item()
            count += y.numel()
            advance(1)
    model.train(was_training)
    return total / count


def metrics_from_loss(loss: float, level: str, prefix: str) -> dict[str, float]:
    out = {f"{prefix}_loss": round(loss, 5), f"{prefix}_ppl": round(math.exp(min(loss, 50.0)), 3)}
    if level == "char":
        out[f"{prefix}_bpc"] = round(loss / math.log(2), 5)
    return out


def load_model(path: Path, device: torch.device = torch.device("cpu")) -> tuple[LMNet, Vocab, Recipe, dict]:
    """Rebuild model, vocab and recipe from a checkpoint file alone, on `device`."""
    payload = checkpoint.load(path, kind="lm")
    return (*model_from_payload(payload, path, device), payload)


def model_from_payload(payload: dict, path: Path, device: torch.device) -> tuple[LMNet, Vocab, Recipe]:
    recipe = recipe_from_checkpoint(payload)
    vocab = vocab_from_dict(payload["vocab"])
    model = load_model_weights(model_config(recipe), "lm", payload["model"], path, device, len(vocab))
    return model, vocab, recipe
