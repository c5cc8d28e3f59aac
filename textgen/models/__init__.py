"""Model architectures by task and `model.arch`: a new architecture is one file plus one line here (and its name
in config.CHOICES["model.arch"], which tests keep equal to these keys).

"recurrent": the recurrent stacks, model.cell = lstm | gru | rnn picking the cell (the encoder-decoder is
LSTM only). The name is the family, not a cell, so that `arch = "recurrent", cell = "rnn"` reads as what it is.
"transformer": pre-norm Transformers with a key/value cache (models/transformer.py).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from textgen.config import ModelConfig
from textgen.errors import UserError
from textgen.models.lm import RNNLM
from textgen.models.seq2seq import Seq2Seq
from textgen.models.transformer import TransformerLM, TransformerSeq2Seq

# task → arch → constructor(*vocabulary sizes, cfg): lm takes (vocab,), seq2seq (source vocab, target vocab)
MODELS: dict[str, dict[str, Callable[..., nn.Module]]] = {
    "lm": {"recurrent": RNNLM, "transformer": TransformerLM},
    "seq2seq": {"recurrent": Seq2Seq, "transformer": TransformerSeq2Seq},
}


def build_model(cfg: ModelConfig, task: str, *vocab_sizes: int) -> nn.Module:
    """The `task` model ("lm" | "seq2seq") of architecture cfg.arch for the given vocabulary sizes."""
    archs = MODELS[task]
    if cfg.arch not in archs:
        raise UserError(f"model.arch = {cfg.arch!r} has no {task} model: choose from {', '.join(archs)}")
    if task == "seq2seq" and cfg.share_embeddings and vocab_sizes[0] != vocab_sizes[1]:  # for every architecture
        raise UserError('model.share_embeddings needs one joint vocabulary (data.target_vocab = "joint")')
    return archs[cfg.arch](*vocab_sizes, cfg)


def load_model_weights(cfg: ModelConfig, task: str, state: dict, path, device, *vocab_sizes: int) -> nn.Module:
    """The checkpoint `path`'s model: built as its recipe and vocabulary say, its weights loaded, on `device` in eval
    mode; weights that do not fit that model mean the file is damaged."""
    model = build_model(cfg, task, *vocab_sizes)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise UserError(f"checkpoint '{path}' weights do not match its recipe and vocabulary: it is damaged") from None
    return model.to(device).eval()
