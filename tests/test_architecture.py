"""The model registry and step protocol: a second seq2seq architecture, defined here and registered through
`model.arch`, trains (XENT, MIXER, MRT), decodes (greedy, beam, sampling, MBR) and scores with no change to
decode/ or objectives/. Its decoder state is a bare (B, H) tensor, nothing like the LSTM's."""

from __future__ import annotations

import csv
import dataclasses
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from textgen import api, config, models
from textgen.config import ModelConfig, Recipe, recipe_from_checkpoint, to_dict
from textgen.data.seqvocab import PAD
from textgen.errors import UserError
from textgen.models import MODELS, build_model
from textgen.models.lm import RNNLM
from textgen.models.protocol import LMNet, Seq2SeqModel
from textgen.models.seq2seq import Seq2Seq
from textgen.models.transformer import TransformerLM, TransformerSeq2Seq


class TinyGRU(nn.Module):
    """Mean-pooled source embedding as the first state of a GRU cell decoder, no attention."""

    def __init__(self, src_vocab: int, tgt_vocab: int, cfg: ModelConfig):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, cfg.hidden, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(tgt_vocab, cfg.hidden, padding_idx=PAD)
        self.cell = nn.GRUCell(cfg.hidden, cfg.hidden)
        self.out = nn.Linear(cfg.hidden, tgt_vocab)

    def encode(self, src, src_lens):
        summed = (self.src_embed(src) * (src != PAD).unsqueeze(-1)).sum(1)  # (B, H)
        return torch.tanh(summed / src_lens.unsqueeze(1).to(summed.dtype))

    def step_embedded(self, emb, state):
        h = self.cell(emb, state)  # (B, H)
        return h, h

    def step_features(self, prev, state):
        return self.step_embedded(self.tgt_embed(prev), state)

    def logits(self, features):
        return self.out(features)

    def step(self, prev, state):
        features, state = self.step_features(prev, state)
        return self.logits(features), state

    def prefix(self, state, tgt_in):
        feats = []
        for t in range(tgt_in.size(1)):
            f, state = self.step_features(tgt_in[:, t], state)
            feats.append(f)
        return (torch.stack(feats, 1) if feats else state.new_zeros(state.size(0), 0, state.size(1))), state

    def features(self, src, src_lens, tgt_in):
        return self.prefix(self.encode(src, src_lens), tgt_in)[0]

    def forward(self, src, src_lens, tgt_in):
        return self.logits(self.features(src, src_lens, tgt_in))

    @staticmethod
    def reorder_state(state, index, keep_source=False):
        return state.index_select(0, index)


@pytest.fixture
def tiny_gru(monkeypatch):
    """`model.arch = "tiny-gru"` for seq2seq, for this test only."""
    monkeypatch.setitem(MODELS["seq2seq"], "tiny-gru", TinyGRU)
    monkeypatch.setitem(config.CHOICES, "model.arch", (*config.CHOICES["model.arch"], "tiny-gru"))


def long_reversal_corpus(folder: Path) -> str:
    """Targets of 9-12 words, longer than finetune-mixer's first XENT prefix (8), so MIXER rolls out."""
    rng = random.Random(0)
    for split, n in (("train", 200), ("valid", 12), ("test", 12)):
        pairs = [[rng.choice("abcdefgh") for _ in range(rng.randint(9, 12))] for _ in range(n)]
        (folder / f"{split}.src").write_text("".join(" ".join(p) + "\n" for p in pairs))
        (folder / f"{split}.tgt").write_text("".join(" ".join(reversed(p)) + "\n" for p in pairs))
    return ";".join(f"{folder}/{s}.src,{folder}/{s}.tgt" for s in ("train", "valid", "test"))


def train(cli, recipe: str, out: str, steps: int, *extra: str) -> list[dict]:
    """A packaged recipe's objective and schedule on the toy corpus with the tiny-gru model; its training log."""
    sets = {
        "data.corpus": long_reversal_corpus(Path.cwd()),
        "data.tokenizer": "word",
        "model.arch": "tiny-gru",
        "model.layers": 1,
        "model.hidden": 16,
        "model.embed": 16,
        "train.max_steps": steps,
        "train.max_tokens": 240,
        "train.log_every": 1,
        "train.valid_subset": 4,
        "train.max_minutes": 0.0,
    }
    args = [a for key, value in sets.items() for a in ("--set", f"{key}={value!r}".replace("'", '"'))]
    result = cli("train", "--recipe", recipe, *args, *extra, "-o", out, "--run-dir", f"run-{out}")
    assert result.code == 0, result.err
    with open(f"run-{out}/metrics.csv") as f:
        return [row for row in csv.DictReader(f) if row["train_loss"]]  # training rows, not validation ones


def test_a_second_architecture_trains_decodes_and_scores_through_model_arch(cli, tiny_gru):
    rows = train(cli, "finetune-xent", "xent.pt", 20, "--set", "train.lr=0.01")
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])  # XENT through features / logits learns
    init = ("--set", 'init_from="xent.pt"')
    mixer = train(cli, "finetune-mixer", "mixer.pt", 1, *init)  # s = 8 of 10-13 target tokens: rolled out
    assert mixer[-1]["reward"] != "" and 0.0 <= float(mixer[-1]["reward"]) <= 1.0
    mrt = train(cli, "finetune-mrt", "mrt.pt", 1, *init)
    assert float(mrt[-1]["candidates"]) > 1.0  # distinct sampled candidates, rescored through prefix

    model = api.load("mrt.pt", device="cpu")
    assert isinstance(model.model, TinyGRU)  # the checkpoint's model.arch picks the class
    sources = ["a b c d e f g h a", "h g", "c c d d e e f f g g"]
    greedy = model.translate(sources, beam=1)
    assert greedy == [model.translate([s], beam=1)[0] for s in sources]  # rows leaving the batch reorder the state
    nbest = model.translate(sources, beam=3, nbest=3, lenpen=0.0)
    for src, hyps in zip(sources, nbest):
        assert [s for _, s in hyps] == sorted((s for _, s in hyps), reverse=True)
        forced = [scored.total for scored in model.score([src] * len(hyps), [text for text, _ in hyps])]
        assert forced == pytest.approx([s for _, s in hyps], abs=1e-4)  # search steps == teacher-forced forward
    sampled = model.translate(sources, sample=True, seed=3)
    assert sampled == model.translate(sources, sample=True, seed=3)
    assert sampled[1:] == model.translate(sources[1:], sample=True, seed=3)  # keyed draws: no batch dependence
    mbr = model.translate(sources, mbr=4, seed=1)
    assert len(mbr) == 3 and mbr == model.translate(sources, mbr=4, seed=1)


def test_arch_choices_are_the_registry():
    """One list: a recipe can name exactly the architectures build_model has, for either task."""
    for task, archs in MODELS.items():
        assert set(config.CHOICES["model.arch"]) == set(archs), task
    assert ModelConfig().arch in config.CHOICES["model.arch"]


@pytest.mark.parametrize(
    "cfg, classes",
    [
        (ModelConfig(layers=1, hidden=8, embed=6), (Seq2Seq, RNNLM)),
        (ModelConfig(arch="transformer", layers=1, hidden=8, heads=2, context=8), (TransformerSeq2Seq, TransformerLM)),
    ],
    ids=["recurrent", "transformer"],
)
def test_every_model_implements_the_protocols(cfg, classes):
    seq2seq, lm = build_model(cfg, "seq2seq", 9, 7), build_model(cfg, "lm", 7)
    assert type(seq2seq) is classes[0] and isinstance(seq2seq, Seq2SeqModel)
    assert type(lm) is classes[1] and isinstance(lm, LMNet)


def test_an_arch_without_a_model_for_the_task_is_a_user_error(tiny_gru):
    with pytest.raises(UserError, match="model.arch = 'tiny-gru' has no lm model: choose from recurrent"):
        models.build_model(dataclasses.replace(ModelConfig(), arch="tiny-gru"), "lm", 7)


def test_a_checkpoint_recipe_without_model_arch_loads_the_recurrent_model():
    saved = to_dict(Recipe(task="seq2seq", model=ModelConfig(layers=1, hidden=8)))
    del saved["model"]["arch"]
    recipe = recipe_from_checkpoint({"recipe": saved})
    assert recipe.model.arch == "recurrent"
    assert type(build_model(recipe.model, "seq2seq", 9, 7)) is Seq2Seq
