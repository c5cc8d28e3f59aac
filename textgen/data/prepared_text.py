"""Language-model corpora prepared once (data/prepared.py): the vocabulary and each split's ids, memory-mapped."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import torch

from textgen.console import progress_bar
from textgen.data.arrays import ArrayWriter, id_dtype, open_array
from textgen.data.corpus import absolute_corpus, load_text_corpus, own_file
from textgen.data.prepared import Plan, Prepared, build, file_sha256, fingerprint, locate, read_manifest
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
        ids = open_array(self.folder / f"{split}.npy", mode="c")
        return torch.from_numpy(self.checked_ids(ids, len(self.vocab), f"{split}.npy"))


def text_chunks(text: str, size: int = TEXT_CHUNK):
    """Pieces of about `size` characters that end at line ends, so words never straddle two pieces."""
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos + size)
        end = len(text) if end < 0 else end + 1
        yield text[pos:end]
        pos = end


def _files(corpus: str) -> dict[str, str]:
    path = Path(corpus)
    if own_file(corpus):
        if not path.is_file():
            raise UserError(
                f"corpus file '{path}' does not exist: check the path or use a registry name (textgen data list)"
            )
        return {path.name: file_sha256(path)}
    entry = lookup(corpus)
    layout = json.dumps([entry.text, entry.holdout, entry.splits], sort_keys=True)
    return {**{f"{corpus}/{f.name}": f.sha256 for f in entry.files}, "layout": layout}


def prepare_text(
    recipe, explicit: Path | None = None, dest: Path | None = None, vocab: Vocab | None = None
) -> PreparedText:
    """The recipe's LM corpus, encoded with the vocabulary built from its training split (or with `vocab`, a
    checkpoint's, which may come from an earlier rule): reused when prepared before."""
    d = recipe.data
    if d.distill_from:
        raise UserError("data.distill_from is for seq2seq recipes (a teacher's translations): remove it here")
    settings = {"task": "lm", "level": d.level}  # only what changes the arrays: a changed key re-prepares
    if d.level == "char":
        settings["char_vocab"] = "train+unk"  # folders of the earlier all-splits rule are not reused
    if d.level == "word":
        settings.update(min_freq=d.min_freq, max_vocab=d.max_vocab)
    if own_file(d.corpus):  # registry corpora carry their own split (in the files' layout)
        settings["holdout"] = d.holdout
    plan = Plan(
        d.corpus,
        {"files": _files(d.corpus), "settings": settings},
        {Path(d.corpus).name: d.corpus} if own_file(d.corpus) else {},
    )
    if vocab is not None and explicit is None:  # the folder built from the data if it has this vocabulary, else its own
        found = locate(plan, None)
        if found is None or PreparedText(found, read_manifest(found)).vocab != vocab:
            plan = Plan(d.corpus, {**plan.inputs, "vocab": fingerprint(vocab.to_dict())}, plan.paths)
    folder = locate(plan, explicit) if dest is None else None
    if folder is None:

        def write(tmp: Path) -> dict:
            corpus = load_text_corpus(d.corpus, d.holdout)
            used = vocab or build_vocab(d.level, corpus.splits, d.min_freq, d.max_vocab)
            (tmp / "vocab.json").write_text(json.dumps(used.to_dict()), encoding="utf-8")
            counts = {}
            for split, text in corpus.splits.items():
                writer = ArrayWriter(tmp / f"{split}.npy", id_dtype(len(used)))
                with progress_bar(f"encode {split} (characters)", len(text)) as advance:
                    for piece in text_chunks(text):
                        writer.append(used.encode(piece))
                        advance(len(piece))
                writer.finish()
                counts[split] = {"tokens": writer.count}
            return {"vocab_size": len(used), "splits": counts, "corpus": absolute_corpus(d.corpus, "lm")}

        folder = build(plan, write, dest)
    return PreparedText(folder, read_manifest(folder))
