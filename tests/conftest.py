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


# The tiny test Transformer: tests parametrised over model.arch put these [model] keys over a tiny recipe's.
# Its context is its recipe's train.bptt (model.context 0), so samples and evaluation read past it.
ARCHS = {
    "recurrent": {},
    "transformer": {"arch": "transformer", "hidden": 32, "heads": 4, "layers": 1, "embed": 0},
}


def arch_sets(arch: str) -> list[str]:
    """The `--set model.KEY=VALUE` options that turn a tiny recipe's model into `arch`'s."""
    return [a for key, value in ARCHS[arch].items() for a in ("--set", f"model.{key}={json.dumps(value)}")]


def write_recipe(path: Path, corpus: Path, model: dict | None = None, **train) -> Path:
    """A tiny char-LSTM recipe on `corpus`; `model` overrides [model] keys, keyword arguments [train] keys."""
    model = {"cell": "lstm", "layers": 1, "hidden": 32, "embed": 16, **(model or {})}
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
    body, shape = ("\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items()) for table in (settings, model))
    path.write_text(
        f'description = "tiny test recipe"\n[data]\ncorpus = "{corpus}"\nlevel = "char"\nholdout = 0.2\n'
        f"[model]\n{shape}\n[train]\n{body}\n"
    )
    return path


@pytest.fixture
def tiny_recipe(tmp_path, tiny_corpus, request) -> Path:
    """The tiny char-LM recipe; a test parametrises it (indirect) by model.arch, else recurrent."""
    return write_recipe(tmp_path / "tiny.toml", tiny_corpus, ARCHS[getattr(request, "param", "recurrent")])


def make_reversal_corpus(folder: Path) -> str:
    rng = random.Random(0)
    words = "a b c d e f g h".split()
    for split, n in (("train", 600), ("valid", 40), ("test", 40)):
        pairs = [[rng.choice(words) for _ in range(rng.randint(2, 6))] for _ in range(n)]
        (folder / f"{split}.src").write_text("".join(" ".join(p) + "\n" for p in pairs))
        (folder / f"{split}.tgt").write_text("".join(" ".join(reversed(p)) + "\n" for p in pairs))
    return ";".join(f"{folder}/{s}.src,{folder}/{s}.tgt" for s in ("train", "valid", "test"))


def write_reversal_recipe(
    path: Path, corpus: str, description: str, hidden: int, train: dict, model: dict | None = None, **sections: dict
) -> Path:
    """A word-level seq2seq recipe for the toy reversal corpus; [train], [model] keys over the recipe's and further
    sections given as dicts."""

    def table(name: str, values: dict) -> str:
        return f"[{name}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())

    path.write_text(
        f'description = {json.dumps(description)}\ntask = "seq2seq"\n'
        + table("data", {"corpus": corpus, "tokenizer": "word"})
        + table("model", {"layers": 1, "hidden": hidden, "embed": hidden // 2, **(model or {})})
        + table("train", train)
        + "".join(table(name, values) for name, values in sections.items())
    )
    return path


def reversal_recipe(folder: Path, arch: str = "recurrent") -> tuple[Path, Path]:
    corpus = make_reversal_corpus(folder)
    recipe = write_reversal_recipe(
        folder / "rev.toml",
        corpus,
        "toy reversal",
        hidden=64,
        train={"lr": 0.01, "max_tokens": 200, "epochs": 15, "valid_metric": "bleu4", "log_every": 20},
        model=ARCHS[arch],
        decode={"beam": 3, "max_len_a": 1.0, "max_len_b": 2},
    )
    return folder, recipe


@pytest.fixture(scope="session")
def reversal(tmp_path_factory):
    return reversal_recipe(tmp_path_factory.mktemp("rev"))


@pytest.fixture(scope="session")
def trained_mt(reversal, tmp_path_factory, request):
    """The toy reversal model (its folder holds rev.toml); a test parametrises it (indirect) by model.arch."""

    arch = getattr(request, "param", "recurrent")
    if arch == "recurrent":
        folder, recipe = reversal
        if (folder / "rev.pt").is_file():  # trained for the tests that name "recurrent" (pytest's own instance)
            return folder / "rev.pt"
    else:
        folder, recipe = reversal_recipe(tmp_path_factory.mktemp(f"rev-{arch}"), arch)
    return train_for_session(recipe, folder / "rev.pt", folder / "run")


def train_for_session(recipe: Path, output: Path, run_dir: Path) -> Path:
    """`textgen train -r RECIPE -o OUTPUT --run-dir RUN_DIR` in-process, for a session- or module-scoped fixture
    (the `cli` fixture is per test); returns OUTPUT."""
    from textgen.cli import main

    argv = sys.argv
    sys.argv = ["textgen", "train", "-r", str(recipe), "-o", str(output), "--run-dir", str(run_dir)]
    try:
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code in (0, None)
    finally:
        sys.argv = argv
    return output


def tiny_transformer(task: str, *vocab_sizes: int, seed: int = 0, **model):
    """A tiny `model.arch = "transformer"` model for `task` ("lm" | "seq2seq"), built by the registry, in eval mode;
    keyword arguments override [model] keys."""
    from textgen.config import ModelConfig
    from textgen.models import build_model

    torch.manual_seed(seed)
    cfg = ModelConfig(
        **{"arch": "transformer", "layers": 2, "hidden": 16, "heads": 4, "ffn": 32, "context": 16, **model}
    )
    return build_model(cfg, task, *vocab_sizes).eval()
