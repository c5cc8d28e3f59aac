"""Shared fixtures: tiny synthetic corpora and recipes, and an in-process CLI runner."""

from __future__ import annotations

import atexit
import json
import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

# Tiny models run fastest on one thread, and several torch processes on 2 cores must not
# oversubscribe them (spinning OpenMP threads make tiny ops ~100x slower under contention).
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)
# Prepared corpora and fetched files go to a cache of this test session's own, never the user's.
os.environ["TEXTGEN_CACHE"] = tempfile.mkdtemp(prefix="textgen-tests-")
atexit.register(shutil.rmtree, os.environ["TEXTGEN_CACHE"], ignore_errors=True)

REPO = Path(__file__).resolve().parent.parent
TINY_TEXT = "the cat sat on the mat.\nthe dog sat on the log.\n" * 60


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run `textgen ARGS` in-process (in tmp_path); returns exit code, stdout, stderr."""
    from textgen.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["textgen", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT)
    return path


def write_recipe(path: Path, corpus: Path, **train) -> Path:
    """A tiny char-LSTM recipe on `corpus`; keyword arguments override [train] keys."""
    settings = {
        "batch_size": 4,
        "bptt": 16,
        "optimizer": "adam",
        "lr": 0.01,
        "max_steps": 20,
        "eval_every": 10,
        "eval_batch_size": 2,
        "log_every": 5,
        "seed": 7,
        **train,
    }
    body = "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in settings.items())
    path.write_text(
        f'description = "tiny test recipe"\n[data]\ncorpus = "{corpus}"\nlevel = "char"\nholdout = 0.2\n'
        f'[model]\ncell = "lstm"\nlayers = 1\nhidden = 32\nembed = 16\n[train]\n{body}\n'
    )
    return path


@pytest.fixture
def tiny_recipe(tmp_path, tiny_corpus) -> Path:
    return write_recipe(tmp_path / "tiny.toml", tiny_corpus)


def make_reversal_corpus(folder: Path) -> str:
    rng = random.Random(0)
    words = "a b c d e f g h".split()
    for split, n in (("train", 600), ("valid", 40), ("test", 40)):
        pairs = [[rng.choice(words) for _ in range(rng.randint(2, 6))] for _ in range(n)]
        (folder / f"{split}.src").write_text("".join(" ".join(p) + "\n" for p in pairs))
        (folder / f"{split}.tgt").write_text("".join(" ".join(reversed(p)) + "\n" for p in pairs))
    return ";".join(f"{folder}/{s}.src,{folder}/{s}.tgt" for s in ("train", "valid", "test"))


def write_reversal_recipe(
    path: Path, corpus: str, description: str, hidden: int, train: dict, **sections: dict
) -> Path:
    """A word-level seq2seq recipe for the toy reversal corpus; [train] and further sections given as dicts."""

    def table(name: str, values: dict) -> str:
        return f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())

    path.write_text(
        f'description = {json.dumps(description)}\ntask = "seq2seq"\n'
        + table("data", {"corpus": corpus, "tokenizer": "word"})
        + table("model", {"layers": 1, "hidden": hidden, "embed": hidden // 2})
        + table("train", train)
        + "".join(table(name, values) for name, values in sections.items())
    )
    return path


@pytest.fixture(scope="session")
def reversal(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rev")
    corpus = make_reversal_corpus(folder)
    recipe = write_reversal_recipe(
        folder / "rev.toml",
        corpus,
        "toy reversal",
        hidden=64,
        train={"lr": 0.01, "max_tokens": 200, "epochs": 15, "valid_metric": "bleu4", "log_every": 20},
        decode={"beam": 3, "max_len_a": 1.0, "max_len_b": 2},
    )
    return folder, recipe


@pytest.fixture(scope="session")
def trained_mt(reversal):
    from textgen.cli import main

    folder, recipe = reversal
    argv = sys.argv
    sys.argv = ["textgen", "train", "-r", str(recipe), "-o", str(folder / "rev.pt"), "--run-dir", str(folder / "run")]
    try:
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code in (0, None)
    finally:
        sys.argv = argv
    return folder / "rev.pt"
