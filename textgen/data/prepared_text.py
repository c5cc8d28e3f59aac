"""Language-model corpora prepared once (data/prepared.py): the vocabulary and each split's ids, memory-mapped."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import torch

from textgen.data.arrays import ArrayWriter, id_dtype, open_array
from textgen.data.corpus import load_text_corpus
from textgen.data.prepared import Plan, Prepared, build, file_sha256, locate, read_manifest
from textgen.data.registry import lookup
from textgen.data.vocab import Vocab, build_vocab, vocab_from_dict
from textgen.errors import UserError

TEXT_CHUNK = 1 << 22  # characters encoded at a time, cut at line ends


class PreparedText(Prepared):
    @cached_property
    def vocab(self) -> Vocab:
        return self.read("vocab.json", lambda path: vocab_from_dict(json.loads(path.read_text(encoding="utf-8"))))

    def ids(self, split: str) -> torch.Tensor:
        """The split's token ids (N,), mapped copy-on-write: pages are shared, never written back."""
        if not self.has(split):
            raise UserError(f"corpus '{self.manifest['corpus']}' has no {split} split: use one that has")
        return torch.from_numpy(open_array(self.folder / f"{split}.npy", mode="c"))


def text_chunks(text: str, size: int = TEXT_CHUNK):
    """Pieces of about `size` characters that end at line ends, so words never straddle two pieces."""
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos + size)
        end = len(text) if end < 0 else end + 1
        yield text[pos:end]
        pos = end


def _own_file(corpus: str) -> bool:
    path = Path(corpus)
    return bool(path.suffix or path.exists() or "/" in corpus)


def _files(corpus: str) -> dict[str, str]:
    path = Path(corpus)
    if _own_file(corpus):
        if not path.is_file():
            raise UserError(
                f"corpus file '{path}' does not exist: check the path or use a registry name (textgen data list)"
            )
        return {path.name: file_sha256(path)}
    entry = lookup(corpus)
    layout = json.dumps([entry.text, entry.holdout, entry.splits], sort_keys=True)
    return {**{f"{corpus}/{f.name}": f.sha256 for f in entry.files}, "layout": layout}


def prepare_text(recipe, explicit: Path | None = None, dest: Path | None = None) -> PreparedText:
    """The recipe's LM corpus, encoded with the vocabulary built from it: reused when prepared before."""
    d = recipe.data
    settings = {"task": "lm", "level": d.level}  # only what changes the arrays: a changed key re-prepares
    if d.level == "word":
        settings.update(min_freq=d.min_freq, max_vocab=d.max_vocab)
    if _own_file(d.corpus):  # registry corpora carry their own split (in the files' layout)
        settings["holdout"] = d.holdout
    plan = Plan(d.corpus, {"files": _files(d.corpus), "settings": settings})
    folder = locate(plan, explicit) if dest is None else None
    if folder is None:

        def write(tmp: Path) -> dict:
            corpus = load_text_corpus(d.corpus, d.holdout)
            vocab = build_vocab(d.level, corpus.splits, d.min_freq, d.max_vocab)
            (tmp / "vocab.json").write_text(json.dumps(vocab.to_dict()), encoding="utf-8")
            counts = {}
            for split, text in corpus.splits.items():
                writer = ArrayWriter(tmp / f"{split}.npy", id_dtype(len(vocab)))
                for piece in text_chunks(text):
                    writer.append(vocab.encode(piece))
                writer.finish()
                counts[split] = {"tokens": writer.count}
            return {"vocab_size": len(vocab), "splits": counts}

        folder = build(plan, write, dest)
    return PreparedText(folder, read_manifest(folder))
